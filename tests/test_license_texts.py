"""Licence texts are found by content, not by file name (issue #20 point 2): any top-level text file, the usual
LICENSES/ and legal/ folders, and a whole text inside README.md count as a copy; a text cut short is reported as
such, not taken for the licence.

The Tongyi Qianwen RESEARCH LICENSE AGREEMENT lines used here are its title, release-date line and the phrase of its
last clause as recorded in rules/licenses.yaml (QwenLM/Qwen "Tongyi Qianwen RESEARCH LICENSE AGREEMENT", commit
e8e15962); the Qwen1.5-0.5B-Chat front matter is that card's (YinanWusoymilk/hf-readme
training_and_application/readme_files/Qwen_Qwen1.5-0.5B-Chat.md).
"""

from __future__ import annotations

import pytest

from scanner.evidence.licenses import detect_licenses, is_use_policy
from scanner.knowledge import knowledge_base
from scanner.policy import Policy
from scanner.sources.interface import is_other_text, is_text_file
from scanner.sources.local import LocalSource
from tests.helpers import (
    GEMMA2_2B_CONFIG,
    GEMMA_NOTICE,
    GEMMA_TERMS,
    LLAMA3_8B_CONFIG,
    LLAMA3_LICENSE,
    assert_fires,
    assert_quiet,
    make_repo,
    scan,
)

QWEN_RESEARCH_HEAD = "Tongyi Qianwen RESEARCH LICENSE AGREEMENT\n\nTongyi Qianwen Release Date: November 30, 2023\n\n"
QWEN_RESEARCH_TAIL = (
    "9. Other Terms and Conditions.\n    b. We shall not be bound by any additional or different terms or conditions "
    "communicated by You unless expressly agreed.\n"
)
QWEN_CHAT_CARD = {
    "license": "other",
    "license_name": "tongyi-qianwen-research",
    "license_link": "https://huggingface.co/Qwen/Qwen1.5-0.5B-Chat/blob/main/LICENSE",
    "base_model": "Qwen/Qwen1.5-0.5B-Chat",
}
QWEN_NOTICE = (
    "Tongyi Qianwen is licensed under the Tongyi Qianwen RESEARCH LICENSE AGREEMENT, Copyright (c) Alibaba Cloud. "
    "All Rights Reserved.\n"
)
GEMMA_CARD = {"license": "gemma", "base_model": "google/gemma-2-2b"}


@pytest.mark.parametrize(
    ("path", "read"),
    [
        ("GEMMA_TERMS_OF_USE.txt", True),
        ("Tongyi Qianwen RESEARCH LICENSE AGREEMENT", True),
        ("LICENSES/LLAMA3.txt", True),
        ("legal/terms.md", True),
        ("docs/terms.md", False),  # not a licence folder
        ("LICENSES/deep/x.txt", False),
        ("config.json", False),
        (".gitattributes", False),
    ],
)
def test_which_other_files_are_read(path, read):
    assert is_other_text(path) is read
    assert not is_text_file(path) or not read


def test_licence_under_any_top_level_name_is_a_copy(tmp_path):
    repo = make_repo(
        tmp_path,
        card=GEMMA_CARD,
        config=GEMMA2_2B_CONFIG,
        files={"GEMMA_TERMS_OF_USE.txt": GEMMA_TERMS, "NOTICE": GEMMA_NOTICE},
    )
    report = scan(repo)
    assert_quiet(report, "license.copy_missing")
    assert_quiet(report, "license.use_restrictions_missing")  # the Gemma terms carry §3.2


def test_licence_in_a_licenses_folder_is_a_copy(tmp_path):
    repo = make_repo(
        tmp_path,
        card=QWEN_CHAT_CARD,
        files={
            "LICENSES/Tongyi-Qianwen-Research.txt": QWEN_RESEARCH_HEAD + "…\n" + QWEN_RESEARCH_TAIL,
            "NOTICE": QWEN_NOTICE,
        },
    )
    assert_quiet(scan(repo), "license.copy_missing")


def test_without_any_copy_the_duty_fires(tmp_path):
    repo = make_repo(tmp_path, card=QWEN_CHAT_CARD, files={"NOTICE": QWEN_NOTICE, "TRAINING.md": "# How we trained\n"})
    hit = assert_fires(scan(repo), "license.copy_missing")[0]
    assert "no file here carries its text" in hit.message


def test_a_text_cut_short_is_reported_as_such(tmp_path):
    repo = make_repo(
        tmp_path, card=QWEN_CHAT_CARD, files={"LICENSE": QWEN_RESEARCH_HEAD + "1. Definitions\n", "NOTICE": QWEN_NOTICE}
    )
    hit = assert_fires(scan(repo), "license.copy_missing")[0]
    assert "LICENSE holds only part of its text" in hit.message and hit.evidence["partial_copy"] == "LICENSE"
    snap = LocalSource(str(repo)).snapshot()
    (det,) = detect_licenses(snap, knowledge_base())
    assert det.license.id == "tongyi-qianwen-research" and not det.complete


def test_a_notice_that_names_the_terms_is_no_partial_copy(tmp_path):
    """The Gemma NOTICE names "Gemma Terms of Use" (the terms' title): one phrase in a file not named like a
    licence is a mention, not a truncated copy."""
    repo = make_repo(tmp_path, card=GEMMA_CARD, config=GEMMA2_2B_CONFIG, files={"NOTICE": GEMMA_NOTICE})
    snap = LocalSource(str(repo)).snapshot()
    assert detect_licenses(snap, knowledge_base()) == []
    assert "no file here carries its text" in assert_fires(scan(repo), "license.copy_missing")[0].message


