"""Convergence gates: has a pre-trained zoo model learned what its budget allows, before anything compares it?

Three gates, all computed on the held-out blocks of the pre-training corpus (``pretraining.holdout_split``:
never trained on, never the test region):

* **flat** (every model): the held-out masked-token loss fell by at most ``FLAT_TOLERANCE_NATS`` over the last
  quarter of training (``loss_curve.csv``, logged during training). A model still improving when stopped is not
  a result.
* **overlap rule** (overlapping k-mers): with m < k contiguous masked tokens every masked token can be rebuilt
  from its unmasked neighbours, so a model that learned the rule is right nearly always: the lowest accuracy over
  m = 1 .. k-1 must reach ``OVERLAP_RULE_MIN`` (99 %).
* **context vs n-gram** (single-nucleotide tokens): on one masked nucleotide per window the model must reach at
  least the accuracy of the two-sided n-gram counted on the training part of the corpus, which sees the same
  flanks; below it the model has not learned what counting already gets.

:func:`gate_table` returns one row per (model, gate) with the value, the threshold and whether it passed;
:func:`gate_status` one verdict per model; :func:`gate_note` the sentence each chapter prints about the models it
uses that failed a gate. Gates are read from the run's chapter-2 table (:func:`read_gates`), so a chapter run on
other models (a published checkpoint) says "not checked", never "passed".
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

#: Largest fall of the held-out loss (nats) over the last quarter of training for a model to count as flat.
FLAT_TOLERANCE_NATS = 0.02
#: Share of training steps the flatness gate looks back over.
FLAT_TAIL = 0.25
#: Lowest token accuracy over m = 1 .. k-1 masked tokens an overlapping model must reach.
OVERLAP_RULE_MIN = 0.99
#: File chapter 2 writes the gates to.
GATES_FILE = "gates.csv"

GATE_NAMES = {"flat": "held-out loss flat", "overlap_rule": "overlap rule (m < k)",
              "context_vs_ngram": "one hidden nucleotide vs the n-gram"}
#: What a model that fails each gate has not done, in words (the gate's name says what it checks).
GATE_FAILURES = {"flat": "held-out loss still falling", "overlap_rule": "overlap rule below 99 % for some m < k",
                 "context_vs_ngram": "below the n-gram on one hidden nucleotide"}


def loss_flattening(steps: Sequence[int], heldout_loss: Sequence[float], *, tail: float = FLAT_TAIL) -> float:
    """Fall of the held-out loss (nats, positive = still falling) from the last logged point at or before
    ``(1 - tail)`` of training to the last point. ``steps`` and ``heldout_loss`` are aligned, ascending steps."""
    steps = np.asarray(steps, dtype=float)
    loss = np.asarray(heldout_loss, dtype=float)
    keep = np.isfinite(loss)
    steps, loss = steps[keep], loss[keep]
    if len(steps) < 2:
        raise ValueError("the held-out loss needs at least two logged points to judge flatness; lower eval_steps.")
    cut = steps[-1] - tail * (steps[-1] - steps[0])
    before = np.flatnonzero(steps <= cut)
    start = before[-1] if len(before) else 0
    return float(loss[start] - loss[-1])


def gate_row(model: str, gate: str, value: float, threshold: float, passed: bool, detail: str = "") -> dict:
    return {"model": model, "gate": gate, "gate_name": GATE_NAMES[gate], "value": float(value),
            "threshold": float(threshold), "passed": bool(passed), "detail": detail}


def flat_gate(model: str, curve) -> dict:
    """The flatness gate of one model from its loss curve (DataFrame with step and heldout_loss)."""
    rows = curve.dropna(subset=["heldout_loss"]).sort_values("step")
    fall = loss_flattening(rows.step.to_numpy(), rows.heldout_loss.to_numpy())
    return gate_row(model, "flat", fall, FLAT_TOLERANCE_NATS, fall <= FLAT_TOLERANCE_NATS,
                f"held-out loss {rows.heldout_loss.iloc[-1]:.3f} nats at step {int(rows.step.iloc[-1])}")


def overlap_rule_gate(model: str, lm, windows: Sequence[str], k: int, *, seed: int = 0) -> dict:
    """The overlap-rule gate of an overlapping k-mer model: min accuracy over m = 1 .. k-1 masked tokens."""
    from . import masking

    summary = masking.summarize_sweep(masking.span_mask_sweep(lm, windows, range(1, k), seed=seed))
    worst = summary.loc[summary.accuracy.idxmin()]
    return gate_row(model, "overlap_rule", worst.accuracy, OVERLAP_RULE_MIN, worst.accuracy >= OVERLAP_RULE_MIN,
                f"lowest at m = {int(worst.m)}; " + ", ".join(f"m={int(m)}: {a:.1%}" for m, a in zip(summary.m, summary.accuracy)))


def context_gate(model: str, model_accuracy: float, ngram_accuracy: float, order: int) -> dict:
    """The context gate of a single-nucleotide model: accuracy on one hidden nucleotide minus the n-gram's."""
    diff = model_accuracy - ngram_accuracy
    return gate_row(model, "context_vs_ngram", diff, 0.0, diff >= 0.0,
                f"model {model_accuracy:.1%} vs two-sided {order}-gram {ngram_accuracy:.1%}")


