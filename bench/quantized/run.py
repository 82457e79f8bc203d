#!/usr/bin/env python
"""Quantized derivatives: GGUF (several quant types) and quantized safetensors against their safetensors upstream.

    .venv/bin/python bench/quantized/run.py [--bases DIR ...] [--out bench/.cache/quantized]

Bases: independently trained models of one architecture (the hard negatives). By default the provenance corpus's
llama-tiny bases (hidden 256, vocab 4096, trained with torch by bench/provenance/make_corpus.py) when they exist,
else the test fixtures base_a/b/c (hidden 64: too narrow for the K-quants' 256-value blocks, which are skipped).
bench/quantized/train_bases.py trains only such hidden-256 bases (`--bases bench/.cache/quantized/trained/base_*`).

From every base, each format is written with the `gguf` package (GGUF) or tests/quantizers.py (MLX 4-bit, FP8
E4M3 with row scales; bitsandbytes-style 4-bit embeddings that cannot be dequantized). Pairs:
  derived      format(base_i) vs base_i
  independent  format(base_i) vs base_j, j != i
Methods: originscan's verdict (compare_snapshots: header + sampled token rows, dequantized); sha256 of the weight
files; parameter cosine of the full dequantized weights (tensors matched by name; the best threshold, i.e. recall
at zero false positives). "read" is the suspect's bytes read (GGUF header included) over its weight file's size.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

import gguf  # noqa: E402
from gguf import GGMLQuantizationType as Q  # noqa: E402
from ggufs import write_gguf  # noqa: E402
from quantizers import mlx_model, save_fp8  # noqa: E402
from safetensors.numpy import load_file, save_file  # noqa: E402

from scanner.provenance.compare import compare_views  # noqa: E402
from scanner.provenance.quantized import unpack_mlx  # noqa: E402
from scanner.provenance.safetensors import fp8_table  # noqa: E402
from scanner.provenance.views import open_model  # noqa: E402
from scanner.sources.local import LocalSource  # noqa: E402

GGUF_TYPES = [Q.F16, Q.Q8_0, Q.Q6_K, Q.Q5_K, Q.Q4_K, Q.Q4_0]
ST_FORMATS = ["mlx-4bit", "fp8-e4m3", "bnb-4bit-embeddings"]


def load_base(d: Path) -> dict[str, np.ndarray]:
    t = {}
    for f in sorted(d.glob("*.safetensors")):
        t.update({k: v.astype(np.float32) for k, v in load_file(str(f)).items()})
    return t


def vocabulary(d: Path, vocab: int) -> tuple[list[str], list[int]] | tuple[None, None]:
    """The base's tokenizer.json vocabulary in id order (a realistic GGUF header), special tokens as CONTROL."""
    from scanner.evidence.gguf import tokenizer_vocabulary

    p = d / "tokenizer.json"
    if not p.exists():
        return None, None
    tj = json.loads(p.read_text())
    tokens = tokenizer_vocabulary(tj)
    if tokens is None or len(tokens) != vocab:
        return None, None
    special = {e["id"] for e in tj.get("added_tokens") or [] if e.get("special")}
    return tokens, [3 if i in special else 1 for i in range(vocab)]


