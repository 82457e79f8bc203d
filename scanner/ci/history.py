"""Run history for sweeps (SQLite) and merging of shard reports.

Each stored finding keeps its key and coarse key (`Finding.key`, `Finding.coarse_key`: the one definition of "the
same finding", shared with SARIF fingerprints and pull-request mode), and `diff_last` pairs them with
`findings.match_keys` into a typed `RunDiff`. Rows stored before the key moved to `Finding.key` pair by their coarse
key, which kept its form.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Iterable
from contextlib import closing
from pathlib import Path
from typing import Any

from scanner.errors import UsageError
from scanner.findings import DiffEntry, Finding, RunDiff, Severity, match_keys
from scanner.results import TargetReport

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started TEXT NOT NULL,
    finished TEXT,
    tool_version TEXT,
    label TEXT,
    targets INTEGER NOT NULL DEFAULT 0,
    findings INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS run_targets (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    target TEXT NOT NULL,
    revision TEXT,
    error TEXT
);
CREATE TABLE IF NOT EXISTS findings (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    target TEXT NOT NULL,
    key TEXT NOT NULL,
    coarse TEXT NOT NULL,
    rule TEXT NOT NULL,
    severity TEXT NOT NULL,
    message TEXT NOT NULL,
    path TEXT,
    line INTEGER
);
CREATE INDEX IF NOT EXISTS findings_run ON findings(run_id);
CREATE INDEX IF NOT EXISTS run_targets_run ON run_targets(run_id);
"""


def default_history_path() -> Path:
    """ORIGINSCAN_HISTORY, else history.sqlite in the cache folder (ORIGINSCAN_CACHE or the user cache dir)."""
    import os

    if os.environ.get("ORIGINSCAN_HISTORY"):
        return Path(os.environ["ORIGINSCAN_HISTORY"])
    if os.environ.get("ORIGINSCAN_CACHE"):
        return Path(os.environ["ORIGINSCAN_CACHE"]) / "history.sqlite"
    import platformdirs

    return Path(platformdirs.user_cache_dir("originscan")) / "history.sqlite"


# -- the store ---------------------------------------------------------------------------------------------------
def _connect(db_path: str | Path) -> sqlite3.Connection:
    path = Path(db_path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), timeout=30)
        conn.execute("PRAGMA foreign_keys = ON")
        conn.executescript(SCHEMA)
        return conn
    except (sqlite3.DatabaseError, OSError) as exc:
        raise UsageError(f"history {path}: {exc}") from None


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def record_run(
    db_path: str | Path, reports: list[TargetReport], *, label: str | None = None, started: str | None = None
) -> int:
    """Store one run (its targets and active findings); returns the run id."""
    from scanner import __version__

    with closing(_connect(db_path)) as conn:
        try:
            with conn:
                active = [(r.target, f) for r in reports for f in r.active()]
                cur = conn.execute(
                    "INSERT INTO runs (started, finished, tool_version, label, targets, findings) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (started or _now(), _now(), __version__, label, len(reports), len(active)),
                )
                run_id = cur.lastrowid or 0  # set by every INSERT
                conn.executemany(
                    "INSERT INTO run_targets (run_id, target, revision, error) VALUES (?, ?, ?, ?)",
                    [(run_id, r.target, r.revision, r.error) for r in reports],
                )
                conn.executemany(
                    "INSERT INTO findings (run_id, target, key, coarse, rule, severity, message, path, line) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (run_id, t, f.key(t), f.coarse_key(t), f.rule, f.severity.name, f.message, f.path, f.line)
                        for t, f in active
                    ],
                )
        except sqlite3.DatabaseError as exc:
            raise UsageError(f"history {db_path}: {exc}") from None
    return run_id


def runs(db_path: str | Path) -> list[dict[str, Any]]:
    if not Path(db_path).exists():
        return []
    with closing(_connect(db_path)) as conn:
        cols = ("id", "started", "finished", "tool_version", "label", "targets", "findings")
        return [
            dict(zip(cols, row, strict=False))
            for row in conn.execute(f"SELECT {', '.join(cols)} FROM runs ORDER BY id")
        ]


