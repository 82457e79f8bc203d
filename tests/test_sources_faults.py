"""Every network fault the sources must survive or detect, injected by the local servers."""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor

import pytest
from servers.hub import make_repo

from scanner.errors import SourceError
from scanner.sources import http
from scanner.sources.hf import HFSource

WEIGHTS = os.urandom(300_000)
FAST = http.RetryPolicy(max_tries=4, base_wait=0.01, max_wait=0.05, max_total=5)


@pytest.fixture
def model(hub):
    make_repo(
        hub.root, "acme/m", {"README.md": "# m\n", "config.json": json.dumps({"a": 1}), "model.safetensors": WEIGHTS}
    )
    return hub


def _weights(hub, **kw):
    snap = HFSource("acme/m", cache=False, **kw).snapshot()
    return snap, snap.open("model.safetensors")


# -- retries --------------------------------------------------------------------------------------------------------
def test_429_with_retry_after_is_honoured(model, no_sleep):
    model.fault("429", "/api/models/acme/m", times=2, retry_after=7)
    snap = HFSource("acme/m").snapshot()
    assert snap.revision and no_sleep == [7, 7]


def test_500_then_ok(model, no_sleep):
    model.fault("500", "/api/models/acme/m", times=1)
    model.fault("500", "/resolve/", times=2)
    snap = HFSource("acme/m").snapshot()
    assert snap.jsons["config.json"] == {"a": 1} and snap.problems == []
    assert len(no_sleep) == 3 and no_sleep[0] == http.DEFAULT_RETRY.base_wait  # exponential backoff
    assert no_sleep[2] == 2 * no_sleep[1]


def test_persistent_500_gives_up_with_unreachable(model, no_sleep):
    model.fault("500", "/api/models/acme/m", times=-1)
    with pytest.raises(SourceError) as e:
        HFSource("acme/m").snapshot()
    assert e.value.rule == "source.unreachable" and "500" in str(e.value)
    assert len(no_sleep) == http.DEFAULT_RETRY.max_tries - 1


def test_retry_after_beyond_budget_fails_fast(model, no_sleep):
    model.fault("429", "/resolve/", times=-1, retry_after=3600)
    snap, src = _weights(model)
    assert {p.rule for p in snap.problems} == {"source.unreachable"}  # small files: findings, not a crash
    with pytest.raises(SourceError) as e:
        src.read(0, 10)
    assert "budget" in str(e.value) and no_sleep == []


def test_429_on_range_read_is_retried(model, no_sleep):
    snap, src = _weights(model)
    model.fault("429", "model.safetensors", times=1, retry_after=2)
    assert src.read(10, 100) == WEIGHTS[10:110] and no_sleep == [2]


# -- range reads ----------------------------------------------------------------------------------------------------
def test_connection_reset_mid_body_resumes(model):
    snap, src = _weights(model)
    model.stats.reset()
    model.fault("reset", "model.safetensors", times=2)
    assert src.read(1000, 200_000) == WEIGHTS[1000:201_000]
    assert src.bytes_read == 200_000 and src.resumes == 2
    ranges = [p for p in model.stats.paths("GET") if p.endswith("model.safetensors")]
    assert len(ranges) == 3
    # the resumed requests asked only for what was missing (not the whole range again): at most a chunk per
    # reset is served twice
    assert 200_000 <= model.stats.weight_bytes_served <= 200_000 + 2 * http.HTTPRangeByteSource.CHUNK


def test_server_ignoring_range_is_detected(model):
    snap, src = _weights(model)
    model.fault("ignore_range", "model.safetensors", times=1)
    with pytest.raises(SourceError) as e:
        src.read(0, 100)
    assert e.value.rule == "source.malformed" and "ignored the Range" in str(e.value)
    assert src.bytes_read == 0


def test_wrong_content_range_is_detected(model):
    snap, src = _weights(model)
    model.fault("wrong_range", "model.safetensors", times=1)
    with pytest.raises(SourceError) as e:
        src.read(500, 100)
    assert e.value.rule == "source.malformed" and "Content-Range" in str(e.value)


def test_slow_server_times_out_then_retries(model, no_sleep):
    snap = HFSource("acme/m", cache=False).snapshot()
    url = snap.open("model.safetensors").url
    src = http.HTTPRangeByteSource(url, len(WEIGHTS), timeout=(2, 0.2), retry=FAST)
    model.fault("slow", "model.safetensors", times=1, delay=0.6)
    assert src.read(0, 50) == WEIGHTS[:50]
    model.fault("slow", "model.safetensors", times=-1, delay=0.6)
    with pytest.raises(SourceError) as e:
        src.read(0, 50)
    assert e.value.rule == "source.unreachable"
    model.clear_faults()


def test_unreachable_host_is_a_source_error():
    with pytest.raises(SourceError) as e:
        http.request("GET", "http://127.0.0.1:9/nothing", retry=FAST, timeout=(0.5, 0.5))
    assert e.value.rule == "source.unreachable"


def test_content_range_parser():
    assert http.parse_content_range("bytes 0-9/100") == (0, 9, 100)
    assert http.parse_content_range("bytes 5-9/*") == (5, 9, None)
    assert http.parse_content_range("bytes */100") is None
    assert http.parse_retry_after("12") == 12
    assert http.parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=0) > 0
    assert http.parse_retry_after("soon") is None
    assert http.redact("https://u:p@host/x?token=abc") == "https://host/x"


# -- GitHub API faults ----------------------------------------------------------------------------------------------
def test_github_api_500_then_ok(github, no_sleep):
    from scanner.sources.github import GitHubSource

    github.add_repo("acme/r", {"README.md": "hi\n"})
    github.fault("500", "/repos/acme/r", times=2)
    assert GitHubSource("acme", "r").snapshot().texts["README.md"] == "hi\n"
    assert len(no_sleep) == 2


# -- isolation: one broken repo never stops a sweep -----------------------------------------------------------------
def test_one_broken_repo_does_not_stop_the_others(hub, no_sleep):
    for i in range(12):
        make_repo(hub.root, f"org/m{i:02d}", {"README.md": f"# {i}\n", "model.safetensors": b"w" * 100})
    hub.fault("500", "/api/models/org/m03", times=-1)
    hub.fault("reset", "/resolve/", times=3)

    def scan(repo_id):
        try:
            return repo_id, HFSource(repo_id).snapshot(), None
        except SourceError as exc:
            return repo_id, None, exc.rule

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(scan, [f"org/m{i:02d}" for i in range(12)]))
    failed = [(r, rule) for r, snap, rule in results if snap is None]
    assert failed == [("org/m03", "source.unreachable")]
    assert all(snap.texts["README.md"] for r, snap, _ in results if snap is not None)
