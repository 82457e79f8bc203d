"""The fingerprint record: what the index keeps of one upstream model, so a scan reads nothing of the upstream.

A `Fingerprint` is built once from an upstream's weights (local files or HTTP range reads) and stored as bytes
(`to_bytes`, an uncompressed-header `.npz` read with `allow_pickle=False`, so decoding never executes anything).

Fields (format 2; format 1 blobs — the same layout without `format`, `kind`, `files`, `shape_key` — still load):
  kind          "rows": token rows and residual vectors are stored, the weights can be compared;
                "hashes": only the weight files' sha256 are known (gated or unreadable weights): exact copies only.
  hidden, vocab hidden size and the vocabulary of the first token matrix (None for "hashes").
  shape_key     sha256 of the model's tensor shapes (sorted, dtype- and name-independent): models that share it
                have the same architecture; a header fact, so comparing it costs nothing.
  files         every weight file as (path, size, sha256): the exact-copy check needs nothing else.
  weight_bytes  total size of the weight files.
  matrices      per stored token matrix: its vocabulary, the token ids whose rows are kept, and those rows
                (float16, one row per token id, all hidden units).
  vectors       residual vectors (norm weights, biases of hidden size) in layer order, float32.
  sketch        a few reference units' columns, rank-standardised over the two halves of the first sampled
                token ids: the screen that rules out most same-shape upstreams in milliseconds (scanner.provenance
                .search). Small (about 16 KB) and stored apart from the rows.
  heads         the same for token ids 0 .. HEAD_ROWS-1, one per token matrix (embedding and head): those rows
                sit at the start of a matrix as stored, so a small suspect's first read (its header and what
                follows) holds them and the screen needs no request of its own. Stored apart from the rows (the
                index's facts), never in the blob: the comparison reads only the sampled rows.

Issue #12 (GGUF, quantised weights) extends this record: a new `kind` or new optional fields, a new `format`.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from scanner.provenance.model import SourcedView, TensorShape, TokenMatrix, token_stream, token_window

FORMAT = 2
SKETCH_TOKENS_PER_HALF = 64  # token ids per half in the sketch (the comparison's second step reads as many)
SKETCH_UNITS = 64  # reference units kept in the sketch
HEAD_ROWS = 96  # token ids 0..95 in a head sketch: 48 per half, 12 KB of a hidden-64 fp16 matrix
WHOLE_MATRIX_BYTES = 256 * 1024  # token matrices up to this size are read whole when fingerprinting
EMBED_HINTS = ("embed", "wte", "tok_embeddings", "word_embeddings", "token_embd")


class FingerprintError(ValueError):
    """A stored or imported fingerprint cannot be decoded; the message says why in one line."""


@dataclass(frozen=True)
class WeightFile:
    path: str
    size: int
    sha256: str | None


@dataclass
class StoredMatrix:
    name: str  # the upstream's tensor name (informational: suspects' names are never matched)
    vocab: int
    tokens: np.ndarray  # int64 token ids, ascending
    rows: np.ndarray  # float16, (len(tokens), hidden)


@dataclass
class Sketch:
    """Half A is the even positions of its token ids, half B the odd ones."""

    vocab: int  # token ids: token_stream(vocab)[: 2 * SKETCH_TOKENS_PER_HALF], or 0 .. HEAD_ROWS-1 for a head
    units: np.ndarray  # int64 reference unit ids
    z: np.ndarray  # float16 (2, tokens per half, len(units)): rank-standardised columns per half

    def tokens(self) -> np.ndarray:
        return sketch_tokens(self.vocab)

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        np.savez(buf, vocab=np.array([self.vocab], dtype=np.int64), units=self.units, z=self.z)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, blob: bytes) -> Sketch:
        try:
            with np.load(io.BytesIO(blob), allow_pickle=False) as d:
                return cls(int(d["vocab"][0]), d["units"].astype(np.int64), d["z"].astype(np.float16))
        except Exception as exc:  # zipfile/ValueError/KeyError: a damaged blob is one error, not a traceback
            raise FingerprintError(f"sketch cannot be decoded ({type(exc).__name__})") from None


def heads_to_bytes(heads: list[Sketch]) -> bytes:
    """One blob for a model's head sketches (one per token matrix)."""
    arrays: dict[str, np.ndarray] = {}
    for i, h in enumerate(heads):
        arrays.update({f"vocab{i}": np.array([h.vocab], dtype=np.int64), f"units{i}": h.units, f"z{i}": h.z})
    buf = io.BytesIO()
    np.savez(buf, count=np.array([len(heads)], dtype=np.int64), **arrays)  # type: ignore[arg-type]  # as in to_bytes
    return buf.getvalue()


