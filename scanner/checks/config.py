"""Config family: say which upstream architecture config.json matches (lineage for reviewers)."""
from __future__ import annotations

from scanner.checks.engine import Context, check


@check
def config_signature(ctx: Context):
    for m in ctx.config_matches:
        if ctx.is_declared(m.upstream.id):
            yield ctx.finding("config.upstream_signature", f"config.json matches {m.upstream.id} (declared)",
                              path="config.json", upstream=m.upstream.id, keys=m.keys)
