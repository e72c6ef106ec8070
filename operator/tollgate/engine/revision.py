"""Revisions: a hash of what changes the running model (model + runtime), nothing else.

Replicas, risk tier, rollout policy, SLOs, sandbox and traffic settings are not part of it, so changing
them never starts a canary. The hash is over canonical JSON, so field order and defaults written out or
left implicit give the same revision.
"""

from __future__ import annotations

import hashlib
import json

from tollgate.api.spec import ModelDeploymentSpec, ModelRef, Runtime
from tollgate.api.status import ModelDeploymentStatus, RevisionRef

REVISION_LENGTH = 10


def revision_hash(model: ModelRef, runtime: Runtime) -> str:
    """The revision of a model served by a runtime: 10 hex characters of a sha256."""
    canonical = json.dumps(
        {"model": model.model_dump(mode="json"), "runtime": runtime.model_dump(mode="json")},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:REVISION_LENGTH]


def revision_ref(model: ModelRef, runtime: Runtime) -> RevisionRef:
    """A RevisionRef carrying everything needed to re-create the revision."""
    return RevisionRef(
        revision=revision_hash(model, runtime),
        version=model.version,
        digest=model.digest,
        image=runtime.image,
        model=model,
        runtime=runtime,
    )


def desired_revision(spec: ModelDeploymentSpec) -> RevisionRef:
    """The revision the spec asks for."""
    return revision_ref(spec.model, spec.runtime)


def fallback_revision(spec: ModelDeploymentSpec, status: ModelDeploymentStatus) -> RevisionRef | None:
    """Where the kill switch sends traffic: spec.fallback, else status.lastKnownGood, else None.

    spec.fallback inherits what it omits: the model name, the uri with the version replaced, the runtime
    (with `image` overridden when given).
    """
    pinned = spec.fallback
    if pinned is not None:
        uri = pinned.uri
        if uri is None and spec.model.uri is not None:
            uri = spec.model.uri.replace(spec.model.version, pinned.version)
        model = ModelRef(name=spec.model.name, version=pinned.version, uri=uri, digest=pinned.digest)
        runtime = spec.runtime
        if pinned.image is not None:
            runtime = runtime.model_copy(update={"image": pinned.image})
        return revision_ref(model, runtime)
    return status.lastKnownGood
