#!/usr/bin/env python
"""Regenerate the small provenance fixture set in tests/fixtures/provenance/ (committed; tests need no torch).

    bench/.venv-bench/bin/python bench/provenance/make_fixtures.py [--out tests/fixtures/provenance]

Three independently initialised tiny Llama models (hidden 64, 2 layers, 4 heads / 2 KV heads, MLP 96, byte-level
BPE vocabulary 512, untied lm_head), each trained briefly on the Python reference-manual text and stored in float16,
plus derivatives of base_a of every transform class.  See README.md in the output folder.  Rewrites every model
folder and manifest.json; leaves README.md alone.  Total size is kept under 4 MB (checked).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import corpuslib as C  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
VOCAB = 512
MAX_TOTAL = 4_000_000


def config() -> dict:
    return C.llama_config(VOCAB, hidden=64, layers=2, intermediate=96, max_positions=256, dtype="float16")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=REPO / "tests" / "fixtures" / "provenance")
    a = ap.parse_args()
    out = a.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    torch.use_deterministic_algorithms(True)

    btxt, otxt = C.base_text(), C.other_text(limit=400_000)
    with tempfile.TemporaryDirectory() as td:
        tok = C.train_tokenizer([btxt, otxt], VOCAB, Path(td) / "tok")
    ids_base, ids_other = C.encode(tok, btxt), C.encode(tok, otxt)
    cfg = config()
    x = torch.from_numpy(np.stack([ids_base[500:532], ids_other[900:932]]))
    entries = []

    def save(name, cls, base, sd, dtype=torch.float16, config_=None, shards=1, **info):
        c = dict(config_ or cfg)
        if dtype is not None:
            sd = C.cast(sd, dtype)
            c["dtype"] = str(dtype).replace("torch.", "")
        C.write_model(out / name, c, sd, shards=shards)
        entries.append(
            dict(name=name, base=base, **{"class": cls}, path=name, weight_bytes=C.weight_bytes(out / name), **info)
        )
        print(f"{name:<24} {cls:<22} {C.weight_bytes(out / name):>8} bytes {info if info else ''}")

    bases = {}
    for k, tag in enumerate("abc"):
        torch.manual_seed(500 + k)
        m = C.llama_model(cfg)
        losses = C.train_causal(m, ids_base, 200, seed=600 + k, lr=3e-3, batch=8, seq=64, log=lambda s: None)
        save(f"base_{tag}", "base", None, C.tensors_of(m), final_loss=round(float(np.mean(losses[-20:])), 3))
        bases[tag] = C.to_f32(C.read_model(out / f"base_{tag}"))  # derive from exactly what is stored

    sd, bn = bases["a"], "base_a"
    ref = C.llama_logits(cfg, sd, x)

    def verified(new):
        d = float((C.llama_logits(cfg, new, x) - ref).abs().max())
        assert d < 1e-3, d
        return d

    save("copy_renamed_resharded", "renamed_resharded", bn, C.rename(sd, C.LLAMA_RENAME), shards=2)
    save("bf16", "bf16", bn, sd, dtype=torch.bfloat16)
    save("fp32_noise10", "noise_10pct", bn, C.add_noise(sd, 0.10, 11), dtype=torch.float32)
    save("transposed", "transposed", bn, C.transpose_2d(sd))
    perm = C.llama_perm_residual(C.llama_perm_heads(C.llama_perm_mlp(sd, cfg, 12), cfg, 13), cfg, 14)
    save("permuted", "permuted_residual_mlp_heads", bn, perm, max_abs_logit_diff_fp32=verified(perm))
    resc = C.llama_rescale(sd, cfg, 15)
    save("rescaled", "rescaled_qk_updown", bn, resc, max_abs_logit_diff_fp32=verified(resc))

    m = C.llama_model(cfg, sd)
    C.train_causal(m, ids_other, 80, seed=16, lr=1e-3, batch=8, seq=64, warmup=5, log=lambda s: None)
    save("continued", "continued_pretraining", bn, C.tensors_of(m), steps=80)

    psd, pcfg = C.llama_prune(sd, cfg, drop=1)
    m = C.llama_model(pcfg, psd)
    C.train_causal(m, ids_base, 50, seed=17, lr=1e-3, batch=8, seq=64, warmup=5, log=lambda s: None)
    save("pruned", "pruned_finetuned", bn, C.tensors_of(m), config_=pcfg, dropped_layer=1, steps=50)

    vsd, vcfg = C.llama_extend_vocab(sd, cfg, 128, 18)
    save("vocab_extended", "vocab_extended", bn, vsd, config_=vcfg, added_rows=128)
    save("merge_ab", "merge_linear", ["base_a", "base_b"], C.merge_linear(sd, bases["b"], 0.5), weights=[0.5, 0.5])
    save("int8_dequant", "int8_dequant", bn, C.int8_absmax(sd))

    known = {e["name"] for e in entries}
    for p in out.iterdir():  # stale folders from an older layout
        if p.is_dir() and p.name not in known and (p / "config.json").exists():
            shutil.rmtree(p)
    (out / "manifest.json").write_text(json.dumps({"version": 1, "models": entries}, indent=1) + "\n")
    total = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"fixtures: {len(entries)} models, {total} bytes in {out}")
    if total > MAX_TOTAL:
        raise SystemExit(f"fixture set is {total} bytes, over the {MAX_TOTAL} budget")


if __name__ == "__main__":
    main()
