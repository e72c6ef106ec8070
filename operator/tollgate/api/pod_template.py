"""spec.podTemplate: the escape hatch for what the spec does not cover, still held to Pod Security `restricted`.

An overlay on the pod template Tollgate generates for every track (stable, canary, fallback), merged the way a
strategic merge patch would (engine.pod_overlay): labels and annotations added (Tollgate's own keys win), the
model-server container's env merged by name, envFrom appended, volumeMounts merged by mountPath, command and
workingDir replaced; volumes merged by name (Tollgate's `tmp` wins); imagePullSecrets, runtimeClassName,
terminationGracePeriodSeconds and the pod's non-root identity set.

Why a bounded schema and not x-kubernetes-preserve-unknown-fields: a tenant writes this, and is hostile input.
A schema names every field it accepts, so whatever is not named is pruned by the API server (refused by
`kubectl apply`'s strict validation) before the operator reads it: hostPath, host namespaces, privileged
containers, added capabilities, root users, other service accounts, sidecars that would escape the quota.
The fields a tenant most often reaches for to break out are named anyway, so the refusal can say why (CEL
below): `hostNetwork`, `hostPID`, `hostIPC`, `privileged`, `allowPrivilegeEscalation`, `runAsNonRoot: false`,
`runAsUser: 0`, capabilities beyond NET_BIND_SERVICE. A `hostPath` volume is not a source the schema knows:
`kubectl apply` refuses it as an unknown field, and any other client's is pruned before it is stored.
Behind the schema the operator forces the restricted security context on every container it renders
(engine.pod_overlay), and the sandbox namespace enforces `restricted` (Pod Security admission): a pod that
got through both is still refused by the API server.

Not offered (and why): sidecars and init containers (their requests are outside the quota Tollgate derives and
the platform's per-pod caps; model delivery has its own init container), resources (spec.runtime.resources
is what the caps and the quota count), serviceAccountName and automountServiceAccountToken (the sandbox's
account has no token, by design), nodeName and scheduling (spec.scheduling), ports and probes (spec.runtime,
spec.probes), hostAliases, dnsPolicy, sysctls.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from tollgate.api.validation import cel

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
ENV_NAME = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"
QUANTITY = (r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
            r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$")
LABEL_KEY = r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
MODEL_CONTAINER = "model-server"
"""The generated container an overlay entry of that name merges into (engine.workloads.CONTAINER_NAME)."""
RESTRICTED = "the sandbox enforces Pod Security restricted"

Name = Annotated[str, StringConstraints(pattern=DNS_LABEL, min_length=1, max_length=63)]
ObjectName = Annotated[str, StringConstraints(pattern=DNS_SUBDOMAIN, min_length=1, max_length=253)]
Path = Annotated[str, StringConstraints(pattern=r"^/[^\s]*$", max_length=1024)]
Text = Annotated[str, StringConstraints(max_length=1024)]
Id = Annotated[int, Field(ge=0, le=2_147_483_647)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True, populate_by_name=True)


class KeyRef(_Model):
    """One key of a Secret or ConfigMap in the sandbox namespace."""

    name: ObjectName
    """The Secret's or ConfigMap's name."""
    key: Annotated[str, StringConstraints(pattern=r"^[-._a-zA-Z0-9]+$", min_length=1, max_length=253)]
    """The key."""
    optional: bool | None = None
    """true: the variable is left unset when the object or key is missing."""


@cel("[has(self.secretKeyRef), has(self.configMapKeyRef)].filter(x, x).size() == 1",
     "spec.podTemplate.spec.containers[].env[].valueFrom names exactly one source: keep secretKeyRef or "
     "configMapKeyRef")
class EnvSource(_Model):
    """Where a variable's value comes from (core/v1 EnvVarSource, the Secret and ConfigMap forms)."""

    secretKeyRef: KeyRef | None = None
    """A key of a Secret, e.g. model-store credentials."""
    configMapKeyRef: KeyRef | None = None
    """A key of a ConfigMap."""


