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


def kmer_logistic_regression(train_seqs: Sequence[str], train_labels, test_seqs: Sequence[str], *, num_classes: int,
                             kmer: int = 4, tfidf: bool = True, C: float = 1.0, max_iter: int = 300, seed: int = 0):
    """(n_test, num_classes) probabilities of a logistic regression on (TF-IDF-weighted, sublinear) k-mer counts.

    Classes absent from the training labels get probability 1e-9 (then rows are renormalised)."""
    from sklearn.feature_extraction.text import TfidfTransformer
    from sklearn.linear_model import LogisticRegression

    y = np.asarray(train_labels, dtype=np.int64)
    X, Xt = kmer_count_matrix(list(train_seqs), kmer), kmer_count_matrix(list(test_seqs), kmer)
    if tfidf:
        tf = TfidfTransformer(sublinear_tf=True).fit(X)
        X, Xt = tf.transform(X), tf.transform(Xt)
    out = np.full((Xt.shape[0], num_classes), 1e-9)
    present = np.unique(y)
    if present.size == 1:
        out[:, present[0]] = 1.0
    else:
        with contextlib.redirect_stderr(None), _no_convergence_warnings():
            clf = LogisticRegression(C=C, max_iter=max_iter, random_state=seed).fit(X, y)
        out[:, clf.classes_] = np.maximum(clf.predict_proba(Xt), 1e-9)
    return out / out.sum(axis=1, keepdims=True)


def tuned_kmer_logistic_regression(train, valid, test_seqs: Sequence[str], *, num_classes: int,
                                   kmers: Sequence[int] = (3, 4, 5), Cs: Sequence[float] = (0.1, 1.0, 10.0),
                                   tfidf: bool = True, max_iter: int = 300, seed: int = 0):
    """(test probabilities (n_test, num_classes), choice): :func:`kmer_logistic_regression` with the k-mer size
    and the inverse regularisation ``C`` picked on ``valid`` = (seqs, labels) by the lowest mean validation
    cross-entropy (ties: the first in ``kmers`` x ``Cs`` order), then refitted on ``train`` = (seqs, labels)
    alone and applied to ``test_seqs``; the test set plays no part in the choice. ``choice``: dict kmer, C,
    valid_bits (cross-entropy in bits per example at the choice) and grid (one dict per candidate)."""
    from .errors import ParameterError

    kmers, Cs = [check_int_range("kmers", k, 1, 10) for k in kmers], list(Cs)
    if not kmers or not Cs or any(not (isinstance(c, (int, float)) and c > 0) for c in Cs):
        raise ParameterError(f"kmers={kmers!r} and Cs={Cs!r} must be non-empty, with positive C values, e.g. "
                             "kmers=(3, 4, 5), Cs=(0.1, 1, 10).")
    v_labels = np.asarray(valid[1], dtype=np.int64)
    grid = []
    for k in kmers:
        for c in Cs:
            probs = kmer_logistic_regression(train[0], train[1], valid[0], num_classes=num_classes, kmer=k,
                                             tfidf=tfidf, C=c, max_iter=max_iter, seed=seed)
            bits = float(-np.log2(probs[np.arange(v_labels.size), v_labels]).mean())
            grid.append({"kmer": k, "C": float(c), "valid_bits": bits})
    best = min(grid, key=lambda g: g["valid_bits"])
    probs = kmer_logistic_regression(train[0], train[1], test_seqs, num_classes=num_classes, kmer=best["kmer"],
                                     tfidf=tfidf, C=best["C"], max_iter=max_iter, seed=seed)
    return probs, {**best, "grid": grid}


__all__ = ["kmer_count_matrix", "kmer_logistic_regression", "tuned_kmer_logistic_regression"]
