"""Shared machinery for the provenance benchmark corpus and the test fixtures.

Needs torch (CPU), transformers, safetensors, numpy, tokenizers: run it with the bench virtualenv
(``bench/.venv-bench``), never from the test suite.

Everything here works on *state dicts* (``dict[str, torch.Tensor]``) in the canonical Hugging Face naming of the
architecture (``model.layers.N.self_attn.q_proj.weight`` for Llama, ``encoder.layer.N.attention.self.query.weight``
for BERT).  Disguises (renaming, transposition, casting) are applied last, when a model is written.
"""

from __future__ import annotations

import ast
import json
import math
import os
import shutil
import sysconfig
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

torch.set_num_threads(max(1, min(os.cpu_count() or 1, 8)))

SPECIALS = ["<s>", "</s>", "<unk>", "<pad>"]


def llama_config(vocab: int, hidden: int, layers: int, intermediate: int, max_positions: int, dtype: str) -> dict:
    """A tiny Llama's config.json (4 heads, 2 KV heads, untied embeddings) as transformers writes it."""
    from transformers import LlamaConfig

    c = LlamaConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=intermediate,
        tie_word_embeddings=False,
        max_position_embeddings=max_positions,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=3,
    )
    d = c.to_dict()
    d["architectures"] = ["LlamaForCausalLM"]
    d["dtype"] = dtype
    return d


def seed_of(name: str) -> int:
    return zlib.crc32(name.encode()) & 0x7FFFFFFF


# --------------------------------------------------------------------------------------------------------- text ---


def base_text() -> str:
    """Large English text for *base* training: the Python reference-manual topics shipped as pydoc_data."""
    import pydoc_data.topics as topics

    return "\n\n".join(topics.topics[k] for k in sorted(topics.topics))


