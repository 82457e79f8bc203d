"""Byte-range access to one weight file, counting every byte read (the verdict's `bytes_read`)."""

from __future__ import annotations

import os
import threading
from abc import ABC, abstractmethod
from typing import Any


class ByteSource(ABC):
    """Serves byte ranges of one file. Subclasses implement `_read`; this class checks bounds and counts."""

    coalesce_gap = 0  # unwanted bytes worth reading between two wanted ranges to save one read (round trips)

    def __init__(self, name: str, size: int):
        self.name = name
        self.size = size
        self.bytes_read = 0
        self._lock = threading.Lock()
        # The content's sha256 when the source knew it for free, and the cache where facts derived from that
        # content (a parsed safetensors header) are kept: set by Snapshot.open, None when unknown.
        self.sha256: str | None = None
        self.cache: Any = None

    def read(self, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise ValueError(f"{self.name}: range {offset}+{length} outside file of {self.size} bytes")
        if length == 0:
            return b""
        data = self._read(offset, length)
        if len(data) != length:
            raise OSError(f"{self.name}: short read at {offset} ({len(data)} of {length} bytes)")
        with self._lock:
            self.bytes_read += length
        return data

    @abstractmethod
    def _read(self, offset: int, length: int) -> bytes: ...

    def close(self) -> None:  # noqa: B027 (a no-op default a subclass may override)  # pragma: no cover
        pass


class FileByteSource(ByteSource):
    """A local file, read with positioned reads (no whole-file loads, safe across threads)."""

    def __init__(self, path: str | os.PathLike[str], name: str | None = None):
        self._fd = os.open(path, os.O_RDONLY)
        super().__init__(name or os.fspath(path), os.fstat(self._fd).st_size)

    def _read(self, offset: int, length: int) -> bytes:
        chunks = []
        while length:
            chunk = os.pread(self._fd, length, offset)
            if not chunk:
                break
            chunks.append(chunk)
            offset += len(chunk)
            length -= len(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


class BytesByteSource(ByteSource):
    """An in-memory buffer (tests, small downloads)."""

    def __init__(self, data: bytes, name: str = "<bytes>"):
        super().__init__(name, len(data))
        self._data = data

    def _read(self, offset: int, length: int) -> bytes:
        return self._data[offset : offset + length]
