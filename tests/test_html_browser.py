"""The HTML report rendered by a real browser: Debian's headless Chromium, driven by Playwright's Python client.

Playwright is used only as a DevTools-protocol client (`executable_path` = the system chromium; it never downloads
a browser): it gives layout boxes from the DOM, console messages (where Chromium reports CSP violations) and
screenshots, which `chromium --dump-dom` / `--screenshot` alone cannot. Printing goes through Chromium's own
`--print-to-pdf` (a second, short-lived browser process), read back with poppler's `pdftotext` and rasterised with
`pdftoppm`. Screenshots and the printed PDF are kept under tests/artifacts/html-report/ (gitignored). Without a
chromium binary these tests skip, saying so; CI installs it, poppler-utils and a CJK font (.ci/run).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from itertools import combinations
from pathlib import Path

import pytest
from report_world import HOSTILE, UPSTREAM, build

from scanner.demo import run_demo
from scanner.knowledge import catalogue
from scanner.policy import Policy
from scanner.provenance.result import Evidence, ReferenceVectors, ResidualVectorMatch, Verdict, WeightMatch
from scanner.report.lineage_graph import data_links, lineage_links
from scanner.report.paths import shown_target
from scanner.report.render import render
from scanner.report.run_info import scan_run
from scanner.report.sanitize import visible
from scanner.results import TargetFacts, TargetReport

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium binary on PATH (CI installs Debian's chromium package in .ci/run)"
)
ARTIFACTS = Path(__file__).resolve().parent / "artifacts" / "html-report"
VIEWPORT = {"width": 1280, "height": 900}
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CJK = "Built with 面壁MiniCPM"  # the phrase MiniCPM's licence asks for (the demo's Llama3-V example shows it)


def swapped_report() -> TargetReport:
    """A model whose decoder layers 2 and 3 were swapped: the plot must single them out, not call them renumbered."""
    roles = ("input_layernorm.weight", "post_attention_layernorm.weight")
    pairs = {0: 0, 1: 1, 2: 3, 3: 2, 4: 4, 5: 5}
    ev: list[Evidence] = [ReferenceVectors(tuple(f"model.layers.{i}.{r}" for i in pairs for r in roles))]
    ev += [
        ResidualVectorMatch(f"model.layers.{sus}.{r}", f"model.layers.{ref}.{r}", 0.97)
        for ref, sus in pairs.items()
        for r in roles
    ]
    verdict = Verdict("me/swapped", UPSTREAM, "derived", 3e-21, 0.97, 0, 1, tuple(ev), "hidden units map one-to-one")
    facts = TargetFacts(
        "me/swapped", "hf", {"license": "apache-2.0"}, None, [], [WeightMatch(UPSTREAM, "apache-2.0", verdict)]
    )
    return TargetReport("hf:me/swapped", [], facts=facts)


def data_report(tmp_path: Path) -> TargetReport:
    """zephyr-7b-beta's real card (tests/realworld/cases/datasets/, cited there): a base model, four datasets (one
    unknown) and the OpenAI models that generated three of them, so data upstreams are drawn beside a model one."""
    import yaml
    from helpers import scan

    case = Path(__file__).parent / "realworld" / "cases" / "datasets" / "zephyr-7b-beta.yaml"
    folder = tmp_path / "zephyr-7b-beta"
    folder.mkdir()
    (folder / "README.md").write_text(yaml.safe_load(case.read_text(encoding="utf-8"))["files"]["README.md"])
    return scan(folder)


def drawn(r: TargetReport) -> int:
    """The boxes a target's lineage graph must hold: the model, its model upstreams, its datasets and their
    generators (0: no graph)."""
    if not r.facts:
        return 0
    links, data = lineage_links(r.facts), data_links(r.facts)
    if not links and not data:
        return 0
    generators = {name.lower() for d in data for name, _ in d.generators}
    return 1 + len({link.parent.lower() for link in links}) + len({d.dataset.lower() for d in data}) + len(generators)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is a test dependency (pip install '.[test]')"
    )
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_api.sync_playwright() as pw:
        # a persistent context is how Playwright passes --user-data-dir; it is one browser with one context
        context = pw.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=FLAGS, viewport=VIEWPORT
        )
        yield context
        context.close()


class Loaded:
    def __init__(self, page, console: list[str], requests: list[str]):
        self.page, self.console, self.requests = page, console, requests
        self.expected_graphs = self.expected_nodes = 0  # what the reports' lineage says the page must draw


def load(context, html: str, path: Path) -> Loaded:
    """Open the report from a file (as a person would) and record what it asked for."""
    path.write_text(html, encoding="utf-8")
    page = context.new_page()
    console: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(path.as_uri(), wait_until="load")
    return Loaded(page, console, requests)


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("browser-world")
    # the bundled examples too, and a real card with training data: 19 targets
    return build(tmp).reports + run_demo() + [swapped_report(), data_report(tmp)]


@pytest.fixture(scope="module")
def html(reports):
    return render(reports, "html", catalogue(), version="test", run=scan_run("test", Policy(), None))


@pytest.fixture(scope="module")
def report(browser, reports, html, tmp_path_factory):
    loaded = load(browser, html, tmp_path_factory.mktemp("browser-page") / "report.html")
    loaded.expected_nodes = sum(drawn(r) for r in reports)
    loaded.expected_graphs = sum(1 for r in reports if drawn(r))
    yield loaded
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    loaded.page.screenshot(path=str(ARTIFACTS / "report-full.png"), full_page=True)
    loaded.page.close()


def boxes(page, selector: str) -> list[dict]:
    return page.eval_on_selector_all(
        selector,
        """els => els.map(e => {
        const r = e.getBoundingClientRect();
        return {x: r.x + window.scrollX, y: r.y + window.scrollY, w: r.width, h: r.height,
                text: e.textContent, svg: e.ownerSVGElement ? Array.from(document.querySelectorAll('svg'))
                    .indexOf(e.ownerSVGElement) : -1};
    })""",
    )


def overlap(a: dict, b: dict) -> bool:
    return (
        a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"] and a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"]
    )


def inside(inner: dict, outer: dict, slack: float = 0.5) -> bool:
    return (
        inner["x"] >= outer["x"] - slack
        and inner["y"] >= outer["y"] - slack
        and inner["x"] + inner["w"] <= outer["x"] + outer["w"] + slack
        and inner["y"] + inner["h"] <= outer["y"] + outer["h"] + slack
    )


def test_text_is_rendered(report):
    body = report.page.inner_text("body")
    for text in (
        "originscan report",
        "Targets",
        "Lineage",
        UPSTREAM,
        "meta-llama/Meta-Llama-3-8B",
        "someone/ft",
        "Rules used",
        "weights.base_mismatch",
        "HTTP 503 after 3 tries",
        "missing 2",
        "shifted 6",
        "out of order 4",
        "reference layers 3–5 ← suspect layers 2–4 (offset -1)",
        "examples/llama3-v-style",
        "openbmb/MiniCPM-Llama3-V-2_5",
    ):
        assert text in body, text


def test_nothing_is_blocked_and_nothing_is_fetched(report):
    assert not [m for m in report.console if "Content Security Policy" in m or "Refused" in m], report.console
    assert not [m for m in report.console if m.startswith(("error", "pageerror"))], report.console
    assert report.requests == [report.page.url]  # the file itself, nothing else
    csp = report.page.get_attribute('meta[http-equiv="Content-Security-Policy"]', "content")
    assert csp == "default-src 'none'; style-src 'unsafe-inline'"


def test_a_csp_violation_would_be_seen(browser, tmp_path):
    """The check above can fail: the same CSP and one outside image, and Chromium reports it on the console."""
    html = (
        '<!DOCTYPE html><html><head><meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        'style-src \'unsafe-inline\'"></head><body><img src="https://example.invalid/x.png"></body></html>'
    )
    loaded = load(browser, html, tmp_path / "violation.html")
    loaded.page.wait_for_timeout(200)
    loaded.page.close()
    assert [m for m in loaded.console if "Content Security Policy" in m]


def test_graph_nodes_inside_the_graph_and_the_viewport(report):
    svgs = boxes(report.page, "svg.lineage")
    nodes = boxes(report.page, "svg.lineage g.node:not(.key) rect")
    all_svgs = boxes(report.page, "svg")
    assert len(svgs) == report.expected_graphs >= 10 and len(nodes) == report.expected_nodes
    for n in nodes:
        assert inside(n, all_svgs[n["svg"]]), n
        assert n["x"] >= 0 and n["x"] + n["w"] <= VIEWPORT["width"], n


def test_no_overlapping_labels_and_every_label_inside_its_node(report):
    page = report.page
    labels = boxes(page, "svg.lineage text.label")
    assert labels
    for a, b in combinations(labels, 2):
        assert not overlap(a, b), (a["text"], b["text"])
    rects = boxes(page, "svg.lineage g.node:not(.key) rect")
    for label in labels:
        assert any(inside(label, r, slack=1) for r in rects if r["svg"] == label["svg"]), label["text"]
    # per-layer plots: row labels clear of the cells and of each other, cells in their grid
    roles = boxes(page, "svg.layers text.role")
    cells = boxes(page, "svg.layers rect.cell")
    for a, b in combinations(roles, 2):
        assert not overlap(a, b)
    for r in roles:
        assert not any(overlap(r, c) for c in cells if c["svg"] == r["svg"]), r["text"]
    # edge labels: clear of each other and of every node box
    edge_labels = boxes(page, "svg.lineage g.edge-label rect")
    assert edge_labels
    for a, b in combinations(edge_labels, 2):
        assert a["svg"] != b["svg"] or not overlap(a, b), (a, b)
    for e in edge_labels:
        assert not any(overlap(e, r) for r in rects if r["svg"] == e["svg"]), e


def test_hostile_text_is_shown_not_run(report):
    page = report.page
    assert page.locator("script").count() == 0
    assert (
        page.eval_on_selector_all(
            "*", "els => els.filter(e => Array.from(e.attributes).some(a => a.name.startsWith('on'))).length"
        )
        == 0
    )
    label = page.eval_on_selector_all("svg.lineage text.label", "els => els.map(e => e.textContent)")
    assert any(t.startswith("evil/</text><script>") for t in label)
    assert HOSTILE.replace("\x1b", "\\x1b") in page.inner_text("body")


def test_screenshots_are_kept(report, tmp_path):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "lineage-first-target.png"
    report.page.locator("details.target").first.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# -- issue 23: what a compliance lead reads, on screen and on paper ---------------------------------------------
def computed(page, selector: str, prop: str) -> list[str]:
    return page.eval_on_selector_all(selector, f"els => els.map(e => getComputedStyle(e).{prop})")


def test_every_cell_colour_has_a_legend_swatch_of_that_colour(report):
    page = report.page
    plots = page.eval_on_selector_all(
        "svg.layers",
        """svgs => svgs.map(svg => {
            const legend = svg.closest('.figure').parentElement.querySelectorAll('ul.plot-legend');
            let own = null;  // the legend printed just before this figure
            for (const ul of legend) if (ul.compareDocumentPosition(svg) & Node.DOCUMENT_POSITION_FOLLOWING) own = ul;
            const cells = {};
            for (const c of svg.querySelectorAll('rect.cell')) cells[c.classList[1]] = getComputedStyle(c).fill;
            const swatches = {};
            for (const s of own.querySelectorAll('.swatch')) swatches[s.classList[1]] = getComputedStyle(s).backgroundColor;
            return {cells, swatches};
        })""",
    )
    assert len(plots) >= 4
    seen = set()
    for p in plots:
        assert set(p["cells"]) == set(p["swatches"]), p  # a swatch per colour in use, none for a colour not used
        for css, fill in p["cells"].items():
            assert fill == p["swatches"][css], (css, fill, p["swatches"][css])
        seen |= set(p["cells"])
    assert {"strong", "shifted", "reordered", "missing"} <= seen
    colours = {p["cells"][c] for p in plots for c in p["cells"]}
    assert len(colours) == len(seen)  # each status its own colour


def test_the_lineage_legend_explains_every_box_and_edge_style_drawn(report):
    page = report.page
    graphs = page.eval_on_selector_all(
        "svg.lineage",
        """svgs => svgs.map(svg => {
            const legend = svg.closest('.figure').nextElementSibling;
            const style = e => { const s = getComputedStyle(e); return [s.stroke, s.strokeWidth, s.strokeDasharray, s.fill].join('|'); };
            const drawn = {}, keys = {};
            for (const e of svg.querySelectorAll('path.edge')) drawn[e.classList[1]] = style(e);
            for (const g of svg.querySelectorAll('g.node')) drawn[g.classList[1]] = style(g.querySelector('rect'));
            for (const e of legend.querySelectorAll('path.edge')) keys[e.classList[1]] = style(e);
            for (const g of legend.querySelectorAll('g.node')) keys[g.classList[1]] = style(g.querySelector('rect'));
            return {drawn, keys, labels: svg.querySelectorAll('g.edge-label').length,
                    edges: svg.querySelectorAll('path.edge').length, legend: legend.className};
        })""",
    )
    assert len(graphs) == report.expected_graphs
    for g in graphs:
        assert "graph-legend" in g["legend"]
        assert g["drawn"] == g["keys"], g  # the same classes, drawn the same way
        assert g["labels"] == g["edges"]  # every edge says what it is
    assert {"strength-weights", "strength-declared", "inferred", "declared"} <= {k for g in graphs for k in g["drawn"]}
    assert {"data", "generator", "data-used", "data-generated"} <= {k for g in graphs for k in g["drawn"]}


def test_no_label_is_cut_and_every_piece_of_evidence_is_in_its_box(report, reports):
    page = report.page
    graphs = page.eval_on_selector_all(
        "svg.lineage",
        """svgs => svgs.map(svg => Array.from(svg.querySelectorAll('g.node')).map(g => ({
            title: g.querySelector('title').textContent,
            lines: Array.from(g.querySelectorAll('text')).map(t => t.textContent)})))""",
    )
    with_graph = [r for r in reports if drawn(r)]
    assert len(graphs) == len(with_graph)
    checked = 0
    for r, nodes in zip(with_graph, graphs):  # one graph per target with a lineage, in report order
        by_name = {n["title"].split("\n")[0]: n["lines"] for n in nodes}
        for d in data_links(r.facts):  # a dataset's box holds its whole name and its licence
            flat = "".join(by_name[visible(d.dataset)])
            assert visible(d.dataset) in flat and squeeze(f"licence: {d.license}") in squeeze(flat), (d.dataset, flat)
            checked += 1
        for link in lineage_links(r.facts):
            lines = by_name[visible(link.parent)]
            flat, spaced = "".join(lines), " · ".join(lines)
            assert visible(link.parent) in flat
            for proof in link.proofs:
                assert proof.label in spaced or proof.label in flat, (link.parent, proof.label, lines)
            checked += 1
        if r.target == "examples/llama3-v-style":  # Llama3-V's box keeps "code" and the weights' p-value
            llama3v = " · ".join(by_name["openbmb/MiniCPM-Llama3-V-2_5"])
            assert "code" in llama3v and re.search(r"weights p=\d\.\de-\d+", llama3v)
    assert checked >= 15
    texts = page.eval_on_selector_all("svg text", "els => els.map(e => e.textContent)")
    assert not [t for t in texts if t.endswith("…")]
    # plot row labels: the whole role, clear of the grid
    for label in boxes(page, "svg.layers text.role"):
        cells = [c for c in boxes(page, "svg.layers rect.cell") if c["svg"] == label["svg"]]
        assert label["x"] + label["w"] <= min(c["x"] for c in cells) + 0.5, label


def test_targets_start_open_and_a_target_link_lands_on_an_open_box(report):
    page = report.page
    assert page.eval_on_selector_all("details.target", "ds => ds.every(d => d.open)")
    page.click("table.targets a[href='#target-8']")
    page.wait_for_timeout(100)
    box = page.evaluate(
        "() => { const a = document.getElementById('target-8'); const d = a.closest('details'); "
        "return {open: d.open, top: d.querySelector('summary').getBoundingClientRect().top, "
        "visible: a.nextElementSibling.getBoundingClientRect().height}; }"
    )
    assert box["open"] and 0 <= box["top"] < 60 and box["visible"] > 0


def test_a_target_link_opens_a_closed_box(browser, html, tmp_path):
    """A sweep's report starts with its boxes closed: following a link from the summary table opens the box (the
    anchor sits inside it: HTML's ancestor details revealing, no script)."""
    loaded = load(browser, html.replace(" open>", ">"), tmp_path / "closed.html")
    page = loaded.page
    try:
        assert page.eval_on_selector_all("details.target", "ds => ds.every(d => !d.open)")
        page.click("table.targets a[href='#target-5']")
        page.wait_for_timeout(150)
        opened = page.eval_on_selector_all(
            "details.target", "ds => ds.filter(d => d.open).map(d => d.querySelector('.anchor').id)"
        )
        assert opened == ["target-5"]
    finally:
        page.close()


