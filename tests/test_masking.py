"""Masked-token probes: batching and bookkeeping on tiny models, marginalisation on models with known output."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from dnalm_utils import masking as MK
from dnalm_utils import models as M
from dnalm_utils import tokenization as T
from dnalm_utils.errors import ParameterError
from dnalm_utils.adapters import ModuleAdapter, NotApplicable
from dnalm_utils.pretraining import zoo_config
from tiny_modules import ConstantModel, MixingModel, Spy


def constant_lm(tokenizer, token: str):
    return ModuleAdapter(ConstantModel(tokenizer.vocab_size, tokenizer.token_to_id[token]), tokenizer)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return M.load_model(M.make_tiny_dnabert(tmp_path_factory.mktemp("m") / "tiny4", k=4, max_positions=128))


def _windows(n=6, length=60, seed=0):
    rng = np.random.default_rng(seed)
    return ["".join(rng.choice(list("ACGT"), length)) for _ in range(n)]


def test_span_sweep_bookkeeping(tiny):
    ms = [1, 3, 4, 7]
    sweep = MK.span_mask_sweep(tiny, _windows(), ms, seed=1)
    assert len(sweep) == 6 * sum(ms)
    assert sweep.groupby(["window", "m"]).size().tolist() == ms * 6
    enc = tiny.tokenizer.encode(_windows()[0]).ids
    first = sweep[(sweep.window == 0) & (sweep.m == 3)]
    a = int(first.start.iloc[0])
    assert 1 <= a and a + 3 <= len(enc) - 1  # an unmasked token on each side
    assert first.true_id.tolist() == enc[a : a + 3].tolist()
    assert (sweep.nll > 0).all() and ((sweep.correct <= sweep.top5)).all()
    again = MK.span_mask_sweep(tiny, _windows(), ms, seed=1)
    assert again.equals(sweep)  # same seed, same numbers


def test_span_sweep_errors(tiny):
    with pytest.raises(ParameterError, match="m >= 1|must be >= 1"):
        MK.span_mask_sweep(tiny, _windows(), [0])
    with pytest.raises(ParameterError, match="too few"):
        MK.span_mask_sweep(tiny, ["ACGTACG"], [4])


def test_constant_model_scores_on_known_sequences():
    tok = T.OverlappingKmerTokenizer(4)
    lm = constant_lm(tok, "AAAA")
    sweep = MK.span_mask_sweep(lm, ["A" * 40, "C" * 40], [1, 5], seed=0)
    assert sweep[sweep.window == 0].correct.all() and not sweep[sweep.window == 1].correct.any()


@pytest.mark.parametrize("tok", [T.OverlappingKmerTokenizer(4), T.NonOverlappingKmerTokenizer(3), T.NucleotideTokenizer()],
                         ids=lambda t: t.scheme)
def test_block_eval_marginals(tok):
    first = tok.vocab[5] if tok.scheme != "nucleotide" else "A"
    assert set(first) == {"A"}
    lm = constant_lm(tok, first)
    windows = ["A" * 60, "C" * 60]
    blocks = MK.choose_blocks([60, 60], 4, margin=10, seed=0)
    res = MK.nucleotide_block_eval(lm, windows, blocks)
    assert res.probs.shape == (8, 4) and np.allclose(res.probs.sum(1), 1)
    assert (res.probs[res.window == 0, 0] > 0.99).all()  # all-A window: A with certainty
    m0, m1 = MK.block_metrics(res.probs[:4], res.truth[:4]), MK.block_metrics(res.probs[4:], res.truth[4:])
    assert m0["accuracy"] == 1 and m0["bits"] < 0.01 and m1["accuracy"] == 0
    expected = {"overlapping": 4 + 4 - 1, "nonoverlapping": None, "nucleotide": 4}[tok.scheme]
    if expected:
        assert (res.masked_tokens == expected).all()


def test_block_eval_on_tiny_model_is_a_distribution(tiny):
    windows = _windows(4, 80)
    blocks = MK.choose_blocks([80] * 4, 1, margin=8, seed=3)
    res = MK.nucleotide_block_eval(tiny, windows, blocks)
    assert res.probs.shape == (4, 4) and np.allclose(res.probs.sum(1), 1)
    assert [windows[w][s] for w, (s, _) in enumerate(blocks)] == ["ACGT"[t] for t in res.truth]


def test_choose_blocks_respects_margins():
    blocks = MK.choose_blocks([50] * 200, 3, margin=7, seed=0)
    assert blocks[:, 0].min() >= 7 and blocks[:, 1].max() <= 43 and (blocks[:, 1] - blocks[:, 0] == 3).all()
    with pytest.raises(ParameterError, match="too short"):
        MK.choose_blocks([10], 3, margin=5)


def test_own_masking_eval_rates(tiny):
    """The masked share matches DNABERT masking's expected rate within its sampling tolerance: token t is chosen
    when a centre (rate c) sits at t - o for o in {0} + offsets, inside the window's tokens."""
    cfg = zoo_config("overlap4")
    n_win, length = 100, 120
    out = MK.own_masking_eval(tiny, _windows(n_win, length), cfg, seed=0)
    n_tok = length - 4 + 1
    t = np.arange(n_tok)
    cover = sum(((t - o >= 0) & (t - o < n_tok)).astype(int) for o in [0, *cfg.offsets])
    expected = float(np.mean(1 - (1 - cfg.centre_rate) ** cover))
    span = 1 + len(cfg.offsets)  # chosen tokens come in spans, so about n / span independent draws
    tol = 4 * np.sqrt(expected * (1 - expected) * span / (n_win * n_tok))
    assert out["masked_fraction"] == pytest.approx(expected, abs=tol)  # about 0.13 +- 0.02
    assert out["perplexity"] == pytest.approx(np.exp(out["nll"]))
    assert out["accuracy"] <= out["top5"]
    plain = int((~tiny.tokenizer.is_special).sum())  # the 4-mers: no N token in an overlapping vocabulary
    assert plain == 4**4 and out["chance_accuracy"] == pytest.approx(1 / plain) and out["chance_perplexity"] == plain
    assert "prior_accuracy" not in out


