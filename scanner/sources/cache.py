"""Content-addressed on-disk cache for small files, JSON blobs and per-repo records.

Layout under the root (default: the platform's user cache dir, or `$ORIGINSCAN_CACHE`):

    blobs/ab/<key>       bytes, keyed by their sha256 (or another content key such as a git blob id)
    json/ab/<key>.json   JSON values keyed by a content hash or an ETag (fingerprints, API answers)
    repos/ab/<key>.json  one record per (kind, name, ref): {"revision", "etag", "snapshot", …}

Every write goes to a temporary file in the same folder and is renamed into place, so a crash or a full disk never
leaves a partial file where a reader could find it. Set `ORIGINSCAN_CACHE=off` to disable caching.

An entry a reader can tell is damaged is not flushed to disk before the rename (an fsync costs 2-20 ms, and a cold
remote compare writes 17 entries on its way to the first weight byte): a blob keyed by its content's hash (checked
on every read), a JSON object or record (one cut short or emptied by a crash does not parse, and reads as absent).
Only a blob under another key is written durably.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import platformdirs

from scanner.atomic import write_bytes_atomic
from scanner.user_cache import ENV, OFF_VALUES, cache_root, platform_cache_dir

if TYPE_CHECKING:  # interface imports this module
    from scanner.sources.interface import Snapshot

_SAFE_KEY = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
_SHA256_KEY = re.compile(r"[0-9a-f]{64}")
_GIT_BLOB_KEY = re.compile(r"git-([0-9a-f]{40})")  # the Hub's blob id of a file kept in git: git's object id


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _key(key: str) -> str:
    """Keys that are already safe file names (hex digests, git oids) are used as-is; anything else is hashed."""
    if _SAFE_KEY.match(key) and not key.startswith("."):
        return key
    return "h-" + hashlib.sha256(key.encode("utf-8")).hexdigest()


class Cache:
    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)
        self.hits = 0
        self.misses = 0

    def __repr__(self) -> str:
        return f"Cache({str(self.root)!r})"

    # -- paths ---------------------------------------------------------------------------------------------------
    def _path(self, area: str, key: str, suffix: str = "") -> Path:
        k = _key(key)
        return self.root / area / k[-2:] / (k + suffix)

    def _read(self, path: Path) -> bytes | None:
        try:
            data = path.read_bytes()
        except OSError:
            self.misses += 1
            return None
        self.hits += 1
        return data

    # -- blobs ---------------------------------------------------------------------------------------------------
    def get_blob(self, key: str) -> bytes | None:
        data = self._read(self._path("blobs", key))
        if data is not None and _names_other_content(key, data):
            self.hits -= 1
            self.misses += 1
            return None  # corrupted entry: ignore (it will be overwritten)
        return data

    def put_blob(self, data: bytes, key: str | None = None) -> str:
        key = key or sha256_bytes(data)
        checked = bool(_SHA256_KEY.fullmatch(key) or _GIT_BLOB_KEY.fullmatch(key))
        write_bytes_atomic(self._path("blobs", key), data, durable=not checked)
        return key

    # -- JSON values ---------------------------------------------------------------------------------------------
    def get_json(self, key: str) -> Any | None:
        data = self._read(self._path("json", key, ".json"))
        if data is None:
            return None
        try:
            return json.loads(data)
        except ValueError:
            return None

    def put_json(self, key: str, value: dict[str, Any]) -> None:
        data = json.dumps(value, sort_keys=True).encode("utf-8")
        write_bytes_atomic(self._path("json", key, ".json"), data, durable=False)  # an object: a cut one won't parse

    # -- per-repo records ----------------------------------------------------------------------------------------
    @staticmethod
    def record_key(kind: str, name: str, ref: str | None) -> str:
        return f"{kind}:{name}@{ref or ''}"

    def get_record(self, kind: str, name: str, ref: str | None) -> dict[str, Any] | None:
        data = self._read(self._path("repos", self.record_key(kind, name, ref), ".json"))
        if data is None:
            return None
        try:
            value = json.loads(data)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    def put_record(self, kind: str, name: str, ref: str | None, record: dict[str, Any]) -> None:
        write_bytes_atomic(
            self._path("repos", self.record_key(kind, name, ref), ".json"),
            json.dumps(record, sort_keys=True).encode("utf-8"),
            durable=False,  # an object: one cut short does not parse
        )

    def drop_record(self, kind: str, name: str, ref: str | None) -> None:
        try:
            os.unlink(self._path("repos", self.record_key(kind, name, ref), ".json"))
        except OSError:
            pass


def _names_other_content(key: str, data: bytes) -> bool:
    """Whether `key` is a hash of content (a sha256, a git blob id) that `data` does not have."""
    if _SHA256_KEY.fullmatch(key):
        return sha256_bytes(data) != key
    git = _GIT_BLOB_KEY.fullmatch(key)
    return git is not None and hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest() != git.group(1)


def default_cache_dir() -> Path:
    env = os.environ.get(ENV)
    if env and env.strip().lower() not in OFF_VALUES:
        return Path(env).expanduser()
    return platform_cache_dir()


def default_index_path() -> Path:
    """Where the fingerprint index lives unless one is named: $ORIGINSCAN_INDEX, else the user's cache folder.
    Here rather than in provenance/index.py so that asking whether it exists loads no weight reader."""
    env = os.environ.get("ORIGINSCAN_INDEX")
    return Path(env) if env else Path(platformdirs.user_cache_dir("originscan")) / "index.sqlite"


def default_cache() -> Cache | None:
    """The user's cache, or None when `ORIGINSCAN_CACHE=off`."""
    root = cache_root()
    return None if root is None else Cache(root)


