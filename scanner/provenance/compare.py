"""Was the suspect's weight set derived from the reference's?

Null hypothesis H0: the two models were initialised independently (same architecture and even the same training
data allowed). Under H0 the suspect's hidden units carry no consistent correspondence to the reference's.

Test (reads a few hundred token rows, never whole tensors):
 1. Exact evidence first: identical weight files (hashes known for free from LFS / the Hub) end the test.
 2. Token matrices are indexed by token id on one axis, which no disguise can move. Sample token ids in a fixed
    pseudo-random order, split them into two disjoint halves, and for each suspect hidden unit find the reference
    unit whose column correlates best (Spearman, so re-typing, rescaling and noise don't matter) on each half.
 3. A derived model maps each unit to the same reference unit on both halves; under H0 the two best matches
    agree by chance with probability 1/d (we allow P0_FACTOR times that for shared-data coincidences such as
    outlier dimensions). The p-value is the binomial tail of the agreements: exact for that conservative rate.
 4. Sampling grows (doubling) until the answer is certain either way, so a clear case stops early.
 5. With the hidden axis aligned, residual vectors (norm weights, biases) give per-layer evidence and a layer map
    (pruned or re-ordered layers show up here).
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from threadpoolctl import ThreadpoolController

from scanner.provenance.model import ModelView, TokenMatrix, token_stream, token_window
from scanner.provenance.result import (
    Conclusion,
    Evidence,
    IdenticalFiles,
    ReadError,
    ReadProblems,
    ReferenceVectors,
    ResidualVectorMatch,
    TokenMatrixMatch,
    Verdict,
    WeightsRead,
)

if TYPE_CHECKING:  # annotations only
    from scanner.sources.interface import Snapshot

P0_FACTOR = 10  # chance agreement is 1/d; we assume up to 10/d under H0
DERIVED_LOG10_P = -8.0  # verdict "derived" needs p < 1e-8 ...
DERIVED_SCORE = 0.25  # ... and at least a quarter of the units consistently matched
INDEPENDENT_SCORE = 0.10
K_START = 32  # token rows per half to begin with
K_MAX = 256  # and at most
SUBSET_DIMS = 64  # hidden units read when a token matrix is stored transposed


T = TypeVar("T")
_blas_lock = threading.Lock()
_blas_users = 0
_blas_limit: Any = None


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """BLAS runs on one thread while any comparison runs, in whichever thread; the previous setting is back when
    the last one ends. The kernel's matrices are small (at most 512 token rows by twice the hidden size), where
    threads gain little even on an idle machine and, on a busy one or under several sweep workers, lose 5-50x to
    oversubscription (a 128-row eigendecomposition: 7 ms on one thread, 170 ms on two on the shared 2-core
    development box). Parallelism comes from sweep workers instead, so workers x BLAS threads = workers."""
    global _blas_users, _blas_limit
    with _blas_lock:
        if _blas_users == 0:
            _blas_limit = _blas_controller().limit(limits=1, user_api="blas")
        _blas_users += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0:
                _blas_limit.restore_original_limits()
                _blas_limit = None


_controller: tuple[int, ThreadpoolController] | None = None  # (modules imported when it looked, the controller)


def _blas_controller() -> ThreadpoolController:
    """The loaded BLAS libraries, looked up again only when modules were imported since the last look (an import can
    load another BLAS: scipy brings its own OpenBLAS), not on every comparison. Called under _blas_lock."""
    global _controller
    if _controller is None or _controller[0] != len(sys.modules):
        _controller = (len(sys.modules), ThreadpoolController())
    return _controller[1]


# Up to this many rows, every column's standardised ranks are the same numbers, only in another order (see
# spearman_columns): the sums behind a column's mean and norm are of integers or quarter-integers below 2**22,
# exact in float32 in any order. Past it, the norm's sum may round differently from column to column.
EXACT_RANK_ROWS = 368


def spearman_columns(x: np.ndarray) -> np.ndarray:
    """Rank-transform each column and standardise it; constant or non-finite columns become zero."""
    x = np.where(np.isfinite(x), x, 0.0)
    n = x.shape[0]
    order = _stable_order(np.ascontiguousarray(x.T, dtype=np.float32))  # each unit's tokens in rank order
    if 0 < n <= EXACT_RANK_ROWS:
        # Each column is a permutation of the ranks 0..n-1, so its standardised ranks are one column's, permuted:
        # computed once and put in place.
        z = np.empty(order.shape, dtype=np.float32)
        np.put_along_axis(z, order, _rank_scores(n)[None, :], axis=1)
        return np.ascontiguousarray(z.T)
    ranks = np.empty(order.shape, dtype=np.float32)
    np.put_along_axis(ranks, order, np.arange(n, dtype=np.float32)[None, :], axis=1)
    return _standardised(np.ascontiguousarray(ranks.T))


def _stable_order(rows: np.ndarray) -> np.ndarray:
    """Each row's stable argsort (ascending, equal values in their order) of finite float32 values, by sorting
    unique 64-bit keys instead: the value's bits mapped to an integer of the same order, above the position. A
    plain sort of integers runs on the CPU's vector units, several times faster than a stable argsort of floats.
    The keys' buffer becomes the result (few large temporaries: each one costs page faults)."""
    keys = (rows + np.float32(0.0)).view(np.int32).astype(np.int64)  # + 0.0: -0.0 becomes 0.0, an equal value
    negative = np.right_shift(keys, 31)  # -1 for a negative float, else 0
    negative &= 0x7FFFFFFF
    keys ^= negative  # a negative float's magnitude bits reversed: integers in the floats' order
    keys <<= 32
    keys |= np.arange(rows.shape[1], dtype=np.int64)
    keys.sort(axis=1)
    keys &= 0xFFFFFFFF
    return keys


