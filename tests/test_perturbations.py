"""Discriminating perturbations (dnalm_utils.perturbations): hand-built copiers follow the edited token exactly
when their rule says so, only one token id differs between the original and the edited input, a model without
long-range dependence does not move under distal edits while a model reading q - D moves at d = D only, and the
n-gram cannot move beyond its flank order."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from dnalm_utils import ngram
from dnalm_utils import perturbations as P
from dnalm_utils import tokenization as T
from dnalm_utils.adapters import ModuleAdapter, NotApplicable
from dnalm_utils.errors import ParameterError

K = 5


def _windows(n=60, length=40, seed=0):
    rng = np.random.default_rng(seed)
    return ["".join(rng.choice(list("ACGT"), length)) for _ in range(n)]


class FlankCopier(torch.nn.Module):
    """Overlapping k-mer model that fills each masked nucleotide from the unmasked tokens covering it: rule
    "left" takes the letter of the nearest covering token on the left (else the right, else A); rule "majority"
    takes the commonest letter among all covering tokens, ties to the nearest left token's. Records its inputs."""

    def __init__(self, tok, rule: str):
        super().__init__()
        self.tok, self.rule, self.seen = tok, rule, []

    def forward(self, input_ids, attention_mask=None):
        tok, k = self.tok, self.tok.k
        self.seen.append(input_ids.clone())
        logits = torch.zeros(*input_ids.shape, tok.vocab_size)
        for r, row in enumerate(input_ids.tolist()):
            body = row[1: row.index(tok.sep_id)]
            n = len(body) + k - 1
            shown = [[] for _ in range(n)]  # per nucleotide: (token index, letter) of unmasked covering tokens
            for t, i in enumerate(body):
                if i != tok.mask_id:
                    for o, c in enumerate(tok.vocab[i]):
                        shown[t + o].append((t, c))
            for t, i in enumerate(body):
                if i != tok.mask_id:
                    continue
                guess = []
                for p in range(t, t + k):
                    cands = shown[p]
                    left = [c for (u, c) in cands if u < t]
                    if not cands:
                        guess.append("A")
                    elif self.rule == "left":
                        guess.append(left[-1] if left else cands[0][1])
                    else:
                        letters = [c for _, c in cands]
                        top = max(letters.count(c) for c in set(letters))
                        tied = {c for c in set(letters) if letters.count(c) == top}
                        nearest_left = left[-1] if left else cands[0][1]
                        guess.append(nearest_left if nearest_left in tied else sorted(tied)[0])
                logits[r, t + 1, tok.token_to_id["".join(guess)]] = 20.0
        return SimpleNamespace(logits=logits)


def _copier(rule):
    tok = T.OverlappingKmerTokenizer(K)
    return ModuleAdapter(FlankCopier(tok, rule), tok, name=f"{rule} copier")


def test_a_left_copier_follows_the_edit_exactly_when_the_left_neighbour_was_edited():
    lm = _copier("left")
    table, summary = P.single_token_edit(lm, _windows(), seed=1)
    assert set(table.m) == {1, 2, 3} and set(table.side) == {"left", "right"}
    assert (table.outcome == np.where(table.side == "left", "follows_edit", "keeps_genome")).all()
    assert (table.outcome == table.left_copier).all()
    model = summary[summary.predictor == "model"].set_index(["m", "side"])
    assert (model.xs("left", level="side").follows_edit == 1).all()
    assert (model.xs("right", level="side").follows_edit == 0).all()
    assert (table.predicted_unedited == table.genome).all()  # unedited, every covering token shows the genome


def test_a_majority_copier_never_follows_one_edit_against_two_or_more_genome_letters():
    lm = _copier("majority")
    table, _ = P.single_token_edit(lm, _windows(seed=2), seed=3)
    assert (table.outcome == table.majority_copier).all()
    many = table.n_left + table.n_right >= 3
    assert many.any() and (table[many].outcome == "keeps_genome").all()
    tie = table[~many]  # one token on each side: the tie goes to the left neighbour
    assert (tie.outcome == np.where(tie.side == "left", "follows_edit", "keeps_genome")).all()


