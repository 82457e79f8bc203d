"""The knowledge base: rule catalogue, licences and upstream models, loaded from the data files in rules/.

Every data file is validated while it is loaded: a malformed entry stops the program with one line that names
the file, the entry and the key (a `KnowledgeBaseError`, which the CLI reports with exit status 2).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import scanner
from scanner.errors import UsageError
from scanner.findings import FAMILIES, Finding, Severity
from scanner.parsed_cache import cached_parse


class KnowledgeBaseError(UsageError):
    """A rules/ data file is malformed; the message names the file and the key."""


def data_dir(kind: str) -> Path:
    """rules/ or templates/: inside the package in a wheel, at the repo root in a checkout."""
    packaged = Path(scanner.__file__).parent / "_data" / kind
    return packaged if packaged.is_dir() else Path(scanner.__file__).parent.parent / kind


def _load(name: str) -> Any:
    """rules/NAME parsed; from the parsed cache while the file is unchanged (no PyYAML import at all then)."""
    try:
        text = (data_dir("rules") / name).read_bytes()
    except OSError as exc:
        raise KnowledgeBaseError(f"rules/{name}: cannot be read ({exc.strerror or exc})") from None
    return cached_parse("rules", text, lambda: _parse_yaml(name, text), depends=("yaml", __name__))


def _parse_yaml(name: str, text: bytes) -> Any:
    import yaml

    try:
        # libyaml's safe loader when present: the same safe constructor, ~10x faster on the knowledge base
        return yaml.load(text.decode("utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise KnowledgeBaseError(
            f"rules/{name}{where}: not valid YAML ({getattr(exc, 'problem', None) or exc})"
        ) from None
    except UnicodeDecodeError as exc:
        raise KnowledgeBaseError(f"rules/{name}: cannot be read ({exc})") from None


@dataclass(frozen=True)
class Rule:
    id: str
    severity: Severity
    title: str
    doc: str
    fix: str


@dataclass(frozen=True)
class License:
    id: str
    hub_id: str
    name: str
    kind: str
    spdx: str | None
    url: str | None
    commercial: Any
    derivatives: Any
    outbound: Any  # "any" or a list of licence ids
    conditions: dict[str, Any]
    markers: tuple[str, ...]
    license_names: tuple[str, ...]
    licensor: str | None = None  # who grants the licence (the party its licensee duties are owed to)
    publishers: tuple[str, ...] = ()  # Hub / GitHub organisations that publish the licensor's own releases
    ending: str | None = None  # a phrase of the text's last clause: a copy without it was cut short

    def allows_outbound(self, other: str) -> bool:
        return self.outbound == "any" or other in (self.outbound or ())

    def published_by(self, owner: str | None) -> bool:
        """The licensor itself publishes under `owner`: duties that bind the licensee do not bind it."""
        return owner is not None and owner.lower() in self.publishers

    @property
    def is_placeholder(self) -> bool:
        """`unknown` and `other` say nothing about terms: never compared, never a source of obligations."""
        return self.id in ("unknown", "other")


@dataclass(frozen=True)
class Upstream:
    id: str
    family: str
    license: str
    config: dict[str, Any]
    special_tokens: dict[str, int] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()  # other ids the vendor published the same release under (renames)
    mirrors: tuple[str, ...] = ()  # third-party re-hosts of the same weights
    source: str = ""  # the data file it came from, for messages
    base_models: tuple[str, ...] = ()  # what the vendor says this release was itself built on (lineage is transitive)

    @property
    def ids(self) -> tuple[str, ...]:
        """Every id the vendor published this release under."""
        return (self.id, *self.aliases)

    @property
    def orgs(self) -> frozenset[str]:
        """The vendor's organisations: a release by one of them is never its own undeclared derivative."""
        return frozenset(i.split("/", 1)[0].lower() for i in self.ids)


@functools.cache
def catalogue() -> dict[str, Rule]:
    """rules/catalogue.yaml: the one owner of rule ids and default severities (validated on load)."""
    rules: dict[str, Rule] = {}
    for e in _entries("catalogue.yaml", "rules"):
        r = _rule(e)
        if r.id in rules:
            e.fail("id", f"{r.id!r} is listed twice")
        rules[r.id] = r
    return rules


class UnknownRuleError(KeyError):
    """A rule id that rules/catalogue.yaml does not list: a bug in originscan, not in the scanned repo."""

    def __str__(self) -> str:
        return f"rule {self.args[0]!r} is not in rules/catalogue.yaml"


