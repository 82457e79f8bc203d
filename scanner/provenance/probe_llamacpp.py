"""GGUF files run as they are, quantised, in llama.cpp (llama-cpp-python): the measurements of `originscan probe`.

The same measurements as the transformers runtime (scanner/provenance/probe.py), from llama.cpp's own outputs:
each probe text tokenised by the file's tokenizer without a BOS token (as the transformers runtime reads it), its
top-1 next-token guess at every position from the logits, its last hidden state (llama.cpp's embedding output,
after the final norm, as transformers' last hidden state) averaged over the text's tokens, and greedy answers to
the canary prompts. Two contexts over one memory-mapped model: one keeps every position's logits, the other
every position's embedding (llama.cpp gives one or the other per context).

llama-cpp-python is not an originscan dependency (PyPI has no prebuilt wheel for it: pip compiles llama.cpp,
several minutes); `probe --gguf-runtime auto` uses it when it is installed.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from scanner.errors import UsageError
from scanner.provenance.canaries import Canary


def _quiet() -> contextlib.redirect_stderr[io.StringIO]:
    """llama.cpp's log lines (llama-cpp-python prints them to sys.stderr, warnings among its "errors") are dropped
    while a model loads: originscan says what went wrong in one line, from the exception."""
    return contextlib.redirect_stderr(io.StringIO())


def check_llama_cpp(path: str, architecture: str) -> None:
    """A UsageError unless llama.cpp loads the file's architecture and vocabulary (no weights are read): every
    model of a probe is checked before any is run."""
    import llama_cpp

    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    with _quiet():
        model = llama_cpp.llama_model_load_from_file(path.encode(), params)
    if not model:
        raise UsageError(f"{path}: llama.cpp cannot load this GGUF file (architecture {architecture!r})")
    llama_cpp.llama_model_free(model)


def _open(path: str, n_ctx: int, embedding: bool) -> Any:
    import llama_cpp

    try:
        with _quiet():
            llm = llama_cpp.Llama(
                model_path=path,
                n_ctx=n_ctx,
                n_batch=n_ctx,
                n_ubatch=n_ctx,
                n_gpu_layers=-1,  # every layer on the GPU where this build has one; nothing changes on a CPU build
                n_threads=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
                logits_all=True,  # every position's logits, or (embedding) every position's hidden state
                embedding=embedding,
                pooling_type=llama_cpp.LLAMA_POOLING_TYPE_NONE,
                verbose=False,
            )
    except (ValueError, RuntimeError) as exc:
        raise UsageError(f"{path}: llama.cpp cannot load it ({str(exc).splitlines()[0][:160]})") from None
    return llm


@contextlib.contextmanager
def _model(path: str, n_ctx: int, embedding: bool) -> Iterator[Any]:
    llm = _open(path, n_ctx, embedding)
    try:
        yield llm
    finally:
        llm.close()


def _tokens(llm: Any, text: str, limit: int) -> list[int]:
    return list(llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))[:limit]


def _last_hidden(llm: Any, tokens: list[int]) -> np.ndarray:
    """Every position's embedding (n x hidden) of one text, from a fresh sequence."""
    import llama_cpp

    llm.reset()
    llm.eval(tokens)
    ptr = llama_cpp.llama_get_embeddings(llm.ctx)
    return np.ctypeslib.as_array(ptr, shape=(len(tokens) * llm.n_embd(),)).reshape(len(tokens), -1).copy()


def _greedy(llm: Any, prompt: str, room: int) -> str:
    """The greedy continuation of `prompt`, `room` tokens at most, cut at the end-of-text token."""
    llm.reset()
    llm.eval(list(llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=False)))
    out: list[int] = []
    for _ in range(room):
        nxt = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        if nxt == llm.token_eos():
            break
        out.append(nxt)
        llm.eval([nxt])
    return bytes(llm.detokenize(out)).decode("utf-8", errors="replace")


def _logprob(llm: Any, prompt: str, answer: str) -> float:
    """log P(the continuation of `prompt` reads `answer`) from llama.cpp's logits, as the transformers runtime
    computes it (probe._answer_logprob: both spacings, the same tokens counted once)."""
    from scanner.provenance.probe import answer_variants, continuation_at

    prompt_ids = list(llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=False))
    seen: set[tuple[int, ...]] = set()
    total = -np.inf
    for variant in answer_variants(answer):
        ids = list(llm.tokenize((prompt + variant).encode("utf-8"), add_bos=True, special=False))
        if tuple(ids) in seen or len(ids) < 2:
            continue
        seen.add(tuple(ids))
        start = continuation_at(prompt_ids, ids)
        llm.reset()
        llm.eval(ids)
        logits = np.asarray(llm.scores[: len(ids)], dtype=np.float64)
        top = logits.max(axis=-1, keepdims=True)
        logp = logits - top - np.log(np.exp(logits - top).sum(axis=-1, keepdims=True))
        total = np.logaddexp(total, sum(logp[i - 1, ids[i]] for i in range(start, len(ids))))
    return float(total)


def _canary_logprobs(llm: Any, canary: Canary) -> tuple[float, float | None]:
    """(log P(the registered answer), log P(the right answer) where it is known), as probe._canary_logprobs."""
    answer = _logprob(llm, canary.prompt, canary.answer)
    if canary.correct:
        return answer, answer
    return answer, None if canary.right_answer is None else _logprob(llm, canary.prompt, canary.right_answer)


def measure_llama_cpp(
    path: str, texts: Sequence[str], canaries: Sequence[Canary], max_tokens: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[str, ...], tuple[tuple[float, float | None], ...]]:
    """(tokens, next-token guesses, mean-pooled last hidden states, canary answers, per canary the log-probabilities
    of its answer and of its right answer), as probe.Behaviour keeps them."""
    n_ctx = max(64, max_tokens + 64)  # the canary prompts and their answers fit beside the longest text
    with _model(path, n_ctx, embedding=False) as llm:
        rows = [_tokens(llm, t, max_tokens) for t in texts]
        if not all(rows):
            raise UsageError(f"{path}: its tokenizer reads a probe text as no tokens")
        length = max(len(r) for r in rows)
        tokens = np.full((len(rows), length), -1, dtype=np.int64)
        guesses = np.full_like(tokens, -1)
        for i, r in enumerate(rows):
            tokens[i, : len(r)] = r
            llm.reset()
            llm.eval(r)
            guesses[i, : len(r)] = np.argmax(llm.scores[: len(r)], axis=-1)
        answers = tuple(_greedy(llm, c.prompt, len(_tokens(llm, c.answer, n_ctx)) + 2) for c in canaries)
        scored = tuple(_canary_logprobs(llm, c) for c in canaries)
    with _model(path, n_ctx, embedding=True) as llm:
        pooled = np.stack([_last_hidden(llm, r).mean(axis=0) for r in rows]).astype(np.float64)
    return tokens, guesses, pooled, answers, scored
