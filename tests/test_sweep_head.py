"""The head screen of a cold indexed sweep: a small suspect's header and its first token rows come in one read, the
screen needs no request of its own, and only a survivor reads more (issue #26: <= 3 requests per repo).

Real parts: safetensors files, the real huggingface_hub client against the local Hub (tests/servers/hub.py), which
counts every request, and real SQLite indexes, among them one as the previous release wrote it."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from helpers import disguise, run_cli, save_tensors, tiny_llm
from servers.hub import make_repo

from scanner.pipeline import scan_target
from scanner.policy import Policy
from scanner.provenance.fingerprint import (
    HEAD_ROWS,
    REMOTE_PLAN,
    FingerprintPlan,
    build,
    heads_from_bytes,
    heads_to_bytes,
)
from scanner.provenance.index import Index
from scanner.provenance.safetensors import HEAD_BYTES
from scanner.provenance.search import SCREEN_HEAD_BYTES, find_matches, first_read_bytes
from scanner.provenance.views import open_model
from scanner.sources.hf import HFSource
from scanner.sources.local import LocalSource

FIXTURES = Path(__file__).parent / "fixtures" / "provenance"
MODELS = json.loads((FIXTURES / "manifest.json").read_text())["models"]
BASES = [m["name"] for m in MODELS if m["base"] is None]
SHAPE = dict(vocab=512, d=64, inter=128, layers=1)


def _untied(seed: int) -> dict[str, np.ndarray]:
    """A one-layer Llama with its own LM head, float16: the head is stored first ('lm_head' sorts before 'model.')."""
    t = tiny_llm(seed, **SHAPE)
    t["lm_head.weight"] = np.random.default_rng(seed + 1).normal(0, 1, (SHAPE["vocab"], SHAPE["d"]))
    return {k: v.astype(np.float16) for k, v in t.items()}


def _local(path: Path):
    return open_model(LocalSource(str(path)).snapshot())


def _register(index: Index, name: str, path: Path, plan: FingerprintPlan = FingerprintPlan()) -> None:
    model = _local(path)
    try:
        index.put(name, build(model, plan), "apache-2.0", f"hf:test/{name}", None)
    finally:
        model.close()


def _search(index: Index, path: Path, target: str):
    model = _local(path)
    try:
        matches, stats = find_matches(model, index, target)
    finally:
        model.close()
    return {reg.name for reg, v in matches if v.verdict == "derived"}, stats


def _save(root: Path, name: str, tensors: dict[str, np.ndarray]) -> Path:
    save_tensors(tensors, root / name / "model.safetensors")
    return root / name


# -- the first read's size ------------------------------------------------------------------------------------------
def test_first_read_bytes_holds_a_small_models_header_and_head_rows():
    assert first_read_bytes({"hidden_size": 64}) == 2048 + HEAD_ROWS * 64 * 2
    assert first_read_bytes({"d_model": 64, "num_hidden_layers": 2, "torch_dtype": "float32"}) == (
        2048 + 2 * 1280 + HEAD_ROWS * 64 * 4
    )
    assert first_read_bytes({"hidden_size": 4096, "num_hidden_layers": 32}) == HEAD_BYTES  # never over the usual
    assert first_read_bytes({"hidden_size": 64, "dtype": "float32"}) == 2048 + HEAD_ROWS * 64 * 4  # the newer key


def test_first_read_bytes_brings_a_wider_models_head_rows_when_an_upstream_has_its_width():
    """The screen reads a same-width suspect's head rows in any case: they come with its header, up to a screen
    request's worth. Of another width, nothing is screened, and the usual head is read."""
    llama8b = {"hidden_size": 4096, "num_hidden_layers": 32, "torch_dtype": "bfloat16"}
    assert first_read_bytes(llama8b, {4096, 64}) == 2048 + 32 * 1280 + HEAD_ROWS * 4096 * 2  # 810 KB
    assert first_read_bytes(llama8b, {2048, 64}) == HEAD_BYTES
    assert first_read_bytes({"hidden_size": 16384, "torch_dtype": "float32"}, {16384}) == SCREEN_HEAD_BYTES
    assert first_read_bytes({"hidden_size": 64}, {64}) == first_read_bytes({"hidden_size": 64})  # small: the same


