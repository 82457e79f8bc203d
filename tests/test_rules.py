"""Every rule in rules/catalogue.yaml: one repo where it fires and one where it must not.

Each test builds a tiny repo in tmp_path and scans it through the real pipeline (`scan_target`). Firing tests call
`assert_fires(report, "<rule id>")`, quiet tests `assert_quiet(report, "<rule id>")` with the id as a literal:
`test_every_rule_is_covered` reads this file and fails when a catalogue rule has no firing or no quiet test.
"""

from __future__ import annotations

import ast
import datetime as dt
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import (
    APACHE_TEXT,
    CUSTOM_CONFIG,
    GEMMA2_2B_CONFIG,
    GEMMA_NOTICE,
    GEMMA_TERMS,
    LLAMA3_8B_CONFIG,
    LLAMA3_LICENSE,
    LLAMA3_NOTICE,
    LLAMA3_PHRASE,
    MINICPM_TOKENS,
    MINICPM_V_CONFIG,
    MIT_TEXT,
    SAFE_PICKLE,
    UNSAFE_PICKLE,
    assert_fires,
    assert_quiet,
    disguise,
    findings_of,
    make_repo,
    noised,
    pickle_global,
    pickle_stack_global,
    register,
    safetensors_raw,
    scan,
    tiny_llm,
    torch_zip,
)

from scanner.findings import Severity
from scanner.knowledge import catalogue
from scanner.policy import Policy, Suppression, load_policy

# Rules that need a remote source to fire: covered by the Hub / GitHub source tests, not here.
REMOTE_ONLY = {"source.unreachable": "a fetch that fails after retries (network fault, server error, timeout)"}

LLAMA3_BASE = "meta-llama/Meta-Llama-3-8B"
# A fully compliant Llama 3 derivative's card and files; tests remove one piece at a time.
LLAMA3_CARD = {"license": "llama3", "base_model": LLAMA3_BASE, "model_name": "Llama-3-8B-Helper"}
LLAMA3_BODY = f"# Llama-3-8B-Helper\n\n{LLAMA3_PHRASE}.\n"
LLAMA3_FILES = {
    "LICENSE": LLAMA3_LICENSE,
    "NOTICE": LLAMA3_NOTICE,
    "USE_POLICY.md": "# Meta Llama 3 Acceptable Use Policy\n",
}


def llama3_repo(tmp_path: Path, drop: str | None = None, **overrides) -> Path:
    card = dict(LLAMA3_CARD, **overrides.pop("card_overrides", {}))
    files = {k: v for k, v in LLAMA3_FILES.items() if k != drop}
    files.update(overrides.pop("files", {}))
    body = LLAMA3_BODY if drop != "phrase" else "# Llama-3-8B-Helper\n"
    return make_repo(tmp_path, card=card, body=body, config=LLAMA3_8B_CONFIG, files=files, **overrides)


def test_compliant_llama3_derivative_has_nothing_above_info(tmp_path):
    report = scan(llama3_repo(tmp_path))
    assert [f.rule for f in report.findings if f.severity > Severity.info] == []


LLAMA3_TOKENS = {
    "<|begin_of_text|>": 128000,
    "<|end_of_text|>": 128001,
    "<|start_header_id|>": 128006,
    "<|end_header_id|>": 128007,
    "<|eot_id|>": 128009,
}


def test_compliant_llama3_derivative_with_llama3_tokenizer_has_nothing_above_info(tmp_path):
    # Every Llama 3.x upstream shares <|begin_of_text|>=128000: a declared Llama 3 base must explain them all,
    # not drag Llama 3.1 / 3.2 / 3.3 licences into the lineage.
    report = scan(llama3_repo(tmp_path, tokenizer=LLAMA3_TOKENS))
    assert [f.rule for f in report.findings if f.severity > Severity.info] == []


def test_family_tokens_give_one_tokenizer_finding(tmp_path):
    report = scan(make_repo(tmp_path, card={"license": "apache-2.0"}, tokenizer=LLAMA3_TOKENS))
    assert len(findings_of(report, "tokenizer.upstream_special_tokens")) == 1
    bases = [f.evidence["base"] for f in findings_of(report, "license.incompatible")]
    assert len(bases) == len(set(bases)) == 1


# == license.* =====================================================================================================
def test_license_missing_fires(tmp_path):
    report = scan(make_repo(tmp_path, card={"pipeline_tag": "text-generation"}, config=CUSTOM_CONFIG))
    assert_fires(report, "license.missing")


def test_license_missing_quiet_with_card_licence(tmp_path):
    assert_quiet(scan(make_repo(tmp_path, card={"license": "apache-2.0"})), "license.missing")


def test_license_missing_quiet_with_only_a_license_file(tmp_path):
    report = scan(make_repo(tmp_path, card={"tags": ["x"]}, files={"LICENSE": MIT_TEXT}))
    assert_quiet(report, "license.missing")


def test_license_unknown_fires(tmp_path):
    report = scan(make_repo(tmp_path, card={"license": "acme-open-weights-1.0"}))
    assert assert_fires(report, "license.unknown")[0].evidence["license"] == "acme-open-weights-1.0"


def test_license_unknown_fires_for_unknown_license_name(tmp_path):
    report = scan(
        make_repo(tmp_path, card={"license": "other", "license_name": "acme-license", "license_link": "LICENSE"})
    )
    assert_fires(report, "license.unknown")
    assert_quiet(report, "license.other_unnamed")


def test_license_unknown_quiet_for_known_ids(tmp_path):
    assert_quiet(scan(make_repo(tmp_path, "a", card={"license": "MIT"})), "license.unknown")
    assert_quiet(
        scan(
            make_repo(
                tmp_path,
                "b",
                card={"license": "other", "license_name": "minicpm-model-license", "license_link": "LICENSE"},
            )
        ),
        "license.unknown",
    )


