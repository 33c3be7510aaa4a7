"""The chapters' numbers in words: per-model lists by role and the sentences of each "What it shows" section.

Every function takes a chapter's tables, the models' roles (:func:`dnalm_utils.roles.model_roles`) and its
verdict table (:mod:`dnalm_utils.verdicts`), and returns ``{glue key: text}``; a chapter glues them all with
:func:`glue_all`. Nothing here names a zoo model: lists are built from the models that ran, labelled by role,
so the prose reads right for any model set. Missing numbers read "n/a" only where the probe did not run.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from . import verdicts as V
from .roles import copy_candidates, recipe_controls
from .nextkmer import NGRAM_LEFT
from .result_tables import markdown_table, wide_table
from .verdicts import fmt_pct


def labelled(name: str, roles) -> str:
    """"**overlap6** (overlapping 6-mers)" from the roles table ("**name**" when the model has no role row)."""
    row = roles[roles.model == name] if roles is not None and len(roles) else []
    return f"**{name}** ({row.label.iloc[0]})" if len(row) else f"**{name}**"


def value_list(values: Mapping[str, float], roles=None, *, fmt=fmt_pct, with_labels: bool = True) -> str:
    """"**a** (label) 41.2 %, **b** (label) 40.1 %" in the order given; "n/a" when empty."""
    parts = [f"{labelled(n, roles) if with_labels else f'**{n}**'} {fmt(v)}" for n, v in values.items()
             if v is not None and np.isfinite(v)]
    return ", ".join(parts) if parts else "n/a"


def names(models: Sequence[str]) -> str:
    """"**a**, **b** and **c**" ("none" for no model)."""
    models = [f"**{m}**" for m in models]
    if not models:
        return "none"
    return models[0] if len(models) == 1 else ", ".join(models[:-1]) + " and " + models[-1]


def share_with_interval(successes: int, n: int, digits: int = 1) -> str:
    """"23.4 % [21.6 %, 25.3 %]": a share of ``n`` trials with its 95 % Wilson interval (``stats.binomial_interval``)."""
    from .stats import binomial_interval

    low, high = binomial_interval(int(successes), int(n))
    return f"{fmt_pct(successes / n, digits)} [{fmt_pct(low, digits)}, {fmt_pct(high, digits)}]" if n else "n/a"


def step0_missing_sentence(models: Sequence[str]) -> str:
    """The sentence naming the models without step-0 weights, whose step-0 comparisons are not applicable
    ("Every model of this run has step-0 weights." when there is none)."""
    if not len(models):
        return "Every model of this run has step-0 weights."
    return f"Not applicable for want of step-0 weights: {names(models)}."


def value_range(values) -> str:
    """"97.1 % to 99.8 %" over finite values ("n/a" when none)."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    if not v.size:
        return "n/a"
    return fmt_pct(v.min()) if v.min() == v.max() else f"{fmt_pct(v.min())} to {fmt_pct(v.max())}"


def glue_text(values: Mapping[str, str]) -> None:
    """Glue plain values (parameters, counts) for ``{glue:text}``."""
    from myst_nb import glue

    for key, value in values.items():
        glue(key, str(value), display=False)


def glue_all(texts: Mapping[str, str]) -> None:
    """Glue every text (strings holding markdown emphasis as ``Markdown`` for ``{glue:md}``)."""
    from IPython.display import Markdown
    from myst_nb import glue

    for key, text in texts.items():
        glue(key, Markdown(str(text)), display=False)


def show(text: str) -> None:
    """Display ``text`` as Markdown below the cell; nothing when it is empty or blank (an empty Markdown output
    would render as its Python repr, ``<IPython.core.display.Markdown object>``)."""
    if str(text).strip():
        from IPython.display import Markdown, display

        display(Markdown(str(text)))


def _at(df, value: str, **where) -> dict[str, float]:
    sub = df
    for col, val in where.items():
        sub = sub[sub[col] == val]
    return {str(m): float(v) for m, v in zip(sub.model, sub[value])}


