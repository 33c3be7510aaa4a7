"""Scores of a classifier's class probabilities against true labels.

* :func:`multiclass_metrics` -- accuracy, top-5 accuracy, macro-F1 and cross-entropy in bits per predicted
  nucleotide (the next-k-mer task);
* :func:`uniform_guess_metrics` -- the expected scores of guessing uniformly at random;
* :func:`binary_metrics` -- MCC, accuracy and AUROC of a two-class classifier, optionally at a threshold chosen
  on validation (:func:`validation_threshold`, :func:`best_threshold`; :class:`ValidatedBinaryScore` for grids);
* :func:`macro_f1`; :func:`item_scores` -- per-item correctness and bits (the items of a paired comparison);
* :func:`bootstrap_weights`, :func:`weighted_mcc`, :func:`weighted_auroc`, :func:`percentile_interval`,
  :func:`resampled_binary_score` -- bootstrap intervals and paired tests over test items, vectorised over
  resamples.

Probabilities are (n, classes) arrays, labels (n,) integers in 0..classes-1.
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from .errors import ParameterError


def _check_scores(probs, truth) -> tuple[np.ndarray, np.ndarray]:
    probs = np.asarray(probs, dtype=np.float64)
    truth = np.asarray(truth).astype(np.int64).reshape(-1)
    if probs.ndim != 2 or probs.shape[0] != truth.size:
        raise ParameterError(f"scores must be (n, classes) and labels (n,); got {probs.shape} and {truth.shape}.")
    if truth.size == 0:
        raise ParameterError("no examples to score.")
    if truth.min() < 0 or truth.max() >= probs.shape[1]:
        raise ParameterError(f"labels must lie in 0..{probs.shape[1] - 1}.")
    return probs, truth


def macro_f1(truth, pred) -> float:
    """Unweighted mean F1 over the classes that occur in ``truth`` or ``pred`` (sklearn's average='macro')."""
    truth = np.asarray(truth, dtype=np.int64)
    pred = np.asarray(pred, dtype=np.int64)
    classes, inv = np.unique(np.concatenate([truth, pred]), return_inverse=True)
    t, p = inv[: truth.size], inv[truth.size :]
    c = classes.size
    tp = np.bincount(t[t == p], minlength=c).astype(np.float64)
    fp = np.bincount(p, minlength=c) - tp
    fn = np.bincount(t, minlength=c) - tp
    return float(np.mean(2 * tp / np.maximum(2 * tp + fp + fn, 1)))


def multiclass_metrics(probs, truth, *, nt_per_class: int = 1, pred=None, bits: bool = True) -> dict:
    """Accuracy, top-5 accuracy, macro-F1 and cross-entropy of (n, c) class probabilities against (n,) labels.

    Ties in the ranking go to the lower class index. ``bits`` = mean -log2 p(true class) / ``nt_per_class``:
    bits per predicted nucleotide for the next-k-mer task (nt_per_class = k; 2 = uniform guessing),
    probabilities clipped at 1e-12. ``pred`` overrides the argmax predictions; ``bits=False`` (scores that are
    not probabilities) reports NaN. Returns {n, accuracy, top5, macro_f1, bits, predicted_classes (how many
    distinct classes the predictions use: 1 = a constant predictor)}.
    """
    probs, truth = _check_scores(probs, truth)
    n, c = probs.shape
    pred = np.argmax(probs, axis=1) if pred is None else np.asarray(pred, dtype=np.int64)
    top = min(5, c)
    ranked = np.argsort(-probs, axis=1, kind="stable")[:, :top]
    out = {
        "n": int(n),
        "accuracy": float(np.mean(pred == truth)),
        "top5": float(np.mean((ranked == truth[:, None]).any(axis=1))),
        "macro_f1": macro_f1(truth, pred),
        "bits": float("nan"),
        "predicted_classes": int(np.unique(pred).size),
    }
    if bits:
        pt = np.clip(probs[np.arange(n), truth], 1e-12, 1.0)
        out["bits"] = float(-np.mean(np.log2(pt)) / nt_per_class)
    return out


def uniform_guess_metrics(truth, num_classes: int, *, nt_per_class: int = 1) -> dict:
    """Expected scores of guessing uniformly at random among ``num_classes``: accuracy 1/c, top-5 min(5, c)/c,
    bits log2(c)/nt_per_class, and the expected macro-F1 mean over all c classes of 2 f / (c f + 1), f being
    a class's share of ``truth`` (precision f, recall 1/c)."""
    truth = np.asarray(truth, dtype=np.int64)
    c = int(num_classes)
    f = np.bincount(truth, minlength=c) / truth.size
    return {"n": int(truth.size), "accuracy": 1.0 / c, "top5": min(5, c) / c,
            "macro_f1": float(np.mean(2 * f / (c * f + 1))), "bits": math.log2(c) / nt_per_class}


def item_scores(probs, truth, *, nt_per_class: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Per test item: (correct, bits), each (n,): 1.0 where the argmax (ties to the lower class) is the true
    class, and -log2 p(true class) / ``nt_per_class`` (probabilities clipped at 1e-12), so that their means are
    :func:`multiclass_metrics`' accuracy and bits. ``probs`` (n, c), or (n,) p(class 1) for two classes. These
    are the items of a paired comparison (verdicts)."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim == 1:
        probs = np.stack([1 - probs, probs], axis=1)
    probs, truth = _check_scores(probs, truth)
    n = len(truth)
    correct = (np.argmax(probs, axis=1) == truth).astype(np.float64)
    bits = -np.log2(np.clip(probs[np.arange(n), truth], 1e-12, 1.0)) / nt_per_class
    return correct, bits


def mcc_from_counts(tp, fp, fn, tn):
    """Matthews correlation from confusion counts (arrays broadcast; weighted counts allowed); 0 where a margin
    is empty, as sklearn."""
    tp, fp, fn, tn = (np.asarray(a, dtype=np.float64) for a in (tp, fp, fn, tn))
    den = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (tp * tn - fp * fn) / np.where(den > 0, den, 1.0), 0.0)


def best_threshold(p1, labels) -> tuple[float, float]:
    """(threshold, MCC): the threshold t on p(class 1) maximising MCC of "class 1 iff p1 >= t" on these (n,)
    items, and that MCC. Candidates: the midpoints between consecutive distinct p1 (so a later score between two
    of these is not decided by where one of them fell) and 0.5 (the argmax decision); ties go to the candidate
    closest to 0.5 (0.5 itself wins every tie it is part of; equally close ones: the lower), so the threshold
    leaves 0.5 only where these items favour another cut. Constant p1: 0.5. Vectorised: one sort, cumulative
    counts (O(n log n)). Chosen on validation items, applied to test items (:func:`binary_metrics` with
    ``threshold``)."""
    p1 = np.asarray(p1, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    if p1.ndim != 1 or p1.shape != y.shape or not p1.size:
        raise ParameterError(f"best_threshold needs one p(class 1) per label: got shapes {p1.shape} and {y.shape}.")
    if not np.isfinite(p1).all():
        raise ParameterError("best_threshold: p(class 1) must be finite (no NaN / inf); check the model's output.")
    if not np.isin(y, (0, 1)).all():
        raise ParameterError("best_threshold: labels must be 0 or 1 (class 1 = the class whose probability is p1).")
    u = np.unique(p1)
    cand = np.unique(np.r_[(u[:-1] + u[1:]) / 2, 0.5])  # ascending
    order = np.argsort(-p1, kind="stable")
    ys = y[order]
    # items predicted 1 at candidate c are those with p1 >= c: a prefix of the descending order
    n_pred = len(p1) - np.searchsorted(p1[order][::-1], cand, side="left")
    tp = np.r_[0, np.cumsum(ys == 1)][n_pred]
    fp = np.r_[0, np.cumsum(ys != 1)][n_pred]
    m = mcc_from_counts(tp, fp, (y == 1).sum() - tp, (y != 1).sum() - fp)
    best = np.flatnonzero(m >= m.max() - 1e-12)
    i = best[np.argmin(np.abs(cand[best] - 0.5))]  # first minimum = the lower of two equally close
    return float(cand[i]), float(m[i])


def validation_threshold(valid_p1, valid_truth) -> float:
    """The threshold on p(class 1) that maximises MCC on the validation items ``valid_p1`` (n,) against
    ``valid_truth`` (n,) 0/1 labels (:func:`best_threshold`: midpoints between distinct scores and 0.5; ties to the
    one closest to 0.5; constant scores: 0.5)."""
    return best_threshold(valid_p1, valid_truth)[0]


def binary_metrics(probs, truth, *, threshold: float | None = None) -> dict:
    """MCC and accuracy of the argmax (threshold 0.5), AUROC of p(class 1) and how many distinct classes the
    predictions use (``predicted_classes``: 1 = a constant predictor); ``probs`` (n, 2) or (n,) p(1).

    With ``threshold`` (on p(class 1), chosen on validation by :func:`validation_threshold`), ``mcc`` and
    ``predicted_classes`` are those of "class 1 iff p1 >= threshold", the argmax ones move to ``mcc_argmax`` and
    ``predicted_classes_argmax``, and ``threshold`` and ``accuracy_valid_threshold`` are added (``accuracy`` stays
    the argmax's, like the per-item scores of the paired tests): a classifier whose scores rank the classes well
    but sit on one side of 0.5 is not scored as a constant."""
    from sklearn.metrics import matthews_corrcoef, roc_auc_score

    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim == 1:
        probs = np.stack([1 - probs, probs], axis=1)
    probs, truth = _check_scores(probs, truth)
    if probs.shape[1] != 2:
        raise ParameterError(f"binary_metrics needs two classes, got {probs.shape[1]}.")
    pred = (probs[:, 1] > probs[:, 0]).astype(np.int64)
    auroc = float(roc_auc_score(truth, probs[:, 1])) if np.unique(truth).size == 2 else float("nan")
    out = {"n": int(truth.size), "mcc": float(matthews_corrcoef(truth, pred)), "accuracy": float(np.mean(pred == truth)),
           "auroc": auroc, "predicted_classes": int(np.unique(pred).size)}
    if threshold is not None:
        tuned = (probs[:, 1] >= float(threshold)).astype(np.int64)
        out.update({"mcc_argmax": out["mcc"], "predicted_classes_argmax": out["predicted_classes"],
                    "mcc": float(matthews_corrcoef(truth, tuned)), "predicted_classes": int(np.unique(tuned).size),
                    "threshold": float(threshold), "accuracy_valid_threshold": float(np.mean(tuned == truth))})
    return out


# --------------------------------------------------------------------------------------------------
# Bootstrap over test items (weights of a multinomial resample, vectorised over resamples)
# --------------------------------------------------------------------------------------------------
def bootstrap_weights(n: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n) float64 counts of each of ``n`` items in ``n_boot`` resamples with replacement (seeded); a
    metric under these weights is that metric on the resample."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n)) + (np.arange(n_boot) * n)[:, None]
    return np.bincount(idx.ravel(), minlength=n_boot * n).reshape(n_boot, n).astype(np.float64)


def weighted_mcc(w: np.ndarray, y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """MCC of 0/1 ``pred`` (n,) against 0/1 ``y`` (n,) under item weights ``w`` (B, n) -> (B,)."""
    yp, yn, pp, pn = y == 1, y == 0, pred == 1, pred == 0
    return mcc_from_counts(w @ (yp & pp), w @ (yn & pp), w @ (yp & pn), w @ (yn & pn))


def weighted_auroc(w: np.ndarray, y: np.ndarray, score: np.ndarray) -> np.ndarray:
    """AUROC (ties count one half) of ``score`` (n,) for 0/1 ``y`` (n,) under item weights ``w`` (B, n) -> (B,);
    NaN when a resample lacks a class."""
    order = np.argsort(score, kind="stable")
    s, yy, ww = score[order], y[order], w[:, order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])  # groups of tied scores, ascending
    pos = np.add.reduceat(ww * (yy == 1), starts, axis=1)
    neg = np.add.reduceat(ww * (yy == 0), starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg  # negatives strictly below each group
    tot_p, tot_n = pos.sum(1), neg.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((tot_p > 0) & (tot_n > 0), (pos * (below + 0.5 * neg)).sum(1) / (tot_p * tot_n), np.nan)


def percentile_interval(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """(low, high) percentile interval of bootstrap ``values`` (B,) at ``confidence``, NaN resamples dropped;
    (NaN, NaN) when none is left."""
    values = np.asarray(values, dtype=np.float64)
    v = values[~np.isnan(values)]
    if v.size == 0:
        return float("nan"), float("nan")
    tail = (1 - confidence) / 2
    lo, hi = np.quantile(v, [tail, 1 - tail])
    return float(lo), float(hi)


def resampled_binary_score(w: np.ndarray, y, p1, *, metric: str, threshold: float | None = None) -> np.ndarray:
    """``metric`` ("mcc" or "auroc") of one two-class classifier under item weights ``w`` (B, n) (e.g.
    :func:`bootstrap_weights`, a row of ones for the full test set) -> (B,). ``p1`` (n,): each item's p(class 1);
    MCC judges "class 1 iff p1 >= threshold" (the threshold picked on validation), or p1 > 0.5 (the argmax) without
    one or with a NaN threshold; AUROC ranks the items by p1."""
    y = np.asarray(y, dtype=np.int64)
    p1 = np.asarray(p1, dtype=np.float64)
    if p1.shape != y.shape or not np.isfinite(p1).all():
        raise ParameterError(f"resampled_binary_score needs one finite p(class 1) per label: got {p1.shape} values "
                             f"for {y.shape} labels; pass a two-class run's per-item p1.")
    if metric == "auroc":
        return weighted_auroc(w, y, p1)
    if metric == "mcc":
        pred = p1 >= threshold if threshold is not None and np.isfinite(threshold) else p1 > 0.5
        return weighted_mcc(w, y, pred.astype(np.int64))
    raise ParameterError(f"metric={metric!r}: choose 'mcc' or 'auroc'.")


def binary_run_predictions(items, runs, test_labels: Mapping[str, np.ndarray]) -> dict:
    """Every two-class run's test predictions, ready for :func:`resampled_binary_score`:
    (task, model, init, seed) -> (y (n,) int 0/1 labels, p1 (n,) float64 p(class 1), threshold or None).

    items: task, model, init, seed, item, p1 (``biotasks.run_task(..., with_items=True)``); runs: task, model, init,
    seed and optionally threshold (the one each run picked on validation); test_labels: task -> (n,) 0/1 labels in
    item order. ParameterError when a column, a task's labels or an item is missing, or p1 is not finite."""
    missing = [c for c in ("task", "model", "init", "seed", "item", "p1") if c not in items]
    if missing:
        raise ParameterError(f"items lack column(s) {missing}; pass biotasks.run_task(..., with_items=True)'s items "
                             "(p1 exists for two-class tasks only).")
    thresholds = {}
    if "threshold" in runs:
        for r in runs[["task", "model", "init", "seed", "threshold"]].itertuples(index=False):
            thresholds[(r.task, r.model, r.init, int(r.seed))] = float(r.threshold)
    out = {}
    for (task, model, init, seed), run in items.groupby(["task", "model", "init", "seed"], sort=False):
        if task not in test_labels:
            raise ParameterError(f"no test labels for task {task!r}; pass test_labels[{task!r}] (0/1, item order).")
        y = np.asarray(test_labels[task], dtype=np.int64)
        run = run.sort_values("item")
        if len(run) != len(y) or (run.item.to_numpy() != np.arange(len(y))).any():
            raise ParameterError(f"{model} ({init}, seed {seed}) on {task!r} scores {len(run)} items, the task has "
                                 f"{len(y)} test labels; the items and labels do not match.")
        p1 = run.p1.to_numpy(dtype=np.float64)
        if not np.isfinite(p1).all():
            raise ParameterError(f"{model} ({init}, seed {seed}) on {task!r} has no p(class 1) per item; only a "
                                 "two-class task's runs do.")
        out[(task, model, init, int(seed))] = (y, p1, thresholds.get((task, model, init, int(seed))))
    return out


def score_predictions(score, probs, truth, valid=None) -> dict:
    """``score(probs, truth)``, or for a score with ``needs_validation`` (:class:`ValidatedBinaryScore`)
    ``score(probs, truth, valid=valid())``: ``valid`` is a zero-argument callable returning (validation probs,
    validation labels), called only when the score needs them (so no validation pass is paid otherwise)."""
    if getattr(score, "needs_validation", False) and valid is not None:
        return score(probs, truth, valid=valid())
    return score(probs, truth)


class ValidatedBinaryScore:
    """A grid's binary score that picks its threshold on the run's own validation predictions:
    ``score(test_probs, test_labels, valid=(valid_probs, valid_labels))`` is :func:`binary_metrics` at
    :func:`best_threshold` of the validation items (plain argmax keys without ``valid``). Picklable; the grid
    (``finetune_runs``) sees ``needs_validation`` and passes the validation predictions."""

    needs_validation = True

    def __call__(self, probs, truth, valid=None) -> dict:
        if valid is None:
            return binary_metrics(probs, truth)
        vp = np.asarray(valid[0], dtype=np.float64)
        vp1 = vp[:, 1] if vp.ndim == 2 else vp
        return binary_metrics(probs, truth, threshold=best_threshold(vp1, valid[1])[0])

    def __eq__(self, other) -> bool:
        return type(other) is type(self)

    def __hash__(self) -> int:
        return hash(type(self).__name__)


__all__ = ["macro_f1", "multiclass_metrics", "uniform_guess_metrics", "mcc_from_counts", "best_threshold",
           "validation_threshold", "binary_metrics", "ValidatedBinaryScore", "bootstrap_weights", "weighted_mcc",
           "weighted_auroc", "percentile_interval", "resampled_binary_score",
           "binary_run_predictions", "score_predictions"]
