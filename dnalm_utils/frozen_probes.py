"""Frozen-embedding probes: what a model's pooled hidden states hold, layer by layer, without fine-tuning.

The protocol of BEND and most DNA language-model benchmarks (issue 16, item 3): the encoder is frozen, each
sequence becomes one vector per layer (pooled hidden states), and a standardised multinomial logistic
regression is trained on those vectors with the same train / validation / test splits the fine-tuning runs
use. It separates "what the embeddings hold" from "what fine-tuning can build".

* :func:`pooled_features` -- layer -> (n, dim) float32 pooled hidden states (layer 0 = embedding output), mean
  over the body tokens (no [CLS] / [SEP] / padding / special tokens) or the [CLS] row where the family frames
  with one; cached under the package's one cache rule (``cache.make_key``, kind ``"frozen-features"``);
* :func:`probe_layers` -- one probe per layer: C chosen on validation log-loss, fitted on train, scored on test
  (accuracy, bits, and for two classes MCC at the validation-chosen threshold and AUROC), each with a seeded
  95 % bootstrap interval over test items; the per-item test scores of the validation-chosen layer and of the
  last layer (the items of a paired comparison with fine-tuning);
* :func:`frozen_probe_grid` -- every model x layer on one task, one tidy table;
* :func:`best_layer_sentence` -- the computed sentence a chapter prints.

The layer a chapter calls "best" is chosen on validation log-loss, never on test, so its test score is an
unbiased estimate.
"""

from __future__ import annotations

import io
import warnings
from typing import Mapping, Sequence

import numpy as np

from .classification_metrics import best_threshold, bootstrap_weights, percentile_interval, weighted_auroc, weighted_mcc
from .errors import ParameterError, check_int_range

#: Pooling of a sequence's hidden states into one vector.
POOLINGS = ("mean", "cls")
#: The three splits a probe needs.
SPLITS = ("train", "valid", "test")
#: Default inverse regularisation strengths tried on validation. On the default book (5,000 training windows,
#: 128-dim states) a grid of 0.01 ... 10 picked its smallest value for 28 of the 30 next-2- and 3-mer layer
#: probes while C = 10, never picked, took half the fitting time (lbfgs up to its 1,000 iterations); with
#: 0.001 ... 1, 0.001 was picked for 28 of 45 layer probes but a grid down to 1e-5 kept it (BPE, next 3-mer), so
#: the grid reaches one step below it.
DEFAULT_CS = (0.0001, 0.001, 0.01, 0.1, 1.0)
#: Default weights of the uniform distribution mixed into a probe's probabilities, chosen on validation with C
#: (0 = none). Classes absent from train get probability 0 from the regression; without a floor a test item of
#: such a class costs log2(1e12) = 40 bits (next-6-mer: 4,096 classes, most unseen in a few thousand windows).
#: 0.1 was the largest value of an earlier grid and the one most often picked, so 0.3 extends it.
DEFAULT_SMOOTHING = (0.0, 1e-4, 1e-3, 1e-2, 1e-1, 0.3)
#: Cache kind of pooled features (``cache.DEPENDS_ON``).
FEATURE_KIND = "frozen-features"
#: Probabilities are clipped here before taking logs (as ``classification_metrics``).
_EPS = 1e-12
PROBE = "frozen-embedding probe"


# ------------------------------------------------------------------------------------------------
# Checks
# ------------------------------------------------------------------------------------------------
def _check_pooling(pooling) -> str:
    if pooling not in POOLINGS:
        raise ParameterError(f"pooling={pooling!r}: pool hidden states with one of {', '.join(POOLINGS)} "
                             "('mean' over body tokens; 'cls' only for families that frame with a [CLS] token).")
    return pooling


