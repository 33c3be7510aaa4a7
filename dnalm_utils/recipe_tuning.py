"""Choose a pre-training recipe on held-out pre-training records, never on the test region.

Each variant of a zoo arm (the arm's recipe with some settings changed: learning rate, warm-up, position
initialisation, heads ...) is pre-trained under the package's one cache rule (``pretraining.train``) and read with
chapter 2's convergence gates (``convergence.gate_table``: held-out loss flat, the overlap rule for overlapping
k-mers, one hidden nucleotide against the two-sided n-gram for single nucleotides) and its hidden-nucleotide
accuracy on the held-out blocks of the pre-training corpus. The table says which recipe to put in the zoo
(:func:`best_variant`: the lowest held-out loss, the objective itself; the gates are reported beside it, not used
to choose, since a variant that learns nothing has a flat loss curve), and the chapter shows it as the record
of how the recipe was chosen.

* :func:`tune_recipe` -- train and score every variant of one arm, one row per variant
* :func:`best_variant` -- the chosen row
* ``python -m dnalm_utils.recipe_tuning overlap6 --variant position_init=sinusoidal --variant learning_rate=1e-3``
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Mapping, Sequence

from .errors import ParameterError

#: Column of :func:`tune_recipe` naming the variant ("zoo recipe" for the arm unchanged).
BASE_VARIANT = "zoo recipe"


def variant_label(changes: Mapping) -> str:
    """'learning_rate=0.001, position_init=sinusoidal' (sorted keys); :data:`BASE_VARIANT` for no change."""
    return ", ".join(f"{k}={changes[k]}" for k in sorted(changes)) or BASE_VARIANT


def variant_name(arm: str, changes: Mapping) -> str:
    """Folder name of one variant of ``arm``: the arm itself for no change, else ``<arm>__tune<8 hex>``."""
    if not changes:
        return arm
    digest = hashlib.sha256(json.dumps(dict(changes), sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"{arm}__tune{digest}"


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
    wall_s (0 for a cached model), heldout_loss (nats per masked token at the last step), accuracy (one hidden
    nucleotide, ``convergence.HeldoutReference``), ngram_accuracy (the two-sided n-gram on the same nucleotides),
    gates_passed, gates, and one ``gate:<name>`` column per gate (its value), plus ``folder``.
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
        t0 = time.perf_counter()
        cached = cached_model(cfg, root, corpus_sha, device=device) is not None
        folder = train(cfg, models_dir=root, corpus=corpus, progress=progress, log=log, device=device)
        wall = time.perf_counter() - t0
        if refs is None:
            refs = convergence.heldout_references({cfg.name: cfg}, corpus=corpus, n_windows=n_windows,
                                                  ngram_max_order=ngram_max_order)
        ref = next(iter(refs.values()))
        lm = load_model(folder, device=device)
        gates = convergence.gate_table({cfg.name: lm}, {cfg.name: folder}, {cfg.name: cfg},
                                       references={cfg.name: ref})
        curve = pd.read_csv(Path(folder) / "loss_curve.csv").dropna(subset=["heldout_loss"])
        rows.append({"arm": arm, "variant": label, **changes, "wall_s": 0.0 if cached else round(wall, 1),
                     "heldout_loss": float(curve.sort_values("step").heldout_loss.iloc[-1]),
                     "accuracy": float(ref.score(lm)["accuracy"]), "ngram_accuracy": ref.ngram_accuracy,
                     "gates_passed": int(gates.passed.astype(bool).sum()), "gates": len(gates),
                     **{f"gate:{g.gate}": float(g.value) for g in gates.itertuples()}, "folder": str(folder)})
        del lm
    return pd.DataFrame(rows)


def best_variant(table) -> dict:
    """The chosen row of a :func:`tune_recipe` table: the lowest held-out loss (the masked-LM objective on held-out
    pre-training windows; every variant keeps the arm's tokenization and masking, so the losses compare). Ties:
    the earlier row, so the unchanged recipe wins a tie. Gates are not used to choose: a variant that learns
    nothing passes the flatness gate."""
    if table is None or not len(table):
        raise ParameterError("best_variant: the tuning table is empty; run tune_recipe first.")
    order = sorted(range(len(table)), key=lambda i: (float(table.heldout_loss.iloc[i]), i))
    return table.iloc[order[0]].to_dict()


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


__all__ = ["BASE_VARIANT", "variant_label", "variant_name", "variant_configs", "tune_recipe", "best_variant"]