def test_own_masking_eval_prior_equals_a_brute_force_count(tiny):
    """The prior rows: the corpus's most frequent token scored on the same masked tokens, and the perplexity of
    its smoothed token frequencies, recomputed here from the masked tokens the model was asked for."""
    import torch

    from dnalm_utils.pretraining import mask_tokens

    cfg = zoo_config("overlap4")
    windows = _windows(40, 90, seed=5)
    tok = tiny.tokenizer
    counts = T.token_counts(tok, _windows(30, 200, seed=6))
    out = MK.own_masking_eval(tiny, windows, cfg, seed=3, prior_counts=counts)
    ids, att = tiny.frame([tok.encode(w).ids for w in windows])  # the same draw as own_masking_eval's
    special = torch.from_numpy(tok.is_special)[torch.from_numpy(ids)] | (torch.from_numpy(att) == 0)
    _, labels = mask_tokens(torch.from_numpy(ids), special, centre_rate=cfg.centre_rate, offsets=cfg.offsets,
                            mask_id=tok.mask_id, random_ids=torch.arange(1), generator=torch.Generator().manual_seed(3))
    true = labels[labels != -100].numpy()
    assert len(true) == out["masked_tokens"]
    plain = ~tok.is_special & np.array([set(t) <= set("ACGT") for t in tok.vocab])
    top = max((i for i in range(tok.vocab_size) if plain[i]), key=lambda i: (counts[i], -i))
    assert out["prior_accuracy"] == pytest.approx(np.mean(true == top))
    p = np.where(plain, counts + 0.5, 0) / np.where(plain, counts + 0.5, 0).sum()
    assert out["prior_perplexity"] == pytest.approx(np.exp(-np.mean(np.log(p[true]))))
    with pytest.raises(ParameterError, match="prior_counts"):
        MK.own_masking_eval(tiny, windows, cfg, prior_counts=counts[:-1])


# ------------------------------------------------------------------------------------------------
# Overlap oracle, flank agreement, hidden nucleotides
# ------------------------------------------------------------------------------------------------
def _brute_oracle(tok, seq, a, m, guess):
    """Reconstruct masked k-mers a..a+m-1 letter by letter from the unmasked neighbours (strings only)."""
    k, n_tok = tok.k, len(seq) - tok.k + 1
    masked = np.zeros(n_tok, dtype=bool)
    masked[a : a + m] = True
    shown = T.revealed_nucleotides(masked, k, len(seq))
    letters = [seq[p] if shown[p] else guess for p in range(len(seq))]
    return [tok.token_to_id["".join(letters[j : j + k])] for j in range(a, a + m)], shown


def _brute_agreement(tok, seq, a, m, pred):
    k, n_tok = tok.k, len(seq) - tok.k + 1
    masked = np.zeros(n_tok, dtype=bool)
    masked[a : a + m] = True
    shown = T.revealed_nucleotides(masked, k, len(seq))
    out = []
    for j, pid in zip(range(a, a + m), pred):
        kmer = tok.vocab[pid]
        rev = [o for o in range(k) if shown[j + o]]
        out.append(np.nan if not rev else sum(kmer[o] == seq[j + o] for o in rev) / len(rev))
    return out


@pytest.mark.parametrize("k", [3, 4, 5, 6])
def test_oracle_agreement_and_hidden_positions_match_brute_force(k):
    tok = T.OverlappingKmerTokenizer(k)
    rng = np.random.default_rng(k)
    windows = _windows(12, 30, seed=k)
    n_tok = 30 - k + 1
    guess = np.array([0.1, 0.2, 0.4, 0.3])  # argmax G
    per_window = rng.dirichlet(np.ones(4), size=len(windows))
    for m in range(1, k + 4):
        starts = rng.integers(1, n_tok - m, size=len(windows))
        starts[:2] = [0, n_tok - m]  # window edges: a missing neighbour reveals nothing
        oracle = MK.overlap_oracle(tok, windows, starts, m, guess_probs=guess)
        assert oracle.shape == (len(windows), m)
        oracle_w = MK.overlap_oracle(tok, windows, starts, m, guess_probs=per_window)
        pred = rng.integers(5, tok.vocab_size, size=(len(windows), m))
        agree = MK.flank_agreement(tok, windows, starts, m, pred)
        for i, (seq, a) in enumerate(zip(windows, starts)):
            ids, shown = _brute_oracle(tok, seq, a, m, "G")
            assert oracle[i].tolist() == ids
            assert oracle_w[i].tolist() == _brute_oracle(tok, seq, a, m, "ACGT"[per_window[i].argmax()])[0]
            np.testing.assert_array_equal(agree[i], _brute_agreement(tok, seq, a, m, pred[i]))
            if 1 <= a and a + m <= n_tok - 1:  # away from the edges: the closed-form hidden positions
                hidden = np.flatnonzero(~shown[a : a + m + k - 1])
                assert hidden.tolist() == T.hidden_span_positions(m, k).tolist()
                assert (a + hidden).tolist() == MK._hidden_positions(tok, tok.encode(seq).spans, a, m).tolist()
        # the true ids agree with the flanks everywhere
        true = np.stack([tok.encode(s).ids[a : a + m] for s, a in zip(windows, starts)])
        full = MK.flank_agreement(tok, windows, starts, m, true)
        assert np.all((full == 1) | np.isnan(full))
        interior = (starts >= 1) & (starts + m <= n_tok - 1)
        assert np.isnan(full[interior]).any() == (m >= 2 * k - 1)  # a token with no revealed letter


@pytest.mark.parametrize("k", [4, 6])
def test_copy_plus_context_oracle_fills_exactly_the_hidden_letters(k):
    """With a hidden-letter model that knows the truth the oracle is always right; with one that is always wrong it
    is right exactly on the tokens holding no hidden letter; the hidden blocks it is asked about are the hidden
    nucleotides."""
    tok = T.OverlappingKmerTokenizer(k)
    rng = np.random.default_rng(k)
    windows = _windows(10, 32, seed=k + 7)
    n_tok = 32 - k + 1
    asked = []

    def truth_model(wins, blocks, flip=0):
        asked.append(np.asarray(blocks))
        letters = np.concatenate([T.nucleotide_codes(w[s:e]) for w, (s, e) in zip(wins, blocks)])
        return np.eye(4)[(letters + flip) % 4]

    for m in range(1, k + 3):
        starts = rng.integers(1, n_tok - m, size=len(windows))  # away from the edges
        true = np.stack([tok.encode(w).ids[a : a + m] for w, a in zip(windows, starts)])
        asked.clear()
        right = MK.hidden_letter_probs(tok, windows, starts, m, hidden_model=truth_model, guess_probs=[0.1, 0.2, 0.3, 0.4])
        assert right.shape == (len(windows), m + k - 1, 4)
        assert np.array_equal(MK.overlap_oracle(tok, windows, starts, m, guess_probs=right), true)
        hidden = T.hidden_span_positions(m, k)
        if m < k:
            assert not asked  # nothing hidden: the model is never called
            continue
        assert np.array_equal(asked[0], np.stack([starts + hidden[0], starts + hidden[-1] + 1], 1))
        wrong = MK.hidden_letter_probs(tok, windows, starts, m, hidden_model=lambda w, b: truth_model(w, b, flip=1),
                                       guess_probs=[0.25] * 4)
        oracle = MK.overlap_oracle(tok, windows, starts, m, guess_probs=wrong)
        clean = np.array([not any(j <= h < j + k for h in hidden) for j in range(m)])  # tokens with no hidden letter
        assert np.array_equal(oracle == true, np.broadcast_to(clean, true.shape))