@pytest.mark.parametrize("config", [None, {}, {"hidden_size": "64"}, {"hidden_size": True}, {"hidden_size": -1}, []])
def test_first_read_bytes_leaves_the_usual_head_without_a_hidden_size(config):
    assert first_read_bytes(config) is None


# -- heads in the fingerprint and the index ---------------------------------------------------------------------------
def test_every_token_matrix_gets_a_head_even_where_the_plan_keeps_one(tmp_path):
    """`index update` keeps only the input embedding's rows, but a suspect screens the matrix it stores first (its
    head, for an untied model): both heads are kept, or a derivative would be ruled out against the wrong one."""
    model = _local(_save(tmp_path, "up", _untied(7)))
    try:
        fp = build(model, REMOTE_PLAN)
    finally:
        model.close()
    assert len(fp.matrices) == 1 and len(fp.heads) == 2
    again = heads_from_bytes(heads_to_bytes(fp.heads), fp.hidden)
    assert [h.z.tolist() for h in again] == [h.z.tolist() for h in fp.heads]
    with pytest.raises(ValueError):
        heads_from_bytes(heads_to_bytes(fp.heads), 8)  # units beyond the hidden size: refused, not trusted


def test_a_derivative_stored_head_first_is_found_against_an_update_fingerprint(tmp_path):
    index = Index(tmp_path / "index.sqlite")
    source = _untied(7)
    _register(index, "acme/source", _save(tmp_path, "source", source), REMOTE_PLAN)
    for seed in range(6):
        _register(index, f"acme/same-{seed}", _save(tmp_path, f"same-{seed}", _untied(100 + seed)), REMOTE_PLAN)
    got, stats = _search(index, _save(tmp_path, "suspect", disguise(source)), "local:suspect")
    assert got == {"acme/source"}
    assert stats.head_screens == 7 and stats.sketch_screens == 0 and stats.screened_out >= 5
    none, clean = _search(index, _save(tmp_path, "clean", _untied(999)), "local:clean")
    assert none == set() and clean.head_screens == 7 and clean.screened_out >= 6


@pytest.mark.parametrize("plan", [FingerprintPlan(), REMOTE_PLAN], ids=["index-add", "index-update"])
def test_the_trained_fixtures_are_found_through_the_head_screen(plan, tmp_path):
    """Every derivative class of the trained fixtures (continued pre-training, pruning, vocabulary extension, a
    merge, ...) passes the head screen against its base; a transposed suspect has no contiguous head rows and is
    screened on the sketch."""
    index = Index(tmp_path / "index.sqlite")
    for b in BASES:
        _register(index, b, FIXTURES / b, plan)
    for m in MODELS:
        parents = set(m["base"] if isinstance(m["base"], list) else [m["base"]] if m["base"] else [])
        expect = parents | ({m["name"]} if m["name"] in BASES else set())
        got, stats = _search(index, FIXTURES / m["name"], f"local:{m['name']}")
        assert got == expect, f"{m['name']} ({m.get('class')}): derived from {sorted(got)}, expected {sorted(expect)}"
        if m.get("class") == "transposed":
            assert stats.sketch_screens > 0 and stats.head_screens == 0
        else:
            assert stats.head_screens > 0 and stats.sketch_screens == 0, m["name"]


def _drop_heads(path: Path) -> None:
    """The index file as the release before head sketches wrote it: no `heads` column."""
    db = sqlite3.connect(path)
    db.execute("ALTER TABLE facts DROP COLUMN heads")
    db.commit()
    db.close()


def test_an_older_index_gains_heads_from_its_rows_on_first_open(tmp_path):
    index = Index(tmp_path / "index.sqlite")
    source = _untied(7)
    _register(index, "acme/source", _save(tmp_path, "source", source))  # index add: every row of a 512 vocabulary
    index.close()
    _drop_heads(tmp_path / "index.sqlite")
    index = Index(tmp_path / "index.sqlite")
    assert index.without_heads() == [] and len(index.heads(index.models()[0].fingerprint)) == 2
    got, stats = _search(index, _save(tmp_path, "suspect", disguise(source)), "local:suspect")
    assert got == {"acme/source"} and stats.head_screens == 1 and stats.sketch_screens == 0


