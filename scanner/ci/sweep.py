"""`originscan sweep`: every model repo of one or more organisations, sharded and in parallel, with history.

One broken repo (or one org whose listing fails) becomes a `source.*` finding on that target; the rest is
scanned. `--shard K/N` keeps the targets whose stable hash (sha256 of the target name) falls in bucket K of N, so
every shard of a job matrix sees a disjoint part and the union of the shards is the whole sweep.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scanner import interrupt
from scanner.ci.actions import BEST_EFFORT_RETRY, append, run_url, workflow_command
from scanner.errors import SourceError, UsageError
from scanner.findings import RunDiff, Severity
from scanner.knowledge import finding
from scanner.report.ci import sweep_summary, tracking_issue
from scanner.report.paths import local_root, shown_report
from scanner.results import TargetReport
from scanner.shards import in_shard, select_shard

if TYPE_CHECKING:  # annotations only
    from rich.progress import Progress

    from scanner.policy import Policy
    from scanner.provenance.index import Index

ISSUE_MARKER = "<!-- originscan-nightly -->"  # the first line of templates/nightly_issue.md.j2


def _broken(target: str, exc: BaseException, rule: str | None = None) -> TargetReport:
    rule = rule or getattr(exc, "rule", None) or "source.unreadable"
    msg = str(exc) or type(exc).__name__
    if not msg.startswith(target):
        msg = f"{target}: {msg}"
    return TargetReport(target, [finding(rule, msg[:500])], error=msg[:500])


def list_targets(orgs: list[str]) -> tuple[list[str], list[TargetReport]]:
    """Every repo target of `orgs` (deduplicated, sorted), and a report for each org that could not be listed."""
    from scanner.sources.resolve import list_org

    targets: set[str] = set()
    failed: list[TargetReport] = []
    for org in orgs:
        try:
            targets.update(list_org(org))
        except UsageError:
            raise
        except Exception as exc:  # SourceError, network: the org becomes a finding, other orgs go on
            failed.append(_broken(org, exc, "source.unreachable" if not isinstance(exc, SourceError) else None))
    return sorted(targets), failed


def _progress(total: int, quiet: bool) -> Progress | None:
    """A rich progress bar on stderr when it is a terminal and not quiet; otherwise a no-op."""
    if quiet or total == 0 or not sys.stderr.isatty() or os.environ.get("CI"):
        return None
    return progress_bar("sweep")


def progress_bar(label: str) -> Progress:
    """The one progress bar of every long command (sweep, watch, index update): on stderr, with done/total, the
    time elapsed and the time left (a count and a pulse while the total is unknown), gone when the run ends."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.description}"),
        console=Console(stderr=True),
        transient=True,
    )


def scan_all(
    targets: list[str],
    *,
    policy: Policy,
    index: Index | None = None,
    workers: int = 4,
    quiet: bool = True,
    scan: Callable[..., TargetReport] | None = None,
) -> list[TargetReport]:
    """Scan `targets` with at most `workers` at a time; results in the order of `targets`."""
    from scanner.pipeline import scan_target

    scan = scan or scan_target
    local = threading.local()
    index_path = getattr(index, "path", None)

    def thread_index() -> Index | None:
        # sqlite3 connections belong to their thread: each worker opens its own view of the index.
        if index is None or index_path is None or workers <= 1:
            return index
        if not hasattr(local, "index"):
            from scanner.provenance.index import Index

            local.index = Index(index_path)
        mine: Index = local.index
        return mine

    def one(t: str) -> TargetReport:
        try:
            return scan(t, policy, thread_index())
        except Exception as exc:  # a broken repo never stops the sweep
            return _broken(t, exc)

    results: dict[str, TargetReport] = {}
    progress = _progress(len(targets), quiet)
    task = progress.add_task("", total=len(targets)) if progress is not None else None
    if progress is not None:
        progress.start()
    try:
        with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="originscan-sweep") as pool:
            futures = {pool.submit(one, t): t for t in targets}
            try:
                for fut in as_completed(futures):
                    t = futures[fut]
                    results[t] = fut.result()
                    if progress is not None and task is not None:
                        progress.update(task, advance=1, description=t[-40:])
            except BaseException:  # Ctrl-C: what has not started never starts
                interrupt.abandon(pool, futures)
                raise
    finally:
        if progress is not None:
            progress.stop()
    return [results[t] for t in targets]


