"""The chapters' sentences from synthetic tables: every branch of the wording, roles instead of names, "n/a" only
where a number is missing."""

import dataclasses

import numpy as np
import pandas as pd

from dnalm_utils import findings as F
from dnalm_utils import verdicts as V


def _roles(rows):
    cols = ["model", "scheme", "k", "origin", "embedding_init", "label", "objective", "layers", "hidden",
            "nucleotides_seen"]
    return pd.DataFrame([dict(zip(cols, r)) for r in rows])


ROLES = _roles([
    ("a", "overlapping", 6, "zoo", "nucleotide_sum", "overlapping 6-mers", "masked", 2, 128, 8_192_000),
    ("b", "overlapping", 6, "zoo", "random", "overlapping 6-mers, DNABERT's random embedding init", "masked", 2, 128,
     8_192_000),
    ("c", "nucleotide", None, "zoo", "nucleotide_sum", "single nucleotides", "masked", 2, 128, 8_192_000),
])


def test_share_with_interval_is_the_wilson_interval():
    from dnalm_utils.stats import binomial_interval

    low, high = binomial_interval(468, 2000)
    assert F.share_with_interval(468, 2000) == f"23.4 % [{100 * low:.1f} %, {100 * high:.1f} %]"
    assert 21 < 100 * low < 23.4 < 100 * high < 26 and F.share_with_interval(0, 0) == "n/a"


def test_value_lists_ranges_and_names():
    assert F.value_list({"a": 0.5, "c": np.nan}, ROLES) == "**a** (overlapping 6-mers) 50.0 %"
    assert F.value_list({}, ROLES) == "n/a"
    assert F.value_range([0.2, 0.4, np.nan]) == "20.0 % to 40.0 %" and F.value_range([]) == "n/a"
    assert F.names(["x", "y", "z"]) == "**x**, **y** and **z**" and F.names([]) == "none"


def test_pretraining_sentences_compare_roles_not_names():
    curves = pd.DataFrame({"model": ["a"] * 4 + ["b"] * 4 + ["c"] * 4, "step": list(range(4)) * 3,
                           "share_of_uniform": [0.9, 0.5, 0.3, 0.3] + [0.9, 0.9, 0.8, 0.8] + [0.9, 0.8, 0.7, 0.7]})
    sweep = pd.DataFrame({"model": ["a"] * 9 + ["b"] * 9, "k": 6, "m": list(range(1, 10)) * 2,
                          "accuracy": [0.99, 0.99, 0.98, 0.98, 0.97, 0.4, 0.3, 0.2, 0.1] + [0.2] * 9})
    scores = pd.DataFrame({"model": ["a", "b", "c"], "h": 1, "accuracy": [0.4, 0.38, 0.41], "bits": 1.9,
                           "nucleotides": 1000})
    base = pd.DataFrame({"model": ["two-sided n-gram (order 5)", "corpus base frequencies"], "h": 1,
                         "accuracy": [0.45, 0.3], "bits": [1.8, 1.99]})
    out = F.pretraining(roles=ROLES, curves=curves, sweep=sweep, scores=scores, baselines=base, block_lengths=[1],
                        corpus_nt=2_700_000)
    # the recipe control (b, random init) is not held against the leak verdict; the letter-init model is lower
    assert out["leak_verdict"] == "lower than that of every other tokenization"
    assert "**b**" not in out["share_overlapping"] and out["control_share_text"].startswith("The recipe control (")
    assert "**b** (overlapping 6-mers, DNABERT's random embedding init) 85.0 %: not lower than that of every other " \
           "tokenization, so within this budget the leak alone" in out["control_share_text"]
    assert out["collapse_text"] == "**a** at m = 6 (k = 6)"
    assert "**b** (overlapping 6-mers, DNABERT's random embedding init) 20.0 %" in out["control_text"]
    assert out["best_model"] == f"**c** ({F.share_with_interval(410, 1000)}, 95 % Wilson interval)" and out["ngram_order"] == "5" and out["ngram_acc_first"] == "45.0 %"
    assert out["scale_text"] == "2 layers of 128 units, 8,192,000 nucleotides seen in pre-training, trained on 2,700,000 nt of human DNA"
    assert "n/a" not in " ".join(out.values())
    assert out["step60_list"] == "**a** step 1, **b** never, **c** never"
    # arms that take their windows in steps of different sizes cross at a number of nucleotides, not a step
    split = curves.assign(nucleotides_seen=curves.step * np.where(curves.model == "a", 1_024_000, 2_048_000))
    again = F.pretraining(roles=ROLES, curves=split, sweep=sweep, scores=scores, baselines=base, block_lengths=[1],
                          corpus_nt=2_700_000)
    assert again["step60_list"] == "**a** 1.02 M nucleotides (step 1), **b** never, **c** never"


