"""Choose a pre-training recipe on held-out pre-training records, never on the test region.

Each variant of a zoo arm (the arm's recipe with some settings changed: learning rate, warm-up, position
initialisation, heads ...) is pre-trained under the package's one cache rule (``pretraining.train``) and read with
chapter 2's convergence gates (``convergence.gate_table``: held-out loss flat, the overlap rule for overlapping
k-mers, one hidden nucleotide against the two-sided n-gram for single nucleotides) and its hidden-nucleotide
accuracy on the held-out blocks of the pre-training corpus. The table says which recipe to put in the zoo
(:func:`best_variant`: the lowest held-out loss, the objective itself, averaged over seed replicates where the
table has them, and a change must beat the base recipe's own seed range where that was measured
(:func:`seed_spread_sentence` says how each choice stands against the seeds); the gates are reported beside it,
not used to choose, since a variant that learns nothing has a flat loss curve), and the chapter shows it as the
record of how the recipe was chosen.

* :func:`tune_recipe` -- train and score every variant of one arm, one row per variant
* :func:`best_variant` -- the chosen row
* ``python -m dnalm_utils.recipe_tuning overlap6 --variant position_init=sinusoidal --variant learning_rate=1e-3``
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Mapping, Sequence

from .errors import ParameterError

#: Variant name of the base recipe: the arm's recipe as ``pretraining.ZOO`` had it when the table was written, with
#: the CLI's ``--set`` changes (its manifest records them).
BASE_VARIANT = "base recipe"


def variant_label(changes: Mapping) -> str:
    """'learning_rate=0.001, position_init=sinusoidal' (sorted keys); :data:`BASE_VARIANT` for no change."""
    return ", ".join(f"{k}={changes[k]}" for k in sorted(changes)) or BASE_VARIANT


def variant_name(arm: str, changes: Mapping) -> str:
    """Folder name of one variant of ``arm``: the arm itself for no change, else ``<arm>__tune<8 hex>``."""
    if not changes:
        return arm
    digest = hashlib.sha256(json.dumps(dict(changes), sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"{arm}__tune{digest}"


def recipe_digest(cfg) -> str:
    """12 hex digits of the SHA-256 of a PretrainConfig's settings without its name: equal for two folders trained
    with the same recipe under different names (a tuning variant and the zoo arm that adopted it)."""
    settings = {k: v for k, v in cfg.to_dict().items() if k != "name"}
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:12]


def variant_configs(arm: str, variants: Sequence[Mapping], *, base_overrides: Mapping | None = None) -> dict:
    """label -> PretrainConfig for the arm's recipe (with ``base_overrides``, e.g. fewer steps) and each variant
    on top of it. Raises ParameterError for an unknown arm or setting, a variant that changes what the gates
    compare across variants (scheme, k, masking, window_nt, corpus split), or a duplicate variant."""
    from .pretraining import zoo_config

    fixed = ("scheme", "k", "masking", "window_nt", "data_seed", "heldout_fraction", "heldout_block_nt", "name")
    base = zoo_config(arm, **dict(base_overrides or {}))
    out = {}
    for changes in [{}, *variants]:
        changes = dict(changes)
        bad = sorted(set(changes) & set(fixed))
        if bad:
            raise ParameterError(f"variant {changes} of {arm!r} changes {bad}: a recipe variant keeps the tokenization, "
                                 "masking, window and held-out split, so its gates and held-out loss compare with the "
                                 "arm's; make another arm (pretraining.ZOO) instead.")
        label = variant_label(changes)
        if label in out:
            raise ParameterError(f"variant {label!r} of {arm!r} is given twice.")
        out[label] = base.replace(name=variant_name(arm, changes), **changes)
    return out


def tune_recipe(arm: str, variants: Sequence[Mapping], *, base_overrides: Mapping | None = None, models_dir=None,
                corpus=None, n_windows: int = 500, ngram_max_order: int = 8, device: str = "auto",
                progress: bool = False, log=print):
    """Pre-train the zoo arm ``arm`` and each of ``variants`` (dicts of PretrainConfig settings to change) and
    score them on held-out pre-training windows.

    Returns a DataFrame, one row per variant (the unchanged recipe first): arm, variant, every changed setting,
    wall_s (the training's own wall time, from the model's manifest, also for a cached model), cached, heldout_loss (nats per masked token at the last step), accuracy (one hidden
    nucleotide, ``convergence.HeldoutReference``), ngram_accuracy (the two-sided n-gram on the same nucleotides),
    gates_passed, gates, and one ``gate:<name>`` column per gate (its value), nucleotides (the training budget:
    steps x windows per step x window length), plus ``recipe``
    (:func:`recipe_digest`) and ``folder``.
    ``models_dir``: where the variants are trained and cached (default: ``<models dir>/recipe-tuning``).
    """
    import pandas as pd

    from . import convergence
    from .corpus import corpus_fingerprint
    from .models import default_models_dir, load_model
    from .pretraining import cached_model, train

    configs = variant_configs(arm, variants, base_overrides=base_overrides)
    root = Path(models_dir) if models_dir else default_models_dir() / "recipe-tuning"
    corpus_sha = corpus_fingerprint(corpus)
    refs = None
    rows = []
    for changes, (label, cfg) in zip([{}, *variants], configs.items()):
        cached = cached_model(cfg, root, corpus_sha, device=device) is not None
        folder = train(cfg, models_dir=root, corpus=corpus, progress=progress, log=log, device=device)
        if refs is None:
            refs = convergence.heldout_references({cfg.name: cfg}, corpus=corpus, n_windows=n_windows,
                                                  ngram_max_order=ngram_max_order)
        ref = next(iter(refs.values()))
        lm = load_model(folder, device=device)
        gates = convergence.gate_table({cfg.name: lm}, {cfg.name: folder}, {cfg.name: cfg},
                                       references={cfg.name: ref})
        curve = pd.read_csv(Path(folder) / "loss_curve.csv").dropna(subset=["heldout_loss"])
        rows.append({"arm": arm, "variant": label, **changes, "recipe": recipe_digest(cfg), "wall_s": _training_seconds(folder), "cached": cached,
                     "nucleotides": int(cfg.steps) * int(cfg.batch_size) * int(cfg.window_nt),
                     "heldout_loss": float(curve.sort_values("step").heldout_loss.iloc[-1]),
                     "accuracy": float(ref.score(lm)["accuracy"]), "ngram_accuracy": ref.ngram_accuracy,
                     "gates_passed": int(gates.passed.astype(bool).sum()), "gates": len(gates),
                     **{f"gate:{g.gate}": float(g.value) for g in gates.itertuples()}, "folder": str(folder)})
        del lm
    return pd.DataFrame(rows)


def _training_seconds(folder) -> float:
    from .pretraining import MANIFEST

    return float(json.loads((Path(folder) / MANIFEST).read_text())["wall_time_s"])


def recipe_label(variant: str) -> str:
    """The recipe a variant label stands for, its ``seed=N`` setting removed: "batch_size=32, seed=1" ->
    "batch_size=32", "seed=2" -> :data:`BASE_VARIANT`. Rows of one recipe with other seeds are its replicates."""
    if variant == BASE_VARIANT:
        return BASE_VARIANT
    kept = [item for item in str(variant).split(", ") if not item.startswith("seed=")]
    return ", ".join(kept) or BASE_VARIANT


def recipe_losses(table):
    """One row per recipe of a :func:`tune_recipe` table (seed replicates pooled, :func:`recipe_label`), in table
    order: recipe, seeds (rows), mean, low and high held-out loss (nats), and ``first`` (the row index of the
    recipe's first row, its seed-0 run when the table lists it first)."""
    import pandas as pd

    labels = [recipe_label(v) for v in table.variant]
    rows = []
    for label in dict.fromkeys(labels):
        idx = [i for i, lab in enumerate(labels) if lab == label]
        loss = table.heldout_loss.iloc[idx].astype(float)
        rows.append({"recipe": label, "seeds": len(idx), "mean": float(loss.mean()), "low": float(loss.min()),
                     "high": float(loss.max()), "first": idx[0]})
    return pd.DataFrame(rows)


def _pick(pooled) -> tuple[int, int | None]:
    """(chosen, lowest): row positions in ``pooled`` (:func:`recipe_losses`) of the chosen recipe and of the
    lowest mean when the base recipe was kept over it (else None). See :func:`best_variant`."""
    order = sorted(range(len(pooled)), key=lambda i: (pooled["mean"].iloc[i], i))
    lowest = order[0]
    base = [i for i in range(len(pooled)) if pooled.recipe.iloc[i] == BASE_VARIANT]
    if base and lowest != base[0] and pooled.seeds.iloc[base[0]] > 1:
        b = base[0]
        gain = pooled["mean"].iloc[b] - pooled["mean"].iloc[lowest]
        if gain <= pooled.high.iloc[b] - pooled.low.iloc[b]:
            return b, lowest
    return lowest, None


def best_variant(table) -> dict:
    """The chosen row of a :func:`tune_recipe` table: the recipe with the lowest held-out loss (the masked-LM
    objective on held-out pre-training windows; every variant keeps the arm's tokenization and masking, so the
    losses compare), averaged over its seeds where the table holds replicates (rows that differ only in
    ``seed``); the row returned is the recipe's first. Where the base recipe has seed replicates, a change must
    lower the mean by more than the base recipe's own range over seeds, else the base recipe is kept (a gain
    within seed noise is not a difference). Ties: the earlier recipe, so the unchanged recipe wins a tie. Gates
    are not used to choose: a variant that learns nothing passes the flatness gate."""
    if table is None or not len(table):
        raise ParameterError("best_variant: the tuning table is empty; run tune_recipe first.")
    pooled = recipe_losses(table)
    return table.iloc[int(pooled["first"].iloc[_pick(pooled)[0]])].to_dict()


def seed_spread_sentence(part) -> str:
    """For an arm's tuning rows with seed replicates: each replicated recipe's range over seeds, and how the
    choice of :func:`best_variant` stands against them: the chosen recipe's gain over the base recipe (difference
    of seed means) beside the base recipe's range and, where replicated, the chosen recipe's own; or, when the
    base recipe was kept, the lowest mean's gain that did not exceed the base recipe's range. "" when no recipe
    has more than one seed."""
    pooled = recipe_losses(part)
    replicated = pooled[pooled.seeds > 1]
    if not len(replicated):
        return ""
    rng = {r.recipe: r.high - r.low for r in replicated.itertuples()}
    text = " Seed replicates (held-out loss, nats): " + "; ".join(
        f"{r.recipe} {r.low:.3f}-{r.high:.3f} over {r.seeds} seeds" for r in replicated.itertuples()) + "."
    chosen, lowest = _pick(pooled)
    base = pooled[pooled.recipe == BASE_VARIANT]
    if lowest is not None:
        gain = float(pooled["mean"].iloc[chosen] - pooled["mean"].iloc[lowest])
        return text + (f" The lowest mean, {pooled.recipe.iloc[lowest]}, is {gain:.3f} nats below the base recipe's, "
                       f"within the base recipe's seed range ({rng[BASE_VARIANT]:.3f}): not a difference, so the base "
                       "recipe is kept.")
    best = pooled.recipe.iloc[chosen]
    if best == BASE_VARIANT or not len(base):
        return text
    gain = float(base["mean"].iloc[0] - pooled["mean"].iloc[chosen])
    text += f" The chosen recipe lowers the mean by {gain:.3f} nats"
    if BASE_VARIANT in rng:
        text += f", more than the base recipe's seed range ({rng[BASE_VARIANT]:.3f})"
    if best in rng:
        row = pooled[pooled.recipe == best].iloc[0]
        apart = row.high < base.low.iloc[0]
        text += (f"; its own seeds span {rng[best]:.3f} nats, " + ("less" if rng[best] < gain else "more")
                 + " than the gain, and " + ("every seed of it lies below every seed of the base recipe"
                                             if apart else "the seeds of the two recipes overlap"))
    return text + "."


def _read_tables(folder, required: set, what: str, variant_hint: str):
    """(path, DataFrame) of every ``*.csv`` in ``folder`` (none for no folder), each checked to hold the
    ``required`` columns; ParameterError naming the file and how to write one otherwise."""
    import pandas as pd

    paths = sorted(Path(folder).glob("*.csv")) if folder and Path(folder).is_dir() else []
    out = []
    for path in paths:
        table = pd.read_csv(path)
        missing = set(required) - set(table.columns)
        if missing:
            raise ParameterError(f"{path}: not a {what} table (missing columns {sorted(missing)}); write it with "
                                 f"`python -m dnalm_utils.recipe_tuning ARM --variant {variant_hint} --out FILE`.")
        out.append((path, table))
    return out


def tuning_record(folder, configs: Mapping, manifests=None):
    """Every :func:`tune_recipe` table (``*.csv``) in ``folder`` as one DataFrame, with ``chosen`` (the row
    :func:`best_variant` picks for its arm), ``in_zoo`` (the names in ``configs`` -- name -> PretrainConfig of
    this run -- trained with exactly that recipe, :func:`recipe_digest`; "" for none) and, given ``manifests``
    (``pretraining.zoo_manifests``: model, final held-out loss), ``zoo_heldout_loss`` (this run's final held-out
    loss of the first such model; NaN for none). Empty DataFrame when the folder holds no table."""
    import pandas as pd

    found = _read_tables(folder, {"arm", "variant", "recipe", "heldout_loss"}, "recipe-tuning", "...")
    if not found:
        return pd.DataFrame()
    tables = []
    for _, table in found:
        chosen = best_variant(table)["variant"]
        tables.append(table.assign(chosen=table.variant == chosen))
    record = pd.concat(tables, ignore_index=True)
    by_recipe: dict[str, list[str]] = {}
    for name, cfg in configs.items():
        by_recipe.setdefault(recipe_digest(cfg), []).append(str(name))
    record["in_zoo"] = [", ".join(by_recipe.get(str(r), [])) for r in record.recipe]
    if manifests is not None and len(manifests):
        loss = dict(zip(manifests.model, manifests["final held-out loss"]))
        record["zoo_heldout_loss"] = [float(loss.get(z.split(", ")[0], float("nan"))) if z else float("nan")
                                      for z in record.in_zoo]
    return record


def tuning_sentence(record) -> str:
    """Per tuned arm, one computed sentence: the recipes tried, the held-out loss of the previous recipe and of
    the chosen one, whether this run's zoo uses the chosen recipe, and, where this run trained a recipe of the
    record, whether its held-out loss reproduces the record's (same numbers on CPU)."""
    import numpy as np

    if record is None or not len(record):
        return ("No recipe-tuning record was given: every arm uses the zoo's recipe as written in "
                "`pretraining.ZOO` (tune one with `python -m dnalm_utils.recipe_tuning`).")
    out = []
    for arm, part in record.groupby("arm", sort=False):
        best = part[part.chosen].iloc[0]
        losses = "; ".join(f"{v} {loss:.3f}" for v, loss in zip(part.variant, part.heldout_loss))
        n = int((part.variant != BASE_VARIANT).sum())
        head = (f"For {arm}, {n} change{'s' if n != 1 else ''} of the {BASE_VARIANT} {'were' if n != 1 else 'was'} "
                f"tried (held-out loss in nats: {losses}). ")
        pick = "The chosen recipe (lowest held-out loss, mean over seeds) is " + (
            f"the {BASE_VARIANT}" if best.variant == BASE_VARIANT else best.variant)
        uses = part[part.in_zoo.astype(str) != ""]
        if best.in_zoo:
            pick += f", the recipe this run's zoo uses ({best.in_zoo})."
        elif len(uses):
            pick += f"; this run's zoo uses {uses.variant.iloc[0]} instead ({uses.in_zoo.iloc[0]})."
        else:
            pick += "; this run trained none of the recipes in the record (other settings), so the record does not apply to it."
        check = ""
        if "zoo_heldout_loss" in part.columns and len(uses) and np.isfinite(uses.zoo_heldout_loss.iloc[0]):
            a, b = float(uses.heldout_loss.iloc[0]), float(uses.zoo_heldout_loss.iloc[0])
            check = (f" This run reproduces the record's held-out loss ({b:.4f} nats)." if abs(a - b) < 1e-4 else
                     f" This run's held-out loss ({b:.4f} nats) differs from the record's ({a:.4f}): another machine or "
                     "library version.")
        out.append(head + pick + check + seed_spread_sentence(part))
    return " ".join(out)


def budget_record(folder):
    """Every budget table in ``folder`` (``*.csv``, each a :func:`tune_recipe` table of one arm whose variants change
    only ``steps``, and ``seed`` for replicates) as one DataFrame with ``multiple``: the row's nucleotides over its
    arm's base recipe's. Empty DataFrame for no folder or no table. Raises ParameterError naming the file for a
    table without the base recipe, without a ``nucleotides`` column (written before it existed: rerun the CLI, the
    models are cached) or with a variant that changes anything but the budget."""
    import pandas as pd

    tables = []
    for path, table in _read_tables(folder, {"arm", "variant", "heldout_loss", "nucleotides", "gates_passed", "gates"},
                                    "budget", "steps=N"):
        for variant in table.variant:
            keys = {item.partition("=")[0] for item in str(variant).split(", ")} - {"seed"}
            if variant != BASE_VARIANT and keys - {"steps"}:
                raise ParameterError(f"{path}: variant {variant!r} changes {sorted(keys - {'steps'})}; a budget table "
                                     "varies only steps (and seed), so that the rows differ in the budget alone.")
        for arm, part in table.groupby("arm", sort=False):
            base = part[part.variant == BASE_VARIANT]
            if not len(base):
                raise ParameterError(f"{path}: arm {arm} has no {BASE_VARIANT!r} row to measure the budget against.")
            tables.append(part.assign(multiple=part.nucleotides / float(base.nucleotides.iloc[0])))
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()


def _gate_phrase(gate: str, value: float) -> str:
    from .convergence import FLAT_TOLERANCE_NATS, OVERLAP_RULE_MIN

    if gate == "flat":
        return f"loss fell {value:.3f} nats over the last quarter (gate: at most {FLAT_TOLERANCE_NATS})"
    if gate == "overlap_rule":
        return f"overlap rule {100 * value:.1f} % at its worst m (gate: {100 * OVERLAP_RULE_MIN:.0f} %)"
    if gate == "context_vs_ngram":
        return f"{100 * value:+.1f} points against the two-sided n-gram on one hidden nucleotide (gate: at least 0)"
    return f"{gate} {value:.3f}"


def budget_sentence(record, configs: Mapping | None = None) -> str:
    """Markdown, one bullet per arm of a :func:`budget_record`: at each budget (a multiple of the base recipe's
    nucleotides) the held-out loss, the gates passed and each gate's value, and the wall time; then the smallest
    budget tried that passes every gate, or that none does; for an arm without the n-gram gate, its accuracy on
    one hidden nucleotide beside the n-gram's. Seed replicates of one budget are reported as their mean and
    range. Given ``configs`` (name -> PretrainConfig of this run), an arm whose base recipe
    (:func:`recipe_digest`) no model of this run was trained with is said not to describe this run's zoo."""
    if record is None or not len(record):
        return ("No budget record was given, so this page does not say what a longer training would change "
                "(write one with `python -m dnalm_utils.recipe_tuning ARM --variant steps=N --out FILE`).")
    gate_cols = [c for c in record.columns if c.startswith("gate:")]
    out = []
    for arm, part in record.groupby("arm", sort=False):
        parts, passing = [], None
        for multiple, rows in part.groupby("multiple", sort=True):
            loss = rows.heldout_loss.astype(float)
            spread = f" (range {loss.min():.3f}-{loss.max():.3f} over {len(rows)} seeds)" if len(rows) > 1 else ""
            measured = [c[len("gate:"):] for c in gate_cols if rows[c].notna().all()]
            gates = [_gate_phrase(g, float(rows[f"gate:{g}"].mean())) for g in measured]
            if {"accuracy", "ngram_accuracy"} <= set(rows.columns) and "context_vs_ngram" not in measured:
                gates.append(f"one hidden nucleotide {100 * rows.accuracy.astype(float).mean():.1f} % against "
                             f"{100 * float(rows.ngram_accuracy.iloc[0]):.1f} % for the two-sided n-gram, not a gate")
            passed, total = int(rows.gates_passed.min()), int(rows.gates.max())
            label = "the zoo's budget" if multiple == 1 else f"{multiple:g}x"
            wall = f", {rows.wall_s.astype(float).mean():.0f} s of training" if "wall_s" in rows.columns else ""
            parts.append(f"at {label} ({rows.nucleotides.iloc[0] / 1e6:.1f} M nt{wall}): held-out loss "
                         f"{loss.mean():.3f} nats{spread}, {passed} of {total} gates passed ({'; '.join(gates)})")
            if passing is None and passed == total:
                passing = multiple
        verdict = (f"The smallest budget tried that passes every gate is {passing:g}x." if passing is not None else
                   f"No budget tried, up to {part.multiple.max():g}x, passes every gate.")
        base = part[part.variant == BASE_VARIANT]
        if configs is not None and "recipe" in part.columns and \
                str(base.recipe.iloc[0]) not in {recipe_digest(cfg) for cfg in configs.values()}:
            verdict += " This run's zoo trains no model with the record's base recipe, so the record does not describe it."
        out.append(f"- **{arm}**. {verdict}\n" + "".join(f"  - {p[0].upper() + p[1:]}.\n" for p in parts))
    return "".join(out)


def _parse_variant(text: str) -> dict:
    import yaml

    out = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise ParameterError(f"--variant {text!r}: write KEY=VALUE[,KEY=VALUE...], e.g. learning_rate=1e-3.")
        out[key.strip()] = yaml.safe_load(value)
    return out


def main(argv=None) -> int:
    """``python -m dnalm_utils.recipe_tuning ARM --variant KEY=VALUE[,KEY=VALUE] ... [--out table.csv]``."""
    from .result_tables import write_results

    ap = argparse.ArgumentParser(description="Pre-train variants of a zoo arm and read their convergence gates on "
                                             "held-out pre-training records.")
    ap.add_argument("arm")
    ap.add_argument("--variant", action="append", default=[], help="settings to change, e.g. position_init=sinusoidal")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="change the arm's recipe for all")
    ap.add_argument("--models-dir", default=None)
    ap.add_argument("--out", default=None, help="CSV of the table (written atomically with a manifest)")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args(argv)
    base = {}
    for item in args.set:
        base.update(_parse_variant(item))
    table = tune_recipe(args.arm, [_parse_variant(v) for v in args.variant], base_overrides=base,
                        models_dir=args.models_dir, device=args.device)
    print(table.drop(columns=["folder"]).to_string(index=False))
    print("chosen:", best_variant(table)["variant"])
    if args.out:
        write_results(table, args.out, manifest={"arm": args.arm, "variants": args.variant, "set": args.set})
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["BASE_VARIANT", "recipe_digest", "variant_label", "variant_name", "variant_configs", "tune_recipe", "best_variant",
           "recipe_label", "recipe_losses", "seed_spread_sentence",
           "tuning_record", "tuning_sentence", "budget_record", "budget_sentence"]
