"""The book's conclusions: one table of per-model headline numbers read from the chapters' CSV outputs.

Each chapter writes tidy CSVs to its ``output_dir`` (``runs/<profile>/<chapter>/``). :func:`read_tables` loads
those of one run, tolerating chapters that were not run; :func:`headline_table` reduces them to one row per
model with the number each chapter contributes to the book's question, beside its reference, and
:func:`headline_intervals` gives the 95 % interval of each of those accuracies where its chapter recorded what
it needs.
"""

from __future__ import annotations

import os
from pathlib import Path

from .nextkmer import NGRAM_LEFT


#: chapter folder -> the CSV files the conclusions read from it.
CHAPTER_TABLES = {
    "03_masked_prediction": ("span_sweep.csv", "same_nucleotides.csv", "flank_perturbation.csv", "layer_readout.csv",
                             "hidden_nucleotides_by_class.csv"),
    "04_embeddings": ("embedding_summary.csv", "embedding_summary_vs_step0.csv", "state_probes_paired.csv"),
    "05_next_kmer": ("summary.csv", "baselines.csv", "readouts.csv", "accuracy_intervals.csv"),
    "06_biology_finetuning": ("summary.csv",),
    "07_copying_or_context": ("planted_accuracy.csv", "dependency_mass.csv"),
}


def read_tables(runs_dir: str | os.PathLike) -> dict[str, dict]:
    """chapter -> {file stem -> DataFrame} for every CSV of :data:`CHAPTER_TABLES` present under ``runs_dir``."""
    import pandas as pd

    out: dict[str, dict] = {}
    for chapter, files in CHAPTER_TABLES.items():
        for name in files:
            path = Path(runs_dir) / chapter / name
            if path.is_file():
                out.setdefault(chapter, {})[Path(name).stem] = pd.read_csv(path)
    return out


def _by_model(df, value, **where):
    sub = df
    for col, val in where.items():
        sub = sub[sub[col] == val]
    return sub.set_index("model")[value]


def headline_table(tables: dict) -> "pandas.DataFrame":
    """One row per model: what each chapter measured (NaN where a chapter or model was not run).

    Columns: accuracy at m = 1 (overlapping k-mers only), share of perturbed flanks copied (m = 1 or the
    smallest m run), accuracy on one nucleotide hidden from every model and the n-gram's on the same
    nucleotides, token-identity share of the last layer's variance (and at step 0, the same architecture and seed
    at initialisation, where chapter 4 had step-0 weights); from chapters 5 and 6 (when run) the
    next-k-mer accuracy at the smallest and largest k with the n-gram's, and the biology tasks' MCC.
    """
    import pandas as pd

    cols: dict[str, pd.Series] = {}
    ch3 = tables.get("03_masked_prediction", {})
    if "span_sweep" in ch3:
        cols["masked accuracy, m = 1"] = _by_model(ch3["span_sweep"], "accuracy", m=1)
    if "flank_perturbation" in ch3:
        fp = ch3["flank_perturbation"]
        cols["copies the altered flank"] = _by_model(fp, "follows_flank", m=int(fp.m.min()))
    if "same_nucleotides" in ch3:
        same = ch3["same_nucleotides"]
        h1 = same[same.h == same.h.min()]
        models = h1[~h1.model.str.startswith(("two-sided", "corpus", "chance"))]
        cols["hidden-nucleotide accuracy"] = models.set_index("model").accuracy
        ngram = h1[h1.model.str.startswith("two-sided")]
        if len(ngram):
            cols["n-gram, same nucleotides"] = pd.Series(float(ngram.accuracy.iloc[0]), index=models.model)
    ch4 = tables.get("04_embeddings", {})
    if "embedding_summary" in ch4:
        cols["token share of last-layer variance"] = ch4["embedding_summary"].set_index("model")["token share last"]
    if "embedding_summary_vs_step0" in ch4:
        cols["token share at step 0"] = _by_model(ch4["embedding_summary_vs_step0"], "initial", quantity="token share last")
    ch5 = tables.get("05_next_kmer", {})
    if "summary" in ch5 and len(ch5["summary"]):
        summ = ch5["summary"]
        for k in sorted({int(summ.k.min()), int(summ.k.max())}):
            part = summ[(summ.k == k) & (summ.init == "pretrained")]
            cols[f"next-{k}-mer accuracy"] = part.set_index("model").accuracy_mean
            base = ch5.get("baselines")
            if base is not None:
                ng = base[(base.k == k) & (base.model == NGRAM_LEFT)]
                if len(ng):
                    cols[f"n-gram, next {k}-mer"] = pd.Series(float(ng.accuracy.mean()), index=part.model)
    ch6 = tables.get("06_biology_finetuning", {}).get("summary")
    if ch6 is not None and len(ch6) and {"task", "init", "mcc_mean"} <= set(ch6.columns):
        pre = ch6[ch6.init == "pretrained"]
        for task, part in pre.groupby("task", sort=False):
            cols[f"{task} MCC"] = part.set_index("model").mcc_mean
    if not cols:
        return pd.DataFrame()
    table = pd.DataFrame(cols)
    table.index.name = "model"
    table = table.reset_index()
    schemes = {}
    for chapter, name in (("03_masked_prediction", "same_nucleotides"), ("05_next_kmer", "summary")):
        df = tables.get(chapter, {}).get(name)
        if df is not None and "scheme" in df:
            schemes.update({m: s for m, s in zip(df.model, df.scheme) if s != "baseline"})
    table.insert(1, "scheme", table.model.map(schemes))
    order = {"overlapping": 0, "nonoverlapping": 1, "nucleotide": 2, "bpe": 3}
    return table.sort_values(["scheme", "model"], key=lambda c: c.map(order).fillna(9) if c.name == "scheme" else c,
                             kind="stable").reset_index(drop=True)



