"""Local paths as reports show them: never the scanner's absolute file system.

A report (and above all an AI-BOM) travels: a scan of `/home/alice/models/x` must not tell its readers who ran it
or where. A local path is shown relative to the working folder the scan ran in when it lies inside it, else by its
last component (the folder's name); remote targets (hf:…, github:…, URLs) are shown as given.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath


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


__all__ = ["shown_path", "shown_target"]
