"""The traffic simulator: which track gets traffic (split following) and how faults show in its metrics."""

from __future__ import annotations

import urllib.request
from typing import Any

import pytest

from tollgate_testkit.dialects import PodExport, Served, errors_selector, requests_selector
from tollgate_testkit.simulator import (
    Fault,
    PodRef,
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


def shadow_route(mirror: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "fraud"}, "spec": {"rules": [{
        "backendRefs": [{"name": "fraud-stable", "port": 8080, "weight": 100},
                        {"name": "fraud-canary", "port": 8080, "weight": 0}],
        "filters": [{"type": "RequestMirror", "requestMirror": {
            "backendRef": {"name": "fraud-canary", "port": 8080}, **mirror}}]}]}}


def test_a_request_mirror_filter_copies_its_percent_to_the_canary_and_users_get_stable_only() -> None:
    # given a shadow step's route: every user on stable, 40% of the requests mirrored to the canary
    split = compute_split(md(weight=0), routes=[shadow_route({"percent": 40})])
    assert split is not None and shares(split) == {"stable": ("1.0.0", 1.0)}
    assert (split.mirror, split.mirror_track, split.mirror_version) == (0.4, "canary", "2.0.0")
    # when 1000 user requests are simulated, the canary failing every request it answers
    splits = StaticSplits()
    splits.set(split)
    sim = Simulator(splits, {"2.0.0": Fault(error_rate=1.0)}, rate=100, seed=1)
    sim.tick(10.0)
    key = ("ml", "fraud")
    # then the canary's pods answered 400 copies and exported them (its errors are in its metrics) ...
    assert sim.mirrored[(key, "canary")] == 400 and sim.served[(key, "canary")] == 400
    canary = sim.export_of("ml-fraud", "fraud-canary-sim")
    assert canary is not None and b"500" in sim.exposition("ml-fraud", "fraud-canary-sim")
    # ... and users got 1000 answers, all from stable, none from the canary
    assert sim.user_responses == {(key, "stable"): 1000}


def test_a_mirror_fraction_and_a_mirror_without_a_share_are_read_as_the_gateway_api_defines_them() -> None:
    half = compute_split(md(weight=0), routes=[shadow_route({"fraction": {"numerator": 1, "denominator": 2}})])
    every = compute_split(md(weight=0), routes=[shadow_route({})])
    assert half is not None and half.mirror == 0.5
    assert every is not None and every.mirror == 1.0
    # and without a canary there is nothing to mirror to
    none = compute_split(md(weight=0, canary=None), routes=[shadow_route({"percent": 40})])
    assert none is not None and none.mirror == 0.0


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


def split_for(canary_share: float, pods: tuple[PodRef, ...] = ()) -> TrafficSplit:
    return TrafficSplit(
        "ml",
        "fraud",
        "fraud-scorer",
        (
            TrackShare("stable", "1.0.0", 1 - canary_share),
            TrackShare("canary", "2.0.0", canary_share),
        ),
        source="status",
        sandbox="ml-fraud",
        pods=pods,
    )


REQUESTS = {"mlserver": "rest_server_requests_total", "istio": "istio_requests_total",
            "otel": "http_server_request_duration_seconds_count"}
CODE = {"mlserver": "status_code", "istio": "response_code", "otel": "http_response_status_code"}


def sample(sim: Simulator, name: str, track: str, **labels: str) -> float:
    """Sum of a sample over every pod of the track (virtual pods when the split names none)."""
    total = 0.0
    for pod in split_for(0.5).pods_of(track):
        export = sim.export_of(pod.namespace, pod.name)
        total += export.sample(name, **labels) if export is not None else 0.0
    return total


def requests(sim: Simulator, track: str, code: str | None = None) -> float:
    return sample(sim, REQUESTS[sim.dialect], track, **({CODE[sim.dialect]: code} if code else {}))


