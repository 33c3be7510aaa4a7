"""HF BERT family on replicas of published layouts: GROVER, the original DNABERT repository, DNABERT hub folders,
and the clear errors for damaged folders."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from dnalm_utils import models as M
from dnalm_utils import tokenization as T
from dnalm_utils.adapters import family_for, read_state_dict
from dnalm_utils.errors import DnalmInputError
from dnalm_utils.families.replicas_bert import (
    GROVER_SPECIAL_TOKENS_MAP,
    GROVER_TOKENIZER_CONFIG,
    make_dnabert_original_replica,
    make_grover_replica,
)

SEQ = "ACGTTGCAAGTCCGATAGGCTTACGATCGATCGTAGCTAGCATCGATTTGACCAGT"


def _all_tensors_used(lm, folder):
    rep = lm.load_report
    n = len(read_state_dict(folder))
    assert rep.checkpoint_tensors == n and rep.loaded == n
    assert not rep.missing and not rep.unexpected and not rep.mismatched


# ------------------------------------------------------------------------------------------------ GROVER
@pytest.fixture(scope="module", params=["bpe", "wordpiece"])
def grover(request, tmp_path_factory):
    return make_grover_replica(tmp_path_factory.mktemp("g") / f"GROVER-{request.param}",
                               tokenizer_model=request.param, seed=2)


def test_grover_layout(grover):
    assert sorted(p.name for p in grover.iterdir()) == [
        "config.json", "pytorch_model.bin", "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json",
        "vocab.txt"]
    assert json.loads((grover / "tokenizer_config.json").read_text()) == GROVER_TOKENIZER_CONFIG
    assert json.loads((grover / "special_tokens_map.json").read_text()) == GROVER_SPECIAL_TOKENS_MAP
    cfg = json.loads((grover / "config.json").read_text())
    assert cfg["model_type"] == "bert" and cfg["architectures"] == ["BertForMaskedLM"]
    assert (grover / "vocab.txt").read_text().split()[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert family_for(cfg, grover).name == "bert"


def test_grover_loads_every_tensor_with_its_own_tokenizer(grover):
    lm = M.load_model(grover, device="cpu")
    _all_tensors_used(lm, grover)
    assert isinstance(lm.tokenizer, T.BPETokenizer)  # vocab.txt alone cannot tell; tokenizer.json is read
    assert lm.tokenizer.vocab == (grover / "vocab.txt").read_text().split()
    assert lm.tokenizer.is_special.sum() == 5  # only the specials; "##" continuation pieces are nucleotides


def test_grover_ids_equal_autotokenizer_and_spans_map_back(grover):
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    lm = M.load_model(grover, device="cpu")
    auto = AutoTokenizer.from_pretrained(str(grover))
    fast = PreTrainedTokenizerFast(tokenizer_file=str(grover / "tokenizer.json"))
    rng = np.random.default_rng(0)
    for seq in [SEQ, SEQ.lower(), *("".join(rng.choice(list("ACGT"), size=n)) for n in (7, 60, 90))]:
        enc = lm.tokenizer.encode(seq)
        ids = lm.frame([enc.ids])[0][0].tolist()
        assert auto(seq.upper())["input_ids"] == ids == fast(seq.upper())["input_ids"]
        assert ids[0] == 2 and ids[-1] == 3  # [CLS] ... [SEP] with GROVER's ids
        pieces = [seq.upper()[a:b] for a, b in enc.spans]
        assert "".join(pieces) == seq.upper() and (enc.spans[1:, 0] == enc.spans[:-1, 1]).all()
        assert [lm.tokenizer.token_nucleotides[i] for i in enc.ids] == pieces
        assert lm.tokenizer.decode(enc.ids) == seq.upper()


def test_grover_masked_prediction_runs(grover):
    lm = M.load_model(grover, device="cpu")
    enc = lm.tokenizer.encode(SEQ)
    ids, att = lm.frame([enc.ids])
    ids[0, 3] = lm.tokenizer.mask_id
    logp = lm.masked_logprobs(ids, att, [np.array([3])], batch_size=1, amp=False)[0]
    assert np.isneginf(logp[0, :5]).all() and np.isclose(np.exp(logp).sum(), 1, atol=1e-5)


def test_wordpiece_n_inside_a_word_is_a_clear_error(tmp_path):
    folder = make_grover_replica(tmp_path / "GROVER-wp", tokenizer_model="wordpiece")
    tok = T.load_tokenizer(folder)
    with pytest.raises(DnalmInputError, match="split the sequence at N"):
        tok.encode("ACGTACGNACGT")


# ------------------------------------------------------------------------------- original DNABERT repo
@pytest.mark.parametrize("style,weights,legacy", [("repo", "bin", False), ("repo", "safetensors", False),
                                                  ("saved", "bin", False), ("repo", "bin", True)])
def test_dnabert_original_layout_loads(tmp_path, style, weights, legacy):
    folder = make_dnabert_original_replica(tmp_path / "bert-config-4", k=4, config_style=style, weights=weights,
                                           legacy_names=legacy, seed=5)
    cfg = json.loads((folder / "config.json").read_text())
    if style == "repo":
        assert "model_type" not in cfg and len(cfg) == 12 and cfg["vocab_size"] == 4**4 + 5
    else:
        assert {"split", "num_rnn_layer", "rnn", "rnn_dropout", "rnn_hidden"} <= set(cfg)
    assert family_for(cfg, folder).name == "bert"
    lm = M.load_model(folder, device="cpu")
    _all_tensors_used(lm, folder)
    assert isinstance(lm.tokenizer, T.OverlappingKmerTokenizer) and lm.tokenizer.k == 4
    assert lm.tokenizer.vocab == (folder / "vocab.txt").read_text().split()
    state = {k.replace(".gamma", ".weight").replace(".beta", ".bias"): v for k, v in read_state_dict(folder).items()}
    own = lm.model.state_dict()
    assert all(torch.equal(own[k], v) for k, v in state.items())  # the saved weights, not a fresh init
    enc = lm.tokenizer.encode(SEQ)
    assert (enc.spans[:, 1] - enc.spans[:, 0] == 4).all()


def test_zoo_style_dnabert_with_do_lower_case_still_works(tmp_path):
    folder = M.make_tiny_dnabert(tmp_path / "DNA_bert_5", k=5)
    assert json.loads((folder / "tokenizer_config.json").read_text())["do_lower_case"] is True
    lm = M.load_model(folder, device="cpu")
    _all_tensors_used(lm, folder)
    ids = lm.tokenizer.batch_encode([SEQ.lower()])["input_ids"]
    assert (ids != lm.tokenizer.unk_id).all()


# -------------------------------------------------------------------------------------- bad inputs
def _no_raw_traceback(exc):
    assert isinstance(exc, DnalmInputError)
    assert "Traceback" not in str(exc)


def test_folder_without_weights(tmp_path):
    folder = make_grover_replica(tmp_path / "g")
    (folder / "pytorch_model.bin").unlink()
    with pytest.raises(DnalmInputError) as err:
        M.load_model(folder, device="cpu")
    _no_raw_traceback(err.value)
    assert str(folder) in str(err.value) and "holds no weights" in str(err.value) and "Download" in str(err.value)


def test_truncated_safetensors(tmp_path):
    folder = make_grover_replica(tmp_path / "g", weights="safetensors")
    path = folder / "model.safetensors"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DnalmInputError) as err:
        M.load_model(folder, device="cpu")
    _no_raw_traceback(err.value)
    assert str(path) in str(err.value) and "download it again" in str(err.value)


@pytest.mark.parametrize("damage", ["zeros", "empty", "garbage"])
def test_corrupted_pytorch_model_bin(tmp_path, damage):
    folder = make_dnabert_original_replica(tmp_path / "d", k=3)
    path = folder / "pytorch_model.bin"
    data = bytearray(path.read_bytes())
    if damage == "zeros":
        data[100:400] = b"\0" * 300
    elif damage == "empty":
        data = b""
    else:
        data = b"this is not a checkpoint"
    path.write_bytes(bytes(data))
    with pytest.raises(DnalmInputError) as err:
        M.load_model(folder, device="cpu")
    _no_raw_traceback(err.value)
    msg = str(err.value)
    assert str(path) in msg and "download it again" in msg and "weights_only` set to `False" not in msg


def test_config_vocab_size_that_does_not_fit_the_tokenizer(tmp_path):
    folder = make_grover_replica(tmp_path / "g")
    cfg = json.loads((folder / "config.json").read_text())
    cfg["vocab_size"] += 7
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(DnalmInputError) as err:
        M.load_model(folder, device="cpu")
    _no_raw_traceback(err.value)
    assert "config.json (vocab_size)" in str(err.value) and "Load the tokenizer saved with the model" in str(err.value)


def test_unreadable_tokenizer_json(tmp_path):
    folder = make_grover_replica(tmp_path / "g")
    (folder / "tokenizer.json").write_text("{not json")
    with pytest.raises(DnalmInputError) as err:
        M.load_model(folder, device="cpu")
    _no_raw_traceback(err.value)
    assert str(folder / "tokenizer.json") in str(err.value) and "again" in str(err.value)


# ------------------------------------------------------------------------------------------------ last layer at chosen positions
def _bert(layers, impl, dropout=0.0, seed=0):
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=40, hidden_size=32, num_hidden_layers=layers, num_attention_heads=4,
                     intermediate_size=48, max_position_embeddings=64, hidden_dropout_prob=dropout,
                     attention_probs_dropout_prob=dropout, attn_implementation=impl)
    return BertForMaskedLM(cfg).eval()


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 40, (5, 20), generator=g)
    att = torch.ones_like(ids)
    att[1, 14:] = 0  # padded rows
    att[3, 7:] = 0
    ids[att == 0] = 0
    return ids, att


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
@pytest.mark.parametrize("layers", [1, 3])
def test_states_at_equal_the_full_forward_at_those_positions(impl, layers):
    from dnalm_utils.families.bert import states_at

    model = _bert(layers, impl, dropout=0.3)  # dropout in the config, eval mode: no effect
    ids, att = _batch()
    full = model.bert(input_ids=ids, attention_mask=att).last_hidden_state
    rows = torch.tensor([0, 0, 0, 1, 1, 4, 2, 3, 4])  # row 2 after row 4 (unsorted); every row at least once
    cols = torch.tensor([0, 5, 19, 3, 13, 7, 1, 6, 2])
    with torch.no_grad():
        got = states_at(model.bert, ids, att, rows, cols)
    torch.testing.assert_close(got, full[rows, cols], atol=2e-5, rtol=1e-5)
    one = states_at(model.bert, ids, att, torch.tensor([2]), torch.tensor([11]))  # rows without any position
    torch.testing.assert_close(one, full[[2], [11]], atol=2e-5, rtol=1e-5)


def test_states_at_gives_the_full_forwards_loss_and_gradients():
    """Training through the shortcut is training the same function: same MLM loss and weight gradients."""
    from dnalm_utils.families.bert import states_at

    model = _bert(2, "sdpa")
    model.train()  # dropout 0: deterministic
    ids, att = _batch(1)
    labels = torch.full_like(ids, -100)
    labels[0, 3], labels[2, 8], labels[2, 9], labels[4, 1] = 7, 9, 11, 13
    rows, cols = torch.nonzero(labels != -100, as_tuple=True)
    grads = []
    for path in ("full", "shortcut"):
        model.zero_grad()
        if path == "full":
            states = model.bert(input_ids=ids, attention_mask=att).last_hidden_state[rows, cols]
        else:
            states = states_at(model.bert, ids, att, rows, cols)
        loss = torch.nn.functional.cross_entropy(model.cls(states), labels[rows, cols])
        loss.backward()
        grads.append((float(loss.detach()), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
    assert grads[0][0] == pytest.approx(grads[1][0], abs=1e-6)
    assert grads[0][1].keys() == grads[1][1].keys()
    for name, g in grads[0][1].items():
        torch.testing.assert_close(grads[1][1][name], g, atol=1e-5, rtol=1e-4, msg=name)


def test_classification_logits_equal_the_models_own_forward(tmp_path):
    lm = M.load_model(M.make_tiny_dnabert(tmp_path / "d4", k=4, layers=2)).classifier(3, seed=1)
    lm.model.eval()
    ids, att = lm.frame([lm.tokenizer.encode(s).ids for s in (SEQ, SEQ[:30], SEQ[5:47])])
    ids, att = torch.from_numpy(ids), torch.from_numpy(att)
    with torch.no_grad():
        torch.testing.assert_close(lm.classification_logits(ids, att),
                                   lm.model(input_ids=ids, attention_mask=att).logits, atol=2e-5, rtol=1e-5)
