"""Manifests and waits shared by the operator tests."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import yaml

from tollgate_testkit.controlplane import user_kubeconfig
from tollgate_testkit.stack import OperatorProcess, Stack, wait_for


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


def stepped(st: dict[str, Any]) -> list[int]:
    """The canary weight each step of the rollout set, in order, from status.timeline.

    The timeline is the operator's own record of every decision of the current (or last) rollout, written
    with the decision itself, so a step that came and went between two reads of status is in it: a poll of
    status.canaryWeight can miss it on a loaded machine. A repeated or skipped step shows here as a repeated
    or missing weight. (An entry holds the weight after its decision; a decision enters no step past one that
    still needs its analysis or pause, so with analysed steps each StepAdvanced holds the weight it set.)"""
    return [int(e.get("weight") or 0) for e in st.get("timeline") or [] if e["reason"] == "StepAdvanced"]


def reasons(st: dict[str, Any], *only: str) -> list[str]:
    """The reasons of status.timeline in order (those in `only`, when given)."""
    return [e["reason"] for e in st.get("timeline") or [] if not only or e["reason"] in only]


@contextmanager
def two_replicas(stack: Stack, kubeconfig: str, namespace: str,
                 env: dict[str, str]) -> Iterator[dict[str, OperatorProcess]]:
    """Two operator replicas with leader election on Leases in `namespace`, as users op-a and op-b (client
    certificates from the control plane's CA, so the audit log says which process sent each request).
    A replica a test froze with SIGSTOP is woken before it is stopped."""
    ops: dict[str, OperatorProcess] = {}
    try:
        for user in ("op-a", "op-b"):
            ops[user] = OperatorProcess(str(user_kubeconfig(kubeconfig, user)), prometheus_url=stack.prometheus.url,
                                        namespaces=[namespace, f"{namespace}-*"], leader_election=True,
                                        lease_namespace=namespace, env=dict(env)).start()
        yield ops
    finally:
        for op in ops.values():
            if op.proc is not None and op.proc.poll() is None:
                os.killpg(op.proc.pid, signal.SIGCONT)
            op.stop()
