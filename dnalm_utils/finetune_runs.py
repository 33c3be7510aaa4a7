"""Grids of fine-tuning runs, their cache, and how they are summarised.

* :func:`run_grid` -- fine-tune every model x init x seed on one train / validation / test split
  (``finetuning.finetune``) and score it on the test set; one tidy row per run;
* the run cache: with ``cache_dir`` every finished run's row is stored under :func:`run_cache_key` (the
  package's one cache rule, ``cache.make_key``: inputs, library versions and the digest of the code a run
  depends on) and reused by later grids; :func:`run_cache_dir` reads a notebook's ``run_cache`` parameter and
  :func:`cache_note` says how many runs were reused;
* :func:`summarize_runs` (mean and standard deviation over seeds); every run's per-item test scores
  (:func:`encode_items` / :func:`items_frame`), the items of the paired verdicts (``verdicts``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from .cache import CacheKey, entry_path, make_key, read_entry, write_entry
from .classification_metrics import item_scores, multiclass_metrics
from .errors import ParameterError, check_int_range
from .finetuning import INITS, FinetuneSettings, SequenceDataset, finetune, model_tokenizer, predict_proba

# --------------------------------------------------------------------------------------------------
# Cache of finished runs
# --------------------------------------------------------------------------------------------------
RUN_KIND = "finetune-run"


def data_digest(*parts) -> str:
    """sha256 of (seqs, labels) pairs: every sequence and label, in order, with the part boundaries."""
    from .io import sha256_bytes

    chunks = []
    for seqs, labels in parts:
        labels = np.asarray(labels, dtype="<i8")
        chunks.append(f"{len(seqs)}|{'|'.join(map(str, seqs))}|".encode() + labels.tobytes())
    return sha256_bytes(b"#".join(chunks))


def run_cache_key(*, model: str, init: str, seed: int, settings: FinetuneSettings, num_labels: int, score_id: str,
                  data_sha256: str, device, load_options: Mapping | None = None, root=None) -> CacheKey:
    """The cache key (``cache.make_key``, kind ``"finetune-run"``) of one fine-tuning run: the model's content
    (``models.model_digest``), init, seed, optimisation settings, number of labels, scoring, data checksum,
    device type (a torch.device or its type string) and load options; the library versions and the code digest
    of the modules a run depends on (``cache.DEPENDS_ON["finetune-run"]``, under the package folder ``root``,
    default this package) are added by ``cache.make_key``."""
    device_type = device if isinstance(device, str) else device.type
    inputs = {"model_sha256": model, "init": init, "seed": int(seed), "settings": settings.to_dict(),
              "num_labels": int(num_labels), "score": score_id, "data_sha256": data_sha256, "device": device_type,
              "load_options": dict(sorted((load_options or {}).items()))}
    return make_key(RUN_KIND, inputs, root=root)


def read_cached_run(cache_dir, key: CacheKey) -> dict | None:
    """The cached result row for ``key`` in ``cache_dir``, or None when absent, unreadable, altered or stored
    for other inputs (``cache.read_entry``)."""
    body = read_entry(entry_path(cache_dir, key), key)
    if body is None:
        return None
    try:
        row = json.loads(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None
    return row if isinstance(row, dict) else None


def write_cached_run(cache_dir, key: CacheKey, row: Mapping) -> Path:
    """Store one run's result row (JSON) under ``key`` in ``cache_dir`` atomically (``cache.write_entry``)."""
    body = json.dumps(dict(row), sort_keys=True, default=_json_scalar).encode("utf-8")
    return write_entry(entry_path(cache_dir, key), key, body)


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


def encode_items(correct: np.ndarray, bits: np.ndarray) -> dict:
    """A run's per-item test scores as JSON-safe text: correctness bit-packed, bits as float32, both base64."""
    import base64

    return {"n": int(len(correct)),
            "correct": base64.b64encode(np.packbits(np.asarray(correct) > 0.5).tobytes()).decode("ascii"),
            "bits": base64.b64encode(np.asarray(bits, dtype="<f4").tobytes()).decode("ascii")}


