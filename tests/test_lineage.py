"""Lineage (scanner/evidence/lineage.py): every class of real-world error from issue #9 has a firing and a quiet test.

Vendor releases and renamed ids, indistinguishable upstreams, unknown declared bases and lineage through base
cards, the declared licence's own obligations, licence names, mirrors and quantized re-uploads, vocabulary
extensions, and the knowledge base loader's validation. Hub ids are scanned through the local Hub server with the
real huggingface_hub client. Configs and tokens are taken from the knowledge base itself, so these tests check the
logic, not the data.
"""

from __future__ import annotations

import json

import pytest
from helpers import (
    APACHE_TEXT,
    CUSTOM_CONFIG,
    LLAMA3_8B_CONFIG,
    MIT_TEXT,
    active_rules,
    assert_fires,
    assert_quiet,
    card_text,
    findings_of,
    make_repo,
    scan,
    tokenizer_config,
)
from servers.hub import make_repo as hub_repo

from scanner.knowledge import KnowledgeBase, KnowledgeBaseError, Upstream, knowledge_base, load_knowledge_base

LLAMA2_LICENSE = "LLAMA 2 COMMUNITY LICENSE AGREEMENT\nLlama 2 Version Release Date: July 18, 2023\n"
LLAMA2_NOTICE = (
    "Llama 2 is licensed under the LLAMA 2 Community License, Copyright (c) Meta Platforms, Inc. All Rights Reserved.\n"
)


def kb_config(repo_id: str, **changes) -> dict:
    up = knowledge_base().upstream(repo_id)
    assert up is not None, f"{repo_id} left the knowledge base; pick another upstream for this test"
    return {**up.config, "architectures": ["LlamaForCausalLM"], **changes}


def kb_tokens(repo_id: str) -> dict[str, int]:
    return dict(knowledge_base().upstream(repo_id).special_tokens)


def publish(
    hub, repo_id: str, card: dict | None, config: dict | None = None, tokens: dict | None = None, **files: str
) -> None:
    content = {"README.md": card_text(card, f"# {repo_id.split('/')[-1]}\n")} if card is not None else {}
    if config is not None:
        content["config.json"] = json.dumps(config)
    if tokens:
        content["tokenizer_config.json"] = json.dumps(tokenizer_config(tokens))
    content.update({name.replace("__", "."): text for name, text in files.items()})
    hub_repo(hub.root, repo_id, content)


# -- 1. vendor releases and renamed ids ------------------------------------------------------------------------------
OWN_RELEASE_RULES = (
    "card.base_model_undeclared",
    "tokenizer.upstream_special_tokens",
    "attribution.naming",
    "attribution.phrase_missing",
    "license.copy_missing",
    "license.notice_missing",
)


@pytest.mark.parametrize("repo_id", ["meta-llama/Llama-3.1-8B-Instruct", "meta-llama/Meta-Llama-3.1-8B-Instruct"])
def test_a_vendor_release_under_any_of_its_ids_is_not_its_own_derivative(hub, repo_id):
    publish(
        hub,
        repo_id,
        {"license": "llama3.1"},
        kb_config("meta-llama/Llama-3.1-8B-Instruct"),
        kb_tokens("meta-llama/Llama-3.1-8B-Instruct"),
    )
    report = scan(f"hf:{repo_id}")
    for rule in OWN_RELEASE_RULES:
        assert_quiet(report, rule)


def test_the_vendor_files_under_another_org_are_an_undeclared_derivative(hub):
    publish(
        hub,
        "acme/support-bot",
        {"license": "llama3.1"},
        kb_config("meta-llama/Llama-3.1-8B-Instruct"),
        kb_tokens("meta-llama/Llama-3.1-8B-Instruct"),
    )
    report = scan("hf:acme/support-bot")
    for rule in ("card.base_model_undeclared", "attribution.naming", "license.copy_missing"):
        assert_fires(report, rule)


# -- 2. upstreams the evidence cannot tell apart ------------------------------------------------------------------
def _twin_kb(differ: bool) -> KnowledgeBase:
    real = knowledge_base()
    shape = {
        "model_type": "llama",
        "hidden_size": 2048,
        "num_hidden_layers": 20,
        "intermediate_size": 5632,
        "num_attention_heads": 16,
        "num_key_value_heads": 4,
        "vocab_size": 50000,
        "rope_theta": 10000.0,
    }
    other = dict(shape, rope_theta=20000.0) if differ else dict(shape)
    ups = [Upstream("vendor-a/Model-2B", "a", "apache-2.0", shape), Upstream("vendor-b/Model-2B", "b", "llama2", other)]
    return KnowledgeBase(list(real.licenses.values()), ups)