def heads_from_bytes(blob: bytes, hidden: int | None) -> list[Sketch]:
    """The head sketches of heads_to_bytes, each checked against HEAD_ROWS and `hidden`."""
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as d:
            heads = [
                Sketch(int(d[f"vocab{i}"][0]), d[f"units{i}"].astype(np.int64), d[f"z{i}"].astype(np.float16))
                for i in range(int(d["count"][0]))
            ]
    except Exception as exc:  # zipfile/ValueError/KeyError: a damaged blob is one error, not a traceback
        raise FingerprintError(f"head sketches cannot be decoded ({type(exc).__name__})") from None
    for h in heads:
        if (
            h.z.shape != (2, HEAD_ROWS // 2, len(h.units))
            or h.vocab < HEAD_ROWS
            or not hidden
            or (len(h.units) and not 0 <= h.units.min() <= h.units.max() < hidden)
        ):
            raise FingerprintError("a head sketch does not match its hidden size or HEAD_ROWS")
    return heads


@dataclass
class FingerprintPlan:
    """How much of a model a fingerprint keeps (and therefore reads)."""

    stream_rows: int = 1024  # first ids of the token stream (the comparison needs at most 512)
    window_rows: int = 512  # adjacent ids, for suspects that store their token matrix transposed
    vector_bytes: int | None = None  # budget for residual vectors as read (None: all of them)
    all_matrices: bool = True  # False: only the input embedding (one matrix is enough to align on)


# What `index update` reads of a remote upstream: ≤ 2 MB for an 8B model (hidden 4096, bf16), and the head rows of
# every token matrix for its head sketches (96 rows each, one read per matrix: 1.5 MB for an untied 8B model).
REMOTE_PLAN = FingerprintPlan(
    stream_rows=2 * SKETCH_TOKENS_PER_HALF, window_rows=64, vector_bytes=256 * 1024, all_matrices=False
)


@dataclass
class Fingerprint:
    kind: str  # "rows" | "hashes"
    hidden: int | None
    vocab: int | None
    shape_key: str
    weight_bytes: int
    files: list[WeightFile] = field(default_factory=list)
    matrices: list[StoredMatrix] = field(default_factory=list)
    vectors: dict[str, np.ndarray] = field(default_factory=dict)  # insertion order = layer order
    sketch: Sketch | None = None
    format: int = FORMAT
    heads: list[Sketch] = field(default_factory=list)  # not in to_bytes: the index stores them with the facts

    @property
    def file_hashes(self) -> set[str]:
        return {f.sha256 for f in self.files if f.sha256}

    def key(self) -> str:
        return content_key_of(self.file_hashes, None)

    # -- bytes ---------------------------------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        meta = {
            "format": self.format,
            "kind": self.kind,
            "hidden": self.hidden,
            "vocab": self.vocab,
            "shape_key": self.shape_key,
            "weight_bytes": self.weight_bytes,
            "files": [[f.path, f.size, f.sha256] for f in self.files],
            "file_hashes": sorted(self.file_hashes),
            "matrices": [{"name": m.name, "vocab": m.vocab} for m in self.matrices],
            "vectors": list(self.vectors),
        }
        arrays: dict[str, np.ndarray] = {}
        for i, m in enumerate(self.matrices):
            arrays[f"rows{i}"] = m.rows.astype(np.float16)
            arrays[f"tokens{i}"] = m.tokens.astype(np.int64)
        for i, v in enumerate(self.vectors.values()):
            arrays[f"vec{i}"] = v.astype(np.float32)
        buf = io.BytesIO()
        np.savez_compressed(buf, meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays)  # type: ignore[arg-type]  # numpy's stub types **kwds after allow_pickle
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, blob: bytes, sketch: bytes | None = None) -> Fingerprint:
        """Decode and check a stored fingerprint; anything inconsistent is one FingerprintError."""
        try:
            with np.load(io.BytesIO(blob), allow_pickle=False) as data:
                meta = json.loads(bytes(data["meta"]).decode())
                matrices = [
                    StoredMatrix(str(m["name"]), int(m["vocab"]), data[f"tokens{i}"].astype(np.int64), data[f"rows{i}"])
                    for i, m in enumerate(meta["matrices"])
                ]
                vectors = {str(n): data[f"vec{i}"] for i, n in enumerate(meta["vectors"])}
            files = [WeightFile(str(p), int(s), str(h) if h else None) for p, s, h in meta.get("files") or []]
            if not files:  # format 1 kept the hashes only
                files = [WeightFile("", 0, str(h)) for h in meta.get("file_hashes") or []]
            hidden = meta.get("hidden")
            fp = cls(
                kind=str(meta.get("kind", "rows")),
                hidden=int(hidden) if hidden is not None else None,
                vocab=meta.get("vocab", matrices[0].vocab if matrices else None),
                shape_key=str(meta.get("shape_key", "")),
                weight_bytes=int(meta.get("weight_bytes") or 0),
                files=files,
                matrices=matrices,
                vectors=vectors,
                sketch=Sketch.from_bytes(sketch) if sketch else None,
                format=int(meta.get("format", 1)),
            )
        except FingerprintError:
            raise
        except Exception as exc:
            raise FingerprintError(f"fingerprint cannot be decoded ({type(exc).__name__}: {str(exc)[:80]})") from None
        fp._check()
        return fp

    def _check(self) -> None:
        if self.kind not in ("rows", "hashes"):
            raise FingerprintError(f"fingerprint kind {self.kind!r} is unknown")
        if self.kind == "hashes":
            return
        if not self.hidden or self.hidden <= 0 or not self.matrices:
            raise FingerprintError("fingerprint of kind rows without a hidden size or token rows")
        for m in self.matrices:
            if (
                m.rows.dtype.kind != "f"
                or m.rows.ndim != 2
                or len(m.tokens) != m.rows.shape[0]
                or m.rows.shape[1] != self.hidden
                or (len(m.tokens) and not 0 <= m.tokens.min() <= m.tokens.max() < m.vocab)
            ):
                raise FingerprintError(f"fingerprint rows of {m.name!r} do not match its token ids or hidden size")
        for name, v in self.vectors.items():
            if v.dtype.kind != "f" or v.shape != (self.hidden,):
                raise FingerprintError(f"fingerprint vector {name!r} is not {self.hidden} numbers")
        sk = self.sketch
        if sk is not None and (
            sk.z.shape != (2, SKETCH_TOKENS_PER_HALF, len(sk.units))
            or sk.vocab != self.vocab
            or (len(sk.units) and not 0 <= sk.units.min() <= sk.units.max() < self.hidden)
        ):
            raise FingerprintError("fingerprint sketch does not match its hidden size or vocabulary")