def other_text(limit: int = 1_200_000) -> str:
    """Different text for *continued pretraining*: the common licences plus stdlib module/class/function
    docstrings (read with ``ast``, nothing imported).  Disjoint from :func:`base_text`."""
    parts: list[str] = []
    lic = Path("/usr/share/common-licenses")
    if lic.is_dir():
        for p in sorted(lic.iterdir()):
            if p.is_file() and not p.is_symlink():
                parts.append(p.read_text(errors="replace"))
    size = sum(map(len, parts))
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for p in sorted(stdlib.glob("*.py")) + sorted(stdlib.glob("*/*.py")):
        if size >= limit:
            break
        if "test" in p.parts[-2:][0] or p.name.startswith("test"):
            continue
        try:
            tree = ast.parse(p.read_text(errors="replace"))
        except (SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                d = ast.get_docstring(node)
                if d and len(d) > 80:
                    parts.append(d)
                    size += len(d)
    return "\n\n".join(parts)[:limit]


# ---------------------------------------------------------------------------------------------------- tokenizer ---


def train_tokenizer(texts: Iterable[str], vocab_size: int, out_dir: Path):
    """Byte-level BPE trained with ``tokenizers``, saved as an HF fast tokenizer (tokenizer.json + config)."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    def chunks():
        for t in texts:
            for i in range(0, len(t), 4000):
                yield t[i : i + 4000]

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        chunks(), vocab_size=vocab_size, min_frequency=2, special_tokens=SPECIALS, show_progress=False
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe._tokenizer, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>"
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(str(out_dir))
    return tok


def load_tokenizer(d: Path):
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast.from_pretrained(str(d))


def encode(tok, text: str) -> np.ndarray:
    ids: list[int] = []
    for i in range(0, len(text), 20000):
        ids.extend(tok(text[i : i + 20000], add_special_tokens=False)["input_ids"])
    return np.asarray(ids, dtype=np.int64)


# ------------------------------------------------------------------------------------------------------ training ---


def batches(ids: np.ndarray, batch: int, seq: int, seed: int):
    g = np.random.default_rng(seed)
    while True:
        starts = g.integers(0, len(ids) - seq - 1, size=batch)
        yield torch.from_numpy(np.stack([ids[s : s + seq] for s in starts]))


def train_causal(
    model,
    ids: np.ndarray,
    steps: int,
    seed: int,
    lr: float = 3e-3,
    batch: int = 8,
    seq: int = 128,
    warmup: int = 20,
    log: Callable[[str], None] = print,
    tag: str = "",
) -> list[float]:
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps))))
    )
    losses = []
    it = batches(ids, batch, seq, seed)
    for step in range(steps):
        x = next(it)
        loss = model(input_ids=x, labels=x).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if step % 50 == 0 or step == steps - 1:
            log(f"  {tag} step {step:4d} loss {np.mean(losses[-50:]):.3f}")
    model.eval()
    return losses


def train_mlm(
    model,
    ids: np.ndarray,
    steps: int,
    seed: int,
    mask_id: int,
    vocab_size: int,
    lr: float = 1e-4,
    batch: int = 8,
    seq: int = 64,
    log: Callable[[str], None] = print,
    tag: str = "",
) -> list[float]:
    """Masked-LM training of a ``BertModel`` with a decoder tied to the word embeddings (no new parameters are
    added, so the saved encoder is exactly what was trained)."""
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    g = torch.Generator().manual_seed(seed)
    it = batches(ids, batch, seq, seed)
    losses = []
    for step in range(steps):
        x = next(it)
        m = torch.rand(x.shape, generator=g) < 0.15
        m[:, 0] |= ~m.any(dim=1)
        inp = x.clone()
        inp[m] = mask_id
        h = model(input_ids=inp, attention_mask=torch.ones_like(inp)).last_hidden_state[m]
        logits = h @ model.embeddings.word_embeddings.weight.T
        loss = torch.nn.functional.cross_entropy(logits, x[m])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if step % 20 == 0 or step == steps - 1:
            log(f"  {tag} step {step:4d} mlm loss {np.mean(losses[-20:]):.3f}")
    model.eval()
    return losses


# ------------------------------------------------------------------------------------------------------ writing ---


def tensors_of(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}


def write_model(
    path: Path,
    config: dict,
    sd: dict[str, torch.Tensor],
    *,
    shards: int = 1,
    extra_files: Iterable[Path] = (),
    extra_json: dict | None = None,
) -> None:
    """Write config.json + safetensors (optionally sharded with model.safetensors.index.json) atomically: the
    folder appears complete or not at all."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    (tmp / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    for f in extra_files:
        shutil.copyfile(f, tmp / Path(f).name)
    for name, obj in (extra_json or {}).items():
        (tmp / name).write_text(json.dumps(obj, indent=2) + "\n")
    sd = {k: v.contiguous() for k, v in sd.items()}
    if shards == 1:
        save_file(sd, str(tmp / "model.safetensors"), metadata={"format": "pt"})
    else:
        keys = list(sd)
        per = math.ceil(len(keys) / shards)
        weight_map, total = {}, 0
        for i in range(shards):
            fn = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
            part = {k: sd[k] for k in keys[i * per : (i + 1) * per]}
            save_file(part, str(tmp / fn), metadata={"format": "pt"})
            for k, v in part.items():
                weight_map[k] = fn
                total += v.numel() * v.element_size()
        (tmp / "model.safetensors.index.json").write_text(
            json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2) + "\n"
        )
    if path.exists():
        shutil.rmtree(path)
    os.rename(tmp, path)


def read_model(path: Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    sd: dict[str, torch.Tensor] = {}
    for f in sorted(path.glob("*.safetensors")):
        sd.update(load_file(str(f)))
    return sd


def weight_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).glob("*.safetensors"))


# -------------------------------------------------------------------------------------------- generic transforms ---


def cast(sd, dtype):
    return {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in sd.items()}


def to_f32(sd):
    return cast(sd, torch.float32)


