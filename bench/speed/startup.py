"""Whole-command times where start-up dominates, old code and new side by side in one run.

    .venv/bin/python bench/speed/startup.py [--repeat 9] [--old PATH] [--base PATH]

  --version         `originscan --version`
  re-scan           `originscan scan FOLDER` of an unchanged local model folder, its cache already warm (the first
                    scan is not counted): a safetensors model (hidden 256, vocabulary 8,000, two layers) with a card
                    and a config, generated in a temporary folder; no fingerprint index
  re-scan, json     the same re-scan with `-f json` (CI's format: no template engine, no rich)
  re-scan, indexed  the same with a fingerprint index that registers one other model (ORIGINSCAN_INDEX): the
                    weights' verdict comes from the verdict cache

The versions run in turn (old, [base,] new, old, ...), each a fresh interpreter; printed per command: wall seconds
and CPU seconds (user + system, steadier than wall on a shared machine) as min / median, and the exit status.
`--base PATH` adds a third version (e.g. a worktree of the day's starting commit).

Every version runs with its bytecode cached (PYTHONPYCACHEPREFIX in the temporary folder, filled by the untimed
first run), as a pip-installed package has it: with PYTHONDONTWRITEBYTECODE set and no __pycache__ in a checkout,
each run would otherwise spend ~0.1 s compiling originscan's own modules.
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
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "bench"), str(ROOT / "bench" / "speed")]

from baseline import Code  # noqa: E402
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
    ap.add_argument("--base", type=Path, default=None, help="a third code version to time (a worktree)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="originscan-startup-"))
    try:
        folder = save(base_model(1, d=256, vocab=8000, layers=2), tmp / "model")
        (folder / "README.md").write_text("---\nlicense: apache-2.0\n---\n# a model\n")
        (folder / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 256, "vocab_size": 8000}))
        other = save(base_model(2, d=256, vocab=8000, layers=2), tmp / "other")  # the indexed runs' one upstream
        codes = sides(args.old)
        if args.base is not None:
            codes.insert(1, Code("base", args.base))
        envs: dict[tuple[str, str], dict[str, str]] = {}
        for c in codes:
            env = c.env(ORIGINSCAN_CACHE=str(tmp / f"cache-{c.label}"), PYTHONPYCACHEPREFIX=str(tmp / f"pyc-{c.label}"))
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env.pop("ORIGINSCAN_INDEX", None)
            envs[("plain", c.label)] = env
            envs[("indexed", c.label)] = {**env, "ORIGINSCAN_INDEX": str(tmp / f"index-{c.label}.sqlite")}
        commands = {
            "--version": ("plain", ["--version"]),
            "re-scan": ("plain", ["scan", str(folder)]),
            "re-scan, json": ("plain", ["scan", str(folder), "-f", "json"]),
            "re-scan, indexed": ("indexed", ["scan", str(folder)]),
        }
        for c in codes:  # the first runs fill each version's caches (bytecode, snapshot, verdicts): not timed
            for argv, kind in ((["index", "add", str(other)], "indexed"), (["scan", str(folder)], "plain"),
                               (["scan", str(folder)], "indexed")):  # fmt: skip
                subprocess.run([sys.executable, "-m", "scanner.cli", *argv], env=envs[(kind, c.label)], cwd=c.tree,
                               capture_output=True, timeout=300)  # fmt: skip
        results: dict[tuple[str, str], list[tuple[float, float, int]]] = {}
        for _ in range(args.repeat):
            for name, (kind, argv) in commands.items():
                for c in codes:
                    cmd = [sys.executable, "-m", "scanner.cli", *argv]
                    results.setdefault((name, c.label), []).append(timed(cmd, envs[(kind, c.label)], c.tree))
        print(f"machine: {machine_load()}; {args.repeat} runs each, {', '.join(c.label for c in codes)} in turn")
        print(f"{'command':17} {'code':4} {'wall s (min / median)':>22} {'cpu s (min / median)':>21} exit")
        for (name, label), runs in results.items():
            print(
                f"{name:17} {label:4} {spread([r[0] for r in runs]):>22} {spread([r[1] for r in runs]):>21} "
                f"{sorted({r[2] for r in runs})}"
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
