"""The bundled examples: `originscan demo` finds what each EXAMPLE.md promises, and the CLI keeps its contract."""

from __future__ import annotations

import json
import shutil
import sys

import pytest
from helpers import REPO_ROOT, run_cli

from scanner.findings import FAMILIES, Severity
from scanner.knowledge import catalogue

EXAMPLES = REPO_ROOT / "examples"
SEVERITIES = {s.name for s in Severity}

# What each example must produce (active findings), and rules it must not produce.
EXPECTED: dict[str, set[str]] = {
    "llama3-v-style": {
        "weights.disguised_copy",
        "tokenizer.upstream_special_tokens",
        "card.base_model_undeclared",
        "license.incompatible",
        "license.copy_missing",
        "license.notice_missing",
        "license.use_restrictions_missing",
        "attribution.phrase_missing",
        "attribution.naming",
        "security.remote_code",
        "code.copied_undeclared",
        "code.notice_removed",
    },
    "clean-llama3-finetune": {"config.upstream_signature"},
    "gemma-apache-relicense": {
        "license.incompatible",
        "license.copy_missing",
        "license.notice_missing",
        "license.use_restrictions_missing",
        "config.upstream_signature",
    },
    "noncommercial-base-relicensed": {
        "license.incompatible",
        "license.copy_missing",
        "license.notice_missing",
        "attribution.phrase_missing",
    },
    "card-license-mismatch": {"license.card_file_mismatch"},
    "license-other-unnamed": {"license.other_unnamed", "license.not_allowed"},
    "unknown-license": {"license.unknown"},
    "malformed-card": {"card.malformed", "source.encoding", "source.malformed", "license.missing"},
    "no-card-no-license": {"card.missing", "license.missing"},
    "undeclared-copy": {
        "weights.exact_copy",
        "card.base_model_undeclared",
        "license.denied",
        "license.incompatible",
        "attribution.naming",
    },
    "wrong-base": {
        "weights.base_mismatch",
        "card.base_model_mismatch",
        "tokenizer.upstream_special_tokens",
        "license.incompatible",
    },
    "undeclared-derivative": {"weights.undeclared_derivative"},
    "pickle-remote-code": {
        "security.pickle_weights",
        "security.pickle_unsafe_import",
        "security.remote_code",
        "card.base_model_unverified",
        "source.unverifiable",
    },
}
MUST_NOT: dict[str, set[str]] = {
    "llama3-v-style": {"weights.exact_copy", "weights.undeclared_derivative"},
    "undeclared-copy": {"weights.disguised_copy"},
    "undeclared-derivative": {"weights.disguised_copy", "card.base_model_undeclared"},
    "wrong-base": {"weights.disguised_copy", "weights.undeclared_derivative"},
}


@pytest.fixture(scope="module")
def demo():
    from scanner.demo import run_demo

    return {r.target.removeprefix("examples/"): r for r in run_demo()}


def active(report) -> set[str]:
    return {f.rule for f in report.active()}


def test_there_are_enough_examples_and_each_is_documented():
    repos = sorted(p.name for p in EXAMPLES.iterdir() if p.is_dir() and p.name != "upstreams")
    assert len(repos) >= 9
    assert set(repos) == set(EXPECTED), "keep EXPECTED in step with examples/"
    for name in repos + [f"upstreams/{u.name}" for u in (EXAMPLES / "upstreams").iterdir()]:
        assert (EXAMPLES / name / "EXAMPLE.md").is_file(), f"examples/{name} has no EXAMPLE.md"


def test_examples_are_small():
    total = sum(p.stat().st_size for p in EXAMPLES.rglob("*") if p.is_file())
    assert total < 3 * 1024 * 1024
    for w in EXAMPLES.rglob("*.safetensors"):
        assert w.stat().st_size <= 300 * 1024, w


