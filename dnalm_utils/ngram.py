"""Context-only n-gram (Markov) nucleotide models: the baselines shown beside the neural models.

The question of the book is whether masked-token pre-training teaches k-mer "word identity" or sequence
context. These models know *only* context: they predict hidden nucleotides from exact counts of the
surrounding k-mers in the pre-training corpus, with add-alpha smoothing and backoff to shorter contexts.

Conventions used throughout this module:

* **Letter order is "ACGT" everywhere**: A=0, C=1, G=2, T=3. Probability columns, per-position rows and
  k-mer classes all use it.
* **k-mer codes** are 2-bit packed ``uint64`` numbers, first letter most significant, i.e. the base-4
  number of the letters: ``"ACGT"`` -> 0b00_01_10_11 = 27. So the class index of a k-mer in a
  ``4**k``-column output is its code, and classes run in ``itertools.product("ACGT", repeat=k)`` order
  (AA..A, AA..C, ..., TT..T). k <= 31 (62 bits). (This is *not* DNABERT's "ATCG" vocabulary order used
  by :mod:`dnalm_utils.tokenization`.)
* Lower-case letters (soft-masking) count as the upper-case base. In the corpus, every window that holds
  any other character (N, IUPAC codes, ...) is skipped.
* ``both_strands=True`` counts each k-mer on the forward strand and on the reverse complement of every
  sequence, so ``count(x) == count(reverse_complement(x))``.
* In query windows/contexts, ``N`` (any case) is an unknown base: the context stops before it (a
  shorter order is used, see :func:`two_sided_block_probs`). Any other non-ACGT character in the context
  raises :class:`~dnalm_utils.errors.SequenceAlphabetError`. The content of a hidden block is never read.
* Probabilities are ``float64``; log-losses are in nats.

Everything that touches the corpus is vectorised with numpy; query-time loops run over (order, block
length) groups or positions inside a k-mer, each iteration vectorised over windows and candidates.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence, Mapping

import numpy as np

from . import codec
from .containment import contained
from .errors import ParameterError, SequenceAlphabetError, check_int_range

__all__ = [
    "ALPHABET",
    "MAX_BLOCK",
    "MAX_KMER",
    "MAX_NEXT",
    "KmerCounts",
    "all_kmers",
    "block_truth",
    "decode_kmers",
    "encode_kmers",
    "fit_order",
    "gapped_letter_probs",
    "held_out_gap_order",
    "held_out_order",
    "left_context_probs",
    "nucleotide_frequencies",
    "score_probs",
    "two_sided_block_probs",
]

#: Letter order of every probability column and k-mer code (A=0, C=1, G=2, T=3).
ALPHABET = codec.LETTERS
#: Longest k-mer that fits the 2-bit packing in one uint64 (62 bits used).
MAX_KMER = 31
#: Longest hidden block of :func:`two_sided_block_probs` (4**6 = 4096 candidates per block).
MAX_BLOCK = 6
#: Longest continuation of :func:`left_context_probs` (4**8 = 65,536 classes).
MAX_NEXT = 8

_CHUNK_CANDIDATES = 2**20  # candidate scores per vectorised step (8 MiB of uint64 codes)


# --------------------------------------------------------------------------------------------------
# encoding helpers


def _text(seq, what: str) -> str:
    """The sequence text of a str, bytes, or an object with a ``.sequence`` str (FastaRecord, Window)."""
    if isinstance(seq, str):
        return seq
    if isinstance(seq, (bytes, bytearray)):
        return bytes(seq).decode("ascii", errors="replace")
    inner = getattr(seq, "sequence", None)
    if isinstance(inner, str):
        return inner
    raise ParameterError(
        f"{what} must be a DNA sequence (str), got {type(seq).__name__}. Pass the sequence text, e.g. 'ACGT', "
        "or a genome.Window / FastaRecord."
    )


def encode_kmers(kmers: str | Sequence[str]) -> np.ndarray:
    """2-bit codes of k-mers that all have the same length k (1..31), A/C/G/T in any case.

    ``kmers``: one str or a sequence of n str. Returns (n,) uint64 (base-4 number, A=0 C=1 G=2 T=3,
    first letter most significant; ``"ACGT"`` -> 27). Raises :class:`SequenceAlphabetError` on other
    characters and :class:`ParameterError` on mixed or out-of-range lengths.
    """
    if isinstance(kmers, (str, bytes)):
        kmers = [kmers]
    texts = [_text(s, "each k-mer") for s in kmers]
    if not texts:
        return np.zeros(0, dtype=np.uint64)
    k = len(texts[0])
    if any(len(t) != k for t in texts):
        lengths = sorted({len(t) for t in texts})
        raise ParameterError(
            f"encode_kmers: all k-mers must have the same length, got lengths {lengths}. Encode each length "
            "separately, or use KmerCounts.count_strings, which accepts mixed lengths."
        )
    check_int_range("k (k-mer length)", k, 1, MAX_KMER, hint="k-mers are packed 2 bits per letter in a uint64.")
    digits = codec.encode("".join(texts)).reshape(len(texts), k)
    bad = np.flatnonzero((digits > 3).any(axis=1))
    if bad.size:
        i = int(bad[0])
        raise SequenceAlphabetError(
            f"encode_kmers: k-mer {i} ({texts[i]!r}) holds a character other than A, C, G, T "
            f"({bad.size} of {len(texts)} k-mers do). Only ACGT k-mers have counts; drop or split the others."
        )
    return codec.pack_codes(digits)


def decode_kmers(codes: np.ndarray, k: int) -> list[str]:
    """Inverse of :func:`encode_kmers`: (n,) codes of k-mers of length ``k`` -> list of n str."""
    k = check_int_range("k", k, 1, MAX_KMER)
    return codec.unpack_kmers(_as_codes(codes, k, "decode_kmers"), k)


def all_kmers(k: int) -> list[str]:
    """All ``4**k`` k-mers in class order (``itertools.product("ACGT", repeat=k)``): index i has code i."""
    k = check_int_range("k", k, 1, 12, hint="4**k strings are built; use codes (np.arange(4**k)) beyond that.")
    return decode_kmers(np.arange(4**k, dtype=np.uint64), k)


def _as_codes(kmers, k: int, where: str) -> np.ndarray:
    """Validated (n,) uint64 codes < 4**k."""
    a = np.asarray(kmers)
    if a.dtype.kind not in "ui" and not (a.size == 0 and a.dtype.kind == "f"):
        raise ParameterError(
            f"{where}: k-mer codes must be integers (2-bit packed uint64), got dtype {a.dtype}. Encode strings "
            "with encode_kmers() or call count_strings()."
        )
    a = a.reshape(-1)
    if a.dtype.kind == "i" and a.size and a.min() < 0:
        raise ParameterError(f"{where}: k-mer codes must be >= 0, got {int(a.min())}.")
    a = a.astype(np.uint64, copy=False)
    if a.size and int(a.max()) >= 4**k:
        raise ParameterError(
            f"{where}: code {int(a.max())} is not a {k}-mer code (codes of {k}-mers are 0..{4**k - 1}). "
            "Check that k matches the length the codes were encoded with."
        )
    return a


# --------------------------------------------------------------------------------------------------
# corpus counts


class KmerCounts:
    """Counts of every k-mer, k = 1..max_len, in ACGT-only sequences (optionally both strands), 2-bit packed (k <= 31).

    ``sequences``: str (or FastaRecord / Window) items, any case; windows holding a non-ACGT character
    (N, IUPAC, ...) are skipped, so whole records with N runs can be passed. ``max_len``: longest k
    (1..31). The tables are built lazily per k on first use and cached: for each k a sorted unique
    ``uint64`` code array and its counts (``uint32``, or ``int64`` for >= 2**32 windows). Memory: the
    corpus codes (1 byte per nt per strand) plus about 12 bytes per distinct k-mer for each built k.
    """

    def __init__(self, sequences: Iterable[str], max_len: int, *, both_strands: bool = True):
        self.max_len = check_int_range(
            "max_len", max_len, 1, MAX_KMER, hint="It is the longest k-mer counted (2 bits per letter in a uint64)."
        )
        if isinstance(sequences, (str, bytes)):
            sequences = [sequences]
        texts = [_text(s, "each sequence") for s in sequences]
        self.both_strands = bool(both_strands)
        self.n_sequences = len(texts)
        # One codec.encode array: sequences separated by a non-ACGT byte (\x00 -> codec.INVALID), then the
        # reverse complement; every code > 3 (N, IUPAC, separators) breaks the windows that hold it.
        fwd = codec.encode("\x00".join(texts))
        #: number of A/C/G/T letters in the forward sequences (nt)
        self.n_acgt = int(np.count_nonzero(fwd < 4))
        if self.both_strands:
            codes = np.concatenate([fwd, np.array([codec.INVALID], dtype=np.uint8), codec.reverse_complement_codes(fwd)])
        else:
            codes = fwd
        self._codes = np.ascontiguousarray(codes)
        self._tables: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._totals: dict[int, int] = {}

    def cache_fingerprint(self) -> dict:
        """What every count depends on (``result_cache``): the encoded sequences, strands and longest k -- not
        which tables happen to be built yet."""
        from .io import sha256_bytes

        return {"codes": sha256_bytes(self._codes.tobytes()), "max_len": self.max_len, "both_strands": self.both_strands}

    def __repr__(self) -> str:
        strands = "both strands" if self.both_strands else "forward strand"
        return (f"KmerCounts({self.n_sequences} sequences, {self.n_acgt:,} ACGT nt, {strands}, "
                f"max_len={self.max_len}, built k={sorted(self._tables)})")

    def _check_k(self, k) -> int:
        return check_int_range("k", k, 1, self.max_len,
                               hint=f"These counts go up to max_len={self.max_len}; build KmerCounts with a larger "
                               "max_len for longer k-mers.")

    def table(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(codes, counts) of the k-mers seen at least once: (m,) sorted unique uint64 and (m,) counts."""
        k = self._check_k(k)
        if k not in self._tables:
            self._tables[k] = self._build(k)
        return self._tables[k]

    def _build(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        c = self._codes
        n = c.size - k + 1
        if n <= 0:
            self._totals[k] = 0
            return np.zeros(0, np.uint64), np.zeros(0, np.uint32)
        v, valid = codec.kmer_codes(c, k)
        v = v[valid]
        if 4**k <= max(2**22, v.size):  # dense histogram: O(n), no sort
            dense = np.bincount(v.astype(np.intp), minlength=4**k)
            uniq = np.flatnonzero(dense)
            cnt = dense[uniq]
            uniq = uniq.astype(np.uint64)
        else:
            uniq, cnt = np.unique(v, return_counts=True)
        total = int(cnt.sum())
        self._totals[k] = total
        return uniq, cnt.astype(np.uint32 if total < 2**32 else np.int64)

    def _count_codes(self, codes: np.ndarray, k: int) -> np.ndarray:
        """Counts of already-valid uint64 codes (any shape), same shape, int64."""
        uniq, cnt = self.table(k)
        if uniq.size == 0:
            return np.zeros(codes.shape, dtype=np.int64)
        pos = np.searchsorted(uniq, codes)
        pos = np.minimum(pos, uniq.size - 1)
        return np.where(uniq[pos] == codes, cnt[pos], 0).astype(np.int64)

    def count(self, kmers: np.ndarray, k: int) -> np.ndarray:
        """Counts of k-mers given as (n,) uint64 codes (ACGT 2-bit, first letter most significant).

        Returns (n,) int64 (0 for unseen k-mers). With ``both_strands`` a k-mer's count includes its
        occurrences on the reverse-complement strand.
        """
        k = self._check_k(k)
        return self._count_codes(_as_codes(kmers, k, "KmerCounts.count"), k)

    def count_strings(self, kmers: Sequence[str]) -> np.ndarray:
        """Counts of k-mers given as str (ACGT, any case; lengths may differ, each 1..max_len): (n,) int64."""
        if isinstance(kmers, (str, bytes)):
            kmers = [kmers]
        texts = [_text(s, "each k-mer") for s in kmers]
        out = np.zeros(len(texts), dtype=np.int64)
        lengths = np.array([len(t) for t in texts], dtype=np.int64)
        for k in np.unique(lengths).tolist():
            self._check_k(k)
            idx = np.flatnonzero(lengths == k)
            out[idx] = self._count_codes(encode_kmers([texts[i] for i in idx]), k)
        return out

    def total(self, k: int) -> int:
        """Number of ACGT-only windows of length k counted (both strands if ``both_strands``)."""
        k = self._check_k(k)
        if k not in self._totals:
            self.table(k)
        return self._totals[k]

    @property
    def nbytes(self) -> int:
        """Bytes held: corpus codes + every cached table."""
        return int(self._codes.nbytes
                   + sum(u.nbytes + c.nbytes for u, c in self._tables.values()))

    def clear(self, k: int | None = None) -> None:
        """Drop the cached table of ``k`` (all tables if None) to free memory; it is rebuilt on demand."""
        if k is None:
            self._tables.clear()
        else:
            self._tables.pop(int(k), None)


def nucleotide_frequencies(sequences: str | Iterable[str], *, both_strands: bool = False) -> np.ndarray:
    """(4,) float64 frequencies of A, C, G, T (in that order) among the ACGT letters of ``sequences``.

    Any case; N and other codes are ignored. ``both_strands`` adds the reverse complement (A=T, C=G).
    All NaN when there is no A/C/G/T letter.
    """
    if isinstance(sequences, (str, bytes)):
        sequences = [sequences]
    per = np.zeros(4, dtype=np.float64)
    for s in sequences:
        per += np.bincount(codec.encode(_text(s, "each sequence")), minlength=256)[:4]
    if both_strands:
        per = per + per[::-1]
    tot = per.sum()
    return per / tot if tot > 0 else np.full(4, np.nan)


# --------------------------------------------------------------------------------------------------
# query-side helpers


def _check_smoothing(alpha, min_count, order) -> tuple[float, int, int]:
    order = check_int_range("order", order, 0, hint="It is the number of context nt used on each side.")
    min_count = check_int_range("min_count", min_count, 0,
                                hint="Back off to a shorter context when the candidates' counts sum below it.")
    try:
        alpha = float(alpha)
    except (TypeError, ValueError):
        raise ParameterError(f"parameter alpha={alpha!r} must be a number >= 0 (add-alpha smoothing).") from None
    if not math.isfinite(alpha) or alpha < 0:
        raise ParameterError(f"parameter alpha={alpha} must be finite and >= 0 (add-alpha smoothing; 0.5 is usual).")
    return alpha, min_count, order


def _encode_queries(texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flat (sum L,) uint8 query codes (codec.encode: 0..3 ACGT, N_CODE for N, larger for any other character),
    (n,) offsets and (n,) lengths."""
    lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64) if texts else np.zeros(0, np.int64)
    flat = codec.encode("".join(texts))
    return flat, offsets, lengths


def _raise_other(texts, flat, offsets, pos: int, what: str, extra: str) -> None:
    w = int(np.searchsorted(offsets, pos, side="right") - 1)
    i = pos - int(offsets[w])
    raise SequenceAlphabetError(
        f"{what}[{w}]: position {i} (0-based) holds {texts[w][i]!r}, but a context may only hold A, C, G, T "
        f"(any case) and N (unknown; the context stops before it){extra}. Replace the character with N, or "
        "draw ACGT windows with genome.sample_windows()."
    )


def _flank_code(flat: np.ndarray, pos: np.ndarray, length: int) -> np.ndarray:
    """(m,) uint64 codes of the ``length``-nt runs of ``flat`` starting at ``pos`` (m,)."""
    return codec.pack_codes(flat[pos[:, None] + np.arange(length)[None, :]])


def _smoothed(raw: np.ndarray, alpha: float) -> np.ndarray:
    """Rows of (m, c) raw counts -> add-alpha probabilities; an all-zero row with alpha=0 -> uniform."""
    p = raw.astype(np.float64) + alpha
    s = p.sum(axis=1, keepdims=True)
    empty = s[:, 0] <= 0
    if empty.any():
        p[empty] = 1.0
        s[empty] = p.shape[1]
    return p / s


def _marginals(p: np.ndarray, h: int) -> np.ndarray:
    """(m, 4**h) candidate probabilities -> (m, h, 4) per-position marginals (ACGT)."""
    cube = p.reshape((p.shape[0],) + (4,) * h)
    out = np.empty((p.shape[0], h, 4), dtype=np.float64)
    for j in range(h):
        axes = tuple(a for a in range(1, h + 1) if a != j + 1)
        out[:, j] = cube.sum(axis=axes) if axes else cube
    return out


def _check_blocks(blocks, lengths: np.ndarray, max_block: int | None = MAX_BLOCK) -> tuple[np.ndarray, np.ndarray]:
    b = np.asarray(blocks)
    n = lengths.size
    if n == 0 and b.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    if b.ndim != 2 or b.shape[1] != 2 or b.shape[0] != n:
        raise ParameterError(
            f"blocks must be an (n_windows, 2) integer array of [start, end) pairs, one row per window; got "
            f"shape {b.shape} for {n} windows."
        )
    if b.dtype.kind not in "iu":
        if b.dtype.kind != "f" or not np.all(np.isfinite(b) & (np.mod(b, 1) == 0)):
            raise ParameterError(f"blocks must hold integer [start, end) positions, got dtype {b.dtype}.")
    start = b[:, 0].astype(np.int64)
    end = b[:, 1].astype(np.int64)
    h = end - start
    bad = np.flatnonzero((start < 0) | (end > lengths) | (h < 1))
    if bad.size:
        i = int(bad[0])
        raise ParameterError(
            f"blocks[{i}] = [{int(start[i])}, {int(end[i])}) is not a non-empty block inside window {i} "
            f"(length {int(lengths[i])} nt): need 0 <= start < end <= window length "
            f"({bad.size} block(s) are invalid)."
        )
    big = np.flatnonzero(h > max_block) if max_block is not None else np.zeros(0, np.int64)
    if big.size:
        i = int(big[0])
        raise ParameterError(
            f"blocks[{i}] hides {int(h[i])} nt, but blocks of at most {MAX_BLOCK} nt are supported "
            f"(4**h candidates are scored per block). Split the block or hide fewer nucleotides."
        )
    return start, end


def _left_room_before_n(npos: np.ndarray, S: np.ndarray, offsets: np.ndarray, room: np.ndarray) -> np.ndarray:
    """Letters available left of position S (flat index) before the nearest N inside the same text;
    ``npos`` are the sorted flat positions of N, ``offsets`` each text's start, ``room`` the N-free default."""
    li = np.searchsorted(npos, S, side="left") - 1
    has = li >= 0
    lastn = np.where(has, npos[np.maximum(li, 0)], -1)
    hit = has & (lastn >= offsets)
    return np.where(hit, S - lastn - 1, room)


def _flank_orders(texts, flat, offsets, lengths, start, end, order: int, what: str):
    """(S, E, flank order) per window of a flattened batch: S / E the absolute [start, end) of each window's
    hidden block (``what``) in ``flat``; the order is ``order`` cut to the room on each side of the block before
    the window's edge or its nearest N. Letters other than ACGTN outside the block are an error."""
    S, E = offsets + start, offsets + end
    other = np.flatnonzero(flat > codec.N_CODE)
    if other.size:
        w_of = np.searchsorted(offsets, other, side="right") - 1
        outside = (other < S[w_of]) | (other >= E[w_of])
        if outside.any():
            _raise_other(texts, flat, offsets, int(other[np.argmax(outside)]), "windows", f" outside the {what}")
    left_av, right_av = start.copy(), lengths - end
    npos = np.flatnonzero(flat == codec.N_CODE)
    if npos.size:
        left_av = _left_room_before_n(npos, S, offsets, left_av)
        ri = np.searchsorted(npos, E, side="left")
        has = ri < npos.size
        firstn = np.where(has, npos[np.minimum(ri, npos.size - 1)], -1)
        right_av = np.where(has & (firstn < offsets + lengths), firstn - E, right_av)
    return S, E, np.minimum(np.minimum(left_av, right_av), order).astype(np.int64)


def two_sided_block_probs(counts: KmerCounts, windows: Sequence[str], blocks: np.ndarray, *, order: int,
                          alpha: float = 0.5, min_count: int = 1, return_order: bool = False):
    """Per-nucleotide probabilities of hidden blocks from both flanks (a context-only "masked" n-gram).

    ``windows``: n str (or Windows); ``blocks``: (n, 2) int ``[start, end)`` of the hidden block in
    each window, h = end - start in 1..6 nt (may differ between windows; the block's letters are never
    read). For each window the flank order is ``o = min(order, start, len - end)``, further cut so that
    no N (any case) enters either flank (the same o on both sides). Every candidate ``x`` in
    ``{A,C,G,T}^h`` is scored by ``count(left_o + x + right_o) + alpha``; if the raw counts of the 4**h
    candidates sum below ``min_count`` the window backs off to ``o - 1``, down to ``o = 0`` (the count of
    the h-mer ``x`` alone), which is always accepted (all-zero counts with alpha=0 give a uniform
    distribution). The candidate distribution is marginalised to each hidden position.

    Needs ``counts.max_len >= 2 * order + max h``. Returns (sum of h, 4) float64 probabilities in ACGT
    order, rows in window order then position order; with ``return_order=True`` also the (n,) int64
    order finally used per window.
    Raises ParameterError (order < 0, bad block, too short max_len) or SequenceAlphabetError (a character
    other than A/C/G/T/N outside a block).
    """
    alpha, min_count, order = _check_smoothing(alpha, min_count, order)
    if isinstance(windows, (str, bytes)):
        windows = [windows]
    texts = [_text(w, "each window") for w in windows]
    flat, offsets, lengths = _encode_queries(texts)
    start, end = _check_blocks(blocks, lengths)
    n = len(texts)
    h = end - start
    if n == 0:
        out = np.zeros((0, 4), dtype=np.float64)
        return (out, np.zeros(0, np.int64)) if return_order else out
    need = 2 * order + int(h.max())
    if need > counts.max_len:
        raise ParameterError(
            f"order={order} with blocks of up to {int(h.max())} nt needs counts of k-mers up to "
            f"{need} nt, but the KmerCounts were built with max_len={counts.max_len}. Build them with "
            f"max_len >= {need} (at most {MAX_KMER}) or lower the order."
        )
    S, E, o_cur = _flank_orders(texts, flat, offsets, lengths, start, end, order, "hidden block")

    out = np.empty((int(h.sum()), 4), dtype=np.float64)
    row0 = np.concatenate([[0], np.cumsum(h)[:-1]])

    def emit(idx, hh, probs):
        rows = row0[idx][:, None] + np.arange(hh)[None, :]
        out[rows.reshape(-1)] = _marginals(probs, hh).reshape(-1, 4)

    used = _backoff(counts, flat, S, E, o_cur, h, alpha, min_count, emit, two_sided=True)
    return (out, used) if return_order else out


def two_sided_model(counts: KmerCounts, orders: Mapping[int, int], *, alpha: float = 0.5):
    """A callable ``(windows, blocks) -> (sum of h, 4)`` that scores hidden blocks with :func:`two_sided_block_probs`,
    the flank order chosen by the block length h from ``orders`` (h -> order, e.g. picked by
    :func:`held_out_order`; an h not in it takes the order of the nearest h below, or the smallest one). Blocks of
    different lengths in one call are scored length by length."""
    table = {int(h): int(o) for h, o in orders.items()}
    if not table:
        raise ParameterError("orders is empty; pass h -> flank order, e.g. {1: 4, 2: 4}.")

    def order_for(h: int) -> int:
        below = [x for x in table if x <= h]
        return table[max(below)] if below else table[min(table)]

    def score(windows: Sequence[str], blocks) -> np.ndarray:
        blocks = np.asarray(blocks, dtype=np.int64).reshape(-1, 2)
        h = blocks[:, 1] - blocks[:, 0]
        out = np.zeros((int(h.sum()), 4))
        offsets = np.concatenate([[0], np.cumsum(h)])
        for length in np.unique(h):
            rows = np.flatnonzero(h == length)
            probs = two_sided_block_probs(counts, [windows[i] for i in rows], blocks[rows], order=order_for(int(length)),
                                          alpha=alpha)
            out[np.concatenate([np.arange(offsets[i], offsets[i + 1]) for i in rows])] = probs
        return out

    return score


def _backoff(counts: KmerCounts, flat: np.ndarray, S: np.ndarray, E: np.ndarray, o0: np.ndarray, h: np.ndarray,
             alpha: float, min_count: int, emit, *, two_sided: bool) -> np.ndarray:
    """Shared scoring engine. Item i has a hidden run of h[i] nt between ``flat[S[i]-o:S[i]]`` and (if
    ``two_sided``) ``flat[E[i]:E[i]+o]``, starting at o = o0[i]. Each step handles one (o, h) group,
    vectorised over its items and their 4**h candidates; accepted items go to ``emit(idx, h, probs)``
    with (m, 4**h) candidate probabilities. Returns the (n,) order used per item."""
    o_cur = o0.astype(np.int64).copy()
    pending = np.arange(o_cur.size)
    hmax = int(h.max()) + 1 if h.size else 1
    while pending.size:
        keys = o_cur[pending] * hmax + h[pending]
        rejected = []
        for key in np.unique(keys).tolist():
            o, hh = divmod(key, hmax)
            group = pending[keys == key]
            cand = np.arange(4**hh, dtype=np.uint64) << np.uint64(2 * o if two_sided else 0)
            shift_left = np.uint64(2 * (hh + o) if two_sided else 2 * hh)
            k = (2 * o if two_sided else o) + hh
            step = max(1, _CHUNK_CANDIDATES // 4**hh)
            for c0 in range(0, group.size, step):
                idx = group[c0: c0 + step]
                base = _flank_code(flat, S[idx] - o, o) << shift_left
                if two_sided:
                    base |= _flank_code(flat, E[idx], o)
                raw = counts._count_codes(base[:, None] | cand[None, :], k)
                ok = (raw.sum(axis=1) >= min_count) | (o == 0)
                if ok.any():
                    emit(idx[ok], hh, _smoothed(raw[ok], alpha))
                if not ok.all():
                    rejected.append(idx[~ok])
        pending = np.concatenate(rejected) if rejected else np.zeros(0, dtype=np.int64)
        o_cur[pending] -= 1
    return o_cur


def left_context_probs(counts: KmerCounts, contexts: Sequence[str], k: int, *, order: int, alpha: float = 0.5,
                       min_count: int = 1, return_order: bool = False):
    """Next-k-mer distribution from the left context only (the n-gram baseline of the next-k-mer benchmark).

    For each context (str, may be ''), its last ``o = min(order, len)`` letters are used, cut at the last
    N (any case) so that no N enters the context. Each of the ``4**k`` continuations y is scored by
    ``count(tail_o + y) + alpha``; if the raw counts sum below ``min_count`` the context backs off to
    ``o - 1``, down to ``o = 0`` (the k-mer count of y alone), as in :func:`two_sided_block_probs`.

    Returns (n_contexts, 4**k) float64 probabilities. **Class order**: class index = the k-mer's code =
    base-4 number with A=0, C=1, G=2, T=3, first letter most significant, i.e. ``all_kmers(k)`` /
    ``itertools.product("ACGT", repeat=k)`` order (k=2: AA, AC, AG, AT, CA, ..., TT). ``k`` is 1..8 and
    ``counts.max_len >= order + k``. With ``return_order=True`` also the (n,) int64 order used.
    """
    alpha, min_count, order = _check_smoothing(alpha, min_count, order)
    k = check_int_range("k", k, 1, MAX_NEXT, hint="It is the length of the predicted k-mer (4**k classes).")
    if order + k > counts.max_len:
        raise ParameterError(
            f"order={order} with k={k} needs counts of k-mers up to {order + k} nt, but the KmerCounts were "
            f"built with max_len={counts.max_len}. Build them with max_len >= {order + k} or lower the order."
        )
    if isinstance(contexts, (str, bytes)):
        contexts = [contexts]
    texts = [_text(c, "each context") for c in contexts]
    flat, offsets, lengths = _encode_queries(texts)
    n = len(texts)
    out = np.empty((n, 4**k), dtype=np.float64)
    if n == 0:
        return (out, np.zeros(0, np.int64)) if return_order else out
    other = np.flatnonzero(flat > codec.N_CODE)
    if other.size:
        _raise_other(texts, flat, offsets, int(other[0]), "contexts", "")
    S = offsets + lengths  # the continuation starts right after each context
    avail = lengths.copy()
    npos = np.flatnonzero(flat == codec.N_CODE)
    if npos.size:
        avail = _left_room_before_n(npos, S, offsets, avail)
    o0 = np.minimum(avail, order)

    def emit(idx, hh, probs):
        out[idx] = probs

    used = _backoff(counts, flat, S, S, o0, np.full(n, k, dtype=np.int64), alpha, min_count, emit,
                    two_sided=False)
    return (out, used) if return_order else out


# --------------------------------------------------------------------------------------------------
# a gap of any length: one hidden letter between two flanks, the other gap letters unseen


#: Low bits of a packed code that :func:`_gap_counts` screens on (a table of 4 Mi booleans).
_SCREEN_BITS = 22
#: :func:`_gap_counts` reads only the runs starting with a query's left flank when those flanks are less than
#: this share of all o-mers.
_SCREEN_SHARE = 0.1


def _gap_counts(codes: np.ndarray, invalid_before: np.ndarray, kmers: dict, o: int, u: int, gap: int,
                queries: np.ndarray) -> np.ndarray:
    """Counts of each query key (any shape; ``left_o | x | right_o``, 2 bits per letter, left most significant)
    among the corpus runs of ``2o + gap`` ACGT letters, x the letter at offset ``o + u``; runs holding any
    non-ACGT code do not count. Exact, and never a sort of the corpus:

    * long flanks whose left o-mers are a small share (< :data:`_SCREEN_SHARE`) of all o-mers: only the runs
      that start with one of the queries' left flanks are read (a table of them; beyond 11 letters of their low
      :data:`_SCREEN_BITS` bits, a screen that never drops a match) and their keys matched against the sorted
      queries;
    * otherwise every run's key is built; a dense histogram counts keys of up to 12 letters, longer ones are
      screened on their low bits and matched the same way."""
    queries = np.asarray(queries, dtype=np.uint64)
    span = 2 * o + gap
    n = codes.size - span + 1
    uniq = np.unique(queries)
    if n <= 0 or uniq.size == 0:
        return np.zeros(queries.shape, np.int64)
    shift, bits = np.uint64(2 * o), 2 * o + 1
    left, right = kmers[o] if o else (None, None)
    lefts = np.unique(uniq >> (shift + np.uint64(2))) if o else None
    if o and lefts.size < _SCREEN_SHARE * 4**o:
        mask = np.uint64(min(4**o, 1 << _SCREEN_BITS) - 1)
        table = np.zeros(int(mask) + 1, dtype=bool)
        table[(lefts & mask).astype(np.intp)] = True
        pos = np.flatnonzero(table[(left[:n] & mask).astype(np.intp)])
        pos = pos[invalid_before[pos + span] == invalid_before[pos]]
        key = (codes[pos + o + u].astype(np.uint64) << shift) | (left[pos] << (shift + np.uint64(2))) | right[pos + o + gap]
    else:
        ok = (invalid_before[span:] - invalid_before[:-span]) == 0
        key = codes[o + u: o + u + n].astype(np.uint64) << shift
        if o:
            key |= (left[:n] << (shift + np.uint64(2))) | right[o + gap: o + gap + n]
        key = key[ok]
        if 2 * bits <= 24:
            return np.bincount(key.astype(np.intp), minlength=4**bits)[queries.astype(np.intp)].astype(np.int64)
        low = np.uint64((1 << _SCREEN_BITS) - 1)
        table = np.zeros(1 << _SCREEN_BITS, dtype=bool)
        table[(uniq & low).astype(np.intp)] = True
        key = key[table[(key & low).astype(np.intp)]]
    at = np.minimum(np.searchsorted(uniq, key), uniq.size - 1)
    hits = np.bincount(at[uniq[at] == key], minlength=uniq.size)
    return hits[np.searchsorted(uniq, queries)].astype(np.int64)


def gapped_letter_probs(counts: KmerCounts, windows: Sequence[str], gaps, targets, *, order: int, alpha: float = 0.5,
                        min_count: int = 1, return_order: bool = False, memo: dict | None = None):
    """ACGT distribution of one hidden letter from both flanks when a whole gap around it is unseen.

    ``windows``: n str; ``gaps``: (n, 2) int ``[start, end)`` of the nucleotides the predictor may not read in
    each window (any length >= 1); ``targets``: (n,) int positions inside their gap whose letter is predicted.
    With flank order ``o`` (``min(order, start, len - end)``, cut before any N), letter x is scored by the
    corpus count of ``left_o + (any letters) + x + (any letters) + right_o`` with the gap's length, plus
    ``alpha``; the other gap letters are summed over, so with ``alpha=0`` this equals the marginal of
    :func:`two_sided_block_probs` on the same gap (for a gap of 1 nt, at any alpha; the tests check both). The
    pseudo-count is per letter, not per completion of the gap (which would smooth a 12-nt gap by 4**11). Raw counts below
    ``min_count`` back off to ``o - 1``, down to ``o = 0`` (the letter's frequency), always accepted.

    Unlike :func:`two_sided_block_probs`, the gap may be longer than ``MAX_BLOCK``: this is the reference that
    sees exactly what a model sees when masking a token hides more letters than the one scored (a
    non-overlapping 6-mer or BPE token). Cost: one pass over the counted corpus per (order, gap length, target
    offset) group. Returns (n, 4) float64; with ``return_order=True`` also the (n,) int64 order used.

    ``memo``: a dict the caller keeps across calls on the same ``counts`` ((order, gap, offset) -> the sorted
    queried keys and their counts). A group whose keys were all counted before is read from it instead of from
    the corpus: scoring the same windows at ascending orders, every backed-off group is found there.
    """
    alpha, min_count, order = _check_smoothing(alpha, min_count, order)
    if isinstance(windows, (str, bytes)):
        windows = [windows]
    texts = [_text(w, "each window") for w in windows]
    flat, offsets, lengths = _encode_queries(texts)
    start, end = _check_blocks(gaps, lengths, max_block=None)
    targets = np.asarray(targets).astype(np.int64).reshape(-1)
    if targets.size != len(texts):
        raise ParameterError(f"targets has {targets.size} entries for {len(texts)} windows; pass one position per window.")
    if ((targets < start) | (targets >= end)).any():
        i = int(np.argmax((targets < start) | (targets >= end)))
        raise ParameterError(f"targets[{i}] = {int(targets[i])} lies outside its gap [{int(start[i])}, {int(end[i])}); "
                             "the predicted letter must be one of the unseen ones.")
    n = len(texts)
    S, E, o_cur = _flank_orders(texts, flat, offsets, lengths, start, end, order, "gap")
    out = np.zeros((n, 4), dtype=np.float64)
    codes = counts._codes
    invalid_before = np.concatenate([[0], np.cumsum(codes > 3, dtype=np.int64)])
    kmers: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    gap, u = end - start, targets - start
    pending = np.arange(n)
    while pending.size:
        rejected = []
        groups = np.stack([o_cur[pending], gap[pending], u[pending]], 1)
        for o, g, uu in np.unique(groups, axis=0).tolist():
            idx = pending[(groups == (o, g, uu)).all(1)]
            base = np.zeros(idx.size, np.uint64)
            if o:
                base = (_flank_code(flat, S[idx] - o, o) << np.uint64(2 * o + 2)) | _flank_code(flat, E[idx], o)
            query = base[:, None] | (np.arange(4, dtype=np.uint64)[None, :] << np.uint64(2 * o))
            raw = None
            if memo is not None and (o, g, uu) in memo:
                known, known_counts = memo[(o, g, uu)]
                at = np.minimum(np.searchsorted(known, query), known.size - 1)
                if (known[at] == query).all():
                    raw = known_counts[at]
            if raw is None:
                if o and o not in kmers:
                    values, _ = codec.kmer_codes(codes, o)
                    kmers[o] = (values, values)
                raw = _gap_counts(codes, invalid_before, kmers, o, uu, g, query)
                if memo is not None:
                    known, first = np.unique(query, return_index=True)
                    memo[(o, g, uu)] = (known, raw.reshape(-1)[first])
            ok = (raw.sum(1) >= min_count) | (o == 0)
            out[idx[ok]] = _smoothed(raw[ok], alpha)
            if not ok.all():
                rejected.append(idx[~ok])
        pending = np.concatenate(rejected) if rejected else np.zeros(0, np.int64)
        o_cur[pending] -= 1
    return (out, o_cur) if return_order else out


# --------------------------------------------------------------------------------------------------
# evaluation helpers


def block_truth(windows: Sequence[str], blocks: np.ndarray) -> np.ndarray:
    """(sum of h,) int64 true letters of the hidden blocks (A=0, C=1, G=2, T=3; -1 for any other character),
    rows in the order of :func:`two_sided_block_probs`."""
    if isinstance(windows, (str, bytes)):
        windows = [windows]
    texts = [_text(w, "each window") for w in windows]
    flat, offsets, lengths = _encode_queries(texts)
    start, end = _check_blocks(blocks, lengths)
    h = end - start
    pos = np.repeat(offsets + start, h) + (np.arange(int(h.sum())) - np.repeat(np.cumsum(h) - h, h))
    codes = flat[pos].astype(np.int64)
    return np.where(codes < 4, codes, -1)


def score_probs(probs: np.ndarray, truth: np.ndarray) -> dict:
    """Accuracy (argmax == truth) and mean log-loss (nats) of (n, c) probabilities against (n,) class
    indices; rows with truth < 0 are left out. Returns {"n", "accuracy", "log_loss"}."""
    probs = np.asarray(probs, dtype=np.float64)
    truth = np.asarray(truth).astype(np.int64).reshape(-1)
    if probs.ndim != 2 or probs.shape[0] != truth.size:
        raise ParameterError(f"score_probs: probs must be (n, classes) and truth (n,); got {probs.shape} and "
                             f"{truth.shape}.")
    keep = truth >= 0
    p, t = probs[keep], truth[keep]
    if t.size == 0:
        return {"n": 0, "accuracy": float("nan"), "log_loss": float("nan")}
    pt = p[np.arange(t.size), t]
    return {
        "n": int(t.size),
        "accuracy": float(np.mean(p.argmax(axis=1) == t)),
        "log_loss": float(-np.mean(np.log(np.maximum(pt, 1e-300)))),
    }


def fit_order(counts: KmerCounts, windows: Sequence[str], blocks: np.ndarray, orders: Iterable[int], *,
              alpha: float = 0.5, min_count: int = 1, metric: str = "log_loss"):
    """Pick the flank order of :func:`two_sided_block_probs` on validation windows/blocks.

    Returns ``(best_order, table)``: ``table`` is a pandas DataFrame with columns order, n, accuracy,
    log_loss (nats), one row per order; best = lowest log_loss or highest accuracy (ties: smaller order).
    """
    import pandas as pd

    if metric not in ("log_loss", "accuracy"):
        raise ParameterError(f"fit_order: metric={metric!r} is not supported: use 'log_loss' or 'accuracy'.")
    orders = [check_int_range("order", o, 0) for o in orders]
    if not orders:
        raise ParameterError("fit_order: orders is empty; pass e.g. range(0, 9).")
    truth = block_truth(windows, blocks)
    rows = []
    for o in orders:
        probs = two_sided_block_probs(counts, windows, blocks, order=o, alpha=alpha, min_count=min_count)
        rows.append({"order": o, **score_probs(probs, truth)})
    table = pd.DataFrame(rows)
    key = table["log_loss"] if metric == "log_loss" else -table["accuracy"]
    best = int(table["order"].iloc[int(np.argmin(key.to_numpy()))])
    return best, table


def _held_out_split(sequences, holdout_every: int, what: str) -> tuple[list[str], list[str]]:
    """(counted, held-out) sequences: every ``holdout_every``-th one is held out unless the counted ones contain it."""
    seqs = [_text(s, "each sequence") for s in ([sequences] if isinstance(sequences, (str, bytes)) else sequences)]
    holdout_every = check_int_range("holdout_every", holdout_every, 2, hint="Every n-th sequence is held out.")
    held = [s for i, s in enumerate(seqs) if i % holdout_every == holdout_every - 1]
    fit = [s for i, s in enumerate(seqs) if i % holdout_every != holdout_every - 1]
    if fit and held:
        held = [s for s, inside in zip(held, contained(held, fit)) if not inside]
    if not held or not fit:
        raise ParameterError(f"{what} needs at least {holdout_every} sequences to hold one out (that does not "
                             f"repeat the others); got {len(seqs)}.")
    return fit, held


def held_out_order(sequences: Sequence[str], block_lengths: Iterable[int], *, orders: Iterable[int], window_nt: int,
                   n_windows: int = 1000, holdout_every: int = 5, seed: int = 0, alpha: float = 0.5,
                   min_count: int = 1, margin: int | None = None) -> dict:
    """Pick the flank order of :func:`two_sided_block_probs` without in-sample bias.

    Counting k-mers on the very sequences the order is scored on rewards long flanks that only memorise. So
    every ``holdout_every``-th sequence (0-based index % holdout_every == holdout_every - 1; whole records,
    i.e. separate genomic loci) is held out -- except a record contained in the counted ones (the package's one
    containment screen, ``containment.contained``: half or more of its 32-mers occur in them), which is left
    out altogether --, k-mers are counted on the others, and each order is scored by
    log-loss on ``n_windows`` windows of ``window_nt`` nt drawn from the held-out sequences, with one hidden
    block of h nt per window at least ``margin`` nt (default: the largest order) from both ends. Returns
    {h: (best_order, table)} for every h in ``block_lengths`` (table as in :func:`fit_order`).
    """
    from .genome import Genome, sample_windows

    fit, held = _held_out_split(sequences, holdout_every, "held_out_order")
    orders = [check_int_range("order", o, 0) for o in orders]
    hs = [check_int_range("h", h, 1, MAX_BLOCK) for h in block_lengths]
    margin = max(orders) if margin is None else check_int_range("margin", margin, 0)
    if window_nt < 2 * margin + max(hs):
        raise ParameterError(f"window_nt={window_nt} is too short for blocks of {max(hs)} nt with {margin} nt on each side.")
    counts = KmerCounts(fit, max_len=2 * max(orders) + max(hs))
    valid = [w.sequence for w in sample_windows(Genome.from_sequences({f"held{i}": s for i, s in enumerate(held)}),
                                                n_windows, window_nt, seed=seed)]
    rng = np.random.default_rng(seed)
    out = {}
    for h in hs:
        starts = rng.integers(margin, window_nt - margin - h + 1, size=len(valid))
        out[h] = fit_order(counts, valid, np.stack([starts, starts + h], 1), orders, alpha=alpha, min_count=min_count)
    return out


#: Offsets of the hidden letter per gap length in :func:`held_out_gap_order` (the middles of this many equal parts).
GAP_OFFSET_STRATA = 4


def held_out_gap_order(sequences: Sequence[str], gap_lengths: Iterable[int], *, orders: Iterable[int], window_nt: int,
                       n_windows: int = 1000, holdout_every: int = 5, seed: int = 0, alpha: float = 0.5,
                       min_count: int = 1) -> dict:
    """:func:`held_out_order` for :func:`gapped_letter_probs`: for every gap length g, the flank order with the
    lowest log-loss on one hidden letter inside a gap of g nt in ``n_windows`` windows of held-out records, k-mers
    counted on the others (the same split). Returns {g: (best_order, table)} with table columns order, n, accuracy,
    log_loss (nats); ties go to the smaller order.

    The hidden letter's offset in the gap is stratified, not drawn uniformly: the gap is cut into
    min(g, :data:`GAP_OFFSET_STRATA`) equal parts and each window takes the middle offset of one part in turn (every
    offset for g <= 4). Each distinct offset costs one pass over the counted corpus per order, so this bounds the
    cost of a long gap at 4 passes instead of g while still averaging over where in the gap the letter sits."""
    import pandas as pd

    from .genome import Genome, sample_windows

    fit, held = _held_out_split(sequences, holdout_every, "held_out_gap_order")
    orders = sorted({check_int_range("order", o, 0) for o in orders})
    if not orders:
        raise ParameterError("held_out_gap_order: orders is empty; pass e.g. range(0, 7).")
    gs = sorted({check_int_range("gap length", g, 1) for g in gap_lengths})
    margin = max(orders)
    if not gs or window_nt < 2 * margin + max(gs):
        raise ParameterError(f"window_nt={window_nt} is too short for gaps of {max(gs, default=0)} nt with {margin} nt "
                             "of flank on each side; lower the orders or lengthen the windows.")
    counts = KmerCounts(fit, max_len=1)
    valid = [w.sequence for w in sample_windows(Genome.from_sequences({f"held{i}": s for i, s in enumerate(held)}),
                                                n_windows, window_nt, seed=seed)]
    rng = np.random.default_rng(seed)
    out = {}
    for g in gs:
        starts = rng.integers(margin, window_nt - margin - g + 1, size=len(valid))
        strata = min(g, GAP_OFFSET_STRATA)
        offsets = ((np.arange(strata) + 0.5) * g / strata).astype(np.int64)  # middle of each of the equal parts
        targets = starts + offsets[rng.permutation(len(valid)) % strata]
        truth = np.array([codec.letter_index(w, [t])[0] for w, t in zip(valid, targets)])
        memo: dict = {}  # ascending orders: every backed-off group was counted by an earlier order's call
        rows = [{"order": o, **score_probs(gapped_letter_probs(counts, valid, np.stack([starts, starts + g], 1), targets,
                                                               order=o, alpha=alpha, min_count=min_count, memo=memo),
                                           truth)}
                for o in orders]
        table = pd.DataFrame(rows)
        out[g] = (int(table.order.iloc[int(np.argmin(table.log_loss.to_numpy()))]), table)
    return out
