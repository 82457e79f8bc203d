"""What `originscan watch` found, typed: the watched models, each suspect with its weight verdict, the run's counts,
and the JSON report (`watch --format json`; shards' reports are merged from it). Below report/, which renders it
(scanner/report/watch.py), and below scanner/watch.py, which fills it."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scanner.errors import UsageError
from scanner.provenance.result import OUTCOMES, Verdict, evidence_from_json

if TYPE_CHECKING:  # the statistics module loads numpy: only `watch --probe` and a report with probes need it
    from scanner.provenance.behaviour import BehaviourVerdict

DECLARED_BASES = "declared-bases"  # the report's evidence item listing the bases a suspect's card names


@dataclass(frozen=True)
class Watched:
    name: str
    target: str
    license: str | None
    key: str  # fingerprint content key
    kind: str  # rows | hashes
    hidden: int | None
    vocab: int | None

    @property
    def repo_id(self) -> str | None:
        """The Hub repo id of a watched `hf:` target (revision dropped)."""
        if not self.target.startswith("hf:"):
            return None
        return self.target[3:].split("@", 1)[0]


MAX_EVIDENCE = 20  # evidence items of a suspect's verdict the report keeps (per-layer vectors can be hundreds)


@dataclass
class Suspect:
    """A listed repo whose weights derive from a watched model: the verdict itself, and whether its card says so."""

    repo: str
    revision: str | None
    watched: str
    watched_target: str
    verdict: Verdict  # suspect hf:REPO, reference the watched model's registered name
    declared: bool
    declared_as: list[str]  # the bases its card names that are the watched model or a declared derivative of it
    declared_bases: list[str]  # every base its card names
    links: dict[str, str]

    @property
    def status(self) -> str:
        return "declared" if self.declared else "undeclared"

    def to_json(self) -> dict[str, Any]:
        """The report's suspect: the verdict's fields flattened in, its first MAX_EVIDENCE evidence items and the
        card's declared bases as one more item."""
        v = self.verdict
        evidence = [e.to_json() for e in v.evidence[:MAX_EVIDENCE]]
        evidence.append({"kind": DECLARED_BASES, "bases": self.declared_bases})
        return {
            "repo": self.repo,
            "revision": self.revision,
            "watched": self.watched,
            "watched_target": self.watched_target,
            "verdict": v.verdict,
            "p_value": v.p_value,
            "log10_p_value": v.log10_p_value,
            "score": v.score,
            "declared": self.declared,
            "declared_as": self.declared_as,
            "evidence": evidence,
            "reason": v.reason,
            "bytes_read": v.bytes_read,
            "links": self.links,
            "status": self.status,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Suspect:
        """A suspect of a JSON report (shards to merge). ValueError when it does not fit. The verdict keeps what
        the report holds: not the weight bytes of the two models, nor the seconds."""
        try:
            items = list(d["evidence"])
            bases = next((list(e["bases"]) for e in items if e.get("kind") == DECLARED_BASES), [])
            verdict = Verdict(
                f"hf:{d['repo']}",
                str(d["watched"]),
                d["verdict"],
                float(d["p_value"]),
                float(d["score"]),
                int(d["bytes_read"]),
                0,
                tuple(evidence_from_json(e) for e in items if e.get("kind") != DECLARED_BASES),
                str(d["reason"]),
                log10_p_value=float(d["log10_p_value"]),
            )
            if verdict.verdict not in OUTCOMES:
                raise ValueError(f"verdict {verdict.verdict!r}")
            return cls(
                str(d["repo"]),
                d["revision"],
                str(d["watched"]),
                str(d["watched_target"]),
                verdict,
                bool(d["declared"]),
                list(d["declared_as"]),
                bases,
                dict(d["links"]),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"a suspect lacks required fields ({type(exc).__name__}: {exc})") from None


WEIGHTS_DERIVED = "derived"  # Probed.weights: the repo is a weight suspect of the watched model
WEIGHTS_NO_MATCH = "no match"  # … or the weight screen found nothing


@dataclass
class Probed:
    """`watch --probe`: a repo run against a watched model's behaviour (scanner/watch_probe.py). A weight suspect
    gets the behaviour test beside its weight verdict; a repo the weight screen cleared gets the owner's canaries."""

    repo: str
    revision: str | None
    watched: str
    weights: str  # WEIGHTS_DERIVED | WEIGHTS_NO_MATCH
    declared: bool  # its card names the watched model (or a declared derivative of it)
    behaviour: BehaviourVerdict | None  # None: not probed, `skipped` says why
    skipped: str | None = None

    @property
    def undeclared_behaviour(self) -> bool:
        """Found by its behaviour alone, and its card does not say so."""
        return (
            self.weights != WEIGHTS_DERIVED
            and not self.declared
            and self.behaviour is not None
            and self.behaviour.verdict == "derived"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "repo": self.repo,
            "revision": self.revision,
            "watched": self.watched,
            "weights": self.weights,
            "declared": self.declared,
            "behaviour": self.behaviour.to_json() if self.behaviour else None,
            "skipped": self.skipped,
        }

    @classmethod
    def from_json(cls, d: Any) -> Probed:
        """ValueError when it does not fit (a shard's report may come from anywhere)."""
        from scanner.provenance.behaviour import verdict_from_json

        if not isinstance(d, dict):
            raise ValueError("a probed repo is not an object")
        try:
            weights = d["weights"]
            if weights not in (WEIGHTS_DERIVED, WEIGHTS_NO_MATCH):
                raise ValueError(f"weights {str(weights)[:40]!r}")
            skipped = d.get("skipped")
            return cls(
                str(d["repo"]),
                None if d.get("revision") is None else str(d["revision"]),
                str(d["watched"]),
                weights,
                bool(d["declared"]),
                verdict_from_json(d["behaviour"]) if d.get("behaviour") is not None else None,
                None if skipped is None else str(skipped),
            )
        except KeyError as exc:
            raise ValueError(f"a probed repo lacks {exc}") from None


@dataclass
class WatchStats:
    """What a run looked at and what that cost."""

    listed: int = 0  # listing rows read (this shard's and others')
    in_shard: int = 0
    unchanged: int = 0  # judged before at the same sha: 0 requests
    evaluated: int = 0
    ruled_out: dict[str, int] = field(default_factory=lambda: {"listing": 0, "config": 0, "header": 0, "rows": 0})
    errors: int = 0
    requests: int = 0
    weight_bytes_read: int = 0
    compared: int = 0
    seconds: float = 0.0


@dataclass
class WatchReport:
    """One watch run (or the merge of a run's shards): what was watched, what was found, what it cost."""

    watched: list[Watched]
    shard: str | None
    started: str
    complete: bool = False
    stopped: str | None = None
    watermark: str | None = None
    stats: WatchStats = field(default_factory=WatchStats)
    suspects: list[Suspect] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)
    probed: list[Probed] | None = None  # None: the run was not asked to probe (`watch --probe`)

    def to_json(self) -> dict[str, Any]:
        from scanner import __version__

        probed = {} if self.probed is None else {"probed": [p.to_json() for p in self.probed]}
        return {
            "tool": "originscan",
            "version": __version__,
            "kind": "watch",
            "shard": self.shard,
            "started": self.started,
            "complete": self.complete,
            "stopped": self.stopped,
            "watermark": self.watermark,
            "watched": [
                {
                    "name": w.name,
                    "target": w.target,
                    "license": w.license,
                    "kind": w.kind,
                    "hidden": w.hidden,
                    "vocab": w.vocab,
                }
                for w in self.watched
            ],
            "stats": asdict(self.stats),
            "suspects": [s.to_json() for s in self.ordered_suspects()],
            "errors": self.errors,
            **probed,
        }

    def ordered_suspects(self) -> list[Suspect]:
        """As every format lists them: undeclared first, then by repo and watched model."""
        return sorted(self.suspects, key=lambda s: (s.declared, s.repo, s.watched))

    @property
    def undeclared(self) -> list[Suspect]:
        return [s for s in self.suspects if not s.declared]

    @property
    def undeclared_behaviour(self) -> list[Probed]:
        """Repos whose weights did not match but whose behaviour did, with no card saying so."""
        return [p for p in self.probed or [] if p.undeclared_behaviour]

    def behaviour_of(self, suspect: Suspect) -> Probed | None:
        return next(
            (p for p in self.probed or [] if (p.repo, p.watched) == (suspect.repo, suspect.watched)),
            None,
        )

    @classmethod
    def from_json(cls, doc: Any) -> WatchReport:
        """A report `watch --format json` wrote (a shard's, to merge). ValueError when it is not one."""
        if not isinstance(doc, dict) or doc.get("kind") != "watch" or not isinstance(doc.get("suspects"), list):
            raise ValueError("not an originscan watch JSON report")
        try:
            watched = [
                Watched(str(w["name"]), str(w["target"]), w["license"], "", str(w["kind"]), w["hidden"], w["vocab"])
                for w in doc.get("watched") or []
            ]
            raw = dict(doc.get("stats") or {})
            stats = WatchStats(**{f.name: raw[f.name] for f in fields(WatchStats) if f.name in raw})
            errors = [{"repo": str(e["repo"]), "message": str(e["message"])} for e in doc.get("errors") or []]
            probed = doc.get("probed")
            if probed is not None and not isinstance(probed, list):
                raise ValueError("probed is not a list")
            return cls(
                watched,
                doc.get("shard"),
                str(doc.get("started") or ""),
                bool(doc.get("complete")),
                doc.get("stopped"),
                doc.get("watermark"),
                stats,
                [Suspect.from_json(s) for s in doc["suspects"]],
                errors,
                None if probed is None else [Probed.from_json(p) for p in probed],
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"a field is missing or of another type ({type(exc).__name__}: {exc})") from None


