"""Code family: definitions of shipped Python files copied from a registered upstream's code
(scanner.provenance.code)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from scanner.checks.engine import Context, check
from scanner.findings import Finding
from scanner.provenance.code import MIN_COPIED_STATEMENTS, CodeMatch, CopiedDefinition, background, held_by


def _declares(ctx: Context, upstream: str) -> bool:
    """The card names this upstream: as a base model, through the lineage, or by its id in the text."""
    name = upstream.lower()
    if any(b.lower() == name for b in ctx.lineage.declared) or ctx.lineage.explains(upstream):
        return True
    return "/" in name and name in ctx.card.body.lower()


def _span(defs: list[CopiedDefinition], upstream: bool) -> str:
    lines = [d.upstream_lines if upstream else d.suspect_lines for d in defs]
    return f"{min(a for a, _ in lines)}-{max(b for _, b in lines)}"


def _group(defs: list[CopiedDefinition]) -> str:
    """`pos_values (lines 26-31) ← resampler.py:sincos_table_1d (17-24)`, or for several methods of one class
    copied from one upstream class: `Projection.{__init__, forward} (lines 42-97) ← …:Resampler.{__init__, forward}`."""
    d = defs[0]
    if len(defs) == 1:
        mine, theirs = d.suspect_name, d.upstream_name
    else:
        cls, up_cls = d.suspect_name.rpartition(".")[0], d.upstream_name.rpartition(".")[0]
        mine = f"{cls}.{{{', '.join(x.suspect_name.rpartition('.')[2] for x in defs)}}}"
        theirs = f"{up_cls}.{{{', '.join(x.upstream_name.rpartition('.')[2] for x in defs)}}}"
    share = sum(x.containment * x.statements for x in defs) / max(1, sum(x.statements for x in defs))
    return f"{mine} (lines {_span(defs, False)}) ← {d.upstream_path}:{theirs} ({_span(defs, True)}, {share:.0%} shared)"


def _definitions(m: CodeMatch, limit: int = 8) -> str:
    """Each copied definition with both line ranges, a class's copied methods together."""
    groups: dict[tuple[str, str, str], list[CopiedDefinition]] = {}
    for d in m.definitions:
        cls, up_cls = d.suspect_name.rpartition(".")[0], d.upstream_name.rpartition(".")[0]
        key = (cls, d.upstream_path, up_cls) if cls and up_cls else (d.suspect_name, d.upstream_path, "")
        groups.setdefault(key, []).append(d)
    shown = [_group(g) for g in groups.values()]
    more = f"; and {len(shown) - limit} more" if len(shown) > limit else ""
    return "; ".join(shown[:limit]) + more


def _evidence(m: CodeMatch) -> dict[str, Any]:
    return dict(
        upstream=m.upstream,
        upstream_paths=list(m.upstream_paths),
        upstream_license=m.license,
        copied_statements=round(m.copied_statements, 1),
        suspect_statements=m.suspect_statements,
        similarity=round(m.similarity, 3),
        definitions=[
            {
                "name": d.suspect_name,
                "lines": list(d.suspect_lines),
                "upstream_path": d.upstream_path,
                "upstream_name": d.upstream_name,
                "upstream_lines": list(d.upstream_lines),
                "statements": d.statements,
                "containment": round(d.containment, 3),
                "survived": round(d.survived, 3),
                "also_from": list(d.also_from),
            }
            for d in m.definitions
        ],
        shared_settings=[
            {
                "feature": f.key,
                "line": f.suspect_line,
                "upstream_path": f.upstream_path,
                "upstream_line": f.upstream_line,
                "rarity": round(f.rarity, 2),
            }
            for f in m.shared
        ],
        kept_skeleton=[
            {
                "item": f.key,
                "line": f.suspect_line,
                "upstream_path": f.upstream_path,
                "upstream_line": f.upstream_line,
                "rarity": round(f.rarity, 2),
            }
            for f in m.skeleton
        ],
        kept_code=[
            {
                "name": k.name,
                "lines": list(k.lines),
                "upstream_path": k.upstream_path,
                "upstream_name": k.upstream_name,
                "upstream_lines": list(k.upstream_lines),
                "own_tokens": k.own_tokens,
                "kept_tokens": k.kept_tokens,
            }
            for k in m.kept
        ],
        kept_prose=[
            {
                "text": f.key.removeprefix("prose "),
                "line": f.suspect_line,
                "upstream_path": f.upstream_path,
                "upstream_line": f.upstream_line,
            }
            for f in m.prose
        ],
    )


