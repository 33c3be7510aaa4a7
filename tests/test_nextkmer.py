"""Next-k-mer benchmark: no label nucleotide in any input token, disjoint blocks with a gap, labels that decode
back to the genome, the n-gram baseline against brute-force counting, determinism, metrics against sklearn."""

from __future__ import annotations

import itertools
import math
from collections import Counter

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from dnalm_utils import classification_metrics as CM
from dnalm_utils import finetuning as FT
from dnalm_utils import nextkmer as NK
from dnalm_utils import tokenization as T
from dnalm_utils.errors import ParameterError
from dnalm_utils.genome import Genome

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
COMP = str.maketrans("ACGT", "TGCA")


def random_dna(rng, n: int, n_runs: int = 0) -> str:
    seq = np.array(list("ACGT"))[rng.integers(0, 4, n)]
    for _ in range(n_runs):  # a few N runs, as in a real assembly
        a = int(rng.integers(0, max(1, n - 30)))
        seq[a : a + int(rng.integers(1, 30))] = "N"
    return "".join(seq)


def toy_genomes(seed: int, corpus_nt: int = 30_000, test_nt: int = 12_000):
    rng = np.random.default_rng(seed)
    corpus = Genome.from_sequences({"rec1": random_dna(rng, corpus_nt, 4), "rec2": random_dna(rng, corpus_nt // 3, 1),
                                    "short": random_dna(rng, 2500)})
    test = Genome.from_sequences({"held": random_dna(rng, test_nt, 2)})
    return corpus, test


def _bpe():
    rng = np.random.default_rng(7)
    return T.BPETokenizer.train([random_dna(rng, 3000) for _ in range(4)], vocab_size=80)


TOKENIZERS = {
    **{f"overlapping{k}": T.OverlappingKmerTokenizer(k) for k in (1, 3, 4, 6)},
    **{f"nonoverlapping{k}": T.NonOverlappingKmerTokenizer(k) for k in (2, 6)},
    "nucleotide": T.NucleotideTokenizer(),
    "bpe": _bpe(),
}
CORPUS, HELD = toy_genomes(0)


def small_splits(input_nt, k_max, seed=0, **kw):
    kw.setdefault("block_nt", 3000)
    return NK.build_splits(input_nt=input_nt, k_max=k_max, n_train=kw.pop("n_train", 30), n_valid=kw.pop("n_valid", 8),
                           n_test=kw.pop("n_test", 20), seed=seed, corpus=CORPUS, test_genome=HELD, **kw)


def drawn_splits(*args, **kw):
    """small_splits for property tests: a seed whose validation blocks happen to be too short is discarded."""
    try:
        return small_splits(*args, **kw)
    except ParameterError as exc:
        assume("too few windows" not in str(exc))
        raise


# ---- leakage ----------------------------------------------------------------------------------------


@FAST
@given(name=st.sampled_from(sorted(TOKENIZERS)), k=st.integers(1, 8), L=st.integers(1, 70), seed=st.integers(0, 50))
def test_no_label_nucleotide_inside_any_input_token(name, k, L, seed):
    tok = TOKENIZERS[name]
    if L < NK.min_input_nt(tok):
        with pytest.raises(ParameterError, match="shorter than one token"):
            small_splits(L, k, seed, tokenizers={name: tok})
        return
    splits = drawn_splits(L, k, seed, tokenizers={name: tok})
    genomes = {"train": CORPUS, "valid": CORPUS, "test": HELD}
    for split in NK.SPLITS:
        task = splits[split].task(k)
        ds = FT.SequenceDataset(tok, task.inputs, task.labels)  # exactly what fine-tuning feeds the model
        for enc, (name_, start, end) in zip(ds.encodings, task.loci[["name", "start", "end"]].itertuples(index=False)):
            assert end - start == L
            g0 = start + enc.spans[:, 0]
            g1 = start + enc.spans[:, 1]  # genome coordinates of every input token
            assert (g0 >= start).all() and (g1 <= end).all()
            label = (end, end + k)
            assert ((g1 <= label[0]) | (g0 >= label[1])).all()  # no token touches a label nucleotide
            text = genomes[split].fetch(name_, start, end)
            if tok.scheme != "overlapping":  # tokens tile the input exactly
                assert tok.decode(enc.ids) == text
            for (a, b), tid in zip(enc.spans, enc.ids):
                assert tok.vocab[tid] == text[a:b]


# ---- blocks and windows -----------------------------------------------------------------------------


@FAST
@given(lengths=st.lists(st.integers(1, 50_000), min_size=1, max_size=6), block_nt=st.integers(50, 9000),
       gap_share=st.floats(0.0, 0.9), frac=st.floats(0.05, 0.95), seed=st.integers(0, 10**6))
def test_blocks_never_overlap_and_keep_the_gap(lengths, block_nt, gap_share, frac, seed):
    gap = int(gap_share * block_nt)
    rec = {f"r{i}": n for i, n in enumerate(lengths)}
    usable = sum(sum(1 for b in range(0, n, block_nt) if min(b + block_nt, n) - gap > b) for n in lengths)
    if usable < 2:
        with pytest.raises(ParameterError, match="at least two blocks"):
            NK.block_intervals(rec, block_nt=block_nt, gap=gap, valid_fraction=frac, seed=seed)
        return
    blocks = NK.block_intervals(rec, block_nt=block_nt, gap=gap, valid_fraction=frac, seed=seed)
    assert set(blocks.split) == {"train", "valid"}  # both splits non-empty
    for name, sub in blocks.groupby("name"):
        s, e = sub.start.to_numpy(), sub.end.to_numpy()
        assert (s < e).all() and (s >= 0).all() and (e <= rec[name]).all()
        assert (np.diff(s) > 0).all()
        assert (s[1:] - e[:-1] >= gap).all()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(L=st.integers(1, 60), k_max=st.integers(1, 8), seed=st.integers(0, 10**4), block_nt=st.integers(2000, 6000))
def test_windows_of_different_splits_are_more_than_a_window_apart(L, k_max, seed, block_nt):
    splits = drawn_splits(L, k_max, seed, block_nt=block_nt)
    assert splits.gap > L + k_max
    wins = {s: splits[s].windows for s in ("train", "valid")}
    for s, w in wins.items():  # every window lies inside a usable block of its own split
        assert (w.end - w.start == L + k_max).all()
        for name, sub in w.groupby("name"):
            b = splits.blocks[(splits.blocks.split == s) & (splits.blocks.name == name)]
            inside = (b.start.to_numpy()[None, :] <= sub.start.to_numpy()[:, None]) & (
                b.end.to_numpy()[None, :] >= sub.end.to_numpy()[:, None])
            assert (inside.sum(axis=1) == 1).all()
    a, b = wins["train"], wins["valid"]
    for name in set(a.name) & set(b.name):
        x, y = a[a.name == name], b[b.name == name]
        dist = np.maximum(x.start.to_numpy()[:, None], y.start.to_numpy()[None, :]) - np.minimum(
            x.end.to_numpy()[:, None], y.end.to_numpy()[None, :])
        assert (dist >= splits.gap).all()
    for s in ("valid", "test"):  # evaluation windows never overlap each other
        w = splits[s].windows.sort_values(["name", "start"])
        for _, sub in w.groupby("name"):
            assert (sub.start.to_numpy()[1:] >= sub.end.to_numpy()[:-1]).all()
    assert set(splits.test.windows.name) == {"held"}


def test_train_windows_are_distinct_and_acgt_only():
    splits = small_splits(40, 3, n_train=400)
    w = splits.train.windows
    assert not w.duplicated(["name", "start"]).any()
    assert w.sequence.str.fullmatch("[ACGT]+").all()


# ---- labels -----------------------------------------------------------------------------------------


def test_class_order_is_ngram_acgt_product_order():
    for k in (1, 2, 3):
        kmers = ["".join(p) for p in itertools.product("ACGT", repeat=k)]
        assert NK.kmer_classes(kmers).tolist() == list(range(4**k))
        assert NK.class_kmers(np.arange(4**k), k) == kmers
    assert NK.kmer_classes(["AA", "AC", "TT"]).tolist() == [0, 1, 15]


@FAST
@given(L=st.integers(1, 50), k=st.integers(1, 8), seed=st.integers(0, 10**4))
def test_labels_decode_back_to_the_genome(L, k, seed):
    splits = drawn_splits(L, 8, seed)
    genomes = {"train": CORPUS, "valid": CORPUS, "test": HELD}
    for split in NK.SPLITS:
        task = splits[split].task(k)
        assert task.num_classes == 4**k and task.labels.dtype == np.int64
        assert (task.labels >= 0).all() and (task.labels < 4**k).all()
        for kmer, inp, r in zip(task.label_kmers(), task.inputs, task.loci.itertuples()):
            assert kmer == genomes[split].fetch(r.name, r.end, r.end + k)
            assert inp == genomes[split].fetch(r.name, r.start, r.end)


def test_same_inputs_for_every_k():
    splits = small_splits(30, 5)
    tasks = [splits.test.task(k) for k in range(1, 6)]
    assert all(t.inputs == tasks[0].inputs for t in tasks)
    longest = tasks[-1].label_kmers()
    for t in tasks:
        assert t.label_kmers() == [x[: t.k] for x in longest]


def test_determinism_for_a_seed():
    a, b, c = small_splits(50, 4, seed=3), small_splits(50, 4, seed=3), small_splits(50, 4, seed=4)
    for s in NK.SPLITS:
        assert a[s].windows.equals(b[s].windows)
    assert a.blocks.equals(b.blocks)
    assert not a.train.windows.equals(c.train.windows)


# ---- bad input --------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [0, -1, 9, 20])
def test_k_out_of_range(k):
    with pytest.raises(ParameterError, match="out of range"):
        NK.check_k(k)
    with pytest.raises(ParameterError):
        small_splits(40, k)


def test_task_k_beyond_k_max_and_bad_ks():
    splits = small_splits(40, 3)
    with pytest.raises(ParameterError, match="k_max"):
        splits.train.task(4)
    with pytest.raises(ParameterError, match="out of range"):
        splits.train.task(0)
    with pytest.raises(ParameterError, match="empty"):
        NK.check_ks([])
    with pytest.raises(ParameterError, match="more than once"):
        NK.check_ks([1, 1])


@pytest.mark.parametrize("tok,L", [(T.OverlappingKmerTokenizer(6), 5), (T.NonOverlappingKmerTokenizer(6), 3),
                                   (T.OverlappingKmerTokenizer(3), 2)])
def test_input_shorter_than_a_token(tok, L):
    with pytest.raises(ParameterError, match="shorter than one token"):
        NK.check_input_length(tok, L)
    NK.check_input_length(tok, tok.k)  # exactly one token is enough


def test_too_few_windows_for_a_split():
    with pytest.raises(ParameterError, match="too few windows for the validation split"):
        small_splits(60, 2, n_valid=5000)
    with pytest.raises(ParameterError, match="too few windows for the test split"):
        small_splits(60, 2, n_test=5000)
    with pytest.raises(ParameterError, match="too few windows for the train split"):
        small_splits(60, 2, n_train=10**6)


def test_gap_must_exceed_the_window():
    with pytest.raises(ParameterError, match="gap"):
        small_splits(40, 2, gap=42)
    small_splits(40, 2, gap=43)


def test_training_and_test_sources_must_not_overlap(tmp_path):
    fa = tmp_path / "g.fa"
    fa.write_text(">chr21\n" + "ACGT" * 50 + "\n>chr22\n" + "TTGCA" * 40 + "\n")
    NK.check_disjoint_sources("", "", "", "")  # bundled corpus vs bundled held-out slice
    NK.check_disjoint_sources(fa, "chr21", fa, "chr22")
    NK.check_disjoint_sources(fa, "chr21:1-100", fa, "chr21:101-200")
    NK.check_disjoint_sources(fa, "", tmp_path / "other.fa", "")
    for train_region, test_region in (("", "chr22"), ("chr21", ""), ("chr21:1-100", "chr21:100-200"),
                                      ("chr21", "chr21:50-60")):
        with pytest.raises(ParameterError, match="overlap"):
            NK.check_disjoint_sources(fa, train_region, str(fa), test_region)


# ---- n-gram baseline --------------------------------------------------------------------------------


def brute_left_probs(seqs, context, k, order, alpha):
    """Left-context next-k-mer distribution by explicit counting on both strands, with backoff."""
    strands = [s for s in seqs] + [s.translate(COMP)[::-1] for s in seqs]
    kmers = ["".join(p) for p in itertools.product("ACGT", repeat=k)]
    o = min(order, len(context))
    while True:
        tail = context[len(context) - o :] if o else ""
        counts = Counter()
        for s in strands:
            for i in range(len(s) - o - k + 1):
                w = s[i : i + o + k]
                if w.startswith(tail) and set(w) <= set("ACGT"):
                    counts[w[o:]] += 1
        raw = np.array([counts[y] for y in kmers], dtype=float)
        if raw.sum() >= 1 or o == 0:
            return (raw + alpha) / (raw.sum() + alpha * 4**k)
        o -= 1


@FAST
@given(seq=st.text("ACGT", min_size=5, max_size=120), ctx=st.text("ACGT", min_size=0, max_size=8),
       k=st.integers(1, 2), order=st.integers(0, 4))
def test_ngram_baseline_equals_brute_force(seq, ctx, k, order):
    model = NK.NgramBaseline([seq], max_order=4, k_max=2, alpha=0.5)
    got = model.probs([ctx], k, order)[0]
    np.testing.assert_allclose(got, brute_left_probs([seq], ctx, k, order, 0.5), rtol=1e-12)


def test_ngram_order_is_chosen_on_validation_and_counts_train_blocks_only():
    splits = small_splits(30, 2, n_valid=20)
    model = NK.NgramBaseline(splits.train_block_sequences, max_order=4, k_max=2)
    assert model.counts.n_acgt <= sum((splits.blocks.split == "train") * (splits.blocks.end - splits.blocks.start))
    valid = splits.valid.task(2)
    best, table = model.fit(valid)
    assert list(table.order) == [0, 1, 2, 3, 4]
    assert best == int(table.order[table.bits.idxmin()])


def test_baseline_tables_on_an_executor_equal_the_serial_loop():
    from dnalm_utils.grid_executors import make_executor

    splits = small_splits(20, 2, n_train=200, n_valid=40, n_test=60)
    model = NK.NgramBaseline(splits.train_block_sequences, max_order=3, k_max=2)
    from dnalm_utils.finetuning import FinetuneSettings

    cnn = dict(cnn_lrs=[1e-2, 3e-3], cnn_settings=FinetuneSettings(max_steps=12, eval_steps=4, batch_size=16))
    args = dict(ngram=model, seeds=[0, 1], tfidf_kmer=[1, 2], window_ngram=True, **cnn)
    serial = NK.baseline_tables(splits, [1, 2], **args)
    with make_executor("processes:2") as pool:  # spawned workers: a forked child of a process using torch can hang
        parallel = NK.baseline_tables(splits, [1, 2], executor=pool, **args)
    for got, want in zip(parallel, serial):
        pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-6)
    table, orders, items = serial
    assert table.groupby("k").model.apply(list).loc[1] == table[table.k == 2].model.tolist()  # same rows per k
    assert set(orders.k) == {1, 2} and set(items.k) == {1, 2}
    # each k's rows are baseline_scores' own
    one, _, one_items = NK.baseline_scores(splits.tasks(2), with_items=True, **args)
    pd.testing.assert_frame_equal(table[table.k == 2].drop(columns="k").reset_index(drop=True), one)
    tfidf = table[table.model == "k-mer TF-IDF + logistic regression"]
    assert len(tfidf) == 2 and tfidf.detail.str.contains("picked on validation").all()
    # one CNN per k and seed, equal to onehot_cnn's own grid on the same windows, its items carrying the seed
    from dnalm_utils import onehot_cnn

    nets = table[table.model == NK.ONEHOT_CNN]
    assert sorted(zip(nets.k, nets.seed)) == [(1, 0), (1, 1), (2, 0), (2, 1)]
    assert nets.detail.str.contains("picked on validation among 1e-2, 3e-3; best step").all()
    t = splits.tasks(2)
    direct, direct_items = onehot_cnn.cnn_grid(*[(list(t[p].inputs), t[p].labels) for p in ("train", "valid", "test")],
                                               num_classes=16, seeds=[1], settings=cnn["cnn_settings"],
                                               lrs=cnn["cnn_lrs"], nt_per_class=2)
    mine = nets[(nets.k == 2) & (nets.seed == 1)].iloc[0]
    assert mine.accuracy == pytest.approx(direct.accuracy.iloc[0]) and mine.bits == pytest.approx(direct.bits.iloc[0])
    cnn_items = items[(items.model == NK.ONEHOT_CNN) & (items.k == 2) & (items.seed == 1)]
    assert cnn_items.bits.tolist() == pytest.approx(direct_items.bits.tolist())
    assert items[items.model != NK.ONEHOT_CNN].seed.isna().all()