def test_exactly_one_token_id_differs_between_the_original_and_the_edited_input():
    lm = _copier("left")
    table, _ = P.single_token_edit(lm, _windows(20), ms=[2], seed=4, batch_size=8)
    ids = torch.cat([torch.nn.functional.pad(x, (0, 60 - x.shape[1]), value=-1) for x in lm.model.seen]).numpy()
    orig, edited = ids[0::2], ids[1::2]
    diff = orig != edited
    assert (diff.sum(1) == 1).all()
    cols = diff.argmax(1) - 1  # framed column -> token index ([CLS] first)
    assert np.array_equal(cols, table.edited_token.to_numpy())
    assert ((orig == lm.tokenizer.mask_id).sum(1) == 2).all() and ((edited == lm.tokenizer.mask_id).sum(1) == 2).all()


def test_single_edit_counts_the_revealing_tokens_and_is_seeded():
    lm = _copier("left")
    a, _ = P.single_token_edit(lm, _windows(15), seed=5)
    b, _ = P.single_token_edit(lm, _windows(15), seed=5)
    c, _ = P.single_token_edit(lm, _windows(15), seed=6)
    assert a.equals(b) and not a.equals(c)
    assert ((a.position >= a.start + a.m) & (a.position <= a.start + K - 2)).all()
    n_tokens = 40 - K + 1
    assert (a.n_left == a.start - np.maximum(0, a.position - K + 1)).all()
    assert (a.n_right == np.minimum(a.position, n_tokens - 1) - a.start - a.m + 1).all()
    assert ((a.n_left >= 1) & (a.n_right >= 1)).all()
    assert (a.genome != a.edit).all()
    text = P.single_edit_sentence({"left copier": P.summarize_single_edit(a)})
    assert "left copier (m = 1) follows the one edited token when the left neighbour is edited 100.0 %" in text


def test_single_edit_refuses_what_it_cannot_do():
    nuc = T.NucleotideTokenizer()
    with pytest.raises(NotApplicable, match="overlapping"):
        P.single_token_edit(ModuleAdapter(FlankCopier(T.OverlappingKmerTokenizer(3), "left"), nuc), _windows(3))
    with pytest.raises(ParameterError, match="ms="):
        P.single_token_edit(_copier("left"), _windows(3), ms=[K - 1])
    with pytest.raises(ParameterError, match="ACGT"):
        P.single_token_edit(_copier("left"), ["ACGTNACGTACGTACGTACGTACGT"])


# ------------------------------------------------------------------------------------------------
# Distal edits
# ------------------------------------------------------------------------------------------------
class ReadsBack(torch.nn.Module):
    """Nucleotide-token model: a masked position t is predicted (logit 20) as the letter at t - D when that token
    is unmasked, else A. D = 0: predicts A always (no dependence at all)."""

    def __init__(self, tok, distance: int):
        super().__init__()
        self.tok, self.distance = tok, distance

    def forward(self, input_ids, attention_mask=None):
        tok, d = self.tok, self.distance
        logits = torch.zeros(*input_ids.shape, tok.vocab_size)
        for r, row in enumerate(input_ids.tolist()):
            body = row[1: row.index(tok.sep_id)]
            for t, i in enumerate(body):
                if i == tok.mask_id:
                    src = body[t - d] if d and t - d >= 0 else None
                    letter = tok.vocab[src] if src is not None and src != tok.mask_id else "A"
                    logits[r, t + 1, tok.token_to_id[letter]] = 20.0
        return SimpleNamespace(logits=logits)


def _reads_back(d):
    tok = T.NucleotideTokenizer()
    return ModuleAdapter(ReadsBack(tok, d), tok, name=f"reads q-{d}")


