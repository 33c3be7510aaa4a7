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


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 40), seed=st.integers(0, 10**6), levels=st.integers(1, 6))
def test_best_threshold_equals_brute_force(n, seed, levels):
    rng = np.random.default_rng(seed)
    p1 = rng.integers(0, levels, n) / levels  # ties on purpose
    y = rng.integers(0, 2, n)
    t, m = CM.best_threshold(p1, y)
    u = np.unique(p1)
    cands = [u[0]] + list((u[:-1] + u[1:]) / 2) + [np.inf]
    scores = [matthews_corrcoef(y, (p1 >= c).astype(int)) for c in cands]
    best = max(scores)
    assert m == pytest.approx(best, abs=1e-12)
    winners = [c for c, s in zip(cands, scores) if s >= best - 1e-12]
    assert t == min(winners, key=lambda c: abs((1e9 if np.isinf(c) else c) - 0.5))


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
    assert CM.best_threshold([0.3, 0.3], [0, 1])[1] == 0.0
