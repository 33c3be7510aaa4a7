"""Tests for dnalm_utils.ngram: k-mer counts and the context-only n-gram baselines, against brute force."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dnalm_utils.errors import DnalmInputError, ParameterError, SequenceAlphabetError
from dnalm_utils import ngram
from dnalm_utils.genome import Window
from dnalm_utils.ngram import (
    KmerCounts,
    all_kmers,
    block_truth,
    decode_kmers,
    encode_kmers,
    fit_order,
    left_context_probs,
    nucleotide_frequencies,
    score_probs,
    two_sided_block_probs,
)

ACGT = "ACGT"
COMP = str.maketrans("ACGTN", "TGCAN")
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def rc(s: str) -> str:
    return s.upper().translate(COMP)[::-1]


# ---- brute-force references -----------------------------------------------------------------------


def brute_counter(seqs, k, both=True) -> Counter:
    c = Counter()
    for s in seqs:
        for strand in ([s.upper(), rc(s)] if both else [s.upper()]):
            for i in range(len(strand) - k + 1):
                w = strand[i: i + k]
                if set(w) <= set(ACGT):
                    c[w] += 1
    return c


def overlapping(s: str, w: str) -> int:
    return sum(1 for i in range(len(s) - len(w) + 1) if s.startswith(w, i))


def brute_count(seqs, w: str, both=True) -> int:
    strands = [s.upper() for s in seqs] + ([rc(s) for s in seqs] if both else [])
    return sum(overlapping(s, w) for s in strands)


def brute_block(seqs, window, start, end, order, alpha, min_count, both=True):
    """(h, 4) marginals and the order used, by explicit loops over candidates."""
    h = end - start
    o = min(order, start, len(window) - end)
    while o > 0 and ("N" in window[start - o: start].upper() or "N" in window[end: end + o].upper()):
        o -= 1
    cands = ["".join(p) for p in itertools.product(ACGT, repeat=h)]
    while True:
        left, right = window[start - o: start].upper(), window[end: end + o].upper()
        raw = np.array([brute_count(seqs, left + x + right, both) for x in cands], dtype=float)
        if raw.sum() >= min_count or o == 0:
            break
        o -= 1
    p = raw + alpha
    p = p / p.sum() if p.sum() > 0 else np.full(len(cands), 1 / len(cands))
    marg = np.zeros((h, 4))
    for x, px in zip(cands, p):
        for j, ch in enumerate(x):
            marg[j, ACGT.index(ch)] += px
    return marg, o


def brute_next(seqs, context, k, order, alpha, min_count, both=True):
    tail = context.upper().split("N")[-1]
    o = min(order, len(tail))
    cands = ["".join(p) for p in itertools.product(ACGT, repeat=k)]
    while True:
        t = tail[len(tail) - o:] if o else ""
        raw = np.array([brute_count(seqs, t + y, both) for y in cands], dtype=float)
        if raw.sum() >= min_count or o == 0:
            break
        o -= 1
    p = raw + alpha
    return (p / p.sum() if p.sum() > 0 else np.full(len(cands), 1 / len(cands))), o


# ---- strategies -------------------------------------------------------------------------------------

dna_n = st.text(alphabet="ACGTNacgt", min_size=0, max_size=40)


@st.composite
def block_case(draw):
    corpus = draw(st.lists(st.text(alphabet="ACGTN", min_size=1, max_size=50), min_size=1, max_size=3))
    n = draw(st.integers(1, 4))
    windows, blocks = [], []
    for _ in range(n):
        h = draw(st.integers(1, 3))
        w = draw(st.text(alphabet="ACGTN" if draw(st.booleans()) else "ACGT", min_size=h, max_size=14))
        s = draw(st.integers(0, len(w) - h))
        windows.append(w)
        blocks.append((s, s + h))
    order = draw(st.integers(0, 4))
    alpha = draw(st.sampled_from([0.0, 0.5, 1.0]))
    min_count = draw(st.integers(0, 3))
    both = draw(st.booleans())
    return corpus, windows, np.array(blocks), order, alpha, min_count, both


# ---- encoding ---------------------------------------------------------------------------------------


def test_encode_order_is_acgt_first_letter_most_significant():
    assert encode_kmers(["A", "C", "G", "T"]).tolist() == [0, 1, 2, 3]
    assert int(encode_kmers("ACGT")[0]) == 0b00011011
    assert int(encode_kmers("acgt")[0]) == 27  # case-insensitive
    assert all_kmers(2)[:5] == ["AA", "AC", "AG", "AT", "CA"]
    assert all_kmers(3) == ["".join(p) for p in itertools.product(ACGT, repeat=3)]
    assert encode_kmers("T" * 31)[0] == np.uint64(4**31 - 1)
    assert encode_kmers([]).shape == (0,)


@FAST
@given(st.integers(1, 31).flatmap(lambda k: st.lists(st.text(alphabet=ACGT, min_size=k, max_size=k), min_size=1,
                                                     max_size=8)))
def test_encode_decode_roundtrip(kmers):
    codes = encode_kmers(kmers)
    assert codes.dtype == np.uint64
    assert decode_kmers(codes, len(kmers[0])) == kmers
    assert [int(c) for c in codes] == [int("".join(str(ACGT.index(ch)) for ch in x), 4) for x in kmers]


def test_encode_rejects_bad_input():
    with pytest.raises(SequenceAlphabetError, match="k-mer 1"):
        encode_kmers(["AC", "AN"])
    with pytest.raises(ParameterError, match="same length"):
        encode_kmers(["AC", "ACG"])
    with pytest.raises(ParameterError, match="k"):
        encode_kmers(["A" * 32])


# ---- KmerCounts ----------------------------------------------------------------------------------------


@FAST
@given(st.lists(dna_n, min_size=0, max_size=4), st.booleans())
def test_kmer_counts_match_brute_force(seqs, both):
    kc = KmerCounts(seqs, 6, both_strands=both)
    for k in range(1, 7):
        ref = brute_counter(seqs, k, both)
        codes, cnt = kc.table(k)
        got = dict(zip(decode_kmers(codes, k), cnt.tolist()))
        assert got == dict(ref)
        assert kc.total(k) == sum(ref.values())
        probe = all_kmers(k) if k <= 3 else list(ref) + ["ACGTAC"[:k], "TTTTTT"[:k]]
        assert kc.count_strings(probe).tolist() == [ref[x] for x in probe]
        assert kc.count(encode_kmers(probe), k).tolist() == [ref[x] for x in probe]
        assert np.all(np.diff(codes.astype(np.float64)) > 0)  # sorted unique


def test_kmer_counts_both_strands_symmetric_and_skip_n():
    kc = KmerCounts(["AACGTNNAAG", "gattaca"], 5)
    assert kc.count_strings(["AAC", "GTT"]).tolist() == [1, 1]  # GTT = revcomp(AAC)
    assert kc.count_strings(["GT", "TA"]).tolist() == [brute_count(["AACGTNNAAG", "gattaca"], x) for x in ("GT", "TA")]
    fwd = KmerCounts(["AACGTNNAAG"], 5, both_strands=False)
    assert fwd.count_strings(["GT", "AAG", "CTT"]).tolist() == [1, 1, 0]
    assert fwd.total(3) == 3 + 1  # AAC ACG CGT | AAG
    assert fwd.count(np.array([0, 2], dtype=np.int64), 2).tolist() == [2, 1]  # AA, AG
    assert kc.count(np.zeros(0, dtype=np.uint64), 3).shape == (0,)
    assert "KmerCounts(2 sequences" in repr(kc)


def test_kmer_counts_accept_records_and_lazy_cache():
    w = Window("chr", 0, 4, "+", "ACGT")
    kc = KmerCounts([w, "AC"], 20)
    assert kc._tables == {}
    assert kc.count_strings(["ACG", "A"]).tolist() == [2, 3]  # ACGT + its reverse complement ACGT, AC
    assert sorted(kc._tables) == [1, 3]
    before = kc.nbytes
    kc.clear(3)
    assert sorted(kc._tables) == [1] and kc.nbytes < before
    kc.clear()
    assert kc.count_strings(["ACG"]).tolist() == [2]


def test_kmer_counts_errors():
    kc = KmerCounts(["ACGT"], 4)
    with pytest.raises(ParameterError, match="max_len=4"):
        kc.count(np.array([0], dtype=np.uint64), 5)
    with pytest.raises(ParameterError, match="not a 2-mer code"):
        kc.count(np.array([16], dtype=np.uint64), 2)
    with pytest.raises(ParameterError, match=">= 0"):
        kc.count(np.array([-1]), 2)
    with pytest.raises(ParameterError, match="integers"):
        kc.count(np.array([0.5]), 2)
    with pytest.raises(ParameterError, match="max_len"):
        KmerCounts(["ACGT"], 32)
    with pytest.raises(ParameterError, match="max_len"):
        KmerCounts(["ACGT"], 0)
    with pytest.raises(ParameterError, match="int"):
        KmerCounts([123], 3)
    with pytest.raises(SequenceAlphabetError):
        kc.count_strings(["AN"])
    assert issubclass(SequenceAlphabetError, DnalmInputError)


def test_nucleotide_frequencies():
    f = nucleotide_frequencies(["AACN", "gt"])
    assert f.tolist() == pytest.approx([2 / 5, 1 / 5, 1 / 5, 1 / 5])
    assert nucleotide_frequencies("AAAC", both_strands=True).tolist() == pytest.approx([3 / 8, 1 / 8, 1 / 8, 3 / 8])
    assert np.isnan(nucleotide_frequencies(["NNN"])).all()


# ---- two-sided block model ------------------------------------------------------------------------------


@FAST
@given(block_case())
def test_two_sided_matches_brute_force(case):
    corpus, windows, blocks, order, alpha, min_count, both = case
    kc = KmerCounts(corpus, 2 * order + 3, both_strands=both)
    got, used = two_sided_block_probs(kc, windows, blocks, order=order, alpha=alpha, min_count=min_count,
                                      return_order=True)
    assert got.shape == (int((blocks[:, 1] - blocks[:, 0]).sum()), 4)
    rows = []
    for i, (w, (s, e)) in enumerate(zip(windows, blocks.tolist())):
        m, o = brute_block(corpus, w, s, e, order, alpha, min_count, both)
        rows.append(m)
        assert used[i] == o
    np.testing.assert_allclose(got, np.concatenate(rows), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=1e-12)


def test_two_sided_backoff_when_context_unseen():
    corpus = ["AAACAAAGAAAT"]
    kc = KmerCounts(corpus, 9, both_strands=False)
    # Context GG?GG never occurs: back off to order 0 (unigram of the hidden letter).
    p, used = two_sided_block_probs(kc, ["GGGGAGGGG"], np.array([[4, 5]]), order=4, alpha=0.0, return_order=True)
    assert used.tolist() == [0]
    np.testing.assert_allclose(p[0], np.array([9, 1, 1, 1]) / 12)
    # "AA?AA" is seen with ? = C and G only (AAACAAAG): order 2 is used.
    p, used = two_sided_block_probs(kc, ["AAAAA"], np.array([[2, 3]]), order=2, alpha=0.0, return_order=True)
    assert used.tolist() == [2]
    np.testing.assert_allclose(p[0], [0, 0.5, 0.5, 0])
    # min_count=3 is not reached at order 2 (2 hits) nor 1 (A?A: AAA x4 ... counted): compare to brute force.
    p, used = two_sided_block_probs(kc, ["AAAAA"], np.array([[2, 3]]), order=2, alpha=0.5, min_count=3,
                                    return_order=True)
    ref, o = brute_block(corpus, "AAAAA", 2, 3, 2, 0.5, 3, both=False)
    assert used.tolist() == [o] and o < 2
    np.testing.assert_allclose(p, ref)


def test_two_sided_uniform_when_nothing_seen_and_alpha_zero():
    kc = KmerCounts(["AAAA"], 5, both_strands=False)
    p = two_sided_block_probs(kc, ["CCGCC"], np.array([[2, 3]]), order=2, alpha=0.0)
    assert p.tolist() == [[1.0, 0.0, 0.0, 0.0]]  # order 0 = unigram: only A seen
    p = two_sided_block_probs(kc, ["CCGCC"], np.array([[1, 3]]), order=1, alpha=0.0)
    assert p[:, 0].tolist() == [1.0, 1.0]  # 2-mer AA seen
    kc2 = KmerCounts(["AC"], 7, both_strands=False)
    p = two_sided_block_probs(kc2, ["GGGG"], np.array([[0, 3]]), order=2, alpha=0.0)
    np.testing.assert_allclose(p, 0.25)  # no 3-mer at all: uniform


@pytest.mark.parametrize("h", [1, 2, 3, 4])
def test_periodic_corpus_is_predicted_exactly(h):
    unit = "ACGGTCA"  # its reverse complement TGACCGT has another composition: no cross-strand clash
    corpus = [unit * 300]
    kc = KmerCounts(corpus, 2 * 4 + h)
    # alpha is added to each of the 4**h candidates, so keep it small next to ~300 hits per context.
    alpha = 0.01
    genome = unit * 20
    rng = np.random.default_rng(0)
    starts = rng.integers(0, len(genome) - 30, size=50)
    windows = [genome[s: s + 30] for s in starts]
    blocks = np.tile([13, 13 + h], (50, 1))
    p = two_sided_block_probs(kc, windows, blocks, order=4, alpha=alpha)
    truth = block_truth(windows, blocks)
    s = score_probs(p, truth)
    assert s["accuracy"] == 1.0
    assert p[np.arange(truth.size), truth].min() > 0.98
    # The reverse-complement strand is predicted as well (both strands counted).
    p_rc = two_sided_block_probs(kc, [rc(w) for w in windows], np.tile([30 - 13 - h, 30 - 13], (50, 1)), order=4,
                                 alpha=alpha)
    assert score_probs(p_rc, block_truth([rc(w) for w in windows], np.tile([30 - 13 - h, 30 - 13], (50, 1))))[
        "accuracy"] == 1.0


def test_mixed_block_lengths_keep_row_order():
    corpus = ["ACGTTGCAAGGCTTACGATCGATCGGCTAGCTAGGATCCA" * 3]
    kc = KmerCounts(corpus, 12)
    windows = ["ACGTTGCAAGGCTTAC", "GATCGATCGGCTAG", "TTGCAAGG"]
    blocks = np.array([[5, 8], [2, 3], [3, 5]])
    got = two_sided_block_probs(kc, windows, blocks, order=3)
    ref = np.concatenate([brute_block(corpus, w, s, e, 3, 0.5, 1)[0] for w, (s, e) in zip(windows, blocks.tolist())])
    np.testing.assert_allclose(got, ref)
    # Each window alone gives the same rows (no cross-talk between groups).
    alone = np.concatenate([two_sided_block_probs(kc, [w], b[None], order=3) for w, b in zip(windows, blocks)])
    np.testing.assert_allclose(got, alone)


def test_n_in_flank_shortens_the_context():
    corpus = ["TTACGATTCCGATGGACGATCC" * 4]
    kc = KmerCounts(corpus, 11)
    # N two letters left of the block: o = 1 on both sides although order=4 and 5 nt are on the right.
    windows = ["GGNCGATTCCG", "ACGATnCCGAT", "NNNNANNNN"]
    blocks = np.array([[4, 5], [3, 4], [4, 5]])
    p, used = two_sided_block_probs(kc, windows, blocks, order=4, return_order=True)
    assert used[:2].tolist() == [1, 1] and used[2] == 0
    ref = np.concatenate([brute_block(corpus, w, s, e, 4, 0.5, 1)[0] for w, (s, e) in zip(windows, blocks.tolist())])
    np.testing.assert_allclose(p, ref)
    # N or any other letter inside the block itself is ignored (it is hidden).
    p2 = two_sided_block_probs(kc, ["ACGAT?CCGAT"], np.array([[5, 6]]), order=4)
    p3 = two_sided_block_probs(kc, ["ACGATACCGAT"], np.array([[5, 6]]), order=4)
    np.testing.assert_allclose(p2, p3)


def test_windows_may_be_window_objects_and_lowercase():
    kc = KmerCounts(["ACGTTGCAAGGCTTACG" * 3], 9)
    w = Window("x", 0, 9, "+", "GCAAGGCTT")
    a = two_sided_block_probs(kc, [w], np.array([[4, 5]]), order=3)
    b = two_sided_block_probs(kc, ["gcaaggctt"], np.array([[4, 5]]), order=3)
    np.testing.assert_allclose(a, b)


def test_two_sided_errors():
    kc = KmerCounts(["ACGTACGTAC" * 5], 20)
    win = ["ACGTACGTACGT"]
    with pytest.raises(ParameterError, match="order"):
        two_sided_block_probs(kc, win, np.array([[5, 6]]), order=-1)
    with pytest.raises(ParameterError, match="at most 6"):
        two_sided_block_probs(kc, ["A" * 20], np.array([[2, 9]]), order=1)
    with pytest.raises(ParameterError, match="inside window 0"):
        two_sided_block_probs(kc, win, np.array([[10, 13]]), order=1)
    with pytest.raises(ParameterError, match="inside window 0"):
        two_sided_block_probs(kc, win, np.array([[-1, 2]]), order=1)
    with pytest.raises(ParameterError, match="non-empty"):
        two_sided_block_probs(kc, win, np.array([[4, 4]]), order=1)
    with pytest.raises(ParameterError, match="one row per window"):
        two_sided_block_probs(kc, win, np.array([[4, 5], [1, 2]]), order=1)
    with pytest.raises(ParameterError, match="integer"):
        two_sided_block_probs(kc, win, np.array([[4.5, 5.5]]), order=1)
    with pytest.raises(ParameterError, match="max_len >= 22"):
        two_sided_block_probs(kc, ["A" * 30], np.array([[10, 16]]), order=8)
    with pytest.raises(ParameterError, match="alpha"):
        two_sided_block_probs(kc, win, np.array([[4, 5]]), order=1, alpha=-1)
    with pytest.raises(ParameterError, match="min_count"):
        two_sided_block_probs(kc, win, np.array([[4, 5]]), order=1, min_count=-2)
    with pytest.raises(SequenceAlphabetError, match=r"windows\[1\]: position 2 .*'R'"):
        two_sided_block_probs(kc, ["ACGTA", "ACRTA"], np.array([[2, 3], [3, 4]]), order=1)
    with pytest.raises(SequenceAlphabetError, match="outside the hidden block"):
        two_sided_block_probs(kc, ["AC-TA"], np.array([[3, 4]]), order=1)
    with pytest.raises(ParameterError, match="DNA sequence"):
        two_sided_block_probs(kc, [42], np.array([[0, 1]]), order=1)
    assert two_sided_block_probs(kc, [], np.zeros((0, 2), int), order=2).shape == (0, 4)


# ---- left-context (next k-mer) model ---------------------------------------------------------------------


@FAST
@given(st.lists(st.text(alphabet="ACGTN", min_size=1, max_size=50), min_size=1, max_size=3),
       st.lists(dna_n, min_size=1, max_size=4), st.integers(1, 3), st.integers(0, 4),
       st.sampled_from([0.0, 0.5]), st.integers(0, 3), st.booleans())
def test_left_context_matches_brute_force(corpus, contexts, k, order, alpha, min_count, both):
    kc = KmerCounts(corpus, order + k, both_strands=both)
    got, used = left_context_probs(kc, contexts, k, order=order, alpha=alpha, min_count=min_count, return_order=True)
    assert got.shape == (len(contexts), 4**k)
    for i, c in enumerate(contexts):
        ref, o = brute_next(corpus, c, k, order, alpha, min_count, both)
        np.testing.assert_allclose(got[i], ref, rtol=1e-12, atol=1e-12)
        assert used[i] == o
    np.testing.assert_allclose(got.sum(axis=1), 1.0)


def test_left_context_class_order_is_acgt_product():
    kc = KmerCounts(["CATGT" * 50], 6, both_strands=False)
    p = left_context_probs(kc, ["TTCA", "GTCA", "CAT"], 2, order=3, alpha=0.0)
    labels = all_kmers(2)
    assert [labels[i] for i in p.argmax(axis=1)] == ["TG", "TG", "GT"]
    assert labels.index("TG") == 4 * 3 + 2
    assert p[0, 14] == 1.0


def test_left_context_errors():
    kc = KmerCounts(["ACGT" * 5], 6)
    with pytest.raises(ParameterError, match="order"):
        left_context_probs(kc, ["ACG"], 1, order=-1)
    with pytest.raises(ParameterError, match="max_len >= 8"):
        left_context_probs(kc, ["ACG"], 3, order=5)
    with pytest.raises(ParameterError, match="k"):
        left_context_probs(kc, ["ACG"], 9, order=0)
    with pytest.raises(SequenceAlphabetError, match=r"contexts\[0\]: position 1"):
        left_context_probs(kc, ["A-G"], 1, order=2)
    assert left_context_probs(kc, [], 2, order=2).shape == (0, 16)


# ---- evaluation helpers -------------------------------------------------------------------------------------


def test_block_truth_score_and_fit_order():
    unit = "ACGGTCA"
    kc = KmerCounts([unit * 100], 12)
    windows = [(unit * 5)[s: s + 20] for s in range(7)]
    blocks = np.tile([9, 11], (7, 1))
    truth = block_truth(windows, blocks)
    assert truth.tolist() == [ACGT.index(ch) for w in windows for ch in w[9:11]]
    assert block_truth(["ACNT"], np.array([[2, 4]])).tolist() == [-1, 3]
    best, table = fit_order(kc, windows, blocks, range(0, 4))
    assert list(table.columns) == ["order", "n", "accuracy", "log_loss"]
    assert best >= 2 and table.loc[table["order"] == best, "accuracy"].item() == 1.0
    assert table["log_loss"].iloc[0] > table["log_loss"].min()
    s = score_probs(np.array([[0.7, 0.1, 0.1, 0.1], [0.1, 0.1, 0.1, 0.7]]), np.array([0, -1]))
    assert s["n"] == 1 and s["accuracy"] == 1.0 and s["log_loss"] == pytest.approx(-np.log(0.7))
    with pytest.raises(ParameterError, match="metric"):
        fit_order(kc, windows, blocks, [1], metric="auc")


def test_held_out_order_counts_only_the_other_records_and_resists_memorising(monkeypatch):
    rng = np.random.default_rng(0)
    seqs = ["".join(rng.choice(list("ACGT"), 3000)) for _ in range(10)]  # i.i.d. letters: no context to learn
    seen = []
    real = ngram.KmerCounts

    def spy(sequences, *a, **kw):
        seen.append(list(sequences))
        return real(seen[-1], *a, **kw)

    monkeypatch.setattr(ngram, "KmerCounts", spy)
    res = ngram.held_out_order(seqs, [1, 2], orders=range(0, 7), window_nt=40, n_windows=300, holdout_every=5, seed=1)
    assert seen == [[s for i, s in enumerate(seqs) if i % 5 != 4]]  # records 4 and 9 are never counted
    assert sorted(res) == [1, 2] and all(best <= 2 for best, _ in res.values())
    # scored on the counted sequences themselves, the longest flank would look best
    counts = real(seqs, max_len=14)
    wins = [s[100:140] for s in seqs] * 5
    starts = np.full(len(wins), 18)
    best_in_sample, _ = ngram.fit_order(counts, wins, np.stack([starts, starts + 1], 1), range(0, 7))
    assert best_in_sample >= 5
    again = ngram.held_out_order(seqs, [1, 2], orders=range(0, 7), window_nt=40, n_windows=300, holdout_every=5, seed=1)
    assert all(again[h][1].equals(res[h][1]) for h in res)
    with pytest.raises(ParameterError, match="too short"):
        ngram.held_out_order(seqs, [4], orders=range(0, 9), window_nt=12)
    with pytest.raises(ParameterError, match="at least 5 sequences"):
        ngram.held_out_order(seqs[:3], [1], orders=range(0, 3), window_nt=40)


# ---- records contained in the counted ones ---------------------------------------------------------
def _rc(s: str) -> str:
    return s[::-1].translate(str.maketrans("ACGT", "TGCA"))


def test_held_out_order_leaves_out_a_record_that_repeats_the_counted_ones(monkeypatch):
    from dnalm_utils import genome

    rng = np.random.default_rng(3)
    seqs = ["".join(rng.choice(list("ACGT"), 3000)) for _ in range(10)]
    seqs[4] = _rc(seqs[0][500:2500])  # a held-out record that is a copy of a counted one
    drawn = []
    real = genome.sample_windows
    monkeypatch.setattr(genome, "sample_windows", lambda g, *a, **kw: drawn.append(dict(g.lengths)) or real(g, *a, **kw))
    ngram.held_out_order(seqs, [1], orders=range(0, 4), window_nt=40, n_windows=50, holdout_every=5)
    assert list(drawn[0].values()) == [3000]  # only record 9 is scored
    with pytest.raises(ParameterError, match="does not repeat"):
        ngram.held_out_order(seqs[:5], [1], orders=range(0, 3), window_nt=40, n_windows=20)


def test_two_sided_model_picks_the_order_by_block_length_and_keeps_row_order():
    seqs = ["".join(np.random.default_rng(1).choice(list("ACGT"), 3000))]
    counts = ngram.KmerCounts(seqs, max_len=2 * 3 + 2)
    windows = [seqs[0][i : i + 30] for i in range(0, 300, 30)]
    blocks = np.array([[10, 11], [10, 12], [12, 13], [5, 7], [20, 21], [8, 10], [9, 10], [14, 16], [3, 4], [11, 13]])
    model = ngram.two_sided_model(counts, {1: 3, 2: 2})
    got = model(windows, blocks)
    one, two = blocks[:, 1] - blocks[:, 0] == 1, blocks[:, 1] - blocks[:, 0] == 2
    rows = np.repeat(np.arange(len(blocks)), blocks[:, 1] - blocks[:, 0])
    np.testing.assert_allclose(got[np.isin(rows, np.flatnonzero(one))],
                               ngram.two_sided_block_probs(counts, [windows[i] for i in np.flatnonzero(one)], blocks[one], order=3))
    np.testing.assert_allclose(got[np.isin(rows, np.flatnonzero(two))],
                               ngram.two_sided_block_probs(counts, [windows[i] for i in np.flatnonzero(two)], blocks[two], order=2))
    pick = [windows[i] for i in np.flatnonzero(two)]
    np.testing.assert_allclose(ngram.two_sided_model(counts, {1: 1})(pick, blocks[two]),  # h = 2 takes h = 1's order
                               ngram.two_sided_block_probs(counts, [windows[i] for i in np.flatnonzero(two)], blocks[two], order=1))


# ---- a gap of any length -----------------------------------------------------------------------------
def _gap_corpus(seed=0):
    rng = np.random.default_rng(seed)
    seqs = ["".join(rng.choice(list("ACGT"), size=2500, p=[0.35, 0.15, 0.15, 0.35])) for _ in range(4)]
    seqs[2] = seqs[2][:700] + "NNNN" + seqs[2][700:]
    return seqs


@pytest.mark.parametrize("g", [1, 2, 4, 6])
def test_gapped_equals_block_marginal_without_smoothing(g):
    corpus = _gap_corpus()
    counts = ngram.KmerCounts(corpus, max_len=2 * 3 + g)
    rng = np.random.default_rng(g)
    wins = ["".join(rng.choice(list("ACGT"), size=30)) for _ in range(40)]
    s = rng.integers(0, 30 - g + 1, size=40)
    blocks = np.stack([s, s + g], 1)
    ref = ngram.two_sided_block_probs(counts, wins, blocks, order=3, alpha=0).reshape(40, g, 4)
    for u in range(g):
        got = ngram.gapped_letter_probs(counts, wins, blocks, s + u, order=3, alpha=0)
        np.testing.assert_allclose(got, ref[:, u], atol=1e-12)
    if g == 1:  # one unseen letter: the same at any smoothing
        np.testing.assert_allclose(ngram.gapped_letter_probs(counts, wins, blocks, s, order=3, alpha=0.5),
                                   ngram.two_sided_block_probs(counts, wins, blocks, order=3, alpha=0.5), atol=1e-12)


def test_gapped_long_gap_matches_a_brute_force_count():
    corpus = _gap_corpus(1)
    counts = ngram.KmerCounts(corpus, max_len=1)
    strands = corpus + [ngram_revcomp(s) for s in corpus]
    win = "ACGTTAGCATCGATCGGATCCATTAGCATGCA"
    gap, target, o = (9, 21), 14, 2
    left, right = win[gap[0] - o: gap[0]], win[gap[1]: gap[1] + o]
    span = 2 * o + gap[1] - gap[0]
    raw = np.zeros(4)
    for seq in strands:
        for t in range(len(seq) - span + 1):
            run = seq[t: t + span]
            if set(run) <= set("ACGT") and run[:o] == left and run[-o:] == right:
                raw["ACGT".index(run[o + target - gap[0]])] += 1
    got = ngram.gapped_letter_probs(counts, [win], np.array([gap]), [target], order=o, alpha=0.5, min_count=1)
    if raw.sum() >= 1:
        np.testing.assert_allclose(got[0], (raw + 0.5) / (raw.sum() + 2.0))
    else:
        pytest.skip("the brute-force context never occurs in this corpus")


@pytest.mark.parametrize("o", [3, 6, 7, 12])
def test_gapped_long_flanks_match_a_brute_force_count(o):
    """Short and long flanks (beyond 11 letters the screen on the left flank is approximate): every window's counts
    equal a brute-force scan of both strands, for contexts that occur (windows cut from the corpus) and that do
    not."""
    rng = np.random.default_rng(o)
    corpus = ["".join(rng.choice(list("ACGT"), 3000)) + "N" + "".join(rng.choice(list("ACGT"), 2000))]
    counts = ngram.KmerCounts(corpus, max_len=1)
    strands = corpus + [ngram_revcomp(s) for s in corpus]
    gap_nt, u = 3, 1
    wins, gaps, targets = [], [], []
    for i in range(12):
        start = int(rng.integers(0, 2900))
        win = corpus[0][start: start + 40] if i % 3 else "".join(rng.choice(list("ACGT"), 40))
        wins.append(win)
        gaps.append((15, 15 + gap_nt))
        targets.append(15 + u)
    got, used = ngram.gapped_letter_probs(counts, wins, np.array(gaps), targets, order=o, alpha=0.5, min_count=1,
                                          return_order=True)
    for w, win in enumerate(wins):
        order = int(used[w])
        left, right = win[15 - order: 15], win[15 + gap_nt: 15 + gap_nt + order]
        span = 2 * order + gap_nt
        raw = np.zeros(4)
        for seq in strands:
            for t in range(len(seq) - span + 1):
                run = seq[t: t + span]
                if run[:order] == left and run[span - order:] == right and set(run) <= set("ACGT"):
                    raw["ACGT".index(run[order + u])] += 1
        assert raw.sum() >= 1 or order == 0
        np.testing.assert_allclose(got[w], (raw + 0.5) / (raw.sum() + 2.0), err_msg=f"window {w}, order {order}")
    assert (used == o).sum() >= 8  # the windows cut from the corpus keep the full order


def test_gapped_memo_gives_the_same_probabilities_and_is_read():
    counts = ngram.KmerCounts(_gap_corpus(2), max_len=1)
    rng = np.random.default_rng(5)
    wins = ["".join(rng.choice(list("ACGT"), 40)) for _ in range(50)]
    gaps = np.tile([15, 19], (50, 1))
    targets = 15 + rng.integers(0, 4, 50)
    memo: dict = {}
    for o in range(0, 7):  # ascending orders, as held_out_gap_order scores them
        plain, used = ngram.gapped_letter_probs(counts, wins, gaps, targets, order=o, return_order=True)
        np.testing.assert_array_equal(ngram.gapped_letter_probs(counts, wins, gaps, targets, order=o, memo=memo), plain)
    assert {key[0] for key in memo} == set(range(0, 7)) and used.min() < 6  # some windows backed off
    for key, (known, raw) in memo.items():  # alter every remembered count: a later call must read them
        memo[key] = (known, raw + 1000)
    altered = ngram.gapped_letter_probs(counts, wins, gaps, targets, order=6, memo=memo)
    assert not np.allclose(altered, plain)


def ngram_revcomp(s):
    return s[::-1].translate(str.maketrans("ACGTN", "TGCAN"))


def test_gapped_backs_off_and_stops_before_n():
    counts = ngram.KmerCounts(["ACGT" * 50], max_len=1)
    # the context "TTT..TTT" never occurs: backs off to order 0 (the letter frequencies, all 1/4 here)
    probs, used = ngram.gapped_letter_probs(counts, ["TTTTTAATTTTT"], np.array([[5, 7]]), [5], order=4, return_order=True)
    assert used.tolist() == [0]
    np.testing.assert_allclose(probs[0], 0.25, atol=0.01)
    # an N three letters left of the gap caps the order at 2 (on a corpus where every 2-letter context occurs)
    rich = ngram.KmerCounts(["".join(np.random.default_rng(0).choice(list("ACGT"), 20000))], max_len=1)
    _, used = ngram.gapped_letter_probs(rich, ["ACGNTACAACGTACG"], np.array([[6, 8]]), [7], order=3, return_order=True)
    assert used.tolist() == [2]


def test_gapped_errors_name_the_problem():
    counts = ngram.KmerCounts(["ACGT" * 20], max_len=1)
    with pytest.raises(ParameterError, match="outside its gap"):
        ngram.gapped_letter_probs(counts, ["ACGTACGTAC"], np.array([[2, 4]]), [4], order=1)
    with pytest.raises(ParameterError, match="one position per window"):
        ngram.gapped_letter_probs(counts, ["ACGTACGTAC"], np.array([[2, 4]]), [2, 3], order=1)


def test_held_out_gap_order_picks_the_lowest_log_loss():
    rng = np.random.default_rng(0)
    # a first-order Markov chain: flanks help, so order >= 1 must win for a 1-nt gap
    seqs = []
    for _ in range(10):
        s = [0]
        for _ in range(3000):
            s.append(s[-1] if rng.random() < 0.7 else int(rng.integers(4)))
        seqs.append("".join("ACGT"[c] for c in s))
    out = ngram.held_out_gap_order(seqs, [1, 8], orders=range(0, 4), window_nt=40, n_windows=300)
    for g, (best, table) in out.items():
        assert best == int(table.order[table.log_loss.idxmin()])
    assert out[1][0] >= 1
    assert out[1][1].set_index("order").log_loss[1] < out[1][1].set_index("order").log_loss[0]


def test_held_out_gap_order_stratifies_the_hidden_offset(monkeypatch):
    """Each gap length scores the hidden letter at the middles of min(g, 4) equal parts of the gap, in equal shares
    (every offset for a short gap), so a long gap costs 4 corpus passes per order, not g."""
    seen = {}
    real = ngram.gapped_letter_probs

    def spy(counts, windows, gaps, targets, **kw):
        gaps = np.asarray(gaps)
        seen[int(gaps[0, 1] - gaps[0, 0])] = np.asarray(targets) - gaps[:, 0]
        return real(counts, windows, gaps, targets, **kw)

    monkeypatch.setattr(ngram, "gapped_letter_probs", spy)
    rng = np.random.default_rng(1)
    seqs = ["".join(rng.choice(list("ACGT"), 2000)) for _ in range(10)]
    ngram.held_out_gap_order(seqs, [3, 8, 13], orders=range(0, 2), window_nt=40, n_windows=200)
    assert sorted(set(seen[3].tolist())) == [0, 1, 2]
    assert sorted(set(seen[8].tolist())) == [1, 3, 5, 7] and np.bincount(seen[8])[[1, 3, 5, 7]].tolist() == [50] * 4
    assert sorted(set(seen[13].tolist())) == [1, 4, 8, 11]
