"""The index's verdicts on one snapshot, remembered by content: while neither the suspect's weights nor any
registered upstream changed, a re-scan reuses them and reads no weight byte and no fingerprint.

The key covers everything the comparison reads: the suspect's weight files (path, size, sha256 — only snapshots
whose every weight file has a known hash are remembered), its config.json, every registered upstream (name,
licence, target, fingerprint key) and the comparison method itself (originscan's version and a hash of the
provenance code). A new upstream, a changed file or another version of the method computes them again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scanner.findings import Finding, Severity
from scanner.provenance.result import Verdict, WeightMatch
from scanner.sources.cache import Cache, default_cache
from scanner.sources.interface import Snapshot

if TYPE_CHECKING:  # annotations only: the index loads numpy, which an unchanged re-scan never needs
    from scanner.provenance.index import Index

RECORD = "verdicts-v1-"  # cache key prefix


@lru_cache(maxsize=1)
def method_version() -> str:
    """originscan's version and a hash of the provenance code: any change to how verdicts are made invalidates."""
    from scanner import __version__

    h = hashlib.sha256(__version__.encode())
    for path in sorted(Path(__file__).parent.glob("*.py")):
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def scan_key(snap: Snapshot, index: Index) -> str | None:
    """The content key of (this snapshot's weights, the registered upstreams, the method); None when a weight
    file's content hash is unknown (then nothing is remembered)."""
    files = snap.weight_files()
    if not files or not all(f.sha256 for f in files):
        return None
    upstreams = [[r.name, r.license, r.target, r.fingerprint] for r in index.models()]
    material = {
        "target": snap.target,
        "files": [[f.path, f.size, f.sha256, f.lfs_pointer] for f in files],
        "config": snap.jsons.get("config.json"),
        "upstreams": upstreams,
        "method": method_version(),
    }
    return RECORD + hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()


def _finding_record(f: Finding) -> dict[str, Any]:
    return {
        "rule": f.rule,
        "severity": f.severity.name,
        "message": f.message,
        "path": f.path,
        "line": f.line,
        "evidence": f.evidence,
    }


def _restore(record: dict[str, Any]) -> tuple[list[WeightMatch], list[Finding]]:
    # reused: nothing was read or computed this time
    matches = [
        WeightMatch(m["name"], m["license"], Verdict.from_json(m["verdict"]).reused()) for m in record["matches"]
    ]
    findings = [
        Finding(
            f["rule"],
            Severity[f["severity"]],
            f["message"],
            path=f.get("path"),
            line=f.get("line"),
            evidence=f.get("evidence") or {},
        )
        for f in record["findings"]
    ]
    return matches, findings


def remembered(
    snap: Snapshot,
    index: Index | None,
    compute: Callable[[Snapshot, Index | None], tuple[list[WeightMatch], list[Finding]]],
    cache: Cache | None = None,
) -> tuple[list[WeightMatch], list[Finding]]:
    """compute(snap, index) — the weight matches and their findings — unless remembered for this content."""
    if index is None:
        return compute(snap, index)
    cache = cache if cache is not None else default_cache()
    key = scan_key(snap, index) if cache is not None else None
    if key is not None and cache is not None:
        record = cache.get_json(key)
        if isinstance(record, dict):
            try:
                return _restore(record)
            except (KeyError, TypeError, ValueError):
                pass  # an unreadable record is computed again and overwritten
    matches, findings = compute(snap, index)
    if key is not None and cache is not None:
        record = {
            "matches": [{"name": m.name, "license": m.license, "verdict": m.verdict.to_json()} for m in matches],
            "findings": [_finding_record(f) for f in findings],
        }
        try:
            cache.put_json(key, record)
        except (OSError, TypeError, ValueError):
            pass  # not remembered: computed again next time
    return matches, findings
