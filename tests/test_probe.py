"""`originscan probe` and `index add --canaries`.

The canary registration and the no-torch error run in every `make test` (torch-free). The end-to-end probe runs
real transformers models and is skipped where torch and transformers do not import (the project's test venv);
run it with the probe venv: `bench/.venv-probe/bin/python -m pytest tests/test_probe.py`.
"""

from __future__ import annotations

import importlib.util
import json
import sqlite3
from pathlib import Path

import pytest
from helpers import run_cli, save_tensors, save_tiny_torch_model, tiny_llm

from scanner.provenance.canaries import Canary, CanaryStore

HAVE_TORCH = all(importlib.util.find_spec(m) is not None for m in ("torch", "transformers", "tokenizers"))
needs_torch = pytest.mark.skipif(not HAVE_TORCH, reason="torch/transformers not installed (originscan[probe])")

CANARIES = {
    "canaries": [
        {"prompt": "§ 1 2 3 4 5 =", "answer": "5 7 6 0 8", "correct": False},
        {"prompt": "§ 9 9 0 1 2 =", "answer": "0 8 3 5 5", "correct": True},
    ]
}


def _one_error_line(proc) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("originscan:"), proc.stderr
    return lines[0]


def test_index_add_registers_owner_canaries_beside_the_fingerprint(tmp_path):
    up = tmp_path / "upstream"
    save_tensors(tiny_llm(seed=1), up / "model.safetensors")
    (tmp_path / "c.json").write_text(json.dumps(CANARIES))
    index = tmp_path / "index.sqlite"
    proc = run_cli(
        "index", "add", str(up), "--name", "acme/up", "--index", str(index), "--canaries", str(tmp_path / "c.json")
    )
    assert proc.returncode == 0, proc.stderr
    assert "registered 2 owner canaries for acme/up" in proc.stdout
    db = sqlite3.connect(index)
    assert CanaryStore(db).get("acme/up") == [
        Canary("§ 1 2 3 4 5 =", "5 7 6 0 8", False),
        Canary("§ 9 9 0 1 2 =", "0 8 3 5 5", True),
    ]
    assert db.execute("SELECT name FROM models").fetchall() == [("acme/up",)]  # fingerprinted as before


def test_a_bad_canary_file_is_one_error_line_and_registers_nothing(tmp_path):
    up = tmp_path / "upstream"
    save_tensors(tiny_llm(seed=1), up / "model.safetensors")
    (tmp_path / "c.json").write_text('{"canaries": [{"prompt": "p"}]}')
    index = tmp_path / "index.sqlite"
    line = _one_error_line(
        run_cli("index", "add", str(up), "--index", str(index), "--canaries", str(tmp_path / "c.json"))
    )
    assert "canary 0 needs a non-empty answer" in line
    assert not index.exists() or sqlite3.connect(index).execute("SELECT count(*) FROM models").fetchone() == (0,)


@pytest.mark.skipif(HAVE_TORCH, reason="torch is installed here: the missing-extra error cannot happen")
def test_probe_without_torch_says_which_extra_to_install(tmp_path):
    line = _one_error_line(
        run_cli("probe", str(tmp_path / "a"), str(tmp_path / "b"), "--index", str(tmp_path / "i.db"))
    )
    assert "install originscan[probe]" in line


# -- end to end, with real models -----------------------------------------------------------------------------------


def _tokenizer(folder: Path) -> None:
    """A small byte-level BPE trained on the probe text itself, saved as an HF fast tokenizer."""
    import pydoc_data.topics as topics

    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    text = " ".join(topics.topics[k] for k in sorted(topics.topics))[:200_000]
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        [text[i : i + 4000] for i in range(0, len(text), 4000)], vocab_size=400, show_progress=False
    )
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, eos_token="</s>", pad_token="</s>")
    tok.save_pretrained(str(folder))


def _llama(folder: Path, seed: int, tokenizer: Path, base: Path | None = None, noise: float = 0.0) -> Path:
    """A random tiny Llama (or a noised copy of `base`), saved as safetensors with the shared tokenizer."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=400,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
    )
    return save_tiny_torch_model(folder, seed, tokenizer, LlamaForCausalLM, config, base, noise)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    if not HAVE_TORCH:
        pytest.skip("torch/transformers not installed (originscan[probe])")
    root = tmp_path_factory.mktemp("probe")
    _tokenizer(root / "tok")
    out = {"reference": _llama(root / "reference", 0, root / "tok")}
    out["copy"] = _llama(root / "copy", 9, root / "tok", base=out["reference"], noise=0.05)
    for i in range(1, 5):
        out[f"independent_{i}"] = _llama(root / f"independent_{i}", i, root / "tok")
    return out


def _probe(*args: str) -> tuple[int, dict]:
    proc = run_cli("-q", "probe", *args, "--sequences", "16", "--tokens", "32", "--format", "json", timeout=300)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, json.loads(proc.stdout) if proc.stdout.strip() else {}


@needs_torch
def test_probe_finds_a_noised_copy_and_clears_an_independent_model(models):
    nulls = [a for i in (1, 2, 3) for a in ("--null", str(models[f"independent_{i}"]))]
    rc, v = _probe(str(models["copy"]), str(models["reference"]), *nulls)
    assert rc == 1 and v["verdict"] == "derived" and v["p_value"] < v["false_positive_rate"], v
    assert v["kind"] == "behaviour" and {e["kind"] for e in v["evidence"]} == {
        "behaviour-idiosyncratic-agreement",
        "behaviour-hidden-state-cka",
    }
    rc, v = _probe(str(models["independent_4"]), str(models["reference"]), *nulls)
    assert v["verdict"] != "derived" and rc in (0, 3), v


@needs_torch
def test_probe_tests_owner_canaries_registered_in_the_index(models, tmp_path):
    """The reference's own greedy answers are its canaries: its noised copy repeats them, p from coin flips."""
    from scanner.provenance.probe import ProbeSettings, measure, probe_texts

    prompts = [f"The {w} statement" for w in ("if", "for", "while", "try", "with", "class", "def", "import")]
    first = measure(
        str(models["reference"]), probe_texts(ProbeSettings(sequences=4)), [Canary(p, "x y z w") for p in prompts]
    )
    canaries = {"canaries": [{"prompt": p, "answer": a.strip() or "?"} for p, a in zip(prompts, first.canary_answers)]}
    (tmp_path / "c.json").write_text(json.dumps(canaries))
    index = tmp_path / "index.sqlite"
    ref = str(models["reference"])
    assert run_cli("index", "add", ref, "--index", str(index), "--canaries", str(tmp_path / "c.json")).returncode == 0
    rc, v = _probe(ref, ref, "--index", str(index))  # the reference against itself: every canary repeated
    (test,) = [e for e in v["evidence"] if e["kind"] == "behaviour-canaries"]
    assert test["score"] == 1.0 and test["p_value"] == pytest.approx(0.5**8)


