"""Probes suit slow-loading models by default and can be overridden (issue 19)."""

from __future__ import annotations

from typing import Any

from tollgate.engine.observations import Track
from tollgate.engine.revision import desired_revision
from tollgate.engine.workloads import TrackPlan, deployment

from .conftest import CTX, make_spec


def _container(**spec: Any) -> dict[str, Any]:
    s = make_spec(**spec)
    dep = deployment(s, CTX, Track.CANARY, TrackPlan(desired_revision(s), 1))
    container: dict[str, Any] = dep["spec"]["template"]["spec"]["containers"][0]
    return container


def test_defaults_give_a_loading_model_the_whole_progress_deadline() -> None:
    # given a 5-minute progress deadline and no probe settings
    c = _container(runtime={"image": "img:1", "readinessPath": "/v2/health/ready"})
    # then startup checks readiness every 10s for 5 minutes before liveness may act
    assert c["startupProbe"] == {"httpGet": {"path": "/v2/health/ready", "port": "http"}, "periodSeconds": 10,
                                 "timeoutSeconds": 5, "failureThreshold": 30}
    assert c["readinessProbe"] == {"httpGet": {"path": "/v2/health/ready", "port": "http"}, "periodSeconds": 5,
                                   "timeoutSeconds": 2, "failureThreshold": 3}
    # and liveness only checks the server accepts connections (a busy model is not restarted)
    assert c["livenessProbe"] == {"tcpSocket": {"port": "http"}, "periodSeconds": 15, "timeoutSeconds": 5,
                                  "failureThreshold": 4}


def test_startup_budget_follows_a_longer_deadline() -> None:
    rollout = {"steps": [{"weight": 50}, {"weight": 100}], "progressDeadline": "30m"}
    assert _container(rollout=rollout)["startupProbe"]["failureThreshold"] == 180


def test_every_probe_setting_can_be_overridden_and_startup_and_liveness_turned_off() -> None:
    c = _container(probes={"readiness": {"path": "/ok", "periodSeconds": 2, "timeoutSeconds": 1, "failureThreshold": 5,
                                         "initialDelaySeconds": 3},
                           "liveness": {"path": "/live"}, "startup": {"enabled": False}})
    assert c["readinessProbe"] == {"httpGet": {"path": "/ok", "port": "http"}, "periodSeconds": 2, "timeoutSeconds": 1,
                                   "failureThreshold": 5, "initialDelaySeconds": 3}
    assert c["livenessProbe"]["httpGet"] == {"path": "/live", "port": "http"}
    assert "startupProbe" not in c
    assert "livenessProbe" not in _container(probes={"liveness": {"enabled": False}})
