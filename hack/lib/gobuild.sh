# Shared by the build scripts that cache Go binaries under ~/.cache/tollgate/<area>/<key> (the key holds
# every version that makes the binaries, the Go version included, so a new version is a new directory and
# a second run with the same key is a no-op that needs no network). Source it, then:
#
#   go_cache AREA KEY                    sets OUT (the key's directory), BIN (OUT/bin) and the Go build
#                                        environment; `go_cached FILE...` then says whether OUT is complete
#   go_install_once NAME PKG@VER [LDFLAGS]   go install PKG@VER into BIN unless BIN/NAME exists
#   go_cache_done START                  marks OUT complete (after every binary and file is in place)
#
# Every binary is static (CGO_ENABLED=0), without VCS stamping (GOFLAGS=-buildvcs=false, the module zip has
# no .git), built by the installed Go only (GOTOOLCHAIN=local: a module asking for a newer Go fails instead
# of downloading one) and stripped (-s -w).

go_cache() {
  OUT="${TOLLGATE_CACHE:-$HOME/.cache/tollgate}/$1/$2"
  BIN="$OUT/bin"
  export CGO_ENABLED=0 GOFLAGS="-buildvcs=false" GOTOOLCHAIN=local
}

# go_cached FILE...: OUT is complete and holds every FILE (paths relative to OUT).
go_cached() {
  [[ -f "$OUT/.complete" ]] || return 1
  local f
  for f in "$@"; do [[ -e "$OUT/$f" ]] || return 1; done
}

go_install_once() {
  local name="$1" pkg="$2" ldflags="${3:-}"
  [[ -x "$BIN/$name" ]] && return 0
  mkdir -p "$BIN"
  echo "building $name ${pkg##*@}" >&2
  GOBIN="$BIN" go install -trimpath -ldflags "-s -w${ldflags:+ $ldflags}" "$pkg"
}

go_cache_done() {
  echo "built in $(( $(date +%s) - $1 ))s" >"$OUT/.complete"
}
