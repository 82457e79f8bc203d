"""Tiny synthetic transformer weight sets for provenance tests (numpy + safetensors, no torch)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from safetensors.numpy import save_file


def base_model(
    seed: int, d: int = 64, vocab: int = 512, layers: int = 2, inter: int = 172, dtype=np.float32
) -> dict[str, np.ndarray]:
    r = np.random.default_rng(seed)
    t = {
        "model.embed_tokens.weight": r.normal(0, 1, (vocab, d)).astype(np.float32),
        "lm_head.weight": r.normal(0, 1, (vocab, d)).astype(np.float32),
        "model.norm.weight": (1 + 0.1 * r.normal(size=d)).astype(np.float32),
    }
    for i in range(layers):
        p = f"model.layers.{i}."
        t[p + "input_layernorm.weight"] = (1 + 0.1 * r.normal(size=d)).astype(np.float32)
        t[p + "post_attention_layernorm.weight"] = (1 + 0.1 * r.normal(size=d)).astype(np.float32)
        for n in "qkvo":
            t[p + f"self_attn.{n}_proj.weight"] = r.normal(0, 0.1, (d, d)).astype(np.float32)
        t[p + "mlp.gate_proj.weight"] = r.normal(0, 0.1, (inter, d)).astype(np.float32)
        t[p + "mlp.up_proj.weight"] = r.normal(0, 0.1, (inter, d)).astype(np.float32)
        t[p + "mlp.down_proj.weight"] = r.normal(0, 0.1, (d, inter)).astype(np.float32)
    return {k: v.astype(dtype) for k, v in t.items()}


def save(tensors: dict[str, np.ndarray], folder: Path, name: str = "model.safetensors") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(folder / name))
    return folder


def permute_residual(t: dict[str, np.ndarray], seed: int = 3) -> dict[str, np.ndarray]:
    """Permute the hidden axis of embeddings, head and norms (the disguise that defeats name/index matching)."""
    d = t["model.norm.weight"].shape[0]
    perm = np.random.default_rng(seed).permutation(d)
    out = {}
    for k, v in t.items():
        if v.ndim == 1:
            out[k] = v[perm]
        elif "embed" in k or "lm_head" in k:
            out[k] = v[:, perm]
        elif k.endswith(("q_proj.weight", "k_proj.weight", "v_proj.weight", "gate_proj.weight", "up_proj.weight")):
            out[k] = v[:, perm]
        else:
            out[k] = v[perm, :]
    return out


def add_noise(t: dict[str, np.ndarray], frac: float, seed: int = 5) -> dict[str, np.ndarray]:
    r = np.random.default_rng(seed)
    # std in float32: a float16 reduction over a large tensor overflows to inf
    return {k: (v + frac * v.astype(np.float32).std() * r.normal(size=v.shape)).astype(v.dtype) for k, v in t.items()}
