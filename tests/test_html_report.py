"""The HTML report's lineage graphs, per-layer plots, severity groups and rule links, read from the markup (the
rendered page is checked in a real browser in test_html_browser.py)."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from report_world import CUT_LAYER, HOSTILE, LAYERS, UPSTREAM, build, multi_hop_report

from scanner.evidence.card import CardFacts
from scanner.evidence.lineage import LineageInput, infer_lineage
from scanner.findings import Finding, Severity, TargetFacts, TargetReport
from scanner.knowledge import catalogue, knowledge_base
from scanner.report.layer_plot import layer_plot, split_layer
from scanner.report.lineage_graph import layout, lineage_links
from scanner.report.render import render


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build(tmp_path_factory.mktemp("report-world"))


@pytest.fixture(scope="module")
def page(world):
    return render(world.reports, "html", catalogue(), version="test")


class _Elements(HTMLParser):
    """Every start tag with its attributes, and the text inside each <text> element of an SVG."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.svg_texts: list[str] = []
        self._in_text = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_text = tag == "text"
        if self._in_text:
            self.svg_texts.append("")

    def handle_endtag(self, tag):
        if tag == "text":
            self._in_text = False

    def handle_data(self, data):
        if self._in_text:
            self.svg_texts[-1] += data


def elements(html: str) -> _Elements:
    p = _Elements()
    p.feed(html)
    p.close()
    return p


def test_split_layer():
    assert split_layer("model.layers.12.input_layernorm.weight") == (12, "input_layernorm.weight")
    assert split_layer("transformer.h.0.ln_1.bias") == (0, "ln_1.bias")
    assert split_layer("model.norm.weight") is None


def test_pruned_layer_shows_as_missing_and_the_rest_as_moved(world):
    report = world.reports[0]
    [match] = report.facts.weight_matches
    plot = layer_plot(match.name, match.verdict)
    assert plot.layers == LAYERS and plot.roles == ["input_layernorm.weight", "post_attention_layernorm.weight"]
    status = {(c.layer, c.role): c.status for c in plot.cells}
    assert {status[(CUT_LAYER, r)] for r in plot.roles} == {"missing"}
    assert all(status[(layer, r)] == "matched" for layer in range(CUT_LAYER) for r in plot.roles)
    # the suspect's layer k (k >= CUT_LAYER) is the upstream's layer k + 1: matched from another layer
    assert all(status[(layer, r)] == "moved" for layer in range(CUT_LAYER + 1, LAYERS) for r in plot.roles)
    assert plot.outside and "model.norm.weight" in plot.outside[0]


def test_unpruned_finetune_fills_the_grid(world):
    [match] = world.reports[1].facts.weight_matches
    plot = layer_plot(match.name, match.verdict)
    assert plot.counts == {"matched": 2 * LAYERS, "moved": 0, "weak": 0, "missing": 0}


def test_identical_files_have_no_layers_but_say_so():
    from scanner.provenance.compare import Verdict

    v = Verdict(
        "s",
        "r",
        "derived",
        0.0,
        1.0,
        0,
        10,
        [{"kind": "identical-file", "sha256": ["ab" * 32]}],
        "weight files are byte-identical",
    )
    plot = layer_plot("r", v)
    assert not plot.cells and any("byte-identical" in line for line in plot.lines)


def test_links_relation_licence_and_evidence(world):
    pruned, finetune = world.reports[0].facts, world.reports[1].facts
    links = {link.parent: link for link in lineage_links(pruned)}
    weights = links[UPSTREAM]
    assert weights.relation == "copy" and weights.strength == "weights" and not weights.declared
    assert weights.license == "apache-2.0" and weights.p_value is not None and weights.p_value < 1e-8
    [code] = [p for p in weights.proofs if p.strength == "code"]  # the shipped modelling code is a renamed copy
    assert code.detail.startswith("modeling_pruned.py copies modeling_acme.py of acme/base-6l")
    assert re.search(r"lines \d+-\d+ ← \d+-\d+", code.detail)
    assert re.fullmatch(r"weights p=\de-\d+ · code", weights.evidence_label)
    declared = links[f"evil/{HOSTILE}"]
    assert declared.strength == "declared only" and declared.declared and declared.license == "unknown"
    [link] = lineage_links(finetune)  # declared with base_model_relation, backed by the weights
    assert (link.parent, link.relation, link.strength, link.declared) == (UPSTREAM, "fine-tune", "weights", True)


def test_multi_hop_lineage_is_laid_out_one_column_per_hop():
    report = multi_hop_report()
    links = lineage_links(report.facts)
    assert [(link.child, link.parent, link.hops) for link in links] == [
        ("me/multi-hop", "someone/ft-of-ft", 1),
        ("someone/ft-of-ft", "someone/ft", 2),
        ("someone/ft", "meta-llama/Meta-Llama-3-8B", 3),
    ]
    assert links[-1].license == "llama3"
    graph = layout(report.facts, links)
    xs = [b.x for b in sorted(graph.boxes, key=lambda b: b.depth)]
    assert [b.depth for b in sorted(graph.boxes, key=lambda b: b.depth)] == [0, 1, 2, 3]
    assert xs == sorted(xs) and len(set(xs)) == 4 and len(graph.arrows) == 3
    for a, b in zip(graph.boxes, graph.boxes[1:]):
        assert a.x + a.w < b.x or b.x + b.w < a.x or a.y + a.h < b.y or b.y + b.h < a.y  # no box overlaps


