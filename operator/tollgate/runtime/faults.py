"""Fault injection for the crash-matrix tests: kill -9 this process right after a chosen write.

Enabled only when the environment names a control file (TOLLGATE_TEST_CRASH_FILE); the chart, the flags
and the image never set it, and without it nothing here runs. The test writes the file when it wants
the crash armed (so writes before that moment never match), e.g.

    {"after": "evidence"}                          the next evidence write
    {"after": "status", "contains": "RollingBack"}  the next status write that records a rollback

`after` names one kind of write the runtime makes while carrying out a decision (WRITES);
`contains` (a string or a list of strings) must then appear in the request path or body. The process
SIGKILLs itself as soon as the API server has answered that write with success, exactly as if the
node died at that instant, after recording what it matched in `<file>.fired` so the test can tell
the crash happened where it meant.
"""

from __future__ import annotations

import json
import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("tollgate.faults")

ENV = "TOLLGATE_TEST_CRASH_FILE"

WRITES: dict[str, Callable[[str, str], bool]] = {
    # the router's fast path: the scale subresource (replicas) or a merge patch of the HTTPRoute
    "weight": lambda method, path: method == "PATCH" and (path.endswith("/scale") or "/httproutes/" in path),
    "deployment": lambda method, path: method == "PATCH" and "/deployments/" in path and not path.endswith("/scale"),
    "delete": lambda method, path: method == "DELETE" and "/deployments/" in path,
    "evidence": lambda method, path: method == "PATCH" and "/configmaps/" in path,
    "status": lambda method, path: method == "PATCH" and "/modeldeployments/" in path and path.endswith("/status"),
}


def crash_hook_from_env() -> Callable[[str, str, Any], None] | None:
    """The after-write hook the tests enable, or None (always, outside the crash tests)."""
    name = os.environ.get(ENV)
    if not name:
        return None
    control = Path(name)
    log.warning("fault injection enabled: this process kills itself after the write named in the file",
                extra={"file": str(control)})

    def after_write(method: str, path: str, body: Any) -> None:
        try:
            armed = json.loads(control.read_text())
        except (OSError, ValueError):
            return  # not armed (yet)
        match = WRITES.get(str(armed.get("after")))
        if match is None or not match(method, path.split("?", 1)[0]):
            return
        contains = armed.get("contains") or []
        text = path + " " + json.dumps(body, default=str)
        if any(part not in text for part in ([contains] if isinstance(contains, str) else contains)):
            return
        Path(f"{control}.fired").write_text(json.dumps({"method": method, "path": path, **armed}))
        os.kill(os.getpid(), signal.SIGKILL)

    return after_write
