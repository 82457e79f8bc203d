#!/usr/bin/env python
"""Owner canaries with shared *wrong* answers: the canary test before and after it weighed them by kind.

    bench/.venv-probe/bin/python bench/probe/make_models.py    # once: trains the models (bench/.cache/probe)
    bench/.venv-probe/bin/python bench/probe/wrong_answers.py  # prints the tables (make bench-probe runs both)

The private reference learned the private skill imperfectly (make_models.py: its training copy misreads some
items), so its owner canaries (private_canaries.json: its own greedy answers) hold right answers and
characteristic wrong ones. Every other model is scored on them:

* its derivatives (fine-tunes, students distilled on its logits), which kept the skill or lost it: "kept" is fixed
  before anything is measured as a share of the private set's digits read right of at least half the private
  reference's (the rule of run.py);
* independent models that learned the same skill from the correct private set (skill_independent_*): they repeat
  the right answers, not the mistakes; and independent models without the skill (independent_*).

Held out (the false-positive test, never in a null; fixed in make_models.py before anything ran):
skill_independent_4-6 and independent_5-8. The null is skill_independent_1-3 and independent_1-4; those are
scored leave-one-out. Each test runs with no null (every canary a coin flip) and with that null, before
(`before`: the count of hits against rates pooled over all canaries, the statistic up to this change) and after
(`after`: rates pooled per kind, right or wrong, and the summed surprisal of the hits:
scanner/provenance/behaviour.canary_test). Per pair, `originscan probe SUSPECT private_reference --canaries FILE`
runs in a child process for its wall and CPU seconds and peak memory.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from scanner.provenance import behaviour as B  # noqa: E402
from scanner.provenance.canaries import Canary, read_canary_file  # noqa: E402
from scanner.provenance.probe import ProbeSettings, measure, probe_texts  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import child, fmt_p  # noqa: E402
from make_models import N_INDEPENDENT, N_SKILL_INDEPENDENT, canary_truth  # noqa: E402

REFERENCE = "private_reference"
DERIVATIVES = [
    "private_ft_light",
    "private_ft_heavy",
    "private_distill_canary",
    "private_distill_sparse",
    "private_distill_logits",
    "private_distill_partial",  # these two were trained after the first run (it had two derivatives that kept it)
    "private_ft_mid",
]
NULL = [f"skill_independent_{i}" for i in (1, 2, 3)] + [f"independent_{i}" for i in (1, 2, 3, 4)]
HELD_OUT = [f"skill_independent_{i}" for i in (4, 5, 6)] + [f"independent_{i}" for i in (5, 6, 7, 8)]
assert N_SKILL_INDEPENDENT == 6 and N_INDEPENDENT >= 8
SETTINGS = ProbeSettings(sequences=3, tokens=4, chars=40)  # the canaries are the test: the probe texts are a token


def before(hits: list[bool], null_hits: list[list[bool]]) -> float:
    """The canary p-value as computed before this change: the count of hits, rates pooled over all canaries."""
    return B.poisson_binomial_sf(sum(hits), B.canary_null_rates(null_hits, len(hits)))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", type=Path, default=REPO / "bench" / ".cache" / "probe")
    ap.add_argument("--no-commands", action="store_true", help="skip the per-pair child processes (time, memory)")
    ap.add_argument("--fresh", action="store_true", help="measure again instead of reusing the cached answers")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(2)
    root: Path = args.models
    info = json.loads((root / "models.json").read_text())
    canaries: list[Canary] = read_canary_file(root / "private_canaries.json")
    kinds = [c.correct for c in canaries]
    texts = probe_texts(SETTINGS)
    cache = root / "_answers_private.json"
    answers: dict[str, list[str]] = json.loads(cache.read_text()) if cache.exists() and not args.fresh else {}
    names = [REFERENCE, *DERIVATIVES, *NULL, *HELD_OUT]
    for name in names:
        if name not in answers:
            answers[name] = list(measure(str(root / name), texts, canaries, SETTINGS).canary_answers)
            cache.write_text(json.dumps(answers, indent=1) + "\n")
    hits = {n: [B.canary_hit(c.answer, a) for c, a in zip(canaries, answers[n])] for n in names}

    commands_file = root / "_commands_private.json"
    commands = json.loads(commands_file.read_text()) if commands_file.exists() and not args.fresh else {}
    for name in DERIVATIVES + HELD_OUT:
        if args.no_commands or name in commands:
            continue
        cmd = [sys.executable, "-m", "scanner.cli", "-q", "probe", str(root / name), str(root / REFERENCE)]
        cmd += ["--canaries", str(root / "private_canaries.json"), "--sequences", "3", "--tokens", "4", "-f", "json"]
        out, wall, cpu, mib = child(cmd)
        commands[name] = {"verdict": out.get("verdict", "error"), "wall_s": wall, "cpu_s": cpu, "peak_mib": mib}
        commands_file.write_text(json.dumps(commands, indent=1) + "\n")

    def skill(name: str) -> float:
        right = 0
        for c, said in zip(canaries, answers[name]):
            digits = [int(x) for x in c.prompt.split()[1:-1]]
            right += sum(a == b for a, b in zip(said.split()[:4], canary_truth(digits).split()))
        return right / (4 * len(canaries))

    ref_skill = skill(REFERENCE)
    n_right, n_wrong = sum(k is True for k in kinds), sum(k is False for k in kinds)
    rows = []
    for name in DERIVATIVES + NULL + HELD_OUT:
        null = [hits[n] for n in NULL if n != name]  # leave-one-out for the null's own models
        h = hits[name]
        kind = info[name]["kind"]
        rows.append(
            {
                "model": name,
                "kind": kind,
                "half": "tuning" if name in NULL else "held-out" if name in HELD_OUT else "derivative",
                "kept": name in DERIVATIVES and skill(name) >= 0.5 * ref_skill,
                "skill": skill(name),
                "right": sum(x for x, k in zip(h, kinds) if k is True),
                "wrong": sum(x for x, k in zip(h, kinds) if k is False),
                "p_before_none": before(h, []),
                "p_after_none": B.canary_test(h, [], kinds).p_value,
                "p_before": before(h, null),
                "p_after": B.canary_test(h, null, kinds).p_value,
                **commands.get(name, {}),
            }
        )

    print(
        f"\n## Owner canaries of {REFERENCE}: {len(canaries)} prompts, its answers {n_right} right and {n_wrong} wrong "
        f"(skill {ref_skill:.2f})\n"
    )
    print(
        "null: none = every canary a coin flip; 7 = skill_independent_1-3 + independent_1-4 (leave-one-out for those)"
    )
    print(
        "\n| model | kind | half | kept | skill | right / wrong answers repeated | p none, before | p none, after "
        "| p null 7, before | p null 7, after | probe wall s / CPU s / MiB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        cmd = f"{r['wall_s']:.1f} / {r['cpu_s']:.1f} / {r['peak_mib']:.0f}" if "wall_s" in r else "—"
        print(
            f"| {r['model']} | {r['kind']} | {r['half']} | {'kept' if r['kept'] else '—'} | {r['skill']:.2f} "
            f"| {r['right']}/{n_right} · {r['wrong']}/{n_wrong} | {fmt_p(r['p_before_none'])} "
            f"| {fmt_p(r['p_after_none'])} | {fmt_p(r['p_before'])} | {fmt_p(r['p_after'])} | {cmd} |"
        )

    print(f"\n## Recall per derivative kind (alpha = {B.ALPHA:g}, and at 0 false positives on the held-out half)\n")
    print(
        "| derivatives | pairs | "
        + " | ".join(f"{c}" for c in ("none before", "none after", "null before", "null after"))
        + " |"
    )
    print("|---|---|---|---|---|---|")
    held = [r for r in rows if r["half"] == "held-out"]
    tuning = [r for r in rows if r["half"] == "tuning"]
    cols = ("p_before_none", "p_after_none", "p_before", "p_after")
    groups = {
        "fine-tune, kept the skill": [r for r in rows if r["kind"] == "fine-tune" and r["kept"]],
        "distilled, kept the skill": [r for r in rows if r["kind"] == "distilled" and r["kept"]],
        "lost the skill (any kind)": [r for r in rows if r["half"] == "derivative" and not r["kept"]],
    }

    def cell(group: list[dict], col: str) -> str:
        at_alpha = sum(r[col] < B.ALPHA for r in group)
        zero_fp = min(r[col] for r in held)  # the largest threshold with no held-out false positive
        at_zero = sum(r[col] < zero_fp for r in group)
        return f"{at_alpha}/{len(group)} · {at_zero}/{len(group)} (p < {zero_fp:.2g})"

    for label, group in groups.items():
        print(f"| {label} | {len(group)} | " + " | ".join(cell(group, c) for c in cols) + " |")
    for label, group in (("held-out", held), ("tuning", tuning)):
        fp = " | ".join(f"{sum(r[c] < B.ALPHA for r in group)}/{len(group)}" for c in cols)
        print(f"| false positives at alpha, {label} independents | {len(group)} | {fp} |")
    print(
        "(each recall cell: at alpha · at 0 false positives, i.e. p below the smallest held-out independent's p, "
        "which is given: a threshold near 1 finds what is no evidence)"
    )
    (root / "results_private.json").write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
