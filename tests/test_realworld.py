"""The real-world corpus (tests/realworld/): published metadata of real model repos and the findings they must get."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "realworld"))

from realworld_corpus import load_cases, run_corpus  # noqa: E402


def test_the_corpus_is_large_and_every_case_is_sourced():
    cases = load_cases()
    assert len(cases) >= 60, f"the corpus must hold at least 60 real repos, as issue #9 asks (has {len(cases)})"
    kinds = {c.kind for c in cases}
    assert {"vendor", "derivative", "problem"} <= kinds
    for c in cases:
        raw = c.path.read_text(encoding="utf-8")
        assert "source:" in raw and "files:" in raw, f"{c.path.name}: no source"
        assert all(len(v) >= 7 for v in _commits(raw)), f"{c.path.name}: a source file without its commit"
        for rule, clause in c.expect.items():
            assert clause and clause.strip(), f"{c.path.name}: {rule} has no clause or fact behind it"


def _commits(raw: str) -> list[str]:
    import re

    return re.findall(r":\s*([0-9a-f]{40})\b", raw)


def test_real_world_repos_get_their_findings(tmp_path, capsys):
    results, line = run_corpus(tmp_path)
    with capsys.disabled():
        print(f"\n{line}")
    wrong = [r for r in results if not r.case.unscored and not r.right and not r.case.known_miss]
    healed = [r.case.path.name for r in results if r.case.known_miss and r.right]
    assert not wrong, "\n".join(
        f"{r.case.path.name}: missing {sorted(r.false_negatives)}, unexpected {sorted(r.false_positives)}"
        for r in wrong
    )
    assert not healed, f"now right, remove their known_miss note: {healed}"