def masked_prediction(*, roles, summary, same, baselines, perturbation, lens, attention, verdict_table, h_by_m,
                      perturbation_m: Sequence[int], readout_m: Sequence[int], m_past_k: int,
                      n_verdict_windows: int, collapse_drop: float = 0.10) -> dict[str, str]:
    """Chapter 3's sentences. ``summary``: the span sweep (model, k, m, accuracy, oracle_accuracy,
    flank_agreement); ``same``/``baselines``: same-nucleotide scores (model / reference, h, accuracy);
    ``perturbation``: model, m, follows_flank, follows_genome; ``lens``: model, m, layer, accuracy;
    ``attention``: model, share_overlapping, share_distant; ``h_by_m``: m -> hidden block length."""
    out: dict[str, str] = {}
    swept = list(dict.fromkeys(summary.model)) if len(summary) else []
    out["copy_models"] = ", ".join(labelled(n, roles) for n in swept) or "none (no overlapping k-mer model was run)"
    for key, rel in (("m1", lambda k: 1), ("mkm1", lambda k: k - 1), ("mk", lambda k: k),
                     ("mkmax", lambda k: k + m_past_k)):
        vals = {n: float(p.set_index("m").accuracy.get(rel(int(p.k.iloc[0])), np.nan))
                for n, p in summary.groupby("model", sort=False)} if len(summary) else {}
        out[f"sweep_{key}"] = value_list(vals, with_labels=False)
        orc = {n: float(p.set_index("m").oracle_accuracy.get(rel(int(p.k.iloc[0])), np.nan))
               for n, p in summary.groupby("model", sort=False)} if len(summary) else {}
        out[f"oracle_{key}"] = value_range(orc.values())
        agree = {n: float(p.set_index("m").flank_agreement.get(rel(int(p.k.iloc[0])), np.nan))
                 for n, p in summary.groupby("model", sort=False)} if len(summary) else {}
        out[f"agree_{key}"] = value_list(agree, with_labels=False)
    collapse = V.first_collapse(summary, drop=collapse_drop) if len(summary) else {}
    ks = summary.groupby("model").k.first().to_dict() if len(summary) else {}
    out["collapse_text"] = (", ".join(f"**{n}** at m = {m} (k = {int(ks[n])})" for n, m in collapse.items())
                            or "no model")
    below_k = summary[summary.m < summary.k] if len(summary) else summary
    short = (below_k[below_k.accuracy < below_k.oracle_accuracy - collapse_drop].groupby("model", sort=False).m.min()
             if len(summary) else {})
    out["shortfall_text"] = ", ".join(f"**{n}** (from m = {m})" for n, m in dict(short).items()) or "none"
    m0 = perturbation_m[0] if len(perturbation_m) else None
    out["perturb_m_text"] = str(m0) if m0 is not None else "n/a"
    first = perturbation[perturbation.m == m0] if len(perturbation) else perturbation
    out["perturb_flank_list"] = value_list(_at(first, "follows_flank"), with_labels=False) if len(first) else "n/a"
    out["perturb_genome_list"] = value_list(_at(first, "follows_genome"), with_labels=False) if len(first) else "n/a"
    out["perturb_verdict"] = V.outcome_sentence(
        verdict_table, V.CLAIM_COPIES, better="follow the altered flank more often than the genome",
        worse="keep the genome's letter more often than they copy the flank",
        none="no overlapping k-mer model with a masked-token head was run")
    h_values = sorted(set(h_by_m.values()))
    for key, h in (("h1", h_values[0] if h_values else None), ("hmax", h_values[-1] if h_values else None)):
        s = same[same.h == h] if h is not None else same.iloc[0:0]
        b = baselines[baselines.h == h] if h is not None else baselines.iloc[0:0]
        out[f"h_{key}"] = str(h) if h is not None else "n/a"
        out[f"same_{key}"] = value_list(_at(s, "accuracy"), roles)
        ng = b[b.reference == "two-sided n-gram"]
        out[f"ngram_same_{key}"] = fmt_pct(float(ng.accuracy.iloc[0])) if len(ng) else "n/a"
        out[f"ngram_order_{key}"] = ng.model.iloc[0].split("order ")[-1].rstrip(")") if len(ng) else "n/a"
        pr = b[b.reference == "corpus base frequencies"]
        out[f"prior_same_{key}"] = fmt_pct(float(pr.accuracy.iloc[0])) if len(pr) else "n/a"
        best = s.sort_values("accuracy", ascending=False)
        out[f"best_same_{key}"] = (f"**{best.model.iloc[0]}** ({fmt_pct(best.accuracy.iloc[0])})" if len(best)
                                   else "n/a")
        for metric in ("accuracy", "bits"):
            claim = V.CLAIM_HIDDEN.format(metric=metric, h=h)
            out[f"vs_ngram_{metric}_{key}"] = V.outcome_sentence(
                verdict_table, claim, better="above the n-gram", worse="below it",
                equivalent="equivalent to it within the margin", none="not tested")
    out["n_verdict_windows"] = f"{int(n_verdict_windows):,}"
    r0 = min(readout_m) if len(readout_m) else None
    out["readout_m_text"] = str(r0) if r0 is not None else "n/a"
    lens_lines = []
    if len(lens) and r0 is not None:
        for n, part in lens[lens.m == r0].groupby("model", sort=False):
            part = part.sort_values("layer")
            lens_lines.append(f"**{n}** {fmt_pct(part.accuracy.iloc[0])} at the embedding output, "
                              f"{fmt_pct(part.accuracy.iloc[min(1, len(part) - 1)])} after layer 1 and "
                              f"{fmt_pct(part.accuracy.iloc[-1])} after the last")
    out["lens_text"] = "; ".join(lens_lines) or "no model with a masked-token head was read layer by layer"
    att = attention.groupby("model", sort=False)[["share_overlapping", "share_distant"]].mean() if len(attention) else None
    cands = [n for n in swept if att is not None and n in att.index]
    out["att_overlap_range"] = value_range(att.loc[cands].share_overlapping) if cands else "n/a"
    others = [n for n in (att.index if att is not None else []) if n not in swept]
    out["att_distant_overlapping"] = value_range(att.loc[cands].share_distant) if cands else "n/a"
    out["att_distant_others"] = (value_list({n: float(att.share_distant[n]) for n in others}, roles)
                                 if others else "n/a (no other model was run)")
    # what a head without preference would give, on the same windows and spans (masking.attention_shares)
    flat = (attention.groupby("model", sort=False)[["uniform_overlapping", "uniform_distant"]].mean()
            if len(attention) and "uniform_overlapping" in attention else None)

    def uniform(col, models):
        models = [n for n in models if flat is not None and n in flat.index]
        return f"{value_range(flat.loc[models, col])} under uniform attention" if models else "uniform reference n/a"

    out["att_overlap_uniform"] = uniform("uniform_overlapping", cands)
    out["att_distant_uniform"] = uniform("uniform_distant", cands)
    out["att_distant_others_uniform"] = uniform("uniform_distant", others)
    first_part = copying_sentence(verdict_table, roles)
    hidden_better = V.names_by_outcome(verdict_table, V.CLAIM_HIDDEN.format(metric="accuracy", h=h_values[0])
                                       )["better"] if h_values else []
    second = ("; on the nucleotides the flanks hide, " + (
        f"{names(hidden_better)} beat the two-sided n-gram" if hidden_better else
        "no model is shown to beat the two-sided n-gram") if h_values else "")
    out["conclusion"] = first_part + second
    return out


def copying_sentence(verdict_table, roles) -> str:
    """What chapter 3's flank test decided (does the prediction follow a revealed letter when every token showing
    it is edited?), for the overlapping models of the zoo's main recipe, with the recipe controls
    (roles.recipe_controls) reported apart: a control that has not learned the rule in the same budget does not
    make the main models' result any less clear. The sentence says what the test cannot show: following an edit
    that removes the genome's letter from the input is what any input-reading model does, context or not."""
    controls = set(recipe_controls(roles)) if roles is not None and len(roles) else set()
    cop = verdict_table[verdict_table.claim == V.CLAIM_COPIES]
    main, ctrl = cop[~cop.subject.isin(controls)], cop[cop.subject.isin(controls)]
    if main.empty and ctrl.empty:
        return "no overlapping model was tested for copying"
    if len(main) and (main.outcome == "better").all():
        text = (f"with one masked token, the overlapping models predict the letters their unmasked neighbours reveal: "
                f"every one of them ({names(main.subject.tolist())}) follows a revealed letter once every token showing "
                "it is edited, which a copier and a model that also reads context would both do, so this test alone "
                "does not tell them apart")
    elif len(main):
        text = ("some overlapping models are not shown to predict the letters their neighbours reveal: "
                + V.outcome_sentence(main, V.CLAIM_COPIES, better="follow the edited letter", worse="keep the genome's letter"))
    else:
        text = "only recipe controls were tested for copying"
    if len(ctrl):
        text += ("; the recipe control, trained with a different embedding initialisation in the same budget: "
                 + V.outcome_sentence(ctrl, V.CLAIM_COPIES, better="copies", worse="keeps the genome's letter"))
    return text


