"""Nucleotide dependency maps: hand-built models with a known dependency give exactly that map; batching,
NaN bookkeeping, summaries and the measure itself checked against independent computations."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from dnalm_utils import dependency_maps as DM
from dnalm_utils import masking as MK
from dnalm_utils import models as M
from dnalm_utils import tokenization as T
from dnalm_utils.adapters import ModuleAdapter, NotApplicable
from dnalm_utils.errors import ParameterError
from tiny_modules import ConstantModel

COMPLEMENT = {"A": "T", "C": "G", "G": "C", "T": "A"}


class DistanceModel(torch.nn.Module):
    """Known dependency: every hidden nucleotide p is predicted (logit 20) as the complement of the letter at
    p - D, read from the unmasked tokens; where that letter is not shown (p - D < 0 or hidden too) it predicts A.
    Revealed letters of a masked token are copied. Tokens of ``width`` nt start every ``stride`` nt (overlapping
    k-mers: stride 1, width k; non-overlapping k-mers: stride = width = k; nucleotides: 1, 1). D = 0 is a model
    that would copy the target's own letter if any unmasked token showed it."""

    def __init__(self, tok, distance: int, *, stride: int, width: int):
        super().__init__()
        self.tok, self.distance, self.stride, self.width = tok, distance, stride, width

    def forward(self, input_ids, attention_mask=None):
        tok, s, w, d = self.tok, self.stride, self.width, self.distance
        logits = torch.zeros(*input_ids.shape, tok.vocab_size)
        for r, row in enumerate(input_ids.tolist()):
            body = row[1 : row.index(tok.sep_id)]
            letters = [None] * ((len(body) - 1) * s + w)
            for t, i in enumerate(body):
                if i != tok.mask_id:
                    letters[t * s : t * s + w] = tok.vocab[i]
            for t, i in enumerate(body):
                if i == tok.mask_id:
                    guess = [letters[p] or (COMPLEMENT[letters[p - d]] if p >= d and letters[p - d] else "A")
                             for p in range(t * s, t * s + w)]
                    logits[r, t + 1, tok.token_to_id["".join(guess)]] = 20.0
        return SimpleNamespace(logits=logits)


def distance_lm(scheme: str, distance: int, k: int = 1):
    if scheme == "nucleotide":
        tok, stride, width = T.NucleotideTokenizer(), 1, 1
    elif scheme == "overlapping":
        tok, stride, width = T.OverlappingKmerTokenizer(k), 1, k
    else:
        tok, stride, width = T.NonOverlappingKmerTokenizer(k), k, k
    return ModuleAdapter(DistanceModel(tok, distance, stride=stride, width=width), tok)


def _windows(n=3, length=24, seed=0):
    rng = np.random.default_rng(seed)
    return ["".join(rng.choice(list("ACGT"), length)) for _ in range(n)]


def _expected_support(length: int, distance: int) -> np.ndarray:
    """(L, L) bool: True exactly on j = i + distance."""
    i, j = np.indices((length, length))
    return j == i + distance


# ------------------------------------------------------------------------------------------------
# Known dependency -> exactly that map
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("scheme,k,distance", [("nucleotide", 1, 1), ("nucleotide", 1, 5),
                                               ("overlapping", 4, 1), ("overlapping", 4, 3), ("overlapping", 4, 6)])
def test_a_model_reading_d_nucleotides_back_gives_exactly_that_off_diagonal(scheme, k, distance):
    lm = distance_lm(scheme, distance, k)
    window = _windows(1, 20, seed=distance)[0]
    dep = DM.dependency_map(lm, window, batch_size=64, amp=False)
    length = len(window)
    assert dep.shape == (length, length)
    i, j = np.indices(dep.shape)
    # NaN: the diagonal, and for overlapping k-mers the window's ends, where the only tokens covering i are
    # among the k masked ones (i < j <= k - 1, or L - k <= j < i).
    edge = ((i < j) & (j <= k - 1)) | ((j < i) & (j >= length - k))
    if scheme != "overlapping":
        edge = np.zeros_like(edge)
    assert np.array_equal(np.isnan(dep), (i == j) | edge)
    on = _expected_support(length, distance) & ~edge
    assert (dep[on] > 40).all()  # the complement flips: ~ +-28 bits of log-odds on each side
    assert np.nanmax(np.abs(dep[~on])) < 1e-6  # nothing else moves


