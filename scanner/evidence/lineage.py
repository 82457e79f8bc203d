"""Where a model comes from: one answer, drawn from every piece of evidence, that every check reads.

    lineage = infer_lineage(LineageInput(...), kb)
    lineage.candidates      upstreams this model may derive from, each with its evidence and a confidence
    lineage.undeclared()    evidenced upstreams the card does not account for (card / tokenizer findings)
    lineage.explains(id)    a registered upstream's name is accounted for by the declaration (weights findings)
    lineage.obligations()   the licences whose terms bind this repo, and why (licence / attribution findings)

Evidence kinds (`Evidence.kind`), strongest first:
    weights     the weight index calls the weights derived from the upstream
    behaviour   `originscan probe` found the model behaves like a derivative of it (scan --probe-results)
    declared    the card's base_model names it (its id, an alias, a mirror, a vendor variant or a re-upload name)
    adapter     adapter_config.json's base_model_name_or_path names it
    gguf        a GGUF file's own metadata names it (general.base_model.N.repo_url, written by llama.cpp's converter)
    name        the repo itself is a mirror or a quantized re-upload of it (-GPTQ, -GGUF, a re-hosting org …)
    base-card   a declared base the knowledge base does not know declares it on its own card (followed a few hops)
    config      config.json equals its recorded architecture
    tokenizer   its special tokens sit here at the same ids
    config-vocab  config.json equals it except a larger vocab_size (a vocabulary extension)
    recorded-base  a release the lineage holds is itself built on it, as the knowledge base records (the
                vendor's own statement, e.g. DeepSeek-R1-Distill-Llama-8B on Llama 3.1 8B)
    prose       the card's prose names it ("fine-tuned from X", "built on X", a model-index base_model), only when
                the metadata declares no base (scanner.evidence.prose)

To add a kind of evidence (GGUF metadata, another weight test): compute it where the snapshot is read, add one
field to `LineageInput`, and one block in `infer_lineage` that calls `_add(...)` with a new kind and its strength
in `STRENGTH`. Checks need no change: they read candidates, `undeclared()`, `explains()` and `obligations()`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from scanner.evidence.card import CardFacts
from scanner.evidence.config import ConfigMatch
from scanner.evidence.prose import ParentMention, parent_mentions
from scanner.evidence.tokenizer import TokenMatch
from scanner.knowledge import KnowledgeBase, License, NameMatch, Upstream, name_match

MAX_BASE_HOPS = 3  # how far up a chain of unknown fine-tunes the base cards are followed

# A base card fetcher: Hub id -> that repo's card facts, or None when it cannot be read.
CardFetcher = Callable[[str], "CardFacts | None"]


class Confidence(IntEnum):
    low = 1
    medium = 2
    high = 3


STRENGTH = {
    "weights": Confidence.high,
    "behaviour": Confidence.high,  # a calibrated test with a false-positive rate, as the weight verdict
    "declared": Confidence.high,
    "adapter": Confidence.high,
    "gguf": Confidence.high,
    "name": Confidence.medium,
    "base-card": Confidence.medium,
    "recorded-base": Confidence.medium,
    "config": Confidence.medium,
    "tokenizer": Confidence.medium,
    "config-vocab": Confidence.low,
    "prose": Confidence.low,
}
# Kinds that are the repo's own account of its base: its metadata, or its vendor's as the knowledge base records it.
# Prose is not: a card whose prose alone names its base still owes the base its obligations, and still lacks the
# base_model that tools read.
ACCOUNTED = ("declared", "adapter", "name", "base-card", "recorded-base")


@dataclass(frozen=True)
class Evidence:
    kind: str  # one of STRENGTH's keys
    detail: str  # one line for people ("base_model: meta-llama/Llama-3.1-8B")
    data: dict[str, Any] = field(default_factory=dict, compare=False)  # e.g. tokens {text: id}, config keys


@dataclass
class Candidate:
    upstream: Upstream
    license: License | None  # the upstream's licence, None when the knowledge base does not know it
    evidence: list[Evidence] = field(default_factory=list)
    vendor: bool = False  # the scanned repo is a release of this upstream's own vendor (or the upstream itself)
    contradicted: bool = False  # config evidence that contradicts a resolved declared base (a mismatch)
    alternatives: tuple[str, ...] = ()  # other upstreams the same evidence fits equally well

    @property
    def kinds(self) -> list[str]:
        return [e.kind for e in self.evidence]

    @property
    def accounted(self) -> bool:
        """The repo's own metadata accounts for this upstream (declared, adapter config, its name, base cards)."""
        return self.vendor or any(k in ACCOUNTED for k in self.kinds)

    @property
    def confidence(self) -> Confidence:
        best = max((STRENGTH[k] for k in self.kinds), default=Confidence.low)
        independent = {"config" if k == "config-vocab" else k for k in self.kinds}
        return Confidence(min(Confidence.high, best + 1)) if len(independent) >= 2 else best

    @property
    def known_from(self) -> str:
        return ", ".join(dict.fromkeys(self.kinds))

    def evidence_of(self, kind: str) -> Evidence | None:
        return next((e for e in self.evidence if e.kind == kind), None)