def test_baselines_on_a_known_test_set():
    splits = small_splits(20, 2, n_train=200, n_valid=40, n_test=60)
    tasks = splits.tasks(2)
    model = NK.NgramBaseline(splits.train_block_sequences, max_order=3, k_max=2)
    table, orders = NK.baseline_scores(tasks, ngram=model, seeds=[0, 1], tfidf_kmer=2)
    chance = table[table.model == "chance"].iloc[0]
    assert chance.accuracy == pytest.approx(1 / 16) and chance.bits == pytest.approx(2.0)
    assert chance.top5 == pytest.approx(5 / 16)
    majority = int(np.bincount(tasks["train"].labels, minlength=16).argmax())
    assert table[table.model == "majority class"].accuracy.iloc[0] == pytest.approx(np.mean(tasks["test"].labels == majority))
    assert (table.model == "prior sampling").sum() == 2
    assert {"n-gram (left context)", "k-mer TF-IDF + logistic regression"} <= set(table.model)
    assert ((table.accuracy >= 0) & (table.accuracy <= table.top5) & (table.top5 <= 1)).all()
    assert list(orders.order) == [0, 1, 2, 3]


# ---- metrics against sklearn ------------------------------------------------------------------------


@FAST
@given(n=st.integers(2, 60), c=st.integers(2, 20), seed=st.integers(0, 10**6), k=st.integers(1, 3))
def test_multiclass_metrics_match_sklearn(n, c, seed, k):
    from sklearn.metrics import accuracy_score, f1_score, log_loss, top_k_accuracy_score

    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(c), size=n)
    truth = rng.integers(0, c, n)
    m = CM.multiclass_metrics(probs, truth, nt_per_class=k)
    pred = probs.argmax(1)
    assert m["accuracy"] == pytest.approx(accuracy_score(truth, pred))
    if c > 5:
        assert m["top5"] == pytest.approx(top_k_accuracy_score(truth, probs, k=5, labels=np.arange(c)))
    else:  # the true class is always among the top 5 of at most 5 classes
        assert m["top5"] == 1.0
    assert m["macro_f1"] == pytest.approx(f1_score(truth, pred, average="macro"))
    assert m["bits"] == pytest.approx(log_loss(truth, probs, labels=np.arange(c)) / math.log(2) / k)


