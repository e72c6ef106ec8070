#!/usr/bin/env bash
# Builds Prometheus with Kubernetes service discovery from its Go module and prints the directory
# holding the `prometheus` binary.
#
# Why: Debian's `prometheus` package is built without Kubernetes service discovery (Debian strips the
# discovery mechanisms whose libraries it does not package), and the tests must scrape model pods
# through the scrape configuration Tollgate ships (deploy/prometheus/scrape-config.yaml), which uses
# kubernetes_sd_configs against the real local API server.
#
# How: `go install` of cmd/prometheus at the module version of a Prometheus 3 release (module
# v0.316.0 is Prometheus 3.16.0; its go.mod has no replace directives) with Prometheus' own build tags
# `remove_all_sd,enable_kubernetes_sd`, so only the Kubernetes discovery (plus file and http, always
# there) is compiled, not the cloud SDKs. Version ldflags make `prometheus --version` say what it is.
# Cached under ~/.cache/tollgate/prometheus-k8s/<module version>_<go version>/; a second run is a no-op.
#
# Override with PROMETHEUS_MODULE_VERSION and PROMETHEUS_RELEASE (the matching release number).
set -euo pipefail

MODULE=github.com/prometheus/prometheus
VERSION="${PROMETHEUS_MODULE_VERSION:-v0.316.0}"
RELEASE="${PROMETHEUS_RELEASE:-3.16.0}"
GO_VERSION="$(go env GOVERSION)"
OUT="${TOLLGATE_CACHE:-$HOME/.cache/tollgate}/prometheus-k8s/${VERSION}_${GO_VERSION}"
log() { echo "prometheus-build: $*" >&2; }

if [[ -x "$OUT/prometheus" ]]; then
  echo "$OUT"
  exit 0
fi

started=$SECONDS
log "building Prometheus $RELEASE ($MODULE@$VERSION) with Kubernetes discovery only"
ldflags="-s -w"
for kv in "Version=$RELEASE" "Revision=$VERSION" "Branch=release" "BuildUser=tollgate" \
          "BuildDate=$(date -u +%Y%m%d-%H:%M:%S)"; do
  ldflags+=" -X github.com/prometheus/common/version.$kv"
done
rm -rf "$OUT.tmp"
mkdir -p "$OUT.tmp"
GOBIN="$OUT.tmp" CGO_ENABLED=0 GOFLAGS=-mod=mod go install -trimpath \
  -tags remove_all_sd,enable_kubernetes_sd -ldflags "$ldflags" "$MODULE/cmd/prometheus@$VERSION"
rm -rf "$OUT"
mv "$OUT.tmp" "$OUT"
"$OUT/prometheus" --version >&2
log "done in $((SECONDS - started))s: $OUT"
echo "$OUT"