def test_sweep_oracle_items_pair_model_and_oracle_on_the_same_spans():
    tok = T.OverlappingKmerTokenizer(4)
    lm = constant_lm(tok, "ACGT")
    windows = _windows(8, 40, seed=3)
    perfect = lambda w, b: np.eye(4)[np.concatenate([T.nucleotide_codes(x[s:e]) for x, (s, e) in zip(w, b)])]  # noqa: E731
    t = MK.sweep_with_references(lm, windows, [2, 5], name="c", guess_probs=[0.25] * 4, hidden_model=perfect)
    items = t.oracle_items
    assert set(items.m) == {2, 5} and len(items) == 2 * len(windows) and (items.model == "c").all()
    assert (items.oracle_accuracy == 1.0).all()  # copying + the true hidden letters rebuilds every token
    summary = t.summary.set_index("m")
    for m in (2, 5):
        part = items[items.m == m]
        assert part.model_accuracy.mean() == pytest.approx(summary.loc[m, "accuracy"])
        assert summary.loc[m, "oracle_accuracy"] == 1.0


@pytest.mark.parametrize("k", [3, 4, 5, 6])
def test_sweep_hidden_rows_sit_on_the_hidden_nucleotides(k):
    tok = T.OverlappingKmerTokenizer(k)
    lm = constant_lm(tok, "A" * k)
    windows = _windows(5, 40, seed=1)
    ms = list(range(1, k + 4))
    sweep, hidden = MK.span_mask_sweep(lm, windows, ms, seed=2, nucleotide_level=True)
    starts = sweep[sweep.position == 0].set_index(["window", "m"]).start
    for (w, m), a in starts.items():
        rows = hidden[(hidden.window == w) & (hidden.m == m)]
        _, shown = _brute_oracle(tok, windows[w], a, m, "A")
        expect = np.flatnonzero(~shown[a : a + m + k - 1]) + a
        assert rows.position.tolist() == expect.tolist() and rows.offset.tolist() == (expect - a).tolist()
        assert rows.truth.tolist() == ["ACGT".index(windows[w][p]) for p in expect]
    assert np.allclose(hidden[["p_A", "p_C", "p_G", "p_T"]].to_numpy(), [1, 0, 0, 0], atol=1e-4)  # always AAA..A (logit gap 20)
    summary = MK.summarize_hidden(hidden)
    assert summary.m.tolist() == ms
    assert summary.hidden_per_window.tolist() == [T.hidden_nucleotides(m, k) for m in ms]
    assert summary[summary.m < k].accuracy.isna().all()
    assert summary[summary.m >= k].accuracy.iloc[-1] == pytest.approx((hidden[hidden.m == k + 3].truth == 0).mean())
    plain = MK.span_mask_sweep(lm, windows, ms, seed=2)
    assert plain.equals(sweep)  # the default output is unchanged


def test_sweep_hidden_rows_other_schemes():
    tok = T.NonOverlappingKmerTokenizer(3)
    lm = constant_lm(tok, "AAA")
    _, hidden = MK.span_mask_sweep(lm, ["A" * 60, "C" * 60], [1, 2], seed=0, nucleotide_level=True)
    assert MK.summarize_hidden(hidden).hidden_per_window.tolist() == [3, 6]  # every masked nucleotide is hidden
    assert hidden[hidden.window == 0].correct.all() and not hidden[hidden.window == 1].correct.any()


class CopyModel(torch.nn.Module):
    """Predicts, at every [MASK], the k-mer read off the unmasked overlapping neighbours (hidden letters: A)."""

    def __init__(self, tok, guess="A"):
        super().__init__()
        self.tok, self.guess = tok, guess

    def forward(self, input_ids, attention_mask=None):
        tok, k = self.tok, self.tok.k
        logits = torch.zeros(*input_ids.shape, tok.vocab_size)
        for r, row in enumerate(input_ids.tolist()):
            body = row[1 : row.index(tok.sep_id)]
            letters = [None] * (len(body) + k - 1)
            for i, t in enumerate(body):
                if t != tok.mask_id:
                    letters[i : i + k] = tok.vocab[t]
            for i, t in enumerate(body):
                if t == tok.mask_id:
                    kmer = "".join(c or self.guess for c in letters[i : i + k])
                    logits[r, i + 1, tok.token_to_id[kmer]] = 20.0
        return SimpleNamespace(logits=logits)


def copy_lm(k):
    tok = T.OverlappingKmerTokenizer(k)
    return ModuleAdapter(CopyModel(tok), tok)


@pytest.mark.parametrize("k", [3, 4, 6])
def test_copy_model_agrees_with_flanks_and_equals_the_oracle(k):
    lm, windows = copy_lm(k), _windows(6, 40, seed=k)
    ms = list(range(1, k + 4))
    sweep = MK.span_mask_sweep(lm, windows, ms, seed=0)
    summary = MK.summarize_sweep(sweep, span=True).set_index("m")
    assert (summary.loc[[m for m in ms if m < k], ["accuracy", "span_accuracy"]] == 1).all().all()
    for m in ms:
        win, starts, pred, true = MK.span_predictions(sweep, m)
        wins = [windows[w] for w in win]
        agree = MK.flank_agreement(lm.tokenizer, wins, starts, m, pred)
        assert np.all((agree == 1) | np.isnan(agree))
        oracle = MK.overlap_oracle(lm.tokenizer, wins, starts, m, guess_probs=[0.4, 0.2, 0.2, 0.2])
        assert (oracle == pred).all()


# ------------------------------------------------------------------------------------------------
# Flank perturbation
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("m", [1, 3, 6])
def test_flank_perturbation_inputs_and_copy_model(m):
    k = 4
    lm = copy_lm(k)
    tok = lm.tokenizer
    lm.model = Spy(lm.model)
    windows = _windows(10, 40, seed=m)
    table, summary = MK.flank_perturbation(lm, windows, m, seed=5, batch_size=8)
    assert len(table) == 10 and summary["windows"] == 10
    rows = torch.cat([torch.nn.functional.pad(b, (0, 64 - b.shape[1])) for b in lm.model.seen]).numpy()
    assert rows.shape[0] == 20  # original and perturbed copy of each window, in the same batches
    for i, r in table.iterrows():
        seq, a, p = windows[r.window], r.start, r.position
        altered = seq[:p] + r.substitute + seq[p + 1 :]
        assert r.original == seq[p] != r.substitute
        assert sum(x != y for x, y in zip(seq, altered)) == 1
        assert p - a < k - 1 or p - a >= m  # a letter the flanks reveal
        orig, pert = rows[2 * i], rows[2 * i + 1]
        cols = np.arange(a, a + m) + 1
        assert (orig[cols] == tok.mask_id).all() and (pert[cols] == tok.mask_id).all()
        changed = set((np.flatnonzero(orig != pert) - 1).tolist())
        n_tok = len(seq) - k + 1
        assert changed == {j for j in range(max(0, p - k + 1), min(p, n_tok - 1) + 1) if not a <= j < a + m} and changed
        assert orig[1 : len(seq) - k + 2].tolist() == np.where(np.isin(np.arange(len(seq) - k + 1), cols - 1), tok.mask_id, tok.encode(seq).ids).tolist()
    # the copy model reads the flank: it always follows the altered letter, and the genome on the original
    assert summary["follows_flank"] == 1 and summary["follows_genome"] == 0 and summary["original_follows_genome"] == 1
    assert table.changed.all() and not table.neither.any()


