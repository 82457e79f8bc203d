"""Training data as an upstream: which datasets a model card names, and what their own cards and the knowledge base
say about them (licence, the licences their sources impose, the models that generated them).

Evidence comes from three places, each recorded with where it was found:
- the model card: the `datasets:` metadata, `huggingface.co/datasets/OWNER/NAME` links and known dataset ids in
  its prose;
- the dataset cards on the Hub (hf: scans only): `huggingface_hub`'s dataset info (the card's metadata: licence,
  `license_name`/`license_link`, `source_datasets`) and the card's prose ("generated with Llama-3.1-70B-Instruct"),
  followed through `source_datasets` and dataset links a few hops, cached on disk;
- rules/datasets/*.yaml: cited facts for the most used datasets.
A dataset none of these describes is *unknown*: never presumed permissive.
"""

from __future__ import annotations

import itertools
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from scanner.evidence.card import CardFacts, load_yaml, split_front_matter
from scanner.knowledge import DATASET_LICENSE_NONE, DatasetKnowledge, KnowledgeBase, License, name_match

MAX_DATASETS = 32  # datasets looked at per model (cards that list hundreds name benchmark suites, not training data)
MAX_HOPS = 2  # how far source datasets of source datasets are followed
MAX_WHERE = 5  # places recorded per dataset (a card that repeats a link 50 000 times says nothing more)
MAX_CUE_SENTENCES = 2000  # sentences with a generation cue read per text (bounds hostile prose)
CARD_TTL_S = 24 * 3600  # a dataset card rarely changes: a day-old answer is reused without asking the Hub
_ID = r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*"
# A link to a dataset repo; one to a file in it (.../resolve/…, .../blob/…) is a hosted asset (a banner image, eval
# details), not training data.
_LINK = re.compile(r"huggingface\.co/datasets/(" + _ID + r")(?![\w.-])(?!/(?:resolve|blob|raw)/)")
_BARE_ID = re.compile(r"(?<![\w./-])(" + _ID + r")(?![\w/-])")
# A sentence that says data was made by a model (prose that merely compares with GPT-4 does not count).
_GENERATION_CUE = re.compile(
    r"generat|synthe|distill|produced (?:by|with|using)|created (?:by|with|using)|responses? (?:from|by|of)"
    r"|completions? (?:from|by|of)|answers? (?:from|by|of)|outputs? (?:from|by|of)|annotated (?:by|with|using)"
    r"|written by|rewritten (?:by|with)|labell?ed (?:by|with|using)|collected from|conversations? with",
    re.I,
)
_MODEL_TOKEN = re.compile(r"(?<![\w.-])((?:[A-Za-z0-9][\w.-]*/)?[A-Za-z][\w.-]*\d[\w.-]*)")


@dataclass(frozen=True)
class Where:
    """Where a dataset or a fact about it was found."""

    place: str  # "card metadata `datasets:`", "card prose", "dataset card of OWNER/NAME", "knowledge base"
    line: int | None = None
    quote: str | None = None


@dataclass(frozen=True)
class GeneratorFact:
    """A model or service the data was generated with, and what says so."""

    name: str  # as written (a Hub id, a model name, a service's model)
    license: License | None  # the open licence its outputs carry (None for a service, or unknown)
    terms: str | None = None  # a commercial service's terms
    clause: str | None = None  # the clause of those terms that reaches models trained on the outputs
    url: str | None = None
    where: Where = field(default_factory=lambda: Where("knowledge base"))


@dataclass(frozen=True)
class HubDatasetCard:
    """What the Hub says about one dataset: its card's metadata and the generators its prose names."""

    id: str
    revision: str | None
    license: str | None  # the card's `license` (first of a list)
    license_name: str | None
    license_link: str | None
    source_datasets: tuple[str, ...]
    linked: tuple[str, ...]  # dataset ids its prose links to
    generators: tuple[tuple[str, str], ...]  # (model name as written, the sentence)
    gated: bool = False
    error: str | None = None  # why the card could not be read (not found, gated body, unreachable)
    requests: int = 0  # HTTP requests this look-up cost (0: from the cache); read off the process-wide counter, so
    # exact when one look-up runs at a time (a sweep's parallel scans may add each other's)


