"""The table of weight and archive formats (scanner.file_formats) and the readers keyed by its rows."""

from __future__ import annotations

from itertools import takewhile
from pathlib import Path

import pytest

from scanner import file_formats
from scanner.evidence import pickles, unsafe_formats
from scanner.file_formats import (
    FORMATS,
    GGUF,
    NUMPY,
    ONNX,
    PICKLE,
    SAFETENSORS,
    TAR,
    TORCH,
    ZIP,
    format_of,
    is_weight_file,
    tells,
)
from scanner.provenance import gguf, safetensors
from scanner.provenance.gguf import GGUFModel
from scanner.provenance.quantized import DequantizingModel
from scanner.provenance.views import HEADER_READERS, TENSOR_READERS, open_model
from scanner.sources.interface import RepoFile, Snapshot


def test_each_suffix_names_one_format():
    suffixes = [s for fmt in FORMATS for s in fmt.suffixes]
    assert len(suffixes) == len(set(suffixes))
    assert all(s.startswith(".") and s == s.lower() and "." not in s[1:] for s in suffixes)
    assert len({fmt.name for fmt in FORMATS}) == len(FORMATS)


@pytest.mark.parametrize(
    ("path", "fmt"),
    [
        ("model-00001-of-00002.safetensors", SAFETENSORS),
        ("sub/dir/Model.Q4_K_M.GGUF", GGUF),
        ("pytorch_model.bin", TORCH),
        ("ckpt/last.ckpt", TORCH),
        ("data.pkl", PICKLE),
        ("arrays.npz", NUMPY),
        ("model.onnx", ONNX),
        ("bundle.zip", ZIP),
        ("model.safetensors.index.json", None),  # names the shards; not weights itself
        ("README", None),
        ("weights.v1/README", None),  # a dot in a folder name is no suffix
        ("model.bin.txt", None),
    ],
)
def test_a_file_has_the_format_of_its_last_suffix(path, fmt):
    assert format_of(path) is fmt


def test_is_weight_file_is_format_of_a_weight_row():
    names = [
        "README",
        "x.v1/README",
        "d/.npy",
        "model.bin.txt",
        "a.",
        *(f"d/m{s.upper()}" for f in FORMATS for s in f.suffixes),
    ]
    for path in names:
        fmt = format_of(path)
        assert is_weight_file(path) == (fmt is not None and fmt.weights), path


def test_weight_files_are_the_weight_rows_and_archives_are_not():
    assert is_weight_file("model.safetensors") and is_weight_file("flax_model.msgpack")
    assert not is_weight_file("bundle.zip") and not is_weight_file("dump.tar")
    assert not is_weight_file("config.json") and not is_weight_file("README.md")
    assert {ZIP, TAR} == {fmt for fmt in FORMATS if not fmt.weights}


def test_what_a_format_tells():
    assert tells("a.safetensors", "tensors") and tells("a.gguf", "tokenizer") and tells("a.pt", "unsafe_code")
    assert not tells("a.safetensors", "unsafe_code") and not tells("a.msgpack", "tensors")
    assert not tells("notes.txt", "tensors")


def test_every_pickled_format_can_run_code_and_its_members_are_opened():
    for fmt in FORMATS:
        if fmt.pickled:
            assert "unsafe_code" in fmt.tells and fmt.budgets.analysed == pickles.MAX_PICKLE_BYTES
            assert all(s in file_formats.PICKLE_MEMBER_SUFFIXES for s in fmt.suffixes)
    assert ".zip" in file_formats.PICKLE_MEMBER_SUFFIXES and ".safetensors" not in file_formats.PICKLE_MEMBER_SUFFIXES


# -- the registries of readers agree with what the rows say they tell: a row without its reader fails here -----------
def test_tensor_readers_are_the_formats_that_tell_tensors():
    assert set(TENSOR_READERS) == {fmt for fmt in FORMATS if "tensors" in fmt.tells}


def test_header_readers_are_the_formats_that_tell_a_header():
    assert set(HEADER_READERS) == {fmt for fmt in FORMATS if "header" in fmt.tells}


