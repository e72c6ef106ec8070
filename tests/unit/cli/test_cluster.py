"""Kubeconfig handling like kubectl's, and API errors mapped to exit codes (no cluster needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from tollgate.cli import cluster
from tollgate.cli.errors import CliError, Exit


def _kubeconfig(path: Path, namespace: str | None = None) -> Path:
    ctx = {"cluster": "c", "user": "dev"}
    if namespace:
        ctx["namespace"] = namespace
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "main",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443"}}],
        "users": [{"name": "dev", "user": {"token": "t"}}],
        "contexts": [{"name": "main", "context": ctx}, {"name": "other", "context": {"cluster": "c", "user": "dev"}}],
    }))
    return path


def test_namespace_comes_from_the_flag_then_the_context_then_default(tmp_path: Path) -> None:
    kc = str(_kubeconfig(tmp_path / "kc", namespace="ml-team"))
    s = cluster.connect(kc, None, None)
    assert (s.namespace, s.context, s.context_user) == ("ml-team", "main", "dev")
    assert cluster.connect(kc, None, "explicit").namespace == "explicit"
    assert cluster.connect(kc, "other", None).namespace == "default"


def test_kubeconfig_env_is_used_like_kubectl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kc = _kubeconfig(tmp_path / "kc", namespace="from-env")
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'missing'}:{kc}")
    assert cluster.connect(None, None, None).namespace == "from-env"


def test_missing_kubeconfig_or_context_is_unreachable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "nothing-here"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(CliError) as info:
        cluster.connect(None, None, None)
    assert info.value.code is Exit.UNREACHABLE and "no kubeconfig" in info.value.message
    kc = str(_kubeconfig(tmp_path / "kc"))
    with pytest.raises(CliError) as info:
        cluster.connect(kc, "nope", None)
    assert info.value.code is Exit.UNREACHABLE and "main, other" in info.value.message


@pytest.mark.parametrize(("status", "body", "code", "words"), [
    (404, '{"message": "modeldeployments.tollgate.dev \\"x\\" not found"}', Exit.NOT_FOUND, "not found"),
    (404, '{"message": "the server could not find the requested resource"}', Exit.NOT_FOUND, "not installed"),
    (403, '{"message": "User \\"bob\\" cannot get resource"}', Exit.FORBIDDEN, "forbidden"),
    (401, '{"message": "Unauthorized"}', Exit.FORBIDDEN, "unauthorized"),
    (422, '{"message": "spec.paused: Invalid value"}', Exit.ERROR, "Invalid value"),
])
def test_api_errors_map_to_exit_codes(status: int, body: str, code: Exit, words: str) -> None:
    exc = ApiException(status=status, reason="r")
    exc.body = body
    with pytest.raises(CliError) as info, cluster.api_errors('modeldeployment "x"'):
        raise exc
    assert info.value.code is code and words in info.value.message


def test_connection_refused_is_unreachable() -> None:
    with pytest.raises(CliError) as info, cluster.api_errors("x"):
        raise ConnectionRefusedError(111, "Connection refused")
    assert info.value.code is Exit.UNREACHABLE
