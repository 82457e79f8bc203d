"""The parsed cache (scanner/parsed_cache.py): parsed YAML read back as checked JSON. A cached value must be the value
the parser gives, type for type; what JSON cannot carry exactly, a parse that fails, a changed parser or a damaged
entry never comes from the cache."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import yaml

from scanner import knowledge
from scanner.evidence.card import CARD_PARSER, card_metadata, read_card
from scanner.parsed_cache import cached_parse, entry_key, same_json
from scanner.sources.interface import Snapshot


def entries(cache: Path) -> list[Path]:
    return sorted((cache / "parsed").rglob("*.json")) if (cache / "parsed").is_dir() else []


def counting(value):
    calls = []

    def parse():
        calls.append(1)
        return value

    return parse, calls


def test_same_json_tells_types_apart():
    assert same_json({"a": [1, 2.5, True, None, "x"]}, {"a": [1, 2.5, True, None, "x"]})
    assert not same_json(1, 1.0) and not same_json(1, True) and not same_json(0, False)
    assert not same_json([1], (1,)) and not same_json({1: "a"}, {"1": "a"})
    assert not same_json({"a": 1}, {"a": 1, "b": 2}) and not same_json([1, 2], [1])


def test_a_value_is_parsed_once_then_read_back(tmp_path):
    cache = Path(os.environ["ORIGINSCAN_CACHE"])
    value = {"licenses": [{"id": "mit", "n": 1, "f": 0.5, "ok": True, "none": None, "nested": {"k": ["v"]}}]}
    parse, calls = counting(value)
    assert cached_parse("test", b"text", parse, depends=("yaml",)) == value
    got = cached_parse("test", b"text", parse, depends=("yaml",))
    assert calls == [1] and same_json(got, value)  # the second came from the entry
    assert len(entries(cache)) == 1
    cached_parse("test", b"other text", parse, depends=("yaml",))  # another text: another entry
    cached_parse("other kind", b"text", parse, depends=("yaml",))  # another kind too
    assert calls == [1, 1, 1] and len(entries(cache)) == 3


def test_what_json_cannot_carry_is_parsed_every_time(tmp_path):
    cache = Path(os.environ["ORIGINSCAN_CACHE"])
    for value in ({"released": dt.date(2024, 1, 2)}, {1: "int key"}, {"t": (1, 2)}, {"x": float("nan")}, b"raw"):
        parse, calls = counting(value)
        for _ in range(2):
            got = cached_parse("test", repr(value).encode(), parse, depends=())
            assert type(got) is type(value) and repr(got) == repr(value)
        assert calls == [1, 1], value
    assert entries(cache) == []


def test_a_value_over_the_entry_limit_is_parsed_every_time(monkeypatch):
    cache = Path(os.environ["ORIGINSCAN_CACHE"])
    monkeypatch.setattr("scanner.parsed_cache.MAX_ENTRY_CHARS", 1000)
    parse, calls = counting({"rows": ["x" * 10] * 200})
    for _ in range(2):
        assert cached_parse("test", b"big", parse, depends=()) == {"rows": ["x" * 10] * 200}
    assert calls == [1, 1] and entries(cache) == []
    parse, calls = counting({"rows": ["x" * 10] * 20})  # under the limit: stored
    cached_parse("test", b"small", parse, depends=())
    assert len(entries(cache)) == 1


def test_a_parse_that_raises_stores_nothing(tmp_path):
    cache = Path(os.environ["ORIGINSCAN_CACHE"])

    def bad():
        raise ValueError("not YAML")

    for _ in range(2):
        try:
            cached_parse("test", b"bad", bad, depends=())
        except ValueError as exc:
            assert str(exc) == "not YAML"
        else:
            raise AssertionError("the parse's error was swallowed")
    assert entries(cache) == []


def test_a_damaged_entry_is_parsed_again_and_rewritten(tmp_path):
    cache = Path(os.environ["ORIGINSCAN_CACHE"])
    parse, calls = counting({"a": 1})
    cached_parse("test", b"text", parse, depends=())
    (entry,) = entries(cache)
    for damage in (b'{"kind": "test", "val', b"[]", b'{"kind": "other", "value": {"a": 2}}', b"\xff"):
        entry.write_bytes(damage)
        assert cached_parse("test", b"text", parse, depends=()) == {"a": 1}
        assert json.loads(entry.read_bytes()) == {"kind": "test", "value": {"a": 1}}
    assert len(calls) == 5


def test_a_changed_parser_is_a_new_key(tmp_path, monkeypatch):
    module = tmp_path / "parser_mod.py"
    module.write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    before = entry_key("test", b"text", ("parser_mod",))
    module.write_text("X = 22\n")  # another size (and modification time): an edited or upgraded parser
    assert entry_key("test", b"text", ("parser_mod",)) != before
    assert entry_key("test", b"text", ("no_such_module_here",)) == entry_key("test", b"text", ("no_such_module_here",))
    assert entry_key("test", b"text", ("yaml",)) != entry_key("test", b"text", ("yaml", "huggingface_hub"))


def test_no_cache_when_caching_is_off(monkeypatch, tmp_path):
    monkeypatch.setenv("ORIGINSCAN_CACHE", "off")
    parse, calls = counting({"a": 1})
    for _ in range(2):
        cached_parse("test", b"text", parse, depends=())
    assert calls == [1, 1]
    assert not list(tmp_path.rglob("*.json"))


def test_the_knowledge_base_from_the_cache_is_the_one_parsed():
    """Every rules/*.yaml file: the cached value is PyYAML's parse exactly, and the knowledge base, catalogue and
    dataset knowledge built from the cache equal the ones built from fresh parses."""
    cache = Path(os.environ["ORIGINSCAN_CACHE"])
    rules = knowledge.data_dir("rules")
    names = sorted(p.relative_to(rules).as_posix() for p in rules.rglob("*.yaml"))
    assert len(names) > 10
    for name in names:
        fresh = yaml.safe_load((rules / name).read_text(encoding="utf-8"))
        assert same_json(knowledge._load(name), fresh), name
    assert len(entries(cache)) == len(names)  # every file of the knowledge base is JSON-exact: all cached
    for name in names:
        assert same_json(knowledge._load(name), yaml.safe_load((rules / name).read_text(encoding="utf-8"))), name

    def build():
        for loader in (knowledge.catalogue, knowledge.knowledge_base, knowledge.dataset_knowledge, knowledge._rehosts):
            loader.cache_clear()
        kb = knowledge.knowledge_base()
        return knowledge.catalogue(), vars(kb), knowledge.dataset_knowledge(), knowledge._rehosts()

    from_cache = build()
    for entry in entries(cache):
        entry.unlink()
    assert build() == from_cache  # from fresh parses
    assert len(entries(cache)) == len(names)


def card_snapshot(text: str) -> Snapshot:
    return Snapshot(target="m", kind="local", name="m", texts={"README.md": text})


def test_card_metadata_from_the_cache_is_the_parsed_one():
    cache = Path(os.environ["ORIGINSCAN_CACHE"])
    card = (
        "---\nlicense: llama3\nbase_model: meta-llama/Meta-Llama-3-8B\ntags: [a, b, a]\n"
        "model-index:\n- name: m\n  results:\n  - task: {type: text-generation}\n"
        "    dataset: {name: d, type: d}\n    metrics: [{type: acc, value: 0.5}]\n---\n# m\n"
    )
    first, second = read_card(card_snapshot(card)), read_card(card_snapshot(card))
    assert first.error is None and len(entries(cache)) == 1
    assert same_json(first.metadata, second.metadata) and first.metadata["tags"] == ["a", "b"]
    assert first.metadata == card_metadata(card.split("---\n")[1])
    assert (first.body, first._lines) == (second.body, second._lines)
    assert CARD_PARSER[:2] == ("yaml", "huggingface_hub")  # the libraries that decide the parse key the entry


def test_a_card_with_lone_surrogates_is_cached_as_it_parses():
    """YAML escapes make lone surrogates in a valid card (tests/hostile: card_lone_surrogates): they come back from
    the cache as they parse."""
    card = '---\nlicense: "\\ud800mit\\udfff"\nbase_model: "org/\\udc80name"\n---\n# x\n'
    first, second = read_card(card_snapshot(card)), read_card(card_snapshot(card))
    assert first.error is None and first.metadata["license"] == "\ud800mit\udfff"
    assert same_json(first.metadata, second.metadata) and len(entries(Path(os.environ["ORIGINSCAN_CACHE"]))) == 1


def test_a_card_the_cache_cannot_hold_or_that_fails_reads_the_same_every_time():
    cache = Path(os.environ["ORIGINSCAN_CACHE"])
    dated = "---\nlicense: mit\nreleased: 2024-05-01\n---\n"  # a YAML date: not JSON
    broken = "---\nlicense: [mit\n---\n"
    bomb = (
        "---\na: &a [x, x, x, x, x, x, x, x, x, x]\n"
        + "".join(f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n" for p, c in zip("abcdefg", "bcdefgh", strict=True))
        + "---\n"
    )
    for text in (dated, broken, bomb):
        a, b = read_card(card_snapshot(text)), read_card(card_snapshot(text))
        assert (a.metadata, a.error) == (b.metadata, b.error), text
    assert read_card(card_snapshot(dated)).metadata["released"] == dt.date(2024, 5, 1)
    assert read_card(card_snapshot(broken)).error and read_card(card_snapshot(bomb)).error
    assert entries(cache) == []
