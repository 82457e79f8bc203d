#!/usr/bin/env python
"""Owner canaries with shared *wrong* answers: the canary test on repeated answers (old) and with the likelihood
test beside it (new: behaviour.canary_likelihood_test).

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
scored leave-one-out. "null 11" adds independent_9-12 (trained for run.py's nulls; no skill).

First, whether each derivative still carries the skill, measured three ways: its share of the private set's
digits read right (greedy), its mean log-probability of the right answers, and how strongly it prefers the private
reference's 9 mistakes to the right answers (mean log P(wrong) - log P(right), nats; the owner's canary file holds
the right answers of its wrong ones). Then the p-values: `old` is the canary test on greedy answers
(behaviour.canary_test: hits, rates pooled per kind, right answers counted model by model); `likelihood` is
behaviour.canary_likelihood_test (the preference, against the independent models no more skilled than the
suspect); `new` is what `probe` decides on the two (Bonferroni: 2 x the smaller, or the old one alone when the
likelihood test has too few peers to vote). Per pair, `originscan probe SUSPECT private_reference --canaries FILE`
(no null) runs in a child process for its wall and CPU seconds and peak memory.

`--replicate` scores the blind replicate instead (make_models.py --replicate: the recipes again with seeds fixed
before any of them was trained) with the same tests and the same null 11, none of whose models is a replicate, and
prints one table: each kept derivative found or missed at alpha, each independent's p-values. Its one run (the
seeds of commit 7fcf453, --scale 1.0): 3 of the 7 new derivatives kept the skill (rep_ft_mid_1/2, rep_ft_light_1;
both new partial students fell just short, 0.41 < 0.44), all 3 found (p new 2.7e-18, 2.7e-09, 2.0e-04; the old
test alone misses rep_ft_light_1 at 0.44); 0/6 false positives (smallest p new of the new independents 0.55).
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
from make_models import N_INDEPENDENT, N_SKILL_INDEPENDENT, REPLICATE, REPLICATE_DERIVATIVES, canary_truth  # noqa: E402

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
NULL_MORE = [f"independent_{i}" for i in (9, 10, 11, 12)]  # "null 11": NULL and these
HELD_OUT = [f"skill_independent_{i}" for i in (4, 5, 6)] + [f"independent_{i}" for i in (5, 6, 7, 8)]
assert N_SKILL_INDEPENDENT == 6 and N_INDEPENDENT >= 12
SETTINGS = ProbeSettings(sequences=3, tokens=4, chars=40)  # the canaries are the test: the probe texts are a token


def combined(p_hits: float | None, p_likelihood: float | None) -> float:
    """What `probe` decides on the two canary tests: Bonferroni over the ones that vote."""
    voting = [p for p in (p_hits, p_likelihood) if p is not None]
    return min(1.0, len(voting) * min(voting)) if voting else 1.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", type=Path, default=REPO / "bench" / ".cache" / "probe")
    ap.add_argument("--no-commands", action="store_true", help="skip the per-pair child processes (time, memory)")
    ap.add_argument("--fresh", action="store_true", help="measure again instead of reusing the cached measurements")
    ap.add_argument("--replicate", action="store_true", help="score the blind replicate (make_models.py --replicate)")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(2)
    root: Path = args.models
    info = json.loads((root / "models.json").read_text())
    canaries: list[Canary] = read_canary_file(root / "private_canaries.json")
    if not any(c.right_answer for c in canaries):
        sys.exit(f"{root / 'private_canaries.json'} has no right answers: delete it and run make_models.py again")
    kinds = [c.correct for c in canaries]
    texts = probe_texts(SETTINGS)
    cache = root / "_measured_private.json"  # per model: greedy answers and log-probabilities of the answers
    measured: dict[str, dict] = json.loads(cache.read_text()) if cache.exists() and not args.fresh else {}
    names = (
        [REFERENCE, *NULL, *NULL_MORE, *REPLICATE]
        if args.replicate
        else [REFERENCE, *DERIVATIVES, *NULL, *NULL_MORE, *HELD_OUT]
    )
    for name in names:
        if name not in measured:
            b = measure(str(root / name), texts, canaries, SETTINGS)
            measured[name] = {
                "answers": list(b.canary_answers),
                "logprobs": list(b.canary_logprobs),
                "right": list(b.right_logprobs),
            }
            cache.write_text(json.dumps(measured, indent=1) + "\n")
    hits = {n: [B.canary_hit(c.answer, a) for c, a in zip(canaries, measured[n]["answers"])] for n in names}
    likelihood = {n: B.canary_likelihood(measured[n]["logprobs"], measured[n]["right"], kinds) for n in names}

    commands_file = root / "_commands_private.json"
    commands = json.loads(commands_file.read_text()) if commands_file.exists() and not args.fresh else {}
    for name in HELD_OUT + DERIVATIVES:
        if args.no_commands or args.replicate or name in commands:
            continue
        cmd = [sys.executable, "-m", "scanner.cli", "-q", "probe", str(root / name), str(root / REFERENCE)]
        cmd += ["--canaries", str(root / "private_canaries.json"), "--sequences", "3", "--tokens", "4", "-f", "json"]
        out, wall, cpu, mib = child(cmd)
        commands[name] = {"verdict": out.get("verdict", "error"), "wall_s": wall, "cpu_s": cpu, "peak_mib": mib}
        commands_file.write_text(json.dumps(commands, indent=1) + "\n")

    def skill(name: str) -> float:
        right = 0
        for c, said in zip(canaries, measured[name]["answers"]):
            digits = [int(x) for x in c.prompt.split()[1:-1]]
            right += sum(a == b for a, b in zip(said.split()[:4], canary_truth(digits).split()))
        return right / (4 * len(canaries))

    def p_values(name: str, null_names: list[str]) -> tuple[float | None, float | None]:
        others = [n for n in null_names if n != name]  # leave-one-out for the null's own models
        p_hits = B.canary_test(hits[name], [hits[n] for n in others], kinds).p_value
        mine = likelihood[name]
        peers = [x for x in (likelihood[n] for n in others) if x is not None]
        p_lik = B.canary_likelihood_test(mine, peers).p_value if mine is not None else None
        return p_hits, p_lik

    ref_skill = skill(REFERENCE)
    n_right, n_wrong = sum(k is True for k in kinds), sum(k is False for k in kinds)
    if args.replicate:
        replicate_table(root, info, hits, likelihood, kinds, skill, ref_skill, p_values)
        return
    rows = []
    for name in HELD_OUT + NULL + NULL_MORE + DERIVATIVES:
        p_hits, p_lik = p_values(name, NULL)
        p_hits11, p_lik11 = p_values(name, NULL + NULL_MORE)
        rows.append(
            {
                "model": name,
                "kind": info[name]["kind"],
                "half": "tuning" if name in NULL + NULL_MORE else "held-out" if name in HELD_OUT else "derivative",
                "kept": name in DERIVATIVES and skill(name) >= 0.5 * ref_skill,
                **measured_fields(name, skill, hits, likelihood, kinds),
                "p_old": p_hits,
                "p_likelihood": p_lik,
                "p_new": combined(p_hits, p_lik),
                "p_old_11": p_hits11,
                "p_likelihood_11": p_lik11,
                "p_new_11": combined(p_hits11, p_lik11),
                **commands.get(name, {}),
            }
        )
    ref_lik = likelihood[REFERENCE]
    print(
        f"\n## Owner canaries of {REFERENCE}: {len(canaries)} prompts, its answers {n_right} right and {n_wrong} wrong "
        f"(digits read right {ref_skill:.2f}"
        + (f"; log P of the right answers {ref_lik.skill:.2f}, preference {ref_lik.preference:+.2f}" if ref_lik else "")
        + ")\n"
    )
    print("null 7 = skill_independent_1-3 + independent_1-4; null 11 adds independent_9-12 (leave-one-out for these)")
    print(
        "\n| model | kind | half | kept | digits right | log P right | preference for its mistakes "
        "| right / wrong repeated | p old, null 7 | p likelihood, null 7 | p new, null 7 | p new, null 11 "
        "| probe wall s / CPU s / MiB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")

    def nats(x: float | None, signed: bool = False) -> str:
        return "—" if x is None else f"{x:+.2f}" if signed else f"{x:.2f}"

    for r in rows:
        cmd = f"{r['wall_s']:.1f} / {r['cpu_s']:.1f} / {r['peak_mib']:.0f}" if "wall_s" in r else "—"
        print(
            f"| {r['model']} | {r['kind']} | {r['half']} | {'kept' if r['kept'] else '—'} | {r['skill']:.2f} "
            f"| {nats(r['log_p_right'])} | {nats(r['preference'], True)} "
            f"| {r['right']}/{n_right} · {r['wrong']}/{n_wrong} | {fmt_p(r['p_old'])} | {fmt_p(r['p_likelihood'])} "
            f"| {fmt_p(r['p_new'])} | {fmt_p(r['p_new_11'])} | {cmd} |"
        )

    print(f"\n## Recall per derivative kind (alpha = {B.ALPHA:g}, and at 0 false positives on the held-out half)\n")
    cols = ("p_old", "p_new", "p_old_11", "p_new_11")
    print("| derivatives | pairs | old, null 7 | new, null 7 | old, null 11 | new, null 11 |")
    print("|---|---|---|---|---|---|")
    held = [r for r in rows if r["half"] == "held-out"]
    tuning = [r for r in rows if r["half"] == "tuning"]
    for label, group in (("held-out", held), ("tuning", tuning)):
        fp = " | ".join(f"{sum(r[c] < B.ALPHA for r in group)}/{len(group)}" for c in cols)
        print(f"| false positives at alpha, {label} independents | {len(group)} | {fp} |")
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
    print(
        "(each recall cell: at alpha · at 0 false positives, i.e. p below the smallest held-out independent's p, "
        "which is given: a threshold near 1 finds what is no evidence)"
    )
    (root / "results_private.json").write_text(json.dumps(rows, indent=1) + "\n")


def measured_fields(name: str, skill, hits: dict, likelihood: dict, kinds: list) -> dict:
    """What a results row says of a model's answers: its skill, its likelihoods and its repeated answers by kind."""
    h, lik = hits[name], likelihood[name]
    return {
        "skill": skill(name),
        "log_p_right": lik.skill if lik else None,
        "preference": lik.preference if lik else None,
        "right": sum(x for x, k in zip(h, kinds) if k is True),
        "wrong": sum(x for x, k in zip(h, kinds) if k is False),
    }


