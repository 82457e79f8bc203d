"""Hostile and broken input through the real CLI: a clear finding or one error line, exit status <= 2, never a
traceback, never a hang."""

from __future__ import annotations

import json
import os
import struct
import time
from pathlib import Path

import pytest
from helpers import SAFE_PICKLE, make_repo, run_cli, safetensors_raw, save_tensors, tiny_llm

F32_4 = {"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}


def scan_json(target: Path | str, *extra: str, timeout: float = 60) -> tuple[int, dict | None, str]:
    proc = run_cli("scan", str(target), "--format", "json", *extra, timeout=timeout)
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr
    assert proc.returncode <= 2, (proc.returncode, proc.stderr)
    data = json.loads(proc.stdout) if proc.stdout.strip() else None
    return proc.returncode, data, proc.stderr


def rules(data: dict) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for t in data["targets"]:
        for f in t["findings"]:
            out.setdefault(f["rule"], []).append(f)
    return out


def assert_one_error_line(proc) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("originscan:"), proc.stderr


# -- cards and JSON -------------------------------------------------------------------------------------------------
def test_broken_yaml_front_matter(tmp_path):
    repo = make_repo(tmp_path, card="---\nlicense: mit\ntags: [a, b\n  - c: : d\n---\n# x\n")
    rc, data, _ = scan_json(repo)
    (f,) = rules(data)["card.malformed"]
    assert f["path"] == "README.md" and "YAML" in f["message"]


def test_front_matter_with_python_tags_is_not_executed(tmp_path):
    card = "---\nlicense: !!python/object/apply:os.system ['touch pwned']\n---\n# x\n"
    repo = make_repo(tmp_path, card=card)
    rc, data, _ = scan_json(repo)
    assert "card.malformed" in rules(data)
    assert not (repo / "pwned").exists() and not Path("pwned").exists()


def test_yaml_alias_bomb_in_card_does_not_hang(tmp_path):
    lines = ["---", 'a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]")
    lines += ["license: mit", "---", "# x"]
    repo = make_repo(tmp_path, card="\n".join(lines) + "\n")
    started = time.monotonic()
    scan_json(repo, timeout=120)
    assert time.monotonic() - started < 60


def test_card_that_is_not_utf8(tmp_path):
    repo = make_repo(
        tmp_path, files={"README.md": "---\nlicense: mit\n---\n# R\xe9sum\xe9 \xff\xfe\n".encode("latin-1")}
    )
    rc, data, _ = scan_json(repo)
    (f,) = rules(data)["source.encoding"]
    assert f["path"] == "README.md"
    assert "license.missing" not in rules(data)  # still read (as latin-1)


def test_card_in_utf16(tmp_path):
    repo = make_repo(tmp_path, files={"README.md": "---\nlicense: mit\n---\n# x\n".encode("utf-16")})
    rc, data, _ = scan_json(repo)
    assert "license.missing" not in rules(data) and "card.malformed" not in rules(data)


def test_two_gigabyte_readme_is_not_read_whole(tmp_path):
    repo = make_repo(tmp_path, card={"license": "mit"})
    with open(repo / "README.md", "r+b") as fh:
        fh.truncate(2 * 1024**3)  # sparse file: nothing is written
    started = time.monotonic()
    rc, data, _ = scan_json(repo, timeout=120)
    assert time.monotonic() - started < 60
    (f,) = rules(data)["source.too_large"]
    assert f["path"] == "README.md"


def test_config_that_is_not_json(tmp_path):
    repo = make_repo(tmp_path, card={"license": "mit"}, files={"config.json": "model_type = 'llama'\n"})
    rc, data, _ = scan_json(repo)
    (f,) = rules(data)["source.malformed"]
    assert f["path"] == "config.json"


@pytest.mark.parametrize("name", ["config.json", "tokenizer_config.json", "tokenizer.json"])
def test_json_bomb_unclosed(tmp_path, name):
    repo = make_repo(tmp_path, card={"license": "mit"}, files={name: "[" * 100_000})
    rc, data, _ = scan_json(repo)
    assert any(f["path"] == name for f in rules(data).get("source.malformed", []))


def test_json_bomb_deeply_nested_but_valid(tmp_path):
    repo = make_repo(
        tmp_path, card={"license": "mit"}, files={"config.json": '{"a": ' + "[" * 200_000 + "]" * 200_000 + "}"}
    )
    rc, data, _ = scan_json(repo)
    assert any(f["path"] == "config.json" for f in rules(data).get("source.malformed", []))


def test_json_of_the_wrong_shape(tmp_path):
    repo = make_repo(
        tmp_path,
        card={"license": "mit"},
        files={"config.json": "[1, 2, 3]", "tokenizer_config.json": '{"added_tokens_decoder": [1]}'},
    )
    rc, data, _ = scan_json(repo)
    assert any(f["path"] == "config.json" for f in rules(data).get("source.malformed", []))


def test_config_over_the_size_limit(tmp_path):
    repo = make_repo(tmp_path, card={"license": "mit"})
    with open(repo / "config.json", "wb") as fh:
        fh.truncate(100 * 1024**2)
    rc, data, _ = scan_json(repo)
    assert any(f["path"] == "config.json" for f in rules(data)["source.too_large"])


def test_fifo_named_like_a_config_does_not_hang(tmp_path):
    repo = make_repo(tmp_path, card={"license": "mit"})
    os.mkfifo(repo / "config.json")
    scan_json(repo, timeout=60)


# -- targets --------------------------------------------------------------------------------------------------------
def test_folder_that_does_not_exist(tmp_path):
    proc = run_cli("scan", str(tmp_path / "no-such-model"))
    assert_one_error_line(proc)
    assert "no-such-model" in proc.stderr
    assert proc.stdout.strip() == ""


def test_target_that_is_a_file(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"x")
    assert_one_error_line(run_cli("scan", str(tmp_path / "model.safetensors")))


def test_bad_options_are_one_line(tmp_path):
    repo = make_repo(tmp_path, card={"license": "mit"})
    assert_one_error_line(run_cli("scan", str(repo), "--format", "pdf"))
    assert_one_error_line(run_cli("scan", str(repo), "--fail-on", "sometimes"))
    bad_policy = tmp_path / "policy.yml"
    bad_policy.write_text("licenses: [\n")
    assert_one_error_line(run_cli("scan", str(repo), "--policy", str(bad_policy)))
    assert_one_error_line(run_cli("scan", str(repo), "--policy", str(tmp_path / "missing.yml")))


def test_index_that_is_not_a_database(tmp_path):
    repo = make_repo(tmp_path, card={"license": "mit"})
    bad = tmp_path / "index.sqlite"
    bad.write_bytes(b"this is not a database" * 100)
    proc = run_cli("scan", str(repo), "--index", str(bad))
    assert proc.returncode <= 2 and "Traceback" not in proc.stderr
    if proc.returncode == 2:
        assert_one_error_line(proc)


def test_symlink_escaping_the_repo(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "id_rsa").write_text("-----BEGIN PRIVATE KEY-----\nsecret\n")
    repo = make_repo(tmp_path, card={"license": "mit"})
    os.symlink(outside / "id_rsa", repo / "LICENSE")
    os.symlink("/etc", repo / "etc")
    os.symlink("/dev/zero", repo / "model.safetensors")
    rc, data, _ = scan_json(repo, timeout=60)
    assert {f["path"] for f in rules(data)["source.symlink_escape"]} == {"LICENSE", "etc", "model.safetensors"}
    assert "PRIVATE KEY" not in json.dumps(data)


def test_symlink_loop(tmp_path):
    repo = make_repo(tmp_path, card={"license": "mit"})
    os.symlink(repo / "b", repo / "a")
    os.symlink(repo / "a", repo / "b")
    scan_json(repo)


# -- weight files (compared against a registered upstream, so headers are parsed) ----------------------------------
@pytest.fixture(scope="module")
def index(tmp_path_factory):
    root = tmp_path_factory.mktemp("idx")
    up = root / "upstream"
    save_tensors(tiny_llm(seed=1), up / "model.safetensors")
    idx = root / "index.sqlite"
    proc = run_cli("index", "add", str(up), "--name", "acme/upstream", "--license", "apache-2.0", "--index", str(idx))
    assert proc.returncode == 0, proc.stderr
    return idx


BAD_WEIGHTS = {
    "truncated": safetensors_raw(F32_4, b"\0" * 10),
    "header-length-2**63": struct.pack("<Q", 2**63) + b"{}",
    "header-length-past-eof": safetensors_raw(F32_4, b"\0" * 16, header_len=10**6),
    "header-not-json": safetensors_raw(b"{not json at all}   "),
    "header-json-bomb": safetensors_raw(b"[" * 100_000),
    "overlapping-offsets": safetensors_raw(
        {
            "a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
            "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]},
        },
        b"\0" * 24,
    ),
    "unknown-dtype": safetensors_raw({"w": {"dtype": "F128", "shape": [4], "data_offsets": [0, 64]}}, b"\0" * 64),
    "shape-size-mismatch": safetensors_raw(
        {"w": {"dtype": "F32", "shape": [1000000], "data_offsets": [0, 16]}}, b"\0" * 16
    ),
    "negative-offsets": safetensors_raw({"w": {"dtype": "F32", "shape": [4], "data_offsets": [-16, 0]}}, b"\0" * 16),
    "empty-file": b"",
    "huge-shape": safetensors_raw(
        {"w": {"dtype": "F32", "shape": [2**62, 2**62], "data_offsets": [0, 16]}}, b"\0" * 16
    ),
}


@pytest.mark.parametrize("kind", sorted(BAD_WEIGHTS))
def test_malformed_safetensors_with_index(tmp_path, index, kind):
    repo = make_repo(tmp_path, card={"license": "mit"}, files={"model.safetensors": BAD_WEIGHTS[kind]})
    rc, data, _ = scan_json(repo, "--index", str(index))
    found = rules(data)
    assert "source.malformed" in found, (kind, sorted(found))
    assert not any(r.startswith("weights.") for r in found)


@pytest.mark.parametrize("kind", ["truncated", "header-length-2**63", "overlapping-offsets", "unknown-dtype"])
def test_malformed_safetensors_without_index(tmp_path, kind):
    """A plain `scan` (no index) still validates weight headers."""
    repo = make_repo(tmp_path, card={"license": "mit"}, files={"model.safetensors": BAD_WEIGHTS[kind]})
    rc, data, _ = scan_json(repo)
    assert "source.malformed" in rules(data)


@pytest.mark.parametrize("kind", ["truncated", "header-length-2**63", "overlapping-offsets", "unknown-dtype"])
def test_index_add_rejects_malformed_safetensors(tmp_path, kind):
    repo = make_repo(tmp_path, card={"license": "mit"}, files={"model.safetensors": BAD_WEIGHTS[kind]})
    assert_one_error_line(run_cli("index", "add", str(repo), "--index", str(tmp_path / "i.sqlite")))


def test_compare_with_malformed_safetensors(tmp_path, index):
    good = make_repo(tmp_path, "good", weights={"model.safetensors": tiny_llm(seed=2)})
    bad = make_repo(tmp_path, "bad", files={"model.safetensors": BAD_WEIGHTS["header-length-2**63"]})
    proc = run_cli("compare", str(bad), str(good), "--format", "json")
    assert proc.returncode in (2, 3) and "Traceback" not in proc.stderr
    if proc.returncode == 3:  # compare's exit status for "inconclusive"
        assert json.loads(proc.stdout)["verdict"] == "inconclusive"


@pytest.mark.parametrize(
    "payload",
    [
        b"\x80\x02ccollections\nOrderedDict\n",
        b"\x80\x05\x95garbage",
        b"PK\x03\x04broken zip",
        SAFE_PICKLE[:-1] + b"\xff" * 50,
    ],
)
def test_malformed_pickle_is_a_finding_not_a_crash(tmp_path, payload):
    repo = make_repo(tmp_path, card={"license": "mit"}, files={"pytorch_model.bin": payload})
    rc, data, _ = scan_json(repo)
    assert "security.pickle_weights" in rules(data)


def test_card_without_front_matter_is_silent_on_stderr(tmp_path):
    repo = make_repo(tmp_path, card="# A model\n\nNo metadata here.\n")
    rc, data, stderr = scan_json(repo)
    assert "license.missing" in rules(data)
    assert stderr.strip() == ""


def test_unclosed_front_matter_is_malformed(tmp_path):
    repo = make_repo(tmp_path, card="---\nlicense: mit\nbase_model: meta-llama/Meta-Llama-3-8B\n\n# A model\n")
    rc, data, _ = scan_json(repo)
    assert "card.malformed" in rules(data)
