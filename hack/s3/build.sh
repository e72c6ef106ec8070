#!/usr/bin/env bash
# Builds the S3-compatible test server (versitygw) from its Go module and caches the binary under
# ~/.cache/tollgate/s3/<key>/bin, where the key holds its version and the Go version. A second run
# with the same key is a no-op and needs no network. Prints the bin directory.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$HERE/versions.env"

GO_VERSION="$(go env GOVERSION)"
KEY="versitygw-${VERSITYGW_VERSION}_${GO_VERSION}"
OUT="${TOLLGATE_CACHE:-$HOME/.cache/tollgate}/s3/$KEY"
BIN="$OUT/bin"
log() { echo "s3: $*" >&2; }

if [[ -f "$OUT/.complete" && -x "$BIN/versitygw" ]]; then
  log "cached at $BIN"
  echo "$BIN"
  exit 0
fi

mkdir -p "$BIN"
export CGO_ENABLED=0 GOFLAGS="-buildvcs=false" GOTOOLCHAIN=local
start=$(date +%s)
log "building versitygw ${VERSITYGW_VERSION}"
GOBIN="$BIN" go install -trimpath -ldflags "-s -w" \
  "github.com/versity/versitygw/cmd/versitygw@${VERSITYGW_VERSION}"
"$BIN/versitygw" --version >&2 || true
echo "built in $(( $(date +%s) - start ))s" >"$OUT/.complete"
log "done in $(( $(date +%s) - start ))s: $BIN"
echo "$BIN"