@pytest.mark.parametrize("scheme,k", [("nucleotide", 1), ("overlapping", 3), ("overlapping", 5)])
def test_the_target_is_hidden_so_a_self_copying_model_depends_on_nothing(scheme, k):
    """D = 0: a model that predicts j from j's own letter wherever an unmasked token shows it. With j hidden no
    token shows it (the adaptation for overlapping k-mers), so the whole map is zero."""
    dep = DM.dependency_map(distance_lm(scheme, 0, k), _windows(1, 16, seed=k)[0], batch_size=50, amp=False)
    assert np.nanmax(np.abs(dep)) < 1e-6  # zero up to float noise (a real dependency is ~56 bits here)


@pytest.mark.parametrize("distance,inside", [(1, 1.0), (3, 1.0), (4, 0.0), (7, 0.0)])
def test_overlapping_copy_band_mass_is_all_inside_only_for_flank_copying(distance, inside):
    """Overlapping 4-mers: a model that reads the letter D back from the flank tokens (D <= k - 1: the copy
    band) has all its dependency inside the band; one that reads D >= k nucleotides back has none there."""
    k = 4
    lm = distance_lm("overlapping", distance, k)
    maps = DM.dependency_maps(lm, _windows(3, 18, seed=distance), batch_size=128, amp=False)
    mass = DM.dependency_mass(maps, k=k, n_boot=200)
    assert np.allclose(mass.per_window.share_inside, inside, atol=1e-9)
    summary = mass.summary.set_index("band")
    assert summary.loc[DM.COPY_BAND, "share"] == pytest.approx(inside, abs=1e-9)
    assert summary.loc[DM.BEYOND, "share"] == pytest.approx(1 - inside, abs=1e-9)
    by_d = DM.dependency_by_distance(maps, k=k).set_index("distance")
    assert (by_d.loc[distance, "total"] > 40) and by_d.drop(index=distance)["total"].abs().max() < 1e-5
    assert by_d.loc[distance, "band"] == (DM.COPY_BAND if distance <= k - 1 else DM.BEYOND)


def test_non_overlapping_tokens_give_nan_where_the_query_is_hidden_with_the_target():
    k, distance, length = 3, 4, 18
    dep = DM.dependency_map(distance_lm("nonoverlapping", distance, k), _windows(1, length, seed=1)[0],
                            batch_size=40, amp=False)
    i, j = np.indices((length, length))
    same_token = i // k == j // k
    assert np.array_equal(np.isnan(dep), same_token)  # diagonal and the rest of j's token
    on = _expected_support(length, distance)
    assert (dep[on] > 40).all() and np.nanmax(np.abs(dep[~on])) < 1e-6


def test_bpe_nan_where_every_substitution_hides_the_query_in_the_targets_token():
    corpus = _windows(40, 200, seed=3)
    tok = T.BPETokenizer.train(corpus, vocab_size=40)
    lm = ModuleAdapter(ConstantModel(tok.vocab_size, tok.token_to_id["A"]), tok)
    window = _windows(1, 24, seed=4)[0]
    dep = DM.dependency_map(lm, window, batch_size=200, amp=False)
    seqs, query, _ = DM.variant_sequences(window)
    hidden = np.ones((len(window), len(window)), dtype=bool)  # [i, j]: i hidden with j for every substitution
    for seq, i in zip(seqs[1:], query[1:]):
        spans = tok.encode(seq).spans
        for j in range(len(window)):
            token_of_j = spans[(spans[:, 0] <= j) & (j < spans[:, 1])][0]
            hidden[i, j] &= token_of_j[0] <= i < token_of_j[1]
    assert np.array_equal(np.isnan(dep), hidden)
    assert (~hidden).sum() > 0 and hidden.sum() > len(window)  # some pairs of each kind
    assert np.isfinite(dep[~hidden]).all()


def test_visible_when_hidden_on_hand_spans():
    spans = np.array([[0, 3], [3, 5], [5, 6]])
    assert DM.visible_when_hidden(spans, 6, 1).tolist() == [False, False, False, True, True, True]
    overlapping = np.array([[s, s + 3] for s in range(4)])  # 3-mers of 6 nt
    assert DM.visible_when_hidden(overlapping, 6, 0).tolist() == [False, False, False, True, True, True]  # an end
    assert DM.visible_when_hidden(overlapping, 6, 3).tolist() == [True, True, True, False, True, True]


# ------------------------------------------------------------------------------------------------
# A real (tiny, random) BERT: batching, orientation, determinism
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return M.load_model(M.make_tiny_dnabert(tmp_path_factory.mktemp("m") / "tiny4", k=4, max_positions=64))


