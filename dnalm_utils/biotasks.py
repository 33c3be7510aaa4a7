"""Biology classification tasks for fine-tuning, and running a model grid on one.

* :class:`ClassificationTask` -- sequences and labels per split (train / valid / test), the class names and
  one row per example;
* :func:`tf_peak_task` -- Oct4 vs Mafk ChIP-seq peaks, split by chromosome, leaky peaks kept out of
  evaluation;
* :func:`annotation_masks` and :func:`exon_intron_task` -- exon vs intron windows of the annotated
  pre-training entries, split by genomic block;
* :func:`run_task` -- every model x init x seed on a task (``finetune_runs.run_grid``) plus the k-mer
  logistic regression and majority-class baselines, each scored at the 0.5 threshold and at a threshold picked on
  its own validation predictions; :func:`summarize` -- their summary table; :func:`score_intervals` -- MCC and
  AUROC of every (model, init) with a bootstrap interval over test examples.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from .classification_metrics import (ValidatedBinaryScore, best_threshold, binary_metrics, binary_run_predictions,
                                     bootstrap_weights, item_scores, percentile_interval, resampled_binary_score)
from .codec import encode
from .errors import ParameterError, check_int_range
from .lr_tuning import tuned_grid
from .finetuning import INITS
from .kmer_baseline import tuned_kmer_logistic_regression
from .onehot_cnn import DEFAULT_LRS as DEFAULT_CNN_LRS
from .onehot_cnn import cnn_grid


@dataclass
class ClassificationTask:
    """Sequences and labels per split (train / valid / test), the class names and one row per example
    (``table``: split, label, and where it comes from)."""

    name: str
    classes: tuple[str, ...]
    splits: dict  # split -> (list[str], np.ndarray)
    table: object
    notes: dict = dataclasses.field(default_factory=dict)

    def sizes(self):
        import pandas as pd

        rows = []
        for split, (seqs, y) in self.splits.items():
            rows.append({"task": self.name, "split": split, "examples": len(seqs),
                         **{f"class {i}": int(np.sum(y == i)) for i in range(len(self.classes))},
                         "classes": ", ".join(f"{i} = {c}" for i, c in enumerate(self.classes))})
        return pd.DataFrame(rows)


def _subsample(idx: np.ndarray, n: int | None, rng) -> np.ndarray:
    if n is None or idx.size <= n:
        return idx
    return np.sort(rng.choice(idx, size=n, replace=False))


def tf_peak_task(*, peak_nt: int = 200, valid_chroms: Sequence[str] = ("chr7",), test_chroms: Sequence[str] = ("chr8", "chr9"),
                 exclude_leaky: bool = True, max_train: int | None = None, seed: int = 0, data_dir=None) -> ClassificationTask:
    """Oct4 (class 1) vs Mafk (class 0) 200-bp ChIP-seq peaks (data.load_tf_peaks), split by chromosome.

    ``peak_nt``: the central nt of each peak that a model sees (<= 200). Peaks flagged as leaky -- inside the
    MHC region (which the pre-training corpus covers) or with >= 50 % of their 32-mers in the pre-training
    corpus -- are kept out of validation and test if ``exclude_leaky`` (reported in ``notes``), and flagged
    in ``table`` either way. Peaks with a non-ACGT letter in the central window are dropped. ``max_train``
    subsamples the training peaks (seeded).
    """
    from . import containment, data

    peak_nt = check_int_range("peak_nt", peak_nt, 1, 200, hint="The peaks are 200 nt long.")
    valid_chroms, test_chroms = list(valid_chroms), list(test_chroms)
    if not valid_chroms or not test_chroms or set(valid_chroms) & set(test_chroms):
        raise ParameterError(f"valid_chroms={valid_chroms} and test_chroms={test_chroms} must be non-empty and disjoint.")
    peaks = data.load_tf_peaks(data_dir).copy()
    known = set(peaks.chrom)
    for c in valid_chroms + test_chroms:
        if c not in known:
            raise ParameterError(f"chromosome {c!r} holds no peak; peaks lie on {', '.join(sorted(known))}.")
    a = (200 - peak_nt) // 2
    peaks["sequence"] = peaks.sequence.str.upper().str[a : a + peak_nt]
    peaks["leaky"] = peaks.in_mhc_region.astype(bool) | (peaks.pretrain_32mer_fraction >= containment.CONTAINED_FRACTION)
    acgt = peaks.sequence.str.fullmatch(r"[ACGT]+")
    peaks = peaks[acgt].copy()
    peaks["split"] = np.where(peaks.chrom.isin(test_chroms), "test", np.where(peaks.chrom.isin(valid_chroms), "valid", "train"))
    leaky_eval = peaks[(peaks.split != "train") & peaks.leaky]
    if exclude_leaky:
        peaks = peaks.drop(leaky_eval.index)
    peaks["y"] = (peaks.label == "Oct4").astype(np.int64)
    rng = np.random.default_rng(seed)
    splits = {}
    for split in ("train", "valid", "test"):
        idx = np.flatnonzero(peaks.split.to_numpy() == split)
        if split == "train":
            idx = _subsample(idx, max_train, rng)
        if idx.size == 0:
            raise ParameterError(f"too few peaks for the {split} split (none); choose other chromosomes.")
        sub = peaks.iloc[idx]
        splits[split] = (sub.sequence.tolist(), sub.y.to_numpy())
    table = peaks[["name", "chrom", "label", "split", "leaky"]].reset_index(drop=True)
    notes = {"dropped_non_acgt": int((~acgt).sum()), "leaky_in_evaluation_chromosomes": int(len(leaky_eval)),
             "leaky_excluded": bool(exclude_leaky), "leaky_in_train": int((peaks.leaky & (peaks.split == "train")).sum())}
    return ClassificationTask("Oct4 vs Mafk peaks", ("Mafk", "Oct4"), splits, table, notes)


def annotation_masks(lengths: Mapping[str, int], features, *, max_gene_nt: int = 200_000) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per record: (exonic, intronic) boolean masks from the annotation features.

    Exonic: every part of an exon, CDS or mRNA feature. Intronic: inside a transcript -- the span of a
    multi-part mRNA or CDS feature, or of the exons sharing a /gene name on a record (at most
    ``max_gene_nt``) -- and not exonic. Parts annotated on another entry are ignored."""
    f = features[(features.seqid == features.annotated_on) & features.seqid.isin(list(lengths))]
    f = f[f.type.isin(["exon", "CDS", "mRNA"])]
    out = {}
    for name, length in lengths.items():
        exonic = np.zeros(int(length), dtype=bool)
        genic = np.zeros(int(length), dtype=bool)
        sub = f[f.seqid == name]
        for s, e in zip(sub.start.to_numpy(), sub.end.to_numpy()):
            exonic[s:e] = True
        spans = []
        multi = sub[sub.type.isin(["mRNA", "CDS"])].groupby("feature_id").agg(start=("start", "min"), end=("end", "max"),
                                                                                parts=("start", "size"))
        spans += [(s, e) for s, e, p in zip(multi.start, multi.end, multi.parts) if p > 1]
        ex = sub[(sub.type == "exon") & (sub.gene != "")].groupby("gene").agg(start=("start", "min"), end=("end", "max"),
                                                                              parts=("start", "size"))
        spans += [(s, e) for s, e, p in zip(ex.start, ex.end, ex.parts) if p > 1 and e - s <= max_gene_nt]
        for s, e in spans:
            genic[s:e] = True
        out[name] = (exonic, genic & ~exonic)
    return out


