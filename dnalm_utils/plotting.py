"""Figures shared by the chapters. Each function takes tidy data, returns a matplotlib Figure, draws nothing
it was not given, and leaves saving to :func:`save_figure` (PNG, atomic, 150 dpi)."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np

from .io import atomic_path

#: One colour per tokenization scheme, used in every chapter.
SCHEME_COLORS = {
    "overlapping": "#c0392b",
    "nonoverlapping": "#2471a3",
    "nucleotide": "#7d3c98",
    "bpe": "#229954",
}
NUCLEOTIDE_COLORS = {"A": "#2ca02c", "C": "#1f77b4", "G": "#ff7f0e", "T": "#d62728", "N": "#7f7f7f"}


def save_figure(fig, path: str | Path, *, dpi: int = 150) -> Path:
    """Write ``fig`` as PNG to ``path`` atomically; return the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=path.suffix.lstrip(".") or "png")
    return path


def publish(fig, name: str, path: str | Path) -> None:
    """Save ``fig`` to ``path``, glue it under ``name`` for a ``{glue:figure}`` in the book, and close it
    (so the notebook does not also show it inline). Returns None, so a cell ending with it prints nothing."""
    from myst_nb import glue

    save_figure(fig, path)
    glue(name, fig, display=False)
    plt.close(fig)


def plot_token_tracks(seq: str, tracks: Sequence[tuple[str, str, np.ndarray, Sequence[str]]], *, max_rows: int = 12):
    """Nucleotides of ``seq`` on top, then one track per tokenizer with a bar per token over its span.

    tracks: (label, scheme, spans (n, 2) in nt, token strings). Overlapping tokens are stacked on
    ``max_rows`` staggered rows so each bar is visible.
    """
    n = len(seq)
    heights = [1.0] + [min(max_rows, _rows_needed(spans)) * 0.32 + 0.5 for _, _, spans, _ in tracks]
    fig, axes = plt.subplots(len(tracks) + 1, 1, figsize=(max(8, n * 0.22), sum(heights) * 0.9 + 0.6),
                             gridspec_kw={"height_ratios": heights}, sharex=True)
    top = axes[0]
    for i, c in enumerate(seq):
        top.text(i + 0.5, 0.5, c, ha="center", va="center", family="monospace", fontsize=10,
                 color=NUCLEOTIDE_COLORS.get(c, "black"), fontweight="bold")
    top.set_ylim(0, 1)
    top.set_yticks([])
    top.set_title("sequence (nucleotide positions 0..%d)" % (n - 1), fontsize=10, loc="left")
    for ax, (label, scheme, spans, toks) in zip(axes[1:], tracks):
        rows = min(max_rows, _rows_needed(spans))
        color = SCHEME_COLORS.get(scheme, "#555555")
        for j, ((s, e), tok) in enumerate(zip(spans, toks)):
            if s >= n:
                break
            row = j % rows
            e = min(e, n)
            ax.add_patch(plt.Rectangle((s + 0.05, row + 0.1), e - s - 0.1, 0.8, color=color, alpha=0.35, lw=0))
            if rows == 1 or e - s >= 3:
                ax.text((s + e) / 2, row + 0.5, tok[: e - s], ha="center", va="center", family="monospace", fontsize=7)
        ax.set_ylim(rows, 0)
        ax.set_yticks([])
        ax.set_title(label, fontsize=10, loc="left", color=color)
    axes[-1].set_xlim(0, n)
    axes[-1].set_xlabel("nucleotide position in the window")
    fig.tight_layout()
    return fig


def _rows_needed(spans: np.ndarray) -> int:
    """Rows so that tokens on one row never overlap (1 for tiling tokens, k for overlapping k-mers)."""
    if len(spans) < 2:
        return 1
    return int(max(1, np.max(spans[:, 1] - spans[:, 0]) if (spans[1:, 0] < spans[:-1, 1]).any() else 1))


def plot_rank_frequency(counts: Mapping[str, tuple[str, np.ndarray]]):
    """Token frequency spectrum: for each tokenizer, token counts sorted by rank (log-log).

    counts: label -> (scheme, (n_tokens,) counts of the non-special vocabulary). Unused tokens (count 0)
    are shown as a tick at the bottom of the curve's range with their number in the legend.
    """
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for label, (scheme, c) in counts.items():
        c = np.sort(np.asarray(c))[::-1]
        used = c[c > 0]
        freq = used / c.sum()
        ax.loglog(np.arange(1, used.size + 1), freq, label=f"{label} ({(c == 0).sum()} of {c.size} unused)",
                  color=SCHEME_COLORS.get(scheme), lw=1.6)
    ax.set_xlabel("token rank")
    ax.set_ylabel("share of all tokens")
    ax.legend(fontsize=8, frameon=False)
    ax.set_title("Vocabulary usage on the pre-training corpus", fontsize=11)
    fig.tight_layout()
    return fig


def plot_hidden_nucleotides(table, *, ks: Sequence[int] | None = None):
    """Three panels against m, the number of contiguous masked tokens, one line per k: nucleotides hidden
    from the unmasked neighbours, the hidden share of the masked nucleotides (non-overlapping k-mers: all of
    them, dashed), and the chance of guessing the masked span uniformly.

    ``table`` is :func:`tokenization.overlap_table`, optionally with an ``observed_hidden`` column measured on
    real windows (drawn as open circles).
    """
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    ks = sorted(set(table.k)) if ks is None else ks
    cmap = plt.get_cmap("Reds")
    for i, k in enumerate(ks):
        sub = table[table.k == k]
        color = cmap(0.45 + 0.5 * i / max(1, len(ks) - 1))
        axes[0].plot(sub.m, sub.hidden_nt, "-", color=color, lw=2, label=f"overlapping {k}-mers")
        if "observed_hidden" in sub:
            axes[0].plot(sub.m, sub.observed_hidden, "o", color=color, ms=5, mfc="white")
        axes[1].plot(sub.m, sub.hidden_nt / sub.masked_nt, "-o", color=color, ms=3, label=f"overlapping {k}-mers")
        axes[2].semilogy(sub.m, sub.chance_span, "-o", color=color, ms=3, label=f"overlapping {k}-mers")
    m_all = np.arange(1, table.m.max() + 1)
    axes[1].plot(m_all, np.ones_like(m_all), "--", color=SCHEME_COLORS["nonoverlapping"], label="non-overlapping k-mers")
    axes[0].set_ylabel("nucleotides no unmasked token shows")
    axes[0].set_title("hidden = max(0, m - k + 1)", fontsize=10)
    axes[1].set_ylabel("hidden share of the masked nucleotides")
    axes[1].set_title("how much of the span is really masked", fontsize=10)
    axes[2].set_ylabel("chance of guessing the whole span")
    axes[2].set_title("overlap-only guessing: 1 / 4^hidden", fontsize=10)
    for ax in axes:
        ax.set_xlabel("m, contiguous masked tokens")
        ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return fig


