"""The traffic simulator: which track gets traffic (split following) and how faults show in its metrics."""

from __future__ import annotations

from typing import Any

import pytest

from tollgate_testkit.simulator import (
    Fault,
    Simulator,
    StaticSplits,
    TrackShare,
    TrafficSplit,
    compute_split,
    fault_for,
    parse_fault_flag,
    parse_faults,
)

MD_LABELS = {"tollgate.dev/modeldeployment": "fraud", "tollgate.dev/modeldeployment-namespace": "ml"}


def md(weight: int = 0, canary: str | None = "2.0.0", **spec: Any) -> dict[str, Any]:
    status: dict[str, Any] = {
        "canaryWeight": weight,
        "stable": {"revision": "r1", "version": "1.0.0"},
        "sandboxNamespace": "ml-fraud",
    }
    if canary:
        status["canary"] = {"revision": "r2", "version": canary}
    return {
        "metadata": {"namespace": "ml", "name": "fraud"},
        "spec": {"model": {"name": "fraud-scorer", "version": canary or "1.0.0"}, **spec},
        "status": status,
    }


def deployment(track: str, ready: int, pool: str = "main") -> dict[str, Any]:
    pod = {**MD_LABELS, "tollgate.dev/track": track, "tollgate.dev/pool": pool}
    return {
        "metadata": {"name": f"fraud-{track}", "labels": {**MD_LABELS, "tollgate.dev/track": track}},
        "spec": {"template": {"metadata": {"labels": pod}}},
        "status": {"readyReplicas": ready},
    }


def service(name: str, selector: dict[str, str]) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": MD_LABELS}, "spec": {"selector": selector}}


def shares(split: TrafficSplit | None) -> dict[str, tuple[str, float]]:
    assert split is not None
    return {t.track: (t.version, round(t.share, 4)) for t in split.tracks}


# --- split following ---------------------------------------------------------------------------------
def test_without_sandbox_objects_the_status_weight_splits_traffic() -> None:
    split = compute_split(md(weight=25))
    assert split is not None and split.source == "status"
    assert shares(split) == {"stable": ("1.0.0", 0.75), "canary": ("2.0.0", 0.25)}
    assert (split.namespace, split.name, split.model) == ("ml", "fraud", "fraud-scorer")


def test_replicas_router_follows_ready_pods_behind_the_service_selector() -> None:
    # given the main-pool Service over 3 ready stable pods and 1 ready canary pod
    svc = service("fraud", {**MD_LABELS, "tollgate.dev/pool": "main"})
    split = compute_split(
        md(weight=25), deployments=[deployment("stable", 3), deployment("canary", 1)], services=[svc]
    )
    # then the canary gets its share of ready pods
    assert split is not None and split.source == "service"
    assert shares(split) == {"stable": ("1.0.0", 0.75), "canary": ("2.0.0", 0.25)}


def test_a_canary_that_is_not_ready_gets_no_traffic() -> None:
    svc = service("fraud", {**MD_LABELS, "tollgate.dev/pool": "main"})
    split = compute_split(
        md(weight=25), deployments=[deployment("stable", 3), deployment("canary", 0)], services=[svc]
    )
    assert shares(split) == {"stable": ("1.0.0", 1.0)}


def test_at_weight_zero_the_service_selects_stable_even_with_a_ready_canary() -> None:
    svc = service("fraud", {**MD_LABELS, "tollgate.dev/track": "stable"})
    split = compute_split(
        md(weight=0), deployments=[deployment("stable", 3), deployment("canary", 3)], services=[svc]
    )
    assert shares(split) == {"stable": ("1.0.0", 1.0)}


def test_kill_switch_service_sends_everything_to_the_fallback_version() -> None:
    svc = service("fraud", {**MD_LABELS, "tollgate.dev/track": "fallback"})
    split = compute_split(
        md(weight=50, fallback={"version": "0.9.0"}),
        deployments=[deployment("stable", 3), deployment("canary", 2), deployment("fallback", 2, "fallback")],
        services=[svc],
    )
    assert shares(split) == {"fallback": ("0.9.0", 1.0)}


def test_gateway_router_follows_httproute_weights() -> None:
    route = {
        "metadata": {"name": "fraud"},
        "spec": {
            "rules": [
                {
                    "backendRefs": [
                        {"name": "fraud-stable", "port": 8080, "weight": 90},
                        {"name": "fraud-canary", "port": 8080, "weight": 10},
                        {"name": "fraud-fallback", "port": 8080, "weight": 0},
                    ]
                }
            ]
        },
    }
    split = compute_split(md(weight=5), deployments=[deployment("canary", 0)], routes=[route])
    assert split is not None and split.source == "httproute"
    # the route, not the (stale) status weight, decides
    assert shares(split) == {"stable": ("1.0.0", 0.9), "canary": ("2.0.0", 0.1)}


def test_an_object_without_a_model_is_ignored() -> None:
    assert compute_split({"metadata": {"namespace": "a", "name": "b"}, "spec": {}}) is None


# --- faults ------------------------------------------------------------------------------------------
def test_faults_parse_from_configmap_data_in_json_or_yaml() -> None:
    faults = parse_faults(
        {
            "2.0.0": '{"errorRate": 0.1, "addedLatency": "200ms"}',
            "faults": "fraud-scorer@3.0.0: {scoreShift: -0.2}\n3.0.0: {invalidRate: 0.5}\n",
        }
    )
    assert faults["2.0.0"] == Fault(error_rate=0.1, added_latency=0.2)
    # model@version wins over the bare version
    assert fault_for(faults, "fraud-scorer", "3.0.0") == Fault(score_shift=-0.2)
    assert fault_for(faults, "other-model", "3.0.0") == Fault(invalid_rate=0.5)
    assert fault_for(faults, "fraud-scorer", "1.0.0") == Fault()
    with pytest.raises(ValueError, match="unknown fault field"):
        parse_faults({"1": "{errorRte: 0.1}"})


