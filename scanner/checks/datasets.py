"""Training data: the terms of the datasets a model was trained on, and of the models that generated them.

Reads `ctx.datasets` (scanner/evidence/datasets.py) and the output terms of rules/datasets/generators.yaml; the
licence facts are rules/licenses.yaml's. A dataset nothing describes is reported as unknown, never as permissive.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from scanner.checks.attribution import model_name, name_meets
from scanner.checks.engine import Context, check
from scanner.evidence.datasets import DatasetFacts, GeneratorFact
from scanner.evidence.licenses import all_text
from scanner.findings import Finding
from scanner.knowledge import License, dataset_knowledge, normalise


def _evidence(d: DatasetFacts, **more: Any) -> dict[str, Any]:
    first = d.found[0] if d.found else None
    out: dict[str, Any] = {
        "dataset": d.id,
        "found_in": first.place if first else None,
        "dataset_license": [lic.id for lic in d.licenses],
        "license_source": d.license_from,
    }
    if d.via:
        out["via"] = d.via
    out.update(more)
    return out


def _found(d: DatasetFacts) -> str:
    first = d.found[0] if d.found else None
    if first is None:
        return ""
    return f" (named in the {first.place}" + (f", line {first.line}" if first.line else "") + ")"


def _commercial(lic: License | None) -> bool:
    return lic is not None and lic.commercial in (True, "conditional")


@check("license.data_noncommercial", "license.data_share_alike", "license.data_unlicensed", "license.data_unknown")
def dataset_licenses(ctx: Context) -> Iterator[Finding]:
    own = ctx.own_license()
    unknown: list[str] = []
    for d in ctx.datasets:
        if d.unknown:
            unknown.append(d.id)
            continue
        if d.unlicensed:
            yield ctx.finding(
                "license.data_unlicensed",
                f"the training dataset {d.id} is published without a licence{_found(d)}; source: {d.license_from}",
                path=ctx.card.path,
                **_evidence(d),
            )
        for lic in d.all_licenses:
            published = lic in d.licenses
            whose = "its licence" if published else "the licence of the data it was made from"
            if lic.commercial is False and _commercial(own):
                assert own is not None
                yield ctx.finding(
                    "license.data_noncommercial",
                    f"the training dataset {d.id} forbids commercial use ({whose}: {lic.name}) but the model is "
                    f"published under {own.name}, which allows it{_found(d)}",
                    path=ctx.card.path,
                    line=ctx.card.line_of("license"),
                    **_evidence(d, noncommercial_license=lic.id, model_license=own.id),
                )
            if lic.conditions.get("share_alike") and own is not None and not lic.allows_outbound(own.id):
                yield ctx.finding(
                    "license.data_share_alike",
                    f"the training dataset {d.id} is under {lic.name} (share-alike: adaptations under the same or a "
                    f"compatible licence) and the model is published under {own.name}{_found(d)}",
                    path=ctx.card.path,
                    line=ctx.card.line_of("license"),
                    **_evidence(d, share_alike_license=lic.id, model_license=own.id),
                )
    if unknown:
        yield ctx.finding(
            "license.data_unknown",
            f"the terms of {len(unknown)} training dataset(s) are unknown (not checked, not presumed permissive): "
            + ", ".join(unknown[:10])
            + (" \u2026" if len(unknown) > 10 else ""),
            path=ctx.card.path,
            line=ctx.card.line_of("datasets"),
            datasets=unknown,
        )


def _generated(ctx: Context) -> Iterator[tuple[DatasetFacts, GeneratorFact]]:
    seen: set[tuple[str, str]] = set()
    for d in ctx.datasets:
        for g in d.generators:
            key = (d.id, g.license.id if g.license else g.name)
            if key not in seen:
                seen.add(key)
                yield d, g


@check(
    "attribution.data_generator_naming",
    "attribution.data_generator_phrase",
    "license.data_generator_derivative",
    "license.data_generator_no_training",
    "license.data_api_terms",
)
def generated_data(ctx: Context) -> Iterator[Finding]:
    terms_of = dataset_knowledge().output_terms
    own = ctx.own_license()
    bound = {ob.license.id for ob in ctx.lineage.obligations()} | {lic.id for lic in ctx.lineage.own_licenses}
    if ctx.lineage.self_upstream is not None:
        bound.add(ctx.lineage.self_upstream.license)
    text: str | None = None
    done: set[tuple[str, str]] = set()
    for d, g in _generated(ctx):
        source = f" (the training dataset {d.id} was generated with {g.name}; {g.where.place}" + (
            f": \u201c{g.where.quote}\u201d)" if g.where.quote else ")"
        )
        evidence = _evidence(d, generator=g.name, generator_found_in=g.where.place)
        if g.terms:
            if ("api", g.terms) not in done:
                done.add(("api", g.terms))
                yield ctx.finding(
                    "license.data_api_terms",
                    f"trained on data generated through a commercial service: {g.terms}: {g.clause}{source}",
                    path=ctx.card.path,
                    **evidence,
                    terms=g.terms,
                    clause=g.clause,
                    url=g.url,
                )
            continue
        lic = g.license
        terms = terms_of.get(lic.id) if lic is not None else None
        if lic is None or terms is None or lic.id in bound or lic.published_by(ctx.publisher.owner):
            continue  # no terms on outputs, or the model is already bound by (or the licensor of) that licence
        evidence.update(generator_license=lic.id, clause=terms.clause)
        if "naming" in terms.applies and (naming := lic.conditions.get("naming")) and (lic.id, "naming") not in done:
            done.add((lic.id, "naming"))
            name, want = model_name(ctx), str(naming.get("text", ""))
            if want and not name_meets(name, naming):
                yield ctx.finding(
                    "attribution.data_generator_naming",
                    f"{lic.name} requires a model trained on its outputs to have a name beginning with "
                    f"\u201c{want}\u201d; it is \u201c{name}\u201d{source}",
                    path=ctx.card.path,
                    line=ctx.card.line_of("model_name"),
                    name=name,
                    required=want,
                    **evidence,
                )
        phrase = lic.conditions.get("attribution")
        if "attribution" in terms.applies and phrase and (lic.id, "attribution") not in done:
            done.add((lic.id, "attribution"))
            text = all_text(ctx.snap) if text is None else text
            if normalise(str(phrase)) not in text:
                yield ctx.finding(
                    "attribution.data_generator_phrase",
                    f"{lic.name} asks a model trained on its outputs to display \u201c{phrase}\u201d; "
                    f"the repo does not say it{source}",
                    path=ctx.card.path,
                    phrase=phrase,
                    **evidence,
                )
        if "derivative" in terms.applies and own is not None and not lic.allows_outbound(own.id):
            if (lic.id, "derivative") not in done:
                done.add((lic.id, "derivative"))
                yield ctx.finding(
                    "license.data_generator_derivative",
                    f"trained on {lic.name} outputs, the model is a derivative under those terms, which do not allow "
                    f"publishing it under {own.name}{source}",
                    path=ctx.card.path,
                    line=ctx.card.line_of("license"),
                    model_license=own.id,
                    **evidence,
                )
        if "no_training" in terms.applies and (lic.id, "no_training") not in done:
            done.add((lic.id, "no_training"))
            yield ctx.finding(
                "license.data_generator_no_training",
                f"{lic.name} forbids using its outputs to improve any other large language model, and this model "
                f"is not of that family{source}",
                path=ctx.card.path,
                **evidence,
            )
