"""The attribution a derivative must ship: one block per licence in its lineage."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from scanner.evidence.datasets import DatasetFacts
from scanner.evidence.lineage import Lineage
from scanner.policy import Policy
from scanner.sources.interface import Snapshot


@dataclass
class AttributionBlock:
    """What one licence of the lineage, or one source of training-data terms, asks the derivative to ship."""

    license_id: str
    license_name: str
    url: str | None
    upstream: list[str] = field(default_factory=list)  # where the obligation comes from, one entry per source
    notice: str | None = None  # to ship in a NOTICE file
    attribution: str | None = None  # a phrase to display
    naming: str | Mapping[str, object] | None = None  # a sentence, or the licence's {rule: prefix|contains, text}
    license_copy: bool = False
    use_restrictions: bool = False
    mark_modified: bool = False
    terms: list[str] = field(default_factory=list)  # what the training data carries


def attribution_blocks(snap: Snapshot, policy: Policy | None = None) -> list[AttributionBlock]:
    """`policy` is read for its `publisher:` (a licensor's own release owes its licence nothing)."""
    from scanner.pipeline import build_context

    ctx = build_context(snap, policy or Policy())
    return lineage_blocks(ctx.lineage) + dataset_blocks(ctx.datasets, ctx.lineage)


def lineage_blocks(lineage: Lineage) -> list[AttributionBlock]:
    """One block per licence binding a scanned model's lineage (the HTML report shows them too)."""
    blocks: dict[str, AttributionBlock] = {}
    for ob in lineage.obligations():
        lic = ob.license
        if lic.id not in blocks:
            blocks[lic.id] = AttributionBlock(
                lic.id,
                lic.name,
                lic.url,
                notice=lic.conditions.get("notice"),
                attribution=lic.conditions.get("attribution"),
                naming=lic.conditions.get("naming"),
                license_copy=bool(lic.conditions.get("license_copy")),
                use_restrictions=bool(lic.conditions.get("use_restrictions")),
                mark_modified=bool(lic.conditions.get("mark_modified")),
            )
        blocks[lic.id].upstream.append(f"{ob.source} ({ob.known_from})")
    return list(blocks.values())


def dataset_blocks(datasets: list[DatasetFacts], lineage: Lineage | None = None) -> list[AttributionBlock]:
    """The terms training data carries (scanner/evidence/datasets.py): its licences, the terms of the models and
    services that generated it, and the datasets whose terms are unknown (said, never presumed permissive)."""
    from scanner.knowledge import dataset_knowledge

    output_terms = dataset_knowledge().output_terms
    bound = {ob.license.id for ob in lineage.obligations()} if lineage is not None else set()
    blocks: dict[str, AttributionBlock] = {}

    def block(
        key: str,
        name: str,
        url: str | None,
        license_id: str | None = None,
        attribution: str | None = None,
        naming: str | Mapping[str, object] | None = None,
    ) -> AttributionBlock:
        """The block for `key`, made on first use (one key, one licence and its terms: later calls agree)."""
        if key not in blocks:
            blocks[key] = AttributionBlock(license_id or name, name, url, attribution=attribution, naming=naming)
        return blocks[key]

    def add(b: AttributionBlock, upstream: str, term: str | None = None) -> None:
        if upstream not in b.upstream:
            b.upstream.append(upstream)
        if term and term not in b.terms:
            b.terms.append(term)

    for d in datasets:
        data = f"training data {d.id}" + (f" (via {d.via})" if d.via else "")
        if d.unlicensed:
            add(
                block("data:none", "Training data published without a licence", None),
                data,
                "no licence grants the right to use this data; ask its authors for one",
            )
        for lic in d.all_licenses:
            b = block(f"data:{lic.id}", f"{lic.name} (training data)", lic.url, lic.id)
            add(b, data)
            if lic.commercial is False:
                add(b, data, "non-commercial: the data may not be used for commercial purposes")
            if lic.conditions.get("share_alike"):
                add(b, data, "share-alike: adaptations of the data under the same or a compatible licence")
            if lic.kind == "permissive" and lic.id.startswith("cc-by"):
                add(b, data, "credit the dataset's creators and link its licence")
        for g in d.generators:
            made = f"outputs of {g.name} in training data {d.id}"
            if g.terms:
                add(block(f"terms:{g.terms}", g.terms, g.url), made, g.clause)
                continue
            model_lic = g.license
            terms = output_terms.get(model_lic.id) if model_lic is not None else None
            if model_lic is None or terms is None or model_lic.id in bound:
                continue
            b = block(
                model_lic.id,
                model_lic.name,
                model_lic.url,
                model_lic.id,
                attribution=model_lic.conditions.get("attribution") if "attribution" in terms.applies else None,
                naming=model_lic.conditions.get("naming") if "naming" in terms.applies else None,
            )
            if "derivative" in terms.applies:
                b.notice = model_lic.conditions.get("notice")
                b.license_copy = bool(model_lic.conditions.get("license_copy"))
                b.use_restrictions = bool(model_lic.conditions.get("use_restrictions"))
                b.mark_modified = bool(model_lic.conditions.get("mark_modified"))
            add(b, made, terms.clause)
    unknown = [d.id for d in datasets if d.unknown]
    if unknown:
        b = block("data:unknown", "Training data whose terms are unknown", None)
        for u in unknown:
            add(b, f"training data {u}")
        add(b, b.upstream[0], "not checked and not presumed permissive: check these datasets' licences by hand")
    return list(blocks.values())
