"""AI bills of materials: the scanned models, their licences, weight files and base models, for the tools a
compliance team already runs.

* CycloneDX 1.6 JSON, built with cyclonedx-python-lib: one `machine-learning-model` component per model, its weight
  files as `file` sub-components with their SHA-256, its licences, and its base models as `pedigree.ancestors`, each
  ancestor carrying the evidence (`evidence.identity` with the analysis technique and a confidence, plus
  `originscan:*` properties: relation, evidence strength, p-value). The library does not model `modelCard` yet
  (cyclonedx-python-lib 11: "model_card" is a commented-out TODO), so that object is added to the serialised JSON;
  the tests validate the final document with the library's JSON schema validator.
* SPDX 3.0.1 JSON-LD with the AI profile: an `ai_AIPackage` per model and per base model, `simplelicensing_
  LicenseExpression`s bound by `hasDeclaredLicense`, `software_File`s with their SHA-256 (`contains`), and a
  `descendantOf` relationship from a model to each base, its comment holding the evidence. Written as plain data:
  the Python bindings (spdx-python-model 0.0.x) are pre-release; the tests validate against the SPDX 3.0.1 JSON
  schema instead.

Licences are SPDX ids where the knowledge base has one, else `LicenseRef-<id>` (Llama, Gemma … licences have no
SPDX id).
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from scanner.findings import TargetFacts, TargetReport
from scanner.report.lineage_graph import Link, lineage_links, own_license
from scanner.report.sanitize import json_ready, visible

# how each evidence class was obtained, and how far it identifies the base (a judgement, stated once)
_TECHNIQUE = {
    "declared only": ("manifest-analysis", "0.6"),
    "config": ("manifest-analysis", "0.5"),
    "tokenizer": ("manifest-analysis", "0.7"),
    "code": ("source-code-analysis", "0.8"),
    "weights": ("binary-analysis", "0.99"),
}


def _licence_ref(text: str) -> str:
    return "LicenseRef-" + (re.sub(r"[^A-Za-z0-9.-]+", "-", text).strip("-") or "unknown")


def _spdx_of(facts: TargetFacts | None, licence_id: str | None) -> str | None:
    """The SPDX id of a knowledge-base licence id, or None."""
    if facts is None or facts.lineage is None or not licence_id:
        return None
    lic = facts.lineage.kb.license(licence_id)
    return lic.spdx if lic is not None and lic.spdx else None


def _expression(facts: TargetFacts | None, licence_id: str) -> str:
    spdx = _spdx_of(facts, licence_id)
    return spdx if spdx else _licence_ref(licence_id)


def _model_licences(facts: TargetFacts) -> list[str]:
    """The model's declared licences as SPDX expressions (empty when the card declares none)."""
    if facts.lineage and facts.lineage.own_licenses:
        return [lic.spdx or _licence_ref(lic.id) for lic in facts.lineage.own_licenses]
    declared = own_license(facts)
    return [] if declared == "none declared" else [_licence_ref(declared)]


def _card_list(facts: TargetFacts, key: str) -> list[str]:
    value = facts.card.get(key)
    if isinstance(value, str):
        value = [value]
    return [visible(v) for v in value if isinstance(v, str) and v.strip()] if isinstance(value, list) else []


