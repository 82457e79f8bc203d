"""Behavioural provenance: the statistics behind `originscan probe`, in plain numpy (no torch needed).

A derivative that left weight space — a student distilled on a teacher's outputs, a re-architected copy — still
behaves like its source. Three tests, each with a null distribution measured on *independent* models (models the
caller knows were not derived from the reference), so every verdict carries a p-value and an explicit
false-positive rate:

* **idiosyncratic agreement**: on a fixed probe text, the positions where the reference predicts the next token
  *wrongly* and the independent models do not make the same mistake; the score is how often the suspect makes
  it. Right answers and common mistakes are shared by every good model; the reference's own mistakes are the
  signature of learning from it.
* **hidden-state CKA**: linear centred kernel alignment (Kornblith et al. 2019; REEF, Zhang et al. 2024) between
  the suspect's and the reference's mean-pooled last hidden states over the same probe texts. Invariant to
  orthogonal transforms and scaling of the representation, so permuted or rotated copies keep their score.
  Two strong models trained on the same kind of data represent text alike (all-mpnet-base-v2 and
  all-MiniLM-L6-v2: 0.89), so the CKA null is only valid for a suspect no stronger than the independent models:
  for encoders, a suspect that tells the halves of the probe texts apart better than every independent model
  (text_halves_auc, measured without the reference) leaves the CKA test uncalibrated and the verdict at best
  "inconclusive", saying why, never "derived" from a null that does not cover it.
* **aligned dimensions** (suspect and reference of the same width): a derivative — fine-tuned, noised, pruned —
  keeps its parent's hidden dimensions in place, so dimension k of the suspect correlates with dimension k of the
  reference; an independent model's dimensions are in an arbitrary order (a network is the same function under any
  relabelling of its hidden units), so under the null the matching by index is a random one. The p-value is a
  Monte Carlo permutation test within the pair: exact, and needing no independent models at all.
* **owner canaries**: prompts the owner registered with their model's characteristic answers (right and wrong);
  the score is how many the suspect reproduces; and where the owner also registered the right answers to its
  wrong ones, how strongly the suspect prefers the wrong answers to the right ones (canary_likelihood_test).

The null of the first two is parametric: the independent models' scores, on a scale where they are roughly
normal (logit of a proportion, Fisher z of a CKA), and the one-sided Student-t *predictive* p-value of the
suspect's score — exact for a new draw from the same normal population however few independent models were
measured (few models only widen the tails). The canary null is the Poisson-binomial tail with each canary's rate
among independent models: its own hits shrunk towards the rate over the canaries of its kind (rule of succession).
The kinds are the owner's right answers, wrong answers and unmarked ones: a right answer is reproduced by every
model that learned the skill, a wrong one only by a model that learned it from the reference, so a reproduced
wrong answer weighs by the (low) rate of wrong answers among independent models, not by the rate of all. The
p-value is the tail of the summed surprisal of the hits; with independent models the right answers, which a
skilled model gives all together (not as independent trials), are counted against a beta-binomial whose
overdispersion is the one the independent models show. With no
independent model at all every canary counts as a coin flip, which is conservative and still decisive for 20
canaries, as long as the skill is private (a public skill's right answers need independent models to weigh).
Several tests are combined by Bonferroni (p = tests x smallest p), so the verdict's false-positive rate is at
most ALPHA whatever the dependence between the tests.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

ALPHA = 1e-3  # "derived" below this combined p-value: the verdict's false-positive rate, fixed before tuning
INDEPENDENT_P = 0.05  # "independent" above it; in between the evidence is weak either way ("inconclusive")
MIN_NULL_MODELS = 2  # a parametric null needs a spread: at least two independent models
MIN_POSITIONS = 20  # fewer reference mistakes than this measure nothing

NULL_HYPOTHESIS = (
    "the suspect behaves like the independent models: it was not trained from the reference's weights or outputs"
)


@dataclass(frozen=True)
class BehaviourTest:
    """One test of the suspect against the reference, with the scores independent models got on it."""

    name: str  # idiosyncratic-agreement | hidden-state-cka | canaries
    score: float
    p_value: float | None  # None: not enough independent models to calibrate it (the test does not vote)
    null_scores: tuple[float, ...]
    detail: str
    uncalibrated: str = ""  # why the test does not vote although it was measured (its null does not cover the suspect)

    def to_json(self) -> dict[str, Any]:
        return {"kind": "behaviour-" + self.name, **asdict(self), "null_scores": list(self.null_scores)}


@dataclass(frozen=True)
class BehaviourVerdict:
    """The behaviour verdict: the same contract as the weight comparison's (suspect, reference, verdict, p_value,
    score, bytes_read, weight_bytes, evidence), with kind "behaviour" and its false-positive rate."""

    suspect: str
    reference: str
    verdict: str  # derived | independent | inconclusive
    p_value: float
    score: float
    tests: tuple[BehaviourTest, ...]
    reason: str
    null_models: tuple[str, ...] = ()
    bytes_read: int = 0
    weight_bytes: int = 0
    seconds: float = 0.0
    alpha: float = ALPHA
    null_hypothesis: str = NULL_HYPOTHESIS

    @property
    def reference_id(self) -> str:
        """The reference as the lineage names an upstream: a Hub id without `hf:` and its revision; else as given."""
        m = re.fullmatch(r"\s*hf:/*([^@\s]+?)/*(?:@\S*)?\s*", self.reference)
        return m.group(1) if m else self.reference

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "behaviour",
            "suspect": self.suspect,
            "reference": self.reference,
            "verdict": self.verdict,
            "p_value": self.p_value,
            "score": self.score,
            "bytes_read": self.bytes_read,
            "weight_bytes": self.weight_bytes,
            "evidence": [t.to_json() for t in self.tests],
            "reason": self.reason,
            "null_hypothesis": self.null_hypothesis,
            "null_models": list(self.null_models),
            "false_positive_rate": self.alpha,
            "seconds": self.seconds,
        }


# ------------------------------------------------------------------------------------------- reading back ---
MAX_RESULTS_BYTES = 4 << 20  # a probe results file is a few kB per verdict; more is not one
VERDICTS = ("derived", "independent", "inconclusive")


def _number(d: dict[str, Any], key: str, *, probability: bool = False, optional: bool = False) -> float | None:
    value = d.get(key)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{key} is not a number")
    if probability and not 0.0 <= value <= 1.0:
        raise ValueError(f"{key} {value} is not a probability")
    return float(value)


def _text(d: dict[str, Any], key: str, *, limit: int = 4000, required: bool = True) -> str:
    value = d.get(key, None if required else "")
    if not isinstance(value, str) or (required and not value.strip()) or len(value) > limit:
        raise ValueError(f"{key} is missing or not a string of at most {limit} characters")
    return value


def _test_from_json(item: Any) -> BehaviourTest:
    kind = item.get("kind") if isinstance(item, dict) else None
    if not isinstance(kind, str) or not kind.startswith("behaviour-"):
        raise ValueError("an evidence item is not a behaviour test")
    nulls = item.get("null_scores", [])
    if not isinstance(nulls, list) or len(nulls) > 10_000:
        raise ValueError("null_scores is not a list")
    return BehaviourTest(
        kind.removeprefix("behaviour-")[:100],
        _number(item, "score") or 0.0,
        _number(item, "p_value", probability=True, optional=True),
        tuple(_number({"null_scores": x}, "null_scores") or 0.0 for x in nulls),
        _text(item, "detail", required=False),
        _text(item, "uncalibrated", required=False),
    )


def verdict_from_json(d: Any) -> BehaviourVerdict:
    """A behaviour verdict from what `BehaviourVerdict.to_json()` wrote; ValueError naming the first field that
    does not fit (the file may come from anywhere: every value is checked, nothing is trusted)."""
    if not isinstance(d, dict) or d.get("kind") != "behaviour":
        raise ValueError('not a behaviour verdict (no "kind": "behaviour")')
    if d.get("verdict") not in VERDICTS:
        raise ValueError(f"verdict {str(d.get('verdict'))[:40]!r} is not one of {', '.join(VERDICTS)}")
    evidence = d.get("evidence", [])
    models = d.get("null_models", [])
    if not isinstance(evidence, list) or len(evidence) > 100:
        raise ValueError("evidence is not a list of behaviour tests")
    if not isinstance(models, list) or len(models) > 10_000 or not all(isinstance(m, str) for m in models):
        raise ValueError("null_models is not a list of names")
    return BehaviourVerdict(
        _text(d, "suspect", limit=1000),
        _text(d, "reference", limit=1000),
        d["verdict"],
        _number(d, "p_value", probability=True) or 0.0,
        _number(d, "score") or 0.0,
        tuple(_test_from_json(t) for t in evidence),
        _text(d, "reason", required=False),
        tuple(m[:1000] for m in models),
        alpha=_number(d, "false_positive_rate", probability=True) or 0.0,
    )


def read_probe_results(text: str) -> list[BehaviourVerdict]:
    """The verdicts in what `originscan probe -f json` wrote: one verdict object or a list of them."""
    if len(text) > MAX_RESULTS_BYTES:
        raise ValueError(f"more than {MAX_RESULTS_BYTES} bytes: not probe results")

    def no_constants(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    try:
        data = json.loads(text, parse_constant=no_constants)
    except RecursionError:
        raise ValueError("nested too deeply to be probe results") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg}, line {exc.lineno})") from None
    items = data if isinstance(data, list) else [data]
    if not items:
        raise ValueError("no verdict in it")
    out = []
    for i, item in enumerate(items):
        try:
            out.append(verdict_from_json(item))
        except ValueError as exc:
            raise ValueError(f"verdict {i + 1}: {exc}" if len(items) > 1 else str(exc)) from None
    return out


# --------------------------------------------------------------------------------------------------- scores ---


@dataclass(frozen=True)
class Agreement:
    """How often the suspect repeated the reference's wrong next-token guesses."""

    same: int  # positions where the suspect guessed the reference's wrong token
    mistakes: int  # positions where the reference was wrong

    @property
    def rate(self) -> float:
        """Shrunk towards 1/2 by half a count each way, so that 0 and 1 stay finite on the logit scale."""
        return (self.same + 0.5) / (self.mistakes + 1.0)


