"""The real code-pair corpus of the copied-code benchmark: labels live in `real_pairs/*.json` beside this file, the
third-party code they cite lives in a cache folder outside the repository (filled by `fetch_real_pairs.py`).

    from real_pairs import load_pairs, cached_path, missing

Each pair is one suspect file set against one reference file set, labelled `copied` or `independent`, with the
repository, commit, path, git blob and sha256 of every file. The half (tuning or held-out) is fixed by a hash of the
pair id, chosen before any tuning: held-out when the SHA-256 of the id, read as an integer, is odd.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

LABELS_DIR = Path(__file__).resolve().parent / "real_pairs"
LABELS: tuple[str, ...] = ("copied", "independent")
HALVES: tuple[str, ...] = ("tuning", "held-out")
Half = Literal["tuning", "held-out"]
FIRST_BATCH = "first"  # pairs labelled before batches were named (no "batch" in their file)
TUNING_ONLY_BATCH = "2026-12t"  # small real pairs labelled for tuning the detector only


@dataclass(frozen=True)
class Release:
    """A PyPI release whose wheel or sdist carries the very same bytes as the cited repository file."""

    package: str
    version: str
    member: str  # the file's path inside the wheel or sdist


PYPI = "pypi/"  # repo prefix of files whose cited source is a PyPI release ("pypi/<package>", commit = version)


@dataclass(frozen=True)
class FileRef:
    repo: str  # owner/name on GitHub, or pypi/<package>
    commit: str  # a commit id, or for pypi/<package> the release version
    path: str  # path inside the repository at that commit, or inside the release's wheel
    git_blob: str  # git's blob id (sha1 of "blob <size>\0" + bytes)
    sha256: str
    size: int  # "bytes" in the label file
    release: Release | None = None
    sha256_note: str = ""

    @property
    def on_pypi(self) -> bool:
        return self.repo.startswith(PYPI)

    @property
    def url(self) -> str:
        """Where GitHub serves the file's bytes; empty for a file cited from a PyPI release."""
        return "" if self.on_pypi else f"https://raw.githubusercontent.com/{self.repo}/{self.commit}/{self.path}"

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.repo, self.commit, self.path)

    def matches(self, data: bytes) -> bool:
        return len(data) == self.size and sha256_of(data) == self.sha256 and git_blob_of(data) == self.git_blob


@dataclass(frozen=True)
class CopiedDefinition:
    suspect: str  # "name (file:first-last)"
    reference: str


@dataclass(frozen=True)
class Pair:
    id: str
    label: str  # "copied" or "independent"
    set: str
    difficulty: str
    suspect: tuple[FileRef, ...]
    reference: tuple[FileRef, ...]
    evidence: str
    copied_definitions: tuple[CopiedDefinition, ...]
    source: str
    batch: str = FIRST_BATCH  # when the pair was labelled ("2026-12"): a fresh batch is reported apart

    @property
    def half(self) -> Half:
        if self.batch == TUNING_ONLY_BATCH:  # a tuning-only batch: never reported as held-out
            return "tuning"
        return half(self.id)

    @property
    def copied(self) -> bool:
        return self.label == "copied"

    @property
    def files(self) -> tuple[FileRef, ...]:
        return self.suspect + self.reference


def half(pair_id: str) -> Half:
    """The fixed split: held-out when sha256(pair id) is odd, else tuning."""
    return "held-out" if int(hashlib.sha256(pair_id.encode()).hexdigest(), 16) % 2 == 1 else "tuning"


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def git_blob_of(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def cache_root() -> Path:
    """$ORIGINSCAN_BENCH_CACHE, else $XDG_CACHE_HOME/originscan-bench, else ~/.cache/originscan-bench."""
    explicit = os.environ.get("ORIGINSCAN_BENCH_CACHE")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "originscan-bench"


def cached_path(ref: FileRef, root: Path | None = None) -> Path:
    owner, name = ref.repo.split("/", 1)
    return (root or cache_root()) / "code" / f"{owner}__{name}" / ref.commit / ref.path


def read_cached(ref: FileRef, root: Path | None = None) -> str:
    return cached_path(ref, root).read_bytes().decode("utf-8")


def unique_files(pairs: Iterable[Pair]) -> list[FileRef]:
    seen: dict[tuple[str, str, str], FileRef] = {}
    for pair in pairs:
        for ref in pair.files:
            seen.setdefault(ref.key, ref)
    return list(seen.values())


def missing(pairs: Iterable[Pair], root: Path | None = None) -> list[FileRef]:
    """The cited files that are not in the cache, or whose cached bytes are not the cited ones."""
    out = []
    for ref in unique_files(pairs):
        path = cached_path(ref, root)
        if not path.is_file() or not ref.matches(path.read_bytes()):
            out.append(ref)
    return out


def _file_ref(raw: Mapping[str, Any]) -> FileRef:
    rel = raw.get("release")
    return FileRef(
        repo=raw["repo"],
        commit=raw["commit"],
        path=raw["path"],
        git_blob=raw["git_blob"],
        sha256=raw["sha256"],
        size=int(raw["bytes"]),
        release=Release(rel["package"], rel["version"], rel["member"]) if rel else None,
        sha256_note=raw.get("sha256_note", ""),
    )


def parse_pair(raw: Mapping[str, Any]) -> Pair:
    return Pair(
        id=raw["id"],
        label=raw["label"],
        set=raw["set"],
        difficulty=raw["difficulty"],
        suspect=tuple(_file_ref(r) for r in raw["suspect"]),
        reference=tuple(_file_ref(r) for r in raw["reference"]),
        evidence=raw["evidence"],
        copied_definitions=tuple(
            CopiedDefinition(d["suspect"], d["reference"]) for d in raw.get("copied_definitions", [])
        ),
        source=raw["source"],
        batch=str(raw.get("batch") or FIRST_BATCH),
    )


def load_pairs(directory: Path = LABELS_DIR) -> list[Pair]:
    """Every labelled pair, sorted by id."""
    return [parse_pair(json.loads(p.read_text(encoding="utf-8"))) for p in sorted(directory.glob("*.json"))]
