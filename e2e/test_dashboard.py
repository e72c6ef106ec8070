"""The dashboard in a real browser during a rollout that is approved in the page and then rolled back.

Debian's Chromium, headless, driven by Selenium through Debian's chromedriver (never a browser or a
driver downloaded by a tool), opens `kubectl tollgate dashboard` running as its own process against
the local control plane, with the real operator, Prometheus and traffic simulator. What the test
asserts is what a person sees on the page. It saves the screenshots linked from the README into
docs/.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e_world import LocalWorld, World
from integration.cli.dashboard import Dashboard, running_dashboard
from test_rollouts import model, stable

DOCS = Path(__file__).resolve().parent.parent / "docs"
ARTIFACTS = Path(os.environ.get("TOLLGATE_ARTIFACTS") or Path(tempfile.gettempdir()) / "tollgate-artifacts")
"""Where a run leaves what a person may want to look at afterwards (screenshots); outside the tree."""
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1400,1000"]
WAIT = 90.0
"""Longest a page may take to show what the cluster already says (a bound on failure, not a timing claim)."""


@pytest.fixture
def browser() -> Iterator[Any]:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(p)]
    if missing:
        pytest.skip(f"{', '.join(missing)} missing: apt-get install chromium chromium-driver (.ci/run does)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must never fetch a browser or a driver
    profile = tempfile.mkdtemp(prefix="tollgate-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def until(driver: Any, what: str, predicate: Any) -> Any:
    """Wait for the page to show something; fail with what was expected and what the page says."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, WAIT, poll_frequency=0.25).until(predicate)
    except TimeoutException:
        body = driver.find_element("tag name", "body").text
        raise AssertionError(f"the page never showed {what}; it shows:\n{body[:3000]}") from None


def text_of(driver: Any, css: str) -> str:
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    try:
        return str(driver.find_element("css selector", css).text)
    except (NoSuchElementException, StaleElementReferenceException):
        return ""


def texts(driver: Any, css: str) -> list[str]:
    """The visible text of every match, read in one script (sections are replaced on each watch event,
    so elements found one call earlier may be gone)."""
    found = driver.execute_script(
        "return Array.prototype.map.call(document.querySelectorAll(arguments[0]), function (e) {"
        "  return e.innerText.trim(); });", css)
    return [" ".join(str(t).split()) for t in found]


def click(driver: Any, css: str) -> None:
    """Click what the page shows now (retrying when a live update replaced the element meanwhile)."""
    from selenium.common.exceptions import StaleElementReferenceException

    def clicked(d: Any) -> bool:
        try:
            d.find_element("css selector", css).click()
        except StaleElementReferenceException:
            return False
        return True

    until(driver, f"{css} to click", clicked)


