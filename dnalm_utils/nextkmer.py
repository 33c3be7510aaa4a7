"""The next-k-mer benchmark: predict the k nucleotides that follow L nucleotides of input.

One example is a window ``s[p : p + L + k]`` of genomic sequence: the **input** is ``x = s[p : p + L]`` and
the **label** is ``y = s[p + L : p + L + k]``, one of ``4**k`` classes. Only ``x`` is ever tokenized, so no
label nucleotide can sit inside an input token, whatever the tokenizer (overlapping or non-overlapping
k-mers, BPE, single nucleotides): the task is the same for every vocabulary and model size.

**Class ids** follow :mod:`dnalm_utils.ngram`: the class of a k-mer is its base-4 number with A=0, C=1, G=2,
T=3, first letter most significant, i.e. ``itertools.product("ACGT", repeat=k)`` order (k=2: AA=0, AC=1,
..., TT=15). This is *not* the "ATCG" order of DNABERT's vocabulary; it never needs to be, because the
label is a class of the classification head, not a token.

**Splits.** Windows are drawn once, ``L + k_max`` nt long, so every k is scored on the same inputs (the
label of k is the first k of the ``k_max`` nt after the input).

* train and validation: the pre-training corpus cut into blocks of ``block_nt`` nt; each block is assigned
  to train or validation at random (``split_seed``), and its last ``gap`` nt are never used, so two usable
  blocks are always more than ``L + k_max`` nt apart and no window of one split shares a nucleotide with a
  window of the other (never a random split of overlapping windows);
* test: held-out sequence that no model saw in pre-training (default: the bundled chr22 slice).

Windows hold only A/C/G/T, on the forward strand. Validation and test windows do not overlap each other
(their starts lie on a grid of ``L + k_max`` nt); training windows are distinct starts that may overlap.

Baselines on the same test windows (:func:`baseline_scores`): chance, the majority class of the training
labels, sampling from the training label frequencies, the left-context n-gram model of every order up to
``max_order`` counted on the training blocks with the order chosen on validation, the same n-gram counted on the
fine-tuning windows alone, and optionally a TF-IDF-weighted k-mer-count logistic regression and a one-hot CNN
trained from scratch (:func:`cnn_baseline`). Metrics: :func:`classification_metrics.multiclass_metrics`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .errors import ParameterError, check_int_range
from .verdicts import ONEHOT_CNN  # the one-hot CNN's row name (onehot_cnn.MODEL_NAME), shared with chapter 6

#: Largest k: 4**8 = 65,536 classes (the limit of ngram.left_context_probs).
MAX_K = 8
SPLITS = ("train", "valid", "test")


def check_k(k, name: str = "k") -> int:
    """``k`` as int if 1 <= k <= 8, else ParameterError."""
    return check_int_range(name, k, 1, MAX_K, hint=f"It is the number of predicted nucleotides (4**{name} classes).")


def check_ks(ks) -> list[int]:
    """A non-empty list of distinct k values in 1..8, in the given order."""
    ks = [ks] if isinstance(ks, (int, np.integer)) else list(ks)
    if not ks:
        raise ParameterError("ks is empty: pass at least one k (e.g. [1, 2, 3]).")
    ks = [check_k(k) for k in ks]
    if len(set(ks)) != len(ks):
        raise ParameterError(f"ks={ks} lists a k more than once.")
    return ks


def min_input_nt(tokenizer) -> int:
    """Shortest input that holds one whole token of ``tokenizer``: k for k-mer tokenizers, else 1."""
    if tokenizer.scheme in ("overlapping", "nonoverlapping"):
        return int(tokenizer.k)
    return 1


def check_input_length(tokenizer, input_nt: int, *, name: str = "") -> int:
    """Raise ParameterError if ``input_nt`` nt are shorter than one token of ``tokenizer``."""
    input_nt = check_int_range("input_nt", input_nt, 1, hint="It is the input length L in nt.")
    need = min_input_nt(tokenizer)
    if input_nt < need:
        raise ParameterError(
            f"input_nt={input_nt} is shorter than one token of {name or tokenizer.description} ({need} nt): the "
            f"input would hold no {need}-mer. Use input_nt >= {need}."
        )
    return input_nt


# --------------------------------------------------------------------------------------------------
# Genomic blocks and windows
# --------------------------------------------------------------------------------------------------
def block_intervals(lengths: Mapping[str, int], *, block_nt: int, gap: int, valid_fraction: float,
                    seed: int, splits: tuple[str, str] = ("train", "valid")):
    """Cut every record into blocks of ``block_nt`` nt and assign each block to one of two splits.

    Block i of a record covers ``[i * block_nt, (i + 1) * block_nt)``; its last ``gap`` nt are dropped, so the
    usable part is ``[i * block_nt, (i + 1) * block_nt - gap)`` and usable parts of neighbouring blocks are
    ``gap`` nt apart. A block goes to ``splits[1]`` with probability ``valid_fraction`` (seeded), else to
    ``splits[0]``; if the draw leaves a split empty, the block with the smallest draw (or largest) is moved.
    Returns a DataFrame (name, start, end, split) of usable parts in genome order; raises ParameterError if
    fewer than two blocks have a usable part.
    """
    import pandas as pd

    block_nt = check_int_range("block_nt", block_nt, 2, hint="It is the genomic block size in nt.")
    gap = check_int_range("gap", gap, 0, hint="It is the unused stretch at the end of each block in nt.")
    if gap >= block_nt:
        raise ParameterError(f"gap={gap} must be smaller than block_nt={block_nt}; use larger blocks.")
    if not 0 < float(valid_fraction) < 1:
        raise ParameterError(f"valid_fraction={valid_fraction} must lie strictly between 0 and 1.")
    seed = check_int_range("split_seed", seed, 0)
    names, starts, ends = [], [], []
    for name, length in lengths.items():
        b = np.arange(0, int(length), block_nt, dtype=np.int64)
        e = np.minimum(b + block_nt, int(length)) - gap
        keep = e > b
        names += [name] * int(keep.sum())
        starts.append(b[keep])
        ends.append(e[keep])
    if len(names) < 2:
        raise ParameterError(
            f"only {len(names)} block(s) of {block_nt} nt (minus a gap of {gap} nt) fit the sequence "
            f"({sum(lengths.values()):,} nt in all); two splits need at least two blocks. Use smaller blocks."
        )
    draw = np.random.default_rng(seed).random(len(names))
    second = draw < float(valid_fraction)
    if second.all():
        second[int(np.argmax(draw))] = False
    elif not second.any():
        second[int(np.argmin(draw))] = True
    return pd.DataFrame({"name": names, "start": np.concatenate(starts), "end": np.concatenate(ends),
                         "split": np.where(second, splits[1], splits[0])})


def _acgt_pieces(genome, intervals, length: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Intersections of ``intervals`` (DataFrame name, start, end) with the genome's ACGT-only segments,
    kept if at least ``length`` nt: (names, starts, ends) in genome order."""
    segs = genome.segments(min_length=length)
    names, starts, ends = [], [], []
    for name, iv in intervals.groupby("name", sort=False):
        s = segs[segs.name == name]
        if s.empty:
            continue
        ss, se = s.start.to_numpy(), s.end.to_numpy()
        for a, b in zip(iv.start.to_numpy(), iv.end.to_numpy()):
            lo = np.searchsorted(se, a, side="right")  # first segment ending after a
            hi = np.searchsorted(ss, b, side="left")  # segments starting before b
            for j in range(lo, hi):
                x, y = max(a, ss[j]), min(b, se[j])
                if y - x >= length:
                    names.append(name)
                    starts.append(x)
                    ends.append(y)
    return names, np.asarray(starts, dtype=np.int64), np.asarray(ends, dtype=np.int64)


