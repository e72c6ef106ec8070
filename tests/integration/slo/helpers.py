"""Rollouts with an injected fault, watched closely enough to time the rollback; events and evidence."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kubernetes import client

from integration.runtime.helpers import apply, md_manifest, patch_spec, reasons, status, wait_phase
from tollgate_testkit.dialects import requests_selector
from tollgate_testkit.stack import Stack, wait_for

SCRAPE_INTERVAL = "1s"  # the session stack's Prometheus (running_stack default)
ANALYSIS = {"interval": "1s", "window": "5s", "minSamples": 20, "failureLimit": 0, "consecutiveErrorLimit": 3}


def slo_manifest(name: str, slos: list[dict[str, Any]], *, steps: list[dict[str, Any]] | None = None,
                 analysis: dict[str, Any] | None = None, deadline: str = "30s", **spec: Any) -> dict[str, Any]:
    """A ModelDeployment at 1.0.0 judged on `slos` every second over a 5s window."""
    return md_manifest(name, "1.0.0", slos=slos, rollout={
        "steps": steps or [{"weight": 25, "pause": "15s"}, {"weight": 50}, {"weight": 100}],
        "analysis": {**ANALYSIS, **(analysis or {})},
        "progressDeadline": deadline,
    }, **spec)


@dataclass
class Watch:
    """What a close watch of status saw during one rollout (monotonic seconds on the test's clock)."""

    weights: list[int] = field(default_factory=list)
    first_traffic: float | None = None
    """When status first showed canaryWeight > 0."""
    back_to_zero: float | None = None
    """When status first showed canaryWeight 0 again after that."""
    snapshots: list[dict[str, Any]] = field(default_factory=list)
    final: dict[str, Any] = field(default_factory=dict)

    @property
    def seconds_to_zero(self) -> float | None:
        if self.first_traffic is None or self.back_to_zero is None:
            return None
        return self.back_to_zero - self.first_traffic


def watch_rollout(stack: Stack, namespace: str, name: str, until: tuple[str, ...], timeout: float = 120,
                  interval: float = 0.1) -> Watch:
    """Poll status until the phase is in `until`, noting weights, analysis and when traffic moved.

    With RolledBack in `until`, the end counts only once this rollout gave the canary traffic: a poll saw a
    weight, or the status is of the spec being watched (observedGeneration) and records this version's end
    (history) after a step with traffic (timeline). On a loaded machine a whole rollout can pass between two
    polls. For the order of the steps, read `stepped(w.final)`, not `w.weights`."""
    w = Watch()
    deadline = time.monotonic() + timeout
    generation: int | None = None
    while time.monotonic() < deadline:
        obj = stack.md(namespace, name)
        st: dict[str, Any] = obj.get("status") or {}
        generation = generation or int(obj["metadata"]["generation"])  # the spec the test just asked for
        ended_here = (int(st.get("observedGeneration") or 0) >= generation
                      and (st.get("history") or [{}])[0].get("version") == obj["spec"]["model"]["version"]
                      and "StepAdvanced" in reasons(st))
        now = time.monotonic()
        weight = int(st.get("canaryWeight") or 0)
        if not w.weights or w.weights[-1] != weight:
            w.weights.append(weight)
        if weight > 0 and w.first_traffic is None:
            w.first_traffic = now
        if weight == 0 and w.first_traffic is not None and w.back_to_zero is None:
            w.back_to_zero = now
        w.snapshots.append({"phase": st.get("phase"), "weight": weight, "analysis": st.get("analysis") or []})
        if st.get("phase") in until and (w.first_traffic is not None or ended_here or "RolledBack" not in until):
            w.final = st
            return w
        time.sleep(interval)
    raise AssertionError(f"{name} never reached {until}; weights {w.weights}; status {status(stack, namespace, name)}"
                         f"\n{stack.operators[-1].log_tail() if stack.operators else ''}")


def start_rollout(stack: Stack, namespace: str, manifest: dict[str, Any], version: str) -> dict[str, Any]:
    """Apply `manifest` (1.0.0), wait until it is Stable, then ask for `version`."""
    name = manifest["metadata"]["name"]
    apply(stack, namespace, manifest)
    wait_phase(stack, namespace, name, "Stable")
    patch_spec(stack, namespace, name, {"model": {"version": version, "uri": f"s3://models/{name}/{version}"}})
    return status(stack, namespace, name)


def why(st: dict[str, Any]) -> str:
    """What a rollout's end was decided on, whole (history's last entry with its reason, every SLO's
    verdict and evidence, the timeline's tail), as text: pytest shortens a non-text assertion message to
    about 240 characters, which cuts off the very fields that say which SLO failed and on what."""
    return json.dumps({"phase": st.get("phase"), "history": (st.get("history") or [])[:1],
                       "analysis": st.get("analysis"), "timeline": (st.get("timeline") or [])[-8:]},
                      indent=1, sort_keys=True)


def slo(st: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(s for s in st.get("analysis") or [] if s["name"] == name)
    return found


def events(stack: Stack, namespace: str, name: str, reason: str | None = None) -> list[dict[str, Any]]:
    selector = f"involvedObject.name={name}" + (f",reason={reason}" if reason else "")
    out = stack.kubectl("get", "events", "-n", namespace, "--field-selector", selector, "-o", "json").stdout
    items: list[dict[str, Any]] = json.loads(out)["items"]
    return items


def evidence(stack: Stack, namespace: str, st: dict[str, Any]) -> dict[str, Any]:
    """The evidence record status.lastIncident names (ConfigMap, key evidence.json), once written: evidence
    follows the traffic actions, which follow the status write (intent first)."""
    assert st.get("lastIncident"), f"no lastIncident in status: {st}"
    core = client.CoreV1Api(stack.api)
    name = st["lastIncident"]
    wait_for(f"evidence record {name}", lambda: any(
        cm.metadata.name == name for cm in core.list_namespaced_config_map(namespace).items), timeout=30)
    cm = core.read_namespaced_config_map(name, namespace)
    record: dict[str, Any] = json.loads(cm.data["evidence.json"])
    return record


def timeline_seconds(st: dict[str, Any], start_reason: str, end_reasons: tuple[str, ...]) -> float | None:
    """Seconds between the first `start_reason` and the first later entry in `end_reasons` of
    status.timeline, on the operator's clock (microsecond timestamps)."""
    entries = st.get("timeline") or []
    start = next((e for e in entries if e["reason"] == start_reason), None)
    if start is None:
        return None
    t0 = datetime.fromisoformat(start["at"].replace("Z", "+00:00"))
    for e in entries:
        at = datetime.fromisoformat(e["at"].replace("Z", "+00:00"))
        if e["reason"] in end_reasons and at >= t0:
            return (at - t0).total_seconds()
    return None


def canary_requests(stack: Stack, namespace: str, name: str, track: str, window: str = "3s") -> float:
    """Requests the simulator served on `track` over the last `window`, as Prometheus scraped them."""
    series = requests_selector(stack.simulator.dialect, modeldeployment_namespace=namespace, modeldeployment=name,
                               track=track)
    value = stack.prometheus.query_value(f"sum(increase({series}[{window}]))")
    return value or 0.0


def assert_all_traffic_on_stable(stack: Stack, namespace: str, name: str, timeout: float = 30) -> None:
    """The simulator routes nothing to the canary and Prometheus sees stable serving, canary not."""
    def split_on_stable() -> bool:
        split = stack.simulator.splits.splits().get((namespace, name))
        return split is not None and bool(split.tracks) and {t.track for t in split.tracks} == {"stable"}

    wait_for("the simulator's split all on stable", split_on_stable, timeout=timeout)
    wait_for("Prometheus: no canary requests, stable serving",
             lambda: canary_requests(stack, namespace, name, "canary") == 0
             and canary_requests(stack, namespace, name, "stable") > 0, timeout=timeout, interval=0.5)
