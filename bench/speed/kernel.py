"""The comparison's kernel (`best_matches`, old and new, loaded side by side in one process) at real hidden sizes.

    .venv/bin/python bench/speed/kernel.py [--hidden 4096 5120] [--repeat 7] [--old PATH]

Prints CPU milliseconds per call (min / median, one BLAS thread as in a comparison; CPU, not wall: a shared
machine's load inflates wall time many times over) for 32, 64 and 128 token rows per half, and checks that old and
new return identical arrays — on random samples, and on the cases where ties decide: constant columns, duplicated
units (exact ties in the correlation matrix), rounded values (rank ties), non-finite values, widths that are not a
multiple of the chunk.

Then one pair's whole test on two unrelated samples (both halves ranked, then the agreement count), as the old code
computes it (a full search of each half) and as the new one does (`agreement`: the second half searched from the
first's mutual units), on one thread and on two: milliseconds of CPU (all threads), and whether the counts agree.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from functools import partial
from pathlib import Path
from types import ModuleType

import numpy as np
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "bench" / "speed")]

from common import add_old_argument, machine_load, sides, spread  # noqa: E402


def load(tree: Path, label: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"compare_{label}", tree / "scanner" / "provenance" / "compare.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def adversarial(rng: np.random.Generator, k: int, da: int, db: int) -> list[tuple[np.ndarray, np.ndarray]]:
    def pair() -> tuple[np.ndarray, np.ndarray]:
        return rng.standard_normal((k, da)).astype(np.float32), rng.standard_normal((k, db)).astype(np.float32)

    cases = [pair() for _ in range(2)]
    a, b = pair()
    n = min(da, db) // 2
    a[:, :n] = b[:, :n] + 0.1 * rng.standard_normal((k, n)).astype(np.float32)  # a derivation: mutual matches
    cases.append((a, b))
    a, b = pair()
    a[:, 5], b[:, 7], b[:, 0] = 0, 0, 0  # constant columns: all-zero rows and columns of c
    cases.append((a, b))
    a, b = pair()
    a[:, [10, 1029 % da, da - 1]] = a[:, [3]]  # duplicated units, across a chunk border: exact ties
    b[:, 4] = b[:, 2]
    cases.append((a, b))
    a, b = pair()
    cases.append((np.round(a), np.round(b)))  # rank ties
    a, b = pair()
    a[:, ::3], b[:, 1] = np.nan, np.inf
    cases.append((a, b))
    return cases


def full_searches(module: ModuleType, halves: tuple) -> int:
    """The agreement count as the old code computes it: each half ranked and searched in full."""
    (a1, b1), (a2, b2) = halves
    m1, _, u1 = module.best_matches(a1, b1)
    m2, _, u2 = module.best_matches(a2, b2)
    return int(np.sum((m1 == m2) & u1 & u2))


def candidate_search(module: ModuleType, halves: tuple, threads: int) -> int:
    """The agreement count as the new code computes it: the four samples ranked, then `agreement`."""
    (a1, b1), (a2, b2) = halves
    ranked = [module.spearman_columns(x) for x in (a1, b1, a2, b2)]
    return int(module.agreement(((ranked[0], ranked[1]), (ranked[2], ranked[3])), threads))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hidden", type=int, nargs="+", default=[4096, 5120])
    ap.add_argument("--repeat", type=int, default=7)
    add_old_argument(ap)
    args = ap.parse_args()
    old, new = (load(code.tree, code.label) for code in sides(args.old))
    rng = np.random.default_rng(26)
    mismatches = checked = 0
    with threadpool_limits(1, "blas"):
        for da, db, k in [(4096, 4096, 32), (1030, 1500, 16), (3000, 2500, 64), (200, 2100, 24)]:
            for a, b in adversarial(rng, k, da, db):
                for chunk in (1024, 37):
                    same = all(
                        x.dtype == y.dtype and np.array_equal(x, y, equal_nan=True)
                        for x, y in zip(old.best_matches(a, b, chunk), new.best_matches(a, b, chunk))
                    )
                    mismatches += not same
                    checked += 1
        print(f"identical results: {checked - mismatches} of {checked} cases ({mismatches} differ)")
        print(f"machine: {machine_load()}")
        print(
            f"{'hidden':>6} {'rows/half':>9} {'old CPU ms (min / med)':>22} {'new CPU ms (min / med)':>22} {'ratio':>6}"
        )
        for d in args.hidden:
            for k in (32, 64, 128):
                a = rng.standard_normal((k, d)).astype(np.float32)
                b = rng.standard_normal((k, d)).astype(np.float32)
                times: dict[str, list[float]] = {"old": [], "new": []}
                for _ in range(args.repeat):
                    for label, module in (("old", old), ("new", new)):
                        t0 = time.process_time()
                        module.best_matches(a, b)
                        times[label].append(time.process_time() - t0)
                ratio = np.median(times["new"]) / np.median(times["old"])
                print(
                    f"{d:>6} {k:>9} {spread(times['old'], 1000, 1):>22} {spread(times['new'], 1000, 1):>22} "
                    f"{ratio:>6.2f}"
                )
        print("\none pair, both halves (unrelated samples): CPU ms, all threads (min / median)")
        print(f"{'hidden':>6} {'rows/half':>9} {'old':>16} {'new, 1 thread':>16} {'new, 2 threads':>16} {'same':>5}")
        for d in args.hidden:
            for k in (32, 64):
                x = [rng.standard_normal((k, d)).astype(np.float32) for _ in range(4)]
                halves = ((x[0], x[1]), (x[2], x[3]))
                runs = {
                    "old": partial(full_searches, old, halves),
                    "1": partial(candidate_search, new, halves, 1),
                    "2": partial(candidate_search, new, halves, 2),
                }
                cpu: dict[str, list[float]] = {label: [] for label in runs}
                counts = set()
                for _ in range(args.repeat):
                    for label, run in runs.items():
                        c0 = time.process_time()
                        counts.add(run())
                        cpu[label].append(time.process_time() - c0)
                same = len(counts) == 1
                mismatches += not same
                print(
                    f"{d:>6} {k:>9} {spread(cpu['old'], 1000, 1):>16} {spread(cpu['1'], 1000, 1):>16} "
                    f"{spread(cpu['2'], 1000, 1):>16} {'yes' if same else 'NO':>5}"
                )
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
