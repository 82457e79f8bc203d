"""`originscan probe`: run the models and measure their behaviour (the optional extra originscan[probe]).

Models load through `transformers` with trust_remote_code=False and safetensors only: no code a repository ships
runs, nothing is unpickled. Each model reads the same probe texts; from one forward pass we keep its top-1
next-token guesses and its mean-pooled last hidden state per text, and its greedy answers to the canaries. The
statistics live in scanner/provenance/behaviour.py (numpy only, tested without torch).

Which tests run depends on the model:
* causal language models (safetensors, or GGUF through transformers' GGUF loader): all three.
* GGUF through llama.cpp (scanner/provenance/probe_llamacpp.py): all three, from llama.cpp's logits and its
  mean-pooled embeddings (scanner/provenance/probe_gguf.py says what each GGUF runtime runs).
* encoders (BERT-like models transformers knows, e.g. sentence-transformers checkpoints, and checkpoints saved as
  a bare base model without a head, e.g. EmbeddingGemma): hidden-state CKA, judged only against independent models
  at least as good at telling the halves of the probe texts apart (text_halves_auc), and, at the same width, the
  aligned-dimensions test; the texts are read with the encoder's own special tokens; they predict no next token
  and answer no canary.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from scanner.errors import UsageError
from scanner.provenance import behaviour as B
from scanner.provenance.canaries import Canary

INSTALL_HINT = "probe needs torch and transformers: install originscan[probe]"


@dataclass(frozen=True)
class ProbeSettings:
    sequences: int = 64  # probe texts
    tokens: int = 64  # tokens read of each
    chars: int = 600  # characters cut for each text (enough for `tokens` tokens in any tokenizer we know)
    batch: int = 8


@dataclass(frozen=True)
class Behaviour:
    """One model's measured behaviour on the probe set."""

    target: str
    tokens: np.ndarray  # sequences x tokens, its own tokenisation of the probe texts (-1: padding)
    guesses: np.ndarray  # sequences x tokens, its top-1 guess of the token after each position (-1: padding)
    pooled: np.ndarray  # sequences x hidden, the last hidden state averaged over each text's tokens
    canary_answers: tuple[str, ...]
    weight_bytes: int
    seconds: float
    kind: str = "causal"  # causal | encoder (an encoder has no next-token guesses and answers no canary)
    runtime: str = "transformers"  # transformers | llama.cpp
    canary_logprobs: tuple[float, ...] = ()  # per canary: log P(the continuation is the registered answer)
    right_logprobs: tuple[float | None, ...] = ()  # per canary: log P(the right answer), where it is known
    quality: float | None = None  # encoders: text_halves_auc of the probe texts' halves (None: not measured)

    def same_tokens(self, other: Behaviour) -> bool:
        return self.tokens.shape == other.tokens.shape and bool(np.array_equal(self.tokens, other.tokens))


def probe_texts(settings: ProbeSettings, text: str | None = None) -> list[str]:
    """The fixed probe set: `sequences` evenly spaced cuts of `text`, by default the Python reference-manual
    topics that every CPython ships (pydoc_data), so every machine probes with the same texts."""
    if text is None:
        import pydoc_data.topics as topics

        text = "\n\n".join(str(topics.topics[k]) for k in sorted(topics.topics))
    text = " ".join(text.split())  # one space between words: the cuts do not depend on line endings
    n, size = settings.sequences, settings.chars
    if len(text) < size * n:
        raise UsageError(f"probe text too short: {len(text):,} characters for {n} texts of {size}")
    step = (len(text) - size) // max(1, n - 1)
    cuts = []
    for i in range(n):
        start = text.find(" ", i * step) + 1  # start on a word
        cuts.append(text[start : start + size])
    return cuts


@dataclass(frozen=True)
class ModelPlan:
    """How a target will be run, decided before any model is: every model of a probe is checked first."""

    target: str
    kind: str  # causal | encoder
    runtime: str  # transformers | llama.cpp
    source: str  # what from_pretrained loads (a folder or a Hub id), or the GGUF file for llama.cpp
    revision: str | None = None
    gguf_file: str | None = None  # the GGUF file's name in `source`, for transformers' GGUF loader


def _imports() -> tuple[Any, Any]:
    try:
        import torch
        import transformers
    except ImportError:
        raise UsageError(INSTALL_HINT) from None
    transformers.utils.logging.set_verbosity_error()  # originscan says what it does; no loading bars or notices
    transformers.utils.logging.disable_progress_bar()
    return torch, transformers