def merge_reports(reports: list[WatchReport]) -> WatchReport:
    """One report from the shards' reports: suspects and errors joined, counts added (the listing, which every
    shard reads whole and side by side, and the seconds as the largest), complete only if every shard was."""
    if not reports:
        raise UsageError("watch --merge: no shard reports given")
    first = reports[0]
    stops = [(f"shard {r.shard}: " if r.shard else "") + r.stopped for r in reports if r.stopped]
    stats = WatchStats(ruled_out={})
    for r in reports:
        for f in fields(WatchStats):
            mine, theirs = getattr(stats, f.name), getattr(r.stats, f.name)
            if isinstance(theirs, dict):
                setattr(stats, f.name, {k: mine.get(k, 0) + v for k, v in theirs.items()})
            elif f.name in ("listed", "seconds"):
                setattr(stats, f.name, max(mine, theirs))
            else:
                setattr(stats, f.name, mine + theirs)
    suspects: dict[tuple[str, str], Suspect] = {}
    for r in reports:
        for s in r.suspects:
            suspects.setdefault((s.repo, s.watched), s)
    probed: dict[tuple[str, str], Probed] | None = None
    for r in reports:
        if r.probed is not None:
            probed = probed or {}
            for p in r.probed:
                probed.setdefault((p.repo, p.watched), p)
    return WatchReport(
        first.watched,
        None,
        first.started,
        all(r.complete for r in reports),
        "; ".join(stops) or None,
        first.watermark,
        stats,
        list(suspects.values()),
        [e for r in reports for e in r.errors],
        None if probed is None else list(probed.values()),
    )


def load_report(path: str | os.PathLike[str]) -> WatchReport:
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: not a watch report ({type(exc).__name__})") from None
    if not isinstance(doc, dict) or doc.get("kind") != "watch" or not isinstance(doc.get("suspects"), list):
        raise UsageError(f"{path}: not an originscan watch JSON report")
    try:
        return WatchReport.from_json(doc)
    except ValueError as exc:
        raise UsageError(f"{path}: a suspect or probed repo in it does not read ({str(exc)[:200]})") from None


__all__ = [
    "DECLARED_BASES",
    "MAX_EVIDENCE",
    "Probed",
    "WEIGHTS_DERIVED",
    "WEIGHTS_NO_MATCH",
    "Suspect",
    "WatchReport",
    "WatchStats",
    "Watched",
    "load_report",
    "merge_reports",
]
