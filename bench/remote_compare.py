"""Remote `compare` benchmark: two models of a few hundred MB served by the local Hub server (no network),
compared through the real huggingface_hub client and HTTP Range reads. Prints bytes read as a fraction of the
weight bytes, HTTP requests and seconds, beside the baseline of downloading both models whole.

    .venv/bin/python bench/remote_compare.py [--hidden 1024] [--vocab 32000] [--layers 4]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from servers.hub import HubServer  # noqa: E402


def llama_like(seed: int, d: int, vocab: int, layers: int) -> dict[str, np.ndarray]:
    r = np.random.default_rng(seed)
    inter = int(d * 2.75)
    t = {"model.embed_tokens.weight": r.normal(0, 0.02, (vocab, d)).astype(np.float16),
         "lm_head.weight": r.normal(0, 0.02, (vocab, d)).astype(np.float16),
         "model.norm.weight": (1 + 0.1 * r.normal(size=d)).astype(np.float16)}
    for i in range(layers):
        p = f"model.layers.{i}."
        t[p + "input_layernorm.weight"] = (1 + 0.1 * r.normal(size=d)).astype(np.float16)
        t[p + "post_attention_layernorm.weight"] = (1 + 0.1 * r.normal(size=d)).astype(np.float16)
        for n in "qkvo":
            t[p + f"self_attn.{n}_proj.weight"] = r.normal(0, 0.02, (d, d)).astype(np.float16)
        t[p + "mlp.gate_proj.weight"] = r.normal(0, 0.02, (inter, d)).astype(np.float16)
        t[p + "mlp.up_proj.weight"] = r.normal(0, 0.02, (inter, d)).astype(np.float16)
        t[p + "mlp.down_proj.weight"] = r.normal(0, 0.02, (d, inter)).astype(np.float16)
    return t


def disguise(t: dict[str, np.ndarray], seed: int = 11) -> dict[str, np.ndarray]:
    """Rename, permute the hidden axis, add 5 % noise, re-type to bf16-like float32: the Llama3-V recipe."""
    r = np.random.default_rng(seed)
    d = t["model.norm.weight"].shape[0]
    perm = r.permutation(d)
    out = {}
    for k, v in t.items():
        v = v.astype(np.float32)
        if v.ndim == 1:
            v = v[perm]
        elif "embed" in k or "lm_head" in k:
            v = v[:, perm]
        v = v + 0.05 * v.std() * r.normal(size=v.shape).astype(np.float32)
        out[k.replace("model.", "vison.")] = v.astype(np.float16)
    return out


def publish(root: Path, repo: str, tensors) -> int:
    folder = root / repo
    folder.mkdir(parents=True)
    (folder / "README.md").write_text("---\nlicense: apache-2.0\n---\n")
    save_file(tensors, str(folder / "model.safetensors"))
    return (folder / "model.safetensors").stat().st_size


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--layers", type=int, default=4)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "hub"
        base = llama_like(1, a.hidden, a.vocab, a.layers)
        size = publish(root, "upstream/base", base)
        publish(root, "mallory/copy", disguise(base))
        del base
        publish(root, "indie/other", llama_like(2, a.hidden, a.vocab, a.layers))
        server = HubServer(root).start()
        os.environ["HF_ENDPOINT"] = server.url
        os.environ["ORIGINSCAN_CACHE"] = str(Path(tmp) / "cache")
        from scanner.pipeline import open_snapshot
        from scanner.provenance.compare import compare_snapshots

        print(f"model size: {size / 1e6:.1f} MB each (hidden {a.hidden}, vocab {a.vocab}, {a.layers} layers, fp16)")
        print(f"{'pair':28} {'verdict':12} {'bytes read':>12} {'weight bytes':>14} {'fraction':>9} "
              f"{'requests':>9} {'seconds':>8} | full-download baseline bytes")
        for suspect in ("mallory/copy", "indie/other"):
            server.stats.reset()
            t0 = time.perf_counter()
            v = compare_snapshots(open_snapshot(f"hf:{suspect}"), open_snapshot("hf:upstream/base"))
            dt = time.perf_counter() - t0
            print(f"{suspect + ' vs base':28} {v.verdict:12} {v.bytes_read:>12,} {v.weight_bytes:>14,} "
                  f"{100 * v.bytes_read / v.weight_bytes:>8.3f}% {server.stats.requests:>9} {dt:>8.2f} | "
                  f"{v.weight_bytes:,} (100 %)")
        server.stop()


if __name__ == "__main__":
    main()
