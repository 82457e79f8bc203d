"""One GitHub tracking issue per undeclared suspect of `originscan watch`: opened once, then updated.

An issue is found again by a hidden marker in its body naming the suspect repo and the watched model (hashed, so
nothing the suspect controls goes into a comment); a later run that finds the suspect again (a new revision, a
new p-value) rewrites the body and title. A closed issue stays closed: the owner has dealt with it, and the
marker keeps a second one from being opened. Declared derivatives get no issue. Never raises: the report is in
the run's output; the issues are best effort (one `::warning::` line when the API refuses).
"""
from __future__ import annotations

import hashlib
from typing import Any, Callable

from scanner.ci.github import APIError, GitHubAPI, md, workflow_command

MARKER_PREFIX = "<!-- originscan-watch "
MAX_EVIDENCE_ROWS = 15


def marker(repo: str, watched: str) -> str:
    digest = hashlib.sha256(f"{repo.lower()}\0{watched}".encode()).hexdigest()[:24]
    return f"{MARKER_PREFIX}{digest} -->"


def title(s: dict[str, Any]) -> str:
    return f"originscan watch: {s['repo']} appears to derive from {s['watched']} (undeclared)"[:250]


def body(s: dict[str, Any], run_url: str | None = None) -> str:
    lines = [marker(s["repo"], s["watched"]), f"## {md(s['repo'])} appears to derive from {md(s['watched'])}", ""]
    lines.append(f"originscan tested the null hypothesis that the two models were initialised independently and "
                 f"rejects it: p = 10^{s['log10_p_value']:.1f} (score {s['score']:.2f}, verdict `{s['verdict']}`). "
                 "Its card does not name the watched model (or a declared derivative of it) as its base.")
    lines += ["", f"- Suspect: {md(s['links'].get('repo', ''))} at revision `{md(s.get('revision') or '?')}`"]
    lines.append(f"- Files: {md(s['links'].get('files', ''))}")
    if s["links"].get("watched"):
        lines.append(f"- Watched model: {md(s['links']['watched'])}")
    bases = next((e.get("bases") for e in s["evidence"] if e.get("kind") == "declared-bases"), [])
    lines.append(f"- Bases its card declares: {', '.join(md(b) for b in bases) or 'none'}")
    if s.get("reason"):
        lines.append(f"- Why: {md(s['reason'], 400)}")
    rows = [e for e in s["evidence"] if e.get("kind") != "declared-bases"][:MAX_EVIDENCE_ROWS]
    if rows:
        lines += ["", "<details><summary>Evidence</summary>", "", "| kind | detail |", "|---|---|"]
        for e in rows:
            detail = ", ".join(f"{k}={v}" for k, v in e.items() if k != "kind")
            lines.append(f"| {md(e.get('kind', ''))} | {md(detail, 300)} |")
        lines += ["", "</details>"]
    if run_url:
        lines += ["", f"[Workflow run]({run_url})"]
    lines += ["", "<sub>Opened by `originscan watch`; later runs update this issue instead of opening another. "
              "Close it once handled: it is not reopened.</sub>"]
    return "\n".join(lines) + "\n"


def file_issues(suspects: list[dict[str, Any]], api_url: str, token: str | None, repo: str, *,
                run_url: str | None = None, log: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Open or update one issue per undeclared suspect. Returns [{"action", "number", "repo", "watched"}]."""
    log = log or (lambda line: print(line, flush=True))
    undeclared = [s for s in suspects if not s.get("declared")]
    if not undeclared:
        return []
    if not token or not repo:
        log(workflow_command("warning", "originscan watch: no token or repository: suspects were not filed"))
        return []
    api = GitHubAPI(api_url, token)
    done: list[dict[str, Any]] = []
    try:
        existing: dict[str, dict[str, Any]] = {}
        for issue in api.paginate(f"/repos/{repo}/issues", {"state": "all", "per_page": "100"}):
            text = issue.get("body") or ""
            if "pull_request" not in issue and text.startswith(MARKER_PREFIX):
                existing.setdefault(text.split("\n", 1)[0].strip(), issue)
        for s in undeclared:
            mark = marker(s["repo"], s["watched"])
            payload = {"title": title(s), "body": body(s, run_url)}
            if mark in existing:
                num = existing[mark]["number"]
                api.request("PATCH", f"/repos/{repo}/issues/{num}", payload)
                done.append({"action": "updated", "number": num, "repo": s["repo"], "watched": s["watched"]})
            else:
                made = api.request("POST", f"/repos/{repo}/issues", payload)
                existing[mark] = made
                done.append({"action": "created", "number": made.get("number"), "repo": s["repo"],
                             "watched": s["watched"]})
    except (APIError, OSError, ValueError) as exc:
        log(workflow_command("warning", f"originscan watch: could not file the suspects: {exc}"))
    return done


__all__ = ["file_issues", "marker", "body", "title"]
