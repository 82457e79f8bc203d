"""Model signatures: OpenSSF model-signing bundles shipped in a repo, verified and compared with the repo's files.

A model-signing bundle (`model.sig` by default) is a Sigstore bundle whose DSSE payload is an in-toto statement
listing every file of the model with its digest (sha256 by default). Verification is the library's own
(`model_signing`: an elliptic-curve public key, a certificate chain, or a keyless Sigstore identity and issuer);
originscan decides which of the policy's trust anchors to try, and compares the signed manifest with the files:

- local folders are hashed with the library's own hashing configuration, as the manifest says it was made;
- remote repos (hf:, github:) are compared without downloading weights where the hashes are already known (the
  Hub's LFS sha256, a Git LFS pointer's oid); small files without a known hash (configs, cards) are fetched and
  hashed, up to REMOTE_HASH_BYTES; anything else is reported as unchecked, never as matching.

Keyless Sigstore verification needs the network (Sigstore's trust root via TUF, and the transparency log): offline
it is reported as unverified with the reason, never as verified.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scanner.policy import SignaturePolicy
from scanner.sources.interface import Snapshot

BUNDLE_SUFFIXES = (".sig", ".sigstore", ".sigstore.json")
MAX_BUNDLES = 8
MAX_BUNDLE_BYTES = 4 * 1024 * 1024  # a manifest of 100 000 files is about 15 MB; real ones are kilobytes
REMOTE_HASH_BYTES = 16 * 1024 * 1024  # remote files without a known sha256 are fetched and hashed up to this size
FULCIO_ISSUER_OIDS = ("1.3.6.1.4.1.57264.1.8", "1.3.6.1.4.1.57264.1.1")  # OIDC issuer (v2 DER string, v1 raw)


@dataclass
class SignatureFacts:
    path: str  # the bundle
    kind: str  # "public key" | "certificate" | "sigstore" | "unknown"
    claimed: str  # who the bundle says signed it (certificate identity, Sigstore identity and issuer, key hint)
    trusted_by: str | None = None  # the policy anchor that verified it; None: not verified
    problem: str | None = None  # why it is not verified, or why the files could not be compared
    hash_type: str | None = None
    signed: int = 0  # files the verified manifest lists
    matched: int = 0
    mismatched: list[str] = field(default_factory=list)  # signed files whose content differs now
    missing: list[str] = field(default_factory=list)  # signed files that are gone
    unsigned: list[str] = field(default_factory=list)  # files here that the signature does not cover
    unchecked: list[str] = field(default_factory=list)  # remote files whose hash is unknown and too large to fetch

    @property
    def state(self) -> str:
        """verified | mismatch | unverified (an AI-BOM property and the check's decision)."""
        if self.trusted_by is None:
            return "unverified"
        return "mismatch" if self.mismatched or self.missing else "verified"

    def to_json(self) -> dict[str, Any]:
        return {
            "bundle": self.path,
            "kind": self.kind,
            "claimed_signer": self.claimed,
            "trusted_by": self.trusted_by,
            "state": self.state,
            "problem": self.problem,
            "hash_type": self.hash_type,
            "signed_files": self.signed,
            "matched_files": self.matched,
            "mismatched_files": self.mismatched[:50],
            "missing_files": self.missing[:50],
            "unsigned_files": self.unsigned[:50],
            "unchecked_files": self.unchecked[:50],
        }


def is_bundle(path: str) -> bool:
    return path.lower().endswith(BUNDLE_SUFFIXES)


def bundle_paths(snap: Snapshot) -> list[str]:
    return sorted(p for p in snap.files if is_bundle(p))[:MAX_BUNDLES]


def verify_repo(snap: Snapshot, policy: SignaturePolicy) -> list[SignatureFacts]:
    """Every signature bundle of the repo, verified against `policy`'s anchors and compared with the files."""
    bundles = bundle_paths(snap)
    return [_one(snap, path, bundles, policy) for path in bundles]


# -- one bundle ------------------------------------------------------------------------------------------------------
def _read(snap: Snapshot, path: str, limit: int) -> bytes | None:
    entry = snap.files.get(path)
    if entry is None or entry.size > limit or entry.lfs_pointer:
        return None
    src = snap.open(path)
    try:
        return src.read(0, src.size) if src.size <= limit else None
    finally:
        src.close()


def _one(snap: Snapshot, path: str, bundles: list[str], policy: SignaturePolicy) -> SignatureFacts:
    try:
        raw = _read(snap, path, MAX_BUNDLE_BYTES)
    except (OSError, ValueError) as exc:
        return SignatureFacts(path, "unknown", "unknown", problem=f"could not be read ({str(exc)[:160]})")
    if raw is None:
        return SignatureFacts(path, "unknown", "unknown", problem=f"not read (over {MAX_BUNDLE_BYTES} bytes)")
    try:
        doc = json.loads(raw.decode("utf-8"))
        material = doc["verificationMaterial"]
        if not isinstance(material, dict):
            raise TypeError("verificationMaterial is not an object")
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, RecursionError) as exc:
        return SignatureFacts(path, "unknown", "unknown", problem=f"not a Sigstore bundle ({str(exc)[:120]})")
    kind, claimed = _claims(material)
    facts = SignatureFacts(path, kind, claimed)
    with tempfile.TemporaryDirectory(prefix="originscan-sig-") as tmp:
        bundle_file = Path(tmp) / "bundle.sig"
        bundle_file.write_bytes(raw)
        manifest = _verify(bundle_file, kind, policy, facts)
    if manifest is not None:
        _compare(snap, manifest, bundles, facts)
    return facts


