"""Fine-tune any DNA language model as a sequence classifier.

* :func:`classification_model` -- a model with a classification head (``adapter.classifier``), either with its
  **pre-trained** weights or re-initialised from the same config (**random** init, the "what did
  pre-training add" control);
* :func:`finetune` -- train it with the package's training loop (``training_loop``): fused AdamW, linear decay
  after a warm-up, the validation loss every ``eval_steps`` steps, early stopping (the rule of transformers'
  ``EarlyStoppingCallback``) and the best weights by validation loss restored at the end. Seeded (head
  initialisation, random init, data order, dropout). CUDA when present (bf16 where supported), CPU otherwise
  (bf16 autocast, which pays on CPUs with AMX). ``benchmarks/bench_finetuning.py`` measures it against a plain
  ``transformers.Trainer``;
* :func:`predict_proba` -- class probabilities of a fine-tuned model;
* :class:`SequenceDataset` / :class:`PadCollator` -- each sequence tokenized and framed alone, padded per batch.

Fine-tuned weights live in memory and are saved only when ``keep_dir`` is given. Grids of runs and their cache: ``finetune_runs``; scores: ``classification_metrics``; the k-mer
baseline: ``kmer_baseline``; biology tasks: ``biotasks``; result tables: ``result_tables``.
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .errors import ParameterError, check_int_range
from .training_loop import train_loop

INITS = ("pretrained", "random")


# --------------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------------
@dataclass
class FinetuneSettings:
    """Optimisation settings shared by every run of a grid."""

    learning_rate: float = 1e-3
    batch_size: int = 64
    max_steps: int = 100
    eval_steps: int = 20
    patience: int = 2  # evaluations without a lower validation loss before stopping
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    eval_batch_size: int = 256
    precision: str = "auto"  # auto: bf16 autocast on CPU and on CUDA GPUs that support it | fp32

    def __post_init__(self):
        for name in ("batch_size", "max_steps", "eval_steps", "eval_batch_size"):
            check_int_range(name, getattr(self, name), 1)
        check_int_range("patience", self.patience, 1, hint="Evaluations without improvement before stopping.")
        if not (isinstance(self.learning_rate, (int, float)) and self.learning_rate > 0):
            raise ParameterError(f"learning_rate={self.learning_rate!r} must be a positive number.")
        if not 0 <= float(self.warmup_ratio) < 1:
            raise ParameterError(f"warmup_ratio={self.warmup_ratio} must lie in [0, 1).")
        if self.precision not in ("auto", "fp32"):
            raise ParameterError(f"precision={self.precision!r}: use 'auto' or 'fp32'.")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _device_flags(device, precision: str) -> dict:
    """use_cpu / bf16 (the TrainingArguments names) on ``device`` (a torch.device) for ``precision``."""
    import torch

    cuda = device.type == "cuda"
    bf16 = precision == "auto" and (not cuda or torch.cuda.is_bf16_supported()) and device.type in ("cpu", "cuda")
    return {"use_cpu": device.type == "cpu", "bf16": bool(bf16)}


def uses_bf16(device, precision: str = "auto") -> bool:
    """Whether runs with ``precision`` ("auto" or "fp32", as :class:`FinetuneSettings`) use bf16 autocast on
    ``device`` (a torch.device): training and scoring of a run share this one rule."""
    return bool(_device_flags(device, precision)["bf16"])


@contextlib.contextmanager
def _quiet_transformers():
    """Silence transformers' warnings (e.g. "newly initialized classifier weights") while loading/training."""
    import warnings

    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        hf_logging.set_verbosity(level)


