"""`originscan sweep` of one organisation on the local Hub, timed as users run it, with the code before the speed
work and today's in the same run. The server counts what it sent: requests, TCP connections, bytes of weight
files and all bytes.

    .venv/bin/python bench/sweep/bench_sweep.py [--repos 1000] [--upstreams 10] [--workers 8] [--only before|after]

Repos (generated once under bench/.cache/sweep/, gitignored): a card, LICENSE, config.json,
tokenizer_config.json and a real safetensors file (hidden 64, vocabulary 512, fp16, ~200 KB); every 50th repo is a
disguised copy (hidden axis permuted, 5 % noise, renamed) of one of the upstreams. Per code version:
  cold      first sweep, empty cache, no index
  warm      the same sweep again, nothing changed
  cold+idx  empty cache, --index with the upstreams registered (`originscan index add`, not timed)
  warm+idx  again, nothing changed
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]

from baseline import both  # noqa: E402
from servers.hub import HubServer  # noqa: E402
from synthetic import add_noise, base_model, permute_residual, save  # noqa: E402

SHAPE = dict(d=64, vocab=512, layers=1, inter=128, dtype=np.float16)
COPY_EVERY = 50


def card(license: str, name: str) -> str:
    return f"---\nlicense: {license}\n---\n# {name}\n"


def generate(
    root: Path,
    repos: int,
    upstreams: int,
    distinct_copies: bool = False,
    hidden: int = SHAPE["d"],
    vocab: int = SHAPE["vocab"],
) -> None:
    """`distinct_copies`: each disguised copy gets its own permutation and noise (seeded by its repo number);
    otherwise the disguise is fixed, so the copies of one upstream are byte-identical (repos 0 and 500 of 1,000).
    `hidden`, `vocab`: every model's width and vocabulary (upstreams and repos alike), SHAPE's unless asked."""
    shape = {**SHAPE, "d": hidden, "vocab": vocab}
    done = root / (f".complete-{repos}-{upstreams}-{hidden}-{vocab}" + ("-distinct" if distinct_copies else ""))
    if done.exists():
        return
    bases = [base_model(1000 + j, **shape) for j in range(upstreams)]
    for j, tensors in enumerate(bases):
        folder = save(tensors, root / "upstreams" / f"base-{j}")
        (folder / "README.md").write_text(card("apache-2.0", f"base-{j}"))
    for i in range(repos):
        if i % COPY_EVERY == 0 and bases:
            base = bases[(i // COPY_EVERY) % len(bases)]
            if distinct_copies:
                disguised = add_noise(permute_residual(base, seed=1_000_000 + i), 0.05, seed=2_000_000 + i)
            else:
                disguised = add_noise(permute_residual(base), 0.05)
            tensors = {k.replace("model.", "vison."): v for k, v in disguised.items()}
        else:
            tensors = base_model(i, **shape)
        folder = save(tensors, root / "benchorg" / f"model-{i:04d}")
        (folder / "README.md").write_text(card("apache-2.0", f"model {i}"))
        (folder / "LICENSE").write_text("Apache License\nVersion 2.0, January 2004\n")
        (folder / "config.json").write_text(
            json.dumps({"model_type": "llama", "hidden_size": shape["d"], "vocab_size": shape["vocab"]})
        )
        (folder / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 2048}))
    done.write_text("")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repos", type=int, default=1000)
    ap.add_argument("--upstreams", type=int, default=10)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--only", choices=["before", "after"], default=None)
    ap.add_argument("--no-index", action="store_true", help="skip the runs with registered upstreams")
    ap.add_argument("--timeout", type=int, default=600, help="seconds before a sweep is stopped (and reported so)")
    args = ap.parse_args()
    root = ROOT / "bench" / ".cache" / "sweep" / f"hub-{args.repos}-{args.upstreams}"
    t0 = time.perf_counter()
    generate(root, args.repos, args.upstreams)
    weights = sum(p.stat().st_size for p in (root / "benchorg").glob("*/model.safetensors"))
    print(
        f"{args.repos} repos ({weights / 1e6:.0f} MB of weights), {args.upstreams} upstreams, "
        f"{args.workers} workers (repos ready in {time.perf_counter() - t0:.0f} s)"
    )
    print(
        f"{'code':7} {'sweep':9} {'wall s':>7} {'repos':>6} {'requests':>9} {'req/repo':>9} {'conns':>6} "
        f"{'weight bytes':>13} {'all bytes':>11} {'weights.* findings':>19}"
    )
    codes = [c for c in both() if args.only in (None, c.label)]
    with HubServer(root) as hub, tempfile.TemporaryDirectory(prefix="originscan-bench-") as tmp:
        for repo in hub.repo_ids():  # the server hashes every file once: its cost, not the client's
            hub.commit(hub.repo(repo))
        env = {"HF_ENDPOINT": hub.url, "HF_HOME": str(Path(tmp) / "hf_home"), "HF_HUB_DISABLE_TELEMETRY": "1"}
        for code in codes:
            runs = [("cold", None), ("warm", None)]
            if not args.no_index and args.upstreams:
                runs += [("cold+idx", "idx"), ("warm+idx", "idx")]
            cache = None
            for label, with_index in runs:
                if label.startswith("cold"):
                    cache = tempfile.mkdtemp(dir=tmp)
                extra = []
                if with_index:
                    index = str(Path(cache) / "index.sqlite")
                    if label.startswith("cold"):
                        for j in range(args.upstreams):
                            out = code.cli(
                                "index",
                                "add",
                                f"hf:upstreams/base-{j}",
                                "--index",
                                index,
                                ORIGINSCAN_CACHE=cache,
                                **env,
                            )
                            if out.returncode != 0:
                                raise SystemExit(f"{code.label}: index add failed: {out.stderr.strip()[-300:]}")
                    extra = ["--index", index]
                report = Path(cache) / f"{label}.json"
                hub.stats.reset()
                t = time.perf_counter()
                try:
                    out = code.cli(
                        "sweep",
                        "hf:benchorg",
                        "--workers",
                        str(args.workers),
                        "--quiet",
                        "--format",
                        "json",
                        "-o",
                        str(report),
                        *extra,
                        timeout=args.timeout,
                        ORIGINSCAN_CACHE=cache,
                        **env,
                    )
                except subprocess.TimeoutExpired:
                    s = hub.stats
                    print(
                        f"{code.label:7} {label:9} {'>' + str(args.timeout):>7} {'-':>6} {s.requests:>9} {'-':>9} "
                        f"{s.connections:>6} {s.weight_bytes_served:>13,} {s.bytes_served:>11,} "
                        f"{'stopped: over --timeout':>19}",
                        flush=True,
                    )
                    break
                wall = time.perf_counter() - t
                if out.returncode not in (0, 1):
                    raise SystemExit(f"{code.label}: sweep failed ({out.returncode}): {out.stderr.strip()[-300:]}")
                targets = json.loads(report.read_text())["targets"]
                weights_findings = sum(f["rule"].startswith("weights.") for t in targets for f in t["findings"])
                s = hub.stats
                print(
                    f"{code.label:7} {label:9} {wall:>7.2f} {len(targets):>6} {s.requests:>9} "
                    f"{s.requests / max(1, len(targets)):>9.2f} {s.connections:>6} {s.weight_bytes_served:>13,} "
                    f"{s.bytes_served:>11,} {weights_findings:>19}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
