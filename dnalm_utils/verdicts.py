"""Every sentence of the book that judges, computed here from the chapters' tables with one procedure.

Procedure (the statistics are :mod:`dnalm_utils.stats`):

- *A beats B* is decided on the same items (held-out windows or test examples) by the paired test of
  :func:`stats.compare_paired` (paired t-interval of the mean per-item difference; the exact McNemar p-value for
  0/1 outcomes). A model's per-item value is first averaged over its seeds. A score of the whole test set (MCC,
  AUROC) is compared by a paired bootstrap over the same test examples (:func:`stats.compare_bootstrap`), each
  side averaged over its seeds.
- *A is no better / no worse than B* is claimed only from an equivalence test (TOST) with the margin the chapter
  states (``margin``, in the metric's units), never from a failed difference test.
- Multiple comparisons: the book's family-wise error rate is :data:`BOOK_ALPHA` = 5 %. Each of the
  :data:`JUDGING_CHAPTERS` (the four chapters that test) gets an equal share (:data:`CHAPTER_ALPHA` = 5/4 %), which Holm's
  step-down procedure spreads over all the hypotheses the chapter tests (each claim's difference test and,
  where a margin is set, its equivalence test). By Bonferroni across chapters the whole book's verdicts then
  hold at 5 %, and a chapter's verdicts do not change when another chapter is re-run.
- Chapter 8 (conclusions) reads the chapters' ``verdicts.csv`` tables (:func:`read_verdicts`) and never re-tests, so it
  cannot contradict them.

A claim's outcome is one of :data:`OUTCOMES`: "better" / "worse" (in the metric's good direction: lower bits are
better), "equivalent" (within the margin), "inconclusive" (neither shown, or too few items).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from . import stats
from .errors import ParameterError

BOOK_ALPHA = 0.05
#: The chapters that test claims (chapters 2 and 4 describe; their comparisons are tested in chapter 3).
JUDGING_CHAPTERS = ("03_masked_prediction", "05_next_kmer", "06_biology_finetuning", "07_copying_or_context")
CHAPTER_ALPHA = BOOK_ALPHA / len(JUDGING_CHAPTERS)
OUTCOMES = ("better", "worse", "equivalent", "inconclusive")
VERDICTS_CSV = "verdicts.csv"
COLUMNS = ("chapter", "claim", "subject", "reference", "metric", "higher_is_better", "test", "n", "estimate", "low",
           "high", "alpha", "p", "p_holm", "margin", "p_equivalence", "p_equivalence_holm", "outcome")


@dataclasses.dataclass(frozen=True)
class Claim:
    """One tested statement: ``subject`` against ``reference`` on ``metric`` (estimate = subject - reference)."""

    claim: str
    subject: str
    reference: str
    metric: str
    higher_is_better: bool
    comparison: stats.Comparison


def outcome_of(estimate: float, p: float, p_equivalence: float, higher_is_better: bool, alpha: float) -> str:
    """"better" / "worse" when the (adjusted) difference p < alpha, in the metric's good direction;
    "equivalent" when not different and the (adjusted) equivalence p < alpha; else "inconclusive"."""
    if np.isfinite(p) and p < alpha and np.isfinite(estimate) and estimate != 0:
        return "better" if (estimate > 0) == bool(higher_is_better) else "worse"
    if np.isfinite(p_equivalence) and p_equivalence < alpha:
        return "equivalent"
    return "inconclusive"


def decide(chapter: str, claims: Sequence[Claim], *, alpha: float = CHAPTER_ALPHA):
    """The chapter's verdict table (columns :data:`COLUMNS`, one row per claim): Holm's adjustment over every
    difference and equivalence p-value of ``claims`` together, then :func:`outcome_of` at ``alpha``."""
    import pandas as pd

    if not 0 < alpha < 0.5:
        raise ParameterError(f"alpha={alpha!r} must lie in (0, 0.5).")
    rows = []
    for c in claims:
        cmp = c.comparison
        rows.append({"chapter": chapter, "claim": c.claim, "subject": c.subject, "reference": c.reference,
                     "metric": c.metric, "higher_is_better": bool(c.higher_is_better), "test": cmp.test, "n": cmp.n,
                     "estimate": cmp.estimate, "low": cmp.low, "high": cmp.high, "alpha": alpha, "p": cmp.p,
                     "margin": np.nan if cmp.margin is None else cmp.margin, "p_equivalence": cmp.p_equivalence})
    table = pd.DataFrame(rows, columns=[c for c in COLUMNS if c not in ("p_holm", "p_equivalence_holm", "outcome")])
    family = np.concatenate([table.p.to_numpy(float), table.p_equivalence.to_numpy(float)])
    adjusted = stats.holm(family) if len(family) else family
    table["p_holm"] = adjusted[: len(table)]
    table["p_equivalence_holm"] = adjusted[len(table):]
    table["outcome"] = [outcome_of(r.estimate, r.p_holm, r.p_equivalence_holm, r.higher_is_better, alpha)
                        for r in table.itertuples()]
    return table[list(COLUMNS)]


def write_verdicts(table, output_dir: str | os.PathLike) -> Path:
    """``<output_dir>/verdicts.csv``, written atomically."""
    from .io import atomic_write_text

    return atomic_write_text(Path(output_dir) / VERDICTS_CSV, table.to_csv(index=False))


def read_verdicts(runs_dir: str | os.PathLike):
    """Every chapter's verdict table under ``runs_dir`` (``<runs_dir>/<chapter>/verdicts.csv``), concatenated
    (empty with :data:`COLUMNS` when none exists)."""
    import pandas as pd

    parts = [pd.read_csv(p) for p in sorted(Path(runs_dir).glob(f"*/{VERDICTS_CSV}"))]
    parts = [p for p in parts if len(p)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(COLUMNS))


# ------------------------------------------------------------------------------------------------
# Formatting
# ------------------------------------------------------------------------------------------------
def fmt_pct(x, digits: int = 1) -> str:
    """'41.6 %' for 0.416; 'n/a' for NaN or None."""
    return "n/a" if x is None or not np.isfinite(x) else f"{100 * x:.{digits}f} %"


def fmt_p(p) -> str:
    """'p < 0.001', 'p = 0.012', 'p = 1' ('p n/a' for NaN)."""
    if p is None or not np.isfinite(p):
        return "p n/a"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3g}"


def _scale(metric: str) -> tuple[float, str]:
    return (100.0, " points") if metric in ("accuracy", "share") else (1.0, "")


def interval_level(alpha: float) -> str:
    """The confidence level of an interval at ``alpha`` in percent, as written: "98.75" for 0.0125, "95" for 0.05."""
    return f"{100 * (1 - float(alpha)):.2f}".rstrip("0").rstrip(".")


def describe(row) -> str:
    """One claim in words: "+1.2 points (98.75 % CI 0.5 to 1.9; paired t over 20,000 windows; Holm p = 0.003)"
    (the interval is the claim's own, not adjusted for the other claims; the Holm p is)."""
    f, unit = _scale(row["metric"])
    ci = (f"{interval_level(row['alpha'])} % CI {f * row['low']:+.2f} to {f * row['high']:+.2f}"
          if np.isfinite(row["low"]) else "no interval")
    return f"{f * row['estimate']:+.2f}{unit} ({ci}; {row['test']}; Holm {fmt_p(row['p_holm'])})"


def names_by_outcome(table, claim: str) -> dict[str, list[str]]:
    """outcome -> subjects with that outcome for ``claim`` (every outcome key present, lists possibly empty)."""
    sub = table[table.claim == claim]
    return {o: sub[sub.outcome == o].subject.tolist() for o in OUTCOMES}


def outcome_sentence(table, claim: str, *, better: str, worse: str, equivalent: str = "within the margin",
                     none: str = "no model was tested") -> str:
    """"better than X: a, b; worse: c; within the margin: d; inconclusive: e" for one claim, leaving out empty
    groups."""
    groups = names_by_outcome(table, claim)
    if not any(groups.values()):
        return none
    labels = {"better": better, "worse": worse, "equivalent": equivalent, "inconclusive": "inconclusive"}
    return "; ".join(f"{labels[o]}: {', '.join(groups[o])}" for o in OUTCOMES if groups[o])


# ------------------------------------------------------------------------------------------------
# Per-item pairing
# ------------------------------------------------------------------------------------------------
def paired_values(items, subject: str, reference: str, value: str, *, model_col: str = "model",
                  item_col: str = "item") -> tuple[np.ndarray, np.ndarray]:
    """(a, b): ``value`` of ``subject`` and ``reference`` on the items both have, aligned by ``item_col``; a model
    with several rows per item (seeds) is averaged per item first."""
    a = items[items[model_col] == subject].groupby(item_col)[value].mean()
    b = items[items[model_col] == reference].groupby(item_col)[value].mean()
    both = a.index.intersection(b.index)
    return a.loc[both].to_numpy(float), b.loc[both].to_numpy(float)


def versus_reference(items, subjects: Iterable[str], reference: str, *, claim: str, metric: str,
                     higher_is_better: bool, margin: float | None, model_col: str = "model", item_col: str = "item",
                     unit: str = "windows") -> list[Claim]:
    """One claim per subject: subject against ``reference`` on the same items (``items``: long table with
    ``model_col``, ``item_col`` and ``metric`` columns)."""
    out = []
    for s in subjects:
        a, b = paired_values(items, s, reference, metric, model_col=model_col, item_col=item_col)
        cmp = stats.compare_paired(a, b, alpha=CHAPTER_ALPHA, margin=margin, unit=unit)
        out.append(Claim(claim, s, reference, metric, higher_is_better, cmp))
    return out


# ------------------------------------------------------------------------------------------------
# Chapter 3 (and 2): masked prediction
# ------------------------------------------------------------------------------------------------
CLAIM_COPIES = "follows an altered flank letter more often than the genome's letter"
CLAIM_HIDDEN = "hidden-nucleotide {metric} against the two-sided n-gram (h = {h})"


CLAIM_ORACLE = "token accuracy against copying + the two-sided n-gram ({m_text})"


def oracle_claims(oracle_items, *, past_k: Sequence[int], k_of: Mapping[str, int], margin: float | None) -> list[Claim]:
    """Per overlapping model and m = k + d for d in ``past_k`` (d = 0: one nucleotide hidden): its token accuracy
    on each window's masked span against the oracle that copies every revealed letter and fills the hidden ones
    with the two-sided n-gram's guess (``masking.sweep_with_references``' ``oracle_items``: model, m, window,
    model_accuracy, oracle_accuracy), paired by window. A model above it knows more than copying plus flank
    counts."""
    out = []
    for name, part in oracle_items.groupby("model", sort=False):
        k = int(k_of[name])
        for d in past_k:
            rows = part[part.m == k + int(d)].sort_values("window")
            if rows.empty:
                continue
            cmp = stats.compare_paired(rows.model_accuracy.to_numpy(float), rows.oracle_accuracy.to_numpy(float),
                                       alpha=CHAPTER_ALPHA, margin=margin, unit="windows", exact_binary=False)
            m_text = "m = k" if int(d) == 0 else f"m = k + {int(d)}"
            out.append(Claim(CLAIM_ORACLE.format(m_text=m_text), str(name), "copy + n-gram oracle", "accuracy",
                             True, cmp))
    return out


def oracle_sentence(table) -> str:
    """"m = k: above the oracle: a; within the margin: b; m = k + 3: ..." for the :func:`oracle_claims` of a verdict
    table, in the order they were tested ("not tested in this build" without any)."""
    prefix = CLAIM_ORACLE.split("(")[0]
    claims = [c for c in dict.fromkeys(table.claim) if str(c).startswith(prefix)] if len(table) else []
    if not claims:
        return "not tested in this build"
    return "; ".join(f"{c[len(prefix) + 1:-1]}: " + outcome_sentence(table, c, better="above the oracle",
                                                                      worse="below it") for c in claims)


def flank_copying_claims(perturb_windows, *, m: int | None = None) -> list[Claim]:
    """Per model of the flank-perturbation table (one row per window: model, m, follows_flank,
    follows_genome): does its prediction follow the altered flank more often than the genome, paired per window?
    ``m``: the span length to judge (default the smallest in the table)."""
    if not len(perturb_windows):
        return []
    m = int(perturb_windows.m.min()) if m is None else int(m)
    sub = perturb_windows[perturb_windows.m == m]
    out = []
    for name, part in sub.groupby("model", sort=False):
        cmp = stats.compare_paired(part.follows_flank.astype(float), part.follows_genome.astype(float),
                                   alpha=CHAPTER_ALPHA, unit="windows")
        out.append(Claim(CLAIM_COPIES, str(name), "genome's letter", "share", True, cmp))
    return out


#: The context-only references of the hidden-nucleotide items (masking.hidden_nucleotide_items); never subjects.
HIDDEN_REFERENCES = ("two-sided n-gram", "corpus base frequencies")


def hidden_nucleotide_claims(per_window, reference: str, *, h: int, margin_accuracy: float,
                             margin_bits: float) -> list[Claim]:
    """Every model against ``reference`` (the two-sided n-gram) on the same hidden nucleotides of length ``h``:
    accuracy (higher is better, margin ``margin_accuracy``) and bits per nucleotide (lower is better, margin
    ``margin_bits``), paired per window. ``per_window``: model, h, window, accuracy, bits; the rows of
    :data:`HIDDEN_REFERENCES` are references, not subjects."""
    sub = per_window[per_window.h == h]
    subjects = [m for m in dict.fromkeys(sub.model) if m != reference and m not in HIDDEN_REFERENCES]
    out = []
    for metric, hib, margin in (("accuracy", True, margin_accuracy), ("bits", False, margin_bits)):
        out += versus_reference(sub, subjects, reference, claim=CLAIM_HIDDEN.format(metric=metric, h=h),
                                metric=metric, higher_is_better=hib, margin=margin, item_col="window")
    return out


CLAIM_SAME_VIEW = "hidden-nucleotide {metric} against an n-gram seeing what it sees (h = {h})"


def same_view_claims(per_window, same_view, *, h: int, margin_accuracy: float, margin_bits: float) -> list[Claim]:
    """Every model against the n-gram that sees exactly the nucleotides it sees (``masking.same_view_items``:
    model, h, window, accuracy, bits; one reference per model) on the same hidden blocks of length ``h``, paired
    per window. Where a model's masking hides letters beside the block (non-overlapping k-mers, BPE) its
    reference is denied them too, so a shortfall against the two-sided n-gram that this claim does not repeat
    is the masking's, not the model's."""
    import pandas as pd

    from .masking import SAME_VIEW_REFERENCE

    out = []
    sub, ref = per_window[per_window.h == h], same_view[same_view.h == h]
    for name in dict.fromkeys(ref.model):
        if name not in set(sub.model):
            continue
        pair = pd.concat([sub[sub.model == name], ref[ref.model == name].assign(model=SAME_VIEW_REFERENCE)], ignore_index=True)
        for metric, hib, margin in (("accuracy", True, margin_accuracy), ("bits", False, margin_bits)):
            out += versus_reference(pair, [name], SAME_VIEW_REFERENCE, claim=CLAIM_SAME_VIEW.format(metric=metric, h=h),
                                    metric=metric, higher_is_better=hib, margin=margin, item_col="window")
    return out


def same_view_sentence(table, metric: str = "accuracy") -> str:
    """"h = 1: above it: a; below it: b; ..." for the :func:`same_view_claims` of a verdict table on ``metric``
    ("not tested in this build" without any)."""
    prefix = CLAIM_SAME_VIEW.format(metric=metric, h="").split("(")[0]
    claims = [c for c in dict.fromkeys(table.claim) if str(c).startswith(prefix)] if len(table) else []
    if not claims:
        return "not tested in this build"
    return "; ".join(f"{c[len(prefix) + 1:-1]}: " + outcome_sentence(table, c, better="above it", worse="below it")
                     for c in claims)


def first_collapse(summary, *, drop: float) -> dict[str, int]:
    """model -> the smallest m at which token accuracy has fallen by more than ``drop`` (absolute) below its
    accuracy at m = 1 (models that never fall are left out). ``summary``: model, m, accuracy."""
    out = {}
    for name, part in summary.sort_values("m").groupby("model", sort=False):
        base = float(part.accuracy.iloc[0])
        fell = part[part.accuracy < base - drop]
        if len(fell):
            out[str(name)] = int(fell.m.iloc[0])
    return out


# ------------------------------------------------------------------------------------------------
# Chapters 5 and 6: fine-tuning over seeds
# ------------------------------------------------------------------------------------------------
CLAIM_PRETRAINING = "{metric} pre-trained against random-initialised ({task})"
CLAIM_BASELINE = "{metric} against {reference} ({task})"


def failed_controls(runs, *, by: str | None = None) -> set:
    """The random-initialised controls that failed: (model, value of ``by``) -- or model names when ``by`` is
    None -- with a random-initialised run (any seed) that predicts one class only on the test set
    (``predicted_classes`` == 1, a column of ``classification_metrics``' scores). Such a run learned nothing, and
    the twin claims average a control over its seeds item by item, so one constant seed would pull the control
    towards a constant; the pre-training claims leave it out and the pages report it as a failed control. Runs without ``predicted_classes`` (older tables) have no failed control."""
    if "predicted_classes" not in runs or not len(runs):
        return set()
    rnd = runs[runs.init == "random"]
    keys = ["model"] + ([by] if by else [])
    constant = rnd.groupby(keys)["predicted_classes"].apply(lambda x: bool((x <= 1).any()))
    return {k for k, v in constant.items() if v}


def failed_control_sentence(failed, *, what: str = "") -> str:
    """One clause naming the failed controls of :func:`failed_controls` (``what`` names the ``by`` value, e.g.
    "k = "), or saying there were none."""
    if not failed:
        return "every random-initialised control predicts more than one class"
    names = sorted(f"{k[0]} ({what}{k[1]})" if isinstance(k, tuple) else str(k) for k in failed)
    return ("the random-initialised control predicts a single class in at least one seed, so it is reported as "
            "failed and pre-training is not judged against it, for: " + ", ".join(names))


#: Bootstrap resamples of the test items behind the MCC / AUROC comparisons (:func:`set_score_claims`).
SET_SCORE_RESAMPLES = 2000


def set_score_claims(items, runs, test_labels: Mapping[str, np.ndarray], *, task: str, metric: str,
                     margin: float | None, failed=(), n_boot: int = SET_SCORE_RESAMPLES, seed: int = 0) -> list[Claim]:
    """Per model: pre-trained against random-initialised weights on a score of the whole test set (``metric``:
    "mcc" at each run's validation threshold, or "auroc"), each side averaged over its seeds, tested by a paired
    bootstrap over the same test items (``stats.compare_bootstrap``: both sides scored on every resample). Models
    in ``failed`` (:func:`failed_controls`) are left out. ``items``: biotasks.run_task items (task, model, init,
    seed, item, p1); ``runs``: its rows (threshold); ``test_labels``: task -> (n,) 0/1 test labels."""
    from .classification_metrics import binary_run_predictions, bootstrap_weights, resampled_binary_score

    part = items[(items.task == task) & items.init.isin(["pretrained", "random"])]
    if part.empty:
        return []
    preds = binary_run_predictions(part, runs, test_labels)
    n = len(next(iter(preds.values()))[0])
    w = np.vstack([np.ones((1, n)), bootstrap_weights(n, n_boot, seed)])
    out = []
    for name in dict.fromkeys(part.model):
        if name in set(failed):
            continue
        sides = {}
        for init in ("pretrained", "random"):
            keys = [k for k in preds if k[1] == name and k[2] == init]
            if keys:
                sides[init] = np.mean([resampled_binary_score(w, preds[k][0], preds[k][1], metric=metric,
                                                              threshold=preds[k][2]) for k in keys], axis=0)
        if len(sides) < 2:
            continue
        d = sides["pretrained"] - sides["random"]
        cmp = stats.compare_bootstrap(float(d[0]), d[1:], alpha=CHAPTER_ALPHA, margin=margin, n=n, unit="test items")
        out.append(Claim(CLAIM_PRETRAINING.format(metric=metric, task=task), str(name), "random-initialised twin",
                         metric, True, cmp))
    return out


def item_reference_claims(items, reference: str, *, task: str, metric: str, higher_is_better: bool,
                          margin: float | None, subject_init: str = "pretrained") -> list[Claim]:
    """Per model fine-tuned from ``subject_init``: against a baseline ``reference`` on the same test items
    (each model's per-item ``metric`` averaged over its seeds first; :func:`versus_reference`). ``items``: model,
    init, seed, item, ``metric`` (the baseline's rows may carry any init)."""
    if not (items.model == reference).any():
        return []
    pool = items[(items.init == subject_init) | (items.model == reference)]
    subjects = [m for m in dict.fromkeys(pool.model) if m != reference]
    return versus_reference(pool, subjects, reference, claim=CLAIM_BASELINE.format(metric=metric, reference=reference,
                                                                                  task=task),
                            metric=metric, higher_is_better=higher_is_better, margin=margin, unit="test items")


def pretraining_item_claims(items, *, task: str, metric: str, higher_is_better: bool,
                            margin: float | None, failed=()) -> list[Claim]:
    """Per model: pre-trained against random-initialised weights on the same test items (per-item ``metric``
    averaged over seeds). ``items``: model, init, seed, item, ``metric``. Models in ``failed`` (names whose
    control failed, :func:`failed_controls`) are left out."""
    out = []
    for name, part in items[items.init.isin(["pretrained", "random"])].groupby("model", sort=False):
        if set(part.init) != {"pretrained", "random"} or name in set(failed):
            continue
        a, b = paired_values(part, "pretrained", "random", metric, model_col="init")
        cmp = stats.compare_paired(a, b, alpha=CHAPTER_ALPHA, margin=margin, unit="test items")
        out.append(Claim(CLAIM_PRETRAINING.format(metric=metric, task=task), str(name), "random-initialised twin",
                         metric, higher_is_better, cmp))
    return out


def fine_tuning_claims(items, reference: str, *, tasks: Mapping[str, object], task_col: str,
                       margin_accuracy: float | None, margin_bits: float | None, failed=(),
                       extra_references: Sequence[str] = ()) -> list[Claim]:
    """For every task (``tasks``: label used in the claim -> value of ``task_col``): each pre-trained model against
    ``reference`` (and each of ``extra_references`` that ``items`` hold) and against its random-initialised twin,
    on per-item accuracy and bits (:func:`item_reference_claims`, :func:`pretraining_item_claims`). ``failed``:
    (model, ``task_col`` value) pairs whose control failed (:func:`failed_controls` with ``by=task_col``), left
    out of the twin claims."""
    claims: list[Claim] = []
    for label, value in tasks.items():
        part = items[items[task_col] == value]
        gone = {m for m, v in failed if v == value}
        for metric, hib, margin in (("accuracy", True, margin_accuracy), ("bits", False, margin_bits)):
            for ref in (reference, *extra_references):
                claims += item_reference_claims(part, ref, task=label, metric=metric, higher_is_better=hib,
                                                margin=margin)
            claims += pretraining_item_claims(part, task=label, metric=metric, higher_is_better=hib, margin=margin,
                                              failed=gone)
    return claims


MAJORITY = "majority class"
#: The one-hot CNN trained from scratch (``onehot_cnn.MODEL_NAME``), a baseline of chapter 6 when run.
ONEHOT_CNN = "one-hot CNN"


def biology_claims(items, runs, *, tasks: Sequence[str], kmer_reference: str, margin_accuracy: float | None,
                   margin_bits: float | None, test_labels: Mapping[str, np.ndarray]) -> list[Claim]:
    """Chapter 6, per task: every pre-trained model against the k-mer baseline and its random-initialised twin on
    per-item accuracy and bits (:func:`fine_tuning_claims`), against the majority class on accuracy (does it
    separate the classes at all), pre-trained against random-initialised on MCC and AUROC by a paired bootstrap over
    the test items (:func:`set_score_claims`), and against the one-hot CNN trained from scratch
    (:data:`ONEHOT_CNN`, per-item accuracy and bits, each over its seeds) where ``items`` hold it. A model whose
    random-initialised control failed on a task (:func:`failed_controls`) is not judged against it there.
    ``items``/``runs``: biotasks.run_task outputs (column ``task``; items with p1); ``test_labels``: task -> (n,)
    0/1 test labels in item order."""
    failed = failed_controls(runs, by="task")
    claims = fine_tuning_claims(items, kmer_reference, tasks={t: t for t in tasks}, task_col="task",
                                margin_accuracy=margin_accuracy, margin_bits=margin_bits, failed=failed)
    for task in tasks:
        for metric, hib, margin in (("accuracy", True, margin_accuracy), ("bits", False, margin_bits)):
            claims += item_reference_claims(items[items.task == task], ONEHOT_CNN, task=task, metric=metric,
                                            higher_is_better=hib, margin=margin)
        claims += item_reference_claims(items[items.task == task], MAJORITY, task=task, metric="accuracy",
                                        higher_is_better=True, margin=None)
        for metric in ("mcc", "auroc"):
            claims += set_score_claims(items, runs, test_labels, task=task, metric=metric, margin=None,
                                       failed={m for m, t in failed if t == task})
    return claims


# ------------------------------------------------------------------------------------------------
# Chapter 7: copying or context (dependency maps, planted answer key)
# ------------------------------------------------------------------------------------------------
#: Suffix of a model's step-0 twin in item tables (``"overlap6" + STEP0_SUFFIX``).
STEP0_SUFFIX = " (step 0)"
CLAIM_BEYOND = "dependency beyond the copy band against its step-0 twin"
CLAIM_INSIDE = "dependency inside the copy band against its step-0 twin"
CLAIM_PLANTED = "planted block (D = {distance} nt) against the n-gram"


def planted_rows(table):
    """The rows of a verdict table that are :data:`CLAIM_PLANTED` claims (one per model and planted distance)."""
    return table[table.claim.astype(str).str.startswith(CLAIM_PLANTED.split("{")[0])]


def twin_claims(items, models: Sequence[str], *, metric_columns: Mapping[str, str], margin: float | None,
                higher_is_better: bool = True, item_col: str = "item", unit: str = "hidden targets") -> list[Claim]:
    """Per model and metric column: the trained model against its step-0 twin on the same items (``items``: model,
    ``item_col`` and the ``metric_columns`` keys; the twin's rows are named ``model + STEP0_SUFFIX``), one claim
    each (``metric_columns``: column -> claim text). Rows sharing an ``item_col`` value are averaged first, so a
    coarser column (e.g. "window" for the targets of one mapped window, which are not independent) makes that
    the unit that is paired and counted (``unit`` names it). Models without twin rows, and columns without one
    measured pair for a model (a band it does not have), are left out."""
    out = []
    for name in models:
        twin = name + STEP0_SUFFIX
        if not ((items.model == name).any() and (items.model == twin).any()):
            continue
        for column, claim in metric_columns.items():
            a, b = paired_values(items, name, twin, column, item_col=item_col)
            if not np.isfinite(a - b).any():  # the band does not exist for this model (e.g. k = 1: no copy band)
                continue
            cmp = stats.compare_paired(a, b, alpha=CHAPTER_ALPHA, margin=margin, unit=unit)
            out.append(Claim(claim, name, "step-0 twin", column, higher_is_better, cmp))
    return out


def planted_claims(items, *, reference: str, margin: float | None, skip: Sequence[str] = ("chance",)) -> list[Claim]:
    """Per (model, distance): the model's 0/1 correctness on the determined block's hidden nucleotides against
    ``reference`` (the n-gram) on the same nucleotides (exact McNemar). ``items``: model, distance, item,
    correct; the reference's rows carry each distance too; rows of ``skip`` (other references) are no subject."""
    out = []
    for distance, part in items.groupby("distance", sort=True):
        subjects = [m for m in dict.fromkeys(part.model) if m != reference and m not in set(skip)]
        out += versus_reference(part, subjects, reference, claim=CLAIM_PLANTED.format(distance=int(distance)),
                                metric="correct", higher_is_better=True, margin=margin, unit="hidden nucleotides")
    return out


CLAIM_ARM = "{what} against {reference}, the arm it changes"


def arm_claims(items, pairs: Mapping[str, str], *, value: str, what: str, higher_is_better: bool,
               margin: float | None, unit: str, by: str | None = None, item_col: str = "item") -> list[Claim]:
    """Per (arm, reference arm) of ``pairs`` present in ``items`` (e.g. a leak-closing arm and the DNABERT-masked arm
    it changes, ``pretraining.ARM_CHANGES``): the arm's per-item ``value`` against the reference's on the same items
    (``items``: model, ``item_col``, ``value``[, ``by``]; rows sharing an ``item_col`` value averaged first, as in
    :func:`twin_claims`), one claim per value of ``by`` (e.g. the planted distance) or one in all. The claim reads
    "<what> against <reference>, the arm it changes" (plus " (<by> = x)")."""
    out = []
    groups = items.groupby(by, sort=True) if by else [(None, items)]
    for key, part in groups:
        for arm, reference in pairs.items():
            if not ((part.model == arm).any() and (part.model == reference).any()):
                continue
            a, b = paired_values(part, arm, reference, value, item_col=item_col)
            cmp = stats.compare_paired(a, b, alpha=CHAPTER_ALPHA, margin=margin, unit=unit)
            claim = CLAIM_ARM.format(what=what, reference=reference) + (f" ({by} = {key})" if by else "")
            out.append(Claim(claim, arm, reference, value, higher_is_better, cmp))
    return out


def arm_sentence(table, *, none: str = "no arm was run beside the arm it changes in this build") -> str:
    """One clause per :func:`arm_claims` row of a verdict table: "overlap6_span12 against overlap6 on planted block
    (distance = 8): better (+12.0 points, ...)"."""
    marker = ", the arm it changes"
    rows = table[table.claim.astype(str).str.contains(marker, regex=False)] if len(table) else table
    if not len(rows):
        return none
    parts = []
    for _, r in rows.iterrows():
        what, tail = r["claim"].split(" against ")[0], r["claim"].split(marker)[1]
        parts.append(f"{r['subject']} against {r['reference']} on {what}{tail}: {r['outcome']} ({describe(r)})")
    return "; ".join(parts)


def planted_sentence(table) -> str:
    """Per planted distance, which models read the planted partner better than the n-gram, equivalently, worse
    or inconclusively ("D = 8 nt: better than the n-gram: a; inconclusive: b. D = 32 nt: ...")."""
    parts = []
    claims = list(dict.fromkeys(planted_rows(table).claim))
    for claim in sorted(claims, key=lambda c: int(c.split("D = ")[1].split(" ")[0])):
        distance = claim.split("D = ")[1].split(" ")[0]
        parts.append(f"D = {distance} nt: " + outcome_sentence(table, claim, better="better than the n-gram",
                                                               worse="worse than the n-gram"))
    return ". ".join(parts) + "." if parts else "No planted distance was tested in this build."


# ------------------------------------------------------------------------------------------------
# Chapter 8: the book's answer, read from the chapters' verdicts
# ------------------------------------------------------------------------------------------------
def book_answer(verdicts, copy_candidates: Sequence[str] = ()) -> dict:
    """The conclusions page's verdicts, read (not re-tested) from the chapters' tables.

    Returns: ``copying`` (True / False / None: every copy candidate that was tested follows the altered flank
    more often than the genome / some do not / none tested; this shows that the revealed letter is read, not that
    context is not), ``copiers`` (list), ``context_better`` (list of "model (claim)" where a model beats a
    context-only n-gram in accuracy on real DNA, chapters 3 and 5), ``context_tested`` (bool), ``planted_better``
    (models that read chapter 7's planted partner better than the n-gram at some distance), ``planted_tested``
    (bool), ``answer`` (one sentence: the copying part, then real DNA, then the planted answer key, which says
    whether the instruments can see context where it is known to be).
    """
    v = verdicts
    cop = v[v.claim == CLAIM_COPIES]
    if copy_candidates:
        cop = cop[cop.subject.isin(list(copy_candidates))]
    copiers = cop[cop.outcome == "better"].subject.tolist()
    copying = None if cop.empty else bool(len(copiers) == len(cop))
    planted = planted_rows(v)
    real = v[v.reference.astype(str).str.contains("n-gram") & (v.metric == "accuracy") & ~v.index.isin(planted.index)]
    real_better = real[real.outcome == "better"]
    better = [f"{r.subject} ({r.claim})" for r in real_better.itertuples()]
    tested = bool(len(real))
    planted_better = list(dict.fromkeys(planted[planted.outcome == "better"].subject))
    out = {"copying": copying, "copiers": copiers, "context_better": better, "context_tested": tested,
           "planted_better": planted_better, "planted_tested": bool(len(planted))}
    if copying is None and not tested and planted.empty:
        return {**out, "answer": "not decided: the chapters that test copying and context were not run in this build"}
    parts = [{True: "the overlapping models read the letters their neighbours reveal",
              False: "not every overlapping model is shown to read the letters its neighbours reveal",
              None: "no overlapping model was tested for reading its neighbours' letters"}[copying]]
    if not tested:
        parts.append("whether any model knows more than flank counts on real DNA was not tested in this build")
    elif better:
        parts.append(f"on real DNA {', '.join(dict.fromkeys(real_better.subject))} beat a context-only n-gram somewhere (listed below)")
    else:
        parts.append("on real DNA no model is shown to know more about a nucleotide's surroundings than flank counts do")
    if len(planted):
        parts.append(f"on the planted answer key {', '.join(planted_better)} read the planted partner better than the "
                     "n-gram, so the instruments see context where it is known to be" if planted_better else
                     "on the planted answer key no model reads the planted partner better than the n-gram, so the "
                     "instruments were not shown to see context even where it is known to be")
    answer = "; ".join(parts)
    if copying and tested and not better:
        answer = "word identity as far as this build can tell: " + answer
    return {**out, "answer": answer}


def task_outcomes(verdicts, claim_prefix: str) -> dict[str, dict[str, list[str]]]:
    """task -> outcome -> subjects, for claims starting with ``claim_prefix`` whose text ends in "(task)"."""
    sub = verdicts[verdicts.claim.str.startswith(claim_prefix)]
    out: dict[str, dict[str, list[str]]] = {}
    for r in sub.itertuples():
        task = r.claim.rsplit("(", 1)[-1].rstrip(")")
        out.setdefault(task, {o: [] for o in OUTCOMES})[r.outcome].append(r.subject)
    return out


def display_table(table):
    """The verdict table as a reader sees it: claim, model, reference, difference with its interval, Holm p,
    outcome (percentage points for accuracies and shares). The interval column says its level (every claim of
    a verdict table is decided at one level, :func:`decide`'s ``alpha``; a row at another level names its own).
    Intervals are per claim (not adjusted for the others), while the outcome follows the Holm-adjusted p: a
    claim among many can have an interval that excludes 0 and still be inconclusive."""
    import pandas as pd

    levels = [interval_level(a) for a in table["alpha"]] if len(table) else [interval_level(CHAPTER_ALPHA)]
    header = f"{levels[0]} % interval (per claim, unadjusted)"
    rows = []
    for r, level in zip(table.to_dict("records"), levels):
        f, unit = _scale(r["metric"])
        interval = f"{f * r['low']:+.2f} to {f * r['high']:+.2f}" if np.isfinite(r["low"]) else "n/a"
        rows.append({"claim": r["claim"], "model": r["subject"], "reference": r["reference"],
                     "difference": f"{f * r['estimate']:+.2f}{unit}" if np.isfinite(r["estimate"]) else "n/a",
                     header: interval if level == levels[0] or interval == "n/a" else f"{interval} ({level} %)",
                     "n": r["n"], "Holm p": fmt_p(r["p_holm"]).removeprefix("p ").removeprefix("= "),
                     "outcome": r["outcome"]})
    return pd.DataFrame(rows, columns=["claim", "model", "reference", "difference", header, "n", "Holm p", "outcome"])


def show_table(table) -> None:
    """Display :func:`display_table` in full below the cell: every row and every claim uncut (pandas alone shows
    10 of more than 60 rows and cuts text at 50 characters)."""
    import pandas as pd
    from IPython.display import display

    with pd.option_context("display.max_rows", None, "display.min_rows", None, "display.max_colwidth", None):
        display(display_table(table))
