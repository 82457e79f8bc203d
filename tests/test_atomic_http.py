"""Small promises of the plumbing: reports get ordinary file modes, and no .netrc credential leaves the machine."""

from __future__ import annotations

import os
import stat
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from scanner.atomic import write_text_atomic
from scanner.sources.http import new_session


def test_atomic_writes_respect_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        write_text_atomic(tmp_path / "report.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "report.json").stat().st_mode) == 0o640


def test_netrc_credentials_are_never_sent(tmp_path, monkeypatch):
    seen: list[str | None] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            seen.append(self.headers.get("Authorization"))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        netrc = tmp_path / ".netrc"
        netrc.write_text("machine 127.0.0.1 login someone password hunter2\n")
        netrc.chmod(0o600)
        monkeypatch.setenv("NETRC", str(netrc))
        monkeypatch.setenv("HOME", str(tmp_path))
        new_session().get(f"http://127.0.0.1:{server.server_port}/x", timeout=10)
        new_session().get(f"http://127.0.0.1:{server.server_port}/y", headers={"Authorization": "Bearer t"}, timeout=10)
    finally:
        server.shutdown()
    assert seen == [None, "Bearer t"]
