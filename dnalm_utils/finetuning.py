"""Fine-tune any DNA language model as a sequence classifier with the Hugging Face Trainer, and score it.

* :func:`finetune` -- load a model with a classification head (``models.load_model(head="classification")``),
  either with its **pre-trained** weights or re-initialised from the same config (**random** init, the
  "what did pre-training add" control), and train it with ``transformers.Trainer``: AdamW, linear decay
  after a warm-up, evaluation on the validation set every ``eval_steps`` steps, early stopping
  (``EarlyStoppingCallback``) and the best checkpoint by validation loss restored at the end
  (``load_best_model_at_end``). Seeded (head initialisation, random init, data order). CUDA when present
  (bf16 where supported), CPU otherwise (bf16 autocast, which pays on CPUs with AMX).
* :func:`run_grid` -- every model x init x seed on one train/validation/test split, one tidy row per run.
* Metrics: :func:`multiclass_metrics` (accuracy, top-5 accuracy, macro-F1, cross-entropy in bits per
  predicted nucleotide) and :func:`binary_metrics` (MCC, accuracy, AUROC).
* Baseline: :func:`kmer_logistic_regression`, a logistic regression on TF-IDF-weighted k-mer counts.
* Biology tasks: :func:`tf_peak_task` (Oct4 vs Mafk ChIP-seq peaks, split by chromosome, leaky peaks kept
  out of evaluation) and :func:`exon_intron_task` (exon vs intron windows of the annotated pre-training
  entries, split by genomic block).

Fine-tuned weights live in a temporary folder during training and are deleted afterwards unless
``keep_models_dir`` is given. Result tables are written with :func:`write_results` (atomic CSV + manifest).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import math
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from .errors import ParameterError, check_int_range

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
    """use_cpu / bf16 for TrainingArguments on ``device`` (a torch.device)."""
    import torch

    cuda = device.type == "cuda"
    bf16 = precision == "auto" and (not cuda or torch.cuda.is_bf16_supported()) and device.type in ("cpu", "cuda")
    return {"use_cpu": device.type == "cpu", "bf16": bool(bf16)}


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
    ``init="random"``: the same architecture, vocabulary and tokenizer with every weight re-initialised
    (seeded) -- no pre-training. Families without a classifier raise ``adapters.NotApplicable``.
    ``load_options``: more ``models.load_model`` arguments (``trust_remote_code``, ``on_invalid``).
    """
    import torch

    from .models import load_model, pick_device, to_device

    if init not in INITS:
        raise ParameterError(f"init={init!r}: use one of {', '.join(INITS)}.")
    num_labels = check_int_range("num_labels", num_labels, 2)
    seed = check_int_range("seed", seed, 0)
    with _quiet_transformers():
        base = load_model(source, device="cpu", dtype="float32", models_dir=models_dir, **dict(load_options or {}))
        lm = base.classifier(num_labels, init=init, seed=seed)
    return to_device(lm, pick_device(device), torch.float32, eval_mode=False)


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


