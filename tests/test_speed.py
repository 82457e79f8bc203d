"""What makes repeated work cheap stays correct: the comparison kernel against its definition, content-keyed
caches (local file hashes, safetensors headers, index verdicts) that reuse only what did not change, and range
reads that share connections."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest
import threadpoolctl
from synthetic import add_noise, base_model, permute_residual, save

from scanner.provenance import compare
from scanner.provenance.compare import best_matches, best_vector_matches, one_blas_thread, spearman_columns
from scanner.provenance.safetensors import SafetensorsError, parse_header
from scanner.sources import local
from scanner.sources.cache import Cache
from scanner.sources.local import LocalSource


# -- the kernel, against the straightforward computation it replaces --------------------------------------------
def _reference_best_matches(a: np.ndarray, b: np.ndarray):
    """By the definition: ranks by double argsort, shared directions by a full SVD, |corr| argmax both ways."""

    def z(x):
        r = x.argsort(axis=0, kind="stable").argsort(axis=0, kind="stable").astype(np.float32)
        r -= r.mean(axis=0, keepdims=True)
        n = np.linalg.norm(r, axis=0, keepdims=True)
        return np.where(n > 0, r / np.where(n > 0, n, 1), 0).astype(np.float32)

    za, zb = z(a), z(b)
    k = min(compare.SHARED_COMPONENTS, za.shape[0] // 8)
    if k:
        u = np.linalg.svd(np.concatenate([za, zb], axis=1), full_matrices=False)[0][:, :k]
        za = za - u @ (u.T @ za)
        zb = zb - u @ (u.T @ zb)
        za /= np.maximum(np.linalg.norm(za, axis=0, keepdims=True), 1e-12)
        zb /= np.maximum(np.linalg.norm(zb, axis=0, keepdims=True), 1e-12)
    c = za.T @ zb
    idx = np.abs(c).argmax(axis=1)
    back = np.abs(c).argmax(axis=0)
    return idx, c[np.arange(len(idx)), idx], back[idx] == np.arange(len(idx))


@pytest.mark.parametrize("seed", range(6))
def test_best_matches_equals_its_definition(seed):
    rng = np.random.default_rng(seed)
    k, d = [(16, 64), (32, 96), (64, 160), (128, 48), (256, 200), (32, 1100)][seed]
    shared = rng.normal(size=(k, 2)) @ rng.normal(size=(2, d))  # token structure every model has
    a = (rng.normal(size=(k, d)) + 2 * shared).astype(np.float32)
    a[:, 3] = 0.5  # a constant column ranks to zeros
    derived = (a[:, rng.permutation(d)] + rng.normal(scale=[0.3, 3][seed % 2], size=(k, d))).astype(np.float32)
    independent = (rng.normal(size=(k, d)) + 2 * shared).astype(np.float32)
    for b in (derived, independent):
        idx, val, mutual = best_matches(a, b, chunk=64)  # several chunks: the column-wise bests are merged
        ref_idx, ref_val, ref_mutual = _reference_best_matches(a, b)
        assert np.array_equal(idx, ref_idx) and np.array_equal(mutual, ref_mutual)
        assert np.allclose(val, ref_val, atol=1e-5)
    assert best_matches(a, derived)[2].mean() > 0.5  # mutual matches are the signal, not an artefact


def _reference_spearman(x: np.ndarray) -> np.ndarray:
    """spearman_columns by its definition: each column's stable ranks (double argsort), standardised in float32."""
    x = np.where(np.isfinite(x), x, 0.0)
    r = x.argsort(axis=0, kind="stable").argsort(axis=0, kind="stable").astype(np.float32)
    r -= r.mean(axis=0, keepdims=True)
    n = np.linalg.norm(r, axis=0, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, r / np.where(n > 0, n, 1.0), 0.0).astype(np.float32)


@pytest.mark.parametrize("rows", [1, 2, 7, 32, 64, 128, compare.EXACT_RANK_ROWS, compare.EXACT_RANK_ROWS + 1, 512])
def test_spearman_columns_equals_its_definition_bit_for_bit(rows):
    """The integer-key sort and the shared column of standardised ranks (up to EXACT_RANK_ROWS) give the very
    floats of the definition: ties keep their order, -0.0 ranks with 0.0, NaN/Inf rank as 0, tiny and huge values
    keep their order; past EXACT_RANK_ROWS each column is standardised on its own."""
    rng = np.random.default_rng(rows)
    x = rng.standard_normal((rows, 96)).astype(np.float32)
    x[:, 0] = 1.0  # constant: every value tied
    x[:, 1] = np.round(x[:, 1] * 2) / 2  # many ties
    x[::2, 2], x[1::2, 2] = -0.0, 0.0  # equal values with different bits
    x[rng.random(x.shape) < 0.05] = np.nan
    x[rng.random(x.shape) < 0.03] = -np.inf
    x[:, 3] *= np.float32(1e-40)  # subnormal
    x[:, 4] *= np.float32(1e37)
    got, want = spearman_columns(x), _reference_spearman(x)
    assert got.dtype == np.float32 and got.flags.c_contiguous
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))