def idiosyncratic_agreement(
    reference_guess: np.ndarray, truth: np.ndarray, suspect_guess: np.ndarray, others: Sequence[np.ndarray] = ()
) -> Agreement:
    """Top-1 next-token guesses (any shape, the same for all; -1 marks a position to ignore). The positions
    counted are the reference's mistakes that none of `others` (independent models) made too: a mistake every
    model makes ("the" after "of") says nothing about where the suspect learned it."""
    ref, true, sus = (np.asarray(a).ravel() for a in (reference_guess, truth, suspect_guess))
    if not ref.shape == true.shape == sus.shape or any(np.asarray(o).size != ref.size for o in others):
        raise ValueError("guesses and truth must have the same shape")
    wrong = (ref != true) & (true >= 0) & (ref >= 0)
    for other in others:
        wrong &= np.asarray(other).ravel() != ref
    return Agreement(int(np.count_nonzero(sus[wrong] == ref[wrong])), int(np.count_nonzero(wrong)))


def agreements(
    reference_guess: np.ndarray, truth: np.ndarray, suspect_guess: np.ndarray, null_guesses: Sequence[np.ndarray]
) -> tuple[Agreement, list[Agreement]]:
    """The suspect's and each independent model's agreement, leave-one-out: independent model j is scored on the
    reference's mistakes the *other* independent models did not make, and the suspect on each of those same
    position sets in turn (summed), so that under the null it is scored exactly like an independent model."""
    if len(null_guesses) < 2:
        return idiosyncratic_agreement(reference_guess, truth, suspect_guess, null_guesses), []
    nulls, suspect = [], Agreement(0, 0)
    for j, guess in enumerate(null_guesses):
        rest = [g for i, g in enumerate(null_guesses) if i != j]
        nulls.append(idiosyncratic_agreement(reference_guess, truth, guess, rest))
        mine = idiosyncratic_agreement(reference_guess, truth, suspect_guess, rest)
        suspect = Agreement(suspect.same + mine.same, suspect.mistakes + mine.mistakes)
    return suspect, nulls


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA of two representations of the same n inputs (n x d1, n x d2): HSIC of the centred Gram
    matrices, normalised. Computed on the n x n Grams, so the models' widths may differ and cost nothing."""
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[0] or a.shape[0] < 3:
        raise ValueError("CKA needs two matrices with the same number (>= 3) of rows")
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    ka, kb = a @ a.T, b @ b.T
    cross = float(np.sum(ka * kb))
    norm = math.sqrt(float(np.sum(ka * ka)) * float(np.sum(kb * kb)))
    return cross / norm if norm > 0 else 0.0


