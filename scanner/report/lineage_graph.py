"""A target's lineage as a small graph (this model → declared and inferred upstreams), and its layout for the HTML
report's inline SVG.

The graph is read from the scan's facts: `Lineage.candidates` (scanner/evidence/lineage.py) with their evidence, the
weight verdicts and the code matches. Each upstream node says how this model relates to it (fine-tune, adapter,
quantization, merge, copy), its licence, and how strong the evidence is (declared only, config, tokenizer, weights
with their p-value, code). The AI-BOM exports read the same `Link`s.

The layout is a plain layered one, hand-written because it is forty lines and a graph library (graphviz, ELK) would
mean a binary or JavaScript in a page that must work without either: one column per hop, nodes ordered by the
average position of the nodes that point at them, widths from the label lengths in a monospace font.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from scanner.findings import TargetFacts

# evidence classes, weakest first; `Link.strength` is the strongest present
STRENGTHS = ("declared only", "config", "tokenizer", "code", "weights")
_CLASS = {
    "declared": "declared only",
    "adapter": "declared only",
    "name": "declared only",
    "base-card": "declared only",
    "gguf": "declared only",
    "config": "config",
    "config-vocab": "config",
    "tokenizer": "tokenizer",
    "weights": "weights",
    "code": "code",
}
_CARD_RELATION = {"adapter": "adapter", "merge": "merge", "quantized": "quantization", "finetune": "fine-tune"}
UNKNOWN_LICENSE = "unknown"


@dataclass(frozen=True)
class Proof:
    """One piece of evidence for a link, in the report's words."""

    strength: str  # one of STRENGTHS
    label: str  # short: "weights p=1e-42", "config"
    detail: str  # one sentence


@dataclass
class Link:
    """`child` derives from `parent` (both node names), as `relation`, on `proofs`."""

    child: str
    parent: str
    relation: str  # fine-tune | adapter | quantization | merge | copy
    license: str  # the parent's licence id, or UNKNOWN_LICENSE
    proofs: list[Proof] = field(default_factory=list)
    declared: bool = False  # the card (or adapter config, name, base cards) accounts for the parent
    p_value: float | None = None  # the weight verdict's, when there is one
    hops: int = 1  # distance of the parent from the scanned model

    @property
    def strength(self) -> str:
        return max((p.strength for p in self.proofs), key=STRENGTHS.index, default="declared only")

    @property
    def evidence_label(self) -> str:
        return " · ".join(dict.fromkeys(p.label for p in self.proofs)) or "declared only"


def _weight_rule(verdict: Any) -> str:
    from scanner.checks.weights import _kind  # the weights check's own copy / derivative distinction

    return _kind(verdict)


def _relation(kinds: set[str], card_relation: str | None, declared_count: int, verdict: Any, name_detail: str) -> str:
    # near-identical weights are a copy when nothing declares the base; a declared base keeps its declared relation
    rule = _weight_rule(verdict) if verdict is not None else None
    if rule == "weights.exact_copy" or (rule == "weights.disguised_copy" and not kinds & {"declared", "adapter"}):
        return "copy"
    if "adapter" in kinds:
        return "adapter"
    if "declared" in kinds and card_relation in _CARD_RELATION:
        return _CARD_RELATION[card_relation]
    if "gguf" in kinds or " re-upload of " in name_detail:
        return "quantization"
    if " mirror of " in name_detail:
        return "copy"
    if "declared" in kinds and declared_count >= 2:
        return "merge"
    return "fine-tune"


def _regions(m: Any) -> str:
    """The copied line ranges, suspect ← upstream: "; lines 3-40 ← 1-38, 52-60 ← 70-78"."""
    spans = [
        f"{r.suspect_lines[0]}-{r.suspect_lines[1]} ← {r.upstream_lines[0]}-{r.upstream_lines[1]}"
        for r in m.regions[:4]
    ]
    more = f" and {len(m.regions) - 4} more" if len(m.regions) > 4 else ""
    return f"; lines {', '.join(spans)}{more}" if spans else ""


def _p_label(p: float) -> str:
    return "p<1e-300" if p <= 0 else f"p={p:.0e}"


