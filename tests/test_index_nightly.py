"""The nightly workflow's fingerprint steps, run as written (.github/workflows/nightly.yml): the index job builds
the index against a local Hub of upstream look-alikes, caches it and hands a pack to the shards, whose import
step loads it; the next night restores the cache and costs one revision check per upstream."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from upstream_world import build_world

from scanner.provenance.index import Index

ROOT = Path(__file__).resolve().parent.parent
NIGHTLY = yaml.load((ROOT / ".github" / "workflows" / "nightly.yml").read_text(), Loader=yaml.BaseLoader)


def run_job(job: str, ws: Path, env: dict[str, str], cache: Path, artifacts: Path, run_id: str) -> dict[str, str]:
    """The job's steps in order: run scripts through bash, actions/cache and artifacts played by folders."""
    outputs: dict[str, dict[str, str]] = {}
    logs: dict[str, str] = {}

    def expr(text: str) -> str:
        def value(m: re.Match) -> str:
            e = m.group(1).strip()
            if o := re.fullmatch(r"steps\.([a-z0-9-]+)\.outputs\.([a-z0-9-]+)", e):
                return outputs.get(o.group(1), {}).get(o.group(2), "")
            known = {
                "github.run_id": run_id,
                "secrets.HF_TOKEN": "",
                "github.token": "",
                "matrix.shard": "1",
                "vars.ORIGINSCAN_ORGS": "hf:acme",
            }
            assert e in known, f"expression the test runner does not know: {e}"
            return known[e]

        return re.sub(r"\$\{\{(.*?)\}\}", value, text)

    for step in NIGHTLY["jobs"][job]["steps"]:
        uses = step.get("uses", "")
        with_ = {k: expr(v) for k, v in (step.get("with") or {}).items()}
        if uses.startswith(("actions/checkout@", "actions/setup-python@")):
            continue
        if uses.startswith("actions/cache/restore@"):
            prefix = with_.get("restore-keys", "")
            hits = sorted(
                p for p in cache.iterdir() if p.name == with_["key"] or (prefix and p.name.startswith(prefix))
            )
            if hits:
                shutil.copytree(hits[-1], ws / with_["path"], dirs_exist_ok=True)
            continue
        if uses.startswith("actions/cache/save@"):
            shutil.copytree(ws / with_["path"], cache / with_["key"], dirs_exist_ok=True)
            continue
        if uses.startswith("actions/upload-artifact@"):
            (artifacts / with_["name"]).mkdir(parents=True, exist_ok=True)
            if with_["name"] == "originscan-index":
                shutil.copy(ws / with_["path"], artifacts / with_["name"])
            continue
        if uses.startswith("actions/download-artifact@"):
            shutil.copytree(artifacts / with_["name"], ws / with_["path"], dirs_exist_ok=True)
            continue
        assert not uses, f"a step the test runner does not know: {uses}"
        if "pip install" in step["run"]:
            continue
        if step["name"].startswith("Sweep"):
            assert "--index index/index.sqlite" in step["run"]  # the shard scans with the imported fingerprints
            break
        out = ws / f".output-{len(logs)}"
        out.write_text("")
        step_env = dict(env, GITHUB_OUTPUT=str(out), **{k: expr(v) for k, v in (step.get("env") or {}).items()})
        res = subprocess.run(
            ["bash", "-e", "-c", step["run"]], cwd=ws, env=step_env, capture_output=True, text=True, timeout=300
        )
        logs[step["name"]] = res.stdout + res.stderr
        assert res.returncode == 0, f"{step['name']}: {logs[step['name']]}"
        outputs[step.get("id", "")] = dict(re.findall(r"^([a-z0-9-]+)=(.*)$", out.read_text(), re.M))
    return logs


def test_nightly_builds_caches_and_shares_the_index(hub, tmp_path):
    world, listing = build_world(hub.root, tmp_path, count=8)  # the Action test covers the 32-upstream Hub
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "originscan").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m scanner.cli "$@"\n')
    (bindir / "originscan").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("GITHUB_TOKEN", "HF_TOKEN", "ORIGINSCAN_INDEX")}
    env.update(
        PATH=f"{bindir}:{env['PATH']}",
        PYTHONPATH=str(ROOT),
        HF_ENDPOINT=hub.url,
        ORIGINSCAN_UPSTREAMS=str(listing),
        ORIGINSCAN_CACHE=str(tmp_path / "oscache"),
    )
    cache, artifacts = tmp_path / "cache", tmp_path / "artifacts"
    cache.mkdir()
    artifacts.mkdir()
    night1 = tmp_path / "night1"
    night1.mkdir()
    logs = run_job("index", night1, env, cache, artifacts, run_id="1")
    update = next(v for k, v in logs.items() if k.startswith("Update"))
    assert f"{len(world)} upstreams:" in update and "fingerprinted" in update
    assert [p.name for p in cache.iterdir()][0].startswith("originscan-index-")

    shard = tmp_path / "shard"
    shard.mkdir()
    logs = run_job("sweep", shard, env, cache, artifacts, run_id="1")
    assert f"imported index/upstreams.ospack: {len(world)} upstreams" in logs["Import the upstream fingerprints"]
    assert {m.name for m in Index(shard / "index" / "index.sqlite").models()} == {la.id for la in world}

    hub.stats.reset()
    night2 = tmp_path / "night2"
    night2.mkdir()
    logs = run_job("index", night2, env, cache, artifacts, run_id="2")
    assert "unchanged" in next(v for k, v in logs.items() if k.startswith("Update"))
    # one revision check per upstream (plus the private one's mirror), nothing else
    assert hub.stats.requests == len(world) + sum(la.private for la in world)
    assert hub.stats.weight_bytes_served == 0