def test_html_has_a_graph_per_target_with_lineage_and_a_plot_per_verdict(page, world):
    tags = elements(page).tags
    svgs = [a.get("class") for t, a in tags if t == "svg"]
    assert svgs.count("lineage") == 3  # pruned, finetune, multi-hop; the unreadable target has none
    assert svgs.count("layers") == 2  # one per weight verdict
    assert sum(1 for t, a in tags if t == "g" and "node" in a.get("class", "")) == 3 + 2 + 4
    missing = [a for t, a in tags if t == "rect" and a.get("class") == "cell missing"]
    assert len(missing) == 2
    assert "HTTP 503 after 3 tries" in page and "Could not be read" in page


def test_hostile_card_text_stays_text_everywhere(page):
    parsed = elements(page)
    tag_names = {t for t, _ in parsed.tags}
    assert "script" not in tag_names
    assert not [a for _, a in parsed.tags if any(k.startswith("on") for k in a)]
    assert "\x1b" not in page
    # in the SVG label (cut to fit the box, with an ellipsis) and the tooltip, as the text it is
    label = next(t for t in parsed.svg_texts if t.startswith("evil/"))
    assert label.startswith("evil/</text><script>alert(1)") and label.endswith("…")
    assert "&lt;/text&gt;&lt;script&gt;alert(1)&lt;/script&gt;&lt;svg onload=alert(2)&gt;\\x1b[31m" in page


def test_findings_grouped_by_severity_and_linked_to_their_rules(page, world):
    tags = elements(page).tags
    ids = {a["id"] for _, a in tags if "id" in a}
    links = [a["href"] for t, a in tags if t == "a" and a.get("href", "").startswith("#rule-")]
    rules = {f.rule for r in world.reports for f in r.findings}
    assert links and {h[1:] for h in links} <= ids
    assert {f"rule-{r}" for r in rules} <= ids
    for r in rules:  # the rule's documentation from the catalogue is in the rules section
        assert catalogue()[r].doc.replace("'", "&#39;").replace('"', "&#34;") in page
    # severity groups in order, critical first
    order = re.findall(r'<h4><span class="sev sev-(\w+)">', page.split('id="target-1"')[1].split('id="target-2"')[0])
    assert order == sorted(order, key=lambda s: -int(Severity[s])) and len(order) == len(set(order))


def test_500_targets_stay_legible():
    """A sweep's report: summary first, every target one row of the summary table, details closed."""
    reports = [
        TargetReport(
            f"hf:org/model-{i}", [Finding("license.missing", Severity.high, f"no licence {i}")] if i % 3 == 0 else []
        )
        for i in range(500)
    ]
    out = render(reports, "html", catalogue(), version="test")
    body = out.split("<body>")[1]
    assert body.index('id="targets"') < body.index("<details")
    assert out.count('<details class="target"') == 500 and '<details class="target" id="target-1" open' not in out
    assert out.count('<a href="#target-') == 500


def test_single_target_details_open(world):
    out = render(world.reports[:1], "html", catalogue(), version="test")
    assert '<details class="target" id="target-1" open>' in out


def _facts(name: str, metadata: dict, **lineage_input) -> TargetFacts:
    card = CardFacts("README.md", metadata)
    lineage = infer_lineage(LineageInput(name=name, card=card, **lineage_input), knowledge_base())
    return TargetFacts(name, "hf", metadata, lineage)


LLAMA, QWEN = "meta-llama/Meta-Llama-3-8B", "Qwen/Qwen2.5-3B"


@pytest.mark.parametrize(
    "metadata, lineage_input, expected",
    [
        ({"base_model": LLAMA}, {"adapter_base": LLAMA}, {LLAMA: "adapter"}),
        ({"base_model": [LLAMA, QWEN]}, {}, {LLAMA: "merge", QWEN: "merge"}),
        ({"base_model": LLAMA, "base_model_relation": "quantized"}, {}, {LLAMA: "quantization"}),
        ({}, {"gguf_bases": [LLAMA]}, {LLAMA: "quantization"}),
        ({"base_model": LLAMA}, {}, {LLAMA: "fine-tune"}),
    ],
)
def test_relations_from_the_lineage(metadata, lineage_input, expected):
    links = lineage_links(_facts("someone/model", metadata, **lineage_input))
    assert {link.parent: link.relation for link in links} == expected
    assert all(link.license in ("llama3", "qwen-research") for link in links)


def test_an_upstream_scanned_as_itself_has_no_self_loop():
    facts = _facts(LLAMA, {"license": "llama3", "base_model": LLAMA})  # a card naming itself as its base
    assert facts.lineage.candidate(LLAMA) is not None
    assert all(link.parent.lower() != LLAMA.lower() for link in lineage_links(facts))
    graph = layout(facts, lineage_links(facts))
    assert len(graph.boxes) == 1 + len(graph.arrows)
