"""The Action's own index and scan steps (action.yml's run scripts, unmodified) against a local Hub of 32 upstream
look-alikes: a disguised copy fails the check, an exact re-upload is caught from its LFS pointer with 0 weight bytes
read, an honest declared fine-tune passes; the cache makes the next job's index free; a pack path works offline.

The runner's part is played here: expressions are filled in, `uses:` steps (actions/cache) are simulated by
copying a folder, and `$RUNNER_TEMP/originscan-venv/bin/python` is this interpreter (the install step is pip)."""

from __future__ import annotations

import hashlib
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
from helpers import APACHE_TEXT, CUSTOM_CONFIG, card_text, disguise, noised, save_tensors
from upstream_world import build_world

ROOT = Path(__file__).resolve().parent.parent
ACTION = yaml.load((ROOT / "action.yml").read_text(), Loader=yaml.BaseLoader)
STEPS = ACTION["runs"]["steps"]


class Runner:
    """Runs the action's steps in order for one job, the way the Actions runner would."""

    def __init__(self, tmp: Path, workspace: Path, inputs: dict[str, str], env: dict[str, str], cache: Path):
        self.tmp, self.ws, self.cache = tmp, workspace, cache
        self.inputs = {k: v.get("default", "") for k, v in ACTION["inputs"].items()}
        self.inputs.update(token="", sarif="false", comment="false")
        self.inputs.update(inputs)
        self.temp = tmp / "runner-temp"
        shutil.rmtree(self.temp, ignore_errors=True)
        (self.temp / "originscan-venv" / "bin").mkdir(parents=True)
        py = self.temp / "originscan-venv" / "bin" / "python"
        py.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
        py.chmod(0o755)
        self.env = env
        self.outputs: dict[str, dict[str, str]] = {}
        self.logs: dict[str, str] = {}

    def expr(self, text: str) -> str:
        def value(m: re.Match) -> str:
            e = m.group(1).strip()
            if e == "runner.temp":
                return str(self.temp)
            if i := re.fullmatch(r"inputs\.([a-z0-9-]+)", e):
                return self.inputs[i.group(1)]
            if o := re.fullmatch(r"steps\.([a-z0-9-]+)\.outputs\.([a-z0-9-]+)", e):
                return self.outputs.get(o.group(1), {}).get(o.group(2), "")
            if e.startswith("inputs.sarif == 'true' && format("):
                return str(self.temp / "originscan.sarif") if self.inputs["sarif"] == "true" else ""
            raise AssertionError(f"expression the test runner does not know: {e}")

        return re.sub(r"\$\{\{(.*?)\}\}", value, text)

    def condition(self, cond: str | None) -> bool:
        if not cond:
            return True
        parts = [p.strip() for p in cond.split("&&")]
        ok = True
        for p in parts:
            if p == "always()":
                continue
            m = re.fullmatch(r"(.+?) (==|!=) '(.*)'", p)
            assert m, f"condition the test runner does not know: {cond}"
            left = self.expr("${{ " + m.group(1) + " }}")
            ok &= (left == m.group(3)) if m.group(2) == "==" else (left != m.group(3))
        return ok

    def run(self) -> int:
        rc = 0
        for step in STEPS:
            if not self.condition(step.get("if")):
                continue
            uses = step.get("uses", "")
            with_ = {k: self.expr(v) for k, v in (step.get("with") or {}).items()}
            if uses.startswith("actions/setup-python@") or uses.startswith("github/codeql-action/upload-sarif@"):
                continue
            if uses.startswith("actions/cache/restore@"):
                hit = self.cache / with_["key"]
                if hit.is_dir():
                    shutil.copytree(hit, with_["path"], dirs_exist_ok=True)
                self.outputs[step["id"]] = {"cache-hit": "true" if hit.is_dir() else "false"}
                continue
            if uses.startswith("actions/cache/save@"):
                shutil.copytree(with_["path"], self.cache / with_["key"], dirs_exist_ok=True)
                continue
            assert not uses, f"a step the test runner does not know: {uses}"
            if "pip install" in step["run"]:
                continue  # the install step: this interpreter already has originscan
            out = self.tmp / f"output-{step.get('id', 'x')}.txt"
            out.write_text("")
            env = dict(self.env)
            env.update({k: self.expr(v) for k, v in (step.get("env") or {}).items()})
            env.update(
                RUNNER_TEMP=str(self.temp),
                GITHUB_OUTPUT=str(out),
                GITHUB_WORKSPACE=str(self.ws),
                GITHUB_STEP_SUMMARY=str(self.tmp / "summary.md"),
            )
            res = subprocess.run(
                ["bash", "-e", "-c", step["run"]], cwd=self.ws, env=env, capture_output=True, text=True, timeout=300
            )
            self.logs[step.get("id") or step["name"]] = res.stdout + res.stderr
            self.outputs[step.get("id", "")] = dict(re.findall(r"^([a-z0-9-]+)=(.*)$", out.read_text(), re.M))
            if res.returncode:
                rc = res.returncode
                break
        return rc

    def report(self) -> dict:
        return json.loads((self.temp / "originscan-reports" / "originscan.json").read_text())