def build(base: Path, t: dict[str, np.ndarray], out: Path) -> dict[str, Path]:
    """Every format of one base, written once (folders are reused on reruns)."""
    made = {}
    hidden = t["model.embed_tokens.weight"].shape[1]
    tokens, types = vocabulary(base, t["model.embed_tokens.weight"].shape[0])
    for q in GGUF_TYPES:
        if hidden % gguf.GGML_QUANT_SIZES[q][0]:
            continue
        folder = out / f"gguf-{q.name}" / base.name
        if not folder.exists():
            write_gguf(
                folder / f"{base.name}-{q.name}.gguf",
                t,
                q,
                tokens=tokens,
                token_types=types,
                metadata={"general.name": base.name, "general.license": "apache-2.0"},
            )
        made[f"gguf-{q.name}"] = folder
    folder = out / "mlx-4bit" / base.name
    if hidden % 64 == 0:
        if not folder.exists():
            folder.mkdir(parents=True)
            save_file(mlx_model(t), str(folder / "model.safetensors"))
            (folder / "config.json").write_text(
                json.dumps(
                    {
                        "hidden_size": hidden,
                        "vocab_size": len(t["model.embed_tokens.weight"]),
                        "quantization": {"group_size": 64, "bits": 4},
                    }
                )
            )
        made["mlx-4bit"] = folder
    folder = out / "fp8-e4m3" / base.name
    if not folder.exists():
        save_fp8(t, folder / "model.safetensors", [k for k, v in t.items() if v.ndim == 2])
    made["fp8-e4m3"] = folder
    folder = out / "bnb-4bit-embeddings" / base.name
    if not folder.exists():
        folder.mkdir(parents=True)
        rng = np.random.default_rng(0)
        q = {k: v for k, v in t.items() if v.ndim == 1}  # norms kept (bitsandbytes quantizes Linear layers)
        for k, v in t.items():
            if v.ndim == 2:  # every matrix packed 4-bit: two codes per byte, per-64 absmax
                q[k] = rng.integers(0, 255, size=(v.size // 2, 1), dtype=np.uint8)
                q[k + ".absmax"] = np.abs(v).reshape(-1, 64).max(axis=1).astype(np.float32)
        save_file(q, str(folder / "model.safetensors"))
        (folder / "config.json").write_text(
            json.dumps(
                {"hidden_size": hidden, "quantization_config": {"quant_method": "bitsandbytes", "load_in_4bit": True}}
            )
        )
    made["bnb-4bit-embeddings"] = folder
    return made


# -- baselines ---------------------------------------------------------------------------------------------------------
def dequantized(folder: Path) -> dict[str, np.ndarray]:
    """Every tensor of a model as float32, HF names (full read: what the baselines need)."""
    ggufs = sorted(folder.glob("*.gguf"))
    if ggufs:
        reader = gguf.GGUFReader(ggufs[0])
        layers = 1 + max((int(t.name.split(".")[1]) for t in reader.tensors if t.name.startswith("blk.")), default=0)
        names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, layers)
        back = {}
        for hf in ["model.embed_tokens", "lm_head", "model.norm"] + [
            f"model.layers.{i}.{p}"
            for i in range(layers)
            for p in (
                "input_layernorm",
                "post_attention_layernorm",
                "self_attn.q_proj",
                "self_attn.k_proj",
                "self_attn.v_proj",
                "self_attn.o_proj",
                "mlp.gate_proj",
                "mlp.up_proj",
                "mlp.down_proj",
            )
        ]:
            back[names.get_name(hf) + ".weight"] = hf + ".weight"
        return {
            back[t.name]: gguf.quants.dequantize(t.data, t.tensor_type)
            .reshape(tuple(reversed([int(d) for d in t.shape])))
            .astype(np.float32)
            for t in reader.tensors
            if t.name in back
        }
    raw = load_file(str(folder / "model.safetensors"))
    out = {}
    for k, v in raw.items():
        if k.endswith((".scales", ".biases", ".absmax", ".weight_scale")):
            continue
        if v.dtype == np.uint32 and k.removesuffix(".weight") + ".scales" in raw:
            p = k.removesuffix(".weight")
            out[k] = unpack_mlx(v, raw[p + ".scales"].astype(np.float32), raw[p + ".biases"].astype(np.float32), 4, 64)
        elif v.dtype == np.uint8 and v.ndim == 2 and v.shape[1] == 1:
            continue  # bitsandbytes-style packed codes: nothing a full read can compare either
        else:
            out[k] = v.astype(np.float32)
    return out


def read_fp8_aware(folder: Path) -> dict[str, np.ndarray]:
    """safetensors with F8_E4M3 tensors (which numpy cannot load): decode through the scanner's table."""
    path = folder / "model.safetensors"
    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    header.pop("__metadata__", None)
    body = data[8 + n :]
    out = {}
    for k, e in header.items():
        a, b = e["data_offsets"]
        if e["dtype"] == "F8_E4M3":
            out[k] = fp8_table("f8e4m3")[np.frombuffer(body[a:b], np.uint8)].reshape(e["shape"])
        elif e["dtype"] == "F32":
            out[k] = np.frombuffer(body[a:b], np.float32).reshape(e["shape"])
        elif e["dtype"] == "F16":
            out[k] = np.frombuffer(body[a:b], np.float16).astype(np.float32).reshape(e["shape"])
    for k in list(out):
        s = k.removesuffix(".weight") + ".weight_scale"
        if k.endswith(".weight") and s in out:
            out[k] = out[k] * out.pop(s)
    return out


def params(folder: Path) -> dict[str, np.ndarray]:
    if (folder / "model.safetensors").exists() and b"F8_E4M3" in (folder / "model.safetensors").read_bytes()[:65536]:
        return read_fp8_aware(folder)
    return dequantized(folder)


def param_cos(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    shared = [k for k in a if k in b and a[k].shape == b[k].shape]
    if not shared:
        return float("nan")
    x = np.concatenate([a[k].ravel() for k in shared])
    y = np.concatenate([b[k].ravel() for k in shared])
    return float(x @ y / (np.linalg.norm(x) * np.linalg.norm(y) + 1e-12))


def sha256s(folder: Path) -> set[str]:
    files = [p for p in folder.iterdir() if p.suffix in (".gguf", ".safetensors")]
    return {hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def synthetic_bases(root: Path, hidden: int, vocab: int) -> list[Path]:
    """Two random Llama-shaped models (one layer) with a made-up vocabulary of `vocab` tokens."""
    from synthetic import base_model

    out = []
    for seed in (1, 2):
        d = root / f"base_{seed}"
        if not d.exists():
            d.mkdir(parents=True)
            save_file(base_model(seed, d=hidden, vocab=vocab, layers=1, inter=hidden), str(d / "model.safetensors"))
            added = [{"id": i, "content": f"<|special_{i}|>", "special": True} for i in range(8)]
            vocab_map = {f"tok{i}": i for i in range(8, vocab)}
            (d / "tokenizer.json").write_text(
                json.dumps({"model": {"type": "BPE", "vocab": vocab_map}, "added_tokens": added})
            )
        out.append(d)
    return out


# -- the run -------------------------------------------------------------------------------------------------------
def originscan(suspect: Path, reference: Path) -> tuple[str, float, int, int, int, float]:
    """(verdict, log10 p, suspect bytes read, its GGUF header's bytes, its weight bytes, seconds)."""
    started = time.perf_counter()
    s = open_model(LocalSource(str(suspect), hash_weights=False).snapshot())
    r = open_model(LocalSource(str(reference), hash_weights=False).snapshot())
    try:
        v = compare_views(s, r, str(suspect), str(reference))
        header = sum(h.header_bytes for h in getattr(s, "headers", {}).values())
        return v.verdict, v.log10_p_value, s.bytes_read, header, s.weight_bytes, time.perf_counter() - started
    finally:
        s.close()
        r.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bases", nargs="*", type=Path)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / ".cache" / "quantized")
    ap.add_argument(
        "--wide",
        nargs=2,
        type=int,
        metavar=("HIDDEN", "VOCAB"),
        help="instead: two synthetic (untrained) models of this size, to measure bytes read at a "
        "realistic vocabulary and file size",
    )
    a = ap.parse_args()
    corpus = REPO / "bench" / ".corpus" / "llama-tiny"
    bases = [b.resolve() for b in a.bases] if a.bases else sorted(corpus.glob("base_*"))
    if a.wide:
        bases = synthetic_bases(a.out / f"wide-{a.wide[0]}x{a.wide[1]}", *a.wide)
    elif len(bases) < 2:
        bases = [REPO / "tests" / "fixtures" / "provenance" / f"base_{c}" for c in "abc"]
    print(f"bases: {', '.join(str(b.relative_to(REPO)) if b.is_relative_to(REPO) else str(b) for b in bases)}")
    weights = {b: load_base(b) for b in bases}
    formats: dict[str, dict[Path, Path]] = {}
    for b in bases:
        for fmt, folder in build(b, weights[b], a.out / bases[0].parent.name).items():
            formats.setdefault(fmt, {})[b] = folder
    base_params = {b: dequantized(b) for b in bases}
    print(
        f"{'format':<22}{'pairs d/i':>10}{'caught':>8}{'FP':>4}{'inconcl.':>9}{'weakest d log10p':>18}"
        f"{'indep. log10p':>15}{'read % (mean/max)':>19}{'read bytes':>12}{'of it header':>13}{'s/pair':>8}"
        f"{'cos recall@0FP':>16}{'sha256':>8}"
    )
    for fmt, folders in formats.items():
        rows = []
        for b, folder in folders.items():
            qp = params(folder)
            fh = sha256s(folder)
            for ref in bases:
                verdict, log10p, read, header, size, secs = originscan(folder, ref)
                rows.append(
                    {
                        "derived": ref == b,
                        "verdict": verdict,
                        "log10p": log10p,
                        "read": read,
                        "size": size,
                        "header": header,
                        "secs": secs,
                        "cos": param_cos(qp, base_params[ref]),
                        "sha": bool(fh & sha256s(ref)),
                    }
                )
        d = [r for r in rows if r["derived"]]
        i = [r for r in rows if not r["derived"]]
        caught = sum(r["verdict"] == "derived" for r in d)
        fp = sum(r["verdict"] == "derived" for r in i)
        inconclusive = sum(r["verdict"] == "inconclusive" for r in rows)
        weakest = max((r["log10p"] for r in d if r["verdict"] == "derived"), default=float("nan"))
        strongest_i = min((r["log10p"] for r in i), default=float("nan"))
        pct = [100 * r["read"] / r["size"] for r in rows]
        cos_thr = max((r["cos"] for r in i if np.isfinite(r["cos"])), default=float("inf"))
        cos_recall = sum(np.isfinite(r["cos"]) and r["cos"] > cos_thr for r in d)
        sha = sum(r["sha"] for r in d)
        print(
            f"{fmt:<22}{f'{len(d)}/{len(i)}':>10}{f'{caught}/{len(d)}':>8}{fp:>4}{inconclusive:>9}"
            f"{weakest:>18.1f}{strongest_i:>15.2f}{f'{np.mean(pct):.2f}/{np.max(pct):.2f}':>19}"
            f"{int(np.mean([r['read'] for r in rows])):>12,}{int(np.mean([r['header'] for r in rows])):>13,}"
            f"{np.mean([r['secs'] for r in rows]):>8.2f}"
            f"{f'{cos_recall}/{len(d)}':>16}{f'{sha}/{len(d)}':>8}"
        )


if __name__ == "__main__":
    main()
