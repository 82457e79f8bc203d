"""HFSource against the local Hub server, through the unmodified huggingface_hub client."""

from __future__ import annotations

import hashlib
import json
import os

import pytest
from servers.fixtures import HF_TOKEN_OK
from servers.hub import make_repo

from scanner.errors import SourceError
from scanner.sources.hf import LISTING_PAGE, HFSource, list_org_models
from scanner.sources.resolve import list_org, open_source

WEIGHTS = os.urandom(64 * 1024)
CARD = "---\nlicense: apache-2.0\nbase_model: acme/base\n---\n# A model\n"


def _repo(hub, repo_id="acme/m1", **cfg):
    files = {
        "README.md": CARD,
        "LICENSE": "Apache License 2.0\n",
        "config.json": json.dumps({"vocab_size": 128256}),
        "tokenizer_config.json": json.dumps({"added_tokens_decoder": {}}),
        "model.safetensors": WEIGHTS,
        "notes/extra.txt": "not read",
    }
    make_repo(hub.root, repo_id, files, **cfg)
    return files


def test_snapshot_has_lfs_sha256_and_reads_no_weight_bytes(hub):
    _repo(hub)
    snap = HFSource("acme/m1").snapshot()
    assert snap.kind == "hf" and snap.name == "acme/m1"
    assert len(snap.revision) == 40
    w = snap.files["model.safetensors"]
    assert w.size == len(WEIGHTS) and w.sha256 == hashlib.sha256(WEIGHTS).hexdigest()
    assert [f.path for f in snap.weight_files()] == ["model.safetensors"]
    assert snap.texts["README.md"] == CARD and "LICENSE" in snap.texts
    assert snap.jsons["config.json"] == {"vocab_size": 128256} and "tokenizer_config.json" in snap.jsons
    assert "notes/extra.txt" in snap.files and "notes/extra.txt" not in snap.texts
    assert snap.problems == []
    assert hub.stats.weight_bytes_served == 0
    # one model_info call + one GET per small file, nothing else
    api = [p for p in hub.stats.paths() if p.startswith("/api/")]
    assert len(api) == 1 and "blobs=true" in api[0].lower()
    assert sorted(p.rsplit("/", 1)[1] for p in hub.stats.paths() if "/resolve/" in p) == [
        "LICENSE",
        "README.md",
        "config.json",
        "tokenizer_config.json",
    ]


def test_a_file_the_caller_read_whole_is_not_downloaded_again(hub):
    files = _repo(hub)
    rev = HFSource("acme/m1", cache=False).snapshot().revision
    config = files["config.json"].encode()
    hub.stats.reset()
    snap = HFSource("acme/m1", revision=rev, cache=False, known={"config.json": config}).snapshot()
    assert snap.jsons["config.json"] == {"vocab_size": 128256}
    assert not any(p.endswith("/config.json") for p in hub.stats.paths())
    # Bytes that are not the whole file as listed (cut short, or another version) stand in for nothing.
    hub.stats.reset()
    snap = HFSource("acme/m1", revision=rev, cache=False, known={"config.json": config[:-1]}).snapshot()
    assert snap.jsons["config.json"] == {"vocab_size": 128256}
    assert sum(p.endswith("/config.json") for p in hub.stats.paths()) == 1


def test_range_reads_are_counted_and_pinned(hub):
    _repo(hub)
    snap = HFSource("acme/m1").snapshot()
    src = snap.open("model.safetensors")
    assert src.read(1000, 500) == WEIGHTS[1000:1500]
    assert src.read(0, 8) == WEIGHTS[:8]
    assert src.bytes_read == 508
    assert hub.stats.weight_bytes_served == 508
    ranged = [p for p in hub.stats.paths("GET") if p.endswith("model.safetensors")]
    assert len(ranged) == 2 and all(f"/resolve/{snap.revision}/" in p for p in ranged)


def test_pinned_revision(hub):
    _repo(hub)
    sha = HFSource("acme/m1").snapshot().revision
    snap = open_source(f"hf:acme/m1@{sha}").snapshot()
    assert snap.revision == sha and snap.target == f"hf:acme/m1@{sha}"
    with pytest.raises(SourceError) as e:
        HFSource("acme/m1", revision="0" * 40).snapshot()
    assert e.value.rule == "source.not_found" and "revision" in str(e.value)


def test_gated_repo_is_unverifiable_not_a_crash(hub, monkeypatch):
    _repo(hub, "acme/gated", gated="manual")
    snap = HFSource("acme/gated").snapshot()
    rules = [p.rule for p in snap.problems]
    assert rules == ["source.unverifiable"]
    assert "HF_TOKEN" in snap.problems[0].message
    # metadata is public: the exact-copy evidence still arrives, with 0 weight bytes
    assert snap.files["model.safetensors"].sha256 == hashlib.sha256(WEIGHTS).hexdigest()
    assert snap.meta["gated"] == "manual" and snap.texts == {}
    assert hub.stats.weight_bytes_served == 0
    monkeypatch.setenv("HF_TOKEN", HF_TOKEN_OK)
    snap = HFSource("acme/gated").snapshot()
    assert snap.problems == [] and "README.md" in snap.texts
    assert HF_TOKEN_OK not in repr(HFSource("acme/gated", token=HF_TOKEN_OK))


def test_private_repo_is_unverifiable_until_a_token_is_given(hub):
    _repo(hub, "acme/private", private=True)
    snap = HFSource("acme/private").snapshot()
    assert [p.rule for p in snap.problems] == ["source.unverifiable"] and snap.files == {}
    snap = HFSource("acme/private", token=HF_TOKEN_OK).snapshot()
    assert snap.problems == [] and "model.safetensors" in snap.files
    assert all(HF_TOKEN_OK not in p.message for p in snap.problems)


