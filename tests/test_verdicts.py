"""Verdicts: each branch on synthetic tables with a known answer, Holm across a chapter, and chapter 8 (conclusions) reading
the chapters' outcomes rather than re-testing them."""

import numpy as np
import pandas as pd
import pytest

from dnalm_utils import stats, verdicts as V
from dnalm_utils.errors import ParameterError


def _per_window(n=20000, seed=0):
    """Per-window 0/1 accuracy and bits: 'better' beats the n-gram by 3 points, 'same' has the n-gram's rate and
    shares 80 % of its outcomes (as real models share most of the n-gram's right answers), 'worse' is 3 points
    below."""
    rng = np.random.default_rng(seed)
    ng = (rng.random(n) < 0.45).astype(float)
    rows = [pd.DataFrame({"model": "n-gram", "h": 1, "window": np.arange(n), "accuracy": ng, "bits": 2 - ng})]
    for name, shift in (("better", 0.03), ("same", 0.0), ("worse", -0.03)):
        own = (rng.random(n) < 0.45 + shift).astype(float)
        acc = own if shift else np.where(rng.random(n) < 0.8, ng, own)  # a twin mostly right where the n-gram is
        rows.append(pd.DataFrame({"model": name, "h": 1, "window": np.arange(n), "accuracy": acc, "bits": 2 - acc}))
    return pd.concat(rows, ignore_index=True)


def test_outcome_of_every_branch():
    assert V.outcome_of(0.02, 0.001, np.nan, True, 0.01) == "better"
    assert V.outcome_of(0.02, 0.001, np.nan, False, 0.01) == "worse"  # higher bits are worse
    assert V.outcome_of(-0.02, 0.001, 0.5, True, 0.01) == "worse"
    assert V.outcome_of(0.001, 0.4, 0.001, True, 0.01) == "equivalent"
    assert V.outcome_of(0.001, 0.4, 0.2, True, 0.01) == "inconclusive"
    assert V.outcome_of(np.nan, np.nan, np.nan, True, 0.01) == "inconclusive"
    assert V.outcome_of(0.0, 0.0, np.nan, True, 0.01) == "inconclusive"  # no direction to report


def test_hidden_nucleotide_claims_find_the_planted_ordering():
    table = V.decide("03", V.hidden_nucleotide_claims(_per_window(), "n-gram", h=1, margin_accuracy=0.02,
                                                      margin_bits=0.02))
    acc = table[table.metric == "accuracy"].set_index("subject").outcome
    assert acc.to_dict() == {"better": "better", "same": "equivalent", "worse": "worse"}
    bits = table[table.metric == "bits"].set_index("subject").outcome
    assert bits.to_dict() == {"better": "better", "same": "equivalent", "worse": "worse"}  # lower bits are better
    assert (table.p_holm >= table.p).all() and (table.n == 20000).all()
    assert V.outcome_sentence(table, table.claim.iloc[0], better="above", worse="below") == \
        "above: better; below: worse; within the margin: same"


def test_holm_across_the_chapter_turns_a_lone_significant_claim_inconclusive():
    weak = stats.Comparison("t", 50, 0.05, 0.01, 0.09, 0.008, 0.01, None, np.nan)
    null = stats.Comparison("t", 50, 0.0, -0.04, 0.04, 0.9, 0.01, None, np.nan)
    alone = V.decide("x", [V.Claim("c", "a", "b", "accuracy", True, weak)])
    assert alone.outcome.iloc[0] == "better"
    crowd = V.decide("x", [V.Claim("c", "a", "b", "accuracy", True, weak)]
                     + [V.Claim("c", f"m{i}", "b", "accuracy", True, null) for i in range(3)])
    assert crowd.outcome.iloc[0] == "inconclusive" and crowd.p_holm.iloc[0] == pytest.approx(0.032)


