"""Special tokens and their ids: distinctive added tokens betray where a tokenizer came from."""

from __future__ import annotations

import re
from dataclasses import dataclass

from scanner.knowledge import KnowledgeBase, Upstream
from scanner.sources.interface import Snapshot

# An id as the key of added_tokens_decoder: ASCII digits only (str.isdigit also takes "²", which int() refuses) and
# short enough for int() (a hostile key of 5000 digits is past Python's int-string conversion limit).
TOKEN_ID = re.compile(r"[0-9]{1,18}")


def special_tokens(snap: Snapshot) -> dict[str, int]:
    """content -> id from tokenizer_config.json (added_tokens_decoder) and tokenizer.json (added_tokens)."""
    tokens: dict[str, int] = {}
    tc = snap.jsons.get("tokenizer_config.json")
    if isinstance(tc, dict) and isinstance(tc.get("added_tokens_decoder"), dict):
        for key, entry in tc["added_tokens_decoder"].items():
            if isinstance(entry, dict) and isinstance(entry.get("content"), str) and TOKEN_ID.fullmatch(str(key)):
                tokens.setdefault(entry["content"], int(key))
    tj = snap.jsons.get("tokenizer.json")
    if isinstance(tj, dict) and isinstance(tj.get("added_tokens"), list):
        for entry in tj["added_tokens"]:
            if isinstance(entry, dict) and isinstance(entry.get("content"), str) and isinstance(entry.get("id"), int):
                tokens.setdefault(entry["content"], entry["id"])
    return tokens


@dataclass
class TokenMatch:
    upstream: Upstream
    tokens: dict[str, int]  # the upstream's tokens found here at the same ids


def match_tokens(tokens: dict[str, int], kb: KnowledgeBase) -> list[TokenMatch]:
    """Upstreams at least half of whose recorded special tokens (and at least two) sit here at the same ids."""
    out = []
    for up in kb.upstreams.values():
        if not up.special_tokens:
            continue
        same = {t: i for t, i in up.special_tokens.items() if tokens.get(t) == i}
        if len(same) >= 2 and 2 * len(same) >= len(up.special_tokens):
            out.append(TokenMatch(up, same))
    out.sort(key=lambda m: -len(m.tokens))
    return out
