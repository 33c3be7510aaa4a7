"""Recipe tuning on held-out pre-training records: variants differ from the arm in exactly their settings,
the table reads the gates of each trained variant, the choice follows the stated rule, and the cache is reused."""

from __future__ import annotations

import pandas as pd
import pytest

from dnalm_utils import pretraining as P
from dnalm_utils import recipe_tuning as R
from dnalm_utils.errors import ParameterError

TINY = dict(layers=1, hidden=32, heads=2, intermediate=64, window_nt=40, batch_size=16, warmup_steps=2,
            logging_steps=5, eval_steps=5, n_eval_windows=16, snapshots=0, steps=15)


def test_variants_differ_from_the_arm_in_exactly_their_settings():
    cfgs = R.variant_configs("overlap6", [{"learning_rate": 1e-3}, {"position_init": "sinusoidal", "heads": 4}],
                             base_overrides=TINY)
    assert list(cfgs) == [R.BASE_VARIANT, "learning_rate=0.001", "heads=4, position_init=sinusoidal"]
    base = cfgs[R.BASE_VARIANT]
    assert base == P.zoo_config("overlap6", **TINY)
    for label, cfg in list(cfgs.items())[1:]:
        diff = P.config_differences(cfg, base)
        assert ", ".join(f"{k}={v[0]}" for k, v in sorted(diff.items())) == label
    assert len({c.name for c in cfgs.values()}) == 3


@pytest.mark.parametrize("variants, match", [([{"masking": "token"}], "masking"), ([{"k": 5}], "k"),
                                             ([{"learning_rate": 1e-3}, {"learning_rate": 1e-3}], "twice"),
                                             ([{"no_such_setting": 1}], "no_such_setting")])
def test_bad_variants_are_refused(variants, match):
    with pytest.raises(ParameterError, match=match):
        R.variant_configs("overlap6", variants)


def test_best_variant_takes_the_lowest_held_out_loss_then_the_earlier_row():
    table = pd.DataFrame({"variant": ["base recipe", "a", "b", "c"], "gates_passed": [1, 2, 2, 2],
                          "heldout_loss": [1.3, 1.2, 1.1, 1.1]})
    assert R.best_variant(table)["variant"] == "b"
    assert R.best_variant(table.assign(heldout_loss=1.0))["variant"] == "base recipe"
    with pytest.raises(ParameterError, match="empty"):
        R.best_variant(table.iloc[:0])


def test_seed_replicates_are_pooled_and_a_gain_within_the_base_range_is_not_a_difference():
    assert R.recipe_label("batch_size=32, seed=1, steps=4000") == "batch_size=32, steps=4000"
    assert R.recipe_label("seed=2") == R.BASE_VARIANT and R.recipe_label(R.BASE_VARIANT) == R.BASE_VARIANT
    # base 1.30 / 1.32 (range 0.02); a=1 1.10 / 1.20 (mean 1.15): a gain of 0.16 beyond the base range
    table = pd.DataFrame({"arm": "x", "variant": [R.BASE_VARIANT, "a=1", "a=1, seed=1", "seed=1"],
                          "heldout_loss": [1.30, 1.10, 1.20, 1.32]})
    pooled = R.recipe_losses(table)
    assert pooled.recipe.tolist() == [R.BASE_VARIANT, "a=1"] and pooled.seeds.tolist() == [2, 2]
    assert pooled["mean"].tolist() == pytest.approx([1.31, 1.15]) and pooled["first"].tolist() == [0, 1]
    assert R.best_variant(table)["variant"] == "a=1"
    text = R.seed_spread_sentence(table)
    assert "a=1 1.100-1.200 over 2 seeds" in text and "base recipe 1.300-1.320 over 2 seeds" in text
    assert ("lowers the mean by 0.160 nats, more than the base recipe's seed range (0.020); its own seeds span 0.100 "
            "nats, less than the gain, and every seed of it lies below every seed of the base recipe.") in text
    # the lowest mean, but only 0.01 below a base whose seeds span 0.2: the base recipe is kept
    noisy = table.assign(heldout_loss=[1.20, 1.25, 1.25, 1.40])
    assert R.best_variant(noisy)["variant"] == R.BASE_VARIANT
    assert "The lowest mean, a=1, is 0.050 nats below the base recipe's, within the base recipe's seed range (0.200)" \
        in R.seed_spread_sentence(noisy)
    # one seed of the base: the lowest single value wins, a seed row alone never is the choice
    single = pd.DataFrame({"arm": "x", "variant": [R.BASE_VARIANT, "a=1", "a=1, seed=1"], "heldout_loss": [1.3, 1.5, 0.9]})
    assert R.best_variant(single)["variant"] == "a=1"  # mean 1.2 < 1.3
    assert R.best_variant(table.assign(heldout_loss=[1.0, 1.1, 0.9, 1.0]))["variant"] == R.BASE_VARIANT  # tie: base
    assert R.seed_spread_sentence(table.iloc[:2]) == ""


