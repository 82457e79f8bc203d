"""Does a refactor change what originscan says? Two code trees, the same inputs, every output compared byte for byte.

    .venv/bin/python bench/refactor/same_outputs.py [--base /tmp/originscan-base] [--head .] [--only examples,...]

Both trees run with this project's virtualenv (PYTHONPATH=TREE), in the same working folder, on one copy of the
inputs (taken from --head), so only the code, the knowledge base and the templates differ. What is compared:

- examples:  `scan` of every example repo in every report format, against an index holding examples/upstreams; each
             format from a cold verdict cache, then json and text again from the warm one (the cache's restore);
             `compare` (json and text) of every example with weights against every upstream; `demo`.
- fixtures:  the same for tests/fixtures/provenance (index: the independent bases), and `compare` (json and text)
             of every derived and independent pair of the manifest (the pairs of tests/test_provenance_fixtures.py).
- hostile:   every case of tests/hostile/corpus.py: `scan` as json and text, `compare` json against the clean
             reference the corpus compares with.
- realworld: every case of tests/realworld (scanned in-process by its own scan_case): the findings, rule and message.

Each command's exit status, stdout and stderr are compared after normalising only what changes from one run to the
next (timestamps, UUIDs, durations, the temporary folder); see NORMALISE. Prints one line per set with identical /
different counts and, for the first differing outputs, their first differing lines. Exits 1 when anything differs.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORMATS = ("text", "json", "markdown", "sarif", "html", "cyclonedx", "spdx")
SETS = ("examples", "fixtures", "hostile", "realworld")
COMMAND_TIMEOUT = 300  # seconds per command (a hang is an output too: "timeout")

# What differs between two runs of the same code: replaced by a placeholder before comparing. Each pattern names a
# run-time value, never a judgement (a verdict, p-value, score, byte count or finding is left as it is).
NORMALISE: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d(?::\d\d(?:\.\d+)?)?(?:Z|[+-]\d\d:?\d\d| UTC)?"), "<time>"),
    (re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"), "<uuid>"),
    (re.compile(r'"seconds": [0-9.e-]+'), '"seconds": <s>'),
    (re.compile(r"\b\d+(?:\.\d+)? ?(?:ms|s)\b(?! \w)"), "<duration>"),
]

# The driver each tree runs: the CLI imported once, then every command in a forked child with its stdout and stderr
# on files (like a shell redirect), its working folder and environment additions, under a time limit.
DRIVER = r"""
import json, os, resource, signal, sys
from pathlib import Path
spec = json.loads(Path(sys.argv[1]).read_text())
out = Path(spec["out"])
if spec.get("realworld"):
    sys.path.append(spec["realworld"])
    import realworld_corpus as rc
    work = out / "realworld-work"
    got = {}
    for case in rc.load_cases():
        try:
            got[case.corpus + "/" + case.path.stem] = rc.scan_case(case, work).messages
        except Exception as exc:
            got[case.corpus + "/" + case.path.stem] = ["error: " + type(exc).__name__ + ": " + str(exc)[:200]]
    for name, messages in got.items():
        (out / ("realworld-" + name.replace("/", "-") + ".out")).write_text("\n".join(messages) + "\n")
    rcs = {"realworld-" + name.replace("/", "-"): 0 for name in got}
    (out / "realworld.json").write_text(json.dumps(rcs))
    sys.exit(0)
