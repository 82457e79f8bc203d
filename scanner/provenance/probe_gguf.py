"""GGUF models in `originscan probe`: which file a target names, and whether a runtime can run it.

A GGUF file is checked with originscan's own bounded header parser (scanner/provenance/gguf.py) before any runtime
opens it: the runtimes' readers trust the counts and lengths in a header, ours refuses absurd ones. What each
runtime can run is said in one line, exit 2, before any model is run:

* ``transformers`` (the extra originscan[probe]): `from_pretrained(..., gguf_file=...)` dequantises every tensor
  with the `gguf` package into a float PyTorch model of an architecture transformers knows. Every behaviour test
  runs (next-token agreement, hidden-state CKA, canaries). Limits: the architectures of transformers' GGUF table
  (llama, mistral, qwen2/3, phi3, gemma2/3, ... — the installed version's list is used), the quantisation types
  gguf can dequantise (not Q8_1, Q8_K, integer or F64 tensors), one file (not split), a "gpt2" (byte-level BPE) or
  "llama" (sentencepiece) tokenizer in the file, and the memory of the model in float32 (bfloat16 on a GPU).
* ``llama.cpp`` (llama-cpp-python, when it is installed): the file runs as it is, quantised, in llama.cpp. Next-
  token agreement and canaries run from its logits; CKA from its mean-pooled last hidden states (its embedding
  output). The architectures and types are llama.cpp's own; a file it cannot load is one error line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from scanner.errors import UsageError

RUNTIMES = ("transformers", "llama.cpp")
NOT_CAUSAL = ("t5", "umt5", "t5encoder", "bert", "nomic-bert", "jina-bert-v2", "clip")
# GGUF spells some architectures without the underscore transformers uses
TRANSFORMERS_NAME = {"qwen2moe": "qwen2_moe", "qwen3moe": "qwen3_moe", "gpt-oss": "gpt_oss", "minimax-m2": "minimax_m2"}


@dataclass(frozen=True)
class GGUFFacts:
    """What probe needs to know of a GGUF file before a runtime opens it."""

    path: Path
    architecture: str
    tokenizer: str  # tokenizer.ggml.model: gpt2 (byte-level BPE), llama (sentencepiece), ...
    tensor_types: tuple[str, ...]  # the quantisation types of its tensors, each once
    size: int


@dataclass(frozen=True)
class TransformersGGUF:
    """What the installed transformers' GGUF loader runs (read from transformers at run time)."""

    architectures: frozenset[str]
    tokenizers: frozenset[str]


def gguf_target(target: str) -> Path | None:
    """The GGUF file `target` names: a .gguf file, or a folder whose only weights are one .gguf file."""
    if target.startswith("hf:"):
        return None
    path = Path(target)
    if path.is_file() and path.suffix.lower() == ".gguf":
        return path
    if path.is_dir() and not any(path.glob("*.safetensors")):
        found = sorted(path.glob("*.gguf"))
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise UsageError(f"{target}: {len(found)} GGUF files; name the one to probe")
    return None


def read_facts(path: Path) -> GGUFFacts:
    """The file's architecture, tokenizer and tensor types, from originscan's bounded header parser."""
    from scanner.provenance.gguf import GGUFError, parse_header
    from scanner.sources.bytesource import FileByteSource

    src = FileByteSource(path)
    try:
        header = parse_header(src, path.name)
    except GGUFError as exc:
        raise UsageError(str(exc)) from None
    finally:
        src.close()
    arch = header.get("general.architecture")
    if not isinstance(arch, str) or not arch:
        raise UsageError(f"{path}: no general.architecture in the GGUF header")
    count = header.get("split.count", 1)
    if isinstance(count, int) and count > 1:
        raise UsageError(f"{path}: one of {count} split GGUF files; merge them first (llama-gguf-split --merge)")
    tokenizer = header.get("tokenizer.ggml.model")
    if not isinstance(tokenizer, str) or not isinstance(header.get("tokenizer.ggml.tokens"), list):
        raise UsageError(f"{path}: no tokenizer in the GGUF file (tokenizer.ggml.model and .tokens)")
    types = tuple(dict.fromkeys(t.dtype for t in header.tensors))
    return GGUFFacts(path, arch, tokenizer, types, src.size)


def check_for_transformers(facts: GGUFFacts, runs: TransformersGGUF) -> None:
    """A UsageError unless transformers' GGUF loader runs this file as a causal language model."""
    import gguf

    from scanner.provenance.gguf import can_dequantize

    arch = facts.architecture
    causal = sorted(a for a in runs.architectures if a not in NOT_CAUSAL and a not in ("general", "tokenizer"))
    if arch in NOT_CAUSAL or TRANSFORMERS_NAME.get(arch, arch) not in causal:
        raise UsageError(
            f"{facts.path}: GGUF architecture {arch!r} is not one the transformers GGUF runtime runs as a causal "
            f"language model ({', '.join(causal)})"
        )
    bad = [t for t in facts.tensor_types if not can_dequantize(int(gguf.GGMLQuantizationType[t]))]
    if bad:
        raise UsageError(
            f"{facts.path}: tensors of type {', '.join(bad)}, which the transformers GGUF runtime cannot dequantise"
        )
    if facts.tokenizer not in runs.tokenizers:
        raise UsageError(
            f"{facts.path}: GGUF tokenizer {facts.tokenizer!r} is not one transformers builds "
            f"({', '.join(sorted(runs.tokenizers))})"
        )


def transformers_gguf() -> TransformersGGUF:
    """The installed transformers' GGUF tables: its legacy loader's and, where it has one (5.x), its newer
    loader's; the tokenizer types from whichever table this version keeps them in."""
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    archs = set(GGUF_SUPPORTED_ARCHITECTURES)
    try:
        from transformers.integrations.gguf import GGUF_ARCHS

        archs |= set(GGUF_ARCHS)
    except ImportError:
        pass
    try:
        from transformers.integrations.gguf.gguf_tokenizer_mapping import GGUF_TOKENIZER_TYPES as tokenizers
    except ImportError:  # transformers 4.x: byte-level BPE and sentencepiece files
        tokenizers = ("gpt2", "llama")
    return TransformersGGUF(frozenset(archs), frozenset(tokenizers))


def have_llama_cpp() -> bool:
    """Whether llama-cpp-python is installed (the GGUF runtime `auto` prefers: it runs the file as it is)."""
    import importlib.util

    return importlib.util.find_spec("llama_cpp") is not None
