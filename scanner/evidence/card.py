"""Model card facts, parsed by huggingface_hub's card loader (yaml.safe_load underneath)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from huggingface_hub import ModelCard

from scanner.sources.interface import Snapshot

CARD_NAMES = ("README.md", "readme.md", "README.MD", "Readme.md")


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
        return [str(v).strip() for v in value if isinstance(v, str) and v.strip()]

    @property
    def model_name(self) -> str | None:
        name = self.metadata.get("model_name")
        if isinstance(name, str) and name.strip():
            return name.strip()
        index = self.metadata.get("model-index")
        if isinstance(index, list) and index and isinstance(index[0], dict) and isinstance(index[0].get("name"), str):
            return index[0]["name"]
        return None

    def line_of(self, key: str) -> int | None:
        """1-based line of a front-matter key, for annotations."""
        return None if self.path is None else self._lines.get(key)

    _lines: dict[str, int] = field(default_factory=dict, repr=False)


_FRONT = re.compile(r"\A\s*---\s*\n(.*?)\n---\s*(?:\n|\Z)", re.S)


def read_card(snap: Snapshot) -> CardFacts:
    found = snap.text(*CARD_NAMES)
    if found is None:
        return CardFacts()
    path, text = found
    facts = CardFacts(path=path)
    text = text.replace("\r\n", "\n")
    if not _FRONT.match(text):
        if text.lstrip().startswith("---"):
            facts.error = "YAML front matter opened with --- but never closed"
        facts.body = text
        return facts
    try:
        card = ModelCard(text, ignore_metadata_errors=False)
        data = card.data.to_dict() if card.data else {}
        facts.metadata = data if isinstance(data, dict) else {}
        facts.body = card.text or ""
    except Exception as exc:  # the card parser raises ValueError/YAMLError/TypeError on hostile input
        facts.error = f"YAML front matter could not be parsed: {str(exc).splitlines()[0][:160]}"
        m = _FRONT.match(text)
        facts.body = text[m.end():] if m else text
    m = _FRONT.match(text)
    if m:
        for i, line in enumerate(m.group(1).split("\n"), start=2):
            key = line.split(":", 1)[0].strip()
            if key and not line.startswith((" ", "-", "#")):
                facts._lines.setdefault(key, i)
    return facts
