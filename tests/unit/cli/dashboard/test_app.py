"""The dashboard's web application with a fake cluster session: pages, error pages, and controls that
write exactly what the plugin writes, only with the page's token and only from the served host."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from tollgate.cli.dashboard.app import TOKEN_HEADER, Settings, create_app
from tollgate.cli.dashboard.store import Store, problem_of
from tollgate.cli.errors import CliError, Exit
from unit.cli.samples import NOW, md, rolled_back

RECORD = {"incident": "fraud-incident-1", "result": "RolledBack", "reason": "AnalysisFailed",
          "message": "error-rate 0.12 > max 0.01", "at": "2026-03-01T11:53:00Z", "step": 1, "weight": 50,
          "modelDeployment": {"namespace": "ml", "name": "fraud"}, "canary": {"version": "2.0.0", "revision": "bbb"},
          "slos": [{"name": "error-rate", "verdict": "Fail", "value": 0.12, "threshold": "max 0.01"}],
          "observations": [{"name": "error-rate", "query": "sum by (track) (rate(errors[5s]))", "window": "5s"}]}


class FakeSession:
    """Stands in for cluster.Session: one object, its evidence, and the patches written."""

    namespace = "ml"
    context_user = "ctx-user"

    def __init__(self, obj: dict[str, Any]) -> None:
        self.obj = obj
        self.patches: list[dict[str, Any]] = []

    def get(self, namespace: str, name: str) -> dict[str, Any]:
        return self.obj

    def patch(self, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        self.patches.append(body)
        return self.obj

    def whoami(self) -> str | None:
        return "alice"

    def evidence(self, namespace: str, name: str) -> dict[str, Any]:
        return RECORD


def client(obj: dict[str, Any], **settings: Any) -> tuple[TestClient, FakeSession, Settings]:
    session = FakeSession(obj)
    store = Store()
    store.replace([obj], "all namespaces")
    s = Settings(session=session, store=store, series=None, prometheus=None, clock=lambda: NOW,  # type: ignore[arg-type]
                 **settings)
    return TestClient(create_app(s), base_url="http://127.0.0.1:3100"), session, s


def test_list_shows_each_modeldeployment_with_phase_step_weight_tier_health_and_incident() -> None:
    c, _, _ = client(rolled_back())
    page = c.get("/")
    assert page.status_code == 200
    assert 'href="/md/ml/fraud"' in page.text and "RolledBack" in page.text and "medium" in page.text
    assert "Current" in page.text and 'href="/md/ml/fraud#evidence">RolledBack 2.0.0' in page.text


def test_detail_shows_steps_analysis_evidence_and_history() -> None:
    c, _, _ = client(rolled_back())
    page = c.get("/md/ml/fraud")
    assert page.status_code == 200
    text = page.text
    assert text.count('class="step ') == 3 and "approval gate: approved by alice@" in text
    assert "error-rate 0.12 &gt; max 0.01" in text and "sum by (track) (rate(errors[5s]))" in text
    assert "fraud-incident-1" in text and "/static/plotly.min.js" in text
    # the fragment the page fetches on each watch event is the live part alone
    fragment = c.get("/md/ml/fraud?fragment=1").text
    assert "<html" not in fragment and 'id="steps"' in fragment


def test_object_names_are_escaped() -> None:
    obj = md(message="<script>alert(1)</script>")
    c, _, _ = client(obj)
    assert "<script>alert(1)</script>" not in c.get("/md/ml/fraud").text


def test_unknown_object_and_cluster_problems_get_an_error_page_with_the_fix() -> None:
    c, _, s = client(md())
    missing = c.get("/md/ml/nope")
    assert missing.status_code == 404 and "among those you can read" in missing.text
    s.store.objects.clear()
    s.store.fail(problem_of(CliError("forbidden: you may not list modeldeployments", Exit.FORBIDDEN),
                            "all namespaces"))
    page = c.get("/")
    assert page.status_code == 403 and "You may not read ModelDeployments" in page.text
    assert "kubectl auth can-i watch modeldeployments.tollgate.dev" in page.text
    s.store.fail(problem_of(CliError("cannot reach the API server: refused", Exit.UNREACHABLE), "all namespaces"))
    page = c.get("/md/ml/fraud")
    assert page.status_code == 502 and "The cluster cannot be reached" in page.text


def test_charts_without_prometheus_say_how_to_configure_it() -> None:
    c, _, _ = client(md())
    answer = c.get("/md/ml/fraud/series")
    assert answer.status_code == 503 and "--prometheus-url" in answer.json()["error"]


def test_a_control_writes_what_the_plugin_writes() -> None:
    # given a canary waiting at its approval gate
    c, session, s = client(md("AwaitingApproval", step=1, weight=10))
    # when approve is posted with the page's token
    answer = c.post("/md/ml/fraud/controls/approve", headers={TOKEN_HEADER: s.token})
    # then the plugin's annotation is written, with who and when
    assert answer.status_code == 200, answer.text
    assert session.patches == [{"metadata": {"annotations": {
        "tollgate.dev/approve": "alice@2026-03-01T12:00:00.000000Z"}}}]
    assert answer.json()["does"].startswith("the operator approves step 2/3 (50%)")
    # and a spec toggle sets the field
    assert c.post("/md/ml/fraud/controls/kill", headers={TOKEN_HEADER: s.token}).status_code == 200
    assert session.patches[-1] == {"spec": {"killSwitch": True}}


def test_a_control_that_makes_no_sense_now_is_refused_and_writes_nothing() -> None:
    c, session, s = client(md("Progressing"))
    answer = c.post("/md/ml/fraud/controls/retry", headers={TOKEN_HEADER: s.token})
    assert answer.status_code == 409 and "nothing was rolled back" in answer.json()["error"]
    assert session.patches == []


@pytest.mark.parametrize("headers", [{}, {TOKEN_HEADER: "guessed"}])
def test_a_control_without_the_page_token_is_refused(headers: dict[str, str]) -> None:
    # a page of another site can POST to localhost, but it cannot read the token
    c, session, _ = client(md())
    assert c.post("/md/ml/fraud/controls/abort", headers=headers).status_code == 403
    assert session.patches == []


def test_requests_for_another_host_name_are_refused() -> None:
    # DNS rebinding: evil.example resolving to 127.0.0.1 must not reach the page or its token
    c, _, _ = client(md())
    assert c.get("/", headers={"host": "evil.example:3100"}).status_code == 400


def test_read_only_has_no_buttons_and_refuses_controls() -> None:
    c, session, s = client(md(), read_only=True)
    assert 'class="control' not in c.get("/md/ml/fraud").text
    assert c.post("/md/ml/fraud/controls/abort", headers={TOKEN_HEADER: s.token}).status_code == 403
    assert session.patches == []


def test_plotly_is_served_from_the_installed_package() -> None:
    c, _, _ = client(md())
    js = c.get("/static/plotly.min.js")
    assert js.status_code == 200 and "plotly" in js.text[:2000].lower()
    assert c.get("/static/dashboard.js").status_code == 200
