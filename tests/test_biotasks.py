"""Biology task builders: TF peaks split by chromosome with leaky peaks kept out of evaluation; exon / intron
windows balanced and split by genomic block, every window wholly exonic or intronic."""

from __future__ import annotations

import numpy as np
import pytest

from dnalm_utils import biotasks as BT
from dnalm_utils.errors import ParameterError
from finetune_fixtures import QUICK, data, tiny  # noqa: F401 (fixtures)


def test_tf_peak_task_splits_by_chromosome_and_keeps_leaks_out():
    task = BT.tf_peak_task(peak_nt=100, valid_chroms=["chr7"], test_chroms=["chr8", "chr9"], max_train=500)
    t = task.table
    assert set(t[t.split == "test"].chrom) == {"chr8", "chr9"} and set(t[t.split == "valid"].chrom) == {"chr7"}
    assert not t[t.split != "train"].leaky.any()
    assert len(task.splits["train"][0]) == 500
    assert all(len(s) == 100 and set(s) <= set("ACGT") for s in task.splits["test"][0])
    assert set(np.unique(task.splits["test"][1])) == {0, 1} and task.classes == ("Mafk", "Oct4")
    assert task.notes["leaky_in_evaluation_chromosomes"] >= 0
    with pytest.raises(ParameterError, match="disjoint"):
        BT.tf_peak_task(valid_chroms=["chr8"], test_chroms=["chr8"])
    with pytest.raises(ParameterError, match="no peak"):
        BT.tf_peak_task(test_chroms=["chrZ"])


def test_exon_intron_task_is_balanced_and_block_split():
    from dnalm_utils import corpus, data

    task = BT.exon_intron_task(window_nt=80, block_nt=40_000, max_train_per_class=300, max_eval_per_class=100, seed=0)
    t = task.table
    for split in ("train", "valid", "test"):
        y = task.splits[split][1]
        assert (y == 1).sum() == (y == 0).sum() > 0
        assert (y == 1).sum() <= (300 if split == "train" else 100)
    records = {r.name: r.sequence for r in corpus.corpus_records()}
    masks = BT.annotation_masks({n: len(s) for n, s in records.items()}, data.load_features())
    for r in t.sample(100, random_state=0).itertuples():
        exonic, intronic = masks[r.name]
        assert (exonic if r.y == 1 else intronic)[r.start : r.end].all()
    a = t[t.split == "train"]
    for other in ("valid", "test"):  # windows of different splits are more than a window apart
        b = t[t.split == other]
        for name in set(a.name) & set(b.name):
            x, y = a[a.name == name], b[b.name == name]
            gap = np.maximum(x.start.to_numpy()[:, None], y.start.to_numpy()[None, :]) - np.minimum(
                x.end.to_numpy()[:, None], y.end.to_numpy()[None, :])
            assert (gap >= 80).all()


def test_run_task_scores_every_classifier_at_its_own_validation_threshold(tiny, data):
    """Fine-tuned runs, the k-mer regression, the CNN and the majority class all report MCC at a threshold chosen
    on their own validation predictions (the argmax MCC kept beside it), and the fine-tuned row's threshold is the
    one best_threshold picks on that model's validation probabilities."""
    import pandas as pd

    from dnalm_utils import classification_metrics as CM
    from dnalm_utils import finetuning as FT

    task = BT.ClassificationTask(name="gc test", classes=("AT", "GC"), splits=dict(zip(("train", "valid", "test"), data)),
                                 table=pd.DataFrame())
    runs = BT.run_task(task, {"dnabert3": tiny["dnabert3"]}, seeds=[0], settings=QUICK, inits=["pretrained"],
                       device="cpu", progress=False, kmer=[2], cnn_lrs=[1e-3])
    assert set(runs.model) == {"dnabert3", BT.KMER_BASELINE, "one-hot CNN", "majority class"}
    assert runs[["threshold", "mcc_argmax", "accuracy_valid_threshold"]].notna().all().all()
    tuned = runs[runs.model == "dnabert3"].iloc[0]
    res = FT.finetune(tiny["dnabert3"], data[0], data[1], num_labels=2, init="pretrained", seed=0, settings=QUICK,
                      device="cpu")
    valid = FT.SequenceDataset(res.lm.tokenizer, *data[1], max_tokens=res.lm.max_tokens)
    p_valid = FT.predict_proba(res.lm, valid, batch_size=QUICK.eval_batch_size)
    assert tuned.threshold == pytest.approx(CM.best_threshold(p_valid[:, 1], data[1][1])[0])
    majority = runs[runs.model == "majority class"].iloc[0]
    assert majority.mcc == 0 and majority.predicted_classes == 1


