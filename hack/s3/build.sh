#!/usr/bin/env bash
# Builds the S3-compatible test server (versitygw) from its Go module and caches the binary under
# ~/.cache/tollgate/s3/<key>/bin, where the key holds its version and the Go version. A second run
# with the same key is a no-op and needs no network. Prints the bin directory.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$HERE/versions.env"
# shellcheck source=../lib/gobuild.sh
source "$HERE/../lib/gobuild.sh"
log() { echo "s3: $*" >&2; }

go_cache s3 "versitygw-${VERSITYGW_VERSION}_$(go env GOVERSION)"
if go_cached bin/versitygw; then
  log "cached at $BIN"
  echo "$BIN"
  exit 0
fi

start=$(date +%s)
go_install_once versitygw "github.com/versity/versitygw/cmd/versitygw@${VERSITYGW_VERSION}"
"$BIN/versitygw" --version >&2 || true
go_cache_done "$start"
log "done in $(( $(date +%s) - start ))s: $BIN"
echo "$BIN"
