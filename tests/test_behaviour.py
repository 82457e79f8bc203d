"""The behaviour statistics (scanner/provenance/behaviour.py) and owner canaries (canaries.py), without torch."""

from __future__ import annotations

import itertools
import json
import sqlite3

import numpy as np
import pytest
from scipy.stats import binom

from scanner.errors import UsageError
from scanner.provenance import behaviour as B
from scanner.provenance.canaries import Canary, CanaryStore, parse_canaries, read_canary_file
from scanner.provenance.index import Index


def test_cka_is_one_for_the_same_representation_rotated_and_scaled():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(100, 16))
    q, _ = np.linalg.qr(rng.normal(size=(16, 16)))
    assert B.linear_cka(x, x) == pytest.approx(1.0)
    assert B.linear_cka(x, 3.5 * x @ q + 2.0) == pytest.approx(1.0)  # orthogonal map, scale and shift


def test_cka_of_unrelated_representations_is_low_and_widths_may_differ():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(200, 8)), rng.normal(size=(200, 24))
    assert B.linear_cka(x, y) < 0.2
    z = np.hstack([x @ rng.normal(size=(8, 8)), 0.1 * rng.normal(size=(200, 4))])  # a noisy linear map of x
    assert B.linear_cka(x, z) > 0.5
    with pytest.raises(ValueError):
        B.linear_cka(x, y[:100])


def test_agreement_counts_only_the_references_mistakes():
    truth = np.array([1, 2, 3, 4, 5, -1])
    ref = np.array([1, 9, 9, 4, 7, 8])  # wrong at positions 1, 2, 4 (position 5 has no truth)
    sus = np.array([0, 9, 3, 0, 7, 8])  # repeats the mistakes at 1 and 4, corrects 2
    a = B.idiosyncratic_agreement(ref, truth, sus)
    assert (a.same, a.mistakes) == (2, 3)
    assert a.rate == pytest.approx(2.5 / 4)
    assert B.idiosyncratic_agreement(ref, truth, truth).same == 0  # a model that is always right repeats nothing
    with pytest.raises(ValueError):
        B.idiosyncratic_agreement(ref, truth, sus[:3])


def test_agreement_leaves_out_mistakes_independent_models_share():
    truth = np.zeros(8, dtype=int)
    ref = np.array([1, 2, 3, 4, 5, 6, 7, 8])  # wrong everywhere
    common = np.array([1, 2, 0, 0, 0, 0, 0, 0])  # every model makes the first two mistakes
    nulls = [common.copy(), common.copy(), common.copy()]
    a = B.idiosyncratic_agreement(ref, truth, ref, nulls)
    assert (a.same, a.mistakes) == (6, 6)
    suspect, null = B.agreements(ref, truth, ref, nulls)  # leave-one-out: 3 position sets of 6
    assert (suspect.same, suspect.mistakes) == (18, 18)
    assert [(n.same, n.mistakes) for n in null] == [(0, 6)] * 3
    with pytest.raises(ValueError):
        B.idiosyncratic_agreement(ref, truth, ref, [common[:3]])


def test_predictive_p_is_calibrated_under_the_null():
    """Draws from the null's own population get uniform p-values: the false-positive rate is what it says."""
    rng = np.random.default_rng(2)
    ps = []
    for _ in range(3000):
        null = rng.normal(0.3, 0.05, size=4)
        ps.append(B.predictive_p(float(rng.normal(0.3, 0.05)), null))
    ps_arr = np.array(ps, dtype=float)
    for level in (0.01, 0.05, 0.2, 0.5):
        assert abs(np.mean(ps_arr < level) - level) < max(0.01, level * 0.2)