def test_license_other_unnamed_fires(tmp_path):
    f = assert_fires(scan(make_repo(tmp_path, card={"license": "other"})), "license.other_unnamed")[0]
    assert set(f.evidence["missing"]) == {"license_name", "license_link"}


def test_license_other_unnamed_fires_when_only_link_missing(tmp_path):
    report = scan(make_repo(tmp_path, card={"license": "other", "license_name": "qwen"}))
    assert assert_fires(report, "license.other_unnamed")[0].evidence["missing"] == ["license_link"]


def test_license_other_unnamed_quiet_with_name_and_link(tmp_path):
    report = scan(make_repo(tmp_path, card={"license": "other", "license_name": "qwen", "license_link": "LICENSE"}))
    assert_quiet(report, "license.other_unnamed")


def test_license_card_file_mismatch_fires(tmp_path):
    report = scan(make_repo(tmp_path, card={"license": "mit"}, files={"LICENSE": APACHE_TEXT}))
    f = assert_fires(report, "license.card_file_mismatch")[0]
    assert (f.evidence["card_license"], f.evidence["file_license"]) == ("mit", "apache-2.0")


def test_license_card_file_mismatch_quiet_when_they_agree(tmp_path):
    report = scan(make_repo(tmp_path, card={"license": "apache-2.0"}, files={"LICENSE": APACHE_TEXT}))
    assert_quiet(report, "license.card_file_mismatch")


def test_license_card_file_mismatch_quiet_for_unrecognised_file(tmp_path):
    report = scan(make_repo(tmp_path, card={"license": "mit"}, files={"LICENSE": "All rights reserved, ACME."}))
    assert_quiet(report, "license.card_file_mismatch")


def test_license_incompatible_fires_for_gemma_as_apache(tmp_path):
    repo = make_repo(
        tmp_path, card={"license": "apache-2.0", "base_model": "google/gemma-2-2b"}, config=GEMMA2_2B_CONFIG
    )
    f = assert_fires(scan(repo), "license.incompatible")[0]
    assert f.evidence["base_license"] == "gemma" and f.evidence["license"] == "apache-2.0"


def test_license_incompatible_fires_for_noncommercial_base(tmp_path):
    repo = make_repo(tmp_path, card={"license": "mit", "base_model": "Qwen/Qwen2.5-3B"})
    f = assert_fires(scan(repo), "license.incompatible")[0]
    assert "non-commercial" in f.message


def test_license_incompatible_fires_for_undeclared_base_found_by_config(tmp_path):
    repo = make_repo(tmp_path, card={"license": "apache-2.0"}, config=LLAMA3_8B_CONFIG)
    f = assert_fires(scan(repo), "license.incompatible")[0]
    assert f.evidence["known_from"] == "config"


def test_license_incompatible_quiet_for_same_licence(tmp_path):
    repo = make_repo(tmp_path, card={"license": "gemma", "base_model": "google/gemma-2-2b"}, config=GEMMA2_2B_CONFIG)
    assert_quiet(scan(repo), "license.incompatible")


def test_license_incompatible_quiet_for_permissive_base(tmp_path):
    repo = make_repo(tmp_path, card={"license": "mit", "base_model": "mistralai/Mistral-7B-v0.1"})
    assert_quiet(scan(repo), "license.incompatible")


def test_license_copy_missing_fires(tmp_path):
    f = assert_fires(scan(llama3_repo(tmp_path, drop="LICENSE")), "license.copy_missing")[0]
    assert f.evidence["base_license"] == "llama3"


def test_license_copy_missing_quiet_when_text_shipped_under_another_name(tmp_path):
    repo = llama3_repo(tmp_path, drop="LICENSE", files={"LICENSE-llama3.txt": LLAMA3_LICENSE})
    assert_quiet(scan(repo), "license.copy_missing")


def test_license_notice_missing_fires(tmp_path):
    f = assert_fires(scan(llama3_repo(tmp_path, drop="NOTICE")), "license.notice_missing")[0]
    assert "Meta Llama 3 is licensed under" in f.evidence["notice"]


def test_license_notice_missing_quiet_with_notice(tmp_path):
    assert_quiet(scan(llama3_repo(tmp_path)), "license.notice_missing")


def test_license_use_restrictions_missing_fires(tmp_path):
    repo = make_repo(
        tmp_path, card={"license": "gemma", "base_model": "google/gemma-2-2b"}, files={"NOTICE": GEMMA_NOTICE}
    )
    assert_fires(scan(repo), "license.use_restrictions_missing")


def test_license_use_restrictions_missing_quiet_with_use_policy(tmp_path):
    repo = make_repo(
        tmp_path,
        card={"license": "gemma", "base_model": "google/gemma-2-2b"},
        files={"NOTICE": GEMMA_NOTICE, "USE_POLICY.md": "# Gemma Prohibited Use Policy\n"},
    )
    assert_quiet(scan(repo), "license.use_restrictions_missing")


def test_license_use_restrictions_missing_quiet_with_base_licence_text(tmp_path):
    repo = make_repo(
        tmp_path,
        card={"license": "gemma", "base_model": "google/gemma-2-2b"},
        files={"NOTICE": GEMMA_NOTICE, "LICENSE": GEMMA_TERMS},
    )
    report = scan(repo)
    assert_quiet(report, "license.use_restrictions_missing")
    assert_quiet(report, "license.copy_missing")


def test_license_denied_fires(tmp_path):
    report = scan(make_repo(tmp_path, card={"license": "agpl-3.0"}), Policy(deny=["agpl-3.0"]))
    assert_fires(report, "license.denied")
    assert_quiet(report, "license.not_allowed")  # denied wins; one finding, not two


def test_license_denied_fires_for_licence_file_without_card_licence(tmp_path):
    report = scan(make_repo(tmp_path, card={"tags": ["x"]}, files={"LICENSE": MIT_TEXT}), Policy(deny=["mit"]))
    assert_fires(report, "license.denied")


