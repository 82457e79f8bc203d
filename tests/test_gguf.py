"""GGUF files (written by the `gguf` package at test time) and quantized safetensors: reading, verdicts, bad input.

Models: the trained provenance fixtures (hidden 64: F32/F16/BF16/Q8_0/Q4_0, whose rows fit 32-value blocks) and
synthetic hidden-256 models for the K-quants (256-value blocks).
"""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path

import gguf
import numpy as np
import pytest
from gguf import GGMLQuantizationType as Q
from ggufs import llama_tokens, quantize, write_gguf
from helpers import make_repo, register, scan
from quantizers import mlx_model, save_fp8
from safetensors.numpy import load_file, save_file
from synthetic import base_model

from scanner.evidence.gguf import facts_from_header, hub_id, read_gguf_facts, tokenizer_vocabulary
from scanner.provenance.compare import compare_snapshots
from scanner.provenance.gguf import GGUFError, GGUFModel, gguf_groups, parse_header, read_rows, vocabulary_sha256
from scanner.provenance.result import WeightsRead
from scanner.provenance.views import open_model
from scanner.sources.bytesource import BytesByteSource, FileByteSource
from scanner.sources.local import LocalSource

FIXTURES = Path(__file__).parent / "fixtures" / "provenance"


def fixture(name: str) -> dict[str, np.ndarray]:
    return {k: v.astype(np.float32) for k, v in load_file(str(FIXTURES / name / "model.safetensors")).items()}


def snap(path: Path):
    return LocalSource(str(path), hash_weights=False).snapshot()


def gguf_repo(root: Path, name: str, tensors, qtype, **kw) -> Path:
    repo = root / name
    write_gguf(repo / f"model-{qtype.name}.gguf", tensors, qtype, **kw)
    return repo


@pytest.fixture(scope="module")
def wide(tmp_path_factory):
    """Two independent hidden-256 models (K-quant blocks are 256 values) as safetensors repos."""
    root = tmp_path_factory.mktemp("wide")
    a, b = (base_model(s, d=256, vocab=512, layers=1, inter=256) for s in (11, 12))
    for name, t in (("up", a), ("other", b)):
        (root / name).mkdir()
        save_file(t, str(root / name / "model.safetensors"))
    return root, a


# == the reader ====================================================================================================
@pytest.mark.parametrize("qtype", [Q.F32, Q.F16, Q.BF16, Q.Q8_0, Q.Q4_0, Q.Q4_K, Q.Q5_K, Q.Q6_K])
def test_header_and_rows_agree_with_ggufs_own_reader(tmp_path, qtype):
    t = base_model(3, d=256, vocab=300, layers=1, inter=256)
    tokens, types = llama_tokens(300, {"<s>": 1})
    (path,) = write_gguf(
        tmp_path / "m.gguf",
        t,
        qtype,
        tokens=tokens,
        token_types=types,
        metadata={"general.license": "mit", "general.name": "tiny"},
    )
    reference = gguf.GGUFReader(path)
    src = FileByteSource(path)
    header = parse_header(src)
    assert [(x.name, x.data_offset, int(x.tensor_type)) for x in reference.tensors] == [
        (x.name, x.start, x.qtype) for x in header.tensors
    ]
    assert header.get("general.license") == "mit" and header.get("tokenizer.ggml.tokens") == tokens
    emb = next(x for x in header.tensors if x.name == "token_embd.weight")
    ref_emb = next(x for x in reference.tensors if x.name == "token_embd.weight")
    expect = gguf.quants.dequantize(ref_emb.data, ref_emb.tensor_type)[[5, 299, 0]]
    assert np.array_equal(read_rows(src, emb, [5, 299, 0]), expect)
    src.close()


@pytest.mark.parametrize("qtype,floor", [(Q.Q4_K, 0.99), (Q.Q5_K, 0.998), (Q.Q6_K, 0.9995)])
def test_k_quant_test_encoders_round_trip_through_ggufs_dequantizer(qtype, floor):
    x = np.random.default_rng(0).normal(size=(6, 512)).astype(np.float32)
    y = gguf.quants.dequantize(quantize(x, qtype), qtype)
    assert y.shape == x.shape and np.corrcoef(x.ravel(), y.ravel())[0, 1] > floor


