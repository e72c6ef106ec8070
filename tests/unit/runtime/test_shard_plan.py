"""The shard rules (runtime.shard_plan): a stable shard per UID, targets that add up, and rounds that
converge to every shard held by exactly one replica, whatever the members and the order they act in."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from tollgate.runtime.shard_plan import ShardView, plan, shard_of, targets


def test_the_shard_of_a_uid_is_the_same_in_every_process_and_spreads_evenly() -> None:
    # given 8,000 UIDs and 8 shards
    uids = [f"5f0c1c9e-0000-4000-8000-{i:012d}" for i in range(8000)]
    # when each is assigned a shard
    counts = Counter(shard_of(uid, 8) for uid in uids)
    # then one shard means shard 0, and every shard of 8 gets close to an eighth
    assert shard_of("anything", 1) == 0
    assert set(counts) == set(range(8))
    assert all(800 <= n <= 1200 for n in counts.values()), counts


def test_a_known_uid_keeps_its_shard_in_every_process() -> None:
    # SHA-256, not Python's per-process salted hash(); and changing the hash would move every object to
    # another shard on upgrade, so the value is pinned
    assert shard_of("0b7cbb1e-1c8a-4c3e-9d6e-3f1b2a4c5d6e", 16) == 15


@given(st.sets(st.text(alphabet="abcdefgh0123456789-", min_size=1, max_size=12), min_size=1, max_size=9),
       st.integers(min_value=1, max_value=40))
def test_targets_add_up_to_the_shards_and_differ_by_at_most_one(members: set[str], shards: int) -> None:
    t = targets(members, shards)
    assert sum(t.values()) == shards
    assert max(t.values()) - min(t.values()) <= 1


def _rounds(identities: list[str], shards: int, order: list[int], held: dict[str, set[int]], rounds: int) -> None:
    """Replicas act one after another (in `order`), each seeing the others' holdings as taken."""
    for _ in range(rounds):
        for i in order:
            me = identities[i % len(identities)]
            taken = set().union(*(h for who, h in held.items() if who != me))
            view = ShardView(me, shards, frozenset(identities), frozenset(held[me]),
                             frozenset(range(shards)) - taken - held[me])
            moves = plan(view)
            held[me] -= set(moves.release)
            held[me] |= set(moves.acquire)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=1, max_value=6), st.integers(min_value=1, max_value=32),
       st.lists(st.integers(min_value=0, max_value=5), min_size=6, max_size=30))
def test_rounds_converge_to_each_shard_held_once_and_balanced(replicas: int, shards: int, order: list[int]) -> None:
    # given replicas that all see each other, one of which started first and took every shard
    identities = [f"op-{i}" for i in range(replicas)]
    held: dict[str, set[int]] = {me: set() for me in identities}
    held[identities[0]] = set(range(shards))
    # when each has acted a few rounds, in any interleaving
    _rounds(identities, shards, order + list(range(replicas)), held, rounds=4)
    # then no shard is held twice, none is left free, and each replica holds its target
    all_held = [k for h in held.values() for k in h]
    assert sorted(all_held) == list(range(shards))
    assert {me: len(h) for me, h in held.items()} == targets(identities, shards)


def test_a_replica_above_target_hands_nothing_over_while_a_shard_is_free() -> None:
    # given a replica holding 3 of 4 shards with 2 members, and shard 3 free (the other has not caught up)
    view = ShardView("op-0", 4, frozenset({"op-0", "op-1"}), frozenset({0, 1, 2}), frozenset({3}))
    # when it plans
    moves = plan(view)
    # then it keeps its shards: giving more away would widen the gap
    assert moves.release == () and moves.acquire == ()
    # and once nothing is free, it hands over exactly its surplus
    moves = plan(ShardView("op-0", 4, frozenset({"op-0", "op-1"}), frozenset({0, 1, 2}), frozenset()))
    assert len(moves.release) == 1 and moves.target == 2


def test_a_lone_replica_takes_every_free_shard() -> None:
    moves = plan(ShardView("op-0", 5, frozenset(), frozenset(), frozenset(range(5))))
    assert sorted(moves.acquire) == [0, 1, 2, 3, 4]
