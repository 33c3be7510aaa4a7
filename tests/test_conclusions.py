"""The conclusions read the chapters' CSVs of one run, tolerate missing chapters, and keep every model's row."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest

from dnalm_utils import conclusions as C
from dnalm_utils import plotting


def _write(root, chapter, name, rows):
    path = root / chapter / name
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, index=False)


@pytest.fixture
def runs(tmp_path):
    _write(tmp_path, "03_masked_prediction", "span_sweep.csv",
           [{"model": "o6", "m": m, "accuracy": a} for m, a in ((1, 0.95), (2, 0.9))])
    _write(tmp_path, "03_masked_prediction", "flank_perturbation.csv",
           [{"model": "o6", "m": 1, "follows_flank": 0.97}, {"model": "o6", "m": 3, "follows_flank": 0.9}])
    _write(tmp_path, "03_masked_prediction", "same_nucleotides.csv",
           [{"model": "o6", "scheme": "overlapping", "h": 1, "accuracy": 0.43},
            {"model": "nuc", "scheme": "nucleotide", "h": 1, "accuracy": 0.37},
            {"model": "two-sided n-gram (order 4)", "scheme": "baseline", "h": 1, "accuracy": 0.44},
            {"model": "chance", "scheme": "baseline", "h": 1, "accuracy": 0.25},
            {"model": "o6", "scheme": "overlapping", "h": 2, "accuracy": 0.3}])
    return tmp_path


def test_headline_table_reads_what_is_there(runs):
    tables = C.read_tables(runs)
    assert set(tables) == {"03_masked_prediction"}
    t = C.headline_table(tables).set_index("model")
    assert list(t.index) == ["o6", "nuc"]  # overlapping first
    assert t.loc["o6", "masked accuracy, m = 1"] == 0.95 and np.isnan(t.loc["nuc", "masked accuracy, m = 1"])
    assert t.loc["o6", "copies the altered flank"] == 0.97  # the smallest m
    assert t.loc["nuc", "hidden-nucleotide accuracy"] == 0.37 and (t["n-gram, same nucleotides"] == 0.44).all()
    assert "chance" not in t.index and t.loc["nuc", "scheme"] == "nucleotide"
    assert "token share of last-layer variance" not in t  # chapter 4 was not run


def test_headline_table_adds_chapters_4_to_6(runs):
    _write(runs, "04_embeddings", "embedding_summary.csv", [{"model": "o6", "token share last": 0.9}])
    _write(runs, "04_embeddings", "embedding_summary_vs_step0.csv",
           [{"model": "o6", "quantity": "token share last", "trained": 0.9, "initial": 0.45},
            {"model": "o6", "quantity": "static purity", "trained": 0.7, "initial": 0.75}])
    _write(runs, "05_next_kmer", "summary.csv",
           [{"model": "o6", "init": i, "k": k, "accuracy_mean": a, "scheme": "overlapping"}
            for i, k, a in (("pretrained", 1, 0.3), ("random", 1, 0.22), ("pretrained", 3, 0.02))])
    _write(runs, "05_next_kmer", "baselines.csv",
           [{"model": "n-gram (left context)", "k": 1, "accuracy": 0.41}, {"model": "chance", "k": 1, "accuracy": 0.25},
            {"model": "n-gram (left context)", "k": 3, "accuracy": 0.1}])
    _write(runs, "06_biology_finetuning", "summary.csv",
           [{"task": "tf_peaks", "model": "o6", "init": "pretrained", "mcc_mean": 0.5},
            {"task": "tf_peaks", "model": "o6", "init": "random", "mcc_mean": 0.1}])
    t = C.headline_table(C.read_tables(runs)).set_index("model")
    assert t.loc["o6", "token share of last-layer variance"] == 0.9 and t.loc["o6", "token share at step 0"] == 0.45
    assert t.loc["o6", "next-1-mer accuracy"] == 0.3 and t.loc["o6", "n-gram, next 1-mer"] == 0.41  # pre-trained only
    assert t.loc["o6", "next-3-mer accuracy"] == 0.02 and t.loc["o6", "tf_peaks MCC"] == 0.5
    fig = plotting.plot_conclusions(t.reset_index())
    assert len(fig.axes) == 2 and len(fig.axes[1].patches) == 2 * 3  # two models x three context columns
    # intervals: chapter 5's bootstrap interval as written, pre-trained rows only, the smallest and largest k
    _write(runs, "05_next_kmer", "accuracy_intervals.csv",
           [{"model": "o6", "init": i, "k": k, "accuracy": a, "accuracy_low": a - 0.01, "accuracy_high": a + 0.02}
            for i, k, a in (("pretrained", 1, 0.3), ("baseline", 1, 0.25), ("pretrained", 3, 0.02),
                            ("pretrained", 2, 0.1))])
    ints = C.headline_intervals(C.read_tables(runs)).set_index(["model", "column"])
    assert ints.loc[("o6", "next-1-mer accuracy")].low == pytest.approx(0.29)
    assert ints.loc[("o6", "next-3-mer accuracy")].high == pytest.approx(0.04)
    assert len(ints) == 2  # no k = 2 row (not a headline column); chapter 3's tables here carry no counts
    fig = plotting.plot_conclusions(t.reset_index(), intervals=ints.reset_index())
    from matplotlib.container import ErrorbarContainer

    bars = [c for c in fig.axes[1].containers if isinstance(c, ErrorbarContainer)]
    assert len(bars) == 1 and len(bars[0].lines[2][0].get_segments()) == 2  # o6's two next-k-mer columns only


def test_chapter_3_intervals_are_wilson_over_the_recorded_counts(runs):
    from dnalm_utils.stats import binomial_interval

    _write(runs, "03_masked_prediction", "span_sweep.csv",
           [{"model": "o6", "m": m, "accuracy": a, "tokens": 200} for m, a in ((1, 0.95), (2, 0.9))])
    _write(runs, "03_masked_prediction", "same_nucleotides.csv",
           [{"model": "o6", "h": 1, "accuracy": 0.43, "nucleotides": 1000},
            {"model": "two-sided n-gram (order 4)", "h": 1, "accuracy": 0.44, "nucleotides": 1000}])
    ints = C.headline_intervals(C.read_tables(runs)).set_index(["model", "column"])
    assert tuple(ints.loc[("o6", "masked accuracy, m = 1"), ["low", "high"]]) == pytest.approx(binomial_interval(190, 200))
    assert tuple(ints.loc[("o6", "hidden-nucleotide accuracy"), ["low", "high"]]) == pytest.approx(
        binomial_interval(430, 1000))
    assert ("two-sided n-gram (order 4)", "hidden-nucleotide accuracy") not in ints.index
    assert ("o6", "copies the altered flank") not in ints.index  # the fixture's perturbation table has no counts


def test_empty_runs_dir_gives_an_empty_table(tmp_path):
    assert C.read_tables(tmp_path) == {} and C.headline_table({}).empty
