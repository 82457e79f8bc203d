"""What the HTML report shows beyond the findings table: per target its lineage graph, a per-layer plot for every
weight verdict, its findings grouped by severity; for the page, the documentation of every rule used.

Everything here is data for templates/html.j2, which escapes every value it prints (SVG labels included): nothing
in this module builds markup.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scanner.findings import Severity, TargetReport
from scanner.report.layer_plot import CELL_H, CELL_W, layer_plot
from scanner.report.lineage_graph import layout, lineage_links

SEVERITIES = tuple(s.name for s in sorted(Severity, reverse=True))


def rule_anchor(rule_id: str) -> str:
    """The id of a rule's entry in the report's rule list (ids are [a-z0-9._-]; anything else is dropped)."""
    return "rule-" + "".join(ch for ch in rule_id if ch.isalnum() or ch in "._-")


def html_view(
    reports: list[TargetReport], targets: list[dict[str, Any]], catalogue: Mapping[str, Any]
) -> dict[str, Any]:
    """Adds `anchor`, `worst`, `groups`, `links`, `graph`, `headline` and `plots` to each target view (in place) and
    returns the page-level values: the rules used, in catalogue order."""
    used: set[str] = set()
    for i, (report, t) in enumerate(zip(reports, targets)):
        t["anchor"] = f"target-{i + 1}"
        findings = t["active"] + t["suppressed"]
        for f in findings:
            f["anchor"] = rule_anchor(f["rule"])
            used.add(f["rule"])
        t["groups"] = [(s, [f for f in t["active"] if f["severity"] == s]) for s in SEVERITIES]
        t["groups"] = [(s, fs) for s, fs in t["groups"] if fs]
        t["worst"] = t["active"][0]["severity"] if t["active"] else None
        facts = report.facts
        t["links"], t["graph"], t["plots"], t["headline"] = [], None, [], ""
        if facts is None:
            continue
        links = lineage_links(facts)
        t["links"] = links
        if links:
            t["graph"] = layout(facts, links)
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
                "doc": getattr(rule, "doc", ""),
                "fix": getattr(rule, "fix", ""),
                "severity": getattr(getattr(rule, "severity", None), "name", ""),
            }
        )
    return {"rules": rules, "open_details": len(targets) == 1, "cell_w": CELL_W, "cell_h": CELL_H}


__all__ = ["html_view", "rule_anchor"]
