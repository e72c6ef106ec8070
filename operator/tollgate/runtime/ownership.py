"""Which sandbox namespace is whose: Tollgate writes into a namespace only when it created it for the
ModelDeployment at hand.

An explicit spec.sandbox.namespace must first be granted: it must start with one of the prefixes the
platform team annotated on the ModelDeployment's own namespace (tollgate.dev/sandbox-prefixes; none: only
the default name). A sandbox namespace is a cluster-wide name; without the grant a tenant could create,
before its owner, a namespace somebody else relies on by name (another tenant's sandbox, a team namespace
about to be made) and answer at its Service addresses. The grant is checked before the name is looked at
at all, so an ungranted name tells the tenant nothing about whose it is; once the sandbox is ours the grant
is not read again (withdrawing it does not strand a running model; it stops new names).

The proof is the namespace's tollgate.dev/owner-uid label, set when Tollgate creates the namespace
(by POST, which fails on an existing name, so an existing namespace is never taken over) to the
ModelDeployment's UID. Before any decision is carried out, the sandbox namespace is checked:
- absent: it will be created for this ModelDeployment (a create that finds the name taken is checked
  again, so two ModelDeployments racing for one name cannot both win). A default name that nobody is
  known to hold is not read first at all (`read_first`): the create is the check, ahead of the decision's
  every other action (runtime.reconciler), and a name it finds taken is read and refused as below. Only a
  sandbox name somebody else is known to hold, and every explicit name, is read before the decision;
- labelled with this ModelDeployment's UID: ours, remembered, no further reads;
- anything else (kube-system, a namespace a person made, another ModelDeployment's sandbox, a Gateway's
  namespace): refused. The ModelDeployment is Stalled with a message naming the owner and the fix, and
  nothing is written anywhere but its own status.

The chart's ValidatingAdmissionPolicy enforces the same fence in the API server (a write into a
namespace without the label is refused whatever this code does).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from tollgate.adapters.kube import Kube
from tollgate.api import resource
from tollgate.engine.actions import Context, ObjectRef
from tollgate.engine.sandbox import (
    CUT_SUFFIX_LENGTH,
    SANDBOX_SUFFIX_LENGTH,
    default_sandbox_namespace,
    legacy_cut_namespace,
)

log = logging.getLogger("tollgate.ownership")


DEFAULT_SHAPE = re.compile(rf"-[0-9a-f]{{{SANDBOX_SUFFIX_LENGTH},{CUT_SUFFIX_LENGTH}}}$")
"""The tail of a default sandbox name (engine.sandbox.default_sandbox_namespace)."""


class SandboxNotOwnedError(Exception):
    """The sandbox namespace exists and is not this ModelDeployment's: nothing may be written there."""


class SandboxNotGrantedError(SandboxNotOwnedError):
    """spec.sandbox.namespace is not among the names the platform granted the ModelDeployment's namespace."""


def granted_prefixes(tenant: Mapping[str, Any] | None) -> tuple[str, ...]:
    """The prefixes annotated on a tenant's Namespace (tollgate.dev/sandbox-prefixes), blanks dropped."""
    annotations = ((tenant or {}).get("metadata") or {}).get("annotations") or {}
    raw = annotations.get(resource.ANNOTATION_SANDBOX_PREFIXES) or ""
    return tuple(p.strip() for p in raw.split(",") if p.strip())


def ungranted(namespace: str, prefixes: tuple[str, ...], ctx: Context) -> str | None:
    """Why spec.sandbox.namespace `namespace` may not be used by `ctx`, or None when a prefix grants it.

    A name shaped like a default sandbox name (a dash and 6 to 16 hex digits at its end) is refused even under
    a grant, unless it is this ModelDeployment's own default: a prefix such as `team-` would otherwise reach the default
    sandboxes of every namespace named team-<something> (the CRD's CEL rule refuses the shape too)."""
    default = default_sandbox_namespace(ctx.namespace, ctx.name, ctx.sandbox)
    if DEFAULT_SHAPE.search(namespace) and namespace != default:
        return (f"spec.sandbox.namespace {namespace!r} has the shape of a default sandbox name (<namespace>-<name>-"
                f"<6 to 16 hex>), which belongs to the ModelDeployment it is derived from; Tollgate wrote nothing: "
                f"choose another name, or remove the field to use the default {default!r}")
    if any(namespace.startswith(p) for p in prefixes):
        return None
    granted = (f"namespace {ctx.namespace!r} is granted sandbox names starting with "
               f"{', '.join(repr(p) for p in prefixes)}") if prefixes else (
               f"namespace {ctx.namespace!r} is granted no explicit sandbox names")
    return (f"spec.sandbox.namespace {namespace!r} is not granted to {ctx.namespace}/{ctx.name}: {granted} "
            f"(annotation {resource.ANNOTATION_SANDBOX_PREFIXES} on the namespace, set by the platform team); "
            f"Tollgate wrote nothing: remove spec.sandbox.namespace to use the default {default!r}, or ask the "
            f"platform team to grant a prefix, e.g. `kubectl annotate namespace {ctx.namespace} "
            f"{resource.ANNOTATION_SANDBOX_PREFIXES}={ctx.namespace}-sbx-`")


