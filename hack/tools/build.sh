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
# shellcheck source=../lib/gobuild.sh
source "$HERE/../lib/gobuild.sh"
log() { echo "tools: $*" >&2; }

go_cache tools "helm-${HELM_VERSION}_kubeconform-${KUBECONFORM_VERSION}_$(go env GOVERSION)"
if go_cached bin/helm bin/kubeconform; then
  log "cached at $BIN"
  echo "$BIN"
  exit 0
fi

start=$(date +%s)
go_install_once helm "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}" \
  "-X helm.sh/helm/v3/internal/version.version=${HELM_VERSION} -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
go_install_once kubeconform "github.com/yannh/kubeconform/cmd/kubeconform@${KUBECONFORM_VERSION}" \
  "-X main.version=${KUBECONFORM_VERSION}"
"$BIN/helm" version --short >&2
"$BIN/kubeconform" -v >&2 || true
go_cache_done "$start"
log "done in $(( $(date +%s) - start ))s: $BIN"
echo "$BIN"