def canary_hit(expected: str, answer: str) -> bool:
    """The suspect reproduced a canary when its continuation starts with the registered answer (whitespace at
    either end ignored: tokenizers differ in where they put it)."""
    want = expected.strip()
    return bool(want) and answer.strip().startswith(want)


# ------------------------------------------------------------------------------------------------- p-values ---


def logit(p: float) -> float:
    p = min(max(p, 1e-9), 1 - 1e-9)
    return math.log(p / (1 - p))


def fisher_z(r: float) -> float:
    return math.atanh(min(max(r, -1 + 1e-9), 1 - 1e-9))


def predictive_p(score: float, null_scores: Sequence[float]) -> float | None:
    """One-sided p-value of `score` (already on a roughly normal scale) against independent models' scores: the
    Student-t predictive distribution of one more draw from their normal population. None with fewer than
    MIN_NULL_MODELS scores."""
    from scipy.stats import t as student_t

    null = np.asarray(null_scores, dtype=np.float64)
    m = null.size
    if m < MIN_NULL_MODELS:
        return None
    spread = float(null.std(ddof=1))
    spread = max(spread, 1e-6 * max(1.0, abs(float(null.mean()))))  # identical null scores: a tiny spread
    t = (score - float(null.mean())) / (spread * math.sqrt(1 + 1 / m))
    return float(student_t.sf(t, df=m - 1))