def test_distal_shift_is_where_the_model_reads_and_nowhere_else():
    windows = _windows(30, 40, seed=7)
    table, items, na = P.distal_edits({"none": _reads_back(0), "back4": _reads_back(4)}, windows, [2, 4, 6], seed=1)
    assert na == []
    t = table.set_index(["model", "d", "side"])
    assert (t.loc["none"].shift_bits == 0).all()
    assert t.loc[("back4", 4, "left")].shift_bits > 5  # every edit at q - 4 flips the prediction
    others = t.loc["back4"].drop(index=(4, "left"))
    assert (others.shift_bits == 0).all()
    assert (t.windows == 30).all() and (t.skipped == 0).all()
    assert len(items) == 2 * 30 * 3 * 2


def test_ngram_shift_is_zero_beyond_its_order_and_models_are_paired_with_it():
    corpus = _windows(200, 200, seed=8)
    counts = ngram.KmerCounts(corpus, max_len=8)
    windows = _windows(25, 30, seed=9)
    table, items, _ = P.distal_edits({"back4": _reads_back(4)}, windows, [1, 3, 4], counts=counts, ngram_order=3,
                                     seed=2)
    ref = table[table.model == P.NGRAM].set_index(["d", "side"])
    assert (ref.loc[4].shift_bits == 0).all()  # d = 4 > order 3
    assert (ref.loc[1].shift_bits > 0).all()
    row = table[(table.model == "back4") & (table.d == 4) & (table.side == "left")].iloc[0]
    assert row.difference == pytest.approx(row.shift_bits - row.ngram_shift) and row.difference_low > 0
    text = P.distal_sentence(table, d=4, side="left")
    assert "more than the n-gram by over 0.01 bits (paired by window): back4" in text
    assert "n-gram moves by 0.000 bits" in text
    assert "(paired by window): no model" in P.distal_sentence(table, d=4, side="left", margin=100)


def test_distal_versus_initial_pairs_the_same_edits_of_a_model_and_its_step0_twin():
    """A model that reads q - 4 against a 'step-0 twin' that reads nothing: the difference is the trained shift at
    (4, left), zero elsewhere; the same seed gives both the same edits, so pairs are complete."""
    windows = _windows(30, 40, seed=7)
    trained = P.distal_edits({"m": _reads_back(4)}, windows, [2, 4], seed=3)
    initial = P.distal_edits({"m": _reads_back(0)}, windows, [2, 4], seed=3)
    versus = P.distal_versus_initial(trained[1], initial[1]).set_index(["d", "side"])
    assert (versus.windows == 30).all()
    hit = versus.loc[(4, "left")]
    assert hit.difference == pytest.approx(trained[0].set_index(["d", "side"]).loc[(4, "left")].shift_bits)
    assert hit.moved_more and hit.initial == 0 and hit.low > 0.01
    assert not versus.drop(index=(4, "left")).moved_more.any()
    assert (versus.drop(index=(4, "left")).difference == 0).all()
    text = P.distal_step0_sentence(versus.reset_index(), d=4, side="left")
    assert "m 0.000 -> " in text and text.endswith("for: m.")
    assert "for: no model." in P.distal_step0_sentence(versus.reset_index(), d=2, side="left")
    assert "No model had step-0" in P.distal_step0_sentence(versus.iloc[:0])
    with pytest.raises(ParameterError, match="d=3"):
        P.distal_step0_sentence(versus.reset_index(), d=3)


