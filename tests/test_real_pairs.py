"""The real code-pair labels of bench/code: schema, the fixed halves, evidence for every copy; and the cache helpers
(against a temporary cache, so no third-party file is needed)."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench" / "code"))

import fetch_real_pairs  # noqa: E402
import real_pairs  # noqa: E402
from real_pairs import FileRef, Pair, Release, cached_path, git_blob_of, load_pairs, missing  # noqa: E402

HEX40 = re.compile(r"^[0-9a-f]{40}$")
HEX64 = re.compile(r"^[0-9a-f]{64}$")
# a release version; calendar versions such as espnet's "202402" have no dot
VERSION = re.compile(r"^\d+(\.\d+)*([a-z]+\d*)?(\.post\d+)?$")
# "name (path:first-last)"; the lines are left out only where the file was not available to the labeller
DEFINITION = re.compile(r"^(?P<name>[\w.<>]+) \((?P<path>[^:()]+)(:(?P<first>\d+)-(?P<last>\d+))?\)$")
KEYS = {"id", "label", "set", "difficulty", "suspect", "reference", "evidence", "source"}
FILE_KEYS = {"repo", "commit", "path", "git_blob", "sha256", "bytes"}


@pytest.fixture(scope="module")
def pairs() -> list[Pair]:
    return load_pairs()


@pytest.fixture(scope="module")
def raw_labels() -> list[tuple[Path, dict]]:  # type: ignore[type-arg]
    return [(p, json.loads(p.read_text(encoding="utf-8"))) for p in sorted(real_pairs.LABELS_DIR.glob("*.json"))]


def test_every_label_file_has_the_schema(raw_labels: list[tuple[Path, dict]]) -> None:  # type: ignore[type-arg]
    assert raw_labels
    for path, raw in raw_labels:
        assert KEYS <= raw.keys(), path.name
        assert raw["id"] == path.stem
        assert raw["label"] in real_pairs.LABELS
        assert raw["difficulty"] in ("normal", "hard"), path.name
        assert raw["suspect"] and raw["reference"], path.name
        assert raw["source"].strip() and raw["evidence"].strip(), path.name
        for ref in raw["suspect"] + raw["reference"]:
            assert FILE_KEYS <= ref.keys(), path.name
            assert re.fullmatch(r"[\w.-]+/[\w.-]+", ref["repo"]), ref
            on_pypi = ref["repo"].startswith(real_pairs.PYPI)
            assert (VERSION if on_pypi else HEX40).match(ref["commit"]), ref
            if on_pypi:
                assert ref["release"]["version"] == ref["commit"] and ref["release"]["member"] == ref["path"], ref
            assert not ref["path"].startswith("/") and ".." not in ref["path"].split("/"), ref
            assert HEX40.match(ref["git_blob"]) and HEX64.match(ref["sha256"]), ref
            assert isinstance(ref["bytes"], int) and ref["bytes"] > 0, ref


def test_ids_are_unique_and_every_file_is_cited_once_with_one_identity(pairs: list[Pair]) -> None:
    ids = [p.id for p in pairs]
    assert len(ids) == len(set(ids))
    identity: dict[tuple[str, str, str], tuple[str, str, int]] = {}
    for ref in (f for p in pairs for f in p.files):
        seen = identity.setdefault(ref.key, (ref.git_blob, ref.sha256, ref.size))
        assert seen == (ref.git_blob, ref.sha256, ref.size), ref.key


def test_the_half_is_the_parity_of_the_sha256_of_the_id(pairs: list[Pair]) -> None:
    for pair in (p for p in pairs if p.batch != real_pairs.TUNING_ONLY_BATCH):
        odd = int(hashlib.sha256(pair.id.encode()).hexdigest(), 16) % 2 == 1
        assert pair.half == ("held-out" if odd else "tuning")
    assert {real_pairs.half(str(i)) for i in range(8)} == set(real_pairs.HALVES)


def test_a_pair_of_the_tuning_only_batch_is_tuning_whatever_its_hash(pairs: list[Pair]) -> None:
    tuning_only = [p for p in pairs if p.batch == real_pairs.TUNING_ONLY_BATCH]
    assert tuning_only and {p.half for p in tuning_only} == {"tuning"}
    odd_id = next(str(i) for i in range(8) if real_pairs.half(str(i)) == "held-out")
    pair = replace(tuning_only[0], id=odd_id)
    assert pair.half == "tuning" and replace(pair, batch="2026-12").half == "held-out"


def test_each_half_holds_both_labels(pairs: list[Pair]) -> None:
    for half in real_pairs.HALVES:
        labels = {p.label for p in pairs if p.half == half}
        assert labels == set(real_pairs.LABELS), half


def test_at_least_thirty_copies_and_thirty_independents(pairs: list[Pair]) -> None:
    copies = sum(p.copied for p in pairs)
    assert copies >= 30 and len(pairs) - copies >= 30, (copies, len(pairs) - copies)


def test_every_copy_names_its_copied_definitions_with_line_ranges(pairs: list[Pair]) -> None:
    for pair in (p for p in pairs if p.copied):
        assert pair.copied_definitions, pair.id
        for side, refs in (("suspect", pair.suspect), ("reference", pair.reference)):
            paths = {r.path for r in refs}
            for definition in pair.copied_definitions:
                m = DEFINITION.match(getattr(definition, side))
                assert m, (pair.id, getattr(definition, side))
                assert m["path"] in paths, (pair.id, m["path"])
                if m["first"]:
                    assert 1 <= int(m["first"]) <= int(m["last"]), (pair.id, m.group(0))


def test_independent_pairs_say_why_and_list_no_copied_definitions(pairs: list[Pair]) -> None:
    for pair in (p for p in pairs if not p.copied):
        assert not pair.copied_definitions, pair.id
        assert len(pair.evidence) > 40, pair.id


def own_file(data: bytes) -> FileRef:
    return FileRef(
        repo="example/project",
        commit="0" * 40,
        path="pkg/mod.py",
        git_blob=git_blob_of(data),
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
    )


def test_git_blob_id_is_gits() -> None:
    # `printf 'hello\n' | git hash-object --stdin`
    assert git_blob_of(b"hello\n") == "ce013625030ba8dba906f756967f9e9ca394464a"


def test_missing_finds_absent_and_altered_files(tmp_path: Path) -> None:
    data = b"def f(x):\n    return x + 1\n"
    ref = own_file(data)
    pair = Pair("p", "copied", "s", "normal", (ref,), (ref,), "e", (), "s")
    assert missing([pair], tmp_path) == [ref]
    path = cached_path(ref, tmp_path)
    assert path == tmp_path / "code" / "example__project" / ("0" * 40) / "pkg" / "mod.py"
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    assert missing([pair], tmp_path) == []
    path.write_bytes(data.replace(b"1", b"2"))
    assert missing([pair], tmp_path) == [ref]


def test_cache_root_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ORIGINSCAN_BENCH_CACHE", str(tmp_path / "explicit"))
    assert real_pairs.cache_root() == tmp_path / "explicit"
    monkeypatch.delenv("ORIGINSCAN_BENCH_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert real_pairs.cache_root() == tmp_path / "xdg" / "originscan-bench"


def test_a_release_member_is_read_from_a_wheel_or_an_sdist(tmp_path: Path) -> None:
    data = b"VALUE = 1\n"
    with zipfile.ZipFile(tmp_path / "pkg-1.0-py3-none-any.whl", "w") as zf:
        zf.writestr("pkg/mod.py", data)
    assert fetch_real_pairs.read_member(tmp_path, Release("pkg", "1.0", "pkg/mod.py")) == data
    with pytest.raises(FileNotFoundError):
        fetch_real_pairs.read_member(tmp_path, Release("pkg", "1.0", "pkg/other.py"))
    sdist = tmp_path / "sdist"
    sdist.mkdir()
    source = tmp_path / "mod.py"
    source.write_bytes(data)
    with tarfile.open(sdist / "pkg-1.0.tar.gz", "w:gz") as tf:
        tf.add(source, arcname="pkg-1.0/pkg/mod.py")
    assert fetch_real_pairs.read_member(sdist, Release("pkg", "1.0", "pkg-1.0/pkg/mod.py")) == data


def test_a_release_without_a_wheel_for_this_python_is_taken_from_an_older_cpythons_wheel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pip itself cannot run offline: a stand-in refuses the plain download, as pip does for torchvision 0.12.0 on
    CPython 3.11, and serves the wheel only when asked for the other platform's."""
    data = b"VALUE = 2\n"
    calls: list[list[str]] = []

    def pip(command: list[str], **_: object) -> subprocess.CompletedProcess[bytes]:
        calls.append(command)
        if fetch_real_pairs.OTHER_WHEEL[-1] not in command:
            raise subprocess.CalledProcessError(1, command)
        target = Path(command[command.index("-d") + 1])
        target.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(target / "pkg-1.0-cp39-cp39-manylinux1_x86_64.whl", "w") as zf:
            zf.writestr("pkg/mod.py", data)
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(subprocess, "run", pip)
    assert fetch_real_pairs.release_member(Release("pkg", "1.0", "pkg/mod.py"), tmp_path, timeout=1) == data
    assert len(calls) == 2 and calls[1][: len(calls[0])] == calls[0]
    assert calls[1][len(calls[0]) :] == fetch_real_pairs.OTHER_WHEEL


def test_check_and_fetch_accept_a_verified_file_and_flag_an_altered_one(tmp_path: Path) -> None:
    data = b"def g():\n    return 2\n"
    ref = own_file(data)
    path = cached_path(ref, tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    assert fetch_real_pairs.check_one(ref, tmp_path).status == "cached"
    assert fetch_real_pairs.fetch_one(ref, tmp_path, tmp_path / "work", timeout=1).status == "cached"  # no network
    path.write_bytes(data + b"# edited\n")
    checked = fetch_real_pairs.check_one(ref, tmp_path)
    assert checked.status == "mismatch" and git_blob_of(data + b"# edited\n") in checked.detail


def test_fetch_check_reports_an_empty_cache_offline(tmp_path: Path) -> None:
    script = ROOT / "bench" / "code" / "fetch_real_pairs.py"
    run = subprocess.run(
        [sys.executable, str(script), "--check", "--cache", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1
    assert "missing" in run.stdout and "pairs without all their files" in run.stdout
    assert "Traceback" not in run.stderr