def test_unsafe_code_readers_cover_every_format_that_can_run_code():
    unpickled = {fmt for fmt in FORMATS if "unsafe_code" in fmt.tells and not fmt.pickled}
    assert set(unsafe_formats.SCANNERS) == unpickled
    assert unsafe_formats.handles("m.ONNX") and not unsafe_formats.handles("m.pt")


def test_tokenizer_rows_and_card_metadata_come_from_the_one_format_evidence_reads_them_from():
    # scanner.evidence.gguf reads them (read_gguf_facts); a row claiming them needs a reader there
    assert {fmt for fmt in FORMATS if {"tokenizer", "metadata"} & fmt.tells} == {GGUF}


def test_readers_spend_the_budgets_of_their_rows():
    assert safetensors.MAX_HEADER_BYTES == SAFETENSORS.budgets.header
    assert gguf.MAX_HEADER_BYTES == GGUF.budgets.header
    assert unsafe_formats.MAX_NPY_HEADER == NUMPY.budgets.header
    assert (unsafe_formats.MAX_ONNX_BYTES, unsafe_formats.MAX_REMOTE_ONNX_BYTES) == (
        ONNX.budgets.analysed,
        ONNX.budgets.remote,
    )


def _snapshot(*paths: str) -> Snapshot:
    return Snapshot(target="t", kind="local", name="t", files={p: RepoFile(p, 0, lfs_pointer=True) for p in paths})


@pytest.mark.parametrize(
    ("paths", "view"),
    [
        (("m.safetensors", "m.Q4_K_M.gguf"), DequantizingModel),  # the table's order: safetensors first
        (("m.Q4_K_M.gguf", "pytorch_model.bin"), GGUFModel),
        (("pytorch_model.bin",), DequantizingModel),  # nothing readable: an empty view that says why
    ],
)
def test_a_repo_is_read_in_its_first_format_that_tells_tensors(paths, view):
    model = open_model(_snapshot(*paths))
    try:
        assert type(model) is view
        assert not model.tensors and model.problems
    finally:
        model.close()


# -- the README's table of weight formats restates the table ---------------------------------------------------------
TELLS = {
    "tensors": "tensors (compared with upstreams)",
    "header": "header (validated on every scan)",
    "tokenizer": "tokenizer",
    "metadata": "licence and base models",
    "unsafe_code": "what loading it would run or read",
}
WEIGHT_FORMATS_HEADER = "| format | files | what is read | budget per file |\n|---|---|---|---|\n"


def _size(n: int) -> str:
    return f"{n // file_formats.MiB} MiB" if n % file_formats.MiB == 0 else f"{n:,} bytes"


def weight_format_table() -> str:
    rows = []
    for fmt in FORMATS:
        files = " ".join(f"`{s}`" for s in fmt.suffixes) + ("" if fmt.weights else " (inside other files)")
        reads = [TELLS[t] for t in TELLS if t in fmt.tells]
        if fmt.pickled:
            reads[-1] += " (its pickle opcodes; never unpickled)"
        b = fmt.budgets
        budget = [f"header ≤ {_size(b.header)}"] if b.header else []
        budget += [f"≤ {_size(b.analysed)} analysed"] if b.analysed else []
        budget += [f"≤ {_size(b.remote)} when remote"] if b.remote else []
        what = ", ".join(reads) or (
            "listed as weights" if fmt.weights else "a member of an archive: analysed if it holds a zip or pickle"
        )
        rows.append(f"| {fmt.name} | {files} | {what} | {'; '.join(budget) or '—'} |\n")
    return WEIGHT_FORMATS_HEADER + "".join(rows)


def test_the_readme_lists_the_weight_formats_of_the_table():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    start = readme.index(WEIGHT_FORMATS_HEADER)
    table = "".join(takewhile(lambda line: line.startswith("|"), readme[start:].splitlines(keepends=True)))
    assert table == weight_format_table(), "paste weight_format_table() under the README's ## Weight formats"
