"""What a pickle file would import and call if loaded, found by following the unpickler's stack and memo.

Nothing is ever unpickled. `pickletools.genops` decodes the opcodes; this module simulates what the unpickler
would do with them (stack, marks, memo, persistent ids), so a callable is named by where it really comes from —
a memoised string, a string built earlier, a global fetched back from the memo — not by the strings seen last.

Every pickle in a file is analysed, not only the first: torch's legacy format is five pickles in a row followed
by raw storage bytes, and anything after a STOP may be loaded by someone. Zip containers (torch >= 1.6) are
opened and every `.pkl` member analysed, nested archives and compressed streams (joblib) too, within budgets:
a hostile file costs a finding, never minutes or gigabytes.
"""

from __future__ import annotations

import bz2
import io
import lzma
import pickletools
import struct
import zipfile
import zlib
from _compat_pickle import IMPORT_MAPPING, NAME_MAPPING  # the tables pickle's own find_class applies
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, Protocol, TypeAlias, cast

from scanner.file_formats import PICKLE, PICKLE_BUDGETS, PICKLE_MEMBER_SUFFIXES
from scanner.sources.bytesource import BytesByteSource, ByteSource

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

# -- budgets --------------------------------------------------------------------------------------------------------
MAX_PICKLE_BYTES = PICKLE_BUDGETS.analysed  # opcode bytes analysed per file, all pickles and members together
MAX_OPCODES = 1_000_000  # opcodes simulated per file (a state dict needs about 25 per tensor: 40 000 tensors)
MAX_LINE = 64 * 1024  # a GLOBAL / INST / text-protocol line longer than this is not a real one
MAX_KEPT_STRING = 1024  # longer strings are never kept: they cannot name a module
MAX_PICKLES = 10_000  # pickles back to back in one stream
MAX_DEPTH = 3  # archives inside archives
MAX_MEMBERS = 100_000  # zip entries
MAX_CENTRAL_DIRECTORY = 32 * 1024 * 1024  # zipfile reads the whole directory before we can count it
MAX_REPORTED = 200  # distinct imports / reasons kept per file

