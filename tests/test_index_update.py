"""`index update` against a local Hub of 32 upstream look-alikes (real client, range reads), packs, and faults."""

from __future__ import annotations

import json
import zipfile

import pytest
from helpers import run_cli
from servers.fixtures import HF_TOKEN_OK
from upstream_world import build_world

from scanner.provenance.index import Index
from scanner.provenance.pack import PackError, export_pack, import_pack
from scanner.provenance.update import update_index


@pytest.fixture
def world(hub, tmp_path):
    lookalikes, listing = build_world(hub.root, tmp_path)
    return lookalikes, listing


def _upstreams(listing):
    from scanner.knowledge import upstreams_from_file

    return upstreams_from_file(listing)


def _update(index, listing, **kw):
    lines: list[str] = []
    results = update_index(index, _upstreams(listing), log=lines.append, **kw)
    return {r.id: r for r in results}, lines


def test_update_fingerprints_every_readable_upstream_and_rechecks_cheaply(hub, world, tmp_path, monkeypatch):
    lookalikes, listing = world
    index = Index(tmp_path / "index.sqlite")
    results, lines = _update(index, listing)
    by_id = {la.id: la for la in lookalikes}
    for la in lookalikes:
        r = results[la.id]
        if la.private:
            assert r.state == "fingerprinted" and r.origin == la.mirrors[0] and "unverified" in r.detail, r.line()
        elif not la.gated:
            assert r.state == "fingerprinted" and r.origin == la.id, r.line()
        elif la.mirrors and not la.bad_mirror:
            assert r.state == "fingerprinted" and r.origin == la.mirrors[0], r.line()
            assert "official sha256" in r.detail
        else:
            assert r.state == "gated", r.line()
            assert "HF_TOKEN" in r.detail
            if la.bad_mirror:
                assert "not byte-identical" in r.detail
    # every upstream, readable or not, is known by its weight-file hashes: exact copies need nothing more
    assert {m.name for m in index.models()} == set(by_id)
    fingerprinted = [r for r in results.values() if r.state == "fingerprinted"]
    assert len(fingerprinted) == sum(1 for la in lookalikes if not la.gated or (la.mirrors and not la.bad_mirror))
    assert index.model(next(la.id for la in lookalikes if la.private)) is not None
    assert all(0 < r.bytes_fetched < 200_000 for r in fingerprinted)  # headers, 192 rows and vectors of a tiny model
    assert len(lines) == len(lookalikes) and all("bytes" in line for line in lines)

    # Nothing changed: one revision check per upstream, no weight byte, and the gated ones are said once more.
    hub.stats.reset()
    again, lines = _update(index, listing)
    assert {r.state for r in again.values()} == {"unchanged"}
    # (the private upstream's check is refused, so its mirror's revision is checked too)
    assert hub.stats.requests == len(lookalikes) + sum(la.private for la in lookalikes)
    assert all("expand=sha" in p for p in hub.stats.paths())
    assert hub.stats.weight_bytes_served == 0
    assert sum("HF_TOKEN" in line for line in lines) == sum(
        1 for la in lookalikes if la.gated and (not la.mirrors or la.bad_mirror)
    )

    # With a token, the gated upstreams without a usable mirror are read from the upstream itself.
    monkeypatch.setenv("HF_TOKEN", HF_TOKEN_OK)
    third, _ = _update(index, listing, token=HF_TOKEN_OK)
    for la in lookalikes:
        if la.gated and (not la.mirrors or la.bad_mirror):
            assert third[la.id].state == "fingerprinted" and third[la.id].origin == la.id
    assert {index.kind(m.fingerprint) for m in index.models()} == {"rows"}


