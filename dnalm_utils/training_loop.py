"""The package's one supervised training loop: what every fine-tuned classifier and every from-scratch baseline
is trained with.

* :class:`EarlyStopping` -- the stopping rule on a validation loss (transformers' ``EarlyStoppingCallback`` rule);
* :func:`lr_factor` -- linear warm-up then linear decay to 0 (transformers' linear schedule);
* :func:`index_batches` -- seeded, endless stream of full index batches (a fresh permutation per pass);
* :func:`train_loop` -- AdamW (fused on CPU and CUDA) at a peak learning rate, the schedule above, the validation
  loss every ``eval_steps`` steps and after the last step, early stopping, and the weights of the best validation
  step kept in memory and restored at the end (no checkpoint is written to disk).

The loop knows nothing about the model: the caller passes ``train_loss(idx) -> loss tensor`` (a batch of
training examples by index) and ``valid_loss() -> float``. Both run under bf16 autocast when ``amp`` is set
(``models.autocast``: CPU, and CUDA GPUs that support bf16); the weights and the optimiser stay float32.
Reproducible: the data order comes from ``numpy.random.default_rng(seed)`` and torch's generator is seeded with
``seed`` before the first step (dropout), so the same seed on the same device gives the same weights.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .errors import ParameterError, check_int_range


class EarlyStopping:
    """Early stopping on a validation loss (lower is better), independent of any training loop.

    Call :meth:`update` after each evaluation. An evaluation improves when its loss is strictly lower than
    ``best_loss - min_delta`` (the first finite loss always improves; NaN never does); it then becomes the
    best (``best_step``, ``best_loss``) and the count of non-improving evaluations resets to 0. ``update``
    returns True (stop) at the FIRST evaluation that makes ``patience`` consecutive non-improving evaluations,
    the rule of transformers' ``EarlyStoppingCallback``; after that ``stopped`` is True and further updates
    keep returning True without changing the best.
    """

    def __init__(self, patience: int, min_delta: float = 0.0):
        self.patience = check_int_range("patience", patience, 1, hint="Evaluations without improvement before stopping.")
        if not (isinstance(min_delta, (int, float)) and math.isfinite(min_delta) and min_delta >= 0):
            raise ParameterError(f"min_delta={min_delta!r} must be a finite number >= 0.")
        self.min_delta = float(min_delta)
        self.best_step: int | None = None
        self.best_loss: float = math.inf
        self.bad_evals = 0
        self.stopped = False
        self.stop_step: int | None = None

    def update(self, step: int, valid_loss: float) -> bool:
        """Record the validation loss at ``step``; True when training should stop now."""
        if self.stopped:
            return True
        loss = float(valid_loss)
        if not math.isnan(loss) and loss < self.best_loss - self.min_delta:
            self.best_loss, self.best_step, self.bad_evals = loss, int(step), 0
            return False
        self.bad_evals += 1
        if self.bad_evals >= self.patience:
            self.stopped, self.stop_step = True, int(step)
        return self.stopped

    @property
    def improved(self) -> bool:
        """True when the last update set a new best."""
        return self.bad_evals == 0 and self.best_step is not None


def lr_factor(step: int, warmup: int, max_steps: int) -> float:
    """Multiplier of the peak learning rate at optimisation step ``step`` (0-based): linear warm-up over
    ``warmup`` steps, then linear decay to 0 at ``max_steps`` (transformers' linear schedule)."""
    if step < warmup:
        return (step + 1) / (warmup + 1) if warmup else 1.0
    return max(0.0, (max_steps - step) / max(1, max_steps - warmup))


def index_batches(n: int, batch_size: int, rng):
    """Endless stream of (batch_size,) int64 index batches into 0..n-1: a fresh permutation per pass, cut into
    ``batch_size`` pieces; a pass's last short piece is topped up from the next permutation (every batch is
    full, every example is seen once per pass up to that top-up)."""
    buf = np.empty(0, dtype=np.int64)
    while True:
        while buf.size < batch_size:
            buf = np.concatenate([buf, rng.permutation(n)])
        yield buf[:batch_size]
        buf = buf[batch_size:]


@dataclass
class LoopResult:
    """How a :func:`train_loop` run went. ``history``: DataFrame step, train_loss (mean training loss since the
    previous evaluation), eval_loss (the validation loss at that step); ``best_step`` / ``best_eval_loss``: the
    evaluation whose weights the model holds now (``best_step`` None when every validation loss was NaN: the
    last weights are kept); ``steps``: optimisation steps taken; ``stopped_early``: fewer than ``max_steps``;
    ``train_s``: wall-clock seconds of the loop."""

    history: object
    best_step: int | None
    best_eval_loss: float | None
    steps: int
    stopped_early: bool
    train_s: float


def train_loop(model, *, n_train: int, train_loss: Callable, valid_loss: Callable[[], float], max_steps: int,
               batch_size: int, eval_steps: int, patience: int, lr: float, weight_decay: float = 0.0,
               warmup_ratio: float = 0.0, seed: int = 0, device=None, amp: bool = False,
               min_delta: float = 0.0) -> LoopResult:
    """Train ``model`` (a torch module, float32, on ``device``) in place and restore its best validation weights.

    ``train_loss(idx)``: the mean loss (a scalar tensor with a graph) of the training examples ``idx``, a
    (batch_size,) int64 numpy array from :func:`index_batches`; called with the model in training mode.
    ``valid_loss()``: the validation loss (float), called with the model in eval mode under ``torch.no_grad``.
    Budget: at most ``max_steps`` AdamW steps (peak ``lr``, ``weight_decay``; linear warm-up over
    ``round(warmup_ratio * max_steps)`` steps then linear decay), validation every ``eval_steps`` steps and
    after the last one, :class:`EarlyStopping` with ``patience`` and ``min_delta``. ``amp``: both callables run
    under bf16 autocast (``models.autocast(device)``)."""
    import pandas as pd
    import torch

    from .models import autocast

    n_train = check_int_range("n_train", n_train, 1)
    for name, value in (("max_steps", max_steps), ("batch_size", batch_size), ("eval_steps", eval_steps)):
        check_int_range(name, value, 1)
    seed = check_int_range("seed", seed, 0)
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not (lr > 0 and math.isfinite(lr)):
        raise ParameterError(f"lr={lr!r} must be a positive number (the peak AdamW learning rate).")
    device = device if device is not None else next(model.parameters()).device
    stopper = EarlyStopping(patience, min_delta)
    fused = device.type in ("cpu", "cuda")
    opt = torch.optim.AdamW(model.parameters(), lr=float(lr), weight_decay=weight_decay, fused=fused)
    warmup = int(round(warmup_ratio * max_steps))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda st: lr_factor(st, warmup, max_steps))
    order = index_batches(n_train, batch_size, np.random.default_rng(seed))
    precision = (lambda: autocast(device)) if amp else contextlib.nullcontext
    torch.manual_seed(seed)
    best_state = copy.deepcopy(model.state_dict())
    rows, running, n_run, step = [], 0.0, 0, 0
    t0 = time.time()
    while step < max_steps:
        model.train()
        with precision():
            loss = train_loss(next(order))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        step += 1
        running += float(loss.detach())
        n_run += 1
        if step % eval_steps == 0 or step == max_steps:
            model.eval()
            with torch.no_grad(), precision():
                eval_loss = float(valid_loss())
            rows.append({"step": step, "train_loss": running / n_run, "eval_loss": eval_loss})
            running, n_run = 0.0, 0
            stop = stopper.update(step, eval_loss)
            if stopper.improved:
                best_state = copy.deepcopy(model.state_dict())
            if stop:
                break
    wall = time.time() - t0
    if stopper.best_step is not None:  # else every validation loss was NaN: keep the last weights
        model.load_state_dict(best_state)
    model.eval()
    return LoopResult(history=pd.DataFrame(rows, columns=["step", "train_loss", "eval_loss"]),
                      best_step=stopper.best_step,
                      best_eval_loss=None if stopper.best_step is None else float(stopper.best_loss),
                      steps=step, stopped_early=step < max_steps, train_s=wall)


__all__ = ["EarlyStopping", "lr_factor", "index_batches", "LoopResult", "train_loop"]