def finetune(source, train, valid, *, num_labels: int, init: str = "pretrained", seed: int = 0,
             settings: FinetuneSettings | None = None, models_dir=None, device: str = "auto", work_dir=None,
             keep_dir=None, load_options: Mapping | None = None) -> FinetuneResult:
    """Fine-tune ``source`` (zoo name, local folder or hub id) on ``train`` = (seqs, labels) with early stopping
    on ``valid`` = (seqs, labels); either may also be a :class:`SequenceDataset` built with the model's
    tokenizer. Trainer checkpoints go to a temporary folder under ``work_dir`` that is removed afterwards;
    ``keep_dir`` saves the best model there (models.save_model). Returns a :class:`FinetuneResult`.
    """
    import pandas as pd
    import torch
    from transformers import EarlyStoppingCallback, Trainer, TrainingArguments
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    s = settings or FinetuneSettings()
    lm = classification_model(source, num_labels, init=init, seed=seed, models_dir=models_dir, device=device,
                              load_options=load_options)
    limit = lm.max_tokens
    train_ds = train if isinstance(train, SequenceDataset) else SequenceDataset(lm.tokenizer, *train, max_tokens=limit)
    valid_ds = valid if isinstance(valid, SequenceDataset) else SequenceDataset(lm.tokenizer, *valid, max_tokens=limit)
    for name, ds in (("training", train_ds), ("validation", valid_ds)):
        if ds.labels.min() < 0 or ds.labels.max() >= num_labels:
            raise ParameterError(f"{name} labels must lie in 0..{num_labels - 1}; got {ds.labels.min()}..{ds.labels.max()}.")
    tmp = Path(tempfile.mkdtemp(prefix="finetune-", dir=work_dir))
    try:
        with _quiet_transformers():
            args = TrainingArguments(
                output_dir=str(tmp), max_steps=s.max_steps, per_device_train_batch_size=s.batch_size,
                per_device_eval_batch_size=s.eval_batch_size, learning_rate=s.learning_rate,
                warmup_steps=int(round(s.warmup_ratio * s.max_steps)), weight_decay=s.weight_decay,
                lr_scheduler_type="linear", eval_strategy="steps", eval_steps=s.eval_steps, save_strategy="steps",
                save_steps=s.eval_steps, save_total_limit=1, save_only_model=True, load_best_model_at_end=True,
                metric_for_best_model="eval_loss", greater_is_better=False, logging_strategy="steps",
                logging_steps=s.eval_steps, seed=seed, data_seed=seed, report_to=[], disable_tqdm=True,
                dataloader_num_workers=0, dataloader_pin_memory=False, remove_unused_columns=False,
                optim="adamw_torch_fused" if lm.device.type in ("cpu", "cuda") else "adamw_torch",
                **_device_flags(lm.device, s.precision),
            )
            trainer = Trainer(model=lm.model, args=args, train_dataset=train_ds, eval_dataset=valid_ds,
                              data_collator=PadCollator(lm.tokenizer),
                              callbacks=[EarlyStoppingCallback(early_stopping_patience=s.patience)])
            for cb in (PrinterCallback, ProgressCallback):
                trainer.remove_callback(cb)
            t0 = time.time()
            trainer.train()
            wall = time.time() - t0
        state = trainer.state
        logs = pd.DataFrame(state.log_history)
        hist = logs[["step", "eval_loss"]].dropna() if "eval_loss" in logs else pd.DataFrame(columns=["step", "eval_loss"])
        if "loss" in logs:
            hist = hist.merge(logs[["step", "loss"]].dropna().rename(columns={"loss": "train_loss"}), on="step", how="outer")
        best_step = getattr(state, "best_global_step", None)
        if best_step is None and state.best_model_checkpoint:
            best_step = int(Path(state.best_model_checkpoint).name.split("-")[-1])
        model = trainer.model
        if state.best_model_checkpoint and Path(state.best_model_checkpoint).is_dir():
            # Reload the best checkpoint strictly: the Trainer's own restore (load_state_dict) can miss renamed
            # keys silently; load_strict refuses any tensor that does not fit.
            from .adapters import load_strict

            load_strict(model, Path(state.best_model_checkpoint))
        model.eval()
        lm.model = model
        saved = None
        if keep_dir is not None:
            from .models import save_model

            saved = save_model(model, lm.tokenizer, keep_dir, extra={"finetune.json": {
                "source": str(source), "init": init, "seed": seed, "settings": s.to_dict(), "best_step": best_step}})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if lm.device.type == "cuda":
        torch.cuda.empty_cache()
    return FinetuneResult(lm=lm, init=init, seed=seed, history=hist.sort_values("step").reset_index(drop=True),
                          best_step=None if best_step is None else int(best_step),
                          best_eval_loss=None if state.best_metric is None else float(state.best_metric),
                          steps=int(state.global_step), stopped_early=int(state.global_step) < s.max_steps,
                          train_s=wall, saved_to=saved)


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
                logits = model(**batch).logits
            out.append(torch.softmax(logits.float(), dim=-1).double().cpu().numpy())
    return np.concatenate(out)


# --------------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------------
def _check_scores(probs, truth) -> tuple[np.ndarray, np.ndarray]:
    probs = np.asarray(probs, dtype=np.float64)
    truth = np.asarray(truth).astype(np.int64).reshape(-1)
    if probs.ndim != 2 or probs.shape[0] != truth.size:
        raise ParameterError(f"scores must be (n, classes) and labels (n,); got {probs.shape} and {truth.shape}.")
    if truth.size == 0:
        raise ParameterError("no examples to score.")
    if truth.min() < 0 or truth.max() >= probs.shape[1]:
        raise ParameterError(f"labels must lie in 0..{probs.shape[1] - 1}.")
    return probs, truth


def macro_f1(truth, pred) -> float:
    """Unweighted mean F1 over the classes that occur in ``truth`` or ``pred`` (sklearn's average='macro')."""
    truth = np.asarray(truth, dtype=np.int64)
    pred = np.asarray(pred, dtype=np.int64)
    classes, inv = np.unique(np.concatenate([truth, pred]), return_inverse=True)
    t, p = inv[: truth.size], inv[truth.size :]
    c = classes.size
    tp = np.bincount(t[t == p], minlength=c).astype(np.float64)
    fp = np.bincount(p, minlength=c) - tp
    fn = np.bincount(t, minlength=c) - tp
    return float(np.mean(2 * tp / np.maximum(2 * tp + fp + fn, 1)))


