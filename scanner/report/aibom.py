"""AI bills of materials: the scanned models, their licences, weight files and base models, for the tools a
compliance team already runs.

* CycloneDX 1.6 JSON, built with cyclonedx-python-lib: one `machine-learning-model` component per model with its
  purl (`pkg:huggingface/OWNER/NAME@REV` for a Hub model), external references (the Hub page, the model card), its
  weight files as `file` sub-components with their SHA-256, its licences, and its base models as
  `pedigree.ancestors`, each with a purl where it has a Hub id and the evidence (`evidence.identity` with the
  analysis technique and a confidence, plus `originscan:*` properties: relation, evidence strength, p-value).
  `metadata.component` is the model a one-target BOM describes, or the scan itself. The library does not model
  `modelCard` yet (cyclonedx-python-lib 11: "model_card" is a commented-out TODO), so that object (task, architecture
  family and architecture from config.json; datasets, metrics, intended use and limitations from the card) is added
  to the serialised JSON; the tests validate the final document with the library's JSON schema validator and read
  it back with the library.
* SPDX 3.0.1 JSON-LD with the AI profile: an `ai_AIPackage` per scanned model carrying what the profile requires
  (spdx-3-model 3.0.1, model/AI/Classes/AIPackage.md "External properties restrictions": suppliedBy,
  software_downloadLocation, software_packageVersion, software_primaryPurpose, releaseTime; model/AI/AI.md
  "Profile conformance": exactly one hasDeclaredLicense and one hasConcludedLicense relationship), `software_File`s
  with their SHA-256 (`contains`), and a `descendantOf` relationship from a model to each base, its comment holding
  the evidence. An unknown supplier is the spec's `NoAssertionElement`, an unknown licence `NoAssertionLicense`, a
  card that declares none `NoneLicense`, an unknown location or version the string NOASSERTION. A model whose release
  time is unknown (a base model known only by name, a target that could not be read) has no way in the AI profile to
  say so: it is a `software_Package` with primary purpose `model` instead, and its comment says why. Written as plain
  data; the tests read it back with the SPDX project's own Python bindings (spdx-python-model, generated from the
  SPDX 3.0.1 SHACL model) and validate it against the SPDX 3.0.1 JSON schema.

Licences are SPDX ids where the knowledge base has one, else `LicenseRef-<id>`, with the licence's URL
(`simplelicensing_customIdToUri` in SPDX, `license.url` in CycloneDX) where the knowledge base has one. Targets are
named as `scanner.report.paths.shown_target` shows them: never the scanner's absolute paths.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from scanner.evidence.datasets import DatasetFacts
from scanner.evidence.signatures import signature_state
from scanner.report.lineage_graph import UNKNOWN_LICENSE, Link, concluded_licenses, lineage_links, own_license
from scanner.report.sanitize import json_ready, visible
from scanner.results import TargetFacts, TargetReport

# how each evidence class was obtained, and how far it identifies the base (a judgement, stated once)
_TECHNIQUE = {
    "declared only": ("manifest-analysis", "0.6"),
    "config": ("manifest-analysis", "0.5"),
    "tokenizer": ("manifest-analysis", "0.7"),
    "code": ("source-code-analysis", "0.8"),
    "behaviour": ("dynamic-analysis", "0.9"),  # the model was run (originscan probe)
    "weights": ("binary-analysis", "0.99"),
}
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
NOASSERTION = "NOASSERTION"
SECTION_CHARS = 2000  # of a card section copied into a BOM


# -- what both formats say about a model ----------------------------------------------------------------------
def _licence_ref(text: str) -> str:
    return "LicenseRef-" + (re.sub(r"[^A-Za-z0-9.-]+", "-", text).strip("-") or "unknown")


def _kb_licence(facts: TargetFacts | None, licence_id: str | None) -> Any:
    if facts is None or facts.lineage is None or not licence_id:
        return None
    return facts.lineage.kb.license(licence_id)


def _expression(facts: TargetFacts | None, licence_id: str) -> str:
    lic = _kb_licence(facts, licence_id)
    return lic.spdx if lic is not None and lic.spdx else _licence_ref(licence_id)


def _licence_url(facts: TargetFacts | None, expression: str) -> str | None:
    """The knowledge base's URL for a `LicenseRef-<id>` expression (None for SPDX ids: their list has the text)."""
    if facts is None or facts.lineage is None or not expression.startswith("LicenseRef-"):
        return None
    wanted = expression[len("LicenseRef-") :]
    for lic in facts.lineage.kb.licenses.values():
        if _licence_ref(lic.id)[len("LicenseRef-") :] == wanted and lic.url:
            return str(lic.url)
    return None