def test_flank_perturbation_seed_and_errors(tiny):
    windows = _windows(6, 50)
    t1, s1 = MK.flank_perturbation(tiny, windows, 2, seed=3)
    t2, s2 = MK.flank_perturbation(tiny, windows, 2, seed=3)
    assert t1.equals(t2) and s1 == s2
    assert not t1.equals(MK.flank_perturbation(tiny, windows, 2, seed=4)[0])
    sweep = MK.span_mask_sweep(tiny, windows, [2], seed=3)
    assert t1.start.tolist() == sweep[sweep.position == 0].start.tolist()  # same spans as the sweep
    assert set(t1.pred_original.str.split().str.len()) == {2}
    with pytest.raises(ParameterError, match="only defined for overlapping"):
        MK.flank_perturbation(constant_lm(T.NonOverlappingKmerTokenizer(3), "AAA"), windows)
    with pytest.raises(ParameterError, match="must be >= 1"):
        MK.flank_perturbation(tiny, windows, 0)
    with pytest.raises(ParameterError, match="too few"):
        MK.flank_perturbation(tiny, ["ACGTACGT"], 4)


# ------------------------------------------------------------------------------------------------
# Logit lens and attention shares
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    return M.make_tiny_dnabert(tmp_path_factory.mktemp("lens") / "tiny4", k=4, max_positions=128, layers=3)


@pytest.mark.parametrize("amp", [False, True])
def test_layer_readout_last_layer_is_the_prediction(tiny_folder, amp):
    lm = M.load_model(tiny_folder)
    windows = _windows(12, 60, seed=7)
    lens, pred = MK.layer_readout(lm, windows, 3, seed=2, amp=amp, batch_size=5, return_predictions=True)
    assert lens.layer.tolist() == [0, 1, 2, 3] and (lens.tokens == 36).all() and pred.shape == (4, 36)
    sweep = MK.span_mask_sweep(lm, windows, [3], seed=2, amp=amp)
    assert (pred[-1] == sweep.pred_id.to_numpy()).all()  # token by token
    plain = MK.summarize_sweep(sweep).iloc[0]
    last = lens.iloc[-1]
    assert last.accuracy == plain.accuracy and last.top5 == plain.top5
    assert last.nll == pytest.approx(plain.nll, abs=1e-5 if not amp else 2e-3)
    assert lens.equals(MK.layer_readout(lm, windows, 3, seed=2, amp=amp, batch_size=5))


def test_layer_readout_esm_and_refusals(tmp_path):
    nt = M.load_model(M.make_tiny_nt(tmp_path / "nt", k=3))
    windows = _windows(6, 60, seed=1)
    lens = MK.layer_readout(nt, windows, 2, seed=0, amp=False)
    plain = MK.summarize_sweep(MK.span_mask_sweep(nt, windows, [2], seed=0, amp=False)).iloc[0]
    assert len(lens) == 3 and lens.iloc[-1].nll == pytest.approx(plain.nll, abs=1e-5)
    base = M.load_model(M.make_tiny_dnabert(tmp_path / "b", k=4), head="base")
    with pytest.raises(NotApplicable, match="the logit lens is not applicable to b: it was loaded with head='base'"):
        MK.layer_readout(base, windows, 1)
    with pytest.raises(NotApplicable, match="not applicable to module: the module family does not provide layer readout"):
        MK.layer_readout(constant_lm(T.OverlappingKmerTokenizer(4), "AAAA"), windows, 1)
    with pytest.raises(NotApplicable, match="masked-span sweep is not applicable to b: it was loaded with head='base'"):
        MK.span_mask_sweep(base, windows, [1])
    causal = ModuleAdapter(ConstantModel(10, 1), T.NucleotideTokenizer(), objective="causal")
    with pytest.raises(NotApplicable, match="a causal .* model: it has no masked-token head"):
        MK.span_mask_sweep(causal, windows, [1])
    with pytest.raises(ParameterError, match="must be >= 1"):
        MK.layer_readout(nt, windows, 0)


def test_attention_shares_sum_to_one_and_sdpa_refused(tiny_folder):
    windows = _windows(8, 60, seed=3)
    with pytest.raises(ParameterError, match='attn_implementation="eager"'):
        MK.attention_shares(M.load_model(tiny_folder), windows, 2)
    lm = M.load_model(tiny_folder, attn_implementation="eager")
    shares = MK.attention_shares(lm, windows, 2, seed=1, batch_size=3)
    cols = [f"share_{c}" for c in MK.ATTENTION_KEYS]
    assert len(shares) == 3 * 2 and shares.layer.tolist() == [1, 1, 2, 2, 3, 3]
    assert np.allclose(shares[cols].sum(axis=1), 1, atol=1e-9) and (shares[cols] >= 0).all().all()
    uniform = shares[[f"uniform_{c}" for c in MK.ATTENTION_KEYS]]
    assert np.allclose(uniform.sum(axis=1), 1) and (uniform.nunique() == 1).all()  # one reference for every head
    assert shares.equals(MK.attention_shares(lm, windows, 2, seed=1, batch_size=3))  # same seed, same numbers
    other = MK.attention_shares(lm, windows, 2, seed=1, batch_size=8)  # batching changes only rounding
    assert np.allclose(other[cols], shares[cols], atol=2e-3)
    with pytest.raises(ParameterError, match="must be >= 1"):
        MK.attention_shares(lm, windows, 0)


class UniformAttention(torch.nn.Module):
    """Every query spreads its attention evenly over the non-padding keys (one layer, one head)."""

    def forward(self, input_ids, attention_mask=None, output_attentions=False):
        a = attention_mask.float()[:, None, None, :].expand(-1, 1, input_ids.shape[1], -1)
        return SimpleNamespace(attentions=(a / a.sum(-1, keepdim=True),))


