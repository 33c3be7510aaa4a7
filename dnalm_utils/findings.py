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


def value_range(values) -> str:
    """"97.1 % to 99.8 %" over finite values ("n/a" when none)."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    if not v.size:
        return "n/a"
    return fmt_pct(v.min()) if v.min() == v.max() else f"{fmt_pct(v.min())} to {fmt_pct(v.max())}"


def glue_all(texts: Mapping[str, str]) -> None:
    """Glue every text (strings holding markdown emphasis as ``Markdown`` for ``{glue:md}``)."""
    from IPython.display import Markdown
    from myst_nb import glue

    for key, text in texts.items():
        glue(key, Markdown(str(text)), display=False)


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
    copy = V.names_by_outcome(verdict_table, V.CLAIM_COPIES)
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
    copiers, tested = copy["better"], sum(len(v) for v in copy.values())
    hidden_better = V.names_by_outcome(verdict_table, V.CLAIM_HIDDEN.format(metric="accuracy", h=h_values[0])
                                       )["better"] if h_values else []
    if tested and len(copiers) == tested:
        first_part = ("with one masked token, the overlapping models' high accuracy is the overlap rule: every one of "
                      "them copies the flanks, even when the flank is wrong")
    elif tested:
        first_part = ("some overlapping models do not follow the overlap rule: "
                      + V.outcome_sentence(verdict_table, V.CLAIM_COPIES, better="copy", worse="do not copy"))
    else:
        first_part = "no overlapping model was tested for copying"
    second = ("; on the nucleotides the flanks hide, " + (
        f"{names(hidden_better)} beat the two-sided n-gram" if hidden_better else
        "no model is shown to beat the two-sided n-gram") if h_values else "")
    out["conclusion"] = first_part + second
    return out


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


def conclusions(*, table, verdict_table, roles, bio_summary=None) -> dict[str, str]:
    """Chapter 7's sentences, read from the chapters' tables (``table``: conclusions.headline_table), their
    verdicts (``verdict_table``: verdicts.read_verdicts) and the models' roles; nothing is re-tested here."""
    from .roles import copy_candidates

    out: dict[str, str] = {}
    cands = copy_candidates(roles) if roles is not None and len(roles) else []
    ans = V.book_answer(verdict_table, cands)
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


def task_outcome_text(verdict_table) -> str:
    """Per biology task, what chapter 6's tests decided: pre-training against the random-initialised twin and
    each model against the k-mer baseline ("not tested" when chapter 6 wrote no verdicts)."""
    parts = []
    for prefix, better, worse in (("mcc pre-trained against random-initialised", "pre-training helps",
                                   "pre-training hurts"),
                                  ("mcc against", "above the k-mer baseline", "below the k-mer baseline")):
        for task, groups in V.task_outcomes(verdict_table, prefix).items():
            said = "; ".join(f"{label}: {', '.join(groups[o])}" for o, label in
                             (("better", better), ("worse", worse), ("equivalent", "equivalent within the margin"),
                              ("inconclusive", "inconclusive")) if groups[o])
            parts.append(f"*{task}*: {said}")
    return "; ".join(parts) if parts else "not tested in this build"
