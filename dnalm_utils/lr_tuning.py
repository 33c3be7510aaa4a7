"""Each initialisation's own learning rate, chosen on validation, for a fine-tuning grid.

A network fine-tuned from random weights usually wants another learning rate than the same network from
pre-trained weights, and a control trained at the wrong rate is a weak control. :func:`tuned_grid` runs
``finetune_runs.run_grid`` once per candidate rate on one seed, keeps per (model, init) the rate with the lowest
best validation loss (never a test score), then runs every seed at the chosen rate. With a run cache the tuning
run at the chosen rate is reused by the final grid, so it is trained once.

* :func:`tuned_grid` -- the grid with per-(model, init) rates, and the tuning table
* :func:`tuning_sentence` -- one computed sentence for the page (:func:`chosen_rates_sentence`: the same from the
  runs alone)
"""
from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

from .errors import ParameterError, check_int_range
from .finetuning import INITS, FinetuneSettings


def _by_init(values: Mapping | None, inits: Sequence[str], name: str) -> dict:
    """``values`` (init -> anything) as a dict; ParameterError naming ``name`` for an init not in ``inits``."""
    values = dict(values or {})
    unknown = sorted(set(values) - set(inits))
    if unknown:
        raise ParameterError(f"{name} has init(s) {unknown} that this grid does not run; use some of {list(inits)}.")
    return values


def check_learning_rates(learning_rates: Mapping | None, inits: Sequence[str],
                         default: float) -> dict[str, list[float]]:
    """init -> sorted distinct candidate rates (an init not in ``learning_rates`` gets ``[default]``). Raises
    ParameterError for an init not in ``inits``, an empty list or a non-positive rate."""
    learning_rates = _by_init(learning_rates, inits, "learning_rates")
    out = {}
    for init in inits:
        rates = learning_rates.get(init, [default])
        rates = [rates] if isinstance(rates, (int, float)) else list(rates)
        if not rates or any(isinstance(r, bool) or not isinstance(r, (int, float)) or not r > 0 for r in rates):
            raise ParameterError(f"learning_rates[{init!r}]={rates!r}: pass one or more positive learning rates, "
                                 "e.g. [0.0005, 0.002].")
        out[init] = sorted({float(r) for r in rates})
    return out


#: The settings an init may change for its own runs (``init_settings`` of :func:`tuned_grid`): its budget and
#: stopping rule. The learning rate has ``learning_rates``; batch size and the rest stay shared.
BUDGET_FIELDS = ("max_steps", "patience", "eval_steps")


def init_run_settings(settings: FinetuneSettings, init_settings: Mapping | None,
                      inits: Sequence[str]) -> dict[str, FinetuneSettings]:
    """init -> the settings its runs use: ``settings`` with the init's entries of ``init_settings`` (init ->
    {field: value}, fields among :data:`BUDGET_FIELDS`) put in. Raises ParameterError for an init not in ``inits``,
    a field outside :data:`BUDGET_FIELDS` or a value FinetuneSettings refuses."""
    init_settings = _by_init(init_settings, inits, "init_settings")
    out = {}
    for init in inits:
        changes = dict(init_settings.get(init) or {})
        bad = sorted(set(changes) - set(BUDGET_FIELDS))
        if bad:
            raise ParameterError(f"init_settings[{init!r}] sets {bad}: an init may change only {list(BUDGET_FIELDS)} "
                                 "(its learning rate goes in learning_rates).")
        out[init] = dataclasses.replace(settings, **changes)  # FinetuneSettings checks the values
    return out