@cel("has(self.value) != has(self.valueFrom)",
     "spec.podTemplate.spec.containers[].env[] needs exactly one of value and valueFrom: keep one")
class OverlayEnvVar(_Model):
    """A variable of the model-server container; merged by name (Tollgate's MODEL_* variables win)."""

    name: Annotated[str, StringConstraints(pattern=ENV_NAME, min_length=1, max_length=128)]
    """Variable name."""
    value: Text | None = None
    """Literal value."""
    valueFrom: EnvSource | None = None
    """A Secret or ConfigMap key."""


class LocalRef(_Model):
    name: ObjectName
    """The object's name."""
    optional: bool | None = None
    """true: tolerated when missing."""


@cel("[has(self.secretRef), has(self.configMapRef)].filter(x, x).size() == 1",
     "spec.podTemplate.spec.containers[].envFrom[] names exactly one source: keep secretRef or configMapRef")
class EnvFrom(_Model):
    """Every key of a Secret or ConfigMap as variables."""

    prefix: Annotated[str, StringConstraints(pattern=ENV_NAME, max_length=64)] | None = None
    """Prepended to each key."""
    secretRef: LocalRef | None = None
    """The Secret."""
    configMapRef: LocalRef | None = None
    """The ConfigMap."""


class VolumeMount(_Model):
    """A volume of spec.podTemplate.spec.volumes mounted into the container; merged by mountPath."""

    name: Name
    """The volume's name."""
    mountPath: Path
    """Where (absolute); /tmp is Tollgate's."""
    readOnly: bool | None = None
    """Mount read-only."""
    subPath: Annotated[str, StringConstraints(pattern=r"^[^/][^\s]*$", max_length=253)] | None = None
    """A path inside the volume (relative)."""


class Capabilities(_Model):
    """Linux capabilities. Every container drops ALL; restricted allows adding back NET_BIND_SERVICE only."""

    add: Annotated[list[Annotated[str, StringConstraints(max_length=64)]], Field(max_length=4)] | None = None
    """Capabilities to add: NET_BIND_SERVICE (to listen below port 1024) or nothing."""


@cel("!has(self.privileged) || !self.privileged",
     f"spec.podTemplate.spec.containers[].securityContext.privileged: true is refused: {RESTRICTED}, which "
     "forbids privileged containers; remove it", field_path=".privileged")
@cel("!has(self.allowPrivilegeEscalation) || !self.allowPrivilegeEscalation",
     f"spec.podTemplate.spec.containers[].securityContext.allowPrivilegeEscalation: true is refused: {RESTRICTED}; "
     "remove it (Tollgate sets false)", field_path=".allowPrivilegeEscalation")
@cel("!has(self.runAsNonRoot) || self.runAsNonRoot",
     f"spec.podTemplate.spec.containers[].securityContext.runAsNonRoot: false is refused: {RESTRICTED}; remove it",
     field_path=".runAsNonRoot")
@cel("!has(self.runAsUser) || self.runAsUser != 0",
     f"spec.podTemplate.spec.containers[].securityContext.runAsUser: 0 (root) is refused: {RESTRICTED}; use a "
     "non-zero UID such as 65532, or remove it", field_path=".runAsUser")
@cel("!has(self.capabilities) || !has(self.capabilities.add) || self.capabilities.add.all(c, c == 'NET_BIND_SERVICE')",
     f"spec.podTemplate.spec.containers[].securityContext.capabilities.add may only hold NET_BIND_SERVICE: "
     f"{RESTRICTED}, which allows no other added capability; remove the others", field_path=".capabilities.add")
class ContainerSecurity(_Model):
    """What a container may change in its security context; Tollgate sets the rest as restricted requires."""

    runAsUser: Id | None = None
    """UID, not 0."""
    runAsGroup: Id | None = None
    """GID."""
    runAsNonRoot: bool | None = None
    """Must stay true."""
    readOnlyRootFilesystem: bool | None = None
    """false lets the image write outside /tmp (Tollgate's default is true)."""
    capabilities: Capabilities | None = None
    """NET_BIND_SERVICE only."""
    privileged: bool | None = None
    """Refused when true (named so the refusal says why)."""
    allowPrivilegeEscalation: bool | None = None
    """Refused when true (named so the refusal says why)."""