@dataclass
class DatasetFacts:
    """One dataset a model was trained on: the one answer checks and reports read."""

    id: str  # Hub id when known, else the name as written
    found: list[Where]  # where the model card (or a parent dataset's card) names it
    known: Any = None  # scanner.knowledge.KnownDataset
    hub: HubDatasetCard | None = None
    licenses: list[License] = field(default_factory=list)  # as published (knowledge base first, else its card)
    license_from: str | None = None  # the citation of `licenses`
    unlicensed: bool = False  # published with no licence (the knowledge base or its card says so)
    source_licenses: list[License] = field(default_factory=list)  # what its own sources impose
    generators: list[GeneratorFact] = field(default_factory=list)
    via: str | None = None  # the dataset whose card names this one as a source

    @property
    def unknown(self) -> bool:
        """Nothing says under what terms it is published."""
        return not self.licenses and not self.unlicensed

    @property
    def all_licenses(self) -> list[License]:
        """Its published licence and what its sources impose: every licence that follows the data."""
        out = {lic.id: lic for lic in (*self.licenses, *self.source_licenses)}
        return list(out.values())


DatasetFetcher = Callable[[str], HubDatasetCard | None]


# -- the model card ----------------------------------------------------------------------------------------------
def card_mentions(card: CardFacts, known: DatasetKnowledge) -> dict[str, list[Where]]:
    """Datasets the model card names: its `datasets:` metadata, dataset links and known dataset ids in its prose."""
    out: dict[str, list[Where]] = {}

    def add(name: str, where: Where) -> None:
        key = _canonical(name, known)
        if key is not None and (key in out or len(out) < MAX_DATASETS) and len(out.get(key, ())) < MAX_WHERE:
            out.setdefault(key, []).append(where)

    value = card.metadata.get("datasets")
    listed = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    for item in listed:
        if isinstance(item, str) and item.strip():
            add(item.strip(), Where("card metadata `datasets:`", card.line_of("datasets")))
    for n, line in enumerate(card.body.splitlines(), start=1):
        if "/" not in line:
            continue
        quote = _quote(line)
        linked = Where("card prose (dataset link)", n, quote)
        for m in _LINK.finditer(line):
            add(m.group(1), linked)
        named = Where("card prose", n, quote)
        for m in _BARE_ID.finditer(line):  # an id inside a link is preceded by "/": not matched again here
            if known.dataset(m.group(1)) is not None:
                add(m.group(1), named)
    return out


def _canonical(name: str, known: DatasetKnowledge) -> str | None:
    name = name.strip().rstrip(".,;)").removesuffix(".git")
    if not name or len(name) > 200:
        return None
    hit = known.dataset(name)
    return hit.id if hit is not None else name


def _quote(line: str) -> str:
    text = re.sub(r"\s+", " ", line[:400]).strip()  # a bounded slice: quoting costs the same for any line length
    return text if len(text) <= 200 else text[:197] + "\u2026"


# -- generators named in text ------------------------------------------------------------------------------------
def generators_in_text(text: str, kb: KnowledgeBase, known: DatasetKnowledge) -> list[tuple[str, str]]:
    """(model as written, sentence) for each model a sentence says the data was generated with."""
    out: dict[str, tuple[str, str]] = {}
    cued = (s for s in _sentences(text) if _GENERATION_CUE.search(s))
    for sentence in itertools.islice(cued, MAX_CUE_SENTENCES):
        for name, _ in _generators_at(sentence, kb, known):
            out.setdefault(name.lower(), (name, _quote(sentence)))
    return list(out.values())


def _sentences(text: str) -> list[str]:
    return re.split(r"(?<=[.!?])\s+|\n", text)


_URL = re.compile(r"\]\([^)\s]*\)|https?://\S+")


def _generators_at(sentence: str, kb: KnowledgeBase, known: DatasetKnowledge) -> list[tuple[str, int]]:
    """(model, position) for each model a sentence with a generation cue names; links are blanked first (a dataset
    named after its generator, "…-llama3.1-2k", is not itself a mention)."""
    if not _GENERATION_CUE.search(sentence):
        return []
    plain = _URL.sub(lambda m: " " * len(m.group(0)), sentence)
    found: list[tuple[str, int]] = []
    models = []  # models named with their size first: "Llama-3.1-70B-Instruct" is not also "Llama 3.1"
    for m in _MODEL_TOKEN.finditer(plain):
        token = m.group(1).rstrip(".")
        if name_match(kb, token if "/" in token else f"_/{token}") is not None:
            models.append(token.lower())
            found.append((token, m.start(1)))
    low = plain.lower()
    for g in known.generators.values():
        for n in g.names:
            at = _find_name(low, n)
            if at >= 0 and not any(_has_name(t, n) for t in models):
                found.append((g.id, at))
                break
    return found


