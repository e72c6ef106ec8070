"""spec.podTemplate laid over the pod template Tollgate generates for a track (pure).

Merged as a strategic merge patch would merge it (lists of named things by their key), with Tollgate's own
parts winning where they meet: its labels and annotations (they select and describe the tracks), its
MODEL_* variables, its /tmp mount and volume. Whatever the overlay says about security, the result is
restricted: only the fields api.pod_template names are read (a model built without validation cannot
smuggle hostNetwork or privileged in: they are never copied), a root UID is ignored, added capabilities
other than NET_BIND_SERVICE are dropped, and the container's restricted settings are written last.
"""

from __future__ import annotations

import copy
from typing import Any

from tollgate.api.pod_template import MODEL_CONTAINER, Container, PodTemplate, Volume

Manifest = dict[str, Any]
ALLOWED_CAPABILITY = "NET_BIND_SERVICE"


def _non_root(uid: int | None) -> int | None:
    return uid if uid is not None and uid > 0 else None


def _by(items: list[Manifest], key: str) -> dict[Any, Manifest]:
    return {item[key]: item for item in items}


def _env(container: Container) -> list[Manifest]:
    out: list[Manifest] = []
    for var in container.env or []:
        if var.valueFrom is not None:
            source = var.valueFrom
            ref = source.secretKeyRef or source.configMapKeyRef
            kind = "secretKeyRef" if source.secretKeyRef is not None else "configMapKeyRef"
            if ref is None:
                continue
            out.append({"name": var.name, "valueFrom": {kind: ref.model_dump(exclude_none=True)}})
        else:
            out.append({"name": var.name, "value": var.value or ""})
    return out


def _merge_container(generated: Manifest, overlay: Container, reserved_env: frozenset[str]) -> Manifest:
    out = copy.deepcopy(generated)
    env = _by(out.get("env", []), "name")
    for var in _env(overlay):
        if var["name"] not in reserved_env:
            env[var["name"]] = var
    out["env"] = list(env.values())
    if overlay.envFrom:
        out["envFrom"] = [*out.get("envFrom", []), *(e.model_dump(exclude_none=True) for e in overlay.envFrom)]
    mounts = _by(out.get("volumeMounts", []), "mountPath")
    for mount in overlay.volumeMounts or []:
        mounts.setdefault(mount.mountPath, mount.model_dump(exclude_none=True))  # Tollgate's /tmp wins
    out["volumeMounts"] = list(mounts.values())
    if overlay.command:
        out["command"] = list(overlay.command)
    if overlay.workingDir:
        out["workingDir"] = overlay.workingDir
    security = dict(out.get("securityContext") or {})
    asked = overlay.securityContext
    if asked is not None:
        if _non_root(asked.runAsUser) is not None:
            security["runAsUser"] = asked.runAsUser
        if asked.runAsGroup is not None:
            security["runAsGroup"] = asked.runAsGroup
        if asked.readOnlyRootFilesystem is not None:
            security["readOnlyRootFilesystem"] = asked.readOnlyRootFilesystem
        added = [c for c in (asked.capabilities.add or [] if asked.capabilities else []) if c == ALLOWED_CAPABILITY]
        if added:
            security["capabilities"] = {**security.get("capabilities", {}), "add": added}
    # restricted, written last whatever was asked
    security.update({"allowPrivilegeEscalation": False, "runAsNonRoot": True,
                     "seccompProfile": {"type": "RuntimeDefault"}})
    security["capabilities"] = {**security.get("capabilities", {}), "drop": ["ALL"]}
    security.pop("privileged", None)
    out["securityContext"] = security
    return out


def _volume(volume: Volume) -> Manifest | None:
    """A volume as the pod spec has it (only the sources api.pod_template names; None when it names none)."""
    for source in ("configMap", "secret", "emptyDir", "persistentVolumeClaim"):
        value = getattr(volume, source)
        if value is not None:
            return {"name": volume.name, source: value.model_dump(exclude_none=True)}
    return None


def overlay_pod(template: Manifest, overlay: PodTemplate | None,
                reserved_env: frozenset[str] = frozenset()) -> Manifest:
    """`template` (a Deployment's spec.template) with `overlay` laid over it; `reserved_env`: variables that
    stay Tollgate's (MODEL_NAME, ...)."""
    if overlay is None:
        return template
    out = copy.deepcopy(template)
    meta = out.setdefault("metadata", {})
    if overlay.metadata is not None:
        meta["labels"] = {**(overlay.metadata.labels or {}), **meta.get("labels", {})}
        annotations = {**(overlay.metadata.annotations or {}), **meta.get("annotations", {})}
        if annotations:
            meta["annotations"] = annotations
    spec = overlay.spec
    if spec is None:
        return out
    pod = out["spec"]
    for entry in spec.containers or []:
        pod["containers"] = [_merge_container(c, entry, reserved_env) if c["name"] == entry.name == MODEL_CONTAINER
                             else c for c in pod["containers"]]
    volumes = _by(pod.get("volumes", []), "name")
    for volume in spec.volumes or []:
        rendered = _volume(volume)
        if rendered is not None:
            volumes.setdefault(volume.name, rendered)  # Tollgate's tmp wins
    pod["volumes"] = list(volumes.values())
    if spec.imagePullSecrets:
        pod["imagePullSecrets"] = [{"name": s.name} for s in spec.imagePullSecrets]
    if spec.runtimeClassName:
        pod["runtimeClassName"] = spec.runtimeClassName
    if spec.terminationGracePeriodSeconds is not None:
        pod["terminationGracePeriodSeconds"] = spec.terminationGracePeriodSeconds
    if spec.securityContext is not None:
        security = dict(pod.get("securityContext") or {})
        asked = spec.securityContext
        for field, value in (("runAsUser", _non_root(asked.runAsUser)), ("runAsGroup", asked.runAsGroup),
                             ("fsGroup", asked.fsGroup)):
            if value is not None:
                security[field] = value
        security["runAsNonRoot"] = True
        pod["securityContext"] = security
    return out