def poisson_binomial_sf(k: int, rates: Sequence[float]) -> float:
    """P(X >= k) for X the number of successes of independent trials with the given success rates."""
    dist = np.zeros(len(rates) + 1)
    dist[0] = 1.0
    for q in rates:
        dist[1:] = dist[1:] * (1 - q) + dist[:-1] * q
        dist[0] *= 1 - q
    return float(min(1.0, max(0.0, dist[max(k, 0) :].sum())))


SURPRISAL_BINS = 20_000  # the surprisal scale's resolution: the sum of all canaries' surprisals in this many steps


def surprisal_tail(hits: Sequence[bool], rates: Sequence[float]) -> float:
    """P(S >= s): S is the summed surprisal -log(rate) of the canaries an independent model reproduces (each
    independently, with its rate), s the suspect's. Surprisals are counted in whole steps of a scale fixed by
    the rates alone (at least 0.01 nats), the same for the suspect and the null, so the tail is exact for the
    rounded statistic. With equal rates it is the Poisson-binomial tail of the number of hits."""
    if len(hits) != len(rates):
        raise ValueError("one rate per canary")
    q = np.clip(np.asarray(rates, dtype=np.float64), 1e-12, 1 - 1e-12)
    surprisal = -np.log(q)
    step = max(0.01, float(surprisal.sum()) / SURPRISAL_BINS)
    units = np.rint(surprisal / step).astype(np.int64)
    s = int(sum(int(u) for u, h in zip(units, hits) if h))
    if s == 0:
        return 1.0
    dist = np.zeros(s + 1)  # dist[j]: P(S = j steps) for j < s; dist[s]: P(S >= s)
    dist[0] = 1.0
    for u, rate in zip(units, q):
        shifted = np.zeros_like(dist)
        if u < s:
            shifted[u:s] = dist[: s - u]
        shifted[s] = dist[max(0, s - u) :].sum()
        dist = dist * (1 - rate) + shifted * rate
    return float(min(1.0, max(0.0, dist[s])))


PRIOR_MODELS = 2.0  # how many independent models' worth of weight the pooled rate has in each canary's rate


