"""The one-hot CNN baseline (dnalm_utils.onehot_cnn): it learns a planted motif, early stopping stops exactly
where it should, the best checkpoint is the one returned, N is all zeros, seeds fix every number, and bad
input is refused with the parameter named."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dnalm_utils.classification_metrics import binary_metrics
from dnalm_utils.errors import ParameterError
from dnalm_utils.finetuning import FinetuneSettings
from dnalm_utils.onehot_cnn import (
    OneHotCNN,
    cnn_grid,
    cnn_run_row,
    one_hot,
    predict_proba_cnn,
    train_cnn,
    tune_cnn,
)

MOTIF = "GATTCA"


def motif_task(n: int, seed: int, length: int = 60):
    """Seeded random sequences; class 1 holds MOTIF at a random position, class 0 nowhere."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    seqs = []
    for lab in labels:
        while True:
            s = "".join(rng.choice(list("ACGT"), length))
            if MOTIF not in s:
                break
        if lab:
            p = int(rng.integers(0, length - len(MOTIF) + 1))
            s = s[:p] + MOTIF + s[p + len(MOTIF):]
        seqs.append(s)
    return seqs, labels


def random_task(n: int, seed: int, classes: int = 4, length: int = 30):
    rng = np.random.default_rng(seed)
    return ["".join(rng.choice(list("ACGT"), length)) for _ in range(n)], rng.integers(0, classes, n)


SMALL = FinetuneSettings(learning_rate=3e-3, batch_size=16, max_steps=30, eval_steps=10, patience=2)


@pytest.fixture(scope="module")
def motif():
    return motif_task(800, 1), motif_task(200, 2), motif_task(400, 3)


@pytest.fixture(scope="module")
def motif_run(motif):
    train, valid, _ = motif
    settings = FinetuneSettings(learning_rate=1e-2, batch_size=32, max_steps=150, eval_steps=25, patience=2)
    return train_cnn(train, valid, num_classes=2, settings=settings, seed=0, device="cpu", channels=32)


# --------------------------------------------------------------------------------------------------
# Learning
# --------------------------------------------------------------------------------------------------
def test_learns_planted_motif(motif, motif_run):
    _, _, test = motif
    probs = predict_proba_cnn(motif_run, test[0])
    assert probs.shape == (400, 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-9)
    accuracy = float(np.mean(probs.argmax(axis=1) == test[1]))
    majority = max(np.mean(test[1]), 1 - np.mean(test[1]))
    assert accuracy >= 0.90, (accuracy, majority)
    assert motif_run.steps <= 150
    assert list(motif_run.history.columns) == ["step", "train_loss", "eval_loss"]
    # the validation loss fell from the first evaluation to the best one
    assert motif_run.best_eval_loss < motif_run.history.eval_loss.iloc[0]


def test_run_row_and_items_match_run_grid(motif, motif_run):
    _, _, test = motif
    row, items = cnn_run_row(motif_run, test, score=binary_metrics)
    for col in ("model", "init", "seed", "mcc", "accuracy", "auroc", "best_step", "steps", "stopped_early",
                "best_eval_loss", "train_s", "tokenization", "parameters", "n_train", "n_valid", "cached"):
        assert col in row, col
    assert (row["model"], row["init"], row["seed"]) == ("one-hot CNN", "random", 0)
    assert row["parameters"] == motif_run.model.parameter_count()
    assert (row["n_train"], row["n_valid"]) == (800, 200)
    assert list(items.columns) == ["model", "init", "seed", "item", "accuracy", "bits", "p1"]  # p1: two classes
    assert items.item.tolist() == list(range(400))
    # the per-item scores average to the run's scores
    assert items.accuracy.mean() == pytest.approx(row["accuracy"])
    probs = predict_proba_cnn(motif_run, test[0])
    bits = -np.log2(np.clip(probs[np.arange(400), test[1]], 1e-12, 1))
    np.testing.assert_allclose(items.bits, bits)
    np.testing.assert_array_equal(items.p1, probs[:, 1])


