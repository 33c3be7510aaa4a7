"""Zero-shot next-k-mer readout: exact answers of hand-built masked and causal models against brute force,
what the model receives (no filler ever visible), the filler's (non-)influence, scores and refusals."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from dnalm_utils import masking as MK
from dnalm_utils import models as M
from dnalm_utils import tokenization as T
from dnalm_utils import zero_shot as Z
from dnalm_utils.adapters import ModuleAdapter, NotApplicable
from dnalm_utils.errors import ParameterError
from dnalm_utils.nextkmer import NextKmerTask, kmer_classes
from tiny_modules import ConstantModel, Spy

LET = "ACGT"


def _random_dna(n, length, seed):
    rng = np.random.default_rng(seed)
    return ["".join(rng.choice(list(LET), length)) for _ in range(n)]


def _softmax(x):
    e = np.exp(x - x.max())
    return e / e.sum()


# ------------------------------------------------------------------------------------------------
# Hand-built models
# ------------------------------------------------------------------------------------------------
class CopyBack(torch.nn.Module):
    """A masked model over stride-1 tokens of width K (overlapping K-mers, or single nucleotides with K = 1).

    It reads the letters that unmasked body tokens show. A masked token starting at nucleotide t gets the
    logit sum_o f(t + o)[letter o of the token], with f(p) = beta * onehot(letter at p - d) when that letter is
    shown by an unmasked token, else 0: its token distribution is a product over offsets, so the letter
    marginal at every masked position p is exactly softmax(f(p)). Tokens holding N get -1e4."""

    def __init__(self, tok, d: int, beta: float):
        super().__init__()
        self.tok, self.d, self.beta = tok, d, beta
        self.K = 1 if tok.scheme == "nucleotide" else tok.k
        V = tok.vocab_size
        self.letters = np.full((V, self.K), -1, dtype=np.int64)  # letter code per offset (-1: special / N)
        for i, t in enumerate(tok.vocab):
            if len(t) == self.K and set(t) <= set(LET) and not tok.is_special[i]:
                self.letters[i] = [LET.index(c) for c in t]
        self.body = np.flatnonzero(self.letters[:, 0] >= 0)

    def forward(self, input_ids, attention_mask=None):
        ids = input_ids.cpu().numpy()
        B, W = ids.shape
        V, K, off = self.tok.vocab_size, self.K, self.tok.body_offset
        logits = np.full((B, W, V), -1e4, dtype=np.float32)
        for b in range(B):
            body = [i for i in ids[b, off:] if i != self.tok.special_id("sep") and i != self.tok.special_id("pad")]
            n_nt = len(body) + K - 1
            known = np.full(n_nt, -1)
            for t, i in enumerate(body):
                if i != self.tok.mask_id:
                    known[t : t + K] = self.letters[i]
            for t, i in enumerate(body):
                if i != self.tok.mask_id:
                    continue
                f = np.zeros((K, 4))
                for o in range(K):
                    src = t + o - self.d
                    if 0 <= src < n_nt and known[src] >= 0:
                        f[o, known[src]] = self.beta
                lt = np.zeros(V, dtype=np.float32) - 1e4
                lt[self.body] = f[np.arange(K)[None, :], self.letters[self.body]].sum(1)
                logits[b, off + t] = lt
        return SimpleNamespace(logits=torch.from_numpy(logits))


def copy_lm(tok, d=2, beta=1.5):
    return ModuleAdapter(CopyBack(tok, d, beta), tok, name=f"copy{d}")


def expected_product(x, k, d, beta):
    """Brute force: p(c) = prod_j softmax(f(L + j))[c_j], f from input letter L + j - d (uniform if hidden)."""
    L = len(x)
    out = np.zeros(4**k)
    for c, kmer in enumerate(itertools.product(LET, repeat=k)):
        p = 1.0
        for j, letter in enumerate(kmer):
            src = L + j - d
            f = np.zeros(4)
            if 0 <= src < L:
                f[LET.index(x[src])] = beta
            p *= _softmax(f)[LET.index(letter)]
        out[c] = p
    return out


class Markov2(torch.nn.Module):
    """Causal model: the logits of the token after column c are table[code(c - 1), code(c)] over the whole
    vocabulary (code 4 = not a nucleotide letter), so it only looks back."""

    def __init__(self, tok, seed=0):
        super().__init__()
        self.tok = tok
        rng = np.random.default_rng(seed)
        self.table = rng.normal(0, 1.5, (5, 5, tok.vocab_size)).astype(np.float32)
        self.code = np.full(tok.vocab_size, 4)
        for j, c in enumerate(LET):
            self.code[tok.token_to_id[c]] = j

    def forward(self, input_ids, attention_mask=None):
        codes = self.code[input_ids.cpu().numpy()]
        prev = np.concatenate([np.full((codes.shape[0], 1), 4), codes[:, :-1]], axis=1)
        return SimpleNamespace(logits=torch.from_numpy(self.table[prev, codes]))

    def brute_force(self, x, k):
        """p(c | x) for all 4**k continuations: the chain of ACGT-renormalised conditionals."""
        letters = [self.tok.token_to_id[c] for c in LET]
        out = np.zeros(4**k)
        for c, kmer in enumerate(itertools.product(LET, repeat=k)):
            seq, p = x, 1.0
            for letter in kmer:
                a = LET.index(seq[-2]) if len(seq) >= 2 else 4
                logits = self.table[a, LET.index(seq[-1]), letters].astype(np.float64)
                p *= _softmax(logits)[LET.index(letter)]
                seq += letter
            out[c] = p
        return out


def causal_lm(seed=0):
    tok = T.NucleotideTokenizer()
    return ModuleAdapter(Markov2(tok, seed), tok, objective="causal", name="markov2")


# ------------------------------------------------------------------------------------------------
# Masked models
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("scheme", ["overlapping", "nucleotide"])
def test_masked_product_of_marginals_is_exact(scheme):
    tok = T.OverlappingKmerTokenizer(4) if scheme == "overlapping" else T.NucleotideTokenizer()
    lm = copy_lm(tok, d=2, beta=1.5)
    inputs = _random_dna(5, 20, seed=1) + ["ACGTACGTAC"]
    probs = Z.zero_shot_probs(lm, inputs, 3, amp=False)
    assert probs.shape == (6, 64)
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)
    for x, p in zip(inputs, probs):
        np.testing.assert_allclose(p, expected_product(x, 3, 2, 1.5), atol=1e-5)


def test_masked_copy_rule_gives_full_accuracy_on_inputs_that_follow_it():
    tok = T.OverlappingKmerTokenizer(4)
    lm = copy_lm(tok, d=6, beta=6.0)
    rng = np.random.default_rng(3)
    windows = ["".join(rng.choice(list(LET), 6)) * 6 for _ in range(12)]  # period 6: s[p] = s[p - 6]
    tasks = {k: ([w[:30] for w in windows], kmer_classes([w[30 : 30 + k] for w in windows])) for k in (1, 3, 6)}
    table, items, skipped = Z.zero_shot_scores({"copy6": lm}, tasks, amp=False, n_boot=200)
    assert (table.accuracy == 1).all() and skipped.empty
    np.testing.assert_allclose(table.x_chance, 4.0 ** table.k)
    assert (items.accuracy == 1).all() and len(items) == 3 * 12
    # a rule the model does not follow (copying from 2 back) scores below that
    bad = Z.zero_shot_scores({"copy2": copy_lm(tok, d=2, beta=6.0)}, tasks, amp=False, n_boot=200)[0]
    assert (bad.accuracy < 1).all()


def test_masked_chain_unmasks_left_to_right_exactly():
    tok = T.OverlappingKmerTokenizer(4)
    d, beta, k = 2, 1.5, 4
    lm = copy_lm(tok, d=d, beta=beta)
    inputs = _random_dna(3, 12, seed=5)
    probs = Z.zero_shot_probs(lm, inputs, k, joint="chain", amp=False)
    for x, p in zip(inputs, probs):  # position L + i copies (x + prefix)[L + i - 2], always shown by a token
        ref = np.zeros(4**k)
        for c, kmer in enumerate(itertools.product(LET, repeat=k)):
            s, q = x + "".join(kmer), 1.0
            for i in range(k):
                f = np.zeros(4)
                f[LET.index(s[len(x) + i - d])] = beta
                q *= _softmax(f)[LET.index(kmer[i])]
            ref[c] = q
        np.testing.assert_allclose(p, ref, atol=1e-5)
    # on period-2 inputs the chain is always right; the product (positions 3, 4 uniform) is not
    per2 = ["CG" * 8, "TA" * 8, "GT" * 8]
    labels = kmer_classes(["CGCG", "TATA", "GTGT"])
    chain = Z.zero_shot_probs(copy_lm(tok, d=2, beta=6.0), per2, 4, joint="chain", amp=False)
    prod = Z.zero_shot_probs(copy_lm(tok, d=2, beta=6.0), per2, 4, amp=False)
    assert (chain.argmax(1) == labels).all() and not (prod.argmax(1) == labels).all()


@pytest.mark.parametrize("k", [2, 6])
def test_overlapping_model_receives_its_input_tokens_then_k_masks(k):
    tok = T.OverlappingKmerTokenizer(4)
    lm = copy_lm(tok)
    lm.model = Spy(lm.model)
    inputs = _random_dna(4, 15, seed=k) + _random_dna(2, 9, seed=k + 10)
    Z.zero_shot_probs(lm, inputs, k, amp=False)
    assert len(lm.model.seen) == 1  # one batch holds all rows
    seen = lm.model.seen[0].numpy()
    for row, x in zip(seen, inputs):
        want = np.concatenate([[tok.special_id("cls")], tok.encode(x).ids, [tok.mask_id] * k, [tok.special_id("sep")]])
        assert (row[: len(want)] == want).all() and (row[len(want) :] == tok.special_id("pad")).all()
    assert (Z.hidden_input_letters(tok, inputs, k) == 0).all()


@pytest.mark.parametrize("scheme", ["nonoverlapping", "bpe"])
def test_no_unmasked_token_covers_a_hidden_position(scheme):
    inputs = _random_dna(8, 31, seed=7) + _random_dna(4, 26, seed=8)
    if scheme == "bpe":
        tok = T.BPETokenizer.train(_random_dna(6, 600, seed=9) + ["ACGT" * 300], vocab_size=60)
    else:
        tok = T.NonOverlappingKmerTokenizer(3)
    lm = ModuleAdapter(Spy(ConstantModel(tok.vocab_size, tok.mask_id + 1 if tok.mask_id + 1 < tok.vocab_size else 0)),
                       tok)
    k = 3
    hidden = Z.hidden_input_letters(tok, inputs, k, filler="C")
    probs = Z.zero_shot_probs(lm, inputs, k, filler="C", amp=False)
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)
    rows = torch.cat([torch.nn.functional.pad(s, (0, 64 - s.shape[1]), value=tok.special_id("pad"))
                      for s in lm.model.seen]).numpy()
    for row, x, h in zip(rows, inputs, hidden):
        L = len(x)
        enc = tok.encode(x + "C" * k)
        body = row[tok.body_offset : tok.body_offset + len(enc)]
        shown = body != tok.mask_id
        assert (body[shown] == enc.ids[shown]).all()  # the model gets the window's own ids where unmasked
        assert (enc.spans[shown, 1] <= L).all()  # ... and none of them covers a position >= L
        assert (enc.spans[~shown, 1] > L).all() or not (~shown).any()
        assert L - h == (enc.spans[shown, 1].max() if shown.any() else 0)  # input letters hidden by the masking
    if scheme == "nonoverlapping":
        np.testing.assert_array_equal(hidden, [len(x) % 3 for x in inputs])


def test_filler_cannot_change_what_a_model_that_never_sees_masked_letters_reads():
    tok = T.OverlappingKmerTokenizer(4)
    inputs = _random_dna(5, 16, seed=11)
    outs = [Z.zero_shot_probs(copy_lm(tok, d=2, beta=2.0), inputs, 3, filler=f, amp=False) for f in "ACGT"]
    for o in outs[1:]:
        np.testing.assert_array_equal(o, outs[0])


def test_k1_equals_nucleotide_block_eval(tmp_path):
    lm = M.load_model(M.make_tiny_dnabert(tmp_path / "tiny4", k=4, max_positions=64))
    inputs = _random_dna(7, 25, seed=12)
    probs = Z.zero_shot_probs(lm, inputs, 1, amp=False)
    ref = MK.nucleotide_block_eval(lm, [x + "A" for x in inputs], np.array([[25, 26]] * 7), amp=False).probs
    np.testing.assert_allclose(probs, ref, atol=1e-6)
    two = Z.zero_shot_probs(lm, inputs, 2, amp=False)
    np.testing.assert_allclose(two.sum(1), 1, atol=1e-5)


# ------------------------------------------------------------------------------------------------
# Causal models
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("k", [1, 2, 4])
def test_causal_chain_rule_is_exact(k):
    lm = causal_lm(seed=k)
    inputs = _random_dna(3, 9, seed=k) + ["G", "TTACG"]  # lengths differ: right padding must not matter
    probs = Z.zero_shot_probs(lm, inputs, k, amp=False, batch_size=7)
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)
    for x, p in zip(inputs, probs):
        np.testing.assert_allclose(p, lm.model.brute_force(x, k), rtol=1e-5, atol=1e-7)
    if k > 1:  # joint="product": the product of the chain joint's own marginals
        prod = Z.zero_shot_probs(lm, inputs, k, joint="product", amp=False)
        for x, p in zip(inputs, prod):
            ref = lm.model.brute_force(x, k).reshape((4,) * k)
            marg = [ref.sum(axis=tuple(a for a in range(k) if a != i)) for i in range(k)]
            want = np.array([np.prod([marg[i][LET.index(c)] for i, c in enumerate(km)])
                             for km in itertools.product(LET, repeat=k)])
            np.testing.assert_allclose(p, want, atol=1e-7)


def test_not_applicable_models_are_reported():
    hidden_only = ModuleAdapter(ConstantModel(10, 1), T.NucleotideTokenizer(), capabilities=["hidden_states"],
                                name="encoder_only")
    causal_kmers = ModuleAdapter(ConstantModel(69, 5), T.OverlappingKmerTokenizer(3), objective="causal",
                                 name="causal3mer")
    for lm, why in ((hidden_only, "neither a masked-token head"), (causal_kmers, "not single nucleotides")):
        with pytest.raises(NotApplicable, match=why):
            Z.zero_shot_probs(lm, ["ACGTACGT"], 1)
    models = {"encoder_only": hidden_only, "markov2": causal_lm(), "causal3mer": causal_kmers}
    table, items, skipped = Z.zero_shot_scores(models, {1: (["ACGTAC", "GGTACA"], [0, 3])}, n_boot=50)
    assert table.model.tolist() == ["markov2"] and table.readout.iloc[0] == "causal next-token head, exact chain rule"
    assert skipped.model.tolist() == ["encoder_only", "causal3mer"] and (skipped.probe == Z.PROBE).all()


# ------------------------------------------------------------------------------------------------
# Scores, sentence, determinism, errors
# ------------------------------------------------------------------------------------------------
def test_scores_are_seeded_and_consistent_with_items():
    lm = causal_lm(seed=3)
    inputs = _random_dna(60, 12, seed=13)
    nxt = _random_dna(60, 2, seed=14)
    task = NextKmerTask("test", 2, 12, inputs, kmer_classes(nxt), None)
    a = Z.zero_shot_scores({"m": lm}, {2: task}, n_boot=300, seed=4)
    b = Z.zero_shot_scores({"m": lm}, {2: task}, n_boot=300, seed=4)
    c = Z.zero_shot_scores({"m": lm}, {2: task}, n_boot=300, seed=5)
    cols = [col for col in a[0].columns if col != "seconds"]
    assert a[0][cols].equals(b[0][cols]) and a[1].equals(b[1])
    assert not a[0][["accuracy_low", "accuracy_high", "bits_low", "bits_high"]].equals(
        c[0][["accuracy_low", "accuracy_high", "bits_low", "bits_high"]])
    row = a[0].iloc[0]
    assert row.accuracy_low <= row.accuracy <= row.accuracy_high and row.bits_low <= row.bits <= row.bits_high
    assert row.accuracy == pytest.approx(a[1].accuracy.mean()) and row.bits == pytest.approx(a[1].bits.mean())
    assert row.x_chance == pytest.approx(row.accuracy * 16) and row.n_test == 60 and row.chance == 1 / 16
    text = Z.zero_shot_sentence(a[0])
    assert "**m**" in text and "next 2-mer" in text and "x chance" in text and "60 test windows" in text
    assert ("worse than a uniform guess" in text) == (row.bits > 2)
    over = Z.zero_shot_sentence(a[0].assign(bits=2.17))
    assert over.endswith("In bits per nucleotide **m** does worse than a uniform guess: its head is confident "
                         "where it is wrong.")
    assert "uniform guess:" not in Z.zero_shot_sentence(a[0].assign(bits=1.5)).split("test windows).")[1]
    with pytest.raises(ParameterError, match="NextKmerTask or a pair|key it by its own k"):
        Z.zero_shot_scores({"m": lm}, {3: task})


def test_bad_input_raises_parameter_error():
    lm = causal_lm()
    with pytest.raises(ParameterError, match=r"inputs\[1\] holds 'N' at position 2"):
        Z.zero_shot_probs(lm, ["ACGT", "ACNT"], 1)
    with pytest.raises(ParameterError, match="not one string"):
        Z.zero_shot_probs(lm, "ACGT", 1)
    with pytest.raises(ParameterError, match="empty"):
        Z.zero_shot_probs(lm, [], 1)
    with pytest.raises(ParameterError, match="filler"):
        Z.zero_shot_probs(lm, ["ACGT"], 1, filler="N")
    with pytest.raises(ParameterError, match="joint"):
        Z.zero_shot_probs(lm, ["ACGT"], 1, joint="exact")
    for k in (0, 9):
        with pytest.raises(ParameterError, match="k"):
            Z.zero_shot_probs(lm, ["ACGT"], k)
