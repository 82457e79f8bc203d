"""Target strings → (kind, owner, name, rev) and source objects."""

from __future__ import annotations

import pytest

from scanner.errors import UsageError
from scanner.sources.github import GitHubSource
from scanner.sources.hf import HFSource
from scanner.sources.local import LocalSource
from scanner.sources.resolve import is_org, list_org, open_source, parse_target


@pytest.mark.parametrize(
    "text,expected",
    [
        ("./models/x", ("local", "./models/x", None, None)),
        ("/abs/path", ("local", "/abs/path", None, None)),
        ("hf:acme/model", ("hf", "acme", "model", None)),
        ("hf:acme/model@v1.0", ("hf", "acme", "model", "v1.0")),
        ("hf:acme/Model-2.5_b@" + "a" * 40, ("hf", "acme", "Model-2.5_b", "a" * 40)),
        ("github:acme/repo", ("github", "acme", "repo", None)),
        ("github:acme/repo.git@refs/tags/v1", ("github", "acme", "repo", "refs/tags/v1")),
        ("hf:acme", ("hf-org", "acme", None, None)),
        ("github:acme", ("github-org", "acme", None, None)),
        ("HF:acme/model", ("hf", "acme", "model", None)),
    ],
)
def test_parse_target(text, expected):
    assert parse_target(text) == expected


@pytest.mark.parametrize(
    "text,needle",
    [
        ("s3:bucket/x", "unknown scheme"),
        ("hf:a/b/c", "malformed"),
        ("hf:", "malformed"),
        ("github:acme/repo@", "malformed"),
        ("", "empty target"),
        ("https://huggingface.co/acme/model", "hf:acme/model"),
        ("https://github.com/acme/repo.git", "github:acme/repo"),
    ],
)
def test_bad_targets_are_one_line_usage_errors(text, needle):
    with pytest.raises(UsageError) as e:
        parse_target(text)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_open_source_kinds(tmp_path):
    assert isinstance(open_source(str(tmp_path)), LocalSource)
    hf = open_source("hf:acme/m@v2")
    assert isinstance(hf, HFSource) and hf.repo_id == "acme/m" and hf.revision == "v2"
    gh = open_source("github:acme/r@main")
    assert isinstance(gh, GitHubSource) and (gh.owner, gh.repo, gh.ref) == ("acme", "r", "main")
    with pytest.raises(UsageError):
        open_source("hf:acme")
    assert is_org("github:acme") and not is_org("github:acme/r")
    assert list_org("hf:acme/m") == ["hf:acme/m"]
    with pytest.raises(UsageError):
        list_org(str(tmp_path))
