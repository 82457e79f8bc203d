"""`originscan watch` on a local Hub of thousands of repos, run as users run it (the CLI in a subprocess).

    .venv/bin/python bench/watch/run.py [--repos 5000] [--workers 4] [--changed 0.02]

The Hub (generated once under bench/.cache/watch/, gitignored; the local Hub server with the Hub's
`list_models(sort="lastModified", expand=…)` listing, tests/servers/hub_listing.py):
  * 3 watched models, registered with the index (not timed): A hidden 128 / vocab 2048, B 96 / 1536, C 64 / 1024;
  * 20 planted derivatives: renamed and re-sharded, noised, hidden axis permuted (+ renamed + noise), fine-tuned,
    re-typed, merged with an independent model, vocabulary extended, a layer pruned, exact copy, GGUF (Q8_0, Q4_0,
    F16), MLX 4-bit safetensors; 2 of them declare their base on the card (must be reported as declared);
  * 50 independent models of the watched shapes (different seeds, same config);
  * the rest assorted: safetensors of other widths and architectures with a config.json (60 %), without one
    (10 %), GGUF of other widths (5 %), pickle-only repos (15 %), repos without weights (10 %).
Runs, each a fresh `originscan watch` process against the same server:
  cold      empty state: the whole listing
  warm      again, nothing changed
  nightly   after --changed of the repos (2 %) were pushed again (a README line, so a new sha)
  resume    empty state, stopped by --budget after about a third of the cold run's requests, then run again
The server counts every request and every weight byte it sent, per repo; the state database says at which test
each repo was ruled out.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from gguf import GGMLQuantizationType as Q  # noqa: E402
from ggufs import write_gguf  # noqa: E402
from helpers import pickle_global, torch_zip  # noqa: E402
from quantizers import mlx_model  # noqa: E402
from safetensors.numpy import save_file  # noqa: E402
from servers.hub_listing import ListingHubServer  # noqa: E402
from synthetic import add_noise, base_model, permute_residual  # noqa: E402

T0 = 1_780_000_000
WATCHED = {
    "A": ("owner-a/model-a", dict(d=128, vocab=2048, layers=2, inter=256)),
    "B": ("owner-b/model-b", dict(d=96, vocab=1536, layers=2, inter=192)),
    "C": ("owner-c/model-c", dict(d=64, vocab=1024, layers=2, inter=128)),
}
OTHER_WIDTHS = [32, 40, 48, 56, 72, 80, 88, 104, 112, 120, 136, 144, 160, 176, 192, 200]
ARCHS = [
    ("BertModel", "bert"),
    ("GPT2LMHeadModel", "gpt2"),
    ("MistralForCausalLM", "mistral"),
    ("Qwen2ForCausalLM", "qwen2"),
    ("T5ForConditionalGeneration", "t5"),
    ("LlamaForCausalLM", "llama"),
]


def _card(meta: dict) -> str:
    lines = ["---"] + [f"{k}: {v}" for k, v in meta.items()] + ["---", "", "# a model", ""]
    return "\n".join(lines)


def _config(shape: dict, arch=("LlamaForCausalLM", "llama")) -> str:
    return json.dumps(
        {
            "architectures": [arch[0]],
            "model_type": arch[1],
            "hidden_size": shape["d"],
            "vocab_size": shape["vocab"],
            "num_hidden_layers": shape.get("layers", 1),
        }
    )


def _rename(t: dict, old: str = "model.", new: str = "backbone.") -> dict:
    return {k.replace(old, new): v for k, v in t.items()}


def _merge(a: dict, b: dict, w: float) -> dict:
    return {k: (w * a[k] + (1 - w) * b[k]).astype(np.float32) for k in a}


def _fine_tune(t: dict, seed: int) -> dict:
    out = add_noise(t, 0.02, seed)
    return {
        k: (v + 0.1 * v.std() * np.random.default_rng(seed + 1).normal(size=v.shape)).astype(np.float32)
        if ".layers.1." in k
        else v
        for k, v in out.items()
    }


def _extend_vocab(t: dict, extra: int, seed: int) -> dict:
    r = np.random.default_rng(seed)
    out = dict(t)
    for k in ("model.embed_tokens.weight", "lm_head.weight"):
        out[k] = np.concatenate([t[k], r.normal(0, 1, (extra, t[k].shape[1])).astype(np.float32)])
    return out


def _prune_layer(t: dict, layer: int) -> dict:
    return {k: v for k, v in t.items() if f".layers.{layer}." not in k}


def planted(bases: dict[str, dict], twins: dict[str, dict]) -> list[tuple[str, str, str, dict]]:
    """(repo id, watched key, kind, spec): spec has tensors or a GGUF type, and card metadata."""
    a, b, c = bases["A"], bases["B"], bases["C"]
    mit = {"license": "mit"}
    return [
        ("copycat/a-renamed-resharded", "A", "rename+reshard", {"shards": _rename(a), **mit}),
        ("copycat/a-noised", "A", "noise 5 %", {"tensors": add_noise(a, 0.05, 1), "config": True, **mit}),
        (
            "copycat/a-disguised",
            "A",
            "permute+rename+noise",
            {"tensors": _rename(add_noise(permute_residual(a), 0.01, 2), "model.", "vison.")},
        ),
        ("copycat/a-finetune", "A", "fine-tune", {"tensors": _fine_tune(a, 3), "config": True}),
        ("copycat/a-GGUF", "A", "GGUF Q8_0", {"gguf": Q.Q8_0, "source": a}),
        (
            "copycat/a-retyped",
            "A",
            "fp16 + rename",
            {"tensors": {k: v.astype(np.float16) for k, v in _rename(a, "model.", "m.").items()}},
        ),
        ("copycat/a-merge", "A", "merge 0.5/0.5", {"tensors": _merge(a, twins["A"], 0.5), "config": True}),
        ("copycat/b-exact", "B", "exact copy", {"tensors": b, "config": True}),
        ("copycat/b-GGUF", "B", "GGUF Q4_0", {"gguf": Q.Q4_0, "source": b}),
        ("copycat/b-vocab-extended", "B", "vocab +64", {"tensors": _extend_vocab(b, 64, 4), "config": True}),
        ("copycat/b-pruned", "B", "layer pruned + noise", {"tensors": add_noise(_prune_layer(b, 1), 0.01, 5)}),
        (
            "copycat/b-disguised",
            "B",
            "permute+rename+noise",
            {"tensors": _rename(add_noise(permute_residual(b, 7), 0.02, 6))},
        ),
        ("copycat/b-merge", "B", "merge 0.7/0.3", {"tensors": _merge(b, twins["B"], 0.7), "config": True}),
        (
            "friendly/b-finetune",
            "B",
            "declared fine-tune",
            {"tensors": _fine_tune(b, 8), "config": True, "base_model": WATCHED["B"][0]},
        ),
        (
            "copycat/c-disguised",
            "C",
            "permute+rename+noise",
            {"tensors": _rename(add_noise(permute_residual(c, 9), 0.02, 9))},
        ),
        ("copycat/c-noised", "C", "noise 10 %", {"tensors": add_noise(c, 0.10, 10), "config": True}),
        ("copycat/c-GGUF-F16", "C", "GGUF F16", {"gguf": Q.F16, "source": c}),
        (
            "copycat/c-mlx-4bit",
            "C",
            "MLX 4-bit + rename",
            {"tensors": mlx_model(_rename(c, "model.", "llm.")), "config": True},
        ),
        ("copycat/c-finetune", "C", "fine-tune", {"tensors": _fine_tune(c, 11), "config": True}),
        (
            "friendly/c-quantized",
            "C",
            "declared GGUF Q8_0",
            {"gguf": Q.Q8_0, "source": c, "base_model": WATCHED["C"][0]},
        ),
    ]


def _write_repo(
    root: Path,
    repo: str,
    when: float,
    *,
    tensors=None,
    shards=None,
    gguf=None,
    source=None,
    config=None,
    card=None,
    files=None,
) -> None:
    d = root / repo
    d.mkdir(parents=True, exist_ok=True)
    if tensors is not None:
        save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(d / "model.safetensors"))
    if shards is not None:
        names = sorted(shards)
        half = len(names) // 2
        for i, part in enumerate((names[:half], names[half:])):
            save_file(
                {k: np.ascontiguousarray(shards[k]) for k in part}, str(d / f"model-{i + 1:05d}-of-00002.safetensors")
            )
    if gguf is not None:
        write_gguf(d / f"model-{gguf.name}.gguf", source, gguf)
    if config is not None:
        (d / "config.json").write_text(config)
    (d / "README.md").write_text(_card(card or {"license": "apache-2.0"}))
    for rel, data in (files or {}).items():
        (d / rel).write_bytes(data)
    for p in d.iterdir():
        os.utime(p, (when, when))


def generate(root: Path, repos: int) -> dict:
    marker = root / f".complete-{repos}.json"
    if marker.exists():
        return json.loads(marker.read_text())
    hub = root / "hub"
    bases = {k: base_model(10 + i, **shape) for i, (k, (_, shape)) in enumerate(WATCHED.items())}
    twins = {k: base_model(500 + i, **WATCHED[k][1]) for i, k in enumerate(WATCHED)}
    rng = np.random.default_rng(0)
    plants = planted(bases, twins)
    rest = repos - len(WATCHED) - len(plants) - 50
    slots = rng.permutation(repos)  # lastModified order: plants and independents spread through the listing
    when = iter(T0 + float(s) * 10 for s in slots)
    for k, (repo, shape) in WATCHED.items():
        _write_repo(hub, repo, next(when), tensors=bases[k], config=_config(shape))
    truth = {"planted": {}, "independent": [], "watched": {k: v[0] for k, v in WATCHED.items()}}
    for repo, key, kind, spec in plants:
        card = {"license": "mit"}
        if spec.get("base_model"):
            card["base_model"] = spec["base_model"]
        shape = WATCHED[key][1]
        _write_repo(
            hub,
            repo,
            next(when),
            tensors=spec.get("tensors"),
            shards=spec.get("shards"),
            gguf=spec.get("gguf"),
            source=spec.get("source"),
            card=card,
            config=_config(shape) if spec.get("config") else None,
        )
        truth["planted"][repo] = {"watched": WATCHED[key][0], "kind": kind, "declared": bool(spec.get("base_model"))}
    keys = list(WATCHED)
    for i in range(50):
        k = keys[i % 3]
        repo = f"indie-{i % 7}/same-arch-{i:02d}"
        _write_repo(hub, repo, next(when), tensors=base_model(1000 + i, **WATCHED[k][1]), config=_config(WATCHED[k][1]))
        truth["independent"].append(repo)
    pickle_bin = torch_zip(pickle_global("collections", "OrderedDict"))
    for i in range(rest):
        kind = i % 20
        d = OTHER_WIDTHS[i % len(OTHER_WIDTHS)]
        vocab = 256 + 64 * (i % 5)
        repo = f"org-{i % 97:02d}/model-{i:05d}"
        r = np.random.default_rng(10_000 + i)
        arch = ARCHS[i % len(ARCHS)]
        small = {
            "embeddings.word_embeddings.weight": r.normal(0, 1, (vocab, d)).astype(np.float16),
            "encoder.layer.0.ln.weight": (1 + 0.1 * r.normal(size=d)).astype(np.float16),
            "encoder.layer.1.ln.weight": (1 + 0.1 * r.normal(size=d)).astype(np.float16),
            "encoder.layer.0.attn.q.weight": r.normal(0, 0.1, (d, d)).astype(np.float16),
        }
        shape = {"d": d, "vocab": vocab}
        if kind < 12:
            _write_repo(hub, repo, next(when), tensors=small, config=_config(shape, arch))
        elif kind < 14:
            _write_repo(hub, repo, next(when), tensors=small)
        elif kind < 15:
            g = base_model(
                20_000 + i,
                d=OTHER_WIDTHS[i % 8] if OTHER_WIDTHS[i % 8] % 32 == 0 else 160,
                vocab=256,
                layers=1,
                inter=64,
            )
            _write_repo(hub, repo, next(when), gguf=Q.Q8_0, source=g)
        elif kind < 18:
            _write_repo(hub, repo, next(when), config=_config(shape, arch), files={"pytorch_model.bin": pickle_bin})
        else:
            _write_repo(hub, repo, next(when), files={"notes.txt": b"evaluation notes\n"})
    marker.write_text(json.dumps(truth))
    return truth


# -- measuring -----------------------------------------------------------------------------------------------------
def _repo_of(path: str) -> str | None:
    p = path.split("?", 1)[0]
    if p.startswith("/api/models/"):
        parts = p.split("/")
        return "/".join(parts[3:5]) if len(parts) >= 5 else None
    parts = p.split("/")
    return "/".join(parts[1:3]) if len(parts) > 3 and parts[3] == "resolve" else None


class Meter:
    """Per-repo requests and weight bytes as the server counted them."""

    def __init__(self, server: ListingHubServer):
        self.server = server
        self.bytes: dict[str, int] = defaultdict(int)
        served = server.stats.served

        def counting(path: str, n: int, weight: bool) -> None:
            served(path, n, weight)
            if weight:
                self.bytes[_repo_of(path) or "?"] += n

        server.stats.served = counting

    def reset(self) -> None:
        self.server.stats.reset()
        self.bytes.clear()

    def requests(self) -> tuple[int, dict[str, int]]:
        per: dict[str, int] = defaultdict(int)
        listing = 0
        for _, path, _ in self.server.stats.log:
            repo = _repo_of(path)
            if repo is None:
                listing += path.startswith("/api/models?")
            else:
                per[repo] += 1
        return listing, per


def watch(
    env: dict, index: Path, state: Path, out: Path, workers: int, budget: int = 10**7, tree: Path = ROOT
) -> float:
    """One `originscan watch` run of the code in `tree` (this checkout, or --old's worktree)."""
    env = {**env, "ORIGINSCAN_CACHE": str(out) + ".cache"}  # every run starts with an empty cache, as in CI
    env["PYTHONPATH"] = str(tree)
    cmd = [
        sys.executable,
        "-m",
        "scanner.cli",
        "watch",
        "--index",
        str(index),
        "--state",
        str(state),
        "--format",
        "json",
        "-o",
        str(out),
        "--workers",
        str(workers),
        "--budget",
        str(budget),
    ]
    t = time.perf_counter()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=tree)
    wall = time.perf_counter() - t
    if r.returncode not in (0, 1):
        sys.exit(f"watch failed ({r.returncode}): {r.stderr[-2000:]}")
    return wall