def canary_null_rates(
    null_hits: Sequence[Sequence[bool]], n_canaries: int, kinds: Sequence[bool | None] | None = None
) -> list[float]:
    """Each canary's chance of being reproduced by an independent model. The rate over the canaries of its kind
    (`kinds[i]`: the owner's `correct` flag; all one kind when None) and over all models, by the rule of
    succession, (hits + 1) / (trials + 2), is the prior; each canary's own hits move it:
    (hits_i + PRIOR_MODELS * pooled) / (models + PRIOR_MODELS). A canary independent models do answer gets a
    high rate of its own, and the right answers that every skilled model gives do not lift the rate of the wrong
    ones; with no independent model every canary counts as a coin flip."""
    m = len(null_hits)
    kinds = list(kinds) if kinds is not None else [None] * n_canaries
    if len(kinds) != n_canaries:
        raise ValueError("one kind per canary")
    counts = np.zeros(n_canaries)
    for hits in null_hits:
        if len(hits) != n_canaries:
            raise ValueError("every independent model must answer every canary")
        counts += np.asarray(hits, dtype=np.float64)
    pooled = {}
    for kind in set(kinds):
        mine = [c for c, k in zip(counts, kinds) if k == kind]
        pooled[kind] = (sum(mine) + 1) / (m * len(mine) + 2)
    return [float((c + PRIOR_MODELS * pooled[k]) / (m + PRIOR_MODELS)) for c, k in zip(counts, kinds)]


# ------------------------------------------------------------------------------------------------------ tests ---


def agreement_test(suspect: Agreement, null: Sequence[Agreement]) -> BehaviourTest:
    p = predictive_p(logit(suspect.rate), [logit(a.rate) for a in null])
    if suspect.mistakes < MIN_POSITIONS:
        p = None
    detail = (
        f"repeated {100 * suspect.same / max(1, suspect.mistakes):.1f} % of the reference's wrong next-token guesses "
        f"that independent models did not make ({suspect.mistakes} counted); independent models: "
        + (", ".join(f"{100 * a.same / max(1, a.mistakes):.1f} %" for a in null) or "none measured")
    )
    return BehaviourTest("idiosyncratic-agreement", suspect.rate, p, tuple(a.rate for a in null), detail)


def cka_test(
    suspect: float, null: Sequence[float], suspect_quality: float | None = None, null_quality: Sequence[float] = ()
) -> BehaviourTest:
    """The suspect's CKA with the reference against the independent models'. With the models' qualities
    (text_halves_auc: how much of the texts' content each representation keeps, measured without the reference),
    a suspect of higher quality than every independent model is outside what the null covers: strong models agree
    with each other whatever their lineage, so its CKA is not judged (p None) and the test says why."""
    p = predictive_p(fisher_z(suspect), [fisher_z(c) for c in null])
    detail = f"linear CKA of last hidden states {suspect:.4f}; independent models: " + (
        ", ".join(f"{c:.4f}" for c in null) or "none measured"
    )
    why = ""
    if suspect_quality is not None and null and (not null_quality or suspect_quality > max(null_quality)):
        p = None
        why = (
            f"the null models are weaker than the suspect: it matches the halves of the probe texts better "
            f"(AUC {suspect_quality:.3f}) than every independent model ("
            + (", ".join(f"{q:.3f}" for q in null_quality) or "none measured")
            + "), and strong encoders represent text alike whatever their lineage: give independent models "
            "at least as strong (--null) to judge its CKA"
        )
    return BehaviourTest("hidden-state-cka", suspect, p, tuple(null), detail, why)


def text_halves_auc(first: np.ndarray, second: np.ndarray) -> float:
    """How well a model's representation keeps what a text is about, without any reference or label: row i of
    `first` and `second` are its pooled states of the first and second half of probe text i; the score is the
    mean over texts of the fraction of the other texts' second halves that are less similar (cosine, after
    centring) to the first half than its own second half (the area under the ROC curve of retrieving it)."""
    a, b = np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64)
    if a.ndim != 2 or a.shape != b.shape or a.shape[0] < 3:
        raise ValueError("text halves need two matrices of the same shape with at least 3 rows")
    centre = np.concatenate([a, b]).mean(axis=0)
    a, b = a - centre, b - centre
    a /= np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b /= np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    sim = a @ b.T
    own = np.diag(sim)[:, None]
    n = sim.shape[0]
    return float(np.mean((np.sum(sim < own, axis=1)) / (n - 1)))


PERMUTATIONS = 19_999  # the aligned-dimensions test's random relabellings: its smallest p-value is 1 / 20,000
PERMUTATION_SEED = 0  # fixed: the same pair always gets the same p-value


