"""The testkit's etcd data in /dev/shm: a directory no running etcd uses is left by a killed run and is
removed at the next `up`; one in use, even with a longer port number sharing its prefix, never is."""

from __future__ import annotations

from pathlib import Path

from tollgate_testkit.controlplane import stale_etcd_dirs


def test_only_directories_no_running_etcd_uses_are_stale(tmp_path: Path) -> None:
    # given three etcd data directories, one of them used by a running etcd (whose port starts like another's)
    for port in ("123", "1234", "555"):
        (tmp_path / f"tollgate-etcd-{port}").mkdir()
    (tmp_path / "unrelated").mkdir()
    running = [f"/cache/bin/etcd --name=default --data-dir={tmp_path}/tollgate-etcd-1234 --unsafe-no-fsync",
               "python -m something"]
    # when the stale ones are looked for
    stale = stale_etcd_dirs(tmp_path, running)
    # then the used one (and the unrelated directory) stay, the two left behind are found
    assert stale == [tmp_path / "tollgate-etcd-123", tmp_path / "tollgate-etcd-555"]


def test_a_data_dir_given_last_on_the_command_line_counts_as_used(tmp_path: Path) -> None:
    (tmp_path / "tollgate-etcd-9").mkdir()
    assert stale_etcd_dirs(tmp_path, [f"etcd --data-dir={tmp_path}/tollgate-etcd-9"]) == []
