"""Builders for tiny model repos on disk, shared by the rule, example and bad-input tests.

Nothing here loads or unpickles anything: pickle files are written as opcode bytes.
"""

from __future__ import annotations

import ctypes
import io
import json
import os
import struct
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from safetensors.numpy import save_file

from scanner.findings import Finding
from scanner.pipeline import scan_target
from scanner.policy import Policy
from scanner.provenance.index import Index
from scanner.provenance.views import open_model
from scanner.results import TargetReport
from scanner.sources.local import LocalSource

REPO_ROOT = Path(__file__).resolve().parent.parent

# -- knowledge-base facts the tests lean on (values as in rules/upstreams/ / rules/licenses.yaml) -------------
LLAMA3_8B_CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 4096,
    "num_hidden_layers": 32,
    "intermediate_size": 14336,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "vocab_size": 128256,
    "rope_theta": 500000.0,
    "max_position_embeddings": 8192,
    "bos_token_id": 128000,
    "eos_token_id": 128001,
}
GEMMA2_2B_CONFIG = {
    "architectures": ["Gemma2ForCausalLM"],
    "model_type": "gemma2",
    "hidden_size": 2304,
    "num_hidden_layers": 26,
    "intermediate_size": 9216,
    "num_attention_heads": 8,
    "num_key_value_heads": 4,
    "head_dim": 256,
    "vocab_size": 256000,
    "rope_theta": 10000.0,
    "max_position_embeddings": 8192,
    "sliding_window": 4096,
}
MINICPM_V_CONFIG = dict(
    LLAMA3_8B_CONFIG,
    architectures=["MiniCPMV"],
    model_type="minicpmv",
    query_num=96,
    slice_mode=True,
    image_size=448,
    patch_size=14,
)
# A config that matches no upstream in the knowledge base.
CUSTOM_CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 1024,
    "num_hidden_layers": 12,
    "intermediate_size": 2816,
    "num_attention_heads": 16,
    "num_key_value_heads": 4,
    "vocab_size": 32000,
    "rope_theta": 10000.0,
    "max_position_embeddings": 4096,
}

MINICPM_TOKENS = {
    "<image>": 128010,
    "</image>": 128011,
    "<ref>": 128012,
    "</ref>": 128013,
    "<box>": 128014,
    "</box>": 128015,
    "<quad>": 128016,
    "</quad>": 128017,
    "<point>": 128018,
    "</point>": 128019,
    "<slice>": 128020,
    "</slice>": 128021,
}

APACHE_TEXT = "Apache License\nVersion 2.0, January 2004\nhttp://www.apache.org/licenses/\n"
MIT_TEXT = (
    "MIT License\n\nPermission is hereby granted, free of charge, to any person obtaining a copy of this "
    "software.\n\nThe above copyright notice and this permission notice shall be included in all copies.\n"
)
LLAMA3_LICENSE = "META LLAMA 3 COMMUNITY LICENSE AGREEMENT\nMeta Llama 3 Version Release Date: April 18, 2024\n"
LLAMA3_NOTICE = (
    "Meta Llama 3 is licensed under the Meta Llama 3 Community License, Copyright © Meta Platforms, "
    "Inc. All Rights Reserved.\n"
)
LLAMA3_PHRASE = "Built with Meta Llama 3"
GEMMA_TERMS = "Gemma Terms of Use\n\n... Gemma Prohibited Use Policy ...\n"
GEMMA_NOTICE = "Gemma is provided under and subject to the Gemma Terms of Use found at ai.google.dev/gemma/terms\n"


# -- repos ---------------------------------------------------------------------------------------------------------
def without_root_override() -> None:
    """In a child, before exec (`preexec_fn`): drop CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from the bounding set,
    so that even root meets file permissions (the test machine runs as root; a user never does)."""
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def card_text(metadata: dict[str, Any] | None, body: str = "# A model\n\nSome words about it.\n") -> str:
    """A README.md with YAML front matter (none when metadata is None)."""
    if metadata is None:
        return body
    return "---\n" + yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True) + "---\n\n" + body


