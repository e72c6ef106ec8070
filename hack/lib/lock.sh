# Shared by the build scripts: one build at a time per cache. .ci/run starts builds in its background lane
# while make targets call the same scripts; the second caller waits for the first, then finds the cache
# complete. Source it.

# one_build_at_a_time LOCKFILE WHAT: hold an exclusive lock on LOCKFILE (fd 8) until the script exits,
# saying what it waits for when another build holds it.
one_build_at_a_time() {
  mkdir -p "$(dirname "$1")"
  exec 8>"$1"
  flock -n 8 || { echo "waiting for another build of $2 to finish" >&2; flock 8; }
}
