"""Card family: is there a card, can it be read, does it declare the base the evidence points to?"""
from __future__ import annotations

from scanner.checks.engine import Context, check
from scanner.knowledge import resolve_upstream


@check
def card_present(ctx: Context):
    if ctx.card.path is None:
        yield ctx.finding("card.missing", "no README.md model card")
    elif ctx.card.error:
        yield ctx.finding("card.malformed", ctx.card.error, path=ctx.card.path, line=1)


@check
def base_model_declared(ctx: Context):
    for b in ctx.declared:
        if resolve_upstream(ctx.kb, b) is None:
            yield ctx.finding("card.base_model_unverified", f"base_model {b!r} is not a known upstream; its "
                              "licence was not checked", path=ctx.card.path, line=ctx.card.line_of("base_model"),
                              base_model=b)
    matches = [m for m in ctx.config_matches if not ctx.is_self(m.upstream.id)]
    if not matches:
        return
    best = matches[0]
    if not ctx.declared:
        ups = [m.upstream.id for m in matches]
        yield ctx.finding("card.base_model_undeclared",
                          f"config.json has the exact architecture of {' / '.join(ups)} "
                          f"({', '.join(best.keys)}) but the card declares no base_model",
                          path="config.json", upstreams=ups, keys=best.keys)
        return
    declared = ctx.declared_upstreams()
    if declared and not any(ctx.is_declared(m.upstream.id) for m in matches):
        sig_keys = set(best.keys)
        if all(any(k in d.config and d.config[k] != best.upstream.config.get(k) for k in sig_keys) for d in declared):
            yield ctx.finding("card.base_model_mismatch",
                              f"declared base {', '.join(d.id for d in declared)} does not fit config.json, "
                              f"which matches {best.upstream.id}", path=ctx.card.path,
                              line=ctx.card.line_of("base_model"), declared=[d.id for d in declared],
                              matches=best.upstream.id)