def test_full_licence_text_inside_the_card_counts_as_a_copy(tmp_path):
    body = "# My Llama 3 fine-tune\n\nBuilt with Meta Llama 3\n\n## License\n\n" + LLAMA3_LICENSE
    repo = make_repo(
        tmp_path,
        "Llama-3-acme-8B",
        card={"license": "llama3", "base_model": "meta-llama/Meta-Llama-3-8B"},
        body=body,
        config=LLAMA3_8B_CONFIG,
    )
    report = scan(repo, Policy(publisher="acme"))
    assert_quiet(report, "license.copy_missing")
    assert_quiet(report, "license.use_restrictions_missing")


def test_a_card_that_only_names_the_licence_is_no_copy(tmp_path):
    body = "# My Llama 3 fine-tune\n\nLicensed under the META LLAMA 3 COMMUNITY LICENSE AGREEMENT.\n"
    repo = make_repo(
        tmp_path,
        "Llama-3-acme-8B",
        card={"license": "llama3", "base_model": "meta-llama/Meta-Llama-3-8B"},
        body=body,
        config=LLAMA3_8B_CONFIG,
    )
    assert_fires(scan(repo, Policy(publisher="acme")), "license.copy_missing")


def test_a_card_licence_text_does_not_stand_for_a_licence_declaration(tmp_path):
    repo = make_repo(tmp_path, card=None, files={"README.md": "# x\n\n" + LLAMA3_LICENSE})
    assert_fires(scan(repo), "license.missing")


@pytest.mark.parametrize(
    ("path", "text", "policy"),
    [
        ("USE_POLICY.md", "anything", True),
        ("LLAMA_3_USE_POLICY.md", "anything", True),
        ("llama3-acceptable-use.txt", "# Meta Llama 3 Acceptable Use Policy\n\nMeta is committed to …", True),
        ("NOTES.md", "# Release notes\n\nWe follow an acceptable use policy.", False),
        ("README.md", "# Acceptable Use Policy\n", False),
    ],
)
def test_use_policies_by_name_or_title(path, text, policy):
    assert is_use_policy(path, text) is policy


def test_use_policy_under_another_name_passes_the_restrictions_on(tmp_path):
    card = {"license": "llama3", "base_model": "meta-llama/Meta-Llama-3-8B"}
    aup = "# Meta Llama 3 Acceptable Use Policy\n\nMeta is committed to promoting safe and fair use …\n"
    with_policy = make_repo(tmp_path, "a", card=card, config=LLAMA3_8B_CONFIG, files={"llama3-acceptable-use.txt": aup})
    assert_quiet(scan(with_policy, Policy(publisher="acme")), "license.use_restrictions_missing")
    without = make_repo(tmp_path, "b", card=card, config=LLAMA3_8B_CONFIG)
    assert_fires(scan(without, Policy(publisher="acme")), "license.use_restrictions_missing")


def test_other_texts_are_bounded_and_never_searched_for_phrases(tmp_path):
    files = {f"note{i}.md": "Built with Meta Llama 3\n" for i in range(40)}
    repo = make_repo(
        tmp_path,
        "Llama-3-x",
        card={"license": "llama3", "base_model": "meta-llama/Meta-Llama-3-8B"},
        config=LLAMA3_8B_CONFIG,
        files=files,
    )
    snap = LocalSource(str(repo)).snapshot()
    assert len(snap.other_texts) == 32
    # a phrase in a random note is not the prominent display the licence asks for
    assert_fires(scan(repo, Policy(publisher="acme")), "attribution.phrase_missing")


def test_the_examples_descriptions_are_read_as_candidates_and_are_no_licence():
    """EXAMPLE.md (each example's description) is a top-level text file like any other: read, recognised as no
    licence text, and never searched for phrases or notices."""
    from tests.helpers import REPO_ROOT

    for folder in sorted((REPO_ROOT / "examples").iterdir()):
        if not (folder / "EXAMPLE.md").is_file():
            continue
        snap = LocalSource(str(folder), hash_weights=False).snapshot()
        assert "EXAMPLE.md" in snap.other_texts and "EXAMPLE.md" not in snap.texts
        assert all(d.path != "EXAMPLE.md" for d in detect_licenses(snap, knowledge_base())), folder.name


def test_cached_snapshots_keep_the_other_texts():
    """A cached Hub/GitHub snapshot is restored with the texts read for licences; a record written before they were
    kept is not current (re-read, not reused without them)."""
    from scanner.sources.cache import record_is_current, snapshot_from_record, snapshot_to_record
    from scanner.sources.interface import Snapshot

    snap = Snapshot("hf:acme/x", "hf", "acme/x", revision="a" * 40)
    snap.keep_text("GEMMA_TERMS_OF_USE.txt", GEMMA_TERMS)
    snap.keep_text("README.md", "# x\n")
    record = snapshot_to_record(snap)
    assert record_is_current(record)
    back = snapshot_from_record("hf:acme/x", "hf", record)
    assert back.other_texts == {"GEMMA_TERMS_OF_USE.txt": GEMMA_TERMS} and back.texts == {"README.md": "# x\n"}
    old = {k: v for k, v in record.items() if k != "other_texts"}
    assert not record_is_current(old)
