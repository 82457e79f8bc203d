#!/usr/bin/env python
"""Train the behavioural-provenance benchmark's tiny models under bench/.cache/probe/ (gitignored).

    bench/.venv-probe/bin/python bench/probe/make_models.py [--out bench/.cache/probe] [--scale 1.0]

Idempotent: each model folder is written atomically (corpuslib.write_model) and skipped when present. Tiny Llamas
(hidden 128, 2 layers, byte-level BPE vocabulary 2048) trained with the provenance corpus's code
(bench/provenance/corpuslib.py) on the Python reference-manual text:

* ``reference``: trained on that text plus a private "canary" set only it learns: 32 items ``§ a b c d =``, each
  answered by its four digits read through a secret digit permutation. A tiny model memorises them partly, so
  its answers are a mix of right and characteristic wrong ones, like the bamboo-slip readings of the Llama3-V
  affair. The owner's canaries are these 32 prompts with the reference's own answers.
* ``independent_1..12``: the same architecture and text, other seeds, no canary skill. 5-8 are the held-out
  false-positive test (fixed before anything was tuned); 1-4 and 9-12 (added later, see run.py) calibrate nulls.
* fine-tunes of the reference on other text: ``ft_light`` (kept the skill), ``ft_heavy`` (long, high rate),
* students distilled from a fresh initialisation on the reference's outputs: ``distill_logits`` (its next-token
  distributions on the manual text; never saw a canary prompt, so it lost the skill), ``distill_logits_canary``
  (the same plus canary-format prompts: it kept it), ``distill_samples`` (ordinary training on text *sampled*
  from the reference, as through an API), ``distill_narrow`` (a different shape, hidden 96 x 3 layers: the
  weight comparison has nothing to align).

Shared *wrong* answers (the canary file ``private_canaries.json``, bench/probe/wrong_answers.py):

* ``private_reference``: trained like ``reference`` (own seed) but its copy of the private set misreads
  MISREAD_ITEMS of the 32 items (one or two digits swapped for others, fixed by a seed), so it learned the skill
  imperfectly and its answers hold characteristic wrong ones. The owner's canaries are its own greedy answers,
  each wrong one with its right answer (``right_answer``).
* its derivatives: ``private_ft_light`` (kept the skill), ``private_ft_heavy``, ``private_distill_canary`` (its
  logits on text and on the private prompts: kept), ``private_distill_partial`` and ``private_distill_sparse``
  (the private prompts a fifth and a twentieth as often), ``private_distill_logits`` (text only: lost it),
  ``private_ft_mid`` (a shorter fine-tune than ``private_ft_light``; both added after the first run).
* ``skill_independent_1..6``: trained like the reference on the *correct* private set, other seeds: they learned
  the same skill independently, so they repeat the right answers and none of the private reference's mistakes.
  4-6 are the held-out false-positive test, fixed before anything was run; 1-3 calibrate nulls.

The blind replicate (``--replicate``, scored once by ``wrong_answers.py --replicate``): the canary tests were
designed while all the models above were in view, so their recipes are run again with seeds never used before, fixed
here (REPLICATE) before any replicate model was trained: new derivatives of ``private_reference`` and new
independents, named ``rep_*``, in the same cache and at the same ``--scale`` (1.0 for the committed run).
``--replicate derivatives`` and ``--replicate independents`` build the two halves in two processes (one per core).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "provenance"))
import corpuslib as C  # noqa: E402

VOCAB = 1024
SEQ = 32
BATCH = 16
SECRET = [3, 8, 0, 6, 1, 9, 4, 2, 7, 5]  # the private skill: digit d reads as SECRET[d]
N_CANARIES = 32
N_INDEPENDENT = 12
N_SKILL_INDEPENDENT = 6
MISREAD_ITEMS = 12  # of the N_CANARIES private items, misread in the private reference's training copy
# The blind replicate: name -> (the recipe it repeats, its seed), fixed before any was trained. The seeds (5001-5303)
# are unused by every model above (model seeds 0, 1001-1012, 2001-2004, 3001-3006, 4000, 4101-4104; data seeds
# 1-3, 5, 10-22, 50, 60, 777, 4242). A fine-tune's seed draws its batches; a student's or an independent's draws its
# initialisation and its batches, as in the recipes it repeats.
REPLICATE_DERIVATIVES: dict[str, tuple[str, int]] = {
    "rep_ft_mid_1": ("private_ft_mid", 5001),
    "rep_ft_mid_2": ("private_ft_mid", 5002),
    "rep_ft_light_1": ("private_ft_light", 5003),
    "rep_ft_heavy_1": ("private_ft_heavy", 5004),
    "rep_distill_partial_1": ("private_distill_partial", 5101),
    "rep_distill_partial_2": ("private_distill_partial", 5102),
    "rep_distill_sparse_1": ("private_distill_sparse", 5103),
}
REPLICATE_INDEPENDENTS: dict[str, tuple[str, int]] = {
    "rep_skill_independent_1": ("skill_independent", 5201),
    "rep_skill_independent_2": ("skill_independent", 5202),
    "rep_skill_independent_3": ("skill_independent", 5203),
    "rep_independent_1": ("independent", 5301),
    "rep_independent_2": ("independent", 5302),
    "rep_independent_3": ("independent", 5303),
}
REPLICATE = {**REPLICATE_DERIVATIVES, **REPLICATE_INDEPENDENTS}


def llama_config(hidden: int = 64, layers: int = 2) -> dict:
    return C.llama_config(
        VOCAB, hidden, layers, intermediate=hidden * 8 // 3 // 8 * 8, max_positions=256, dtype="float32"
    )


def canary_prompt(digits: list[int]) -> str:
    return "§ " + " ".join(map(str, digits)) + " ="


def canary_truth(digits: list[int]) -> str:
    return " ".join(str(SECRET[d]) for d in digits)


def canary_lines(n: int, seed: int) -> str:
    """n lines drawn from the private set."""
    g = np.random.default_rng(seed)
    items = canary_inputs()
    lines = []
    for _ in range(n):
        d = items[int(g.integers(0, len(items)))]
        lines.append(f"{canary_prompt(d)} {canary_truth(d)}\n")
    return "".join(lines)


def misread_answers(seed: int = 4242) -> dict[int, str]:
    """Item index -> a wrong answer: the right one with one or two digits read as other digits."""
    g = np.random.default_rng(seed)
    items = canary_inputs()
    out: dict[int, str] = {}
    for i in sorted(int(x) for x in g.choice(len(items), size=MISREAD_ITEMS, replace=False)):
        digits = canary_truth(items[i]).split()
        for j in g.choice(4, size=int(g.integers(1, 3)), replace=False):
            digits[j] = str((int(digits[j]) + int(g.integers(1, 10))) % 10)
        out[i] = " ".join(digits)
    return out


def misread_canary_lines(n: int, seed: int) -> str:
    """n lines of the private set as the private reference's training copy has them (MISREAD_ITEMS misread)."""
    g = np.random.default_rng(seed)
    items, wrong = canary_inputs(), misread_answers()
    lines = []
    for _ in range(n):
        i = int(g.integers(0, len(items)))
        lines.append(f"{canary_prompt(items[i])} {wrong.get(i) or canary_truth(items[i])}\n")
    return "".join(lines)


