"""Custom PromQL is run only when every selector is pinned to the tenant's namespace."""

from __future__ import annotations

import pytest

from tollgate.adapters.promql_scope import Scope, ScopeError, check_scoped

TEAM_A = Scope("namespace", "team-a")


@pytest.mark.parametrize("query", [
    'sum(rate(req{namespace="team-a", track="canary"}[1m]))',
    'sum(rate(req{namespace="team-a",code=~"5.."}[1m])) / sum(rate(req{namespace="team-a"}[1m]))',
    'histogram_quantile(0.9, sum by (le) (rate(d_bucket{namespace="team-a"}[5m] offset 1m)))',
    'max_over_time(rate(req{namespace="team-a"}[1m])[10m:30s])',
    '{__name__=~"req.*", namespace="team-a"}',
    'up{namespace="team-a", job="x" or namespace="team-a", job="y"}',
    'req{namespace="team-a", namespace!="team-b"}',
    "vector(1)",
    "time() - 1",
])
def test_a_query_reading_only_its_own_namespace_is_accepted(query: str) -> None:
    check_scoped(query, TEAM_A)


@pytest.mark.parametrize("query, named", [
    ("sum(rate(req[1m]))", "req"),
    ('sum(rate(req{namespace="team-b"}[1m]))', "team-b"),
    ('sum(rate(req{namespace=~"team-a|team-b"}[1m]))', "team-a|team-b"),
    ('sum(rate(req{namespace=~"team-a"}[1m]))', "team-a"),
    ('req{namespace!="team-a"}', "req"),
    ('sum(rate(req{namespace="team-a"}[1m])) + on() group_left sum(secret_series)', "secret_series"),
    ('max_over_time(other{job="x"}[10m:30s])', "other"),
    ('up{namespace="team-a", job="x" or job="y"}', "up"),
    ('absent(req{namespace="team-a"}) * count({__name__=~".+"})', "__name__"),
    ('label_replace(req{namespace="team-b"}, "namespace", "team-a", "", "")', "team-b"),
])
def test_a_selector_reaching_another_namespace_is_refused_naming_it_and_the_fix(query: str, named: str) -> None:
    with pytest.raises(ScopeError) as err:
        check_scoped(query, TEAM_A)
    message = str(err.value)
    assert named in message
    assert '{{selector}}' in message and 'namespace="team-a"' in message


def test_a_query_that_does_not_parse_is_refused() -> None:
    with pytest.raises(ScopeError, match="does not parse"):
        check_scoped('sum(rate(req{namespace="team-a"}[1m]', TEAM_A)
