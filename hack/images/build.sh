#!/usr/bin/env bash
# `make images`: the images of the real node, built without Docker and without a registry.
#
#   tollgate.local/debian-python:bookworm  a Debian root filesystem from Debian's packages (mmdebstrap)
#   tollgate.local/operator:dev            our Dockerfile, unchanged, on that base (--build-arg PYTHON_IMAGE)
#   tollgate.local/storage-initializer:dev the Dockerfile's storage-initializer target (kserve-storage from PyPI)
#   tollgate.local/model-server:v1         MLServer + scikit-learn from PyPI, models trained at build time
#   tollgate.local/loadgen:v1              a bounded HTTP load generator (Python standard library)
#
# buildah (Debian) builds them with the vfs storage driver and chroot isolation (no daemon, no runc,
# no overlay mounts); each is exported as a docker-archive under ~/.cache/tollgate/images, keyed by
# the hash of its inputs, so an unchanged image is not rebuilt. Prints `name archive` per image; the
# node imports the archives into containerd (`ctr -n k8s.io images import`). The pod sandbox and
# CoreDNS images are single static binaries and are written by the node launcher itself.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
# shellcheck source=versions.env
source "$HERE/versions.env"
# shellcheck source=../lib/lock.sh
source "$HERE/../lib/lock.sh"
CACHE="${TOLLGATE_CACHE:-$HOME/.cache/tollgate}/images"
STORE="${TOLLGATE_BUILDAH_ROOT:-/var/tmp/tollgate-buildah}"
log() { echo "images: $*" >&2; }

