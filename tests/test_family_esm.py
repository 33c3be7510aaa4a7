"""Nucleotide Transformer v1 / v2 (families.esm): published layout, strict loading, outputs against a slow
reference written here from the published equations, NT's tokenization rule, vocabulary checks."""

from __future__ import annotations

import itertools
import json
import math
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from dnalm_utils.errors import ModelNotAvailableError, VocabularyMismatchError
from dnalm_utils.families import esm
from dnalm_utils.models import load_model

K = 6
LAYERS, HIDDEN, HEADS, INTER = 2, 32, 2, 64


@pytest.fixture(scope="module")
def replicas(tmp_path_factory):
    root = tmp_path_factory.mktemp("nt")
    return {v: esm.make_replica(root / f"nt_v{v}", version=v, k=K, layers=LAYERS, hidden=HIDDEN, heads=HEADS,
                                intermediate=INTER, seed=v) for v in (1, 2)}


@pytest.fixture(scope="module")
def models(replicas):
    return {v: load_model(replicas[v], device="cpu", dtype="float32") for v in (1, 2)}


def _copy(folder, tmp_path, name="copy"):
    dst = tmp_path / name
    shutil.copytree(folder, dst)
    return dst


# ------------------------------------------------------------------------------------------------
# The published layout
# ------------------------------------------------------------------------------------------------
def expected_names(version):
    """Tensor names of NT's published checkpoints (HF EsmForMaskedLM / NT v2 modeling_esm.py)."""
    names = ["esm.embeddings.word_embeddings.weight", "esm.embeddings.position_embeddings.weight",
             "esm.encoder.emb_layer_norm_after.weight", "esm.encoder.emb_layer_norm_after.bias",
             "esm.contact_head.regression.weight", "esm.contact_head.regression.bias",
             "lm_head.dense.weight", "lm_head.dense.bias", "lm_head.layer_norm.weight", "lm_head.layer_norm.bias",
             "lm_head.decoder.weight", "lm_head.bias"]
    if version == 1:
        names.append("esm.embeddings.position_ids")
    for i in range(LAYERS):
        p = f"esm.encoder.layer.{i}."
        names += [p + s for s in ("attention.LayerNorm.weight", "attention.LayerNorm.bias", "LayerNorm.weight",
                                  "LayerNorm.bias", "intermediate.dense.weight", "output.dense.weight",
                                  "attention.output.dense.weight", "attention.output.dense.bias")]
        names += [f"{p}attention.self.{m}.{w}" for m in ("query", "key", "value") for w in ("weight", "bias")]
        if version == 1:
            names += [p + "intermediate.dense.bias", p + "output.dense.bias"]
        else:
            names.append(p + "attention.self.rotary_embeddings.inv_freq")
    return set(names)


