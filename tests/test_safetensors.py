"""The safetensors reader: real files, hostile headers, and what the comparison does with bad weights."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from safetensors.numpy import save_file
from synthetic import base_model, save

from scanner.provenance.compare import compare_paths
from scanner.provenance.result import IdenticalFiles
from scanner.provenance.safetensors import SafetensorsError, parse_header, read_rows, read_tensor
from scanner.sources.bytesource import BytesByteSource, FileByteSource


def raw_file(header: dict, data: bytes = b"", length: int | None = None) -> bytes:
    body = json.dumps(header).encode()
    return struct.pack("<Q", len(body) if length is None else length) + body + data


def test_reads_rows_and_tensors_of_every_float_dtype(tmp_path):
    x = np.arange(24, dtype=np.float32).reshape(6, 4)
    for dtype in (np.float32, np.float16, np.float64, np.int8):
        save_file({"w": x.astype(dtype)}, str(tmp_path / "m.safetensors"))
        src = FileByteSource(tmp_path / "m.safetensors")
        (t,), _ = parse_header(src)
        assert np.array_equal(read_rows(src, t, [4, 1, 2]), x[[4, 1, 2]])
        assert np.array_equal(read_tensor(src, t), x)
        src.close()


def test_bf16_decodes_like_truncated_float32():
    value = np.array([1.5, -2.25, 32768.0], dtype=np.float32)
    bf16 = (value.view(np.uint32) >> 16).astype("<u2").tobytes()
    blob = raw_file({"w": {"dtype": "BF16", "shape": [3], "data_offsets": [0, 6]}}, bf16)
    src = BytesByteSource(blob)
    (t,), _ = parse_header(src)
    assert np.array_equal(read_tensor(src, t), value)


def test_bytes_read_are_counted(tmp_path):
    save_file({"w": np.zeros((100, 10), np.float32)}, str(tmp_path / "m.safetensors"))
    src = FileByteSource(tmp_path / "m.safetensors")
    (t,), _ = parse_header(src)
    before = src.bytes_read
    read_rows(src, t, [3, 4, 5, 50])  # 3..5 coalesce into one read
    assert src.bytes_read - before == 4 * 10 * 4


@pytest.mark.parametrize(
    "blob, message",
    [
        (b"\x01\x02", "too short"),
        (struct.pack("<Q", 2**63) + b"{}", "impossible"),
        (raw_file({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 8), "outside"),
        (raw_file({"w": {"dtype": "F99", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4), "unknown dtype"),
        (raw_file({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 16]}}, b"\0" * 16), "needs"),
        (
            raw_file(
                {
                    "a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                    "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]},
                },
                b"\0" * 24,
            ),
            "overlap",
        ),
        (struct.pack("<Q", 5) + b"nope!", "not valid JSON"),
        (raw_file({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 0]}}), "invalid shape"),
    ],
)
def test_hostile_headers_raise_one_clear_error(blob, message):
    with pytest.raises(SafetensorsError, match=message):
        parse_header(BytesByteSource(blob, "bad.safetensors"))


def test_zero_size_tensor_is_accepted():
    blob = raw_file({"empty": {"dtype": "F32", "shape": [0, 4], "data_offsets": [0, 0]}})
    (t,), _ = parse_header(BytesByteSource(blob))
    assert t.numel == 0


def test_truncated_weights_give_inconclusive(tmp_path):
    a = save(base_model(1), tmp_path / "a")
    whole = (a / "model.safetensors").read_bytes()
    (tmp_path / "cut").mkdir()
    (tmp_path / "cut" / "model.safetensors").write_bytes(whole[: len(whole) // 2])
    v = compare_paths(tmp_path / "cut", a)
    assert v.verdict == "inconclusive"
    assert "outside" in v.reason or "truncated" in v.reason


def test_a_nan_embedding_is_skipped_and_the_head_still_decides(tmp_path):
    t = base_model(1)
    t = {k: np.full_like(v, np.nan) if "embed" in k else v for k, v in t.items()}
    v = compare_paths(save(t, tmp_path / "nan"), save(base_model(1), tmp_path / "a"))
    assert v.verdict == "derived"
    assert v.bytes_read > 0


def test_nan_and_inf_filled_models_are_inconclusive_not_independent(tmp_path):
    a = base_model(1)
    bad = {k: np.full_like(v, np.inf if i % 2 else np.nan) for i, (k, v) in enumerate(a.items())}
    v = compare_paths(save(bad, tmp_path / "bad"), save(a, tmp_path / "a"))
    assert v.verdict == "inconclusive"
    assert "non-finite" in v.reason


def test_mismatched_architectures_are_not_called_derived(tmp_path):
    small = save(base_model(1, d=32, vocab=300), tmp_path / "small")
    big = save(base_model(2, d=64, vocab=512), tmp_path / "big")
    v = compare_paths(small, big)
    assert v.verdict == "inconclusive"
    assert "architectures differ" in v.reason


def test_identical_files_are_decided_from_hashes(tmp_path):
    from scanner.provenance.compare import compare_snapshots
    from scanner.sources.local import LocalSource

    a = save(base_model(1), tmp_path / "a")
    b = save(base_model(1), tmp_path / "b")
    v = compare_snapshots(LocalSource(str(b)).snapshot(), LocalSource(str(a)).snapshot())
    assert v.verdict == "derived" and v.bytes_read == 0
    assert isinstance(v.evidence[0], IdenticalFiles)
