"""Caduceus family: published layout of a tiny replica, family detection, the native character tokenizer
against a transcription of CaduceusTokenizer, and the refusal to load without CUDA + mamba-ssm."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dnalm_utils import adapters as A
from dnalm_utils import models as M
from dnalm_utils.errors import ModelNotAvailableError, VocabularyMismatchError
from dnalm_utils.families import caduceus as C
from dnalm_utils.families import hyena as H

SEQ = "ACGTTGCAAGTCCGATAGGCTTACGNTCGATCGTAGCTAGCATCGAT"
PUBLISHED_FILES = {"config.json", "configuration_caduceus.py", "modeling_caduceus.py", "modeling_rcps.py",
                   "tokenization_caduceus.py", "tokenizer_config.json", "special_tokens_map.json", "model.safetensors"}
CAN_RUN = C.runtime_problem() is None


@pytest.fixture(scope="module")
def replica(tmp_path_factory):
    return C.make_replica(tmp_path_factory.mktemp("c") / "caduceus-ps-replica", rcps=True, layers=2, d_model=16)


def test_replica_has_the_published_layout(replica):
    assert {p.name for p in replica.iterdir()} == PUBLISHED_FILES
    cfg = json.loads((replica / "config.json").read_text())
    assert cfg["model_type"] == "caduceus" and cfg["architectures"] == ["CaduceusForMaskedLM"]
    assert cfg["auto_map"]["AutoModelForMaskedLM"] == "modeling_caduceus.CaduceusForMaskedLM"
    assert cfg["vocab_size"] == 16 and cfg["rcps"] is True and cfg["bidirectional_strategy"] == "add"
    assert cfg["complement_map"]["7"] == 10 and cfg["complement_map"]["8"] == 9 and cfg["complement_map"]["11"] == 11
    tok = json.loads((replica / "tokenizer_config.json").read_text())
    assert tok["tokenizer_class"] == "CaduceusTokenizer" and tok["padding_side"] == "left"
    assert tok["model_max_length"] == 131072
    state = A.read_state_dict(replica)
    pre = "caduceus.backbone.layers.0.mixer.submodule."
    assert pre + "mamba_fwd.in_proj.weight" in state and pre + "mamba_rev.in_proj.weight" not in state  # tied
    assert pre + "mamba_rev.A_log" in state and pre + "mamba_rev.x_proj.weight" in state
    assert "lm_head.lm_head.weight" not in state and "lm_head.complement_map" in state  # head tied to the embedding
    assert state["caduceus.backbone.embeddings.word_embeddings.complement_map"].tolist() == \
        [cfg["complement_map"][str(i)] for i in range(16)]
    assert tuple(state["caduceus.backbone.embeddings.word_embeddings.embedding.weight"].shape) == (16, 16)


def test_ph_replica_names(tmp_path):
    folder = C.make_replica(tmp_path / "ph", rcps=False, layers=1, d_model=16)
    state = A.read_state_dict(folder)
    assert "caduceus.backbone.embeddings.word_embeddings.weight" in state
    assert "caduceus.backbone.layers.0.mixer.mamba_fwd.out_proj.weight" in state
    assert not any("submodule" in k or "complement_map" in k for k in state)


def test_family_detection(replica, tmp_path):
    cfg = A.read_config(replica)
    assert A.family_for(cfg, replica).name == "caduceus"
    assert C.matches(cfg, replica) and not H.matches(cfg, replica)
    hy = H.make_replica(tmp_path / "hy", layers=1, d_model=16, max_seq_len=64)
    assert not C.matches(A.read_config(hy), hy)


@pytest.mark.skipif(CAN_RUN, reason="this machine has CUDA and mamba-ssm")
def test_load_is_refused_without_cuda_and_mamba(replica):
    with pytest.raises(ModelNotAvailableError) as info:
        M.load_model(replica, device="cpu", trust_remote_code=True)
    msg = str(info.value)
    assert "mamba-ssm" in msg and "CUDA" in msg and "pip install mamba-ssm causal-conv1d" in msg


def test_remote_code_needs_trust_remote_code(replica, monkeypatch):
    monkeypatch.setattr(C, "runtime_problem", lambda: None)  # pretend CUDA + mamba-ssm are there
    with pytest.raises(ModelNotAvailableError, match="modeling_caduceus.py.*trust_remote_code=True"):
        M.load_model(replica, device="cpu")


# ------------------------------------------------------------------------------------------------
# Tokenizer: CaduceusTokenizer's rule, transcribed
# ------------------------------------------------------------------------------------------------
def caduceus_tokenizer(text: str) -> list[int]:
    """tokenization_caduceus.CaduceusTokenizer (as published with the hub checkpoints): [CLS] [SEP] [BOS] [MASK]
    [PAD] [RESERVED] [UNK] = 0..6, characters A C G T N from 7; _tokenize = list(text.upper()); unknown ->
    [UNK]; build_inputs_with_special_tokens(ids) = ids + [SEP]."""
    vocab = {"[CLS]": 0, "[SEP]": 1, "[BOS]": 2, "[MASK]": 3, "[PAD]": 4, "[RESERVED]": 5, "[UNK]": 6}
    vocab.update({ch: i + 7 for i, ch in enumerate(("A", "C", "G", "T", "N"))})
    return [vocab.get(ch, vocab["[UNK]"]) for ch in list(text.upper())] + [vocab["[SEP]"]]


@pytest.mark.parametrize("seq", [SEQ, SEQ.lower(), "n", "acgtNNNNacgt"])
def test_tokenizer_ids_equal_caduceus_rule(replica, seq):
    tok = C.read_character_tokenizer(replica, C.CaduceusTokenizer)
    ids, att = tok.frame([tok.encode(seq).ids])
    assert ids[0].tolist() == caduceus_tokenizer(seq)
    assert tok.to_hf()(seq.upper())["input_ids"] == caduceus_tokenizer(seq)
    assert tok.decode(ids[0]) == seq.upper()


def test_framing_and_padding(replica):
    tok = C.read_character_tokenizer(replica, C.CaduceusTokenizer)
    assert tok.prefix_roles == () and tok.suffix_roles == ("sep",) and tok.body_offset == 0 and tok.n_framing == 1
    ids, att = tok.frame([tok.encode("ACGT").ids, tok.encode("AC").ids])
    assert ids.tolist() == [[7, 8, 9, 10, 1], [7, 8, 1, 4, 4]] and att.tolist() == [[1] * 5, [1, 1, 1, 0, 0]]
    assert np.flatnonzero(tok.is_special).tolist() == [0, 1, 2, 3, 4, 5, 6]


def test_padded_vocabulary_in_config_is_accepted(replica):
    tok = C.read_character_tokenizer(replica, C.CaduceusTokenizer)
    C.check_vocab(tok, {"vocab_size": 16, "pad_vocab_size_multiple": 8}, replica)
    C.check_vocab(tok, {"vocab_size": 12, "pad_vocab_size_multiple": 8}, replica)
    with pytest.raises(VocabularyMismatchError, match="vocab_size=20"):
        C.check_vocab(tok, {"vocab_size": 20, "pad_vocab_size_multiple": 8}, replica)


def test_capabilities_and_reasons():
    assert C.CaduceusAdapter.objective == "masked" and C.CaduceusAdapter.positions == "none"
    assert "attention" not in C.CaduceusAdapter.capabilities
    assert "Mamba" in C.CaduceusAdapter.missing_reasons["attention"]
    assert {"masked_logprobs", "hidden_states"} <= C.CaduceusAdapter.capabilities
