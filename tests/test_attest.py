"""`originscan scan --attest FILE` (scanner/report/attest.py): an in-toto Statement v1 whose subjects are the scanned
files with their sha256 and whose predicate is the scan result."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from google.protobuf import json_format
from helpers import card_text, run_cli, save_tensors, tiny_llm
from in_toto_attestation.v1.statement import Statement
from servers.hub import make_repo

from scanner import __version__
from scanner.report.attest import PREDICATE_TYPE


def model(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "README.md").write_text(card_text({"license": "mit"}))
    (folder / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 48}))
    save_tensors(tiny_llm(3), folder / "model.safetensors")
    return folder


def parsed(path: Path) -> dict:
    doc = json.loads(path.read_text())
    stmt = Statement.copy_from_pb(json_format.ParseDict(doc, Statement([], "", {}).pb))
    stmt.validate()  # what a consumer of the statement checks first
    return doc


def test_a_local_scan_attests_every_file_with_its_sha256_and_the_findings(tmp_path):
    repo = model(tmp_path / "m")
    out = tmp_path / "scan.intoto.json"
    scan = run_cli("scan", str(repo), "--format", "json", "--attest", str(out))
    assert scan.returncode in (0, 1), scan.stderr
    doc = parsed(out)
    assert doc["_type"] == "https://in-toto.io/Statement/v1" and doc["predicateType"] == PREDICATE_TYPE
    subjects = {s["name"]: s["digest"]["sha256"] for s in doc["subject"]}
    assert subjects == {  # named as reports name a folder outside the working one: never an absolute path
        f"m/{name}": hashlib.sha256((repo / name).read_bytes()).hexdigest()
        for name in ("README.md", "config.json", "model.safetensors")
    }
    predicate = doc["predicate"]
    assert predicate["scanner"] == {"name": "originscan", "version": __version__}
    assert predicate["knowledgeBase"].startswith("rules ") and predicate["index"]
    assert {r["id"] for r in predicate["rules"]} >= {"license.unknown", "security.signature_mismatch"}
    (target,) = predicate["targets"]
    reported = json.loads(scan.stdout)["targets"][0]["findings"]
    assert [f["rule"] for f in target["findings"]] == [f["rule"] for f in reported]
    assert target["attestedFiles"] == 3 and target["unattestedFiles"] == []
    assert predicate["outcome"]["passed"] is (scan.returncode == 0)


def test_a_hub_scan_attests_the_lfs_hashes_and_names_what_it_did_not_hash(tmp_path, hub):
    repo = model(make_repo(hub.root, "org/m", {}))
    out = tmp_path / "scan.intoto.json"
    scan = run_cli("scan", "hf:org/m", "--attest", str(out))
    assert scan.returncode in (0, 1), scan.stderr
    doc = parsed(out)
    (subject,) = doc["subject"]  # the weights: the Hub lists their LFS sha256
    assert subject["name"].startswith("hf:org/m@") and subject["name"].endswith("/model.safetensors")
    assert subject["digest"]["sha256"] == hashlib.sha256((repo / "model.safetensors").read_bytes()).hexdigest()
    left = {Path(u["name"]).name: u["reason"] for u in doc["predicate"]["targets"][0]["unattestedFiles"]}
    assert left == {n: "no sha256 known without downloading it" for n in ("README.md", "config.json")}


def test_nothing_to_attest_is_one_clear_error(tmp_path, hub):
    make_repo(hub.root, "org/card-only", {"README.md": card_text({"license": "mit"})})
    scan = run_cli("scan", "hf:org/card-only", "--attest", str(tmp_path / "a.json"))
    assert scan.returncode == 2
    assert scan.stderr.strip().startswith("originscan: --attest") and len(scan.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "a.json").exists()