def test_embedding_sentences_and_the_majority_cut_off():
    summary = pd.DataFrame({"model": ["a", "b", "c"], "static purity": [0.9, 0.5, 0.3], "static baseline": 0.25,
                            "last-layer purity": [0.8, 0.3, 0.26], "last baseline": 0.25, "GC R2 static": 0.5,
                            "GC R2 last": 0.4, "self-sim same": 0.9, "self-sim other": 0.2,
                            "token share first": 0.9, "token share last": [0.7, 0.6, 0.4],
                            "token share baseline": 0.01})
    metrics = pd.DataFrame({"model": "a", "layer": 2, "metric": ["nt_1_purity", "nt_2_purity"], "value": [0.9, 0.7],
                            "baseline": 0.25})
    out = F.embeddings(roles=ROLES, summary=summary, metrics=metrics)
    assert out["letters_kept"] == "**a**"  # 10 points above baseline: a only
    assert out["mostly_token"] == "**a** and **b**"
    assert out["token_verdict"].startswith("the token explains more than half of the last layer's variance in **a** and **b**")
    assert out["position_text"] == "**a** best letter 1 (90.0 %), worst letter 2 (70.0 %)"
    assert out["control_static"] == "**b** (overlapping 6-mers, DNABERT's random embedding init) 50.0 %"