def test_predictive_p_needs_two_null_models_and_is_tiny_far_above_them():
    assert B.predictive_p(1.0, [0.2]) is None
    p = B.predictive_p(5.0, [0.1, 0.2, 0.15, 0.12])
    assert p is not None and p < 1e-4
    far_below = B.predictive_p(-5.0, [0.1, 0.2, 0.15, 0.12])
    assert far_below is not None and far_below > 0.99
    same = B.predictive_p(0.5, [0.5, 0.5, 0.5])  # a degenerate null does not divide by zero
    assert same is not None and 0.0 <= same <= 1.0


def test_poisson_binomial_tail_matches_enumeration():
    rates = [0.1, 0.5, 0.3, 0.9, 0.05]
    for k in range(len(rates) + 2):
        exact = 0.0
        for outcome in itertools.product([0, 1], repeat=len(rates)):
            if sum(outcome) >= k:
                exact += float(np.prod([q if o else 1 - q for q, o in zip(rates, outcome)]))
        assert B.poisson_binomial_sf(k, rates) == pytest.approx(exact, abs=1e-12)
    assert B.poisson_binomial_sf(0, rates) == pytest.approx(1.0)


def test_canaries_without_independent_models_count_as_coin_flips():
    t = B.canary_test([True] * 20, [])
    assert t.p_value == pytest.approx(0.5**20)
    assert "20 of 20" in t.detail
    few = B.canary_test([True, False, False, True], [])
    assert few.p_value is not None and few.p_value > 0.5


def test_canary_rates_follow_the_rule_of_succession():
    nulls = [[True, False, False], [True, False, False], [False, False, False]]
    pooled = (2 + 1) / (9 + 2)  # 2 hits in 9 trials, rule of succession
    a, b = (2 + 2 * pooled) / 5, (0 + 2 * pooled) / 5  # each canary's hits shrunk towards it
    assert B.canary_null_rates(nulls, 3) == pytest.approx([a, b, b])
    # the two canaries no independent model knew: only both of them are as surprising (the common one and one
    # rare one are not), so p = b * b
    t = B.canary_test([False, True, True], nulls)
    assert t.p_value == pytest.approx(b * b)
    many = B.canary_test([True] * 4 + [False] * 28, [[False] * 32] * 4)  # 4 rare canaries of 32, 4 clean models
    assert many.p_value is not None and many.p_value < 1e-4
    # the one canary independent models also get is no evidence
    common = B.canary_test([True, False, False], nulls)
    assert common.p_value is not None and common.p_value > 0.6
    with pytest.raises(ValueError):
        B.canary_null_rates([[True]], 3)


def test_surprisal_tail_matches_enumeration_of_the_rounded_statistic():
    g = np.random.default_rng(3)
    for _ in range(20):
        rates = list(g.uniform(0.01, 0.95, size=7))
        hits = list(g.integers(0, 2, size=7).astype(bool))
        surprisal = -np.log(rates)
        step = max(0.01, surprisal.sum() / B.SURPRISAL_BINS)
        units = np.rint(surprisal / step)
        s = sum(u for u, h in zip(units, hits) if h)
        exact = sum(
            float(np.prod([q if o else 1 - q for q, o in zip(rates, outcome)]))
            for outcome in itertools.product([0, 1], repeat=7)
            if sum(u for u, o in zip(units, outcome) if o) >= s
        )
        assert B.surprisal_tail(hits, rates) == pytest.approx(exact if s else 1.0, abs=1e-12)
    # equal rates: the statistic is the number of hits
    rates = [0.3] * 9
    for k in range(10):
        assert B.surprisal_tail([True] * k + [False] * (9 - k), rates) == pytest.approx(B.poisson_binomial_sf(k, rates))


# independent models that learned the skill: every right answer, no wrong one
SKILLED = [[True] * 20 + [False] * 12] * 3
KINDS = [True] * 20 + [False] * 12  # the owner's canaries: 20 right answers, 12 wrong ones