@pytest.mark.parametrize("dialect", ["mlserver", "istio", "otel"])
def test_faults_apply_to_their_version_only_and_show_in_the_metrics(dialect: str) -> None:
    # given a 50/50 split where the canary version has 10% errors, +200ms and a +0.2 score shift
    splits = StaticSplits()
    splits.set(split_for(0.5))
    sim = Simulator(
        splits,
        {"2.0.0": Fault(error_rate=0.1, added_latency=0.2, score_shift=0.2, invalid_rate=0.05)},
        rate=1000,
        seed=7,
        dialect=dialect,
    )

    # when 20 seconds of traffic are simulated
    sent = sim.tick(20.0)

    # then every request is counted once, split about evenly between the tracks
    key = ("ml", "fraud")
    assert sent[(key, "stable")] + sent[(key, "canary")] == 20_000
    assert abs(sent[(key, "canary")] - 10_000) < 400
    canary_total = requests(sim, "canary")
    assert canary_total == sent[(key, "canary")]

    # and the canary shows its faults while stable stays healthy
    canary_errors = requests(sim, "canary", "500") / canary_total
    assert 0.09 < canary_errors < 0.11
    assert requests(sim, "stable", "500") == 0.0
    outputs = sample(sim, "tollgate_model_output_invalid_count", "canary")
    assert outputs == canary_total - requests(sim, "canary", "500")  # a failed request has no output
    assert 0.04 < sample(sim, "tollgate_model_output_invalid_sum", "canary") / outputs < 0.06

    duration = {"mlserver": "rest_server_request_duration_seconds", "istio": "istio_request_duration_milliseconds",
                "otel": "http_server_request_duration_seconds"}[dialect]
    unit = 1000.0 if dialect == "istio" else 1.0

    def mean(metric: str, track: str) -> float:
        return sample(sim, f"{metric}_sum", track) / sample(sim, f"{metric}_count", track)

    latency_gap = (mean(duration, "canary") - mean(duration, "stable")) / unit
    assert latency_gap == pytest.approx(0.2, abs=0.01)
    score_gap = mean("tollgate_model_score", "canary") - mean("tollgate_model_score", "stable")
    assert 0.15 < score_gap <= 0.2  # clipped at 1.0, so a little under the full shift


@pytest.mark.parametrize("dialect", ["mlserver", "istio", "otel"])
def test_a_pod_exports_only_its_sources_own_labels(dialect: str) -> None:
    # given a simulated pod that served requests
    splits = StaticSplits()
    splits.set(split_for(0.0))
    sim = Simulator(splits, rate=100, seed=1, dialect=dialect)
    sim.tick(1.0)
    pod = split_for(0.0).pods_of("stable")[0]
    export = sim.export_of(pod.namespace, pod.name)
    assert export is not None

    # then no series carries a label the relabelling sets: the server does not know them
    identity = {"namespace", "pod", "modeldeployment", "modeldeployment_namespace", "track", "version"}
    names = set()
    for metric in export.registry.collect():
        for smp in metric.samples:
            assert not identity & set(smp.labels), smp
            names.add(smp.name)
    assert REQUESTS[dialect] in names
    assert {"tollgate_model_score_sum", "tollgate_model_output_invalid_count"} <= names


def test_requests_of_a_track_are_spread_over_its_ready_pods_and_served_per_pod() -> None:
    # given a stable track with two ready pods
    pods = (PodRef("ml-fraud", "fraud-stable-a", "stable"), PodRef("ml-fraud", "fraud-stable-b", "stable"))
    splits = StaticSplits()
    splits.set(split_for(0.0, pods))
    with Simulator(splits, rate=400, seed=2, tick_interval=60) as sim:
        sim.tick(5.0)
        # then both pods served a share, and each pod's page shows only its own count
        counts = []
        for pod in pods:
            url = f"http://{sim.address}{Simulator.metrics_path(pod.namespace, pod.name)}"
            with urllib.request.urlopen(url, timeout=5) as resp:
                text = resp.read().decode()
            counts.append(sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                              if line.startswith("rest_server_requests_total{")))
        # (2000 from this tick, plus the few the background loop sent when it started)
        assert all(c > 600 for c in counts) and 2000 <= sum(counts) < 2050
        # and a pod the simulator has not served yet is an empty page, not an error
        with urllib.request.urlopen(f"http://{sim.address}/pods/ml-fraud/unknown/metrics", timeout=5) as resp:
            assert resp.status == 200 and resp.read() == b""


