"""What a GGUF file says about itself: licence, name, base models, architecture and tokenizer.

llama.cpp's converter writes the source model's card metadata into every GGUF (`general.license`,
`general.base_model.N.repo_url`, `general.source.*`) along with the architecture (`{arch}.embedding_length`, …)
and the whole tokenizer (`tokenizer.ggml.tokens`, token types, special token ids). Re-uploads usually keep it, so
a Llama 3 GGUF re-published as "apache-2.0" still says `general.license = llama3` inside. Only the header is read
(range reads of the best GGUF model of the repo, see scanner.provenance.gguf.gguf_groups).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from scanner.file_formats import GGUF, format_of
from scanner.sources.interface import Snapshot

if TYPE_CHECKING:
    from scanner.provenance.gguf import GGUFHeader

CONTROL, USER_DEFINED = 3, 4  # gguf.TokenType: the special (added) tokens
_HUB_URL = re.compile(
    r"^https?://(?:www\.)?(?:huggingface\.co|hf\.co)/([\w.-]+/[\w.-]+?)"
    r"(?:/(?:tree|blob|resolve)/.*)?/?$"
)
_REPO_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


@dataclass
class GGUFFacts:
    path: str  # the file whose header was read
    name: str | None = None
    license: str | None = None
    base_models: list[str] = field(default_factory=list)  # Hub ids from general.base_model.N.repo_url
    sources: list[str] = field(default_factory=list)  # Hub ids from general.source.*
    architecture: str | None = None
    config: dict[str, Any] = field(default_factory=dict)  # Hugging Face config keys (hidden_size, …)
    special_tokens: dict[str, int] = field(default_factory=dict)  # control / user-defined token -> id
    vocab_size: int | None = None
    vocab_sha256: str | None = None  # exact fingerprint of the vocabulary in id order
    token_embd_type: str | None = None


def hub_id(value: Any) -> str | None:
    """'https://huggingface.co/meta-llama/Llama-3.1-8B' or 'meta-llama/Llama-3.1-8B' -> the Hub id."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    m = _HUB_URL.match(value)
    if m:
        return m.group(1)
    return value if _REPO_ID.match(value) else None


def facts_from_header(header: GGUFHeader) -> GGUFFacts:
    from scanner.provenance.gguf import gguf_config, vocabulary_sha256

    get = header.get
    facts = GGUFFacts(
        path=header.file,
        name=_str(get("general.name")),
        license=_str(get("general.license")),
        architecture=_str(get("general.architecture")),
        config=gguf_config(header),
    )
    count = get("general.base_model.count")
    for i in range(min(count, 16) if isinstance(count, int) else 0):
        rid = hub_id(get(f"general.base_model.{i}.repo_url")) or hub_id(get(f"general.base_model.{i}.url"))
        if rid and rid not in facts.base_models:
            facts.base_models.append(rid)
    for key in ("general.source.repo_url", "general.source.url", "general.source.huggingface.repository"):
        rid = hub_id(get(key))
        if rid and rid not in facts.sources:
            facts.sources.append(rid)
    tokens, types = get("tokenizer.ggml.tokens"), get("tokenizer.ggml.token_type")
    # a header may type its token list as numbers (found by tests/test_properties.py): not a vocabulary then
    if isinstance(tokens, list) and all(isinstance(t, str) for t in tokens):
        facts.vocab_size = len(tokens)
        facts.vocab_sha256 = vocabulary_sha256(tokens)
        if isinstance(types, list) and len(types) == len(tokens):
            for i, (tok, kind) in enumerate(zip(tokens, types)):
                if kind in (CONTROL, USER_DEFINED):
                    facts.special_tokens.setdefault(tok, i)
    embd = next((t for t in header.tensors if t.name == "token_embd.weight"), None)
    facts.token_embd_type = embd.dtype if embd else None
    return facts


def _str(v: Any) -> str | None:
    return v.strip() if isinstance(v, str) and v.strip() else None


def read_gguf_facts(snap: Snapshot) -> GGUFFacts | None:
    """Facts from the header of the repo's best GGUF model (its first part when split); None without one.

    A malformed header gives None here: the weights checks report it as `source.malformed`."""
    facts = None
    sizes = {f.path: f.size for f in snap.weight_files() if not f.lfs_pointer and format_of(f.path) is GGUF}
    if not sizes or snap.opener is None:
        return None
    # The GGUF reader (numpy and the gguf package under it) loads only for a repo that ships a .gguf file: a
    # re-scan of a safetensors repo starts without it.
    from scanner.provenance.gguf import GGUFError, gguf_groups, parse_header

    groups = gguf_groups(sizes)
    if groups:
        path = groups[0].files[0]
        try:
            src = snap.open(path)
        except OSError:
            src = None
        if src is not None:
            try:
                facts = facts_from_header(parse_header(src, path))
            except (GGUFError, OSError):
                facts = None
            finally:
                src.close()
    return facts


def tokenizer_vocabulary(tokenizer_json: Any) -> list[str] | None:
    """tokenizer.json's vocabulary in id order (model vocab plus added tokens), to compare with a GGUF's."""
    if not isinstance(tokenizer_json, dict) or not isinstance(tokenizer_json.get("model"), dict):
        return None
    vocab = tokenizer_json["model"].get("vocab")
    pairs: dict[int, str] = {}
    if isinstance(vocab, dict):
        pairs.update({i: t for t, i in vocab.items() if isinstance(i, int)})
    elif isinstance(vocab, list):  # Unigram: [[piece, score], …]
        pairs.update({i: e[0] for i, e in enumerate(vocab) if isinstance(e, list) and e and isinstance(e[0], str)})
    for e in tokenizer_json.get("added_tokens") or []:
        if isinstance(e, dict) and isinstance(e.get("id"), int) and isinstance(e.get("content"), str):
            pairs[e["id"]] = e["content"]
    if not pairs or sorted(pairs) != list(range(len(pairs))):
        return None
    return [pairs[i] for i in range(len(pairs))]
