"""The engine on small trained models (tests/fixtures/provenance, built by bench/provenance/make_fixtures.py):
every transform class is caught against its base, and no pair of independently initialised models is derived."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from scanner.provenance.compare import compare_paths

ROOT = Path(__file__).parent / "fixtures" / "provenance"
MODELS = json.loads((ROOT / "manifest.json").read_text())["models"]
BASES = [m["name"] for m in MODELS if m["base"] is None]


def parents(m) -> list[str]:
    return m["base"] if isinstance(m["base"], list) else [m["base"]] if m["base"] else []


DERIVED = [(m["name"], p, m["class"]) for m in MODELS for p in parents(m)]
INDEPENDENT = [
    (m["name"], b)
    for m in MODELS
    for b in BASES
    if b != m["name"] and b not in parents(m) and not (m["base"] is None and BASES.index(b) < BASES.index(m["name"]))
]


@pytest.mark.parametrize("suspect, reference, cls", DERIVED, ids=[f"{c}:{s}~{r}" for s, r, c in DERIVED])
def test_every_transform_class_is_caught(suspect, reference, cls):
    v = compare_paths(ROOT / suspect, ROOT / reference)
    assert v.verdict == "derived", f"{cls}: {v.reason} (score {v.score}, log10 p {v.log10_p_value})"
    assert v.log10_p_value < -8


@pytest.mark.parametrize("suspect, reference", INDEPENDENT, ids=[f"{s}~{r}" for s, r in INDEPENDENT])
def test_independent_models_are_never_derived(suspect, reference):
    v = compare_paths(ROOT / suspect, ROOT / reference)
    assert v.verdict != "derived", f"false positive: score {v.score}, log10 p {v.log10_p_value}"


def test_classes_cover_the_issue():
    classes = {c for _, _, c in DERIVED}
    for needed in (
        "renamed_resharded",
        "bf16",
        "noise_10pct",
        "transposed",
        "permuted_residual_mlp_heads",
        "rescaled_qk_updown",
        "continued_pretraining",
        "pruned_finetuned",
        "vocab_extended",
        "merge_linear",
        "int8_dequant",
    ):
        assert needed in classes


def test_the_pairs_are_many():
    assert len(INDEPENDENT) >= 20 and len(list(itertools.chain(DERIVED))) >= 12