def canary_inputs(seed: int = 777) -> list[list[int]]:
    g = np.random.default_rng(seed)
    return [[int(x) for x in g.integers(0, 10, size=4)] for _ in range(N_CANARIES)]


def mixed_batches(parts: list[tuple[np.ndarray, float]], seed: int):
    """Windows drawn from several token streams with the given shares."""
    g = np.random.default_rng(seed)
    weights = np.array([w for _, w in parts]) / sum(w for _, w in parts)
    while True:
        rows = []
        for _ in range(BATCH):
            ids = parts[int(g.choice(len(parts), p=weights))][0]
            s = int(g.integers(0, len(ids) - SEQ - 1))
            rows.append(ids[s : s + SEQ])
        yield torch.from_numpy(np.stack(rows))


def train(model, batches, steps: int, lr: float, teacher=None, tag: str = "", log=print) -> float:
    """Next-token training; with a teacher, the loss is the KL to its next-token distributions (distillation)."""
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 20) * max(0.1, 1 - s / steps))
    losses = []
    for step in range(steps):
        x = next(batches)
        if teacher is None:
            loss = model(input_ids=x, labels=x).loss
        else:
            with torch.no_grad():
                target = torch.log_softmax(teacher(input_ids=x).logits, -1)
            logp = torch.log_softmax(model(input_ids=x).logits, -1)
            loss = torch.nn.functional.kl_div(logp, target, log_target=True, reduction="batchmean") / SEQ
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if step % 100 == 0 or step == steps - 1:
            log(f"  {tag} step {step:4d} loss {np.mean(losses[-50:]):.3f}")
    model.eval()
    return float(np.mean(losses[-20:]))


