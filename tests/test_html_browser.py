"""The HTML report rendered by a real browser: Debian's headless Chromium, driven by Playwright's Python client.

Playwright is used only as a DevTools-protocol client (`executable_path` = the system chromium; it never downloads
a browser): it gives layout boxes from the DOM, console messages (where Chromium reports CSP violations) and
screenshots, which `chromium --dump-dom` / `--screenshot` alone cannot. Screenshots are kept under
tests/artifacts/html-report/ (gitignored). Without a chromium binary these tests skip, saying so; CI installs it
(.ci/run).
"""

from __future__ import annotations

import shutil
from itertools import combinations
from pathlib import Path

import pytest
from report_world import HOSTILE, UPSTREAM, build

from scanner.demo import run_demo
from scanner.knowledge import catalogue
from scanner.report.lineage_graph import lineage_links
from scanner.report.render import render

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
    """Open the report from a file (as a person would), every <details> opened, and record what it asked for."""
    path.write_text(html, encoding="utf-8")
    page = context.new_page()
    console: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(path.as_uri(), wait_until="load")
    page.evaluate("() => document.querySelectorAll('details').forEach(d => d.open = true)")  # test-side, via CDP
    return Loaded(page, console, requests)


@pytest.fixture(scope="module")
def report(browser, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("browser-world")
    reports = build(tmp).reports + run_demo()  # the bundled examples too: 17 targets, 14 graphs
    loaded = load(browser, render(reports, "html", catalogue(), version="test"), tmp / "report.html")
    loaded.expected_nodes = sum(
        1 + len({link.parent.lower() for link in lineage_links(r.facts)})
        for r in reports
        if r.facts and lineage_links(r.facts)
    )
    loaded.expected_graphs = sum(1 for r in reports if r.facts and lineage_links(r.facts))
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
        "moved 6",
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
    nodes = boxes(report.page, "svg.lineage g.node rect")
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
    rects = boxes(page, "svg.lineage g.node rect")
    for label in labels:
        assert any(inside(label, r, slack=1) for r in rects if r["svg"] == label["svg"]), label["text"]
    # per-layer plots: row labels clear of the cells and of each other, cells in their grid
    roles = boxes(page, "svg.layers text.role")
    cells = boxes(page, "svg.layers rect.cell")
    for a, b in combinations(roles, 2):
        assert not overlap(a, b)
    for r in roles:
        assert not any(overlap(r, c) for c in cells if c["svg"] == r["svg"]), r["text"]


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
    assert any(t.startswith("evil/</text><script>alert(1)</script>") for t in label)
    assert HOSTILE.replace("\x1b", "\\x1b") in page.inner_text("body")


def test_screenshots_are_kept(report, tmp_path):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "lineage-first-target.png"
    report.page.locator("details.target").first.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
