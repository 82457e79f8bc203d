"""Byte-range access to one weight file, counting every byte read (the verdict's `bytes_read`)."""

from __future__ import annotations

import hashlib
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any


class ByteSource(ABC):
    """Serves byte ranges of one file. Subclasses implement `_read`; this class checks bounds and counts."""

    # Unwanted bytes worth reading to save one read: what a read costs beyond its bytes (a round trip), in bytes.
    # 0 where a read costs no round trip (local files): only adjacent ranges join, no unwanted byte is read.
    request_cost = 0
    screen_request_cost = 0  # the same for a screen's reads (once per repo, over thousands of repos)

    def read_cost(self, screening: bool) -> int:
        return self.screen_request_cost if screening else self.request_cost

    def __init__(self, name: str, size: int):
        self.name = name
        self.size = size
        self.bytes_read = 0
        self._lock = threading.Lock()
        self._head = b""  # the file's first bytes, when read_head kept them
        # How many bytes a format's first read of the file takes (None: the format's own default); a screen sizes
        # it to bring a small model's header and the token rows it compares in one request (Snapshot.first_read).
        self.head_bytes: int | None = None
        # The content's sha256 when the source knew it for free, and the cache where facts derived from that
        # content (a parsed safetensors header) are kept: set by Snapshot.open, None when unknown.
        self.sha256: str | None = None
        self.cache: Any = None

    def read(self, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise ValueError(f"{self.name}: range {offset}+{length} outside file of {self.size} bytes")
        if length == 0:
            return b""
        head = self._head
        if offset < len(head):  # the part already read by read_head costs nothing again
            known = head[offset : offset + length]
            return (
                known if len(known) == length else known + self._read_counted(offset + len(known), length - len(known))
            )
        return self._read_counted(offset, length)

    def read_head(self, length: int) -> bytes:
        """The file's first `length` bytes (all of a shorter file), kept: a header of unknown length is read in one
        request with what follows it, and later reads of those bytes are served from memory."""
        data = self.read(0, min(length, self.size))
        if len(data) > len(self._head):
            self._head = data
            if len(data) == self.size:
                self._keep_whole(data)
        return data

    def know_content(self, sha256: str, cache: Any) -> None:
        """The content's sha256 (the listing's word) and the cache where facts about that content are kept. A remote
        file small enough to be read whole (by a screen's cost) that the cache holds whole, read by any repo with
        the same content, is served from there: its reads cost no request. The cache checks the bytes against the
        hash before it hands them over."""
        self.sha256, self.cache = sha256, cache
        if cache is None or not self.request_cost or not 0 < self.size <= self.screen_request_cost:
            return
        data = cache.get_blob(sha256)
        if data is not None and len(data) == self.size:
            self._head = data

    def _keep_whole(self, data: bytes) -> None:
        """A remote file just read whole is kept by its content hash (when the bytes have it), for the next repo or
        scan that holds the same content (know_content)."""
        if not self.request_cost or self.cache is None or self.sha256 is None or self.size > self.screen_request_cost:
            return
        if hashlib.sha256(data).hexdigest() != self.sha256:
            return  # bytes that are not the listed content are never kept under its name
        try:
            self.cache.put_blob(data, self.sha256)
        except OSError:
            pass  # a cache that cannot be written costs a read next time, nothing else

    def holds(self, offset: int, length: int) -> bool:
        """Whether bytes [offset, offset+length) were already read with the head (reading them again is free)."""
        return 0 <= offset and offset + length <= len(self._head)

    def _read_counted(self, offset: int, length: int) -> bytes:
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


def coalesce_ranges(ranges: Iterable[tuple[int, int]], request_cost: int) -> list[tuple[int, int]]:
    """Byte ranges [start, end) read as one each: two wanted ranges share a read when the unwanted bytes between
    them cost less than another read (`request_cost`, see ByteSource). That minimises reads x cost + bytes read:
    each gap is worth reading or skipping on its own."""
    runs: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if runs and start - runs[-1][1] <= request_cost:
            runs[-1] = (runs[-1][0], max(end, runs[-1][1]))
        else:
            runs.append((start, end))
    return runs


def coalesce(rows: Iterable[int], row_bytes: int, request_cost: int) -> list[tuple[int, int]]:
    """coalesce_ranges for the rows of one tensor: runs (first, last) of row numbers."""
    runs = coalesce_ranges(((r * row_bytes, (r + 1) * row_bytes) for r in set(rows)), request_cost)
    return [(start // row_bytes, end // row_bytes - 1) for start, end in runs]


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