def _model_scale(roles) -> str:
    """"1 to 2 layers of 32 to 128 units, 30,720 to 8,192,000 nucleotides seen in pre-training" from the roles."""
    if roles is None or not len(roles):
        return "of unknown size (no chapter recorded the models' roles)"

    def span(col, fmt=str):
        v = sorted({int(x) for x in roles[col].dropna()})
        return "n/a" if not v else fmt(v[0]) if len(v) == 1 else f"{fmt(v[0])} to {fmt(v[-1])}"

    seen = span("nucleotides_seen", lambda x: f"{x:,}")
    layers = span("layers")
    text = f"{layers} layer{'' if layers == '1' else 's'} of {span('hidden')} units"
    return text + (f", {seen} nucleotides seen in pre-training" if seen != "n/a" else "")


def conclusions(*, table, verdict_table, roles, bio_summary=None, planted=None, state_paired=None,
                by_class=None, readouts=None, mass=None) -> dict[str, str]:
    """Chapter 8's sentences (conclusions), read from the chapters' tables (``table``: conclusions.headline_table), their
    verdicts (``verdict_table``: verdicts.read_verdicts), the models' roles, chapter 7's planted-accuracy table
    (``planted``) and dependency-mass table (``mass``), chapter 4's paired state-probe table (``state_paired``),
    chapter 3's split by sequence class (``by_class``) and chapter 5's readouts (``readouts``), each None when its
    chapter did not run; nothing is re-tested here."""
    from .sequence_classes import class_split_sentence
    from .state_probes import paired_sentence

    out: dict[str, str] = {}
    out["oracle_text"] = V.oracle_sentence(verdict_table)
    out["same_view_text"] = V.same_view_sentence(verdict_table)
    out["state_text"] = (paired_sentence(state_paired) if state_paired is not None and len(state_paired)
                         else "chapter 4's state probes were not run in this build")
    out["class_text"] = (class_split_sentence(by_class) if by_class is not None and len(by_class)
                         else "chapter 3's split by sequence class was not run in this build")
    out["readouts_text"] = readouts_sentence(readouts)
    out["context_probe_text"] = (copying_or_context(verdict_table, planted, mass) if planted is not None
                                 else "chapter 7 was not run in this build")
    controls = set(recipe_controls(roles)) if roles is not None and len(roles) else set()
    cands = [c for c in copy_candidates(roles) if c not in controls] if roles is not None and len(roles) else []
    ans = V.book_answer(verdict_table, cands)
    out["copy_summary"] = copying_sentence(verdict_table, roles)
    out["answer"] = ans["answer"][0].upper() + ans["answer"][1:]

    def col(name):
        return dict(zip(table.model, table[name])) if len(table) and name in table else {}

    out["copy_m1"] = value_list(col("masked accuracy, m = 1"), roles)
    out["copy_flank"] = value_list(col("copies the altered flank"), with_labels=False)
    out["copy_verdict"] = V.outcome_sentence(
        verdict_table, V.CLAIM_COPIES, better="follow the altered flank more often than the genome (chapter 3's test)",
        worse="keep the genome's letter more often", none="not tested in this build")
    hid = {k: v for k, v in col("hidden-nucleotide accuracy").items() if np.isfinite(v)}
    best = max(hid, key=hid.get) if hid else None
    out["hidden_best"] = f"**{best}** ({fmt_pct(hid[best])})" if best else "n/a"
    ng = [v for v in col("n-gram, same nucleotides").values() if np.isfinite(v)]
    out["hidden_ngram"] = fmt_pct(ng[0]) if ng else "n/a"
    h_claims = verdict_table[verdict_table.claim.str.startswith("hidden-nucleotide accuracy")]
    first_claim = h_claims.claim.iloc[0] if len(h_claims) else None
    out["hidden_verdict"] = (V.outcome_sentence(verdict_table, first_claim, better="above the n-gram",
                                                worse="below it", equivalent="equivalent within the margin")
                             if first_claim else "not tested in this build")
    next_cols = [c for c in table if c.startswith("next-") and c.endswith("accuracy")] if len(table) else []
    for key, c in (("first", next_cols[0] if next_cols else None), ("last", next_cols[-1] if next_cols else None)):
        k = c.split("-")[1] if c else "n/a"
        s = {m: v for m, v in col(c).items() if np.isfinite(v)} if c else {}
        ref = [v for v in col(f"n-gram, next {k}-mer").values() if np.isfinite(v)]
        out[f"next_k_{key}"] = "n/a" if c is None else "nucleotide" if k == "1" else f"{k} nucleotides"
        bm = max(s, key=s.get) if s else None
        out[f"next_best_{key}"] = f"**{bm}** ({fmt_pct(s[bm])})" if bm else "n/a"
        out[f"next_ngram_{key}"] = fmt_pct(ref[0]) if ref else "n/a"
    out["beats_ngram"] = ", ".join(ans["context_better"]) if ans["context_better"] else (
        "none" if ans["context_tested"] else "not tested in this build")
    out["token_share"] = value_range(col("token share of last-layer variance").values())
    step0 = col("token share at step 0")
    out["token_share_step0"] = (f"at initialisation (step 0) it is {value_range(step0.values())}, so training put the "
                                "rest there" if step0 and np.isfinite(list(step0.values())).any() else
                                "no model of this build has step-0 weights to say how much of it training put there")
    bio = task_outcome_text(verdict_table)
    out["bio_text"] = bio
    if bio_summary is not None and len(bio_summary) and {"task", "mcc_mean", "init"} <= set(bio_summary.columns):
        pre = bio_summary[bio_summary.init == "pretrained"]
        parts = []
        for task, part in pre.groupby("task", sort=False):
            b = part.sort_values("mcc_mean", ascending=False).iloc[0]
            parts.append(f"{task}: best **{b.model}** MCC {b.mcc_mean:.2f}")
        base = bio_summary[bio_summary.init == "baseline"] if "baseline" in set(bio_summary.init) else None
        if base is not None and len(base):
            parts += [f"{r.task}: {r.model} MCC {r.mcc_mean:.2f}" for r in base.itertuples()]
        out["bio_numbers"] = "; ".join(parts)
    else:
        out["bio_numbers"] = "chapter 6 was not run in this build"
    out["scale_text"] = _model_scale(roles)
    return out


