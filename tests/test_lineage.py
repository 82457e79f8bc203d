"""Lineage edge cases: an upstream scanned as itself, and generic shapes that are not signatures."""
from __future__ import annotations

from helpers import LLAMA3_8B_CONFIG, active_rules, card_text, make_repo, scan


def test_a_checkout_of_the_upstream_itself_is_not_its_own_undeclared_derivative(tmp_path):
    repo = make_repo(tmp_path, "Meta-Llama-3-8B", card=card_text({"license": "llama3"}, "# Meta-Llama-3-8B\n"),
                     config=LLAMA3_8B_CONFIG)
    assert "card.base_model_undeclared" not in active_rules(scan(repo))


def test_the_same_config_under_another_name_is_still_undeclared(tmp_path):
    repo = make_repo(tmp_path, "totally-new-8b", card=card_text({"license": "apache-2.0"}, "# TotallyNew 8B\n"),
                     config=LLAMA3_8B_CONFIG)
    assert "card.base_model_undeclared" in active_rules(scan(repo))


def test_a_common_small_shape_is_not_a_signature(tmp_path):
    # all-MiniLM-L6-v2's recorded shape is 5 keys shared by many BERT-small models: not enough to accuse anyone
    config = {"model_type": "bert", "hidden_size": 384, "num_hidden_layers": 6, "intermediate_size": 1536,
              "num_attention_heads": 12, "max_position_embeddings": 512}
    repo = make_repo(tmp_path, "my-encoder", card=card_text({"license": "mit"}), config=config)
    assert "card.base_model_undeclared" not in active_rules(scan(repo))
