"""`originscan watch` against the local Hub through the real huggingface_hub client.

One world: two watched models (hidden 64 and 48), planted derivatives of them (renamed + permuted + noised,
noised, an exact copy, a GGUF Q8_0, MLX 4-bit safetensors, a declared fine-tune, a fine-tune of that declared fine-tune), independent
models of the same shapes, models of another width and a repo without weights. Every derivative must be found,
no independent model flagged, and what the cursor and the budget promise must hold."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from gguf import GGMLQuantizationType as Q
from ggufs import write_gguf
from helpers import card_text, disguise, noised, run_cli, save_tensors, tiny_llm
from quantizers import mlx_model
from servers.github_api import GitHubAPIServer
from servers.hub_listing import ListingHubServer

from scanner.ci.watch_issues import file_issues
from scanner.provenance.index import Index
from scanner.provenance.pack import export_pack
from scanner.provenance.views import open_model
from scanner.watch import WatchState, declared_bases, declared_widths, run_watch
from scanner.watch_report import Suspect, WatchReport, merge_reports

T0 = 1_790_000_000  # file times: a repo's lastModified is its newest file's mtime
SHAPE_A = dict(vocab=512, d=64, inter=128)
SHAPE_B = dict(vocab=384, d=48, inter=96)


def _push(
    root: Path,
    repo_id: str,
    when: float,
    weights: dict | None = None,
    card: dict | None = None,
    config: dict | None = None,
    files: dict[str, bytes] | None = None,
) -> Path:
    d = root / repo_id
    d.mkdir(parents=True, exist_ok=True)
    if weights is not None:
        save_tensors(weights, d / "model.safetensors")
    if card is not None:
        (d / "README.md").write_text(card_text(card))
    if config is not None:
        (d / "config.json").write_text(json.dumps(config))
    for rel, data in (files or {}).items():
        (d / rel).write_bytes(data)
    for p in d.rglob("*"):
        os.utime(p, (when, when))
    return d


def _cfg(shape: dict) -> dict:
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": shape["d"],
        "vocab_size": shape["vocab"],
        "intermediate_size": shape["inter"],
    }


PLANTED = {  # repo -> (watched, declared)
    "thief/renamed-permuted-noised": ("acme/base", False),
    "thief/noised": ("acme/base", False),
    "thief/exact-copy": ("acme/base", False),
    "thief/base-GGUF": ("acme/base", False),
    "thief/small-renamed": ("acme/small", False),
    "thief/base-mlx-4bit": ("acme/base", False),
    "fan/base-finetune": ("acme/base", True),
    "fan2/finetune-of-finetune": ("acme/base", True),
}


@pytest.fixture
def world(tmp_path, monkeypatch):
    root = tmp_path / "hub"
    root.mkdir()
    base, small = tiny_llm(7, **SHAPE_A), tiny_llm(8, **SHAPE_B)
    t = T0
    _push(root, "acme/base", t, base, {"license": "apache-2.0"}, _cfg(SHAPE_A))
    _push(root, "acme/small", t, small, {"license": "apache-2.0"}, _cfg(SHAPE_B))
    t += 100
    _push(root, "thief/renamed-permuted-noised", t + 1, disguise(base), {"license": "mit"})  # no config.json
    _push(root, "thief/noised", t + 2, noised(base, 0.05), {"license": "mit"}, _cfg(SHAPE_A))
    (root / "thief/exact-copy").mkdir(parents=True)
    shutil.copy(root / "acme/base/model.safetensors", root / "thief/exact-copy/model.safetensors")
    _push(root, "thief/exact-copy", t + 3)
    gguf_dir = _push(root, "thief/base-GGUF", t + 4, card={"license": "mit"})
    write_gguf(gguf_dir / "base-Q8_0.gguf", base, Q.Q8_0)
    _push(root, "thief/base-GGUF", t + 4)  # the GGUF's time too
    _push(root, "thief/small-renamed", t + 5, disguise(small, seed=9), {"license": "mit"}, _cfg(SHAPE_B))
    _push(
        root,
        "thief/base-mlx-4bit",
        t + 8,
        mlx_model(base),
        {"license": "mit"},
        {**_cfg(SHAPE_A), "quantization": {"group_size": 64, "bits": 4}},
    )
    _push(
        root,
        "fan/base-finetune",
        t + 6,
        noised(base, 0.03, seed=11),
        {"license": "apache-2.0", "base_model": "acme/base"},
        _cfg(SHAPE_A),
    )
    _push(
        root,
        "fan2/finetune-of-finetune",
        t + 7,
        noised(base, 0.04, seed=12),
        {"license": "apache-2.0", "base_model": "fan/base-finetune"},
        _cfg(SHAPE_A),
    )
    for i in range(3):  # independent models of the watched shapes
        _push(root, f"indie/same-a-{i}", t + 10 + i, tiny_llm(100 + i, **SHAPE_A), {"license": "mit"}, _cfg(SHAPE_A))
    _push(root, "indie/same-b-0", t + 14, tiny_llm(200, **SHAPE_B), {"license": "mit"}, _cfg(SHAPE_B))
    for i in range(4):  # another width: ruled out by config.json, 0 weight bytes
        shape = dict(vocab=256, d=32, inter=64)
        _push(root, f"other/w32-{i}", t + 20 + i, tiny_llm(300 + i, **shape), {"license": "mit"}, _cfg(shape))
    _push(root, "misc/no-weights", t + 30, card={"license": "mit"}, files={"notes.txt": b"hello"})

    server = ListingHubServer(root).start()
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "hf_home" / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "hf_home" / "stored_tokens"))
    index = Index(tmp_path / "index.sqlite")
    from scanner.pipeline import open_snapshot

    for name in ("acme/base", "acme/small"):
        snap = open_snapshot(f"hf:{name}")
        model = open_model(snap)
        index.add(name, model, "apache-2.0", f"hf:{name}", snap.revision)
        model.close()
    server.stats.reset()
    yield server, index, tmp_path
    index.close()
    server.stop()


def _repo_requests(server, repo_id: str) -> int:
    return sum(1 for p in server.stats.paths() if f"/{repo_id}/" in p or p.split("?")[0].endswith(f"/{repo_id}"))


def _weight_bytes_of(server, repo_id: str) -> int:
    return sum(
        1 for m, p, s in server.stats.log if f"/{repo_id}/resolve/" in p and p.endswith((".safetensors", ".gguf"))
    )


def test_planted_derivatives_are_found_and_independent_models_are_not(world):
    server, index, tmp = world
    state = WatchState(tmp / "watch.sqlite")
    report = run_watch(index, state, workers=4)
    got = {s.repo: (s.watched, s.declared) for s in report.suspects}
    assert got == PLANTED
    assert report.complete and report.stopped is None and report.watermark
    for s in report.suspects:
        assert s.verdict.log10_p_value < -6 and s.links["repo"].endswith(s.repo) and s.verdict.evidence
    fan2 = next(s for s in report.suspects if s.repo == "fan2/finetune-of-finetune")
    assert fan2.declared_as == ["fan/base-finetune"]  # declared through a declared derivative
    # The owner's own repos are not judged; other widths never had a weight byte read; no weights: listing only.
    assert _repo_requests(server, "acme/base") == 0
    for i in range(4):
        assert _weight_bytes_of(server, f"other/w32-{i}") == 0
        assert _repo_requests(server, f"other/w32-{i}") <= 2  # config.json (GET), nothing else
    assert _repo_requests(server, "misc/no-weights") == 0
    assert report.stats.ruled_out["config"] == 4 and report.stats.ruled_out["listing"] >= 1
    assert report.stats.ruled_out["rows"] == 4  # the independent same-shape models, after row reads
    assert report.stats.requests == server.stats.requests  # the client-side count is the server's
    for repo in ("indie/same-a-0", "thief/noised", "fan/base-finetune"):  # the width test's config.json serves
        assert sum(f"/{repo}/resolve/" in p and p.endswith("/config.json") for p in server.stats.paths()) == 1, repo

    # Nothing changed: one listing page, no repo read again, nothing reported.
    server.stats.reset()
    again = run_watch(index, state, workers=4)
    assert again.complete and again.suspects == [] and again.stats.evaluated == 0
    assert server.stats.requests == 1 and server.stats.paths()[0].startswith("/api/models?")

    # One repo pushed: only it is read; the repos below the high-water mark are not even listed past it.
    server.stats.reset()
    _push(server.root, "indie/same-a-1", T0 + 1000, tiny_llm(999, **SHAPE_A))
    third = run_watch(index, state, workers=4)
    assert third.stats.evaluated == 1 and third.suspects == []
    assert third.stats.listed == 2  # the pushed repo, and the one at the old mark (unchanged: 0 requests)
    assert all("indie/same-a-1" in p for p in server.stats.paths() if not p.startswith("/api/models?"))
    state.close()


def test_a_budget_stop_resumes_and_never_rereads_a_judged_repo(world):
    server, index, tmp = world
    state = WatchState(tmp / "watch.sqlite")
    first = run_watch(index, state, budget=12, workers=1)
    assert not first.complete and "budget" in first.stopped and first.watermark is None
    judged = {r for (r,) in state.db.execute("SELECT repo FROM seen")}
    assert judged and len(judged) < 20
    server.stats.reset()
    second = run_watch(index, state, workers=2)
    assert second.complete and second.watermark
    for repo in judged:
        assert _repo_requests(server, repo) == 0, repo
    found = {s.repo for s in first.suspects} | {s.repo for s in second.suspects}
    assert found == set(PLANTED)
    state.close()


@pytest.mark.parametrize("budget, workers", [(9, 4), (23, 4), (40, 2)])
def test_the_budget_is_never_overshot_and_repos_cut_short_are_judged_next_run(world, budget, workers):
    """Evaluations in flight when the budget is reached are refused their next request (not sent), and a repo
    whose judgement may have lost a request is not recorded: the next run judges it whole."""
    server, index, tmp = world
    state = WatchState(tmp / f"watch-{budget}.sqlite")
    server.stats.reset()
    first = run_watch(index, state, budget=budget, workers=workers)
    assert server.stats.requests <= budget and first.stats.requests <= budget
    assert not first.complete and "budget" in first.stopped
    second = run_watch(index, state, workers=workers)
    assert second.complete
    found = {s.repo: s.declared for s in first.suspects + second.suspects}
    assert found == {repo: declared for repo, (_, declared) in PLANTED.items()}
    state.close()


def test_retry_after_is_honoured_and_a_failed_repo_holds_the_cursor(world, no_sleep):
    server, index, tmp = world
    server.fault("429", match="/other/w32-0/resolve/", times=1, retry_after=3)
    server.fault("500", match="/thief/noised/", times=-1)
    state = WatchState(tmp / "watch.sqlite")
    report = run_watch(index, state, workers=2)
    assert 3.0 in no_sleep  # the config.json GET waited what the server asked
    assert [e["repo"] for e in report.errors] == ["thief/noised"]
    assert not report.complete and report.watermark is None and "thief/noised" not in {s.repo for s in report.suspects}
    server.clear_faults()
    server.stats.reset()
    retry = run_watch(index, state, workers=2)
    assert retry.complete and [s.repo for s in retry.suspects] == ["thief/noised"]
    assert retry.stats.evaluated == 1
    state.close()


def test_shards_split_the_work_and_merge_to_the_whole(world):
    server, index, tmp = world
    docs = []
    for k in (1, 2):
        state = WatchState(tmp / f"watch-{k}.sqlite")
        docs.append(run_watch(index, state, shard=(k, 2), workers=2).to_json())
        state.close()
    a, b = ({s["repo"] for s in d["suspects"]} for d in docs)
    assert a and b and not a & b and a | b == set(PLANTED)
    merged = merge_reports([WatchReport.from_json(d) for d in docs]).to_json()
    assert {s["repo"] for s in merged["suspects"]} == set(PLANTED) and merged["complete"]
    assert merged["stats"]["in_shard"] == docs[0]["stats"]["in_shard"] + docs[1]["stats"]["in_shard"]
    for d in docs:  # a report read back is the report written
        assert WatchReport.from_json(d).to_json() == {**d, "version": merged["version"]}


def test_cli_json_exit_status_merge_and_tracking_issues(world, tmp_path):
    server, index, tmp = world
    out = tmp / "watch.json"
    env = {"HF_ENDPOINT": server.url, "HF_HOME": str(tmp / "hf_home"), "HF_HUB_DISABLE_TELEMETRY": "1"}
    r = run_cli(
        "watch",
        "--index",
        str(index.path),
        "--state",
        str(tmp / "s.sqlite"),
        "--format",
        "json",
        "-o",
        str(out),
        env=env,
    )
    assert r.returncode == 1, r.stderr
    doc = json.loads(out.read_text())
    assert doc["kind"] == "watch" and {s["repo"] for s in doc["suspects"]} == set(PLANTED)
    statuses = {s["repo"]: s["status"] for s in doc["suspects"]}
    assert statuses["fan/base-finetune"] == "declared" and statuses["thief/noised"] == "undeclared"
    r = run_cli("watch", "--index", str(index.path), "--state", str(tmp / "s.sqlite"), env=env)
    assert r.returncode == 0 and "no suspects" in r.stdout  # the second night: nothing new
    pack = tmp / "models.ospack"  # what the workflow template watches with: a pack, its manifest pinned
    summary = export_pack(index, pack)
    r = run_cli(
        "watch",
        "--pack",
        str(pack),
        "--pack-sha256",
        summary.sha256,
        "--state",
        str(tmp / "p.sqlite"),
        "--format",
        "json",
        env=env,
    )
    assert r.returncode == 1 and {s["repo"] for s in json.loads(r.stdout)["suspects"]} == set(PLANTED), r.stderr
    r = run_cli("watch", "--merge", str(out), str(tmp / "missing.json"), env=env)
    assert r.returncode == 2 and r.stderr.count("\n") == 1

    with GitHubAPIServer(token="t0k") as api:
        gh = {**env, "GITHUB_API_URL": api.url, "GITHUB_TOKEN": "t0k", "GITHUB_REPOSITORY": "acme/models"}
        r = run_cli("watch", "--merge", str(out), "--tracking-issues", env=gh)
        assert r.returncode == 1 and r.stderr.count("created") == 6, r.stderr
        assert "t0k" not in r.stdout + r.stderr
        issues = api.issues["acme/models"]
        undeclared = {k for k, (_, declared) in PLANTED.items() if not declared}
        assert len(issues) == len(undeclared)  # declared derivatives get no issue
        assert all(any(repo in i["title"] for i in issues) for repo in undeclared)
        issues[0]["state"] = "closed"  # handled by the owner
        again = file_issues(
            [Suspect.from_json(s) for s in doc["suspects"]], api.url, "t0k", "acme/models"
        )  # the next night finds them again
        assert [a["action"] for a in again] == ["updated"] * 6 and len(api.issues["acme/models"]) == 6
        assert api.issues["acme/models"][0]["state"] == "closed"


def test_config_widths_and_declared_bases():
    assert declared_widths({"hidden_size": 4096, "vision_config": {"hidden_size": 1152}}) == {4096, 1152}
    assert declared_widths({"text_config": {"hidden_size": 2048}, "d_model": True}) == {2048}
    assert declared_widths(["not", "a", "dict"]) == set()
    bases = declared_bases(
        {"base_model": ["Acme/Base", "hf:x/y@main"]},
        ["base_model:quantized:q/r"],
        {"adapter_config.json": {"base_model_name_or_path": "https://huggingface.co/a/b"}},
    )
    assert bases == ["a/b", "acme/base", "q/r", "x/y"]
    assert declared_bases(None, [], {}) == []


def test_no_watched_model_is_one_error_line(tmp_path):
    r = run_cli("watch", "--index", str(tmp_path / "empty.sqlite"), "--state", str(tmp_path / "s.sqlite"))
    assert r.returncode == 2 and "no model is registered" in r.stderr and r.stderr.count("\n") == 1


TEMPLATE = Path(__file__).resolve().parent.parent / ".github" / "workflow-templates" / "originscan-watch.yml"


def test_the_owners_workflow_template_lints_and_is_the_one_in_the_readme():
    import subprocess

    from test_workflows import SHA_PIN, _steps, clean_env, load, tool

    doc = load(TEMPLATE)
    assert doc["permissions"] in ({}, "{}")
    assert {name: job["permissions"] for name, job in doc["jobs"].items()} == {
        "watch": {"contents": "read"},
        "suspects": {"issues": "write"},
    }
    for step in _steps(doc):
        assert "uses" not in step or SHA_PIN.match(step["uses"]), step["uses"]
        assert "${{" not in step.get("run", "")
    for name, args in (("actionlint", ["-no-color"]), ("zizmor", ["--offline", "--no-progress"])):
        exe = tool(name)
        if exe is not None:
            res = subprocess.run(
                [exe, *args, str(TEMPLATE)], env=clean_env(), capture_output=True, text=True, timeout=120
            )
            assert res.returncode == 0, res.stdout + res.stderr
    readme = (TEMPLATE.parents[2] / "README.md").read_text(encoding="utf-8")
    assert TEMPLATE.read_text(encoding="utf-8").strip() in readme


def test_bad_repos_are_judged_not_crashed_on(world):
    server, index, tmp = world
    good = tiny_llm(50, **SHAPE_A)
    _push(server.root, "odd/broken-config", T0 + 2000, good, files={"config.json": b"{not json" + b"[" * 5000})
    d = _push(server.root, "odd/truncated", T0 + 2001, good, config=_cfg(SHAPE_A))
    data = (d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(data[: len(data) // 3])
    _push(server.root, "odd/truncated", T0 + 2001)
    _push(server.root, "odd/huge-header", T0 + 2002, files={"model.safetensors": (1 << 60).to_bytes(8, "little")})
    state = WatchState(tmp / "watch.sqlite")
    report = run_watch(index, state, workers=2)
    assert report.complete and report.errors == []
    assert {s.repo for s in report.suspects} == set(PLANTED)
    stages = dict(state.db.execute("SELECT repo, stage FROM seen WHERE repo LIKE 'odd/%'"))
    assert stages == {"odd/broken-config": "rows", "odd/truncated": "header", "odd/huge-header": "header"}
    state.close()


def test_a_listing_refused_stops_the_run_and_keeps_the_cursor(world):
    server, index, tmp = world
    state = WatchState(tmp / "watch.sqlite")
    server.fault("ratelimit", match="/api/models?", times=1)  # 403 with the rate-limit headers: not retried
    stopped = run_watch(index, state, workers=2)
    assert not stopped.complete and stopped.stopped.startswith("could not list") and stopped.watermark is None
    assert stopped.suspects == [] and stopped.stats.evaluated == 0
    resumed = run_watch(index, state, workers=2)
    assert resumed.complete and {s.repo for s in resumed.suspects} == set(PLANTED)
    state.close()
