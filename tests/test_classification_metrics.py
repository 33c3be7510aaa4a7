"""Binary thresholds chosen on validation: the vectorised search equals brute force over every candidate, and a
classifier whose scores rank well but sit on one side of 0.5 is scored by its ranking, not as a constant."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import matthews_corrcoef

from dnalm_utils import classification_metrics as CM
from dnalm_utils.errors import ParameterError


def _brute_force_threshold(p1, y):
    """Every candidate (midpoints between distinct scores, and 0.5) scored by sklearn; ties: closest to 0.5, then
    the lower."""
    u = np.unique(p1)
    cands = sorted(set(((u[:-1] + u[1:]) / 2).tolist()) | {0.5})
    scores = [matthews_corrcoef(y, (p1 >= c).astype(int)) for c in cands]
    best = max(scores)
    winners = [c for c, s in zip(cands, scores) if s >= best - 1e-12]
    return min(winners, key=lambda c: (abs(c - 0.5), c)), best


@settings(max_examples=80, deadline=None)
@given(n=st.integers(1, 40), seed=st.integers(0, 10**6), levels=st.integers(1, 6), continuous=st.booleans())
def test_best_threshold_equals_brute_force(n, seed, levels, continuous):
    rng = np.random.default_rng(seed)
    p1 = rng.uniform(0, 1, n) if continuous else rng.integers(0, levels + 1, n) / levels  # ties, and 0.5 itself
    y = rng.integers(0, 2, n)
    t, m = CM.best_threshold(p1, y)
    want_t, want_m = _brute_force_threshold(p1, y)
    assert m == pytest.approx(want_m, abs=1e-12)
    assert t == pytest.approx(want_t, abs=1e-15)
    assert CM.validation_threshold(p1, y) == t
    assert matthews_corrcoef(y, (p1 >= t).astype(int)) == pytest.approx(m, abs=1e-12)


def test_validation_threshold_planted_answers():
    # constant scores: nothing to learn from validation, keep the argmax cut
    assert CM.validation_threshold(np.full(9, 0.8), np.r_[np.zeros(4), np.ones(5)].astype(int)) == 0.5
    assert CM.validation_threshold([0.2], [1]) == 0.5
    # 0.5 cuts the items like the midpoint 0.625 (MCC 1 both): 0.5 wins the tie
    assert CM.best_threshold([0.1, 0.45, 0.8, 0.9], [0, 0, 1, 1]) == (0.5, 1.0)
    # cuts 0.2 and 0.775 tie (MCC 0.577), 0.5 is worse (MCC 0): the one closer to 0.5
    assert CM.validation_threshold([0.1, 0.3, 0.65, 0.9], [0, 1, 0, 1]) == pytest.approx(0.775)
    # equally close (0.2 and 0.8): the lower
    assert CM.validation_threshold([0.1, 0.3, 0.7, 0.9], [0, 1, 0, 1]) == pytest.approx(0.2)
    # a perfectly ranked set shifted above 0.5: the cut between the classes
    assert CM.validation_threshold([0.6, 0.65, 0.7, 0.85, 0.9], [0, 0, 0, 1, 1]) == pytest.approx(0.775)


def test_best_threshold_is_vectorised():
    """200,000 items in well under a second (an all-pairs search would need 40 billion comparisons)."""
    import time

    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 200_000)
    p1 = np.clip(0.3 * y + rng.normal(0.5, 0.2, y.size), 0, 1)
    start = time.perf_counter()
    t, m = CM.best_threshold(p1, y)
    assert time.perf_counter() - start < 2.0
    assert matthews_corrcoef(y, (p1 >= t).astype(int)) == pytest.approx(m, abs=1e-9)
    assert m >= matthews_corrcoef(y, (p1 >= 0.5).astype(int)) - 1e-12


def test_a_shifted_but_well_ranked_classifier_is_scored_by_its_ranking():
    rng = np.random.default_rng(0)

    def draw(n):
        y = rng.integers(0, 2, n)
        return np.where(y == 1, rng.uniform(0.8, 0.9, n), rng.uniform(0.6, 0.7, n)), y

    (pv, yv), (pt, yt) = draw(200), draw(300)
    plain = CM.binary_metrics(pt, yt)
    assert plain["mcc"] == 0 and plain["predicted_classes"] == 1
    score = CM.ValidatedBinaryScore()
    tuned = score(np.stack([1 - pt, pt], 1), yt, valid=(np.stack([1 - pv, pv], 1), yv))
    assert tuned["mcc"] == 1.0 and tuned["predicted_classes"] == 2 and tuned["accuracy_valid_threshold"] == 1.0
    assert 0.7 < tuned["threshold"] < 0.8
    assert tuned["mcc_argmax"] == plain["mcc"] and tuned["predicted_classes_argmax"] == 1
    assert {k: tuned[k] for k in ("n", "accuracy", "auroc")} == {k: plain[k] for k in ("n", "accuracy", "auroc")}
    assert score(pt, yt) == plain
    assert pickle.loads(pickle.dumps(score)) == score


def test_best_threshold_checks_its_input():
    with pytest.raises(ParameterError, match="one p"):
        CM.best_threshold([0.1, 0.2], [1])
    with pytest.raises(ParameterError, match="0 or 1"):
        CM.best_threshold([0.1, 0.2], [0, 2])
    with pytest.raises(ParameterError, match="finite"):
        CM.best_threshold([0.1, np.nan], [0, 1])
    assert CM.best_threshold([0.3, 0.3], [0, 1])[1] == 0.0


def test_bootstrap_helpers_reduce_to_the_plain_scores_with_unit_weights():
    from sklearn.metrics import matthews_corrcoef, roc_auc_score

    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 200)
    score = np.round(rng.random(200) + 0.3 * y, 1)  # many ties
    pred = (score > 0.6).astype(int)
    ones = np.ones((1, 200))
    assert CM.weighted_auroc(ones, y, score)[0] == pytest.approx(roc_auc_score(y, score))
    assert CM.weighted_mcc(ones, y, pred)[0] == pytest.approx(matthews_corrcoef(y, pred))
    w = CM.bootstrap_weights(200, 5, seed=0)
    assert w.shape == (5, 200) and (w.sum(1) == 200).all()
    idx = np.repeat(np.arange(200), w[2].astype(int))  # a weight row is a resample
    assert CM.weighted_auroc(w[2:3], y, score)[0] == pytest.approx(roc_auc_score(y[idx], score[idx]))


def test_score_predictions_asks_for_validation_only_when_the_score_needs_it():
    calls = []
    probs, truth = np.array([[0.4, 0.6], [0.45, 0.55], [0.48, 0.52]]), np.array([1, 0, 0])

    def valid():
        calls.append(1)
        return np.array([[0.4, 0.6], [0.46, 0.54]]), np.array([1, 0])

    plain = CM.score_predictions(CM.binary_metrics, probs, truth, valid=valid)
    assert calls == [] and "threshold" not in plain
    tuned = CM.score_predictions(CM.ValidatedBinaryScore(), probs, truth, valid=valid)
    assert calls == [1] and tuned["threshold"] == pytest.approx(0.57) and tuned["mcc"] == pytest.approx(1.0)
