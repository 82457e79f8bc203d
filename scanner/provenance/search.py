"""A suspect against every registered upstream, at a cost that barely grows with the number registered.

  1. Exact copies: the suspect's weight-file sha256s looked up in the index (one query, 0 weight bytes).
  2. Header facts rule out the rest cheaply: an upstream with another hidden size, or with no comparable
     fingerprint (hashes only), cannot be the suspect's source by this test. Vocabulary size and layer count
     are not used to rule out: vocabulary extension and layer pruning are derivations the full test finds.
  3. The screen: for a few reference units, the suspect unit that correlates best on each half of a set of
     token ids. A derived model maps them to the same suspect unit on both halves; an independent one agrees
     by chance (about 1/d). Upstreams with fewer agreements than a derivation would show are ruled out:
     milliseconds each, no blob decoded. The token ids are
       - the head, ids 0 .. HEAD_ROWS-1 (the upstream's head sketches, one per token matrix): the first rows of
         a matrix as stored, so for a small model they come with the header in the file's first read
         (`first_read_bytes` sizes it) and the screen costs no request; the suspect screens the token matrices
         whose head rows came with the header, else the one stored first (one contiguous read). What it
         cannot see: a derivative whose matrix stored first was re-initialised whole while another kept the
         upstream's rows, when only the first came with the header (the sketch screened every matrix);
       - else the first sampled ids of the token stream (the sketch), scattered over the vocabulary: for an
         upstream registered before head sketches existed whose stored rows do not hold its head, and for a
         suspect whose token matrices are all stored transposed.
  4. The full test (scanner.provenance.compare) on the survivors, decoding one stored fingerprint at a time.

The screen only rules out what the full test would not call derived: its bar (half the agreement rate the
full test requires, and never above what chance makes unlikely) sits far below a derivation's.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

import numpy as np

from scanner.provenance.compare import (
    DERIVED_SCORE,
    P0_FACTOR,
    compare_views,
    log10_binom_sf,
    one_blas_thread,
    spearman_columns,
)
from scanner.provenance.fingerprint import HEAD_ROWS, Sketch, sketch_tokens
from scanner.provenance.index import Candidate, Index, Registered
from scanner.provenance.model import SourcedView, TokenMatrix
from scanner.provenance.result import IdenticalFiles, Verdict
from scanner.provenance.safetensors import HEAD_BYTES, TensorInfo

CHANCE_LOG10 = -3.0  # agreements this unlikely under independence always survive the screen
# A small safetensors header: a few hundred bytes for the embedding, head and final norm, then about 100 bytes per
# tensor and 9-12 tensors per layer (1,184 bytes for a one-layer Llama; Qwen2's biases make 12).
HEADER_BYTES = 2048
HEADER_BYTES_PER_LAYER = 1280
# The most a first read takes to bring a same-width suspect's head rows with its header: a screen request's worth
# (HTTPRangeByteSource.screen_request_cost), what one request is weighed against over thousands of repos.
SCREEN_HEAD_BYTES = 1024 * 1024


@dataclass
class SearchStats:
    registered: int = 0
    exact: int = 0
    ruled_out_by_headers: int = 0
    screened_out: int = 0
    head_screens: int = 0  # upstreams screened on the head rows (no scattered reads)
    sketch_screens: int = 0  # upstreams screened on the sketch (scattered rows): no head sketch to screen on
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


def first_read_bytes(config: object, screened_widths: Collection[int] = ()) -> int | None:
    """Bytes the first read of a weight file should take so that the head screen needs no request of its own: the
    header and HEAD_ROWS rows of the token matrix stored first, sized from config.json's hidden size, layer count
    and dtype (hints only: a wrong one costs a request, never a wrong answer). Never over safetensors' usual head,
    unless a registered upstream has that hidden size (`screened_widths`): the screen then reads those rows in any
    case, so they come with the header, up to a screen request's worth (a 4096-wide model's 96 rows are 768 KB).
    None without a usable hidden size (the usual head is read)."""
    if not isinstance(config, dict):
        return None

    def number(*keys: str) -> int | None:
        value = next((config[k] for k in keys if k in config), None)
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None

    hidden = number("hidden_size", "d_model", "n_embd")
    if hidden is None:
        return None
    layers = number("num_hidden_layers", "n_layer", "num_layers") or 0
    itemsize = 4 if "float32" in (config.get("torch_dtype"), config.get("dtype")) else 2
    wanted = HEADER_BYTES + HEADER_BYTES_PER_LAYER * layers + HEAD_ROWS * hidden * itemsize
    return min(SCREEN_HEAD_BYTES if hidden in screened_widths else HEAD_BYTES, wanted)


def _head_place(model: SourcedView, m: TokenMatrix) -> tuple[str, int, int] | None:
    """(file, offset, bytes) of a matrix's head rows as stored, for a plain safetensors matrix; else None."""
    t = model.tensors.get(m.name)
    if not isinstance(t, TensorInfo) or not t.shape or t.shape[0] != m.vocab:
        return None
    return t.file, t.start, HEAD_ROWS * (t.nbytes // m.vocab)


class _SuspectHead:
    """The suspect's side of the head screen: its rank-standardised rows 0 .. HEAD_ROWS-1 of the token matrices
    whose head rows came with the header (free), else of the one stored first (one contiguous read)."""

    def __init__(self, model: SourcedView):
        self.model = model
        self._halves: list[tuple[np.ndarray, np.ndarray]] | None = None
        self._done = False

    def halves(self) -> list[tuple[np.ndarray, np.ndarray]] | None:
        if not self._done:
            self._halves, self._done = self._compute(), True
        return self._halves

    def _in_memory(self, m: TokenMatrix) -> bool:
        place = _head_place(self.model, m)
        src = self.model.sources.get(place[0]) if place else None
        return place is not None and src is not None and src.holds(place[1], place[2])

    def _compute(self) -> list[tuple[np.ndarray, np.ndarray]] | None:
        plain = [m for m in self.model.structure.token_matrices if not m.transposed and m.vocab >= HEAD_ROWS]
        if not plain:
            return None  # a transposed matrix's head rows are scattered: the sketch screen decides
        free = [m for m in plain if self._in_memory(m)]
        chosen = free or [min(plain, key=lambda m: _head_place(self.model, m) or ("", 0, 0))]
        out = []
        for m in chosen:
            halves = _screen_halves(self.model, m, list(range(HEAD_ROWS)))
            if halves is False:
                return None
            if halves is not None:
                out.append(halves)
        return out or None


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
            halves = _screen_halves(self.model, m, tokens)
            if halves is False:
                return None
            if halves is not None:
                out.append(halves)
        return out or None


def _screen_halves(
    model: SourcedView, m: TokenMatrix, tokens: list[int]
) -> tuple[np.ndarray, np.ndarray] | None | Literal[False]:
    """A matrix's rows at `tokens`, rank-standardised per half (even and odd places); None for a matrix mostly
    not finite (nothing to screen on), False when the rows cannot be read here (the full test reads and reports it)."""
    try:
        with model.screens():  # once per repo over many repos: requests count more than bytes
            rows = model.token_rows(m, tokens)
    except (OSError, ValueError, IndexError):
        return False
    if np.mean(~np.isfinite(rows)) > 0.5:
        return None
    return spearman_columns(rows[0::2]), spearman_columns(rows[1::2])


def _agreements(halves: list[tuple[np.ndarray, np.ndarray]], sketch: Sketch) -> int:
    za, zb = sketch.z[0].astype(np.float32), sketch.z[1].astype(np.float32)
    best = 0
    for sa, sb in halves:
        if sa.shape[0] != sketch.z.shape[1]:
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
        survivors = _screen(comparable, index, _SuspectHead(model), suspect, hidden, stats)

    if survivors:
        names = {r.name for r in survivors}
        _before_full_test(model, suspect, {c.vocab for c in comparable if c.reg.name in names and c.vocab})
    for reg, view in index.iter_views(survivors):
        out.append((reg, compare_views(model, view, target, reg.name)))
        stats.compared += 1
    stats.survivors = [r.name for r in survivors]
    out.sort(key=lambda x: x[0].name)
    return out, stats


def _passes_heads(halves: list[tuple[np.ndarray, np.ndarray]], heads: list[Sketch], hidden: int) -> bool:
    """Whether any of the upstream's token matrices (its head sketches) agrees with the suspect's head rows as a
    derivation would; a head that does not fit (a damaged entry) passes: the full test decides."""
    for head in heads:
        try:
            if _agreements(halves, head) >= screen_threshold(len(head.units), hidden):
                return True
        except ValueError:
            return True
    return False


def _before_full_test(model: SourcedView, suspect: _SuspectSketch, vocabs: set[int]) -> None:
    """What a survivor's full test reads first, read as a screen reads (by ByteSource.screen_request_cost): the full
    test's own reads would take a request per few scattered rows and per residual vector. A remote file smaller than
    a screen request's worth is read whole, in one request for what its first read did not bring (5 requests for
    a one-layer model before); of a larger one, the rows at the first sampled ids, all matrices together (what the
    sketch screen read, and the full test then found read). The answer is the same; only the reads differ."""
    for src in model.sources.values():
        cost = src.read_cost(True)
        if cost and src.size <= cost and not src.holds(0, src.size):
            src.read_head(src.size)
    for vocab in sorted(vocabs):  # the sketch's rows of each survivor's vocabulary: read once, kept by the model
        suspect.halves(vocab)


def _screen(
    comparable: list[Candidate],
    index: Index,
    head: _SuspectHead,
    suspect: _SuspectSketch,
    hidden: int,
    stats: SearchStats,
) -> list[Registered]:
    survivors: list[Registered] = []
    for c in comparable:
        heads = index.heads(c.reg.fingerprint)
        halves_at_head = head.halves() if heads else None
        if halves_at_head is not None:
            stats.head_screens += 1
            if _passes_heads(halves_at_head, heads, hidden):
                survivors.append(c.reg)
            else:
                stats.screened_out += 1
            continue
        stats.sketch_screens += 1
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


__all__ = ["find_matches", "first_read_bytes", "SearchStats", "screen_threshold", "identical_verdict"]