def multiclass_metrics(probs, truth, *, nt_per_class: int = 1, pred=None, bits: bool = True) -> dict:
    """Accuracy, top-5 accuracy, macro-F1 and cross-entropy of (n, c) class probabilities against (n,) labels.

    Ties in the ranking go to the lower class index. ``bits`` = mean -log2 p(true class) / ``nt_per_class``:
    bits per predicted nucleotide for the next-k-mer task (nt_per_class = k; 2 = uniform guessing),
    probabilities clipped at 1e-12. ``pred`` overrides the argmax predictions; ``bits=False`` (scores that are
    not probabilities) reports NaN. Returns {n, accuracy, top5, macro_f1, bits}.
    """
    probs, truth = _check_scores(probs, truth)
    n, c = probs.shape
    pred = np.argmax(probs, axis=1) if pred is None else np.asarray(pred, dtype=np.int64)
    top = min(5, c)
    ranked = np.argsort(-probs, axis=1, kind="stable")[:, :top]
    out = {
        "n": int(n),
        "accuracy": float(np.mean(pred == truth)),
        "top5": float(np.mean((ranked == truth[:, None]).any(axis=1))),
        "macro_f1": macro_f1(truth, pred),
        "bits": float("nan"),
    }
    if bits:
        pt = np.clip(probs[np.arange(n), truth], 1e-12, 1.0)
        out["bits"] = float(-np.mean(np.log2(pt)) / nt_per_class)
    return out


def uniform_guess_metrics(truth, num_classes: int, *, nt_per_class: int = 1) -> dict:
    """Expected scores of guessing uniformly at random among ``num_classes``: accuracy 1/c, top-5 min(5, c)/c,
    bits log2(c)/nt_per_class, and the expected macro-F1 mean over all c classes of 2 f / (c f + 1), f being
    a class's share of ``truth`` (precision f, recall 1/c)."""
    truth = np.asarray(truth, dtype=np.int64)
    c = int(num_classes)
    f = np.bincount(truth, minlength=c) / truth.size
    return {"n": int(truth.size), "accuracy": 1.0 / c, "top5": min(5, c) / c,
            "macro_f1": float(np.mean(2 * f / (c * f + 1))), "bits": math.log2(c) / nt_per_class}


def binary_metrics(probs, truth) -> dict:
    """MCC and accuracy of the argmax (threshold 0.5) and AUROC of p(class 1); ``probs`` (n, 2) or (n,) p(1)."""
    from sklearn.metrics import matthews_corrcoef, roc_auc_score

    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim == 1:
        probs = np.stack([1 - probs, probs], axis=1)
    probs, truth = _check_scores(probs, truth)
    if probs.shape[1] != 2:
        raise ParameterError(f"binary_metrics needs two classes, got {probs.shape[1]}.")
    pred = (probs[:, 1] > probs[:, 0]).astype(np.int64)
    auroc = float(roc_auc_score(truth, probs[:, 1])) if np.unique(truth).size == 2 else float("nan")
    return {"n": int(truth.size), "mcc": float(matthews_corrcoef(truth, pred)), "accuracy": float(np.mean(pred == truth)),
            "auroc": auroc}


# --------------------------------------------------------------------------------------------------
# k-mer count baseline
# --------------------------------------------------------------------------------------------------
_LUT = np.full(256, 255, dtype=np.uint8)
for _i, _c in enumerate("ACGT"):
    _LUT[ord(_c)] = _LUT[ord(_c.lower())] = _i


def kmer_count_matrix(seqs: Sequence[str], kmer: int):
    """(n, 4**kmer) scipy CSR matrix of overlapping ``kmer``-mer counts per sequence (ACGT order as in
    ngram; k-mers holding any other character are skipped)."""
    from scipy import sparse

    kmer = check_int_range("kmer", kmer, 1, 10, hint="Counts have 4**kmer columns.")
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    flat = _LUT[np.frombuffer("".join(seqs).encode("ascii", errors="replace"), dtype=np.uint8)]
    seq_of = np.repeat(np.arange(len(seqs)), lengths)
    offset = np.arange(flat.size) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    n = flat.size - kmer + 1
    if n <= 0:
        return sparse.csr_matrix((len(seqs), 4**kmer))
    code = np.zeros(n, dtype=np.int64)
    bad = np.zeros(n, dtype=bool)
    for j in range(kmer):
        part = flat[j : j + n]
        code = code * 4 + np.where(part == 255, 0, part)
        bad |= part == 255
    start_ok = offset[:n] + kmer <= lengths[seq_of[:n]]  # the k-mer stays inside its sequence
    keep = start_ok & ~bad
    data = np.ones(int(keep.sum()))
    return sparse.csr_matrix((data, (seq_of[:n][keep], code[keep])), shape=(len(seqs), 4**kmer))


