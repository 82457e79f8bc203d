"""The probe's encoder tests: the CKA guard against null models weaker than the suspect, the text-halves quality it
rests on, and the aligned-dimensions test. The statistics without torch; tiny BERTs built here for the end-to-end
part (skipped where torch and transformers do not import)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from helpers import run_cli, save_tiny_torch_model

from scanner.provenance import behaviour as B

HAVE_TORCH = all(importlib.util.find_spec(m) is not None for m in ("torch", "transformers", "tokenizers"))
needs_torch = pytest.mark.skipif(not HAVE_TORCH, reason="torch/transformers not installed (originscan[probe])")


# -- aligned dimensions ----------------------------------------------------------------------------------------------


def test_aligned_dimensions_finds_a_noised_copy_and_needs_no_null_models():
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(64, 48)) * rng.uniform(0.1, 5.0, size=48)  # dimensions of very different spreads
    copy = reference + 0.5 * reference.std(axis=0) * rng.normal(size=reference.shape)
    t = B.aligned_dimensions_test(copy, reference, permutations=999)
    assert t is not None and t.name == "aligned-dimensions"
    assert t.p_value == pytest.approx(1 / 1000)  # no relabelling matches as well: the smallest p-value it can give
    assert t.score > 0.8 and "48 dimensions" in t.detail


def test_aligned_dimensions_does_not_fire_on_independent_models_and_is_calibrated():
    """Under the null (no correspondence between the dimensions) the p-value is uniform: about 5 % of independent
    pairs fall under 0.05, and none under the verdict's alpha."""
    rng = np.random.default_rng(1)
    shared = rng.normal(size=(40, 6))  # both see the same inputs: their representations are related, not aligned
    ps = []
    for _ in range(200):
        x = shared @ rng.normal(size=(6, 24)) + 0.3 * rng.normal(size=(40, 24))
        y = shared @ rng.normal(size=(6, 24)) + 0.3 * rng.normal(size=(40, 24))
        t = B.aligned_dimensions_test(x, y, permutations=199)
        assert t is not None and t.p_value is not None
        ps.append(t.p_value)
    assert 0.02 <= np.mean(np.asarray(ps) <= 0.05) <= 0.09
    assert min(ps) > B.ALPHA


def test_aligned_dimensions_needs_one_width_and_a_relabelled_copy_is_left_to_cka():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(30, 16))
    assert B.aligned_dimensions_test(x, rng.normal(size=(30, 12))) is None  # widths differ: nothing to line up
    relabelled = B.aligned_dimensions_test(x[:, rng.permutation(16)], x, permutations=199)
    assert relabelled is not None and relabelled.p_value is not None and relabelled.p_value > 0.01
    assert B.linear_cka(x[:, rng.permutation(16)], x) == pytest.approx(1.0)  # CKA still sees it


# -- text halves and the CKA guard -----------------------------------------------------------------------------------


def test_text_halves_auc_is_high_when_halves_share_their_text_and_chance_otherwise():
    rng = np.random.default_rng(3)
    topics = rng.normal(size=(50, 20))
    first = topics + 0.3 * rng.normal(size=topics.shape)
    second = topics + 0.3 * rng.normal(size=topics.shape)
    assert B.text_halves_auc(first, second) > 0.95
    assert 0.35 < B.text_halves_auc(first, rng.normal(size=topics.shape)) < 0.65
    assert B.text_halves_auc(np.ones((10, 4)), np.ones((10, 4))) == 0.0  # a constant representation tells nothing
    with pytest.raises(ValueError):
        B.text_halves_auc(first, second[:10])


def test_cka_is_not_judged_against_null_models_weaker_than_the_suspect():
    null = [0.30, 0.33, 0.35, 0.31]
    judged = B.cka_test(0.89, null)  # without qualities: as before, far above the null
    assert judged.p_value is not None and judged.p_value < 1e-4 and not judged.uncalibrated
    guarded = B.cka_test(0.89, null, suspect_quality=0.95, null_quality=[0.76, 0.77, 0.75, 0.78])
    assert guarded.p_value is None and "null models are weaker than the suspect" in guarded.uncalibrated
    assert guarded.score == 0.89 and guarded.null_scores == tuple(null)  # measured and shown, not judged


