"""A sweep's listing as the Hub gives it: pages of LISTING_PAGE repos, and each repo's commit (`expand=sha`) standing
in for the repo's own sha request when its cached snapshot is at that commit."""

from __future__ import annotations

import json

from servers.hub import make_repo

from scanner.ci.sweep import sweep
from scanner.policy import Policy
from scanner.sources.hf import HFSource

CARD = "---\nlicense: apache-2.0\n---\n# A model\n"


def _org(hub, n=3):
    for i in range(n):
        make_repo(hub.root, f"acme/m{i}", {"README.md": CARD + f"model {i}\n", "config.json": json.dumps({"x": i})})


def _shown(reports):
    return [(r.target, sorted((f.rule, f.message) for f in r.findings)) for r in reports]


def test_a_sweep_of_unchanged_repos_costs_its_listing(hub):
    _org(hub)
    first, _ = sweep(["hf:acme"], policy=Policy(), workers=2, quiet=True)
    hub.stats.reset()
    again, _ = sweep(["hf:acme"], policy=Policy(), workers=2, quiet=True)
    assert hub.stats.paths() == [p for p in hub.stats.paths() if p.startswith("/api/models?")]
    assert hub.stats.requests == 1 and "expand=sha" in hub.stats.paths()[0]
    assert _shown(again) == _shown(first)


def test_a_repo_changed_since_its_cached_scan_is_read_again_without_a_sha_request(hub):
    _org(hub)
    sweep(["hf:acme"], policy=Policy(), workers=2, quiet=True)
    (hub.root / "acme/m1/README.md").write_text(CARD + "changed\n")
    hub.stats.reset()
    reports, _ = sweep(["hf:acme"], policy=Policy(), workers=2, quiet=True)
    paths = hub.stats.paths()
    assert not [p for p in paths if "expand=sha" in p and not p.startswith("/api/models?")]
    assert [p for p in paths if p.startswith("/api/models/")] == [
        p for p in paths if p.startswith("/api/models/acme/m1")
    ]
    assert [p.rsplit("/", 1)[1] for p in paths if "/resolve/" in p] == ["README.md"]  # config.json: content cache
    assert hub.stats.requests == 3  # the listing, m1's model info and its new card


def test_the_listing_is_trusted_only_during_the_sweep(hub):
    """Once the sweep is over its listing is stale: a later scan of the repo asks the Hub for the commit again."""
    _org(hub, 1)
    sweep(["hf:acme"], policy=Policy(), workers=1, quiet=True)
    (hub.root / "acme/m0/README.md").write_text(CARD + "pushed after the sweep\n")
    hub.stats.reset()
    snap = HFSource("acme/m0").snapshot()
    assert snap.meta["cache"] == "miss" and "pushed after the sweep" in snap.texts["README.md"]
    assert "expand=sha" in hub.stats.paths()[0]