def readouts_sentence(readouts) -> str:
    """Chapter 5's three readouts in one sentence for the conclusions (``nextkmer.readout_comparison`` table):
    per k (smallest and largest), the best model of each readout with its accuracy, beside the left n-gram."""
    if readouts is None or not len(readouts):
        return "chapter 5's readouts were not run in this build"
    parts = []
    for k in sorted({int(readouts.k.min()), int(readouts.k.max())}):
        part = readouts[readouts.k == k]
        best = [f"{r} **{b.model}** {fmt_pct(b.accuracy, 1 if k <= 2 else 2)}"
                for r in dict.fromkeys(part.readout)
                for b in [part[part.readout == r].sort_values("accuracy", ascending=False).iloc[0]]]
        ngram = part.ngram.dropna()
        parts.append(f"next {k}-mer: best " + ", ".join(best)
                     + (f" (n-gram {fmt_pct(float(ngram.iloc[0]), 1 if k <= 2 else 2)}" if len(ngram) else " (")
                     + f", chance {fmt_pct(4.0 ** -k, 1 if k <= 2 else 3)})")
    return "; ".join(parts)


def task_outcome_text(verdict_table) -> str:
    """Per biology task, what chapter 6's tests decided: each model against the k-mer baseline (accuracy) and
    pre-training against the random-initialised twin (AUROC) ("not tested" when chapter 6 wrote no verdicts)."""
    v = verdict_table[verdict_table.chapter == "06_biology_finetuning"] if "chapter" in verdict_table else verdict_table
    parts = []
    for task in dict.fromkeys(r.claim.rsplit("(", 1)[-1].rstrip(")") for r in v.itertuples()):
        kmer = v[(v.claim.str.startswith("accuracy against")) & v.claim.str.endswith(f"({task})")
                 & ~v.reference.eq(V.MAJORITY)]
        said = [V.outcome_sentence(kmer, kmer.claim.iloc[0], better="above the k-mer baseline",
                                   worse="below the k-mer baseline",
                                   equivalent="equivalent to the k-mer baseline")] if len(kmer) else []
        auroc = V.CLAIM_PRETRAINING.format(metric="auroc", task=task)
        if (v.claim == auroc).any():
            said.append("by AUROC " + V.outcome_sentence(v, auroc, better="pre-training helps",
                                                         worse="pre-training hurts"))
        parts.append(f"*{task}*: " + "; ".join(said))
    return "; ".join(parts) if parts else "not tested in this build"


def biology(*, summary, runs, verdict_table, built: Mapping, kmer_reference: str, next_verdicts=None,
            next_summary=None) -> dict[str, str]:
    """Chapter 6's sentences, per task key of ``built`` (key -> biotasks.ClassificationTask): baselines, best
    models, and what the tests decided; then the comparison with chapter 5 (its ``summary.csv`` and
    ``verdicts.csv`` when given)."""
    out: dict[str, str] = {}
    num = lambda x: "n/a" if x is None or not np.isfinite(x) else f"{x:.2f}"  # noqa: E731

    def num_ci(row, metric: str) -> str:  # "0.81 [0.78, 0.84]" where the summary has an interval
        text = num(row[f"{metric}_mean"])
        lo, hi = row.get(f"{metric}_low", np.nan), row.get(f"{metric}_high", np.nan)
        return text + (f" [{lo:.2f}, {hi:.2f}]" if text != "n/a" and np.isfinite(lo) and np.isfinite(hi) else "")

    best_claims = {}
    for key, task in built.items():
        name = task.name
        s = summary[summary.task == name]
        out[f"{key}_n_test"] = f"{len(task.splits['test'][0]):,}"
        base = s[s.model == kmer_reference]
        out[f"{key}_kmer_mcc"] = num_ci(base.iloc[0], "mcc") if len(base) else "n/a"
        out[f"{key}_kmer_auroc"] = num_ci(base.iloc[0], "auroc") if len(base) else "n/a"
        for init, tag in (("pretrained", "best"), ("random", "best_rand")):
            sub = s[s.init == init].sort_values("mcc_mean", ascending=False)
            out[f"{key}_{tag}"] = (f"**{sub.model.iloc[0]}** (MCC {num_ci(sub.iloc[0], 'mcc')}, AUROC "
                                   f"{num_ci(sub.iloc[0], 'auroc')}, accuracy {fmt_pct(sub.accuracy_mean.iloc[0])})"
                                   if len(sub) else "n/a")
        pre = s[s.init == "pretrained"]
        out[f"{key}_mcc_range"] = (f"{num(pre.mcc_mean.min())} to {num(pre.mcc_mean.max())}" if len(pre) else "n/a")
        for metric, tag in (("accuracy", "vs_kmer"), ("bits", "vs_kmer_bits")):
            out[f"{key}_{tag}"] = V.outcome_sentence(
                verdict_table, V.CLAIM_BASELINE.format(metric=metric, reference=kmer_reference, task=name),
                better="better than the k-mer baseline", worse="worse", equivalent="equivalent within the margin",
                none="not tested")
        cnn = s[s.model == V.ONEHOT_CNN]
        out[f"{key}_cnn_mcc"] = num_ci(cnn.iloc[0], "mcc") if len(cnn) else "n/a"
        out[f"{key}_cnn_auroc"] = num_ci(cnn.iloc[0], "auroc") if len(cnn) else "n/a"
        out[f"{key}_vs_cnn"] = V.outcome_sentence(
            verdict_table, V.CLAIM_BASELINE.format(metric="accuracy", reference=V.ONEHOT_CNN, task=name),
            better="better than the one-hot CNN", worse="worse", equivalent="equivalent within the margin",
            none="not tested (no one-hot CNN in this run)")
        claim = V.CLAIM_BASELINE.format(metric="accuracy", reference=V.MAJORITY, task=name)
        best_claims[key] = V.names_by_outcome(verdict_table, claim)["better"]
        out[f"{key}_vs_majority"] = V.outcome_sentence(verdict_table, claim, better="above the majority class",
                                                       worse="below it", none="not tested")
        for metric in ("accuracy", "mcc", "auroc"):
            out[f"{key}_pre_{metric}"] = V.outcome_sentence(
                verdict_table, V.CLAIM_PRETRAINING.format(metric=metric, task=name), better="pre-training helps",
                worse="pre-training hurts", equivalent="no difference beyond the margin", none="not tested")
        rand = runs[(runs.task == name) & (runs.init == "random")]
        if "predicted_classes_argmax" in rand:  # binary runs scored at a validation threshold: the 0.5 decisions
            flat = rand.predicted_classes_argmax == 1
        else:
            flat = (rand.mcc_argmax if "mcc_argmax" in rand else rand.mcc) == 0
        single = flat.groupby(rand.model).all() if len(rand) else None
        out[f"{key}_single_class_text"] = (
            "no model was fine-tuned from random weights" if single is None else
            f"{int(single.sum())} of the {len(single)} models fine-tuned from random weights predict a single class "
            "in every seed (MCC exactly 0)" if single.any() else
            f"every one of the {len(single)} models fine-tuned from random weights predicts both classes")
    out["bio_best_text"] = "; ".join(f"{built[k].name}: {out[f'{k}_best']}" for k in built) or "no task was run"
    out["pretraining_measures_text"] = pretraining_measures_sentence(verdict_table, [t.name for t in built.values()])
    if next_summary is None or not len(next_summary):
        out["chapter5_text"] = "chapter 5's results were not found; run chapter 5 first (same profile)"
        out["verdict_text"] = "the two chapters cannot be set side by side from this run alone"
        return out
    k0 = int(next_summary.k.min())
    ng = next_summary[(next_summary.k == k0) & (next_summary.model == NGRAM_LEFT)].accuracy_mean
    pre5 = next_summary[(next_summary.k == k0) & (next_summary.init == "pretrained")]
    best5 = pre5.sort_values("accuracy_mean", ascending=False).iloc[0] if len(pre5) else None
    out["chapter5_text"] = (f"in chapter 5 the best pre-trained model predicts the next {k0}-mer with "
                            f"{fmt_pct(best5.accuracy_mean)} accuracy (**{best5.model}**), against "
                            f"{fmt_pct(float(ng.iloc[0])) if len(ng) else 'n/a'} for the context-only n-gram"
                            if best5 is not None else "chapter 5 has no pre-trained model")
    above5 = ([] if next_verdicts is None else
              next_verdicts[(next_verdicts.reference == NGRAM_LEFT) & (next_verdicts.metric == "accuracy")
                            & (next_verdicts.outcome == "better")].subject.unique().tolist())
    separating = set.intersection(*(set(v) for v in best_claims.values())) if best_claims else set()
    if next_verdicts is None:
        out["verdict_text"] = "chapter 5 wrote no verdicts, so the two chapters cannot be set side by side"
    else:
        out["verdict_text"] = (
            f"models that no test in chapter 5 finds above the n-gram yet that beat the majority class on every task "
            f"here: {names(sorted(separating - set(above5)))}; models above the n-gram in chapter 5: {names(above5)}")
    return out