missing=()
[[ $(id -u) == 0 ]] || missing+=("root (buildah's chroot isolation and mmdebstrap need it)")
for c in buildah mmdebstrap; do command -v "$c" >/dev/null || missing+=("$c: apt-get install $c"); done
if ((${#missing[@]})); then
  printf 'images: cannot build here; missing:\n' >&2; printf '  - %s\n' "${missing[@]}" >&2; exit 2
fi
mkdir -p "$CACHE" "$STORE"
# One build at a time (buildah's store and the archives): .ci/run starts this build in the background
# while the first tests run, and `make e2e-node` calls it again; the second waits, then reuses the archives.
one_build_at_a_time "$CACHE/.build.lock" "the images"
B=(buildah --root "$STORE/storage" --runroot "$STORE/run" --storage-driver vfs)
# Not egg-info: `make venv` writes operator/tollgate.egg-info (the image leaves it out, .dockerignore), so the
# key depended on whether and when a checkout had made its virtualenv.
hash_of() { (cd "$REPO" && find "$@" -type f -not -path '*/__pycache__/*' -not -path '*.egg-info/*' -not -name '*.pyc' | LC_ALL=C sort |
  xargs sha256sum | sha256sum | cut -c1-16); }
start=$(date +%s)

# have NAME KEY: the cached archive of NAME at KEY exists (then it is printed and reused)
archive() { echo "$CACHE/$(echo "$1" | tr '/:' '__')-$2.tar"; }
export_image() {  # export_image NAME KEY
  local out; out="$(archive "$1" "$2")"
  rm -f "$CACHE/$(echo "$1" | tr '/:' '__')"-*.tar
  "${B[@]}" push --quiet "$1" "docker-archive:$out.tmp:$1" >/dev/null
  mv "$out.tmp" "$out"
}
ensure_loaded() {  # the base must be in buildah's storage for FROM; reload it from its archive
  "${B[@]}" inspect --type image "$1" >/dev/null 2>&1 || "${B[@]}" pull --quiet "docker-archive:$2" >/dev/null
}

# --- Debian base --------------------------------------------------------------------------------
BASE=tollgate.local/debian-python:${DEBIAN_SUITE}
BASE_RECIPE=1  # bump when the mmdebstrap/buildah steps below change
BASE_KEY="$(echo "$DEBIAN_SUITE $BASE_PACKAGES $BASE_RECIPE" | sha256sum | cut -c1-16)"
if [[ ! -f "$(archive "$BASE" "$BASE_KEY")" ]]; then
  log "base: mmdebstrap $DEBIAN_SUITE ($BASE_PACKAGES)"
  rootfs="$(mktemp -d /var/tmp/tollgate-rootfs.XXXXXX)"
  trap 'rm -rf "$rootfs"' EXIT
  mmdebstrap --quiet --variant=essential --include="$BASE_PACKAGES" \
    --dpkgopt='path-exclude=/usr/share/{doc,man,locale,info}/*' "$DEBIAN_SUITE" "$rootfs/rootfs.tar"
  ctr=$("${B[@]}" from scratch)
  "${B[@]}" add --quiet "$ctr" "$rootfs/rootfs.tar" / >/dev/null
  "${B[@]}" config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --cmd /bin/bash "$ctr"
  "${B[@]}" commit --quiet "$ctr" "$BASE" >/dev/null
  "${B[@]}" rm "$ctr" >/dev/null
  export_image "$BASE" "$BASE_KEY"
fi
ensure_loaded "$BASE" "$(archive "$BASE" "$BASE_KEY")"
echo "$BASE $(archive "$BASE" "$BASE_KEY")"

# RUN steps reach PyPI with this machine's trust store (it may hold a CA of its own), mounted for the
# build only: the images keep Debian's CA bundle.
TRUST=()
host_ca="${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}"
[[ -f "$host_ca" ]] && TRUST=(--volume "$host_ca:/etc/ssl/certs/ca-certificates.crt:ro")

# build NAME KEY CONTEXT [buildah bud args...]
build() {
  local name="$1" key="$2" context="$3"; shift 3
  if [[ ! -f "$(archive "$name" "$key")" ]]; then
    log "building $name"
    "${B[@]}" bud --quiet --isolation chroot --layers=false --network host "${TRUST[@]}" \
      --build-arg "PYTHON_IMAGE=$BASE" -t "$name" "$@" "$context" >/dev/null
    export_image "$name" "$key"
  fi
  echo "$name $(archive "$name" "$key")"
}

# The operator: our Dockerfile, the single recipe (the kind path and `docker build` use it too).
build tollgate.local/operator:dev "$BASE_KEY-$(hash_of Dockerfile pyproject.toml operator)" "$REPO" -f "$REPO/Dockerfile"
build tollgate.local/storage-initializer:dev \
  "$BASE_KEY-$(hash_of Dockerfile pyproject.toml operator hack/storage-initializer)" "$REPO" -f "$REPO/Dockerfile" \
  --target storage-initializer
# the host's pip cache is shared with the build (a warm one saves minutes); on a fresh machine it may not
# exist yet, and buildah refuses a volume whose source is missing
mkdir -p "$HOME/.cache/pip"
# Its context is hack/images/model-server plus the quality export runtime users put beside their model
# (examples/mlserver/tollgate_quality.py, one copy in the repository), staged together.
model_ctx="$(mktemp -d)"
trap 'rm -rf "${rootfs:-}" "$model_ctx"' EXIT  # (and the base's root filesystem, if built above)
cp -r "$HERE/model-server/." "$REPO/examples/mlserver/tollgate_quality.py" "$REPO/examples/mlserver/requirements.txt" \
  "$model_ctx/"
build tollgate.local/model-server:v1 \
  "$BASE_KEY-$(hash_of hack/images/model-server hack/images/versions.env examples/mlserver/tollgate_quality.py \
    examples/mlserver/requirements.txt)" \
  "$model_ctx" --volume "$HOME/.cache/pip:/root/.cache/pip" \
  --build-arg "SCIKIT_LEARN_VERSION=$SCIKIT_LEARN_VERSION"
build tollgate.local/loadgen:v1 "$BASE_KEY-$(hash_of hack/images/loadgen)" "$HERE/loadgen"
log "done in $(( $(date +%s) - start ))s"
