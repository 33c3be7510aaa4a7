"""Grids of fine-tuning runs on tiny checkpoints: one row per model x init x seed, kept models, summaries, and the
run cache (reused only for identical inputs and code, a damaged entry retrained); init_gain's verdicts."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dnalm_utils import finetune_runs as FR
from dnalm_utils import finetuning as FT
from dnalm_utils import models as M
from dnalm_utils.cache import entry_path
from dnalm_utils.classification_metrics import binary_metrics
from dnalm_utils.errors import ParameterError

from finetune_fixtures import QUICK, data, tiny  # noqa: F401 (fixtures)
from finetune_fixtures import gc_labels as _gc_labels
from finetune_fixtures import random_seqs as _seqs


def test_run_grid_rows_and_kept_models(tiny, data, tmp_path):
    train, valid, test = data
    table = FR.run_grid({"a": str(tiny["dnabert3"]), "b": str(tiny["nt2"])}, train, valid, test, num_labels=2,
                        seeds=[0, 1], settings=QUICK, score=binary_metrics, progress=False,
                        keep_models_dir=tmp_path / "kept", tag="t")
    assert len(table) == 2 * 2 * 2
    assert set(zip(table.model, table.init)) == {(m, i) for m in "ab" for i in FT.INITS}
    assert {"mcc", "accuracy", "auroc", "best_step", "steps", "train_s"} <= set(table.columns)
    kept = sorted(p.name for p in (tmp_path / "kept").iterdir())
    assert kept[0] == "a-pretrained-t-seed0" and len(kept) == 8
    assert M.load_model(tmp_path / "kept" / kept[0], head="classification", num_labels=2).model.num_labels == 2
    summary = FR.summarize_runs(table, ["model", "init"])
    assert (summary.seeds == 2).all() and "mcc_mean" in summary and "mcc_std" in summary
    with pytest.raises(ParameterError, match="seeds is empty"):
        FR.run_grid({"a": str(tiny["nt2"])}, train, valid, test, num_labels=2, seeds=[], progress=False)
    with pytest.raises(ParameterError, match="init"):
        FR.run_grid({"a": str(tiny["nt2"])}, train, valid, test, num_labels=2, seeds=[0], inits=["frozen"], progress=False)


def test_run_cache_reuses_identical_runs_and_retrains_on_any_change(tiny, data, tmp_path, monkeypatch):
    train, valid, test = data
    cache = tmp_path / "cache"
    kw = dict(num_labels=2, seeds=[0], inits=["pretrained"], settings=QUICK, score=binary_metrics,
              score_id="binary", progress=False, cache_dir=cache)
    first = FR.run_grid({"a": str(tiny["nt2"])}, train, valid, test, **kw)
    assert not first.cached.any() and len(list(cache.glob("*.entry"))) == 1
    trained = []
    real = FR.finetune
    monkeypatch.setattr(FR, "finetune", lambda *a, **k: trained.append(k["seed"]) or real(*a, **k))
    again = FR.run_grid({"renamed": str(tiny["nt2"])}, train, valid, test, **kw)  # same content, another name
    assert again.cached.all() and trained == []
    cols = ["mcc", "accuracy", "auroc", "best_step", "steps", "train_s", "parameters"]
    assert again[cols].equals(first[cols]) and again.model.tolist() == ["renamed"]
    # Anything that determines the result is part of the key: seed, settings, data, scoring, model weights.
    FR.run_grid({"a": str(tiny["nt2"])}, train, valid, test, **{**kw, "seeds": [1]})
    FR.run_grid({"a": str(tiny["nt2"])}, train, valid, test, **{**kw, "settings": FT.FinetuneSettings(
        **{**QUICK.to_dict(), "learning_rate": 1e-3})})
    flipped = (train[0], 1 - train[1])
    FR.run_grid({"a": str(tiny["nt2"])}, flipped, valid, test, **kw)
    FR.run_grid({"a": str(tiny["nt2"])}, train, valid, test, **{**kw, "score_id": "binary/v2"})
    assert trained == [1, 0, 0, 0] and len(list(cache.glob("*.entry"))) == 5
    other = tmp_path / "nt2-altered"
    shutil.copytree(tiny["nt2"], other)
    (other / "vocab.txt").write_text((other / "vocab.txt").read_text() + "\n")
    assert M.model_digest(other) != M.model_digest(tiny["nt2"])
    # A damaged entry is never used: it is retrained and rewritten.
    shutil.rmtree(cache)
    FR.run_grid({"a": str(tiny["nt2"])}, train, valid, test, **kw)
    (entry,) = cache.glob("*.entry")
    entry.write_text(entry.read_text().replace('"accuracy": ', '"accuracy": 1', 1))
    trained.clear()
    rerun = FR.run_grid({"a": str(tiny["nt2"])}, train, valid, test, **kw)
    assert trained == [0] and not rerun.cached.any() and rerun.accuracy.iloc[0] == first.accuracy.iloc[0]
    key = FR.run_cache_key(model=M.model_digest(tiny["nt2"]), init="pretrained", seed=0, settings=QUICK, num_labels=2,
                           score_id="binary", data_sha256=FR.data_digest(train, valid, test), device=M.pick_device("auto"))
    assert entry == entry_path(cache, key)  # the grid stores each run under run_cache_key
    assert FR.read_cached_run(cache, key)["accuracy"] == first.accuracy.iloc[0]
    with pytest.raises(ParameterError, match="score_id"):
        FR.run_grid({"a": str(tiny["nt2"])}, train, valid, test, **{**kw, "score_id": None})
    assert FR.run_cache_dir("none") is None and FR.run_cache_dir("") is None
    assert FR.run_cache_dir("artifacts/x") == Path("artifacts/x")
    note = FR.cache_note(again)
    assert note.startswith("1 of the 1 runs were reused")


def test_init_gain_separates_a_real_gain_from_seed_noise():
    rows = []
    for seed, (p, r) in enumerate([(0.90, 0.60), (0.91, 0.61), (0.89, 0.59)]):
        rows += [{"model": "a", "init": "pretrained", "seed": seed, "accuracy": p},
                 {"model": "a", "init": "random", "seed": seed, "accuracy": r},
                 {"model": "b", "init": "pretrained", "seed": seed, "accuracy": 0.5 + 0.1 * (seed - 1)},
                 {"model": "b", "init": "random", "seed": seed, "accuracy": 0.5 - 0.1 * (seed - 1)}]
    gain = FR.init_gain(pd.DataFrame(rows), ["model"], "accuracy", n_test=1000).set_index("model")
    assert gain.loc["a", "gain"] == pytest.approx(0.30) and gain.loc["a", "verdict"] == "helps"
    assert gain.loc["b", "gain"] == pytest.approx(0.0) and gain.loc["b", "verdict"] == "within noise"
    # se = sqrt(s_p^2 / 3 + s_r^2 / 3) with sample variances over the three seeds
    assert gain.loc["a", "se"] == pytest.approx(np.sqrt(2 * np.var([0.90, 0.91, 0.89], ddof=1) / 3))
    one = FR.init_gain(pd.DataFrame(rows[:2]), ["model"], "accuracy", n_test=1000)
    assert one.verdict.tolist() == ["one seed"]
