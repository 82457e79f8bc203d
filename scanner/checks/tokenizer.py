"""Tokenizer family: distinctive special tokens of an upstream the card does not declare."""

from __future__ import annotations

from collections.abc import Iterator

from scanner.checks.engine import Context, check
from scanner.findings import Finding


@check("tokenizer.upstream_special_tokens")
def undeclared_special_tokens(ctx: Context) -> Iterator[Finding]:
    for c in ctx.lineage.undeclared():
        ev = c.evidence_of("tokenizer")
        unexplained = ev.data.get("tokens") if ev else None
        if not unexplained:
            continue
        path = "tokenizer_config.json" if "tokenizer_config.json" in ctx.snap.jsons else "tokenizer.json"
        shown = ", ".join(f"{t}={i}" for t, i in list(unexplained.items())[:6])
        yield ctx.finding(
            "tokenizer.upstream_special_tokens",
            f"{len(unexplained)} special tokens of {c.upstream.id} at the same ids ({shown}"
            f"{' …' if len(unexplained) > 6 else ''}), and it is not a declared base"
            + (ctx.unknown_publisher(c.license) if c.license is not None else ""),
            path=path,
            upstream=c.upstream.id,
            tokens=unexplained,
        )
