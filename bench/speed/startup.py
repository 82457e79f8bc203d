"""Whole-command times where start-up dominates, old code and new side by side in one run.

    .venv/bin/python bench/speed/startup.py [--repeat 9] [--old PATH]

  --version   `originscan --version`
  re-scan     `originscan scan FOLDER` of an unchanged local model folder, its cache already warm (the first
              scan is not counted): a safetensors model (hidden 256, vocabulary 8,000, two layers) with a card and
              a config, generated in a temporary folder.

Old and new run in turn (old, new, old, new, ...), each a fresh interpreter; printed per command: wall seconds and
CPU seconds (user + system, steadier than wall on a shared machine) as min / median, and the exit status.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "bench" / "speed")]

from common import add_old_argument, machine_load, sides, spread  # noqa: E402
from synthetic import base_model, save  # noqa: E402


def timed(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float, int]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, timeout=300)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime, out.returncode


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=9)
    add_old_argument(ap)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="originscan-startup-"))
    try:
        folder = save(base_model(1, d=256, vocab=8000, layers=2), tmp / "model")
        (folder / "README.md").write_text("---\nlicense: apache-2.0\n---\n# a model\n")
        (folder / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 256, "vocab_size": 8000}))
        commands = {"--version": ["--version"], "re-scan": ["scan", str(folder)]}
        codes = sides(args.old)
        envs = {c.label: c.env(ORIGINSCAN_CACHE=str(tmp / f"cache-{c.label}")) for c in codes}
        for c in codes:  # the first scan fills each version's cache; re-scans are what is timed
            subprocess.run([sys.executable, "-m", "scanner.cli", "scan", str(folder)], env=envs[c.label], cwd=c.tree,
                           capture_output=True, timeout=300)  # fmt: skip
        results: dict[tuple[str, str], list[tuple[float, float, int]]] = {}
        for _ in range(args.repeat):
            for name, argv in commands.items():
                for c in codes:
                    cmd = [sys.executable, "-m", "scanner.cli", *argv]
                    results.setdefault((name, c.label), []).append(timed(cmd, envs[c.label], c.tree))
        print(f"machine: {machine_load()}; {args.repeat} runs each, old and new in turn")
        print(f"{'command':10} {'code':4} {'wall s (min / median)':>22} {'cpu s (min / median)':>21} exit")
        for (name, label), runs in results.items():
            print(
                f"{name:10} {label:4} {spread([r[0] for r in runs]):>22} {spread([r[1] for r in runs]):>21} "
                f"{sorted({r[2] for r in runs})}"
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
