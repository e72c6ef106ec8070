#!/usr/bin/env bash
# Builds etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok from the official Go
# modules and caches the binaries under ~/.cache/tollgate/controlplane/<key>, where the key holds every
# version and the Go version. A second run with the same key is a no-op.
#
# Why wrapper modules: k8s.io/kubernetes and etcd's server module carry `replace => ./staging` and
# `replace => ../api` directives, so `go install pkg@version` refuses them. A throwaway module that
# requires the release and pins every staging module to its published tag builds the same code
# (hack/lib/k8s.sh, shared with hack/node/build.sh, which builds the kubelet and kube-proxy).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$HERE/versions.env"
# shellcheck source=../lib/k8s.sh
source "$HERE/../lib/k8s.sh"

GO_VERSION="$(go env GOVERSION)"
KEY="k8s-${K8S_VERSION}_etcd-${ETCD_VERSION}_kwok-${KWOK_VERSION}_gw-${GATEWAY_API_VERSION}_${GO_VERSION}"
CACHE_ROOT="${TOLLGATE_CACHE:-$HOME/.cache/tollgate}/controlplane"
OUT="$CACHE_ROOT/$KEY"
BIN="$OUT/bin"

BINARIES=(etcd kwok kube-apiserver kube-controller-manager kube-scheduler kubectl)
complete() {
  [[ -f "$OUT/.complete" ]] || return 1
  for b in "${BINARIES[@]}"; do [[ -x "$BIN/$b" ]] || return 1; done
}
if complete; then
  echo "controlplane: cached at $OUT" >&2
  echo "$OUT"
  exit 0
fi

mkdir -p "$BIN" "$OUT/assets"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/tollgate-cp-build.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
export CGO_ENABLED=0 GOFLAGS="-buildvcs=false" GOTOOLCHAIN=local
log() { echo "controlplane: $*" >&2; }
start=$(date +%s)

# --- Kubernetes --------------------------------------------------------------------------------------
build_kubernetes() {
  k8s_wrapper_module "$WORK/k8s" kube-apiserver kube-controller-manager kube-scheduler kubectl
  for cmd in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
    [[ -x "$BIN/$cmd" ]] && continue
    log "building $cmd ${K8S_VERSION}"
    k8s_build "$WORK/k8s" "$BIN" "$cmd"
  done
}

# --- etcd --------------------------------------------------------------------------------------------
build_etcd() {
  local dir="$WORK/etcd"
  mkdir -p "$dir"
  cat >"$dir/go.mod" <<GOMOD
module tollgate.local/etcdbuild

go 1.24
GOMOD
  cat >"$dir/tools.go" <<GO
//go:build tools

package tools

import _ "go.etcd.io/etcd/server/v3"
GO
  (cd "$dir" && go get "go.etcd.io/etcd/server/v3@${ETCD_VERSION}" >/dev/null && go mod tidy -e >/dev/null 2>&1 || true)
  log "building etcd ${ETCD_VERSION}"
  (cd "$dir" && go build -trimpath -ldflags "-s -w" -o "$BIN/etcd" go.etcd.io/etcd/server/v3)
}

# --- kwok and its stage configs ----------------------------------------------------------------------
build_kwok() {
  log "building kwok ${KWOK_VERSION}"
  GOBIN="$BIN" go install -trimpath -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION}" \
    "sigs.k8s.io/kwok/cmd/kwok@${KWOK_VERSION}"
  local src
  src="$(go mod download -json "sigs.k8s.io/kwok@${KWOK_VERSION}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
  # The stage configs ship in the module; copy the stage files only (not testdata or kustomization).
  rm -rf "$OUT/assets/kwok-stages"; mkdir -p "$OUT/assets/kwok-stages"
  for s in node/fast node/heartbeat-with-lease pod/fast; do
    for f in "$src/kustomize/stage/$s/"*.yaml; do
      [[ "$(basename "$f")" == kustomization.yaml ]] && continue
      cp "$f" "$OUT/assets/kwok-stages/"
    done
  done
  chmod -R u+w "$OUT/assets/kwok-stages"
}

# --- Gateway API CRDs (manifests shipped in the module) ----------------------------------------------
fetch_gateway_api() {
  local src
  src="$(go mod download -json "sigs.k8s.io/gateway-api@${GATEWAY_API_VERSION}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
  mkdir -p "$OUT/assets/gateway-api"
  cp "$src"/config/crd/standard/*.yaml "$OUT/assets/gateway-api/"
  chmod -R u+w "$OUT/assets/gateway-api"
}

[[ -x "$BIN/etcd" ]] || build_etcd
[[ -x "$BIN/kwok" && -f "$OUT/assets/kwok-stages/pod-ready.yaml" ]] || build_kwok
fetch_gateway_api
for c in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
  [[ -x "$BIN/$c" ]] || { build_kubernetes; break; }
done

"$BIN/kube-apiserver" --version >&2
"$BIN/etcd" --version >&2  # no `| head`: with pipefail, SIGPIPE would fail the build
echo "built in $(( $(date +%s) - start ))s" >"$OUT/.complete"
log "done in $(( $(date +%s) - start ))s: $OUT"
echo "$OUT"
