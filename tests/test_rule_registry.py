"""One rule registry: rules/catalogue.yaml owns ids and default severities, each check declares what it may emit,
checks are discovered from scanner/checks/, and the data files are validated on load with file and key named."""

from __future__ import annotations

import pkgutil
import re
from pathlib import Path

import pytest
from helpers import assert_fires, assert_quiet
from servers.hub import make_repo

import scanner.checks
from scanner.checks import engine
from scanner.errors import UsageError
from scanner.findings import Severity
from scanner.knowledge import KnowledgeBaseError, UnknownRuleError, _Entry, _rule, catalogue
from scanner.pipeline import build_context, scan_target
from scanner.policy import Policy, load_policy
from scanner.results import TargetReport
from scanner.sources.local import LocalSource

SCANNER = Path(scanner.__file__).parent.parent
RULE_LITERAL = re.compile(
    r"""["']((?:license|card|attribution|config|tokenizer|weights|code|security|source)"""
    r"""\.[a-z_]+)["']"""
)


def test_every_module_of_checks_is_discovered():
    checks = engine.discover()
    modules = {c.fn.__module__ for c in checks}
    on_disk = {f"scanner.checks.{m.name}" for m in pkgutil.iter_modules(scanner.checks.__path__)} - {
        "scanner.checks.engine"
    }
    assert modules == on_disk
    assert all(c.rules and c.rules <= catalogue().keys() for c in checks)


def test_every_rule_id_in_the_code_is_in_the_catalogue_and_every_rule_can_be_raised():
    code = "\n".join(p.read_text(encoding="utf-8") for p in (SCANNER / "scanner").rglob("*.py"))
    used = set(RULE_LITERAL.findall(code)) - {"config.json", "tokenizer.json", "tokenizer.model"}  # file names
    missing = used - catalogue().keys()
    assert not missing, f"raised but not in rules/catalogue.yaml: {sorted(missing)}"
    declared = set().union(*(c.rules for c in engine.discover()))
    assert catalogue().keys() - declared - used == set()  # no rule nobody can raise


def test_a_check_cannot_declare_an_unknown_rule():
    with pytest.raises(UnknownRuleError, match="not.a_rule"):
        engine.check("not.a_rule")
    with pytest.raises(TypeError):
        engine.check()


def _context(tmp_path):
    (tmp_path / "README.md").write_text("---\nlicense: apache-2.0\n---\n# m\n", encoding="utf-8")
    return build_context(LocalSource(str(tmp_path)).snapshot(), Policy())


def test_an_undeclared_rule_is_refused(tmp_path, monkeypatch):
    ctx = _context(tmp_path)

    def rogue(ctx):
        yield ctx.finding("license.missing", "declared: kept")
        yield ctx.finding("license.denied", "not declared: refused")

    monkeypatch.setattr(engine, "REGISTRY", [engine.RegisteredCheck(rogue, frozenset({"license.missing"}))])
    monkeypatch.setattr(engine, "discover", lambda: tuple(engine.REGISTRY))
    with pytest.raises(engine.UndeclaredRuleError, match="license.denied"):
        engine.run_checks(ctx)
    monkeypatch.setenv("ORIGINSCAN_STRICT_RULES", "0")  # a user's scan: an internal-error finding, not a crash
    report = TargetReport("m", engine.run_checks(ctx))
    assert_fires(report, "license.missing")
    assert assert_fires(report, "source.internal_error")[0].evidence["emitted"] == "license.denied"
    assert_quiet(report, "license.denied")


def test_a_repo_that_is_not_there_is_source_not_found(hub):
    make_repo(hub.root, "acme/here", {"README.md": "---\nlicense: mit\n---\n# here\n"})
    missing = scan_target("hf:acme/gone", Policy())
    assert_fires(missing, "source.not_found")
    assert missing.error
    here = scan_target("hf:acme/here", Policy())
    assert_quiet(here, "source.not_found")
    assert_quiet(here, "source.internal_error")  # every real check declares what it emits


def test_source_findings_take_the_catalogue_severity(tmp_path):
    (tmp_path / "README.md").write_bytes(b"---\nlicense: mit\n---\n\xff\xfe not utf-8\n")
    (tmp_path / "config.json").write_text("[" * 5000 + "]" * 5000, encoding="utf-8")
    snap = LocalSource(str(tmp_path)).snapshot()
    got = {f.rule: f.severity for f in snap.problems}
    assert got["source.encoding"] == catalogue()["source.encoding"].severity == Severity.low
    assert got["source.malformed"] == catalogue()["source.malformed"].severity


@pytest.mark.parametrize(
    "raw, key",
    [
        ({"id": "license.x", "severity": "severe", "title": "t", "doc": "d", "fix": "f"}, "severity"),
        ({"id": "nofamily", "severity": "low", "title": "t", "doc": "d", "fix": "f"}, "id"),
        ({"id": "license.x", "severity": "low", "doc": "d", "fix": "f"}, "title"),
    ],
)
def test_catalogue_entries_are_validated_naming_file_and_key(raw, key):
    with pytest.raises(KnowledgeBaseError, match=rf"rules/catalogue.yaml: rules\[3\].* key '{key}'"):
        _rule(_Entry("catalogue.yaml", "rules", 3, raw))


@pytest.mark.parametrize(
    "text, needle",
    [
        ("fail_on: high\nsevertiy:\n  card.missing: low\n", "key 'severtiy'"),
        ("severity:\n  lisense.*: low\n", "key 'severity.lisense.*'"),
        ("severity:\n  card.missing: huge\n", "key 'severity.card.missing'"),
        ("suppress:\n  - rule: card.mising\n    reason: typo\n", r"key 'suppress\[0\].rule'"),
        ("licenses:\n  allow: apache-2.0\n", "key 'licenses.allow'"),
    ],
)
def test_policy_is_validated_naming_file_and_key(tmp_path, text, needle):
    pol = tmp_path / "policy.yml"
    pol.write_text(text, encoding="utf-8")
    with pytest.raises(UsageError, match=rf"policy {re.escape(str(pol))} {needle}"):
        load_policy(str(pol))


def test_a_valid_policy_with_globs_loads(tmp_path):
    pol = tmp_path / "policy.yml"
    pol.write_text(
        "severity:\n  attribution.*: low\nsuppress:\n  - rule: card.missing\n    reason: mirror\n", encoding="utf-8"
    )
    p = load_policy(str(pol))
    assert p.severity == {"attribution.*": Severity.low} and p.suppressions[0].rule == "card.missing"
