"""The comparison engine on synthetic weight sets: derived classes caught, independent pairs not."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic import add_noise, base_model, permute_residual, save

from scanner.provenance.compare import compare_paths, log10_binom_sf


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    a, b = base_model(1), base_model(2)
    paths = {"a": save(a, root / "a"), "b": save(b, root / "b")}
    paths["renamed_fp16_noise"] = save(
        {k.replace("model.", "net."): v.astype(np.float16) for k, v in add_noise(a, 0.10).items()}, root / "rn"
    )
    paths["permuted"] = save(permute_residual(a), root / "perm")
    paths["transposed"] = save({k: (v.T if v.ndim == 2 else v) for k, v in a.items()}, root / "tr")
    paths["merge"] = save({k: 0.5 * a[k] + 0.5 * b[k] for k in a}, root / "merge")
    extended = dict(a)
    extra = np.random.default_rng(9).normal(size=(64, 64)).astype(np.float32)
    extended["model.embed_tokens.weight"] = np.concatenate([a["model.embed_tokens.weight"], extra])
    extended["lm_head.weight"] = np.concatenate([a["lm_head.weight"], extra])
    paths["vocab_extended"] = save(extended, root / "vx")
    return paths


@pytest.mark.parametrize("name", ["renamed_fp16_noise", "permuted", "transposed", "merge", "vocab_extended"])
def test_derived_classes_are_caught(models, name):
    v = compare_paths(models[name], models["a"])
    assert v.verdict == "derived", v.reason
    assert v.p_value < 1e-8
    assert 0 < v.bytes_read < v.weight_bytes


def test_independent_models_are_not_derived(models):
    v = compare_paths(models["b"], models["a"])
    assert v.verdict == "independent"
    assert v.p_value > 1e-3
    assert v.score < 0.1


def test_merge_derives_from_both_parents(models):
    assert compare_paths(models["merge"], models["b"]).verdict == "derived"


def test_binomial_tail():
    assert log10_binom_sf(0, 10, 0.1) == 0.0
    assert log10_binom_sf(10, 10, 0.5) == pytest.approx(10 * np.log10(0.5))