def test_an_older_index_without_head_rows_falls_back_to_the_sketch_and_says_so(tmp_path):
    from scanner.ci.sweep import screen_note

    index = Index(tmp_path / "index.sqlite")
    source = _untied(7)
    _register(index, "acme/source", _save(tmp_path, "source", source), REMOTE_PLAN)  # rows of 192 scattered ids
    assert screen_note(index) is None
    index.close()
    _drop_heads(tmp_path / "index.sqlite")
    index = Index(tmp_path / "index.sqlite")
    assert index.without_heads() == ["acme/source"]  # its stored rows do not hold ids 0..95
    note = screen_note(index)
    assert note is not None and "1 registered upstream(s) have no head sketch (acme/source)" in note
    got, stats = _search(index, _save(tmp_path, "suspect", disguise(source)), "local:suspect")
    assert got == {"acme/source"} and stats.sketch_screens == 1 and stats.head_screens == 0
    # registering it again reads it again and adds the heads (an unchanged fingerprint is otherwise not re-read)
    model = _local(tmp_path / "source")
    try:
        assert index.add("acme/source", model, "apache-2.0", "hf:test/acme/source", None)
    finally:
        model.close()
    assert index.without_heads() == [] and screen_note(index) is None


def test_a_damaged_heads_entry_is_screened_on_the_sketch(tmp_path):
    index = Index(tmp_path / "index.sqlite")
    source = _untied(7)
    _register(index, "acme/source", _save(tmp_path, "source", source))
    index.db.execute("UPDATE facts SET heads=?", (b"PK\x03\x04 not a zip",))
    index.db.commit()
    got, stats = _search(index, _save(tmp_path, "suspect", disguise(source)), "local:suspect")
    assert got == {"acme/source"} and stats.sketch_screens == 1


# -- over the network: requests and bytes -------------------------------------------------------------------------
def _hub_repo(hub, repo_id: str, tensors: dict[str, np.ndarray], config: dict | None) -> None:
    files: dict[str, bytes | str] = {"README.md": "---\nlicense: apache-2.0\n---\n# m\n"}
    if config is not None:
        files["config.json"] = json.dumps(config)
    folder = make_repo(hub.root, repo_id, files)
    save_tensors(tensors, folder / "model.safetensors")
    hub.commit(hub.repo(repo_id))


def _weight_reads(hub) -> tuple[int, int]:
    s = hub.stats
    return sum(1 for p in s.paths("GET") if p.endswith(".safetensors")), s.weight_bytes_served


CONFIG = {"model_type": "llama", "hidden_size": 64, "vocab_size": 1024}


def test_a_sweep_screen_costs_one_weight_request_and_a_survivor_one_more(hub, tmp_path):
    source = _untied(7)
    _hub_repo(hub, "up/source", source, CONFIG)
    for seed in range(3):
        _hub_repo(hub, f"up/same-{seed}", _untied(100 + seed), CONFIG)
    _hub_repo(hub, "org/copy", {k: v.astype(np.float16) for k, v in disguise(source).items()}, CONFIG)
    _hub_repo(hub, "org/clean", _untied(999), CONFIG)
    index = Index(tmp_path / "index.sqlite")
    for name in ["up/source", *(f"up/same-{s}" for s in range(3))]:
        model = open_model(HFSource(name).snapshot())
        try:
            index.add(name, model, "apache-2.0", f"hf:{name}", None)
        finally:
            model.close()
    size = (hub.root / "org/clean/model.safetensors").stat().st_size
    policy = Policy()

    hub.stats.reset()
    clean = scan_target("hf:org/clean", policy, index)
    assert not [m for m in clean.facts.weight_matches if m.verdict.verdict == "derived"]
    assert _weight_reads(hub) == (1, 8 + first_read_bytes(CONFIG))  # the header and 96 rows: 7 % of the file
    assert 8 + first_read_bytes(CONFIG) < size // 10

    hub.stats.reset()
    copy = scan_target("hf:org/copy", policy, index)
    assert [m.name for m in copy.facts.weight_matches if m.verdict.verdict == "derived"] == ["up/source"]
    # the head, then the rest whole for the full test (not 5 reads)
    assert _weight_reads(hub) == (2, (hub.root / "org/copy/model.safetensors").stat().st_size)