def plot_mask_coverage(k: int, ms: Sequence[int], *, n_tokens: int | None = None):
    """One row per m: which nucleotides are masked-but-revealed (light) or hidden (dark) when m contiguous
    overlapping k-mers are masked in the middle of a sequence."""
    from .tokenization import revealed_nucleotides

    n_tokens = n_tokens or (max(ms) + 2 * k + 2)
    n_nt = n_tokens + k - 1
    grid = np.zeros((len(ms), n_nt))
    for r, m in enumerate(ms):
        a = (n_tokens - m) // 2
        masked = np.zeros(n_tokens, dtype=bool)
        masked[a : a + m] = True
        covered_by_masked = np.zeros(n_nt, dtype=bool)
        covered_by_masked[a : a + m + k - 1] = True
        revealed = revealed_nucleotides(masked, k)
        grid[r] = np.where(covered_by_masked & ~revealed, 2, np.where(covered_by_masked, 1, 0))
    fig, ax = plt.subplots(figsize=(max(6, n_nt * 0.22), 0.35 * len(ms) + 1.2))
    ax.imshow(grid, cmap=matplotlib.colors.ListedColormap(["#f2f2f2", "#f5b7b1", "#922b21"]), aspect="auto",
              vmin=0, vmax=2, interpolation="nearest")
    ax.set_yticks(range(len(ms)), [f"m={m}" for m in ms])
    ax.set_xlabel("nucleotide position")
    ax.set_title(f"overlapping {k}-mers: light = inside a masked token but shown by a neighbour, "
                 "dark = hidden", fontsize=9, loc="left")
    fig.tight_layout()
    return fig


def model_color(scheme: str | None, k=None) -> str:
    """Colour of a tokenization: its scheme's colour; overlapping k-mers darker with larger k."""
    if scheme == "overlapping":
        shades = {3: "#f5b7b1", 4: "#f1948a", 5: "#e74c3c", 6: "#922b21"}
        return shades.get(int(k), SCHEME_COLORS["overlapping"]) if k is not None and k == k else SCHEME_COLORS["overlapping"]
    return SCHEME_COLORS.get(scheme or "", "#555555")


def model_style(name: str, roles=None, scheme: str | None = None) -> tuple[str, str]:
    """(colour, line style) of a model from its role (``roles``: roles.model_roles table): the colour of its
    tokenization (:func:`model_color`), dashed for a recipe control (roles.recipe_controls). Without a roles row,
    the colour of ``scheme`` and a solid line; never read from the name."""
    from .roles import recipe_controls

    row = roles[roles.model == name] if roles is not None and len(roles) else None
    if row is None or not len(row):
        return model_color(scheme), "-"
    dashed = name in recipe_controls(roles)
    return model_color(row.scheme.iloc[0], row.k.iloc[0]), "--" if dashed else "-"


def _training_axis(frame):
    """(x values, axis label) for a pre-training curve: nucleotides seen in millions when the frame has a
    ``nucleotides_seen`` column (arms with different windows per step compare at equal data), else the step."""
    if "nucleotides_seen" in frame:
        return frame.nucleotides_seen / 1e6, "nucleotides seen (millions)"
    return frame.step, "training step"


