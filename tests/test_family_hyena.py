"""HyenaDNA family: a tiny random checkpoint in the published -hf layout, checked against a slow reference of
the published equations written here independently (explicit filter construction, O(L^2) causal convolution),
plus the generic causal block-completion scoring against brute force."""

from __future__ import annotations

import itertools
import json
import math
import shutil

import numpy as np
import pytest
import torch

from dnalm_utils import adapters as A
from dnalm_utils import causal_scoring as CS
from dnalm_utils import models as M
from dnalm_utils.errors import ModelNotAvailableError, ParameterError
from dnalm_utils.families import hyena as H
from dnalm_utils.tokenization import NucleotideTokenizer

SEQ = "ACGTTGCAAGTCCGATAGGCTTACGNTCGATCGTAGCTAGCATCGAT"
PUBLISHED_FILES = {"config.json", "configuration_hyena.py", "modeling_hyena.py", "tokenization_hyena.py",
                   "tokenizer_config.json", "special_tokens_map.json", "model.safetensors"}


@pytest.fixture(scope="module")
def replica(tmp_path_factory):
    return H.make_replica(tmp_path_factory.mktemp("h") / "hyenadna-replica", layers=2, d_model=32, max_seq_len=256,
                          seed=1)


@pytest.fixture(scope="module")
def lm(replica):
    return M.load_model(replica, head="lm", device="cpu", dtype="float32")


# ------------------------------------------------------------------------------------------------
# Layout and strict loading
# ------------------------------------------------------------------------------------------------
def test_replica_has_the_published_layout(replica):
    assert {p.name for p in replica.iterdir()} == PUBLISHED_FILES
    cfg = json.loads((replica / "config.json").read_text())
    assert cfg["model_type"] == "hyenadna" and cfg["auto_map"]["AutoModelForCausalLM"] == "modeling_hyena.HyenaDNAForCausalLM"
    assert cfg["vocab_size"] == 12 and cfg["pad_vocab_size_multiple"] == 8 and cfg["tie_word_embeddings"] is False
    tok = json.loads((replica / "tokenizer_config.json").read_text())
    assert tok["padding_side"] == "left" and tok["model_max_length"] == cfg["max_seq_len"]
    assert tok["tokenizer_class"] == "HyenaDNATokenizer"
    state = A.read_state_dict(replica)
    freq = sorted(k for k in state if k.endswith(".freq"))
    assert freq == [f"hyena.backbone.layers.{i}.mixer.filter_fn.implicit_filter.1.freq" for i in range(2)]
    assert tuple(state["hyena.backbone.embeddings.word_embeddings.weight"].shape) == (16, 32)
    assert tuple(state["lm_head.weight"].shape) == (16, 32)
    assert tuple(state["hyena.backbone.layers.0.mixer.filter_fn.pos_emb.z"].shape) == (1, 256, 5)
    assert tuple(state["hyena.backbone.layers.0.mixer.short_filter.weight"].shape) == (96, 1, 3)
    assert len(state) == 1 + 2 * 26 + 2 + 1


def test_every_checkpoint_tensor_is_used_and_no_remote_code_runs(lm, replica):
    rep = lm.load_report
    assert rep.loaded == rep.checkpoint_tensors == rep.model_tensors == len(A.read_state_dict(replica))
    assert not rep.missing and not rep.unexpected and not rep.mismatched
    assert lm.family == "hyenadna" and lm.objective == "causal" and lm.positions == "none"
    assert lm.max_tokens == 255  # max_seq_len minus the [SEP]
    # the folder's Python files are placeholders that raise on import: loading never touched them
    assert "raise ImportError" in (replica / "modeling_hyena.py").read_text()


def test_family_detection(replica):
    cfg = A.read_config(replica)
    assert A.family_for(cfg, replica).name == "hyenadna"
    assert H.matches({"architectures": ["HyenaDNAForCausalLM"]}, replica)
    assert not H.matches({"model_type": "stripedhyena", "auto_map": {"AutoModel": "modeling_hyena.StripedHyena"}}, replica)