def summarise(
    name: str, wall: float, doc: dict, meter: Meter, state: Path, truth: dict, only: set[str] | None = None
) -> dict:
    listing, per = meter.requests()
    with sqlite3.connect(state) as db:
        stage = dict(db.execute("SELECT repo, stage FROM seen"))
    found = {s["repo"]: s for s in doc["suspects"]}
    planted = truth["planted"]
    expect = set(planted) if only is None else set(planted) & only
    recall = sum(1 for r in expect if r in found and found[r]["watched"] == planted[r]["watched"])
    fp = sorted(r for r in found if r not in planted)
    wrong_status = sorted(r for r in found if r in planted and found[r]["declared"] != planted[r]["declared"])
    judged = list(stage) if only is None else [r for r in only if r in stage]
    by_stage: dict[str, list[str]] = defaultdict(list)
    for r in judged:
        by_stage[stage[r] + (" (planted)" if stage[r] == "rows" and r in planted else "")].append(r)
    listed = doc["stats"]["listed"]
    row = {
        "run": name,
        "wall_s": round(wall, 2),
        "requests": doc["stats"]["requests"],
        "server_requests": listing + sum(per.values()),
        "listing_requests": listing,
        "listed": listed,
        "judged": doc["stats"]["evaluated"],
        "found": f"{recall}/{len(expect)}",
        "false_positives": fp,
        "declared_wrong": wrong_status,
        "weight_bytes": sum(meter.bytes.values()),
        "complete": doc["complete"],
        "stopped": doc["stopped"],
        "stages": {},
    }
    for st, repos in sorted(by_stage.items()):
        reqs = [per.get(r, 0) for r in repos]
        wb = [meter.bytes.get(r, 0) for r in repos]
        row["stages"][st] = {
            "repos": len(repos),
            "requests_per_repo_mean": round(float(np.mean(reqs)), 2),
            "requests_per_repo_max": int(max(reqs)),
            "weight_bytes_per_repo_mean": int(np.mean(wb)),
            "weight_bytes_per_repo_max": int(max(wb)),
        }
    # Same-width repos, by what they are: screened-out independents, and planted safetensors / GGUF derivatives
    groups = {
        "independent": [r for r in truth["independent"] if only is None or r in only],
        "planted safetensors": [r for r, p in planted.items() if "gguf" not in p["kind"].lower()],
        "planted gguf": [r for r, p in planted.items() if "gguf" in p["kind"].lower()],
    }
    row["same_width"] = {
        g: {"repos": len(rs), "requests_mean": round(float(np.mean([per.get(r, 0) for r in rs])), 1),
            "requests_max": max(per.get(r, 0) for r in rs)}
        for g, rs in groups.items() if rs
    }  # fmt: skip
    row["listing_requests_per_repo"] = round(listing / max(1, listed), 4)
    paths = meter.server.stats.paths()  # the Hub's rate-limit buckets: API calls and resolver (file) requests
    row["api_requests"] = sum(1 for p in paths if p.startswith("/api/"))
    row["resolver_requests"] = sum(1 for p in paths if "/resolve/" in p)
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repos", type=int, default=5000)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--changed", type=float, default=0.02)
    ap.add_argument("--old", type=Path, default=None, help="also run the cold watch with the code of this worktree")
    args = ap.parse_args()
    cache = ROOT / "bench" / ".cache" / "watch" / str(args.repos)
    cache.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    truth = generate(cache, args.repos)
    print(f"hub: {args.repos} repos under {cache} ({time.perf_counter() - t:.1f} s to generate or load)", flush=True)
    server = ListingHubServer(cache / "hub").start()
    meter = Meter(server)
    tmp = Path(tempfile.mkdtemp(prefix="bench-watch-"))
    env = {
        **os.environ,
        "HF_ENDPOINT": server.url,
        "HF_HOME": str(tmp / "hf_home"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "ORIGINSCAN_CACHE": str(tmp / "cache"),
        "OPENBLAS_NUM_THREADS": "1",
    }
    env.pop("HF_TOKEN", None)
    os.environ.update({k: env[k] for k in ("HF_ENDPOINT", "HF_HOME", "ORIGINSCAN_CACHE")})
    from scanner.pipeline import open_snapshot
    from scanner.provenance.index import Index
    from scanner.provenance.views import open_model

    index = Index(tmp / "index.sqlite")
    for repo in truth["watched"].values():
        snap = open_snapshot(f"hf:{repo}")
        model = open_model(snap)
        index.add(repo, model, "apache-2.0", f"hf:{repo}", snap.revision)
        model.close()
    index.close()
    server.order()  # the server hashes every file once (the real Hub has these precomputed)
    for r in server.repo_ids():
        server.commit(server.repo(r))
    rows = []
    if args.old:  # the old code's cold run first, on the same server and index
        meter.reset()
        wall = watch(env, tmp / "index.sqlite", tmp / "old.sqlite", tmp / "old.json", args.workers, tree=args.old)
        rows.append(
            summarise(
                "cold (old code)", wall, json.loads((tmp / "old.json").read_text()), meter, tmp / "old.sqlite", truth
            )
        )
    meter.reset()
    state = tmp / "state.sqlite"
    wall = watch(env, tmp / "index.sqlite", state, tmp / "cold.json", args.workers)
    rows.append(summarise("cold", wall, json.loads((tmp / "cold.json").read_text()), meter, state, truth))
    meter.reset()
    wall = watch(env, tmp / "index.sqlite", state, tmp / "warm.json", args.workers)
    rows.append(
        summarise(
            "warm (nothing changed)", wall, json.loads((tmp / "warm.json").read_text()), meter, state, truth, only=set()
        )
    )
    # 2 % pushed again: a README line changes the sha; the newest lastModified
    rng = np.random.default_rng(1)
    candidates = [r for r in server.repo_ids() if r not in set(truth["watched"].values())]
    changed = set(rng.choice(candidates, size=int(args.changed * args.repos), replace=False).tolist())
    now = time.time()
    for r in changed:
        p = server.root / r / "README.md"
        p.write_text(p.read_text() + f"\nupdated {now}\n")
    for r in changed:
        server.commit(server.repo(r))
    meter.reset()
    wall = watch(env, tmp / "index.sqlite", state, tmp / "nightly.json", args.workers)
    rows.append(
        summarise(
            f"nightly ({len(changed)} changed)",
            wall,
            json.loads((tmp / "nightly.json").read_text()),
            meter,
            state,
            truth,
            only=changed,
        )
    )
    # a budget stop, then the resumed run
    cold_requests = next(r["requests"] for r in rows if r["run"] == "cold")  # the new code's cold run
    meter.reset()
    state2 = tmp / "state2.sqlite"
    wall1 = watch(env, tmp / "index.sqlite", state2, tmp / "stop.json", args.workers, budget=cold_requests // 3)
    stop = json.loads((tmp / "stop.json").read_text())
    listing1, per1 = meter.requests()  # what the server answered in the stopped run: at most the budget
    budget_line = (
        f"budget {cold_requests // 3}: the stopped run sent {stop['stats']['requests']} requests "
        f"(server counted {listing1 + sum(per1.values())}), stopped: {stop['stopped']}"
    )
    wall2 = watch(env, tmp / "index.sqlite", state2, tmp / "resume.json", args.workers)
    resumed = json.loads((tmp / "resume.json").read_text())
    both = {**resumed, "suspects": stop["suspects"] + resumed["suspects"]}
    both["stats"] = {
        **resumed["stats"],
        "requests": stop["stats"]["requests"] + resumed["stats"]["requests"],
        "evaluated": stop["stats"]["evaluated"] + resumed["stats"]["evaluated"],
    }
    row = summarise("budget stop + resume", wall1 + wall2, both, meter, state2, truth)
    row["stopped"] = stop["stopped"]
    row["first_run_complete"] = stop["complete"]
    rows.append(row)
    server.stop()
    print(json.dumps(rows, indent=1))
    print(budget_line)
    for r in rows:
        print(
            f"{r['run']:<26} wall {r['wall_s']:>6.1f} s  requests {r['requests']:>6}  found {r['found']:>6}  "
            f"FP {len(r['false_positives'])}  weight bytes {r['weight_bytes']:,}  judged {r['judged']}  "
            f"complete {r['complete']}"
        )
        for g, s in r["same_width"].items():
            print(
                f"    same width, {g:<20} {s['repos']:>3} repos: requests per repo mean {s['requests_mean']}, max {s['requests_max']}"
            )


if __name__ == "__main__":
    main()