def test_uniform_guess_metrics_match_simulation():
    rng = np.random.default_rng(0)
    truth = rng.choice(16, size=400, p=rng.dirichlet(np.ones(16)))
    exp = CM.uniform_guess_metrics(truth, 16, nt_per_class=2)
    sims = [CM.macro_f1(truth, rng.integers(0, 16, truth.size)) for _ in range(300)]
    assert exp["macro_f1"] == pytest.approx(np.mean(sims), abs=0.01)
    assert exp["bits"] == pytest.approx(2.0) and exp["accuracy"] == pytest.approx(1 / 16)


def test_binary_metrics_match_sklearn():
    from sklearn.metrics import accuracy_score, matthews_corrcoef, roc_auc_score

    rng = np.random.default_rng(1)
    truth = rng.integers(0, 2, 200)
    p1 = np.clip(truth * 0.3 + rng.random(200) * 0.7, 0, 1)
    m = CM.binary_metrics(np.stack([1 - p1, p1], 1), truth)
    pred = (p1 > 0.5).astype(int)
    assert m["mcc"] == pytest.approx(matthews_corrcoef(truth, pred))
    assert m["accuracy"] == pytest.approx(accuracy_score(truth, pred))
    assert m["auroc"] == pytest.approx(roc_auc_score(truth, p1))
    assert CM.binary_metrics(p1, truth) == m