def test_pack_round_trip_and_tampering(hub, world, tmp_path):
    lookalikes, listing = world
    index = Index(tmp_path / "a.sqlite")
    _update(index, listing)
    pack = tmp_path / "upstreams.ospack"
    summary = export_pack(index, pack)
    assert summary.models == len(lookalikes) and summary.bytes < 100_000 * len(lookalikes)

    other = Index(tmp_path / "b.sqlite")
    got = import_pack(other, pack, expect_sha256=summary.sha256)
    assert got.models == len(lookalikes)
    assert [(m.name, m.fingerprint) for m in other.models()] == [(m.name, m.fingerprint) for m in index.models()]
    assert other.states().keys() == index.states().keys()
    key = index.models()[0].fingerprint
    assert other.fingerprint(key).to_bytes() == index.fingerprint(key).to_bytes()

    # One flipped byte in one fingerprint: refused whole, the index as it was.
    tampered = tmp_path / "tampered.ospack"
    with zipfile.ZipFile(pack) as src, zipfile.ZipFile(tampered, "w") as dst:
        victim = next(n for n in src.namelist() if n.endswith(".npz"))
        for name in src.namelist():
            data = src.read(name)
            if name == victim:
                data = data[:100] + bytes([data[100] ^ 1]) + data[101:]
            dst.writestr(name, data)
    fresh = Index(tmp_path / "c.sqlite")
    with pytest.raises(PackError, match="sha256"):
        import_pack(fresh, tampered)
    assert fresh.models() == []

    # A consistent forgery (hashes recomputed) still fails the pinned manifest hash, and its content key.
    forged = tmp_path / "forged.ospack"
    with zipfile.ZipFile(pack) as src:
        manifest = json.loads(src.read("manifest.json"))
        manifest["models"][0]["name"] = "evil/renamed"
        with zipfile.ZipFile(forged, "w") as dst:
            for name in src.namelist():
                if name != "manifest.json":
                    dst.writestr(name, src.read(name))
            dst.writestr("manifest.json", json.dumps(manifest))
    with pytest.raises(PackError, match="pinned"):
        import_pack(fresh, forged, expect_sha256=summary.sha256)

    # A forgery consistent with its manifest (hashes recomputed) whose sketch does not fit its fingerprint: refused
    # on decoding, so no scan ever meets it.
    import hashlib
    import io

    import numpy as np

    bad_sketch = io.BytesIO()
    np.savez(bad_sketch, vocab=np.array([7], dtype=np.int64), units=np.arange(3), z=np.zeros((2, 5, 3), np.float16))
    bad_sketch = bad_sketch.getvalue()
    forged2 = tmp_path / "forged2.ospack"
    with zipfile.ZipFile(pack) as src:
        manifest = json.loads(src.read("manifest.json"))
        entry = next(e for e in manifest["fingerprints"] if e["sketch"])
        entry.update(sketch_sha256=hashlib.sha256(bad_sketch).hexdigest(), sketch_size=len(bad_sketch))
        with zipfile.ZipFile(forged2, "w") as dst:
            for name in src.namelist():
                if name not in ("manifest.json", entry["sketch"]):
                    dst.writestr(name, src.read(name))
            dst.writestr(entry["sketch"], bad_sketch)
            dst.writestr("manifest.json", json.dumps(manifest))
    with pytest.raises(PackError, match="sketch does not match"):
        import_pack(fresh, forged2)
    assert fresh.models() == []

    res = run_cli("index", "import", str(tampered), "--index", str(tmp_path / "d.sqlite"))
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.count("\n") == 1 and "corrupted or tampered" in res.stderr and "Traceback" not in res.stderr
    for junk in (b"", b"PK\x03\x04 not really", b"\x80\x04pickle"):
        (tmp_path / "junk.ospack").write_bytes(junk)
        with pytest.raises(PackError, match="not a fingerprint pack"):
            import_pack(fresh, tmp_path / "junk.ospack")
    assert fresh.models() == []


def test_faults_leave_the_rest_of_the_index_usable(hub, world, tmp_path, no_sleep):
    lookalikes, listing = world
    plain = [la for la in lookalikes if not la.gated and not la.private]
    down, reset = plain[0], plain[1]
    hub.fault("500", match=f"/api/models/{down.id}", times=-1)
    hub.fault("reset", match=f"/{reset.id}/resolve/", times=-1)
    index = Index(tmp_path / "index.sqlite")
    results, lines = _update(index, listing)
    assert results[down.id].state == "unreachable" and "HTTP 500" in results[down.id].detail
    assert results[reset.id].state == "unreadable" and "unreadable" in results[reset.id].detail
    assert index.model(down.id) is None  # what is missing is said, nothing half-written
    assert index.kind(index.model(reset.id).fingerprint) == "hashes"  # exact copies of it are still recognised
    ok = [la for la in plain[2:]]
    assert all(results[la.id].state == "fingerprinted" for la in ok)
    assert any(down.id in line and "unreachable" in line for line in lines)

    # The server recovers: the next update fills in what was missing and leaves the rest alone.
    hub.clear_faults()
    hub.stats.reset()
    again, _ = _update(index, listing)
    assert again[down.id].state == "fingerprinted" and again[reset.id].state == "fingerprinted"
    assert all(again[la.id].state == "unchanged" for la in ok)


def test_cli_update_prints_bytes_per_upstream_and_a_summary(hub, world, tmp_path):
    lookalikes, listing = world
    db = tmp_path / "cli.sqlite"
    down = lookalikes[-1].id
    hub.fault("429", match=f"/api/models/{down}", times=-1, retry_after=0)
    res = run_cli("index", "update", "--upstreams", str(listing), "--index", str(db), env={"HF_ENDPOINT": hub.url})
    assert res.returncode == 1, res.stderr  # usable but incomplete: the Action does not cache it
    assert f"{down}: unreachable" in res.stdout and "Traceback" not in res.stderr
    hub.clear_faults()
    assert res.stdout.count(" bytes, ") >= len(lookalikes)
    assert f"{len(lookalikes)} upstreams:" in res.stdout and "weight bytes fetched" in res.stdout
    listed = run_cli("index", "list", "--index", str(db))
    assert listed.returncode == 0 and "gated: " in listed.stdout
    one = lookalikes[0].id
    res = run_cli(
        "index", "update", f"hf:{one}", "--upstreams", str(listing), "--index", str(db), env={"HF_ENDPOINT": hub.url}
    )
    assert res.returncode == 0 and res.stdout.startswith(f"{one}@") and "unchanged" in res.stdout
