"""A one-hot convolutional network trained from scratch: the no-pre-training, no-tokenizer baseline.

Tang & Koo (Genome Biology 2025) found that embeddings of pre-trained DNA language models rarely beat a
one-hot CNN trained from scratch on the same task. This module is that baseline, trained on the same splits
and with the same step budget as fine-tuning (``finetuning.FinetuneSettings``), so a chapter can put it in
the same tables as ``finetune_runs.run_grid`` and pair it item by item.

* :func:`one_hot` -- sequences -> (n, 4, L) float32, channels A, C, G, T (``codec`` order); N and the other
  IUPAC ambiguity letters are all-zero columns;
* :class:`OneHotCNN` -- dilated Conv1d blocks (BatchNorm, ReLU, residual after the first), global max and mean
  pooling, a linear head; seeded initialisation;
* :class:`EarlyStopping` -- the early-stopping rule (re-exported from ``training_loop``);
* :func:`train_cnn` -- AdamW, warm-up then linear decay (as ``finetuning.finetune``), validation every
  ``eval_steps`` steps, early stopping, the best checkpoint restored; :func:`tune_cnn` picks the learning rate
  by best validation loss;
* :func:`predict_proba_cnn`, :func:`cnn_run_row` (a run_grid-shaped row and per-item test scores) and
  :func:`cnn_grid` (one run per seed).

Splits are ``(seqs, labels)`` pairs: a list of str (all of one length within a split; splits may differ in
length, the pooling is global) and (n,) integer labels in 0..num_classes-1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from .classification_metrics import item_scores, multiclass_metrics, score_predictions
from .codec import INVALID, encode
from .errors import ParameterError, check_int_range
from .finetuning import FinetuneSettings
from .training_loop import EarlyStopping, train_loop

MODEL_NAME = "one-hot CNN"
INIT = "random"
TOKENIZATION = "one-hot nucleotides (no tokenizer)"
DEFAULT_LRS = (3e-4, 1e-3, 3e-3, 1e-2)


# --------------------------------------------------------------------------------------------------
# Input
# --------------------------------------------------------------------------------------------------
def sequence_codes(seqs: Sequence[str], *, name: str = "seqs") -> np.ndarray:
    """(n, L) uint8 codec codes (A, C, G, T = 0..3, N = 4, other IUPAC = 5) of ``seqs``, all of one length L.

    ParameterError naming ``name`` for an empty list, sequences of different lengths, an empty sequence or a
    character that is not a nucleotide letter."""
    if isinstance(seqs, (str, bytes)):
        raise ParameterError(f"{name} must be a list of sequences, not one {type(seqs).__name__}.")
    seqs = list(seqs)
    if not seqs:
        raise ParameterError(f"{name} is empty: pass at least one sequence.")
    lengths = {len(s) for s in seqs}
    if len(lengths) > 1:
        lo, hi = min(lengths), max(lengths)
        first = next(i for i, s in enumerate(seqs) if len(s) != len(seqs[0]))
        raise ParameterError(f"{name}: sequences have different lengths ({lo}..{hi} nt; sequence {first} has "
                             f"{len(seqs[first])}, sequence 0 {len(seqs[0])}); the one-hot CNN takes one length per "
                             f"split: cut or pad them to one length.")
    if 0 in lengths:
        raise ParameterError(f"{name}: sequences are empty; pass sequences of at least one nucleotide.")
    codes = np.stack([encode(s) for s in seqs])
    bad = np.argwhere(codes == INVALID)
    if bad.size:
        i, j = bad[0]
        raise ParameterError(f"{name}: sequence {i} position {j} holds {seqs[i][j]!r}, not a nucleotide letter; "
                             f"use A, C, G, T, N or IUPAC codes.")
    return codes


def codes_to_one_hot(codes):
    """(n, 4, L) float32 torch tensor from (n, L) codec codes (numpy or torch, any device): code c in 0..3 sets
    channel c; codes >= 4 (N, ambiguity) give an all-zero column."""

    codes = torch.as_tensor(np.asarray(codes) if not torch.is_tensor(codes) else codes).long()
    out = torch.nn.functional.one_hot(codes.clamp(max=4), num_classes=5)[..., :4]
    return out.permute(0, 2, 1).float().contiguous()


def one_hot(seqs: Sequence[str]) -> np.ndarray:
    """(n, 4, L) float32 one-hot of ``seqs`` (channels A, C, G, T; N and other ambiguity letters all zero)."""
    return codes_to_one_hot(sequence_codes(seqs)).numpy()


def _check_split(part, num_classes: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(codes (n, L) uint8, labels (n,) int64) of a (seqs, labels) split, checked."""
    try:
        seqs, labels = part
    except (TypeError, ValueError):
        raise ParameterError(f"{name} must be a (seqs, labels) pair.") from None
    codes = sequence_codes(seqs, name=f"{name} sequences")
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.size != len(codes):
        raise ParameterError(f"{name}: {len(codes)} sequences but labels of shape {labels.shape}; pass one label "
                             f"per sequence.")
    if not np.issubdtype(labels.dtype, np.integer):
        if not (np.issubdtype(labels.dtype, np.floating) and np.all(labels == np.round(labels))):
            raise ParameterError(f"{name} labels must be integers 0..{num_classes - 1}.")
    labels = labels.astype(np.int64)
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ParameterError(f"{name} labels must lie in 0..{num_classes - 1} (num_classes={num_classes}); got "
                             f"{labels.min()}..{labels.max()}.")
    return codes, labels