# -- the allow-list -------------------------------------------------------------------------------------------------
# Exactly the (module, name) pairs that rebuilding tensors needs. Derived from torch 2.13.0's weights_only
# unpickler (torch/_weights_only_unpickler.py, `_get_allowed_globals` and `_tensor_rebuild_functions`), which
# is what `torch.load(weights_only=True)` accepts without `add_safe_globals`; written out here, not imported.
_STORAGE_TYPES = (
    "Double",
    "Float",
    "Half",
    "BFloat16",
    "Long",
    "Int",
    "Short",
    "Char",
    "Byte",
    "Bool",
    "ComplexDouble",
    "ComplexFloat",
    "QUInt8",
    "QInt8",
    "QInt32",
    "QUInt4x2",
    "QUInt2x4",
)
_TENSOR_TYPES = ("Double", "Float", "Half", "BFloat16", "Long", "Int", "Short", "Char", "Byte", "Bool")
_DTYPES = (
    "float16",
    "float32",
    "float64",
    "bfloat16",
    "complex32",
    "complex64",
    "complex128",
    "bool",
    "uint8",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint16",
    "uint32",
    "uint64",
    "uint1",
    "uint2",
    "uint3",
    "uint4",
    "uint5",
    "uint6",
    "uint7",
    "int1",
    "int2",
    "int3",
    "int4",
    "int5",
    "int6",
    "int7",
    "qint8",
    "quint8",
    "qint32",
    "quint4x2",
    "quint2x4",
    "bits1x8",
    "bits2x4",
    "bits4x2",
    "bits8",
    "bits16",
    "float8_e4m3fn",
    "float8_e4m3fnuz",
    "float8_e5m2",
    "float8_e5m2fnuz",
    "float8_e8m0fnu",
    "float4_e2m1fn_x2",
    "per_tensor_affine",
    "per_tensor_symmetric",
    "per_channel_affine",
    "per_channel_symmetric",
    "per_channel_affine_float_qparams",
)
_REBUILD_FUNCTIONS = (
    "_rebuild_tensor",
    "_rebuild_tensor_v2",
    "_rebuild_tensor_v3",
    "_rebuild_parameter",
    "_rebuild_parameter_with_state",
    "_rebuild_qtensor",
    "_rebuild_sparse_tensor",
    "_rebuild_meta_tensor_no_storage",
    "_rebuild_nested_tensor",
    "_rebuild_wrapper_subclass",
    "_rebuild_device_tensor_from_cpu_tensor",
    "_rebuild_device_tensor_from_numpy",
)
SAFE_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {
        ("collections", "OrderedDict"),
        ("collections", "Counter"),
        ("torch.nn.parameter", "Parameter"),
        ("torch.serialization", "_get_layout"),
        ("torch", "Size"),
        ("torch", "Tensor"),
        ("torch", "device"),
        ("_codecs", "encode"),
        ("builtins", "bytearray"),
        ("builtins", "set"),
        ("builtins", "complex"),
        ("torch.storage", "TypedStorage"),
        ("torch.storage", "UntypedStorage"),
        ("torch._tensor", "_rebuild_from_type_v2"),
    }
    | {("torch", d) for d in _DTYPES}
    | {(m, f"{t}Storage") for m in ("torch", "torch.cuda") for t in _STORAGE_TYPES if m == "torch" or "Q" not in t}
    | {
        (m, f"{t}Tensor")
        for m in ("torch", "torch.cuda", "torch.sparse", "torch.cuda.sparse")
        for t in _TENSOR_TYPES
        if not (m.endswith("sparse") and t == "Bool")
    }
    | {("torch._utils", f) for f in _REBUILD_FUNCTIONS}
    # numpy arrays of plain numbers (torch refuses these unless allow-listed by the user): the array, its dtype
    # from a type code, and a 0-d scalar. An object-dtype array's elements need globals of their own, checked too.
    | {(m, f) for m in ("numpy.core.multiarray", "numpy._core.multiarray") for f in ("_reconstruct", "scalar")}
    | {("numpy", "ndarray"), ("numpy", "dtype")}
)
# Bytes per element of each legacy storage type: the legacy format's raw storages follow the pickles.
_ELEMENT_SIZE = {
    "Double": 8,
    "Float": 4,
    "Half": 2,
    "BFloat16": 2,
    "Long": 8,
    "Int": 4,
    "Short": 2,
    "Char": 1,
    "Byte": 1,
    "Bool": 1,
    "ComplexDouble": 16,
    "ComplexFloat": 8,
    "QUInt8": 1,
    "QInt8": 1,
    "QInt32": 4,
    "QUInt4x2": 1,
    "QUInt2x4": 1,
}
# Modules whose callables run commands or code: listed first in a report (the verdict never depends on this).
_NOTORIOUS = frozenset(
    {
        "os",
        "posix",
        "nt",
        "subprocess",
        "builtins",
        "__builtin__",
        "runpy",
        "pty",
        "shutil",
        "socket",
        "webbrowser",
        "importlib",
        "code",
        "pickle",
        "marshal",
        "ctypes",
        "sys",
    }
)
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # torch.serialization.MAGIC_NUMBER, the legacy format's first pickle


def is_safe(module: str, name: str) -> bool:
    return (module, name) in SAFE_GLOBALS


@dataclass
class PickleScan:
    imports: list[str] = field(default_factory=list)  # "module name", every global the file would import
    unsafe: list[str] = field(default_factory=list)  # the imports outside the allow-list
    unresolved: list[str] = field(default_factory=list)  # calls / globals the analysis could not name (unsafe)
    error: str | None = None  # why the analysis is incomplete: the file cannot be shown safe
    # where the stream breaks as it would break the unpickler too: everything before it was analysed
    malformed: str | None = None
    pickles: int = 0  # pickle streams analysed
    opcodes: int = 0

    @property
    def dangerous(self) -> bool:
        return bool(self.unsafe or self.unresolved)


# -- abstract values on the simulated stack ----------------------------------------------------------------------
@dataclass(frozen=True)
class _Global:
    module: str
    name: str


@dataclass(frozen=True)
class _Made:
    """An object the unpickler would create by calling `by` (a _Global, or None when unknown)."""

    by: _Global | None


class _Opaque:
    """A value whose content does not matter to the analysis (numbers, dicts, long strings, bytes …)."""


OPAQUE = _Opaque()

# What the simulated stack, memo and marks hold: names and small numbers kept as they are, the tuples and lists
# that torch's persistent ids and storage keys are made of, and placeholders for everything else.
_Value: TypeAlias = "_Global | _Made | _Opaque | str | int | tuple[_Value, ...] | list[_Value]"


