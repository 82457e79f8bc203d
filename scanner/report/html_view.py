"""What the HTML report shows beyond the findings table: per target its declared and concluded licence, its lineage
graph, a per-layer plot for every weight verdict, its findings grouped by severity and the attribution text it must
ship; for the page, how the scan ran and whether it passed, and the documentation of every rule used.

Everything here is data for templates/html.j2, which escapes every value it prints (SVG labels included). The one
piece of markup built here is `code_spans`: the catalogue's `code` as <code> around text escaped first.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from markupsafe import Markup, escape

from scanner.findings import Severity
from scanner.report.layer_plot import CELL_H, CELL_W, layer_plot
from scanner.report.lineage_graph import concluded_license, data_links, layout, lineage_links, own_license
from scanner.report.run_info import ScanRun
from scanner.report.sanitize import visible
from scanner.results import TargetFacts, TargetReport

SEVERITIES = tuple(s.name for s in sorted(Severity, reverse=True))
OPEN_UP_TO = 50  # targets whose details start open; a sweep's report beyond that opens on the summary table
_CODE_SPAN = re.compile(r"`([^`\n]+)`")


def code_spans(text: Any) -> Markup:
    """Rule documentation as HTML: `x` becomes <code>x</code>, everything else is escaped text."""
    out, last = Markup(""), 0
    raw = visible(text or "")
    for m in _CODE_SPAN.finditer(raw):
        out += escape(raw[last : m.start()]) + Markup("<code>") + escape(m.group(1)) + Markup("</code>")
        last = m.end()
    return out + escape(raw[last:])


def attribution_text(facts: TargetFacts) -> str:
    """What `originscan attribution` prints for this model ("" when no licence in its lineage asks for any)."""
    from scanner.attribution import dataset_blocks, lineage_blocks
    from scanner.report.render import render_attribution

    blocks = lineage_blocks(facts.lineage) if facts.lineage is not None else []
    blocks += dataset_blocks(facts.datasets, facts.lineage)  # the training data's terms, as the command adds them
    return render_attribution(blocks) if blocks else ""


def rule_anchor(rule_id: str) -> str:
    """The id of a rule's entry in the report's rule list (ids are [a-z0-9._-]; anything else is dropped)."""
    return "rule-" + "".join(ch for ch in rule_id if ch.isalnum() or ch in "._-")


def html_view(
    reports: list[TargetReport],
    targets: list[dict[str, Any]],
    catalogue: Mapping[str, Any],
    run: ScanRun | None = None,
) -> dict[str, Any]:
    """Adds `anchor`, `worst`, `groups`, `links`, `data`, `graph`, `headline`, `plots`, `declared`, `concluded` and
    `attribution` to each target view (in place) and returns the page-level values: the run and its outcome, the
    rules used (in catalogue order)."""
    used: set[str] = set()
    for i, (report, t) in enumerate(zip(reports, targets)):
        t["anchor"] = f"target-{i + 1}"
        findings = t["active"] + t["suppressed"]
        for f in findings:
            f["anchor"] = rule_anchor(f["rule"])
            f["fix_html"] = code_spans(f["fix"])
            used.add(f["rule"])
        t["groups"] = [(s, [f for f in t["active"] if f["severity"] == s]) for s in SEVERITIES]
        t["groups"] = [(s, fs) for s, fs in t["groups"] if fs]
        t["worst"] = t["active"][0]["severity"] if t["active"] else None
        facts = report.facts
        t["links"], t["data"], t["graph"], t["plots"], t["headline"] = [], [], None, [], ""
        t["declared"], t["concluded"], t["attribution"] = "", "", ""
        if facts is None:
            continue
        t["declared"], t["concluded"] = own_license(facts), concluded_license(facts)
        t["attribution"] = attribution_text(facts)
        links, data = lineage_links(facts), data_links(facts)
        t["links"], t["data"] = links, data
        if links or data:
            t["graph"] = layout(facts, links, data)
        if links:
            first = links[0]
            t["headline"] = f"{first.relation} of {first.parent} ({first.strength})"
            if len(links) > 1:
                t["headline"] += f" +{len(links) - 1}"
        t["plots"] = [layer_plot(m.name, m.verdict) for m in facts.weight_matches]
    rules = []
    for rid in sorted(used, key=lambda r: (list(catalogue).index(r) if r in catalogue else len(catalogue), r)):
        rule = catalogue.get(rid)
        rules.append(
            {
                "id": rid,
                "anchor": rule_anchor(rid),
                "title": getattr(rule, "title", rid),
                "doc": code_spans(getattr(rule, "doc", "")),
                "fix": code_spans(getattr(rule, "fix", "")),
                "severity": getattr(getattr(rule, "severity", None), "name", ""),
            }
        )
    passed, outcome = run.outcome(reports) if run is not None else (None, "")
    return {
        "rules": rules,
        "open_details": len(targets) <= OPEN_UP_TO,
        "cell_w": CELL_W,
        "cell_h": CELL_H,
        "run": run,
        "passed": passed,
        "outcome": outcome,
    }


__all__ = ["OPEN_UP_TO", "attribution_text", "code_spans", "html_view", "rule_anchor"]
