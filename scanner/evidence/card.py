"""Model card facts: the YAML front matter through a budgeted safe loader, then huggingface_hub's card data."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from scanner.parsed_cache import cached_parse
from scanner.sources.interface import Snapshot

CARD_NAMES = ("README.md", "readme.md", "README.MD", "Readme.md")
_HUB_PAGE = re.compile(r"^https?://(?:www\.)?(?:huggingface\.co|hf\.co)/(?=[^/]+/[^/]+/?$)")


@dataclass
class CardFacts:
    path: str | None = None  # None when the repo has no card
    metadata: dict[str, Any] = field(default_factory=dict)
    body: str = ""
    error: str | None = None

    @property
    def license(self) -> str | None:
        value = self.metadata.get("license")
        if isinstance(value, list):  # some cards list several; the first is the model's
            value = value[0] if value else None
        return str(value).strip() if value is not None else None

    @property
    def license_name(self) -> str | None:
        v = self.metadata.get("license_name")
        return str(v).strip() if v else None

    @property
    def license_link(self) -> str | None:
        v = self.metadata.get("license_link")
        return str(v).strip() if v else None

    @property
    def base_models(self) -> list[str]:
        value = self.metadata.get("base_model")
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):  # a mapping or a number is not a base model id
            return []
        # some cards write the base's Hub page instead of its id (https://huggingface.co/OWNER/NAME)
        return [_HUB_PAGE.sub("", v.strip()).rstrip("/") for v in value if isinstance(v, str) and v.strip()]

    @property
    def model_name(self) -> str | None:
        name = self.metadata.get("model_name")
        if isinstance(name, str) and name.strip():
            return name.strip()
        index = self.metadata.get("model-index")
        first = index[0] if isinstance(index, list) and index else None
        named = first.get("name") if isinstance(first, dict) else None
        return named if isinstance(named, str) else None

    def line_of(self, key: str) -> int | None:
        """1-based line of a front-matter key, for annotations."""
        return None if self.path is None else self._lines.get(key)

    _lines: dict[str, int] = field(default_factory=dict, repr=False)


# Budgets: real card metadata is a few KB (a long model-index reaches ~100 KB) and uses few anchors, if any. An
# alias bomb is a few hundred bytes that expand to billions of nodes once anything walks the parsed value.
MAX_FRONT_MATTER_CHARS = 512 * 1024
MAX_YAML_NODES = 200_000
MAX_YAML_ALIASES = 256


class YAMLBudgetError(ValueError):
    """The front matter is over a budget (size, nodes, aliases); it is not parsed."""


def load_yaml(text: str) -> Any:
    """yaml.safe_load with budgets on nodes and aliases (scanner/evidence/card_yaml.py)."""
    from scanner.evidence.card_yaml import load_budgeted

    return load_budgeted(text)


def split_front_matter(text: str) -> tuple[str, str, int] | None:
    """(YAML block, body, body offset) when `text` opens with a `---` line closed by another, else None.

    Scanned line by line in linear time (a regular expression here backtracked quadratically on long runs of
    blank lines or of lines that begin with `---`)."""
    start = len(text) - len(text.lstrip())
    if not text.startswith("---", start):
        return None
    eol = text.find("\n", start)
    if eol < 0 or text[start + 3 : eol].strip():
        return None
    pos = eol
    while True:
        pos = text.find("\n---", pos)
        if pos < 0:
            return None
        end = text.find("\n", pos + 4)
        end = len(text) if end < 0 else end
        if not text[pos + 4 : end].strip():
            return text[eol + 1 : pos], text[end + 1 :], end + 1
        pos += 1


# The modules whose code decides card_metadata's result (the key of its cache entries).
CARD_PARSER = ("yaml", "huggingface_hub", "scanner.evidence.card", "scanner.evidence.card_yaml")


def card_metadata(block: str) -> dict[str, Any]:
    """The front matter as huggingface_hub's card data gives it back; raises on bad YAML, a budget, or what the card
    data refuses."""
    from huggingface_hub import ModelCardData

    data = load_yaml(block)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValueError("the metadata block is not a mapping")
    out = ModelCardData(**data, ignore_metadata_errors=False).to_dict()
    return out if isinstance(out, dict) else {}


def read_card(snap: Snapshot) -> CardFacts:
    found = snap.text(*CARD_NAMES)
    if found is None:
        return CardFacts()
    path, text = found
    facts = CardFacts(path=path)
    text = text.replace("\r\n", "\n")
    split = split_front_matter(text)
    if split is None:
        if text.lstrip().startswith("---"):
            facts.error = "YAML front matter opened with --- but never closed"
        facts.body = text
        return facts
    block, facts.body, _ = split
    try:
        if len(block) > MAX_FRONT_MATTER_CHARS:
            raise YAMLBudgetError(f"{len(block)} characters, over the {MAX_FRONT_MATTER_CHARS} budget")
        # parsed once per distinct front matter: a re-scan imports neither PyYAML nor huggingface_hub
        facts.metadata = cached_parse(
            "card", block.encode("utf-8", "surrogatepass"), lambda: card_metadata(block), depends=CARD_PARSER
        )
    except Exception as exc:  # YAML errors, budgets, and the card data's own ValueError/TypeError on hostile input
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        facts.error = f"YAML front matter could not be parsed: {first[:160]}"
    for i, line in enumerate(block.split("\n"), start=2):
        key = line.split(":", 1)[0].strip()
        if key and not line.startswith((" ", "-", "#")):
            facts._lines.setdefault(key, i)
    return facts
