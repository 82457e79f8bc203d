"""A weight verdict's per-layer evidence as a grid for the HTML report's inline SVG.

A verdict (scanner/provenance/compare.py) carries, once the hidden units are aligned through the token matrices,
one `residual-vector` entry per suspect norm/bias vector: the reference vector it correlates with best, and how
strongly. Laid out by the *reference's* layers (columns) and the vector's role in a layer (rows: input_layernorm,
post_attention_layernorm …), a derived model fills the grid; a depth-pruned one shows grey columns (reference
layers nothing matched) and the layers after the cut `shifted` by a constant offset; a model whose layers were
swapped shows the cells that break the order as `reordered`. The legend names every colour the grid uses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from scanner.provenance.result import (
    IdenticalFiles,
    ReferenceVectors,
    ResidualVectorMatch,
    TokenMatrixMatch,
    Verdict,
    WeightsRead,
)
from scanner.report.lineage_graph import p_text

_LAYER = re.compile(r"^(?P<prefix>.*?\.)?(?P<index>\d+)\.(?P<role>.+)$")
STRONG, WEAK = 0.9, 0.5  # |corr| bands: the colours of a cell matched at its own layer

CELL_W, CELL_H = 14, 16
CHAR_W = 7.4  # a 12 px monospace glyph (as lineage_graph.CHAR_W): row labels are sized to fit, never cut
TOP = 22  # layer numbers

# Every colour a cell can take, in legend order: (css class, legend label, what it means).
STATUSES = (
    ("strong", "strong", f"matched at the same layer, |ρ| ≥ {STRONG}"),
    ("matched", "matched", f"matched at the same layer, {WEAK} ≤ |ρ| < {STRONG}"),
    ("weak", "weak", f"best match at the same layer, |ρ| < {WEAK}"),
    ("shifted", "shifted", "matched from another layer, in order (layers renumbered, e.g. after a depth cut)"),
    ("reordered", "out of order", "matched from another layer against the order of its neighbours (swapped layers)"),
    ("missing", "missing", "no suspect vector matches this reference layer"),
)


def split_layer(name: str) -> tuple[int, str] | None:
    """("model.layers.12.input_layernorm.weight") -> (12, "input_layernorm.weight"); None outside layers."""
    m = _LAYER.match(name)
    return (int(m.group("index")), m.group("role")) if m else None


@dataclass
class Cell:
    layer: int
    role: str
    status: str  # one of STATUSES' classes
    corr: float | None
    title: str
    source: int | None = None  # the suspect layer the match came from
    x: float = 0.0
    y: float = 0.0

    @property
    def css(self) -> str:
        return self.status

    @property
    def offset(self) -> int | None:
        """Suspect layer minus reference layer (0 at the same layer); None when nothing matched."""
        return None if self.source is None else self.source - self.layer


@dataclass(frozen=True)
class LegendEntry:
    css: str
    label: str
    meaning: str
    count: int


@dataclass
class LayerPlot:
    upstream: str
    verdict: str
    p_value: float
    lines: list[str]  # the token-matrix anchor and counts, for people
    roles: list[str] = field(default_factory=list)
    layers: int = 0
    cells: list[Cell] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)  # matched vectors outside the layers (final norm …)
    width: float = 0.0
    height: float = 0.0
    label_w: float = 0.0  # the row-label column: as wide as the longest role
    ticks: list[tuple[float, str]] = field(default_factory=list)  # layer numbers along the top: (x, text)
    rows: list[tuple[float, str]] = field(default_factory=list)  # row labels: (baseline y, role)

    @property
    def counts(self) -> dict[str, int]:
        out = {css: 0 for css, _, _ in STATUSES}
        for c in self.cells:
            out[c.status] += 1
        return out

    @property
    def legend(self) -> list[LegendEntry]:
        """One entry per colour the grid uses, none for a colour it does not."""
        counts = self.counts
        return [LegendEntry(css, label, meaning, counts[css]) for css, label, meaning in STATUSES if counts[css]]

    @property
    def moves(self) -> list[str]:
        """The matches from other layers in words: runs of reference layers with one offset, and each layer that
        breaks the order."""
        out: list[str] = []
        by_layer: dict[int, set[int]] = {}
        for c in self.cells:
            if c.status == "shifted" and c.offset is not None:
                by_layer.setdefault(c.layer, set()).add(c.offset)
        run: list[int] = []
        for layer in sorted(by_layer) + [-1]:
            if run and (layer != run[-1] + 1 or by_layer.get(layer) != by_layer[run[0]]):
                offsets = ", ".join(f"{o:+d}" for o in sorted(by_layer[run[0]]))
                span = f"{run[0]}–{run[-1]}" if len(run) > 1 else str(run[0])
                src = sorted({r + o for r in run for o in by_layer[run[0]]})
                src_span = f"{src[0]}–{src[-1]}" if len(src) > 1 else str(src[0])
                out.append(
                    f"reference layer{'s' if len(run) > 1 else ''} {span} ← suspect layer"
                    f"{'s' if len(src) > 1 else ''} {src_span} (offset {offsets})"
                )
                run = []
            if layer >= 0:
                run.append(layer)
        for c in self.cells:
            if c.status == "reordered":
                out.append(f"out of order: reference layer {c.layer} {c.role} ← suspect layer {c.source}")
        return out


def layer_plot(upstream: str, verdict: Verdict) -> LayerPlot:
    lines = [f"verdict {verdict.verdict} ({p_text(verdict.p_value)}, score {verdict.score:.2f}): {verdict.reason}"]
    for e in verdict.evidence:
        if isinstance(e, IdenticalFiles):
            lines.append(f"byte-identical weight files: {', '.join(h[:16] + '…' for h in e.sha256)}")
        elif isinstance(e, TokenMatrixMatch):
            lines.append(
                f"token matrices {e.suspect_tensor} ↔ {e.reference_tensor}: "
                f"{e.units_consistent}/{e.units_tested} hidden units map consistently, "
                f"median |ρ| {e.median_matched_corr}, log10 p {e.log10_p}"
            )
        elif isinstance(e, WeightsRead):
            lines.append(f"{e.model}: {e.detail}")
    plot = LayerPlot(upstream, verdict.verdict, verdict.p_value, lines)

    reference_names = next((e.names for e in verdict.evidence if isinstance(e, ReferenceVectors)), ())
    best: dict[tuple[int, str], tuple[float, str]] = {}  # reference (layer, role) -> best |corr|, suspect name
    for e in verdict.evidence:
        if not isinstance(e, ResidualVectorMatch):
            continue
        ref, sus, corr = e.reference_tensor, e.suspect_tensor, e.corr
        where = split_layer(ref)
        if where is None:
            plot.outside.append(f"{sus} ↔ {ref} (ρ {corr})")
            continue
        value = abs(float(corr))
        if where not in best or value > best[where][0]:
            best[where] = (value, sus)
    expected = {w for w in (split_layer(n) for n in reference_names) if w is not None}
    if not best and not expected:
        return plot
    seen = set(best) | expected
    plot.layers = max(layer for layer, _ in seen) + 1
    plot.roles = sorted({role for _, role in seen})
    if not expected:  # an older verdict without the reference's list: every role at every layer up to the last
        expected = {(layer, role) for layer in range(plot.layers) for role in plot.roles}
    sources: dict[tuple[int, str], int] = {}  # reference (layer, role) -> the suspect layer that matched it
    for layer, role in sorted(expected | set(best)):
        if (layer, role) not in best:
            plot.cells.append(
                Cell(layer, role, "missing", None, f"reference layer {layer} {role}: no suspect vector matches it")
            )
            continue
        value, sus = best[(layer, role)]
        own = split_layer(sus)
        source = own[0] if own is not None else layer
        sources[(layer, role)] = source
        if source != layer:
            status = "shifted"
            title = (
                f"reference layer {layer} {role} ← suspect {sus} (|ρ| {value:.3f}): from layer {source}, "
                f"offset {source - layer:+d}"
            )
        else:
            status = "strong" if value >= STRONG else "matched" if value >= WEAK else "weak"
            title = f"reference layer {layer} {role} ← suspect {sus} (|ρ| {value:.3f})"
        plot.cells.append(Cell(layer, role, status, value, title, source))
    for c in plot.cells:  # a match from another layer that breaks the order of the layers is a swap, not a renumbering
        if c.status == "shifted" and c.source is not None and _breaks_order(c, sources):
            c.status = "reordered"
            c.title += "; against the order of the other layers"
    plot.label_w = max(len(role) for role in plot.roles) * CHAR_W + 10
    for c in plot.cells:
        c.x = plot.label_w + c.layer * CELL_W
        c.y = TOP + plot.roles.index(c.role) * CELL_H
    plot.ticks = [(plot.label_w + layer * CELL_W, str(layer)) for layer in range(0, plot.layers, 5)]
    plot.rows = [(TOP + i * CELL_H + 12, role) for i, role in enumerate(plot.roles)]
    plot.width = plot.label_w + plot.layers * CELL_W + 24
    plot.height = TOP + len(plot.roles) * CELL_H + 6
    return plot


def _breaks_order(cell: Cell, sources: dict[tuple[int, str], int]) -> bool:
    """Some other match of the same role sits on the other side of this one in the suspect than in the reference."""
    assert cell.source is not None
    return any(
        (layer < cell.layer and source > cell.source) or (layer > cell.layer and source < cell.source)
        for (layer, role), source in sources.items()
        if role == cell.role and layer != cell.layer
    )


__all__ = ["CELL_H", "CELL_W", "STATUSES", "Cell", "LayerPlot", "LegendEntry", "layer_plot", "split_layer"]