def sweep(
    orgs: list[str],
    *,
    policy: Policy,
    index: Index | None = None,
    history_db: str | Path | None = None,
    shard: tuple[int, int] | None = None,
    workers: int = 4,
    quiet: bool = False,
) -> tuple[list[TargetReport], RunDiff | None]:
    """Scan every repo of `orgs` (this shard of them); record the run and diff it with the previous one.

    Returns (reports sorted by target, diff or None when no history is kept). A sharded sweep should keep no
    history of its own: merge the shards (`history.merge_reports`) and call `record_and_diff` once."""
    if not orgs:
        raise UsageError("sweep: name at least one organisation (hf:ORG or github:ORG)")
    from scanner.sources.hf import listed_commits

    with listed_commits():  # the listing's commits stand in for each unchanged repo's own sha request
        targets, failed = list_targets(orgs)
        root = local_root(targets)  # of every listed target, not this shard's: shards show targets alike
        targets = select_shard(targets, shard)
        failed = [r for r in failed if in_shard(r.target, shard)]
        reports = scan_all(targets, policy=policy, index=index, workers=workers, quiet=quiet)
    # as every report format shows them (no absolute local path, relative to the scan root): the shards' JSON then
    # merges to this very run, and same-named folders keep their own history
    reports = sorted((shown_report(r, root=root) for r in reports + failed), key=lambda r: r.target)
    # A run that listed nothing is not recorded: it would make every finding of the last run look fixed.
    nothing_listed = bool(failed) and not targets
    diff = record_and_diff(history_db, reports) if history_db and not nothing_listed else None
    return reports, diff


def screen_note(index: Index | None) -> str | None:
    """One line when registered upstreams have no head sketch (an index written before it existed, whose stored
    rows do not hold it): each repo's screen against them reads scattered token rows instead of the rows that come
    with its header. None when every comparable upstream has one."""
    missing = index.without_heads() if index is not None else []
    if not missing:
        return None
    named = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
    return (
        f"originscan sweep: {len(missing)} registered upstream(s) have no head sketch ({named}): their screens read "
        "scattered token rows, a few requests per repo more; `originscan index add` each again to add it"
    )


def record_and_diff(history_db: str | Path, reports: list[TargetReport]) -> RunDiff:
    """Diff `reports` with the last stored run, then store them as the newest run."""
    from scanner.ci.history import diff_last, record_run

    diff = diff_last(history_db, reports)
    diff.run = record_run(history_db, reports)
    return diff


# -- the tracking issue ------------------------------------------------------------------------------------------
def nightly_issue(
    diff: RunDiff,
    api_url: str,
    token: str | None,
    repo: str,
    title: str = "originscan nightly",
    *,
    threshold: Severity = Severity.high,
    run_url: str | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any] | None:
    """New findings at `threshold` or above open (first time) or update (PATCH, reopening) ONE tracking issue,
    found by a hidden marker in its body. Returns {"action": "created"|"updated", "number": N, "url": …}, or
    None when there is nothing new to report or the API refused (a `::warning::` is printed; never raises)."""
    from scanner.sources.github import GitHubAPI

    log = log or (lambda line: print(line, flush=True))
    urgent = [e for e in diff.new if e.severity >= threshold]
    if not urgent:
        return None
    if not token or not repo:
        log(workflow_command("warning", "originscan: no token or repository: the tracking issue was not updated"))
        return None
    api = GitHubAPI(token, api_url, retry=BEST_EFFORT_RETRY)
    body = tracking_issue(diff, urgent, run_url)
    try:
        existing = next(
            (
                issue
                for issue in api.iterate(f"/repos/{repo}/issues", {"state": "all", "per_page": "100"})
                if "pull_request" not in issue and ISSUE_MARKER in (issue.get("body") or "")
            ),
            None,
        )
        if existing is None:
            made = api.send("POST", f"/repos/{repo}/issues", {"title": title, "body": body}) or {}
            return {"action": "created", "number": made.get("number"), "url": made.get("html_url")}
        num = existing["number"]
        api.send("PATCH", f"/repos/{repo}/issues/{num}", {"title": title, "body": body, "state": "open"})
        return {"action": "updated", "number": num, "url": existing.get("html_url")}
    except Exception as exc:  # APIError, network: the report is elsewhere; the issue is best effort
        log(workflow_command("warning", f"originscan: could not update the tracking issue: {exc}"))
        return None


def publish_diff(diff: RunDiff, *, diff_json: str | Path | None = None, tracking_issue: bool = False) -> list[str]:
    """Where a sweep's new / fixed / unchanged goes besides the report: a JSON file, the Actions step summary and
    the tracking issue. Returns the lines to print on stderr."""
    import json

    from scanner.atomic import write_text_atomic

    lines = [f"originscan sweep: {diff.summary()}"]
    if diff_json:
        write_text_atomic(diff_json, json.dumps(diff.to_json(), indent=2))
    append(os.environ.get("GITHUB_STEP_SUMMARY"), sweep_summary(diff))
    if tracking_issue:
        res = nightly_issue(
            diff,
            os.environ.get("GITHUB_API_URL") or "https://api.github.com",
            os.environ.get("GITHUB_TOKEN"),
            os.environ.get("GITHUB_REPOSITORY", ""),
            run_url=run_url(),
        )
        if res:
            lines.append(f"originscan sweep: tracking issue #{res['number']} {res['action']}")
    return lines


def new_finding_fails(diff: RunDiff, fail_on: Severity) -> bool:
    """With history only what is new since the last run fails a nightly job."""
    return any(e.severity >= fail_on for e in diff.new)