@lru_cache(maxsize=64)
def _rank_scores(n: int) -> np.ndarray:
    """The standardised ranks 0..n-1 of one column, as spearman_columns computes them for every column."""
    scores = _standardised(np.arange(n, dtype=np.float32)[:, None])[:, 0]
    scores.flags.writeable = False  # shared between calls
    return scores


def _standardised(ranks: np.ndarray) -> np.ndarray:
    """Each column of float32 ranks minus its mean, over its norm (zero where the norm is)."""
    ranks -= ranks.mean(axis=0, keepdims=True)
    norm = np.linalg.norm(ranks, axis=0, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(norm > 0, ranks / np.where(norm > 0, norm, 1.0), 0.0)
    return z.astype(np.float32)


SHARED_COMPONENTS = 2  # token-space directions removed before matching (see best_matches)
# Units of a whose correlations with every unit of b are computed at once: 256 x 4096 float32 products (4 MB, and
# 1 MB of tie marks) stay in the cache between the product and the passes over it, where 1024 rows (16 MB a
# thread) went out to memory and back on each pass; 5-6 % less CPU for a whole 8B comparison, the same results.
CHUNK = 256


def shared_directions(za: np.ndarray, zb: np.ndarray, r: int) -> np.ndarray:
    """The r leading left singular vectors of [za zb] (tokens x units), as the leading eigenvectors of its
    tokens x tokens Gram matrix: at most 512 x 512 however wide the models are, where an SVD of the wide matrix
    spends 10-100 times as long computing components that are thrown away."""
    gram = za @ za.T
    gram += zb @ zb.T
    _, vectors = np.linalg.eigh(gram.astype(np.float64))  # ascending eigenvalues
    return np.ascontiguousarray(vectors[:, ::-1][:, :r], dtype=np.float32)


def best_matches(a: np.ndarray, b: np.ndarray, chunk: int = CHUNK) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each column of `a`: the column of `b` with the largest |Spearman correlation|, that correlation, and
    whether the match is mutual (that column of `b` also prefers this column of `a`).

    Independent models trained on the same text share token-level structure (frequent tokens differ from rare
    ones in every model), which makes some units of one model correlate with some units of the other. That
    structure is low-rank in token space: the few strongest token-space directions of the two samples together
    are removed first, and only mutual best matches count, so a handful of frequency-like units cannot pair up.
    """
    return ranked_matches(spearman_columns(a), spearman_columns(b), chunk)


def ranked_matches(
    za: np.ndarray, zb: np.ndarray, chunk: int = CHUNK, threads: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """best_matches on columns already rank-standardised by spearman_columns (a comparison ranks each sample once
    and pairs it with several others); the chunks of a's units run on `threads` threads."""
    za, zb = without_shared(za, zb)
    n_a, n_b = za.shape[1], zb.shape[1]
    idx = np.empty(n_a, dtype=np.int64)
    val = np.empty(n_a, dtype=np.float32)
    top = np.empty(n_a, dtype=np.float32)  # |c| at each unit's best match
    starts = list(range(0, n_a, chunk))
    count_type = np.uint16 if chunk < 1 << 16 else np.uint32

    def scan(group: list[int]) -> list[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
        """Each chunk's rows into idx/val/top, and per chunk: its column maxima, the columns that several of its
        rows reach, and the first row reaching each of those. One buffer for |c| and one for the tie mask serve
        every chunk of the group: fresh arrays per chunk cost page faults on every call."""
        c_buf = np.empty((min(chunk, n_a), n_b), dtype=np.float32)
        reached_buf = np.empty(c_buf.shape, dtype=np.bool_)
        out = []
        for s in group:
            part = za[:, s : s + chunk]
            c = c_buf[: part.shape[1]]
            _best_in_rows(part, zb, c, idx[s : s + chunk], val[s : s + chunk], top[s : s + chunk])
            # The column-wise argmax numpy would compute with a strided copy of c (most of the kernel's time at
            # hidden 4096) is needed only to break ties: a column maximum and a count of the rows reaching it are
            # contiguous. The count adds the mask up as bytes into a small integer: count_nonzero widens every
            # boolean to a machine integer first, at 5 times the cost.
            col_max = c.max(axis=0)
            reached = np.equal(c, col_max, out=reached_buf[: c.shape[0]])
            tied = np.flatnonzero(np.add.reduce(reached.view(np.uint8), axis=0, dtype=count_type) > 1)
            out.append((s, col_max, tied, reached[:, tied].argmax(axis=0)))
        return out

    chunks = sorted(
        (c for part in in_threads([partial(scan, starts[t::threads]) for t in range(threads)], threads) for c in part),
        key=lambda c: c[0],
    )
    # Per column of b: the largest |c| over a's units, the chunk that first reached it, and the first row of that
    # chunk reaching it when several do (-1 when one row does: whichever row reaches it is the one).
    back_best = np.full(n_b, -1.0, dtype=np.float32)
    back_chunk = np.zeros(n_b, dtype=np.int64)
    back_first = np.full(n_b, -1, dtype=np.int64)
    for s, col_max, tied, first_tied in chunks:  # in the order of a's units
        better = col_max > back_best
        back_best[better] = col_max[better]
        back_chunk[better] = s
        back_first[better] = -1
        keep = better[tied]
        back_first[tied[keep]] = s + first_tied[keep]
    units = np.arange(n_a)
    first = back_first[idx]
    mutual = (back_chunk[idx] == units - units % chunk) & (top == back_best[idx]) & ((first < 0) | (first == units))
    return idx, val, mutual


CANDIDATE_SHARE = 0.75  # see agreement


def agreement(halves: tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]], threads: int = 1) -> int:
    """The units of `a` whose best match in `b` is mutual on both halves of the sampled tokens and the same unit:
    sum((m1 == m2) & mutual1 & mutual2) of ranked_matches on each half (columns ranked by spearman_columns).

    Only units mutual on the first half can count, so the second half is searched from them (while they are at
    most CANDIDATE_SHARE of the units, as in unrelated models, where about half are): each one's first-half match
    is a column of b whose first best unit of a must be that unit, and the few units that pass must have it as
    their best match. The correlations are the same products as the full search's, so the count is too."""
    (za1, zb1), (za2, zb2) = halves
    m1, _, mutual1 = ranked_matches(za1, zb1, threads=threads)
    tested = np.flatnonzero(mutual1)
    if tested.size > CANDIDATE_SHARE * za1.shape[1]:
        m2, _, mutual2 = ranked_matches(za2, zb2, threads=threads)
        return int(np.sum((m1 == m2) & mutual1 & mutual2))
    za2, zb2 = without_shared(za2, zb2)
    tested = tested[_may_be_first_best(zb2, za2, m1[tested], tested)]
    kept = tested[_first_best(zb2, za2, m1[tested], threads) == tested]
    return int(np.sum(_first_best(za2, zb2, kept, threads) == m1[kept]))


