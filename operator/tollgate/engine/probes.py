"""spec.probes rendered into the model-server container (pure), with the slow-model defaults.

The startup probe's default budget is the progress deadline (spec.rollout.progressDeadline, else the
risk tier's): a model may load as long as the rollout waits for it, never longer (the kubelet would keep
restarting a pod the rollout has already given up on) and never shorter (a slow load is not killed
while the deadline still runs). At least STARTUP.failures checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tollgate.api.probes import Probe, Probes
from tollgate.api.spec import ModelDeploymentSpec
from tollgate.api.tiers import TIERS
from tollgate.engine.timeutil import parse_duration

Manifest = dict[str, Any]


@dataclass(frozen=True)
class ProbeDefaults:
    http: bool
    """True: GET readinessPath unless a path is given; False: TCP connect unless a path is given."""
    period: int
    timeout: int
    failures: int
    delay: int = 0


STARTUP = ProbeDefaults(http=True, period=10, timeout=5, failures=6)
"""failures: the least; the default is the progress deadline over the period (30 for 5 minutes)."""
READINESS = ProbeDefaults(http=True, period=5, timeout=2, failures=3)
LIVENESS = ProbeDefaults(http=False, period=15, timeout=5, failures=4)


def progress_deadline_seconds(spec: ModelDeploymentSpec) -> float:
    """spec.rollout.progressDeadline, else the risk tier's (engine.policy resolves the same)."""
    text = spec.rollout.progressDeadline or TIERS[spec.riskTier].progress_deadline
    try:
        return parse_duration(text)
    except ValueError:
        return parse_duration(TIERS[spec.riskTier].progress_deadline)


def startup_failures(spec: ModelDeploymentSpec) -> int:
    """The startup probe's failureThreshold: as given, else the progress deadline over the period."""
    p = spec.probes.startup
    if p.failureThreshold is not None:
        return p.failureThreshold
    period = p.periodSeconds or STARTUP.period
    return max(STARTUP.failures, int(progress_deadline_seconds(spec) // period))


def _probe(p: Probe, defaults: ProbeDefaults, readiness_path: str, failures: int | None = None) -> Manifest:
    path = p.path or (readiness_path if defaults.http else None)
    action: Manifest = {"httpGet": {"path": path, "port": "http"}} if path else {"tcpSocket": {"port": "http"}}
    out: Manifest = {
        **action,
        "periodSeconds": p.periodSeconds or defaults.period,
        "timeoutSeconds": p.timeoutSeconds or defaults.timeout,
        "failureThreshold": failures or p.failureThreshold or defaults.failures,
    }
    delay = p.initialDelaySeconds if p.initialDelaySeconds is not None else defaults.delay
    if delay:
        out["initialDelaySeconds"] = delay
    return out


def container_probes(spec: ModelDeploymentSpec, readiness_path: str) -> Manifest:
    """readinessProbe, and startupProbe and livenessProbe unless disabled."""
    probes: Probes = spec.probes
    out: Manifest = {"readinessProbe": _probe(probes.readiness, READINESS, readiness_path)}
    if probes.startup.enabled:
        out["startupProbe"] = _probe(probes.startup, STARTUP, readiness_path, startup_failures(spec))
    if probes.liveness.enabled:
        out["livenessProbe"] = _probe(probes.liveness, LIVENESS, readiness_path)
    return out
