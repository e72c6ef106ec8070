"""The storage initializer's entry point: fetch MODEL_URI into MODEL_DIR, verify MODEL_DIGEST, exit.

Fetching is KServe's storage library (kserve-storage: s3, gs, azure, http(s), with its environment for
credentials and endpoints, e.g. AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL); Tollgate adds
the digest check and the termination message the operator reads (tollgate.model_digest). Exit codes:
0 fetched (and verified), 1 the fetch failed, 2 the digest did not match (the pod never serves it).

`python -m tollgate.initializer digest DIR_OR_FILE` prints the digest to pin in spec.model.digest.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
from pathlib import Path

from tollgate.initializer.digest import directory_digest, file_sha256
from tollgate.model_digest import TERMINATION_LIMIT, mismatch_message

log = logging.getLogger("tollgate.initializer")
FETCH_FAILED = 1
DIGEST_MISMATCH = 2
TERMINATION_LOG = "/dev/termination-log"


def _terminate(text: str) -> None:
    """Write the termination message the kubelet puts in the pod's status (best effort outside a pod)."""
    path = Path(os.environ.get("TERMINATION_LOG", TERMINATION_LOG))
    try:
        path.write_text(text[:TERMINATION_LIMIT])
    except OSError as exc:
        log.warning("cannot write the termination message to %s: %s", path, exc)


def _emit(**fields: object) -> None:
    print(json.dumps(fields, sort_keys=True), flush=True)


def _clear(directory: Path) -> None:
    """Empty the directory, so no file of a refused or half-fetched model is left for the server."""
    for child in directory.iterdir() if directory.exists() else ():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def fetch(uri: str, out_dir: Path, expected: str | None) -> int:
    """Fetch `uri` into `out_dir` and verify it; returns the exit code."""
    if expected is not None and out_dir.is_dir() and any(out_dir.iterdir()):
        if directory_digest(out_dir) == expected:  # a PersistentVolumeClaim cache already holds these bytes
            _emit(event="cached", uri=uri, dir=str(out_dir), digest=expected)
            return 0
        _clear(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    from kserve_storage import Storage  # imported here: `digest` needs none of its dependencies

    try:
        Storage.download(uri, str(out_dir))
    except Exception as exc:
        message = f"{type(exc).__name__}: {exc}"
        _terminate(json.dumps({"reason": "ModelFetchFailed", "uri": uri, "message": message[:3000]}))
        _emit(event="fetch-failed", uri=uri, error=message[:3000])
        return FETCH_FAILED
    actual = directory_digest(out_dir)
    if expected is not None and actual != expected:
        _clear(out_dir)
        _terminate(mismatch_message(expected, actual, uri))
        _emit(event="digest-mismatch", uri=uri, expected=expected, actual=actual)
        return DIGEST_MISMATCH
    _emit(event="fetched", uri=uri, dir=str(out_dir), digest=actual, verified=expected is not None)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["digest"] and len(args) == 2:
        target = Path(args[1])
        print(f"sha256:{file_sha256(target)}" if target.is_file() else directory_digest(target))
        return 0
    if args:
        print("usage: python -m tollgate.initializer [digest PATH]  (fetching reads MODEL_URI, MODEL_DIR and "
              "MODEL_DIGEST from the environment)", file=sys.stderr)
        return 64
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    uri = os.environ.get("MODEL_URI")
    out_dir = os.environ.get("MODEL_DIR")
    if not uri or not out_dir:
        print("MODEL_URI and MODEL_DIR must be set (the operator sets both)", file=sys.stderr)
        return 64
    return fetch(uri, Path(out_dir), os.environ.get("MODEL_DIGEST") or None)
