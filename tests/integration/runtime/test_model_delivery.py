"""Model delivery on the real control plane, from a real S3 server (issue 19).

KWOK runs no container, so no init container runs on its nodes. The proof is split where the work is
split, and every part is the real one:
- the operator renders the storage initializer into the tracks' pods and copies the credentials Secret
  from the ModelDeployment's namespace into its sandbox (the real operator on the real API server);
- the real initializer entry point (tollgate.initializer with kserve-storage, in its own environment)
  runs here with exactly the environment the pod template gives it: the template's env and the keys of the
  sandbox's copy of the Secret, read back from the API server. It fetches from versitygw, a real S3 server
  that checks the request signatures, and verifies the digest;
- for a wrong digest, the termination message that run wrote is put into the canary pods' status as the
  kubelet reports an init container's exit, and the operator rolls the canary back from it: status and
  evidence carry the expected and the actual digest, and the canary never takes traffic.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from integration.runtime.helpers import apply, md_manifest, status
from tollgate_testkit.controlplane import NEVER_READY_IMAGE
from tollgate_testkit.s3server import S3Server, initializer_venv
from tollgate_testkit.stack import OperatorProcess, Stack, wait_for

REPO = Path(__file__).resolve().parents[3]
SECRET = "model-store-credentials"
ROLLOUT = {"steps": [{"weight": 25}, {"weight": 50}, {"weight": 100}], "progressDeadline": "10m",
           "analysis": {"interval": "1s", "window": "5s", "minSamples": 10}}


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = S3Server(tmp_path_factory.mktemp("s3")).start()
    try:
        yield server
    finally:
        server.stop()


def _digest(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


def _json(stack: Stack, *args: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(stack.kubectl("get", *args, "-o", "json").stdout)
    return out


def _initializer(stack: Stack, sandbox: str, track: str, workdir: Path) -> tuple[int, Path, str]:
    """Run the real initializer with the environment the track's pod template gives it; returns its exit
    code, the directory it fetched into and its termination message."""
    template = _json(stack, "deployment", f"delivery-{track}", "-n", sandbox)["spec"]["template"]["spec"]
    (init,) = template["initContainers"]
    env = {e["name"]: e["value"] for e in init["env"]}
    for source in init.get("envFrom", []):  # as the kubelet does: every key of the Secret in the pod's namespace
        secret = _json(stack, "secret", source["secretRef"]["name"], "-n", sandbox)
        env.update({k: base64.b64decode(v).decode() for k, v in secret["data"].items()})
    out = workdir / track / "model"  # the pod's mountPath does not exist here; the same fetch, elsewhere
    termination = workdir / track / "termination-log"
    out.parent.mkdir(parents=True, exist_ok=True)
    env.update(MODEL_DIR=str(out), TERMINATION_LOG=str(termination), PYTHONPATH=str(REPO / "operator"),
               PATH=os.environ["PATH"])
    run = subprocess.run([str(initializer_venv() / "bin" / "python"), "-m", "tollgate.initializer"], env=env,
                         capture_output=True, text=True, timeout=120, check=False)
    message = termination.read_text() if termination.exists() else ""
    return run.returncode, out, message


def test_a_model_comes_from_s3_with_secret_credentials_and_a_wrong_digest_never_serves(
        stack: Stack, namespace: str, operator: OperatorProcess, s3: S3Server, tmp_path: Path) -> None:
    # given two model versions in a real S3 server, and its credentials in a Secret of the team's namespace
    v1, v2 = b"weights of 1.0.0\n" * 512, b"weights of 1.1.0, not the ones signed off\n" * 512
    s3.put_object("models", f"{namespace}/1.0.0/model.joblib", v1)
    s3.put_object("models", f"{namespace}/1.1.0/model.joblib", v2)
    stack.kubectl("create", "secret", "generic", SECRET, "-n", namespace,
                  *[f"--from-literal={k}={v}" for k, v in s3.env().items()])
    delivery = {"credentials": {"secretName": SECRET}, "cache": {"sizeLimit": "1Gi"}}

    # when 1.0.0 is deployed with its digest
    apply(stack, namespace, md_manifest(
        "delivery", "1.0.0", rollout=ROLLOUT, modelDelivery=delivery,
        model={"name": "delivery", "version": "1.0.0", "uri": f"s3://models/{namespace}/1.0.0", "digest": _digest(v1)}))
    wait_for("1.0.0 Stable", lambda: status(stack, namespace, "delivery").get("phase") == "Stable", timeout=90)
    sandbox = status(stack, namespace, "delivery")["sandboxNamespace"]

    # then the sandbox holds a copy of the Secret (Tollgate's copy, owned by this ModelDeployment) ...
    copy = _json(stack, "secret", "tollgate-model-credentials", "-n", sandbox)
    assert {k: base64.b64decode(v).decode() for k, v in copy["data"].items()} == s3.env()
    assert copy["metadata"]["annotations"]["tollgate.dev/copy-of"] == f"{namespace}/{SECRET}"
    # ... no Secret value is in the ModelDeployment's status
    assert s3.secret_key not in json.dumps(stack.md(namespace, "delivery"))
    # and the stable pods' initializer, run with that environment, fetches the model's bytes and verifies them
    code, fetched, message = _initializer(stack, sandbox, "stable", tmp_path)
    assert code == 0, message
    assert (fetched / "model.joblib").read_bytes() == v1 and message == ""

    # and the S3 server does check the credentials: without the Secret's keys the same fetch is refused
    template = _json(stack, "deployment", "delivery-stable", "-n", sandbox)["spec"]["template"]["spec"]
    env = {e["name"]: e["value"] for e in template["initContainers"][0]["env"]}
    anonymous = subprocess.run(
        [str(initializer_venv() / "bin" / "python"), "-m", "tollgate.initializer"], capture_output=True, text=True,
        env={**env, "MODEL_DIR": str(tmp_path / "anon"), "TERMINATION_LOG": str(tmp_path / "anon-log"),
             "AWS_ENDPOINT_URL": s3.endpoint, "AWS_ACCESS_KEY_ID": "wrong", "AWS_SECRET_ACCESS_KEY": "wrong",
             "AWS_DEFAULT_REGION": "us-east-1", "PYTHONPATH": str(REPO / "operator"), "PATH": os.environ["PATH"]},
        timeout=120, check=False)
    assert anonymous.returncode == 1
    assert json.loads((tmp_path / "anon-log").read_text())["reason"] == "ModelFetchFailed"

    # when 1.1.0 is rolled out with the digest of the bytes the team signed off, but the store holds others
    # (its pods run an image KWOK leaves Pending, as a kubelet leaves a pod whose init container has not exited)
    expected = _digest(b"weights of 1.1.0 as signed off\n")
    apply(stack, namespace, md_manifest(
        "delivery", "1.1.0", rollout=ROLLOUT, modelDelivery=delivery, runtime={"image": NEVER_READY_IMAGE},
        model={"name": "delivery", "version": "1.1.0", "uri": f"s3://models/{namespace}/1.1.0", "digest": expected}))

    def canary_pods() -> list[dict[str, Any]] | None:
        pods = _json(stack, "pods", "-n", sandbox, "-l", "tollgate.dev/track=canary")["items"]
        return pods or None

    pods = wait_for("canary pods", canary_pods, timeout=60)
    # the canary's initializer fetches 1.1.0 from S3, refuses it, and exits non-zero with both digests
    code, fetched, message = _initializer(stack, sandbox, "canary", tmp_path)
    assert code == 2
    assert json.loads(message) == {"reason": "ModelDigestMismatch", "expected": expected, "actual": _digest(v2),
                                   "uri": f"s3://models/{namespace}/1.1.0"}
    assert not any(fetched.iterdir())  # nothing of the refused model is left for the server
    # and the kubelet reports that exit in the pods' status
    for pod in pods:
        report = {"status": {"phase": "Pending", "initContainerStatuses": [{
            "name": "storage-initializer", "image": pod["spec"]["initContainers"][0]["image"], "imageID": "",
            "ready": False, "restartCount": 0,
            "state": {"terminated": {"exitCode": code, "reason": "Error", "message": message}}}]}}
        stack.kubectl("patch", "pod", pod["metadata"]["name"], "-n", sandbox, "--subresource=status",
                      "--type=merge", "-p", json.dumps(report))

    # then the canary is rolled back from that report, far inside its 10-minute deadline
    def rolled_back() -> dict[str, Any] | None:
        st = status(stack, namespace, "delivery")
        return st if st.get("phase") in ("RollingBack", "RolledBack") else None

    st = wait_for("1.1.0 rolled back", rolled_back, timeout=90)
    entry = st["history"][0]
    assert entry["version"] == "1.1.0" and entry["result"] == "RolledBack"
    # with the expected and the actual digest in status ...
    assert "ModelDigestMismatch" in entry["reason"]
    assert expected in entry["reason"] and _digest(v2) in entry["reason"]
    assert st["stable"]["version"] == "1.0.0"
    # ... and in the evidence, where the canary never had traffic
    evidence_cm = _json(stack, "configmap", entry["incident"], "-n", namespace)
    evidence = json.loads(next(iter(evidence_cm["data"].values())))
    assert evidence["modelDigest"] == {"expected": expected, "actual": _digest(v2),
                                       "uri": f"s3://models/{namespace}/1.1.0"}
    assert evidence["weight"] == 0
    assert all(t.get("reason") != "StepAdvanced" for t in evidence["timeline"])
