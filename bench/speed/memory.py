"""What the peak memory of a scan against 100 registered fingerprints is made of (bench/index/run.py's "65 MB").

    .venv/bin/python bench/speed/memory.py [--registered 1 100]

The suspect and the index are bench/index/run.py's (a disguised copy of a hidden-512, vocabulary-8192 upstream;
the other upstreams synthetic fingerprints as `index update` stores them, all of the suspect's shape). Each scan
runs in a fresh process of this checkout, which prints its resident memory (VmRSS) after each stage — interpreter,
imports (numpy alone is shown apart), index opened, numeric libraries ready (threadpoolctl's look at the loaded
libraries and a first small comparison kernel: OpenBLAS sets up its buffers on first use), scan done — the peak
(VmHWM) with the end's private memory and file pages (the shared libraries' code, shared with every other process
that maps them), tracemalloc's peak of what the scan itself allocated (Python objects and numpy arrays) with its largest
sources (in a second run: tracing costs memory itself), and the modules the scan imported on the way. The last line is what the registered fingerprints
themselves cost: the peak with the most registered less the peak with the fewest.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

STAGES = r"""
import json, os, sys, tracemalloc
def rss(key="VmRSS"):
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith(key + ":")) / 1024
out = {"interpreter": rss()}
import numpy as np
out["numpy"] = rss()
from scanner.pipeline import scan_target
from scanner.policy import Policy
from scanner.provenance.index import Index
out["the scan's other imports"] = rss()
index = Index(sys.argv[2])
out["index opened"] = rss()
from scanner.provenance.compare import one_blas_thread, ranked_matches, spearman_columns
with one_blas_thread():
    z = spearman_columns(np.random.default_rng(0).standard_normal((64, 512)).astype(np.float32))
    ranked_matches(z, z)
out["numeric libraries ready"] = rss()
loaded = set(sys.modules)
traced = sys.argv[3] == "traced"
if traced:
    tracemalloc.start(25)
report = scan_target(sys.argv[1], Policy(), index)
if not traced:
    out["scan done"] = rss()
    out["peak (VmHWM)"] = rss("VmHWM")
    out["  private (RssAnon)"] = rss("RssAnon")
    out["  shared libraries' pages (RssFile)"] = rss("RssFile")
    print(json.dumps(out))
    sys.exit()
current, peak = tracemalloc.get_traced_memory()
snap = tracemalloc.take_snapshot()
tracemalloc.stop()
out = {"scan's own allocations, peak (tracemalloc)": peak / 2**20}
top = snap.statistics("filename")[:5]
new = sorted(set(sys.modules) - loaded)
tops = {}
for m in new:
    tops[m.split(".")[0]] = tops.get(m.split(".")[0], 0) + 1
out["modules"] = f"{len(new)} (" + ", ".join(f"{k} {v}" for k, v in sorted(tops.items(), key=lambda x: -x[1])) + ")"
out["top"] = [f"{s.traceback[0].filename.split('site-packages/')[-1].removeprefix(os.getcwd() + '/')}: {s.size / 2**20:.1f} MB" for s in top]
print(json.dumps(out))
"""


def load_index_bench():
    spec = importlib.util.spec_from_file_location("index_bench", ROOT / "bench" / "index" / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--registered", type=int, nargs="+", default=[1, 100])
    args = ap.parse_args()
    ib = load_index_bench()
    from helpers import disguise, save_tensors, tiny_llm

    work = Path(tempfile.mkdtemp(prefix="originscan-memory-"))
    try:
        source = tiny_llm(7, vocab=ib.VOCAB, d=ib.HIDDEN, inter=2 * ib.HIDDEN, layers=ib.LAYERS)
        save_tensors(source, work / "source" / "model.safetensors")
        save_tensors(disguise(source), work / "suspect" / "model.safetensors")
        (work / "suspect" / "README.md").write_text("---\nlicense: apache-2.0\n---\n# suspect\n")
        fp = ib.model_fingerprint(work / "source", ib.REMOTE_PLAN)
        peaks: dict[int, float] = {}
        for n in args.registered:
            db = work / f"index-{n}.sqlite"
            ib.make_index(db, n, "same", fp, ib.REMOTE_PLAN).close()
            env = dict(os.environ, ORIGINSCAN_CACHE=str(work / f"cache-{n}"), OPENBLAS_NUM_THREADS="1")
            r: dict = {}
            for mode in ("plain", "traced"):  # tracing allocations costs memory itself: the peak is the plain run's
                proc = subprocess.run(
                    [sys.executable, "-c", STAGES, str(work / "suspect"), str(db), mode],
                    capture_output=True, text=True, env=env, cwd=ROOT, timeout=600,
                )  # fmt: skip
                if proc.returncode:
                    raise SystemExit(proc.stderr[-800:])
                r.update(json.loads(proc.stdout.strip().splitlines()[-1]))
            top, modules = r.pop("top"), r.pop("modules")
            print(f"{n} registered fingerprints ({db.stat().st_size / 1e6:.1f} MB index):")
            for k, v in r.items():
                print(f"  {k:44} {v:7.1f} MB")
            print("  largest sources of the scan's allocations: " + "; ".join(top))
            print(f"  modules the scan imported: {modules}")
            peaks[n] = r["peak (VmHWM)"]
        if len(peaks) > 1:
            few, most = min(peaks), max(peaks)
            print(
                f"the fingerprints themselves: {peaks[most] - peaks[few]:+.1f} MB peak for {most - few} more registered "
                f"({(peaks[most] - peaks[few]) * 1024 / (most - few):.0f} KB each)"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
