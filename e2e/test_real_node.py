"""Scenarios with real pods on the machine's real node (E2E_BACKEND=node, e2e/node_backend.py).

The operator runs from the image built from our Dockerfile, installed by charts/tollgate (two replicas,
Lease election). Model servers are MLServer pods serving scikit-learn models; a load generator sends
inference requests through the ModelDeployment's Service ClusterIP; Prometheus scrapes the pods it
discovers through the API server, and the rollout is judged on what the pods export.

Versions (models baked into the model-server image): 1.0.0 and 1.1.0 are healthy, 2.0.0 fails every
request inside the model (HTTP 500), 3.0.0 is packaged under another model name so its readiness probe
never passes.

Sandbox tests prove each protection can fail: with the operator scaled to zero (so it cannot put them
back), the protecting object is removed and the same request is shown to succeed.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

from e2e_world import World
from kind_backend import RELEASE, SYSTEM_NS
from tollgate.engine.sandbox import default_sandbox_namespace
from tollgate_testkit.stack import wait_for

pytestmark = pytest.mark.skipif(os.environ.get("E2E_BACKEND") != "node",
                                reason="real pods: run with E2E_BACKEND=node (make e2e-node)")

TRAFFIC_NS = "tollgate-traffic"
SLOS = [
    {"name": "error-rate", "max": 0.05, "maxIncreaseOverBaseline": 0.03, "maxNoDataDuration": "60s"},
    {"name": "latency-p99", "max": 5.0, "maxNoDataDuration": "60s"},
]
ANALYSIS = {"interval": "2s", "window": "10s", "minSamples": 20, "failureLimit": 0, "consecutiveErrorLimit": 5}
VERSIONS = {"1.0.0": "file:///models/iris-v1", "1.1.0": "file:///models/iris-v2",
            "2.0.0": "file:///models/iris-v3-faulty", "3.0.0": "file:///models/iris-misnamed",
            "4.0.0": "file:///models/iris-v4-shifted"}


def metrics_of(world: World) -> dict[str, Any]:
    """spec.metrics: MLServer's dialect on its metrics port (node_backend.METRICS)."""
    metrics: dict[str, Any] = getattr(world, "metrics", {"profile": "mlserver", "port": 8082})
    return metrics


def model(world: World, version: str = "1.0.0", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": {"name": "iris", "version": version, "uri": VERSIONS[version]},
        "runtime": world.runtime,
        "metrics": metrics_of(world),
        "replicas": 1,
        "rollout": {"steps": [{"weight": 50}, {"weight": 100}], "analysis": ANALYSIS, "progressDeadline": "120s"},
        "slos": SLOS,
        "sandbox": {"ingressFrom": [{"namespaceSelector": {"matchLabels": {
            "kubernetes.io/metadata.name": TRAFFIC_NS}}}]},
    }
    body.update(spec)
    return {"apiVersion": "tollgate.dev/v1alpha1", "kind": "ModelDeployment", "metadata": {"name": "iris"},
            "spec": body}


def sandbox(world: World) -> str:
    return default_sandbox_namespace(world.namespace, "iris")


@pytest.fixture
def serving(world: World) -> Iterator[Any]:
    """A stable iris 1.0.0 with real requests flowing to it through its Service."""
    w: Any = world
    world.apply(world.namespace, model(world))
    world.wait_phase(world.namespace, "iris", "Stable", timeout=240)
    load = w.start_load(world.namespace, "iris")
    wait_for("requests served by stable", lambda: w.served(world.namespace, "iris", "stable") > 0,
             timeout=120, interval=1)
    try:
        yield w
    finally:
        w.stop_load(load)


def reasons(st: dict[str, Any]) -> list[str]:
    return [t["reason"] for t in st.get("timeline") or []]