class _Budget:
    """What one file's analysis may still spend, and what it has already reported (shared by its pickles)."""

    def __init__(self) -> None:
        self.bytes_left = MAX_PICKLE_BYTES
        self.opcodes_left = MAX_OPCODES
        self.seen_globals: set[tuple[str, str]] = set()
        self.seen_reasons: set[str] = set()


class _PickleStream(Protocol):
    """What the analysis reads pickles from: a whole file in memory, or a budgeted window on a large one."""

    over_budget: bool

    def read(self, n: int = -1, /) -> bytes: ...
    def readline(self, limit: int = -1, /) -> bytes: ...
    def tell(self) -> int: ...
    def seek(self, pos: int, /) -> int | None: ...
    def read_raw(self, n: int) -> bytes: ...
    def at_end(self) -> bool: ...

    @property
    def size(self) -> int: ...


class _Stream:
    """A buffered file object over a ByteSource for genops: bounded lines, a byte budget, and skipping."""

    CHUNK = 1 << 20

    def __init__(self, src: ByteSource, budget: _Budget):
        self.src, self.budget, self.pos = src, budget, 0
        self.buf, self.buf_at = b"", 0
        self.over_budget = False

    def _ensure(self, n: int) -> tuple[int, int]:
        """Makes the buffer hold min(n, what is left) bytes from pos; returns (offset in buffer, n)."""
        n = max(0, min(n, self.src.size - self.pos))
        off = self.pos - self.buf_at
        if off < 0 or off + n > len(self.buf):
            self.buf_at, off = self.pos, 0
            self.buf = self.src.read(self.pos, min(max(n, self.CHUNK), self.src.size - self.pos))
        return off, n

    def _take(self, n: int) -> bytes:
        if n > self.budget.bytes_left:
            n, self.over_budget = self.budget.bytes_left, True
        if n > self.CHUNK:  # one long string: read it directly, keep the buffer
            n = max(0, min(n, self.src.size - self.pos))
            data = self.src.read(self.pos, n)
        else:
            off, n = self._ensure(n)
            data = self.buf[off : off + n]
        self.pos += len(data)
        self.budget.bytes_left -= len(data)
        return data

    def read(self, n: int = -1) -> bytes:
        off = self.pos - self.buf_at
        if 0 <= n <= self.budget.bytes_left and 0 <= off and off + n <= len(self.buf):  # the common case
            self.pos += n
            self.budget.bytes_left -= n
            return self.buf[off : off + n]
        return self._take(self.src.size - self.pos if n is None or n < 0 else n)

    def readline(self, limit: int = -1) -> bytes:
        off, n = self._ensure(MAX_LINE)
        end = self.buf.find(b"\n", off, off + n)
        return self._take(end + 1 - off if end >= 0 else n)

    def tell(self) -> int:
        return self.pos

    def seek(self, pos: int) -> None:  # skipping is not analysing: the budget is not charged
        self.pos = pos

    def read_raw(self, n: int) -> bytes:
        """A few bytes of the data between pickles, read directly: no read-ahead buffer (remote sources)."""
        data = self.src.read(self.pos, max(0, min(n, self.src.size - self.pos)))
        self.pos += len(data)
        return data

    @property
    def size(self) -> int:
        return self.src.size

    def at_end(self) -> bool:
        return self.pos >= self.src.size


class _Report:
    """Collects findings with linear de-duplication and a cap on how many are kept."""

    def __init__(self, out: PickleScan, where: str, budget: _Budget):
        self.out, self.where = out, where
        self.seen_globals, self.seen_reasons = budget.seen_globals, budget.seen_reasons

    def imported(self, g: _Global) -> None:
        key = (g.module, g.name)
        if key in self.seen_globals:
            return
        out = self.out
        safe = key in SAFE_GLOBALS
        notorious = g.module.partition(".")[0] in _NOTORIOUS
        if len(out.imports) >= MAX_REPORTED and (safe or len(out.unsafe) >= MAX_REPORTED) and not notorious:
            return  # nothing left to record: the verdict cannot change
        self.seen_globals.add(key)
        ref = f"{printable(g.module)} {printable(g.name)}"  # repo-controlled text: no control characters
        if len(out.imports) < MAX_REPORTED:
            out.imports.append(ref)
        if not safe:
            if notorious:  # first in the report, so decoy globals cannot push the payload out of sight
                out.unsafe.insert(0, ref)
                del out.unsafe[MAX_REPORTED:]
            elif len(out.unsafe) < MAX_REPORTED:
                out.unsafe.append(ref)

    def unresolved(self, reason: str, pos: int | None) -> None:
        if reason in self.seen_reasons or len(self.out.unresolved) >= MAX_REPORTED:
            return
        self.seen_reasons.add(reason)
        self.out.unresolved.append(f"{self.where}{reason} (at byte {pos})")

    def fail(self, reason: str) -> None:
        if self.out.error is None:
            self.out.error = f"{self.where}{reason}"

    def malformed(self, reason: str) -> None:
        if self.out.malformed is None:
            self.out.malformed = f"{self.where}{reason}"