def content_key_of(file_hashes: set[str], tensors: Mapping[str, TensorShape] | None) -> str:
    """Identity of a weight set: its files' sha256 (or, without them, its tensor table)."""
    h = hashlib.sha256()
    if file_hashes:
        for x in sorted(file_hashes):
            h.update(x.encode())
    else:
        for name, t in sorted((tensors or {}).items()):
            h.update(f"{name}:{t.dtype}:{t.shape}:{t.nbytes}".encode())
    return h.hexdigest()


def shape_key(shapes: list[tuple[int, ...]]) -> str:
    """Architecture identity from tensor shapes alone: names and dtypes may be disguised, shapes cannot."""
    canon = sorted(tuple(sorted(s)) if len(s) == 2 else tuple(s) for s in shapes)
    return hashlib.sha256(json.dumps(canon).encode()).hexdigest()[:32]


def sketch_tokens(vocab: int) -> np.ndarray:
    return token_stream(vocab)[: 2 * SKETCH_TOKENS_PER_HALF]


def sketch_units(hidden: int) -> np.ndarray:
    rng = np.random.default_rng(11)
    return np.sort(rng.choice(hidden, size=min(hidden, SKETCH_UNITS), replace=False)).astype(np.int64)


def make_sketch(vocab: int, rows: np.ndarray) -> Sketch:
    """`rows`: the reference's rows at sketch_tokens(vocab) (or at 0 .. HEAD_ROWS-1 for a head sketch), in that
    order, all hidden units."""
    from scanner.provenance.compare import spearman_columns

    units = sketch_units(rows.shape[1])
    cols = rows[:, units].astype(np.float32)
    z = np.stack([spearman_columns(cols[0::2]), spearman_columns(cols[1::2])])
    return Sketch(vocab, units, z.astype(np.float16))


def heads_from_rows(fp: Fingerprint) -> list[Sketch]:
    """Head sketches from a fingerprint's stored rows, when they hold ids 0 .. HEAD_ROWS-1 of every stored token
    matrix (a fingerprint of a vocabulary up to FingerprintPlan.stream_rows keeps all rows): an index written
    before heads existed gains them without reading the upstream again. [] when any matrix lacks them."""
    heads = []
    for m in fp.matrices:
        pos = {int(t): i for i, t in enumerate(m.tokens)}
        if m.vocab < HEAD_ROWS or any(t not in pos for t in range(HEAD_ROWS)):
            return []
        heads.append(make_sketch(m.vocab, m.rows[[pos[t] for t in range(HEAD_ROWS)]].astype(np.float32)))
    return heads


def _input_embedding(matrices: list[TokenMatrix]) -> TokenMatrix:
    """The matrix to keep when only one is kept: the upstream's names are genuine, so its embedding is known."""
    for m in matrices:
        if any(h in m.name.lower() for h in EMBED_HINTS) and not m.transposed:
            return m
    return next((m for m in matrices if not m.transposed), matrices[0])


