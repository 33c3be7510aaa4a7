"""The one training loop (dnalm_utils.training_loop): early stopping stops at the first of ``patience``
non-improving evaluations, the schedule is transformers' linear one, batches cover every example once per pass,
the returned model holds the best validation step's weights, and the same seed gives the same weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dnalm_utils.errors import ParameterError
from dnalm_utils.training_loop import EarlyStopping, index_batches, lr_factor, train_loop


# --------------------------------------------------------------------------------------------------
# Early stopping
# --------------------------------------------------------------------------------------------------
def run_stopper(losses, patience, min_delta=0.0):
    es = EarlyStopping(patience, min_delta)
    for i, loss in enumerate(losses):
        if es.update((i + 1) * 10, loss):
            return es, (i + 1) * 10
    return es, None


@pytest.mark.parametrize("patience", [1, 2, 3, 5])
def test_early_stopping_stops_at_first_of_patience_bad_evals(patience):
    losses = [1.0, 0.8, 0.6] + [0.7] * 10
    es, stop = run_stopper(losses, patience)
    assert stop == (3 + patience) * 10  # the patience-th non-improving evaluation after the best (step 30)
    assert (es.best_step, es.best_loss) == (30, 0.6)
    assert es.stopped and es.stop_step == stop
    assert es.update(999, 0.0) and es.best_step == 30  # stays stopped, best unchanged


def test_early_stopping_counter_resets_on_improvement():
    # two bad, one better, two bad: patience 3 never reached consecutively until the end
    es, stop = run_stopper([1.0, 1.1, 1.2, 0.9, 1.0, 1.0, 1.0], 3)
    assert stop == 70 and es.best_step == 40
    es, stop = run_stopper([1.0, 1.1, 1.2, 0.9, 1.0, 1.0], 3)
    assert stop is None and not es.stopped and es.bad_evals == 2


def test_early_stopping_never_stops_while_improving():
    es, stop = run_stopper(list(np.linspace(5, 0.1, 200)), 1)
    assert stop is None and es.best_step == 2000 and es.bad_evals == 0


def test_early_stopping_ties_and_min_delta():
    # an equal loss is no improvement
    es, stop = run_stopper([1.0, 1.0], 1)
    assert stop == 20 and es.best_step == 10
    # improvements smaller than (or equal to) min_delta do not count; larger ones do
    es, stop = run_stopper([1.0, 0.95, 0.9, 0.85], 2, min_delta=0.1)
    assert stop == 30 and es.best_step == 10
    es, stop = run_stopper([1.0, 0.85, 0.7, 0.55], 2, min_delta=0.1)
    assert stop is None and es.best_step == 40
    # a NaN loss never improves
    es, stop = run_stopper([float("nan"), 2.0, float("nan")], 2)
    assert stop is None and es.best_step == 20


def test_early_stopping_bad_parameters():
    with pytest.raises(ParameterError, match="patience"):
        EarlyStopping(0)
    with pytest.raises(ParameterError, match="min_delta"):
        EarlyStopping(2, min_delta=-0.1)


# --------------------------------------------------------------------------------------------------
# Schedule and batches
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("warmup,max_steps", [(0, 50), (5, 50), (10, 37)])
def test_lr_factor_is_transformers_linear_schedule(warmup, max_steps):
    from transformers import get_linear_schedule_with_warmup

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = get_linear_schedule_with_warmup(opt, warmup, max_steps)
    theirs = []
    for _ in range(max_steps):
        theirs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    ours = [lr_factor(st, warmup, max_steps) for st in range(max_steps)]
    if warmup:  # transformers starts its warm-up at 0; ours at 1 / (warmup + 1), so step 0 already learns
        assert ours[0] == pytest.approx(1 / (warmup + 1)) and theirs[0] == 0
        np.testing.assert_allclose(ours[warmup:], theirs[warmup:])
        assert all(np.diff(ours[: warmup + 1]) > 0)
    else:
        np.testing.assert_allclose(ours, theirs)


def test_index_batches_cover_every_example_once_per_pass():
    gen = index_batches(10, 4, np.random.default_rng(0))
    first = np.concatenate([next(gen) for _ in range(5)])  # 20 indices = two passes exactly
    assert all(len(b) == 4 for b in [first[i:i + 4] for i in range(0, 20, 4)])
    assert sorted(first[:10]) == list(range(10)) and sorted(first[10:]) == list(range(10))
    again = index_batches(10, 4, np.random.default_rng(0))
    assert np.array_equal(np.concatenate([next(again) for _ in range(5)]), first)


# --------------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------------
def _scripted(valid_losses):
    """A linear model and a validation loss that replays ``valid_losses`` (and snapshots the weights each time)."""
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    x, y = torch.randn(40, 3), torch.randint(0, 2, (40,))
    seen = []

    def train_loss(idx):
        idx = torch.from_numpy(idx)
        return torch.nn.functional.cross_entropy(model(x[idx]), y[idx])

    def valid_loss():
        seen.append(model.weight.detach().clone())
        return valid_losses[len(seen) - 1]

    return model, train_loss, valid_loss, seen


def test_loop_stops_early_and_restores_the_best_weights():
    model, train_loss, valid_loss, seen = _scripted([1.0, 0.5, 0.7, 0.8, 0.9, 0.2])
    run = train_loop(model, n_train=40, train_loss=train_loss, valid_loss=valid_loss, max_steps=100, batch_size=8,
                     eval_steps=5, patience=2, lr=0.1)
    assert run.steps == 20 and run.stopped_early and run.best_step == 10 and run.best_eval_loss == 0.5
    assert run.history.step.tolist() == [5, 10, 15, 20] and run.history.eval_loss.tolist() == [1.0, 0.5, 0.7, 0.8]
    assert torch.equal(model.weight, seen[1])  # the weights evaluated at step 10, not the last ones
    assert not torch.equal(seen[1], seen[3]) and not model.training


def test_loop_evaluates_after_the_last_step_and_keeps_last_weights_if_all_nan():
    model, train_loss, valid_loss, seen = _scripted([float("nan")] * 3)
    run = train_loop(model, n_train=40, train_loss=train_loss, valid_loss=valid_loss, max_steps=12, batch_size=8,
                     eval_steps=5, patience=5, lr=0.1)
    assert run.history.step.tolist() == [5, 10, 12] and not run.stopped_early
    assert run.best_step is None and run.best_eval_loss is None
    assert torch.equal(model.weight, seen[-1])


def test_loop_same_seed_same_weights_other_seed_other_weights():
    def once(seed):
        model, train_loss, valid_loss, _ = _scripted([1.0, 0.9, 0.8, 0.7])
        model.train()
        drop = torch.nn.Dropout(0.5)
        loss = lambda idx: train_loss(idx) + drop(model.weight).sum() * 0.0 + drop(model.bias).abs().mean()  # noqa: E731
        train_loop(model, n_train=40, train_loss=loss, valid_loss=valid_loss, max_steps=20, batch_size=8,
                   eval_steps=5, patience=2, lr=0.1, seed=seed, weight_decay=0.01, warmup_ratio=0.2)
        return model.weight.detach().clone()

    assert torch.equal(once(3), once(3)) and not torch.equal(once(3), once(4))


def test_loop_bad_parameters():
    model, train_loss, valid_loss, _ = _scripted([1.0])
    for kwargs, name in (({"lr": 0.0}, "lr"), ({"max_steps": 0}, "max_steps"), ({"n_train": 0}, "n_train"),
                         ({"patience": 0}, "patience")):
        args = dict(n_train=40, train_loss=train_loss, valid_loss=valid_loss, max_steps=5, batch_size=8,
                    eval_steps=5, patience=2, lr=0.1)
        args.update(kwargs)
        with pytest.raises(ParameterError, match=name):
            train_loop(model, **args)
