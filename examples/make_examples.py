"""Regenerate the binary files of the bundled example repos (weights and pickle files).

    python examples/make_examples.py          # rewrite every *.safetensors / *.bin under examples/
    python examples/make_examples.py --check  # exit 1 if a committed file differs from what this script makes

Only numpy and safetensors are used; every random draw has a fixed seed, so the output is byte-for-byte
reproducible. The cards, configs, tokenizer configs and licence texts next to the weights are hand-written files.

The weight sets are tiny transformer-shaped stand-ins (vocab 320, hidden 48, two layers): big enough for
originscan's provenance test (it needs >= 256 token rows and a few hidden-size norm vectors), small enough to
commit (each file <= 300 KB). Two of them are "upstreams" registered by `originscan demo` in a throw-away index:

  upstreams/llama-3-8b/           stands in for meta-llama/Meta-Llama-3-8B   (Llama-style names, float16)
  upstreams/minicpm-llama3-v-2_5/ stands in for openbmb/MiniCPM-Llama3-V-2_5 (llm. / vpm. / resampler., float16)

The other repos copy, disguise, fine-tune or ignore them; see each folder's EXAMPLE.md.

No pickle is ever created with pickle.dumps of a live object, and nothing here unpickles anything: the .bin
files are opcode streams written byte by byte (see `pickle_bytes`).
"""

from __future__ import annotations

import argparse
import io
import struct
import sys
import zipfile
from pathlib import Path

import numpy as np
from safetensors.numpy import save

HERE = Path(__file__).resolve().parent
VOCAB, HIDDEN, INTER, LAYERS = 320, 48, 96, 2
MAX_FILE_BYTES = 300 * 1024


# -- weight sets ---------------------------------------------------------------------------------------------------
def llm(
    seed: int, prefix: str = "model.", vocab: int = VOCAB, d: int = HIDDEN, inter: int = INTER, layers: int = LAYERS
) -> dict[str, np.ndarray]:
    """A Llama-shaped decoder with tied embeddings (no separate lm_head), float32."""
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


def minicpm_v(seed: int) -> dict[str, np.ndarray]:
    """MiniCPM-Llama3-V 2.5's layout in miniature: llm.* (Llama 3), vpm.* (SigLIP vision), resampler.*."""
    r = np.random.default_rng(seed + 1000)
    v = 32  # vision width
    t = llm(seed, prefix="llm.model.")
    t.update(
        {
            "vpm.embeddings.patch_embedding.weight": r.normal(0, 0.1, (v, 12)),
            "vpm.encoder.layers.0.layer_norm1.weight": 1 + 0.1 * r.normal(size=v),
            "vpm.encoder.layers.0.layer_norm2.weight": 1 + 0.1 * r.normal(size=v),
            "vpm.encoder.layers.0.self_attn.q_proj.weight": r.normal(0, 0.1, (v, v)),
            "vpm.post_layernorm.weight": 1 + 0.1 * r.normal(size=v),
            "resampler.query": r.normal(0, 1, (96, HIDDEN)),  # query_num 96
            "resampler.kv_proj.weight": r.normal(0, 0.1, (HIDDEN, v)),
            "resampler.ln_q.weight": 1 + 0.1 * r.normal(size=HIDDEN),
            "resampler.ln_kv.weight": 1 + 0.1 * r.normal(size=v),
            "resampler.ln_post.weight": 1 + 0.1 * r.normal(size=HIDDEN),
            "resampler.proj": r.normal(0, 0.1, (HIDDEN, HIDDEN)),
        }
    )
    return {k: np.asarray(x, dtype=np.float32) for k, x in t.items()}


def noised(t: dict[str, np.ndarray], frac: float, seed: int) -> dict[str, np.ndarray]:
    """Gaussian noise of `frac` times each tensor's standard deviation (a fine-tune, or a disguise)."""
    r = np.random.default_rng(seed)
    return {k: (v + frac * v.std() * r.normal(size=v.shape)).astype(np.float32) for k, v in t.items()}


def as_dtype(t: dict[str, np.ndarray], dtype) -> dict[str, np.ndarray]:
    return {k: np.ascontiguousarray(v.astype(dtype)) for k, v in t.items()}


def safetensors_bytes(t: dict[str, np.ndarray]) -> bytes:
    return save(t, metadata={"format": "pt"})


# -- pickles, written as opcodes ----------------------------------------------------------------------------------
def _unicode(s: str) -> bytes:
    b = s.encode("utf-8")
    return b"X" + struct.pack("<I", len(b)) + b  # BINUNICODE


