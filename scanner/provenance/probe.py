"""`originscan probe`: run the models and measure their behaviour (the optional extra originscan[probe]).

Models load through `transformers` with trust_remote_code=False and safetensors only: no code a repository ships
runs, nothing is unpickled. Each model reads the same probe texts; from one forward pass we keep its top-1
next-token guesses and its mean-pooled last hidden state per text, and its greedy answers to the canaries. The
statistics live in scanner/provenance/behaviour.py (numpy only, tested without torch).
"""

from __future__ import annotations

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


def check_model(target: str) -> None:
    """A UsageError unless `target` is a causal LM that transformers knows without the repo's code: every model
    of a probe is checked before any is run, so a bad argument costs no inference."""
    _, transformers = _imports()
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

    named = [a for a in (getattr(config, "architectures", None) or []) if isinstance(a, str)]
    if config.model_type not in CAUSAL or (named and not set(named) & set(CAUSAL.values())):
        what = ", ".join(named) or config.model_type
        raise UsageError(f"{target}: unsupported architecture {what} (probe runs causal language models)")


def load_model(target: str) -> tuple[Any, Any, Any]:
    """(model, tokenizer, device) for a causal language model transformers knows without the repo's code."""
    torch, transformers = _imports()
    check_model(target)
    source, revision = _source(target)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    local = revision is None and Path(source).is_dir()  # a local folder never falls back to the Hub
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(
            source, revision=revision, trust_remote_code=False, local_files_only=local
        )
        model, info = transformers.AutoModelForCausalLM.from_pretrained(
            source,
            revision=revision,
            trust_remote_code=False,
            use_safetensors=True,
            local_files_only=local,
            output_loading_info=True,
            dtype=torch.float32 if device == "cpu" else torch.bfloat16,
        )
    except (OSError, ValueError, KeyError, RuntimeError, TypeError) as exc:
        raise UsageError(f"{target}: cannot load the model ({str(exc).splitlines()[0][:160]})") from None
    missing = [k for k in info.get("missing_keys", []) if "rotary" not in k]
    if missing or info.get("mismatched_keys"):
        raise UsageError(f"{target}: its weights do not fit its architecture (missing {', '.join(missing[:3])})")
    return model.to(device).eval(), tokenizer, device


def measure(
    target: str,
    texts: Sequence[str],
    canaries: Sequence[Canary] = (),
    settings: ProbeSettings = ProbeSettings(),
) -> Behaviour:
    """Run one model over the probe texts and the canary prompts."""
    torch, _ = _imports()
    started = time.perf_counter()
    model, tokenizer, device = load_model(target)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    rows = [tokenizer(t, add_special_tokens=False)["input_ids"][: settings.tokens] for t in texts]
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
            guess = out.logits.argmax(-1).masked_fill(~mask, -1)
            guesses[lo : lo + len(block)] = guess.cpu().numpy()
            hidden = out.hidden_states[-1].float() * mask[..., None]
            pooled.append((hidden.sum(1) / mask.sum(1, keepdim=True)).cpu().numpy())
        answers = tuple(_answer(model, tokenizer, device, c, torch) for c in canaries)
    return Behaviour(
        target,
        tokens,
        guesses,
        np.concatenate(pooled).astype(np.float64),
        answers,
        _weight_bytes(target),
        time.perf_counter() - started,
    )


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


def _guesses(b: Behaviour) -> tuple[np.ndarray, np.ndarray]:
    """(the truth, the guess) per position: the guess at position i is for the token at i + 1."""
    return b.tokens[:, 1:], b.guesses[:, :-1]


def tests_of(
    suspect: Behaviour, reference: Behaviour, nulls: Sequence[Behaviour], canaries: Sequence[Canary]
) -> list[B.BehaviourTest]:
    """The behaviour tests of suspect against reference, each calibrated on the independent models."""
    tests: list[B.BehaviourTest] = []
    truth, ref_guess = _guesses(reference)
    if suspect.same_tokens(reference):
        same_tok = [_guesses(n)[1] for n in nulls if n.same_tokens(reference)]
        tests.append(B.agreement_test(*B.agreements(ref_guess, truth, _guesses(suspect)[1], same_tok)))
    tests.append(
        B.cka_test(
            B.linear_cka(suspect.pooled, reference.pooled), [B.linear_cka(n.pooled, reference.pooled) for n in nulls]
        )
    )
    if canaries:
        answers = [c.answer for c in canaries]
        tests.append(
            B.canary_test(
                [B.canary_hit(a, s) for a, s in zip(answers, suspect.canary_answers)],
                [[B.canary_hit(a, s) for a, s in zip(answers, n.canary_answers)] for n in nulls],
                [c.correct for c in canaries],
            )
        )
    return tests


def probe(
    suspect: str,
    reference: str,
    nulls: Sequence[str] = (),
    canaries: Sequence[Canary] = (),
    settings: ProbeSettings = ProbeSettings(),
    text: str | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> B.BehaviourVerdict:
    """The behaviour verdict on one pair, calibrated on the independent models `nulls`."""
    started = time.perf_counter()
    _imports()  # the missing extra is the first thing said, before any model is looked at
    targets = list(dict.fromkeys([reference, suspect, *nulls]))
    for target in targets:  # a missing folder, pickle-only or unknown model is reported before any model is run
        check_model(target)
    texts = probe_texts(settings, text)
    measured: dict[str, Behaviour] = {}
    for target in targets:
        progress(f"probing {target}")
        measured[target] = measure(target, texts, canaries, settings)
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
