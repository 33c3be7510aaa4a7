"""The book's one comparison procedure (dnalm_utils.stats): brute-force references, every branch, and the error
rates it promises on simulated data (seeded, vectorised data generation)."""

import math
from fractions import Fraction

import numpy as np
import pytest
from scipy import optimize
from scipy import stats as sps

from dnalm_utils import stats
from dnalm_utils.errors import ParameterError

ALPHA = 0.05


def tolerance(rate, sims):
    """Three binomial standard errors of a rejection rate estimated from ``sims`` simulations."""
    return 3 * math.sqrt(rate * (1 - rate) / sims)


# ---------------------------------------------------------------- simulated data


def correlated_binary_pairs(rng, sims, n, shift=0.0):
    """(sims, n) 0/1 correctness of models a and b on the same items: item difficulty in [0.1, 0.9] shared by
    both (positive correlation), a's success probability raised by ``shift`` (the true difference)."""
    p_item = 0.1 + 0.8 * rng.beta(2, 2, size=(sims, n))
    a = (rng.random((sims, n)) < p_item + shift).astype(float)
    b = (rng.random((sims, n)) < p_item).astype(float)
    return a, b


def correlated_loss_pairs(rng, sims, n, shift=0.0):
    """(sims, n) per-item bits of log-loss of a and b: a shared item difficulty plus independent noise."""
    base = rng.exponential(1.5, size=(sims, n))
    a = base + shift + rng.normal(0, 0.3, size=(sims, n))
    b = base + rng.normal(0, 0.3, size=(sims, n))
    return a, b


def seed_pairs(rng, sims, seeds=3, shift=0.0, noise=0.01):
    """(sims, seeds) metric of a and b fine-tuned with the same seeds: a shared seed effect plus own noise."""
    seed_effect = rng.normal(0, 0.05, size=(sims, seeds))
    a = 0.8 + shift + seed_effect + rng.normal(0, noise, size=(sims, seeds))
    b = 0.8 + seed_effect + rng.normal(0, noise, size=(sims, seeds))
    return a, b


def run(a, b, **kw):
    return [stats.compare_paired(x, y, **kw) for x, y in zip(a, b)]


# ---------------------------------------------------------------- brute-force references


@pytest.mark.parametrize("n", [2, 3, 5, 40])
@pytest.mark.parametrize("alpha", [0.05, 0.01, 0.2])
def test_t_interval_matches_scipy_t(n, alpha):
    x = np.random.default_rng(n).normal(3.0, 2.0, size=n)
    mean, low, high = stats.t_interval(x, alpha=alpha)
    ref_low, ref_high = sps.t.interval(1 - alpha, n - 1, loc=x.mean(), scale=x.std(ddof=1) / math.sqrt(n))
    assert mean == pytest.approx(x.mean())
    assert (low, high) == pytest.approx((ref_low, ref_high), rel=1e-12)


def test_three_seeds_use_t_4_30_not_2_se():
    x = np.array([0.81, 0.84, 0.79])
    mean, low, high = stats.t_interval(x)
    se = x.std(ddof=1) / math.sqrt(3)
    assert (high - mean) / se == pytest.approx(4.3027, abs=1e-4)
    c = stats.compare_paired(x, x - np.array([0.01, 0.03, 0.02]), unit="seeds")
    assert c.test == "paired t over 3 seeds"
    assert (c.high - c.estimate) / (0.01 / math.sqrt(3)) == pytest.approx(4.3027, abs=1e-4)


@pytest.mark.parametrize("n", [2, 3, 17, 500])
def test_paired_t_matches_scipy(n):
    rng = np.random.default_rng(100 + n)
    a = rng.normal(1.0, 1.0, size=n)
    b = a + rng.normal(-0.2, 0.5, size=n)
    c = stats.compare_paired(a, b, alpha=0.1)
    d = a - b
    assert c.test == f"paired t over {n:,} items"
    assert c.n == n
    assert c.estimate == pytest.approx(d.mean())
    assert c.p == pytest.approx(sps.ttest_rel(a, b).pvalue, rel=1e-10)
    ref = sps.t.interval(0.9, n - 1, loc=d.mean(), scale=d.std(ddof=1) / math.sqrt(n))
    assert (c.low, c.high) == pytest.approx(ref, rel=1e-10)
    # the t-based p and interval agree: p < alpha iff 0 lies outside the interval
    assert (c.p < 0.1) == (not c.low <= 0 <= c.high)