def test_header_parse_reads_the_header_not_the_weights(tmp_path):
    t = base_model(4, d=256, vocab=4096, layers=2, inter=512)
    (path,) = write_gguf(tmp_path / "big.gguf", t, Q.F32, tokens=llama_tokens(4096)[0])
    src = FileByteSource(path)
    header = parse_header(src)
    assert src.size > 10_000_000
    assert header.header_bytes < src.bytes_read < 2 * header.header_bytes + 64 * 1024
    src.close()


def test_repo_of_quant_variants_reads_the_smallest_good_one(tmp_path, wide):
    root, a = wide
    repo = tmp_path / "variants"
    for q in (Q.F16, Q.Q8_0, Q.Q4_K, Q.Q6_K):
        write_gguf(repo / f"tiny-{q.name}.gguf", a, q)
    write_gguf(
        repo / "mmproj-tiny-f16.gguf",
        {
            "model.embed_tokens.weight": a["model.embed_tokens.weight"][:, :32],
            "model.norm.weight": a["model.norm.weight"][:32],
        },
        Q.F16,
    )
    assert [g.name for g in gguf_groups({p.name: p.stat().st_size for p in repo.iterdir()})][:1] == ["tiny-Q4_K.gguf"]
    v = compare_snapshots(snap(repo), snap(root / "up"))
    assert v.verdict == "derived"
    read = [e for e in v.evidence if isinstance(e, WeightsRead)]
    assert read and read[0].detail.startswith("tiny-Q4_K.gguf, the smallest readable of 4 GGUF models")
    # one variant's header and a few hundred rows, nothing of the other variants
    upstream_bytes = (root / "up" / "model.safetensors").stat().st_size
    assert v.bytes_read < 0.5 * (repo / "tiny-Q4_K.gguf").stat().st_size + upstream_bytes


def test_split_gguf_is_one_model(tmp_path, wide):
    root, a = wide
    files = write_gguf(tmp_path / "split" / "tiny-Q8_0.gguf", a, Q.Q8_0, split_max_tensors=4)
    assert len(files) > 1 and all("-of-" in f.name for f in files)
    model = open_model(snap(tmp_path / "split"))
    assert isinstance(model, GGUFModel) and len(model.headers) == len(files)
    assert "parts" in model.note and model.structure.token_matrices
    model.close()
    assert compare_snapshots(snap(tmp_path / "split"), snap(root / "up")).verdict == "derived"


# == verdicts: a GGUF of an upstream is recognised; an independent model's is not ===================================
@pytest.mark.parametrize("qtype", [Q.F32, Q.F16, Q.BF16, Q.Q8_0, Q.Q4_0])
def test_gguf_of_trained_fixture_is_derived_from_it_and_independent_of_its_twin(tmp_path, qtype):
    repo = gguf_repo(tmp_path, "g", fixture("base_a"), qtype)
    derived = compare_snapshots(snap(repo), snap(FIXTURES / "base_a"))
    twin = compare_snapshots(snap(repo), snap(FIXTURES / "base_b"))
    assert derived.verdict == "derived" and derived.log10_p_value < -8
    assert twin.verdict == "independent"


@pytest.mark.parametrize("qtype", [Q.Q4_K, Q.Q5_K, Q.Q6_K, Q.Q8_0])
def test_k_quant_gguf_is_derived_from_its_upstream_only(tmp_path, wide, qtype):
    root, a = wide
    repo = gguf_repo(tmp_path, "g", a, qtype)
    derived = compare_snapshots(snap(repo), snap(root / "up"))
    other = compare_snapshots(snap(repo), snap(root / "other"))
    assert derived.verdict == "derived" and derived.log10_p_value < -8
    assert other.verdict == "independent"
    size = (repo / f"model-{qtype.name}.gguf").stat().st_size
    assert derived.bytes_read < size  # the header and sampled rows, not the file


def test_gguf_registered_as_upstream_recognises_a_safetensors_copy(tmp_path, wide):
    root, a = wide
    up = gguf_repo(tmp_path, "gguf-up", a, Q.Q4_K)
    index = register(tmp_path / "index.sqlite", up, "acme/tiny-gguf", "apache-2.0")
    try:
        report = scan(root / "up", index=index)
        assert any(
            f.rule.startswith("weights.") and f.evidence.get("upstream") == "acme/tiny-gguf" for f in report.findings
        )
    finally:
        index.close()