# --------------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------------
class SequenceDataset:
    """Torch map-style dataset: item i = {input_ids: the framed tokens of seqs[i], labels: labels[i]}.

    Each sequence is tokenized once, by itself (nothing around it is ever tokenized with it), and framed as the
    model family frames it (``tokenizer.frame``; BERT: [CLS] tokens [SEP]); ``encodings[i]`` keeps the token
    ids and their nucleotide spans in ``seqs[i]``. ``max_tokens``: the model's limit on a sequence's tokens
    (``adapter.max_tokens``, specials excluded; None = no limit).
    """

    def __init__(self, tokenizer, seqs: Sequence[str], labels, *, max_tokens: int | None = None):
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        if len(seqs) != labels.size:
            raise ParameterError(f"{len(seqs)} sequences but {labels.size} labels; pass one label per sequence.")
        if len(seqs) == 0:
            raise ParameterError("no sequences given: a dataset needs at least one example.")
        self.tokenizer = tokenizer
        self.encodings = [tokenizer.encode(s, where=f"sequence {i}") for i, s in enumerate(seqs)]
        self.labels = labels
        empty = [i for i, e in enumerate(self.encodings) if len(e) == 0]
        if empty:
            raise ParameterError(f"sequence {empty[0]} gives no token with {tokenizer.description}; use longer sequences.")
        longest = max(len(e) for e in self.encodings)
        if max_tokens is not None and longest > max_tokens:
            raise ParameterError(
                f"sequences give up to {longest} tokens with {tokenizer.description}, more than the model's "
                f"{max_tokens} (special tokens excluded); use shorter sequences."
            )
        self._ids = [tokenizer.frame([e.ids])[0][0] for e in self.encodings]

    def __len__(self) -> int:
        return len(self._ids)

    def __getitem__(self, i: int) -> dict:
        import torch

        return {"input_ids": torch.from_numpy(self._ids[i]), "labels": int(self.labels[i])}


class PadCollator:
    """Right-pads a list of framed items to (batch, longest) with the tokenizer's [PAD] (``tokenizer.pad``);
    attention mask 1 on real tokens; ``labels`` stacked when present."""

    def __init__(self, tokenizer):
        self._tok = tokenizer  # not ".tokenizer": the Trainer would take it for a processing class to save

    def __call__(self, items: list[dict]) -> dict:
        import torch

        ids, att = self._tok.pad([it["input_ids"] for it in items])
        out = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(att)}
        if "labels" in items[0]:
            out["labels"] = torch.tensor([it["labels"] for it in items], dtype=torch.long)
        return out


# --------------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------------
def classification_model(source, num_labels: int, *, init: str = "pretrained", seed: int = 0, models_dir=None,
                         device: str = "auto", load_options: Mapping | None = None):
    """A classification adapter (``adapter.classifier``): ``num_labels`` logits, float32, training mode.

    ``init="pretrained"``: the checkpoint's encoder weights (loaded strictly), the head seeded with ``seed``;
    ``init="random"``: no pre-training, same architecture, vocabulary and tokenizer. For a zoo model it is the
    model's own **step-0 weights** (saved by pre-training before its first step: the same initialisation scheme --
    letter-sum embedding rows, sinusoidal positions -- and seed as its pre-trained twin, so that the twins differ
    in training only); a model without them (a published checkpoint) has every weight re-initialised by its
    family's default scheme (seeded). :func:`random_init_scheme` says which. Families without a classifier raise
    ``adapters.NotApplicable``. ``load_options``: more ``models.load_model`` arguments (``trust_remote_code``,
    ``on_invalid``).
    """
    import torch

    from .models import load_model, pick_device, to_device

    if init not in INITS:
        raise ParameterError(f"init={init!r}: use one of {', '.join(INITS)}.")
    num_labels = check_int_range("num_labels", num_labels, 2)
    seed = check_int_range("seed", seed, 0)
    step0 = step0_folder(source, models_dir=models_dir) if init == "random" else None
    with _quiet_transformers():
        base = load_model(step0 or source, device="cpu", dtype="float32", models_dir=None if step0 else models_dir,
                          **dict(load_options or {}))
        lm = base.classifier(num_labels, init="pretrained" if step0 else init, seed=seed)
    return to_device(lm, pick_device(device), torch.float32, eval_mode=False)


