"""Sweep benchmark against the local Hub server (no network): a cold sweep of N generated repos, then a warm
re-sweep with nothing changed. Prints wall time, HTTP requests and weight bytes read for each.

    .venv/bin/python bench/sweep/bench_sweep.py [--repos 200] [--workers 8] [--weight-kb 256]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from servers.hub import HubServer, make_repo  # noqa: E402


def generate(root: Path, n: int, weight_bytes: int) -> None:
    for i in range(n):
        make_repo(root, f"benchorg/model-{i:03d}", {
            "README.md": f"---\nlicense: apache-2.0\nbase_model: benchorg/base\n---\n# model {i}\n",
            "LICENSE": "Apache License\nVersion 2.0\n",
            "config.json": json.dumps({"model_type": "llama", "hidden_size": 64 + i, "vocab_size": 128256}),
            "tokenizer_config.json": json.dumps({"model_max_length": 2048}),
            "model.safetensors": os.urandom(weight_bytes),
        })


def sweep(org: str, workers: int) -> tuple[int, int, int]:
    from scanner.errors import SourceError
    from scanner.sources.resolve import list_org, open_source

    targets = list_org(f"hf:{org}")

    def one(target: str) -> tuple[bool, int]:
        try:
            snap = open_source(target).snapshot()
        except SourceError:
            return False, 0
        # exact-copy evidence: every weight file's sha256 is known without reading it
        assert all(f.sha256 for f in snap.weight_files())
        return True, 0

    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(one, targets))
    return len(targets), sum(ok for ok, _ in results), sum(b for _, b in results)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repos", type=int, default=200)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--weight-kb", type=int, default=256)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="originscan-bench-") as tmp:
        root = Path(tmp) / "hub"
        generate(root, args.repos, args.weight_kb * 1024)
        os.environ["ORIGINSCAN_CACHE"] = str(Path(tmp) / "cache")
        os.environ["HF_HOME"] = str(Path(tmp) / "hf_home")
        for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
            os.environ.pop(var, None)
        with HubServer(root) as hub:
            os.environ["HF_ENDPOINT"] = hub.url
            weight_total = args.repos * args.weight_kb * 1024
            print(f"{args.repos} repos, {args.weight_kb} KiB of weights each ({weight_total / 2**20:.0f} MiB), "
                  f"{args.workers} workers, local Hub at {hub.url}")
            print(f"{'sweep':<6} {'wall s':>8} {'repos ok':>9} {'HTTP reqs':>10} {'req/repo':>9} "
                  f"{'bytes served':>13} {'weight bytes':>13}")
            for label in ("cold", "warm"):
                hub.stats.reset()
                t0 = time.perf_counter()
                n, ok, _ = sweep("benchorg", args.workers)
                wall = time.perf_counter() - t0
                s = hub.stats
                print(f"{label:<6} {wall:>8.2f} {ok:>4}/{n:<4} {s.requests:>10} {s.requests / max(n, 1):>9.2f} "
                      f"{s.bytes_served:>13} {s.weight_bytes_served:>13}")


if __name__ == "__main__":
    main()
