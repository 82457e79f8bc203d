"""AI-BOMs: `--format cyclonedx` validated by cyclonedx-python-lib's JSON schema validator (CycloneDX 1.6), and
`--format spdx` validated against the SPDX 3.0.1 JSON schema (bundled: tests/data/spdx/README.md says from where)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from helpers import run_cli
from report_world import HOSTILE, UPSTREAM, build

from scanner.knowledge import catalogue
from scanner.report.render import render

SPDX_SCHEMA = Path(__file__).resolve().parent / "data" / "spdx" / "spdx-3.0.1-json-schema.json"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build(tmp_path_factory.mktemp("aibom-world"))


@pytest.fixture(scope="module")
def cdx(world):
    return json.loads(render(world.reports, "cyclonedx", catalogue(), version="1.2.3"))


@pytest.fixture(scope="module")
def spdx(world):
    return json.loads(render(world.reports, "spdx", catalogue(), version="1.2.3"))


@pytest.fixture(scope="module")
def spdx_validator():
    schema = json.loads(SPDX_SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def cdx_errors(doc: dict) -> object:
    return JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(doc))


# -- CycloneDX ---------------------------------------------------------------------------------------------------
def test_cyclonedx_is_valid_1_6(cdx):
    assert cdx["bomFormat"] == "CycloneDX" and cdx["specVersion"] == "1.6"
    assert cdx_errors(cdx) is None


def test_cyclonedx_validation_can_fail(cdx):
    broken = copy.deepcopy(cdx)
    broken["components"][0]["type"] = "not-a-type"
    assert cdx_errors(broken) is not None
    broken = copy.deepcopy(cdx)
    pruned = next(m for m in broken["components"] if m["name"] == "pruned")
    pruned["pedigree"]["ancestors"][0]["evidence"]["identity"][0]["methods"][0]["technique"] = "x"
    assert cdx_errors(broken) is not None


def test_cyclonedx_one_model_component_per_target_with_hashes_licences_card(cdx, world):
    models = {m["name"]: m for m in cdx["components"]}  # the library orders components itself
    assert sorted(models) == ["finetune", "hf:gone/model", "me/multi-hop", "pruned"]
    assert {m["type"] for m in models.values()} == {"machine-learning-model"}
    pruned = models["pruned"]
    [weights] = pruned["components"]
    assert weights["name"] == "model.safetensors"
    assert weights["hashes"] == [{"alg": "SHA-256", "content": world.pruned_weights_sha256}]
    assert pruned["licenses"] == [{"license": {"id": "Apache-2.0"}}]
    card = pruned["modelCard"]
    assert card["modelParameters"]["task"] == "text-generation"
    shown = f"data/{HOSTILE}".replace("\x1b", "\\x1b")  # the control character made visible
    assert card["modelParameters"]["datasets"] == [{"type": "dataset", "name": shown}]
    props = {p["name"]: p["value"] for p in card["properties"]}
    assert props["originscan:card:library_name"] == "transformers"
    assert "\x1b" not in json.dumps(cdx)  # control characters are shown, never passed on


def test_cyclonedx_base_models_are_ancestors_with_evidence(cdx):
    models = {m["name"]: m for m in cdx["components"]}
    pruned, finetune, multi = models["pruned"], models["finetune"], models["me/multi-hop"]
    by_name = {a["name"]: a for a in pruned["pedigree"]["ancestors"]}
    upstream = by_name[UPSTREAM]
    props = {p["name"]: p["value"] for p in upstream["properties"]}
    assert props["originscan:relation"] == "copy" and props["originscan:evidence"] == "weights"
    assert props["originscan:declared"] == "false" and float(props["originscan:p_value"]) < 1e-8
    [identity] = upstream["evidence"]["identity"]
    assert identity["concludedValue"] == UPSTREAM
    assert [m["technique"] for m in identity["methods"]] == ["binary-analysis", "source-code-analysis"]
    assert identity["methods"][1]["value"].startswith("modeling_pruned.py copies modeling_acme.py")
    assert upstream["licenses"] == [{"license": {"id": "Apache-2.0"}}]
    chain = sorted(
        (int({p["name"]: p["value"] for p in a["properties"]}["originscan:hops"]), a["name"])
        for a in multi["pedigree"]["ancestors"]
    )
    assert chain == [(1, "someone/ft-of-ft"), (2, "someone/ft"), (3, "meta-llama/Meta-Llama-3-8B")]
    llama = next(a for a in multi["pedigree"]["ancestors"] if a["name"] == "meta-llama/Meta-Llama-3-8B")
    assert llama["licenses"] == [{"license": {"name": "llama3"}}]  # no SPDX id for the Llama 3 licence
    assert {p["name"]: p["value"] for p in finetune["pedigree"]["ancestors"][0]["properties"]}[
        "originscan:relation"
    ] == "fine-tune"


# -- SPDX 3.0.1 --------------------------------------------------------------------------------------------------
def test_spdx_is_valid_3_0_1(spdx, spdx_validator):
    errors = [f"{e.json_path}: {e.message[:200]}" for e in spdx_validator.iter_errors(spdx)]
    assert not errors, errors[:5]
    assert spdx["@context"] == "https://spdx.org/rdf/3.0.1/spdx-context.jsonld"


def test_spdx_validation_can_fail(spdx, spdx_validator):
    broken = copy.deepcopy(spdx)
    rel = next(e for e in broken["@graph"] if e["type"] == "Relationship")
    rel["relationshipType"] = "inventedBy"
    assert next(spdx_validator.iter_errors(broken), None) is not None
    broken = copy.deepcopy(spdx)
    del next(e for e in broken["@graph"] if e["type"] == "ai_AIPackage")["creationInfo"]
    assert next(spdx_validator.iter_errors(broken), None) is not None


def test_spdx_ai_packages_licences_files_and_bases(spdx, world):
    graph = spdx["@graph"]
    by_id = {e.get("spdxId"): e for e in graph}
    doc = next(e for e in graph if e["type"] == "SpdxDocument")
    assert "ai" in doc["profileConformance"]
    roots = [by_id[r] for r in doc["rootElement"]]
    assert [r["type"] for r in roots] == ["ai_AIPackage"] * 4
    pruned = roots[0]
    rels = [e for e in graph if e["type"] == "Relationship"]

    def targets(src: str, kind: str) -> list[dict]:
        return [by_id[t] for r in rels if r["from"] == src and r["relationshipType"] == kind for t in r["to"]]

    [licence] = targets(pruned["spdxId"], "hasDeclaredLicense")
    assert licence["simplelicensing_licenseExpression"] == "Apache-2.0"
    [weights] = targets(pruned["spdxId"], "contains")
    assert weights["verifiedUsing"] == [
        {"type": "Hash", "algorithm": "sha256", "hashValue": world.pruned_weights_sha256}
    ]
    bases = {b["name"]: b for b in targets(pruned["spdxId"], "descendantOf")}
    assert UPSTREAM in bases and bases[UPSTREAM]["type"] == "ai_AIPackage"
    comment = next(
        r["comment"]
        for r in rels
        if r["from"] == pruned["spdxId"]
        and r["relationshipType"] == "descendantOf"
        and bases[UPSTREAM]["spdxId"] in r["to"]
    )
    assert "copy, evidence weights, p=" in comment and "not declared" in comment
    # the multi-hop chain: model -> ft-of-ft -> ft -> Llama 3, whose licence is a LicenseRef
    multi = roots[2]
    hop = multi["spdxId"]
    names = []
    for _ in range(3):
        [nxt] = targets(hop, "descendantOf")
        names.append(nxt["name"])
        hop = nxt["spdxId"]
    assert names == ["someone/ft-of-ft", "someone/ft", "meta-llama/Meta-Llama-3-8B"]
    assert [x["simplelicensing_licenseExpression"] for x in targets(hop, "hasDeclaredLicense")] == ["LicenseRef-llama3"]


# -- the command line --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["cyclonedx", "spdx"])
def test_cli_writes_each_format(fmt, world, tmp_path, spdx_validator):
    out = tmp_path / f"bom.{fmt}.json"
    r = run_cli("scan", str(world.pruned_repo), "--format", fmt, "-o", str(out), "--fail-on", "never")
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text(encoding="utf-8"))
    if fmt == "cyclonedx":
        assert cdx_errors(doc) is None and doc["components"][0]["name"] == "pruned"
    else:
        assert not list(spdx_validator.iter_errors(doc))
        assert any(e["type"] == "ai_AIPackage" and e["name"] == "pruned" for e in doc["@graph"])
