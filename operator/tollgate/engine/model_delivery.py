"""Model delivery (pure): the storage initializer of every track's pod, the model cache, the credentials
copy, and the contract between the initializer and the operator (issue 19).

The initializer (tollgate.initializer) fetches spec.model.uri into the model cache and verifies
spec.model.digest; the digest's definition and the termination message that reports a mismatch are
tollgate.model_digest, shared by both ends. The pod watch (runtime.pods) reads that message from the
pod's status and the engine rolls the canary back at once (PodProblemKind.FAILING, reason
ModelDigestMismatch): the model server never starts on those bytes.
"""

from __future__ import annotations

from typing import Any

from tollgate.api.spec import ModelDeploymentSpec, ModelRef
from tollgate.engine.actions import Context
from tollgate.engine.labels import owner_labels

Manifest = dict[str, Any]

INIT_CONTAINER_NAME = "storage-initializer"
CACHE_VOLUME = "model-cache"
CREDENTIALS_SECRET = "tollgate-model-credentials"
"""The copy of spec.modelDelivery.credentials.secretName in the sandbox (one sandbox per ModelDeployment, so
one fixed name; the chart's RBAC and admission policy allow the operator exactly this Secret name there)."""
ANNOTATION_COPY_OF = "tollgate.dev/copy-of"
"""On the copy: <namespace>/<name> of the Secret the runtime fills it from (the engine never sees its data)."""
DEFAULT_INITIALIZER_IMAGE = "tollgate-storage-initializer:dev"
FETCHED_SCHEMES = ("s3://", "gs://", "http://", "https://")
"""URIs the initializer fetches (KServe's storage library; Azure Blob is https://). Others, e.g. file:///models
baked into the server's image, are the server's to open (MODEL_URI), with no initializer."""


def delivers(spec: ModelDeploymentSpec, model: ModelRef) -> bool:
    """Whether this model's pods get the storage initializer: a uri it fetches, delivery not turned off."""
    return spec.modelDelivery.enabled and model.uri is not None and model.uri.startswith(FETCHED_SCHEMES)


def cache_volume(spec: ModelDeploymentSpec) -> Manifest:
    """The model cache: an emptyDir with a size limit, one per pod."""
    return {"name": CACHE_VOLUME, "emptyDir": {"sizeLimit": spec.modelDelivery.cache.sizeLimit}}


def initializer_container(spec: ModelDeploymentSpec, model: ModelRef, image: str,
                          security_context: Manifest) -> Manifest:
    """The init container that fetches the model into the cache and verifies its digest."""
    assert model.uri is not None
    env: list[Manifest] = [
        {"name": "MODEL_URI", "value": model.uri},
        {"name": "MODEL_DIR", "value": spec.modelDelivery.mountPath},
    ]
    if model.digest is not None:
        env.append({"name": "MODEL_DIGEST", "value": model.digest})
    container: Manifest = {
        "name": INIT_CONTAINER_NAME,
        "image": image,
        "env": env,
        "securityContext": security_context,
        "terminationMessagePolicy": "File",
        "volumeMounts": [{"name": CACHE_VOLUME, "mountPath": spec.modelDelivery.mountPath},
                         {"name": "tmp", "mountPath": "/tmp"}],
    }
    if spec.modelDelivery.credentials is not None:
        # Explicit env above wins over envFrom: a key named MODEL_URI in the Secret cannot redirect the fetch.
        container["envFrom"] = [{"secretRef": {"name": CREDENTIALS_SECRET}}]
    return container


def server_mount(spec: ModelDeploymentSpec) -> Manifest:
    """The model server's view of the cache: read-only."""
    return {"name": CACHE_VOLUME, "mountPath": spec.modelDelivery.mountPath, "readOnly": True}


def credentials_copy(spec: ModelDeploymentSpec, ctx: Context, sandbox: str) -> Manifest | None:
    """The sandbox's copy of the credentials Secret, without data: the runtime fills it from the Secret in
    the ModelDeployment's own namespace (ANNOTATION_COPY_OF), so no Secret value passes the engine."""
    credentials = spec.modelDelivery.credentials
    if credentials is None or not spec.modelDelivery.enabled:
        return None
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": CREDENTIALS_SECRET, "namespace": sandbox,
                     "labels": owner_labels(ctx, spec.model.name),
                     "annotations": {ANNOTATION_COPY_OF: f"{ctx.namespace}/{credentials.secretName}"}},
        "type": "Opaque",
    }