def pretraining_measures_sentence(verdict_table, tasks: Sequence[str],
                                  metrics: Sequence[str] = ("accuracy", "mcc", "auroc")) -> str:
    """Whether chapter 6's pre-trained-against-random verdicts agree across ``metrics`` (decision rule: accuracy,
    MCC; ranking: AUROC), per task: "on TASK they agree for every model" or the models whose outcomes differ,
    with each measure's outcome. Tasks or metrics without claims are left out; "not tested" when none has any."""
    parts = []
    for task in tasks:
        by_metric = {}
        for metric in metrics:
            sub = verdict_table[verdict_table.claim == V.CLAIM_PRETRAINING.format(metric=metric, task=task)]
            if len(sub):
                by_metric[metric] = dict(zip(sub.subject, sub.outcome))
        if len(by_metric) < 2:
            continue
        models = list(dict.fromkeys(m for d in by_metric.values() for m in d))
        differ = [m for m in models if len({d.get(m) for d in by_metric.values()}) > 1]
        if not differ:
            parts.append(f"on {task} the {', '.join(by_metric)} verdicts agree for every model")
        else:
            parts.append(f"on {task} they differ for " + "; ".join(
                f"**{m}** (" + ", ".join(f"{metric} {d.get(m, 'not tested')}" for metric, d in by_metric.items()) + ")"
                for m in differ))
    return "; ".join(parts) if parts else "not tested on more than one measure in this build"


