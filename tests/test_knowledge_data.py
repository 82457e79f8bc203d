"""The upstream knowledge base as data: every entry well-formed, cited and unique, and a few exact published facts.

The data files are read twice on purpose: with yaml.safe_load for the values, and as text for the citation
comments (which a YAML parser drops).
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
import yaml

from scanner.knowledge import load_knowledge_base

RULES = Path(__file__).resolve().parent.parent / "rules"
UPSTREAM_FILES = sorted((RULES / "upstreams").glob("*.yaml"))
REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")

# config.json keys and the JSON types their published values have
INT_KEYS = {
    "hidden_size",
    "num_hidden_layers",
    "intermediate_size",
    "num_attention_heads",
    "num_key_value_heads",
    "vocab_size",
    "max_position_embeddings",
    "original_max_position_embeddings",
    "head_dim",
    "bos_token_id",
    "pad_token_id",
    "num_local_experts",
    "num_experts_per_tok",
    "query_pre_attn_scalar",
    "n_embd",
    "n_layer",
    "n_head",
    "n_ctx",
    "n_positions",
    "type_vocab_size",
}
NUMBER_KEYS = {
    "rope_theta",
    "rope_local_base_freq",
    "partial_rotary_factor",
    "logit_scale",
    "attention_multiplier",
    "embedding_multiplier",
    "residual_multiplier",
    "logits_scaling",
    "attn_logit_softcapping",
    "final_logit_softcapping",
}
BOOL_KEYS = {
    "tie_word_embeddings",
    "use_qk_norm",
    "use_qkv_bias",
    "qk_layernorm",
    "multi_query",
    "parallel_attn",
    "new_decoder_architecture",
    "bias",
    "slice_mode",
}


def _entries() -> list[tuple[str, dict]]:
    out = []
    for path in UPSTREAM_FILES:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert isinstance(data, dict) and isinstance(data.get("upstreams"), list), path.name
        out += [(path.name, e) for e in data["upstreams"]]
    return out


def _blocks() -> list[tuple[str, str, str]]:
    """(file, id, the entry's text including its comments) for every entry."""
    out = []
    for path in UPSTREAM_FILES:
        text = path.read_text(encoding="utf-8")
        starts = [m for m in re.finditer(r"^  - id: (\S+)", text, re.M)]
        for m, nxt in itertools.zip_longest(starts, starts[1:]):
            out.append((path.name, m.group(1), text[m.start() : nxt.start() if nxt else len(text)]))
    return out


ENTRIES = _entries()
BY_ID = {e["id"]: e for _, e in ENTRIES}
LICENSE_IDS = {lic["id"] for lic in yaml.safe_load((RULES / "licenses.yaml").read_text(encoding="utf-8"))["licenses"]}


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


@pytest.mark.parametrize("file,entry", ENTRIES, ids=[e.get("id", "?") for _, e in ENTRIES])
def test_entry_is_well_formed(file, entry):
    assert REPO_ID.match(entry.get("id", "")), f"{file}: bad id {entry.get('id')!r}"
    assert isinstance(entry.get("family"), str) and entry["family"], f"{entry['id']}: no family"
    assert entry.get("license") in LICENSE_IDS, f"{entry['id']}: licence {entry.get('license')!r} not in licenses.yaml"
    for key in ("aliases", "mirrors"):
        assert all(isinstance(i, str) and REPO_ID.match(i) for i in entry.get(key) or []), (entry["id"], key)
    config = entry.get("config")
    assert isinstance(config, dict), f"{entry['id']}: config must be a mapping ({{}} for an id-only entry)"
    for key, value in config.items():
        where = f"{entry['id']} config.{key} = {value!r}"
        if key in INT_KEYS:
            assert _is_int(value) and value >= 0, where
        elif key in NUMBER_KEYS:
            assert _is_number(value), where
        elif key in BOOL_KEYS:
            assert isinstance(value, bool), where
        elif key == "sliding_window":
            assert value is None or _is_int(value), where
        elif key == "eos_token_id":
            assert _is_int(value) or (isinstance(value, list) and value and all(_is_int(v) for v in value)), where
        elif key == "rope_scaling":
            assert value is None or (isinstance(value, dict) and ("rope_type" in value or "type" in value)), where
        elif key == "model_type":
            assert isinstance(value, str) and value, where
    heads, kv = config.get("num_attention_heads"), config.get("num_key_value_heads")
    if heads and kv:
        assert heads % kv == 0, f"{entry['id']}: {heads} heads cannot be grouped over {kv} kv heads"
    vocab = config.get("vocab_size")
    ids = list((entry.get("special_tokens") or {}).values())
    ids += [config[k] for k in ("bos_token_id", "pad_token_id") if _is_int(config.get(k))]
    eos = config.get("eos_token_id")
    ids += eos if isinstance(eos, list) else [eos] if _is_int(eos) else []
    for token, tid in (entry.get("special_tokens") or {}).items():
        assert isinstance(token, str) and _is_int(tid) and tid >= 0, (entry["id"], token, tid)
    if vocab:
        assert all(i < vocab for i in ids), f"{entry['id']}: a token id is outside vocab_size {vocab}"


def test_no_id_alias_or_mirror_is_listed_twice():
    seen: dict[str, str] = {}
    for file, entry in ENTRIES:
        for key in ("id", "aliases", "mirrors"):
            values = [entry[key]] if key == "id" else entry.get(key) or []
            for value in values:
                where = f"{file} {entry['id']} {key}"
                assert value.lower() not in seen, f"{value} in {where} and in {seen[value.lower()]}"
                seen[value.lower()] = where


def test_the_loader_accepts_every_file():
    kb = load_knowledge_base()
    assert {e["id"].lower() for _, e in _entries()} == set(kb.upstreams)  # read now: the data may have grown


@pytest.mark.parametrize("file,uid,block", _blocks(), ids=[b[1] for b in _blocks()])
def test_every_entry_with_a_shape_cites_its_own_config_json(file, uid, block):
    entry = BY_ID[uid]
    if not set(entry["config"]) & INT_KEYS:
        return  # an entry matched by id only records no shape, so there is no config.json to cite
    urls = re.findall(r"# source: https://huggingface\.co/(\S+?)/blob/\S*config\.json", block)
    assert urls, f"{file} {uid}: no '# source: https://huggingface.co/<id>/blob/.../config.json' line"
    assert {u.lower() for u in urls} & {i.lower() for i in [uid, *(entry.get("aliases") or [])]}, (
        f"{uid}: its source line names {urls}, not this entry or one of its aliases"
    )


@pytest.mark.parametrize("file,uid,block", _blocks(), ids=[b[1] for b in _blocks()])
def test_values_without_a_first_hand_copy_are_marked_secondary(file, uid, block):
    if "NO full copy found" not in block and "NOT VERIFIED" not in block:
        return
    config_text = block.split("    config:", 1)[1].split("    special_tokens:")[0]
    unmarked = [line.strip() for line in re.findall(r"^      \w+: .*$", config_text, re.M) if "[secondary]" not in line]
    assert not unmarked, f"{file} {uid}: second-hand values not marked [secondary]: {unmarked}"


# -- a few exact published facts (each checked against its cited copy) ------------------------------------------
def test_llama_3_1_uses_llama3_rope_scaling_and_instruct_has_three_eos_ids():
    assert BY_ID["meta-llama/Llama-3.1-8B"]["config"]["rope_scaling"]["rope_type"] == "llama3"
    assert BY_ID["meta-llama/Llama-3.1-8B"]["config"]["rope_scaling"]["factor"] == 8.0
    assert BY_ID["meta-llama/Llama-3.2-1B"]["config"]["rope_scaling"]["factor"] == 32.0
    assert BY_ID["meta-llama/Llama-3.1-8B-Instruct"]["config"]["eos_token_id"] == [128001, 128008, 128009]
    assert BY_ID["meta-llama/Meta-Llama-3-8B-Instruct"]["config"]["eos_token_id"] == 128009


def test_renamed_llama_ids_resolve_to_the_current_release():
    kb = load_knowledge_base()
    assert kb.upstream("meta-llama/Meta-Llama-3.1-8B-Instruct").id == "meta-llama/Llama-3.1-8B-Instruct"
    assert kb.upstream("META-LLAMA/meta-llama-3.1-8b").id == "meta-llama/Llama-3.1-8B"
    assert kb.upstream("meta-llama/Meta-Llama-3-8B").id == "meta-llama/Meta-Llama-3-8B"  # Llama 3 was not renamed
    assert kb.mirror_of("unsloth/Llama-3.2-1B-Instruct").id == "meta-llama/Llama-3.2-1B-Instruct"


def test_mistral_versions_differ_where_they_were_published_to_differ():
    v01, v02i, v03 = (BY_ID[f"mistralai/Mistral-7B-{v}"]["config"] for v in ("v0.1", "Instruct-v0.2", "v0.3"))
    assert (v01["vocab_size"], v01["rope_theta"], v01["sliding_window"]) == (32000, 10000.0, 4096)
    assert (v02i["vocab_size"], v02i["rope_theta"], v02i["sliding_window"]) == (32000, 1000000.0, None)
    assert (v03["vocab_size"], v03["rope_theta"], v03["sliding_window"]) == (32768, 1000000.0, None)
    assert BY_ID["mistralai/Mistral-Nemo-Base-2407"]["config"]["head_dim"] == 128


def test_code_llama_infilling_vocab_and_licence():
    assert BY_ID["codellama/CodeLlama-7b-hf"]["config"]["vocab_size"] == 32016
    assert BY_ID["codellama/CodeLlama-7b-Python-hf"]["config"]["vocab_size"] == 32000
    assert {e["license"] for e in BY_ID.values() if e["family"] == "codellama"} == {"llama2"}


def test_gemma_it_and_phi_facts():
    assert BY_ID["google/gemma-2-2b-it"]["config"]["eos_token_id"] == [1, 107]
    assert BY_ID["google/gemma-2-2b"]["config"]["eos_token_id"] == 1
    assert BY_ID["google/gemma-2-27b"]["config"]["query_pre_attn_scalar"] == 144
    assert BY_ID["microsoft/phi-2"]["config"]["partial_rotary_factor"] == 0.4
    assert BY_ID["microsoft/Phi-4-mini-instruct"]["config"]["vocab_size"] == 200064


def test_command_r_is_non_commercial():
    licenses = {lic["id"]: lic for lic in yaml.safe_load((RULES / "licenses.yaml").read_text())["licenses"]}
    for uid in ("CohereForAI/c4ai-command-r-v01", "CohereForAI/c4ai-command-r-plus", "CohereForAI/aya-23-8B"):
        assert licenses[BY_ID[uid]["license"]]["commercial"] is False, uid
    assert load_knowledge_base().upstream("CohereLabs/c4ai-command-r-v01").id == "CohereForAI/c4ai-command-r-v01"
