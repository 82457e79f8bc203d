"""One reading of a fail-on threshold: `scan --fail-on`, `sweep --fail-on`, `ci pull-request --fail-on` (the
Action's `fail-on` input) and the policy file's `fail_on` all go through scanner.policy.parse_fail_on."""

from __future__ import annotations

import pytest
from helpers import make_repo, run_cli

from scanner.ci.github import PullRequestOptions, run_pull_request
from scanner.errors import UsageError
from scanner.findings import Severity
from scanner.policy import FAIL_ON_CHOICES, load_policy, parse_fail_on

CHOICES = "info, low, medium, high, critical, never"


@pytest.mark.parametrize("severity", list(Severity))
def test_every_severity_in_any_case(severity):
    assert parse_fail_on(severity.name) is severity
    assert parse_fail_on(f" {severity.name.upper()}\n") is severity


def test_never_fails_nothing():
    assert parse_fail_on("never") is None
    assert parse_fail_on("Never ") is None
    assert FAIL_ON_CHOICES == tuple(CHOICES.split(", "))


@pytest.mark.parametrize("bad", ["severe", "", "none", "high,critical", "3"])
def test_anything_else_is_one_usage_error(bad):
    with pytest.raises(UsageError) as err:
        parse_fail_on(bad)
    assert str(err.value) == f"--fail-on must be one of {CHOICES} (got {bad!r})"


def test_the_policy_file_reads_it_the_same(tmp_path):
    policy = tmp_path / "policy.yml"
    policy.write_text("fail_on: Never\n")
    assert load_policy(str(policy)).fail_on is None
    policy.write_text("fail_on: MEDIUM\n")
    assert load_policy(str(policy)).fail_on is Severity.medium
    policy.write_text("fail_on: sometimes\n")
    with pytest.raises(UsageError, match=rf"key 'fail_on' must be one of {CHOICES} \(got 'sometimes'\)"):
        load_policy(str(policy))


def test_scan_and_pull_request_mode_accept_and_refuse_alike(tmp_path):
    """The same value is refused with the same line by `scan` and by PR mode, and accepted alike."""
    repo = make_repo(tmp_path / "scan", card={"license": "mit"})
    refused = run_cli("scan", str(repo), "--fail-on", "severe")
    assert refused.returncode == 2
    said = f"--fail-on must be one of {CHOICES} (got 'severe')"
    assert said in refused.stderr

    ws = tmp_path / "ws"
    model = make_repo(ws, "m", card={"license": "other"})  # license.other_unnamed: medium
    log: list[str] = []
    out = tmp_path / "out"
    assert run_pull_request(PullRequestOptions(ws, fail_on="severe", output_dir=out), log=log.append) == 2
    assert said in log[0] and log[0].startswith("::error::")

    # accepted in any case by both, with the same outcome: a medium finding fails at medium, not at high
    for value, status in (("HIGH", 0), (" Medium", 1)):
        assert run_cli("scan", str(model), "--fail-on", value, "--format", "json").returncode == status
        log.clear()
        assert run_pull_request(PullRequestOptions(ws, fail_on=value, output_dir=out), log=log.append) == status
        assert not any(line.startswith("::error::") for line in log)