def replicate_table(
    root: Path, info: dict, hits: dict, likelihood: dict, kinds: list, skill, ref_skill: float, p_values
) -> None:
    """The blind replicate, scored once against null 11: "kept" (the rule above) is read from the greedy answers,
    the same measurement as make_models.py's skill accuracy printed when each model was built."""
    n_right, n_wrong = sum(k is True for k in kinds), sum(k is False for k in kinds)
    print(f"\n## Blind replicate against null 11 (alpha = {B.ALPHA:g}; kept: digits right >= {0.5 * ref_skill:.3f})\n")
    print(
        "| model | recipe repeated | seed | kind | kept | digits right | log P right | preference for its mistakes "
        "| right / wrong repeated | p old | p likelihood | p new | verdict at alpha |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for name, (recipe, seed) in REPLICATE.items():
        lik = likelihood[name]
        p_hits, p_lik = p_values(name, NULL + NULL_MORE)
        p_new = combined(p_hits, p_lik)
        derivative = name in REPLICATE_DERIVATIVES
        kept = derivative and skill(name) >= 0.5 * ref_skill
        derived = p_new < B.ALPHA
        if derivative:
            verdict = (
                ("found" if derived else "missed")
                if kept
                else ("derived" if derived else "not derived") + " (lost the skill)"
            )
        else:
            verdict = "FALSE POSITIVE" if derived else "not derived"
        row = {
            "model": name,
            "recipe": recipe,
            "seed": seed,
            "kind": info[name]["kind"],
            "kept": kept,
            **measured_fields(name, skill, hits, likelihood, kinds),
            "p_old": p_hits,
            "p_likelihood": p_lik,
            "p_new": p_new,
            "verdict": verdict,
        }
        rows.append(row)
        print(
            f"| {name} | {recipe} | {seed} | {row['kind']} | {'kept' if kept else '—'} | {row['skill']:.2f} "
            f"| {'—' if lik is None else f'{lik.skill:.2f}'} | {'—' if lik is None else f'{lik.preference:+.2f}'} "
            f"| {row['right']}/{n_right} · {row['wrong']}/{n_wrong} | {fmt_p(p_hits)} | {fmt_p(p_lik)} | {fmt_p(p_new)} "
            f"| {verdict} |"
        )
    kept_rows = [r for r in rows if r["kept"]]
    independents = [r for r in rows if r["model"] not in REPLICATE_DERIVATIVES]
    print(
        f"\nkept derivatives found: {sum(r['p_new'] < B.ALPHA for r in kept_rows)}/{len(kept_rows)}; "
        f"false positives on the new independents: {sum(r['p_new'] < B.ALPHA for r in independents)}/{len(independents)}"
    )
    (root / "results_replicate.json").write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
