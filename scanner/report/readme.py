"""The README's rule table, generated from rules/catalogue.yaml so it cannot drift: `originscan rules --format
markdown` prints it to paste under the README's "## Rules", and tests/test_readme.py fails when the two differ."""

from __future__ import annotations

from collections.abc import Iterable

from scanner.knowledge import Rule

RULE_TABLE_HEADER = "| id | severity | what it catches |\n|---|---|---|\n"


def rule_table(rules: Iterable[Rule]) -> str:
    """One row per rule in catalogue order: its id, default severity and one-line doc (the catalogue's own
    Markdown: its docs are written for this table)."""
    return RULE_TABLE_HEADER + "".join(f"| `{r.id}` | {r.severity.name} | {_cell(r.doc)} |\n" for r in rules)


def _cell(text: str) -> str:
    """One table cell: on one line, and a `|` does not end it."""
    return " ".join(text.split()).replace("|", "\\|")
