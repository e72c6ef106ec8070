#!/usr/bin/env bash
# Builds the real node's Go parts and caches them under ~/.cache/tollgate/node/<key>/bin, where the
# key holds every version and the Go version (as hack/controlplane/build.sh does for the control
# plane). A second run with the same key is a no-op. Prints the cache directory.
#
#   kubelet, kube-proxy   the k8s.io/kubernetes wrapper module shared with the control plane (hack/lib)
#   containerd, containerd-shim-runc-v2, ctr   github.com/containerd/containerd/v2
#   kube-router           NetworkPolicy agent (firewall-only), github.com/cloudnativelabs/kube-router/v2
#   coredns               cluster DNS, github.com/coredns/coredns
#   pause                 the pod sandbox process, our own (hack/node/pause)
#
# runc, the CNI plugins, iptables, ipset and conntrack come from Debian (hack/node/install-deps.sh).
# NODE_PARTS="containerd kube-router" builds only those parts (e.g. while the Kubernetes build cache
# is busy); the cache is complete only when every part is there.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../controlplane/versions.env
source "$HERE/../controlplane/versions.env"
# shellcheck source=versions.env
source "$HERE/versions.env"
# shellcheck source=../lib/k8s.sh
source "$HERE/../lib/k8s.sh"
# shellcheck source=../lib/lock.sh
source "$HERE/../lib/lock.sh"

GO_VERSION="$(go env GOVERSION)"
KEY="k8s-${K8S_VERSION}_containerd-${CONTAINERD_VERSION}_kube-router-${KUBE_ROUTER_VERSION}_coredns-${COREDNS_VERSION}_${GO_VERSION}"
OUT="${TOLLGATE_CACHE:-$HOME/.cache/tollgate}/node/$KEY"
BIN="$OUT/bin"
BINARIES=(kubelet kube-proxy containerd containerd-shim-runc-v2 ctr kube-router coredns pause)
PARTS="${NODE_PARTS:-kubernetes containerd kube-router coredns pause}"
log() { echo "node: $*" >&2; }

# One build at a time per cache: .ci/run starts this build in the background while the first tests
# run, and `make e2e-node` calls it again; the second waits for the first, then finds the cache complete.
mkdir -p "$(dirname "$OUT")"
one_build_at_a_time "$(dirname "$OUT")/.build.lock" "the node parts"

complete() {
  [[ -f "$OUT/.complete" ]] || return 1
  for b in "${BINARIES[@]}"; do [[ -x "$BIN/$b" ]] || return 1; done
}
if complete; then
  log "cached at $OUT"
  echo "$OUT"
  exit 0
fi

mkdir -p "$BIN"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/tollgate-node-build.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
export CGO_ENABLED=0 GOFLAGS="-buildvcs=false" GOTOOLCHAIN=local
start=$(date +%s)
want() { [[ " $PARTS " == *" $1 "* ]]; }

if want containerd && [[ ! -x "$BIN/containerd" || ! -x "$BIN/containerd-shim-runc-v2" || ! -x "$BIN/ctr" ]]; then
  log "building containerd ${CONTAINERD_VERSION}"
  # no cgo: the btrfs snapshotter (cgo only) is left out; overlayfs and native are what we use
  GOBIN="$BIN" go install -trimpath -tags "no_btrfs,no_devmapper,no_zfs" \
    -ldflags "-s -w -X github.com/containerd/containerd/v2/version.Version=${CONTAINERD_VERSION}" \
    "github.com/containerd/containerd/v2/cmd/containerd@${CONTAINERD_VERSION}" \
    "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@${CONTAINERD_VERSION}" \
    "github.com/containerd/containerd/v2/cmd/ctr@${CONTAINERD_VERSION}"
fi

if want kube-router && [[ ! -x "$BIN/kube-router" ]]; then
  log "building kube-router ${KUBE_ROUTER_VERSION}"
  GOBIN="$BIN" go install -trimpath \
    -ldflags "-s -w -X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version=${KUBE_ROUTER_VERSION}" \
    "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router@${KUBE_ROUTER_VERSION}"
fi

if want coredns && [[ ! -x "$BIN/coredns" ]]; then
  log "building coredns ${COREDNS_VERSION}"
  GOBIN="$BIN" go install -trimpath -ldflags "-s -w" "github.com/coredns/coredns@${COREDNS_VERSION}"
fi

if want pause && [[ ! -x "$BIN/pause" ]]; then
  log "building pause"
  (cd "$HERE/pause" && go build -trimpath -ldflags "-s -w" -o "$BIN/pause" .)
fi

# kubelet and kube-proxy last: they share most packages with the control plane, whose build may still be
# running beside this one (.ci/run's background lane); by then the shared Go build cache holds them
if want kubernetes && [[ ! -x "$BIN/kubelet" || ! -x "$BIN/kube-proxy" ]]; then
  k8s_wrapper_module "$WORK/k8s" kubelet kube-proxy
  for cmd in kubelet kube-proxy; do
    [[ -x "$BIN/$cmd" ]] && continue
    log "building $cmd ${K8S_VERSION}"
    k8s_build "$WORK/k8s" "$BIN" "$cmd"
  done
fi

if complete || { for b in "${BINARIES[@]}"; do [[ -x "$BIN/$b" ]] || exit_partial=1; done; [[ -z "${exit_partial:-}" ]]; }; then
  "$BIN/kubelet" --version >&2
  "$BIN/containerd" --version >&2
  echo "built in $(( $(date +%s) - start ))s" >"$OUT/.complete"
  log "done in $(( $(date +%s) - start ))s: $OUT"
else
  log "partial build (NODE_PARTS=$PARTS) in $(( $(date +%s) - start ))s: $OUT"
fi
echo "$OUT"
