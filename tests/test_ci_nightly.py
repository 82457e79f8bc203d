"""Nightly sweeps: history (new / fixed / unchanged), the single tracking issue, sharding and merging."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from servers.github_api import GitHubAPIServer

import scanner.sources.resolve as resolve
from scanner.ci.history import diff_last, merge_reports, record_run, reports_to_json, runs
from scanner.ci.sweep import ISSUE_MARKER, nightly_issue, sweep
from scanner.errors import SourceError, UsageError
from scanner.policy import Policy
from scanner.shards import parse_shard, select_shard, shard_of

TOKEN = "ghs_nightlySECRET"
REPO = "acme/compliance"

LLAMA_CARD = """---
license: apache-2.0
base_model: meta-llama/Meta-Llama-3-8B
---
# A Llama fine-tune
"""
CLEAN_CARD = """---
license: apache-2.0
---
# Clean
"""
HOSTILE_CARD = """---
license: "@octocat <b>x</b>"
base_model: meta-llama/Meta-Llama-3-8B
---
# Hostile
"""


def model(root: Path, name: str, card: str) -> str:
    d = root / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "README.md").write_text(card, encoding="utf-8")
    return str(d)


@pytest.fixture
def orgs(tmp_path, monkeypatch):
    """Two fake organisations whose repos are local folders; `orgs.repos[org]` can be edited between sweeps."""

    class Orgs:
        root = tmp_path / "repos"
        repos: dict[str, list[str]] = {"hf:acme": [], "github:acme": []}
        broken_orgs: set[str] = set()

    def fake_list_org(target, **kw):
        if target in Orgs.broken_orgs:
            raise SourceError(f"{target}: listing failed (HTTP 503)", rule="source.unreachable")
        return list(Orgs.repos[target])

    monkeypatch.setattr(resolve, "list_org", fake_list_org)
    return Orgs


def keyset(items):
    return {(Path(e.target).name, e.rule) for e in items}


def test_two_sweeps_new_fixed_unchanged(tmp_path, orgs):
    db = tmp_path / "history.sqlite"
    r = orgs.root
    orgs.repos["hf:acme"] = [model(r, "a", LLAMA_CARD), model(r, "b", CLEAN_CARD)]
    orgs.repos["github:acme"] = [model(r, "c", HOSTILE_CARD)]
    reports, diff = sweep(["hf:acme", "github:acme"], policy=Policy(), history_db=db, workers=4, quiet=True)
    assert [Path(x.target).name for x in reports] == ["a", "b", "c"]
    assert diff.previous_run is None and diff.fixed == [] and diff.unchanged == []
    assert ("a", "license.incompatible") in keyset(diff.new) and ("c", "license.unknown") in keyset(diff.new)

    # Overnight: c is fixed, d appears, a is untouched, one repo is broken.
    model(r, "c", CLEAN_CARD)
    orgs.repos["github:acme"] = [str(r / "c"), model(r, "d", HOSTILE_CARD), str(r / "gone-missing")]
    reports2, diff2 = sweep(["hf:acme", "github:acme"], policy=Policy(), history_db=db, workers=4, quiet=True)
    assert diff2.previous_run == diff.run and diff2.run == diff.run + 1
    names = {Path(x.target).name: x for x in reports2}
    assert names["gone-missing"].error and names["gone-missing"].findings[0].rule.startswith("source.")
    assert names["a"].findings  # the rest was scanned
    assert {n for n, _ in keyset(diff2.unchanged)} == {"a"}
    assert {n for n, _ in keyset(diff2.fixed)} == {"c"}
    assert {n for n, _ in keyset(diff2.new)} == {"d", "gone-missing"}
    assert diff2.unverified == ["gone-missing"]  # as reports show a local folder: never its absolute path
    assert [x["id"] for x in runs(db)] == [1, 2]


def test_org_listing_failure_is_a_finding(tmp_path, orgs):
    orgs.repos["hf:acme"] = [model(orgs.root, "a", CLEAN_CARD)]
    orgs.broken_orgs.add("github:acme")
    reports, diff = sweep(["hf:acme", "github:acme"], policy=Policy(), history_db=None, workers=2, quiet=True)
    assert diff is None
    by = {x.target: x for x in reports}
    assert by["github:acme"].findings[0].rule == "source.unreachable"
    assert Path(reports[-1].target).name == "a" or any(Path(t).name == "a" for t in by)


def test_tracking_issue_created_then_updated(tmp_path, orgs):
    db = tmp_path / "h.sqlite"
    r = orgs.root
    with GitHubAPIServer(token=TOKEN, page_size=5) as api:
        for i in range(12):  # unrelated issues and PRs before ours
            api.add_issue(REPO, f"bug {i}", "something", pull_request=i % 3 == 0)
        orgs.repos["hf:acme"] = [model(r, "a", LLAMA_CARD)]
        _, diff = sweep(["hf:acme"], policy=Policy(), history_db=db, workers=1, quiet=True)
        logs: list[str] = []
        res = nightly_issue(diff, api.url, TOKEN, REPO, log=logs.append)
        assert res and res["action"] == "created"
        ours = [i for i in api.issues[REPO] if ISSUE_MARKER in i["body"]]
        assert len(ours) == 1 and ours[0]["title"] == "originscan nightly"
        assert "license.incompatible" in ours[0]["body"]

        # Nothing new: no call at all.
        n_calls = len(api.calls)
        _, diff2 = sweep(["hf:acme"], policy=Policy(), history_db=db, workers=1, quiet=True)
        assert diff2.new == [] and nightly_issue(diff2, api.url, TOKEN, REPO) is None
        assert len(api.calls) == n_calls

        # A new high finding (and a closed issue): the same issue is updated and reopened, not a second one.
        api.issues[REPO][-1]["state"] = "closed"
        orgs.repos["hf:acme"].append(model(r, "e@octocat<b>", HOSTILE_CARD))  # hostile repo name
        _, diff3 = sweep(["hf:acme"], policy=Policy(), history_db=db, workers=1, quiet=True)
        res3 = nightly_issue(diff3, api.url, TOKEN, REPO, log=logs.append)
        assert res3 == {"action": "updated", "number": ours[0]["number"], "url": ours[0]["html_url"]}
        ours = [i for i in api.issues[REPO] if ISSUE_MARKER in i["body"]]
        assert len(ours) == 1 and ours[0]["state"] == "open"
        assert "&lt;b&gt;" in ours[0]["body"] and "<b>" not in ours[0]["body"] and "@octocat" not in ours[0]["body"]
        assert [c.method for c in api.writes()] == ["POST", "PATCH"]
        assert all(c.authorized for c in api.calls)
        assert not any(TOKEN in ln for ln in logs)

        # The API refuses: a warning, no exception.
        api.fail_issues = 403
        orgs.repos["hf:acme"].append(model(r, "f", HOSTILE_CARD))
        _, diff4 = sweep(["hf:acme"], policy=Policy(), history_db=db, workers=1, quiet=True)
        logs.clear()
        assert nightly_issue(diff4, api.url, TOKEN, REPO, log=logs.append) is None
        assert logs and logs[0].startswith("::warning::") and TOKEN not in logs[0]


def test_shards_split_and_merge_reproduce_the_whole(tmp_path, orgs):
    r = orgs.root
    cards = [LLAMA_CARD, CLEAN_CARD, HOSTILE_CARD]
    orgs.repos["hf:acme"] = [model(r, f"m{i:02d}", cards[i % 3]) for i in range(14)]
    orgs.repos["github:acme"] = [model(r, f"g{i:02d}", cards[(i + 1) % 3]) for i in range(7)] + [str(r / "broken")]
    whole, _ = sweep(["hf:acme", "github:acme"], policy=Policy(), history_db=None, workers=4, quiet=True)
    n = 3
    files = []
    seen: list[str] = []
    for k in range(1, n + 1):
        part, diff = sweep(
            ["hf:acme", "github:acme"], policy=Policy(), history_db=None, shard=(k, n), workers=2, quiet=True
        )
        assert diff is None
        seen += [x.target for x in part]
        p = tmp_path / f"shard-{k}.json"
        p.write_text(reports_to_json(part), encoding="utf-8")
        files.append(p)
    assert sorted(seen) == sorted(x.target for x in whole) and len(seen) == len(set(seen))  # disjoint, complete
    merged = merge_reports(files)
    assert [x.to_json() for x in merged] == [x.to_json() for x in whole]
    # History of the merged run equals that of the whole run.
    db1, db2 = tmp_path / "1.sqlite", tmp_path / "2.sqlite"
    record_run(db1, whole)
    record_run(db2, merged)
    assert diff_last(db1, whole).unchanged == diff_last(db2, merged).unchanged


def test_shard_parsing_and_stability():
    assert parse_shard("2/5") == (2, 5) and parse_shard(None) is None
    for bad in ("0/3", "4/3", "x", "1/0", "1/2/3"):
        with pytest.raises(UsageError):
            parse_shard(bad)
    names = [f"hf:org/m{i}" for i in range(200)]
    assert shard_of("hf:org/m1", 4) == shard_of("hf:org/m1", 4)
    parts = [select_shard(names, (k, 4)) for k in range(1, 5)]
    assert sorted(sum(parts, [])) == sorted(names)
    assert all(20 < len(p) < 80 for p in parts)


def test_history_bad_inputs(tmp_path):
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(UsageError):
        record_run(bad, [])
    j = tmp_path / "x.json"
    j.write_text("{nope", encoding="utf-8")
    with pytest.raises(UsageError, match="not valid JSON"):
        merge_reports([j])
    j.write_text(json.dumps({"tool": "originscan"}), encoding="utf-8")
    with pytest.raises(UsageError, match="targets"):
        merge_reports([j])
    with pytest.raises(UsageError):
        merge_reports([])


def test_sweep_needs_an_org():
    with pytest.raises(UsageError):
        sweep([], policy=Policy(), history_db=None, workers=1, quiet=True)