def test_without_a_hidden_size_the_first_read_is_the_usual_head(hub, tmp_path):
    """No config.json: the first read is not sized for the head screen (safetensors' usual head); the screen still
    finds its rows in it for a model this small, and rules the unrelated upstream out."""
    _hub_repo(hub, "up/source", _untied(7), CONFIG)
    _hub_repo(hub, "org/clean", _untied(999), None)
    index = Index(tmp_path / "index.sqlite")
    _register(index, "up/source", hub.root / "up/source")
    hub.stats.reset()
    report = scan_target("hf:org/clean", Policy(), index)
    assert not report.facts.weight_matches
    assert _weight_reads(hub) == (1, 8 + HEAD_BYTES)


def test_the_sweep_says_when_upstreams_have_no_head_sketch(hub, tmp_path):
    source = _untied(7)
    _hub_repo(hub, "org/copy", disguise(source), CONFIG)
    index_path = tmp_path / "index.sqlite"
    index = Index(index_path)
    _register(index, "up/source", _save(tmp_path, "source", source), REMOTE_PLAN)
    index.close()
    quiet = run_cli("sweep", "hf:org", "--index", str(index_path), "--no-history", "-q", "-f", "json")
    assert "no head sketch" not in quiet.stderr
    _drop_heads(index_path)
    loud = run_cli("sweep", "hf:org", "--index", str(index_path), "--no-history", "-q", "-f", "json")
    assert "1 registered upstream(s) have no head sketch (up/source)" in loud.stderr
    for out in (quiet, loud):  # the same finding either way
        [target] = json.loads(out.stdout)["targets"]
        assert "weights.disguised_copy" in {f["rule"] for f in target["findings"]}


def test_a_survivor_larger_than_a_screen_request_is_not_read_whole(hub, tmp_path, monkeypatch):
    from scanner.sources import http

    monkeypatch.setattr(http.HTTPRangeByteSource, "screen_request_cost", 64 * 1024)  # under the 214 KB file
    source = _untied(7)
    _hub_repo(hub, "org/copy", {k: v.astype(np.float16) for k, v in disguise(source).items()}, CONFIG)
    index = Index(tmp_path / "index.sqlite")
    _register(index, "up/source", _save(tmp_path, "source", source))
    hub.stats.reset()
    copy = scan_target("hf:org/copy", Policy(), index)
    assert [m.name for m in copy.facts.weight_matches if m.verdict.verdict == "derived"] == ["up/source"]
    reads, served = _weight_reads(hub)
    assert reads > 2 and served < (hub.root / "org/copy/model.safetensors").stat().st_size


def test_a_repo_without_weights_costs_its_info_and_card_only(hub, tmp_path):
    """Nothing to screen: no weight request, no weights finding, whatever is registered."""
    make_repo(hub.root, "org/card-only", {"README.md": "---\nlicense: apache-2.0\n---\n# m\n"})
    hub.commit(hub.repo("org/card-only"))
    index = Index(tmp_path / "index.sqlite")
    _register(index, "up/source", _save(tmp_path, "source", _untied(7)))
    hub.stats.reset()
    report = scan_target("hf:org/card-only", Policy(), index)
    assert not [f for f in report.findings if f.rule.startswith("weights.")]
    assert _weight_reads(hub) == (0, 0) and hub.stats.requests == 2  # model info, README.md


