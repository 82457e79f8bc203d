"""Issue 19, "never silently pass": what was not checked is said, an unreachable Hub fails loudly and fast, Ctrl-C
stops a run within a second, and bad invocations are usage errors.

Network rows run against the local Hub test server (tests/servers/hub.py) with its port closed or with every request
failing; Ctrl-C is a real SIGINT to a real `originscan` subprocess."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers import (
    REPO_ROOT,
    assert_fires,
    assert_quiet,
    make_repo,
    noised,
    register,
    run_cli,
    scan,
    tiny_llm,
)

from scanner.provenance.index import Index

ENTRY = Path(sys.executable).parent / "originscan"  # the installed console script
FORMATS = ("text", "json", "markdown", "sarif", "html", "cyclonedx", "spdx")


def closed_port() -> str:
    """A localhost URL nothing listens on (bound, then released: connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# == weights.not_compared ==========================================================================================
@pytest.fixture
def upstream(tmp_path):
    tensors = tiny_llm(seed=1)
    repo = make_repo(tmp_path / "up", "base", card={"license": "apache-2.0"}, weights={"model.safetensors": tensors})
    return repo, tensors


def test_not_compared_fires_without_an_index(tmp_path, upstream):
    _, tensors = upstream
    repo = make_repo(
        tmp_path, "ft", card={"license": "apache-2.0"}, weights={"model.safetensors": noised(tensors, 0.1)}
    )
    f = assert_fires(scan(repo, index=None), "weights.not_compared")[0]
    assert "no fingerprint index" in f.message and "originscan index update" in f.message
    assert f.evidence["command"] == "originscan index update"


def test_not_compared_fires_for_an_empty_index(tmp_path, upstream):
    _, tensors = upstream
    repo = make_repo(tmp_path, "ft", card={"license": "apache-2.0"}, weights={"model.safetensors": tensors})
    index = Index(tmp_path / "empty.sqlite")
    try:
        f = assert_fires(scan(repo, index=index), "weights.not_compared")[0]
    finally:
        index.close()
    assert "registers no upstream" in f.message


def test_not_compared_fires_when_no_upstream_has_that_shape(tmp_path, upstream):
    up, _ = upstream
    index = register(tmp_path / "idx.sqlite", up, "acme/base", "apache-2.0")
    wider = tiny_llm(seed=9, d=64)  # hidden size 64: the registered upstream has 48
    repo = make_repo(tmp_path, "wide", card={"license": "apache-2.0"}, weights={"model.safetensors": wider})
    try:
        f = assert_fires(scan(repo, index=index), "weights.not_compared")[0]
    finally:
        index.close()
    assert "hidden size 64" in f.message and f.evidence["command"] == "originscan index add hf:OWNER/NAME"


def test_not_compared_fires_for_lfs_pointers_without_an_index(tmp_path):
    pointer = "version https://git-lfs.github.com/spec/v1\noid sha256:" + "ab" * 32 + "\nsize 123456\n"
    repo = make_repo(tmp_path, "ptr", card={"license": "mit"}, files={"model.safetensors": pointer})
    f = assert_fires(scan(repo, index=None), "weights.not_compared")[0]
    assert "Git LFS pointers" in f.message and "git lfs pull" in f.evidence["command"]


def test_not_compared_quiet_when_the_weights_were_compared(tmp_path, upstream):
    """Same shape as a registered upstream: compared (the sketch screen rules it out as independent), so nothing is
    said about not comparing."""
    up, _ = upstream
    index = register(tmp_path / "idx.sqlite", up, "acme/base", "apache-2.0")
    other = make_repo(tmp_path, "other", card={"license": "mit"}, weights={"model.safetensors": tiny_llm(seed=7)})
    try:
        report = scan(other, index=index)
    finally:
        index.close()
    assert_quiet(report, "weights.not_compared")
    assert not [f for f in report.findings if f.family == "weights"]


def test_not_compared_quiet_without_weights(tmp_path):
    repo = make_repo(tmp_path, "cardonly", card={"license": "mit"})
    assert_quiet(scan(repo, index=None), "weights.not_compared")


@pytest.mark.parametrize("fmt", FORMATS)
def test_not_compared_is_said_in_every_format(tmp_path, upstream, fmt):
    _, tensors = upstream
    repo = make_repo(tmp_path, "ft", card={"license": "apache-2.0"}, weights={"model.safetensors": tensors})
    env = {"ORIGINSCAN_INDEX": str(tmp_path / "absent" / "index.sqlite")}
    r = run_cli("scan", str(repo), "--format", fmt, env=env)
    assert r.returncode == 0, r.stderr
    assert "weights.not_compared" in r.stdout and "originscan index update" in r.stdout


def test_fail_on_info_fails_when_weights_were_not_compared(tmp_path, upstream):
    _, tensors = upstream
    repo = make_repo(tmp_path, "ft", card={"license": "apache-2.0"}, weights={"model.safetensors": tensors})
    env = {"ORIGINSCAN_INDEX": str(tmp_path / "absent" / "index.sqlite")}
    assert run_cli("scan", str(repo), "--fail-on", "info", "-f", "json", env=env).returncode == 1
    assert run_cli("scan", str(repo), "-f", "json", env=env).returncode == 0


# == an unreachable Hub: closed port, or a server that drops every connection ====================================
class DropServer:
    """Accepts every connection and closes it without a word: every request fails, none is answered."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.accepted = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def stop(self) -> None:
        self.sock.close()


@pytest.fixture(params=["closed-port", "every-request-fails"])
def dead_hub(request, tmp_path, monkeypatch):
    """HF_ENDPOINT pointing at a Hub that cannot be reached, both ways."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    if request.param == "closed-port":
        monkeypatch.setenv("HF_ENDPOINT", closed_port())
        yield request.param
        return
    server = DropServer()
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    yield request.param
    server.stop()


def originscan(*args: str, timeout: float = 120, cwd: Path | None = None) -> tuple[int, str, str, float]:
    """The installed console script, as a user runs it: (exit status, stdout, stderr, seconds)."""
    started = time.monotonic()
    r = subprocess.run([str(ENTRY), *args], capture_output=True, text=True, timeout=timeout, cwd=cwd or REPO_ROOT)
    return r.returncode, r.stdout, r.stderr, time.monotonic() - started


def quiet_failure(err: str) -> None:
    """One line per failure from originscan itself: no library retry chatter, no traceback."""
    assert "Retrying in" not in err and "thrown while requesting" not in err and "Traceback" not in err


def test_sweep_of_an_unreachable_hub_exits_2_with_one_line_per_org(dead_hub, tmp_path):
    rc, out, err, seconds = originscan("sweep", "hf:acme", "hf:other", "--history", str(tmp_path / "h.sqlite"))
    assert rc == 2, err
    lines = [line for line in err.splitlines() if line.startswith("originscan sweep: could not list")]
    assert len(lines) == 2 and "hf:acme" in lines[0] + lines[1] and "hf:other" in lines[0] + lines[1]
    quiet_failure(err)
    assert seconds < 30
    # nothing listed, nothing recorded: the next run's diff is not against an empty run
    from scanner.ci.history import diff_last

    assert not (tmp_path / "h.sqlite").exists() or diff_last(tmp_path / "h.sqlite", []).run is None


def test_partial_sweep_says_which_repos_were_not_scanned(hub, tmp_path):
    from servers.hub import make_repo as make_hub_repo

    make_hub_repo(hub.root, "acme/good", {"README.md": "---\nlicense: mit\n---\n# good\n"})
    make_hub_repo(hub.root, "acme/down", {"README.md": "---\nlicense: mit\n---\n# down\n"})
    hub.fault("500", match="/api/models/acme/down", times=-1)
    env = {"HF_ENDPOINT": hub.url}
    r = run_cli("sweep", "hf:acme", "--no-history", "-f", "json", env=env, timeout=180)
    assert r.returncode in (0, 1), r.stderr
    assert "originscan sweep: could not scan hf:acme/down" in r.stderr
    assert "hf:acme/good" not in r.stderr


def test_watch_of_an_unreachable_hub_exits_2_and_says_it_could_not_list(dead_hub, tmp_path):
    up = make_repo(tmp_path, "up", card={"license": "mit"}, weights={"model.safetensors": tiny_llm(seed=1)})
    index = tmp_path / "w.sqlite"
    assert originscan("index", "add", str(up), "--name", "acme/up", "--index", str(index))[0] == 0
    rc, out, err, seconds = originscan("watch", "--index", str(index), "--state", str(tmp_path / "s.sqlite"))
    assert rc == 2, err
    assert "could not list the Hub's models" in err and "no suspects" not in out
    quiet_failure(err)
    assert seconds < 30


def test_index_update_of_an_unreachable_hub_stops_in_seconds_with_one_line(dead_hub, tmp_path):
    index = tmp_path / "i.sqlite"
    rc, out, err, seconds = originscan("index", "update", "--index", str(index))  # every upstream of the KB
    assert rc == 2
    assert seconds < 20, f"took {seconds:.0f} s"
    assert out.strip() == ""  # no line per upstream
    assert len(err.strip().splitlines()) == 1 and "not reachable" in err and "stopped after" in err
    quiet_failure(err)
    assert Index(index).models() == []


def test_scan_of_an_unreachable_hub_target_is_a_source_finding_exit_2(dead_hub):
    rc, out, err, seconds = originscan("scan", "hf:acme/model", "-f", "json")
    assert rc == 2
    data = json.loads(out)
    assert [f["rule"] for f in data["targets"][0]["findings"]] == ["source.unreachable"]
    quiet_failure(err)
    assert seconds < 30


# == Ctrl-C: SIGINT to a real process in the middle of its fetches ================================================
def interrupt_mid_fetch(hub, args: list[str], cwd: Path | None = None) -> tuple[int, str, float]:
    """Start `originscan ARGS`, wait until it is talking to the (slow) Hub, send SIGINT: (status, stderr, seconds
    from the signal to the exit)."""
    hub.fault("slow", "", times=-1, delay=20.0)  # every answer takes 20 s: the run is surely mid-fetch
    proc = subprocess.Popen(
        [str(ENTRY), *args], cwd=cwd or REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        waited = time.monotonic()
        while hub.stats.connections == 0:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() - waited < 60, "never reached the Hub"
            time.sleep(0.05)
        time.sleep(0.5)  # a few more requests in flight
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        return proc.returncode, err, time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
        hub.clear_faults()


def stopped_cleanly(rc: int, err: str, seconds: float) -> None:
    assert rc == 130, err
    assert "originscan: interrupted" in err and "Traceback" not in err
    assert seconds < 2.5, f"{seconds:.1f} s from SIGINT to exit"  # one second, plus a loaded CI machine's slack


def hub_repos(hub, n: int) -> list[str]:
    from helpers import save_tensors
    from servers.hub import make_repo as make_hub_repo

    tmp = Path(hub.root).parent / "weights"
    ids = []
    for i in range(n):
        st = save_tensors(tiny_llm(seed=20 + i), tmp / f"m{i}.safetensors").read_bytes()
        make_hub_repo(hub.root, f"acme/m{i}", {"README.md": "---\nlicense: mit\n---\n# m\n", "model.safetensors": st})
        ids.append(f"acme/m{i}")
    return ids


def test_ctrl_c_stops_index_update_and_leaves_the_index_consistent(hub, tmp_path):
    from upstream_world import build_world

    _, listing = build_world(hub.root, tmp_path, count=12)
    index = tmp_path / "i.sqlite"
    rc, err, seconds = interrupt_mid_fetch(hub, ["index", "update", "--upstreams", str(listing), "--index", str(index)])
    stopped_cleanly(rc, err, seconds)
    import sqlite3

    if index.exists():
        with sqlite3.connect(index) as db:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    # and the next update, with the Hub answering again, completes from there
    r = run_cli("index", "update", "--upstreams", str(listing), "--index", str(index), env={"HF_ENDPOINT": hub.url})
    assert r.returncode in (0, 1) and "12 upstreams:" in r.stdout, r.stderr


def test_ctrl_c_stops_sweep(hub, tmp_path):
    hub_repos(hub, 6)
    rc, err, seconds = interrupt_mid_fetch(hub, ["sweep", "hf:acme", "--history", str(tmp_path / "h.sqlite")])
    stopped_cleanly(rc, err, seconds)


def test_ctrl_c_stops_watch(hub, tmp_path):
    hub_repos(hub, 3)
    up = make_repo(tmp_path, "up", card={"license": "mit"}, weights={"model.safetensors": tiny_llm(seed=1)})
    index = tmp_path / "w.sqlite"
    assert originscan("index", "add", str(up), "--name", "acme/up", "--index", str(index))[0] == 0
    rc, err, seconds = interrupt_mid_fetch(hub, ["watch", "--index", str(index), "--state", str(tmp_path / "s")])
    stopped_cleanly(rc, err, seconds)


def test_ctrl_c_stops_scan(hub, tmp_path):
    hub_repos(hub, 1)
    rc, err, seconds = interrupt_mid_fetch(hub, ["scan", "hf:acme/m0", "-o", str(tmp_path / "r.json")])
    stopped_cleanly(rc, err, seconds)
    assert not (tmp_path / "r.json").exists() and not list(tmp_path.glob(".r.json*"))  # no partial report


# == progress: one line per step in a CI log, nothing with --quiet ================================================
def test_watch_prints_one_line_per_judged_repo_and_nothing_with_quiet(hub, tmp_path):
    ids = hub_repos(hub, 3)
    up = make_repo(tmp_path, "up", card={"license": "mit"}, weights={"model.safetensors": tiny_llm(seed=1)})
    index = tmp_path / "w.sqlite"
    assert originscan("index", "add", str(up), "--name", "acme/up", "--index", str(index))[0] == 0
    rc, out, err, _ = originscan("watch", "--index", str(index), "--state", str(tmp_path / "s1"))
    assert rc in (0, 1), err
    steps = [line for line in err.splitlines() if line.startswith("originscan watch: acme/")]
    assert sorted(line.split(":")[1].strip() for line in steps) == sorted(ids)
    rc, out, err, _ = originscan("-q", "watch", "--index", str(index), "--state", str(tmp_path / "s2"))
    assert rc in (0, 1) and "originscan watch: acme/" not in err and "originscan watch:" in out


@pytest.mark.skipif(shutil.which("script") is None, reason="needs script(1) for a pseudo-terminal")
def test_index_update_shows_a_bar_with_an_eta_on_a_terminal(hub, tmp_path):
    from upstream_world import build_world

    _, listing = build_world(hub.root, tmp_path, count=3)
    cmd = f"{ENTRY} index update --upstreams {listing} --index {tmp_path / 'i.sqlite'}"
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    r = subprocess.run(["script", "-qec", cmd, "/dev/null"], env={**env, "TERM": "xterm"}, capture_output=True,
                       text=True, timeout=120)  # fmt: skip
    assert "index update" in r.stdout and "3/3" in r.stdout  # the bar: done/total …
    assert re.search(r"\d:\d\d:\d\d", r.stdout)  # … with the time elapsed and left
    assert "3 upstreams:" in r.stdout  # and the summary after it