def test_indistinguishable_upstreams_are_all_reported_with_their_licences(tmp_path, monkeypatch):
    monkeypatch.setattr("scanner.pipeline.knowledge_base", lambda: _twin_kb(differ=False))
    config = dict(_twin_kb(False).upstream("vendor-a/Model-2B").config, architectures=["LlamaForCausalLM"])
    report = scan(make_repo(tmp_path, "mine", card={"license": "mit"}, config=config))
    (f,) = assert_fires(report, "card.base_model_undeclared")
    assert "vendor-a/Model-2B (apache-2.0)" in f.message and "vendor-b/Model-2B (llama2)" in f.message
    assert set(f.evidence["upstreams"]) == {"vendor-a/Model-2B", "vendor-b/Model-2B"}
    # the llama2 candidate's obligations are reported, saying the lineage is ambiguous
    (copy,) = [f for f in findings_of(report, "license.copy_missing") if f.evidence["base_license"] == "llama2"]
    assert copy.evidence["alternatives"] == ["vendor-a/Model-2B"] and "also fits" in copy.message


def test_a_recorded_key_that_tells_them_apart_picks_one(tmp_path, monkeypatch):
    monkeypatch.setattr("scanner.pipeline.knowledge_base", lambda: _twin_kb(differ=True))
    config = dict(_twin_kb(True).upstream("vendor-a/Model-2B").config, architectures=["LlamaForCausalLM"])
    report = scan(make_repo(tmp_path, "mine", card={"license": "mit"}, config=config))
    (f,) = assert_fires(report, "card.base_model_undeclared")
    assert f.evidence["upstreams"] == ["vendor-a/Model-2B"]
    # vendor-b (llama2) is ruled out by rope_theta: none of its obligations
    assert not [f for f in report.findings if f.evidence.get("base_license") == "llama2"]


# -- 3. unknown declared bases; lineage through the bases' own cards ------------------------------------------------
def test_an_unknown_declared_base_does_not_switch_obligations_off(tmp_path):
    repo = make_repo(
        tmp_path,
        "support-bot",
        card={"license": "llama3.1", "base_model": "acme/unknown-ft"},
        config=kb_config("meta-llama/Llama-3.1-8B"),
    )
    report = scan(repo)
    for rule in ("attribution.naming", "license.copy_missing", "license.notice_missing"):
        assert_fires(report, rule)
    signatures = findings_of(report, "config.upstream_signature")
    assert signatures and all("unknown" in f.message and "(declared)" not in f.message for f in signatures)
    (unverified,) = findings_of(report, "card.base_model_unverified")
    assert "meta-llama/Llama-3.1-8B" in unverified.message
    assert_quiet(report, "card.base_model_undeclared")  # a base is declared; it is just not one we know


def test_an_unknown_declared_base_with_an_unknown_architecture_adds_no_obligations(tmp_path):
    report = scan(
        make_repo(
            tmp_path,
            "support-bot",
            card={"license": "apache-2.0", "base_model": "acme/unknown-ft"},
            config=CUSTOM_CONFIG,
        )
    )
    assert_fires(report, "card.base_model_unverified")
    for rule in ("license.copy_missing", "attribution.naming", "config.upstream_signature"):
        assert_quiet(report, rule)


def test_lineage_follows_the_declared_bases_own_cards(hub):
    publish(hub, "acme/llama-ft", {"license": "llama3.1", "base_model": "meta-llama/Llama-3.1-8B"})
    publish(hub, "bob/ft-of-ft", {"license": "llama3.1", "base_model": "carol/ft"})
    publish(hub, "carol/ft", {"license": "llama3.1", "base_model": "acme/llama-ft"})
    report = scan("hf:bob/ft-of-ft")
    (copy,) = assert_fires(report, "license.copy_missing")
    assert copy.evidence["base"] == "meta-llama/Llama-3.1-8B" and copy.evidence["known_from"] == "base-card"
    assert_fires(report, "attribution.naming")
    assert_quiet(report, "card.base_model_unverified")


def test_a_base_card_chain_that_ends_nowhere_adds_nothing(hub):
    publish(hub, "acme/scratch", {"license": "apache-2.0"})
    publish(hub, "bob/ft", {"license": "apache-2.0", "base_model": "acme/scratch"})
    report = scan("hf:bob/ft")
    assert_fires(report, "card.base_model_unverified")
    assert_quiet(report, "license.copy_missing")