@dataclass(frozen=True)
class Obligation:
    """A licence whose terms bind this repo, and where it comes from."""

    license: License
    upstream: Upstream | None  # None: the repo's own declared licence, with no identified base
    known_from: str
    alternatives: tuple[str, ...] = ()  # the lineage is one of these upstreams (ambiguous evidence)
    quote: str | None = None  # the card's sentence that names the base, when only its prose does (low confidence)

    @property
    def source(self) -> str:
        return self.upstream.id if self.upstream else f"the declared licence {self.license.id}"

    def evidence(self) -> dict[str, Any]:
        """The fields every obligation finding carries."""
        out: dict[str, Any] = dict(
            base=self.upstream.id if self.upstream else None,
            base_license=self.license.id,
            known_from=self.known_from,
            alternatives=list(self.alternatives),
        )
        if self.quote is not None:
            out.update(confidence=Confidence.low.name, quote=self.quote)
        return out

    def because(self) -> str:
        """Why this licence binds the repo, when it is not simply a declared base's: for finding messages."""
        if self.upstream is None:
            return " (the licence this repo declares)"
        if self.alternatives:
            return f" (if the base is {self.upstream.id}; the evidence also fits {', '.join(self.alternatives)})"
        if self.quote is not None:
            return f" (base {self.upstream.id} named in the card's prose, low confidence: \u201c{self.quote}\u201d)"
        if self.known_from.startswith("declared"):
            return ""
        return f" (lineage {self.upstream.id}, from {self.known_from})"


