#!/usr/bin/env bash
# Builds helm and kubeconform from their Go modules and caches the binaries under
# ~/.cache/tollgate/tools/<key>/bin, where the key holds both versions and the Go version. A second
# run with the same key is a no-op and needs no network. Prints the bin directory.
#
# Why version ldflags for helm: without them `helm version` reports a dev version and
# `helm template` assumes an old Kubernetes (pass --kube-version anyway; the tests do).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$HERE/versions.env"

GO_VERSION="$(go env GOVERSION)"
KEY="helm-${HELM_VERSION}_kubeconform-${KUBECONFORM_VERSION}_${GO_VERSION}"
OUT="${TOLLGATE_CACHE:-$HOME/.cache/tollgate}/tools/$KEY"
BIN="$OUT/bin"
log() { echo "tools: $*" >&2; }

if [[ -f "$OUT/.complete" && -x "$BIN/helm" && -x "$BIN/kubeconform" ]]; then
  log "cached at $BIN"
  echo "$BIN"
  exit 0
fi

mkdir -p "$BIN"
export CGO_ENABLED=0 GOFLAGS="-buildvcs=false" GOTOOLCHAIN=local
start=$(date +%s)
if [[ ! -x "$BIN/helm" ]]; then
  log "building helm ${HELM_VERSION}"
  GOBIN="$BIN" go install -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION} -X helm.sh/helm/v3/internal/version.gitTreeState=clean" \
    "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}"
fi
if [[ ! -x "$BIN/kubeconform" ]]; then
  log "building kubeconform ${KUBECONFORM_VERSION}"
  GOBIN="$BIN" go install -trimpath -ldflags "-s -w -X main.version=${KUBECONFORM_VERSION}" \
    "github.com/yannh/kubeconform/cmd/kubeconform@${KUBECONFORM_VERSION}"
fi
"$BIN/helm" version --short >&2
"$BIN/kubeconform" -v >&2 || true
echo "built in $(( $(date +%s) - start ))s" >"$OUT/.complete"
log "done in $(( $(date +%s) - start ))s: $BIN"
echo "$BIN"