def test_healthy_version_promotes_on_real_traffic(serving: Any) -> None:
    w, ns = serving, serving.namespace
    # when a healthy version is released
    w.set_version(ns, "iris", "1.1.0")
    watch = w.watch(ns, "iris", ("Succeeded", "RolledBack"), timeout=400, min_weight_seen=50)
    # then it passed both steps on the requests its own pods served, and was promoted
    assert watch.final["phase"] == "Succeeded", (watch.final, w.diagnostics())
    assert [x for x in watch.weights if x > 0] == [50, 100], watch.weights
    assert w.served(ns, "iris", "canary", "1.1.0", window="5m") > 0
    # and the new version serves the traffic as stable, on real pods with containerd container IDs
    wait_for("1.1.0 serving as stable", lambda: w.served(ns, "iris", "stable", "1.1.0") > 0, timeout=120, interval=1)
    pods = w.pods(sandbox(w), "tollgate.dev/track=stable")
    assert pods and all(c["containerID"].startswith("containerd://")
                        for p in pods for c in p["status"]["containerStatuses"])
    # and `kubectl logs` of a model-server pod shows the requests it served
    logs = w.kubectl("logs", pods[0]["metadata"]["name"], "-n", sandbox(w)).stdout
    assert 'POST /v2/models/iris/infer HTTP/1.1" 200' in logs, logs[-2000:]


def test_faulty_version_is_rolled_back_on_its_own_served_errors(serving: Any) -> None:
    w, ns = serving, serving.namespace
    # when a version whose model fails on every request is released
    w.set_version(ns, "iris", "2.0.0")
    watch = w.watch(ns, "iris", ("RolledBack", "Succeeded"), timeout=400)
    # then it is rolled back on the error rate, measured from the 500s its pods answered
    st = watch.final
    assert st["phase"] == "RolledBack", (st, w.diagnostics())
    assert st["stable"]["version"] == "1.0.0" and st["canaryWeight"] == 0
    failed = [s["name"] for s in st["analysis"] if s["verdict"] == "Fail"]
    assert "error-rate" in failed, st["analysis"]
    rec = next(s for s in w.evidence(ns, st)["slos"] if s["name"] == "error-rate")
    assert rec["value"] > 0.05, rec
    assert w.served(ns, "iris", "canary", "2.0.0", code="500", window="5m") > 0
    # and the traffic is back on stable, answered with 200s
    wait_for("traffic back on stable", lambda: w.served(ns, "iris", "stable", "1.0.0") > 0
             and w.served(ns, "iris", "canary", window="5s", code="500") == 0, timeout=120, interval=1)


def test_version_failing_its_readiness_probe_is_rolled_back_at_the_deadline(world: World) -> None:
    w: Any = world
    ns = world.namespace
    world.apply(ns, model(world, rollout={"steps": [{"weight": 50}, {"weight": 100}], "analysis": ANALYSIS,
                                          "progressDeadline": "60s"}))
    world.wait_phase(ns, "iris", "Stable", timeout=240)
    # when a version whose model is packaged under another name (its readiness probe never passes) is released
    world.set_version(ns, "iris", "3.0.0")
    wait_for("the canary pod runs", lambda: any(
        (c.get("state") or {}).get("running") for p in w.pods(sandbox(world), "tollgate.dev/track=canary")
        for c in p["status"].get("containerStatuses", [])), timeout=120, interval=1)
    canary = w.pods(sandbox(world), "tollgate.dev/track=canary")[0]
    # then the pod runs but is never Ready, and the rollout is rolled back at the deadline
    st = world.watch(ns, "iris", ("RolledBack", "Succeeded"), timeout=300).final
    assert st["phase"] == "RolledBack", st
    assert st["stable"]["version"] == "1.0.0"
    assert "ProgressDeadlineExceeded" in reasons(st), st.get("timeline")
    ready = [c for c in canary["status"].get("conditions", []) if c["type"] == "Ready"]
    assert ready and ready[0]["status"] == "False"
    # and the kubelet reported why: the model server answers 404 on the model's readiness path. The
    # default startup probe (spec.probes.startup, engine/probes.py) checks that path first and the
    # readiness probe only runs once it has passed, so the failures are the startup probe's. The Events
    # outlive the canary pod, which the rollback deletes.
    events = w.kubectl("get", "events", "-n", sandbox(world), "--field-selector",
                       f"involvedObject.name={canary['metadata']['name']},reason=Unhealthy", "-o", "json").stdout
    messages = [e["message"] for e in json.loads(events)["items"]]
    assert any(m.startswith("Startup probe failed: HTTP probe failed with statuscode: 404") for m in messages), \
        messages