def _column_correlations(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson correlation of every column of x with every column of y (a constant column correlates 0)."""
    a = np.asarray(x, dtype=np.float64)
    b = np.asarray(y, dtype=np.float64)
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    a /= np.maximum(np.linalg.norm(a, axis=0), 1e-12)
    b /= np.maximum(np.linalg.norm(b, axis=0), 1e-12)
    corr: np.ndarray = a.T @ b
    return corr


def aligned_dimensions_test(
    suspect: np.ndarray, reference: np.ndarray, permutations: int = PERMUTATIONS, seed: int = PERMUTATION_SEED
) -> BehaviourTest | None:
    """Whether the suspect's hidden dimensions line up with the reference's (texts x width each, the same
    width): the score is the mean correlation of dimension k with dimension k over the probe texts; the
    p-value the share of random relabellings of the suspect's dimensions that match at least as well (Monte
    Carlo, counting the observed one). None when the widths differ (nothing to line up)."""
    x, y = np.asarray(suspect), np.asarray(reference)
    if x.ndim != 2 or x.shape != y.shape or x.shape[0] < 3 or x.shape[1] < 2:
        return None
    corr = _column_correlations(x, y)
    width = corr.shape[0]
    observed = float(np.trace(corr))
    rng = np.random.default_rng(seed)
    rows = np.arange(width)
    at_least, done = 0, 0
    while done < permutations:
        block = min(1000, permutations - done)
        relabelled = rng.permuted(np.tile(rows, (block, 1)), axis=1)
        at_least += int(np.count_nonzero(corr[rows, relabelled].sum(axis=1) >= observed - 1e-12))
        done += block
    p = (at_least + 1) / (permutations + 1)
    # the permutation distribution's mean and spread (Hoeffding's combinatorial central limit theorem): for the detail
    centred = corr - corr.mean(axis=1, keepdims=True) - corr.mean(axis=0, keepdims=True) + corr.mean()
    spread = math.sqrt(float(np.sum(centred**2)) / (width - 1))
    z = (observed - float(corr.sum()) / width) / spread if spread > 0 else 0.0
    detail = (
        f"dimension k of the suspect correlates with dimension k of the reference {observed / width:+.3f} on "
        f"average over {width} dimensions ({z:.1f} standard deviations above random relabellings; "
        f"{permutations:,} tried, {at_least:,} matched as well)"
    )
    return BehaviourTest("aligned-dimensions", observed / width, p, (), detail)


def canary_test(
    suspect_hits: Sequence[bool], null_hits: Sequence[Sequence[bool]], kinds: Sequence[bool | None] | None = None
) -> BehaviourTest:
    """The suspect's reproduced canaries against independent models'. `kinds` are the owner's `correct` flags
    (None: unmarked): the rates are pooled per kind (canary_null_rates). The p-value is the chance that an
    independent model reproduces canaries at least as unlikely as the suspect's: the Poisson-binomial tail of
    the summed surprisal -log(rate) of its hits, so one reproduced wrong answer (rare under the null) weighs more
    than one right answer (common under the null); with independent models and answers marked right, those are
    counted model by model (right_answers_p)."""
    n = len(suspect_hits)
    if n == 0:
        raise ValueError("no canaries")
    k = sum(bool(h) for h in suspect_hits)
    kinds_ = list(kinds) if kinds is not None else [None] * n
    rates = canary_null_rates(null_hits, n, kinds_)
    right = [i for i, c in enumerate(kinds_) if c is True]
    if right and len(null_hits) >= MIN_NULL_MODELS:
        p = _right_and_rest(suspect_hits, null_hits, rates, right)
    else:
        p = surprisal_tail(suspect_hits, rates)
    null_scores = tuple(sum(map(bool, h)) / n for h in null_hits)
    wrong = [h for h, c in zip(suspect_hits, kinds_) if c is False]
    detail = f"reproduced {k} of {n} owner canaries" + (
        f" ({sum(map(bool, wrong))} of the reference's {len(wrong)} wrong answers)" if wrong else ""
    )
    detail += "; independent models: " + (
        ", ".join(f"{sum(map(bool, h))}/{n}" for h in null_hits) or "none measured (each canary counted as 1/2)"
    )
    return BehaviourTest("canaries", k / n, p, null_scores, detail)


def right_answers_p(k: int, n: int, null_counts: Sequence[int]) -> float:
    """P(K >= k) for the number K of the owner's n right answers an independent model gives: beta-binomial, its
    mean the rule-of-succession rate over the independent models' answers and its overdispersion the one their
    counts show beyond binomial noise (method of moments). A model that learned the skill gives the right answers
    all together: independent models that did make the counts overdispersed, so right answers weigh little; when
    none did, it is the binomial tail."""
    from scipy.stats import betabinom, binom

    m = len(null_counts)
    mu = (sum(null_counts) + 1) / (m * n + 2)
    spread = float(np.var(np.asarray(null_counts, dtype=np.float64) / n, ddof=1)) if m >= 2 else 0.0
    rho = (spread - mu * (1 - mu) / n) / (mu * (1 - mu) * (1 - 1 / n)) if n > 1 else 0.0
    rho = min(max(rho, 0.0), 0.999)
    if rho < 1e-9:
        return float(binom.sf(k - 1, n, mu))
    return float(betabinom.sf(k - 1, n, mu * (1 - rho) / rho, (1 - mu) * (1 - rho) / rho))


def _right_and_rest(
    suspect_hits: Sequence[bool], null_hits: Sequence[Sequence[bool]], rates: Sequence[float], right: Sequence[int]
) -> float:
    """The canary p-value with independent models and answers the owner marked right: those by right_answers_p
    (model by model), the wrong and unmarked ones, which independent models do not give together, canary by
    canary (surprisal_tail). Bonferroni over the two."""
    chosen = set(right)
    rest = [i for i in range(len(suspect_hits)) if i not in chosen]

    def count(hits: Sequence[bool]) -> int:
        return sum(bool(hits[i]) for i in right)

    p_right = right_answers_p(count(suspect_hits), len(right), [count(h) for h in null_hits])
    if not rest:
        return p_right
    p_rest = surprisal_tail([suspect_hits[i] for i in rest], [rates[i] for i in rest])
    return min(1.0, 2 * min(p_rest, p_right))


MIN_PREFERENCES = 3  # wrong answers with the owner's right answer: fewer than this and the likelihood test is not run
PREFERENCE_SD_FLOOR = 0.1  # nats: peers closer than this on a canary are scaled as if this far apart


@dataclass(frozen=True)
class CanaryLikelihood:
    """A model's log-probabilities of the owner's canary answers, summarised (canary_likelihood)."""

    preferences: tuple[float, ...]  # per wrong answer with a right answer: log P(wrong) - log P(right), nats
    skill: float  # mean log P(right answer) over every canary whose right answer is known

    @property
    def preference(self) -> float:
        return float(np.mean(self.preferences))


def canary_likelihood(
    answer_logprobs: Sequence[float], right_logprobs: Sequence[float | None], kinds: Sequence[bool | None]
) -> CanaryLikelihood | None:
    """Per canary, log P(the reference's answer) and log P(the right answer) (None: not known; for an answer the
    owner marked right, the same number) as the model reads them after the prompt. None with fewer than
    MIN_PREFERENCES wrong answers whose right answer is known."""
    if not len(answer_logprobs) == len(right_logprobs) == len(kinds):
        raise ValueError("one log-probability and one kind per canary")
    prefer = [a - r for a, r, k in zip(answer_logprobs, right_logprobs, kinds) if k is False and r is not None]
    known = [r for r in right_logprobs if r is not None]
    if len(prefer) < MIN_PREFERENCES or not all(map(math.isfinite, [*prefer, *known])):
        return None
    return CanaryLikelihood(tuple(float(x) for x in prefer), float(np.mean(known)))


def _standardised(x: np.ndarray, peers: np.ndarray) -> float:
    """The mean over canaries of x's preference in units of the peers' spread on that canary, from their mean."""
    sd = np.maximum(peers.std(axis=0, ddof=1), PREFERENCE_SD_FLOOR)
    return float(np.mean((x - peers.mean(axis=0)) / sd))


def canary_likelihood_test(suspect: CanaryLikelihood, nulls: Sequence[CanaryLikelihood]) -> BehaviourTest:
    """How strongly the suspect prefers the reference's wrong answers to the right ones, against independent
    models that know the skill no better than it does. A greedy answer shows only a model's first choice; a
    derivative that kept a skill partly no longer repeats most mistakes first, but still gives them more
    probability than the right answers (bench/probe/wrong_answers.py). An independent model cannot know the
    reference's mistakes: knowing the skill only moves its probability towards the right answers, so its preference
    falls as its skill rises. The hardest comparison for the suspect is therefore with the independent models whose
    skill (mean log-probability of the right answers) is at most its own (its peers); a suspect more skilled than
    all of them is compared with every one. Each canary is standardised by the peers' mean and spread on it (what
    the answer strings' own likelihood gives every model alike drops out), the score is the mean over canaries;
    each peer is scored against the others and the suspect against the same sets in turn (averaged), so that it is
    scored exactly like a peer, and the p-value is the Student-t predictive p among the peers' scores. None with
    fewer than MIN_NULL_MODELS + 1 peers: a model with no skill has nothing to show."""
    peers = [n for n in nulls if n.skill <= suspect.skill and len(n.preferences) == len(suspect.preferences)]
    mine = np.asarray(suspect.preferences)
    p = None
    if len(peers) > MIN_NULL_MODELS:
        table = np.array([n.preferences for n in peers])
        rest = [np.delete(table, k, axis=0) for k in range(len(peers))]
        null = [_standardised(table[k], others) for k, others in enumerate(rest)]
        p = predictive_p(float(np.mean([_standardised(mine, others) for others in rest])), null)
    detail = (
        f"preferred the reference's {len(mine)} wrong answers to the right ones by {suspect.preference:+.2f} "
        f"nats on average (skill: {suspect.skill:.2f} nats per right answer); independent models no more skilled: "
        + (", ".join(f"{n.preference:+.2f}" for n in peers) or "none")
    )
    return BehaviourTest("canary-likelihood", suspect.preference, p, tuple(n.preference for n in peers), detail)


# ---------------------------------------------------------------------------------------------------- verdict ---


@dataclass(frozen=True)
class Decision:
    verdict: str
    p_value: float
    score: float
    reason: str


def decide(tests: Sequence[BehaviourTest], alpha: float = ALPHA) -> Decision:
    """Bonferroni over the tests that could be calibrated: derived below alpha, independent above INDEPENDENT_P.
    A test measured but not judged (its null does not cover the suspect) keeps the verdict from "independent"."""
    voting = [t for t in tests if t.p_value is not None]
    caveats = [f"{t.name} not judged: {t.uncalibrated}" for t in tests if t.uncalibrated]
    if not voting:
        why = f"no test could be calibrated: give at least {MIN_NULL_MODELS} independent models (--null)"
        return Decision(
            "inconclusive", 1.0, 0.0, caveats[0] if caveats else why if tests else "nothing could be measured"
        )
    best = min(voting, key=lambda t: t.p_value if t.p_value is not None else 1.0)
    p = min(1.0, len(voting) * (best.p_value or 0.0))
    if p < alpha:
        return Decision("derived", p, best.score, f"{best.name}: {best.detail}")
    if p > INDEPENDENT_P and caveats:  # a test that could have shown derivation was not judged: not "independent"
        return Decision("inconclusive", p, best.score, f"no judged test found derivation; {caveats[0]}")
    if p > INDEPENDENT_P:
        return Decision("independent", p, best.score, "the suspect behaves like the independent models")
    return Decision("inconclusive", p, best.score, f"weak evidence ({best.name}): {best.detail}")


def verdict_of(
    suspect: str,
    reference: str,
    tests: Sequence[BehaviourTest],
    null_models: Sequence[str] = (),
    *,
    bytes_read: int = 0,
    weight_bytes: int = 0,
    seconds: float = 0.0,
    alpha: float = ALPHA,
) -> BehaviourVerdict:
    d = decide(tests, alpha)
    return BehaviourVerdict(
        suspect,
        reference,
        d.verdict,
        d.p_value,
        d.score,
        tuple(tests),
        d.reason,
        tuple(null_models),
        bytes_read,
        weight_bytes,
        seconds,
        alpha,
    )
