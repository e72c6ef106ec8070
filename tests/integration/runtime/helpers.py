"""Manifests and waits shared by the operator tests."""

from __future__ import annotations

import json
import time
from typing import Any

import yaml

from tollgate_testkit.stack import Stack, wait_for


def md_manifest(name: str, version: str, **spec: Any) -> dict[str, Any]:
    """A ModelDeployment tuned for tests: 1s analysis ticks, small sample minimums, short deadline."""
    base: dict[str, Any] = {
        "model": {"name": name, "version": version, "uri": f"s3://models/{name}/{version}"},
        "runtime": {"image": "registry.example/model-server:1.0"},
        "replicas": 4,
        "rollout": {
            "steps": [{"weight": 25}, {"weight": 50}, {"weight": 100}],
            "analysis": {"interval": "1s", "window": "5s", "minSamples": 10, "failureLimit": 0,
                         "consecutiveErrorLimit": 3},
            "progressDeadline": "20s",
        },
        "slos": [{"name": "error-rate", "max": 0.05, "maxIncreaseOverBaseline": 0.03,
                  "onNoData": "hold", "maxNoDataDuration": "30s"}],
    }
    base.update(spec)
    return {"apiVersion": "tollgate.dev/v1alpha1", "kind": "ModelDeployment",
            "metadata": {"name": name}, "spec": base}


def apply(stack: Stack, namespace: str, manifest: dict[str, Any]) -> None:
    stack.kubectl("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(manifest))


def patch_spec(stack: Stack, namespace: str, name: str, spec: dict[str, Any]) -> None:
    stack.kubectl("patch", "modeldeployment", name, "-n", namespace, "--type", "merge",
                  "-p", json.dumps({"spec": spec}))


def status(stack: Stack, namespace: str, name: str) -> dict[str, Any]:
    st: dict[str, Any] = stack.md(namespace, name).get("status") or {}
    return st


def condition(st: dict[str, Any], type_: str) -> str | None:
    for c in st.get("conditions", []):
        if c["type"] == type_:
            return str(c["status"])
    return None


def wait_phase(stack: Stack, namespace: str, name: str, *phases: str, timeout: float = 90) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        st = status(stack, namespace, name)
        return st if st.get("phase") in phases else None

    try:
        result: dict[str, Any] = wait_for(f"{name} in phase {phases}", check, timeout=timeout, interval=0.25)
    except TimeoutError as exc:
        op_log = stack.operators[-1].log_tail() if stack.operators else ""
        raise AssertionError(f"{exc}\nstatus: {json.dumps(status(stack, namespace, name), indent=1)}"
                             f"\n{op_log}") from None
    return result


def watch_weights(stack: Stack, namespace: str, name: str, until: tuple[str, ...],
                  timeout: float = 120) -> tuple[list[int], dict[str, Any]]:
    """Canary weights seen (in order, repeats folded) until the phase is one of `until`."""
    seen: list[int] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = status(stack, namespace, name)
        w = int(st.get("canaryWeight") or 0)
        if not seen or seen[-1] != w:
            seen.append(w)
        if st.get("phase") in until:
            return seen, st
        time.sleep(0.1)
    raise AssertionError(f"{name} never reached {until}; weights seen {seen}; status {st}")
