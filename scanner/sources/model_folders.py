"""Which folders of a local tree are model folders: those holding a card, a config or weights.

`scan models/` (a folder holding no model itself) and the GitHub Action (the models a pull request touches, or
every model of a push) find model folders the same way; this module is that one way, kept out of `scanner.ci` so
that a plain scan does not import the CI package.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath

from scanner.file_formats import is_weight_file
from scanner.sources.local import SKIP_DIRS

# A folder is a model folder when it holds one of these (strong markers win over weak ones when nested).
STRONG_MARKERS = {"readme.md", "config.json", "model_index.json", "adapter_config.json"}


def markers(names: Iterable[str]) -> tuple[bool, bool]:
    """(strong, weak): whether file `names` hold a strong marker (card, config) or a weak one (weights, licence)."""
    lower = [n.lower() for n in names]
    strong = any(n in STRONG_MARKERS for n in lower)
    weak = any(is_weight_file(n) or n.startswith(("license", "licence")) for n in lower)
    return strong, weak


def in_scope(folder: str, scopes: list[str]) -> bool:
    return any(s == "" or folder == s or folder.startswith(s + "/") for s in scopes)


class Tree:
    """Which files each folder holds: the working tree (os.listdir) or a commit (git ls-tree)."""

    def __init__(self, listing: Callable[[str], list[str] | None]):
        self._listing = listing
        self._cache: dict[str, list[str] | None] = {}

    def names(self, folder: str) -> list[str] | None:
        if folder not in self._cache:
            self._cache[folder] = self._listing(folder)
        return self._cache[folder]

    def exists(self, folder: str) -> bool:
        return self.names(folder) is not None

    def model_folder(self, path: str, scopes: list[str]) -> str | None:
        """Nearest ancestor of `path` inside a scope that is a model folder (strong markers first)."""
        parts = PurePosixPath(path).parts[:-1]
        ancestors = ["/".join(parts[:i]) for i in range(len(parts), -1, -1)]
        ancestors = [a for a in ancestors if in_scope(a, scopes)]
        weak_hit = None
        for a in ancestors:
            names = self.names(a)
            if not names:
                continue
            strong, weak = markers(names)
            if strong:
                return a
            if weak and weak_hit is None:
                weak_hit = a
        return weak_hit


def worktree(root: Path) -> Tree:
    """The files below `root` on disk (an unreadable folder holds none)."""

    def listing(folder: str) -> list[str] | None:
        p = root / folder if folder else root
        try:
            return [e.name for e in os.scandir(p) if e.is_file(follow_symlinks=False)] if p.is_dir() else None
        except OSError:
            return None

    return Tree(listing)


def all_model_folders(root: Path, scopes: list[str]) -> list[str]:
    """Every model folder under `scopes` (all of `root` when empty), as paths relative to `root`."""
    tree = worktree(root)
    found = []
    for scope in scopes or [""]:
        start = root / scope if scope else root
        for dirpath, dirnames, filenames in os.walk(start):
            dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("."))
            rel = Path(dirpath).relative_to(root).as_posix()
            rel = "" if rel == "." else rel
            strong, weak = markers(filenames)
            if strong or (weak and tree.model_folder(rel + "/x", scopes) == rel):
                found.append(rel)
    return sorted(set(found))
