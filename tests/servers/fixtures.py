"""Fixtures for the local Hub and GitHub servers. Registered from tests/conftest.py with
`pytest_plugins = ["servers.fixtures"]`."""

from __future__ import annotations

import pytest

from .github import GitHubServer
from .hub import HubServer

HF_TOKEN_OK = "hf_test_token_ok"
GH_TOKEN_OK = "ghp_test_token_ok"


@pytest.fixture
def no_sleep(monkeypatch):
    """Retries wait instantly; the waits asked for are recorded (to check Retry-After is honoured)."""
    from scanner.sources import http

    waits: list[float] = []
    monkeypatch.setattr(http, "_sleep", waits.append)
    return waits


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """A running local Hub, with HF_ENDPOINT pointing at it; repos go under `hub.root`."""
    root = tmp_path / "hub"
    root.mkdir()
    server = HubServer(root, tokens={HF_TOKEN_OK}).start()
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    # A developer's stored Hub token must not be sent, even to a local server (the paths are read at import).
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "hf_home" / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "hf_home" / "stored_tokens"))
    yield server
    server.stop()


@pytest.fixture
def github(tmp_path, monkeypatch):
    """A running local GitHub API, with GITHUB_API_URL pointing at it; clone URLs are file:// bare repos."""
    server = GitHubServer(tmp_path / "gh", tokens={GH_TOKEN_OK}).start()
    monkeypatch.setenv("GITHUB_API_URL", server.url)
    yield server
    server.stop()