@pytest.mark.parametrize("change", ["remove", "rename", "reshape"])
def test_a_missing_renamed_or_misshaped_tensor_is_refused(replica, tmp_path, change):
    from safetensors.torch import save_file

    bad = tmp_path / "bad"
    shutil.copytree(replica, bad)
    state = A.read_state_dict(bad)
    name = "hyena.backbone.layers.1.mixer.filter_fn.implicit_filter.2.weight"
    if change == "remove":
        del state[name]
    elif change == "rename":
        state[name.replace("implicit_filter", "implicit_filters")] = state.pop(name)
    else:
        state[name] = state[name][:, :-1].contiguous()
    save_file(state, str(bad / "model.safetensors"))
    with pytest.raises(ModelNotAvailableError, match="implicit_filter"):
        M.load_model(bad, head="lm", device="cpu")


def test_base_head_leaves_out_only_the_lm_head(replica):
    base = M.load_model(replica, head="base", device="cpu", dtype="float32")
    assert base.load_report.allowed == ["lm_head.weight"]
    assert not base.can("next_token_logprobs")


# ------------------------------------------------------------------------------------------------
# Equations: a slow reference written from the published modeling_hyena.py
# ------------------------------------------------------------------------------------------------
def _layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def _gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def slow_reference(state: dict, cfg: dict, ids: list[int]):
    """Logits (L, 16) and hidden states of one sequence, float64, explicit loops, no FFT."""
    S = {k: v.double().numpy() for k, v in state.items()}
    d, L = cfg["d_model"], len(ids)
    x = S["hyena.backbone.embeddings.word_embeddings.weight"][ids]
    states = [x]
    for n in range(cfg["n_layer"]):
        p = lambda k: S[f"hyena.backbone.layers.{n}.{k}"]  # noqa: E731
        r = x
        u = _layer_norm(r, p("norm1.weight"), p("norm1.bias"), 1e-5) @ p("mixer.in_proj.weight").T + p("mixer.in_proj.bias")
        w, b = p("mixer.short_filter.weight")[:, 0, :], p("mixer.short_filter.bias")  # (3d, 3)
        uc = np.tile(b, (L, 1))
        for t in range(L):  # causal width-3 depthwise conv: taps on u[t-2], u[t-1], u[t]
            for j in range(3):
                if t + j - 2 >= 0:
                    uc[t] += w[:, j] * u[t + j - 2]
        x0, x1, v = uc[:, :d], uc[:, d:2 * d], uc[:, 2 * d:]
        # implicit filter: positions -> MLP with sin(freq * .) -> modulation
        f = "mixer.filter_fn."
        hfilt = p(f + "pos_emb.z")[0, :L]
        freq = p(f + "implicit_filter.1.freq")
        for i in (0, 2, 4):
            hfilt = np.sin(freq * (hfilt @ p(f + f"implicit_filter.{i}.weight").T + p(f + f"implicit_filter.{i}.bias")))
        hfilt = hfilt @ p(f + "implicit_filter.6.weight").T
        t_pos = p(f + "pos_emb.t")[0, :L]  # (L, 1)
        k = hfilt * (np.exp(-t_pos * np.abs(p(f + "modulation.deltas")[0])) + 0.05)  # (L, d)
        v = v * x1
        y = np.zeros_like(v)
        for t in range(L):  # direct O(L^2) causal convolution + skip
            for s in range(t + 1):
                y[t] += k[t - s] * v[s]
        y += v * p(f + "bias")
        y = (y * x0) @ p("mixer.out_proj.weight").T + p("mixer.out_proj.bias")
        r = y + r
        m = _gelu_tanh(_layer_norm(r, p("norm2.weight"), p("norm2.bias"), 1e-5) @ p("mlp.fc1.weight").T + p("mlp.fc1.bias"))
        x = m @ p("mlp.fc2.weight").T + p("mlp.fc2.bias") + r
        states.append(x)
    final = _layer_norm(x, S["hyena.backbone.ln_f.weight"], S["hyena.backbone.ln_f.bias"], cfg["layer_norm_epsilon"])
    states[-1] = final
    return final @ S["lm_head.weight"].T, states