def test_ready_pods_come_from_the_sandbox_pod_list() -> None:
    def pod(name: str, track: str, ready: bool) -> dict[str, Any]:
        return {"metadata": {"namespace": "ml-fraud", "name": name,
                             "labels": {**MD_LABELS, "tollgate.dev/track": track}},
                "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}

    split = compute_split(md(weight=25), pods=[pod("c-1", "canary", True), pod("s-1", "stable", True),
                                               pod("s-2", "stable", False)])
    assert split is not None and split.sandbox == "ml-fraud"
    assert [p.name for p in split.pods_of("stable")] == ["s-1"]
    assert [p.name for p in split.pods_of("canary")] == ["c-1"]


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
        pod = split_for(0.5).pods_of(track)[0]
        export = sim.export_of(pod.namespace, pod.name)
        assert export is not None
        assert export.registry.get_sample_value("rest_server_requests_total", {
            "app_name": "mlserver", "method": "POST", "path": "/v2/models/{model_name}/infer",
            "status_code": "200"}) == 0.0
        assert sample(sim, "tollgate_model_score_count", track) == 0.0
    # when the warm-up has passed (1.5 s after the series was first seen)
    sim.tick(1.0)
    assert requests(sim, "canary", "200") == 0.0
    sim.tick(1.0)
    # then requests are counted
    assert requests(sim, "canary", "200") > 0


@pytest.mark.parametrize("dialect", ["mlserver", "istio", "otel"])
def test_the_errors_selector_names_the_status_label_of_the_dialects_request_series(dialect: str) -> None:
    # given one pod that served one 200 and one 500 in this dialect
    export = PodExport(dialect, model="fraud-scorer", version="1.0.0", workload="fraud-stable", namespace="ml")
    export.record([Served(200, 0.01, 0.5, False), Served(500, 0.01, 0.5, False)])
    # when the test helpers' error selector is read as series name and matchers
    selector = errors_selector(dialect, track="stable")
    name = selector.split("{", 1)[0]
    label, pattern = selector.rsplit(", ", 1)[1].rstrip("}").split("=~")
    assert pattern == '"5.."'
    # then its status label is one the requests series carries, and it selects the 500 alone
    assert export.sample(name, **{label: "500"}) == 1 and export.sample(name, **{label: "200"}) == 1
    assert selector.startswith(requests_selector(dialect, track="stable")[:-1])


def test_istio_dialect_labels_tagged_requests_and_leaves_user_requests_unknown() -> None:
    # given one istio pod serving a user request and a request a duringAnalysis load pod tagged
    export = PodExport("istio", model="fraud-scorer", version="1.0.0", workload="fraud-canary", namespace="ml")
    export.record([Served(200, 0.01, 0.5, False), Served(200, 0.01, 0.5, False, "duringAnalysis")])
    # then each is counted under its own tollgate_synthetic value, as Istio's documented tag override writes it
    assert export.sample("istio_requests_total", tollgate_synthetic="duringAnalysis") == 1
    assert export.sample("istio_requests_total", tollgate_synthetic="unknown") == 1


def test_the_load_pods_tag_is_read_from_the_env_the_operator_sets() -> None:
    md = {"metadata": {"name": "m", "namespace": "ml"}, "spec": {"model": {"name": "m", "version": "1"}},
          "status": {"canary": {"version": "2"}}}
    pod = {"metadata": {"labels": {"tollgate.dev/hook": "duringAnalysis"}}, "status": {"phase": "Running"},
           "spec": {"containers": [{"env": [{"name": "LOAD_RPS", "value": "5"},
                                            {"name": "TOLLGATE_SYNTHETIC_VALUE", "value": "duringAnalysis"}]}]}}
    split = compute_split(md, hook_pods=[pod])
    assert split is not None and split.load == 5 and split.load_tag == "duringAnalysis"
