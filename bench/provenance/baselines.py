"""Baseline provenance tests that read the FULL weights of both models (numpy only, no torch).

Each baseline is ``fn(suspect_dir, reference_dir) -> Result(score, bytes_read, weight_bytes)``; a higher score means
"more derived".  bytes_read counts every byte each method reads from both models' weight files (all of them).

* ``sha256``      exact file equality: the fraction of the suspect's weight files whose sha256 equals one of the
                  reference's.  Catches byte-identical copies only.
* ``param_cos``   parameter cosine similarity: tensors matched by name (same shape, or transposed shape, which is
                  transposed back) when at least half of them match by name, else by sorted shape order (tensors
                  grouped by shape and paired in name order within a group); cosine of the concatenated vectors.
* ``std_corr``    the layer-wise std "intrinsic fingerprint" (Yoon et al. 2025): the vector of per-tensor standard
                  deviations, tensors paired as above (shape compared up to transposition, since std ignores it);
                  Pearson correlation of the two vectors.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_DT = {
    "F64": np.float64,
    "F32": np.float32,
    "F16": np.float16,
    "I64": np.int64,
    "I32": np.int32,
    "I16": np.int16,
    "I8": np.int8,
    "U8": np.uint8,
    "BOOL": np.bool_,
}


@dataclass
class Result:
    score: float
    bytes_read: int
    weight_bytes: int


def weight_files(model_dir: str | Path) -> list[Path]:
    return sorted(Path(model_dir).glob("*.safetensors"))


def weight_bytes(model_dir: str | Path) -> int:
    return sum(f.stat().st_size for f in weight_files(model_dir))


def read_safetensors(path: Path) -> tuple[dict[str, np.ndarray], int]:
    """Whole-file read; returns float32 arrays for float tensors (others as stored) and the bytes read."""
    raw = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    header.pop("__metadata__", None)
    data = memoryview(raw)[8 + n :]
    out = {}
    for name, info in header.items():
        a, b = info["data_offsets"]
        buf = data[a:b]
        dt, shape = info["dtype"], tuple(info["shape"])
        if dt == "BF16":
            arr = (np.frombuffer(buf, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
        elif dt in _DT:
            arr = np.frombuffer(buf, dtype=_DT[dt])
            if arr.dtype.kind == "f":
                arr = arr.astype(np.float32)
        else:
            continue
        out[name] = arr.reshape(shape)
    return out, len(raw)


def read_model(model_dir: str | Path) -> tuple[dict[str, np.ndarray], int]:
    tensors, nread = {}, 0
    for f in weight_files(model_dir):
        t, n = read_safetensors(f)
        tensors.update(t)
        nread += n
    floats = {k: v for k, v in tensors.items() if v.dtype == np.float32 and v.size > 0}
    return floats, nread


def _canon(shape, transpose_ok):
    return tuple(sorted(shape)) if transpose_ok else tuple(shape)


def match_tensors(
    a: dict[str, np.ndarray], b: dict[str, np.ndarray], transpose_ok: bool
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Pairs (tensor of a, tensor of b) with equal shapes (or transposed shapes, transposed back)."""
    by_name = []
    for k, va in a.items():
        vb = b.get(k)
        if vb is None:
            continue
        if va.shape == vb.shape:
            by_name.append((va, vb))
        elif transpose_ok and va.ndim == 2 and va.shape == vb.shape[::-1]:
            by_name.append((va, vb.T))
    if len(by_name) >= 0.5 * min(len(a), len(b)):
        return by_name
    pairs = []
    ga: dict[tuple, list[str]] = {}
    gb: dict[tuple, list[str]] = {}
    for k, v in a.items():
        ga.setdefault(_canon(v.shape, transpose_ok), []).append(k)
    for k, v in b.items():
        gb.setdefault(_canon(v.shape, transpose_ok), []).append(k)
    for shape in sorted(set(ga) & set(gb)):
        for ka, kb in zip(sorted(ga[shape]), sorted(gb[shape])):
            va, vb = a[ka], b[kb]
            if va.shape != vb.shape:
                vb = vb.T
            pairs.append((va, vb))
    return pairs


def sha256(suspect: str | Path, reference: str | Path) -> Result:
    def hashes(d):
        hs, n = [], 0
        for f in weight_files(d):
            h = hashlib.sha256()
            with open(f, "rb") as fh:
                while chunk := fh.read(1 << 22):
                    h.update(chunk)
                    n += len(chunk)
            hs.append(h.hexdigest())
        return hs, n

    hs, ns = hashes(suspect)
    hr, nr = hashes(reference)
    score = sum(h in set(hr) for h in hs) / len(hs) if hs else 0.0
    return Result(float(score), ns + nr, weight_bytes(suspect) + weight_bytes(reference))


def param_cos(suspect: str | Path, reference: str | Path) -> Result:
    a, na = read_model(suspect)
    b, nb = read_model(reference)
    pairs = match_tensors(a, b, transpose_ok=True)
    dot = sa = sb = 0.0
    for x, y in pairs:
        x = x.ravel().astype(np.float64)
        y = y.ravel().astype(np.float64)
        dot += float(x @ y)
        sa += float(x @ x)
        sb += float(y @ y)
    score = dot / np.sqrt(sa * sb) if sa > 0 and sb > 0 else 0.0
    return Result(float(score), na + nb, weight_bytes(suspect) + weight_bytes(reference))


def std_corr(suspect: str | Path, reference: str | Path) -> Result:
    a, na = read_model(suspect)
    b, nb = read_model(reference)
    pairs = [(x, y) for x, y in match_tensors(a, b, transpose_ok=True) if x.size > 1]
    if len(pairs) < 3:
        score = 0.0
    else:
        sx = np.array([float(x.std()) for x, _ in pairs])
        sy = np.array([float(y.std()) for _, y in pairs])
        score = float(np.corrcoef(sx, sy)[0, 1]) if sx.std() > 0 and sy.std() > 0 else 0.0
    return Result(float(score), na + nb, weight_bytes(suspect) + weight_bytes(reference))


BASELINES = {"sha256": sha256, "param_cos": param_cos, "std_corr": std_corr}
