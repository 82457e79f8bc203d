"""Run history for sweeps (SQLite), finding keys shared with pull-request mode, and merging of shard reports.

A finding's identity across runs and revisions is its *key*: sha256 of rule | target | path | message, where the
message is normalised (lower case, numbers blanked, whitespace collapsed, the target's own folder name replaced by a
placeholder). The line number is not part of it, so a card that grew a paragraph keeps its findings "existing".
Matching is two-pass: exact key first, then — for what is left — the coarse key rule | target | path, so a finding
whose wording changed (a new upstream version in the text, a renamed folder) is still the same finding.
Both passes are multisets: two identical findings on the base and three on the head make one new.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import sqlite3
from collections import defaultdict
from contextlib import closing
from pathlib import Path
from typing import Any, Iterable, Sequence

from scanner.errors import UsageError
from scanner.findings import Finding, Severity, TargetReport

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


# -- keys --------------------------------------------------------------------------------------------------------
def _norm_message(message: str, aliases: Iterable[str] = ()) -> str:
    s = message
    for a in sorted({a for a in aliases if a}, key=len, reverse=True):
        s = s.replace(a, "\x00target\x00")
    s = re.sub(r"\d+(?:\.\d+)?(?:e-?\d+)?", "0", s.lower())
    return re.sub(r"\s+", " ", s).strip()


def finding_key(target: str, f: Finding, aliases: Iterable[str] = ()) -> str:
    """Stable identity of `f` on `target`; `aliases` (folder names, roots) are blanked out of the message."""
    raw = "\x1f".join((f.rule, target, f.path or "", _norm_message(f.message, aliases)))
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:32]


def coarse_key(target: str, f: Finding) -> str:
    raw = "\x1f".join((f.rule, target, f.path or ""))
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:32]


def pair(head: Sequence[tuple[str, str]], base: Sequence[tuple[str, str]]) -> tuple[list[bool], list[bool]]:
    """Which (key, coarse) items of `head` and of `base` have a partner on the other side (multiset matching)."""
    head_hit = [False] * len(head)
    base_hit = [False] * len(base)
    by_key: dict[str, list[int]] = defaultdict(list)
    for j, (k, _) in enumerate(base):
        by_key[k].append(j)
    for i, (k, _) in enumerate(head):
        if by_key.get(k):
            base_hit[by_key[k].pop(0)] = True
            head_hit[i] = True
    by_coarse: dict[str, list[int]] = defaultdict(list)
    for j, (_, c) in enumerate(base):
        if not base_hit[j]:
            by_coarse[c].append(j)
    for i, (_, c) in enumerate(head):
        if not head_hit[i] and by_coarse.get(c):
            base_hit[by_coarse[c].pop(0)] = True
            head_hit[i] = True
    return head_hit, base_hit


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
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _item(target: str, f: Finding) -> dict[str, Any]:
    return {"target": target, "key": finding_key(target, f), "rule": f.rule, "severity": f.severity.name,
            "message": f.message, "path": f.path, "line": f.line}


def record_run(db_path: str | Path, reports: list[TargetReport], *, label: str | None = None,
               started: str | None = None) -> int:
    """Store one run (its targets and active findings); returns the run id."""
    from scanner import __version__

    with closing(_connect(db_path)) as conn:
        try:
            with conn:
                active = [(r.target, f) for r in reports for f in r.active()]
                cur = conn.execute(
                    "INSERT INTO runs (started, finished, tool_version, label, targets, findings) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (started or _now(), _now(), __version__, label, len(reports), len(active)))
                run_id = int(cur.lastrowid)
                conn.executemany("INSERT INTO run_targets (run_id, target, revision, error) VALUES (?, ?, ?, ?)",
                                 [(run_id, r.target, r.revision, r.error) for r in reports])
                conn.executemany(
                    "INSERT INTO findings (run_id, target, key, coarse, rule, severity, message, path, line) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(run_id, t, finding_key(t, f), coarse_key(t, f), f.rule, f.severity.name, f.message, f.path,
                      f.line) for t, f in active])
        except sqlite3.DatabaseError as exc:
            raise UsageError(f"history {db_path}: {exc}") from None
    return run_id


def last_run(db_path: str | Path) -> int | None:
    if not Path(db_path).exists():
        return None
    with closing(_connect(db_path)) as conn:
        row = conn.execute("SELECT max(id) FROM runs").fetchone()
    return row[0] if row and row[0] is not None else None


def runs(db_path: str | Path) -> list[dict[str, Any]]:
    if not Path(db_path).exists():
        return []
    with closing(_connect(db_path)) as conn:
        cols = ("id", "started", "finished", "tool_version", "label", "targets", "findings")
        return [dict(zip(cols, row)) for row in conn.execute(f"SELECT {', '.join(cols)} FROM runs ORDER BY id")]


def diff_last(db_path: str | Path, reports: list[TargetReport], *, before: int | None = None) -> dict[str, Any]:
    """What is new, fixed and unchanged in `reports` compared with the latest stored run (or the latest before
    run id `before`). Findings of a target that could not be read this time are neither fixed nor new: the
    target is listed under `unverified`. Targets of the previous run that are gone are listed under `removed`."""
    prev_id: int | None = None
    prev_rows: list[tuple] = []
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
                        "WHERE run_id = ? ORDER BY rowid", (prev_id,)).fetchall()
                    prev_targets = dict(conn.execute(
                        "SELECT target, error FROM run_targets WHERE run_id = ?", (prev_id,)).fetchall())
            except sqlite3.DatabaseError as exc:
                raise UsageError(f"history {db_path}: {exc}") from None
    now_targets = {r.target: r for r in reports}
    unverified = sorted(t for t, r in now_targets.items() if r.error)
    head = [(r.target, f) for r in reports for f in r.active()]
    base = [row for row in prev_rows if row[0] in now_targets and not now_targets[row[0]].error]
    head_hit, base_hit = pair([(finding_key(t, f), coarse_key(t, f)) for t, f in head],
                              [(row[1], row[2]) for row in base])
    cols = ("target", "key", "coarse", "rule", "severity", "message", "path", "line")
    out: dict[str, Any] = {"previous_run": prev_id, "new": [], "fixed": [], "unchanged": [],
                           "unverified": unverified,
                           "removed": sorted(t for t in prev_targets if t not in now_targets),
                           "added": sorted(t for t in now_targets if prev_id is not None and t not in prev_targets)}
    for (t, f), hit in zip(head, head_hit):
        out["unchanged" if hit and prev_id is not None else "new"].append(_item(t, f))
    for row, hit in zip(base, base_hit):
        if not hit:
            d = dict(zip(cols, row))
            d.pop("coarse")
            out["fixed"].append(d)
    for k in ("new", "fixed", "unchanged"):
        out[k].sort(key=lambda d: (-Severity.parse(d["severity"]), d["target"], d["rule"], d["path"] or ""))
    return out


def diff_summary(diff: dict[str, Any]) -> str:
    base = f"run #{diff['previous_run']}" if diff.get("previous_run") else "no previous run"
    return (f"{len(diff['new'])} new, {len(diff['fixed'])} fixed, {len(diff['unchanged'])} unchanged "
            f"(compared with {base})")


def diff_markdown(diff: dict[str, Any], limit: int = 50) -> str:
    """The diff for a step summary: counts, then the new and fixed findings (repo text escaped)."""
    from scanner.ci.github import _code, md

    lines = [f"### originscan sweep: {len(diff['new'])} new, {len(diff['fixed'])} fixed, "
             f"{len(diff['unchanged'])} unchanged", ""]
    prev = diff.get("previous_run")
    lines.append(f"Compared with run #{prev}." if prev else "First recorded run: every finding is new.")
    for title, key in (("New", "new"), ("Fixed", "fixed")):
        items = diff.get(key) or []
        if not items:
            continue
        lines += ["", f"#### {title}", "", "| Severity | Rule | Target | Message |", "|---|---|---|---|"]
        for d in items[:limit]:
            lines.append(f"| {d['severity']} | {_code(d['rule'])} | {md(d['target'])} | {md(d['message'], 300)} |")
        if len(items) > limit:
            lines.append(f"\n… and {len(items) - limit} more (see diff.json).")
    for title, key in (("Could not be read this time", "unverified"), ("Gone since the last run", "removed")):
        if diff.get(key):
            lines += ["", f"{title}: " + ", ".join(md(t) for t in diff[key][:limit])]
    return "\n".join(lines) + "\n"


# -- shard reports -----------------------------------------------------------------------------------------------
def finding_from_json(d: dict[str, Any], where: str) -> Finding:
    try:
        return Finding(rule=str(d["rule"]), severity=Severity.parse(str(d["severity"])), message=str(d["message"]),
                       path=d.get("path"), line=d.get("line") if isinstance(d.get("line"), int) else None,
                       evidence=d.get("evidence") or {}, suppressed=d.get("suppressed"), status=d.get("status"))
    except (KeyError, TypeError, ValueError) as exc:
        raise UsageError(f"{where}: not an originscan JSON report (bad finding: {exc})") from None


def reports_from_json(doc: Any, where: str) -> list[TargetReport]:
    if not isinstance(doc, dict) or not isinstance(doc.get("targets"), list):
        raise UsageError(f"{where}: not an originscan JSON report (no `targets` list)")
    out = []
    for t in doc["targets"]:
        if not isinstance(t, dict) or not isinstance(t.get("target"), str):
            raise UsageError(f"{where}: not an originscan JSON report (a target without a name)")
        out.append(TargetReport(t["target"], [finding_from_json(f, where) for f in t.get("findings") or []],
                                revision=t.get("revision"), error=t.get("error")))
    return out


def reports_to_json(reports: list[TargetReport]) -> str:
    """The JSON contract document (what `scan --format json` prints)."""
    from scanner import __version__

    try:
        from scanner.knowledge import catalogue
        from scanner.report.render import render

        return render(reports, "json", catalogue(), version=__version__)
    except ImportError:
        return json.dumps({"tool": "originscan", "version": __version__,
                           "targets": [r.to_json() for r in reports]}, indent=2) + "\n"


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