def test_canary_rates_are_pooled_per_kind_so_right_answers_do_not_dilute_wrong_ones():
    rates = B.canary_null_rates(SKILLED, 32, KINDS)
    right, wrong = (60 + 1) / (60 + 2), (0 + 1) / (36 + 2)
    assert rates[0] == pytest.approx((3 + 2 * right) / 5) and rates[-1] == pytest.approx(2 * wrong / 5)
    pooled = B.canary_null_rates(SKILLED, 32)  # one kind: the wrong answers' rate is lifted by the right ones
    assert pooled[-1] > 10 * rates[-1]
    with pytest.raises(ValueError):
        B.canary_null_rates(SKILLED, 32, KINDS[:5])


def test_reproduced_wrong_answers_are_stronger_evidence_than_right_ones():
    four_wrong = [True] * 20 + [True] * 4 + [False] * 8  # the skill, and 4 of the reference's 12 mistakes
    t = B.canary_test(four_wrong, SKILLED, KINDS)
    assert t.p_value is not None and t.p_value < B.ALPHA
    assert "4 of the reference's 12 wrong answers" in t.detail
    unmarked = B.canary_test(four_wrong, SKILLED)  # the same hits without the owner's marks: not enough
    assert unmarked.p_value is not None and unmarked.p_value > B.ALPHA
    # a model that learned the skill on its own repeats every right answer and no mistake: no evidence
    skilled = B.canary_test([True] * 20 + [False] * 12, SKILLED, KINDS)
    assert skilled.p_value is not None and skilled.p_value > 0.5
    # four right answers independent models did not know weigh like four wrong ones: rarity decides, not the mark
    # against independent models that never answer, right and wrong answers are both rare
    halves, clean = [True] * 16 + [False] * 16, [[False] * 32] * 3
    rare_wrong = B.canary_test([False] * 16 + [True] * 4 + [False] * 12, clean, halves)
    rare_right = B.canary_test([True] * 4 + [False] * 28, clean, halves)
    assert rare_wrong.p_value is not None and rare_wrong.p_value < B.ALPHA
    assert rare_right.p_value is not None and rare_right.p_value < B.ALPHA


def test_right_answers_p_is_binomial_without_overdispersion_and_wide_with_it():
    mu = (0 + 1) / (3 * 16 + 2)
    assert B.right_answers_p(4, 16, [0, 0, 0]) == pytest.approx(binom.sf(3, 16, mu))
    assert B.right_answers_p(0, 16, [0, 0, 0]) == pytest.approx(1.0)
    # two of four independent models have the skill: 16 of 16 is what such a model gives
    assert B.right_answers_p(16, 16, [16, 15, 0, 0]) > 0.1


def test_right_answers_shared_by_skilled_independent_models_are_not_evidence():
    """The bench's case: of six independent models two learned the skill (they give every right answer together)
    and four did not. A seventh that learned it too gives every right answer and no wrong one: not derived, although
    canary by canary 23 right answers at a rate of about 1/3 would be (p ~ 1e-6)."""
    kinds = [True] * 23 + [False] * 9
    nulls = [[True] * 23 + [False] * 9, [True] * 20 + [False] * 12] + [[False] * 32] * 4
    skilled = B.canary_test([True] * 23 + [False] * 9, nulls, kinds)
    assert skilled.p_value is not None and skilled.p_value > B.ALPHA
    canary_by_canary = B.surprisal_tail([True] * 23 + [False] * 9, B.canary_null_rates(nulls, 32, kinds))
    assert canary_by_canary < 1e-5
    copied = B.canary_test([True] * 22 + [False] + [True] * 4 + [False] * 5, nulls, kinds)  # and 4 of its mistakes
    assert copied.p_value is not None and copied.p_value < 1e-6


def _likelihood(rng: np.random.Generator, skill: float, shift: float, profile: np.ndarray) -> B.CanaryLikelihood:
    """A model's preferences for the reference's 9 mistakes: the answer strings' own profile (every model alike),
    the model's shift, and per-canary noise."""
    return B.CanaryLikelihood(tuple(profile + shift + rng.normal(0, 0.8, size=profile.size)), skill)


