"""`originscan scan` of a local model folder of over 2 GB, twice (first scan, then a re-scan with nothing
changed), with the code before the speed work and today's, in the same run.

    .venv/bin/python bench/local_rescan.py [--hidden 4096] [--vocab 32000] [--layers 4] [--inter 11008]

The folder is the upstream model of bench/compare_big.py (written once under bench/.cache/big/). Each scan is
timed as a command and, without interpreter start and imports, as `scan_target` in a fresh process; then it runs
once more under strace, which counts the bytes that read()/pread64() returned from the weight
file itself (nothing else counted, so a re-scan that reads no weight byte shows 0).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from baseline import both  # noqa: E402
from compare_big import write_model  # noqa: E402

IN_PROCESS = """
import sys, time
from scanner.pipeline import scan_target
from scanner.policy import load_policy
policy = load_policy(None)
t = time.perf_counter()
scan_target(sys.argv[1], policy)
print(time.perf_counter() - t)
"""
_OPEN = re.compile(r'^(\d+) openat\(AT_FDCWD, "([^"]*)".*?(?:= (-?\d+)|<unfinished \.\.\.>)')
_OPEN_DONE = re.compile(r"^(\d+) <\.\.\. openat resumed>.*= (-?\d+)")
_READ = re.compile(r"^(\d+) (?:read|pread64)\((\d+),.*?(?:= (-?\d+)|<unfinished \.\.\.>)")
_READ_DONE = re.compile(r"^(\d+) <\.\.\. (?:read|pread64) resumed>.*= (-?\d+)")
_CLOSE = re.compile(r"^(\d+) close\((\d+)")


def weight_bytes_read(trace: str, weights: Path) -> int:
    """Bytes that read/pread64 returned from file descriptors opened on `weights` (threads included)."""
    fds: set[int] = set()
    pending_open: dict[str, bool] = {}
    pending_read: dict[str, int] = {}
    total = 0
    target = str(weights)
    for line in trace.splitlines():
        if m := _OPEN.match(line):
            pid, path, fd = m.groups()
            if fd is None:
                pending_open[pid] = path == target
            elif path == target and int(fd) >= 0:
                fds.add(int(fd))
        elif m := _OPEN_DONE.match(line):
            if pending_open.pop(m.group(1), False) and int(m.group(2)) >= 0:
                fds.add(int(m.group(2)))
        elif m := _READ.match(line):
            pid, fd, n = m.groups()
            if n is None:
                pending_read[pid] = int(fd)
            elif int(fd) in fds and int(n) > 0:
                total += int(n)
        elif m := _READ_DONE.match(line):
            if pending_read.pop(m.group(1), -1) in fds and int(m.group(2)) > 0:
                total += int(m.group(2))
        elif m := _CLOSE.match(line):
            fds.discard(int(m.group(2)))
    return total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hidden", type=int, default=4096)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--inter", type=int, default=11008)
    args = ap.parse_args()
    folder = (
        ROOT
        / "bench"
        / ".cache"
        / "big"
        / f"h{args.hidden}-v{args.vocab}-l{args.layers}-i{args.inter}"
        / "upstream"
        / "base"
    )
    size = write_model(folder, 1, None, args)
    weights = folder / "model.safetensors"
    print(f"{folder.relative_to(ROOT)}: {size / 1e9:.2f} GB of weights")
    print(f"{'code':7} {'scan':8} {'command s':>9} {'scan_target s':>13} {'weight bytes read':>18} {'exit':>5}")
    with tempfile.TemporaryDirectory(prefix="originscan-bench-") as tmp:
        for code in both():
            cache = tempfile.mkdtemp(dir=tmp)
            env = {"ORIGINSCAN_CACHE": cache, "ORIGINSCAN_INDEX": str(Path(tmp) / "no-index.sqlite")}
            for label in ("first", "re-scan"):
                t = time.perf_counter()
                out = code.cli("scan", str(folder), "--format", "json", **env)
                wall = time.perf_counter() - t
                # The scan itself, without interpreter start and imports (the same cache state, already warm for
                # a re-scan; a fresh cache for the first scan).
                fresh = dict(env, ORIGINSCAN_CACHE=tempfile.mkdtemp(dir=tmp)) if label == "first" else env
                inproc = subprocess.run(
                    [sys.executable, "-c", IN_PROCESS, str(folder)],
                    env=code.env(**fresh),
                    cwd=code.tree,
                    capture_output=True,
                    text=True,
                    timeout=3600,
                )
                scan_s = float(inproc.stdout.strip() or "nan")
                # The same scan again under strace, to count what it read of the weight file. The timed run made
                # the cache as warm as the re-scan finds it, so the count is for a re-scan too.
                if label == "first":
                    cache2 = tempfile.mkdtemp(dir=tmp)
                    env2 = dict(env, ORIGINSCAN_CACHE=cache2)
                else:
                    env2 = env
                trace = Path(tmp) / f"{code.label}-{label}.strace"
                subprocess.run(
                    [
                        "strace",
                        "-f",
                        "-qq",
                        "-s",
                        "0",
                        "-e",
                        "trace=openat,read,pread64,close",
                        "-o",
                        str(trace),
                        sys.executable,
                        "-m",
                        "scanner.cli",
                        "scan",
                        str(folder),
                        "--format",
                        "json",
                    ],
                    env=code.env(**env2),
                    cwd=code.tree,
                    capture_output=True,
                    timeout=3600,
                )
                read = weight_bytes_read(trace.read_text(errors="replace"), weights.resolve())
                trace.unlink()
                print(
                    f"{code.label:7} {label:8} {wall:>9.2f} {scan_s:>13.3f} {read:>18,} {out.returncode:>5}", flush=True
                )


if __name__ == "__main__":
    main()
