"""Fine-tuning on tiny checkpoints in temporary folders: the Trainer run, early stopping with the best checkpoint
restored, the random-initialisation control, determinism; the k-mer baseline; the biology task builders."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from dnalm_utils import finetuning as FT
from dnalm_utils import models as M
from dnalm_utils import tokenization as T
from dnalm_utils.errors import ParameterError

QUICK = FT.FinetuneSettings(learning_rate=5e-3, batch_size=16, max_steps=6, eval_steps=2, patience=5, precision="fp32",
                            eval_batch_size=64)


def _seqs(n, length=24, seed=0):
    rng = np.random.default_rng(seed)
    return ["".join(rng.choice(list("ACGT"), length)) for _ in range(n)]


def _gc_labels(seqs):
    return np.array([int(s.count("G") + s.count("C") > len(s) / 2) for s in seqs])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {"dnabert3": M.make_tiny_dnabert(root / "dnabert3", k=3, hidden=16, intermediate=32, max_positions=64),
            "nt2": M.make_tiny_nt(root / "nt2", k=2, hidden=16, intermediate=32, max_positions=64)}


@pytest.fixture(scope="module")
def data():
    train, valid, test = _seqs(96, seed=1), _seqs(32, seed=2), _seqs(32, seed=3)
    return (train, _gc_labels(train)), (valid, _gc_labels(valid)), (test, _gc_labels(test))


def _encoder_state(model):
    """Encoder weights that a masked-LM checkpoint holds: every tensor but the classification head and BERT's pooler
    (not in the checkpoint: new, like the head), named without the wrapper's prefix (bert. / backbone.)."""
    strip = lambda k: k.split(".", 1)[1] if k.startswith(("bert.", "backbone.")) else k  # noqa: E731
    return {strip(k): v.detach().clone() for k, v in model.state_dict().items()
            if not k.startswith(("classifier.", "dropout.")) and "pooler." not in k}


def _differs(a, b):
    return any(not torch.equal(a[k], b[k]) for k in a if a[k].is_floating_point())


def test_finetune_trains_and_random_init_differs(tiny, data, tmp_path):
    train, valid, _ = data
    original = _encoder_state(M.load_model(tiny["dnabert3"], head="base", dtype="float32").model)
    pre = FT.classification_model(tiny["dnabert3"], 2, init="pretrained", seed=0)
    assert not _differs(original, _encoder_state(pre.model))  # starts from the checkpoint
    rnd = FT.classification_model(tiny["dnabert3"], 2, init="random", seed=0)
    assert _differs(original, _encoder_state(rnd.model))  # same architecture, re-initialised weights
    assert rnd.model.config.to_dict()["hidden_size"] == pre.model.config.hidden_size
    assert sum(p.numel() for p in rnd.model.parameters()) == sum(p.numel() for p in pre.model.parameters())
    res = FT.finetune(tiny["dnabert3"], train, valid, num_labels=2, seed=0, settings=QUICK, work_dir=tmp_path)
    assert _differs(original, _encoder_state(res.lm.model))  # fine-tuning moved the encoder
    assert res.steps == 6 and not res.stopped_early and list(res.history.step) == [2, 4, 6]
    assert not any(tmp_path.iterdir())  # Trainer checkpoints are removed
    probs = FT.predict_proba(res.lm, valid[0])
    assert probs.shape == (32, 2) and np.allclose(probs.sum(1), 1)
    r2 = FT.finetune(tiny["dnabert3"], train, valid, num_labels=2, init="random", seed=0, settings=QUICK)
    assert _differs(_encoder_state(res.lm.model), _encoder_state(r2.lm.model))


