"""GGUF (llama.cpp / Ollama) files read through a ByteSource: header, tensor table and dequantized token rows.

The header is parsed here, from sequential range reads, rather than with `gguf.GGUFReader`: that reader needs the
whole file as a local memory map (remote files would have to be downloaded first) and trusts every count and
length it reads (a hostile header can make it loop for hours or allocate gigabytes). Everything else comes from
the `gguf` package: the value and quantization type codes, the block sizes, and the dequantizers
(`gguf.quants.dequantize`), which are llama.cpp's own reference implementations in numpy.

Layout: magic "GGUF", u32 version, u64 tensor count, u64 key/value count, the key/value pairs, the tensor infos
(name, dims with the contiguous axis first, type, offset), padding to `general.alignment`, then the data.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
import struct
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

from scanner.file_formats import GGUF, format_of
from scanner.provenance.model import SourcedView, TokenMatrix, analyse
from scanner.sources.bytesource import ByteSource, coalesce
from scanner.sources.interface import Snapshot

MAGIC = b"GGUF"
VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32
MAX_HEADER_BYTES = GGUF.budgets.header
MAX_KV = 1 << 16
MAX_TENSORS = 1 << 20
MAX_ARRAY = 1 << 24
MAX_STRING = 1 << 24
MAX_DIMS = 4  # GGML_MAX_DIMS
# Reads grow by half each time (no GGUF field gives the header's length): about 20 reads for a 10 MB header, and
# what is read past the header's end stays under half of the header.
FIRST_CHUNK = 16 * 1024
MAX_CHUNK = 4 * 1024 * 1024
READ_WORKERS = 8
# Arrays kept whole; any other array is summarised (type, length, sha256) to keep memory bounded.
KEPT_ARRAYS = ("tokenizer.ggml.tokens", "tokenizer.ggml.token_type")
SMALL_ARRAY = 64


def _gguf() -> ModuleType:
    """The gguf package, imported when a GGUF file is read: it takes tens of milliseconds to import (its constants
    tables), and most scans and comparisons read no GGUF file."""
    import gguf

    return gguf


@functools.cache
def _scalars() -> dict[int, str]:
    v = _gguf().GGUFValueType
    return {
        v.UINT8: "B",
        v.INT8: "b",
        v.UINT16: "H",
        v.INT16: "h",
        v.UINT32: "I",
        v.INT32: "i",
        v.FLOAT32: "f",
        v.BOOL: "?",
        v.UINT64: "Q",
        v.INT64: "q",
        v.FLOAT64: "d",
    }


class GGUFError(ValueError):
    """The file is not a well-formed GGUF file; the message says why in one line."""


@dataclass(frozen=True)
class ArraySummary:
    """A large metadata array that was walked but not kept (e.g. tokenizer.ggml.merges)."""

    item_type: str
    length: int
    sha256: str


@dataclass(frozen=True)
class GGUFTensor:
    name: str
    qtype: int  # GGMLQuantizationType value
    dims: tuple[int, ...]  # GGUF order: dims[0] is the contiguous axis
    start: int  # absolute byte offsets in the file
    end: int
    file: str

    @property
    def shape(self) -> tuple[int, ...]:
        """numpy / safetensors order: a token matrix is (vocab, hidden)."""
        return tuple(reversed(self.dims))

    @property
    def dtype(self) -> str:
        return str(_gguf().GGMLQuantizationType(self.qtype).name)

    @property
    def numel(self) -> int:
        return math.prod(self.dims)

    @property
    def nbytes(self) -> int:
        return self.end - self.start

    @property
    def row_bytes(self) -> int:
        block, size = _gguf().GGML_QUANT_SIZES[_gguf().GGMLQuantizationType(self.qtype)]
        return int(self.dims[0] // block * size)

    @property
    def decodable(self) -> bool:
        return can_dequantize(self.qtype)


@dataclass
class GGUFHeader:
    file: str
    version: int
    metadata: dict[str, Any]
    tensors: list[GGUFTensor]
    data_start: int
    header_bytes: int
    big_endian: bool = False
    warnings: list[str] = field(default_factory=list)

    def get(self, key: str, default: Any = None) -> Any:
        return self.metadata.get(key, default)


@functools.cache
def can_dequantize(qtype: int) -> bool:
    """Whether gguf.quants turns this type into floats (tried once on one zero block)."""
    try:
        t = _gguf().GGMLQuantizationType(qtype)
    except ValueError:
        return False
    q = _gguf().GGMLQuantizationType
    if t in (q.I8, q.I16, q.I32, q.I64, q.F64):
        return False
    block, size = _gguf().GGML_QUANT_SIZES[t]
    try:
        out = _gguf().quants.dequantize(np.zeros((1, size), dtype=np.uint8), t)
    except (NotImplementedError, ValueError, TypeError, AssertionError):
        return False
    return bool(out.shape == (1, block))


class _Cursor:
    """Sequential reads over a ByteSource in growing chunks; never reads past the header limit or the file."""

    def __init__(self, src: ByteSource, file: str, endian: str = "<"):
        self.src, self.file, self.endian = src, file, endian
        self.buf = b""
        self.buf_start = 0
        self.pos = 0
        self.chunk = FIRST_CHUNK

    def _ensure(self, n: int) -> None:
        end = self.pos + n
        if end > MAX_HEADER_BYTES:
            raise GGUFError(f"{self.file}: header runs past {MAX_HEADER_BYTES} bytes (absurd counts or lengths?)")
        if end > self.src.size:
            raise GGUFError(f"{self.file}: truncated: the header needs byte {end} of a {self.src.size}-byte file")
        have_end = self.buf_start + len(self.buf)
        if end <= have_end:
            return
        keep = self.buf[self.pos - self.buf_start :]
        want = max(end - have_end, self.chunk)
        want = min(want, self.src.size - have_end, MAX_HEADER_BYTES - have_end)
        self.buf = keep + self.src.read(have_end, want)
        self.buf_start = self.pos
        self.chunk = min(self.chunk * 3 // 2, MAX_CHUNK)

    def take(self, n: int) -> bytes:
        self._ensure(n)
        off = self.pos - self.buf_start
        self.pos += n
        return self.buf[off : off + n]

    def unpack(self, fmt: str) -> Any:
        size = struct.calcsize(self.endian + fmt)
        return struct.unpack(self.endian + fmt, self.take(size))[0]

    def string(self) -> bytes:
        n = self.unpack("Q")
        if n > MAX_STRING:
            raise GGUFError(f"{self.file}: string of {n} bytes at offset {self.pos - 8} (limit {MAX_STRING})")
        return self.take(n)


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


def _value(cur: _Cursor, vtype: int, key: str) -> Any:
    if vtype in _scalars():
        return cur.unpack(_scalars()[vtype])
    if vtype == _gguf().GGUFValueType.STRING:
        return _text(cur.string())
    if vtype == _gguf().GGUFValueType.ARRAY:
        item = cur.unpack("I")
        n = cur.unpack("Q")
        if n > MAX_ARRAY:
            raise GGUFError(f"{cur.file}: array {key!r} claims {n} items (limit {MAX_ARRAY})")
        keep = key in KEPT_ARRAYS or n <= SMALL_ARRAY
        if item in _scalars():
            size = struct.calcsize(_scalars()[item])
            raw = cur.take(n * size)
            if not keep:
                return ArraySummary(_gguf().GGUFValueType(item).name, n, hashlib.sha256(raw).hexdigest())
            dt = np.dtype(_scalars()[item] if item != _gguf().GGUFValueType.BOOL else "?")
            dt = dt.newbyteorder(">" if cur.endian == ">" else "<")
            return np.frombuffer(raw, dtype=dt).tolist()
        if item == _gguf().GGUFValueType.STRING:
            h = hashlib.sha256()
            out = []
            for _ in range(n):
                s = cur.string()
                if keep:
                    out.append(_text(s))
                else:
                    h.update(len(s).to_bytes(8, "little") + s)
            return out if keep else ArraySummary("STRING", n, h.hexdigest())
        raise GGUFError(f"{cur.file}: array {key!r} has item type {item}, which GGUF does not allow")
    raise GGUFError(f"{cur.file}: key {key!r} has unknown value type {vtype}")


def parse_header(src: ByteSource, file: str | None = None) -> GGUFHeader:
    """Validate and parse the header and tensor table. Reads the header bytes only (tokenizer included)."""
    file = file or src.name
    if src.size < 24:
        raise GGUFError(f"{file}: {src.size} bytes, too short for a GGUF header")
    cur = _Cursor(src, file)
    if cur.take(4) != MAGIC:
        raise GGUFError(f"{file}: not a GGUF file (magic is not 'GGUF')")
    raw_version = cur.take(4)
    version = int.from_bytes(raw_version, "little")
    big = False
    if version & 0xFFFF == 0:  # written on a big-endian machine
        version, big = int.from_bytes(raw_version, "big"), True
        cur.endian = ">"
    if version not in VERSIONS:
        raise GGUFError(f"{file}: GGUF version {version} is not one originscan reads ({', '.join(map(str, VERSIONS))})")
    n_tensors, n_kv = cur.unpack("Q"), cur.unpack("Q")
    if n_tensors > MAX_TENSORS or n_kv > MAX_KV:
        raise GGUFError(f"{file}: header claims {n_tensors} tensors and {n_kv} keys (limits {MAX_TENSORS}, {MAX_KV})")
    metadata: dict[str, Any] = {}
    warnings: list[str] = []
    for _ in range(n_kv):
        key = _text(cur.string())
        vtype = cur.unpack("I")
        value = _value(cur, vtype, key)
        if key in metadata:
            warnings.append(f"duplicate key {key!r}; the first value is kept")
            continue
        metadata[key] = value
    alignment = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
        raise GGUFError(f"{file}: general.alignment {alignment!r} is not a power of two")
    infos = []
    for _ in range(n_tensors):
        name = _text(cur.string())
        n_dims = cur.unpack("I")
        if not 1 <= n_dims <= MAX_DIMS:
            raise GGUFError(f"{file}: tensor {name!r} has {n_dims} dimensions (GGUF allows 1..{MAX_DIMS})")
        dims = tuple(cur.unpack("Q") for _ in range(n_dims))
        qtype = cur.unpack("I")
        offset = cur.unpack("Q")
        infos.append((name, dims, qtype, offset))
    header_end = cur.pos
    data_start = header_end + (-header_end % alignment)
    tensors = []
    seen = set()
    for name, dims, qtype, offset in infos:
        if name in seen:
            raise GGUFError(f"{file}: tensor {name!r} appears twice")
        seen.add(name)
        try:
            t = _gguf().GGMLQuantizationType(qtype)
        except ValueError:
            raise GGUFError(f"{file}: tensor {name!r} has unknown quantization type {qtype}") from None
        block, size = _gguf().GGML_QUANT_SIZES[t]
        if dims[0] % block:
            raise GGUFError(
                f"{file}: tensor {name!r} row of {dims[0]} values is not a multiple of the {t.name} block ({block})"
            )
        numel = math.prod(dims)
        nbytes = numel // block * size
        start = data_start + offset
        if offset % alignment or start + nbytes > src.size:
            raise GGUFError(
                f"{file}: tensor {name!r} data at {start}+{nbytes} lies outside the {src.size}-byte file (truncated?)"
                if start + nbytes > src.size
                else f"{file}: tensor {name!r} offset {offset} is not aligned to {alignment}"
            )
        tensors.append(GGUFTensor(name, int(t), dims, start, start + nbytes, file))
    return GGUFHeader(file, version, metadata, tensors, data_start, header_end, big, warnings)


def _decode(raw: bytes, t: GGUFTensor, nrows: int) -> np.ndarray:
    block = np.frombuffer(raw, dtype=np.uint8).reshape(nrows, t.row_bytes)
    values = _gguf().quants.dequantize(block, _gguf().GGMLQuantizationType(t.qtype))
    return np.asarray(values, dtype=np.float32).reshape(nrows, t.dims[0])


def read_rows(src: ByteSource, t: GGUFTensor, rows: list[int] | np.ndarray, screening: bool = False) -> np.ndarray:
    """Dequantized rows of a tensor (rows run along dims[1..]); nearby rows coalesce into one range read."""
    if not t.decodable:
        raise GGUFError(f"{t.file}: tensor {t.name!r} is {t.dtype}, which cannot be dequantized")
    nrows = t.numel // t.dims[0]
    rows = [int(r) for r in rows]
    if any(r < 0 or r >= nrows for r in rows):
        raise IndexError(f"{t.name}: row out of range")
    runs = coalesce(rows, t.row_bytes, src.read_cost(screening))  # nearby rows share a request (see ByteSource)

    def fetch(run: tuple[int, int]) -> np.ndarray:
        first, last = run
        n = last - first + 1
        return _decode(src.read(t.start + first * t.row_bytes, n * t.row_bytes), t, n)

    if len(runs) > 1:
        with ThreadPoolExecutor(max_workers=min(READ_WORKERS, len(runs))) as pool:
            values = list(pool.map(fetch, runs))
    else:
        values = [fetch(run) for run in runs]
    blocks: dict[int, np.ndarray] = {}
    for (first, last), block in zip(runs, values):
        for k, r in enumerate(range(first, last + 1)):
            blocks[r] = block[k]
    return np.stack([blocks[r] for r in rows]) if rows else np.zeros((0, t.dims[0]), np.float32)


def read_tensor(src: ByteSource, t: GGUFTensor) -> np.ndarray:
    return read_rows(src, t, list(range(t.numel // t.dims[0]))).reshape(t.shape)


# -- repos: split files and quant variants -------------------------------------------------------------------------
_SPLIT = re.compile(r"^(?P<stem>.+)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$", re.I)
_NOT_A_MODEL = re.compile(r"(^|/)(mmproj|imatrix)[^/]*$|[-_.]mmproj[^/]*$", re.I)
# Name hints of the quant type: at 4 bits and more the dequantized rows keep the signal well; lower types are a
# fallback. Among the good ones the smallest file has the smallest rows, so the fewest bytes are read.
_GOOD = re.compile(r"(?<![a-z0-9])(q4_k|q5_k|q6_k|q8_0|q4_0|q4_1|q5_0|q5_1|f16|bf16|f32)", re.I)


@dataclass
class GGUFGroup:
    """One model in a repo: a single .gguf file, or the parts of a split one in order."""

    name: str
    files: list[str]
    size: int


def gguf_groups(files: dict[str, int]) -> list[GGUFGroup]:
    """Models among the repo's .gguf files (path -> size), best first: fewest bytes to read with a clear signal."""
    singles: list[GGUFGroup] = []
    splits: dict[tuple[str, str], list[tuple[int, str, int]]] = {}
    for path, size in files.items():
        if format_of(path) is not GGUF or _NOT_A_MODEL.search(path):
            continue
        m = _SPLIT.match(path)
        if m:
            splits.setdefault((m["stem"], m["count"]), []).append((int(m["no"]), path, size))
        else:
            singles.append(GGUFGroup(path, [path], size))
    groups = singles + [
        GGUFGroup(f"{stem}-*-of-{count}.gguf", [p for _, p, _ in sorted(parts)], sum(s for *_, s in parts))
        for (stem, count), parts in splits.items()
    ]
    return sorted(groups, key=lambda g: (not _GOOD.search(g.name), g.size, g.name))


