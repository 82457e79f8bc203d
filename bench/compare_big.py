"""`originscan compare` on two models of over 2 GB each, local folders and through the local Hub (real
huggingface_hub client, HTTP Range), with the code before the speed work and today's, in the same run.

    .venv/bin/python bench/compare_big.py [--hidden 4096] [--vocab 32000] [--layers 4] [--inter 11008]

The three models (an upstream, a Llama3-V-style disguised copy of it: hidden axis permuted, 5 % noise, tensors
renamed; and an independent model of the same architecture) are written once to bench/.cache/big/ (gitignored,
~6.4 GB at the defaults), tensor by tensor so that no model is ever whole in memory. Prints, per code version and
pair: verdict, p-value, weight bytes read, HTTP requests and TCP connections (remote), wall and CPU seconds of the
command (interpreter start included) and the comparison's own seconds.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]

from baseline import both  # noqa: E402
from servers.hub import HubServer  # noqa: E402

BIG = ROOT / "bench" / ".cache" / "big"
MODELS = {"upstream/base": (1, None), "mallory/copy": (1, "disguise"), "indie/other": (2, None)}


def tensor_plan(d: int, vocab: int, layers: int, inter: int) -> list[tuple[str, tuple[int, ...]]]:
    plan = [("model.embed_tokens.weight", (vocab, d))]
    for i in range(layers):
        p = f"model.layers.{i}."
        plan += [(p + "input_layernorm.weight", (d,)), (p + "post_attention_layernorm.weight", (d,))]
        plan += [(p + f"self_attn.{n}_proj.weight", (d, d)) for n in "qkvo"]
        plan += [
            (p + "mlp.gate_proj.weight", (inter, d)),
            (p + "mlp.up_proj.weight", (inter, d)),
            (p + "mlp.down_proj.weight", (d, inter)),
        ]
    return plan + [("model.norm.weight", (d,)), ("lm_head.weight", (vocab, d))]


def make_tensor(seed: int, i: int, name: str, shape: tuple[int, ...], how: str | None, perm: np.ndarray):
    r = np.random.default_rng([seed, i])
    if len(shape) == 1:
        v = 1 + 0.1 * r.standard_normal(shape, dtype=np.float32)
    else:
        v = r.standard_normal(shape, dtype=np.float32) * (1.0 if ("embed" in name or "lm_head" in name) else 0.02)
    if how == "disguise":  # one permutation of the hidden axis everywhere, 5 % noise, renamed
        if v.ndim == 1:
            v = v[perm]
        elif (
            "embed" in name
            or "lm_head" in name
            or name.endswith(("q_proj.weight", "k_proj.weight", "v_proj.weight", "gate_proj.weight", "up_proj.weight"))
        ):
            v = v[:, perm]
        else:
            v = v[perm, :]
        v = v + 0.05 * float(v.std()) * np.random.default_rng([seed, i, 9]).standard_normal(v.shape, np.float32)
        name = name.replace("model.", "vison.")
    return name, v.astype(np.float16)


def write_model(folder: Path, seed: int, how: str | None, args) -> int:
    """A safetensors file written tensor by tensor (the safetensors library wants every tensor in memory)."""
    path = folder / "model.safetensors"
    if path.exists():
        return path.stat().st_size
    folder.mkdir(parents=True, exist_ok=True)
    plan = tensor_plan(args.hidden, args.vocab, args.layers, args.inter)
    perm = np.random.default_rng(3).permutation(args.hidden)
    header, offset, names = {}, 0, []
    for name, shape in plan:
        out_name = name.replace("model.", "vison.") if how == "disguise" else name
        n = int(np.prod(shape)) * 2
        header[out_name] = {"dtype": "F16", "shape": list(shape), "data_offsets": [offset, offset + n]}
        names.append(out_name)
        offset += n
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as fh:
        fh.write(len(raw).to_bytes(8, "little") + raw)
        for i, (name, shape) in enumerate(plan):
            _, v = make_tensor(seed, i, name, shape, how, perm)
            fh.write(np.ascontiguousarray(v).tobytes())
    tmp.rename(path)
    (folder / "README.md").write_text("---\nlicense: apache-2.0\n---\n")
    (folder / "config.json").write_text(
        json.dumps({"model_type": "llama", "hidden_size": args.hidden, "vocab_size": args.vocab})
    )
    return path.stat().st_size


def timed(code, *cli_args, **env):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = code.cli(*cli_args, **env)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if out.returncode != 0:
        raise SystemExit(f"{code.label}: originscan {' '.join(cli_args)} failed: {out.stderr.strip()[-400:]}")
    return json.loads(out.stdout), wall, cpu


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hidden", type=int, default=4096)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--inter", type=int, default=11008)
    ap.add_argument("--only", choices=["local", "remote"], default=None)
    args = ap.parse_args()
    hub_root = BIG / f"h{args.hidden}-v{args.vocab}-l{args.layers}-i{args.inter}"
    t0 = time.perf_counter()
    sizes = {repo: write_model(hub_root / repo, seed, how, args) for repo, (seed, how) in MODELS.items()}
    print(
        f"models: {', '.join(f'{r} {s / 1e9:.2f} GB' for r, s in sizes.items())} (hidden {args.hidden}, vocab "
        f"{args.vocab}, {args.layers} layers, fp16; ready in {time.perf_counter() - t0:.0f} s)"
    )
    codes = both()
    print(
        f"{'code':7} {'where':7} {'pair':24} {'verdict':12} {'log10 p':>8} {'weight bytes':>13} {'reqs':>5} "
        f"{'conns':>5} {'wall s':>7} {'cpu s':>6} {'compare s':>9}"
    )
    with HubServer(hub_root) as hub, tempfile.TemporaryDirectory(prefix="originscan-bench-") as tmp:
        for repo in MODELS:  # the server hashes each file once; that is the server's cost, not the client's
            hub.hashes(hub_root / repo / "model.safetensors")
        env = {"HF_ENDPOINT": hub.url, "HF_HOME": str(Path(tmp) / "hf_home"), "HF_HUB_DISABLE_TELEMETRY": "1"}
        for where in ("local", "remote"):
            if args.only and where != args.only:
                continue
            for code in codes:
                for suspect in ("mallory/copy", "indie/other"):
                    if where == "local":
                        targets = (str(hub_root / suspect), str(hub_root / "upstream/base"))
                    else:
                        targets = (f"hf:{suspect}", "hf:upstream/base")
                    hub.stats.reset()
                    cache = tempfile.mkdtemp(dir=tmp)  # every command starts cold
                    v, wall, cpu = timed(code, "compare", *targets, "--format", "json", ORIGINSCAN_CACHE=cache, **env)
                    s = hub.stats
                    remote = where == "remote"
                    print(
                        f"{code.label:7} {where:7} {suspect + ' vs base':24} {v['verdict']:12} "
                        f"{v['log10_p_value']:>8.2f} {v['bytes_read']:>13,} "
                        f"{s.requests if remote else '-':>5} {s.connections if remote else '-':>5} "
                        f"{wall:>7.2f} {cpu:>6.2f} {v['seconds']:>9.2f}",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
