"""The budgeted YAML loader of model-card front matter (scanner/evidence/card.py). Its own module so that PyYAML is
imported only when a card is parsed: a re-scan reads the parsed front matter from the cache (scanner/parsed_cache.py)."""

from __future__ import annotations

from typing import Any

import yaml

from scanner.evidence.card import MAX_YAML_ALIASES, MAX_YAML_NODES, YAMLBudgetError


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


def load_budgeted(text: str) -> Any:
    """yaml.safe_load with budgets on nodes and aliases."""
    loader = _BudgetLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


__all__ = ["load_budgeted"]