def test_cka_is_judged_when_an_independent_model_is_at_least_as_good():
    null = [0.30, 0.33, 0.35, 0.31]
    t = B.cka_test(0.32, null, suspect_quality=0.77, null_quality=[0.76, 0.77, 0.75, 0.78])
    assert t.p_value is not None and t.p_value > 0.05 and not t.uncalibrated
    t = B.cka_test(0.99, [*null, 0.89], suspect_quality=0.95, null_quality=[0.76, 0.77, 0.75, 0.78, 0.96])
    assert t.p_value is not None and not t.uncalibrated
    no_quality = B.cka_test(0.89, null, suspect_quality=0.95, null_quality=[])  # none of the null's was measured
    assert no_quality.p_value is None and no_quality.uncalibrated


def _guarded() -> B.BehaviourTest:
    return B.cka_test(0.89, [0.30, 0.33, 0.35], suspect_quality=0.95, null_quality=[0.76, 0.77, 0.75])


def test_a_test_not_judged_makes_the_verdict_inconclusive_never_derived_nor_independent():
    alone = B.decide([_guarded()])
    assert alone.verdict == "inconclusive" and "null models are weaker than the suspect" in alone.reason
    clear = B.BehaviourTest("aligned-dimensions", 0.01, 0.6, (), "detail")
    beside = B.decide([_guarded(), clear])  # the judged test finds nothing, but CKA could not be judged
    assert beside.verdict == "inconclusive" and "weaker" in beside.reason and beside.p_value == pytest.approx(0.6)
    found = B.BehaviourTest("aligned-dimensions", 0.9, 5e-5, (), "detail")
    assert B.decide([_guarded(), found]).verdict == "derived"  # one test, no Bonferroni factor for the unjudged
    assert B.decide([_guarded(), found]).p_value == pytest.approx(5e-5)
    assert B.decide([B.cka_test(0.32, [0.30, 0.33, 0.35]), clear]).verdict == "independent"


def test_the_reason_a_test_was_not_judged_survives_the_json_round_trip():
    v = B.verdict_of("s", "r", [_guarded()], ["n1", "n2", "n3"])
    j = json.loads(json.dumps(v.to_json()))
    assert j["verdict"] == "inconclusive" and j["evidence"][0]["p_value"] is None
    assert "weaker" in j["evidence"][0]["uncalibrated"]
    (back,) = B.read_probe_results(json.dumps(j))
    assert back.tests[0].uncalibrated == _guarded().uncalibrated and back.verdict == "inconclusive"


# -- end to end, tiny BERTs ------------------------------------------------------------------------------------------


def _tokenizer(folder: Path) -> None:
    """A small WordPiece vocabulary trained on the probe text, saved as an HF fast BERT tokenizer."""
    import pydoc_data.topics as topics

    from tokenizers import BertWordPieceTokenizer
    from transformers import BertTokenizerFast

    text = " ".join(topics.topics[k] for k in sorted(topics.topics))[:200_000]
    wp = BertWordPieceTokenizer(lowercase=True)
    wp.train_from_iterator([text[i : i + 4000] for i in range(0, len(text), 4000)], vocab_size=500, show_progress=False)
    BertTokenizerFast(tokenizer_object=wp._tokenizer).save_pretrained(str(folder))


def _bert(folder: Path, seed: int, tokenizer: Path, width: int = 64, base: Path | None = None, mute: bool = False):
    """A random tiny BERT (or a copy of `base` with 5 % noise); `mute`: its word embeddings zeroed, so that its
    states depend on where a token is and not on which word it is: a model weaker than any other here."""
    from transformers import BertConfig, BertModel

    config = BertConfig(
        vocab_size=500,
        hidden_size=width,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=2 * width,
        max_position_embeddings=128,
    )
    folder = save_tiny_torch_model(folder, seed, tokenizer, BertModel, config, base, 0.05 if base else 0.0)
    if mute:
        from safetensors.torch import load_file, save_file

        tensors = load_file(str(folder / "model.safetensors"))
        key = next(k for k in tensors if k.endswith("word_embeddings.weight"))
        tensors[key] = tensors[key] * 0.0
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(folder / "model.safetensors"))
    return folder


def _probe(*args: str) -> tuple[int, dict]:
    proc = run_cli("-q", "probe", *args, "--sequences", "16", "--tokens", "32", "--format", "json", timeout=300)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, json.loads(proc.stdout) if proc.stdout.strip() else {}