def test_tuning_trains_each_variant_reads_its_gates_and_reuses_the_cache(tmp_path):
    variants = [{"learning_rate": 1e-6}, {"learning_rate": 3e-3}]
    table = R.tune_recipe("nucleotide", variants, base_overrides=TINY, models_dir=tmp_path, n_windows=60,
                          ngram_max_order=2, device="cpu", log=lambda *_: None)
    assert list(table.variant) == [R.BASE_VARIANT, "learning_rate=1e-06", "learning_rate=0.003"]
    assert set(table.columns) >= {"gate:flat", "gate:context_vs_ngram", "heldout_loss", "accuracy", "ngram_accuracy"}
    for _, row in table.iterrows():
        curve = pd.read_csv(f"{row.folder}/loss_curve.csv").dropna(subset=["heldout_loss"])
        assert row.heldout_loss == pytest.approx(float(curve.sort_values("step").heldout_loss.iloc[-1]))
        assert row.gates == 2 and row.wall_s > 0 and not row.cached
        assert row["gate:context_vs_ngram"] == pytest.approx(row.accuracy - row.ngram_accuracy)
        cfg = P.zoo_config("nucleotide", **TINY)
        assert row.nucleotides == cfg.steps * cfg.batch_size * cfg.window_nt  # the variants change no budget
    # a learning rate of 1e-6 barely moves the weights in 15 steps: its held-out loss stays the highest
    assert table.heldout_loss.idxmax() == 1
    assert R.best_variant(table)["variant"] != "learning_rate=1e-06"
    assert table["gate:flat"].iloc[1] <= table["gate:flat"].iloc[2]  # learning nothing looks flat
    again = R.tune_recipe("nucleotide", variants, base_overrides=TINY, models_dir=tmp_path, n_windows=60,
                          ngram_max_order=2, device="cpu", log=lambda *_: None)
    assert again.cached.all()
    pd.testing.assert_frame_equal(again.drop(columns="cached"), table.drop(columns="cached"))


def _table(arm, losses, recipes):
    variants = [R.BASE_VARIANT] + [f"v{i}" for i in range(1, len(losses))]
    return pd.DataFrame({"arm": arm, "variant": variants, "recipe": recipes, "heldout_loss": losses})


def test_the_record_marks_the_chosen_recipe_and_the_zoo_that_uses_it(tmp_path):
    cfg = P.zoo_config("nucleotide", **TINY)
    tuned = cfg.replace(position_init="sinusoidal")
    _table("nucleotide", [1.3, 1.2, 1.25], ["old", R.recipe_digest(tuned), "x"]).to_csv(tmp_path / "nuc.csv", index=False)
    _table("overlap6", [2.2, 2.3], [R.recipe_digest(P.zoo_config("overlap6", **TINY)), "y"]).to_csv(
        tmp_path / "ov6.csv", index=False)
    configs = {"nucleotide": tuned, "nucleotide_seed1": tuned.replace(seed=1)}
    manifests = pd.DataFrame({"model": ["nucleotide"], "final held-out loss": [1.2]})
    record = R.tuning_record(tmp_path, configs, manifests)
    assert record.loc[record.chosen, "variant"].tolist() == ["v1", R.BASE_VARIANT]
    assert record.in_zoo.tolist() == ["", "nucleotide", "", "", ""]  # the seed-1 replicate has another recipe
    text = R.tuning_sentence(record)
    assert "The chosen recipe (lowest held-out loss, mean over seeds) is v1, the recipe this run's zoo uses (nucleotide)" in text
    assert "reproduces the record's held-out loss (1.2000 nats)" in text
    assert "(held-out loss in nats: base recipe 1.300; v1 1.200; v2 1.250)" in text
    assert "is the base recipe, the recipe this run's zoo uses" not in text
    assert "this run trained none of the recipes" in text
    manifests["final held-out loss"] = 1.25
    assert "differs from the record's" in R.tuning_sentence(R.tuning_record(tmp_path, configs, manifests))
    assert R.tuning_record(tmp_path / "absent", configs).empty and "No recipe-tuning record" in R.tuning_sentence(None)
    pd.DataFrame({"a": [1]}).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(ParameterError, match="bad.csv"):
        R.tuning_record(tmp_path, configs)