def _claims(material: dict[str, Any]) -> tuple[str, str]:
    """The bundle's kind and who it says signed it, read from its verification material (not yet verified)."""
    if "publicKey" in material:
        hint = (material.get("publicKey") or {}).get("hint") if isinstance(material.get("publicKey"), dict) else None
        return "public key", f"public key sha256:{str(hint)[:64]}" if hint else "a public key (no hint)"
    chain = material.get("x509CertificateChain")
    if isinstance(chain, dict) and isinstance(chain.get("certificates"), list) and chain["certificates"]:
        return "certificate", _certificate_identity(chain["certificates"][0])
    if isinstance(material.get("certificate"), dict):
        return "sigstore", _certificate_identity(material["certificate"])
    return "unknown", "unknown"


def _certificate_identity(entry: Any) -> str:
    import base64

    from cryptography import x509

    try:
        cert = x509.load_der_x509_certificate(base64.b64decode(entry["rawBytes"]))
    except Exception:  # noqa: BLE001 - any malformed certificate is just "unreadable" here
        return "an unreadable certificate"
    names: list[str] = []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [str(v) for v in san.get_values_for_type(x509.RFC822Name)]
        names += [str(v) for v in san.get_values_for_type(x509.UniformResourceIdentifier)]
    except x509.ExtensionNotFound:
        pass
    subject = cert.subject.rfc4514_string()
    who = ", ".join(names) or subject or "a certificate without a subject"
    for oid in FULCIO_ISSUER_OIDS:
        try:
            value = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(oid)).value
        except x509.ExtensionNotFound:
            continue
        raw = getattr(value, "value", b"")
        issuer = raw[2:] if oid.endswith(".8") and raw[:1] == b"\x0c" else raw  # v2: a DER UTF8String
        return f"{who} (issuer {issuer.decode('utf-8', 'replace')[:120]})"
    return f"{who} (certificate issued by {cert.issuer.rfc4514_string()[:120]})"


def _verify(bundle: Path, kind: str, policy: SignaturePolicy, facts: SignatureFacts) -> Any:
    """The verified manifest under the first of the policy's anchors of this kind that accepts it, else None."""
    from model_signing._signing import sign_certificate, sign_ec_key, sign_sigstore, sign_sigstore_pb

    attempts: list[tuple[str, Any]] = []
    if kind == "public key":
        attempts = [(f"public key {p.name}", lambda p=p: sign_ec_key.Verifier(p)) for p in policy.public_keys]
    elif kind == "certificate":
        attempts = [
            (f"certificate chain {p.name}", lambda p=p: sign_certificate.Verifier([p]))
            for p in policy.certificate_chains
        ]
    elif kind == "sigstore":
        attempts = [
            (
                f"Sigstore identity {s.identity} (issuer {s.issuer})",
                lambda s=s: sign_sigstore.Verifier(identity=s.identity, oidc_issuer=s.issuer),
            )
            for s in policy.sigstore
        ]
    else:
        facts.problem = "not a model-signing bundle this version reads"
        return None
    if not attempts:
        facts.problem = f"the policy names no trusted {kind} signer (signatures: in the policy)"
        return None
    reasons = []
    for label, make in attempts:
        try:
            reader = sign_sigstore.Signature if kind == "sigstore" else sign_sigstore_pb.Signature
            manifest = make().verify(reader.read(bundle))
        except Exception as exc:  # noqa: BLE001 - a hostile bundle may make the verifier raise anything
            reasons.append(f"{label}: {type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}")
            continue
        facts.trusted_by = label
        return manifest
    if kind == "sigstore":
        reasons.append("keyless Sigstore verification needs the network (Sigstore's trust root and transparency log)")
    facts.problem = "no identity the policy trusts verifies it: " + "; ".join(reasons)
    return None