@pytest.fixture(scope="module")
def berts(tmp_path_factory) -> dict[str, Path]:
    if not HAVE_TORCH:
        pytest.skip("torch/transformers not installed (originscan[probe])")
    root = tmp_path_factory.mktemp("encoders")
    _tokenizer(root / "tok")
    out = {"reference": _bert(root / "reference", 0, root / "tok")}
    out["copy"] = _bert(root / "copy", 9, root / "tok", base=out["reference"])
    out["other_width"] = _bert(root / "other_width", 7, root / "tok", width=48)
    for i in range(1, 4):
        out[f"independent_{i}"] = _bert(root / f"independent_{i}", i, root / "tok")
        out[f"weak_{i}"] = _bert(root / f"weak_{i}", 10 + i, root / "tok", mute=True)
    return out


def _nulls(berts: dict[str, Path], prefix: str) -> list[str]:
    return [a for i in (1, 2, 3) for a in ("--null", str(berts[f"{prefix}_{i}"]))]


@needs_torch
def test_encoders_measure_their_quality_and_causal_models_do_not(berts):
    from scanner.provenance.probe import ProbeSettings, measure, probe_texts

    texts = probe_texts(ProbeSettings(sequences=16))
    settings = ProbeSettings(sequences=16, tokens=32)
    strong = measure(str(berts["independent_1"]), texts, settings=settings)
    weak = measure(str(berts["weak_1"]), texts, settings=settings)
    assert strong.kind == "encoder" and strong.quality is not None and weak.quality is not None
    assert strong.quality > weak.quality + 0.3  # the muted model cannot tell the texts apart


@needs_torch
def test_a_noised_copy_is_found_by_its_aligned_dimensions_even_against_weaker_null_models(berts):
    rc, v = _probe(str(berts["copy"]), str(berts["reference"]), *_nulls(berts, "weak"))
    kinds = {e["kind"]: e for e in v["evidence"]}
    assert set(kinds) == {"behaviour-hidden-state-cka", "behaviour-aligned-dimensions"}, v
    assert kinds["behaviour-hidden-state-cka"]["p_value"] is None  # the guard fired: CKA not judged
    assert "weaker" in kinds["behaviour-hidden-state-cka"]["uncalibrated"]
    assert rc == 1 and v["verdict"] == "derived" and kinds["behaviour-aligned-dimensions"]["p_value"] < B.ALPHA, v


@needs_torch
def test_an_independent_encoder_stronger_than_the_null_is_inconclusive_not_derived(berts):
    """Another width (no aligned-dimensions test) and null models weaker than it: nothing can be judged, and the
    verdict says why instead of calling it derived or independent."""
    rc, v = _probe(str(berts["other_width"]), str(berts["reference"]), *_nulls(berts, "weak"))
    assert [e["kind"] for e in v["evidence"]] == ["behaviour-hidden-state-cka"], v
    assert v["verdict"] == "inconclusive" and rc == 3 and "null models are weaker than the suspect" in v["reason"], v


@needs_torch
def test_the_guard_does_not_fire_against_null_models_as_good_as_the_suspect(berts):
    rc, v = _probe(str(berts["other_width"]), str(berts["reference"]), *_nulls(berts, "independent"))
    (cka,) = v["evidence"]
    assert cka["p_value"] is not None and not cka["uncalibrated"], v
    assert v["verdict"] != "derived" and rc in (0, 3), v
    rc, v = _probe(str(berts["copy"]), str(berts["reference"]), *_nulls(berts, "independent"))
    assert all(e["p_value"] is not None for e in v["evidence"]) and v["verdict"] == "derived", v


@needs_torch
def test_a_checkpoint_saved_without_a_head_is_probed_as_an_encoder(berts, tmp_path):
    """An embedding model saved as a bare base model of a causal architecture (as EmbeddingGemma is): run as an
    encoder, its hidden states compared; never as a language model it has no head for."""
    import shutil

    import torch
    from transformers import LlamaConfig, LlamaModel

    torch.manual_seed(5)
    config = LlamaConfig(
        vocab_size=500, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4
    )
    folder = tmp_path / "bare_llama"
    LlamaModel(config).save_pretrained(str(folder), safe_serialization=True)
    for f in (berts["reference"].parent / "tok").iterdir():
        shutil.copy(f, folder / f.name)
    from scanner.provenance.probe import check_model

    plan = check_model(str(folder))
    assert plan.kind == "encoder"
    rc, v = _probe(str(folder), str(berts["reference"]), *_nulls(berts, "independent"))
    assert rc in (0, 3) and v["verdict"] != "derived", v
