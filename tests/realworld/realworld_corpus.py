"""The real-world regression corpus: published metadata of real public model repos, and what originscan must say.

Four sets, each a folder of one-repo case files: `cases/*.yaml` (the original corpus), `cases/shared-2026-11/`
(the 44 repos of the shared set realworld-2026-11, converted), `cases/issue-20/` (repos collected for issue #20,
scored once before any tuning on them) and `cases/datasets/` (issue #25: repos that declare their training data).
The training-data rules (DATA_RULES) are scored in the datasets set only, and that set scores nothing else: the
other sets' expectations were written before those rules existed and say nothing about training data, and the
datasets set's say nothing else. Each case file holds one repo:

    repo:    the id it is published under (owner/name); the scan sees this name, as an hf: scan would
    kind:    vendor | derivative | problem
    source:  where every file was read: {repo: a public GitHub copy, files: {path: commit}} (copies of Hub repos
             keep the Hub's files; `hub_path` says where a file sits on the Hub when the copy moved it)
    files:   the files as published: front matter, config keys and token ids exact; prose cut to the lines that
             matter for licensing (a mapping is written as JSON)
    base_cards: {hub id: card text}: the cards of declared bases, for lineage through base cards (offline)
    dataset_cards: {hub id: card text}: the cards of its datasets as the Hub serves them (offline), for the
             datasets set
    partial: true when only some of the repo's files were copied (usually the card): rules that depend on a
             file being absent (LICENSE, NOTICE, use policy, licence text elsewhere) are then not scored (in
             must_not_fire scoring the lists already leave out what a partial copy cannot tell)
    blobs:   {file: git blob sha1}: files copied whole, byte for byte; the test checks each against its sha1
    class, why, shared: the repo's class (issue #20's taxonomy), the licence facts behind its expectations, and the
             shared-set case it reconciles with (informational)
    not_scored: {rule id: why}: rules this copy cannot decide (say, a licence file the index does not hold): left
             out of the findings and of the expectations
    expect:  {rule id: the licence clause or fact behind it}: every finding the repo must get
    must_not_fire: [rule ids or globs such as license.*]: when present, the case is scored the shared set's way:
             an `expect` rule (or glob) that does not fire is a false negative, a finding matching must_not_fire is
             a false positive, and every other finding is left unscored. Without it, the findings must be exactly
             `expect` (every other finding is a false positive).
    disputed: {rule id: why, with the clause}: an expectation kept as the shared set states it, though we think
             it wrong on the facts (scored as stated; its misses are listed apart)
    unscored: why the right answer is debatable (the case is run, not scored)
    known_miss: why originscan still gets this case wrong (scored and counted; the test tolerates it, and fails
             once the case comes right so that the note is removed)

Scoring compares rule ids of active findings, except the informational config.upstream_signature (a lineage
display, not a compliance finding). Runs against any originscan revision that has scanner.pipeline.build_context
(used to measure the corpus before and after a change).

The corpus is split, by a rule fixed before any tuning (issue #20), into a *tuning* half and a *held-out* half: a case
is held out when the SHA-256 of its lower-cased Hub id, read as an integer, is odd. Changes are tuned on the tuning
half only; both halves are reported, held-out first.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path

import yaml

CASES = Path(__file__).resolve().parent / "cases"
HALVES = ("held-out", "tuning")  # reporting order: held-out first
SETS = ("original", "shared-2026-11", "issue-20", "datasets")  # original in cases/ itself, the others in subfolders
NOT_SCORED = {"config.upstream_signature"}
DATA_RULES = ("license.data_*", "attribution.data_*")  # issue #25's training-data rules: the datasets set only
# What a partial copy cannot tell: whether the repo ships a licence text, a Notice, a use policy or a phrase elsewhere.
FILE_DEPENDENT = {
    "card.missing",
    "license.missing",
    "license.copy_missing",
    "license.notice_missing",
    "license.use_restrictions_missing",
    "license.card_file_mismatch",
    "attribution.phrase_missing",
}


@dataclass
class Case:
    path: Path
    repo: str
    kind: str
    files: dict[str, str]
    expect: dict[str, str]
    base_cards: dict[str, str] = field(default_factory=dict)
    unscored: str | None = None
    partial: bool = False
    known_miss: str | None = None
    must_not_fire: tuple[str, ...] | None = None  # None: exact-set scoring
    disputed: dict[str, str] = field(default_factory=dict)
    corpus: str = "original"
    blobs: dict[str, str] = field(default_factory=dict)
    not_scored: dict[str, str] = field(default_factory=dict)
    dataset_cards: dict[str, str] = field(default_factory=dict)

    @property
    def half(self) -> str:
        return half_of(self.repo)


def half_of(repo_id: str) -> str:
    """The fixed split of issue #20: the parity of the SHA-256 of the lower-cased Hub id (odd: held out)."""
    return "held-out" if int(hashlib.sha256(repo_id.lower().encode()).hexdigest(), 16) % 2 == 1 else "tuning"


