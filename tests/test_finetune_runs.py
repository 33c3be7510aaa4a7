"""Grids of fine-tuning runs on tiny checkpoints: one row per model x init x seed, kept models, summaries, and the
run cache (reused only for identical inputs and code, a damaged entry retrained). (Pre-trained against random-initialised runs is judged in verdicts.)"""

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
from dnalm_utils.classification_metrics import binary_metrics, item_scores
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
    curves = FR.learning_curves(table)
    assert set(zip(curves.model, curves.init, curves.seed)) == set(zip(table.model, table.init, table.seed))
    for r in table.itertuples():  # each run's curve ends at its last step; its minimum is the best checkpoint
        c = curves[(curves.model == r.model) & (curves.init == r.init) & (curves.seed == r.seed)]
        assert c.step.max() == r.steps
        assert c.eval_loss.min() == pytest.approx(r.best_eval_loss, rel=1e-4)
        assert int(c.loc[c.eval_loss.idxmin()].step) == r.best_step
    assert FR.learning_curves(table.drop(columns="eval_curve")).empty
    runs, items = FR.run_grid({"a": str(tiny["nt2"])}, train, valid, test, num_labels=2, seeds=[0], settings=QUICK,
                              score=binary_metrics, progress=False, with_items=True, inits=["random"])
    assert len(items) == len(test[0]) and items.item.tolist() == list(range(len(test[0])))
    assert items.accuracy.mean() == pytest.approx(runs.accuracy.iloc[0])  # per-item scores average to the row's
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




def test_per_item_scores_round_trip_through_their_cache_text():
    rng = np.random.default_rng(0)
    correct, bits = (rng.random(1001) < 0.4).astype(float), rng.random(1001) * 3
    back = FR.decode_items(FR.encode_items(correct, bits))
    assert np.array_equal(back[0], correct) and np.array_equal(back[1], bits)  # exact: float64
    assert FR.decode_p1(FR.encode_items(correct, bits)) is None
    p1 = rng.random(1001)
    entry = FR.encode_items(correct, bits, p1=p1)
    assert np.array_equal(FR.decode_p1(entry), p1)
    frame = FR.items_frame([({"model": "m"}, entry), ({"model": "n"}, FR.encode_items(correct, bits))])
    assert np.array_equal(frame.p1.to_numpy()[:1001], p1) and frame.p1.iloc[1001:].isna().all()
    probs = np.array([[0.7, 0.3], [0.2, 0.8], [0.5, 0.5]])
    c, b = item_scores(probs, np.array([0, 0, 1]))
    assert c.tolist() == [1, 0, 0] and np.allclose(b, -np.log2([0.7, 0.2, 0.5]))  # a tie goes to class 0