def test_missing_repo_is_one_clear_error(hub):
    with pytest.raises(SourceError) as e:
        HFSource("acme/nope").snapshot()
    assert e.value.rule == "source.not_found"
    assert str(e.value) == "hf:acme/nope: repository not found"


def test_malformed_and_too_large_json_become_findings(hub, monkeypatch):
    make_repo(
        hub.root,
        "acme/bad",
        {
            "config.json": "{not json",
            "tokenizer_config.json": json.dumps({"x": "y" * 200}),
            "README.md": b"caf\xe9 \xff",
        },
    )
    monkeypatch.setattr("scanner.sources.hf.json_limit", lambda path: 100)
    snap = HFSource("acme/bad").snapshot()
    by_path = {p.path: p.rule for p in snap.problems}
    assert by_path["config.json"] == "source.malformed"
    assert by_path["tokenizer_config.json"] == "source.too_large"
    assert by_path["README.md"] == "source.encoding"
    assert not [p for p in hub.stats.paths() if p.endswith("/tokenizer_config.json")]  # too large: not fetched


def test_org_listing_follows_pagination(hub):
    hub.MAX_PAGE = 5  # the most the server gives in one answer (the Hub's 1000, scaled down)
    for i in range(hub.MAX_PAGE + 2):
        make_repo(hub.root, f"bigorg/m{i:03d}", {"README.md": "x"})
    make_repo(hub.root, "other/m", {"README.md": "x"})
    ids = list_org_models("bigorg")
    assert len(ids) == hub.MAX_PAGE + 2 and ids[0] == "bigorg/m000"
    assert len([p for p in hub.stats.paths() if p.startswith("/api/models?")]) == 2
    assert list_org("hf:bigorg")[:2] == ["hf:bigorg/m000", "hf:bigorg/m001"]


def test_org_listing_asks_for_full_pages(hub):
    """The listing asks for LISTING_PAGE repos a page: an org larger than the server's default page (what a client
    that names no `limit` gets) is one request, not one per default page."""
    for i in range(hub.PAGE + 7):
        make_repo(hub.root, f"bigorg/m{i:03d}", {"README.md": "x"})
    ids = list_org_models("bigorg")
    assert len(ids) == hub.PAGE + 7
    listings = [p for p in hub.stats.paths() if p.startswith("/api/models?")]
    assert len(listings) == 1 and f"limit={LISTING_PAGE}" in listings[0]


def test_rescan_of_unchanged_repo_is_one_cheap_call(hub):
    _repo(hub)
    first = HFSource("acme/m1").snapshot()
    assert first.meta["cache"] == "miss"
    hub.stats.reset()
    again = HFSource("acme/m1").snapshot()
    assert again.meta["cache"] == "hit"
    assert hub.stats.requests == 1 and "expand=sha" in hub.stats.paths()[0]
    assert hub.stats.bytes_served == 0
    assert again.revision == first.revision and again.files == first.files
    assert again.texts == first.texts and again.jsons == first.jsons
    assert again.open("model.safetensors").read(0, 4) == WEIGHTS[:4]
    # a change is noticed, and unchanged small files come from the content cache
    (hub.root / "acme/m1/README.md").write_text(CARD + "\nmore\n")
    hub.stats.reset()
    changed = HFSource("acme/m1").snapshot()
    assert changed.meta["cache"] == "miss" and changed.revision != first.revision
    fetched = [p.rsplit("/", 1)[1] for p in hub.stats.paths() if "/resolve/" in p]
    assert fetched == ["README.md"]


def test_scan_asks_for_the_card_only_when_the_file_list_has_one(hub):
    """The card is one request of a repo's three in a sweep: a repo whose file list shows no README.md costs none,
    one that has it costs exactly one (never a second look-up of the same card)."""
    from scanner.pipeline import scan_target
    from scanner.policy import Policy

    files = {"LICENSE": "Apache License 2.0\n", "config.json": json.dumps({"vocab_size": 128})}
    make_repo(hub.root, "acme/no-card", files)
    make_repo(hub.root, "acme/card", {**files, "README.md": "---\nlicense: apache-2.0\n---\n# A model\n"})
    for name, cards in (("no-card", 0), ("card", 1)):
        hub.stats.reset()
        report = scan_target(f"hf:acme/{name}", Policy())
        assert report.error is None
        asked = [p for p in hub.stats.paths() if p.lower().endswith("readme.md")]
        assert len(asked) == cards and all(p.startswith(f"/acme/{name}/resolve/") for p in asked)


@pytest.mark.parametrize("cdn", [True, False])
def test_weight_reads_through_the_hubs_cdn_redirect_cost_one_hub_request_per_file(hub, cdn):
    """As on the Hub, an LFS file's resolve URL redirects to a CDN: the redirect is followed once per file and the
    file's later ranges go to the CDN directly. Served directly (no CDN), every range is a resolve request."""
    hub.cdn = cdn
    _repo(hub)
    snap = HFSource("acme/m1").snapshot()
    hub.stats.reset()
    weights = snap.open("model.safetensors")
    assert weights.read(0, 4) == WEIGHTS[:4] and weights.read(40_000, 10) == WEIGHTS[40_000:40_010]
    paths = hub.stats.paths()
    at_cdn = [p for p in paths if p.startswith("/cdn/")]
    at_hub = [p for p in paths if not p.startswith("/cdn/")]
    assert all("/resolve/" in p and p.endswith("/model.safetensors") for p in at_hub)
    assert (len(at_hub), len(at_cdn)) == ((1, 2) if cdn else (2, 0))