def _check_seqs(seqs, name: str = "seqs") -> list[str]:
    if isinstance(seqs, (str, bytes)):
        raise ParameterError(f"{name} is one string; pass a list of DNA sequences, e.g. [seq] for a single one.")
    seqs = list(seqs)
    if not seqs:
        raise ParameterError(f"{name} is empty; pass at least one DNA sequence.")
    bad = [i for i, s in enumerate(seqs) if not isinstance(s, str)]
    if bad:
        raise ParameterError(f"{name}[{bad[0]}] is a {type(seqs[bad[0]]).__name__}, not a DNA string; pass strings.")
    return seqs


def cls_column(lm) -> int:
    """Column of the [CLS] token in the framed input of ``lm``; NotApplicable when its family frames a
    sequence without one (e.g. HyenaDNA: ``x [SEP]``)."""
    from .adapters import NotApplicable

    prefix = tuple(getattr(lm.tokenizer, "prefix_roles", ()))
    if "cls" not in prefix:
        framing = " ".join([*(f"<{r}>" for r in prefix), "x", *(f"<{r}>" for r in lm.tokenizer.suffix_roles)])
        raise NotApplicable(f"CLS pooling is not applicable to {lm.name}: the {lm.family} family frames a sequence "
                            f"as '{framing}', with no [CLS] token; use pooling='mean'")
    return prefix.index("cls")


# ------------------------------------------------------------------------------------------------
# Pooled features
# ------------------------------------------------------------------------------------------------
def sequences_digest(seqs: Sequence[str]) -> str:
    """sha256 of a list of sequences, in order, with their boundaries (the data part of a feature key)."""
    from .io import sha256_bytes

    return sha256_bytes(f"{len(seqs)}|".encode() + "\n".join(seqs).encode("utf-8"))


def feature_cache_key(lm, seqs: Sequence[str], *, layers: Sequence[int], pooling: str, amp: bool,
                      model_sha256: str | None = None, root=None):
    """The ``cache.make_key`` key (kind ``"frozen-features"``) of pooled features: the model's content
    (``models.model_digest`` of its folder, or ``model_sha256`` for a model without a folder), its dtype, the
    device type, the sequences' digest and count, the layers, the pooling and ``amp``."""
    from .cache import make_key

    if model_sha256 is None:
        if getattr(lm, "path", None) is None:
            raise ParameterError(f"model_sha256 is needed to cache features of {lm.name}: it has no model folder "
                                 "whose content names it; pass model_sha256='<a digest of its weights>' or "
                                 "cache_dir=None.")
        from .models import model_digest

        model_sha256 = model_digest(lm.path)
    inputs = {"model_sha256": str(model_sha256), "model_dtype": str(lm.dtype).replace("torch.", ""),
              "device": getattr(lm.device, "type", str(lm.device)), "sequences_sha256": sequences_digest(seqs),
              "n": len(seqs), "layers": [int(x) for x in layers], "pooling": pooling, "amp": bool(amp)}
    return make_key(FEATURE_KIND, inputs, root=root)


def _read_features(path, key, layers: Sequence[int], n: int) -> dict[int, np.ndarray] | None:
    from .cache import read_entry

    body = read_entry(path, key)
    if body is None:
        return None
    try:
        with np.load(io.BytesIO(body), allow_pickle=False) as z:
            stored, x = z["layers"], z["features"]
    except Exception:  # noqa: BLE001 - any unreadable body is a miss
        return None
    if stored.tolist() != list(layers) or x.ndim != 3 or x.shape[:2] != (len(layers), n) or x.dtype != np.float32:
        return None
    return {int(layer): x[j] for j, layer in enumerate(layers)}


def _write_features(path, key, feats: dict[int, np.ndarray]) -> None:
    from .cache import write_entry

    buf = io.BytesIO()
    np.savez(buf, layers=np.asarray(list(feats), dtype=np.int64), features=np.stack(list(feats.values())))
    write_entry(path, key, buf.getvalue())


