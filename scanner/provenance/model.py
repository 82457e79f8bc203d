"""One model's weights seen through the few parts that carry identity, read lazily by byte range.

Provenance rests on two kinds of tensors that survive every function-preserving disguise:
  * token matrices (embeddings, LM head): rows are indexed by token id, which renaming, re-typing, noise and
    permutation of hidden units cannot move; only the hidden axis can be permuted;
  * residual vectors (norm weights and biases of hidden size): per-layer, aligned once the hidden axis is.
A `ModelView` serves those; `LiveModel` reads them from weight files, `StoredModel` from the fingerprint index.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from scanner.file_formats import SAFETENSORS, format_of
from scanner.provenance.safetensors import (
    SafetensorsError,
    TensorInfo,
    natural_key,
    parallel,
    parse_header,
    read_row_span,
    read_rows_of,
    read_tensor,
)
from scanner.sources.bytesource import ByteSource
from scanner.sources.interface import Snapshot

MIN_VOCAB = 256  # a token matrix has at least this many rows; smaller "N x hidden" tensors are type embeddings
# Budgets on what a header may claim (it comes from whoever uploaded the file): released models are at most ~32 k
# wide with vocabularies under 1 M and a few hundred residual vectors; anything past these is not read.
MAX_HIDDEN = 1 << 16
MAX_VOCAB = 1 << 22
MAX_VECTORS = 2048
INTEGER_DTYPES = frozenset({"I64", "I32", "I16", "I8", "U64", "U32", "U16", "U8", "BOOL"})


@dataclass
class TokenMatrix:
    name: str
    vocab: int  # rows indexed by token id
    transposed: bool  # stored as (hidden, vocab)


@dataclass
class Structure:
    hidden: int | None
    token_matrices: list[TokenMatrix] = field(default_factory=list)
    vectors: list[str] = field(default_factory=list)  # names of residual vectors, in layer order


class ModelView:
    """What comparison needs from a model. Subclasses read lazily and count bytes."""

    structure: Structure
    file_hashes: set[str]
    problems: list[str]
    note: str = ""  # which of a repo's weight files were read, when it is not all of them (GGUF variants)

    def close(self) -> None:
        """Release what the view holds open (files, connections); nothing by default."""

    def token_rows(self, matrix: TokenMatrix, tokens: list[int], dims: list[int] | None = None) -> np.ndarray:
        raise NotImplementedError

    def read_token_rows(self, matrices: list[TokenMatrix], tokens: list[int]) -> None:
        """Read ahead the rows token_rows will be asked for, several matrices at once (nothing by default)."""

    def vector(self, name: str) -> np.ndarray:
        raise NotImplementedError

    def vectors(self, names: list[str]) -> dict[str, np.ndarray]:
        """Several vectors at once (a subclass that reads them may read them concurrently)."""
        return {n: self.vector(n) for n in names}

    def vector_hash(self, name: str) -> str:
        return hashlib.sha256(self.vector(name).tobytes()).hexdigest()

    @property
    def bytes_read(self) -> int:
        raise NotImplementedError

    @property
    def weight_bytes(self) -> int:
        raise NotImplementedError


class TensorShape(Protocol):
    """What analyse() reads of a tensor: safetensors' TensorInfo and GGUF's tensors alike."""

    @property
    def name(self) -> str: ...
    @property
    def dtype(self) -> str: ...
    @property
    def shape(self) -> tuple[int, ...]: ...
    @property
    def numel(self) -> int: ...
    @property
    def nbytes(self) -> int: ...
    @property
    def decodable(self) -> bool: ...


def analyse(tensors: Sequence[TensorShape], config: dict[str, Any] | None) -> Structure:
    """Find the hidden size, the token matrices and the residual vectors from shapes alone (names may be fake)."""
    # Integer tensors are packed quantized weights, group indices or quantization state (GPTQ qweight / g_idx,
    # bitsandbytes, MLX): their numbers are not weights, and their shapes would pass for token matrices.
    usable = [t for t in tensors if t.decodable and t.numel > 0 and t.dtype not in INTEGER_DTYPES]
    ones = Counter(t.shape[0] for t in usable if len(t.shape) == 1 and t.shape[0] <= MAX_HIDDEN)
    hidden = None
    if ones:
        length, count = ones.most_common(1)[0]
        if count >= 2:
            hidden = length
    if hidden is None and config:
        hs = config.get("hidden_size") or config.get("d_model") or config.get("n_embd")
        hidden = hs if isinstance(hs, int) and not isinstance(hs, bool) and 0 < hs <= MAX_HIDDEN else None
    if hidden is None:
        return Structure(None)
    by_other: dict[int, list[tuple[TensorShape, bool]]] = defaultdict(list)
    for t in usable:
        if len(t.shape) != 2 or t.shape[0] == t.shape[1]:
            continue
        if t.shape[1] == hidden:
            by_other[t.shape[0]].append((t, False))
        elif t.shape[0] == hidden:
            by_other[t.shape[1]].append((t, True))
    # A token matrix's other axis is shared by at most two tensors (embedding and head); MLP axes repeat per layer.
    candidates = [n for n, ts in by_other.items() if len(ts) <= 2 and MIN_VOCAB <= n <= MAX_VOCAB]
    vocab_hint = (config or {}).get("vocab_size")
    vocab: int | None = (
        vocab_hint if isinstance(vocab_hint, int) and vocab_hint in candidates else max(candidates, default=None)
    )
    matrices = []
    if vocab is not None:
        for t, transposed in sorted(by_other[vocab], key=lambda x: natural_key(x[0].name)):
            matrices.append(TokenMatrix(t.name, vocab, transposed))
    vectors = sorted((t.name for t in usable if len(t.shape) == 1 and t.shape[0] == hidden), key=natural_key)
    return Structure(hidden, matrices, vectors[:MAX_VECTORS])


class SourcedView(ModelView):
    """A model read from its own files: the byte sources count what was read and are closed with the view."""

    sources: dict[str, ByteSource]
    tensors: Mapping[str, TensorShape]  # safetensors' or GGUF's tensors, by name
    malformed: bool  # a header failed validation (reported by the weights checks as source.malformed)
    _weight_bytes: int  # the files' total size, set by the subclass from its sources
    screening = False  # token rows are read for a screen: ByteSource.screen_request_cost decides what joins

    @contextmanager
    def screens(self) -> Iterator[None]:
        """Token rows read in the block are a screen's (see ByteSource.read_cost)."""
        self.screening = True
        try:
            yield
        finally:
            self.screening = False

    @property
    def bytes_read(self) -> int:
        return sum(s.bytes_read for s in self.sources.values())

    @property
    def weight_bytes(self) -> int:
        return self._weight_bytes

    def close(self) -> None:
        for s in self.sources.values():
            s.close()