# --------------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------------
class OneHotCNN(nn.Module):
    """Input (batch, 4, L) one-hot float -> (batch, num_classes) logits.

    ``layers`` blocks of Conv1d(kernel_size, dilation = dilation_growth**i, 'same' zero padding) ->
    BatchNorm1d (``batch_norm``) -> ReLU, the first from 4 to ``channels`` channels, each later one
    residual (x + block(x)); then the global max and the global mean over positions, concatenated
    (2 * channels), and a linear head. Receptive field 1 + (kernel_size - 1) * sum of the dilations
    (57 nt with the defaults). No dropout (nothing random at training time but the data order).
    Weights initialised by PyTorch's default rule under ``torch.manual_seed(seed)`` inside a forked RNG
    (the global torch RNG is left untouched). This module imports torch when it is imported.
    """

    def __init__(self, num_classes: int, *, channels: int = 64, kernel_size: int = 9, layers: int = 3,
                 dilation_growth: int = 2, batch_norm: bool = True, seed: int = 0):
        super().__init__()
        self.num_classes = check_int_range("num_classes", num_classes, 2)
        self.channels = check_int_range("channels", channels, 1)
        self.kernel_size = check_int_range("kernel_size", kernel_size, 1)
        self.layers = check_int_range("layers", layers, 1)
        self.dilation_growth = check_int_range("dilation_growth", dilation_growth, 1)
        self.batch_norm = bool(batch_norm)
        seed = check_int_range("seed", seed, 0)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            blocks = []
            for i in range(self.layers):
                conv = nn.Conv1d(4 if i == 0 else channels, channels, kernel_size,
                                 dilation=dilation_growth**i, padding="same")
                parts = [conv] + ([nn.BatchNorm1d(channels)] if batch_norm else []) + [nn.ReLU()]
                blocks.append(nn.Sequential(*parts))
            self.blocks = nn.ModuleList(blocks)
            self.head = nn.Linear(2 * channels, num_classes)

    @property
    def receptive_field(self) -> int:
        """Nucleotides one output position of the last block sees."""
        return 1 + (self.kernel_size - 1) * sum(self.dilation_growth**i for i in range(self.layers))

    def forward(self, x):
        h = self.blocks[0](x)
        for block in self.blocks[1:]:
            h = h + block(h)
        pooled = (h.amax(dim=2), h.mean(dim=2))
        return self.head(torch.cat(pooled, dim=1))

    def parameter_count(self) -> int:
        return int(sum(p.numel() for p in self.parameters()))

    def describe(self) -> str:
        """One sentence: the architecture and its parameter count."""
        dil = ", ".join(str(self.dilation_growth**i) for i in range(self.layers))
        norm = "BatchNorm, " if self.batch_norm else ""
        return (f"one-hot CNN: {self.layers} Conv1d blocks of {self.channels} channels (kernel {self.kernel_size}, "
                f"dilations {dil}; {norm}ReLU; residual after the first), receptive field {self.receptive_field} nt, "
                f"global max + mean pooling, linear head to {self.num_classes} classes; "
                f"{self.parameter_count():,} parameters.")


