"""The k-mer count baseline: a logistic regression on (TF-IDF-weighted) overlapping k-mer counts.

:func:`kmer_count_matrix` counts the k-mers of each sequence with the package's codec (``codec.kmer_codes``:
ACGT order, first letter most significant, so column ``j`` is the k-mer ``codec.unpack_kmers([j], k)``);
:func:`kmer_logistic_regression` fits scikit-learn's logistic regression on them and returns class
probabilities.
"""

from __future__ import annotations

import contextlib
from typing import Sequence

import numpy as np

from .errors import check_int_range


def kmer_count_matrix(seqs: Sequence[str], kmer: int):
    """(n, 4**kmer) scipy CSR matrix of overlapping ``kmer``-mer counts per sequence (``kmer`` 1..10).

    Column ``j`` counts the k-mer whose packed code (``codec.kmer_codes``, ACGT order) is ``j``; k-mers holding
    any letter other than A/C/G/T (either case) are skipped, and no k-mer spans two sequences."""
    from scipy import sparse

    from .codec import kmer_codes

    kmer = check_int_range("kmer", kmer, 1, 10, hint="Counts have 4**kmer columns.")
    seqs = list(seqs)
    # One pass over all sequences, joined by a separator that invalidates every window crossing it.
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    values, valid = kmer_codes("N".join(seqs), kmer)
    starts = np.concatenate([[0], np.cumsum(lengths + 1)[:-1]]) if seqs else np.zeros(0, np.int64)
    seq_of = np.searchsorted(starts, np.arange(values.size), side="right") - 1
    cols = values[valid].astype(np.int64)
    return sparse.csr_matrix((np.ones(cols.size), (seq_of[valid], cols)), shape=(len(seqs), 4**kmer))


@contextlib.contextmanager
def _no_convergence_warnings():
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def _kmer_features(train_seqs: Sequence[str], others: Sequence[Sequence[str]], kmer: int, tfidf: bool):
    """(train matrix, [matrix of each sequence list in ``others``]): k-mer counts, TF-IDF-weighted (sublinear,
    fitted on train alone) when ``tfidf``."""
    from sklearn.feature_extraction.text import TfidfTransformer

    X, rest = kmer_count_matrix(list(train_seqs), kmer), [kmer_count_matrix(list(o), kmer) for o in others]
    if tfidf:
        tf = TfidfTransformer(sublinear_tf=True).fit(X)
        X, rest = tf.transform(X), [tf.transform(r) for r in rest]
    return X, rest


def _class_probs(clf, X, num_classes: int, present) -> np.ndarray:
    """(n, num_classes) probabilities; classes absent from training get 1e-9, rows renormalised."""
    out = np.full((X.shape[0], num_classes), 1e-9)
    if clf is None:  # a single training class
        out[:, present[0]] = 1.0
    else:
        out[:, clf.classes_] = np.maximum(clf.predict_proba(X), 1e-9)
    return out / out.sum(axis=1, keepdims=True)


def _fits_along_c(X, y, Cs: Sequence[float], *, max_iter: int, seed: int):
    """Yield (C, fitted LogisticRegression or None for a single class) for C in ascending order; each fit starts
    from the previous (more regularised) solution (``warm_start``), which reaches the same optimum in fewer
    lbfgs iterations."""
    from sklearn.linear_model import LogisticRegression

    if np.unique(y).size == 1:
        for c in sorted(Cs):
            yield c, None
        return
    clf = LogisticRegression(max_iter=max_iter, random_state=seed, warm_start=True)
    for c in sorted(Cs):
        with contextlib.redirect_stderr(None), _no_convergence_warnings():
            clf.set_params(C=float(c)).fit(X, y)
        yield c, clf


def kmer_logistic_regression(train_seqs: Sequence[str], train_labels, test_seqs: Sequence[str], *, num_classes: int,
                             kmer: int = 4, tfidf: bool = True, C: float = 1.0, max_iter: int = 300, seed: int = 0):
    """(n_test, num_classes) probabilities of a logistic regression on (TF-IDF-weighted, sublinear) k-mer counts.

    Classes absent from the training labels get probability 1e-9 (then rows are renormalised)."""
    y = np.asarray(train_labels, dtype=np.int64)
    X, (Xt,) = _kmer_features(train_seqs, [test_seqs], kmer, tfidf)
    (_, clf), = _fits_along_c(X, y, [C], max_iter=max_iter, seed=seed)
    return _class_probs(clf, Xt, num_classes, np.unique(y))


def tuned_kmer_logistic_regression(train, valid, test_seqs: Sequence[str], *, num_classes: int,
                                   kmers: Sequence[int] = (3, 4, 5), Cs: Sequence[float] = (0.1, 1.0, 10.0),
                                   tfidf: bool = True, max_iter: int = 300, seed: int = 0):
    """(test probabilities (n_test, num_classes), choice): :func:`kmer_logistic_regression` with the k-mer size
    and the inverse regularisation ``C`` picked on ``valid`` = (seqs, labels) by the lowest mean validation
    cross-entropy (ties: the first in ``kmers`` x ``Cs`` order); the model fitted on ``train`` = (seqs, labels)
    with that choice is applied to ``test_seqs``, and the test set plays no part in the choice. Per k-mer size
    the features are built once and the Cs are fitted in ascending order, each from the previous solution
    (warm start; 20-35 % fewer lbfgs iterations at 4,096 classes). ``choice``: dict kmer, C, valid_bits
    (cross-entropy in bits per example at the choice) and grid (one dict per candidate, in ``kmers`` x ``Cs``
    order)."""
    from .errors import ParameterError

    kmers, Cs = [check_int_range("kmers", k, 1, 10) for k in kmers], list(Cs)
    if not kmers or not Cs or any(not (isinstance(c, (int, float)) and c > 0) for c in Cs):
        raise ParameterError(f"kmers={kmers!r} and Cs={Cs!r} must be non-empty, with positive C values, e.g. "
                             "kmers=(3, 4, 5), Cs=(0.1, 1, 10).")
    y = np.asarray(train[1], dtype=np.int64)
    v_labels = np.asarray(valid[1], dtype=np.int64)
    present = np.unique(y)
    order = {(k, float(c)): i for i, (k, c) in enumerate((k, c) for k in kmers for c in Cs)}
    bits_of, best, best_probs = {}, None, None
    for k in kmers:
        X, (Xv, Xt) = _kmer_features(train[0], [valid[0], test_seqs], k, tfidf)
        for c, clf in _fits_along_c(X, y, Cs, max_iter=max_iter, seed=seed):
            probs = _class_probs(clf, Xv, num_classes, present)
            bits = float(-np.log2(probs[np.arange(v_labels.size), v_labels]).mean())
            bits_of[(k, float(c))] = bits
            rank = (bits, order[(k, float(c))])
            if best is None or rank < best:  # only the leader's test probabilities are kept (4^k columns each)
                best, best_probs = rank, _class_probs(clf, Xt, num_classes, present)
    grid = [{"kmer": k, "C": float(c), "valid_bits": bits_of[(k, float(c))]} for k in kmers for c in Cs]
    choice = grid[best[1]]
    return best_probs, {**choice, "grid": grid}


__all__ = ["kmer_count_matrix", "kmer_logistic_regression", "tuned_kmer_logistic_regression"]