def plot_loss_curves(curves, uniform: Mapping[str, float], roles=None):
    """Training loss against nucleotides seen (or step) for every model: left in nats, right as a share of the
    uniform-guess loss ``uniform[model]`` (ln of the number of tokens it can predict), so that vocabularies of
    different sizes compare. curves: DataFrame (model, step[, nucleotides_seen], loss)."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    for name, sub in curves.groupby("model", sort=False):
        color, ls = model_style(name, roles)
        x, xlabel = _training_axis(sub)
        axes[0].plot(x, sub.loss, ls, color=color, label=name, lw=1.6)
        axes[1].plot(x, sub.loss / uniform[name], ls, color=color, label=name, lw=1.6)
    axes[0].set_ylabel("masked-token loss (nats)")
    axes[1].set_ylabel("loss / ln(predictable tokens)  (1 = uniform guess)")
    axes[1].axhline(1, color="grey", lw=0.8, ls=":")
    for ax in axes:
        ax.set_xlabel(xlabel)
        ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def plot_snapshot_scores(scores, roles=None):
    """Hidden-nucleotide accuracy (left) and bits (right) against nucleotides seen (or step), one line per model,
    with the two-sided n-gram of each model's held-out reference as a grey dotted line. scores: DataFrame (model,
    step[, nucleotides_seen], accuracy, bits, ngram_accuracy, ngram_bits) from ``convergence.snapshot_scores``."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    xlabel = _training_axis(scores)[1]
    for name, sub in scores.groupby("model", sort=False):
        color, ls = model_style(name, roles)
        x = _training_axis(sub)[0]
        axes[0].plot(x, 100 * sub.accuracy, ls, color=color, label=name, lw=1.6, marker="o", ms=3)
        axes[1].plot(x, sub.bits, ls, color=color, label=name, lw=1.6, marker="o", ms=3)
    for ax, col, scale in ((axes[0], "ngram_accuracy", 100), (axes[1], "ngram_bits", 1)):
        for value in sorted(set(scores[col])):
            ax.axhline(scale * value, color="grey", lw=0.9, ls=":", label="two-sided n-gram")
    axes[0].axhline(25, color="lightgrey", lw=0.8, ls="--", label="chance")
    axes[0].set_ylabel("hidden-nucleotide accuracy (%)")
    axes[1].set_ylabel("bits per hidden nucleotide")
    for ax in axes:
        ax.set_xlabel(xlabel)
        handles, labels = ax.get_legend_handles_labels()
        keep = dict(zip(labels, handles))
        ax.legend(keep.values(), keep.keys(), fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def plot_span_sweep(summary, bound: Mapping[int, Sequence[float]] | None = None):
    """Masked-token accuracy against m (contiguous masked tokens), one panel per model.

    summary: DataFrame (model, k, m, accuracy, top5; optional oracle_accuracy and chance columns, drawn in
    grey); bound: k -> analytic overlap-only accuracy for m = 1.. (drawn dashed; default: the summary's
    leak_bound column if present)."""
    models = list(dict.fromkeys(summary.model))
    fig, axes = plt.subplots(1, len(models), figsize=(3.3 * len(models), 3.4), sharey=True, squeeze=False)
    for ax, name in zip(axes[0], models):
        sub = summary[summary.model == name]
        k = int(sub.k.iloc[0])
        color = model_color("overlapping", k)
        ax.plot(sub.m, sub.accuracy, "-o", color=color, ms=4, label="top-1")
        ax.plot(sub.m, sub.top5, ":s", color=color, ms=3, label="top-5")
        if bound and k in bound:
            ax.plot(sub.m, [bound[k][m - 1] for m in sub.m], "--", color="black", lw=1, label="overlap rule only")
        elif "leak_bound" in sub:
            ax.plot(sub.m, sub.leak_bound, "--", color="black", lw=1, label="leak bound (overlap rule, uniform guess)")
        if "oracle_accuracy" in sub:
            ax.plot(sub.m, sub.oracle_accuracy, "-.", color="grey", lw=1, label="overlap oracle (copy revealed + context-only guess)")
        if "chance" in sub:
            ax.plot(sub.m, sub.chance, ":", color="lightgrey", lw=1, label="chance (uniform token)")
        ax.axvline(k, color="grey", lw=0.8, ls=":")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("m, masked tokens")
    axes[0][0].set_ylabel("masked-token accuracy")
    axes[0][0].set_ylim(-0.02, 1.02)
    axes[0][-1].legend(fontsize=7, frameon=False, bbox_to_anchor=(1.02, 1), loc="upper left")
    fig.tight_layout()
    return fig


def plot_hidden_nucleotide_scores(table, baselines: Mapping[str, tuple[float, float]], roles=None):
    """Accuracy and bits per hidden nucleotide for every model (bars) and baselines (horizontal lines).

    table: DataFrame (model, scheme, accuracy, bits); baselines: label -> (accuracy, bits)."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
    colors = [model_style(m, roles, s)[0] for m, s in zip(table.model, table.scheme)]
    for ax, col, label in ((axes[0], "accuracy", "accuracy on hidden nucleotides"), (axes[1], "bits", "bits per hidden nucleotide")):
        ax.bar(range(len(table)), table[col], color=colors)
        ax.set_xticks(range(len(table)), table.model, rotation=30, ha="right", fontsize=8)
        styles = iter(["--", ":", "-."])
        for name, (acc, bits) in baselines.items():
            ax.axhline(acc if col == "accuracy" else bits, color="black", lw=1, ls=next(styles), label=name)
        ax.set_ylabel(label)
        ax.legend(fontsize=7, frameon=False)
        if col == "bits":  # differences are small next to 2 bits: start the axis near the smallest value
            low = min(table[col].min(), *(b for _, b in baselines.values()))
            ax.set_ylim(0.95 * low, 1.02 * max(table[col].max(), *(b for _, b in baselines.values())))
    fig.tight_layout()
    return fig


def _model_panels(n: int, *, width: float = 3.3, height: float = 3.2, sharey: bool = True, rows: int = 1,
                  constrained: bool = False):
    """(fig, axes) with ``rows`` x ``n`` panels, axes always 2-D."""
    return plt.subplots(rows, n, figsize=(width * n, height * rows), sharey=sharey, squeeze=False,
                        layout="constrained" if constrained else None)


def plot_position_heatmaps(by_position):
    """Accuracy by position inside the masked span (columns) and m (rows), one panel per model; the lower row
    shows the leak bound per position (what the overlap rule alone gives with uniform guesses), so the two
    rows differ exactly where the model knows more (or less) than the overlap.

    by_position: DataFrame (model, m, position, accuracy, leak_bound)."""
    models = list(dict.fromkeys(by_position.model))
    has_bound = by_position.leak_bound.notna().any()
    fig, axes = _model_panels(len(models), width=3.6, height=3.5, sharey=False, rows=2 if has_bound else 1, constrained=True)
    for c, name in enumerate(models):
        sub = by_position[by_position.model == name]
        for r, (col, title) in enumerate((("accuracy", f"{name}: measured"), ("leak_bound", f"{name}: overlap rule only"))):
            if r >= axes.shape[0]:
                break
            grid = sub.pivot(index="m", columns="position", values=col)
            ax = axes[r][c]
            im = ax.imshow(grid.to_numpy(dtype=float), vmin=0, vmax=1, cmap="viridis", aspect="auto", interpolation="nearest")
            ax.set_yticks(range(len(grid.index)), [str(m) for m in grid.index], fontsize=7)
            ax.set_xticks(range(len(grid.columns)), [str(p + 1) for p in grid.columns], fontsize=7)
            ax.set_title(title, fontsize=9)
            ax.set_xlabel("position inside the masked span", fontsize=8)
            if c == 0:
                ax.set_ylabel("m, masked tokens", fontsize=8)
    fig.colorbar(im, ax=axes, shrink=0.8, label="token accuracy")
    return fig


def plot_same_nucleotides(scores, baselines, *, roles=None):
    """Accuracy (left) and bits (right) per hidden nucleotide against the block length h, one line per model,
    baselines in black/grey. scores: DataFrame (model, scheme, h, accuracy, bits); baselines: DataFrame
    (model, h, accuracy, bits) of the reference predictors on the same blocks."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for name, sub in scores.groupby("model", sort=False):
        color, ls = model_style(name, roles, sub.scheme.iloc[0])
        for ax, col in zip(axes, ("accuracy", "bits")):
            ax.plot(sub.h, sub[col], ls, marker="o", ms=4, color=color, label=name)
    styles = iter([("black", "-", 2.0), ("grey", "--", 1.2), ("lightgrey", ":", 1.2), ("black", "-.", 1.0)])
    for name, sub in baselines.groupby("model", sort=False):
        color, ls, lw = next(styles, ("black", ":", 1.0))
        for ax, col in zip(axes, ("accuracy", "bits")):
            ax.plot(sub.h, sub[col], ls, color=color, lw=lw, label=name)
    for ax, label in zip(axes, ("accuracy on hidden nucleotides", "bits per hidden nucleotide")):
        ax.set_xlabel("h, nucleotides hidden from every model")
        ax.set_ylabel(label)
        ax.set_xticks(sorted(scores.h.unique()))
    axes[1].legend(fontsize=7, frameon=False, bbox_to_anchor=(1.02, 1), loc="upper left")
    fig.tight_layout()
    return fig


#: Outcome colours of the flank-perturbation test.
PERTURBATION_COLORS = {"follows_flank": "#c0392b", "follows_genome": "#2471a3", "neither": "#bbbbbb"}


def plot_flank_perturbation(summary):
    """Stacked bars per (model, m): share of predictions that follow the altered flank, the genome, or neither.

    summary: DataFrame (model, m, follows_flank, follows_genome, neither), shares summing to 1 per row."""
    labels = [f"{r.model}\nm={r.m}" for r in summary.itertuples()]
    fig, ax = plt.subplots(figsize=(max(5, 1.1 * len(labels) + 2), 3.8))
    bottom = np.zeros(len(summary))
    names = {"follows_flank": "copies the altered flank", "follows_genome": "keeps the genome's letter", "neither": "neither"}
    for col, color in PERTURBATION_COLORS.items():
        ax.bar(range(len(summary)), summary[col], bottom=bottom, color=color, label=names[col])
        bottom += summary[col].to_numpy()
    ax.set_xticks(range(len(summary)), labels, fontsize=8)
    ax.set_ylabel("share of perturbed windows")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8, frameon=False, bbox_to_anchor=(1.01, 1), loc="upper left")
    fig.tight_layout()
    return fig


def plot_layer_readout(table, *, roles=None):
    """Logit-lens accuracy against layer (0 = embedding output), one panel per m, one line per model.

    table: DataFrame (model, m, layer, accuracy)."""
    ms = sorted(table.m.unique())
    fig, axes = _model_panels(len(ms), width=4.2, height=3.4)
    for ax, m in zip(axes[0], ms):
        for name, sub in table[table.m == m].groupby("model", sort=False):
            color, ls = model_style(name, roles)
            ax.plot(sub.layer, sub.accuracy, ls, marker="o", ms=4, color=color, label=name)
        ax.set_title(f"m = {m} masked token{'s' if m > 1 else ''}", fontsize=10)
        ax.set_xlabel("layer read out (0 = embeddings)")
        ax.set_xticks(sorted(table.layer.unique()))
    axes[0][0].set_ylabel("masked-token accuracy")
    axes[0][0].set_ylim(-0.02, 1.02)
    handles = {}
    for ax in axes[0]:  # a model may be missing from a panel (its windows too short for that m)
        for h, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, h)
    axes[0][-1].legend(handles.values(), handles.keys(), fontsize=7, frameon=False, bbox_to_anchor=(1.02, 1), loc="upper left")
    fig.tight_layout()
    return fig