def lineage_links(facts: TargetFacts) -> list[Link]:
    """Every upstream link known for one target, nearest first: lineage candidates (with intermediate hops from
    the base models' own cards), declared bases the knowledge base does not know, weight verdicts and copied code
    from registered upstreams that are not candidates."""
    lineage = facts.lineage
    card_relation = facts.card.get("base_model_relation")
    card_relation = card_relation.strip().lower() if isinstance(card_relation, str) else None
    derived = {m.name.lower(): m for m in facts.weight_matches if m.verdict.verdict == "derived"}
    copied = [m for m in facts.code_matches if m.copied]
    links: list[Link] = []
    seen: set[str] = set()
    declared_count = len(lineage.declared) if lineage else 0

    def code_proofs(*names: str) -> list[Proof]:
        wanted = {n.lower() for n in names}
        return [
            Proof(
                "code",
                "code",
                f"{m.suspect_path} copies {m.upstream_path} of {m.upstream} "
                f"({m.similarity:.0%} of the file{_regions(m)})",
            )
            for m in copied
            if m.upstream.lower() in wanted
        ]

    for c in lineage.candidates if lineage else []:
        up = c.upstream
        names = {i.lower() for i in up.ids}
        if facts.name.lower() in names:  # the scanned repo is this upstream (a vendor's own release)
            continue
        verdict_match = next((derived[n] for n in names if n in derived), None)
        verdict = verdict_match.verdict if verdict_match else None
        proofs = []
        for e in c.evidence:
            label = _CLASS.get(e.kind, "declared only")
            short = e.kind if label != "declared only" else "declared"
            if e.kind == "weights" and verdict is not None:
                short = f"weights {_p_label(verdict.p_value)}"
            proofs.append(Proof(label, short, e.detail))
        proofs += code_proofs(*up.ids)
        name_ev = c.evidence_of("name")
        relation = _relation(set(c.kinds), card_relation, declared_count, verdict, name_ev.detail if name_ev else "")
        license_id = c.license.id if c.license else (up.license or UNKNOWN_LICENSE)
        chain_ev = c.evidence_of("base-card")
        chain = [str(x) for x in (chain_ev.data.get("chain") or [])] if chain_ev else []
        child = facts.name
        for hop, mid in enumerate(chain[:-1], start=1):  # declared base -> its base -> ... (cards say so)
            if mid.lower() not in seen:
                seen.add(mid.lower())
                links.append(
                    Link(
                        child,
                        mid,
                        _CARD_RELATION.get(card_relation or "", "fine-tune") if hop == 1 else "fine-tune",
                        UNKNOWN_LICENSE,
                        [Proof("declared only", "declared", f"base_model {mid} (model card)")],
                        declared=True,
                        hops=hop,
                    )
                )
            child = mid
        seen.update(names)
        links.append(
            Link(
                child,
                up.id,
                relation,
                license_id,
                proofs,
                declared=c.accounted,
                p_value=verdict.p_value if verdict else None,
                hops=max(1, len(chain)),
            )
        )
    for b in lineage.unknown_declared if lineage else []:
        if b.lower() in seen:
            continue
        seen.add(b.lower())
        relation = _CARD_RELATION.get(card_relation or "", "merge" if declared_count >= 2 else "fine-tune")
        proofs = [Proof("declared only", "declared", f"base_model {b} (not in the knowledge base)")]
        m = derived.get(b.lower())  # a registered upstream of that name: its weight verdict backs the declaration
        if m is not None:
            proofs.append(
                Proof(
                    "weights",
                    f"weights {_p_label(m.verdict.p_value)}",
                    f"the weights derive from {m.name}: {m.verdict.reason}",
                )
            )
        proofs += code_proofs(b)
        links.append(
            Link(
                facts.name,
                b,
                relation,
                (m.license if m else None) or UNKNOWN_LICENSE,
                proofs,
                declared=True,
                p_value=m.verdict.p_value if m else None,
            )
        )
    for key, m in derived.items():
        if key in seen:
            continue
        seen.add(key)
        v = m.verdict
        proofs = [Proof("weights", f"weights {_p_label(v.p_value)}", f"the weights derive from {m.name}: {v.reason}")]
        proofs += code_proofs(m.name)
        links.append(
            Link(
                facts.name,
                m.name,
                _relation(set(), None, 0, v, ""),
                m.license or UNKNOWN_LICENSE,
                proofs,
                p_value=v.p_value,
            )
        )
    for m in copied:
        if m.upstream.lower() in seen:
            continue
        seen.add(m.upstream.lower())
        links.append(Link(facts.name, m.upstream, "copy", m.license or UNKNOWN_LICENSE, code_proofs(m.upstream)))
    return links


def own_license(facts: TargetFacts) -> str:
    """The licence the scanned model declares, as written (resolved ids when the knowledge base knows them)."""
    if facts.lineage and facts.lineage.own_licenses:
        return " AND ".join(lic.id for lic in facts.lineage.own_licenses)
    value = facts.card.get("license")
    if isinstance(value, list):
        value = value[0] if value else None
    return str(value).strip() if value else "none declared"