def card_generators(card: CardFacts, kb: KnowledgeBase, known: DatasetKnowledge) -> dict[str, list[GeneratorFact]]:
    """Generators the model card's prose names for a dataset it links: "a dataset of conversations we generated by
    llama3.1-70B [everyday-conversations](…/datasets/…)". Each goes to the link nearest to it in its sentence."""
    out: dict[str, list[GeneratorFact]] = {}
    read = 0
    for n, line in enumerate(card.body.splitlines(), start=1):
        for sentence in _sentences(line):
            if read >= MAX_CUE_SENTENCES or not _GENERATION_CUE.search(sentence):
                continue
            read += 1
            links = [(m.start(), m.group(1)) for m in _LINK.finditer(sentence)]
            if not links:
                continue
            for name, at in _generators_at(sentence, kb, known):
                nearest = min(links, key=lambda link: abs(link[0] - at))[1]
                key = _canonical(nearest, known)
                fact = generator_fact(name, kb, known, Where("card prose", n, _quote(sentence)))
                known_facts = out.setdefault(key.lower(), []) if key is not None else []
                if fact is not None and len(known_facts) < MAX_WHERE:
                    known_facts.append(fact)
    return out


def _has_name(text: str, name: str) -> bool:
    """`name` as a whole word: "llama-3" is not found in "llama-3.1", "gpt-4" is in "gpt-4's"."""
    return _find_name(text, name) >= 0


def _find_name(text: str, name: str) -> int:
    m = re.search(r"(?<![a-z0-9])" + re.escape(name) + r"(?![a-z0-9]|\.\d)", text)
    return m.start() if m else -1


def generator_fact(name: str, kb: KnowledgeBase, known: DatasetKnowledge, where: Where) -> GeneratorFact | None:
    """A generator id of rules/datasets/generators.yaml, a generator's name or a model id, resolved to its terms."""
    g = known.generators.get(name) or next(
        (g for g in known.generators.values() if any(_has_name(name.lower(), n) for n in g.names)), None
    )
    hit = name_match(kb, name if "/" in name else f"_/{name}")
    if hit is not None:  # a model known by size and variant beats a family name
        return GeneratorFact(name, kb.licenses.get(hit.upstream.license), where=where)
    if g is None:
        return None
    lic = kb.licenses.get(g.license) if g.license else None
    return GeneratorFact(g.name, lic, terms=g.terms, clause=g.clause, url=g.url, where=where)


# -- resolving ---------------------------------------------------------------------------------------------------
def resolve_datasets(
    card: CardFacts, kb: KnowledgeBase, known: DatasetKnowledge, fetch: DatasetFetcher | None = None
) -> list[DatasetFacts]:
    """Every dataset the card names, with its terms; with `fetch`, the dataset cards are read from the Hub and
    their source datasets followed up to MAX_HOPS."""
    found = card_mentions(card, known)
    said = card_generators(card, kb, known)
    out: dict[str, DatasetFacts] = {}
    frontier: list[tuple[str, list[Where], str | None]] = [(name, wheres, None) for name, wheres in found.items()]
    for hop in range(MAX_HOPS + 1):
        nxt: list[tuple[str, list[Where], str | None]] = []
        for name, wheres, via in frontier:
            if name.lower() in out or len(out) >= MAX_DATASETS:
                continue
            facts = _describe(name, wheres, via, kb, known, fetch)
            seen = {g.name.lower() for g in facts.generators}
            for g in said.get(name.lower(), []) if via is None else []:
                if g.name.lower() not in seen:
                    seen.add(g.name.lower())
                    facts.generators.append(g)
            out[name.lower()] = facts
            if hop < MAX_HOPS and facts.hub is not None:
                for child in (*facts.hub.source_datasets, *facts.hub.linked):
                    key = _canonical(child, known)
                    if key and key.lower() not in out and key.lower() != name.lower():
                        nxt.append((key, [Where(f"dataset card of {facts.id}")], facts.id))
        frontier = nxt
    return list(out.values())