def step0_folder(source, *, models_dir=None) -> Path | None:
    """The step-0 weights folder (``pretraining.initial_model_folder``) of a local or zoo model, or None (hub
    checkpoints, folders without snapshots)."""
    from .models import resolve_model
    from .pretraining import initial_model_folder

    target, kind = resolve_model(source, models_dir=models_dir)
    if kind == "hub" or not Path(target).is_dir():
        return None
    try:
        return initial_model_folder(target)
    except ParameterError:
        return None


def random_init_scheme(source, *, models_dir=None) -> str:
    """How :func:`classification_model` initialises the random twin of ``source``, in words for a page."""
    return ("its own step-0 weights (the pre-training run's initialisation, same scheme and seed)"
            if step0_folder(source, models_dir=models_dir) is not None
            else "its family's default initialisation (no step-0 weights)")


@dataclass
class FinetuneResult:
    """A fine-tuned model (best validation checkpoint) and how training went."""

    lm: object  # models.LoadedModel, eval mode
    init: str
    seed: int
    history: object  # DataFrame step, eval_loss (and train loss where logged)
    best_step: int | None
    best_eval_loss: float | None
    steps: int
    stopped_early: bool
    train_s: float
    saved_to: Path | None = None


def _as_tensors(ds: SequenceDataset, device):
    """(input_ids (n, T) long, attention (n, T) long, labels (n,) long) of a whole dataset on ``device``, padded
    once to its longest framed sequence (``tokenizer.pad``); a batch is cut back to its own longest row."""
    import torch

    ids, att = ds.tokenizer.pad([ds[i]["input_ids"] for i in range(len(ds))])
    return (torch.from_numpy(ids).to(device), torch.from_numpy(att).to(device),
            torch.tensor(ds.labels, dtype=torch.long, device=device))  # a copy: labels may be a read-only view


def _logits(lm, ids, att):
    """Logits (batch, num_labels) of a classification adapter on rows trimmed to their longest real token."""
    width = int(att.sum(dim=1).max())
    return lm.classification_logits(ids[:, :width], att[:, :width])


def finetune(source, train, valid, *, num_labels: int, init: str = "pretrained", seed: int = 0,
             settings: FinetuneSettings | None = None, models_dir=None, device: str = "auto", work_dir=None,
             keep_dir=None, load_options: Mapping | None = None) -> FinetuneResult:
    """Fine-tune ``source`` (zoo name, local folder or hub id) on ``train`` = (seqs, labels) with early stopping
    on ``valid`` = (seqs, labels); either may also be a :class:`SequenceDataset` built with the model's
    tokenizer. Returns a :class:`FinetuneResult`.

    The loop is the package's one training loop (``training_loop.train_loop``): AdamW (fused), linear warm-up
    and decay, the validation loss (mean cross-entropy, nats) every ``eval_steps`` steps and after the last,
    early stopping after ``patience`` evaluations without a lower loss, the best step's weights kept in memory
    and restored (no checkpoint is written; ``work_dir`` is accepted and unused). Every sequence is tokenized
    once and the whole split sits on the device as one padded tensor; a batch is an index into it. bf16
    autocast where ``settings.precision`` is "auto" and the device supports it (CPU, bf16 CUDA GPUs); weights
    and optimiser float32. ``keep_dir`` saves the best model there (models.save_model).
    """
    import torch

    s = settings or FinetuneSettings()
    lm = classification_model(source, num_labels, init=init, seed=seed, models_dir=models_dir, device=device,
                              load_options=load_options)
    limit = lm.max_tokens
    train_ds = train if isinstance(train, SequenceDataset) else SequenceDataset(lm.tokenizer, *train, max_tokens=limit)
    valid_ds = valid if isinstance(valid, SequenceDataset) else SequenceDataset(lm.tokenizer, *valid, max_tokens=limit)
    for name, ds in (("training", train_ds), ("validation", valid_ds)):
        if ds.labels.min() < 0 or ds.labels.max() >= num_labels:
            raise ParameterError(f"{name} labels must lie in 0..{num_labels - 1}; got {ds.labels.min()}..{ds.labels.max()}.")
    model = lm.model
    Xtr, Atr, ytr = _as_tensors(train_ds, lm.device)
    Xva, Ava, yva = _as_tensors(valid_ds, lm.device)
    cross_entropy = torch.nn.functional.cross_entropy

    def train_loss(idx):
        idx = torch.from_numpy(idx).to(lm.device)
        return cross_entropy(_logits(lm, Xtr[idx], Atr[idx]).float(), ytr[idx])

    def valid_loss():
        total = 0.0
        for lo in range(0, len(yva), s.eval_batch_size):
            hi = lo + s.eval_batch_size
            total += float(cross_entropy(_logits(lm, Xva[lo:hi], Ava[lo:hi]).float(), yva[lo:hi], reduction="sum"))
        return total / len(yva)

    amp = uses_bf16(lm.device, s.precision)
    with _quiet_transformers():
        run = train_loop(model, n_train=len(ytr), train_loss=train_loss, valid_loss=valid_loss, max_steps=s.max_steps,
                         batch_size=s.batch_size, eval_steps=s.eval_steps, patience=s.patience, lr=s.learning_rate,
                         weight_decay=s.weight_decay, warmup_ratio=s.warmup_ratio, seed=seed, device=lm.device,
                         amp=amp)
    saved = None
    if keep_dir is not None:
        from .models import save_model

        saved = save_model(model, lm.tokenizer, keep_dir, extra={"finetune.json": {
            "source": str(source), "init": init, "seed": seed, "settings": s.to_dict(), "best_step": run.best_step}})
    if lm.device.type == "cuda":
        torch.cuda.empty_cache()
    return FinetuneResult(lm=lm, init=init, seed=seed, history=run.history, best_step=run.best_step,
                          best_eval_loss=run.best_eval_loss, steps=run.steps, stopped_early=run.stopped_early,
                          train_s=run.train_s, saved_to=saved)


