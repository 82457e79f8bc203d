"""Real GGUF files for the tests and benchmarks, written by the `gguf` package (llama.cpp's own writer).

`write_gguf` converts a Hugging Face Llama weight dict the way llama.cpp's converter names tensors (through
gguf's tensor-name map) and quantizes 2-D tensors with gguf's quantizers. gguf ships no quantizer for the
K-quants (Q4_K, Q5_K, Q6_K; only their dequantizers), so simple encoders for those block layouts are written
below; `test_gguf.py` checks them against gguf's reference dequantizer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gguf
import numpy as np
from gguf import GGMLQuantizationType as Q

QK_K = 256


# -- K-quant encoders (block layouts as gguf.quants dequantizes them) ----------------------------------------------
def _f16(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float16).view(np.uint8).reshape(len(x), 2)


def _pack_k_scales(sc: np.ndarray, mn: np.ndarray) -> np.ndarray:
    """8 six-bit scales and mins per block -> the 12-byte packing of Q4_K / Q5_K."""
    sc, mn = sc.astype(np.uint8), mn.astype(np.uint8)
    d = (sc[:, :4] & 0x3F) | ((sc[:, 4:] >> 4) << 6)
    m = (mn[:, :4] & 0x3F) | ((mn[:, 4:] >> 4) << 6)
    md = (sc[:, 4:] & 0x0F) | ((mn[:, 4:] & 0x0F) << 4)
    return np.concatenate([d, m, md], axis=1).astype(np.uint8)


def _scale_min(blocks: np.ndarray, levels: int) -> tuple[np.ndarray, ...]:
    """Per 32-value sub-block: x ~ d*sc*q - dmin*mn with q in 0..levels, sc and mn in 0..63."""
    sub = blocks.reshape(len(blocks), 8, 32)
    lo = np.maximum(0.0, -sub.min(axis=2))
    scale = (sub.max(axis=2) + lo) / levels
    d = scale.max(axis=1) / 63
    dmin = lo.max(axis=1) / 63
    d16, dmin16 = d.astype(np.float16).astype(np.float32), dmin.astype(np.float16).astype(np.float32)
    sc = np.clip(np.round(scale / np.where(d16 > 0, d16, 1)[:, None]), 0, 63)
    mn = np.clip(np.round(lo / np.where(dmin16 > 0, dmin16, 1)[:, None]), 0, 63)
    step = (d16[:, None] * sc)[:, :, None]
    q = np.clip(np.round((sub + (dmin16[:, None] * mn)[:, :, None]) / np.where(step > 0, step, 1)), 0, levels)
    return d, dmin, sc, mn, q.astype(np.uint8)


def quantize_q4_k(blocks: np.ndarray) -> np.ndarray:
    d, dmin, sc, mn, q = _scale_min(blocks, 15)
    qs = q.reshape(len(q), 4, 2, 32)
    qs = (qs[:, :, 0] | (qs[:, :, 1] << 4)).reshape(len(q), 128)
    return np.concatenate([_f16(d), _f16(dmin), _pack_k_scales(sc, mn), qs], axis=1)


def quantize_q5_k(blocks: np.ndarray) -> np.ndarray:
    d, dmin, sc, mn, q = _scale_min(blocks, 31)
    low = (q & 0x0F).reshape(len(q), 4, 2, 32)
    qs = (low[:, :, 0] | (low[:, :, 1] << 4)).reshape(len(q), 128)
    high = (q >> 4) & 1  # (n, 8, 32): bit j of qh[k] is the high bit of sub-block j, value k
    qh = np.zeros((len(q), 32), dtype=np.uint8)
    for j in range(8):
        qh |= (high[:, j] << j).astype(np.uint8)
    return np.concatenate([_f16(d), _f16(dmin), _pack_k_scales(sc, mn), qh, qs], axis=1)


def quantize_q6_k(blocks: np.ndarray) -> np.ndarray:
    n = len(blocks)
    sub = blocks.reshape(n, 16, 16)
    scale = np.abs(sub).max(axis=2) / 31
    d = scale.max(axis=1) / 127
    d16 = d.astype(np.float16).astype(np.float32)
    sc = np.clip(np.round(scale / np.where(d16 > 0, d16, 1)[:, None]), -128, 127)
    step = (d16[:, None] * sc)[:, :, None]
    q = (np.clip(np.round(sub / np.where(step > 0, step, 1)), -32, 31) + 32).astype(np.uint8).reshape(n, 2, 128)
    ql = ((q[:, :, :64] & 0x0F) | ((q[:, :, 64:] & 0x0F) << 4)).reshape(n, 128)
    hi = (q >> 4).reshape(n, 2, 4, 32)
    qh = (hi[:, :, 0] | (hi[:, :, 1] << 2) | (hi[:, :, 2] << 4) | (hi[:, :, 3] << 6)).reshape(n, 64)
    return np.concatenate([ql, qh, sc.astype(np.int8).view(np.uint8), _f16(d)], axis=1)


K_ENCODERS = {Q.Q4_K: quantize_q4_k, Q.Q5_K: quantize_q5_k, Q.Q6_K: quantize_q6_k}


def quantize(values: np.ndarray, qtype: Q) -> np.ndarray:
    """float rows -> the uint8 byte rows gguf stores for `qtype` (gguf's quantizers, ours for K-quants)."""
    values = np.ascontiguousarray(values, dtype=np.float32)
    if qtype in K_ENCODERS:
        rows = values.reshape(-1, values.shape[-1])
        blocks = K_ENCODERS[qtype](rows.reshape(-1, QK_K).astype(np.float32))
        return blocks.reshape(rows.shape[0], -1).reshape(*values.shape[:-1], -1)
    return gguf.quants.quantize(values, qtype)


# -- writing a model -----------------------------------------------------------------------------------------------
def _layers(tensors: dict[str, np.ndarray]) -> int:
    return 1 + max((int(k.split(".")[2]) for k in tensors if k.startswith("model.layers.")), default=-1)


def write_gguf(
    path: Path,
    tensors: dict[str, np.ndarray],
    qtype: Q = Q.F16,
    *,
    metadata: dict[str, Any] | None = None,
    tokens: list[str] | None = None,
    token_types: list[int] | None = None,
    split_max_tensors: int = 0,
    embed_type: Q | None = None,
) -> list[Path]:
    """A Llama-architecture GGUF of a Hugging Face weight dict; returns the file(s) written (several when split).

    2-D tensors are stored as `qtype` where their rows fit its block (else Q8_0, else F16, as llama.cpp falls
    back); the token embedding as `embed_type` when given; 1-D tensors stay F32 as llama.cpp keeps them.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, max(1, _layers(tensors)))
    w = gguf.GGUFWriter(path, "llama", split_max_tensors=split_max_tensors)
    embed = tensors["model.embed_tokens.weight"]
    vocab, hidden = embed.shape
    norms = [k for k in tensors if k.endswith("norm.weight")]
    w.add_uint32("llama.embedding_length", hidden)
    w.add_uint32("llama.block_count", _layers(tensors))
    mlp = next((v for k, v in tensors.items() if k.endswith("mlp.up_proj.weight")), None)
    if mlp is not None:
        w.add_uint32("llama.feed_forward_length", mlp.shape[0])
    w.add_uint32("llama.vocab_size", vocab)
    for key, value in (metadata or {}).items():
        _add(w, key, value)
    if tokens is not None:
        w.add_string("tokenizer.ggml.model", "gpt2")
        w.add_array("tokenizer.ggml.tokens", tokens)
        w.add_array("tokenizer.ggml.token_type", token_types or [1] * len(tokens))
    for name, value in tensors.items():
        base = name.removesuffix(".weight")
        gname = names.get_name(base)
        if gname is None:
            raise KeyError(f"no GGUF name for {name}")
        value = np.asarray(value, dtype=np.float32)
        want = embed_type if (embed_type is not None and name == "model.embed_tokens.weight") else qtype
        if value.ndim == 1 or name in norms:
            w.add_tensor(gname + ".weight", value.astype(np.float32))
            continue
        for t in (want, Q.Q8_0, Q.F16):
            block = gguf.GGML_QUANT_SIZES[t][0]
            if value.shape[-1] % block == 0:
                break
        if t == Q.F32:
            w.add_tensor(gname + ".weight", value)
        elif t == Q.F16:
            w.add_tensor(gname + ".weight", value.astype(np.float16))
        else:
            w.add_tensor(gname + ".weight", quantize(value, t), raw_dtype=t)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return w.format_shard_names(path)


def _add(w: gguf.GGUFWriter, key: str, value: Any) -> None:
    if isinstance(value, bool):
        w.add_bool(key, value)
    elif isinstance(value, int):
        w.add_uint32(key, value) if value >= 0 else w.add_int32(key, value)
    elif isinstance(value, float):
        w.add_float32(key, value)
    elif isinstance(value, str):
        w.add_string(key, value)
    elif isinstance(value, list):
        w.add_array(key, value)
    else:
        raise TypeError(f"{key}: {type(value).__name__}")


def llama_tokens(vocab: int, special: dict[str, int] | None = None) -> tuple[list[str], list[int]]:
    """A vocabulary of `vocab` made-up tokens with `special` placed at their ids as CONTROL tokens."""
    tokens = [f"tok{i}" for i in range(vocab)]
    types = [int(gguf.TokenType.NORMAL)] * vocab
    for tok, i in (special or {}).items():
        if i < vocab:
            tokens[i] = tok
            types[i] = int(gguf.TokenType.CONTROL)
    return tokens, types