def next_kmer(*, summary, baselines, runs, verdict_table, ks: Sequence[int], n_test: int) -> dict[str, str]:
    """Chapter 5's sentences. ``summary``: nextkmer.summarize (model, init, k, accuracy_mean, bits_mean, ...;
    baselines with init "baseline"); ``baselines``: nextkmer.baseline_scores rows with k and detail; ``runs``:
    one row per fine-tuning run (init, stopped_early, best_step, steps)."""
    out: dict[str, str] = {"n_test_text": f"{int(n_test):,}"}

    def cell(model, init, k, metric="accuracy"):
        r = summary[(summary.model == model) & (summary.init == init) & (summary.k == k)]
        return float(r[f"{metric}_mean"].iloc[0]) if len(r) else None

    fine = summary[summary.init.isin(["pretrained", "random"])]
    for tag, k in (("first", ks[0]), ("last", ks[-1])):
        out[f"k_{tag}"] = str(k)
        out[f"chance_{tag}"] = fmt_pct(1 / 4**k, 2)
        out[f"majority_{tag}"] = fmt_pct(cell("majority class", "baseline", k), 2)
        out[f"prior_{tag}"] = fmt_pct(cell("prior sampling", "baseline", k), 2)
        out[f"tfidf_{tag}"] = fmt_pct(cell("k-mer TF-IDF + logistic regression", "baseline", k), 2)
        out[f"ngram_{tag}"] = fmt_pct(cell(NGRAM_LEFT, "baseline", k), 2)
        cnn = cell(V.ONEHOT_CNN, "baseline", k)
        out[f"cnn_{tag}"] = "not run" if cnn is None else fmt_pct(cnn, 2)
        bits = cell(NGRAM_LEFT, "baseline", k, "bits")
        out[f"ngram_bits_{tag}"] = "n/a" if bits is None else f"{bits:.3f}"
        row = baselines[(baselines.k == k) & (baselines.model == NGRAM_LEFT)]
        out[f"ngram_order_{tag}"] = row.detail.iloc[0].split()[1] if len(row) else "n/a"
        majority = cell("majority class", "baseline", k)
        for init, key in (("pretrained", "best"), ("random", "best_rand")):
            sub = fine[(fine.k == k) & (fine.init == init)].sort_values("accuracy_mean", ascending=False)
            best = float(sub.accuracy_mean.iloc[0]) if len(sub) else None
            out[f"{key}_{tag}"] = (f"**{sub.model.iloc[0]}** ({fmt_pct(best, 2)}"
                                   + (", no better than the majority class" if majority is not None and best <= majority
                                      else "") + ")" if len(sub) else "n/a")
            out[f"{key}_bits_{tag}"] = f"{sub.bits_mean.min():.3f}" if len(sub) else "n/a"
        task = f"next {k}-mer"
        out[f"vs_ngram_{tag}"] = V.outcome_sentence(
            verdict_table, V.CLAIM_BASELINE.format(metric="accuracy", reference=NGRAM_LEFT, task=task),
            better="above the n-gram", worse="below the n-gram", equivalent="equivalent to the n-gram within the margin",
            none="not tested")
        out[f"vs_ngram_bits_{tag}"] = V.outcome_sentence(
            verdict_table, V.CLAIM_BASELINE.format(metric="bits", reference=NGRAM_LEFT, task=task),
            better="fewer bits than the n-gram", worse="more bits", equivalent="equivalent within the margin",
            none="not tested")
        out[f"vs_cnn_{tag}"] = V.outcome_sentence(
            verdict_table, V.CLAIM_BASELINE.format(metric="accuracy", reference=V.ONEHOT_CNN, task=task),
            better="above the CNN", worse="below the CNN", equivalent="equivalent to the CNN within the margin",
            none="not tested (no CNN in this run)")
        out[f"pretraining_{tag}"] = V.outcome_sentence(
            verdict_table, V.CLAIM_PRETRAINING.format(metric="accuracy", task=task), better="pre-training helps",
            worse="pre-training hurts", equivalent="no difference beyond the margin", none="not tested")
    better = sorted({r.subject for r in verdict_table.itertuples()
                     if r.reference == NGRAM_LEFT and r.metric == "accuracy" and r.outcome == "better"})
    out["verdict_text"] = ("fine-tuned models that a paired test finds above the context-only n-gram at some k: "
                           + names(better) if better else
                           "no fine-tuned model is found above the context-only n-gram at any k")
    fine_runs = runs[runs.init.isin(["pretrained", "random"])]
    out["constant_runs"] = constant_runs_sentence(fine_runs, by="k", what="k = ")
    out["early_share"] = fmt_pct(fine_runs.stopped_early.mean(), 0) if len(fine_runs) else "n/a"
    out["median_best_step"] = (str(int(fine_runs.best_step.median())) if fine_runs.best_step.notna().any()
                               else "n/a")
    out["still_improving"] = (fmt_pct((fine_runs.best_step == fine_runs.steps).mean(), 0) if len(fine_runs)
                              else "n/a")
    out["acc_table"] = markdown_table(wide_table(summary, rows=["model", "init"], column="k", metric="accuracy",
                                                 digits=2))
    return out


def convergence_sentence(runs, *, target: float = 0.8) -> str:
    """One computed sentence on whether a grid's fine-tuning runs converged: how many stopped early on validation
    (the share against ``target``), how many kept their last evaluated step (still improving when the step budget
    ran out), and the median kept step, per initialisation when the inits had budgets of their own (column
    ``max_steps``). ``runs``: fine-tuning rows (stopped_early, best_step, steps; optionally init, max_steps)."""
    need = {"stopped_early", "best_step", "steps"}
    if not len(runs) or not need <= set(runs.columns):
        return "No fine-tuning run in this build."
    n = len(runs)
    early = int(runs.stopped_early.astype(bool).sum())
    last = int((runs.best_step == runs.steps).sum())
    verdict = ("at least" if early / n >= target else "fewer than") + f" the {100 * target:.0f} % aimed at"
    head = (f"{early:,} of {n:,} runs ({100 * early / n:.0f} %, {verdict}) stopped early because the validation "
            f"loss had stopped improving; {last:,} ({100 * last / n:.0f} %) kept their last step, so they were still "
            f"improving when the step budget ran out and their scores are lower bounds; ")
    if {"max_steps", "init"} <= set(runs.columns) and runs.max_steps.nunique() > 1:  # a budget per initialisation
        parts = [f"{int(g.best_step.median()):,} of at most {int(g.max_steps.max()):,} from {init} weights"
                 for init, g in runs.groupby("init", sort=False)]
        return head + "the median kept step is " + ", and ".join(parts) + "."
    return head + f"the median kept step is {int(runs.best_step.median()):,} of at most {int(runs.steps.max()):,}."


def constant_runs_sentence(runs, *, by: str, what: str = "") -> str:
    """One sentence naming the fine-tuning runs, pre-trained or not, that predict a single class on the whole test
    set (``predicted_classes`` <= 1: they learned nothing beyond a constant), grouped by model, init and ``by``
    (e.g. "k", "task") with their seeds; says so when there is none (or the table cannot tell)."""
    if "predicted_classes" not in runs or not len(runs):
        return "The run table does not record how many classes each run predicts."
    one = runs[runs.predicted_classes <= 1]
    if not len(one):
        return "Every fine-tuned run predicts more than one class."
    parts = [f"**{model}** ({init}, {what}{key}; seed{'s' if len(g) > 1 else ''} {', '.join(map(str, sorted(g.seed)))})"
             for (model, init, key), g in one.groupby(["model", "init", by], sort=True)]
    by_init = "; ".join(f"{init}: {int((one.init == init).sum())} of {int((runs.init == init).sum())}"
                        for init in dict.fromkeys(runs.init))
    return (f"{len(one)} of {len(runs)} fine-tuned runs ({by_init}) predict a single class on the whole test set, so "
            "their scores are those of a constant: " + "; ".join(parts) + ".")


#: Descriptive cut-offs the chapters state in words (not tests): a loss curve "crosses" this share of a uniform
#: guess; "more than half" of a variance; letter purity "kept" when this far above its shuffled baseline.
LOSS_SHARE_MARK = 0.6
MAJORITY_SHARE = 0.5
PURITY_KEPT = 0.10


