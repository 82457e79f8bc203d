"""Where a remote compare at a real model size spends its CPU, by function, over every thread.

    .venv/bin/python bench/speed/profile_compare.py [--shape llama3-8b] [--pair indie/other] [--yappi DIR]

Serves the same sparse repos as shapes.py (tests/servers/hub.py), runs `originscan compare hf:PAIR hf:upstream/base`
once cold under yappi with its CPU clock (each thread's CPU time, so neither waiting on the network nor the shared
machine's load counts, as it would in a sampling profiler's wall-clock samples), and prints the command's CPU
seconds, the functions with the most CPU of their own and the most including what they call, and the CPU spent in
imports. yappi is a tool, not a dependency: `pip install --target DIR yappi` and pass --yappi DIR. The profiler's
own cost inflates Python-heavy code (imports most), so shares, not seconds, are what to compare.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench" / "speed")]

from servers.hub import HubServer  # noqa: E402
from shapes import MODELS, SHAPES, give_hashes, write_model  # noqa: E402

# Runs in the child: the CLI under yappi; at exit every function's CPU (own, inclusive, calls) goes to a JSON file.
CHILD = """
import atexit, json, runpy, sys, yappi
out = sys.argv.pop(1)
yappi.set_clock_type("cpu")
yappi.start(builtins=False, profile_threads=True)
def dump():
    yappi.stop()
    rows = [(f"{s.module.rsplit('/', 1)[-1]}:{s.name}", s.tsub, s.ttot, s.ncall) for s in yappi.get_func_stats()]
    json.dump(rows, open(out, "w"))
atexit.register(dump)
sys.argv[0] = "originscan"
runpy.run_module("scanner.cli", run_name="__main__", alter_sys=True)
"""


def summarise(rows: list[tuple[str, float, float, int]], cpu: float, top: int) -> None:
    print(f"command CPU (user + system, every thread, under the profiler): {cpu:.2f} s")
    merged: dict[str, list[float]] = {}
    for name, own, inclusive, calls in rows:  # the same name in several modules of one file name: summed
        m = merged.setdefault(name, [0.0, 0.0, 0])
        m[0] += own
        m[1] = max(m[1], inclusive)  # recursion and re-entry make sums of inclusive times meaningless
        m[2] += calls
    total = sum(m[0] for m in merged.values()) or 1.0
    imports = merged.get("<frozen importlib._bootstrap>:_find_and_load", [0.0, 0.0, 0])[1]
    print(f"profiled CPU {total:.2f} s; in imports {imports:.2f} s ({100 * imports / total:.0f} %)")
    for title, key in (("own", 0), ("inclusive", 1)):
        print(f"\n-- top {top} by {title} CPU (share of the profiled CPU, seconds, calls)")
        for name, m in sorted(merged.items(), key=lambda kv: -kv[1][key])[:top]:
            print(f"{100 * m[key] / total:6.1f}%  {m[key]:7.3f} s  {int(m[2]):>7}  {name}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", choices=list(SHAPES), default="llama3-8b")
    ap.add_argument("--pair", choices=["mallory/copy", "indie/other"], default="indie/other")
    ap.add_argument("--yappi", type=Path, default=None, help="folder yappi is installed in (pip install --target)")
    ap.add_argument("--top", type=int, default=35)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="originscan-profile-"))
    try:
        for repo, (seed, how) in MODELS.items():
            write_model(tmp / "hub" / repo, SHAPES[args.shape], seed, how)
        with HubServer(tmp / "hub") as hub:
            give_hashes(hub, tmp / "hub")
            cache = tmp / "cache"
            env = dict(os.environ, HF_ENDPOINT=hub.url, HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_OFFLINE="0")
            paths = [str(ROOT)] + ([str(args.yappi)] if args.yappi else [])
            env.update(ORIGINSCAN_CACHE=str(cache), HF_HOME=str(cache / "hf"), PYTHONPATH=os.pathsep.join(paths))
            stats = tmp / "stats.json"
            cmd = [sys.executable, "-c", CHILD, str(stats), "compare", f"hf:{args.pair}", "hf:upstream/base"]
            before = os.times()
            out = subprocess.run([*cmd, "--format", "json"], env=env, capture_output=True, text=True, cwd=ROOT)
            after = os.times()
            if out.returncode not in (0, 1):
                raise SystemExit(f"compare failed ({out.returncode}): {out.stderr[-800:]}")
            cpu = after.children_user - before.children_user + after.children_system - before.children_system
            print(f"{args.shape} {args.pair} vs upstream/base: {hub.stats.requests} requests")
            summarise(json.loads(stats.read_text()), cpu, args.top)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
