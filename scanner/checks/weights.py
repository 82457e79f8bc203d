"""Weights family: the index's verdicts on whether the weights derive from a registered upstream."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from scanner.checks.engine import Context, check
from scanner.errors import SourceError
from scanner.findings import Finding
from scanner.provenance.result import Relation, WeightsRead

# A derivation the card does not declare, by how the weights relate to the upstream (Verdict.relation): the rule
# and how its message says it.
UNDECLARED: dict[Relation, tuple[str, str]] = {
    "copy": ("weights.exact_copy", "are a byte-identical copy of"),
    "disguised copy": ("weights.disguised_copy", "are a disguised copy of"),
    "fine-tune": ("weights.undeclared_derivative", "derive from"),
}


@check("weights.base_mismatch", "weights.exact_copy", "weights.disguised_copy", "weights.undeclared_derivative")
def weight_provenance(ctx: Context) -> Iterator[Finding]:
    derived = [m for m in ctx.weight_matches if m.verdict.derived]
    if not derived:
        return
    declared_hit = any(ctx.lineage.explains(m.name) for m in derived)
    for m in derived:
        if ctx.lineage.explains(m.name):
            continue
        v = m.verdict
        evidence: dict[str, Any] = dict(
            upstream=m.name,
            upstream_license=m.license,
            score=v.score,
            p_value=v.p_value,
            bytes_read=v.bytes_read,
            weight_bytes=v.weight_bytes,
        )
        read = [e.detail for e in v.evidence if isinstance(e, WeightsRead) and e.model == "suspect"]
        if read:  # which of the repo's GGUF variants was compared
            evidence["weights_read"] = read[0]
        if ctx.lineage.declared and not declared_hit:
            yield ctx.finding(
                "weights.base_mismatch",
                f"the card declares {', '.join(ctx.lineage.declared)} but the "
                f"weights derive from {m.name} (p={v.p_value:.1e})",
                path=ctx.card.path,
                **evidence,
            )
            continue
        rule, what = UNDECLARED[v.relation]
        yield ctx.finding(
            rule,
            f"the weights {what} {m.name} ({m.license or 'licence unknown'}), which the card "
            f"does not declare (score {v.score:.2f}, p={v.p_value:.1e}; {v.reason})",
            path=next((f.path for f in ctx.snap.weight_files()), None),
            **evidence,
        )


@check("source.unreadable", "source.malformed", "source.unreachable", "source.too_large", "source.changed")
def weight_headers(ctx: Context) -> Iterator[Finding]:
    """Every header of a format that has one (safetensors, GGUF) is validated, registered upstreams or not: a
    malformed file is a finding."""
    from scanner.file_formats import format_of
    from scanner.provenance.views import HEADER_READERS

    for f in ctx.snap.weight_files():
        fmt = format_of(f.path)
        if fmt is None or fmt not in HEADER_READERS or f.lfs_pointer:
            continue
        parse_header, malformed = HEADER_READERS[fmt]()
        try:
            src = ctx.snap.open(f.path)
        except OSError as exc:
            yield ctx.finding("source.unreadable", f"{f.path}: {exc}", path=f.path)
            continue
        try:
            parse_header(src, f.path)
        except malformed as exc:
            yield ctx.finding("source.malformed", str(exc), path=f.path)
        except OSError as exc:
            if not any(p.rule == "source.unverifiable" for p in ctx.snap.problems):
                # a remote read names what went wrong (a malformed answer, a body that never ended, …)
                rule = exc.rule if isinstance(exc, SourceError) else "source.unreadable"
                yield ctx.finding(rule, f"{f.path}: {exc}", path=f.path)
        finally:
            src.close()