def screenshot(driver: Any, name: str) -> None:
    """A full-page screenshot. docs/cli.md shows these pictures; a test run must not rewrite the
    checked-in ones behind the developer's back, so they land in ARTIFACTS unless
    DASHBOARD_SCREENSHOTS_TO_DOCS=1 asks to refresh docs/."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1400, min(max(int(height) + 40, 900), 6000))
    out = DOCS if os.environ.get("DASHBOARD_SCREENSHOTS_TO_DOCS") == "1" else ARTIFACTS
    out.mkdir(parents=True, exist_ok=True)
    assert driver.save_screenshot(str(out / name))
    driver.set_window_size(1400, 1000)


def approve_annotation(world: World, name: str) -> str:
    md = world.md(world.namespace, name) or {}
    return str(((md.get("metadata") or {}).get("annotations") or {}).get("tollgate.dev/approve") or "")


def test_dashboard_shows_a_rollout_approved_in_the_page_and_rolled_back(world: World, browser: Any) -> None:
    if not isinstance(world, LocalWorld):
        pytest.skip("the dashboard runs beside the local control plane (its Prometheus is on loopback)")
    ns = world.namespace
    # given a stable model, a second one beside it, and a release whose 40% step needs approval (and whose
    # 60% step then holds a minute, long enough for the regression to show)
    stable(world, model(world, "ranker", [{"weight": 50}, {"weight": 100}]))
    fraud = model(world, "fraud", [{"weight": 25}, {"weight": 40, "approval": "required"},
                                   {"weight": 60, "pause": "60s"}, {"weight": 100}], riskTier="high")
    fraud["spec"]["rollout"]["bakeWindow"] = "0s"  # the tier's 10m bake would hold the first version that long
    stable(world, fraud)
    with running_dashboard(world.kubeconfig, "--prometheus-url", world.stack.prometheus.url) as dash:
        world.set_version(ns, "fraud", "1.1.0")
        world.watch(ns, "fraud", ("AwaitingApproval",), min_weight_seen=25)
        check_list(browser, dash, ns)
        check_detail_and_approve(world, browser, dash, ns)
        # when the approved canary regresses at 60%
        world.watch(ns, "fraud", ("Progressing",), min_weight_seen=60)
        world.set_fault("1.1.0", error_rate=0.1)
        st = world.watch(ns, "fraud", ("RolledBack",)).final
        check_rolled_back(browser, st)
        screenshot(browser, "dashboard-rollout.png")
        browser.get(dash.url)
        until(browser, "the rollback in the list",
              lambda d: "RolledBack 1.1.0" in text_of(d, f'tr[data-md="{ns}/fraud"]'))
        # a rolled-back revision is Stalled=True for kstatus: Failed, as Argo CD and Flux would show it
        cells = texts(browser, f'tr[data-md="{ns}/fraud"] td')
        assert cells[2] == "RolledBack" and cells[3] == "Failed", cells
        screenshot(browser, "dashboard-list.png")


def check_list(browser: Any, dash: Dashboard, ns: str) -> None:
    # then the list shows both, with phase, step, weight, tier and kstatus health
    browser.get(dash.url)
    row = f'tr[data-md="{ns}/fraud"]'
    until(browser, "fraud awaiting approval at 25%", lambda d: "AwaitingApproval" in text_of(d, row))
    cells = texts(browser, f"{row} td")
    assert cells[:2] == [ns, "fraud"] and cells[4] == "2/4" and cells[5].endswith("25%"), cells
    assert cells[6] == "high" and cells[3] == "InProgress" and cells[10] == "-", cells
    other = texts(browser, f'tr[data-md="{ns}/ranker"] td')
    assert other[2] == "Stable" and other[3] == "Current" and other[6] == "medium", other


def check_detail_and_approve(world: World, browser: Any, dash: Dashboard, ns: str) -> None:
    click(browser, f'tr[data-md="{ns}/fraud"] a[href="/md/{ns}/fraud"]')
    until(browser, "the step timeline", lambda d: len(d.find_elements("css selector", "ol.steps > li.step")) == 4)
    steps = texts(browser, "ol.steps > li.step")
    assert "25%" in steps[0] and "done" in steps[0], steps
    assert "40%" in steps[1] and "awaiting approval" in steps[1] and "approval gate" in steps[1], steps
    # when a person clicks Approve, reads what it will do, and confirms
    assert approve_annotation(world, "fraud") == ""
    click(browser, 'button[data-control="approve"]')
    dialog = browser.find_element("id", "confirm")
    until(browser, "the confirmation", lambda d: dialog.is_displayed())
    assert "approves step 2/4 (40%) of canary 1.1.0" in dialog.text, dialog.text
    browser.find_element("id", "confirm-ok").click()
    # then the ModelDeployment carries the plugin's approval token, and the operator records it
    until(browser, "the approval written", lambda d: "tollgate.dev/approve=" in text_of(d, "#control-result"))
    token = approve_annotation(world, "fraud")
    assert "@" in token, token
    st = world.watch(ns, "fraud", ("Progressing",), min_weight_seen=40).final
    assert st["approvedBy"] == token
    # and the page, updated by the watch, names the approver on the gate
    until(browser, "the approver on step 2",
          lambda d: f"approved by {token}" in text_of(d, 'ol.steps > li[data-step="2"]'))


def check_rolled_back(browser: Any, st: dict[str, Any]) -> None:
    # then the open page turns RolledBack by itself (no reload)
    until(browser, "the phase RolledBack", lambda d: text_of(d, "#phase") == "RolledBack")
    # and the evidence is rendered: the decision, the failed SLO with value and threshold, the query
    until(browser, "the evidence", lambda d: st["lastIncident"] in text_of(d, "#evidence"))
    evidence = text_of(browser, "#evidence")
    failed = next(s for s in st["analysis"] if s["verdict"] == "Fail")
    assert failed["name"] == "error-rate", st["analysis"]
    rows = texts(browser, "#evidence tr.verdict-row-Fail")
    assert len(rows) == 1 and rows[0].startswith("error-rate Fail"), rows
    assert "max 0.05" in rows[0], rows
    assert "rest_server_requests_total" in evidence and "step 3, canary at 60%" in evidence, evidence  # mlserver
    # and the error-rate chart shows canary against stable, the threshold, the crossing and the verdicts
    until(browser, "the error-rate chart with its threshold crossed",
          lambda d: "threshold crossed at" in text_of(d, "#chart-error-rate-box figcaption"))
    # (the charts redraw on the watch's changes, throttled: the drawing that first shows the crossing may
    # predate the rollback's status write, seen once in a full e2e run)
    until(browser, "the rollback marked on the error-rate chart", lambda d: "RolledBack" in d.execute_script(
        "return document.getElementById('chart-error-rate').layout.annotations.map(function (a) { return a.text; });"))
    drawn = browser.execute_script(
        "var p = document.getElementById('chart-error-rate');"
        "return {traces: p.data.map(function (t) { return t.name; }),"
        "        marks: p.layout.annotations.map(function (a) { return a.text; }),"
        "        canaryMax: Math.max.apply(null, p.data[1].y.filter(function (v) { return v !== null; })),"
        "        svg: p.querySelectorAll('svg.main-svg').length};")
    assert drawn["svg"] > 0, drawn
    assert drawn["traces"][:3] == ["stable", "canary", "threshold max 0.05"], json.dumps(drawn)
    # the rollback may come from either limit (max 0.05, or stable + 0.03 when the canary's windowed rate
    # is still climbing at an early verdict); the chart marks the points beyond whichever was crossed, and
    # any point beyond a drawn threshold is above 0.03 (stable's rate is never negative)
    assert "beyond threshold" in drawn["traces"] and drawn["canaryMax"] > 0.03, json.dumps(drawn)
    assert "RolledBack" in drawn["marks"] and "AnalysisPassed" in drawn["marks"], json.dumps(drawn)
    assert "step 2 · 40%" in drawn["marks"] and "step 3 · 60%" in drawn["marks"], json.dumps(drawn)
    assert "Fail" in text_of(browser, "#chart-error-rate-box figcaption")
