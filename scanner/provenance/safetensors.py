"""Safetensors read through a ByteSource: the header is validated, tensors are read by slice, nothing is loaded whole.

Format: 8-byte little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets}}, then the data.
Every field is checked because the file comes from whoever uploaded it.
"""

from __future__ import annotations

import functools
import json
import math
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from scanner.file_formats import SAFETENSORS

if TYPE_CHECKING:
    import numpy as np
from scanner.sources.bytesource import ByteSource, coalesce_ranges

MAX_HEADER_BYTES = SAFETENSORS.budgets.header
MAX_DIMS = 16  # real tensors have at most 5 or 6
READ_WORKERS = 8
HEAD_BYTES = 64 * 1024  # read with the 8-byte length over HTTP: a 7B model's header is 20-40 KB
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def reader_pool() -> ThreadPoolExecutor:
    """One pool of reader threads for the whole process: remote reads are latency-bound, so several ranges go out
    at once, and threads (with their connections) that outlive one batch are reused by the next. Tasks given to it
    must not wait on it in turn."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=READ_WORKERS, thread_name_prefix="originscan-read")
        return _pool


T = TypeVar("T")
R = TypeVar("R")


def parallel(fn: Callable[[T], R], items: list[T]) -> list[R]:
    """fn over items, in order; on the reader pool when there is more than one."""
    if len(items) <= 1 or threading.current_thread().name.startswith("originscan-read"):
        return [fn(x) for x in items]  # inline from a reader thread: waiting on the pool could deadlock it
    return list(reader_pool().map(fn, items))


# dtype -> (bytes per element, numpy decoder or None when we cannot turn it into numbers)
DTYPES: dict[str, tuple[int, str | None]] = {
    "F64": (8, "<f8"),
    "F32": (4, "<f4"),
    "F16": (2, "<f2"),
    "BF16": (2, "bf16"),
    "I64": (8, "<i8"),
    "I32": (4, "<i4"),
    "I16": (2, "<i2"),
    "I8": (1, "i1"),
    "U64": (8, "<u8"),
    "U32": (4, "<u4"),
    "U16": (2, "<u2"),
    "U8": (1, "u1"),
    "BOOL": (1, "u1"),
    "F8_E4M3": (1, "f8e4m3"),
    "F8_E5M2": (1, "f8e5m2"),
    "F8_E8M0": (1, None),
}


# numpy is imported by the functions that decode, not by the module: validating a header (every scan) needs none.
def _fp8_table(exp_bits: int, man_bits: int, bias: int, ieee: bool) -> np.ndarray:
    """All 256 values of an 8-bit float (OCP FP8: E4M3FN has NaN but no infinities, E5M2 is IEEE-like).
    A lookup table is all decoding takes; written here rather than adding a dependency for it."""
    import numpy as np

    b = np.arange(256)
    e, m = (b >> man_bits) & ((1 << exp_bits) - 1), b & ((1 << man_bits) - 1)
    frac = m / (1 << man_bits)
    val = np.where(e == 0, frac * 2.0 ** (1 - bias), (1 + frac) * 2.0 ** (e - bias))
    top = e == (1 << exp_bits) - 1
    if ieee:
        val = np.where(top, np.where(m == 0, np.inf, np.nan), val)
    else:
        val = np.where(top & (m == (1 << man_bits) - 1), np.nan, val)
    return (np.where(b >> 7, -1.0, 1.0) * val).astype(np.float32)


FP8_FORMATS = {"f8e4m3": (4, 3, 7, False), "f8e5m2": (5, 2, 15, True)}  # (exponent, mantissa bits, bias, IEEE)


@functools.cache
def fp8_table(code: str) -> np.ndarray:
    """The lookup table of an FP8 dtype code of DTYPES (made on first use)."""
    exp_bits, man_bits, bias, ieee = FP8_FORMATS[code]
    return _fp8_table(exp_bits, man_bits, bias, ieee=ieee)


class SafetensorsError(ValueError):
    """The file is not a well-formed safetensors file; the message says why in one line."""


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str
    shape: tuple[int, ...]
    start: int  # absolute byte offsets in the file
    end: int
    file: str

    @property
    def itemsize(self) -> int:
        return DTYPES[self.dtype][0]

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.end - self.start

    @property
    def decodable(self) -> bool:
        return DTYPES[self.dtype][1] is not None


HEADER_RECORD = "safetensors-header-v1-"  # cache key prefix; bump when what is recorded changes


def parse_header(src: ByteSource, file: str | None = None) -> tuple[list[TensorInfo], dict[str, str]]:
    """Validate and parse the header. Reads 8 + N bytes, or nothing when a header with the same content hash was
    parsed before (the source knows its sha256 and has a cache): a re-scan of unchanged weights reads none."""
    file = file or src.name
    key = HEADER_RECORD + src.sha256 if src.sha256 and src.cache is not None else None
    if key is not None:
        record = src.cache.get_json(key)
        if isinstance(record, dict):
            try:
                return _from_record(record, file)
            except SafetensorsError:
                raise  # the recorded verdict on this content: malformed
            except (KeyError, TypeError, ValueError):
                pass  # an unreadable record is parsed again and overwritten
    try:
        tensors, metadata = _parse_header(src, file)
    except SafetensorsError as exc:
        _remember(src, key, {"error": str(exc).removeprefix(f"{file}: ")})
        raise
    _remember(
        src, key, {"tensors": [[t.name, t.dtype, list(t.shape), t.start, t.end] for t in tensors], "metadata": metadata}
    )
    return tensors, metadata


def _remember(src: ByteSource, key: str | None, record: dict[str, Any]) -> None:
    if key is not None:
        try:
            src.cache.put_json(key, record)
        except OSError:
            pass  # a cache that cannot be written costs a re-read next time, nothing else


def _from_record(record: dict[str, Any], file: str) -> tuple[list[TensorInfo], dict[str, str]]:
    if "error" in record:
        raise SafetensorsError(f"{file}: {record['error']}")
    tensors = []
    for name, dtype, shape, start, end in record["tensors"]:
        if dtype not in DTYPES or not all(isinstance(x, int) for x in (*shape, start, end)):
            raise ValueError("not a header record")
        tensors.append(TensorInfo(str(name), dtype, tuple(shape), start, end, file))
    return tensors, {str(k): str(v) for k, v in record["metadata"].items()}


def _show(value: object, limit: int = 80) -> str:
    """A header value for an error message: repr'd (quotes, escapes) and cut short, whatever its size."""
    try:
        text = repr(value) if not isinstance(value, int) or abs(value) < 10**30 else f"<{value.bit_length()}-bit int>"
    except ValueError:  # an int past Python's digit limit somewhere inside
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _parse_header(src: ByteSource, file: str) -> tuple[list[TensorInfo], dict[str, str]]:
    if src.size < 8:
        raise SafetensorsError(f"{file}: {src.size} bytes, too short for a safetensors header")
    # Over HTTP the header and what follows it come in one request (most headers are shorter than HEAD_BYTES, and
    # the rows read next may lie in the rest); a local read reads the length alone.
    n = int.from_bytes(src.read_head(8 + (src.head_bytes or HEAD_BYTES) if src.request_cost else 8)[:8], "little")
    if n < 2 or 8 + n > src.size:
        raise SafetensorsError(f"{file}: header length {n} is impossible for a {src.size}-byte file")
    if n > MAX_HEADER_BYTES:
        raise SafetensorsError(f"{file}: header of {n} bytes is over the {MAX_HEADER_BYTES}-byte budget; not parsed")
    raw = src.read(8, n)
    try:
        header = json.loads(raw.decode("utf-8").rstrip(" "))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise SafetensorsError(f"{file}: header is not valid JSON ({str(exc)[:80]})") from None
    if not isinstance(header, dict):
        raise SafetensorsError(f"{file}: header is not a JSON object")
    data_start = 8 + n
    data_len = src.size - data_start
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict):
        raise SafetensorsError(f"{file}: __metadata__ is not an object")
    tensors: list[TensorInfo] = []
    for name, entry in header.items():
        if not isinstance(entry, dict):
            raise SafetensorsError(f"{file}: entry {_show(name)} is not an object")
        dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if not isinstance(dtype, str) or dtype not in DTYPES:  # any JSON type may stand here
            raise SafetensorsError(f"{file}: tensor {_show(name)} has unknown dtype {_show(dtype)}")
        if not (
            isinstance(shape, list)
            and len(shape) <= MAX_DIMS
            and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
        ):
            raise SafetensorsError(f"{file}: tensor {_show(name)} has an invalid shape {_show(shape)}")
        if not (
            isinstance(offsets, list)
            and len(offsets) == 2
            and all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
        ):
            raise SafetensorsError(f"{file}: tensor {_show(name)} has invalid data_offsets {_show(offsets)}")
        begin, end = offsets
        if not 0 <= begin <= end <= data_len:
            raise SafetensorsError(
                f"{file}: tensor {_show(name)} offsets {_show(begin)}..{_show(end)} fall outside the "
                f"{data_len}-byte data section (truncated file?)"
            )
        if (end - begin) != (needed := math.prod(shape) * DTYPES[dtype][0]):
            # _show: the product of a hostile shape may have more digits than str(int) will write
            raise SafetensorsError(
                f"{file}: tensor {_show(name)} holds {end - begin} bytes but shape {_show(shape)} "
                f"of {dtype} needs {_show(needed)}"
            )
        tensors.append(TensorInfo(name, dtype, tuple(shape), data_start + begin, data_start + end, file))
    ordered = sorted((t for t in tensors if t.nbytes), key=lambda t: t.start)
    for a, b in zip(ordered, ordered[1:]):
        if b.start < a.end:
            raise SafetensorsError(f"{file}: tensors {_show(a.name)} and {_show(b.name)} overlap")
    return tensors, {str(k): str(v) for k, v in metadata.items()}