def test_next_kmer_sentences_read_the_verdicts():
    summary = pd.DataFrame({"model": ["a", "a", F.NGRAM_LEFT], "init": ["pretrained", "random", "baseline"], "k": 1,
                            "accuracy_mean": [0.35, 0.30, 0.33], "bits_mean": [1.9, 1.95, 1.92]})
    baselines = pd.DataFrame({"model": [F.NGRAM_LEFT], "k": [1], "detail": ["order 7 chosen on validation"]})
    runs = pd.DataFrame({"init": ["pretrained", "random"], "stopped_early": [True, False], "best_step": [50, 100],
                         "steps": [75, 100]})
    cmp = __import__("dnalm_utils.stats", fromlist=["Comparison"]).Comparison("t", 100, 0.02, 0.01, 0.03, 1e-5, 0.01,
                                                                             None, np.nan)
    table = V.decide("05_next_kmer", [V.Claim(V.CLAIM_BASELINE.format(metric="accuracy", reference=F.NGRAM_LEFT,
                                                                        task="next 1-mer"), "a", F.NGRAM_LEFT,
                                              "accuracy", True, cmp)])
    out = F.next_kmer(summary=summary, baselines=baselines, runs=runs, verdict_table=table, ks=[1], n_test=100)
    assert out["vs_ngram_first"] == "above the n-gram: a"
    assert out["verdict_text"].endswith("**a**") and out["ngram_order_first"] == "7"
    assert out["still_improving"] == "50 %" and out["pretraining_first"] == "not tested"
    assert out["constant_runs"] == "The run table does not record how many classes each run predicts."
    assert out["best_first"] == "**a** (35.00 %)"
    assert out["cnn_first"] == "not run" and out["vs_cnn_first"] == "not tested (no CNN in this run)"
    # with a CNN in the summary and a verdict against it, both sentences read them
    with_cnn = pd.concat([summary, pd.DataFrame({"model": [V.ONEHOT_CNN], "init": ["baseline"], "k": [1],
                                                 "accuracy_mean": [0.3125], "bits_mean": [1.97]})])
    worse = dataclasses.replace(cmp, estimate=-0.02, low=-0.03, high=-0.01)
    cnn_table = V.decide("05_next_kmer", [V.Claim(V.CLAIM_BASELINE.format(metric="accuracy", reference=V.ONEHOT_CNN,
                                                                            task="next 1-mer"), "a", V.ONEHOT_CNN,
                                                  "accuracy", True, worse)])
    out_cnn = F.next_kmer(summary=with_cnn, baselines=baselines, runs=runs, verdict_table=cnn_table, ks=[1], n_test=100)
    assert out_cnn["cnn_first"] == "31.25 %" and out_cnn["vs_cnn_first"] == "below the CNN: a"
    # a best model at or below the majority class says so; runs that predict one class are named, either init
    summary2 = pd.concat([summary, pd.DataFrame({"model": ["majority class"], "init": ["baseline"], "k": [1],
                                                 "accuracy_mean": [0.35], "bits_mean": [np.nan]})])
    runs2 = pd.DataFrame({"model": ["a", "a", "a", "b"], "init": ["pretrained", "pretrained", "random", "random"],
                          "seed": [0, 1, 0, 0], "k": 1, "stopped_early": False, "best_step": 100, "steps": 100,
                          "predicted_classes": [1, 1, 7, 3]})
    out2 = F.next_kmer(summary=summary2, baselines=baselines, runs=runs2, verdict_table=table, ks=[1], n_test=100)
    assert out2["best_first"] == "**a** (35.00 %, no better than the majority class)"
    assert out2["constant_runs"] == ("2 of 4 fine-tuned runs (pretrained: 2 of 2; random: 0 of 2) predict a single "
                                     "class on the whole test set, so their scores are those of a constant: **a** "
                                     "(pretrained, k = 1; seeds 0, 1).")
    assert F.constant_runs_sentence(runs2.assign(predicted_classes=2), by="k") == \
        "Every fine-tuned run predicts more than one class."


def test_conclusions_read_outcomes_and_say_what_was_not_run():
    empty = V.read_verdicts("/nonexistent")
    out = F.conclusions(table=pd.DataFrame(), verdict_table=empty, roles=None)
    assert out["answer"].startswith("Not decided") and out["bio_text"] == "not tested in this build"
    assert out["next_k_first"] == "n/a" and out["scale_text"].startswith("of unknown size")
    assert out["context_probe_text"] == "chapter 7 was not run in this build"