def test_edge_cases_ties_one_model_no_reference_nan():
    pw = _per_window(200)
    tie = pw[pw.model == "n-gram"].assign(model="tie")
    table = V.decide("03", V.hidden_nucleotide_claims(pd.concat([pw[pw.model == "n-gram"], tie]), "n-gram", h=1,
                                                      margin_accuracy=0.02, margin_bits=0.02))
    assert table.outcome.tolist() == ["equivalent", "equivalent"] and (table.estimate == 0).all()
    none = V.decide("03", V.hidden_nucleotide_claims(pw, "absent reference", h=1, margin_accuracy=0.02, margin_bits=0.02))
    assert set(none.outcome) == {"inconclusive"} and (none.n == 0).all()
    assert V.decide("03", []).empty
    nan = pw.copy()
    nan.loc[nan.model == "better", "accuracy"] = np.nan
    t = V.decide("03", V.hidden_nucleotide_claims(nan, "n-gram", h=1, margin_accuracy=0.02, margin_bits=0.02))
    assert t[(t.subject == "better") & (t.metric == "accuracy")].outcome.iloc[0] == "inconclusive"
    with pytest.raises(ParameterError):
        V.decide("03", [], alpha=0.7)


def test_flank_copying_claims_are_paired_per_window():
    rng = np.random.default_rng(1)
    n = 1000
    copier = rng.random(n) < 0.9
    reader = rng.random(n) < 0.1
    rows = pd.DataFrame({"model": ["copier"] * n + ["reader"] * n, "m": 1,
                         "follows_flank": np.concatenate([copier, reader]),
                         "follows_genome": np.concatenate([~copier, ~reader])})
    table = V.decide("03", V.flank_copying_claims(rows))
    assert table.set_index("subject").outcome.to_dict() == {"copier": "better", "reader": "worse"}


def test_first_collapse():
    s = pd.DataFrame({"model": ["x"] * 4 + ["y"] * 4, "m": [1, 2, 3, 4] * 2,
                      "accuracy": [0.99, 0.98, 0.6, 0.3, 0.9, 0.9, 0.9, 0.9]})
    assert V.first_collapse(s, drop=0.1) == {"x": 3}


def test_conclusions_read_the_chapters_verdicts_and_cannot_contradict_them(tmp_path):
    ch3 = V.decide("03_masked_prediction", V.hidden_nucleotide_claims(_per_window(), "n-gram", h=1,
                                                                         margin_accuracy=0.02, margin_bits=0.02))
    ch3.loc[ch3.metric == "accuracy", "reference"] = "two-sided n-gram"
    (tmp_path / "03_masked_prediction").mkdir()
    V.write_verdicts(ch3, tmp_path / "03_masked_prediction")
    read = V.read_verdicts(tmp_path)
    pd.testing.assert_frame_equal(read, ch3.reset_index(drop=True), check_dtype=False)
    ans = V.book_answer(read, copy_candidates=[])
    chapter_better = ch3[(ch3.metric == "accuracy") & (ch3.outcome == "better")].subject.tolist()
    assert [b.split(" (")[0] for b in ans["context_better"]] == chapter_better == ["better"]
    assert ans["copying"] is None and "on real DNA better beat a context-only n-gram" in ans["answer"]
    assert V.book_answer(V.read_verdicts(tmp_path / "nothing"))["answer"].startswith("not decided")
    # chapter 7's planted answer key is reported apart from real DNA, metric "correct" included
    cmp = stats.Comparison("exact McNemar", 600, 0.6, 0.5, 0.7, 1e-9, V.CHAPTER_ALPHA, None, np.nan)
    ch7 = V.decide("07_copying_or_context", [V.Claim(V.CLAIM_PLANTED.format(distance=8), "nuc", "n-gram", "correct",
                                                     True, cmp)])
    both = V.book_answer(pd.concat([read, ch7], ignore_index=True), copy_candidates=[])
    assert both["context_better"] == ans["context_better"] and both["planted_better"] == ["nuc"]
    assert both["answer"].endswith("on the planted answer key nuc read the planted partner better than the n-gram, "
                                   "so the instruments see context where it is known to be")
    only_planted = V.book_answer(ch7.assign(outcome="inconclusive"))
    assert "not tested in this build" in only_planted["answer"] and "no model reads the planted partner" in only_planted["answer"]


