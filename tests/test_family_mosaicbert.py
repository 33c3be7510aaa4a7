"""MosaicBERT family (DNABERT-2, DNABERT-S) on tiny replicas written in the published folder layouts.

The outputs are checked against a slow reference of the published equations written here with explicit
loops (ALiBi with the published slopes, gated GELU FFN, post-LN), not against the family's own modules.
``DNALM_DNABERT2_DIR=/path/to/DNABERT-2-117M`` (a downloaded hub folder) also compares with the folder's
original ``bert_layers.py`` run from that folder.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from dnalm_utils import adapters as A
from dnalm_utils import models as M
from dnalm_utils.errors import ModelNotAvailableError, ParameterError
from dnalm_utils.families import bert as bert_family
from dnalm_utils.families import mosaicbert as MB


def _random_dna(rng, n, lo=5, hi=60):
    return ["".join(rng.choice(list("ACGT"), size=int(rng.integers(lo, hi)))) for _ in range(n)]


@pytest.fixture(scope="module")
def replicas(tmp_path_factory):
    root = tmp_path_factory.mktemp("mosaic")
    return {
        "2023": MB.make_replica(root / "DNABERT-2-117M-2023", layout="2023", seed=1),
        "current": MB.make_replica(root / "DNABERT-2-117M", layout="current", seed=2),
        "S": MB.make_replica(root / "DNABERT-S", with_mlm_head=False, seed=3),
        "12heads": MB.make_replica(root / "twelve", layout="current", hidden=48, heads=12, intermediate=40, seed=4),
    }


def _checkpoint(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


# ------------------------------------------------------------------------------------------------
# The slow reference: the published equations, written out with loops
# ------------------------------------------------------------------------------------------------
def ref_slopes(n: int) -> list[float]:
    """ALiBi slopes: 2^(-8 i / p), i = 1..p, p the largest power of 2 <= n; then the odd ones of 2p."""
    p = 2 ** int(math.floor(math.log2(n)))
    return [2.0 ** (-8.0 * (i + 1) / p) for i in range(p)] + [2.0 ** (-8.0 * (2 * i + 1) / (2 * p)) for i in range(n - p)]


def _ln(x, w, b, eps):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b


def _gelu(x):
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def reference(W: dict, cfg: dict, ids: list[int]):
    """One unpadded sequence through the published equations (float64). Returns (hidden states, attention
    probabilities per layer (heads, L, L), MLM logits or None)."""
    W = {k: v.double() for k, v in W.items()}
    pre = "bert." if any(k.startswith("bert.") for k in W) else ""
    hid, H, inter, eps = cfg["hidden_size"], cfg["num_attention_heads"], cfg["intermediate_size"], cfg["layer_norm_eps"]
    d, L, slopes = hid // H, len(ids), ref_slopes(H)
    e = pre + "embeddings."
    x = W[e + "word_embeddings.weight"][ids] + W[e + "token_type_embeddings.weight"][0]
    x = _ln(x, W[e + "LayerNorm.weight"], W[e + "LayerNorm.bias"], eps)
    states, probs = [x], []
    for layer in range(cfg["num_hidden_layers"]):
        p = f"{pre}encoder.layer.{layer}."
        qkv = x @ W[p + "attention.self.Wqkv.weight"].T + W[p + "attention.self.Wqkv.bias"]
        q, k, v = qkv[:, :hid], qkv[:, hid : 2 * hid], qkv[:, 2 * hid :]
        ctx = torch.zeros(L, hid, dtype=torch.float64)
        P = torch.zeros(H, L, L, dtype=torch.float64)
        for h in range(H):
            cols = slice(h * d, (h + 1) * d)
            for i in range(L):
                s = torch.tensor([float(q[i, cols] @ k[j, cols]) / math.sqrt(d) - slopes[h] * abs(i - j)
                                  for j in range(L)], dtype=torch.float64)
                w = torch.exp(s - s.max())
                w = w / w.sum()
                P[h, i] = w
                for j in range(L):
                    ctx[i, cols] += w[j] * v[j, cols]
        a = ctx @ W[p + "attention.output.dense.weight"].T + W[p + "attention.output.dense.bias"]
        a = _ln(a + x, W[p + "attention.output.LayerNorm.weight"], W[p + "attention.output.LayerNorm.bias"], eps)
        g = a @ W[p + "mlp.gated_layers.weight"].T
        m = _gelu(g[:, :inter]) * g[:, inter:]
        o = m @ W[p + "mlp.wo.weight"].T + W[p + "mlp.wo.bias"]
        x = _ln(o + a, W[p + "mlp.layernorm.weight"], W[p + "mlp.layernorm.bias"], eps)
        states.append(x)
        probs.append(P)
    logits = None
    if "cls.predictions.decoder.bias" in W:
        c = "cls.predictions."
        t = _gelu(x @ W[c + "transform.dense.weight"].T + W[c + "transform.dense.bias"])
        t = _ln(t, W[c + "transform.LayerNorm.weight"], W[c + "transform.LayerNorm.bias"], 1e-12)
        logits = t @ W[e + "word_embeddings.weight"].T + W[c + "decoder.bias"]
    return states, probs, logits


def test_published_slopes():
    assert MB.alibi_slopes(8) == pytest.approx([2.0**-i for i in range(1, 9)])
    twelve = [2.0**-i for i in range(1, 9)] + [2.0**-0.5, 2.0**-1.5, 2.0**-2.5, 2.0**-3.5]  # DNABERT-2: 12 heads
    assert MB.alibi_slopes(12) == pytest.approx(twelve)
    for n in (1, 2, 3, 5, 6, 12, 16, 24):
        assert MB.alibi_slopes(n) == pytest.approx(ref_slopes(n))


# ------------------------------------------------------------------------------------------------
# Family selection and layouts
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["2023", "current", "S"])
def test_layouts_are_taken_by_mosaicbert_not_bert(replicas, which):
    folder = replicas[which]
    cfg = A.read_config(folder)
    assert "alibi_starting_size" in cfg and "bert_layers" in json.dumps(cfg["auto_map"])
    assert (cfg.get("model_type") == "bert") == (which != "current")
    assert A.family_for(cfg, folder).name == "mosaicbert"
    assert not bert_family.matches(cfg, folder)
    for name in MB.CUSTOM_CODE + ("tokenizer.json", "tokenizer_config.json", "model.safetensors"):
        assert (folder / name).is_file(), name


def test_bert_config_without_markers_is_still_mosaicbert(replicas, tmp_path):
    """The worst case: model_type bert + BertForMaskedLM, no alibi_starting_size, no auto_map -- plain BERT would
    load it ignoring every MosaicBERT tensor; the tensor names (Wqkv, gated_layers) send it here."""
    folder = shutil.copytree(replicas["2023"], tmp_path / "stripped")
    cfg = json.loads((folder / "config.json").read_text())
    del cfg["alibi_starting_size"], cfg["auto_map"]
    (folder / "config.json").write_text(json.dumps(cfg))
    assert A.family_for(cfg, folder).name == "mosaicbert"
    lm = M.load_model(folder, device="cpu")
    assert lm.family == "mosaicbert" and lm.load_report.loaded == lm.load_report.checkpoint_tensors


def test_plain_bert_is_not_taken(tmp_path):
    folder = M.make_tiny_dnabert(tmp_path / "DNA_bert_3", k=3)
    cfg = A.read_config(folder)
    assert not MB.matches(cfg, folder)
    assert A.family_for(cfg, folder).name == "bert"


# ------------------------------------------------------------------------------------------------
# Strict loading
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["2023", "current", "12heads"])
def test_every_tensor_is_used(replicas, which):
    lm = M.load_model(replicas[which], device="cpu")
    rep = lm.load_report
    n = len(_checkpoint(replicas[which]))
    assert rep.checkpoint_tensors == n and rep.loaded == n
    assert rep.missing == [] and rep.unexpected == [] and rep.mismatched == [] and rep.allowed == []
    assert lm.family == "mosaicbert" and lm.positions == "alibi" and lm.max_tokens is None
    for cap in ("masked_logprobs", "layer_readout", "hidden_states", "attention", "input_embeddings", "classifier"):
        assert lm.can(cap), cap
    assert lm.model.cls.predictions.decoder.weight is lm.input_embeddings()  # tied


def test_dnabert_s_refuses_mlm_and_loads_as_base(replicas):
    folder = replicas["S"]
    names = set(_checkpoint(folder))
    assert not any(n.startswith(("cls.", "bert.")) for n in names) and "pooler.dense.weight" in names
    with pytest.raises(ParameterError, match=r"head='base'") as info:
        M.load_model(folder, device="cpu")
    assert "masked-language-model head" in str(info.value)
    lm = M.load_model(folder, device="cpu", head="base")
    assert lm.load_report.loaded == lm.load_report.checkpoint_tensors == len(names)
    assert lm.load_report.missing == [] and lm.load_report.unexpected == []
    assert not lm.can("masked_logprobs") and "no MLM head" in lm.why_not("masked_logprobs")
    with pytest.raises(A.NotApplicable, match="no MLM head"):
        lm.require("masked_logprobs", "masked-token prediction")
    assert lm.can("hidden_states") and lm.can("attention")


def _tampered(src: Path, dst: Path, edit) -> Path:
    from safetensors.torch import save_file

    folder = Path(shutil.copytree(src, dst))
    state = edit(_checkpoint(folder))
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "model.safetensors"))
    return folder


def test_damaged_checkpoints_are_refused_naming_the_tensor(replicas, tmp_path):
    src = replicas["2023"]
    gone = "bert.encoder.layer.1.mlp.wo.bias"
    f = _tampered(src, tmp_path / "removed", lambda s: {k: v for k, v in s.items() if k != gone})
    with pytest.raises(ModelNotAvailableError, match=re.escape(gone)):
        M.load_model(f, device="cpu")
    old, new = "bert.encoder.layer.0.attention.self.Wqkv.weight", "bert.encoder.layer.0.attention.self.qkv.weight"
    f = _tampered(src, tmp_path / "renamed", lambda s: {(new if k == old else k): v for k, v in s.items()})
    with pytest.raises(ModelNotAvailableError) as info:
        M.load_model(f, device="cpu")
    assert old in str(info.value) and new in str(info.value)
    bad = "bert.encoder.layer.0.mlp.gated_layers.weight"
    f = _tampered(src, tmp_path / "reshaped", lambda s: {k: (v[:-2] if k == bad else v) for k, v in s.items()})
    with pytest.raises(ModelNotAvailableError, match=re.escape(bad) + r": \(126, 32\) vs \(128, 32\)"):
        M.load_model(f, device="cpu")
    with pytest.raises(ModelNotAvailableError, match=r"encoder\.layer\.0\.mlp\.gated_layers\.weight"):
        M.load_model(f, device="cpu", head="base")
    f = _tampered(src, tmp_path / "nobias", lambda s: {k: v for k, v in s.items() if k != "cls.predictions.decoder.bias"})
    with pytest.raises(ModelNotAvailableError, match=r"cls\.predictions\.decoder\.bias"):
        M.load_model(f, device="cpu")
    # the tied decoder weight may be left out of a checkpoint: it is the word-embedding table
    f = _tampered(src, tmp_path / "untied", lambda s: {k: v for k, v in s.items() if k != "cls.predictions.decoder.weight"})
    lm = M.load_model(f, device="cpu")
    assert lm.load_report.loaded == lm.load_report.checkpoint_tensors and lm.load_report.missing == []


def test_base_head_ignores_only_the_mlm_head(replicas):
    lm = M.load_model(replicas["current"], device="cpu", head="base")
    rep = lm.load_report
    assert sorted(rep.unexpected) == sorted(n for n in _checkpoint(replicas["current"]) if n.startswith("cls."))
    assert rep.missing == [] and all(n.startswith("cls.") for n in rep.allowed)


def test_bin_and_safetensors_replicas_load_the_same(tmp_path):
    a = M.load_model(MB.make_replica(tmp_path / "a", seed=7), device="cpu")
    b = M.load_model(MB.make_replica(tmp_path / "b", seed=7, weights="bin"), device="cpu")
    assert (tmp_path / "b" / "pytorch_model.bin").is_file() and not (tmp_path / "b" / "model.safetensors").exists()
    assert b.load_report.loaded == b.load_report.checkpoint_tensors
    ids, att = a.frame([a.tokenizer.encode("ACGTTGCAAGTCCGATAGG").ids])
    with torch.no_grad():
        la = a.model(torch.from_numpy(ids), torch.from_numpy(att)).logits
        lb = b.model(torch.from_numpy(ids), torch.from_numpy(att)).logits
    assert torch.equal(la, lb)


# ------------------------------------------------------------------------------------------------
# Numbers: the slow reference, padding, attention
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["2023", "current", "S", "12heads"])
def test_outputs_equal_slow_reference_with_padding(replicas, which):
    folder = replicas[which]
    head = "base" if which == "S" else "mlm"
    lm = M.load_model(folder, device="cpu", head=head)
    cfg = A.read_config(folder)
    W = _checkpoint(folder)
    rng = np.random.default_rng(5)
    seqs = _random_dna(rng, 3, 8, 70)
    seqs[1] = seqs[1][:6]  # a short row: padding in the batch
    ids, att = lm.frame([lm.tokenizer.encode(s).ids for s in seqs])
    assert (att == 0).any()
    with torch.no_grad():
        out = lm.encode(torch.from_numpy(ids), torch.from_numpy(att), hidden_states=True, attentions=True)
    assert len(out.hidden_states) == cfg["num_hidden_layers"] + 1 and len(out.attentions) == cfg["num_hidden_layers"]
    for r in range(len(seqs)):
        n = int(att[r].sum())
        states, probs, logits = reference(W, cfg, ids[r, :n].tolist())
        for layer, (got, want) in enumerate(zip(out.hidden_states, states)):
            torch.testing.assert_close(got[r, :n].double(), want, atol=1e-5, rtol=0, msg=f"hidden state {layer}")
            assert (got[r, n:] == 0).all()  # padded positions hold nothing
        for got, want in zip(out.attentions, probs):
            torch.testing.assert_close(got[r, :, :n, :n].double(), want, atol=1e-5, rtol=0)
            assert (got[r, :, :, n:] == 0).all()  # padded keys get no weight
        if logits is not None:
            with torch.no_grad():
                mine = lm.token_logits(out.last_hidden_state[r, :n])
                full = lm.model(torch.from_numpy(ids), torch.from_numpy(att)).logits[r, :n]
            torch.testing.assert_close(mine.double(), logits, atol=1e-5, rtol=0)
            torch.testing.assert_close(full.double(), logits, atol=1e-5, rtol=0)
    # the fast path (no attention weights asked: SDPA) gives the same hidden states
    with torch.no_grad():
        fast = lm.encode(torch.from_numpy(ids), torch.from_numpy(att)).last_hidden_state
    torch.testing.assert_close(fast, out.last_hidden_state, atol=1e-5, rtol=0)


def test_padding_does_not_change_a_row(replicas):
    lm = M.load_model(replicas["2023"], device="cpu")
    rng = np.random.default_rng(11)
    short, long_ = _random_dna(rng, 1, 10, 11)[0], _random_dna(rng, 1, 200, 201)[0]
    enc = lm.tokenizer.encode(short).ids
    alone = lm.frame([enc])
    batch = lm.frame([enc, lm.tokenizer.encode(long_).ids])
    n = alone[0].shape[1]
    with torch.no_grad():
        a = lm.model(torch.from_numpy(alone[0]), torch.from_numpy(alone[1]), output_hidden_states=True)
        b = lm.model(torch.from_numpy(batch[0]), torch.from_numpy(batch[1]), output_hidden_states=True)
    torch.testing.assert_close(b.logits[0, :n], a.logits[0], atol=1e-5, rtol=0)
    for ha, hb in zip(a.hidden_states, b.hidden_states):
        torch.testing.assert_close(hb[0, :n], ha[0], atol=1e-5, rtol=0)
    lp = lm.masked_logprobs(batch[0], batch[1], [[1, 2], [1]], batch_size=2, amp=False)
    assert lp[0].shape == (2, lm.tokenizer.vocab_size) and np.isfinite(lp[0][:, ~lm.tokenizer.is_special]).all()


def test_no_length_limit_beyond_alibi_starting_size(replicas):
    lm = M.load_model(replicas["current"], device="cpu")
    seq = "".join(np.random.default_rng(2).choice(list("ACGT"), size=3000))
    enc = lm.tokenizer.encode(seq).ids
    assert len(enc) > 512
    ids, att = lm.frame([enc])
    with torch.no_grad():
        h = lm.encode(torch.from_numpy(ids), torch.from_numpy(att)).last_hidden_state
    assert h.shape == (1, len(enc) + 2, lm.hidden_size) and torch.isfinite(h).all()


# ------------------------------------------------------------------------------------------------
# Tokenizer
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["2023", "S"])
def test_tokenizer_ids_equal_the_families_tokenizer(replicas, which):
    from tokenizers import Tokenizer

    folder = replicas[which]
    lm = M.load_model(folder, device="cpu", head="base")
    ref = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tok = lm.tokenizer
    assert (tok.unk_id, tok.cls_id, tok.sep_id, tok.pad_id, tok.mask_id) == (0, 1, 2, 3, 4)
    assert tok.vocab_size == ref.get_vocab_size() == A.read_config(folder)["vocab_size"]
    rng = np.random.default_rng(3)
    seqs = _random_dna(rng, 40, 1, 120)
    for s in seqs:
        enc = tok.encode(s)
        assert enc.ids.tolist() == ref.encode(s, add_special_tokens=False).ids
        assert "".join(tok.vocab[i] for i in enc.ids) == s
        assert [s[a:b] for a, b in enc.spans] == [tok.vocab[i] for i in enc.ids]
        ids, _ = lm.frame([enc.ids])
        assert ids[0].tolist() == ref.encode(s).ids  # the post-processor's [CLS] x [SEP]
    assert tok.encode(seqs[0].lower()).ids.tolist() == ref.encode(seqs[0], add_special_tokens=False).ids


# ------------------------------------------------------------------------------------------------
# Classifier
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["current", "S"])
def test_classifier_is_the_published_one(replicas, which):
    lm = M.load_model(replicas[which], device="cpu", head="base" if which == "S" else "mlm")
    clf = lm.classifier(3, seed=1)
    rep = clf.load_report
    assert clf.head == "classification" and clf.model.training
    assert {"classifier.weight", "classifier.bias"} <= set(rep.allowed)
    assert rep.loaded == rep.checkpoint_tensors - sum(n.startswith("cls.") for n in _checkpoint(replicas[which]))
    if which == "S":  # DNABERT-S ships a pooler: it is used, not re-initialised
        assert not any("pooler" in n for n in rep.allowed)
    ids, att = lm.frame([lm.tokenizer.encode(s).ids for s in ("ACGTAGGCTA", "TTGACCA")])
    out = clf.model(torch.from_numpy(ids), torch.from_numpy(att), labels=torch.tensor([0, 2]))
    assert out.logits.shape == (2, 3) and torch.isfinite(out.loss)
    out.loss.backward()
    assert clf.model.bert.encoder.layer[0].mlp.gated_layers.weight.grad is not None
    again = lm.classifier(3, seed=1)
    torch.testing.assert_close(again.model.classifier.weight, clf.model.classifier.weight)
    rnd = lm.classifier(3, init="random", seed=1)
    assert rnd.load_report is None
    assert not torch.equal(rnd.model.bert.embeddings.word_embeddings.weight, lm.input_embeddings())


# ------------------------------------------------------------------------------------------------
# Opt-in: the original code of a downloaded folder
# ------------------------------------------------------------------------------------------------
REAL = os.environ.get("DNALM_DNABERT2_DIR")


@pytest.mark.skipif(not REAL, reason="set DNALM_DNABERT2_DIR to a downloaded DNABERT-2-117M (or DNABERT-S) folder")
def test_matches_the_original_code_of_a_real_folder():
    import importlib
    import warnings

    from transformers import BertConfig

    pytest.importorskip("einops")
    folder = Path(REAL)
    cfg = A.read_config(folder)
    lm = M.load_model(folder, device="cpu", head="mlm" if any(
        n.startswith("cls.predictions.") for n in MB.tensor_names(folder)) else "base")
    assert lm.family == "mosaicbert" and lm.load_report.loaded == lm.load_report.checkpoint_tensors
    pkg = types.ModuleType("_dnabert2_original")
    pkg.__path__ = [str(folder)]
    sys.modules[pkg.__name__] = pkg
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            original = importlib.import_module(pkg.__name__ + ".bert_layers")
            oc = BertConfig(**{k: v for k, v in cfg.items() if k not in ("auto_map", "model_type")})
            oc.alibi_starting_size = cfg.get("alibi_starting_size", 512)
            if lm.head == "mlm":
                model = original.BertForMaskedLM(oc)
            else:
                model = original.BertModel(oc, add_pooling_layer=any("pooler" in n for n in MB.tensor_names(folder)))
    except Exception as exc:  # the folder's code targets transformers 4.2x
        pytest.skip(f"the folder's own bert_layers.py does not run here: {type(exc).__name__}: {exc}")
    finally:
        for name in [m for m in sys.modules if m.startswith(pkg.__name__)]:
            del sys.modules[name]
    missing, unexpected = model.load_state_dict(A.read_state_dict(folder), strict=False)
    assert not unexpected and all("decoder.weight" in m for m in missing)
    model.eval()
    seqs = _random_dna(np.random.default_rng(0), 4, 30, 400)
    ids, att = lm.frame([lm.tokenizer.encode(s).ids for s in seqs])
    ti, ta = torch.from_numpy(ids), torch.from_numpy(att)
    with torch.no_grad():
        if lm.head == "mlm":
            want = model(input_ids=ti, attention_mask=ta).logits
            got = lm.model(ti, ta).logits
        else:
            want = model(ti, attention_mask=ta)[0]
            got = lm.encode(ti, ta).last_hidden_state
    for r in range(len(seqs)):
        n = int(att[r].sum())
        torch.testing.assert_close(got[r, :n], want[r, :n], atol=2e-4, rtol=1e-4)