ATTENTION_COLORS = {"overlapping": "#c0392b", "masked": "#f5b041", "distant": "#2471a3", "special": "#aaaaaa"}


def plot_attention_shares(table):
    """Where masked positions attend: stacked bars per (layer, head), one panel per model.

    table: DataFrame (model, layer, head, share_overlapping, share_masked, share_distant, share_special; with
    uniform_overlapping and uniform_masked a dashed line marks their sum under uniform attention)."""
    models = list(dict.fromkeys(table.model))
    fig, axes = _model_panels(len(models), width=2.6, height=3.4)
    for ax, name in zip(axes[0], models):
        sub = table[table.model == name]
        bottom = np.zeros(len(sub))
        for key, color in ATTENTION_COLORS.items():
            vals = sub[f"share_{key}"].to_numpy()
            ax.bar(range(len(sub)), vals, bottom=bottom, color=color, label=key, width=0.85)
            bottom += vals
        if "uniform_overlapping" in sub:  # where the first two bars would end if attention were uniform
            ax.axhline(float(sub.uniform_overlapping.iloc[0] + sub.uniform_masked.iloc[0]), color="black", lw=0.9,
                       ls="--", label="uniform attention:\noverlapping + masked")
        ax.set_xticks(range(len(sub)), [f"L{l}H{h}" for l, h in zip(sub["layer"], sub["head"])], rotation=90, fontsize=7)
        ax.set_title(name, fontsize=9)
        ax.set_ylim(0, 1)
    axes[0][0].set_ylabel("share of attention from masked tokens")
    axes[0][-1].legend(fontsize=7, frameon=False, bbox_to_anchor=(1.02, 1), loc="upper left")
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------------------
# Chapter 4: embeddings
# ------------------------------------------------------------------------------------------------
def _label_columns(labels) -> list[str]:
    """Colour-by columns of a token_labels table: nt_1 .. nt_K (or nt_1, nt_last for BPE), gc, cpg, frequency."""
    lengths = labels["length"].value_counts()
    main = int(lengths.index[0])
    if lengths.iloc[0] >= 0.9 * len(labels):  # k-mers (non-overlapping: + a few shorter leftovers, drawn grey)
        letters = [f"nt_{i}" for i in range(1, main + 1)]
    else:  # BPE: tokens of many lengths
        letters = ["nt_1", "nt_last"]
    return letters + [c for c in ("gc", "cpg", "frequency") if c in labels]


