"""The HTML report's lineage graphs, per-layer plots, severity groups and rule links, read from the markup (the
rendered page is checked in a real browser in test_html_browser.py)."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime
from html.parser import HTMLParser

import pytest
from report_world import CUT_LAYER, HOSTILE, LAYERS, UPSTREAM, build, multi_hop_report

from scanner.evidence.card import CardFacts
from scanner.evidence.lineage import LineageInput, infer_lineage
from scanner.findings import Finding, Severity
from scanner.knowledge import catalogue, knowledge_base
from scanner.report.html_view import OPEN_UP_TO, code_spans
from scanner.report.layer_plot import layer_plot, split_layer
from scanner.report.lineage_graph import layout, lineage_links, p_text
from scanner.report.render import render
from scanner.report.run_info import ScanRun
from scanner.results import TargetFacts, TargetReport


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


def test_pruned_layer_shows_as_missing_and_the_rest_as_shifted_by_one(world):
    report = world.reports[0]
    [match] = report.facts.weight_matches
    plot = layer_plot(match.name, match.verdict)
    assert plot.layers == LAYERS and plot.roles == ["input_layernorm.weight", "post_attention_layernorm.weight"]
    status = {(c.layer, c.role): c.status for c in plot.cells}
    assert {status[(CUT_LAYER, r)] for r in plot.roles} == {"missing"}
    assert all(status[(layer, r)] in ("strong", "matched") for layer in range(CUT_LAYER) for r in plot.roles)
    # the suspect's layer k (k >= CUT_LAYER) is the upstream's layer k + 1: renumbered, in order, offset -1
    later = [c for c in plot.cells if c.layer > CUT_LAYER]
    assert {c.status for c in later} == {"shifted"} and {c.offset for c in later} == {-1}
    assert plot.moves == [
        f"reference layers {CUT_LAYER + 1}–{LAYERS - 1} ← suspect layers {CUT_LAYER}–{LAYERS - 2} (offset -1)"
    ]
    assert all("offset -1" in c.title for c in later)
    assert plot.outside and "model.norm.weight" in plot.outside[0]
    # the legend names every colour the grid uses and no other
    assert [e.css for e in plot.legend] == [
        css for css in ("strong", "matched", "shifted", "missing") if css in status.values()
    ]
    assert sum(e.count for e in plot.legend) == len(plot.cells)


def _verdict(pairs: dict[int, int], corr: float = 0.99):
    """A derived verdict whose reference layer L is matched by suspect layer pairs[L] (two roles per layer)."""
    from scanner.provenance.result import Evidence, ReferenceVectors, ResidualVectorMatch, Verdict

    roles = ("input_layernorm.weight", "post_attention_layernorm.weight")
    ev: list[Evidence] = [ReferenceVectors(tuple(f"model.layers.{i}.{r}" for i in range(len(pairs)) for r in roles))]
    for ref, sus in pairs.items():
        for r in roles:
            ev.append(ResidualVectorMatch(f"model.layers.{sus}.{r}", f"model.layers.{ref}.{r}", corr))
    return Verdict("s", "r", "derived", 1e-40, 1.0, 0, 10, tuple(ev), "derived")


def test_swapped_layers_are_out_of_order_not_shifted():
    plot = layer_plot("r", _verdict({0: 0, 1: 1, 2: 3, 3: 2, 4: 4}))
    status = {(c.layer, c.role.split("_")[0]): c.status for c in plot.cells}
    assert {status[(2, "input")], status[(3, "input")]} == {"reordered"}
    assert {status[(k, "input")] for k in (0, 1, 4)} == {"strong"}
    assert [e.css for e in plot.legend] == ["strong", "reordered"]
    assert "out of order: reference layer 2 input_layernorm.weight ← suspect layer 3" in plot.moves


def test_renumbering_without_a_swap_is_shifted_and_weak_cells_are_their_own_colour():
    plot = layer_plot("r", _verdict({0: 1, 1: 2, 2: 3}))  # an extra layer inserted at the front
    assert {c.status for c in plot.cells} == {"shifted"} and {c.offset for c in plot.cells} == {1}
    assert plot.moves == ["reference layers 0–2 ← suspect layers 1–3 (offset +1)"]
    weak = layer_plot("r", _verdict({0: 0, 1: 1}, corr=0.3))
    assert {c.status for c in weak.cells} == {"weak"} and [e.css for e in weak.legend] == ["weak"]
    mid = layer_plot("r", _verdict({0: 0, 1: 1}, corr=0.7))
    assert {c.status for c in mid.cells} == {"matched"}


def test_plot_row_labels_are_never_cut():
    long_role = "self_attn.rotary_emb.some_really_long_vector_name.weight"
    from scanner.provenance.result import ResidualVectorMatch, Verdict

    ev = (ResidualVectorMatch(f"model.layers.0.{long_role}", f"model.layers.0.{long_role}", 0.95),)
    plot = layer_plot("r", Verdict("s", "r", "derived", 1e-9, 1.0, 0, 1, ev, ""))
    assert plot.rows[0][1] == long_role and plot.label_w >= len(long_role) * 7.2
    assert plot.cells[0].x >= plot.label_w


def test_identical_files_have_no_layers_but_say_so():
    from scanner.provenance.result import IdenticalFiles, Verdict

    v = Verdict(
        "s", "r", "derived", 0.0, 1.0, 0, 10, (IdenticalFiles(("ab" * 32,)),), "weight files are byte-identical"
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
    assert re.fullmatch(r"weights p=\d\.\de-\d+ · code", weights.evidence_label)
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
    nodes = [a for t, a in tags if t == "g" and "node" in a.get("class", "").split()]
    drawn = [a for a in nodes if "key" not in a["class"].split()]  # legend keys aside
    assert len(drawn) == 3 + 2 + 4 + 1  # model boxes, and the dataset the pruned model's card names
    assert [a["class"] for a in drawn].count("node data") == 1
    missing = [a for t, a in tags if t == "rect" and a.get("class") == "cell missing"]
    assert len(missing) == 2
    assert "HTTP 503 after 3 tries" in page and "Could not be read" in page


def test_hostile_card_text_stays_text_everywhere(page):
    parsed = elements(page)
    tag_names = {t for t, _ in parsed.tags}
    assert "script" not in tag_names
    assert not [a for _, a in parsed.tags if any(k.startswith("on") for k in a)]
    assert "\x1b" not in page
    # in the SVG label (wrapped onto several lines, never cut) and the tooltip, as the text it is
    start = next(i for i, t in enumerate(parsed.svg_texts) if t.startswith("evil/"))
    shown = f"evil/{HOSTILE}".replace("\x1b", "\\x1b")
    assert "".join(parsed.svg_texts[start : start + 4]).startswith(shown)
    assert not any(t.endswith("…") for t in parsed.svg_texts)
    assert "&lt;/text&gt;&lt;script&gt;alert(1)&lt;/script&gt;&lt;svg onload=alert(2)&gt;\\x1b[31m" in page


def test_findings_grouped_by_severity_and_linked_to_their_rules(page, world):
    tags = elements(page).tags
    ids = {a["id"] for _, a in tags if "id" in a}
    links = [a["href"] for t, a in tags if t == "a" and a.get("href", "").startswith("#rule-")]
    rules = {f.rule for r in world.reports for f in r.findings}
    assert links and {h[1:] for h in links} <= ids
    assert {f"rule-{r}" for r in rules} <= ids
    for r in rules:  # the rule's documentation from the catalogue is in the rules section
        assert str(code_spans(catalogue()[r].doc)) in page
    # severity groups in order, critical first
    order = re.findall(r'<h4><span class="sev sev-(\w+)">', page.split('id="target-1"')[1].split('id="target-2"')[0])
    assert order == sorted(order, key=lambda s: -int(Severity[s])) and len(order) == len(set(order))


def test_500_targets_stay_legible():
    """A sweep's report: summary first, every target one row of the summary table, details closed (beyond
    OPEN_UP_TO targets; print still shows them, see test_html_browser.py)."""
    reports = [
        TargetReport(
            f"hf:org/model-{i}", [Finding("license.missing", Severity.high, f"no licence {i}")] if i % 3 == 0 else []
        )
        for i in range(500)
    ]
    out = render(reports, "html", catalogue(), version="test")
    body = out.split("<body>")[1]
    assert body.index('id="targets"') < body.index("<details")
    assert out.count('<details class="target"') == 500 and '<details class="target" open' not in out
    assert out.count('<a href="#target-') == 500 and out.count('<span class="anchor" id="target-') == 500


def test_up_to_fifty_targets_start_open(world):
    """A link from the summary table lands on an open box (no script can open one)."""
    out = render(world.reports, "html", catalogue(), version="test")
    assert out.count('<details class="target"') == len(world.reports) == out.count("open>")
    reports = [TargetReport(f"hf:org/m-{i}") for i in range(OPEN_UP_TO + 1)]
    assert " open>" not in render(reports, "html", catalogue(), version="test")


def test_single_target_details_open(world):
    out = render(world.reports[:1], "html", catalogue(), version="test")
    assert '<details class="target" open>' in out and '<span class="anchor" id="target-1">' in out


def test_how_to_fix_renders_code_spans_not_backticks(page, world):
    # catalogue fix texts use `…` for commands and fields: shown as code, the backticks gone
    fixes = {catalogue()[f.rule].fix for r in world.reports for f in r.active()}
    with_code = [fix for fix in fixes if "`" in fix]
    assert with_code, "the test world must use a rule whose fix has a code span"
    for fix in with_code:
        assert str(code_spans(fix)) in page
    cells = re.findall(r'<td class="fix">(.*?)</td>', page, re.S)
    assert cells and not any("`" in c for c in cells) and any("<code>" in c for c in cells)
    assert code_spans("run `a <b>` now") == "run <code>a &lt;b&gt;</code> now"
    assert code_spans("no code, `unclosed") == "no code, `unclosed"


def test_one_p_value_format_in_graph_and_evidence(page, world):
    """The same p-value reads the same in the graph's box and in the evidence list below it."""
    [match] = world.reports[0].facts.weight_matches
    shown = p_text(match.verdict.p_value)
    assert shown.startswith("p=") and re.fullmatch(r"p=\d\.\de-\d+", shown)
    assert page.count(shown) >= 2  # box label and evidence list (and the plot's verdict line)
    assert "p = " not in page and "0.0e+00" not in page
    assert p_text(0.0) == "p<1e-300"