def _extract(lm, seqs: list[str], sel: list[int], pooling: str, batch_size: int, amp: bool) -> dict[int, np.ndarray]:
    """One forward pass per batch, every selected layer pooled on the device."""
    import torch

    encs = [lm.tokenizer.encode(s, where=f"sequence {i}") for i, s in enumerate(seqs)]
    longest = int(np.argmax([len(e) for e in encs]))
    lm.check_fits(len(encs[longest]), what=f"sequence {longest}")
    col = cls_column(lm) if pooling == "cls" else None
    special = torch.from_numpy(np.asarray(lm.tokenizer.is_special)).to(lm.device)
    order = np.argsort([len(e) for e in encs], kind="stable")  # similar lengths share a batch: little padding
    out: dict[int, np.ndarray] = {}
    lm.model.eval()
    with torch.no_grad():
        for lo in range(0, len(encs), batch_size):
            rows_idx = order[lo : lo + batch_size]
            ids, att = lm.frame([encs[i].ids for i in rows_idx])
            ids, att = torch.from_numpy(ids).to(lm.device), torch.from_numpy(att).to(lm.device)
            with lm.autocast(amp):
                hidden = lm.encode(ids, att, hidden_states=True).hidden_states
            if col is None:
                body = ((att > 0) & ~special[ids]).to(torch.float64)  # (rows, width): real, non-special tokens
                counts = body.sum(1, keepdim=True).clamp_min(1.0)
            for layer in sel:
                h = hidden[layer]
                if layer not in out:
                    out[layer] = np.empty((len(encs), h.shape[-1]), dtype=np.float32)
                if col is None:
                    pooled = torch.einsum("rt,rtd->rd", body, h.double()) / counts
                else:
                    pooled = h[:, col]
                out[layer][rows_idx] = pooled.float().cpu().numpy()
    return out


def pooled_features(lm, seqs: Sequence[str], *, layers=None, pooling: str = "mean", batch_size: int = 64,
                    amp: bool = False, cache_dir=None, model_sha256: str | None = None) -> dict[int, np.ndarray]:
    """Pooled hidden states of every sequence at each selected layer: ``{layer: (n, dim) float32}``, rows in
    the order of ``seqs``, layers in the order given (default all, 0 = embedding output .. L = last layer).

    ``pooling``: "mean" = mean over the sequence's body tokens (attended and not special: no [CLS], [SEP],
    padding, nor [UNK] / other specials inside), accumulated in float64; "cls" = the [CLS] row, only where the
    family frames with a [CLS] token (otherwise ``adapters.NotApplicable`` with the reason). A sequence with no
    body token pools to zeros. One forward pass per batch of ``batch_size`` sequences (sorted by length, so
    padding is small) serves every layer. ``amp``: bf16 autocast (``models.autocast``); default False (float32
    features; bf16 rounds them).

    ``cache_dir``: the features are stored there as one entry per (model content, sequences, layers, pooling,
    amp, device type, dtype) (:func:`feature_cache_key`, ``cache.write_entry``, atomic) and read back instead
    of running the model; an absent, truncated, altered or mismatching entry is recomputed and overwritten. A
    model without a folder (a hand-built module) needs ``model_sha256`` to be cached.
    """
    from pathlib import Path

    from .cache import entry_path

    lm.require("hidden_states", PROBE)
    pooling = _check_pooling(pooling)
    if pooling == "cls":
        cls_column(lm)
    seqs = _check_seqs(seqs)
    from .embeddings import check_layers

    sel = check_layers(layers, int(lm.n_layers))
    batch_size = check_int_range("batch_size", batch_size, 1, hint="Sequences per forward pass, e.g. 64.")
    path = key = None
    if cache_dir is not None:
        key = feature_cache_key(lm, seqs, layers=sel, pooling=pooling, amp=amp, model_sha256=model_sha256)
        path = entry_path(cache_dir, key, ".npz.entry")
        hit = _read_features(path, key, sel, len(seqs))
        if hit is not None:
            return hit
    feats = _extract(lm, seqs, sel, pooling, batch_size, amp)
    feats = {layer: feats[layer] for layer in sel}
    if path is not None:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        _write_features(path, key, feats)
    return feats