def _describe(
    name: str,
    wheres: list[Where],
    via: str | None,
    kb: KnowledgeBase,
    known: DatasetKnowledge,
    fetch: DatasetFetcher | None,
) -> DatasetFacts:
    entry = known.dataset(name)
    facts = DatasetFacts(entry.id if entry else name, list(wheres), known=entry, via=via)
    if fetch is not None and re.fullmatch(_ID, facts.id):
        facts.hub = fetch(facts.id)
    if entry is not None:
        if entry.license == DATASET_LICENSE_NONE:
            facts.unlicensed, facts.license_from = True, entry.cite.get("license")
        elif entry.license:
            facts.licenses = [kb.licenses[entry.license]]
            facts.license_from = entry.cite.get("license")
        facts.source_licenses = [kb.licenses[s] for s in entry.source_licenses]
        for g in entry.generated_by:
            fact = generator_fact(g, kb, known, Where("knowledge base", quote=entry.cite.get("generated_by")))
            if fact is not None:
                facts.generators.append(fact)
    hub = facts.hub
    if hub is not None and (hub.error is None or hub.license is not None):
        declared = hub.license_name if (hub.license or "").lower() == "other" and hub.license_name else hub.license
        if not facts.licenses and not facts.unlicensed:
            lics = [lic for lic in kb.licenses_named(declared) if not lic.is_placeholder]
            if lics:
                facts.licenses, facts.license_from = lics, f"dataset card of {hub.id}" + _at(hub.revision)
            elif declared is None and hub.error is None:
                facts.unlicensed, facts.license_from = True, f"dataset card of {hub.id}" + _at(hub.revision)
        seen = {g.name.lower() for g in facts.generators}
        for model, sentence in hub.generators:
            fact = generator_fact(model, kb, known, Where(f"dataset card of {hub.id}", quote=sentence))
            if fact is not None and fact.name.lower() not in seen:
                seen.add(fact.name.lower())
                facts.generators.append(fact)
    if not facts.generators and facts.id.lower().split("/")[-1].startswith("magpie-"):
        # Magpie datasets are named after the model that wrote them (Magpie-Llama-3.1-Pro-…, Magpie-Qwen2-Pro-…)
        fact = generator_fact(facts.id.split("/")[-1], kb, known, Where("the dataset's name (Magpie naming)"))
        if fact is not None:
            facts.generators.append(fact)
    return facts


def _at(revision: str | None) -> str:
    return f"@{revision[:12]}" if revision else ""


# -- the Hub -----------------------------------------------------------------------------------------------------
_memo: dict[str, HubDatasetCard | None] = {}
_memo_lock = threading.Lock()


