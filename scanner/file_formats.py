"""The one table of weight and archive file formats: which files of a repo are weights, what each format can tell
(tensors to compare, a header to validate, tokenizer rows and card metadata, code that would run when it is
loaded) and what its readers may spend on one file.

Every layer asks this table: sources to list and hash weight files, evidence and checks to find the code a file
would run, provenance to open tensors. It imports nothing of the scanner, so the lowest layer can use it. The
readers live in the layer that reads, each registry keyed by these rows (`scanner.evidence.unsafe_formats.SCANNERS`,
`scanner.provenance.views.TENSOR_READERS` and `HEADER_READERS`; pickled formats all go to
`scanner.evidence.pickles.scan_pickle`), and tests/test_file_formats.py holds the registries to the rows' `tells`.
Adding a format is one row here and one reader there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Tell = Literal["tensors", "header", "tokenizer", "metadata", "unsafe_code"]
"""What a file of the format can tell: tensors a provenance view can read and compare; a header validated on every
scan; tokenizer rows and card metadata (licence, base models) carried inside; code that loading it would run."""

MiB = 1024 * 1024


@dataclass(frozen=True)
class Budgets:
    """What a reader may spend on one file of the format; 0 where the format is not read that way."""

    header: int = 0  # bytes a header, or the model config stored inside the file, may claim before it is refused
    analysed: int = 0  # bytes read (or decompressed) whole and analysed
    remote: int = 0  # the same for a remote file, which must be downloaded first


@dataclass(frozen=True, eq=False)  # a row is its own identity: registries are keyed by the row
class FileFormat:
    name: str
    suffixes: tuple[str, ...]  # lower case, with the dot
    tells: frozenset[Tell] = frozenset()
    budgets: Budgets = Budgets()
    pickled: bool = False  # loading it unpickles (torch, joblib): its opcodes are analysed, never run
    weights: bool = True  # False: an archive, met only as a member inside another file

    def __repr__(self) -> str:
        return f"FileFormat({self.name})"


PICKLE_BUDGETS = Budgets(analysed=64 * MiB)  # opcode bytes analysed per file, all pickles and members together

# The safetensors reference implementation accepts a 100 MB header, but parsing that much JSON in Python takes over
# 1 GB of memory; real headers are a few MB (about 100 bytes per tensor).
SAFETENSORS = FileFormat("safetensors", (".safetensors",), frozenset({"tensors", "header"}), Budgets(header=32 * MiB))
# Real GGUF headers (a 256 k-token vocabulary with merges) are about 20 MB.
GGUF = FileFormat(
    "gguf", (".gguf",), frozenset({"tensors", "header", "tokenizer", "metadata"}), Budgets(header=256 * MiB)
)
TORCH = FileFormat("torch", (".bin", ".pt", ".pth", ".ckpt"), frozenset({"unsafe_code"}), PICKLE_BUDGETS, pickled=True)
PICKLE = FileFormat("pickle", (".pkl", ".pickle"), frozenset({"unsafe_code"}), PICKLE_BUDGETS, pickled=True)
JOBLIB = FileFormat("joblib", (".joblib",), frozenset({"unsafe_code"}), PICKLE_BUDGETS, pickled=True)
NUMPY = FileFormat("numpy", (".npy", ".npz"), frozenset({"unsafe_code"}), Budgets(header=10_000))  # numpy's default
# The Keras model config, in the .keras zip or in the legacy HDF5's root attributes; real ones are tens of KB.
KERAS_CONFIG_BUDGETS = Budgets(header=16 * MiB)
KERAS = FileFormat("keras", (".keras",), frozenset({"unsafe_code"}), KERAS_CONFIG_BUDGETS)
HDF5 = FileFormat("hdf5", (".h5",), frozenset({"unsafe_code"}), KERAS_CONFIG_BUDGETS)
# An ONNX file is parsed whole in memory. Files with external data are graph-only and small; a large file has its
# weights inline. Remote files are downloaded to be parsed, hence the lower limit.
ONNX = FileFormat("onnx", (".onnx",), frozenset({"unsafe_code"}), Budgets(analysed=256 * MiB, remote=16 * MiB))
FLAX = FileFormat("flax", (".msgpack",))  # listed as weights; nothing in them is read yet
TFLITE = FileFormat("tflite", (".tflite",))
COREML = FileFormat("coreml", (".mlmodel",))
ZIP = FileFormat("zip", (".zip",), weights=False)
TAR = FileFormat("tar", (".tar",), weights=False)

FORMATS = (  # one a line: a new format is one line here and its row above
    SAFETENSORS,
    GGUF,
    TORCH,
    PICKLE,
    JOBLIB,
    NUMPY,
    KERAS,
    HDF5,
    ONNX,
    FLAX,
    TFLITE,
    COREML,
    ZIP,
    TAR,
)
"""In order of preference where a repo has several: a repo with safetensors and GGUF is compared by its safetensors."""

_BY_SUFFIX = {suffix: fmt for fmt in FORMATS for suffix in fmt.suffixes}
_WEIGHT_SUFFIXES = tuple(s for fmt in FORMATS if fmt.weights for s in fmt.suffixes)
# Members of a torch zip or nested archive worth opening: anything pickled, and archives that may hold pickles.
PICKLE_MEMBER_SUFFIXES = tuple(s for fmt in FORMATS if fmt.pickled or not fmt.weights for s in fmt.suffixes)


def format_of(path: str) -> FileFormat | None:
    """The format a file's name says it has (its last suffix, any case); None for a file no row describes."""
    name = path.rpartition("/")[2].lower()
    dot = name.rfind(".")
    return _BY_SUFFIX.get(name[dot:]) if dot >= 0 else None


def is_weight_file(path: str) -> bool:
    return path.lower().endswith(_WEIGHT_SUFFIXES)  # format_of's answer, at half its cost: listings call it per file


def tells(path: str, what: Tell) -> bool:
    fmt = format_of(path)
    return fmt is not None and what in fmt.tells