def test_kill_switch_sends_real_traffic_to_the_fallback(world: World) -> None:
    w: Any = world
    ns = world.namespace
    world.apply(ns, model(world, "1.1.0", fallback={"version": "1.0.0", "uri": VERSIONS["1.0.0"]}))
    world.wait_phase(ns, "iris", "Stable", timeout=240)
    load = w.start_load(ns, "iris")
    try:
        wait_for("stable serving", lambda: w.served(ns, "iris", "stable") > 0, timeout=120, interval=1)
        # when the kill switch is thrown
        world.patch_spec(ns, "iris", {"killSwitch": True})
        # then the requests are answered by the fallback version's pods only
        wait_for("only the fallback serves", lambda: w.served(ns, "iris", "fallback", "1.0.0", window="5s") > 0
                 and w.served(ns, "iris", "stable", window="5s") == 0, timeout=180, interval=1)
        # and when it is released, stable serves again
        world.patch_spec(ns, "iris", {"killSwitch": False})
        wait_for("stable serves again", lambda: w.served(ns, "iris", "stable", window="5s") > 0, timeout=180,
                 interval=1)
    finally:
        w.stop_load(load)


def test_deletion_removes_the_sandbox(world: World) -> None:
    ns = world.namespace
    world.apply(ns, model(world))
    world.wait_phase(ns, "iris", "Stable", timeout=240)
    world.kubectl("delete", "modeldeployment", "iris", "-n", ns, "--timeout=120s")
    wait_for("sandbox namespace gone", lambda: world.kubectl("get", "namespace", sandbox(world),
                                                             check=False).returncode != 0, timeout=180, interval=1)


def test_leader_failover_by_killing_the_leader_pod(world: World) -> None:
    w: Any = world
    ns = world.namespace
    # (a longer deadline: the replacement replica and the canary start together on a loaded machine)
    world.apply(ns, model(world, rollout={"steps": [{"weight": 50}, {"weight": 100}], "analysis": ANALYSIS,
                                          "progressDeadline": "300s"}))
    world.wait_phase(ns, "iris", "Stable", timeout=240)
    leader = w.leader_pod()
    # when the leader's pod is killed
    world.kill_operator()
    # then the other replica takes the Lease
    wait_for("a new leader", lambda: _holder(world) and not _holder(world).startswith(leader), timeout=120,
             interval=1)
    # and it acts: a new version is rolled out to the end
    load = w.start_load(ns, "iris")
    try:
        world.set_version(ns, "iris", "1.1.0")
        st = world.watch(ns, "iris", ("Succeeded", "RolledBack"), timeout=400).final
        assert st["phase"] == "Succeeded", (st, world.diagnostics())
    finally:
        w.stop_load(load)
        world.start_operator()


def _holder(world: World) -> str:
    lease = json.loads(world.kubectl("get", "lease", "tollgate-operator", "-n", SYSTEM_NS, "-o", "json").stdout)
    return str(lease["spec"].get("holderIdentity") or "")


# --- sandbox enforcement --------------------------------------------------------------------------------

CONNECT = """
import socket, sys
s = socket.socket(); s.settimeout(3)
try:
    s.connect((sys.argv[1], int(sys.argv[2]))); print("connected")
except Exception as exc:
    print("refused" if isinstance(exc, ConnectionRefusedError) else "blocked", type(exc).__name__)
"""


