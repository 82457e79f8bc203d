"""What the probe benchmarks share: one command's cost in a child process, and how a p-value is printed."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def child(cmd: list[str], threads: int | None = None, cwd: Path | None = None) -> tuple[dict, float, float, float]:
    """(its JSON output, or {} when it printed none; wall seconds, CPU seconds, peak resident MiB) of one command
    run in a child process from the repository root (or `cwd`: another checkout); `threads` caps OpenMP's threads."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)} if threads else None
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd or REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    out = proc.stdout.read() if proc.stdout else ""
    _, _, usage = os.wait4(proc.pid, 0)
    try:
        data = json.loads(out)
    except json.JSONDecodeError:
        data = {}
    return data, time.perf_counter() - t, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def fmt_p(p: float | None) -> str:
    return "—" if p is None else f"{p:.1e}"
