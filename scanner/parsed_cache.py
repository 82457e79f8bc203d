"""Parsed YAML kept as checked JSON: the knowledge base (rules/*.yaml) and model-card front matter are parsed once,
then read back with `json.loads` (a hundredth of the time, and no PyYAML or huggingface_hub import) while neither
the text nor the code that parsed it changed.

An entry's key is the sha256 of the kind, the text, and the identity of every module the parse depends on (its
file's path, size and modification time: an upgraded library or an edited parser is a new key). Only a value that
JSON carries exactly is stored: `json.loads(json.dumps(value))` must give the same value with the same types all the
way down (dates, tuples, non-string keys, NaN are parsed again every time instead). A parse that raises stores
nothing. Entries live in the user's cache (`$ORIGINSCAN_CACHE`, off with `ORIGINSCAN_CACHE=off`), written whole
or not at all; an entry that does not read is parsed again. Never pickle: the cache is data only.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from scanner.atomic import write_bytes_atomic
from scanner.user_cache import cache_root

AREA = "parsed"
# The knowledge base's largest file is ~0.1 MB as JSON; a hostile card's aliases may expand to far more (its loader's
# node budget): such a value is parsed every time rather than stored.
MAX_ENTRY_CHARS = 2 * 1024 * 1024

T = TypeVar("T")


def module_stamp(name: str) -> str:
    """A module's identity without importing it: its file, size and modification time ('' when not found)."""
    module = sys.modules.get(name)
    origin = getattr(module, "__file__", None)
    if origin is None:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        origin = spec.origin if spec is not None else None
    try:
        st = os.stat(origin) if origin else None
    except OSError:
        st = None
    return f"{origin}:{st.st_size}:{st.st_mtime_ns}" if st else ""


def same_json(a: Any, b: Any) -> bool:
    """`a` and `b` are equal with the same types all the way down (1, 1.0 and True are three different values)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_json(v, b[k]) for k, v in a.items())
    if isinstance(a, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def entry_key(kind: str, text: bytes, depends: Iterable[str]) -> str:
    h = hashlib.sha256(kind.encode() + b"\0")
    for name in depends:
        h.update(module_stamp(name).encode() + b"\0")
    h.update(text)
    return h.hexdigest()


def cached_parse(kind: str, text: bytes, parse: Callable[[], T], depends: Iterable[str]) -> T:
    """`parse()` (the parse of `text`), from the cache when an entry of the same kind, text and parser is there.
    `depends`: the modules whose code decides the result (the parser's own module and the libraries it calls)."""
    root = cache_root()
    if root is None:
        return parse()
    key = entry_key(kind, text, depends)
    path = root / AREA / key[:2] / f"{key}.json"
    try:
        entry = json.loads(path.read_bytes())
        if isinstance(entry, dict) and entry.get("kind") == kind and "value" in entry:
            return entry["value"]  # type: ignore[no-any-return]
    except (OSError, ValueError):  # no entry, or one that does not read: parsed again (and rewritten)
        pass
    value = parse()
    _store(path, kind, value)
    return value


def _store(path: Path, kind: str, value: Any) -> None:
    """Write the entry when JSON carries `value` exactly; storing never changes what the parse gave."""
    try:
        data = json.dumps({"kind": kind, "value": value}, allow_nan=False)  # ASCII: lone surrogates escaped
    except (TypeError, ValueError, RecursionError):  # a date, bytes, NaN...: not JSON, parsed again every time
        return
    if len(data) <= MAX_ENTRY_CHARS and same_json(json.loads(data)["value"], value):
        try:  # not fsynced: an entry lost or cut short by a crash does not read, and is parsed again
            write_bytes_atomic(path, data.encode("ascii"), durable=False)
        except OSError:  # a read-only or full cache costs only speed
            pass


__all__ = ["cached_parse", "entry_key", "module_stamp", "same_json"]
