"""A model repo already on disk: a CI checkout, a `snapshot_download` folder, a working copy."""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from scanner.errors import SourceError, UsageError
from scanner.file_formats import is_weight_file
from scanner.sources.bytesource import FileByteSource
from scanner.sources.cache import Cache, resolve_cache
from scanner.sources.interface import (
    MAX_TEXT_BYTES,
    SMALL_JSON_FILES,
    RepoFile,
    Snapshot,
    decode_text,
    json_limit,
    parse_json,
)

LFS_HEADER = b"version https://git-lfs.github.com/spec/v1"
SKIP_DIRS = {".git", ".hg", ".svn", "__pycache__", ".venv", "node_modules", ".cache"}
MAX_FILES = 100_000
# Local weights are hashed whole (exact copies are then decided from hashes alone). Reading is the cost, and a file
# can claim any size (a sparse file's 64 GB of holes cost no disk), so hashing stops at a budget per repo; larger
# weights are still compared by their sampled tensors.
MAX_HASH_BYTES = 8 * 1024**3


def parse_lfs_pointer(data: bytes) -> tuple[str, int] | None:
    """(sha256, size) of a Git LFS pointer file, or None if `data` is not one."""
    if not data.startswith(LFS_HEADER) or len(data) > 1024:
        return None
    oid = size = None
    for line in data.decode("ascii", "replace").splitlines():
        key, _, value = line.partition(" ")
        if key == "oid" and value.startswith("sha256:"):
            oid = value[len("sha256:") :].strip()
        elif key == "size" and value.strip().isdigit():
            size = int(value.strip())
    if oid and size is not None and len(oid) == 64:
        return oid, size
    return None


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Streamed: never holds more than one chunk of a multi-GB weight file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _stat_key(path: Path, st: os.stat_result) -> str:
    """Identity of one version of a file: any write changes its mtime and ctime (ctime cannot be set back)."""
    ident = f"{path}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}\0{st.st_ino}\0{st.st_dev}"
    return "file-sha256-" + hashlib.sha256(ident.encode("utf-8", "surrogateescape")).hexdigest()


def sha256_file_cached(path: Path, cache: Cache | None) -> str:
    """sha256 of a file, read whole only when this version of it (path, size, mtime, ctime, inode) was not hashed
    before: re-scanning an unchanged multi-GB repo reads none of its weights."""
    if cache is None:
        return sha256_file(path)
    before = path.stat()
    key = _stat_key(path, before)
    hit = cache.get_json(key)
    if isinstance(hit, dict) and isinstance(hit.get("sha256"), str) and len(hit["sha256"]) == 64:
        return str(hit["sha256"])
    digest = sha256_file(path)
    if _stat_key(path, path.stat()) == key:  # not written to while it was read
        try:
            cache.put_json(key, {"sha256": digest, "size": before.st_size})
        except OSError:
            pass
    return digest


