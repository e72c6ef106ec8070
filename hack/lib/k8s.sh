# Shared by hack/controlplane/build.sh and hack/node/build.sh: the wrapper Go module that builds
# commands of k8s.io/kubernetes at a release, and the version ldflags. Source it; needs K8S_VERSION.
#
# Why a wrapper module: k8s.io/kubernetes requires its staging modules at v0.0.0 with
# `replace => ./staging/...`, so `go install pkg@version` refuses it. A throwaway module that requires
# the release and pins every staging module to its published tag builds the same code.

# k8s_wrapper_module DIR CMD...: write DIR/go.mod (from the release's own go.mod) and DIR/tools.go
# importing k8s.io/kubernetes/cmd/<CMD> for each CMD, then download the modules.
k8s_wrapper_module() {
  local dir="$1"; shift
  local staging_v="v0.${K8S_VERSION#v1.}" gomod cmd
  mkdir -p "$dir"
  gomod="$(go mod download -json "k8s.io/kubernetes@${K8S_VERSION}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')"
  {
    echo "module tollgate.local/k8sbuild"
    echo
    grep -E '^go [0-9]' "$gomod"
    grep -E '^godebug' "$gomod" || true
    echo
    echo "require k8s.io/kubernetes ${K8S_VERSION}"
    echo
    # every staging module the release replaces with ./staging/... is pinned to its published tag
    grep -oE '^\s*k8s\.io/[A-Za-z0-9._/-]+ => \./staging/' "$gomod" | awk '{print $1}' | sort -u |
      while read -r m; do echo "replace $m => $m ${staging_v}"; done
  } >"$dir/go.mod"
  {
    printf '//go:build tools\n\npackage tools\n\nimport (\n'
    for cmd in "$@"; do printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "$cmd"; done
    printf ')\n'
  } >"$dir/tools.go"
  (cd "$dir" && go mod tidy -e >/dev/null 2>&1 || true)
  (cd "$dir" && go mod download)
}

# k8s_ldflags: -s -w plus the version variables, so binaries report K8S_VERSION (not v0.0.0-master).
k8s_ldflags() {
  local minor="${K8S_VERSION#v1.}" date ld="-s -w"
  minor="${minor%%.*}"
  date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X ${pkg}.gitVersion=${K8S_VERSION} -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=${minor}"
    ld+=" -X ${pkg}.gitTreeState=clean -X ${pkg}.gitCommit=tollgate-local-build -X ${pkg}.buildDate=${date}"
  done
  echo "$ld"
}

# k8s_build DIR BIN CMD: build k8s.io/kubernetes/cmd/CMD as upstream does (static, trimpath, tags).
k8s_build() {
  local dir="$1" bin="$2" cmd="$3"
  (cd "$dir" && CGO_ENABLED=0 go build -trimpath -tags "selinux,notest,grpcnotrace" -ldflags "$(k8s_ldflags)" \
    -o "$bin/$cmd" "k8s.io/kubernetes/cmd/$cmd")
}
