"""Grids of fine-tuning runs, their cache, and how they are summarised.

* :func:`run_grid` -- fine-tune every model x init x seed on one train / validation / test split
  (``finetuning.finetune``) and score it on the test set; one tidy row per run; serially here, or one task per
  run (:func:`run_one` on a :class:`RunSpec`) on any ``concurrent.futures.Executor`` (``grid_executors``);
* the run cache: with ``cache_dir`` every finished run's row is stored under :func:`run_cache_key` (the
  package's one cache rule, ``cache.make_key``: inputs, library versions and the digest of the code a run
  depends on) and reused by later grids; :func:`run_cache_dir` reads a notebook's ``run_cache`` parameter and
  :func:`cache_note` says how many runs were reused;
* :func:`summarize_runs` (mean and standard deviation over seeds); every run's per-item test scores
  (:func:`encode_items` / :func:`items_frame`), the items of the paired verdicts (``verdicts``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from .cache import CacheKey, entry_path, make_key, read_entry, write_entry
from .classification_metrics import item_scores, multiclass_metrics, score_predictions
from .errors import ParameterError, check_int_range
from .finetuning import INITS, FinetuneSettings, SequenceDataset, finetune, model_tokenizer, predict_proba, uses_bf16

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


def encode_items(correct: np.ndarray, bits: np.ndarray, p1: np.ndarray | None = None) -> dict:
    """A run's per-item test scores as JSON-safe text: correctness bit-packed, bits as float64, both base64; for a
    two-class task also ``p1``, each item's p(class 1) as float64 (what a bootstrap of the run's MCC and AUROC
    needs: ``biotasks.score_intervals``)."""
    import base64

    out = {"n": int(len(correct)),
           "correct": base64.b64encode(np.packbits(np.asarray(correct) > 0.5).tobytes()).decode("ascii"),
           "bits": base64.b64encode(np.asarray(bits, dtype="<f8").tobytes()).decode("ascii")}
    if p1 is not None:
        out["p1"] = base64.b64encode(np.asarray(p1, dtype="<f8").tobytes()).decode("ascii")
    return out


def decode_items(entry: Mapping) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`encode_items`: (correct float64 0/1, bits float64), each (n,); :func:`decode_p1` reads
    p(class 1)."""
    import base64

    n = int(entry["n"])
    correct = np.unpackbits(np.frombuffer(base64.b64decode(entry["correct"]), dtype=np.uint8))[:n].astype(np.float64)
    bits = np.frombuffer(base64.b64decode(entry["bits"]), dtype="<f8").astype(np.float64)
    if len(bits) != n:
        raise ValueError(f"per-item scores hold {len(bits)} values for {n} items")
    return correct, bits


def decode_p1(entry: Mapping) -> np.ndarray | None:
    """p(class 1) per item (n,) float64 of a two-class run's :func:`encode_items` entry; None for other runs."""
    import base64

    if "p1" not in entry:
        return None
    p1 = np.frombuffer(base64.b64decode(entry["p1"]), dtype="<f8").astype(np.float64)
    if len(p1) != int(entry["n"]):
        raise ValueError(f"per-item p(class 1) holds {len(p1)} values for {entry['n']} items")
    return p1


