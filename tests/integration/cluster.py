"""The handle tests use to talk to the real control plane."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from kubernetes import client, config


@dataclass(frozen=True)
class Cluster:
    """A running API server and an admin kubeconfig for it."""

    kubeconfig: Path

    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this cluster; with check, a failure raises with kubectl's stderr."""
        res = subprocess.run(["kubectl", "--kubeconfig", str(self.kubeconfig), *args], input=input,
                             text=True, capture_output=True, timeout=timeout, check=False)
        if check and res.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({res.returncode}): {res.stderr}")
        return res

    def api_client(self) -> client.ApiClient:
        return config.new_client_from_config(config_file=str(self.kubeconfig))
