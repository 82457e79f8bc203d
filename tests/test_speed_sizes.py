"""Issue 26 (speed at real model sizes): the faster kernel breaks ties as its definition does, the comparison's
rounds give the same judgement on one thread or two, and start-up imports only what a command needs."""

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