def test_generated_files_are_up_to_date():
    """make_examples.py reproduces every committed weight / pickle file byte for byte."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_examples", EXAMPLES / "make_examples.py")
    make_examples = importlib.util.module_from_spec(spec)
    dont_write, sys.dont_write_bytecode = sys.dont_write_bytecode, True  # no examples/__pycache__ for the demo to scan
    try:
        spec.loader.exec_module(make_examples)
    finally:
        sys.dont_write_bytecode = dont_write
    for rel, data in make_examples.build().items():
        assert (EXAMPLES / rel).read_bytes() == data, f"examples/{rel} is stale: run python examples/make_examples.py"


def test_example_md_is_not_read_by_the_scanner():
    from scanner.file_formats import is_weight_file
    from scanner.sources.interface import is_text_file

    assert not is_text_file("EXAMPLE.md") and not is_weight_file("EXAMPLE.md")


def test_demo_scans_every_example(demo):
    assert set(demo) == set(EXPECTED)
    for name, report in demo.items():
        assert report.error is None, (name, report.error)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_gets_its_findings(demo, name):
    got = active(demo[name])
    assert EXPECTED[name] <= got, f"{name}: missing {sorted(EXPECTED[name] - got)}"
    assert not MUST_NOT.get(name, set()) & got, f"{name}: unexpected {sorted(MUST_NOT[name] & got)}"


def test_llama3_v_style_is_caught_as_minicpm(demo):
    report = demo["llama3-v-style"]
    (w,) = [f for f in report.active() if f.rule == "weights.disguised_copy"]
    assert w.evidence["upstream"] == "openbmb/MiniCPM-Llama3-V-2_5" and w.severity == Severity.critical
    assert w.evidence["p_value"] < 1e-8
    tok = [f for f in report.active() if f.rule == "tokenizer.upstream_special_tokens"]
    assert any(
        f.evidence["upstream"] == "openbmb/MiniCPM-Llama3-V-2_5" and len(f.evidence["tokens"]) == 12 for f in tok
    )
    (undeclared,) = [f for f in report.active() if f.rule == "card.base_model_undeclared"]
    assert undeclared.evidence["upstreams"] == ["openbmb/MiniCPM-Llama3-V-2_5"]


def test_clean_example_has_nothing_above_info(demo):
    report = demo["clean-llama3-finetune"]
    assert [(f.rule, f.message) for f in report.findings if f.severity > Severity.info] == []


def test_demo_policy_is_applied(demo):
    # active suppression with a future expiry
    (na,) = [f for f in demo["unknown-license"].findings if f.rule == "license.not_allowed"]
    assert na.suppressed and "LEGAL-1234" in na.suppressed
    # expired suppression: not suppressed, and it says so
    pickles = [f for f in demo["pickle-remote-code"].findings if f.rule == "security.pickle_weights"]
    assert pickles and all(f.suppressed is None and "suppression expired 2024-06-30" in f.message for f in pickles)
    # severity override
    (rc,) = [f for f in demo["pickle-remote-code"].findings if f.rule == "security.remote_code"]
    assert rc.severity == Severity.medium
    # deny list
    assert "license.denied" in active(demo["undeclared-copy"])


def test_demo_cli_prints_every_example():
    proc = run_cli("demo", timeout=300)
    assert proc.returncode in (0, 1), proc.stderr
    assert "Traceback" not in proc.stderr
    for name in EXPECTED:
        assert name in proc.stdout


def test_demo_cli_json():
    proc = run_cli("demo", "--format", "json", timeout=300)
    assert proc.returncode in (0, 1), proc.stderr
    data = json.loads(proc.stdout)
    targets = {t["target"].removeprefix("examples/"): t for t in data["targets"]}
    assert set(targets) == set(EXPECTED)
    assert "weights.disguised_copy" in {f["rule"] for f in targets["llama3-v-style"]["findings"]}


# -- `originscan scan … --format json`: the contract ----------------------------------------------------------------
def check_contract(data: dict) -> None:
    assert data["tool"] == "originscan" and isinstance(data["version"], str) and data["version"]
    assert isinstance(data["targets"], list) and data["targets"]
    rules = set(catalogue())
    for t in data["targets"]:
        assert isinstance(t["target"], str) and isinstance(t["findings"], list)
        for f in t["findings"]:
            assert {"rule", "severity", "message", "path", "evidence"} <= set(f)
            assert f["rule"] in rules and f["rule"].split(".", 1)[0] in FAMILIES
            assert f["severity"] in SEVERITIES
            assert isinstance(f["message"], str) and f["message"]
            assert f["path"] is None or isinstance(f["path"], str)
            assert isinstance(f["evidence"], dict)


def test_cli_scan_json_clean_example_exits_0(tmp_path):
    proc = run_cli("scan", "examples/clean-llama3-finetune", "--format", "json", cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(proc.stdout)
    check_contract(data)
    assert data["targets"][0]["target"] == "examples/clean-llama3-finetune"
    assert all(f["severity"] == "info" for f in data["targets"][0]["findings"])


def test_cli_scan_json_bad_example_exits_1():
    proc = run_cli("scan", "examples/gemma-apache-relicense", "--format", "json")
    assert proc.returncode == 1, proc.stderr
    data = json.loads(proc.stdout)
    check_contract(data)
    rules = {f["rule"] for f in data["targets"][0]["findings"]}
    assert {"license.incompatible", "license.use_restrictions_missing"} <= rules
    (inc,) = [f for f in data["targets"][0]["findings"] if f["rule"] == "license.incompatible"]
    assert inc["severity"] == "high" and inc["path"] == "README.md"


def test_cli_scan_several_targets_and_fail_on():
    args = ["scan", "examples/clean-llama3-finetune", "examples/card-license-mismatch", "--format", "json"]
    proc = run_cli(*args)
    assert proc.returncode == 1
    check_contract(json.loads(proc.stdout))
    assert len(json.loads(proc.stdout)["targets"]) == 2
    assert run_cli(*args, "--fail-on", "critical").returncode == 0
    assert run_cli(*args, "--fail-on", "never").returncode == 0
    assert run_cli("scan", "examples/clean-llama3-finetune", "--fail-on", "info").returncode == 1


def test_cli_scan_with_policy_and_index(tmp_path):
    """`index add` the MiniCPM stand-in, then scan the Llama3-V example with the demo policy, as a user would."""
    index = tmp_path / "idx.sqlite"
    add = run_cli(
        "index",
        "add",
        "examples/upstreams/minicpm-llama3-v-2_5",
        "--name",
        "openbmb/MiniCPM-Llama3-V-2_5",
        "--license",
        "minicpm",
        "--index",
        str(index),
    )
    assert add.returncode == 0, add.stderr
    proc = run_cli(
        "scan",
        "examples/llama3-v-style",
        "--index",
        str(index),
        "--policy",
        "examples/.originscan.yml",
        "--format",
        "json",
    )
    assert proc.returncode == 1, proc.stderr
    findings = json.loads(proc.stdout)["targets"][0]["findings"]
    assert "weights.disguised_copy" in {f["rule"] for f in findings}


def test_cli_scan_copied_example_outside_the_repo(tmp_path):
    """A new user's checkout elsewhere: the example scans the same from any working directory."""
    dst = tmp_path / "llama3-v-style"
    shutil.copytree(EXAMPLES / "llama3-v-style", dst)
    proc = run_cli("scan", str(dst), "--format", "json", cwd=tmp_path)
    assert proc.returncode == 1
    rules = {f["rule"] for f in json.loads(proc.stdout)["targets"][0]["findings"]}
    assert {"tokenizer.upstream_special_tokens", "card.base_model_undeclared"} <= rules


@pytest.mark.parametrize("fmt", ["text", "markdown", "sarif", "html"])
def test_cli_scan_other_formats_run(fmt):
    proc = run_cli("scan", "examples/malformed-card", "--format", fmt)
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.strip() and "Traceback" not in proc.stderr
