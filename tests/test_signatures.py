"""Model signatures (scanner/evidence/signatures.py, scanner/checks/signatures.py): real OpenSSF model-signing
bundles made at test time with an elliptic-curve key and with a certificate chain (tests/signing.py), verified
against the policy's `signatures:` anchors, locally and through the local Hub server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import assert_fires, assert_quiet, card_text, findings_of, save_tensors, scan, tiny_llm
from servers.hub import make_repo
from signing import as_keyless, key_pair, pki, sign_with_certificate, sign_with_key

from scanner.errors import UsageError
from scanner.evidence.signatures import verify_repo
from scanner.policy import Policy, load_policy
from scanner.sources.hf import HFSource

RULES = (
    "security.signature_mismatch",
    "security.signature_untrusted",
    "security.signature_unverified",
    "security.signature_verified",
    "security.unsigned",
)


def model(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "README.md").write_text(card_text({"license": "mit"}))
    (folder / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 48}))
    save_tensors(tiny_llm(3), folder / "model.safetensors")
    return folder


def policy(tmp: Path, **signatures) -> Policy:
    path = tmp / "policy" / ".originscan.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"signatures": signatures}))  # JSON is YAML
    return load_policy(str(path))


def only(report, rule):
    for other in RULES:
        if other != rule:
            assert_quiet(report, other)
    return assert_fires(report, rule)


# -- public keys ----------------------------------------------------------------------------------------------------
def test_a_release_signed_with_a_trusted_key_verifies(tmp_path):
    keys = key_pair(tmp_path / "policy")
    repo = model(tmp_path / "m")
    sign_with_key(repo, keys)
    report = scan(repo, policy(tmp_path, public_keys=["release.pub"]))
    (hit,) = only(report, "security.signature_verified")
    assert_fires(report, "security.signature_verified")
    for rule in ("security.signature_mismatch", "security.signature_untrusted", "security.signature_unverified"):
        assert_quiet(report, rule)
    assert hit.evidence["state"] == "verified" and hit.evidence["matched_files"] == 3 == hit.evidence["signed_files"]
    assert hit.evidence["trusted_by"] == "public key release.pub"


def test_a_weight_changed_after_signing_is_critical(tmp_path):
    keys = key_pair(tmp_path / "policy")
    repo = model(tmp_path / "m")
    sign_with_key(repo, keys)
    save_tensors(tiny_llm(4), repo / "model.safetensors")  # re-saved after signing
    (repo / "config.json").unlink()
    report = scan(repo, policy(tmp_path, public_keys=["release.pub"]))
    (hit,) = only(report, "security.signature_mismatch")
    assert_fires(report, "security.signature_mismatch")
    assert_quiet(report, "security.signature_verified")
    assert hit.severity.name == "critical"
    assert hit.evidence["mismatched_files"] == ["model.safetensors"] and hit.evidence["missing_files"] == [
        "config.json"
    ]
    assert "model.safetensors (changed)" in hit.message and "config.json (gone)" in hit.message


def test_a_file_added_after_signing_is_named_but_is_not_a_mismatch(tmp_path):
    keys = key_pair(tmp_path / "policy")
    repo = model(tmp_path / "m")
    sign_with_key(repo, keys)
    (repo / "NOTICE").write_text("added later\n")
    (hit,) = only(scan(repo, policy(tmp_path, public_keys=["release.pub"])), "security.signature_verified")
    assert hit.evidence["unsigned_files"] == ["NOTICE"] and "not covered by it: NOTICE" in hit.message


def test_a_key_the_policy_does_not_trust_is_untrusted(tmp_path):
    key_pair(tmp_path / "policy", "trusted")
    signer = key_pair(tmp_path / "elsewhere", "someone")
    repo = model(tmp_path / "m")
    sign_with_key(repo, signer)
    report = scan(repo, policy(tmp_path, public_keys=["trusted.pub"]))
    (hit,) = only(report, "security.signature_untrusted")
    assert_fires(report, "security.signature_untrusted")
    assert "Key mismatch" in hit.message and hit.evidence["claimed_signer"].startswith("public key sha256:")


def test_a_signature_without_trust_anchors_is_unverified_not_trusted(tmp_path):
    repo = model(tmp_path / "m")
    sign_with_key(repo, key_pair(tmp_path / "k"))
    report = scan(repo, Policy())
    (hit,) = only(report, "security.signature_unverified")
    assert_fires(report, "security.signature_unverified")
    assert "policy names no trusted public key signer" in hit.message


def test_a_forged_manifest_does_not_verify(tmp_path):
    """The payload rewritten to list the tampered file's new hash: the signature no longer covers it."""
    import base64

    keys = key_pair(tmp_path / "policy")
    repo = model(tmp_path / "m")
    bundle = sign_with_key(repo, keys)
    doc = json.loads(bundle.read_text())
    payload = json.loads(base64.b64decode(doc["dsseEnvelope"]["payload"]))
    payload["predicate"]["resources"][0]["digest"] = "0" * 64
    doc["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(payload).encode()).decode()
    bundle.write_text(json.dumps(doc))
    only(scan(repo, policy(tmp_path, public_keys=["release.pub"])), "security.signature_untrusted")


# -- certificates and Sigstore ------------------------------------------------------------------------------------
def test_a_certificate_signature_verifies_against_the_trusted_chain(tmp_path):
    ca = pki(tmp_path / "policy")
    repo = model(tmp_path / "m")
    sign_with_certificate(repo, ca)
    (hit,) = only(scan(repo, policy(tmp_path, certificate_chains=["ca-root.pem"])), "security.signature_verified")
    assert "release@example.org" in hit.evidence["claimed_signer"]


def test_a_certificate_from_another_ca_is_untrusted(tmp_path):
    pki(tmp_path / "policy", name="ours")
    theirs = pki(tmp_path / "elsewhere", email="someone@example.net", name="theirs")
    repo = model(tmp_path / "m")
    sign_with_certificate(repo, theirs)
    (hit,) = only(scan(repo, policy(tmp_path, certificate_chains=["ours-root.pem"])), "security.signature_untrusted")
    assert "someone@example.net" in hit.message


def test_keyless_sigstore_needs_the_network_and_is_never_passed_offline(tmp_path):
    repo = model(tmp_path / "m")
    bundle = sign_with_certificate(repo, pki(tmp_path / "ca"))
    as_keyless(bundle)
    trusted = [{"identity": "release@example.org", "issuer": "https://github.com/login/oauth"}]
    (hit,) = only(scan(repo, policy(tmp_path, sigstore=trusted)), "security.signature_untrusted")
    assert hit.evidence["kind"] == "sigstore" and "needs the network" in hit.message


# -- policy -----------------------------------------------------------------------------------------------------------
def test_an_unsigned_release_is_a_finding_only_when_the_policy_requires_signatures(tmp_path):
    repo = model(tmp_path / "m")
    report = scan(repo, policy(tmp_path, require=True))
    only(report, "security.unsigned")
    assert_fires(report, "security.unsigned")
    for rule in RULES:
        assert_quiet(scan(repo, Policy()), rule)
    sign_with_key(repo, key_pair(tmp_path / "policy"))
    assert_quiet(scan(repo, policy(tmp_path, require=True, public_keys=["release.pub"])), "security.unsigned")


def test_the_signatures_policy_is_validated(tmp_path):
    with pytest.raises(UsageError, match="no file"):
        policy(tmp_path, public_keys=["missing.pub"])
    with pytest.raises(UsageError, match="needs `identity` and `issuer`"):
        policy(tmp_path, sigstore=[{"identity": "x"}])
    with pytest.raises(UsageError, match="signatures.trust"):
        policy(tmp_path, trust=[])


# -- remote -----------------------------------------------------------------------------------------------------------
def test_a_hub_repo_is_verified_from_its_lfs_hashes_without_reading_weights(tmp_path, hub):
    keys = key_pair(tmp_path / "policy")
    repo = model(make_repo(hub.root, "org/signed", {}))
    sign_with_key(repo, keys)
    snap = HFSource("org/signed", cache=False).snapshot()
    hub.stats.reset()
    (facts,) = verify_repo(snap, policy(tmp_path, public_keys=["release.pub"]).signatures)
    assert facts.state == "verified" and facts.matched == 3 and not facts.unchecked
    assert hub.stats.weight_bytes_served == 0  # model.safetensors: its LFS sha256 from the listing
    save_tensors(tiny_llm(5), repo / "model.safetensors")  # the weights replaced on the Hub after signing
    snap = HFSource("org/signed", cache=False).snapshot()
    hub.stats.reset()
    (facts,) = verify_repo(snap, policy(tmp_path, public_keys=["release.pub"]).signatures)
    assert facts.state == "mismatch" and facts.mismatched == ["model.safetensors"]
    assert hub.stats.weight_bytes_served == 0


def test_a_malformed_bundle_is_reported_not_trusted(tmp_path):
    repo = model(tmp_path / "m")
    (repo / "model.sig").write_text('{"verificationMaterial": 7}')
    (hit,) = findings_of(scan(repo, Policy()), "security.signature_unverified")
    assert "not a Sigstore bundle" in hit.message


def test_the_ai_boms_record_the_signature_state(tmp_path):
    from scanner.knowledge import catalogue
    from scanner.report.render import render

    keys = key_pair(tmp_path / "policy")
    repo = model(tmp_path / "m")
    signed = scan(repo, Policy())  # before signing
    sign_with_key(repo, keys)
    verified = scan(repo, policy(tmp_path, public_keys=["release.pub"]))
    save_tensors(tiny_llm(6), repo / "model.safetensors")
    changed = scan(repo, policy(tmp_path, public_keys=["release.pub"]))
    states = []
    for report in (signed, verified, changed):
        cdx = json.loads(render([report], "cyclonedx", catalogue(), version="1"))
        models = [cdx["metadata"].get("component", {})] + cdx.get("components", [])  # one model: the BOM's subject
        (model_component,) = [c for c in models if c.get("type") == "machine-learning-model"]
        states.append({p["name"]: p["value"] for p in model_component["properties"]}["originscan:signature"])
        spdx = json.dumps(json.loads(render([report], "spdx", catalogue(), version="1")))
        assert f"model signature: {states[-1]}" in spdx
    assert states == ["unsigned", "signed and verified", "changed after signing"]