def test_license_denied_quiet_for_other_licences(tmp_path):
    assert_quiet(scan(make_repo(tmp_path, card={"license": "mit"}), Policy(deny=["agpl-3.0"])), "license.denied")


def test_license_not_allowed_fires(tmp_path):
    report = scan(make_repo(tmp_path, card={"license": "mit"}), Policy(allow=["apache-2.0"]))
    assert_fires(report, "license.not_allowed")


def test_license_not_allowed_quiet_when_allowed_by_spdx_id(tmp_path):
    # the allow list may use the SPDX id; the policy loader lower-cases it
    assert_quiet(
        scan(make_repo(tmp_path, card={"license": "apache-2.0"}), Policy(allow=["apache-2.0"])), "license.not_allowed"
    )
    assert_quiet(scan(make_repo(tmp_path, "b", card={"license": "mit"}), Policy(allow=["mit"])), "license.not_allowed")


def test_license_not_allowed_quiet_without_allow_list(tmp_path):
    assert_quiet(scan(make_repo(tmp_path, card={"license": "mit"}), Policy()), "license.not_allowed")


# == card.* =======================================================================================================
def test_card_missing_fires(tmp_path):
    assert_fires(scan(make_repo(tmp_path, config=CUSTOM_CONFIG)), "card.missing")


def test_card_missing_quiet_with_readme(tmp_path):
    assert_quiet(scan(make_repo(tmp_path, card={"license": "mit"})), "card.missing")


def test_card_malformed_fires(tmp_path):
    card = "---\nlicense: mit\nbase_model: [unclosed\n---\n\n# Model\n"
    f = assert_fires(scan(make_repo(tmp_path, card=card)), "card.malformed")[0]
    assert f.path == "README.md"


def test_card_malformed_fires_for_non_mapping_front_matter(tmp_path):
    card = "---\n- just\n- a list\n---\n\n# Model\n"
    assert_fires(scan(make_repo(tmp_path, card=card)), "card.malformed")


def test_card_malformed_quiet_for_valid_or_absent_front_matter(tmp_path):
    assert_quiet(scan(make_repo(tmp_path, "a", card={"license": "mit"})), "card.malformed")
    assert_quiet(scan(make_repo(tmp_path, "b", card="# Just a heading\n\nNo metadata at all.\n")), "card.malformed")


def test_card_base_model_undeclared_fires(tmp_path):
    repo = make_repo(tmp_path, card={"license": "llama3"}, config=LLAMA3_8B_CONFIG)
    f = assert_fires(scan(repo), "card.base_model_undeclared")[0]
    assert LLAMA3_BASE in f.evidence["upstreams"]


def test_card_base_model_undeclared_fires_for_minicpm_v_signature(tmp_path):
    repo = make_repo(tmp_path, card={"license": "apache-2.0"}, config=MINICPM_V_CONFIG)
    f = assert_fires(scan(repo), "card.base_model_undeclared")[0]
    assert f.evidence["upstreams"] == ["openbmb/MiniCPM-Llama3-V-2_5"]  # the most specific signature wins


def test_card_base_model_undeclared_quiet_when_declared(tmp_path):
    assert_quiet(scan(llama3_repo(tmp_path)), "card.base_model_undeclared")


def test_card_base_model_undeclared_quiet_when_one_key_differs(tmp_path):
    repo = make_repo(tmp_path, card={"license": "apache-2.0"}, config=dict(LLAMA3_8B_CONFIG, num_hidden_layers=24))
    assert_quiet(scan(repo), "card.base_model_undeclared")


def test_card_base_model_mismatch_fires(tmp_path):
    repo = make_repo(
        tmp_path, card={"license": "apache-2.0", "base_model": "mistralai/Mistral-7B-v0.1"}, config=LLAMA3_8B_CONFIG
    )
    f = assert_fires(scan(repo), "card.base_model_mismatch")[0]
    assert f.evidence["matches"] == LLAMA3_BASE


def test_card_base_model_mismatch_quiet_for_right_base_or_its_instruct_variant(tmp_path):
    assert_quiet(scan(llama3_repo(tmp_path)), "card.base_model_mismatch")
    repo = llama3_repo(tmp_path / "b", card_overrides={"base_model": "meta-llama/Meta-Llama-3-8B-Instruct"})
    assert_quiet(scan(repo), "card.base_model_mismatch")


def test_card_base_model_unverified_fires(tmp_path):
    repo = make_repo(tmp_path, card={"license": "apache-2.0", "base_model": "acme-labs/acme-base-1b"})
    f = assert_fires(scan(repo), "card.base_model_unverified")[0]
    assert f.severity == Severity.info and f.evidence["base_model"] == "acme-labs/acme-base-1b"


def test_card_base_model_unverified_quiet_for_known_base(tmp_path):
    assert_quiet(scan(llama3_repo(tmp_path)), "card.base_model_unverified")


# == attribution.* =================================================================================================
def test_attribution_phrase_missing_fires(tmp_path):
    f = assert_fires(scan(llama3_repo(tmp_path, drop="phrase")), "attribution.phrase_missing")[0]
    assert f.evidence["phrase"] == LLAMA3_PHRASE


def test_attribution_phrase_missing_quiet_in_any_case_or_spacing(tmp_path):
    repo = make_repo(tmp_path, card=LLAMA3_CARD, body="# Helper\n\nbuilt   with\nMETA llama 3\n", files=LLAMA3_FILES)
    assert_quiet(scan(repo), "attribution.phrase_missing")


def test_attribution_naming_fires(tmp_path):
    repo = llama3_repo(tmp_path, card_overrides={"model_name": "SupportBot-Llama-3-8B"})  # contains, not prefix
    f = assert_fires(scan(repo), "attribution.naming")[0]
    assert f.evidence["required"] == "Llama 3"