def tuned_grid(sources: Mapping[str, str], train, valid, test, *, learning_rates: Mapping | None, seeds: Sequence[int],
               inits: Sequence[str] = INITS, settings: FinetuneSettings | None = None, tune_seed: int | None = None,
               with_items: bool = False, init_settings: Mapping | None = None,
               chosen_rates: Mapping | None = None, **grid_options):
    """``finetune_runs.run_grid`` with each (model, init)'s learning rate picked on validation.

    ``learning_rates``: init -> candidate peak rates (e.g. ``{"random": [5e-4, 2e-3]}``); inits not named use
    ``settings.learning_rate``. For an init with several candidates, every model is first fine-tuned once per
    candidate with ``tune_seed`` (default: the first of ``seeds``), and the rate with the lowest best validation
    loss is kept (ties: the smaller rate). ``init_settings``: init -> its own budget (:func:`init_run_settings`, e.g.
    ``{"random": {"max_steps": 1000, "patience": 8}}``: a network from random weights sits on a plateau longer);
    its tuning runs use it too. ``chosen_rates``: (model, init) -> a rate already picked on validation elsewhere
    (e.g. on another k of the same benchmark: :func:`chosen_from`); those pairs run at it and are not tuned again.
    ``grid_options`` go to every ``run_grid`` call (``cache_dir``, ``score``, ``executor`` ...).

    Returns ``(runs, tuning)`` (``(runs, items, tuning)`` with ``with_items``): ``runs`` has run_grid's rows in its
    order (model, init, seed) plus ``learning_rate``, ``max_steps`` and ``patience``; ``tuning`` one row per (model, init, candidate rate):
    model, init, learning_rate, best_eval_loss, chosen."""
    import pandas as pd

    from .finetune_runs import run_grid

    if not sources:
        raise ParameterError("sources is empty: pass at least one model (name -> what models.load_model takes).")
    seeds = [check_int_range("seed", s, 0) for s in seeds]
    if not seeds:
        raise ParameterError("seeds is empty: pass at least one seed (e.g. [0, 1, 2]).")
    settings = settings or FinetuneSettings()
    inits = list(inits)
    rates = check_learning_rates(learning_rates, inits, settings.learning_rate)
    per_init = init_run_settings(settings, init_settings, inits)
    tune_seed = seeds[0] if tune_seed is None else check_int_range("tune_seed", tune_seed, 0)
    chosen: dict[tuple[str, str], float] = {}
    for (name, init), lr in dict(chosen_rates or {}).items():
        if name in sources and init in inits:
            if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
                raise ParameterError(f"chosen_rates[{(name, init)!r}]={lr!r}: pass a positive learning rate.")
            chosen[(name, init)] = float(lr)
    tuning = []
    for init in inits:
        if len(rates[init]) == 1:
            chosen.update({(name, init): rates[init][0] for name in sources})
            continue
        todo = {name: src for name, src in sources.items() if (name, init) not in chosen}
        if not todo:
            continue
        for lr in rates[init]:
            trial = run_grid(todo, train, valid, test, seeds=[tune_seed], inits=[init],
                             settings=dataclasses.replace(per_init[init], learning_rate=lr), **grid_options)
            tuning += [{"model": r.model, "init": init, "learning_rate": lr, "best_eval_loss": float(r.best_eval_loss)}
                       for r in trial.itertuples()]
        table = pd.DataFrame(tuning)
        for name in todo:
            part = table[(table.model == name) & (table.init == init)].sort_values(["best_eval_loss", "learning_rate"])
            chosen[(name, init)] = float(part.learning_rate.iloc[0])
    tuning = pd.DataFrame(tuning, columns=["model", "init", "learning_rate", "best_eval_loss"])
    tuning["chosen"] = [chosen[(m, i)] == lr for m, i, lr in zip(tuning.model, tuning.init, tuning.learning_rate)]
    rates_used = set(chosen.values())
    if len(rates_used) == 1 and len({dataclasses.astuple(v) for v in per_init.values()}) == 1:
        # one rate and one budget everywhere (e.g. nothing tuned): the plain run_grid call
        calls = [(inits, rates_used.pop(), list(sources))]
    else:  # one call per (init, chosen rate) with the models that chose it
        calls = []
        for init in inits:
            by_rate: dict[float, list[str]] = {}
            for name in sources:
                by_rate.setdefault(chosen[(name, init)], []).append(name)
            calls += [([init], lr, names) for lr, names in by_rate.items()]
    parts, item_parts = [], []
    for call_inits, lr, names in calls:
        runs, items = run_grid({n: sources[n] for n in names}, train, valid, test, seeds=seeds, inits=call_inits,
                               settings=dataclasses.replace(per_init[call_inits[0]], learning_rate=lr), with_items=True,
                               **grid_options)
        budget = per_init[call_inits[0]]
        parts.append(runs.assign(learning_rate=lr, max_steps=budget.max_steps, patience=budget.patience))
        item_parts.append(items)
    order = {(n, i): k for k, (n, i) in enumerate((n, i) for n in sources for i in inits)}

    def serial(frame):
        key = [order[(m, i)] * 10**6 + seeds.index(s) for m, i, s in zip(frame.model, frame.init, frame.seed)]
        return frame.assign(_key=key).sort_values("_key", kind="stable").drop(columns="_key").reset_index(drop=True)

    runs = serial(pd.concat(parts, ignore_index=True))
    if with_items:
        return runs, serial(pd.concat(item_parts, ignore_index=True)), tuning
    return runs, tuning


def chosen_from(tuning) -> dict[tuple[str, str], float]:
    """(model, init) -> the rate a :func:`tuned_grid` tuning table chose, to pass as ``chosen_rates`` to other
    grids of the same models."""
    if tuning is None or not len(tuning):
        return {}
    picked = tuning[tuning.chosen.astype(bool)]
    return {(m, i): float(lr) for m, i, lr in zip(picked.model, picked.init, picked.learning_rate)}


def format_rate(lr: float) -> str:
    """A learning rate as the page writes it: 0.0005 -> "5e-4", 0.0015 -> "1.5e-3", 0.01 -> "1e-2", 0.1 -> "0.1"."""
    lr = float(lr)
    if 0.1 <= abs(lr) < 1e3:
        return f"{lr:g}"
    mantissa, exponent = f"{lr:.3e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def _join(words: Sequence[str]) -> str:
    words = list(words)
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