def rule(rule_id: str) -> Rule:
    try:
        return catalogue()[rule_id]
    except KeyError:
        raise UnknownRuleError(rule_id) from None


def finding(rule_id: str, message: str, path: str | None = None, line: int | None = None, **evidence: Any) -> Finding:
    """A finding with its catalogue severity (a policy may override it later, never the code)."""
    return Finding(rule_id, rule(rule_id).severity, message, path=path, line=line, evidence=evidence)


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def license_key(text: str) -> str:
    """How licence names are compared: case, spaces and underscores do not matter ("Apache 2.0" = "apache-2.0")."""
    return re.sub(r"[\s_]+", "-", text.strip().lower())


_EXPRESSION = re.compile(r"\s(or|and|with)\s|[()]", re.I)


class KnowledgeBase:
    def __init__(self, licenses: list[License], upstreams: list[Upstream]):
        self.licenses = {lic.id: lic for lic in licenses}
        self.upstreams = {u.id.lower(): u for u in upstreams}
        self._by_id: dict[str, Upstream] = {}
        self._mirrors: dict[str, Upstream] = {}
        for up in upstreams:
            for i in up.ids:
                self._by_id.setdefault(i.lower(), up)
            for m in up.mirrors:
                self._mirrors.setdefault(m.lower(), up)
        self._by_name: dict[str, License] = {}
        for lic in licenses:
            keys = (lic.id, lic.hub_id if lic.hub_id != "other" else None, lic.spdx, lic.name, *lic.license_names)
            for key in keys:
                if key:
                    self._by_name.setdefault(license_key(key), lic)

    # -- licences ----------------------------------------------------------------------------------------------
    def licenses_named(self, text: str | None) -> list[License]:
        """Every licence a card's `license` / `license_name` value names: one for a plain id or name, several for
        an SPDX expression ("apache-2.0 OR mit"); the ones the knowledge base does not know are left out."""
        if not isinstance(text, str) or not text.strip():
            return []
        hit = self._by_name.get(license_key(text))
        if hit is not None:
            return [hit]
        if not _EXPRESSION.search(text):
            return []
        from license_expression import ExpressionError, get_spdx_licensing

        try:
            keys = get_spdx_licensing().license_keys(get_spdx_licensing().parse(text, simple=False))
        except (ExpressionError, TypeError, ValueError):
            return []
        found: dict[str, License] = {}
        for k in keys:
            if (lic := self._by_name.get(license_key(k))) is not None:
                found.setdefault(lic.id, lic)
        return list(found.values())

    def license(self, key: str | None) -> License | None:
        found = self.licenses_named(key)
        return found[0] if found else None

    # -- upstreams ---------------------------------------------------------------------------------------------
    def upstream(self, repo_id: str) -> Upstream | None:
        """The upstream published under this id or one of its aliases (exact, case-insensitive)."""
        return self._by_id.get(repo_id.strip().lower()) if isinstance(repo_id, str) else None

    def mirror_of(self, repo_id: str) -> Upstream | None:
        """The upstream a knowledge-base-listed third-party mirror re-hosts."""
        return self._mirrors.get(repo_id.strip().lower()) if isinstance(repo_id, str) else None

    def detect_license_text(self, text: str) -> License | None:
        """The most specific licence all of whose markers occur in `text`."""
        found = self.match_license_text(text)
        return found.license if found is not None and found.complete else None

    def match_license_text(self, text: str) -> TextMatch | None:
        """What licence text `text` is: the most specific licence all of whose markers (and ending) occur in it;
        else one whose title (its first marker) occurs with only some of the rest: a copy cut short or edited."""
        body = normalise(text)
        whole: TextMatch | None = None
        part: tuple[int, int, TextMatch] | None = None
        for lic in self.licenses.values():
            if not lic.markers:
                continue
            wanted = (*lic.markers, lic.ending) if lic.ending else lic.markers
            missing = tuple(m for m in wanted if normalise(m) not in body)
            if not missing:
                if whole is None or len(lic.markers) > len(whole.license.markers):
                    whole = TextMatch(lic, ())
            elif normalise(lic.markers[0]) in body and len(missing) < len(wanted):
                rank = (len(wanted) - len(missing), len(lic.markers[0]))
                if part is None or rank > part[:2]:
                    part = (*rank, TextMatch(lic, missing))
        return whole or (part[2] if part else None)


