"""A suspect against every registered upstream, at a cost that barely grows with the number registered.

  1. Exact copies: the suspect's weight-file sha256s looked up in the index (one query, 0 weight bytes).
  2. Header facts rule out the rest cheaply: an upstream with another hidden size, or with no comparable
     fingerprint (hashes only), cannot be the suspect's source by this test. Vocabulary size and layer count
     are not used to rule out: vocabulary extension and layer pruning are derivations the full test finds.
  3. The sketch: for a few reference units, the suspect unit that correlates best on each half of the first
     sampled token ids (the rows the full test reads first anyway, so no extra bytes). A derived model maps
     them to the same suspect unit on both halves; an independent one agrees by chance (about 1/d). Upstreams
     with fewer agreements than a derivation would show are ruled out: milliseconds each, no blob decoded.
  4. The full test (scanner.provenance.compare) on the survivors, decoding one stored fingerprint at a time.

The screen only rules out what the full test would not call derived: its bar (half the agreement rate the
full test requires, and never above what chance makes unlikely) sits far below a derivation's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from scanner.provenance.compare import (
    DERIVED_SCORE,
    P0_FACTOR,
    compare_views,
    log10_binom_sf,
    one_blas_thread,
    spearman_columns,
)
from scanner.provenance.fingerprint import SKETCH_TOKENS_PER_HALF, Sketch, sketch_tokens
from scanner.provenance.index import Candidate, Index, Registered
from scanner.provenance.model import SourcedView
from scanner.provenance.result import IdenticalFiles, Verdict

CHANCE_LOG10 = -3.0  # agreements this unlikely under independence always survive the screen


@dataclass
class SearchStats:
    registered: int = 0
    exact: int = 0
    ruled_out_by_headers: int = 0
    screened_out: int = 0
    compared: int = 0
    survivors: list[str] = field(default_factory=list)


@lru_cache(maxsize=256)
def screen_threshold(units: int, suspect_hidden: int) -> int:
    """Agreements (of `units` reference units) at or above which an upstream goes on to the full test."""
    p0 = min(0.5, P0_FACTOR / max(1, suspect_hidden))
    chance = next((c for c in range(1, units + 1) if log10_binom_sf(c, units, p0) <= CHANCE_LOG10), units)
    derivation = max(3, int(units * DERIVED_SCORE / 2))
    return min(chance, derivation)


def identical_verdict(suspect: str, reference: str, shared: set[str], weight_bytes: int) -> Verdict:
    return Verdict(
        suspect,
        reference,
        "derived",
        0.0,
        1.0,
        0,
        weight_bytes,
        (IdenticalFiles(tuple(sorted(shared))),),
        "weight files are byte-identical",
        log10_p_value=-300.0,
    )


class _SuspectSketch:
    """The suspect's side of the screen: its rank-standardised rows at the sketch tokens, once per vocabulary."""

    def __init__(self, model: SourcedView):
        self.model = model
        self._halves: dict[int, list[tuple[np.ndarray, np.ndarray]] | None] = {}

    def halves(self, vocab: int) -> list[tuple[np.ndarray, np.ndarray]] | None:
        if vocab not in self._halves:
            self._halves[vocab] = self._compute(vocab)
        return self._halves[vocab]

    def _compute(self, vocab: int) -> list[tuple[np.ndarray, np.ndarray]] | None:
        tokens = sketch_tokens(vocab).tolist()
        out = []
        if all(not m.transposed for m in self.model.structure.token_matrices):
            try:
                with self.model.screens():  # once per repo over many repos: requests count more than bytes
                    self.model.read_token_rows(self.model.structure.token_matrices, tokens)
            except (OSError, ValueError, IndexError):
                pass  # read again matrix by matrix below, where a failure has its answer
        for m in self.model.structure.token_matrices:
            if m.transposed or max(tokens) >= m.vocab:
                return None  # scattered ids from a transposed matrix would cost whole rows: the full test decides
            try:
                with self.model.screens():  # once per repo over many repos: requests count more than bytes
                    rows = self.model.token_rows(m, tokens)
            except (OSError, ValueError, IndexError):  # unreadable here: the full test reads and reports it
                return None
            if np.mean(~np.isfinite(rows)) > 0.5:
                continue
            out.append((spearman_columns(rows[0::2]), spearman_columns(rows[1::2])))
        return out or None


def _agreements(halves: list[tuple[np.ndarray, np.ndarray]], sketch: Sketch) -> int:
    za, zb = sketch.z[0].astype(np.float32), sketch.z[1].astype(np.float32)
    best = 0
    for sa, sb in halves:
        if sa.shape[0] != SKETCH_TOKENS_PER_HALF:
            continue
        a = np.abs(sa.T @ za).argmax(axis=0)
        b = np.abs(sb.T @ zb).argmax(axis=0)
        best = max(best, int(np.sum(a == b)))
    return best


def find_matches(model: SourcedView, index: Index, target: str) -> tuple[list[tuple[Registered, Verdict]], SearchStats]:
    """Verdicts for the upstreams the suspect may derive from (every one it was fully compared with)."""
    stats = SearchStats()
    candidates = index.candidates(exclude_target=target)
    stats.registered = len(candidates)
    out: list[tuple[Registered, Verdict]] = []
    exact = {reg.name: shared for reg, shared in index.exact(model.file_hashes, exclude_target=target)}
    for c in candidates:
        if c.reg.name in exact:
            out.append(
                (
                    c.reg,
                    identical_verdict(
                        target, c.reg.name, exact[c.reg.name], model.weight_bytes + (c.reg.weight_bytes or 0)
                    ),
                )
            )
    stats.exact = len(out)
    hidden = model.structure.hidden
    if not model.tensors or not hidden:
        return out, stats
    rest = [c for c in candidates if c.reg.name not in exact]
    comparable = [c for c in rest if c.kind == "rows" and c.hidden == hidden]
    stats.ruled_out_by_headers = len(rest) - len(comparable)

    suspect = _SuspectSketch(model)
    with one_blas_thread():  # small products: threads only add synchronisation (see compare.one_blas_thread)
        survivors = _screen(comparable, index, suspect, hidden, stats)

    for reg, view in index.iter_views(survivors):
        out.append((reg, compare_views(model, view, target, reg.name)))
        stats.compared += 1
    stats.survivors = [r.name for r in survivors]
    out.sort(key=lambda x: x[0].name)
    return out, stats


def _screen(
    comparable: list[Candidate], index: Index, suspect: _SuspectSketch, hidden: int, stats: SearchStats
) -> list[Registered]:
    survivors: list[Registered] = []
    for c in comparable:
        sketch = index.sketch(c.reg.fingerprint) if c.kind == "rows" else None
        halves = suspect.halves(sketch.vocab) if sketch is not None else None
        if sketch is None or halves is None:
            survivors.append(c.reg)  # nothing to screen with: the full test decides
            continue
        try:
            agreements = _agreements(halves, sketch)
        except ValueError:  # a sketch that does not fit (damaged entry): the full test decides
            survivors.append(c.reg)
            continue
        if agreements >= screen_threshold(len(sketch.units), hidden):
            survivors.append(c.reg)
        else:
            stats.screened_out += 1
    return survivors


__all__ = ["find_matches", "SearchStats", "screen_threshold", "identical_verdict"]