@dataclass
class Result:
    case: Case
    got: set[str]
    messages: list[str]

    @property
    def false_negatives(self) -> set[str]:
        wanted = set(self.case.expect) - set(self.case.not_scored)
        return {want for want in wanted if not any(fnmatchcase(rule, want) for rule in self.got)}

    @property
    def false_positives(self) -> set[str]:
        if self.case.must_not_fire is None:  # exact: whatever `expect` does not name (or match) is unexpected
            return {rule for rule in self.got if not any(fnmatchcase(rule, want) for want in self.case.expect)}
        return {rule for rule in self.got if any(fnmatchcase(rule, bad) for bad in self.case.must_not_fire)}

    @property
    def disputed_misses(self) -> set[str]:
        return (self.false_negatives | self.false_positives) & set(self.case.disputed)

    @property
    def right(self) -> bool:
        return not self.false_negatives and not self.false_positives


def load_cases(half: str | None = None, corpus: str | None = None) -> list[Case]:
    """Every case, or only those of one half ("tuning" or "held-out") and/or one set (see SETS)."""
    if half is not None and half not in HALVES:
        raise ValueError(f"half must be one of {HALVES}, not {half!r}")
    if corpus is not None and corpus not in SETS:
        raise ValueError(f"set must be one of {SETS}, not {corpus!r}")
    out = []
    for name in SETS:
        if corpus in (None, name):
            folder = CASES if name == "original" else CASES / name
            out += [_load_case(p, name) for p in sorted(folder.glob("*.yaml"))]
    return [c for c in out if half is None or c.half == half]


def _load_case(p: Path, corpus: str) -> Case:
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValueError(f"{p.name}: {exc}") from None
    files = {
        name: (json.dumps(v, indent=2) if isinstance(v, (dict, list)) else str(v))
        for name, v in (raw.get("files") or {}).items()
    }
    must_not_fire = raw.get("must_not_fire")
    return Case(
        p,
        raw["repo"],
        raw.get("kind", ""),
        files,
        dict(raw.get("expect") or {}),
        dict(raw.get("base_cards") or {}),
        raw.get("unscored"),
        bool(raw.get("partial")),
        raw.get("known_miss"),
        None if must_not_fire is None else tuple(must_not_fire),
        dict(raw.get("disputed") or {}),
        corpus,
        dict(raw.get("blobs") or {}),
        dict(raw.get("not_scored") or {}),
        dict(raw.get("dataset_cards") or {}),
    )


