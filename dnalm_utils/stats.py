"""The book's one statistical procedure for comparing models, used by every verdict.

In plain words:

* **Two models on the same items or seeds** (e.g. 20,000 hidden nucleotides scored by both, or fine-tuning
  runs paired by seed on one test set): take the paired differences ``d_i = a_i - b_i`` (a pair with a NaN on
  either side is dropped; ``n`` is the number of pairs left). The estimate is ``mean(d)``; its two-sided
  ``1 - alpha`` interval is the paired t-interval ``mean(d) +- t_{1-alpha/2, n-1} * sd(d) / sqrt(n)``; the
  p-value (for "no difference") is the paired t-test's. Pairing matters: two models scored on the same items
  are correlated, and an independent-samples band (``1.96 sqrt(2 p (1 - p) / n)``) is the wrong width.
* **0/1 data** (per-item correctness of both models): the p-value is the exact McNemar test, i.e. a two-sided
  binomial test with success probability 1/2 on the discordant pairs (items one model gets right and the other
  wrong). The interval stays the paired t-interval of ``mean(d)``, the difference of the two accuracies.
* **Few seeds**: the same paired t procedure with ``n - 1`` degrees of freedom, so with 3 seeds the 95 %
  interval is ``mean +- 4.30 se`` (not ``2 se``). :func:`t_interval` gives the same interval for one set of
  values.
* **Degenerate cases**: all differences zero (ties) give estimate 0, interval [0, 0], p = 1. Fewer than two
  pairs give no variance estimate: interval and p are NaN and the comparison is ``inconclusive`` with a reason.
* **"No better than" / "as good as"** is never read off a failed difference test. It needs an equivalence test
  with a stated margin ``delta > 0`` in the metric's units (TOST, two one-sided t-tests): ``p_equivalence`` is
  the larger of the one-sided p-values for ``d > -delta`` and for ``d < +delta`` (t-based for 0/1 data too);
  equivalence is declared at level ``alpha`` iff ``p_equivalence < alpha``, i.e. iff the ``1 - 2 alpha``
  t-interval lies inside ``(-delta, delta)``.
* **Many verdicts**: the p-values of a family of verdicts (the book's verdicts) are adjusted with Holm's
  step-down procedure (:func:`holm`) before being compared with ``alpha``; pass the adjusted values to
  :meth:`Comparison.outcome`.
* **A score of the whole test set** (MCC, AUROC: no per-item value to pair) of two classifiers on the same test
  items: a paired bootstrap (:func:`compare_bootstrap`). Every resample of the items scores both classifiers on
  the same resample; the standard error of the difference is the sd of the resampled differences, and interval,
  p-value and TOST are the normal (z) versions of the t procedure above with that standard error.
* **One proportion** (e.g. an accuracy with its uncertainty): the Wilson score interval
  (:func:`binomial_interval`). **Against a fixed number** (accuracy items vs chance 0.25, seeds vs a published
  baseline): :func:`one_sample`, the one-sample t procedure on ``values - reference``.

All inputs are 1-D array-likes of floats (0/1 allowed), in the metric's own units; outputs are in those units.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as _sps

from .errors import ParameterError, check_int_range

#: The book's significance level (two-sided tests; equivalence tests at this level too).
ALPHA = 0.05

#: Every value :meth:`Comparison.outcome` can return.
OUTCOMES = ("higher", "lower", "equivalent", "inconclusive")


@dataclass(frozen=True)
class Comparison:
    """The result of comparing ``a`` with ``b`` (or values with a reference) by the book's procedure.

    ``estimate``/``low``/``high``/``margin`` are in the metric's units; ``p`` is the two-sided p-value for
    ``estimate == 0`` (paired t or exact McNemar, as ``test`` says); ``p_equivalence`` is the TOST p-value for
    ``|true difference| < margin`` (NaN without a margin or with fewer than two pairs).
    """

    test: str
    n: int
    estimate: float
    low: float
    high: float
    p: float
    alpha: float
    margin: float | None
    p_equivalence: float
    reason: str = ""

    def outcome(self, p: float | None = None, p_equivalence: float | None = None) -> str:
        """``'higher'`` (a > b: p < alpha and estimate > 0), ``'lower'`` (p < alpha and estimate < 0),
        ``'equivalent'`` (not shown different and p_equivalence < alpha) or ``'inconclusive'``.

        ``p`` / ``p_equivalence`` override ``self.p`` / ``self.p_equivalence``: pass Holm-adjusted values
        (:func:`holm`) when this comparison is one of a family. NaN p-values never reject, and a comparison with a
        ``reason`` (fewer than two pairs) is always ``'inconclusive'``. A difference that is
        significant yet inside the margin is reported as ``'higher'``/``'lower'`` (see :attr:`within_margin`).
        """
        p = self.p if p is None else float(p)
        p_eq = self.p_equivalence if p_equivalence is None else float(p_equivalence)
        if self.reason:
            return "inconclusive"
        if p < self.alpha:
            if self.estimate > 0:
                return "higher"
            if self.estimate < 0:
                return "lower"
            return "inconclusive"
        if p_eq < self.alpha:
            return "equivalent"
        return "inconclusive"

    @property
    def within_margin(self) -> bool:
        """True when the unadjusted TOST shows ``|difference| < margin`` (regardless of the difference test)."""
        return bool(self.p_equivalence < self.alpha)

    def summary(self, digits: int = 3) -> str:
        """One line for a table or a sentence: estimate, interval, p (and TOST p), the test and ``n``."""
        f = f"{{:.{digits}g}}"
        text = (f"{f.format(self.estimate)} [{f.format(self.low)}, {f.format(self.high)}] "
                f"({100 * (1 - self.alpha):g} % interval), p = {f.format(self.p)}")
        if self.margin is not None:
            text += f", equivalence within +-{f.format(self.margin)}: p = {f.format(self.p_equivalence)}"
        text += f"; {self.test}"
        if self.reason:
            text += f"; inconclusive: {self.reason}"
        return text


def _check_alpha(alpha) -> float:
    try:
        alpha = float(alpha)
    except (TypeError, ValueError):
        raise ParameterError(f"parameter alpha={alpha!r} must be a number in (0, 0.5), e.g. 0.05.") from None
    if not 0 < alpha < 0.5:
        raise ParameterError(f"parameter alpha={alpha} is out of range: allowed (0, 0.5); use e.g. 0.05.")
    return alpha


def _check_margin(margin) -> float | None:
    if margin is None:
        return None
    try:
        margin = float(margin)
    except (TypeError, ValueError):
        raise ParameterError(
            f"parameter margin={margin!r} must be a positive number in the metric's units, or None.") from None
    if not (margin > 0 and math.isfinite(margin)):
        raise ParameterError(
            f"parameter margin={margin} must be > 0 and finite (the equivalence margin in the metric's units, "
            "e.g. 0.01 for one accuracy point); pass None for no equivalence test.")
    return margin


def _as_values(name: str, values) -> np.ndarray:
    """``values`` as a 1-D float array (NaN kept); ParameterError for other shapes, text or infinities."""
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise ParameterError(f"parameter {name} must be a 1-D array of numbers (0/1 allowed).") from None
    if arr.ndim != 1:
        raise ParameterError(
            f"parameter {name} must be 1-D (one value per item or seed); got shape {arr.shape}. "
            "Flatten it or compare one row at a time.")
    if np.isinf(arr).any():
        raise ParameterError(f"parameter {name} holds infinite values; mark missing values as NaN instead.")
    return arr


def _is_binary(x: np.ndarray) -> bool:
    return bool(np.all((x == 0) | (x == 1)))


def _label(unit: str, n: int) -> str:
    return unit[:-1] if n == 1 and unit.endswith("s") else unit


def _t_p_two_sided(t: float, df: int) -> float:
    return float(2 * _sps.t.sf(abs(t), df))


def _mean_sd(d: np.ndarray) -> tuple[float, float]:
    """Mean and sample sd (ddof=1) of ``d`` (n >= 2); exactly (d[0], 0) when all values are equal."""
    if np.all(d == d[0]):
        return float(d[0]), 0.0
    return float(np.mean(d)), float(np.std(d, ddof=1))


def _tost(mean: float, se: float, df: int, margin: float) -> float:
    """max of the one-sided p-values for H0: mu <= -margin and H0: mu >= +margin."""
    if se == 0:
        p_low = 0.0 if mean > -margin else 1.0
        p_high = 0.0 if mean < margin else 1.0
    else:
        p_low = float(_sps.t.sf((mean + margin) / se, df))
        p_high = float(_sps.t.cdf((mean - margin) / se, df))
    return max(p_low, p_high)


def _mcnemar_p(d: np.ndarray) -> float:
    """Exact McNemar: two-sided binomial test (p = 1/2) on the discordant pairs of 0/1 differences ``d``."""
    n_up = int(np.sum(d == 1))
    n_down = int(np.sum(d == -1))
    if n_up + n_down == 0:
        return 1.0
    return float(_sps.binomtest(n_up, n_up + n_down, 0.5).pvalue)


def _compare_differences(d: np.ndarray, *, alpha: float, margin: float | None, test: str,
                         exact_p: float | None, bounds: tuple[float, float] | None = None) -> Comparison:
    """The paired t procedure on differences ``d`` (NaN already dropped); ``exact_p`` replaces the t p-value;
    ``bounds``: the range the mean difference can take (e.g. (-1, 1) for 0/1 pairs), which the interval is cut to
    (a t-interval near the edge of that range would run past it)."""
    n = int(d.size)
    if n < 2:
        estimate = float(d[0]) if n == 1 else math.nan
        reason = ("no pairs left after dropping NaN" if n == 0
                  else "only one pair: no variance estimate, so no interval or test")
        return Comparison(test=test, n=n, estimate=estimate, low=math.nan, high=math.nan, p=math.nan,
                          alpha=alpha, margin=margin, p_equivalence=math.nan, reason=reason)
    df = n - 1
    mean, sd = _mean_sd(d)
    se = sd / math.sqrt(n)
    if se == 0:
        low = high = mean
        p = 1.0 if mean == 0 else 0.0
    else:
        half = float(_sps.t.ppf(1 - alpha / 2, df)) * se
        low, high = mean - half, mean + half
        if bounds is not None:
            low, high = max(low, bounds[0]), min(high, bounds[1])
        p = _t_p_two_sided(mean / se, df)
    if exact_p is not None:
        p = exact_p
    p_eq = math.nan if margin is None else _tost(mean, se, df, margin)
    return Comparison(test=test, n=n, estimate=mean, low=low, high=high, p=p, alpha=alpha, margin=margin,
                      p_equivalence=p_eq)


def compare_paired(a, b, *, alpha: float = ALPHA, margin: float | None = None, unit: str = "items",
                   exact_binary: bool = True) -> Comparison:
    """Compare ``a`` with ``b`` measured on the same items (or seeds), pair by pair: estimate ``mean(a - b)``.

    ``a``, ``b``: 1-D, same length (one value per item/seed, e.g. per-item 0/1 correctness or bits of
    log-loss; NaN marks a missing value and drops its pair). ``alpha`` in (0, 0.5); ``margin`` > 0 (metric's
    units) adds the TOST equivalence p-value; ``unit`` names what is paired ("items", "seeds") in ``test``.
    When both sides are 0/1 (and ``exact_binary``), p is the exact McNemar test; otherwise the paired t-test.
    The interval is always the paired t-interval, cut to [-1, 1] when both sides are 0/1 (a difference of two
    shares cannot leave it). See the module docstring for the whole procedure.
    """
    alpha = _check_alpha(alpha)
    margin = _check_margin(margin)
    if not isinstance(unit, str) or not unit.strip():
        raise ParameterError(f"parameter unit={unit!r} must be a non-empty word such as 'items' or 'seeds'.")
    a = _as_values("a", a)
    b = _as_values("b", b)
    if a.shape != b.shape:
        raise ParameterError(
            f"a and b must be paired value by value: len(a)={a.size} but len(b)={b.size}. "
            "Score both models on the same items (or seeds) in the same order.")
    keep = ~(np.isnan(a) | np.isnan(b))
    a, b = a[keep], b[keep]
    d = a - b
    n = int(d.size)
    exact_p = None
    binary = n > 0 and _is_binary(a) and _is_binary(b)
    if exact_binary and binary:
        test = f"exact McNemar (paired 0/1) over {n:,} {_label(unit, n)}"
        if n >= 2:
            exact_p = _mcnemar_p(d)
    else:
        test = f"paired t over {n:,} {_label(unit, n)}"
    return _compare_differences(d, alpha=alpha, margin=margin, test=test, exact_p=exact_p,
                                bounds=(-1.0, 1.0) if binary else None)


def one_sample(values, reference: float, *, alpha: float = ALPHA, margin: float | None = None,
               unit: str = "items") -> Comparison:
    """Compare ``values`` with a fixed ``reference`` (estimate ``mean(values) - reference``), t-based.

    Same semantics as ``compare_paired(values, full(reference))`` with the t-test also for 0/1 values (e.g. per-
    item accuracy vs chance 0.25, or seeds vs a published baseline). NaN values are dropped.
    """
    try:
        reference = float(reference)
    except (TypeError, ValueError):
        raise ParameterError(f"parameter reference={reference!r} must be a finite number.") from None
    if not math.isfinite(reference):
        raise ParameterError(f"parameter reference={reference} must be a finite number.")
    values = _as_values("values", values)
    result = compare_paired(values, np.full(values.shape, reference), alpha=alpha, margin=margin, unit=unit,
                            exact_binary=False)
    n = result.n
    return Comparison(test=f"one-sample t vs {reference:g} over {n:,} {_label(unit, n)}", n=n,
                      estimate=result.estimate, low=result.low, high=result.high, p=result.p, alpha=result.alpha,
                      margin=result.margin, p_equivalence=result.p_equivalence, reason=result.reason)


def compare_bootstrap(estimate: float, resampled, *, alpha: float = ALPHA, margin: float | None = None, n: int,
                      unit: str = "test items") -> Comparison:
    """Compare two classifiers on a score of the whole test set (MCC, AUROC) by a paired bootstrap over its ``n``
    items: ``estimate`` is the difference a - b on the full test set, ``resampled`` (B,) the same difference on B
    resamples of the items (both classifiers scored on each resample; NaN resamples, e.g. one lacking a class, are
    dropped). With ``se = sd(resampled)``: interval ``estimate +- z_{1-alpha/2} se``, ``p = 2 Phi(-|estimate| / se)``,
    TOST with ``margin`` as in :func:`compare_paired` with z for t. Fewer than two resamples left, or a non-finite
    estimate: inconclusive with a reason; se = 0: p = 1 if the estimate is 0, else 0."""
    alpha = _check_alpha(alpha)
    margin = _check_margin(margin)
    n = check_int_range("n", n, 0, hint="n is the number of test items resampled.")
    d = _as_values("resampled", resampled)
    d = d[~np.isnan(d)]
    test = f"paired bootstrap over {n:,} {_label(unit, n)} ({d.size:,} resamples)"
    estimate = float(estimate)
    if d.size < 2 or not math.isfinite(estimate):
        return Comparison(test=test, n=n, estimate=estimate, low=math.nan, high=math.nan, p=math.nan, alpha=alpha,
                          margin=margin, p_equivalence=math.nan,
                          reason="fewer than two usable resamples or no estimate: no interval or test")
    se = float(np.std(d, ddof=1))
    if se == 0:
        low = high = estimate
        p = 1.0 if estimate == 0 else 0.0
        p_eq = math.nan if margin is None else (0.0 if abs(estimate) < margin else 1.0)
    else:
        half = float(_sps.norm.ppf(1 - alpha / 2)) * se
        low, high = estimate - half, estimate + half
        p = float(2 * _sps.norm.sf(abs(estimate) / se))
        p_eq = (math.nan if margin is None else
                max(float(_sps.norm.sf((estimate + margin) / se)), float(_sps.norm.cdf((estimate - margin) / se))))
    return Comparison(test=test, n=n, estimate=estimate, low=low, high=high, p=p, alpha=alpha, margin=margin,
                      p_equivalence=p_eq)


def t_interval(values, *, alpha: float = ALPHA) -> tuple[float, float, float]:
    """(mean, low, high): the two-sided ``1 - alpha`` t-interval ``mean +- t_{1-alpha/2, n-1} sd / sqrt(n)``.

    NaN values are dropped; with fewer than two values left: (mean or NaN, NaN, NaN).
    """
    alpha = _check_alpha(alpha)
    x = _as_values("values", values)
    x = x[~np.isnan(x)]
    n = int(x.size)
    if n < 2:
        return (float(x[0]) if n == 1 else math.nan), math.nan, math.nan
    mean, sd = _mean_sd(x)
    half = float(_sps.t.ppf(1 - alpha / 2, n - 1)) * sd / math.sqrt(n) if sd > 0 else 0.0
    return mean, mean - half, mean + half


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjusted p-values: same shape and order as ``pvalues``; NaN stays NaN.

    The family is the non-NaN entries (m of them). Sorted ascending ``p_(1) <= ... <= p_(m)``, the adjusted
    value of ``p_(j)`` is ``min(1, max_{i <= j} (m - i + 1) p_(i))``. Rejecting where the adjusted value is
    ``< alpha`` controls the family-wise error rate at ``alpha`` under any dependence.
    """
    try:
        p = np.array(pvalues, dtype=float)
    except (TypeError, ValueError):
        raise ParameterError("parameter pvalues must be an array of numbers in [0, 1] (NaN allowed).") from None
    flat = p.reshape(-1)
    present = ~np.isnan(flat)
    values = flat[present]
    if np.any((values < 0) | (values > 1)):
        raise ParameterError(
            f"parameter pvalues holds values outside [0, 1] (e.g. {values[(values < 0) | (values > 1)][0]!r}); "
            "pass p-values, with NaN for missing ones.")
    m = values.size
    order = np.argsort(values, kind="stable")
    scaled = (m - np.arange(m)) * values[order]
    adjusted_sorted = np.minimum(1.0, np.maximum.accumulate(scaled))
    adjusted = np.empty(m)
    adjusted[order] = adjusted_sorted
    out = np.full(flat.shape, np.nan)
    out[present] = adjusted
    return out.reshape(p.shape)


def binomial_interval(successes: int, n: int, *, alpha: float = ALPHA) -> tuple[float, float]:
    """Wilson score interval (two-sided ``1 - alpha``) for a proportion ``successes / n``; (NaN, NaN) if n = 0.

    The set of proportions ``q`` with ``|successes/n - q| <= z sqrt(q (1 - q) / n)``, ``z = Phi^-1(1 - alpha/2)``;
    unlike the Wald interval it stays inside [0, 1] and does not collapse at 0 or n successes.
    """
    alpha = _check_alpha(alpha)
    n = check_int_range("n", n, 0, hint="n is the number of trials.")
    successes = check_int_range("successes", successes, 0, n, hint="successes must lie between 0 and n.")
    if n == 0:
        return math.nan, math.nan
    z = float(_sps.norm.ppf(1 - alpha / 2))
    phat = successes / n
    denom = 1 + z * z / n
    centre = (phat + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n))
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high