def draw_windows(genome, intervals, length: int, n: int, *, seed: int, stride: int = 1, split: str = "windows"):
    """``n`` distinct ACGT-only windows of ``length`` nt lying wholly inside ``intervals``.

    Candidate starts are ``piece_start + j * stride`` inside every ACGT-only piece of the intervals (stride
    >= length gives non-overlapping windows); ``n`` of them are drawn without replacement (seeded) and
    returned in genome order as a DataFrame (name, start, end, sequence). Raises ParameterError ("too few
    windows") if fewer than ``n`` candidates exist.
    """
    import pandas as pd

    length = check_int_range("window length", length, 1)
    n = check_int_range(f"n ({split})", n, 1, hint="It is the number of windows of this split.")
    stride = check_int_range("stride", stride, 1)
    names, starts, ends = _acgt_pieces(genome, intervals, length)
    counts = (ends - starts - length) // stride + 1 if len(names) else np.zeros(0, dtype=np.int64)
    total = int(counts.sum())
    if total < n:
        raise ParameterError(
            f"too few windows for the {split} split: its blocks hold {total:,} ACGT-only windows of {length} nt "
            f"(step {stride} nt) but {n:,} were asked for. Ask for fewer, use shorter windows, or give this "
            "split more sequence (e.g. a larger valid_fraction or another region)."
        )
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(total, size=n, replace=False))
    cum = np.cumsum(counts)
    piece = np.searchsorted(cum, pick, side="right")
    pos = starts[piece] + (pick - (cum[piece] - counts[piece])) * stride
    rec = [names[i] for i in piece.tolist()]
    seqs = [genome.fetch(r, int(p), int(p) + length) for r, p in zip(rec, pos.tolist())]
    return pd.DataFrame({"name": rec, "start": pos, "end": pos + length, "sequence": seqs})


# --------------------------------------------------------------------------------------------------
# Windows -> (input, label) examples
# --------------------------------------------------------------------------------------------------
def kmer_classes(kmers: Sequence[str]) -> np.ndarray:
    """(n,) int64 class ids of equal-length ACGT k-mers (ngram order: A=0 C=1 G=2 T=3, first letter most
    significant)."""
    from .ngram import encode_kmers

    return encode_kmers(list(kmers)).astype(np.int64)


def class_kmers(classes, k: int) -> list[str]:
    """Inverse of :func:`kmer_classes`: class ids of k-mers -> k-mer strings."""
    from .ngram import decode_kmers

    return decode_kmers(np.asarray(classes, dtype=np.uint64), check_k(k))


@dataclass
class NextKmerTask:
    """One split at one k: ``inputs`` (n str of L nt, the only thing a model tokenizes), ``labels`` ((n,) int64
    class ids of the next k nt) and ``loci`` (DataFrame name, start, end of each input; the label occupies
    ``[end, end + k)`` on the same record)."""

    split: str
    k: int
    input_nt: int
    inputs: list[str]
    labels: np.ndarray
    loci: object

    def __len__(self) -> int:
        return len(self.inputs)

    @property
    def num_classes(self) -> int:
        return 4**self.k

    def label_kmers(self) -> list[str]:
        return class_kmers(self.labels, self.k)


