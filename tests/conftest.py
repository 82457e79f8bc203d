"""Shared fixtures. Tests never reach the internet; servers they need start on 127.0.0.1."""

from __future__ import annotations

import os

import pytest

pytest_plugins = ["servers.fixtures"]


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path_factory, monkeypatch):
    """Each test gets its own cache and index, and no tokens from the developer's environment."""
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("ORIGINSCAN_CACHE", str(cache))
    monkeypatch.setenv("ORIGINSCAN_INDEX", str(cache / "index.sqlite"))
    monkeypatch.setenv("ORIGINSCAN_STRICT_RULES", "1")  # a check emitting an undeclared rule id fails the test
    monkeypatch.setenv("HF_HUB_OFFLINE", os.environ.get("HF_HUB_OFFLINE", "0"))
    for var in ("HF_TOKEN", "GITHUB_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    # process-wide run state: a host found down, or Ctrl-C, belongs to one run (one test), not to the next
    from scanner import interrupt
    from scanner.sources import http

    http.BREAKER.reset()
    interrupt.STOP.clear()
