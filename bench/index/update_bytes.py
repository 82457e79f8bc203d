"""What `index update` fetches per upstream, for real model shapes: bytes, requests, and the pack size.

Each upstream is served by the local Hub (tests/servers/hub.py, real huggingface_hub client, HTTP Range) with its
real tensor table (names, shapes, bf16, shard layout) and sparse data files, so the 16 GB of an 8B model cost no
disk; the parts a fingerprint can read hold random values, so the pack size is that of real weights. The LFS sha256 the local Hub reports are derived from (path, size) here instead of hashing gigabytes of
zeros; nothing in `index update` depends on their value. Shapes: Llama-3-8B (config.json: hidden 4096, 32 layers,
intermediate 14336, 8 KV heads, vocab 128256, untied) in 4 shards; Qwen2.5-7B (hidden 3584, 28 layers,
intermediate 18944, 4 KV heads, vocab 152064, qkv biases, untied) in 4 shards.

    .venv/bin/python bench/index/update_bytes.py
"""

from __future__ import annotations

import hashlib
import json
import struct
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import numpy as np  # noqa: E402
from servers.hub import HubServer  # noqa: E402

from scanner.knowledge import Upstream  # noqa: E402
from scanner.provenance.index import Index  # noqa: E402
from scanner.provenance.model import token_stream, token_window  # noqa: E402
from scanner.provenance.pack import export_pack  # noqa: E402
from scanner.provenance.update import update_index  # noqa: E402


def llama_like(hidden, layers, inter, kv, vocab, bias=False) -> list[tuple[str, tuple[int, ...]]]:
    head = hidden // (hidden // 128)
    t = [("model.embed_tokens.weight", (vocab, hidden))]
    for i in range(layers):
        p = f"model.layers.{i}."
        t += [
            (p + "input_layernorm.weight", (hidden,)),
            (p + "post_attention_layernorm.weight", (hidden,)),
            (p + "self_attn.q_proj.weight", (hidden, hidden)),
            (p + "self_attn.k_proj.weight", (kv * head, hidden)),
            (p + "self_attn.v_proj.weight", (kv * head, hidden)),
            (p + "self_attn.o_proj.weight", (hidden, hidden)),
            (p + "mlp.gate_proj.weight", (inter, hidden)),
            (p + "mlp.up_proj.weight", (inter, hidden)),
            (p + "mlp.down_proj.weight", (hidden, inter)),
        ]
        if bias:
            t += [
                (p + "self_attn.q_proj.bias", (hidden,)),
                (p + "self_attn.k_proj.bias", (kv * head,)),
                (p + "self_attn.v_proj.bias", (kv * head,)),
            ]
    t += [("model.norm.weight", (hidden,)), ("lm_head.weight", (vocab, hidden))]
    return t


MODELS = {
    "meta-llama/Meta-Llama-3-8B": (llama_like(4096, 32, 14336, 8, 128256), 4, 128256),
    "Qwen/Qwen2.5-7B": (llama_like(3584, 28, 18944, 4, 152064, bias=True), 4, 152064),
}


def write_sparse_shards(repo: Path, tensors, shards: int) -> int:
    """bf16 safetensors shards with the real header and a sparse data section; returns total bytes."""
    total = sum(2 * _numel(s) for _, s in tensors)
    per, groups, cur, acc = total / shards, [], [], 0
    for name, shape in tensors:
        cur.append((name, shape))
        acc += 2 * _numel(shape)
        if acc >= per * (len(groups) + 1) and len(groups) < shards - 1:
            groups.append(cur)
            cur = []
    groups.append(cur)
    size = 0
    for k, group in enumerate(groups, 1):
        header, off = {"__metadata__": {"format": "pt"}}, 0
        for name, shape in group:
            n = 2 * _numel(shape)
            header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [off, off + n]}
            off += n
        raw = json.dumps(header).encode()
        raw += b" " * (-len(raw) % 8)
        path = repo / f"model-{k:05d}-of-{len(groups):05d}.safetensors"
        with open(path, "wb") as fh:
            fh.write(struct.pack("<Q", len(raw)) + raw)
            fh.truncate(8 + len(raw) + off)
            _fill_read_parts(fh, 8 + len(raw), header)
        size += path.stat().st_size
    return size


def _fill_read_parts(fh, data_start: int, header: dict) -> None:
    """Random bf16 where a fingerprint reads (sampled and windowed embedding rows, 1-D vectors), so the pack size
    is that of real weights, not of compressible zeros; the rest stays sparse."""
    rng = np.random.default_rng(0)
    for name, e in header.items():
        if name == "__metadata__":
            continue
        shape, (a, _end) = e["shape"], e["data_offsets"]
        if len(shape) == 1:
            fh.seek(data_start + a)
            fh.write(_bf16(rng.normal(1, 0.1, shape[0])))
        elif "embed_tokens" in name:
            vocab, hidden = shape
            for t in np.unique(np.concatenate([token_stream(vocab)[:1024], token_window(vocab, 512)])):
                fh.seek(data_start + a + int(t) * hidden * 2)
                fh.write(_bf16(rng.normal(0, 0.02, hidden)))


def _bf16(x) -> bytes:
    return (np.asarray(x, dtype=np.float32).view(np.uint32) >> 16).astype("<u2").tobytes()


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


class SparseHub(HubServer):
    def hashes(self, path: Path) -> tuple[str, str]:
        st = path.stat()
        h = hashlib.sha256(f"{path.name}:{st.st_size}".encode()).hexdigest()
        return h, hashlib.sha1(h.encode()).hexdigest()


def main() -> None:
    import os

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "hub"
        sizes = {}
        for repo_id, (tensors, shards, vocab) in MODELS.items():
            d = root / repo_id
            d.mkdir(parents=True)
            sizes[repo_id] = write_sparse_shards(d, tensors, shards)
            (d / "config.json").write_text(json.dumps({"vocab_size": vocab}))
        hub = SparseHub(root).start()
        os.environ["HF_ENDPOINT"] = hub.url
        try:
            ups = [Upstream(r, "bench", "unknown", {"vocab_size": MODELS[r][2]}) for r in MODELS]
            print(
                f"{'upstream':32} {'weights':>16} | {'bytes fetched':>13} {'requests':>8} {'server bytes':>12} | "
                f"{'pack bytes':>10}"
            )
            for up in ups:
                index = Index(Path(tmp) / f"{up.id.replace('/', '_')}.sqlite")
                hub.stats.reset()
                [r] = update_index(index, [up], log=lambda _: None)
                served = hub.stats.bytes_served
                pack = export_pack(index, Path(tmp) / "one.ospack")
                print(
                    f"{up.id:32} {sizes[up.id]:>16,} | {r.bytes_fetched:>13,} {r.requests:>8} {served:>12,} | "
                    f"{pack.bytes:>10,}   ({r.state})"
                )
                hub.stats.reset()
                [again] = update_index(index, [up], log=lambda _: None)
                print(
                    f"{'  re-run, nothing changed':32} {'':>16} | {again.bytes_fetched:>13,} "
                    f"{hub.stats.requests:>8} {hub.stats.bytes_served:>12,} |   ({again.state})"
                )
        finally:
            hub.stop()


if __name__ == "__main__":
    main()
