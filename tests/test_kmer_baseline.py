"""The k-mer count baseline: counts checked against a brute-force count (columns = codec's packed k-mers), and a
logistic regression that sees GC content in 2-mer counts."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from dnalm_utils import codec
from dnalm_utils import kmer_baseline as KB
from dnalm_utils.errors import ParameterError


def _seqs(n, length=24, seed=0):
    rng = np.random.default_rng(seed)
    return ["".join(rng.choice(list("ACGT"), length)) for _ in range(n)]


def _gc_labels(seqs):
    return np.array([int(s.count("G") + s.count("C") > len(s) / 2) for s in seqs])


def test_kmer_counts_and_logistic_regression():
    seqs = ["ACGTN" + "AC", "aaaa"]
    X = KB.kmer_count_matrix(seqs, 2).toarray()
    codes = {"AC": 1, "CG": 6, "GT": 11, "AA": 0}
    assert X[0, codes["AC"]] == 2 and X[0, codes["CG"]] == 1 and X[0, codes["GT"]] == 1 and X[0].sum() == 4
    assert X[1, codes["AA"]] == 3 and X[1].sum() == 3  # lower case counts; no k-mer spans two sequences
    train = _seqs(200, seed=4)
    y = _gc_labels(train)
    probs = KB.kmer_logistic_regression(train, y, train[:50], num_classes=3, kmer=2)
    assert probs.shape == (50, 3) and np.allclose(probs.sum(1), 1) and (probs[:, 2] < 1e-6).all()
    assert np.mean(probs[:, :2].argmax(1) == y[:50]) > 0.8  # GC content is visible in 2-mer counts


@pytest.mark.parametrize("k", [1, 3, 5])
def test_kmer_counts_equal_a_brute_force_count(k):
    rng = np.random.default_rng(k)
    seqs = ["".join(rng.choice(list("ACGTNacgtR"), int(rng.integers(0, 30)))) for _ in range(40)] + ["", "AC"]
    X = KB.kmer_count_matrix(seqs, k).toarray()
    assert X.shape == (len(seqs), 4**k)
    for i, s in enumerate(seqs):
        want = Counter(s[j : j + k].upper() for j in range(len(s) - k + 1) if set(s[j : j + k].upper()) <= set("ACGT"))
        got = {kmer: X[i, int(codec.pack_kmers(kmer)[0])] for kmer in want}
        assert got == want and X[i].sum() == sum(want.values())


def test_kmer_length_is_checked():
    with pytest.raises(ParameterError, match="kmer"):
        KB.kmer_count_matrix(["ACGT"], 11)


def test_tuned_regression_picks_the_kmer_on_validation_never_on_test():
    # labels depend on whether a 5-mer motif is present: 5-mer counts separate the classes, 1-mer counts cannot
    def split(n, seed):
        r = np.random.default_rng(seed)
        seqs, labels = [], r.integers(0, 2, n)
        for y in labels:
            s = list(r.choice(list("ACGT"), 40))
            if y:
                p = int(r.integers(0, 35))
                s[p:p + 5] = "GATTC"
            seqs.append("".join(s))
        return seqs, labels

    train, valid, test = split(300, 1), split(200, 2), split(200, 3)
    probs, choice = KB.tuned_kmer_logistic_regression(train, valid, test[0], num_classes=2, kmers=(1, 5), Cs=(1.0,))
    assert choice["kmer"] == 5 and len(choice["grid"]) == 2
    assert choice["valid_bits"] == min(g["valid_bits"] for g in choice["grid"])
    assert (probs.argmax(1) == test[1]).mean() > 0.8
    np.testing.assert_allclose(probs.sum(1), 1)
    # deterministic, and the test sequences play no part in the choice
    probs2, choice2 = KB.tuned_kmer_logistic_regression(train, valid, test[0][:50], num_classes=2, kmers=(1, 5),
                                                        Cs=(1.0,))
    assert choice2 == choice and np.array_equal(probs[:50], probs2)
    with pytest.raises(ParameterError):
        KB.tuned_kmer_logistic_regression(train, valid, test[0], num_classes=2, kmers=(), Cs=(1.0,))


def test_tuned_regression_warm_starts_along_c_to_the_cold_optimum_and_keeps_the_grid_order():
    r = np.random.default_rng(7)
    seqs = ["".join(r.choice(list("ACGT"), 30)) for _ in range(400)]
    labels = np.array([s.count("G") % 3 for s in seqs])  # three classes, learnable from 1-mer counts
    train, valid, test = (seqs[:200], labels[:200]), (seqs[200:300], labels[200:300]), seqs[300:]
    Cs = (10.0, 0.01, 1.0)  # given out of order: the grid keeps this order, the fits run 0.01, 1, 10
    probs, choice = KB.tuned_kmer_logistic_regression(train, valid, test, num_classes=3, kmers=(1, 2), Cs=Cs,
                                                      max_iter=2000)
    assert [(g["kmer"], g["C"]) for g in choice["grid"]] == [(k, c) for k in (1, 2) for c in Cs]
    assert choice["valid_bits"] == min(g["valid_bits"] for g in choice["grid"])
    # the chosen model, warm-started, predicts like the same (k-mer, C) fitted cold
    cold = KB.kmer_logistic_regression(*train, test, num_classes=3, kmer=choice["kmer"], C=choice["C"], max_iter=2000)
    np.testing.assert_allclose(probs, cold, atol=2e-3)
    # every grid entry's validation bits match a cold fit of that entry
    for g in choice["grid"]:
        p = KB.kmer_logistic_regression(*train, valid[0], num_classes=3, kmer=g["kmer"], C=g["C"], max_iter=2000)
        assert abs(-np.log2(p[np.arange(100), valid[1]]).mean() - g["valid_bits"]) < 2e-3
