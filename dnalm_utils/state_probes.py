"""What the hidden states hold beyond the token: linear probes for letters the token does not contain.

Question (issue 15, item 5). The variance share of token identity cannot tell whether a masked-LM encoder
reads context: for an overlapping 6-mer "token identity" is itself 6 nt of context. Here the hidden state of
one token, at every layer, is asked for a letter **outside** that token, d nucleotides beyond its span edge,
and the answer is set beside nested references that see exactly the same items:

* **items**: per model, distinct tokens of held-out windows. Anchor nucleotides are drawn uniformly (seeded)
  and each is mapped to its covering token (the last token whose [start, end) span contains it: for
  overlapping k-mers the token starting at the anchor, for non-overlapping / BPE / single nucleotides the one
  token). So a token is drawn with probability proportional to the number of anchors it covers (its length;
  overlapping k-mers: 1), without replacement. A token is eligible when it has a neighbour token on both sides
  and every target of every requested distance and side lies inside its window.
* **targets**: side "right": the letter at ``end - 1 + d`` (d nt beyond the token's last nucleotide); side
  "left": the letter at ``start - d``. d >= 1 always means a letter the token itself does not contain;
  ``beyond_k`` flags d >= k (beyond an overlapping k-mer's own reach; for non-overlapping k-mers k is their
  length, single nucleotides k = 1, BPE: no k, NA). Items whose target is not A/C/G/T are dropped for that
  (side, d) only, on every feature set alike.
* **feature sets** (:data:`FEATURES`), fitted on train items and scored on test items of the same split:

  - "hidden state": the token's hidden state at one layer (0 = embedding output .. L = last), standardised;
  - "token": one-hot of the token id, plus the token's own letters one-hot by their offset from the target (a
    function of the id that a linear readout generalises from; with 4**k ids and a few thousand train items the
    id alone is seen about once each): what a model that learned only word identity could know;
  - "token + neighbours": the "token" features plus one-hot ids of the previous and the next token and every
    letter of the three tokens' spans (the target included where a neighbour covers it: for overlapping k-mers
    at d = 1 the neighbour shows the target, see ``target_in_neighbours``);
  - "window letters": the "token + neighbours" features plus every other letter of the window at offsets
    -W..+W around the target, the target itself excluded (positions outside the window or not ACGT are
    all-zero): an upper reference for what the visible context predicts about the letter with a linear
    readout. W = ``letters_nt`` (None: the longest window, i.e. every letter);
  - "majority": the commonest train letter, predicted for every test item (a chance level that knows the
    base composition; uniform chance is 25 %).

  The references are nested by construction: each sees every id and letter the previous one sees, in the same
  columns (letters by offset from the target). Being regularised fits on finite samples, their accuracies
  need not be monotone in the features. They do not depend on the layer (their rows have ``layer`` NA).
  One-hot columns are left unscaled (0/1); hidden states are standardised on the train items.

  Caveat: the models read unmasked windows, so the target letter is in their input (inside some other
  token). A hidden state that attends to that token can hold the letter itself and exceed "window letters";
  the window-letters reference bounds what the context *predicts*, not what a state can copy from the input.
  "Hidden state beats token + neighbours at d beyond the neighbours' reach" means the state carries
  information about letters outside its own and its neighbours' tokens, by either route.
* **probe**: scikit-learn ``LogisticRegression`` (lbfgs, multinomial over A/C/G/T, L2 with ``C``), deterministic.
* **split by genomic blocks**: the caller passes windows and a :class:`BlockSplit` (train and test window
  indices). :func:`split_windows` builds one from ``genome.Window`` coordinates (blocks of ``block_nt``), so
  that no train and test window overlap or share a block; :func:`split_by_block_ids` from block ids the
  caller assigned.
* **uncertainty**: each accuracy with its Wilson 95 % interval (``stats.binomial_interval``); each
  "hidden state minus reference" on the same test items with the paired t-interval and exact McNemar p
  (``stats.compare_paired``).

Step 0: run :func:`probe_states` once on the trained models and once on their step-0 twins
(``embeddings.initial_models``) with the same windows, split and parameters (so the items are the same), and
merge with :func:`versus_initial` (trained, initial, trained minus initial, paired by item).

Public API: :func:`split_windows`, :func:`split_by_block_ids`, :func:`probe_states`, :func:`probe_model`,
:func:`versus_initial`, :func:`finding`, :func:`findings`, :func:`step0_sentence`; containers :class:`BlockSplit`, :class:`StateProbes`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Hashable, Mapping, Sequence

import numpy as np

from . import codec
from .errors import ParameterError, check_int_range

#: Feature sets of the accuracy table, in order (see the module docstring).
FEATURES = ("hidden state", "token", "token + neighbours", "window letters", "majority")
#: Reference feature sets, nested: each contains the previous one's columns.
NESTED = ("token", "token + neighbours", "window letters")
SIDES = ("right", "left")
#: What the probe is called in "not applicable" rows {model, probe, reason}.
PROBE = "hidden-state probes beyond the token"
#: Accuracy of guessing one of four letters at random.
CHANCE = 0.25
TABLE_COLUMNS = ["model", "scheme", "k", "layer", "side", "d", "beyond_k", "features", "accuracy", "ci_low", "ci_high",
                 "n_test", "n_train", "chance", "target_in_neighbours"]
PAIRED_COLUMNS = ["model", "layer", "side", "d", "beyond_k", "reference", "hidden", "reference_accuracy",
                  "difference", "ci_low", "ci_high", "p", "n_test"]


# ------------------------------------------------------------------------------------------------
# Train / test split by genomic blocks
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BlockSplit:
    """Train and test windows that share no genomic block.

    train, test: (n,) int64 window indices (ascending); dropped: (n,) int64 windows that touch a train block and a
    test block (used on neither side); blocks: per window, the tuple of block keys it touches (a key is
    (record name, block index) for :func:`split_windows`, the caller's id for :func:`split_by_block_ids`);
    test_blocks: the keys of the test blocks; block_nt: block size in nt (None for caller ids)."""

    train: np.ndarray
    test: np.ndarray
    dropped: np.ndarray
    blocks: tuple
    test_blocks: frozenset
    block_nt: int | None = None

    def describe(self) -> str:
        """One line: windows and blocks on each side."""
        n_blocks = len({b for bs in self.blocks for b in bs})
        size = f" of {self.block_nt:,} nt" if self.block_nt else ""
        return (f"{len(self.train):,} train and {len(self.test):,} test windows from {n_blocks:,} blocks{size} "
                f"({len(self.test_blocks):,} test blocks; {len(self.dropped):,} windows straddling both sides dropped)")


def _check_fraction(test_fraction) -> float:
    try:
        f = float(test_fraction)
    except (TypeError, ValueError):
        f = float("nan")
    if not 0 < f < 1:
        raise ParameterError(f"parameter test_fraction={test_fraction!r} must be a number in (0, 1), e.g. 0.5 "
                             "(the share of blocks held out for testing).")
    return f


def _assign(blocks: list[tuple], order: list, test_fraction: float, seed: int, contiguous: bool,
            block_nt: int | None) -> BlockSplit:
    """Put round(test_fraction x blocks) blocks on the test side (the last ones of ``order`` when contiguous,
    else a seeded random choice) and every window on the side all its blocks are on."""
    n = len(order)
    if n < 2:
        raise ParameterError(f"the windows fall into {n} block(s); a split by blocks needs at least 2. Use a smaller "
                             "block_nt or windows from a longer region.")
    n_test = min(n - 1, max(1, int(round(test_fraction * n))))
    if contiguous:
        test_blocks = frozenset(order[n - n_test:])
    else:
        rng = np.random.default_rng(seed)
        test_blocks = frozenset(order[i] for i in rng.choice(n, size=n_test, replace=False))
    side = np.array([2 if all(b in test_blocks for b in bs) else 0 if not any(b in test_blocks for b in bs) else 1
                     for bs in blocks], dtype=np.int64)
    pick = lambda v: np.flatnonzero(side == v).astype(np.int64)  # noqa: E731
    return BlockSplit(pick(0), pick(2), pick(1), tuple(blocks), test_blocks, block_nt)


def split_windows(windows: Sequence, block_nt: int, *, test_fraction: float = 0.5, seed: int = 0,
                  contiguous: bool = False) -> BlockSplit:
    """Split ``genome.Window``-like windows (``name``, ``start``, ``end``: [start, end) 0-based nt) by
    contiguous genomic blocks of ``block_nt`` nt: block j of record r covers [j block_nt, (j + 1) block_nt).

    round(test_fraction x blocks) blocks go to the test side: a seeded random choice, or with ``contiguous``
    the last blocks in genome order (records in order of first appearance, then position: e.g. the second half
    of a region). A window joins the side of the blocks it touches; one that touches both sides is dropped.
    Hence no train window shares a block with a test window, and no train and test window overlap."""
    block_nt = check_int_range("block_nt", block_nt, 1, hint="Block size in nucleotides, e.g. 10000 (larger than a "
                               "window, so that most windows lie in one block).")
    test_fraction = _check_fraction(test_fraction)
    windows = list(windows)
    if not windows:
        raise ParameterError("windows is empty; pass genome.Window objects (e.g. from genome.tile_windows).")
    blocks, order, seen = [], [], {}
    for i, w in enumerate(windows):
        try:
            name, start, end = w.name, int(w.start), int(w.end)
        except AttributeError:
            raise ParameterError(f"windows[{i}] is a {type(w).__name__}; pass genome.Window objects (name, start, "
                                 "end), or use split_by_block_ids with your own block ids.") from None
        if not 0 <= start < end:
            raise ParameterError(f"windows[{i}] spans [{start}, {end}); a window needs 0 <= start < end.")
        first_record = seen.setdefault(name, len(seen))
        keys = tuple((name, j) for j in range(start // block_nt, (end - 1) // block_nt + 1))
        blocks.append(keys)
        order += [(first_record, k) for k in keys]
    order = [k for _, k in sorted(set(order), key=lambda t: (t[0], t[1][1]))]
    return _assign(blocks, order, test_fraction, seed, contiguous, block_nt)


def split_by_block_ids(block_ids: Sequence[Hashable], *, test_fraction: float = 0.5, seed: int = 0,
                       contiguous: bool = False) -> BlockSplit:
    """Split windows by block ids the caller assigned (one hashable id per window; windows of different ids
    must not overlap). ``contiguous``: the test blocks are the last ids in order of first appearance; else a
    seeded random choice of round(test_fraction x blocks) ids."""
    if isinstance(block_ids, (str, bytes)):
        raise ParameterError("block_ids is one string; pass one block id per window.")
    test_fraction = _check_fraction(test_fraction)
    ids = list(block_ids)
    if not ids:
        raise ParameterError("block_ids is empty; pass one block id per window.")
    order = list(dict.fromkeys(ids))
    return _assign([(b,) for b in ids], order, test_fraction, seed, contiguous, None)


# ------------------------------------------------------------------------------------------------
# Items: which tokens, which targets
# ------------------------------------------------------------------------------------------------
@dataclass
class _Items:
    """Sampled tokens of one model: (n,) int64 window (index into the caller's windows), token (index in the
    window's encoding), start, end (span, nt), token_id, left_id, right_id (neighbour token ids), left_end,
    right_start (how far the neighbours reach, nt); test: (n,) bool."""

    window: np.ndarray
    token: np.ndarray
    start: np.ndarray
    end: np.ndarray
    token_id: np.ndarray
    left_id: np.ndarray
    right_id: np.ndarray
    left_start: np.ndarray
    right_end: np.ndarray
    test: np.ndarray

    def take(self, keep) -> "_Items":
        return _Items(*(getattr(self, f)[keep] for f in self.__dataclass_fields__))

    def target(self, side: str, d: int) -> np.ndarray:
        """(n,) int64 nucleotide position of the target at distance d on ``side``."""
        return self.end - 1 + d if side == "right" else self.start - d


def _sample_items(encodings, lengths, windows_idx: np.ndarray, *, reach: dict, n_items: int, rng,
                  is_test: bool) -> _Items:
    """Up to ``n_items`` distinct eligible tokens of the windows ``windows_idx`` (see the module docstring),
    sorted by (window, token). ``reach``: side -> largest d on that side."""
    cols = {f: [] for f in ("window", "token", "start", "end", "weight")}
    right, left = reach.get("right", 0), reach.get("left", 0)
    for w in windows_idx:
        enc, n = encodings[w], lengths[w]
        starts, ends = enc.spans[:, 0], enc.spans[:, 1]
        if len(starts) < 3:
            continue
        anchors = np.arange(n)
        cover = np.searchsorted(starts, anchors, side="right") - 1
        ok = (cover >= 0) & (ends[np.clip(cover, 0, None)] > anchors)
        weight = np.bincount(cover[ok], minlength=len(starts))
        t = np.arange(len(starts))
        eligible = ((t >= 1) & (t <= len(starts) - 2) & (weight > 0) & (starts - left >= 0) & (ends - 1 + right < n))
        t = t[eligible]
        cols["window"].append(np.full(len(t), w, dtype=np.int64))
        cols["token"].append(t)
        cols["start"].append(starts[t])
        cols["end"].append(ends[t])
        cols["weight"].append(weight[t].astype(np.float64))
    cat = {f: np.concatenate(v) if v else np.zeros(0, dtype=np.int64) for f, v in cols.items()}
    total = len(cat["window"])
    if total > n_items:
        pick = rng.choice(total, size=n_items, replace=False, p=cat["weight"] / cat["weight"].sum())
        pick = np.sort(pick)
    else:
        pick = np.arange(total)
    w, t = cat["window"][pick], cat["token"][pick].astype(np.int64)
    ids = lambda j: np.array([encodings[a].ids[b] for a, b in zip(w, j)], dtype=np.int64)  # noqa: E731
    span = lambda j, c: np.array([encodings[a].spans[b, c] for a, b in zip(w, j)], dtype=np.int64)  # noqa: E731
    return _Items(w, t, cat["start"][pick].astype(np.int64), cat["end"][pick].astype(np.int64), ids(t), ids(t - 1),
                  ids(t + 1), span(t - 1, 0), span(t + 1, 1), np.full(len(w), is_test))


def _concat_items(a: _Items, b: _Items) -> _Items:
    return _Items(*(np.concatenate([getattr(a, f), getattr(b, f)]) for f in a.__dataclass_fields__))


# ------------------------------------------------------------------------------------------------
# Features and the probe
# ------------------------------------------------------------------------------------------------
def _one_hot(values: np.ndarray, train: np.ndarray):
    """Sparse (n, c) one-hot of ``values`` over the c distinct values seen in the train rows (others: zero row)."""
    from scipy import sparse

    vocab = np.unique(values[train])
    col = np.searchsorted(vocab, values)
    hit = (col < len(vocab)) & (vocab[np.clip(col, 0, max(len(vocab) - 1, 0))] == values) if len(vocab) else \
        np.zeros(len(values), bool)
    rows = np.flatnonzero(hit)
    return sparse.csr_matrix((np.ones(len(rows)), (rows, col[hit])), shape=(len(values), len(vocab)))


def _code_matrix(seqs: Sequence[str], windows: np.ndarray) -> np.ndarray:
    """(max window index + 1, longest) uint8 codec codes of ``seqs[w]`` for w in ``windows``, 255 elsewhere."""
    width = max(len(seqs[w]) for w in windows)
    m = np.full((int(windows.max()) + 1, width), codec.INVALID, dtype=np.uint8)
    for w in windows:
        m[w, : len(seqs[w])] = codec.encode(seqs[w])
    return m


def _letters(codes: np.ndarray, window: np.ndarray, target: np.ndarray, lo: np.ndarray, hi: np.ndarray,
             reach: int):
    """Sparse (n, 4 (2 R + 1)) one-hot letters by offset from the target, R = codes.shape[1] - 1: column
    (offset + R) x 4 + letter. Row i holds the letters at positions p of window ``window[i]`` with
    lo[i] <= p < hi[i] (a token span, the target included when it lies there) or 0 < |p - target[i]| <= reach;
    positions outside the window or not A/C/G/T stay zero. ``codes``: :func:`_code_matrix`."""
    from scipy import sparse

    r = codes.shape[1] - 1
    offsets = np.arange(-r, r + 1)
    pos = target[:, None] + offsets[None, :]
    inside = (pos >= 0) & (pos < codes.shape[1])
    code = np.where(inside, codes[window[:, None], np.clip(pos, 0, r)], codec.INVALID)
    keep = (code < 4) & (((pos >= lo[:, None]) & (pos < hi[:, None]))
                         | ((np.abs(offsets) <= reach) & (offsets != 0))[None, :])
    rows, cols = np.nonzero(keep)
    return sparse.csr_matrix((np.ones(len(rows)), (rows, cols * 4 + code[rows, cols])),
                             shape=(len(window), 4 * len(offsets)))


@dataclass
class _Fitter:
    C: float
    max_iter: int
    not_converged: int = 0
    fits: int = 0

    def predict(self, x_train, y_train, x_test, *, standardise: bool) -> np.ndarray:
        """Test predictions (letter codes) of a logistic regression fitted on the train rows."""
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression

        classes = np.unique(y_train)
        if len(classes) < 2:
            return np.full(x_test.shape[0], classes[0] if len(classes) else 0, dtype=np.int64)
        if standardise:
            mean, sd = x_train.mean(0), x_train.std(0)
            sd[sd == 0] = 1.0
            x_train, x_test = (x_train - mean) / sd, (x_test - mean) / sd
        clf = LogisticRegression(C=self.C, max_iter=self.max_iter)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(x_train, y_train)
        self.fits += 1
        self.not_converged += int(np.max(clf.n_iter_) >= self.max_iter)
        return clf.predict(x_test).astype(np.int64)


# ------------------------------------------------------------------------------------------------
# Hidden states of the sampled tokens
# ------------------------------------------------------------------------------------------------
def _hidden_at_items(lm, seqs: list[str], items: _Items, *, layers, batch_size: int, amp: bool):
    """(model layers (layer,) int64, (layer, item, dim) float32): the hidden states of the items' tokens,
    streamed through ``embeddings.iter_contextual`` over the windows that hold items only."""
    from .embeddings import iter_contextual

    used = np.unique(items.window)
    local = np.searchsorted(used, items.window)
    width = int(max(len(seqs[w]) for w in used)) + 1
    keys = local * width + items.token
    order = np.argsort(keys)
    sorted_keys = keys[order]
    out, got, layer_ids = None, np.zeros(len(keys), bool), None
    for ce in iter_contextual(lm, [seqs[w] for w in used], layers=layers, batch_size=batch_size, amp=amp):
        k = ce.window * width + ce.position
        at = np.searchsorted(sorted_keys, k)
        hit = (at < len(sorted_keys)) & (sorted_keys[np.clip(at, 0, len(sorted_keys) - 1)] == k)
        rows = order[at[hit]]
        if out is None:
            layer_ids = ce.layers
            out = np.zeros((len(layer_ids), len(keys), ce.vectors.shape[-1]), dtype=np.float32)
        if not np.array_equal(ce.spans[hit], np.stack([items.start[rows], items.end[rows]], axis=1)):
            raise ParameterError(f"{lm.name}: the hidden states' token spans disagree with the tokenizer's; the "
                                 "model's framing does not put one special token before the sequence.")
        out[:, rows] = ce.vectors[:, hit].astype(np.float32)
        got[rows] = True
    if not got.all():
        raise ParameterError(f"{lm.name}: {int((~got).sum())} sampled tokens got no hidden state; the model drops "
                             "tokens of its input.")
    return np.asarray(layer_ids, dtype=np.int64), out


# ------------------------------------------------------------------------------------------------
# The probe
# ------------------------------------------------------------------------------------------------
@dataclass
class StateProbes:
    """Result of :func:`probe_states`.

    table: tidy accuracies (:data:`TABLE_COLUMNS`; one row per model, layer, side, d, features; reference
    rows have layer NA; accuracy and interval as fractions). paired: hidden state minus each reference on the
    same test items (:data:`PAIRED_COLUMNS`; difference and interval as fractions, p = exact McNemar).
    not_applicable: rows {model, probe, reason}. correct: (model, layer or None, side, d, features) -> (n_test,)
    float array, 1 / 0 per test item, NaN where the target is not ACGT. items: model -> DataFrame of the test
    items (window, token, start, end, token_id) in the order of ``correct``. notes: remarks (non-converged fits).
    """

    table: object
    paired: object
    not_applicable: list = field(default_factory=list)
    correct: dict = field(default_factory=dict)
    items: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)


def _check_distances(distances) -> list[int]:
    items = [distances] if isinstance(distances, (int, np.integer)) else list(distances)
    if not items:
        raise ParameterError("distances is empty; pass the letters to probe in nt beyond the token edge, e.g. "
                             "[1, 3, 6, 12].")
    out = []
    for d in items:
        d = check_int_range("distances", d, 1, hint="Distances are nt beyond the token's edge: 1 = the next "
                            "letter after the token.")
        if d in out:
            raise ParameterError(f"distances lists d = {d} twice; give each distance once.")
        out.append(d)
    return out


def _check_sides(sides) -> list[str]:
    items = [sides] if isinstance(sides, str) else list(sides)
    if not items or any(s not in SIDES for s in items) or len(set(items)) != len(items):
        raise ParameterError(f"sides={sides!r}: pass one or both of {SIDES} (each once).")
    return items


def _sequences(windows) -> list[str]:
    if isinstance(windows, (str, bytes)):
        raise ParameterError("windows is one string; pass a list of DNA windows (str or genome.Window).")
    seqs = [w if isinstance(w, str) else getattr(w, "sequence", None) for w in windows]
    bad = next((i for i, s in enumerate(seqs) if not isinstance(s, str)), None)
    if bad is not None:
        raise ParameterError(f"windows[{bad}] is a {type(windows[bad]).__name__}; pass DNA strings or genome.Window "
                             "objects (their .sequence is used).")
    if not seqs:
        raise ParameterError("windows is empty; pass held-out DNA windows.")
    return seqs


def _check_split(split, n: int) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(split, BlockSplit):
        raise ParameterError(f"split is a {type(split).__name__}; pass a BlockSplit from split_windows or "
                             "split_by_block_ids (train and test windows by genomic block).")
    train, test = np.asarray(split.train, dtype=np.int64), np.asarray(split.test, dtype=np.int64)
    if not len(train) or not len(test):
        raise ParameterError("split has no train or no test windows; use more blocks or another test_fraction.")
    if min(train.min(), test.min()) < 0 or max(train.max(), test.max()) >= n:
        raise ParameterError(f"split indexes windows outside 0..{n - 1}; build it from the same windows.")
    if np.intersect1d(train, test).size:
        raise ParameterError("split puts a window on both sides; build it with split_windows / split_by_block_ids.")
    return train, test


def probe_model(lm, windows, split: BlockSplit, *, distances: Sequence[int], sides: Sequence[str] = SIDES,
                layers=None, n_train: int = 4000, n_test: int = 2000, letters_nt: int | None = None,
                C: float = 1.0, max_iter: int = 1000, seed: int = 0, batch_size: int = 64, amp: bool = True,
                name: str | None = None) -> StateProbes:
    """:func:`probe_states` for one adapter (``lm`` must have hidden states; else ``NotApplicable``)."""
    import pandas as pd

    lm.require("hidden_states", PROBE)
    name = str(lm.name if name is None else name)
    seqs = _sequences(windows)
    train_w, test_w = _check_split(split, len(seqs))
    distances, sides = _check_distances(distances), _check_sides(sides)
    n_train = check_int_range("n_train", n_train, 2, hint="Train tokens per model, e.g. 4000.")
    n_test = check_int_range("n_test", n_test, 2, hint="Test tokens per model, e.g. 2000.")
    if letters_nt is not None:
        letters_nt = check_int_range("letters_nt", letters_nt, 1, hint="Letters each side of the target for the "
                                     "window-letters reference; None = every letter of the window.")
    try:
        C = float(C)
    except (TypeError, ValueError):
        C = float("nan")
    if not (C > 0 and np.isfinite(C)):
        raise ParameterError("parameter C must be a positive number (inverse L2 strength), e.g. 1.0.")
    max_iter = check_int_range("max_iter", max_iter, 1, hint="lbfgs iterations, e.g. 1000.")
    seed = check_int_range("seed", seed, 0)

    tok = lm.tokenizer
    encs = [None] * len(seqs)
    for w in np.r_[train_w, test_w]:
        encs[w] = tok.encode(seqs[w], where=f"window {w}")
    lengths = [len(s) for s in seqs]
    reach = {s: max(distances) for s in sides}
    rng = np.random.default_rng(seed)
    items = _concat_items(_sample_items(encs, lengths, train_w, reach=reach, n_items=n_train, rng=rng, is_test=False),
                          _sample_items(encs, lengths, test_w, reach=reach, n_items=n_test, rng=rng, is_test=True))
    tr, te = ~items.test, items.test
    if tr.sum() < 2 or te.sum() < 2:
        raise ParameterError(f"{name}: only {int(tr.sum())} train and {int(te.sum())} test tokens have a neighbour on "
                             f"both sides and targets up to d = {max(distances)} inside their window; use longer "
                             "windows, more windows or smaller distances.")
    layer_ids, hidden = _hidden_at_items(lm, seqs, items, layers=layers, batch_size=batch_size, amp=amp)

    from scipy import sparse

    codes = _code_matrix(seqs, np.unique(items.window))
    w_max = letters_nt if letters_nt is not None else codes.shape[1] - 1
    tok_x = _one_hot(items.token_id, tr)
    nb_x = sparse.hstack([tok_x, _one_hot(items.left_id, tr), _one_hot(items.right_id, tr)]).tocsr()
    fitter = _Fitter(C, max_iter)
    k = tok.k
    rows, paired_rows, correct = [], [], {}
    test_items = pd.DataFrame({"window": items.window[te], "token": items.token[te], "start": items.start[te],
                               "end": items.end[te], "token_id": items.token_id[te]})

    def record(layer, side, d, features, right, n_tr, inside):
        hits = right[~np.isnan(right)]
        from .stats import binomial_interval

        low, high = binomial_interval(int(hits.sum()), int(hits.size))
        rows.append({"model": name, "scheme": tok.scheme, "k": k, "layer": layer, "side": side, "d": d,
                     "beyond_k": (d >= k) if k is not None else pd.NA, "features": features,
                     "accuracy": float(hits.mean()) if hits.size else np.nan, "ci_low": low, "ci_high": high,
                     "n_test": int(hits.size), "n_train": n_tr, "chance": CHANCE, "target_in_neighbours": inside})
        correct[(name, layer, side, d, features)] = right

    for side in sides:
        for d in distances:
            target = items.target(side, d)
            y = codes[items.window, target].astype(np.int64)
            ok = y < 4
            fit, score = tr & ok, te & ok
            n_tr = int(fit.sum())
            inside = float(np.mean(((target >= items.left_start) & (target < items.right_end))[score])) \
                if score.any() else np.nan

            def right_of(pred):
                out = np.full(int(te.sum()), np.nan)
                out[ok[te]] = (pred == y[score]).astype(np.float64)
                return out

            classes, counts = np.unique(y[fit], return_counts=True)
            commonest = classes[np.argmax(counts)] if len(classes) else 0
            record(None, side, d, "majority", right_of(np.full(int(score.sum()), commonest)), n_tr, inside)
            feats = {"token": (tok_x, items.start, items.end, 0),
                     "token + neighbours": (nb_x, items.left_start, items.right_end, 0),
                     "window letters": (nb_x, items.left_start, items.right_end, w_max)}
            for features, (ids_x, lo, hi, reach) in feats.items():
                x = sparse.hstack([ids_x, _letters(codes, items.window, target, lo, hi, reach)]).tocsr()
                record(None, side, d, features, right_of(fitter.predict(x[fit], y[fit], x[score], standardise=False)),
                       n_tr, inside)
            for j, layer in enumerate(layer_ids):
                h = hidden[j]
                record(int(layer), side, d, "hidden state",
                       right_of(fitter.predict(h[fit], y[fit], h[score], standardise=True)), n_tr, inside)
                paired_rows += _paired(name, int(layer), side, d, k, correct)
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    table["layer"] = table["layer"].astype("Int64")
    table["beyond_k"] = table["beyond_k"].astype("boolean")
    paired = pd.DataFrame(paired_rows, columns=PAIRED_COLUMNS)
    notes = ([f"{name}: {fitter.not_converged} of {fitter.fits} logistic-regression fits stopped at max_iter="
              f"{max_iter} before converging"] if fitter.not_converged else [])
    return StateProbes(table, paired, [], correct, {name: test_items}, notes)


def _paired(name: str, layer: int, side: str, d: int, k, correct: dict) -> list[dict]:
    """Hidden state at ``layer`` minus "token" and minus "token + neighbours" on the same test items."""
    from .stats import compare_paired

    hidden = correct[(name, layer, side, d, "hidden state")]
    out = []
    for ref in ("token", "token + neighbours"):
        other = correct[(name, None, side, d, ref)]
        c = compare_paired(hidden, other)
        both = ~(np.isnan(hidden) | np.isnan(other))
        out.append({"model": name, "layer": layer, "side": side, "d": d,
                    "beyond_k": (d >= k) if k is not None else None, "reference": ref,
                    "hidden": float(hidden[both].mean()) if both.any() else np.nan,
                    "reference_accuracy": float(other[both].mean()) if both.any() else np.nan,
                    "difference": c.estimate, "ci_low": c.low, "ci_high": c.high, "p": c.p, "n_test": c.n})
    return out


def probe_states(models: Mapping[str, object], windows, split: BlockSplit, *, distances: Sequence[int],
                 sides: Sequence[str] = SIDES, layers=None, n_train: int = 4000, n_test: int = 2000,
                 letters_nt: int | None = None, C: float = 1.0, max_iter: int = 1000, seed: int = 0,
                 batch_size: int = 64, amp: bool = True) -> StateProbes:
    """Probe every layer's hidden states of every model for the letter d nt beyond the token's edge, beside the
    nested references, on the same items and the same block split (module docstring).

    models: name -> ModelAdapter; windows: DNA strings or ``genome.Window`` (``.sequence``); split: a
    :class:`BlockSplit` over ``windows``; distances: d values (nt beyond the token edge, >= 1); sides: "right"
    and/or "left"; layers: model layers (None = all, 0 = embedding output); n_train / n_test: tokens per model
    (caps); letters_nt: letters each side of the target in the window-letters reference (None = all);
    C, max_iter: the logistic regression's; seed: the item draw. Models without hidden states are left out and
    listed in ``result.not_applicable`` and ``result.table.attrs["not_applicable"]`` with the reason.
    Cost: one streamed forward pass over the windows that hold items, and (layers + 3) x sides x distances
    logistic-regression fits per model."""
    import pandas as pd

    from .adapters import split_applicable

    if not isinstance(models, Mapping) or not models:
        raise ParameterError("models must be a non-empty dict of name -> ModelAdapter (models.load_models).")
    ok, skipped = split_applicable(models, "hidden_states", PROBE)
    parts = [probe_model(lm, windows, split, distances=distances, sides=sides, layers=layers, n_train=n_train,
                         n_test=n_test, letters_nt=letters_nt, C=C, max_iter=max_iter, seed=seed,
                         batch_size=batch_size, amp=amp, name=name) for name, lm in ok.items()]
    if not parts:  # still check the parameters the caller gave
        _sequences(windows), _check_distances(distances), _check_sides(sides)
    table = pd.concat([p.table for p in parts], ignore_index=True) if parts else pd.DataFrame(columns=TABLE_COLUMNS)
    paired = pd.concat([p.paired for p in parts], ignore_index=True) if parts else pd.DataFrame(columns=PAIRED_COLUMNS)
    table.attrs["not_applicable"] = list(skipped)
    paired.attrs["not_applicable"] = list(skipped)
    return StateProbes(table, paired, list(skipped), {k: v for p in parts for k, v in p.correct.items()},
                       {k: v for p in parts for k, v in p.items.items()}, [n for p in parts for n in p.notes])


# ------------------------------------------------------------------------------------------------
# Trained against step 0
# ------------------------------------------------------------------------------------------------
def versus_initial(trained: StateProbes, initial: StateProbes | None):
    """Hidden-state accuracy of trained models against their step-0 twins (the same :func:`probe_states` call
    on ``embeddings.initial_models``, same windows, split and parameters; None when no model has them: an empty
    table), one row per (model, layer, side, d)
    present in both: model, layer, side, d, beyond_k, trained, initial, difference = trained - initial,
    ci_low, ci_high (95 %), p, paired, n_test. Paired by test item (paired t-interval, exact McNemar) when both
    runs scored the same items (same tokenizer, windows, split and seed); otherwise ``paired`` is False and the
    interval is the independent two-proportion (Wald) interval, p NaN. Fractions, not points."""
    import pandas as pd
    from scipy import stats as sps

    from .stats import compare_paired

    cols = ["model", "layer", "side", "d", "beyond_k", "trained", "initial", "difference", "ci_low", "ci_high", "p",
            "paired", "n_test"]
    if initial is None:  # no model of the run has step-0 weights
        return pd.DataFrame(columns=cols)
    for what, r in (("trained", trained), ("initial", initial)):
        if not isinstance(r, StateProbes):
            raise ParameterError(f"{what} is a {type(r).__name__}; pass the StateProbes of probe_states.")
    rows = []
    z = float(sps.norm.ppf(0.975))
    for (model, layer, side, d, features), a in trained.correct.items():
        b = initial.correct.get((model, layer, side, d, features))
        if features != "hidden state" or b is None:
            continue
        ia, ib = trained.items.get(model), initial.items.get(model)
        same = ia is not None and ib is not None and ia.shape == ib.shape and bool((ia.values == ib.values).all())
        row = trained.table[(trained.table.model == model) & (trained.table.layer == layer)
                            & (trained.table.side == side) & (trained.table.d == d)].iloc[0]
        if same:
            c = compare_paired(a, b)
            both = ~(np.isnan(a) | np.isnan(b))
            ta, tb = float(a[both].mean()), float(b[both].mean())
            low, high, p, n = c.low, c.high, c.p, c.n
        else:
            xa, xb = a[~np.isnan(a)], b[~np.isnan(b)]
            ta, tb = float(xa.mean()), float(xb.mean())
            half = z * np.sqrt(ta * (1 - ta) / len(xa) + tb * (1 - tb) / len(xb))
            low, high, p, n = ta - tb - half, ta - tb + half, np.nan, int(min(len(xa), len(xb)))
        rows.append({"model": model, "layer": layer, "side": side, "d": d, "beyond_k": row.beyond_k, "trained": ta,
                     "initial": tb, "difference": ta - tb, "ci_low": low, "ci_high": high, "p": p, "paired": same,
                     "n_test": n})
    out = pd.DataFrame(rows, columns=cols)
    out["layer"] = out["layer"].astype("Int64")
    return out


# ------------------------------------------------------------------------------------------------
# Sentences
# ------------------------------------------------------------------------------------------------
def _pct(x: float) -> str:
    return "n/a" if not np.isfinite(x) else f"{100 * x:.1f} %"


def _pts(x: float) -> str:
    return "n/a" if not np.isfinite(x) else f"{100 * x:+.1f}"


def finding(result: StateProbes, model: str, *, d: int, side: str = "right", layer: int = -1,
            reference: str = "token + neighbours", margin: float = 0.02) -> str:
    """One computed sentence: the hidden state of ``model`` at ``layer`` (-1 = last) for the letter d nt beyond
    the token on ``side``, against ``reference`` ("token" or "token + neighbours") on the same test items, with
    the verdict of ``stats.compare_paired`` (exact McNemar; "no more than" only from TOST within ``margin``,
    a fraction: 0.02 = 2 points). E.g. "At d = 7 nt beyond the token (right side, beyond its k = 6 reach),
    overlap6's last layer (layer 2) predicts the letter with 31.2 % [29.1, 33.4 %] accuracy against 30.8 % for
    token + neighbours (difference +0.4 points [-1.2, +2.0]; window letters 32.0 %, majority 27.1 %): the
    states hold no more than their neighbours' identities there (within ±2 points)." """
    from .stats import compare_paired

    if not isinstance(result, StateProbes):
        raise ParameterError(f"result is a {type(result).__name__}; pass the StateProbes of probe_states.")
    if reference not in ("token", "token + neighbours"):
        raise ParameterError(f"reference={reference!r}: use 'token' or 'token + neighbours'.")
    t = result.table
    mine = t[(t.model == model) & (t.features == "hidden state")]
    if not len(mine):
        raise ParameterError(f"model {model!r} is not in the result; it has {sorted(set(t.model))}.")
    (side,) = _check_sides([side])
    d = check_int_range("d", d, 1)
    layers = sorted(int(x) for x in mine.layer.unique())
    if layer == -1:
        layer = layers[-1]
    if layer not in layers:
        raise ParameterError(f"layer={layer!r}: {model} was probed at layers {layers} (-1 = the last).")
    key = (model, layer, side, d, "hidden state")
    if key not in result.correct:
        done = sorted({k[3] for k in result.correct if k[0] == model and k[2] == side})
        raise ParameterError(f"d={d} on side {side!r} was not probed for {model}; probed: {done}.")
    hidden = result.correct[key]
    ref = result.correct[(model, None, side, d, reference)]
    c = compare_paired(hidden, ref, margin=margin)
    both = ~(np.isnan(hidden) | np.isnan(ref))
    row = mine[(mine.layer == layer) & (mine.side == side) & (mine.d == d)].iloc[0]
    here = t[(t.model == model) & (t.side == side) & (t.d == d)]
    acc = lambda f: float(here[here.features == f].accuracy.iloc[0])  # noqa: E731
    k = row.k
    reach = "" if k is None or not np.isfinite(k) else (
        f", beyond its k = {int(k)} reach" if d >= k else f", d < k = {int(k)}")
    which = "last layer" if layer == layers[-1] else ("embedding output" if layer == 0 else "layer")
    where = f"{which} (layer {layer})" if which != "layer" else f"layer {layer}"
    outcome = c.outcome()
    what = "their neighbours' identities" if reference == "token + neighbours" else "the token's identity"
    verdict = {"higher": f"the states hold more about this letter than {what}",
               "lower": f"the states hold less about this letter than a readout of {what}",
               "equivalent": f"the states hold no more than {what} there (within ±{100 * margin:g} points)",
               "inconclusive": f"these {c.n:,} items cannot tell whether the states hold more than {what} there"}
    return (f"At d = {d} nt beyond the token ({side} side{reach}), {model}'s {where} predicts the letter with "
            f"{_pct(row.accuracy)} [{100 * row.ci_low:.1f}, {100 * row.ci_high:.1f} %] accuracy against "
            f"{_pct(float(ref[both].mean()) if both.any() else np.nan)} for {reference} (difference "
            f"{_pts(c.estimate)} points [{_pts(c.low)}, {_pts(c.high)}]; window letters {_pct(acc('window letters'))}, "
            f"majority {_pct(acc('majority'))}): {verdict[outcome]}.")


def findings(result: StateProbes, *, d: int | None = None, side: str = "right", margin: float = 0.02) -> str:
    """:func:`finding` for every model of ``result`` at its last layer and distance ``d`` (None: the largest
    probed d), joined into one paragraph; the not-applicable models are named at the end."""
    if not isinstance(result, StateProbes):
        raise ParameterError(f"result is a {type(result).__name__}; pass the StateProbes of probe_states.")
    t = result.table
    parts = []
    for model in dict.fromkeys(t.model):
        ds = sorted(int(x) for x in t[(t.model == model) & (t.side == side)].d.unique())
        if ds:
            parts.append(finding(result, model, d=ds[-1] if d is None else d, side=side, margin=margin))
    parts += [f"The probe is not applicable to {r['model']}: {r['reason']}." for r in result.not_applicable]
    return " ".join(parts) if parts else "n/a (no model with hidden states in this run)"


def step0_sentence(versus, *, d: int | None = None, side: str = "right") -> str:
    """One computed sentence from :func:`versus_initial`: per model, at its last probed layer and distance ``d``
    (None: the largest probed), the trained accuracy, the step-0 accuracy and trained minus step 0 in points
    with its 95 % interval (paired by item where the items match), e.g. "At d = 7 nt (right side), last layer,
    trained against step 0: overlap6 31.2 % vs 28.0 % (+3.2 points [+1.1, +5.3]); ..."."""
    import pandas as pd

    need = {"model", "layer", "side", "d", "trained", "initial", "difference", "ci_low", "ci_high"}
    if not isinstance(versus, pd.DataFrame) or not need <= set(versus.columns):
        raise ParameterError("versus must be the DataFrame of state_probes.versus_initial(...).")
    (side,) = _check_sides([side])
    part = versus[versus.side == side]
    if part.empty:
        return "No model of this run has step-0 weights to set the probes beside."
    ds = sorted(int(x) for x in part.d.unique())
    d = ds[-1] if d is None else check_int_range("d", d, 1)
    if d not in ds:
        raise ParameterError(f"d={d} was not probed on side {side!r}; probed: {ds}.")
    part = part[part.d == d]
    bits = []
    for model, rows in part.groupby("model", sort=False):
        r = rows.loc[rows.layer.astype(int).idxmax()]
        bits.append(f"{model} {_pct(r.trained)} vs {_pct(r.initial)} ({_pts(r.difference)} points "
                    f"[{_pts(r.ci_low)}, {_pts(r.ci_high)}])")
    return f"At d = {d} nt beyond the token ({side} side), last layer, trained against step 0: " + "; ".join(bits) + "."


def paired_sentence(paired, *, reference: str = "token + neighbours", d: int | None = None,
                    side: str = "right") -> str:
    """One computed sentence from the paired table alone (``StateProbes.paired`` or its CSV), for pages that read
    a chapter's output: per model, its last probed layer at distance ``d`` (None: the largest probed) against
    ``reference``, the difference in points with its 95 % interval, and which models are above it (interval
    above 0), below it, or neither. E.g. "At d = 7 nt beyond the token (right side), last layer against token
    + neighbours: overlap6 +0.4 points [-1.2, +2.0], ...; above it: none; below it: bpe." """
    import pandas as pd

    need = {"model", "layer", "side", "d", "reference", "difference", "ci_low", "ci_high"}
    if not isinstance(paired, pd.DataFrame) or not need <= set(paired.columns):
        raise ParameterError("paired must be StateProbes.paired (or state_probes_paired.csv), with columns "
                             f"{sorted(need)}.")
    (side,) = _check_sides([side])
    part = paired[(paired.side == side) & (paired.reference == reference)]
    if part.empty:
        return f"no hidden-state probe against {reference} on the {side} side in this run"
    ds = sorted(int(x) for x in part.d.unique())
    d = ds[-1] if d is None else check_int_range("d", d, 1)
    if d not in ds:
        raise ParameterError(f"d={d} was not probed on side {side!r}; probed: {ds}.")
    part = part[part.d == d]
    bits, above, below = [], [], []
    for model, rows in part.groupby("model", sort=False):
        r = rows.loc[rows.layer.astype(int).idxmax()]
        bits.append(f"{model} {_pts(r.difference)} points [{_pts(r.ci_low)}, {_pts(r.ci_high)}]")
        if r.ci_low > 0:
            above.append(str(model))
        elif r.ci_high < 0:
            below.append(str(model))
    return (f"at d = {d} nt beyond the token ({side} side), last layer against {reference}: " + "; ".join(bits)
            + f"; above it: {', '.join(above) or 'none'}; below it: {', '.join(below) or 'none'}")
