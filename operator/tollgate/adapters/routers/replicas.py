"""The replicas router: one Service over both tracks, traffic split by the ratio of Ready pods.

Works on any cluster (no mesh, no gateway). A weight rounds to replicas as
`tollgate.engine.routing.replica_split` documents: the canary gets ceil(replicas * weight / 100)
pods (at least 1 for any weight > 0), stable keeps the rest (at least 1 until weight 100), so the
real share is canary / (stable + canary), which the status reports next to the requested weight.
"""

from __future__ import annotations

from tollgate.adapters.kube import Kube
from tollgate.api import resource
from tollgate.api.routers import ROUTER_CAPABILITIES, RouterKind
from tollgate.engine.actions import Context, ObjectRef, SetWeight
from tollgate.engine.dataplane import service_name
from tollgate.engine.labels import LABEL_POOL
from tollgate.engine.observations import Track
from tollgate.engine.workloads import deployment_name


class ReplicasRouter:
    kind = RouterKind.REPLICAS
    capabilities = ROUTER_CAPABILITIES[RouterKind.REPLICAS]
    """None: it cannot mirror (a shadow step is refused at admission, api.routers)."""

    def __init__(self, kube: Kube):
        self._kube = kube

    def _scale(self, ctx: Context, namespace: str, track: Track, replicas: int) -> None:
        ref = ObjectRef("apps/v1", "Deployment", deployment_name(ctx, track), namespace)
        if self._kube.get(ref) is None:
            return
        self._kube.patch_scale(ref, replicas)

    def set_weight(self, ctx: Context, namespace: str, action: SetWeight) -> None:
        if action.stable_only:
            if action.stable_replicas is not None:
                self._scale(ctx, namespace, Track.STABLE, action.stable_replicas)
            return
        if action.keep_canary:
            # A failed canary kept for debugging: its pods stay, so traffic leaves them through the Service,
            # which now selects the stable track only (the selector the desired Service carries at weight 0).
            ref = ObjectRef("v1", "Service", service_name(ctx), namespace)
            if self._kube.get(ref) is not None:
                self._kube.merge_patch(ref, {"spec": {"selector": {LABEL_POOL: None,
                                                                   resource.LABEL_TRACK: Track.STABLE.value}}})
            if action.stable_replicas is not None:  # autoscaled: the autoscaler's count
                self._scale(ctx, namespace, Track.STABLE, action.stable_replicas)
            return
        if action.stable_replicas is None:
            # Autoscaled: the stable track's count is the autoscaler's, never written here. At weight 0 the
            # Service's selector (applied in the same decision) takes traffic off the canary, whose stable
            # pods are up; scaling the canary to 0 first could leave a canary-alone Service with no pods.
            if action.canary_replicas > 0:
                self._scale(ctx, namespace, Track.CANARY, action.canary_replicas)
            return
        # Shrink before growing, so the pod count never exceeds the sandbox quota mid-change.
        if action.canary_replicas < action.stable_replicas:
            self._scale(ctx, namespace, Track.CANARY, action.canary_replicas)
            self._scale(ctx, namespace, Track.STABLE, action.stable_replicas)
        else:
            self._scale(ctx, namespace, Track.STABLE, action.stable_replicas)
            self._scale(ctx, namespace, Track.CANARY, action.canary_replicas)

    def finalize(self, ctx: Context, namespace: str, stable_replicas: int) -> None:
        self._scale(ctx, namespace, Track.CANARY, 0)