def _global(module: str, name: str, proto: int) -> _Global:
    """The global the unpickler would look up: protocol < 3 maps Python 2 names (fix_imports)."""
    if proto < 3:
        if (module, name) in NAME_MAPPING:
            module, name = NAME_MAPPING[(module, name)]
        elif module in IMPORT_MAPPING:
            module = IMPORT_MAPPING[module]
    return _Global(module, name)


def _keep(value: object) -> _Value:
    if isinstance(value, str):
        return value if len(value) <= MAX_KEPT_STRING else OPAQUE
    if isinstance(value, int) and not isinstance(value, bool):
        return value if value.bit_length() <= 128 else OPAQUE
    return OPAQUE


def _generic_effect(op: pickletools.OpcodeInfo) -> tuple[bool, int, int]:
    """(pops to a mark?, items popped below it, items pushed): what pickletools says an opcode does."""
    before = list(op.stack_before)
    mark = pickletools.markobject in before
    if mark:
        before = before[: before.index(pickletools.markobject)]
    return mark, len(before), len(op.stack_after)


class _Unpickler:
    """One pickle: simulates the stack machine of pickle._Unpickler over genops' decoded opcodes.

    Only what decides which callables run is modelled exactly (strings, globals, calls, memo, marks, the
    tuples and lists of torch's persistent ids and storage keys); other values are opaque placeholders.
    """

    def __init__(self, report: _Report, budget: _Budget):
        self.report, self.budget = report, budget
        self.stack: list[_Value] = []
        self.metastack: list[list[_Value]] = []
        self.memo: dict[int, _Value] = {}
        self.proto = 0
        self.storages: dict[str, str] = {}  # legacy persistent ids: storage key -> storage type name
        self.result: _Value | None = None
        self.pos: int | None = 0  # genops' position of the opcode (None only for a stream without tell)
        self.done = False
        self.start = -1  # where this pickle begins in the stream
        self.framed = False  # it begins with PROTO 2..5, as every pickle torch or pickle.dumps writes does

    def pop_mark(self) -> list[_Value]:
        items = self.stack
        self.stack = self.metastack.pop()
        return items

    def pop(self, n: int = 1) -> list[_Value]:
        if n > len(self.stack):
            raise IndexError("stack underflow")
        items = self.stack[len(self.stack) - n :]
        del self.stack[len(self.stack) - n :]
        return items

    def call(self, target: _Value, how: str) -> _Made:
        if isinstance(target, _Global):
            return _Made(target)
        self.report.unresolved(f"{how} calls a value built while loading, not a named global", self.pos)
        return _Made(None)

    def run(self, stream: _PickleStream) -> None:
        """Raises ValueError / IndexError / KeyError on a stream the real unpickler would also reject."""
        handlers, budget, counted = _BY_OPCODE, self.budget, 0
        limit = budget.opcodes_left
        try:
            # genops reads through read, readline and tell only, which every _PickleStream has
            for op, arg, pos in pickletools.genops(cast(IO[bytes], stream)):
                counted += 1
                if counted > limit:
                    raise _BudgetExceeded(f"more than {MAX_OPCODES} opcodes")
                self.pos = pos
                handlers[op](self, arg)
                if self.done:
                    return
        finally:
            budget.opcodes_left -= counted
            self.report.out.opcodes += counted
        raise ValueError("pickle ends without STOP")

    def generic(self, mark: bool, below: int, after: int) -> None:
        """An opcode that only builds plain data: consume and produce what pickletools says it does."""
        if mark:
            self.pop_mark()
        if below:
            self.pop(below)
        self.stack.extend([OPAQUE] * after)

    # -- opcode handlers: one per family --------------------------------------------------------------------------
    def _proto(self, arg: int) -> None:
        self.proto = arg
        if self.pos == self.start:
            self.framed = 2 <= arg <= 5

    def _nothing(self, arg: object) -> None:
        pass

    def _stop(self, arg: object) -> None:
        self.result, self.done = self.pop()[0], True

    def _value(self, arg: str | int) -> None:
        self.stack.append(_keep(arg))

    def _mark(self, arg: object) -> None:
        self.metastack.append(self.stack)
        self.stack = []

    def _pop(self, arg: object) -> None:
        if self.stack:
            self.stack.pop()
        else:
            self.pop_mark()

    def _pop_mark(self, arg: object) -> None:
        self.pop_mark()

    def _dup(self, arg: object) -> None:
        self.stack.append(self.stack[-1])

    def _put(self, arg: int) -> None:  # the memo holds the very value, so a later GET brings back what was stored
        self.memo[int(arg)] = self.stack[-1]

    def _memoize(self, arg: object) -> None:
        self.memo[len(self.memo)] = self.stack[-1]

    def _get(self, arg: int) -> None:
        self.stack.append(self.memo[int(arg)])

    def _empty_list(self, arg: object) -> None:
        self.stack.append([])

    def _list(self, arg: object) -> None:
        items = self.pop_mark()  # before naming self.stack: popping the mark replaces it
        self.stack.append(items)

    def _append(self, arg: object) -> None:
        value = self.pop()[0]
        if isinstance(self.stack[-1], list):
            self.stack[-1].append(value)

    def _appends(self, arg: object) -> None:
        items = self.pop_mark()
        if isinstance(self.stack[-1], list):
            self.stack[-1].extend(items)

    def _empty_tuple(self, arg: object) -> None:
        self.stack.append(())

    def _tuple(self, arg: object) -> None:
        items = tuple(self.pop_mark())
        self.stack.append(items)

    def _tuple1(self, arg: object) -> None:
        self.stack.append(tuple(self.pop(1)))

    def _tuple2(self, arg: object) -> None:
        self.stack.append(tuple(self.pop(2)))

    def _tuple3(self, arg: object) -> None:
        self.stack.append(tuple(self.pop(3)))

    def _setitem(self, arg: object) -> None:  # the dict (or object) below stays where it was
        self.pop(2)
        if not self.stack:
            raise IndexError("SETITEM without a dict")

    def _setitems(self, arg: object) -> None:
        self.pop_mark()
        if not self.stack:
            raise IndexError("SETITEMS without a container")

    def _global(self, arg: str) -> None:
        module, _, attr = str(arg).partition(" ")
        g = _global(module, attr, self.proto)
        self.report.imported(g)
        self.stack.append(g)

    def _inst(self, arg: str) -> None:
        module, _, attr = str(arg).partition(" ")
        g = _global(module, attr, self.proto)
        self.report.imported(g)
        self.pop_mark()
        self.stack.append(_Made(g))

    def _stack_global(self, arg: object) -> None:
        attr, module = self.pop()[0], self.pop()[0]
        if isinstance(module, str) and isinstance(attr, str):
            g = _global(module, attr, self.proto)
            self.report.imported(g)
            self.stack.append(g)
        else:
            self.report.unresolved("STACK_GLOBAL on a module or name that is not a plain string", self.pos)
            self.stack.append(_Made(None))

    def _reduce(self, arg: object) -> None:
        self.pop()
        self.stack[-1] = self.call(self.stack[-1], "REDUCE")

    def _newobj(self, arg: object) -> None:
        self.pop()
        self.stack.append(self.call(self.pop()[0], "NEWOBJ"))

    def _newobj_ex(self, arg: object) -> None:
        self.pop(2)
        self.stack.append(self.call(self.pop()[0], "NEWOBJ_EX"))

    def _obj(self, arg: object) -> None:
        items = self.pop_mark()
        if not items:
            raise IndexError("OBJ without a class")
        self.stack.append(self.call(items[0], "OBJ"))

    def _build(self, arg: object) -> None:
        self.pop()
        target = self.stack[-1]
        if isinstance(target, _Global):  # would set attributes of a class or function: patching code
            self.report.unresolved(f"BUILD sets attributes of the global {target.module}.{target.name}", self.pos)

    def _ext(self, arg: int) -> None:
        self.report.unresolved(f"extension code {arg} fetches a callable from the copyreg registry", self.pos)
        self.stack.append(_Made(None))

    def _persid(self, arg: str) -> None:
        self.stack.append(self.persistent(arg))

    def _binpersid(self, arg: object) -> None:
        self.stack.append(self.persistent(self.pop()[0]))

    def persistent(self, pid: _Value) -> _Value:
        """What torch's persistent_load returns: a storage for ('storage', <type>, key, location, numel[, view])
        (each key's type is remembered to skip legacy storages), the class itself for ('module', <class>, …)."""
        if isinstance(pid, tuple) and len(pid) >= 3 and pid[0] == "storage" and isinstance(pid[2], str):
            kind = pid[1]
            if isinstance(kind, _Global) and kind.name.endswith("Storage"):
                self.storages[pid[2]] = kind.name[: -len("Storage")]
        elif isinstance(pid, tuple) and len(pid) >= 2 and pid[0] == "module" and isinstance(pid[1], _Global):
            return pid[1]
        return OPAQUE

    # genops' argument is typed by the opcode (an int for PROTO and PUT, a str for GLOBAL …): Any here
    HANDLERS: dict[str, Callable[[_Unpickler, Any], None]] = {
        "PROTO": _proto,
        "FRAME": _nothing,
        "STOP": _stop,
        "MARK": _mark,
        "POP": _pop,
        "POP_MARK": _pop_mark,
        "DUP": _dup,
        "PUT": _put,
        "BINPUT": _put,
        "LONG_BINPUT": _put,
        "MEMOIZE": _memoize,
        "GET": _get,
        "BINGET": _get,
        "LONG_BINGET": _get,
        "EMPTY_LIST": _empty_list,
        "LIST": _list,
        "APPEND": _append,
        "APPENDS": _appends,
        "EMPTY_TUPLE": _empty_tuple,
        "TUPLE": _tuple,
        "TUPLE1": _tuple1,
        "TUPLE2": _tuple2,
        "TUPLE3": _tuple3,
        "SETITEM": _setitem,
        "SETITEMS": _setitems,
        "ADDITEMS": _setitems,
        "GLOBAL": _global,
        "INST": _inst,
        "STACK_GLOBAL": _stack_global,
        "REDUCE": _reduce,
        "NEWOBJ": _newobj,
        "NEWOBJ_EX": _newobj_ex,
        "OBJ": _obj,
        "BUILD": _build,
        "EXT1": _ext,
        "EXT2": _ext,
        "EXT4": _ext,
        "PERSID": _persid,
        "BINPERSID": _binpersid,
        **dict.fromkeys(
            (
                "STRING",
                "BINSTRING",
                "SHORT_BINSTRING",
                "UNICODE",
                "BINUNICODE",
                "SHORT_BINUNICODE",
                "BINUNICODE8",
                "INT",
                "BININT",
                "BININT1",
                "BININT2",
                "LONG",
                "LONG1",
                "LONG4",
            ),
            _value,
        ),
    }


