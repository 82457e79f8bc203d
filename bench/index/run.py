"""`scan` against 1, 10, 100 and 1 000 registered fingerprints, current code and the code before the screen
(a `git worktree` of --old-rev), side by side: wall and CPU seconds, weight bytes read, peak memory, index size.

The suspect is a disguised copy (renamed, permuted, 2 % noise) of one registered upstream (hidden 512, vocabulary
8192, 4 layers); the others are synthetic fingerprints with random rows, stored as `index update` stores them
(REMOTE_PLAN: 192 token rows of one matrix, a few vectors, the sketch). "same": every upstream has the suspect's
shape; "mixed": hidden sizes 256/384/512/768/1024 in turn, so a fifth share it. Both codes read the same index
file (format 2 is a superset of format 1). Every run is a fresh process (peak RSS is that process's) with an empty
cache directory, so nothing is reused between runs.

    .venv/bin/python bench/index/run.py [--sizes 1,10,100,1000] [--old-rev 544dd7f^] [--old-max 100]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from helpers import disguise, save_tensors, tiny_llm  # noqa: E402

from scanner.provenance.fingerprint import (  # noqa: E402
    REMOTE_PLAN,
    Fingerprint,
    FingerprintPlan,
    StoredMatrix,
    WeightFile,
    build,
    make_sketch,
    shape_key,
    sketch_tokens,
)
from scanner.provenance.index import Index  # noqa: E402
from scanner.provenance.model import token_stream, token_window  # noqa: E402
from scanner.provenance.views import open_model  # noqa: E402
from scanner.sources.local import LocalSource  # noqa: E402

HIDDEN, VOCAB, LAYERS = 512, 8192, 4
MIXED = [512, 256, 384, 768, 1024]


def synthetic(i: int, hidden: int, vocab: int, plan: FingerprintPlan) -> Fingerprint:
    """An independent upstream's fingerprint as `index update` (or `index add`) stores it, without its model."""
    rng = np.random.default_rng(10_000 + i)
    tokens = np.unique(
        np.concatenate([token_stream(vocab)[: plan.stream_rows], token_window(vocab, plan.window_rows)])
    ).astype(np.int64)
    matrices = []
    for name in ["model.embed_tokens.weight"] + (["lm_head.weight"] if plan.all_matrices else []):
        rows = rng.standard_normal((len(tokens), hidden), dtype=np.float32).astype(np.float16)
        matrices.append(StoredMatrix(name, vocab, tokens, rows))
    rows = matrices[0].rows
    pos = {int(t): j for j, t in enumerate(tokens)}
    sketch = make_sketch(vocab, rows[[pos[int(t)] for t in sketch_tokens(vocab)]].astype(np.float32))
    names = [
        f"model.layers.{k}.{n}.weight" for k in range(LAYERS) for n in ("input_layernorm", "post_attention_layernorm")
    ]
    vectors = {n: (1 + 0.1 * rng.standard_normal(hidden)).astype(np.float32) for n in names + ["model.norm.weight"]}
    sha = hashlib.sha256(f"synthetic-{i}-{hidden}".encode()).hexdigest()
    shapes = [(vocab, hidden)] + [(hidden,)] * len(vectors)
    return Fingerprint(
        "rows",
        hidden,
        vocab,
        shape_key(shapes),
        vocab * hidden * 4,
        [WeightFile("model.safetensors", vocab * hidden * 4, sha)],
        matrices,
        vectors,
        sketch,
    )


def model_fingerprint(path: Path, plan: FingerprintPlan) -> Fingerprint:
    m = open_model(LocalSource(str(path), hash_weights=True).snapshot())
    try:
        return build(m, plan)
    finally:
        m.close()


def make_index(path: Path, n: int, shapes: str, source_fp: Fingerprint, plan: FingerprintPlan) -> Index:
    index = Index(path)
    index.put("acme/source", source_fp, "apache-2.0", "hf:acme/source", None)
    for i in range(1, n):
        hidden = HIDDEN if shapes == "same" else MIXED[i % len(MIXED)]
        index.put(
            f"other/upstream-{i:04d}",
            synthetic(i, hidden, VOCAB, plan),
            "apache-2.0",
            f"hf:other/upstream-{i:04d}",
            None,
        )
    return index


