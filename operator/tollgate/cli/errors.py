"""Exit codes of `kubectl tollgate` and the error type that carries them.

Every failure a script may want to branch on has its own code; the message on stderr says what to do.
"""

from __future__ import annotations

from enum import IntEnum


class Exit(IntEnum):
    """Process exit codes (also listed in `kubectl tollgate --help` and docs/cli.md)."""

    OK = 0
    ERROR = 1
    USAGE = 2
    NOT_FOUND = 3
    FORBIDDEN = 4
    NOT_APPLICABLE = 5
    UNREACHABLE = 6
    ROLLED_BACK = 7
    STALLED = 8
    FALLBACK = 9
    TIMEOUT = 10
    INTERRUPTED = 130


EXIT_MEANINGS: dict[Exit, str] = {
    Exit.OK: "done; `status --watch`: the rollout ended Succeeded or Stable",
    Exit.ERROR: "unexpected failure (e.g. the API server refused a write for another reason)",
    Exit.USAGE: "bad arguments, or an option the operator has no behaviour for",
    Exit.NOT_FOUND: "the ModelDeployment, its evidence record or the tollgate.dev API is not there",
    Exit.FORBIDDEN: "the API server refused: unauthorized (401) or forbidden by RBAC (403)",
    Exit.NOT_APPLICABLE: "the control makes no sense in the current phase; nothing was written",
    Exit.UNREACHABLE: "no usable kubeconfig/context, or the API server cannot be reached",
    Exit.ROLLED_BACK: "`status --watch`: the rollout ended RolledBack",
    Exit.STALLED: "`status --watch`: Stalled (invalid spec, or the first version missed its deadline)",
    Exit.FALLBACK: "`status --watch`: the kill switch is on, all traffic is on the fallback",
    Exit.TIMEOUT: "--timeout passed (watch did not end, or the operator did not handle the control)",
    Exit.INTERRUPTED: "interrupted (Ctrl-C)",
}


class CliError(Exception):
    """A failure with a message for people and an exit code for scripts."""

    def __init__(self, message: str, code: Exit = Exit.ERROR):
        super().__init__(message)
        self.message = message
        self.code = code


def exit_codes_text() -> str:
    """The exit-code table, for --help."""
    lines = ["exit codes:"]
    lines += [f"  {code.value:<4} {EXIT_MEANINGS[code]}" for code in Exit]
    return "\n".join(lines)
