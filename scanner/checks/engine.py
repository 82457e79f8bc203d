"""The check registry and the evidence every check sees."""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from scanner.evidence.card import CardFacts
from scanner.evidence.config import ConfigMatch
from scanner.evidence.gguf import GGUFFacts
from scanner.evidence.licenses import Detection
from scanner.evidence.lineage import CardFetcher, Lineage, LineageInput, hub_base_cards, infer_lineage
from scanner.evidence.tokenizer import TokenMatch
from scanner.findings import Finding
from scanner.knowledge import KnowledgeBase, License, catalogue
from scanner.policy import Policy
from scanner.provenance.code import CodeMatch
from scanner.sources.interface import Snapshot


@dataclass
class WeightMatch:
    """A registered upstream the weights were compared with (see scanner.provenance.index)."""
    name: str  # the upstream's registered name (usually its Hub id)
    license: str | None
    verdict: Any  # scanner.provenance.compare.Verdict


@dataclass
class Context:
    snap: Snapshot
    kb: KnowledgeBase
    policy: Policy
    card: CardFacts
    detections: list[Detection]
    config_matches: list[ConfigMatch]
    token_matches: list[TokenMatch]
    special_tokens: dict[str, int]
    weight_matches: list[WeightMatch] = field(default_factory=list)
    code_matches: list[CodeMatch] = field(default_factory=list)  # shipped Python files copied from upstream code
    fetch_card: CardFetcher | None = None  # reads a declared base's card; None: from the Hub for hf: scans only
    gguf: GGUFFacts | None = None  # what the repo's GGUF header says about itself (GGUF repos only)

    def finding(self, rule: str, message: str, path: str | None = None, line: int | None = None,
                **evidence: Any) -> Finding:
        return Finding(rule, catalogue()[rule].severity, message, path=path, line=line, evidence=evidence)

    @functools.cached_property
    def lineage(self) -> Lineage:
        """Where this model comes from (scanner.evidence.lineage): the one answer every check reads.
        Computed on first use, after the weight verdicts are in."""
        adapter = self.snap.jsons.get("adapter_config.json")
        adapter_base = adapter.get("base_model_name_or_path") if isinstance(adapter, dict) else None
        return infer_lineage(LineageInput(
            name=self.snap.name, card=self.card, config_matches=self.config_matches, token_matches=self.token_matches,
            adapter_base=adapter_base if isinstance(adapter_base, str) else None,
            gguf_bases=self.gguf.base_models if self.gguf else [],
            weight_derived=[m.name for m in self.weight_matches if m.verdict.verdict == "derived"],
            fetch_card=self.fetch_card or (hub_base_cards() if self.snap.kind == "hf" else None)), self.kb)

    def own_license(self) -> License | None:
        """The licence the card declares (through license_name for `other`); None when unknown or a placeholder."""
        own = self.lineage.own_licenses
        return own[0] if own else None


Check = Callable[[Context], Iterable[Finding]]
REGISTRY: list[Check] = []


def check(fn: Check) -> Check:
    REGISTRY.append(fn)
    return fn


def run_checks(ctx: Context) -> list[Finding]:
    # importing the families registers their checks
    from scanner.checks import attribution, card, code, config, license, security, tokenizer, weights  # noqa: F401

    findings: list[Finding] = list(ctx.snap.problems)
    for fn in REGISTRY:
        findings.extend(fn(ctx))
    return findings