def _client(w: Any, namespace: str, name: str) -> str:
    """A long-running pod to connect from (kubectl exec), Ready before it is used.

    Not a one-shot pod per attempt: kube-router adds a pod's IP to the ipsets of the policies that admit
    it only after the API server publishes that IP, and a one-shot pod connects as soon as it starts,
    before that: it was refused even where the policy admits it (11 of 12 tries on the real node, while
    the same pod waiting 3 s, or a running pod, connected every time). Callers of a model are running
    services, so this is how they meet the policy."""
    w.kubectl("delete", "pod", name, "-n", namespace, "--ignore-not-found", "--wait=true")
    w.kubectl("apply", "-f", "-", stdin=json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace},
        "spec": {"terminationGracePeriodSeconds": 0, "containers": [{
            "name": "c", "image": "tollgate.local/loadgen:v1", "imagePullPolicy": "Never",
            "command": ["sleep", "3600"]}]}}))
    w.kubectl("wait", "--for=condition=Ready", f"pod/{name}", "-n", namespace, "--timeout=120s")
    return name


def _exec_connect(w: Any, namespace: str, pod: str, ip: str, port: int) -> str:
    res = w.kubectl("exec", pod, "-n", namespace, "--", "python3", "-c", CONNECT, ip, str(port), check=False)
    return str(res.stdout).strip() or str(res.stderr).strip()


def _eventually(check: Any, want: str | tuple[str, ...], attempts: int = 15) -> str:
    got = ""
    for _ in range(attempts):
        got = check()
        if got.startswith(want):
            return got
        time.sleep(1)
    return got


def _operator_stopped(world: World) -> Any:
    class Stopped:
        def __enter__(self) -> None:
            world.kubectl("scale", "deploy", RELEASE, "-n", SYSTEM_NS, "--replicas=0")
            wait_for("operator pods gone", lambda: not world.kubectl(
                "get", "pods", "-n", SYSTEM_NS, "-l", "app.kubernetes.io/name=tollgate", "-o", "name").stdout.strip(),
                timeout=120, interval=1)

        def __exit__(self, *exc: object) -> None:
            world.kubectl("scale", "deploy", RELEASE, "-n", SYSTEM_NS, "--replicas=2")
            world.kubectl("rollout", "status", "deploy", RELEASE, "-n", SYSTEM_NS, "--timeout=180s")

    return Stopped()


