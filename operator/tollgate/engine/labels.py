"""The labels Tollgate puts on everything it creates (names from tollgate.api.resource).

Objects live in the sandbox namespace, not the ModelDeployment's, so they carry no ownerReferences
(cross-namespace owners make the garbage collector delete them); these labels are the ownership.
"""

from __future__ import annotations

from tollgate.api import resource
from tollgate.api.status import RevisionRef
from tollgate.engine.actions import Context
from tollgate.engine.naming import fit, label_value

LABEL_POOL = "tollgate.dev/pool"
"""Pods serving behind the shared Service of the replicas router: "main" (stable, canary) or "fallback"."""
POOL_MAIN = "main"
POOL_FALLBACK = "fallback"
POOL_NONE = "none"
"""A pool no pod is in: the canary's own Service selects it while a failed canary is kept and no canary runs
(engine.rules.keep), so the kept pods have no Service endpoints and receive no request."""


def owner_labels(ctx: Context, model_name: str) -> dict[str, str]:
    """Labels on every object: managed-by, owning ModelDeployment (name, namespace), model."""
    return {
        resource.LABEL_MANAGED_BY: resource.MANAGED_BY_VALUE,
        resource.LABEL_MD_NAME: fit(ctx.name),
        resource.LABEL_MD_NAMESPACE: fit(ctx.namespace),
        resource.LABEL_MODEL: fit(model_name),
    }


def selector_labels(ctx: Context, track: str | None = None) -> dict[str, str]:
    """Labels selecting the pods of this ModelDeployment (of one track when given)."""
    out = {resource.LABEL_MD_NAME: fit(ctx.name), resource.LABEL_MD_NAMESPACE: fit(ctx.namespace)}
    if track is not None:
        out[resource.LABEL_TRACK] = track
    return out


def canary_selector(ctx: Context, *, kept_only: bool) -> dict[str, str]:
    """The selector of the canary's own Service: the canary track's pods, or, when the only canary pods are
    those of a kept failed canary (`kept_only`), no pod at all."""
    out = selector_labels(ctx, "canary")
    if kept_only:
        out[LABEL_POOL] = POOL_NONE
    return out


def track_labels(ctx: Context, model_name: str, track: str, ref: RevisionRef) -> dict[str, str]:
    """Owner labels plus track, revision and model version."""
    return {
        **owner_labels(ctx, model_name),
        resource.LABEL_TRACK: track,
        resource.LABEL_REVISION: ref.revision,
        resource.LABEL_VERSION: label_value(ref.version),
    }
