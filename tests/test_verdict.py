"""The typed provenance result (scanner/provenance/result.py): the JSON verdict contract of DESIGN.md byte for byte,
every evidence kind saying itself in one line and as JSON, and the relation's thresholds.

tests/fixtures/verdicts/contract.json was written by the code before the typed Verdict (commit abf11c2, evidence as
dicts) on the provenance fixtures and the examples: `compare`'s JSON must stay the same bytes (less `seconds` and
`bytes_read`, which measure the run, not the judgement).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scanner.provenance.compare import compare_paths, compare_snapshots
from scanner.provenance.result import (
    COPY_CORR,
    COPY_SCORE,
    EVIDENCE_KINDS,
    Evidence,
    IdenticalFiles,
    ReadError,
    ReadProblems,
    ReferenceVectors,
    ResidualVectorMatch,
    TokenMatrixMatch,
    Verdict,
    WeightsRead,
    evidence_from_json,
)
from scanner.sources.local import LocalSource

ROOT = Path(__file__).resolve().parent.parent
CONTRACT = json.loads((ROOT / "tests" / "fixtures" / "verdicts" / "contract.json").read_text())
CONTRACT_KEYS = ["suspect", "reference", "verdict", "p_value", "score", "bytes_read", "weight_bytes", "evidence"]


def judged(name: str) -> dict:
    """The current code's verdict on a contract pair, in the contract file's form."""
    if name == "identical":
        up = str(ROOT / "examples" / "upstreams" / "llama-3-8b")
        v = compare_snapshots(LocalSource(up, target="a").snapshot(), LocalSource(up, target="b").snapshot())
    else:
        suspect, reference = name.split(" vs ")
        v = compare_paths(ROOT / suspect, ROOT / reference)
    out = v.to_json()
    assert list(out)[: len(CONTRACT_KEYS)] == CONTRACT_KEYS
    assert Verdict.from_json(out) == v  # what the verdict cache stores, restored
    out.pop("seconds"), out.pop("bytes_read")
    if name != "identical":
        out["suspect"], out["reference"] = name.split(" vs ")
    return out


@pytest.mark.parametrize("name", sorted(CONTRACT))
def test_verdict_json_is_byte_compatible_on_the_fixtures(name):
    assert json.dumps(judged(name), indent=1) == json.dumps(CONTRACT[name], indent=1)


def test_the_contract_covers_every_outcome_and_the_common_kinds():
    assert {v["verdict"] for v in CONTRACT.values()} == {"derived", "independent"}
    kinds = {e["kind"] for v in CONTRACT.values() for e in v["evidence"]}
    assert kinds == {"token-matrix", "residual-vector", "reference-vectors", "identical-file"}


ONE_OF_EACH: list[Evidence] = [
    TokenMatrixMatch("model.embed_tokens.weight", "tok_embeddings.weight", 32, 64, 60, 0.9731, -41.2, True),
    ResidualVectorMatch("model.layers.0.input_layernorm.weight", "layers.0.attention_norm.weight", 0.99, nonfinite=0),
    ResidualVectorMatch("norm.weight", "model.norm.weight", -0.12),
    ReferenceVectors(("model.layers.0.input_layernorm.weight", "model.norm.weight")),
    IdenticalFiles(("ab" * 32, "cd" * 32)),
    WeightsRead("suspect", "tiny-Q4_K.gguf, the smallest readable of 4 GGUF models"),
    ReadProblems(("lm_head.weight: 4-bit bitsandbytes", "a truncated shard")),
    ReadError("unexpected end of file"),
]


def test_every_evidence_kind_says_itself_in_one_line_and_as_json():
    assert {type(e) for e in ONE_OF_EACH} == set(EVIDENCE_KINDS.values())
    for e in ONE_OF_EACH:
        line = e.line()
        assert line and "\n" not in line
        doc = e.to_json()
        assert next(iter(doc)) == "kind" and doc["kind"] == e.kind
        assert json.loads(json.dumps(doc)) == doc  # plain JSON values only
        assert evidence_from_json(json.loads(json.dumps(doc))) == e


def test_an_identity_aligned_vector_has_no_nonfinite_key():
    assert "nonfinite" not in ResidualVectorMatch("a", "b", 0.5).to_json()
    assert ResidualVectorMatch("a", "b", 0.5, nonfinite=3).to_json()["nonfinite"] == 3


@pytest.mark.parametrize(
    "item",
    [{"kind": "behaviour-canaries"}, {"kind": "token-matrix", "units": 3}, {"no": "kind"}, ["token-matrix"]],
)
def test_an_unknown_or_misshapen_evidence_item_is_refused(item):
    with pytest.raises(ValueError):
        evidence_from_json(item)


def test_a_verdict_of_another_shape_is_refused():
    good = Verdict("s", "r", "derived", 0.0, 1.0, 0, 1, (IdenticalFiles(("ab",)),)).to_json()
    assert Verdict.from_json(good).relation == "copy"
    for broken in ({**good, "verdict": "maybe"}, {k: v for k, v in good.items() if k != "score"}):
        with pytest.raises(ValueError):
            Verdict.from_json(broken)


def anchored(score: float, corr: float, outcome: str = "derived") -> Verdict:
    anchor = TokenMatrixMatch("e", "e", 32, 64, round(score * 64), corr, -30.0, True)
    return Verdict("s", "r", outcome, 1e-30, score, 0, 1, (anchor,))  # type: ignore[arg-type]


def test_relation_thresholds():
    assert anchored(COPY_SCORE, COPY_CORR).relation == "disguised copy"  # both thresholds are inclusive
    assert anchored(1.0, 0.9992).relation == "disguised copy"
    assert anchored(1.0, COPY_CORR - 0.01).relation == "fine-tune"  # retrained: the units moved
    assert anchored(COPY_SCORE - 0.01, 1.0).relation == "fine-tune"  # not nearly every unit matched
    assert anchored(1.0, 1.0, "independent").relation == "independent"
    assert anchored(0.3, 0.5, "inconclusive").relation == "inconclusive"
    copy = Verdict("s", "r", "derived", 0.0, 1.0, 0, 1, (IdenticalFiles(("ab",)),))
    assert copy.relation == "copy"
    no_anchor = Verdict("s", "r", "derived", 0.0, 1.0, 0, 1, (ResidualVectorMatch("a", "b", 0.99),))
    assert no_anchor.relation == "fine-tune"  # residual vectors alone never call it a copy


def test_relation_on_the_examples():
    up = ROOT / "examples" / "upstreams"
    assert compare_paths(ROOT / "examples" / "undeclared-derivative", up / "llama-3-8b").relation == "fine-tune"
    assert compare_paths(ROOT / "examples" / "llama3-v-style", up / "minicpm-llama3-v-2_5").relation == "disguised copy"
    assert compare_paths(ROOT / "examples" / "clean-llama3-finetune", up / "minicpm-llama3-v-2_5").relation == (
        "independent"
    )


def test_a_remembered_verdict_read_nothing():
    v = anchored(1.0, 1.0)
    v = Verdict(v.suspect, v.reference, v.verdict, v.p_value, v.score, 1234, 99, v.evidence, seconds=0.5)
    again = v.reused()
    assert (again.bytes_read, again.seconds) == (0, 0.0) and again.evidence == v.evidence