def mcnemar_by_enumeration(n_up, n_down):
    """Two-sided exact binomial(1/2) p-value on the discordant pairs, summing every outcome as likely or less."""
    total = n_up + n_down
    prob = [Fraction(math.comb(total, k), 2 ** total) for k in range(total + 1)]
    return float(sum(q for q in prob if q <= prob[n_up]))


@pytest.mark.parametrize("n_up,n_down,n_same", [(7, 1, 30), (1, 7, 30), (12, 9, 100), (30, 10, 5), (3, 3, 4),
                                                 (0, 6, 10), (50, 31, 0)])
def test_mcnemar_matches_binomial_enumeration(n_up, n_down, n_same):
    a = np.array([1] * n_up + [0] * n_down + [1] * (n_same // 2) + [0] * (n_same - n_same // 2), float)
    b = np.array([0] * n_up + [1] * n_down + [1] * (n_same // 2) + [0] * (n_same - n_same // 2), float)
    order = np.random.default_rng(n_up).permutation(a.size)
    c = stats.compare_paired(a[order], b[order])
    assert c.test.startswith("exact McNemar (paired 0/1) over")
    assert c.p == pytest.approx(mcnemar_by_enumeration(n_up, n_down), rel=1e-9)
    assert c.estimate == pytest.approx((n_up - n_down) / a.size)
    # the interval stays the paired t-interval of the 0/1 differences
    d = a - b
    ref = sps.t.interval(0.95, a.size - 1, loc=d.mean(), scale=d.std(ddof=1) / math.sqrt(a.size))
    assert (c.low, c.high) == pytest.approx(ref)


@pytest.mark.parametrize("shift", [-0.3, -0.1, 0.0, 0.05, 0.25])
def test_tost_matches_two_one_sided_scipy_tests_and_the_interval_rule(shift):
    rng = np.random.default_rng(int(1000 * (shift + 1)))
    for n, margin in [(4, 0.2), (30, 0.1), (300, 0.15)]:
        b = rng.normal(0, 1, size=n)
        a = b + shift + rng.normal(0, 0.3, size=n)
        c = stats.compare_paired(a, b, margin=margin)
        d = a - b
        p_above = sps.ttest_1samp(d, -margin, alternative="greater").pvalue
        p_below = sps.ttest_1samp(d, margin, alternative="less").pvalue
        assert c.p_equivalence == pytest.approx(max(p_above, p_below), rel=1e-9)
        _, low90, high90 = stats.t_interval(d, alpha=2 * ALPHA)
        assert (c.p_equivalence < ALPHA) == (-margin < low90 and high90 < margin)


def test_tost_is_t_based_for_binary_data():
    a, b = correlated_binary_pairs(np.random.default_rng(5), 1, 400, shift=0.02)
    c = stats.compare_paired(a[0], b[0], margin=0.1)
    d = a[0] - b[0]
    p_above = sps.ttest_1samp(d, -0.1, alternative="greater").pvalue
    p_below = sps.ttest_1samp(d, 0.1, alternative="less").pvalue
    assert c.p_equivalence == pytest.approx(max(p_above, p_below), rel=1e-9)
    assert c.p != pytest.approx(sps.ttest_rel(a[0], b[0]).pvalue)  # while p is McNemar's


def holm_rejections_by_definition(p, alpha):
    """Holm's step-down rule: walk up the sorted p-values, reject while p_(j) <= alpha / (m - j + 1)."""
    present = [i for i in range(len(p)) if not math.isnan(p[i])]
    order = sorted(present, key=lambda i: p[i])
    m = len(order)
    rejected = set()
    for j, i in enumerate(order):
        if p[i] <= alpha / (m - j):
            rejected.add(i)
        else:
            break
    return rejected


def test_holm_hand_example():
    adjusted = stats.holm([0.01, np.nan, 0.04, 0.03, 0.005])
    # sorted 0.005 x4 = 0.02, 0.01 x3 = 0.03, 0.03 x2 = 0.06, 0.04 x1 = 0.04 -> 0.06 (monotone); NaN not counted
    np.testing.assert_allclose(adjusted, [0.03, np.nan, 0.06, 0.06, 0.02])
    # 0.1 x3 = 0.3, 0.2 x2 = 0.4, 0.45 x1 = 0.45
    np.testing.assert_allclose(stats.holm([0.45, 0.1, 0.2]), [0.45, 0.3, 0.4])
    # 0.02 x3 = 0.06, 0.6 x2 = 1.2 -> 1 (clipped), 0.7 x1 -> 1 (monotone)
    np.testing.assert_allclose(stats.holm([0.02, 0.7, 0.6]), [0.06, 1.0, 1.0])
    np.testing.assert_allclose(stats.holm([0.3, 0.4, 0.5]), [0.9, 0.9, 0.9])  # monotone: later ones raised
    np.testing.assert_allclose(stats.holm([0.02, 0.02]), [0.04, 0.04])  # ties get one value
    np.testing.assert_allclose(stats.holm([0.03]), [0.03])


def test_holm_matches_its_definition_on_random_families():
    rng = np.random.default_rng(7)
    for trial in range(300):
        m = int(rng.integers(1, 12))
        p = rng.uniform(0, 1, size=m) ** rng.uniform(1, 6)  # many small values, some ties after rounding
        p = np.round(p, 3)
        p[rng.random(m) < 0.15] = np.nan
        adjusted = stats.holm(p)
        assert np.array_equal(np.isnan(adjusted), np.isnan(p))
        present = ~np.isnan(p)
        assert np.all(adjusted[present] >= p[present]) and np.all(adjusted[present] <= 1)
        # monotone in the order of the raw p-values
        order = np.argsort(p[present], kind="stable")
        assert np.all(np.diff(adjusted[present][order]) >= -1e-15)
        for alpha in (0.01, 0.05, 0.1, 0.3):
            by_adjusted = {i for i in range(m) if adjusted[i] <= alpha}
            assert by_adjusted == holm_rejections_by_definition(p.tolist(), alpha)


def test_holm_keeps_shape_and_nan():
    p = np.array([[0.01, np.nan], [0.02, 0.5]])
    adjusted = stats.holm(p)
    assert adjusted.shape == (2, 2)
    np.testing.assert_allclose(adjusted, [[0.03, np.nan], [0.04, 0.5]])
    assert stats.holm([]).shape == (0,)
    assert np.isnan(stats.holm([np.nan, np.nan])).all()
    with pytest.raises(ParameterError, match="outside"):
        stats.holm([0.2, 1.5])
    with pytest.raises(ParameterError, match="outside"):
        stats.holm([-0.1])


@pytest.mark.parametrize("successes,n", [(0, 10), (1, 10), (8, 10), (10, 10), (37, 120), (500, 1000), (3, 20000)])
@pytest.mark.parametrize("alpha", [0.05, 0.01])
def test_wilson_interval_inverts_the_score_test(successes, n, alpha):
    low, high = stats.binomial_interval(successes, n, alpha=alpha)
    z = sps.norm.ppf(1 - alpha / 2)
    phat = successes / n

    def score(q):  # > 0 inside the interval, 0 at its ends
        return z * math.sqrt(q * (1 - q) / n) - abs(phat - q)

    inside = min(max(phat, 1e-12), 1 - 1e-12)  # score(inside) > 0, also when phat is 0 or 1
    ref_low = 0.0 if successes == 0 else optimize.brentq(score, 1e-15, inside, xtol=1e-14)
    ref_high = 1.0 if successes == n else optimize.brentq(score, inside, 1 - 1e-15, xtol=1e-14)
    assert (low, high) == pytest.approx((ref_low, ref_high), abs=1e-9)
    assert low <= phat <= high


def test_wilson_interval_edges_and_errors():
    assert all(math.isnan(v) for v in stats.binomial_interval(0, 0))
    assert stats.binomial_interval(0, 5)[0] == 0.0 and stats.binomial_interval(5, 5)[1] == 1.0
    with pytest.raises(ParameterError, match="successes"):
        stats.binomial_interval(6, 5)
    with pytest.raises(ParameterError, match="n"):
        stats.binomial_interval(1, -2)
    with pytest.raises(ParameterError, match="integer"):
        stats.binomial_interval(1.5, 5)


def test_wilson_interval_coverage():
    rng = np.random.default_rng(11)
    for q, n in [(0.25, 40), (0.9, 200)]:
        hits = rng.binomial(n, q, size=400)
        covered = np.mean([lo <= q <= hi for lo, hi in (stats.binomial_interval(int(k), n) for k in hits)])
        assert covered >= 0.95 - tolerance(0.05, 400)


# ---------------------------------------------------------------- branches and edge cases


def test_ties_give_zero_interval_and_p_one():
    for a in ([0.3, 0.3, 0.7, 0.1], [1, 0, 1, 1, 0]):
        c = stats.compare_paired(a, a, margin=0.05)
        assert (c.estimate, c.low, c.high, c.p) == (0.0, 0.0, 0.0, 1.0)
        assert c.reason == ""
        assert c.p_equivalence == 0.0 and c.outcome() == "equivalent"
        assert stats.compare_paired(a, a).outcome() == "inconclusive"  # no margin: no equivalence claim
        assert math.isnan(stats.compare_paired(a, a).p_equivalence)


def test_constant_nonzero_difference():
    a = np.array([0.5, 0.6, 0.7])
    c = stats.compare_paired(a, a - 0.25)
    assert (c.low, c.high) == pytest.approx((0.25, 0.25)) and c.p == 0.0
    assert c.outcome() == "higher"
    c = stats.compare_paired(a, a - 0.25, margin=0.5)
    assert c.p_equivalence == 0.0  # the difference is known exactly and lies inside the margin
    assert stats.compare_paired(a, a - 0.25, margin=0.25).p_equivalence == 1.0  # on the margin: not inside
    # all ten discordant pairs in one direction: McNemar p = 2 / 2**10
    c = stats.compare_paired(np.ones(10), np.zeros(10))
    assert c.p == pytest.approx(2 / 2 ** 10) and (c.low, c.high) == (1.0, 1.0)


def test_n_zero_and_one_are_inconclusive_with_a_reason():
    for a, b in (([], []), ([np.nan, 1.0], [0.5, np.nan])):
        c = stats.compare_paired(a, b, margin=0.1)
        assert c.n == 0 and math.isnan(c.estimate)
        assert all(math.isnan(v) for v in (c.low, c.high, c.p, c.p_equivalence))
        assert "no pairs" in c.reason and c.outcome() == "inconclusive"
        assert c.outcome(p=0.0, p_equivalence=0.0) == "inconclusive"
    for a, b in (([0.9, np.nan], [0.4, 0.2]), ([1.0], [0.0])):
        c = stats.compare_paired(a, b, margin=0.1, unit="seeds")
        assert c.n == 1 and c.estimate == pytest.approx(float(np.nansum(a)) - b[0])
        assert all(math.isnan(v) for v in (c.low, c.high, c.p, c.p_equivalence))
        assert "one pair" in c.reason and c.outcome() == "inconclusive"
        assert c.test.endswith("over 1 seed")


def test_n_two():
    c = stats.compare_paired([1.0, 2.0], [0.5, 1.0])
    d = np.array([0.5, 1.0])
    assert c.n == 2 and c.reason == ""
    assert c.p == pytest.approx(sps.ttest_1samp(d, 0).pvalue)
    half = sps.t.ppf(0.975, 1) * d.std(ddof=1) / math.sqrt(2)
    assert (c.low, c.high) == pytest.approx((0.75 - half, 0.75 + half))
    assert stats.t_interval([1.0])[0] == 1.0 and all(math.isnan(v) for v in stats.t_interval([1.0])[1:])
    assert all(math.isnan(v) for v in stats.t_interval([np.nan]))
    assert stats.t_interval([2.0, 2.0]) == (2.0, 2.0, 2.0)


def test_nan_pairs_are_dropped():
    rng = np.random.default_rng(3)
    a = rng.normal(size=50)
    b = a + rng.normal(0.3, 1, size=50)
    a_nan, b_nan = a.copy(), b.copy()
    a_nan[[3, 10]] = np.nan
    b_nan[[10, 20, 33]] = np.nan
    keep = np.ones(50, bool)
    keep[[3, 10, 20, 33]] = False
    assert stats.compare_paired(a_nan, b_nan, margin=0.5) == stats.compare_paired(a[keep], b[keep], margin=0.5)
    assert stats.compare_paired(a_nan, b_nan).n == 46
    mean, low, high = stats.t_interval(a_nan)
    assert (mean, low, high) == pytest.approx(stats.t_interval(a[~np.isnan(a_nan)]))


def test_binary_detection():
    a = np.array([1, 0, 1, 1, 0, 1, 1, 1, 0, 1] * 3)
    b = np.array([0, 0, 1, 0, 1, 1, 0, 1, 0, 0] * 3)
    assert stats.compare_paired(a, b).test == "exact McNemar (paired 0/1) over 30 items"
    assert stats.compare_paired(a.astype(bool), b.astype(bool)).test.startswith("exact McNemar")
    assert stats.compare_paired(a, b, exact_binary=False).test == "paired t over 30 items"
    assert stats.compare_paired(a, np.where(b == 1, 0.9, 0.1)).test == "paired t over 30 items"
    bits = a * 0.5  # values in {0, 0.5}: not correctness
    assert stats.compare_paired(bits, b).test.startswith("paired t")
    # NaN does not spoil the detection; the label counts pairs left
    a_nan = a.astype(float)
    a_nan[0] = np.nan
    assert stats.compare_paired(a_nan, b).test == "exact McNemar (paired 0/1) over 29 items"
    assert stats.compare_paired(a, b).p != pytest.approx(stats.compare_paired(a, b, exact_binary=False).p)


def test_interval_of_two_shares_stays_inside_minus_one_to_one():
    # 997 windows follow the edit, 2 keep the genome's letter, 1 neither: the t-interval of the mean difference
    # (0.995) would reach past 1; a difference of two shares cannot
    follows = np.r_[np.ones(997), np.zeros(3)]
    keeps = np.r_[np.zeros(997), np.ones(2), np.zeros(1)]
    d = follows - keeps
    half = sps.t.ppf(1 - 0.0125 / 2, d.size - 1) * d.std(ddof=1) / np.sqrt(d.size)
    assert d.mean() + half > 1  # the uncut interval runs past the edge
    cmp = stats.compare_paired(follows, keeps, alpha=0.0125)
    assert cmp.high == 1.0 and cmp.low == pytest.approx(d.mean() - half) and cmp.estimate == pytest.approx(0.995)
    assert stats.compare_paired(keeps, follows, alpha=0.0125).low == -1.0
    # values that are not 0/1 keep the plain t-interval
    soft = stats.compare_paired(follows * 0.999 + 0.0005, keeps, alpha=0.0125)
    assert soft.high > 0.995 and soft.high == pytest.approx(soft.estimate + half * 0.999, rel=1e-3)


def test_swapping_a_and_b_flips_the_sign_only():
    rng = np.random.default_rng(9)
    for a, b in [correlated_loss_pairs(rng, 1, 300, shift=0.2), correlated_binary_pairs(rng, 1, 500, shift=0.1)]:
        ab = stats.compare_paired(a[0], b[0], margin=0.3)
        ba = stats.compare_paired(b[0], a[0], margin=0.3)
        assert ab.estimate == pytest.approx(-ba.estimate)
        assert (ab.low, ab.high) == pytest.approx((-ba.high, -ba.low))
        assert ab.p == pytest.approx(ba.p) and ab.p_equivalence == pytest.approx(ba.p_equivalence)
        assert ab.p < ALPHA
        assert {ab.outcome(), ba.outcome()} == {"higher", "lower"}
        assert ab.outcome() == ("higher" if ab.estimate > 0 else "lower")


def test_outcome_uses_overrides_and_covers_every_branch():
    base = dict(test="t", n=10, low=-1.0, high=1.0, alpha=0.05, margin=0.5)
    up = stats.Comparison(estimate=0.2, p=0.01, p_equivalence=0.3, **base)
    down = stats.Comparison(estimate=-0.2, p=0.01, p_equivalence=0.3, **base)
    same = stats.Comparison(estimate=0.01, p=0.8, p_equivalence=0.01, **base)
    unclear = stats.Comparison(estimate=0.1, p=0.2, p_equivalence=0.2, **base)
    assert [c.outcome() for c in (up, down, same, unclear)] == ["higher", "lower", "equivalent", "inconclusive"]
    assert up.outcome(p=0.06) == "inconclusive"  # a Holm-adjusted p can undo the claim
    assert same.outcome(p_equivalence=0.2) == "inconclusive"
    assert unclear.outcome(p=0.001) == "higher"
    assert unclear.outcome(p_equivalence=0.04) == "equivalent"
    # significant and within the margin: the difference is reported, within_margin says the rest
    tiny = stats.Comparison(estimate=0.01, p=0.001, p_equivalence=0.001, **base)
    assert tiny.outcome() == "higher" and tiny.within_margin
    assert stats.Comparison(estimate=0.0, p=0.01, p_equivalence=0.3, **base).outcome() == "inconclusive"
    assert set(stats.OUTCOMES) == {"higher", "lower", "equivalent", "inconclusive"}
    assert "p = 0.01" in up.summary() and "equivalence" in up.summary()


def test_one_sample_is_t_based_against_a_reference():
    rng = np.random.default_rng(4)
    correct = (rng.random(800) < 0.3).astype(float)
    c = stats.one_sample(correct, 0.25)
    assert c.test == "one-sample t vs 0.25 over 800 items"
    assert c.estimate == pytest.approx(correct.mean() - 0.25)
    assert c.p == pytest.approx(sps.ttest_1samp(correct, 0.25).pvalue, rel=1e-10)
    # against 0 with 0/1 values it is still the t-test, not McNemar on a constant model
    c0 = stats.one_sample(correct, 0.0)
    assert c0.test.startswith("one-sample t") and c0.p == pytest.approx(sps.ttest_1samp(correct, 0).pvalue)
    seeds = stats.one_sample([0.82, 0.85, np.nan, 0.80], 0.78, margin=0.05, unit="seeds")
    assert seeds.n == 3 and seeds.test == "one-sample t vs 0.78 over 3 seeds"
    ref = stats.compare_paired([0.82, 0.85, 0.80], [0.78] * 3, margin=0.05)
    assert (seeds.estimate, seeds.low, seeds.high, seeds.p, seeds.p_equivalence) == pytest.approx(
        (ref.estimate, ref.low, ref.high, ref.p, ref.p_equivalence))
    with pytest.raises(ParameterError, match="reference"):
        stats.one_sample([1.0, 2.0], float("nan"))


def test_bad_input_raises_parameter_error_with_the_fix():
    with pytest.raises(ParameterError, match=r"len\(a\)=3 but len\(b\)=2"):
        stats.compare_paired([1, 2, 3], [1, 2])
    for alpha in (0, 0.5, -0.1, 1.0, "x"):
        with pytest.raises(ParameterError, match="alpha"):
            stats.compare_paired([1, 2], [1, 2], alpha=alpha)
        with pytest.raises(ParameterError, match="alpha"):
            stats.t_interval([1, 2], alpha=alpha)
    for margin in (0, -0.1, float("inf"), float("nan"), "x"):
        with pytest.raises(ParameterError, match="margin"):
            stats.compare_paired([1, 2], [1, 2], margin=margin)
    with pytest.raises(ParameterError, match="1-D"):
        stats.compare_paired([[1, 2]], [[1, 2]])
    with pytest.raises(ParameterError, match="infinite"):
        stats.compare_paired([1, np.inf], [1, 2])
    with pytest.raises(ParameterError, match="numbers"):
        stats.compare_paired(["a", "b"], [1, 2])
    with pytest.raises(ParameterError, match="unit"):
        stats.compare_paired([1, 2], [1, 2], unit="")


# ---------------------------------------------------------------- error rates on simulated data

SIMS = 400


@pytest.mark.parametrize("make,n", [(correlated_binary_pairs, 2000), (correlated_loss_pairs, 2000),
                                    (seed_pairs, 3)])
def test_rejection_rate_under_a_true_null_is_alpha(make, n):
    rng = np.random.default_rng(2024 + n)
    a, b = make(rng, SIMS, n)
    results = run(a, b, unit="seeds" if n == 3 else "items")
    rejected = np.mean([c.p < ALPHA for c in results])
    assert rejected <= ALPHA + tolerance(ALPHA, SIMS)
    assert rejected >= ALPHA - tolerance(ALPHA, SIMS)  # not so conservative that it is useless
    # the interval covers the true difference (0) as often as p says: the t-based ones agree exactly
    if make is not correlated_binary_pairs:
        assert all((c.p < ALPHA) == (not c.low <= 0 <= c.high) for c in results)
    covered = np.mean([c.low <= 0 <= c.high for c in results])
    assert covered >= 1 - ALPHA - tolerance(ALPHA, SIMS)


def test_power_for_a_clear_item_level_difference():
    rng = np.random.default_rng(31)
    a, b = correlated_binary_pairs(rng, SIMS, 2000, shift=0.06)  # about 4.2 standard errors
    outcomes = [c.outcome() for c in run(a, b)]
    assert outcomes.count("higher") / SIMS > 0.9
    assert outcomes.count("lower") == 0  # never the wrong sign
    outcomes = [c.outcome() for c in run(b, a)]
    assert outcomes.count("lower") / SIMS > 0.9
    a, b = correlated_loss_pairs(rng, SIMS, 2000, shift=-0.05)  # a has lower loss: about 5 standard errors
    assert [c.outcome() for c in run(a, b)].count("lower") / SIMS > 0.9


def test_power_over_three_seeds_matches_the_noncentral_t():
    rng = np.random.default_rng(32)
    delta, noise = 0.07, 0.01
    a, b = seed_pairs(rng, SIMS, 3, shift=delta, noise=noise)
    power = np.mean([c.outcome() == "higher" for c in run(a, b, unit="seeds")])
    nc = delta / (math.sqrt(2) * noise / math.sqrt(3))
    t_crit = sps.t.ppf(1 - ALPHA / 2, 2)
    expected = sps.nct.sf(t_crit, 2, nc) + sps.nct.cdf(-t_crit, 2, nc)
    assert expected > 0.95
    assert abs(power - expected) <= tolerance(expected, SIMS)
    assert power > 0.9


@pytest.mark.parametrize("make,n,margin,unit", [(correlated_binary_pairs, 2000, 0.06, "items"),
                                                (correlated_loss_pairs, 2000, 0.05, "items"),
                                                (seed_pairs, 3, 0.08, "seeds")])
def test_tost_declares_equivalence_at_zero_and_rarely_at_the_margin(make, n, margin, unit):
    rng = np.random.default_rng(77 + n)
    kw = dict(noise=0.005) if make is seed_pairs else {}
    a, b = make(rng, SIMS, n, **kw)
    declared = np.mean([c.outcome() == "equivalent" for c in run(a, b, margin=margin, unit=unit)])
    assert declared >= 0.9
    for shift in (margin, -margin):
        a, b = make(rng, SIMS, n, shift=shift, **kw)
        results = run(a, b, margin=margin, unit=unit)
        within = np.mean([c.p_equivalence < ALPHA for c in results])
        assert within <= ALPHA + tolerance(ALPHA, SIMS)
        assert np.mean([c.outcome() == "equivalent" for c in results]) <= within


def test_holm_controls_the_familywise_error_rate():
    rng = np.random.default_rng(55)
    families, size = 2000, 20
    a, b = seed_pairs(rng, families * size, 3)
    p = sps.ttest_rel(a, b, axis=1).pvalue.reshape(families, size)
    # the vectorised reference p-values are compare_paired's
    for i in range(5):
        assert p.reshape(-1)[i] == pytest.approx(stats.compare_paired(a[i], b[i]).p, rel=1e-10)
    any_raw = np.mean((p < ALPHA).any(axis=1))
    any_holm = np.mean([(stats.holm(row) < ALPHA).any() for row in p])
    assert any_raw > 0.5  # 1 - 0.95**20 = 0.64 without adjustment
    assert any_holm <= ALPHA + tolerance(ALPHA, families)
    # NaN members leave the family: 20 nulls plus 5 NaN behave like 20 nulls
    padded = np.concatenate([p, np.full((families, 5), np.nan)], axis=1)
    assert np.mean([(stats.holm(row) < ALPHA).any() for row in padded]) == any_holm


# ----------------------------------------------------------------------------------------------------------------------
# Paired bootstrap for scores of the whole test set (MCC, AUROC)
# ----------------------------------------------------------------------------------------------------------------------
def test_bootstrap_comparison_is_the_z_procedure_on_the_resampled_sd():
    rng = np.random.default_rng(0)
    d = rng.normal(0.03, 0.01, 4000)
    cmp = stats.compare_bootstrap(0.03, d, n=500, margin=0.05)
    se = np.std(d, ddof=1)
    assert cmp.low == pytest.approx(0.03 - sps.norm.ppf(0.975) * se) and cmp.high == pytest.approx(0.03 + sps.norm.ppf(0.975) * se)
    assert cmp.p == pytest.approx(2 * sps.norm.sf(0.03 / se)) and cmp.outcome() == "higher"
    assert cmp.p_equivalence == pytest.approx(max(sps.norm.sf((0.03 + 0.05) / se), sps.norm.cdf((0.03 - 0.05) / se)))
    assert cmp.test == "paired bootstrap over 500 test items (4,000 resamples)"
    # the interval excludes 0 exactly when p < alpha
    for est in (-0.03, -0.019, 0.0, 0.0195, 0.02):
        c = stats.compare_bootstrap(est, d - 0.03 + est, n=500)
        assert (c.p < 0.05) == (c.low > 0 or c.high < 0)
    # NaN resamples are dropped; too few left: inconclusive with a reason; se 0: decided by the sign
    assert stats.compare_bootstrap(0.1, [np.nan, 0.1, 0.12], n=10).test.endswith("(2 resamples)")
    assert stats.compare_bootstrap(0.1, [np.nan, 0.1], n=10).outcome() == "inconclusive"
    assert stats.compare_bootstrap(0.1, [0.1, 0.1], n=10).outcome() == "higher"
    assert stats.compare_bootstrap(0.0, [0.0, 0.0], n=10, margin=0.01).outcome() == "equivalent"
    with pytest.raises(ParameterError, match="1-D"):
        stats.compare_bootstrap(0.1, np.zeros((2, 2)), n=10)


def test_bootstrap_comparison_of_two_equal_classifiers_rejects_at_about_alpha():
    """Two classifiers with the same population AUROC scored on the same 200 items (correlated through the items):
    over 200 simulated test sets the paired bootstrap rejects in about 5 % of them, and finds a real gap."""
    from dnalm_utils.classification_metrics import bootstrap_weights, resampled_binary_score

    rng = np.random.default_rng(1)
    rejections, found = [], []
    for rep in range(200):
        y = rng.integers(0, 2, 200)
        common = rng.normal(size=200)
        a = common + rng.normal(size=200) + 1.0 * y
        b = common + rng.normal(size=200) + 1.0 * y
        c = common + rng.normal(size=200) + 2.0 * y
        w = np.vstack([np.ones((1, 200)), bootstrap_weights(200, 300, rep)])
        sa, sb, sc = (resampled_binary_score(w, y, 1 / (1 + np.exp(-x)), metric="auroc") for x in (a, b, c))
        rejections.append(stats.compare_bootstrap(sa[0] - sb[0], (sa - sb)[1:], n=200).p < 0.05)
        found.append(stats.compare_bootstrap(sc[0] - sb[0], (sc - sb)[1:], n=200).outcome() == "higher")
    assert 0.01 <= np.mean(rejections) <= 0.10 and np.mean(found) > 0.9
