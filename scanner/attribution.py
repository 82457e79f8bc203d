"""The attribution a derivative must ship: one block per licence in its lineage."""

from __future__ import annotations

from typing import Any

from scanner.evidence.datasets import DatasetFacts
from scanner.evidence.lineage import Lineage
from scanner.policy import Policy
from scanner.sources.interface import Snapshot


def attribution_blocks(snap: Snapshot, policy: Policy | None = None) -> list[dict[str, Any]]:
    """`policy` is read for its `publisher:` (a licensor's own release owes its licence nothing)."""
    from scanner.pipeline import build_context

    ctx = build_context(snap, policy or Policy())
    return lineage_blocks(ctx.lineage) + dataset_blocks(ctx.datasets, ctx.lineage)


def lineage_blocks(lineage: Lineage) -> list[dict[str, Any]]:
    """One block per licence binding a scanned model's lineage (the HTML report shows them too)."""
    blocks: dict[str, dict[str, Any]] = {}
    for ob in lineage.obligations():
        lic = ob.license
        block = blocks.setdefault(
            lic.id,
            {
                "license_id": lic.id,
                "license_name": lic.name,
                "url": lic.url,
                "upstream": [],
                "notice": lic.conditions.get("notice"),
                "attribution": lic.conditions.get("attribution"),
                "naming": lic.conditions.get("naming"),
                "license_copy": bool(lic.conditions.get("license_copy")),
                "use_restrictions": bool(lic.conditions.get("use_restrictions")),
                "mark_modified": bool(lic.conditions.get("mark_modified")),
            },
        )
        block["upstream"].append(f"{ob.source} ({ob.known_from})")
    for b in blocks.values():
        b["upstream"] = ", ".join(b["upstream"])
    return list(blocks.values())


def dataset_blocks(datasets: list[DatasetFacts], lineage: Lineage | None = None) -> list[dict[str, Any]]:
    """The terms training data carries (scanner/evidence/datasets.py): its licences, the terms of the models and
    services that generated it, and the datasets whose terms are unknown (said, never presumed permissive)."""
    from scanner.knowledge import dataset_knowledge

    output_terms = dataset_knowledge().output_terms
    bound = {ob.license.id for ob in lineage.obligations()} if lineage is not None else set()
    blocks: dict[str, dict[str, Any]] = {}

    def block(key: str, name: str, url: str | None, license_id: str | None = None, **fields: Any) -> dict[str, Any]:
        b = blocks.setdefault(
            key, {"license_id": license_id or name, "license_name": name, "url": url, "upstream": [], "terms": []}
        )
        for k, v in fields.items():
            b.setdefault(k, v)
        return b

    def add(b: dict[str, Any], upstream: str, term: str | None = None) -> None:
        if upstream not in b["upstream"]:
            b["upstream"].append(upstream)
        if term and term not in b["terms"]:
            b["terms"].append(term)

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
                b.update(
                    notice=model_lic.conditions.get("notice"),
                    license_copy=bool(model_lic.conditions.get("license_copy")),
                    use_restrictions=bool(model_lic.conditions.get("use_restrictions")),
                    mark_modified=bool(model_lic.conditions.get("mark_modified")),
                )
            add(b, made, terms.clause)
    unknown = [d.id for d in datasets if d.unknown]
    if unknown:
        b = block("data:unknown", "Training data whose terms are unknown", None)
        for u in unknown:
            add(b, f"training data {u}")
        add(b, b["upstream"][0], "not checked and not presumed permissive: check these datasets' licences by hand")
    for b in blocks.values():
        b["upstream"] = ", ".join(b["upstream"])
    return list(blocks.values())
