"""The real-world corpus (tests/realworld/): published metadata of real model repos and the findings they must get."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "realworld"))

from realworld_corpus import Case, Result, half_of, load_cases, run_corpus  # noqa: E402


def test_the_corpus_is_large_and_every_case_is_sourced():
    cases = load_cases()
    assert len(cases) >= 60, f"the corpus must hold at least 60 real repos, as issue #9 asks (has {len(cases)})"
    by_set = {name: sum(c.corpus == name for c in cases) for name in ("shared-2026-11", "issue-20")}
    assert by_set["issue-20"] >= 30, f"issue #20 asks for at least 30 new real repos (has {by_set['issue-20']})"
    assert by_set["shared-2026-11"] >= 30, f"the shared set's repos are missing ({by_set['shared-2026-11']})"
    kinds = {c.kind for c in cases}
    assert {"vendor", "derivative", "problem"} <= kinds
    for c in cases:
        raw = c.path.read_text(encoding="utf-8")
        assert "source:" in raw and "files:" in raw, f"{c.path.name}: no source"
        assert all(len(v) >= 7 for v in _commits(raw)), f"{c.path.name}: a source file without its commit"
        for rule, clause in c.expect.items():
            assert clause and clause.strip(), f"{c.path.name}: {rule} has no clause or fact behind it"


def test_the_split_is_the_fixed_hash_rule_and_both_halves_are_sizeable():
    # Fixed before tuning (issue #20): odd SHA-256 of the lower-cased Hub id is held out; case does not matter.
    assert half_of("meta-llama/Llama-3.2-1B-Instruct") == "held-out"
    assert half_of("google/gemma-2b") == half_of("Google/Gemma-2B") == "tuning"
    cases = load_cases()
    held_out = load_cases("held-out")
    assert {c.path for c in held_out} == {c.path for c in cases if c.half == "held-out"}
    assert len(cases) / 3 <= len(held_out) <= 2 * len(cases) / 3


def test_listed_scoring_scores_only_must_fire_and_must_not_fire_and_exact_scoring_scores_everything():
    def result(got: set[str], must_not_fire: tuple[str, ...] | None) -> Result:
        case = Case(Path("x.yaml"), "a/b", "problem", {}, {"license.copy_missing": "c", "attribution.*": "c"})
        case.must_not_fire = must_not_fire
        return Result(case, got, [])

    listed = result({"attribution.naming", "card.base_model_unverified", "license.incompatible"}, ("license.*",))
    assert listed.false_negatives == {"license.copy_missing"}  # the glob attribution.* is met by attribution.naming
    assert listed.false_positives == {"license.incompatible"}  # card.base_model_unverified is left unscored
    exact = result({"license.copy_missing", "attribution.naming", "card.base_model_unverified"}, None)
    assert not exact.false_negatives and exact.false_positives == {"card.base_model_unverified"}
    assert result({"license.copy_missing", "attribution.phrase_missing"}, ()).right


def test_files_copied_whole_match_their_published_blobs():
    import hashlib

    checked = 0
    for c in load_cases():
        for name, sha1 in c.blobs.items():
            text = c.files[name]
            # The index serves text with LF line ends; a file published with CRLF is checked in that form.
            forms = (text, text.replace("\n", "\r\n"))
            got = {hashlib.sha1(b"blob %d\0" % len(d) + d).hexdigest() for d in (f.encode("utf-8") for f in forms)}
            assert sha1 in got, f"{c.path.name}: {name} is not the published blob {sha1}"
            checked += 1
    assert checked >= 20, f"only {checked} files are checked against their published blob"


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
