"""Real model signatures made at test time with OpenSSF model-signing: an elliptic-curve key pair, and a small PKI
(a root CA and a code-signing leaf certificate) for certificate signatures. Nothing here is committed: keys and
certificates are generated per test."""

from __future__ import annotations

import base64
import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from model_signing import hashing, signing

BUNDLE = "model.sig"


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _pem_public(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


@dataclass
class KeyPair:
    private: Path
    public: Path


def key_pair(folder: Path, name: str = "release") -> KeyPair:
    folder.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    (private := folder / f"{name}.key").write_bytes(_pem_key(key))
    (public := folder / f"{name}.pub").write_bytes(_pem_public(key))
    return KeyPair(private, public)


@dataclass
class Pki:
    root: Path  # the CA certificate a policy trusts
    leaf: Path  # the signing certificate
    leaf_key: Path
    email: str


def pki(folder: Path, email: str = "release@example.org", name: str = "ca") -> Pki:
    """A root CA and a code-signing leaf certificate for `email`, valid from yesterday for 30 days."""
    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP384R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"originscan test root {name}")])
    usage = dict(
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        encipher_only=False,
        decipher_only=False,
    )
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=False, key_cert_sign=True, crl_sign=True, **usage), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA384())
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "release signer")]))
        .issuer_name(ca_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False, **usage), critical=True
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(email)]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    (root := folder / f"{name}-root.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (leaf_pem := folder / f"{name}-leaf.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (leaf_key_pem := folder / f"{name}-leaf.key").write_bytes(_pem_key(leaf_key))
    return Pki(root, leaf_pem, leaf_key_pem, email)


def _hashing() -> hashing.Config:
    return hashing.Config().set_ignored_paths(paths=[BUNDLE], ignore_git_paths=True)


def sign_with_key(model: Path, keys: KeyPair) -> Path:
    signing.Config().use_elliptic_key_signer(private_key=keys.private).set_hashing_config(_hashing()).sign(
        model, model / BUNDLE
    )
    return model / BUNDLE


def sign_with_certificate(model: Path, p: Pki) -> Path:
    signing.Config().use_certificate_signer(
        private_key=p.leaf_key, signing_certificate=p.leaf, certificate_chain=[p.root]
    ).set_hashing_config(_hashing()).sign(model, model / BUNDLE)
    return model / BUNDLE


def as_keyless(bundle: Path) -> None:
    """Rewrite a certificate bundle the way a keyless Sigstore bundle carries its certificate (one leaf, no chain):
    what a Fulcio-signed release looks like to the verifier, without Fulcio (there is no network here)."""
    doc = json.loads(bundle.read_text())
    leaf = doc["verificationMaterial"]["x509CertificateChain"]["certificates"][0]
    base64.b64decode(leaf["rawBytes"])  # a real certificate, kept as it is
    doc["verificationMaterial"] = {"certificate": leaf, "tlogEntries": []}
    bundle.write_text(json.dumps(doc))