def peak_rss_run(code_root: Path, suspect: Path, index_path: Path) -> dict:
    """One scan in a fresh process; its peak RSS comes from the process itself (VmHWM)."""
    with tempfile.TemporaryDirectory() as cache:
        env = dict(
            os.environ,
            PYTHONPATH=str(code_root),
            ORIGINSCAN_CACHE=cache,
            ORIGINSCAN_INDEX=str(index_path),
            OMP_NUM_THREADS="1",
            OPENBLAS_NUM_THREADS="1",
        )
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            proc = subprocess.Popen(
                [sys.executable, str(ROOT / "bench" / "index" / "scan_once.py"), str(suspect), str(index_path)],
                cwd=code_root,
                env=env,
                stdout=out,
                stderr=err,
            )
            _, status, _ = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            out.seek(0)
            err.seek(0)
            text, errors = out.read(), err.read()
    if proc.returncode != 0:
        return {"error": (errors.strip().splitlines() or [f"exit {proc.returncode}"])[-1][:120]}
    result = json.loads(text.strip().splitlines()[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1,10,100,1000")
    ap.add_argument("--old-rev", default="544dd7f^", help="the code before the screen (a commit of this repo)")
    ap.add_argument("--old-max", type=int, default=100, help="largest index the old code is run against")
    ap.add_argument("--plans", default="update,add", help="fingerprints as index update and/or index add store them")
    ap.add_argument("--add-max", type=int, default=100, help="largest index of index-add-sized fingerprints")
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    work = Path(tempfile.mkdtemp(prefix="originscan-bench-index-"))
    old_root = work / "old"
    subprocess.run(["git", "worktree", "add", "--detach", "-q", str(old_root), args.old_rev], cwd=ROOT, check=True)
    try:
        source = tiny_llm(7, vocab=VOCAB, d=HIDDEN, inter=2 * HIDDEN, layers=LAYERS)
        save_tensors(source, work / "source" / "model.safetensors")
        save_tensors(disguise(source), work / "suspect" / "model.safetensors")
        (work / "suspect" / "README.md").write_text("---\nlicense: apache-2.0\n---\n# suspect\n")
        update_fp = model_fingerprint(work / "source", REMOTE_PLAN)
        add_fp = model_fingerprint(work / "source", FingerprintPlan())
        print(
            f"fingerprint of a hidden-{HIDDEN}, vocab-{VOCAB} upstream: {len(update_fp.to_bytes()):,} bytes as "
            f"`index update` stores it (+ {len(update_fp.sketch.to_bytes()):,} bytes sketch), "
            f"{len(add_fp.to_bytes()):,} bytes as `index add` stores it"
        )
        print(
            f"suspect: a disguised copy of acme/source ({(work / 'suspect' / 'model.safetensors').stat().st_size:,}"
            " weight bytes)\n"
        )
        header = (
            f"{'plan':>6} {'registered':>10} {'shapes':>6} | {'code':>4} | {'wall s':>7} {'CPU s':>7} {'ms/fp':>6} | "
            f"{'weight bytes read':>17} | {'peak MB':>7} | {'index KB/fp':>11} | derived"
        )
        print(header)
        print("-" * len(header))
        runs = [(p, sh) for p in args.plans.split(",") for sh in ("same", "mixed")]
        for plan_name, shapes in runs:
            plan, source_fp = (REMOTE_PLAN, update_fp) if plan_name == "update" else (FingerprintPlan(), add_fp)
            base_new = None
            for n in sizes:
                if plan_name == "add" and n > args.add_max:
                    continue
                db = work / f"index-{shapes}-{n}.sqlite"
                index = make_index(db, n, shapes, source_fp, plan)
                index.close()
                kb_per_fp = db.stat().st_size / 1024 / n
                for code, root in (("new", ROOT), ("old", old_root)):
                    if code == "old" and n > args.old_max:
                        print(
                            f"{plan_name:>6} {n:>10} {shapes:>6} | {code:>4} | not run (above --old-max {args.old_max})"
                        )
                        continue
                    r = peak_rss_run(root, work / "suspect", db)
                    if "error" in r:
                        print(f"{plan_name:>6} {n:>10} {shapes:>6} | {code:>4} | error: {r['error']}")
                        continue
                    per_fp = ""
                    if code == "new":
                        if base_new is None:
                            base_new = r["cpu"]
                        elif n > 1:
                            per_fp = f"{1000 * (r['cpu'] - base_new) / (n - 1):6.1f}"
                    print(
                        f"{plan_name:>6} {n:>10} {shapes:>6} | {code:>4} | {r['wall']:7.2f} {r['cpu']:7.2f} {per_fp:>6} | "
                        f"{r['bytes']:>17,} | {r['peak_mb']:7.1f} | {kb_per_fp:11.1f} | {','.join(r['derived'])}",
                        flush=True,
                    )
                db.unlink()
        print("\nms/fp: extra CPU per additional registered fingerprint over the 1-fingerprint run (new code).")
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(old_root)], cwd=ROOT, check=False)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