def test_training_stops_early_and_restores_best_checkpoint():
    # random labels: the validation loss rises once the model overfits the small training set
    train, valid = random_task(64, 1), random_task(64, 2)
    s = FinetuneSettings(learning_rate=3e-2, batch_size=16, max_steps=400, eval_steps=10, patience=3,
                         warmup_ratio=0.0)
    res = train_cnn(train, valid, num_classes=4, settings=s, seed=0, device="cpu")
    h = res.history
    assert res.stopped_early and res.steps < 400 and res.steps == int(h.step.iloc[-1])
    assert h.step.tolist() == list(range(10, res.steps + 1, 10))
    best = int(h.eval_loss.values.argmin())
    assert res.best_step == int(h.step.iloc[best]) < res.steps
    assert res.best_eval_loss == pytest.approx(float(h.eval_loss.iloc[best]), abs=0)
    assert len(h) - 1 - best == 3  # stopped at the third evaluation without improvement
    # the returned model is the best checkpoint: its validation loss is best_eval_loss, not the last one
    probs = predict_proba_cnn(res, valid[0])
    loss = -np.mean(np.log(probs[np.arange(len(valid[1])), valid[1]]))
    assert loss == pytest.approx(res.best_eval_loss, rel=1e-5)
    assert abs(loss - h.eval_loss.iloc[-1]) > 1e-3


def test_budget_without_early_stop_evaluates_last_step():
    train, valid = random_task(48, 3), random_task(16, 4)
    s = FinetuneSettings(learning_rate=1e-3, batch_size=8, max_steps=25, eval_steps=10, patience=5)
    res = train_cnn(train, valid, num_classes=4, settings=s, seed=0, device="cpu")
    assert res.steps == 25 and not res.stopped_early
    assert res.history.step.tolist() == [10, 20, 25]


# --------------------------------------------------------------------------------------------------
# Input encoding
# --------------------------------------------------------------------------------------------------
def test_one_hot_matches_brute_force_and_n_is_zero():
    seqs = ["ACGTN", "nnacg", "TRYGA"]
    x = one_hot(seqs)
    assert x.shape == (3, 4, 5) and x.dtype == np.float32
    for i, s in enumerate(seqs):
        for j, c in enumerate(s.upper()):
            want = np.zeros(4, dtype=np.float32)
            if c in "ACGT":
                want["ACGT".index(c)] = 1
            np.testing.assert_array_equal(x[i, :, j], want)
    assert x[0, :, 4].sum() == 0 and x[1, :, :2].sum() == 0


def test_model_shapes_parameters_and_global_rng():
    state = torch.random.get_rng_state()
    model = OneHotCNN(5, channels=8, kernel_size=3, layers=2, seed=3)
    assert torch.equal(state, torch.random.get_rng_state())  # seeded init leaves the global RNG alone
    assert model.receptive_field == 1 + 2 * (1 + 2)
    assert f"{model.parameter_count():,} parameters" in model.describe()
    # 4*8*3+8 conv, 2*8 BN, 8*8*3+8 conv, 2*8 BN, 16*5+5 head
    assert model.parameter_count() == (4 * 8 * 3 + 8) + 16 + (8 * 8 * 3 + 8) + 16 + (16 * 5 + 5)
    model.eval()
    for length in (7, 40):  # global pooling: any length
        assert model(torch.zeros(2, 4, length)).shape == (2, 5)
    no_bn = OneHotCNN(5, channels=8, kernel_size=3, layers=2, batch_norm=False)
    assert no_bn.parameter_count() == model.parameter_count() - 32


# --------------------------------------------------------------------------------------------------
# Seeds
# --------------------------------------------------------------------------------------------------
def test_same_seed_same_numbers_other_seed_other_weights():
    train, valid, test = random_task(96, 5), random_task(32, 6), random_task(40, 7)
    a = train_cnn(train, valid, num_classes=4, settings=SMALL, seed=1, device="cpu", channels=16)
    b = train_cnn(train, valid, num_classes=4, settings=SMALL, seed=1, device="cpu", channels=16)
    c = train_cnn(train, valid, num_classes=4, settings=SMALL, seed=2, device="cpu", channels=16)
    np.testing.assert_array_equal(predict_proba_cnn(a, test[0]), predict_proba_cnn(b, test[0]))
    assert a.history.equals(b.history) and a.best_step == b.best_step
    wa, wc = a.model.blocks[0][0].weight, c.model.blocks[0][0].weight
    assert not torch.equal(wa, wc)
    assert not np.allclose(predict_proba_cnn(a, test[0]), predict_proba_cnn(c, test[0]))
    init1, init2 = OneHotCNN(4, seed=1), OneHotCNN(4, seed=2)
    assert not torch.equal(init1.head.weight, init2.head.weight)
    assert torch.equal(init1.head.weight, OneHotCNN(4, seed=1).head.weight)