@dataclass
class Lineage:
    candidates: list[Candidate]
    declared: list[str]  # base_model values as written on the card (and adapter_config.json's base)
    unknown_declared: list[str]  # declared bases neither the knowledge base nor their cards resolve
    own_licenses: list[License]  # what the card declares, resolved (several for an SPDX expression)
    self_upstream: Upstream | None  # the repo is this upstream, under one of its ids or a vendor variant
    kb: KnowledgeBase = field(repr=False)
    publisher: str | None = None  # who publishes it: a licence's own licensor owes that licence nothing

    def candidate(self, upstream_id: str) -> Candidate | None:
        return next((c for c in self.candidates if c.upstream.id.lower() == upstream_id.lower()), None)

    def undeclared(self) -> list[Candidate]:
        """Evidenced upstreams the repo does not account for (nor is its vendor's own release).

        With a declared base the knowledge base cannot resolve, config evidence is presumed to be that base's
        lineage (its obligations still apply); special tokens of another family are still unaccounted for.
        """
        config_families = {
            c.upstream.family for c in self.candidates if c.evidence_of("config") or c.evidence_of("config-vocab")
        }
        out = []
        for c in self.candidates:
            if c.accounted or c.contradicted:
                continue
            if self.unknown_declared and (c.evidence_of("tokenizer") is None or c.upstream.family in config_families):
                continue
            out.append(c)
        return out

    def explains(self, name: str) -> bool:
        """A registered upstream (by name) is the declared base, a variant of it, or this repo's own vendor."""
        if any(name.strip().lower() == d.strip().lower() for d in self.declared):
            return True  # declared by the very name it was registered under, known to the knowledge base or not
        hit = name_match(self.kb, name)
        if hit is None:
            return False
        families = {c.upstream.family for c in self.candidates if c.accounted and c.upstream.family}
        c = self.candidate(hit.upstream.id)
        return (c is not None and c.accounted) or (bool(hit.upstream.family) and hit.upstream.family in families)

    def obligations(self) -> list[Obligation]:
        """Distinct licences binding this repo: its lineage's (vendor releases excepted, mismatches left to the
        mismatch finding) and its own declared licence when that is a model vendor's licence."""
        out: dict[str, Obligation] = {}
        for c in self.candidates:
            if c.vendor or c.contradicted or c.license is None or c.license.is_placeholder:
                continue
            prose = c.evidence_of("prose")
            quote = prose.data.get("quote") if prose is not None and c.confidence == Confidence.low else None
            out.setdefault(c.license.id, Obligation(c.license, c.upstream, c.known_from, c.alternatives, quote))
        vendor_licenses = {c.license.id for c in self.candidates if c.vendor and c.license}
        if self.self_upstream is not None:
            vendor_licenses.add(self.self_upstream.license)
        for lic in self.own_licenses:
            if lic.published_by(self.publisher):
                continue  # the licensor's own release under its own licence
            if lic.id not in out and lic.id not in vendor_licenses and _is_vendor_license(lic, self.kb):
                out[lic.id] = Obligation(lic, None, "declared licence")
        return list(out.values())


@dataclass
class LineageInput:
    """Everything `infer_lineage` reads, drawn from one snapshot."""

    name: str  # the repo's id (owner/name) or, for a local folder, the folder name
    card: CardFacts
    publisher: str | None = None  # who publishes it (evidence/publisher.py); None: unknown
    config_matches: list[ConfigMatch] = field(default_factory=list)
    token_matches: list[TokenMatch] = field(default_factory=list)
    adapter_base: str | None = None  # adapter_config.json base_model_name_or_path
    gguf_bases: list[str] = field(default_factory=list)  # Hub ids a GGUF header names as its base models
    weight_derived: list[str] = field(default_factory=list)  # registered upstream names the weights derive from
    behaviour_derived: list[str] = field(default_factory=list)  # references a behaviour verdict calls it derived from
    prose: list[ParentMention] | None = None  # parents the card's prose names; None: read them from the card
    fetch_card: CardFetcher | None = None  # follows unknown declared bases' own cards; None = offline