def test_stable_order_is_the_stable_argsort():
    rng = np.random.default_rng(3)
    rows = np.round(rng.standard_normal((50, 40)).astype(np.float32) * 3) / 3
    rows[:, ::5] = -rows[:, ::5]
    rows[7] = 0.0
    rows[8, ::2] = -0.0
    assert np.array_equal(compare._stable_order(rows), (rows + np.float32(0.0)).argsort(axis=1, kind="stable"))


def test_log10_binom_sf_is_the_binomial_tail():
    from math import comb, log10

    for k, n, p in [(1, 40, 0.25), (3, 40, 0.25), (40, 40, 0.25), (0, 40, 0.25), (5, 200, 10 / 200), (2, 9, 0.5)]:
        want = log10(sum(comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1)))
        assert compare.log10_binom_sf(k, n, p) == pytest.approx(want, abs=1e-9)
        assert compare.log10_binom_sf(k, n, p) == compare.log10_binom_sf(k, n, p)  # remembered: the same float


def test_best_vector_matches_equals_pairwise_spearman():
    rng = np.random.default_rng(1)
    ref = {f"layers.{i}.norm": rng.normal(size=300) for i in range(12)}
    ref["layers.12.norm"] = ref["layers.3.norm"].copy()  # a tie: the greater name wins, as max() over pairs did
    suspect = [ref[f"layers.{i}.norm"] + rng.normal(scale=0.2, size=300) for i in (5, 3, 0)]
    suspect.append(np.ones(300))  # constant: correlates 0 with everything

    def rho(x, y):
        z = spearman_columns(np.stack([x, y], axis=1))
        return float(z[:, 0] @ z[:, 1])

    got = best_vector_matches(suspect, ref)
    for x, (r, name) in zip(suspect, got):
        want_r, want_name = max((rho(x, y), n) for n, y in ref.items())
        assert name == want_name and r == pytest.approx(want_r, abs=1e-6)
    assert [n for _, n in got[:2]] == ["layers.5.norm", "layers.3.norm"]


def test_comparisons_run_blas_on_one_thread_and_give_it_back():
    def blas_threads():
        return {p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"}

    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        seen = []
        with one_blas_thread():
            with one_blas_thread():  # a second comparison (another sweep worker) overlapping the first
                seen.append(blas_threads())
            seen.append(blas_threads())  # the first still runs: still one thread
        assert seen == [{1}, {1}]
        assert blas_threads() == {2}  # the caller's setting is back once no comparison runs


# -- local weight-file hashes -----------------------------------------------------------------------------------
def test_unchanged_local_weights_are_not_read_again(tmp_path, monkeypatch):
    repo = save(base_model(1), tmp_path / "repo")
    weights = repo / "model.safetensors"
    hashed = []
    real = local.sha256_file
    monkeypatch.setattr(local, "sha256_file", lambda p, *a: hashed.append(p) or real(p, *a))
    cache = Cache(tmp_path / "cache")

    first = LocalSource(str(repo), cache=cache).snapshot()
    second = LocalSource(str(repo), cache=cache).snapshot()
    want = hashlib.sha256(weights.read_bytes()).hexdigest()
    assert first.files["model.safetensors"].sha256 == second.files["model.safetensors"].sha256 == want
    assert hashed == [weights]  # the second scan read no weight byte to know the hash

    # The header of that content is remembered too: opening it again reads nothing.
    src = second.open("model.safetensors")
    parse_header(src)
    src2 = LocalSource(str(repo), cache=cache).snapshot().open("model.safetensors")
    tensors, _ = parse_header(src2)
    assert src.bytes_read > 0 and src2.bytes_read == 0 and len(tensors) == len(base_model(1))
    src.close()
    src2.close()


def test_a_rewritten_local_file_is_hashed_again_even_with_its_old_mtime(tmp_path):
    repo = save(base_model(1), tmp_path / "repo")
    weights = repo / "model.safetensors"
    cache = Cache(tmp_path / "cache")
    before = LocalSource(str(repo), cache=cache).snapshot().files["model.safetensors"].sha256
    st = weights.stat()
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # same size, other content
    weights.write_bytes(bytes(data))
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns))  # mtime put back; ctime cannot be
    after = LocalSource(str(repo), cache=cache).snapshot().files["model.safetensors"].sha256
    assert after != before and after == hashlib.sha256(bytes(data)).hexdigest()


def test_no_cache_means_hashing_every_time(tmp_path, monkeypatch):
    repo = save(base_model(1), tmp_path / "repo")
    hashed = []
    real = local.sha256_file
    monkeypatch.setattr(local, "sha256_file", lambda p, *a: hashed.append(p) or real(p, *a))
    for _ in range(2):
        LocalSource(str(repo), cache=False).snapshot()
    assert len(hashed) == 2


