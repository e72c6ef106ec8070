"""docs/operations.md, "Connecting your metrics": the scrape config and the worked PromQL are exact."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tollgate.adapters.metric_profiles import PROFILES
from tollgate.adapters.slo_templates import TEMPLATES, selector

REPO = Path(__file__).resolve().parents[3]
DOC = (REPO / "docs" / "operations.md").read_text()


def _between(name: str) -> str:
    begin, end = f"<!-- {name}:begin -->\n", f"<!-- {name}:end -->"
    return DOC[DOC.index(begin) + len(begin):DOC.index(end)]


def test_the_documented_scrape_config_is_the_shipped_file() -> None:
    shipped = (REPO / "deploy" / "prometheus" / "scrape-config.yaml").read_text()
    assert _between("scrape-config") == f"```yaml\n{shipped}```\n"


EXAMPLES = re.findall(r"<!-- example:(\w+):([\w-]+):begin -->", DOC)


def test_every_profile_has_a_section_and_a_worked_example() -> None:
    assert {p for p, _ in EXAMPLES} == set(PROFILES)
    for profile in PROFILES:
        assert f"(`{profile}`)" in DOC


@pytest.mark.parametrize(("profile", "template"), EXAMPLES)
def test_worked_examples_are_what_the_operator_sends(profile: str, template: str) -> None:
    # given the example ModelDeployment ml-team/fraud in sandbox ml-team-fraud-3f9a1c, 1m window
    sel = selector([("ml-team-fraud-3f9a1c", "ml-team", "fraud")])
    expected = TEMPLATES[template].render(sel, "1m", PROFILES[profile])
    # then the doc shows exactly the query the adapter renders
    assert _between(f"example:{profile}:{template}") == f"```promql\n{expected}\n```\n"
