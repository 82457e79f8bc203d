"""Architecture signatures: does config.json equal a known upstream's?"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from scanner.knowledge import KnowledgeBase, Upstream

# Keys that describe the shape of the network; a fine-tune keeps all of them, an unrelated model rarely does.
SIGNATURE_KEYS = (
    "hidden_size",
    "num_hidden_layers",
    "intermediate_size",
    "num_attention_heads",
    "num_key_value_heads",
    "vocab_size",
    "rope_theta",
    "max_position_embeddings",
    "head_dim",
    "query_num",
    "image_size",
    "patch_size",
    "slice_mode",
    "sliding_window",
    "num_local_experts",
)
MIN_KEYS = 6  # fewer compared keys is a common shape, not a signature


@dataclass
class ConfigMatch:
    upstream: Upstream
    keys: list[str]  # the signature keys compared, all equal (vocab_size excepted when vocab_extended)
    also_equal: list[str] = field(default_factory=list)  # other recorded keys (rope_scaling, eos ids …) equal here
    differing: list[str] = field(default_factory=list)  # other recorded keys present here with another value
    vocab_extended: bool = False  # equal except a larger vocab_size: a vocabulary extension, weaker evidence


def _values(config: dict[str, Any]) -> dict[str, Any]:
    """Flatten the text_config of multimodal configs so their language model is compared too."""
    out = dict(config)
    for nested in ("text_config", "llm_config"):
        if isinstance(config.get(nested), dict):
            for k, v in config[nested].items():
                out.setdefault(k, v)
    return out


def _equal(a: object, b: object) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        # Python compares int with float exactly; float(a) would overflow on a hostile 4000-digit integer.
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):  # rope_scaling: every recorded sub-key must agree
        return all(k in a and _equal(a[k], v) for k, v in b.items())
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    return a == b


def _match(mine: dict[str, Any], up: Upstream) -> ConfigMatch | None:
    keys = [k for k in SIGNATURE_KEYS if k in up.config]
    if len(keys) < MIN_KEYS:
        return None
    unequal = [k for k in keys if not (k in mine and _equal(mine[k], up.config[k]))]
    extended = (
        unequal == ["vocab_size"]
        and isinstance(mine.get("vocab_size"), int)
        and isinstance(up.config["vocab_size"], int)
        and mine["vocab_size"] > up.config["vocab_size"]
    )
    if unequal and not extended:
        return None
    others = [k for k in up.config if k not in SIGNATURE_KEYS and k in mine]
    return ConfigMatch(
        up,
        keys,
        also_equal=[k for k in others if _equal(mine[k], up.config[k])],
        differing=[k for k in others if not _equal(mine[k], up.config[k])],
        vocab_extended=extended,
    )


def match_config(config: object, kb: KnowledgeBase) -> list[ConfigMatch]:
    """The upstreams config.json fits best; several when the recorded keys cannot tell them apart.

    Every signature key must be equal (or all but a larger vocab_size: a vocabulary extension, used only when
    nothing matches exactly). Among those, the fewest differing other keys (rope_scaling, bos/eos ids …) win, and
    a match whose equal keys another match's strictly include is dropped; upstreams still tied are all returned:
    the evidence cannot tell them apart (their licences may differ).
    """
    if not isinstance(config, dict):
        return []
    mine = _values(config)
    matches = [m for up in kb.upstreams.values() if (m := _match(mine, up)) is not None]
    if not matches:
        return []

    def rank(m: ConfigMatch) -> tuple[bool, int]:
        return m.vocab_extended, len(m.differing)

    best = min(rank(m) for m in matches)
    tied = [m for m in matches if rank(m) == best]
    # a match whose equal keys are a strict subset of another's is less specific (Llama 3 8B inside MiniCPM-V)
    equal = {id(m): set(m.keys) | set(m.also_equal) for m in tied}
    return [m for m in tied if not any(equal[id(m)] < equal[id(o)] for o in tied)]