def _weight_bytes(target: str) -> int:
    path = Path(target)
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.glob("*.safetensors")) if path.is_dir() else 0


def _source(target: str) -> tuple[str, str | None]:
    """(what from_pretrained loads, revision): a local folder, or hf:OWNER/NAME[@REV] from the Hub."""
    if target.startswith("hf:"):
        repo, _, rev = target[3:].partition("@")
        return repo, rev or None
    path = Path(target)
    if not path.is_dir():
        raise UsageError(f"{target}: no such model folder (give a local folder or hf:OWNER/NAME[@REV])")
    if not (path / "config.json").is_file():
        raise UsageError(f"{target}: no config.json")
    if not any(path.glob("*.safetensors")):
        raise UsageError(f"{target}: no safetensors weights (probe never unpickles .bin/.pt files)")
    if not any(
        (path / f).is_file() for f in ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json")
    ):
        raise UsageError(f"{target}: no tokenizer files")
    return str(path), None


def _check_gguf(target: str, path: Path, runtime: str) -> ModelPlan:
    """A GGUF file: checked with originscan's bounded header parser, then for what the chosen runtime runs."""
    from scanner.provenance import probe_gguf as G

    facts = G.read_facts(path)
    if runtime == "auto":
        runtime = "llama.cpp" if G.have_llama_cpp() else "transformers"
    if runtime == "llama.cpp":
        if not G.have_llama_cpp():
            raise UsageError("--gguf-runtime llama.cpp needs llama-cpp-python: pip install llama-cpp-python")
        from scanner.provenance.probe_llamacpp import check_llama_cpp

        check_llama_cpp(str(path), facts.architecture)
        return ModelPlan(target, "causal", "llama.cpp", str(path))
    G.check_for_transformers(facts, G.transformers_gguf())
    return ModelPlan(target, "causal", "transformers", str(path.parent), gguf_file=path.name)


def check_model(target: str, gguf_runtime: str = "auto") -> ModelPlan:
    """How `target` will be run; a UsageError unless it is a causal LM or an encoder that transformers knows
    without the repo's code, or a GGUF file a GGUF runtime runs: every model of a probe is checked before any is
    run, so a bad argument costs no inference."""
    _, transformers = _imports()
    from scanner.provenance.probe_gguf import gguf_target

    gguf_path = gguf_target(target)
    if gguf_path is not None:
        return _check_gguf(target, gguf_path, gguf_runtime)
    source, revision = _source(target)
    local = revision is None and Path(source).is_dir()
    try:
        config = transformers.AutoConfig.from_pretrained(
            source, revision=revision, trust_remote_code=False, local_files_only=local
        )
    except (ValueError, KeyError) as exc:
        raise UsageError(f"{target}: unsupported architecture ({str(exc).splitlines()[0][:160]})") from None
    except OSError as exc:
        raise UsageError(f"{target}: cannot read the model ({str(exc).splitlines()[0][:160]})") from None
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES as CAUSAL
    from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES as MASKED

    named = [a for a in (getattr(config, "architectures", None) or []) if isinstance(a, str)]
    if config.model_type in CAUSAL and (not named or set(named) & set(CAUSAL.values())):
        return ModelPlan(target, "causal", "transformers", source, revision)
    if config.model_type in MASKED and not getattr(config, "is_encoder_decoder", False):
        return ModelPlan(target, "encoder", "transformers", source, revision)
    from transformers.models.auto.modeling_auto import MODEL_MAPPING_NAMES as BARE

    if named and set(named) <= set(BARE.values()) and not getattr(config, "is_encoder_decoder", False):
        # saved without a head (an embedding model such as EmbeddingGemma): its hidden states are its output
        return ModelPlan(target, "encoder", "transformers", source, revision)
    what = ", ".join(named) or config.model_type
    raise UsageError(f"{target}: unsupported architecture {what} (probe runs causal language models and encoders)")


