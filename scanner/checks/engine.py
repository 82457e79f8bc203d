"""The check registry and the evidence every check sees.

A check is a generator in a module of scanner/checks/ decorated with `@check("family.rule", …)`: the ids it may
emit, each one in rules/catalogue.yaml (which owns ids and default severities). Modules are discovered, not listed.
"""

from __future__ import annotations

import functools
import importlib
import os
import pkgutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from scanner.evidence.card import CardFacts
from scanner.evidence.config import ConfigMatch
from scanner.evidence.datasets import DatasetFacts, DatasetFetcher, hub_dataset_cards, resolve_datasets
from scanner.evidence.gguf import GGUFFacts
from scanner.evidence.licenses import Detection
from scanner.evidence.lineage import CardFetcher, Lineage, LineageInput, hub_base_cards, infer_lineage
from scanner.evidence.publisher import HOW_TO_STATE, Publisher
from scanner.evidence.tokenizer import TokenMatch
from scanner.findings import Finding
from scanner.knowledge import KnowledgeBase, License, dataset_knowledge, finding, rule
from scanner.policy import Policy
from scanner.provenance.code import CodeMatch
from scanner.provenance.result import WeightMatch
from scanner.sources.interface import Snapshot

if TYPE_CHECKING:  # numpy: a scan without probe results (or an index) loads none of it
    from scanner.provenance.behaviour import BehaviourVerdict


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
    behaviour_verdicts: list[BehaviourVerdict] = field(default_factory=list)  # `probe` results given to the scan
    fetch_card: CardFetcher | None = None  # reads a declared base's card; None: from the Hub for hf: scans only
    gguf: GGUFFacts | None = None  # what the repo's GGUF header says about itself (GGUF repos only)
    publisher: Publisher = field(default_factory=Publisher)  # who publishes what is scanned (evidence/publisher.py)
    fetch_datasets: DatasetFetcher | None = None  # reads dataset cards; None: from the Hub when _on_the_hub()

    @functools.cached_property
    def datasets(self) -> list[DatasetFacts]:
        """The training data the card names, with its terms (scanner.evidence.datasets); their cards are read from
        the Hub (bounded, cached) for an hf: scan or a local folder given --repo-id, as declared bases' cards are."""
        fetch = self.fetch_datasets or (hub_dataset_cards() if self._on_the_hub() else None)
        return resolve_datasets(self.card, self.kb, dataset_knowledge(), fetch)

    def finding(
        self, rule: str, message: str, path: str | None = None, line: int | None = None, **evidence: Any
    ) -> Finding:
        return finding(rule, message, path=path, line=line, **evidence)

    @functools.cached_property
    def lineage(self) -> Lineage:
        """Where this model comes from (scanner.evidence.lineage): the one answer every check reads.
        Computed on first use, after the weight verdicts are in."""
        adapter = self.snap.jsons.get("adapter_config.json")
        adapter_base = adapter.get("base_model_name_or_path") if isinstance(adapter, dict) else None
        return infer_lineage(
            LineageInput(
                name=self.snap.name,
                publisher=self.publisher.owner,
                card=self.card,
                config_matches=self.config_matches,
                token_matches=self.token_matches,
                adapter_base=adapter_base if isinstance(adapter_base, str) else None,
                gguf_bases=self.gguf.base_models if self.gguf else [],
                weight_derived=[m.name for m in self.weight_matches if m.verdict.verdict == "derived"],
                behaviour_derived=[v.reference_id for v in self.behaviour_verdicts if v.verdict == "derived"],
                fetch_card=self.fetch_card or (hub_base_cards() if self._on_the_hub() else None),
            ),
            self.kb,
        )

    def _on_the_hub(self) -> bool:
        """An hf: scan, or a local folder said to be a Hub repo's content (--repo-id): declared bases' cards are
        then read from the Hub. Other local and GitHub scans stay offline."""
        return self.snap.kind == "hf" or self.snap.meta.get("repo_id_from") == "--repo-id"

    def unknown_publisher(self, lic: License) -> str:
        """One short clause for a licensee's duty whose licensor may be the one publishing: "" when the publisher
        is known (the duty was then decided) or the licence has no licensor that publishes models."""
        if self.publisher.known or not lic.publishers:
            return ""
        return f"; publisher unknown ({lic.licensor or 'the licensor'} itself would owe nothing; {HOW_TO_STATE})"

    def own_license(self) -> License | None:
        """The licence the card declares (through license_name for `other`); None when unknown or a placeholder."""
        own = self.lineage.own_licenses
        return own[0] if own else None


Check = Callable[[Context], Iterable[Finding]]


@dataclass(frozen=True)
class RegisteredCheck:
    fn: Check
    rules: frozenset[str]  # the rule ids it may emit

    @property
    def name(self) -> str:
        return f"{self.fn.__module__}.{self.fn.__qualname__}"


REGISTRY: list[RegisteredCheck] = []


class UndeclaredRuleError(RuntimeError):
    """A check emitted a rule id it does not declare (raised when ORIGINSCAN_STRICT_RULES=1, as in the tests)."""


def check(*rule_ids: str) -> Callable[[Check], Check]:
    """Register a check that may emit `rule_ids`; each must be in rules/catalogue.yaml (checked on import)."""
    if not rule_ids or not all(isinstance(r, str) for r in rule_ids):
        raise TypeError('@check needs the rule ids the check may emit: @check("family.rule", …)')
    for r in rule_ids:
        rule(r)  # UnknownRuleError names the missing id

    def register(fn: Check) -> Check:
        REGISTRY.append(RegisteredCheck(fn, frozenset(rule_ids)))
        return fn

    return register


def discover() -> tuple[RegisteredCheck, ...]:
    """Import every module of scanner/checks/ (each check registers itself): a new family is a new file."""
    import scanner.checks as package

    for module in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if module.name != "engine":
            importlib.import_module(f"{package.__name__}.{module.name}")
    return tuple(REGISTRY)


def run_checks(ctx: Context) -> list[Finding]:
    strict = os.environ.get("ORIGINSCAN_STRICT_RULES") == "1"
    findings: list[Finding] = list(ctx.snap.problems)
    for c in discover():
        for f in c.fn(ctx):
            if f.rule in c.rules:
                findings.append(f)
            elif strict:
                raise UndeclaredRuleError(f"{c.name} emitted {f.rule!r}, which its @check does not declare")
            else:
                findings.append(
                    finding(
                        "source.internal_error",
                        f"originscan's check {c.name} emitted {f.rule!r}, "
                        "which it does not declare; that finding was dropped",
                        check=c.name,
                        emitted=f.rule,
                    )
                )
    return findings