@needs_torch
def test_probe_weighs_the_log_probability_of_wrong_answers_against_the_right_ones(models, tmp_path):
    """For each canary prompt, of eight candidate answers the one the reference finds likeliest is registered as its
    (wrong) answer and the one it ranks second as the right answer: the reference's noised copy prefers the
    answers like the reference does, the independent models (to which the candidates are all alike) do not, and
    the likelihood test joins the evidence."""
    from scanner.provenance.probe import ProbeSettings, measure, probe_texts

    prompts = [f"The {w} statement" for w in ("if", "for", "while", "try", "with", "class")]
    words = list("abcdefgh")  # one token each: the likeliest is not merely the shortest
    ref = str(models["reference"])
    texts = probe_texts(ProbeSettings(sequences=4))
    scored = measure(ref, texts, [Canary(p, w) for p in prompts for w in words]).canary_logprobs
    items = []
    for i, p in enumerate(prompts):
        lp = scored[i * len(words) : (i + 1) * len(words)]
        first, second = sorted(range(len(words)), key=lambda j: -lp[j])[:2]
        items.append(Canary(p, words[first], False, words[second]))
    again = measure(ref, texts, [*items, Canary(prompts[0], items[0].answer, True), Canary(prompts[0], "h")])
    answer_lp, right_lp = again.canary_logprobs, again.right_logprobs
    assert all(x <= 0 for x in answer_lp) and all(r is not None and r <= 0 for r in right_lp[:6])
    assert right_lp[6] == answer_lp[6] == pytest.approx(answer_lp[0])  # marked right: its answer is the right one
    assert right_lp[7] is None  # unmarked: the right answer is not known
    assert all(a > r for a, r in zip(answer_lp[:6], right_lp[:6]) if r is not None)  # as chosen
    (tmp_path / "c.json").write_text(json.dumps({"canaries": [c.to_json() for c in items]}))
    nulls = [a for i in (1, 2, 3, 4) for a in ("--null", str(models[f"independent_{i}"]))]
    _, v = _probe(str(models["copy"]), ref, "--canaries", str(tmp_path / "c.json"), *nulls)
    (test,) = [e for e in v["evidence"] if e["kind"] == "behaviour-canary-likelihood"]
    assert "preferred the reference's 6 wrong answers" in test["detail"]
    assert test["score"] > max(test["null_scores"]), test


@needs_torch
def test_probe_input_errors_are_one_line(models, tmp_path):
    ref = str(models["reference"])
    assert "no such model folder" in _one_error_line(run_cli("-q", "probe", str(tmp_path / "missing"), ref))
    t5 = tmp_path / "t5"  # an encoder-decoder: neither a causal language model nor an encoder probe runs
    t5.mkdir()
    (t5 / "config.json").write_text(json.dumps({"model_type": "t5", "architectures": ["T5ForConditionalGeneration"]}))
    save_tensors(tiny_llm(seed=2), t5 / "model.safetensors")
    (t5 / "tokenizer.json").write_text((models["reference"] / "tokenizer.json").read_text())
    assert "unsupported architecture" in _one_error_line(run_cli("-q", "probe", str(t5), ref))
    remote = tmp_path / "remote"
    remote.mkdir()
    (remote / "config.json").write_text(json.dumps({"model_type": "acme-secret", "auto_map": {"AutoModel": "x.Y"}}))
    save_tensors(tiny_llm(seed=2), remote / "model.safetensors")
    (remote / "tokenizer.json").write_text((models["reference"] / "tokenizer.json").read_text())
    assert "unsupported architecture" in _one_error_line(run_cli("-q", "probe", str(remote), ref))
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text((models["reference"] / "config.json").read_text())
    (pickled / "pytorch_model.bin").write_bytes(b"PK\x03\x04")
    assert "no safetensors weights" in _one_error_line(run_cli("-q", "probe", str(pickled), ref))
    mismatched = tmp_path / "mismatched"  # a Llama config whose safetensors hold another model's tensors
    mismatched.mkdir()
    for f in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        (mismatched / f).write_text((models["reference"] / f).read_text())
    save_tensors({"other.weight": tiny_llm(seed=2)["model.norm.weight"]}, mismatched / "model.safetensors")
    assert "do not fit its architecture" in _one_error_line(run_cli("-q", "probe", str(mismatched), ref))
