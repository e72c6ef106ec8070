"""Which replica decides which ModelDeployments: pure rules, no I/O (runtime.sharding does the Leases).

With `--shards N` (N > 1) the ModelDeployments are split into N shards by a hash of their UID, and each
shard has its own coordination.k8s.io Lease, held with client-go's rules (runtime.leader). A replica
decides, writes and keeps in memory only the ModelDeployments of the shards it holds; the Lease fences
every write exactly as the single leader Lease does.

The rules, one round of each replica (every lease retry period):

1. **Shard of an object**: the first 8 bytes of SHA-256 of its UID, modulo N. The UID never changes
   and is unique for the object's lifetime (a name can be reused by a new object; Python's `hash()` is
   salted per process), so every replica computes the same shard without talking to the others.
2. **Members**: the replicas whose member Lease changed within the lease duration, as this replica
   observed it (never by comparing timestamps across machines). A new replica counts itself at once.
3. **Target**: members sorted by identity; the i-th of R gets N // R shards, plus one when i < N % R.
   Every replica that sees the same members computes the same targets, and they add up to N.
4. **Acquire**: below its target, a replica tries the free shards (never created, released, or not
   renewed for a lease duration) in its own rendezvous order (SHA-256 of identity and shard), so
   replicas that start together mostly try different shards; the Lease's optimistic concurrency
   settles the rest.
5. **Release**: above its target, a replica gives up its surplus, the shards it ranks lowest first,
   but only once no shard is free: while one is free, somebody below target has not caught up, and
   handing over more would widen the gap instead of closing it.

What this buys and costs: a shard is decided by at most one replica at a time (its Lease), a dead
replica's shards are taken over one lease duration after its last renewal was observed, and a
membership change moves at most the surplus. Views of members differ for at most one lease duration
(a replica that just started, one that just died); meanwhile a shard can stay free, or one replica can
hold more than its share. Neither is unsafe: a free shard's objects wait; they are never decided twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

MAX_SHARDS = 64
"""Upper bound of --shards. Each held shard costs its holder a GET and a PATCH every retry period, one
after another on the Lease thread; all of a round must fit well inside the renew deadline even when the
API server answers slowly (64 shards on 2 replicas: 64 requests a round)."""


def shard_of(uid: str, shards: int) -> int:
    """The shard of the object with this UID (rule 1); 0 when there is one shard."""
    if shards <= 1:
        return 0
    return int.from_bytes(hashlib.sha256(uid.encode()).digest()[:8], "big") % shards


def targets(members: Iterable[str], shards: int) -> dict[str, int]:
    """Rule 3: how many shards each member should hold; the values add up to `shards`."""
    ordered = sorted(set(members))
    if not ordered:
        return {}
    base, extra = divmod(shards, len(ordered))
    return {m: base + (1 if i < extra else 0) for i, m in enumerate(ordered)}


def preference(identity: str, shard: int) -> int:
    """Rendezvous rank of a shard for a replica (higher: tried first, released last)."""
    return int.from_bytes(hashlib.sha256(f"{identity}/{shard}".encode()).digest()[:8], "big")


@dataclass(frozen=True)
class ShardView:
    """What one replica knows at the start of a round."""

    identity: str
    shards: int
    members: frozenset[str]
    """Live replicas as observed (rule 2); this replica is added if missing."""
    held: frozenset[int]
    """Shards this replica holds (renewed within its renew deadline)."""
    free: frozenset[int]
    """Shards nobody holds: never created, released, or not renewed for a lease duration."""


@dataclass(frozen=True)
class ShardMoves:
    acquire: tuple[int, ...]
    """Free shards to try to take, best first."""
    release: tuple[int, ...]
    """Held shards to give up."""
    target: int


def plan(view: ShardView) -> ShardMoves:
    """Rules 3 to 5 for one replica and one round."""
    target = targets(view.members | {view.identity}, view.shards)[view.identity]
    by_rank = sorted(range(view.shards), key=lambda k: preference(view.identity, k), reverse=True)
    held = [k for k in by_rank if k in view.held]
    if len(held) > target:
        return ShardMoves(acquire=(), release=tuple(reversed(held[target:])) if not view.free else (),
                          target=target)
    wanted = target - len(held)
    acquire = [k for k in by_rank if k in view.free][:wanted]
    return ShardMoves(acquire=tuple(acquire), release=(), target=target)


def uncovered(holders: Sequence[frozenset[int]], shards: int) -> frozenset[int]:
    """Shards no replica holds (for tests and the shards gauge)."""
    covered: set[int] = set()
    for held in holders:
        covered |= held
    return frozenset(range(shards)) - covered
