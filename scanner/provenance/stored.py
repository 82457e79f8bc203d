"""A registered upstream served from its stored fingerprint (scanner/provenance/index.py stores them): comparing
against it reads no weights. Its own module so that opening the index and listing what it holds load no numpy."""

from __future__ import annotations

import numpy as np

from scanner.provenance.fingerprint import Fingerprint
from scanner.provenance.model import ModelView, Structure, TokenMatrix


class StoredModel(ModelView):
    """A registered upstream, served from its stored fingerprint: comparing against it reads no weights."""

    def __init__(self, fp: Fingerprint | bytes):
        fp = fp if isinstance(fp, Fingerprint) else Fingerprint.from_bytes(fp)
        self.fingerprint = fp
        matrices = [TokenMatrix(m.name, m.vocab, False) for m in fp.matrices]
        self.structure = Structure(fp.hidden, matrices, list(fp.vectors))
        self.file_hashes = fp.file_hashes
        self.problems = []
        self._weight_bytes = fp.weight_bytes
        # float16 as stored; a block is widened to float32 only when the comparison asks for it
        self._rows = {m.name: m.rows for m in fp.matrices}
        self._pos = {m.name: {int(t): j for j, t in enumerate(m.tokens)} for m in fp.matrices}

    def token_rows(self, matrix: TokenMatrix, tokens: list[int], dims: list[int] | None = None) -> np.ndarray:
        block = self._rows[matrix.name][[self._pos[matrix.name][t] for t in tokens]].astype(np.float32)
        return block if dims is None else block[:, dims]

    def available_tokens(self, matrix: TokenMatrix) -> set[int]:
        return set(self._pos[matrix.name])

    def vector(self, name: str) -> np.ndarray:
        return self.fingerprint.vectors[name]

    @property
    def bytes_read(self) -> int:
        return 0

    @property
    def weight_bytes(self) -> int:
        return self._weight_bytes


__all__ = ["StoredModel"]