# ------------------------------------------------------------------------------------------------
# Probes
# ------------------------------------------------------------------------------------------------
def _check_cs(Cs) -> list[float]:
    items = [Cs] if isinstance(Cs, (int, float, np.number)) else list(Cs)
    if not items or any(isinstance(c, bool) or not isinstance(c, (int, float, np.number)) or not np.isfinite(c)
                        or c <= 0 for c in items):
        raise ParameterError(f"Cs={Cs!r}: pass positive, finite inverse regularisation strengths, e.g. "
                             f"{DEFAULT_CS}.")
    return sorted({float(c) for c in items})


def _check_smoothing(smoothing) -> list[float]:
    items = [smoothing] if isinstance(smoothing, (int, float, np.number)) else list(smoothing)
    if not items or any(isinstance(s, bool) or not isinstance(s, (int, float, np.number)) or not 0 <= s < 1
                        for s in items):
        raise ParameterError(f"smoothing={smoothing!r}: pass weights of the uniform mixture in [0, 1), e.g. "
                             f"{DEFAULT_SMOOTHING} (0 alone = no smoothing).")
    return sorted({float(s) for s in items})


def _smooth(p: np.ndarray, mix: float) -> np.ndarray:
    return p if mix == 0 else (1 - mix) * p + mix / p.shape[1]


def _check_probe_inputs(features, labels, num_classes):
    if not isinstance(features, Mapping) or not isinstance(labels, Mapping):
        raise ParameterError("features and labels must be mappings split -> ({layer: (n, dim) array}) and split -> "
                             "(n,) labels, with the splits 'train', 'valid', 'test'.")
    for name, m in (("features", features), ("labels", labels)):
        missing = [s for s in SPLITS if s not in m]
        if missing:
            raise ParameterError(f"{name} lacks the split(s) {', '.join(missing)}; give 'train', 'valid' and 'test' "
                                 "(the same splits fine-tuning uses).")
    layers = list(features["train"])
    if not layers:
        raise ParameterError("features['train'] holds no layer; pass {layer: (n, dim) array}.")
    ys = {}
    for s in SPLITS:
        if list(features[s]) != layers:
            raise ParameterError(f"features[{s!r}] has layers {list(features[s])} but features['train'] has "
                                 f"{layers}; extract the same layers for every split.")
        y = np.asarray(labels[s])
        if y.ndim != 1 or y.size == 0 or y.dtype.kind not in "iub" and not (y.dtype.kind == "f" and
                                                                             np.all(y == np.round(y))):
            raise ParameterError(f"labels[{s!r}] must be a non-empty (n,) array of integer class ids.")
        ys[s] = y.astype(np.int64)
        for layer in layers:
            x = np.asarray(features[s][layer])
            if x.ndim != 2 or x.shape[0] != y.size:
                raise ParameterError(f"features[{s!r}][{layer}] has shape {x.shape}; it needs one row per label "
                                     f"({y.size} rows, (n, dim)).")
            if not np.all(np.isfinite(x)):
                raise ParameterError(f"features[{s!r}][{layer}] holds NaN or inf; extract the features again.")
    top = max(int(y.max()) for y in ys.values())
    if num_classes is None:
        num_classes = top + 1
    num_classes = check_int_range("num_classes", num_classes, 2, hint="The number of classes of the task.")
    if min(int(y.min()) for y in ys.values()) < 0 or top >= num_classes:
        raise ParameterError(f"labels must lie in 0..num_classes-1 = 0..{num_classes - 1}; got 0..{top}. Pass the "
                             "task's num_classes.")
    if np.unique(ys["train"]).size < 2:
        raise ParameterError("labels['train'] holds a single class; a probe needs at least two classes to learn.")
    return layers, ys, num_classes


def _fit(x, y, C: float, seed: int, max_iter: int):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=C, max_iter=max_iter, random_state=seed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(x, y)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    return model, converged


def _full_proba(model, x, num_classes: int) -> np.ndarray:
    """(n, num_classes) probabilities; classes absent from training get 0."""
    p = np.zeros((x.shape[0], num_classes), dtype=np.float64)
    p[:, model.classes_] = model.predict_proba(x)
    return p


