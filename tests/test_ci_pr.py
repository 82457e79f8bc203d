"""Pull-request mode, driven as GitHub Actions would: an event file, a real git repo with base and head commits,
GITHUB_* variables, and a local stand-in for the REST API that records every call."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import git
import pytest
from servers.github_api import GitHubAPIServer

from scanner.ci.actions import workflow_command
from scanner.ci.github import MARKER, PullRequestOptions, run_pull_request
from scanner.report.ci import md

TOKEN = "ghs_SECRETtoken1234567890"
REPO = "acme/models"

LLAMA_CARD = """---
license: apache-2.0
base_model: meta-llama/Meta-Llama-3-8B
---
# A Llama fine-tune

Fine-tuned from Llama 3.
"""
# The same problems, a line lower: the findings must stay "existing".
LLAMA_CARD_SHIFTED = """---
language: en
license: apache-2.0
base_model: meta-llama/Meta-Llama-3-8B
---
# A Llama fine-tune

A new paragraph that moves every line.

Fine-tuned from Llama 3.
"""
HOSTILE_CARD = """---
license: "@octocat <img src=x onerror=alert(1)> [pwn](http://evil.example) | #12 www.evil.example"
base_model: meta-llama/Meta-Llama-3-8B
---
# Hostile
"""
CLEAN_CARD = """---
license: apache-2.0
---
# A clean model

