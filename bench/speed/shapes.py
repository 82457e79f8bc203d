"""Remote `originscan compare` at real model sizes, old code and new side by side in one run.

    .venv/bin/python bench/speed/shapes.py [--shape llama3-8b|llama2-13b|all] [--repeat 5] [--old PATH]

Three repos per shape are served by the local Hub server (tests/servers/hub.py; real huggingface_hub client,
HTTP Range reads): an upstream (bf16), a disguised copy of it (hidden axis permuted, 5 % noise, tensors renamed,
re-typed to fp16) and an independent model (bf16, another seed). Each is the shape of the real model — every
tensor of Llama-3-8B (hidden 4096, 32 layers, vocab 128,256, GQA) or Llama-2-13B (hidden 5120, 40 layers, vocab
32,000) in the same number of shards, with correct headers and sizes (16 GB and 26 GB a model) — but is written as
a sparse file in a temporary folder outside the repository: only the bytes a comparison can read hold values
(the first 1,024 token ids of the sampled order in both token matrices, and every residual vector); the rest is a
hole that reads as zeros and takes no disk. The Hub server would hash every file whole, so each file's sha256 is
given to it instead (a label's hash: distinct per file, which is all the comparison uses).

Each command runs cold (fresh cache), from cached bytecode as an installed copy does (see BYTECODE). Printed per
code version and pair: verdict, log10 p, bytes read as a share of the pair's weight bytes, HTTP requests, the
command's wall seconds (interpreter start included) and the CPU seconds (user + system, every thread; steadier than
wall seconds on a shared machine) and the comparison's own seconds, each as min / median over the repeats; then
whether old and new gave the same verdict, p-value, score and evidence.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench" / "speed")]

from common import add_old_argument, machine_load, sides, spread  # noqa: E402
from servers.hub import HubServer  # noqa: E402

from scanner.provenance.model import token_stream  # noqa: E402

ROWS_WRITTEN = 1024  # token ids (of the sampled order) whose rows hold values; a comparison reads at most 512


@dataclass(frozen=True)
class Shape:
    hidden: int
    layers: int
    vocab: int
    inter: int
    kv: int  # width of k_proj / v_proj outputs (grouped-query attention)
    shards: int


SHAPES = {
    # meta-llama/Meta-Llama-3-8B config.json: hidden_size 4096, num_hidden_layers 32, vocab_size 128256,
    # intermediate_size 14336, num_key_value_heads 8 of 32 heads (k/v width 1024); 4 safetensors shards.
    "llama3-8b": Shape(4096, 32, 128256, 14336, 1024, 4),
    # meta-llama/Llama-2-13b-hf config.json: hidden_size 5120, num_hidden_layers 40, vocab_size 32000,
    # intermediate_size 13824, 40 heads without grouping; 3 safetensors shards.
    "llama2-13b": Shape(5120, 40, 32000, 13824, 5120, 3),
}
MODELS = {"upstream/base": (1, None), "mallory/copy": (1, "disguise"), "indie/other": (2, None)}


def tensor_plan(s: Shape) -> list[tuple[str, tuple[int, ...]]]:
    plan: list[tuple[str, tuple[int, ...]]] = [("model.embed_tokens.weight", (s.vocab, s.hidden))]
    for i in range(s.layers):
        p = f"model.layers.{i}."
        plan += [
            (p + "input_layernorm.weight", (s.hidden,)),
            (p + "self_attn.q_proj.weight", (s.hidden, s.hidden)),
            (p + "self_attn.k_proj.weight", (s.kv, s.hidden)),
            (p + "self_attn.v_proj.weight", (s.kv, s.hidden)),
            (p + "self_attn.o_proj.weight", (s.hidden, s.hidden)),
            (p + "post_attention_layernorm.weight", (s.hidden,)),
            (p + "mlp.gate_proj.weight", (s.inter, s.hidden)),
            (p + "mlp.up_proj.weight", (s.inter, s.hidden)),
            (p + "mlp.down_proj.weight", (s.hidden, s.inter)),
        ]
    return plan + [("model.norm.weight", (s.hidden,)), ("lm_head.weight", (s.vocab, s.hidden))]


def to_bf16(x: np.ndarray) -> bytes:
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype("<u2").tobytes()  # round to nearest even


def write_model(folder: Path, shape: Shape, seed: int, how: str | None) -> int:
    """The model's shards as sparse files; returns the total weight bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    dtype, itemsize = ("F16", 2) if how == "disguise" else ("BF16", 2)
    plan = tensor_plan(shape)
    total = sum(int(np.prod(sh)) * itemsize for _, sh in plan)
    per_shard = -(-total // shape.shards)
    shards: list[list[tuple[str, tuple[int, ...]]]] = [[]]
    filled = 0
    for name, sh in plan:
        if filled >= per_shard and len(shards) < shape.shards:
            shards.append([])
            filled = 0
        shards[-1].append((name, sh))
        filled += int(np.prod(sh)) * itemsize
    perm = np.random.default_rng(3).permutation(shape.hidden)
    tokens = np.sort(token_stream(shape.vocab)[:ROWS_WRITTEN])
    weight_map, written = {}, 0
    for k, members in enumerate(shards):
        file = f"model-{k + 1:05d}-of-{len(shards):05d}.safetensors"
        header, offset = {}, 0
        for name, sh in members:
            out = name.replace("model.", "vison.") if how == "disguise" else name
            n = int(np.prod(sh)) * itemsize
            header[out] = {"dtype": dtype, "shape": list(sh), "data_offsets": [offset, offset + n]}
            weight_map[out] = file
            offset += n
        raw = json.dumps(header, separators=(",", ":")).encode()
        raw += b" " * (-len(raw) % 8)
        start = 8 + len(raw)
        with open(folder / file, "wb") as fh:
            fh.write(len(raw).to_bytes(8, "little") + raw)
            fh.truncate(start + offset)  # a hole: no disk, reads as zeros
            for i, (name, sh) in enumerate(members):
                out = name.replace("model.", "vison.") if how == "disguise" else name
                at = start + header[out]["data_offsets"][0]
                r = np.random.default_rng([seed, k, i])
                if len(sh) == 1:
                    values = 1 + 0.1 * r.standard_normal(sh, dtype=np.float32)
                    rows = [(at, values[perm] if how == "disguise" else values)]
                elif sh[0] == shape.vocab:  # a token matrix: the rows a comparison can read
                    block = r.standard_normal((len(tokens), shape.hidden), dtype=np.float32)
                    row_bytes = shape.hidden * itemsize
                    rows = [(at + int(t) * row_bytes, block[j]) for j, t in enumerate(tokens)]
                    if how == "disguise":
                        noise = np.random.default_rng([seed, k, i, 9]).standard_normal(block.shape, np.float32)
                        block = block[:, perm] + 0.05 * noise
                        rows = [(at + int(t) * row_bytes, block[j]) for j, t in enumerate(tokens)]
                else:
                    continue  # a layer matrix: never read by the comparison, left as a hole
                for pos, v in rows:
                    fh.seek(pos)
                    fh.write(v.astype("<f2").tobytes() if dtype == "F16" else to_bf16(v))
        written += start + offset
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map})
    )
    (folder / "config.json").write_text(
        json.dumps(
            {
                "model_type": "llama",
                "hidden_size": shape.hidden,
                "num_hidden_layers": shape.layers,
                "vocab_size": shape.vocab,
                "intermediate_size": shape.inter,
            }
        )
    )
    (folder / "README.md").write_text("---\nlicense: apache-2.0\n---\n")
    return total