def items_frame(parts: Sequence[tuple[Mapping, Mapping]]):
    """Long per-item table from (labels, encoded items) pairs: the labels' columns (model, init, seed, ...),
    item (index in the test set), accuracy (1 right, 0 wrong), bits, and p1 (p(class 1)) for two-class runs."""
    import pandas as pd

    frames = []
    for labels, entry in parts:
        correct, bits = decode_items(entry)
        p1 = decode_p1(entry)
        frames.append(pd.DataFrame({**labels, "item": np.arange(len(correct)), "accuracy": correct, "bits": bits,
                                    **({} if p1 is None else {"p1": p1})}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["item", "accuracy", "bits"])


def _json_scalar(x):
    if isinstance(x, np.generic):
        return x.item()
    raise TypeError(f"cannot store {type(x).__name__} in the run cache")


# --------------------------------------------------------------------------------------------------
# One run, as a task any executor can run
# --------------------------------------------------------------------------------------------------
class GridRunError(RuntimeError):
    """A fine-tuning run of a grid failed on an executor; the message names the run (model, init, seed) and the
    worker's error, which is chained as ``__cause__``."""


@dataclass(frozen=True)
class RunSpec:
    """Everything one fine-tuning run needs, as plain picklable values (what :func:`run_one` receives on a worker).

    ``train`` / ``valid`` / ``test``: (list of sequences, (n,) int64 labels); ``source``: what
    ``models.load_model`` takes (zoo name with ``models_dir``, folder, hub id), read by the worker itself;
    ``score``: ``score(probs, labels) -> dict``, a picklable callable (top-level function or
    ``functools.partial`` of one); ``cache_dir`` / ``model_sha256`` / ``data_sha256``: the run cache (None: not
    used); ``keep_dir``: where to save the fine-tuned model (a folder every worker can write)."""

    name: str
    source: str
    init: str
    seed: int
    train: tuple
    valid: tuple
    test: tuple
    num_labels: int
    settings: FinetuneSettings
    score: Callable
    score_id: str
    models_dir: str | None = None
    device: str = "auto"
    nt_per_class: int = 1
    load_options: Mapping | None = None
    cache_dir: str | None = None
    model_sha256: str | None = None
    data_sha256: str | None = None
    keep_dir: str | None = None
    work_dir: str | None = None

    def labels(self) -> dict:
        """The run's identity in a grid's tables: {model, init, seed}."""
        return {"model": self.name, "init": self.init, "seed": self.seed}

    def cache_key(self, device) -> CacheKey:
        """:func:`run_cache_key` of this run on ``device`` (a torch.device or its type); needs ``model_sha256`` and
        ``data_sha256``."""
        return run_cache_key(model=self.model_sha256, init=self.init, seed=self.seed, settings=self.settings,
                             num_labels=self.num_labels, score_id=self.score_id, data_sha256=self.data_sha256,
                             device=device, load_options=self.load_options)


def encode_curve(history) -> str:
    """A run's validation curve as one table cell: "step:loss" pairs (loss in nats, 5 significant digits)
    joined by ";", from ``FinetuneResult.history`` (step, eval_loss)."""
    h = history.dropna(subset=["eval_loss"]) if len(history) else history
    return ";".join(f"{int(r.step)}:{float(r.eval_loss):.5g}" for r in h.itertuples())


def learning_curves(runs, by: Sequence[str] = ()):
    """Long table of the validation curves in ``runs`` (a grid's rows with ``eval_curve``): one row per
    (model, init, seed, *by, step) with eval_loss (nats). Rows without a curve (baselines, older cached runs) are
    left out."""
    import pandas as pd

    cols = ["model", "init", "seed", *by]
    out = []
    if "eval_curve" not in runs:
        return pd.DataFrame(columns=[*cols, "step", "eval_loss"])
    for r in runs[runs.eval_curve.notna() & (runs.eval_curve.astype(str) != "")].to_dict("records"):
        for pair in str(r["eval_curve"]).split(";"):
            step, loss = pair.split(":")
            out.append({**{c: r[c] for c in cols}, "step": int(step), "eval_loss": float(loss)})
    return pd.DataFrame(out, columns=[*cols, "step", "eval_loss"])


def _fit_and_score(spec: RunSpec, data: Mapping | None = None) -> tuple[dict, dict]:
    """Fine-tune ``spec``'s run and score it on its test set: (row without model/init/seed/cached, encoded items).
    ``data``: the run's {train, valid, test} ``SequenceDataset``s when the caller already tokenized them (serial
    grid: once per model); otherwise they are built here with the fine-tuned model's tokenizer."""
    train, valid = (data["train"], data["valid"]) if data is not None else (spec.train, spec.valid)
    res = finetune(spec.source, train, valid, num_labels=spec.num_labels, init=spec.init, seed=spec.seed,
                   settings=spec.settings, models_dir=spec.models_dir, device=spec.device,
                   keep_dir=Path(spec.keep_dir) if spec.keep_dir else None, work_dir=spec.work_dir,
                   load_options=spec.load_options)
    tok = res.lm.tokenizer
    if data is not None:
        train, valid, test = data["train"], data["valid"], data["test"]
    else:
        train, valid, test = (SequenceDataset(tok, list(part[0]), part[1], max_tokens=res.lm.max_tokens)
                              for part in (spec.train, spec.valid, spec.test))
    # scored under the precision the run was trained with (bf16 autocast where settings.precision allows it)
    predict = dict(batch_size=spec.settings.eval_batch_size, amp=uses_bf16(res.lm.device, spec.settings.precision))
    probs = predict_proba(res.lm, test, **predict)
    scores = score_predictions(spec.score, probs, test.labels,  # e.g. a binary threshold chosen on validation
                               valid=lambda: (predict_proba(res.lm, valid, **predict), valid.labels))
    row = {**scores,
           "best_step": res.best_step, "steps": res.steps, "stopped_early": res.stopped_early,
           "best_eval_loss": res.best_eval_loss, "train_s": round(res.train_s, 2),
           "tokenization": tok.description,
           "parameters": int(sum(p.numel() for p in res.lm.model.parameters())),
           "n_train": len(train), "n_valid": len(valid), "eval_curve": encode_curve(res.history)}
    encoded = encode_items(*item_scores(probs, test.labels, nt_per_class=spec.nt_per_class),
                           p1=probs[:, 1] if probs.shape[1] == 2 else None)
    del res
    return row, encoded


def run_one(spec: RunSpec) -> tuple[dict, dict]:
    """One fine-tuning run of a grid, where it runs (this process or a worker of any executor): read the run
    cache (key :func:`run_cache_key` with this machine's device type), train only on a miss, store the entry
    atomically. Returns (row, encoded items): row = model, init, seed, the score's keys, best_step, ...,
    cached (True when read from the cache); items as :func:`encode_items`. Uses the torch threads the worker
    was given (``grid_executors.make_executor`` sets them)."""
    from .models import pick_device

    key = None
    if spec.cache_dir is not None:
        key = spec.cache_key(pick_device(spec.device))
        cached = None if spec.keep_dir else read_cached_run(spec.cache_dir, key)
        if cached is not None:
            cached = dict(cached)
            encoded = cached.pop("items")
            return {**spec.labels(), **cached, "cached": True}, encoded
    row, encoded = _fit_and_score(spec)
    if key is not None:
        write_cached_run(spec.cache_dir, key, {**row, "items": encoded})
    return {**spec.labels(), **row, "cached": False}, encoded


def _check_picklable(score) -> None:
    import pickle

    try:
        pickle.dumps(score)
    except Exception as exc:  # noqa: BLE001 - any pickling failure means the same thing here
        raise ParameterError(
            f"run_grid(executor=...): the score function cannot be sent to a worker ({type(exc).__name__}: {exc}); "
            "pass a top-level function or a functools.partial of one, not a lambda or a closure.") from exc


def _run_on_executor(executor, specs: Sequence[RunSpec], bar) -> list[tuple[dict, dict]]:
    """:func:`run_one` of every spec on ``executor`` (a ``concurrent.futures.Executor``); results in the order of
    ``specs``. The first failure cancels the runs not yet started and raises :class:`GridRunError` naming it."""
    import concurrent.futures as cf

    futures = {executor.submit(run_one, spec): i for i, spec in enumerate(specs)}
    out: list = [None] * len(specs)
    try:
        for fut in cf.as_completed(futures):
            i = futures[fut]
            try:
                out[i] = fut.result()
            except Exception as exc:
                s = specs[i]
                raise GridRunError(f"fine-tuning run model={s.name!r} init={s.init!r} seed={s.seed} failed: "
                                   f"{type(exc).__name__}: {exc}") from exc
            bar.update(1)
    finally:
        for fut in futures:
            fut.cancel()
    return out


# --------------------------------------------------------------------------------------------------
# Grid of runs
# --------------------------------------------------------------------------------------------------
def run_grid(sources: Mapping[str, str], train, valid, test, *, num_labels: int, seeds: Sequence[int],
             inits: Sequence[str] = INITS, settings: FinetuneSettings | None = None, models_dir=None,
             device: str = "auto", score: Callable | None = None, progress: bool = True, desc: str = "fine-tuning",
             keep_models_dir=None, tag: str = "", check: Callable | None = None, work_dir=None,
             cache_dir=None, score_id: str | None = None, load_options: Mapping | None = None,
             nt_per_class: int = 1, with_items: bool = False, executor=None):
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

    ``executor``: None (default) trains the runs one after another in this process. Otherwise a
    ``concurrent.futures.Executor`` (``grid_executors.make_executor``: processes, a local or remote Dask
    cluster; or e.g. submitit's): every model is loaded, checked and tokenized here first (errors surface before
    any training), runs found in ``cache_dir`` are read here, and each remaining run is one task
    (:func:`run_one` on a :class:`RunSpec`) that reads the cache again on its worker, trains only on a miss and
    writes its entry, so a shared ``cache_dir`` never trains a finished run twice. Rows come back in the serial
    order (model, init, seed) and equal the serial ones except ``train_s`` and ``cached`` (exactly on CPU
    when workers use as many torch threads as this process). ``score`` must then be picklable; ``cache_dir``,
    ``models_dir`` and ``keep_models_dir`` must be folders the workers can reach. A failed run raises
    :class:`GridRunError` naming it (model, init, seed); runs already finished stay in the cache.
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
    if executor is not None:
        if not callable(getattr(executor, "submit", None)):
            raise ParameterError(f"executor={executor!r}: pass None (serial) or a concurrent.futures.Executor "
                                 "(see grid_executors.make_executor).")
        _check_picklable(score)
    from .models import model_digest, pick_device

    dev = pick_device(device)
    data_sha = data_digest(train, valid, test) if cache_dir is not None else None
    plain = [(list(part[0]), np.asarray(part[1], dtype=np.int64)) for part in (train, valid, test)]
    results: list = []  # (row, encoded items) per run, in the serial order
    pending: list[tuple[int, RunSpec]] = []
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
                keep = None
                if keep_models_dir:
                    keep = str(Path(keep_models_dir) / f"{name}-{init}-{tag + '-' if tag else ''}seed{seed}")
                spec = RunSpec(name=name, source=str(src), init=init, seed=seed, train=plain[0], valid=plain[1],
                               test=plain[2], num_labels=num_labels, settings=settings, score=score, score_id=score_id,
                               models_dir=None if models_dir is None else str(models_dir), device=device,
                               nt_per_class=nt_per_class, load_options=load_options,
                               cache_dir=None if cache_dir is None else str(cache_dir), model_sha256=digest,
                               data_sha256=data_sha, keep_dir=keep, work_dir=None if work_dir is None else str(work_dir))
                key = spec.cache_key(dev) if cache_dir is not None else None
                cached = None if (key is None or keep) else read_cached_run(cache_dir, key)
                if cached is not None:
                    cached = dict(cached)
                    encoded = cached.pop("items")
                    results.append(({**spec.labels(), **cached, "cached": True}, encoded))
                    bar.update(1)
                elif executor is not None:
                    pending.append((len(results), spec))
                    results.append(None)
                else:
                    row, encoded = _fit_and_score(spec, data)
                    if key is not None:
                        write_cached_run(cache_dir, key, {**row, "items": encoded})
                    results.append(({**spec.labels(), **row, "cached": False}, encoded))
                    bar.update(1)
        del data
    if pending:
        done = _run_on_executor(executor, [spec for _, spec in pending], bar)
        for (i, _), res in zip(pending, done):
            results[i] = res
    bar.close()
    out = pd.DataFrame([row for row, _ in results])
    items = [({"model": row["model"], "init": row["init"], "seed": row["seed"]}, encoded) for row, encoded in results]
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
    "run_grid", "summarize_runs", "RunSpec", "run_one", "GridRunError", "encode_curve", "learning_curves",

]