def scan_case(case: Case, workdir: Path) -> Result:
    from scanner.checks.engine import run_checks
    from scanner.evidence.card import CardFacts, read_card
    from scanner.pipeline import build_context
    from scanner.policy import Policy
    from scanner.sources.interface import Snapshot
    from scanner.sources.local import LocalSource

    folder = workdir / case.path.stem
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in case.files.items():
        (folder / name).write_text(text, encoding="utf-8")
    snap = LocalSource(str(folder)).snapshot()
    snap.name = case.repo  # the published id, as a Hub scan names it

    def fetch_card(repo_id: str) -> CardFacts | None:
        text = case.base_cards.get(repo_id)
        return (
            None
            if text is None
            else read_card(Snapshot(target=f"hf:{repo_id}", kind="hf", name=repo_id, texts={"README.md": text}))
        )

    ctx = build_context(snap, Policy())
    if hasattr(ctx, "fetch_card"):
        ctx.fetch_card = fetch_card
    if case.dataset_cards and hasattr(ctx, "fetch_datasets"):
        from scanner.evidence.datasets import HubDatasetCard, card_from_text

        def fetch_dataset(dataset_id: str) -> HubDatasetCard | None:
            text = case.dataset_cards.get(dataset_id)
            return None if text is None else card_from_text(dataset_id, text)

        ctx.fetch_datasets = fetch_dataset
    findings = [f for f in run_checks(ctx) if not getattr(f, "suppressed", False)]
    # A partial copy leaves file-dependent rules unscored in exact scoring; listed scoring names what it scores.
    ignored = (
        NOT_SCORED | set(case.not_scored) | (FILE_DEPENDENT if case.partial and case.must_not_fire is None else set())
    )
    data = case.corpus == "datasets"
    got = {
        f.rule for f in findings if f.rule not in ignored and any(fnmatchcase(f.rule, r) for r in DATA_RULES) == data
    }
    return Result(case, got, [f"{f.rule}: {f.message}" for f in findings])


def summarise(results: list[Result], label: str = "real-world") -> str:
    """One line of totals: repos fully right, false negatives, false positives and false alarms per 40 repos
    (unscored cases left out)."""
    scored = [r for r in results if not r.case.unscored]
    fn = sum(len(r.false_negatives) for r in scored)
    fp = sum(len(r.false_positives) for r in scored)
    rate = f"{40 * fp / len(scored):.1f}" if scored else "-"
    return (
        f"{label}: {sum(r.right for r in scored)}/{len(scored)} repos fully right, {fn} false negatives, "
        f"{fp} false positives ({rate} per 40 repos) ({len(results) - len(scored)} unscored)"
    )


def run_corpus(workdir: Path, half: str | None = None, corpus: str | None = None) -> tuple[list[Result], str]:
    """Scan every case (or one half, one set); the summary has a line per set with each half's totals, held-out
    first, then the set's total."""
    results = [scan_case(c, workdir) for c in load_cases(half, corpus)]
    lines = []
    for name in SETS:
        in_set = [r for r in results if r.case.corpus == name]
        if not in_set:
            continue
        parts = [summarise([r for r in in_set if r.case.half == h], h) for h in HALVES if half in (None, h)]
        if half is None:
            parts.append(summarise(in_set, "all"))
        lines.append(f"real-world [{name}] " + "; ".join(parts))
    return results, "\n".join(lines)


if __name__ == "__main__":  # python tests/realworld/realworld_corpus.py [-v|-vv] [--half tuning|held-out]
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(description="Score the real-world corpus: totals per half, misses with -v.")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="list every miss (-vv: with findings)")
    parser.add_argument("--half", choices=HALVES, help="score only this half")
    parser.add_argument("--set", choices=SETS, dest="corpus", help="score only this set of cases")
    args = parser.parse_args()
    import scanner  # the revision measured is the one on the path (PYTHONPATH=<worktree> measures another)

    print(f"scanner package: {Path(scanner.__file__).parent}")
    with tempfile.TemporaryDirectory() as tmp:
        results, line = run_corpus(Path(tmp), args.half, args.corpus)
    if args.verbose:
        for name in SETS:
            for h in HALVES:
                misses = [r for r in results if r.case.corpus == name and r.case.half == h and not r.right]
                if misses:
                    print(f"-- {name}, {h} --")
                for r in misses:
                    notes = [n for n, on in (("unscored", r.case.unscored), ("known miss", r.case.known_miss)) if on]
                    disputed = f" (disputed: {sorted(r.disputed_misses)})" if r.disputed_misses else ""
                    print(
                        f"{r.case.path.stem}{''.join(f' ({n})' for n in notes)}: "
                        f"FN {sorted(r.false_negatives)} FP {sorted(r.false_positives)}{disputed}"
                    )
                if args.verbose > 1:
                    print("   " + "\n   ".join(r.messages))
    print(line)