@cel(f"self.name == '{MODEL_CONTAINER}'",
     f"spec.podTemplate.spec.containers[].name must be {MODEL_CONTAINER} (the container the overlay merges into): "
     "sidecars are not offered, their requests would escape the sandbox quota and the platform's caps")
class Container(_Model):
    """An overlay on the model-server container (merged by name)."""

    name: Name
    """model-server."""
    command: Annotated[list[Text], Field(max_length=32)] | None = None
    """Replaces the image's entrypoint."""
    workingDir: Path | None = None
    """Working directory."""
    env: Annotated[list[OverlayEnvVar], Field(max_length=32)] | None = None
    """Variables, merged by name; values from Secrets and ConfigMaps of the sandbox."""
    envFrom: Annotated[list[EnvFrom], Field(max_length=8)] | None = None
    """Whole Secrets or ConfigMaps as variables."""
    volumeMounts: Annotated[list[VolumeMount], Field(max_length=16)] | None = None
    """Mounts, merged by mountPath."""
    securityContext: ContainerSecurity | None = None
    """Within restricted only."""


class KeyToPath(_Model):
    key: Annotated[str, StringConstraints(pattern=r"^[-._a-zA-Z0-9]+$", max_length=253)]
    """The key."""
    path: Annotated[str, StringConstraints(pattern=r"^[^/][^\s]*$", max_length=253)]
    """Its relative path in the volume."""


class ObjectVolume(_Model):
    """A Secret or ConfigMap as files."""

    name: ObjectName | None = None
    """The ConfigMap's name (configMap)."""
    secretName: ObjectName | None = None
    """The Secret's name (secret)."""
    items: Annotated[list[KeyToPath], Field(max_length=32)] | None = None
    """Only these keys, at these paths."""
    optional: bool | None = None
    """true: tolerated when missing."""
    defaultMode: Annotated[int, Field(ge=0, le=511)] | None = None
    """File mode bits (0-0777)."""


class EmptyDir(_Model):
    medium: Annotated[str, StringConstraints(pattern=r"^(Memory)?$", max_length=8)] | None = None
    """"" (node disk) or Memory."""
    sizeLimit: Annotated[str, StringConstraints(pattern=QUANTITY, max_length=64)] | None = None
    """E.g. 20Gi."""


class ClaimVolume(_Model):
    claimName: ObjectName
    """A PersistentVolumeClaim in the sandbox."""
    readOnly: bool | None = None
    """Mount read-only."""


@cel("[has(self.configMap), has(self.secret), has(self.emptyDir), has(self.persistentVolumeClaim)]"
     ".filter(x, x).size() == 1",
     "each spec.podTemplate.spec.volumes[] entry names exactly one source: keep one of configMap, secret, "
     "emptyDir or persistentVolumeClaim")
@cel("self.name != 'tmp'", "spec.podTemplate.spec.volumes[].name tmp is Tollgate's (the writable /tmp): "
     "choose another name", field_path=".name")
class Volume(_Model):
    """A volume of the pod; the sources Pod Security restricted allows."""

    name: Name
    """Volume name (not tmp)."""
    configMap: ObjectVolume | None = None
    """A ConfigMap's keys as files."""
    secret: ObjectVolume | None = None
    """A Secret's keys as files."""
    emptyDir: EmptyDir | None = None
    """Scratch space, e.g. a model cache with a sizeLimit."""
    persistentVolumeClaim: ClaimVolume | None = None
    """A claim in the sandbox."""


class PodSecurity(_Model):
    """The pod's identity; non-root as restricted requires."""

    runAsUser: Id | None = None
    """UID, not 0."""
    runAsGroup: Id | None = None
    """GID."""
    fsGroup: Id | None = None
    """Group of the volumes' files."""