# -- the one place lineage is decided ------------------------------------------------------------------------------
def infer_lineage(src: LineageInput, kb: KnowledgeBase) -> Lineage:
    cands: dict[str, Candidate] = {}

    def _add(up: Upstream, ev: Evidence) -> Candidate:
        c = cands.get(up.id)
        if c is None:
            c = cands[up.id] = Candidate(up, kb.license(up.license))
        if ev not in c.evidence:
            c.evidence.append(ev)
        return c

    own = _own_licenses(src.card, kb)
    self_up, name_hit = _identity(src, kb)
    if name_hit is not None:
        _add(name_hit.upstream, Evidence("name", f"{src.name} is a {name_hit.how} of {name_hit.upstream.id}"))

    declared = list(src.card.base_models)
    unknown: list[str] = []
    for b in declared:
        hit = name_match(kb, b)
        if hit is not None:
            how = "" if hit.how in ("id", "alias") else f" ({hit.how} of {hit.upstream.id})"
            _add(hit.upstream, Evidence("declared", f"base_model {b}{how}"))
            continue
        chain = _follow_base_cards(b, src.fetch_card, kb)
        if chain is not None:
            up, path = chain
            _add(
                up,
                Evidence(
                    "base-card",
                    f"base_model {b} is built on {up.id} ({' -> '.join(path)}, from their model cards)",
                    {"chain": list(path)},
                ),
            )
        else:
            unknown.append(b)
    if src.adapter_base and src.adapter_base.strip():
        hit = name_match(kb, src.adapter_base)
        if hit is not None:
            _add(hit.upstream, Evidence("adapter", f"adapter_config.json base_model_name_or_path {src.adapter_base}"))
            if src.adapter_base not in declared:  # an adapter's config is its own declaration of its base
                declared.append(src.adapter_base)
        elif src.adapter_base not in declared and "/" in src.adapter_base:
            declared.append(src.adapter_base)
            unknown.append(src.adapter_base)

    # a GGUF's metadata: its base binds the repo (obligations) but is not the card's own account of it
    for b in src.gguf_bases:
        if (hit := name_match(kb, b)) is not None:
            _add(hit.upstream, Evidence("gguf", f"GGUF metadata general.base_model {b}"))

    # the card's prose, when its metadata names no base (and the repo is not itself an upstream)
    if not declared and not src.gguf_bases and self_up is None:
        mentions = src.prose if src.prose is not None else parent_mentions(src.card)
        for mention in mentions:
            hit = next((h for r in mention.references if (h := _named_in_prose(kb, r)) is not None), None)
            if hit is not None:
                _add(
                    hit.upstream,
                    Evidence("prose", f"the card says \u201c{mention.quote}\u201d", {"quote": mention.quote}),
                )

    # what the releases found so far were themselves built on, as their vendors say (a few hops)
    frontier = [c.upstream for c in cands.values()] + ([self_up] if self_up is not None else [])
    for _ in range(MAX_BASE_HOPS):
        found_bases = []
        for up in frontier:
            for b in up.base_models:
                hit = name_match(kb, b)
                if hit is not None and hit.upstream.id != up.id and hit.upstream.id not in cands:
                    _add(hit.upstream, Evidence("recorded-base", f"{up.id} is built on {b} (its vendor; {up.source})"))
                    found_bases.append(hit.upstream)
        frontier = found_bases

    accounted_families = {c.upstream.family for c in cands.values() if c.upstream.family}
    if self_up is not None and self_up.family:
        accounted_families.add(self_up.family)
    org = (src.publisher or (src.name.split("/", 1)[0] if "/" in src.name else "")).lower() or None
    declared_ups = [c.upstream for c in cands.values()]

    # config.json: one or several upstreams the architecture fits
    fits = [m for m in src.config_matches]
    in_family = [m for m in fits if m.upstream.family in accounted_families or m.upstream.id in cands]
    if in_family:  # the declaration picks among candidates the config alone cannot tell apart
        fits = [m for m in in_family if m.upstream.id in cands] or in_family
    names = tuple(m.upstream.id for m in fits)
    for m in fits:
        kind = "config-vocab" if m.vocab_extended else "config"
        detail = (
            f"config.json equals {m.upstream.id} on {len(m.keys) + len(m.also_equal)} recorded keys"
            + (" except a larger vocab_size (vocabulary extended)" if m.vocab_extended else "")
            + (f"; differs on {', '.join(m.differing)}" if m.differing else "")
        )
        c = _add(m.upstream, Evidence(kind, detail, {"keys": m.keys + m.also_equal}))
        c.alternatives = tuple(n for n in names if n != m.upstream.id)
        if declared_ups and not in_family and not c.accounted:
            c.contradicted = _contradicts(m, declared_ups)

    # special tokens: shared family tokens are explained by what is accounted for; one best upstream otherwise
    explained: dict[str, int] = {}
    for up in kb.upstreams.values():
        if up.family in accounted_families or up.id in cands and cands[up.id].accounted:
            explained.update(up.special_tokens)
    config_families = {m.upstream.family for m in fits if m.upstream.family}
    found = []
    for t in src.token_matches:
        if org and (org in _family_orgs(kb, t.upstream) or _licensor_of(kb, t.upstream, org)):
            continue  # the vendor's own tokenizer
        rest = {tok: i for tok, i in t.tokens.items() if explained.get(tok) != i}
        if len(rest) >= 2:
            found.append((t, rest))
        elif t.upstream.id in cands:
            cands[t.upstream.id].evidence.append(
                Evidence(
                    "tokenizer", f"{len(t.tokens)} special tokens of {t.upstream.id} at the same ids", {"tokens": {}}
                )
            )
    if found:
        top = max(len(rest) for _, rest in found)
        tied = [(t, rest) for t, rest in found if len(rest) == top]
        tied.sort(key=lambda x: (x[0].upstream.id not in cands, x[0].upstream.family not in config_families))
        t, rest = tied[0]
        _add(
            t.upstream,
            Evidence("tokenizer", f"{len(rest)} special tokens of {t.upstream.id} at the same ids", {"tokens": rest}),
        )

    for name in src.weight_derived:
        if (hit := name_match(kb, name)) is not None:
            _add(hit.upstream, Evidence("weights", f"the weights derive from {name}"))
    for name in src.behaviour_derived:
        if (hit := name_match(kb, name)) is not None:
            _add(hit.upstream, Evidence("behaviour", f"the model behaves like a derivative of {name} (probe)"))

    # vendor releases: the upstream's own organisation (or the upstream itself, for a local checkout)
    self_family = self_up.family if self_up else None
    for c in cands.values():
        if (org and (org in _family_orgs(kb, c.upstream) or _licensor_of(kb, c.upstream, org))) or (
            self_up is not None and (c.upstream.id == self_up.id or (self_family and c.upstream.family == self_family))
        ):
            c.vendor = True
    ordered = sorted(cands.values(), key=lambda c: (-c.confidence, c.upstream.id))
    return Lineage(ordered, declared, unknown, own, self_up, kb, org)


