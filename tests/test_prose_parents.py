"""Parents named in a card's prose (issue #20 point 3), bases the knowledge base records for an upstream, and the
knowledge-base gaps of issue #20 point 4. Sentences are real card excerpts:

- BelleGroup/BELLE-7B-2M: "BELLE is based on Bloomz-7b1-mt and finetuned with 2M Chinese data …"
  (YinanWusoymilk/hf-readme training_and_application/readme_files/BelleGroup_BELLE-7B-2M.md);
- mattshumer/Reflection-Llama-3.1-70B: "Trained from Llama 3.1 70B Instruct, you can sample from Reflection …"
  (MiMiGame-1/Reflection-Llama-3.1-70B README.md);
- meta-llama/Llama-Guard-3-1B: "Llama Guard 3-1B is a fine-tuned Llama-3.2-1B pretrained model for content safety
  classification." (ZHUI/paddlenlp_model_readme meta-llama/Llama-Guard-3-1B/index.md);
- SkkJodhpur/Gemma-Code-Instruct-Finetune-by-skk: "Finetuned from model: google/gemma-2b" (its README.md);
- deepseek-ai/DeepSeek-R1-Distill-Llama-8B README §7 (ZHUI/paddlenlp_model_readme copy).
"""

from __future__ import annotations

import pytest

from scanner.evidence.card import CardFacts
from scanner.evidence.lineage import Confidence, LineageInput, infer_lineage
from scanner.evidence.prose import parent_mentions
from scanner.knowledge import knowledge_base, name_match
from scanner.policy import Policy
from tests.helpers import LLAMA3_8B_CONFIG, assert_fires, assert_quiet, make_repo, scan

BELLE = (
    "BELLE is based on Bloomz-7b1-mt and finetuned with 2M Chinese data combined with 50,000 pieces of English data "
    "from the open source Stanford-Alpaca, resulting in good Chinese instruction understanding."
)
REFLECTION = (
    "Trained from Llama 3.1 70B Instruct, you can sample from Reflection Llama-3.1 70B using the same code, "
    "pipelines, etc. as any other Llama model."
)
GUARD = "Llama Guard 3-1B is a fine-tuned Llama-3.2-1B pretrained model for content safety classification."
LINKED = (
    "An 8B vision-language model built on [Llama 3.1 8B Instruct](https://huggingface.co/meta-llama/Llama-3.1-8B-Instruct)"
    " with a SigLIP encoder."
)


def lineage_of(body: str, name: str = "acme/model", metadata: dict | None = None, publisher: str | None = None):
    card = CardFacts(path="README.md", metadata=metadata or {}, body=body)
    return infer_lineage(LineageInput(name=name, card=card, publisher=publisher), knowledge_base())


@pytest.mark.parametrize(
    ("body", "upstream"),
    [
        (BELLE, "bigscience/bloomz-7b1-mt"),
        (REFLECTION, "meta-llama/Llama-3.1-70B-Instruct"),
        (LINKED, "meta-llama/Llama-3.1-8B-Instruct"),
        ("**Finetuned from model:** google/gemma-2b", "google/gemma-2b"),
        ("- **Base model:** [Qwen2.5-7B](https://huggingface.co/Qwen/Qwen2.5-7B)", "Qwen/Qwen2.5-7B"),
    ],
)
def test_parent_named_in_prose_is_found_with_low_confidence(body, upstream):
    lineage = lineage_of(body)
    c = lineage.candidate(upstream)
    assert c is not None, [x.upstream.id for x in lineage.candidates]
    ev = c.evidence_of("prose")
    assert ev is not None and c.confidence == Confidence.low
    assert ev.data["quote"].rstrip("…") in " ".join(body.split())  # the sentence itself (shortened) is the evidence