def kmer_logistic_regression(train_seqs: Sequence[str], train_labels, test_seqs: Sequence[str], *, num_classes: int,
                             kmer: int = 4, tfidf: bool = True, C: float = 1.0, max_iter: int = 300, seed: int = 0):
    """(n_test, num_classes) probabilities of a logistic regression on (TF-IDF-weighted) k-mer counts.

    Classes absent from the training labels get probability 1e-9 (then rows are renormalised)."""
    from sklearn.feature_extraction.text import TfidfTransformer
    from sklearn.linear_model import LogisticRegression

    y = np.asarray(train_labels, dtype=np.int64)
    X, Xt = kmer_count_matrix(list(train_seqs), kmer), kmer_count_matrix(list(test_seqs), kmer)
    if tfidf:
        tf = TfidfTransformer(sublinear_tf=True).fit(X)
        X, Xt = tf.transform(X), tf.transform(Xt)
    out = np.full((Xt.shape[0], num_classes), 1e-9)
    present = np.unique(y)
    if present.size == 1:
        out[:, present[0]] = 1.0
    else:
        with contextlib.redirect_stderr(None), _no_convergence_warnings():
            clf = LogisticRegression(C=C, max_iter=max_iter, random_state=seed).fit(X, y)
        out[:, clf.classes_] = np.maximum(clf.predict_proba(Xt), 1e-9)
    return out / out.sum(axis=1, keepdims=True)


@contextlib.contextmanager
def _no_convergence_warnings():
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


# --------------------------------------------------------------------------------------------------
# Cache of finished runs
# --------------------------------------------------------------------------------------------------
RUN_CACHE_FORMAT = "dnalm-finetune-run/1"


def data_digest(*parts) -> str:
    """sha256 of (seqs, labels) pairs: every sequence and label, in order, with the part boundaries."""
    from .io import sha256_bytes

    chunks = []
    for seqs, labels in parts:
        labels = np.asarray(labels, dtype="<i8")
        chunks.append(f"{len(seqs)}|{'|'.join(map(str, seqs))}|".encode() + labels.tobytes())
    return sha256_bytes(b"#".join(chunks))


def run_manifest(*, model: str, init: str, seed: int, settings: FinetuneSettings, num_labels: int, score_id: str,
                 data_sha256: str, device, load_options: Mapping | None = None) -> dict:
    """Everything that determines one fine-tuning run's result: the model's content (models.model_digest),
    init, seed, optimisation settings, data, scoring, device type, load options, library versions and the code
    that builds and trains the classifier (this module, the model interface and its families, the tokenizers)."""
    versions, code = _code_and_versions()
    return {"format": RUN_CACHE_FORMAT, "model_sha256": model, "init": init, "seed": int(seed),
            "settings": settings.to_dict(), "num_labels": int(num_labels), "score": score_id,
            "data_sha256": data_sha256, "device": device.type, "versions": dict(versions), "code_sha256": code,
            "load_options": dict(sorted((load_options or {}).items()))}


@functools.lru_cache(maxsize=1)
def _code_and_versions() -> tuple[tuple[tuple[str, str | None], ...], str]:
    """(library versions, sha256 of the sources that determine a run: this module, adapters.py, the families and
    tokenization.py), read once per process."""
    from .io import package_versions, sha256_bytes, sha256_file

    versions = package_versions(("torch", "transformers", "accelerate", "numpy", "scikit-learn"))
    versions.pop("platform", None)
    here = Path(__file__).parent
    files = [Path(__file__), here / "adapters.py", here / "tokenization.py", *sorted((here / "families").glob("*.py"))]
    digest = sha256_bytes("".join(f"{f.name}:{sha256_file(f)}\n" for f in files).encode())
    return tuple(sorted(versions.items())), digest


def run_cache_path(cache_dir, manifest: Mapping) -> Path:
    """``<cache_dir>/<sha256 of the manifest>.json``."""
    from .io import sha256_bytes

    key = sha256_bytes(json.dumps(manifest, sort_keys=True, default=str).encode())
    return Path(cache_dir) / f"{key}.json"


