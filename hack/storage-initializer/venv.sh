#!/usr/bin/env bash
# The storage initializer's environment for the tests: a virtualenv with KServe's storage library
# (requirements.txt), cached under ~/.cache/tollgate/initializer-venv/<hash of the requirements>. Our
# own code is not installed there: the tests run it from this tree (PYTHONPATH=operator), as the image
# runs the wheel. A second run is a no-op and needs no network. Prints the venv directory.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KEY="$(sha256sum "$HERE/requirements.txt" | cut -c1-12)-$(python3 -c 'import sys; print("py%d%d" % sys.version_info[:2])')"
OUT="${TOLLGATE_CACHE:-$HOME/.cache/tollgate}/initializer-venv/$KEY"
log() { echo "storage-initializer: $*" >&2; }
if [[ -f "$OUT/.complete" ]]; then
  log "cached at $OUT"
  echo "$OUT"
  exit 0
fi
start=$(date +%s)
rm -rf "$OUT"
python3 -m venv "$OUT"
"$OUT/bin/pip" install -q -r "$HERE/requirements.txt"
"$OUT/bin/python" -c "import kserve_storage"
echo "built in $(( $(date +%s) - start ))s" >"$OUT/.complete"
log "done in $(( $(date +%s) - start ))s: $OUT"
echo "$OUT"
