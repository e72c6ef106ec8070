"""`kubectl tollgate` against the real control plane with the operator running.

Each test starts its own operator for its namespace (fixtures of tests/integration/runtime) and runs
the plugin as a separate process, exactly as a person or a CI job would.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

from integration.cli.plugin import data, env, ok, tollgate
from integration.cluster import Cluster
from integration.runtime.helpers import apply, md_manifest, patch_spec, status, wait_phase
from tollgate_testkit.stack import OperatorProcess, Stack, wait_for

GATED = {"steps": [{"weight": 25, "approval": "required"}, {"weight": 100}],
         "analysis": {"interval": "1s", "window": "5s", "minSamples": 10}, "progressDeadline": "30s"}


def _whoami(stack: Stack) -> str:
    out = json.loads(stack.kubectl("auth", "whoami", "-o", "json").stdout)
    return str(out["status"]["userInfo"]["username"])


def test_get_and_status_watch_follow_a_rollout_until_it_promotes(stack: Stack, namespace: str,
                                                                 operator: OperatorProcess) -> None:
    # given a stable ModelDeployment
    apply(stack, namespace, md_manifest("ranker", "1.0.0"))
    wait_phase(stack, namespace, "ranker", "Stable")
    kc = stack.kubeconfig
    # when listing, then it shows up with its phase and version, as a table and as data
    res = ok(tollgate(kc, "get", "-n", namespace))
    assert res.stdout.splitlines()[0].split()[:4] == ["NAME", "PHASE", "STABLE", "CANARY"]
    assert "ranker" in res.stdout and "Stable" in res.stdout and "1.0.0" in res.stdout
    rows = data(tollgate(kc, "get", "-A", "-o", "json"))
    assert {"namespace": namespace, "name": "ranker", "phase": "Stable", "stable": "1.0.0"}.items() <= next(
        r for r in rows if r["namespace"] == namespace).items()
    # when a new version is applied and `status --watch` follows it
    patch_spec(stack, namespace, "ranker", {"model": {"version": "1.1.0", "uri": "s3://models/ranker/1.1.0"}})
    res = tollgate(kc, "status", "ranker", "-n", namespace, "--watch", "--timeout", "150s")
    # then the watch ends by itself when the rollout completes, with exit 0
    assert res.returncode == 0, res.stdout + res.stderr
    assert "rollout ended Succeeded" in res.stderr
    lines = res.stdout.splitlines()
    assert any("Progressing 1.1.0 at 25%" in line for line in lines), res.stdout  # one line per change
    assert "Phase:         Succeeded" in res.stdout  # and the full view at the end
    assert "Stable:        1.1.0" in res.stdout
    # and history records the promotion
    history = data(tollgate(kc, "history", "ranker", "-n", namespace, "-o", "json"))
    assert history[0]["result"] == "Promoted" and history[0]["version"] == "1.1.0"
    view = yaml.safe_load(ok(tollgate(kc, "status", "ranker", "-n", namespace, "-o", "yaml")).stdout)
    assert view["phase"] == "Succeeded" and view["canary"] is None


def test_approve_unblocks_the_gate_and_records_who_approved(stack: Stack, namespace: str,
                                                            operator: OperatorProcess) -> None:
    kc = stack.kubeconfig
    # given a stable ModelDeployment whose first step needs approval
    apply(stack, namespace, md_manifest("fraud", "1.0.0", rollout=GATED))
    wait_phase(stack, namespace, "fraud", "Stable")
    # when approving while nothing waits, then it is refused and nothing is written
    res = tollgate(kc, "approve", "fraud", "-n", namespace)
    assert res.returncode == 5, res.stdout + res.stderr
    assert "nothing awaits approval" in res.stderr
    assert "tollgate.dev/approve" not in (stack.md(namespace, "fraud")["metadata"].get("annotations") or {})
    # given a new version waiting at the gate
    patch_spec(stack, namespace, "fraud", {"model": {"version": "2.0.0"}})
    wait_phase(stack, namespace, "fraud", "AwaitingApproval")
    shown = ok(tollgate(kc, "status", "fraud", "-n", namespace)).stdout
    assert "awaiting approval" in shown and "=>" in shown, shown
    # when a person approves
    res = ok(tollgate(kc, "approve", "fraud", "-n", namespace, "--wait", "--timeout", "30s"))
    # then the gate opens: the canary takes the step's weight
    st = wait_for("canary at 25%", lambda: (s := status(stack, namespace, "fraud")).get("canaryWeight") == 25 and s,
                  timeout=30)
    # and the annotation holds who and when, and status.approvedBy shows the same token
    token = stack.md(namespace, "fraud")["metadata"]["annotations"]["tollgate.dev/approve"]
    user = _whoami(stack)
    assert token.startswith(f"{user}@20"), token
    assert st["approvedBy"] == token
    assert f"approvedBy {token}" in res.stdout
    assert token in ok(tollgate(kc, "status", "fraud", "-n", namespace)).stdout
    # and the rollout then completes on its own
    res = tollgate(kc, "status", "fraud", "-n", namespace, "--watch", "--timeout", "120s")
    assert res.returncode == 0, res.stdout + res.stderr


def test_abort_is_watched_as_rolled_back_with_evidence_then_retry_and_full_promote(
        stack: Stack, namespace: str, operator: OperatorProcess) -> None:
    kc = stack.kubeconfig
    apply(stack, namespace, md_manifest("vision", "1.0.0", rollout=GATED))
    wait_phase(stack, namespace, "vision", "Stable")
    # given no canary: retry, abort and promote make no sense and write nothing
    for args in (["retry"], ["abort"], ["promote", "--full"]):
        res = tollgate(kc, *args, "vision", "-n", namespace)
        assert res.returncode == 5, (args, res.stderr)
    annotations = stack.md(namespace, "vision")["metadata"].get("annotations") or {}
    controls = ("tollgate.dev/approve", "tollgate.dev/promote", "tollgate.dev/abort", "tollgate.dev/retry")
    assert not [k for k in annotations if k in controls], annotations
    # and a bare promote is refused as a usage error (the operator only promotes fully)
    res = tollgate(kc, "promote", "vision", "-n", namespace)
    assert res.returncode == 2 and "--full" in res.stderr
    # given a canary waiting at its gate
    patch_spec(stack, namespace, "vision", {"model": {"version": "2.0.0"}})
    wait_phase(stack, namespace, "vision", "AwaitingApproval")
    # when it is aborted, then `status --watch` ends with the RolledBack code
    ok(tollgate(kc, "abort", "vision", "-n", namespace, "--wait"))
    res = tollgate(kc, "status", "vision", "-n", namespace, "--watch", "--timeout", "60s")
    assert res.returncode == 7, res.stdout + res.stderr
    # and the evidence record says who aborted which version
    record = data(tollgate(kc, "evidence", "vision", "-n", namespace, "-o", "json"))
    assert record["result"] == "Aborted" and record["canary"]["version"] == "2.0.0"
    assert "tollgate.dev/abort=" in record["message"]
    text = ok(tollgate(kc, "evidence", "vision", "-n", namespace)).stdout
    assert record["incident"] in text and "Aborted" in text
    history = data(tollgate(kc, "history", "vision", "-n", namespace, "-o", "json"))
    assert history[0]["result"] == "Aborted" and history[0]["incident"] == record["incident"]
    # when retried, then the same revision starts again from step 1
    ok(tollgate(kc, "retry", "vision", "-n", namespace, "--wait"))
    st = wait_phase(stack, namespace, "vision", "AwaitingApproval", "Progressing")
    assert st["canary"]["version"] == "2.0.0" and st["currentStep"] == 0
    # when promoted fully, then it skips the gate and becomes stable
    ok(tollgate(kc, "promote", "vision", "-n", namespace, "--full", "--wait"))
    res = tollgate(kc, "status", "vision", "-n", namespace, "--watch", "--timeout", "90s")
    assert res.returncode == 0, res.stdout + res.stderr
    assert status(stack, namespace, "vision")["stable"]["version"] == "2.0.0"


def test_pause_resume_kill_unkill_write_spec_only_and_warn_under_gitops(
        stack: Stack, namespace: str, operator: OperatorProcess) -> None:
    kc = stack.kubeconfig
    manifest = md_manifest("chat", "3.0.0", rollout=GATED, fallback={"version": "2.9.0"})
    manifest["metadata"]["labels"] = {"argocd.argoproj.io/instance": "ml-apps"}
    apply(stack, namespace, manifest)
    wait_phase(stack, namespace, "chat", "Stable")
    patch_spec(stack, namespace, "chat", {"model": {"version": "3.1.0"}})
    wait_phase(stack, namespace, "chat", "AwaitingApproval")
    # when paused, then spec.paused is set, the operator holds, and Argo CD is named as a risk
    res = ok(tollgate(kc, "pause", "chat", "-n", namespace))
    assert "Argo CD" in res.stderr and "reverted" in res.stderr
    assert stack.md(namespace, "chat")["spec"]["paused"] is True
    wait_phase(stack, namespace, "chat", "Paused", timeout=20)
    # and pausing again writes nothing
    assert "nothing written" in ok(tollgate(kc, "pause", "chat", "-n", namespace)).stdout
    # when resumed, then the gate waits again
    ok(tollgate(kc, "resume", "chat", "-n", namespace))
    wait_phase(stack, namespace, "chat", "AwaitingApproval", timeout=20)
    # when killed, then all traffic goes to the fallback and a watch ends with the kill-switch code
    ok(tollgate(kc, "kill", "chat", "-n", namespace))
    assert stack.md(namespace, "chat")["spec"]["killSwitch"] is True
    res = tollgate(kc, "status", "chat", "-n", namespace, "--watch", "--timeout", "60s")
    assert res.returncode == 9, res.stdout + res.stderr
    # when unkilled, then the kill switch is released
    ok(tollgate(kc, "unkill", "chat", "-n", namespace))
    wait_for("kill switch released", lambda: not status(stack, namespace, "chat").get("killSwitchActive"), timeout=30)
    # and the plugin never wrote status: its field manager owns only spec fields
    md = json.loads(stack.kubectl("get", "modeldeployment", "chat", "-n", namespace, "--show-managed-fields",
                                  "-o", "json").stdout)
    mine = [m for m in md["metadata"]["managedFields"] if m["manager"] == "kubectl-tollgate"]
    assert mine and all(m.get("subresource", "") == "" for m in mine), mine
    assert all("f:status" not in m.get("fieldsV1", {}) for m in mine)


def test_errors_have_distinct_exit_codes(cluster: Cluster, crds: list[str], namespace: str,
                                         tmp_path: Path) -> None:
    kc = str(cluster.kubeconfig)
    # not found
    res = tollgate(kc, "status", "nope", "-n", namespace)
    assert res.returncode == 3 and "not found" in res.stderr
    # nothing to list is not an error
    res = ok(tollgate(kc, "get", "-n", namespace))
    assert "No ModelDeployments" in res.stderr
    # a control with no status to act on; evidence with no incident
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(md_manifest("idle", "1.0.0")))
    assert tollgate(kc, "approve", "idle", "-n", namespace).returncode == 5
    res = tollgate(kc, "evidence", "idle", "-n", namespace)
    assert res.returncode == 3 and "no incident" in res.stderr
    # forbidden: a ServiceAccount with no RBAC
    cluster.kubectl("create", "serviceaccount", "nobody", "-n", namespace)
    token = cluster.kubectl("create", "token", "nobody", "-n", namespace).stdout.strip()
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    limited = {**admin, "users": [{"name": "nobody", "user": {"token": token}}],
               "contexts": [{"name": "nobody", "context": {"cluster": admin["clusters"][0]["name"],
                                                           "user": "nobody", "namespace": namespace}}],
               "current-context": "nobody"}
    (tmp_path / "nobody").write_text(yaml.safe_dump(limited))
    res = tollgate(tmp_path / "nobody", "get")  # namespace from the context
    assert res.returncode == 4 and "forbidden" in res.stderr and namespace in res.stderr, res.stderr
    # unreachable API server; unknown context
    broken = {**admin, "clusters": [{"name": admin["clusters"][0]["name"],
                                     "cluster": {**admin["clusters"][0]["cluster"], "server": "https://127.0.0.1:9"}}]}
    (tmp_path / "broken").write_text(yaml.safe_dump(broken))
    res = tollgate(tmp_path / "broken", "get", "-n", namespace, timeout=120)
    assert res.returncode == 6 and "cannot reach" in res.stderr, res.stderr
    res = tollgate(kc, "--context", "missing", "get")
    assert res.returncode == 6 and "missing" in res.stderr


def test_kubectl_finds_the_plugin_on_path(cluster: Cluster, crds: list[str], namespace: str) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(md_manifest("found", "1.0.0")))
    res = subprocess.run(["kubectl", "tollgate", "--kubeconfig", str(cluster.kubeconfig), "get", "-n", namespace],
                         text=True, capture_output=True, env=env(), timeout=60, check=False)
    assert res.returncode == 0, res.stderr
    assert "found" in res.stdout
    res = subprocess.run(["kubectl", "plugin", "list"], text=True, capture_output=True, env=env(), timeout=60,
                         check=False)
    assert "kubectl-tollgate" in res.stdout


def test_promote_step_advances_one_step_per_invocation_then_promotes(
        stack: Stack, namespace: str, operator: OperatorProcess) -> None:
    kc = stack.kubeconfig
    # given a canary whose steps hold for 10 minutes each: it would not advance on its own
    held = {"steps": [{"weight": 25, "pause": "10m"}, {"weight": 50, "pause": "10m"}, {"weight": 100, "pause": "10m"}],
            "analysis": {"interval": "1s", "window": "5s", "minSamples": 10}, "progressDeadline": "30s"}
    apply(stack, namespace, md_manifest("ocr", "1.0.0", rollout=held))
    wait_phase(stack, namespace, "ocr", "Stable")
    patch_spec(stack, namespace, "ocr", {"model": {"version": "2.0.0"}})
    wait_for("the canary at 25%", lambda: status(stack, namespace, "ocr").get("canaryWeight") == 25, timeout=60)
    # when promoted one step, then it is at 50% (not further) and the operator says who skipped the step
    res = ok(tollgate(kc, "promote", "ocr", "-n", namespace, "--step", "--wait"))
    assert "completes step 1/3 (25%)" in res.stdout
    st = status(stack, namespace, "ocr")
    assert st["canaryWeight"] == 50 and st["currentStep"] == 1, st["message"]
    stepped = [t for t in st["timeline"] if t["reason"] == "StepPromoted"]
    assert len(stepped) == 1 and "tollgate.dev/step=" in stepped[0]["message"]
    # when promoted one step again, twice: 100%, then the promotion, and it becomes stable
    ok(tollgate(kc, "promote", "ocr", "-n", namespace, "--step", "--wait"))
    assert status(stack, namespace, "ocr")["canaryWeight"] == 100
    ok(tollgate(kc, "promote", "ocr", "-n", namespace, "--step", "--wait"))
    res = tollgate(kc, "status", "ocr", "-n", namespace, "--watch", "--timeout", "90s")
    assert res.returncode == 0, res.stdout + res.stderr
    st = status(stack, namespace, "ocr")
    assert st["stable"]["version"] == "2.0.0" and st["history"][0]["result"] == "Promoted"
    # and with no canary, --step writes nothing (exit 5)
    assert tollgate(kc, "promote", "ocr", "-n", namespace, "--step").returncode == 5