def _model_licences(facts: TargetFacts) -> list[str]:
    """The model's declared licences as SPDX expressions (empty when the card declares none)."""
    if facts.lineage and facts.lineage.own_licenses:
        return [lic.spdx or _licence_ref(lic.id) for lic in facts.lineage.own_licenses]
    declared = own_license(facts)
    return [] if declared == "none declared" else [_licence_ref(declared)]


def _concluded(facts: TargetFacts) -> list[str]:
    return list(dict.fromkeys(_expression(facts, lid) for lid in concluded_licenses(facts)))


def hub_id(facts: TargetFacts | None, name: str) -> str | None:
    """`name` when it is a Hugging Face repo id: a Hub target, a folder whose repo id is known, a base model."""
    if facts is not None and facts.kind == "github":
        return None
    return name if _REPO_ID.match(name) else None


def purl(repo_id: str, revision: str | None = None, kind: str = "huggingface") -> str:
    from packageurl import PackageURL

    owner, name = repo_id.split("/", 1)
    return str(PackageURL(type=kind, namespace=owner, name=name, version=revision.lower() if revision else None))


def _home(facts: TargetFacts | None, name: str) -> str | None:
    """Where the model is published: its Hub page, or its GitHub repository."""
    if facts is not None and facts.kind == "github" and _REPO_ID.match(name):
        return f"https://github.com/{name}"
    repo = hub_id(facts, name)
    return f"https://huggingface.co/{repo}" if repo else None


def _section(body: str, pattern: str) -> str | None:
    """The text under the card's first Markdown heading matching `pattern` (sub-headings included), shortened."""
    heading = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$", re.M)
    matches = list(heading.finditer(body))
    for i, m in enumerate(matches):
        if not re.search(pattern, m.group(2), re.I):
            continue
        level = len(m.group(1))
        end = next((n.start() for n in matches[i + 1 :] if len(n.group(1)) <= level), len(body))
        text = re.sub(r"\n{3,}", "\n\n", body[m.end() : end]).strip()
        if text:
            return visible(text if len(text) <= SECTION_CHARS else text[: SECTION_CHARS - 1].rstrip() + "…")
    return None


INTENDED_USE = r"intended use|^uses?$|use cases?|direct use|how to use"
LIMITATIONS = r"limitation|bias|risks"


def _metrics(facts: TargetFacts) -> list[tuple[str, str, str | None]]:
    """(metric, value, dataset) from the card's `model-index` results."""
    out = []
    index = facts.card.get("model-index")
    for entry in index if isinstance(index, list) else []:
        for result in entry.get("results") or [] if isinstance(entry, dict) else []:
            if not isinstance(result, dict):
                continue
            dataset = result.get("dataset")
            where = (dataset.get("name") or dataset.get("type")) if isinstance(dataset, dict) else None
            for m in result.get("metrics") or []:
                if isinstance(m, dict) and m.get("type") is not None and m.get("value") is not None:
                    out.append(
                        (visible(m.get("name") or m["type"]), visible(m["value"]), visible(where) if where else None)
                    )
    return out


def _architecture(facts: TargetFacts) -> tuple[str | None, str | None]:
    """(family, architecture) from config.json: `model_type` and the first of `architectures`."""
    family = facts.config.get("model_type")
    arch = facts.config.get("architectures")
    first = arch[0] if isinstance(arch, list) and arch and isinstance(arch[0], str) else None
    return (visible(family) if isinstance(family, str) else None), (visible(first) if first else None)


def _dataset_home(d: DatasetFacts) -> str | None:
    return f"https://huggingface.co/datasets/{d.id}" if _REPO_ID.match(d.id) else None