def _run_items(n=5000, seed=3):
    """Per-item 0/1 correctness of fine-tuned runs over 3 seeds and of a baseline: 'good' pre-trained is 5 points
    above its random twin and the baseline; 'flat' equals both."""
    rng = np.random.default_rng(seed)
    base = (rng.random(n) < 0.3).astype(float)
    rows = [pd.DataFrame({"model": "n-gram", "init": "baseline", "seed": 0, "item": np.arange(n), "accuracy": base})]
    for name, gain in (("good", 0.05), ("flat", 0.0)):
        for init, g in (("pretrained", gain), ("random", 0.0)):
            for s in range(3):
                own = (rng.random(n) < 0.3 + g).astype(float)
                c = own if g else np.where(rng.random(n) < 0.9, base, own)
                rows.append(pd.DataFrame({"model": name, "init": init, "seed": s, "item": np.arange(n), "accuracy": c}))
    return pd.concat(rows, ignore_index=True)


def test_item_claims_pair_each_model_with_its_twin_and_the_baseline_on_the_same_items():
    items = _run_items()
    ref = V.decide("05", V.item_reference_claims(items, "n-gram", task="next 1-mer", metric="accuracy",
                                                 higher_is_better=True, margin=0.02))
    assert ref.set_index("subject").outcome.to_dict() == {"good": "better", "flat": "equivalent"}
    assert (ref.n == 5000).all() and ref.reference.eq("n-gram").all()
    pre = V.decide("05", V.pretraining_item_claims(items, task="next 1-mer", metric="accuracy", higher_is_better=True,
                                                   margin=0.02))
    assert pre.set_index("subject").outcome["good"] == "better"
    assert pre.set_index("subject").estimate["good"] == pytest.approx(0.05, abs=0.02)
    assert V.item_reference_claims(items, "absent", task="t", metric="accuracy", higher_is_better=True,
                                   margin=None) == []


def test_formatters():
    assert V.fmt_pct(0.4163) == "41.6 %" and V.fmt_pct(float("nan")) == "n/a" and V.fmt_pct(None) == "n/a"
    assert V.fmt_pct(1 / 60, 2) == "1.67 %"
    assert V.fmt_p(0.0004) == "p < 0.001" and V.fmt_p(0.0123) == "p = 0.0123" and V.fmt_p(np.nan) == "p n/a"