# -- helpers -------------------------------------------------------------------------------------------------------
def _family_orgs(kb: KnowledgeBase, up: Upstream) -> frozenset[str]:
    """The vendor's organisations: those of every id and alias of the upstream (and of its family's releases)."""
    orgs = set(up.orgs)
    if up.family:
        for other in kb.upstreams.values():
            if other.family == up.family:
                orgs |= other.orgs
    return frozenset(orgs)


def _named_in_prose(kb: KnowledgeBase, reference: str) -> NameMatch | None:
    """The upstream a Hub id or a model name written in prose ("llama-3.1-8b-instruct") names."""
    return name_match(kb, reference if "/" in reference else f"prose/{reference}")


def _licensor_of(kb: KnowledgeBase, up: Upstream, org: str) -> bool:
    """`org` publishes for the licensor of the upstream's licence (Meta for every Llama, Google for Gemma …):
    a release of the licensor's is never its own undeclared derivative."""
    lic = kb.license(up.license)
    return lic is not None and lic.published_by(org)


def _tails(src: LineageInput) -> set[str]:
    names = {src.name.rsplit("/", 1)[-1].lower(), (src.card.model_name or "").lower()}
    for line in src.card.body.splitlines():
        if line.startswith("# "):
            names.add(line[2:].strip().lower())
            break
    return {n for n in names if n}


def _identity(src: LineageInput, kb: KnowledgeBase) -> tuple[Upstream | None, NameMatch | None]:
    """(the upstream this repo *is*, the upstream it re-hosts): by Hub id, or for a local folder by its name."""
    if "/" in src.name:
        hit = name_match(kb, src.name)
        if hit is None:
            return None, None
        if hit.how in ("id", "alias"):
            return hit.upstream, None
        org = src.name.split("/", 1)[0].lower()
        if org in _family_orgs(kb, hit.upstream):  # the vendor's own variant (-Instruct, -GPTQ-Int4 …)
            return hit.upstream, None
        return None, hit
    tails = _tails(src)
    for up in kb.upstreams.values():
        if any(i.rsplit("/", 1)[-1].lower() in tails for i in up.ids):
            owner = (src.publisher or "").lower()
            if owner and owner not in _family_orgs(kb, up) and not _licensor_of(kb, up, owner):
                return None, NameMatch(up, "copy")  # someone else's folder holding the upstream: a re-host
            return up, None
    return None, None