def resolve_cache(cache: Cache | None | bool) -> Cache | None:
    """Sources take `cache=None` (the default cache), `False` (no cache) or a Cache."""
    if cache is False:
        return None
    if cache is None or cache is True:
        return default_cache()
    return cache


# -- snapshot (de)serialisation: what a per-repo record stores so an unchanged repo needs no refetch -------------
def snapshot_to_record(snap: Any) -> dict[str, Any]:
    return {
        "name": snap.name,
        "revision": snap.revision,
        "files": [[f.path, f.size, f.sha256, f.lfs_pointer] for f in snap.files.values()],
        "texts": snap.texts,
        "code": snap.code,
        "other_texts": snap.other_texts,
        "jsons": snap.jsons,
        "problems": [
            {"rule": p.rule, "severity": p.severity.name, "message": p.message, "path": p.path, "evidence": p.evidence}
            for p in snap.problems
        ],
        "meta": {k: v for k, v in snap.meta.items() if k != "cache"},
    }


def record_is_current(rec: Any) -> bool:
    """A cached snapshot record written by this version (older ones lack the other texts read for licences)."""
    return isinstance(rec, dict) and isinstance(rec.get("other_texts"), dict)


def snapshot_from_record(target: str, kind: str, rec: dict[str, Any]) -> Snapshot:
    from scanner.findings import Finding, Severity
    from scanner.sources.interface import RepoFile, Snapshot

    snap = Snapshot(target=target, kind=kind, name=rec["name"], revision=rec.get("revision"))
    for path, size, sha, ptr in rec.get("files", []):
        snap.files[path] = RepoFile(path, size, sha, ptr)
    snap.texts = dict(rec.get("texts", {}))
    snap.code = dict(rec.get("code", {}))
    snap.other_texts = dict(rec.get("other_texts", {}))
    snap.jsons = dict(rec.get("jsons", {}))
    for p in rec.get("problems", []):
        snap.problems.append(
            Finding(
                p["rule"], Severity[p["severity"]], p["message"], path=p.get("path"), evidence=p.get("evidence") or {}
            )
        )
    snap.meta = dict(rec.get("meta", {}))
    return snap