def pretraining(*, roles, curves, sweep, scores, baselines, block_lengths: Sequence[int], corpus_nt: int,
                collapse_drop: float = 0.10) -> dict[str, str]:
    """Chapter 2's sentences. ``curves``: model, step, share_of_uniform[, nucleotides_seen (by that step)];
    ``sweep``: model, k, m, accuracy (overlapping models); ``scores``: model, h, accuracy, bits, nucleotides; ``baselines``: model (reference), h, accuracy,
    bits. Descriptive: the hidden-nucleotide comparison with the n-gram is tested in chapter 3."""
    out: dict[str, str] = {}
    final = curves.groupby("model", sort=False).share_of_uniform.apply(lambda x: x.tail(4).mean())
    overlapping = [m for m in final.index if m in set(roles[roles.scheme == "overlapping"].model)]
    controls = set(recipe_controls(roles)) if roles is not None and len(roles) else set()
    others = [m for m in final.index if m not in overlapping]
    main = [m for m in overlapping if m not in controls]
    ctrl = [m for m in overlapping if m in controls]
    out["share_overlapping"] = value_list({m: final[m] for m in main}, roles)
    out["share_others"] = value_list({m: final[m] for m in others}, roles)

    def lower(models):
        if not (models and others):
            return "not comparable in this run (no overlapping model, or no other tokenization)"
        return ("lower than that of every other tokenization" if max(final[m] for m in models) < min(final[m] for m in others)
                else "not lower than that of every other tokenization")

    out["leak_verdict"] = lower(main)
    if ctrl:
        verdict, many = lower(ctrl), len(ctrl) > 1
        out["control_share_text"] = (
            f"The recipe control{'s' if many else ''} (the same overlapping tokens, so the same leak, and another "
            f"embedding initialisation) end{'' if many else 's'} at {value_list({m: final[m] for m in ctrl}, roles)}: "
            + verdict + (", so within this budget the leak alone does not make the loss low."
                         if verdict.startswith("not lower") else "."))
    else:
        out["control_share_text"] = "No recipe control was run."
    crossing = {}
    for m, part in curves.groupby("model", sort=False):
        below = part[part.share_of_uniform < LOSS_SHARE_MARK]
        if not len(below):
            crossing[m] = "never"
        elif "nucleotides_seen" in below:  # arms with different windows per step compare at equal data
            crossing[m] = f"{below.nucleotides_seen.iloc[0] / 1e6:.2f} M nucleotides (step {int(below.step.iloc[0]):,})"
        else:
            crossing[m] = f"step {int(below.step.iloc[0]):,}"
    out["step60_list"] = ", ".join(f"**{m}** {crossing[m]}" for m in crossing) or "n/a"
    out["loss_mark_text"] = fmt_pct(LOSS_SHARE_MARK, 0)
    for key, rel in (("m1", lambda k: 1), ("mk", lambda k: k), ("mk3", lambda k: k + 3)):
        vals = {n: float(p.set_index("m").accuracy.get(rel(int(p.k.iloc[0])), np.nan))
                for n, p in sweep.groupby("model", sort=False)} if len(sweep) else {}
        out[f"sweep_{key}"] = value_list(vals, roles)
    collapse = V.first_collapse(sweep, drop=collapse_drop) if len(sweep) else {}
    ks = sweep.groupby("model").k.first().to_dict() if len(sweep) else {}
    out["collapse_text"] = (", ".join(f"**{n}** at m = {m} (k = {int(ks[n])})" for n, m in collapse.items())
                            or "no model")
    ctrl = [c for c in controls if len(sweep) and c in set(sweep.model)]
    at_m1 = {c: float(sweep[(sweep.model == c) & (sweep.m == 1)].accuracy.iloc[0]) for c in ctrl}
    out["control_text"] = ("The zoo's recipe controls, which differ from the others only in their embedding "
                           f"initialisation, reach {value_list(at_m1, roles)} at m = 1 in the same budget." if ctrl
                           else "")
    h0 = block_lengths[0]
    for tag, h in (("first", block_lengths[0]), ("last", block_lengths[-1])):
        out[f"h_{tag}"] = str(h)
        out[f"hidden_{tag}"] = value_list(_at(scores[scores.h == h], "accuracy"), roles)
        ng = baselines[(baselines.h == h) & baselines.model.str.startswith("two-sided")]
        out[f"ngram_acc_{tag}"] = fmt_pct(float(ng.accuracy.iloc[0])) if len(ng) else "n/a"
    ng0 = baselines[(baselines.h == h0) & baselines.model.str.startswith("two-sided")]
    out["ngram_order"] = ng0.model.iloc[0].split("order ")[-1].rstrip(")") if len(ng0) else "n/a"
    out["ngram_bits"] = f"{float(ng0.bits.iloc[0]):.2f}" if len(ng0) else "n/a"
    pr = baselines[(baselines.h == h0) & (baselines.model == "corpus base frequencies")]
    out["prior_acc"] = fmt_pct(float(pr.accuracy.iloc[0])) if len(pr) else "n/a"
    s0 = scores[scores.h == h0].sort_values("accuracy", ascending=False)
    if len(s0):
        best, n = s0.iloc[0], int(s0.nucleotides.iloc[0])
        out["best_model"] = f"**{best.model}** ({share_with_interval(round(best.accuracy * n), n)}, 95 % Wilson interval)"
    else:
        out["best_model"] = "n/a"
    out["n_hidden"] = f"{int(s0.nucleotides.iloc[0]):,}" if len(s0) else "n/a"
    out["scale_text"] = f"{_model_scale(roles)}, trained on {int(corpus_nt):,} nt of human DNA"
    return out