def read_cached_run(cache_dir, manifest: Mapping) -> dict | None:
    """The cached result row for ``manifest``, or None when absent, unreadable, altered or for other inputs."""
    from .io import sha256_bytes

    path = run_cache_path(cache_dir, manifest)
    try:
        entry = json.loads(path.read_text())
        row = entry["row"]
        ok = (entry.get("manifest") == json.loads(json.dumps(manifest, default=str))
              and entry.get("row_sha256") == sha256_bytes(json.dumps(row, sort_keys=True).encode()))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return row if ok else None


def write_cached_run(cache_dir, manifest: Mapping, row: Mapping) -> Path:
    """Store one run's result row atomically, with its manifest and the row's sha256."""
    from .io import atomic_write_text, sha256_bytes

    row = json.loads(json.dumps(row, default=_json_scalar))
    entry = {"manifest": manifest, "row": row, "row_sha256": sha256_bytes(json.dumps(row, sort_keys=True).encode())}
    path = run_cache_path(cache_dir, manifest)
    return atomic_write_text(path, json.dumps(entry, indent=1, sort_keys=True, default=str) + "\n")


def run_cache_dir(value) -> Path | None:
    """Folder of a notebook's ``run_cache`` parameter: "none" or "" -> None (every run trains); otherwise that
    folder (a relative path is taken from the working directory, the project root when the book runs)."""
    text = str(value or "").strip()
    if text.lower() in ("", "none", "off", "false"):
        return None
    return Path(text).expanduser()


def cache_note(runs) -> str:
    """One sentence on a grid's runs: how many were trained in this execution and how many reused from the run
    cache, and the training time of all of them (seconds, as measured when each was trained)."""
    fine = runs[runs.init.isin(INITS)] if "init" in runs else runs
    if not len(fine):
        return "No model was fine-tuned."
    reused = int(fine["cached"].fillna(False).astype(bool).sum()) if "cached" in fine else 0
    total = float(fine.train_s.sum()) / 60
    if reused == 0:
        return f"All {len(fine):,} runs were trained in this execution ({total:.1f} minutes of training)."
    return (f"{reused:,} of the {len(fine):,} runs were reused from the run cache (trained earlier on identical "
            f"inputs, settings and code); training all {len(fine):,} took {total:.1f} minutes when they ran.")


def _json_scalar(x):
    if isinstance(x, np.generic):
        return x.item()
    raise TypeError(f"cannot store {type(x).__name__} in the run cache")