def _follow_base_cards(base: str, fetch: CardFetcher | None, kb: KnowledgeBase) -> tuple[Upstream, list[str]] | None:
    """Follow an unknown base's own card (base_model of base_model …) until a known upstream, a few hops at most."""
    if fetch is None or not re.match(r"^[\w.-]+/[\w.-]+$", base):
        return None
    path, frontier, seen = [base], [base], {base.lower()}
    for _ in range(MAX_BASE_HOPS):
        nxt = []
        for repo in frontier:
            facts = fetch(repo)
            for b in facts.base_models if facts else []:
                hit = name_match(kb, b)
                if hit is not None:
                    return hit.upstream, path + [b]
                if b.lower() not in seen:
                    seen.add(b.lower())
                    nxt.append(b)
        if not nxt:
            return None
        path.append(nxt[0])
        frontier = nxt
    return None


def _contradicts(m: ConfigMatch, declared: list[Upstream]) -> bool:
    """The config fits another upstream and contradicts every declared base on a signature key both record."""
    return all(any(k in d.config and d.config[k] != m.upstream.config.get(k) for k in m.keys) for d in declared)


def _own_licenses(card: CardFacts, kb: KnowledgeBase) -> list[License]:
    """The licences the card declares: `license_name` for `other`; an SPDX expression gives several."""
    declared = card.license
    if declared and declared.lower() == "other":
        declared = card.license_name
    return [lic for lic in kb.licenses_named(declared) if not lic.is_placeholder]


def _is_vendor_license(lic: License, kb: KnowledgeBase) -> bool:
    """A model vendor's licence (Llama, Gemma, Qwen …): it exists to bind derivatives, so declaring it means
    taking on its terms. General licences (Apache, MIT, CC) allow any outbound licence and bind only the
    redistribution of someone else's work."""
    return (
        lic.outbound != "any"
        and lic.kind in ("community", "research", "rail", "noncommercial")
        and (any(up.license == lic.id for up in kb.upstreams.values()))
    )


# -- base cards from the Hub ---------------------------------------------------------------------------------------
BASE_CARD_TTL_S = 24 * 3600  # a base's card rarely changes; a day-old answer is good enough
_card_memo: dict[str, CardFacts | None] = {}


def hub_base_cards() -> CardFetcher:
    """A fetcher for declared bases' cards on the Hub (HF_ENDPOINT, HF_TOKEN), cached in memory and on disk.

    Used for hf: scans only: a local or GitHub scan stays offline."""
    import os
    import time

    from scanner.sources.cache import default_cache
    from scanner.sources.hf import read_text_file
    from scanner.sources.interface import Snapshot

    endpoint = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"

    def fetch(repo_id: str) -> CardFacts | None:
        key = f"{endpoint}|{repo_id.lower()}"
        if key in _card_memo:
            return _card_memo[key]
        cache = default_cache()
        record = cache.get_json(f"base-card|{key}") if cache else None
        if isinstance(record, dict) and time.time() - record.get("fetched", 0) < BASE_CARD_TTL_S:
            text = record.get("text")
        else:
            text = read_text_file(repo_id, "README.md")
            if cache is not None:
                cache.put_json(f"base-card|{key}", {"fetched": time.time(), "text": text})
        facts = None
        if isinstance(text, str):
            from scanner.evidence.card import read_card

            facts = read_card(Snapshot(target=f"hf:{repo_id}", kind="hf", name=repo_id, texts={"README.md": text}))
        _card_memo[key] = facts
        return facts

    return fetch