def test_batched_equals_unbatched_and_windows_pool_like_one_at_a_time(tiny):
    windows = _windows(2, 12, seed=7)
    one = DM.dependency_map(tiny, windows[0], batch_size=1, amp=False)
    pooled = DM.dependency_maps(tiny, windows, batch_size=500, amp=False)
    assert pooled.shape == (2, 12, 12)
    assert np.allclose(one, pooled[0], rtol=1e-4, atol=1e-4, equal_nan=True)
    assert np.allclose(DM.dependency_map(tiny, windows[1], batch_size=7, amp=False), pooled[1], rtol=1e-4,
                       atol=1e-4, equal_nan=True)
    assert np.nanmin(pooled) > 0  # a random BERT reads every visible nucleotide a little
    again = DM.dependency_maps(tiny, windows, batch_size=500, amp=False)
    assert np.array_equal(again, pooled, equal_nan=True)  # same inputs, same numbers


def test_an_entry_equals_the_authors_formula_on_the_explicit_variant(tiny):
    """e[i, j] recomputed from nucleotide_block_eval on the reference and the three substituted windows, with
    the authors' clipping (p + eps, renormalised) and log2 odds written out: checks orientation [query, target]."""
    window = _windows(1, 12, seed=11)[0]
    dep = DM.dependency_map(tiny, window, batch_size=64, amp=False)
    eps = DM.EPSILON

    def logit2(p):
        q = (p + eps) / (p + eps).sum()
        return np.log2(q) - np.log2(1 - q)

    for i, j in [(2, 7), (7, 2), (5, 6), (0, 11)]:
        ref = MK.nucleotide_block_eval(tiny, [window], np.array([[j, j + 1]]), amp=False).probs[0]
        best = 0.0
        for b in "ACGT".replace(window[i], ""):
            alt = window[:i] + b + window[i + 1 :]
            p = MK.nucleotide_block_eval(tiny, [alt], np.array([[j, j + 1]]), amp=False).probs[0]
            best = max(best, np.abs(logit2(p) - logit2(ref)).max())
        assert dep[i, j] == pytest.approx(best, rel=1e-4, abs=1e-5)


def test_log_odds_is_the_authors_clipped_measure():
    p = np.array([[1.0, 0.0, 0.0, 0.0], [0.1, 0.2, 0.3, 0.4]])
    q = (p + 1e-10) / (1 + 4e-10)
    assert np.allclose(DM.log_odds(p), np.log2(q / (1 - q)), rtol=1e-6)
    assert np.isfinite(DM.log_odds(p)).all()  # a certain prediction stays finite (about +-33 bits)


# ------------------------------------------------------------------------------------------------
# Summaries
# ------------------------------------------------------------------------------------------------
def _toy_maps():
    rng = np.random.default_rng(5)
    maps = rng.random((4, 10, 10))
    maps[:, np.arange(10), np.arange(10)] = np.nan
    maps[1, 2, 5] = np.nan
    return maps


def test_by_distance_and_table_sums_agree_with_the_maps():
    maps = _toy_maps()
    by_d = DM.dependency_by_distance(maps, k=3)
    assert by_d.total.sum() == pytest.approx(np.nansum(maps))
    assert by_d["count"].sum() == (~np.isnan(maps)).sum()
    assert by_d.distance.tolist() == list(range(1, 10))
    assert (by_d.band == np.where(by_d.distance <= 2, DM.COPY_BAND, DM.BEYOND)).all()
    i, j = np.indices((10, 10))
    at4 = maps[:, np.abs(i - j) == 4]
    row = by_d.set_index("distance").loc[4]
    assert row["mean"] == pytest.approx(np.nanmean(at4)) and row["median"] == pytest.approx(np.nanmedian(at4))
    table = DM.dependency_table(maps, ["w0", "w1", "w2", "w3"])
    assert len(table) == (~np.isnan(maps)).sum()
    assert np.allclose(table.groupby("distance").dependency.sum().to_numpy(), by_d.total.to_numpy())
    r = table[(table.window == "w3") & (table.i == 1) & (table.j == 8)].iloc[0]
    assert r.dependency == maps[3, 1, 8] and r.distance == 7