@dataclass(frozen=True)
class TextMatch:
    license: License
    missing: tuple[str, ...] = ()  # marker phrases (or the ending) of the whole text that this one lacks

    @property
    def complete(self) -> bool:
        return not self.missing


# -- loading and validation ----------------------------------------------------------------------------------------
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


class _Entry:
    """One list entry of a data file, for error messages that name the file, the entry and the key."""

    def __init__(self, file: str, section: str, index: int, raw: Any):
        self.file, self.raw = file, raw
        label = raw.get("id") if isinstance(raw, dict) else None
        self.where = f"rules/{file}: {section}[{index}]" + (f" ({label})" if isinstance(label, str) else "")
        if not isinstance(raw, dict):
            self.fail(None, f"expected a mapping, got {type(raw).__name__}")

    def fail(self, key: str | None, what: str) -> NoReturn:
        raise KnowledgeBaseError(f"{self.where}" + (f" key {key!r}" if key else "") + f": {what}")

    def text(self, key: str, required: bool = False, default: str | None = None) -> str | None:
        value = self.raw.get(key)
        if value is None:
            if required:
                self.fail(key, "missing")
            return default
        if not isinstance(value, str) or not value.strip():
            self.fail(key, f"expected a non-empty string, got {value!r}")
        return value.strip()

    def repo_id(self, key: str) -> str:
        value = self.text(key, required=True)
        if not _REPO_ID.match(value):  # type: ignore[arg-type]
            self.fail(key, f"expected an OWNER/NAME Hub id, got {value!r}")
        return value  # type: ignore[return-value]

    def repo_ids(self, key: str) -> tuple[str, ...]:
        value = self.raw.get(key)
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) and _REPO_ID.match(v) for v in value):
            self.fail(key, f"expected a list of OWNER/NAME Hub ids, got {value!r}")
        return tuple(value)

    def strings(self, key: str) -> tuple[str, ...]:
        value = self.raw.get(key)
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.fail(key, f"expected a list of strings, got {value!r}")
        return tuple(value)

    def mapping(self, key: str) -> dict[str, Any]:
        value = self.raw.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.fail(key, f"expected a mapping, got {value!r}")
        return value

    def token_ids(self, key: str) -> dict[str, int]:
        out = {}
        for token, tid in self.mapping(key).items():
            if isinstance(tid, bool) or not isinstance(tid, int) or tid < 0:
                self.fail(key, f"token {token!r} needs a non-negative integer id, got {tid!r}")
            out[str(token)] = tid
        return out


def _entries(file: str, section: str) -> list[_Entry]:
    data = _load(file)
    if data is None:
        return []
    if not isinstance(data, dict) or not isinstance(data.get(section), (list, type(None))):
        raise KnowledgeBaseError(f"rules/{file}: expected a top-level `{section}:` list")
    return [_Entry(file, section, i, raw) for i, raw in enumerate(data.get(section) or [])]


def _rule(e: _Entry) -> Rule:
    rule_id = e.text("id", required=True) or ""
    family, dot, name = rule_id.partition(".")
    if not (dot and name and family in FAMILIES):
        e.fail("id", f"expected FAMILY.name with a family of {', '.join(FAMILIES)}, got {rule_id!r}")
    try:
        severity = Severity.parse(e.text("severity", required=True) or "")
    except ValueError as exc:
        e.fail("severity", str(exc))
    return Rule(rule_id, severity, *(e.text(k, required=True) or "" for k in ("title", "doc", "fix")))


def _license(e: _Entry) -> License:
    lic_id = e.text("id", required=True) or ""
    return License(
        id=lic_id,
        hub_id=e.text("hub_id") or lic_id,
        name=e.text("name") or lic_id,
        kind=e.text("kind") or "",
        spdx=e.text("spdx"),
        url=e.text("url"),
        commercial=e.raw.get("commercial"),
        derivatives=e.raw.get("derivatives"),
        outbound=e.raw.get("outbound", "any"),
        conditions=e.mapping("conditions"),
        markers=e.strings("markers"),
        license_names=tuple(n.lower() for n in e.strings("license_names")),
        licensor=e.text("licensor"),
        publishers=tuple(n.lower() for n in e.strings("publishers")),
        ending=e.text("ending"),
    )


