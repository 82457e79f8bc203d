"""The on-disk cache: content addressing, atomic writes, per-repo records."""

from __future__ import annotations

import hashlib

import pytest

from scanner.findings import Severity
from scanner.sources import cache as cache_mod
from scanner.sources.cache import Cache, default_cache, resolve_cache, snapshot_from_record, snapshot_to_record
from scanner.sources.interface import RepoFile, Snapshot


def test_blob_roundtrip_is_content_addressed(tmp_path):
    c = Cache(tmp_path)
    key = c.put_blob(b"hello")
    assert key == hashlib.sha256(b"hello").hexdigest()
    assert c.get_blob(key) == b"hello"
    assert c.get_blob("0" * 64) is None
    c.put_blob(b"other", key="git-1234abcd")
    assert c.get_blob("git-1234abcd") == b"other"


def test_corrupted_blob_is_ignored(tmp_path):
    c = Cache(tmp_path)
    key = c.put_blob(b"hello")
    path = next(tmp_path.rglob(key))
    path.write_bytes(b"tampered")
    assert c.get_blob(key) is None


def test_unsafe_keys_are_hashed(tmp_path):
    c = Cache(tmp_path)
    c.put_json('W/"etag with spaces/../x"', {"a": 1})
    assert c.get_json('W/"etag with spaces/../x"') == {"a": 1}
    assert all(".." not in p.name and " " not in p.name for p in tmp_path.rglob("*"))


def test_writes_are_atomic(tmp_path, monkeypatch):
    c = Cache(tmp_path)

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(cache_mod.os, "replace", boom)
    with pytest.raises(OSError):
        c.put_blob(b"x" * 1000)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []  # no partial file, no temp file
    monkeypatch.undo()
    c.put_record("hf", "a/b", None, {"revision": "1"})
    assert not [p for p in tmp_path.rglob(".tmp-*")]


def test_records_are_keyed_by_kind_name_and_ref(tmp_path):
    c = Cache(tmp_path)
    c.put_record("hf", "a/b", None, {"revision": "r1", "etag": "e"})
    c.put_record("hf", "a/b", "v2", {"revision": "r2"})
    assert c.get_record("hf", "a/b", None) == {"revision": "r1", "etag": "e"}
    assert c.get_record("hf", "a/b", "v2")["revision"] == "r2"
    assert c.get_record("github", "a/b", None) is None
    c.drop_record("hf", "a/b", None)
    assert c.get_record("hf", "a/b", None) is None


def test_env_selects_or_disables_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ORIGINSCAN_CACHE", str(tmp_path / "c"))
    assert default_cache().root == tmp_path / "c"
    assert resolve_cache(None).root == tmp_path / "c"
    assert resolve_cache(False) is None
    monkeypatch.setenv("ORIGINSCAN_CACHE", "off")
    assert default_cache() is None
    monkeypatch.delenv("ORIGINSCAN_CACHE")
    assert "originscan" in str(default_cache().root)


def test_snapshot_record_roundtrip():
    snap = Snapshot(target="hf:a/b", kind="hf", name="a/b", revision="abc")
    snap.files["m.safetensors"] = RepoFile("m.safetensors", 10, "f" * 64)
    snap.files["p.bin"] = RepoFile("p.bin", 5, "e" * 64, lfs_pointer=True)
    snap.texts["README.md"] = "# hi"
    snap.jsons["config.json"] = {"a": [1, 2]}
    snap.problem("source.encoding", "latin-1", path="README.md", severity=Severity.low, byte=3)
    snap.meta["gated"] = False
    back = snapshot_from_record("hf:a/b", "hf", snapshot_to_record(snap))
    assert back.files == snap.files and back.texts == snap.texts and back.jsons == snap.jsons
    assert back.problems == snap.problems and back.meta == snap.meta and back.revision == "abc"


def test_entries_a_reader_can_check_skip_the_fsync_and_damage_reads_as_absent(tmp_path, monkeypatch):
    """Blobs keyed by a hash of their content and JSON objects are not flushed to disk before the rename (a reader
    tells a lost or cut one); a blob under any other key is."""
    import scanner.atomic

    synced: list[int] = []
    monkeypatch.setattr(scanner.atomic.os, "fsync", lambda fd: synced.append(fd))
    c = Cache(tmp_path)
    text = b"---\nlicense: mit\n---\n"
    git_id = hashlib.sha1(b"blob %d\0" % len(text) + text).hexdigest()
    c.put_blob(text)
    c.put_blob(text, key=f"git-{git_id}")
    c.put_json("k", {"a": 1})
    c.put_record("hf", "a/b", None, {"revision": "1"})
    assert synced == []
    c.put_blob(b"other", key="git-1234abcd")  # not a hash it can check
    assert len(synced) == 1
    assert c.get_blob(f"git-{git_id}") == text
    next(tmp_path.rglob(f"git-{git_id}")).write_bytes(text[:5])  # cut short, as a crash could leave it
    assert c.get_blob(f"git-{git_id}") is None
    for path in [next(tmp_path.rglob("k.json")), *tmp_path.glob("repos/*/*.json")]:
        path.write_bytes(path.read_bytes()[:-3])
    assert c.get_json("k") is None and c.get_record("hf", "a/b", None) is None