def test_run_information_and_outcome_are_stated(world):
    run = ScanRun(
        datetime(2026, 12, 1, 9, 30, tzinfo=UTC),
        "9.9.9",
        "rules abc (1 licences)",
        "idx.sqlite (3)",
        ".originscan.yml",
        Severity.high,
    )
    out = render(world.reports, "html", catalogue(), version="9.9.9", run=run)
    for text in ("2026-12-01 09:30 UTC", "9.9.9", "rules abc (1 licences)", "idx.sqlite (3)", ".originscan.yml"):
        assert text in out
    failing = sum(1 for r in world.reports for f in r.active() if f.severity >= Severity.high)
    assert failing and f"FAIL: {failing} active findings at or above high" in out and 'class="outcome fail"' in out
    passing = dataclasses.replace(run, fail_on=Severity.critical)
    out = render(world.reports[1:2], "html", catalogue(), version="9.9.9", run=passing)
    assert "PASS: no active finding at or above critical" in out and 'class="outcome pass"' in out
    never = render(world.reports, "html", catalogue(), version="9.9.9", run=dataclasses.replace(run, fail_on=None))
    assert "PASS: --fail-on never" in never


def test_declared_and_concluded_licence_and_attribution_per_target():
    report = multi_hop_report()  # declares llama3; its lineage ends at Llama 3 (llama3 binds it)
    out = render([report], "html", catalogue(), version="t")
    row = re.search(r'<td class="t">(llama3)</td><td class="t">(llama3)</td>', out)
    assert row, "declared and concluded licence in the targets table"
    assert '<pre class="attribution">' in out and "Built with Meta Llama 3" in out


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