def test_distal_edits_skip_edits_that_only_masked_tokens_hold():
    # non-overlapping 6-mers: an edit 2 nt from q is inside q's masked token unless the token boundary falls
    # between them; those edits are skipped, never scored as "no shift"
    tok = T.NonOverlappingKmerTokenizer(6)
    from tiny_modules import ConstantModel

    lm = ModuleAdapter(ConstantModel(tok.vocab_size, tok.token_to_id["AAAAAA"]), tok, name="const")
    table, _, _ = P.distal_edits({"const": lm}, _windows(40, 48, seed=10), [2, 12], seed=3)
    t = table.set_index(["d", "side"])
    assert (t.loc[2].skipped > 0).all() and (t.loc[12].skipped == 0).all()
    assert (t.windows + t.skipped == 40).all()


def test_distal_edits_bad_input_and_not_applicable():
    causal = ModuleAdapter(ReadsBack(T.NucleotideTokenizer(), 1), T.NucleotideTokenizer(), objective="causal",
                           name="causal")
    _, _, na = P.distal_edits({"causal": causal}, _windows(3), [2])
    assert na[0]["model"] == "causal"
    with pytest.raises(ParameterError, match="too short"):
        P.distal_edits({"x": _reads_back(1)}, _windows(3, 10), [6])
    with pytest.raises(ParameterError, match="sides"):
        P.distal_edits({"x": _reads_back(1)}, _windows(3), [2], sides=["up"])
    with pytest.raises(ParameterError, match="distances"):
        P.distal_edits({"x": _reads_back(1)}, _windows(3), [0])


def test_a_model_that_reads_only_its_neighbour_moves_at_d_1_and_exactly_0_from_d_2():
    windows = _windows(20, 30, seed=11)
    table, items, _ = P.distal_edits({"back1": _reads_back(1)}, windows, [1, 2, 3, 5], seed=4, pooled=True)
    t = table.set_index(["d", "side"]).shift_bits
    assert t.loc[(1, "left")] > 5 and t.loc[(1, "right")] == 0 and t.loc[(1, "both")] > 2
    assert (t.drop(index=1, level="d") == 0).all()
    assert set(table.side) == {"left", "right", "both"} and (table.windows == 20).all()
    per = items.groupby(["d", "side"]).shift_bits.mean()  # the summary is the mean of the per-edit items
    assert per.loc[(1, "left")] == pytest.approx(t.loc[(1, "left")])


def test_distribution_shift_is_the_dependency_map_measure_and_total_variation():
    from dnalm_utils.dependency_maps import dependency_from_probs

    rng = np.random.default_rng(12)
    ref, var = rng.dirichlet(np.ones(4), 5), rng.dirichlet(np.ones(4), 5)
    bits, tv = P.distribution_shift(ref, var)
    for j in range(5):  # a 2-position map whose only measured cell (query 0, one substitution, target 1) is row j
        v = np.full((2, 3, 2, 4), np.nan)
        v[0, 0, 1] = var[j]
        assert bits[j] == pytest.approx(dependency_from_probs(np.stack([ref[j], ref[j]]), v)[0, 1])
    assert np.allclose(tv, 0.5 * np.abs(ref - var).sum(1)) and (P.distribution_shift(ref, ref)[0] == 0).all()
    with pytest.raises(ParameterError, match="ACGT"):
        P.distribution_shift(ref[:, :3], var[:, :3])


def test_default_distances_start_at_the_longest_token_and_fit_the_window():
    k6, nuc = _copier("left"), _reads_back(1)  # overlapping 5-mers and nucleotides
    assert P.default_distances({"a": k6, "b": nuc}, _windows(3, 64)) == [K, 2 * K, 4 * K]
    assert P.default_distances({"b": nuc}, _windows(3, 9)) == [1, 2, 4]
    with pytest.raises(ParameterError, match="longer windows"):
        P.default_distances({"a": k6}, _windows(3, 10))
    table, _, _ = P.distal_edits({"b": nuc}, _windows(5, 12, seed=13), seed=0)
    assert sorted(table.d.unique()) == [1, 2, 4]


