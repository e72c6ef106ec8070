"""The sandbox's copy of model-delivery credentials: filled from the Secret in the ModelDeployment's own
namespace, refused with the fix when it cannot be, never re-read on every decision."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import pytest

from tollgate.adapters.errors import PermanentError
from tollgate.api.spec import ModelDeploymentSpec
from tollgate.engine.actions import Context, ObjectRef
from tollgate.engine.model_delivery import credentials_copy
from tollgate.runtime.credentials import REFRESH_SECONDS, CredentialsCopier, CredentialsUnavailableError

CTX = Context(name="scorer", namespace="team-a", uid="u-1", generation=1)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@dataclass
class FakeKube:
    secrets: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    forbidden: bool = False
    gets: list[ObjectRef] = field(default_factory=list)

    def get(self, ref: ObjectRef) -> dict[str, Any] | None:
        self.gets.append(ref)
        if self.forbidden:
            raise PermanentError("secrets is forbidden", status=403)
        return self.secrets.get((ref.namespace or "", ref.name))


def _spec() -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate({
        "model": {"name": "scorer", "version": "1.0.0", "uri": "s3://models/scorer/1.0.0"},
        "runtime": {"image": "img:1"},
        "modelDelivery": {"credentials": {"secretName": "model-store-credentials"}}})


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_copy_is_filled_from_the_secret_in_the_modeldeployments_namespace() -> None:
    kube = FakeKube({("team-a", "model-store-credentials"): {"data": {
        "AWS_ACCESS_KEY_ID": b64("ak"), "AWS_SECRET_ACCESS_KEY": b64("sk"), "not-an-env-name": b64("x")}}})
    copier = CredentialsCopier(kube)  # type: ignore[arg-type]
    copy = credentials_copy(_spec(), CTX, "sandbox-1")
    assert copy is not None
    filled = copier.fill(copy)
    # only keys that can be environment variables; the engine's manifest itself had no data
    assert filled["data"] == {"AWS_ACCESS_KEY_ID": b64("ak"), "AWS_SECRET_ACCESS_KEY": b64("sk")}
    assert "data" not in copy
    assert kube.gets == [ObjectRef("v1", "Secret", "model-store-credentials", "team-a")]


def test_other_objects_pass_through() -> None:
    obj = {"kind": "Service", "metadata": {"name": "x"}}
    assert CredentialsCopier(FakeKube()).fill(obj) == obj  # type: ignore[arg-type]


def test_the_source_is_read_again_only_after_the_refresh_interval() -> None:
    kube = FakeKube({("team-a", "model-store-credentials"): {"data": {"AWS_ACCESS_KEY_ID": b64("ak")}}})
    clock = Clock()
    copier = CredentialsCopier(kube, clock=clock)  # type: ignore[arg-type]
    for _ in range(5):
        copier.prepare(_spec(), CTX)
    assert len(kube.gets) == 1
    clock.now = REFRESH_SECONDS + 1
    copier.prepare(_spec(), CTX)
    assert len(kube.gets) == 2


def test_a_missing_secret_names_it_and_the_fix() -> None:
    with pytest.raises(CredentialsUnavailableError, match=r"Secret team-a/model-store-credentials .* does not "
                                                          r"exist: create it in namespace team-a"):
        CredentialsCopier(FakeKube()).prepare(_spec(), CTX)  # type: ignore[arg-type]


def test_a_secret_the_operator_may_not_read_names_the_chart_value() -> None:
    with pytest.raises(CredentialsUnavailableError, match=r"modelDelivery\.credentialSecretNames"):
        CredentialsCopier(FakeKube(forbidden=True)).prepare(_spec(), CTX)  # type: ignore[arg-type]


def test_a_secret_without_usable_keys_is_refused() -> None:
    kube = FakeKube({("team-a", "model-store-credentials"): {"data": {"aws-access-key": b64("ak")}}})
    with pytest.raises(CredentialsUnavailableError, match="no key that is an environment variable name"):
        CredentialsCopier(kube).prepare(_spec(), CTX)  # type: ignore[arg-type]


def test_no_credentials_reads_nothing() -> None:
    kube = FakeKube()
    spec = ModelDeploymentSpec.model_validate({"model": {"name": "s", "version": "1.0.0"}, "runtime": {"image": "i"}})
    CredentialsCopier(kube).prepare(spec, CTX)  # type: ignore[arg-type]
    assert kube.gets == []


def test_secret_values_are_not_kept_past_the_refresh_interval_once_unused() -> None:
    # given the credentials of a ModelDeployment read once, which is then deleted (never asked for again)
    kube = FakeKube({("team-a", "model-store-credentials"): {"data": {"AWS_ACCESS_KEY_ID": b64("ak")}},
                     ("team-b", "model-store-credentials"): {"data": {"AWS_ACCESS_KEY_ID": b64("bk")}}})
    clock = Clock()
    copier = CredentialsCopier(kube, clock=clock)  # type: ignore[arg-type]
    copier.prepare(_spec(), CTX)
    # when another team's Secret is read after the refresh interval
    clock.now = REFRESH_SECONDS + 1
    copier.prepare(_spec(), Context(name="ranker", namespace="team-b", uid="u-2", generation=1))
    # then the first Secret's values are no longer held in memory
    assert list(copier._read) == [("team-b", "model-store-credentials")]
