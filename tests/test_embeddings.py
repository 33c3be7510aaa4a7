"""Embeddings: layer indexing and bookkeeping on tiny models, streamed statistics against brute-force numpy,
neighbourhood metrics on toy embeddings with known structure, and the projection cache."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from dnalm_utils.adapters import ModuleAdapter, NotApplicable
from dnalm_utils.families.bert import BertAdapter

import numpy as np
import pytest
import torch

from dnalm_utils import embeddings as E
from dnalm_utils import models as M
from dnalm_utils import tokenization as T
from dnalm_utils.errors import ParameterError, SequenceAlphabetError


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    return M.load_model(M.make_tiny_dnabert(tmp_path_factory.mktemp("m") / "tiny4", k=4, max_positions=128))


@pytest.fixture(scope="module")
def nt(tmp_path_factory):
    return M.load_model(M.make_tiny_nt(tmp_path_factory.mktemp("m") / "nt4", k=4, max_positions=128))


def _windows(lengths=(60, 60, 60, 60), seed=0):
    rng = np.random.default_rng(seed)
    return ["".join(rng.choice(list("ACGT"), n)) for n in lengths]


RAGGED = (60, 23, 41, 60, 9, 35)  # different lengths: padding inside every batch of 2 or 3


# ------------------------------------------------------------------------------------------------
# Static and contextual extraction
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["bert", "nt"])
def test_static_rows_are_the_embedding_weight_rows(which, request):
    lm = request.getfixturevalue(which)
    st = E.static_embeddings(lm)
    weight = lm.model.get_input_embeddings().weight.detach().numpy()
    assert st.vectors.dtype == np.float32 and st.vectors.shape == (len(st.ids), weight.shape[1])
    assert np.array_equal(st.vectors, weight[st.ids])
    assert not lm.tokenizer.is_special[st.ids].any() and st.tokens == [lm.tokenizer.vocab[i] for i in st.ids]
    expected = 4**4 if which == "bert" else 4**4 + 5  # NT also lists A T C G N
    assert len(st.tokens) == expected
    kmer = "ACGT"
    assert np.array_equal(st.vectors[st.tokens.index(kmer)], weight[lm.tokenizer.token_to_id[kmer]])


def test_layer_0_is_the_embedding_output_and_last_the_last_hidden_state(bert):
    seq = _windows((50,))[0]
    ce = E.contextual_embeddings(bert, [seq], amp=False)
    n = len(seq) - 4 + 1
    assert ce.vectors.shape == (3, n, 32) and ce.layers.tolist() == [0, 1, 2]
    ids = torch.from_numpy(bert.tokenizer.encode_ids(seq, add_special_tokens=True))[None]
    with torch.no_grad():
        emb = bert.model.bert.embeddings(input_ids=ids)[0, 1:-1].numpy()
        last = bert.model.bert(input_ids=ids).last_hidden_state[0, 1:-1].numpy()
    np.testing.assert_allclose(ce.vectors[0], emb, atol=1e-6)
    np.testing.assert_allclose(ce.vectors[-1], last, atol=1e-5)
    sub = E.contextual_embeddings(bert, [seq], layers=[2, 0], amp=False)
    assert sub.layers.tolist() == [2, 0] and np.array_equal(sub.vectors, ce.vectors[[2, 0]])
    assert np.array_equal(E.contextual_embeddings(bert, [seq], layers=-1, amp=False).vectors, ce.vectors[-1:])
    half = E.contextual_embeddings(bert, [seq], amp=False, dtype="float16")
    assert half.vectors.dtype == np.float16 and np.allclose(half.vectors, ce.vectors, atol=1e-2)


@pytest.mark.parametrize("which", ["bert", "nt"])
def test_specials_and_padding_never_reach_the_output(which, request):
    lm = request.getfixturevalue(which)
    tok = lm.tokenizer
    windows = _windows(RAGGED, seed=1)
    ce = E.contextual_embeddings(lm, windows, batch_size=3, amp=False)
    encs = [tok.encode(w) for w in windows]
    assert len(ce) == sum(len(e) for e in encs)
    assert not tok.is_special[ce.token_ids].any()
    for w, enc in enumerate(encs):
        part = ce.for_window(w)
        assert part.position.tolist() == list(range(len(enc)))
        assert np.array_equal(part.token_ids, enc.ids) and np.array_equal(part.spans, enc.spans)
        alone = E.contextual_embeddings(lm, [windows[w]], amp=False)  # no padding at all
        np.testing.assert_allclose(part.vectors, alone.vectors, atol=2e-5)
    streamed = list(E.iter_contextual(lm, windows, batch_size=2, amp=False))
    assert len(streamed) == 3 and np.array_equal(np.concatenate([s.window for s in streamed]), ce.window)
    np.testing.assert_allclose(np.concatenate([s.vectors for s in streamed], axis=1), ce.vectors, atol=2e-5)


def test_token_cap_splits_batches_without_changing_results(bert):
    windows = _windows(RAGGED, seed=2)
    assert E._batch_bounds([58, 20, 38], 64, 120) == [(0, 2), (2, 3)]
    assert E._batch_bounds([10, 10, 10], 2, 10**6) == [(0, 2), (2, 3)]
    a = E.contextual_embeddings(bert, windows, amp=False)
    b = E.contextual_embeddings(bert, windows, amp=False, max_batch_tokens=70)  # one window per pass
    np.testing.assert_allclose(a.vectors, b.vectors, atol=2e-5)


def test_pool_sequences_mean_and_cls(bert):
    windows = _windows(RAGGED[:4], seed=3)
    ce = E.contextual_embeddings(bert, windows, amp=False)
    mean = E.pool_sequences(bert, windows, method="mean", layer=-1, batch_size=2, amp=False)
    expected = np.stack([ce.vectors[-1, ce.window == w].mean(0) for w in range(len(windows))])
    assert mean.shape == (4, 32) and mean.dtype == np.float32
    np.testing.assert_allclose(mean, expected, atol=1e-5)
    cls = E.pool_sequences(bert, windows[:1], method="cls", layer=1, amp=False)
    ids = torch.from_numpy(bert.tokenizer.encode_ids(windows[0], add_special_tokens=True))[None]
    with torch.no_grad():
        h1 = bert.model.bert(input_ids=ids, output_hidden_states=True).hidden_states[1][0, 0].numpy()
    np.testing.assert_allclose(cls[0], h1, atol=1e-5)


def test_per_nucleotide_means_covering_tokens():
    tok = T.OverlappingKmerTokenizer(3)
    enc = tok.encode("ACGTACG")  # 5 tokens covering nt 0..6
    rng = np.random.default_rng(0)
    v = rng.normal(size=(2, 5, 4))
    out = E.per_nucleotide(v, enc.spans, 9)  # nt 7, 8: no token
    assert out.shape == (2, 9, 4)
    for p in range(7):
        cover = [i for i, (s, e) in enumerate(enc.spans) if s <= p < e]
        np.testing.assert_allclose(out[:, p], v[:, cover].mean(1), rtol=1e-6)
    assert len([i for i, (s, e) in enumerate(enc.spans) if s <= 3 < e]) == 3  # up to k tokens
    assert np.isnan(out[:, 7:]).all()
    assert E.per_nucleotide(v[0], enc.spans, 7).shape == (7, 4)
    with pytest.raises(ParameterError, match="length"):
        E.per_nucleotide(v, enc.spans, 5)


# ------------------------------------------------------------------------------------------------
# Streamed statistics against the full contextual output
# ------------------------------------------------------------------------------------------------
def _brute_variance_share(x, ids):
    total = ((x - x.mean(0)) ** 2).sum()
    between = sum((ids == t).sum() * ((x[ids == t].mean(0) - x.mean(0)) ** 2).sum() for t in np.unique(ids))
    return between / total


def _brute_self_similarity(x, ids, win, min_occurrences):
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    cos = u @ u.T
    other_window = win[:, None] != win[None, :]
    per_token = []
    for t in np.unique(ids):
        sel = ids == t
        if sel.sum() < min_occurrences:
            continue
        pairs = other_window[np.ix_(sel, sel)]
        if pairs.any():
            per_token.append(cos[np.ix_(sel, sel)][pairs].mean())
    different = other_window & (ids[:, None] != ids[None, :])
    return np.mean(per_token), cos[different].mean(), len(per_token)


@pytest.fixture(scope="module")
def repeated(bert):
    """Windows that share k-mers across windows (a motif planted in each) plus the full contextual output."""
    rng = np.random.default_rng(4)
    windows = ["".join(rng.choice(list("ACGT"), 20)) + "ACGTTGCA" * 3 + "".join(rng.choice(list("ACGT"), n))
               for n in (10, 30, 5, 22, 17)]
    return windows, E.contextual_embeddings(bert, windows, amp=False)


def test_streamed_token_means_equal_means_of_all_occurrences(bert, repeated):
    windows, ce = repeated
    means = E.token_mean_embeddings(bert, windows, min_occurrences=3, batch_size=2, amp=False)
    ids, counts = np.unique(ce.token_ids, return_counts=True)
    keep = counts >= 3
    assert means.ids.tolist() == ids[keep].tolist() and means.counts.tolist() == counts[keep].tolist()
    assert means.tokens == [bert.tokenizer.vocab[i] for i in means.ids]
    expected = np.stack([ce.vectors[:, ce.token_ids == t].mean(1) for t in means.ids], axis=1)
    assert means.vectors.shape == (3, keep.sum(), 32)
    np.testing.assert_allclose(means.vectors, expected, atol=1e-5)
    one = E.token_mean_embeddings(bert, windows, layers=[1], min_occurrences=1, amp=False)
    assert one.vectors.shape[:2] == (1, len(ids))


@pytest.mark.parametrize("min_occurrences", [1, 4])
def test_variance_share_and_self_similarity_equal_brute_force(bert, repeated, min_occurrences):
    windows, ce = repeated
    stats = E.token_statistics(bert, windows, batch_size=2, amp=False)  # streamed over 3 batches
    ve = E.variance_explained_by_token(stats, min_occurrences=min_occurrences)
    ss = E.self_similarity(stats, min_occurrences=max(2, min_occurrences))
    assert np.allclose(ve.to_numpy(), E.variance_explained_by_token(ce, min_occurrences=min_occurrences).to_numpy())
    ids, counts = np.unique(ce.token_ids, return_counts=True)
    kept = np.isin(ce.token_ids, ids[counts >= min_occurrences])
    for j in range(3):
        x = ce.vectors[j].astype(np.float64)
        share = _brute_variance_share(x[kept], ce.token_ids[kept])
        assert ve.token_share[j] == pytest.approx(share, rel=1e-6)
        assert ve.context_share[j] == pytest.approx(1 - share, rel=1e-6)
        same, different, n_tok = _brute_self_similarity(x, ce.token_ids, ce.window, max(2, min_occurrences))
        assert ss.same_token[j] == pytest.approx(same, rel=1e-6)
        assert ss.different_token[j] == pytest.approx(different, rel=1e-6)
        assert ss.tokens[j] == n_tok > 0
    groups, n = len(np.unique(ce.token_ids[kept])), kept.sum()
    assert ve.baseline[0] == pytest.approx((groups - 1) / (n - 1))


# ------------------------------------------------------------------------------------------------
# Labels and neighbourhood metrics on toy embeddings
# ------------------------------------------------------------------------------------------------
def test_token_labels_letters_gc_cpg_frequency():
    df = E.token_labels(["ACGT", "CGCG", "AT", "G"], counts=[3, 1, 0, 4])
    assert df.nt_1.tolist() == ["A", "C", "A", "G"] and df.nt_last.tolist() == ["T", "G", "T", "G"]
    assert df.nt_3.tolist()[:2] == ["G", "C"] and df.nt_3.isna().tolist() == [False, False, True, True]
    assert df.gc.tolist() == [0.5, 1.0, 0.0, 1.0] and df.cpg.tolist() == [1, 2, 0, 0]
    assert df.length.tolist() == [4, 4, 2, 1] and df["count"].tolist() == [3, 1, 0, 4]
    assert df.frequency.sum() == pytest.approx(1.0)
    assert "frequency" not in E.token_labels(["AC"]).columns


def test_purity_of_structured_and_random_embeddings():
    rng = np.random.default_rng(0)
    labels = rng.choice(list("ACGT"), 400)
    onehot = (labels[:, None] == np.array(list("ACGT"))[None, :]).astype(float)
    structured = onehot + 0.05 * rng.normal(size=onehot.shape)
    good = E.knn_purity(structured, labels, n_neighbors=10, seed=0)
    assert good["purity"] > 0.99 and good["baseline"] == pytest.approx(0.25, abs=0.03)
    noise = E.knn_purity(rng.normal(size=(400, 16)), labels, n_neighbors=10, seed=0)
    assert abs(noise["purity"] - noise["baseline"]) < 0.04
    again = E.knn_purity(structured, labels, n_neighbors=10, seed=0)
    assert again == good  # seeded shuffles
    with_missing = E.knn_purity(structured, np.where(np.arange(400) < 10, None, labels).tolist(), seed=0)
    assert with_missing["n"] == 390


def test_knn_r2_and_linear_probe():
    rng = np.random.default_rng(1)
    gc = rng.uniform(size=300)
    x = np.c_[np.cos(gc * 2), np.sin(gc * 2), 0.01 * rng.normal(size=(300, 6))]
    r = E.knn_r2(x, gc, n_neighbors=10, metric="euclidean")
    assert r["r2"] > 0.95 and r["baseline"] < 0.05
    noise = E.knn_r2(rng.normal(size=(300, 8)), gc, n_neighbors=10)
    assert noise["r2"] < 0.1 and abs(noise["r2"] - noise["baseline"]) < 0.15
    labels = rng.choice(list("AC"), 200)
    x = (labels == "A")[:, None] * 1.0 + 0.1 * rng.normal(size=(200, 4))
    p = E.linear_probe(x, labels, seed=0, cv=3)
    assert p["accuracy"] > 0.95 and p["baseline"] < 0.7 and 0.4 < p["majority"] < 0.6


def test_layer_metrics_table(bert, nt):
    windows = _windows([80] * 12, seed=5)
    df = E.layer_metrics(bert, windows, min_occurrences=2, n_neighbors=5, amp=False)
    assert list(df.columns) == ["model", "layer", "metric", "value", "baseline", "n"]
    expected = {f"nt_{i}_purity" for i in range(1, 5)} | {"gc_knn_r2", "self_similarity", "variance_explained_by_token"}
    assert set(df.metric) == expected and sorted(df.layer.unique()) == [0, 1, 2]
    assert len(df) == 3 * len(expected) and df.model.unique().tolist() == ["tiny4"]
    pur = df[df.metric.str.endswith("purity")]
    assert pur.value.between(0, 1).all() and pur.baseline.between(0, 1).all()
    stats = E.token_statistics(bert, windows, layers=[2], amp=False)
    again = E.metrics_from_statistics(stats, min_occurrences=2, n_neighbors=5)
    assert np.allclose(again.value, df[df.layer == 2].value)
    nt_df = E.layer_metrics(nt, windows, layers=[0, 2], min_occurrences=1, n_neighbors=5, amp=False)
    assert sorted(nt_df.layer.unique()) == [0, 2] and "nt_4_purity" in set(nt_df.metric)
    assert any("4-mers only" in note for note in nt_df.attrs["notes"])


def test_layer_metrics_skips_neighbourhoods_for_single_nucleotides():
    from transformers import BertConfig, BertForMaskedLM

    tok = T.NucleotideTokenizer()
    torch.manual_seed(0)
    model = BertForMaskedLM(BertConfig(vocab_size=tok.vocab_size, hidden_size=16, num_hidden_layers=1,
                                       num_attention_heads=2, intermediate_size=32, max_position_embeddings=64))
    lm = BertAdapter(model.eval(), tok, name="nuc", source="module", path=None, device=torch.device("cpu"),
                     dtype=torch.float32, head="mlm")
    df = E.layer_metrics(lm, _windows([40] * 3), min_occurrences=1, amp=False)
    assert set(df.metric) == {"self_similarity", "variance_explained_by_token"}
    assert any("skipped" in note for note in df.attrs["notes"])


# ------------------------------------------------------------------------------------------------
# Projection and its cache
# ------------------------------------------------------------------------------------------------
def test_projection_is_seeded_and_umap_runs():
    rng = np.random.default_rng(0)
    x = np.r_[rng.normal(size=(30, 8)), rng.normal(size=(30, 8)) + 4]
    a = E.umap_coordinates(x, method="pca", seed=0)
    assert a.shape == (60, 2) and np.array_equal(a, E.umap_coordinates(x, method="pca", seed=0))
    u = E.umap_coordinates(x, n_neighbors=10, seed=3)
    assert u.shape == (60, 2) and np.isfinite(u).all()
    assert np.array_equal(u, E.umap_coordinates(x, n_neighbors=10, seed=3))


def test_projection_cache_reused_only_when_valid(tmp_path, monkeypatch):
    calls = []
    real = E._project
    monkeypatch.setattr(E, "_project", lambda x, **kw: calls.append(kw) or real(x, **kw))
    x = np.random.default_rng(0).normal(size=(40, 6))
    cache = tmp_path / "sub" / "coords.csv"
    first = E.umap_coordinates(x, method="pca", cache=cache)
    assert len(calls) == 1 and cache.read_text().startswith("# {")
    head = json.loads(cache.read_text().splitlines()[0][2:])  # the one cache rule's header: the key spelled out
    assert head["kind"] == "embedding-map" and head["inputs"]["method"] == "pca" and head["inputs"]["n"] == 40
    assert "umap-learn" in head["versions"] and len(head["code_sha256"]) == 64 and len(head["key"]) == 64
    assert np.array_equal(E.umap_coordinates(x, method="pca", cache=cache), first) and len(calls) == 1  # reused
    E.umap_coordinates(x, method="pca", cache=cache, seed=1)  # other parameters: recomputed, then cached
    assert len(calls) == 2
    E.umap_coordinates(x + 1e-9, method="pca", cache=cache, seed=1)  # other vectors
    assert len(calls) == 3
    text = cache.read_text()
    cache.write_text(text.replace("\n-", "\n+", 1) if "\n-" in text else text[:-5])  # corrupt one value
    again = E.umap_coordinates(x + 1e-9, method="pca", cache=cache, seed=1)
    assert len(calls) == 4 and np.isfinite(again).all()
    cache.write_text(text[: len(text) // 2])  # truncated
    E.umap_coordinates(x + 1e-9, method="pca", cache=cache, seed=1)
    cache.write_bytes(b"\xff\xfe garbage")
    E.umap_coordinates(x + 1e-9, method="pca", cache=cache, seed=1)
    assert len(calls) == 6
    assert E.umap_coordinates(x + 1e-9, method="pca", cache=cache, seed=1) is not None and len(calls) == 6
    assert not [p for p in cache.parent.iterdir() if p.name != cache.name]  # no temp files left


# ------------------------------------------------------------------------------------------------
# Errors
# ------------------------------------------------------------------------------------------------
class NoHiddenStates(torch.nn.Module):
    config = SimpleNamespace(num_hidden_layers=2)

    def forward(self, input_ids, attention_mask=None, output_hidden_states=False):
        return SimpleNamespace(last_hidden_state=torch.zeros(*input_ids.shape, 4), hidden_states=None)


def test_bad_inputs_raise_clear_errors(bert):
    w = _windows((30,))
    with pytest.raises(ParameterError, match=r"0\.\.2"):
        E.contextual_embeddings(bert, w, layers=[3])
    with pytest.raises(ParameterError, match="twice"):
        E.token_statistics(bert, w, layers=[1, 1])
    with pytest.raises(ParameterError, match="min_occurrences"):
        E.token_mean_embeddings(bert, w, min_occurrences=0)
    with pytest.raises(ParameterError, match="empty"):
        E.contextual_embeddings(bert, [])
    with pytest.raises(ParameterError, match=r"0\.\.2"):
        E.iter_contextual(bert, w, layers=[-4])  # checked at the call, before any batch runs
    with pytest.raises(ParameterError, match="list of DNA windows"):
        E.pool_sequences(bert, w[0])
    with pytest.raises(SequenceAlphabetError, match="window 1"):
        E.contextual_embeddings(bert, [w[0], "ACGTNNACGT"])
    with pytest.raises(ParameterError, match="positions"):
        E.contextual_embeddings(bert, _windows((200,)))
    with pytest.raises(ParameterError, match="dtype"):
        E.contextual_embeddings(bert, w, dtype="int8")
    with pytest.raises(ParameterError, match="method"):
        E.pool_sequences(bert, w, method="max")
    with pytest.raises(ParameterError, match="batch_size"):
        E.contextual_embeddings(bert, w, batch_size=0)
    lm = ModuleAdapter(NoHiddenStates(), bert.tokenizer, capabilities=["hidden_states"], n_layers=2)
    with pytest.raises(ParameterError, match="returned none hidden states, expected 3"):
        E.contextual_embeddings(lm, w)
    lm = ModuleAdapter(torch.nn.Linear(2, 2), bert.tokenizer, capabilities=[])
    with pytest.raises(NotApplicable, match="token embeddings by layer is not applicable to module: .* hidden states"):
        E.token_statistics(lm, w)
    with pytest.raises(ParameterError, match="n_neighbors"):
        E.knn_purity(np.zeros((5, 2)), list("ACGTA"), n_neighbors=10)
    with pytest.raises(ParameterError, match="method"):
        E.umap_coordinates(np.zeros((10, 2)), method="tsne")
    with pytest.raises(ParameterError, match="NaN"):
        E.umap_coordinates(np.full((10, 2), np.nan), method="pca")


def test_static_metrics_score_the_input_table(bert):
    df = E.static_metrics(bert, n_neighbors=5, model="tiny4")
    assert (df.layer == E.STATIC_LAYER).all() and df.model.eq("tiny4").all()
    assert set(df.metric) == {f"nt_{i}_purity" for i in range(1, 5)} | {"gc_knn_r2"}
    assert (df[df.metric.str.endswith("purity")].n == 256).all()  # every 4-mer of the table
    st = E.static_embeddings(bert)
    labels = E.token_labels(st.tokens)
    direct = E.knn_purity(st.vectors, labels["nt_2"].to_numpy(), n_neighbors=5)
    row = df[df.metric == "nt_2_purity"].iloc[0]
    assert row.value == pytest.approx(direct["purity"]) and row.baseline == pytest.approx(direct["baseline"])


def test_applicable_keeps_models_with_hidden_states_and_a_table(bert):
    no_table = ModuleAdapter(torch.nn.Linear(2, 2), bert.tokenizer, capabilities=["hidden_states"], n_layers=1,
                             name="no_table")
    causal = ModuleAdapter(torch.nn.Linear(2, 2), bert.tokenizer, objective="causal", capabilities=[], name="lm")
    ok, skipped = E.applicable({"bert": bert, "no_table": no_table, "lm": causal})
    assert list(ok) == ["bert"]
    assert [(r["model"], r["probe"]) for r in skipped] == [("no_table", "token embeddings by layer"),
                                                          ("lm", "token embeddings by layer")]
    assert "input embeddings" in skipped[0]["reason"] and "hidden states" in skipped[1]["reason"]


# ------------------------------------------------------------------------------------------------
# Step-0 references
# ------------------------------------------------------------------------------------------------
def _step0_model(folder, k, init="nucleotide_sum", hidden=128):
    """A freshly initialised zoo-architecture model (hidden 128 as in the zoo, one small layer), saved and loaded
    the way training saves its step-0 folder."""
    from dnalm_utils import pretraining as P

    tok = T.OverlappingKmerTokenizer(k)
    cfg = P.PretrainConfig(name=f"step0_k{k}", scheme="overlapping", k=k, embedding_init=init, layers=1,
                           hidden=hidden, heads=2, intermediate=32, max_positions=64)
    return M.load_model(M.save_model(P.build_model(cfg, tok), tok, folder))


def test_analytic_letter_sum_purity_by_hamming_shells():
    for k in (2, 3, 4, 5, 6):  # up to 3k neighbours all sit one letter away: each differs at 1 of k positions
        assert E.letter_sum_static_purity(k, 1) == pytest.approx(1 - 1 / k)
        assert E.letter_sum_static_purity(k, 3 * k) == pytest.approx(1 - 1 / k)
    assert E.letter_sum_static_purity(3, 12) == pytest.approx(1 - (9 * 1 + 3 * 2) / (3 * 12))  # 3 from shell 2
    assert E.letter_sum_static_purity(2, 15) == pytest.approx(1 - (6 * 1 + 9 * 2) / (2 * 15))  # every other 2-mer
    with pytest.raises(ParameterError, match="n_neighbors"):
        E.letter_sum_static_purity(2, 16)


# Tolerance: for any neighbour graph of equal-length k-mers, mean-over-positions purity = 1 - (mean Hamming
# distance of the neighbour slots) / k, so measured - analytic = -(extra Hamming distance per slot) / k. Away from
# a shell boundary 0.002 allows at k = 5 one slot in 100 to hold a k-mer from the next shell out: at the zoo's
# d = 128 the cosine gap between shells (1/k >= 0.2) is several times the rows' sampling spread (~ d**-0.5 =
# 0.09), so the shells hardly mix (seen: |measured - analytic| <= 0.0007 for k = 3..6 at n_neighbors 10 and
# 3k + 3). At n_neighbors = 3k the last shell-1 slot competes with the nearest shell-2 row (seen: up to 0.004
# short): 0.01 there.
@pytest.mark.parametrize("k", [3, 4, 5])
def test_step0_static_purity_of_a_letter_sum_table_matches_the_analytic_value(k, tmp_path):
    lm = _step0_model(tmp_path / f"k{k}", k)
    for n_neighbors, tol in ((10, 0.002), (3 * k + 3, 0.002), (3 * k, 0.01)):  # chapter 4's default, into shell 2, boundary
        pur = E.static_metrics(lm, n_neighbors=n_neighbors)
        pur = pur[pur.metric.str.endswith("_purity")]
        assert len(pur) == k and (pur.n == 4**k).all()
        assert pur.value.mean() == pytest.approx(E.letter_sum_static_purity(k, n_neighbors), abs=tol)
        assert (pur.baseline < 0.27).all()


@pytest.mark.parametrize("k", [4, 5])
def test_step0_static_purity_of_a_random_table_is_chance(k, tmp_path):
    """Negative control: DNABERT's random rows carry no letter, so purity sits at the shuffled baseline
    (~1/4). Spread of one position's purity over 4**k tokens x 10 neighbours: sqrt(3/16 / (10 * 4**k)) <= 0.009,
    so 0.035 is ~4 sd even for one position."""
    lm = _step0_model(tmp_path / f"r{k}", k, init="random")
    pur = E.static_metrics(lm, n_neighbors=10)
    pur = pur[pur.metric.str.endswith("_purity")]
    assert np.abs(pur.value - 0.25).max() < 0.035 and np.abs(pur.value - pur.baseline).max() < 0.035
    assert pur.value.mean() < E.letter_sum_static_purity(k, 10) - 0.4


def _metric_table(model, values, layers=(-1, 0, 1), metrics=("nt_1_purity", "self_similarity")):
    import pandas as pd

    rows = [(model, layer, m) for layer in layers for m in metrics]
    df = pd.DataFrame(rows, columns=["model", "layer", "metric"])
    df["value"] = values[: len(df)]
    df["baseline"] = 0.25
    df["n"] = 64
    return df


def test_versus_initial_is_trained_minus_initial_row_by_row():
    import pandas as pd

    rng = np.random.default_rng(0)
    trained = pd.concat([_metric_table("a", rng.random(6)), _metric_table("b", rng.random(6)),
                         _metric_table("published", rng.random(6))], ignore_index=True)
    initial = pd.concat([_metric_table("a", rng.random(6)), _metric_table("b", rng.random(6))], ignore_index=True)
    initial = initial.sample(frac=1, random_state=1).iloc[1:]  # any row order; one step-0 row missing
    out = E.versus_initial(trained, initial)
    assert list(out.columns[:6]) == ["model", "layer", "metric", "trained", "initial", "difference"]
    assert set(out.model) == {"a", "b"} and len(out) == 12  # no step-0 twin: left out, not compared
    key = ["model", "layer", "metric"]
    t = out.merge(trained, on=key).value.to_numpy()
    i = out.merge(initial, on=key, how="left").value.to_numpy()
    assert np.array_equal(out.trained.to_numpy(), t) and np.array_equal(out.initial.to_numpy(), i, equal_nan=True)
    assert np.array_equal(out.difference.to_numpy(), t - i, equal_nan=True)
    assert out.difference.isna().sum() == 1
    with pytest.raises(ParameterError, match="more than one row"):
        E.versus_initial(pd.concat([trained, trained.iloc[:1]]), initial)
    with pytest.raises(ParameterError, match="lacks column"):
        E.versus_initial(trained.drop(columns="metric"), initial)


def test_model_metrics_labels_every_row_and_covers_static_and_hidden_layers(bert):
    stats, table = E.model_metrics(bert, _windows((60,) * 8), name="renamed", min_occurrences=1, n_neighbors=5)
    assert table.model.eq("renamed").all() and set(table.layer) == {E.STATIC_LAYER, 0, 1, 2}
    assert not table[["model", "layer", "metric"]].duplicated().any()
    assert stats.counts.sum() == 8 * (60 - 4 + 1)


def test_initial_models_load_step0_folders_and_report_the_rest(bert, tmp_path):
    from dnalm_utils import pretraining as P

    trained = _step0_model(tmp_path / "zoo" / "over3", 3)  # stands for a trained model folder
    _step0_model(tmp_path / "zoo" / "over3" / P.SNAPSHOTS / "step-0", 3, init="random")  # where training keeps step 0
    old = _step0_model(tmp_path / "zoo" / "old3", 3)  # a zoo model saved before step 0 was kept
    module = ModuleAdapter(torch.nn.Linear(2, 2), bert.tokenizer, capabilities=["hidden_states"], n_layers=1, name="m")
    twins, rows = E.initial_models({"over3": trained, "old3": old, "m": module}, device="cpu")
    assert list(twins) == ["over3"] and Path(twins["over3"].path) == P.initial_model_folder(trained.path)
    w0 = twins["over3"].model.get_input_embeddings().weight
    assert not torch.equal(w0, trained.model.get_input_embeddings().weight)  # the twin's own weights
    assert [r["model"] for r in rows] == ["old3", "m"] and all(r["probe"] == E.STEP0_PROBE for r in rows)
    assert all(r["reason"].startswith("no step-0 weights") for r in rows)


def test_step0_sentences_compute_the_comparison_from_the_tables():
    import pandas as pd

    summary = lambda purity: pd.DataFrame({  # noqa: E731
        "model": ["over4", "ctrl"], "static purity": purity, "static baseline": [0.25, 0.25],
        "last-layer purity": [0.6, 0.3], "last baseline": [0.25, 0.25], "GC R2 static": [0.5, 0.1],
        "GC R2 last": [0.4, 0.1], "self-sim same": [0.9, 0.8], "self-sim other": [0.2, 0.2],
        "token share first": [0.9, 0.9], "token share last": [0.7, 0.6], "token share baseline": [0.01, 0.01]})
    comparison = E.summary_versus_initial(summary([0.742, 0.30]), summary([0.75, 0.26]))
    row = comparison[(comparison.model == "over4") & (comparison.quantity == "static purity")].iloc[0]
    assert row.difference == pytest.approx(0.742 - 0.75) and row.baseline == 0.25
    roles = pd.DataFrame({"model": ["over4", "ctrl", "hub"], "scheme": ["overlapping"] * 3, "k": [4, 6, 6],
                          "embedding_init": ["nucleotide_sum", "random", None],
                          "label": ["overlapping 4-mers", "control", "published"]})
    na = [{"model": "hub", "probe": E.STEP0_PROBE, "reason": "no step-0 weights"}]
    text = E.step0_sentences(comparison, roles=roles, not_applicable=na, n_neighbors=10)
    assert "static letter purity 74.2 % (step 0: 75.0 %, -0.8 points)" in text["step0_list"]
    assert "last-layer self-similarity 0.90 (step 0: 0.90, +0.00)" in text["step0_list"]
    assert text["step0_analytic"] == "**over4** 75.0 % (k = 4, 10 neighbours; measured at step 0: 75.0 %)"  # not ctrl
    no_letters = comparison.copy()  # e.g. single nucleotides: no letter purity at all
    no_letters.loc[(no_letters.model == "ctrl") & (no_letters.quantity == "static purity"), ["trained", "initial"]] = np.nan
    ctrl = E.step0_sentences(no_letters, roles=roles, not_applicable=na, n_neighbors=10)["step0_list"].split("; ")[1]
    assert ctrl.startswith("**ctrl**") and "static letter purity" not in ctrl and "last-layer letter purity" in ctrl
    empty = E.summary_versus_initial(summary([0.742, 0.30]), pd.DataFrame())  # no model with step-0 weights
    assert list(empty.columns) == list(comparison.columns) and not len(empty)
    none = E.step0_sentences(empty, roles=roles, not_applicable=na, n_neighbors=10)
    assert none["step0_list"].startswith("n/a")  # the analytic value needs no step-0 weights:
    assert none["step0_analytic"] == "**over4** 75.0 % (k = 4, 10 neighbours; no step-0 weights to measure)"
    # over4's step-0 table was purer than the trained one: "more than all of it", never a share above 100 %.
    assert text["step0_share"] == ("**over4** more than all of it: training lowered it (75.0 % at step 0, 74.2 % "
                                   "trained), "
                                   f"**ctrl** {100 * (0.26 - 0.25) / (0.30 - 0.25):.0f} %")
    assert text["step0_na"] == "Not applicable for want of step-0 weights: **hub**."
