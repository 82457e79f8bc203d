"""Weight formats besides pickle that can run code, or read files outside the repo, when loaded. Never loaded here.

* numpy `.npy` / `.npz`: an object-dtype array is a pickle after the header; `np.load` needs `allow_pickle=True`.
  The header is read with numpy.lib.format's own reader (a literal, never evaluated); the pickle is analysed.
* Keras `.keras` (a zip whose config.json describes the model) and legacy `.h5` (the same JSON in the HDF5
  root attribute `model_config`): a `Lambda` layer carries marshalled Python bytecode, and any object whose
  `module` lies outside Keras makes the loader import that module. h5py reads attributes only — no Python runs;
  the HDF5 C library parses the file.
* ONNX: a tensor's external data `location` that is absolute or climbs out with `..` makes the loader read an
  arbitrary file. The protobuf is parsed with the `onnx` package without loading external data.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from scanner.evidence import pickles
from scanner.evidence.pickles import ZIP_ERRORS, PickleScan, SourceFile, describe, open_zip, printable, scan_pickle
from scanner.file_formats import HDF5, KERAS, KERAS_CONFIG_BUDGETS, NUMPY, ONNX, FileFormat, format_of
from scanner.sources.bytesource import BytesByteSource, ByteSource

if TYPE_CHECKING:  # numpy and onnx are imported when a file of theirs is read
    import numpy as np
    import onnx
    from _typeshed import SupportsRead

# Per-file budgets are the table's (scanner.file_formats says why), named here for the readers and their tests.
MAX_CONFIG_BYTES = KERAS_CONFIG_BUDGETS.header
MAX_NPY_HEADER = NUMPY.budgets.header
MAX_ONNX_BYTES = ONNX.budgets.analysed
MAX_REMOTE_ONNX_BYTES = ONNX.budgets.remote
MAX_CONFIG_NODES = 1_000_000  # JSON values walked in one config
MAX_REPORTED = 50
KERAS_MODULES = ("keras", "tf_keras", "keras_hub", "keras_nlp", "keras_cv", "tensorflow.keras")


@dataclass
class FormatScan:
    code: list[str] = field(default_factory=list)  # what would run or import code when loaded
    objects: list[str] = field(default_factory=list)  # numpy arrays that need allow_pickle=True
    escapes: list[str] = field(default_factory=list)  # ONNX external-data locations outside the repo
    pickle: PickleScan | None = None  # the pickled objects of numpy object arrays, analysed
    unverifiable: str | None = None

    def add_pickle(self, scan: PickleScan) -> None:
        if self.pickle is None:
            self.pickle = scan
            return
        self.pickle.imports += scan.imports
        self.pickle.unsafe += [u for u in scan.unsafe if u not in self.pickle.unsafe]
        self.pickle.unresolved += scan.unresolved
        self.pickle.error = self.pickle.error or scan.error
        self.pickle.malformed = self.pickle.malformed or scan.malformed


# -- numpy --------------------------------------------------------------------------------------------------------
def _npy_header(fp: SupportsRead[bytes]) -> np.dtype[Any]:
    """The array's dtype, read by numpy's own header parser (ast.literal_eval of the header dict)."""
    from numpy.lib import format as npformat

    version = npformat.read_magic(fp)
    if version == (1, 0):
        return npformat.read_array_header_1_0(fp, max_header_size=MAX_NPY_HEADER)[2]
    if version in ((2, 0), (3, 0)):  # 3.0 differs only in UTF-8 field names; read as latin-1 the dtype is the same
        return npformat.read_array_header_2_0(fp, max_header_size=MAX_NPY_HEADER)[2]
    raise ValueError(f"unknown .npy format version {version}")


def scan_numpy(src: ByteSource, path: str) -> FormatScan:
    out = FormatScan()
    head = src.read(0, min(4, src.size))
    try:
        if head.startswith(b"PK"):
            with open_zip(src) as zf:
                for info in zf.infolist():
                    if not info.filename.endswith(".npy"):
                        continue
                    with zf.open(info) as fp:
                        dtype = _npy_header(fp)
                        if dtype.hasobject and len(out.objects) < MAX_REPORTED:
                            out.objects.append(printable(info.filename[:-4]))
                            out.add_pickle(_embedded_pickle(fp, info.file_size - fp.tell()))
        else:
            whole = SourceFile(src)
            dtype = _npy_header(whole)
            if dtype.hasobject:
                out.objects.append(posixpath.basename(path))
                out.add_pickle(_embedded_pickle(whole, src.size - whole.tell()))
    except (*ZIP_ERRORS, SyntaxError, TypeError, KeyError) as exc:
        out.unverifiable = f"not a readable numpy file: {describe(exc)}"
    return out


def _embedded_pickle(fp: SupportsRead[bytes], size: int) -> PickleScan:
    limit = pickles.MAX_PICKLE_BYTES
    data = fp.read(min(max(size, 0), limit + 1))
    if len(data) > limit:
        return PickleScan(error=f"object array pickle beyond the {limit}-byte analysis budget")
    return scan_pickle(BytesByteSource(data))


# -- Keras --------------------------------------------------------------------------------------------------------
def keras_code(config: Any) -> list[str]:
    """What deserialising this Keras config would run or import, walked iteratively within a node budget."""
    found: list[str] = []
    todo, seen = [config], 0
    while todo and len(found) < MAX_REPORTED:
        node = todo.pop()
        seen += 1
        if seen > MAX_CONFIG_NODES:
            found.append(f"config larger than {MAX_CONFIG_NODES} values: not fully checked")
            break
        if isinstance(node, list):
            todo.extend(node)
        elif isinstance(node, dict):
            cls, module = node.get("class_name"), node.get("module")
            if cls in ("Lambda", "__lambda__"):  # its config is its code: nothing further to learn inside
                inner = node.get("config")
                name = inner.get("name") if isinstance(inner, dict) else None
                found.append(
                    f"Lambda layer {printable(str(name))[:80]!r} (Python bytecode)"
                    if cls == "Lambda"
                    else "a lambda function (Python bytecode)"
                )
                continue
            if isinstance(cls, str) and isinstance(module, str) and module and not _keras_module(module):
                found.append(f"{printable(module)[:80]}.{printable(cls)[:80]} (imported from outside Keras)")
            todo.extend(node.values())
    return list(dict.fromkeys(found))


def _keras_module(module: str) -> bool:
    return any(module == m or module.startswith(m + ".") for m in KERAS_MODULES)


def _json(data: bytes | str, what: str) -> tuple[Any, str | None]:
    try:
        return json.loads(data), None
    except (ValueError, UnicodeDecodeError) as exc:
        return None, f"{what} is not valid JSON: {describe(exc)}"
    except RecursionError:
        return None, f"{what} is nested too deeply to be a real model config"


def scan_keras(src: ByteSource, path: str) -> FormatScan:
    out = FormatScan()
    try:
        with open_zip(src) as zf:
            try:
                info = zf.getinfo("config.json")
            except KeyError:
                out.unverifiable = "a .keras archive without config.json"
                return out
            if info.file_size > MAX_CONFIG_BYTES:
                out.unverifiable = f"config.json is {info.file_size} bytes, beyond the {MAX_CONFIG_BYTES}-byte budget"
                return out
            with zf.open(info) as fh:
                data = fh.read(MAX_CONFIG_BYTES + 1)
    except ZIP_ERRORS as exc:
        out.unverifiable = f"not a readable .keras archive: {describe(exc)}"
        return out
    if len(data) > MAX_CONFIG_BYTES:
        out.unverifiable = "config.json decompresses beyond the analysis budget"
        return out
    config, problem = _json(data, "config.json")
    out.unverifiable = problem
    out.code = keras_code(config) if problem is None else []
    return out


def scan_hdf5(src: ByteSource, path: str) -> FormatScan:
    """Keras 2's HDF5 format: the model's JSON config sits in root attributes (weights-only files have none)."""
    out = FormatScan()
    try:
        import h5py
    except ImportError:
        out.unverifiable = "h5py is not installed, so HDF5 model configs cannot be read"
        return out
    try:
        with h5py.File(SourceFile(src), "r") as f:
            for name in ("model_config", "training_config"):
                if name not in f.attrs:
                    continue
                size = f.attrs.get_id(name).get_storage_size()
                if size > MAX_CONFIG_BYTES:
                    out.unverifiable = f"{name} is {size} bytes, beyond the {MAX_CONFIG_BYTES}-byte budget"
                    continue
                value = f.attrs[name]
                if hasattr(value, "tobytes") and not isinstance(value, (bytes, str)):
                    value = value.tobytes()
                config, problem = _json(value, name)
                out.unverifiable = out.unverifiable or problem
                out.code += [c for c in keras_code(config) if c not in out.code]
    except Exception as exc:  # noqa: BLE001 - h5py's errors for a hostile file are not one documented family
        out.unverifiable = f"not a readable HDF5 file: {describe(exc)}"
    return out


# -- ONNX ---------------------------------------------------------------------------------------------------------
_ABSOLUTE = re.compile(r"^([A-Za-z]:|[/\\]|~)")


def external_location_escapes(model_path: str, location: str) -> bool:
    """True when an external-data location is absolute or, resolved next to the model, leaves the repo."""
    if not location or _ABSOLUTE.match(location) or "\0" in location or "://" in location:
        return True
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(model_path), location.replace("\\", "/")))
    return joined == ".." or joined.startswith("../") or joined.startswith("/")


def _onnx_tensors(model: onnx.ModelProto) -> Iterator[onnx.TensorProto]:
    """Every TensorProto of a model: initializers, sparse ones, node attributes, subgraphs and functions."""
    graphs = [model.graph]
    nodes = [n for fn in model.functions for n in fn.node]
    while graphs or nodes:
        if graphs:
            g = graphs.pop()
            yield from g.initializer
            for sp in g.sparse_initializer:
                yield sp.values
                yield sp.indices
            nodes.extend(g.node)
            continue
        for attr in nodes.pop().attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("sparse_tensor"):
                yield attr.sparse_tensor.values
                yield attr.sparse_tensor.indices
            if attr.HasField("g"):
                graphs.append(attr.g)
            graphs.extend(attr.graphs)


def scan_onnx(src: ByteSource, path: str, max_bytes: int = MAX_ONNX_BYTES) -> FormatScan:
    out = FormatScan()
    if src.size > max_bytes:
        out.unverifiable = f"{src.size} bytes is beyond the {max_bytes}-byte budget for reading external-data paths"
        return out
    try:
        import onnx
        from google.protobuf.message import DecodeError
    except ImportError:
        out.unverifiable = "the onnx package is not installed, so external-data paths cannot be read"
        return out
    try:
        model = onnx.load_model_from_string(src.read(0, src.size))
        for tensor in _onnx_tensors(model):
            if tensor.data_location != onnx.TensorProto.EXTERNAL:
                continue
            location = next((e.value for e in tensor.external_data if e.key == "location"), "")
            if external_location_escapes(path, location) and len(out.escapes) < MAX_REPORTED:
                out.escapes.append(f"{printable(tensor.name)[:80]} -> {printable(location)[:200]!r}")
    except (DecodeError, ValueError, RecursionError, RuntimeError) as exc:
        out.unverifiable = f"not a readable ONNX model: {describe(exc)}"
    return out


# The reader of each format that tells "unsafe_code" and is not pickled (those are scanner.evidence.pickles').
SCANNERS: dict[FileFormat, Callable[[ByteSource, str], FormatScan]] = {
    NUMPY: scan_numpy,
    KERAS: scan_keras,
    HDF5: scan_hdf5,
    ONNX: scan_onnx,
}


def handles(path: str) -> bool:
    return format_of(path) in SCANNERS


def scan_file(src: ByteSource, path: str, remote: bool = False) -> FormatScan:
    """The scan for `path`'s format (see `handles`); `remote` lowers what may be downloaded whole."""
    fmt = format_of(path)
    if fmt is None or fmt not in SCANNERS:
        raise ValueError(f"{path}: no reader for code it would run (see handles)")
    if fmt is ONNX and remote:
        return scan_onnx(src, path, MAX_REMOTE_ONNX_BYTES)
    return SCANNERS[fmt](src, path)