# --------------------------------------------------------------------------------------------------
# Grid of runs
# --------------------------------------------------------------------------------------------------
def run_grid(sources: Mapping[str, str], train, valid, test, *, num_labels: int, seeds: Sequence[int],
             inits: Sequence[str] = INITS, settings: FinetuneSettings | None = None, models_dir=None,
             device: str = "auto", score: Callable | None = None, progress: bool = True, desc: str = "fine-tuning",
             keep_models_dir=None, tag: str = "", check: Callable | None = None, work_dir=None,
             cache_dir=None, score_id: str | None = None, load_options: Mapping | None = None):
    """Fine-tune every model x init x seed on (seqs, labels) ``train`` / ``valid`` and score it on ``test``.

    ``load_options``: passed to ``models.load_model`` for every model (``trust_remote_code``, ``on_invalid``).

    ``score(probs, labels) -> dict`` (default :func:`multiclass_metrics`); ``check(tokenizer, name)`` may
    reject a model before training. Each model's sequences are tokenized once. Returns a DataFrame with one
    row per run: model, init, seed, the score's keys, best_step, steps, stopped_early, best_eval_loss,
    train_s, tokenization, parameters, n_train, n_valid, cached.

    ``cache_dir``: every finished run's row is stored there (atomically, keyed by :func:`run_manifest`) and
    reused when the model's content, data, settings, seed, scoring (``score_id``, required with a custom
    ``score``), device type, library versions and this module's code all match, so a rebuild or an interrupted
    grid only trains what is missing (``cached`` says which rows came from the cache; their ``train_s`` is
    the original run's). Not read when ``keep_models_dir`` asks for the fine-tuned weights.
    """
    import pandas as pd
    from tqdm.auto import tqdm

    from .models import load_model, resolve_model

    seeds = [check_int_range("seed", s, 0) for s in seeds]
    if not seeds:
        raise ParameterError("seeds is empty: pass at least one seed (e.g. [0, 1, 2]).")
    inits = list(inits)
    for i in inits:
        if i not in INITS:
            raise ParameterError(f"init={i!r}: use one of {', '.join(INITS)}.")
    if not sources:
        raise ParameterError("no models given: pass at least one zoo name, local folder or hub id.")
    if cache_dir is not None and score is not None and not score_id:
        raise ParameterError("run_grid: pass score_id (a name for the scoring) together with a custom score and "
                             "cache_dir, so cached rows are never reused for another scoring.")
    score_id = score_id or "multiclass"
    score = score or multiclass_metrics
    settings = settings or FinetuneSettings()
    from .models import model_digest, pick_device

    dev = pick_device(device)
    data_sha = data_digest(train, valid, test) if cache_dir is not None else None
    rows = []
    bar = tqdm(total=len(sources) * len(inits) * len(seeds), desc=desc, unit="run", disable=not progress)
    for name, src in sources.items():
        folder, _ = resolve_model(src, models_dir=models_dir)
        with _quiet_transformers():
            probe = load_model(src, device="cpu", dtype="float32", models_dir=models_dir, **dict(load_options or {}))
        tok, limit = probe.tokenizer, probe.max_tokens
        del probe
        if check is not None:
            check(tok, name)
        data = {key: SequenceDataset(tok, list(part[0]), part[1], max_tokens=limit)
                for key, part in (("train", train), ("valid", valid), ("test", test))}
        digest = model_digest(folder) if cache_dir is not None else None
        for init in inits:
            for seed in seeds:
                manifest = None
                if cache_dir is not None:
                    manifest = run_manifest(model=digest, init=init, seed=seed, settings=settings,
                                            num_labels=num_labels, score_id=score_id, data_sha256=data_sha, device=dev,
                                            load_options=load_options)
                    cached = None if keep_models_dir else read_cached_run(cache_dir, manifest)
                    if cached is not None:
                        rows.append({"model": name, "init": init, "seed": seed, **cached, "cached": True})
                        bar.update(1)
                        continue
                keep = None
                if keep_models_dir:
                    keep = Path(keep_models_dir) / f"{name}-{init}-{tag + '-' if tag else ''}seed{seed}"
                res = finetune(src, data["train"], data["valid"], num_labels=num_labels, init=init, seed=seed,
                               settings=settings, models_dir=models_dir, device=device, keep_dir=keep, work_dir=work_dir,
                               load_options=load_options)
                probs = predict_proba(res.lm, data["test"], batch_size=settings.eval_batch_size)
                row = {**score(probs, data["test"].labels),
                       "best_step": res.best_step, "steps": res.steps, "stopped_early": res.stopped_early,
                       "best_eval_loss": res.best_eval_loss, "train_s": round(res.train_s, 2),
                       "tokenization": tok.description,
                       "parameters": int(sum(p.numel() for p in res.lm.model.parameters())),
                       "n_train": len(data["train"]), "n_valid": len(data["valid"])}
                if manifest is not None:
                    write_cached_run(cache_dir, manifest, row)
                rows.append({"model": name, "init": init, "seed": seed, **row, "cached": False})
                del res
                bar.update(1)
    bar.close()
    return pd.DataFrame(rows)


def summarize_runs(results, by: Sequence[str], metrics: Sequence[str] = ("accuracy", "top5", "macro_f1", "bits", "mcc",
                                                                         "auroc")):
    """Per group of ``by``: ``<metric>_mean`` and ``<metric>_std`` (sample standard deviation over seeds; NaN for
    one seed) of every metric present, and ``seeds`` (rows per group). Group order follows first appearance."""
    import pandas as pd

    metrics = [m for m in metrics if m in results.columns]
    g = results.groupby(list(by), sort=False, dropna=False)
    out = g[metrics].agg(["mean", "std"])
    out.columns = [f"{m}_{stat}" for m, stat in out.columns]
    out["seeds"] = g.size()
    return out.reset_index()


def auroc_se(auc, n_pos: int, n_neg: int):
    """Standard error of an AUROC on n_pos positive and n_neg negative examples (Hanley and McNeil, 1982)."""
    a = np.clip(np.asarray(auc, dtype=np.float64), 1e-9, 1 - 1e-9)
    q1, q2 = a / (2 - a), 2 * a**2 / (1 + a)
    return np.sqrt((a * (1 - a) + (n_pos - 1) * (q1 - a**2) + (n_neg - 1) * (q2 - a**2)) / (n_pos * n_neg))