def hub_dataset_cards(token: str | None = None, endpoint: str | None = None) -> DatasetFetcher:
    """A fetcher for dataset cards on the Hub (HF_ENDPOINT, HF_TOKEN): cached in memory for the run and on disk for
    CARD_TTL_S, so a re-run of an unchanged scan asks the Hub nothing. A miss costs one dataset-info call (the card's
    metadata, given even for gated datasets) and one GET of its README for the prose."""
    from scanner.sources.cache import default_cache

    token = token if token is not None else os.environ.get("HF_TOKEN")
    base = (endpoint or os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")

    def fetch(dataset_id: str) -> HubDatasetCard | None:
        key = f"dataset-card|{base}|{dataset_id.lower()}"
        with _memo_lock:
            if key in _memo:
                return _memo[key]
        cache = default_cache()
        record = cache.get_json(key) if cache else None
        card: HubDatasetCard | None
        if isinstance(record, dict) and time.time() - float(record.get("fetched", 0)) < CARD_TTL_S:
            card = _card_from_record(dataset_id, record)
        else:
            card, record = _fetch_card(dataset_id, token, base)
            if cache is not None and record is not None:
                cache.put_json(key, record)
        with _memo_lock:
            _memo[key] = card
        return card

    return fetch


def _fetch_card(dataset_id: str, token: str | None, endpoint: str) -> tuple[HubDatasetCard, dict[str, Any] | None]:
    """(card, record to cache; None when the answer should not be kept, e.g. the Hub was unreachable)."""
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

    from scanner.errors import SourceError
    from scanner.sources import hf, http

    before = _sent()
    api = hf.hub_api(endpoint, token)
    label = f"hf:datasets/{dataset_id}"
    try:
        info = hf.hub_call(label, api.dataset_info, dataset_id)
    except RepositoryNotFoundError as exc:
        why = "not found" if hf._status(exc) == 404 else f"not visible (HTTP {hf._status(exc)})"
        return _failed(dataset_id, why, before), {"fetched": time.time(), "error": why}
    except GatedRepoError:
        why = "gated"
        return _failed(dataset_id, why, before), {"fetched": time.time(), "error": why}
    except (HfHubHTTPError, SourceError, http.Retryable, OSError) as exc:
        return _failed(dataset_id, f"unreachable ({_short(exc)})", before), None
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        return _failed(dataset_id, f"malformed answer ({type(exc).__name__})", before), None
    data: Any = info.card_data.to_dict() if info.card_data is not None else {}
    body, error = "", None
    text = hf.read_text_file(dataset_id, "README.md", token=token, endpoint=endpoint, revision=info.sha, kind="dataset")
    if text is None:
        error = "card prose not readable (gated, absent or unreachable)" if info.card_data is None else None
    else:
        split = split_front_matter(text.replace("\r\n", "\n"))
        if split is not None:
            block, body, _ = split
            if not data:
                try:
                    parsed = load_yaml(block)
                    data = parsed if isinstance(parsed, dict) else {}
                except Exception:  # a hostile or broken block: the metadata is then simply absent
                    data = {}
        else:
            body = text
    record = {
        "fetched": time.time(),
        "revision": info.sha,
        "gated": bool(info.gated),
        "card_data": data if isinstance(data, dict) else {},
        "body": body[:200_000],
        "error": error,
    }
    card = _card_from_record(dataset_id, record, requests=_sent() - before)
    return card, record


def _sent() -> int:
    from scanner.sources import http

    return int(http.SENT.count)


def _failed(dataset_id: str, why: str, before: int) -> HubDatasetCard:
    return HubDatasetCard(dataset_id, None, None, None, None, (), (), (), error=why, requests=_sent() - before)


def _short(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:120]


def _card_from_record(dataset_id: str, record: dict[str, Any], requests: int = 0) -> HubDatasetCard:
    from scanner.knowledge import knowledge_base

    if record.get("error") and "card_data" not in record:
        return HubDatasetCard(dataset_id, None, None, None, None, (), (), (), error=str(record["error"]))
    data = record.get("card_data") if isinstance(record.get("card_data"), dict) else {}
    assert isinstance(data, dict)
    lic = data.get("license")
    if isinstance(lic, list):
        lic = lic[0] if lic else None
    body = str(record.get("body") or "")
    sources = data.get("source_datasets")
    sources = [sources] if isinstance(sources, str) else sources if isinstance(sources, list) else []
    linked = tuple(dict.fromkeys(m.group(1) for m in _LINK.finditer(body) if m.group(1).lower() != dataset_id.lower()))
    from scanner.knowledge import dataset_knowledge

    return HubDatasetCard(
        id=dataset_id,
        revision=record.get("revision"),
        license=str(lic).strip() if lic else None,
        license_name=str(data["license_name"]).strip() if data.get("license_name") else None,
        license_link=str(data["license_link"]).strip() if data.get("license_link") else None,
        source_datasets=tuple(s.strip() for s in sources if isinstance(s, str) and re.fullmatch(_ID, s.strip())),
        linked=linked[:MAX_DATASETS],
        generators=tuple(generators_in_text(body, knowledge_base(), dataset_knowledge())),
        gated=bool(record.get("gated")),
        error=record.get("error"),
        requests=requests,
    )


def card_from_text(dataset_id: str, text: str, revision: str | None = None) -> HubDatasetCard:
    """A dataset card as the Hub would serve it, from its README text (offline corpora and tests)."""
    split = split_front_matter(text.replace("\r\n", "\n"))
    data: Any = {}
    body = text
    if split is not None:
        block, body, _ = split
        try:
            data = load_yaml(block)
        except Exception:  # a broken block: no metadata, as the Hub would show it
            data = {}
    record = {"revision": revision, "card_data": data if isinstance(data, dict) else {}, "body": body}
    return _card_from_record(dataset_id, record)
