"""Model delivery (issue 19): the storage initializer in every track's pod, the model cache, the credentials
copy without data, the digest of a fetched model, and the termination message both ends share."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from tollgate.engine.actions import Context
from tollgate.engine.model_delivery import ANNOTATION_COPY_OF, CREDENTIALS_SECRET, INIT_CONTAINER_NAME
from tollgate.engine.observations import Track
from tollgate.engine.revision import desired_revision
from tollgate.engine.workloads import TrackPlan, TrafficPlan, deployment, workload_objects
from tollgate.model_digest import DigestMismatch, mismatch_message, parse_mismatch, tree_digest

from .conftest import make_spec

CTX = Context(name="fraud-scorer", namespace="team-a", uid="u-1", generation=1)
DIGEST = "sha256:" + "a" * 64
OTHER = "sha256:" + "b" * 64


def _pod(**overrides: Any) -> dict[str, Any]:
    spec = make_spec(**overrides)
    dep = deployment(spec, CTX, Track.CANARY, TrackPlan(desired_revision(spec), 1), "registry.example/init:1")
    pod: dict[str, Any] = dep["spec"]["template"]["spec"]
    return pod


def test_every_fetched_model_gets_the_initializer_before_the_server() -> None:
    # given a model with an s3 uri, a digest and credentials
    pod = _pod(model={"name": "fraud-scorer", "version": "1.0.0", "uri": "s3://models/fraud/1.0.0", "digest": DIGEST},
               modelDelivery={"credentials": {"secretName": "model-store-credentials"}})
    # then the init container fetches it, with the uri, the directory and the digest to verify
    (init,) = pod["initContainers"]
    assert init["name"] == INIT_CONTAINER_NAME and init["image"] == "registry.example/init:1"
    env = {e["name"]: e["value"] for e in init["env"]}
    assert env == {"MODEL_URI": "s3://models/fraud/1.0.0", "MODEL_DIR": "/mnt/models", "MODEL_DIGEST": DIGEST}
    # its credentials come from the sandbox's copy, never a literal value
    assert init["envFrom"] == [{"secretRef": {"name": CREDENTIALS_SECRET}}]
    # it runs restricted like the server, and writes only the cache and /tmp
    assert init["securityContext"]["readOnlyRootFilesystem"] is True
    assert init["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert {m["name"] for m in init["volumeMounts"]} == {"model-cache", "tmp"}
    # the server reads the cache read-only and is told where
    (server,) = pod["containers"]
    assert {"name": "model-cache", "mountPath": "/mnt/models", "readOnly": True} in server["volumeMounts"]
    assert {"name": "MODEL_DIR", "value": "/mnt/models"} in server["env"]
    # the cache is an emptyDir with a size limit by default
    assert {"name": "model-cache", "emptyDir": {"sizeLimit": "10Gi"}} in pod["volumes"]


def test_the_cache_size_is_the_users() -> None:
    pod = _pod(modelDelivery={"cache": {"sizeLimit": "40Gi"}, "mountPath": "/models"})
    assert {"name": "model-cache", "emptyDir": {"sizeLimit": "40Gi"}} in pod["volumes"]
    env = {e["name"]: e["value"] for e in pod["initContainers"][0]["env"]}
    assert env["MODEL_DIR"] == "/models" and "MODEL_DIGEST" not in env


@pytest.mark.parametrize("uri", ["file:///models/iris-v1", None])
def test_models_the_server_opens_itself_get_no_initializer(uri: str | None) -> None:
    model: dict[str, Any] = {"name": "fraud-scorer", "version": "1.0.0"}
    if uri:
        model["uri"] = uri
    pod = _pod(model=model)
    assert "initContainers" not in pod
    assert all(v["name"] != "model-cache" for v in pod["volumes"])


def test_delivery_can_be_turned_off() -> None:
    assert "initContainers" not in _pod(modelDelivery={"enabled": False})


def test_the_credentials_copy_carries_the_source_name_and_no_data() -> None:
    spec = make_spec(modelDelivery={"credentials": {"secretName": "model-store-credentials"}})
    ref = desired_revision(spec)
    objs = workload_objects(spec, CTX, TrafficPlan(TrackPlan(ref, 2), None, None, 0, False))
    (secret,) = [o for o in objs if o["kind"] == "Secret"]
    assert secret["metadata"]["name"] == CREDENTIALS_SECRET
    assert secret["metadata"]["namespace"].startswith("team-a-fraud-scorer-")  # the sandbox
    assert secret["metadata"]["annotations"][ANNOTATION_COPY_OF] == "team-a/model-store-credentials"
    assert "data" not in secret and "stringData" not in secret
    # before the Deployments that use it
    kinds = [o["kind"] for o in objs]
    assert kinds.index("Secret") < kinds.index("Deployment")


def test_no_credentials_no_copy() -> None:
    spec = make_spec()
    objs = workload_objects(spec, CTX, TrafficPlan(TrackPlan(desired_revision(spec), 2), None, None, 0, False))
    assert all(o["kind"] != "Secret" for o in objs)


def test_delivery_settings_are_not_part_of_the_revision() -> None:
    plain = desired_revision(make_spec())
    cached = desired_revision(make_spec(modelDelivery={"cache": {"sizeLimit": "50Gi"},
                                                       "credentials": {"secretName": "x"}}))
    assert plain.revision == cached.revision


def test_digest_of_one_file_is_its_sha256() -> None:
    h = hashlib.sha256(b"weights").hexdigest()
    assert tree_digest([("model.joblib", h)]) == f"sha256:{h}"


def test_digest_of_a_tree_is_the_sha256_of_its_sorted_sha256sum_listing() -> None:
    a, b = hashlib.sha256(b"a").hexdigest(), hashlib.sha256(b"b").hexdigest()
    listing = f"{b}  config.json\n{a}  weights/part-1.bin\n"
    expected = "sha256:" + hashlib.sha256(listing.encode()).hexdigest()
    # whatever order the files were walked in
    assert tree_digest([("weights/part-1.bin", a), ("config.json", b)]) == expected
    assert tree_digest([("config.json", b), ("weights/part-1.bin", a)]) == expected


def test_nothing_fetched_has_no_digest() -> None:
    with pytest.raises(ValueError, match="no files"):
        tree_digest([])


def test_the_mismatch_message_round_trips() -> None:
    text = mismatch_message(DIGEST, OTHER, "s3://models/fraud/1.0.0")
    assert len(text) <= 4096
    assert parse_mismatch(text) == DigestMismatch(expected=DIGEST, actual=OTHER)


@pytest.mark.parametrize("text", [None, "", "Error", "{}", '{"reason": "ModelFetchFailed", "message": "x"}',
                                  '{"reason": "ModelDigestMismatch", "expected": 1, "actual": "x"}', "[1]"])
def test_other_termination_messages_are_not_mismatches(text: str | None) -> None:
    assert parse_mismatch(text) is None