Trained from scratch.
"""
CONFIG = json.dumps({"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2})


class Repo:
    """A git repository with helpers to write files and commit (the workspace of the job)."""

    def __init__(self, root: Path):
        self.root = root
        self.git = git.Repo.init(root, initial_branch="main")
        with self.git.config_writer() as cw:
            cw.set_value("user", "name", "t")
            cw.set_value("user", "email", "t@example.com")
            cw.set_value("commit", "gpgsign", "false")

    def write(self, files: dict[str, str]) -> None:
        for rel, text in files.items():
            p = self.root / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text, encoding="utf-8")

    def commit(self, message: str) -> str:
        self.git.git.add("-A")
        self.git.git.commit("-q", "-m", message, "--allow-empty")
        return self.git.head.commit.hexsha


def event(tmp: Path, base: str, head: str, number: int = 7, fork: bool = False, name: str = "event.json") -> Path:
    head_repo = "mallory/models" if fork else REPO
    payload = {
        "action": "synchronize",
        "number": number,
        "pull_request": {
            "number": number,
            "base": {"sha": base, "ref": "main", "repo": {"full_name": REPO}},
            "head": {"sha": head, "ref": "feature", "repo": {"full_name": head_repo}},
        },
        "repository": {"full_name": REPO},
    }
    p = tmp / name
    p.write_text(json.dumps(payload), encoding="utf-8")
    return p


@pytest.fixture
def api():
    with GitHubAPIServer(token=TOKEN) as server:
        yield server


@pytest.fixture
def gh(tmp_path, monkeypatch):
    """GITHUB_* environment of a job; returns the paths of the files the runner would read back."""
    runner = tmp_path / "runner"
    runner.mkdir()
    files = {"summary": runner / "step_summary.md", "output": runner / "output.txt", "temp": runner / "tmp"}
    files["temp"].mkdir()
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(files["summary"]))
    monkeypatch.setenv("GITHUB_OUTPUT", str(files["output"]))
    monkeypatch.setenv("RUNNER_TEMP", str(files["temp"]))
    monkeypatch.setenv("GITHUB_REPOSITORY", REPO)
    monkeypatch.setenv("GITHUB_SERVER_URL", "https://github.com")
    monkeypatch.setenv("GITHUB_RUN_ID", "4242")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    return files


@pytest.fixture
def base_repo(tmp_path):
    r = Repo(tmp_path / "ws")
    r.write(
        {
            "README.md": "# acme models\n",
            "src/app.py": "print('hi')\n",
            "models/llama-ft/README.md": LLAMA_CARD,
            "models/llama-ft/config.json": CONFIG,
            "models/old-name/README.md": LLAMA_CARD,
            "models/doomed/README.md": HOSTILE_CARD,
            "models/clean/README.md": CLEAN_CARD,
        }
    )
    r.base = r.commit("base")
    return r


def run(tmp_path, repo: Repo, ev: Path, api=None, token=TOKEN, **kw):
    lines: list[str] = []
    kw.setdefault("sarif_path", str(tmp_path / "out" / "originscan.sarif"))
    kw.setdefault("output_dir", tmp_path / "out")
    options = PullRequestOptions(
        repo.root,
        event_path=str(ev),
        fail_on=kw.pop("fail_on", "high"),
        formats=tuple(kw.pop("formats", ["markdown", "json"])),
        comment=kw.pop("comment", True),
        api_url=api.url if api else "http://127.0.0.1:9",
        token=token,
        repo=REPO,
        **kw,
    )
    rc = run_pull_request(options, log=lines.append)
    return rc, lines


def outputs(path: Path) -> dict[str, str]:
    text = path.read_text(encoding="utf-8")
    out = dict(re.findall(r"^(findings-[a-z-]+)=(\d+)$", text, re.M))
    m = re.search(r"^report-paths<<(\S+)\n(.*?)\n\1$", text, re.M | re.S)
    out["report-paths"] = m.group(2) if m else ""
    return out


def the_comment(api, number=7) -> dict:
    cs = [c for c in api.comments.get((REPO, number), []) if c["body"].startswith(MARKER)]
    assert len(cs) == 1, f"expected exactly one originscan comment, got {len(cs)}"
    return cs[0]


# -- the main flow ---------------------------------------------------------------------------------------------
def test_new_and_existing_findings_one_comment_updated_on_push(tmp_path, base_repo, api, gh):
    r = base_repo
    # Unrelated conversation: the marker comment must be found across pages.
    for i in range(130):
        api.add_comment(REPO, 7, f"looks good {i}")
    r.write(
        {
            "models/llama-ft/README.md": LLAMA_CARD_SHIFTED,  # same problems, lines moved: existing
            "models/hostile/README.md": HOSTILE_CARD,  # a new model: new findings
            "models/hostile/config.json": CONFIG,
            "src/app.py": "print('changed')\n",
        }
    )  # not a model file
    head1 = r.commit("add hostile model")
    rc, log = run(tmp_path, r, event(tmp_path, r.base, head1), api)
    assert rc == 1, log  # new high findings on models/hostile
    body = the_comment(api)["body"]
    assert "❌" in body and "models/hostile" in body.replace("\\", "")
    posts = [c for c in api.writes() if c.method == "POST"]
    assert len(posts) == 1 and posts[0].path == f"/repos/{REPO}/issues/7/comments"
    assert all(c.authorized for c in api.calls)

    # Which folders were scanned, and how the findings were marked.
    report = json.loads((tmp_path / "out" / "originscan.json").read_text())
    targets = {t["target"]: t for t in report["targets"]}
    assert set(targets) == {"models/llama-ft", "models/hostile"}
    assert {f["status"] for f in targets["models/llama-ft"]["findings"]} == {"existing"}
    assert {f["status"] for f in targets["models/hostile"]["findings"]} == {"new"}
    assert any(
        f["rule"] == "license.incompatible" and f["severity"] == "high" for f in targets["models/llama-ft"]["findings"]
    )

    # Summary, annotations, outputs, SARIF.
    summary = gh["summary"].read_text()
    assert MARKER in summary and "New findings" in summary
    errors = [ln for ln in log if ln.startswith("::error ")]
    assert errors and all("file=models/hostile/" in ln for ln in errors)
    assert not any("models/llama-ft" in ln for ln in log if ln.startswith(("::error", "::warning")))
    out = outputs(gh["output"])
    assert int(out["findings-new"]) >= 1 and int(out["findings-high"]) >= 2
    assert int(out["findings-new-high"]) >= 1
    assert str(tmp_path / "out" / "originscan.sarif") in out["report-paths"].splitlines()
    sarif = json.loads((tmp_path / "out" / "originscan.sarif").read_text())
    states = {
        (res["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].split("/")[1], res["baselineState"])
        for res in sarif["runs"][0]["results"]
    }
    assert ("llama-ft", "unchanged") in states and ("hostile", "new") in states
    assert not any(
        res["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].startswith("/")
        for res in sarif["runs"][0]["results"]
    )

    # A second push fixes the hostile model: the same comment is updated, no second one.
    r.write({"models/hostile/README.md": CLEAN_CARD})
    head2 = r.commit("fix card")
    rc2, log2 = run(tmp_path, r, event(tmp_path, r.base, head2), api)
    assert rc2 == 0, log2
    c = the_comment(api)
    assert "✅" in c["body"]
    assert [x.method for x in api.writes()] == ["POST", "PATCH"]
    assert api.writes()[1].path == f"/repos/{REPO}/issues/comments/{c['id']}"
    lists = [x for x in api.calls if x.method == "GET" and x.path.endswith("/comments")]
    assert any(x.query.get("page") == ["2"] for x in lists)  # paginated to find it


def test_only_existing_findings_do_not_fail(tmp_path, base_repo, api, gh):
    r = base_repo
    r.write({"models/llama-ft/README.md": LLAMA_CARD_SHIFTED})
    head = r.commit("edit card")
    rc, log = run(tmp_path, r, event(tmp_path, r.base, head), api)
    assert rc == 0, log
    body = the_comment(api)["body"]
    assert "already on the base" in body and "**0** new" in body
    assert not [ln for ln in log if ln.startswith("::error")]


def test_renamed_and_deleted_model_folders(tmp_path, base_repo, api, gh):
    r = base_repo
    r.git.git.mv("models/old-name", "models/new-name")
    r.git.git.rm("-r", "-q", "models/doomed")
    head = r.commit("rename and delete")
    rc, log = run(tmp_path, r, event(tmp_path, r.base, head), api)
    assert rc == 0, log  # the renamed model's findings existed under its old name; the deleted one is gone
    report = json.loads((tmp_path / "out" / "originscan.json").read_text())
    assert [t["target"] for t in report["targets"]] == ["models/new-name"]
    assert {f["status"] for f in report["targets"][0]["findings"]} == {"existing"}
    body = the_comment(api)["body"]
    assert "renamed: models/old-name → models/new-name" in body.replace("\\", "")
    assert "deleted: models/doomed" in body
    assert "deleted: models/doomed" in gh["summary"].read_text()


def test_deleting_only_files_of_a_folder_that_stays(tmp_path, base_repo, api, gh):
    r = base_repo
    r.git.git.rm("-q", "models/llama-ft/config.json")
    head = r.commit("drop config")
    rc, _ = run(tmp_path, r, event(tmp_path, r.base, head), api)
    report = json.loads((tmp_path / "out" / "originscan.json").read_text())
    assert [t["target"] for t in report["targets"]] == ["models/llama-ft"]
    assert rc == 0


def test_five_hundred_touched_files(tmp_path, base_repo, api, gh):
    r = base_repo
    cards = {f"models/m{i:02d}/README.md": CLEAN_CARD for i in range(30)}
    r.write(cards)
    r.base = r.commit("30 models")
    r.write({f"models/m{i:02d}/README.md": CLEAN_CARD + "\nMore text.\n" for i in range(30)})
    r.write({f"data/shard-{i:04d}.txt": f"row {i}\n" for i in range(520)})
    r.write({f"models/m00/extra/notes-{i}.md": "n\n" for i in range(10)})
    head = r.commit("touch 560 files")
    t0 = time.monotonic()
    rc, log = run(tmp_path, r, event(tmp_path, r.base, head), api)
    assert rc == 0, log
    assert time.monotonic() - t0 < 60
    report = json.loads((tmp_path / "out" / "originscan.json").read_text())
    assert len(report["targets"]) == 30
    assert len([c for c in api.writes()]) == 1


def test_fork_without_token_skips_comment_but_reports(tmp_path, base_repo, api, gh):
    r = base_repo
    r.write({"models/hostile/README.md": HOSTILE_CARD})
    head = r.commit("from a fork")
    rc, log = run(tmp_path, r, event(tmp_path, r.base, head, fork=True), api, token=None)
    assert rc == 1  # honest: new high findings
    assert api.calls == []  # no API call at all
    assert any(ln.startswith("::notice::") and "comment was skipped" in ln for ln in log)
    assert MARKER in gh["summary"].read_text()
    assert outputs(gh["output"])["findings-new"] != "0"


def test_event_not_json(tmp_path, base_repo, api, gh, capsys):
    ev = tmp_path / "event.json"
    ev.write_text("{not json", encoding="utf-8")
    rc, log = run(tmp_path, base_repo, ev, api)
    assert rc == 2
    assert len(log) == 1 and log[0].startswith("::error::originscan: event payload") and "not valid JSON" in log[0]
    assert "could not run" in gh["summary"].read_text()
    assert api.calls == []
    assert "findings-total=0" in gh["output"].read_text()


def test_event_missing_file(tmp_path, base_repo, api, gh):
    rc, log = run(tmp_path, base_repo, tmp_path / "nope.json", api)
    assert rc == 2 and log[0].startswith("::error::") and "could not run" in gh["summary"].read_text()


def test_comment_api_403_keeps_report_and_exit_status(tmp_path, base_repo, api, gh):
    r = base_repo
    api.fail_comments = 403
    r.write({"models/hostile/README.md": HOSTILE_CARD})
    head = r.commit("x")
    rc, log = run(tmp_path, r, event(tmp_path, r.base, head), api)
    assert rc == 1
    warn = [ln for ln in log if ln.startswith("::warning::") and "PR comment" in ln]
    assert warn and "403" in warn[0]
    assert "New findings" in gh["summary"].read_text()
    everything = "\n".join(log) + gh["summary"].read_text() + gh["output"].read_text()
    assert TOKEN not in everything
    # Same verdict as when the comment works.
    api.fail_comments = None
    rc2, _ = run(tmp_path, r, event(tmp_path, r.base, head), api)
    assert rc2 == rc


def test_comment_api_unreachable(tmp_path, base_repo, gh):
    r = base_repo
    r.write({"models/llama-ft/README.md": LLAMA_CARD_SHIFTED})
    head = r.commit("x")
    rc, log = run(tmp_path, r, event(tmp_path, r.base, head), None)  # nothing listens on port 9
    assert rc == 0
    assert any(ln.startswith("::warning::") and "PR comment" in ln for ln in log)
    assert MARKER in gh["summary"].read_text()


def test_hostile_card_text_is_escaped(tmp_path, base_repo, api, gh):
    r = base_repo
    r.write({"models/hostile/README.md": HOSTILE_CARD})
    head = r.commit("hostile")
    run(tmp_path, r, event(tmp_path, r.base, head), api)
    body = the_comment(api)["body"]
    assert "license.unknown" in body
    for needle in ("<img", "@octocat", "http://evil", "#12", "www.evil"):
        assert needle not in body, needle
    card_lines = "\n".join(ln for ln in body.splitlines() if not ln.startswith("<sub>"))  # our footer links
    assert not re.search(r"(?<!\\)\]\(http", card_lines)  # no link: the brackets are escaped
    assert "&lt;img" in body
    # Raw HTML only where we put it: the marker, <details>/<summary>, <sub>.
    tags = set(re.findall(r"</?([a-zA-Z]+)", body))
    assert tags <= {"details", "summary", "sub"}, tags
    # Table rows keep their shape: the card's pipe is escaped.
    for line in body.splitlines():
        if line.startswith("| ") and "license.unknown" in line:
            assert len(re.findall(r"(?<!\\)\|", line)) == 5
    assert gh["summary"].read_text().count("&lt;img") >= 1


def test_existing_marker_comment_by_a_person_is_not_preferred(tmp_path, base_repo, api, gh):
    r = base_repo
    api.add_comment(REPO, 7, MARKER + "\nquoted by a human", user="alice", kind="User")
    bot = api.add_comment(REPO, 7, MARKER + "\nold report", user="github-actions[bot]", kind="Bot")
    r.write({"models/llama-ft/README.md": LLAMA_CARD_SHIFTED})
    head = r.commit("x")
    run(tmp_path, r, event(tmp_path, r.base, head), api)
    assert [(c.method, c.path) for c in api.writes()] == [("PATCH", f"/repos/{REPO}/issues/comments/{bot['id']}")]


def test_base_commit_missing_counts_everything_new(tmp_path, base_repo, api, gh):
    r = base_repo
    r.write({"models/llama-ft/README.md": LLAMA_CARD_SHIFTED})
    head = r.commit("x")
    rc, log = run(tmp_path, r, event(tmp_path, "f" * 40, head), api)
    assert rc == 1
    assert any(ln.startswith("::warning::") and "fetch-depth: 0" in ln for ln in log)
    assert "fetch-depth: 0" in gh["summary"].read_text()


def test_paths_scope_and_workspace_untouched(tmp_path, base_repo, api, gh):
    r = base_repo
    r.write({"models/hostile/README.md": HOSTILE_CARD, "other/model/README.md": HOSTILE_CARD})
    head = r.commit("x")
    before = r.git.git.status("--porcelain", "--untracked-files=all")
    worktrees = r.git.git.worktree("list")
    rc, _ = run(tmp_path, r, event(tmp_path, r.base, head), api, paths=("other",))
    report = json.loads((tmp_path / "out" / "originscan.json").read_text())
    assert [t["target"] for t in report["targets"]] == ["other/model"]
    assert r.git.git.status("--porcelain", "--untracked-files=all") == before
    assert r.git.git.worktree("list") == worktrees
    assert r.git.head.commit.hexsha == head


def test_no_event_scans_every_model_in_scope(tmp_path, base_repo, gh):
    lines: list[str] = []
    options = PullRequestOptions(base_repo.root, fail_on="never", formats=("json",), output_dir=tmp_path / "out")
    rc = run_pull_request(options, log=lines.append)
    assert rc == 0
    report = json.loads((tmp_path / "out" / "originscan.json").read_text())
    assert {"models/llama-ft", "models/clean", "models/doomed", "models/old-name"} <= {
        t["target"] for t in report["targets"]
    }


def test_bad_fail_on_and_format_are_usage_errors(tmp_path, base_repo, gh):
    ev = event(tmp_path, base_repo.base, base_repo.base)
    rc, log = run(tmp_path, base_repo, ev, None, fail_on="severe")
    assert rc == 2 and "fail-on" in log[0]
    rc, log = run(tmp_path, base_repo, ev, None, formats=["pdf"])
    assert rc == 2 and "pdf" in log[0]


# -- escaping units --------------------------------------------------------------------------------------------
def test_workflow_command_escaping():
    line = workflow_command("error", "50% done\r\nnext::line", file="a,b:c.md", line=3, title="t: x, y")
    assert line == "::error file=a%2Cb%3Ac.md,line=3,title=t%3A x%2C y::50%25 done%0D%0Anext::line"
    assert "\n" not in workflow_command("warning", "a\nb")


def test_markdown_escaping():
    s = md("@team <script>x</script> [a](http://e.x) | *b* `c` #5 https://e.x/y www.e.x")
    assert (
        "@team" not in s and "<script" not in s and not re.search(r"(?<!\\)\]\(", s) and "|" not in s.replace("\\|", "")
    )
    assert "https://" not in s and "www." not in s and "#5" not in s
    assert md("x" * 1000, 50).endswith("…") and len(md("y" * 1000, 50)) <= 60