@pytest.mark.parametrize("cached", [True, False], ids=["cache", "no-cache"])
def test_workers_wanting_one_content_download_it_once(hub, cached):
    """Eight repos ship the same LICENSE, each its own card; eight threads snapshot them at once while the server
    answers slowly. With a cache the shared LICENSE is downloaded once (the others wait and read it from the cache);
    every card, and without a cache every LICENSE, is downloaded once per repo."""
    from concurrent.futures import ThreadPoolExecutor

    for i in range(8):
        make_repo(hub.root, f"org/m{i}", {"README.md": f"# model {i}\n", "LICENSE": "Apache License\nVersion 2.0\n"})
        hub.commit(hub.repo(f"org/m{i}"))
    hub.fault("slow", match="/resolve/", times=-1, delay=0.2)
    hub.stats.reset()
    with ThreadPoolExecutor(8) as pool:
        snaps = list(pool.map(lambda i: HFSource(f"org/m{i}", cache=None if cached else False).snapshot(), range(8)))
    assert all(s.texts["LICENSE"].startswith("Apache License") for s in snaps)
    paths = hub.stats.paths("GET")
    assert sum(p.endswith("/LICENSE") for p in paths) == (1 if cached else 8)
    assert sum(p.endswith("/README.md") for p in paths) == 8


def test_a_pack_carries_the_head_sketches_and_refuses_tampered_ones(tmp_path):
    """`index update` builds, shards import a pack: the heads travel with it (an update fingerprint's rows cannot
    give them back); a pack without them (written before them) still imports, screened on the sketch."""
    import zipfile

    from scanner.provenance.pack import PackError, export_pack, import_pack

    index = Index(tmp_path / "index.sqlite")
    _register(index, "acme/source", _save(tmp_path, "source", _untied(7)), REMOTE_PLAN)
    export_pack(index, tmp_path / "pack.zip")
    shard = Index(tmp_path / "shard.sqlite")
    import_pack(shard, tmp_path / "pack.zip")
    key = shard.models()[0].fingerprint
    assert shard.without_heads() == [] and shard.heads_bytes(key) == index.heads_bytes(key)

    def rewrite(name: str, change) -> Path:
        out = tmp_path / name
        with zipfile.ZipFile(tmp_path / "pack.zip") as src, zipfile.ZipFile(out, "w") as dst:
            manifest = json.loads(src.read("manifest.json"))
            for member in src.namelist():
                if member != "manifest.json":
                    data = change(member, src.read(member), manifest)
                    if data is not None:
                        dst.writestr(member, data)
            dst.writestr("manifest.json", json.dumps(manifest))
        return out

    def tamper(member, data, manifest):
        return data[:-1] + bytes([data[-1] ^ 1]) if member.endswith(".heads") else data

    with pytest.raises(PackError, match="head sketches do not match"):
        import_pack(Index(tmp_path / "t.sqlite"), rewrite("tampered.zip", tamper))

    def older(member, data, manifest):
        for e in manifest["fingerprints"]:
            for k in ("heads", "heads_sha256", "heads_size"):
                e.pop(k, None)
        return None if member.endswith(".heads") else data

    old = Index(tmp_path / "old.sqlite")
    import_pack(old, rewrite("older.zip", older))
    assert old.without_heads() == ["acme/source"]


def test_a_config_that_understates_the_width_costs_a_request_not_an_answer(hub, tmp_path):
    """config.json says hidden 16 for a hidden-64 model: the first read holds the header but not the 96 rows, which
    come in one more contiguous read; the unrelated upstream is still ruled out and the copy still found."""
    source = _untied(7)
    wrong = {**CONFIG, "hidden_size": 16}
    _hub_repo(hub, "org/clean", _untied(999), wrong)
    _hub_repo(hub, "org/copy", {k: v.astype(np.float16) for k, v in disguise(source).items()}, wrong)
    index = Index(tmp_path / "index.sqlite")
    _register(index, "up/source", _save(tmp_path, "source", source))
    hub.stats.reset()
    clean = scan_target("hf:org/clean", Policy(), index)
    assert not [m for m in clean.facts.weight_matches if m.verdict.verdict == "derived"]
    reads, served = _weight_reads(hub)
    assert reads == 2 and served < (hub.root / "org/clean/model.safetensors").stat().st_size // 10
    copy = scan_target("hf:org/copy", Policy(), index)
    assert [m.name for m in copy.facts.weight_matches if m.verdict.verdict == "derived"] == ["up/source"]