class HeldoutReference:
    """Held-out pre-training windows for one data split, one hidden nucleotide block (h nt) per window, and the
    two-sided n-gram's accuracy and bits on them (counted on the training part only, flank order chosen on it).

    Attributes: windows (list of str), blocks ((window, 2) [start, end) nt), order, ngram_accuracy, ngram_bits."""

    def __init__(self, cfg, records, *, n_windows: int, ngram_max_order: int, h: int = 1, seed: int = 0):
        from . import masking, ngram, pretraining

        train_records, _ = pretraining.split_for(cfg, records)
        seqs = [r.sequence for r in train_records]
        self.windows = pretraining.sample_heldout_windows(cfg, records, n_windows, seed_offset=11)
        self.blocks = masking.choose_blocks([len(w) for w in self.windows], h, margin=max(12, cfg.window_nt // 4),
                                            seed=seed)
        self.order = int(ngram.held_out_order(seqs, [h], orders=range(0, ngram_max_order + 1),
                                              window_nt=cfg.window_nt, seed=seed + 2)[h][0])
        counts = ngram.KmerCounts(seqs, max_len=2 * self.order + h)
        rows = masking.block_baselines(self.windows, self.blocks, counts=counts, order=self.order,
                                       prior=ngram.nucleotide_frequencies(seqs))
        gram = next(r for r in rows if "gram" in r["model"])
        self.ngram_accuracy, self.ngram_bits = float(gram["accuracy"]), float(gram["bits"])
        self._train_sequences, self._h = seqs, h

    def ngram_by_order(self, orders: Sequence[int]):
        """The two-sided n-gram on these blocks for each flank order in ``orders`` (counted on the training part):
        DataFrame order, context_nt (2 x order, the nucleotides it reads), accuracy, bits. Where accuracy keeps
        rising with orders that read 6 nt or more, the n-gram is recalling sequence that recurs in the corpus
        (repeats, duplicated loci) rather than local composition."""
        import pandas as pd

        from . import masking, ngram

        orders = sorted({int(o) for o in orders})
        counts = ngram.KmerCounts(self._train_sequences, max_len=2 * max(orders) + self._h)
        prior = ngram.nucleotide_frequencies(self._train_sequences)
        rows = []
        for order in orders:
            gram = next(r for r in masking.block_baselines(self.windows, self.blocks, counts=counts, order=order,
                                                           prior=prior) if "gram" in r["model"])
            rows.append({"order": order, "context_nt": 2 * order, "accuracy": float(gram["accuracy"]),
                         "bits": float(gram["bits"])})
        return pd.DataFrame(rows)

    def score(self, lm) -> dict:
        """accuracy and bits per hidden nucleotide of ``lm`` on these blocks (``masking.nucleotide_block_eval``)."""
        from . import masking

        return masking.nucleotide_block_eval(lm, self.windows, self.blocks).metrics()


def _split_key(cfg) -> tuple:
    return (cfg.data_seed, cfg.heldout_fraction, cfg.heldout_block_nt, cfg.window_nt, cfg.reverse_complement)


def heldout_references(configs: Mapping, *, corpus=None, n_windows: int = 500, ngram_max_order: int = 8,
                       seed: int = 0) -> dict:
    """model -> its :class:`HeldoutReference` (one per distinct data split, shared by the models that use it)."""
    from .corpus import corpus_records

    records = corpus_records(corpus)
    built: dict = {}
    out = {}
    for name, cfg in configs.items():
        key = _split_key(cfg)
        if key not in built:
            built[key] = HeldoutReference(cfg, records, n_windows=n_windows, ngram_max_order=ngram_max_order, seed=seed)
        out[name] = built[key]
    return out


def orders_matched(model_accuracy: float, by_order) -> int | None:
    """The highest n-gram order up to which ``model_accuracy`` is at least the n-gram's at every order (a
    :meth:`HeldoutReference.ngram_by_order` table), or None when even order 0 (the base frequencies) beats it."""
    matched = None
    for row in by_order.sort_values("order").itertuples():
        if model_accuracy < row.accuracy:
            break
        matched = int(row.order)
    return matched


def context_gate_reading(model: str, model_accuracy: float, by_order, chosen_order: int) -> str:
    """One sentence on where a single-nucleotide model stands among the n-gram orders (:func:`orders_matched`):
    which orders it matches and the first it does not, beside the gate's chosen order."""
    rows = by_order.sort_values("order")
    matched = orders_matched(model_accuracy, rows)
    beyond = rows[rows.order > (matched if matched is not None else -1)]
    first = beyond.iloc[0] if len(beyond) else None
    head = (f"{model} ({model_accuracy:.1%} on one hidden nucleotide) " +
            (f"matches the two-sided n-gram up to order {matched} ({matched} nt on each side)" if matched is not None
             else "is below even the base frequencies"))
    if first is None:
        return head + f", every order tried; the gate uses order {chosen_order}."
    best = rows.loc[rows.accuracy.idxmax()]
    return (head + f", not order {int(first.order)} ({first.accuracy:.1%}); the n-gram reaches {best.accuracy:.1%} at "
            f"order {int(best.order)} ({int(best.order)} nt on each side), and the gate uses order {chosen_order}.")


def gate_table(models: Mapping, folders: Mapping[str, Path], configs: Mapping, *, references: Mapping | None = None,
               corpus=None, n_windows: int = 500, ngram_max_order: int = 8, seed: int = 0):
    """One row per (model, gate that applies): model, gate, gate_name, value, threshold, passed, detail.

    ``models``: name -> loaded adapter; ``folders``: name -> zoo folder (its ``loss_curve.csv``); ``configs``: name
    -> its ``pretraining.PretrainConfig``; ``references``: name -> :class:`HeldoutReference` (default: built with
    :func:`heldout_references`). Windows come from the held-out blocks of the pre-training corpus, never the test
    region; the n-gram is counted on the training part only.
    """
    import pandas as pd

    refs = references or heldout_references(configs, corpus=corpus, n_windows=n_windows,
                                            ngram_max_order=ngram_max_order, seed=seed)
    rows = []
    for name, lm in models.items():
        cfg, ref = configs[name], refs[name]
        rows.append(flat_gate(name, pd.read_csv(Path(folders[name]) / "loss_curve.csv")))
        if cfg.scheme == "overlapping":
            rows.append(overlap_rule_gate(name, lm, ref.windows, int(cfg.k), seed=seed))
        if cfg.scheme == "nucleotide":
            rows.append(context_gate(name, ref.score(lm)["accuracy"], ref.ngram_accuracy, ref.order))
    return pd.DataFrame(rows)


def snapshot_scores(folders: Mapping[str, Path], references: Mapping, *, device: str = "auto"):
    """Hidden-nucleotide accuracy and bits against training step for every model: each snapshot
    (``pretraining.snapshot_folders``; step 0 = initialisation) and the finished model, on its held-out
    reference's blocks. Rows: model, step, nucleotides_seen (by that step), accuracy, bits, ngram_accuracy,
    ngram_bits."""
    import pandas as pd

    from . import models as zoo_models
    from . import pretraining

    rows = []
    for name, folder in folders.items():
        ref = references[name]
        steps = dict(pretraining.snapshot_folders(folder))
        final = int(pd.read_csv(Path(folder) / "loss_curve.csv").step.max())
        per_step = pretraining.nucleotides_per_step(folder)
        steps[final] = Path(folder)
        for step, path in sorted(steps.items()):
            lm = zoo_models.load_model(path, device=device)
            rows.append({"model": name, "step": step, "nucleotides_seen": step * per_step, **ref.score(lm),
                         "ngram_accuracy": ref.ngram_accuracy,
                         "ngram_bits": ref.ngram_bits})
    return pd.DataFrame(rows)


def gate_status(gates) -> dict[str, str]:
    """model -> "passed" or "failed: <what it has not done>" (:data:`GATE_FAILURES`) from a :func:`gate_table`."""
    out = {}
    for model, g in gates.groupby("model", sort=False):
        failed = [GATE_FAILURES[x] for x in g.loc[~g.passed.astype(bool), "gate"]]
        out[model] = "failed: " + ", ".join(failed) if failed else "passed"
    return out


def gated_models(runs_dir) -> list[str] | None:
    """The models chapter 2 trained and gated in the run under ``runs_dir`` (its gate table), None without one."""
    gates = read_gates(runs_dir)
    return None if gates is None else list(dict.fromkeys(gates.model))


def read_gates(runs_dir) -> "object | None":
    """The gate table chapter 2 wrote under ``runs_dir`` (``02_pretraining/gates.csv``), or None."""
    import pandas as pd

    path = Path(runs_dir) / "02_pretraining" / GATES_FILE
    return pd.read_csv(path) if path.is_file() else None


def gate_note(gates, models: Sequence[str]) -> str:
    """Markdown: which of ``models`` failed a convergence gate (and which), which passed, which were not checked."""
    status = gate_status(gates) if gates is not None and len(gates) else {}
    failed = [f"{m} ({status[m][len('failed: '):]})" for m in models if status.get(m, "").startswith("failed")]
    passed = [m for m in models if status.get(m) == "passed"]
    unchecked = [m for m in models if m not in status]
    parts = []
    if failed:
        parts.append("**Failed a convergence gate** (chapter 2), so their numbers are those of a model that has not "
                     "learned what its budget allows: " + "; ".join(failed) + ".")
    if passed:
        parts.append("Passed every gate: " + ", ".join(passed) + ".")
    if unchecked:
        parts.append("Not checked by chapter 2's gates: " + ", ".join(unchecked) + ".")
    return " ".join(parts)


def gate_summary_text(gates) -> str:
    """Markdown for chapter 2: how many models passed, and each failure with its value and threshold."""
    if gates is None or not len(gates):
        return "No gates were computed."
    status = gate_status(gates)
    n_pass = sum(v == "passed" for v in status.values())
    bits = []
    for row in gates.loc[~gates.passed.astype(bool)].itertuples():
        if row.gate == "flat":
            bits.append(f"{row.model}: held-out loss still fell {row.value:.3f} nats over the last quarter "
                        f"(limit {row.threshold:.2f})")
        elif row.gate == "overlap_rule":
            bits.append(f"{row.model}: {row.value:.1%} at worst for m < k (needs {row.threshold:.0%}; {row.detail})")
        else:
            bits.append(f"{row.model}: {row.detail}")
    text = f"{n_pass} of {len(status)} models pass every gate."
    if bits:
        text += " Failures: " + "; ".join(bits) + "."
    return text


def seed_spread(frame, value: str):
    """Per arm (``pretraining.split_seeded_name`` of each model): seeds, mean, min, max and range of ``value``.

    ``frame`` has a ``model`` column (zoo folder names, ``<arm>_seed<N>`` for replicates) and ``value``. A
    difference between two arms smaller than either arm's range is within seed noise."""
    import pandas as pd

    from .pretraining import split_seeded_name

    arms = frame.model.map(lambda m: split_seeded_name(m)[0])
    seeds = frame.model.map(lambda m: split_seeded_name(m)[1])
    g = pd.DataFrame({"arm": arms, "seed": seeds, "v": frame[value].astype(float)}).groupby("arm", sort=False)
    out = g.agg(seeds=("seed", "nunique"), mean=("v", "mean"), min=("v", "min"), max=("v", "max")).reset_index()
    out["range"] = out["max"] - out["min"]
    return out.assign(quantity=value)


def run_gate_note(runs_dir, models: Sequence[str] | None = None) -> str:
    """:func:`gate_note` for ``models`` (default: every model chapter 2 gated) from the gates under ``runs_dir``;
    says so when the run has no gate table (chapter 2 not run, or a run on published checkpoints only)."""
    gates = read_gates(runs_dir)
    if models is None:
        if gates is None:
            return "This run has no convergence gates (chapter 2 did not run here)."
        models = list(dict.fromkeys(gates.model))
    return gate_note(gates, list(models))
