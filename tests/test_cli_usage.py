"""The command line as a user meets it, through the installed console script: usage errors are usage errors,
files that cannot be written or read are one clear line, `compare` says its verdict in its exit status."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO_ROOT, make_repo, tiny_llm, without_root_override

ENTRY = Path(sys.executable).parent / "originscan"
EXAMPLES = REPO_ROOT / "examples"


def originscan(*args: str, env: dict[str, str] | None = None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(ENTRY), *args], capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})}, **kw
    )


def no_crash(r: subprocess.CompletedProcess) -> None:
    assert "internal error" not in r.stderr and "Traceback" not in r.stderr, r.stderr


# == usage =========================================================================================================
def test_version_prints_the_version():
    from scanner import __version__

    r = originscan("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"originscan {__version__}", r.stderr


@pytest.mark.parametrize("args", [["-h"], ["--help"], ["scan", "-h"], ["index", "update", "-h"]])
def test_help_options_print_the_help(args):
    r = originscan(*args)
    assert r.returncode == 0 and "Usage: originscan" in r.stdout
    no_crash(r)


@pytest.mark.parametrize(
    "args, says",
    [
        (["scan"], "Missing argument"),
        (["compare", "a"], "Missing argument"),
        (["bogus"], "No such command 'bogus'"),
        (["scan", "--bogus", "x"], "No such option: --bogus"),
        (["index", "nope"], "No such command 'nope'"),
        (["scan", "x", "--workers", "2"], "No such option: --workers"),
        (["sweep", "hf:acme", "--workers", "zero"], "Invalid value for '--workers'"),
    ],
)
def test_usage_errors_exit_2_with_the_usage_line(args, says):
    r = originscan(*args)
    assert r.returncode == 2, (r.returncode, r.stderr)
    no_crash(r)
    lines = r.stderr.splitlines()
    assert lines[0].startswith("Usage: originscan") and "-h' for help" in lines[1]
    assert lines[-1].startswith("originscan: error:") and says in lines[-1]


def test_bare_command_prints_the_help_not_an_error():
    r = originscan()
    assert r.returncode == 2 and "Usage: originscan" in r.stderr + r.stdout
    no_crash(r)


def test_shell_completion_completes_commands_and_options():
    env = {"_ORIGINSCAN_COMPLETE": "complete_bash", "COMP_WORDS": "originscan sc", "COMP_CWORD": "1"}
    assert originscan(env=env).stdout.split() == ["scan"]
    env.update(COMP_WORDS="originscan scan --fa", COMP_CWORD="2")
    assert originscan(env=env).stdout.split() == ["--fail-on"]
    script = originscan("--show-completion", "bash")
    assert script.returncode == 0 and "_ORIGINSCAN_COMPLETE" in script.stdout


def test_a_malformed_target_message_is_plain_text():
    r = originscan("scan", "hf:")
    assert r.returncode == 2 and "malformed target" in r.stderr
    assert "\u200b" not in r.stderr


def test_a_workflow_command_at_the_start_of_a_line_is_still_broken():
    """Only a line that would start a GitHub Actions workflow command needs the zero-width break."""
    r = originscan("scan", "::error::x")
    assert r.returncode == 2 and not any(line.startswith("::") for line in r.stderr.splitlines())


# == files that cannot be written or read ==========================================================================
def as_a_user(*args: str) -> subprocess.CompletedProcess:
    return originscan(*args, preexec_fn=without_root_override)


def test_output_into_a_read_only_folder_is_one_clear_line(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        r = as_a_user("scan", str(EXAMPLES / "unknown-license"), "-o", str(ro / "r.json"), "-f", "json")
    finally:
        ro.chmod(0o755)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip() == f"originscan: cannot write {ro / 'r.json'}: permission denied"
    assert list(ro.iterdir()) == []  # no temporary file left behind


def test_an_unreadable_folder_gives_only_source_unreadable_and_exit_2(tmp_path):
    repo = make_repo(tmp_path, "locked", card={"license": "mit"}, weights={"model.safetensors": tiny_llm(seed=3)})
    repo.chmod(0o000)
    try:
        r = as_a_user("scan", str(repo), "-f", "json")
    finally:
        repo.chmod(0o755)
    assert r.returncode == 2, r.stderr
    no_crash(r)
    findings = json.loads(r.stdout)["targets"][0]["findings"]
    assert [f["rule"] for f in findings] == ["source.unreadable"] and "permission denied" in findings[0]["message"]


def test_a_readable_folder_is_not_source_unreadable(tmp_path):
    repo = make_repo(tmp_path, "open", card={"license": "mit"}, weights={"model.safetensors": tiny_llm(seed=3)})
    r = as_a_user("scan", str(repo), "-f", "json")
    assert r.returncode == 0, r.stderr
    assert "source.unreadable" not in {f["rule"] for f in json.loads(r.stdout)["targets"][0]["findings"]}


# == compare: the verdict in the exit status =======================================================================
@pytest.mark.parametrize(
    "suspect, reference, verdict, status",
    [
        ("undeclared-derivative", "upstreams/llama-3-8b", "derived", 1),
        ("llama3-v-style", "upstreams/llama-3-8b", "independent", 0),
        ("unknown-license", "undeclared-derivative", "inconclusive", 3),  # the suspect has no weights
    ],
)
def test_compare_exit_status_per_verdict(suspect, reference, verdict, status):
    r = originscan("compare", str(EXAMPLES / suspect), str(EXAMPLES / reference), "-f", "json")
    assert r.returncode == status, r.stderr
    doc = json.loads(r.stdout)
    assert doc["verdict"] == verdict and doc["exit_status"] == status
    text = originscan("compare", str(EXAMPLES / suspect), str(EXAMPLES / reference))
    assert text.returncode == status and text.stdout.startswith(f"verdict: {verdict}")


# == the policy file: next to the model, up to the git root, then the current directory ============================
def _policy(folder: Path, fail_on: str) -> None:
    (folder / ".originscan.yml").write_text(f"fail_on: {fail_on}\n", encoding="utf-8")


def test_policy_next_to_the_model_wins_over_the_git_root_and_the_cwd(tmp_path):
    from scanner.policy import load_policy, policy_search_dirs

    root = tmp_path / "project"
    model = make_repo(root / "models", "m", card={"license": "mit"})
    (root / ".git").mkdir()
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    _policy(cwd, "critical")
    _policy(root, "medium")
    assert policy_search_dirs([str(model)], cwd=cwd) == [model.resolve(), (root / "models").resolve(), root, cwd]
    dirs = policy_search_dirs([str(model)], cwd=cwd)
    assert load_policy(None, dirs).source == str(root / ".originscan.yml")  # found at the git root
    _policy(model, "low")
    assert load_policy(None, dirs).source == str(model.resolve() / ".originscan.yml")  # next to the model first
    assert load_policy(None, policy_search_dirs(["hf:acme/m"], cwd=cwd)).source == str(cwd / ".originscan.yml")


def test_policy_above_a_folder_outside_git_is_not_used(tmp_path):
    from scanner.policy import policy_search_dirs

    model = make_repo(tmp_path / "loose", "m", card={"license": "mit"})
    _policy(tmp_path / "loose", "low")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    assert policy_search_dirs([str(model)], cwd=cwd) == [model.resolve(), cwd]


def test_scan_uses_the_policy_found_next_to_the_model(tmp_path):
    # its one finding is weights.not_compared (info): no index in this test's environment
    model = make_repo(tmp_path, "m", card={"license": "mit"}, weights={"model.safetensors": tiny_llm(seed=4)})
    r = originscan("scan", str(model), "-f", "json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    _policy(model, "info")
    r = originscan("scan", str(model), "-f", "json", cwd=tmp_path)
    assert r.returncode == 1 and json.loads(r.stdout)["targets"][0]["findings"], r.stderr


# == scan of a folder of model folders =============================================================================
def test_scan_of_a_folder_of_models_scans_each_and_says_so(tmp_path):
    models = tmp_path / "models"
    make_repo(models, "a", card={"license": "mit"})
    make_repo(models / "team", "b", card={"license": "apache-2.0"})
    r = originscan("scan", str(models), "-f", "json")
    targets = [t["target"] for t in json.loads(r.stdout)["targets"]]
    assert [Path(t).name for t in targets] == ["a", "b"]
    assert "holds no model itself; scanning the 2 model folders below it: a, team/b" in r.stderr
    assert "holds no model" not in originscan("-q", "scan", str(models), "-f", "json").stderr


def test_scan_of_a_folder_of_models_does_not_import_the_ci_package(tmp_path):
    models = tmp_path / "models"
    make_repo(models, "a", card={"license": "mit"})
    code = (
        "import sys\n"
        f"sys.argv = ['originscan', '-q', 'scan', {str(models)!r}, '-f', 'json', '-o', {str(tmp_path / 'r.json')!r}]\n"
        "from scanner.cli import main\n"
        "try:\n    main()\nexcept SystemExit as e:\n    print('exit', e.code)\n"
        "print(sorted(m for m in sys.modules if m == 'scanner.ci' or m.startswith('scanner.ci.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
    assert out.stdout.splitlines()[-2:] == ["exit 0", "[]"], out.stdout + out.stderr
    assert [Path(t["target"]).name for t in json.loads((tmp_path / "r.json").read_text())["targets"]] == ["a"]


def test_scan_of_a_model_folder_is_not_expanded(tmp_path):
    model = make_repo(tmp_path, "m", card={"license": "mit"})
    make_repo(model, "sub", card={"license": "mit"})  # a model folder inside a model folder: still one model
    r = originscan("scan", str(model), "-f", "json")
    assert [Path(t["target"]).name for t in json.loads(r.stdout)["targets"]] == ["m"]
    assert "holds no model" not in r.stderr


# == JSON listings, output options =================================================================================
def test_rules_and_index_list_have_json_output(tmp_path):
    from scanner.knowledge import catalogue

    doc = json.loads(originscan("rules", "--format", "json").stdout)
    assert [r["id"] for r in doc["rules"]] == list(catalogue()) and all(r["fix"] and r["doc"] for r in doc["rules"])
    up = make_repo(tmp_path, "up", card={"license": "mit"}, weights={"model.safetensors": tiny_llm(seed=1)})
    index = tmp_path / "i.sqlite"
    assert originscan("index", "add", str(up), "--name", "acme/up", "--index", str(index)).returncode == 0
    listed = json.loads(originscan("index", "list", "--index", str(index), "-f", "json").stdout)
    assert [(m["name"], m["license"], m["kind"]) for m in listed["models"]] == [("acme/up", "mit", "rows")]


def test_color_always_and_never(tmp_path):
    model = make_repo(tmp_path, "m", card={})
    assert "\x1b[" in originscan("--color", "always", "scan", str(model)).stdout
    assert "\x1b[" not in originscan("--color", "never", "scan", str(model)).stdout
    bad = originscan("--color", "sometimes", "scan", str(model))
    assert bad.returncode == 2 and "--color must be one of auto, always, never" in bad.stderr


def test_demo_says_which_stand_in_upstreams_it_registered():
    r = originscan("demo", "-f", "json")
    assert r.returncode == 0, r.stderr
    note = next(line for line in r.stderr.splitlines() if line.startswith("originscan demo: registered"))
    assert "meta-llama/Meta-Llama-3-8B" in note and "examples/upstreams/" in note and "stand-in" in note
    assert "originscan index update" in note