def test_attribution_naming_quiet_for_compliant_names(tmp_path):
    for i, name in enumerate(["Llama-3-8B-Helper", "llama3_helper", "Llama 3 Helper"]):
        assert_quiet(scan(llama3_repo(tmp_path / str(i), card_overrides={"model_name": name})), "attribution.naming")


# == config / tokenizer ============================================================================================
def test_config_upstream_signature_fires_for_declared_base(tmp_path):
    f = assert_fires(scan(llama3_repo(tmp_path)), "config.upstream_signature")[0]
    assert f.severity == Severity.info and f.evidence["upstream"] == LLAMA3_BASE


def test_config_upstream_signature_quiet_for_custom_config(tmp_path):
    repo = make_repo(tmp_path, card={"license": "mit"}, config=CUSTOM_CONFIG)
    assert_quiet(scan(repo), "config.upstream_signature")


def test_tokenizer_upstream_special_tokens_fires(tmp_path):
    repo = make_repo(tmp_path, card={"license": "apache-2.0"}, tokenizer=MINICPM_TOKENS)
    f = assert_fires(scan(repo), "tokenizer.upstream_special_tokens")[0]
    assert f.evidence["upstream"] == "openbmb/MiniCPM-Llama3-V-2_5" and len(f.evidence["tokens"]) == 12


def test_tokenizer_upstream_special_tokens_fires_from_tokenizer_json(tmp_path):
    tj = {"added_tokens": [{"id": i, "content": t, "special": True} for t, i in MINICPM_TOKENS.items()]}
    import json

    repo = make_repo(tmp_path, card={"license": "apache-2.0"}, files={"tokenizer.json": json.dumps(tj)})
    assert_fires(scan(repo), "tokenizer.upstream_special_tokens")


def test_tokenizer_upstream_special_tokens_quiet_when_upstream_declared(tmp_path):
    repo = make_repo(
        tmp_path, card={"license": "minicpm", "base_model": "openbmb/MiniCPM-Llama3-V-2_5"}, tokenizer=MINICPM_TOKENS
    )
    assert_quiet(scan(repo), "tokenizer.upstream_special_tokens")


def test_tokenizer_upstream_special_tokens_quiet_at_other_ids(tmp_path):
    shifted = {t: i + 100 for t, i in MINICPM_TOKENS.items()}
    assert_quiet(
        scan(make_repo(tmp_path, card={"license": "apache-2.0"}, tokenizer=shifted)),
        "tokenizer.upstream_special_tokens",
    )


# == weights.* =====================================================================================================
@pytest.fixture(scope="module")
def upstream_weights():
    return tiny_llm(seed=1)


@pytest.fixture
def llama_index(tmp_path, upstream_weights):
    """An index with the tiny 'Meta-Llama-3-8B' stand-in registered (licence llama3)."""
    up = make_repo(tmp_path / "upstreams", "llama", weights={"model.safetensors": upstream_weights})
    index = register(tmp_path / "index.sqlite", up, LLAMA3_BASE, "llama3")
    yield index, up
    index.close()


def weights_repo(tmp_path, name, tensors=None, copy_from=None, **card):
    repo = make_repo(
        tmp_path,
        name,
        card=card or {"license": "apache-2.0"},
        weights={"model.safetensors": tensors} if tensors is not None else None,
    )
    if copy_from is not None:
        shutil.copyfile(copy_from / "model.safetensors", repo / "model.safetensors")
    return repo


def test_weights_exact_copy_fires(tmp_path, llama_index):
    index, up = llama_index
    report = scan(weights_repo(tmp_path, "copy", copy_from=up), index=index)
    f = assert_fires(report, "weights.exact_copy")[0]
    assert f.severity == Severity.critical and f.evidence["upstream"] == LLAMA3_BASE


def test_weights_exact_copy_fires_for_lfs_pointer_of_the_same_file(tmp_path, llama_index):
    import hashlib

    index, up = llama_index
    data = (up / "model.safetensors").read_bytes()
    pointer = (
        f"version https://git-lfs.github.com/spec/v1\noid sha256:{hashlib.sha256(data).hexdigest()}\nsize {len(data)}\n"
    )
    repo = make_repo(tmp_path, "ptr", card={"license": "mit"}, files={"model.safetensors": pointer})
    assert_fires(scan(repo, index=index), "weights.exact_copy")


def test_weights_exact_copy_quiet_when_declared(tmp_path, llama_index):
    index, up = llama_index
    repo = weights_repo(tmp_path, "copy", copy_from=up, license="llama3", base_model=LLAMA3_BASE)
    report = scan(repo, index=index)
    for rule in (
        "weights.exact_copy",
        "weights.disguised_copy",
        "weights.undeclared_derivative",
        "weights.base_mismatch",
    ):
        assert_quiet(report, rule)


def test_weights_disguised_copy_fires(tmp_path, llama_index, upstream_weights):
    index, _ = llama_index
    report = scan(weights_repo(tmp_path, "disguised", disguise(upstream_weights)), index=index)
    f = assert_fires(report, "weights.disguised_copy")[0]
    assert f.evidence["p_value"] < 1e-8
    assert_quiet(report, "weights.exact_copy")


def test_weights_disguised_copy_fires_for_float16_retyped_copy(tmp_path, llama_index, upstream_weights):
    index, _ = llama_index
    retyped = {k: v.astype(np.float16) for k, v in upstream_weights.items()}
    assert_fires(scan(weights_repo(tmp_path, "fp16", retyped), index=index), "weights.disguised_copy")


def test_weights_disguised_copy_quiet_for_independent_model(tmp_path, llama_index):
    index, _ = llama_index
    report = scan(weights_repo(tmp_path, "indep", tiny_llm(seed=77)), index=index)
    for rule in (
        "weights.exact_copy",
        "weights.disguised_copy",
        "weights.undeclared_derivative",
        "weights.base_mismatch",
    ):
        assert_quiet(report, rule)