def test_sandbox_network_policies_are_enforced_and_can_fail(world: World) -> None:
    w: Any = world
    ns = world.namespace
    # given two HTTP servers outside the sandbox; the model may call only the first
    targets = f"{ns}-targets"
    world.kubectl("create", "namespace", targets)
    world.kubectl("label", "namespace", targets, "tollgate.dev/real-node=true")
    for name in ("allowed", "denied"):
        world.kubectl("apply", "-f", "-", stdin=json.dumps({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": targets},
            "spec": {"containers": [{"name": "web", "image": "tollgate.local/loadgen:v1", "imagePullPolicy": "Never",
                                     "command": ["python3", "-m", "http.server", "8080"],
                                     "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}]}}))
    for name in ("allowed", "denied"):
        world.kubectl("wait", "--for=condition=Ready", f"pod/{name}", "-n", targets, "--timeout=120s")
    ip = {n: json.loads(world.kubectl("get", "pod", n, "-n", targets, "-o", "json").stdout)["status"]["podIP"]
          for n in ("allowed", "denied")}
    # and a model whose sandbox admits callers from the traffic namespace and egress to the first server
    outsider = f"{ns}-outsider"
    world.kubectl("create", "namespace", outsider)
    world.kubectl("label", "namespace", outsider, "tollgate.dev/real-node=true")
    world.apply(ns, model(world, sandbox={
        "ingressFrom": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": TRAFFIC_NS}}}],
        "egressTo": [{"cidr": f"{ip['allowed']}/32", "ports": [8080]}]}))
    world.wait_phase(ns, "iris", "Stable", timeout=240)
    model_pod = w.pods(sandbox(world), "tollgate.dev/track=stable")[0]
    model_ip, model_name = model_pod["status"]["podIP"], model_pod["metadata"]["name"]
    # and a running pod in another namespace, then a running caller in the traffic namespace
    _client(w, outsider, "outsider")
    caller = _client(w, TRAFFIC_NS, f"caller-{ns}"[:63])
    try:
        # then the model port answers the caller listed in ingressFrom (kube-router syncs a new pod into
        # the policy's ipset shortly after its IP is published: the first attempts may still be refused)
        assert _eventually(lambda: _exec_connect(w, TRAFFIC_NS, caller, model_ip, 8080), "connected") \
            == "connected"
        # and refuses the pod in another namespace (default deny; it ran before the caller, so kube-router
        # knows it by now)
        assert _exec_connect(w, outsider, "outsider", model_ip, 8080).startswith(("refused", "blocked"))
        # and the model reaches the listed egress target, not the other one
        assert _eventually(lambda: _exec_connect(w, sandbox(world), model_name, ip["allowed"], 8080),
                           "connected") == "connected"
        assert _exec_connect(w, sandbox(world), model_name, ip["denied"], 8080).startswith(("refused", "blocked"))
        # and DNS works from the model pod
        res = w.kubectl("exec", model_name, "-n", sandbox(world), "--", "python3", "-c",
                        "import socket; print(socket.gethostbyname('kubernetes.default.svc.cluster.local'))")
        assert res.stdout.strip() == "10.0.0.1"
        # when the policies are removed (operator stopped, so it cannot restore them)
        with _operator_stopped(world):
            # first the one that admits callers: then the listed caller is refused too, so it was the
            # ingressFrom rule, not an open port, that let it in
            world.kubectl("delete", "networkpolicy", "allow-model-ingress", "-n", sandbox(world))
            assert _eventually(lambda: _exec_connect(w, TRAFFIC_NS, caller, model_ip, 8080),
                               ("refused", "blocked")).startswith(("refused", "blocked"))
            world.kubectl("delete", "networkpolicy", "--all", "-n", sandbox(world))
            # then the outsider connects and the model reaches the unlisted server: the policies were
            # what refused them
            assert _eventually(lambda: _exec_connect(w, outsider, "outsider", model_ip, 8080), "connected") \
                == "connected"
            assert _eventually(lambda: _exec_connect(w, sandbox(world), model_name, ip["denied"], 8080),
                               "connected") == "connected"
    finally:
        world.kubectl("delete", "pod", caller, "-n", TRAFFIC_NS, "--wait=false", check=False)
        world.kubectl("delete", "namespace", targets, outsider, "--wait=false", check=False)


def test_pod_security_restricted_and_no_service_account_token(world: World) -> None:
    w: Any = world
    ns = world.namespace
    world.apply(ns, model(world))
    world.wait_phase(ns, "iris", "Stable", timeout=240)
    sb = sandbox(world)
    # the model pods carry no ServiceAccount token
    model_pod = w.pods(sb, "tollgate.dev/track=stable")[0]
    assert model_pod["spec"]["automountServiceAccountToken"] is False
    assert not any(v.get("projected") for v in model_pod["spec"].get("volumes", []))
    res = w.kubectl("exec", model_pod["metadata"]["name"], "-n", sb, "--", "ls",
                    "/var/run/secrets/kubernetes.io/serviceaccount", check=False)
    assert res.returncode != 0 and "No such file or directory" in res.stderr, res
    # and a pod that violates Pod Security `restricted` is refused in the sandbox namespace
    rogue = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "rogue", "namespace": sb},
             "spec": {"restartPolicy": "Never", "containers": [{
                 "name": "c", "image": "tollgate.local/loadgen:v1", "imagePullPolicy": "Never",
                 "command": ["python3", "-c", "print('ran')"], "securityContext": {"privileged": True}}]}}
    phase, out = w.run_to_end(rogue)
    assert phase == "Refused" and "violates PodSecurity \"restricted" in out, out
    # when the namespace's enforce label is relaxed (operator stopped, so it cannot restore it)
    with _operator_stopped(world):
        world.kubectl("label", "namespace", sb, "pod-security.kubernetes.io/enforce=privileged", "--overwrite")
        # then the same pod is admitted and runs: the label was what refused it
        phase, out = w.run_to_end(rogue)
        assert phase == "Succeeded" and out.strip() == "ran", (phase, out)
        world.kubectl("delete", "pod", "rogue", "-n", sb, "--wait=false")