def plot_umap_grid(panels: Mapping[str, tuple[np.ndarray, object]], *, point_size: float = 2.0):
    """2-D token maps, one row per entry, one column per colouring.

    panels: row title -> (coords (n, 2), token_labels table with n rows). Columns: the letter at each position
    (nt_1 .. nt_k; BPE: first and last letter) in NUCLEOTIDE_COLORS, GC content, CpG count, and log10 corpus
    frequency; empty cells where a row has fewer letter columns."""
    rows = list(panels)
    cols_by_row = {r: _label_columns(panels[r][1]) for r in rows}
    letters = max(sum(c.startswith("nt_") for c in cols) for cols in cols_by_row.values())
    n_cols = letters + 3
    fig, axes = plt.subplots(len(rows), n_cols, figsize=(1.9 * n_cols, 2.0 * len(rows)), squeeze=False)
    for r, title in enumerate(rows):
        coords, labels = panels[title]
        cols = cols_by_row[title]
        nt_cols = [c for c in cols if c.startswith("nt_")]
        slots = {c: i for i, c in enumerate(nt_cols)}
        slots.update({"gc": letters, "cpg": letters + 1, "frequency": letters + 2})
        for ax in axes[r]:
            ax.set_axis_off()
        for col in cols:
            ax = axes[r][slots[col]]
            ax.set_axis_on()
            ax.set_xticks([])
            ax.set_yticks([])
            values = labels[col]
            if col.startswith("nt_"):
                colors = [NUCLEOTIDE_COLORS.get(str(v), "#dddddd") for v in values]
                ax.scatter(coords[:, 0], coords[:, 1], c=colors, s=point_size, linewidths=0, rasterized=True)
            else:
                v = np.log10(values.to_numpy(float) + 1e-7) if col == "frequency" else values.to_numpy(float)
                sc = ax.scatter(coords[:, 0], coords[:, 1], c=v, cmap="viridis", s=point_size, linewidths=0, rasterized=True)
                cb = fig.colorbar(sc, ax=ax, fraction=0.05, pad=0.02)
                cb.ax.tick_params(labelsize=6)
            name = {"gc": "GC content", "cpg": "CpG count", "frequency": "log10 frequency", "nt_last": "last letter"}.get(
                col, f"letter {col[3:]}")
            ax.set_title(name if r == 0 or col == "nt_last" else "", fontsize=8)
        axes[r][0].set_ylabel(title, fontsize=8)
        axes[r][0].set_axis_on()
    handles = [matplotlib.lines.Line2D([], [], marker="o", ls="", color=c, label=l) for l, c in NUCLEOTIDE_COLORS.items() if l != "N"]
    fig.legend(handles=handles, loc="upper right", ncol=4, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    return fig


def _layer_axis(ax, layers: Sequence[int]) -> None:
    ax.set_xticks(sorted(layers), ["static" if l < 0 else str(l) for l in sorted(layers)])
    ax.set_xlabel("layer (static = input table, 0 = embedding output)")


def plot_embedding_metrics(table, *, roles=None):
    """By-layer metrics for all models on one figure: mean letter purity over positions, GC k-NN R^2, same-token
    self-similarity and the variance share of token identity; each with its baseline dashed.

    table: tidy DataFrame (model, layer, metric, value, baseline) from embeddings.layer_metrics (+ static rows)."""
    table = table.copy()
    table["family"] = np.where(table.metric.str.endswith("_purity"), "letter purity", table.metric)
    panels = [("letter purity", "mean k-NN purity of the letter at each position"),
              ("gc_knn_r2", "GC content: k-NN R\u00b2"),
              ("self_similarity", "same-token cosine across windows"),
              ("variance_explained_by_token", "variance share of token identity")]
    fig, axes = plt.subplots(1, 4, figsize=(18, 4))
    for ax, (fam, label) in zip(axes, panels):
        sub = table[table.family == fam].groupby(["model", "layer"], sort=False)[["value", "baseline"]].mean().reset_index()
        for name, g in sub.groupby("model", sort=False):
            color, ls = model_style(name, roles)
            ax.plot(g.layer, g.value, ls, marker="o", ms=4, color=color, label=name)
            ax.plot(g.layer, g.baseline, ":", color=color, lw=1)
        ax.set_title(label, fontsize=10)
        if len(sub):
            _layer_axis(ax, sub.layer.unique())
    axes[0].set_ylabel("value (dotted: baseline)")
    handles = {}
    for ax in axes:
        for h, l in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(l, h)
    axes[-1].legend(handles.values(), handles.keys(), fontsize=7, frameon=False, bbox_to_anchor=(1.02, 1), loc="upper left")
    fig.tight_layout()
    return fig


def plot_letter_purity(table):
    """Letter purity by position (one line per position i) against layer, one panel per model; grey: the
    shuffled-label baseline. table: rows of embeddings.layer_metrics with metric nt_i_purity."""
    sub = table[table.metric.str.match(r"nt_(\d+|last)_purity")]
    models = list(dict.fromkeys(sub.model))
    per_row = min(4, max(1, len(models)))
    n_rows = -(-max(1, len(models)) // per_row)
    fig, axes = plt.subplots(n_rows, per_row, figsize=(4.2 * per_row, 3.4 * n_rows), sharey=True, squeeze=False)
    for ax in axes.flat[len(models):]:
        ax.set_axis_off()
    cmap = plt.get_cmap("viridis")
    for ax, name in zip(axes.flat, models):
        g = sub[sub.model == name]
        metrics = list(dict.fromkeys(g.metric))
        for i, m in enumerate(metrics):
            h = g[g.metric == m]
            ax.plot(h.layer, h.value, "-o", ms=3, color=cmap(i / max(1, len(metrics) - 1)), label=m.replace("_purity", "").replace("nt_", "letter "))
        base = g.groupby("layer").baseline.mean()
        ax.plot(base.index, base.values, ":", color="grey", label="shuffled labels")
        ax.set_title(name, fontsize=9)
        _layer_axis(ax, g.layer.unique())
        ax.xaxis.label.set_fontsize(7)
        ax.legend(fontsize=6, frameon=False, ncol=2)
    for row in axes:
        row[0].set_ylabel("k-NN purity of the letter")
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------------------
# Conclusions
# ------------------------------------------------------------------------------------------------
def plot_conclusions(table, roles=None, intervals=None):
    """Per model, the book's two kinds of evidence side by side. Left: what copying gives (accuracy with one
    masked token, share of perturbed flanks copied; models without overlap have no bars). Right: what needs
    context (accuracy on hidden nucleotides and on the next k-mers), each with its n-gram as a black line.
    table: conclusions.headline_table() (model, optional scheme, metric columns); intervals:
    conclusions.headline_intervals() (model, column, low, high), drawn as error bars where present."""
    left = [c for c in ("masked accuracy, m = 1", "copies the altered flank") if c in table]
    right = [c for c in table.columns if c == "hidden-nucleotide accuracy" or (c.startswith("next-") and c.endswith("accuracy"))]
    schemes = dict(zip(table.model, table["scheme"])) if "scheme" in table else {}
    fig, axes = plt.subplots(1, 2, figsize=(13, 4), gridspec_kw={"width_ratios": [max(1, len(left)), max(1, len(right))]})
    for ax, cols, title in ((axes[0], left, "copying (overlapping k-mers)"), (axes[1], right, "context (nothing to copy)")):
        rows = table[table[cols].notna().any(axis=1)] if cols else table.iloc[:0]
        width = 0.8 / max(1, len(rows))
        for i, (_, row) in enumerate(rows.iterrows()):
            x = np.arange(len(cols)) + (i - (len(rows) - 1) / 2) * width
            color, ls = model_style(row.model, roles, schemes.get(row.model))
            heights = row[cols].to_numpy(float)
            ax.bar(x, heights, width, color=color, label=row.model, hatch="//" if ls == "--" else None,
                   edgecolor="white")
            if intervals is not None and len(intervals):
                mine = intervals[intervals.model == row.model].set_index("column")
                lo = np.array([mine.low.get(c, np.nan) for c in cols], dtype=float)
                hi = np.array([mine.high.get(c, np.nan) for c in cols], dtype=float)
                ok = np.isfinite(lo) & np.isfinite(hi) & np.isfinite(heights)
                if ok.any():
                    ax.errorbar(x[ok], heights[ok], yerr=[heights[ok] - lo[ok], hi[ok] - heights[ok]], fmt="none",
                                ecolor="#333333", elinewidth=0.9, capsize=2)
        for j, c in enumerate(cols):
            ref = ("n-gram, same nucleotides" if c == "hidden-nucleotide accuracy"
                   else f"n-gram, next {c.split('-')[1]}-mer" if c.startswith("next-") else None)
            if ref in table and table[ref].notna().any():
                ax.hlines(float(table[ref].dropna().iloc[0]), j - 0.42, j + 0.42, color="black", lw=2, label="n-gram")
        ax.set_xticks(range(len(cols)), [c.replace(" accuracy", "\naccuracy") for c in cols], fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.set_ylim(0, 1.02)
    axes[0].set_ylabel("share")
    handles = {}
    for ax in axes:
        for h, l in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(l, h)
    axes[1].legend(handles.values(), handles.keys(), fontsize=7, frameon=False, bbox_to_anchor=(1.01, 1), loc="upper left")
    fig.tight_layout()
    return fig


#: Line styles of chapter 5's baselines by name (``nextkmer`` names the n-grams); any other baseline is black.
NEXT_KMER_BASELINE_STYLES = {
    "chance": ("#999999", ":"),
    "majority class": ("#555555", "--"),
    "prior sampling": ("#bbbbbb", "-."),
    "n-gram (left context)": ("black", "-"),
    "n-gram (fine-tuning windows)": ("#444444", (0, (5, 1, 1, 1))),
    "k-mer TF-IDF + logistic regression": ("#8e6c00", "--"),
    "one-hot CNN": ("#d35400", "-."),  # orange: no tokenization's colour (chapter 6 draws it the same)
}


def plot_accuracy_vs_k(summary, *, roles=None):
    """Accuracy (log scale, left) and cross-entropy in bits per predicted nucleotide (right) against k.

    summary: ``nextkmer.summarize`` output (model, init, k, accuracy_mean, accuracy_std, bits_mean, bits_std).
    Fine-tuned pre-trained models: solid lines in their tokenization's colour (a recipe control, per ``roles``,
    dash-dotted with squares); the same models from random initialisation: dotted, same colour; baselines:
    black/grey. Error bars: one standard deviation over seeds.
    """
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.6))
    ks = sorted(summary.k.unique())
    for (name, init), sub in summary.groupby(["model", "init"], sort=False):
        sub = sub.sort_values("k")
        if init == "baseline":
            color, ls = NEXT_KMER_BASELINE_STYLES.get(name, ("black", "-"))
            lw, marker, label = 1.6, None, name
        else:
            color, style = model_style(name, roles)
            control = style == "--"  # a recipe control: same colour as its tokenization, other line and marker
            ls = ("-." if control else "-") if init == "pretrained" else ":"
            marker = ("s" if control else "o") if init == "pretrained" else ("+" if control else "x")
            lw, label = 1.4, f"{name} ({init})"
        for ax, col in zip(axes, ("accuracy", "bits")):
            y = sub[f"{col}_mean"].to_numpy(dtype=float)
            if not np.isfinite(y).any():
                continue
            err = sub[f"{col}_std"].fillna(0).to_numpy(dtype=float) if f"{col}_std" in sub else None
            ax.errorbar(sub.k, y, yerr=err, ls=ls, color=color, lw=lw, marker=marker, ms=4, capsize=2, label=label)
    axes[0].set_yscale("log")
    axes[0].set_ylabel("test accuracy (log scale)")
    axes[1].set_ylabel("cross-entropy, bits per predicted nucleotide")
    axes[1].axhline(2.0, color="#dddddd", lw=0.8)
    for ax in axes:
        ax.set_xlabel("k, predicted nucleotides (4^k classes)")
        ax.set_xticks(ks)
    axes[1].legend(fontsize=7, frameon=False, bbox_to_anchor=(1.02, 1), loc="upper left")
    fig.tight_layout()
    return fig


#: Line styles of chapter 6's baselines by name; any other baseline (the k-mer regression) is black dashed.
BASELINE_STYLES = {"majority class": ("grey", ":"), "one-hot CNN": ("#d35400", "-.")}


def plot_task_scores(summary, *, metrics: Sequence[str] = ("mcc", "auroc"), roles=None):
    """One column per task, one row per metric: the test score of every model, pre-trained (filled bars) next
    to random initialisation (hatched), error bars the ``<metric>_low`` / ``<metric>_high`` interval where the
    summary has one (``biotasks.summarize(..., intervals=...)``), else one standard deviation over seeds; baselines
    as horizontal lines, their interval shaded where the summary has one. summary: finetune_runs.summarize_runs(..., by=["task", "model", "init"]) output."""
    tasks = list(dict.fromkeys(summary.task))
    metrics = list(metrics)
    labels = {"mcc": "test MCC", "auroc": "test AUROC", "accuracy": "test accuracy"}
    fig, axes = plt.subplots(len(metrics), len(tasks), figsize=(6.2 * len(tasks), 3.6 * len(metrics)), squeeze=False,
                             sharey="row")
    for row, metric in enumerate(metrics):
        for ax, task in zip(axes[row], tasks):
            sub = summary[summary.task == task]
            models = [m for m in dict.fromkeys(sub.model) if not (sub[sub.model == m].init == "baseline").all()]
            for i, name in enumerate(models):
                color = model_style(name, roles)[0]
                for j, (init, hatch) in enumerate((("pretrained", None), ("random", "///"))):
                    r = sub[(sub.model == name) & (sub.init == init)]
                    if r.empty:
                        continue
                    mean = float(r[f"{metric}_mean"].iloc[0])
                    lo = float(r[f"{metric}_low"].iloc[0]) if f"{metric}_low" in r else np.nan
                    hi = float(r[f"{metric}_high"].iloc[0]) if f"{metric}_high" in r else np.nan
                    err = ([[max(mean - lo, 0.0)], [max(hi - mean, 0.0)]] if np.isfinite(lo) and np.isfinite(hi)
                           else float(r[f"{metric}_std"].fillna(0).iloc[0]))
                    ax.bar(i + (j - 0.5) * 0.38, mean, width=0.36,
                           yerr=err, color=color if init == "pretrained" else "white",
                           edgecolor=color, hatch=hatch, capsize=2, label=init if i == 0 else None)
            for _, r in sub[sub.init == "baseline"].iterrows():
                color, ls = BASELINE_STYLES.get(r.model, ("black", "--"))
                ax.axhline(r[f"{metric}_mean"], color=color, ls=ls, lw=1.2, label=r.model)
                lo, hi = r.get(f"{metric}_low", np.nan), r.get(f"{metric}_high", np.nan)
                if np.isfinite(lo) and np.isfinite(hi) and hi > lo:  # the baseline's interval, shaded
                    ax.axhspan(lo, hi, color=color, alpha=0.08, lw=0)
            ax.set_xticks(range(len(models)), models if row == len(metrics) - 1 else [], rotation=30, ha="right", fontsize=8)
            if row == 0:
                ax.set_title(task, fontsize=10)
            if metric == "auroc":
                ax.set_ylim(0.4, 1.0)
            if row == 0:
                ax.legend(fontsize=7, frameon=False, loc="upper right")
        axes[row][0].set_ylabel(labels.get(metric, metric))
    fig.tight_layout()
    return fig


def plot_dependency_maps(maps: Mapping[str, np.ndarray], bands: Mapping[str, int], *, vmax: float | None = None,
                         marks: Mapping[str, int] | None = None):
    """One nucleotide dependency map per model (``dependency_maps.dependency_map``: (query i, target j), bits),
    NaN cells (the diagonal, positions the model cannot see) in grey, white dashed lines at |i - j| = k - 1 (the
    edge of the copy band of ``bands[model]`` = k), red dotted lines at |i - j| = ``marks[model]`` (e.g. a planted
    distance). Each panel has its own colour scale (default: its 99th percentile; ``vmax`` fixes one for all),
    since models differ by orders of magnitude in how far their predictions move.

    maps: model -> (L, L) map (one window, or the mean over windows)."""
    names = list(maps)
    fig, axes = _model_panels(len(names), width=3.2, height=3.0, sharey=True, constrained=True)
    cmap = matplotlib.colormaps["viridis"].copy()
    cmap.set_bad("#d0d0d0")
    for ax, name in zip(axes[0], names):
        dep = np.asarray(maps[name], dtype=float)
        finite = dep[np.isfinite(dep)]
        top = float(vmax if vmax is not None else max(np.percentile(finite, 99) if finite.size else 0.0, 1e-9))
        image = ax.imshow(np.ma.masked_invalid(dep), cmap=cmap, vmin=0, vmax=top, origin="upper")
        n, edge = dep.shape[0], int(bands[name]) - 1
        if edge > 0:
            for sign in (1, -1):
                ax.plot(np.arange(n), np.arange(n) + sign * edge, color="white", lw=0.7, ls="--")
        if marks and name in marks:
            for sign in (1, -1):
                ax.plot(np.arange(n), np.arange(n) + sign * int(marks[name]), color="#e74c3c", lw=0.9, ls=":")
        ax.set_xlim(-0.5, n - 0.5)
        ax.set_ylim(n - 0.5, -0.5)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("target nucleotide j")
        fig.colorbar(image, ax=ax, shrink=0.7, label="bits" if ax is axes[0][-1] else None)
    axes[0][0].set_ylabel("substituted nucleotide i")
    return fig


def plot_dependency_by_distance(table, *, roles=None, max_distance: int | None = None):
    """Mean dependency (bits) against distance |i - j| per model, log scale: trained weights solid, the same
    model's step-0 weights (rows with ``weights == "step 0"``) thin and dotted in the same colour; a dot marks
    each curve's last distance inside its copy band (|i - j| <= k - 1).

    table: DataFrame (model, scheme, distance, band, mean[, weights: "trained" | "step 0"])."""
    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    table = table if "weights" in table else table.assign(weights="trained")
    for (name, weights), rows in table.groupby(["model", "weights"], sort=False):
        rows = rows.sort_values("distance")
        if max_distance is not None:
            rows = rows[rows.distance <= max_distance]
        color, ls = model_style(name, roles, rows.scheme.iloc[0] if "scheme" in rows else None)
        initial = weights != "trained"
        ax.plot(rows.distance, rows["mean"], color=color, ls=":" if initial else ls, lw=0.9 if initial else 1.5,
                label=f"{name} ({weights})" if initial else name)
        inside = rows[rows.band == "copy band"]
        if len(inside) and not initial:
            ax.plot(inside.distance.iloc[-1], inside["mean"].iloc[-1], "o", color=color, ms=4)
    ax.set_yscale("log")
    ax.set_xlabel("distance |i - j| (nt)")
    ax.set_ylabel("mean dependency (bits)")
    ax.legend(fontsize=6.5, frameon=False, ncol=2, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    return fig


def plot_planted_accuracy(table, *, roles=None):
    """Accuracy on the determined block against the planted distance D, one series per model with its interval
    (its own marker; the colour of its tokenization where ``roles`` or a ``scheme`` column gives it, else one of a
    qualitative palette in table order), references (rows whose ``model`` is "n-gram" or "chance") in black
    and grey (dashed, dotted), each value also marked with a bar so that a run of one distance shows them.

    table: DataFrame (model, distance, accuracy, ci_low, ci_high[, scheme])."""
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    ref_style = {"n-gram": "--", "chance": ":"}
    ref_color = {"n-gram": "black", "chance": "0.6"}
    markers = "osD^vP*X"
    palette = plt.get_cmap("tab10").colors
    models = [m for m in dict.fromkeys(table.model) if m not in ref_style]
    for name, rows in table.groupby("model", sort=False):
        rows = rows.sort_values("distance")
        if name in ref_style:
            ax.plot(rows.distance, rows.accuracy, color=ref_color[name], lw=1, ls=ref_style[name], marker="_", ms=18,
                    mew=1.5, label=name)
            continue
        i = models.index(name)
        scheme = rows.scheme.iloc[0] if "scheme" in rows else None
        known = scheme is not None or (roles is not None and (roles.model == name).any())
        color, ls = model_style(name, roles, scheme) if known else (palette[i % len(palette)], "-")
        ax.errorbar(rows.distance, rows.accuracy, yerr=[rows.accuracy - rows.ci_low, rows.ci_high - rows.accuracy],
                    color=color, ls=ls, marker=markers[i % len(markers)], ms=6, capsize=3, label=name)
    ax.set_xscale("log", base=2)
    ticks = sorted(set(table.distance))
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("planted distance D (nt)")
    ax.set_ylabel("accuracy on the determined block")
    ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return fig


def plot_items_by_class(by_class, *, h: int | None = None, roles=None):
    """Hidden-nucleotide accuracy by sequence class: one panel per class (tandem repeat, low complexity, other),
    one point per model with its bootstrap interval, the reference (e.g. the two-sided n-gram) as a black line
    with its interval shaded; the number of windows in each panel's title.

    by_class: DataFrame of ``sequence_classes.split_items_by_class`` (m, h, model, class, windows, accuracy,
    accuracy_low, accuracy_high, reference); h: block length shown (default the smallest)."""
    h = sorted(by_class.h.unique())[0] if h is None else h
    part = by_class[by_class.h == h]
    classes = list(dict.fromkeys(part["class"]))
    reference = part.reference.iloc[0]
    models = [m for m in dict.fromkeys(part.model) if m != reference]
    fig, axes = _model_panels(len(classes), width=3.6, height=3.4)
    for ax, c in zip(axes[0], classes):
        sub = part[part["class"] == c].set_index("model")
        ref = sub.loc[reference]
        ax.set_title(f"{c} ({int(ref.windows):,} windows)", fontsize=9)
        if ref.windows:
            ax.axhspan(ref.accuracy_low, ref.accuracy_high, color="0.85", zorder=0)
            ax.axhline(ref.accuracy, color="black", lw=1.2, label=reference)
        for x, name in enumerate(models):
            r = sub.loc[name]
            if not r.windows:
                continue
            color, _ = model_style(name, roles)
            ax.errorbar([x], [r.accuracy], yerr=[[r.accuracy - r.accuracy_low], [r.accuracy_high - r.accuracy]],
                        fmt="o", color=color, capsize=3, ms=5)
        ax.set_xticks(range(len(models)), models, rotation=60, ha="right", fontsize=7)
    axes[0][0].set_ylabel(f"accuracy on hidden nucleotides (h = {h})")
    axes[0][0].set_ylim(0, 1)
    axes[0][-1].legend(fontsize=7, frameon=False, loc="upper right")
    fig.tight_layout()
    return fig


#: Line styles of the state-probe references (``state_probes.FEATURES`` other than the hidden state).
STATE_REFERENCE_STYLES = {"token": ("0.55", "--"), "token + neighbours": ("black", "--"),
                          "window letters": ("black", "-."), "majority": ("0.55", ":")}


def plot_state_probes(table, *, initial=None, side: str = "right", roles=None):
    """Probe accuracy for the letter d nt beyond the token against layer (0 = embedding output): one panel per
    (model, d), rows = models, columns = distances; the hidden state with its interval (solid), its step-0 twin
    (dotted, from ``initial``, the same columns) and the layer-free references as horizontal lines
    (:data:`STATE_REFERENCE_STYLES`).

    table / initial: ``state_probes.probe_states(...).table`` (model, layer, side, d, beyond_k, features,
    accuracy, ci_low, ci_high)."""
    part = table[table.side == side]
    models = list(dict.fromkeys(part.model))
    ds = sorted(int(d) for d in part.d.unique())
    fig, axes = _model_panels(len(ds), rows=max(1, len(models)), width=3.0, height=2.3)
    for r, name in enumerate(models):
        color, _ = model_style(name, roles, part[part.model == name].scheme.iloc[0])
        for c, d in enumerate(ds):
            ax = axes[r][c]
            here = part[(part.model == name) & (part.d == d)]
            hidden = here[here.features == "hidden state"].sort_values("layer")
            ax.fill_between(hidden.layer.astype(int), hidden.ci_low, hidden.ci_high, color=color, alpha=0.2, lw=0)
            ax.plot(hidden.layer.astype(int), hidden.accuracy, "o-", color=color, ms=3, label="hidden state")
            if initial is not None and len(initial):
                init = initial[(initial.model == name) & (initial.side == side) & (initial.d == d)
                               & (initial.features == "hidden state")].sort_values("layer")
                if len(init):
                    ax.plot(init.layer.astype(int), init.accuracy, ":", color=color, lw=1.2, label="step 0")
            for feature, (fc, ls) in STATE_REFERENCE_STYLES.items():
                ref = here[here.features == feature]
                if len(ref):
                    ax.axhline(float(ref.accuracy.iloc[0]), color=fc, ls=ls, lw=1, label=feature)
            beyond = bool(hidden.beyond_k.iloc[0]) if len(hidden) and hidden.beyond_k.notna().all() else None
            ax.set_title(f"{name}, d = {d}" + (" (beyond k)" if beyond else ""), fontsize=8)
            ax.set_xticks(sorted(hidden.layer.astype(int).unique()))
            if c == 0:
                ax.set_ylabel("accuracy")
            if r == len(models) - 1:
                ax.set_xlabel("layer (0 = embeddings)")
    handles, labels = axes[0][-1].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, fontsize=7, frameon=False, loc="upper center", ncol=len(labels),
                   bbox_to_anchor=(0.5, 1.0))
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    return fig


def plot_single_edit(summaries, *, roles=None):
    """Share of windows whose prediction follows the one edited token, per model (panels) and m (x), the left
    neighbour edited (filled) or the right one (open), 95 % intervals; grey: the left-neighbour copier (dashed)
    and the majority copier (dotted) on the same inputs.

    summaries: {model: perturbations.summarize_single_edit(...)}."""
    names = [n for n, s in summaries.items() if s is not None and len(s)]
    fig, axes = _model_panels(max(1, len(names)), width=3.0, height=3.0)
    for ax, name in zip(axes[0], names):
        s = summaries[name]
        color, _ = model_style(name, roles)
        for side, marker, face in (("left", "o", color), ("right", "s", "white")):
            r = s[(s.predictor == "model") & (s.side == side)].sort_values("m")
            ax.errorbar(r.m + (-0.08 if side == "left" else 0.08), r.follows_edit,
                        yerr=[r.follows_edit - r.follows_edit_low, r.follows_edit_high - r.follows_edit],
                        fmt=marker, color=color, mfc=face, capsize=2, label=f"{side} neighbour edited")
            for predictor, ls in (("left-neighbour copier", "--"), ("majority copier", ":")):
                c = s[(s.predictor == predictor) & (s.side == side)].sort_values("m")
                ax.plot(c.m, c.follows_edit, ls, color="grey", lw=1,
                        label=predictor if side == "left" else None)
        ax.set_title(name, fontsize=9)
        ax.set_xticks(sorted(s.m.unique()))
        ax.set_xlabel("m, masked tokens")
        ax.set_ylim(-0.03, 1.03)
    axes[0][0].set_ylabel("share following the edited token")
    axes[0][-1].legend(fontsize=6.5, frameon=False, loc="center right")
    fig.tight_layout()
    return fig


def plot_distal_shifts(table, *, roles=None):
    """Mean shift (bits, largest log-odds change) of a hidden nucleotide's distribution against the distance d
    of one substituted letter, one panel per side, one line per model with its interval; the two-sided n-gram
    in black. table: perturbations.distal_edits(...)[0]."""
    sides = list(dict.fromkeys(table.side))
    fig, axes = _model_panels(len(sides), width=4.2, height=3.4)
    for ax, side in zip(axes[0], sides):
        part = table[table.side == side]
        for name, rows in part.groupby("model", sort=False):
            rows = rows[rows.windows > 0].sort_values("d")
            if name == "two-sided n-gram":
                ax.plot(rows.d, rows.shift_bits, "k-", lw=2, label=name)
                continue
            color, ls = model_style(name, roles)
            ax.errorbar(rows.d, rows.shift_bits, yerr=[rows.shift_bits - rows.shift_low.fillna(rows.shift_bits),
                                                       rows.shift_high.fillna(rows.shift_bits) - rows.shift_bits],
                        color=color, ls=ls, marker="o", ms=3, capsize=2, label=name)
        ax.set_title(f"letter changed on the {side}", fontsize=9)
        ax.set_xlabel("distance d (nt)")
        ax.set_xticks(sorted(part.d.unique()))
    axes[0][0].set_ylabel("shift of the hidden nucleotide (bits)")
    axes[0][-1].legend(fontsize=6.5, frameon=False, bbox_to_anchor=(1.0, 1.0), loc="upper left")
    fig.tight_layout()
    return fig


def plot_learning_curves(curves, *, facet: str | None = None, roles=None):
    """Validation loss (nats) against fine-tuning step, one panel per model (rows: values of ``facet``, e.g. k or
    task), pre-trained runs solid and random-initialised dashed, one line per seed; a dot marks each run's best
    step. curves: ``finetune_runs.learning_curves(runs, by=[facet])``."""
    models = list(dict.fromkeys(curves.model))
    facets = list(dict.fromkeys(curves[facet])) if facet else [None]
    fig, axes = _model_panels(max(1, len(models)), rows=len(facets), width=2.6, height=2.2, sharey=False)
    labelled: set = set()
    for r, value in enumerate(facets):
        part = curves if facet is None else curves[curves[facet] == value]
        for c, name in enumerate(models):
            ax = axes[r][c]
            color, _ = model_style(name, roles)
            for (init, seed), run in part[part.model == name].groupby(["init", "seed"], sort=False):
                run = run.sort_values("step")
                ls = "-" if init == "pretrained" else "--"
                first = (r, c) == (0, 0) and init not in labelled
                ax.plot(run.step, run.eval_loss, ls, color=color, lw=1, label=f"from {init} weights" if first else None)
                if first:
                    labelled.add(init)
                best = run.loc[run.eval_loss.idxmin()]
                ax.plot(best.step, best.eval_loss, "o", color=color, ms=2.5)
            ax.set_title(f"{name}" + (f", {facet} = {value}" if facet else ""), fontsize=7.5)
            ax.ticklabel_format(axis="y", useOffset=False)
            if r == len(facets) - 1:
                ax.set_xlabel("step", fontsize=8)
            if c == 0:
                ax.set_ylabel("validation loss (nats)", fontsize=8)
            ax.tick_params(labelsize=7)
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles[:2], labels[:2], fontsize=7, frameon=False, loc="upper center", ncol=2)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    return fig