@pytest.mark.parametrize(
    "body",
    [
        "We compare it with Llama 3.1 8B Instruct and Qwen2.5-7B on MMLU.",  # a comparison, not a parent
        "It is based on the transformer architecture with 32 layers.",  # no model named
        "| Model | MMLU |\n|---|---|\n| [Llama-3.1-8B](https://huggingface.co/meta-llama/Llama-3.1-8B) | 66.7 |",
        "Fine-tuned on [our dataset](https://huggingface.co/datasets/acme/llama-3.1-8b-chats).",  # a dataset link
        # a licence text quoted in the card: its sentences are not this model's lineage
        '"Llama Materials" means, collectively, the Agreement and the models built on Meta Llama 3 8B.',
    ],
)
def test_prose_without_a_parent_adds_nothing(body):
    assert lineage_of(body).candidates == []


def test_metadata_wins_over_prose():
    lineage = lineage_of(REFLECTION, metadata={"base_model": "mistralai/Mistral-7B-v0.1"})
    assert [c.upstream.id for c in lineage.candidates] == ["mistralai/Mistral-7B-v0.1"]


def test_model_creator_and_model_name_of_a_re_upload_card():
    """TheBloke's card convention: his Llama 2 7B Chat re-upload cards (code-index copies) say model_creator: Meta
    Llama 2, model_name: Llama 2 7B Chat, model_link: https://huggingface.co/meta-llama/Llama-2-7b-chat-hf."""
    lineage = lineage_of("", metadata={"model_creator": "Meta Llama 2", "model_name": "Llama 2 7B Chat"})
    c = lineage.candidate("meta-llama/Llama-2-7b-hf")
    assert c is not None and c.evidence_of("prose") is not None
    assert lineage_of("", metadata={"model_name": "Llama 2 7B Chat"}).candidates == []  # a model's own name alone


def test_model_index_base_model_is_read():
    mentions = parent_mentions(CardFacts(metadata={"model-index": [{"name": "x", "base_model": "google/gemma-2b"}]}))
    assert mentions[0].references == ("google/gemma-2b",)


def test_prose_parent_brings_its_obligations_with_the_quote(tmp_path):
    repo = make_repo(tmp_path, "acme-vision-8b", card={"license": "llama3.1"}, body="# Acme Vision 8B\n\n" + LINKED)
    report = scan(repo, Policy(publisher="acme"))
    naming = assert_fires(report, "attribution.naming")[0]
    assert naming.evidence["confidence"] == "low" and "built on" in naming.evidence["quote"]
    assert "named in the card's prose, low confidence" in naming.message
    # the metadata still declares no base: the config finding stays, and says what the prose named
    repo2 = make_repo(
        tmp_path,
        "acme-8b",
        card={"license": "llama3"},
        config=LLAMA3_8B_CONFIG,
        body="# Acme 8B\n\nFine-tuned from Meta-Llama-3-8B on our chats.\n",
    )
    undeclared = assert_fires(scan(repo2, Policy(publisher="acme")), "card.base_model_undeclared")[0]
    assert "its prose names it" in undeclared.message


def test_prose_naming_the_licensors_own_family_is_quiet_for_the_licensor(tmp_path):
    repo = make_repo(tmp_path, "Llama-Guard-3-1B-copy", card={"license": "llama3.2"}, body="# Llama Guard\n\n" + GUARD)
    report = scan(repo, Policy(publisher="meta-llama"))
    for rule in ("attribution.naming", "license.copy_missing", "license.notice_missing"):
        assert_quiet(report, rule)


# -- bases the knowledge base records --------------------------------------------------------------------------------
def test_r1_distill_keeps_its_llama_base_obligations():
    """DeepSeek licenses its distill under MIT; it is still a fine-tune of Meta's Llama 3.1 8B (README §7)."""
    lineage = lineage_of("", name="deepseek-ai/DeepSeek-R1-Distill-Llama-8B", publisher="deepseek-ai")
    llama = lineage.candidate("meta-llama/Llama-3.1-8B")
    assert llama is not None and llama.evidence_of("recorded-base") is not None and not llama.vendor
    assert "llama3.1" in {ob.license.id for ob in lineage.obligations()}


