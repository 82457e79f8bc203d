"""GitHubSource against the local GitHub API server, with bare git repos served over file://."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile

import pytest
from servers.fixtures import GH_TOKEN_OK

from scanner.errors import SourceError
from scanner.sources.github import GitHubSource, list_org_repos
from scanner.sources.resolve import list_org, open_source

WEIGHTS = os.urandom(50_000)
BIG = os.urandom(1_500_000)  # over the 1 MiB blob filter, committed without LFS


@pytest.fixture
def repo(github):
    github.add_repo(
        "acme/model",
        {
            "README.md": "---\nlicense: mit\n---\n# Model\n",
            "LICENSE": "MIT License\n",
            "config.json": json.dumps({"hidden_size": 64}),
            "src/model.py": "print('never executed')\n",
            "raw.bin": BIG,
        },
        lfs={"model.safetensors": WEIGHTS},
    )
    return github


def test_snapshot_lfs_pointer_gives_sha256_without_download(repo, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    snap = GitHubSource("acme", "model").snapshot()
    assert snap.kind == "github" and snap.name == "acme/model"
    assert snap.revision == repo.head("acme/model", "main")
    w = snap.files["model.safetensors"]
    assert w.lfs_pointer and w.size == len(WEIGHTS) and w.sha256 == hashlib.sha256(WEIGHTS).hexdigest()
    assert snap.files["raw.bin"].size == len(BIG)  # size from the trees API: the blob itself was not fetched
    assert snap.texts["README.md"].startswith("---") and "LICENSE" in snap.texts
    assert snap.jsons == {"config.json": {"hidden_size": 64}}
    assert snap.meta["default_branch"] == "main" and snap.problems == []
    assert repo.stats.weight_bytes_served == 0 and repo.stats.bytes_served == 0
    # the temporary fetch folder is gone
    assert not [p for p in os.listdir(tmp_path) if p.startswith("originscan-gh-")]


def test_range_reads_of_lfs_and_plain_blobs(repo):
    snap = GitHubSource("acme", "model").snapshot()
    src = snap.open("model.safetensors")
    assert src.read(100, 200) == WEIGHTS[100:300] and src.bytes_read == 200
    raw = snap.open("raw.bin")
    assert raw.read(len(BIG) - 10, 10) == BIG[-10:]
    assert repo.stats.weight_bytes_served == 210


def test_pinned_ref_and_missing_ref(repo):
    first = repo.head("acme/model", "main")
    repo.add_repo("acme/model", {"README.md": "changed\n"})
    snap = open_source(f"github:acme/model@{first}").snapshot()
    assert snap.revision == first and snap.texts["README.md"].startswith("---")
    latest = GitHubSource("acme", "model").snapshot()
    assert latest.revision != first and latest.texts["README.md"] == "changed\n"
    with pytest.raises(SourceError) as e:
        GitHubSource("acme", "model", ref="no-such-branch").snapshot()
    assert e.value.rule == "source.not_found" and "no-such-branch" in str(e.value)


def test_missing_repo_is_one_clear_error(github):
    with pytest.raises(SourceError) as e:
        GitHubSource("acme", "nope").snapshot()
    assert e.value.rule == "source.not_found" and "\n" not in str(e.value)


def test_org_listing_paginates_and_skips_forks_and_archived(github):
    github.PAGE = 2
    github.add_repo("org/a", {"README.md": "a"})
    github.add_repo("org/b", {"README.md": "b"})
    github.add_repo("org/c", {"README.md": "c"})
    github.add_repo("org/forked", {"README.md": "f"}, fork=True)
    github.add_repo("org/old", {"README.md": "o"}, archived=True)
    assert list_org_repos("org") == ["org/a", "org/b", "org/c"]
    assert len([p for p in github.stats.paths() if "/orgs/org/repos" in p]) == 3
    assert list_org_repos("org", include_forks=True, include_archived=True) == [
        "org/a",
        "org/b",
        "org/c",
        "org/forked",
        "org/old",
    ]
    assert list_org("github:org") == ["github:org/a", "github:org/b", "github:org/c"]
    with pytest.raises(SourceError):
        list_org_repos("ghost")


def test_rescan_of_unchanged_repo_is_one_conditional_call(repo):
    first = GitHubSource("acme", "model").snapshot()
    assert first.meta["cache"] == "miss"
    repo.stats.reset()
    again = GitHubSource("acme", "model").snapshot()
    assert again.meta["cache"] == "hit"
    assert repo.stats.log == [("GET", "/repos/acme/model/commits/main", 304)]
    assert again.files == first.files and again.texts == first.texts and again.revision == first.revision
    repo.add_repo("acme/model", {"LICENSE": "Apache-2.0\n"})
    changed = GitHubSource("acme", "model").snapshot()
    assert changed.meta["cache"] == "miss" and changed.texts["LICENSE"] == "Apache-2.0\n"


def test_rate_limit_waits_when_reset_is_near(repo, no_sleep):
    repo.fault("ratelimit", "/repos/acme/model", times=1, extra={"reset_in": 5})
    snap = GitHubSource("acme", "model").snapshot()
    assert snap.revision and len(no_sleep) == 1 and 3 <= no_sleep[0] <= 7


def test_rate_limit_far_reset_fails_clearly(repo, no_sleep):
    repo.fault("ratelimit", "/repos/acme/model", times=-1, extra={"reset_in": 3600})
    with pytest.raises(SourceError) as e:
        GitHubSource("acme", "model").snapshot()
    assert "rate limit" in str(e.value) and "GITHUB_TOKEN" in str(e.value)
    assert no_sleep == []


def test_token_is_sent_but_never_shown(repo, monkeypatch, capfd):
    monkeypatch.setenv("GITHUB_TOKEN", GH_TOKEN_OK)
    src = GitHubSource("acme", "model")
    snap = src.snapshot()
    assert GH_TOKEN_OK not in repr(src) and GH_TOKEN_OK not in repr(src.api)
    assert all(GH_TOKEN_OK not in p.message for p in snap.problems)
    out, err = capfd.readouterr()
    assert GH_TOKEN_OK not in out + err
