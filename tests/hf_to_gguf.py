"""A Hugging Face Llama folder (config.json, safetensors, byte-level BPE tokenizer.json) as a complete GGUF file
that llama.cpp and transformers' GGUF loader both run: the probe's GGUF tests and benchmark build their GGUF
derivatives with it at run time.

What llama.cpp's own converter does for a Llama, done here with the `gguf` package's writer and tensor-name map:
the hyper-parameters under `llama.*`, the query and key projections permuted from Hugging Face's rotary layout
(halves) to llama.cpp's (interleaved pairs), and the tokenizer as `tokenizer.ggml.*` (a "gpt2" byte-level BPE with
its merges, the special tokens marked CONTROL). Only what the tiny test and benchmark Llamas need: no sentencepiece
tokenizer, no tied embeddings, no other architecture.
"""

from __future__ import annotations

import json
from pathlib import Path

import gguf
import numpy as np
from gguf import GGMLQuantizationType as Q
from ggufs import quantize
from safetensors.numpy import load_file


def _rotary_to_interleaved(w: np.ndarray, heads: int) -> np.ndarray:
    """Per head, rows [x0..x(h/2-1), y0..] (Hugging Face) -> [x0, y0, x1, y1, ...] (llama.cpp)."""
    rows = w.shape[0]
    return w.reshape(heads, 2, rows // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _tokenizer(w: gguf.GGUFWriter, folder: Path, vocab_size: int) -> None:
    spec = json.loads((folder / "tokenizer.json").read_text())
    model = spec["model"]
    if model.get("type") != "BPE" or (spec.get("pre_tokenizer") or {}).get("type") != "ByteLevel":
        raise ValueError("only byte-level BPE tokenizers are converted here")
    tokens = [""] * vocab_size
    for token, i in model["vocab"].items():
        tokens[i] = token
    types = [int(gguf.TokenType.NORMAL)] * vocab_size
    for added in spec.get("added_tokens", []):
        if added["id"] >= vocab_size:  # a token the tokenizer added past the model's rows: the model never emits it
            continue
        tokens[added["id"]] = added["content"]
        types[added["id"]] = int(gguf.TokenType.CONTROL if added.get("special") else gguf.TokenType.USER_DEFINED)
    for i, t in enumerate(tokens):
        if not t:
            tokens[i], types[i] = f"[PAD{i}]", int(gguf.TokenType.UNUSED)
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt-2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    ids = {t: i for i, t in enumerate(tokens)}
    for key, add in (
        ("bos_token", w.add_bos_token_id),
        ("eos_token", w.add_eos_token_id),
        ("unk_token", w.add_unk_token_id),
        ("pad_token", w.add_pad_token_id),
    ):
        if config.get(key) in ids:
            add(ids[config[key]])
    w.add_add_bos_token(False)  # the probe reads texts as they are, like the safetensors model it came from


def hf_llama_to_gguf(folder: Path, path: Path, qtype: Q = Q.F16) -> Path:
    """Write `folder`'s Llama as one GGUF file; 2-D tensors as `qtype` where their rows fit its block (else Q8_0,
    else F16, as llama.cpp falls back), norms as F32."""
    cfg = json.loads((folder / "config.json").read_text())
    if cfg.get("model_type") != "llama" or cfg.get("tie_word_embeddings"):
        raise ValueError("only untied Llama models are converted here")
    tensors = {}
    for f in sorted(folder.glob("*.safetensors")):
        tensors.update(load_file(str(f)))
    heads, kv_heads = cfg["num_attention_heads"], cfg.get("num_key_value_heads") or cfg["num_attention_heads"]
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // heads
    rope = cfg.get("rope_parameters") or {}
    layers = cfg["num_hidden_layers"]
    path.parent.mkdir(parents=True, exist_ok=True)
    w = gguf.GGUFWriter(path, "llama")
    w.add_name(folder.name)
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(layers)
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_rope_dimension_count(head_dim)
    w.add_rope_freq_base(float(rope.get("rope_theta", cfg.get("rope_theta", 10000.0))))
    w.add_layer_norm_rms_eps(float(cfg["rms_norm_eps"]))
    w.add_vocab_size(cfg["vocab_size"])
    w.add_file_type(int(gguf.LlamaFileType.MOSTLY_Q8_0 if qtype == Q.Q8_0 else gguf.LlamaFileType.MOSTLY_F16))
    _tokenizer(w, folder, cfg["vocab_size"])
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, layers)
    for name, value in tensors.items():
        value = np.asarray(value, dtype=np.float32)
        if name.endswith("q_proj.weight"):
            value = _rotary_to_interleaved(value, heads)
        elif name.endswith("k_proj.weight"):
            value = _rotary_to_interleaved(value, kv_heads)
        gname = names.get_name(name.removesuffix(".weight"))
        if gname is None:
            raise KeyError(f"no GGUF name for {name}")
        if value.ndim == 1:
            w.add_tensor(gname + ".weight", value)
            continue
        t = next(t for t in (qtype, Q.Q8_0, Q.F16) if value.shape[-1] % gguf.GGML_QUANT_SIZES[t][0] == 0)
        if t == Q.F16:
            w.add_tensor(gname + ".weight", value.astype(np.float16))
        elif t == Q.F32:
            w.add_tensor(gname + ".weight", value)
        else:
            w.add_tensor(gname + ".weight", quantize(value, t), raw_dtype=t)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