def test_biology_claims_cover_baselines_twin_and_seed_scores_per_task():
    items = _run_items(n=2000).assign(task="t")
    items["bits"] = 1 - items.accuracy
    items.loc[items.model == "n-gram", "model"] = "4-mer LR"
    majority = items[items.model == "4-mer LR"].assign(model=V.MAJORITY, accuracy=0.0)
    # labels, and p(class 1) per item: 'good' pre-trained separates the classes, its random twin and 'flat' barely
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 2000)
    shift = {("good", "pretrained"): 2.0, ("good", "random"): 0.3, ("flat", "pretrained"): 0.3, ("flat", "random"): 0.3}
    items["p1"] = 0.5
    for (name, init), s in shift.items():
        for seed in range(3):
            rows = (items.model == name) & (items.init == init) & (items.seed == seed)
            items.loc[rows, "p1"] = 1 / (1 + np.exp(-(rng.normal(size=2000) + s * (y - 0.5))))
    runs = pd.DataFrame({"task": "t", "model": ["good"] * 6 + ["flat"] * 6, "seed": [0, 1, 2] * 4,
                         "init": (["pretrained"] * 3 + ["random"] * 3) * 2, "threshold": 0.5})
    table = V.decide("06", V.biology_claims(pd.concat([items, majority]), runs, tasks=["t"], kmer_reference="4-mer LR",
                                            margin_accuracy=0.02, margin_bits=None, test_labels={"t": y}))
    claims = set(table.claim)
    assert {"accuracy against 4-mer LR (t)", "accuracy pre-trained against random-initialised (t)",
            "accuracy against majority class (t)", "mcc pre-trained against random-initialised (t)",
            "auroc pre-trained against random-initialised (t)"} <= claims
    good = table[table.subject == "good"].set_index("claim").outcome
    assert good["accuracy against majority class (t)"] == "better"
    assert good["mcc pre-trained against random-initialised (t)"] == "better"
    assert good["auroc pre-trained against random-initialised (t)"] == "better"
    flat = table[table.subject == "flat"].set_index("claim")
    assert flat.outcome["auroc pre-trained against random-initialised (t)"] == "inconclusive"
    assert flat.test["auroc pre-trained against random-initialised (t)"].startswith("paired bootstrap over 2,000 test items")
    assert not any("one-hot CNN" in c for c in claims)  # no CNN in the items: no claim against it
    # with the one-hot CNN's seeds in the items (the 4-mer LR's values, 3 seeds): each model is paired with it too
    cnn = pd.concat([items[items.model == "4-mer LR"].assign(model=V.ONEHOT_CNN, seed=s) for s in range(3)])
    with_cnn = V.decide("06", V.biology_claims(pd.concat([items, majority, cnn]), runs, tasks=["t"],
                                               kmer_reference="4-mer LR", margin_accuracy=0.02, margin_bits=None,
                                               test_labels={"t": y}))
    vs_cnn = with_cnn[with_cnn.claim == "accuracy against one-hot CNN (t)"].set_index("subject")
    vs_lr = with_cnn[with_cnn.claim == "accuracy against 4-mer LR (t)"].set_index("subject")
    assert set(vs_cnn.index) == {"good", "flat"} and (vs_cnn.n == 2000).all()
    # the CNN's seeds hold the LR's values, so the paired comparison is the same one
    assert np.allclose(vs_cnn.estimate, vs_lr.estimate.loc[vs_cnn.index]) and vs_cnn.estimate["good"] > 0.03


def test_onehot_cnn_name_is_the_modules():
    from dnalm_utils import onehot_cnn

    assert V.ONEHOT_CNN == onehot_cnn.MODEL_NAME


def test_twin_claims_pair_each_model_with_its_own_step0_twin():
    rng = np.random.default_rng(1)
    n = 400
    items = []
    for name, gain in (("learned", 0.05), ("flat", 0.0)):
        base = rng.gamma(2.0, 0.02, n)
        items.append(pd.DataFrame({"model": name + V.STEP0_SUFFIX, "item": np.arange(n), "beyond": base}))
        items.append(pd.DataFrame({"model": name, "item": np.arange(n), "beyond": base + gain + rng.normal(0, 0.002, n)}))
    items.append(pd.DataFrame({"model": "orphan", "item": np.arange(n), "beyond": 1.0}))  # no twin: left out
    items = pd.concat(items).assign(copy_band=lambda t: np.where(t.model.str.startswith("flat"), np.nan, 0.1))
    claims = V.twin_claims(items, ["learned", "flat", "orphan"], margin=0.005,
                           metric_columns={"beyond": V.CLAIM_BEYOND, "copy_band": V.CLAIM_INSIDE})
    assert [(c.subject, c.claim) for c in claims] == [("learned", V.CLAIM_BEYOND), ("learned", V.CLAIM_INSIDE),
                                                      ("flat", V.CLAIM_BEYOND)]  # flat has no copy band
    claims = claims[::2]
    table = V.decide("07_copying_or_context", claims)
    got = dict(zip(table.subject, table.outcome))
    assert got == {"learned": "better", "flat": "equivalent"}
    row = table[table.subject == "learned"].iloc[0]
    assert row.estimate == pytest.approx(0.05, abs=0.001) and row.reference == "step-0 twin"
    # targets of one window share that window: paired by window, the same data count 8 windows, not 400 targets
    by_window = items.assign(window=items["item"] % 8)
    coarse = V.twin_claims(by_window, ["learned"], margin=0.005, metric_columns={"beyond": V.CLAIM_BEYOND},
                           item_col="window", unit="windows")
    assert coarse[0].comparison.n == 8 and coarse[0].comparison.test.endswith("over 8 windows")
    assert coarse[0].comparison.estimate == pytest.approx(row.estimate)


