"""State probes: a hand-built model whose layers hold known letters gives those letters back (and chance
elsewhere), the references sit at chance where i.i.d. sequence gives them nothing, the block split never
shares a block, the references are nested, same seed same numbers, bad parameters are refused."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from scipy import sparse

from dnalm_utils import state_probes as S
from dnalm_utils import tokenization as T
from dnalm_utils.adapters import ModuleAdapter
from dnalm_utils.errors import ParameterError
from dnalm_utils.genome import Window

K = 3
PLANT = {1: ("right", 5), 2: ("left", 2)}  # layer -> the letter its state holds (one-hot); layer 0: own first letter


class PlantedStates(torch.nn.Module):
    """Overlapping-3-mer input; hidden state l at token i (span [i, i + 3)) = one-hot of a known letter (+ 4
    zero dims): layer 0 the token's own first letter, layer 1 the letter 5 nt beyond its last nucleotide, layer
    2 the letter 2 nt before its first; zero where that letter lies outside the sequence."""

    def __init__(self, tok):
        super().__init__()
        letters = torch.full((tok.vocab_size, K), -1, dtype=torch.long)
        for i, t in enumerate(tok.vocab):
            if not tok.is_special[i]:
                letters[i] = torch.tensor(["ACGT".index(c) for c in t])
        self.letters, self.special = letters, torch.from_numpy(tok.is_special)

    def forward(self, input_ids, attention_mask=None, output_hidden_states=False):
        b, width = input_ids.shape
        states = [torch.zeros(b, width, 8) for _ in range(3)]
        for r in range(b):
            cols = torch.nonzero(~self.special[input_ids[r]]).flatten()
            ids = input_ids[r, cols]
            seq = torch.cat([self.letters[ids, 0], self.letters[ids[-1], 1:]])  # nucleotides of the row
            n = len(seq)
            for i, c in enumerate(cols.tolist()):
                for layer, pos in ((0, i), (1, i + K - 1 + 5), (2, i - 2)):
                    if 0 <= pos < n:
                        states[layer][r, c, seq[pos]] = 1.0
        return SimpleNamespace(logits=states[-1], hidden_states=tuple(states))


@pytest.fixture(scope="module")
def planted():
    tok = T.OverlappingKmerTokenizer(K)
    return ModuleAdapter(PlantedStates(tok), tok, capabilities=["hidden_states"], n_layers=2, name="planted")


def _iid(n, length, seed=0):
    rng = np.random.default_rng(seed)
    return ["".join(rng.choice(list("ACGT"), length)) for _ in range(n)]


def _split(n, seed=0):
    return S.split_by_block_ids(list(range(n)), test_fraction=0.5, seed=seed)


@pytest.fixture(scope="module")
def planted_result(planted):
    windows = _iid(120, 40)
    return S.probe_states({"planted": planted}, windows, _split(len(windows)), distances=[1, 2, 5], n_train=1500,
                          n_test=1000, letters_nt=8, amp=False)


def _acc(res, layer, side, d, features="hidden state"):
    t = res.table
    sel = (t.side == side) & (t.d == d) & (t.features == features)
    sel &= t.layer.isna() if layer is None else (t.layer == layer)
    (value,) = t[sel].accuracy.tolist()
    return value


# ------------------------------------------------------------------------------------------------
# Planted answers
# ------------------------------------------------------------------------------------------------
def test_planted_layer_gives_its_letter_back_and_chance_elsewhere(planted_result):
    res = planted_result
    assert _acc(res, 1, "right", 5) > 0.99  # layer 1 holds the letter 5 nt beyond the right edge
    assert _acc(res, 2, "left", 2) > 0.99   # layer 2 the letter 2 nt before the left edge
    for layer, side, d in [(0, "right", 5), (2, "right", 5), (1, "right", 1), (1, "right", 2), (0, "left", 2),
                           (1, "left", 5), (0, "right", 1)]:
        assert 0.18 < _acc(res, layer, side, d) < 0.34, (layer, side, d)
    t = res.table
    assert set(t.features) == set(S.FEATURES) and t[t.features == "hidden state"].layer.tolist().count(1) == 6
    row = t[(t.layer == 1) & (t.side == "right") & (t.d == 5)].iloc[0]
    assert row.ci_low <= row.accuracy <= row.ci_high and row.n_test == 1000 and row.beyond_k


def test_references_at_chance_beyond_the_neighbours_on_iid_sequence(planted_result):
    res = planted_result
    for side in S.SIDES:
        for d in (1, 2, 5):
            assert 0.18 < _acc(res, None, side, d, "token") < 0.33
            assert 0.18 < _acc(res, None, side, d, "majority") < 0.33
            assert 0.18 < _acc(res, None, side, d, "window letters") < 0.34 or d == 1
        # the 3-mer's neighbour reaches 1 nt beyond its edge: d = 1 is read off the neighbour, d >= 2 is not
        assert _acc(res, None, side, 1, "token + neighbours") > 0.99
        assert 0.18 < _acc(res, None, side, 2, "token + neighbours") < 0.33
    t = res.table
    inside = t[(t.features == "token") & (t.side == "right")].set_index("d").target_in_neighbours
    assert inside[1] == 1.0 and inside[2] == 0.0 and inside[5] == 0.0
    beyond = t[t.features == "token"].set_index(["side", "d"]).beyond_k
    assert not beyond[("right", 2)] and beyond[("right", 5)]


def test_paired_table_is_hidden_minus_reference_on_the_same_items(planted_result):
    res = planted_result
    p = res.paired
    row = p[(p.layer == 1) & (p.side == "right") & (p.d == 5) & (p.reference == "token + neighbours")].iloc[0]
    h = res.correct[("planted", 1, "right", 5, "hidden state")]
    r = res.correct[("planted", None, "right", 5, "token + neighbours")]
    assert row.difference == pytest.approx(np.mean(h - r)) and row.ci_low < row.difference < row.ci_high
    assert row.difference > 0.6 and row.p < 1e-10 and row.n_test == len(h)
    assert len(res.items["planted"]) == len(h)
    row1 = p[(p.layer == 0) & (p.side == "right") & (p.d == 1) & (p.reference == "token + neighbours")].iloc[0]
    assert row1.ci_high < 0  # the token's own state does not hold the next letter; its neighbour does
    text = S.finding(res, "planted", d=5, side="right", layer=1)
    assert text.startswith("At d = 5 nt beyond the token (right side, beyond its k = 3 reach), planted's layer 1")
    assert "the states hold more about this letter than their neighbours' identities" in text
    last = S.finding(res, "planted", d=2, side="right")  # last layer = 2 holds the left letter
    assert "last layer (layer 2)" in last and "(difference" in last
    assert "planted" in S.findings(res)


# ------------------------------------------------------------------------------------------------
# Items, nesting, reproducibility, step 0
# ------------------------------------------------------------------------------------------------
def test_items_are_eligible_distinct_tokens_and_references_nested():
    tok = T.NonOverlappingKmerTokenizer(4)
    seqs = _iid(10, 50, seed=3)
    encs = [tok.encode(s) for s in seqs]
    rng = np.random.default_rng(0)
    it = S._sample_items(encs, [50] * 10, np.arange(10), reach={"right": 6, "left": 3}, n_items=10**6, rng=rng,
                         is_test=False)
    brute = [(w, t) for w, e in enumerate(encs) for t in range(1, len(e) - 1)
             if e.spans[t, 0] - 3 >= 0 and e.spans[t, 1] - 1 + 6 < 50]
    assert list(zip(it.window.tolist(), it.token.tolist())) == brute  # all eligible tokens, each once, in order
    assert np.array_equal(it.left_id, [encs[w].ids[t - 1] for w, t in brute])
    assert np.array_equal(it.right_end, [encs[w].spans[t + 1, 1] for w, t in brute])
    few = S._sample_items(encs, [50] * 10, np.arange(10), reach={"right": 6}, n_items=7, rng=rng, is_test=True)
    assert len(few.window) == 7
    assert len(set(zip(few.window.tolist(), few.token.tolist()))) == 7
    # nesting by construction: every id / letter a reference sees, the next one sees in the same column
    train = np.arange(len(it.window)) % 2 == 0
    codes = S._code_matrix(seqs, np.arange(10))
    target = it.end + 5  # right side, d = 6
    a = sparse.hstack([S._one_hot(it.token_id, train), S._letters(codes, it.window, target, it.start, it.end, 0)])
    b = sparse.hstack([S._one_hot(it.token_id, train), S._one_hot(it.left_id, train), S._one_hot(it.right_id, train),
                       S._letters(codes, it.window, target, it.left_start, it.right_end, 0)])
    c = sparse.hstack([S._one_hot(it.token_id, train), S._one_hot(it.left_id, train), S._one_hot(it.right_id, train),
                       S._letters(codes, it.window, target, it.left_start, it.right_end, 8)])
    n_ids, n_letters = S._one_hot(it.token_id, train).shape[1], 4 * codes.shape[1] * 2 - 4
    a, b, c = a.tocsr(), b.tocsr(), c.tocsr()
    assert a.shape[1] == n_ids + n_letters and b.shape == c.shape and b.shape[1] > a.shape[1]
    assert (b[:, :n_ids] != a[:, :n_ids]).nnz == 0  # the token's id columns
    assert (b[:, -n_letters:] - a[:, -n_letters:]).min() >= 0  # its letters: a subset, in the same columns
    assert (c - b).min() >= 0 and c.nnz > b.nnz > a.nnz
    r = codes.shape[1] - 1
    for i in range(5):  # brute force: the letters each row holds
        s, t, w = seqs[it.window[i]], int(target[i]), 8
        want_a = sorted((p - t + r) * 4 + "ACGT".index(s[p]) for p in range(it.start[i], it.end[i]))
        want_c = sorted({(p - t + r) * 4 + "ACGT".index(s[p]) for p in range(len(s))
                         if it.left_start[i] <= p < it.right_end[i] or 0 < abs(p - t) <= w})
        assert S._letters(codes, it.window, target, it.start, it.end, 0)[i].indices.tolist() == want_a
        assert S._letters(codes, it.window, target, it.left_start, it.right_end, w)[i].indices.tolist() == want_c
        assert not any(4 * r <= col < 4 * r + 4 for col in want_c)  # the target (offset 0, outside the spans)


def test_same_seed_same_numbers_other_seed_other_items(planted):
    windows = _iid(30, 40, seed=5)
    split = _split(30, seed=1)
    def run(seed):
        return S.probe_states({"p": planted}, windows, split, distances=[3], sides="right", n_train=200, n_test=150,
                              layers=[1], seed=seed, amp=False)

    a, b, c = run(0), run(0), run(1)
    assert a.table.equals(b.table) and a.paired.equals(b.paired)
    assert not a.items["p"].equals(c.items["p"])
    same = S.versus_initial(a, b)
    assert len(same) == 1 and same.paired.all() and same.difference.iloc[0] == 0 and same.ci_low.iloc[0] == 0
    other = S.versus_initial(a, c)
    assert not other.paired.any() and other.ci_low.iloc[0] < other.difference.iloc[0] < other.ci_high.iloc[0]


def test_not_applicable_models_are_listed(planted):
    tok = T.OverlappingKmerTokenizer(K)
    none = ModuleAdapter(torch.nn.Linear(2, 2), tok, capabilities=[], name="bare")
    windows = _iid(20, 40, seed=6)
    res = S.probe_states({"p": planted, "bare": none}, windows, _split(20), distances=[2], n_train=100, n_test=80,
                         layers=[0], amp=False)
    assert set(res.table.model) == {"p"} and res.table.attrs["not_applicable"][0]["model"] == "bare"
    assert res.not_applicable[0]["probe"] == S.PROBE
    assert "not applicable to bare" in S.findings(res)


@pytest.mark.parametrize("maker", ["make_tiny_dnabert", "make_tiny_nt"])
def test_a_real_tiny_model_runs_through(maker, tmp_path):
    from dnalm_utils import models as M

    lm = M.load_model(getattr(M, maker)(tmp_path / "t4", k=4, layers=1, hidden=16, heads=2, intermediate=16,
                                        max_positions=64))
    windows = _iid(40, 42, seed=8)  # NT: ten 4-mers and two single letters per window
    res = S.probe_states({"t4": lm}, windows, _split(40), distances=[2, 4], n_train=150, n_test=100)
    t = res.table
    assert set(t[t.features == "hidden state"].layer) == {0, 1} and len(res.paired) == 2 * 2 * 2 * 2
    assert (t.n_test == 100).all() and t.accuracy.between(0, 1).all()


# ------------------------------------------------------------------------------------------------
# Block split
# ------------------------------------------------------------------------------------------------
def test_block_split_shares_no_block_and_no_overlap():
    rng = np.random.default_rng(2)
    windows = []
    for name in ("chrA", "chrB"):
        for start in rng.integers(0, 20_000, 150):
            windows.append(Window(name, int(start), int(start) + 300, "+", "A" * 300))
    for contiguous in (False, True):
        s = S.split_windows(windows, 1000, test_fraction=0.3, seed=4, contiguous=contiguous)
        assert len(s.train) and len(s.test)
        assert set(s.train) | set(s.test) | set(s.dropped) == set(range(len(windows)))
        assert not (set(s.train) & set(s.test))
        train_blocks = {b for i in s.train for b in s.blocks[i]}
        test_blocks = {b for i in s.test for b in s.blocks[i]}
        assert not (train_blocks & test_blocks) and test_blocks <= s.test_blocks
        for i in s.train:  # brute force: no train window overlaps a test window
            for j in s.test:
                a, b = windows[i], windows[j]
                assert a.name != b.name or a.end <= b.start or b.end <= a.start
        for i in s.dropped:
            assert {b in s.test_blocks for b in s.blocks[i]} == {True, False}
        assert "train and" in s.describe()
    s = S.split_windows(windows, 1000, contiguous=True)
    assert all(name == "chrB" for name, _ in s.test_blocks)  # the second half in genome order
    assert S.split_windows(windows, 1000, seed=4).test.tolist() == S.split_windows(windows, 1000, seed=4).test.tolist()
    ids = S.split_by_block_ids(["a", "a", "b", "c", "c", "d"], contiguous=True)
    assert ids.train.tolist() == [0, 1, 2] and ids.test.tolist() == [3, 4, 5]


def test_bad_parameters_raise(planted):
    windows = _iid(10, 40)
    split = _split(10)
    bad = [
        dict(distances=[]), dict(distances=[0]), dict(distances=[2, 2]), dict(distances=[2], sides=["up"]),
        dict(distances=[2], n_train=1), dict(distances=[2], letters_nt=0), dict(distances=[2], C=-1),
        dict(distances=[30]),  # no token of a 40-nt window has targets 30 nt away on both sides
    ]
    for kwargs in bad:
        with pytest.raises(ParameterError):
            S.probe_states({"p": planted}, windows, split, **kwargs)
    with pytest.raises(ParameterError, match="BlockSplit"):
        S.probe_states({"p": planted}, windows, (np.arange(5), np.arange(5, 10)), distances=[2])
    with pytest.raises(ParameterError, match="outside"):
        S.probe_states({"p": planted}, windows[:4], split, distances=[2])
    with pytest.raises(ParameterError, match="windows is one string"):
        S.probe_states({"p": planted}, "ACGT", split, distances=[2])
    with pytest.raises(ParameterError):
        S.probe_states({}, windows, split, distances=[2])
    with pytest.raises(ParameterError, match="block_nt"):
        S.split_windows([Window("c", 0, 10, "+", "A" * 10)], 0)
    with pytest.raises(ParameterError, match="at least 2"):
        S.split_windows([Window("c", 0, 10, "+", "A" * 10)], 100)
    with pytest.raises(ParameterError, match="test_fraction"):
        S.split_by_block_ids([1, 2, 3], test_fraction=1.0)
    with pytest.raises(ParameterError, match="genome.Window"):
        S.split_windows(["ACGT"], 10)


def test_step0_sentence_reads_the_last_layer_of_versus_initial(planted):
    windows = _iid(30, 40, seed=5)
    split = _split(30, seed=1)
    a = S.probe_states({"p": planted}, windows, split, distances=[2, 3], sides="right", n_train=200, n_test=150,
                       layers=[0, 1], amp=False)
    versus = S.versus_initial(a, a)
    text = S.step0_sentence(versus)
    last = versus[(versus.d == 3) & (versus.layer == 1)].iloc[0]
    assert text.startswith("At d = 3 nt beyond the token (right side)")
    assert f"p {100 * last.trained:.1f} % vs {100 * last.initial:.1f} % (+0.0 points" in text
    assert "At d = 2" in S.step0_sentence(versus, d=2)
    with pytest.raises(ParameterError, match="d=4"):
        S.step0_sentence(versus, d=4)
    with pytest.raises(ParameterError, match="versus_initial"):
        S.step0_sentence(a.table)
    assert "no model" in S.step0_sentence(versus.iloc[:0]).lower()

    import matplotlib

    matplotlib.use("Agg")
    from dnalm_utils import plotting

    fig = plotting.plot_state_probes(a.table, initial=a.table)
    assert len(fig.axes) == 2 and [ax.get_title() for ax in fig.axes] == ["p, d = 2", "p, d = 3 (beyond k)"]  # K = 3
    # hidden state + step 0 + four references per panel
    assert all(len(ax.lines) == 6 for ax in fig.axes)
    matplotlib.pyplot.close("all")


def test_paired_sentence_reads_the_csv_form(planted_result, tmp_path):
    import pandas as pd

    path = tmp_path / "paired.csv"
    planted_result.paired.to_csv(path, index=False)
    paired = pd.read_csv(path)
    text = S.paired_sentence(paired, d=5)
    last = paired[(paired.side == "right") & (paired.d == 5) & (paired.reference == "token + neighbours")]
    last = last[last.layer == last.layer.max()].iloc[0]
    assert text.startswith("at d = 5 nt beyond the token (right side), last layer against token + neighbours:")
    assert f"planted {100 * last.difference:+.1f} points" in text
    # the planted model's last layer (2) holds the letter 2 nt before the token: at d = 5 right it is no better
    assert "above it: none" in text
    assert "above it: planted" in S.paired_sentence(paired, d=2, side="left")
    with pytest.raises(ParameterError, match="d=4"):
        S.paired_sentence(paired, d=4)
    with pytest.raises(ParameterError, match="paired"):
        S.paired_sentence(paired.drop(columns="reference"))


def test_versus_initial_without_step0_twins_is_an_empty_table_and_a_sentence(planted_result):
    empty = S.versus_initial(planted_result, None)
    assert empty.empty and {"trained", "initial", "difference"} <= set(empty.columns)
    assert "no model" in S.step0_sentence(empty).lower()