# -- 4. the declared licence's own obligations -----------------------------------------------------------------------
def test_a_declared_vendor_licence_carries_its_obligations_without_a_base(tmp_path):
    report = scan(make_repo(tmp_path, "chat-7b", card={"license": "llama2"}, config=CUSTOM_CONFIG))
    for rule in ("license.copy_missing", "license.notice_missing", "license.use_restrictions_missing"):
        (f,) = assert_fires(report, rule)
        assert f.evidence["known_from"] == "declared licence" and f.evidence["base"] is None


def test_a_declared_vendor_licence_whose_terms_are_met_is_quiet(tmp_path):
    repo = make_repo(
        tmp_path,
        "chat-7b",
        card={"license": "llama2"},
        config=CUSTOM_CONFIG,
        files={"LICENSE": LLAMA2_LICENSE, "NOTICE": LLAMA2_NOTICE, "USE_POLICY.md": "Acceptable Use\n"},
    )
    report = scan(repo)
    for rule in ("license.copy_missing", "license.notice_missing", "license.use_restrictions_missing"):
        assert_quiet(report, rule)


def test_a_general_licence_binds_no_one_to_ship_its_text(tmp_path):
    report = scan(make_repo(tmp_path, "mine", card={"license": "apache-2.0"}, config=CUSTOM_CONFIG))
    assert_quiet(report, "license.copy_missing")


# -- 5. licence names --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "card",
    [
        {"license": "Apache License 2.0"},
        {"license": "Apache 2.0"},
        {"license": "MIT License"},
        {"license": "Llama 3.1 Community License"},
        {"license": "apache-2.0 OR mit"},
        {"license": "other", "license_name": "gemma-terms-of-use", "license_link": "https://ai.google.dev/gemma/terms"},
    ],
)
def test_licence_names_people_write_resolve(tmp_path, card):
    report = scan(make_repo(tmp_path, "mine", card=card, config=CUSTOM_CONFIG))
    assert_quiet(report, "license.unknown")
    assert_quiet(report, "license.missing")


def test_an_unknown_licence_name_is_still_unknown(tmp_path):
    assert_fires(scan(make_repo(tmp_path, "mine", card={"license": "acme-open-1.0"})), "license.unknown")


def test_other_is_never_compared_with_the_licence_file(tmp_path):
    card = {"license": "other", "license_name": "acme-terms", "license_link": "https://acme.example/terms"}
    report = scan(make_repo(tmp_path, "mine", card=card, files={"LICENSE": APACHE_TEXT}))
    assert_fires(report, "license.unknown")
    assert_quiet(report, "license.card_file_mismatch")


def test_an_spdx_expression_matches_a_file_with_either_licence(tmp_path):
    quiet = scan(make_repo(tmp_path, "a", card={"license": "apache-2.0 OR mit"}, files={"LICENSE": MIT_TEXT}))
    assert_quiet(quiet, "license.card_file_mismatch")
    assert_fires(
        scan(make_repo(tmp_path, "b", card={"license": "apache-2.0"}, files={"LICENSE": MIT_TEXT})),
        "license.card_file_mismatch",
    )


# -- 6. mirrors and quantized re-uploads ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "repo_id", ["TheBloke/Llama-2-7B-Chat-GPTQ", "acme/Llama-2-7b-hf-AWQ", "NousResearch/Llama-2-7b-hf"]
)
def test_a_re_upload_resolves_to_its_originals_lineage(hub, repo_id):
    publish(hub, repo_id, {"license": "llama2"}, kb_config("meta-llama/Llama-2-7b-hf"))
    report = scan(f"hf:{repo_id}")
    assert_quiet(report, "card.base_model_undeclared")
    (copy,) = assert_fires(report, "license.copy_missing")
    assert copy.evidence["base"] == "meta-llama/Llama-2-7b-hf" and "name" in copy.evidence["known_from"]


def test_the_same_files_under_an_ordinary_name_are_undeclared(hub):
    publish(hub, "acme/chat-7b", {"license": "llama2"}, kb_config("meta-llama/Llama-2-7b-hf"))
    assert_fires(scan("hf:acme/chat-7b"), "card.base_model_undeclared")


# -- 7. vocabulary extensions --------------------------------------------------------------------------------------
def test_a_vocabulary_extension_matches_its_family_with_lower_confidence(tmp_path):
    config = kb_config("meta-llama/Llama-2-7b-hf", vocab_size=55296)  # Chinese-LLaMA-2's extended vocabulary
    (f,) = assert_fires(
        scan(make_repo(tmp_path, "chinese-7b", card={"license": "apache-2.0"}, config=config)),
        "card.base_model_undeclared",
    )
    assert "vocabulary extension" in f.message and f.evidence["confidence"] == "low"
    assert "meta-llama/Llama-2-7b-hf" in f.evidence["upstreams"]


