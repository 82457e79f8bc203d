"""The provenance result: a weight comparison's verdict and the evidence it rests on, as typed values.

Everything that reads a verdict (the weights checks, `compare`, the HTML report's lineage graph and layer plot,
`watch`, the verdict cache) reads these attributes; nothing looks evidence up by a key string. The JSON form is the
verdict contract of DESIGN.md: `Verdict.to_json()` writes the same keys in the same order as before this type
existed, and each evidence item the object it always was ({"kind": ..., then its fields}).

Adding an evidence kind: a frozen dataclass here with its `kind`, `line()` and (when its JSON is not simply its
fields) `to_json()`, and its name in `Evidence` and `EVIDENCE_KINDS`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, ClassVar, Literal, TypeAlias, get_args

Conclusion = Literal["derived", "independent", "inconclusive"]
Relation = Literal["copy", "disguised copy", "fine-tune", "independent", "inconclusive"]
OUTCOMES: tuple[Conclusion, ...] = get_args(Conclusion)

# A derived verdict is a (disguised) copy rather than a fine-tune when nearly every hidden unit of the token matrix
# maps onto the upstream's and the matched units are nearly as correlated as a re-saved copy with noise: training
# moves the weights further than that.
COPY_SCORE = 0.9  # share of hidden units consistently matched
COPY_CORR = 0.9  # median |Spearman correlation| of the matched units

NULL_HYPOTHESIS = (
    "the suspect and reference were initialised independently (same architecture and training data allowed)"
)


def _fields_json(item: Any) -> dict[str, Any]:
    """{"kind": ..., then every field in order}: lists for tuples, as JSON has them."""
    out: dict[str, Any] = {"kind": item.kind}
    for f in fields(item):
        value = getattr(item, f.name)
        out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


@dataclass(frozen=True)
class TokenMatrixMatch:
    """The anchor: hidden units of a token matrix (indexed by token id, which no disguise can move) matched onto the
    reference's on two disjoint halves of sampled token rows."""

    kind: ClassVar[str] = "token-matrix"
    suspect_tensor: str
    reference_tensor: str
    tokens_per_half: int
    units_tested: int
    units_consistent: int
    median_matched_corr: float
    log10_p: float
    identity_alignment: bool | None  # units map onto the same indices (None: not decidable, e.g. a unit subset)

    def line(self) -> str:
        return (
            f"token matrix {self.suspect_tensor} ~ {self.reference_tensor}: "
            f"{self.units_consistent}/{self.units_tested} units consistent, median |corr| {self.median_matched_corr}"
        )

    def to_json(self) -> dict[str, Any]:
        return _fields_json(self)


@dataclass(frozen=True)
class ResidualVectorMatch:
    """One suspect residual vector (a norm weight, a bias), aligned through the anchor, and the reference vector it
    correlates with most."""

    kind: ClassVar[str] = "residual-vector"
    suspect_tensor: str
    reference_tensor: str
    corr: float
    nonfinite: int | None = None  # NaN/Inf values in the suspect's vector (None: not counted, identity alignment)

    def line(self) -> str:
        return f"{self.suspect_tensor} ~ {self.reference_tensor}: corr {self.corr}"

    def to_json(self) -> dict[str, Any]:
        out = _fields_json(self)
        if self.nonfinite is None:
            del out["nonfinite"]
        return out


@dataclass(frozen=True)
class ReferenceVectors:
    """The reference's residual vectors, so that a report can show which of its layers nothing matched (pruned)."""

    kind: ClassVar[str] = "reference-vectors"
    names: tuple[str, ...]

    def line(self) -> str:
        return f"reference residual vectors: {len(self.names)}"

    def to_json(self) -> dict[str, Any]:
        return _fields_json(self)


@dataclass(frozen=True)
class IdenticalFiles:
    """Weight files with the same sha256 on both sides: the comparison ends there."""

    kind: ClassVar[str] = "identical-file"
    sha256: tuple[str, ...]

    def line(self) -> str:
        return f"identical weight files: {', '.join(s[:12] for s in self.sha256)}"

    def to_json(self) -> dict[str, Any]:
        return _fields_json(self)


@dataclass(frozen=True)
class WeightsRead:
    """Which of a repo's weight files one side was read from (a GGUF variant, split parts)."""

    kind: ClassVar[str] = "weights-read"
    model: Literal["suspect", "reference"]
    detail: str

    def line(self) -> str:
        return f"{self.model} weights read from {self.detail}"

    def to_json(self) -> dict[str, Any]:
        return _fields_json(self)


@dataclass(frozen=True)
class ReadProblems:
    """What the weight readers could not use (unreadable tensors, unsupported quantizations), both sides."""

    kind: ClassVar[str] = "problems"
    detail: tuple[str, ...]

    def line(self) -> str:
        return f"problems reading the weights: {'; '.join(self.detail)}"

    def to_json(self) -> dict[str, Any]:
        return _fields_json(self)


@dataclass(frozen=True)
class ReadError:
    """The residual vectors could not be read (the verdict stands on the token matrices)."""

    kind: ClassVar[str] = "error"
    detail: str

    def line(self) -> str:
        return f"could not read the residual vectors: {self.detail}"

    def to_json(self) -> dict[str, Any]:
        return _fields_json(self)


