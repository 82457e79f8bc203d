"""The typed watch report (scanner/watch_report.py): its JSON read back and merged, and its text (scanner/report/watch.py,
templates/watch.txt.j2) the same bytes as before it went through a template (the reference below is the old code)."""

from __future__ import annotations

from typing import Any

import pytest

from scanner.errors import UsageError
from scanner.provenance.result import IdenticalFiles, ResidualVectorMatch, TokenMatrixMatch, Verdict
from scanner.report.ci import watch_issue
from scanner.report.sanitize import terminal_safe as sanitize
from scanner.report.watch import watch_text
from scanner.watch_report import Suspect, Watched, WatchReport, WatchStats, load_report, merge_reports


def old_render_text(doc: dict[str, Any]) -> str:
    """`watch`'s text report as scanner/watch.py wrote it before issue #22 (from the JSON report)."""
    s = doc["stats"]
    lines = [
        f"originscan watch: {len(doc['watched'])} watched model(s)"
        + (f", shard {doc['shard']}" if doc.get("shard") else "")
    ]
    for sus in doc["suspects"]:
        tag = "DECLARED  " if sus["declared"] else "UNDECLARED"
        lines.append(
            f"  {tag} {sanitize(sus['repo'])} derives from {sanitize(sus['watched'])} "
            f"(p = 10^{sus['log10_p_value']:.1f}, score {sus['score']:.2f}) {sus['links']['repo']}"
        )
        if sus["declared"]:
            lines.append(f"             its card names {', '.join(sanitize(b) for b in sus['declared_as'])}")
    if not doc["suspects"]:
        judged = s.get("listed") or doc.get("complete")
        lines.append("  no suspects" if judged else "  nothing was listed, so no repo was judged (not a pass)")
    for e in doc.get("errors", [])[:20]:
        lines.append(f"  could not judge {sanitize(e['repo'])}: {sanitize(e['message'])}")
    r = s.get("ruled_out", {})
    lines.append(
        f"listed {s['listed']}, this shard {s['in_shard']}, unchanged {s['unchanged']}, judged "
        f"{s['evaluated']} (ruled out by listing {r.get('listing', 0)}, config {r.get('config', 0)}, "
        f"header {r.get('header', 0)}, rows {r.get('rows', 0)}), errors {s['errors']}; {s['requests']} "
        f"requests, {s['weight_bytes_read']:,} weight bytes, {s['seconds']:.1f} s"
    )
    lines.append(
        "run complete: the cursor moved to " + str(doc.get("watermark"))
        if doc.get("complete")
        else f"run stopped ({doc.get('stopped')}): the next run resumes where this one stopped"
    )
    return "\n".join(lines) + "\n"


WATCHED = [Watched("acme/base", "hf:acme/base", "apache-2.0", "k1", "rows", 64, 1000)]


def suspect(repo: str, declared: bool, bases: list[str], log10_p: float = -40.0) -> Suspect:
    anchor = TokenMatrixMatch("model.embed_tokens.weight", "model.embed_tokens.weight", 32, 64, 64, 0.99, log10_p, True)
    vectors = tuple(ResidualVectorMatch(f"model.layers.{i}.input_layernorm.weight", "x", 0.9, 0) for i in range(30))
    verdict = Verdict(
        f"hf:{repo}", "acme/base", "derived", 10**log10_p, 1.0, 4096, 0, (anchor, *vectors), "hidden units map"
    )
    verdict = Verdict(**{**verdict.__dict__, "log10_p_value": log10_p})
    links = {"repo": f"https://huggingface.co/{repo}", "files": f"https://huggingface.co/{repo}/tree/abc"}
    return Suspect(repo, "abc", "acme/base", "hf:acme/base", verdict, declared, bases if declared else [], bases, links)


def report(**kw: Any) -> WatchReport:
    base: dict[str, Any] = dict(
        watched=WATCHED,
        shard=None,
        started="2026-12-07T16:00:00+00:00",
        complete=True,
        watermark="2026-12-07T15:00:00+00:00",
        stats=WatchStats(listed=12, in_shard=12, evaluated=9, requests=30, weight_bytes_read=123456, seconds=4.25),
    )
    return WatchReport(**{**base, **kw})


CASES = {
    "suspects": report(
        suspects=[
            suspect("zed/copy\x1b[31m", False, ["other/model"]),
            suspect("fan/ft", True, ["acme/base"], -12.3),
            suspect("abe/noised", False, []),
        ],
        errors=[{"repo": "bad/repo", "message": "HTTP 500\n::error::boom"}] * 25,
    ),
    "nothing found": report(),
    "nothing listed, stopped": report(
        complete=False, stopped="could not list the Hub's models: HTTP 503", stats=WatchStats(), shard="2/4"
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_text_is_the_old_text(name):
    r = CASES[name]
    assert watch_text(r) == old_render_text(r.to_json())


@pytest.mark.parametrize("name", sorted(CASES))
def test_json_reads_back_to_the_same_report(name):
    doc = CASES[name].to_json()
    assert WatchReport.from_json(doc).to_json() == doc


def test_suspect_json_keeps_twenty_evidence_items_and_the_declared_bases():
    doc = suspect("abe/noised", False, ["x/y"]).to_json()
    assert len(doc["evidence"]) == 21 and doc["evidence"][-1] == {"kind": "declared-bases", "bases": ["x/y"]}
    assert list(doc) == [
        "repo", "revision", "watched", "watched_target", "verdict", "p_value", "log10_p_value", "score", "declared",
        "declared_as", "evidence", "reason", "bytes_read", "links", "status",
    ]  # fmt: skip
    back = Suspect.from_json(doc)
    assert back.declared_bases == ["x/y"] and back.verdict.anchor is not None and back.to_json() == doc


def test_merge_adds_counts_joins_suspects_and_is_complete_only_if_every_shard_was():
    a = report(shard="1/2", suspects=[suspect("a/one", False, [])])
    b = report(shard="2/2", complete=False, stopped="request budget of 5 spent", suspects=[suspect("a/one", False, [])])
    b.suspects.append(suspect("b/two", True, ["acme/base"]))
    merged = merge_reports([a, b])
    assert merged.shard is None and not merged.complete and merged.stopped == "shard 2/2: request budget of 5 spent"
    assert [s.repo for s in merged.ordered_suspects()] == ["a/one", "b/two"]
    assert merged.stats.listed == 12 and merged.stats.in_shard == 24 and merged.stats.seconds == 4.25
    with pytest.raises(UsageError):
        merge_reports([])


def test_a_file_that_is_not_a_watch_report_is_one_clear_error(tmp_path):
    for text in ("[]", '{"kind": "watch", "suspects": [{"repo": "x"}]}', "not json"):
        (tmp_path / "r.json").write_text(text)
        with pytest.raises(UsageError):
            load_report(tmp_path / "r.json")


def test_issue_shows_the_verdict_and_the_evidence_rows():
    s = suspect("zed/copy", False, ["other/model"])
    s.verdict = Verdict(**{**s.verdict.__dict__, "evidence": (IdenticalFiles(("ab" * 32,)),)})
    body = watch_issue(s, "<!-- m -->")
    assert "verdict `derived`" in body and "p = 10^-40.0" in body and "other/model" in body
    assert "| identical-file | sha256=" in body and "ab" * 32 in body
