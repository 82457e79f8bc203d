"""A weight verdict's per-layer evidence as a grid for the HTML report's inline SVG.

A verdict (scanner/provenance/compare.py) carries, once the hidden units are aligned through the token matrices,
one `residual-vector` entry per suspect norm/bias vector: the reference vector it correlates with best, and how
strongly. Laid out by the *reference's* layers (columns) and the vector's role in a layer (rows: input_layernorm,
post_attention_layernorm …), a derived model fills the grid, a pruned one shows grey columns
(reference layers nothing matched) and a re-ordered one shows cells matched from another suspect layer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

_LAYER = re.compile(r"^(?P<prefix>.*?\.)?(?P<index>\d+)\.(?P<role>.+)$")
STRONG, WEAK = 0.9, 0.5  # |corr| bands: the colours of a matched cell

CELL_W, CELL_H = 14, 16
LABEL_W = 230  # row labels (roles), cut to fit
TOP = 22  # layer numbers
ROLE_CHARS = 30


def split_layer(name: str) -> tuple[int, str] | None:
    """("model.layers.12.input_layernorm.weight") -> (12, "input_layernorm.weight"); None outside layers."""
    m = _LAYER.match(name)
    return (int(m.group("index")), m.group("role")) if m else None


@dataclass
class Cell:
    layer: int
    role: str
    status: str  # matched | moved | weak | missing
    corr: float | None
    title: str
    x: float = 0.0
    y: float = 0.0

    @property
    def css(self) -> str:
        """The colour class: a matched cell is `strong` from |corr| >= STRONG."""
        return "strong" if self.status == "matched" and (self.corr or 0) >= STRONG else self.status


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
    ticks: list[tuple[float, str]] = field(default_factory=list)  # layer numbers along the top: (x, text)
    rows: list[tuple[float, str, str]] = field(default_factory=list)  # row labels: (baseline y, cut label, role)

    @property
    def counts(self) -> dict[str, int]:
        out = {"matched": 0, "moved": 0, "weak": 0, "missing": 0}
        for c in self.cells:
            out[c.status] += 1
        return out


def layer_plot(upstream: str, verdict: Any) -> LayerPlot:
    ev = verdict.evidence or []
    lines = [f"verdict {verdict.verdict} (p={verdict.p_value:.1e}, score {verdict.score:.2f}): {verdict.reason}"]
    for e in ev:
        if e.get("kind") == "identical-file":
            lines.append(f"byte-identical weight files: {', '.join(str(h)[:16] + '…' for h in e.get('sha256', []))}")
        elif e.get("kind") == "token-matrix":
            lines.append(
                f"token matrices {e.get('suspect_tensor')} ↔ {e.get('reference_tensor')}: "
                f"{e.get('units_consistent')}/{e.get('units_tested')} hidden units map consistently, "
                f"median |ρ| {e.get('median_matched_corr')}, log10 p {e.get('log10_p')}"
            )
        elif e.get("kind") == "weights-read":
            lines.append(f"{e.get('model')}: {e.get('detail')}")
    plot = LayerPlot(upstream, verdict.verdict, verdict.p_value, lines)

    reference_names = next((e.get("names") or [] for e in ev if e.get("kind") == "reference-vectors"), [])
    best: dict[tuple[int, str], tuple[float, str]] = {}  # reference (layer, role) -> best |corr|, suspect name
    for e in ev:
        if e.get("kind") != "residual-vector":
            continue
        ref, sus, corr = str(e.get("reference_tensor", "")), str(e.get("suspect_tensor", "")), e.get("corr")
        where = split_layer(ref)
        if where is None:
            plot.outside.append(f"{sus} ↔ {ref} (ρ {corr})")
            continue
        value = abs(float(corr)) if isinstance(corr, (int, float)) else 0.0
        if where not in best or value > best[where][0]:
            best[where] = (value, sus)
    expected = {w for w in (split_layer(str(n)) for n in reference_names) if w is not None}
    if not best and not expected:
        return plot
    seen = set(best) | expected
    plot.layers = max(layer for layer, _ in seen) + 1
    plot.roles = sorted({role for _, role in seen})
    if not expected:  # an older verdict without the reference's list: every role at every layer up to the last
        expected = {(layer, role) for layer in range(plot.layers) for role in plot.roles}
    for layer, role in sorted(expected | set(best)):
        if (layer, role) not in best:
            plot.cells.append(
                Cell(layer, role, "missing", None, f"reference layer {layer} {role}: no suspect vector matches it")
            )
            continue
        value, sus = best[(layer, role)]
        own = split_layer(sus)
        if own is not None and own[0] != layer:
            status = "moved"
            title = f"reference layer {layer} {role} ← suspect {sus} (|ρ| {value:.3f}): another layer"
        else:
            status = "matched" if value >= WEAK else "weak"
            title = f"reference layer {layer} {role} ← suspect {sus} (|ρ| {value:.3f})"
        plot.cells.append(Cell(layer, role, status, value, title))
    for c in plot.cells:
        c.x = LABEL_W + c.layer * CELL_W
        c.y = TOP + plot.roles.index(c.role) * CELL_H
    plot.ticks = [(LABEL_W + layer * CELL_W, str(layer)) for layer in range(0, plot.layers, 5)]
    plot.rows = [(TOP + i * CELL_H + 12, role_label(role), role) for i, role in enumerate(plot.roles)]
    plot.width = LABEL_W + plot.layers * CELL_W + 24
    plot.height = TOP + len(plot.roles) * CELL_H + 6
    return plot


def role_label(role: str) -> str:
    return role if len(role) <= ROLE_CHARS else role[: ROLE_CHARS - 1] + "…"


__all__ = ["CELL_H", "CELL_W", "Cell", "LayerPlot", "layer_plot", "role_label", "split_layer"]
