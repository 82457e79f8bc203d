"""The policy file `.originscan.yml`: allowed / denied licences, severity overrides, suppressions, fail_on."""

from __future__ import annotations

import datetime as dt
import fnmatch
import os
from dataclasses import dataclass, field
from pathlib import Path

from scanner.errors import UsageError
from scanner.findings import Finding, Severity

POLICY_NAMES = (".originscan.yml", ".originscan.yaml")
POLICY_KEYS = ("fail_on", "licenses", "severity", "suppress", "publisher", "signatures")


@dataclass
class Suppression:
    rule: str  # a rule id or a glob such as "attribution.*"
    reason: str
    expires: dt.date | None = None
    path: str | None = None  # glob on the finding's path
    target: str | None = None  # glob on the target

    def matches(self, target: str, f: Finding) -> bool:
        if not fnmatch.fnmatchcase(f.rule, self.rule):
            return False
        if self.path and not fnmatch.fnmatchcase(f.path or "", self.path):
            return False
        return not (self.target and not fnmatch.fnmatchcase(target, self.target))


@dataclass(frozen=True)
class SigstoreIdentity:
    """A keyless Sigstore signer: the certificate's identity (an e-mail or a workflow URI) and its OIDC issuer."""

    identity: str
    issuer: str


@dataclass
class SignaturePolicy:
    """`signatures:` in the policy: whom to trust for model signatures (OpenSSF model-signing bundles), and whether
    a release without one is a finding. Key and certificate paths are resolved against the policy file's folder."""

    require: bool = False
    sigstore: list[SigstoreIdentity] = field(default_factory=list)
    public_keys: list[Path] = field(default_factory=list)  # PEM public keys (elliptic-curve, as model-signing uses)
    certificate_chains: list[Path] = field(default_factory=list)  # PEM CA certificates for certificate signatures

    @property
    def anchors(self) -> bool:
        return bool(self.sigstore or self.public_keys or self.certificate_chains)


@dataclass
class Policy:
    fail_on: Severity | None = Severity.high  # None = never fail
    allow: list[str] = field(default_factory=list)
    deny: list[str] = field(default_factory=list)
    severity: dict[str, Severity] = field(default_factory=dict)
    suppressions: list[Suppression] = field(default_factory=list)
    source: str | None = None
    publisher: str | None = None  # OWNER (or OWNER/NAME) that publishes what is scanned (see evidence/publisher.py)
    signatures: SignaturePolicy = field(default_factory=SignaturePolicy)

    def apply(self, target: str, findings: list[Finding], today: dt.date | None = None) -> list[Finding]:
        """Severity overrides, then suppressions. Expired suppressions stop suppressing and say so."""
        today = today or dt.date.today()
        for f in findings:
            for pattern, sev in self.severity.items():
                if fnmatch.fnmatchcase(f.rule, pattern):
                    f.severity = sev
            for s in self.suppressions:
                if not s.matches(target, f):
                    continue
                if s.expires and s.expires < today:
                    f.evidence["suppression_expired"] = s.expires.isoformat()
                    f.message += f" (suppression expired {s.expires.isoformat()}: {s.reason})"
                    continue
                f.suppressed = s.reason
                break
        return findings


def _known_rule(pattern: str, where: str) -> None:
    """A rule id or glob in a policy must name at least one rule of the catalogue (a typo would silently do
    nothing)."""
    from scanner.knowledge import catalogue

    if not any(fnmatch.fnmatchcase(rule_id, pattern) for rule_id in catalogue()):
        raise UsageError(f"{where}: {pattern!r} matches no rule id in rules/catalogue.yaml")


FAIL_ON_CHOICES = (*(s.name for s in Severity), "never")


def parse_fail_on(value: object, where: str = "--fail-on") -> Severity | None:
    """The one reading of a fail-on threshold, for `--fail-on` (scan, sweep, ci pull-request, the Action's
    `fail-on` input) and the policy's `fail_on`: a severity or "never" (None: nothing fails), any case."""
    text = str(value).strip().lower()
    if text == "never":
        return None
    try:
        return Severity.parse(text)
    except ValueError:
        raise UsageError(f"{where} must be one of {', '.join(FAIL_ON_CHOICES)} (got {value!r})") from None


def _severity(value: object, where: str) -> Severity:
    try:
        return Severity.parse(str(value))
    except ValueError as exc:
        raise UsageError(f"{where}: {exc}") from None


def policy_search_dirs(targets: list[str] | None = None, cwd: Path | None = None) -> list[Path]:
    """Where an unnamed `.originscan.yml` is looked for, first found wins (as ruff and pre-commit find theirs): the
    first local target's folder, then each folder above it up to its git repository's root, then the current
    directory. Remote targets (hf:, github:) have no folder: only the current directory."""
    here = (cwd or Path.cwd()).resolve()
    dirs: list[Path] = []
    local = next((Path(t) for t in targets or [] if ":" not in t.split("/", 1)[0] and Path(t).is_dir()), None)
    if local is not None:
        d = local.resolve()
        while True:
            dirs.append(d)
            if os.path.exists(d / ".git") or d.parent == d:  # os.path: an unreadable folder is no error here
                break  # the repository's root (or the file system's): a policy above it belongs to something else
            d = d.parent
        if not os.path.exists(d / ".git"):
            dirs = dirs[:1]  # not inside a git repository: only the model's own folder
    if here not in dirs:
        dirs.append(here)
    return dirs