def diff_last(db_path: str | Path, reports: list[TargetReport], *, before: int | None = None) -> RunDiff:
    """What is new, fixed and unchanged in `reports` compared with the latest stored run (or the latest before
    run id `before`). Findings of a target that could not be read this time are neither fixed nor new: the
    target is listed under `unverified`. Targets of the previous run that are gone are listed under `removed`."""
    prev_id: int | None = None
    prev_rows: list[tuple[Any, ...]] = []
    prev_targets: dict[str, str | None] = {}
    if Path(db_path).exists():
        with closing(_connect(db_path)) as conn:
            try:
                q = "SELECT max(id) FROM runs" + (" WHERE id < ?" if before is not None else "")
                row = conn.execute(q, (before,) if before is not None else ()).fetchone()
                prev_id = row[0] if row else None
                if prev_id is not None:
                    prev_rows = conn.execute(
                        "SELECT target, key, coarse, rule, severity, message, path, line FROM findings "
                        "WHERE run_id = ? ORDER BY rowid",
                        (prev_id,),
                    ).fetchall()
                    prev_targets = dict(
                        conn.execute("SELECT target, error FROM run_targets WHERE run_id = ?", (prev_id,)).fetchall()
                    )
            except sqlite3.DatabaseError as exc:
                raise UsageError(f"history {db_path}: {exc}") from None
    now_targets = {r.target: r for r in reports}
    head = [(r.target, f) for r in reports for f in r.active()]
    base = [row for row in prev_rows if row[0] in now_targets and not now_targets[row[0]].error]
    head_hit, base_hit = match_keys([(f.key(t), f.coarse_key(t)) for t, f in head], [(row[1], row[2]) for row in base])
    diff = RunDiff(
        previous_run=prev_id,
        unverified=sorted(t for t, r in now_targets.items() if r.error),
        removed=sorted(t for t in prev_targets if t not in now_targets),
        added=sorted(t for t in now_targets if prev_id is not None and t not in prev_targets),
    )
    for (t, f), hit in zip(head, head_hit, strict=False):
        (diff.unchanged if hit and prev_id is not None else diff.new).append(DiffEntry.of(t, f))
    for (target, key, _, rule, severity, message, path, line), hit in zip(base, base_hit, strict=False):
        if not hit:
            diff.fixed.append(DiffEntry(target, key, rule, Severity.parse(severity), message, path, line))
    for entries in (diff.new, diff.fixed, diff.unchanged):
        entries.sort(key=lambda e: (-e.severity, e.target, e.rule, e.path or ""))
    return diff


# -- shard reports -----------------------------------------------------------------------------------------------
def finding_from_json(d: dict[str, Any], where: str) -> Finding:
    try:
        return Finding(
            rule=str(d["rule"]),
            severity=Severity.parse(str(d["severity"])),
            message=str(d["message"]),
            path=d.get("path"),
            line=d.get("line") if isinstance(d.get("line"), int) else None,
            evidence=d.get("evidence") or {},
            suppressed=d.get("suppressed"),
            status=d.get("status"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise UsageError(f"{where}: not an originscan JSON report (bad finding: {exc})") from None


def reports_from_json(doc: Any, where: str) -> list[TargetReport]:
    if not isinstance(doc, dict) or not isinstance(doc.get("targets"), list):
        raise UsageError(f"{where}: not an originscan JSON report (no `targets` list)")
    out = []
    for t in doc["targets"]:
        if not isinstance(t, dict) or not isinstance(t.get("target"), str):
            raise UsageError(f"{where}: not an originscan JSON report (a target without a name)")
        out.append(
            TargetReport(
                t["target"],
                [finding_from_json(f, where) for f in t.get("findings") or []],
                revision=t.get("revision"),
                error=t.get("error"),
            )
        )
    return out


def reports_to_json(reports: list[TargetReport]) -> str:
    """The JSON contract document (what `scan --format json` prints)."""
    from scanner import __version__
    from scanner.knowledge import catalogue
    from scanner.report.render import render

    return render(reports, "json", catalogue(), version=__version__)


def merge_reports(json_files: Iterable[str | Path]) -> list[TargetReport]:
    """One list of reports from several shard outputs, sorted by target; a target present twice is kept once."""
    merged: dict[str, TargetReport] = {}
    files = [Path(p) for p in json_files]
    if not files:
        raise UsageError("merge: no shard reports given")
    for p in files:
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
        except OSError as exc:
            raise UsageError(f"{p}: {exc.strerror or exc}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise UsageError(f"{p}: not valid JSON ({exc})") from None
        for r in reports_from_json(doc, str(p)):
            merged.setdefault(r.target, r)
    return [merged[t] for t in sorted(merged)]
