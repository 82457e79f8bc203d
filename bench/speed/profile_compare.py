"""Where a remote compare at a real model size spends its CPU: py-spy samples of every thread, summed by function.

    .venv/bin/python bench/speed/profile_compare.py [--shape llama3-8b] [--pair indie/other] [--py-spy PATH]

Serves the same sparse repos as shapes.py (tests/servers/hub.py), runs `originscan compare hf:PAIR hf:upstream/base`
once cold under `py-spy record` (non-idle samples only, so time waiting on the network is left out), and prints the
functions with the most samples of their own and the most samples including what they call, each as a share of
all samples. py-spy is a tool, not a dependency: install it anywhere (`pip install py-spy`) and pass --py-spy.
"""

from __future__ import annotations

import argparse
import collections
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


def frame_name(frame: str) -> str:
    """'fn (path/to/mod.py:12)' -> 'mod.py:fn' (line numbers differ per sample)."""
    fn, _, where = frame.partition(" (")
    return f"{Path(where.rsplit(':', 1)[0]).name}:{fn}" if where else fn


# Leaf frames that are waits, not work: py-spy's idle test misses threads blocked inside these.
WAITING = frozenset(
    {"thread.py:_worker", "threading.py:Condition.wait", "socket.py:SocketIO.readinto", "queue.py:Queue.get"}
)


def summarise(raw: Path, top: int, rate: int) -> None:
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = [frame_name(f) for f in stack.split(";")[1:]]  # the first frame names the thread
        if frames and frames[-1] in WAITING:
            continue  # py-spy took a thread blocked in a queue, lock or socket for a busy one
        total += n
        if frames:
            own[frames[-1]] += n
        for f in set(frames):
            inclusive[f] += n
    print(f"{total} busy samples ({total / rate:.2f} s of CPU at {rate} Hz)")
    for title, counter in (("own", own), ("inclusive", inclusive)):
        print(f"\n-- top {top} by {title} samples")
        for name, n in counter.most_common(top):
            print(f"{100 * n / total:6.1f}%  {name}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", choices=list(SHAPES), default="llama3-8b")
    ap.add_argument("--pair", choices=["mallory/copy", "indie/other"], default="indie/other")
    ap.add_argument("--py-spy", default=shutil.which("py-spy") or "py-spy")
    ap.add_argument("--rate", type=int, default=500)
    ap.add_argument(
        "--all-threads", action="store_true", help="every thread py-spy deems busy, not only the one holding the GIL"
    )
    ap.add_argument("--top", type=int, default=35)
    ap.add_argument("--save", type=Path, default=None, help="keep py-spy's raw samples (collapsed stacks) here")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="originscan-profile-"))
    try:
        for repo, (seed, how) in MODELS.items():
            write_model(tmp / "hub" / repo, SHAPES[args.shape], seed, how)
        with HubServer(tmp / "hub") as hub:
            give_hashes(hub, tmp / "hub")
            cache = tmp / "cache"
            env = dict(os.environ, HF_ENDPOINT=hub.url, HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_OFFLINE="0")
            env.update(ORIGINSCAN_CACHE=str(cache), HF_HOME=str(cache / "hf"), PYTHONPATH=str(ROOT))
            raw = tmp / "samples.txt"
            cmd = [args.py_spy, "record", "--format", "raw", "--rate", str(args.rate), "-o", str(raw), "--"]
            cmd += [sys.executable, "-m", "scanner.cli", "compare", f"hf:{args.pair}", "hf:upstream/base"]
            if not args.all_threads:  # threads waiting for the GIL look busy to py-spy: sample its holder only
                cmd.insert(2, "--gil")
            out = subprocess.run(cmd + ["--format", "json"], env=env, capture_output=True, text=True, cwd=ROOT)
            if out.returncode not in (0, 1):
                raise SystemExit(f"compare failed ({out.returncode}): {out.stderr[-800:]}")
            print(f"{args.shape} {args.pair} vs upstream/base: {hub.stats.requests} requests")
            summarise(raw, args.top, args.rate)
            if args.save:
                shutil.copy(raw, args.save)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
