"""The replicas router's fast path (adapters.routers.replicas): how traffic leaves a canary."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tollgate.adapters.routers.replicas import ReplicasRouter
from tollgate.api.spec import RouterKind
from tollgate.engine.actions import Context, ObjectRef, SetWeight

CTX = Context(name="fraud", namespace="ml", uid="u1", generation=1)


@dataclass
class RecordingKube:
    """Every object exists; writes are recorded in order."""

    writes: list[tuple[str, str, Any]] = field(default_factory=list)

    def get(self, ref: ObjectRef) -> dict[str, Any]:
        return {}

    def merge_patch(self, ref: ObjectRef, patch: Any) -> None:
        self.writes.append(("patch", ref.name, patch))

    def patch_scale(self, ref: ObjectRef, replicas: int) -> None:
        self.writes.append(("scale", ref.name, replicas))


def test_a_rollback_scales_the_canary_down_first() -> None:
    kube = RecordingKube()
    ReplicasRouter(kube).set_weight(CTX, "sbx", SetWeight(RouterKind.REPLICAS, 0, 4, 0, fast=True))  # type: ignore[arg-type]
    assert kube.writes == [("scale", "fraud-canary", 0), ("scale", "fraud-stable", 4)]


def test_a_kept_canary_leaves_the_service_and_keeps_its_pods() -> None:
    kube = RecordingKube()
    action = SetWeight(RouterKind.REPLICAS, 0, 4, 2, fast=True, keep_canary=True)
    ReplicasRouter(kube).set_weight(CTX, "sbx", action)  # type: ignore[arg-type]
    # then the Service selects the stable track only, and the canary is never scaled
    assert kube.writes == [
        ("patch", "fraud", {"spec": {"selector": {"tollgate.dev/pool": None, "tollgate.dev/track": "stable"}}}),
        ("scale", "fraud-stable", 4),
    ]