@torch.no_grad()
def test_outputs_equal_the_slow_reference(lm, replica):
    cfg = json.loads((replica / "config.json").read_text())
    state = A.read_state_dict(replica)
    seq = SEQ[:40]
    ids, att = lm.frame([lm.tokenizer.encode(seq).ids])
    ref_logits, ref_states = slow_reference(state, cfg, ids[0].tolist())
    out = lm.encode(torch.from_numpy(ids), torch.from_numpy(att), hidden_states=True)
    logits = lm.token_logits(out.last_hidden_state)[0].numpy()
    assert logits.shape == (len(seq) + 1, 12)  # cut to the real vocabulary (12 of 16 rows)
    assert np.abs(ref_logits).max() > 1.0  # a non-trivial comparison
    np.testing.assert_allclose(logits, ref_logits[:, :12], atol=1e-4, rtol=1e-4)
    assert len(out.hidden_states) == 3
    for mine, ref in zip(out.hidden_states, ref_states):
        np.testing.assert_allclose(mine[0].numpy(), ref, atol=1e-4, rtol=1e-4)
    # the last hidden state is what the LM head reads; intermediate layers get ln_f in the logit lens
    assert torch.equal(out.hidden_states[-1], out.last_hidden_state)
    lens = lm.token_logits(out.hidden_states[1], layer=1)[0].numpy()
    S1 = ref_states[1]
    ln = _layer_norm(S1, state["hyena.backbone.ln_f.weight"].double().numpy(), state["hyena.backbone.ln_f.bias"].double().numpy(), 1e-5)
    np.testing.assert_allclose(lens, (ln @ state["lm_head.weight"].double().numpy().T)[:, :12], atol=1e-4, rtol=1e-4)
    # next-token log-probabilities: a distribution over the nucleotides (specials excluded)
    lp = lm.next_token_logprobs(ids, att, 2, amp=False)
    assert np.allclose(np.exp(lp).sum(-1), 1, atol=1e-5)
    assert np.isneginf(lp[0, :, lm.tokenizer.is_special]).all()


def test_causality_and_right_padding(lm):
    seq = SEQ[:30]
    t = 17
    other = seq[:t] + ("A" if seq[t] != "A" else "C") + seq[t + 1:]
    ids, att = lm.frame([lm.tokenizer.encode(seq).ids, lm.tokenizer.encode(other).ids])
    with torch.no_grad():
        logits = lm.token_logits(lm.encode(torch.from_numpy(ids), torch.from_numpy(att)).last_hidden_state).numpy()
    np.testing.assert_allclose(logits[0, :t], logits[1, :t], atol=1e-5)  # nothing before t sees token t
    assert np.abs(logits[0, t:] - logits[1, t:]).max() > 1e-3
    # right padding leaves a shorter row's outputs as they are alone
    short = SEQ[:12]
    ids2, att2 = lm.frame([lm.tokenizer.encode(short).ids, lm.tokenizer.encode(seq).ids])
    alone, att1 = lm.frame([lm.tokenizer.encode(short).ids])
    with torch.no_grad():
        a = lm.token_logits(lm.encode(torch.from_numpy(ids2), torch.from_numpy(att2)).last_hidden_state)[0, :13]
        b = lm.token_logits(lm.encode(torch.from_numpy(alone), torch.from_numpy(att1)).last_hidden_state)[0]
    np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5)
    with pytest.raises(ParameterError, match="255-token limit"):
        lm.frame([lm.tokenizer.encode("A" * 256).ids])