def test_metric_input_errors():
    with pytest.raises(ParameterError):
        CM.multiclass_metrics(np.ones((3, 4)) / 4, [0, 1])
    with pytest.raises(ParameterError):
        CM.multiclass_metrics(np.ones((2, 4)) / 4, [0, 4])


def test_ngram_order_limit_follows_k_max():
    seq = "ACGTTGCAAGGCTTACG" * 4
    assert NK.NgramBaseline([seq], max_order=28, k_max=3).max_order == 28
    with pytest.raises(ParameterError, match="ngram_max_order.*31 nt"):
        NK.NgramBaseline([seq], max_order=29, k_max=3)


def test_readout_comparison_puts_three_readouts_beside_the_ngram():
    import pandas as pd

    summary = pd.DataFrame({"model": ["m", "m", "n-gram (left context)"], "init": ["pretrained", "random", "baseline"],
                            "k": [2, 2, 2], "accuracy_mean": [0.12, 0.07, 0.10], "accuracy_std": [0.01, 0.0, np.nan]})
    frozen = pd.DataFrame({"model": ["m", "m"], "k": [2, 2], "layer": [0, 1], "chosen": [False, True],
                           "accuracy": [0.08, 0.09], "ci_low": [0.07, 0.08], "ci_high": [0.09, 0.10]})
    zero = pd.DataFrame({"model": ["m"], "k": [2], "accuracy": [0.065], "accuracy_low": [0.06],
                         "accuracy_high": [0.07]})
    out = NK.readout_comparison(summary, frozen, zero).set_index("readout")
    assert list(out.index) == list(NK.READOUTS)  # the random-init run and the unchosen layer are not readouts
    assert out.loc["fine-tuned"].accuracy == 0.12 and out.loc["fine-tuned"].low == pytest.approx(0.11)
    assert out.loc["frozen probe"].accuracy == 0.09 and out.loc["zero-shot"].high == 0.07
    assert (out.ngram == 0.10).all() and (out.chance == 1 / 16).all()