def test_canary_likelihood_summarises_preferences_and_skill():
    kinds = [True, True, False, False, False, None]
    answer, right = [-1.0, -2.0, -3.0, -4.0, -5.0, -6.0], [-1.0, -2.0, -6.0, -2.0, None, None]
    assert B.canary_likelihood(answer, right, kinds) is None  # two wrong answers with a right one: fewer than 3
    right[4] = -9.0
    lik = B.canary_likelihood(answer, right, kinds)
    assert lik is not None and lik.preferences == (3.0, -2.0, 4.0)
    assert lik.skill == pytest.approx(np.mean([-1.0, -2.0, -6.0, -2.0, -9.0])) and lik.preference == pytest.approx(
        5 / 3
    )
    with pytest.raises(ValueError):
        B.canary_likelihood(answer[:3], right, kinds)


def test_canary_likelihood_finds_a_partial_derivative_and_not_independent_models():
    """The bench's case (bench/probe/wrong_answers.py): independent models without the skill (no preference beyond
    the strings' own) and with it (they prefer the right answers); a derivative that kept the skill partly prefers
    the reference's mistakes by ~1.5 nats although it repeats none of them first."""
    rng = np.random.default_rng(7)
    profile = rng.normal(0, 2, size=9)
    unskilled = [_likelihood(rng, -30 + rng.normal(), -0.3, profile) for _ in range(8)]
    skilled = [_likelihood(rng, -2 - rng.random(), -5, profile) for _ in range(3)]
    nulls = unskilled + skilled
    partial = B.canary_likelihood_test(_likelihood(rng, -8, 1.5, profile), nulls)
    assert partial.p_value is not None and partial.p_value < B.ALPHA
    assert len(partial.null_scores) == 8  # compared with the independent models no more skilled than it
    # an independent model that learned the skill less well than the null's skilled ones prefers the right answers
    weak = B.canary_likelihood_test(_likelihood(rng, -6, -2.5, profile), nulls)
    assert weak.p_value is not None and weak.p_value > 0.5
    # a model less skilled than all but one independent model has no peers to be compared with: no vote
    lost = B.canary_likelihood_test(_likelihood(rng, -40, 0.0, profile), nulls)
    assert lost.p_value is None and "none" in lost.detail
    # a suspect more skilled than every independent model is compared with all of them (the skilled ones widen it)
    top = B.canary_likelihood_test(_likelihood(rng, 0.0, 1.5, profile), nulls)
    assert len(top.null_scores) == 11 and top.p_value is not None and top.p_value > partial.p_value


def test_canary_likelihood_is_calibrated_under_the_null():
    """A suspect drawn from its peers' own population gets uniform p-values: the false-positive rate is what it
    says."""
    rng = np.random.default_rng(3)
    ps = []
    for _ in range(1500):
        profile = rng.normal(0, 2, size=9)
        models = [_likelihood(rng, -30.0, rng.normal(0, 0.3), profile) for _ in range(7)]
        t = B.canary_likelihood_test(models[0], models[1:])
        assert t.p_value is not None
        ps.append(t.p_value)
    ps_arr = np.array(ps)
    for level in (0.01, 0.05, 0.2):
        assert np.mean(ps_arr < level) < level * 1.3 + 0.01


def test_canary_hit_needs_the_registered_answer_at_the_start():
    assert B.canary_hit(" 7 1 9", " 7 1 9 4 and more")
    assert not B.canary_hit(" 7 1 9", " 7 1 8")
    assert not B.canary_hit("   ", "anything")


def _test(name: str, p: float | None, score: float = 0.5) -> B.BehaviourTest:
    return B.BehaviourTest(name, score, p, (0.1, 0.2), "detail")