def vocabulary_sha256(tokens: list[str]) -> str:
    """An exact fingerprint of a vocabulary in id order (length-prefixed UTF-8, so no separator can collide)."""
    h = hashlib.sha256()
    for tok in tokens:
        b = tok.encode("utf-8", errors="surrogatepass")
        h.update(len(b).to_bytes(4, "little") + b)
    return h.hexdigest()


# -- the model view ------------------------------------------------------------------------------------------------
def gguf_config(header: GGUFHeader) -> dict[str, Any]:
    """The Hugging Face config keys a GGUF header carries (`{arch}.embedding_length` -> hidden_size, …)."""
    arch = header.get("general.architecture")
    if not isinstance(arch, str):
        return {}
    keys = {
        "embedding_length": "hidden_size",
        "block_count": "num_hidden_layers",
        "feed_forward_length": "intermediate_size",
        "attention.head_count": "num_attention_heads",
        "attention.head_count_kv": "num_key_value_heads",
        "context_length": "max_position_embeddings",
        "rope.freq_base": "rope_theta",
        "vocab_size": "vocab_size",
        "attention.key_length": "head_dim",
        "attention.sliding_window": "sliding_window",
        "expert_count": "num_local_experts",
    }
    config: dict[str, Any] = {"model_type": arch}
    for gkey, hkey in keys.items():
        value = header.get(f"{arch}.{gkey}")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            config[hkey] = value
    tokens = header.get("tokenizer.ggml.tokens")
    if "vocab_size" not in config and isinstance(tokens, list):
        config["vocab_size"] = len(tokens)
    if "head_dim" not in config and config.get("hidden_size") and config.get("num_attention_heads"):
        config["head_dim"] = config["hidden_size"] // config["num_attention_heads"]
    return config


