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