#: How the sentence names the runs of an init.
INIT_PHRASES = {"random": "the random-initialised twins", "pretrained": "the pre-trained models"}


def _rates_sentence(chosen, candidates: Mapping[str, Sequence[float]], by: Sequence[str],
                    fixed: Mapping[str, float] | None = None, scope: str = "") -> str:
    """chosen: one row per (by..., init) with the rate it ran at; candidates: init -> rates (tuned inits only);
    fixed: init -> the one rate of an untuned init; scope: words after "one seed" (e.g. " at k = 1, then used for
    every k")."""
    if not candidates:
        return "Every initialisation was fine-tuned at one learning rate (no rate was tuned)."
    by = list(by)
    unit = ("model", "models") if by == ["model"] else (f"({', '.join(by)}) combination",
                                                        f"({', '.join(by)}) combinations")
    all_rates = sorted({r for rates in candidates.values() for r in rates})
    parts = []
    for init, rates in candidates.items():
        part = chosen[chosen.init == init]
        n = len(part)
        if not n:
            continue
        counts = part.learning_rate.astype(float).value_counts()
        picks = [(int(counts.get(r, 0)), r) for r in rates if counts.get(r, 0)]
        picks.sort(key=lambda c: (-c[0], c[1]))
        who = INIT_PHRASES.get(init, f"the {init}-initialised runs")
        among = "" if rates == all_rates else f" (among {_join([format_rate(r) for r in rates])})"
        if len(picks) == 1:
            every = "the single" if n == 1 else "both" if n == 2 else f"all {n}"
            text = f"{who}{among} chose {format_rate(picks[0][1])} for {every} {unit[0] if n == 1 else unit[1]}"
        else:
            first, *rest = picks
            text = (f"{who}{among} chose {format_rate(first[1])} for {first[0]} of {n} {unit[1]}, "
                    + _join([f"{format_rate(r)} for {c}" for c, r in rest]))
        parts.append(text)
    if not parts:
        return "Every initialisation was fine-tuned at one learning rate (no rate was tuned)."
    parts += [f"{INIT_PHRASES.get(init, f'the {init}-initialised runs')} kept {format_rate(lr)} (not tuned)"
              for init, lr in (fixed or {}).items() if init not in candidates]
    what = _join(by + ["initialisation"])
    return (f"Learning rates were chosen on the validation loss of one seed{scope}, per {what}, among "
            f"{_join([format_rate(r) for r in all_rates])}: {'; '.join(parts)}.")


def tuning_sentence(tuning, *, by: Sequence[str] | None = None) -> str:
    """One computed sentence on a :func:`tuned_grid` tuning table (model, init, learning_rate, best_eval_loss,
    chosen; several tables may be concatenated with a column such as k or task): per tuned init, how many models
    (``by``; default every column but init and the rate columns, e.g. model and k) chose each candidate rate.
    Says so when no rate was tuned."""
    if tuning is None or not len(tuning):
        return _rates_sentence(None, {}, by or ["model"])
    by = list(by) if by is not None else [c for c in tuning.columns
                                          if c not in ("init", "learning_rate", "best_eval_loss", "chosen")]
    candidates = {i: sorted(set(map(float, part.learning_rate))) for i, part in tuning.groupby("init", sort=False)}
    chosen = tuning[tuning.chosen.astype(bool)].drop_duplicates(by + ["init"])
    return _rates_sentence(chosen, candidates, by)


def chosen_rates_sentence(runs, learning_rates: Mapping | None, *, by: Sequence[str] = ("model",),
                          scope: str = "") -> str:
    """:func:`tuning_sentence` from the runs alone (for callers that keep only :func:`tuned_grid`'s rows): rows
    with init and learning_rate (e.g. ``nextkmer.run_benchmark``'s, ``by=("model", "k")``) and the candidate rates
    that were passed. ``scope``: where the rates were picked, said after "one seed" (e.g. " at k = 1, then used
    for every k")."""
    candidates = {i: sorted({float(r) for r in v}) for i, v in dict(learning_rates or {}).items()
                  if not isinstance(v, (int, float)) and len(set(v)) > 1}
    if runs is None or not len(runs) or "learning_rate" not in runs:
        candidates = {}
    chosen = runs.drop_duplicates(list(by) + ["init"]) if candidates else None
    fixed = {}
    if candidates:
        for init, part in runs.groupby("init", sort=False):
            if init not in candidates and part.learning_rate.nunique() == 1:
                fixed[init] = float(part.learning_rate.iloc[0])
    return _rates_sentence(chosen, candidates, by, fixed, scope)


__all__ = ["check_learning_rates", "tuned_grid", "chosen_from", "init_run_settings", "BUDGET_FIELDS", "format_rate", "tuning_sentence", "chosen_rates_sentence",
           "INIT_PHRASES"]
