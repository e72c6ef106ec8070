"""Model delivery: how the model's bytes get into the pod before the server starts (issue 19).

When spec.model.uri is set, every track's pod gets an init container, the storage initializer, that
fetches the uri into a shared volume (the model cache) and, when spec.model.digest is set, verifies the
bytes against it; a mismatch fails the pod, so a wrong artifact is never served. The model server reads
the files from `mountPath` (env MODEL_DIR).

Credentials are never literal: `credentials.secretName` names a Secret in the ModelDeployment's own
namespace (there is no namespace field, so no other tenant's Secret can be named). Tollgate copies it
into the ModelDeployment's sandbox (the only namespace its pods can read a Secret from) and passes its
keys to the initializer as environment variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_ENDPOINT_URL, ... as KServe's storage initializer reads them). Not part of the revision: changing
the cache or the Secret's name rolls the running tracks, no canary. The cache is an emptyDir per pod (a
PersistentVolumeClaim shared by the tracks is not offered yet: it needs ReadWriteMany storage and one
directory per revision).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from tollgate.api.validation import cel

DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti|P|Pi|E|Ei)?$"
DEFAULT_SIZE_LIMIT = "10Gi"
DEFAULT_MOUNT_PATH = "/mnt/models"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True, populate_by_name=True)


class Credentials(_Model):
    """The Secret the storage initializer authenticates with."""

    secretName: Annotated[str, StringConstraints(pattern=DNS_SUBDOMAIN, min_length=1, max_length=253)]
    """A Secret in the ModelDeployment's namespace. Its keys that are environment variable names become the
    initializer's environment, e.g. AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL, AWS_DEFAULT_REGION
    for s3:// (KServe's names); credentials that must be files (a GCP key file) are not mounted."""


class Cache(_Model):
    """The volume the model is fetched into and served from."""

    sizeLimit: Annotated[str, StringConstraints(pattern=QUANTITY, max_length=64)] = DEFAULT_SIZE_LIMIT
    """The cache is an emptyDir of at most this size: the kubelet evicts a pod whose model outgrows it."""


@cel(
    "!has(self.mountPath) || (self.mountPath != '/tmp' && !self.mountPath.startsWith('/tmp/'))",
    "spec.modelDelivery.mountPath cannot be /tmp or under it: /tmp is the pod's scratch volume; use e.g. /mnt/models",
    field_path=".mountPath",
)
class ModelDelivery(_Model):
    """How spec.model.uri is fetched before the model server starts (the storage initializer)."""

    credentials: Credentials | None = None
    """Where the initializer's credentials come from; none: anonymous (a public bucket, an http(s) uri)."""
    cache: Cache = Field(default_factory=Cache)
    """The model cache volume: an emptyDir of 10Gi unless sizeLimit says otherwise."""
    mountPath: Annotated[str, StringConstraints(pattern=r"^/[^\s]*$", max_length=256)] = DEFAULT_MOUNT_PATH
    """Where the model server finds the files (read-only); also its MODEL_DIR."""
    enabled: bool = True
    """false: no initializer; the model server fetches spec.model.uri itself (MODEL_URI)."""