def test_every_findings_table_has_the_same_columns(report):
    """Severity tables share one set of column widths instead of each sizing its own."""
    widths = report.page.eval_on_selector_all(
        "table.findings",
        "ts => ts.map(t => Array.from(t.querySelector('tr').children).map(c => Math.round(c.getBoundingClientRect().width)))",
    )
    assert len(widths) >= 20
    assert {tuple(w) for w in widths} == {tuple(widths[0])}, sorted({tuple(w) for w in widths})


def print_pdf(html: str, tmp: Path, name: str) -> tuple[Path, str]:
    """Chromium's own --print-to-pdf (a fresh profile, no network), read back with pdftotext."""
    src, pdf = tmp / f"{name}.html", ARTIFACTS / f"{name}.pdf"
    src.write_text(html, encoding="utf-8")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    profile = tmp / f"{name}-profile"
    cmd = [
        CHROMIUM,
        *FLAGS,
        f"--user-data-dir={profile}",
        "--no-pdf-header-footer",
        f"--print-to-pdf={pdf}",
        src.as_uri(),
    ]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    text = subprocess.run(["pdftotext", str(pdf), "-"], check=True, capture_output=True, text=True).stdout
    return pdf, text


def squeeze(text: str) -> str:
    """Text without whitespace or hyphens: table cells wrap anywhere and pdftotext joins a word broken after a
    hyphen without it, so words are compared with the line breaks (and hyphens) taken out."""
    return re.sub(r"[\s-]+", "", text)