@dataclass
class NextKmerWindows:
    """The windows of one split, ``input_nt + k_max`` nt each (DataFrame name, start, end, sequence)."""

    split: str
    input_nt: int
    k_max: int
    windows: object

    def __len__(self) -> int:
        return len(self.windows)

    def task(self, k: int) -> NextKmerTask:
        """Inputs (first ``input_nt`` nt) and labels (the next k nt) of every window."""
        k = check_k(k)
        if k > self.k_max:
            raise ParameterError(f"k={k} is larger than k_max={self.k_max} the windows were drawn for; rebuild with "
                                 f"k_max >= {k}.")
        L = self.input_nt
        seqs = self.windows["sequence"].tolist()
        loci = self.windows[["name", "start"]].copy()
        loci["end"] = loci["start"] + L
        return NextKmerTask(self.split, k, L, [s[:L] for s in seqs], kmer_classes([s[L : L + k] for s in seqs]),
                            loci.reset_index(drop=True))


@dataclass
class NextKmerSplits:
    """Train / validation / test windows plus the block table they come from and the sequence the n-gram
    baseline counts (the whole usable training blocks)."""

    train: NextKmerWindows
    valid: NextKmerWindows
    test: NextKmerWindows
    blocks: object  # DataFrame name, start, end, split (train/valid)
    train_block_sequences: list[str] = field(repr=False, default_factory=list)
    gap: int = 0

    def __getitem__(self, split: str) -> NextKmerWindows:
        if split not in SPLITS:
            raise ParameterError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}.")
        return getattr(self, split)

    def tasks(self, k: int) -> dict[str, NextKmerTask]:
        return {s: self[s].task(k) for s in SPLITS}

    def sizes(self):
        """One row per split: windows, blocks and nt of sequence they were drawn from."""
        import pandas as pd

        rows = []
        for s in SPLITS:
            b = self.blocks[self.blocks.split == s] if s != "test" else None
            rows.append({"split": s, "windows": len(self[s]),
                         "blocks": len(b) if b is not None else np.nan,
                         "block nt": int((b.end - b.start).sum()) if b is not None else np.nan})
        return pd.DataFrame(rows)


def check_disjoint_sources(train_fasta, train_region: str, test_fasta, test_region: str) -> None:
    """ParameterError when training/validation and test windows could come from the same stretch of the same
    FASTA file: the same file (after resolving paths) with regions that are empty (the whole file), on the
    same record, and overlapping. Empty ``train_fasta`` / ``test_fasta`` mean the bundled corpus / held-out
    files, which are disjoint."""
    from . import data
    from .genome import parse_region

    def where(fasta, role):
        return Path(str(fasta) if str(fasta).strip() else data.bundled_file(role)).expanduser().resolve()

    if where(train_fasta, "pretrain") != where(test_fasta, "heldout"):
        return
    tr = parse_region(train_region) if str(train_region).strip() else None
    te = parse_region(test_region) if str(test_region).strip() else None
    clash = tr is None or te is None
    if not clash and tr[0] == te[0]:
        inf = float("inf")
        clash = tr[1] < (te[2] if te[2] is not None else inf) and te[1] < (tr[2] if tr[2] is not None else inf)
    if clash:
        raise ParameterError(
            f"train_fasta={str(train_fasta)!r} (train_region={train_region!r}) and fasta={str(test_fasta)!r} "
            f"(region={test_region!r}) overlap: test windows could repeat training sequence. Give the two "
            "parameters disjoint regions of the file (e.g. train_region='chr21', region='chr22').")


def build_splits(*, input_nt: int, k_max: int, n_train: int, n_valid: int, n_test: int, seed: int = 0,
                 corpus=None, test_genome=None, block_nt: int = 20_000, valid_fraction: float = 0.15,
                 gap: int | None = None, tokenizers: Mapping[str, object] | None = None) -> NextKmerSplits:
    """Draw the next-k-mer windows: train/validation from genomic blocks of ``corpus`` (a genome.Genome;
    default the bundled pre-training corpus without the records that repeat another,
    corpus.split_corpus_records), test from ``test_genome`` (default the bundled held-out chr22
    slice, see data.evaluation_genome).

    ``gap`` (default ``input_nt + k_max + 1``) must exceed ``input_nt + k_max``. ``seed`` seeds the block
    assignment and the draws (the same seed gives the same windows). ``tokenizers`` (name -> tokenizer), if
    given, are checked to fit at least one token into ``input_nt``. Raises ParameterError for k_max outside
    1..8, input_nt shorter than a token, a too small gap, or too few windows for a split.
    """
    from . import corpus as corpus_module, data, genome as G

    k_max = check_k(k_max, "k_max")
    input_nt = check_int_range("input_nt", input_nt, 1, hint="It is the input length L in nt.")
    for name, tok in (tokenizers or {}).items():
        check_input_length(tok, input_nt, name=name)
    seed = check_int_range("seed", seed, 0)
    length = input_nt + k_max
    gap = length + 1 if gap is None else check_int_range("gap", gap, 0)
    if gap <= length:
        raise ParameterError(f"gap={gap} must be larger than input_nt + k_max = {length} so that no window of "
                             "one split can reach into a block of another.")
    if corpus is None:
        corpus = G.Genome.from_records(corpus_module.split_corpus_records())
    if test_genome is None:
        test_genome = data.evaluation_genome()
    blocks = block_intervals(corpus.lengths, block_nt=block_nt, gap=gap, valid_fraction=valid_fraction, seed=seed)
    train = draw_windows(corpus, blocks[blocks.split == "train"], length, n_train, seed=seed + 1, split="train")
    valid = draw_windows(corpus, blocks[blocks.split == "valid"], length, n_valid, seed=seed + 2, stride=length,
                         split="validation")
    everything = _whole_records(test_genome)
    test = draw_windows(test_genome, everything, length, n_test, seed=seed + 3, stride=length, split="test")
    tb = blocks[blocks.split == "train"]
    block_seqs = [corpus.fetch(r.name, int(r.start), int(r.end)) for r in tb.itertuples()]
    return NextKmerSplits(
        train=NextKmerWindows("train", input_nt, k_max, train), valid=NextKmerWindows("valid", input_nt, k_max, valid),
        test=NextKmerWindows("test", input_nt, k_max, test), blocks=blocks, train_block_sequences=block_seqs, gap=gap,
    )


