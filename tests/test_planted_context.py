"""The planted-context benchmark: the corpus obeys its rule, is seeded, and is fair (an n-gram whose context does not
reach the source is at chance on the determined blocks but not on the background); the evaluator scores an oracle
that applies the rule at 100 % and a uniform model at 25 %."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dnalm_utils import codec
from dnalm_utils import planted_context as pc
from dnalm_utils.adapters import ModuleAdapter
from dnalm_utils.errors import ParameterError
from dnalm_utils.genome import read_fasta
from dnalm_utils.ngram import KmerCounts, block_truth, score_probs, two_sided_block_probs
from dnalm_utils.stats import binomial_interval
from dnalm_utils.tokenization import make_tokenizer

SMALL = dict(record_nt=40_000, n_records=2)


@pytest.fixture(scope="module")
def transition():
    return pc.background_model(4)


def _blocks_hold_rule(spec, seqs, src, tgt):
    s = np.stack([codec.encode(q[a:a + spec.block_nt]) for q, a in zip(seqs, src)])
    t = np.stack([codec.encode(q[a:a + spec.block_nt]) for q, a in zip(seqs, tgt)])
    return np.array_equal(pc.apply_rule(spec, s), t)


@pytest.mark.parametrize("rule", pc.RULES)
def test_every_planted_pair_satisfies_its_rule(rule, transition):
    spec = pc.PlantedSpec(rule=rule, distance=12, block_nt=5, spacing=40, **SMALL)
    records, pairs = pc.planted_records(spec, transition=transition)
    seqs = {r.name: r.sequence for r in records}
    assert len(pairs) > 1500
    assert (pairs["target_start"] - pairs["source_start"] == 12).all()
    assert _blocks_hold_rule(spec, [seqs[n] for n in pairs["record"]], pairs["source_start"], pairs["target_start"])
    if rule == "revcomp":  # the inverted repeat, spelled out with the codec's reverse complement
        n, a, b = pairs.iloc[7][["record", "source_start", "target_start"]]
        src = codec.encode(seqs[n][a:a + 5])
        assert codec.decode(codec.reverse_complement_codes(src)) == seqs[n][b:b + 5]


def test_rule_inverse_and_map_is_a_bijection():
    spec = pc.PlantedSpec(rule="map", block_nt=3, distance=3, spacing=6)
    every = codec.unpack_codes(np.arange(64, dtype=np.uint64), 3)
    mapped = pc.apply_rule(spec, every)
    assert len({tuple(r) for r in mapped}) == 64 and not np.array_equal(mapped, every)
    assert np.array_equal(pc.apply_rule(spec, mapped, inverse=True), every)
    other = pc.apply_rule(spec.replace(rule_seed=1), every)
    assert not np.array_equal(other, mapped)
    rc = pc.PlantedSpec(rule="revcomp", block_nt=3, distance=3, spacing=6)
    assert codec.decode(pc.apply_rule(rc, codec.encode("AAC")[None])[0]) == "GTT"


def test_same_seed_same_corpus_other_seed_other_corpus(transition):
    spec = pc.PlantedSpec(**SMALL)
    a, pa = pc.planted_records(spec, transition=transition)
    b, pb = pc.planted_records(spec, transition=transition)
    c, pc_ = pc.planted_records(spec.replace(seed=1), transition=transition)
    assert [r.sequence for r in a] == [r.sequence for r in b] and pa.equals(pb)
    assert all(x.sequence != y.sequence for x, y in zip(a, c))
    assert not np.array_equal(pa["source_start"].to_numpy()[:50], pc_["source_start"].to_numpy()[:50])


def test_bad_specs_are_rejected_with_the_field_and_the_fix():
    with pytest.raises(ParameterError, match=r"distance=4 is smaller than block_nt=6.*distance >= block_nt"):
        pc.PlantedSpec(distance=4, block_nt=6)
    with pytest.raises(ParameterError, match=r"spacing=10 .* overlap"):
        pc.PlantedSpec(distance=10, block_nt=4, spacing=10)
    with pytest.raises(ParameterError, match="rule='mirror'"):
        pc.PlantedSpec(rule="mirror")
    with pytest.raises(ParameterError, match="block_nt"):
        pc.PlantedSpec(block_nt=7, distance=8)
    with pytest.raises(ParameterError, match="seed=0 is the training corpus's seed"):
        pc.planted_windows(pc.PlantedSpec(**SMALL), 10, seed=0)


def test_fasta_round_trip_spec_beside_it_and_holdout_split(tmp_path, transition):
    from dnalm_utils.corpus import corpus_fingerprint
    from dnalm_utils.pretraining import holdout_split

    spec = pc.PlantedSpec(record_nt=210_000, n_records=2, background_order=2)
    path = pc.write_planted_fasta(spec, tmp_path / "planted.fa")
    records, _ = pc.planted_records(spec)
    assert [r.sequence for r in read_fasta(path)] == [r.sequence for r in records]
    meta = pc.spec_path(path).read_text()
    assert '"distance": 16' in meta and corpus_fingerprint(str(path)) in meta
    train, held = holdout_split(read_fasta(path))
    assert held and sum(len(r.sequence) for r in held) == 2 * 20_000
    other = pc.write_planted_fasta(spec.replace(distance=24), tmp_path / "other.fa")
    assert corpus_fingerprint(str(other)) != corpus_fingerprint(str(path))


def test_held_out_windows_hold_one_pair_and_are_not_training_sequence(transition):
    spec = pc.PlantedSpec(distance=20, **SMALL)
    records, _ = pc.planted_records(spec, transition=transition)
    windows, pairs = pc.planted_windows(spec, 300, window_nt=64, seed=5, margin=3, transition=transition)
    assert len(windows) == 300 and all(len(w) == 64 for w in windows)
    assert (pairs["source_start"] >= 3).all() and (pairs["target_start"] + spec.block_nt <= 61).all()
    assert pairs["source_start"].nunique() > 10  # the pair sits at varied offsets
    assert _blocks_hold_rule(spec, windows, pairs["source_start"], pairs["target_start"])
    training = "|".join(r.sequence for r in records)
    assert not any(w[:40] in training for w in windows[:50])


def test_ngram_is_at_chance_on_determined_blocks_but_not_on_background(transition):
    spec = pc.PlantedSpec(distance=16, block_nt=6, spacing=40, record_nt=150_000, n_records=2)
    windows, pairs = pc.planted_windows(spec, 2500, seed=3, transition=transition)
    order = spec.distance - spec.block_nt
    records, _ = pc.planted_records(spec, transition=transition)
    counts = KmerCounts([r.sequence for r in records], max_len=2 * order + spec.block_nt)
    for hide in ("block", "nucleotide"):
        items = pc.planted_references(spec, windows, pairs, order=order, hide=hide, counts=counts)["n-gram"]
        lo, hi = binomial_interval(int(items["correct"].sum()), len(items), alpha=0.001)
        assert lo < 0.25 < hi, (hide, lo, hi)
    # Background: one nucleotide hidden at the first position after a determined block's right neighbour region,
    # i.e. a background letter (spacing 40 leaves 18 background nt after each determined block).
    pos = pairs["target_start"].to_numpy() + spec.block_nt + 4
    keep = pos + order < 64
    bg_windows = [w for w, k in zip(windows, keep) if k]
    blocks = np.stack([pos[keep], pos[keep] + 1], axis=1)
    probs = two_sided_block_probs(counts, bg_windows, blocks, order=3)
    acc = score_probs(probs, block_truth(bg_windows, blocks))
    lo, _ = binomial_interval(int(round(acc["accuracy"] * acc["n"])), acc["n"], alpha=0.001)
    assert acc["n"] > 1000 and lo > 0.27, acc


class RuleOracle(torch.nn.Module):
    """Predicts each masked nucleotide from its partner block as visible in the input, applying ``spec``'s rule at
    ``distance`` (the spec's, or a wrong one). Hidden runs of block_nt are the block; a single hidden nucleotide is
    placed in the block by the visible rest of it (the start whose visible letters agree with the rule)."""

    def __init__(self, spec, tok, block: str, distance: int | None = None):
        super().__init__()
        self.spec, self.tok, self.block = spec, tok, block
        self.d = spec.distance if distance is None else distance
        self.letter_ids = np.array([tok.token_to_id[c] for c in "ACGT"])
        self.lut = np.full(tok.vocab_size, -1)
        self.lut[self.letter_ids] = np.arange(4)

    def _predict(self, letters, t):
        b, sign = self.spec.block_nt, (-1 if self.block == "target" else 1)
        p = t + sign * self.d
        if p < 0 or p + b > len(letters) or t + b > len(letters) or (letters[p:p + b] < 0).any():
            return None
        partner = letters[p:p + b][None].astype(np.uint8)
        return pc.apply_rule(self.spec, partner, inverse=self.block == "source")[0]

    def forward(self, input_ids, attention_mask):
        ids = input_ids.numpy()
        out = np.zeros(ids.shape + (self.tok.vocab_size,), np.float32)
        b = self.spec.block_nt
        for r, row in enumerate(ids):
            letters = self.lut[row]
            masked = np.flatnonzero(row == self.tok.mask_id)
            runs = np.split(masked, np.flatnonzero(np.diff(masked) > 1) + 1)
            for run in runs:
                starts = [run[0]] if len(run) == b else range(run[0] - b + 1, run[0] + 1)
                for t in starts:
                    pred = self._predict(letters, t) if t >= 0 else None
                    if pred is None:
                        continue
                    seen = letters[t:t + b]
                    if ((seen < 0) | (seen == pred)).all():
                        out[r, t + np.arange(b)[np.isin(t + np.arange(b), run)],
                            self.letter_ids[pred[np.isin(t + np.arange(b), run)]]] = 20.0
                        break
        return type("Out", (), {"logits": torch.from_numpy(out)})()


class Uniform(torch.nn.Module):
    def __init__(self, vocab):
        super().__init__()
        self.vocab = vocab

    def forward(self, input_ids, attention_mask):
        return type("Out", (), {"logits": torch.zeros(input_ids.shape + (self.vocab,))})()


@pytest.mark.parametrize("rule", ["revcomp", "map"])
def test_oracle_scores_100_and_uniform_25_through_the_evaluator(rule, transition):
    spec = pc.PlantedSpec(rule=rule, distance=16, block_nt=6, **SMALL)
    tok = make_tokenizer("nucleotide")
    windows, pairs = pc.planted_windows(spec, 400, seed=2, transition=transition)
    for block in ("target", "source"):
        oracle = ModuleAdapter(RuleOracle(spec, tok, block), tok, name="oracle")
        whole = pc.planted_accuracy(oracle, windows, pairs, block=block, hide="block")
        assert len(whole) == 400 * 6 and whole["correct"].all(), block
        one = pc.planted_accuracy(oracle, windows, pairs, block=block, hide="nucleotide")
        assert len(one) == 400 * 6 and one["correct"].mean() > 0.99, block  # a rare chance match may misplace one
        assert (one[["window", "offset", "truth"]].to_numpy() == whole[["window", "offset", "truth"]].to_numpy()).all()
    wrong = ModuleAdapter(RuleOracle(spec, tok, "target", distance=spec.distance + 1), tok, name="wrong distance")
    items = pc.planted_accuracy(wrong, windows, pairs, hide="block")
    lo, hi = binomial_interval(int(items["correct"].sum()), len(items), alpha=0.001)
    assert lo < 0.25 < hi  # the evaluator gives nothing away: the rule at the wrong distance is chance
    uniform = ModuleAdapter(Uniform(tok.vocab_size), tok, name="uniform")
    items = pc.planted_accuracy(uniform, windows, pairs, hide="block")
    s = pc.planted_summary(items, alpha=0.001)
    assert s["ci_low"] < 0.25 < s["ci_high"] and s["bits"] == pytest.approx(2.0)
    chance = pc.planted_references(spec, windows, pairs, order=2)["chance"]
    assert (chance["correct"].to_numpy() == items["correct"].to_numpy()).all()


def test_positive_control_recipe_builds():
    cfg = pc.positive_control_config()
    spec = pc.positive_control_spec()
    assert cfg.window_nt >= spec.pair_nt


def test_planted_table_and_positive_control_find_the_model_above_the_bar():
    import pandas as pd

    rng = np.random.default_rng(0)
    rows = []
    for model, acc in [("nucleotide", 0.95), ("overlap6", 0.6), ("n-gram", 0.99), ("chance", 0.25)]:
        rows.append(pd.DataFrame({"model": model, "distance": 8, "window": np.repeat(np.arange(200), 6),
                                  "correct": (rng.random(1200) < acc).astype(int), "bits": 1.0}))
    table = pc.planted_table(pd.concat(rows))
    assert set(table["model"]) == {"nucleotide", "overlap6", "n-gram", "chance"}
    assert pc.positive_control(table) == ("nucleotide", 8)  # references never count
    assert "nucleotide at D = 8" in pc.positive_control_text(table)
    assert pc.positive_control(table[table["model"] != "nucleotide"]) is None
    assert pc.positive_control_text(table[table["model"] != "nucleotide"]).startswith(f"No model reaches {pc.POSITIVE_CONTROL_ACCURACY:.0%}")
    cfg = pc.positive_control_config("x", arm="overlap6")
    assert (cfg.scheme, cfg.k, cfg.masking, cfg.steps) == ("overlapping", 6, "dnabert", pc.POSITIVE_CONTROL_RECIPE["steps"])
    with pytest.raises(ParameterError, match="arm='overlap7'"):
        pc.positive_control_config("x", arm="overlap7")


def test_positive_control_spec_moves_the_spacing_off_a_clash():
    assert pc.positive_control_spec().spacing == 16
    for d in (8, 16, 32):
        spec = pc.positive_control_spec(distance=d)
        assert spec.distance == d and spec.spacing >= 16  # valid (PlantedSpec would raise otherwise)
    assert pc.positive_control_spec(distance=16).spacing == 22  # |16 - 22| = 6: blocks touch, do not overlap


def test_rule_text_states_the_plant():
    text = pc.rule_text(pc.positive_control_spec())
    assert text == "the 6-nt block 8 nt after each source block's start is a copy of it (a direct repeat), one pair every 16 nt"
    assert "reverse complement" in pc.rule_text(pc.PlantedSpec(rule="revcomp"))
    assert "4-mers" in pc.rule_text(pc.PlantedSpec(rule="map", block_nt=4, distance=8, spacing=16))


def test_check_planted_arms_refuses_an_empty_or_unknown_list():
    from dnalm_utils.errors import ParameterError
    from dnalm_utils.planted_context import check_planted_arms

    assert check_planted_arms("nucleotide") == ["nucleotide"]
    assert check_planted_arms(["nucleotide", "overlap6"]) == ["nucleotide", "overlap6"]
    with pytest.raises(ParameterError, match="planted_arms is empty"):
        check_planted_arms([])
    with pytest.raises(ParameterError, match="not zoo arms"):
        check_planted_arms(["overlap7"])


def test_planted_benchmark_trains_each_arm_per_distance_and_scores_it_beside_the_references(tmp_path):
    items, models, specs = pc.planted_benchmark(["nucleotide"], [8], block_nt=6, steps=2, n_windows=5, seed=0,
                                                models_root=tmp_path, device="cpu")
    assert set(specs) == {8} and set(models) == {("nucleotide", 8)} and (tmp_path / "corpus-D8.fa").exists()
    assert {"nucleotide", "n-gram", "chance"} <= set(items.model) and set(items.distance) == {8}
    per_model = items.groupby("model").size()
    assert per_model.nunique() == 1 and per_model.iloc[0] == 5 * 6  # every model scored on the same 30 nucleotides
    assert items.item.str.fullmatch(r"\d+:\d+").all()
    again, _, _ = pc.planted_benchmark(["nucleotide"], [8], block_nt=6, steps=2, n_windows=5, seed=0,
                                       models_root=tmp_path, device="cpu")  # the trained arm comes from the cache
    assert again.equals(items)


def test_recipes_text_reports_each_arms_own_masking_and_the_shared_budget_once(tmp_path):
    import json

    from dnalm_utils import pretraining as P

    folders = {}
    for name, scheme, k, seconds in (("planted-nuc", "nucleotide", None, 10.0), ("planted-ov6", "overlapping", 6, 12.5)):
        cfg = P.PretrainConfig(name=name, scheme=scheme, k=k, steps=40, batch_size=8, mask_rate=0.3)
        folder = tmp_path / name
        folder.mkdir()
        (folder / P.MANIFEST).write_text(json.dumps({"config": cfg.to_dict(), "wall_time_s": seconds, "device": "cpu"}))
        folders[name] = folder
    text = pc.recipes_text(folders)
    shared, nuc, ov6 = text.split("; ")[0], text.split("; ")[1], text.split("; ")[2]
    assert shared.startswith("2 layers x 128 (2 heads), 40 steps x 8 windows x 64 nt (20,480 nt seen)")
    assert nuc.startswith("planted-nuc: token") and ov6.startswith("planted-ov6: dnabert")
    assert "12.5 s on cpu" in ov6 and "10.0 s on cpu" in nuc and text.count("steps x") == 1
    assert pc.recipe_text(folders["planted-ov6"]).startswith("2 layers x 128 (2 heads), 40 steps")
    assert pc.recipes_text({}) == "no planted model was trained"