def test_weights_undeclared_derivative_fires(tmp_path, llama_index, upstream_weights):
    index, _ = llama_index
    report = scan(weights_repo(tmp_path, "ft", noised(upstream_weights, 0.8, seed=9)), index=index)
    assert_fires(report, "weights.undeclared_derivative")
    assert_quiet(report, "weights.disguised_copy")  # a fine-tune is not a near-copy


def test_weights_undeclared_derivative_quiet_when_declared(tmp_path, llama_index, upstream_weights):
    index, _ = llama_index
    repo = weights_repo(tmp_path, "ft", noised(upstream_weights, 0.8, seed=9), license="llama3", base_model=LLAMA3_BASE)
    assert_quiet(scan(repo, index=index), "weights.undeclared_derivative")


def test_weights_base_mismatch_fires(tmp_path, llama_index, upstream_weights):
    index, _ = llama_index
    repo = weights_repo(
        tmp_path, "wrong", noised(upstream_weights, 0.1), license="apache-2.0", base_model="mistralai/Mistral-7B-v0.1"
    )
    f = assert_fires(scan(repo, index=index), "weights.base_mismatch")[0]
    assert f.evidence["upstream"] == LLAMA3_BASE


def test_weights_base_mismatch_quiet_for_right_base(tmp_path, llama_index, upstream_weights):
    index, _ = llama_index
    repo = weights_repo(tmp_path, "right", noised(upstream_weights, 0.1), license="llama3", base_model=LLAMA3_BASE)
    assert_quiet(scan(repo, index=index), "weights.base_mismatch")


def test_weights_base_mismatch_quiet_for_a_registered_base_the_knowledge_base_does_not_know(tmp_path, upstream_weights):
    up = make_repo(tmp_path / "upstreams", "acme", weights={"model.safetensors": upstream_weights})
    index = register(tmp_path / "acme.sqlite", up, "acme/base-6l", "apache-2.0")
    try:
        repo = weights_repo(
            tmp_path, "ft", noised(upstream_weights, 0.1), license="apache-2.0", base_model="acme/base-6l"
        )
        report = scan(repo, index=index)
    finally:
        index.close()
    for rule in ("weights.base_mismatch", "weights.undeclared_derivative", "weights.disguised_copy"):
        assert_quiet(report, rule)


def test_weights_rules_quiet_without_an_index(tmp_path, upstream_weights):
    """Without an index no derivation is claimed; that nothing was compared is said (weights.not_compared)."""
    report = scan(weights_repo(tmp_path, "x", disguise(upstream_weights)), index=None)
    assert [f.rule for f in report.findings if f.family == "weights"] == ["weights.not_compared"]


# == security.* ====================================================================================================
def test_security_pickle_weights_fires(tmp_path):
    repo = make_repo(tmp_path, card={"license": "mit"}, files={"pytorch_model.bin": torch_zip(SAFE_PICKLE)})
    report = scan(repo)
    assert_fires(report, "security.pickle_weights")
    assert_quiet(report, "security.pickle_unsafe_import")


def test_security_pickle_weights_quiet_for_safetensors(tmp_path):
    repo = make_repo(tmp_path, card={"license": "mit"}, weights={"model.safetensors": tiny_llm(3, layers=1)})
    assert_quiet(scan(repo), "security.pickle_weights")


@pytest.mark.parametrize(
    "payload",
    [
        UNSAFE_PICKLE,
        torch_zip(UNSAFE_PICKLE),
        pickle_stack_global("subprocess", "check_output"),
        pickle_global("builtins", "eval", "1+1"),
        pickle_global("posix", "system", "true"),
    ],
    ids=["global-os-system", "torch-zip", "stack-global-subprocess", "builtins-eval", "posix-system"],
)
def test_security_pickle_unsafe_import_fires(tmp_path, payload):
    repo = make_repo(tmp_path, card={"license": "mit"}, files={"pytorch_model.bin": payload})
    f = assert_fires(scan(repo), "security.pickle_unsafe_import")[0]
    assert f.severity == Severity.critical


def test_security_pickle_unsafe_import_quiet_for_tensor_rebuilding_pickle(tmp_path):
    pkl = (
        b"\x80\x02"
        + b"ccollections\nOrderedDict\n)R"
        + b"ctorch._utils\n_rebuild_tensor_v2\n0"
        + b"cnumpy.core.multiarray\n_reconstruct\n0"
        + b"."
    )
    repo = make_repo(tmp_path, card={"license": "mit"}, files={"pytorch_model.bin": torch_zip(pkl)})
    report = scan(repo)
    assert_quiet(report, "security.pickle_unsafe_import")
    assert_fires(report, "security.pickle_weights")


def test_security_pickle_unverifiable_fires_for_unreadable_archive(tmp_path):
    repo = make_repo(tmp_path, card={"license": "mit"}, files={"pytorch_model.bin": b"PK\x03\x04 not a zip"})
    f = assert_fires(scan(repo), "security.pickle_unverifiable")[0]
    assert "not a readable zip archive" in f.message


def test_security_pickle_unverifiable_quiet_for_complete_or_merely_truncated_pickle(tmp_path):
    """A truncated stream breaks the unpickler where it breaks the analysis: malformed, not unverifiable."""
    repo = make_repo(
        tmp_path,
        card={"license": "mit"},
        files={"pytorch_model.bin": torch_zip(SAFE_PICKLE), "training_args.bin": SAFE_PICKLE[:-3]},
    )
    report = scan(repo)
    assert_quiet(report, "security.pickle_unverifiable")
    assert [f.path for f in findings_of(report, "source.malformed")] == ["training_args.bin"]