def init_gain(results, by: Sequence[str], metric: str, *, n_test: int | None = None,
              class_counts: tuple[int, int] | None = None):
    """Pre-trained minus random-initialisation mean of ``metric`` per group of ``by`` (models x k, or tasks x
    models), with its standard error over seeds (sqrt(s_p^2/n_p + s_r^2/n_r); NaN with one seed).

    A test-set ``noise`` is added when it can be computed: with ``n_test`` for an accuracy, the 95 %
    half-width of the difference of two accuracies near their mean p (1.96 sqrt(2 p (1 - p) / n_test)); with
    ``class_counts`` = (negatives, positives) for an AUROC, 1.96 sqrt(2) times its Hanley-McNeil standard
    error. Then ``verdict``: "helps" / "hurts" where |gain| exceeds both 2 se and that noise, else "within
    noise" ("one seed" when a single seed cannot tell). Columns: *by, pretrained, random, gain, se[, noise,
    verdict]."""
    import pandas as pd

    runs = results[results.init.isin(INITS)]
    if runs.empty:
        return pd.DataFrame(columns=[*by, "pretrained", "random", "gain", "se"]
                            + (["noise", "verdict"] if n_test or class_counts else []))
    g = runs.groupby([*by, "init"], sort=False)[metric].agg(["mean", "var", "count"]).unstack("init")
    out = pd.DataFrame(index=g.index)
    for init in INITS:
        out[init] = g["mean"][init] if init in g["mean"] else np.nan
    out["gain"] = out["pretrained"] - out["random"]
    if all(i in g["var"] for i in INITS):
        out["se"] = np.sqrt(g["var"]["pretrained"] / g["count"]["pretrained"] + g["var"]["random"] / g["count"]["random"])
    else:
        out["se"] = np.nan
    p = ((out["pretrained"] + out["random"]) / 2).clip(0, 1)
    if n_test:
        out["noise"] = 1.96 * np.sqrt(2 * p * (1 - p) / int(n_test))
    elif class_counts:
        out["noise"] = 1.96 * np.sqrt(2) * auroc_se(p, int(class_counts[1]), int(class_counts[0]))
    if n_test or class_counts:
        bar = np.maximum(2 * out["se"], out["noise"])
        out["verdict"] = np.where(out["se"].isna(), "one seed", np.where(out["gain"] > bar, "helps",
                                  np.where(out["gain"] < -bar, "hurts", "within noise")))
    return out.reset_index()


def wide_table(summary, *, rows: Sequence[str], column: str, metric: str, percent: bool = True, digits: int = 1):
    """``summary`` (summarize_runs output) as a table of formatted "mean ± std" strings: one row per ``rows``
    combination, one column per value of ``column``; "n/a" where absent, no "±" for one seed."""
    import pandas as pd

    scale = 100.0 if percent else 1.0
    unit = " %" if percent else ""

    def fmt(r):
        m, sd = r[f"{metric}_mean"], r.get(f"{metric}_std", np.nan)
        if not np.isfinite(m):
            return "n/a"
        text = f"{scale * m:.{digits}f}"
        if np.isfinite(sd):
            text += f" ± {scale * sd:.{digits}f}"
        return text + unit

    cells = summary.assign(_cell=summary.apply(fmt, axis=1))
    wide = cells.pivot_table(index=list(rows), columns=column, values="_cell", aggfunc="first", sort=False)
    wide.columns = [f"{column} = {c}" for c in wide.columns]
    return wide.fillna("n/a").reset_index()


