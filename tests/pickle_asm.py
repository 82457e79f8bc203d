"""Pickles as opcode bytes, and torch's checkpoint layouts, written without torch and never loaded.

Shared by tests/test_pickles.py and bench/pickles/run.py; standard library only.
"""

from __future__ import annotations

import io
import struct
import zipfile


# -- a tiny opcode assembler ------------------------------------------------------------------------------------
def proto(n: int) -> bytes:
    return b"\x80" + bytes([n])


def short(s: str) -> bytes:  # SHORT_BINUNICODE
    b = s.encode()
    return b"\x8c" + bytes([len(b)]) + b


def uni(s: str) -> bytes:  # BINUNICODE
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def glob(module: str, name: str) -> bytes:  # GLOBAL
    return f"c{module}\n{name}\n".encode()


def put(i: int) -> bytes:
    return b"q" + bytes([i])


def get(i: int) -> bytes:
    return b"h" + bytes([i])


def long_get(i: int) -> bytes:
    return b"j" + struct.pack("<I", i)


def int1(i: int) -> bytes:
    return b"K" + bytes([i])


MARK, TUPLE, TUPLE1, TUPLE2, EMPTY_TUPLE = b"(", b"t", b"\x85", b"\x86", b")"
REDUCE, BUILD, NEWOBJ, OBJ, STOP, POP = b"R", b"b", b"\x81", b"o", b".", b"0"
STACK_GLOBAL, MEMOIZE, EMPTY_DICT, SETITEMS, BINPERSID, NEWFALSE = b"\x93", b"\x94", b"}", b"u", b"Q", b"\x89"
EMPTY_LIST, APPENDS = b"]", b"e"


def call(module: str, name: str, arg: str = "true") -> bytes:
    """GLOBAL module name; call it with one string (protocol 2, no STOP)."""
    return glob(module, name) + uni(arg) + TUPLE1 + REDUCE


def pkl(*parts: bytes, protocol: int = 2) -> bytes:
    return proto(protocol) + b"".join(parts) + STOP


def tensor(key: str, numel: int, storage: str = "FloatStorage") -> bytes:
    """torch._utils._rebuild_tensor_v2(persistent storage, offset, size, stride, requires_grad, hooks)."""
    return (
        glob("torch._utils", "_rebuild_tensor_v2")
        + MARK
        + MARK
        + uni("storage")
        + glob("torch", storage)
        + uni(key)
        + uni("cpu")
        + int1(numel)
        + TUPLE
        + BINPERSID
        + int1(0)
        + int1(numel)
        + TUPLE1
        + int1(1)
        + TUPLE1
        + NEWFALSE
        + glob("collections", "OrderedDict")
        + EMPTY_TUPLE
        + REDUCE
        + TUPLE
        + REDUCE
    )


def state_dict(*names: str) -> bytes:
    """The object pickle torch.save writes for a state dict of float tensors, one storage each."""
    body = b"".join(uni(n) + tensor(str(i), 4) for i, n in enumerate(names))
    return pkl(
        glob("collections", "OrderedDict"),
        EMPTY_TUPLE,
        REDUCE,
        MARK,
        body,
        SETITEMS,
        EMPTY_DICT,
        uni("_metadata"),
        glob("collections", "OrderedDict"),
        EMPTY_TUPLE,
        REDUCE,
        b"s",
        BUILD,
    )


def torch_zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def zip_checkpoint(data_pkl: bytes, extra: dict[str, bytes] | None = None) -> bytes:
    return torch_zip(
        {"archive/data.pkl": data_pkl, "archive/version": b"3\n", "archive/data/0": b"\0" * 16, **(extra or {})}
    )


LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


def legacy(
    obj_pickle: bytes, n_storages: int = 1, sys_info: bytes | None = None, tail: bytes = b"", numel: int = 4
) -> bytes:
    """torch's legacy format: magic, protocol version, sys info, the object, storage keys, raw storages
    (each an int64 element count, then that many float32 zeros)."""
    magic = pkl(b"\x8a\x0a" + LEGACY_MAGIC.to_bytes(10, "little"))
    version = pkl(b"M" + struct.pack("<H", 1001))
    info = sys_info or pkl(
        EMPTY_DICT,
        MARK,
        uni("protocol_version"),
        b"M" + struct.pack("<H", 1001),
        uni("little_endian"),
        b"\x88",
        SETITEMS,
    )
    keys = pkl(EMPTY_LIST, MARK, *(uni(str(i)) for i in range(n_storages)), APPENDS)
    storages = b"".join(struct.pack("<q", numel) + bytes(4 * numel) for _ in range(n_storages))
    return magic + version + info + obj_pickle + keys + storages + tail
