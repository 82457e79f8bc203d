"""Splitting one job into N shards (`sweep --shard K/N`, `watch --shard K/N`): an item belongs to the shard its
stable hash (sha256 of its name) falls in, so every shard of a job matrix sees a disjoint part and together they
see the whole."""

from __future__ import annotations

import hashlib

from scanner.errors import UsageError

Shard = tuple[int, int]  # (K, N): the K-th of N shards, 1-based


def parse_shard(text: str | None) -> Shard | None:
    """ "K/N" (1 ≤ K ≤ N) → (K, N); None → None. One clear error otherwise."""
    if text is None or text == "":
        return None
    try:
        k, n = (int(x) for x in str(text).split("/"))
    except ValueError:
        raise UsageError(f"--shard {text!r}: expected K/N, e.g. 1/4") from None
    if n < 1 or not 1 <= k <= n:
        raise UsageError(f"--shard {text!r}: K must be between 1 and N")
    return k, n


def shard_of(name: str, n: int) -> int:
    """1-based bucket of `name` among `n` (stable across machines, Python versions and runs)."""
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big") % n + 1


def in_shard(name: str, shard: Shard | None) -> bool:
    """Whether `name` belongs to `shard` (everything belongs to no shard: the whole job)."""
    return shard is None or shard_of(name, shard[1]) == shard[0]


def select_shard(names: list[str], shard: Shard | None) -> list[str]:
    return [t for t in names if in_shard(t, shard)]