CHILD = """
import json, sys
from scanner.provenance.index import Index
from scanner.provenance.search import find_matches
from scanner.provenance.views import open_model
from scanner.sources.local import LocalSource

index = Index(sys.argv[1])
model = open_model(LocalSource(sys.argv[2]).snapshot())
matches, stats = find_matches(model, index, "local:suspect")
print(json.dumps({
    "without": index.without_heads(),
    "heads": {m.name: len(index.heads(m.fingerprint)) for m in index.models()},
    "derived": sorted(r.name for r, v in matches if v.verdict == "derived"),
    "head_screens": stats.head_screens,
}))
"""


def test_a_read_only_index_written_before_heads_derives_them_in_memory(tmp_path):
    """An older index the user cannot write (a shared or cached file): it opens, the heads its rows hold are derived
    for the run, the others are screened on the sketch, and nothing is written."""
    import subprocess
    import sys

    from helpers import REPO_ROOT, without_root_override

    source = _untied(7)
    path = tmp_path / "ro" / "index.sqlite"
    path.parent.mkdir()
    index = Index(path)
    _register(index, "acme/add", _save(tmp_path, "source", source))
    _register(index, "acme/update", _save(tmp_path, "other", _untied(50)), REMOTE_PLAN)
    index.close()
    _drop_heads(path)
    before = path.read_bytes()
    suspect = _save(tmp_path, "suspect", disguise(source))
    path.chmod(0o444)
    path.parent.chmod(0o555)
    try:
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(path), str(suspect)],
            capture_output=True,
            text=True,
            cwd=REPO_ROOT,
            preexec_fn=without_root_override,
            timeout=120,
        )
    finally:
        path.parent.chmod(0o755)
        path.chmod(0o644)
    assert out.returncode == 0, out.stderr[-500:]
    got = json.loads(out.stdout)
    assert got == {
        "without": ["acme/update"],
        "heads": {"acme/add": 2, "acme/update": 0},
        "derived": ["acme/add"],
        "head_screens": 1,
    }
    assert path.read_bytes() == before


# -- a small weight file read whole is kept by its content hash ----------------------------------------------------
def _copies(hub, tmp_path, names: list[str]) -> Index:
    """The same disguised copy (byte for byte) in every repo of `names`, and its upstream registered."""
    source = _untied(7)
    copy = {k: v.astype(np.float16) for k, v in disguise(source).items()}
    for name in names:
        _hub_repo(hub, name, copy, CONFIG)
    index = Index(tmp_path / "index.sqlite")
    _register(index, "up/source", _save(tmp_path, "source", source))
    return index


def _derived(report) -> list[tuple[str, float, float | None]]:
    return [
        (m.name, m.verdict.score, m.verdict.log10_p_value)
        for m in report.facts.weight_matches
        if m.verdict.verdict == "derived"
    ]


def test_a_repo_holding_content_already_read_whole_reads_none_of_it(hub, tmp_path):
    """Two repos with the same small weight file (the same LFS sha256): the first survivor's full test reads it
    whole (2 requests), and the second repo's screen and full test run on the bytes the cache kept for that hash,
    with the same verdict, score and p-value, and no weight request."""
    index = _copies(hub, tmp_path, ["org/copy-a", "org/copy-b"])
    size = (hub.root / "org/copy-a/model.safetensors").stat().st_size
    hub.stats.reset()
    first = scan_target("hf:org/copy-a", Policy(), index)
    assert _weight_reads(hub) == (2, size)
    hub.stats.reset()
    second = scan_target("hf:org/copy-b", Policy(), index)
    assert _weight_reads(hub) == (0, 0)
    assert _derived(second) == _derived(first) and _derived(first)[0][0] == "up/source"