# ------------------------------------------------------------------------------------------------
# Tokenizer: HyenaDNA's CharacterTokenizer rule, transcribed
# ------------------------------------------------------------------------------------------------
def hyenadna_character_tokenizer(text: str) -> list[int]:
    """tokenization_hyena.HyenaDNATokenizer: vocabulary [CLS] [SEP] [BOS] [MASK] [PAD] [RESERVED] [UNK] = 0..6,
    characters A C G T N from 7; _tokenize = list(text); unknown -> [UNK];
    build_inputs_with_special_tokens(ids) = ids + [SEP]."""
    vocab = {"[CLS]": 0, "[SEP]": 1, "[BOS]": 2, "[MASK]": 3, "[PAD]": 4, "[RESERVED]": 5, "[UNK]": 6}
    vocab.update({ch: i + 7 for i, ch in enumerate(["A", "C", "G", "T", "N"])})
    return [vocab.get(ch, vocab["[UNK]"]) for ch in list(text)] + [vocab["[SEP]"]]


@pytest.mark.parametrize("seq", [SEQ, "N", "ACGT" * 10, "TTTTNNNNGGGG"])
def test_tokenizer_ids_equal_hyenadnas_rule(lm, seq):
    tok = lm.tokenizer
    ids, att = tok.frame([tok.encode(seq).ids])
    assert ids[0].tolist() == hyenadna_character_tokenizer(seq)
    assert tok.body_offset == 0 and tok.n_framing == 1 and tok.pad_id == 4
    assert lm.hf_tokenizer(seq)["input_ids"] == hyenadna_character_tokenizer(seq)
    assert tok.encode(seq.lower()).ids.tolist() == tok.encode(seq).ids.tolist()  # soft-masked genome: upper-cased
    assert tok.decode(ids[0]) == seq


def test_vocabulary_padding_rows_are_hidden(lm):
    assert lm.tokenizer.vocab_size == 12
    assert tuple(lm.input_embeddings().shape) == (12, 32)
    assert lm.model.lm_head.weight.shape[0] == 16


def test_masked_probes_and_attention_are_not_applicable(lm):
    ids, att = lm.frame([lm.tokenizer.encode(SEQ).ids])
    with pytest.raises(A.NotApplicable, match="no masked-token head"):
        lm.masked_logprobs(ids, att, [np.array([3])], 1)
    with pytest.raises(A.NotApplicable, match="Hyena has no attention: its mixing is a long convolution"):
        lm.encode(torch.from_numpy(ids), torch.from_numpy(att), attentions=True)
    assert lm.missing_reasons["masked_logprobs"] == "a causal model with no masked-token head"


@torch.no_grad()
def test_classifier_pools_the_last_real_token(lm):
    clf = lm.classifier(3, seed=0)
    clf.model.eval()
    ids, att = lm.frame([lm.tokenizer.encode(SEQ[:20]).ids, lm.tokenizer.encode(SEQ[:9]).ids])
    out = clf.model(torch.from_numpy(ids), torch.from_numpy(att), labels=torch.tensor([0, 2]))
    assert out.logits.shape == (2, 3) and torch.isfinite(out.loss)
    h = lm.encode(torch.from_numpy(ids), torch.from_numpy(att)).last_hidden_state
    want = clf.model.classifier(h[torch.arange(2), torch.tensor([20, 9])])  # the [SEP] of each row
    torch.testing.assert_close(out.logits, want)


# ------------------------------------------------------------------------------------------------
# Causal block-completion scoring
# ------------------------------------------------------------------------------------------------
class BigramAdapter(A.ModelAdapter):
    """A toy causal model whose next-token distribution is a known table: logits(next | prev) = table[prev]."""

    family = "toy-bigram"
    objective = "causal"
    positions = "none"
    capabilities = frozenset({"next_token_logprobs"})

    n_layers = 1
    hidden_size = 12

    def _encoder(self, ids, att, *, hidden_states, attentions):
        return A.EncoderOutput(self.model.table[ids])

    def _head(self, h):
        return h


def make_toy(tokenizer, seed=0):
    g = torch.Generator().manual_seed(seed)
    module = torch.nn.Module()
    module.table = torch.nn.Parameter(2.0 * torch.randn(tokenizer.vocab_size, tokenizer.vocab_size, generator=g))
    return BigramAdapter(module, tokenizer, name="toy", source="test", path=None, device=torch.device("cpu"),
                         dtype=torch.float32, head="lm")


