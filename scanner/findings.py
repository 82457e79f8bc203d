"""The finding: what every check produces and every report renders (the JSON contract in DESIGN.md)."""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any


class Severity(IntEnum):
    info = 0
    low = 1
    medium = 2
    high = 3
    critical = 4

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls[text.strip().lower()]
        except KeyError:
            raise ValueError(f"unknown severity {text!r} (expected one of: {', '.join(s.name for s in cls)})") from None


FAMILIES = ("license", "card", "attribution", "config", "tokenizer", "weights", "code", "security", "source")


_NUMBER = re.compile(r"\d+(?:\.\d+)?(?:e-?\d+)?")
ALIAS_PLACEHOLDER = "\x00target\x00"


def stable_message(message: str, aliases: Iterable[str] = ()) -> str:
    """`message` as it takes part in a finding's key: aliases replaced, lower case, numbers blanked, one space."""
    s = message
    for a in sorted({a for a in aliases if a}, key=len, reverse=True):
        s = s.replace(a, ALIAS_PLACEHOLDER)
    return re.sub(r"\s+", " ", _NUMBER.sub("0", s.lower())).strip()


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

    def key(self, target: str, aliases: Iterable[str] = ()) -> str:
        """The finding's identity across runs and revisions ("the same finding"): sha256 of rule | target | path |
        message, the message lower-cased with numbers blanked (scores, sizes and p-values move without the finding
        changing) and `aliases` (a model folder's old and new names) replaced by one placeholder. The line is not
        part of it, so a card that grew a paragraph keeps its findings. SARIF's partialFingerprints, the sweep
        history and pull-request new-vs-existing all use this key."""
        raw = "|".join((self.rule, target, self.path or "", stable_message(self.message, aliases)))
        return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()  # names may hold lone surrogates

    def coarse_key(self, target: str) -> str:
        """rule | target | path: the second-pass identity for a finding whose wording changed (the form history
        databases have always stored, so their older rows still pair)."""
        raw = "\x1f".join((self.rule, target, self.path or ""))
        return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()[:32]

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


def match_keys(head: Sequence[tuple[str, str]], base: Sequence[tuple[str, str]]) -> tuple[list[bool], list[bool]]:
    """Which (key, coarse key) items of `head` and of `base` have a partner on the other side. Exact keys pair
    first, then coarse keys among what is left; both passes are multisets (two identical findings on the base and
    three on the head leave one new)."""
    head_hit = [False] * len(head)
    base_hit = [False] * len(base)
    for which in (0, 1):
        waiting: dict[str, list[int]] = defaultdict(list)
        for j, item in enumerate(base):
            if not base_hit[j]:
                waiting[item[which]].append(j)
        for i, item in enumerate(head):
            if not head_hit[i] and waiting.get(item[which]):
                base_hit[waiting[item[which]].pop(0)] = True
                head_hit[i] = True
    return head_hit, base_hit


@dataclass(frozen=True)
class DiffEntry:
    """One finding of a run compared with the previous run (the rows of `sweep --diff-json`)."""

    target: str
    key: str
    rule: str
    severity: Severity
    message: str
    path: str | None = None
    line: int | None = None

    @classmethod
    def of(cls, target: str, f: Finding) -> DiffEntry:
        return cls(target, f.key(target), f.rule, f.severity, f.message, f.path, f.line)

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "key": self.key,
            "rule": self.rule,
            "severity": self.severity.name,
            "message": self.message,
            "path": self.path,
            "line": self.line,
        }


@dataclass
class RunDiff:
    """What is new, fixed and unchanged since the previous run; targets unreadable this time (`unverified`: their
    findings are neither new nor fixed), gone (`removed`) and first seen (`added`)."""

    previous_run: int | None
    new: list[DiffEntry] = field(default_factory=list)
    fixed: list[DiffEntry] = field(default_factory=list)
    unchanged: list[DiffEntry] = field(default_factory=list)
    unverified: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    run: int | None = None  # this run's id once recorded

    def summary(self) -> str:
        base = f"run #{self.previous_run}" if self.previous_run else "no previous run"
        return f"{len(self.new)} new, {len(self.fixed)} fixed, {len(self.unchanged)} unchanged (compared with {base})"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "previous_run": self.previous_run,
            "new": [e.to_json() for e in self.new],
            "fixed": [e.to_json() for e in self.fixed],
            "unchanged": [e.to_json() for e in self.unchanged],
            "unverified": self.unverified,
            "removed": self.removed,
            "added": self.added,
        }
        if self.run is not None:
            out["run"] = self.run
        return out
