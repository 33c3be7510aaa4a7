"""GENA-LM: the package's own pre-layer-norm BERT on tiny replicas in the hub's layout (no remote code runs)."""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pytest
import torch

from dnalm_utils import models as M
from dnalm_utils.adapters import family_for, read_state_dict
from dnalm_utils.errors import ModelNotAvailableError
from dnalm_utils.families import gena
from dnalm_utils.families.replicas_bert import make_dnabert_original_replica, make_grover_replica
from dnalm_utils.tokenization import BPETokenizer

SEQ = "ACGTTGCAAGTCCGATAGGCTTACGATCGATCGTAGCTAGCATCGATTTGACCA"


@pytest.fixture(scope="module", params=[False, None], ids=["base-t2t", "lastln"])
def replica(request, tmp_path_factory):
    return gena.make_replica(tmp_path_factory.mktemp("g") / "gena-lm-bert-base-t2t", last_layer_norm=request.param,
                             seed=1)


def _reference(state: dict, cfg: dict, ids: torch.Tensor, att: torch.Tensor):
    """Slow pre-LN BERT written from the equations, reading the checkpoint by its published tensor names:
    h0 = LN(E_word + E_pos + E_type); a = x + W_o MHA(LN1(x)); y = a + W_2 gelu(W_1 LN2(a)); [last LN]."""
    eps, H = cfg["layer_norm_eps"], cfg["num_attention_heads"]

    def ln(x, p):
        mu = x.mean(-1, keepdim=True)
        var = ((x - mu) ** 2).mean(-1, keepdim=True)
        return (x - mu) / torch.sqrt(var + eps) * state[p + ".weight"] + state[p + ".bias"]

    def lin(x, p):
        return x @ state[p + ".weight"].T + state[p + ".bias"]

    def gelu(x):
        return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))

    b, t = ids.shape
    e = "bert.embeddings."
    x = state[e + "word_embeddings.weight"][ids] + state[e + "position_embeddings.weight"][:t][None] \
        + state[e + "token_type_embeddings.weight"][0]
    x = ln(x, e + "LayerNorm")
    states = [x]
    for i in range(cfg["num_hidden_layers"]):
        p = f"bert.encoder.layer.{i}."
        z = ln(x, p + "pre_attention_ln")
        d = z.shape[-1] // H
        q, k, v = (lin(z, p + f"attention.self.{n}").view(b, t, H, d).transpose(1, 2) for n in ("query", "key", "value"))
        s = q @ k.transpose(-1, -2) / math.sqrt(d)
        s = s.masked_fill(att[:, None, None, :] == 0, float("-inf"))
        ctx = (torch.softmax(s, -1) @ v).transpose(1, 2).reshape(b, t, -1)
        a = x + lin(ctx, p + "attention.output.dense")
        x = a + lin(gelu(lin(ln(a, p + "post_attention_ln"), p + "intermediate.dense")), p + "output.dense")
        states.append(x)
    if cfg.get("last_layer_norm", cfg["pre_layer_norm"]):
        states[-1] = x = ln(x, "bert.encoder.last_layer_ln")
    c = "cls.predictions."
    logits = ln(gelu(lin(x, c + "transform.dense")), c + "transform.LayerNorm") @ state[e + "word_embeddings.weight"].T \
        + state[c + "bias"]
    return states, logits


def test_layout_and_family(replica):
    names = sorted(p.name for p in replica.iterdir())
    assert names == ["config.json", "modeling_bert.py", "pytorch_model.bin", "special_tokens_map.json",
                     "tokenizer.json", "tokenizer_config.json"]
    cfg = json.loads((replica / "config.json").read_text())
    assert cfg["pre_layer_norm"] is True and cfg["pad_token_id"] == 3 and cfg["model_type"] == "bert"
    assert cfg["auto_map"] == {"AutoModel": "modeling_bert.BertForMaskedLM"}
    assert family_for(cfg, replica).name == "gena"
    tok = json.loads((replica / "tokenizer.json").read_text())
    assert [t["content"] for t in tok["added_tokens"]] == ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]", "-"]
    assert tok["model"]["type"] == "BPE" and tok["post_processor"]["type"] == "BertProcessing"


def test_plain_bert_folders_are_not_taken_by_gena(tmp_path):
    for folder in (make_grover_replica(tmp_path / "GROVER"), make_dnabert_original_replica(tmp_path / "dnabert", k=3),
                   M.make_tiny_dnabert(tmp_path / "DNA_bert_3", k=3)):
        assert family_for(json.loads((folder / "config.json").read_text()), folder).name == "bert"


