"""Sequence classes: planted repeats and low-complexity stretches land in their class with the libraries'
coordinates converted correctly, '-' strand windows map to the right genome positions, and the split tables
agree with brute-force counts and means."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pydustmasker
import pytest

from dnalm_utils import data
from dnalm_utils import sequence_classes as SC
from dnalm_utils.errors import ParameterError
from dnalm_utils.genome import Genome, sample_windows

COMPLEMENT = {"A": "T", "C": "G", "G": "C", "T": "A"}


def random_dna(n: int, seed: int, letters: str = "ACGT") -> str:
    rng = np.random.default_rng(seed)
    return "".join(rng.choice(list(letters), n))


# ------------------------------------------------------------------------------------------------
# classify_sequence
# ------------------------------------------------------------------------------------------------
def test_planted_microsatellite_is_exactly_tandem():
    # "G" before and "T" after break the period-2 run, so the maximal repeat is exactly the plant [p, p + 20)
    p = 400
    left, right = random_dna(p - 1, 1) + "G", "T" + random_dna(600, 2)
    seq = left + "CA" * 10 + right
    codes = SC.classify_sequence(seq)
    assert codes.shape == (len(seq),) and codes.dtype == np.uint8
    tandem = np.flatnonzero(codes == SC.TANDEM)
    # pytrf reports 1-based inclusive [401, 420]; converted it must be 0-based [400, 420)
    np.testing.assert_array_equal(tandem, np.arange(p, p + 20))


def test_lowercase_and_n_split():
    seq = random_dna(100, 3) + "G" + "ca" * 10 + "T" + "NNN" + "G" + "CA" * 5 + "T" + random_dna(50, 4)
    codes = SC.classify_sequence(seq)
    n_at = np.flatnonzero(np.array(list(seq)) == "N")
    assert (codes[n_at] == SC.N_CODE).all() and (codes == SC.N_CODE).sum() == 3
    assert (codes[101:121] == SC.TANDEM).all()
    # 5 CA copies after the N are below STRFinder's 7 and must not be joined with the run before the N
    assert not (codes[125:135] == SC.TANDEM).any()


def test_dust_intervals_are_half_open_and_precedence():
    # an A/T-only stretch is low-complexity for DUST; compare with DustMasker's own soft mask (lower case)
    seq = random_dna(300, 5) + random_dna(120, 6, "AT") + random_dna(300, 7)
    codes = SC.classify_sequence(seq)
    masked = np.array([c.islower() for c in pydustmasker.DustMasker(seq).mask()])
    assert masked[300:420].mean() > 0.9
    not_tandem = codes != SC.TANDEM
    np.testing.assert_array_equal((codes == SC.LOW_COMPLEXITY)[not_tandem], masked[not_tandem])
    # poly-A: both a mononucleotide repeat and DUST-masked -> tandem repeat wins
    seq2 = random_dna(200, 8) + "C" + "A" * 40 + "C" + random_dna(200, 9)
    masked2 = np.array([c.islower() for c in pydustmasker.DustMasker(seq2).mask()])
    assert masked2[201:241].all()
    codes2 = SC.classify_sequence(seq2)
    np.testing.assert_array_equal(np.flatnonzero(codes2 == SC.TANDEM), np.arange(201, 241))
    # a higher DUST threshold masks less
    assert (SC.classify_sequence(seq, dust_threshold=60) == SC.LOW_COMPLEXITY).sum() < (codes == SC.LOW_COMPLEXITY).sum()


def test_random_sequence_is_overwhelmingly_other():
    codes = SC.classify_sequence(random_dna(5000, 10))
    assert (codes == SC.OTHER).mean() > 0.99
    assert (codes == SC.TANDEM).sum() == 0


def test_gtr_finds_longer_motifs_and_approximate_adds():
    motif = random_dna(12, 11)
    # flank letters that differ from the motif's last / first letter, so the run is exactly the 4 copies
    before = next(c for c in "ACGT" if c != motif[-1])
    after = next(c for c in "ACGT" if c != motif[0])
    seq = random_dna(199, 12) + before + motif * 4 + after + random_dna(199, 13)
    codes = SC.classify_sequence(seq)
    np.testing.assert_array_equal(np.flatnonzero(codes == SC.TANDEM), np.arange(200, 248))
    assert not (SC.classify_sequence(seq, gtr_motif=(13, 30)) == SC.TANDEM).any()
    # an imperfect (CA)n: exact pieces too short for STRFinder, found by ATRFinder
    imperfect = "CACACACACATCACACACACAGCACACACACA"
    seq2 = random_dna(200, 14) + imperfect + random_dna(200, 15)
    assert (SC.classify_sequence(seq2, approximate=True)[200:232] == SC.TANDEM).mean() > 0.8
    assert (SC.classify_sequence(seq2) == SC.TANDEM).sum() == 0


def test_parameters_checked_and_described():
    with pytest.raises(ParameterError, match="str_min_repeats"):
        SC.classify_sequence("ACGTACGT", str_min_repeats=(12, 7))
    with pytest.raises(ParameterError, match="dust_window"):
        SC.classify_sequence("ACGTACGT", dust_window=2)
    with pytest.raises(ParameterError, match="records"):
        SC.classify_records(["ACGT"])
    text = SC.describe_parameters(dust_threshold=25)
    assert "12/7/5/4/4/4" in text and "threshold 25" in text and "ATRFinder" not in text
    assert "ATRFinder" in SC.describe_parameters(approximate=True)


# ------------------------------------------------------------------------------------------------
# summary and sentence
# ------------------------------------------------------------------------------------------------
def test_class_summary_and_text():
    codes = {"a": np.array([0] * 3 + [1] * 5 + [2] * 12 + [3] * 5, dtype=np.uint8),
             "b": np.array([2] * 20, dtype=np.uint8)}
    s = SC.class_summary(codes)
    assert s["class"].tolist() == list(SC.CODE_NAMES)
    assert s["nucleotides"].tolist() == [3, 5, 32, 5]
    np.testing.assert_allclose(s["share"].iloc[:3], [3 / 40, 5 / 40, 32 / 40])
    assert s["share_of_all"].sum() == pytest.approx(1)
    text = SC.class_of_windows_text(s)
    assert text.startswith("Of the 45 nt held out, 40 are A, C, G or T (the other 5")
    assert "7.5 % lie in tandem repeats, 12.5 % in low-complexity" in text and "(80.0 %)" in text
    with pytest.raises(ParameterError, match="summary"):
        SC.class_of_windows_text(s.drop(columns="nucleotides"))


# ------------------------------------------------------------------------------------------------
# windows and blocks
# ------------------------------------------------------------------------------------------------
def test_minus_strand_windows_map_to_genome_positions():
    seq = random_dna(3000, 20)
    genome = Genome.from_sequences({"r": seq})
    windows = sample_windows(genome, 60, 50, seed=1, reverse_complement="random")
    assert {w.strand for w in windows} == {"+", "-"}
    codes = {"r": np.random.default_rng(2).integers(0, 3, size=len(seq)).astype(np.uint8)}
    rng = np.random.default_rng(3)
    starts = rng.integers(0, 45, size=len(windows))
    blocks = np.column_stack([starts, starts + rng.integers(1, 6, size=len(windows))])
    got = SC.window_block_classes(codes, windows, blocks)
    per_pos = SC.window_position_classes(codes, windows)
    for w, (win, (s, e)) in enumerate(zip(windows, blocks)):
        genome_pos = [win.start + o if win.strand == "+" else win.end - 1 - o for o in range(s, e)]
        # the convention itself: window letter o is the genome letter (complemented on '-')
        for o, g in zip(range(s, e), genome_pos):
            letter = seq[g] if win.strand == "+" else COMPLEMENT[seq[g]]
            assert win.sequence[o] == letter
        assert got[w] == SC.CODE_NAMES[min(codes["r"][g] for g in genome_pos)]
        np.testing.assert_array_equal(
            per_pos[w], [codes["r"][win.start + o if win.strand == "+" else win.end - 1 - o] for o in range(50)])


def test_block_and_window_errors():
    genome = Genome.from_sequences({"r": random_dna(500, 21)})
    windows = sample_windows(genome, 4, 40, seed=0)
    codes = {"r": np.full(500, 2, dtype=np.uint8)}
    with pytest.raises(ParameterError, match="blocks"):
        SC.window_block_classes(codes, windows, np.array([[0, 41]] * 4))
    with pytest.raises(ParameterError, match="blocks"):
        SC.window_block_classes(codes, windows, np.array([[0, 5]] * 3))
    with pytest.raises(ParameterError, match="record"):
        SC.window_block_classes({"x": codes["r"]}, windows, np.array([[0, 5]] * 4))
    with pytest.raises(ParameterError, match="windows"):
        SC.window_position_classes(codes, [w.sequence for w in windows])


def test_evaluation_window_records_match_evaluation_windows():
    records, where = data.evaluation_window_records(30, 64, seed=7)
    seqs, where2 = data.evaluation_windows(30, 64, seed=7)
    assert [w.sequence for w in records] == seqs and where == where2
    heldout = data.load_sequences("heldout")
    for w in records[:5]:
        assert heldout[w.name][w.start:w.end].upper() == w.sequence


# ------------------------------------------------------------------------------------------------
# split tables
# ------------------------------------------------------------------------------------------------
def fake_items(n_windows: int = 80, seed: int = 0) -> tuple[pd.DataFrame, dict]:
    rng = np.random.default_rng(seed)
    parts, classes = [], {}
    for m, h in ((6, 1), (8, 3)):
        for model, p in (("model A", 0.6), ("two-sided n-gram", 0.45), ("corpus base frequencies", 0.25)):
            acc = rng.binomial(h, p, size=n_windows) / h
            parts.append(pd.DataFrame({"model": model, "m": m, "h": h, "window": np.arange(n_windows),
                                       "accuracy": acc, "bits": rng.random(n_windows) + 1}))
        # no "low complexity" blocks for m = 8: that class must appear with count 0
        pool = list(SC.CLASSES) if m == 6 else ["tandem repeat", "other"]
        classes[m] = rng.choice(pool, size=n_windows)
    return pd.concat(parts, ignore_index=True), classes


def test_split_items_by_class_counts_means_and_pairing():
    items, classes = fake_items()
    out = SC.split_items_by_class(items, classes, n_boot=500, seed=1)
    assert len(out) == 2 * 3 * 3
    for (m, model), g in out.groupby(["m", "model"]):
        assert g["windows"].sum() == 80 and g["class"].tolist() == list(SC.CLASSES)
    for row in out.itertuples():
        cls = classes[row.m]
        sub = items[(items.m == row.m) & (items.model == row.model)].set_index("window").accuracy
        ref = items[(items.m == row.m) & (items.model == "two-sided n-gram")].set_index("window").accuracy
        sel = np.flatnonzero(cls == row[out.columns.get_loc("class") + 1])
        assert row.windows == sel.size
        if sel.size == 0:
            assert np.isnan(row.accuracy) and np.isnan(row.difference)
            continue
        assert row.accuracy == pytest.approx(sub[sel].mean())
        assert row.accuracy_low <= row.accuracy <= row.accuracy_high
        if row.model == "two-sided n-gram":
            assert np.isnan(row.difference)
        else:
            assert row.difference == pytest.approx(sub[sel].mean() - ref[sel].mean())
            assert row.difference_low <= row.difference <= row.difference_high
            assert row.pairs == sel.size
    empty = out[(out.m == 8) & (out["class"] == "low complexity")]
    assert (empty.windows == 0).all() and empty.accuracy.isna().all()
    again = SC.split_items_by_class(items, classes, n_boot=500, seed=1)
    pd.testing.assert_frame_equal(out, again)
    other = SC.split_items_by_class(items, classes, n_boot=500, seed=2)
    assert not np.allclose(other.accuracy_low.fillna(0), out.accuracy_low.fillna(0))


def test_split_items_errors():
    items, classes = fake_items(20)
    with pytest.raises(ParameterError, match="block_class"):
        SC.split_items_by_class(items, {6: classes[6], 8: np.where(classes[8] == "other", "repeat", classes[8])})
    with pytest.raises(ParameterError, match="block_class"):
        SC.split_items_by_class(items, {6: classes[6][:10], 8: classes[8]})
    with pytest.raises(ParameterError, match="block_class"):
        SC.split_items_by_class(items, {6: classes[6]})
    with pytest.raises(ParameterError, match="reference"):
        SC.split_items_by_class(items, classes, reference="4-gram")
    with pytest.raises(ParameterError, match="items"):
        SC.split_items_by_class(items.drop(columns="bits"), classes)
    # one array for every m is accepted
    out = SC.split_items_by_class(items, classes[6], n_boot=50)
    assert (out.groupby(["m", "model"]).windows.sum() == 20).all()


def test_split_dependency_by_class():
    rng = np.random.default_rng(4)
    L, n, k = 24, 6, 4
    maps = rng.random((n, L, L))
    maps[:, np.arange(L), np.arange(L)] = np.nan
    maps[0, :2, 0] = np.nan
    names = [rng.choice(["tandem repeat", "other"], size=L) for _ in range(n)]
    out = SC.split_dependency_by_class(maps, names, k=k, n_boot=400, seed=0)
    assert out["class"].tolist() == list(SC.CLASSES)
    # brute force per target
    beyond, near, cls = [], [], []
    for w in range(n):
        for j in range(L):
            d = np.abs(np.arange(L) - j)
            col = maps[w][:, j]
            far_vals = col[(d >= k) & ~np.isnan(col)]
            near_vals = col[(d >= 1) & (d <= k - 1) & ~np.isnan(col)]
            beyond.append(far_vals.mean() if far_vals.size else np.nan)
            near.append(near_vals.mean() if near_vals.size else np.nan)
            cls.append(names[w][j])
    beyond, near, cls = np.array(beyond), np.array(near), np.array(cls)
    for row in out.itertuples():
        sel = (cls == row[1]) & ~np.isnan(beyond)
        assert row.targets == sel.sum()
        if sel.sum() == 0:
            assert np.isnan(row.beyond) and np.isnan(row.copy_band)
            continue
        assert row.beyond == pytest.approx(beyond[sel].mean())
        assert row.copy_band == pytest.approx(np.nanmean(near[cls == row[1]]))
        assert row.beyond_low <= row.beyond <= row.beyond_high
        assert row.copy_band_low <= row.copy_band <= row.copy_band_high
    assert out.targets.sum() == (~np.isnan(beyond)).sum()
    codes = [np.array([SC.CLASSES.index(c) for c in nm], dtype=np.uint8) for nm in names]
    pd.testing.assert_frame_equal(out, SC.split_dependency_by_class(maps, codes, k=k, n_boot=400, seed=0))
    with pytest.raises(ParameterError, match="target_classes"):
        SC.split_dependency_by_class(maps, [nm[:-1] for nm in names], k=k)
    with pytest.raises(ParameterError, match="target_classes"):
        SC.split_dependency_by_class(maps, names[:-1], k=k)
    with pytest.raises(ParameterError, match="target_classes"):
        SC.split_dependency_by_class(maps, [np.full(L, "repeat")] * n, k=k)


# ------------------------------------------------------------------------------------------------
# classify_windows, block_classes, class_split_sentence
# ------------------------------------------------------------------------------------------------
def test_classify_windows_equals_whole_record_classes():
    # a record with planted repeats and low-complexity stretches, windows on both strands
    rng = np.random.default_rng(30)
    parts = []
    for i in range(12):
        parts.append(random_dna(int(rng.integers(200, 400)), 100 + i))
        parts.append(["CA" * 15, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "ACGTTGCA" * 5, "AT" * 4][i % 4])
    seq = "".join(parts)
    genome = Genome.from_sequences({"r": seq, "s": random_dna(900, 40) + "GA" * 20 + random_dna(300, 41)})
    windows = sample_windows(genome, 80, 64, seed=5, reverse_complement="random")
    whole = SC.classify_records({name: genome.fetch(name, 0, genome.lengths[name]) for name in genome.names})
    expected = SC.window_position_classes(whole, windows)
    got = SC.classify_windows(genome, windows)
    assert len(got) == len(windows)
    assert sum((e == SC.TANDEM).sum() for e in expected) > 0  # the plants are inside some windows
    for e, g in zip(expected, got):
        np.testing.assert_array_equal(e, g)
    # a pad of 0 sees only the window: a repeat cut by the window edge can be lost, never invented beyond it
    narrow = SC.classify_windows(genome, windows, pad=0)
    assert any((n != e).any() for n, e in zip(narrow, expected))
    with pytest.raises(ParameterError, match="genome"):
        SC.classify_windows(Genome.from_sequences({"x": seq}), windows)
    with pytest.raises(ParameterError, match="pad"):
        SC.classify_windows(genome, windows, pad=-1)
    with pytest.raises(ParameterError, match="Window"):
        SC.classify_windows(genome, [w.sequence for w in windows])


def test_block_classes_and_position_summary():
    codes = [np.array([2, 2, 1, 0, 2], dtype=np.uint8), np.array([2, 2, 2, 2, 2], dtype=np.uint8)]
    got = SC.block_classes(codes, np.array([[0, 3], [1, 4]]))
    assert got.tolist() == ["low complexity", "other"]
    assert SC.block_classes(codes, np.array([[2, 4], [0, 5]])).tolist() == ["tandem repeat", "other"]
    with pytest.raises(ParameterError, match="outside"):
        SC.block_classes(codes, np.array([[0, 6], [0, 1]]))
    with pytest.raises(ParameterError, match="non-ACGT"):
        SC.block_classes([np.array([2, 3], dtype=np.uint8)], np.array([[0, 2]]))
    summary = SC.position_summary(codes)
    assert dict(zip(summary["class"], summary["nucleotides"])) == {"tandem repeat": 1, "low complexity": 1,
                                                                    "other": 8, "not ACGT": 0}


def test_class_split_sentence_reads_the_table():
    items, classes = fake_items(300, seed=4)
    items.loc[(items.model == "model A") & (items.m == 6), "accuracy"] = 1.0  # far above the n-gram everywhere
    out = SC.split_items_by_class(items, classes, n_boot=200, seed=0)
    text = SC.class_split_sentence(out)
    assert text.startswith("Hidden blocks of 1 nt (m = 6).")
    for c in SC.CLASSES:
        ref = out[(out.h == 1) & (out["class"] == c) & (out.model == "two-sided n-gram")].iloc[0]
        assert f"In {c} sequence ({ref.windows:,} windows)" in text
        assert f"{100 * ref.accuracy:.1f} %" in text
    assert "above it (interval of the paired difference above 0): model A" in text
    assert "below it: no model" in text  # the base-frequency reference is not a model
    assert "corpus base frequencies" in SC.class_split_sentence(out, other_references=())
    text3 = SC.class_split_sentence(out, h=3)
    assert "No hidden block lies in low complexity sequence." in text3
    with pytest.raises(ParameterError, match="h="):
        SC.class_split_sentence(out, h=2)
    with pytest.raises(ParameterError, match="split_items_by_class"):
        SC.class_split_sentence(out.drop(columns="difference"))


def test_stratify_windows_takes_the_windows_richest_in_each_class():
    """Brute force: class by class, the n untaken candidates with the largest share of that class (ties: draw order)."""
    rng = np.random.default_rng(31)
    parts = []
    for i in range(30):
        parts.append(random_dna(int(rng.integers(60, 200)), 200 + i))
        parts.append(["CA" * 30, random_dna(60, 400 + i, "AT"), random_dna(10, 300 + i)][i % 3])
    genome = Genome.from_sequences({"r": "".join(parts)})
    candidates = sample_windows(genome, 120, 32, seed=6, reverse_complement="random")
    picked, table = SC.stratify_windows(genome, candidates, 2)
    codes = SC.classify_windows(genome, candidates)
    expected, taken = [], set()
    for code in range(3):
        shares = [(-float(np.mean(c == code)), j) for j, c in enumerate(codes) if j not in taken and (c == code).any()]
        best = [j for _, j in sorted(shares)[:2]]
        taken.update(best)
        expected += [candidates[j] for j in best]
    assert picked == expected
    assert list(table["class"]) == list(SC.CLASSES) and (table.picked == 2).all()
    assert list(table.candidates) == [sum((c == code).any() for c in codes) for code in range(3)]
    assert (table.share > 0.5).all() and (table.share <= 1).all()
    # a class with no candidate is reported, not invented
    plain = Genome.from_sequences({"r": random_dna(3000, 7)})
    few, t2 = SC.stratify_windows(plain, sample_windows(plain, 20, 32, seed=1), 3, classes=["tandem repeat", "other"])
    assert t2.set_index("class").loc["other", "picked"] == 3 and len(few) == 3 + t2.picked.iloc[0]
    with pytest.raises(ParameterError, match="classes"):
        SC.stratify_windows(plain, [], 1, classes=["satellite"])
    with pytest.raises(ParameterError, match="n_per_class"):
        SC.stratify_windows(plain, [], 0)


def test_stratified_evaluation_windows_draws_then_stratifies_a_users_fasta(tmp_path):
    """The one-call form chapter 7 caches: the same windows as drawing candidates and stratifying them by hand."""
    rng = np.random.default_rng(5)
    body = "".join(["CA" * 40 + "".join(rng.choice(list("ACGT"), 300)) + "A" * 30 for _ in range(8)])
    fasta = tmp_path / "region.fa"
    fasta.write_text(">chrT\n" + "\n".join(body[i:i + 60] for i in range(0, len(body), 60)) + "\n")
    picked, strata, n, where = SC.stratified_evaluation_windows(80, 32, 2, seed=3, fasta=str(fasta))
    candidates, where_by_hand = data.evaluation_window_records(80, 32, seed=3, fasta=str(fasta))
    by_hand, table = SC.stratify_windows(data.evaluation_genome(str(fasta)), candidates, 2)
    assert picked == by_hand and strata.equals(table) and n == len(candidates) == 80 and where == where_by_hand
    assert strata.picked.sum() == len(picked) > 0