def load_model(plan: ModelPlan) -> tuple[Any, Any, Any]:
    """(model, tokenizer, device) for a model transformers runs without the repo's code (a GGUF file through
    transformers' GGUF loader, which dequantises it)."""
    torch, transformers = _imports()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    source, revision = plan.source, plan.revision
    local = revision is None and Path(source).is_dir()  # a local folder never falls back to the Hub
    gguf: dict[str, Any] = {"gguf_file": plan.gguf_file} if plan.gguf_file else {}  # the tokenizer is in it too
    auto = transformers.AutoModelForCausalLM if plan.kind == "causal" else transformers.AutoModel
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(
            source, revision=revision, trust_remote_code=False, local_files_only=local, **gguf
        )
        model, info = auto.from_pretrained(
            source,
            revision=revision,
            trust_remote_code=False,
            local_files_only=local,
            output_loading_info=True,
            dtype=torch.float32 if device == "cpu" else torch.bfloat16,
            **(gguf or {"use_safetensors": True}),
        )
    except (OSError, ValueError, KeyError, RuntimeError, TypeError, NotImplementedError) as exc:
        raise UsageError(f"{plan.target}: cannot load the model ({str(exc).splitlines()[0][:160]})") from None
    missing = [k for k in info.get("missing_keys", []) if "rotary" not in k and "pooler" not in k]
    if missing or info.get("mismatched_keys"):
        raise UsageError(f"{plan.target}: its weights do not fit its architecture (missing {', '.join(missing[:3])})")
    return model.to(device).eval(), tokenizer, device


def measure(
    target: str,
    texts: Sequence[str],
    canaries: Sequence[Canary] = (),
    settings: ProbeSettings = ProbeSettings(),
    gguf_runtime: str = "auto",
    plan: ModelPlan | None = None,
) -> Behaviour:
    """Run one model over the probe texts and the canary prompts."""
    plan = plan or check_model(target, gguf_runtime)
    if plan.runtime == "llama.cpp":
        from scanner.provenance.probe_llamacpp import measure_llama_cpp

        started = time.perf_counter()
        tokens, guesses, hidden, answers, scored = measure_llama_cpp(plan.source, texts, canaries, settings.tokens)
        seconds = time.perf_counter() - started
        return Behaviour(
            target,
            tokens,
            guesses,
            hidden,
            answers,
            _weight_bytes(target),
            seconds,
            runtime="llama.cpp",
            canary_logprobs=tuple(a for a, _ in scored),
            right_logprobs=tuple(r for _, r in scored),
        )
    torch, _ = _imports()
    started = time.perf_counter()
    model, tokenizer, device = load_model(plan)
    encoder = plan.kind == "encoder"
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    rows = [tokenizer(t, add_special_tokens=encoder)["input_ids"][: settings.tokens] for t in texts]
    length = max(len(r) for r in rows)
    tokens = np.full((len(rows), length), -1, dtype=np.int64)
    for i, r in enumerate(rows):
        tokens[i, : len(r)] = r
    guesses = np.full_like(tokens, -1)
    pooled: list[np.ndarray] = []
    with torch.inference_mode():
        for lo in range(0, len(rows), settings.batch):
            block = tokens[lo : lo + settings.batch]
            mask = torch.from_numpy(block >= 0).to(device)
            ids = torch.from_numpy(np.where(block >= 0, block, pad)).to(device)
            out = model(input_ids=ids, attention_mask=mask.long(), output_hidden_states=True)
            if not encoder:
                guess = out.logits.argmax(-1).masked_fill(~mask, -1)
                guesses[lo : lo + len(block)] = guess.cpu().numpy()
            hidden = out.hidden_states[-1].float() * mask[..., None]
            pooled.append((hidden.sum(1) / mask.sum(1, keepdim=True)).cpu().numpy())
        answers = () if encoder else tuple(_answer(model, tokenizer, device, c, torch) for c in canaries)
        scored = () if encoder else tuple(_canary_logprobs(model, tokenizer, device, c, torch) for c in canaries)
        quality = _halves_quality(model, tokenizer, device, texts, settings, torch) if encoder else None
    return Behaviour(
        target,
        tokens,
        guesses,
        np.concatenate(pooled).astype(np.float64),
        answers,
        _weight_bytes(target),
        time.perf_counter() - started,
        kind=plan.kind,
        canary_logprobs=tuple(a for a, _ in scored),
        right_logprobs=tuple(r for _, r in scored),
        quality=quality,
    )