def test_distal_edits_are_seeded():
    models = {"back4": _reads_back(4)}
    a = P.distal_edits(models, _windows(12, 30, seed=14), [4], seed=7, n_boot=200)
    b = P.distal_edits(models, _windows(12, 30, seed=14), [4], seed=7, n_boot=200)
    c = P.distal_edits(models, _windows(12, 30, seed=14), [4], seed=8, n_boot=200)
    assert a[0].equals(b[0]) and a[1].equals(b[1]) and not a[1].equals(c[1])
    it = a[1]
    assert (np.abs(it.position - it.q) == it.d).all() and ((it.position < it.q) == (it.side == "left")).all()
    windows = _windows(12, 30, seed=14)
    assert all(windows[w][p] != x for w, p, x in zip(it.window, it.position, it.letter))
    with pytest.raises(ParameterError, match="n_boot"):
        P.distal_edits(models, _windows(3), [2], n_boot=0)


def test_edited_sides_are_balanced_per_m_and_the_sentence_picks_m():
    table, summary = P.single_token_edit(_copier("majority"), _windows(15, seed=15), seed=9)
    per_m = table.groupby("m").side.apply(lambda s: abs((s == "left").sum() - (s == "right").sum()))
    assert (per_m <= 1).all()
    largest = P.single_edit_sentence({"maj": summary}, m="largest")
    assert "maj (m = 3)" in largest and "maj (m = 1)" in P.single_edit_sentence({"maj": summary})
    # m = k - 2: one revealing token on each side, a tie the majority copier breaks towards the left
    assert "when the left neighbour is edited 100.0 %" in largest
    assert P.single_edit_sentence({"maj": summary}, m=2).startswith("maj (m = 2)")
    with pytest.raises(ParameterError, match="m="):
        P.single_edit_sentence({"maj": summary}, m=0)


def test_single_edit_and_distal_edits_run_through_a_real_tiny_bert(tmp_path):
    from dnalm_utils import models as M

    lm = M.load_model(M.make_tiny_dnabert(tmp_path / "tiny4", k=4, max_positions=64))
    windows = _windows(8, 40, seed=16)
    table, summary = P.single_token_edit(lm, windows, seed=0, batch_size=5)
    assert len(table) == 8 * 2 and set(table.m) == {1, 2}
    assert ((table.p_edit + table.p_genome) <= 1 + 1e-6).all() and (table.p_edit > 0).all()
    assert np.allclose(summary[["follows_edit", "keeps_genome", "other"]].sum(axis=1), 1.0)
    dist, items, na = P.distal_edits({"tiny4": lm}, windows, [4, 8], seed=0, batch_size=7)
    assert na == [] and (dist.windows == 8).all() and (items.shift_bits >= 0).all()
    assert (dist.shift_low <= dist.shift_bits).all() and (dist.shift_bits <= dist.shift_high).all()


def test_bpe_edits_are_scored_only_when_the_same_nucleotides_stay_hidden():
    from tiny_modules import ConstantModel

    tok = T.BPETokenizer.train(_windows(40, 200, seed=17), vocab_size=60)
    lm = ModuleAdapter(ConstantModel(tok.vocab_size, tok.token_to_id["A"]), tok, name="bpe const")
    windows = _windows(40, 48, seed=18)
    _, items, _ = P.distal_edits({"bpe": lm}, windows, [1, 3, 6], seed=5)

    def stretch(text, q):  # nucleotides hidden when every token overlapping q is masked
        spans = tok.encode(text).spans
        hit = spans[(spans[:, 0] <= q) & (spans[:, 1] > q)]
        return set(range(int(hit[:, 0].min()), int(hit[:, 1].max())))

    resegmented = 0
    for r in items.itertuples():
        w = windows[r.window]
        before, after = stretch(w, r.q), stretch(w[:r.position] + r.letter + w[r.position + 1:], r.q)
        assert np.isnan(r.shift_bits) == (r.position in before or before != after)
        resegmented += r.position not in before and before != after
    assert resegmented > 0 and items.shift_bits.notna().any()
