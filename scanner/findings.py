"""The finding: what every check produces and every report renders (the JSON contract in DESIGN.md)."""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # only for annotations: these modules import this one
    from scanner.checks.engine import WeightMatch
    from scanner.evidence.lineage import Lineage
    from scanner.provenance.code import CodeMatch
    from scanner.sources.interface import RepoFile


class Severity(IntEnum):
    info = 0
    low = 1
    medium = 2
    high = 3
    critical = 4

    @classmethod
    def parse(cls, text: str) -> "Severity":
        try:
            return cls[text.strip().lower()]
        except KeyError:
            raise ValueError(f"unknown severity {text!r} (expected one of: {', '.join(s.name for s in cls)})") from None


FAMILIES = ("license", "card", "attribution", "config", "tokenizer", "weights", "code", "security", "source")


@dataclass
class Finding:
    rule: str
    severity: Severity
    message: str
    path: str | None = None
    line: int | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    suppressed: str | None = None  # the policy's reason when a suppression applies
    status: str | None = None  # "new" / "existing" in pull-request mode

    @property
    def family(self) -> str:
        return self.rule.split(".", 1)[0]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "rule": self.rule,
            "severity": self.severity.name,
            "message": self.message,
            "path": self.path,
            "evidence": self.evidence,
        }
        if self.line is not None:
            out["line"] = self.line
        if self.suppressed is not None:
            out["suppressed"] = self.suppressed
        if self.status is not None:
            out["status"] = self.status
        return out


@dataclass
class TargetFacts:
    """What a scan learnt about the model beyond its findings, for the reports that show it (HTML lineage graph and
    per-layer evidence, CycloneDX and SPDX AI-BOMs). Not part of the JSON contract; absent for merged shard reports."""

    name: str  # owner/name, or the folder name
    kind: str  # "local" | "hf" | "github"
    card: dict[str, Any]  # the card's YAML metadata as parsed
    lineage: Lineage | None
    weight_files: list[RepoFile] = field(default_factory=list)
    weight_matches: list[WeightMatch] = field(default_factory=list)
    code_matches: list[CodeMatch] = field(default_factory=list)


@dataclass
class TargetReport:
    """All findings for one scanned target."""

    target: str
    findings: list[Finding] = field(default_factory=list)
    revision: str | None = None
    error: str | None = None  # set when the target could not be read at all
    facts: TargetFacts | None = field(default=None, repr=False, compare=False)

    def active(self) -> list[Finding]:
        return [f for f in self.findings if f.suppressed is None]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"target": self.target, "findings": [f.to_json() for f in self.findings]}
        if self.revision:
            out["revision"] = self.revision
        if self.error:
            out["error"] = self.error
        return out