def test_a_derivative_of_the_distill_inherits_the_chain():
    lineage = lineage_of("", metadata={"base_model": "deepseek-ai/DeepSeek-R1-Distill-Llama-70B"})
    assert {"mit", "llama3.3"} <= {ob.license.id for ob in lineage.obligations()}


def test_an_upstream_without_a_recorded_base_adds_nothing():
    lineage = lineage_of("", metadata={"base_model": "mistralai/Mistral-7B-v0.1"})
    assert [c.upstream.id for c in lineage.candidates] == ["mistralai/Mistral-7B-v0.1"]


# -- knowledge-base gaps of issue #20 -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("repo_id", "upstream", "license"),
    [
        ("Qwen/Qwen1.5-0.5B-Chat", "Qwen/Qwen1.5-0.5B-Chat", "tongyi-qianwen-research"),
        ("Qwen/Qwen1.5-7B-Chat", "Qwen/Qwen1.5-7B", "tongyi-qianwen"),
        ("google/gemma-3n-E4B-it", "google/gemma-3n-E4B-it", "gemma"),
        ("unsloth/gemma-3n-E2B-it-GGUF", "google/gemma-3n-E2B-it", "gemma"),
        ("meta-llama/Llama-Guard-3-1B", "meta-llama/Llama-Guard-3-1B", "llama3.2"),
        ("codellama/CodeLlama-7b-Instruct-hf", "codellama/CodeLlama-7b-hf", "llama2"),
        ("deepseek-ai/deepseek-math-7b-base", "deepseek-ai/deepseek-math-7b-base", "deepseek"),
        ("bigscience/bloomz-7b1-mt", "bigscience/bloomz-7b1-mt", "bigscience-bloom-rail-1.0"),
    ],
)
def test_knowledge_base_gaps_resolve(repo_id, upstream, license):
    hit = name_match(knowledge_base(), repo_id)
    assert hit is not None and hit.upstream.id == upstream and hit.upstream.license == license
    assert knowledge_base().licenses.get(license) is not None


def test_qwen_7b_chat_config_at_32768_matches_qwen_7b(tmp_path):
    """Qwen's own Qwen-7B-Chat-Int4 config.json (smalltong02/keras-llm-robot, commit 86a811b0): the v1.1 layout."""
    config = {
        "architectures": ["QWenLMHeadModel"],
        "model_type": "qwen",
        "hidden_size": 4096,
        "intermediate_size": 22016,
        "kv_channels": 128,
        "max_position_embeddings": 32768,
        "num_attention_heads": 32,
        "num_hidden_layers": 32,
        "seq_length": 8192,
        "vocab_size": 151936,
    }
    repo = make_repo(tmp_path, "qwen-chat-ft", card={"license": "apache-2.0"}, config=config)
    hit = assert_fires(scan(repo, Policy(publisher="acme")), "card.base_model_undeclared")[0]
    assert "Qwen/Qwen-7B" in hit.evidence["upstreams"]
    no_match = make_repo(tmp_path, "other", card={"license": "apache-2.0"}, config={**config, "hidden_size": 5120})
    assert_quiet(scan(no_match, Policy(publisher="acme")), "card.base_model_undeclared")


def test_a_base_model_written_as_its_hub_page_is_its_id(tmp_path):
    """TheBloke's Llama-2-7B-Chat re-upload card (code-index copy) writes
    `base_model: https://huggingface.co/meta-llama/Llama-2-7b-chat-hf`."""
    card = CardFacts(metadata={"base_model": "https://huggingface.co/meta-llama/Llama-2-7b-chat-hf"})
    assert card.base_models == ["meta-llama/Llama-2-7b-chat-hf"]
    lineage = infer_lineage(LineageInput(name="TheBloke/Llama-2-7B-Chat-GGUF", card=card), knowledge_base())
    assert lineage.unknown_declared == [] and lineage.candidate("meta-llama/Llama-2-7b-hf") is not None
    other = CardFacts(metadata={"base_model": "https://example.com/meta-llama/Llama-2-7b-chat-hf"})
    assert other.base_models == ["https://example.com/meta-llama/Llama-2-7b-chat-hf"]  # not the Hub: left as written
