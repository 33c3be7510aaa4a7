"""Grids on executors: a 2 models x 2 inits x 2 seeds grid on tiny checkpoints gives the same table and per-item
scores serially, on 2 local processes and on a local 2-worker Dask cluster; a shared run cache is filled once and
never retrained; a failing run is named; bad executor settings are refused."""

from __future__ import annotations

import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest
import torch

from dnalm_utils import finetune_runs as FR
from dnalm_utils import grid_executors as GE
from dnalm_utils import models as M
from dnalm_utils.classification_metrics import binary_metrics
from dnalm_utils.errors import ParameterError

from finetune_fixtures import QUICK, data  # noqa: F401 (fixture)

SCORES = ["mcc", "accuracy", "auroc", "best_step", "steps", "stopped_early", "best_eval_loss", "tokenization",
          "parameters", "n_train", "n_valid"]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("grid-models")
    return {"bert3": str(M.make_tiny_dnabert(root / "bert3", k=3, hidden=16, intermediate=32, max_positions=64)),
            "nt2": str(M.make_tiny_nt(root / "nt2", k=2, hidden=16, intermediate=32, max_positions=64))}


def grid(models, data, **kw):
    train, valid, test = data
    return FR.run_grid(models, train, valid, test, num_labels=2, seeds=[0, 1], settings=QUICK, score=binary_metrics,
                       score_id="binary", progress=False, with_items=True, **kw)


@pytest.fixture(scope="module")
def serial(models, data):
    return grid(models, data)


def same_table(a, b):
    runs_a, items_a = a
    runs_b, items_b = b
    assert runs_a[["model", "init", "seed"]].equals(runs_b[["model", "init", "seed"]])  # the serial order
    for col in SCORES:
        assert runs_a[col].tolist() == runs_b[col].tolist(), col  # exactly, not approximately
    assert items_a.equals(items_b)


def test_serial_grid_order_is_model_init_seed(serial):
    runs, items = serial
    assert list(zip(runs.model, runs.init, runs.seed)) == [
        (m, i, s) for m in ("bert3", "nt2") for i in ("pretrained", "random") for s in (0, 1)]
    assert not runs.cached.any() and len(items) == 8 * 32
    assert runs.best_eval_loss.nunique() == 8  # the runs differ, so equal tables below are not an accident


def test_processes_grid_equals_serial_and_shares_the_cache(models, data, serial, tmp_path):
    cache = tmp_path / "cache"
    with GE.make_executor("processes:2", torch_threads=torch.get_num_threads()) as ex:
        assert isinstance(ex, ProcessPoolExecutor)
        first = grid(models, data, executor=ex, cache_dir=cache)
        same_table(first, serial)
        assert not first[0].cached.any()
        entries = sorted(cache.glob("*.entry"))
        assert len(entries) == 8  # one entry per run
        mtimes = [e.stat().st_mtime_ns for e in entries]
        submitted = []
        real_submit = ex.submit
        ex.submit = lambda fn, *a, **k: submitted.append(a) or real_submit(fn, *a, **k)
        again = grid(models, data, executor=ex, cache_dir=cache)
    assert again[0].cached.all() and submitted == []  # nothing trained or even sent to a worker ...
    assert [e.stat().st_mtime_ns for e in sorted(cache.glob("*.entry"))] == mtimes  # ... and no entry rewritten
    same_table(again, serial)
    # The serial path reads what the workers wrote (same key), and a cache hit on a worker is a cached row.
    assert grid(models, data, cache_dir=cache)[0].cached.all()
    spec = FR.RunSpec(name="x", source=models["nt2"], init="random", seed=1, train=(list(data[0][0]), data[0][1]),
                      valid=(list(data[1][0]), data[1][1]), test=(list(data[2][0]), data[2][1]), num_labels=2,
                      settings=QUICK, score=binary_metrics, score_id="binary", cache_dir=str(cache),
                      model_sha256=M.model_digest(models["nt2"]), data_sha256=FR.data_digest(*data))
    row, _ = FR.run_one(spec)
    expected = serial[0].query("model == 'nt2' and init == 'random' and seed == 1").iloc[0]
    assert row["cached"] and row["model"] == "x" and row["mcc"] == expected.mcc


def test_dask_grid_equals_serial(models, data, serial, tmp_path):
    t0 = time.perf_counter()
    with GE.make_executor("dask:2", torch_threads=torch.get_num_threads()) as ex:
        started = time.perf_counter() - t0
        cache = tmp_path / "cache"
        first = grid(models, data, executor=ex, cache_dir=cache)
        assert len(list(cache.glob("*.entry"))) == 8
        again = grid(models, data, executor=ex, cache_dir=cache)
    same_table(first, serial)
    assert not first[0].cached.any() and again[0].cached.all()
    print(f"dask:2 cluster start-up {started:.1f} s")