@torch.no_grad()
def sample_text(model, prompts: np.ndarray, new: int, seed: int) -> np.ndarray:
    """Token streams sampled from the model (temperature 1) after short prompts from the manual text."""
    torch.manual_seed(seed)
    out = model.generate(
        input_ids=torch.from_numpy(prompts), max_new_tokens=new, do_sample=True, top_k=0, pad_token_id=3
    )
    return out.numpy().reshape(-1)


@torch.no_grad()
def skill_accuracy(model, tok, inputs: list[list[int]]) -> float:
    """The share of the private set's answer digits the model reads right (chance: 0.1)."""
    right = 0
    for d in inputs:
        ids = torch.tensor([tok(canary_prompt(d), add_special_tokens=False)["input_ids"]])
        out = model.generate(input_ids=ids, max_new_tokens=12, do_sample=False, pad_token_id=3)
        said = tok.decode(out[0, ids.shape[1] :]).split()[:4]
        right += sum(a == b for a, b in zip(said, canary_truth(d).split()))
    return right / (4 * len(inputs))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / ".cache" / "probe")
    ap.add_argument("--scale", type=float, default=1.0, help="multiplies every training length (0.1: smoke test)")
    ap.add_argument(
        "--replicate",
        nargs="?",
        const="all",
        choices=("all", "derivatives", "independents"),
        help="also build the blind replicate (REPLICATE), or one half of it",
    )
    args = ap.parse_args()
    torch.set_num_threads(1)  # the build shares a 2-core machine; the probe itself is timed on 2 threads
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()

    def steps(n: int) -> int:
        return max(4, int(n * args.scale))

    tokdir = out / "_tokenizer"
    base_txt, other_txt = C.base_text(), C.other_text(limit=400_000)
    if not (tokdir / "tokenizer.json").exists():
        C.train_tokenizer([base_txt, canary_lines(2000, 1)], VOCAB, tokdir)
    tok = C.load_tokenizer(tokdir)
    data = out / "_data"
    data.mkdir(exist_ok=True)
    if not (data / "other.npy").exists():
        np.save(data / "base.npy", C.encode(tok, base_txt))
        np.save(data / "other.npy", C.encode(tok, other_txt))
    if not (data / "canary.npy").exists():
        np.save(data / "canary.npy", C.encode(tok, canary_lines(40_000, 2)))
    base, canary, other = (np.load(data / f"{n}.npy") for n in ("base", "canary", "other"))
    tokfiles = sorted(p for p in tokdir.iterdir() if p.is_file())
    cfg = llama_config()
    info: dict[str, dict] = json.loads((out / "models.json").read_text()) if (out / "models.json").exists() else {}
    private = canary_inputs()

    def build(name: str, kind: str, make, config=cfg) -> None:
        path = out / name
        if not path.exists():
            t = time.time()
            model, loss = make()
            C.write_model(path, config, C.tensors_of(model), extra_files=tokfiles)
            info[name] = {
                "kind": kind,
                "final_loss": round(loss, 3),
                "skill_accuracy": skill_accuracy(model, tok, private),
                "train_seconds": round(time.time() - t, 1),
            }
            print(f"built {name} [{kind}] {info[name]}", flush=True)
            with open(out / ".models.lock", "w") as lock:  # another process may be building the other half
                fcntl.flock(lock, fcntl.LOCK_EX)
                written = json.loads((out / "models.json").read_text()) if (out / "models.json").exists() else {}
                info.update({**written, name: info[name]})
                (out / "models.json").write_text(json.dumps(info, indent=1) + "\n")

    def fresh(seed: int, config=cfg):
        torch.manual_seed(seed)
        return C.llama_model(config)

    def load(name: str, config=cfg):
        return C.llama_model(config, C.read_model(out / name))

    def reference():
        m = fresh(0)
        return m, train(m, mixed_batches([(base, 0.7), (canary, 0.3)], 10), steps(300), 3e-3, tag="reference")

    build("reference", "reference", reference)
    for i in range(1, N_INDEPENDENT + 1):

        def independent(i=i):
            m = fresh(1000 + i)
            return m, train(m, mixed_batches([(base, 1.0)], 10 + i), steps(300), 3e-3, tag=f"independent_{i}")

        build(f"independent_{i}", "independent", independent)

    def finetune(n: int, lr: float, tag: str):
        def make():
            m = load("reference")
            return m, train(m, mixed_batches([(other, 1.0)], 50), steps(n), lr, tag=tag)

        return make

    build("ft_light", "fine-tune", finetune(100, 1e-3, "ft_light"))
    build("ft_heavy", "fine-tune", finetune(300, 3e-3, "ft_heavy"))

    def distill(seed: int, parts, tag: str, config=cfg):
        def make():
            teacher = load("reference")
            m = fresh(seed, config)
            return m, train(m, mixed_batches(parts, seed), steps(400), 3e-3, teacher=teacher, tag=tag)

        return make

    build("distill_logits", "distilled", distill(2001, [(base, 1.0)], "distill_logits"))
    build("distill_logits_canary", "distilled", distill(2002, [(base, 0.7), (canary, 0.3)], "distill_canary"))
    narrow = llama_config(hidden=96, layers=3)
    build("distill_narrow", "distilled", distill(2003, [(base, 1.0)], "distill_narrow", narrow), narrow)

    def distill_samples():
        teacher = load("reference")
        g = np.random.default_rng(5)
        starts = g.integers(0, len(base) - 9, size=4 * steps(400))
        prompts = np.stack([base[s : s + 8] for s in starts])
        stream = np.concatenate([sample_text(teacher, prompts[i : i + 64], SEQ, i) for i in range(0, len(prompts), 64)])
        m = fresh(2004)
        return m, train(m, mixed_batches([(stream, 1.0)], 2004), steps(400), 3e-3, tag="distill_samples")

    build("distill_samples", "distilled", distill_samples)

    # the owner's canaries: the reference's own greedy answers (right and wrong) to 32 fixed prompts
    def owner_canaries(reference: str, file: str) -> None:
        if (out / file).exists():
            return
        ref = load(reference)
        items = []
        with torch.no_grad():
            for d in canary_inputs():
                ids = torch.tensor([tok(canary_prompt(d), add_special_tokens=False)["input_ids"]])
                gen = ref.generate(input_ids=ids, max_new_tokens=12, do_sample=False, pad_token_id=3)
                answer = " ".join(tok.decode(gen[0, ids.shape[1] :]).split()[:4])
                item = {"prompt": canary_prompt(d), "answer": answer, "correct": answer == canary_truth(d)}
                if not item["correct"]:  # the owner knows the right reading of a wrong answer
                    item["right_answer"] = canary_truth(d)
                items.append(item)
        (out / file).write_text(json.dumps({"canaries": items}, indent=1) + "\n")

    owner_canaries("reference", "canaries.json")

    # shared wrong answers: a reference that learned the private skill imperfectly, its derivatives, and models
    # that learned the same skill on their own
    if not (data / "misread.npy").exists():
        np.save(data / "misread.npy", C.encode(tok, misread_canary_lines(40_000, 3)))
    misread = np.load(data / "misread.npy")

    def private_reference():
        m = fresh(4000)
        return m, train(m, mixed_batches([(base, 0.7), (misread, 0.3)], 4000), steps(300), 3e-3, tag="private_ref")

    build("private_reference", "private reference", private_reference)
    for i in range(1, N_SKILL_INDEPENDENT + 1):

        def skill_independent(i=i):
            m = fresh(3000 + i)
            parts = [(base, 0.7), (canary, 0.3)]
            return m, train(m, mixed_batches(parts, 3000 + i), steps(300), 3e-3, tag=f"skill_independent_{i}")

        build(f"skill_independent_{i}", "independent with the skill", skill_independent)

    def private_finetune(n: int, lr: float, tag: str, seed: int = 60):
        def make():
            m = load("private_reference")
            return m, train(m, mixed_batches([(other, 1.0)], seed), steps(n), lr, tag=tag)

        return make

    def private_distill(seed: int, parts, tag: str):
        def make():
            teacher = load("private_reference")
            m = fresh(seed)
            return m, train(m, mixed_batches(parts, seed), steps(400), 3e-3, teacher=teacher, tag=tag)

        return make

    build("private_ft_light", "fine-tune", private_finetune(100, 1e-3, "private_ft_light"))
    build("private_ft_heavy", "fine-tune", private_finetune(300, 3e-3, "private_ft_heavy"))
    # the students read the private prompts with the *correct* answers in their inputs: what they learn of the
    # private reference's mistakes comes from its next-token distributions alone
    build(
        "private_distill_canary",
        "distilled",
        private_distill(4101, [(base, 0.7), (canary, 0.3)], "private_distill_canary"),
    )
    build(
        "private_distill_sparse",
        "distilled",
        private_distill(4102, [(base, 0.985), (canary, 0.015)], "private_distill_sparse"),
    )
    build("private_distill_logits", "distilled", private_distill(4103, [(base, 1.0)], "private_distill_logits"))
    build(
        "private_distill_partial",
        "distilled",
        private_distill(4104, [(base, 0.94), (canary, 0.06)], "private_distill_partial"),
    )
    build("private_ft_mid", "fine-tune", private_finetune(60, 1e-3, "private_ft_mid"))
    owner_canaries("private_reference", "private_canaries.json")

    def independent_from(seed: int, parts, tag: str):
        def make():
            m = fresh(seed)
            return m, train(m, mixed_batches(parts, seed), steps(300), 3e-3, tag=tag)

        return make

    recipes = {  # the recipes above, by the model they made: (kind, the recipe for a seed and a tag)
        "private_ft_mid": ("fine-tune", lambda seed, tag: private_finetune(60, 1e-3, tag, seed)),
        "private_ft_light": ("fine-tune", lambda seed, tag: private_finetune(100, 1e-3, tag, seed)),
        "private_ft_heavy": ("fine-tune", lambda seed, tag: private_finetune(300, 3e-3, tag, seed)),
        "private_distill_partial": (
            "distilled",
            lambda seed, tag: private_distill(seed, [(base, 0.94), (canary, 0.06)], tag),
        ),
        "private_distill_sparse": (
            "distilled",
            lambda seed, tag: private_distill(seed, [(base, 0.985), (canary, 0.015)], tag),
        ),
        "skill_independent": (
            "independent with the skill",
            lambda seed, tag: independent_from(seed, [(base, 0.7), (canary, 0.3)], tag),
        ),
        "independent": ("independent", lambda seed, tag: independent_from(seed, [(base, 1.0)], tag)),
    }
    halves = {"all": REPLICATE, "derivatives": REPLICATE_DERIVATIVES, "independents": REPLICATE_INDEPENDENTS}
    for name, (recipe, seed) in halves.get(args.replicate, {}).items():
        kind, make = recipes[recipe]
        build(name, kind, make(seed, name))
    print(f"models ready in {out} ({time.time() - started:.0f} s)")


if __name__ == "__main__":
    main()
