"""Card family: is there a card, can it be read, does it declare the base the evidence points to?"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from scanner.checks.engine import Context, check
from scanner.evidence.lineage import Candidate
from scanner.findings import Finding
from scanner.knowledge import KnowledgeBase, name_match


@check("card.missing", "card.malformed")
def card_present(ctx: Context) -> Iterator[Finding]:
    if ctx.card.path is None:
        yield ctx.finding("card.missing", "no README.md model card")
    elif ctx.card.error:
        yield ctx.finding("card.malformed", ctx.card.error, path=ctx.card.path, line=1)


def _with_licenses(cands: Iterable[Candidate]) -> str:
    return " / ".join(f"{c.upstream.id} ({c.license.id if c.license else c.upstream.license})" for c in cands)


@check("card.base_model_unverified", "card.base_model_undeclared", "card.base_model_mismatch")
def base_model_declared(ctx: Context) -> Iterator[Finding]:
    lineage = ctx.lineage
    config_fits = [c for c in lineage.candidates if c.evidence_of("config") or c.evidence_of("config-vocab")]
    for b in lineage.unknown_declared:
        also = [c for c in config_fits if not c.vendor]
        hint = (
            f"; config.json matches {_with_licenses(also)}, whose obligations are applied"
            if also
            else "; its licence was not checked"
        )
        yield ctx.finding(
            "card.base_model_unverified",
            f"base_model {b!r} is not a known upstream{hint}",
            path=ctx.card.path,
            line=ctx.card.line_of("base_model"),
            base_model=b,
            config_matches=[c.upstream.id for c in also],
        )
    undeclared = [c for c in lineage.undeclared() if c in config_fits]
    if undeclared and not lineage.declared:
        ev = undeclared[0].evidence_of("config") or undeclared[0].evidence_of("config-vocab")
        keys = ev.data.get("keys", []) if ev else []
        several = len(undeclared) > 1
        weak = all(c.evidence_of("config") is None for c in undeclared)
        yield ctx.finding(
            "card.base_model_undeclared",
            f"config.json has the architecture of {'one of ' if several else ''}"
            f"{_with_licenses(undeclared)} ({', '.join(keys)})"
            + (" with a larger vocabulary (a vocabulary extension; lower confidence)" if weak else "")
            + " but the card declares no base_model"
            + (": the recorded keys cannot tell these apart" if several else "")
            + next(
                (
                    f" (its prose names it: {said.detail.removeprefix('the card says ')})"
                    for c in undeclared
                    if (said := c.evidence_of("prose")) is not None
                ),
                "",
            )
            + next((ctx.unknown_publisher(c.license) for c in undeclared if c.license is not None), ""),
            path="config.json",
            upstreams=[c.upstream.id for c in undeclared],
            keys=keys,
            licenses={c.upstream.id: c.upstream.license for c in undeclared},
            confidence=min(c.confidence for c in undeclared).name,
        )
    contradicted = [c for c in lineage.candidates if c.contradicted]
    if contradicted:
        declared = [c.upstream.id for c in lineage.candidates if c.evidence_of("declared")]
        best = contradicted[0]
        yield ctx.finding(
            "card.base_model_mismatch",
            f"declared base {', '.join(declared)} does not fit config.json, which matches "
            f"{' / '.join(c.upstream.id for c in contradicted)}",
            path=ctx.card.path,
            line=ctx.card.line_of("base_model"),
            declared=declared,
            matches=best.upstream.id,
        )


def _same_model(kb: KnowledgeBase, a: str, b: str) -> bool:
    """Two base-model references name the same model: same id, or the knowledge base resolves both to one upstream."""
    if a.strip().lower() == b.strip().lower():
        return True
    ha, hb = name_match(kb, a), name_match(kb, b)
    return ha is not None and hb is not None and ha.upstream.id == hb.upstream.id


@check("card.adapter_base_mismatch")
def adapter_base_declared(ctx: Context) -> Iterator[Finding]:
    """adapter_config.json names the base the adapter was trained on; the card's base_model must be that model."""
    adapter = ctx.snap.jsons.get("adapter_config.json")
    base = adapter.get("base_model_name_or_path") if isinstance(adapter, dict) else None
    declared = ctx.card.base_models
    if not isinstance(base, str) or not declared:
        return
    base = base.strip()
    if not base or base.startswith((".", "/", "~")) or "\\" in base or base.count("/") != 1:
        return  # a path on the trainer's machine: nothing to compare with
    if any(_same_model(ctx.kb, base, d) for d in declared):
        return
    yield ctx.finding(
        "card.adapter_base_mismatch",
        f"adapter_config.json was trained on {base}, but the card declares base_model {', '.join(declared)}",
        path=ctx.card.path,
        line=ctx.card.line_of("base_model"),
        adapter_base=base,
        declared=declared,
    )


@check("card.gguf_base_undeclared")
def gguf_base_declared(ctx: Context) -> Iterator[Finding]:
    """A GGUF names its base models in its own metadata (general.base_model.*); the card must account for them."""
    facts = ctx.gguf
    if facts is None or not facts.base_models:
        return
    lineage = ctx.lineage
    if lineage.unknown_declared:
        return  # a declared base unknown to us may well be built on it (its obligations still apply)
    for b in facts.base_models:
        if lineage.explains(b) or any(_same_model(ctx.kb, b, d) for d in lineage.declared):
            continue
        said = (
            f"the card declares {', '.join(lineage.declared)}"
            if lineage.declared
            else "the card declares no base_model"
        )
        yield ctx.finding(
            "card.gguf_base_undeclared",
            f"{facts.path} names {b} as its base model (general.base_model), but {said}",
            path=ctx.card.path or facts.path,
            gguf=facts.path,
            gguf_base=b,
            declared=lineage.declared,
        )