@pytest.mark.parametrize("version", [1, 2])
def test_replica_is_the_published_layout(replicas, version):
    folder = replicas[version]
    files = {p.name for p in folder.iterdir()}
    expected_files = {"config.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json",
                      "model.safetensors"} | ({"esm_config.py", "modeling_esm.py"} if version == 2 else set())
    assert files == expected_files
    cfg = json.loads((folder / "config.json").read_text())
    vocab = (folder / "vocab.txt").read_text().split()
    kmers = ["".join(p) for p in itertools.product("ATCG", repeat=K)]
    assert len(vocab) == 4**K + 11 == 4107
    if version == 1:
        assert vocab == ["<unk>", "<pad>", "<mask>", "<cls>"] + kmers + list("ATCGN") + ["<eos>", "<bos>"]
        assert cfg["vocab_size"] == 4105 and cfg["position_embedding_type"] == "absolute"
        assert cfg["max_position_embeddings"] == 1002 and cfg["architectures"] == ["EsmForMaskedLM"]
        assert "auto_map" not in cfg and "add_bias_fnn" not in cfg
    else:
        assert vocab == ["<unk>", "<pad>", "<mask>", "<cls>", "<eos>", "<bos>"] + kmers + list("ATCGN")
        assert cfg["vocab_size"] == 4107 and cfg["position_embedding_type"] == "rotary"
        assert cfg["add_bias_fnn"] is False and cfg["max_position_embeddings"] == 2050
        assert cfg["auto_map"]["AutoModelForMaskedLM"] == "modeling_esm.EsmForMaskedLM"
    assert cfg["model_type"] == "esm" and cfg["pad_token_id"] == 1 and cfg["mask_token_id"] == 2
    assert cfg["tie_word_embeddings"] is False and cfg["token_dropout"] is False and cfg["emb_layer_norm_before"] is False
    tok_cfg = json.loads((folder / "tokenizer_config.json").read_text())
    assert tok_cfg["tokenizer_class"] == "EsmTokenizer" and tok_cfg["eos_token"] is None
    assert tok_cfg["model_max_length"] == cfg["max_position_embeddings"] - 2
    sd = load_file(str(folder / "model.safetensors"))
    assert set(sd) == expected_names(version)
    assert sd["esm.embeddings.word_embeddings.weight"].shape == (cfg["vocab_size"], HIDDEN)
    assert sd["lm_head.decoder.weight"].shape == (cfg["vocab_size"], HIDDEN)
    rows = 2 * INTER if version == 2 else INTER
    assert sd["esm.encoder.layer.0.intermediate.dense.weight"].shape == (rows, HIDDEN)
    assert sd["esm.contact_head.regression.weight"].shape == (1, LAYERS * HEADS)
    if version == 1:
        assert sd["esm.embeddings.position_ids"].dtype == torch.int64
        assert torch.equal(sd["esm.embeddings.position_ids"], torch.arange(1002)[None])
    else:
        d = HIDDEN // HEADS
        assert torch.allclose(sd["esm.encoder.layer.1.attention.self.rotary_embeddings.inv_freq"],
                              1.0 / 10000 ** (torch.arange(0, d, 2).float() / d))


@pytest.mark.parametrize("version", [1, 2])
def test_loads_every_tensor(models, replicas, version):
    lm = models[version]
    rep = lm.load_report
    n = len(load_file(str(replicas[version] / "model.safetensors")))
    assert rep.checkpoint_tensors == n and rep.loaded == n and rep.model_tensors == n
    assert not rep.missing and not rep.unexpected and not rep.mismatched and not rep.allowed
    assert lm.family == "nucleotide-transformer"
    assert lm.positions == ("absolute" if version == 1 else "rotary")
    assert lm.max_tokens == (1002 - 1 - 1 - 1 if version == 1 else None)
    assert lm.tokenizer.vocab_size == 4107
    assert lm.input_embeddings().shape[0] == (4105 if version == 1 else 4107)
    for cap in ("masked_logprobs", "layer_readout", "hidden_states", "attention", "classifier", "input_embeddings"):
        assert lm.can(cap)


def test_matches():
    assert esm.matches({"model_type": "esm"}, None)
    assert esm.matches({"architectures": ["EsmForMaskedLM"]}, None)
    assert not esm.matches({"model_type": "bert"}, None)
    assert not esm.matches({"model_type": "esm", "is_folding_model": True}, None)


# ------------------------------------------------------------------------------------------------
# Slow reference: NT's equations, one unpadded sequence at a time, float64, explicit loops
# ------------------------------------------------------------------------------------------------
def _ln(x, w, b, eps=1e-12):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b