def lfs_pointer(data: bytes) -> str:
    return (
        f"version https://git-lfs.github.com/spec/v1\noid sha256:{hashlib.sha256(data).hexdigest()}\nsize {len(data)}\n"
    )


@pytest.fixture
def scene(hub, tmp_path):
    world, listing = build_world(hub.root, tmp_path)
    honest_base = next(la for la in world if not la.gated and not la.private and la.license == "apache-2.0")
    copied = next(la for la in world if not la.gated and not la.private and la is not honest_base)
    gated = next(la for la in world if la.gated and not la.mirrors)
    ws = tmp_path / "ws"
    repo = git.Repo.init(ws, initial_branch="main")
    with repo.config_writer() as cw:
        cw.set_value("user", "name", "t")
        cw.set_value("user", "email", "t@example.com")
        cw.set_value("commit", "gpgsign", "false")
    (ws / "README.md").write_text("# acme models\n")
    repo.git.add("-A")
    repo.git.commit("-q", "-m", "base")
    base = repo.head.commit.hexsha

    def model(folder: str, card: dict, weights=None, pointer: str | None = None) -> None:
        d = ws / "models" / folder
        d.mkdir(parents=True)
        (d / "README.md").write_text(card_text(card, f"# {folder}\n"))
        (d / "LICENSE").write_text(APACHE_TEXT)
        (d / "config.json").write_text(json.dumps(CUSTOM_CONFIG))
        if weights is not None:
            save_tensors(weights, d / "model.safetensors")
        if pointer is not None:
            (d / "model.safetensors").write_text(pointer)

    # PR 1: a disguised copy (renamed, permuted, noised) and an exact re-upload of a gated upstream, checked out
    # the way actions/checkout leaves LFS files by default: as pointers.
    model("copycat", {"license": "apache-2.0"}, weights=disguise(copied.weights()))
    gated_bytes = (hub.root / gated.id / "model.safetensors").read_bytes()
    model("reupload", {"license": "apache-2.0"}, pointer=lfs_pointer(gated_bytes))
    repo.git.add("-A")
    repo.git.commit("-q", "-m", "copies")
    bad_head = repo.head.commit.hexsha
    # PR 2 (from the base): an honest fine-tune that declares its base.
    repo.git.checkout("-q", "-b", "honest", base)
    model(
        "honest",
        {"license": "apache-2.0", "base_model": honest_base.id},
        weights=noised(honest_base.weights(), 0.05, seed=9),
    )
    repo.git.add("-A")
    repo.git.commit("-q", "-m", "fine-tune")
    good_head = repo.head.commit.hexsha

    def event(head: str, number: int) -> Path:
        p = tmp_path / f"event-{number}.json"
        p.write_text(
            json.dumps(
                {
                    "number": number,
                    "pull_request": {
                        "number": number,
                        "base": {"sha": base, "repo": {"full_name": "acme/models"}},
                        "head": {"sha": head, "repo": {"full_name": "acme/models"}},
                    },
                }
            )
        )
        return p

    env = {k: v for k, v in os.environ.items() if k not in ("GITHUB_TOKEN", "GH_TOKEN", "HF_TOKEN")}
    env.update(
        HF_ENDPOINT=hub.url,
        ORIGINSCAN_UPSTREAMS=str(listing),
        PYTHONPATH=str(ROOT),
        GITHUB_EVENT_NAME="pull_request",
        GITHUB_REPOSITORY="acme/models",
        GITHUB_API_URL="http://127.0.0.1:9",
        ORIGINSCAN_CACHE=str(tmp_path / "oscache"),
    )
    env.pop("ORIGINSCAN_INDEX", None)
    return dict(
        world=world,
        ws=ws,
        repo=repo,
        env=env,
        events={"bad": (event(bad_head, 1), bad_head), "good": (event(good_head, 2), good_head)},
        copied=copied,
        gated=gated,
        honest=honest_base,
    )


