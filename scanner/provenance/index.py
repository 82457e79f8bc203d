"""The fingerprint index: registered upstream models and their fingerprints, in one SQLite file.

Fingerprints are keyed by content (a hash of the weight files' sha256s), so a model registered twice, or under
two names, is read once. A stored fingerprint is the same token rows and residual vectors a live comparison
would read, so comparing a suspect against the index reads nothing of the upstream.

Tables
  models        name → fingerprint key, licence, target, revision (one row per registered name)
  fingerprints  key → the rows (`data`, see scanner.provenance.fingerprint), decoded only for the few upstreams
                that survive the screen, one at a time
  facts         key → header facts (kind, hidden, vocab, shape_key), the sketch and the head sketches (small): a
                scan filters and screens on these without touching a fingerprint blob (a separate table, so
                SQLite never walks a blob's overflow pages to reach them). `heads` is NULL in an index written
                before head sketches existed until it is opened once (filled from the stored rows where they
                hold a head's rows), and empty where they do not: such an upstream is screened on the sketch.
  files         weight-file sha256 → fingerprint key: the exact-copy check is one indexed query.
  upstreams     what the last `index update` found per upstream (revision, state, where the weights came from),
                so an unchanged upstream costs one revision check and an unverifiable one is reported once.
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from scanner.sources.cache import default_index_path

if TYPE_CHECKING:  # loaded where a fingerprint is decoded or built: listing and opening the index needs no numpy
    from scanner.provenance.fingerprint import Fingerprint, Sketch
    from scanner.provenance.model import SourcedView
    from scanner.provenance.stored import StoredModel

SCHEMA = """
CREATE TABLE IF NOT EXISTS models (
  name TEXT PRIMARY KEY, license TEXT, target TEXT, revision TEXT,
  fingerprint TEXT NOT NULL, weight_bytes INTEGER, added TEXT
);
CREATE TABLE IF NOT EXISTS fingerprints (
  key TEXT PRIMARY KEY, data BLOB NOT NULL, created TEXT
);
CREATE TABLE IF NOT EXISTS facts (
  key TEXT PRIMARY KEY, kind TEXT NOT NULL, hidden INTEGER, vocab INTEGER, shape_key TEXT, sketch BLOB, heads BLOB
);
CREATE TABLE IF NOT EXISTS files (
  sha256 TEXT NOT NULL, key TEXT NOT NULL, PRIMARY KEY (sha256, key)
);
CREATE TABLE IF NOT EXISTS upstreams (
  id TEXT PRIMARY KEY, revision TEXT, state TEXT NOT NULL, origin TEXT, detail TEXT, checked TEXT
);
"""


def content_key(model: SourcedView) -> str:
    from scanner.provenance.fingerprint import content_key_of

    return content_key_of(model.file_hashes, model.tensors)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _heads_blob(heads: list[Sketch]) -> bytes:
    """b"" (not NULL) when there are none: NULL marks an entry the migration has not looked at yet."""
    from scanner.provenance.fingerprint import heads_to_bytes

    return heads_to_bytes(heads) if heads else b""


@dataclass
class Registered:
    name: str
    license: str | None
    target: str
    revision: str | None
    fingerprint: str
    weight_bytes: int
    added: str


@dataclass
class Candidate:
    """A registered upstream's header facts, read without decoding its fingerprint."""

    reg: Registered
    kind: str
    hidden: int | None
    vocab: int | None
    shape_key: str


@dataclass
class UpstreamState:
    """What the last `index update` found for one upstream."""

    id: str
    revision: str | None
    state: str  # fingerprinted | hashes-only | unverifiable | not-found | unreachable
    origin: str | None  # the repo the weights were read from (the upstream itself or a verified mirror)
    detail: str
    checked: str


