"""What a scan of one target produced: its findings (scanner/findings.py) and the facts the reports show beside
them. Above checks/ and below report/: the pipeline fills it, every report format reads it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from scanner.findings import Finding

if TYPE_CHECKING:  # annotations only (all of them lower layers): a report that shows no facts loads none of them
    from scanner.evidence.datasets import DatasetFacts
    from scanner.evidence.lineage import Lineage
    from scanner.evidence.publisher import Publisher
    from scanner.provenance.behaviour import BehaviourVerdict
    from scanner.provenance.code import CodeMatch
    from scanner.provenance.result import WeightMatch
    from scanner.sources.interface import RepoFile


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
    behaviour_verdicts: list[BehaviourVerdict] = field(default_factory=list)  # `probe` results given to the scan
    config: dict[str, Any] = field(default_factory=dict)  # config.json as parsed (architecture for the model cards)
    card_body: str = ""  # the card's Markdown below its metadata (intended use, limitations)
    released: str | None = None  # ISO 8601 UTC: when the scanned revision was published (Hub) or last changed (folder)
    files: list[RepoFile] = field(default_factory=list)  # every file listed (the subjects of `scan --attest`)
    datasets: list[DatasetFacts] = field(default_factory=list)  # training data the card names, with its terms
    publisher: Publisher | None = None  # who publishes it, and where that was learned (evidence/publisher.py)


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