def test_attention_categories_on_known_attention():
    k, m, n_nt = 4, 2, 50
    tok = T.OverlappingKmerTokenizer(k)
    lm = ModuleAdapter(UniformAttention(), tok, capabilities=["attention"])
    windows = _windows(30, n_nt, seed=2)
    shares = MK.attention_shares(lm, windows, m, seed=4).iloc[0]
    starts = MK.span_mask_sweep(constant_lm(tok, "AAAA"), windows, [m], seed=4).query("position == 0").start.to_numpy()
    n_tok = n_nt - k + 1
    overlap = np.minimum(k - 1, starts) + np.minimum(k - 1, n_tok - starts - m)
    assert shares.share_overlapping == pytest.approx((overlap / (n_tok + 2)).mean())
    assert shares.share_masked == pytest.approx(m / (n_tok + 2))
    assert shares.share_special == pytest.approx(2 / (n_tok + 2))
    for key in MK.ATTENTION_KEYS:  # attention that is uniform equals the uniform reference, class by class
        assert shares[f"uniform_{key}"] == pytest.approx(shares[f"share_{key}"])

    class NoAttention(torch.nn.Module):
        def forward(self, input_ids, attention_mask=None, output_attentions=False):
            return SimpleNamespace(attentions=())

    lm.model = NoAttention()
    with pytest.raises(ParameterError, match='attn_implementation="eager"'):
        MK.attention_shares(lm, windows, m)


# ------------------------------------------------------------------------------------------------
# Bad input
# ------------------------------------------------------------------------------------------------
def test_overlap_helpers_reject_bad_input():
    tok = T.OverlappingKmerTokenizer(4)
    windows = _windows(3, 30)
    g = [0.25, 0.25, 0.25, 0.25]
    with pytest.raises(ParameterError, match="must be >= 1"):
        MK.overlap_oracle(tok, windows, [1, 1, 1], 0, guess_probs=g)
    with pytest.raises(ParameterError, match="not inside"):
        MK.overlap_oracle(tok, windows, [1, 1, 25], 3, guess_probs=g)  # 27 tokens: 25 + 3 > 27
    with pytest.raises(ParameterError, match="not inside"):
        MK.overlap_oracle(tok, ["ACG", *windows[1:]], [0, 1, 1], 1, guess_probs=g)  # shorter than k
    with pytest.raises(ParameterError, match="one start per window"):
        MK.overlap_oracle(tok, windows, [1, 1], 2, guess_probs=g)
    with pytest.raises(ParameterError, match="guess_probs"):
        MK.overlap_oracle(tok, windows, [1, 1, 1], 2, guess_probs=[0.5, 0.5])
    with pytest.raises(ParameterError, match="expected m=2"):
        MK.flank_agreement(tok, windows, [1, 1, 1], 2, np.zeros((3, 3), dtype=int) + 5)
    with pytest.raises(ParameterError, match="only defined for overlapping"):
        MK.overlap_oracle(T.NucleotideTokenizer(), windows, [1, 1, 1], 2, guess_probs=g)
    with pytest.raises(ParameterError, match="no spans with m=5"):
        MK.span_predictions(MK.span_mask_sweep(constant_lm(tok, "AAAA"), windows, [1]), 5)
    with pytest.raises(ParameterError, match="batch_size"):
        MK.span_mask_sweep(constant_lm(tok, "AAAA"), windows, [1], batch_size=0)


# ------------------------------------------------------------------------------------------------
# What the model is fed; chapter tables
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("scheme", ["overlapping", "nonoverlapping", "nucleotide"])
def test_masking_never_touches_special_tokens_or_padding(scheme):
    tok = {"overlapping": T.OverlappingKmerTokenizer(4), "nonoverlapping": T.NonOverlappingKmerTokenizer(3),
           "nucleotide": T.NucleotideTokenizer()}[scheme]
    lm = constant_lm(tok, tok.vocab[-1])
    lm.model = Spy(lm.model)
    rng = np.random.default_rng(0)
    windows = ["".join(rng.choice(list("ACGT"), n)) for n in (30, 45, 61, 38)]  # unequal lengths: padding
    ms = [1, 2, 5]
    sweep = MK.span_mask_sweep(lm, windows, ms, seed=3, batch_size=5)
    rows = [r for b in lm.model.seen for r in b.numpy()]
    starts = sweep[sweep.position == 0][["window", "m", "start"]].to_numpy()
    assert len(rows) == len(starts) == len(windows) * len(ms)
    for row, (w, m, a) in zip(rows, starts):
        ids = tok.encode(windows[w]).ids
        n = len(ids)
        assert row[0] == tok.cls_id and row[n + 1] == tok.sep_id and (row[n + 2 :] == tok.pad_id).all()
        body = row[1 : n + 1]
        assert (np.flatnonzero(body == tok.mask_id) == np.arange(a, a + m)).all()  # exactly the span
        keep = np.ones(n, dtype=bool)
        keep[a : a + m] = False
        assert (body[keep] == ids[keep]).all() and 1 <= a and a + m <= n - 1


@pytest.mark.parametrize("k", [3, 4, 6])
def test_sweep_with_references_on_the_copy_model(k):
    lm, windows = copy_lm(k), _windows(8, 40, seed=k)
    ms = list(range(1, k + 4))
    t = MK.sweep_with_references(lm, windows, ms, name="copy", guess_probs=[0.4, 0.2, 0.2, 0.2], seed=1)
    s = t.summary.set_index("m")
    assert s.model.eq("copy").all() and s.k.eq(k).all() and s.chance.eq(1 / 4**k).all()
    assert (s.accuracy == s.oracle_accuracy).all()  # the copy model guesses A, the oracle the commonest base A
    assert (s.flank_agreement == 1).all()
    assert s.leak_bound.tolist() == [T.overlap_only_token_accuracy(m, k) for m in ms]
    assert s.hidden_per_window.tolist() == [T.hidden_nucleotides(m, k) for m in ms]
    pos = t.by_position
    assert pos.groupby("m").size().tolist() == ms
    assert np.allclose(pos.groupby("m").accuracy.mean(), s.accuracy)  # same number of spans at every position
    assert np.allclose(pos.groupby("m").leak_bound.mean(), s.leak_bound)


def test_sweep_with_references_other_schemes_have_no_overlap_references():
    tok = T.NonOverlappingKmerTokenizer(3)
    t = MK.sweep_with_references(constant_lm(tok, "AAA"), _windows(4, 60), [1, 2], name="n", guess_probs=[1, 0, 0, 0])
    assert t.summary[["leak_bound", "oracle_accuracy", "flank_agreement"]].isna().all().all()
    assert t.summary.hidden_per_window.tolist() == [3, 6]