def test_accuracy_intervals_average_seeds_per_window_and_pair_the_gap():
    import pandas as pd

    rng = np.random.default_rng(0)
    n = 400
    truth = rng.random(n) < 0.3  # the n-gram is right on these windows
    rows = [pd.DataFrame({"model": "n-gram (left context)", "item": np.arange(n), "accuracy": truth.astype(float),
                          "k": 2})]
    base = rows[0]
    runs = []
    for seed in range(3):
        acc = np.where(rng.random(n) < 0.9, truth, ~truth).astype(float)  # mostly the n-gram's answers
        runs.append(pd.DataFrame({"model": "m", "init": "pretrained", "seed": seed, "item": np.arange(n),
                                  "accuracy": acc, "k": 2}))
    runs.append(runs[0].assign(init="random"))
    items = pd.concat(runs, ignore_index=True)
    out = NK.accuracy_intervals(items, base, n_boot=500).iloc[0]
    pre = items[items.init == "pretrained"]
    assert out.accuracy == pytest.approx(pre.accuracy.mean()) and out.seeds == 3 and out.windows == n
    assert out.accuracy_low < out.accuracy < out.accuracy_high
    assert out.x_chance == pytest.approx(out.accuracy * 16)
    assert out.gap == pytest.approx(out.accuracy - truth.mean())
    # paired: the gap's interval is much narrower than the accuracy's
    assert (out.gap_high - out.gap_low) < 0.8 * (out.accuracy_high - out.accuracy_low)
    assert out.seed_sd == pytest.approx(pre.groupby("seed").accuracy.mean().std()) and out.init == "pretrained"
    # a baseline trained per seed (the one-hot CNN) gets its own row from the baseline items, init "baseline"
    cnn = runs[1].drop(columns="init").assign(model=NK.ONEHOT_CNN)
    both = NK.accuracy_intervals(items, pd.concat([base, cnn, cnn.assign(seed=5, accuracy=1.0)]), n_boot=500)
    row = both[both.model == NK.ONEHOT_CNN].iloc[0]
    assert row.init == "baseline" and row.seeds == 2 and row.accuracy == pytest.approx((cnn.accuracy.mean() + 1) / 2)
    assert both[both.model == "m"].iloc[0].accuracy == pytest.approx(out.accuracy)