def test_dependency_mass_shares_and_seeded_interval():
    maps = _toy_maps()
    mass = DM.dependency_mass(maps, k=2, n_boot=500, seed=1)
    i, j = np.indices((10, 10))
    inside = np.abs(i - j) <= 1
    expected = [np.nansum(m[inside]) / np.nansum(m) for m in maps]
    assert np.allclose(mass.per_window.share_inside, expected)
    assert np.allclose(mass.per_window.share_inside + mass.per_window.share_beyond, 1)
    s = mass.summary.set_index("band")
    assert s.loc[DM.COPY_BAND, "share"] == pytest.approx(np.mean(expected))
    assert s.loc[DM.COPY_BAND, "low"] <= np.mean(expected) <= s.loc[DM.COPY_BAND, "high"]
    assert s.loc[DM.COPY_BAND, "low"] < s.loc[DM.COPY_BAND, "high"]
    again = DM.dependency_mass(maps, k=2, n_boot=500, seed=1)
    assert again.summary.equals(mass.summary)  # same seed, same interval
    same = DM.dependency_mass(np.stack([maps[0]] * 3), k=2, n_boot=100)
    row = same.summary.set_index("band").loc[DM.COPY_BAND]
    assert row["low"] == pytest.approx(expected[0]) and row["high"] == pytest.approx(expected[0])


def test_copy_band_k_per_scheme():
    assert DM.copy_band_k(T.OverlappingKmerTokenizer(6)) == 6
    assert DM.copy_band_k(T.NonOverlappingKmerTokenizer(3)) == 3
    assert DM.copy_band_k(T.NucleotideTokenizer()) == 1
    bpe = T.BPETokenizer.train(_windows(20, 100, seed=2), vocab_size=40)
    with pytest.raises(ParameterError, match="windows="):
        DM.copy_band_k(bpe)
    windows = _windows(3, 60, seed=9)
    per_token = sum(len(w) for w in windows) / sum(len(bpe.encode(w)) for w in windows)
    assert DM.copy_band_k(bpe, windows) == round(per_token)


# ------------------------------------------------------------------------------------------------
# Refusals
# ------------------------------------------------------------------------------------------------
def test_causal_model_is_not_applicable_and_bad_input_is_named():
    tok = T.NucleotideTokenizer()
    causal = ModuleAdapter(ConstantModel(tok.vocab_size, tok.token_to_id["A"]), tok, objective="causal")
    with pytest.raises(NotApplicable, match="dependency maps"):
        DM.dependency_map(causal, "ACGTACGT")
    lm = distance_lm("nucleotide", 1)
    with pytest.raises(ParameterError, match="not A/C/G/T"):
        DM.dependency_map(lm, "ACGNACGT")
    with pytest.raises(ParameterError, match="batch_size"):
        DM.dependency_map(lm, "ACGTACGT", batch_size=0)
    with pytest.raises(ParameterError, match="list of DNA strings"):
        DM.dependency_maps(lm, "ACGTACGT")
    with pytest.raises(ParameterError, match="k"):
        DM.dependency_by_distance(_toy_maps(), k=0)
    with pytest.raises(ParameterError, match="square"):
        DM.dependency_mass([np.zeros((3, 4))], k=1)
    with pytest.raises(ParameterError, match="one per map"):
        DM.dependency_table(_toy_maps(), ["only one"])


def test_target_band_means_average_each_band_by_brute_force():
    rng = np.random.default_rng(3)
    maps = rng.random((2, 9, 9))
    maps[:, np.arange(9), np.arange(9)] = np.nan
    maps[1, 0, 5] = np.nan  # an unmeasured pair drops out of its band's mean
    table = DM.target_band_means(maps, k=3)
    assert len(table) == 18 and table.item.is_unique
    for row in table.itertuples():
        m = maps[row.window]
        col = m[:, row.target]
        d = np.abs(np.arange(9) - row.target)
        inside = col[(d >= 1) & (d <= 2)]
        beyond = col[d >= 3]
        assert row.copy_band == pytest.approx(np.nanmean(inside))
        assert row.beyond == pytest.approx(np.nanmean(beyond))
    far = DM.target_band_means(maps, k=3, min_distance=6)
    assert far.beyond.iloc[0] == pytest.approx(np.nanmean(maps[0][6:, 0]))


def test_mean_map_is_nan_only_where_every_window_is_nan():
    import warnings

    a = np.array([[np.nan, 1.0], [2.0, np.nan]])
    b = np.array([[np.nan, 3.0], [np.nan, np.nan]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "Mean of empty slice" warning
        mean = DM.mean_map([a, b])
    assert np.isnan(mean[0, 0]) and np.isnan(mean[1, 1]) and mean[0, 1] == 2.0 and mean[1, 0] == 2.0