def _header_or_problem(shard: tuple[str, ByteSource]) -> list[TensorInfo] | SafetensorsError | str:
    """A shard's tensors, the error of a malformed header, or why the shard could not be read."""
    file, src = shard
    try:
        return parse_header(src, file)[0]
    except SafetensorsError as exc:
        return exc
    except OSError as exc:
        return f"{file}: {exc}"


class LiveModel(SourcedView):
    """A model's safetensors files (one or many shards) behind ByteSources."""

    def __init__(
        self,
        sources: dict[str, ByteSource],
        config: dict[str, Any] | None = None,
        file_hashes: set[str] | None = None,
        unreadable: list[str] | None = None,
    ):
        self.sources = sources
        self.tensors: dict[str, TensorInfo] = {}
        self.problems: list[str] = list(unreadable or [])
        self.malformed = False  # a header failed validation (reported by the weights checks as source.malformed)
        self.file_hashes = set(file_hashes or ())
        self._weight_bytes = sum(s.size for s in sources.values())
        # The shards' headers are read side by side (over HTTP each costs a request's latency), then taken in order.
        for found in parallel(_header_or_problem, sorted(sources.items())):
            if isinstance(found, SafetensorsError):
                self.problems.append(str(found))
                self.malformed = True
            elif isinstance(found, str):
                self.problems.append(found)
            else:
                for t in found:
                    self.tensors.setdefault(t.name, t)  # a duplicate name across shards keeps the first
        self.structure = analyse(list(self.tensors.values()), config)
        self._rows: dict[tuple[str, int], np.ndarray] = {}
        self._spans: dict[tuple[str, int, int], dict[int, np.ndarray]] = {}

    @classmethod
    def from_snapshot(cls, snap: Snapshot) -> LiveModel:
        sources: dict[str, ByteSource] = {}
        unreadable: list[str] = []
        for f in snap.weight_files():
            fmt = format_of(f.path)
            if fmt is SAFETENSORS:
                if f.lfs_pointer:
                    unreadable.append(f"{f.path}: only a Git LFS pointer is present; weights not downloaded")
                    continue
                try:
                    sources[f.path] = snap.open(f.path)
                except OSError as exc:
                    unreadable.append(f"{f.path}: {exc}")
            elif fmt is not None and fmt.pickled:
                unreadable.append(f"{f.path}: pickle-based weights are never loaded")
        hashes = {f.sha256 for f in snap.weight_files() if f.sha256}
        return cls(sources, snap.jsons.get("config.json"), hashes, unreadable)

    def _tensor(self, name: str) -> tuple[ByteSource, TensorInfo]:
        t = self.tensors[name]
        return self.sources[t.file], t

    def read_token_rows(self, matrices: list[TokenMatrix], tokens: list[int]) -> None:
        """The rows of matrices stored (vocab, hidden) in one file are read together: over HTTP a screen's rows of
        a small model's embedding and head, usually adjacent in the file, then come in one request."""
        by_file: dict[str, list[tuple[TokenMatrix, TensorInfo, list[int]]]] = {}
        for m in matrices:
            t = self.tensors.get(m.name)
            missing = list(dict.fromkeys(tok for tok in tokens if (m.name, tok) not in self._rows))
            if t is not None and not m.transposed and missing:
                by_file.setdefault(t.file, []).append((m, t, missing))
        for file, items in by_file.items():
            blocks = read_rows_of(self.sources[file], [(t, missing) for _, t, missing in items], self.screening)
            for (m, _, missing), block in zip(items, blocks):
                self._rows.update(((m.name, tok), row) for tok, row in zip(missing, block))

    def token_rows(self, matrix: TokenMatrix, tokens: list[int], dims: list[int] | None = None) -> np.ndarray:
        src, t = self._tensor(matrix.name)
        if not matrix.transposed:
            self.read_token_rows([matrix], tokens)
            block = np.stack([self._rows[(matrix.name, tok)] for tok in tokens])
            return block if dims is None else block[:, dims]
        # Stored (hidden, vocab): a stored row is one unit across all tokens; read only the span of tokens asked.
        wanted = list(range(t.shape[0])) if dims is None else list(dims)
        lo, hi = min(tokens), max(tokens) + 1
        cached = self._spans.setdefault((matrix.name, lo, hi), {})
        missing = [d for d in wanted if d not in cached]
        if missing:
            cached.update(zip(missing, read_row_span(src, t, missing, lo, hi)))
        block = np.stack([cached[d] for d in wanted])  # (dims, span)
        return block[:, [tok - lo for tok in tokens]].T

    def vector(self, name: str) -> np.ndarray:
        key = (name, -(10**12))
        if key not in self._rows:
            src, t = self._tensor(name)
            self._rows[key] = read_tensor(src, t).reshape(-1)
        return self._rows[key]

    def vectors(self, names: list[str]) -> dict[str, np.ndarray]:
        """The residual vectors lie between large matrices, one short read each: read them all at once."""
        missing = [n for n in dict.fromkeys(names) if (n, -(10**12)) not in self._rows]
        for name, value in zip(missing, parallel(lambda n: read_tensor(*self._tensor(n)).reshape(-1), missing)):
            self._rows[(name, -(10**12))] = value
        return {n: self.vector(n) for n in names}


def token_stream(vocab: int, seed: int = 20240602) -> np.ndarray:
    """The token ids sampled, in order: a fixed pseudo-random permutation, so stored fingerprints line up."""
    return np.random.default_rng(seed).permutation(vocab)


def token_window(vocab: int, size: int) -> np.ndarray:
    """Adjacent token ids from a third of the way into the vocabulary (past special and byte tokens)."""
    size = min(size, vocab)
    start = max(0, min(vocab // 3, vocab - size))
    return np.arange(start, start + size)


__all__ = ["ModelView", "LiveModel", "TokenMatrix", "Structure", "analyse", "token_stream", "token_window"]
