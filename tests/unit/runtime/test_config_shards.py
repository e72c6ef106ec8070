"""--shards: a number of Leases, so it needs leader election and a bound; the error names the flag."""

from __future__ import annotations

import pytest

from tollgate.runtime import config


def test_shards_default_to_one_leader_and_take_a_count() -> None:
    assert config.parse([]).shards == 1
    assert config.parse(["--shards", "8"]).shards == 8


@pytest.mark.parametrize(("argv", "says"), [
    (["--shards", "0"], "--shards (0) must be between 1 and 64"),
    (["--shards", "65"], "--shards (65) must be between 1 and 64"),
    (["--shards", "2", "--lease-name", "x" * 64], "must be at most 63 characters with --shards"),
    (["--shards", "4", "--no-leader-election"], "--shards (4) needs leader election"),
])
def test_a_shard_count_the_operator_cannot_use_is_refused_at_start(
        argv: list[str], says: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        config.parse(argv)
    assert says in capsys.readouterr().err