def test_a_smaller_vocabulary_is_not_an_extension(tmp_path):
    config = kb_config("meta-llama/Llama-2-7b-hf", vocab_size=16000)
    assert_quiet(
        scan(make_repo(tmp_path, "small-7b", card={"license": "apache-2.0"}, config=config)),
        "card.base_model_undeclared",
    )


# -- earlier edge cases --------------------------------------------------------------------------------------------
def test_a_checkout_of_the_upstream_itself_is_not_its_own_undeclared_derivative(tmp_path):
    repo = make_repo(
        tmp_path,
        "Meta-Llama-3-8B",
        card=card_text({"license": "llama3"}, "# Meta-Llama-3-8B\n"),
        config=LLAMA3_8B_CONFIG,
    )
    assert "card.base_model_undeclared" not in active_rules(scan(repo))


def test_the_same_config_under_another_name_is_still_undeclared(tmp_path):
    repo = make_repo(
        tmp_path,
        "totally-new-8b",
        card=card_text({"license": "apache-2.0"}, "# TotallyNew 8B\n"),
        config=LLAMA3_8B_CONFIG,
    )
    assert "card.base_model_undeclared" in active_rules(scan(repo))


def test_a_common_small_shape_is_not_a_signature(tmp_path):
    # all-MiniLM-L6-v2's recorded shape is 5 keys shared by many BERT-small models: not enough to accuse anyone
    config = {
        "model_type": "bert",
        "hidden_size": 384,
        "num_hidden_layers": 6,
        "intermediate_size": 1536,
        "num_attention_heads": 12,
        "max_position_embeddings": 512,
    }
    repo = make_repo(tmp_path, "my-encoder", card=card_text({"license": "mit"}), config=config)
    assert "card.base_model_undeclared" not in active_rules(scan(repo))


# -- the knowledge base loader ------------------------------------------------------------------------------------
def _rules_copy(tmp_path, monkeypatch, bad: str | None = None):
    import shutil

    import scanner.knowledge as knowledge

    rules = tmp_path / "rules"
    shutil.copytree(knowledge.data_dir("rules"), rules)
    if bad is not None:
        (rules / "upstreams" / "zz-bad.yaml").write_text(bad, encoding="utf-8")
    monkeypatch.setattr(knowledge, "data_dir", lambda kind: rules if kind == "rules" else tmp_path / kind)


@pytest.mark.parametrize(
    "bad, key",
    [
        ("upstreams:\n  - id: acme/x\n    aliases: acme/y\n", "'aliases'"),
        ("upstreams:\n  - id: not-a-hub-id\n", "'id'"),
        ("upstreams:\n  - id: acme/x\n    special_tokens: {'<a>': '12'}\n", "'special_tokens'"),
        ("upstreams:\n  - id: meta-llama/Llama-2-7b-hf\n", "'id'"),  # already listed in meta-llama.yaml
        ("upstreams: [\n", None),
    ],
)
def test_a_malformed_upstream_file_is_named_with_its_key(tmp_path, monkeypatch, bad, key):
    _rules_copy(tmp_path, monkeypatch, bad)
    with pytest.raises(KnowledgeBaseError) as err:
        load_knowledge_base()
    assert "rules/upstreams/zz-bad.yaml" in str(err.value)
    if key:
        assert f"key {key}" in str(err.value)


def test_the_shipped_knowledge_base_loads(tmp_path, monkeypatch):
    _rules_copy(tmp_path, monkeypatch)
    kb = load_knowledge_base()
    assert kb.upstream("meta-llama/Meta-Llama-3.1-8B-Instruct") is kb.upstream("meta-llama/Llama-3.1-8B-Instruct")


def test_an_adapters_own_config_declares_its_base(tmp_path):
    adapter = json.dumps({"base_model_name_or_path": "meta-llama/Meta-Llama-3-8B", "peft_type": "LORA"})
    card = card_text({"license": "llama3"}, "# Llama-3-8B-finance-lora\n")
    declared = make_repo(
        tmp_path, "with-adapter", card=card, config=LLAMA3_8B_CONFIG, files={"adapter_config.json": adapter}
    )
    assert_quiet(scan(declared), "card.base_model_undeclared")
    undeclared = make_repo(tmp_path, "without-adapter", card=card, config=LLAMA3_8B_CONFIG)
    assert_fires(scan(undeclared), "card.base_model_undeclared")