def give_hashes(hub: HubServer, root: Path) -> None:
    """The server's hash memo, filled so that it never reads a 5 GB sparse shard whole (see the module doc)."""
    for path in sorted(root.rglob("*.safetensors")):
        st = path.stat()
        label = str(path.relative_to(root)).encode()
        hub._hash_cache[(str(path), st.st_size, st.st_mtime_ns)] = (
            hashlib.sha256(label).hexdigest(),
            hashlib.sha1(label).hexdigest(),
        )


VOLATILE = ("seconds", "bytes_read")  # may differ between versions without changing the judgement
# Commands run as an installed originscan runs: from cached bytecode, written by an untimed first command of each code
# version. Where PYTHONDONTWRITEBYTECODE is set, every command would otherwise compile originscan's own modules again
# (about 0.09 s of CPU before the first request, old and new alike), which no installed copy does.
BYTECODE = {"PYTHONDONTWRITEBYTECODE": ""}


def judgement(v: dict) -> dict:
    return {k: val for k, val in v.items() if k not in VOLATILE}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", choices=[*SHAPES, "all"], default="all")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--only", choices=["old", "new"], default=None)
    add_old_argument(ap)
    args = ap.parse_args()
    codes = [c for c in sides(args.old) if args.only in (None, c.label)]
    for name in SHAPES if args.shape == "all" else [args.shape]:
        shape = SHAPES[name]
        tmp = Path(tempfile.mkdtemp(prefix="originscan-shapes-"))
        try:
            t0 = time.perf_counter()
            sizes = {repo: write_model(tmp / "hub" / repo, shape, seed, how) for repo, (seed, how) in MODELS.items()}
            print(
                f"\n{name}: hidden {shape.hidden}, {shape.layers} layers, vocab {shape.vocab:,}, {shape.shards} "
                f"shards; {', '.join(f'{r} {s / 1e9:.2f} GB' for r, s in sizes.items())} (sparse, written in "
                f"{time.perf_counter() - t0:.1f} s)"
            )
            run_shape(tmp, codes, args.repeat)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def run_shape(tmp: Path, codes, repeat: int) -> None:
    hub_root = tmp / "hub"
    results: dict[tuple[str, str], list[dict]] = {}
    with HubServer(hub_root) as hub:
        give_hashes(hub, hub_root)
        env = {"HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_OFFLINE": "0", **BYTECODE}
        for code in codes:  # untimed: writes the bytecode the timed commands load
            cache = tempfile.mkdtemp(dir=tmp)
            code.cli("compare", "hf:mallory/copy", "hf:upstream/base", ORIGINSCAN_CACHE=cache, HF_HOME=cache, **env)
        for _ in range(repeat):
            for code in codes:  # old and new in turn, so drift in the machine's load touches both
                for suspect in ("mallory/copy", "indie/other"):
                    cache = tempfile.mkdtemp(dir=tmp)
                    hub.stats.reset()
                    before = resource.getrusage(resource.RUSAGE_CHILDREN)
                    t0 = time.perf_counter()
                    out = code.cli(
                        "compare",
                        f"hf:{suspect}",
                        "hf:upstream/base",
                        "--format",
                        "json",
                        ORIGINSCAN_CACHE=cache,
                        HF_HOME=str(Path(cache) / "hf"),
                        **env,
                    )
                    wall = time.perf_counter() - t0
                    after = resource.getrusage(resource.RUSAGE_CHILDREN)
                    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
                    if out.returncode not in (0, 1):
                        raise SystemExit(f"{code.label}: compare failed ({out.returncode}): {out.stderr[-600:]}")
                    v = json.loads(out.stdout)
                    v["_wall"], v["_cpu"], v["_requests"] = wall, cpu, hub.stats.requests
                    results.setdefault((code.label, suspect), []).append(v)
    print(f"machine: {machine_load()}")
    print(
        f"{'code':4} {'pair':22} {'verdict':12} {'log10 p':>8} {'share of bytes':>14} {'reqs':>5} "
        f"{'wall s (min / median)':>22} {'cpu s (min / median)':>21} {'compare s (min / median)':>25}"
    )
    for (label, suspect), runs in results.items():
        v = runs[0]
        print(
            f"{label:4} {suspect + ' vs base':22} {v['verdict']:12} {v['log10_p_value']:>8.2f} "
            f"{100 * v['bytes_read'] / v['weight_bytes']:>13.4f}% {statistics.median(r['_requests'] for r in runs):>5.0f} "
            f"{spread([r['_wall'] for r in runs]):>22} {spread([r['_cpu'] for r in runs]):>21} "
            f"{spread([r['seconds'] for r in runs]):>25}"
        )
    if {label for label, _ in results} == {"old", "new"}:
        for suspect in ("mallory/copy", "indie/other"):
            old = judgement(results[("old", suspect)][0])
            new = judgement(results[("new", suspect)][0])
            for k in ("_wall", "_cpu", "_requests"):
                old.pop(k), new.pop(k)
            changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
            added = [k for k in changed if k not in old]  # a field the old code did not report at all
            same = "same" if changed == added else f"DIFFERENT in {[k for k in changed if k not in added]}"
            extra = f" (new field{'s' * (len(added) > 1)} the old code lacks: {added})" if added else ""
            print(f"{suspect}: old and new judgements (verdict, p-value, score, evidence): {same}{extra}")


if __name__ == "__main__":
    main()