def test_biology_sentences_per_task_and_the_comparison_with_chapter_5():
    from types import SimpleNamespace

    summary = pd.DataFrame({"task": "T", "model": ["a", "a", "4-mer LR"], "init": ["pretrained", "random", "baseline"],
                            "mcc_mean": [0.4, 0.0, 0.3], "auroc_mean": [0.8, 0.6, 0.7], "accuracy_mean": [0.7, 0.5, 0.65]})
    runs = pd.DataFrame({"task": "T", "model": "a", "init": ["random"] * 2, "mcc": [0.0, 0.0]})
    task = SimpleNamespace(name="T", splits={"test": (["ACGT"] * 50, np.zeros(50))})
    empty = V.read_verdicts("/nonexistent")
    out = F.biology(summary=summary, runs=runs, verdict_table=empty, built={"tf": task}, kmer_reference="4-mer LR")
    assert out["tf_kmer_mcc"] == "0.30" and out["tf_best"].startswith("**a** (MCC 0.40")
    assert out["tf_single_class_text"].startswith("1 of the 1 models") and out["tf_vs_kmer"] == "not tested"
    assert out["verdict_text"] == "the two chapters cannot be set side by side from this run alone"
    with_ci = summary.assign(mcc_low=[0.35, np.nan, 0.2], mcc_high=[0.45, np.nan, 0.4], auroc_low=0.5, auroc_high=0.9)
    out_ci = F.biology(summary=with_ci, runs=runs, verdict_table=empty, built={"tf": task}, kmer_reference="4-mer LR")
    assert out_ci["tf_best"].startswith("**a** (MCC 0.40 [0.35, 0.45], AUROC 0.80 [0.50, 0.90]")
    assert out_ci["tf_kmer_mcc"] == "0.30 [0.20, 0.40]" and out_ci["tf_best_rand"].startswith("**a** (MCC 0.00, AUROC")
    next_summary = pd.DataFrame({"model": ["a", F.NGRAM_LEFT], "init": ["pretrained", "baseline"], "k": 1,
                                 "accuracy_mean": [0.3, 0.35]})
    out = F.biology(summary=summary, runs=runs, verdict_table=empty, built={"tf": task}, kmer_reference="4-mer LR",
                    next_verdicts=empty, next_summary=next_summary)
    assert "30.0 % accuracy (**a**), against 35.0 %" in out["chapter5_text"]
    assert out["verdict_text"].endswith("models above the n-gram in chapter 5: none")


def test_masked_prediction_sentences_from_minimal_tables():
    summary = pd.DataFrame({"model": "a", "k": 6, "m": list(range(1, 8)),
                            "accuracy": [0.99, 0.98, 0.97, 0.97, 0.96, 0.3, 0.1],
                            "oracle_accuracy": [1, 1, 1, 1, 1, 0.35, 0.15], "flank_agreement": 0.9})
    same = pd.DataFrame({"model": ["a", "c"], "h": 1, "accuracy": [0.40, 0.42], "bits": 1.9})
    base = pd.DataFrame({"model": ["two-sided n-gram (order 6)", "corpus base frequencies"], "h": 1,
                         "reference": ["two-sided n-gram", "corpus base frequencies"], "accuracy": [0.45, 0.3]})
    pert = pd.DataFrame({"model": ["a"], "m": [1], "follows_flank": [0.9], "follows_genome": [0.05]})
    lens = pd.DataFrame({"model": "a", "m": 1, "layer": [0, 1, 2], "accuracy": [0.01, 0.5, 0.99]})
    att = pd.DataFrame({"model": ["a", "c"], "share_overlapping": [0.6, 0.0], "share_distant": [0.3, 0.9]})
    out = F.masked_prediction(roles=ROLES, summary=summary, same=same, baselines=base, perturbation=pert, lens=lens,
                              attention=att, verdict_table=V.read_verdicts("/nonexistent"), h_by_m={6: 1},
                              perturbation_m=[1], readout_m=[1], m_past_k=1, n_verdict_windows=20000)
    assert out["copy_models"] == "**a** (overlapping 6-mers)" and out["sweep_mk"] == "**a** 30.0 %"
    assert out["collapse_text"] == "**a** at m = 6 (k = 6)" and out["shortfall_text"] == "none"
    assert out["ngram_same_h1"] == "45.0 %" and out["ngram_order_h1"] == "6" and out["best_same_h1"] == "**c** (42.0 %)"
    assert out["lens_text"] == "**a** 1.0 % at the embedding output, 50.0 % after layer 1 and 99.0 % after the last"
    assert out["att_distant_others"] == "**c** (single nucleotides) 90.0 %"
    assert out["att_overlap_uniform"] == "uniform reference n/a"  # an attention table without the reference
    with_uniform = att.assign(uniform_overlapping=[0.2, 0.0], uniform_distant=[0.7, 0.95])
    out_u = F.masked_prediction(roles=ROLES, summary=summary, same=same, baselines=base, perturbation=pert, lens=lens,
                                attention=with_uniform, verdict_table=V.read_verdicts("/nonexistent"), h_by_m={6: 1},
                                perturbation_m=[1], readout_m=[1], m_past_k=1, n_verdict_windows=20000)
    assert out_u["att_overlap_uniform"] == "20.0 % under uniform attention"
    assert out_u["att_distant_uniform"] == "70.0 % under uniform attention"
    assert out_u["att_distant_others_uniform"] == "95.0 % under uniform attention"
    assert out["perturb_verdict"] == "no overlapping k-mer model with a masked-token head was run"
    assert out["conclusion"].startswith("no overlapping model was tested for copying")