def test_fault_flag() -> None:
    assert parse_fault_flag("2.4.0:errorRate=0.1,addedLatency=1.5") == ("2.4.0", Fault(0.1, 1.5))


def split_for(canary_share: float) -> TrafficSplit:
    return TrafficSplit(
        "ml",
        "fraud",
        "fraud-scorer",
        (
            TrackShare("stable", "1.0.0", 1 - canary_share),
            TrackShare("canary", "2.0.0", canary_share),
        ),
        source="status",
    )


def sample(sim: Simulator, name: str, track: str, **labels: str) -> float:
    version = "2.0.0" if track == "canary" else "1.0.0"
    value = sim.registry.get_sample_value(
        name,
        {
            "namespace": "ml",
            "modeldeployment": "fraud",
            "model": "fraud-scorer",
            "version": version,
            "track": track,
            **labels,
        },
    )
    return value or 0.0


def test_faults_apply_to_their_version_only_and_show_in_the_metrics() -> None:
    # given a 50/50 split where the canary version has 10% errors, +200ms and a +0.2 score shift
    splits = StaticSplits()
    splits.set(split_for(0.5))
    sim = Simulator(
        splits,
        {"2.0.0": Fault(error_rate=0.1, added_latency=0.2, score_shift=0.2, invalid_rate=0.05)},
        rate=1000,
        seed=7,
    )

    # when 20 seconds of traffic are simulated
    sent = sim.tick(20.0)

    # then every request is counted once, split about evenly between the tracks
    key = ("ml", "fraud")
    assert sent[(key, "stable")] + sent[(key, "canary")] == 20_000
    assert abs(sent[(key, "canary")] - 10_000) < 400
    canary_total = sample(sim, "tollgate_sim_requests_total", "canary", code="200") + sample(
        sim, "tollgate_sim_requests_total", "canary", code="500"
    )
    assert canary_total == sent[(key, "canary")]

    # and the canary shows its faults while stable stays healthy (its 500 series exists, at zero)
    canary_errors = sample(sim, "tollgate_sim_requests_total", "canary", code="500") / canary_total
    assert 0.09 < canary_errors < 0.11
    assert sample(sim, "tollgate_sim_requests_total", "stable", code="500") == 0.0
    assert (
        sim.registry.get_sample_value(
            "tollgate_sim_requests_total",
            {
                "namespace": "ml",
                "modeldeployment": "fraud",
                "model": "fraud-scorer",
                "version": "1.0.0",
                "track": "stable",
                "code": "500",
            },
        )
        == 0.0
    )
    assert 0.04 < sample(sim, "tollgate_sim_invalid_outputs_total", "canary") / canary_total < 0.06

    def mean(metric: str, track: str) -> float:
        return sample(sim, f"{metric}_sum", track) / sample(sim, f"{metric}_count", track)

    latency_gap = mean("tollgate_sim_request_duration_seconds", "canary") - mean(
        "tollgate_sim_request_duration_seconds", "stable"
    )
    assert latency_gap == pytest.approx(0.2, abs=0.01)
    score_gap = mean("tollgate_sim_predicted_score", "canary") - mean(
        "tollgate_sim_predicted_score", "stable"
    )
    assert 0.15 < score_gap <= 0.2  # clipped at 1.0, so a little under the full shift


def test_request_counts_are_exact_over_small_ticks_and_deterministic_for_a_seed() -> None:
    def run() -> list[dict[tuple[tuple[str, str], str], int]]:
        splits = StaticSplits()
        splits.set(split_for(0.1))
        sim = Simulator(splits, rate=50, seed=3)
        return [sim.tick(0.01) for _ in range(200)]  # 2 simulated seconds in 10ms ticks

    first, second = run(), run()
    assert sum(sum(t.values()) for t in first) == 100  # fractions carry over between ticks
    assert first == second


def test_a_split_change_moves_traffic_on_the_next_tick() -> None:
    splits = StaticSplits()
    splits.set(split_for(0.0))
    sim = Simulator(splits, rate=100, seed=1)
    before = sim.tick(1.0)
    splits.set(split_for(1.0))
    after = sim.tick(1.0)
    key = ("ml", "fraud")
    assert before.get((key, "canary"), 0) == 0 and before[(key, "stable")] == 100
    assert after[(key, "canary")] == 100 and after.get((key, "stable"), 0) == 0


def test_a_new_series_sits_at_zero_for_the_warmup_before_it_counts() -> None:
    # given a simulator with a 1.5 s warm-up and a brand-new 50/50 split
    splits = StaticSplits()
    splits.set(split_for(0.5))
    sim = Simulator(splits, rate=100, seed=3, warmup=1.5)
    # when the first second is simulated
    sim.tick(1.0)
    # then both tracks' series exist, at zero (so Prometheus scrapes a 0 before any request)
    for track in ("stable", "canary"):
        assert sim.registry.get_sample_value("tollgate_sim_requests_total", {
            "namespace": "ml", "modeldeployment": "fraud", "model": "fraud-scorer",
            "version": "2.0.0" if track == "canary" else "1.0.0", "track": track, "code": "200"}) == 0.0
        assert sample(sim, "tollgate_sim_predicted_score_count", track) == 0.0
    # when the warm-up has passed (1.5 s after the series was first seen)
    sim.tick(1.0)
    assert sample(sim, "tollgate_sim_requests_total", "canary", code="200") == 0.0
    sim.tick(1.0)
    # then requests are counted
    assert sample(sim, "tollgate_sim_requests_total", "canary", code="200") > 0