def _upstream(e: _Entry) -> Upstream:
    return Upstream(
        id=e.repo_id("id"),
        family=e.text("family", default="") or "",
        license=e.text("license", default="unknown") or "unknown",
        config=e.mapping("config"),
        special_tokens=e.token_ids("special_tokens"),
        aliases=e.repo_ids("aliases"),
        mirrors=e.repo_ids("mirrors"),
        source=f"rules/{e.file}",
        base_models=(e.repo_id("base_model"),)
        if isinstance(e.raw.get("base_model"), str)
        else e.repo_ids("base_model"),
    )


def load_knowledge_base() -> KnowledgeBase:
    licenses = [_license(e) for e in _entries("licenses.yaml", "licenses")]
    upstreams: list[Upstream] = []
    claimed: dict[str, str] = {}  # lower id/alias/mirror -> where it was first listed
    for path in sorted((data_dir("rules") / "upstreams").glob("*.yaml")):
        for e in _entries(f"upstreams/{path.name}", "upstreams"):
            up = _upstream(e)
            for key, ids in (("id", (up.id,)), ("aliases", up.aliases), ("mirrors", up.mirrors)):
                for i in ids:
                    if (first := claimed.get(i.lower())) is not None:
                        e.fail(key, f"{i} is already listed by {first}")
                    claimed[i.lower()] = e.where
            upstreams.append(up)
    return KnowledgeBase(licenses, upstreams)


def upstreams_from_file(path: str | Path) -> list[Upstream]:
    """Upstream entries from a YAML file of the knowledge base's schema (e.g. an organisation's own models)."""
    import yaml

    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except (OSError, yaml.YAMLError) as exc:
        raise KnowledgeBaseError(f"{path}: cannot be read as YAML ({str(exc).splitlines()[0][:120]})") from None
    if not isinstance(data, dict) or not isinstance(data.get("upstreams"), list):
        raise KnowledgeBaseError(f"{path}: expected a top-level `upstreams:` list")
    return [_upstream(_Entry(Path(path).name, "upstreams", i, raw)) for i, raw in enumerate(data["upstreams"])]


@functools.cache
def knowledge_base() -> KnowledgeBase:
    return load_knowledge_base()


# -- naming: which upstream does a repo id name? --------------------------------------------------------------------
@dataclass(frozen=True)
class NameMatch:
    upstream: Upstream
    how: str  # "id" | "alias" | "mirror" | "variant" (a -Instruct/-chat/… of it) | "re-upload" (quantized/re-hosted)


# The vendor's own variants of a release: stripped when a declared id is not itself in the knowledge base.
VARIANT_SUFFIXES = ("-instruct", "-chat", "-hf", "-it", "-base", "-sft", "-bf16", "-pt")


@functools.cache
def _rehosts() -> tuple[tuple[str, ...], frozenset[str]]:
    """(quantization suffixes, re-hosting organisations) from rules/rehosts.yaml."""
    data = _load("rehosts.yaml") or {}
    if not isinstance(data, dict):
        raise KnowledgeBaseError("rules/rehosts.yaml: expected a mapping with `suffixes:` and `orgs:`")
    out = []
    for key in ("suffixes", "orgs"):
        items = data.get(key) or []
        if not isinstance(items, list) or not all(
            isinstance(i, dict) and isinstance(i.get("name"), str) for i in items
        ):
            raise KnowledgeBaseError(f"rules/rehosts.yaml key {key!r}: expected a list of mappings with a `name`")
        out.append(tuple(i["name"].lower() for i in items))
    suffixes = tuple(sorted(out[0], key=len, reverse=True))  # longest first: "-bnb-4bit" before "-4bit"
    return suffixes, frozenset(out[1])


def _strip(name: str, suffixes: tuple[str, ...]) -> str:
    changed = True
    while changed:
        changed = False
        for s in suffixes:
            if name.endswith(s) and len(name) > len(s):
                name, changed = name[: -len(s)], True
    return name


_VARIANT_WORD = re.compile(r"-(?:instruct|chat|it|hf|base)(?=-|$)")


def _core(name: str) -> str:
    """A repo name without the vendor's variant words anywhere (Mixtral-8x7B-Instruct-v0.1 -> mixtral-8x7b-v0.1)."""
    return _VARIANT_WORD.sub("", name.lower())


_tail_indexes: dict[int, tuple[KnowledgeBase, dict[str, Upstream]]] = {}