# --------------------------------------------------------------------------------------------------
# Early stopping
# --------------------------------------------------------------------------------------------------
# --------------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------------
@dataclass
class CNNResult:
    """A trained one-hot CNN (restored to its best validation step, eval mode, on ``device``) and its run.

    ``history``: DataFrame step, train_loss (mean cross-entropy in nats over the steps since the previous
    evaluation), eval_loss (mean validation cross-entropy, nats). ``best_eval_loss`` is the validation loss
    of the returned model. ``tuning``: with :func:`tune_cnn`, one row per learning rate tried
    (lr, best_eval_loss, best_step, steps, stopped_early, train_s), else None."""

    model: object
    num_classes: int
    seed: int
    lr: float
    history: object
    best_step: int
    best_eval_loss: float
    steps: int
    stopped_early: bool
    train_s: float
    n_train: int
    n_valid: int
    settings: FinetuneSettings
    device: object
    tuning: object = None
    architecture: dict = field(default_factory=dict)

    @property
    def parameters(self) -> int:
        return int(sum(p.numel() for p in self.model.parameters()))


def _mean_loss(model, codes, labels, batch_size: int) -> float:
    """Mean cross-entropy (nats) of ``model`` (eval mode) over (codes, labels) torch tensors on its device."""

    model.eval()
    total = 0.0
    with torch.no_grad():
        for lo in range(0, len(labels), batch_size):
            logits = model(codes_to_one_hot(codes[lo:lo + batch_size]))
            total += float(torch.nn.functional.cross_entropy(logits.float(), labels[lo:lo + batch_size],
                                                             reduction="sum"))
    return total / len(labels)


def train_cnn(train, valid, *, num_classes: int, settings: FinetuneSettings | None = None, seed: int = 0,
              device: str = "auto", lr: float | None = None, channels: int = 64, kernel_size: int = 9,
              layers: int = 3, dilation_growth: int = 2, batch_norm: bool = True,
              min_delta: float = 0.0) -> CNNResult:
    """Train a :class:`OneHotCNN` from scratch on ``train`` = (seqs, labels), early-stopped on ``valid``.

    The budget is ``settings``' (``finetuning.FinetuneSettings``): at most ``max_steps`` AdamW steps of
    ``batch_size`` sequences (weight decay ``weight_decay``; peak learning rate ``lr``, default
    ``settings.learning_rate``; linear warm-up over ``warmup_ratio * max_steps`` steps then linear decay),
    validation loss every ``eval_steps`` steps and after the last step, :class:`EarlyStopping` with
    ``patience`` (and ``min_delta``). The weights at the best validation step are restored. Seeded: weights
    (``seed``) and data order (``numpy.default_rng(seed)``, a fresh permutation per pass). Float32 on the
    device (``models.pick_device``: CUDA when present). Returns a :class:`CNNResult`.
    """
    from .models import pick_device

    num_classes = check_int_range("num_classes", num_classes, 2)
    seed = check_int_range("seed", seed, 0)
    s = settings or FinetuneSettings()
    if not isinstance(s, FinetuneSettings):
        raise ParameterError(f"settings must be a finetuning.FinetuneSettings, got {type(s).__name__}.")
    lr = s.learning_rate if lr is None else lr
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not (lr > 0 and math.isfinite(lr)):
        raise ParameterError(f"lr={lr!r} must be a positive number (the peak AdamW learning rate).")
    tr_codes, tr_labels = _check_split(train, num_classes, "train")
    va_codes, va_labels = _check_split(valid, num_classes, "valid")
    dev = pick_device(device)
    arch = dict(channels=channels, kernel_size=kernel_size, layers=layers, dilation_growth=dilation_growth,
                batch_norm=batch_norm)
    model = OneHotCNN(num_classes, seed=seed, **arch).to(dev)
    Xtr = torch.from_numpy(tr_codes).to(dev)
    ytr = torch.from_numpy(tr_labels).to(dev)
    Xva = torch.from_numpy(va_codes).to(dev)
    yva = torch.from_numpy(va_labels).to(dev)

    def train_loss(idx):
        idx = torch.from_numpy(idx).to(dev)
        return torch.nn.functional.cross_entropy(model(codes_to_one_hot(Xtr[idx])), ytr[idx])

    run = train_loop(model, n_train=len(ytr), train_loss=train_loss,
                     valid_loss=lambda: _mean_loss(model, Xva, yva, s.eval_batch_size), max_steps=s.max_steps,
                     batch_size=s.batch_size, eval_steps=s.eval_steps, patience=s.patience, lr=float(lr),
                     weight_decay=s.weight_decay, warmup_ratio=s.warmup_ratio, seed=seed, device=dev,
                     min_delta=min_delta)
    if run.best_step is None:  # every validation loss was NaN: the last weights are kept, say so
        best_step, best_loss = run.steps, float("nan")
    else:
        best_step, best_loss = run.best_step, run.best_eval_loss
    return CNNResult(model=model, num_classes=num_classes, seed=seed, lr=float(lr), history=run.history,
                     best_step=int(best_step), best_eval_loss=float(best_loss), steps=run.steps,
                     stopped_early=run.stopped_early, train_s=run.train_s, n_train=len(ytr), n_valid=len(yva),
                     settings=s, device=dev, architecture=arch)


