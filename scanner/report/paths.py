"""Local paths as reports show them: never the scanner's absolute file system.

A report (and above all an AI-BOM) travels: a scan of `/home/alice/models/x` must not tell its readers who ran it
or where. A local path is shown relative to the working folder the scan ran in when it lies inside it, else by its
last component (the folder's name); remote targets (hf:…, github:…, URLs) are shown as given. `shown_report` applies
that to a whole report (its target, and the target's path wherever a message or error repeats it): every format
renders shown reports, and a sweep records them, so a sharded sweep merges to what the whole one records.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path, PurePosixPath
from typing import Any

from scanner.findings import TargetReport


def _is_remote(target: str) -> bool:
    return target.startswith(("hf:", "github:")) or "://" in target


def shown_path(path: str | os.PathLike[str], base: Path | None = None) -> str:
    """`path` relative to `base` (default: the working folder) when inside it, else its last component."""
    p = Path(path)
    if not p.is_absolute():
        parts = PurePosixPath(p.as_posix()).parts
        return p.as_posix() if ".." not in parts else p.name or p.as_posix()
    try:
        rel = p.resolve().relative_to((base or Path.cwd()).resolve())
    except (ValueError, OSError):
        return p.name or "."
    return rel.as_posix() if rel.parts else "."


def shown_target(target: str, base: Path | None = None) -> str:
    """A scan target as reports show it: remote ones as given, local folders by `shown_path`."""
    return target if _is_remote(target) else shown_path(target, base)


def shown_report(report: TargetReport, base: Path | None = None) -> TargetReport:
    """`report` with its target as `shown_target` writes it, and that path replaced in its messages, errors and
    evidence (a copy; the same report when nothing changes)."""
    raw = report.target
    shown = shown_target(raw, base)
    if shown == raw:
        return report

    def fix(value: Any) -> Any:
        return value.replace(raw, shown) if isinstance(value, str) else value

    findings = [
        dataclasses.replace(f, message=fix(f.message), evidence={k: fix(v) for k, v in f.evidence.items()})
        for f in report.findings
    ]
    return dataclasses.replace(report, target=shown, findings=findings, error=fix(report.error))


__all__ = ["shown_path", "shown_report", "shown_target"]