def _tail_index(kb: KnowledgeBase) -> dict[str, Upstream]:
    """Repo name (after the org), variant suffixes stripped -> upstream; first listed wins. Built once per
    knowledge base (it was 8 ms of every scan, a third of a warm sweep's time per repo)."""
    hit = _tail_indexes.get(id(kb))
    if hit is not None and hit[0] is kb:
        return hit[1]
    index: dict[str, Upstream] = {}
    for up in kb.upstreams.values():
        for i in up.ids:
            tail = i.rsplit("/", 1)[-1].lower()
            for name in (tail, tail.removeprefix("meta-")):  # re-hosts drop Meta's prefix (llama-3-8b)
                index.setdefault(name, up)
                index.setdefault(_strip(name, VARIANT_SUFFIXES), up)
    for up in kb.upstreams.values():  # last resort: the core name, variant words removed anywhere
        for i in up.ids:
            tail = i.rsplit("/", 1)[-1].lower()
            for name in (tail, tail.removeprefix("meta-")):
                index.setdefault(_core(name), up)
    _tail_indexes[id(kb)] = (kb, index)
    return index


def _lookup(tails: dict[str, Upstream], name: str) -> Upstream | None:
    return tails.get(name) or tails.get(_strip(name, VARIANT_SUFFIXES)) or tails.get(_core(name))


def name_match(kb: KnowledgeBase, repo_id: str) -> NameMatch | None:
    """The upstream a Hub id names: its id or an alias, a listed mirror, a vendor variant of it, or a quantized /
    re-hosted upload of it (a -GPTQ/-AWQ/-GGUF… suffix, or an organisation that re-hosts base models)."""
    if not isinstance(repo_id, str) or not repo_id.strip():
        return None
    rid = repo_id.strip().lower()
    if (up := kb.upstream(rid)) is not None:
        return NameMatch(up, "id" if up.id.lower() == rid else "alias")
    if (up := kb.mirror_of(rid)) is not None:
        return NameMatch(up, "mirror")
    org, _, tail = rid.rpartition("/")
    suffixes, orgs = _rehosts()
    bare = _strip(tail, suffixes)
    tails = _tail_index(kb)
    if bare != tail or org in orgs:
        up = _lookup(tails, bare)
        return NameMatch(up, "re-upload") if up is not None else None
    variant = _strip(rid, VARIANT_SUFFIXES)
    if variant != rid and (up := kb.upstream(variant)) is not None:
        return NameMatch(up, "variant")
    up = _lookup(tails, tail)
    return NameMatch(up, "variant") if up is not None else None


# -- training data: rules/datasets/*.yaml (scanner/evidence/datasets.py reads it) ------------------------------------
@dataclass(frozen=True)
class Generator:
    """A model or service whose outputs datasets are made of, and the terms that follow those outputs."""

    id: str
    name: str
    names: tuple[str, ...]  # how cards name it in prose (lower case, matched as whole words)
    license: str | None  # a rules/licenses.yaml id when an open licence governs its outputs
    terms: str | None  # a commercial service's terms (a risk, not a licence)
    clause: str | None  # the clause of those terms that reaches models trained on the outputs
    url: str | None
    cite: str


@dataclass(frozen=True)
class KnownDataset:
    """One dataset of the knowledge base: its licence as published, what its sources impose, who generated it."""

    id: str  # the Hub id (OWNER/NAME)
    names: tuple[str, ...]  # other ids and bare names cards use for it (lower case)
    license: str | None  # a rules/licenses.yaml id, "none" (published without one), or None (not recorded)
    source_licenses: tuple[str, ...]  # licences its own sources impose where they differ
    generated_by: tuple[str, ...]  # generator ids (rules/datasets/generators.yaml) or upstream model ids
    cite: dict[str, str]  # field -> where the value was read (the dataset card at a revision, DPI annotations)
    source: str = ""  # the data file it came from


DATASET_LICENSE_NONE = "none"  # the dataset is published without any licence (cited like any other value)


OUTPUT_TERMS = ("naming", "attribution", "derivative", "no_training")


@dataclass(frozen=True)
class OutputTerms:
    """What a licence asks of a model trained on the outputs of a model under it."""

    license: str  # a rules/licenses.yaml id
    applies: tuple[str, ...]  # of OUTPUT_TERMS
    clause: str
    cite: str


@dataclass(frozen=True)
class DatasetKnowledge:
    datasets: dict[str, KnownDataset]  # lower-cased id or name -> entry
    generators: dict[str, Generator]  # id -> generator
    output_terms: dict[str, OutputTerms] = field(default_factory=dict)  # licence id -> its terms on outputs

    def dataset(self, name: str) -> KnownDataset | None:
        return self.datasets.get(name.strip().lower()) if isinstance(name, str) else None

    @property
    def entries(self) -> list[KnownDataset]:
        return list({d.id: d for d in self.datasets.values()}.values())


