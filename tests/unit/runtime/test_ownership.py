"""Which sandbox namespace a ModelDeployment may use: the grant of an explicit name, then the ownership.

The Kubernetes side is a recording stand-in for the adapter's two calls (get, create): what matters here is
which reads and writes the check makes, and that a refused name is never created or even looked at."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, cast

import pytest

from tollgate.adapters.kube import Kube
from tollgate.api import resource
from tollgate.engine.actions import Context, ObjectRef
from tollgate.engine.sandbox import default_sandbox_namespace, legacy_cut_namespace
from tollgate.runtime.ownership import (
    SandboxNotGrantedError,
    SandboxNotOwnedError,
    SandboxOwnership,
    granted_prefixes,
    ungranted,
)

CTX = Context(namespace="bank", name="fraud", uid="uid-bank-fraud", generation=1)


class Namespaces:
    """Namespaces by name, and every get and create the check made."""

    def __init__(self, *live: Mapping[str, Any]) -> None:
        self.live = {n["metadata"]["name"]: dict(n) for n in live}
        self.gets: list[str] = []
        self.creates: list[str] = []

    def get(self, ref: ObjectRef) -> dict[str, Any] | None:
        assert ref.kind == "Namespace"
        self.gets.append(ref.name)
        return self.live.get(ref.name)

    def create(self, manifest: Mapping[str, Any]) -> dict[str, Any] | None:
        name = manifest["metadata"]["name"]
        self.creates.append(name)
        if name in self.live:
            return None
        self.live[name] = dict(manifest)
        return dict(manifest)


def namespace(name: str, *, annotations: Mapping[str, str] | None = None,
              labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": name, "annotations": dict(annotations or {}), "labels": dict(labels or {})}}


def tenant(prefixes: str | None) -> dict[str, Any]:
    return namespace("bank", annotations={resource.ANNOTATION_SANDBOX_PREFIXES: prefixes} if prefixes else None)


def ownership(kube: Namespaces) -> SandboxOwnership:
    return SandboxOwnership(cast(Kube, kube))


def test_an_explicit_name_without_a_grant_is_refused_before_it_is_looked_at_or_created() -> None:
    # given a tenant namespace without the grant annotation, and another tenant's future namespace name
    kube = Namespaces(tenant(None))
    own = ownership(kube)
    # when bank/fraud names it as its sandbox
    with pytest.raises(SandboxNotGrantedError) as refused:
        own.check("payments", CTX, explicit=True)
    # then it is refused, naming the field, the value, the annotation and the fix
    message = str(refused.value)
    assert "spec.sandbox.namespace 'payments' is not granted to bank/fraud" in message
    assert resource.ANNOTATION_SANDBOX_PREFIXES in message and "remove spec.sandbox.namespace" in message
    # and only the tenant's own namespace was read: the target was neither read nor created
    assert kube.gets == ["bank"] and kube.creates == []


def test_an_explicit_name_outside_the_granted_prefixes_is_refused_and_names_them() -> None:
    kube = Namespaces(tenant("bank-sbx-, bank-lab-"))
    with pytest.raises(SandboxNotGrantedError) as refused:
        ownership(kube).check("payments-prod", CTX, explicit=True)
    assert "granted sandbox names starting with 'bank-sbx-', 'bank-lab-'" in str(refused.value)
    assert kube.gets == ["bank"]


def test_a_granted_absent_name_passes_and_is_then_claimed_without_further_reads() -> None:
    # given a grant and an absent namespace under it
    kube = Namespaces(tenant("bank-sbx-"))
    own = ownership(kube)
    # when the check runs, then it passes (the tenant's namespace, then the target, read once each)
    own.check("bank-sbx-fraud", CTX, explicit=True)
    assert kube.gets == ["bank", "bank-sbx-fraud"]
    # and when it is claimed, it is created with our UID and later checks read nothing
    created = namespace("bank-sbx-fraud", labels={resource.LABEL_OWNER_UID: CTX.uid})
    own.claim(created, CTX, explicit=True)
    own.check("bank-sbx-fraud", CTX, explicit=True)
    assert kube.creates == ["bank-sbx-fraud"] and kube.gets == ["bank", "bank-sbx-fraud"]


def test_a_withdrawn_grant_does_not_strand_a_sandbox_already_ours() -> None:
    # given a sandbox that carries our UID, in a tenant whose grant was withdrawn since
    kube = Namespaces(tenant(None), namespace("bank-sbx-fraud", labels={resource.LABEL_OWNER_UID: CTX.uid}))
    own = ownership(kube)
    own.learn(kube.live["bank-sbx-fraud"])
    # when it is checked, then it passes without reading anything
    own.check("bank-sbx-fraud", CTX, explicit=True)
    assert kube.gets == []


def test_a_granted_name_that_exists_and_is_not_ours_is_still_refused_by_ownership() -> None:
    kube = Namespaces(tenant("team-"), namespace("team-c"))
    with pytest.raises(SandboxNotOwnedError) as refused:
        ownership(kube).check("team-c", CTX, explicit=True)
    assert not isinstance(refused.value, SandboxNotGrantedError)
    assert "Tollgate did not create it" in str(refused.value)


def test_the_default_name_needs_no_grant() -> None:
    kube = Namespaces(tenant(None))
    ownership(kube).check(default_sandbox_namespace("bank", "fraud"), CTX, explicit=False)
    assert kube.gets == [default_sandbox_namespace("bank", "fraud")]


def test_a_name_shaped_like_another_default_is_refused_even_under_a_grant() -> None:
    # given a grant of "bank-", which reaches the default sandboxes of a namespace named bank-x
    victim = default_sandbox_namespace("bank-x", "fraud")
    assert victim.startswith("bank-")
    # then that name is refused for bank/fraud, and so is any other -<6 hex> tail
    assert "shape of a default sandbox name" in (ungranted(victim, ("bank-",), CTX) or "")
    assert ungranted("bank-cafe01", ("bank-",), CTX) is not None
    # and the -<16 hex> tail of a default cut to fit 63 characters
    long_victim = default_sandbox_namespace("bank-x", "f" * 60)
    assert re.search(r"-[0-9a-f]{16}$", long_victim)
    assert "shape of a default sandbox name" in (ungranted(long_victim, ("bank-",), CTX) or "")
    # but its own default, or a granted name of another shape, is not
    assert ungranted(default_sandbox_namespace("bank", "fraud"), ("bank-",), CTX) is None
    assert ungranted("bank-prod", ("bank-",), CTX) is None


def test_blank_entries_of_the_annotation_grant_nothing() -> None:
    assert granted_prefixes(tenant(" , ,")) == ()
    assert granted_prefixes(tenant("a-, b-")) == ("a-", "b-")
    assert granted_prefixes(None) == ()


# --- a sandbox an older release cut with 6 hex and did not record ----------------------------------------

LONG = Context(namespace="team-" + "b" * 40, name="a" * 30, uid="uid-long", generation=1)


def test_an_owned_unrecorded_6_hex_sandbox_is_kept_instead_of_starting_a_second() -> None:
    # given the 6-hex cut sandbox an older release created for this ModelDeployment (its UID on it, seen
    # in the start-up LIST) and then failed before writing status
    legacy = legacy_cut_namespace(LONG.namespace, LONG.name)
    assert legacy is not None and re.search(r"-[0-9a-f]{6}$", legacy)
    kube = Namespaces()
    owner = ownership(kube)
    owner.learn(namespace(legacy, labels={resource.LABEL_OWNER_UID: LONG.uid}))
    # when the context is completed, then the default is that sandbox, with no read
    ctx = owner.with_legacy(LONG, explicit=False)
    assert ctx.sandbox == legacy and default_sandbox_namespace(ctx.namespace, ctx.name, ctx.sandbox) == legacy
    assert kube.gets == []
    # but not for an explicit name, nor when status already names one
    assert owner.with_legacy(LONG, explicit=True) == LONG
    recorded = Context(LONG.name, LONG.namespace, LONG.uid, 1, sandbox="recorded")
    assert owner.with_legacy(recorded, explicit=False) == recorded


def test_a_6_hex_namespace_of_another_uid_or_a_name_that_fits_gets_no_legacy_name() -> None:
    legacy = legacy_cut_namespace(LONG.namespace, LONG.name)
    assert legacy is not None
    owner = ownership(Namespaces())
    owner.learn(namespace(legacy, labels={resource.LABEL_OWNER_UID: "somebody-else"}))
    assert owner.with_legacy(LONG, explicit=False) == LONG
    assert legacy_cut_namespace(CTX.namespace, CTX.name) is None
    assert owner.with_legacy(CTX, explicit=False) == CTX


def test_a_default_name_nobody_is_known_to_hold_is_left_to_the_create_and_a_held_one_is_read_first() -> None:
    default = default_sandbox_namespace("bank", "fraud")
    other = namespace(default, labels={resource.LABEL_OWNER_UID: "uid-other"})
    # given a default name nobody is known to hold, then it is not read before the decision (the claim's
    # create is the check); an explicit name always is, until it is ours
    kube = Namespaces()
    check = ownership(kube)
    assert check.read_first(default, CTX, explicit=False) is False
    assert check.read_first("bank-sbx-a", CTX, explicit=True) is True
    # given the default name seen labelled with another ModelDeployment's UID, then it is read first
    check.learn(other)
    assert check.read_first(default, CTX, explicit=False) is True
    # given a name a check found held by somebody else (no label), then it is read first until found gone
    kube = Namespaces(namespace(default))
    check = ownership(kube)
    with pytest.raises(SandboxNotOwnedError):
        check.claim({"metadata": {"name": default}}, CTX, explicit=False)
    assert kube.creates == [default] and kube.gets == [default]
    assert check.read_first(default, CTX, explicit=False) is True
    del kube.live[default]
    check.check(default, CTX, explicit=False)
    assert check.read_first(default, CTX, explicit=False) is False
    # given it is then created for this ModelDeployment, then it is ours and never read again
    check.claim({"metadata": {"name": default, "labels": {resource.LABEL_OWNER_UID: CTX.uid}}}, CTX, explicit=False)
    assert check.owned(default, CTX) and check.read_first(default, CTX, explicit=False) is False
    assert check.read_first(default, CTX, explicit=True) is False
