"""Reports: every format on a small set of findings, hostile text included (model cards are attacker-controlled)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest

from scanner.attribution import AttributionBlock
from scanner.findings import Finding, Severity
from scanner.knowledge import Rule
from scanner.report.render import (
    FORMATS,
    environment,
    escape_markdown,
    fingerprint,
    render,
    render_attribution,
    templates_dir,
)
from scanner.results import TargetReport

SCHEMA_PATH = Path(__file__).parent / "data" / "sarif-schema-2.1.0.json"
ANSI = re.compile(r"\x1b\[[0-9;]*m")

HOSTILE = (
    "<script>alert(1)</script> ping @octocat see [x](javascript:alert(1)) a|b "
    "[bold]boom[/bold] `tick` \x1b[2J bell\x07 #12"
)


CATALOGUE = {
    "license.incompatible": Rule(
        "license.incompatible",
        Severity.high,
        "Licence incompatible with the base model's",
        "The base model's licence does not allow this licence.",
        "Publish under the base model's licence.",
    ),
    "card.base_model_undeclared": Rule(
        "card.base_model_undeclared",
        Severity.critical,
        "Base model undeclared",
        "Config and tokenizer match an upstream the card does not name.",
        "Declare base_model in the card.",
    ),
    "attribution.missing": Rule(
        "attribution.missing",
        Severity.medium,
        "Attribution phrase missing",
        "The base licence requires an attribution phrase.",
        'Add "Built with Llama".',
    ),
    "license.unknown": Rule(
        "license.unknown", Severity.low, "Licence not recognised", "Unknown licence.", "Use a Hub licence id."
    ),
}


def make_reports() -> list[TargetReport]:
    return [
        TargetReport(
            "examples/llama3v",
            [
                Finding(
                    "attribution.missing", Severity.medium, 'no "Built with Meta Llama 3" in the card', path="README.md"
                ),
                Finding(
                    "license.incompatible",
                    Severity.high,
                    "base llama3 does not allow apache-2.0",
                    path="README.md",
                    line=3,
                    evidence={"base": "llama3"},
                ),
                Finding(
                    "card.base_model_undeclared", Severity.critical, HOSTILE, path="tokenizer_config.json", line=12
                ),
                Finding(
                    "license.unknown",
                    Severity.low,
                    "licence 'foo' unknown",
                    suppressed="accepted <b>@octocat</b> [y](http://evil)",
                ),
                Finding("weights.pickle", Severity.info, "pytorch_model.bin present (not loaded)"),
            ],
            revision="abc123",
        ),
        TargetReport("examples/clean", []),
    ]


def test_formats_and_unknown_format():
    assert FORMATS == ("text", "json", "markdown", "sarif", "html", "cyclonedx", "spdx")
    with pytest.raises(ValueError, match="unknown report format"):
        render(make_reports(), "xml", CATALOGUE, version="1.0")


def test_templates_are_found():
    d = templates_dir()
    for name in ("text.j2", "markdown.j2", "html.j2", "attribution.j2"):
        assert (d / name).is_file(), name


# -- JSON --------------------------------------------------------------------------------------------------------
def test_json_contract():
    reports = make_reports()
    doc = json.loads(render(reports, "json", CATALOGUE, version="9.9.9"))
    assert list(doc) == ["tool", "version", "targets", "summary"]
    assert doc["tool"] == "originscan" and doc["version"] == "9.9.9"
    assert doc["targets"] == [r.to_json() for r in reports]
    first = doc["targets"][0]["findings"][1]
    assert set(first) >= {"rule", "severity", "message", "path", "evidence"}
    assert first["rule"] == "license.incompatible" and first["severity"] == "high"
    # active findings only; suppressed ones counted on their own
    assert doc["summary"] == {"critical": 1, "high": 1, "medium": 1, "low": 0, "info": 1, "suppressed": 1}
    assert doc["targets"][0]["findings"][3]["suppressed"].startswith("accepted")


# -- text --------------------------------------------------------------------------------------------------------
def test_text_plain():
    out = render(make_reports(), "text", CATALOGUE, version="1.0", color=False, width=200)
    assert "\x1b" not in out and "\x07" not in out  # no colour, and the card's escape sequence is defanged
    assert "\\x1b[2J" in out and "\\x07" in out
    assert "[bold]boom[/bold]" in out  # markup in hostile text is printed, not interpreted
    assert "[x](javascript:alert(1))" in out
    for needle in (
        "examples/llama3v",
        "abc123",
        "examples/clean",
        "no findings",
        "README.md:3",
        "tokenizer_config.json:12",
        "Publish under the base model's licence.",
        "Declare base_model in the card.",
    ):
        assert needle in out, needle
    # sorted by severity, most severe first
    order = [
        out.index(r)
        for r in ("card.base_model_undeclared", "license.incompatible", "attribution.missing", "weights.pickle")
    ]
    assert order == sorted(order)
    # suppressed: shown after the active ones, with the reason, and counted separately
    assert out.index("1 suppressed") > out.index("weights.pickle")
    assert "accepted <b>@octocat</b> [y](http://evil)" in out
    last = out.strip().splitlines()[-1]
    assert last.startswith("Summary: 4 findings (1 critical, 1 high, 1 medium, 1 info) in 2 targets; 1 suppressed")
    assert all(line == line.rstrip() for line in out.splitlines())


def test_text_colour():
    out = render(make_reports(), "text", CATALOGUE, version="1.0", color=True, width=200)
    assert ANSI.search(out)
    plain = ANSI.sub("", out)
    assert "CRITICAL" in plain and "[bold]boom[/bold]" in plain
    assert "\x1b[2J" not in out  # only SGR colour codes, never the card's own sequences


def test_text_wraps_under_the_message():
    long = "word " * 60
    out = render(
        [TargetReport("t", [Finding("license.unknown", Severity.low, long)])],
        "text",
        CATALOGUE,
        version="1.0",
        width=60,
    )
    lines = [ln for ln in out.splitlines() if "word" in ln]
    assert len(lines) > 1 and all(len(ln) <= 60 for ln in lines)
    assert all(ln.startswith(" " * 12 + "word") for ln in lines)


# -- Markdown ----------------------------------------------------------------------------------------------------
def test_escape_markdown():
    assert escape_markdown("a|b") == "a\\|b"
    assert escape_markdown("`x`") == "\\`x\\`"
    assert escape_markdown("<script>") == "&lt;script&gt;"
    assert escape_markdown("AT&T") == "AT&amp;T"
    assert escape_markdown("@octocat") == "@\u200boctocat"
    assert escape_markdown("[x](javascript:alert(1))") == "\\[x\\](javascript:alert(1))"
    assert escape_markdown("![img](http://x/y.png)") == "!\\[img\\](http\u200b://x/y.png)"  # no autolink either
    assert escape_markdown("*a* _b_ ~c~") == "\\*a\\* \\_b\\_ \\~c\\~"
    assert escape_markdown("back\\slash") == "back\\\\slash"
    assert escape_markdown("line1\nline2\r\n") == "line1 line2 "
    assert escape_markdown("fixes #12") == "fixes #\u200b12"
    assert escape_markdown("\x1b[31m") == "\\\\x1b\\[31m"
    assert escape_markdown(None) == "" and escape_markdown(3) == "3"


def _unescaped_pipes(line: str) -> int:
    return len(re.findall(r"(?<!\\)\|", line))


def test_markdown():
    out = render(make_reports(), "markdown", CATALOGUE, version="1.0")
    assert "<script>" not in out and "&lt;script&gt;" in out
    assert "@octocat" not in out and "@\u200boctocat" in out
    assert "[x](" not in out and "[y](" not in out
    assert "<b>" not in out
    assert "\x1b" not in out
    assert "`card.base_model_undeclared`" in out
    rows = [ln for ln in out.splitlines() if ln.startswith("|")]
    assert rows and all(_unescaped_pipes(r) == 6 for r in rows)  # hostile pipes cannot add cells
    assert "### examples/llama3v" in out and "No findings." in out
    # suppressed findings: folded away, with their reason
    details = out[out.index("<details>") : out.index("</details>")]
    assert "1 suppressed" in details and "license.unknown" in details and "accepted &lt;b&gt;" in details
    active = out[: out.index("<details>")]
    assert "license.unknown" not in active
    assert "4 findings (1 critical, 1 high, 1 medium, 1 info) in 2 targets; 1 suppressed" in out


# -- SARIF -------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sarif_schema():
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    jsonschema.Draft7Validator.check_schema(schema)
    return schema


def _validate(schema, doc):
    validator = jsonschema.Draft7Validator(schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:5])


def test_sarif_valid_and_shaped(sarif_schema):
    doc = json.loads(render(make_reports(), "sarif", CATALOGUE, version="1.2.3"))
    _validate(sarif_schema, doc)
    assert doc["$schema"] == "https://json.schemastore.org/sarif-2.1.0.json" and doc["version"] == "2.1.0"
    assert len(doc["runs"]) == 1
    run = doc["runs"][0]
    driver = run["tool"]["driver"]
    assert driver["name"] == "originscan" and driver["version"] == "1.2.3"
    assert driver["informationUri"].startswith("https://")
    rule_ids = [r["id"] for r in driver["rules"]]
    assert sorted(rule_ids) == sorted(
        {
            "license.incompatible",
            "card.base_model_undeclared",
            "attribution.missing",
            "license.unknown",
            "weights.pickle",
        }
    )
    assert len(rule_ids) == len(set(rule_ids))
    inc = driver["rules"][rule_ids.index("license.incompatible")]
    assert inc["shortDescription"]["text"] == "Licence incompatible with the base model's"
    assert inc["fullDescription"]["text"] == "The base model's licence does not allow this licence."
    assert inc["help"]["text"] == "Publish under the base model's licence."
    assert inc["defaultConfiguration"]["level"] == "error" and inc["name"]
    # a rule missing from the catalogue still gets a descriptor
    assert driver["rules"][rule_ids.index("weights.pickle")]["defaultConfiguration"]["level"] == "note"

    results = run["results"]
    assert len(results) == 5
    for res in results:
        assert driver["rules"][res["ruleIndex"]]["id"] == res["ruleId"]
        loc = res["locations"][0]["physicalLocation"]
        assert loc["region"]["startLine"] >= 1
        assert re.fullmatch(r"[0-9a-f]{64}", res["partialFingerprints"]["originscan/v1"])
        assert res["properties"]["target"] == "examples/llama3v"
    by_rule = {r["ruleId"]: r for r in results}
    assert {k: v["level"] for k, v in by_rule.items()} == {
        "card.base_model_undeclared": "error",
        "license.incompatible": "error",
        "attribution.missing": "warning",
        "license.unknown": "note",
        "weights.pickle": "note",
    }
    inc_loc = by_rule["license.incompatible"]["locations"][0]["physicalLocation"]
    assert inc_loc["artifactLocation"]["uri"] == "examples/llama3v/README.md"
    assert inc_loc["region"]["startLine"] == 3
    # no path: the model card, line 1
    pickle_loc = by_rule["weights.pickle"]["locations"][0]["physicalLocation"]
    assert pickle_loc == {"artifactLocation": {"uri": "examples/llama3v/README.md"}, "region": {"startLine": 1}}
    # suppressed results stay in the log, marked
    assert by_rule["license.unknown"]["suppressions"] == [
        {"kind": "external", "justification": "accepted <b>@octocat</b> [y](http://evil)"}
    ]
    assert all("suppressions" not in r for k, r in by_rule.items() if k != "license.unknown")
    # hostile text is data in SARIF: kept (JSON-escaped), control characters made visible
    msg = by_rule["card.base_model_undeclared"]["message"]["text"]
    assert "<script>" in msg and "\x1b" not in msg and "\\x1b[2J" in msg
    assert by_rule["card.base_model_undeclared"]["properties"]["severity"] == "critical"


def test_sarif_edge_cases(sarif_schema, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    reports = [
        TargetReport(".", [Finding("license.unknown", Severity.low, "x", path="dir with space/a#b.json", line=0)]),
        TargetReport(str(tmp_path / "models" / "m"), [Finding("license.unknown", Severity.low, "y", path="c.json")]),
        TargetReport("hf:org/model", [Finding("source.unreadable", Severity.medium, "gone")], error="not found"),
        TargetReport("examples/new", [Finding("license.unknown", Severity.low, "z", status="new")]),
    ]
    doc = json.loads(render(reports, "sarif", {}, version="0.0.1"))
    _validate(sarif_schema, doc)
    results = doc["runs"][0]["results"]
    uris = [r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in results]
    assert uris == ["dir%20with%20space/a%23b.json", "models/m/c.json", "README.md", "examples/new/README.md"]
    assert results[0]["locations"][0]["physicalLocation"]["region"]["startLine"] == 1
    assert results[3]["baselineState"] == "new"
    inv = doc["runs"][0]["invocations"][0]
    assert inv["executionSuccessful"] is False
    assert "hf:org/model: not found" in inv["toolExecutionNotifications"][0]["message"]["text"]
    # an empty scan is still a valid log
    empty = json.loads(render([], "sarif", {}, version="0.0.1"))
    _validate(sarif_schema, empty)
    assert empty["runs"][0]["results"] == [] and empty["runs"][0]["tool"]["driver"]["rules"] == []


def test_fingerprint_is_stable():
    a = Finding("weights.match", Severity.high, "score 0.91 over 12 layers (p=1e-9)", path="model.safetensors")
    b = Finding("weights.match", Severity.high, "score 0.93 over 12 layers (p=3e-10)", path="model.safetensors")
    c = Finding("weights.other", Severity.high, a.message, path="model.safetensors")
    assert fingerprint("t", a) == fingerprint("t", b)
    assert fingerprint("t", a) != fingerprint("t", c)
    assert fingerprint("t", a) != fingerprint("u", a)


def test_sarif_with_real_catalogue(sarif_schema):
    knowledge = pytest.importorskip("scanner.knowledge")
    cat = knowledge.catalogue()
    findings = [Finding(rid, rule.severity, f"{rid} fired") for rid, rule in cat.items()]
    doc = json.loads(render([TargetReport(".", findings)], "sarif", cat, version="1.0"))
    _validate(sarif_schema, doc)
    assert len(doc["runs"][0]["tool"]["driver"]["rules"]) == len(cat)


# -- HTML --------------------------------------------------------------------------------------------------------
def test_html():
    out = render(make_reports(), "html", CATALOGUE, version="1.0")
    assert out.lstrip().startswith("<!DOCTYPE html>") and out.rstrip().endswith("</html>")
    assert "<script>" not in out and "&lt;script&gt;" in out
    assert "<b>@octocat</b>" not in out and "&lt;b&gt;@octocat&lt;/b&gt;" in out
    assert "\x1b" not in out
    assert 'class="suppressed"' in out and "suppressed: accepted" in out
    assert "examples/clean" in out and "No findings." in out
    assert "http://" not in out.split("<body>")[0] and "https://" not in out.split("<body>")[0]  # standalone
    assert environment("html").autoescape("html.j2") is True and environment("markdown").autoescape is False


def test_html_error_target_escaped():
    out = render(
        [TargetReport("<img src=x onerror=alert(1)>", [], error="<i>boom</i>")], "html", CATALOGUE, version="1.0"
    )
    assert "<img" not in out and "<i>" not in out and "&lt;i&gt;boom&lt;/i&gt;" in out


# -- attribution -------------------------------------------------------------------------------------------------
BLOCKS = [
    AttributionBlock(
        "llama3",
        "Meta Llama 3 Community License Agreement",
        "https://github.com/meta-llama/llama3/blob/main/LICENSE",
        upstream=["meta-llama/Meta-Llama-3-8B (declared base_model)"],
        notice="Meta Llama 3 is licensed under the Meta Llama 3 Community License, Copyright © Meta Platforms, "
        "Inc. All Rights Reserved.",
        attribution="Built with Meta Llama 3",
        naming={"rule": "prefix", "text": "Llama 3"},
        license_copy=True,
        use_restrictions=True,
    ),
    AttributionBlock(
        "minicpm",
        "MiniCPM Model License",
        None,
        upstream=["openbmb/MiniCPM-Llama3-V-2_5"],
        naming={"rule": "contains", "text": "MiniCPM"},
    ),
    AttributionBlock(
        "apache-2.0",
        "Apache License 2.0",
        None,
        upstream=["x/y\x1b[2J (config match)"],
        naming="keep the name",
        license_copy=True,
        mark_modified=True,
    ),
]


def test_attribution():
    out = render_attribution(BLOCKS)
    assert out.count("=" * 80) == 2 * len(BLOCKS)
    first = out[: out.index("MiniCPM Model License")]
    assert "Meta Llama 3 Community License Agreement (llama3)" in first
    assert "Upstream: meta-llama/Meta-Llama-3-8B (declared base_model)" in first
    assert "Meta Llama 3 is licensed under the Meta Llama 3 Community License, Copyright © Meta" in first
    assert '"Built with Meta Llama 3"' in first
    assert 'must begin with "Llama 3"' in first
    assert "copy of the licence text" in first and "use restrictions" in first
    assert "https://github.com/meta-llama/llama3/blob/main/LICENSE" in first
    second = out[out.index("MiniCPM Model License") : out.index("Apache License 2.0")]
    assert "Upstream: openbmb/MiniCPM-Llama3-V-2_5" in second and 'must include "MiniCPM"' in second
    assert "Notice" not in second and "Also required" not in second
    third = out[out.index("Apache License 2.0") :]
    assert "\x1b" not in out and "x/y\\x1b[2J" in third
    assert "Naming: keep the name" in third and "modified" in third
    assert "&lt;" not in out  # plain text, not HTML-escaped


def test_attribution_empty():
    assert render_attribution([]).strip() == ""