def test_security_numpy_object_array_fires(tmp_path):
    from test_unsafe_formats import npy

    repo = make_repo(tmp_path, card={"license": "mit"}, files={"w.npy": npy(np.array(["a", None], dtype=object))})
    assert "allow_pickle=True" in assert_fires(scan(repo), "security.numpy_object_array")[0].message


def test_security_numpy_object_array_quiet_for_numbers(tmp_path):
    from test_unsafe_formats import npy, npz

    repo = make_repo(tmp_path, card={"license": "mit"}, files={"w.npy": npy(np.ones(3)), "v.npz": npz(a=np.ones(2))})
    assert_quiet(scan(repo), "security.numpy_object_array")


def test_security_keras_code_fires_for_lambda_layer(tmp_path):
    from test_unsafe_formats import LAMBDA, dot_keras, keras_model

    repo = make_repo(tmp_path, card={"license": "mit"}, files={"model.keras": dot_keras(keras_model(LAMBDA))})
    assert "Lambda layer" in assert_fires(scan(repo), "security.keras_code")[0].message


def test_security_keras_code_quiet_for_plain_layers(tmp_path):
    from test_unsafe_formats import dot_keras, keras_layer, keras_model

    model = dot_keras(keras_model(keras_layer("Dropout", rate=0.1)))
    assert_quiet(
        scan(make_repo(tmp_path, card={"license": "mit"}, files={"model.keras": model})), "security.keras_code"
    )


def test_security_onnx_external_data_fires_outside_repo(tmp_path):
    from test_unsafe_formats import onnx_model

    repo = make_repo(tmp_path, card={"license": "mit"}, files={"model.onnx": onnx_model("/etc/passwd")})
    assert "/etc/passwd" in assert_fires(scan(repo), "security.onnx_external_data")[0].message


def test_security_onnx_external_data_quiet_beside_model(tmp_path):
    from test_unsafe_formats import onnx_model

    repo = make_repo(tmp_path, card={"license": "mit"}, files={"model.onnx": onnx_model("model.onnx_data")})
    assert_quiet(scan(repo), "security.onnx_external_data")


def test_security_remote_code_fires_for_auto_map(tmp_path):
    config = dict(CUSTOM_CONFIG, auto_map={"AutoModelForCausalLM": "modeling_x.XForCausalLM"})
    assert_fires(scan(make_repo(tmp_path, card={"license": "mit"}, config=config)), "security.remote_code")


def test_security_remote_code_fires_for_shipped_python(tmp_path):
    repo = make_repo(
        tmp_path, card={"license": "mit"}, config=CUSTOM_CONFIG, files={"modeling_x.py": "class X:\n    pass\n"}
    )
    assert assert_fires(scan(repo), "security.remote_code")[0].path == "modeling_x.py"


def test_security_remote_code_quiet_for_library_architecture(tmp_path):
    assert_quiet(scan(make_repo(tmp_path, card={"license": "mit"}, config=CUSTOM_CONFIG)), "security.remote_code")


# == source.* ======================================================================================================
def test_source_unreadable_fires_for_dangling_link(tmp_path):
    repo = make_repo(tmp_path, card={"license": "mit"})
    os.symlink(repo / "missing-target.txt", repo / "NOTICE")
    f = assert_fires(scan(repo), "source.unreadable")[0]
    assert f.path == "NOTICE"


def test_source_unreadable_quiet_for_readable_repo(tmp_path):
    assert_quiet(scan(make_repo(tmp_path, card={"license": "mit"}, files={"NOTICE": "x"})), "source.unreadable")


def test_source_malformed_fires_for_bad_config(tmp_path):
    repo = make_repo(tmp_path, card={"license": "mit"}, files={"config.json": "{'model_type': 'llama',}"})
    f = assert_fires(scan(repo), "source.malformed")[0]
    assert f.path == "config.json"