def test_run_task_is_deterministic_and_summarises_both_mccs(tiny, data):
    """Same seed -> the same rows and items; every row type (fine-tuned, k-mer regression, CNN, majority) carries
    the MCC at its validation threshold beside the argmax MCC; the k-mer regression's threshold is the one picked
    on its own validation probabilities; the summary shows both MCCs."""
    import pandas as pd

    from dnalm_utils import classification_metrics as CM
    from dnalm_utils.kmer_baseline import tuned_kmer_logistic_regression

    task = BT.ClassificationTask(name="gc test", classes=("AT", "GC"), splits=dict(zip(("train", "valid", "test"), data)),
                                 table=pd.DataFrame())

    def once():
        return BT.run_task(task, {"dnabert3": tiny["dnabert3"]}, seeds=[0], settings=QUICK, inits=["pretrained"],
                           device="cpu", progress=False, kmer=[2], cnn_lrs=[1e-3], with_items=True)

    (runs, items), (runs2, items2) = once(), once()
    keys = ["model", "init", "seed", "mcc", "mcc_argmax", "accuracy", "accuracy_valid_threshold", "auroc", "threshold",
            "predicted_classes", "predicted_classes_argmax"]
    pd.testing.assert_frame_equal(runs[keys], runs2[keys])
    pd.testing.assert_frame_equal(items, items2)
    assert runs[keys].notna().all().all() and len(runs) == 4
    for row in runs.itertuples():
        assert 0 <= row.accuracy_valid_threshold <= 1 and -1 <= row.mcc <= 1 and -1 <= row.mcc_argmax <= 1
    kmer_row = runs[runs.model == BT.KMER_BASELINE].iloc[0]
    p_valid, _ = tuned_kmer_logistic_regression(data[0], data[1], data[1][0], num_classes=2, kmers=[2], Cs=BT.KMER_CS)
    assert kmer_row.threshold == pytest.approx(CM.validation_threshold(p_valid[:, 1], data[1][1]))
    p_test, _ = tuned_kmer_logistic_regression(data[0], data[1], data[2][0], num_classes=2, kmers=[2], Cs=BT.KMER_CS)
    from sklearn.metrics import matthews_corrcoef

    assert kmer_row.mcc == pytest.approx(matthews_corrcoef(data[2][1], p_test[:, 1] >= kmer_row.threshold))
    assert kmer_row.mcc_argmax == pytest.approx(matthews_corrcoef(data[2][1], p_test[:, 1] > p_test[:, 0]))
    majority = runs[runs.model == "majority class"].iloc[0]
    assert majority.threshold == 0.5 and majority.mcc == majority.mcc_argmax == 0
    assert majority.accuracy_valid_threshold == majority.accuracy
    summary = BT.summarize(runs)
    assert {"mcc_mean", "mcc_argmax_mean", "accuracy_valid_threshold_mean", "auroc_mean"} <= set(summary.columns)
    assert summary.set_index("model").mcc_argmax_mean.to_dict() == runs.set_index("model").mcc_argmax.to_dict()
    # intervals over test examples: the full-sample value is each row's own MCC (at its threshold) and AUROC, from
    # the stored per-item p(class 1), and lies inside its interval
    ci = BT.score_intervals(items, runs, {"gc test": data[2][1]}, n_boot=200).set_index("model")
    own = runs.set_index("model")
    for model in own.index:
        assert ci.loc[model, "mcc"] == pytest.approx(own.loc[model, "mcc"], abs=1e-6)
        assert ci.loc[model, "auroc"] == pytest.approx(own.loc[model, "auroc"], abs=1e-6)
        for metric in ("mcc", "auroc"):
            lo, hi = ci.loc[model, f"{metric}_low"], ci.loc[model, f"{metric}_high"]
            assert lo <= ci.loc[model, metric] + 1e-9 and ci.loc[model, metric] <= hi + 1e-9 or model == "majority class"


