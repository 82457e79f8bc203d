"""What every source produces: one `Snapshot` per repo and revision.

A source knows how to list a repo's files, read its small text/JSON files and open byte ranges of its weights.
Everything downstream (evidence, checks, provenance) sees only this interface.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from scanner.file_formats import is_weight_file
from scanner.findings import Finding
from scanner.knowledge import finding
from scanner.sources.bytesource import ByteSource

# Files read whole when present (small by nature). Anything larger than its limit becomes a finding.
SMALL_JSON_FILES = (
    "config.json",
    "generation_config.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "tokenizer.json",
    "adapter_config.json",
    "model.safetensors.index.json",
    "preprocessor_config.json",
)
TEXT_FILE_STEMS = ("readme", "license", "licence", "notice", "use_policy", "acceptable_use_policy", "copying")
MAX_TEXT_BYTES = 4 * 1024 * 1024
MAX_JSON_BYTES = {"tokenizer.json": 64 * 1024 * 1024}
DEFAULT_MAX_JSON_BYTES = 8 * 1024 * 1024
# Parsed JSON costs ~50-100 bytes per value: 60 MB of one-character strings is over 1 GB. Real files stay far below
# this (Llama 3's tokenizer.json, with 128 k tokens and 280 k merges, has under 1 M values).
MAX_JSON_ITEMS = 4_000_000

MAX_CODE_FILES = 64  # Python files read per repo: its modelling code, not a whole application


def is_code_file(path: str) -> bool:
    """Python source a repo ships (modelling, configuration, processing code), read as text and never run."""
    return path.endswith(".py") and path.count("/") <= 3


def is_text_file(path: str) -> bool:
    """Top-level README / LICENSE / NOTICE / USE_POLICY files, with or without an extension."""
    if "/" in path:
        return False
    stem = path.lower().split(".", 1)[0]
    return stem in TEXT_FILE_STEMS or stem.startswith(("license", "licence"))


# Other text files, read only to be recognised by their content (a licence under any name, e.g. GEMMA_TERMS.txt):
# top-level ones and those of the usual licence folders, by extension, a bounded number per repo.
OTHER_TEXT_SUFFIXES = ("", ".txt", ".md", ".rst", ".markdown")
LICENSE_FOLDERS = ("licenses", "licences", "legal")
MAX_OTHER_TEXTS = 32


def is_other_text(path: str) -> bool:
    folder, _, name = path.rpartition("/")
    if folder and (folder.count("/") or folder.lower() not in LICENSE_FOLDERS):
        return False
    suffix = name.rsplit(".", 1)[-1].lower() if "." in name.lstrip(".") else ""
    return bool(name) and not name.startswith(".") and ("." + suffix if suffix else "") in OTHER_TEXT_SUFFIXES


@dataclass
class RepoFile:
    path: str  # repo-relative, forward slashes
    size: int
    sha256: str | None = None  # content hash when known (LFS oid, or computed locally)
    lfs_pointer: bool = False  # only a Git LFS pointer is present; the content itself is not


@dataclass
class Snapshot:
    target: str  # as the user wrote it
    kind: str  # "local" | "hf" | "github"
    name: str  # owner/name, or folder name
    revision: str | None = None
    files: dict[str, RepoFile] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)  # README.md, LICENSE, NOTICE …, decoded
    code: dict[str, str] = field(default_factory=dict)  # shipped Python files, decoded (see is_code_file)
    other_texts: dict[str, str] = field(default_factory=dict)  # other text files, for licence texts (is_other_text)
    jsons: dict[str, Any] = field(default_factory=dict)  # parsed small JSON files
    problems: list[Finding] = field(default_factory=list)  # source.* findings raised while reading
    opener: Callable[[str], ByteSource] | None = None  # opens a weight file for range reads
    meta: dict[str, Any] = field(default_factory=dict)  # source-specific facts (hub tags, gated, …)
    # Bytes the first range read of each weight file takes (None: its format's default): the index screen sets it
    # so that a small model's header and the token rows it screens arrive in one request (search.first_read_bytes).
    first_read: int | None = None

    def open(self, path: str) -> ByteSource:
        if self.opener is None:
            raise OSError(f"{self.target}: weights of {path} cannot be read from this source")
        src = self.opener(path)
        src.head_bytes = self.first_read
        entry = self.files.get(path)
        if entry is not None and entry.sha256 and not entry.lfs_pointer:
            from scanner.sources.cache import default_cache

            # Facts about this content (its safetensors header; a small file read whole) are then read once,
            # whichever repo holds it.
            src.know_content(entry.sha256, default_cache())
        return src

    def weight_files(self) -> list[RepoFile]:
        return [f for p, f in sorted(self.files.items()) if is_weight_file(p)]

    def problem(self, rule: str, message: str, path: str | None = None, **evidence: Any) -> None:
        """A source finding; its severity is the catalogue's (rules/catalogue.yaml)."""
        self.problems.append(finding(rule, message, path=path, **evidence))

    def wants_code(self, path: str) -> bool:
        return is_code_file(path) and len(self.code) < MAX_CODE_FILES

    def wants_text(self, path: str) -> bool:
        """A text file this snapshot reads: named ones, shipped code, and (a bounded number of) other texts."""
        if is_text_file(path) or self.wants_code(path):
            return True
        return is_other_text(path) and len(self.other_texts) < MAX_OTHER_TEXTS

    def keep_text(self, path: str, text: str) -> None:
        """A decoded text file: Python source goes to `code`, named texts to `texts`, the rest to `other_texts`."""
        if is_code_file(path):
            self.code[path] = text
        else:
            (self.texts if is_text_file(path) else self.other_texts)[path] = text

    def text(self, *names: str) -> tuple[str, str] | None:
        """First present text file among `names` (case-insensitive), as (path, text)."""
        lower = {p.lower(): p for p in self.texts}
        for n in names:
            if n.lower() in lower:
                p = lower[n.lower()]
                return p, self.texts[p]
        return None


class Source(Protocol):
    """Turns a target string into a Snapshot."""

    def snapshot(self) -> Snapshot: ...


def decode_text(data: bytes, path: str, snap: Snapshot) -> str:
    """UTF-8 (with BOM), else UTF-16 with BOM, else latin-1 with a finding: a card must never crash the scan."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        snap.problem("source.encoding", f"{path} is not valid UTF-8 (byte {exc.start}); read as latin-1", path=path)
        return data.decode("latin-1")


def parse_json(data: bytes, path: str, snap: Snapshot) -> Any:
    """Parse a small JSON file; malformed or pathological input becomes a finding, never an exception."""
    items = data.count(b",") + 1  # an upper bound on the values, counted without parsing
    if items > MAX_JSON_ITEMS:
        snap.problem(
            "source.too_large",
            f"{path} holds up to {items} values, over the {MAX_JSON_ITEMS}-value budget; not parsed",
            path=path,
        )
        return None
    try:
        value = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as exc:
        snap.problem("source.malformed", f"{path} is not valid JSON: {str(exc)[:120]}", path=path)
        return None
    except RecursionError:
        snap.problem("source.malformed", f"{path} is nested too deeply to be a real config (JSON bomb?)", path=path)
        return None
    if path != "tokenizer.json" and not isinstance(value, dict):
        snap.problem("source.malformed", f"{path} is JSON but not an object", path=path)
        return None
    return value


def json_limit(path: str) -> int:
    return MAX_JSON_BYTES.get(path, DEFAULT_MAX_JSON_BYTES)
