"""The knowledge base: rule catalogue, licences and upstream models, loaded from the data files in rules/."""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

import scanner
from scanner.findings import Severity


def data_dir(kind: str) -> Path:
    """rules/ or templates/: inside the package in a wheel, at the repo root in a checkout."""
    packaged = Path(scanner.__file__).parent / "_data" / kind
    return packaged if packaged.is_dir() else Path(scanner.__file__).parent.parent / kind


def _load(name: str) -> Any:
    with open(data_dir("rules") / name, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


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

    def allows_outbound(self, other: str) -> bool:
        return self.outbound == "any" or other in (self.outbound or ())


@dataclass(frozen=True)
class Upstream:
    id: str
    family: str
    license: str
    config: dict[str, Any]
    special_tokens: dict[str, int] = field(default_factory=dict)


@functools.cache
def catalogue() -> dict[str, Rule]:
    rules = {}
    for r in _load("catalogue.yaml")["rules"]:
        rules[r["id"]] = Rule(r["id"], Severity.parse(r["severity"]), r["title"], r["doc"], r["fix"])
    return rules


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


class KnowledgeBase:
    def __init__(self, licenses: list[License], upstreams: list[Upstream]):
        self.licenses = {lic.id: lic for lic in licenses}
        self.upstreams = {u.id.lower(): u for u in upstreams}
        self._by_name: dict[str, License] = {}
        for lic in licenses:
            for key in (lic.id, lic.hub_id if lic.hub_id != "other" else None, lic.spdx, *lic.license_names):
                if key:
                    self._by_name.setdefault(key.lower(), lic)

    def license(self, key: str | None) -> License | None:
        return self._by_name.get(key.strip().lower()) if isinstance(key, str) else None

    def upstream(self, repo_id: str) -> Upstream | None:
        return self.upstreams.get(repo_id.strip().lower()) if isinstance(repo_id, str) else None

    def detect_license_text(self, text: str) -> License | None:
        """The most specific licence all of whose markers occur in `text`."""
        body = normalise(text)
        best, best_n = None, 0
        for lic in self.licenses.values():
            if lic.markers and all(normalise(m) in body for m in lic.markers) and len(lic.markers) > best_n:
                best, best_n = lic, len(lic.markers)
        return best


@functools.cache
def knowledge_base() -> KnowledgeBase:
    licenses = []
    for e in _load("licenses.yaml")["licenses"]:
        licenses.append(License(
            id=e["id"], hub_id=e.get("hub_id") or e["id"], name=e.get("name") or e["id"], kind=e.get("kind", ""),
            spdx=e.get("spdx"), url=e.get("url"), commercial=e.get("commercial"), derivatives=e.get("derivatives"),
            outbound=e.get("outbound", "any"), conditions=e.get("conditions") or {},
            markers=tuple(e.get("markers") or ()), license_names=tuple(n.lower() for n in e.get("license_names") or ()),
        ))
    upstreams = []
    entries = [e for f in sorted((data_dir("rules") / "upstreams").glob("*.yaml")) for e in _load(f"upstreams/{f.name}")["upstreams"]]
    for e in entries:
        tokens = {str(k): int(v) for k, v in (e.get("special_tokens") or {}).items()}
        upstreams.append(Upstream(e["id"], e.get("family", ""), e.get("license", "unknown"), e.get("config") or {}, tokens))
    return KnowledgeBase(licenses, upstreams)


_VARIANT_SUFFIXES = ("-instruct", "-chat", "-hf", "-it", "-base", "-sft", "-bf16", "-pt")


def resolve_upstream(kb: KnowledgeBase, repo_id: str) -> Upstream | None:
    """A declared base model in the knowledge base, tolerating chat/instruct variants of a listed base."""
    hit = kb.upstream(repo_id)
    if hit or not isinstance(repo_id, str):
        return hit
    name = repo_id.strip().lower()
    changed = True
    while changed:
        changed = False
        for suffix in _VARIANT_SUFFIXES:
            if name.endswith(suffix):
                name = name[: -len(suffix)]
                changed = True
                if (hit := kb.upstream(name)) is not None:
                    return hit
    tail = name.rsplit("/", 1)[-1]
    for key, up in kb.upstreams.items():
        base = key.rsplit("/", 1)[-1]
        for suffix in _VARIANT_SUFFIXES:
            base = base.removesuffix(suffix)
        if base == tail:
            return up
    return None