BOUND_UNITS = 256  # units of y whose correlations bound each column's best from below (see _may_be_first_best)


def _may_be_first_best(x: np.ndarray, y: np.ndarray, cols: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """For each i, False only when column rows[i] of y cannot be the first best match of column cols[i] of x (what
    _first_best(x, y, cols) finds): some unit of a fixed sample of y's correlates with x's column more strongly, by
    more than rounding could change. Unrelated units correlate by chance, mostly far below the best of 256 others,
    so few pass and the exact search runs on those few instead of on every candidate (a product with every unit
    of y each); a unit that does match its candidate always passes. Columns are unit-norm (without_shared)."""
    if cols.size == 0:
        return np.zeros(0, dtype=np.bool_)
    sample = y[:, :: max(1, y.shape[1] // BOUND_UNITS)]
    xs = x[:, cols]
    best_of_sample = np.abs(xs.T @ sample).max(axis=1)
    own = np.abs(np.einsum("ij,ij->j", xs, y[:, rows]))
    # A float32 product of unit-norm columns over n rows is within n * 2**-24 of the exact value, however its sums
    # are ordered: the two compared here and the two _first_best would compare are at most 4 of those apart, so a
    # unit set aside with 16 times that margin is one the exact products set aside too.
    margin = x.shape[0] * 2.0**-18
    passed: np.ndarray = own >= best_of_sample - margin
    return passed


MIN_COLUMNS = 64  # see _first_best


def _first_best(x: np.ndarray, y: np.ndarray, cols: np.ndarray, threads: int, chunk: int = CHUNK) -> np.ndarray:
    """For each column of x named in `cols`: the first column of y with the largest |correlation|."""
    if cols.size == 0:
        return np.zeros(0, dtype=np.int64)

    def part(s: int, c_buf: np.ndarray) -> np.ndarray:
        which = cols[s : s + chunk]
        # A product of few columns could take another route through BLAS than the full search's products, whose
        # sums may round differently: one column is a matrix-vector product, and OpenBLAS has small-matrix kernels
        # on some CPUs (below about 1e6 multiply-adds). Repeated columns keep it a product of MIN_COLUMNS or more.
        both = which if which.size >= MIN_COLUMNS else np.resize(which, MIN_COLUMNS)
        c = c_buf[: both.size]
        np.matmul(x[:, both].T, y, out=c)
        np.abs(c, out=c)
        best: np.ndarray = c.argmax(axis=1)
        return best[: which.size]

    return np.concatenate(
        _chunks_in_threads(
            part, list(range(0, cols.size, chunk)), (max(MIN_COLUMNS, min(chunk, cols.size)), y.shape[1]), threads
        )
    )


def _chunks_in_threads(
    work: Callable[[int, np.ndarray], T], starts: list[int], shape: tuple[int, int], threads: int
) -> list[T]:
    """work(start, buffer) for each chunk start, in order, the starts shared out over `threads` threads; each
    thread's chunks use one float32 buffer of `shape` for their products: a fresh array per chunk costs page
    faults (as much CPU as the product's passes) on every call."""

    def run(group: list[int]) -> list[T]:
        buf = np.empty(shape, dtype=np.float32)
        return [work(s, buf) for s in group]

    n = max(1, min(threads, len(starts)))
    found: list[T] = [None] * len(starts)  # type: ignore[list-item]  # every slot is filled below
    for t, results in enumerate(in_threads([partial(run, starts[t::n]) for t in range(n)], threads)):
        found[t::n] = results
    return found


def without_shared(za: np.ndarray, zb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both samples with their SHARED_COMPONENTS leading token-space directions removed, columns renormalised."""
    r = min(SHARED_COMPONENTS, max(0, za.shape[0] // 8))
    if r:
        u = shared_directions(za, zb, r)
        za = za - u @ (u.T @ za)
        zb = zb - u @ (u.T @ zb)
        za /= np.maximum(np.linalg.norm(za, axis=0, keepdims=True), 1e-12)
        zb /= np.maximum(np.linalg.norm(zb, axis=0, keepdims=True), 1e-12)
    return za, zb


def _best_in_rows(
    part: np.ndarray, zb: np.ndarray, c: np.ndarray, idx: np.ndarray, val: np.ndarray, top: np.ndarray
) -> np.ndarray:
    """For the units (columns) of `part`: the column of zb with the largest |c| into idx, |c| there into top and
    the signed correlation into val; c (a buffer of the right shape) is left holding |c|."""
    np.matmul(part.T, zb, out=c)
    np.abs(c, out=c)
    best: np.ndarray = c.argmax(axis=1)
    idx[:] = best
    top[:] = c[np.arange(c.shape[0]), best]
    # |c| at the best match, signed by the correlation itself (a dot product per unit, not a signed copy of c)
    val[:] = top * np.sign(np.einsum("ij,ij->j", part, zb[:, best]))
    return best


def row_matches(a: np.ndarray, b: np.ndarray, threads: int = 1, chunk: int = CHUNK) -> tuple[np.ndarray, np.ndarray]:
    """best_matches' first two results (each column of `a`: its best column of `b` and that correlation) without
    the mutual test, which only the agreement count needs; the chunks of units run on `threads` threads."""
    za, zb = without_shared(*in_threads([partial(spearman_columns, a), partial(spearman_columns, b)], threads))
    n_a = za.shape[1]
    idx = np.empty(n_a, dtype=np.int64)
    val = np.empty(n_a, dtype=np.float32)
    top = np.empty(n_a, dtype=np.float32)

    def rows(s: int, c_buf: np.ndarray) -> None:
        part = za[:, s : s + chunk]
        c = c_buf[: part.shape[1]]
        _best_in_rows(part, zb, c, idx[s : s + chunk], val[s : s + chunk], top[s : s + chunk])

    _chunks_in_threads(rows, list(range(0, n_a, chunk)), (min(chunk, n_a), zb.shape[1]), threads)
    return idx, val


@lru_cache(maxsize=1024)
def log10_binom_sf(k: int, n: int, p: float) -> float:
    """log10 P(X >= k) for X ~ Binomial(n, p), stable for tiny tails (remembered: the pairs of a comparison often
    share a count, and a small count sums thousands of terms)."""
    if k <= 0:
        return 0.0
    if p >= 1:
        return 0.0
    lg_n, log_p, log_q = math.lgamma(n + 1), math.log(p), math.log1p(-p)  # the same values in every term
    logs = [lg_n - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p + (n - i) * log_q for i in range(k, n + 1)]
    m = max(logs)
    return (m + math.log(sum(math.exp(v - m) for v in logs))) / math.log(10)


def median(values: np.ndarray) -> float:
    """np.median of a 1-D array, the same float: the mean (numpy's, in the array's dtype) of its one or two middle
    values once sorted, NaN when any value is NaN. np.median's NaN check imports numpy.ma, about 10 ms of every
    comparison's start-up."""
    ordered = np.sort(values)
    n = ordered.size
    if n == 0 or np.isnan(ordered[-1]):  # NaN sorts last
        return math.nan
    return float(np.mean(ordered[(n - 1) // 2 : n // 2 + 1]))


def best_vector_matches(suspect: list[np.ndarray], reference: dict[str, np.ndarray]) -> list[tuple[float, str]]:
    """For each suspect vector, (Spearman correlation, name) of the reference vector it correlates with most
    (ties go to the greater name). Every vector is ranked once and all pairs are correlated in one matrix product:
    ranking each reference vector again for every suspect vector grew with the square of the layer count."""
    names = list(reference)
    zs = spearman_columns(np.stack(suspect, axis=1))
    zr = spearman_columns(np.stack([reference[n] for n in names], axis=1))
    corr = zs.T @ zr
    name_rank = np.argsort(np.argsort(np.array(names, dtype=object)))
    ties = np.where(corr == corr.max(axis=1, keepdims=True), name_rank[None, :], -1)
    best = ties.argmax(axis=1)
    return [(float(corr[i, j]), names[j]) for i, j in enumerate(best)]


@dataclass(frozen=True)
class Outcome:
    """What the comparison itself concluded, before the verdict adds its bookkeeping (bytes read, score)."""

    verdict: Conclusion
    p_value: float
    log10_p: float
    evidence: list[Evidence]
    reason: str


@dataclass
class _Anchor:
    agreement: int
    units: int
    log10_p: float
    units_tested: np.ndarray  # which suspect units were tested
    tokens_per_half: int
    pair: tuple[str, str]
    swapped: bool  # True when the reference side provided the unit subset
    rows: tuple[np.ndarray, np.ndarray]  # the sampled rows (suspect side, reference side) after any swap
    _full: tuple[np.ndarray, np.ndarray] | None = None

    def _matches(self) -> tuple[np.ndarray, np.ndarray]:
        # Matched on all sampled tokens; only the anchor that ends up as evidence needs it, so it is computed then.
        if self._full is None:
            a, b = self.rows
            self._full = row_matches(a, b, compute_threads(a.shape[1]))
        return self._full

    @property
    def match(self) -> np.ndarray:  # reference unit for each tested suspect unit
        return self._matches()[0]

    @property
    def corr(self) -> np.ndarray:
        return self._matches()[1]


SampleKey = tuple[str, str, tuple[int, ...] | None]  # side, matrix, the units read (None: all)


def _sample_key(side: str, m: TokenMatrix, dims: list[int] | None) -> SampleKey:
    return side, m.name, tuple(dims) if dims is not None else None


def _read(view: ModelView, m: TokenMatrix, dims: list[int] | None, tokens: list[int]) -> np.ndarray:
    return view.token_rows(m, tokens, dims)


def read_side_by_side(reads: Sequence[Callable[[], T]]) -> list[T]:
    """Several matrices' samples at once, so that their range reads share the reader pool's connections instead
    of waiting for each other. Each read hands its ranges to the reader pool, so it must not run on it."""
    if len(reads) <= 1:
        return [read() for read in reads]
    with ThreadPoolExecutor(max_workers=len(reads), thread_name_prefix="originscan-sample") as pool:
        return list(pool.map(lambda read: read(), reads))


class ReadsInOrder:
    """Reads started at once, one thread each, in the order given, each result a future: the threads start in that
    order, so their ranges reach the reader pool's queue in about that order too, and what a comparison needs first
    arrives first while the rest is still on its way. `close` waits for every read (before the views close)."""

    def __init__(self, reads: Sequence[Callable[[], Any]]):
        self._pool = ThreadPoolExecutor(max_workers=max(1, len(reads)), thread_name_prefix="originscan-sample")
        self.futures: list[Future[Any]] = [self._pool.submit(read) for read in reads]

    def close(self) -> None:
        self._pool.shutdown(wait=True)


@lru_cache(maxsize=1)
def _ahead_pool() -> ThreadPoolExecutor:
    """Reads ahead of need (residual vectors, the next round's rows); each hands its ranges to the reader pool."""
    return ThreadPoolExecutor(max_workers=2, thread_name_prefix="originscan-ahead")


COMPUTE_WIDTH = 1024  # hidden size from which a comparison's matches are computed on several threads
COMPUTE_THREADS = min(4, os.cpu_count() or 1)  # a kernel's chunks are shared out over this many threads


@lru_cache(maxsize=1)
def _compute_pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=COMPUTE_THREADS, thread_name_prefix="originscan-compute")


def compute_threads(width: int) -> int:
    """Threads for one comparison's kernels: up to COMPUTE_THREADS for wide models when no other comparison runs
    (a sweep's or watch's workers are the parallelism then, and more threads would only oversubscribe), else one."""
    with _blas_lock:
        alone = _blas_users <= 1
    return COMPUTE_THREADS if alone and width >= COMPUTE_WIDTH else 1


def in_threads(jobs: Sequence[Callable[[], T]], threads: int) -> list[T]:
    """The jobs' results in order, on several threads when `threads` > 1 (numpy releases the GIL in the kernels).
    Each job runs its BLAS on one thread (one_blas_thread), so threads x BLAS threads stays at the cores."""
    if threads <= 1 or len(jobs) <= 1:
        return [job() for job in jobs]
    return list(_compute_pool().map(lambda job: job(), jobs))


def _last_round(best: _Anchor, k: int, limit: int) -> bool:
    """Whether a round (k token rows per half, at most `limit`) whose best anchor is `best` settles the question:
    a derivation beyond doubt, or at 64 rows and more nothing beyond chance, or no more rows to sample."""
    score = best.agreement / best.units
    if best.log10_p <= DERIVED_LOG10_P and score >= DERIVED_SCORE:
        return True
    if k >= 64 and score < INDEPENDENT_SCORE / 2 and best.log10_p > -2:
        return True
    return k >= limit


# Every pair could reach a log10 p-value of log10(1/2) = -0.30103 or less with all its units agreeing (it tests at
# least one unit, at a chance of at most 1/2). While a round's least log10 p-value is above this bound, some later
# pair could always reach less: none is skipped, and whether any is can be told before the later samples arrive.
PAIR_PROMISE = -0.3


def _chance(b: np.ndarray) -> float:
    """The rate at which a unit's two best matches agree by chance under H0, among b's units (see P0_FACTOR)."""
    units: int = b.shape[1]
    return min(0.5, P0_FACTOR / units)


class Comparator:
    def __init__(self, suspect: ModelView, reference: ModelView, k_start: int = K_START, k_max: int = K_MAX):
        self.s, self.r = suspect, reference
        self.k_start, self.k_max = k_start, k_max
        self.nonfinite: set[str] = set()  # token matrices skipped for being mostly NaN/Inf
        self._vectors_ahead: Future[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]] | None = None
        # The next round's rows, read while a round computes: per (side, matrix name) the read of its rows.
        self._rows_ahead: tuple[ReadsInOrder, dict[tuple[str, str], Future[Any]]] | None = None

    # -- anchors -----------------------------------------------------------------------------------------------
    def _round(
        self,
        pairs: list[tuple[TokenMatrix, TokenMatrix]],
        tokens: np.ndarray,
        first_anchor: Callable[[_Anchor], None] = lambda anchor: None,
    ) -> list[_Anchor]:
        """One anchor per pair whose samples are mostly finite (a matrix mostly NaN/Inf carries no evidence either
        way). Each matrix's sample is read once (all of them at once, in the order the pairs need them: remote reads
        are latency-bound) and ranked once per half, however many pairs it is in; each pair's matches are computed
        on all the threads as soon as its two samples are in, while the others' are still read. `first_anchor` is
        told the first pair's anchor while the others compute (to read ahead)."""
        half_a, half_b = tokens[0::2].tolist(), tokens[1::2].tolist()
        all_tokens = half_a + half_b
        n = len(half_a)
        plans = []
        for ms, mr in pairs:
            dims_s, dims_r = self._dims(self.s, ms), self._dims(self.r, mr)
            if dims_s is not None and dims_r is not None:
                dims_r = None  # both transposed: read the reference's units in full
            plans.append((ms, mr, dims_s, dims_r))
        keys: dict[SampleKey, tuple[ModelView, TokenMatrix, list[int] | None]] = {}
        for ms, mr, dims_s, dims_r in plans:  # in the order the pairs read them (the first error is the same)
            keys.setdefault(_sample_key("s", ms, dims_s), (self.s, ms, dims_s))
            keys.setdefault(_sample_key("r", mr, dims_r), (self.r, mr, dims_r))
        ahead, self._rows_ahead = self._rows_ahead, None  # this round's rows, read ahead by the previous round

        def sample(key: SampleKey) -> np.ndarray:
            view, m, dims = keys[key]
            read = ahead[1].get((key[0], m.name)) if ahead is not None else None
            if read is not None:  # rows are read once: the read-ahead of this matrix's rows ends first ...
                try:
                    read.result()
                except Exception:
                    pass  # ... and one that failed is forgotten: this read fails in its place, in order
            return _read(view, m, dims, all_tokens)

        reads = ReadsInOrder([partial(sample, key) for key in keys])
        try:
            return self._anchors(plans, dict(zip(keys, reads.futures)), n, first_anchor)
        finally:
            reads.close()
            if ahead is not None:
                ahead[0].close()

    def _anchors(
        self,
        plans: list[tuple[TokenMatrix, TokenMatrix, list[int] | None, list[int] | None]],
        reading: dict[SampleKey, Future[np.ndarray]],
        n: int,
        first_anchor: Callable[[_Anchor], None],
    ) -> list[_Anchor]:
        """The round's anchors from its samples as they arrive (see _round), pair by pair in order."""
        samples: dict[SampleKey, np.ndarray] = {}
        finite: dict[SampleKey, bool] = {}

        def usable(key: SampleKey) -> bool:
            if key not in samples:
                samples[key] = reading[key].result()  # waits for the read; its error, if any
                finite[key] = bool(np.mean(~np.isfinite(samples[key])) <= 0.5)
            return finite[key]

        def used_from(i: int) -> list[tuple[SampleKey, SampleKey]]:
            """(tested, other) sample keys of the pairs from the i-th on whose samples are mostly finite."""
            sides = []
            for ms, mr, dims_s, dims_r in plans[i:]:
                ks, kr = _sample_key("s", ms, dims_s), _sample_key("r", mr, dims_r)
                if usable(ks) and usable(kr):
                    swapped = dims_r is not None and dims_s is None
                    sides.append((kr, ks) if swapped else (ks, kr))
            return sides

        ranked: dict[tuple[SampleKey, int], np.ndarray] = {}  # each sample's halves, ranked when a pair needs them
        anchors: list[_Anchor] = []
        threads = 0
        for i, (ms, mr, dims_s, dims_r) in enumerate(plans):
            ks, kr = _sample_key("s", ms, dims_s), _sample_key("r", mr, dims_r)
            bad = next((m.name for m, k in ((ms, ks), (mr, kr)) if not usable(k)), None)
            if bad is not None:
                self.nonfinite.add(bad)
                continue
            threads = threads or compute_threads(samples[ks].shape[1])
            swapped = dims_r is not None and dims_s is None
            tested, other = (kr, ks) if swapped else (ks, kr)
            todo = [(k, h) for k in (tested, other) for h in (0, 1) if (k, h) not in ranked]  # h: first or second half
            ranked.update(
                zip(
                    todo,
                    in_threads([partial(spearman_columns, samples[k][h * n : (h + 1) * n]) for k, h in todo], threads),
                )
            )
            halves = ((ranked[(tested, 0)], ranked[(other, 0)]), (ranked[(tested, 1)], ranked[(other, 1)]))
            agree = agreement(halves, threads)
            a, b = samples[tested], samples[other]
            units = a.shape[1]
            units_tested = np.array(
                dims_s if dims_s is not None else (dims_r if swapped and dims_r is not None else range(units))
            )
            log10_p = log10_binom_sf(agree, units, _chance(b))
            anchors.append(_Anchor(agree, units, log10_p, units_tested, n, (ms.name, mr.name), swapped, (a, b)))
            if len(anchors) == 1:
                first_anchor(anchors[0])
                self._read_vectors_ahead()  # after the next round's rows: the vectors are needed last
            # The comparison keeps the first pair with the least p-value, so once no later pair could reach less
            # even with every unit agreeing, the later pairs cannot change the round's outcome (a derived model's
            # first pair usually settles it). Above PAIR_PROMISE that cannot be so yet: go on without waiting for
            # the later samples.
            least = min(anchor.log10_p for anchor in anchors)
            if least <= PAIR_PROMISE and all(
                self._least_log10_p(samples[t], samples[o]) >= least for t, o in used_from(i + 1)
            ):
                break
        for key in reading:  # every sample was read, as each pair's would be: a failed read fails the round
            reading[key].result()
        return anchors

    @staticmethod
    def _least_log10_p(a: np.ndarray, b: np.ndarray) -> float:
        """The least p-value (log10) a pair of these samples could give: every tested unit agreeing."""
        return log10_binom_sf(a.shape[1], a.shape[1], _chance(b))

    def _dims(self, view: ModelView, m: TokenMatrix) -> list[int] | None:
        if not m.transposed:
            return None
        hidden = view.structure.hidden or 0
        rng = np.random.default_rng(7)
        return sorted(rng.choice(hidden, size=min(hidden, SUBSET_DIMS), replace=False).tolist())

    def run(self) -> Outcome:
        try:
            return self._run()
        finally:  # reads ahead end before the views are counted and closed
            self._wait_for_rows_ahead()
            if self._vectors_ahead is not None:
                self._vectors_ahead.exception()

    def _run(self) -> Outcome:
        ss, rs = self.s.structure, self.r.structure
        evidence: list[Evidence] = []
        if not ss.token_matrices or not rs.token_matrices:
            return self._vectors_only(evidence)
        shared_vocab = min(ss.token_matrices[0].vocab, rs.token_matrices[0].vocab)
        if any(m.transposed for m in ss.token_matrices + rs.token_matrices):
            # A matrix stored (hidden, vocab) holds one unit's tokens contiguously: a window of adjacent token ids
            # is then a short read per unit, where scattered ids would mean reading whole rows.
            stream = token_window(shared_vocab, 2 * self.k_max)
        else:
            stream = token_stream(rs.token_matrices[0].vocab)
            stream = stream[stream < shared_vocab]
        for view, m in ((self.s, ss.token_matrices[0]), (self.r, rs.token_matrices[0])):
            if hasattr(view, "available_tokens"):  # a stored fingerprint holds only some token rows
                have = view.available_tokens(m)
                stream = stream[np.isin(stream, list(have))]
        limit = min(self.k_max, len(stream) // 2)
        if limit < 8:
            return Outcome("inconclusive", 0.0, 0.0, evidence, "too few shared token ids to compare")
        k = min(self.k_start, limit)
        pairs = [(ms, mr) for ms in ss.token_matrices for mr in rs.token_matrices]
        best: _Anchor | None = None
        while True:
            tokens = stream[: 2 * k]
            results = self._round(pairs, tokens, partial(self._read_next_round_ahead, pairs, stream, k, limit))
            if not results:
                return Outcome(
                    "inconclusive",
                    1.0,
                    0.0,
                    evidence,
                    "token matrices hold mostly non-finite values (NaN/Inf): " + ", ".join(sorted(self.nonfinite)),
                )
            best = min(results, key=lambda r: r.log10_p)
            score = best.agreement / best.units
            # Keep only the pair that carries the signal once it is clear which one does.
            if score >= DERIVED_SCORE:
                pairs = [p for p in pairs if (p[0].name, p[1].name) == best.pair]
            if _last_round(best, k, limit):
                break
            k = min(2 * k, limit)
        score = best.agreement / best.units
        evidence.append(
            TokenMatrixMatch(
                suspect_tensor=best.pair[0],
                reference_tensor=best.pair[1],
                tokens_per_half=best.tokens_per_half,
                units_tested=best.units,
                units_consistent=best.agreement,
                median_matched_corr=round(median(np.abs(best.corr)), 4),
                log10_p=round(best.log10_p, 2),
                identity_alignment=bool(np.mean(best.match == best.units_tested) > 0.9)
                if not best.swapped and best.units == (self.r.structure.hidden or -1)
                else None,
            )
        )
        self._vector_evidence(best, evidence)
        hidden_s, hidden_r = ss.hidden, rs.hidden
        verdict: Conclusion
        if best.log10_p <= DERIVED_LOG10_P and score >= DERIVED_SCORE:
            verdict, reason = "derived", "hidden units of the token matrices map one-to-one onto the reference's"
        elif score < INDEPENDENT_SCORE and best.log10_p > -3:
            if hidden_s != hidden_r:
                verdict = "inconclusive"
                reason = f"architectures differ (hidden size {hidden_s} vs {hidden_r}) and no unit correspondence"
            else:
                verdict, reason = "independent", "no consistent unit correspondence beyond chance"
        else:
            verdict, reason = "inconclusive", "weak association: more than chance, less than a derivation"
        return Outcome(verdict, 10 ** max(best.log10_p, -300.0), best.log10_p, evidence, reason)

    def _read_next_round_ahead(
        self, pairs: list[tuple[TokenMatrix, TokenMatrix]], stream: np.ndarray, k: int, limit: int, first: _Anchor
    ) -> None:
        """While a round computes, read the rows the next one will need, when its first pair's anchor says there
        will be one with the same pairs (a guess: a wrong one costs bytes read ahead for nothing, never a different
        judgement, since every round reads what it needs in any case)."""
        if _last_round(first, k, limit) or first.agreement / first.units >= DERIVED_SCORE:
            return
        following = stream[: 2 * min(2 * k, limit)].tolist()
        reads: dict[tuple[str, str], Callable[[], None]] = {}
        for ms, mr in pairs:  # in the order the pairs need them
            reads.setdefault(("s", ms.name), partial(self.s.read_token_rows, [ms], following))
            reads.setdefault(("r", mr.name), partial(self.r.read_token_rows, [mr], following))
        started = ReadsInOrder(list(reads.values()))
        self._rows_ahead = started, dict(zip(reads, started.futures))

    def _wait_for_rows_ahead(self) -> None:
        """Reads ahead that no round took end before the views are counted and closed (errors are forgotten)."""
        if self._rows_ahead is not None:
            self._rows_ahead[0].close()
            self._rows_ahead = None

    # -- per-layer evidence --------------------------------------------------------------------------------------
    def _read_vectors_ahead(self) -> None:
        """Once a round has anchors, the residual vectors will be read for evidence (unless the reference's token
        matrix is stored transposed, see _vector_evidence): read them while the rounds compute."""
        sv, rv = self.s.structure.vectors, self.r.structure.vectors
        if self._vectors_ahead is None and sv and rv and not any(m.transposed for m in self.r.structure.token_matrices):
            self._vectors_ahead = _ahead_pool().submit(lambda: (self.r.vectors(rv), self.s.vectors(sv)))

    def _vector_evidence(self, anchor: _Anchor, evidence: list[Evidence]) -> None:
        """Each suspect residual vector, aligned through the anchor's unit map, against every reference vector."""
        sv, rv = self.s.structure.vectors, self.r.structure.vectors
        if not sv or not rv or anchor.swapped:
            return
        units = anchor.units_tested
        ref_units = anchor.match
        try:
            ref, sus = self._vectors_ahead.result() if self._vectors_ahead else (self.r.vectors(rv), self.s.vectors(sv))
            best = best_vector_matches([sus[n][units] for n in sv], {n: v[ref_units] for n, v in ref.items()})
            for name, (rho, rname) in zip(sv, best):
                evidence.append(
                    ResidualVectorMatch(name, rname, round(rho, 4), nonfinite=int(np.sum(~np.isfinite(sus[name]))))
                )
            # the reference's own vectors, so a report can show which of its layers nothing matched (pruned)
            evidence.append(ReferenceVectors(tuple(rv)))
        except (OSError, ValueError, KeyError) as exc:
            evidence.append(ReadError(str(exc)[:200]))

    def _vectors_only(self, evidence: list[Evidence]) -> Outcome:
        """No token matrix on one side: compare residual vectors under the identity alignment only."""
        ss, rs = self.s.structure, self.r.structure
        if not ss.vectors or not rs.vectors or ss.hidden != rs.hidden:
            return Outcome(
                "inconclusive", 1.0, 0.0, evidence, "no token matrix or comparable hidden-size tensors found"
            )
        strong = 0
        sus = self.s.vectors(ss.vectors)
        for name, (rho, rname) in zip(
            ss.vectors, best_vector_matches([sus[n] for n in ss.vectors], self.r.vectors(rs.vectors))
        ):
            strong += rho > 0.8
            evidence.append(ResidualVectorMatch(name, rname, round(rho, 4)))
        if strong >= max(2, len(ss.vectors) // 2):
            return Outcome(
                "derived",
                0.0,
                -300.0,
                evidence,
                "residual vectors match under the identity alignment (no token matrix to align on)",
            )
        return Outcome("inconclusive", 1.0, 0.0, evidence, "no token matrix to align on; residual vectors do not match")


def compare_views(
    suspect: ModelView, reference: ModelView, suspect_name: str = "suspect", reference_name: str = "reference"
) -> Verdict:
    started = time.perf_counter()
    weight_bytes = suspect.weight_bytes + reference.weight_bytes

    def done(
        verdict: Conclusion, p: float, log10_p: float, score: float, evidence: list[Evidence], reason: str
    ) -> Verdict:
        return Verdict(
            suspect_name,
            reference_name,
            verdict,
            p,
            round(score, 4),
            suspect.bytes_read + reference.bytes_read,
            weight_bytes,
            tuple(evidence),
            reason,
            log10_p_value=round(log10_p, 2),
            seconds=round(time.perf_counter() - started, 3),
        )

    shared = suspect.file_hashes & reference.file_hashes
    if shared:
        return done(
            "derived",
            0.0,
            -300.0,
            1.0,
            [IdenticalFiles(tuple(sorted(shared)))],
            "weight files are byte-identical",
        )
    problems = suspect.problems + reference.problems
    if not suspect.structure.hidden or not reference.structure.hidden:
        reason = "; ".join(problems) if problems else "no comparable tensors (not a transformer weight set?)"
        return done("inconclusive", 1.0, 0.0, 0.0, [], reason)
    try:
        with one_blas_thread():
            outcome = Comparator(suspect, reference).run()
    except (OSError, ValueError) as exc:
        return done("inconclusive", 1.0, 0.0, 0.0, [], f"could not read weights: {str(exc)[:200]}")
    evidence = outcome.evidence
    score = 0.0
    for e in evidence:
        if isinstance(e, TokenMatrixMatch):
            score = e.units_consistent / max(1, e.units_tested)
    if score == 0.0 and outcome.verdict == "derived":
        score = 1.0
    if problems:
        evidence.append(ReadProblems(tuple(problems)))
    if suspect.note:  # which of a repo's GGUF variants or split parts was read
        evidence.append(WeightsRead("suspect", suspect.note))
    if reference.note:
        evidence.append(WeightsRead("reference", reference.note))
    return done(outcome.verdict, outcome.p_value, outcome.log10_p, score, evidence, outcome.reason)


def compare_snapshots(suspect: Snapshot, reference: Snapshot) -> Verdict:
    s_hashes = {f.sha256 for f in suspect.weight_files() if f.sha256}
    r_hashes = {f.sha256 for f in reference.weight_files() if f.sha256}
    if s_hashes & r_hashes:  # decided from hashes the sources gave for free: no weight byte is read
        weight_bytes = sum(f.size for f in suspect.weight_files()) + sum(f.size for f in reference.weight_files())
        return Verdict(
            suspect.target,
            reference.target,
            "derived",
            0.0,
            1.0,
            0,
            weight_bytes,
            (IdenticalFiles(tuple(sorted(s_hashes & r_hashes))),),
            "weight files are byte-identical",
            log10_p_value=-300.0,
        )
    from scanner.provenance.views import open_model  # safetensors (plain or quantized) or GGUF

    # Side by side: over HTTP each model's shard headers cost requests' latency.
    s, r = read_side_by_side([partial(open_model, suspect), partial(open_model, reference)])
    try:
        return compare_views(s, r, suspect.target, reference.target)
    finally:
        s.close()
        r.close()


def compare_paths(suspect_dir: str | Path, reference_dir: str | Path) -> Verdict:
    """Convenience for benchmarks and scripts: two local model folders."""
    from scanner.sources.local import LocalSource

    s = LocalSource(str(suspect_dir), hash_weights=False).snapshot()
    r = LocalSource(str(reference_dir), hash_weights=False).snapshot()
    return compare_snapshots(s, r)
