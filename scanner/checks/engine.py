"""The check registry and the evidence every check sees."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from scanner.evidence.card import CardFacts
from scanner.evidence.config import ConfigMatch
from scanner.evidence.licenses import Detection
from scanner.evidence.tokenizer import TokenMatch
from scanner.findings import Finding
from scanner.knowledge import KnowledgeBase, License, Upstream, catalogue, resolve_upstream
from scanner.policy import Policy
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

    def finding(self, rule: str, message: str, path: str | None = None, line: int | None = None,
                **evidence: Any) -> Finding:
        return Finding(rule, catalogue()[rule].severity, message, path=path, line=line, evidence=evidence)

    @property
    def declared(self) -> list[str]:
        return self.card.base_models

    def declared_upstreams(self) -> list[Upstream]:
        return [u for u in (resolve_upstream(self.kb, b) for b in self.declared) if u]

    def is_declared(self, upstream_id: str) -> bool:
        """True when a declared base is this upstream, a variant of it, or is unknown to us (benefit of doubt)."""
        if not self.declared:
            return False
        for b in self.declared:
            up = resolve_upstream(self.kb, b)
            if up is None or up.id.lower() == upstream_id.lower():
                return True
        return False

    def is_self(self, upstream_id: str) -> bool:
        """The repo being scanned is that upstream (a checkout or download of it): it does not derive from itself."""
        tail = upstream_id.rsplit("/", 1)[-1].lower()
        names = {self.snap.name.rsplit("/", 1)[-1].lower(), (self.card.model_name or "").lower()}
        for line in self.card.body.splitlines():
            if line.startswith("# "):
                names.add(line[2:].strip().lower())
                break
        return tail in names or self.snap.name.lower() == upstream_id.lower()

    def unexplained_tokens(self) -> list[tuple[TokenMatch, dict[str, int]]]:
        """Token matches the declared bases do not explain, keeping only the best-matching upstream.

        Families share tokens (every Llama 3.x has <|begin_of_text|> at 128000): the upstream matching the most
        tokens wins, ties go to the one whose config also matches, then to the first listed.
        """
        explained: dict[str, int] = {}
        for up in self.declared_upstreams():
            explained.update(up.special_tokens)
        found = []
        for m in self.token_matches:
            if self.is_declared(m.upstream.id) or self.is_self(m.upstream.id):
                continue
            rest = {t: i for t, i in m.tokens.items() if explained.get(t) != i}
            if len(rest) >= 2:
                found.append((m, rest))
        if not found:
            return []
        top = max(len(rest) for _, rest in found)
        tied = [(m, rest) for m, rest in found if len(rest) == top]
        by_config = {c.upstream.id for c in self.config_matches}
        tied.sort(key=lambda x: x[0].upstream.id not in by_config)
        return tied[:1]

    def lineage(self) -> list[tuple[Upstream, str]]:
        """Upstreams this model derives from and how we know: declared, config, tokenizer."""
        seen: dict[str, tuple[Upstream, str]] = {}
        for up in self.declared_upstreams():
            seen.setdefault(up.id, (up, "declared"))
        for m, _ in self.unexplained_tokens():
            seen.setdefault(m.upstream.id, (m.upstream, "tokenizer"))
        if not self.declared:
            for m in self.config_matches[:1]:
                if not self.is_self(m.upstream.id):
                    seen.setdefault(m.upstream.id, (m.upstream, "config"))
        return list(seen.values())

    def own_license(self) -> License | None:
        card_id = self.card.license
        if card_id and card_id.lower() == "other" and self.card.license_name:
            return self.kb.license(self.card.license_name)
        return self.kb.license(card_id) if card_id else None


Check = Callable[[Context], Iterable[Finding]]
REGISTRY: list[Check] = []


def check(fn: Check) -> Check:
    REGISTRY.append(fn)
    return fn


def run_checks(ctx: Context) -> list[Finding]:
    # importing the families registers their checks
    from scanner.checks import attribution, card, config, license, security, tokenizer, weights  # noqa: F401

    findings: list[Finding] = list(ctx.snap.problems)
    for fn in REGISTRY:
        findings.extend(fn(ctx))
    return findings