from scanner.cli import main
rcs = {}
for job in spec["jobs"]:
    pid = os.fork()
    if pid == 0:
        os.chdir(job["cwd"])
        os.environ.update(job["env"])
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
        for fd, suffix in ((1, ".out"), (2, ".err")):
            f = os.open(out / (job["name"] + suffix), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(f, fd)
            os.close(f)
        sys.argv = ["originscan", *job["argv"]]
        code = 0
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException as exc:
            print("driver: escaped the entry point: " + type(exc).__name__, file=sys.stderr)
            code = 99
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    signal.signal(signal.SIGALRM, lambda *a: os.kill(pid, signal.SIGKILL))
    signal.alarm(spec["timeout"])
    _, status = os.waitpid(pid, 0)
    signal.alarm(0)
    rcs[job["name"]] = os.waitstatus_to_exitcode(status) if not os.WIFSIGNALED(status) else "killed"
(out / "results.json").write_text(json.dumps(rcs))
"""


def job(name: str, argv: list[str], cwd: Path, **env: str) -> dict[str, object]:
    return {"name": name, "argv": argv, "cwd": str(cwd), "env": env}


def index_jobs(name: str, index: Path, upstreams: list[tuple[Path, str | None, str | None]], cwd: Path) -> list[dict]:
    """Register the upstreams (path, registered name, licence) in a fresh index."""
    out = []
    for k, (path, reg, lic) in enumerate(upstreams):
        argv = ["index", "add", str(path.relative_to(cwd)), "--index", str(index)]
        argv += ["--name", reg] if reg else []
        argv += ["--license", lic] if lic else []
        out.append(job(f"{name}-index-add-{k}", argv, cwd))
    return out


def scan_jobs(name: str, targets: list[str], index: Path, cwd: Path, cache: Path) -> list[dict]:
    """Every format from its own cold verdict cache, then json and text again from the json run's warm cache."""
    out = []
    for fmt in FORMATS:
        argv = ["scan", *targets, "--index", str(index), "--format", fmt]
        out.append(job(f"{name}-scan-{fmt}-cold", argv, cwd, ORIGINSCAN_CACHE=str(cache / fmt)))
    for fmt in ("json", "text"):
        argv = ["scan", *targets, "--index", str(index), "--format", fmt]
        out.append(job(f"{name}-scan-{fmt}-warm", argv, cwd, ORIGINSCAN_CACHE=str(cache / "json")))
    return out


def compare_jobs(name: str, pairs: list[tuple[str, str]], cwd: Path) -> list[dict]:
    out = []
    for suspect, reference in pairs:
        tag = f"{Path(suspect).name}-vs-{Path(reference).name}"
        for fmt in ("json", "text"):
            out.append(job(f"{name}-compare-{tag}-{fmt}", ["compare", suspect, reference, "--format", fmt], cwd))
    return out


def has_weights(folder: Path) -> bool:
    return any(p.suffix in (".safetensors", ".gguf") for p in folder.iterdir())


def examples_jobs(work: Path, state: Path) -> list[dict]:
    root = work / "examples"
    ups = sorted(p for p in (root / "upstreams").iterdir() if p.is_dir())

    def read(p: Path) -> str | None:
        return p.read_text().strip() if p.is_file() else None

    index = state / "examples.sqlite"
    jobs = index_jobs("examples", index, [(u, read(u / "NAME"), read(u / "LICENSE_ID")) for u in ups], work)
    repos = sorted(p for p in root.iterdir() if p.is_dir() and p.name != "upstreams" and not p.name.startswith("."))
    jobs += scan_jobs("examples", [str(p.relative_to(work)) for p in repos], index, work, state / "cache-examples")
    pairs = [(str(r.relative_to(work)), str(u.relative_to(work))) for r in repos if has_weights(r) for u in ups]
    jobs += compare_jobs("examples", pairs, work)
    jobs.append(job("examples-demo", ["demo"], work, ORIGINSCAN_CACHE=str(state / "cache-demo")))
    return jobs


def fixture_pairs(manifest: dict) -> list[tuple[str, str]]:
    """The derived and independent pairs of tests/test_provenance_fixtures.py, by bench/speed/same_verdicts.py's rule."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "speed"))
    from same_verdicts import fixture_pairs as pairs_of

    return pairs_of(manifest)


def fixtures_jobs(work: Path, state: Path) -> list[dict]:
    root = work / "fixtures"
    manifest = json.loads((root / "manifest.json").read_text())
    path = {m["name"]: root / m["path"] for m in manifest["models"]}
    index = state / "fixtures.sqlite"
    bases = [(path[m["name"]], m["name"], "apache-2.0") for m in manifest["models"] if m["base"] is None]
    jobs = index_jobs("fixtures", index, bases, work)
    targets = [str(path[m["name"]].relative_to(work)) for m in manifest["models"]]
    jobs += scan_jobs("fixtures", targets, index, work, state / "cache-fixtures")
    pairs = [(str(path[s].relative_to(work)), str(path[r].relative_to(work))) for s, r in fixture_pairs(manifest)]
    return jobs + compare_jobs("fixtures", pairs, work)


def build_hostile(head: Path, work: Path) -> list[str]:
    """The hostile corpus's repos (built by --head's tests/hostile/corpus.py) under work/hostile; their names."""
    code = (
        "import sys, json\nfrom pathlib import Path\nfrom corpus import CASES, build_case, build_reference\n"
        "root = Path(sys.argv[1]); build_reference(root)\n"
        "for c in CASES: build_case(c, root)\nprint(json.dumps([c.name for c in CASES]))\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(head), str(head / "tests"), str(head / "tests/hostile")]))
    done = subprocess.run(
        [sys.executable, "-c", code, str(work / "hostile")], env=env, capture_output=True, text=True, check=True
    )
    return list(json.loads(done.stdout))


def hostile_jobs(work: Path, state: Path, names: list[str]) -> list[dict]:
    root = work / "hostile"
    index = state / "hostile.sqlite"
    jobs = index_jobs("hostile", index, [(root / "reference", "hostile/reference", "mit")], work)
    for name in names:
        repo = str((root / name / "repo").relative_to(work))
        cache = str(state / "cache-hostile" / name)
        for fmt in ("json", "text"):
            argv = ["scan", repo, "--index", str(index), "--format", fmt]
            jobs.append(job(f"hostile-{name}-scan-{fmt}", argv, work, ORIGINSCAN_CACHE=cache))
        argv = ["compare", repo, str((root / "reference").relative_to(work)), "--format", "json"]
        jobs.append(job(f"hostile-{name}-compare-json", argv, work, ORIGINSCAN_CACHE=cache))
    return jobs


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORIGINSCAN_", "HF_", "GITHUB_", "PYTHONPATH"))}
    env.update(
        HF_HUB_OFFLINE="1",
        NO_COLOR="1",
        COLUMNS="160",
        TERM="dumb",
        OPENBLAS_NUM_THREADS="1",
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONHASHSEED="0",
    )
    return env


def run_tree(tree: Path, label: str, jobs: list[dict], work: Path, realworld: Path | None) -> subprocess.Popen:
    out = work / "out" / label
    out.mkdir(parents=True)
    state = work / "state" / label
    # jobs were written for one tree; each tree gets its own index and caches
    mine = json.loads(json.dumps(jobs).replace(str(work / "state" / "TREE"), str(state)))
    spec = {"out": str(out), "jobs": mine, "timeout": COMMAND_TIMEOUT, "realworld": None}
    (work / f"spec-{label}.json").write_text(json.dumps(spec))
    driver = work / "driver.py"
    driver.write_text(DRIVER)
    env = child_env()
    env.update(PYTHONPATH=str(tree), HOME=str(work / "home" / label), ORIGINSCAN_CACHE=str(state / "cache"))
    (work / "home" / label).mkdir(parents=True)
    procs = [subprocess.Popen([sys.executable, str(driver), str(work / f"spec-{label}.json")], cwd=work, env=env)]
    if realworld is not None:
        spec = {"out": str(out), "realworld": str(realworld)}
        (work / f"spec-{label}-realworld.json").write_text(json.dumps(spec))
        procs.append(
            subprocess.Popen(
                [sys.executable, str(driver), str(work / f"spec-{label}-realworld.json")], cwd=work, env=env
            )
        )
    return procs  # type: ignore[return-value]


def normalise(text: str, work: Path) -> str:
    text = text.replace(str(work), "<work>")
    text = re.sub(r"\bstate/(?:base|head)\b", "state/TREE", text)  # each tree's own index and caches
    for pattern, placeholder in NORMALISE:
        text = pattern.sub(placeholder, text)
    return text


def outputs(out: Path, names: list[str], rcs: dict[str, object], work: Path) -> dict[str, str]:
    """name -> the normalised exit status, stdout and stderr of that command."""
    got = {}
    for name in names:
        parts = [f"exit: {rcs.get(name, 'not run')}"]
        for suffix in (".out", ".err"):
            p = out / (name + suffix)
            body = p.read_bytes().decode("utf-8", "backslashreplace") if p.exists() else ""
            parts.append(f"--- {suffix[1:]}\n" + normalise(body, work))
        got[name] = "\n".join(parts)
    return got


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--base", type=Path, required=True, help="the tree before the change (e.g. `git worktree add /tmp/base REV`)"
    )
    ap.add_argument("--head", type=Path, default=ROOT, help="the tree after it (default: this checkout)")
    ap.add_argument("--only", default=",".join(SETS), help=f"comma-separated sets (default: all of {', '.join(SETS)})")
    ap.add_argument("--show", type=int, default=5, help="differing outputs to show (first lines of each diff)")
    ap.add_argument("--keep", type=Path, default=None, help="work in this (new) folder and keep it")
    ap.add_argument("--compare-only", type=Path, default=None, help="only compare the outputs kept in this folder")
    args = ap.parse_args()
    chosen = [s for s in args.only.split(",") if s]
    if unknown := set(chosen) - set(SETS):
        ap.error(f"unknown set(s): {', '.join(sorted(unknown))}")
    head, base = args.head.resolve(), args.base.resolve()
    if args.compare_only is not None:
        got = kept_outputs(args.compare_only.resolve())
        report(got, chosen, args.show, say=print)
        return 0 if got["base"] == got["head"] else 1
    work = args.keep.resolve() if args.keep else Path(tempfile.mkdtemp(prefix="originscan-same-"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        # One copy of the inputs, from the head tree: both trees read exactly the same files at the same paths.
        state = work / "state" / "TREE"
        jobs: list[dict] = []
        if "examples" in chosen:
            shutil.copytree(head / "examples", work / "examples")
            jobs += examples_jobs(work, state)
        if "fixtures" in chosen:
            shutil.copytree(head / "tests" / "fixtures" / "provenance", work / "fixtures")
            jobs += fixtures_jobs(work, state)
        if "hostile" in chosen:
            jobs += hostile_jobs(work, state, build_hostile(head, work))
        realworld = head / "tests" / "realworld" if "realworld" in chosen else None
        labels = {"base": base, "head": head}
        procs = [p for label, tree in labels.items() for p in run_tree(tree, label, jobs, work, realworld)]
        for p in procs:
            p.wait()
        names = [str(j["name"]) for j in jobs]
        got: dict[str, dict[str, str]] = {}
        for label in labels:
            out = work / "out" / label
            rcs = json.loads((out / "results.json").read_text()) if (out / "results.json").exists() else {}
            if realworld is not None and (out / "realworld.json").exists():
                rcs.update(json.loads((out / "realworld.json").read_text()))
            got[label] = outputs(out, names + [n for n in rcs if n.startswith("realworld-")], rcs, work)
        report(got, chosen, args.show, say=print)
        print(f"({time.perf_counter() - started:.0f} s; base {base}, head {head}; work folder {work})")
        return 0 if got["base"] == got["head"] else 1
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


def kept_outputs(work: Path) -> dict[str, dict[str, str]]:
    """The normalised outputs of a run kept with --keep (commands that did not finish count as 'not run')."""
    names = [str(j["name"]) for j in json.loads((work / "spec-base.json").read_text())["jobs"]]
    got = {}
    for label in ("base", "head"):
        out = work / "out" / label
        rcs = json.loads((out / "results.json").read_text()) if (out / "results.json").exists() else {}
        if (out / "realworld.json").exists():
            rcs.update(json.loads((out / "realworld.json").read_text()))
        got[label] = outputs(out, names + [n for n in rcs if n.startswith("realworld-")], rcs, work)
    return got


def report(got: dict[str, dict[str, str]], chosen: list[str], show: int, say: Callable[[str], object]) -> None:
    shown = 0
    for name in chosen:
        keys = sorted(k for k in set(got["base"]) | set(got["head"]) if k.startswith(name + "-"))
        differ = [k for k in keys if got["base"].get(k) != got["head"].get(k)]
        say(f"{name}: {len(keys) - len(differ)} identical, {len(differ)} different (of {len(keys)} outputs)")
        for k in differ:
            if shown >= show:
                break
            shown += 1
            diff = difflib.unified_diff(
                got["base"].get(k, "").splitlines(),
                got["head"].get(k, "").splitlines(),
                "base",
                "head",
                lineterm="",
                n=1,
            )
            say(f"  {k}:")
            for line in list(diff)[2:14]:
                say("    " + line[:200])


if __name__ == "__main__":
    sys.exit(main())