def test_loads_every_tensor_without_running_its_code(replica):
    lm = M.load_model(replica, device="cpu")
    assert lm.family == "gena" and isinstance(lm.tokenizer, BPETokenizer)
    assert not any("modeling_bert" in m for m in sys.modules if "transformers_modules" in m)
    rep = lm.load_report
    n = len(read_state_dict(replica))
    assert rep.checkpoint_tensors == n and rep.loaded == n - 1  # all but the position_ids buffer
    assert not rep.missing and rep.unexpected == ["bert.embeddings.position_ids"] and not rep.mismatched
    cfg = json.loads((replica / "config.json").read_text())
    assert hasattr(lm.model.bert.encoder, "last_layer_ln") == cfg.get("last_layer_norm", True)


def test_outputs_match_the_pre_ln_equations(replica):
    lm = M.load_model(replica, device="cpu", dtype="float32")
    cfg = json.loads((replica / "config.json").read_text())
    state = read_state_dict(replica)
    encs = [lm.tokenizer.encode(SEQ).ids, lm.tokenizer.encode(SEQ[:20]).ids]
    ids, att = (torch.from_numpy(a) for a in lm.frame(encs))
    ref_states, ref_logits = _reference(state, cfg, ids, att)
    with torch.no_grad():
        out = lm.encode(ids, att, hidden_states=True, attentions=True)
        logits = lm.token_logits(out.last_hidden_state)
    assert len(out.hidden_states) == lm.n_layers + 1 == len(ref_states)
    keep = att.bool()
    for got, want in zip(out.hidden_states, ref_states):
        assert torch.allclose(got[keep], want[keep], atol=1e-5)
    assert torch.allclose(logits[keep], ref_logits[keep], atol=1e-4)
    assert all(a.shape == (2, cfg["num_attention_heads"], ids.shape[1], ids.shape[1]) for a in out.attentions)
    with torch.no_grad():  # logit lens: the final norm applied to the last raw layer output gives the head's input
        lens = lm.token_logits(out.hidden_states[-1], layer=lm.n_layers)
    assert torch.allclose(lens, logits)


def test_masked_logprobs_and_tokenizer_against_autotokenizer(replica):
    from transformers import AutoTokenizer

    lm = M.load_model(replica, device="cpu")
    seq = SEQ[:30] + "N" * 12 + SEQ[30:]
    enc = lm.tokenizer.encode(seq)
    ids, att = lm.frame([enc.ids])
    assert AutoTokenizer.from_pretrained(str(replica))(seq)["input_ids"] == ids[0].tolist()
    assert (enc.spans[1:, 0] == enc.spans[:-1, 1]).all() and enc.spans[0, 0] == 0 and enc.spans[-1, 1] == len(seq)
    dash = lm.tokenizer.token_to_id["-"]
    run = enc.spans[list(enc.ids).index(dash)]
    assert seq[run[0]:run[1]] == "N" * 12  # the "-" token stands for the whole N run
    assert ids[0, 0] == 1 and ids[0, -1] == 2  # [CLS] x [SEP] with GENA's ids
    logp = lm.masked_logprobs(ids, att, [np.array([1, 3])], batch_size=2, amp=False)[0]
    assert logp.shape == (2, lm.tokenizer.vocab_size) and np.isneginf(logp[:, lm.tokenizer.is_special]).all()
    assert lm.max_tokens == 128 - 2


def test_classifier_and_base_head(replica):
    lm = M.load_model(replica, device="cpu", head="classification", num_labels=3)
    enc = lm.tokenizer.encode(SEQ)
    ids, att = (torch.from_numpy(a) for a in lm.frame([enc.ids]))
    out = lm.model(ids, att, labels=torch.tensor([1]))
    assert out.logits.shape == (1, 3) and out.loss.requires_grad
    assert lm.load_report.allowed and all(n.startswith(("classifier.", "cls.")) for n in lm.load_report.allowed)
    base = M.load_model(replica, device="cpu", head="base")
    assert base.can("hidden_states") and not base.can("masked_logprobs")


def test_unsupported_variants_are_refused(tmp_path):
    folder = gena.make_replica(tmp_path / "gena-rope")
    cfg = json.loads((folder / "config.json").read_text())
    cfg["position_embedding_type"] = "rotary"
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelNotAvailableError, match="rotary"):
        M.load_model(folder, device="cpu")
    cfg["position_embedding_type"] = "absolute"
    cfg["sparse_config_cls"] = "deepspeed.ops.sparse_attention:BigBirdSparsityConfig"
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelNotAvailableError, match="DeepSpeed sparse"):
        M.load_model(folder, device="cpu")


def test_lastln_mismatch_is_refused(tmp_path):
    """A checkpoint without last_layer_ln under a config that implies one: refused, tensors named."""
    folder = gena.make_replica(tmp_path / "gena-nolastln", last_layer_norm=False)
    cfg = json.loads((folder / "config.json").read_text())
    del cfg["last_layer_norm"]
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelNotAvailableError, match="last_layer_ln"):
        M.load_model(folder, device="cpu")
