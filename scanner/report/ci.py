"""What CI posts: the pull-request comment (also the step summary), a sweep's step summary, the nightly tracking
issue and a watch suspect's issue (Markdown), and the annotations (GitHub workflow commands). Templates in templates/*.md.j2 do the text; every `{{ … }}`
goes through `escape_markdown` like the Markdown report, since repo-derived text (card text, file and repo names)
lands in a comment that GitHub renders.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from scanner.findings import DiffEntry, Finding, RunDiff, Severity
from scanner.report.render import Raw, environment, escape_markdown, one_line
from scanner.report.sanitize import terminal_safe
from scanner.results import TargetReport
from scanner.watch_report import MAX_EVIDENCE, Suspect

MAX_COMMENT = 60_000  # GitHub refuses bodies over 65 536 characters
MAX_ROWS_NEW = 100
MAX_ROWS_EXISTING = 50
MAX_ISSUE_ROWS = 200
MAX_SUMMARY_ROWS = 50
MAX_EVIDENCE_ROWS = 15
MAX_ANNOTATIONS = 100
_SHA = re.compile(r"^[0-9a-fA-F]{7,64}$")


def md(text: Any, limit: int | None = None) -> str:
    """Repo-derived text made inert for a comment, a step summary or an issue: no raw HTML, no @-mention, no
    issue reference, no link (not even an autolink), one line, safe in a table cell."""
    return escape_markdown(one_line(text, limit))


def _render(template: str, **context: Any) -> str:
    return environment("markdown").get_template(template).render(**context)


@dataclass(frozen=True)
class Row:
    severity: str
    bold: bool
    rule: str
    where: str
    message: str


def _row(report: TargetReport, f: Finding) -> Row:
    t = "" if report.target in ("", ".") else report.target
    p = "/".join(x for x in (t, f.path or "") if x)
    return Row(
        f.severity.name, f.severity >= Severity.high, f.rule, p + (f":{f.line}" if p and f.line else ""), f.message
    )


def pr_comment(
    reports: Sequence[TargetReport],
    fail_on: Severity | None,
    *,
    version: str,
    base: str | None,
    head: str | None,
    renamed: Mapping[str, str | None] | None = None,
    deleted: Sequence[str] = (),
    notes: Sequence[str] = (),
    run_url: str | None = None,
) -> str:
    """The PR comment: head findings (their `status` set to "new" / "existing") against `fail_on`."""
    active = [(r, f) for r in reports for f in r.active()]
    active.sort(key=lambda rf: (-rf[1].severity, rf[0].target, rf[1].rule, rf[1].path or ""))
    new = [(r, f) for r, f in active if f.status != "existing"]
    old = [(r, f) for r, f in active if f.status == "existing"]
    counts = [
        {
            "severity": s.name,
            "new": sum(1 for _, f in new if f.severity == s),
            "existing": sum(1 for _, f in old if f.severity == s),
        }
        for s in sorted(Severity, reverse=True)
    ]
    body = _render(
        "pr_comment.md.j2",
        failing=sum(1 for _, f in new if fail_on is not None and f.severity >= fail_on),
        threshold=fail_on.name if fail_on is not None else "never",
        folders=len(reports),
        head=head[:12] if head and _SHA.match(head) else None,
        base=base[:12] if base and _SHA.match(base) else None,
        new=new,
        old=old,
        suppressed=sum(1 for r in reports for f in r.findings if f.suppressed is not None),
        counts=[c for c in counts if c["new"] or c["existing"]],
        sections=[
            {"existing": False, "rows": [_row(r, f) for r, f in new], "limit": MAX_ROWS_NEW},
            {"existing": True, "rows": [_row(r, f) for r, f in old], "limit": MAX_ROWS_EXISTING},
        ],
        renamed=sorted(((b, h) for h, b in (renamed or {}).items()), key=lambda bh: bh[1]),
        deleted=list(deleted),
        notes=list(notes),
        version=version,
        run_url=Raw(run_url) if run_url else None,
    )
    if len(body) > MAX_COMMENT:
        body = body[:MAX_COMMENT].rsplit("\n", 1)[0] + "\n\n… (truncated: see the step summary's reports)\n"
    return body


def workflow_command(command: str, message: str, **props: Any) -> str:
    """`::command k=v,…::message` with GitHub's escaping (data: % \\r \\n; properties also : and ,)."""

    def data(s: str) -> str:
        return s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")

    def prop(s: str) -> str:
        return data(s).replace(":", "%3A").replace(",", "%2C")

    ps = ",".join(f"{k}={prop(str(v))}" for k, v in props.items() if v is not None and v != "")
    return f"::{command}{' ' + ps if ps else ''}::{data(message)}"


def annotation_commands(reports: Sequence[TargetReport], fail_on: Severity | None) -> list[str]:
    """One ::error / ::warning / ::notice workflow command per new active finding (at most MAX_ANNOTATIONS)."""
    out = []
    for r in reports:
        for f in r.active():
            if f.status == "existing":
                continue
            if fail_on is not None and f.severity >= fail_on:
                level = "error"
            elif f.severity >= Severity.medium:
                level = "warning"
            else:
                level = "notice"
            t = "" if r.target in ("", ".") else r.target
            # A finding without a file (a missing LICENSE, say) is annotated on the run, not on a folder.
            file = "/".join(x for x in (t, f.path) if x) if f.path else None
            out.append(
                workflow_command(
                    level,
                    terminal_safe(f.message)[:1000],
                    file=terminal_safe(file) if file else None,
                    line=f.line if file and f.line else None,
                    title=f"originscan {f.rule} ({f.severity.name})",
                )
            )
    return out[:MAX_ANNOTATIONS]


def could_not_run(message: str) -> str:
    """The step summary of a job that could not run."""
    return _render("pr_not_run.md.j2", message=message)


def sweep_summary(diff: RunDiff, limit: int = MAX_SUMMARY_ROWS) -> str:
    """A sweep's diff for the Actions step summary: counts, then the new and fixed findings."""
    return _render("sweep_summary.md.j2", diff=diff, limit=limit)


def tracking_issue(
    diff: RunDiff, urgent: Sequence[DiffEntry], run_url: str | None = None, max_body: int = MAX_COMMENT
) -> str:
    """The nightly sweep's tracking issue: the `urgent` new findings, and what was fixed."""
    body = _render(
        "nightly_issue.md.j2",
        diff=diff,
        urgent=list(urgent),
        limit=MAX_ISSUE_ROWS,
        run_url=Raw(run_url) if run_url else None,
    )
    if len(body) > max_body:
        body = body[:max_body] + "\n\n… (truncated)\n"
    return body


def watch_issue(suspect: Suspect, marker: str, run_url: str | None = None) -> str:
    """One watch suspect's issue: the verdict, the bases its card declares, the evidence as rows of its JSON."""
    rows = [
        (e.kind, ", ".join(f"{k}={v}" for k, v in e.to_json().items() if k != "kind"))
        for e in suspect.verdict.evidence[:MAX_EVIDENCE]
    ][:MAX_EVIDENCE_ROWS]
    return _render(
        "watch_issue.md.j2",
        s=suspect,
        v=suspect.verdict,
        marker=Raw(marker),
        bases=suspect.declared_bases,
        rows=rows,
        run_url=Raw(run_url) if run_url else None,
    )


__all__ = [
    "annotation_commands",
    "could_not_run",
    "md",
    "pr_comment",
    "sweep_summary",
    "tracking_issue",
    "watch_issue",
    "workflow_command",
]
