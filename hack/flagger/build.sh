#!/usr/bin/env bash
# Builds Flagger (the peer of bench/flagger_peer.py) from its Go module and caches the binary under
# ~/.cache/tollgate/flagger/<key>/bin, where the key holds its version and the Go version. Its CRDs
# (Canary, MetricTemplate, AlertProvider) come from the same module's source in the Go module cache
# (artifacts/flagger/crd.yaml) and are copied to <key>/crd.yaml; nothing is fetched by hand or
# committed. A second run with the same key is a no-op and needs no network. Prints the cache directory.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$HERE/versions.env"

GO_VERSION="$(go env GOVERSION)"
KEY="flagger-${FLAGGER_VERSION}_${GO_VERSION}"
OUT="${TOLLGATE_CACHE:-$HOME/.cache/tollgate}/flagger/$KEY"
BIN="$OUT/bin"
log() { echo "flagger: $*" >&2; }

if [[ -f "$OUT/.complete" && -x "$BIN/flagger" && -f "$OUT/crd.yaml" ]]; then
  log "cached at $OUT"
  echo "$OUT"
  exit 0
fi

mkdir -p "$BIN"
export CGO_ENABLED=0 GOFLAGS="-buildvcs=false" GOTOOLCHAIN=local
start=$(date +%s)
if [[ ! -x "$BIN/flagger" ]]; then
  log "building flagger ${FLAGGER_VERSION}"
  GOBIN="$BIN" go install -trimpath -ldflags "-s -w" \
    "github.com/fluxcd/flagger/cmd/flagger@${FLAGGER_VERSION}"
fi
# The module go install just used is in the module cache; its CRDs are the ones this binary serves.
SRC="$(go mod download -json "github.com/fluxcd/flagger@${FLAGGER_VERSION}" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
cp "$SRC/artifacts/flagger/crd.yaml" "$OUT/crd.yaml.tmp" && mv "$OUT/crd.yaml.tmp" "$OUT/crd.yaml"
"$BIN/flagger" -version >&2 || true
echo "built in $(( $(date +%s) - start ))s" >"$OUT/.complete"
log "done in $(( $(date +%s) - start ))s: $OUT"
echo "$OUT"
