"""`scan --probe-results FILE`: the behaviour verdicts `originscan probe -f json` wrote join the scanned model's
lineage as evidence of kind "behaviour" — the undeclared-base findings, the HTML lineage graph (in headless Chromium)
and both AI-BOMs — and a file that is not such a verdict is one error line, exit 2.

The verdicts are real `BehaviourVerdict.to_json()` output, computed by the numpy core of
scanner/provenance/behaviour.py from simulated next-token guesses (no torch): a student that repeats the reference's
idiosyncratic mistakes, and a model that makes its own.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from helpers import make_repo, run_cli

from scanner.knowledge import catalogue
from scanner.pipeline import scan_target
from scanner.policy import Policy
from scanner.provenance import behaviour as B
from scanner.report.lineage_graph import lineage_links
from scanner.report.render import render
from scanner.report.run_info import scan_run

LLAMA = "meta-llama/Meta-Llama-3-8B"  # in the knowledge base (llama3 licence)
TEACHER = "acme/private-teacher"  # a reference the knowledge base does not know
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def probe_verdict(suspect: str, reference: str, *, copies: float) -> B.BehaviourVerdict:
    """What `probe` computes from the models' top-1 guesses: the suspect repeats the reference's guess on a share
    `copies` of the positions and otherwise guesses like an independent model."""
    r = np.random.default_rng(7)
    n, vocab = 4000, 50
    truth = r.integers(0, vocab, n)
    ref = np.where(r.random(n) < 0.6, truth, r.integers(0, vocab, n))
    nulls = [np.where(r.random(n) < 0.6, truth, r.integers(0, vocab, n)) for _ in range(6)]
    own = np.where(r.random(n) < 0.6, truth, r.integers(0, vocab, n))
    sus = np.where(r.random(n) < copies, ref, own)
    agreement, null = B.agreements(ref, truth, sus, nulls)
    return B.verdict_of(suspect, reference, [B.agreement_test(agreement, null)], [f"indep-{i}" for i in range(6)])


def probe_file(tmp: Path, *verdicts: B.BehaviourVerdict, name: str = "probe.json") -> Path:
    """As `originscan probe -f json` writes it (one verdict, with its exit status), or a list of them."""
    docs = [{**v.to_json(), "exit_status": 1 if v.verdict == "derived" else 0} for v in verdicts]
    path = tmp / name
    path.write_text(json.dumps(docs[0] if len(docs) == 1 else docs, indent=2), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def derived() -> B.BehaviourVerdict:
    v = probe_verdict("./student", LLAMA, copies=0.8)
    assert v.verdict == "derived" and v.p_value < B.ALPHA
    return v


@pytest.fixture(scope="module")
def independent() -> B.BehaviourVerdict:
    v = probe_verdict("./student", LLAMA, copies=0.0)
    assert v.verdict == "independent"
    return v


def student(tmp: Path, card: dict | None = None) -> Path:
    return make_repo(tmp, "student", card=card or {"license": "apache-2.0"})


def test_probe_json_reads_back_as_the_same_verdict(derived):
    [back] = B.read_probe_results(json.dumps({**derived.to_json(), "exit_status": 1}))
    assert back.to_json() == derived.to_json()


def test_a_derived_behaviour_verdict_is_an_undeclared_base_finding(tmp_path, derived):
    repo = student(tmp_path)
    out = run_cli("scan", str(repo), "-f", "json", "--probe-results", str(probe_file(tmp_path, derived)))
    assert out.returncode == 1, out.stderr
    [f] = [f for f in json.loads(out.stdout)["targets"][0]["findings"] if f["rule"].startswith("weights.")]
    assert f["rule"] == "weights.undeclared_derivative"
    assert f["message"].startswith(f"the model behaves like a derivative of {LLAMA} (llama3)")
    assert f["evidence"]["evidence_kind"] == "behaviour" and f["evidence"]["upstream_license"] == "llama3"
    assert f["evidence"]["p_value"] == derived.p_value and f["evidence"]["tests"] == ["idiosyncratic-agreement"]


def test_a_hub_target_names_the_upstream_by_its_id(derived):
    for given, named in [
        (f"hf:{LLAMA}", LLAMA),
        (f"hf:{LLAMA}@0123abc", LLAMA),
        ("./models/teacher", "./models/teacher"),
        ("github:acme/teacher", "github:acme/teacher"),
    ]:
        assert replace(derived, reference=given).reference_id == named


def test_a_derived_verdict_against_another_base_than_the_declared_one_is_a_mismatch(tmp_path):
    v = probe_verdict("./student", TEACHER, copies=0.8)
    report = scan_target(
        str(student(tmp_path, {"license": "apache-2.0", "base_model": LLAMA})), Policy(), None, behaviour=[v]
    )
    [f] = [f for f in report.findings if f.rule.startswith("weights.")]
    assert f.rule == "weights.base_mismatch" and f"behaves like a derivative of {TEACHER}" in f.message


def test_quiet_when_independent_or_declared(tmp_path, derived, independent):
    plain = scan_target(str(student(tmp_path)), Policy(), None, behaviour=[independent])
    assert not [f for f in plain.findings if f.rule.startswith("weights.")]
    assert plain.facts is not None and not lineage_links(plain.facts)
    declared = scan_target(
        str(student(tmp_path / "d", {"license": "llama3", "base_model": LLAMA})),
        Policy(),
        None,
        behaviour=[derived, replace(derived, reference=f"hf:{LLAMA}@main")],
    )
    assert not [f for f in declared.findings if f.rule.startswith("weights.")]
    assert declared.facts is not None
    [link] = lineage_links(declared.facts)  # the declared base, now backed by the behaviour
    assert link.declared and link.strength == "behaviour" and link.p_value == derived.p_value


def scanned(tmp: Path, *verdicts: B.BehaviourVerdict):
    return [scan_target(str(student(tmp)), Policy(), None, behaviour=list(verdicts))]


def test_the_aiboms_carry_the_behaviour_evidence(tmp_path, derived):
    reports = scanned(tmp_path, derived, probe_verdict("./student", TEACHER, copies=0.8))
    cdx = json.loads(render(reports, "cyclonedx", catalogue(), version="test"))
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(cdx)) is None
    model = cdx["metadata"]["component"]  # a one-target BOM describes that model
    assert model["type"] == "machine-learning-model" and model["name"] == "student"
    ancestors = {a["name"]: a for a in model["pedigree"]["ancestors"]}
    assert set(ancestors) == {LLAMA, TEACHER}
    for name, a in ancestors.items():
        props = {p["name"]: p["value"] for p in a["properties"]}
        assert props["originscan:evidence"] == "behaviour" and props["originscan:declared"] == "false", name
        assert float(props["originscan:p_value"]) < B.ALPHA
        [identity] = a["evidence"]["identity"]
        assert [m["technique"] for m in identity["methods"]] == ["dynamic-analysis"]
        assert "originscan probe" in identity["methods"][0]["value"]
    spdx = json.loads(render(reports, "spdx", catalogue(), version="test"))
    comments = [r.get("comment", "") for r in spdx["@graph"] if r.get("relationshipType") == "descendantOf"]
    assert len(comments) == 2 and all("evidence behaviour, p=" in c and "not declared" in c for c in comments)


def test_malformed_probe_results_are_one_error_line(tmp_path, derived):
    repo = student(tmp_path)
    good = derived.to_json()
    cases = {
        "not-json.json": "{ not json",
        "weights.json": json.dumps({**good, "kind": "weights"}),
        "verdict.json": json.dumps({**good, "verdict": "guilty"}),
        "p.json": json.dumps({**good, "p_value": 7}),
        "nan.json": json.dumps(good).replace(f'"p_value": {good["p_value"]!r}', '"p_value": NaN', 1),
        "bool.json": json.dumps({**good, "score": True}),
        "tests.json": json.dumps({**good, "evidence": [{"kind": "token-matrix"}]}),
        "deep.json": "[" * 100_000 + "]" * 100_000,
        "empty.json": "[]",
        "binary.json": b"\xff\xfe\x00garbage",
        "missing.json": None,
    }
    for name, content in cases.items():
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif content is not None:
            path.write_text(content, encoding="utf-8")
        out = run_cli("scan", str(repo), "--probe-results", str(path))
        assert out.returncode == 2, (name, out.stdout, out.stderr)
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and "--probe-results" in lines[0] and name in lines[0], (name, out.stderr)
        assert "Traceback" not in out.stderr and out.stdout == ""


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary on PATH (CI installs Debian's chromium in .ci/run)")
def test_the_html_lineage_graph_draws_the_behaviour_edge_with_its_legend(tmp_path, derived):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is a test dependency")
    reports = scanned(tmp_path, derived)
    html = render(reports, "html", catalogue(), version="test", run=scan_run("test", Policy(), None))
    page_file = tmp_path / "report.html"
    page_file.write_text(html, encoding="utf-8")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page()
        page.goto(page_file.as_uri(), wait_until="load")
        graph = page.eval_on_selector(
            "svg.lineage",
            """svg => {
                const legend = svg.closest('.figure').nextElementSibling;
                const style = e => { const s = getComputedStyle(e); return [s.stroke, s.strokeWidth, s.strokeDasharray].join('|'); };
                const edges = Array.from(svg.querySelectorAll('path.edge')).map(e => [e.classList[1], style(e)]);
                const keys = Array.from(legend.querySelectorAll('li')).filter(li => li.querySelector('path.edge'))
                    .map(li => [li.querySelector('path.edge').classList[1], style(li.querySelector('path.edge')), li.textContent]);
                const boxes = Array.from(svg.querySelectorAll('g.node')).map(g => Array.from(g.querySelectorAll('text')).map(t => t.textContent).join(' '));
                return {edges, keys, boxes};
            }""",
        )
        browser.close()
    assert [e[0] for e in graph["edges"]] == ["strength-behaviour"]
    [(css, style, meaning)] = graph["keys"]
    assert css == "strength-behaviour" and style == graph["edges"][0][1] and "originscan probe" in meaning
    weights_style = "rgb(207, 34, 46)"  # the weights' red: behaviour is drawn in its own colour
    assert weights_style not in style and style.split("|")[0] != "none"
    box = next(b for b in graph["boxes"] if LLAMA.split("/")[1] in b.replace(" ", ""))
    assert "behaviour p=" in box