# -- CycloneDX 1.6 ---------------------------------------------------------------------------------------------
def cyclonedx_bom(reports: list[TargetReport], *, version: str) -> dict[str, Any]:
    from cyclonedx.model import HashAlgorithm, HashType, Property
    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component, ComponentType, Pedigree
    from cyclonedx.model.component_evidence import AnalysisTechnique, ComponentEvidence, Identity, IdentityField, Method
    from cyclonedx.model.license import DisjunctiveLicense, LicenseExpression
    from cyclonedx.output.json import JsonV1Dot6

    def licences(expressions: list[str]):
        """A list of licences (SPDX id or name), or one compound expression: CycloneDX does not mix the two."""
        compound = next((e for e in expressions if " " in e), None)
        if compound is not None:
            return [LicenseExpression(compound)]
        return [
            DisjunctiveLicense(name=e[len("LicenseRef-") :])
            if e.startswith("LicenseRef-")
            else DisjunctiveLicense(id=e)
            for e in expressions
        ]

    def ancestor(i: int, j: int, facts: TargetFacts, link: Link) -> Component:
        methods = []
        for p in link.proofs:
            technique, confidence = _TECHNIQUE[p.strength]
            methods.append(
                Method(
                    technique=AnalysisTechnique(technique),
                    confidence=Decimal(confidence),
                    value=visible(p.detail)[:1000],
                )
            )
        best = max((m.confidence for m in methods), default=Decimal("0.5"))
        props = [
            Property(name="originscan:relation", value=link.relation),
            Property(name="originscan:evidence", value=link.strength),
            Property(name="originscan:declared", value=str(link.declared).lower()),
            Property(name="originscan:child", value=visible(link.child)),
            Property(name="originscan:hops", value=str(link.hops)),
        ]
        if link.p_value is not None:
            props.append(Property(name="originscan:p_value", value=f"{link.p_value:.3e}"))
        return Component(
            type=ComponentType.MACHINE_LEARNING_MODEL,
            name=visible(link.parent),
            bom_ref=f"model-{i}-base-{j}",
            licenses=licences([_expression(facts, link.license)]) if link.license != "unknown" else None,
            properties=props,
            evidence=ComponentEvidence(
                identity=[
                    Identity(
                        field=IdentityField.NAME, confidence=best, concluded_value=visible(link.parent), methods=methods
                    )
                ]
            ),
        )

    bom = Bom()
    bom.metadata.tools.components.add(Component(type=ComponentType.APPLICATION, name="originscan", version=version))
    cards: dict[str, dict[str, Any]] = {}
    for i, r in enumerate(reports, start=1):
        ref = f"model-{i}"
        facts = r.facts
        props = [Property(name="originscan:target", value=visible(r.target))]
        if r.error:
            props.append(Property(name="originscan:error", value=visible(r.error)))
        for f in r.active():
            props.append(
                Property(name=f"originscan:finding:{f.severity.name}", value=f"{f.rule}: {visible(f.message)}")
            )
        if facts is None:
            bom.components.add(
                Component(
                    type=ComponentType.MACHINE_LEARNING_MODEL,
                    name=visible(r.target),
                    bom_ref=ref,
                    version=r.revision,
                    properties=props,
                )
            )
            continue
        files = [
            Component(
                type=ComponentType.FILE,
                name=visible(f.path),
                bom_ref=f"{ref}-file-{k}",
                hashes=[HashType(alg=HashAlgorithm.SHA_256, content=f.sha256)] if f.sha256 else None,
                properties=[Property(name="originscan:size", value=str(f.size))],
            )
            for k, f in enumerate(facts.weight_files, start=1)
        ]
        links = lineage_links(facts)
        bom.components.add(
            Component(
                type=ComponentType.MACHINE_LEARNING_MODEL,
                name=visible(facts.name),
                bom_ref=ref,
                version=r.revision,
                licenses=licences(_model_licences(facts)),
                components=files,
                properties=props,
                pedigree=Pedigree(ancestors=[ancestor(i, j, facts, link) for j, link in enumerate(links, start=1)])
                if links
                else None,
            )
        )
        cards[ref] = _model_card(facts)
    doc = json.loads(JsonV1Dot6(bom).output_as_string())
    for comp in doc.get("components", []):
        if comp.get("bom-ref") in cards and cards[comp["bom-ref"]]:
            comp["modelCard"] = cards[comp["bom-ref"]]
    return doc


def _model_card(facts: TargetFacts) -> dict[str, Any]:
    """CycloneDX 1.6 modelCard from the card's metadata: task, datasets, and the rest as properties."""
    params: dict[str, Any] = {}
    task = facts.card.get("pipeline_tag")
    if isinstance(task, str) and task.strip():
        params["task"] = visible(task)
    datasets = _card_list(facts, "datasets")
    if datasets:
        params["datasets"] = [{"type": "dataset", "name": d} for d in datasets]
    props = [
        {"name": f"originscan:card:{key}", "value": v}
        for key in ("library_name", "language", "tags", "license_name", "license_link", "model_name")
        for v in _card_list(facts, key)
    ]
    card: dict[str, Any] = {}
    if params:
        card["modelParameters"] = params
    if props:
        card["properties"] = props
    return card


def render_cyclonedx(reports: list[TargetReport], *, version: str) -> str:
    return json.dumps(json_ready(cyclonedx_bom(reports, version=version)), indent=2) + "\n"


# -- SPDX 3.0.1 JSON-LD ----------------------------------------------------------------------------------------
SPDX_CONTEXT = "https://spdx.org/rdf/3.0.1/spdx-context.jsonld"


