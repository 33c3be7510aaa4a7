"""Convergence gates: flatness from a loss curve, the overlap-rule and n-gram gates on tiny trained models,
and the notes chapters print -- each able to fail for a real defect."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dnalm_utils import convergence as C
from dnalm_utils import models as M
from dnalm_utils import pretraining as P

TINY = dict(layers=1, hidden=32, heads=2, intermediate=64, window_nt=40, batch_size=16, warmup_steps=2,
            logging_steps=5, eval_steps=5, n_eval_windows=16, snapshots=2)


def test_flatness_measures_the_last_quarter():
    steps = np.arange(0, 101, 10)
    still_falling = 5.0 - 0.01 * steps  # falls 0.3 nats from step 70 to 100 (the point at or before 75)
    assert C.loss_flattening(steps, still_falling) == pytest.approx(0.3)
    flat = np.r_[5.0 - 0.05 * steps[:6], [2.5] * 5]
    assert C.loss_flattening(steps, flat) == pytest.approx(0.0)
    assert C.flat_gate("m", pd.DataFrame({"step": steps, "heldout_loss": still_falling}))["passed"] is False
    assert C.flat_gate("m", pd.DataFrame({"step": steps, "heldout_loss": flat}))["passed"] is True
    with pytest.raises(ValueError, match="eval_steps"):
        C.loss_flattening([0], [1.0])


@pytest.fixture(scope="module")
def tiny_zoo(tmp_path_factory):
    zoo = tmp_path_factory.mktemp("zoo")
    cfgs = {"ov3": P.PretrainConfig(name="ov3", scheme="overlapping", k=3, steps=40, learning_rate=3e-3, **TINY),
            "nt": P.PretrainConfig(name="nt", scheme="nucleotide", steps=10, learning_rate=1e-3, **TINY)}
    folders = {n: P.train(c, models_dir=zoo, progress=False, log=lambda *_: None) for n, c in cfgs.items()}
    return cfgs, folders, {n: M.load_model(f) for n, f in folders.items()}


def test_gates_are_computed_per_scheme_and_a_barely_trained_model_fails(tiny_zoo):
    cfgs, folders, loaded = tiny_zoo
    gates = C.gate_table(loaded, folders, cfgs, n_windows=60, ngram_max_order=2)
    assert set(zip(gates.model, gates.gate)) == {("ov3", "flat"), ("ov3", "overlap_rule"), ("nt", "flat"),
                                                 ("nt", "context_vs_ngram")}
    rule = gates[(gates.model == "ov3") & (gates.gate == "overlap_rule")].iloc[0]
    assert rule.passed == (rule.value >= C.OVERLAP_RULE_MIN) and 0 <= rule.value <= 1
    # 10 steps of a 1-layer model cannot match a counted n-gram on one masked nucleotide: the gate says so.
    ctx = gates[(gates.model == "nt") & (gates.gate == "context_vs_ngram")].iloc[0]
    assert not ctx.passed and ctx.value < 0
    status = C.gate_status(gates)
    assert status["nt"].startswith("failed") and "below the n-gram on one hidden nucleotide" in status["nt"]
    # a failed gate is named by what the model has not done, never by what the gate checks
    flat = gates.assign(passed=[g != "flat" for g in gates.gate])
    assert all(v == "failed: held-out loss still falling" for v in C.gate_status(flat).values())
    assert "held-out loss flat" not in C.gate_note(flat, ["ov3", "nt"])


def test_snapshot_scores_follow_training_on_one_shared_reference(tiny_zoo):
    cfgs, folders, loaded = tiny_zoo
    refs = C.heldout_references(cfgs, n_windows=60, ngram_max_order=2)
    assert refs["ov3"] is refs["nt"]  # same data split: one reference, the same blocks for both models
    scores = C.snapshot_scores(folders, refs)
    assert scores.groupby("model").step.apply(list).to_dict() == {"ov3": [0, 20, 40], "nt": [0, 5, 10]}
    assert (scores.nucleotides_seen == scores.step * TINY["batch_size"] * TINY["window_nt"]).all()
    final = scores[(scores.model == "nt") & (scores.step == 10)].iloc[0]
    assert final.accuracy == pytest.approx(refs["nt"].score(loaded["nt"])["accuracy"])  # last point = the model
    assert (scores.ngram_accuracy == refs["nt"].ngram_accuracy).all() and refs["nt"].ngram_accuracy > 0.25


def test_ngram_by_order_reproduces_the_gate_reference_at_its_order(tiny_zoo):
    cfgs, _, _ = tiny_zoo
    ref = C.heldout_references(cfgs, n_windows=60, ngram_max_order=2)["nt"]
    table = ref.ngram_by_order(range(0, 4))
    assert list(table.order) == [0, 1, 2, 3] and list(table.context_nt) == [0, 2, 4, 6]
    chosen = table[table.order == ref.order].iloc[0]
    assert chosen.accuracy == pytest.approx(ref.ngram_accuracy) and chosen.bits == pytest.approx(ref.ngram_bits)
    assert table.accuracy.between(0, 1).all() and table.bits.gt(0).all()


def test_orders_matched_and_its_sentence_read_the_first_order_above_the_model():
    table = pd.DataFrame({"order": [0, 1, 2, 3, 4], "accuracy": [0.26, 0.30, 0.28, 0.37, 0.39]})
    assert C.orders_matched(0.33, table) == 2  # beats 0, 1, 2 (0.28 < 0.33), not 3
    assert C.orders_matched(0.29, table) == 0  # order 1 (0.30) stops it although it beats order 2
    assert C.orders_matched(0.20, table) is None
    assert C.orders_matched(0.50, table) == 4
    text = C.context_gate_reading("nuc", 0.33, table, chosen_order=4)
    assert "up to order 2 (2 nt on each side)" in text and "not order 3 (37.0%)" in text and "39.0% at order 4" in text
    assert "below even the base frequencies" in C.context_gate_reading("nuc", 0.2, table, chosen_order=4)
    assert "every order tried" in C.context_gate_reading("nuc", 0.5, table, chosen_order=4)


def test_gate_note_names_failures_passes_and_unchecked_models():
    gates = pd.DataFrame([C.gate_row("a", "flat", 0.0, 0.02, True), C.gate_row("b", "flat", 0.5, 0.02, False)])
    note = C.gate_note(gates, ["a", "b", "published"])
    assert "b (held-out loss still falling)" in note and "Passed every gate: a." in note and "Not checked" in note
    assert "published" in note.split("Not checked")[1]
    assert C.gate_note(None, ["x"]).startswith("Not checked")
    assert C.gate_summary_text(gates).startswith("1 of 2 models pass")


def test_gated_models_reads_chapter_2s_gate_table(tmp_path):
    assert C.gated_models(tmp_path) is None
    (tmp_path / "02_pretraining").mkdir()
    pd.DataFrame([C.gate_row(m, g, 0.0, 0.02, True) for m in ("b", "a") for g in ("flat", "overlap_rule")]).to_csv(
        tmp_path / "02_pretraining" / C.GATES_FILE, index=False)
    assert C.gated_models(tmp_path) == ["b", "a"]
