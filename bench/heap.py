"""Where the operator's traced bytes go: `python bench/heap.py A.snap [B.snap]`.

With one snapshot: the largest allocation sites. With two (say at 100 and at 1,000 ModelDeployments):
what grew between them, grouped by the first frame in tollgate, kopf, aiohttp, the kubernetes client or
the standard library, so the per-object cost can be split by owner.
"""

from __future__ import annotations

import sys
import tracemalloc
from collections import Counter

OWNERS = ("tollgate/", "kopf/", "aiohttp/", "kubernetes/", "prometheus_client/", "urllib3/", "pydantic")


def owner(tb: tracemalloc.Traceback) -> str:
    """The innermost frame that belongs to a package we can name (the allocation's reason), else the
    allocating file."""
    for frame in reversed(tb):  # tracemalloc keeps the oldest frame first: look from the innermost
        for o in OWNERS:
            if o in frame.filename:
                return f"{o.rstrip('/')}:{frame.filename.split(o, 1)[1]}:{frame.lineno}"
    return f"{tb[0].filename}:{tb[0].lineno}"


def main(argv: list[str]) -> int:
    snaps = [tracemalloc.Snapshot.load(p) for p in argv]
    if len(snaps) == 1:
        stats = snaps[0].statistics("traceback")
        print(f"total {sum(s.size for s in stats) / 2**20:.1f} MiB")
        by: Counter[str] = Counter()
        for s in stats:
            by[owner(s.traceback)] += s.size
    else:
        diff = snaps[1].compare_to(snaps[0], "traceback")
        print(f"grown {sum(s.size_diff for s in diff) / 2**20:.1f} MiB")
        by = Counter()
        for s in diff:
            by[owner(s.traceback)] += s.size_diff
    groups: Counter[str] = Counter()
    for k, v in by.items():
        groups[k.split(":", 1)[0]] += v
    print("by owner (MiB):", {k: round(v / 2**20, 2) for k, v in groups.most_common()})
    for k, v in by.most_common(40):
        print(f"{v / 2**10:10.0f} KiB  {k}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