def test_planted_claims_test_each_distance_on_the_same_nucleotides():
    rng = np.random.default_rng(2)
    n = 600
    rows = []
    for d in (8, 32):
        ngram = (rng.random(n) < 0.25).astype(float)
        reader = np.ones(n) if d == 8 else ngram.copy()  # reads the partner at D = 8 only
        for name, correct in (("n-gram", ngram), ("model", reader), ("chance", np.zeros(n))):
            rows.append(pd.DataFrame({"model": name, "distance": d, "item": np.arange(n), "correct": correct}))
    table = V.decide("07_copying_or_context", V.planted_claims(pd.concat(rows), reference="n-gram", margin=0.02))
    assert list(table.claim) == [V.CLAIM_PLANTED.format(distance=8), V.CLAIM_PLANTED.format(distance=32)]
    assert list(table.outcome) == ["better", "equivalent"]  # identical answers at D = 32: zero difference, TOST holds
    assert table.n.tolist() == [n, n]


def test_planted_sentence_reads_each_distance_in_order():
    rows = []
    for d, outcome in ((32, "inconclusive"), (8, "better")):
        rows.append({"claim": V.CLAIM_PLANTED.format(distance=d), "subject": "nuc", "outcome": outcome})
    rows.append({"claim": V.CLAIM_PLANTED.format(distance=8), "subject": "ov6", "outcome": "equivalent"})
    text = V.planted_sentence(pd.DataFrame(rows))
    assert text == ("D = 8 nt: better than the n-gram: nuc; within the margin: ov6. D = 32 nt: inconclusive: nuc.")
    assert V.planted_sentence(pd.DataFrame(columns=["claim", "subject", "outcome"])).startswith("No planted")


def test_oracle_claims_pair_each_span_with_the_copy_plus_ngram_oracle():
    rng = np.random.default_rng(4)
    n = 500
    rows = []
    for name, k, gain in (("reads", 6, 0.05), ("copies", 4, 0.0)):
        for m in (k, k + 3, k - 1):
            oracle = rng.integers(0, m + 1, n) / m
            model = np.clip(oracle + gain + rng.normal(0, 0.01, n), 0, 1) if gain else oracle
            rows.append(pd.DataFrame({"model": name, "m": m, "window": np.arange(n), "model_accuracy": model,
                                      "oracle_accuracy": oracle}))
    claims = V.oracle_claims(pd.concat(rows), past_k=[0, 3], k_of={"reads": 6, "copies": 4}, margin=0.01)
    table = V.decide("03_masked_prediction", claims)
    assert list(zip(table.subject, table.claim)) == [
        ("reads", V.CLAIM_ORACLE.format(m_text="m = k")), ("reads", V.CLAIM_ORACLE.format(m_text="m = k + 3")),
        ("copies", V.CLAIM_ORACLE.format(m_text="m = k")), ("copies", V.CLAIM_ORACLE.format(m_text="m = k + 3"))]
    assert list(table.outcome) == ["better", "better", "equivalent", "equivalent"]
    assert table.n.tolist() == [n] * 4 and table.test.str.startswith("paired t").all()


