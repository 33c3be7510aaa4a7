"""Per-initialisation learning rates chosen on validation: the choice is the argmin of the validation loss, the
rows equal a plain grid at the chosen rate, and with a run cache the tuning run is not trained twice."""

from __future__ import annotations

import dataclasses

import pytest
from finetune_fixtures import QUICK, data, tiny  # noqa: F401 (fixtures)

from dnalm_utils import finetune_runs as FR
from dnalm_utils import lr_tuning as LT
from dnalm_utils.errors import ParameterError

RATES = {"pretrained": [1e-3, 5e-3], "random": [5e-3, 1e-5]}


def test_rates_are_chosen_on_validation_and_rows_equal_a_plain_grid(tiny, data, tmp_path):
    train, valid, test = data
    sources = {"dnabert3": tiny["dnabert3"], "nt2": tiny["nt2"]}
    kw = dict(device="cpu", progress=False, num_labels=2)
    runs, items, tuning = LT.tuned_grid(sources, train, valid, test, learning_rates=RATES, seeds=[0, 1],
                                        settings=QUICK, with_items=True, cache_dir=tmp_path, **kw)
    inits = ("pretrained", "random")
    assert list(zip(runs.model, runs.init, runs.seed)) == [(m, i, s) for m in sources for i in inits for s in (0, 1)]
    assert len(tuning) == 8 and list(tuning.columns) == ["model", "init", "learning_rate", "best_eval_loss", "chosen"]
    plain_columns = FR.run_grid({"nt2": sources["nt2"]}, train, valid, test, seeds=[0], inits=["random"],
                                settings=QUICK, **kw).columns
    # run_grid's own column order follows its first row (cached rows come back in the cache's key order)
    assert sorted(runs.columns) == sorted(list(plain_columns) + ["learning_rate", "max_steps", "patience"])
    assert list(runs.columns[:3]) == ["model", "init", "seed"]
    assert list(runs.columns[-3:]) == ["learning_rate", "max_steps", "patience"]
    assert (runs.max_steps == QUICK.max_steps).all() and (runs.patience == QUICK.patience).all()
    for (name, init), part in tuning.groupby(["model", "init"]):
        assert sorted(part.learning_rate) == sorted(RATES[init]) and part.chosen.sum() == 1
        losses = dict(zip(part.learning_rate, part.best_eval_loss))  # brute-force argmin, ties -> smaller rate
        best = min(sorted(losses), key=lambda lr: losses[lr])
        assert part[part.chosen].learning_rate.iloc[0] == best
        rows = runs[(runs.model == name) & (runs.init == init)].reset_index(drop=True)
        assert (rows.learning_rate == best).all()
        plain, plain_items = FR.run_grid({name: sources[name]}, train, valid, test, seeds=[0, 1], inits=[init],
                                         settings=dataclasses.replace(QUICK, learning_rate=best), with_items=True,
                                         **kw)
        for col in ("accuracy", "bits", "best_step", "steps", "best_eval_loss"):
            assert rows[col].tolist() == pytest.approx(plain[col].tolist())
        # the tuning run at the chosen rate is the seed-0 row, read from the cache; seed 1 was trained afresh
        assert rows.cached.tolist() == [True, False]
        assert rows.best_eval_loss.iloc[0] == pytest.approx(losses[best])
        mine = items[(items.model == name) & (items.init == init)]
        assert mine.bits.tolist() == pytest.approx(plain_items.bits.tolist())
    assert len(items) == len(runs) * len(test[1])
    text = LT.tuning_sentence(tuning)
    assert text.startswith("Learning rates were chosen on the validation loss of one seed, per model and init")
    for init, phrase in LT.INIT_PHRASES.items():
        counts = tuning[tuning.chosen & (tuning.init == init)].learning_rate.value_counts()
        clause = text.split(phrase)[1].split(";")[0]
        if len(counts) == 1:
            assert f"chose {LT.format_rate(counts.index[0])} for both models" in clause
        else:
            assert all(f"{LT.format_rate(lr)} for 1" in clause for lr in counts.index)
    assert LT.chosen_rates_sentence(runs, RATES) == text


def fake_grid(losses, calls):
    """A stand-in for run_grid: best_eval_loss = losses[(model, init, lr)] + seed (no training); logs each call."""
    import pandas as pd

    def grid(sources, train, valid, test, *, seeds, inits, settings, with_items=False, **_):
        lr = settings.learning_rate
        calls.append((tuple(sources), tuple(inits), tuple(seeds), lr))
        runs = pd.DataFrame([{"model": m, "init": i, "seed": s, "accuracy": 0.5,
                              "best_eval_loss": losses[(m, i, lr)] + s, "cached": False}
                             for m in sources for i in inits for s in seeds])
        items = pd.DataFrame([{"model": m, "init": i, "seed": s, "item": j, "bits": lr} for m in sources
                              for i in inits for s in seeds for j in range(2)])
        return (runs, items) if with_items else runs
    return grid


