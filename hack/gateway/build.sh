#!/usr/bin/env bash
# Builds the Gateway API data plane of the test environment, Traefik, from its Go module and caches it
# under ~/.cache/tollgate/gateway/<key>, where the key holds the Traefik and Go versions (as the other
# hack/*/build.sh do). A second run with the same key is a no-op. Prints the cache directory:
#
#   bin/traefik                 static binary (CGO off), version stamped as upstream's Makefile does
#   crds/traefik.io.yaml        Traefik's own CRDs (Middleware is what an HTTPRoute ExtensionRef names),
#                               copied from the module's source (docs/.../kubernetes-crd-definition-v1.yml)
#
# Why a copy of the module's source rather than `go install pkg@version`: Traefik's go.mod carries
# replace directives (its forks of go-http-auth and gorilla/mux, and `github.com/traefik/traefik/dynamic/ext
# => ./pkg/config/dynamic/ext`), which `go install` refuses. Building inside the module's own tree uses
# its own go.mod and go.sum, so the dependency versions are upstream's, with two exceptions:
# - the nested module pkg/config/dynamic/ext is not in the module zip (a nested module is cut out of its
#   parent's zip, and its path does not match its directory, so the proxy cannot serve it). Upstream it
#   is two empty structs, the extension points `ext.HTTP` and `ext.Router` inlined into dynamic.HTTP and
#   dynamic.Router; the build writes those same two declarations;
# - TRAEFIK_GO_HTTP_AUTH replaces the go-http-auth fork's version (versions.env says why).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$HERE/versions.env"
# shellcheck source=../lib/lock.sh
source "$HERE/../lib/lock.sh"

GO_VERSION="$(go env GOVERSION)"
KEY="traefik-${TRAEFIK_VERSION}_http-auth-${TRAEFIK_GO_HTTP_AUTH##*-}_${GO_VERSION}"
OUT="${TOLLGATE_CACHE:-$HOME/.cache/tollgate}/gateway/$KEY"
log() { echo "gateway: $*" >&2; }

# One build at a time per cache: .ci/run starts this build in its background lane, and `make integration`
# (gateway-build) calls it again; the second waits for the first, then finds the cache complete.
mkdir -p "$(dirname "$OUT")"
one_build_at_a_time "$(dirname "$OUT")/.build.lock" "Traefik"

complete() { [[ -f "$OUT/.complete" && -x "$OUT/bin/traefik" && -s "$OUT/crds/traefik.io.yaml" ]]; }
if complete; then
  log "cached at $OUT"
  echo "$OUT"
  exit 0
fi

mkdir -p "$OUT/bin" "$OUT/crds"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/tollgate-gateway-build.XXXXXX")"
trap 'chmod -R u+w "$WORK" 2>/dev/null; rm -rf "$WORK"' EXIT
export CGO_ENABLED=0 GOFLAGS="-buildvcs=false" GOTOOLCHAIN=local
start=$(date +%s)

log "downloading github.com/traefik/traefik/v3@${TRAEFIK_VERSION}"
SRC_RO="$(go mod download -json "github.com/traefik/traefik/v3@${TRAEFIK_VERSION}" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
SRC="$WORK/traefik"
cp -r "$SRC_RO" "$SRC"
chmod -R u+w "$SRC"
if grep -q '^replace github.com/traefik/traefik/dynamic/ext => ./pkg/config/dynamic/ext' "$SRC/go.mod" &&
  [[ ! -f "$SRC/pkg/config/dynamic/ext/go.mod" ]]; then
  mkdir -p "$SRC/pkg/config/dynamic/ext"
  cat >"$SRC/pkg/config/dynamic/ext/go.mod" <<GOMOD
module github.com/traefik/traefik/dynamic/ext

go $(sed -nE 's/^go ([0-9.]+)$/\1/p' "$SRC/go.mod")
GOMOD
  cat >"$SRC/pkg/config/dynamic/ext/ext.go" <<'GO'
package ext

// HTTP is a dynamic.HTTP extension.
type HTTP struct{}

// Router is a dynamic.Router extension.
type Router struct{}
GO
fi
if [[ -n "${TRAEFIK_GO_HTTP_AUTH:-}" ]]; then
  (cd "$SRC" && go mod edit -replace "github.com/abbot/go-http-auth=${TRAEFIK_GO_HTTP_AUTH}" &&
    go mod download "${TRAEFIK_GO_HTTP_AUTH}")
fi

log "building traefik ${TRAEFIK_VERSION} (one large Go build)"
(cd "$SRC" && go build -mod=mod -trimpath -ldflags "-s -w \
  -X github.com/traefik/traefik/v3/pkg/version.Version=${TRAEFIK_VERSION} \
  -X github.com/traefik/traefik/v3/pkg/version.Codename=tollgate-local-build \
  -X github.com/traefik/traefik/v3/pkg/version.BuildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  -o "$OUT/bin/traefik" ./cmd/traefik)
cp "$SRC/docs/content/reference/dynamic-configuration/kubernetes-crd-definition-v1.yml" "$OUT/crds/traefik.io.yaml"

"$OUT/bin/traefik" version >&2
echo "built in $(( $(date +%s) - start ))s" >"$OUT/.complete"
log "done in $(( $(date +%s) - start ))s: $OUT"
echo "$OUT"