def add_noise(sd, frac: float, seed: int):
    """W + N(0, (frac * std(W))^2), element-wise, per tensor."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, v in sd.items():
        if v.is_floating_point() and v.numel() > 1:
            v32 = v.float()
            out[k] = (v32 + torch.randn(v.shape, generator=g) * (frac * v32.std())).to(v.dtype)
        else:
            out[k] = v
    return out


def transpose_2d(sd):
    return {k: (v.t().contiguous() if v.ndim == 2 and v.is_floating_point() else v) for k, v in sd.items()}


def int8_absmax(sd):
    """Per-row absmax int8 quantise, then dequantise back to float32.  1-D tensors are kept (as real int8
    schemes keep norms and biases in high precision)."""
    out = {}
    for k, v in sd.items():
        if v.is_floating_point() and v.ndim == 2:
            v32 = v.float()
            scale = v32.abs().amax(dim=1, keepdim=True).clamp_min(1e-12) / 127.0
            out[k] = (torch.round(v32 / scale).clamp(-127, 127) * scale).contiguous()
        else:
            out[k] = v
    return out


def merge_linear(a, b, wa: float = 0.5):
    return {k: (wa * a[k].float() + (1 - wa) * b[k].float()) if a[k].is_floating_point() else a[k] for k in a}


def rename(sd, rules: list[tuple[str, str]]):
    out = {}
    for k, v in sd.items():
        for old, new in rules:
            k = k.replace(old, new)
        out[k] = v
    return out


def loguniform(g: torch.Generator, n: int, lo: float = 0.5, hi: float = 2.0) -> torch.Tensor:
    return torch.exp(math.log(lo) + torch.rand(n, generator=g) * (math.log(hi) - math.log(lo)))


# --------------------------------------------------------------------------------------------------------- Llama ---

LLAMA_RENAME = [
    ("model.layers.", "transformer.blocks."),
    ("model.embed_tokens.", "transformer.wte."),
    ("model.norm.", "transformer.ln_f."),
    ("self_attn.", "attn."),
    ("mlp.", "ffn."),
    ("input_layernorm.", "ln_1."),
    ("post_attention_layernorm.", "ln_2."),
    ("q_proj.", "wq."),
    ("k_proj.", "wk."),
    ("v_proj.", "wv."),
    ("o_proj.", "wo."),
    ("gate_proj.", "w1."),
    ("up_proj.", "w3."),
    ("down_proj.", "w2."),
    ("lm_head.", "output."),
]


def _L(i, name):
    return f"model.layers.{i}.{name}.weight"


def llama_dims(cfg: dict):
    nh, nkv, h = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["hidden_size"]
    hd = cfg.get("head_dim") or h // nh
    return nh, nkv, hd, h, cfg["num_hidden_layers"]


def llama_perm_mlp(sd, cfg, seed):
    sd = dict(sd)
    g = torch.Generator().manual_seed(seed)
    for i in range(cfg["num_hidden_layers"]):
        n = sd[_L(i, "mlp.up_proj")].shape[0]
        p = torch.randperm(n, generator=g)
        sd[_L(i, "mlp.gate_proj")] = sd[_L(i, "mlp.gate_proj")][p]
        sd[_L(i, "mlp.up_proj")] = sd[_L(i, "mlp.up_proj")][p]
        sd[_L(i, "mlp.down_proj")] = sd[_L(i, "mlp.down_proj")][:, p]
    return sd


def llama_perm_heads(sd, cfg, seed):
    """Permute KV groups, and query heads within each group (GQA-consistent); whole heads only (RoPE pairs
    stay intact).  o_proj columns follow the query heads."""
    sd = dict(sd)
    nh, nkv, hd, h, nl = llama_dims(cfg)
    r = nh // nkv
    g = torch.Generator().manual_seed(seed)
    for i in range(nl):
        pkv = torch.randperm(nkv, generator=g)
        qorder = torch.cat([pkv[a] * r + torch.randperm(r, generator=g) for a in range(nkv)])
        q, k, v, o = (sd[_L(i, f"self_attn.{n}_proj")] for n in "qkvo")
        sd[_L(i, "self_attn.q_proj")] = q.view(nh, hd, -1)[qorder].reshape(nh * hd, -1)
        sd[_L(i, "self_attn.k_proj")] = k.view(nkv, hd, -1)[pkv].reshape(nkv * hd, -1)
        sd[_L(i, "self_attn.v_proj")] = v.view(nkv, hd, -1)[pkv].reshape(nkv * hd, -1)
        sd[_L(i, "self_attn.o_proj")] = o.view(o.shape[0], nh, hd)[:, qorder].reshape(o.shape[0], nh * hd)
    return sd


def llama_rescale(sd, cfg, seed):
    """q * a, k / a per KV group (shared by its query heads); up * b, down / b per MLP unit.  a, b log-uniform
    in [0.5, 2]."""
    sd = dict(sd)
    nh, nkv, hd, h, nl = llama_dims(cfg)
    r = nh // nkv
    g = torch.Generator().manual_seed(seed)
    for i in range(nl):
        a = loguniform(g, nkv)
        q, k = sd[_L(i, "self_attn.q_proj")], sd[_L(i, "self_attn.k_proj")]
        sd[_L(i, "self_attn.q_proj")] = (q.view(nkv, r * hd, -1) * a.view(nkv, 1, 1)).reshape(q.shape)
        sd[_L(i, "self_attn.k_proj")] = (k.view(nkv, hd, -1) / a.view(nkv, 1, 1)).reshape(k.shape)
        up, down = sd[_L(i, "mlp.up_proj")], sd[_L(i, "mlp.down_proj")]
        b = loguniform(g, up.shape[0])
        sd[_L(i, "mlp.up_proj")] = up * b[:, None]
        sd[_L(i, "mlp.down_proj")] = down / b[None, :]
    return sd


def llama_fold_norms(sd, cfg, seed):
    """RMSNorm gains * s, the matrices reading the normalised stream / s (per hidden dim)."""
    sd = dict(sd)
    nl = cfg["num_hidden_layers"]
    h = cfg["hidden_size"]
    g = torch.Generator().manual_seed(seed)
    for i in range(nl):
        s = loguniform(g, h)
        sd[_L(i, "input_layernorm")] = sd[_L(i, "input_layernorm")] * s
        for n in "qkv":
            sd[_L(i, f"self_attn.{n}_proj")] = sd[_L(i, f"self_attn.{n}_proj")] / s[None, :]
        s = loguniform(g, h)
        sd[_L(i, "post_attention_layernorm")] = sd[_L(i, "post_attention_layernorm")] * s
        for n in ("gate", "up"):
            sd[_L(i, f"mlp.{n}_proj")] = sd[_L(i, f"mlp.{n}_proj")] / s[None, :]
    s = loguniform(g, h)
    sd["model.norm.weight"] = sd["model.norm.weight"] * s
    sd["lm_head.weight"] = sd["lm_head.weight"] / s[None, :]
    return sd


def llama_perm_residual(sd, cfg, seed):
    """One permutation of the hidden (residual-stream) dimensions, applied consistently everywhere."""
    sd = dict(sd)
    g = torch.Generator().manual_seed(seed)
    p = torch.randperm(cfg["hidden_size"], generator=g)
    sd["model.embed_tokens.weight"] = sd["model.embed_tokens.weight"][:, p]
    sd["lm_head.weight"] = sd["lm_head.weight"][:, p]
    sd["model.norm.weight"] = sd["model.norm.weight"][p]
    for i in range(cfg["num_hidden_layers"]):
        for n in ("input_layernorm", "post_attention_layernorm"):
            sd[_L(i, n)] = sd[_L(i, n)][p]
        for n in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "mlp.gate_proj", "mlp.up_proj"):
            sd[_L(i, n)] = sd[_L(i, n)][:, p]
        for n in ("self_attn.o_proj", "mlp.down_proj"):
            sd[_L(i, n)] = sd[_L(i, n)][p]
    return sd


def llama_prune(sd, cfg, drop: int):
    nl = cfg["num_hidden_layers"]
    out, j = {}, 0
    for k, v in sd.items():
        if not k.startswith("model.layers."):
            out[k] = v
    for i in range(nl):
        if i == drop:
            continue
        pre = f"model.layers.{i}."
        for k, v in sd.items():
            if k.startswith(pre):
                out[f"model.layers.{j}." + k[len(pre) :]] = v
        j += 1
    cfg = dict(cfg, num_hidden_layers=nl - 1)
    return out, cfg


def llama_extend_vocab(sd, cfg, n: int, seed: int):
    sd = dict(sd)
    g = torch.Generator().manual_seed(seed)
    for k in ("model.embed_tokens.weight", "lm_head.weight"):
        w = sd[k].float()
        new = w.mean(0, keepdim=True) + torch.randn(n, w.shape[1], generator=g) * w.std(0, keepdim=True)
        sd[k] = torch.cat([w, new.to(w.dtype)], 0)
    return sd, dict(cfg, vocab_size=cfg["vocab_size"] + n)


def llama_model(cfg: dict, sd: dict | None = None):
    from transformers import LlamaConfig, LlamaForCausalLM

    c = LlamaConfig.from_dict(dict(cfg, dtype="float32"))
    c._attn_implementation = "eager"
    m = LlamaForCausalLM(c)
    if sd is not None:
        missing, unexpected = m.load_state_dict(to_f32(sd), strict=False)
        missing = [k for k in missing if "rotary" not in k]
        assert not missing and not unexpected, (missing, unexpected)
    return m.eval()


@torch.no_grad()
def llama_logits(cfg, sd, x):
    return llama_model(cfg, sd)(input_ids=x).logits


# ---------------------------------------------------------------------------------------------------------- BERT ---

BERT_RENAME = [
    ("encoder.layer.", "bert.blocks."),
    ("embeddings.word_embeddings.", "bert.emb.tok."),
    ("embeddings.position_embeddings.", "bert.emb.pos."),
    ("embeddings.token_type_embeddings.", "bert.emb.seg."),
    ("embeddings.LayerNorm.", "bert.emb.norm."),
    ("embeddings.position_ids", "bert.emb.position_ids"),
    ("attention.self.query.", "attn.wq."),
    ("attention.self.key.", "attn.wk."),
    ("attention.self.value.", "attn.wv."),
    ("attention.output.dense.", "attn.wo."),
    ("attention.output.LayerNorm.", "attn_norm."),
    ("intermediate.dense.", "ffn.fc1."),
    ("output.dense.", "ffn.fc2."),
    ("output.LayerNorm.", "ffn_norm."),
    ("pooler.dense.", "bert.pool."),
]


def _B(i, name):
    return f"encoder.layer.{i}.{name}"


def bert_perm(sd, cfg, seed, residual=True, ffn=True, heads=True):
    sd = dict(sd)
    g = torch.Generator().manual_seed(seed)
    h, nh, nl = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_hidden_layers"]
    hd = h // nh
    if residual:
        p = torch.randperm(h, generator=g)
        for n in ("word_embeddings", "position_embeddings", "token_type_embeddings"):
            sd[f"embeddings.{n}.weight"] = sd[f"embeddings.{n}.weight"][:, p]
        for n in ("weight", "bias"):
            sd[f"embeddings.LayerNorm.{n}"] = sd[f"embeddings.LayerNorm.{n}"][p]
        for i in range(nl):
            for n in ("attention.self.query", "attention.self.key", "attention.self.value", "intermediate.dense"):
                sd[_B(i, n + ".weight")] = sd[_B(i, n + ".weight")][:, p]
            for n in ("attention.output.dense", "output.dense"):
                sd[_B(i, n + ".weight")] = sd[_B(i, n + ".weight")][p]
                sd[_B(i, n + ".bias")] = sd[_B(i, n + ".bias")][p]
            for n in ("attention.output.LayerNorm", "output.LayerNorm"):
                for t in ("weight", "bias"):
                    sd[_B(i, f"{n}.{t}")] = sd[_B(i, f"{n}.{t}")][p]
        if "pooler.dense.weight" in sd:
            sd["pooler.dense.weight"] = sd["pooler.dense.weight"][p][:, p]
            sd["pooler.dense.bias"] = sd["pooler.dense.bias"][p]
    for i in range(nl):
        if ffn:
            n = sd[_B(i, "intermediate.dense.weight")].shape[0]
            q = torch.randperm(n, generator=g)
            sd[_B(i, "intermediate.dense.weight")] = sd[_B(i, "intermediate.dense.weight")][q]
            sd[_B(i, "intermediate.dense.bias")] = sd[_B(i, "intermediate.dense.bias")][q]
            sd[_B(i, "output.dense.weight")] = sd[_B(i, "output.dense.weight")][:, q]
        if heads:
            ph = torch.randperm(nh, generator=g)
            for n in ("query", "key", "value"):
                w, b = sd[_B(i, f"attention.self.{n}.weight")], sd[_B(i, f"attention.self.{n}.bias")]
                sd[_B(i, f"attention.self.{n}.weight")] = w.view(nh, hd, -1)[ph].reshape(w.shape)
                sd[_B(i, f"attention.self.{n}.bias")] = b.view(nh, hd)[ph].reshape(b.shape)
            o = sd[_B(i, "attention.output.dense.weight")]
            sd[_B(i, "attention.output.dense.weight")] = o.view(o.shape[0], nh, hd)[:, ph].reshape(o.shape)
    return sd, (p if residual else None)


def bert_model(cfg: dict, sd: dict | None = None):
    from transformers import BertConfig, BertModel

    c = BertConfig.from_dict({k: v for k, v in cfg.items() if k not in ("torch_dtype", "dtype")})
    c._attn_implementation = "eager"
    m = BertModel(c)
    if sd is not None:
        missing, unexpected = m.load_state_dict(to_f32(sd), strict=False)
        missing = [k for k in missing if "position_ids" not in k]
        unexpected = [k for k in unexpected if "position_ids" not in k]
        assert not missing and not unexpected, (missing, unexpected)
    return m.eval()


@torch.no_grad()
def bert_outputs(cfg, sd, x):
    out = bert_model(cfg, sd)(input_ids=x, attention_mask=torch.ones_like(x))
    return out.last_hidden_state, out.pooler_output
