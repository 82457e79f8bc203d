"""Run a benchmark's command with today's code and with the code before the speed work, in the same run.

The old code is a `git worktree` of BASELINE_REV under bench/.cache/ (gitignored), created on first use; the
command runs with that tree first on PYTHONPATH, so `python -m scanner.cli` imports it instead of the checkout.
Both use the project's virtualenv, so only originscan's own code differs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE_REV = "d33c19b6049d4eed4c70b560421853269269b245"  # main before issue #15 (speed)


@dataclass(frozen=True)
class Code:
    label: str  # "before" | "after"
    tree: Path  # the folder whose scanner/ package is imported

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(self.tree) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env.update(extra)
        return env

    def cli(self, *args: str, timeout: float = 3600, **env: str) -> subprocess.CompletedProcess:
        """`originscan ARGS` with this code; output captured."""
        return subprocess.run(
            [sys.executable, "-m", "scanner.cli", *args],
            capture_output=True,
            text=True,
            env=self.env(**env),
            timeout=timeout,
            cwd=self.tree,
        )


def baseline_tree(rev: str = BASELINE_REV) -> Path:
    tree = ROOT / "bench" / ".cache" / f"baseline-{rev[:12]}"
    if not (tree / "scanner").is_dir():
        tree.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), rev], check=True, capture_output=True
        )
    return tree


def both(rev: str = BASELINE_REV) -> list[Code]:
    """The old code first, then the checkout."""
    return [Code("before", baseline_tree(rev)), Code("after", ROOT)]