def decode_items(entry: Mapping) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`encode_items`: (correct float64 0/1, bits float64), each (n,)."""
    import base64

    n = int(entry["n"])
    correct = np.unpackbits(np.frombuffer(base64.b64decode(entry["correct"]), dtype=np.uint8))[:n].astype(np.float64)
    bits = np.frombuffer(base64.b64decode(entry["bits"]), dtype="<f4").astype(np.float64)
    if len(bits) != n:
        raise ValueError(f"per-item scores hold {len(bits)} values for {n} items")
    return correct, bits


def items_frame(parts: Sequence[tuple[Mapping, Mapping]]):
    """Long per-item table from (labels, encoded items) pairs: the labels' columns (model, init, seed, ...),
    item (index in the test set), accuracy (1 right, 0 wrong), bits."""
    import pandas as pd

    frames = []
    for labels, entry in parts:
        correct, bits = decode_items(entry)
        frames.append(pd.DataFrame({**labels, "item": np.arange(len(correct)), "accuracy": correct, "bits": bits}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["item", "accuracy", "bits"])


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
             cache_dir=None, score_id: str | None = None, load_options: Mapping | None = None,
             nt_per_class: int = 1, with_items: bool = False):
    """Fine-tune every model x init x seed on (seqs, labels) ``train`` / ``valid`` and score it on ``test``.

    ``load_options``: passed to ``models.load_model`` for every model (``trust_remote_code``, ``on_invalid``).

    ``score(probs, labels) -> dict`` (default :func:`multiclass_metrics`); ``check(tokenizer, name)`` may
    reject a model before training. Each model's sequences are tokenized once. Returns a DataFrame with one
    row per run: model, init, seed, the score's keys, best_step, steps, stopped_early, best_eval_loss,
    train_s, tokenization, parameters, n_train, n_valid, cached. ``with_items=True`` returns ``(runs, items)``,
    items being every run's per-item test scores (model, init, seed, item, accuracy (0/1), bits; bits divided by ``nt_per_class``), the items of a paired
    comparison.

    ``cache_dir``: every finished run's row is stored there (atomically, keyed by :func:`run_cache_key`, the
    package's one cache rule: see ``cache``) and reused when the model's content, data, settings, seed, scoring
    (``score_id``, required with a custom ``score``), device type, load options, library versions and the code
    that trains and scores a run all match, so a rebuild or an interrupted grid only trains what is missing (``cached`` says which rows came from the cache; their ``train_s`` is
    the original run's). Not read when ``keep_models_dir`` asks for the fine-tuned weights.
    """
    import pandas as pd
    from tqdm.auto import tqdm

    from .models import resolve_model

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
    rows, items = [], []
    bar = tqdm(total=len(sources) * len(inits) * len(seeds), desc=desc, unit="run", disable=not progress)
    for name, src in sources.items():
        folder, _ = resolve_model(src, models_dir=models_dir)
        tok, limit = model_tokenizer(src, models_dir=models_dir, load_options=load_options)
        if check is not None:
            check(tok, name)
        data = {key: SequenceDataset(tok, list(part[0]), part[1], max_tokens=limit)
                for key, part in (("train", train), ("valid", valid), ("test", test))}
        digest = model_digest(folder) if cache_dir is not None else None
        for init in inits:
            for seed in seeds:
                key = None
                if cache_dir is not None:
                    key = run_cache_key(model=digest, init=init, seed=seed, settings=settings, num_labels=num_labels,
                                        score_id=score_id, data_sha256=data_sha, device=dev, load_options=load_options)
                    cached = None if keep_models_dir else read_cached_run(cache_dir, key)
                    if cached is not None:
                        cached = dict(cached)
                        items.append(({"model": name, "init": init, "seed": seed}, cached.pop("items")))
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
                encoded = encode_items(*item_scores(probs, data["test"].labels, nt_per_class=nt_per_class))
                if key is not None:
                    write_cached_run(cache_dir, key, {**row, "items": encoded})
                items.append(({"model": name, "init": init, "seed": seed}, encoded))
                rows.append({"model": name, "init": init, "seed": seed, **row, "cached": False})
                del res
                bar.update(1)
    bar.close()
    out = pd.DataFrame(rows)
    return (out, items_frame(items)) if with_items else out


def summarize_runs(results, by: Sequence[str], metrics: Sequence[str] = ("accuracy", "top5", "macro_f1", "bits", "mcc",
                                                                         "auroc")):
    """Per group of ``by``: ``<metric>_mean`` and ``<metric>_std`` (sample standard deviation over seeds; NaN for
    one seed) of every metric present, and ``seeds`` (rows per group). Group order follows first appearance."""
    metrics = [m for m in metrics if m in results.columns]
    g = results.groupby(list(by), sort=False, dropna=False)
    out = g[metrics].agg(["mean", "std"])
    out.columns = [f"{m}_{stat}" for m, stat in out.columns]
    out["seeds"] = g.size()
    return out.reset_index()


__all__ = [
    "RUN_KIND", "data_digest", "run_cache_key", "read_cached_run", "write_cached_run", "run_cache_dir", "cache_note",
    "run_grid", "summarize_runs",
]