def test_window_ngram_counts_the_fine_tuning_windows_only():
    """The fine-tuning-window n-gram equals a NgramBaseline built by hand on input + label of every training
    example (not on the corpus blocks), with its order chosen on validation."""
    splits = small_splits(20, 2, n_train=120, n_valid=40, n_test=50)
    tasks = splits.tasks(2)
    train = tasks["train"]
    windows = NK.training_windows(train)
    assert windows == [x + y for x, y in zip(train.inputs, NK.class_kmers(train.labels, 2))]
    assert all(len(w) == train.input_nt + 2 for w in windows)
    corpus = NK.NgramBaseline(splits.train_block_sequences, max_order=3, k_max=2)
    table, _, items = NK.baseline_scores(tasks, ngram=corpus, seeds=[0], window_ngram=True, with_items=True)
    local = NK.NgramBaseline(windows, max_order=3, k_max=2)
    best, _ = local.fit(tasks["valid"])
    expected = CM.multiclass_metrics(local.probs(tasks["test"].inputs, 2, best), tasks["test"].labels, nt_per_class=2)
    row = table[table.model == NK.WINDOW_NGRAM].iloc[0]
    assert row.accuracy == pytest.approx(expected["accuracy"]) and row.bits == pytest.approx(expected["bits"])
    assert f"order {best}" in row.detail and "120 fine-tuning windows" in row.detail
    assert local.counts.n_acgt != corpus.counts.n_acgt
    assert (items.model == NK.WINDOW_NGRAM).sum() == len(tasks["test"])
    with pytest.raises(ParameterError, match="window_ngram"):
        NK.baseline_scores(tasks, ngram=None, window_ngram=True)


