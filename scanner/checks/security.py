"""Security family: pickle weights (inspected as opcodes, never loaded) and code that would run on load."""
from __future__ import annotations

from scanner.checks.engine import Context, check
from scanner.evidence.pickles import scan_pickle
from scanner.sources.interface import PICKLE_SUFFIXES


@check
def pickle_weights(ctx: Context):
    for f in ctx.snap.weight_files():
        if not f.path.lower().endswith(PICKLE_SUFFIXES):
            continue
        yield ctx.finding("security.pickle_weights", f"{f.path} is a pickle-based weight file; originscan "
                          "inspected its opcodes and never loaded it", path=f.path, size=f.size)
        if f.lfs_pointer:
            continue
        try:
            src = ctx.snap.open(f.path)
            try:
                scan = scan_pickle(src)
            finally:
                src.close()
        except OSError as exc:
            yield ctx.finding("source.unverifiable", f"{f.path}: could not inspect ({exc})", path=f.path)
            continue
        if scan.dangerous:
            named = ", ".join(u.replace(" ", ".") for u in scan.unsafe[:5])
            what = (f"would import {named} when loaded" if named else
                    f"would call what the analysis cannot name when loaded: {scan.unresolved[0]}")
            yield ctx.finding("security.pickle_unsafe_import", f"{f.path} {what}", path=f.path,
                              imports=scan.unsafe, unresolved=scan.unresolved)
        if scan.error:
            yield ctx.finding("security.pickle_unverifiable", f"{f.path} could not be fully analysed, so it cannot "
                              f"be shown safe to load: {scan.error}", path=f.path)


@check
def remote_code(ctx: Context):
    config = ctx.snap.jsons.get("config.json")
    auto_map = config.get("auto_map") if isinstance(config, dict) else None
    code = [p for p in ctx.snap.files if p.endswith(".py")]
    if auto_map or code:
        yield ctx.finding("security.remote_code", "loading this model needs trust_remote_code"
                          + (f" ({len(code)} Python file{'s' if len(code) != 1 else ''} shipped)" if code else ""),
                          path="config.json" if auto_map else code[0],
                          auto_map=bool(auto_map), files=code[:20])
