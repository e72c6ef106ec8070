"""--confirm-rollout-allow / --confirm-rollout-deny: the destination policy of confirmRollout URLs, from
flags or the chart's environment; a malformed entry stops the operator at start, naming it."""

from __future__ import annotations

import ipaddress

import pytest

from tollgate.adapters.destinations import DestinationPolicy
from tollgate.runtime import config


def test_without_settings_only_the_built_in_refusals_apply() -> None:
    assert config.parse([]).confirm_rollout_destinations == DestinationPolicy()


def test_the_flags_take_comma_separated_host_names_and_cidrs() -> None:
    # when the platform lists destinations on the command line
    s = config.parse(["--confirm-rollout-allow", "Gate.Example.com, *.gates.example.com,10.20.0.0/16",
                      "--confirm-rollout-deny", "10.96.0.0/12,fd00:10:96::/112"])
    # then names (lower case) and ranges are kept apart
    policy = s.confirm_rollout_destinations
    assert policy.allow_names == {"gate.example.com", "*.gates.example.com"}
    assert policy.allow_networks == (ipaddress.ip_network("10.20.0.0/16"),)
    assert policy.deny_networks == (ipaddress.ip_network("10.96.0.0/12"), ipaddress.ip_network("fd00:10:96::/112"))
    # and a subdomain of a *. entry is allowed, the bare domain and others are not
    public = ipaddress.ip_address("192.0.2.7")
    assert policy.refusal("a.gates.example.com", public) is None
    assert policy.refusal("gates.example.com", public) is not None
    assert policy.refusal("evil.example.net", public) is not None


def test_the_chart_sets_them_through_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOLLGATE_CONFIRM_ROLLOUT_ALLOW", "gate.example.com")
    monkeypatch.setenv("TOLLGATE_CONFIRM_ROLLOUT_DENY", "10.244.0.0/16")
    policy = config.parse([]).confirm_rollout_destinations
    assert policy.allow_names == {"gate.example.com"}
    assert policy.deny_networks == (ipaddress.ip_network("10.244.0.0/16"),)


@pytest.mark.parametrize(("argv", "says"), [
    (["--confirm-rollout-allow", "http://gate.example.com/"],
     "'http://gate.example.com/' must be a host name or a CIDR"),
    (["--confirm-rollout-allow", "10.0.0.0/33"], "'10.0.0.0/33' must be a host name or a CIDR"),
    (["--confirm-rollout-deny", "gate.example.com"], "'gate.example.com' must be a CIDR"),
])
def test_a_malformed_entry_is_refused_at_start(argv: list[str], says: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        config.parse(argv)
    assert says in capsys.readouterr().err