class GGUFModel(SourcedView):
    """A GGUF model (one file, or the parts of a split one) behind ByteSources; token rows are dequantized.

    Serves the same `ModelView` interface as the safetensors `LiveModel`, so the comparison and the fingerprint
    index consume it unchanged.
    """

    def __init__(
        self,
        sources: dict[str, ByteSource],
        file_hashes: set[str] | None = None,
        unreadable: list[str] | None = None,
        note: str = "",
    ):
        self.sources = sources
        self.problems: list[str] = list(unreadable or [])
        self.malformed = False
        self.file_hashes = set(file_hashes or ())
        self.headers: dict[str, GGUFHeader] = {}
        self.tensors: dict[str, GGUFTensor] = {}
        self.note = note  # which file(s) were read, for the verdict's evidence
        self._weight_bytes = sum(s.size for s in sources.values())
        for file, src in sources.items():
            try:
                header = parse_header(src, file)
            except GGUFError as exc:
                self.problems.append(str(exc))
                self.malformed = True
                continue
            except OSError as exc:
                self.problems.append(f"{file}: {exc}")
                continue
            self.headers[file] = header
            for t in header.tensors:
                self.tensors.setdefault(t.name, t)
        first = next(iter(self.headers.values()), None)
        config = gguf_config(first) if first else {}
        self.structure = analyse(list(self.tensors.values()), config)
        # llama.cpp stores token matrices as (vocab, hidden) rows; anything found "transposed" is a mis-detection.
        self.structure.token_matrices = [m for m in self.structure.token_matrices if not m.transposed]
        hidden, vocab = config.get("hidden_size"), config.get("vocab_size")
        for t in self.tensors.values():
            named = t.name in ("token_embd.weight", "output.weight")  # llama.cpp's names for token matrices
            if not t.decodable and len(t.shape) == 2 and (named or (hidden in t.shape and vocab in t.shape)):
                self.problems.append(
                    f"{t.file}: token matrix {t.name} is {t.dtype}, which the gguf package cannot dequantize"
                )
        self._rows: dict[tuple[str, int], np.ndarray] = {}

    @property
    def header(self) -> GGUFHeader | None:
        """The header with the model's metadata (the first part of a split model)."""
        return next(iter(self.headers.values()), None)

    def token_rows(self, matrix: TokenMatrix, tokens: list[int], dims: list[int] | None = None) -> np.ndarray:
        t = self.tensors[matrix.name]
        missing = [tok for tok in tokens if (matrix.name, tok) not in self._rows]
        if missing:
            for tok, row in zip(missing, read_rows(self.sources[t.file], t, missing, self.screening)):
                self._rows[(matrix.name, tok)] = row
        block = np.stack([self._rows[(matrix.name, tok)] for tok in tokens])
        return block if dims is None else block[:, dims]

    def vector(self, name: str) -> np.ndarray:
        key = (name, -(10**12))
        if key not in self._rows:
            t = self.tensors[name]
            self._rows[key] = read_tensor(self.sources[t.file], t).reshape(-1)
        return self._rows[key]

    @classmethod
    def from_snapshot(cls, snap: Snapshot, max_tries: int = 3) -> GGUFModel:
        """The repo's best GGUF model: the smallest file (or split set) whose token matrix can be dequantized.

        A repo of many quant variants gets one verdict, from the variant needing the fewest bytes; the others
        are not opened. A variant whose token matrix is in a type the gguf package cannot dequantize is skipped.
        """
        groups = gguf_groups({f.path: f.size for f in snap.weight_files()})
        tried: list[str] = []
        model: GGUFModel | None = None
        for group in groups[:max_tries]:
            files = [snap.files[p] for p in group.files]
            pointers = [f.path for f in files if f.lfs_pointer]
            if pointers:
                tried.append(f"{group.name}: only Git LFS pointers are present; weights not downloaded")
                continue
            sources: dict[str, ByteSource] = {}
            try:
                for f in files:
                    sources[f.path] = snap.open(f.path)
            except OSError as exc:
                for s in sources.values():
                    s.close()
                tried.append(f"{group.name}: {exc}")
                continue
            note = f"{group.name} ({len(group.files)} parts)" if len(group.files) > 1 else group.name
            if len(groups) > 1:
                note += f", the smallest readable of {len(groups)} GGUF models in the repo"
            hashes = {f.sha256 for f in files if f.sha256}
            if model is not None:
                model.close()
            model = cls(sources, hashes, tried, note)
            if model.structure.token_matrices or model.malformed:
                return model
            tried = list(model.problems)
        if model is None:
            model = cls({}, set(), tried or ["no GGUF model files"], "")
        return model