def refusal(namespace: str, live: Mapping[str, Any], ctx: Context, explicit: bool) -> str:
    """Why `namespace` cannot be the sandbox of `ctx`, whose it is, and what to do about it."""
    meta = live.get("metadata") or {}
    uid = (meta.get("labels") or {}).get(resource.LABEL_OWNER_UID)
    owner = (meta.get("annotations") or {}).get(resource.ANNOTATION_OWNER)
    me = f"{ctx.namespace}/{ctx.name}"
    where = "spec.sandbox.namespace" if explicit else "the default sandbox namespace"
    if uid:
        whose = f"it is the sandbox of ModelDeployment {owner or '(unknown)'} (UID {uid})"
    elif owner == me:
        return (f"{where} {namespace!r} carries this ModelDeployment's tollgate.dev/owner annotation but no "
                f"tollgate.dev/owner-uid label (a sandbox made by an older Tollgate): Tollgate writes only into "
                f"namespaces labelled with their ModelDeployment's UID; a cluster administrator can adopt it "
                f"with `kubectl label namespace {namespace} {resource.LABEL_OWNER_UID}={ctx.uid}`")
    else:
        whose = "it exists and Tollgate did not create it (no tollgate.dev/owner-uid label)"
    default = default_sandbox_namespace(ctx.namespace, ctx.name, ctx.sandbox)
    fix = (f"set spec.sandbox.namespace to a namespace that does not exist yet (Tollgate creates it), or remove "
           f"it to use the default {default!r}") if explicit else (
           f"delete namespace {namespace!r} if it is left over, or set spec.sandbox.namespace to a namespace "
           "that does not exist yet")
    return (f"{where} {namespace!r} is not Tollgate's to use for {me}: {whose}; Tollgate writes only into a "
            f"sandbox it created for this ModelDeployment and wrote nothing: {fix}")


class SandboxOwnership:
    """Remembers the sandboxes proven ours (namespace -> owner UID); reads only what it does not know."""

    def __init__(self, kube: Kube) -> None:
        self._kube = kube
        self._owner: dict[str, str] = {}
        self._foreign: set[str] = set()
        """Names found held by somebody else, read again before every decision naming them (no create is
        attempted into a name known to be taken; a recheck that finds it gone drops it)."""
        self._lock = threading.Lock()

    def learn(self, namespace: Mapping[str, Any]) -> None:
        """A namespace seen in a LIST or watch: remember its owner UID, if it has one."""
        meta = namespace.get("metadata") or {}
        uid = (meta.get("labels") or {}).get(resource.LABEL_OWNER_UID)
        with self._lock:
            if uid:
                self._owner[meta["name"]] = uid
            else:
                self._owner.pop(meta["name"], None)

    def forget(self, namespace: str) -> None:
        with self._lock:
            self._owner.pop(namespace, None)
            self._foreign.discard(namespace)

    def owned(self, namespace: str, ctx: Context) -> bool:
        with self._lock:
            return self._owner.get(namespace) == ctx.uid

    def with_legacy(self, ctx: Context, *, explicit: bool) -> Context:
        """`ctx` naming the 6-hex cut default sandbox an older release created for this very ModelDeployment
        (its UID on it, known from the start-up LIST or the watch) when status does not record it: that
        release created the namespace and then failed, or was stopped, before its status write. Without
        this the default would now be the longer-hash name, and a second sandbox would start beside the first,
        which would never be deleted. No reads: only what is already known."""
        if explicit or ctx.sandbox:
            return ctx
        legacy = legacy_cut_namespace(ctx.namespace, ctx.name)
        if legacy is not None and self.owned(legacy, ctx):
            return replace(ctx, sandbox=legacy)
        return ctx

    def read_first(self, namespace: str, ctx: Context, *, explicit: bool) -> bool:
        """Whether `namespace` must be read before the decision (`check`), or can be left to the create that
        claims it. An explicit name is read unless it is ours (its grant first, so that an ungranted name is
        never attempted); a default name only when it is known to be held: by another ModelDeployment (its
        UID seen on it) or by somebody else (found by an earlier check). Nobody else can pick a default name
        (it hashes this ModelDeployment's namespace and name; the CRD refuses its shape as an explicit name),
        so it is held only by a collision or by somebody allowed to create namespaces, and the create finds
        that out as surely as a read: one request fewer in every new ModelDeployment's life (issue 22)."""
        with self._lock:
            owner = self._owner.get(namespace)
            if owner == ctx.uid:
                return False
            return explicit or owner is not None or namespace in self._foreign

    def check(self, namespace: str, ctx: Context, *, explicit: bool) -> None:
        """Raise SandboxNotOwnedError unless `namespace` is absent or this ModelDeployment's sandbox (one GET
        at most), and, for an explicit name, SandboxNotGrantedError unless the platform granted it (one GET
        of the ModelDeployment's namespace, before the sandbox's is read)."""
        if self.owned(namespace, ctx):
            return
        if explicit:
            tenant = self._kube.get(ObjectRef("v1", "Namespace", ctx.namespace))
            why = ungranted(namespace, granted_prefixes(tenant), ctx)
            if why is not None:
                raise SandboxNotGrantedError(why)
        live = self._kube.get(ObjectRef("v1", "Namespace", namespace))
        if live is None:
            with self._lock:
                self._foreign.discard(namespace)
            return
        self.learn(live)
        if not self.owned(namespace, ctx):
            with self._lock:
                self._foreign.add(namespace)
            raise SandboxNotOwnedError(refusal(namespace, live, ctx, explicit))

    def claim(self, manifest: Mapping[str, Any], ctx: Context, *, explicit: bool) -> None:
        """Create the sandbox namespace for this ModelDeployment unless it is ours already; a name taken
        meanwhile is checked like any existing namespace (SandboxNotOwnedError unless it carries our UID)."""
        name = manifest["metadata"]["name"]
        if self.owned(name, ctx):
            return
        created = self._kube.create(manifest)
        if created is not None:
            self.learn(created)
            log.info("created sandbox namespace", extra={"namespace": name, "md": f"{ctx.namespace}/{ctx.name}"})
            return
        self.check(name, ctx, explicit=explicit)