def _mean_bits(p: np.ndarray, y: np.ndarray) -> float:
    return float(-np.mean(np.log2(np.clip(p[np.arange(len(y)), y], _EPS, 1.0))))


def probe_layers(features: Mapping, labels: Mapping, *, num_classes: int | None = None, Cs=DEFAULT_CS,
                 smoothing=DEFAULT_SMOOTHING, seed: int = 0, max_iter: int = 1000, n_boot: int = 1000,
                 confidence: float = 0.95, nt_per_class: int = 1):
    """A logistic-regression probe per layer; returns ``(table, items)``.

    features: ``{split: {layer: (n_split, dim)}}`` for the splits "train", "valid", "test" (e.g. from
    :func:`pooled_features`); labels: ``{split: (n_split,) int}`` class ids in 0..num_classes-1 (default the
    largest label + 1).

    Per layer: features standardised on train (``StandardScaler``), a multinomial ``LogisticRegression``
    (lbfgs) fitted on train for every C in ``Cs``; its probabilities p are mixed with the uniform distribution,
    (1 - s) p + s / num_classes, for every s in ``smoothing`` (which never changes the argmax, so accuracy, MCC
    ranks and AUROC do not depend on s; it gives classes absent from train a probability, otherwise 0 and
    clipped at 1e-12 in the bits as ``classification_metrics``). The (C, s) with the lowest validation log-loss
    (ties: the smallest C, then the smallest s) is kept (the model fitted on train with it) and scored once on
    test.

    table: one row per layer: layer, C, smoothing, converged, valid_bits (validation cross-entropy, log2, per class),
    accuracy, ci_low, ci_high, bits, bits_low, bits_high (test cross-entropy in bits / ``nt_per_class``),
    chance (1 / num_classes), majority (test accuracy of the most frequent train class), and for two classes
    threshold (on p(class 1), chosen on validation as the max-MCC threshold,
    ``classification_metrics.best_threshold``), mcc, mcc_argmax (test MCC at that threshold and at 0.5),
    accuracy_valid_threshold, mcc_low, mcc_high (interval of mcc), auroc, auroc_low, auroc_high; n_train, n_valid,
    n_test, chosen (True on the layer with the lowest valid_bits, ties to the lower layer). Intervals: percentile
    bootstrap over test items, ``n_boot`` resamples from ``default_rng(seed)``, level ``confidence``; the same
    resamples for every layer (paired).

    items: the per-item test scores of the chosen layer (layer_choice "best") and of the last layer given
    ("last"): layer_choice, layer, item (index in the test split), accuracy (1 right, 0 wrong), bits; the
    items of a paired comparison with fine-tuning on the same test set.
    """
    import pandas as pd
    from sklearn.preprocessing import StandardScaler

    from .classification_metrics import binary_metrics, item_scores, multiclass_metrics

    layers, ys, num_classes = _check_probe_inputs(features, labels, num_classes)
    Cs = _check_cs(Cs)
    smoothing = _check_smoothing(smoothing)
    seed = check_int_range("seed", seed, 0, hint="A non-negative integer seed, e.g. 0.")
    max_iter = check_int_range("max_iter", max_iter, 1, hint="lbfgs iterations, e.g. 1000.")
    n_boot = check_int_range("n_boot", n_boot, 1, hint="Bootstrap resamples, e.g. 1000.")
    nt_per_class = check_int_range("nt_per_class", nt_per_class, 1, hint="k for the next-k-mer task, else 1.")
    if not 0 < confidence < 1:
        raise ParameterError(f"confidence={confidence!r}: pass a level between 0 and 1, e.g. 0.95.")
    y_tr, y_va, y_te = ys["train"], ys["valid"], ys["test"]
    w = bootstrap_weights(len(y_te), n_boot, seed)
    n_te = float(len(y_te))
    majority_class = int(np.bincount(y_tr, minlength=num_classes).argmax())
    rows, per_item = [], {}
    for layer in layers:
        scaler = StandardScaler().fit(np.asarray(features["train"][layer], dtype=np.float64))
        x_tr, x_va, x_te = (scaler.transform(np.asarray(features[s][layer], dtype=np.float64)) for s in SPLITS)
        fits = []
        for C in Cs:
            model, converged = _fit(x_tr, y_tr, C, seed, max_iter)
            p_va = _full_proba(model, x_va, num_classes)
            for mix in smoothing:
                fits.append((_mean_bits(_smooth(p_va, mix), y_va), C, mix, model, converged))
        valid_bits, C, mix, model, converged = min(fits, key=lambda f: (f[0], f[1], f[2]))
        p_te = _smooth(_full_proba(model, x_te, num_classes), mix)
        mm = multiclass_metrics(p_te, y_te, nt_per_class=nt_per_class)
        correct, bits = item_scores(p_te, y_te, nt_per_class=nt_per_class)
        row = {"layer": int(layer), "C": C, "smoothing": mix, "converged": converged, "valid_bits": valid_bits,
               "accuracy": mm["accuracy"],
               **dict(zip(("ci_low", "ci_high"), percentile_interval(w @ correct / n_te, confidence))),
               "bits": mm["bits"], **dict(zip(("bits_low", "bits_high"), percentile_interval(w @ bits / n_te, confidence))),
               "chance": 1.0 / num_classes, "majority": float(np.mean(y_te == majority_class))}
        if num_classes == 2:
            p_va = _smooth(_full_proba(model, x_va, num_classes), mix)[:, 1]
            threshold, _ = best_threshold(p_va, y_va)
            pred = (p_te[:, 1] >= threshold).astype(np.int64)
            bm = binary_metrics(p_te, y_te, threshold=threshold)
            row.update({"threshold": threshold, "mcc": bm["mcc"], "mcc_argmax": bm["mcc_argmax"],
                        "accuracy_valid_threshold": bm["accuracy_valid_threshold"],
                        **dict(zip(("mcc_low", "mcc_high"), percentile_interval(weighted_mcc(w, y_te, pred), confidence))),
                        "auroc": bm["auroc"],
                        **dict(zip(("auroc_low", "auroc_high"),
                                   percentile_interval(weighted_auroc(w, y_te, p_te[:, 1]), confidence)))})
        row.update({"n_train": int(len(y_tr)), "n_valid": int(len(y_va)), "n_test": int(len(y_te))})
        rows.append(row)
        per_item[int(layer)] = (correct, bits)
    table = pd.DataFrame(rows)
    best = int(table.layer.iloc[int(np.argmin(table.valid_bits.to_numpy()))])  # first minimum = lowest layer
    table["chosen"] = table.layer == best
    frames = []
    for choice, layer in (("best", best), ("last", int(layers[-1]))):
        correct, bits = per_item[layer]
        frames.append(pd.DataFrame({"layer_choice": choice, "layer": layer, "item": np.arange(len(correct)),
                                    "accuracy": correct, "bits": bits}))
    return table, pd.concat(frames, ignore_index=True)