def _generic_handler(op: pickletools.OpcodeInfo) -> Callable[[_Unpickler, object], None]:
    effect = _generic_effect(op)
    return lambda unpickler, arg: unpickler.generic(*effect)


# Every opcode's handler, keyed by pickletools' own OpcodeInfo objects (what genops yields).
_BY_OPCODE = {op: _Unpickler.HANDLERS.get(op.name) or _generic_handler(op) for op in pickletools.opcodes}


class _BudgetExceeded(Exception):
    pass


# -- files ----------------------------------------------------------------------------------------------------------
def _legacy_storages(stream: _PickleStream, keys: list[_Value], types: dict[str, str]) -> str | None:
    """Skips the raw storages torch's legacy format writes after its pickles; returns why it could not."""
    for key in keys:
        kind = types.get(key) if isinstance(key, str) else None
        if kind not in _ELEMENT_SIZE:
            return f"legacy torch storage {str(key)[:40]!r} has no known element type"
        head = stream.read_raw(8)
        if len(head) < 8:
            return "legacy torch storages are truncated"
        (count,) = struct.unpack("<q", head)
        end = stream.tell() + count * _ELEMENT_SIZE[kind]
        if count < 0 or end > stream.size:
            return f"legacy torch storage {str(key)[:40]!r} claims {count} elements beyond the end of the file"
        stream.seek(end)
    return None


