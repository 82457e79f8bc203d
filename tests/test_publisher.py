"""Who publishes (issue #20 point 1): where it is learned, and the licensee duties a licensor's own release does not
owe. Card and config excerpts are Meta's and Google's own, as published:

- Meta-Llama-3-8B-Instruct: card front matter `license: llama3` (meta-llama/Meta-Llama-3-8B-Instruct README.md),
  config.json values as recorded in rules/upstreams/meta-llama.yaml (tests/helpers.LLAMA3_8B_CONFIG);
- gemma-2-2b: `license: gemma` (google/gemma-2-2b README.md), config as in rules/upstreams/gemma.yaml.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import git
import pytest

from scanner.ci.github import read_event
from scanner.errors import UsageError
from scanner.evidence.publisher import Publisher, apply_repo_id, resolve_publisher
from scanner.pipeline import scan_snapshot, scan_target
from scanner.policy import Policy, load_policy
from scanner.sources.interface import Snapshot
from scanner.sources.local import LocalSource
from scanner.sources.origin import local_origin, repo_from_cache_path, repo_from_remote
from tests.helpers import (
    GEMMA2_2B_CONFIG,
    LLAMA3_8B_CONFIG,
    REPO_ROOT,
    active_rules,
    assert_fires,
    assert_quiet,
    make_repo,
    run_cli,
    without_root_override,
)

LICENSEE_DUTIES = (
    "license.copy_missing",
    "license.notice_missing",
    "license.use_restrictions_missing",
    "attribution.phrase_missing",
)
LLAMA3_CARD = {"license": "llama3", "language": ["en"], "pipeline_tag": "text-generation"}


def llama3_release(tmp_path: Path, name: str = "Meta-Llama-3-8B-Instruct") -> Path:
    """Meta's own card and config, without LICENSE / NOTICE / USE_POLICY files (a card-only copy)."""
    return make_repo(
        tmp_path,
        name,
        card=LLAMA3_CARD,
        body="# Meta Llama 3\n\nMeta developed and released it.\n",
        config=LLAMA3_8B_CONFIG,
    )


# -- where the publisher is learned -----------------------------------------------------------------------------------
def test_hub_and_github_targets_name_their_owner():
    assert resolve_publisher(Snapshot("hf:google/gemma-2b", "hf", "google/gemma-2b")) == Publisher(
        "google", "the hf: target"
    )
    assert resolve_publisher(Snapshot("github:acme/models", "github", "acme/models")).owner == "acme"


def test_a_local_folder_alone_has_no_publisher(tmp_path):
    snap = LocalSource(str(llama3_release(tmp_path))).snapshot()
    assert resolve_publisher(snap) == Publisher()


def test_repo_id_option_names_the_folder_and_its_publisher(tmp_path):
    snap = LocalSource(str(llama3_release(tmp_path))).snapshot()
    apply_repo_id(snap, "meta-llama/Meta-Llama-3-8B-Instruct")
    assert snap.name == "meta-llama/Meta-Llama-3-8B-Instruct"
    assert resolve_publisher(snap) == Publisher("meta-llama", "--repo-id")


@pytest.mark.parametrize("bad", ["meta-llama", "a/b/c", "/x", "x y/z", ""])
def test_a_bad_repo_id_is_one_usage_error(tmp_path, bad):
    snap = LocalSource(str(llama3_release(tmp_path))).snapshot()
    with pytest.raises(UsageError, match="--repo-id"):
        apply_repo_id(snap, bad)


def test_policy_publisher_applies_to_local_folders_only(tmp_path):
    snap = LocalSource(str(llama3_release(tmp_path))).snapshot()
    assert resolve_publisher(snap, "meta-llama").owner == "meta-llama"
    hub = Snapshot("hf:someone/x", "hf", "someone/x")
    assert resolve_publisher(hub, "meta-llama").owner == "someone"  # the target's owner is a fact, not a claim


def test_policy_file_publisher_key(tmp_path):
    p = tmp_path / ".originscan.yml"
    p.write_text("publisher: google\n", encoding="utf-8")
    assert load_policy(str(p)).publisher == "google"
    p.write_text("publisher: 'not an owner!'\n", encoding="utf-8")
    with pytest.raises(UsageError, match="publisher"):
        load_policy(str(p))