def embeddings(*, roles, summary, metrics) -> dict[str, str]:
    """Chapter 4's sentences. ``summary``: one row per model (static purity, last-layer purity, last baseline,
    GC R2 static / last, self-sim same / other, token share first / last / baseline); ``metrics``: model, metric,
    layer, value, baseline (layer -1 = static table). Descriptive: "more than half" (:data:`MAJORITY_SHARE`) and
    "kept" (:data:`PURITY_KEPT` above the shuffled baseline) are stated cut-offs, not tests."""
    out: dict[str, str] = {"purity_kept_text": f"{100 * PURITY_KEPT:.0f}"}
    s = summary.set_index("model")
    controls = set(recipe_controls(roles)) if roles is not None and len(roles) else set()
    over = [m for m in s.index if m in set(roles[roles.scheme == "overlapping"].model) and m not in controls]
    col = lambda c, names=None: {m: float(s.loc[m, c]) for m in (s.index if names is None else names)}  # noqa: E731
    out["over_static_range"] = value_range(col("static purity", over).values()) if over else "n/a"
    out["over_last_range"] = value_range(col("last-layer purity", over).values()) if over else "n/a"
    out["over_share_range"] = value_range(col("token share last", over).values()) if over else "n/a"
    out["control_static"] = (value_list(col("static purity", sorted(controls & set(s.index))), roles)
                             if controls & set(s.index) else "n/a (no recipe control in this run)")
    out["last_purity_list"] = value_list(col("last-layer purity"), roles)
    out["purity_base_range"] = value_range(col("last baseline").values())
    kept = s[s["last-layer purity"] > s["last baseline"] + PURITY_KEPT].index.tolist()
    out["letters_kept"] = names(kept)
    pos = []
    for m in over:
        last = metrics[metrics.model == m].layer.max()
        per = metrics[(metrics.model == m) & (metrics.layer == last) & metrics.metric.str.endswith("_purity")]
        if len(per):
            label = per.metric.str.replace("_purity", "").str.replace("nt_", "letter ")
            pos.append(f"**{m}** best {label.iloc[int(per.value.argmax())]} ({fmt_pct(per.value.max())}), worst "
                       f"{label.iloc[int(per.value.argmin())]} ({fmt_pct(per.value.min())})")
    out["position_text"] = "; ".join(pos) or "n/a"
    two = lambda x: "n/a" if not np.isfinite(x) else f"{x:.2f}"  # noqa: E731
    out["gc_list"] = ", ".join(f"**{m}** {two(s.loc[m, 'GC R2 static'])} / {two(s.loc[m, 'GC R2 last'])}"
                               for m in s.index) or "n/a"
    out["share_list"] = ", ".join(f"{labelled(m, roles)} {fmt_pct(s.loc[m, 'token share first'])} then "
                                  f"{fmt_pct(s.loc[m, 'token share last'])} (random assignment "
                                  f"{fmt_pct(s.loc[m, 'token share baseline'])})" for m in s.index) or "n/a"
    out["selfsim_list"] = ", ".join(f"**{m}** {two(s.loc[m, 'self-sim same'])} ({two(s.loc[m, 'self-sim other'])})"
                                    for m in s.index) or "n/a"
    share = s["token share last"].dropna()
    mostly = share[share > MAJORITY_SHARE].index.tolist()
    out["mostly_token"] = names(mostly)
    if len(share) and len(mostly) == len(share):
        out["token_verdict"] = (f"in every model of this run the token itself explains more than half of the last "
                                f"layer's variance ({value_range(share.values)})")
    elif len(share):
        out["token_verdict"] = (f"the token explains more than half of the last layer's variance in {names(mostly)} "
                                f"and at most half in {names([m for m in share.index if m not in mostly])}")
    else:
        out["token_verdict"] = "no model was run"
    return out


def copying_or_context(verdict_table, planted, mass=None) -> str:
    """Chapter 7's answer from its verdicts, planted-accuracy table (``planted_context.planted_table``) and
    dependency-mass table (``mass``: band, share, model, as chapter 7 writes it; step-0 rows named
    ``model + verdicts.STEP0_SUFFIX``; None leaves the shares out): the positive control
    (``planted_context.positive_control_text``: without it the benchmark measures nothing), which models gained
    dependency beyond their copy band in training (against their step-0 weights, beside how the share of their
    dependency beyond the band moved), which arms read the planted partner better than the n-gram, and then the
    chapter's question answered for the overlapping k-mer arms (:func:`overlap_context_answer`)."""
    from . import planted_context
    from . import verdicts as V

    head = (planted_context.positive_control_text(planted) if planted is not None and len(planted)
            else "No model was trained on the planted corpus, so there is no positive control.")
    groups = V.names_by_outcome(verdict_table, V.CLAIM_BEYOND) if len(verdict_table) else {o: [] for o in V.OUTCOMES}
    tested = sum(len(v) for v in groups.values())
    if tested:
        gained = groups["better"]
        rest = groups["equivalent"] + groups["inconclusive"] + groups["worse"]
        real = ("On held-out human DNA, training added dependency beyond the copy band (paired by window against each "
                "model's step-0 weights, which depend on almost nothing, so this only says that training made the "
                "prediction read its surroundings at all) for " + (names(gained) if gained else "no model")
                + (f"; not for {names(rest)}" if rest else "") + ".")
    else:
        real = "No model had step-0 weights to set its dependency map against, so what training added was not tested."
    if mass is not None and len(mass):
        beyond = mass[mass.band == "beyond"].set_index("model").share
        moved = [f"**{m}** {fmt_pct(beyond[m + V.STEP0_SUFFIX], 0)} → {fmt_pct(beyond[m], 0)}" for m in beyond.index
                 if not m.endswith(V.STEP0_SUFFIX) and m + V.STEP0_SUFFIX in beyond.index]
        if moved:
            real += (" Where the dependency sits is a different matter: its share beyond the copy band went (step 0 → "
                     "trained) " + ", ".join(moved) + ".")
    planted_part = "Reading the planted partner, against the n-gram: " + V.planted_sentence(verdict_table)
    return " ".join([head, real, planted_part, overlap_context_answer(verdict_table, planted)])


def overlap_context_answer(verdict_table, planted) -> str:
    """The chapter's question -- does overlapping tokenization stop a model from reading context? -- answered from
    the planted answer key: without a positive control it cannot be answered; with one, by whether each planted
    overlapping k-mer arm (scheme from ``pretraining.ZOO``) reads the planted partner better than the n-gram at
    some distance."""
    from . import planted_context
    from . import verdicts as V
    from .pretraining import ZOO

    if planted is None or not len(planted) or planted_context.positive_control(planted) is None:
        return ("So whether overlapping tokens stop a model from reading context cannot be answered here: no model "
                "showed that this benchmark can see context at this budget.")
    planted_rows = V.planted_rows(verdict_table)
    overlapping = [m for m in dict.fromkeys(planted_rows.subject) if ZOO.get(m, {}).get("scheme") == "overlapping"]
    if not overlapping:
        return "No overlapping k-mer arm was trained on the planted corpus, so the question is not tested here."
    reads = [m for m in overlapping if (planted_rows[planted_rows.subject == m].outcome == "better").any()]
    not_reads = [m for m in overlapping if m not in reads]
    text = "So, do overlapping tokens stop a model from reading context? "
    if reads:
        text += (f"No: with the positive control's budget, {names(reads)} read the planted partner beyond what the "
                 "n-gram's flanks give, so overlapping k-mers and their masking leave context learnable")
        return text + (f"; {names(not_reads)} did not show it." if not_reads else ".")
    return (text + f"At this budget they did: {names(not_reads)} did not read the planted partner better than the "
            "n-gram, while the positive control did.")