def headline_intervals(tables: dict) -> "pandas.DataFrame":
    """95 % intervals of :func:`headline_table`'s accuracy columns: one row per (model, column) with low, high and
    how the interval was made (``method``). Chapter 3's shares (masked accuracy at m = 1, flank copied, hidden-
    nucleotide accuracy) get a Wilson interval (``stats.binomial_interval``) over their ``tokens``, ``windows``
    or ``nucleotides`` (one per window at m = 1, at the smallest m and at the smallest h); chapter 5's next-k-mer
    accuracies the bootstrap interval over test windows it wrote (``accuracy_intervals.csv``). Columns whose
    count is missing get no row."""
    import pandas as pd

    from .stats import binomial_interval

    rows = []

    def wilson(df, column, value, count):
        if count not in df:
            return
        for r in df.itertuples():
            n = getattr(r, count)
            if pd.notna(n) and int(n) > 0 and pd.notna(getattr(r, value)):
                lo, hi = binomial_interval(int(round(getattr(r, value) * int(n))), int(n))
                rows.append({"model": r.model, "column": column, "low": lo, "high": hi,
                             "method": f"Wilson over {int(n):,} {count}"})

    ch3 = tables.get("03_masked_prediction", {})
    if "span_sweep" in ch3:
        sweep = ch3["span_sweep"]
        wilson(sweep[sweep.m == 1], "masked accuracy, m = 1", "accuracy", "tokens")
    if "flank_perturbation" in ch3:
        fp = ch3["flank_perturbation"]
        wilson(fp[fp.m == fp.m.min()], "copies the altered flank", "follows_flank", "windows")
    if "same_nucleotides" in ch3:
        same = ch3["same_nucleotides"]
        h1 = same[same.h == same.h.min()]
        wilson(h1[~h1.model.str.startswith(("two-sided", "corpus", "chance"))], "hidden-nucleotide accuracy",
               "accuracy", "nucleotides")
    ch5 = tables.get("05_next_kmer", {})
    summ, ints = ch5.get("summary"), ch5.get("accuracy_intervals")
    if summ is not None and ints is not None and len(summ) and len(ints):
        if "init" in ints:
            ints = ints[ints.init == "pretrained"]
        for k in sorted({int(summ.k.min()), int(summ.k.max())}):
            for r in ints[ints.k == k].itertuples():
                rows.append({"model": r.model, "column": f"next-{k}-mer accuracy", "low": r.accuracy_low,
                             "high": r.accuracy_high, "method": "bootstrap over test windows"})
    return pd.DataFrame(rows, columns=["model", "column", "low", "high", "method"])


def read_roles(runs_dir: str | os.PathLike):
    """The models' roles (roles.model_roles) as the chapters recorded them under ``runs_dir``: every chapter's
    ``roles.csv``, one row per model (the first chapter's row wins); None when no chapter wrote one."""
    import pandas as pd

    parts = [pd.read_csv(p) for p in sorted(Path(runs_dir).glob("*/roles.csv"))]
    parts = [p for p in parts if len(p)]
    return pd.concat(parts, ignore_index=True).drop_duplicates("model") if parts else None