def test_without_a_cache_each_repo_reads_its_own_copy(hub, tmp_path, monkeypatch):
    monkeypatch.setenv("ORIGINSCAN_CACHE", "off")
    index = _copies(hub, tmp_path, ["org/copy-a", "org/copy-b"])
    results, reads = [], []
    for name in ("org/copy-a", "org/copy-b"):
        hub.stats.reset()
        results.append(_derived(scan_target(f"hf:{name}", Policy(), index)))
        reads.append(_weight_reads(hub))
    assert results[0] == results[1] and reads[0] == reads[1] and reads[0][0] >= 2


def test_kept_bytes_that_do_not_match_their_hash_are_read_again(hub, tmp_path):
    """A cache entry damaged after it was written (its bytes no longer hash to its name) is never served: the repo
    reads from the Hub, with the same answer."""
    from scanner.sources.cache import Cache

    index = _copies(hub, tmp_path, ["org/copy-a", "org/copy-b"])
    first = scan_target("hf:org/copy-a", Policy(), index)
    sha = hashlib.sha256((hub.root / "org/copy-a/model.safetensors").read_bytes()).hexdigest()
    cache = Cache(os.environ["ORIGINSCAN_CACHE"])
    kept = cache.get_blob(sha)
    assert kept is not None
    damaged = bytearray(kept)
    damaged[-1] ^= 0xFF
    cache.put_blob(bytes(damaged), sha)
    hub.stats.reset()
    second = scan_target("hf:org/copy-b", Policy(), index)
    assert _weight_reads(hub)[0] == 2 and _derived(second) == _derived(first)


def test_bytes_that_are_not_the_listed_content_are_not_kept(tmp_path):
    """What a server sent is kept under the listing's hash only when it has that hash."""
    from scanner.sources.bytesource import BytesByteSource
    from scanner.sources.cache import Cache

    class Remote(BytesByteSource):
        request_cost = 4096
        screen_request_cost = 1 << 20

    cache = Cache(tmp_path / "cache")
    data = b"x" * 1000
    honest, liar = Remote(data), Remote(data)
    honest.know_content(hashlib.sha256(data).hexdigest(), cache)
    liar.know_content("0" * 64, cache)
    honest.read_head(len(data))
    liar.read_head(len(data))
    assert cache.get_blob(honest.sha256 or "") == data and cache.get_blob("0" * 64) is None
    again = Remote(b"y" * 1000)  # another source of the kept content: served from the cache, no read of its own
    again.know_content(honest.sha256 or "", cache)
    assert again.read(0, 1000) == data and again.bytes_read == 0


def test_a_file_over_a_screen_request_or_a_local_one_is_not_kept(hub, tmp_path, monkeypatch):
    """Only a remote file small enough to be read whole is kept: a larger one's reads are sampled rows (nothing
    whole to keep), and a local file costs no request to read again."""
    from scanner.sources import http

    monkeypatch.setattr(http.HTTPRangeByteSource, "screen_request_cost", 64 * 1024)  # under the 214 KB file
    index = _copies(hub, tmp_path, ["org/copy-a", "org/copy-b"])
    for name in ("org/copy-a", "org/copy-b"):
        hub.stats.reset()
        scan_target(f"hf:{name}", Policy(), index)
        assert _weight_reads(hub)[0] > 2
    blobs = Path(os.environ["ORIGINSCAN_CACHE"]) / "blobs"
    sizes = [p.stat().st_size for p in blobs.rglob("*") if p.is_file()] if blobs.is_dir() else []
    assert all(s < 64 * 1024 for s in sizes)  # small files (card, config) only, no weight file
    local = _local(hub.root / "org/copy-a")
    try:
        assert _derived_local(local, index) == ["up/source"]
    finally:
        local.close()
    sizes = [p.stat().st_size for p in blobs.rglob("*") if p.is_file()] if blobs.is_dir() else []
    assert all(s < 64 * 1024 for s in sizes)


def _derived_local(model, index: Index) -> list[str]:
    matches, _ = find_matches(model, index, "local:suspect")
    return [reg.name for reg, v in matches if v.verdict == "derived"]


