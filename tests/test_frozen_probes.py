"""Frozen-embedding probes: pooling against brute force, the feature cache, a hand-built model whose layer l
holds the label (perfect at l, chance elsewhere), C and the MCC threshold chosen on validation, seeds."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from dnalm_utils import embeddings as E
from dnalm_utils import frozen_probes as F
from dnalm_utils import models as M
from dnalm_utils import tokenization as T
from dnalm_utils.adapters import ModuleAdapter, NotApplicable
from dnalm_utils.errors import ParameterError

LETTERS = "ACGT"


class PlantedModel(torch.nn.Module):
    """Hidden states 0..n_layers of ``dim`` numbers per token: at layer ``planted`` every token carries
    ``signal`` x one-hot(class of the row's first nucleotide) plus noise, every other layer noise only. The
    noise is one standard-normal vector per row and layer, seeded by the row's token ids (so it is the same
    whatever the batch). Counts its forward calls."""

    def __init__(self, tokenizer, *, n_layers=3, planted=2, dim=8, signal=10.0):
        super().__init__()
        self.tok, self.n_layers, self.planted, self.dim, self.signal = tokenizer, n_layers, planted, dim, signal
        cls_of = [LETTERS.index(t[0]) if not tokenizer.is_special[i] else -1 for i, t in enumerate(tokenizer.vocab)]
        self.class_of = torch.tensor(cls_of)
        self.calls = 0

    def forward(self, input_ids, attention_mask=None, output_hidden_states=False):
        self.calls += 1
        rows, width = input_ids.shape
        label = self.class_of[input_ids[:, self.tok.body_offset]]
        weights = torch.arange(1, width + 1) * 7919
        hidden = []
        for j in range(self.n_layers + 1):
            noise = torch.empty(rows, self.dim)
            for r in range(rows):
                g = torch.Generator().manual_seed(int((input_ids[r] * weights).sum()) % 2**31 + 1_000_003 * j)
                noise[r] = torch.randn(self.dim, generator=g)
            h = noise[:, None, :].expand(rows, width, self.dim).clone()
            if j == self.planted:
                h[:, :, :4] += self.signal * torch.nn.functional.one_hot(label, 4).float()[:, None, :]
            hidden.append(h)
        logits = torch.zeros(rows, width, len(self.tok.vocab))
        return SimpleNamespace(logits=logits, hidden_states=tuple(hidden) if output_hidden_states else None)


class PositionModel(torch.nn.Module):
    """Hidden state of token (row, column) at layer j: [token id, column, j, 1]; specials and padding get 1000
    in every entry, so any leak into a mean shows."""

    def __init__(self, tokenizer, n_layers=2):
        super().__init__()
        self.special = torch.from_numpy(np.asarray(tokenizer.is_special))
        self.n_layers = n_layers

    def forward(self, input_ids, attention_mask=None, output_hidden_states=False):
        rows, width = input_ids.shape
        col = torch.arange(width).expand(rows, width).float()
        out = []
        for j in range(self.n_layers + 1):
            h = torch.stack([input_ids.float(), col, torch.full_like(col, j), torch.ones_like(col)], dim=-1)
            bad = self.special[input_ids] | (attention_mask == 0)
            out.append(torch.where(bad[..., None], torch.full_like(h, 1000.0), h))
        return SimpleNamespace(logits=torch.zeros(rows, width, 1), hidden_states=tuple(out))


def _planted(framing=("cls",), name="planted", **kw):
    tok = T.OverlappingKmerTokenizer(3).set_framing(prefix=framing, suffix=("sep",))
    model = PlantedModel(tok, **kw)
    return ModuleAdapter(model, tok, capabilities=["hidden_states"], n_layers=model.n_layers, name=name)


def _seqs(n, length=30, seed=0):
    rng = np.random.default_rng(seed)
    return ["".join(rng.choice(list(LETTERS), length)) for _ in range(n)]


def _task(sizes=(600, 200, 400), seed=0):
    out = {}
    for i, (split, n) in enumerate(zip(F.SPLITS, sizes)):
        seqs = _seqs(n, seed=seed + i)
        out[split] = (seqs, np.array([LETTERS.index(s[0]) for s in seqs]))
    return out


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    return M.load_model(M.make_tiny_dnabert(tmp_path_factory.mktemp("m") / "tiny4", k=4, max_positions=128))


# ------------------------------------------------------------------------------------------------
# Pooling
# ------------------------------------------------------------------------------------------------
def test_mean_pooling_excludes_specials_and_padding_brute_force():
    tok = T.OverlappingKmerTokenizer(3, on_invalid="unk")
    lm = ModuleAdapter(PositionModel(tok), tok, capabilities=["hidden_states"], n_layers=2)
    seqs = ["ACGTACGTAC", "ACGNTT", "GGGCCCAAATTTG", "ACG", "TTTTT"]  # ragged, an [UNK] inside the second
    feats = F.pooled_features(lm, seqs, batch_size=3)
    assert list(feats) == [0, 1, 2] and all(x.shape == (5, 4) and x.dtype == np.float32 for x in feats.values())
    for i, s in enumerate(seqs):
        ids = tok.encode(s).ids
        keep = ~tok.is_special[ids]
        cols = tok.body_offset + np.arange(len(ids))
        for j in range(3):
            expected = [ids[keep].mean(), cols[keep].mean(), j, 1.0]
            np.testing.assert_allclose(feats[j][i], expected, rtol=1e-6)
    assert tok.is_special[tok.encode(seqs[1]).ids].sum() == 3  # the N really gave 3 [UNK]s that were left out
    sub = F.pooled_features(lm, seqs, layers=[-1, 0], batch_size=1)
    assert list(sub) == [2, 0] and np.array_equal(sub[2], feats[2]) and np.array_equal(sub[0], feats[0])
    cls = F.pooled_features(lm, seqs, pooling="cls", layers=[1])
    assert (cls[1] == 1000).all()  # the [CLS] column of this module is a special token's row


def test_pooling_matches_the_embeddings_module_on_a_real_bert(bert):
    seqs = _seqs(5, length=40) + ["ACGTTGCA" * 3]
    mean = F.pooled_features(bert, seqs, batch_size=2)
    cls = F.pooled_features(bert, seqs, pooling="cls", layers=[0, 2])
    for layer in (0, 1, 2):
        np.testing.assert_allclose(mean[layer], E.pool_sequences(bert, seqs, layer=layer, amp=False), atol=1e-5)
    for layer in (0, 2):
        np.testing.assert_allclose(cls[layer], E.pool_sequences(bert, seqs, method="cls", layer=layer, amp=False),
                                   atol=1e-5)


def test_cls_pooling_on_a_family_without_cls_is_not_applicable():
    lm = _planted(framing=())
    with pytest.raises(NotApplicable, match="CLS pooling is not applicable to planted: .*no \\[CLS\\] token"):
        F.pooled_features(lm, _seqs(3), pooling="cls")
    assert set(F.pooled_features(lm, _seqs(3))) == {0, 1, 2, 3}  # mean pooling still works


# ------------------------------------------------------------------------------------------------
# Cache
# ------------------------------------------------------------------------------------------------
def test_cache_hit_skips_the_model_and_a_corrupt_entry_is_recomputed(tmp_path):
    lm = _planted()
    seqs = _seqs(20)
    first = F.pooled_features(lm, seqs, cache_dir=tmp_path, model_sha256="planted-v1", batch_size=8)
    calls = lm.model.calls
    assert calls == 3
    (entry,) = list(tmp_path.iterdir())
    assert entry.name.startswith("frozen-features-")
    again = F.pooled_features(lm, seqs, cache_dir=tmp_path, model_sha256="planted-v1", batch_size=8)
    assert lm.model.calls == calls  # no forward pass
    assert list(again) == list(first) and all(np.array_equal(again[k], first[k]) for k in first)
    entry.write_bytes(entry.read_bytes()[:-50])  # truncated
    redone = F.pooled_features(lm, seqs, cache_dir=tmp_path, model_sha256="planted-v1", batch_size=8)
    assert lm.model.calls == 2 * calls
    assert all(np.array_equal(redone[k], first[k]) for k in first)
    F.pooled_features(lm, seqs, cache_dir=tmp_path, model_sha256="planted-v1")  # repaired entry: a hit
    assert lm.model.calls == 2 * calls
    # other inputs are other entries, never the stored one
    for kwargs in ({"model_sha256": "planted-v2"}, {"model_sha256": "planted-v1", "layers": [2]},
                   {"model_sha256": "planted-v1", "pooling": "cls"}):
        before = lm.model.calls
        F.pooled_features(lm, seqs, cache_dir=tmp_path, **kwargs)
        assert lm.model.calls > before, kwargs
    F.pooled_features(lm, seqs[::-1], cache_dir=tmp_path, model_sha256="planted-v1")
    assert len(list(tmp_path.iterdir())) == 5
    with pytest.raises(ParameterError, match="model_sha256"):
        F.pooled_features(lm, seqs, cache_dir=tmp_path)


def test_cache_of_a_model_folder_uses_its_content(bert, tmp_path):
    seqs = _seqs(6, length=40)
    a = F.pooled_features(bert, seqs, cache_dir=tmp_path)
    key = F.feature_cache_key(bert, seqs, layers=[0, 1, 2], pooling="mean", amp=False)
    assert key.manifest["inputs"]["model_sha256"] == M.model_digest(bert.path)
    assert (tmp_path / f"frozen-features-{key.key}.npz.entry").is_file()
    b = F.pooled_features(bert, seqs, cache_dir=tmp_path)
    assert all(np.array_equal(a[k], b[k]) for k in a)


# ------------------------------------------------------------------------------------------------
# Probes
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def planted_grid():
    models = {"planted": _planted(), "no_states": ModuleAdapter(torch.nn.Linear(2, 2), T.OverlappingKmerTokenizer(3),
                                                                  capabilities=[], name="no_states")}
    return F.frozen_probe_grid(models, _task(), num_classes=4, n_boot=200)


def test_the_layer_that_holds_the_label_is_perfect_and_the_others_at_chance(planted_grid):
    table, items = planted_grid
    assert table.model.eq("planted").all() and table.layer.tolist() == [0, 1, 2, 3]
    at = table.set_index("layer")
    assert at.loc[2, "accuracy"] == 1.0 and at.loc[2, "bits"] < 0.1
    for layer in (0, 1, 3):
        assert abs(at.loc[layer, "accuracy"] - 0.25) < 0.07, at.loc[layer]
        assert at.loc[layer, "bits"] > 1.9  # no better than log2(4) = 2 bits
    assert (at.chance == 0.25).all() and (at.n_train == 600).all() and (at.n_test == 400).all()
    assert at.chosen.tolist() == [False, False, True, False]
    assert ((table.ci_low <= table.accuracy) & (table.accuracy <= table.ci_high)).all()
    assert {"mcc", "auroc"}.isdisjoint(table.columns)  # four classes
    assert [r["model"] for r in table.attrs["not_applicable"]] == ["no_states"]
    assert "hidden states" in table.attrs["not_applicable"][0]["reason"]
    best, last = items[items.layer_choice == "best"], items[items.layer_choice == "last"]
    assert best.layer.eq(2).all() and last.layer.eq(3).all()
    assert best.item.tolist() == list(range(400)) and best.accuracy.mean() == 1.0
    assert last.accuracy.mean() == pytest.approx(at.loc[3, "accuracy"])
    assert last.bits.mean() == pytest.approx(at.loc[3, "bits"])
    text = F.best_layer_sentence(table)
    assert text.startswith("The frozen probe for planted reads layer 2, the layer chosen on validation (100.0 % [100.0, 100.0] on test; last layer 3: ")
    assert "chance 25.0 %" in text and "not applicable to no_states" in text


def test_grid_on_an_executor_fits_the_same_probes(planted_grid):
    from concurrent.futures import ThreadPoolExecutor

    models = {"planted": _planted(), "planted_again": _planted()}
    with ThreadPoolExecutor(2) as pool:
        table, items = F.frozen_probe_grid(models, _task(), num_classes=4, n_boot=200, executor=pool)
    serial_table, serial_items = planted_grid
    assert table.model.tolist() == ["planted"] * 4 + ["planted_again"] * 4  # model order kept
    for name in ("planted", "planted_again"):
        got = table[table.model == name].drop(columns="model").reset_index(drop=True)
        want = serial_table.drop(columns="model").reset_index(drop=True)
        pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-6)
        assert np.array_equal(items[items.model == name].accuracy.to_numpy(), serial_items.accuracy.to_numpy())


def test_grid_with_cls_pooling_skips_families_without_cls():
    models = {"with_cls": _planted(name="with_cls"), "no_cls": _planted(framing=(), name="no_cls")}
    table, items = F.frozen_probe_grid(models, _task((120, 60, 80)), num_classes=4, pooling="cls", layers=[2],
                                       n_boot=50)
    assert table.model.unique().tolist() == ["with_cls"] and table.pooling.eq("cls").all()
    assert table.accuracy.iloc[0] == 1.0  # the [CLS] row carries the planted label too
    (skip,) = table.attrs["not_applicable"]
    assert skip["model"] == "no_cls" and "no [CLS] token" in skip["reason"]


def _three_splits(rng, n, shift_valid=0.0, flip_valid=False):
    def draw(k, shift=0.0):
        y = rng.integers(0, 2, k)
        x = (2 * y - 1)[:, None] * 1.0 + rng.normal(0, 1, (k, 1)) + shift
        return x, y

    (xt, yt), (xv, yv), (xe, ye) = draw(n), draw(n, shift_valid), draw(n)
    if flip_valid:
        yv = 1 - yv
    return {"train": {0: xt}, "valid": {0: xv}, "test": {0: xe}}, {"train": yt, "valid": yv, "test": ye}


def _test_bits(feats, labels, C):
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    sc = StandardScaler().fit(feats["train"][0])
    m = LogisticRegression(C=C, max_iter=1000).fit(sc.transform(feats["train"][0]), labels["train"])
    p = m.predict_proba(sc.transform(feats["test"][0]))
    return float(-np.mean(np.log2(p[np.arange(len(labels["test"])), labels["test"]]))), m, sc


def test_c_is_chosen_on_validation_not_on_test():
    rng = np.random.default_rng(1)
    feats, labels = _three_splits(rng, 300, flip_valid=True)  # validation labels flipped: only a flat probe is safe
    table, _ = F.probe_layers(feats, labels, Cs=(10, 0.001, 1), smoothing=0)
    assert table.C.iloc[0] == 0.001
    assert _test_bits(feats, labels, 10)[0] < _test_bits(feats, labels, 0.001)[0]  # test would have chosen 10
    assert table.bits.iloc[0] == pytest.approx(_test_bits(feats, labels, 0.001)[0])
    swapped = {"train": feats["train"], "valid": feats["test"], "test": feats["valid"]}
    swapped_y = {"train": labels["train"], "valid": labels["test"], "test": labels["valid"]}
    assert F.probe_layers(swapped, swapped_y, Cs=(10, 0.001, 1), smoothing=0)[0].C.iloc[0] != 0.001


def test_mcc_threshold_is_chosen_on_validation():
    from sklearn.metrics import matthews_corrcoef

    rng = np.random.default_rng(2)
    feats, labels = _three_splits(rng, 400, shift_valid=1.5)  # validation shifted up: its best cut is high
    table, _ = F.probe_layers(feats, labels, Cs=(1,), smoothing=0, n_boot=200)
    row = table.iloc[0]
    _, model, sc = _test_bits(feats, labels, 1.0)
    p_va = model.predict_proba(sc.transform(feats["valid"][0]))[:, 1]
    p_te = model.predict_proba(sc.transform(feats["test"][0]))[:, 1]
    brute = max(matthews_corrcoef(labels["valid"], p_va >= t) for t in np.unique(p_va))
    assert matthews_corrcoef(labels["valid"], p_va >= row.threshold) == pytest.approx(brute)
    assert row.threshold > 0.7
    assert row.mcc == pytest.approx(matthews_corrcoef(labels["test"], p_te >= row.threshold))
    assert row.mcc < matthews_corrcoef(labels["test"], p_te >= 0.5) - 0.1  # the test-optimal cut was not used
    assert row.mcc_argmax == pytest.approx(matthews_corrcoef(labels["test"], p_te > 0.5))  # beside it, the 0.5 cut
    assert row.accuracy_valid_threshold == pytest.approx(np.mean((p_te >= row.threshold) == labels["test"]))
    from sklearn.metrics import roc_auc_score

    assert row.auroc == pytest.approx(roc_auc_score(labels["test"], p_te))
    assert row.mcc_low <= row.mcc <= row.mcc_high and row.auroc_low <= row.auroc <= row.auroc_high


def test_smoothing_is_chosen_on_validation_and_gives_unseen_classes_a_probability():
    rng = np.random.default_rng(6)
    feats = {s: {0: rng.normal(size=(n, 3))} for s, n in (("train", 200), ("valid", 200), ("test", 200))}
    labels = {s: rng.integers(0, 8, 200) for s in F.SPLITS}
    labels["train"] = labels["train"] % 4  # classes 4..7 never seen in train
    raw, _ = F.probe_layers(feats, labels, num_classes=8, smoothing=0, n_boot=50)
    smooth, _ = F.probe_layers(feats, labels, num_classes=8, n_boot=50)
    assert raw.bits.iloc[0] > 15  # half the test items cost log2(1e12) = 40 bits
    # half the validation items are of unseen classes: the largest mixture weight wins; an unseen item then costs
    # log2(8 / 0.3) = 4.7 bits and a seen one about log2(1 / (0.7 * 0.25 + 0.3 / 8)) = 2.2
    assert smooth.smoothing.iloc[0] == max(F.DEFAULT_SMOOTHING) == 0.3 and 3.0 < smooth.bits.iloc[0] < 4.0
    assert smooth.accuracy.iloc[0] == raw.accuracy.iloc[0]  # mixing with the uniform never moves the argmax
    with pytest.raises(ParameterError, match="smoothing"):
        F.probe_layers(feats, labels, num_classes=8, smoothing=(1.0,))


def test_same_seed_same_numbers_other_seed_other_intervals():
    rng = np.random.default_rng(4)
    feats, labels = _three_splits(rng, 200)
    a, ia = F.probe_layers(feats, labels, seed=7, n_boot=300)
    b, ib = F.probe_layers(feats, labels, seed=7, n_boot=300)
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(ia, ib)
    c, _ = F.probe_layers(feats, labels, seed=8, n_boot=300)
    assert c.accuracy.iloc[0] == a.accuracy.iloc[0] and c.bits.iloc[0] == a.bits.iloc[0]  # the probe has no chance
    assert (c.bits_low.iloc[0], c.bits_high.iloc[0]) != (a.bits_low.iloc[0], a.bits_high.iloc[0])  # the resamples do


def test_bad_input_is_a_parameter_error_naming_the_parameter():
    lm = _planted()
    seqs = _seqs(3)
    for kwargs, name in (({"pooling": "max"}, "pooling"), ({"layers": [4]}, "layers"), ({"layers": [1, 1]}, "layers"),
                         ({"batch_size": 0}, "batch_size")):
        with pytest.raises(ParameterError, match=name):
            F.pooled_features(lm, seqs, **kwargs)
    with pytest.raises(ParameterError, match="seqs is one string"):
        F.pooled_features(lm, "ACGT")
    with pytest.raises(NotApplicable, match="hidden states"):
        F.pooled_features(ModuleAdapter(torch.nn.Linear(2, 2), lm.tokenizer, capabilities=[]), seqs)
    feats, labels = _three_splits(np.random.default_rng(5), 30)
    with pytest.raises(ParameterError, match="Cs"):
        F.probe_layers(feats, labels, Cs=(0, 1))
    with pytest.raises(ParameterError, match="valid"):
        F.probe_layers({"train": feats["train"], "test": feats["test"]}, labels)
    with pytest.raises(ParameterError, match="num_classes"):
        F.probe_layers(feats, labels, num_classes=1)
    with pytest.raises(ParameterError, match="0..num_classes-1"):
        F.probe_layers(feats, {**labels, "test": labels["test"] + 2}, num_classes=2)
    with pytest.raises(ParameterError, match=r"features\['test'\]\[0\]"):
        F.probe_layers({**feats, "test": {0: feats["test"][0][:5]}}, labels)
    with pytest.raises(ParameterError, match="single class"):
        F.probe_layers(feats, {**labels, "train": np.zeros_like(labels["train"])})
    with pytest.raises(ParameterError, match="splits"):
        F.frozen_probe_grid({"planted": lm}, {"train": ([], [])}, num_classes=4)
    with pytest.raises(ParameterError, match="metric"):
        F.best_layer_sentence(pd.DataFrame(), metric="f1")
