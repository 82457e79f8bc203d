"""The fingerprint index: registered upstream models and their fingerprints, in one SQLite file.

Fingerprints are keyed by content (a hash of the weight files' sha256s), so a model registered twice, or under
two names, is read once. A stored fingerprint is the same token rows and residual vectors a live comparison
would read, so comparing a suspect against the index reads nothing of the upstream.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import platformdirs

from scanner.provenance.model import LiveModel, ModelView, Structure, TokenMatrix, token_stream, token_window

STORED_TOKENS = 1024  # first ids of the token stream kept per token matrix (the comparison needs at most 512)
SCHEMA = """
CREATE TABLE IF NOT EXISTS models (
  name TEXT PRIMARY KEY, license TEXT, target TEXT, revision TEXT,
  fingerprint TEXT NOT NULL, weight_bytes INTEGER, added TEXT
);
CREATE TABLE IF NOT EXISTS fingerprints (
  key TEXT PRIMARY KEY, data BLOB NOT NULL, created TEXT
);
"""


def default_index_path() -> Path:
    env = os.environ.get("ORIGINSCAN_INDEX")
    return Path(env) if env else Path(platformdirs.user_cache_dir("originscan")) / "index.sqlite"


def content_key(model: LiveModel) -> str:
    h = hashlib.sha256()
    if model.file_hashes:
        for x in sorted(model.file_hashes):
            h.update(x.encode())
    else:  # no file hashes: the tensor table is the best identity we have without reading data
        for name, t in sorted(model.tensors.items()):
            h.update(f"{name}:{t.dtype}:{t.shape}:{t.nbytes}".encode())
    return h.hexdigest()


def build_fingerprint(model: LiveModel) -> bytes:
    s = model.structure
    arrays: dict[str, np.ndarray] = {}
    meta = {"hidden": s.hidden, "matrices": [], "vectors": s.vectors, "file_hashes": sorted(model.file_hashes),
            "weight_bytes": model.weight_bytes}
    for i, m in enumerate(s.token_matrices):
        # the sampled ids, plus the adjacent window used against suspects stored transposed
        tokens = np.unique(np.concatenate([token_stream(m.vocab)[:STORED_TOKENS], token_window(m.vocab, 512)]))
        arrays[f"rows{i}"] = model.token_rows(m, tokens.tolist()).astype(np.float16)
        arrays[f"tokens{i}"] = tokens
        meta["matrices"].append({"name": m.name, "vocab": m.vocab})
    for i, name in enumerate(s.vectors):
        arrays[f"vec{i}"] = model.vector(name).astype(np.float32)
    buf = io.BytesIO()
    np.savez_compressed(buf, meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays)
    return buf.getvalue()


class StoredModel(ModelView):
    """A registered upstream, served from its stored fingerprint: comparing against it reads no weights."""

    def __init__(self, blob: bytes):
        data = np.load(io.BytesIO(blob), allow_pickle=False)
        meta = json.loads(bytes(data["meta"]).decode())
        matrices = [TokenMatrix(m["name"], m["vocab"], False) for m in meta["matrices"]]
        self.structure = Structure(meta["hidden"], matrices, meta["vectors"])
        self.file_hashes = set(meta["file_hashes"])
        self.problems = []
        self._weight_bytes = int(meta.get("weight_bytes") or 0)
        self._rows = {m.name: data[f"rows{i}"].astype(np.float32) for i, m in enumerate(matrices)}
        self._pos = {m.name: {int(t): j for j, t in enumerate(data[f"tokens{i}"])} for i, m in enumerate(matrices)}
        self._vectors = {n: data[f"vec{i}"] for i, n in enumerate(meta["vectors"])}

    def token_rows(self, matrix, tokens, dims=None):
        block = self._rows[matrix.name][[self._pos[matrix.name][t] for t in tokens]]
        return block if dims is None else block[:, dims]

    def available_tokens(self, matrix) -> set[int]:
        return set(self._pos[matrix.name])

    def vector(self, name):
        return self._vectors[name]

    @property
    def bytes_read(self) -> int:
        return 0

    @property
    def weight_bytes(self) -> int:
        return self._weight_bytes


@dataclass
class Registered:
    name: str
    license: str | None
    target: str
    revision: str | None
    fingerprint: str
    weight_bytes: int
    added: str


class Index:
    def __init__(self, path: str | os.PathLike[str] | None = None):
        self.path = Path(path) if path else default_index_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, timeout=30)
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def add(self, name: str, model: LiveModel, license: str | None, target: str, revision: str | None) -> bool:
        """Register a model. Returns False when its fingerprint was already stored (nothing re-read)."""
        key = content_key(model)
        now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        new = self.db.execute("SELECT 1 FROM fingerprints WHERE key=?", (key,)).fetchone() is None
        with self.db:
            if new:
                self.db.execute("INSERT INTO fingerprints(key, data, created) VALUES (?,?,?)",
                                (key, build_fingerprint(model), now))
            self.db.execute("INSERT OR REPLACE INTO models VALUES (?,?,?,?,?,?,?)",
                            (name, license, target, revision, key, model.weight_bytes, now))
        return new

    def models(self) -> list[Registered]:
        rows = self.db.execute("SELECT name, license, target, revision, fingerprint, weight_bytes, added "
                               "FROM models ORDER BY name").fetchall()
        return [Registered(*r) for r in rows]

    def view(self, reg: Registered) -> StoredModel:
        row = self.db.execute("SELECT data FROM fingerprints WHERE key=?", (reg.fingerprint,)).fetchone()
        return StoredModel(row[0])
