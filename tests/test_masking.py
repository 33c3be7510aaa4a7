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
from dnalm_utils.pretraining import zoo_config


class ConstantModel(torch.nn.Module):
    """Always predicts token ``favourite`` at every position."""

    def __init__(self, vocab_size: int, favourite: int):
        super().__init__()
        self.vocab_size, self.favourite = vocab_size, favourite

    def forward(self, input_ids, attention_mask=None):
        logits = torch.zeros(*input_ids.shape, self.vocab_size)
        logits[..., self.favourite] = 20.0
        return SimpleNamespace(logits=logits)


def constant_lm(tokenizer, token: str):
    return SimpleNamespace(model=ConstantModel(tokenizer.vocab_size, tokenizer.token_to_id[token]),
                           tokenizer=tokenizer, device=torch.device("cpu"))


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
    cfg = zoo_config("overlap4")
    out = MK.own_masking_eval(tiny, _windows(20, 120), cfg, seed=0)
    assert 0.08 < out["masked_fraction"] < 0.25
    assert out["perplexity"] == pytest.approx(np.exp(out["nll"]))
    assert 0 <= out["accuracy"] <= out["top5"] <= 1