def pickle_bytes(command: str | None) -> bytes:
    """A protocol-2 opcode stream that builds an empty OrderedDict (what a state dict starts as).

    With `command`, it first references os.system through GLOBAL and calls it: the shape of a real pickle
    attack. The bytes are assembled by hand here; nothing imports, calls or loads them.
    """
    out = b"\x80\x02"  # PROTO 2
    out += b"ccollections\nOrderedDict\n"  # GLOBAL collections.OrderedDict
    out += b")R"  # EMPTY_TUPLE, REDUCE  -> OrderedDict()
    out += b"q\x00"  # BINPUT 0
    if command is not None:
        out += b"cos\nsystem\n"  # GLOBAL os.system   <- the unsafe import
        out += _unicode(command) + b"\x85R"  # BINUNICODE, TUPLE1, REDUCE
        out += b"0"  # POP the call's result
    out += b"."  # STOP
    return out


def torch_zip(pkl: bytes, folder: str = "pytorch_model") -> bytes:
    """The zip container torch.save has used since 1.6: <folder>/data.pkl plus a version record."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in ((f"{folder}/data.pkl", pkl), (f"{folder}/version", b"3\n")):
            info = zipfile.ZipInfo(name, date_time=(2024, 6, 2, 0, 0, 0))  # fixed date: reproducible bytes
            zf.writestr(info, data)
    return buf.getvalue()


# -- the example repos --------------------------------------------------------------------------------------------
def build() -> dict[str, bytes]:
    """Repo-relative path -> bytes, for every generated file."""
    files: dict[str, bytes] = {}
    llama = llm(seed=1)  # the Meta-Llama-3-8B stand-in
    minicpm = minicpm_v(seed=2)  # the MiniCPM-Llama3-V-2_5 stand-in

    llama_file = safetensors_bytes(as_dtype(llama, np.float16))
    files["upstreams/llama-3-8b/model.safetensors"] = llama_file
    files["upstreams/minicpm-llama3-v-2_5/model.safetensors"] = safetensors_bytes(as_dtype(minicpm, np.float16))

    # Llama3-V: MiniCPM's tensors with vpm./resampler. renamed, re-typed to float32, Gaussian noise added.
    disguised = {}
    for k, v in noised(as_dtype(minicpm, np.float16).copy(), 0.02, seed=602).items():
        k = k.replace("vpm.", "vison.", 1) if k.startswith("vpm.") else k
        k = k.replace("resampler.", "projection.", 1) if k.startswith("resampler.") else k
        disguised[k] = v
    files["llama3-v-style/model.safetensors"] = safetensors_bytes(as_dtype(disguised, np.float32))

    # A declared, honest fine-tune of the Llama 3 stand-in.
    files["clean-llama3-finetune/model.safetensors"] = safetensors_bytes(
        as_dtype(noised(llama, 0.05, seed=11), np.float16)
    )
    # The same upstream file, byte for byte, re-published as someone's own model.
    files["undeclared-copy/model.safetensors"] = llama_file
    # Card says Mistral; weights are a light fine-tune of the Llama 3 stand-in.
    files["wrong-base/model.safetensors"] = safetensors_bytes(as_dtype(noised(llama, 0.10, seed=12), np.float16))
    # Heavy continued pre-training plus layer pruning: derived, but no longer a near-copy.
    pruned = {k: v for k, v in llama.items() if ".layers.1." not in k}
    files["undeclared-derivative/model.safetensors"] = safetensors_bytes(
        as_dtype(noised(pruned, 0.8, seed=13), np.float16)
    )

    # Independent models (their own seeds, smaller shapes): compared with the upstreams, they must not match.
    small = dict(vocab=256, d=32, inter=64, layers=1)
    for i, repo in enumerate(
        [
            "gemma-apache-relicense",
            "noncommercial-base-relicensed",
            "card-license-mismatch",
            "license-other-unnamed",
            "unknown-license",
            "malformed-card",
            "no-card-no-license",
        ]
    ):
        files[f"{repo}/model.safetensors"] = safetensors_bytes(as_dtype(llm(seed=100 + i, **small), np.float16))

    # Pickle weights: a torch-style zip whose data.pkl would call os.system, plus a plain (safe) pickle.
    files["pickle-remote-code/pytorch_model.bin"] = torch_zip(
        pickle_bytes("echo originscan demo: this line runs if you torch.load() this file")
    )
    files["pickle-remote-code/training_args.bin"] = pickle_bytes(None)
    return files


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare with the files on disk instead of writing")
    args = ap.parse_args(argv)
    files = build()
    stale = []
    for rel, data in sorted(files.items()):
        if len(data) > MAX_FILE_BYTES:
            raise SystemExit(f"{rel}: {len(data)} bytes, over the {MAX_FILE_BYTES}-byte budget")
        path = HERE / rel
        if args.check:
            if not path.is_file() or path.read_bytes() != data:
                stale.append(rel)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        print(f"{len(data):>8,}  examples/{rel}")
    if args.check and stale:
        print("out of date: " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