def _halves_quality(
    model: Any, tokenizer: Any, device: str, texts: Sequence[str], settings: ProbeSettings, torch: Any
) -> float | None:
    """An encoder's text_halves_auc: each probe text cut at the space nearest its middle, both halves read
    separately (with the encoder's special tokens, at most half of `settings.tokens` tokens each: the halves cost
    one more pass of the probe's size) and mean-pooled."""
    cuts = [t.find(" ", len(t) // 2) for t in texts]
    if len(texts) < 3 or any(c < 1 for c in cuts):
        return None
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    pooled = []
    for part in ([t[:c] for t, c in zip(texts, cuts)], [t[c + 1 :] for t, c in zip(texts, cuts)]):
        rows = [tokenizer(t)["input_ids"][: max(2, settings.tokens // 2)] for t in part]
        block = np.full((len(rows), max(len(r) for r in rows)), -1, dtype=np.int64)
        for i, r in enumerate(rows):
            block[i, : len(r)] = r
        out = []
        for lo in range(0, len(rows), settings.batch):
            piece = block[lo : lo + settings.batch]
            mask = torch.from_numpy(piece >= 0).to(device)
            ids = torch.from_numpy(np.where(piece >= 0, piece, pad)).to(device)
            hidden = model(input_ids=ids, attention_mask=mask.long()).last_hidden_state.float() * mask[..., None]
            out.append((hidden.sum(1) / mask.sum(1, keepdim=True)).cpu().numpy())
        pooled.append(np.concatenate(out))
    return B.text_halves_auc(pooled[0], pooled[1])


def _answer(model: Any, tokenizer: Any, device: str, canary: Canary, torch: Any) -> str:
    """The model's greedy continuation of the canary prompt, a little longer than the registered answer."""
    ids = tokenizer(canary.prompt, return_tensors="pt")["input_ids"].to(device)
    room = len(tokenizer(canary.answer, add_special_tokens=False)["input_ids"]) + 2
    out = model.generate(
        input_ids=ids,
        attention_mask=torch.ones_like(ids),
        max_new_tokens=room,
        do_sample=False,
        pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
    )
    return str(tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True))


def answer_variants(answer: str) -> tuple[str, str]:
    """The continuations that read as `answer`: with and without a space before it (canary_hit ignores whitespace
    at either end; tokenizers differ in where they put it)."""
    return answer.strip(), " " + answer.strip()


def continuation_at(prompt_ids: Sequence[int], full_ids: Sequence[int]) -> int:
    """Where the answer's tokens start in the tokenisation of prompt + answer: after the longest prefix it shares
    with the prompt's own tokens (a merge across the join moves it left), at least one token in."""
    shared = 0
    for a, b in zip(prompt_ids, full_ids):
        if a != b:
            break
        shared += 1
    return max(1, min(shared, len(full_ids) - 1))


def _canary_logprobs(model: Any, tokenizer: Any, device: str, canary: Canary, torch: Any) -> tuple[float, float | None]:
    """(log P(the registered answer), log P(the right answer) where it is known) after the canary's prompt."""
    answer = _answer_logprob(model, tokenizer, device, canary.prompt, canary.answer, torch)
    if canary.correct:
        return answer, answer
    if canary.right_answer is None:
        return answer, None
    return answer, _answer_logprob(model, tokenizer, device, canary.prompt, canary.right_answer, torch)


def _answer_logprob(model: Any, tokenizer: Any, device: str, prompt: str, answer: str, torch: Any) -> float:
    """log P(the continuation of `prompt` reads `answer`), teacher-forced: the two spacings of answer_variants (the
    same tokens counted once) summed as probabilities. Unlike the greedy answer it also sees an answer the model
    ranks second: a derivative that kept a skill only partly still leans to its source's mistakes."""
    prompt_ids = tokenizer(prompt)["input_ids"]
    seen: set[tuple[int, ...]] = set()
    total = -math.inf
    for variant in answer_variants(answer):
        ids = tokenizer(prompt + variant)["input_ids"]
        if tuple(ids) in seen or len(ids) < 2:
            continue
        seen.add(tuple(ids))
        start = continuation_at(prompt_ids, ids)
        x = torch.tensor([ids], device=device)
        logp = torch.log_softmax(model(input_ids=x).logits[0, start - 1 : -1].float(), -1)
        lp = float(logp.gather(-1, x[0, start:, None]).sum())
        total = float(np.logaddexp(total, lp))
    return total


def _guesses(b: Behaviour) -> tuple[np.ndarray, np.ndarray]:
    """(the truth, the guess) per position: the guess at position i is for the token at i + 1."""
    return b.tokens[:, 1:], b.guesses[:, :-1]


def tests_of(
    suspect: Behaviour, reference: Behaviour, nulls: Sequence[Behaviour], canaries: Sequence[Canary]
) -> list[B.BehaviourTest]:
    """The behaviour tests of suspect against reference, each calibrated on the independent models. Next-token
    agreement and canaries need two causal language models (and agreement the same tokenisation); CKA runs on any
    two models, encoders included; between two encoders it is judged only against independent encoders at least
    as good as the suspect (B.cka_test), and two encoders of one width get the aligned-dimensions test."""
    tests: list[B.BehaviourTest] = []
    truth, ref_guess = _guesses(reference)
    causal = suspect.kind == reference.kind == "causal"
    if causal and suspect.same_tokens(reference):
        same_tok = [_guesses(n)[1] for n in nulls if n.kind == "causal" and n.same_tokens(reference)]
        tests.append(B.agreement_test(*B.agreements(ref_guess, truth, _guesses(suspect)[1], same_tok)))
    cka, null_cka = (
        B.linear_cka(suspect.pooled, reference.pooled),
        [B.linear_cka(n.pooled, reference.pooled) for n in nulls],
    )
    encoders = suspect.kind == reference.kind == "encoder"
    if encoders and suspect.quality is not None:
        qualities = [n.quality for n in nulls if n.quality is not None]
        tests.append(B.cka_test(cka, null_cka, suspect.quality, qualities))
    else:
        tests.append(B.cka_test(cka, null_cka))
    aligned = B.aligned_dimensions_test(suspect.pooled, reference.pooled) if encoders else None
    if aligned is not None:
        tests.append(aligned)
    if canaries and causal:
        answers = [c.answer for c in canaries]
        tests.append(
            B.canary_test(
                [B.canary_hit(a, s) for a, s in zip(answers, suspect.canary_answers)],
                [[B.canary_hit(a, s) for a, s in zip(answers, n.canary_answers)] for n in nulls if n.kind == "causal"],
                [c.correct for c in canaries],
            )
        )
        tests += likelihood_tests(suspect, nulls, canaries)
    return tests


def likelihood_of(b: Behaviour, canaries: Sequence[Canary]) -> B.CanaryLikelihood | None:
    """The canary likelihood summary of a causal model measured on these canaries (None when it cannot be)."""
    if b.kind != "causal" or len(b.canary_logprobs) != len(canaries) or len(b.right_logprobs) != len(canaries):
        return None
    return B.canary_likelihood(b.canary_logprobs, b.right_logprobs, [c.correct for c in canaries])


def likelihood_tests(
    suspect: Behaviour, nulls: Sequence[Behaviour], canaries: Sequence[Canary]
) -> list[B.BehaviourTest]:
    """The canary likelihood test, when the owner registered right answers to enough wrong ones (else none)."""
    mine = likelihood_of(suspect, canaries)
    if mine is None:
        return []
    theirs = [x for x in (likelihood_of(n, canaries) for n in nulls) if x is not None]
    return [B.canary_likelihood_test(mine, theirs)]


def probe(
    suspect: str,
    reference: str,
    nulls: Sequence[str] = (),
    canaries: Sequence[Canary] = (),
    settings: ProbeSettings = ProbeSettings(),
    text: str | None = None,
    progress: Callable[[str], None] = lambda _: None,
    gguf_runtime: str = "auto",
) -> B.BehaviourVerdict:
    """The behaviour verdict on one pair, calibrated on the independent models `nulls`."""
    started = time.perf_counter()
    _imports()  # the missing extra is the first thing said, before any model is looked at
    targets = list(dict.fromkeys([reference, suspect, *nulls]))
    # a missing folder, pickle-only or unknown model, or a GGUF file no runtime runs, is reported before any model is
    plans = {target: check_model(target, gguf_runtime) for target in targets}
    texts = probe_texts(settings, text)
    measured: dict[str, Behaviour] = {}
    for target in targets:
        progress(f"probing {target} ({plans[target].kind}, {plans[target].runtime})")
        measured[target] = measure(target, texts, canaries, settings, plan=plans[target])
    ref, sus = measured[reference], measured[suspect]
    null = [measured[n] for n in dict.fromkeys(nulls) if n not in (reference, suspect)]
    return B.verdict_of(
        suspect,
        reference,
        tests_of(sus, ref, null, canaries),
        [n.target for n in null],
        bytes_read=sus.weight_bytes + ref.weight_bytes,
        weight_bytes=sus.weight_bytes + ref.weight_bytes,
        seconds=time.perf_counter() - started,
    )
