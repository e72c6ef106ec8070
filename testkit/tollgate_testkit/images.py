"""The real node's images (hack/images/build.sh, `make images`): build or reuse, then load into containerd."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "hack" / "images" / "build.sh"
OPERATOR = "tollgate.local/operator:dev"
MODEL_SERVER = "tollgate.local/model-server:v1"
LOADGEN = "tollgate.local/loadgen:v1"


def build() -> dict[str, Path]:
    """Image name -> docker-archive path (built with buildah, cached by the hash of their inputs)."""
    out = subprocess.run(["bash", str(BUILD_SCRIPT)], check=True, stdout=subprocess.PIPE, text=True).stdout
    images: dict[str, Path] = {}
    for line in out.splitlines():
        name, _, path = line.partition(" ")
        if path:
            images[name] = Path(path)
    return images


def load(bin_dir: Path, images: dict[str, Path], names: tuple[str, ...] = (OPERATOR, MODEL_SERVER, LOADGEN)) -> None:
    """Import these images into the real node's containerd (no registry)."""
    from tollgate_testkit import node

    node.import_images(bin_dir, [images[n] for n in names])