@pytest.mark.parametrize("k", [3, 4, 5, 6])
def test_span_hidden_blocks_are_the_sweeps_hidden_nucleotides(k):
    lm, windows = constant_lm(T.OverlappingKmerTokenizer(k), "A" * k), _windows(6, 45, seed=k)
    ms = list(range(1, k + 4))
    _, hidden = MK.span_mask_sweep(lm, windows, ms, seed=5, nucleotide_level=True)
    blocks = MK.span_hidden_blocks(windows, ms, k, seed=5)
    assert sorted(blocks) == [m for m in ms if m >= k]
    for m, b in blocks.items():
        assert b.shape == (len(windows), 2) and ((b[:, 1] - b[:, 0]) == m - k + 1).all()
        for w in range(len(windows)):
            pos = hidden[(hidden.m == m) & (hidden.window == w)].position.tolist()
            assert pos == list(range(b[w, 0], b[w, 1]))


def test_same_nucleotide_scores_match_the_reference_sweep(tiny, tmp_path):
    k, windows = 4, _windows(10, 60, seed=9)
    ms = list(range(1, k + 3))
    _, hidden = MK.span_mask_sweep(tiny, windows, ms, seed=2, nucleotide_level=True, amp=False)
    blocks = MK.span_hidden_blocks(windows, ms, k, seed=2)
    nuc = M.load_model(M.make_tiny_nt(tmp_path / "nt", k=3))
    scores = MK.same_nucleotide_scores({"tiny": tiny, "nt": nuc}, windows, blocks, amp=False)
    assert scores.model.tolist() == ["tiny", "nt"] * len(blocks) and scores.h.tolist() == [1, 1, 2, 2, 3, 3]
    assert (scores.nucleotides == scores.h * len(windows)).all()
    mine = scores[scores.model == "tiny"].set_index("m")
    hid = MK.summarize_hidden(hidden).set_index("m")
    for m in blocks:  # the overlapping model masks the same m tokens either way
        assert mine.tokens_masked[m] == m
        # both in float32 on the same masked inputs: equal up to float32 rounding of other batch shapes
        assert mine.bits[m] == pytest.approx(hid.bits[m], abs=1e-5)
        assert mine.accuracy[m] == hid.accuracy[m]


def test_block_baselines_rows():
    from dnalm_utils import ngram

    windows = _windows(20, 40, seed=1)
    blocks = MK.choose_blocks([40] * 20, 2, margin=5, seed=0)
    counts = ngram.KmerCounts(_windows(50, 200, seed=2), max_len=8)
    rows = MK.block_baselines(windows, blocks, counts=counts, order=3, prior=[0.1, 0.2, 0.3, 0.4])
    assert [r["model"] for r in rows] == ["two-sided n-gram (order 3)", "corpus base frequencies", "chance"]
    truth = ngram.block_truth(windows, blocks)
    expect = MK.block_metrics(ngram.two_sided_block_probs(counts, windows, blocks, order=3), truth)
    assert rows[0]["accuracy"] == expect["accuracy"] and rows[0]["bits"] == expect["bits"]
    assert rows[1]["accuracy"] == pytest.approx((truth == 3).mean())  # always T
    assert rows[2]["nucleotides"] == 40


def test_max_span():
    tok = T.OverlappingKmerTokenizer(4)
    assert MK.max_span(tok, ["A" * 20, "A" * 12]) == 12 - 4 + 1 - 2
    MK.span_mask_sweep(constant_lm(tok, "AAAA"), ["A" * 20, "A" * 12], [7])  # fits
    with pytest.raises(ParameterError, match="too few"):
        MK.span_mask_sweep(constant_lm(tok, "AAAA"), ["A" * 20, "A" * 12], [8])


def test_a_window_longer_than_the_position_table_is_a_clear_error(tiny):
    """tiny: DNABERT-4 with 128 positions = 126 tokens + [CLS]/[SEP]; 140 nt give 137 tokens."""
    long_window = _windows(1, 140, seed=9)
    assert tiny.max_tokens == 126
    with pytest.raises(ParameterError, match=r"window gives 137 tokens \(plus 2 special\), more than tiny4's "
                                             r"126-token limit \(absolute positions\).*window_length"):
        MK.span_mask_sweep(tiny, long_window, [1])


