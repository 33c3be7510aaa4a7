"""Figures draw what they are given: one track / curve per input, saved atomically as real PNGs."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

from dnalm_utils import plotting
from dnalm_utils import tokenization as tk


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    matplotlib.pyplot.close("all")


def test_token_tracks_one_bar_per_token_in_view():
    seq = "ACGTACGTACGTAAC"
    tracks = []
    for tok in (tk.OverlappingKmerTokenizer(4), tk.NonOverlappingKmerTokenizer(4)):
        enc = tok.encode(seq)
        tracks.append((tok.description, tok.scheme, enc.spans, tok.convert_ids_to_tokens(enc.ids)))
    fig = plotting.plot_token_tracks(seq, tracks, max_rows=4)
    axes = fig.axes
    assert len(axes) == 3
    assert len(axes[1].patches) == len(seq) - 3  # every overlapping 4-mer
    assert len(axes[2].patches) == 3 + 3  # three 4-mers and three leftover nucleotides
    assert axes[1].get_ylim() == (4, 0)  # k staggered rows


def test_rank_frequency_reports_unused(tmp_path):
    counts = {"a": ("overlapping", np.array([5, 0, 3, 0])), "b": ("bpe", np.array([1, 2, 3]))}
    fig = plotting.plot_rank_frequency(counts)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["a (2 of 4 unused)", "b (0 of 3 unused)"]
    path = plotting.save_figure(fig, tmp_path / "f.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in tmp_path.iterdir() if p.name != "f.png"]  # no temp file left behind


def test_hidden_nucleotides_plots_the_table():
    table = tk.overlap_table([4, 6])
    table["observed_hidden"] = table.hidden_nt
    fig = plotting.plot_hidden_nucleotides(table)
    line = fig.axes[0].get_lines()[0]
    sub = table[table.k == 4]
    assert list(line.get_ydata()) == list(sub.hidden_nt)


def test_mask_coverage_marks_exactly_the_hidden_nucleotides():
    fig = plotting.plot_mask_coverage(5, [1, 5, 7])
    grid = fig.axes[0].get_images()[0].get_array()
    assert [(row == 2).sum() for row in grid] == [tk.hidden_nucleotides(m, 5) for m in (1, 5, 7)]
    assert [(row >= 1).sum() for row in grid] == [m + 4 for m in (1, 5, 7)]


def test_publish_saves_glues_and_closes(tmp_path, monkeypatch):
    import myst_nb

    glued = {}
    monkeypatch.setattr(myst_nb, "glue", lambda name, obj, display=True: glued.setdefault(name, (obj, display)))
    fig = plotting.plot_mask_coverage(3, [1, 3])
    plotting.publish(fig, "fig_x", tmp_path / "x.png")
    assert (tmp_path / "x.png").exists() and glued["fig_x"] == (fig, False)
    assert not matplotlib.pyplot.fignum_exists(fig.number)


def test_chapter3_figures_draw_their_tables():
    import pandas as pd

    pos = pd.DataFrame([{"model": "overlap4", "m": m, "position": j, "accuracy": 0.1 * j, "leak_bound": tk.overlap_only_position_accuracy(m, 4)[j]}
                        for m in (1, 5) for j in range(m)])
    fig = plotting.plot_position_heatmaps(pos)
    grid = fig.axes[0].get_images()[0].get_array()
    assert grid.shape == (2, 5) and grid[1, 4] == pytest.approx(0.4) and np.ma.is_masked(grid[0, 1])
    assert fig.axes[1].get_images()[0].get_array()[1].tolist() == tk.overlap_only_position_accuracy(5, 4).tolist()

    pert = pd.DataFrame({"model": ["a", "b"], "m": [1, 3], "follows_flank": [0.9, 0.2], "follows_genome": [0.1, 0.5],
                         "neither": [0.0, 0.3]})
    fig = plotting.plot_flank_perturbation(pert)
    heights = [p.get_height() for p in fig.axes[0].patches]
    assert heights == pytest.approx([0.9, 0.2, 0.1, 0.5, 0.0, 0.3])

    lens = pd.DataFrame({"model": ["a"] * 3 + ["b"] * 3, "m": 1, "layer": [0, 1, 2] * 2, "accuracy": [0.1, 0.5, 0.9, 0.2, 0.2, 0.3]})
    fig = plotting.plot_layer_readout(lens)
    assert [list(line.get_ydata()) for line in fig.axes[0].get_lines()] == [[0.1, 0.5, 0.9], [0.2, 0.2, 0.3]]

    att = pd.DataFrame({"model": "a", "layer": [1, 1, 2, 2], "head": [0, 1, 0, 1], "share_overlapping": 0.4,
                        "share_masked": 0.1, "share_distant": 0.4, "share_special": 0.1})
    fig = plotting.plot_attention_shares(att)
    assert len(fig.axes[0].patches) == 4 * 4 and [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["L1H0", "L1H1", "L2H0", "L2H1"]

    same = pd.DataFrame({"model": ["a", "a", "b", "b"], "scheme": ["overlapping"] * 2 + ["nucleotide"] * 2, "h": [1, 2, 1, 2],
                         "accuracy": [0.4, 0.35, 0.3, 0.3], "bits": [1.9, 1.95, 2.0, 2.0]})
    base = pd.DataFrame({"model": ["chance", "chance"], "h": [1, 2], "accuracy": [0.25, 0.25], "bits": [2.0, 2.0]})
    fig = plotting.plot_same_nucleotides(same, base)
    assert [list(line.get_ydata()) for line in fig.axes[0].get_lines()] == [[0.4, 0.35], [0.3, 0.3], [0.25, 0.25]]


def test_chapter4_figures_draw_their_tables():
    import pandas as pd

    from dnalm_utils import embeddings as E

    tokens = ["".join(t) for t in __import__("itertools").product("ACGT", repeat=3)]
    labels = E.token_labels(tokens, np.arange(len(tokens)) + 1)
    coords = np.random.default_rng(0).normal(size=(len(tokens), 2))
    bpe = E.token_labels(["A", "CG", "TTA", "GGGC"], [1, 2, 3, 4])
    fig = plotting.plot_umap_grid({"k3": (coords, labels), "bpe": (coords[:4], bpe)})
    axes = np.array(fig.axes[:12]).reshape(2, 6)  # 3 letter columns + GC, CpG, frequency (then colour bars)
    assert [a.axison for a in axes[1]] == [True, True, False, True, True, True]  # BPE: first and last letter only
    first = axes[0][0].collections[0]
    assert len(first.get_offsets()) == 64 and np.allclose(first.get_offsets(), coords)

    rows = []
    for layer in (-1, 0, 1):
        rows += [("m", layer, "nt_1_purity", 0.5 + 0.1 * layer, 0.25), ("m", layer, "nt_2_purity", 0.7, 0.25),
                 ("m", layer, "gc_knn_r2", 0.3, 0.0), ("m", layer, "self_similarity", 0.9, 0.1),
                 ("m", layer, "variance_explained_by_token", 0.6, 0.05)]
    table = pd.DataFrame(rows, columns=["model", "layer", "metric", "value", "baseline"])
    fig = plotting.plot_embedding_metrics(table)
    line = fig.axes[0].get_lines()[0]
    assert list(line.get_xdata()) == [-1, 0, 1] and np.allclose(line.get_ydata(), [0.55, 0.6, 0.65])  # mean over positions
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["static", "0", "1"]
    fig = plotting.plot_letter_purity(table)
    assert [list(l.get_ydata()) for l in fig.axes[0].get_lines()[:2]] == [[0.4, 0.5, 0.6], [0.7, 0.7, 0.7]]


def test_model_style_comes_from_the_role_not_the_name():
    import pandas as pd

    roles = pd.DataFrame({"model": ["overlap6_dnabert", "x", "y"], "scheme": ["overlapping", "overlapping", "bpe"],
                          "k": [6, 4, None], "origin": "zoo", "embedding_init": ["nucleotide_sum", "random",
                                                                                  "nucleotide_sum"]})
    # the model named like DNABERT's control is not the control here; "x" (random init) is
    assert plotting.model_style("overlap6_dnabert", roles) == (plotting.model_color("overlapping", 6), "-")
    assert plotting.model_style("x", roles) == (plotting.model_color("overlapping", 4), "--")
    assert plotting.model_style("y", roles)[0] == plotting.SCHEME_COLORS["bpe"]
    assert plotting.model_style("unknown", roles, "nucleotide") == (plotting.SCHEME_COLORS["nucleotide"], "-")
    assert plotting.model_color("overlapping", 4) != plotting.model_color("overlapping", 6)


def test_items_by_class_draws_one_point_per_model_with_windows():
    import pandas as pd

    rows = []
    for c, n in (("tandem repeat", 0), ("low complexity", 20), ("other", 200)):
        for model, acc in (("a", 0.5), ("b", 0.6), ("two-sided n-gram", 0.45)):
            rows.append({"m": 6, "h": 1, "model": model, "class": c, "windows": n, "accuracy": acc if n else np.nan,
                         "accuracy_low": acc - 0.05, "accuracy_high": acc + 0.05, "reference": "two-sided n-gram"})
    fig = plotting.plot_items_by_class(pd.DataFrame(rows))
    assert [ax.get_title() for ax in fig.axes] == ["tandem repeat (0 windows)", "low complexity (20 windows)",
                                                   "other (200 windows)"]
    assert [len(ax.containers) for ax in fig.axes] == [0, 2, 2]  # one errorbar per model, none without windows
    assert [len(ax.lines) for ax in fig.axes][1:] == [1 + 2 * 3, 1 + 2 * 3]  # reference line + point and caps


def test_learning_curves_one_line_per_run_and_a_best_dot():
    import pandas as pd

    rows = []
    for model in ("a", "b"):
        for init in ("pretrained", "random"):
            for seed in (0, 1):
                for step, loss in ((20, 1.4), (40, 1.2), (60, 1.3)):
                    rows.append({"model": model, "init": init, "seed": seed, "k": 1, "step": step, "eval_loss": loss})
    fig = plotting.plot_learning_curves(pd.DataFrame(rows), facet="k")
    assert [ax.get_title() for ax in fig.axes] == ["a, k = 1", "b, k = 1"]
    assert all(len(ax.lines) == 4 * 2 for ax in fig.axes)  # 4 runs: a curve and its best-step dot each
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["from pretrained weights", "from random weights"]


def test_task_scores_draw_the_bootstrap_interval_as_error_bar_and_the_baselines_band():
    """With interval columns the bar's error bar spans [low, high] (not the seed sd) and a baseline's interval is a
    shaded band; without them the error bar is one sd."""
    import pandas as pd
    from matplotlib.patches import Polygon, Rectangle

    summary = pd.DataFrame({"task": "T", "model": ["m", "m", "k-mer"], "init": ["pretrained", "random", "baseline"],
                            "mcc_mean": [0.5, 0.3, 0.4], "mcc_std": [0.01, 0.01, np.nan],
                            "mcc_low": [0.42, 0.2, 0.35], "mcc_high": [0.55, 0.38, 0.45]})

    def bars_and_spans(table):
        ax = plotting.plot_task_scores(table, metrics=["mcc"]).axes[0]
        segs = [seg for coll in ax.collections if hasattr(coll, "get_segments") for seg in coll.get_segments()]
        shaded = [p for p in ax.patches if isinstance(p, (Polygon, Rectangle)) and p.get_alpha() == 0.08]
        return sorted((round(s[0][1], 3), round(s[1][1], 3)) for s in segs), shaded

    segs, shaded = bars_and_spans(summary)
    assert segs == [(0.2, 0.38), (0.42, 0.55)] and len(shaded) == 1
    segs, shaded = bars_and_spans(summary.drop(columns=["mcc_low", "mcc_high"]))
    assert segs == [(0.29, 0.31), (0.49, 0.51)] and not shaded


def test_planted_accuracy_shows_references_and_tells_models_apart_at_one_distance():
    """With a single planted distance a reference line has one point: it must still be drawn (a bar marker), and
    two models without roles must differ in colour and marker."""
    import pandas as pd

    rows = [("chance", 0.25), ("n-gram", 0.24), ("nucleotide", 0.85), ("overlap6", 0.69)]
    table = pd.DataFrame([{"model": m, "distance": 8, "accuracy": a, "ci_low": a - 0.02, "ci_high": a + 0.02}
                          for m, a in rows])
    fig = plotting.plot_planted_accuracy(table)
    lines = {line.get_label(): line for line in fig.axes[0].get_lines()}
    assert lines["chance"].get_marker() == "_" and lines["n-gram"].get_marker() == "_"
    series = {c.get_label(): c.lines[0] for c in fig.axes[0].containers}  # errorbar containers: (data line, caps, bars)
    a, b = series["nucleotide"], series["overlap6"]
    assert a.get_color() != b.get_color() and a.get_marker() != b.get_marker()
    matplotlib.pyplot.close(fig)


def test_pretraining_curves_compare_arms_at_equal_nucleotides_seen():
    import pandas as pd

    curves = pd.DataFrame({"model": ["a"] * 3 + ["b"] * 3, "step": [0, 10, 20, 0, 20, 40],
                           "loss": [2.0, 1.5, 1.2, 2.0, 1.6, 1.3]})
    curves["nucleotides_seen"] = curves.step * np.where(curves.model == "a", 64_000, 32_000)
    fig = plotting.plot_loss_curves(curves, {"a": 2.0, "b": 2.0})
    assert fig.axes[0].get_xlabel() == "nucleotides seen (millions)"
    assert [line.get_xdata().tolist() for line in fig.axes[0].lines] == [[0.0, 0.64, 1.28]] * 2  # same data, same x
    scores = pd.DataFrame({"model": ["a", "a"], "step": [0, 20], "nucleotides_seen": [0, 1_280_000],
                           "accuracy": [0.25, 0.4], "bits": [2.0, 1.8], "ngram_accuracy": 0.41, "ngram_bits": 1.8})
    fig = plotting.plot_snapshot_scores(scores)
    assert fig.axes[1].get_xlabel() == "nucleotides seen (millions)" and fig.axes[0].lines[0].get_xdata().tolist() == [0, 1.28]
    fig = plotting.plot_loss_curves(curves.drop(columns="nucleotides_seen"), {"a": 2.0, "b": 2.0})
    assert fig.axes[0].get_xlabel() == "training step"


def test_accuracy_vs_k_marks_the_recipe_control_by_role_and_styles_the_named_baselines():
    import pandas as pd

    from dnalm_utils import nextkmer

    roles = pd.DataFrame({"model": ["overlap6_dnabert", "x"], "scheme": ["overlapping", "overlapping"], "k": [6, 4],
                          "origin": "zoo", "embedding_init": ["nucleotide_sum", "random"]})
    rows = [{"model": m, "init": init, "k": k, "accuracy_mean": 0.3 / k, "accuracy_std": 0.01, "bits_mean": 1.9,
             "bits_std": 0.02} for m, init in (("overlap6_dnabert", "pretrained"), ("x", "pretrained"),
                                               (nextkmer.NGRAM_LEFT, "baseline")) for k in (1, 2, 3)]
    fig = plotting.plot_accuracy_vs_k(pd.DataFrame(rows), roles=roles)
    lines = {c.get_label(): c.lines[0] for c in fig.axes[0].containers}  # one errorbar container per line
    assert lines["x (pretrained)"].get_linestyle() == "-." and lines["x (pretrained)"].get_marker() == "s"  # the control
    assert lines["overlap6_dnabert (pretrained)"].get_linestyle() == "-"  # its name does not make it one
    assert lines[nextkmer.NGRAM_LEFT].get_color() == "black"
    assert {nextkmer.NGRAM_LEFT, nextkmer.WINDOW_NGRAM} <= set(plotting.NEXT_KMER_BASELINE_STYLES)
    assert np.allclose(lines["x (pretrained)"].get_ydata(), [0.3, 0.15, 0.1])
