#!/usr/bin/env python
"""Independently trained bases wide enough for the K-quants (hidden 256), the hard negatives of bench/quantized.

    bench/.venv-bench/bin/python bench/quantized/train_bases.py [--n 3] [--steps 150] [--out bench/.cache/quantized/trained]

The provenance corpus's llama-tiny recipe (bench/provenance/make_corpus.py: same config, tokenizer, text and
optimiser), only the bases, with fewer steps by default so that it fits a short run; each base a different seed.
Then: .venv/bin/python bench/quantized/run.py --bases bench/.cache/quantized/trained/base_*
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "bench" / "provenance"))

import corpuslib as C  # noqa: E402
from make_corpus import VOCAB, llama_config  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=3)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / ".cache" / "quantized" / "trained")
    a = ap.parse_args()
    torch.set_num_threads(1)
    shared = REPO / "bench" / ".cache" / "quantized" / "trained-data"
    tokdir, data = shared / "_tokenizer", shared / "_data"
    if not (tokdir / "tokenizer.json").exists():
        C.train_tokenizer([C.base_text(), C.other_text()], VOCAB, tokdir)
    tok = C.load_tokenizer(tokdir)
    data.mkdir(parents=True, exist_ok=True)
    if not (data / "base.npy").exists():
        np.save(data / "base.npy", C.encode(tok, C.base_text()))
    ids = np.load(data / "base.npy")
    cfg = llama_config()
    files = sorted(p for p in tokdir.iterdir() if p.is_file())
    for i in range(a.n):
        path = a.out / f"base_{i}"
        if path.exists():
            continue
        started = time.time()
        torch.manual_seed(1000 + i)
        model = C.llama_model(cfg)
        losses = C.train_causal(model, ids, a.steps, seed=2000 + i, lr=3e-3, tag=f"base{i}")
        C.write_model(path, cfg, C.tensors_of(model), extra_files=files)
        print(f"base_{i}: loss {np.mean(losses[-20:]):.3f} in {time.time() - started:.0f}s", flush=True)


if __name__ == "__main__":
    main()