def _whole_records(genome):
    import pandas as pd

    return pd.DataFrame({"name": list(genome.names), "start": 0, "end": [genome.lengths[n] for n in genome.names]})


# --------------------------------------------------------------------------------------------------
# Baselines
# --------------------------------------------------------------------------------------------------
def class_prior(labels, num_classes: int, *, alpha: float = 0.5) -> np.ndarray:
    """(num_classes,) add-``alpha`` smoothed class frequencies of ``labels``."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes).astype(np.float64)
    return (counts + alpha) / (counts.sum() + alpha * num_classes)


class NgramBaseline:
    """Left-context n-gram (Markov) next-k-mer model counted on the training blocks.

    ``sequences``: the training blocks (str); k-mers are counted on both strands (ngram.KmerCounts), up to
    ``max_order + k_max`` nt. :meth:`probs` is ngram.left_context_probs; :meth:`fit` scores every order
    0..max_order on validation inputs and keeps the lowest log-loss (ties: the smaller order).
    """

    def __init__(self, sequences: Sequence[str], *, max_order: int, k_max: int, alpha: float = 0.5):
        from .ngram import KmerCounts

        self.k_max = check_k(k_max, "k_max")
        self.max_order = check_int_range("ngram_max_order", max_order, 0, 31 - self.k_max,
                                         hint="It is the longest left context (nt) of the n-gram baseline; context "
                                         "plus predicted k-mer must fit the 31 nt of a 2-bit packed k-mer.")
        self.alpha = float(alpha)
        self.counts = KmerCounts(list(sequences), max_len=self.max_order + self.k_max)

    def probs(self, inputs: Sequence[str], k: int, order: int) -> np.ndarray:
        """(n, 4**k) probabilities of the next k-mer after each input from its last ``order`` nt."""
        from .ngram import left_context_probs

        return left_context_probs(self.counts, list(inputs), check_k(k), order=order, alpha=self.alpha)

    def fit(self, valid: NextKmerTask):
        """(best order, DataFrame order, accuracy, bits per nt on the validation task)."""
        import pandas as pd

        from .classification_metrics import multiclass_metrics

        rows = []
        for o in range(self.max_order + 1):
            m = multiclass_metrics(self.probs(valid.inputs, valid.k, o), valid.labels, nt_per_class=valid.k)
            rows.append({"order": o, "accuracy": m["accuracy"], "bits": m["bits"]})
        table = pd.DataFrame(rows)
        best = int(table.order.iloc[int(np.argmin(table.bits.to_numpy()))])
        return best, table


#: Name of the left-context n-gram counted on the training blocks of the corpus (:func:`baseline_scores`).
NGRAM_LEFT = "n-gram (left context)"
#: Name of the left-context n-gram counted on the fine-tuning windows alone (:func:`baseline_scores`).
WINDOW_NGRAM = "n-gram (fine-tuning windows)"


def training_windows(task: NextKmerTask) -> list[str]:
    """The labelled sequence a fine-tuned model sees: each input followed by its k-mer label (str of
    input_nt + k nt per training example)."""
    return [x + y for x, y in zip(task.inputs, task.label_kmers())]


def tfidf_baseline(tasks: Mapping[str, NextKmerTask], *, tfidf_kmer: int | Sequence[int],
                   tfidf_max_train: int = 20_000, tfidf_Cs: Sequence[float] = (0.1, 1.0, 10.0)):
    """(test probabilities (n_test, 4^k), choice) of the TF-IDF k-mer-count logistic regression of
    :func:`baseline_scores` (``kmer_baseline.tuned_kmer_logistic_regression`` on at most ``tfidf_max_train``
    training windows, k-mer size and C picked on ``tasks["valid"]``)."""
    from .kmer_baseline import tuned_kmer_logistic_regression

    train, valid, test = tasks["train"], tasks["valid"], tasks["test"]
    sub = np.arange(min(len(train), int(tfidf_max_train)))
    kmers = [tfidf_kmer] if isinstance(tfidf_kmer, (int, np.integer)) else list(tfidf_kmer)
    return tuned_kmer_logistic_regression(([train.inputs[i] for i in sub], train.labels[sub]),
                                          (valid.inputs, valid.labels), test.inputs, num_classes=test.num_classes,
                                          kmers=kmers, Cs=tfidf_Cs)


def cnn_baseline(tasks: Mapping[str, NextKmerTask], *, seed: int, lrs: Sequence[float], settings=None):
    """One one-hot CNN trained from scratch on the training windows of ``tasks`` (one k), its learning rate picked
    among ``lrs`` on the validation windows (``onehot_cnn.tune_cnn``; ``settings``: its budget, a
    ``finetuning.FinetuneSettings``), scored on the test windows. Returns (row, items): row = model
    (:data:`ONEHOT_CNN`), seed, the multiclass scores, detail (the rate chosen, the best and last step); items =
    model, seed, item, accuracy (0/1), bits per nucleotide."""
    from .lr_tuning import format_rate
    from .onehot_cnn import cnn_grid

    train, valid, test = tasks["train"], tasks["valid"], tasks["test"]
    runs, items = cnn_grid((list(train.inputs), train.labels), (list(valid.inputs), valid.labels),
                           (list(test.inputs), test.labels), num_classes=test.num_classes, seeds=[seed],
                           settings=settings, lrs=list(lrs), nt_per_class=test.k)
    run = runs.iloc[0].to_dict()
    keep = ("accuracy", "top5", "macro_f1", "bits", "predicted_classes")
    row = {"model": ONEHOT_CNN, "seed": int(seed), **{c: run[c] for c in keep if c in run},
           "detail": (f"learning rate {format_rate(run['lr'])} picked on validation among "
                      f"{', '.join(format_rate(r) for r in lrs)}; best step {int(run['best_step'])} of "
                      f"{int(run['steps'])}" + (" (stopped early)" if run["stopped_early"] else " (the step cap)"))}
    return row, items[["model", "seed", "item", "accuracy", "bits"]]


def baseline_scores(tasks: Mapping[str, NextKmerTask], *, ngram: NgramBaseline | None = None, seeds: Sequence[int] = (0,),
                    tfidf_kmer: int | Sequence[int] = 0, tfidf_max_train: int = 20_000, with_items: bool = False,
                    tfidf_Cs: Sequence[float] = (0.1, 1.0, 10.0), window_ngram: bool = False, tfidf_fitted=None,
                    cnn_lrs: Sequence[float] | None = None, cnn_settings=None, cnn_fitted=None):
    """Scores of the baselines on ``tasks["test"]`` (one k): chance, majority class, sampling from the
    training prior (one row per seed), the left-context n-gram with its order chosen on ``tasks["valid"]``,
    with ``window_ngram`` the same n-gram counted on the fine-tuning windows alone (:data:`WINDOW_NGRAM`: each
    training input plus its k labelled nucleotides, both strands; the models see no more labelled sequence),
    and, if ``tfidf_kmer`` is given (one k-mer size or several), a logistic regression on TF-IDF-weighted k-mer
    counts of the input, its k-mer size (among ``tfidf_kmer``) and C (among ``tfidf_Cs``) picked on
    ``tasks["valid"]`` like the models' early stopping (``kmer_baseline.tuned_kmer_logistic_regression``; trained
    on at most ``tfidf_max_train`` training examples), and, if ``cnn_lrs`` is given, a one-hot CNN trained from
    scratch per seed (:func:`cnn_baseline`, its budget ``cnn_settings``; ``cnn_fitted``: seed -> its result already
    computed elsewhere, or a future of it).

    Returns (DataFrame with one row per baseline and seed: model, seed, accuracy, top5, macro_f1, bits,
    detail; DataFrame of the n-gram's validation scores per order). ``with_items=True`` adds a third
    element, the per-item test scores (model, item, accuracy 0/1, bits per nt; seed for the CNN) of the baselines
    that predict probabilities per item (majority class, n-grams, TF-IDF regression, CNN). ``tfidf_fitted``: the TF-IDF result
    already computed elsewhere (:func:`tfidf_baseline`'s (probs, choice), or a future of it), used instead of
    fitting here.
    """
    import pandas as pd

    from .classification_metrics import item_scores, multiclass_metrics, uniform_guess_metrics

    train, valid, test = tasks["train"], tasks["valid"], tasks["test"]
    k, c, n = test.k, test.num_classes, len(test)
    rows, items = [], []

    def add(name, probs, *, seed=None, detail="", metrics=None):
        m = metrics or multiclass_metrics(probs, test.labels, nt_per_class=k)
        rows.append({"model": name, "seed": seed, **m, "detail": detail})
        if metrics is None:
            correct, bits = item_scores(probs, test.labels, nt_per_class=k)
            items.append(pd.DataFrame({"model": name, "item": np.arange(n), "accuracy": correct, "bits": bits}))

    add("chance", None, metrics=uniform_guess_metrics(test.labels, c, nt_per_class=k),
        detail=f"uniform guess among 4^{k} classes (expected scores)")
    prior = class_prior(train.labels, c)
    prior_bits = multiclass_metrics(np.broadcast_to(prior, (n, c)), test.labels, nt_per_class=k)["bits"]
    add("majority class", np.broadcast_to(prior, (n, c)),
        detail=f"always {class_kmers([int(np.argmax(prior))], k)[0]}; bits of the smoothed training prior")
    for s in seeds:
        rng = np.random.default_rng(int(s))
        # Sampling from the prior: Gumbel-max keys draw one class per row (and a top 5 without replacement).
        keys = np.log(prior)[None, :] - np.log(-np.log(rng.random((n, c))))
        m = multiclass_metrics(keys, test.labels, nt_per_class=k, bits=False)
        add("prior sampling", None, seed=int(s), metrics={**m, "bits": prior_bits},
            detail="labels drawn from the training class frequencies; bits of the smoothed prior")
    order_table = None
    if ngram is not None:
        best, order_table = ngram.fit(valid)
        add(NGRAM_LEFT, ngram.probs(test.inputs, k, best), detail=f"order {best} chosen on validation")
        order_table = order_table.assign(k=k)
    if window_ngram:
        if ngram is None:
            raise ParameterError("window_ngram=True needs ngram= (its maximum order is reused).")
        local = NgramBaseline(training_windows(train), max_order=ngram.max_order, k_max=k, alpha=ngram.alpha)
        best_local, _ = local.fit(valid)
        add(WINDOW_NGRAM, local.probs(test.inputs, k, best_local),
            detail=f"order {best_local} chosen on validation; counted on the {len(train):,} fine-tuning windows only")
    if tfidf_kmer:
        if tfidf_fitted is None:
            tfidf_fitted = tfidf_baseline(tasks, tfidf_kmer=tfidf_kmer, tfidf_max_train=tfidf_max_train,
                                          tfidf_Cs=tfidf_Cs)
        probs, choice = tfidf_fitted.result() if hasattr(tfidf_fitted, "result") else tfidf_fitted
        add("k-mer TF-IDF + logistic regression", probs,
            detail=f"{choice['kmer']}-mer counts of the input, C = {choice['C']:g} (both picked on validation)")
    if cnn_lrs:
        for s in seeds:
            done = (cnn_fitted or {}).get(int(s))
            if done is None:
                done = cnn_baseline(tasks, seed=int(s), lrs=cnn_lrs, settings=cnn_settings)
            row, item = done.result() if hasattr(done, "result") else done
            rows.append(row)
            items.append(item)
    table = pd.DataFrame(rows)
    if with_items:
        return table, order_table, pd.concat(items, ignore_index=True)
    return table, order_table


def baseline_tables(splits, ks: Sequence[int], *, ngram: NgramBaseline | None = None, seeds: Sequence[int] = (0,),
                    tfidf_kmer: int | Sequence[int] = 0, tfidf_max_train: int = 20_000,
                    tfidf_Cs: Sequence[float] = (0.1, 1.0, 10.0), window_ngram: bool = False, executor=None,
                    cnn_lrs: Sequence[float] | None = None, cnn_settings=None):
    """:func:`baseline_scores` for every k of ``ks`` (``splits.tasks(k)``), stacked with a ``k`` column: returns
    (baselines, n-gram orders, per-item scores). ``executor`` (``grid_executors.make_executor``): the TF-IDF
    regressions (the slow part: 4^k classes) and the one-hot CNNs (``cnn_lrs``, one per k and seed) are fitted in
    its workers, the largest k first, while the n-grams are scored here; the numbers equal the serial ones up to
    float rounding (BLAS and torch threads)."""
    import pandas as pd

    ks = list(ks)
    fitted, cnns = {}, {}
    if executor is not None:
        for k in sorted(ks, reverse=True):
            if tfidf_kmer:
                fitted[k] = executor.submit(tfidf_baseline, splits.tasks(k), tfidf_kmer=tfidf_kmer,
                                            tfidf_max_train=tfidf_max_train, tfidf_Cs=tfidf_Cs)
            if cnn_lrs:
                cnns[k] = {int(s): executor.submit(cnn_baseline, splits.tasks(k), seed=int(s), lrs=list(cnn_lrs),
                                                   settings=cnn_settings) for s in seeds}
    tables, orders, items = [], [], []
    for k in ks:
        table, order, item = baseline_scores(splits.tasks(k), ngram=ngram, seeds=seeds, tfidf_kmer=tfidf_kmer,
                                             tfidf_max_train=tfidf_max_train, tfidf_Cs=tfidf_Cs, with_items=True,
                                             window_ngram=window_ngram, tfidf_fitted=fitted.get(k),
                                             cnn_lrs=cnn_lrs, cnn_settings=cnn_settings, cnn_fitted=cnns.get(k))
        tables.append(table.assign(k=k))
        items.append(item.assign(k=k))
        if order is not None:
            orders.append(order)
    return (pd.concat(tables, ignore_index=True), pd.concat(orders, ignore_index=True) if orders else pd.DataFrame(),
            pd.concat(items, ignore_index=True))


# --------------------------------------------------------------------------------------------------
# The benchmark
# --------------------------------------------------------------------------------------------------
def window_ngram_sentence(baselines) -> str:
    """One computed sentence setting the n-gram counted on the fine-tuning windows alone (:data:`WINDOW_NGRAM`)
    beside the corpus-wide one (:data:`NGRAM_LEFT`), per k. ``baselines``: :func:`baseline_scores` rows with a
    ``k`` column. Empty when the window n-gram was not computed."""
    from .verdicts import fmt_pct

    acc = baselines[baselines.model.isin([NGRAM_LEFT, WINDOW_NGRAM])].pivot_table(
        index="k", columns="model", values="accuracy", aggfunc="mean")
    if WINDOW_NGRAM not in acc.columns or NGRAM_LEFT not in acc.columns:
        return ""

    def listing(values):
        items = [f"{fmt_pct(v, 2)} at k = {k}" for k, v in values.items()]
        return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]

    lower = int((acc[WINDOW_NGRAM] < acc[NGRAM_LEFT]).sum())
    return (f"Counted on the fine-tuning windows alone (the labelled sequence the models see), the left-context "
            f"n-gram scores {listing(acc[WINDOW_NGRAM])}, against {listing(acc[NGRAM_LEFT])} counted on all the "
            f"training blocks: lower at {lower} of {len(acc)} values of k.")


def run_benchmark(sources: Mapping[str, str], splits: NextKmerSplits, ks: Sequence[int], *, seeds: Sequence[int],
                  settings=None, inits: Sequence[str] = ("pretrained", "random"), models_dir=None,
                  device: str = "auto", progress: bool = True, keep_models_dir=None, cache_dir=None,
                  load_options: Mapping | None = None, with_items: bool = False, executor=None,
                  learning_rates: Mapping | None = None, init_settings: Mapping | None = None,
                  tune_k: int | None = None):
    """Fine-tune every model of ``sources`` (name -> what models.load_model takes) for every k of ``ks``,
    init (pre-trained weights / random initialisation of the same config) and seed, and score it on the test
    windows. Returns a tidy DataFrame, one row per run: model, init, k, seed, accuracy, top5, macro_f1, bits,
    best_step, steps, stopped_early, train_s, tokenization, n_train, n_valid, n_test, cached
    (``cache_dir``: finished runs reused, see finetune_runs.run_grid); ``with_items=True`` returns ``(runs, items)``, items being the per-item test scores
    (model, init, seed, k, item, accuracy 0/1, bits per nt). ``load_options``: more
    ``models.load_model`` arguments (``trust_remote_code``, ``on_invalid``). ``executor``: where the runs
    execute (``finetune_runs.run_grid``; None = serially here). ``learning_rates``: init -> candidate rates picked
    on validation per model and k (``lr_tuning.tuned_grid``; column ``learning_rate`` says which each run used).
    ``init_settings``: init -> its own budget (``lr_tuning.init_run_settings``; columns max_steps and patience say
    which each run had). ``tune_k``: one k of ``ks`` whose validation loss picks each model's rate, then used for
    every k (``lr_tuning.chosen_from``; one tuning grid instead of one per k); None: each k picks its own.
    """
    import functools

    import pandas as pd

    from .classification_metrics import multiclass_metrics
    from .lr_tuning import chosen_from, tuned_grid

    ks = check_ks(ks)
    for k in ks:
        if k > splits.train.k_max:
            raise ParameterError(f"k={k} exceeds k_max={splits.train.k_max} of the splits.")
    if tune_k is not None and tune_k not in ks:
        raise ParameterError(f"tune_k={tune_k!r} is not one of ks={ks}: pick the k whose validation loss chooses the "
                             "learning rates, or None to choose them per k.")
    order = ks if tune_k is None else [tune_k] + [k for k in ks if k != tune_k]
    chosen, frames = None, {}
    for k in order:
        tasks = splits.tasks(k)
        train, valid, test = tasks["train"], tasks["valid"], tasks["test"]
        frame = tuned_grid(
            sources, (train.inputs, train.labels), (valid.inputs, valid.labels), (test.inputs, test.labels),
            learning_rates=learning_rates, num_labels=4**k, seeds=seeds, inits=inits, settings=settings,
            models_dir=models_dir, device=device,
            score=functools.partial(multiclass_metrics, nt_per_class=k), progress=progress,
            desc=f"next {k}-mer", keep_models_dir=keep_models_dir, tag=f"k{k}",
            check=lambda tok, name: check_input_length(tok, splits.train.input_nt, name=name),
            cache_dir=cache_dir, score_id=f"multiclass/nt_per_class={k}", load_options=load_options,
            nt_per_class=k, with_items=True, executor=executor, init_settings=init_settings, chosen_rates=chosen,
        )
        if k == tune_k:
            chosen = chosen_from(frame[2])
        frames[k] = frame
    rows = [frames[k][0].assign(k=k) for k in ks]
    items = [frames[k][1].assign(k=k) for k in ks]
    out = pd.concat(rows, ignore_index=True)
    first = ["model", "init", "k", "seed"]
    out = out[first + [c for c in out.columns if c not in first]]
    return (out, pd.concat(items, ignore_index=True)) if with_items else out


def summarize(results, baselines=None):
    """Mean and standard deviation over seeds per (model, init, k) of accuracy, top5, macro_f1 and bits, with
    the number of seeds; baselines (model, k, seed, metrics...) are appended with init = "baseline"."""
    import pandas as pd

    from .finetune_runs import summarize_runs

    parts = [summarize_runs(results, ["model", "init", "k"])] if results is not None and len(results) else []
    if baselines is not None and len(baselines):
        parts.append(summarize_runs(baselines.assign(init="baseline"), ["model", "init", "k"]))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


#: The three ways chapter 5 reads what pre-training gave, in order (:func:`readout_comparison`).
READOUTS = ("fine-tuned", "frozen probe", "zero-shot")


def readout_comparison(summary, frozen=None, zero=None):
    """Per (model, k): test accuracy read three ways, one tidy row per readout (:data:`READOUTS`) with an
    interval where one exists -- fine-tuned from the pre-trained weights (:func:`summarize`: mean over seeds,
    low / high = mean -/+ one standard deviation), the frozen-embedding probe at the layer chosen on validation
    (``frozen_probes.frozen_probe_grid`` with a ``k`` column: 95 % bootstrap interval) and the zero-shot readout
    (``zero_shot.zero_shot_scores``: 95 % bootstrap interval) -- and the left n-gram and chance as
    ``reference`` columns. Columns: model, k, readout, accuracy, low, high, ngram, chance."""
    import pandas as pd

    rows = []
    pre = summary[summary.init == "pretrained"] if len(summary) else summary
    ngram = {} if not len(summary) else dict(
        summary[(summary.init == "baseline") & (summary.model == NGRAM_LEFT)][["k", "accuracy_mean"]]
        .itertuples(index=False, name=None))
    for r in pre.itertuples():
        sd = 0.0 if pd.isna(r.accuracy_std) else r.accuracy_std
        rows.append({"model": r.model, "k": int(r.k), "readout": READOUTS[0], "accuracy": r.accuracy_mean,
                     "low": r.accuracy_mean - sd, "high": r.accuracy_mean + sd})
    if frozen is not None and len(frozen):
        for r in frozen[frozen.chosen.astype(bool)].itertuples():
            rows.append({"model": r.model, "k": int(r.k), "readout": READOUTS[1], "accuracy": r.accuracy,
                         "low": r.ci_low, "high": r.ci_high})
    if zero is not None and len(zero):
        for r in zero.itertuples():
            rows.append({"model": r.model, "k": int(r.k), "readout": READOUTS[2], "accuracy": r.accuracy,
                         "low": r.accuracy_low, "high": r.accuracy_high})
    out = pd.DataFrame(rows, columns=["model", "k", "readout", "accuracy", "low", "high"])
    out["ngram"] = out.k.map(ngram)
    out["chance"] = 4.0 ** -out.k.astype(float)
    return out


def accuracy_intervals(run_items, baseline_items, *, init: str = "pretrained",
                       reference: str = NGRAM_LEFT, n_boot: int = 1000, seed: int = 0,
                       trained_baselines: Sequence[str] = (ONEHOT_CNN,)):
    """Per (model, k) of the ``init`` runs: test accuracy as is, as a multiple of chance and as the gap to the
    ``reference`` baseline, each with a 95 % percentile bootstrap interval over test windows (the per-window
    accuracy averaged over seeds first; the gap resampled in pairs, the same windows for model and reference),
    and the spread over seeds. The baselines named in ``trained_baselines`` that ``baseline_items`` hold (trained
    per seed, e.g. the one-hot CNN) get the same row, with init "baseline".

    run_items: model, init, seed, item, accuracy, k (``run_benchmark(..., with_items=True)`` with k); baseline_items:
    model, item, accuracy, k (``baseline_scores(..., with_items=True)`` with k). Columns: model, k, accuracy,
    accuracy_low, accuracy_high, seed_sd (standard deviation of the per-seed accuracies; NaN for one seed), seeds,
    chance, x_chance, x_chance_low, x_chance_high, reference_accuracy, gap, gap_low, gap_high, windows, init."""
    import pandas as pd

    from .dependency_maps import bootstrap_mean_interval

    rows = []
    runs = run_items[run_items.init == init].assign(init=init)
    trained = baseline_items[baseline_items.model.isin(list(trained_baselines))]
    if len(trained):
        runs = pd.concat([runs, trained.assign(init="baseline")], ignore_index=True)
    for (model, k, group), part in runs.groupby(["model", "k", "init"], sort=False):
        per_item = part.groupby("item").accuracy.mean()
        per_seed = part.groupby("seed").accuracy.mean()
        acc, lo, hi = bootstrap_mean_interval(per_item.to_numpy(), n_boot=n_boot, seed=seed)
        ref = baseline_items[(baseline_items.model == reference) & (baseline_items.k == k)].set_index("item").accuracy
        both = per_item.index.intersection(ref.index)
        gap, glo, ghi = (bootstrap_mean_interval((per_item.loc[both] - ref.loc[both]).to_numpy(), n_boot=n_boot,
                                                 seed=seed) if len(both) else (np.nan, np.nan, np.nan))
        chance = chance_accuracy(int(k))
        rows.append({"model": model, "k": int(k), "accuracy": acc, "accuracy_low": lo, "accuracy_high": hi,
                     "seed_sd": float(per_seed.std()) if len(per_seed) > 1 else np.nan, "seeds": len(per_seed),
                     "chance": chance, "x_chance": acc / chance, "x_chance_low": lo / chance,
                     "x_chance_high": hi / chance,
                     "reference_accuracy": float(ref.loc[both].mean()) if len(both) else np.nan,
                     "gap": gap, "gap_low": glo, "gap_high": ghi, "windows": len(per_item), "init": group})
    return pd.DataFrame(rows)


def chance_accuracy(k: int) -> float:
    return 1.0 / 4 ** check_k(k)


def next_kmer_claims(items, *, ks: Sequence[int], failed, margin_accuracy: float | None, margin_bits: float | None,
                     arm_pairs: Mapping | None = None) -> list:
    """Chapter 5's claims per k, each with the accuracy margin of that k (:func:`accuracy_margin`): every pre-trained
    model against the left n-gram, the n-gram of the fine-tuning windows, the one-hot CNN and its random-initialised
    twin (``verdicts.fine_tuning_claims``; ``failed``: ``verdicts.failed_controls(runs, by="k")``), and each masking
    arm against the arm it changes (``verdicts.arm_claims`` on ``arm_pairs``). ``items``: the runs' and the
    baselines' per-item scores (model, init, seed, item, k, accuracy, bits)."""
    from . import verdicts

    pretrained, claims = items[items.init == "pretrained"], []
    for k in ks:
        margin_k = accuracy_margin(margin_accuracy, k)
        claims += verdicts.fine_tuning_claims(items, NGRAM_LEFT, tasks={f"next {k}-mer": k}, task_col="k",
                                              margin_accuracy=margin_k, margin_bits=margin_bits, failed=failed,
                                              extra_references=[WINDOW_NGRAM, ONEHOT_CNN])
        claims += verdicts.arm_claims(pretrained[pretrained.k == k], arm_pairs or {}, value="accuracy",
                                      what="next-k-mer accuracy", higher_is_better=True, margin=margin_k,
                                      unit="test windows", by="k")
    return claims


def accuracy_margin(margin_at_k1: float | None, k: int) -> float | None:
    """The equivalence margin of an accuracy verdict at k, scaled with chance: ``margin_at_k1 * 4^(1 - k)`` (1 point
    at k = 1 is 0.25 points at k = 2 and about 0.001 points at k = 6). A fixed margin would exceed every accuracy at
    large k (chance at k = 5 is 0.1 %), and then any two models, however different, would pass as equivalent.
    None stays None (no equivalence test)."""
    if margin_at_k1 is None:
        return None
    if isinstance(margin_at_k1, bool) or not isinstance(margin_at_k1, (int, float)) or not margin_at_k1 > 0:
        raise ParameterError(f"margin_accuracy={margin_at_k1!r}: pass a positive accuracy margin at k = 1 "
                             "(e.g. 0.01), or None.")
    return float(margin_at_k1) * 4.0 * chance_accuracy(k)


__all__ = [
    "MAX_K", "check_k", "check_ks", "min_input_nt", "check_input_length", "block_intervals", "draw_windows",
    "kmer_classes", "class_kmers", "NextKmerTask", "NextKmerWindows", "NextKmerSplits", "build_splits",
    "class_prior", "NgramBaseline", "NGRAM_LEFT", "WINDOW_NGRAM", "ONEHOT_CNN", "cnn_baseline", "training_windows", "window_ngram_sentence", "baseline_scores", "tfidf_baseline", "baseline_tables", "run_benchmark", "summarize", "chance_accuracy",
    "READOUTS", "readout_comparison", "accuracy_intervals", "accuracy_margin", "next_kmer_claims",
]
