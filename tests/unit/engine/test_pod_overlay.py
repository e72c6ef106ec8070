"""spec.podTemplate: laid over every track's pod template, merged by key, and held to Pod Security restricted
(engine.pod_overlay)."""

from __future__ import annotations

from typing import Any

import pytest

from tollgate.api.pod_template import Capabilities, Container, ContainerSecurity, PodSpec, PodTemplate, Volume
from tollgate.engine.observations import Track
from tollgate.engine.revision import desired_revision
from tollgate.engine.workloads import TrackPlan, deployment

from .conftest import CTX, make_spec

OVERLAY = {
    "metadata": {"labels": {"team": "fraud"},
                 "annotations": {"example.com/owner": "fraud-team"}},
    "spec": {
        "containers": [{
            "name": "model-server",
            "command": ["/bin/serve", "--fast"],
            "env": [{"name": "STORE_KEY", "valueFrom": {"secretKeyRef": {"name": "store", "key": "key"}}},
                    {"name": "MODEL_NAME", "value": "hijacked"},
                    {"name": "LOG_LEVEL", "value": "debug"}],
            "envFrom": [{"configMapRef": {"name": "settings"}}],
            "volumeMounts": [{"name": "cache", "mountPath": "/models"},
                             {"name": "cache", "mountPath": "/tmp"}],
            "securityContext": {"runAsUser": 1000, "capabilities": {"add": ["NET_BIND_SERVICE"]}},
        }],
        "volumes": [{"name": "cache", "emptyDir": {"sizeLimit": "20Gi"}},
                    {"name": "settings", "configMap": {"name": "settings"}}],
        "imagePullSecrets": [{"name": "registry"}],
        "runtimeClassName": "nvidia",
        "terminationGracePeriodSeconds": 120,
        "securityContext": {"runAsUser": 1000, "fsGroup": 2000},
    },
}


def _pod(overlay: dict[str, Any] | PodTemplate | None, track: Track = Track.STABLE) -> dict[str, Any]:
    spec = make_spec(podTemplate=overlay) if not isinstance(overlay, PodTemplate) else make_spec()
    if isinstance(overlay, PodTemplate):
        spec = spec.model_copy(update={"podTemplate": overlay})
    template: dict[str, Any] = deployment(spec, CTX, track, TrackPlan(desired_revision(spec), 2))["spec"]["template"]
    return template


@pytest.mark.parametrize("track", list(Track))
def test_the_overlay_reaches_every_track_merged_by_key_with_tollgates_own_parts_winning(track: Track) -> None:
    pod = _pod(OVERLAY, track)
    labels = pod["metadata"]["labels"]
    assert labels["team"] == "fraud" and labels["tollgate.dev/track"] == track.value
    assert pod["metadata"]["annotations"]["example.com/owner"] == "fraud-team"
    assert "tollgate.dev/metrics-port" in pod["metadata"]["annotations"]
    (container,) = pod["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["STORE_KEY"] == {"name": "STORE_KEY", "valueFrom": {"secretKeyRef": {"name": "store", "key": "key"}}}
    assert env["MODEL_NAME"]["value"] == "fraud-scorer"  # Tollgate's variable is not overridden
    assert env["LOG_LEVEL"]["value"] == "debug"
    assert container["envFrom"] == [{"configMapRef": {"name": "settings"}}]
    assert container["command"] == ["/bin/serve", "--fast"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts["/tmp"] == "tmp" and mounts["/models"] == "cache"  # /tmp stays Tollgate's
    assert mounts["/mnt/models"] == "model-cache"  # and so does the model delivery's cache
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["tmp"] == {"name": "tmp", "emptyDir": {}}
    assert volumes["cache"] == {"name": "cache", "emptyDir": {"sizeLimit": "20Gi"}}
    assert volumes["settings"] == {"name": "settings", "configMap": {"name": "settings"}}
    assert pod["spec"]["imagePullSecrets"] == [{"name": "registry"}]
    assert pod["spec"]["runtimeClassName"] == "nvidia"
    assert pod["spec"]["terminationGracePeriodSeconds"] == 120
    assert pod["spec"]["securityContext"]["runAsUser"] == 1000 and pod["spec"]["securityContext"]["fsGroup"] == 2000
    security = container["securityContext"]
    assert security["runAsUser"] == 1000
    assert security["capabilities"] == {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]}
    assert security["allowPrivilegeEscalation"] is False and security["runAsNonRoot"] is True


def test_no_overlay_leaves_the_generated_pod_as_it_was() -> None:
    assert _pod(None) == _pod({})


def test_an_overlay_that_got_past_validation_still_renders_a_restricted_pod() -> None:
    # given an overlay built without validation (as if the API server's CEL had been bypassed)
    hostile = PodTemplate.model_construct(spec=PodSpec.model_construct(
        hostNetwork=True, hostPID=True, hostIPC=True,
        securityContext=None,
        volumes=[Volume.model_construct(name="root", configMap=None, secret=None, emptyDir=None,
                                        persistentVolumeClaim=None, hostPath={"path": "/"})],
        containers=[Container.model_construct(
            name="model-server", command=None, workingDir=None, env=None, envFrom=None, volumeMounts=None,
            securityContext=ContainerSecurity.model_construct(
                runAsUser=0, runAsGroup=None, runAsNonRoot=False, readOnlyRootFilesystem=None,
                privileged=True, allowPrivilegeEscalation=True,
                capabilities=Capabilities.model_construct(add=["SYS_ADMIN", "NET_BIND_SERVICE"])))],
        imagePullSecrets=None, runtimeClassName=None, terminationGracePeriodSeconds=None))
    # when it is laid over the pod template
    pod = _pod(hostile)
    # then none of it reaches the pod: no host namespaces, no host path, root and privilege refused
    assert not {"hostNetwork", "hostPID", "hostIPC"} & set(pod["spec"])
    assert "root" not in [v["name"] for v in pod["spec"]["volumes"]]
    assert all("hostPath" not in v for v in pod["spec"]["volumes"])
    security = pod["spec"]["containers"][0]["securityContext"]
    assert "privileged" not in security and security["allowPrivilegeEscalation"] is False
    assert security["runAsNonRoot"] is True and security.get("runAsUser") != 0
    assert security["capabilities"] == {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]}