def _simulated_items(rng, n: int, shift: float, seeds=(0, 1)):
    """Items of a binary task whose class-1 scores sit ``shift`` standard deviations above class 0's (one run per
    seed, fresh score noise per seed), their labels and runs with threshold 0.5. Population AUROC: Phi(shift / sqrt 2)."""
    import pandas as pd

    y = rng.integers(0, 2, n)
    frames, rows, p1s = [], [], []
    for s in seeds:
        p1 = 1 / (1 + np.exp(-(rng.normal(size=n) + shift * (y - 0.5))))
        p_true = np.where(y == 1, p1, 1 - p1)
        frames.append(pd.DataFrame({"task": "sim", "model": "m", "init": "pretrained", "seed": s, "item": np.arange(n),
                                    "accuracy": ((p1 > 0.5) == y).astype(float), "bits": -np.log2(p_true), "p1": p1}))
        rows.append({"task": "sim", "model": "m", "init": "pretrained", "seed": s, "threshold": 0.5})
        p1s.append(p1)
    return pd.concat(frames, ignore_index=True), pd.DataFrame(rows), y, p1s


def test_score_intervals_average_the_seeds_and_cover_the_population_auroc_at_the_stated_rate():
    """The point value is the seed mean of sklearn's MCC and AUROC; over 150 simulated test sets the 95 % interval
    of the AUROC covers the population value Phi(shift / sqrt 2) in about 95 % of them."""
    from math import erf, sqrt

    from sklearn.metrics import matthews_corrcoef, roc_auc_score

    rng = np.random.default_rng(0)
    items, runs, y, p1s = _simulated_items(rng, 300, 1.0)
    ci = BT.score_intervals(items, runs, {"sim": y}, n_boot=300).iloc[0]
    assert ci.seeds == 2 and ci.n == 300
    assert ci.auroc == pytest.approx(np.mean([roc_auc_score(y, p) for p in p1s]), abs=1e-9)
    assert ci.mcc == pytest.approx(np.mean([matthews_corrcoef(y, p >= 0.5) for p in p1s]), abs=1e-9)
    truth = 0.5 * (1 + erf(1.0 / sqrt(2) / sqrt(2)))
    covered = []
    for _ in range(150):
        items, runs, y, _ = _simulated_items(rng, 200, 1.0, seeds=(0,))
        row = BT.score_intervals(items, runs, {"sim": y}, n_boot=300).iloc[0]
        covered.append(row.auroc_low <= truth <= row.auroc_high)
    assert 0.88 <= np.mean(covered) <= 0.99
    # same seed, same interval; a mismatched label vector is refused
    items, runs, y, _ = _simulated_items(np.random.default_rng(1), 100, 1.0)
    a = BT.score_intervals(items, runs, {"sim": y}, n_boot=100, seed=3)
    b = BT.score_intervals(items, runs, {"sim": y}, n_boot=100, seed=3)
    assert a.equals(b)
    with pytest.raises(ParameterError, match="items and labels do not match"):
        BT.score_intervals(items, runs, {"sim": y[:-1]})
    with pytest.raises(ParameterError, match="no test labels"):
        BT.score_intervals(items, runs, {"other": y})