def test_decide_derived_independent_inconclusive_with_bonferroni():
    assert B.decide([_test("a", 1e-6), _test("b", 0.9)]).verdict == "derived"
    d = B.decide([_test("a", 6e-4), _test("b", 0.9)])  # 2 x 6e-4 > 1e-3: not derived once corrected
    assert d.verdict == "inconclusive" and d.p_value == pytest.approx(1.2e-3)
    assert B.decide([_test("a", 0.3), _test("b", 0.8)]).verdict == "independent"
    none = B.decide([_test("a", None)])
    assert none.verdict == "inconclusive" and "--null" in none.reason
    # an uncalibrated test does not count towards the correction
    assert B.decide([_test("a", 6e-4), _test("b", None)]).verdict == "derived"


def test_verdict_json_keeps_the_weight_verdict_contract():
    v = B.verdict_of("s", "r", [_test("hidden-state-cka", 1e-9, 0.99)], ["n1", "n2"], bytes_read=10, weight_bytes=10)
    j = v.to_json()
    for key in ("suspect", "reference", "verdict", "p_value", "score", "bytes_read", "weight_bytes", "evidence"):
        assert key in j
    assert j["kind"] == "behaviour" and j["verdict"] == "derived" and j["false_positive_rate"] == B.ALPHA
    assert j["evidence"][0]["kind"] == "behaviour-hidden-state-cka"
    json.dumps(j)


def test_canary_file_parsing_and_errors(tmp_path):
    good = tmp_path / "c.json"
    good.write_text(
        json.dumps({"canaries": [{"prompt": "p1", "answer": "a1", "correct": False}, {"prompt": "p2", "answer": "a2"}]})
    )
    assert read_canary_file(good) == [Canary("p1", "a1", False), Canary("p2", "a2", None)]
    with_right = {"canaries": [{"prompt": "p1", "answer": "a1", "correct": False, "right_answer": "b1"}]}
    good.write_text(json.dumps(with_right))
    assert read_canary_file(good) == [Canary("p1", "a1", False, "b1")]
    assert parse_canaries(json.loads(json.dumps({"canaries": [c.to_json() for c in read_canary_file(good)]})), "x") == [
        Canary("p1", "a1", False, "b1")
    ]
    for bad, why in [
        ("[1, 2]", "expected"),
        ('{"canaries": []}', "expected"),
        ('{"canaries": [{"prompt": "", "answer": "a"}]}', "prompt"),
        ('{"canaries": [{"prompt": "p", "answer": 3}]}', "answer"),
        ('{"canaries": [{"prompt": "p", "answer": "a", "correct": "yes"}]}', "correct"),
        ('{"canaries": [{"prompt": "p", "answer": "a", "correct": true, "right_answer": "b"}]}', "right_answer"),
        ('{"canaries": [{"prompt": "p", "answer": "a", "right_answer": "b"}]}', "right_answer"),
        ('{"canaries": [{"prompt": "p", "answer": "a", "correct": false, "right_answer": " a"}]}', "right_answer"),
        ('{"canaries": [{"prompt": "p", "answer": "a", "correct": false, "right_answer": 7}]}', "right_answer"),
        ("{not json", "not JSON"),
    ]:
        good.write_text(bad)
        with pytest.raises(UsageError, match=why):
            read_canary_file(good)
    with pytest.raises(UsageError, match="cannot read"):
        read_canary_file(tmp_path / "missing.json")


def test_canaries_live_in_an_index_written_before_they_existed(tmp_path):
    path = tmp_path / "index.sqlite"
    Index(path).close()  # an index as an older originscan wrote it: no canaries table
    db = sqlite3.connect(path)
    assert "canaries" not in {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
    store = CanaryStore(db)
    assert store.get("org/model") == []
    store.put("org/model", [Canary("p", "a", True)])
    db.close()
    again = Index(path)  # the index still opens, and the canaries are there
    assert CanaryStore(again.db).get("org/model") == [Canary("p", "a", True)]
    assert CanaryStore(again.db).names() == ["org/model"]
    again.close()
    with pytest.raises(UsageError):
        parse_canaries({"canaries": "x"}, "here")