def _gelu(x):
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def reference(folder, ids):
    """(hidden states list of L+1 (T, H), logits (T, table)) of the token ids ``ids`` (framed, no padding)."""
    cfg = json.loads((folder / "config.json").read_text())
    sd = {k: v.double() for k, v in load_file(str(folder / "model.safetensors")).items()}
    rotary = cfg["position_embedding_type"] == "rotary"
    glu = "add_bias_fnn" in cfg
    H, nh, I = cfg["hidden_size"], cfg["num_attention_heads"], cfg["intermediate_size"]
    d = H // nh
    T = len(ids)
    x = sd["esm.embeddings.word_embeddings.weight"][ids].clone()
    if not rotary:
        for t in range(T):
            x[t] += sd["esm.embeddings.position_embeddings.weight"][cfg["pad_token_id"] + 1 + t]
    hidden = [x]
    for layer in range(cfg["num_hidden_layers"]):
        p = f"esm.encoder.layer.{layer}."
        h = _ln(x, sd[p + "attention.LayerNorm.weight"], sd[p + "attention.LayerNorm.bias"])
        q = h @ sd[p + "attention.self.query.weight"].T + sd[p + "attention.self.query.bias"]
        k = h @ sd[p + "attention.self.key.weight"].T + sd[p + "attention.self.key.bias"]
        v = h @ sd[p + "attention.self.value.weight"].T + sd[p + "attention.self.value.bias"]
        ctx = torch.zeros(T, H, dtype=torch.float64)
        for head in range(nh):
            sl = slice(head * d, (head + 1) * d)
            qh, kh = q[:, sl] * d ** -0.5, k[:, sl].clone()
            if rotary:
                qr, kr = qh.clone(), kh.clone()
                for t in range(T):
                    for i in range(d // 2):
                        theta = t * 10000.0 ** (-2.0 * i / d)
                        c, s = math.cos(theta), math.sin(theta)
                        qr[t, i] = qh[t, i] * c - qh[t, i + d // 2] * s
                        qr[t, i + d // 2] = qh[t, i + d // 2] * c + qh[t, i] * s
                        kr[t, i] = kh[t, i] * c - kh[t, i + d // 2] * s
                        kr[t, i + d // 2] = kh[t, i + d // 2] * c + kh[t, i] * s
                qh, kh = qr, kr
            scores = qh @ kh.T
            w = torch.exp(scores - scores.max(-1, keepdim=True).values)
            ctx[:, sl] = (w / w.sum(-1, keepdim=True)) @ v[:, sl]
        x = x + ctx @ sd[p + "attention.output.dense.weight"].T + sd[p + "attention.output.dense.bias"]
        h = _ln(x, sd[p + "LayerNorm.weight"], sd[p + "LayerNorm.bias"])
        u = h @ sd[p + "intermediate.dense.weight"].T
        if glu:  # NT v2: silu(first half) * second half, no biases
            a, b = u[:, :I], u[:, I:]
            f = a / (1.0 + torch.exp(-a)) * b
            x = x + f @ sd[p + "output.dense.weight"].T
        else:
            f = _gelu(u + sd[p + "intermediate.dense.bias"])
            x = x + f @ sd[p + "output.dense.weight"].T + sd[p + "output.dense.bias"]
        hidden.append(x)
    hidden[-1] = _ln(x, sd["esm.encoder.emb_layer_norm_after.weight"], sd["esm.encoder.emb_layer_norm_after.bias"])

    def head(z):
        z = _gelu(z @ sd["lm_head.dense.weight"].T + sd["lm_head.dense.bias"])
        z = _ln(z, sd["lm_head.layer_norm.weight"], sd["lm_head.layer_norm.bias"])
        return z @ sd["lm_head.decoder.weight"].T + sd["lm_head.bias"]

    lens = [head(_ln(hh, sd["esm.encoder.emb_layer_norm_after.weight"], sd["esm.encoder.emb_layer_norm_after.bias"]))
            for hh in hidden[:-1]]
    return hidden, head(hidden[-1]), lens


SEQS = ["ACGTTGCAAGGTCCANNACGTAGC", "TTGACCA", "GGGCCCAAATTTGNACGTACGTACGTACGTAAC", "NACGTAGCTTAGGCTAN"]


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("eager", [False, True])
def test_outputs_equal_slow_reference(models, replicas, version, eager):
    lm = models[version]
    enc = [lm.tokenizer.encode(s).ids for s in SEQS]
    ids, att = lm.frame(enc)
    assert (att == 0).any()  # the batch is padded
    with torch.no_grad():
        out = lm.encode(torch.from_numpy(ids), torch.from_numpy(att), hidden_states=True, attentions=eager)
        for r in range(len(SEQS)):
            n = int(att[r].sum())
            ref_hidden, ref_logits, ref_lens = reference(replicas[version], ids[r, :n].tolist())
            for layer in range(lm.n_layers + 1):
                got = out.hidden_states[layer][r, :n].double()
                torch.testing.assert_close(got, ref_hidden[layer], atol=1e-5, rtol=1e-5)
            logits = lm.token_logits(out.last_hidden_state[r, :n])
            table = ref_logits.shape[-1]
            torch.testing.assert_close(logits[:, :table].double(), ref_logits, atol=1e-5, rtol=1e-5)
            assert torch.isneginf(logits[:, table:]).all() and logits.shape[-1] == 4107
            for layer in range(lm.n_layers):  # logit lens: emb_layer_norm_after, then the MLM head
                lens = lm.token_logits(out.hidden_states[layer][r, :n], layer=layer)[:, :table]
                torch.testing.assert_close(lens.double(), ref_lens[layer], atol=1e-5, rtol=1e-5)
    if eager:
        assert len(out.attentions) == lm.n_layers
        a = out.attentions[0]
        assert a.shape == (len(SEQS), HEADS, ids.shape[1], ids.shape[1])
        assert torch.all(a[torch.from_numpy(att == 0)[:, None, None, :].expand_as(a)] == 0)


@pytest.mark.parametrize("version", [1, 2])
def test_padding_does_not_change_a_row(models, version):
    lm = models[version]
    enc = [lm.tokenizer.encode(s).ids for s in SEQS]
    ids, att = lm.frame(enc)
    with torch.no_grad():
        batch = lm.encode(torch.from_numpy(ids), torch.from_numpy(att), hidden_states=True)
        for r, e in enumerate(enc):
            i1, a1 = lm.frame([e])
            alone = lm.encode(torch.from_numpy(i1), torch.from_numpy(a1), hidden_states=True)
            n = i1.shape[1]
            for layer in range(lm.n_layers + 1):
                torch.testing.assert_close(batch.hidden_states[layer][r, :n], alone.hidden_states[layer][0],
                                           atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("version", [1, 2])
def test_masked_logprobs(models, version):
    lm = models[version]
    ids, att = lm.frame([lm.tokenizer.encode(s).ids for s in SEQS[:2]])
    ids[0, 2] = lm.tokenizer.mask_id
    lp = lm.masked_logprobs(ids, att, [[1, 2], [1]], batch_size=2, amp=False)
    assert [x.shape for x in lp] == [(2, 4107), (1, 4107)]
    for x in lp:
        np.testing.assert_allclose(np.exp(x).sum(1), 1.0, atol=1e-5)
        assert np.isneginf(x[:, lm.tokenizer.is_special]).all()
        assert np.isneginf(x[:, lm.tokenizer.token_to_id["<eos>"]]).all()


# ------------------------------------------------------------------------------------------------
# Tokenization: NT's rule, NT's own (HF EsmTokenizer) ids, framing without <eos>
# ------------------------------------------------------------------------------------------------
def nt_rule(seq, k):
    """Transcription of NT's NucleotidesKmersTokenizer.tokenize (instadeepai/nucleotide-transformer,
    nucleotide_transformer/tokenizers.py): split at N, k-mers from each piece's start, leftovers one by one."""
    tokens = []
    pieces = seq.split("N")
    for i, piece in enumerate(pieces):
        full = len(piece) // k
        tokens += [piece[j * k : (j + 1) * k] for j in range(full)]
        tokens += list(piece[full * k :])
        if i < len(pieces) - 1:
            tokens.append("N")
    return tokens


@pytest.mark.parametrize("version", [1, 2])
def test_tokenizer_ids_equal_nt(models, replicas, version):
    from transformers import EsmTokenizer

    lm = models[version]
    vocab = (replicas[version] / "vocab.txt").read_text().split()
    index = {t: i for i, t in enumerate(vocab)}
    hf = EsmTokenizer.from_pretrained(str(replicas[version]))
    rng = np.random.default_rng(version)
    seqs = []
    for _ in range(60):
        n = int(rng.integers(1, 80))
        s = "".join(rng.choice(list("ACGTN"), size=n, p=[0.24, 0.24, 0.24, 0.24, 0.04]))
        seqs.append(s)
    seqs += ["A" * 13, "N" * 3, "ACGTAC" * 4 + "G", "NACGTACN"]
    assert any(len(s) % K for s in seqs) and any("N" in s for s in seqs)
    cls, eos, bos = index["<cls>"], index["<eos>"], index["<bos>"]
    for s in seqs:
        expected = [index[t] for t in nt_rule(s, K)]
        ours = lm.tokenizer.encode(s).ids.tolist()
        assert ours == expected, s
        assert hf(s)["input_ids"] == [cls] + expected, s  # NT's own tokenizer: <cls> + tokens, no <eos>
    ids, att = lm.frame([lm.tokenizer.encode(s).ids for s in seqs])
    assert (ids[:, 0] == cls).all()
    assert not np.isin(ids, [eos, bos]).any()
    for r, s in enumerate(seqs):
        n = int(att[r].sum())
        assert ids[r, :n].tolist() == hf(s)["input_ids"]
    assert lm.tokenizer.n_framing == 1 and lm.body_offset == 1


# ------------------------------------------------------------------------------------------------
# Strict loading: removed / renamed / reshaped tensors are refused by name
# ------------------------------------------------------------------------------------------------
def _edit(folder, tmp_path, fn, name="edited"):
    dst = _copy(folder, tmp_path, name)
    sd = load_file(str(dst / "model.safetensors"))
    sd = fn(sd)
    save_file({k: v.contiguous() for k, v in sd.items()}, str(dst / "model.safetensors"))
    return dst


@pytest.mark.parametrize("version", [1, 2])
def test_removed_renamed_reshaped_tensor_refused(replicas, tmp_path, version):
    name = "esm.encoder.layer.1.intermediate.dense.weight"
    gone = _edit(replicas[version], tmp_path, lambda sd: {k: v for k, v in sd.items() if k != name}, "gone")
    with pytest.raises(ModelNotAvailableError, match=name.replace(".", r"\.")):
        load_model(gone, device="cpu", dtype="float32")

    old = "esm.encoder.layer.0.attention.self.query.weight"
    new = "esm.encoder.layer.0.attention.self.querry.weight"
    renamed = _edit(replicas[version], tmp_path,
                    lambda sd: {(new if k == old else k): v for k, v in sd.items()}, "renamed")
    with pytest.raises(ModelNotAvailableError) as info:
        load_model(renamed, device="cpu", dtype="float32")
    assert old in str(info.value) and new in str(info.value)

    def reshape(sd):
        w = sd[name]
        sd[name] = w[: INTER] if version == 2 else torch.cat([w, w])  # GLU halves gone / extra rows
        return sd

    reshaped = _edit(replicas[version], tmp_path, reshape, "reshaped")
    with pytest.raises(ModelNotAvailableError, match=name.replace(".", r"\.")):
        load_model(reshaped, device="cpu", dtype="float32")


def test_optional_buffers(replicas, tmp_path):
    """Checkpoints without the legacy position_ids (v1) or the per-layer inv_freq (v2) load completely too."""
    v1 = _edit(replicas[1], tmp_path, lambda sd: {k: v for k, v in sd.items() if not k.endswith("position_ids")}, "v1")
    v2 = _edit(replicas[2], tmp_path, lambda sd: {k: v for k, v in sd.items() if not k.endswith("inv_freq")}, "v2")
    for folder in (v1, v2):
        lm = load_model(folder, device="cpu", dtype="float32")
        assert lm.load_report.loaded == lm.load_report.checkpoint_tensors == lm.load_report.model_tensors


# ------------------------------------------------------------------------------------------------
# Vocabulary: NT v1's 4,107 tokens vs 4,105 rows accepted, real mismatches refused
# ------------------------------------------------------------------------------------------------
def _resize_table(folder, tmp_path, rows, name, vocab=None):
    def fn(sd):
        for k in ("esm.embeddings.word_embeddings.weight", "lm_head.decoder.weight"):
            sd[k] = sd[k][:rows]
        sd["lm_head.bias"] = sd["lm_head.bias"][:rows]
        return sd

    dst = _edit(folder, tmp_path, fn, name)
    cfg = json.loads((dst / "config.json").read_text())
    cfg["vocab_size"] = rows
    (dst / "config.json").write_text(json.dumps(cfg))
    if vocab is not None:
        (dst / "vocab.txt").write_text("\n".join(vocab) + "\n")
    return dst


def test_vocabulary_checks(models, replicas, tmp_path):
    lm = models[1]
    assert lm.tokenizer.vocab_size == 4107 and lm.config.vocab_size == 4105
    assert lm.tokenizer.vocab[4105:] == ["<eos>", "<bos>"]
    # v1 weights with a v2-ordered vocab.txt: ids 4105/4106 would be G and N, which have no row
    wrong_order = _copy(replicas[1], tmp_path, "wrong_order")
    (wrong_order / "vocab.txt").write_text("\n".join(esm.nt_vocabulary(2, K)) + "\n")
    with pytest.raises(VocabularyMismatchError):
        load_model(wrong_order, device="cpu", dtype="float32")
    # a table that lacks real tokens
    short = _resize_table(replicas[1], tmp_path, 4100, "short")
    with pytest.raises(VocabularyMismatchError):
        load_model(short, device="cpu", dtype="float32")
    # v2 (specials first) with a 4,105-row table: the rows missing are nucleotides, not <eos>/<bos>
    v2_short = _resize_table(replicas[2], tmp_path, 4105, "v2short")
    with pytest.raises(VocabularyMismatchError):
        load_model(v2_short, device="cpu", dtype="float32")
    # a tokenizer smaller than the table
    bigger = _copy(replicas[1], tmp_path, "bigger")
    (bigger / "vocab.txt").write_text("\n".join(esm.nt_vocabulary(1, K)[:-2]) + "\n")
    cfg = json.loads((bigger / "config.json").read_text())
    cfg["vocab_size"] = 4106
    (bigger / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(VocabularyMismatchError):
        load_model(bigger, device="cpu", dtype="float32")


# ------------------------------------------------------------------------------------------------
# Classification
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("version", [1, 2])
def test_classifier(models, version):
    lm = models[version]
    clf = lm.classifier(3, seed=1)
    rep = clf.load_report
    assert all(n.startswith(("classifier.", "lm_head.")) for n in rep.allowed)
    assert not rep.missing or all(n.startswith("classifier.") for n in rep.missing)
    ids, att = lm.frame([lm.tokenizer.encode(s).ids for s in SEQS])
    out = clf.model(torch.from_numpy(ids), torch.from_numpy(att), labels=torch.tensor([0, 1, 2, 0]))
    assert out.logits.shape == (4, 3) and torch.isfinite(out.loss)
    # the backbone is the pre-trained encoder: its <cls> state equals the MLM model's
    clf.model.eval()
    with torch.no_grad():
        h = clf.model.backbone(torch.from_numpy(ids), torch.from_numpy(att)).last_hidden_state
        ref = lm.encode(torch.from_numpy(ids), torch.from_numpy(att)).last_hidden_state
    torch.testing.assert_close(h, ref)


def test_tied_decoder(replicas, tmp_path):
    """Without lm_head.decoder.weight: tie_word_embeddings true ties it to the word embeddings; NT's own
    ``tie_word_embeddings: false`` refuses the load, naming the tensor."""
    dst = _edit(replicas[1], tmp_path, lambda sd: {k: v for k, v in sd.items() if k != "lm_head.decoder.weight"})
    with pytest.raises(ModelNotAvailableError, match=r"lm_head\.decoder\.weight"):
        load_model(dst, device="cpu", dtype="float32")
    cfg = json.loads((dst / "config.json").read_text())
    cfg["tie_word_embeddings"] = True
    (dst / "config.json").write_text(json.dumps(cfg))
    lm = load_model(dst, device="cpu", dtype="float32")
    assert lm.model.lm_head.decoder.weight is lm.model.esm.embeddings.word_embeddings.weight
    assert lm.load_report.loaded == lm.load_report.checkpoint_tensors