def test_source_malformed_fires_for_bad_safetensors_header_with_index(tmp_path, llama_index):
    index, _ = llama_index
    bad = safetensors_raw({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 8)  # truncated
    repo = make_repo(tmp_path, "trunc", card={"license": "mit"}, files={"model.safetensors": bad})
    assert_fires(scan(repo, index=index), "source.malformed")


def test_source_malformed_quiet_for_good_files(tmp_path, llama_index):
    index, _ = llama_index
    repo = make_repo(
        tmp_path,
        "good",
        card={"license": "mit"},
        config=CUSTOM_CONFIG,
        weights={"model.safetensors": tiny_llm(4, layers=1)},
    )
    assert_quiet(scan(repo, index=index), "source.malformed")


def test_source_encoding_fires(tmp_path):
    repo = make_repo(tmp_path, files={"README.md": "---\nlicense: mit\n---\n# Caf\u00e9\n".encode("latin-1")})
    report = scan(repo)
    assert_fires(report, "source.encoding")
    assert_quiet(report, "card.malformed")  # decoded as latin-1, the front matter is still read


def test_source_encoding_quiet_for_utf8_with_or_without_bom(tmp_path):
    text = "---\nlicense: mit\n---\n# Caf\u00e9 \u2014 \u9762\u58c1\n"
    assert_quiet(scan(make_repo(tmp_path, "a", files={"README.md": text.encode()})), "source.encoding")
    assert_quiet(
        scan(make_repo(tmp_path, "b", files={"README.md": b"\xef\xbb\xbf" + text.encode()})), "source.encoding"
    )


def test_source_too_large_fires_for_huge_card_and_config(tmp_path):
    repo = make_repo(tmp_path, card={"license": "mit"})
    with open(repo / "README.md", "r+b") as fh:
        fh.truncate(5 * 1024 * 1024)  # sparse: no 5 MB written
    with open(repo / "config.json", "wb") as fh:
        fh.truncate(9 * 1024 * 1024)
    report = scan(repo)
    paths = {f.path for f in assert_fires(report, "source.too_large")}
    assert paths == {"README.md", "config.json"}
    assert_quiet(report, "card.malformed")  # the first 4 MB still hold the front matter


def test_source_too_large_quiet_for_normal_files(tmp_path):
    assert_quiet(scan(make_repo(tmp_path, card={"license": "mit"}, config=CUSTOM_CONFIG)), "source.too_large")


def test_source_symlink_escape_fires_for_file_and_folder(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    repo = make_repo(tmp_path, card={"license": "mit"})
    os.symlink(outside / "secret.txt", repo / "LICENSE")
    os.symlink(outside, repo / "data")
    report = scan(repo)
    assert {f.path for f in assert_fires(report, "source.symlink_escape")} == {"LICENSE", "data"}
    assert "secret" not in str(report.to_json()).replace("secret.txt", "")  # the link was not followed


def test_source_symlink_escape_quiet_for_link_inside_repo(tmp_path):
    repo = make_repo(tmp_path, card={"license": "mit"}, files={"docs/LICENSE.txt": MIT_TEXT})
    os.symlink(repo / "docs" / "LICENSE.txt", repo / "LICENSE")
    report = scan(repo)
    assert_quiet(report, "source.symlink_escape")
    assert_quiet(report, "source.unreadable")


def test_source_unverifiable_fires_for_pickle_only_weights_with_index(tmp_path, llama_index):
    index, _ = llama_index
    repo = make_repo(tmp_path, "pkl", card={"license": "mit"}, files={"pytorch_model.bin": torch_zip(SAFE_PICKLE)})
    assert_fires(scan(repo, index=index), "source.unverifiable")


def test_source_unverifiable_fires_for_lfs_pointer_weights_with_index(tmp_path, llama_index):
    index, _ = llama_index
    pointer = "version https://git-lfs.github.com/spec/v1\noid sha256:" + "ab" * 32 + "\nsize 16000000000\n"
    repo = make_repo(tmp_path, "lfs", card={"license": "mit"}, files={"model.safetensors": pointer})
    assert_fires(scan(repo, index=index), "source.unverifiable")


def test_source_unverifiable_quiet_for_safetensors_with_index(tmp_path, llama_index):
    index, _ = llama_index
    repo = make_repo(tmp_path, "st", card={"license": "mit"}, weights={"model.safetensors": tiny_llm(5)})
    assert_quiet(scan(repo, index=index), "source.unverifiable")


# == GGUF and adapters ==============================================================================================
LLAMA31_GGUF = {
    "general.license": "llama3.1",
    "general.base_model.count": 1,
    "general.base_model.0.repo_url": "https://huggingface.co/meta-llama/Llama-3.1-8B",
}


def gguf_repo(tmp_path: Path, name: str, card: dict, metadata: dict) -> Path:
    """A repo holding one real Q8_0 GGUF (written by the gguf package) with the given header metadata."""
    from gguf import GGMLQuantizationType
    from ggufs import write_gguf

    repo = make_repo(tmp_path, name, card=card)
    write_gguf(repo / "model-Q8_0.gguf", tiny_llm(7, d=64), GGMLQuantizationType.Q8_0, metadata=metadata)
    return repo


def test_license_gguf_mismatch_fires(tmp_path):
    f = assert_fires(scan(gguf_repo(tmp_path, "g", {"license": "apache-2.0"}, LLAMA31_GGUF)), "license.gguf_mismatch")
    assert f[0].evidence["gguf_license"] == "llama3.1" and f[0].evidence["card_license"] == "apache-2.0"


def test_license_gguf_mismatch_quiet_when_card_agrees_or_gguf_is_silent(tmp_path):
    assert_quiet(scan(gguf_repo(tmp_path, "a", {"license": "llama3.1"}, LLAMA31_GGUF)), "license.gguf_mismatch")
    assert_quiet(scan(gguf_repo(tmp_path, "b", {"license": "apache-2.0"}, {})), "license.gguf_mismatch")
    other = {"general.license": "other"}
    assert_quiet(scan(gguf_repo(tmp_path, "c", {"license": "apache-2.0"}, other)), "license.gguf_mismatch")


def test_card_gguf_base_undeclared_fires(tmp_path):
    report = scan(gguf_repo(tmp_path, "g", {"license": "llama3.1"}, LLAMA31_GGUF))
    assert assert_fires(report, "card.gguf_base_undeclared")[0].evidence["gguf_base"] == "meta-llama/Llama-3.1-8B"


def test_card_gguf_base_undeclared_quiet_when_the_card_declares_it_or_its_instruct_variant(tmp_path):
    for name, base in (("a", "meta-llama/Llama-3.1-8B"), ("b", "meta-llama/Llama-3.1-8B-Instruct")):
        card = {"license": "llama3.1", "base_model": base}
        assert_quiet(scan(gguf_repo(tmp_path, name, card, LLAMA31_GGUF)), "card.gguf_base_undeclared")


def test_gguf_relicensed_as_apache_gets_the_base_licence_obligations(tmp_path):
    report = scan(gguf_repo(tmp_path, "g", {"license": "apache-2.0"}, LLAMA31_GGUF))
    assert "meta-llama/Llama-3.1-8B" in assert_fires(report, "license.incompatible")[0].message


ADAPTER = '{"base_model_name_or_path": "meta-llama/Meta-Llama-3-8B", "peft_type": "LORA", "r": 16}'


def test_card_adapter_base_mismatch_fires(tmp_path):
    repo = make_repo(
        tmp_path, card={"license": "gemma", "base_model": "google/gemma-2-2b"}, files={"adapter_config.json": ADAPTER}
    )
    assert_fires(scan(repo), "card.adapter_base_mismatch")


def test_card_adapter_base_mismatch_quiet_for_same_base_or_a_local_path(tmp_path):
    same = make_repo(
        tmp_path,
        "same",
        card={"license": "llama3", "base_model": "meta-llama/meta-llama-3-8b"},
        files={"adapter_config.json": ADAPTER},
    )
    local = make_repo(
        tmp_path,
        "local",
        card={"license": "llama3", "base_model": "meta-llama/Meta-Llama-3-8B"},
        files={"adapter_config.json": '{"base_model_name_or_path": "/data/ckpt/base"}'},
    )
    assert_quiet(scan(same), "card.adapter_base_mismatch")
    assert_quiet(scan(local), "card.adapter_base_mismatch")


def test_adapter_only_repo_inherits_its_base_licence(tmp_path):
    repo = make_repo(tmp_path, card={"license": "apache-2.0"}, files={"adapter_config.json": ADAPTER})
    assert "meta-llama/Meta-Llama-3-8B" in assert_fires(scan(repo), "license.incompatible")[0].message


# == policy ========================================================================================================
def test_policy_severity_override(tmp_path):
    repo = make_repo(tmp_path, card={"license": "mit"}, files={"modeling_x.py": "pass\n"})
    f = assert_fires(scan(repo, Policy(severity={"security.*": Severity.critical})), "security.remote_code")[0]
    assert f.severity == Severity.critical


def test_policy_suppression_with_future_expiry_suppresses(tmp_path):
    repo = make_repo(tmp_path, card={"license": "acme-1.0"})
    policy = Policy(suppressions=[Suppression("license.unknown", "reviewed by legal", dt.date(2099, 1, 1))])
    report = scan(repo, policy)
    (f,) = findings_of(report, "license.unknown")
    assert f.suppressed == "reviewed by legal"
    assert "license.unknown" not in {x.rule for x in report.active()}
    assert f.to_json()["suppressed"] == "reviewed by legal"


def test_policy_expired_suppression_stops_suppressing_and_says_so(tmp_path):
    repo = make_repo(tmp_path, card={"license": "acme-1.0"})
    policy = Policy(suppressions=[Suppression("license.*", "temporary waiver", dt.date(2020, 1, 31))])
    f = assert_fires(scan(repo, policy), "license.unknown")[0]
    assert f.suppressed is None
    assert "expired 2020-01-31" in f.message and "temporary waiver" in f.message
    assert f.evidence["suppression_expired"] == "2020-01-31"


def test_policy_suppression_scoped_by_target_and_path(tmp_path):
    a = make_repo(tmp_path, "a", card={"license": "acme-1.0"})
    b = make_repo(tmp_path, "b", card={"license": "acme-1.0"})
    policy = Policy(suppressions=[Suppression("license.unknown", "only a", None, path="README.md", target="*/a")])
    assert findings_of(scan(a, policy), "license.unknown")[0].suppressed
    assert_fires(scan(b, policy), "license.unknown")


def test_policy_file_round_trip(tmp_path):
    pol = tmp_path / ".originscan.yml"
    pol.write_text(
        "fail_on: medium\nlicenses:\n  allow: [Apache-2.0]\n  deny: [AGPL-3.0]\n"
        "severity:\n  license.not_allowed: low\n"
        "suppress:\n  - rule: card.missing\n    reason: weights-only mirror\n    expires: 2099-12-31\n"
    )
    policy = load_policy(str(pol))
    assert policy.fail_on == Severity.medium and policy.allow == ["apache-2.0"] and policy.deny == ["agpl-3.0"]
    report = scan(make_repo(tmp_path, "m", files={"LICENSE": MIT_TEXT}), policy)
    assert findings_of(report, "card.missing")[0].suppressed == "weights-only mirror"
    assert assert_fires(report, "license.not_allowed")[0].severity == Severity.low


@pytest.mark.parametrize(
    "text",
    [
        "fail_on: sometimes\n",
        "suppress:\n  - rule: x\n",
        "- a\n- b\n",
        "suppress:\n  - rule: x\n    reason: y\n    expires: next tuesday\n",
        "a: [\n",
    ],
)
def test_policy_file_errors_are_usage_errors(tmp_path, text):
    from scanner.errors import UsageError

    pol = tmp_path / "p.yml"
    pol.write_text(text)
    with pytest.raises(UsageError):
        load_policy(str(pol))


# == coverage of the catalogue =====================================================================================
def _asserted_rules(kind: str) -> set[str]:
    """Rule ids passed as literals to assert_fires / assert_quiet inside test functions of the test suite."""
    trees = [ast.parse(p.read_text(encoding="utf-8")) for p in sorted(Path(__file__).parent.glob("test_*.py"))]
    found = set()
    for fn in (n for tree in trees for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")):
        for node in ast.walk(fn):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == kind
                and len(node.args) >= 2
                and isinstance(node.args[1], ast.Constant)
            ):
                found.add(node.args[1].value)
            if (
                isinstance(node, ast.For)
                and isinstance(node.iter, ast.Tuple)
                and isinstance(node.target, ast.Name)
                and any(
                    isinstance(c, ast.Call)
                    and isinstance(c.func, ast.Name)
                    and c.func.id == kind
                    and isinstance(c.args[1], ast.Name)
                    and c.args[1].id == node.target.id
                    for c in ast.walk(node)
                )
            ):
                found |= {e.value for e in node.iter.elts if isinstance(e, ast.Constant)}
    return found


def test_every_rule_is_covered():
    rules = set(catalogue())
    assert set(REMOTE_ONLY) <= rules, "REMOTE_ONLY names a rule that is not in the catalogue"
    local = rules - set(REMOTE_ONLY)
    fired, quiet = _asserted_rules("assert_fires"), _asserted_rules("assert_quiet")
    assert not fired - rules, f"tests assert unknown rule ids: {sorted(fired - rules)}"
    assert not local - fired, f"rules with no firing test: {sorted(local - fired)}"
    assert not local - quiet, f"rules with no must-not-fire test: {sorted(local - quiet)}"