def test_window_ngram_sentence_reads_the_table():
    import pandas as pd

    rows = pd.DataFrame({"model": [NK.NGRAM_LEFT, NK.WINDOW_NGRAM] * 2, "k": [1, 1, 2, 2],
                         "accuracy": [0.40, 0.35, 0.10, 0.12]})
    text = NK.window_ngram_sentence(rows)
    assert "scores 35.00 % at k = 1 and 12.00 % at k = 2, against 40.00 % at k = 1 and 10.00 % at k = 2" in text
    assert "lower at 1 of 2 values of k" in text
    assert NK.window_ngram_sentence(rows[rows.model == NK.NGRAM_LEFT]) == ""


def test_tune_k_picks_the_rates_once_and_reuses_them_for_every_k(monkeypatch):
    """With tune_k, the grid of that k runs first and tunes; every other k gets its chosen rates and tunes nothing;
    the rows come back in the order of ks."""
    import pandas as pd

    from dnalm_utils import lr_tuning

    seen = []

    def fake_tuned_grid(sources, train, valid, test, *, num_labels, chosen_rates=None, **kw):
        k = {4: 1, 16: 2, 64: 3}[num_labels]
        seen.append((k, chosen_rates))
        lr = 1e-3 if chosen_rates is None else chosen_rates[("m", "random")]
        runs = pd.DataFrame({"model": ["m"], "init": ["random"], "seed": [0], "learning_rate": [lr]})
        tuning = (pd.DataFrame({"model": ["m", "m"], "init": "random", "learning_rate": [1e-3, 1e-2],
                                "best_eval_loss": [0.4, 0.5], "chosen": [True, False]}) if chosen_rates is None
                  else pd.DataFrame(columns=["model", "init", "learning_rate", "best_eval_loss", "chosen"]))
        return runs, runs.assign(item=0, accuracy=1.0, bits=1.0), tuning

    monkeypatch.setattr(lr_tuning, "tuned_grid", fake_tuned_grid)
    splits = small_splits(20, 3, n_train=40, n_valid=10, n_test=10)
    runs = NK.run_benchmark({"m": "x"}, splits, [1, 2, 3], seeds=[0], tune_k=2, learning_rates={"random": [1e-3, 1e-2]})
    assert seen == [(2, None), (1, {("m", "random"): 1e-3}), (3, {("m", "random"): 1e-3})]
    assert runs.k.tolist() == [1, 2, 3] and (runs.learning_rate == 1e-3).all()
    seen.clear()
    NK.run_benchmark({"m": "x"}, splits, [1, 3], seeds=[0], learning_rates={"random": [1e-3, 1e-2]})
    assert seen == [(1, None), (3, None)]  # without tune_k each k tunes its own
    with pytest.raises(ParameterError, match="tune_k=4 is not one of ks"):
        NK.run_benchmark({"m": "x"}, splits, [1, 3], seeds=[0], tune_k=4)


