"""Range reads through urllib3's pool (scanner/sources/http.py range_get): where a file's redirect led is asked
directly for later ranges, with a way back when it stops answering, and a proxy from the environment is used as
requests would use it. Faults, bounds and tokens on redirects: test_sources_faults.py, test_http_bounds.py and the
hostile corpus."""

from __future__ import annotations

import json
import os

import pytest
from huggingface_hub import constants
from servers.hostile import HostileHub
from servers.hub import make_repo

from scanner.sources import http
from scanner.sources.hf import HFSource

WEIGHTS = os.urandom(200_000)
TOKEN = "hf_rangereadtoken0123456789"


@pytest.fixture
def hub(tmp_path, monkeypatch):
    root = tmp_path / "hub"
    files = {"README.md": "# m\n", "config.json": json.dumps({"a": 1}), "model.safetensors": WEIGHTS}
    for name in ("hostile/redirect_foreign", "org/plain"):
        make_repo(root, name, files)
    server = HostileHub(root, tokens={TOKEN}).start()
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "hf_home" / "token"))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    try:
        yield server
    finally:
        server.stop()


def _gets(server, path: str = "model.safetensors") -> list[str]:
    return [p for p in server.stats.paths("GET") if p.endswith(path)]


def test_later_ranges_go_where_the_redirect_led_and_the_token_stays_home(hub):
    src = HFSource("hostile/redirect_foreign", token=TOKEN, cache=False).snapshot().open("model.safetensors")
    hub.stats.reset()
    hub.foreign.stats.reset()
    for i in range(5):
        assert src.read(30_000 * i, 1000) == WEIGHTS[30_000 * i : 30_000 * i + 1000]
    assert len(_gets(hub)) == 1  # one redirect, then the CDN's URL directly
    assert len(_gets(hub.foreign)) == 5
    assert src.requests == 5
    assert hub.recorder.carrying(TOKEN) and hub.foreign.recorder.carrying(TOKEN) == []


def test_a_redirect_target_that_stops_answering_sends_the_read_back_through_the_redirect(hub):
    src = HFSource("hostile/redirect_foreign", token=TOKEN, cache=False).snapshot().open("model.safetensors")
    assert src.read(100, 10) == WEIGHTS[100:110]
    hub.stats.reset()
    hub.foreign.fault("ratelimit", match="model.safetensors", times=1)  # 403, as an expired signed URL
    assert src.read(50_000, 100) == WEIGHTS[50_000:50_100]
    assert len(_gets(hub)) == 1 and src.requests == 3  # the direct try, the redirect, the read
    assert src.read(60_000, 100) == WEIGHTS[60_000:60_100]
    assert len(_gets(hub)) == 1  # direct again


def test_a_file_not_redirected_is_read_at_its_own_url(hub):
    src = HFSource("org/plain", cache=False).snapshot().open("model.safetensors")
    hub.stats.reset()
    for i in range(3):
        assert src.read(1000 * i, 10) == WEIGHTS[1000 * i : 1000 * i + 10]
    assert len(_gets(hub)) == 3 and _gets(hub.foreign) == []


def test_range_reads_use_the_environments_proxy_as_requests_does(hub, monkeypatch):
    url = HFSource("org/plain", cache=False).snapshot().open("model.safetensors").url
    for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", hub.foreign.url)  # the foreign host serves the same repos: a plain HTTP proxy
    monkeypatch.setattr(http, "_routes", {})  # routes are worked out once per origin and process
    hub.stats.reset()
    src = http.HTTPRangeByteSource(url, len(WEIGHTS))
    assert src.read(7, 70) == WEIGHTS[7:77]
    assert _gets(hub) == []
    through = [p for _, p, _ in hub.foreign.recorder.requests if p.endswith("model.safetensors")]
    assert through == [url]  # a proxy is sent the whole URL
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setattr(http, "_routes", {})
    assert http.HTTPRangeByteSource(url, len(WEIGHTS)).read(7, 70) == WEIGHTS[7:77]
    assert len(_gets(hub)) == 1  # NO_PROXY: straight to the host
