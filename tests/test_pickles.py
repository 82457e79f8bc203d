"""The pickle analysis (scanner/evidence/pickles.py) against hostile and legitimate pickles.

Every pickle here is assembled as opcode bytes, or made by `pickle.dumps` of harmless stand-ins (dumping never
calls anything); nothing is ever unpickled. Torch layouts (legacy multi-pickle and zip) are written by this file
the way torch.save writes them, without torch.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import pickle
import struct
import tracemalloc
import zipfile
import zlib
from collections import OrderedDict

import pytest
from helpers import assert_fires, assert_quiet, make_repo, scan
from pickle_asm import (
    APPENDS,
    BUILD,
    EMPTY_DICT,
    EMPTY_LIST,
    EMPTY_TUPLE,
    MARK,
    MEMOIZE,
    POP,
    REDUCE,
    STACK_GLOBAL,
    STOP,
    TUPLE,
    TUPLE1,
    call,
    get,
    glob,
    int1,
    legacy,
    long_get,
    pkl,
    proto,
    put,
    short,
    state_dict,
    torch_zip,
    uni,
    zip_checkpoint,
)

from scanner.evidence import pickles
from scanner.evidence.pickles import scan_pickle
from scanner.sources.bytesource import BytesByteSource


def analyse(data: bytes) -> pickles.PickleScan:
    return scan_pickle(BytesByteSource(data))


def assert_safe(data: bytes) -> None:
    r = analyse(data)
    assert (r.unsafe, r.unresolved, r.error) == ([], [], None)


def assert_unsafe(data: bytes, ref: str | None = None) -> pickles.PickleScan:
    r = analyse(data)
    assert r.dangerous, r
    if ref:
        assert ref in r.unsafe, r
    return r


# == legitimate checkpoints stay quiet ==============================================================================
def test_legitimate_zip_checkpoint_is_safe():
    r = analyse(zip_checkpoint(state_dict("weight", "bias")))
    assert (r.unsafe, r.unresolved, r.error) == ([], [], None)
    assert {"torch._utils _rebuild_tensor_v2", "torch FloatStorage", "collections OrderedDict"} <= set(r.imports)


def test_legitimate_legacy_checkpoint_is_safe_and_every_pickle_is_read():
    r = analyse(legacy(state_dict("weight", "bias"), n_storages=2))
    assert (r.unsafe, r.unresolved, r.error) == ([], [], None)
    assert r.pickles == 5  # magic, version, sys info, object, storage keys; the raw storages are skipped


@pytest.mark.parametrize("protocol", range(6))
def test_plain_data_is_safe_in_every_protocol(protocol):
    data = {
        "a": [1, 2.5, "x" * 3000],
        "b": OrderedDict(x=b"\x00\x01"),
        "c": {1, 2},
        "d": (None, True, 2**70),
        "e": bytearray(b"ab"),
        "f": complex(1, 2),
        "g": frozenset({1}),
    }
    r = analyse(pickle.dumps(data, protocol=protocol))
    assert (r.unresolved, r.error) == ([], None)
    assert r.unsafe == (["builtins frozenset"] if protocol < 4 else [])  # frozenset is not tensor data


# == bypass 1: payloads after the first STOP ====================================================================
def test_payload_in_a_later_legacy_pickle_is_found():
    r = assert_unsafe(legacy(state_dict("w"), sys_info=pkl(call("os", "system", "touch /tmp/x"))), "os system")
    assert r.pickles == 5


def test_payload_after_the_legacy_storages_is_found():
    assert_unsafe(legacy(state_dict("w"), tail=pkl(call("subprocess", "call"))), "subprocess call")


def test_payload_in_a_second_plain_pickle_is_found():
    assert_unsafe(pkl(int1(1)) + pkl(call("os", "system")), "os system")


def test_legacy_storage_beyond_the_file_is_malformed():
    data = legacy(state_dict("w"))
    r = analyse(data[:-8])
    assert r.malformed and "legacy torch storage" in r.malformed and not r.dangerous and r.error is None


def test_bytes_after_the_last_pickle_are_malformed_not_unverifiable():
    """pickle.load and torch.load stop at the STOP: what follows is never unpickled."""
    r = analyse(pkl(int1(1)) + b"\xff\xfe garbage")
    assert r.malformed and "not a pickle" in r.malformed and r.error is None


# == bypass 2: the memo ===========================================================================================
def test_stack_global_from_memoised_strings():
    """The 74-byte shape: os / system memoised, decoy torch strings last, STACK_GLOBAL from the memo."""
    data = (
        proto(4)
        + short("os")
        + MEMOIZE
        + short("system")
        + MEMOIZE
        + POP
        + POP
        + short("torch._utils")
        + short("_rebuild_tensor_v2")
        + POP
        + POP
        + get(0)
        + get(1)
        + STACK_GLOBAL
        + short("echo pwned")
        + TUPLE1
        + REDUCE
        + STOP
    )
    assert len(data) < 80
    r = assert_unsafe(data, "os system")
    assert "torch._utils _rebuild_tensor_v2" not in r.imports


def test_stack_global_from_put_and_long_binget():
    data = (
        proto(4)
        + short("subprocess")
        + b"r"
        + struct.pack("<I", 70000)
        + POP
        + short("check_output")
        + put(3)
        + POP
        + long_get(70000)
        + get(3)
        + STACK_GLOBAL
        + MARK
        + short("id")
        + b"l"
        + TUPLE1
        + REDUCE
        + STOP
    )
    assert_unsafe(data, "subprocess check_output")


def test_global_fetched_back_from_the_memo_is_still_an_import():
    data = pkl(
        glob("builtins", "exec"),
        put(0),
        POP,
        glob("collections", "OrderedDict"),
        EMPTY_TUPLE,
        REDUCE,
        POP,
        get(0),
        uni("import os"),
        TUPLE1,
        REDUCE,
    )
    assert_unsafe(data, "builtins exec")


def test_stack_global_on_a_value_built_while_loading_is_unresolved():
    data = pkl(glob("collections", "OrderedDict"), EMPTY_TUPLE, REDUCE, short("system"), STACK_GLOBAL, protocol=4)
    r = analyse(data)
    assert r.unresolved and "STACK_GLOBAL" in r.unresolved[0] and r.dangerous


def test_memo_get_of_a_missing_slot_is_malformed():
    assert analyse(pkl(get(9))).malformed


# == bypass 3: exact (module, name) pairs, not top-level packages ==================================================
@pytest.mark.parametrize(
    "module,name",
    [
        ("torch.hub", "load"),
        ("torch.serialization", "load"),
        ("numpy.testing._private.utils", "runstring"),
        ("torch", "load"),
        ("collections", "namedtuple"),
        ("_codecs", "decode"),
        ("torch._utils", "_import_dotted_name"),
        ("torch", "_utils._rebuild_tensor_v2"),  # dotted names resolve attribute chains: never allow-listed
    ],
)
def test_allow_list_is_exact(module, name):
    assert_unsafe(zip_checkpoint(pkl(call(module, name))), f"{module} {name}")


# == the classic payloads =======================================================================================
@pytest.mark.parametrize(
    "data,ref",
    [
        (pkl(call("os", "system")), "os system"),
        (pkl(call("posix", "system")), "posix system"),
        (pkl(call("builtins", "eval", "1+1")), "builtins eval"),
        (b"c__builtin__\neval\n(S'1+1'\ntR.", "builtins eval"),  # protocol 0, Python 2 name mapped
        (pkl(call("subprocess", "Popen")), "subprocess Popen"),
        (pkl(call("runpy", "run_path")), "runpy run_path"),
        (b"(S'true'\nios\nsystem\n.", "os system"),  # INST
        (b"(cos\nsystem\nS'true'\no.", "os system"),  # OBJ
        (
            pkl(
                glob("builtins", "getattr"),
                MARK,
                glob("builtins", "__import__"),
                uni("os"),
                TUPLE1,
                REDUCE,
                uni("system"),
                TUPLE,
                REDUCE,
                uni("true"),
                TUPLE1,
                REDUCE,
            ),
            "builtins getattr",
        ),
    ],
)
def test_classic_payloads(data, ref):
    assert_unsafe(data, ref)


def test_calling_the_result_of_a_call_is_unresolved():
    data = pkl(glob("collections", "OrderedDict"), EMPTY_TUPLE, REDUCE, EMPTY_TUPLE, REDUCE)
    r = analyse(data)
    assert r.unsafe == [] and r.unresolved and "REDUCE" in r.unresolved[0]


def test_build_on_an_allowed_global_is_unresolved():
    """BUILD with a global as target would set attributes of a torch class: patching code."""
    data = pkl(glob("torch", "Tensor"), EMPTY_DICT, uni("__reduce_ex__"), int1(1), b"s", BUILD)
    r = analyse(data)
    assert r.unresolved and "BUILD" in r.unresolved[0]


def test_copyreg_extension_is_unresolved():
    assert analyse(pkl(b"\x82\x01", EMPTY_TUPLE, REDUCE)).unresolved


class _Payload:
    """Pickling this only names os.system; it is never unpickled."""

    def __reduce__(self):
        return os.system, ("true",)


@pytest.mark.parametrize("protocol", range(6))
def test_payload_made_by_pickle_dumps_in_every_protocol(protocol):
    assert_unsafe(pickle.dumps({"x": [_Payload()]}, protocol=protocol), f"{os.system.__module__} system")


# == zip containers, nesting, compression ==========================================================================
def test_every_pkl_member_in_any_folder_is_read():
    data = zip_checkpoint(state_dict("w"), {"archive/extra/deep/constants.pkl": pkl(call("os", "system"))})
    assert_unsafe(data, "os system")


def test_nested_archive_is_read():
    inner = zip_checkpoint(pkl(call("os", "system")))
    assert_unsafe(torch_zip({"bundle/model.pt": inner}), "os system")


def test_nesting_is_bounded():
    data = zip_checkpoint(state_dict("w"))
    for i in range(pickles.MAX_DEPTH + 1):
        data = torch_zip({f"level{i}.zip": data})
    r = analyse(data)
    assert r.error and "nested" in r.error


def test_zip_bomb_member_stops_at_the_budget_and_its_head_is_analysed(monkeypatch):
    monkeypatch.setattr(pickles, "MAX_PICKLE_BYTES", 1 << 20)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("archive/data.pkl", pkl(call("os", "system")) + b"\0" * (8 << 20))
    assert len(buf.getvalue()) < 64 * 1024
    r = analyse(buf.getvalue())
    assert r.error and "budget" in r.error and r.unsafe == ["os system"]


COMPRESSORS = [zlib.compress, bz2.compress, gzip.compress, lzma.compress]  # joblib's zlib, bz2, gzip and xz
COMPRESSOR_IDS = ["zlib", "bz2", "gzip", "xz"]


@pytest.mark.parametrize("compress", COMPRESSORS, ids=COMPRESSOR_IDS)
def test_compressed_bomb_head_is_analysed(monkeypatch, compress):
    monkeypatch.setattr(pickles, "MAX_PICKLE_BYTES", 1 << 20)
    r = analyse(compress(pkl(call("os", "system")) + b"\0" * (8 << 20)))
    assert r.error and "budget" in r.error and r.unsafe == ["os system"]


def test_legacy_checkpoint_larger_than_the_budget_skips_its_storages(monkeypatch):
    """Storages are skipped, not analysed: a checkpoint far beyond the byte budget is read in full and quiet."""
    data = legacy(state_dict("w", "b"), n_storages=2, numel=2_000_000)
    monkeypatch.setattr(pickles, "MAX_PICKLE_BYTES", 4096)
    assert len(data) > 100 * pickles.MAX_PICKLE_BYTES
    source = _RecordingSource(data)
    r = scan_pickle(source)
    assert (r.unsafe, r.unresolved, r.error, r.pickles) == ([], [], None, 5)
    assert source.bytes_read < len(data) // 4  # one read-ahead buffer, not the storages
    assert sorted(source.reads)[:2] == [8, 8]  # each storage's count is read alone (remote: no 1 MB range each)


class _RecordingSource(BytesByteSource):
    def __init__(self, data: bytes):
        super().__init__(data)
        self.reads: list[int] = []

    def _read(self, offset: int, length: int) -> bytes:
        self.reads.append(length)
        return super()._read(offset, length)


@pytest.mark.parametrize("compress", COMPRESSORS, ids=COMPRESSOR_IDS)
def test_compressed_joblib_style_pickle_is_read(compress):
    assert_unsafe(compress(pkl(call("os", "system"))), "os system")
    assert_safe(compress(state_dict("w")))


def test_broken_zip_is_unverifiable():
    r = analyse(b"PK\x03\x04 this is not a zip")
    assert r.error and "zip" in r.error


# == budgets: a hostile file costs a finding, not minutes or gigabytes ============================================
def test_opcode_budget(monkeypatch):
    monkeypatch.setattr(pickles, "MAX_OPCODES", 1000)
    r = analyse(pkl(EMPTY_LIST, MARK, b"N" * 5000, APPENDS))
    assert r.error and "opcodes" in r.error


def test_byte_budget(monkeypatch):
    monkeypatch.setattr(pickles, "MAX_PICKLE_BYTES", 4096)
    r = analyse(pkl(uni("x" * 10000)))
    assert r.error and "bytes of pickle data" in r.error


def test_many_distinct_globals_are_deduplicated_and_capped():
    body = b"".join(glob(f"m{i}", "f") + POP for i in range(20000)) + glob("m0", "f") + POP
    r = analyse(pkl(body, call("subprocess", "call")))
    assert r.error is None and len(r.unsafe) == len(r.imports) == pickles.MAX_REPORTED
    assert r.unsafe[:2] == ["subprocess call", "m0 f"]  # 20 000 decoys do not hide the payload


def test_claimed_huge_string_is_not_allocated():
    r = analyse(proto(4) + b"\x8d" + struct.pack("<Q", 1 << 40) + b"abc")  # BINUNICODE8 of 1 TiB
    assert r.malformed


def test_line_without_newline_is_bounded():
    r = analyse(b"c" + b"a" * (pickles.MAX_LINE * 4))
    assert r.malformed


def test_strings_are_not_kept():
    data = pkl(EMPTY_LIST, MARK, *(uni(f"{i:06d}" + "x" * 4000) + MEMOIZE for i in range(2000)), APPENDS, protocol=4)
    tracemalloc.start()
    try:
        r = analyse(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert r.error is None and r.opcodes > 4000
    assert peak < len(data) // 2  # 8 MB of strings analysed in a fraction of their size


def test_truncated_and_empty_streams_are_malformed():
    """The unpickler fails where the stream breaks, and every opcode before that point was analysed."""
    full = state_dict("w")
    for cut in (1, 2, 10, len(full) // 2, len(full) - 1):
        r = analyse(full[:cut])
        assert r.malformed and r.error is None, cut
    assert analyse(b"").malformed == "empty file"
    r = analyse(pkl(call("os", "system"))[:-1])  # a payload before the break still counts
    assert r.malformed and r.unsafe == ["os system"]


def test_unknown_opcode_inside_a_real_pickle_is_unverifiable():
    """A newer unpickler may know an opcode pickletools does not, and run what follows it."""
    r = analyse(pkl(int1(1), b"\xf0", call("os", "system")))
    assert r.error and "opcode" in r.error and r.malformed is None


def test_raw_binary_under_a_pickle_name_is_malformed_not_unverifiable():
    """OpenVINO / GGML / Core ML weights are `.bin` too: not a pickle, nothing would be unpickled."""
    for data in (b"ggml" + bytes(1000), bytes(range(256)) * 40, b"\x00" * 4096):
        r = analyse(data)
        assert r.malformed and (r.error, r.unsafe, r.unresolved) == (None, [], []), data[:8]


# == through the scanner ==========================================================================================
def test_scan_reports_each_bypass(tmp_path):
    repo = make_repo(
        tmp_path,
        card={"license": "mit"},
        files={
            "legacy.bin": legacy(state_dict("w"), sys_info=pkl(call("os", "system"))),
            "hub.pt": zip_checkpoint(pkl(call("torch.hub", "load"))),
            "runstring.pt": zip_checkpoint(pkl(call("numpy.testing._private.utils", "runstring"))),
            "memo.pkl": (
                proto(4)
                + short("os")
                + MEMOIZE
                + short("system")
                + MEMOIZE
                + POP
                + POP
                + short("torch")
                + short("Tensor")
                + POP
                + POP
                + get(0)
                + get(1)
                + STACK_GLOBAL
                + STOP
            ),
            "pytorch_model.bin": zip_checkpoint(state_dict("w")),
        },
    )
    report = scan(repo)
    hits = {f.path: f for f in assert_fires(report, "security.pickle_unsafe_import")}
    assert set(hits) == {"legacy.bin", "hub.pt", "runstring.pt", "memo.pkl"}
    assert "os.system" in hits["memo.pkl"].message and "torch.hub.load" in hits["hub.pt"].message
    assert_quiet(report, "security.pickle_unverifiable")