def test_models_that_choose_different_rates_are_grouped_and_put_back_in_order(monkeypatch):
    losses = {("a", "random", 1e-3): 0.5, ("a", "random", 1e-2): 0.7, ("b", "random", 1e-3): 0.9,
              ("b", "random", 1e-2): 0.6, ("c", "random", 1e-3): 0.4, ("c", "random", 1e-2): 0.4}  # c: a tie
    losses |= {(m, "pretrained", QUICK.learning_rate): 0.1 for m in "abc"}
    calls = []
    monkeypatch.setattr(FR, "run_grid", fake_grid(losses, calls))
    runs, items, tuning = LT.tuned_grid({m: m for m in "abc"}, None, None, None,
                                        learning_rates={"random": [1e-2, 1e-3]}, seeds=[3, 1], tune_seed=7,
                                        settings=QUICK, with_items=True)
    chosen = {"a": 1e-3, "b": 1e-2, "c": 1e-3}  # the tie goes to the smaller rate
    assert dict(zip(tuning[tuning.chosen].model, tuning[tuning.chosen].learning_rate)) == chosen
    assert calls[:2] == [(("a", "b", "c"), ("random",), (7,), 1e-3), (("a", "b", "c"), ("random",), (7,), 1e-2)]
    assert sorted(calls[2:]) == sorted([(("a", "b", "c"), ("pretrained",), (3, 1), QUICK.learning_rate),
                                        (("a", "c"), ("random",), (3, 1), 1e-3), (("b",), ("random",), (3, 1), 1e-2)])
    order = [(m, i, s) for m in "abc" for i in ("pretrained", "random") for s in (3, 1)]
    assert list(zip(runs.model, runs.init, runs.seed)) == order
    assert list(zip(items.model, items.init, items.seed)) == [o for o in order for _ in range(2)]
    want = [QUICK.learning_rate if i == "pretrained" else chosen[m] for m, i, _ in order]
    assert runs.learning_rate.tolist() == want and items.bits.tolist() == [w for w in want for _ in range(2)]
    assert LT.tuning_sentence(tuning) == ("Learning rates were chosen on the validation loss of one seed, per model "
                                          "and initialisation, among 1e-3 and 1e-2: the random-initialised twins chose "
                                          "1e-3 for 2 of 3 models, 1e-2 for 1.")


def test_a_single_candidate_runs_no_tuning_grid(tiny, data, monkeypatch):
    train, valid, test = data
    calls = []
    real = FR.run_grid
    monkeypatch.setattr(FR, "run_grid", lambda *a, **k: calls.append(k["settings"].learning_rate) or real(*a, **k))
    runs, tuning = LT.tuned_grid({"nt2": tiny["nt2"]}, train, valid, test, learning_rates={"random": [2e-3]},
                                 seeds=[0], settings=QUICK, device="cpu", progress=False, num_labels=2)
    assert tuning.empty and calls == [QUICK.learning_rate, 2e-3]  # one final grid per init, no tuning grid
    assert runs.learning_rate.tolist() == [QUICK.learning_rate, 2e-3]
    assert "no rate was tuned" in LT.tuning_sentence(tuning)
    assert "no rate was tuned" in LT.chosen_rates_sentence(runs, {"random": [2e-3]})
    calls.clear()  # no candidates at all: exactly the one plain run_grid call
    plain = LT.tuned_grid({"nt2": tiny["nt2"]}, train, valid, test, learning_rates=None, seeds=[0], settings=QUICK,
                          device="cpu", progress=False, num_labels=2)[0]
    direct = real({"nt2": tiny["nt2"]}, train, valid, test, seeds=[0], settings=QUICK, device="cpu", progress=False,
                  num_labels=2)
    assert calls == [QUICK.learning_rate] and plain.drop(columns="train_s").equals(
        direct.assign(learning_rate=QUICK.learning_rate, max_steps=QUICK.max_steps, patience=QUICK.patience)
        .drop(columns="train_s"))


def test_an_init_budget_reaches_its_tuning_and_final_runs_only(monkeypatch):
    losses = {(m, i, lr): 0.5 for m in "ab" for i in ("pretrained", "random") for lr in (1e-3, 1e-2, QUICK.learning_rate)}
    calls, budgets = [], []
    grid = fake_grid(losses, calls)

    def spy(sources, train, valid, test, *, settings, **kw):
        budgets.append((tuple(kw["inits"]), settings.max_steps, settings.patience, settings.eval_steps,
                        settings.batch_size))
        return grid(sources, train, valid, test, settings=settings, **kw)

    monkeypatch.setattr(FR, "run_grid", spy)
    runs, tuning = LT.tuned_grid({m: m for m in "ab"}, None, None, None, learning_rates={"random": [1e-2, 1e-3]},
                                 seeds=[0, 1], settings=QUICK, init_settings={"random": {"max_steps": 77, "patience": 5}})
    # two tuning grids and one final grid for the random init, all at its budget; the pre-trained grid at the shared one
    assert sorted(b for b in budgets if b[0] == ("random",)) == [(("random",), 77, 5, QUICK.eval_steps,
                                                                       QUICK.batch_size)] * 3
    assert [b for b in budgets if b[0] != ("random",)] == [(("pretrained",), QUICK.max_steps, QUICK.patience,
                                                            QUICK.eval_steps, QUICK.batch_size)]
    want = {"pretrained": (QUICK.max_steps, QUICK.patience), "random": (77, 5)}
    assert [(m, p) for m, p in zip(runs.max_steps, runs.patience)] == [want[i] for i in runs.init]
    calls.clear()  # the same budget for both inits and one rate: the one plain run_grid call
    LT.tuned_grid({m: m for m in "ab"}, None, None, None, learning_rates=None, seeds=[0], settings=QUICK,
                  init_settings={"random": {"max_steps": QUICK.max_steps}})
    assert [c[1] for c in calls] == [("pretrained", "random")]