@pytest.mark.skipif(
    shutil.which("pdftotext") is None, reason="poppler-utils (pdftotext) not installed (.ci/run installs it)"
)
@pytest.mark.parametrize("collapsed", [False, True], ids=["as-rendered", "every-box-closed"])
def test_the_printed_pdf_holds_every_targets_lineage_plot_and_findings(reports, html, tmp_path, collapsed):
    if collapsed:  # a reader who closed every box before printing still gets everything on paper
        html = html.replace(" open>", ">")
        assert " open>" not in html
    pdf, text = print_pdf(html, tmp_path, "report-print-closed" if collapsed else "report-print")
    flat = squeeze(text)
    missing = []
    for r in reports:
        wanted = [shown_target(r.target)]
        if r.facts:
            links, data = lineage_links(r.facts), data_links(r.facts)
            if links or data:
                wanted += ["Lineage"] + [visible(link.parent) for link in links] + [visible(d.dataset) for d in data]
            wanted += [f"Weights against {m.name}" for m in r.facts.weight_matches]
        wanted += [f.rule for f in r.active()] + [visible(f.message)[:60] for f in r.active()]
        missing += [(r.target, w) for w in wanted if squeeze(w) not in flat]
    assert not missing, missing[:10]
    pages = int(
        re.search(
            r"Pages:\s+(\d+)", subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True).stdout
        ).group(1)
    )
    assert pages > 10
    if not collapsed and shutil.which("pdftoppm"):
        prefix = ARTIFACTS / "report-print-page"
        subprocess.run(
            ["pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "2", str(pdf), str(prefix)], check=True, timeout=60
        )
        assert list(ARTIFACTS.glob("report-print-page*.png"))


def test_cjk_text_is_drawn_with_an_installed_cjk_font(report):
    """MiniCPM's required phrase is rendered with real glyphs from a CJK font, not boxes."""
    fonts = subprocess.run(["fc-list", ":lang=zh", "family"], capture_output=True, text=True).stdout
    if not fonts.strip():
        pytest.skip("no CJK font installed (.ci/run installs fonts-noto-cjk)")
    page = report.page
    assert CJK in page.inner_text("body")
    cdp = page.context.new_cdp_session(page)
    cdp.send("DOM.enable")
    cdp.send("CSS.enable")
    root = cdp.send("DOM.getDocument", {"depth": -1})["root"]["nodeId"]
    used: dict[str, int] = {}
    for selector in ("pre.attribution", "td.msg"):
        for node in cdp.send("DOM.querySelectorAll", {"nodeId": root, "selector": selector})["nodeIds"]:
            html_text = cdp.send("DOM.getOuterHTML", {"nodeId": node})["outerHTML"]
            if "面壁" not in html_text:
                continue
            for f in cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]:
                used[f["familyName"]] = used.get(f["familyName"], 0) + f["glyphCount"]
    cjk = {name: n for name, n in used.items() if "CJK" in name or "Han" in name}
    assert cjk and sum(cjk.values()) >= 2, used  # 面 and 壁 drawn from a CJK face
    assert all(name.split()[0] in fonts or name in fonts for name in cjk), (cjk, fonts)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.locator("pre.attribution", has_text="面壁").first.screenshot(path=str(ARTIFACTS / "cjk-attribution.png"))