def test_copying_sentence_reports_the_recipe_control_apart():
    from dnalm_utils.stats import Comparison

    yes = Comparison("t", 1000, 0.95, 0.9, 1.0, 1e-9, 0.0167, None, np.nan)
    no = Comparison("t", 1000, 0.0, -0.05, 0.05, 1.0, 0.0167, None, np.nan)
    table = V.decide("03", [V.Claim(V.CLAIM_COPIES, "a", "genome's letter", "share", True, yes),
                            V.Claim(V.CLAIM_COPIES, "b", "genome's letter", "share", True, no)])
    text = F.copying_sentence(table, ROLES)
    assert text.startswith("with one masked token, the overlapping models predict the letters their unmasked "
                           "neighbours reveal: every one of them (**a**) follows a revealed letter")
    assert "does not tell them apart" in text
    assert text.endswith("the recipe control, trained with a different embedding initialisation in the same budget: "
                         "inconclusive: b")
    answer = F.conclusions(table=pd.DataFrame(), verdict_table=table, roles=ROLES)["answer"]
    assert answer == ("The overlapping models read the letters their neighbours reveal; whether any model knows "
                      "more than flank counts on real DNA was not tested in this build")


def test_copying_or_context_reads_the_positive_control_then_the_verdicts():
    planted = pd.DataFrame({"model": ["nuc", "ov6", "n-gram", "chance"], "distance": 8, "nucleotides": 600,
                            "windows": 100, "accuracy": [0.88, 0.62, 0.245, 0.25], "ci_low": [0.85, 0.58, 0.21, 0.22],
                            "ci_high": [0.90, 0.66, 0.28, 0.28], "bits": [0.6, 1.2, 2.0, 2.0]})
    verdicts = pd.DataFrame([
        {"claim": V.CLAIM_BEYOND, "subject": "nuc", "outcome": "better"},
        {"claim": V.CLAIM_BEYOND, "subject": "ov6", "outcome": "inconclusive"},
        {"claim": V.CLAIM_PLANTED.format(distance=8), "subject": "nuc", "outcome": "better"},
        {"claim": V.CLAIM_PLANTED.format(distance=8), "subject": "ov6", "outcome": "better"}])
    text = F.copying_or_context(verdicts, planted)
    assert text.startswith("Positive control: nuc at D = 8") and "88.0%" in text and "24.5%" in text
    assert "for **nuc**; not for **ov6**." in text
    assert "D = 8 nt: better than the n-gram: nuc, ov6." in text
    assert text.endswith("No overlapping k-mer arm was trained on the planted corpus, so the question is not tested here.")
    failed = F.copying_or_context(verdicts, planted.assign(accuracy=[0.5, 0.4, 0.245, 0.25]))
    assert failed.startswith("No model reaches 80%") and "cannot separate" in failed
    assert failed.endswith("no model showed that this benchmark can see context at this budget.")
    none = F.copying_or_context(verdicts[verdicts.claim != V.CLAIM_BEYOND], planted)
    assert "what training added was not tested" in none
    # zoo arm names: the overlapping arm's planted verdict answers the chapter's question either way
    zoo = verdicts.replace({"ov6": "overlap6", "nuc": "nucleotide"})
    zoo_planted = planted.replace({"ov6": "overlap6", "nuc": "nucleotide"})
    assert F.overlap_context_answer(zoo, zoo_planted).startswith(
        "So, do overlapping tokens stop a model from reading context? No: with the positive control's budget, **overlap6**")
    lost = zoo.assign(outcome=["better", "inconclusive", "better", "worse"])
    assert F.overlap_context_answer(lost, zoo_planted).endswith(
        "At this budget they did: **overlap6** did not read the planted partner better than the n-gram, while the "
        "positive control did.")
    # the share of dependency beyond the band, step 0 -> trained
    mass = pd.DataFrame({"band": ["copy band", "beyond"] * 3, "share": [0.2, 0.8, 0.65, 0.35, 0.5, 0.5],
                         "model": ["ov6 (step 0)", "ov6 (step 0)", "ov6", "ov6", "nuc", "nuc"]})
    assert "beyond the copy band went (step 0 → trained) **ov6** 80 % → 35 %." in F.copying_or_context(verdicts, planted, mass)