def test_hugging_face_cache_snapshot_path(tmp_path):
    folder = tmp_path / "hub" / "models--google--gemma-2-2b" / "snapshots" / "c5ebcd40d208330abc697524c919956e692655cf"
    assert repo_from_cache_path(folder) == "google/gemma-2-2b"
    assert repo_from_cache_path(tmp_path / "gemma-2-2b") is None
    make_repo(folder.parent, folder.name, card={"license": "gemma"}, config=GEMMA2_2B_CONFIG)
    snap = LocalSource(str(folder)).snapshot()
    assert snap.name == "google/gemma-2-2b"  # the cache path's Hub id, not the revision folder's name
    assert resolve_publisher(snap) == Publisher("google", "the Hugging Face cache path")


@pytest.mark.parametrize(
    ("url", "want"),
    [
        (
            "https://huggingface.co/meta-llama/Meta-Llama-3-8B-Instruct",
            ("meta-llama/Meta-Llama-3-8B-Instruct", "huggingface.co"),
        ),
        ("https://hf.co/google/gemma-2b.git", ("google/gemma-2b", "huggingface.co")),
        ("git@hf.co:google/gemma-2b", ("google/gemma-2b", "huggingface.co")),
        ("git@github.com:acme/models.git", ("acme/models", "github.com")),
        ("https://gitlab.com/acme/models.git", None),
    ],
)
def test_remote_urls(url, want):
    assert repo_from_remote(url) == want


def test_git_remote_of_the_folder_itself(tmp_path):
    repo_dir = llama3_release(tmp_path)
    repo = git.Repo.init(repo_dir)
    repo.create_remote("origin", "https://huggingface.co/meta-llama/Meta-Llama-3-8B-Instruct")
    repo.close()
    assert local_origin(repo_dir) == (
        "meta-llama/Meta-Llama-3-8B-Instruct",
        "git remote origin (huggingface.co/meta-llama/Meta-Llama-3-8B-Instruct)",
    )
    report = scan_target(str(repo_dir), Policy())
    for rule in LICENSEE_DUTIES:
        assert_quiet(report, rule)
    # a model folder inside that repository is not the repository's published content
    inner = make_repo(repo_dir, "adapter", card={"license": "llama3"}, config=LLAMA3_8B_CONFIG)
    assert local_origin(inner) is None


def test_github_remote_gives_the_owner_only(tmp_path):
    repo_dir = make_repo(tmp_path, "models", card={"license": "gemma"}, config=GEMMA2_2B_CONFIG)
    repo = git.Repo.init(repo_dir)
    repo.create_remote("origin", "git@github.com:google/gemma-finetunes.git")
    repo.close()
    snap = LocalSource(str(repo_dir)).snapshot()
    assert snap.name == "models"  # a GitHub repository's name is no Hub id
    assert resolve_publisher(snap).owner == "google"


def test_a_folder_that_cannot_be_searched_has_no_known_publisher(tmp_path):
    """A folder readable but not searchable (mode 0644): asking for its .git is refused (PermissionError); the
    publisher is then unknown, and a scan says what it could not read instead of ending in an internal error."""
    repo = make_repo(tmp_path, "locked", card={"license": "mit"})
    code = "import sys; from pathlib import Path; from scanner.sources.origin import local_origin; "
    code += "print(local_origin(Path(sys.argv[1])))"
    repo.chmod(0o644)
    try:
        run = {"capture_output": True, "text": True, "timeout": 120, "preexec_fn": without_root_override}
        probe = subprocess.run([sys.executable, "-c", code, str(repo)], cwd=REPO_ROOT, **run)
        scan = subprocess.run([str(Path(sys.executable).parent / "originscan"), "scan", str(repo), "-f", "json"], **run)
    finally:
        repo.chmod(0o755)
    assert probe.returncode == 0 and probe.stdout.strip() == "None", probe.stderr
    assert scan.returncode in (1, 2) and "internal error" not in scan.stderr, scan.stderr
    findings = json.loads(scan.stdout)["targets"][0]["findings"]
    assert any(f["rule"] == "source.unreadable" and "README.md" in f["message"] for f in findings), findings