def test_a_failing_run_is_named(models, data, tmp_path):
    class BreakingExecutor(ProcessPoolExecutor):
        """Breaks the nt2 checkpoint after the grid has loaded every model, as a worker with a damaged copy would
        see it."""

        def submit(self, fn, *args, **kwargs):
            weights = next(p for p in (tmp_path / "nt2").iterdir() if p.suffix in (".safetensors", ".bin"))
            weights.write_bytes(b"not weights")
            return super().submit(fn, *args, **kwargs)

    import shutil

    shutil.copytree(models["nt2"], tmp_path / "nt2")
    sources = {"bert3": models["bert3"], "nt2": str(tmp_path / "nt2")}
    with BreakingExecutor(2, mp_context=__import__("multiprocessing").get_context("spawn")) as ex:
        with pytest.raises(FR.GridRunError, match=r"model='nt2' init='pretrained' seed=[01] failed") as err:
            grid(sources, data, executor=ex, inits=["pretrained"])
    assert err.value.__cause__ is not None  # the worker's own error is kept


def test_executor_settings_and_their_description():
    assert GE.parse_spec("") == ("serial", None) and GE.parse_spec(None) == ("serial", None)
    assert GE.parse_spec(" Serial ") == ("serial", None)
    assert GE.parse_spec("processes:3") == ("processes", 3) and GE.parse_spec("dask:2") == ("dask", 2)
    assert GE.parse_spec("dask:tcp://10.0.0.5:8786") == ("dask-address", "tcp://10.0.0.5:8786")
    for bad in ("threads:2", "processes", "processes:0", "dask:", "dask:two", "ray:2", "processes:-1"):
        with pytest.raises(ParameterError, match="executor=") as err:
            GE.parse_spec(bad)
        if "0" not in bad:
            assert "processes:N" in str(err.value) and "dask:tcp://host:port" in str(err.value)
    assert GE.describe_executor("serial") == "serial, in this process"
    assert GE.describe_executor("dask:2") == "2 local Dask workers"
    assert GE.describe_executor("processes:1") == "1 local worker process"
    assert GE.describe_executor("dask:tcp://h:1") == "the Dask cluster at tcp://h:1"
    with GE.make_executor("serial") as ex:
        assert ex is None
    with pytest.raises(ParameterError, match="torch_threads"):
        with GE.make_executor("processes:2", torch_threads=0):
            pass


def test_run_grid_refuses_what_cannot_reach_a_worker(models, data):
    train, valid, test = data
    with ProcessPoolExecutor(1) as ex, pytest.raises(ParameterError, match="lambda"):
        FR.run_grid(models, train, valid, test, num_labels=2, seeds=[0], progress=False, executor=ex,
                    score=lambda p, y: binary_metrics(p, y), score_id="b")
    with pytest.raises(ParameterError, match="concurrent.futures.Executor"):
        FR.run_grid(models, train, valid, test, num_labels=2, seeds=[0], progress=False, executor="dask:2")


def test_local_workers_get_one_gpu_each_round_robin(monkeypatch):
    import multiprocessing

    seen = []
    monkeypatch.setattr(GE, "configure_worker", lambda threads, gpu=None: seen.append((threads, gpu)))
    counter = multiprocessing.get_context("spawn").Value("i", 0)
    for _ in range(3):
        GE.init_process_worker(counter, ["4", "7"], 2)
    assert seen == [(2, "4"), (2, "7"), (2, "4")]
    GE.init_process_worker(counter, [], 1)
    assert seen[-1] == (1, None)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2, 5")
    assert GE.visible_gpus() == ["2", "5"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert GE.visible_gpus() == []
    assert np.all(GE.available_cpus() >= 1)


def test_benchmark_and_task_pass_the_executor_to_run_grid(monkeypatch, data):
    import pickle

    import pandas as pd

    from dnalm_utils import biotasks, nextkmer

    calls = []

    class Stop(Exception):
        pass

    def fake_run_grid(*args, **kwargs):
        calls.append(kwargs)
        raise Stop

    sentinel = object()
    monkeypatch.setattr(FR, "run_grid", fake_run_grid)
    rng = np.random.default_rng(0)
    windows = pd.DataFrame({"name": "r", "start": np.arange(4) * 30, "end": np.arange(4) * 30 + 26,
                            "sequence": ["".join(rng.choice(list("ACGT"), 26)) for _ in range(4)]})
    splits = nextkmer.NextKmerSplits(*(nextkmer.NextKmerWindows(s, 24, 2, windows) for s in ("train", "valid", "test")),
                                     blocks=pd.DataFrame())
    with pytest.raises(Stop):
        nextkmer.run_benchmark({"m": "x"}, splits, [2], seeds=[0], executor=sentinel)
    task = biotasks.ClassificationTask("t", ("a", "b"), {"train": data[0], "valid": data[1], "test": data[2]}, None)
    with pytest.raises(Stop):
        biotasks.run_task(task, {"m": "x"}, seeds=[0], executor=sentinel)
    assert [c["executor"] for c in calls] == [sentinel, sentinel]
    score = pickle.loads(pickle.dumps(calls[0]["score"]))  # the benchmark's scoring can reach a worker
    probs = np.full((3, 16), 1 / 16)
    assert score(probs, np.array([0, 1, 2]))["bits"] == pytest.approx(2.0)  # per nucleotide: 4 bits / k = 2
