"""Model card facts: the YAML front matter through a budgeted safe loader, then huggingface_hub's card data."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml
from huggingface_hub import ModelCardData

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


class _BudgetLoader(yaml.SafeLoader):
    """yaml.SafeLoader (safe constructors only) that refuses documents with too many nodes or aliases."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self._nodes = self._aliases = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self._nodes += 1
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_YAML_ALIASES:
                raise YAMLBudgetError(f"more than {MAX_YAML_ALIASES} aliases (an alias bomb?)")
        if self._nodes > MAX_YAML_NODES:
            raise YAMLBudgetError(f"more than {MAX_YAML_NODES} YAML nodes")
        return super().compose_node(parent, index)

    def compose_document(self) -> yaml.Node | None:
        node = super().compose_document()
        # Aliases share nodes, so a few of them nest into billions of nodes for whatever walks the value later.
        if node is not None and _expanded_size(node, {}) > MAX_YAML_NODES:
            raise YAMLBudgetError(f"aliases expand to more than {MAX_YAML_NODES} nodes (an alias bomb)")
        return node


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    """Nodes in `node` with every alias expanded, counted once per distinct node (memoized)."""
    if id(node) in memo:
        return memo[id(node)]
    memo[id(node)] = MAX_YAML_NODES + 1  # a recursive alias (a node inside itself) counts as too many
    size = 1
    if isinstance(node, yaml.SequenceNode):
        size += sum(_expanded_size(child, memo) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        size += sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    memo[id(node)] = size
    return size


def load_yaml(text: str) -> Any:
    """yaml.safe_load with budgets on nodes and aliases."""
    loader = _BudgetLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


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
        data = load_yaml(block)
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ValueError("the metadata block is not a mapping")
        card_data = ModelCardData(**data, ignore_metadata_errors=False)
        data = card_data.to_dict()
        facts.metadata = data if isinstance(data, dict) else {}
    except Exception as exc:  # YAML errors, budgets, and the card data's own ValueError/TypeError on hostile input
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        facts.error = f"YAML front matter could not be parsed: {first[:160]}"
    for i, line in enumerate(block.split("\n"), start=2):
        key = line.split(":", 1)[0].strip()
        if key and not line.startswith((" ", "-", "#")):
            facts._lines.setdefault(key, i)
    return facts