def test_accuracy_margin_scales_with_chance():
    assert NK.accuracy_margin(0.01, 1) == pytest.approx(0.01)
    assert NK.accuracy_margin(0.01, 2) == pytest.approx(0.0025)
    for k in range(1, 7):  # always the same multiple of chance, so never larger than chance for a 1-point margin
        assert NK.accuracy_margin(0.01, k) / NK.chance_accuracy(k) == pytest.approx(0.04)
    assert NK.accuracy_margin(None, 3) is None
    with pytest.raises(ParameterError, match="margin_accuracy"):
        NK.accuracy_margin(-0.01, 2)


def test_next_kmer_claims_use_each_ks_scaled_margin():
    import pandas as pd

    rng = np.random.default_rng(3)
    rows = []
    for k in (1, 3):
        for model, init, p in (("m", "pretrained", 0.4), ("m", "random", 0.3), (NK.NGRAM_LEFT, "baseline", 0.35)):
            rows.append(pd.DataFrame({"model": model, "init": init, "seed": 0, "item": np.arange(300), "k": k,
                                      "accuracy": (rng.random(300) < p).astype(float), "bits": rng.random(300)}))
    claims = NK.next_kmer_claims(pd.concat(rows, ignore_index=True), ks=[1, 3], failed=set(), margin_accuracy=0.01,
                                 margin_bits=0.02)
    margins = {(c.claim.split("next ")[1][0], c.metric): c.comparison.margin for c in claims}
    assert margins[("1", "accuracy")] == pytest.approx(0.01) and margins[("3", "accuracy")] == pytest.approx(0.01 / 16)
    assert margins[("3", "bits")] == pytest.approx(0.02)  # bits keep their margin
    assert {c.reference for c in claims} == {NK.NGRAM_LEFT, "random-initialised twin"}  # references the items hold
