#!/usr/bin/env python
"""Behavioural provenance benchmark: `originscan probe` side by side with the weight comparison on the same pairs.

    bench/.venv-probe/bin/python bench/probe/make_models.py   # once: trains the tiny models (bench/.cache/probe)
    bench/.venv-probe/bin/python bench/probe/run.py            # prints the tables (make bench-probe does both)

Every pair is (model, reference). False positives are counted on independent_5..8, never part of a null: a split
fixed in make_models.py before anything was looked at (the verdict's 1e-3 is the module constant behaviour.ALPHA,
not tuned here). The null was first independent_1..4; the first run showed that four null models cap a p-value
near 1e-3 (a Student-t with 3 degrees of freedom), so independent_9..12 were trained afterwards and the tables are
printed for both nulls, 4 and 8 models (5..8 stay held out in both). The tuning half is reported too,
leave-one-out (each null model against a null of the others). Per pair it also runs the real commands in a child process each, for their
wall time and peak memory: `originscan probe` (the suspect and the reference, no null models) and
`originscan compare`, the latter with the project's own venv (.venv) when present.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from scanner.provenance import behaviour as B  # noqa: E402
from scanner.provenance.canaries import read_canary_file  # noqa: E402
from scanner.provenance.probe import Behaviour, ProbeSettings, measure, probe_texts, tests_of  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import child, fmt_p  # noqa: E402
from make_models import canary_truth  # noqa: E402

HELD_OUT = [f"independent_{i}" for i in (5, 6, 7, 8)]  # never in a null: the false-positive test
NULL_SETS = {  # how many independent models the user passes as --null decides how small a p-value can get
    "4 null models (independent_1-4)": [f"independent_{i}" for i in (1, 2, 3, 4)],
    "8 null models (independent_1-4, 9-12)": [f"independent_{i}" for i in (1, 2, 3, 4, 9, 10, 11, 12)],
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", type=Path, default=REPO / "bench" / ".cache" / "probe")
    ap.add_argument("--no-commands", action="store_true", help="skip the per-pair child processes (time, memory)")
    ap.add_argument("--fresh", action="store_true", help="measure again instead of reusing bench/.cache/probe/_*")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(2)
    root: Path = args.models
    info = json.loads((root / "models.json").read_text())
    # The shared-wrong-answers family (another reference, its derivatives, models trained on the private set) is
    # bench/probe/wrong_answers.py's: here the canary set is private to the reference.
    info = {k: v for k, v in info.items() if not k.startswith(("private_", "skill_independent_"))}
    canaries = read_canary_file(root / "canaries.json")
    settings = ProbeSettings()
    texts = probe_texts(settings)

    cache = root / "_measured"  # a model's measurement does not change with the statistics: kept between runs
    cache.mkdir(exist_ok=True)
    measured: dict[str, Behaviour] = {}
    for name in info:
        saved = cache / f"{name}.npz"
        if saved.exists() and not args.fresh:
            z = np.load(saved)
            answers = tuple(json.loads(str(z["answers"])))
            measured[name] = Behaviour(name, z["tokens"], z["guesses"], z["pooled"], answers, 0, float(z["seconds"]))
            continue
        b = measure(str(root / name), texts, canaries, settings)
        answers_json = json.dumps(b.canary_answers)
        np.savez(saved, tokens=b.tokens, guesses=b.guesses, pooled=b.pooled, answers=answers_json, seconds=b.seconds)
        measured[name] = b
    commands_file = root / "_commands.json"  # the per-pair commands' verdicts, seconds and memory
    commands = json.loads(commands_file.read_text()) if commands_file.exists() and not args.fresh else {}
    ref = measured["reference"]

    def verdict(name: str, nulls: list[str]) -> B.BehaviourVerdict:
        return B.verdict_of(name, "reference", tests_of(measured[name], ref, [measured[n] for n in nulls], canaries))

    def skill(name: str) -> float:
        """The share of the private set's answer digits the model reads right (chance 0.1): has it the skill?"""
        right = 0
        for c, said in zip(canaries, measured[name].canary_answers):
            digits = [int(x) for x in c.prompt.split()[1:-1]]
            right += sum(a == b for a, b in zip(said.split()[:4], canary_truth(digits).split()))
        return right / (4 * len(canaries))

    for name in info:
        info[name]["skill_accuracy"] = skill(name)
    ref_skill = info["reference"]["skill_accuracy"]
    ind_skill = max(info[n]["skill_accuracy"] for n in info if info[n]["kind"] == "independent")
    for name in info:  # the real commands, once per pair: verdict, seconds and peak memory
        if name == "reference" or args.no_commands or name in commands:
            continue
        venv = REPO / ".venv" / "bin" / "python"
        py = str(venv) if venv.exists() else sys.executable
        pair = [str(root / name), str(root / "reference"), "-f", "json"]
        cv, cs, _, cm = child([py, "-m", "scanner.cli", "compare", *pair])
        _, ps, _, pm = child([sys.executable, "-m", "scanner.cli", "-q", "probe", *pair])
        commands[name] = {"weights": cv.get("verdict", "error"), "weights_p": cv.get("p_value")}
        commands[name].update(compare_s=cs, compare_mib=cm, probe_s=ps, probe_mib=pm)
        commands_file.write_text(json.dumps(commands, indent=1) + "\n")

    def evaluate(calibration: list[str]) -> list[dict]:
        rows = []
        for name in [
            n
            for n in info
            if n != "reference" and (n in calibration or info[n]["kind"] != "independent" or n in HELD_OUT)
        ]:
            kind = info[name]["kind"]
            half = "tuning" if name in calibration else "held-out" if name in HELD_OUT else "derivative"
            v = verdict(name, [n for n in calibration if n != name])  # leave-one-out on the tuning half
            tests = {t.name: t for t in v.tests}
            agreement = tests.get("idiosyncratic-agreement")
            row = {
                "model": name,
                "kind": kind,
                "half": half,
                "behaviour": v.verdict,
                "behaviour_p": v.p_value,
                "agreement": agreement.score if agreement else None,
                "agreement_p": agreement.p_value if agreement else None,
                "cka": tests["hidden-state-cka"].score,
                "cka_p": tests["hidden-state-cka"].p_value,
                "canaries": tests["canaries"].score,
                "canary_p": tests["canaries"].p_value,
                "skill_accuracy": info[name]["skill_accuracy"],
                "kept_skill": kind != "independent"
                and info[name]["skill_accuracy"] >= max(0.5 * ref_skill, ind_skill + 0.1),
                **commands.get(name, {}),
            }
            rows.append(row)
        return rows

    results = {}
    for label, calibration in NULL_SETS.items():
        rows = results[label] = evaluate(calibration)
        print(f"\n## Per pair (suspect vs reference); null: {label}, leave-one-out for those\n")
        print(
            "| model | kind | half | weight verdict (p) | behaviour verdict (p) | wrong-guess agreement (p) | CKA (p) "
            "| canaries hit (p) | skill | probe s / MiB | compare s / MiB |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            agree = "—" if r["agreement"] is None else f"{100 * r['agreement']:.1f} % ({fmt_p(r['agreement_p'])})"
            cmd = (
                f"{r['probe_s']:.1f} / {r['probe_mib']:.0f} | {r['compare_s']:.1f} / {r['compare_mib']:.0f}"
                if "probe_s" in r
                else "— | —"
            )
            print(
                f"| {r['model']} | {r['kind']} | {r['half']} | {r.get('weights', '—')} ({fmt_p(r.get('weights_p'))}) "
                f"| {r['behaviour']} ({fmt_p(r['behaviour_p'])}) | {agree} | {r['cka']:.4f} ({fmt_p(r['cka_p'])}) "
                f"| {100 * r['canaries']:.0f} % ({fmt_p(r['canary_p'])}) | {r['skill_accuracy']:.2f} | {cmd} |"
            )

    print(f"\n## Recall per derivation kind at the verdict's false-positive rate (alpha = {B.ALPHA:g})\n")
    labels = list(NULL_SETS)
    print(
        "| derivation kind | pairs | weight verdict derived | "
        + " | ".join(f"behaviour derived, {x}" for x in labels)
        + " |"
    )
    print("|---|---|---|" + "---|" * len(labels))
    first = results[labels[0]]
    for kind in dict.fromkeys(r["kind"] for r in first if r["kind"] != "independent"):
        group = {x: [r for r in results[x] if r["kind"] == kind] for x in labels}
        n = len(group[labels[0]])
        wd = sum(r.get("weights") == "derived" for r in group[labels[0]])
        cells = " | ".join(f"{sum(r['behaviour'] == 'derived' for r in group[x])}/{n}" for x in labels)
        print(f"| {kind} | {n} | {wd}/{n} | {cells} |")
    for half in ("held-out", "tuning"):
        group = {x: [r for r in results[x] if r["half"] == half] for x in labels}
        wd = sum(r.get("weights") == "derived" for r in group[labels[0]])
        cells = " | ".join(f"{sum(r['behaviour'] == 'derived' for r in group[x])}/{len(group[x])}" for x in labels)
        print(f"| false positives, {half} independents | — | {wd}/{len(group[labels[0]])} | {cells} |")
    for x in labels:
        held = [r for r in results[x] if r["half"] == "held-out"]
        worst = min(r["behaviour_p"] for r in held)
        derived = [r["behaviour_p"] for r in results[x] if r["kind"] == "distilled"]
        print(
            f"{x}: smallest held-out independent p {worst:.2e}; distilled students' p {', '.join(fmt_p(p) for p in derived)}"
        )

    rows = results[labels[-1]]
    held = [r for r in rows if r["half"] == "held-out"]
    kept = [r for r in rows if r["kept_skill"]]
    lost = [r for r in rows if r["kind"] != "independent" and not r["kept_skill"]]
    right = sum(bool(c.correct) for c in canaries)
    print(
        f"\n## Owner canaries ({len(canaries)} prompts, {right} answered right by the reference); null: {labels[-1]}\n"
    )
    print(
        f"skill (share of the private set's digits read right): reference {ref_skill:.2f}, best independent {ind_skill:.2f}"
    )
    found = sum(r["canary_p"] is not None and r["canary_p"] < B.ALPHA for r in kept)
    print(f"derivatives that kept the skill: {len(kept)}; canaries found (p < {B.ALPHA:g}) in {found}")
    for r in kept + lost:
        print(
            f"  {r['model']:24s} kept={r['kept_skill']!s:5s} hits {100 * r['canaries']:5.1f} %  p {fmt_p(r['canary_p'])}"
        )
    fp_c = sum(r["canary_p"] is not None and r["canary_p"] < B.ALPHA for r in held)
    print(f"held-out independents with canaries found: {fp_c}/{len(held)}")
    ref_s = measured["reference"].seconds
    print(
        f"\nmeasuring one model in-process: reference {ref_s:.2f} s ({len(texts)} texts x {settings.tokens} tokens, "
        f"{len(canaries)} canaries, torch threads {torch.get_num_threads()})"
    )
    (root / "results.json").write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