def test_early_stopping_restores_the_best_checkpoint(tiny, data):
    rng = np.random.default_rng(0)
    train = (data[0][0], rng.integers(0, 4, 96))  # noise labels and a huge learning rate: validation loss rises
    valid = (data[1][0], rng.integers(0, 4, 32))
    s = FT.FinetuneSettings(learning_rate=0.3, batch_size=16, max_steps=60, eval_steps=1, patience=2, precision="fp32",
                            warmup_ratio=0.0)
    res = FT.finetune(tiny["nt2"], train, valid, num_labels=4, seed=1, settings=s)
    assert res.stopped_early and res.steps < 60
    losses = res.history.dropna(subset=["eval_loss"]).set_index("step").eval_loss
    assert res.best_step == int(losses.idxmin()) and res.best_eval_loss == pytest.approx(losses.min())
    assert res.steps - res.best_step >= 2  # stopped after `patience` evaluations without improvement
    probs = FT.predict_proba(res.lm, valid[0])
    nll = -np.mean(np.log(probs[np.arange(32), valid[1]]))
    assert nll == pytest.approx(res.best_eval_loss, rel=1e-4)  # the model returned is the best one


def test_finetune_is_deterministic_for_a_seed(tiny, data):
    train, valid, _ = data
    a = FT.finetune(tiny["nt2"], train, valid, num_labels=2, seed=5, settings=QUICK)
    b = FT.finetune(tiny["nt2"], train, valid, num_labels=2, seed=5, settings=QUICK)
    c = FT.finetune(tiny["nt2"], train, valid, num_labels=2, seed=6, settings=QUICK)
    assert not _differs(_encoder_state(a.lm.model), _encoder_state(b.lm.model))
    assert np.allclose(a.history.eval_loss, b.history.eval_loss)
    assert _differs(_encoder_state(a.lm.model), _encoder_state(c.lm.model))


def test_run_grid_rows_and_kept_models(tiny, data, tmp_path):
    train, valid, test = data
    table = FT.run_grid({"a": str(tiny["dnabert3"]), "b": str(tiny["nt2"])}, train, valid, test, num_labels=2,
                        seeds=[0, 1], settings=QUICK, score=FT.binary_metrics, progress=False,
                        keep_models_dir=tmp_path / "kept", tag="t")
    assert len(table) == 2 * 2 * 2
    assert set(zip(table.model, table.init)) == {(m, i) for m in "ab" for i in FT.INITS}
    assert {"mcc", "accuracy", "auroc", "best_step", "steps", "train_s"} <= set(table.columns)
    kept = sorted(p.name for p in (tmp_path / "kept").iterdir())
    assert kept[0] == "a-pretrained-t-seed0" and len(kept) == 8
    assert M.load_model(tmp_path / "kept" / kept[0], head="classification", num_labels=2).model.num_labels == 2
    summary = FT.summarize_runs(table, ["model", "init"])
    assert (summary.seeds == 2).all() and "mcc_mean" in summary and "mcc_std" in summary
    with pytest.raises(ParameterError, match="seeds is empty"):
        FT.run_grid({"a": str(tiny["nt2"])}, train, valid, test, num_labels=2, seeds=[], progress=False)
    with pytest.raises(ParameterError, match="init"):
        FT.run_grid({"a": str(tiny["nt2"])}, train, valid, test, num_labels=2, seeds=[0], inits=["frozen"], progress=False)