def test_pull_request_event_carries_its_base_repository(tmp_path):
    sha = "a" * 40
    event = {
        "pull_request": {
            "number": 7,
            "base": {"sha": sha, "repo": {"full_name": "google/gemma-finetunes"}},
            "head": {"sha": "b" * 40, "repo": {"full_name": "someone/gemma-finetunes"}},
        }
    }
    p = tmp_path / "event.json"
    p.write_text(json.dumps(event), encoding="utf-8")
    ev = read_event(p)
    assert ev.base_repo == "google/gemma-finetunes" and ev.fork


# -- duties that bind the licensee are not charged to the licensor ----------------------------------------------------
def test_licensor_release_owes_its_own_licence_nothing(tmp_path):
    snap = LocalSource(str(llama3_release(tmp_path))).snapshot()
    apply_repo_id(snap, "meta-llama/Meta-Llama-3-8B-Instruct")
    report = scan_snapshot(snap, Policy())
    for rule in (*LICENSEE_DUTIES, "attribution.naming", "card.base_model_undeclared"):
        assert_quiet(report, rule)


def test_the_same_files_published_by_someone_else_owe_every_duty(tmp_path):
    snap = LocalSource(str(llama3_release(tmp_path, "my-finetune"))).snapshot()
    apply_repo_id(snap, "someone/my-finetune")
    report = scan_snapshot(snap, Policy())
    for rule in (*LICENSEE_DUTIES, "attribution.naming"):
        assert_fires(report, rule)


def test_meta_org_publishing_under_another_meta_licence_is_still_the_licensor(tmp_path):
    """Llama 3.2 is Meta's own model under its own licence, never an undeclared derivative of Llama 3."""
    repo = make_repo(tmp_path, "Llama-3.2-3B-Instruct", card={"license": "llama3.2"}, config=LLAMA3_8B_CONFIG)
    snap = LocalSource(str(repo)).snapshot()
    apply_repo_id(snap, "meta-llama/Llama-3.2-3B-Instruct")
    rules = active_rules(scan_snapshot(snap, Policy()))
    assert not rules & {"card.base_model_undeclared", "license.incompatible", *LICENSEE_DUTIES}, rules


def test_google_config_without_base_model_is_its_own_release(tmp_path):
    repo = make_repo(
        tmp_path,
        "medgemma",
        card={
            "license": "other",
            "license_name": "health-ai-developer-foundations",
            "license_link": "https://developers.google.com/health-ai-developer-foundations/terms",
        },
        config=GEMMA2_2B_CONFIG,
    )
    own = scan_target(str(repo), Policy(publisher="google"))
    assert_quiet(own, "card.base_model_undeclared")
    assert_quiet(own, "license.copy_missing")
    other = scan_target(str(repo), Policy(publisher="someone"))
    assert_fires(other, "card.base_model_undeclared")


def test_unknown_publisher_says_so_and_how_to_state_it(tmp_path):
    report = scan_target(str(llama3_release(tmp_path, "Meta-Llama-3-8B-Instruct-copy")), Policy())
    hit = assert_fires(report, "license.copy_missing")[0]
    assert "publisher unknown" in hit.message and "--repo-id" in hit.message and "Meta Platforms" in hit.message
    # a known publisher needs no such clause
    known = scan_target(str(llama3_release(tmp_path, "x")), Policy(publisher="someone"))
    assert "publisher unknown" not in assert_fires(known, "license.copy_missing")[0].message


def test_cli_repo_id(tmp_path):
    repo = llama3_release(tmp_path)
    ok = run_cli(
        "scan", str(repo), "--repo-id", "meta-llama/Meta-Llama-3-8B-Instruct", "-f", "json", "--fail-on", "never"
    )
    assert ok.returncode == 0, ok.stderr
    rules = {f["rule"] for t in json.loads(ok.stdout)["targets"] for f in t["findings"]}
    assert not rules & set(LICENSEE_DUTIES), rules
    bad = run_cli("scan", str(repo), "--repo-id", "not-an-id")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--repo-id" in bad.stderr
    two = run_cli("scan", str(repo), str(repo), "--repo-id", "a/b")
    assert two.returncode == 2 and "exactly one" in two.stderr
    att = run_cli("attribution", str(repo), "--repo-id", "meta-llama/Meta-Llama-3-8B-Instruct")
    assert att.returncode == 0 and "no attribution obligations" in att.stdout
    att_other = run_cli("attribution", str(repo), "--repo-id", "someone/x")
    assert att_other.returncode == 0 and "Meta Llama 3 Community License" in att_other.stdout