class _MemoryStream(io.BytesIO):
    """A file small enough to hold whole (within the byte budget): genops reads it at C speed."""

    over_budget = False

    def __init__(self, data: bytes):
        super().__init__(data)
        self.size = len(data)

    def at_end(self) -> bool:
        return self.tell() >= self.size

    def read_raw(self, n: int) -> bytes:
        return self.read(n)


def _scan_pickles(src: ByteSource, out: PickleScan, budget: _Budget, where: str) -> None:
    """Every pickle in `src`, back to back until the end of the file."""
    report = _Report(out, where, budget)
    if src.size == 0:
        report.malformed("empty file")
        return
    if src.size <= budget.bytes_left:
        budget.bytes_left -= src.size
        stream: _PickleStream = _MemoryStream(src.read(0, src.size))
    else:  # a large file (a legacy checkpoint's storages, or hostile): read as far as the budget allows
        stream = _Stream(src, budget)
    results: list[_Value | None] = []
    storages: dict[str, str] = {}
    while not stream.at_end():
        if len(results) >= MAX_PICKLES:
            report.fail(f"more than {MAX_PICKLES} pickles in one file")
            return
        start = stream.tell()
        unpickler = _Unpickler(report, budget)
        unpickler.start = start
        try:
            unpickler.run(stream)
        except _BudgetExceeded as exc:
            report.fail(f"analysis stopped: {exc}")
            return
        except (ValueError, IndexError, KeyError, TypeError, AttributeError, struct.error) as exc:
            if stream.over_budget:
                report.fail(f"analysis stopped: more than {MAX_PICKLE_BYTES} bytes of pickle data")
            elif unpickler.framed and "unknown" in str(exc):  # a later Python's unpickler may know the opcode
                report.fail(
                    f"pickle {len(results) + 1} uses an opcode this analysis does not know "
                    f"({describe(exc)}); what follows it was not analysed"
                )
            elif results:  # never loaded: pickle.load and torch stop before them
                report.malformed(
                    f"{src.size - start} bytes after pickle {len(results)} are not a pickle ({describe(exc)})"
                )
            else:  # the unpickler fails here too; every opcode before was analysed
                report.malformed(f"not a complete pickle: {describe(exc)}")
            return
        finally:
            out.pickles += 1
        results.append(unpickler.result)
        storages.update(unpickler.storages)
        # torch legacy format: magic, protocol, sys info, the object tree, storage keys, then raw storages
        if len(results) == 5 and results[0] == _LEGACY_MAGIC and isinstance(results[4], list):
            problem = _legacy_storages(stream, results[4], storages)
            if problem:  # torch reads the rest as raw bytes, never as a pickle
                report.malformed(problem)
                return


