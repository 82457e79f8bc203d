"""Local paths as reports show them: never the scanner's absolute file system.

A report (and above all an AI-BOM) travels: a scan of `/home/alice/models/x` must not tell its readers who ran it
or where. A local path is shown relative to the working folder the scan ran in when it lies inside it, else
relative to the scan root (`local_root`: the common root of the scan's local targets outside the working folder,
so that `/data/a/repo` and `/data/b/repo` stay `a/repo` and `b/repo`), else by its last component; remote targets
(hf:…, github:…, URLs) are shown as given. `shown_report` applies that to a whole report (its target, and the
target's path wherever a message or error repeats it): every format renders shown reports, and a sweep records
them, so a sharded sweep merges to what the whole one records.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Any

from scanner.results import TargetReport


def _is_remote(target: str) -> bool:
    return target.startswith(("hf:", "github:")) or "://" in target


def _absolute(path: Path, base: Path | None) -> Path | None:
    try:
        return ((base or Path.cwd()) / path).resolve()
    except (OSError, RuntimeError):  # an unreadable or looping path: it has no shown place
        return None


def local_root(targets: Iterable[str], base: Path | None = None) -> Path | None:
    """The scan root: the common folder above the local `targets` that lie outside `base` (default: the working
    folder), or None when there are none. Reports show those targets relative to it."""
    here = _absolute(Path("."), base)
    parents = []
    for t in targets:
        p = None if _is_remote(t) else _absolute(Path(t), base)
        if p is not None and here is not None and not p.is_relative_to(here):
            parents.append(p.parent)
    return Path(os.path.commonpath(parents)) if parents else None


def shown_path(path: str | os.PathLike[str], base: Path | None = None, root: Path | None = None) -> str:
    """`path` relative to `base` (default: the working folder) when inside it, else relative to the scan root
    `root` (see `local_root`) when inside that, else its last component."""
    p = Path(path)
    if not p.is_absolute() and ".." not in PurePosixPath(p.as_posix()).parts:
        return p.as_posix()
    full, here = _absolute(p, base), _absolute(Path("."), base)
    name = p.name if p.name not in ("", "..") else (full.name if full else "") or "."
    if full is None:
        return name
    if here is not None and full.is_relative_to(here):
        return full.relative_to(here).as_posix()
    if root is not None and full.is_relative_to(root) and full != root:
        return full.relative_to(root).as_posix()
    return name


def shown_target(target: str, base: Path | None = None, root: Path | None = None) -> str:
    """A scan target as reports show it: remote ones as given, local folders by `shown_path`."""
    return target if _is_remote(target) else shown_path(target, base, root)


def shown_report(report: TargetReport, base: Path | None = None, root: Path | None = None) -> TargetReport:
    """`report` with its target as `shown_target` writes it, and that path replaced in its messages, errors and
    evidence (a copy; the same report when nothing changes). `root`: the scan's `local_root`."""
    raw = report.target
    shown = shown_target(raw, base, root)
    if shown == raw:
        return report

    def fix(value: Any) -> Any:
        return value.replace(raw, shown) if isinstance(value, str) else value

    findings = [
        dataclasses.replace(f, message=fix(f.message), evidence={k: fix(v) for k, v in f.evidence.items()})
        for f in report.findings
    ]
    return dataclasses.replace(report, target=shown, findings=findings, error=fix(report.error))


__all__ = ["local_root", "shown_path", "shown_report", "shown_target"]
