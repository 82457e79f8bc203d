"""`originscan scan --attest FILE`: an in-toto Statement v1 of the scan, for a signing step (Sigstore, GitHub's
artifact attestations) to sign.

The statement's subjects are the scanned files with their sha256: from the listing where it is known for free (the
Hub's LFS hashes, Git LFS pointers, weights a local scan hashed), otherwise read and hashed for local folders. A
remote file whose sha256 is not known without downloading it is not a subject; the predicate names it under
`unattestedFiles`, so nothing is attested that was not hashed. The predicate is the scan result: the findings of
every target, the rule catalogue in force, the knowledge base's digest, the fingerprint index, the policy and its
outcome, and originscan's version. The statement is built and validated with the in-toto-attestation library.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from scanner.report.paths import local_root, shown_report, shown_target
from scanner.report.run_info import ScanRun
from scanner.report.sanitize import json_ready
from scanner.results import TargetReport

# Identifies this predicate's schema (in-toto TypeURI; the spec allows it not to resolve). Its major version changes
# only when a field changes meaning; fields are only ever added (in-toto's monotonic principle).
PREDICATE_TYPE = "https://originscan.dev/attestation/scan-result/v1"


def _sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _subject_name(target: str, revision: str | None, path: str) -> str:
    """A name that says where the file was: the folder as reports show it, or the remote target at its revision."""
    if target.startswith(("hf:", "github:")):
        base = target.split("@", 1)[0] + (f"@{revision}" if revision else "")
        return f"{base}/{path}"
    return str(Path(target) / path)


def subjects_of(report: TargetReport, root: Path | None = None) -> tuple[list[tuple[str, str]], list[dict[str, str]]]:
    """((name, sha256) for each file that could be hashed, [{name, reason} for those that could not]); `root`: the
    scan's `local_root`."""
    done: list[tuple[str, str]] = []
    left: list[dict[str, str]] = []
    if report.facts is None:
        return done, left
    local = not report.target.startswith(("hf:", "github:"))
    shown = shown_target(report.target, root=root)  # never the scanner's absolute paths (scanner/report/paths.py)
    for f in sorted(report.facts.files, key=lambda f: f.path):
        name = _subject_name(shown, report.revision, f.path)
        if f.sha256 and not (local and f.lfs_pointer):
            done.append((name, f.sha256))
        elif local and not f.lfs_pointer:
            try:
                done.append((name, _sha256(Path(report.target) / f.path)))
            except OSError as exc:
                left.append({"name": name, "reason": f"could not be read ({exc.strerror or exc})"})
        elif f.lfs_pointer:
            left.append({"name": name, "reason": "a Git LFS pointer: its content was not fetched"})
        else:
            left.append({"name": name, "reason": "no sha256 known without downloading it"})
    return done, left


def statement(reports: list[TargetReport], run: ScanRun, rules: dict[str, str]) -> dict[str, Any]:
    """The in-toto Statement v1 as a JSON object (validated by in-toto-attestation)."""
    from google.protobuf import json_format
    from in_toto_attestation.v1.resource_descriptor import ResourceDescriptor
    from in_toto_attestation.v1.statement import Statement

    subjects = []
    targets = []
    root = local_root(r.target for r in reports)
    for r in reports:
        done, left = subjects_of(r, root)
        subjects += [ResourceDescriptor(name=name, digest={"sha256": digest}).pb for name, digest in done]
        entry: dict[str, Any] = shown_report(r, root=root).to_json()
        entry["attestedFiles"] = len(done)
        entry["unattestedFiles"] = left
        targets.append(entry)
    passed, outcome = run.outcome(reports)
    predicate = json_ready(
        {
            "scanner": {"name": "originscan", "version": run.version},
            "scannedAt": run.started.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "knowledgeBase": run.knowledge,
            "index": run.index,
            "policy": {"file": run.policy, "failOn": run.fail_on_text},
            "outcome": {"passed": passed, "summary": outcome},
            "rules": [{"id": rule, "severity": severity} for rule, severity in sorted(rules.items())],
            "targets": targets,
        }
    )
    stmt = Statement(subjects, PREDICATE_TYPE, json.loads(json.dumps(predicate, default=str)))
    stmt.validate()  # at least one subject, each with a digest; a predicate type and a predicate
    out: dict[str, Any] = _integers(json_format.MessageToDict(stmt.pb))
    return out


def _integers(value: Any) -> Any:
    """protobuf's Struct holds every number as a double: counts and line numbers come back as integers."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {k: _integers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integers(v) for v in value]
    return value


def write_attestation(path: Path, reports: list[TargetReport], run: ScanRun) -> int:
    """Write the statement to `path` (atomically); returns the number of subjects. ValueError when there is nothing
    to attest (no file could be hashed)."""
    from scanner.atomic import write_text_atomic
    from scanner.knowledge import catalogue

    doc = statement(reports, run, {r.id: r.severity.name for r in catalogue().values()})
    write_text_atomic(path, json.dumps(doc, indent=2, sort_keys=True) + "\n")
    return len(doc["subject"])