# -- data upstreams beside model upstreams (issue #25) ---------------------------------------------------------------
def _real_card_report(tmp_path, case: str) -> TargetReport:
    """A scan of the README.md of a real repo of tests/realworld/cases/datasets/ (each case file cites its copy)."""
    from pathlib import Path

    import yaml
    from helpers import scan

    cases = Path(__file__).parent / "realworld" / "cases" / "datasets"
    raw = yaml.safe_load((cases / f"{case}.yaml").read_text(encoding="utf-8"))
    folder = tmp_path / case
    folder.mkdir()
    (folder / "README.md").write_text(raw["files"]["README.md"], encoding="utf-8")
    return scan(folder)


def test_the_lineage_graph_draws_training_data_and_its_generators_beside_the_base_model(tmp_path):
    from scanner.report.lineage_graph import data_links

    report = _real_card_report(tmp_path, "zephyr-7b-beta")  # Mistral-7B base; UltraChat, UltraFeedback (GPT-made)
    data = data_links(report.facts)
    assert [(d.dataset, d.relation, d.license) for d in data] == [
        ("HuggingFaceH4/ultrachat_200k", "trained on", "mit"),
        ("HuggingFaceH4/ultrafeedback_binarized", "trained on", "mit"),
        ("stingning/ultrachat", "trained on", "mit"),  # linked in the prose
        ("openbmb/UltraFeedback", "trained on", "unknown"),  # linked in the prose; no licence recorded
    ]
    openai = ("OpenAI models (GPT-3, GPT-3.5, ChatGPT, GPT-4)", "OpenAI Terms of Use")
    assert [d.generators for d in data] == [(openai,), (openai,), (openai,), (openai, ("Llama 2", "llama2"))]
    graph = layout(report.facts, lineage_links(report.facts), data)
    by_css: dict[str, list] = {}
    for b in graph.boxes:
        by_css.setdefault(b.css, []).append(b)
    assert len(by_css["data"]) == 4 and len(by_css["generator"]) == 2  # one OpenAI box all four point to; Llama 2
    assert by_css.get("declared") or by_css.get("inferred")  # the base model is drawn too
    gen = next(b for b in by_css["generator"] if b.name.startswith("OpenAI"))
    assert all(d.depth == 1 for d in by_css["data"]) and {b.depth for b in by_css["generator"]} == {2}
    assert "outputs: OpenAI Terms of Use" in gen.lines
    assert (
        sorted(a.label for a in graph.arrows if a.css.startswith("data")) == ["generated by"] * 5 + ["trained on"] * 4
    )
    assert {css for css, _ in graph.node_legend} >= {"target", "data", "generator"}
    assert {css for css, _ in graph.edge_legend} >= {"data-used", "data-generated"}
    for a, b in zip(graph.boxes, graph.boxes[1:]):
        assert a.x + a.w < b.x or b.x + b.w < a.x or a.y + a.h < b.y or b.y + b.h < a.y  # no box overlaps
    page = render([report], "html", catalogue(), version="test")
    classes = [a.get("class", "") for t, a in elements(page).tags if t == "g"]
    assert classes.count("node data") == 4 and classes.count("node generator") == 2
    assert 'data-kind="node data"' in page and 'data-kind="edge data-generated"' in page
    assert "HuggingFaceH4/ultrachat_200k</strong> (mit): the model was trained on it" in page