def _budget(arm, steps, losses, passed, flat, rule, seeds=None):
    variants = [R.BASE_VARIANT] + [f"steps={n}" for n in steps[1:]]
    if seeds:
        variants = [f"{v}, seed={s}" if s else v for v, s in zip(variants, seeds)]
    return pd.DataFrame({"arm": arm, "variant": variants, "heldout_loss": losses, "nucleotides": [n * 64 for n in steps],
                         "wall_s": [10.0 * n / steps[0] for n in steps], "gates_passed": passed, "gates": 2,
                         "gate:flat": flat, "gate:overlap_rule": rule})


def test_the_budget_record_reads_multiples_and_the_first_budget_that_passes(tmp_path):
    _budget("overlap6", [100, 200, 400], [2.0, 1.7, 1.5], [0, 1, 2], [0.2, 0.05, 0.01], [0.966, 0.992, 0.999]).to_csv(
        tmp_path / "ov6.csv", index=False)
    _budget("overlap5", [100, 200, 200], [1.6, 1.40, 1.44], [0, 1, 1], [0.1, 0.05, 0.07], [0.98, 0.995, 0.993],
            seeds=[0, 0, 1]).to_csv(tmp_path / "ov5.csv", index=False)
    record = R.budget_record(tmp_path)
    assert record.groupby("arm", sort=False).multiple.apply(list).to_dict() == {"overlap5": [1.0, 2.0, 2.0],
                                                                                "overlap6": [1.0, 2.0, 4.0]}
    text = R.budget_sentence(record)
    six = text[text.index("- **overlap6**"):]
    assert six.startswith("- **overlap6**. The smallest budget tried that passes every gate is 4x.\n"
                          "  - At the zoo's budget (0.0 M nt, 10 s of training): held-out loss 2.000 nats, 0 of 2 gates")
    assert "  - At 4x (0.0 M nt, 40 s of training): held-out loss 1.500 nats, 2 of 2 gates passed" in six
    assert "overlap rule 96.6 % at its worst m (gate: 99 %)" in six and "fell 0.200 nats" in six
    assert "one hidden nucleotide" not in text  # the tables hold no accuracy
    record["accuracy"], record["ngram_accuracy"] = 0.45, 0.40
    assert R.budget_sentence(record).count("one hidden nucleotide 45.0 % against 40.0 % for the two-sided n-gram") == 5  # one per arm and budget
    five = text[:text.index("- **overlap6**")]
    assert "At 2x (0.0 M nt, 20 s of training): held-out loss 1.420 nats (range 1.400-1.440 over 2 seeds), 1 of 2" in five
    assert "No budget tried, up to 2x, passes every gate." in five
    assert R.budget_record(tmp_path / "absent").empty and "No budget record" in R.budget_sentence(None)
    cfg = P.zoo_config("overlap6", **TINY)
    assert "does not describe" not in text
    record["recipe"] = [R.recipe_digest(cfg)] + ["other"] * (len(record) - 1)  # overlap5 first: its base is "cfg"
    text = R.budget_sentence(record, {"overlap5": cfg})
    assert text.count("does not describe it") == 1 and text.index("does not describe") > text.index("- **overlap6**")


@pytest.mark.parametrize("change, match", [
    (lambda t: t.assign(variant=[R.BASE_VARIANT, "steps=200, learning_rate=0.001"]), "changes .'learning_rate'."),
    (lambda t: t.iloc[1:], "no 'base recipe' row"),
    (lambda t: t.drop(columns="nucleotides"), "missing columns .'nucleotides'."),
])
def test_a_table_that_is_not_a_budget_table_is_refused(tmp_path, change, match):
    change(_budget("nucleotide", [100, 200], [1.3, 1.2], [1, 1], [0.0, 0.0], [1.0, 1.0])).to_csv(tmp_path / "n.csv", index=False)
    with pytest.raises(ParameterError, match=match):
        R.budget_record(tmp_path)