def spdx_document(reports: list[TargetReport], *, version: str) -> dict[str, Any]:
    ns = f"urn:originscan:{uuid.uuid4()}#"
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    ci = "_:creationinfo"
    graph: list[dict[str, Any]] = []
    elements: list[str] = []
    roots: list[str] = []
    licences: dict[str, str] = {}

    def add(obj: dict[str, Any]) -> str:
        obj.setdefault("creationInfo", ci)
        graph.append(obj)
        elements.append(obj["spdxId"])
        return obj["spdxId"]

    def relate(kind: str, src: str, dst: list[str], comment: str | None = None) -> None:
        rel = {
            "type": "Relationship",
            "spdxId": f"{ns}rel-{len(graph)}",
            "relationshipType": kind,
            "from": src,
            "to": dst,
        }
        if comment:
            rel["comment"] = comment
        add(rel)

    def licence(expression: str) -> str:
        if expression not in licences:
            licences[expression] = add(
                {
                    "type": "simplelicensing_LicenseExpression",
                    "spdxId": f"{ns}licence-{len(licences) + 1}",
                    "simplelicensing_licenseExpression": expression,
                }
            )
        return licences[expression]

    tool = f"{ns}originscan"
    agent = f"{ns}originscan-agent"
    graph.append(
        {
            "type": "CreationInfo",
            "@id": ci,
            "specVersion": "3.0.1",
            "created": created,
            "createdBy": [agent],
            "createdUsing": [tool],
        }
    )
    add({"type": "Tool", "spdxId": tool, "name": f"originscan {version}"})
    add({"type": "SoftwareAgent", "spdxId": agent, "name": "originscan"})
    bases: dict[str, str] = {}
    for i, r in enumerate(reports, start=1):
        facts = r.facts
        model = f"{ns}model-{i}"
        pkg: dict[str, Any] = {
            "type": "ai_AIPackage",
            "spdxId": model,
            "name": visible(facts.name if facts else r.target),
            "software_primaryPurpose": "model",
        }
        if r.revision:
            pkg["software_packageVersion"] = visible(r.revision)
        if r.error:
            pkg["comment"] = visible(f"could not be read: {r.error}")
        unchecked = [f for f in r.findings if f.rule == "weights.not_compared"]
        if unchecked:  # the lineage below lacks what the weights would have shown: said, not left out silently
            pkg["comment"] = visible(f"weights.not_compared: {unchecked[0].message}")
        if facts is not None:
            task = facts.card.get("pipeline_tag")
            if isinstance(task, str) and task.strip():
                pkg["ai_domain"] = [visible(task)]
            if facts.kind == "hf":
                pkg["software_downloadLocation"] = f"https://huggingface.co/{facts.name}"
        add(pkg)
        roots.append(model)
        if facts is None:
            continue
        for expression in _model_licences(facts):
            relate("hasDeclaredLicense", model, [licence(expression)])
        files = []
        for k, f in enumerate(facts.weight_files, start=1):
            entry: dict[str, Any] = {"type": "software_File", "spdxId": f"{model}-file-{k}", "name": visible(f.path)}
            if f.sha256:
                entry["verifiedUsing"] = [{"type": "Hash", "algorithm": "sha256", "hashValue": f.sha256}]
            files.append(add(entry))
        if files:
            relate("contains", model, files)
        for link in lineage_links(facts):
            key = link.parent.lower()
            if key not in bases:
                bases[key] = add(
                    {
                        "type": "ai_AIPackage",
                        "spdxId": f"{ns}base-{len(bases) + 1}",
                        "name": visible(link.parent),
                        "software_primaryPurpose": "model",
                    }
                )
                if link.license != "unknown":
                    relate("hasDeclaredLicense", bases[key], [licence(_expression(facts, link.license))])
            child = model if link.child.lower() == facts.name.lower() else bases.get(link.child.lower(), model)
            evidence = "; ".join(visible(p.detail) for p in link.proofs)
            p = f", p={link.p_value:.1e}" if link.p_value is not None else ""
            relate(
                "descendantOf",
                child,
                [bases[key]],
                f"originscan: {link.relation}, evidence {link.strength}{p}"
                f"{'' if link.declared else ', not declared'}: {evidence}",
            )
    add(
        {
            "type": "SpdxDocument",
            "spdxId": f"{ns}document",
            "name": "originscan AI-BOM",
            "profileConformance": ["core", "software", "ai", "simpleLicensing"],
            "rootElement": roots,
            "element": [e for e in elements],
        }
    )
    return {"@context": SPDX_CONTEXT, "@graph": graph}


def render_spdx(reports: list[TargetReport], *, version: str) -> str:
    return json.dumps(json_ready(spdx_document(reports, version=version)), indent=2) + "\n"


__all__ = ["cyclonedx_bom", "render_cyclonedx", "render_spdx", "spdx_document"]