def brute_force(table: np.ndarray, tokenizer, seq: str, start: int, h: int) -> np.ndarray:
    pre = [tokenizer.special_id(r) for r in tokenizer.prefix_roles]
    suf = [tokenizer.special_id(r) for r in tokenizer.suffix_roles]
    logp = table - np.log(np.exp(table).sum(1, keepdims=True))
    scores = []
    for letters in itertools.product("ACGT", repeat=h):
        s = seq[:start] + "".join(letters) + seq[start + h:]
        ids = pre + [tokenizer.token_to_id[c] for c in s] + suf
        first = len(pre) + start
        scores.append(sum(logp[ids[c - 1], ids[c]] for c in range(first, len(ids))))
    scores = np.array(scores)
    return scores - np.log(np.exp(scores - scores.max()).sum()) - scores.max()


@pytest.mark.parametrize("framing", ["hyenadna", "cls-sep"])
def test_block_completion_equals_brute_force(framing):
    tok = H.CharacterTokenizer() if framing == "hyenadna" else NucleotideTokenizer(list(H.SPECIALS) + list("ACGTN"))
    toy = make_toy(tok, seed=3)
    table = toy.model.table.detach().double().numpy()
    seqs = [SEQ[:20], SEQ[5:30], SEQ[:9]]
    starts = [4, 10, 6]
    for h in (1, 2, 3):
        post = CS.block_completion_logprobs(toy, seqs, starts, h, batch_size=7)
        assert post.shape == (3, 4**h)
        for i, (s, st) in enumerate(zip(seqs, starts)):
            np.testing.assert_allclose(post[i], brute_force(table, tok, s, st, h), atol=1e-5)
        marg = CS.block_letter_logprobs(toy, seqs, starts, h, batch_size=64)
        assert marg.shape == (3, h, 4)
        np.testing.assert_allclose(np.exp(marg).sum(-1), 1, atol=1e-9)
        np.testing.assert_allclose(marg, CS.completion_marginals(post, h), atol=1e-6)
    # completion index: first letter most significant, ACGT order
    assert CS.completions(2)[:5] == ["AA", "AC", "AG", "AT", "CA"]
    if framing == "hyenadna":  # nothing predicts the first token of an unframed sequence
        with pytest.raises(ParameterError, match="start >= 1"):
            CS.block_completion_logprobs(toy, [SEQ[:10]], [0], 1)
    else:
        post = CS.block_completion_logprobs(toy, [SEQ[:10]], [0], 2)
        np.testing.assert_allclose(post[0], brute_force(table, tok, SEQ[:10], 0, 2), atol=1e-5)


def test_block_completion_on_hyenadna_and_limits(lm):
    seq, start, h = SEQ[:24], 9, 2
    post = CS.block_completion_logprobs(lm, [seq], [start], h, batch_size=5)
    scores = []
    for letters in itertools.product("ACGT", repeat=h):
        s = seq[:start] + "".join(letters) + seq[start + h:]
        ids, att = lm.frame([lm.tokenizer.encode(s).ids])
        with torch.no_grad():
            logits = lm.model(torch.from_numpy(ids)).logits[0, :, :12].double()
        logp = torch.log_softmax(logits, -1).numpy()
        row = ids[0]
        scores.append(sum(logp[c - 1, row[c]] for c in range(start, len(row))))
    scores = np.array(scores)
    want = scores - np.log(np.exp(scores - scores.max()).sum()) - scores.max()
    np.testing.assert_allclose(post[0], want, atol=1e-4)
    with pytest.raises(ParameterError, match="use h <= 6"):
        CS.block_completion_logprobs(lm, [seq], [start], 7)
    with pytest.raises(ParameterError, match="runs past its end"):
        CS.block_completion_logprobs(lm, [seq], [23], 2)
    base = M.load_model(lm.path, head="base", device="cpu")
    with pytest.raises(A.NotApplicable):
        CS.block_completion_logprobs(base, [seq], [start], 1)
