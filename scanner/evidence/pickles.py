"""What a pickle weight file would import if loaded, read from its opcodes. Nothing is ever unpickled."""
from __future__ import annotations

import io
import pickletools
import zipfile
from dataclasses import dataclass, field

from scanner.sources.bytesource import ByteSource

MAX_PICKLE_BYTES = 64 * 1024 * 1024
# Callables torch / numpy checkpoints legitimately reference while rebuilding tensors.
SAFE_MODULE_PREFIXES = ("torch", "collections", "numpy", "_codecs")
SAFE_BUILTINS = {"set", "frozenset", "slice", "range", "complex", "bytearray", "dict", "list", "tuple", "object"}


class _Reader(io.RawIOBase):
    """A seekable file object over a ByteSource, so zipfile can read a torch checkpoint's directory in place."""

    def __init__(self, src: ByteSource):
        self.src, self.pos = src, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = offset if whence == 0 else self.pos + offset if whence == 1 else self.src.size + offset
        return self.pos

    def tell(self) -> int:
        return self.pos

    def readinto(self, b) -> int:
        n = max(0, min(len(b), self.src.size - self.pos))
        data = self.src.read(self.pos, n) if n else b""
        b[: len(data)] = data
        self.pos += len(data)
        return len(data)


@dataclass
class PickleScan:
    imports: list[str] = field(default_factory=list)
    unsafe: list[str] = field(default_factory=list)
    error: str | None = None


def _is_safe(ref: str) -> bool:
    module, _, name = ref.partition(" ")
    if module in ("builtins", "__builtin__"):
        return name in SAFE_BUILTINS
    return module.split(".")[0] in SAFE_MODULE_PREFIXES


def _scan_stream(data: bytes, out: PickleScan) -> None:
    strings: list[str] = []
    try:
        for op, arg, _ in pickletools.genops(io.BytesIO(data)):
            if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8"):
                strings.append(str(arg))
            elif op.name in ("GLOBAL", "INST"):
                out.imports.append(str(arg))
            elif op.name == "STACK_GLOBAL":
                if len(strings) >= 2:
                    out.imports.append(f"{strings[-2]} {strings[-1]}")
                else:
                    out.imports.append("<dynamic> <dynamic>")
            elif op.name == "STOP":
                break
    except Exception as exc:  # malformed opcode streams are evidence too, never fatal
        out.error = f"pickle stream could not be fully parsed: {str(exc)[:100]}"


def scan_pickle(src: ByteSource) -> PickleScan:
    out = PickleScan()
    head = src.read(0, min(4, src.size))
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(_Reader(src)) as zf:
                for info in zf.infolist():
                    if info.filename.endswith(".pkl"):
                        if info.file_size > MAX_PICKLE_BYTES:
                            out.error = f"{info.filename} is {info.file_size} bytes; not scanned"
                            continue
                        with zf.open(info) as fh:
                            _scan_stream(fh.read(MAX_PICKLE_BYTES), out)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
            out.error = f"not a readable zip archive: {str(exc)[:100]}"
    else:
        _scan_stream(src.read(0, min(src.size, MAX_PICKLE_BYTES)), out)
    seen = []
    for ref in out.imports:
        if ref not in seen:
            seen.append(ref)
    out.imports = seen
    out.unsafe = [r for r in seen if not _is_safe(r)]
    return out