def test_run_cache_reuses_identical_runs_and_retrains_on_any_change(tiny, data, tmp_path, monkeypatch):
    train, valid, test = data
    cache = tmp_path / "cache"
    kw = dict(num_labels=2, seeds=[0], inits=["pretrained"], settings=QUICK, score=FT.binary_metrics,
              score_id="binary", progress=False, cache_dir=cache)
    first = FT.run_grid({"a": str(tiny["nt2"])}, train, valid, test, **kw)
    assert not first.cached.any() and len(list(cache.glob("*.json"))) == 1
    trained = []
    real = FT.finetune
    monkeypatch.setattr(FT, "finetune", lambda *a, **k: trained.append(k["seed"]) or real(*a, **k))
    again = FT.run_grid({"renamed": str(tiny["nt2"])}, train, valid, test, **kw)  # same content, another name
    assert again.cached.all() and trained == []
    cols = ["mcc", "accuracy", "auroc", "best_step", "steps", "train_s", "parameters"]
    assert again[cols].equals(first[cols]) and again.model.tolist() == ["renamed"]
    # Anything that determines the result is part of the key: seed, settings, data, scoring, model weights.
    FT.run_grid({"a": str(tiny["nt2"])}, train, valid, test, **{**kw, "seeds": [1]})
    FT.run_grid({"a": str(tiny["nt2"])}, train, valid, test, **{**kw, "settings": FT.FinetuneSettings(
        **{**QUICK.to_dict(), "learning_rate": 1e-3})})
    flipped = (train[0], 1 - train[1])
    FT.run_grid({"a": str(tiny["nt2"])}, flipped, valid, test, **kw)
    FT.run_grid({"a": str(tiny["nt2"])}, train, valid, test, **{**kw, "score_id": "binary/v2"})
    assert trained == [1, 0, 0, 0] and len(list(cache.glob("*.json"))) == 5
    other = tmp_path / "nt2-altered"
    shutil.copytree(tiny["nt2"], other)
    (other / "vocab.txt").write_text((other / "vocab.txt").read_text() + "\n")
    assert M.model_digest(other) != M.model_digest(tiny["nt2"])
    # A damaged entry is never used: it is retrained and rewritten.
    shutil.rmtree(cache)
    FT.run_grid({"a": str(tiny["nt2"])}, train, valid, test, **kw)
    (entry,) = cache.glob("*.json")
    entry.write_text(entry.read_text().replace('"accuracy": ', '"accuracy": 1', 1))
    trained.clear()
    rerun = FT.run_grid({"a": str(tiny["nt2"])}, train, valid, test, **kw)
    assert trained == [0] and not rerun.cached.any() and rerun.accuracy.iloc[0] == first.accuracy.iloc[0]
    assert FT.read_cached_run(cache, json.loads(entry.read_text())["manifest"]) is not None
    with pytest.raises(ParameterError, match="score_id"):
        FT.run_grid({"a": str(tiny["nt2"])}, train, valid, test, **{**kw, "score_id": None})
    assert FT.run_cache_dir("none") is None and FT.run_cache_dir("") is None
    assert FT.run_cache_dir("artifacts/x") == Path("artifacts/x")
    note = FT.cache_note(again)
    assert note.startswith("1 of the 1 runs were reused")


def test_dataset_tokenizes_each_sequence_alone_and_checks_input():
    tok = T.OverlappingKmerTokenizer(3)
    seqs = ["ACGTACGT", "TTTTGGG"]
    ds = FT.SequenceDataset(tok, seqs, [0, 1])
    for s, enc, item in zip(seqs, ds.encodings, (ds[0], ds[1])):
        assert enc.spans.max() <= len(s)
        assert item["input_ids"][0] == tok.cls_id and item["input_ids"][-1] == tok.sep_id
        assert item["input_ids"][1:-1].tolist() == tok.encode(s).ids.tolist()
    batch = FT.PadCollator(tok)([ds[0], ds[1]])
    assert batch["input_ids"].shape == (2, 8) and batch["attention_mask"][1].tolist() == [1] * 7 + [0]
    with pytest.raises(ParameterError, match="labels"):
        FT.SequenceDataset(tok, seqs, [0])
    with pytest.raises(ParameterError, match="up to 98 tokens .* more than the model's 50"):
        FT.SequenceDataset(tok, ["A" * 100], [0], max_tokens=50)
    with pytest.raises(ParameterError, match="learning_rate"):
        FT.FinetuneSettings(learning_rate=0)
    with pytest.raises(ParameterError, match="init"):
        FT.classification_model("x", 2, init="frozen")