# -- the files -------------------------------------------------------------------------------------------------------
def _ignored(path: str, ignore: list[str]) -> bool:
    return any(path == p or path.startswith(p.rstrip("/") + "/") for p in ignore)


def _compare(snap: Snapshot, manifest: Any, bundles: list[str], facts: SignatureFacts) -> None:
    serialization = dict(manifest.serialization_type)
    facts.hash_type = str(serialization.get("hash_type"))
    ignore = [str(p) for p in serialization.get("ignore_paths") or []] + bundles
    expected: dict[str, str] = {}
    for rd in manifest.resource_descriptors():
        name = rd.identifier if serialization.get("method") == "files" else rd.identifier.rsplit(":", 2)[0]
        expected.setdefault(name, "")
        if serialization.get("method") == "files":
            expected[name] = rd.digest.digest_hex
    facts.signed = len(expected)
    here = {p for p in snap.files if not _ignored(p, ignore)}
    facts.unsigned = sorted(here - expected.keys())
    facts.missing = sorted(p for p in expected if p not in snap.files)
    if snap.kind == "local":
        _compare_local(Path(snap.target), manifest, serialization, ignore, facts)
    elif serialization.get("method") == "files" and facts.hash_type == "sha256":
        _compare_remote(snap, expected, facts)
    else:
        facts.unchecked = sorted(p for p in expected if p in snap.files)
        facts.problem = (
            f"a {serialization.get('method')}/{facts.hash_type} manifest is compared by hashing the files, which "
            "a remote scan does not download"
        )


def _compare_local(
    root: Path, manifest: Any, serialization: dict[str, Any], ignore: list[str], f: SignatureFacts
) -> None:
    """Hash the folder with the library, configured as the manifest says it was made."""
    from model_signing import hashing

    try:
        config = hashing.Config()  # type: ignore[no-untyped-call]  # model_signing has no annotation here
        if serialization.get("method") == "shards":
            config.use_shard_serialization(
                hashing_algorithm=serialization["hash_type"],
                shard_size=serialization["shard_size"],
                allow_symlinks=bool(serialization.get("allow_symlinks")),
            )
        else:
            config.use_file_serialization(
                hashing_algorithm=serialization["hash_type"], allow_symlinks=bool(serialization.get("allow_symlinks"))
            )
        config.add_ignored_paths(model_path=root, paths=ignore)
        actual = config.hash(root)
    except Exception as exc:  # noqa: BLE001 - an unknown algorithm, a symlink the manifest did not allow, I/O
        f.problem = f"the files could not be hashed as the manifest asks ({type(exc).__name__}: {str(exc)[:160]})"
        f.unchecked = sorted(set(_files(manifest)) - set(f.missing))
        return
    want = {rd.identifier: rd.digest.digest_hex for rd in manifest.resource_descriptors()}
    have = {rd.identifier: rd.digest.digest_hex for rd in actual.resource_descriptors()}
    bad = {_file_of(i, serialization) for i in want if i in have and have[i] != want[i]}
    bad |= {_file_of(i, serialization) for i in want if i not in have} - set(f.missing)
    f.mismatched = sorted(bad)
    f.matched = len({_file_of(i, serialization) for i in want} - bad - set(f.missing))


def _file_of(identifier: str, serialization: dict[str, Any]) -> str:
    return identifier if serialization.get("method") == "files" else identifier.rsplit(":", 2)[0]


def _files(manifest: Any) -> list[str]:
    return [_file_of(rd.identifier, dict(manifest.serialization_type)) for rd in manifest.resource_descriptors()]


def _compare_remote(snap: Snapshot, expected: dict[str, str], f: SignatureFacts) -> None:
    """LFS sha256s where the listing has them (no weight byte read); small files fetched and hashed."""
    for path, digest in sorted(expected.items()):
        entry = snap.files.get(path)
        if entry is None:
            continue  # already in f.missing
        known = entry.sha256
        if known is None:
            try:
                data = _read(snap, path, REMOTE_HASH_BYTES)
            except (OSError, ValueError):
                data = None
            if data is None:
                f.unchecked.append(path)
                continue
            known = hashlib.sha256(data).hexdigest()
        if known == digest:
            f.matched += 1
        else:
            f.mismatched.append(path)


# The signature state of a scanned release, from its findings (the AI-BOMs record it): the worst one wins.
STATES = (
    ("security.signature_mismatch", "changed after signing"),
    ("security.signature_untrusted", "signed by an untrusted signer"),
    ("security.unsigned", "unsigned (the policy requires a signature)"),
    ("security.signature_unverified", "signed, not verified"),
    ("security.signature_verified", "signed and verified"),
)


def signature_state(rules: set[str]) -> str:
    return next((state for rule, state in STATES if rule in rules), "unsigned")
