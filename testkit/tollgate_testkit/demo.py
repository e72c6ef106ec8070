"""`make demo`: Tollgate in a few minutes on a fresh machine, no cluster or Docker needed.

It starts the local control plane (built once, cached), Prometheus, the traffic simulator and the
operator; deploys a model; rolls out a healthy version that promotes step by step and bakes; then a
faulty version (15% errors) that is rolled back on its SLO; then a healthy version that regresses at
full traffic inside its bake window and is rolled back to the last known good one, and prints the
evidence record. Everything it
started is stopped on exit, also on Ctrl-C. DEMO_UNATTENDED=1 prints plain lines instead of a live
screen (for CI and logs).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any, Protocol

import yaml

from tollgate_testkit.stack import Stack, running_stack

NAMESPACE = "ml-demo"
NAME = "fraud-scorer"
TERMINAL_PHASES = ("Succeeded", "Stable", "RolledBack", "Stalled")
ROLLOUT_TIMEOUT = 240.0


def manifest(version: str) -> dict[str, Any]:
    return {
        "apiVersion": "tollgate.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": NAME, "namespace": NAMESPACE},
        "spec": {
            "model": {"name": NAME, "version": version, "uri": f"s3://models/{NAME}/{version}"},
            "runtime": {"image": "registry.example/model-server:1.8.2", "port": 8080},
            "replicas": 4,
            "riskTier": "high",
            "sandbox": {"ingressFrom": [{"namespaceSelector": {"matchLabels": {"team": "payments"}}}]},
            "rollout": {
                "steps": [{"weight": 10}, {"weight": 25}, {"weight": 50}, {"weight": 100}],
                "analysis": {"interval": "2s", "window": "10s", "minSamples": 20, "failureLimit": 0,
                             "consecutiveErrorLimit": 3},
                "progressDeadline": "60s",
                # After promotion the new stable stays under analysis this long (tier high: 10m).
                "bakeWindow": "40s",
            },
            "slos": [
                {"name": "error-rate", "max": 0.05, "maxIncreaseOverBaseline": 0.02},
                {"name": "latency-p99", "max": 0.5},
                {"name": "score-shift", "max": 0.1},
            ],
            "fallback": {"version": "0.9.0"},
        },
    }


# --- rendering ------------------------------------------------------------------------------------


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def render(md: dict[str, Any]) -> str:
    spec, st = md.get("spec", {}), md.get("status", {}) or {}
    steps = spec.get("rollout", {}).get("steps", [])
    weight = int(st.get("canaryWeight") or 0)
    bar = "#" * (weight // 4) + "." * (25 - weight // 4)
    stable = (st.get("stable") or {}).get("version", "-")
    canary = (st.get("canary") or {}).get("version", "-")
    lines = [
        f"ModelDeployment {md['metadata']['namespace']}/{md['metadata']['name']}   phase: {st.get('phase', '-')}",
        f"  stable {stable}   canary {canary}   weight [{bar}] {weight:3d}%",
        f"  {st.get('message', '')}",
        "  steps:",
    ]
    for i, step in enumerate(steps):
        mark = ">" if st.get("canary") and i == st.get("currentStep") else " "
        lines.append(f"   {mark} {i + 1}. weight {step['weight']:3d}%")
    lines.append("  SLOs (canary vs stable over the same window):")
    lines.append(f"    {'name':<14}{'canary':>10}{'stable':>10}  {'verdict':<13}{'samples':>8}  threshold")
    for a in st.get("analysis", []):
        lines.append(f"    {a['name']:<14}{_fmt(a.get('value')):>10}{_fmt(a.get('baseline')):>10}  "
                     f"{a.get('verdict') or '-':<13}{a.get('samples', 0):>8}  {a.get('threshold') or ''}")
    lines.append("  recent decisions:")
    for t in (st.get("timeline") or [])[-5:]:
        lines.append(f"    {t.get('at', '')[11:19]} {t.get('reason', ''):<18} {t.get('message', '')[:90]}")
    return "\n".join(lines)


class View:
    """A live screen on a terminal; one line per change otherwise."""

    def __init__(self, unattended: bool):
        self.unattended = unattended
        self._last = ""

    def show(self, md: dict[str, Any]) -> None:
        if self.unattended:
            st = md.get("status") or {}
            line = (f"phase={st.get('phase')} step={st.get('currentStep')} weight={st.get('canaryWeight')} "
                    f"stable={(st.get('stable') or {}).get('version')} "
                    f"canary={(st.get('canary') or {}).get('version')} "
                    + " ".join(f"{a['name']}={_fmt(a.get('value'))}({a.get('verdict')})"
                               for a in st.get("analysis", [])))
            if line != self._last:
                print(f"  {time.strftime('%H:%M:%S')} {line}", flush=True)
                self._last = line
            return
        sys.stdout.write("\033[H\033[J" + render(md) + "\n")
        sys.stdout.flush()


class Watched(Protocol):
    def md(self, namespace: str, name: str) -> dict[str, Any]: ...


def follow(stack: Watched, view: View, done: Callable[[dict[str, Any]], bool], *, namespace: str = NAMESPACE,
           name: str = NAME, timeout: float = ROLLOUT_TIMEOUT) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        md = stack.md(namespace, name)
        view.show(md)
        if done(md):
            return md
        time.sleep(0.5)
    raise TimeoutError(f"the rollout did not finish within {timeout:.0f}s")


def apply(stack: Stack, version: str) -> None:
    stack.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(manifest(version)))


def settled_on(version: str) -> Callable[[dict[str, Any]], bool]:
    def check(md: dict[str, Any]) -> bool:
        st = md.get("status") or {}
        if st.get("phase") in ("RolledBack", "Stalled"):
            return True
        return st.get("phase") in ("Succeeded", "Stable") and (st.get("stable") or {}).get("version") == version \
            and not st.get("canary")
    return check


def baking_or_settled(version: str) -> Callable[[dict[str, Any]], bool]:
    """The version was promoted into its bake window (or the rollout ended some other way)."""
    settled = settled_on(version)

    def check(md: dict[str, Any]) -> bool:
        st = md.get("status") or {}
        return settled(md) or (st.get("phase") == "Baking" and (st.get("bake") or {}).get("version") == version)
    return check


def summary(stack: Any, namespace: str, st: dict[str, Any], say: Callable[[str], None]) -> str | None:
    """Print the history and the evidence record of the last incident; its name, if any."""
    say("\nSummary")
    for h in st.get("history", []):
        say(f"  {h['at']}  {h['version']:<8} {h['result']:<11} {h.get('reason', '')[:80]}")
    incident: str | None = st.get("lastIncident")
    if incident:
        cm = json.loads(stack.kubectl("get", "configmap", incident, "-n", namespace, "-o", "json").stdout)
        evidence = json.loads(cm["data"]["evidence.json"])
        say(f"\nEvidence record: kubectl -n {namespace} get configmap {incident} -o yaml")
        for key in ("result", "reason", "message"):
            if key in evidence:
                say(f"  {key}: {evidence[key]}")
        for slo in evidence.get("slos", evidence.get("analysis", []))[:5]:
            say(f"  {json.dumps(slo, sort_keys=True)[:200]}")
    return incident


def main() -> int:
    unattended = os.environ.get("DEMO_UNATTENDED") == "1" or not sys.stdout.isatty()
    if os.environ.get("REAL_NODE") == "1":
        from tollgate_testkit import demo_node

        return demo_node.main(View(unattended))
    view = View(unattended)
    say = print
    t0 = time.monotonic()
    say("Tollgate demo: starting the local control plane, Prometheus, the traffic simulator and the operator...")
    try:
        with running_stack(scrape_interval=1.0, rate=100.0) as stack:
            say(f"  ready in {time.monotonic() - t0:.0f}s (kubeconfig: {stack.kubeconfig})")
            stack.kubectl("create", "namespace", NAMESPACE)
            stack.set_fault("1.2.0", error_rate=0.15)

            say("\n1) First deployment of 1.0.0: straight to stable, no canary; it bakes 40s on its absolute "
                "limits (a failure would send traffic to fallback 0.9.0).")
            apply(stack, "1.0.0")
            follow(stack, view, settled_on("1.0.0"))

            say("\n2) Rolling out 1.1.0 (healthy): weights 10 -> 25 -> 50 -> 100, each gated on the SLOs, then "
                "40s in its bake window.")
            apply(stack, "1.1.0")
            md = follow(stack, view, settled_on("1.1.0"))
            ok = (md["status"].get("stable") or {}).get("version") == "1.1.0"
            say(f"   -> {'promoted' if ok else 'NOT promoted'}: stable is now "
                f"{(md['status'].get('stable') or {}).get('version')}")

            say("\n3) Rolling out 1.2.0, which fails 15% of requests: Tollgate must roll it back.")
            apply(stack, "1.2.0")
            md = follow(stack, view, settled_on("1.2.0"))
            st = md["status"]
            rolled_back = st.get("phase") == "RolledBack" and (st.get("stable") or {}).get("version") == "1.1.0"
            say(f"   -> phase {st.get('phase')}, canary weight {st.get('canaryWeight')}%, "
                f"stable still {(st.get('stable') or {}).get('version')}")

            say("\n4) Rolling out 1.3.0 (healthy): promoted into a 40s bake window; then it starts failing 30% of "
                "requests at full traffic. Inside the window Tollgate must roll it back to 1.1.0.")
            apply(stack, "1.3.0")
            md = follow(stack, view, baking_or_settled("1.3.0"))
            baked = (md["status"].get("bake") or {}).get("version") == "1.3.0"
            say(f"   -> phase {md['status'].get('phase')}, bake window until "
                f"{(md['status'].get('bake') or {}).get('until')}; injecting the fault now")
            stack.set_fault("1.3.0", error_rate=0.3)
            md = follow(stack, view, settled_on("1.3.0"))
            st = md["status"]
            bake_rolled_back = baked and st.get("phase") == "RolledBack" \
                and (st.get("stable") or {}).get("version") == "1.1.0"
            say(f"   -> phase {st.get('phase')}, stable back on {(st.get('stable') or {}).get('version')}, "
                f"lastKnownGood {(st.get('lastKnownGood') or {}).get('version')}")

            incident = summary(stack, NAMESPACE, st, say)
            success = ok and rolled_back and bake_rolled_back and bool(incident)
            say(f"\nDemo {'complete' if success else 'FAILED'} in {time.monotonic() - t0:.0f}s; cleaning up.")
            return 0 if success else 1
    except KeyboardInterrupt:
        say("\ninterrupted; everything started was stopped.")
        return 130


if __name__ == "__main__":
    sys.exit(main())
