"""Scores of a classifier's class probabilities against true labels.

* :func:`multiclass_metrics` -- accuracy, top-5 accuracy, macro-F1 and cross-entropy in bits per predicted
  nucleotide (the next-k-mer task);
* :func:`uniform_guess_metrics` -- the expected scores of guessing uniformly at random;
* :func:`binary_metrics` -- MCC, accuracy and AUROC of a two-class classifier;
* :func:`macro_f1`; :func:`item_scores` -- per-item correctness and bits (the items of a paired comparison).

Probabilities are (n, classes) arrays, labels (n,) integers in 0..classes-1.
"""

from __future__ import annotations

import math

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


def binary_metrics(probs, truth) -> dict:
    """MCC and accuracy of the argmax (threshold 0.5), AUROC of p(class 1) and how many distinct classes the
    predictions use (``predicted_classes``: 1 = a constant predictor); ``probs`` (n, 2) or (n,) p(1)."""
    from sklearn.metrics import matthews_corrcoef, roc_auc_score

    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim == 1:
        probs = np.stack([1 - probs, probs], axis=1)
    probs, truth = _check_scores(probs, truth)
    if probs.shape[1] != 2:
        raise ParameterError(f"binary_metrics needs two classes, got {probs.shape[1]}.")
    pred = (probs[:, 1] > probs[:, 0]).astype(np.int64)
    auroc = float(roc_auc_score(truth, probs[:, 1])) if np.unique(truth).size == 2 else float("nan")
    return {"n": int(truth.size), "mcc": float(matthews_corrcoef(truth, pred)), "accuracy": float(np.mean(pred == truth)),
            "auroc": auroc, "predicted_classes": int(np.unique(pred).size)}


__all__ = ["macro_f1", "multiclass_metrics", "uniform_guess_metrics", "binary_metrics"]