def markdown_table(table, *, index: bool = False) -> str:
    """``table`` as a GitHub-flavoured Markdown table (cells formatted with str; NaN as "n/a")."""
    frame = table.reset_index() if index else table
    cols = [str(c) for c in frame.columns]

    def cell(v):
        if v is None or (isinstance(v, float) and not np.isfinite(v)):
            return "n/a"
        return str(v).replace("|", "\\|")

    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def write_results(table, path, *, manifest: Mapping | None = None) -> Path:
    """Write ``table`` as CSV atomically; with ``manifest``, also ``<stem>.manifest.json`` next to it holding the
    manifest plus the table's shape, columns and the library versions."""
    from .io import atomic_write_json, atomic_write_text, package_versions

    path = Path(path)
    atomic_write_text(path, table.to_csv(index=False))
    if manifest is not None:
        meta = {**manifest, "table": path.name, "rows": int(len(table)), "columns": list(map(str, table.columns)),
                "versions": package_versions(("dnalm-utils", "torch", "transformers", "scikit-learn", "numpy")),
                "written": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        atomic_write_json(path.with_name(path.stem + ".manifest.json"), meta)
    return path


# --------------------------------------------------------------------------------------------------
# Biology tasks
# --------------------------------------------------------------------------------------------------
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
    from . import data

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
    peaks["leaky"] = peaks.in_mhc_region.astype(bool) | (peaks.pretrain_32mer_fraction >= data.SCREEN_FLAG_FRACTION)
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

    from . import data, pretraining

    window_nt = check_int_range("window_nt", window_nt, 1)
    stride = max(1, window_nt // 2) if stride is None else check_int_range("stride", stride, 1)
    block_nt = check_int_range("block_nt", block_nt, window_nt * 2 + 1)
    if not (0 < valid_fraction < 1 and 0 < test_fraction < 1 and valid_fraction + test_fraction < 1):
        raise ParameterError(f"valid_fraction={valid_fraction} and test_fraction={test_fraction} must be in (0, 1) "
                             "with a sum below 1.")
    records = {r.name: r.sequence for r in pretraining.split_corpus_records()}
    lengths = {n: len(s) for n, s in records.items()}
    masks = annotation_masks(lengths, data.load_features())
    rng = np.random.default_rng(seed)
    rows = []
    for name, length in lengths.items():
        exonic, intronic = masks[name]
        seq = records[name]
        acgt = np.frombuffer(seq.encode("ascii"), dtype=np.uint8)
        acgt = np.isin(acgt, np.frombuffer(b"ACGT", dtype=np.uint8))
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


def run_task(task: ClassificationTask, sources: Mapping[str, str], *, seeds: Sequence[int], settings=None,
             inits: Sequence[str] = INITS, models_dir=None, device: str = "auto", progress: bool = True,
             kmer: int = 4, keep_models_dir=None, cache_dir=None, load_options: Mapping | None = None):
    """Fine-tune every model on a binary :class:`ClassificationTask` and add the k-mer logistic regression
    baseline (init "baseline"). Returns one row per run: task, model, init, seed, mcc, accuracy, auroc, ..."""
    import pandas as pd

    train, valid, test = task.splits["train"], task.splits["valid"], task.splits["test"]
    runs = run_grid(sources, train, valid, test, num_labels=len(task.classes), seeds=seeds, inits=inits,
                    settings=settings, models_dir=models_dir, device=device, score=binary_metrics, progress=progress,
                    desc=task.name, keep_models_dir=keep_models_dir, tag=task.name.split()[0].lower(),
                    cache_dir=cache_dir, score_id="binary", load_options=load_options)
    rows = []
    if kmer:
        probs = kmer_logistic_regression(*train, test[0], num_classes=len(task.classes), kmer=kmer)
        rows.append({"model": f"{kmer}-mer TF-IDF + logistic regression", "init": "baseline", "seed": 0,
                     **binary_metrics(probs, test[1])})
    majority = int(np.bincount(train[1]).argmax())
    rows.append({"model": "majority class", "init": "baseline", "seed": 0,
                 **binary_metrics(np.full(len(test[1]), 0.5 + (0.01 if majority else -0.01)), test[1])})
    out = pd.concat([runs, pd.DataFrame(rows)], ignore_index=True)
    return out.assign(task=task.name)[["task"] + list(out.columns)]


# --------------------------------------------------------------------------------------------------
# Figure
# --------------------------------------------------------------------------------------------------
def plot_task_scores(summary, *, metrics: Sequence[str] = ("mcc", "auroc"), schemes: Mapping[str, str] | None = None):
    """One column per task, one row per metric: the test score of every model, pre-trained (filled bars) next
    to random initialisation (hatched), error bars one standard deviation over seeds; baselines as
    horizontal lines. summary: summarize_runs(..., by=["task", "model", "init"]) output."""
    import matplotlib.pyplot as plt

    from .plotting import model_color

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
                color = model_color(name, (schemes or {}).get(name))
                for j, (init, hatch) in enumerate((("pretrained", None), ("random", "///"))):
                    r = sub[(sub.model == name) & (sub.init == init)]
                    if r.empty:
                        continue
                    ax.bar(i + (j - 0.5) * 0.38, r[f"{metric}_mean"].iloc[0], width=0.36,
                           yerr=r[f"{metric}_std"].fillna(0).iloc[0], color=color if init == "pretrained" else "white",
                           edgecolor=color, hatch=hatch, capsize=2, label=init if i == 0 else None)
            styles = iter([("black", "--"), ("grey", ":"), ("grey", "-.")])
            for _, r in sub[sub.init == "baseline"].iterrows():
                color, ls = next(styles, ("grey", ":"))
                ax.axhline(r[f"{metric}_mean"], color=color, ls=ls, lw=1.2, label=r.model)
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


__all__ = [
    "INITS", "FinetuneSettings", "SequenceDataset", "PadCollator", "classification_model", "FinetuneResult", "finetune",
    "predict_proba", "macro_f1", "multiclass_metrics", "uniform_guess_metrics", "binary_metrics", "kmer_count_matrix",
    "kmer_logistic_regression", "run_grid", "summarize_runs", "auroc_se", "init_gain", "wide_table", "markdown_table", "write_results", "ClassificationTask", "tf_peak_task",
    "annotation_masks", "exon_intron_task", "run_task", "plot_task_scores",
]