def test_tune_and_grid():
    train, valid, test = random_task(64, 8), random_task(32, 9), random_task(24, 10)
    res = tune_cnn(train, valid, num_classes=4, lrs=(1e-4, 1e-2), settings=SMALL, seed=0, device="cpu", channels=8)
    t = res.tuning
    assert t.lr.tolist() == [1e-4, 1e-2]
    assert res.lr == t.lr[int(t.best_eval_loss.values.argmin())]
    assert res.best_eval_loss == t.best_eval_loss.min()
    runs, items = cnn_grid(train, valid, test, num_classes=4, seeds=[0, 1], settings=SMALL, device="cpu",
                           channels=8, nt_per_class=2)
    assert runs.seed.tolist() == [0, 1] and set(runs.model) == {"one-hot CNN"}
    assert len(items) == 2 * 24
    for seed, grp in items.groupby("seed"):
        row = runs[runs.seed == seed].iloc[0]
        assert grp.accuracy.mean() == pytest.approx(row.accuracy)
        assert grp.bits.mean() == pytest.approx(row.bits)  # bits per nucleotide: both divided by nt_per_class
    # the grid's seed-0 run is train_cnn's seed-0 run
    alone = train_cnn(train, valid, num_classes=4, settings=SMALL, seed=0, device="cpu", channels=8)
    assert runs.best_eval_loss.iloc[0] == alone.best_eval_loss


# --------------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("train, valid, kwargs, match", [
    ((["ACGT", "ACGA"], [0, 2]), (["ACGT"], [0]), {}, "train labels must lie in 0..1"),
    ((["ACGT", "ACGA"], [0, -1]), (["ACGT"], [0]), {}, "train labels"),
    ((["ACGT", "ACGA"], [0, 1]), (["ACGT"], [5]), {}, "valid labels"),
    (([], []), (["ACGT"], [0]), {}, "train sequences is empty"),
    ((["ACGT", "ACGA"], [0, 1]), ([], []), {}, "valid sequences is empty"),
    ((["ACGT", "ACG"], [0, 1]), (["ACGT"], [0]), {}, "different lengths"),
    ((["ACGT", "ACGA"], [0]), (["ACGT"], [0]), {}, "train: 2 sequences but labels"),
    ((["ACGT", "AC#A"], [0, 1]), (["ACGT"], [0]), {}, "position 2 holds '#'"),
    ((["ACGT", "ACGA"], [0, 1]), (["ACGT"], [0]), {"lr": -1.0}, "lr="),
    ((["ACGT", "ACGA"], [0, 1]), (["ACGT"], [0]), {"num_classes": 1}, "num_classes"),
])
def test_bad_input_is_refused(train, valid, kwargs, match):
    kwargs = {"num_classes": 2, "settings": SMALL, "device": "cpu", **kwargs}
    with pytest.raises(ParameterError, match=match):
        train_cnn(train, valid, **kwargs)


def test_bad_input_elsewhere():
    with pytest.raises(ParameterError, match="lrs is empty"):
        tune_cnn((["ACGT"], [0]), (["ACGT"], [0]), num_classes=2, lrs=())
    with pytest.raises(ParameterError, match="seeds is empty"):
        cnn_grid((["ACGT"], [0]), (["ACGT"], [0]), (["ACGT"], [0]), num_classes=2, seeds=[])
    with pytest.raises(ParameterError, match="not one str"):
        one_hot("ACGT")
    res = train_cnn((["ACGT", "ACGA"], [0, 1]), (["ACGT"], [0]), num_classes=2, settings=SMALL, device="cpu",
                    channels=4)
    with pytest.raises(ParameterError, match="test labels must lie in 0..1"):
        cnn_run_row(res, (["ACGT"], [3]))
    assert math.isfinite(res.best_eval_loss)