# ------------------------------------------------------------------------------------------------
# Grid over models
# ------------------------------------------------------------------------------------------------
def _split_parts(splits: Mapping) -> dict:
    """{split: (list of sequences, (n,) int64 labels)} from (seqs, labels) pairs or objects with
    ``inputs`` / ``labels`` (``nextkmer.NextKmerTask``)."""
    if not isinstance(splits, Mapping):
        raise ParameterError("splits must be a mapping split -> (sequences, labels) with 'train', 'valid', 'test' "
                             "(e.g. biotasks' ClassificationTask.splits).")
    missing = [s for s in SPLITS if s not in splits]
    if missing:
        raise ParameterError(f"splits lacks {', '.join(missing)}; give 'train', 'valid' and 'test'.")
    out = {}
    for s in SPLITS:
        part = splits[s]
        seqs, y = (part.inputs, part.labels) if hasattr(part, "inputs") else part
        seqs = _check_seqs(seqs, f"splits[{s!r}] sequences")
        y = np.asarray(y)
        if y.shape != (len(seqs),):
            raise ParameterError(f"splits[{s!r}] has {len(seqs)} sequences but labels of shape {y.shape}; give one "
                                 "label per sequence.")
        out[s] = (seqs, y)
    return out


def frozen_probe_grid(models: Mapping, splits: Mapping, *, num_classes: int, layers=None, pooling: str = "mean",
                      cache_dir=None, Cs=DEFAULT_CS, smoothing=DEFAULT_SMOOTHING, seed: int = 0,
                      max_iter: int = 1000, n_boot: int = 1000, confidence: float = 0.95, nt_per_class: int = 1,
                      batch_size: int = 64, amp: bool = False,
                      model_sha256: Mapping[str, str] | None = None, progress: bool = False, executor=None):
    """Frozen-embedding probes of every model x layer on one task; returns ``(layer_table, items)``.

    models: name -> ``adapters.ModelAdapter``; splits: ``{"train", "valid", "test"} -> (sequences, labels)``
    (or objects with ``inputs`` / ``labels``), the same splits the fine-tuning runs use. Each model's features
    come from one :func:`pooled_features` call over all three splits (cached in ``cache_dir``;
    ``model_sha256``: name -> digest for models without a folder), then :func:`probe_layers`. ``executor``: None
    fits the probes here; a ``concurrent.futures.Executor`` (``grid_executors.make_executor("processes:2")``)
    fits each model's probes in a worker while the next model's features are extracted here (the same choices
    and numbers up to float rounding, which follows the worker's BLAS thread count).

    layer_table: model, pooling, and :func:`probe_layers`' table columns (layer, C, accuracy, ci_low, ci_high,
    bits, ..., mcc / auroc for two classes, n_train, n_test, chosen); ``attrs["not_applicable"]`` lists
    {model, probe, reason} for models without hidden states (or without a [CLS] token for pooling="cls").
    items: model, pooling, layer_choice ("best" = chosen on validation, "last"), layer, item, accuracy, bits.
    """
    import pandas as pd
    from tqdm.auto import tqdm

    from .adapters import split_applicable

    pooling = _check_pooling(pooling)
    num_classes = check_int_range("num_classes", num_classes, 2, hint="The number of classes of the task.")
    parts = _split_parts(splits)
    if not models:
        raise ParameterError("models is empty; pass name -> adapter (models.load_model) for at least one model.")

    def needs_cls(lm):
        if pooling != "cls":
            return None
        try:
            cls_column(lm)
        except ParameterError as exc:
            return str(exc).split(": ", 1)[-1]
        return None

    ok, skipped = split_applicable(models, "hidden_states", PROBE, condition=needs_cls)
    seqs = [s for part in SPLITS for s in parts[part][0]]
    bounds = np.cumsum([0] + [len(parts[s][0]) for s in SPLITS])
    labels = {s: parts[s][1] for s in SPLITS}
    probe_args = dict(num_classes=num_classes, Cs=Cs, smoothing=smoothing, seed=seed, max_iter=max_iter,
                      n_boot=n_boot, confidence=confidence, nt_per_class=nt_per_class)
    fitted = {}
    for name, lm in tqdm(ok.items(), desc="frozen probes", disable=not progress):
        feats = pooled_features(lm, seqs, layers=layers, pooling=pooling, batch_size=batch_size, amp=amp,
                                cache_dir=cache_dir, model_sha256=(model_sha256 or {}).get(name))
        by_split = {s: {layer: x[bounds[i] : bounds[i + 1]] for layer, x in feats.items()}
                    for i, s in enumerate(SPLITS)}
        fitted[name] = (executor.submit(probe_layers, by_split, labels, **probe_args) if executor is not None
                        else probe_layers(by_split, labels, **probe_args))
    tables, items = [], []
    for name, result in fitted.items():
        table, its = result.result() if executor is not None else result
        table.insert(0, "pooling", pooling)
        table.insert(0, "model", name)
        its.insert(0, "pooling", pooling)
        its.insert(0, "model", name)
        tables.append(table)
        items.append(its)
    layer_table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(
        columns=["model", "pooling", "layer", "C", "accuracy", "ci_low", "ci_high", "bits", "n_train", "n_test"])
    layer_table.attrs["not_applicable"] = skipped
    item_table = pd.concat(items, ignore_index=True) if items else pd.DataFrame(
        columns=["model", "pooling", "layer_choice", "layer", "item", "accuracy", "bits"])
    return layer_table, item_table