# -- a wider model's head rows in its first read -----------------------------------------------------------------------
WIDE = dict(vocab=1024, d=576, inter=128, layers=1)  # SmolLM2-135M's width: 96 rows are 110 KB, over the usual head
WIDE_CONFIG = {"model_type": "llama", "hidden_size": 576, "num_hidden_layers": 1, "vocab_size": 1024}


def _wide(seed: int) -> dict[str, np.ndarray]:
    """float32 (disguised before it is cast: float16 sums of 576 values overflow), with its own LM head."""
    t = tiny_llm(seed, **WIDE)
    t["lm_head.weight"] = np.random.default_rng(seed + 1).normal(0, 1, (WIDE["vocab"], WIDE["d"]))
    return t


def _half(t: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: v.astype(np.float16) for k, v in t.items()}


def test_a_wider_suspect_is_screened_on_its_first_read(hub, tmp_path):
    """Hidden 576, an upstream of that width registered: the first read holds the header and the 96 head rows
    (115 KB, not the usual 64 KB and then the rows in a request of their own), the unrelated repo is ruled out on
    it, and the disguised copy is still found."""
    source = _wide(7)
    _hub_repo(hub, "org/clean", _half(_wide(999)), WIDE_CONFIG)
    _hub_repo(hub, "org/copy", _half(disguise(source)), WIDE_CONFIG)
    index = Index(tmp_path / "index.sqlite")
    _register(index, "up/source", _save(tmp_path, "source", _half(source)))
    hub.stats.reset()
    clean = scan_target("hf:org/clean", Policy(), index)
    assert not [m for m in clean.facts.weight_matches if m.verdict.verdict == "derived"]
    wanted = first_read_bytes(WIDE_CONFIG, {576})
    assert wanted is not None and wanted > HEAD_BYTES
    assert _weight_reads(hub) == (1, 8 + wanted)
    copy = scan_target("hf:org/copy", Policy(), index)
    assert [m.name for m in copy.facts.weight_matches if m.verdict.verdict == "derived"] == ["up/source"]


def test_a_wider_suspect_of_no_registered_width_reads_the_usual_head(hub, tmp_path):
    """No upstream of hidden 576: nothing will be screened, so no head rows are brought, only the usual head."""
    _hub_repo(hub, "org/clean", _half(_wide(999)), WIDE_CONFIG)
    index = Index(tmp_path / "index.sqlite")
    _register(index, "up/source", _save(tmp_path, "source", _untied(7)))  # hidden 64
    hub.stats.reset()
    scan_target("hf:org/clean", Policy(), index)
    assert _weight_reads(hub) == (1, 8 + HEAD_BYTES)


def test_a_sharded_wider_suspect_reads_the_usual_head_of_each_shard(hub, tmp_path):
    """Two shards: each would get the enlarged first read and only one holds the head rows, so each reads the usual
    head (the rows, where needed, in a read of their own), and the copy is still found."""
    source = _wide(7)
    copy = _half(disguise(source))
    names = sorted(copy)
    folder = make_repo(
        hub.root,
        "org/sharded",
        {"README.md": "---\nlicense: apache-2.0\n---\n# m\n", "config.json": json.dumps(WIDE_CONFIG)},
    )
    halves = {"model-00001-of-00002.safetensors": names[: len(names) // 2]}
    halves["model-00002-of-00002.safetensors"] = names[len(names) // 2 :]
    for file, part in halves.items():
        save_tensors({k: copy[k] for k in part}, folder / file)
    weight_map = {k: file for file, part in halves.items() for k in part}
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    hub.commit(hub.repo("org/sharded"))
    index = Index(tmp_path / "index.sqlite")
    _register(index, "up/source", _save(tmp_path, "source", _half(source)))
    hub.stats.reset()
    report = scan_target("hf:org/sharded", Policy(), index)
    assert [m.name for m in report.facts.weight_matches if m.verdict.verdict == "derived"] == ["up/source"]
    firsts = [r for (_, p, _), r in zip(hub.stats.log, hub.stats.ranges, strict=True) if p.endswith(".safetensors")]
    assert sorted(firsts)[:2] == [f"bytes=0-{8 + HEAD_BYTES - 1}"] * 2  # each shard's first read: the usual head
