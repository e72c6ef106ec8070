"""A failed canary kept for debugging (spec.rollout.keepFailedCanary, issue 20) on the real stack: the
operator process, the real API server with its Deployment and EndpointSlice controllers, KWOK running the
pods, Prometheus scraping the traffic simulator, which follows the Service's selector over the pods' labels
as the data plane would.

A canary regresses and is rolled back; its Deployment and Ready pods stay, no Service has them as
endpoints, and while user traffic keeps flowing not one request reaches them (counted at the simulator and
in Prometheus). The operator is killed and restarted inside the keep window: the deadline lives in status,
so the kept canary is still removed after its delay.
"""

from __future__ import annotations

from typing import Any

from kubernetes import client

from integration.runtime.helpers import status
from integration.slo.helpers import (
    assert_all_traffic_on_stable,
    canary_requests,
    events,
    slo_manifest,
    start_rollout,
    watch_rollout,
)
from tollgate_testkit.stack import OperatorProcess, Stack, wait_for

ERROR_RATE = {"name": "error-rate", "max": 0.05, "maxIncreaseOverBaseline": 0.03, "onNoData": "hold",
              "maxNoDataDuration": "30s"}
KEEP = "60s"


def served(stack: Stack, namespace: str, name: str, track: str) -> int:
    """Requests the simulator has served to `track` of this ModelDeployment since it started."""
    return stack.simulator.served.get(((namespace, name), track), 0)


def ready_pods(stack: Stack, sandbox: str, track: str) -> set[str]:
    pods = client.CoreV1Api(stack.api).list_namespaced_pod(sandbox, label_selector=f"tollgate.dev/track={track}")
    return {p.metadata.name for p in pods.items if not p.metadata.deletion_timestamp and any(
        c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])}


def endpoint_pods(stack: Stack, sandbox: str) -> dict[str, set[str]]:
    """Service name -> the pods its EndpointSlices list (the endpointslice controller's view of selectors)."""
    slices = client.DiscoveryV1Api(stack.api).list_namespaced_endpoint_slice(sandbox).items
    out: dict[str, set[str]] = {}
    for s in slices:
        service = (s.metadata.labels or {}).get("kubernetes.io/service-name", "")
        out.setdefault(service, set()).update(
            e.target_ref.name for e in s.endpoints or [] if e.target_ref is not None)
    return out


def canary_deployment(stack: Stack, sandbox: str, name: str) -> Any:
    found = [d for d in client.AppsV1Api(stack.api).list_namespaced_deployment(sandbox).items
             if d.metadata.name == name]
    return found[0] if found else None


def test_a_kept_canary_receives_no_requests_and_is_removed_after_its_delay_across_a_restart(
        stack: Stack, namespace: str, operator: OperatorProcess) -> None:
    # given a ModelDeployment that keeps a failed canary for 60s, with user traffic, and 1.1.0 regressing
    manifest = slo_manifest("keeper", [ERROR_RATE], steps=[{"weight": 50}, {"weight": 100}])
    manifest["spec"]["rollout"]["keepFailedCanary"] = KEEP
    stack.set_fault("1.1.0", error_rate=0.3)
    # when 1.1.0 is rolled out and rolled back by its analysis
    start_rollout(stack, namespace, manifest, "1.1.0")
    st = watch_rollout(stack, namespace, "keeper", until=("RolledBack",)).final
    assert st["history"][0]["result"] == "RolledBack", st["history"]
    # then status names the kept canary and when it goes
    kept = st["keptCanary"]
    assert kept["version"] == "1.1.0" and kept["deployment"] == "keeper-canary" and kept["until"] > kept["since"], kept
    sandbox = st["sandboxNamespace"]
    # and its Deployment and Ready pods are still there
    deployment = canary_deployment(stack, sandbox, "keeper-canary")
    assert deployment is not None and deployment.metadata.labels["tollgate.dev/version"] == "1.1.0"
    kept_pods = wait_for("the kept canary's Ready pods", lambda: ready_pods(stack, sandbox, "canary"), timeout=30)
    # and no Service has them as endpoints, while the serving Service has the stable pods
    wait_for("the serving Service's endpoints on stable", lambda: ready_pods(stack, sandbox, "stable")
             and endpoint_pods(stack, sandbox).get("keeper", set()) == ready_pods(stack, sandbox, "stable"),
             timeout=30)
    assert all(not (pods & kept_pods) for pods in endpoint_pods(stack, sandbox).values()), endpoint_pods(stack, sandbox)
    # when user traffic keeps flowing (another 300 requests served after the split settled on stable)
    assert_all_traffic_on_stable(stack, namespace, "keeper")
    canary_before = served(stack, namespace, "keeper", "canary")
    stable_before = served(stack, namespace, "keeper", "stable")
    wait_for("300 more user requests", lambda: served(stack, namespace, "keeper", "stable") >= stable_before + 300,
             timeout=60)
    # then not one reached the kept canary: at the simulator, and in Prometheus' scrape of its series
    assert served(stack, namespace, "keeper", "canary") == canary_before
    assert canary_requests(stack, namespace, "keeper", "canary", window="5s") == 0
    assert canary_deployment(stack, sandbox, "keeper-canary") is not None
    assert status(stack, namespace, "keeper").get("keptCanary") is not None  # still inside its window
    # when the operator is killed and a new process takes over inside the keep window
    operator.kill()
    again = stack.start_operator(namespaces=[namespace, f"{namespace}-*"])
    try:
        # then the kept canary is removed after its delay all the same (the deadline is in status)
        wait_for("the kept canary removed", lambda: status(stack, namespace, "keeper").get("keptCanary") is None
                 and canary_deployment(stack, sandbox, "keeper-canary") is None, timeout=90)
        removed = wait_for("the KeptCanaryRemoved Event",
                           lambda: events(stack, namespace, "keeper", "KeptCanaryRemoved"), timeout=30)
        assert removed and "keep window ended" in removed[0]["message"], removed
        st = status(stack, namespace, "keeper")
        assert st["phase"] == "RolledBack" and served(stack, namespace, "keeper", "canary") == canary_before
    finally:
        stack.kubectl("delete", "modeldeployments", "--all", "-n", namespace, "--timeout=30s", check=False)
        again.stop()
