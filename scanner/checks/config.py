"""Config family: say which upstream architecture config.json matches (lineage for reviewers)."""

from __future__ import annotations

from collections.abc import Iterator

from scanner.checks.engine import Context, check
from scanner.evidence.lineage import ACCOUNTED
from scanner.findings import Finding


@check("config.upstream_signature")
def config_signature(ctx: Context) -> Iterator[Finding]:
    lineage = ctx.lineage
    for c in lineage.candidates:
        ev = c.evidence_of("config") or c.evidence_of("config-vocab")
        if ev is None or c.vendor or c.contradicted:
            continue
        if c.accounted:
            how = next(e.detail for e in c.evidence if e.kind in ACCOUNTED)
            why = f"accounted for: {how}"
        elif lineage.unknown_declared:
            why = (
                f"the declared base {', '.join(lineage.unknown_declared)} is unknown to originscan; "
                f"{c.upstream.id}'s obligations are applied on this evidence"
            )
        else:
            continue  # reported as card.base_model_undeclared
        yield ctx.finding(
            "config.upstream_signature",
            f"config.json matches {c.upstream.id} ({why})",
            path="config.json",
            upstream=c.upstream.id,
            keys=ev.data.get("keys", []),
            confidence=c.confidence.name,
            alternatives=list(c.alternatives),
        )
