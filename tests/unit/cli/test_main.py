"""Argument handling and commands with a fake cluster session; every command's --help."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tollgate.cli import main
from tollgate.cli.errors import CliError, Exit
from unit.cli.samples import md

COMMANDS = ["get", "status", "promote", "approve", "abort", "retry", "pause", "resume", "kill", "unkill",
            "drill", "history", "evidence", "dashboard"]


class FakeSession:
    """Stands in for cluster.Session: serves one object, records patches."""

    def __init__(self, obj: dict[str, Any], namespace: str = "ml", user: str | None = "alice"):
        self.obj = obj
        self.namespace = namespace
        self.context = "ctx"
        self.context_user = "ctx-user"
        self.user = user
        self.patches: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []

    def get(self, namespace: str, name: str) -> dict[str, Any]:
        if name != self.obj["metadata"]["name"]:
            raise CliError(f'modeldeployment "{name}" in namespace "{namespace}" not found', Exit.NOT_FOUND)
        return self.obj

    def list(self, namespace: str | None) -> list[dict[str, Any]]:
        return [self.obj]

    def patch(self, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        self.patches.append(body)
        return self.obj

    def whoami(self) -> str | None:
        return self.user

    def evidence(self, namespace: str, name: str) -> dict[str, Any]:
        return {"incident": name, "result": "Aborted", "slos": []}

    def watch(self, namespace: str, name: str, resource_version: str, timeout: int) -> Iterator[dict[str, Any]]:
        while self.events:
            yield self.events.pop(0)


def run(session: FakeSession, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    seen: dict[str, Any] = {}

    def connector(kubeconfig: str | None, context: str | None, namespace: str | None) -> Any:
        seen.update(kubeconfig=kubeconfig, context=context, namespace=namespace)
        return session

    code = main.run(list(argv), stdout=out, stderr=err, connector=connector)
    session.connected_with = seen  # type: ignore[attr-defined]
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_help_exits_0_and_says_what_it_does(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    # when asking a command for help
    with pytest.raises(SystemExit) as info:
        main.run([command, "--help"])
    # then it exits 0 and explains itself on its own: what it reads or writes, an example, exit codes
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert f"usage: kubectl tollgate {command}" in text
    assert f"kubectl tollgate {command} " in text.split("examples:")[1]
    assert "exit codes:" in text and "--kubeconfig" in text and "--namespace" in text
    writes = {"approve": "tollgate.dev/approve=", "promote": "tollgate.dev/promote=", "abort": "tollgate.dev/abort=",
              "retry": "tollgate.dev/retry=", "pause": "spec.paused=true", "resume": "spec.paused=false",
              "kill": "spec.killSwitch=true", "unkill": "spec.killSwitch=false",
              "drill": "tollgate.dev/drill-kill-switch="}
    if command in writes:
        assert writes[command] in text and "the operator" in text.lower()
    else:
        assert "Read-only" in text


def test_top_level_help_lists_commands_and_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main.run(["--help"])
    text = capsys.readouterr().out
    assert info.value.code == 0
    assert all(c in text for c in COMMANDS)
    assert "never writes status" in text and "130" in text


def test_connection_flags_work_before_or_after_the_command() -> None:
    s = FakeSession(md())
    run(s, "--kubeconfig", "/k", "--context", "c", "-n", "team", "get")
    assert s.connected_with == {"kubeconfig": "/k", "context": "c", "namespace": "team"}  # type: ignore[attr-defined]
    run(s, "get", "--kubeconfig", "/k2", "-n", "other")
    assert s.connected_with == {"kubeconfig": "/k2", "context": None, "namespace": "other"}  # type: ignore[attr-defined]


def test_unknown_command_or_output_is_a_usage_error() -> None:
    for argv in (["frobnicate"], ["get", "-o", "xml"], ["status"]):
        with pytest.raises(SystemExit) as info:
            main.run(argv, stderr=io.StringIO())
        assert info.value.code == 2


def test_bare_promote_is_refused_before_touching_the_cluster() -> None:
    s = FakeSession(md())
    code, _, err = run(s, "promote", "fraud")
    assert code == Exit.USAGE and "--full" in err and "approve" in err
    assert not s.patches


def test_approve_writes_a_token_of_who_and_when_in_the_annotation() -> None:
    # given a gate waiting
    s = FakeSession(md("AwaitingApproval", step=1, weight=10))
    # when approving
    code, out, _ = run(s, "approve", "fraud")
    # then one merge patch of the annotation, with the reviewed user and an RFC 3339 time
    assert code == 0
    (patch,) = s.patches
    value = patch["metadata"]["annotations"]["tollgate.dev/approve"]
    assert value.startswith("alice@20") and value.endswith("Z")
    assert "approves step 2/3" in out


def test_control_in_the_wrong_phase_writes_nothing_and_exits_5() -> None:
    s = FakeSession(md("Stable", canary=False))
    code, _, err = run(s, "approve", "fraud")
    assert code == Exit.NOT_APPLICABLE and "nothing awaits approval" in err
    assert not s.patches


def test_the_kubeconfig_user_is_recorded_when_the_server_cannot_say() -> None:
    s = FakeSession(md("AwaitingApproval", step=1, weight=10), user=None)
    run(s, "approve", "fraud")
    assert s.patches[0]["metadata"]["annotations"]["tollgate.dev/approve"].startswith("ctx-user@")


def test_spec_toggles_warn_under_gitops_and_skip_no_ops() -> None:
    obj = md()
    obj["metadata"]["annotations"]["kustomize.toolkit.fluxcd.io/name"] = "apps"
    s = FakeSession(obj)
    code, out, err = run(s, "kill", "fraud")
    assert code == 0 and s.patches == [{"spec": {"killSwitch": True}}]
    assert "Flux" in err and "Git" in err and "spec.killSwitch=true written" in out
    # and a toggle that is already in place writes nothing
    code, out, _ = run(s, "unkill", "fraud")
    assert code == 0 and len(s.patches) == 1 and "nothing written" in out


def test_annotations_under_gitops_do_not_warn() -> None:
    obj = md("AwaitingApproval", step=1, weight=10)
    obj["metadata"]["labels"]["argocd.argoproj.io/instance"] = "apps"
    _, _, err = run(FakeSession(obj), "approve", "fraud")
    assert err == ""


def test_outputs_as_data() -> None:
    s = FakeSession(md(history=[{"revision": "r", "version": "1", "result": "Promoted", "at": "t"}]))
    assert json.loads(run(s, "get", "-o", "json")[1])[0]["phase"] == "Progressing"
    assert yaml.safe_load(run(s, "status", "fraud", "-o", "yaml")[1])["steps"][0]["state"] == "running"
    assert json.loads(run(s, "history", "fraud", "-o", "json")[1])[0]["result"] == "Promoted"
    assert json.loads(run(s, "evidence", "fraud", "--incident", "x", "-o", "json")[1])["incident"] == "x"


def test_evidence_without_an_incident_is_not_found() -> None:
    code, _, err = run(FakeSession(md()), "evidence", "fraud")
    assert code == Exit.NOT_FOUND and "no incident" in err


def test_not_found_is_exit_3() -> None:
    code, _, err = run(FakeSession(md()), "status", "other")
    assert code == Exit.NOT_FOUND and "not found" in err


def test_watch_redraws_until_the_rollout_ends_with_its_code() -> None:
    # given a rollout in progress whose next events end in a rollback
    s = FakeSession(md())
    s.events = [{"type": "MODIFIED", "object": md(step=1, weight=50)},
                {"type": "MODIFIED", "object": md("RolledBack", canary=False, rolledBackRevision="bbb222")}]
    # when watching (stdout is not a terminal)
    code, out, err = run(s, "status", "fraud", "--watch")
    # then one line per change, the full view at the end, and the RolledBack exit code
    assert code == Exit.ROLLED_BACK
    lines = [line for line in out.splitlines() if line[:2].isdigit()]
    assert [line.split()[1].rstrip(":") for line in lines] == ["Progressing", "Progressing", "RolledBack"]
    assert "Phase:         RolledBack" in out and "rollout ended RolledBack" in err


def test_watch_deleted_object_is_not_found() -> None:
    s = FakeSession(md())
    s.events = [{"type": "DELETED", "object": md()}]
    code, _, err = run(s, "status", "fraud", "--watch")
    assert code == Exit.NOT_FOUND and "deleted" in err


def test_ctrl_c_exits_130() -> None:
    class Interrupted(FakeSession):
        def watch(self, *args: Any) -> Iterator[dict[str, Any]]:
            raise KeyboardInterrupt
            yield {}

    code, _, err = run(Interrupted(md()), "status", "fraud", "--watch")
    assert code == Exit.INTERRUPTED and "interrupted" in err


def test_watch_on_a_terminal_redraws_in_place_with_color() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    s = FakeSession(md())
    s.events = [{"type": "MODIFIED", "object": md("Succeeded", canary=False)}]
    out, err = Terminal(), io.StringIO()
    code = main.run(["status", "fraud", "--watch"], stdout=out, stderr=err, connector=lambda *a: s)
    assert code == Exit.OK
    screens = out.getvalue().split("\x1b[H\x1b[2J")[1:]
    assert len(screens) >= 2 and "Ctrl-C" in screens[0] and "Ctrl-C" not in screens[-1]
    assert "\x1b[32mSucceeded\x1b[0m" in screens[-1]


def test_promote_step_writes_the_step_token_and_says_what_the_operator_will_do() -> None:
    # given a canary at step 1 (10%)
    s = FakeSession(md(step=0, weight=10))
    # when promoting one step
    code, out, _ = run(s, "promote", "fraud", "--step")
    # then the step control's annotation is written, not the full promote
    assert code == 0, out
    (patch,) = s.patches
    annotations = patch["metadata"]["annotations"]
    assert set(annotations) == {"tollgate.dev/step"} and annotations["tollgate.dev/step"].startswith("alice@")
    assert "completes step 1/3 (10%)" in out and "enters step 2 (50%)" in out
    # and --full with --step is a usage error
    with pytest.raises(SystemExit) as info:
        main.run(["promote", "fraud", "--full", "--step"], stderr=io.StringIO())
    assert info.value.code == 2