def test_readouts_sentence_names_the_best_model_per_readout():
    import pandas as pd

    from dnalm_utils import findings as F

    rows = []
    for k, acc in ((1, 0.4), (3, 0.03)):
        for readout, bonus in (("fine-tuned", 0.02), ("frozen probe", 0.01), ("zero-shot", 0.0)):
            for model, extra in (("a", 0.0), ("b", 0.005)):
                rows.append({"model": model, "k": k, "readout": readout, "accuracy": acc + bonus + extra,
                             "low": 0, "high": 1, "ngram": acc, "chance": 4.0 ** -k})
    text = F.readouts_sentence(pd.DataFrame(rows))
    assert text.startswith("next 1-mer: best fine-tuned **b** 42.5 %, frozen probe **b** 41.5 %, zero-shot **b** 40.5 %")
    assert "(n-gram 40.0 %, chance 25.0 %)" in text and "next 3-mer" in text and "chance 1.562 %" in text
    assert "not run" in F.readouts_sentence(None)


def test_pretraining_measures_sentence_names_the_models_whose_measures_disagree():
    from dnalm_utils.stats import Comparison

    up = Comparison("t", 100, 0.1, 0.05, 0.15, 1e-6, V.CHAPTER_ALPHA, None, np.nan)
    flat = Comparison("t", 100, 0.0, -0.05, 0.05, 0.9, V.CHAPTER_ALPHA, None, np.nan)
    claims = [V.Claim(V.CLAIM_PRETRAINING.format(metric=metric, task=task), model, "random", metric, True,
                      up if (task == "t1" or metric != "auroc" or model == "a") else flat)
              for task in ("t1", "t2") for metric in ("accuracy", "mcc", "auroc") for model in ("a", "b")]
    text = F.pretraining_measures_sentence(V.decide("06", claims), ["t1", "t2", "t3"])
    assert text == ("on t1 the accuracy, mcc, auroc verdicts agree for every model; on t2 they differ for **b** "
                    "(accuracy better, mcc better, auroc inconclusive)")
    assert F.pretraining_measures_sentence(V.decide("06", claims[:1]), ["t1"]) == \
        "not tested on more than one measure in this build"


def test_convergence_sentence_counts_early_stops_and_last_steps():
    runs = pd.DataFrame({"stopped_early": [True, True, False, False, True], "best_step": [20, 40, 100, 60, 20],
                         "steps": [60, 80, 100, 100, 60]})
    text = F.convergence_sentence(runs)
    assert text.startswith("3 of 5 runs (60 %, fewer than the 80 % aimed at) stopped early")
    assert "1 (20 %) kept their last step" in text and "median kept step is 40 of at most 100" in text
    assert "at least the 50 %" in F.convergence_sentence(runs, target=0.5)
    assert F.convergence_sentence(runs.iloc[:0]) == "No fine-tuning run in this build."
    per_init = runs.assign(init=["pretrained"] * 2 + ["random"] * 3, max_steps=[80, 80, 200, 200, 200])
    assert F.convergence_sentence(per_init).endswith(
        "the median kept step is 30 of at most 80 from pretrained weights, and 60 of at most 200 from random weights.")