def test_rates_chosen_elsewhere_are_not_tuned_again(monkeypatch):
    losses = {(m, "random", lr): {"a": 0.5, "b": 0.9}[m] + (lr == 1e-2) * {"a": 1, "b": -1}[m]
              for m in "ab" for lr in (1e-3, 1e-2)} | {(m, "pretrained", QUICK.learning_rate): 0.1 for m in "ab"}
    calls = []
    monkeypatch.setattr(FR, "run_grid", fake_grid(losses, calls))
    first, tuning = LT.tuned_grid({m: m for m in "ab"}, None, None, None, learning_rates={"random": [1e-3, 1e-2]},
                                  seeds=[0], settings=QUICK)
    picked = LT.chosen_from(tuning)
    assert picked == {("a", "random"): 1e-3, ("b", "random"): 1e-2}
    calls.clear()  # another task: every rate given, so no tuning grid, each model at its rate
    runs, again = LT.tuned_grid({m: m for m in "ab"}, None, None, None, learning_rates={"random": [1e-3, 1e-2]},
                                seeds=[0, 1], settings=QUICK, chosen_rates=picked)
    assert again.empty and all(c[2] == (0, 1) for c in calls)  # final grids only: both seeds, no tuning seed alone
    assert dict(zip(zip(runs.model, runs.init), runs.learning_rate)) == {**picked, ("a", "pretrained"): QUICK.learning_rate,
                                                                          ("b", "pretrained"): QUICK.learning_rate}
    calls.clear()  # only a given: b alone is tuned
    _, part = LT.tuned_grid({m: m for m in "ab"}, None, None, None, learning_rates={"random": [1e-3, 1e-2]},
                            seeds=[0], settings=QUICK, chosen_rates={("a", "random"): 1e-2})
    assert set(part.model) == {"b"} and [c[0] for c in calls[:2]] == [("b",), ("b",)]
    with pytest.raises(ParameterError, match="chosen_rates"):
        LT.tuned_grid({"a": "a"}, None, None, None, learning_rates=None, seeds=[0], settings=QUICK,
                      chosen_rates={("a", "random"): -1.0})


@pytest.mark.parametrize("budget, match", [({"warm": {"max_steps": 9}}, "init_settings has init"),
                                           ({"random": {"learning_rate": 1e-3}}, "learning_rates"),
                                           ({"random": {"batch_size": 8}}, "may change only"),
                                           ({"random": {"patience": 0}}, "patience")])
def test_bad_init_budgets_are_refused_before_any_training(budget, match, monkeypatch):
    monkeypatch.setattr(FR, "run_grid", lambda *a, **k: pytest.fail("trained despite bad input"))
    with pytest.raises(ParameterError, match=match):
        LT.tuned_grid({"m": "x"}, ([], []), ([], []), ([], []), learning_rates=None, seeds=[0], num_labels=2,
                      init_settings=budget)


@pytest.mark.parametrize("rates, match", [({"warm": [1e-3]}, "learning_rates.*warm"),
                                          ({"random": []}, r"learning_rates\['random'\]"),
                                          ({"random": [0.0, 1e-3]}, "positive"), ({"random": [-1e-3]}, "positive"),
                                          ({"random": ["fast"]}, "positive")])
def test_bad_rates_are_refused_before_any_training(rates, match, monkeypatch):
    monkeypatch.setattr(FR, "run_grid", lambda *a, **k: pytest.fail("trained despite bad input"))
    with pytest.raises(ParameterError, match=match):
        LT.tuned_grid({"m": "x"}, ([], []), ([], []), ([], []), learning_rates=rates, seeds=[0], num_labels=2)


@pytest.mark.parametrize("sources, seeds, match", [({"m": "x"}, [], "seeds"), ({}, [0], "sources"),
                                                  ({"m": "x"}, [-1], "seed")])
def test_no_seeds_or_models_is_refused(sources, seeds, match):
    with pytest.raises(ParameterError, match=match):
        LT.tuned_grid(sources, ([], []), ([], []), ([], []), learning_rates=None, seeds=seeds, num_labels=2)


@pytest.mark.parametrize("lr, text", [(5e-4, "5e-4"), (1.5e-3, "1.5e-3"), (2e-3, "2e-3"), (0.1, "0.1"),
                                      (1e-5, "1e-5"), (0.01, "1e-2")])
def test_format_rate(lr, text):
    assert LT.format_rate(lr) == text
