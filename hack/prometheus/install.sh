#!/usr/bin/env bash
# Fetches Prometheus from Debian's package (no service, no root-owned files outside the cache) and
# prints the directory holding the `prometheus` binary.
#
# Why `apt-get download` + `dpkg -x` instead of `apt-get install`: installing the package starts a
# system service and writes /etc and /var; tests need only the binary, started on loopback with a
# config they control. The extracted tree is cached under
# ~/.cache/tollgate/prometheus/<package version>/, so a second run is a no-op and needs no network.
#
# Override the package version with PROMETHEUS_DEB_VERSION (must be downloadable by apt).
set -euo pipefail

CACHE_ROOT="${TOLLGATE_CACHE:-$HOME/.cache/tollgate}/prometheus"
log() { echo "prometheus: $*" >&2; }

candidate() {
  apt-cache policy prometheus 2>/dev/null | awk '/Candidate:/ {print $2; exit}'
}

VERSION="${PROMETHEUS_DEB_VERSION:-}"
if [[ -z "$VERSION" ]]; then
  VERSION="$(candidate || true)"
  if [[ -z "$VERSION" || "$VERSION" == "(none)" ]]; then
    # No package lists yet (fresh machine) or an old cache of them: reuse a cached extract if any,
    # otherwise refresh the lists once.
    existing="$(ls -1d "$CACHE_ROOT"/*/usr/bin/prometheus 2>/dev/null | sort -V | tail -n1 || true)"
    if [[ -n "$existing" ]]; then
      dirname "$existing"
      exit 0
    fi
    log "no package candidate; running apt-get update"
    apt-get update -qq >&2
    VERSION="$(candidate || true)"
  fi
fi
if [[ -z "$VERSION" || "$VERSION" == "(none)" ]]; then
  log "no 'prometheus' package in the configured apt sources" >&2
  exit 1
fi

# Version strings may hold ':' (epoch) or '+': keep them readable but path-safe.
DIR="$CACHE_ROOT/${VERSION//:/_}"
BIN_DIR="$DIR/usr/bin"
if [[ -x "$BIN_DIR/prometheus" ]]; then
  echo "$BIN_DIR"
  exit 0
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/tollgate-prom.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
log "downloading prometheus=$VERSION"
(
  cd "$WORK"
  # apt-get download runs as the _apt user when root; a world-writable work dir avoids its warning.
  chmod 0777 "$WORK"
  if ! apt-get download -q "prometheus=$VERSION" >&2; then
    log "download failed; refreshing package lists and retrying"
    apt-get update -qq >&2
    apt-get download -q "prometheus=$VERSION" >&2
  fi
)
debs=("$WORK"/prometheus_*.deb)  # a glob, not `ls | head`: with pipefail, SIGPIPE could fail the script
deb="${debs[0]}"
mkdir -p "$CACHE_ROOT"
STAGE="$(mktemp -d "$CACHE_ROOT/.extract.XXXXXX")"
dpkg -x "$deb" "$STAGE"
test -x "$STAGE/usr/bin/prometheus"
# Atomic publish: a concurrent run either sees the full tree or none.
rm -rf "$DIR"
mv "$STAGE" "$DIR"
log "installed $("$BIN_DIR/prometheus" --version 2>&1 | sed -n 1p)"
echo "$BIN_DIR"
