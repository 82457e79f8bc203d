"""The GitHub Actions runtime surface every CI command shares: workflow commands (rendered in report/ci.py), the
run's URL, appending to the
step summary / output files, and the retry policy of best-effort API writes (comments, issues)."""

from __future__ import annotations

import os
import re

from scanner.report.ci import workflow_command
from scanner.sources import http

__all__ = ["BEST_EFFORT_RETRY", "REPO_RE", "append", "run_url", "workflow_command"]

REPO_RE = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
# A comment or an issue is best effort: one quick retry, not the remote sources' patient policy.
BEST_EFFORT_RETRY = http.RetryPolicy(max_tries=2, base_wait=0.5, max_wait=1.0, max_total=10.0)


def run_url() -> str | None:
    """This workflow run's page, from GITHUB_SERVER_URL / GITHUB_REPOSITORY / GITHUB_RUN_ID (None unless all
    three look right: the URL goes into Markdown unescaped)."""
    server = os.environ.get("GITHUB_SERVER_URL", "")
    repo = os.environ.get("GITHUB_REPOSITORY", "")
    run = os.environ.get("GITHUB_RUN_ID", "")
    if re.match(r"^https://[A-Za-z0-9.-]+(:\d+)?$", server) and REPO_RE.match(repo) and run.isdigit():
        return f"{server}/{repo}/actions/runs/{run}"
    return None


def append(path: str | None, text: str) -> None:
    """Append to $GITHUB_STEP_SUMMARY or $GITHUB_OUTPUT; a missing or unwritable file costs nothing."""
    if not path:
        return
    try:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(text)
    except OSError:
        pass
