"""Hostile repos over the network: the local Hub and GitHub servers (tests/servers/hostile.py) play repos and hosts
that lie, drip, bomb and redirect, and every command reads them through the real clients (huggingface_hub, requests,
git).

Each case runs `scan` (json and text), `compare` (json) against a clean local reference and `index add`, in its own
forked child (tests/hostile/runner.py) under the local corpus's 1 GiB address-space cap, with HF_TOKEN and
GITHUB_TOKEN set and a 3-second bound on each HTTP answer (ORIGINSCAN_REQUEST_SECONDS; the servers drip a byte every
half second, so only that bound ends those answers). Each case must end in its finding or one clear error line, in
budget, with no token printed and none sent to the foreign hosts, which record every header they receive.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from corpus import GITHUB_TOKEN, HF_TOKEN, mit_card, payload_global, sparse, write
from helpers import register, save_tensors, tiny_llm, torch_zip
from servers.hostile import GITHUB_MODES, HUB_MODES, HostileGitHub, HostileHub
from test_hostile_corpus import (
    AS_LIMIT,
    CASE_TIMEOUT,
    COMMAND_TIMEOUT,
    MEMORY_LIMIT_KB,
    RUNNER,
    WORKERS,
    load_commands,
    one_error_line,
    strict_json,
    summary_line,
    terminal_problems,
)

REQUEST_SECONDS = 3
CASE_BUDGET = 45  # four commands, each of which may wait out the 3 s bound a few times
pytestmark = pytest.mark.timeout(900)


@dataclass(frozen=True)
class Remote:
    target: str
    expect_any: frozenset[str] = frozenset()  # one of these in `scan --format json`
    error_ok: bool = False  # or: exit 2 with one clear error line
    foreign_must_be_asked: bool = False  # the redirect really happened (so "no token there" is not vacuous)


def hub(mode: str, *rules: str, error_ok: bool = False, foreign: bool = False) -> Remote:
    return Remote(f"hf:hostile/{mode}", frozenset(rules), error_ok, foreign)


def gh(mode: str, *rules: str, error_ok: bool = False, foreign: bool = False) -> Remote:
    return Remote(f"github:hostile/{mode}", frozenset(rules), error_ok, foreign)


CASES = {
    "lfs_size_lies_big": hub("lfs_size_lies_big", "source.malformed"),
    "lfs_size_lies_small": hub("lfs_size_lies_small", "source.malformed"),
    "range_more_bytes": hub("range_more_bytes", "source.malformed"),
    "range_wrong_content_range": hub("range_wrong_content_range", "source.malformed"),
    "range_ignored": hub("range_ignored", "source.malformed"),
    "range_gzip": hub("range_gzip", "source.malformed"),
    "endless_weights": hub("endless_weights", "source.unreachable"),
    "endless_json": hub("endless_json", "source.unreachable"),
    "endless_listing": hub("endless_listing", "source.unreachable", error_ok=True),
    "gzip_bomb_json": hub("gzip_bomb_json", "source.too_large"),
    "gzip_bomb_listing": hub("gzip_bomb_listing", "source.too_large", error_ok=True),
    "listing_200k": hub("listing_200k", "source.too_large"),
    "redirect_foreign": hub("redirect_foreign", foreign=True),
    "redirect_foreign_api": hub("redirect_foreign_api", foreign=True),
    "changes_after_listing": hub("changes_after_listing", "source.changed"),
    "header_gigabytes_safetensors": hub("header_gigabytes_safetensors", "source.malformed"),
    "header_gigabytes_gguf": hub("header_gigabytes_gguf", "source.malformed"),
    "pickle_payload": hub("pickle_payload", "security.pickle_unsafe_import"),
    "gh_download_url_foreign": gh("download_url_foreign", foreign=True),
    "gh_raw_redirect_foreign": gh("raw_redirect_foreign", foreign=True),
    # GitHub LFS content is never downloaded (the scanner reads LFS pointers only): the lying size is recorded, and
    # the weights are reported as not verifiable rather than trusted
    "gh_lfs_pointer_lies": gh("lfs_pointer_lies", "source.unverifiable"),
    "gh_endless_raw": gh("endless_raw", "source.unreachable"),
    "gh_api_endless": gh("api_endless", "source.unreachable", error_ok=True),
    "gh_api_gzip_bomb": gh("api_gzip_bomb", "source.too_large", error_ok=True),
}
assert {c.target.split("/", 1)[1] for c in CASES.values()} == set(HUB_MODES) | set(GITHUB_MODES)


# -- the repos -------------------------------------------------------------------------------------------------------
CONFIG = {"model_type": "llama", "hidden_size": 48, "num_hidden_layers": 2, "vocab_size": 320}


def hub_repo(root: Path, mode: str, marker: Path) -> None:
    repo = root / "hostile" / mode
    repo.mkdir(parents=True)
    mit_card(repo)
    write(repo, "config.json", json.dumps(CONFIG))
    if mode == "header_gigabytes_safetensors":
        p = write(repo, "model.safetensors", struct.pack("<Q", 3 << 30) + b'{"w": ')
        sparse(p, 4 << 30)
    elif mode == "header_gigabytes_gguf":
        # GGUF v3, no tensors, one key whose string value claims 3 GiB
        head = b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 12) + b"general.name"
        p = write(repo, "model.gguf", head + struct.pack("<IQ", 8, 3 << 30) + b"x" * 64)
        sparse(p, 4 << 30)
    elif mode == "pickle_payload":
        write(repo, "pytorch_model.bin", torch_zip(payload_global(marker)))
    else:
        save_tensors(tiny_llm(2), repo / "model.safetensors")


def github_repo(server: HostileGitHub, mode: str) -> None:
    import hashlib

    weights = (Path(server.root) / f"weights-{mode}.safetensors").resolve()
    save_tensors(tiny_llm(2), weights)
    data = weights.read_bytes()
    files = {"README.md": "---\nlicense: mit\n---\n# m\n", "config.json": json.dumps(CONFIG)}
    if mode == "lfs_pointer_lies":
        oid = hashlib.sha256(data).hexdigest()
        server.lfs[oid] = data
        files["model.safetensors"] = f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {10 << 30}\n"
        server.add_repo(f"hostile/{mode}", files)
    else:  # a plain git blob: the partial clone leaves it out and the scanner reads it by range from download_url
        server.add_repo(f"hostile/{mode}", dict(files, **{"model.safetensors": data}))


# -- running ---------------------------------------------------------------------------------------------------------
@dataclass
class RanRemote:
    name: str
    case: Remote
    marker: Path
    commands: list[dict]
    child: dict
    foreign_requests: list[str]
    leaked_to_foreign: list[str]
    token_sent_home: bool  # the token did go to the repo's own host (it was in play)


def commands_for(target: str, reference: Path, work: Path) -> list[list[str]]:
    return [
        ["scan", target, "--format", "json"],
        ["scan", target, "--format", "text"],
        ["compare", target, str(reference), "--format", "json"],
        ["index", "add", target, "--index", str(work / "index-add.sqlite")],
    ]


@pytest.fixture(scope="session")
def remote_corpus(tmp_path_factory) -> dict[str, RanRemote]:
    root = tmp_path_factory.mktemp("hostile-remote")
    reference = root / "reference"
    reference.mkdir()
    mit_card(reference)
    save_tensors(tiny_llm(1), reference / "model.safetensors")
    index = root / "index.sqlite"
    register(index, reference, "reference/tiny", "mit")

    hub_root = root / "hub"
    markers = {name: root / name / "PWNED-marker" for name in CASES}
    for name, c in CASES.items():
        (root / name / "work" / "out").mkdir(parents=True)
        if c.target.startswith("hf:"):
            hub_repo(hub_root, c.target.split("/", 1)[1], markers[name])
    hub_server = HostileHub(hub_root, tokens={HF_TOKEN}).start()
    gh_server = HostileGitHub(root / "gh", tokens={GITHUB_TOKEN}).start()
    try:
        for c in CASES.values():
            if c.target.startswith("github:"):
                github_repo(gh_server, c.target.split("/", 1)[1])
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ORIGINSCAN_", "HF_", "GITHUB_", "HUGGING"))}
        env.update(
            HF_TOKEN=HF_TOKEN,
            GITHUB_TOKEN=GITHUB_TOKEN,
            HF_ENDPOINT=hub_server.url,
            GITHUB_API_URL=gh_server.url,
            HF_HOME=str(root / "hf-home"),
            HF_HUB_DISABLE_TELEMETRY="1",
            ORIGINSCAN_INDEX=str(index),
            ORIGINSCAN_REQUEST_SECONDS=str(REQUEST_SECONDS),
            MALLOC_ARENA_MAX="2",
            OPENBLAS_NUM_THREADS="1",
            PYTHONPATH=str(Path(__file__).resolve().parents[2]),
            PYTHONDONTWRITEBYTECODE="1",
            NO_PROXY="*",
        )
        specs = []
        for name, c in CASES.items():
            work = root / name / "work"
            specs.append(
                {
                    "as_limit": AS_LIMIT,
                    "timeout": COMMAND_TIMEOUT,
                    "case_timeout": CASE_TIMEOUT,
                    "out": str(work / "out"),
                    "cwd": str(work),
                    "env": {"ORIGINSCAN_CACHE": str(work / "cache")},
                    "commands": commands_for(c.target, reference, work),
                }
            )
        started = time.monotonic()
        servers = []
        for k in range(WORKERS):
            spec_file = root / f"server-{k}.json"
            spec_file.write_text(json.dumps(specs[k::WORKERS]))
            servers.append(
                subprocess.Popen(
                    [sys.executable, str(RUNNER), "--serve", str(spec_file)],
                    stdin=subprocess.DEVNULL,
                    cwd=root,
                    env=env,
                )
            )
        for proc in servers:
            proc.wait(timeout=CASE_TIMEOUT * (len(specs) + 2))
        seconds = time.monotonic() - started
        ran = {}
        for name, c in CASES.items():
            work = root / name / "work"
            try:
                child = json.loads((work / "child.json").read_text())
            except OSError:
                child = {"exit": None, "seconds": 0.0, "peak_rss_kb": 0, "killed": True}
            for stream in ("out", "err"):
                path = work / f"child.{stream}"
                child[stream] = path.read_bytes() if path.exists() else b""
            foreign = hub_server.foreign if c.target.startswith("hf:") else gh_server.foreign
            mode = c.target.split("/", 1)[1]
            mine = re.compile(rf"hostile/{mode}(?![A-Za-z0-9_])")
            asked = [f"{m} {p}" for m, p, _ in foreign.recorder.requests if mine.search(p)]
            leaked = [r for secret in (HF_TOKEN, GITHUB_TOKEN) for r in foreign.recorder.carrying(secret)]
            own = hub_server if c.target.startswith("hf:") else gh_server
            home = any(mine.search(p) for p in own.recorder.carrying(HF_TOKEN) + own.recorder.carrying(GITHUB_TOKEN))
            ran[name] = RanRemote(name, c, markers[name], load_commands(work), child, asked, leaked, home)
        print(
            f"\nremote hostile corpus: {len(ran)} cases in {seconds:.1f} s; "
            + summary_line(
                runs=sum(len(r.commands) for r in ran.values()),
                problems={n: classify(r) for n, r in ran.items()},
                peak_kb=max(r.child["peak_rss_kb"] for r in ran.values()),
            )
        )
        yield ran
    finally:
        hub_server.stop()
        gh_server.stop()
        shutil.rmtree(root, ignore_errors=True)


# -- judging ---------------------------------------------------------------------------------------------------------
def classify(r: RanRemote) -> dict[str, list[str]]:
    """Problems by kind (the summary line's columns): crash, hang, code execution, token leak, injection, memory,
    budget."""
    out: dict[str, list[str]] = {k: [] for k in ("crash", "hang", "exec", "leak", "injection", "memory", "budget")}
    if r.child["killed"]:
        out["hang"].append(f"killed after {CASE_TIMEOUT} s")
    elif r.child["seconds"] > CASE_BUDGET:
        out["budget"].append(f"took {r.child['seconds']:.1f} s (budget {CASE_BUDGET} s)")
    if r.child["exit"] not in (0, None):
        out["crash"].append(f"child exited {r.child['exit']}: {r.child['err'][-1500:]!r}")
    if r.child["peak_rss_kb"] >= MEMORY_LIMIT_KB:
        out["memory"].append(f"peak memory {r.child['peak_rss_kb'] / 1024:.0f} MiB")
    if r.marker.exists():
        out["exec"].append("the planted marker file was created")
    out["leak"] += [f"token sent to the foreign host: {x}" for x in r.leaked_to_foreign]
    if len(r.commands) != 4:
        out["crash"].append(f"only {len(r.commands)} of 4 commands ran")
    for c in r.commands:
        name = " ".join(c["argv"][:1] + c["argv"][2:4])
        if c["status"] == "hang":
            out["hang"].append(f"{name}: hang")
            continue
        if c["status"] != "exit":
            out["crash"].append(f"{name}: {c['status']}: {c['err'][-1500:]!r}")
            continue
        out_text, err = c["out"].decode("utf-8", "replace"), c["err"].decode("utf-8", "replace")
        for text in (
            out_text,
            err,
            r.child["out"].decode("utf-8", "replace"),
            r.child["err"].decode("utf-8", "replace"),
        ):
            if "Traceback" in text or "internal error" in text:
                out["crash"].append(f"{name}: {text[-800:]!r}")
            if HF_TOKEN in text or GITHUB_TOKEN in text:
                out["leak"].append(f"{name}: a token was printed")
        allowed = (0, 1, 2, 3) if c["argv"][0] == "compare" else (0, 1, 2)  # compare: 3 is "inconclusive"
        if c["rc"] not in allowed or (c["rc"] == 2 and not clean_exit_2(c)):
            out["crash"].append(f"{name}: exit {c['rc']} without one clear error line: {err[-600:]!r}")
        out["injection"] += [f"{name} stderr: {p}" for p in terminal_problems(err)]
        if out_text and "json" in c["argv"]:
            try:
                strict_json(out_text)
            except (ValueError, UnicodeEncodeError) as exc:
                out["injection"].append(f"{name}: not strict JSON: {exc}")
        else:
            out["injection"] += [f"{name} stdout: {p}" for p in terminal_problems(out_text)]
    return out


def clean_exit_2(c: dict) -> bool:
    """Exit 2 the way the CLI contract allows: one error line, or (scan) a report whose every target says it could
    not be read and why (DESIGN.md: `scan` reports an unreadable target and exits 2)."""
    if one_error_line(c):
        return True
    if c["argv"][0] != "scan" or c["err"].strip():
        return False
    text = c["out"].decode("utf-8", "replace")
    if "json" in c["argv"]:
        targets = json.loads(text)["targets"]
        return bool(targets) and all(t.get("error") and t["findings"] for t in targets)
    return "could not be read: " in text


def test_remote_corpus_covers_the_issue():
    modes = {c.target.split("/", 1)[1] for c in CASES.values()}
    for needed in ("lfs_size_lies_big", "range_more_bytes", "range_wrong_content_range", "endless_weights"):
        assert needed in modes
    for needed in ("header_gigabytes_safetensors", "header_gigabytes_gguf", "listing_200k", "redirect_foreign"):
        assert needed in modes
    for needed in ("gzip_bomb_json", "changes_after_listing", "download_url_foreign", "raw_redirect_foreign"):
        assert needed in modes


@pytest.mark.parametrize("name", list(CASES))
def test_remote_case_is_survived(remote_corpus, name):
    """No crash, hang, code execution, token leak (printed or sent to a foreign host), injection; memory and time
    within budget."""
    problems = [p for kind in classify(remote_corpus[name]).values() for p in kind]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", list(CASES))
def test_remote_case_gets_its_finding(remote_corpus, name):
    r = remote_corpus[name]
    c = r.commands[0]
    assert c["argv"][:1] == ["scan"] and c["status"] == "exit"
    if c["rc"] == 2:
        assert r.case.error_ok and clean_exit_2(c), (c["out"][-600:], c["err"][-600:])
        if one_error_line(c):
            return
    rules = {f["rule"] for t in json.loads(c["out"])["targets"] for f in t["findings"]}
    if r.case.expect_any:
        assert r.case.expect_any & rules, f"none of {sorted(r.case.expect_any)}; got {sorted(rules)}"
    if r.case.foreign_must_be_asked:
        assert r.foreign_requests, "the redirect was not followed: the no-token check would be vacuous"
        assert r.token_sent_home, "the token was never sent at all: the no-token check would be vacuous"
