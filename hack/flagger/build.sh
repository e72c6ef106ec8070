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
# shellcheck source=../lib/gobuild.sh
source "$HERE/../lib/gobuild.sh"
log() { echo "flagger: $*" >&2; }

go_cache flagger "flagger-${FLAGGER_VERSION}_$(go env GOVERSION)"
if go_cached bin/flagger crd.yaml; then
  log "cached at $OUT"
  echo "$OUT"
  exit 0
fi

start=$(date +%s)
go_install_once flagger "github.com/fluxcd/flagger/cmd/flagger@${FLAGGER_VERSION}"
# The module go install just used is in the module cache; its CRDs are the ones this binary serves.
SRC="$(go mod download -json "github.com/fluxcd/flagger@${FLAGGER_VERSION}" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
cp "$SRC/artifacts/flagger/crd.yaml" "$OUT/crd.yaml.tmp" && mv "$OUT/crd.yaml.tmp" "$OUT/crd.yaml"
"$BIN/flagger" -version >&2 || true
go_cache_done "$start"
log "done in $(( $(date +%s) - start ))s: $OUT"
echo "$OUT"
