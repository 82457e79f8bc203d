"""Security family: what would run on load — pickles (their opcodes analysed), numpy object arrays, Keras
Lambda layers, ONNX external data outside the repo (all read, never loaded) — and shipped modelling code."""

from __future__ import annotations

from collections.abc import Iterator

from scanner.checks.engine import Context, check
from scanner.evidence.pickles import PickleScan, scan_pickle
from scanner.evidence.unsafe_formats import handles, scan_file
from scanner.file_formats import format_of
from scanner.findings import Finding

PICKLE_RULES = ("security.pickle_unsafe_import", "security.pickle_unverifiable", "source.malformed")  # _pickle_findings


@check("security.pickle_weights", "source.unverifiable", *PICKLE_RULES)
def pickle_weights(ctx: Context) -> Iterator[Finding]:
    for f in ctx.snap.weight_files():
        fmt = format_of(f.path)
        if fmt is None or not fmt.pickled:
            continue
        yield ctx.finding(
            "security.pickle_weights",
            f"{f.path} is a pickle-based weight file; originscan inspected its opcodes and never loaded it",
            path=f.path,
            size=f.size,
        )
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
        yield from _pickle_findings(ctx, f.path, scan)


def _pickle_findings(ctx: Context, path: str, scan: PickleScan, how: str = "when loaded") -> Iterator[Finding]:
    if scan.dangerous:
        named = ", ".join(u.replace(" ", ".") for u in scan.unsafe[:5])
        what = (
            f"would import {named} {how}"
            if named
            else f"would call what the analysis cannot name {how}: {scan.unresolved[0]}"
        )
        yield ctx.finding(
            "security.pickle_unsafe_import",
            f"{path} {what}",
            path=path,
            imports=scan.unsafe,
            unresolved=scan.unresolved,
        )
    if scan.error:
        yield ctx.finding(
            "security.pickle_unverifiable",
            f"{path} could not be fully analysed, so it cannot be shown safe to load: {scan.error}",
            path=path,
        )
    if scan.malformed:
        yield ctx.finding("source.malformed", f"{path}: {scan.malformed}", path=path)


@check(
    "security.numpy_object_array",
    "security.keras_code",
    "security.onnx_external_data",
    "source.unverifiable",
    *PICKLE_RULES,
)
def unsafe_formats(ctx: Context) -> Iterator[Finding]:
    """numpy object arrays, Keras Lambda layers and foreign modules, ONNX external data outside the repo."""
    for f in ctx.snap.weight_files():
        if not handles(f.path) or f.lfs_pointer:
            continue
        try:
            src = ctx.snap.open(f.path)
            try:
                scan = scan_file(src, f.path, remote=ctx.snap.kind != "local")
            finally:
                src.close()
        except OSError as exc:
            yield ctx.finding("source.unverifiable", f"{f.path}: could not inspect ({exc})", path=f.path)
            continue
        if scan.objects:
            yield ctx.finding(
                "security.numpy_object_array",
                f"{f.path} holds object arrays "
                f"({', '.join(scan.objects[:5])}) that numpy only loads with allow_pickle=True, "
                "which unpickles them",
                path=f.path,
                arrays=scan.objects,
            )
        if scan.pickle is not None:
            yield from _pickle_findings(ctx, f.path, scan.pickle, "when loaded with allow_pickle=True")
        if scan.code:
            yield ctx.finding(
                "security.keras_code",
                f"{f.path} would run or import code when loaded: {'; '.join(scan.code[:5])}",
                path=f.path,
                code=scan.code,
            )
        if scan.escapes:
            yield ctx.finding(
                "security.onnx_external_data",
                f"{f.path} reads external data from outside the repo: {'; '.join(scan.escapes[:5])}",
                path=f.path,
                locations=scan.escapes,
            )
        if scan.unverifiable:
            yield ctx.finding("source.unverifiable", f"{f.path}: {scan.unverifiable}", path=f.path)


@check("security.remote_code")
def remote_code(ctx: Context) -> Iterator[Finding]:
    config = ctx.snap.jsons.get("config.json")
    auto_map = config.get("auto_map") if isinstance(config, dict) else None
    code = [p for p in ctx.snap.files if p.endswith(".py")]
    if auto_map or code:
        yield ctx.finding(
            "security.remote_code",
            "loading this model needs trust_remote_code"
            + (f" ({len(code)} Python file{'s' if len(code) != 1 else ''} shipped)" if code else ""),
            path="config.json" if auto_map else code[0],
            auto_map=bool(auto_map),
            files=code[:20],
        )
