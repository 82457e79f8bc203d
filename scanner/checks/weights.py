"""Weights family: the index's verdicts on whether the weights derive from a registered upstream, and the behaviour
verdicts `originscan probe` gave (scan --probe-results): a model that behaves like a derivative of an upstream the card
does not declare owes the same declaration as one whose weights derive from it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from scanner.checks.engine import Context, check
from scanner.errors import SourceError
from scanner.findings import Finding
from scanner.knowledge import name_match
from scanner.provenance.result import Relation, WeightMatch, WeightsRead

if TYPE_CHECKING:  # numpy: loaded only when probe results were given
    from scanner.provenance.behaviour import BehaviourVerdict

# A derivation the card does not declare, by how the weights relate to the upstream (Verdict.relation): the rule
# and how its message says it.
UNDECLARED: dict[Relation, tuple[str, str]] = {
    "copy": ("weights.exact_copy", "are a byte-identical copy of"),
    "disguised copy": ("weights.disguised_copy", "are a disguised copy of"),
    "fine-tune": ("weights.undeclared_derivative", "derive from"),
}


@dataclass(frozen=True)
class Derivation:
    """A measured derivation from a named upstream: the weight index's verdict or a behaviour probe's."""

    upstream: str
    license: str | None
    relation: Relation  # behaviour cannot tell a copy from a fine-tune: always "fine-tune" there
    p_value: float
    score: float
    reason: str
    derives: str  # "the weights derive from" / "the model behaves like a derivative of"
    is_: str  # the same for an undeclared base, by relation: "the weights are a disguised copy of", …
    path: str | None
    evidence: dict[str, Any]


def _from_weights(ctx: Context, m: WeightMatch) -> Derivation:
    v = m.verdict
    evidence: dict[str, Any] = dict(bytes_read=v.bytes_read, weight_bytes=v.weight_bytes)
    read = [e.detail for e in v.evidence if isinstance(e, WeightsRead) and e.model == "suspect"]
    if read:  # which of the repo's GGUF variants was compared
        evidence["weights_read"] = read[0]
    return Derivation(
        m.name,
        m.license,
        v.relation,
        v.p_value,
        v.score,
        v.reason,
        "the weights derive from",
        f"the weights {UNDECLARED[v.relation][1]}" if v.relation in UNDECLARED else "the weights derive from",
        next((f.path for f in ctx.snap.weight_files()), None),
        evidence,
    )


def _from_behaviour(ctx: Context, v: BehaviourVerdict) -> Derivation:
    hit = name_match(ctx.kb, v.reference_id)
    evidence: dict[str, Any] = dict(
        evidence_kind="behaviour",
        false_positive_rate=v.alpha,
        tests=[t.name for t in v.tests if t.p_value is not None],
        probed_suspect=v.suspect,
    )
    return Derivation(
        v.reference_id,
        hit.upstream.license if hit is not None else None,
        "fine-tune",
        v.p_value,
        v.score,
        v.reason,
        "the model behaves like a derivative of",
        "the model behaves like a derivative of",
        ctx.card.path,
        evidence,
    )


def _same_upstream(ctx: Context, a: str, b: str) -> bool:
    if a.strip().lower() == b.strip().lower():
        return True
    ha, hb = name_match(ctx.kb, a), name_match(ctx.kb, b)
    return ha is not None and hb is not None and ha.upstream.id == hb.upstream.id


def derivations(ctx: Context) -> list[Derivation]:
    """Every derived verdict, weights first; a behaviour verdict on an upstream the weights already show adds none."""
    out = [_from_weights(ctx, m) for m in ctx.weight_matches if m.verdict.derived]
    by_weights = [d.upstream for d in out]
    for v in ctx.behaviour_verdicts:
        if v.verdict == "derived" and not any(_same_upstream(ctx, v.reference_id, w) for w in by_weights):
            out.append(_from_behaviour(ctx, v))
    return out


@check("weights.base_mismatch", "weights.exact_copy", "weights.disguised_copy", "weights.undeclared_derivative")
def weight_provenance(ctx: Context) -> Iterator[Finding]:
    derived = derivations(ctx)
    if not derived:
        return
    declared_hit = any(ctx.lineage.explains(d.upstream) for d in derived)
    for d in derived:
        if ctx.lineage.explains(d.upstream):
            continue
        evidence: dict[str, Any] = dict(
            upstream=d.upstream, upstream_license=d.license, score=d.score, p_value=d.p_value, **d.evidence
        )
        if ctx.lineage.declared and not declared_hit:
            yield ctx.finding(
                "weights.base_mismatch",
                f"the card declares {', '.join(ctx.lineage.declared)} but {d.derives} {d.upstream} (p={d.p_value:.1e})",
                path=ctx.card.path,
                **evidence,
            )
            continue
        yield ctx.finding(
            UNDECLARED[d.relation][0],
            f"{d.is_} {d.upstream} ({d.license or 'licence unknown'}), which the card "
            f"does not declare (score {d.score:.2f}, p={d.p_value:.1e}; {d.reason})",
            path=d.path,
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
