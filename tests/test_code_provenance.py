"""Code provenance: copied modelling code despite renaming, reordering and reformatting (issue #16).

Real inputs: the Llama3-V projection module and the MiniCPM-V resampler it was copied from
(shipped with the Llama3-V example; sources in examples/llama3-v-style/EXAMPLE.md), and real Apache-headered modules of the installed huggingface_hub package.
"""

from __future__ import annotations

from pathlib import Path

import huggingface_hub
import jinja2
import pytest
from helpers import assert_fires, assert_quiet, scan
from obfuscate import obfuscate

from scanner.provenance import code
from scanner.provenance.index import Index

EXAMPLES = Path(__file__).parent.parent / "examples"
HUB = Path(huggingface_hub.__file__).parent
UPSTREAM = EXAMPLES / "upstreams" / "minicpm-llama3-v-2_5" / "resampler.py"
LLAMA3V = EXAMPLES / "llama3-v-style" / "projection.py"


def _repo(root: Path, files: dict[str, str], card: str) -> Path:
    root.mkdir(parents=True)
    (root / "README.md").write_text(card)
    for name, text in files.items():
        (root / name).write_text(text)
    return root


@pytest.fixture
def index(tmp_path):
    idx = Index(tmp_path / "index.sqlite")
    store = code.CodeStore(idx.db)
    store.add("openbmb/MiniCPM-V", {"resampler.py": UPSTREAM.read_text()}, "apache-2.0")
    store.add("huggingface/huggingface_hub", {"_http.py": (HUB / "utils" / "_http.py").read_text()}, None)
    yield idx
    idx.close()


def test_real_llama3v_projection_is_a_copy_of_minicpm_v_resampler():
    s, u = LLAMA3V.read_text(), UPSTREAM.read_text()
    m = code.compare(
        code.fingerprint("projection.py", s), code.fingerprint("resampler.py", u), "minicpm", suspect_source=s
    )
    assert m.copied, (m.score, m.api_similarity, m.matched)
    # the copied stretches point at the right lines: Llama3-V's forward() ~ the resampler's forward()
    assert any(60 <= r.suspect_lines[0] <= 80 and 120 <= r.upstream_lines[0] <= 160 for r in m.regions), m.regions


def test_obfuscated_copy_of_real_module_is_found_with_its_lines():
    src = (HUB / "utils" / "_http.py").read_text()
    disguised = obfuscate(src, seed=7)
    assert "def get_session" not in disguised  # renamed for real
    m = code.compare(
        code.fingerprint("net.py", disguised), code.fingerprint("_http.py", src), "hub", suspect_source=disguised
    )
    assert m.copied and m.score > 0.5, (m.score, m.matched)
    assert m.license == "apache-2.0"  # read from the upstream file's own header
    assert m.notices_missing == ("Copyright 2022-present, the HuggingFace Inc. team.",)


def test_independent_real_modules_are_not_copies():
    files = [
        HUB / "utils" / "_http.py",
        HUB / "_commit_api.py",
        HUB / "utils" / "_validators.py",
        Path(jinja2.__file__).parent / "lexer.py",
        Path(jinja2.__file__).parent / "compiler.py",
        UPSTREAM,
    ]
    fps = [code.fingerprint(p.name, p.read_text()) for p in files]
    for a in fps:
        for b in fps:
            if a is not b:
                m = code.compare(a, b, b.path)
                assert not m.copied, (a.path, b.path, m.score, m.api_similarity, m.matched)


def test_copied_from_blocks_are_not_evidence():
    body = (HUB / "utils" / "_validators.py").read_text()
    # a file whose only shared code is a block transformers-style marked as copied is not a copy
    marked = "import os\n\n\n# Copied from huggingface_hub.utils._validators\n" + body.split("\n\n\n", 1)[1]
    plain = "import os\n\n\n" + body.split("\n\n\n", 1)[1]
    upstream = code.fingerprint("_validators.py", body)
    assert code.compare(code.fingerprint("a.py", plain), upstream, "u").copied
    marked_fp = code.fingerprint("a.py", marked.replace("\ndef ", "\n# Copied from huggingface_hub.x\ndef "))
    assert code.compare(marked_fp, upstream, "u").matched < code.MIN_MATCHED


def test_unparsable_and_huge_files_are_fingerprinted_within_bounds():
    broken = UPSTREAM.read_text() + "\n    def (((\n"
    fp = code.fingerprint("broken.py", broken)
    assert fp.hashes
    assert fp.error is None or fp.error.startswith("tokenizer")
    huge = code.fingerprint("huge.py", "x = 1\n" * 400_000)
    assert huge.error and "first" in huge.error
    assert code.fingerprint("empty.py", "").hashes == ()


def test_fingerprint_round_trips_through_json():
    fp = code.fingerprint("resampler.py", UPSTREAM.read_text())
    assert code.CodeFingerprint.from_json(fp.to_json()) == fp


# -- the rules, end to end through scan --------------------------------------------------------------------------
def test_undeclared_copy_fires(tmp_path, index):
    repo = _repo(tmp_path / "llama3v", {"projection.py": LLAMA3V.read_text()}, "---\nlicense: mit\n---\n# Llama3-V\n")
    hit = assert_fires(scan(repo, index=index), "code.copied_undeclared")[0]
    assert hit.evidence["upstream"] == "openbmb/MiniCPM-V" and hit.path == "projection.py"
    assert hit.evidence["regions"] and hit.line == hit.evidence["regions"][0]["lines"][0]


def test_declared_upstream_is_quiet(tmp_path, index):
    card = "---\nlicense: apache-2.0\n---\n# Vision model\nThe resampler is taken from openbmb/MiniCPM-V.\n"
    repo = _repo(tmp_path / "credited", {"projection.py": LLAMA3V.read_text()}, card)
    assert_quiet(scan(repo, index=index), "code.copied_undeclared")


def test_independent_code_is_quiet(tmp_path, index):
    repo = _repo(
        tmp_path / "own",
        {"lexer.py": (Path(jinja2.__file__).parent / "lexer.py").read_text()},
        "---\nlicense: mit\n---\n# Mine\n",
    )
    report = scan(repo, index=index)
    assert_quiet(report, "code.copied_undeclared")
    assert_quiet(report, "code.notice_removed")


def test_removed_notice_fires_and_kept_notice_is_quiet(tmp_path, index):
    src = (HUB / "utils" / "_http.py").read_text()
    card = "---\nlicense: apache-2.0\n---\n# Client\nBuilt on huggingface/huggingface_hub.\n"
    stripped = _repo(tmp_path / "stripped", {"net.py": obfuscate(src, seed=3)}, card)
    hit = assert_fires(scan(stripped, index=index), "code.notice_removed")[0]
    assert "HuggingFace Inc. team" in hit.message
    header = src.split('"""', 1)[0]  # the upstream's copyright and licence comment lines, kept
    kept = _repo(tmp_path / "kept", {"net.py": header + obfuscate(src, seed=3)}, card)
    report = scan(kept, index=index)
    assert_quiet(report, "code.notice_removed")
    assert_quiet(report, "code.copied_undeclared")  # the card credits the upstream


def test_without_an_index_no_code_rule_runs(tmp_path):
    repo = _repo(tmp_path / "llama3v", {"projection.py": LLAMA3V.read_text()}, "---\nlicense: mit\n---\n# Llama3-V\n")
    report = scan(repo)
    assert_quiet(report, "code.copied_undeclared")
