#!/usr/bin/env python
"""The probe on GGUF files: the benchmark's tiny Llamas converted to GGUF Q8_0, run through each GGUF runtime.

    bench/.venv-probe/bin/python bench/probe/make_models.py     # once: the tiny Llamas (bench/.cache/probe)
    bench/.venv-probe/bin/python bench/probe/gguf_runtimes.py   # converts them, prints the tables

Every derivative and held-out independent of the reference is converted to a GGUF file (Q8_0 where a row fits
its 32-value blocks, else F16, as llama.cpp's converter does; tests/hf_to_gguf.py) and probed as a GGUF file
against the safetensors reference, calibrated on the 8 null models of run.py as they are published (safetensors):
the owner's reference and independents need not be GGUF for a GGUF suspect. Side by side, the same pairs from the
safetensors files, so what the conversion and the runtime change is visible: the verdict, p-value, the tests that
ran, and per pair the `originscan probe SUSPECT REFERENCE` command's wall time, CPU seconds and peak memory in a
child process (2 threads). Runtimes: transformers' GGUF loader always; llama.cpp when llama-cpp-python is
installed in this venv (it is not an originscan dependency: PyPI has no wheel of it, pip compiles llama.cpp).
The held-out split is run.py's (independent_5..8), fixed before anything was tuned.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(REPO / "tests"))

import gguf  # noqa: E402
from common import child, fmt_p  # noqa: E402
from hf_to_gguf import hf_llama_to_gguf  # noqa: E402

from scanner.provenance import behaviour as B  # noqa: E402
from scanner.provenance.canaries import read_canary_file  # noqa: E402
from scanner.provenance.probe import ProbeSettings, measure, probe_texts, tests_of  # noqa: E402

ROOT = REPO / "bench" / ".cache" / "probe"
NULL = [f"independent_{i}" for i in (1, 2, 3, 4, 9, 10, 11, 12)]
HELD_OUT = [f"independent_{i}" for i in (5, 6, 7, 8)]
SUSPECTS = ["ft_light", "ft_heavy", "distill_logits", "distill_logits_canary", "distill_narrow", "distill_samples"]


def main() -> None:
    import torch

    torch.set_num_threads(2)
    info = json.loads((ROOT / "models.json").read_text())
    canaries = read_canary_file(ROOT / "canaries.json")
    kinds = {n: info[n]["kind"] for n in SUSPECTS + HELD_OUT}
    out = ROOT / "_gguf"
    files = {}
    for name in ["reference", *kinds]:
        files[name] = out / f"{name}-Q8_0.gguf"
        if not files[name].exists():
            hf_llama_to_gguf(ROOT / name, files[name], gguf.GGMLQuantizationType.Q8_0)
    runtimes = ["transformers"] + (["llama.cpp"] if importlib.util.find_spec("llama_cpp") else [])
    settings = ProbeSettings()
    texts = probe_texts(settings)
    st = {n: measure(str(ROOT / n), texts, canaries, settings) for n in ["reference", *NULL, *kinds]}
    ref, nulls = st["reference"], [st[n] for n in NULL]
    as_gguf = {
        rt: {n: measure(str(files[n]), texts, canaries, settings, gguf_runtime=rt) for n in ["reference", *kinds]}
        for rt in runtimes
    }

    def verdict(b) -> B.BehaviourVerdict:
        return B.verdict_of(b.target, "reference", tests_of(b, ref, nulls, canaries))

    columns = {"safetensors": {n: verdict(st[n]) for n in kinds}}
    for rt in runtimes:
        columns[f"GGUF Q8_0, {rt}"] = {n: verdict(as_gguf[rt][n]) for n in kinds}
    print(f"\n## GGUF suspects against the safetensors reference; null: {', '.join(NULL)} (safetensors)\n")
    print("| model | kind | " + " | ".join(f"{c}: verdict (p), tests" for c in columns) + " |")
    print("|---|---|" + "---|" * len(columns))
    short = {"idiosyncratic-agreement": "agree", "hidden-state-cka": "cka", "canaries": "canary"}
    for n, kind in kinds.items():
        cells = []
        for col in columns.values():
            v = col[n]
            tests = " ".join(f"{short.get(t.name, t.name)} {fmt_p(t.p_value)}" for t in v.tests)
            cells.append(f"{v.verdict} ({fmt_p(v.p_value)}); {tests}")
        print(f"| {n} | {'held-out independent' if n in HELD_OUT else kind} | " + " | ".join(cells) + " |")
    print(f"\n## Recall at the verdict's false-positive rate (alpha = {B.ALPHA:g})\n")
    print("| derivation kind | pairs | " + " | ".join(columns) + " |")
    print("|---|---|" + "---|" * len(columns))
    for kind in dict.fromkeys(kinds[n] for n in SUSPECTS):
        group = [n for n in SUSPECTS if kinds[n] == kind]
        cells = [f"{sum(col[n].verdict == 'derived' for n in group)}/{len(group)}" for col in columns.values()]
        print(f"| {kind} | {len(group)} | " + " | ".join(cells) + " |")
    cells = [f"{sum(col[n].verdict == 'derived' for n in HELD_OUT)}/{len(HELD_OUT)}" for col in columns.values()]
    print(f"| false positives, held-out independents | {len(HELD_OUT)} | " + " | ".join(cells) + " |")

    agree = {}
    for rt in runtimes:  # how close the runtime's guesses are to the safetensors model's, position by position
        same = [
            float((as_gguf[rt][n].guesses == st[n].guesses)[st[n].guesses >= 0].mean())
            for n in ["reference", *kinds]
            if as_gguf[rt][n].same_tokens(st[n])
        ]
        agree[rt] = f"{min(same):.3f}-{max(same):.3f} over {len(same)} models" if same else "tokens differ"
    print("\nnext-token guesses equal to the safetensors model's: " + "; ".join(f"{k} {v}" for k, v in agree.items()))

    print("\n## One pair as a command (ft_light against the reference, no null models): wall s / CPU s / peak MiB\n")
    py = sys.executable
    pair_st = [py, "-m", "scanner.cli", "-q", "probe", str(ROOT / "ft_light"), str(ROOT / "reference")]
    cost = {"safetensors": child(pair_st, 2)[1:]}
    for rt in runtimes:
        gguf_pair = [py, "-m", "scanner.cli", "-q", "probe", str(files["ft_light"]), str(files["reference"])]
        cost[f"GGUF Q8_0, {rt}"] = child([*gguf_pair, "--gguf-runtime", rt], 2)[1:]
    for k, (wall, cpu, mib) in cost.items():
        print(f"  {k:24s} {wall:6.1f} s  {cpu:6.1f} CPU s  {mib:6.0f} MiB")
    sizes = {n: files[n].stat().st_size for n in ("reference", "ft_light")}
    print(f"  (GGUF files: reference {sizes['reference']:,} bytes, ft_light {sizes['ft_light']:,} bytes)")


if __name__ == "__main__":
    main()