Evidence: TypeAlias = (
    TokenMatrixMatch | ResidualVectorMatch | ReferenceVectors | IdenticalFiles | WeightsRead | ReadProblems | ReadError
)
EVIDENCE_KINDS: dict[str, type[Evidence]] = {
    c.kind: c
    for c in (
        TokenMatrixMatch,
        ResidualVectorMatch,
        ReferenceVectors,
        IdenticalFiles,
        WeightsRead,
        ReadProblems,
        ReadError,
    )
}


def evidence_from_json(item: Any) -> Evidence:
    """One evidence item from its JSON object; ValueError for an unknown kind or fields that do not fit."""
    if not isinstance(item, dict) or not isinstance(item.get("kind"), str):
        raise ValueError(f"not an evidence item: {str(item)[:80]}")
    cls = EVIDENCE_KINDS.get(item["kind"])
    if cls is None:
        raise ValueError(f"unknown evidence kind {item['kind']!r}")
    values: dict[str, Any] = {k: (tuple(v) if isinstance(v, list) else v) for k, v in item.items() if k != "kind"}
    try:
        return cls(**values)
    except TypeError as exc:
        raise ValueError(f"evidence {item['kind']!r}: {exc}") from None


@dataclass(frozen=True)
class Verdict:
    """Was the suspect's weight set derived from the reference's? The outcome with its p-value under the null
    hypothesis, the score (share of hidden units consistently matched), what was read, and the evidence."""

    suspect: str
    reference: str
    verdict: Conclusion
    p_value: float
    score: float
    bytes_read: int
    weight_bytes: int
    evidence: tuple[Evidence, ...] = ()
    reason: str = ""
    null_hypothesis: str = NULL_HYPOTHESIS
    log10_p_value: float = 0.0
    seconds: float = 0.0

    @property
    def derived(self) -> bool:
        return self.verdict == "derived"

    @property
    def anchor(self) -> TokenMatrixMatch | None:
        """The token-matrix evidence the verdict stands on, when there is one."""
        return next((e for e in self.evidence if isinstance(e, TokenMatrixMatch)), None)

    @property
    def relation(self) -> Relation:
        """How the suspect relates to the reference: a byte-identical or disguised copy, a fine-tune (any other
        derivation), independent or inconclusive (see COPY_SCORE and COPY_CORR)."""
        if self.verdict != "derived":
            return self.verdict
        if any(isinstance(e, IdenticalFiles) for e in self.evidence):
            return "copy"
        anchor = self.anchor
        if self.score >= COPY_SCORE and anchor is not None and anchor.median_matched_corr >= COPY_CORR:
            return "disguised copy"
        return "fine-tune"

    def reused(self) -> Verdict:
        """This verdict as a remembered one: nothing was read or computed to give it this time."""
        return replace(self, bytes_read=0, seconds=0.0)

    def to_json(self) -> dict[str, Any]:
        """The JSON verdict contract (DESIGN.md)."""
        return {
            "suspect": self.suspect,
            "reference": self.reference,
            "verdict": self.verdict,
            "p_value": self.p_value,
            "score": self.score,
            "bytes_read": self.bytes_read,
            "weight_bytes": self.weight_bytes,
            "evidence": [e.to_json() for e in self.evidence],
            "reason": self.reason,
            "null_hypothesis": self.null_hypothesis,
            "log10_p_value": self.log10_p_value,
            "seconds": self.seconds,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Verdict:
        """A verdict from its JSON form; ValueError when it does not fit (a record from another version)."""
        if d.get("verdict") not in OUTCOMES:
            raise ValueError(f"not a verdict: {str(d.get('verdict'))[:40]!r}")
        try:
            return cls(
                str(d["suspect"]),
                str(d["reference"]),
                d["verdict"],
                float(d["p_value"]),
                float(d["score"]),
                int(d["bytes_read"]),
                int(d["weight_bytes"]),
                tuple(evidence_from_json(e) for e in d.get("evidence") or []),
                str(d.get("reason", "")),
                str(d.get("null_hypothesis", NULL_HYPOTHESIS)),
                float(d.get("log10_p_value", 0.0)),
                float(d.get("seconds", 0.0)),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a verdict: {exc}") from None


@dataclass(frozen=True)
class WeightMatch:
    """A registered upstream the weights were compared with (see scanner.provenance.index), and the verdict."""

    name: str  # the upstream's registered name (usually its Hub id)
    license: str | None
    verdict: Verdict


__all__ = [
    "COPY_CORR",
    "COPY_SCORE",
    "EVIDENCE_KINDS",
    "Evidence",
    "IdenticalFiles",
    "NULL_HYPOTHESIS",
    "OUTCOMES",
    "Conclusion",
    "ReadError",
    "ReadProblems",
    "ReferenceVectors",
    "Relation",
    "ResidualVectorMatch",
    "TokenMatrixMatch",
    "Verdict",
    "WeightMatch",
    "WeightsRead",
    "evidence_from_json",
]
