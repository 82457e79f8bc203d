"""How a scan ran, said at the top of the report a compliance lead signs off: when, with which originscan, knowledge
base, fingerprint index and policy, and whether the findings pass that policy's `fail_on`.

Paths are shown relative to the working folder, or as a file name when outside it: a report never carries the
scanner's file system (see scanner/report/paths.py).
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from scanner.findings import Severity
from scanner.report.paths import shown_path
from scanner.results import TargetReport

if TYPE_CHECKING:
    from scanner.policy import Policy
    from scanner.provenance.index import Index


@dataclass(frozen=True)
class ScanRun:
    started: datetime  # UTC
    version: str  # originscan's
    knowledge: str  # the knowledge base: a digest of rules/*.yaml and its size
    index: str  # the fingerprint index: file name and registered models, or "none"
    policy: str  # the policy file, or "defaults"
    fail_on: Severity | None  # None: the scan never fails

    @property
    def when(self) -> str:
        return self.started.strftime("%Y-%m-%d %H:%M UTC")

    @property
    def fail_on_text(self) -> str:
        return self.fail_on.name if self.fail_on is not None else "never"

    def outcome(self, reports: list[TargetReport]) -> tuple[bool, str]:
        """(passed, one line): the rule `originscan scan` exits by, against this run's `fail_on`."""
        if self.fail_on is None:
            return True, "PASS: --fail-on never (no finding fails this scan)"
        failing = [f for r in reports for f in r.active() if f.severity >= self.fail_on]
        if not failing:
            return True, f"PASS: no active finding at or above {self.fail_on.name} (--fail-on {self.fail_on.name})"
        n = len(failing)
        targets = len({id(r) for r in reports for f in r.active() if f.severity >= self.fail_on})
        return False, (
            f"FAIL: {n} active finding{'' if n == 1 else 's'} at or above {self.fail_on.name} in {targets} "
            f"target{'' if targets == 1 else 's'} (--fail-on {self.fail_on.name})"
        )


@functools.cache
def knowledge_digest() -> str:
    """The knowledge base's identity: the first 12 hex digits of a SHA-256 over rules/*.yaml, and its size."""
    from scanner.knowledge import data_dir, knowledge_base

    digest = hashlib.sha256()
    for path in sorted(data_dir("rules").rglob("*.yaml")):
        digest.update(path.relative_to(data_dir("rules")).as_posix().encode() + b"\0" + path.read_bytes())
    kb = knowledge_base()
    return f"rules {digest.hexdigest()[:12]} ({len(kb.licenses)} licences, {len(kb.upstreams)} upstreams)"


def index_text(index: Index | str | None) -> str:
    """The index's file (as shown_path writes it) and size; a string says what stood in for one."""
    if index is None or isinstance(index, str):
        return index or "none"
    n = len(index.candidates())
    return f"{shown_path(index.path)} ({n} registered model{'' if n == 1 else 's'})"


def scan_run(version: str, policy: Policy, index: Index | str | None, *, started: datetime | None = None) -> ScanRun:
    return ScanRun(
        started or datetime.now(UTC),
        version,
        knowledge_digest(),
        index_text(index),
        shown_path(policy.source) if policy.source else "defaults (no policy file)",
        policy.fail_on,
    )


__all__ = ["ScanRun", "index_text", "knowledge_digest", "scan_run"]