def _generator(e: _Entry, kb: KnowledgeBase) -> Generator:
    lic = e.text("license")
    if lic is not None and lic not in kb.licenses:
        e.fail("license", f"{lic!r} is not a licence id of rules/licenses.yaml")
    terms = e.text("terms")
    if (lic is None) == (terms is None):
        e.fail("terms", "a generator needs exactly one of `license` (an open licence) or `terms` (a service's)")
    return Generator(
        id=e.text("id", required=True) or "",
        name=e.text("name", required=True) or "",
        names=tuple(n.lower() for n in e.strings("names")),
        license=lic,
        terms=terms,
        clause=e.text("clause", required=terms is not None),
        url=e.text("url"),
        cite=e.text("cite", required=True) or "",
    )


def _known_dataset(e: _Entry, kb: KnowledgeBase, generators: dict[str, Generator]) -> KnownDataset:
    cite = {str(k): str(v) for k, v in e.mapping("cite").items()}
    lic = e.text("license")
    if lic is not None and lic != DATASET_LICENSE_NONE and lic not in kb.licenses:
        e.fail("license", f"{lic!r} is not a licence id of rules/licenses.yaml (nor {DATASET_LICENSE_NONE!r})")
    sources = e.strings("source_licenses")
    for s in sources:
        if s not in kb.licenses:
            e.fail("source_licenses", f"{s!r} is not a licence id of rules/licenses.yaml")
    made_by = e.strings("generated_by")
    for g in made_by:
        if g not in generators and name_match(kb, g) is None:
            e.fail("generated_by", f"{g!r} is neither a generator of rules/datasets/generators.yaml nor a known model")
    for key, present in (("license", lic), ("source_licenses", sources), ("generated_by", made_by)):
        if present and not cite.get(key, "").strip():
            e.fail("cite", f"`{key}` needs its source in cite.{key}")
    return KnownDataset(
        id=_dataset_id(e),
        names=tuple(n.lower() for n in e.strings("names")),
        license=lic,
        source_licenses=sources,
        generated_by=made_by,
        cite=cite,
        source=f"rules/{e.file}",
    )


# The Hub's first datasets had no owner (gsm8k, squad, glue): it still serves them under those ids, and cards and the
# Data Provenance Initiative's annotations name them so.
_LEGACY_DATASET_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def _dataset_id(e: _Entry) -> str:
    value = e.text("id", required=True) or ""
    if not (_REPO_ID.match(value) or _LEGACY_DATASET_ID.match(value)):
        e.fail("id", f"expected an OWNER/NAME Hub id or an owner-less legacy dataset id, got {value!r}")
    return value


def _output_terms(e: _Entry, kb: KnowledgeBase) -> OutputTerms:
    lic = e.text("license", required=True) or ""
    if lic not in kb.licenses:
        e.fail("license", f"{lic!r} is not a licence id of rules/licenses.yaml")
    applies = e.strings("applies")
    if not applies or not set(applies) <= set(OUTPUT_TERMS):
        e.fail("applies", f"expected a list of {', '.join(OUTPUT_TERMS)}, got {list(applies)!r}")
    return OutputTerms(lic, applies, e.text("clause", required=True) or "", e.text("cite", required=True) or "")


@functools.cache
def dataset_knowledge() -> DatasetKnowledge:
    kb = knowledge_base()
    generators: dict[str, Generator] = {}
    output_terms: dict[str, OutputTerms] = {}
    folder = data_dir("rules") / "datasets"
    if (folder / "generators.yaml").is_file():
        for e in _entries("datasets/generators.yaml", "generators"):
            g = _generator(e, kb)
            if g.id in generators:
                e.fail("id", f"{g.id!r} is listed twice")
            generators[g.id] = g
        for e in _entries("datasets/generators.yaml", "output_terms"):
            t = _output_terms(e, kb)
            output_terms[t.license] = t
    datasets: dict[str, KnownDataset] = {}
    for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
        if path.name == "generators.yaml":
            continue
        for e in _entries(f"datasets/{path.name}", "datasets"):
            d = _known_dataset(e, kb, generators)
            for key in (d.id.lower(), *d.names):
                if (first := datasets.get(key)) is not None:
                    e.fail("names", f"{key} is already listed by {first.id} ({first.source})")
                datasets[key] = d
    return DatasetKnowledge(datasets, generators, output_terms)