def test_kmer_counts_and_logistic_regression():
    seqs = ["ACGTN" + "AC", "aaaa"]
    X = FT.kmer_count_matrix(seqs, 2).toarray()
    codes = {"AC": 1, "CG": 6, "GT": 11, "AA": 0}
    assert X[0, codes["AC"]] == 2 and X[0, codes["CG"]] == 1 and X[0, codes["GT"]] == 1 and X[0].sum() == 4
    assert X[1, codes["AA"]] == 3 and X[1].sum() == 3  # lower case counts; no k-mer spans two sequences
    train = _seqs(200, seed=4)
    y = _gc_labels(train)
    probs = FT.kmer_logistic_regression(train, y, train[:50], num_classes=3, kmer=2)
    assert probs.shape == (50, 3) and np.allclose(probs.sum(1), 1) and (probs[:, 2] < 1e-6).all()
    assert np.mean(probs[:, :2].argmax(1) == y[:50]) > 0.8  # GC content is visible in 2-mer counts


def test_write_results_with_manifest(tmp_path):
    import pandas as pd

    table = pd.DataFrame({"model": ["a"], "accuracy": [0.5]})
    path = FT.write_results(table, tmp_path / "runs.csv", manifest={"seeds": [0, 1]})
    assert pd.read_csv(path).equals(table)
    meta = json.loads((tmp_path / "runs.manifest.json").read_text())
    assert meta["seeds"] == [0, 1] and meta["rows"] == 1 and "torch" in meta["versions"]


def test_tf_peak_task_splits_by_chromosome_and_keeps_leaks_out():
    task = FT.tf_peak_task(peak_nt=100, valid_chroms=["chr7"], test_chroms=["chr8", "chr9"], max_train=500)
    t = task.table
    assert set(t[t.split == "test"].chrom) == {"chr8", "chr9"} and set(t[t.split == "valid"].chrom) == {"chr7"}
    assert not t[t.split != "train"].leaky.any()
    assert len(task.splits["train"][0]) == 500
    assert all(len(s) == 100 and set(s) <= set("ACGT") for s in task.splits["test"][0])
    assert set(np.unique(task.splits["test"][1])) == {0, 1} and task.classes == ("Mafk", "Oct4")
    assert task.notes["leaky_in_evaluation_chromosomes"] >= 0
    with pytest.raises(ParameterError, match="disjoint"):
        FT.tf_peak_task(valid_chroms=["chr8"], test_chroms=["chr8"])
    with pytest.raises(ParameterError, match="no peak"):
        FT.tf_peak_task(test_chroms=["chrZ"])


def test_exon_intron_task_is_balanced_and_block_split():
    from dnalm_utils import data, pretraining

    task = FT.exon_intron_task(window_nt=80, block_nt=40_000, max_train_per_class=300, max_eval_per_class=100, seed=0)
    t = task.table
    for split in ("train", "valid", "test"):
        y = task.splits[split][1]
        assert (y == 1).sum() == (y == 0).sum() > 0
        assert (y == 1).sum() <= (300 if split == "train" else 100)
    records = {r.name: r.sequence for r in pretraining.corpus_records()}
    masks = FT.annotation_masks({n: len(s) for n, s in records.items()}, data.load_features())
    for r in t.sample(100, random_state=0).itertuples():
        exonic, intronic = masks[r.name]
        assert (exonic if r.y == 1 else intronic)[r.start : r.end].all()
    a = t[t.split == "train"]
    for other in ("valid", "test"):  # windows of different splits are more than a window apart
        b = t[t.split == other]
        for name in set(a.name) & set(b.name):
            x, y = a[a.name == name], b[b.name == name]
            gap = np.maximum(x.start.to_numpy()[:, None], y.start.to_numpy()[None, :]) - np.minimum(
                x.end.to_numpy()[:, None], y.end.to_numpy()[None, :])
            assert (gap >= 80).all()