def _dataset_note(d: DatasetFacts) -> str:
    """Where the training dataset was found and what is known of its terms (issue #25), for both BOM formats."""
    first = d.found[0] if d.found else None
    parts = (
        [f"originscan: named in the {first.place}" + (f" (line {first.line})" if first.line else "")] if first else []
    )
    if d.via:
        parts.append(f"a source dataset of {d.via}")
    if d.unknown:
        parts.append("licence unknown (not checked, not presumed permissive)")
    elif d.unlicensed:
        parts.append("published without a licence")
    if d.license_from:
        parts.append(f"licence from {d.license_from}")
    if d.source_licenses:
        parts.append("its sources impose " + ", ".join(lic.id for lic in d.source_licenses))
    for g in d.generators:
        parts.append(f"generated with {g.name}" + (f" ({g.terms})" if g.terms else ""))
    return visible("; ".join(parts))


def _card_list(facts: TargetFacts, key: str) -> list[str]:
    value = facts.card.get(key)
    if isinstance(value, str):
        value = [value]
    return [visible(v) for v in value if isinstance(v, str) and v.strip()] if isinstance(value, list) else []


# -- CycloneDX 1.6 ---------------------------------------------------------------------------------------------
def cyclonedx_bom(reports: list[TargetReport], *, version: str) -> dict[str, Any]:
    from cyclonedx.model import ExternalReference, ExternalReferenceType, HashAlgorithm, HashType, Property, XsUri
    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component, ComponentType, Pedigree
    from cyclonedx.model.component_evidence import AnalysisTechnique, ComponentEvidence, Identity, IdentityField, Method
    from cyclonedx.model.license import DisjunctiveLicense, LicenseExpression
    from cyclonedx.output.json import JsonV1Dot6
    from packageurl import PackageURL

    def licences(facts: TargetFacts | None, expressions: list[str]) -> list[Any]:
        """A list of licences (SPDX id or name with its URL), or one compound expression: CycloneDX does not mix
        the two."""
        compound = next((e for e in expressions if " " in e), None)
        if compound is not None:
            return [LicenseExpression(compound)]
        out = []
        for e in expressions:
            if e.startswith("LicenseRef-"):
                url = _licence_url(facts, e)
                out.append(DisjunctiveLicense(name=e[len("LicenseRef-") :], url=XsUri(url) if url else None))
            else:
                out.append(DisjunctiveLicense(id=e))
        return out

    def references(facts: TargetFacts | None, name: str, revision: str | None) -> list[Any]:
        home = _home(facts, name)
        if home is None:
            return []
        refs = [ExternalReference(type=ExternalReferenceType.WEBSITE, url=XsUri(home))]
        if hub_id(facts, name):
            rev = revision or "main"
            refs.append(
                ExternalReference(type=ExternalReferenceType.MODEL_CARD, url=XsUri(f"{home}/blob/{rev}/README.md"))
            )
        else:
            refs.append(ExternalReference(type=ExternalReferenceType.VCS, url=XsUri(home)))
        return refs

    def package_url(facts: TargetFacts | None, name: str, revision: str | None) -> Any:
        if facts is not None and facts.kind == "github" and _REPO_ID.match(name):
            return PackageURL.from_string(purl(name, revision, "github"))
        repo = hub_id(facts, name)
        return PackageURL.from_string(purl(repo, revision)) if repo else None

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
            purl=package_url(None, link.parent, None),
            external_references=references(None, link.parent, None),
            licenses=licences(facts, [_expression(facts, link.license)]) if link.license != UNKNOWN_LICENSE else None,
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
    models = []
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
        props.append(Property(name="originscan:signature", value=signature_state({f.rule for f in r.findings})))
        if facts is None:
            models.append(
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
        concluded = _concluded(facts)
        if concluded:
            props.append(Property(name="originscan:concluded_license", value=" AND ".join(concluded)))
        models.append(
            Component(
                type=ComponentType.MACHINE_LEARNING_MODEL,
                name=visible(facts.name),
                bom_ref=ref,
                version=r.revision,
                purl=package_url(facts, facts.name, r.revision),
                external_references=references(facts, facts.name, r.revision),
                licenses=licences(facts, _model_licences(facts)),
                components=files,
                properties=props,
                pedigree=Pedigree(ancestors=[ancestor(i, j, facts, link) for j, link in enumerate(links, start=1)])
                if links
                else None,
            )
        )
        cards[ref] = _model_card(facts)
        data = [
            Component(
                type=ComponentType.DATA,
                name=visible(d.id),
                bom_ref=f"{ref}-data-{k}",
                licenses=licences(facts, [_expression(facts, lic.id) for lic in d.all_licenses]),
                external_references=[
                    ExternalReference(type=ExternalReferenceType.WEBSITE, url=XsUri(home))
                    for home in [_dataset_home(d)]
                    if home
                ],
                properties=[Property(name="originscan:dataset", value=_dataset_note(d))],
            )
            for k, d in enumerate(facts.datasets, start=1)
        ]
        for comp in data:
            bom.components.add(comp)
        if data:
            bom.register_dependency(models[-1], data)
    if len(models) == 1:  # the BOM describes this one model
        bom.metadata.component = models[0]
    else:  # the BOM describes a scan of several models, each a component
        bom.metadata.component = Component(
            type=ComponentType.APPLICATION,
            name=f"originscan scan of {len(models)} models" if models else "originscan scan",
            bom_ref="scan",
            version=version,
        )
        for m in models:
            bom.components.add(m)
            bom.register_dependency(bom.metadata.component, [m])
    doc: dict[str, Any] = json.loads(JsonV1Dot6(bom).output_as_string())
    described = [doc["metadata"]["component"]] if len(models) == 1 else doc.get("components", [])
    for comp in described:
        if cards.get(comp.get("bom-ref")):
            comp["modelCard"] = cards[comp["bom-ref"]]
    return doc


def _model_card(facts: TargetFacts) -> dict[str, Any]:
    """CycloneDX 1.6 modelCard: task, architecture (config.json), datasets, metrics, intended use and limitations
    (the card), and the rest of the card's metadata as properties."""
    params: dict[str, Any] = {}
    task = facts.card.get("pipeline_tag")
    if isinstance(task, str) and task.strip():
        params["task"] = visible(task)
    family, architecture = _architecture(facts)
    if family:
        params["architectureFamily"] = family
    if architecture:
        params["modelArchitecture"] = architecture
    datasets = _card_list(facts, "datasets")
    if datasets:
        params["datasets"] = [{"type": "dataset", "name": d} for d in datasets]
    card: dict[str, Any] = {}
    if params:
        card["modelParameters"] = params
    metrics = _metrics(facts)
    if metrics:
        card["quantitativeAnalysis"] = {
            "performanceMetrics": [
                {"type": name, "value": value, **({"slice": where} if where else {})} for name, value, where in metrics
            ]
        }
    considerations: dict[str, Any] = {}
    use = _section(facts.card_body, INTENDED_USE)
    if use:
        considerations["useCases"] = [use]
    limits = _section(facts.card_body, LIMITATIONS)
    if limits:
        considerations["technicalLimitations"] = [limits]
    if considerations:
        card["considerations"] = considerations
    props = [
        {"name": f"originscan:card:{key}", "value": v}
        for key in ("library_name", "language", "tags", "license_name", "license_link", "model_name")
        for v in _card_list(facts, key)
    ]
    if props:
        card["properties"] = props
    return card


def render_cyclonedx(reports: list[TargetReport], *, version: str) -> str:
    return json.dumps(json_ready(cyclonedx_bom(reports, version=version)), indent=2) + "\n"


# -- SPDX 3.0.1 JSON-LD ----------------------------------------------------------------------------------------
SPDX_CONTEXT = "https://spdx.org/rdf/3.0.1/spdx-context.jsonld"
NO_ASSERTION_ELEMENT = "https://spdx.org/rdf/3.0.1/terms/Core/NoAssertionElement"
NO_ASSERTION_LICENSE = "expandedlicensing_NoAssertionLicense"  # compact names of the spec's individuals
NONE_LICENSE = "expandedlicensing_NoneLicense"


def spdx_document(reports: list[TargetReport], *, version: str) -> dict[str, Any]:
    ns = f"urn:originscan:{uuid.uuid4()}#"
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    ci = "_:creationinfo"
    graph: list[dict[str, Any]] = []
    elements: list[str] = []
    roots: list[str] = []
    licences: dict[str, str] = {}
    suppliers: dict[str, str] = {}

    def add(obj: dict[str, Any]) -> str:
        obj.setdefault("creationInfo", ci)
        graph.append(obj)
        elements.append(obj["spdxId"])
        return str(obj["spdxId"])

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

    def licence(facts: TargetFacts | None, expressions: list[str], unknown: str = NO_ASSERTION_LICENSE) -> str:
        """One licence element for a list of expressions (joined with AND); `unknown` when the list is empty."""
        if not expressions:
            return unknown
        expression = " AND ".join(f"({e})" if " " in e and len(expressions) > 1 else e for e in expressions)
        if expression not in licences:
            entry: dict[str, Any] = {
                "type": "simplelicensing_LicenseExpression",
                "spdxId": f"{ns}licence-{len(licences) + 1}",
                "simplelicensing_licenseExpression": expression,
            }
            refs = sorted(set(re.findall(r"LicenseRef-[A-Za-z0-9.-]+", expression)))
            uris = [(ref, _licence_url(facts, ref)) for ref in refs]
            if any(url for _, url in uris):
                entry["simplelicensing_customIdToUri"] = [
                    {"type": "DictionaryEntry", "key": ref, "value": url} for ref, url in uris if url
                ]
            licences[expression] = add(entry)
        return licences[expression]

    def supplier(facts: TargetFacts | None, name: str) -> str:
        """The organisation that publishes `name` (the owner of its repo id, or the publisher the scan learnt for a
        folder: policy, git remote, the Action), or the spec's NoAssertionElement."""
        known = facts.publisher.owner if facts is not None and facts.publisher is not None else None
        if not _REPO_ID.match(name) and not known:  # a folder whose publisher is not known
            return NO_ASSERTION_ELEMENT
        owner = known or name.split("/", 1)[0]
        if owner.lower() not in suppliers:
            suppliers[owner.lower()] = add(
                {"type": "Organization", "spdxId": f"{ns}supplier-{len(suppliers) + 1}", "name": visible(owner)}
            )
        return suppliers[owner.lower()]

    def package(
        spdx_id: str, name: str, facts: TargetFacts | None, revision: str | None, released: str | None
    ) -> dict[str, Any]:
        """An ai_AIPackage with what the AI profile requires, or a software_Package when the release time (which
        the profile requires and cannot mark as unknown) is not known."""
        pkg: dict[str, Any] = {
            "type": "ai_AIPackage" if released else "software_Package",
            "spdxId": spdx_id,
            "name": visible(name),
            "software_primaryPurpose": "model",
            "suppliedBy": supplier(facts, name),
            "software_downloadLocation": _home(facts, name) or NOASSERTION,
            "software_packageVersion": visible(revision) if revision else NOASSERTION,
        }
        if released:
            pkg["releaseTime"] = released
        else:
            pkg["comment"] = "release time unknown: described as a software package (the AI profile requires one)"
        home = _home(facts, name)
        if home and (hub_id(facts, name) or (facts is not None and facts.kind == "github")):
            kind = "github" if facts is not None and facts.kind == "github" else "huggingface"
            pkg["software_packageUrl"] = purl(name, revision, kind)
        return pkg

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
        pkg = package(model, facts.name if facts else r.target, facts, r.revision, facts.released if facts else None)
        notes = [pkg.pop("comment")] if "comment" in pkg else []
        if r.error:
            notes.append(f"could not be read: {r.error}")
        unchecked = [f for f in r.findings if f.rule == "weights.not_compared"]
        if unchecked:  # the lineage below lacks what the weights would have shown: said, not left out silently
            notes.append(f"weights.not_compared: {unchecked[0].message}")
        notes.append(f"model signature: {signature_state({f.rule for f in r.findings})}")
        if notes:
            pkg["comment"] = visible("; ".join(notes))
        if facts is not None and pkg["type"] == "ai_AIPackage":
            task = facts.card.get("pipeline_tag")
            if isinstance(task, str) and task.strip():
                pkg["ai_domain"] = [visible(task)]
            family, architecture = _architecture(facts)
            kinds = [k for k in (architecture, family) if k]
            if kinds:
                pkg["ai_typeOfModel"] = kinds
            limits = _section(facts.card_body, LIMITATIONS)
            if limits:
                pkg["ai_limitation"] = limits
            use = _section(facts.card_body, INTENDED_USE)
            if use:
                pkg["ai_informationAboutApplication"] = use
            metrics = _metrics(facts)
            if metrics:
                pkg["ai_metric"] = [
                    {"type": "DictionaryEntry", "key": f"{name} ({where})" if where else name, "value": value}
                    for name, value, where in metrics
                ]
        add(pkg)
        roots.append(model)
        if facts is None:
            relate("hasDeclaredLicense", model, [NO_ASSERTION_LICENSE])
            relate("hasConcludedLicense", model, [NO_ASSERTION_LICENSE])
            continue
        # a card that declares no licence declares none; one that says only `other` says nothing checkable
        declared = [e for e in _model_licences(facts) if e != _licence_ref("other")]
        none = NONE_LICENSE if own_license(facts) == "none declared" else NO_ASSERTION_LICENSE
        relate("hasDeclaredLicense", model, [licence(facts, declared, none)])
        relate("hasConcludedLicense", model, [licence(facts, _concluded(facts))])
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
                bases[key] = add(package(f"{ns}base-{len(bases) + 1}", link.parent, None, None, None))
                known = [_expression(facts, link.license)] if link.license != UNKNOWN_LICENSE else []
                relate("hasDeclaredLicense", bases[key], [licence(facts, known)])
                relate("hasConcludedLicense", bases[key], [licence(facts, known)])
            child = model if link.child.lower() == facts.name.lower() else bases.get(link.child.lower(), model)
            evidence = "; ".join(visible(p.detail) for p in link.proofs)
            p = f", {link.p_label}" if link.p_value is not None else ""
            relate(
                "descendantOf",
                child,
                [bases[key]],
                f"originscan: {link.relation}, evidence {link.strength}{p}"
                f"{'' if link.declared else ', not declared'}: {evidence}",
            )
        trained = []
        for k, d in enumerate(facts.datasets, start=1):
            # SPDX 3.0.1 Dataset profile: datasetType is required; what kind of data it is, the card does not say
            data = add(
                {
                    "type": "dataset_DatasetPackage",
                    "spdxId": f"{model}-data-{k}",
                    "name": visible(d.id),
                    "software_primaryPurpose": "data",
                    "suppliedBy": supplier(None, d.id),
                    "software_downloadLocation": _dataset_home(d) or NOASSERTION,
                    "dataset_datasetType": ["noAssertion"],
                    "comment": _dataset_note(d),
                }
            )
            published = [_expression(facts, lic.id) for lic in d.licenses]
            relate(
                "hasDeclaredLicense",
                data,
                [licence(facts, published, NONE_LICENSE if d.unlicensed else NO_ASSERTION_LICENSE)],
            )
            relate(
                "hasConcludedLicense", data, [licence(facts, [_expression(facts, lic.id) for lic in d.all_licenses])]
            )
            trained.append(data)
        if trained:
            relate("trainedOn", model, trained, "originscan: the training data the model card names (issue #25)")
    add(
        {
            "type": "SpdxDocument",
            "spdxId": f"{ns}document",
            "name": "originscan AI-BOM",
            "profileConformance": ["core", "software", "ai", "dataset", "simpleLicensing"],
            "rootElement": roots,
            "element": list(elements),
        }
    )
    return {"@context": SPDX_CONTEXT, "@graph": graph}


def render_spdx(reports: list[TargetReport], *, version: str) -> str:
    return json.dumps(json_ready(spdx_document(reports, version=version)), indent=2) + "\n"


__all__ = ["cyclonedx_bom", "hub_id", "purl", "render_cyclonedx", "render_spdx", "spdx_document"]