def _job(scene, tmp_path, pr: str, cache: Path, name: str, **inputs) -> Runner:
    ev, head = scene["events"][pr]
    scene["repo"].git.checkout("-q", head)
    env = dict(scene["env"], GITHUB_EVENT_PATH=str(ev))
    job_dir = tmp_path / name
    job_dir.mkdir()
    return Runner(job_dir, scene["ws"], inputs, env, cache)


def _findings(report: dict, folder: str) -> dict[str, dict]:
    target = next(t for t in report["targets"] if t["target"] == f"models/{folder}")
    return {f["rule"]: f for f in target["findings"]}


def test_action_catches_copies_and_passes_an_honest_fine_tune(scene, hub, tmp_path):
    cache = tmp_path / "actions-cache"
    cache.mkdir()
    job = _job(scene, tmp_path, "bad", cache, "job1")
    assert job.run() == 1, job.logs
    assert "save" in job.outputs["index"]  # cache missed: updated, then saved under the version+KB key
    assert any(p.name.startswith("originscan-index-") for p in cache.iterdir())
    report = job.report()
    copycat = _findings(report, "copycat")
    assert "weights.disguised_copy" in copycat, sorted(copycat)
    assert copycat["weights.disguised_copy"]["evidence"]["upstream"] == scene["copied"].id
    reupload = _findings(report, "reupload")
    assert "weights.exact_copy" in reupload, sorted(reupload)
    exact = reupload["weights.exact_copy"]["evidence"]
    assert exact["upstream"] == scene["gated"].id and exact["bytes_read"] == 0
    assert "weights.exact_copy" in job.logs["scan"] and "weights.disguised_copy" in job.logs["scan"]

    # The next job restores the index from the cache: the Hub is not asked for it at all.
    hub.stats.reset()
    job = _job(scene, tmp_path, "good", cache, "job2")
    assert job.run() == 0, job.logs
    assert "restored from the Actions cache" in job.logs["index"]
    assert hub.stats.requests == 0
    honest = _findings(job.report(), "honest")
    assert not [r for r in honest if r.startswith("weights.")], sorted(honest)


def test_action_index_from_a_pack_or_none(scene, hub, tmp_path):
    from scanner.knowledge import upstreams_from_file
    from scanner.provenance.index import Index
    from scanner.provenance.pack import export_pack
    from scanner.provenance.update import update_index

    index = Index(tmp_path / "built.sqlite")
    update_index(index, upstreams_from_file(scene["env"]["ORIGINSCAN_UPSTREAMS"]), log=lambda _: None)
    pack = scene["ws"] / "upstreams.ospack"
    sha = export_pack(index, pack).sha256
    hub.stats.reset()
    job = _job(scene, tmp_path, "bad", tmp_path, "pack", index="upstreams.ospack", **{"index-sha256": sha})
    assert job.run() == 1, job.logs
    assert hub.stats.requests == 0  # the pack is all it needs
    assert "weights.disguised_copy" in _findings(job.report(), "copycat")

    job = _job(scene, tmp_path, "bad", tmp_path, "pinned", index="upstreams.ospack", **{"index-sha256": "0" * 64})
    assert job.run() == 2 and "not the pinned" in job.logs["index"]

    job = _job(scene, tmp_path, "bad", tmp_path, "none", index="none")
    job.run()
    # no index, no derivation claimed: only that nothing was compared (weights.not_compared)
    assert [r for r in _findings(job.report(), "copycat") if r.startswith("weights.")] == ["weights.not_compared"]
