"""One GitHub tracking issue per undeclared suspect of `originscan watch`: opened once, then updated.

An issue is found again by a hidden marker in its body naming the suspect repo and the watched model (hashed, so
nothing the suspect controls goes into a comment); a later run that finds the suspect again (a new revision, a
new p-value) rewrites the body and title. A closed issue stays closed: the owner has dealt with it, and the
marker keeps a second one from being opened. Declared derivatives get no issue. Never raises: the report is in
the run's output; the issues are best effort (one `::warning::` line when the API refuses).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from scanner.ci.actions import BEST_EFFORT_RETRY, workflow_command
from scanner.errors import SourceError
from scanner.report.ci import watch_issue
from scanner.sources.github import GitHubAPI
from scanner.watch_report import Suspect

MARKER_PREFIX = "<!-- originscan-watch "


def marker(repo: str, watched: str) -> str:
    digest = hashlib.sha256(f"{repo.lower()}\0{watched}".encode()).hexdigest()[:24]
    return f"{MARKER_PREFIX}{digest} -->"


def title(s: Suspect) -> str:
    return f"originscan watch: {s.repo} appears to derive from {s.watched} (undeclared)"[:250]


def body(s: Suspect, run_url: str | None = None) -> str:
    """The issue body (templates/watch_issue.md.j2), its first line the suspect's marker."""
    return watch_issue(s, marker(s.repo, s.watched), run_url)


def file_issues(
    suspects: list[Suspect],
    api_url: str,
    token: str | None,
    repo: str,
    *,
    run_url: str | None = None,
    log: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Open or update one issue per undeclared suspect. Returns [{"action", "number", "repo", "watched"}]."""
    log = log or (lambda line: print(line, flush=True))
    undeclared = [s for s in suspects if not s.declared]
    if not undeclared:
        return []
    if not token or not repo:
        log(workflow_command("warning", "originscan watch: no token or repository: suspects were not filed"))
        return []
    api = GitHubAPI(token, api_url, retry=BEST_EFFORT_RETRY)
    done: list[dict[str, Any]] = []
    try:
        existing: dict[str, dict[str, Any]] = {}
        for issue in api.iterate(f"/repos/{repo}/issues", {"state": "all", "per_page": "100"}):
            text = issue.get("body") or ""
            if "pull_request" not in issue and text.startswith(MARKER_PREFIX):
                existing.setdefault(text.split("\n", 1)[0].strip(), issue)
        for s in undeclared:
            mark = marker(s.repo, s.watched)
            payload = {"title": title(s), "body": body(s, run_url)}
            if mark in existing:
                num = existing[mark]["number"]
                api.send("PATCH", f"/repos/{repo}/issues/{num}", payload)
                done.append({"action": "updated", "number": num, "repo": s.repo, "watched": s.watched})
            else:
                made = api.send("POST", f"/repos/{repo}/issues", payload) or {}
                existing[mark] = made
                done.append({"action": "created", "number": made.get("number"), "repo": s.repo, "watched": s.watched})
    except (SourceError, OSError, ValueError) as exc:  # APIError or no answer: the report is elsewhere
        log(workflow_command("warning", f"originscan watch: could not file the suspects: {exc}"))
    return done


__all__ = ["file_issues", "marker", "body", "title"]
