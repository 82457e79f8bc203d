"""Quantized safetensors for the tests and benchmarks: MLX affine 4-bit and FP8 E4M3 with per-row scales.

Neither mlx nor a float8 numpy dtype is available here (mlx runs on Apple silicon; safetensors' numpy API has no
float8), so the two encoders are written out: MLX's affine scheme as mlx.core.quantize documents it, and FP8 by
rounding to the nearest of the 256 E4M3 values (the scanner's own decoding table, checked against the OCP values
in the tests).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import safetensors.numpy


def mlx_pack(w: np.ndarray, bits: int = 4, group: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """mlx.core.quantize's affine scheme: per group, scale = (max - min) / (2^bits - 1), bias = min; codes packed
    into uint32 words lowest bits first."""
    g = w.reshape(w.shape[0], -1, group)
    lo, hi = g.min(axis=2), g.max(axis=2)
    scale = np.where(hi > lo, (hi - lo) / (2**bits - 1), 1.0)
    codes = np.clip(np.round((g - lo[:, :, None]) / scale[:, :, None]), 0, 2**bits - 1).astype(np.uint32)
    codes = codes.reshape(w.shape[0], -1, 32 // bits)
    words = np.zeros(codes.shape[:2], dtype=np.uint32)
    for j in range(32 // bits):
        words |= codes[:, :, j] << np.uint32(bits * j)
    return words, scale.astype(np.float16), lo.astype(np.float16)


def mlx_model(t: dict[str, np.ndarray], bits: int = 4, group: int = 64) -> dict[str, np.ndarray]:
    """Every 2-D tensor MLX-quantized (as mlx-lm converts a model), 1-D tensors float16."""
    out = {}
    for k, v in t.items():
        if v.ndim == 2 and v.shape[1] % group == 0:
            prefix = k.removesuffix(".weight")
            out[k], out[prefix + ".scales"], out[prefix + ".biases"] = mlx_pack(v, bits, group)
        else:
            out[k] = v.astype(np.float16)
    return out


def fp8_e4m3(x: np.ndarray) -> np.ndarray:
    """Round to the nearest E4M3 value; returns the uint8 codes."""
    from scanner.provenance.safetensors import fp8_table

    table = fp8_table("f8e4m3")
    finite = np.where(np.isfinite(table), table, np.inf)
    order = np.argsort(finite)
    idx = np.searchsorted(finite[order], x.ravel()).clip(1, 255)
    lo, hi = order[idx - 1], order[idx.clip(max=255)]
    pick = np.where(np.abs(finite[lo] - x.ravel()) <= np.abs(finite[hi] - x.ravel()), lo, hi)
    return pick.astype(np.uint8).reshape(x.shape)


def save_fp8(t: dict[str, np.ndarray], path: Path, names: list[str]) -> Path:
    """A safetensors file with `names` stored F8_E4M3 plus a per-row `weight_scale` (F32), the rest as given.

    safetensors' numpy API has no float8 dtype: the header is extended by hand around the raw E4M3 bytes."""
    plain = safetensors.numpy.save({k: np.ascontiguousarray(v) for k, v in t.items() if k not in names})
    n = int.from_bytes(plain[:8], "little")
    header = json.loads(plain[8 : 8 + n])
    body = bytearray(plain[8 + n :])
    for name in names:
        w = t[name].astype(np.float32)
        scale = (np.abs(w).max(axis=1, keepdims=True) / 448).astype(np.float32)
        codes = fp8_e4m3(w / np.where(scale > 0, scale, 1)).tobytes()
        header[name] = {"dtype": "F8_E4M3", "shape": list(w.shape), "data_offsets": [len(body), len(body) + len(codes)]}
        body += codes
        header[name.removesuffix(".weight") + ".weight_scale"] = {
            "dtype": "F32",
            "shape": [w.shape[0], 1],
            "data_offsets": [len(body), len(body) + scale.nbytes],
        }
        body += scale.tobytes()
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(body))
    return Path(path)
