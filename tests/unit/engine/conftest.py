"""Builders and a tiny simulated cluster for engine tests.

`Sim` plays the runtime: it feeds decide() with observations derived from the Deployments the previous
decision applied (optionally not Ready), advances a fake clock, and keeps the status, exactly as the
runtime would persist it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tollgate.api import resource
from tollgate.api.routers import GatewayDialect
from tollgate.api.spec import ModelDeploymentSpec
from tollgate.api.status import ModelDeploymentStatus
from tollgate.engine.actions import ApplyObjects, Context, Decision, DeleteObjects
from tollgate.engine.dataplane import DATAPLANE_KINDS
from tollgate.engine.observations import (
    Controls,
    MetricValue,
    Observations,
    RoutingObservation,
    SLOObservation,
    TrackObservation,
)
from tollgate.engine.rollout import decide
from tollgate.engine.serving import route_routing, service_routing
from tollgate.engine.status_size import compact, expand
from tollgate.engine.timeutil import parse_time

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
CTX = Context(name="fraud-scorer", namespace="ml-team", uid="6f1c-uid", generation=1)


def make_spec(**overrides: Any) -> ModelDeploymentSpec:
    """A valid spec; keyword overrides replace top-level fields (dicts, as in YAML)."""
    base: dict[str, Any] = {
        "model": {"name": "fraud-scorer", "version": "1.0.0", "uri": "s3://models/fraud/1.0.0"},
        "runtime": {"image": "registry.example/server:1", "port": 8080},
        "replicas": 4,
        "rollout": {
            "steps": [{"weight": 10}, {"weight": 50}, {"weight": 100}],
            "analysis": {"interval": "30s", "failureLimit": 1, "consecutiveErrorLimit": 2, "minSamples": 100},
            "progressDeadline": "5m",
        },
        "slos": [{"name": "error-rate", "max": 0.01, "maxIncreaseOverBaseline": 0.005,
                  "onNoData": "hold", "maxNoDataDuration": "2m"}],
    }
    base.update(overrides)
    return ModelDeploymentSpec.model_validate(base)


def with_version(spec: ModelDeploymentSpec, version: str, **extra: Any) -> ModelDeploymentSpec:
    data = spec.model_dump(mode="json", exclude_none=True)
    data["model"]["version"] = version
    data["model"]["uri"] = f"s3://models/fraud/{version}"
    data.update(extra)
    return ModelDeploymentSpec.model_validate(data)


def updated(spec: ModelDeploymentSpec, **fields: Any) -> ModelDeploymentSpec:
    data = spec.model_dump(mode="json", exclude_none=True)
    data.update(fields)
    return ModelDeploymentSpec.model_validate(data)


def slo_obs(value: float | None = 0.001, samples: int = 1000, baseline: float | None = 0.001,
            error: str | None = None, name: str = "error-rate") -> SLOObservation:
    return SLOObservation(
        name=name,
        canary=MetricValue(value, samples),
        stable=MetricValue(baseline, 5000),
        error=error,
        query=f'tollgate:{name}{{track="canary"}}[1m]',
        window="1m",
    )


GOOD = (slo_obs(),)
BAD = (slo_obs(value=0.2),)


def deployments_of(decision: Decision) -> dict[str, tuple[str, int | None]]:
    """track -> (revision, replicas) of the Deployments a decision applies (None: without replicas, an
    autoscaler's)."""
    out: dict[str, tuple[str, int | None]] = {}
    for action in decision.of_type(ApplyObjects):
        for obj in action.objects:
            if obj["kind"] == "Deployment":
                labels = obj["metadata"]["labels"]
                out[labels[resource.LABEL_TRACK]] = (labels[resource.LABEL_REVISION], obj["spec"].get("replicas"))
    return out


def objects_of(decision: Decision, kind: str) -> list[Mapping[str, Any]]:
    return [o for a in decision.of_type(ApplyObjects) for o in a.objects if o["kind"] == kind]


def persisted(status: ModelDeploymentStatus) -> ModelDeploymentStatus:
    """Status as the next decision reads it: written the way the runtime stores it (each revision's
    model and runtime once, engine.status_size.compact) and read back through expand."""
    return ModelDeploymentStatus.model_validate(expand(compact(status.model_dump(mode="json"))))


@dataclass
class Sim:
    """A fake runtime + cluster around decide()."""

    spec: ModelDeploymentSpec
    ctx: Context = CTX
    now: datetime = T0
    status: ModelDeploymentStatus = field(default_factory=ModelDeploymentStatus)
    tracks: dict[str, tuple[str, int]] = field(default_factory=dict)
    """What runs: track -> (revision, replicas), from applied Deployments."""
    not_ready: set[str] = field(default_factory=set)
    """Tracks whose pods never become Ready."""
    controls: Controls = field(default_factory=Controls)
    decisions: list[Decision] = field(default_factory=list)
    scrape_interval: float | None = None
    """The operator's --scrape-interval (None: looks every analysis interval)."""
    dialect: GatewayDialect = GatewayDialect.STANDARD
    """The operator's --gateway-dialect."""
    routing: RoutingObservation | None = None
    """Where the router sends requests, read back from the Service or HTTPRoute the last decision applied
    (so a decision observes the switch the previous one made)."""
    autoscaled: int = 1
    """What an autoscaler set a Deployment applied without replicas to (the HPA's count of the stable track)."""
    autoscalers: tuple[str, ...] = ()
    """HPAs that exist (those the decisions applied, minus those they deleted)."""
    dataplane_objects: tuple[tuple[str, str], ...] = ()
    """The traefik dialect's objects that exist, (kind, name): applied, minus deleted."""

    def observations(self, slos: tuple[SLOObservation, ...] | None) -> Observations:
        def track(name: str) -> TrackObservation:
            if name not in self.tracks:
                return TrackObservation(revision=None)
            revision, replicas = self.tracks[name]
            ready = 0 if name in self.not_ready else replicas
            return TrackObservation(revision=revision, desired=replicas, ready=ready, updated=replicas)

        return Observations(generation=self.ctx.generation, stable=track("stable"), canary=track("canary"),
                            fallback=track("fallback"), sandbox_ready=True, slos=slos,
                            controls=self.controls, routing=self.routing, autoscalers=self.autoscalers,
                            dataplane_objects=self.dataplane_objects)

    def step(self, slos: tuple[SLOObservation, ...] | None = None, after: float = 0.0) -> Decision:
        """Advance the clock by `after` seconds, decide, and let the cluster converge."""
        self.now += timedelta(seconds=after)
        decision = decide(self.spec, self.status, self.observations(slos), self.now, self.ctx,
                          scrape_interval=self.scrape_interval, dialect=self.dialect)
        self.decisions.append(decision)
        self.status = persisted(decision.status)
        for track, (revision, replicas) in deployments_of(decision).items():
            self.tracks[track] = (revision, self.autoscaled if replicas is None else replicas)
        self.observe_switch(decision)
        applied = {o["metadata"]["name"] for o in objects_of(decision, "HorizontalPodAutoscaler")}
        self.autoscalers = tuple(sorted(set(self.autoscalers) | applied))
        own = {(o["kind"], o["metadata"]["name"]) for kind in DATAPLANE_KINDS for o in objects_of(decision, kind)}
        self.dataplane_objects = tuple(sorted(set(self.dataplane_objects) | own))
        for action in decision.of_type(DeleteObjects):
            for ref in action.refs:
                if ref.kind == "HorizontalPodAutoscaler":
                    self.autoscalers = tuple(n for n in self.autoscalers if n != ref.name)
                    continue
                if ref.kind in DATAPLANE_KINDS:
                    self.dataplane_objects = tuple(x for x in self.dataplane_objects if x != (ref.kind, ref.name))
                    continue
                self.tracks.pop(ref.name.rsplit("-", 1)[-1], None)
        return decision

    def autoscale(self, pods: int) -> None:
        """The autoscaler sets the stable track (and any track applied without replicas) to `pods`."""
        self.autoscaled = pods
        if "stable" in self.tracks:
            self.tracks["stable"] = (self.tracks["stable"][0], pods)

    def observe_switch(self, decision: Decision) -> None:
        """The router's switch as the applied Service (replicas) or HTTPRoute (gatewayAPI) sets it."""
        for obj in objects_of(decision, "Service"):
            if obj["metadata"]["name"] == self.ctx.name:
                self.routing = service_routing(obj)
        for obj in objects_of(decision, "HTTPRoute"):
            self.routing = route_routing(obj, self.ctx)

    def settle(self, max_steps: int = 5) -> Decision:
        """Decide until nothing changes (events only: no clock advance)."""
        decision = self.step()
        for _ in range(max_steps):
            before = self.status
            decision = self.step()
            if decision.status == before:
                break
        return decision

    def deploy_stable(self) -> Decision:
        """First deployment until Stable (through its bake window, healthy, when it has one)."""
        decision = self.settle()
        if self.status.bake is not None:
            until = parse_time(self.status.bake.until)
            assert until is not None
            decision = self.step(after=(until - self.now).total_seconds())
        assert self.status.phase.value == "Stable", self.status.message
        assert self.status.lastKnownGood is not None
        return decision

    def set_version(self, version: str) -> None:
        self.spec = with_version(self.spec, version)

    def tick(self, slos: tuple[SLOObservation, ...] = GOOD) -> Decision:
        """Wait until the next analysis is due and run it."""
        last = self.decisions[-1] if self.decisions else None
        due = last.wake.analysis_due if last is not None else None
        wait = max(0.0, (due - self.now).total_seconds()) if due is not None else 30.0
        return self.step(slos=slos, after=wait)


@pytest.fixture
def sim() -> Sim:
    return Sim(make_spec())