def _held(key: str) -> str:
    n = held_by(key)
    return "in at most 1" if n <= 1 else f"in {n}"


def _what(m: CodeMatch) -> str:
    """What was copied: the definitions, for a small file its rare settings and imports, or the upstream's own
    comment and docstring lines kept in rewritten code, with both lines."""
    n = len(m.definitions)
    if (
        n
        and m.copied_statements >= MIN_COPIED_STATEMENTS
        or not (m.small_file_copied or m.prose_copied or m.skeleton_copied or m.kept_copied)
    ):
        return f"copies {n} definition{'s' if n != 1 else ''} ({m.copied_statements:.0f} statements)"
    if m.kept_copied:
        parts = "; ".join(
            f"{k.name} (lines {k.lines[0]}-{k.lines[1]} ← {k.upstream_path}:{k.upstream_name} "
            f"({k.upstream_lines[0]}-{k.upstream_lines[1]}), {k.share:.0%} of its own tokens)"
            for k in m.kept[:6]
        )
        return (
            f"is a small file whose code is mostly kept from one upstream file: {len(m.kept)} of its definitions, "
            f"{m.kept_tokens} tokens in long shared stretches that no common idiom has ({parts})"
        )
    if m.skeleton_copied:
        kept = "; ".join(
            f"{f.key.removeprefix('stmt ')} (line {f.suspect_line} ← {f.upstream_path}:{f.upstream_line}, "
            f"{_held(f.key)} of {background().directories} background directories)"
            for f in m.skeleton[:6]
        )
        return (
            f"is a small file that keeps the skeleton of one upstream file: {len(m.skeleton)} of its lines (imports, "
            f"class headers, signatures, statements) that no common idiom has ({kept})"
        )
    if m.small_file_copied:
        shared = "; ".join(
            f"{f.key} (line {f.suspect_line} ← {f.upstream_path}:{f.upstream_line})" for f in m.shared[:6]
        )
        return f"is a small file that shares {len(m.shared)} rare settings and imports ({shared})"
    kept = "; ".join(
        f"'{f.key.removeprefix('prose ')[:60]}' (line {f.suspect_line} ← {f.upstream_path}:{f.upstream_line})"
        for f in m.prose[:4]
    )
    return f"keeps {len(m.prose)} of the upstream's own comment and docstring lines ({kept})"


@check("code.copied_undeclared")
def copied_code(ctx: Context) -> Iterator[Finding]:
    for m in ctx.code_matches:
        if _declares(ctx, m.upstream):
            continue
        yield ctx.finding(
            "code.copied_undeclared",
            f"{m.suspect_path} {_what(m)} from {m.upstream} ({m.upstream_path}, {m.license or 'licence unknown'}), "
            f"which the card does not name" + (f": {_definitions(m)}" if m.definitions else ""),
            path=m.suspect_path,
            line=m.definitions[0].suspect_lines[0]
            if m.definitions
            else min(
                [f.suspect_line for f in (*m.shared, *m.prose, *m.skeleton)] + [k.lines[0] for k in m.kept],
                default=None,
            ),
            **_evidence(m),
        )


@check("code.notice_removed")
def removed_notices(ctx: Context) -> Iterator[Finding]:
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
