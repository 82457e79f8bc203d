"""Architecture signatures: does config.json equal a known upstream's?"""
from __future__ import annotations

from dataclasses import dataclass

from scanner.knowledge import KnowledgeBase, Upstream

# Keys that describe the shape of the network; a fine-tune keeps all of them, an unrelated model rarely does.
SIGNATURE_KEYS = ("hidden_size", "num_hidden_layers", "intermediate_size", "num_attention_heads",
                  "num_key_value_heads", "vocab_size", "rope_theta", "max_position_embeddings", "head_dim",
                  "query_num", "image_size", "patch_size", "slice_mode", "sliding_window", "num_local_experts")
MIN_KEYS = 6  # fewer compared keys is a common shape, not a signature


@dataclass
class ConfigMatch:
    upstream: Upstream
    keys: list[str]  # the keys compared, all equal


def _values(config: dict) -> dict:
    """Flatten the text_config of multimodal configs so their language model is compared too."""
    out = dict(config)
    for nested in ("text_config", "llm_config"):
        if isinstance(config.get(nested), dict):
            for k, v in config[nested].items():
                out.setdefault(k, v)
    return out


def _equal(a, b) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b)
    return a == b


def match_config(config: dict | None, kb: KnowledgeBase) -> list[ConfigMatch]:
    """Upstreams whose every recorded signature key is present here with the same value; most specific first."""
    if not isinstance(config, dict):
        return []
    mine = _values(config)
    matches = []
    for up in kb.upstreams.values():
        keys = [k for k in SIGNATURE_KEYS if k in up.config]
        if len(keys) < MIN_KEYS:
            continue
        if all(k in mine and _equal(mine[k], up.config[k]) for k in keys):
            matches.append(ConfigMatch(up, keys))
    matches.sort(key=lambda m: -len(m.keys))
    if matches:  # keep only the most specific signatures (a superset of keys wins)
        top = len(matches[0].keys)
        matches = [m for m in matches if len(m.keys) == top]
    return matches