def load_policy(path: str | None, search_dirs: list[Path] | None = None) -> Policy:
    """Load the named policy, or the first .originscan.yml found in `search_dirs`; defaults otherwise."""
    chosen: Path | None = Path(path) if path else None
    if chosen is None:
        for d in search_dirs or [Path.cwd()]:
            for name in POLICY_NAMES:
                if os.path.isfile(d / name):
                    chosen = d / name
                    break
            if chosen:
                break
        if chosen is None:
            return Policy()
    import yaml  # only when there is a policy file

    where = str(chosen)
    try:
        text = chosen.read_text(encoding="utf-8")
        data = yaml.safe_load(text) or {}
    except OSError as exc:
        raise UsageError(f"policy {where}: {exc.strerror or exc}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise UsageError(f"policy {where}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise UsageError(f"policy {where}: expected a mapping at the top level")
    unknown = sorted(str(k) for k in data if k not in POLICY_KEYS)
    if unknown:
        raise UsageError(f"policy {where} key {unknown[0]!r}: unknown (expected {', '.join(POLICY_KEYS)})")
    policy = Policy(source=where)
    if "fail_on" in data:
        policy.fail_on = parse_fail_on(data["fail_on"], f"policy {where} key 'fail_on'")
    lic = data.get("licenses") or {}
    if not isinstance(lic, dict):
        raise UsageError(f"policy {where}: `licenses` must be a mapping with allow / deny lists")
    for key in lic:
        if key not in ("allow", "deny"):
            raise UsageError(f"policy {where} key 'licenses.{key}': unknown (expected allow, deny)")
        if not isinstance(lic[key], (list, type(None))):
            raise UsageError(f"policy {where} key 'licenses.{key}': expected a list of licence ids")
    policy.allow = [str(x).lower() for x in lic.get("allow") or []]
    policy.deny = [str(x).lower() for x in lic.get("deny") or []]
    if data.get("publisher") is not None:
        from scanner.sources.origin import OWNER, REPO_ID

        pub = str(data["publisher"]).strip()
        if not (OWNER.match(pub) or REPO_ID.match(pub)):
            raise UsageError(f"policy {where} key 'publisher': expected OWNER or OWNER/NAME, got {pub!r}")
        policy.publisher = pub
    if data.get("signatures") is not None:
        policy.signatures = _signature_policy(data["signatures"], where, chosen.parent)
    sev = data.get("severity") or {}
    if not isinstance(sev, dict):
        raise UsageError(f"policy {where}: `severity` must map rule ids to severities")
    for k, v in sev.items():
        key = f"policy {where} key 'severity.{k}'"
        _known_rule(str(k), key)
        policy.severity[str(k)] = _severity(v, key)
    suppress = data.get("suppress") or []
    if not isinstance(suppress, list):
        raise UsageError(f"policy {where}: `suppress` must be a list of suppressions")
    for i, entry in enumerate(suppress):
        if not isinstance(entry, dict) or not entry.get("rule") or not entry.get("reason"):
            raise UsageError(f"policy {where}: suppression #{i + 1} needs `rule` and `reason`")
        _known_rule(str(entry["rule"]), f"policy {where} key 'suppress[{i}].rule'")
        expires = entry.get("expires")
        if expires is not None and not isinstance(expires, dt.date):
            try:
                expires = dt.date.fromisoformat(str(expires))
            except ValueError:
                raise UsageError(
                    f"policy {where}: suppression #{i + 1} has a bad date {expires!r} (use YYYY-MM-DD)"
                ) from None
        policy.suppressions.append(
            Suppression(str(entry["rule"]), str(entry["reason"]), expires, entry.get("path"), entry.get("target"))
        )
    return policy


def _signature_policy(data: object, where: str, base: Path) -> SignaturePolicy:
    keys = ("require", "sigstore", "public_keys", "certificate_chains")
    if not isinstance(data, dict):
        raise UsageError(f"policy {where}: `signatures` must be a mapping ({', '.join(keys)})")
    for key in data:
        if key not in keys:
            raise UsageError(f"policy {where} key 'signatures.{key}': unknown (expected {', '.join(keys)})")
    out = SignaturePolicy(require=bool(data.get("require", False)))
    for i, entry in enumerate(data.get("sigstore") or []):
        if not (isinstance(entry, dict) and entry.get("identity") and entry.get("issuer")):
            raise UsageError(f"policy {where} key 'signatures.sigstore[{i}]': needs `identity` and `issuer`")
        out.sigstore.append(SigstoreIdentity(str(entry["identity"]), str(entry["issuer"])))
    for key, paths in (("public_keys", out.public_keys), ("certificate_chains", out.certificate_chains)):
        value = data.get(key) or []
        if not isinstance(value, list):
            raise UsageError(f"policy {where} key 'signatures.{key}': expected a list of PEM files")
        for item in value:
            path = base / str(item)
            if not path.is_file():
                raise UsageError(f"policy {where} key 'signatures.{key}': no file {path}")
            paths.append(path)
    return out
