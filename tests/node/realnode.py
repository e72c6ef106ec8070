"""The handle the real-node tests use: the control plane with the node, and the host before it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tollgate_testkit import controlplane, hoststate


@dataclass
class RealNode:
    dir: Path
    state: controlplane.State
    before: hoststate.HostState
    images: dict[str, Path]
    pids: dict[str, int] = field(default_factory=dict)
    stopped: bool = False

    @property
    def kubeconfig(self) -> str:
        return self.state.kubeconfig

    def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            controlplane.down(self.dir)