def decode(raw: bytes, dtype: str) -> np.ndarray:
    """Bytes of one dtype → float32 values (non-finite values are kept; callers decide)."""
    code = DTYPES[dtype][1]
    if code is None:
        raise SafetensorsError(f"dtype {dtype} cannot be compared numerically")
    import numpy as np

    if code in FP8_FORMATS:
        return fp8_table(code)[np.frombuffer(raw, dtype=np.uint8)]
    if code == "bf16":
        bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
        return bits.view(np.float32)
    return np.frombuffer(raw, dtype=code).astype(np.float32)


def read_rows(src: ByteSource, t: TensorInfo, rows: list[int] | np.ndarray, screening: bool = False) -> np.ndarray:
    """Rows of a 2-D tensor (or elements of a 1-D one), coalescing nearby rows into one range read (by the source's
    cost of a request, for a screen's read when `screening`)."""
    return read_rows_of(src, [(t, rows)], screening)[0]


def read_rows_of(
    src: ByteSource, wanted: list[tuple[TensorInfo, list[int] | np.ndarray]], screening: bool = False
) -> list[np.ndarray]:
    """Rows of several tensors of one file, read together: over HTTP, rows whose gap costs less than a request
    share one range read, across tensors too (a small matrix's sampled rows, two adjacent token matrices); local
    reads join adjacent rows only and read no unwanted byte."""
    spans: list[tuple[int, int, int, int]] = []  # (start, end, which tensor, row)
    shapes = []
    for i, (t, rows) in enumerate(wanted):
        width, nrows = (1, t.shape[0]) if len(t.shape) == 1 else (math.prod(t.shape[1:]), t.shape[0])
        rows = [int(r) for r in rows]
        if any(r < 0 or r >= nrows for r in rows):
            raise IndexError(f"{t.name}: row out of range")
        row_bytes = width * t.itemsize
        spans += [(t.start + r * row_bytes, t.start + (r + 1) * row_bytes, i, r) for r in set(rows)]
        shapes.append((rows, width))
    spans.sort()
    runs = coalesce_ranges([(a, b) for a, b, _, _ in spans], src.read_cost(screening))
    data = parallel(lambda run: src.read(run[0], run[1] - run[0]), runs)  # several in flight (thread-safe sources)
    import numpy as np

    found: dict[tuple[int, int], np.ndarray] = {}
    k = 0
    for start, end, i, r in spans:  # spans and runs are both in file order
        while runs[k][1] < end:
            k += 1
        at = start - runs[k][0]
        found[(i, r)] = decode(data[k][at : at + end - start], wanted[i][0].dtype)
    return [
        np.stack([found[(i, r)] for r in rows]) if rows else np.zeros((0, width), np.float32)
        for i, (rows, width) in enumerate(shapes)
    ]


def read_row_span(src: ByteSource, t: TensorInfo, rows: list[int], lo: int, hi: int) -> list[np.ndarray]:
    """Columns lo..hi-1 of the given rows of a 2-D tensor: one short range read per row, several in flight."""
    if len(t.shape) != 2 or not 0 <= lo < hi <= t.shape[1]:
        raise IndexError(f"{t.name}: columns {lo}..{hi} outside shape {t.shape}")
    if any(r < 0 or r >= t.shape[0] for r in rows):
        raise IndexError(f"{t.name}: row out of range")

    def fetch(r: int) -> np.ndarray:
        return decode(src.read(t.start + (r * t.shape[1] + lo) * t.itemsize, (hi - lo) * t.itemsize), t.dtype)

    return parallel(fetch, list(rows))


def read_tensor(src: ByteSource, t: TensorInfo) -> np.ndarray:
    return decode(src.read(t.start, t.nbytes), t.dtype).reshape(t.shape)


_NUM = re.compile(r"(\d+)")


def natural_key(name: str) -> list[int | str]:
    """'layers.10' sorts after 'layers.9': layer order survives renaming as long as the numbers do."""
    return [int(p) if p.isdigit() else p for p in _NUM.split(name)]