def test_repo_id_lets_a_local_folder_follow_its_bases_cards_on_the_hub(hub, tmp_path):
    from servers.hub import make_repo as hub_repo

    from tests.helpers import card_text

    base_card = card_text({"license": "llama3.1", "base_model": "meta-llama/Llama-3.1-8B"}, "# acme llama ft\n")
    hub_repo(hub.root, "acme/llama-ft", {"README.md": base_card})
    repo = make_repo(tmp_path, "ft-of-ft", card={"license": "llama3.1", "base_model": "acme/llama-ft"})
    offline = scan_target(str(repo), Policy())
    assert_fires(offline, "card.base_model_unverified")  # a local folder alone stays offline
    online = scan_target(str(repo), Policy(), repo_id="bob/ft-of-ft")
    assert_quiet(online, "card.base_model_unverified")
    assert assert_fires(online, "license.copy_missing")[0].evidence["known_from"] == "base-card"


@pytest.mark.parametrize(("repository", "charged"), [("meta-llama/llama-releases", False), ("acme/models", True)])
def test_the_action_knows_its_repository_publishes(tmp_path, monkeypatch, repository, charged):
    """In the Action the publisher is the repository (or, for a pull request, its base repository)."""
    from scanner.ci.github import PullRequestOptions, run_pull_request

    for var in ("GITHUB_STEP_SUMMARY", "GITHUB_OUTPUT"):
        monkeypatch.delenv(var, raising=False)
    ws = tmp_path / "ws"
    llama3_release(ws / "models")
    out = tmp_path / "out"
    options = PullRequestOptions(ws, fail_on="never", formats=("json",), output_dir=out, repo=repository)
    rc = run_pull_request(options, log=lambda line: None)
    assert rc == 0
    (target,) = json.loads((out / "originscan.json").read_text(encoding="utf-8"))["targets"]
    rules = {f["rule"] for f in target["findings"]}
    assert bool(rules & set(LICENSEE_DUTIES)) is charged, rules


def test_attribution_reads_the_publisher_from_the_policy_next_to_the_folder(tmp_path):
    repo = llama3_release(tmp_path)
    (repo / ".originscan.yml").write_text("publisher: meta-llama\n", encoding="utf-8")
    own = run_cli("attribution", str(repo))
    assert own.returncode == 0 and "no attribution obligations" in own.stdout, own.stdout + own.stderr


@pytest.mark.parametrize(("policy", "supplier"), [(Policy(publisher="meta-llama"), "meta-llama"), (Policy(), None)])
def test_spdx_supplier_of_a_local_folder_is_its_publisher(tmp_path, policy, supplier):
    from scanner.knowledge import catalogue
    from scanner.report.render import render

    report = scan_target(str(llama3_release(tmp_path)), policy)
    assert report.facts is not None and report.facts.publisher == resolve_publisher(
        LocalSource(str(tmp_path / "Meta-Llama-3-8B-Instruct")).snapshot(), policy.publisher
    )
    doc = json.loads(render([report], "spdx", catalogue(), version="test"))
    by_id = {e["spdxId"]: e for e in doc["@graph"] if isinstance(e, dict) and "spdxId" in e}
    model = next(e for e in by_id.values() if e.get("type") == "ai_AIPackage" and e["name"] == report.facts.name)
    if supplier is None:
        assert model["suppliedBy"].endswith("/Core/NoAssertionElement")
    else:
        assert by_id[model["suppliedBy"]]["name"] == supplier


def test_text_report_says_who_publishes(tmp_path):
    from scanner.knowledge import catalogue
    from scanner.report.render import render

    repo = llama3_release(tmp_path)
    known = render([scan_target(str(repo), Policy(publisher="meta-llama"))], "text", catalogue(), version="t")
    assert "published by meta-llama (from `publisher:` in the policy)" in known
    assert "published by" not in render([scan_target(str(repo), Policy())], "text", catalogue(), version="t")