#: Line styles of chapter 5's readouts (``nextkmer.READOUTS``).
READOUT_STYLES = {"fine-tuned": ("-", "o"), "frozen probe": ("--", "s"), "zero-shot": (":", "^")}


def plot_readout_comparison(table, *, roles=None):
    """Next-k-mer test accuracy against k read three ways (fine-tuned solid, frozen probe dashed, zero-shot
    dotted), one panel per model, with intervals; the left n-gram (black) and chance (grey) per k; log scale.
    table: ``nextkmer.readout_comparison(...)``."""
    models = list(dict.fromkeys(table.model))
    fig, axes = _model_panels(max(1, len(models)), width=2.7, height=2.8)
    for ax, name in zip(axes[0], models):
        part = table[table.model == name]
        color, _ = model_style(name, roles)
        for readout, (ls, marker) in READOUT_STYLES.items():
            r = part[part.readout == readout].sort_values("k")
            if len(r):
                ax.errorbar(r.k, r.accuracy, yerr=[(r.accuracy - r.low).clip(lower=0), (r.high - r.accuracy).clip(lower=0)],
                            ls=ls, marker=marker, ms=3, color=color, capsize=2, label=readout)
        ref = part.drop_duplicates("k").sort_values("k")
        ax.plot(ref.k, ref.ngram, "k-", lw=1, label="n-gram (left)")
        ax.plot(ref.k, ref.chance, ls=":", color="grey", lw=1, label="chance")
        ax.set_yscale("log")
        ax.set_title(name, fontsize=8)
        ax.set_xticks(sorted(part.k.unique()))
        ax.set_xlabel("k")
    axes[0][0].set_ylabel("test accuracy")
    axes[0][-1].legend(fontsize=6.5, frameon=False, loc="upper right")
    fig.tight_layout()
    return fig