class Index:
    def __init__(self, path: str | os.PathLike[str] | None = None):
        self.path = Path(path) if path else default_index_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, timeout=30)
        self._heads: dict[str, list[Sketch]] = {}  # decoded head sketches by fingerprint key
        self.db.executescript(SCHEMA)
        self._migrate()

    def close(self) -> None:
        self.db.close()

    def _migrate(self) -> None:
        """Index files written before the facts table get their facts from their blobs, and those written before
        head sketches their heads (from the stored rows, where they hold them), once."""
        columns = {r[1] for r in self.db.execute("PRAGMA table_info(facts)")}
        self._heads_column = "heads" in columns
        if not self._heads_column:
            try:
                with self.db:
                    self.db.execute("ALTER TABLE facts ADD COLUMN heads BLOB")
                self._heads_column = True
            except sqlite3.OperationalError:
                pass  # a read-only index written before head sketches: they are derived below and kept in memory
        missing = self.db.execute("SELECT key, data FROM fingerprints WHERE key NOT IN (SELECT key FROM facts)")
        rows = missing.fetchall()
        if rows:
            from scanner.provenance.fingerprint import Fingerprint

            with self.db:
                for key, data in rows:
                    try:
                        fp = Fingerprint.from_bytes(data)
                    except ValueError:
                        continue  # no facts: never a candidate, still listed
                    self._write_facts(key, fp)
        where = "x.heads IS NULL" if self._heads_column else "x.kind = 'rows'"
        headless = self.db.execute(
            f"SELECT f.key, f.data FROM fingerprints f JOIN facts x ON x.key = f.key WHERE {where}"
        ).fetchall()
        if headless:
            from scanner.provenance.fingerprint import Fingerprint, heads_from_rows

            derived: dict[str, list[Sketch]] = {}
            for key, data in headless:
                try:
                    derived[key] = heads_from_rows(Fingerprint.from_bytes(data))
                except ValueError:
                    derived[key] = []  # an undecodable blob is never compared either
            self._heads.update((key, heads) for key, heads in derived.items() if heads)  # written or not
            try:
                if self._heads_column:
                    with self.db:
                        self.db.executemany(
                            "UPDATE facts SET heads=? WHERE key=?", [(_heads_blob(h), k) for k, h in derived.items()]
                        )
            except sqlite3.OperationalError:
                pass  # a read-only index: derived again when it is next opened

    def _write_facts(self, key: str, fp: Fingerprint) -> None:
        from scanner.provenance.fingerprint import heads_from_rows

        heads = fp.heads or (heads_from_rows(fp) if fp.kind == "rows" else [])
        self.db.execute(
            "INSERT OR REPLACE INTO facts(key, kind, hidden, vocab, shape_key, sketch, heads) VALUES (?,?,?,?,?,?,?)",
            (
                key,
                fp.kind,
                fp.hidden,
                fp.vocab,
                fp.shape_key,
                fp.sketch.to_bytes() if fp.sketch else None,
                _heads_blob(heads),
            ),
        )
        for h in fp.file_hashes:
            self.db.execute("INSERT OR IGNORE INTO files(sha256, key) VALUES (?,?)", (h, key))

    # -- writing -----------------------------------------------------------------------------------------------
    def add(self, name: str, model: SourcedView, license: str | None, target: str, revision: str | None) -> bool:
        """Register a model. Returns False when its fingerprint was already stored (nothing re-read); one stored
        without head sketches (an older index whose rows do not hold them) is built again to gain them."""
        from scanner.provenance.fingerprint import build

        key = content_key(model)
        if self.has_fingerprint(key) and not self._lacks_heads(key):
            self.register(name, key, license, target, revision, model.weight_bytes)
            return False
        self.put(name, build(model), license, target, revision, key=key)
        return True

    def _lacks_heads(self, key: str) -> bool:
        if key in self._heads or not self._heads_column:
            return False
        row = self.db.execute("SELECT kind, heads FROM facts WHERE key=?", (key,)).fetchone()
        return row is not None and row[0] == "rows" and not row[1]

    def has_fingerprint(self, key: str, kind: str | None = None) -> bool:
        row = self.db.execute("SELECT kind FROM facts WHERE key=?", (key,)).fetchone()
        return row is not None and (kind is None or row[0] == kind)

    def put(
        self,
        name: str,
        fp: Fingerprint,
        license: str | None,
        target: str,
        revision: str | None,
        key: str | None = None,
        data: bytes | None = None,
    ) -> str:
        """Store a fingerprint (a "rows" one replaces a "hashes" one of the same weights) and register `name`."""
        with self.db:
            return self._put(name, fp, license, target, revision, key, data)

    def put_all(
        self,
        entries: list[tuple[str, Fingerprint, str | None, str, str | None, str, bytes | None]],
        states: list[UpstreamState],
    ) -> None:
        """Many (name, fingerprint, license, target, revision, key, data) at once: all are written or none."""
        with self.db:
            for entry in entries:
                self._put(*entry)
            for state in states:
                self._set_state(state)

    def _put(
        self,
        name: str,
        fp: Fingerprint,
        license: str | None,
        target: str,
        revision: str | None,
        key: str | None = None,
        data: bytes | None = None,
    ) -> str:
        key = key or fp.key()
        if not self.has_fingerprint(key) or (fp.kind == "rows" and not self.has_fingerprint(key, "rows")):
            self.db.execute(
                "INSERT OR REPLACE INTO fingerprints(key, data, created) VALUES (?,?,?)",
                (key, data if data is not None else fp.to_bytes(), _now()),
            )
            self._write_facts(key, fp)
        elif fp.heads and self._lacks_heads(key):
            self.db.execute("UPDATE facts SET heads=? WHERE key=?", (_heads_blob(fp.heads), key))
        self._register(name, key, license, target, revision, fp.weight_bytes)
        return key

    def register(
        self, name: str, key: str, license: str | None, target: str, revision: str | None, weight_bytes: int
    ) -> None:
        with self.db:
            self._register(name, key, license, target, revision, weight_bytes)

    def _register(
        self, name: str, key: str, license: str | None, target: str, revision: str | None, weight_bytes: int
    ) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO models VALUES (?,?,?,?,?,?,?)",
            (name, license, target, revision, key, weight_bytes, _now()),
        )

    def set_state(self, state: UpstreamState) -> None:
        with self.db:
            self._set_state(state)

    def _set_state(self, state: UpstreamState) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO upstreams VALUES (?,?,?,?,?,?)",
            (state.id, state.revision, state.state, state.origin, state.detail, state.checked),
        )

    # -- reading -----------------------------------------------------------------------------------------------
    def models(self) -> list[Registered]:
        rows = self.db.execute(
            "SELECT name, license, target, revision, fingerprint, weight_bytes, added FROM models ORDER BY name"
        ).fetchall()
        return [Registered(*r) for r in rows]

    def model(self, name: str) -> Registered | None:
        row = self.db.execute(
            "SELECT name, license, target, revision, fingerprint, weight_bytes, added FROM models WHERE name=?", (name,)
        ).fetchone()
        return Registered(*row) if row else None

    def states(self) -> dict[str, UpstreamState]:
        return {r[0]: UpstreamState(*r) for r in self.db.execute("SELECT * FROM upstreams ORDER BY id")}

    def candidates(self, exclude_target: str | None = None) -> list[Candidate]:
        rows = self.db.execute(
            "SELECT m.name, m.license, m.target, m.revision, m.fingerprint, m.weight_bytes, m.added, "
            "f.kind, f.hidden, f.vocab, f.shape_key FROM models m JOIN facts f ON f.key = m.fingerprint "
            "ORDER BY m.name"
        ).fetchall()
        return [
            Candidate(Registered(*r[:7]), r[7] or "", r[8], r[9], r[10] or "")
            for r in rows
            if exclude_target is None or r[2] != exclude_target
        ]

    def exact(self, file_hashes: set[str], exclude_target: str | None = None) -> list[tuple[Registered, set[str]]]:
        """Registered upstreams sharing a weight file (by sha256) with `file_hashes`: no fingerprint decoded."""
        if not file_hashes:
            return []
        hashes = sorted(file_hashes)
        marks = ",".join("?" * len(hashes))
        shared: dict[str, set[str]] = {}
        for sha, key in self.db.execute(f"SELECT sha256, key FROM files WHERE sha256 IN ({marks})", hashes):
            shared.setdefault(key, set()).add(sha)
        return [
            (reg, shared[reg.fingerprint])
            for reg in self.models()
            if reg.fingerprint in shared and reg.target != exclude_target
        ]

    def sketch(self, key: str) -> Sketch | None:
        from scanner.provenance.fingerprint import Sketch

        row = self.db.execute("SELECT sketch FROM facts WHERE key=?", (key,)).fetchone()
        return Sketch.from_bytes(row[0]) if row and row[0] else None

    def heads_bytes(self, key: str) -> bytes | None:
        if key in self._heads or not self._heads_column:
            return _heads_blob(self._heads[key]) if key in self._heads else None
        row = self.db.execute("SELECT heads FROM facts WHERE key=?", (key,)).fetchone()
        return bytes(row[0]) if row and row[0] else None

    def heads(self, key: str) -> list[Sketch]:
        """The head sketches of one upstream, one per token matrix; [] when it has none (or they do not decode:
        the sketch screen, then the full test, decide). Decoded once per key: a sweep screens every repo against
        them (a key's heads never change once written)."""
        if key in self._heads or not self._heads_column:
            return self._heads.get(key, [])
        row = self.db.execute("SELECT heads, hidden FROM facts WHERE key=?", (key,)).fetchone()
        if not row or not row[0]:
            return []
        from scanner.provenance.fingerprint import FingerprintError, heads_from_bytes

        try:
            heads = heads_from_bytes(row[0], row[1])
        except FingerprintError:
            return []
        self._heads[key] = heads
        return heads

    def without_heads(self) -> list[str]:
        """Registered upstreams with comparable rows but no head sketch: screened on scattered rows (the sketch)."""
        empty = "(f.heads IS NULL OR length(f.heads) = 0)" if self._heads_column else "1"
        rows = self.db.execute(
            "SELECT m.name, m.fingerprint FROM models m JOIN facts f ON f.key = m.fingerprint "
            f"WHERE f.kind = 'rows' AND {empty} ORDER BY m.name"
        )
        return [name for name, key in rows if key not in self._heads]

    def fingerprint(self, key: str) -> Fingerprint:
        from scanner.provenance.fingerprint import Fingerprint

        return Fingerprint.from_bytes(*self.blob(key))

    def blob(self, key: str) -> tuple[bytes, bytes | None]:
        """(fingerprint bytes, sketch bytes or None)."""
        row = self.db.execute(
            "SELECT f.data, x.sketch FROM fingerprints f LEFT JOIN facts x ON x.key = f.key WHERE f.key=?", (key,)
        ).fetchone()
        if row is None:
            raise KeyError(key)
        return row[0], row[1]

    def view(self, reg: Registered) -> StoredModel:
        from scanner.provenance.stored import StoredModel

        return StoredModel(self.fingerprint(reg.fingerprint))

    def kind(self, key: str) -> str | None:
        row = self.db.execute("SELECT kind FROM facts WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def iter_views(self, regs: list[Registered]) -> Iterator[tuple[Registered, StoredModel]]:
        """One decoded fingerprint at a time: memory stays flat however many upstreams are registered."""
        for reg in regs:
            yield reg, self.view(reg)


__all__ = ["Index", "Registered", "Candidate", "UpstreamState", "default_index_path"]
