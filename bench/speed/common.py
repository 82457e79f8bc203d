"""What the issue-26 benchmarks share: the two code versions run side by side, and figures as min / median.

The old code is the last commit before the work (SPEED_BASE_REV), as a git worktree: `--old PATH` names one
(e.g. made with `git worktree add /tmp/originscan-old 7b7061c`), otherwise one is created under bench/.cache/.
Both run with this project's virtualenv, so only originscan's own code differs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "bench")]

from baseline import Code, baseline_tree  # noqa: E402

SPEED_BASE_REV = "7b7061cf774ef7bea4ea9b8b5aada4bc95cc8db0"  # main before issue #26


def add_old_argument(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--old", type=Path, default=None, help=f"worktree of the old code (default: {SPEED_BASE_REV[:7]})")


def sides(old: Path | None) -> list[Code]:
    """The old code first, then the checkout."""
    return [Code("old", old or baseline_tree(SPEED_BASE_REV)), Code("new", ROOT)]


def spread(values: list[float], scale: float = 1.0, digits: int = 3) -> str:
    """'min / median' of repeated measurements (the median is what to quote; the minimum is the least noisy)."""
    if not values:
        return "-"
    return f"{min(values) * scale:.{digits}f} / {statistics.median(values) * scale:.{digits}f}"


def machine_load() -> str:
    """`uptime`'s load averages: the machine is shared, so figures are read against them."""
    try:
        out = subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "load unknown"
    return out[out.find("load") :] if "load" in out else out


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