def test_oracle_sentence_names_each_span_length():
    rows = [{"claim": V.CLAIM_ORACLE.format(m_text="m = k"), "subject": "a", "outcome": "worse"},
            {"claim": V.CLAIM_ORACLE.format(m_text="m = k + 3"), "subject": "a", "outcome": "inconclusive"},
            {"claim": "something else", "subject": "a", "outcome": "better"}]
    assert V.oracle_sentence(pd.DataFrame(rows)) == "m = k: below it: a; m = k + 3: inconclusive: a"
    assert V.oracle_sentence(pd.DataFrame(rows[2:])) == "not tested in this build"


def test_arm_claims_pair_an_arm_with_the_arm_it_changes_on_the_same_items():
    rng = np.random.default_rng(5)
    n = 800
    base = (rng.random(n) < 0.6).astype(float)
    rows = [pd.DataFrame({"model": "ref", "distance": 8, "item": np.arange(n), "correct": base}),
            pd.DataFrame({"model": "closes", "distance": 8, "item": np.arange(n),
                          "correct": np.maximum(base, rng.random(n) < 0.5).astype(float)}),  # right wherever ref is, and more
            pd.DataFrame({"model": "lonely", "distance": 8, "item": np.arange(n), "correct": base})]
    claims = V.arm_claims(pd.concat(rows), {"closes": "ref", "lonely": "absent"}, value="correct", what="planted block",
                          higher_is_better=True, margin=0.02, unit="hidden nucleotides", by="distance")
    assert [(c.subject, c.reference, c.claim) for c in claims] == [
        ("closes", "ref", "planted block against ref, the arm it changes (distance = 8)")]
    table = V.decide("07", claims)
    assert table.outcome.tolist() == ["better"]
    assert claims[0].comparison.test.startswith("exact McNemar")
    text = V.arm_sentence(table)
    assert text.startswith("closes against ref on planted block (distance = 8): better (+")
    assert V.arm_sentence(table.iloc[:0]) == "no arm was run beside the arm it changes in this build"


def test_same_view_claims_pair_each_model_with_its_own_reference():
    pw = _per_window(4000)
    models = pw[pw.model != "n-gram"]
    ng = pw[pw.model == "n-gram"]
    # each model's own reference: "better" is paired with a copy of itself (so it is equivalent to it), the others
    # with the shared n-gram
    refs = pd.concat([models[models.model == "better"]] +
                     [ng.assign(model=name) for name in ("same", "worse")], ignore_index=True)
    table = V.decide("03", V.same_view_claims(models, refs, h=1, margin_accuracy=0.02, margin_bits=0.02))
    acc = table[table.metric == "accuracy"].set_index("subject").outcome.to_dict()
    assert acc == {"better": "equivalent", "same": "equivalent", "worse": "worse"}
    assert set(table.reference) == {"n-gram seeing what the model sees"}
    assert V.same_view_claims(models, refs, h=2, margin_accuracy=0.02, margin_bits=0.02) == []


def test_failed_controls_are_left_out_of_the_pretraining_claims():
    items = _run_items(n=500).assign(k=1)
    items["bits"] = 1 - items.accuracy
    runs = pd.DataFrame({"model": ["good"] * 6 + ["flat"] * 6, "seed": [0, 1, 2] * 4, "k": 1,
                         "init": (["pretrained"] * 3 + ["random"] * 3) * 2,
                         "predicted_classes": [4, 4, 4, 1, 1, 1, 4, 4, 4, 2, 3, 2]})
    failed = V.failed_controls(runs, by="k")
    assert failed == {("good", 1)}  # flat's control predicts several classes in every seed: it learned something
    one_flat_seed = runs.assign(predicted_classes=[4, 4, 4, 1, 1, 1, 4, 4, 4, 2, 1, 2])
    assert V.failed_controls(one_flat_seed, by="k") == {("good", 1), ("flat", 1)}  # one constant seed is enough
    assert V.failed_controls(runs) == {"good"} and V.failed_controls(runs.drop(columns="predicted_classes")) == set()
    claims = V.fine_tuning_claims(items, "n-gram", tasks={"next 1-mer": 1}, task_col="k", margin_accuracy=0.02,
                                  margin_bits=None, failed=failed)
    twin = [c for c in claims if c.reference == "random-initialised twin"]
    assert {c.subject for c in twin} == {"flat"} and len(twin) == 2  # accuracy and bits, flat only
    assert {c.subject for c in claims if c.reference == "n-gram"} == {"good", "flat"}  # baselines unaffected
    text = V.failed_control_sentence(failed, what="k = ")
    assert text.endswith("for: good (k = 1)") and "every" in V.failed_control_sentence(set())


