"""The bounds every HTTP answer is read within (scanner/sources/http.py, hf.py, github.py), each on its own: the
hostile-server corpus (tests/hostile/test_hostile_remote.py) runs them end to end through every command."""

from __future__ import annotations

import gzip
import socket
import threading
import time
import zlib

import pytest
import requests
from helpers import assert_fires, assert_quiet, card_text, findings_of, scan

from scanner.errors import SourceError
from scanner.sources import http
from scanner.sources.hf import _check_served


def test_bounded_decoder_stops_a_gzip_bomb_at_the_limit_without_inflating_it():
    bomb = gzip.compress(b"\0" * (64 << 20))  # 64 MiB in about 64 KB
    d = http.BoundedDecoder("gzip", 1 << 20, "x")
    out = d.feed(bomb)
    assert len(out) == (1 << 20) + 1 and d.total > d.limit  # one byte over says "over", nothing more was made
    assert d.feed(bomb) == b""


@pytest.mark.parametrize(
    "encoding, body",
    [
        ("gzip", gzip.compress(b'{"a": 1}')),
        ("deflate", zlib.compress(b'{"a": 1}')),
        ("deflate", zlib.compress(b'{"a": 1}')[2:-4]),  # raw deflate, as some servers send it
        (None, b'{"a": 1}'),
        ("identity", b'{"a": 1}'),
    ],
)
def test_bounded_decoder_reads_what_servers_send(encoding, body):
    d = http.BoundedDecoder(encoding, 100, "x")
    assert d.feed(body) == b'{"a": 1}'


def test_bounded_decoder_refuses_an_encoding_it_cannot_bound():
    with pytest.raises(SourceError, match="unsupported Content-Encoding") as exc:
        http.BoundedDecoder("br", 100, "x")
    assert exc.value.rule == "source.malformed"


class _Drip:
    """A raw socket server: headers with a large Content-Length, then one byte every 0.2 s."""

    def __init__(self, encoding: str | None = None, body: bytes | None = None):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.encoding, self.body = encoding, body
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/x"

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        conn.recv(65536)
        extra = f"Content-Encoding: {self.encoding}\r\n" if self.encoding else ""
        length = len(self.body) if self.body is not None else 1 << 30
        conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {length}\r\n{extra}\r\n".encode())
        try:
            if self.body is not None:
                conn.sendall(self.body)
            while self.body is None:
                conn.sendall(b" ")
                time.sleep(0.2)
        except OSError:
            pass


def test_a_body_that_never_ends_is_cut_at_the_request_deadline(monkeypatch):
    monkeypatch.setenv("ORIGINSCAN_REQUEST_SECONDS", "1")
    started = time.monotonic()
    with pytest.raises(SourceError, match="no complete answer within 1 s") as exc:
        http.request("GET", _Drip().url, session=http.new_session(), timeout=(5, 5))
    assert exc.value.rule == "source.unreachable"
    assert time.monotonic() - started < 4  # the 5 s read timeout never fired: a byte came every 0.2 s


def test_an_api_answer_that_inflates_past_the_budget_is_refused(monkeypatch):
    monkeypatch.setattr(http, "MAX_API_BYTES", 1 << 20)
    server = _Drip("gzip", gzip.compress(b" " * (8 << 20)))
    with pytest.raises(SourceError, match="compression bomb") as exc:
        http.request("GET", server.url, session=http.new_session())
    assert exc.value.rule == "source.too_large"


def test_an_api_answer_is_decoded_as_before():
    server = _Drip("gzip", gzip.compress(b'{"ok": true}'))
    assert http.request("GET", server.url, session=http.new_session()).json() == {"ok": True}


def _answer(headers: dict[str, str], history: list[requests.Response] | None = None) -> requests.Response:
    r = requests.Response()
    r.headers.update(headers)
    r.history = history or []
    return r


def test_the_hub_serving_another_commit_than_the_listed_one_is_reported():
    listed = "a" * 40
    _check_served(_answer({"X-Repo-Commit": listed}), listed, None, "x")  # the same commit: quiet
    _check_served(_answer({}), listed, None, "x")  # a CDN answer names no commit: quiet
    with pytest.raises(SourceError, match="changed while it was read") as exc:
        _check_served(_answer({}, [_answer({"X-Repo-Commit": "b" * 40})]), listed, None, "x")  # on the redirect
    assert exc.value.rule == "source.changed"
    _check_served(_answer({"X-Repo-Commit": "b" * 40}), "main", None, "x")  # a branch name pins nothing


def test_an_lfs_file_whose_served_size_differs_from_the_listing_is_malformed():
    _check_served(_answer({"X-Linked-Size": "100"}), None, 100, "x")
    with pytest.raises(SourceError, match="listing gives 100 bytes") as exc:
        _check_served(_answer({"X-Linked-Size": "5368709120"}), None, 100, "x")
    assert exc.value.rule == "source.malformed"


def test_a_repo_that_changes_between_listing_and_reading_is_reported(tmp_path, monkeypatch):
    """The Hub answers downloads from another commit than the one it listed (tests/servers/hostile.py)."""
    from huggingface_hub import constants
    from servers.hostile import HostileHub
    from servers.hub import make_repo

    root = tmp_path / "hub"
    for name in ("hostile/changes_after_listing", "org/steady"):
        make_repo(root, name, {"README.md": card_text({"license": "mit"}), "config.json": '{"hidden_size": 8}'})
    server = HostileHub(root).start()
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "hf_home" / "token"))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    try:
        changed = scan("hf:hostile/changes_after_listing")
        assert_fires(changed, "source.changed")
        assert "listed at commit" in findings_of(changed, "source.changed")[0].message
        assert_quiet(scan("hf:org/steady"), "source.changed")
    finally:
        server.stop()