def exon_intron_task(*, window_nt: int = 100, stride: int | None = None, block_nt: int = 50_000,
                     valid_fraction: float = 0.15, test_fraction: float = 0.2, max_train_per_class: int | None = None,
                     max_eval_per_class: int | None = None, seed: int = 0) -> ClassificationTask:
    """Exon (class 1) vs intron (class 0) windows of ``window_nt`` nt from the annotated pre-training entries,
    split by genomic block.

    Each record is cut into blocks of ``block_nt`` nt, each block assigned (seeded) to train, validation or
    test; the last ``window_nt`` nt of every block are left out, so windows of different splits are more
    than a window apart. Windows are tiled every ``stride`` nt (default window_nt // 2) inside the blocks and
    kept if wholly exonic or wholly intronic (:func:`annotation_masks`) and ACGT-only, forward strand. Each
    split is balanced by subsampling the larger class (seeded), to at most ``max_train_per_class`` (train) or
    ``max_eval_per_class`` (validation, test) windows per class.
    """
    import pandas as pd

    from . import corpus, data

    window_nt = check_int_range("window_nt", window_nt, 1)
    stride = max(1, window_nt // 2) if stride is None else check_int_range("stride", stride, 1)
    block_nt = check_int_range("block_nt", block_nt, window_nt * 2 + 1)
    if not (0 < valid_fraction < 1 and 0 < test_fraction < 1 and valid_fraction + test_fraction < 1):
        raise ParameterError(f"valid_fraction={valid_fraction} and test_fraction={test_fraction} must be in (0, 1) "
                             "with a sum below 1.")
    records = {r.name: r.sequence for r in corpus.split_corpus_records()}
    lengths = {n: len(s) for n, s in records.items()}
    masks = annotation_masks(lengths, data.load_features())
    rng = np.random.default_rng(seed)
    rows = []
    for name, length in lengths.items():
        exonic, intronic = masks[name]
        seq = records[name]
        acgt = encode(seq) < 4  # A/C/G/T (records are upper case)
        cum = {key: np.concatenate([[0], np.cumsum(m)]) for key, m in (("exon", exonic), ("intron", intronic), ("acgt", acgt))}
        for b in range(0, length, block_nt):
            end = min(b + block_nt, length) - window_nt  # the block's last window_nt nt stay unused
            starts = np.arange(b, end - window_nt + 1, stride)
            if starts.size == 0:
                continue
            draw = rng.random()
            split = "test" if draw < test_fraction else "valid" if draw < test_fraction + valid_fraction else "train"
            full = {key: (c[starts + window_nt] - c[starts]) == window_nt for key, c in cum.items()}
            for cls, key in ((1, "exon"), (0, "intron")):
                keep = starts[full[key] & full["acgt"]]
                rows += [(name, int(s), int(s) + window_nt, split, cls) for s in keep.tolist()]
    table = pd.DataFrame(rows, columns=["name", "start", "end", "split", "y"])
    splits, kept = {}, []
    for split in ("train", "valid", "test"):
        sub = table[table.split == split]
        n = min(int((sub.y == 1).sum()), int((sub.y == 0).sum()))
        cap = max_train_per_class if split == "train" else max_eval_per_class
        if cap is not None:
            n = min(n, check_int_range("max windows per class", cap, 1))
        if n == 0:
            raise ParameterError(f"too few windows for the {split} split of the exon/intron task (a class is empty); "
                                 "use smaller blocks or windows, or another seed.")
        idx = np.concatenate([_subsample(np.flatnonzero(sub.y.to_numpy() == c), n, rng) for c in (1, 0)])
        pick = sub.iloc[np.sort(idx)]
        kept.append(pick)
        splits[split] = ([records[r.name][r.start : r.end] for r in pick.itertuples()], pick.y.to_numpy())
    table = pd.concat(kept, ignore_index=True)
    table["label"] = np.where(table.y == 1, "exon", "intron")
    return ClassificationTask("exon vs intron windows", ("intron", "exon"), splits, table,
                              {"window_nt": window_nt, "block_nt": block_nt, "stride": stride})


#: Name of the k-mer baseline's rows (its k and C are columns of the row).
KMER_BASELINE = "k-mer TF-IDF + logistic regression"
#: Inverse regularisation strengths the k-mer baseline chooses among on validation.
KMER_CS = (0.1, 1.0, 10.0)


def run_task(task: ClassificationTask, sources: Mapping[str, str], *, seeds: Sequence[int], settings=None,
             inits: Sequence[str] = INITS, models_dir=None, device: str = "auto", progress: bool = True,
             kmer: int | Sequence[int] = (3, 4, 5, 6), keep_models_dir=None, cache_dir=None, load_options: Mapping | None = None,
             with_items: bool = False, cnn_lrs: Sequence[float] | None = DEFAULT_CNN_LRS, executor=None,
             learning_rates: Mapping | None = None, init_settings: Mapping | None = None):
    """Fine-tune every model on a binary :class:`ClassificationTask` and add the baselines (init "baseline"): the
    TF-IDF k-mer logistic regression (:data:`KMER_BASELINE`; its k-mer size among ``kmer`` and its C picked on
    validation, ``kmer_baseline.tuned_kmer_logistic_regression``, recorded in columns kmer and C; ``kmer=0``: none),
    the majority class and a one-hot CNN trained from scratch on the same splits, one
    per seed, with the fine-tuning settings and its learning rate picked on validation among ``cnn_lrs``
    (``onehot_cnn.cnn_grid``; ``cnn_lrs=None``: no CNN). Returns one row per run: task, model, init, seed, mcc,
    accuracy, auroc, ...; ``with_items=True`` returns ``(runs, items)``, items being the per-item test scores
    (task, model, init, seed, item, accuracy 0/1, bits, p1 = p(class 1)) of the fine-tuned runs and the baselines. ``executor``:
    where the fine-tuning runs execute (``finetune_runs.run_grid``; None = serially here). ``learning_rates``: init ->
    candidate rates picked on validation per model (``lr_tuning.tuned_grid``; column ``learning_rate``);
    ``init_settings``: init -> its own budget (``lr_tuning.init_run_settings``)."""
    import pandas as pd

    train, valid, test = task.splits["train"], task.splits["valid"], task.splits["test"]
    runs, run_items, _ = tuned_grid(sources, train, valid, test, learning_rates=learning_rates,
                                    num_labels=len(task.classes), seeds=seeds, inits=inits, settings=settings,
                                    models_dir=models_dir, device=device, score=ValidatedBinaryScore(),
                                    progress=progress, desc=task.name, keep_models_dir=keep_models_dir,
                                    tag=task.name.split()[0].lower(), cache_dir=cache_dir,
                                    score_id="binary/valid-threshold", load_options=load_options, with_items=True,
                                    executor=executor, init_settings=init_settings)
    rows, items = [], [run_items]
    if kmer:
        kmers = [kmer] if isinstance(kmer, (int, np.integer)) else list(kmer)
        both, choice = tuned_kmer_logistic_regression(train, valid, list(valid[0]) + list(test[0]),
                                                      num_classes=len(task.classes), kmers=kmers, Cs=KMER_CS)
        p_valid, probs = both[: len(valid[0])], both[len(valid[0]):]
        threshold = best_threshold(p_valid[:, 1], valid[1])[0]
        rows.append({"model": KMER_BASELINE, "init": "baseline", "seed": 0,
                     **binary_metrics(probs, test[1], threshold=threshold), "kmer": choice["kmer"], "C": choice["C"]})
        correct, bits = item_scores(probs, test[1])
        items.append(pd.DataFrame({"model": KMER_BASELINE, "init": "baseline", "seed": 0,
                                   "item": np.arange(len(bits)), "accuracy": correct, "bits": bits, "p1": probs[:, 1]}))
    if cnn_lrs is not None:
        cnn_runs, cnn_items = cnn_grid(train, valid, test, num_classes=len(task.classes), seeds=seeds,
                                       settings=settings, lrs=cnn_lrs, score=ValidatedBinaryScore(), device=device)
        rows += cnn_runs.assign(init="baseline").to_dict("records")
        items.append(cnn_items.assign(init="baseline"))
    majority = int(np.bincount(train[1]).argmax())
    p_majority = np.full(len(test[1]), 0.5 + (0.01 if majority else -0.01))
    # its validation predictions are constant too: the threshold stays 0.5 (classification_metrics.best_threshold)
    threshold = best_threshold(np.full(len(valid[1]), p_majority[0]), valid[1])[0]
    rows.append({"model": "majority class", "init": "baseline", "seed": 0,
                 **binary_metrics(p_majority, test[1], threshold=threshold)})
    correct, bits = item_scores(p_majority, test[1])
    items.append(pd.DataFrame({"model": "majority class", "init": "baseline", "seed": 0,
                               "item": np.arange(len(bits)), "accuracy": correct, "bits": bits, "p1": p_majority}))
    out = pd.concat([runs, pd.DataFrame(rows)], ignore_index=True)
    out = out.assign(task=task.name)[["task"] + list(out.columns)]
    return (out, pd.concat(items, ignore_index=True).assign(task=task.name)) if with_items else out


#: Columns of chapter 6's summary: MCC of the decisions at the threshold each classifier picked on its own
#: validation predictions (``mcc``) beside the MCC at 0.5 (``mcc_argmax``), accuracy at 0.5 and at that threshold
#: (``accuracy_valid_threshold``), AUROC.
SUMMARY_METRICS = ("mcc", "mcc_argmax", "accuracy", "accuracy_valid_threshold", "auroc")


def summarize(runs, by: Sequence[str] = ("task", "model", "init"), *, intervals=None):
    """Per group of ``by`` of :func:`run_task` rows: ``<metric>_mean`` and ``<metric>_std`` (over seeds) of every
    :data:`SUMMARY_METRICS` column present, and ``seeds`` (``finetune_runs.summarize_runs``); with ``intervals``
    (:func:`score_intervals` on the same ``by``) also mcc_low, mcc_high, auroc_low, auroc_high."""
    from .finetune_runs import summarize_runs

    out = summarize_runs(runs, list(by), metrics=SUMMARY_METRICS)
    if intervals is not None:
        cols = [f"{m}_{side}" for m in ("mcc", "auroc") for side in ("low", "high")]
        out = out.merge(intervals[list(by) + cols], on=list(by), how="left")
    return out


def score_intervals(items, runs, test_labels: Mapping[str, np.ndarray], *, by: Sequence[str] = ("task", "model", "init"),
                    n_boot: int = 1000, confidence: float = 0.95, seed: int = 0):
    """MCC and AUROC per group of ``by`` (averaged over the group's seeds) with a percentile bootstrap interval over
    test examples. Every resample draws the same examples for every seed and every model of a task, so the interval
    is that of the seed-averaged score over the choice of test set. Each run's MCC judges its decisions at its own
    threshold (``threshold`` of its row in ``runs``, picked on its validation predictions; "p1 >= threshold"), or
    at the argmax (p1 > 0.5) where the row has none.

    items: task, model, init, seed, item, p1 (:func:`run_task` with ``with_items=True``); runs: task, model, init,
    seed and optionally threshold; test_labels: task name -> (n,) 0/1 test labels in item order. Returns one row per
    group: ``by`` columns, seeds, n (test examples), mcc, mcc_low, mcc_high, auroc, auroc_low, auroc_high."""
    import pandas as pd

    by = list(by)
    n_boot = check_int_range("n_boot", n_boot, 1, hint="Bootstrap resamples, e.g. 1000.")
    if not 0 < confidence < 1:
        raise ParameterError(f"confidence={confidence!r}: pass a level between 0 and 1, e.g. 0.95.")
    if [c for c in by if c not in items]:
        raise ParameterError(f"score_intervals: items lack the grouping column(s) {[c for c in by if c not in items]}.")
    runs_by_key = binary_run_predictions(items, runs, test_labels)
    rows, weights = [], {}
    for key, part in items.groupby(by, sort=False):
        labels = dict(zip(by, key if isinstance(key, tuple) else (key,)))
        mccs, aurocs = [], []
        for run_key in part.groupby(["task", "model", "init", "seed"], sort=True).groups:
            y, p1, threshold = runs_by_key[(run_key[0], run_key[1], run_key[2], int(run_key[3]))]
            if run_key[0] not in weights:
                weights[run_key[0]] = np.vstack([np.ones((1, len(y))), bootstrap_weights(len(y), n_boot, seed)])
            w = weights[run_key[0]]
            mccs.append(resampled_binary_score(w, y, p1, metric="mcc", threshold=threshold))
            aurocs.append(resampled_binary_score(w, y, p1, metric="auroc"))
        mcc, auroc = np.mean(mccs, axis=0), np.mean(aurocs, axis=0)
        rows.append({**labels, "seeds": len(mccs), "n": int(w.shape[1]),
                     "mcc": float(mcc[0]), **dict(zip(("mcc_low", "mcc_high"), percentile_interval(mcc[1:], confidence))),
                     "auroc": float(auroc[0]),
                     **dict(zip(("auroc_low", "auroc_high"), percentile_interval(auroc[1:], confidence)))})
    return pd.DataFrame(rows, columns=[*by, "seeds", "n", "mcc", "mcc_low", "mcc_high", "auroc", "auroc_low",
                                       "auroc_high"])


# --------------------------------------------------------------------------------------------------


__all__ = ["ClassificationTask", "tf_peak_task", "annotation_masks", "exon_intron_task", "KMER_BASELINE", "KMER_CS",
           "run_task", "SUMMARY_METRICS", "summarize", "score_intervals"]