def describe(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:120] or type(exc).__name__


def _central_directory_size(src: ByteSource) -> int | None:
    """Size the zip's central directory claims, read from its end records (zipfile has no limit of its own)."""
    tail_len = min(src.size, 22 + 65535)
    tail = src.read(src.size - tail_len, tail_len)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or at + 22 > len(tail):
        return None
    entries, size = struct.unpack("<HI", tail[at + 10 : at + 16])
    if size != 0xFFFFFFFF and entries != 0xFFFF:
        return int(size)
    loc = at - 20  # zip64 end-of-central-directory locator, then the record it points to
    if loc < 0 or tail[loc : loc + 4] != b"PK\x06\x07":
        return None
    (record,) = struct.unpack("<Q", tail[loc + 8 : loc + 16])
    if record + 56 > src.size:
        return None
    head = src.read(record, 56)
    return struct.unpack("<Q", head[40:48])[0] if head[:4] == b"PK\x06\x06" else None


def open_zip(src: ByteSource) -> zipfile.ZipFile:
    """A zip archive read in place, refused (ValueError) when its directory is beyond the budgets."""
    cd = _central_directory_size(src)
    if cd is not None and cd > MAX_CENTRAL_DIRECTORY:
        raise ValueError(f"zip directory of {cd} bytes is beyond the {MAX_CENTRAL_DIRECTORY}-byte budget")
    zf = zipfile.ZipFile(SourceFile(src))
    if len(zf.infolist()) > MAX_MEMBERS:
        zf.close()
        raise ValueError(f"zip with more than {MAX_MEMBERS} entries is beyond the budget")
    return zf


ZIP_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    NotImplementedError,
    RuntimeError,
    OSError,
    ValueError,
    EOFError,
    zlib.error,
    lzma.LZMAError,
)