# ------------------------------------------------------------------------------------------------
# Trained against step 0
# ------------------------------------------------------------------------------------------------
def _probe_tables(models, acc_m1, flank, same_acc, seed=0):
    """Minimal chapter-3 tables for ``models``: a sweep summary (m 1, 2), same-nucleotide scores (m 4, 5) and
    perturbation summaries (m 1), with the given per-model values and deterministic others."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    summary = pd.DataFrame([{"model": n, "m": m, "accuracy": acc_m1[i] if m == 1 else rng.random(),
                             "flank_agreement": rng.random(), "hidden_per_window": 0, "oracle_accuracy": 1.0 - 0.1 * m}
                            for i, n in enumerate(models) for m in (1, 2)])
    same = pd.DataFrame([{"m": m, "h": m - 3, "model": n, "accuracy": same_acc[i] if m == 4 else rng.random(),
                          "bits": 2 * rng.random()} for m in (4, 5) for i, n in enumerate(models)])
    perturbation = pd.DataFrame([{"model": n, "m": 1, "follows_flank": flank[i], "follows_genome": 1 - flank[i]}
                                 for i, n in enumerate(models)])
    return summary, same, perturbation


def test_probe_metrics_from_tables_keep_every_value_and_its_reference():
    import pandas as pd

    summary, same, perturbation = _probe_tables(["a", "b"], [0.9, 0.8], [0.7, 0.6], [0.3, 0.4])
    baselines = pd.DataFrame([{"m": 4, "h": 1, "model": "two-sided n-gram (order 3)", "accuracy": 0.45, "bits": 1.8},
                              {"m": 5, "h": 2, "model": "two-sided n-gram (order 2)", "accuracy": 0.41, "bits": 1.9},
                              {"m": 4, "h": 1, "model": "chance", "accuracy": 0.25, "bits": 2.0}])
    long = MK.probe_metrics_from_tables(summary=summary, same=same, perturbation=perturbation, baselines=baselines)
    assert list(long.columns) == MK.PROBE_METRIC_COLUMNS and not long[["model", "probe", "m", "metric"]].duplicated().any()
    assert len(long) == 2 * len(summary) + 2 * len(same) + 2 * len(perturbation)
    key = long.set_index(["model", "probe", "m", "metric"])
    assert key.loc[("b", MK.SWEEP_PROBE, 1, "accuracy"), "value"] == 0.8
    assert key.loc[("b", MK.SWEEP_PROBE, 2, "accuracy"), "reference_value"] == pytest.approx(0.8)  # the oracle at m=2
    assert key.loc[("a", MK.SAME_PROBE, 5, "bits"), "value"] == same.set_index(["model", "m"]).bits[("a", 5)]
    assert key.loc[("a", MK.SAME_PROBE, 5, "bits"), "reference_value"] == 1.9  # the n-gram at the same m, not chance
    assert key.loc[("b", MK.SAME_PROBE, 4, "accuracy"), ["h", "reference_value"]].tolist() == [1.0, 0.45]
    assert key.loc[("a", MK.PERTURB_PROBE, 1, "follows_flank"), "value"] == 0.7
    assert key.loc[("a", MK.PERTURB_PROBE, 1, "follows_flank"), ["h", "reference_value"]].isna().all()
    assert MK.probe_metrics_from_tables().empty
    with pytest.raises(ParameterError, match="summary lacks"):
        MK.probe_metrics_from_tables(summary=summary.drop(columns="oracle_accuracy"))


def test_probe_versus_initial_is_exactly_trained_minus_initial():
    import pandas as pd

    trained = MK.probe_metrics_from_tables(**dict(zip(("summary", "same", "perturbation"),
                                                      _probe_tables(["a", "b", "hub"], [0.9, 0.8, 0.7], [0.7, 0.6, 0.5],
                                                                    [0.3, 0.4, 0.5], seed=1))))
    initial = MK.probe_metrics_from_tables(**dict(zip(("summary", "same", "perturbation"),
                                                      _probe_tables(["a", "b"], [0.01, 0.02], [0.25, 0.2], [0.26, 0.24],
                                                                    seed=2))))
    dropped = initial[(initial.model == "b") & (initial.probe == MK.SAME_PROBE) & (initial.m == 5)
                      & (initial.metric == "bits")]
    initial = initial.drop(index=dropped.index).sample(frac=1, random_state=3)  # any row order, one row missing
    out = MK.probe_versus_initial(trained, initial)
    assert set(out.model) == {"a", "b"}  # no step-0 twin: left out, not compared
    assert len(out) == (trained.model != "hub").sum()
    keys = ["model", "probe", "m", "metric"]
    t = trained.set_index(keys).value
    i = initial.set_index(keys).value
    for r in out.itertuples():
        k = (r.model, r.probe, r.m, r.metric)
        assert r.trained == t[k]
        if k in i.index:
            assert r.initial == i[k] and r.difference == t[k] - i[k]  # exact, same floats
        else:
            assert np.isnan(r.initial) and np.isnan(r.difference)
    assert out.difference.isna().sum() == 1
    flank = out[(out.metric == "follows_flank")].set_index("model")
    assert flank.difference.to_dict() == pytest.approx({"a": 0.7 - 0.25, "b": 0.6 - 0.2})
    with pytest.raises(ParameterError, match="more than one row"):
        MK.probe_versus_initial(trained, pd.concat([initial, initial]))
    with pytest.raises(ParameterError, match="lacks column"):
        MK.probe_versus_initial(trained, initial.drop(columns="value"))


def _zoo_folder_with_step0(folder, k, init):
    """A zoo-layout model folder (standing for trained weights) with its step-0 twin where training keeps it."""
    from dnalm_utils import pretraining as P

    tok = T.OverlappingKmerTokenizer(k)

    def save(path, seed):
        cfg = P.PretrainConfig(name=f"z{k}", scheme="overlapping", k=k, embedding_init=init, layers=1, hidden=128,
                               heads=2, intermediate=32, max_positions=64, seed=seed)
        return M.save_model(P.build_model(cfg, tok), tok, path)

    save(folder, 1)
    save(folder / P.SNAPSHOTS / "step-0", 0)
    return M.load_model(folder)


# Chance: at m = 1 one masked k-mer covers the altered nucleotide; a prediction that ignores the flank puts there a
# letter unrelated to the substitute, which is one of the 3 letters other than the genome's: 1/4 whichever letter
# the model prefers. 200 windows: binomial sd 0.031, so 0.25 +- 0.12 is about 4 sd. m = 1 token accuracy: chance
# 1/64 for k = 3; an untrained model that keeps predicting a common 3-mer was seen at 0.04 (random init) and 0.005
# (letter sums), so < 0.12 (8x chance) while the copy model is right every time.
@pytest.mark.parametrize("init", ["random", "nucleotide_sum"])
def test_a_step0_twin_is_at_chance_where_a_copying_model_is_far_above(init, tmp_path):
    from dnalm_utils import embeddings as E

    k, windows = 3, _windows(200, 40, seed=11)
    trained = _zoo_folder_with_step0(tmp_path / "over3", k, init)
    twins, na = E.initial_models({"over3": trained}, device="cpu")
    assert list(twins) == ["over3"] and na == []
    args = dict(copy_models=["over3"], m_past_k=1, blocks_by_m=MK.span_hidden_blocks(windows, [k, k + 1], k, seed=0),
                perturbation_m=[1], guess_probs=[0.4, 0.2, 0.2, 0.2], seed=0, batch_size=64)
    initial = MK.probe_metrics(twins, windows, **args)
    copier = MK.probe_metrics({"over3": copy_lm(k)}, windows, **args)  # positive control in the trained slot
    out = MK.probe_versus_initial(copier, initial).set_index(["probe", "m", "metric"])
    flank = out.loc[(MK.PERTURB_PROBE, 1, "follows_flank")]
    acc = out.loc[(MK.SWEEP_PROBE, 1, "accuracy")]
    assert flank.initial == pytest.approx(0.25, abs=0.12) and flank.trained == 1.0
    assert acc.initial < 0.12 and acc.trained == 1.0 and acc.reference_value == 1.0  # the oracle, m < k
    assert flank.difference > 0.6 and acc.difference > 0.85
    assert set(out.reset_index().probe) == {MK.SWEEP_PROBE, MK.SAME_PROBE, MK.PERTURB_PROBE}
    same = out.loc[MK.SAME_PROBE].reset_index()
    assert sorted(same.m.unique()) == [k, k + 1] and same.initial.notna().all()
    text = MK.step0_probe_sentences(out.reset_index(), not_applicable=[], perturbation_m=[1])
    assert f"follow the altered flank in **over3** {100 * flank.initial:.1f} % of windows" in text["step0_perturb"]
    assert "training took that to **over3** 100.0 %" in text["step0_perturb"]
    assert text["step0_sweep_m1"].startswith(f"**over3** {100 * acc.initial:.1f} % → 100.0 %")
    assert text["step0_same_h1"].startswith("h = 1: **over3**") and text["step0_probe_na"] == "Every model of this run has step-0 weights."


def test_step0_probe_sentences_without_twins_say_not_applicable(tiny):
    from dnalm_utils import embeddings as E

    twins, na = E.initial_models({"tiny4": tiny}, device="cpu")  # a DNABERT-format folder: no step-0 weights
    assert twins == {} and [r["model"] for r in na] == ["tiny4"]
    trained = MK.probe_metrics_from_tables(**dict(zip(("summary", "same", "perturbation"),
                                                      _probe_tables(["tiny4"], [0.9], [0.7], [0.3]))))
    out = MK.probe_versus_initial(trained, MK.probe_metrics(twins, _windows(), copy_models=["tiny4"], m_past_k=1,
                                                            blocks_by_m={}, perturbation_m=[1], guess_probs=[0.25] * 4))
    assert out.empty
    text = MK.step0_probe_sentences(out, not_applicable=na, perturbation_m=[1])
    assert text["step0_probe_na"] == "Not applicable for want of step-0 weights: **tiny4**." and "No overlapping model" in text["step0_perturb"]
    assert text["step0_sweep_m1"] == "n/a" and text["step0_same_h1"] == "n/a"


# ---- the n-gram that sees what each model sees -------------------------------------------------------
@pytest.mark.parametrize("tok", [T.OverlappingKmerTokenizer(4), T.NonOverlappingKmerTokenizer(3),
                                 T.NucleotideTokenizer()], ids=lambda t: t.scheme)
def test_unseen_gaps_are_the_letters_no_unmasked_token_shows(tok):
    windows = _windows(20, 40, seed=3)
    rng = np.random.default_rng(0)
    s = rng.integers(8, 28, size=20)
    blocks = np.stack([s, s + rng.integers(1, 4, size=20)], 1)
    gaps = MK.unseen_gaps(tok, windows, blocks)
    for w, seq in enumerate(windows):
        spans = tok.encode(seq).spans
        lo, hi = blocks[w]
        shown = np.zeros(len(seq), bool)
        for a, b in spans:
            if not (a < hi and b > lo):
                shown[a:b] = True
        unseen = np.flatnonzero(~shown)
        assert gaps[w].tolist() == [unseen.min(), unseen.max() + 1]  # contiguous, and exactly the unshown letters
        assert len(unseen) == unseen.max() + 1 - unseen.min()
    if tok.scheme in ("overlapping", "nucleotide"):
        assert (gaps == blocks).all()
    else:
        assert ((gaps[:, 1] - gaps[:, 0]) % 3 == 0).all() and (gaps[:, 0] <= blocks[:, 0]).all()


def test_same_view_items_deny_the_ngram_what_the_model_cannot_see():
    from dnalm_utils import ngram

    rng = np.random.default_rng(1)
    corpus = ["".join(rng.choice(list("ACGT"), 4000)) for _ in range(3)]
    counts = ngram.KmerCounts(corpus, max_len=5)
    windows = _windows(30, 40, seed=4)
    blocks = {4: np.stack([np.full(30, 18), np.full(30, 19)], 1)}
    models = {"over": constant_lm(T.OverlappingKmerTokenizer(4), "AAAA"),
              "non": constant_lm(T.NonOverlappingKmerTokenizer(6), "AAAAAA")}
    items = MK.same_view_items(models, windows, blocks, counts=counts, orders={1: 2, 6: 0})
    over, non = items[items.model == "over"], items[items.model == "non"]
    assert (over.gap_nt == 1).all() and (non.gap_nt == 6).all() and len(over) == len(non) == 30
    # the 6-nt gap takes order 0 here: the corpus letter frequencies, the same guess in every window
    truth = np.array([codec_index(w[18]) for w in windows])
    assert any(np.array_equal(non.accuracy.to_numpy(), (truth == g).astype(float)) for g in range(4))
    # the 1-nt gap equals the two-sided n-gram of the same order on the same block
    ref = ngram.two_sided_block_probs(counts, windows, blocks[4], order=2)
    np.testing.assert_allclose(over.accuracy.to_numpy(), (ref.argmax(1) == truth).astype(float))


def codec_index(letter):
    return "ACGT".index(letter)


def test_same_view_summary_accounts_for_the_shortfall():
    import pandas as pd

    w = np.arange(4)
    items = pd.concat([pd.DataFrame({"model": "non", "h": 1, "window": w, "accuracy": [0, 0, 1, 0.0]}),
                       pd.DataFrame({"model": "two-sided n-gram", "h": 1, "window": w, "accuracy": [1, 0, 1, 1.0]})])
    same_view = pd.DataFrame({"model": "non", "m": 6, "h": 1, "window": w, "gap_nt": 6, "accuracy": [0, 0, 1, 1.0],
                              "bits": 2.0})
    row = MK.same_view_summary(items, same_view).iloc[0]
    assert (row.model_accuracy, row.same_view_ngram, row.two_sided_ngram, row.gap_nt) == (0.25, 0.5, 0.75, 6.0)
    assert row.shortfall_explained == pytest.approx(0.5)  # the masking accounts for half of the 50-point deficit


def _brute_block_probs(lm, seq, s, e):
    """Letter distribution of each nucleotide of [s, e) by loops over the vocabulary (masking.py's rule)."""
    tok = lm.tokenizer
    enc = tok.encode(seq)
    hit = [t for t, (a, b) in enumerate(enc.spans) if a < e and b > s]
    ids = enc.ids.copy()
    ids[hit] = tok.mask_id
    input_ids, att = lm.frame([ids])
    p_tok = np.exp(lm.masked_logprobs(input_ids, att, [np.array(hit) + tok.body_offset], 8, amp=False)[0])
    out = []
    for p in range(s, e):
        per_token = []
        for row, t in enumerate(hit):
            a, b = enc.spans[t]
            q = np.zeros(4)
            for v, text in enumerate(tok.vocab):
                off = p - a
                if 0 <= off < b - a and off < len(text) and text[off] in "ACGT":
                    q["ACGT".index(text[off])] += p_tok[row, v]
            if q.sum() > 0:
                per_token.append(q / q.sum())
        out.append(np.mean(per_token, axis=0) if per_token else np.full(4, 0.25))
    return np.array(out)


@pytest.mark.parametrize("scheme", ["overlapping", "nonoverlapping", "bpe"])
def test_block_eval_of_many_windows_equals_a_brute_force_per_window(scheme):
    """The letter marginals of all windows are computed together (one product per chunk of tokens): each window's
    rows must equal a loop over the vocabulary for that window alone, whatever the mix of block lengths."""
    tok = {"overlapping": lambda: T.OverlappingKmerTokenizer(3), "nonoverlapping": lambda: T.NonOverlappingKmerTokenizer(3),
           "bpe": lambda: T.make_tokenizer("bpe", corpus=_windows(30, 200, seed=5), vocab_size=40)}[scheme]()
    lm = ModuleAdapter(MixingModel(tok.vocab_size, seed=1), tok)
    windows = _windows(5, 70, seed=2)
    blocks = np.array([[20, 21], [30, 33], [11, 12], [40, 46], [25, 27]])
    res = MK.nucleotide_block_eval(lm, windows, blocks, batch_size=2, amp=False)
    for w, (s, e) in enumerate(blocks):
        expected = _brute_block_probs(lm, windows[w], s, e)
        assert expected.std() > 0.01  # far from uniform: the comparison has something to compare
        np.testing.assert_allclose(res.probs[res.window == w], expected, atol=1e-9)