def test_a_model_with_only_training_data_gets_a_graph_and_unknown_data_says_so(tmp_path):
    report = _real_card_report(tmp_path, "alpaca-lora-7b")  # yahma/alpaca-cleaned: not in the knowledge base
    assert not lineage_links(report.facts)  # no model upstream: the graph is there for the data alone
    page = render([report], "html", catalogue(), version="test")
    assert 'class="lineage"' in page
    assert "yahma/alpaca-cleaned</strong> (unknown)" in page


def test_a_source_dataset_sits_a_column_further_and_hangs_off_the_dataset_that_names_it():
    from scanner.evidence.datasets import DatasetFacts, Where
    from scanner.report.lineage_graph import SOURCE_RELATION, data_links

    kb = knowledge_base()
    facts = TargetFacts("me/chat", "hf", {"license": "apache-2.0"}, None, [], [])
    facts.datasets = [
        DatasetFacts(
            "HuggingFaceH4/ultrachat_200k", [Where("card metadata `datasets:`", 3)], licenses=[kb.licenses["mit"]]
        ),
        DatasetFacts(
            "stingning/ultrachat",
            [Where("dataset card of HuggingFaceH4/ultrachat_200k")],
            unlicensed=True,
            source_licenses=[kb.licenses["cc-by-nc-4.0"]],
            via="HuggingFaceH4/ultrachat_200k",
        ),
    ]
    data = data_links(facts)
    assert data[0].found == "card metadata `datasets:`, line 3"
    assert data[1].relation == SOURCE_RELATION and data[1].child == "HuggingFaceH4/ultrachat_200k"
    assert data[1].license.startswith("none") and data[1].sources == ("cc-by-nc-4.0",)
    graph = layout(facts, [], data)
    depth = {b.name: b.depth for b in graph.boxes}
    assert depth == {"me/chat": 0, "HuggingFaceH4/ultrachat_200k": 1, "stingning/ultrachat": 2}
    built = next(a for a in graph.arrows if a.label == SOURCE_RELATION)
    parent = next(b for b in graph.boxes if b.name == "HuggingFaceH4/ultrachat_200k")
    assert built.path.startswith(f"M{parent.x + parent.w:.1f},")  # drawn from the dataset that names it
    assert "its sources: cc-by-nc-4.0" in next(b for b in graph.boxes if b.name == "stingning/ultrachat").lines
