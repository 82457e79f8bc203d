"""Issue 26 (speed at real model sizes): the faster kernel breaks ties as its definition does, the comparison's
rounds give the same judgement on one thread or two, its shortcuts (the second half searched from the first's
mutual units, later pairs skipped, the next round read ahead) change no count or judgement, and start-up imports
only what a command needs."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from scanner.provenance import compare
from scanner.provenance.compare import best_matches


def _by_definition(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise and column-wise first argmax of |corr| over the whole matrix at once (no chunks, no shortcuts)."""
    za, zb = compare.spearman_columns(a), compare.spearman_columns(b)
    r = min(compare.SHARED_COMPONENTS, za.shape[0] // 8)
    u = compare.shared_directions(za, zb, r)
    za = za - u @ (u.T @ za)
    zb = zb - u @ (u.T @ zb)
    za /= np.maximum(np.linalg.norm(za, axis=0, keepdims=True), 1e-12)
    zb /= np.maximum(np.linalg.norm(zb, axis=0, keepdims=True), 1e-12)
    c = np.abs(za.T @ zb)
    idx = c.argmax(axis=1)
    return idx, c.argmax(axis=0)[idx] == np.arange(len(idx))


@pytest.mark.parametrize("chunk", [7, 64, 1024])
def test_mutual_matches_break_exact_ties_like_a_column_argmax(chunk):
    """Duplicated units make exact ties in the correlation matrix: the first unit in order keeps the match, in
    whichever chunk it and its copies fall."""
    rng = np.random.default_rng(4)
    a = rng.normal(size=(32, 150)).astype(np.float32)
    b = (a[:, rng.permutation(150)] + rng.normal(scale=0.2, size=(32, 150))).astype(np.float32)
    a[:, [9, 70, 149]] = a[:, [2]]  # copies of unit 2, before and after chunk borders
    a[:, 30] = 0.0  # a constant unit: an all-zero row
    b[:, [5, 140]] = b[:, [1]]  # tied columns on the other side
    idx, _, mutual = best_matches(a, b, chunk=chunk)
    want_idx, want_mutual = _by_definition(a, b)
    assert np.array_equal(idx, want_idx)
    assert np.array_equal(mutual, want_mutual)
    assert not mutual[[9, 70, 149]].any() and mutual.sum() > 100  # copies lose the tie; the derivation shows


def test_two_compute_threads_give_the_judgement_of_one(tmp_path, monkeypatch):
    from synthetic import add_noise, base_model, permute_residual, save

    base = base_model(1, d=1100, vocab=600, layers=1, inter=8)
    save(base, tmp_path / "base")
    save(add_noise(permute_residual(base), 0.05), tmp_path / "copy")
    save(base_model(2, d=1100, vocab=600, layers=1, inter=8), tmp_path / "other")
    verdicts = {}
    for threads in (1, 2):
        monkeypatch.setattr(compare, "compute_threads", lambda width, n=threads: n)
        for suspect in ("copy", "other"):
            v = compare.compare_paths(tmp_path / suspect, tmp_path / "base").to_json()
            v.pop("seconds")
            verdicts[(threads, suspect)] = v
    assert verdicts[(1, "copy")] == verdicts[(2, "copy")] and verdicts[(1, "copy")]["verdict"] == "derived"
    assert verdicts[(1, "other")] == verdicts[(2, "other")] and verdicts[(1, "other")]["verdict"] == "independent"


def test_version_prints_without_loading_the_scanner():
    code = (
        "import sys\n"
        "sys.argv = ['originscan', '--version']\n"
        "from scanner.cli import main\n"
        "try:\n    main()\nexcept SystemExit as e:\n    print('exit', e.code)\n"
        "print(sorted(m for m in ('numpy', 'huggingface_hub', 'gguf', 'scanner.pipeline') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    lines = out.stdout.splitlines()
    assert lines[0].startswith("originscan ") and lines[0].split()[1][0].isdigit()
    assert lines[1] == "exit 0"
    assert lines[2] == "[]", f"--version imported {lines[2]}"


def test_a_screen_reads_two_token_matrices_of_a_small_model_in_one_request(hub):
    """Over HTTP a screen's rows of the embedding and the head (adjacent in the file) come in one range read after
    the header's; read locally, the same rows cost exactly their bytes."""
    from synthetic import base_model, save

    from scanner.pipeline import open_snapshot
    from scanner.provenance.fingerprint import sketch_tokens
    from scanner.provenance.views import open_model

    save(base_model(3, d=64, vocab=512, layers=1, inter=64), hub.root / "small" / "model")
    for target in ("hf:small/model", str(hub.root / "small" / "model")):
        model = open_model(open_snapshot(target))
        src = next(iter(model.sources.values()))
        matrices = model.structure.token_matrices
        tokens = sketch_tokens(512).tolist()
        before, requests = src.bytes_read, getattr(src, "requests", 0)
        with model.screens():
            model.read_token_rows(matrices, tokens)
        rows = {m.name: model.token_rows(m, tokens) for m in matrices}
        assert len(matrices) == 2 and all(r.shape == (128, 64) for r in rows.values())
        if target.startswith("hf:"):
            assert src.requests - requests == 1
        else:
            assert src.bytes_read - before == 2 * 128 * 64 * 4  # float32 rows, nothing between them
        model.close()


def _pairs_of_halves(seed: int, k: int, d: int, derived_share: float) -> list[np.ndarray]:
    """Two halves of token rows of two models sharing a permuted, noisy copy of `derived_share` of their units,
    with exact ties (a duplicated unit, a constant unit) on both sides."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(2 * k, d)).astype(np.float32)
    b = rng.normal(size=(2 * k, d)).astype(np.float32)
    n = int(derived_share * d)
    perm = rng.permutation(d)[:n]
    b[:, perm] = a[:, :n] + rng.normal(scale=0.3, size=(2 * k, n)).astype(np.float32)
    a[:, [d - 1, d // 2]] = a[:, [1]]
    a[:, 4] = 0.0
    b[:, 7] = b[:, 3]
    return [compare.spearman_columns(x) for x in (a[:k], b[:k], a[k:], b[k:])]


@pytest.mark.parametrize("share", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("threads", [1, 2])
def test_agreement_counts_what_both_full_searches_count(share, threads):
    """The second half searched from the first half's mutual units (unrelated and partly derived models) or in
    full (most units mutual): the count of units matched the same and mutually on both halves either way."""
    for seed, (k, d) in enumerate([(32, 1100), (16, 300), (64, 2100)]):
        za1, zb1, za2, zb2 = _pairs_of_halves(seed, k, d, share)
        m1, _, mutual1 = compare.ranked_matches(za1, zb1)
        m2, _, mutual2 = compare.ranked_matches(za2, zb2)
        want = int(np.sum((m1 == m2) & mutual1 & mutual2))
        assert compare.agreement(((za1, zb1), (za2, zb2)), threads) == want
        if share == 1.0:
            assert want > 0.5 * d


def test_candidate_search_is_taken_for_unrelated_units(monkeypatch):
    searched = []
    real = compare._first_best
    monkeypatch.setattr(compare, "_first_best", lambda *a, **k: searched.append(len(a[2])) or real(*a, **k))
    za1, zb1, za2, zb2 = _pairs_of_halves(1, 32, 1100, 0.0)
    compare.agreement(((za1, zb1), (za2, zb2)))
    assert searched and searched[0] < 0.75 * 1100  # the first half's mutual units, then the few that pass
    searched.clear()
    za1, zb1, za2, zb2 = _pairs_of_halves(1, 32, 1100, 1.0)
    compare.agreement(((za1, zb1), (za2, zb2)))
    assert searched == []  # nearly every unit mutual: the full search is cheaper


@pytest.mark.parametrize("share", [0.0, 0.3, 1.0])
def test_bound_never_sets_aside_a_first_best_match(share):
    """_may_be_first_best is False only where _first_best finds another unit; unrelated candidates mostly fail it
    (the exact search then runs on few), and each candidate that is its column's first best passes it, ties with a
    sampled unit included."""
    for seed, (k, d) in enumerate([(32, 1100), (8, 300), (64, 4096), (16, 200)]):
        _, _, za2, zb2 = _pairs_of_halves(seed, k, d, share)
        za2, zb2 = compare.without_shared(za2, zb2)
        rng = np.random.default_rng(seed)
        rows = rng.permutation(d)
        cols = compare._first_best(za2, zb2, rows, 1)  # each row's best column: candidates that are first best ...
        cols[: d // 2] = rng.integers(0, d, d // 2)  # ... and, for half of them, any column
        first = compare._first_best(zb2, za2, cols, 1)
        passed = compare._may_be_first_best(zb2, za2, cols, rows)
        assert np.all(passed[first == rows])
        unrelated = slice(0, d // 2)
        if share == 0.0 and d >= 1000:
            assert np.mean(passed[unrelated]) < 0.1
    # a tie with a unit of the sample: equal columns, so the correlations are equal and the bound cannot tell them
    _, _, za2, zb2 = _pairs_of_halves(5, 32, 1100, 0.0)
    za2, zb2 = compare.without_shared(za2, zb2)
    za2[:, 8] = za2[:, 9] = zb2[:, 20]  # unit 8 is in the sample (every 4th of 1100), 9 is not
    col = np.array([20, 20])
    assert list(compare._may_be_first_best(zb2, za2, col, np.array([8, 9]))) == [True, True]
    assert list(compare._first_best(zb2, za2, col, 1)) == [8, 8]  # the first of the tied units


@pytest.mark.parametrize("threads", [2, 3])
def test_kernel_on_several_threads_equals_one(threads):
    za1, zb1, _, _ = _pairs_of_halves(2, 32, 2100, 0.3)
    one = compare.ranked_matches(za1, zb1, chunk=256)
    many = compare.ranked_matches(za1, zb1, chunk=256, threads=threads)
    assert all(np.array_equal(x, y) for x, y in zip(one, many))
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(48, 1500)).astype(np.float32), rng.normal(size=(48, 1300)).astype(np.float32)
    idx, val, _ = best_matches(a, b, chunk=512)
    got_idx, got_val = compare.row_matches(a, b, threads, chunk=512)
    assert np.array_equal(idx, got_idx) and np.array_equal(val, got_val)


def _models(tmp_path):
    from synthetic import add_noise, base_model, permute_residual, save

    base = base_model(1, d=1100, vocab=600, layers=1, inter=8)
    save(base, tmp_path / "base")
    save(add_noise(permute_residual(base), 0.05), tmp_path / "copy")
    save(base_model(2, d=1100, vocab=600, layers=1, inter=8), tmp_path / "other")
    return tmp_path


def test_later_pairs_are_skipped_only_when_they_cannot_win(tmp_path, monkeypatch):
    """Embedding and head on both sides make four pairs a round. A derived copy's first pair agrees on every unit,
    so the other three cannot give a smaller p-value and are not computed; an unrelated model's pairs all are.
    Either way the judgement is the one computing every pair gives."""
    root = _models(tmp_path)
    counted = []
    real = compare.agreement
    monkeypatch.setattr(compare, "agreement", lambda *a: counted.append(1) or real(*a))
    judged = {}
    for skip in (True, False):
        if not skip:
            monkeypatch.setattr(compare.Comparator, "_least_log10_p", staticmethod(lambda a, b: -np.inf))
        for suspect in ("copy", "other"):
            counted.clear()
            v = compare.compare_paths(root / suspect, root / "base").to_json()
            v.pop("seconds")
            judged[(skip, suspect)] = (v, len(counted))
    assert judged[(True, "copy")][0] == judged[(False, "copy")][0]
    assert judged[(True, "copy")][0]["verdict"] == "derived"
    assert (judged[(True, "copy")][1], judged[(False, "copy")][1]) == (1, 4)  # one round: 1 pair instead of 4
    assert judged[(True, "other")][0] == judged[(False, "other")][0]
    assert judged[(True, "other")][1] == judged[(False, "other")][1] == 8  # two rounds of four pairs


def test_next_rounds_rows_are_read_ahead_only_when_a_round_follows(tmp_path, monkeypatch):
    root = _models(tmp_path)
    ahead = []
    real = compare.Comparator._read_next_round_ahead

    def spy(self, pairs, stream, k, limit, first):
        real(self, pairs, stream, k, limit, first)
        ahead.append((k, self._rows_ahead is not None))

    monkeypatch.setattr(compare.Comparator, "_read_next_round_ahead", spy)
    derived = compare.compare_paths(root / "copy", root / "base")
    assert derived.verdict == "derived" and ahead == [(32, False)]  # the first pair settles it: nothing ahead
    ahead.clear()
    other = compare.compare_paths(root / "other", root / "base")
    # 32 rows a half: a round at 64 follows, read ahead; at 64 nothing beyond chance settles it: nothing ahead
    assert other.verdict == "independent" and ahead == [(32, True), (64, False)]


def test_one_blas_thread_also_holds_a_blas_loaded_after_the_first_comparison():
    """scipy brings an OpenBLAS of its own: imported after a comparison has looked at the loaded libraries, it is
    held to one thread as well (the look is taken again once modules were imported since)."""
    code = (
        "import threadpoolctl\n"
        "from scanner.provenance.compare import one_blas_thread\n"
        "with one_blas_thread():\n    pass\n"
        "before = len(threadpoolctl.threadpool_info())\n"
        "import scipy.linalg\n"
        "with threadpoolctl.threadpool_limits(2, user_api='blas'):\n"
        "    with one_blas_thread():\n"
        "        inside = [p['num_threads'] for p in threadpoolctl.threadpool_info() if p['user_api'] == 'blas']\n"
        "print(before, len(inside), sorted(set(inside)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    before, libraries, threads = out.stdout.split(maxsplit=2)
    assert int(libraries) > int(before)  # scipy's BLAS is a second library
    assert threads.strip() == "[1]"


def test_each_pair_is_computed_once_its_two_samples_are_in_and_a_later_failed_read_still_fails(tmp_path, monkeypatch):
    """A round's samples are read in the order its pairs need them, and a pair is computed as soon as its two are
    in: the first pair's agreement comes before the last sample has arrived. A read that fails still fails the
    comparison as it did when every sample was read first, also when the first pair settles it (derived)."""
    import threading

    from scanner.provenance.model import LiveModel

    root = _models(tmp_path)
    real_rows = LiveModel.token_rows
    last_read_may_end = threading.Event()
    events: list[str] = []

    def slow_last(self, matrix, tokens, dims=None):
        # the suspect's last matrix: the last sample a round reads (pairs in order: first with first, ...)
        if self is last_view[0] and matrix.name == self.structure.token_matrices[-1].name:
            assert last_read_may_end.wait(30)
            events.append("last sample")
        return real_rows(self, matrix, tokens, dims)

    real_agreement = compare.agreement

    def agreement(*args):
        events.append("agreement")
        last_read_may_end.set()  # only now may the last sample arrive
        return real_agreement(*args)

    last_view: list[object] = [None]
    real_init = compare.Comparator.__init__

    def init(self, suspect, reference, *a, **k):
        last_view[0] = suspect
        real_init(self, suspect, reference, *a, **k)

    monkeypatch.setattr(LiveModel, "token_rows", slow_last)
    monkeypatch.setattr(compare, "agreement", agreement)
    monkeypatch.setattr(compare.Comparator, "__init__", init)
    other = compare.compare_paths(root / "other", root / "base")
    assert other.verdict == "independent"
    assert events[:2] == ["agreement", "last sample"]  # the first pair did not wait for the last sample

    def failing(self, matrix, tokens, dims=None):
        if self is last_view[0] and matrix.name == self.structure.token_matrices[-1].name:
            raise OSError("connection reset reading the head")
        return real_rows(self, matrix, tokens, dims)

    monkeypatch.setattr(LiveModel, "token_rows", failing)
    for suspect in ("copy", "other"):
        v = compare.compare_paths(root / suspect, root / "base")
        assert v.verdict == "inconclusive" and "connection reset reading the head" in v.reason