def tokenizer_config(tokens: dict[str, int]) -> dict[str, Any]:
    return {
        "added_tokens_decoder": {
            str(i): {
                "content": t,
                "special": True,
                "lstrip": False,
                "rstrip": False,
                "normalized": False,
                "single_word": False,
            }
            for t, i in sorted(tokens.items(), key=lambda x: x[1])
        },
        "tokenizer_class": "PreTrainedTokenizerFast",
    }


def make_repo(
    root: Path,
    name: str = "repo",
    *,
    card: str | dict | None = None,
    body: str | None = None,
    config: dict | None = None,
    tokenizer: dict[str, int] | None = None,
    files: dict[str, str | bytes] | None = None,
    weights: dict[str, dict[str, np.ndarray]] | None = None,
) -> Path:
    """Write a model repo folder. `card` is README.md's text, or a metadata dict turned into front matter."""
    repo = root / name
    repo.mkdir(parents=True, exist_ok=True)
    if card is not None:
        text = (card_text(card, body) if body is not None else card_text(card)) if isinstance(card, dict) else card
        (repo / "README.md").write_text(text, encoding="utf-8")
    if config is not None:
        (repo / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    if tokenizer is not None:
        (repo / "tokenizer_config.json").write_text(json.dumps(tokenizer_config(tokenizer)), encoding="utf-8")
    for rel, data in (files or {}).items():
        p = repo / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            p.write_bytes(data)
        else:
            p.write_text(data, encoding="utf-8")
    for rel, tensors in (weights or {}).items():
        save_tensors(tensors, repo / rel)
    return repo


# -- weights -------------------------------------------------------------------------------------------------------
def tiny_llm(
    seed: int, vocab: int = 320, d: int = 48, inter: int = 96, layers: int = 2, prefix: str = "model."
) -> dict[str, np.ndarray]:
    """A Llama-shaped decoder with tied embeddings, float32 (a few hundred KB)."""
    r = np.random.default_rng(seed)
    t = {f"{prefix}embed_tokens.weight": r.normal(0, 1, (vocab, d)), f"{prefix}norm.weight": 1 + 0.1 * r.normal(size=d)}
    for i in range(layers):
        p = f"{prefix}layers.{i}."
        t[p + "input_layernorm.weight"] = 1 + 0.1 * r.normal(size=d)
        t[p + "post_attention_layernorm.weight"] = 1 + 0.1 * r.normal(size=d)
        for n in "qkvo":
            t[p + f"self_attn.{n}_proj.weight"] = r.normal(0, 0.1, (d, d))
        t[p + "mlp.gate_proj.weight"] = r.normal(0, 0.1, (inter, d))
        t[p + "mlp.up_proj.weight"] = r.normal(0, 0.1, (inter, d))
        t[p + "mlp.down_proj.weight"] = r.normal(0, 0.1, (d, inter))
    return {k: np.asarray(v, dtype=np.float32) for k, v in t.items()}


def noised(t: dict[str, np.ndarray], frac: float, seed: int = 5) -> dict[str, np.ndarray]:
    r = np.random.default_rng(seed)
    return {k: (v + frac * v.std() * r.normal(size=v.shape)).astype(np.float32) for k, v in t.items()}


def disguise(t: dict[str, np.ndarray], seed: int = 3) -> dict[str, np.ndarray]:
    """Rename every tensor, permute the hidden axis, add a little noise, keep float32 (the Llama3-V recipe+)."""
    d = t[next(k for k in t if k.endswith("norm.weight"))].shape[0]
    perm = np.random.default_rng(seed).permutation(d)
    out = {}
    for k, v in noised(t, 0.02, seed).items():
        if v.ndim == 1:
            v = v[perm]
        elif v.shape[1] == d and v.shape[0] != d:
            v = v[:, perm]
        elif v.shape[0] == d and v.shape[1] != d:
            v = v[perm, :]
        else:
            v = v[perm][:, perm]
        out[k.replace("model.", "transformer.").replace("layers.", "h.")] = v
    return out


def save_tensors(tensors: dict[str, np.ndarray], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(path), metadata={"format": "pt"})
    return path


def safetensors_raw(header: dict | bytes, data: bytes = b"", header_len: int | None = None) -> bytes:
    """A hand-built safetensors file: 8-byte length, header JSON, data. For malformed-file tests."""
    hdr = header if isinstance(header, bytes) else json.dumps(header).encode()
    n = len(hdr) if header_len is None else header_len
    return struct.pack("<Q", n) + hdr + data


def register(index_path: Path, repo: Path, name: str, license: str | None) -> Index:
    """Register `repo` as an upstream called `name` in a fresh (or existing) index file."""
    index = Index(index_path)
    model = open_model(LocalSource(str(repo)).snapshot())
    try:
        index.add(name, model, license, str(repo), None)
    finally:
        model.close()
    return index


# -- pickles, as raw opcodes (never created from live objects, never loaded) ---------------------------------------
def _binunicode(s: str) -> bytes:
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def pickle_global(module: str, name: str, arg: str | None = None) -> bytes:
    """PROTO 2; GLOBAL module name; [call it with one string]; STOP."""
    out = b"\x80\x02" + f"c{module}\n{name}\n".encode()
    if arg is not None:
        out += _binunicode(arg) + b"\x85R"  # TUPLE1 REDUCE
    else:
        out += b")R"  # EMPTY_TUPLE REDUCE
    return out + b"."


def pickle_stack_global(module: str, name: str) -> bytes:
    """Protocol 4 style: SHORT_BINUNICODE module, SHORT_BINUNICODE name, STACK_GLOBAL, EMPTY_TUPLE, REDUCE."""

    def short(s: str) -> bytes:
        b = s.encode()
        return b"\x8c" + bytes([len(b)]) + b

    return b"\x80\x04" + short(module) + short(name) + b"\x93)R."


SAFE_PICKLE = pickle_global("collections", "OrderedDict")
UNSAFE_PICKLE = pickle_global("os", "system", "echo never-run")


def torch_zip(pkl: bytes, folder: str = "archive") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(f"{folder}/data.pkl", pkl)
        zf.writestr(f"{folder}/version", b"3\n")
    return buf.getvalue()


# -- scanning ------------------------------------------------------------------------------------------------------
def scan(repo: Path | str, policy: Policy | None = None, index: Index | None = None) -> TargetReport:
    return scan_target(str(repo), policy or Policy(), index)


def active_rules(report: TargetReport) -> set[str]:
    return {f.rule for f in report.active()}


def findings_of(report: TargetReport, rule: str) -> list[Finding]:
    return [f for f in report.findings if f.rule == rule]


def assert_fires(report: TargetReport, rule: str) -> list[Finding]:
    """The rule produced at least one active finding; returns them."""
    hits = [f for f in report.active() if f.rule == rule]
    assert hits, f"{rule} did not fire; got {sorted(active_rules(report))}"
    return hits


def assert_quiet(report: TargetReport, rule: str) -> None:
    hits = [f for f in report.findings if f.rule == rule]
    assert not hits, f"{rule} fired but must not: {[f.message for f in hits]}"


def run_cli(
    *args: str, cwd: Path | None = None, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """`originscan ARGS…` in a subprocess (python -m scanner.cli), text output."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    full_env.pop("ORIGINSCAN_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "scanner.cli", *args],
        cwd=cwd or REPO_ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def save_tiny_torch_model(
    folder: Path,
    seed: int,
    tokenizer: Path,
    model_class: Any,
    config: Any,
    base: Path | None = None,
    noise: float = 0.0,
) -> Path:
    """A randomly initialised `model_class(config)`, or a copy of `base` with Gaussian noise of `noise` times each
    tensor's spread, saved as safetensors beside the files of `tokenizer` (the probe's tests; needs torch)."""
    import shutil

    import torch

    torch.manual_seed(seed)
    if base is not None:
        model = model_class.from_pretrained(str(base), use_safetensors=True)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(noise * p.std() * torch.randn_like(p))
    else:
        model = model_class(config)
    model.save_pretrained(str(folder), safe_serialization=True)
    for f in tokenizer.iterdir():
        shutil.copy(f, folder / f.name)
    return folder