# -- layout ------------------------------------------------------------------------------------------------------
FONT_PX = 12
CHAR_W = 7.4  # a 12 px monospace glyph is 7.2 px wide (0.6 em); a little slack
LINE_H = 16
PAD = 8
NODE_H = 3 * LINE_H + 2 * PAD
V_GAP = 18
H_GAP = 64
MARGIN = 10
MAX_CHARS = 46


def _cut(text: str, n: int = MAX_CHARS) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


@dataclass
class Box:
    """One node as drawn: its lines (already cut to fit), the full text for the tooltip, and where it sits."""

    name: str
    lines: list[str]
    title: str
    css: str  # target | declared | inferred
    x: float = 0.0
    y: float = 0.0
    w: float = 0.0
    h: float = NODE_H
    depth: int = 0


@dataclass
class Arrow:
    path: str  # SVG path data
    css: str  # strength-… class
    title: str


@dataclass
class GraphLayout:
    boxes: list[Box]
    arrows: list[Arrow]
    width: float
    height: float


def layout(facts: TargetFacts, links: list[Link]) -> GraphLayout:
    """Columns by hop (the scanned model on the left), rows by the mean row of the boxes pointing in."""
    root = Box(
        facts.name,
        [_cut(facts.name), _cut(f"licence: {own_license(facts)}"), "scanned model"],
        f"{facts.name}\nlicence: {own_license(facts)}",
        "target",
    )
    boxes = {facts.name.lower(): root}
    parents_of: dict[str, list[str]] = {}
    for link in links:
        key = link.parent.lower()
        if key not in boxes:
            lines = [
                _cut(link.parent),
                _cut(f"licence: {link.license}"),
                _cut(f"{link.relation} · {link.evidence_label}"),
            ]
            title = "\n".join(
                [link.parent, f"licence: {link.license}", f"relation: {link.relation}", f"evidence ({link.strength}):"]
                + [f"- {p.detail}" for p in link.proofs]
            )
            boxes[key] = Box(link.parent, lines, title, "declared" if link.declared else "inferred")
        parents_of.setdefault(key, []).append(link.child.lower())
    # depth: one more than the nearest child (links are listed nearest first, so children are placed already)
    for link in links:
        child = boxes.get(link.child.lower())
        box = boxes[link.parent.lower()]
        if box is not root and box.depth == 0:
            box.depth = (child.depth if child else 0) + 1
    columns: dict[int, list[Box]] = {}
    for box in boxes.values():
        columns.setdefault(box.depth, []).append(box)
    x = MARGIN
    row_of: dict[str, float] = {}
    tallest = max(len(col) for col in columns.values())
    for depth in sorted(columns):
        col = columns[depth]
        if depth:
            col.sort(
                key=lambda b: (
                    sum(row_of.get(c, 0) for c in parents_of.get(b.name.lower(), []))
                    / max(1, len(parents_of.get(b.name.lower(), []))),
                    b.name.lower(),
                )
            )
        width = max(max(len(line) for line in b.lines) * CHAR_W + 2 * PAD for b in col)
        offset = (tallest - len(col)) * (NODE_H + V_GAP) / 2
        for i, b in enumerate(col):
            b.x, b.w = x, width
            b.y = MARGIN + offset + i * (NODE_H + V_GAP)
            row_of[b.name.lower()] = i + offset / (NODE_H + V_GAP)
        x += width + H_GAP
    arrows = []
    for link in links:
        a, b = boxes.get(link.child.lower()), boxes[link.parent.lower()]
        if a is None:
            continue
        x1, y1 = a.x + a.w, a.y + a.h / 2
        x2, y2 = b.x - 4, b.y + b.h / 2
        mid = (x1 + x2) / 2
        arrows.append(
            Arrow(
                f"M{x1:.1f},{y1:.1f} C{mid:.1f},{y1:.1f} {mid:.1f},{y2:.1f} {x2:.1f},{y2:.1f}",
                "strength-" + link.strength.split()[0],
                f"{link.child} → {link.parent}: {link.relation} ({link.strength})",
            )
        )
    height = MARGIN * 2 + tallest * (NODE_H + V_GAP) - V_GAP
    return GraphLayout(list(boxes.values()), arrows, x - H_GAP + MARGIN, height)


__all__ = ["STRENGTHS", "Box", "GraphLayout", "Link", "Proof", "layout", "lineage_links", "own_license"]
