"""Budgets and type checks found by the hostile corpus (tests/hostile/), each tested where it fires and where it
must stay quiet."""

from __future__ import annotations

import json
import struct

import pytest
import yaml

from scanner.evidence.card import YAMLBudgetError, load_yaml, split_front_matter
from scanner.provenance.model import MAX_HIDDEN, analyse
from scanner.provenance.safetensors import MAX_HEADER_BYTES, SafetensorsError, TensorInfo, parse_header
from scanner.sources.bytesource import BytesByteSource
from scanner.sources.interface import MAX_JSON_ITEMS, Snapshot, parse_json
from scanner.sources.local import shown_name


def test_front_matter_split():
    assert split_front_matter("---\nlicense: mit\n---\n# x\n") == ("license: mit", "# x\n", 21)
    assert split_front_matter("\n---  \na: 1\n---x\nb: 2\n--- \nbody") == ("a: 1\n---x\nb: 2", "body", 27)
    assert split_front_matter("---\n" + "\n" * 200_000 + "license: mit\n") is None  # never closed
    assert split_front_matter("# no front matter\n---\na: 1\n---\n") is None
    assert split_front_matter("---x\na: 1\n---\n") is None


def test_yaml_budget_refuses_alias_bombs_and_keeps_ordinary_anchors():
    assert load_yaml("base: &b {lr: 1}\nrun1: *b\nrun2: *b\n") == {
        "base": {"lr": 1},
        "run1": {"lr": 1},
        "run2": {"lr": 1},
    }
    bomb = ['a0: &a0 ["x","x","x","x","x","x","x","x","x"]']
    bomb += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    with pytest.raises(YAMLBudgetError):
        load_yaml("\n".join(bomb))
    with pytest.raises(YAMLBudgetError):
        load_yaml("a: &x [1, *x]")  # a node inside itself
    with pytest.raises(yaml.constructor.ConstructorError):  # still a SafeLoader: no python tags
        load_yaml("a: !!python/object/apply:os.system ['true']")


def _raw(header: dict | bytes, data: bytes = b"") -> BytesByteSource:
    hdr = header if isinstance(header, bytes) else json.dumps(header).encode()
    return BytesByteSource(struct.pack("<Q", len(hdr)) + hdr + data, name="m.safetensors")


@pytest.mark.parametrize("dtype", [["F32"], {"F32": 1}, 7, None, True])
def test_safetensors_dtype_of_any_json_type_is_malformed(dtype):
    with pytest.raises(SafetensorsError, match="unknown dtype"):
        parse_header(_raw({"w": {"dtype": dtype, "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 16))


def test_safetensors_header_budget_and_a_good_header():
    (t,), _ = parse_header(_raw({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 16))
    assert (t.name, t.shape, t.nbytes) == ("w", (4,), 16)
    huge = BytesByteSource(struct.pack("<Q", MAX_HEADER_BYTES + 1) + b"{" + b" " * MAX_HEADER_BYTES, name="h")
    with pytest.raises(SafetensorsError, match="budget"):
        parse_header(huge)
    with pytest.raises(SafetensorsError, match="invalid shape"):
        parse_header(_raw({"w": {"dtype": "F32", "shape": [1] * 100, "data_offsets": [0, 4]}}, b"\0" * 4))


def _vec(name: str, n: int) -> TensorInfo:
    return TensorInfo(name, "F32", (n,), 0, 4 * n, "m.safetensors")


def test_structure_ignores_a_hidden_size_past_the_budget():
    assert analyse([_vec("a", 64), _vec("b", 64)], None).hidden == 64
    assert analyse([_vec("a", MAX_HIDDEN + 1), _vec("b", MAX_HIDDEN + 1)], None).hidden is None
    assert analyse([], {"hidden_size": 2**40}).hidden is None


def test_json_value_budget():
    snap = Snapshot("t", "local", "t")
    assert parse_json(b'{"a": [1, 2, 3]}', "config.json", snap) == {"a": [1, 2, 3]} and not snap.problems
    assert parse_json(b"[" + b"0," * MAX_JSON_ITEMS + b"0]", "tokenizer.json", snap) is None
    assert [p.rule for p in snap.problems] == ["source.too_large"]


def test_file_names_that_are_not_utf8_are_shown_escaped():
    assert shown_name("model.safetensors") == "model.safetensors"
    assert shown_name("model-\udcff.bin") == "model-\\xff.bin"
    assert shown_name("model-\udcff.bin").encode("utf-8")
