"""The alert rules load in Prometheus' own checker and behave as their promtool unit tests say."""

from __future__ import annotations

import subprocess
from pathlib import Path

from integration.packaging import tools

RULES = tools.REPO / "deploy" / "prometheus"


def promtool() -> Path:
    out = subprocess.run(["bash", str(tools.REPO / "hack" / "prometheus" / "install.sh")], check=True,
                         stdout=subprocess.PIPE, text=True)
    return Path(out.stdout.strip().splitlines()[-1]) / "promtool"


def test_alert_rules_pass_promtool_check_and_unit_tests() -> None:
    tool = promtool()
    # given the rules file, when promtool checks it, then it loads every rule
    check = tools.run(tool, "check", "rules", RULES / "tollgate-alerts.yaml")
    assert "SUCCESS: 5 rules found" in check.stdout + check.stderr
    # when promtool runs the rules' unit tests (rollback fires with its reason and resolves; a rollout
    # with a frozen weight is stuck after 30m, a moving one or one awaiting approval is not; no leader)
    res = subprocess.run([str(tool), "test", "rules", "tollgate-alerts.test.yaml"], cwd=RULES, capture_output=True,
                         text=True, check=False)
    # then they pass
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS" in res.stdout + res.stderr