def predict_proba(lm, data, *, batch_size: int = 256, amp: bool = False) -> np.ndarray:
    """(n, num_labels) float64 class probabilities of a classification model for ``data``: a list of
    sequences or a :class:`SequenceDataset`. ``amp`` runs under bf16 autocast (models.autocast)."""
    import torch

    from .models import autocast

    ds = data if isinstance(data, SequenceDataset) else SequenceDataset(lm.tokenizer, list(data), np.zeros(len(data)))
    collate = PadCollator(lm.tokenizer)
    batch_size = check_int_range("batch_size", batch_size, 1)
    model = lm.model
    model.eval()
    out = []
    with torch.no_grad():
        for lo in range(0, len(ds), batch_size):
            batch = collate([{"input_ids": ds[i]["input_ids"]} for i in range(lo, min(lo + batch_size, len(ds)))])
            batch = {key: v.to(lm.device) for key, v in batch.items()}
            with autocast(lm.device) if amp else contextlib.nullcontext():
                logits = lm.classification_logits(batch["input_ids"], batch["attention_mask"])
            out.append(torch.softmax(logits.float(), dim=-1).double().cpu().numpy())
    return np.concatenate(out)


def model_tokenizer(source, *, models_dir=None, load_options: Mapping | None = None):
    """(tokenizer, max_tokens) of ``source``: the tokenizer a classifier of it is fed with and its limit on a
    sequence's tokens (``adapter.max_tokens``, special tokens excluded; None = no limit). Loads the model once
    on the CPU, quietly, and drops it."""
    from .models import load_model

    with _quiet_transformers():
        probe = load_model(source, device="cpu", dtype="float32", models_dir=models_dir, **dict(load_options or {}))
    return probe.tokenizer, probe.max_tokens


__all__ = [
    "INITS", "FinetuneSettings", "SequenceDataset", "PadCollator", "classification_model", "step0_folder",
    "random_init_scheme", "model_tokenizer",
    "FinetuneResult", "finetune", "predict_proba", "uses_bf16",
]
