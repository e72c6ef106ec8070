"""The simulator's view of a Flagger canary: which pods serve which version at which share."""

from __future__ import annotations

from typing import Any

from tollgate_testkit.flagger import MergedSplits, flagger_split, scrape_job
from tollgate_testkit.simulator import Fault, PodRef, Simulator, StaticSplits, TrackShare, TrafficSplit


def canary(annotations: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "fp", "namespace": "peer"}
    if annotations:
        meta["annotations"] = annotations
    return {"metadata": meta, "spec": {"targetRef": {"kind": "Deployment", "name": "fp"}}}


def deployment(name: str, version: str) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"template": {"metadata": {"labels": {"version": version}}}}}


def pod(name: str, app: str, ready: bool = True, deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "peer", "labels": {"app": app}}
    if deleting:
        meta["deletionTimestamp"] = "2026-12-02T00:00:00Z"
    return {"metadata": meta, "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def route(primary: int, canary_weight: int) -> dict[str, Any]:
    return {"metadata": {"name": "fp"}, "spec": {"rules": [{"backendRefs": [
        {"name": "fp-primary", "port": 8080, "weight": primary},
        {"name": "fp-canary", "port": 8080, "weight": canary_weight}]}]}}


def shares(split: TrafficSplit | None) -> dict[str, tuple[str, float]]:
    assert split is not None
    return {t.track: (t.version, round(t.share, 4)) for t in split.tracks}


def test_the_route_weighs_primary_as_stable_and_the_target_as_canary() -> None:
    # given Flagger's objects mid-analysis: primary at 2.0.0, the target Deployment at 2.1.0, route 80/20
    split = flagger_split(
        canary(), deployments=[deployment("fp-primary", "2.0.0"), deployment("fp", "2.1.0")],
        routes=[route(80, 20)],
        pods=[pod("fp-primary-abc-1", "fp-primary"), pod("fp-def-2", "fp"), pod("fp-def-3", "fp", ready=False),
              pod("fp-def-4", "fp", deleting=True), pod("other-1", "other")])
    # then each track carries its Deployment's version at the route's share
    assert shares(split) == {"stable": ("2.0.0", 0.8), "canary": ("2.1.0", 0.2)}
    assert split is not None and split.source == "httproute"
    # and only ready, live pods of the two Deployments serve, each in its track
    assert split.pods == (PodRef("peer", "fp-def-2", "canary"), PodRef("peer", "fp-primary-abc-1", "stable"))


def test_canary_weight_zero_sends_everything_to_the_primary() -> None:
    split = flagger_split(canary(), deployments=[deployment("fp-primary", "2.0.0"), deployment("fp", "2.1.0")],
                          routes=[route(100, 0)])
    assert shares(split) == {"stable": ("2.0.0", 1.0)}


def test_before_the_route_exists_the_primary_serves_and_before_the_primary_the_target() -> None:
    initialised = flagger_split(canary(), deployments=[deployment("fp-primary", "2.0.0"), deployment("fp", "2.0.0")])
    assert shares(initialised) == {"stable": ("2.0.0", 1.0)}
    fresh = flagger_split(canary(), deployments=[deployment("fp", "2.0.0")])
    assert shares(fresh) == {"canary": ("2.0.0", 1.0)}


def test_the_rate_annotation_sets_the_canarys_user_traffic() -> None:
    split = flagger_split(canary({"tollgate.test/simulator-rate": "1"}), deployments=[deployment("fp", "2.0.0")])
    assert split is not None and split.rate == 1.0
    assert flagger_split({"metadata": {"name": "x"}, "spec": {}}) is None


def test_the_simulator_serves_the_fault_on_the_canary_pods_only() -> None:
    # given a Flagger split at 50/50 where the canary's version fails every request
    split = flagger_split(canary(), deployments=[deployment("fp-primary", "2.0.0"), deployment("fp", "2.1.0")],
                          routes=[route(50, 50)], pods=[pod("fp-primary-abc-1", "fp-primary"), pod("fp-def-2", "fp")])
    assert split is not None
    sim = Simulator(MergedSplits(StaticSplits({split.key: split})), {"2.1.0": Fault(error_rate=1.0)}, rate=100,
                    seed=1)
    # when it simulates 10 s of traffic
    sim.tick(10.0)
    # then the canary pod exports only errors and the primary pod none
    canary_pod = sim.export_of("peer", "fp-def-2")
    primary_pod = sim.export_of("peer", "fp-primary-abc-1")
    assert canary_pod is not None and primary_pod is not None
    assert canary_pod.sample("rest_server_requests_total", status_code="200") == 0
    assert canary_pod.sample("rest_server_requests_total", status_code="500") > 400
    assert primary_pod.sample("rest_server_requests_total", status_code="500") == 0
    assert primary_pod.sample("rest_server_requests_total", status_code="200") > 400


def test_merged_splits_hold_both_sources() -> None:
    a = TrafficSplit("ml", "md", "m", (TrackShare("stable", "1", 1.0),), "status")
    b = TrafficSplit("peer", "fp", "fp", (TrackShare("stable", "2", 1.0),), "httproute")
    assert set(MergedSplits(StaticSplits({a.key: a}), StaticSplits({b.key: b})).splits()) == {a.key, b.key}


def test_the_scrape_job_keeps_the_peers_pods_and_redirects_them() -> None:
    job = scrape_job("/k", "peer", "127.0.0.1:9", "/pods/$1/$2/metrics")
    sd = job["kubernetes_sd_configs"][0]
    assert sd["namespaces"] == {"names": ["peer"]}
    assert sd["selectors"] == [{"role": "pod", "label": "bench.tollgate.dev/peer=flagger"}]
    targets = {r.get("target_label"): r.get("replacement") for r in job["relabel_configs"]}
    assert targets["__address__"] == "127.0.0.1:9" and targets["__metrics_path__"] == "/pods/$1/$2/metrics"