def _token_rows(model: SourcedView, m: TokenMatrix, tokens: np.ndarray) -> np.ndarray:
    """The rows at `tokens`; a small plain matrix is read whole in one request rather than row by row (scattered
    ids cost one request each, which for a small vocabulary costs more time than the bytes saved)."""
    from scanner.provenance.safetensors import TensorInfo, read_tensor

    t = getattr(model, "tensors", {}).get(m.name)
    plain = isinstance(t, TensorInfo) and t.dtype in ("F32", "F16", "BF16") and t.shape[:1] == (m.vocab,)
    if (
        plain
        and isinstance(t, TensorInfo)
        and not m.transposed
        and t.nbytes <= max(WHOLE_MATRIX_BYTES, 2 * len(tokens) * (t.nbytes // m.vocab))
    ):
        rows: np.ndarray = read_tensor(model.sources[t.file], t)[tokens]
        return rows
    return model.token_rows(m, tokens.tolist())


def _pick_vectors(names: list[str], each: int, budget: int | None) -> list[str]:
    """All vectors, or evenly spaced ones within the byte budget (first and last layers always kept)."""
    if budget is None or len(names) * each <= budget:
        return names
    n = max(2, budget // max(1, each))
    picks = np.unique(np.linspace(0, len(names) - 1, num=min(n, len(names))).round().astype(int))
    return [names[i] for i in picks]


def build(
    model: SourcedView, plan: FingerprintPlan = FingerprintPlan(), files: list[WeightFile] | None = None
) -> Fingerprint:
    """Read what `plan` keeps of `model` and return its fingerprint (kind "hashes" when nothing is comparable)."""
    s = model.structure
    files = files if files is not None else [WeightFile("", 0, h) for h in sorted(model.file_hashes)]
    skey = shape_key([t.shape for t in model.tensors.values()])
    if not s.hidden or not s.token_matrices:
        return Fingerprint("hashes", None, None, skey, model.weight_bytes, files)
    chosen = s.token_matrices if plan.all_matrices else [_input_embedding(s.token_matrices)]
    matrices = []
    sketch = None
    for m in chosen:
        stream = token_stream(m.vocab)[: plan.stream_rows]
        window = token_window(m.vocab, plan.window_rows) if plan.window_rows else np.zeros(0, np.int64)
        tokens = np.unique(np.concatenate([stream, window])).astype(np.int64)
        rows = _token_rows(model, m, tokens).astype(np.float16)
        matrices.append(StoredMatrix(m.name, m.vocab, tokens, rows))
        if sketch is None and m.vocab >= 2 * SKETCH_TOKENS_PER_HALF and plan.stream_rows >= 2 * SKETCH_TOKENS_PER_HALF:
            pos = {int(t): i for i, t in enumerate(tokens)}
            sketch = make_sketch(m.vocab, rows[[pos[int(t)] for t in sketch_tokens(m.vocab)]].astype(np.float32))
    each = max((model.tensors[n].nbytes for n in s.vectors), default=0)
    vectors = {n: model.vector(n).astype(np.float32) for n in _pick_vectors(s.vectors, each, plan.vector_bytes)}
    fp = Fingerprint("rows", s.hidden, chosen[0].vocab, skey, model.weight_bytes, files, matrices, vectors, sketch)
    fp.heads = _heads(model, matrices)
    return fp


def _heads(model: SourcedView, stored: list[StoredMatrix]) -> list[Sketch]:
    """A head sketch of every token matrix, whichever the plan stores: a suspect screens the matrix it stores first,
    which may be the head of an upstream whose fingerprint keeps only the embedding. Rows the fingerprint holds are
    not read again; the others are a contiguous read per matrix (HEAD_ROWS rows)."""
    kept = {m.name: m for m in stored}
    heads = []
    for m in model.structure.token_matrices:
        if m.vocab < HEAD_ROWS:
            return []
        have = kept.get(m.name)
        pos = {int(t): i for i, t in enumerate(have.tokens)} if have is not None else {}
        if have is not None and all(t in pos for t in range(HEAD_ROWS)):
            rows = have.rows[[pos[t] for t in range(HEAD_ROWS)]]
        else:
            rows = model.token_rows(m, list(range(HEAD_ROWS))).astype(np.float16)
        heads.append(make_sketch(m.vocab, rows.astype(np.float32)))
    return heads


def hashes_only(files: list[WeightFile], weight_bytes: int, shapes: list[tuple[int, ...]] | None = None) -> Fingerprint:
    return Fingerprint("hashes", None, None, shape_key(shapes or []), weight_bytes, files)
