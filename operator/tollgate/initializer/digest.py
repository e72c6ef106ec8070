"""The digest of a fetched model directory, as tollgate.model_digest defines it (file I/O here)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from tollgate.model_digest import tree_digest

CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def directory_digest(root: Path) -> str:
    """sha256:<hex> of every regular file under `root` (symlinks are not followed)."""
    files = [(p.relative_to(root).as_posix(), file_sha256(p))
             for p in root.rglob("*") if p.is_file() and not p.is_symlink()]
    return tree_digest(files)
