"""Code family: Python files copied from a registered upstream's code (scanner.provenance.code)."""

from __future__ import annotations

from scanner.checks.engine import Context, check
from scanner.provenance.code import CodeMatch


def _declares(ctx: Context, upstream: str) -> bool:
    """The card names this upstream: as a base model, through the lineage, or by its id in the text."""
    name = upstream.lower()
    if any(b.lower() == name for b in ctx.lineage.declared) or ctx.lineage.explains(upstream):
        return True
    return "/" in name and name in ctx.card.body.lower()


def _regions(m: CodeMatch, limit: int = 5) -> str:
    spans = [
        f"{r.suspect_lines[0]}-{r.suspect_lines[1]} ~ {m.upstream_path}:{r.upstream_lines[0]}-{r.upstream_lines[1]}"
        for r in m.regions[:limit]
    ]
    return ", ".join(spans) + (f" (+{len(m.regions) - limit} more)" if len(m.regions) > limit else "")


def _evidence(m: CodeMatch) -> dict:
    return dict(
        upstream=m.upstream,
        upstream_path=m.upstream_path,
        upstream_license=m.license,
        similarity=round(m.similarity, 3),
        coverage=round(m.coverage, 3),
        api_similarity=round(m.api_similarity, 3),
        matched_hashes=m.matched,
        regions=[
            {"lines": list(r.suspect_lines), "upstream_lines": list(r.upstream_lines), "hashes": r.hashes}
            for r in m.regions
        ],
    )


@check("code.copied_undeclared")
def copied_code(ctx: Context):
    for m in ctx.code_matches:
        if _declares(ctx, m.upstream):
            continue
        yield ctx.finding(
            "code.copied_undeclared",
            f"{m.suspect_path} copies code from {m.upstream} ({m.upstream_path}, "
            f"{m.license or 'licence unknown'}), which the card does not name: "
            f"{m.similarity:.0%} of the file in copied stretches; lines {_regions(m)}",
            path=m.suspect_path,
            line=m.regions[0].suspect_lines[0] if m.regions else None,
            **_evidence(m),
        )


@check("code.notice_removed")
def removed_notices(ctx: Context):
    for m in ctx.code_matches:
        lic = ctx.kb.license(m.license) if m.license else None
        if not m.notices_missing or lic is None or not lic.conditions.get("keep_notices"):
            continue
        yield ctx.finding(
            "code.notice_removed",
            f"{m.suspect_path} copies {m.upstream}'s {m.upstream_path} without its notice "
            f"({'; '.join(m.notices_missing)[:160]}), which {lic.name} requires to be kept",
            path=m.suspect_path,
            notices_missing=list(m.notices_missing),
            **_evidence(m),
        )
