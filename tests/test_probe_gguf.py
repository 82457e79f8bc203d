"""`originscan probe` on GGUF files, and on encoders.

The header checks and refusals run in every `make test` (no torch: the GGUF files are written by the `gguf`
package, the checks use originscan's own header parser). The end-to-end probes build tiny Llamas with transformers,
convert them to GGUF at test time (tests/hf_to_gguf.py: F16 and Q8_0, quantised by gguf's own quantiser) and run
them through each GGUF runtime that is installed; they skip where torch and transformers do not import
(`make test-probe` runs them).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import gguf
import numpy as np
import pytest
from ggufs import llama_tokens, write_gguf
from helpers import run_cli, save_tiny_torch_model, tiny_llm

from scanner.errors import UsageError
from scanner.provenance import probe_gguf as G

HAVE_TORCH = all(importlib.util.find_spec(m) is not None for m in ("torch", "transformers", "tokenizers"))
HAVE_LLAMA_CPP = importlib.util.find_spec("llama_cpp") is not None
needs_torch = pytest.mark.skipif(not HAVE_TORCH, reason="torch/transformers not installed (originscan[probe])")

# what transformers 5.25's GGUF loader lists (the torch tests use the installed version's own tables)
RUNS = G.TransformersGGUF(frozenset({"llama", "mistral", "qwen2", "qwen2_moe", "t5", "gemma3"}), frozenset({"gpt2"}))


def _gguf(
    path: Path, arch: str = "llama", qtype=gguf.GGMLQuantizationType.F16, tokenizer: str = "gpt2", **meta
) -> Path:
    """A real GGUF file written by gguf's writer: a tiny Llama's tensors under `arch`, with a tokenizer."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tokens, types = llama_tokens(320, {"<s>": 0, "</s>": 1})
    w = gguf.GGUFWriter(path, arch)
    for key, value in meta.items():
        w.add_uint32(key, value)
    w.add_tokenizer_model(tokenizer)
    w.add_token_list(tokens)
    w.add_token_types(types)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, 2)
    for name, value in tiny_llm(seed=1, d=64, inter=128).items():
        value = value.astype(np.float32)
        gname = names.get_name(name.removesuffix(".weight")) + ".weight"
        if value.ndim == 1:
            w.add_tensor(gname, value)
        else:
            w.add_tensor(gname, gguf.quants.quantize(value, qtype), raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


# -- torch-free: which file, and what each runtime runs -------------------------------------------------------------


def test_a_gguf_file_or_a_folder_with_one_is_a_gguf_target(tmp_path):
    f = _gguf(tmp_path / "one" / "m.gguf")
    assert G.gguf_target(str(f)) == f
    assert G.gguf_target(str(f.parent)) == f
    assert G.gguf_target("hf:acme/model") is None
    (tmp_path / "st").mkdir()
    (tmp_path / "st" / "model.safetensors").write_bytes(b"")
    (tmp_path / "st" / "extra.gguf").write_bytes(b"")
    assert G.gguf_target(str(tmp_path / "st")) is None  # a safetensors folder is probed as such
    _gguf(tmp_path / "one" / "other.gguf")
    with pytest.raises(UsageError, match="2 GGUF files; name the one to probe"):
        G.gguf_target(str(tmp_path / "one"))


def test_a_llama_gguf_passes_the_transformers_check(tmp_path):
    facts = G.read_facts(_gguf(tmp_path / "m.gguf", qtype=gguf.GGMLQuantizationType.Q8_0))
    assert facts.architecture == "llama" and facts.tokenizer == "gpt2"
    assert "Q8_0" in facts.tensor_types and "F32" in facts.tensor_types
    G.check_for_transformers(facts, RUNS)  # no error


@pytest.mark.parametrize(
    ("arch", "why"),
    [
        ("rwkv6", "GGUF architecture 'rwkv6' is not one the transformers GGUF runtime runs"),
        ("t5", "GGUF architecture 't5' is not one"),  # in transformers' table, but not a causal language model
    ],
)
def test_an_architecture_transformers_does_not_run_causally_is_refused(tmp_path, arch, why):
    facts = G.read_facts(_gguf(tmp_path / "m.gguf", arch=arch))
    assert facts.architecture == arch
    with pytest.raises(UsageError, match=why) as err:
        G.check_for_transformers(facts, RUNS)
    assert "\n" not in str(err.value) and "gemma3, llama, mistral, qwen2, qwen2_moe" in str(err.value)


def test_a_quantisation_type_gguf_cannot_dequantise_is_refused(tmp_path):
    """Q8_1 (llama.cpp's intermediate type): a real block layout that gguf.quants has no dequantiser for."""
    tokens, types = llama_tokens(320)
    path = tmp_path / "q81.gguf"
    w = gguf.GGUFWriter(path, "llama")
    w.add_tokenizer_model("gpt2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    block, size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType.Q8_1]
    w.add_tensor(
        "token_embd.weight",
        np.zeros((320, 64 // block * size), dtype=np.uint8),
        raw_dtype=gguf.GGMLQuantizationType.Q8_1,
    )
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(UsageError, match="tensors of type Q8_1, which the transformers GGUF runtime cannot dequantise"):
        G.check_for_transformers(G.read_facts(path), RUNS)


def test_a_tokenizer_transformers_cannot_build_is_refused(tmp_path):
    path = _gguf(tmp_path / "m.gguf", tokenizer="rwkv")
    with pytest.raises(UsageError, match="GGUF tokenizer 'rwkv' is not one transformers builds"):
        G.check_for_transformers(G.read_facts(path), RUNS)


def test_files_a_runtime_should_never_open_are_one_line(tmp_path):
    no_tok = tmp_path / "notok.gguf"
    write_gguf(no_tok, tiny_llm(seed=1, d=64, inter=128))
    with pytest.raises(UsageError, match="no tokenizer in the GGUF file"):
        G.read_facts(no_tok)
    split = _gguf(tmp_path / "split.gguf", **{"split.count": 3})
    with pytest.raises(UsageError, match="one of 3 split GGUF files; merge them first"):
        G.read_facts(split)
    good = _gguf(tmp_path / "good.gguf").read_bytes()
    (tmp_path / "cut.gguf").write_bytes(good[: len(good) // 2])
    with pytest.raises(UsageError, match="truncated|outside"):
        G.read_facts(tmp_path / "cut.gguf")
    hostile = bytearray(good)
    hostile[8:16] = (1 << 40).to_bytes(8, "little")  # a tensor count the runtimes' readers would try to honour
    (tmp_path / "hostile.gguf").write_bytes(bytes(hostile))
    with pytest.raises(UsageError, match="header claims"):
        G.read_facts(tmp_path / "hostile.gguf")
    (tmp_path / "text.gguf").write_text("not a model at all, just text in a file")
    with pytest.raises(UsageError, match="not a GGUF file"):
        G.read_facts(tmp_path / "text.gguf")


def _behaviour(name: str, kind: str, seed: int, base=None):
    """Made-up measurements of one model: 32 texts of 40 tokens, a 64-wide pooled state (a noised base's copy)."""
    from scanner.provenance.probe import Behaviour

    g = np.random.default_rng(seed)
    pooled = g.normal(size=(32, 64)) if base is None else base.pooled + 0.05 * g.normal(size=(32, 64))
    tokens = np.tile(np.arange(40), (32, 1))
    guesses = g.integers(0, 50, size=(32, 40)) if kind == "causal" else np.full((32, 40), -1)
    return Behaviour(name, tokens, guesses, pooled, ("7 7",) if kind == "causal" else (), 0, 0.0, kind=kind)


def test_encoders_are_tested_by_their_hidden_states_alone_and_causal_models_by_every_test():
    from scanner.provenance.canaries import Canary
    from scanner.provenance.probe import tests_of

    canaries = [Canary("§ 1 =", "7 7", False)]
    for kind, expected in (
        ("encoder", ["hidden-state-cka", "aligned-dimensions"]),  # one width: their dimensions are lined up
        ("causal", ["idiosyncratic-agreement", "hidden-state-cka", "canaries"]),
    ):
        ref = _behaviour("ref", kind, 0)
        nulls = [_behaviour(f"n{i}", kind, i) for i in range(1, 6)]
        copy = _behaviour("copy", kind, 9, base=ref)
        tests = tests_of(copy, ref, nulls, canaries)
        assert [t.name for t in tests] == expected
        (cka,) = [t for t in tests if t.name == "hidden-state-cka"]
        assert cka.score > 0.99 and max(cka.null_scores) < 0.9 and cka.p_value is not None and cka.p_value < 1e-3
    # a causal suspect against an encoder reference: CKA still compares them, nothing else can
    encoder_ref = _behaviour("ref", "encoder", 0)
    assert [t.name for t in tests_of(_behaviour("c", "causal", 5), encoder_ref, [], canaries)] == ["hidden-state-cka"]


# -- end to end: GGUF derivatives through the real runtimes ---------------------------------------------------------


def _tokenizer(folder: Path) -> None:
    """A byte-level BPE with <s> </s> <unk> <pad> as its first ids, trained on the probe text (as the benchmark's)."""
    import pydoc_data.topics as topics

    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    text = " ".join(topics.topics[k] for k in sorted(topics.topics))[:200_000]
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        [text[i : i + 4000] for i in range(0, len(text), 4000)],
        vocab_size=512,
        special_tokens=["<s>", "</s>", "<unk>", "<pad>"],
        show_progress=False,
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe._tokenizer, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>"
    )
    tok.save_pretrained(str(folder))


def _llama(folder: Path, seed: int, tokenizer: Path, base: Path | None = None, noise: float = 0.0) -> Path:
    """A random tiny Llama (hidden 64, rows that fit Q8_0 blocks) or a noised copy of `base`, as safetensors."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=512,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        tie_word_embeddings=False,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=3,
    )
    return save_tiny_torch_model(folder, seed, tokenizer, LlamaForCausalLM, config, base, noise)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    if not HAVE_TORCH:
        pytest.skip("torch/transformers not installed (originscan[probe])")
    from hf_to_gguf import hf_llama_to_gguf

    Q = gguf.GGMLQuantizationType
    root = tmp_path_factory.mktemp("probe_gguf")
    _tokenizer(root / "tok")
    out = {"reference": _llama(root / "reference", 0, root / "tok")}
    for i in range(1, 6):  # 1-4 calibrate (a Student-t null on 3 models is too wide for p < 1e-3); 5 is tested
        out[f"independent_{i}"] = _llama(root / f"independent_{i}", i, root / "tok")
    noised = _llama(root / "noised", 9, root / "tok", base=out["reference"], noise=0.05)
    out["reference_q8"] = hf_llama_to_gguf(out["reference"], root / "gguf" / "reference-Q8_0.gguf", Q.Q8_0)
    out["noised_f16"] = hf_llama_to_gguf(noised, root / "gguf" / "noised-F16.gguf", Q.F16)
    out["independent_5_q8"] = hf_llama_to_gguf(out["independent_5"], root / "gguf" / "independent_5-Q8_0.gguf", Q.Q8_0)
    return out


def _probe(*args: str) -> tuple[int, dict, str]:
    proc = run_cli("probe", *args, "--sequences", "16", "--tokens", "32", "--format", "json", timeout=300)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, json.loads(proc.stdout) if proc.stdout.strip() else {}, proc.stderr


RUNTIMES = [
    "transformers",
    pytest.param("llama.cpp", marks=pytest.mark.skipif(not HAVE_LLAMA_CPP, reason="no llama-cpp-python")),
]


@pytest.fixture(scope="module")
def safetensors_measured(models):
    """The reference and the four null models as published (safetensors), measured once for every runtime's test."""
    from scanner.provenance.probe import ProbeSettings, measure, probe_texts

    texts = probe_texts(ProbeSettings(sequences=16, tokens=32))
    names = ["reference", *(f"independent_{i}" for i in (1, 2, 3, 4))]
    return texts, {n: measure(str(models[n]), texts, settings=ProbeSettings(sequences=16, tokens=32)) for n in names}


@needs_torch
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_gguf_derivatives_of_the_reference_are_found_and_an_independent_gguf_is_not(
    models, safetensors_measured, runtime
):
    """GGUF suspects against the safetensors reference, calibrated on safetensors independents: the command once
    (the reference quantised to Q8_0), then every suspect through the same functions in-process."""
    from scanner.provenance.behaviour import verdict_of
    from scanner.provenance.probe import ProbeSettings, measure, tests_of

    nulls = [a for i in (1, 2, 3, 4) for a in ("--null", str(models[f"independent_{i}"]))]
    rc, v, err = _probe(str(models["reference_q8"]), str(models["reference"]), *nulls, "--gguf-runtime", runtime)
    assert rc == 1 and v["verdict"] == "derived" and v["p_value"] < v["false_positive_rate"], v
    assert f"(causal, {runtime})" in err  # the progress line says which runtime ran the GGUF file
    texts, st = safetensors_measured
    ref, null = st["reference"], [st[f"independent_{i}"] for i in (1, 2, 3, 4)]
    settings = ProbeSettings(sequences=16, tokens=32)
    for name, expect in (("reference_q8", "derived"), ("noised_f16", "derived"), ("independent_5_q8", "not derived")):
        suspect = measure(str(models[name]), texts, settings=settings, gguf_runtime=runtime)
        assert suspect.runtime == runtime
        tests = tests_of(suspect, ref, null, ())
        # the GGUF tokenizer reads the texts as the reference's does, so next-token agreement runs beside CKA
        assert [t.name for t in tests] == ["idiosyncratic-agreement", "hidden-state-cka"], name
        verdict = verdict_of(name, "reference", tests).verdict
        assert verdict == "derived" if expect == "derived" else verdict != "derived", (name, tests)


@needs_torch
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_canary_log_probabilities_through_a_gguf_runtime_match_the_safetensors_model(models, runtime):
    """The canary likelihood test reads log P(answer) and log P(right answer) from every runtime alike: the Q8_0
    file gives the numbers the safetensors model gives, up to quantisation."""
    from scanner.provenance.canaries import Canary
    from scanner.provenance.probe import ProbeSettings, measure, probe_texts

    settings = ProbeSettings(sequences=3, tokens=4, chars=40)
    texts = probe_texts(settings)
    canaries = [
        Canary("The if statement", "is used", False, "for the"),
        Canary("A class definition", "defines a class", True),
        Canary("The import statement", "x", None),
    ]
    a = measure(str(models["reference"]), texts, canaries, settings)
    b = measure(str(models["reference_q8"]), texts, canaries, settings, gguf_runtime=runtime)
    assert b.runtime == runtime and len(b.canary_logprobs) == 3
    assert b.right_logprobs[1] == b.canary_logprobs[1] and a.right_logprobs[2] is None is b.right_logprobs[2]
    got = [*b.canary_logprobs, b.right_logprobs[0]]
    want = [*a.canary_logprobs, a.right_logprobs[0]]
    assert all(x < -1 for x in want)  # a random model finds none of them likely: the comparison means something
    assert got == pytest.approx(want, abs=0.3)


@needs_torch
def test_the_gguf_file_runs_like_the_model_it_was_converted_from(models):
    """Through transformers' GGUF loader the Q8_0 file reads the texts as the safetensors model's tokenizer does and
    guesses the same next tokens at almost every position."""
    from scanner.provenance.probe import ProbeSettings, measure, probe_texts

    texts = probe_texts(ProbeSettings(sequences=8))
    a = measure(str(models["reference"]), texts)
    b = measure(str(models["reference_q8"]), texts, gguf_runtime="transformers")
    assert b.runtime == "transformers" and b.weight_bytes == models["reference_q8"].stat().st_size
    assert a.same_tokens(b)
    valid = a.guesses >= 0
    assert np.mean(a.guesses[valid] == b.guesses[valid]) > 0.95


@needs_torch
@pytest.mark.parametrize(
    ("runtime", "arch", "why"),
    [
        ("transformers", "rwkv6", "GGUF architecture 'rwkv6' is not one the transformers GGUF runtime runs"),
        pytest.param(
            "llama.cpp",
            "acme-secret",
            "llama.cpp cannot load this GGUF file (architecture 'acme-secret')",
            marks=pytest.mark.skipif(not HAVE_LLAMA_CPP, reason="no llama-cpp-python"),
        ),
    ],
)
def test_a_gguf_architecture_the_runtime_does_not_run_is_one_error_line(models, tmp_path, runtime, arch, why):
    bad = _gguf(tmp_path / "bad.gguf", arch=arch)
    proc = run_cli("-q", "probe", str(bad), str(models["reference"]), "--gguf-runtime", runtime)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and why in lines[0], proc.stderr


# -- encoders: hidden-state CKA only --------------------------------------------------------------------------------


def _bert(folder: Path, seed: int, tokenizer: Path, base: Path | None = None, noise: float = 0.0) -> Path:
    """A random tiny BERT encoder or a noised copy of `base`, as safetensors."""
    from transformers import BertConfig, BertModel

    config = BertConfig(
        vocab_size=512,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=128,
        pad_token_id=3,
    )
    return save_tiny_torch_model(folder, seed, tokenizer, BertModel, config, base, noise)


@needs_torch
def test_an_encoder_is_probed_by_its_hidden_states_alone_and_a_noised_copy_is_found(tmp_path):
    _tokenizer(tmp_path / "tok")
    ref = _bert(tmp_path / "reference", 0, tmp_path / "tok")
    copy = _bert(tmp_path / "copy", 9, tmp_path / "tok", base=ref, noise=0.05)
    independents = [_bert(tmp_path / f"independent_{i}", i, tmp_path / "tok") for i in range(1, 6)]
    nulls = [a for p in independents[:4] for a in ("--null", str(p))]
    rc, v, err = _probe(str(copy), str(ref), *nulls)
    assert "(encoder, transformers)" in err
    kinds = [e["kind"] for e in v["evidence"]]  # no next token, no canary (tests/test_probe_encoders.py: the rest)
    assert kinds == ["behaviour-hidden-state-cka", "behaviour-aligned-dimensions"], v
    assert rc == 1 and v["verdict"] == "derived", v
    rc, v, _ = _probe(str(independents[4]), str(ref), *nulls)
    assert v["verdict"] != "derived" and rc in (0, 3), v