def test_metrics_count_the_predicted_classes():
    from dnalm_utils.classification_metrics import binary_metrics, multiclass_metrics

    probs = np.array([[0.9, 0.1, 0.0], [0.8, 0.1, 0.1], [0.2, 0.7, 0.1]])
    assert multiclass_metrics(probs, np.array([0, 1, 1]))["predicted_classes"] == 2
    assert binary_metrics(np.array([0.2, 0.3, 0.4]), np.array([0, 1, 1]))["predicted_classes"] == 1


def test_extra_references_add_their_own_claims_only_where_items_hold_them():
    items = _run_items(n=500).assign(k=1)
    items["bits"] = 1 - items.accuracy
    window = items[items.model == "n-gram"].assign(model="window n-gram")
    window["accuracy"] = 0.0  # a reference every model beats
    window["bits"] = 1.0
    both = pd.concat([items, window], ignore_index=True)
    plain = V.fine_tuning_claims(items, "n-gram", tasks={"next 1-mer": 1}, task_col="k", margin_accuracy=0.02,
                                 margin_bits=0.02)
    extra = V.fine_tuning_claims(both, "n-gram", tasks={"next 1-mer": 1}, task_col="k", margin_accuracy=0.02,
                                 margin_bits=0.02, extra_references=["window n-gram", "absent"])
    added = [c for c in extra if c.reference == "window n-gram"]
    subjects = {c.subject for c in plain if c.reference == "n-gram"}
    assert len(added) == 2 * len(subjects) and {c.subject for c in added} == subjects
    assert [c for c in extra if c.reference != "window n-gram"] == plain
    table = V.decide("05", added)
    assert set(table[table.metric == "accuracy"].outcome) == {"better"}


def test_verdict_table_is_shown_whole_with_its_interval_level(monkeypatch):
    import IPython.display

    cmp = stats.Comparison("paired t over 50 windows", 50, 0.05, 0.01, 0.09, 0.008, V.CHAPTER_ALPHA, None, np.nan)
    long_claim = "hidden-nucleotide accuracy against the two-sided n-gram, a claim far longer than fifty characters"
    table = V.decide("03", [V.Claim(f"{long_claim} ({i})", f"m{i}", "n-gram", "accuracy", True, cmp) for i in range(70)])
    shown = V.display_table(table)
    assert list(shown.columns)[4] == "98.75 % interval (per claim, unadjusted)" and V.interval_level(0.05) == "95"
    assert shown.iloc[0, 4] == "+1.00 to +9.00" and shown.difference.iloc[0] == "+5.00 points"
    html = []
    monkeypatch.setattr(IPython.display, "display", lambda obj: html.append(obj._repr_html_()))
    V.show_table(table)
    assert all(f"m{i}<" in html[0] for i in range(70)) and f"{long_claim} (69)" in html[0]
    # tables of chapters decided at other levels, read together (chapter 8): a row at another level names it
    other = pd.concat([table.iloc[:1], V.decide("05", [V.Claim("c", "b", "r", "accuracy", True, cmp)], alpha=0.05)])
    assert V.display_table(other).iloc[1, 4] == "+1.00 to +9.00 (95 %)"
