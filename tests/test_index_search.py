"""Scanning against many registered upstreams: header facts and the sketch rule most out, and never a true parent.

The trained fixtures (tests/fixtures/provenance) are the evidence: every derivative class must still be found
against its base through the index (fingerprints as `index add` and as `index update` store them), and no
independent base may be called derived; synthetic upstreams show the screen doing the ruling out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import disguise, save_tensors, tiny_llm

from scanner.provenance.fingerprint import REMOTE_PLAN, SKETCH_UNITS, FingerprintPlan, build
from scanner.provenance.index import Index
from scanner.provenance.search import find_matches, screen_threshold
from scanner.provenance.views import open_model
from scanner.sources.local import LocalSource

FIXTURES = Path(__file__).parent / "fixtures" / "provenance"
MODELS = json.loads((FIXTURES / "manifest.json").read_text())["models"]
BASES = [m["name"] for m in MODELS if m["base"] is None]


def _model(path: Path):
    return open_model(LocalSource(str(path)).snapshot())


def _register(index: Index, name: str, path: Path, plan: FingerprintPlan) -> None:
    model = _model(path)
    try:
        index.put(name, build(model, plan), "apache-2.0", f"hf:test/{name}", None)
    finally:
        model.close()


def _derived(index: Index, path: Path, target: str):
    model = _model(path)
    try:
        matches, stats = find_matches(model, index, target)
    finally:
        model.close()
    return {reg.name for reg, v in matches if v.verdict == "derived"}, stats


@pytest.mark.parametrize("plan", [FingerprintPlan(), REMOTE_PLAN], ids=["index-add", "index-update"])
def test_every_fixture_class_is_still_found_through_the_screen(plan, tmp_path):
    index = Index(tmp_path / "index.sqlite")
    for b in BASES:
        _register(index, b, FIXTURES / b, plan)
    screened = 0
    for m in MODELS:
        parents = set(m["base"] if isinstance(m["base"], list) else [m["base"]] if m["base"] else [])
        expect = parents | ({m["name"]} if m["name"] in BASES else set())
        got, stats = _derived(index, FIXTURES / m["name"], f"local:{m['name']}")
        assert got == expect, f"{m['name']} ({m.get('class')}): derived from {sorted(got)}, expected {sorted(expect)}"
        screened += stats.screened_out
    assert screened >= len(MODELS)  # most independent bases never reach the full test


def _repo(root: Path, name: str, tensors) -> Path:
    save_tensors(tensors, root / name / "model.safetensors")
    return root / name


def test_the_screen_rules_out_unrelated_upstreams_and_keeps_the_source(tmp_path):
    index = Index(tmp_path / "index.sqlite")
    source = tiny_llm(7, vocab=512, d=64, inter=128)
    _register(index, "acme/source", _repo(tmp_path, "source", source), REMOTE_PLAN)
    for seed in range(20):  # same shape, independently initialised
        _register(
            index,
            f"acme/same-{seed}",
            _repo(tmp_path, f"same-{seed}", tiny_llm(1000 + seed, vocab=512, d=64, inter=128)),
            REMOTE_PLAN,
        )
    for seed in range(10):  # other hidden sizes: ruled out from header facts, never decoded
        _register(
            index,
            f"acme/other-{seed}",
            _repo(tmp_path, f"other-{seed}", tiny_llm(2000 + seed, vocab=512, d=48, inter=96)),
            REMOTE_PLAN,
        )
    got, stats = _derived(index, _repo(tmp_path, "suspect", disguise(source)), "local:suspect")
    assert got == {"acme/source"}
    assert stats.registered == 31 and stats.ruled_out_by_headers == 10
    assert stats.screened_out >= 18 and stats.compared <= 3 and "acme/source" in stats.survivors
    none, clean = _derived(index, _repo(tmp_path, "clean", tiny_llm(99, vocab=512, d=64, inter=128)), "local:clean")
    assert none == set() and clean.compared <= 2


def test_screen_threshold_sits_below_a_derivation_and_above_chance():
    from scanner.provenance.compare import log10_binom_sf

    for hidden in (48, 64, 256, 4096):
        units = min(hidden, SKETCH_UNITS)
        t = screen_threshold(units, hidden)
        assert t <= units * 0.125 + 1  # half the agreement rate the full test needs to call "derived"
        if hidden >= 256:  # wide models: chance (about 1/d per unit) almost never reaches it
            assert log10_binom_sf(t, units, 1 / hidden) <= -3
        if hidden >= 4096:  # even at the full test's conservative 10/d
            assert log10_binom_sf(t, units, 10 / hidden) <= -3


def test_an_index_written_before_format_2_is_migrated_on_open(tmp_path):
    """An index file as the previous release wrote it (two tables, format-1 blobs) keeps working."""
    import io
    import sqlite3

    import numpy as np

    source = tiny_llm(7, vocab=512, d=64, inter=128)
    fp = build(_model(_repo(tmp_path, "source", source)), FingerprintPlan())
    meta = {
        "hidden": fp.hidden,
        "matrices": [{"name": m.name, "vocab": m.vocab} for m in fp.matrices],
        "vectors": list(fp.vectors),
        "file_hashes": sorted(fp.file_hashes),
        "weight_bytes": fp.weight_bytes,
    }
    arrays = {f"rows{i}": m.rows for i, m in enumerate(fp.matrices)}
    arrays.update({f"tokens{i}": m.tokens for i, m in enumerate(fp.matrices)})
    arrays.update({f"vec{i}": v for i, v in enumerate(fp.vectors.values())})
    buf = io.BytesIO()
    np.savez_compressed(buf, meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays)
    db = sqlite3.connect(tmp_path / "old.sqlite")
    db.executescript(
        "CREATE TABLE models (name TEXT PRIMARY KEY, license TEXT, target TEXT, revision TEXT, "
        "fingerprint TEXT NOT NULL, weight_bytes INTEGER, added TEXT);"
        "CREATE TABLE fingerprints (key TEXT PRIMARY KEY, data BLOB NOT NULL, created TEXT);"
    )
    db.execute("INSERT INTO fingerprints VALUES (?,?,?)", ("k1", buf.getvalue(), "2026-01-01"))
    db.execute("INSERT INTO models VALUES (?,?,?,?,?,?,?)", ("acme/source", "mit", "x", None, "k1", 1, "2026"))
    db.commit()
    db.close()
    index = Index(tmp_path / "old.sqlite")
    [cand] = index.candidates()
    assert (cand.kind, cand.hidden, cand.vocab) == ("rows", 64, 512)
    got, stats = _derived(index, _repo(tmp_path, "suspect", disguise(source)), "local:suspect")
    assert got == {"acme/source"} and stats.compared == 1  # no sketch in format 1: the full test decides
