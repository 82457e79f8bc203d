"""A target's lineage as a small graph (this model → declared and inferred upstreams), and its layout for the HTML
report's inline SVG. Beside the model upstreams it draws the data upstreams: the datasets the model was trained on
(scanner/evidence/datasets.py), the datasets their cards name as sources, and the models or services that generated
them, each box with the terms that follow the data.

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
from typing import TYPE_CHECKING, Any

from scanner.knowledge import name_match
from scanner.provenance.result import Verdict
from scanner.report.sanitize import visible
from scanner.results import TargetFacts

if TYPE_CHECKING:  # numpy: a report without behaviour verdicts loads none of it
    from scanner.provenance.behaviour import BehaviourVerdict

# evidence classes, weakest first; `Link.strength` is the strongest present
STRENGTHS = ("declared only", "config", "tokenizer", "code", "behaviour", "weights")
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
    "behaviour": "behaviour",
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
    p_value: float | None = None  # the weight verdict's, else the behaviour verdict's, when there is one
    hops: int = 1  # distance of the parent from the scanned model

    @property
    def strength(self) -> str:
        return max((p.strength for p in self.proofs), key=STRENGTHS.index, default="declared only")

    @property
    def p_label(self) -> str:
        return p_text(self.p_value) if self.p_value is not None else ""

    @property
    def evidence_label(self) -> str:
        return " · ".join(dict.fromkeys(p.label for p in self.proofs)) or "declared only"


def _relation(
    kinds: set[str], card_relation: str | None, declared_count: int, verdict: Verdict | None, name_detail: str
) -> str:
    # near-identical weights are a copy when nothing declares the base; a declared base keeps its declared relation
    weights = verdict.relation if verdict is not None else None
    if weights == "copy" or (weights == "disguised copy" and not kinds & {"declared", "adapter"}):
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


def p_text(p: float) -> str:
    """A p-value as every report part writes it: "p=2.1e-33"; an underflow (an exact copy) as "p<1e-300"."""
    return "p<1e-300" if p <= 0 else f"p={p:.1e}"


def lineage_links(facts: TargetFacts) -> list[Link]:
    """Every upstream link known for one target, nearest first: lineage candidates (with intermediate hops from
    the base models' own cards), declared bases the knowledge base does not know, weight verdicts and copied code
    from registered upstreams that are not candidates."""
    lineage = facts.lineage
    card_relation = facts.card.get("base_model_relation")
    card_relation = card_relation.strip().lower() if isinstance(card_relation, str) else None
    derived = {m.name.lower(): m for m in facts.weight_matches if m.verdict.verdict == "derived"}
    copied = [m for m in facts.code_matches if m.copied]
    behaving = {v.reference_id.lower(): v for v in facts.behaviour_verdicts if v.verdict == "derived"}
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

    def behaviour_of(*names: str) -> BehaviourVerdict | None:
        return next((behaving[n.lower()] for n in names if n.lower() in behaving), None)

    def behaviour_proofs(v: BehaviourVerdict | None) -> list[Proof]:
        if v is None:
            return []
        return [
            Proof(
                "behaviour",
                f"behaviour {p_text(v.p_value)}",
                f"the model behaves like a derivative of {v.reference_id} (originscan probe): {v.reason}",
            )
        ]

    # the knowledge-base upstream each derived behaviour verdict's reference names (an id, an alias, a mirror, …)
    behaving_upstream = {
        h.upstream.id: v for v in behaving.values() if lineage and (h := name_match(lineage.kb, v.reference_id))
    }
    for c in lineage.candidates if lineage else []:
        up = c.upstream
        names = {i.lower() for i in up.ids}
        if facts.name.lower() in names:  # the scanned repo is this upstream (a vendor's own release)
            continue
        verdict_match = next((derived[n] for n in names if n in derived), None)
        verdict = verdict_match.verdict if verdict_match else None
        behaviour = behaviour_of(*up.ids) or behaving_upstream.get(up.id)
        if behaviour is not None:
            seen.add(behaviour.reference_id.lower())
        proofs = []
        for e in c.evidence:
            label = _CLASS.get(e.kind, "declared only")
            short = e.kind if label != "declared only" else "declared"
            if e.kind == "weights" and verdict is not None:
                short = f"weights {p_text(verdict.p_value)}"
            if e.kind == "behaviour" and behaviour is not None:
                continue  # the verdict's own proof below says more
            proofs.append(Proof(label, short, e.detail))
        proofs += code_proofs(*up.ids) + behaviour_proofs(behaviour)
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
                p_value=verdict.p_value if verdict else (behaviour.p_value if behaviour else None),
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
                    f"weights {p_text(m.verdict.p_value)}",
                    f"the weights derive from {m.name}: {m.verdict.reason}",
                )
            )
        behaviour = behaviour_of(b)
        proofs += code_proofs(b) + behaviour_proofs(behaviour)
        links.append(
            Link(
                facts.name,
                b,
                relation,
                (m.license if m else None) or UNKNOWN_LICENSE,
                proofs,
                declared=True,
                p_value=m.verdict.p_value if m else (behaviour.p_value if behaviour else None),
            )
        )
    for key, m in derived.items():
        if key in seen:
            continue
        seen.add(key)
        v = m.verdict
        proofs = [Proof("weights", f"weights {p_text(v.p_value)}", f"the weights derive from {m.name}: {v.reason}")]
        proofs += code_proofs(m.name) + behaviour_proofs(behaviour_of(m.name))
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
    for key, bv in behaving.items():  # a reference nothing else links: the probe's verdict alone
        if key in seen:
            continue
        seen.add(key)
        links.append(
            Link(
                facts.name,
                bv.reference_id,
                "fine-tune",
                UNKNOWN_LICENSE,
                behaviour_proofs(bv) + code_proofs(bv.reference_id),
                p_value=bv.p_value,
            )
        )
    for cm in copied:
        if cm.upstream.lower() in seen:
            continue
        seen.add(cm.upstream.lower())
        links.append(Link(facts.name, cm.upstream, "copy", cm.license or UNKNOWN_LICENSE, code_proofs(cm.upstream)))
    return links


# -- training data ---------------------------------------------------------------------------------------------
DATA_RELATION = "trained on"  # the model's edge to a dataset its card names
SOURCE_RELATION = "built from"  # a dataset's edge to a dataset its own card names as a source
GENERATED_RELATION = "generated by"
NO_LICENSE = "none (published without a licence)"


@dataclass(frozen=True)
class DataLink:
    """`child` (the scanned model, or the dataset whose card names this one as a source) draws on dataset `dataset`,
    whose terms are `license` and `sources`; `generators` made its content."""

    child: str
    dataset: str
    relation: str  # DATA_RELATION | SOURCE_RELATION
    license: str  # licence ids as published, NO_LICENSE or UNKNOWN_LICENSE
    sources: tuple[str, ...]  # licences its own sources impose where they differ
    generators: tuple[tuple[str, str], ...]  # (generator as named, the terms or licence its outputs carry)
    found: str  # where the model card (or the parent dataset's card) names it


def data_links(facts: TargetFacts) -> list[DataLink]:
    """The scanned model's data upstreams, nearest first, with their terms (one per dataset; the model card's own
    datasets before the source datasets their cards name)."""
    out = []
    for d in facts.datasets:
        if d.licenses:
            lic = " AND ".join(x.id for x in d.licenses)
        else:
            lic = NO_LICENSE if d.unlicensed else UNKNOWN_LICENSE
        made_by = tuple(
            (g.name, g.license.id if g.license is not None else (g.terms or UNKNOWN_LICENSE)) for g in d.generators
        )
        first = d.found[0] if d.found else None
        where = (first.place + (f", line {first.line}" if first.line else "")) if first else ""
        out.append(
            DataLink(
                d.via or facts.name,
                d.id,
                SOURCE_RELATION if d.via else DATA_RELATION,
                lic,
                tuple(x.id for x in d.source_licenses if x.id not in lic.split(" AND ")),
                made_by,
                where,
            )
        )
    return out


def own_license(facts: TargetFacts) -> str:
    """The licence the scanned model declares, as written (resolved ids when the knowledge base knows them)."""
    if facts.lineage and facts.lineage.own_licenses:
        return " AND ".join(lic.id for lic in facts.lineage.own_licenses)
    value = facts.card.get("license")
    if isinstance(value, list):
        value = value[0] if value else None
    return str(value).strip() if value else "none declared"


def concluded_licenses(facts: TargetFacts) -> list[str]:
    """The licences that govern the model as this scan concludes: what it declares (placeholders such as `other`
    left out) and every licence its lineage binds it to (scanner/evidence/lineage.py: obligations). Empty when
    neither is known."""
    ids: list[str] = []
    if facts.lineage is not None:
        ids += [lic.id for lic in facts.lineage.own_licenses if not lic.is_placeholder]
        ids += [ob.license.id for ob in facts.lineage.obligations()]
    raw = own_license(facts)
    placeholder = facts.lineage.kb.license(raw) if facts.lineage is not None else None
    if not ids and raw != "none declared" and not (placeholder and placeholder.is_placeholder):
        ids.append(raw)  # a licence the knowledge base does not know, as the card writes it ("other" says nothing)
    return list(dict.fromkeys(ids))


def concluded_license(facts: TargetFacts) -> str:
    return " AND ".join(concluded_licenses(facts)) or UNKNOWN_LICENSE


# -- layout ------------------------------------------------------------------------------------------------------
FONT_PX = 12
CHAR_W = 7.4  # a 12 px monospace glyph is 7.2 px wide (0.6 em); a little slack
LINE_H = 16
PAD = 8
V_GAP = 18
MIN_GAP = 64  # between columns; wider when an edge label needs it
MARGIN = 10
WRAP = 40  # characters per label line: longer text wraps onto more lines, it is never cut

NODE_KINDS = (
    ("target", "the scanned model"),
    ("declared", "declared upstream: its card, adapter config or name says so"),
    ("inferred", "inferred upstream: found by the evidence, not declared"),
    ("data", "training data: a dataset the card (or a dataset's card) names, with its licence"),
    ("generator", "the model or service that generated training data, with the terms its outputs carry"),
)
EDGE_KINDS = (
    ("strength-declared", "declared only: nothing measured backs it"),
    ("strength-config", "the config matches"),
    ("strength-tokenizer", "the tokenizer matches"),
    ("strength-code", "modelling code copied from it"),
    ("strength-behaviour", "it behaves like a derivative of it: originscan probe (p-value in the box)"),
    ("strength-weights", "the weights derive from it (p-value in the box)"),
    ("data-used", "trained on this dataset, or a dataset built from it"),
    ("data-generated", "the dataset was generated by it"),
)


def wrap(text: str, width: int = WRAP, separator: str = " ") -> list[str]:
    """`text` as the page shows it (control characters made visible) on lines of at most `width` characters,
    broken at `separator` where it can be and inside a long word only when it must (after "/", "-" or "_" when
    there is one): every character is kept."""
    lines: list[str] = []
    for word in visible(text).split(separator):
        joined = f"{lines[-1]}{separator}{word}" if lines else word
        if lines and len(joined) <= width:
            lines[-1] = joined
            continue
        while len(word) > width:
            cut = max(word.rfind(ch, 0, width) for ch in "/-_") + 1 or width
            lines.append(word[:cut])
            word = word[cut:]
        lines.append(word)
    return lines or [""]


@dataclass
class Box:
    """One node as drawn: its lines (wrapped, complete), the full text for the tooltip, and where it sits."""

    name: str
    lines: list[str]
    title: str
    css: str  # target | declared | inferred | data | generator
    key: str = ""  # unique in the graph (a dataset and a model may share a name)
    x: float = 0.0
    y: float = 0.0
    w: float = 0.0
    h: float = 0.0
    depth: int = 0


@dataclass
class Arrow:
    path: str  # SVG path data
    css: str  # strength-… class
    title: str
    label: str  # the relation, written on the edge
    label_x: float = 0.0  # the label's centre
    label_y: float = 0.0
    label_w: float = 0.0


@dataclass
class GraphLayout:
    boxes: list[Box]
    arrows: list[Arrow]
    width: float
    height: float
    node_legend: list[tuple[str, str]] = field(default_factory=list)  # (css, meaning) of the node kinds drawn
    edge_legend: list[tuple[str, str]] = field(default_factory=list)  # (css, meaning) of the edge kinds drawn


def _box(name: str, lines: list[str], title: str, css: str, key: str) -> Box:
    return Box(name, lines, title, css, key, h=len(lines) * LINE_H + 2 * PAD)


@dataclass(frozen=True)
class _Edge:
    """One edge as the layout needs it: box keys, the label on it, its stroke class and tooltip."""

    child: str
    parent: str
    label: str
    css: str
    title: str


def _data_key(name: str) -> str:
    return "data:" + name.lower()


def _data_boxes(data: list[DataLink], root: str) -> tuple[list[Box], list[_Edge]]:
    """Dataset and generator boxes, and their edges: model → dataset → source dataset → generator."""
    boxes: dict[str, Box] = {}
    edges: list[_Edge] = []
    for d in data:
        key = _data_key(d.dataset)
        if key not in boxes:
            terms = [f"licence: {d.license}"] + ([f"its sources: {', '.join(d.sources)}"] if d.sources else [])
            lines = [line for text in [d.dataset, *terms, "training data"] for line in wrap(text)]
            title = "\n".join([d.dataset, *terms] + ([f"named in: {d.found}"] if d.found else []))
            boxes[key] = _box(d.dataset, lines, title, "data", key)
        child = _data_key(d.child) if d.relation == SOURCE_RELATION else root
        edges.append(_Edge(child, key, d.relation, "data-used", f"{d.child} → {d.dataset}: {d.relation}"))
    for d in data:
        for name, carried in d.generators:
            gkey = "generator:" + name.lower()
            if gkey not in boxes:
                lines = wrap(name) + wrap(f"outputs: {carried}") + ["generated training data"]
                boxes[gkey] = _box(name, lines, f"{name}\noutputs carry: {carried}", "generator", gkey)
            edges.append(
                _Edge(_data_key(d.dataset), gkey, GENERATED_RELATION, "data-generated", f"{d.dataset} ← {name}")
            )
    return list(boxes.values()), edges


def layout(facts: TargetFacts, links: list[Link], data: list[DataLink] | None = None) -> GraphLayout:
    """Columns by hop (the scanned model on the left), rows by the mean row of the boxes pointing in; the data
    upstreams (`data_links`) sit in the same columns as the model upstreams of their hop."""
    root = _box(
        facts.name,
        wrap(facts.name) + wrap(f"licence: {own_license(facts)}") + ["scanned model"],
        f"{facts.name}\nlicence: {own_license(facts)}",
        "target",
        facts.name.lower(),
    )
    boxes = {root.key: root}
    edges: list[_Edge] = []
    for link in links:
        key = link.parent.lower()
        if key not in boxes:
            lines = (
                wrap(link.parent)
                + wrap(f"licence: {link.license}")
                + wrap(f"{link.relation} · {link.evidence_label}", separator=" · ")
            )
            title = "\n".join(
                [link.parent, f"licence: {link.license}", f"relation: {link.relation}", f"evidence ({link.strength}):"]
                + [f"- {p.detail}" for p in link.proofs]
            )
            boxes[key] = _box(link.parent, lines, title, "declared" if link.declared else "inferred", key)
        # the evidence is in the box, its strength in the stroke, the relation on the edge
        edges.append(
            _Edge(
                link.child.lower(),
                key,
                link.relation,
                "strength-" + link.strength.split()[0],
                f"{link.child} → {link.parent}: {link.relation} ({link.strength})",
            )
        )
    data_boxes, data_edges = _data_boxes(data or [], root.key)
    boxes.update((b.key, b) for b in data_boxes)
    edges += data_edges
    parents_of: dict[str, list[str]] = {}
    for e in edges:
        parents_of.setdefault(e.parent, []).append(e.child)
    # depth: one more than the nearest child (edges are listed nearest first, so children are placed already)
    for e in edges:
        child = boxes.get(e.child)
        box = boxes[e.parent]
        if box is not root and box.depth == 0:
            box.depth = (child.depth if child else 0) + 1
    columns: dict[int, list[Box]] = {}
    for box in boxes.values():
        columns.setdefault(box.depth, []).append(box)
    gap = max([MIN_GAP] + [len(e.label) * CHAR_W + 2 * PAD + 24 for e in edges])
    heights = {d: sum(b.h for b in col) + V_GAP * (len(col) - 1) for d, col in columns.items()}
    tallest = max(heights.values())
    x: float = MARGIN
    row_of: dict[str, float] = {}
    for depth in sorted(columns):
        col = columns[depth]
        if depth:
            col.sort(
                key=lambda b: (
                    sum(row_of.get(c, 0) for c in parents_of.get(b.key, [])) / max(1, len(parents_of.get(b.key, []))),
                    b.css in ("data", "generator"),  # model upstreams above data upstreams at the same height
                    b.key,
                )
            )
        width = max(max(len(line) for line in b.lines) * CHAR_W + 2 * PAD for b in col)
        y = MARGIN + (tallest - heights[depth]) / 2
        for b in col:
            b.x, b.y, b.w = x, y, width
            y += b.h + V_GAP
            row_of[b.key] = b.y + b.h / 2
        x += width + gap
    arrows = []
    for e in edges:
        a, b = boxes.get(e.child), boxes[e.parent]
        if a is None:
            continue
        x1, y1 = a.x + a.w, a.y + a.h / 2
        x2, y2 = b.x - 4, b.y + b.h / 2
        mid = (x1 + x2) / 2
        arrows.append(
            Arrow(
                f"M{x1:.1f},{y1:.1f} C{mid:.1f},{y1:.1f} {mid:.1f},{y2:.1f} {x2:.1f},{y2:.1f}",
                e.css,
                e.title,
                e.label,
                mid,
                (y1 + y2) / 2,
                len(e.label) * CHAR_W + 8,
            )
        )
    _separate(arrows)
    height = MARGIN * 2 + max([tallest] + [a.label_y + LINE_H / 2 - MARGIN for a in arrows])
    used_nodes = {b.css for b in boxes.values()}
    used_edges = {a.css for a in arrows}
    return GraphLayout(
        list(boxes.values()),
        arrows,
        x - gap + MARGIN,
        height,
        [(css, meaning) for css, meaning in NODE_KINDS if css in used_nodes],
        [(css, meaning) for css, meaning in EDGE_KINDS if css in used_edges],
    )


def _separate(arrows: list[Arrow]) -> None:
    """Edge labels that would overlap (two edges crossing the same gap at the same height) are moved apart."""
    placed: list[Arrow] = []
    for a in sorted(arrows, key=lambda a: (a.label_y, a.label_x)):
        clash = True
        while clash:
            clash = False
            for p in placed:
                if abs(p.label_x - a.label_x) < (p.label_w + a.label_w) / 2 and abs(p.label_y - a.label_y) < LINE_H + 2:
                    a.label_y, clash = p.label_y + LINE_H + 2, True
        placed.append(a)


__all__ = [
    "DATA_RELATION",
    "EDGE_KINDS",
    "NODE_KINDS",
    "STRENGTHS",
    "UNKNOWN_LICENSE",
    "Box",
    "DataLink",
    "GraphLayout",
    "Link",
    "Proof",
    "layout",
    "concluded_license",
    "concluded_licenses",
    "data_links",
    "lineage_links",
    "own_license",
    "p_text",
    "wrap",
]