def _read(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


def shown_name(rel: str) -> str:
    """A file name as text: names that are not UTF-8 (os gives them as lone surrogates, which no encoder, report
    or database accepts) get their undecodable bytes as \\xNN escapes."""
    try:
        rel.encode("utf-8")
        return rel
    except UnicodeEncodeError:
        return rel.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


class LocalSource:
    def __init__(
        self, path: str, target: str | None = None, hash_weights: bool = True, cache: Cache | None | bool = None
    ):
        self.root = Path(path)
        self.target = target or path
        self.hash_weights = hash_weights
        self.cache = resolve_cache(cache) if hash_weights else None

    def snapshot(self) -> Snapshot:
        root = self.root
        if not root.exists():
            raise UsageError(f"{self.target}: no such file or directory")
        if not root.is_dir():
            raise UsageError(f"{self.target}: not a directory (a model repo is a folder)")
        try:
            with os.scandir(root):
                pass
        except OSError as exc:  # nothing in it can be known: this finding alone, no licence or card finding beside it
            why = (exc.strerror or type(exc).__name__).lower()
            raise SourceError(f"{self.target}: cannot read the folder: {why}", rule="source.unreadable") from None
        real_root = root.resolve()
        snap = Snapshot(target=self.target, kind="local", name=real_root.name)
        renamed: dict[str, Path] = {}  # shown name -> real path, for names that are not UTF-8
        snap.opener = lambda p: FileByteSource(renamed.get(p, real_root / p), name=p)
        self._hash_budget = MAX_HASH_BYTES
        self._unhashed: list[str] = []
        for rel, full, st in self._walk(real_root, snap):
            shown = shown_name(rel)
            if shown != rel:
                renamed[shown] = Path(full)
                snap.problem(
                    "source.encoding", f"{shown}: file name is not valid UTF-8 (shown with \\x escapes)", path=shown
                )
            self._add_file(snap, shown, full, st)
            if shown in snap.files:  # when its content last changed (the AI-BOMs' release time), from this one stat
                snap.meta["newest_mtime"] = max(st.st_mtime, snap.meta.get("newest_mtime", st.st_mtime))
        self._note_origin(snap, real_root)
        if self._unhashed:
            snap.problem(
                "source.too_large",
                f"{len(self._unhashed)} weight file(s) past the {MAX_HASH_BYTES}-byte "
                "hashing budget were not hashed (e.g. " + self._unhashed[0] + "); exact copies among them "
                "are judged from sampled tensors",
                path=self._unhashed[0],
                files=self._unhashed[:20],
            )
        return snap

    @staticmethod
    def _note_origin(snap: Snapshot, root: Path) -> None:
        """Where this folder was published, when it says (a Hub cache path, its git remote): see publisher.py."""
        from scanner.sources.origin import REPO_ID, local_origin

        origin = local_origin(root)
        if origin is None:
            return
        seen, how = origin
        snap.meta["repo_id"], snap.meta["repo_id_from"] = seen, how
        if REPO_ID.match(seen) and "github.com" not in how:
            snap.name = seen  # a Hub id: the folder is that repo's content

    def _walk(self, root: Path, snap: Snapshot) -> Iterator[tuple[str, str, os.stat_result]]:
        count = 0

        def unreadable(exc: OSError) -> None:  # a folder os.walk cannot list (permissions, a path past PATH_MAX)
            where = Path(exc.filename or root)
            rel = shown_name(where.relative_to(root).as_posix() if where.is_relative_to(root) else str(where))
            snap.problem("source.unreadable", f"{rel[:200]}: {exc.strerror or exc}; not listed", path=rel)

        for dirpath, dirnames, filenames in os.walk(root, followlinks=False, onerror=unreadable):
            dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
            here = Path(dirpath)
            for d in list(dirnames):
                try:
                    if (here / d).is_symlink():
                        dirnames.remove(d)
                        rel = shown_name((here / d).relative_to(root).as_posix())
                        if not self._inside(root, here / d):
                            snap.problem(
                                "source.symlink_escape",
                                f"{rel} links outside the repo; not followed",
                                path=rel,
                                link=shown_name(os.readlink(here / d)),
                            )
                except OSError as exc:  # a path past PATH_MAX, a folder that vanished
                    dirnames.remove(d)
                    unreadable(exc)
            # Strings and one lstat per file: pathlib objects and repeated stats made 100 000 files cost seconds.
            prefix = "" if dirpath == str(root) else os.path.relpath(dirpath, root).replace(os.sep, "/") + "/"
            for name in sorted(filenames):
                full = os.path.join(dirpath, name)
                rel = prefix + name
                try:
                    st = os.lstat(full)
                    if stat.S_ISLNK(st.st_mode):
                        if not self._inside(root, Path(full)):
                            snap.problem(
                                "source.symlink_escape",
                                f"{shown_name(rel)} links outside the repo; not followed",
                                path=shown_name(rel),
                                link=shown_name(os.readlink(full)),
                            )
                            continue
                        st = os.stat(full)
                except OSError as exc:
                    unreadable(exc)
                    continue
                count += 1
                if count > MAX_FILES:
                    snap.problem("source.too_large", f"more than {MAX_FILES} files; the rest were not listed")
                    return
                yield rel, full, st

    @staticmethod
    def _inside(root: Path, p: Path) -> bool:
        try:
            p.resolve().relative_to(root)
            return True
        except (ValueError, OSError, RuntimeError):
            return False

    def _add_file(self, snap: Snapshot, rel: str, full: str, st: os.stat_result) -> None:
        size = st.st_size
        if not stat.S_ISREG(st.st_mode):  # FIFOs, devices, sockets are never opened
            return
        entry = RepoFile(rel, size)
        snap.files[rel] = entry
        weight = is_weight_file(rel)
        try:
            if size <= 1024 and (weight or rel in SMALL_JSON_FILES):
                pointer = parse_lfs_pointer(_read(full))
                if pointer:
                    entry.sha256, entry.size = pointer
                    entry.lfs_pointer = True
                    return
            if weight:
                if self.hash_weights and size <= self._hash_budget:
                    self._hash_budget -= size
                    entry.sha256 = sha256_file_cached(Path(full), self.cache)
                elif self.hash_weights:
                    self._unhashed.append(rel)
            elif rel in SMALL_JSON_FILES:
                if size > json_limit(rel):
                    snap.problem(
                        "source.too_large",
                        f"{rel} is {size} bytes, over the {json_limit(rel)}-byte limit; not parsed",
                        path=rel,
                    )
                    return
                value = parse_json(_read(full), rel, snap)
                if value is not None:
                    snap.jsons[rel] = value
            elif snap.wants_text(rel):
                with open(full, "rb") as fh:
                    data = fh.read(MAX_TEXT_BYTES + 1)
                if len(data) > MAX_TEXT_BYTES:
                    snap.problem(
                        "source.too_large",
                        f"{rel} is {size} bytes; only the first {MAX_TEXT_BYTES} were read",
                        path=rel,
                    )
                    data = data[:MAX_TEXT_BYTES]
                snap.keep_text(rel, decode_text(data, rel, snap))
        except OSError as exc:
            snap.problem("source.unreadable", f"{rel}: {exc.strerror or exc}", path=rel)