@cel("!has(self.hostNetwork) || !self.hostNetwork",
     f"spec.podTemplate.spec.hostNetwork: true is refused: {RESTRICTED}, which forbids the host's network "
     "namespace; remove it", field_path=".hostNetwork")
@cel("!has(self.hostPID) || !self.hostPID",
     f"spec.podTemplate.spec.hostPID: true is refused: {RESTRICTED}, which forbids the host's PID namespace; "
     "remove it", field_path=".hostPID")
@cel("!has(self.hostIPC) || !self.hostIPC",
     f"spec.podTemplate.spec.hostIPC: true is refused: {RESTRICTED}, which forbids the host's IPC namespace; "
     "remove it", field_path=".hostIPC")
@cel("!has(self.securityContext) || !has(self.securityContext.runAsUser) || self.securityContext.runAsUser != 0",
     f"spec.podTemplate.spec.securityContext.runAsUser: 0 (root) is refused: {RESTRICTED}; use a non-zero UID "
     "such as 65532, or remove it", field_path=".securityContext.runAsUser")
@cel("!has(self.containers) || self.containers.all(c, self.containers.exists_one(d, d.name == c.name))",
     "spec.podTemplate.spec.containers names must be unique: merge the entries", field_path=".containers")
@cel("!has(self.volumes) || self.volumes.all(v, self.volumes.exists_one(w, w.name == v.name))",
     "spec.podTemplate.spec.volumes names must be unique: rename or merge the entries", field_path=".volumes")
class PodSpec(_Model):
    """The part of the pod spec the overlay may set."""

    containers: Annotated[list[Container], Field(max_length=1)] | None = None
    """An overlay on the model-server container."""
    volumes: Annotated[list[Volume], Field(max_length=8)] | None = None
    """Volumes, merged by name."""
    imagePullSecrets: Annotated[list[LocalRef], Field(max_length=4)] | None = None
    """Secrets (in the sandbox) to pull private images with."""
    runtimeClassName: ObjectName | None = None
    """A RuntimeClass, e.g. nvidia."""
    terminationGracePeriodSeconds: Annotated[int, Field(ge=0, le=3600)] | None = None
    """Seconds a pod gets to finish its requests when it stops."""
    securityContext: PodSecurity | None = None
    """Non-root identity."""
    hostNetwork: bool | None = None
    """Refused when true (named so the refusal says why)."""
    hostPID: bool | None = None
    """Refused when true."""
    hostIPC: bool | None = None
    """Refused when true."""


@cel("!has(self.labels) || self.labels.all(k, !k.startsWith('tollgate.dev/') && !k.startsWith('app.kubernetes.io/'))",
     "spec.podTemplate.metadata.labels may not set tollgate.dev/ or app.kubernetes.io/ labels (they select the "
     "tracks' pods and say who manages them): remove them", field_path=".labels")
@cel("!has(self.annotations) || self.annotations.all(k, !k.startsWith('tollgate.dev/'))",
     "spec.podTemplate.metadata.annotations may not set tollgate.dev/ annotations (Tollgate's own): remove them",
     field_path=".annotations")
class PodMetadata(_Model):
    labels: Annotated[dict[Annotated[str, StringConstraints(pattern=LABEL_KEY, max_length=317)],
                           Annotated[str, StringConstraints(max_length=63)]], Field(max_length=16)] | None = None
    """Added to the pods' labels."""
    annotations: Annotated[dict[Annotated[str, StringConstraints(pattern=LABEL_KEY, max_length=317)],
                                Annotated[str, StringConstraints(max_length=1024)]], Field(max_length=16)] | None = None
    """Added to the pods' annotations."""


class PodTemplate(_Model):
    """An overlay on the pod template of every track, held to Pod Security restricted."""

    metadata: PodMetadata | None = None
    """Labels and annotations added to the pods."""
    spec: PodSpec | None = None
    """The overlay on the pod spec."""
