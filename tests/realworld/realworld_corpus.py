"""The real-world regression corpus: published metadata of real public model repos, and what originscan must say.

Each tests/realworld/cases/*.yaml holds one repo:

    repo:    the id it is published under (owner/name); the scan sees this name, as an hf: scan would
    kind:    vendor | derivative | problem
    source:  where every file was read: {repo: a public GitHub copy, files: {path: commit}} (copies of Hub repos
             keep the Hub's files; `hub_path` says where a file sits on the Hub when the copy moved it)
    files:   the files as published: front matter, config keys and token ids exact; prose cut to the lines that
             matter for licensing (a mapping is written as JSON)
    base_cards: {hub id: card text}: the cards of declared bases, for lineage through base cards (offline)
    partial: true when only some of the repo's files were copied (usually the card): rules that depend on a
             file being absent (LICENSE, NOTICE, use policy, licence text elsewhere) are then not scored
    expect:  {rule id: the licence clause or fact behind it}: every finding the repo must get
    unscored: why the right answer is debatable (the case is run, not scored)
    known_miss: why originscan still gets this case wrong (scored and counted; the test tolerates it, and fails
             once the case comes right so that the note is removed)

Scoring compares rule ids of active findings, except the informational config.upstream_signature (a lineage
display, not a compliance finding). Runs against any originscan revision that has scanner.pipeline.build_context
(used to measure the corpus before and after a change).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

CASES = Path(__file__).resolve().parent / "cases"
NOT_SCORED = {"config.upstream_signature"}
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


@dataclass
class Result:
    case: Case
    got: set[str]
    messages: list[str]

    @property
    def false_negatives(self) -> set[str]:
        return set(self.case.expect) - self.got

    @property
    def false_positives(self) -> set[str]:
        return self.got - set(self.case.expect)

    @property
    def right(self) -> bool:
        return not self.false_negatives and not self.false_positives


def load_cases() -> list[Case]:
    out = []
    for p in sorted(CASES.glob("*.yaml")):
        try:
            raw = yaml.safe_load(p.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ValueError(f"{p.name}: {exc}") from None
        files = {
            name: (json.dumps(v, indent=2) if isinstance(v, (dict, list)) else str(v))
            for name, v in (raw.get("files") or {}).items()
        }
        out.append(
            Case(
                p,
                raw["repo"],
                raw.get("kind", ""),
                files,
                dict(raw.get("expect") or {}),
                dict(raw.get("base_cards") or {}),
                raw.get("unscored"),
                bool(raw.get("partial")),
                raw.get("known_miss"),
            )
        )
    return out


def scan_case(case: Case, workdir: Path) -> Result:
    from scanner.checks.engine import run_checks
    from scanner.evidence.card import read_card
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

    def fetch_card(repo_id: str):
        text = case.base_cards.get(repo_id)
        return (
            None
            if text is None
            else read_card(Snapshot(target=f"hf:{repo_id}", kind="hf", name=repo_id, texts={"README.md": text}))
        )

    ctx = build_context(snap, Policy())
    if hasattr(ctx, "fetch_card"):
        ctx.fetch_card = fetch_card
    findings = [f for f in run_checks(ctx) if not getattr(f, "suppressed", False)]
    ignored = NOT_SCORED | (FILE_DEPENDENT if case.partial else set())
    got = {f.rule for f in findings if f.rule not in ignored}
    return Result(case, got, [f"{f.rule}: {f.message}" for f in findings])


def run_corpus(workdir: Path) -> tuple[list[Result], str]:
    results = [scan_case(c, workdir) for c in load_cases()]
    scored = [r for r in results if not r.case.unscored]
    fn = sum(len(r.false_negatives) for r in scored)
    fp = sum(len(r.false_positives) for r in scored)
    line = (
        f"real-world: {sum(r.right for r in scored)}/{len(scored)} repos fully right, {fn} false negatives, "
        f"{fp} false positives ({len(results) - len(scored)} unscored)"
    )
    return results, line


if __name__ == "__main__":  # python tests/realworld/realworld_corpus.py [-v]: the totals (and every miss with -v)
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        results, line = run_corpus(Path(tmp))
    if "-v" in sys.argv:
        for r in results:
            if not r.right:
                print(
                    f"{r.case.path.stem}{' (unscored)' if r.case.unscored else ''}: "
                    f"FN {sorted(r.false_negatives)} FP {sorted(r.false_positives)}"
                )
                if "-vv" in sys.argv:
                    print("   " + "\n   ".join(r.messages))
    print(line)
