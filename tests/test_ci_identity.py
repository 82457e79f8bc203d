"""One identity for "the same finding" (SARIF fingerprints, sweep history, PR new-vs-existing) and the one GitHub
REST client, which never follows a `Link: next` to another host with the token."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from scanner.ci.github import mark_status
from scanner.ci.history import diff_last, record_run
from scanner.findings import Finding, Severity
from scanner.knowledge import catalogue
from scanner.report.render import FINGERPRINT_KEY, sarif_log
from scanner.results import TargetReport
from scanner.sources.github import GitHubAPI

TOKEN = "ghs_identitySECRET"


def test_sarif_history_and_pr_agree_on_the_same_finding(tmp_path):
    before = TargetReport(
        "models/a", [Finding("license.incompatible", Severity.high, "score 0.91 against x", path="README.md", line=3)]
    )
    after = TargetReport(
        "models/a",
        [
            Finding("license.incompatible", Severity.high, "score 0.87 against x", path="README.md", line=9),
            Finding("card.missing_field", Severity.low, "no license field"),
        ],
    )
    sarif = sarif_log([after], catalogue(), version="0")["runs"][0]["results"]
    fingerprints = {r["ruleId"]: r["partialFingerprints"][FINGERPRINT_KEY] for r in sarif}

    db = tmp_path / "h.sqlite"
    record_run(db, [before])
    diff = diff_last(db, [after])
    assert [e.key for e in diff.unchanged] == [fingerprints["license.incompatible"]]
    assert [e.key for e in diff.new] == [fingerprints["card.missing_field"]]

    mark_status(after, before, aliases=())
    assert [f.status for f in after.findings] == ["existing", "new"]
    # A different message on the same rule and file is a different key, but still pairs on the coarse key.
    other = Finding("license.incompatible", Severity.high, "a different text", path="README.md")
    assert other.key("models/a") != after.findings[0].key("models/a")
    assert other.coarse_key("models/a") == after.findings[0].coarse_key("models/a")


def test_aliases_make_a_renamed_folder_the_same_finding():
    old = Finding("card.name", Severity.low, "old-name is not the name in config.json")
    new = Finding("card.name", Severity.low, "new-name is not the name in config.json")
    assert old.key("m") != new.key("m")
    assert old.key("m", ["old-name", "new-name"]) == new.key("m", ["old-name", "new-name"])


def _server(handler_pages, seen):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            seen.append((self.path, self.headers.get("Authorization")))
            items, link = handler_pages(self)
            data = json.dumps(items).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if link:
                self.send_header("Link", f'<{link}>; rel="next"')
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def test_pagination_never_follows_next_to_another_host():
    elsewhere: list = []
    other = _server(lambda h: ([{"id": 99}], None), elsewhere)
    home: list = []
    port = other.server_address[1]
    same_port: dict = {}

    def pages(h):
        if "page=2" in h.path:
            return [{"id": 2}], f"http://localhost:{port}/steal?page=3"  # another host: not followed
        return [{"id": 1}], f"http://127.0.0.1:{same_port['p']}/repos/o/r/issues?page=2"

    srv = _server(pages, home)
    same_port["p"] = srv.server_address[1]
    try:
        api = GitHubAPI(TOKEN, f"http://127.0.0.1:{same_port['p']}")
        assert [i["id"] for i in api.iterate("/repos/o/r/issues")] == [1, 2]
        assert len(home) == 2 and all(auth == f"Bearer {TOKEN}" for _, auth in home)
        assert elsewhere == []
    finally:
        srv.shutdown()
        other.shutdown()


def test_every_registered_format_renders_through_the_one_registry():
    from scanner.cli import FORMATS as CLI_FORMATS
    from scanner.report.formats import BY_NAME, FORMATS
    from scanner.report.render import render

    assert CLI_FORMATS is FORMATS
    report = TargetReport("models/a", [Finding("license.missing", Severity.high, "no licence")])
    for name, spec in BY_NAME.items():
        assert callable(spec.load())
        out = render([report], name, catalogue(), version="0")
        if spec.catalogue:  # a findings report (the AI-BOMs describe the model, not the findings)
            assert "license.missing" in out, name
        else:
            assert json.loads(out), name
    assert len({spec.extension for spec in BY_NAME.values()}) == len(BY_NAME)  # CI writes one file per format
