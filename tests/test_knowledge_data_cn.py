"""Exact published facts of the Qwen, DeepSeek, Yi, InternLM, MiniCPM, GLM and Baichuan upstreams and their licences.

Each assertion restates a value checked against the copy cited next to it in rules/ (see the comment there);
tests/test_knowledge_data.py checks the form of every entry.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from scanner.knowledge import load_knowledge_base

RULES = Path(__file__).resolve().parent.parent / "rules"
BY_ID = {
    e["id"]: e
    for f in sorted((RULES / "upstreams").glob("*.yaml"))
    for e in yaml.safe_load(f.read_text(encoding="utf-8"))["upstreams"]
}
LICENSES = {lic["id"]: lic for lic in yaml.safe_load((RULES / "licenses.yaml").read_text(encoding="utf-8"))["licenses"]}
ARCHITECTURE = (
    "model_type",
    "hidden_size",
    "num_hidden_layers",
    "intermediate_size",
    "num_attention_heads",
    "num_key_value_heads",
    "vocab_size",
    "rope_theta",
    "max_position_embeddings",
    "sliding_window",
    "max_window_layers",
    "tie_word_embeddings",
    "bos_token_id",
    "eos_token_id",
)


def _config(uid: str) -> dict:
    return BY_ID[uid]["config"]


def test_qwen_licences_differ_by_generation_and_size():
    assert BY_ID["Qwen/Qwen-7B"]["license"] == "tongyi-qianwen"
    assert BY_ID["Qwen/Qwen1.5-7B"]["license"] == "tongyi-qianwen"
    assert BY_ID["Qwen/Qwen2-7B"]["license"] == "apache-2.0"
    assert BY_ID["Qwen/Qwen2-72B"]["license"] == "tongyi-qianwen"
    assert BY_ID["Qwen/Qwen2.5-7B"]["license"] == "apache-2.0"
    assert BY_ID["Qwen/Qwen2.5-3B"]["license"] == "qwen-research"
    assert BY_ID["Qwen/Qwen2.5-72B"]["license"] == "qwen"
    assert LICENSES["qwen-research"]["commercial"] is False


def test_qwen2_and_qwen2_5_half_billion_differ_in_context_and_window():
    q2, q25 = _config("Qwen/Qwen2-0.5B"), _config("Qwen/Qwen2.5-0.5B")
    assert (q2["max_position_embeddings"], q2["sliding_window"]) == (131072, 131072)
    assert (q25["max_position_embeddings"], q25["sliding_window"]) == (32768, 32768)
    shape = ("hidden_size", "num_hidden_layers", "intermediate_size", "num_attention_heads", "num_key_value_heads")
    assert all(q2[k] == q25[k] for k in shape)


def test_qwen2_and_qwen2_5_7b_publish_the_same_architecture_keys():
    # Nothing but the use_mrope key tells the two files apart: the lineage logic must report both candidates.
    q2, q25 = _config("Qwen/Qwen2-7B"), _config("Qwen/Qwen2.5-7B")
    assert {k: q2[k] for k in ARCHITECTURE} == {k: q25[k] for k in ARCHITECTURE}
    assert set(q2) ^ set(q25) == {"use_mrope"}


def test_qwen_instruct_files_differ_from_their_base():
    assert (_config("Qwen/Qwen2-7B")["eos_token_id"], _config("Qwen/Qwen2-7B-Instruct")["eos_token_id"]) == (
        151643,
        151645,
    )
    assert _config("Qwen/Qwen2-7B-Instruct")["max_position_embeddings"] == 32768
    assert (
        _config("Qwen/Qwen2.5-3B")["max_window_layers"],
        _config("Qwen/Qwen2.5-3B-Instruct")["max_window_layers"],
    ) == (36, 70)


def test_deepseek_v3_and_r1_share_an_architecture_but_not_a_licence():
    v3, r1 = _config("deepseek-ai/DeepSeek-V3"), _config("deepseek-ai/DeepSeek-R1")
    assert all(r1[k] == v for k, v in v3.items())
    assert (r1["vocab_size"], r1["n_routed_experts"], r1["num_nextn_predict_layers"]) == (129280, 256, 1)
    assert (BY_ID["deepseek-ai/DeepSeek-V3"]["license"], BY_ID["deepseek-ai/DeepSeek-R1"]["license"]) == (
        "deepseek",
        "mit",
    )


def test_r1_distills_name_their_bases_and_the_llama_bases_keep_their_licences():
    distills = {uid: e for uid, e in BY_ID.items() if e["family"] == "deepseek-r1-distill"}
    assert len(distills) == 6
    for uid, e in distills.items():
        assert e["license"] == "mit", uid
        assert e["base_model"] in BY_ID, uid
    assert BY_ID[BY_ID["deepseek-ai/DeepSeek-R1-Distill-Llama-8B"]["base_model"]]["license"] == "llama3.1"
    assert BY_ID[BY_ID["deepseek-ai/DeepSeek-R1-Distill-Llama-70B"]["base_model"]]["license"] == "llama3.3"
    assert BY_ID[BY_ID["deepseek-ai/DeepSeek-R1-Distill-Qwen-7B"]["base_model"]]["license"] == "apache-2.0"


def test_glm_4_chat_1m_differs_from_glm_4_chat():
    chat, long = _config("THUDM/glm-4-9b-chat"), _config("THUDM/glm-4-9b-chat-1m")
    assert (chat["multi_query_group_num"], chat["rope_ratio"], chat["seq_length"]) == (2, 500, 131072)
    assert (long["multi_query_group_num"], long["rope_ratio"], long["seq_length"]) == (4, 10000, 1048576)
    assert chat["eos_token_id"] == [151329, 151336, 151338]


def test_vendor_licences_carry_their_published_terms():
    assert LICENSES["yi"]["commercial"] is False  # Yi licence §2
    assert LICENSES["chatglm3"]["commercial"] == "conditional"  # ChatGLM3-6B licence §2 (registration)
    assert LICENSES["chatglm2"]["commercial"] is True  # ChatGLM2-6B licence: no commercial clause
    assert LICENSES["baichuan2"]["commercial"] == "conditional"
    assert LICENSES["glm-4"]["conditions"]["naming"] == {"rule": "prefix", "text": "glm-4"}


def test_vendor_licence_texts_are_recognised_and_names_resolve():
    kb = load_knowledge_base()
    yi = "Yi Series Models License Agreement\n Version: 1.0\n Date of Release: November 1, 2023"
    assert kb.detect_license_text(yi).id == "yi"
    assert kb.detect_license_text("The ChatGLM3-6B License\n\n1. Definitions").id == "chatglm3"
    assert kb.detect_license_text("The ChatGLM2-6B License\n\n1. Definitions").id == "chatglm2"
    assert (
        kb.detect_license_text("Apache License\nVersion 2.0, January 2004").id == "apache-2.0"
    )  # not a vendor licence
    assert kb.license("glm-4").id == "glm-4"
    assert kb.license("yi-license").id == "yi"


def test_renamed_thudm_ids_resolve_to_the_same_release():
    kb = load_knowledge_base()
    assert kb.upstream("zai-org/glm-4-9b-chat").id == "THUDM/glm-4-9b-chat"
    assert "zai-org" in kb.upstream("THUDM/chatglm3-6b").orgs
    assert kb.upstream("zai-org/glm-4-9b-chat-hf") is None  # the transformers-native re-release is not listed