def test_undecodable_token_matrix_is_inconclusive_never_independent(tmp_path, wide):
    root, _ = wide
    w = gguf.GGUFWriter(tmp_path / "q" / "m.gguf", "llama")
    (tmp_path / "q").mkdir()
    block, size = gguf.GGML_QUANT_SIZES[Q.Q8_K]
    raw = np.random.default_rng(0).integers(0, 255, size=(512, 256 // block * size), dtype=np.uint8)
    w.add_tensor("token_embd.weight", raw, raw_dtype=Q.Q8_K)
    for name in ("output_norm.weight", "blk.0.attn_norm.weight", "blk.0.ffn_norm.weight"):
        w.add_tensor(name, np.ones(256, np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    v = compare_snapshots(snap(tmp_path / "q"), snap(root / "other"))
    assert v.verdict == "inconclusive"
    assert "Q8_K" in json.dumps(v.to_json()["evidence"]) or "Q8_K" in v.reason


# == metadata: a real GGUF header's key/values ======================================================================
# The KV values of `ollama show dolphin3:8b` (a Q4_K_M GGUF of cognitivecomputations/Dolphin3.0-Llama3.1-8B), as
# printed in attogram/ollama-bash-lib, demos/show.md (Ollama Bash Lib v0.46.8 demo; search-index file 14241610699).
DOLPHIN3_KV = {
    "general.architecture": "llama",
    "general.basename": "Dolphin-3.0-Llama-3.1",
    "general.license": "llama3.1",
    "general.organization": "Cognitivecomputations",
    "general.size_label": "8B",
    "general.type": "model",
    "general.base_model.count": 1,
    "general.base_model.0.name": "Llama 3.1 8B",
    "general.base_model.0.organization": "Meta Llama",
    "general.base_model.0.repo_url": "https://huggingface.co/meta-llama/Llama-3.1-8B",
    "llama.attention.head_count": 32,
    "llama.attention.head_count_kv": 8,
    "llama.attention.key_length": 128,
    "llama.attention.value_length": 128,
    "llama.block_count": 32,
    "llama.context_length": 131072,
    "llama.embedding_length": 4096,
    "llama.feed_forward_length": 14336,
    "llama.rope.dimension_count": 128,
    "llama.rope.freq_base": 500000.0,
    "llama.vocab_size": 128258,
    "tokenizer.ggml.bos_token_id": 128000,
    "tokenizer.ggml.eos_token_id": 128256,
    "tokenizer.ggml.padding_token_id": 128001,
    "tokenizer.ggml.model": "gpt2",
    "tokenizer.ggml.pre": "llama-bpe",
}
LLAMA3_SPECIAL = {
    "<|begin_of_text|>": 128000,
    "<|end_of_text|>": 128001,
    "<|start_header_id|>": 128006,
    "<|end_header_id|>": 128007,
    "<|eot_id|>": 128009,
    "<|im_end|>": 128256,
    "<|im_start|>": 128257,
}


def dolphin_header_file(path: Path) -> Path:
    """A GGUF with Dolphin 3.0's real header values; its tensors are a tiny stand-in (the header is what counts)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    w = gguf.GGUFWriter(path, "llama")
    for key, value in DOLPHIN3_KV.items():
        if key == "general.architecture":
            continue
        if isinstance(value, str):
            w.add_string(key, value)
        elif isinstance(value, float):
            w.add_float32(key, value)
        else:
            w.add_uint32(key, value)
    tokens, types = llama_tokens(128258, LLAMA3_SPECIAL)
    w.add_array("tokenizer.ggml.tokens", tokens)
    w.add_array("tokenizer.ggml.token_type", types)
    w.add_tensor("token_embd.weight", np.zeros((8, 32), np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_real_header_values_become_evidence(tmp_path):
    path = dolphin_header_file(tmp_path / "d" / "Dolphin3.0-Llama3.1-8B-Q4_K_M.gguf")
    started = time.perf_counter()
    facts = facts_from_header(parse_header(FileByteSource(path)))
    assert time.perf_counter() - started < 5
    assert facts.license == "llama3.1" and facts.base_models == ["meta-llama/Llama-3.1-8B"]
    assert facts.config == {
        "model_type": "llama",
        "hidden_size": 4096,
        "num_hidden_layers": 32,
        "intermediate_size": 14336,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "max_position_embeddings": 131072,
        "rope_theta": 500000.0,
        "vocab_size": 128258,
        "head_dim": 128,
    }
    assert facts.special_tokens == LLAMA3_SPECIAL and facts.vocab_size == 128258
    assert facts.vocab_sha256 == vocabulary_sha256(llama_tokens(128258, LLAMA3_SPECIAL)[0])


def test_gguf_relicensed_as_apache_gets_llama_obligations(tmp_path):
    repo = tmp_path / "relicensed"
    dolphin_header_file(repo / "dolphin-Q4_K_M.gguf")
    make_repo(tmp_path, "relicensed", card={"license": "apache-2.0"})
    report = scan(repo)
    rules = {f.rule for f in report.findings}
    assert {"license.gguf_mismatch", "card.gguf_base_undeclared", "license.incompatible"} <= rules
    assert "source.malformed" not in rules


def test_vocabulary_fingerprint_is_the_same_from_tokenizer_json():
    tokens = ["<s>", "</s>", "a", "b", "ab"]
    tj = {
        "model": {"type": "BPE", "vocab": {"a": 2, "b": 3, "ab": 4}},
        "added_tokens": [{"id": 0, "content": "<s>"}, {"id": 1, "content": "</s>"}],
    }
    assert vocabulary_sha256(tokenizer_vocabulary(tj)) == vocabulary_sha256(tokens)
    assert vocabulary_sha256(tokens[:-1] + ["ba"]) != vocabulary_sha256(tokens)


def test_hub_ids_from_gguf_urls():
    assert hub_id("https://huggingface.co/meta-llama/Llama-3.1-8B") == "meta-llama/Llama-3.1-8B"
    assert hub_id("https://huggingface.co/Qwen/Qwen2.5-0.5B/tree/main") == "Qwen/Qwen2.5-0.5B"
    assert hub_id("https://example.com/x/y") is None and hub_id(3) is None


# == bad input =====================================================================================================
def _kv_header(n_tensors: int, kvs: bytes, n_kv: int) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", 3, n_tensors, n_kv) + kvs


def _string(s: bytes) -> bytes:
    return struct.pack("<Q", len(s)) + s


def _valid(tmp_path) -> bytes:
    (path,) = write_gguf(tmp_path / "ok.gguf", fixture("base_a"), Q.Q8_0)
    return path.read_bytes()


HOSTILE = {
    "wrong magic": lambda ok: b"GGML" + ok[4:],
    "truncated": lambda ok: ok[: len(ok) // 2],
    "header cut inside a key": lambda ok: ok[:40],
    "absurd key count": lambda ok: _kv_header(0, b"", 1 << 40) + b"\0" * 64,
    "absurd string length": lambda ok: _kv_header(0, struct.pack("<Q", 1 << 62) + b"k", 1) + b"\0" * 64,
    "absurd array length": lambda ok: _kv_header(0, _string(b"k") + struct.pack("<IIQ", 9, 4, 1 << 50), 1) + b"\0" * 64,
    "unknown value type": lambda ok: _kv_header(0, _string(b"k") + struct.pack("<I", 99), 1) + b"\0" * 64,
    "unknown quant type": lambda ok: (
        _kv_header(1, b"", 0) + _string(b"t") + struct.pack("<IQIQ", 1, 32, 77, 0) + b"\0" * 64
    ),
    "tensor data outside the file": lambda ok: (
        _kv_header(1, b"", 0) + _string(b"t") + struct.pack("<IQQIQ", 2, 4096, 4096, 0, 0) + b"\0" * 64
    ),
    "too many dimensions": lambda ok: _kv_header(1, b"", 0) + _string(b"t") + struct.pack("<I", 9) + b"\0" * 128,
    "version 99": lambda ok: ok[:4] + struct.pack("<I", 99) + ok[8:],
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_headers_are_one_clear_error(tmp_path, case):
    data = HOSTILE[case](_valid(tmp_path))
    started = time.perf_counter()
    with pytest.raises(GGUFError) as exc:
        parse_header(BytesByteSource(data, "bad.gguf"))
    assert time.perf_counter() - started < 2
    assert "\n" not in str(exc.value) and str(exc.value).startswith("bad.gguf")


@pytest.mark.parametrize("case", ["truncated", "absurd key count", "unknown quant type"])
def test_hostile_gguf_in_a_repo_is_a_malformed_finding(tmp_path, case):
    repo = make_repo(tmp_path, "bad", card={"license": "mit"}, files={"model.gguf": HOSTILE[case](_valid(tmp_path))})
    report = scan(repo)
    assert any(f.rule == "source.malformed" and f.path == "model.gguf" for f in report.findings)
    assert read_gguf_facts(snap(repo)) is None
    assert compare_snapshots(snap(repo), snap(FIXTURES / "base_a")).verdict == "inconclusive"


# == quantized safetensors =========================================================================================
def test_mlx_4bit_token_matrices_are_dequantized(tmp_path, wide):
    root, a = wide
    repo = make_repo(
        tmp_path,
        "mlx",
        config={
            "model_type": "llama",
            "hidden_size": 256,
            "vocab_size": 512,
            "quantization": {"group_size": 64, "bits": 4},
        },
        weights={"model.safetensors": mlx_model(a)},
    )
    model = open_model(snap(repo))
    assert model.scheme == "mlx 4-bit" and {m.name for m in model.structure.token_matrices} == {
        "model.embed_tokens.weight",
        "lm_head.weight",
    }
    model.close()
    assert compare_snapshots(snap(repo), snap(root / "up")).verdict == "derived"
    assert compare_snapshots(snap(repo), snap(root / "other")).verdict == "independent"


def test_fp8_token_matrices_with_per_row_scales_are_decoded(tmp_path, wide):
    root, a = wide
    emb = a["model.embed_tokens.weight"]
    repo = tmp_path / "fp8"
    save_fp8(a, repo / "model.safetensors", ["model.embed_tokens.weight", "lm_head.weight"])
    model = open_model(snap(repo))
    assert model.scheme == "fp8"
    matrix = next(m for m in model.structure.token_matrices if m.name == "model.embed_tokens.weight")
    rows = model.token_rows(matrix, [3, 7])
    assert np.corrcoef(rows.ravel(), emb[[3, 7]].ravel())[0, 1] > 0.99
    model.close()
    assert compare_snapshots(snap(repo), snap(root / "up")).verdict == "derived"
    assert compare_snapshots(snap(repo), snap(root / "other")).verdict == "independent"


def test_gptq_layout_compares_through_its_unquantized_embeddings(tmp_path, wide):
    root, a = wide
    t = {k: v for k, v in a.items() if not k.endswith(("proj.weight",))}
    rng = np.random.default_rng(0)
    for k in a:
        if k.endswith("proj.weight"):
            out_f, in_f = a[k].shape
            p = k.removesuffix(".weight")
            t[p + ".qweight"] = rng.integers(0, 2**31, size=(in_f // 8, out_f), dtype=np.int32)
            t[p + ".qzeros"] = rng.integers(0, 2**31, size=(in_f // 128, out_f // 8), dtype=np.int32)
            t[p + ".scales"] = rng.random((in_f // 128, out_f)).astype(np.float16)
            t[p + ".g_idx"] = (np.arange(in_f) // 128).astype(np.int32)
    repo = make_repo(
        tmp_path,
        "gptq",
        config={"quantization_config": {"quant_method": "gptq", "bits": 4}},
        weights={"model.safetensors": t},
    )
    assert compare_snapshots(snap(repo), snap(root / "up")).verdict == "derived"
    assert compare_snapshots(snap(repo), snap(root / "other")).verdict == "independent"


def test_bitsandbytes_quantized_embeddings_are_inconclusive_with_the_reason(tmp_path, wide):
    root, a = wide
    # an unrelated model's norms: only the (quantized) token matrices could tell, and they cannot be read
    t = {k: v for k, v in base_model(99, d=256, vocab=512, layers=1, inter=256).items() if v.ndim == 1}
    rng = np.random.default_rng(0)
    for k in ("model.embed_tokens.weight", "lm_head.weight"):
        n = a[k].size
        t[k] = rng.integers(0, 255, size=(n // 2, 1), dtype=np.uint8)
        t[k.removesuffix(".weight") + ".weight.absmax"] = rng.random(n // 64).astype(np.float32)
    repo = make_repo(
        tmp_path,
        "bnb",
        config={"hidden_size": 256, "quantization_config": {"quant_method": "bitsandbytes", "load_in_4bit": True}},
        weights={"model.safetensors": t},
    )
    v = compare_snapshots(snap(repo), snap(root / "up"))
    assert v.verdict == "inconclusive"
    assert "bitsandbytes 4-bit" in json.dumps(v.to_json()["evidence"]) + v.reason


# == remote: the local Hub, the real huggingface_hub client, HTTP range reads =======================================
def test_gguf_on_the_hub_is_read_by_range_and_recognised(hub, wide):
    from scanner.pipeline import open_snapshot

    root, a = wide
    repo = hub.root / "mallory" / "tiny-GGUF"
    write_gguf(
        repo / "tiny-Q4_K.gguf",
        a,
        Q.Q4_K,
        metadata={
            "general.license": "llama3.1",
            "general.base_model.count": 1,
            "general.base_model.0.repo_url": "https://huggingface.co/meta-llama/Llama-3.1-8B",
        },
    )
    write_gguf(repo / "tiny-Q8_0.gguf", a, Q.Q8_0)
    (repo / "README.md").write_text("---\nlicense: apache-2.0\n---\n# tiny\n")
    up = hub.root / "acme" / "up"
    up.mkdir(parents=True)
    save_file(a, str(up / "model.safetensors"))
    v = compare_snapshots(open_snapshot("hf:mallory/tiny-GGUF", hash_weights=False), open_snapshot("hf:acme/up"))
    assert v.verdict == "derived" and v.log10_p_value < -8
    gguf_size = (repo / "tiny-Q4_K.gguf").stat().st_size
    assert v.bytes_read < 0.5 * (gguf_size + (up / "model.safetensors").stat().st_size)
    rules = {f.rule for f in scan("hf:mallory/tiny-GGUF").findings}
    assert {"license.gguf_mismatch", "license.incompatible"} <= rules


def test_gguf_repo_scanned_against_a_registered_safetensors_upstream(tmp_path, wide):
    root, a = wide
    index = register(tmp_path / "index.sqlite", root / "up", "acme/tiny", "llama3.1")
    try:
        repo = gguf_repo(tmp_path, "quant", a, Q.Q4_K)
        make_repo(tmp_path, "quant", card={"license": "apache-2.0"})
        hits = [f for f in scan(repo, index=index).findings if f.rule.startswith("weights.")]
        assert hits and hits[0].evidence["upstream"] == "acme/tiny"
        assert hits[0].evidence["weights_read"] == "model-Q4_K.gguf"
        assert hits[0].evidence["bytes_read"] < (repo / "model-Q4_K.gguf").stat().st_size
    finally:
        index.close()


def test_unreadable_quantized_token_matrices_are_unverifiable_in_a_scan(tmp_path, wide):
    root, a = wide
    index = register(tmp_path / "index.sqlite", root / "up", "acme/tiny", "apache-2.0")
    try:
        t = {k: v for k, v in base_model(99, d=256, vocab=512, layers=1, inter=256).items() if v.ndim == 1}
        t["model.embed_tokens.weight"] = np.zeros((512 * 256 // 2, 1), dtype=np.uint8)
        t["model.embed_tokens.weight.absmax"] = np.ones(512 * 256 // 64, dtype=np.float32)
        repo = make_repo(
            tmp_path,
            "bnb",
            card={"license": "apache-2.0"},
            weights={"model.safetensors": t},
            config={"quantization_config": {"quant_method": "bitsandbytes", "load_in_4bit": True}},
        )
        found = [f for f in scan(repo, index=index).findings if f.rule == "source.unverifiable"]
        assert found and "bitsandbytes 4-bit" in found[0].message
        plain = make_repo(tmp_path, "plain", card={"license": "apache-2.0"}, weights={"model.safetensors": a})
        assert not [f for f in scan(plain, index=index).findings if f.rule == "source.unverifiable"]
    finally:
        index.close()
