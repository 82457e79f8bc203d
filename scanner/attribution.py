"""The attribution a derivative must ship: one block per licence in its lineage."""

from __future__ import annotations

from typing import Any

from scanner.evidence.lineage import Lineage
from scanner.policy import Policy
from scanner.sources.interface import Snapshot


def attribution_blocks(snap: Snapshot, policy: Policy | None = None) -> list[dict[str, Any]]:
    """`policy` is read for its `publisher:` (a licensor's own release owes its licence nothing)."""
    from scanner.pipeline import build_context

    ctx = build_context(snap, policy or Policy())
    return lineage_blocks(ctx.lineage)


def lineage_blocks(lineage: Lineage) -> list[dict[str, Any]]:
    """One block per licence binding a scanned model's lineage (the HTML report shows them too)."""
    blocks: dict[str, dict[str, Any]] = {}
    for ob in lineage.obligations():
        lic = ob.license
        block = blocks.setdefault(
            lic.id,
            {
                "license_id": lic.id,
                "license_name": lic.name,
                "url": lic.url,
                "upstream": [],
                "notice": lic.conditions.get("notice"),
                "attribution": lic.conditions.get("attribution"),
                "naming": lic.conditions.get("naming"),
                "license_copy": bool(lic.conditions.get("license_copy")),
                "use_restrictions": bool(lic.conditions.get("use_restrictions")),
                "mark_modified": bool(lic.conditions.get("mark_modified")),
            },
        )
        block["upstream"].append(f"{ob.source} ({ob.known_from})")
    for b in blocks.values():
        b["upstream"] = ", ".join(b["upstream"])
    return list(blocks.values())