def tune_cnn(train, valid, *, num_classes: int, lrs: Sequence[float] = DEFAULT_LRS,
             settings: FinetuneSettings | None = None, seed: int = 0, device: str = "auto", **kwargs) -> CNNResult:
    """Train one CNN per peak learning rate in ``lrs`` (same seed, settings and data; ``kwargs`` go to
    :func:`train_cnn`) and return the one with the lowest best validation loss (ties: the earlier in
    ``lrs``). Its ``tuning`` holds every learning rate's row; its ``train_s`` is the time of all of them."""
    import pandas as pd

    lrs = list(lrs)
    if not lrs:
        raise ParameterError("lrs is empty: pass at least one learning rate, e.g. (3e-4, 1e-3, 3e-3).")
    best, rows = None, []
    for lr in lrs:
        res = train_cnn(train, valid, num_classes=num_classes, settings=settings, seed=seed, device=device, lr=lr,
                        **kwargs)
        rows.append({"lr": res.lr, "best_eval_loss": res.best_eval_loss, "best_step": res.best_step,
                     "steps": res.steps, "stopped_early": res.stopped_early, "train_s": res.train_s})
        if best is None or res.best_eval_loss < best.best_eval_loss:
            best = res
    best.tuning = pd.DataFrame(rows)
    best.train_s = float(sum(r["train_s"] for r in rows))
    return best


# --------------------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------------------
def predict_proba_cnn(result: CNNResult, seqs: Sequence[str], *, batch_size: int = 256) -> np.ndarray:
    """(n, num_classes) float64 class probabilities of ``result``'s model for ``seqs`` (one length)."""

    batch_size = check_int_range("batch_size", batch_size, 1)
    codes = torch.from_numpy(sequence_codes(seqs))
    model = result.model
    model.eval()
    out = []
    with torch.no_grad():
        for lo in range(0, len(codes), batch_size):
            logits = model(codes_to_one_hot(codes[lo:lo + batch_size].to(result.device)))
            out.append(torch.softmax(logits.float(), dim=-1).double().cpu().numpy())
    return np.concatenate(out)