def _scan_zip(src: ByteSource, out: PickleScan, budget: _Budget, where: str, depth: int) -> None:
    report = _Report(out, where, budget)
    try:
        with open_zip(src) as zf:
            for info in zf.infolist():
                lower = info.filename.lower()
                if info.is_dir() or not lower.endswith(PICKLE_MEMBER_SUFFIXES):
                    continue
                member = printable(info.filename)
                with zf.open(info) as fh:  # never more than the budget, whatever the directory claims (bombs)
                    data = fh.read(budget.bytes_left + 1)
                if not lower.endswith(PICKLE.suffixes) and not data.startswith((b"PK\x03\x04", b"\x80")):
                    continue  # raw data under an archive-like name, never loaded as a pickle
                if len(data) > budget.bytes_left:  # analyse what fits: a payload at the head is still found
                    report.fail(
                        f"{member} is larger than the {MAX_PICKLE_BYTES}-byte analysis budget; "
                        f"only its first {budget.bytes_left} bytes were analysed"
                    )
                    data = data[: budget.bytes_left]
                _scan_any(BytesByteSource(data, member), out, budget, f"{where}{member}: ", depth + 1)
                if out.error:
                    return
    except ZIP_ERRORS as exc:
        report.fail(f"not a readable zip archive: {describe(exc)}")


def printable(name: str) -> str:
    """Repo-controlled text cut to 200 characters, control characters replaced (never reach a terminal raw)."""
    name = name[:200]
    return name if name.isprintable() else "".join(c if c.isprintable() else "?" for c in name)


_COMPRESSED = (
    (b"\x1f\x8b", "gzip"),
    (b"\x78\x01", "zlib"),
    (b"\x78\x5e", "zlib"),
    (b"\x78\x9c", "zlib"),
    (b"\x78\xda", "zlib"),
    (b"BZh", "bz2"),
    (b"\xfd7zXZ\x00", "xz"),
)


class _Decompressor(Protocol):
    """zlib's, bz2's and lzma's incremental decompressors: output bounded by max_length, eof at the stream's end."""

    def decompress(self, data: bytes, max_length: int, /) -> bytes: ...

    @property
    def eof(self) -> bool: ...


_DECOMPRESSORS: dict[str, Callable[[], _Decompressor]] = {
    "gzip": lambda: zlib.decompressobj(31),
    "zlib": zlib.decompressobj,
    "bz2": bz2.BZ2Decompressor,
    "xz": lzma.LZMADecompressor,
}


def _decompress(src: ByteSource, kind: str, limit: int) -> bytes | None:
    """joblib's compressed pickles, decompressed to at most `limit` + 1 bytes (None: not that format)."""
    d = _DECOMPRESSORS[kind]()
    out, pos = bytearray(), 0
    try:
        while pos < src.size and len(out) <= limit:
            chunk = src.read(pos, min(1 << 20, src.size - pos))
            pos += len(chunk)
            out += d.decompress(chunk, limit + 1 - len(out))
            if d.eof:
                break
    except (zlib.error, OSError, lzma.LZMAError, EOFError, ValueError):
        return None
    return bytes(out)


def _scan_any(src: ByteSource, out: PickleScan, budget: _Budget, where: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        _Report(out, where, budget).fail(f"archives nested more than {MAX_DEPTH} deep")
        return
    head = src.read(0, min(8, src.size))
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        _scan_zip(src, out, budget, where, depth)
        return
    for magic, kind in _COMPRESSED:
        if head.startswith(magic):
            data = _decompress(src, kind, budget.bytes_left)
            if data is not None:
                if len(data) > budget.bytes_left:  # analyse what fits, and say the rest was not
                    _Report(out, where, budget).fail(
                        f"{kind} stream decompresses beyond the {MAX_PICKLE_BYTES}-"
                        "byte analysis budget; only its beginning was analysed"
                    )
                    data = data[: budget.bytes_left]
                _scan_any(BytesByteSource(data, src.name), out, budget, f"{where}({kind}) ", depth + 1)
                return
    _scan_pickles(src, out, budget, where)


def scan_pickle(src: ByteSource) -> PickleScan:
    """Analyse a pickle file, a torch zip or legacy checkpoint, or a compressed joblib file. Never loads it."""
    out = PickleScan()
    _scan_any(src, out, _Budget(), "", 0)
    return out


class SourceFile(io.RawIOBase):
    """A seekable file object over a ByteSource, so zipfile (or numpy, h5py) can read it in place."""

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

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        b = memoryview(buffer).cast("B")
        n = max(0, min(len(b), self.src.size - self.pos))
        data = self.src.read(self.pos, n) if n else b""
        b[: len(data)] = data
        self.pos += len(data)
        return len(data)