# ------------------------------------------------------------------------------------------------
# Sentence
# ------------------------------------------------------------------------------------------------
_PERCENT = ("accuracy",)


def _fmt(metric: str, value: float, lo: float, hi: float) -> str:
    if metric in _PERCENT:
        return f"{100 * value:.1f} % [{100 * lo:.1f}, {100 * hi:.1f}]"
    return f"{value:.3f} [{lo:.3f}, {hi:.3f}]"


def best_layer_sentence(layer_table, *, metric: str = "accuracy", task: str = "") -> str:
    """One computed sentence per model: the layer chosen on validation (``chosen``) with its test ``metric``
    ("accuracy", "mcc" or "auroc") and 95 % interval, the last layer's, and the baseline (chance and the
    majority class for accuracy, 0 for MCC, 0.5 for AUROC). E.g. "The frozen probe for overlap6 reads layer 2, the
    layer chosen on validation (31.2 % [30.3, 32.1] on test; last layer 3: 28.0 % [27.1, 29.0]; chance 6.2 %,
    majority class 7.9 %)." The chosen layer need not be the best on test.
    Models the probe did not apply to (``attrs["not_applicable"]``) are named with the reason."""
    if metric not in ("accuracy", "mcc", "auroc"):
        raise ParameterError(f"metric={metric!r}: use 'accuracy', 'mcc' or 'auroc'.")
    need = {"model", "layer", "chosen", metric, f"{metric}_low" if metric != "accuracy" else "ci_low"}
    missing = need - set(getattr(layer_table, "columns", ()))
    if missing:
        raise ParameterError(f"layer_table lacks the columns {sorted(missing)}; pass frozen_probe_grid's layer table"
                             + (" of a two-class task" if metric != "accuracy" else "") + ".")
    lo_col, hi_col = ("ci_low", "ci_high") if metric == "accuracy" else (f"{metric}_low", f"{metric}_high")
    where = f" on {task}" if task else ""
    parts = []
    for name, g in layer_table.groupby("model", sort=False):
        best = g[g.chosen].iloc[0]
        last = g.loc[g.layer.idxmax()]
        text = (f"The frozen probe{where} for {name} reads layer {int(best.layer)}, the layer chosen on validation "
                f"({_fmt(metric, best[metric], best[lo_col], best[hi_col])} on test")
        if int(last.layer) != int(best.layer):
            text += f"; last layer {int(last.layer)}: {_fmt(metric, last[metric], last[lo_col], last[hi_col])}"
        if metric == "accuracy":
            text += f"; chance {100 * best.chance:.1f} %, majority class {100 * best.majority:.1f} %"
        else:
            text += "; chance 0" if metric == "mcc" else "; chance 0.5"
        parts.append(text + ").")
    for r in layer_table.attrs.get("not_applicable", []):
        parts.append(f"The {r['probe']} is not applicable to {r['model']}: {r['reason']}.")
    if not parts:
        return "No model was probed."
    return " ".join(parts) + " (Layer chosen on validation log-loss; 95 % bootstrap intervals over test items.)"


__all__ = [
    "POOLINGS", "SPLITS", "DEFAULT_CS", "DEFAULT_SMOOTHING", "FEATURE_KIND", "cls_column", "sequences_digest",
    "feature_cache_key",
    "pooled_features", "probe_layers", "frozen_probe_grid", "best_layer_sentence",
]