def cnn_run_row(result: CNNResult, test, *, score: Callable | None = None, nt_per_class: int = 1, valid=None):
    """Score ``result`` on ``test`` = (seqs, labels): ``(row, items)``. A score with ``needs_validation``
    (``classification_metrics.ValidatedBinaryScore``) also gets the predictions on ``valid`` = (seqs, labels).

    ``row`` is shaped like a ``finetune_runs.run_grid`` row: model ("one-hot CNN"), init ("random"), seed, the
    keys of ``score(probs, labels)`` (default ``classification_metrics.multiclass_metrics`` with
    ``nt_per_class``; pass ``binary_metrics`` for MCC / AUROC; a custom score divides its own bits), best_step, steps, stopped_early, best_eval_loss, train_s,
    tokenization, parameters, n_train, n_valid, cached (False), and lr (the peak learning rate used).
    ``items``: DataFrame model, init, seed, item (index in ``test``), accuracy (1 right, 0 wrong), bits
    (-log2 p(true class) / ``nt_per_class``), the items of a paired comparison with fine-tuned runs."""
    import pandas as pd

    codes, labels = _check_split(test, result.num_classes, "test")
    probs = predict_proba_cnn(result, test[0], batch_size=result.settings.eval_batch_size)
    if score is None:
        def score(p, y):
            return multiclass_metrics(p, y, nt_per_class=nt_per_class)
    labels_ = {"model": MODEL_NAME, "init": INIT, "seed": int(result.seed)}
    scores = score_predictions(score, probs, labels, valid=None if valid is None else lambda: (
        predict_proba_cnn(result, valid[0], batch_size=result.settings.eval_batch_size), np.asarray(valid[1])))
    row = {**labels_, **scores, "best_step": result.best_step, "steps": result.steps,
           "stopped_early": result.stopped_early, "best_eval_loss": result.best_eval_loss,
           "train_s": round(result.train_s, 2), "tokenization": TOKENIZATION, "parameters": result.parameters,
           "n_train": result.n_train, "n_valid": result.n_valid, "cached": False, "lr": result.lr}
    correct, bits = item_scores(probs, labels, nt_per_class=nt_per_class)
    items = pd.DataFrame({**labels_, "item": np.arange(len(labels)), "accuracy": correct, "bits": bits,
                          **({"p1": probs[:, 1]} if probs.shape[1] == 2 else {})})
    return row, items


def cnn_grid(train, valid, test, *, num_classes: int, seeds: Sequence[int], settings: FinetuneSettings | None = None,
             lrs: Sequence[float] | None = None, score: Callable | None = None, nt_per_class: int = 1,
             device: str = "auto", progress: bool = False, **kwargs):
    """One one-hot CNN per seed on the same splits: ``(runs, items)`` DataFrames (rows of :func:`cnn_run_row`,
    concatenable with ``run_grid(..., with_items=True)``). ``lrs``: tune the learning rate per seed on
    validation (:func:`tune_cnn`); None trains at ``settings.learning_rate``. ``kwargs`` go to
    :func:`train_cnn` (architecture, min_delta)."""
    import pandas as pd
    from tqdm.auto import tqdm

    seeds = [check_int_range("seed", s, 0) for s in seeds]
    if not seeds:
        raise ParameterError("seeds is empty: pass at least one seed (e.g. [0, 1, 2]).")
    rows, items = [], []
    for seed in tqdm(seeds, desc=MODEL_NAME, unit="run", disable=not progress):
        if lrs is None:
            res = train_cnn(train, valid, num_classes=num_classes, settings=settings, seed=seed, device=device, **kwargs)
        else:
            res = tune_cnn(train, valid, num_classes=num_classes, lrs=lrs, settings=settings, seed=seed,
                           device=device, **kwargs)
        row, it = cnn_run_row(res, test, score=score, nt_per_class=nt_per_class, valid=valid)
        rows.append(row)
        items.append(it)
        del res
    return pd.DataFrame(rows), pd.concat(items, ignore_index=True)


__all__ = [
    "MODEL_NAME", "DEFAULT_LRS", "sequence_codes", "codes_to_one_hot", "one_hot", "OneHotCNN", "EarlyStopping",
    "CNNResult", "train_cnn", "tune_cnn", "predict_proba_cnn", "cnn_run_row", "cnn_grid",
]