def test_a_malformed_header_stays_malformed_when_remembered(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    body = b'{"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 99]}}'
    (repo / "model.safetensors").write_bytes(len(body).to_bytes(8, "little") + body + b"\0" * 16)
    cache = Cache(tmp_path / "cache")
    messages = []
    for _ in range(2):
        src = LocalSource(str(repo), cache=cache).snapshot().open("model.safetensors")
        with pytest.raises(SafetensorsError) as err:
            parse_header(src)
        messages.append((str(err.value), src.bytes_read))
        src.close()
    assert messages[0][0] == messages[1][0] and "outside" in messages[0][0]
    assert messages[0][1] > 0 and messages[1][1] == 0


# -- the Hub: a warm re-scan, connections ---------------------------------------------------------------------
def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scanner.cli", *args], capture_output=True, text=True, timeout=120)


def _publish(hub, repo_id: str, tensors) -> None:
    folder = save(tensors, hub.root / repo_id)
    (folder / "README.md").write_text(f"---\nlicense: apache-2.0\n---\n# {repo_id}\n")


def test_warm_rescan_is_one_request_and_reuses_verdicts(hub, tmp_path):
    a = base_model(1)
    _publish(hub, "meta/base", a)
    _publish(hub, "mallory/copy", add_noise(permute_residual(a), 0.05))
    index = str(tmp_path / "index.sqlite")
    assert _cli("index", "add", "hf:meta/base", "--index", index).returncode == 0
    runs = []
    for _ in range(2):
        hub.stats.reset()
        out = _cli("scan", "hf:mallory/copy", "--index", index, "--format", "json")
        assert out.returncode == 1, out.stderr
        runs.append((out.stdout, hub.stats.requests, hub.stats.weight_bytes_served))
    assert "weights.disguised_copy" in runs[0][0] and "weights.disguised_copy" in runs[1][0]
    assert runs[0][2] > 0  # the cold scan read rows
    assert runs[1][1:] == (1, 0)  # warm: one revision check, no weight byte

    # A changed suspect is compared again, with the verdict that its new content deserves.
    _publish(hub, "mallory/copy", base_model(7))
    hub.stats.reset()
    out = _cli("scan", "hf:mallory/copy", "--index", index, "--format", "json")
    assert "weights.disguised_copy" not in out.stdout and hub.stats.weight_bytes_served > 0


def test_range_reads_share_connections(hub):
    a = base_model(1, d=128, vocab=4096)
    _publish(hub, "meta/base", a)
    _publish(hub, "indie/other", base_model(2, d=128, vocab=4096))
    hub.stats.reset()
    out = _cli("compare", "hf:indie/other", "hf:meta/base", "--format", "json")
    assert out.returncode == 0, out.stderr
    ranges = [p for p in hub.stats.paths("GET") if "/resolve/" in p]
    assert len(ranges) > 40
    # one pooled session: at most one connection per reader thread plus the metadata calls, not one per batch
    assert hub.stats.connections <= 8 + 6


def test_remote_rows_close_together_share_a_request_and_local_ones_read_nothing_extra(hub, tmp_path):
    from scanner.pipeline import open_snapshot
    from scanner.provenance.safetensors import HEAD_BYTES, read_rows
    from scanner.sources.bytesource import FileByteSource

    tensors = {"w": np.arange(400_000, dtype=np.float32).reshape(10_000, 40)}  # 160-byte rows, 1.6 MB
    folder = save(tensors, hub.root / "meta" / "rows")
    remote = open_snapshot("hf:meta/rows").open("model.safetensors")
    (t,), _ = parse_header(remote)
    assert remote.requests == 1 and remote.bytes_read == 8 + HEAD_BYTES  # the header and what follows, at once
    first_row_after_head = (8 + HEAD_BYTES - t.start) // 160 + 1
    far, near = first_row_after_head + 2000, first_row_after_head + 2010  # 1.4 KB apart; 2000 rows from the head
    before, requests = remote.bytes_read, remote.requests
    rows = read_rows(remote, t, [near, 10, far, 9000])  # 10 lies in the head: no request, no byte
    assert np.array_equal(rows[:, 0], [near * 40, 400, far * 40, 360_000])
    assert remote.requests - requests == 2 and remote.bytes_read - before == (11 + 1) * 160
    # A screen's read weighs a request more (once per repo over thousands of repos): 960 KB apart join too.
    before, requests = remote.bytes_read, remote.requests
    rows = read_rows(remote, t, [2000, 8000], screening=True)
    assert remote.requests - requests == 1 and remote.bytes_read - before == 6001 * 160

    local = FileByteSource(folder / "model.safetensors")
    (t,), _ = parse_header(local)
    assert local.bytes_read == 8 + (t.start - 8)  # the length, then the header: nothing after it
    before = local.bytes_read
    assert np.array_equal(read_rows(local, t, [20, 10, 900], screening=True)[:, 0], [800, 400, 36_000])
    assert local.bytes_read - before == 3 * 160  # no round trip to save: only the rows asked for
    local.close()
