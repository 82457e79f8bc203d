"""Issue 19, "never silently pass": what was not checked is said, an unreachable Hub fails loudly and fast, Ctrl-C
stops a run within a second, and bad invocations are usage errors.

Network rows run against the local Hub test server (tests/servers/hub.py) with its port closed or with every request
failing; Ctrl-C is a real SIGINT to a real `originscan` subprocess."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest
from helpers import (
    assert_fires,
    assert_quiet,
    make_repo,
    noised,
    register,
    run_cli,
    scan,
    tiny_llm,
)

from scanner.provenance.index import Index

ENTRY = Path(sys.executable).parent / "originscan"  # the installed console script
FORMATS = ("text", "json", "markdown", "sarif", "html", "cyclonedx", "spdx")


def closed_port() -> str:
    """A localhost URL nothing listens on (bound, then released: connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# == weights.not_compared ==========================================================================================
@pytest.fixture
def upstream(tmp_path):
    tensors = tiny_llm(seed=1)
    repo = make_repo(tmp_path / "up", "base", card={"license": "apache-2.0"}, weights={"model.safetensors": tensors})
    return repo, tensors


def test_not_compared_fires_without_an_index(tmp_path, upstream):
    _, tensors = upstream
    repo = make_repo(
        tmp_path, "ft", card={"license": "apache-2.0"}, weights={"model.safetensors": noised(tensors, 0.1)}
    )
    f = assert_fires(scan(repo, index=None), "weights.not_compared")[0]
    assert "no fingerprint index" in f.message and "originscan index update" in f.message
    assert f.evidence["command"] == "originscan index update"


def test_not_compared_fires_for_an_empty_index(tmp_path, upstream):
    _, tensors = upstream
    repo = make_repo(tmp_path, "ft", card={"license": "apache-2.0"}, weights={"model.safetensors": tensors})
    index = Index(tmp_path / "empty.sqlite")
    try:
        f = assert_fires(scan(repo, index=index), "weights.not_compared")[0]
    finally:
        index.close()
    assert "registers no upstream" in f.message


def test_not_compared_fires_when_no_upstream_has_that_shape(tmp_path, upstream):
    up, _ = upstream
    index = register(tmp_path / "idx.sqlite", up, "acme/base", "apache-2.0")
    wider = tiny_llm(seed=9, d=64)  # hidden size 64: the registered upstream has 48
    repo = make_repo(tmp_path, "wide", card={"license": "apache-2.0"}, weights={"model.safetensors": wider})
    try:
        f = assert_fires(scan(repo, index=index), "weights.not_compared")[0]
    finally:
        index.close()
    assert "hidden size 64" in f.message and f.evidence["command"] == "originscan index add hf:OWNER/NAME"


def test_not_compared_fires_for_lfs_pointers_without_an_index(tmp_path):
    pointer = "version https://git-lfs.github.com/spec/v1\noid sha256:" + "ab" * 32 + "\nsize 123456\n"
    repo = make_repo(tmp_path, "ptr", card={"license": "mit"}, files={"model.safetensors": pointer})
    f = assert_fires(scan(repo, index=None), "weights.not_compared")[0]
    assert "Git LFS pointers" in f.message and "git lfs pull" in f.evidence["command"]


def test_not_compared_quiet_when_the_weights_were_compared(tmp_path, upstream):
    """Same shape as a registered upstream: compared (the sketch screen rules it out as independent), so nothing is
    said about not comparing."""
    up, _ = upstream
    index = register(tmp_path / "idx.sqlite", up, "acme/base", "apache-2.0")
    other = make_repo(tmp_path, "other", card={"license": "mit"}, weights={"model.safetensors": tiny_llm(seed=7)})
    try:
        report = scan(other, index=index)
    finally:
        index.close()
    assert_quiet(report, "weights.not_compared")
    assert not [f for f in report.findings if f.family == "weights"]


def test_not_compared_quiet_without_weights(tmp_path):
    repo = make_repo(tmp_path, "cardonly", card={"license": "mit"})
    assert_quiet(scan(repo, index=None), "weights.not_compared")


@pytest.mark.parametrize("fmt", FORMATS)
def test_not_compared_is_said_in_every_format(tmp_path, upstream, fmt):
    _, tensors = upstream
    repo = make_repo(tmp_path, "ft", card={"license": "apache-2.0"}, weights={"model.safetensors": tensors})
    env = {"ORIGINSCAN_INDEX": str(tmp_path / "absent" / "index.sqlite")}
    r = run_cli("scan", str(repo), "--format", fmt, env=env)
    assert r.returncode == 0, r.stderr
    assert "weights.not_compared" in r.stdout and "originscan index update" in r.stdout


def test_fail_on_info_fails_when_weights_were_not_compared(tmp_path, upstream):
    _, tensors = upstream
    repo = make_repo(tmp_path, "ft", card={"license": "apache-2.0"}, weights={"model.safetensors": tensors})
    env = {"ORIGINSCAN_INDEX": str(tmp_path / "absent" / "index.sqlite")}
    assert run_cli("scan", str(repo), "--fail-on", "info", "-f", "json", env=env).returncode == 1
    assert run_cli("scan", str(repo), "-f", "json", env=env).returncode == 0
