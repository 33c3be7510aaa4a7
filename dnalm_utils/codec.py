"""The package's one nucleotide codec and one k-mer packer.

Letter order inside the package is ``ACGT`` (A=0, C=1, G=2, T=3), for every lookup table, every
distribution over four letters and every packed k-mer. DNABERT's vocabulary lists k-mers in
``itertools.product("ATCG")`` order; that order is met only at the vocabulary boundary, through
:func:`to_dnabert_index` / :func:`from_dnabert_index`.

Codes (:func:`encode`, uint8, case-insensitive): A, C, G, T -> 0..3; N -> :data:`N_CODE` (4); the other
IUPAC ambiguity codes (U R Y S W K M B D H V) -> :data:`AMBIGUOUS` (5); anything else -> :data:`INVALID`
(255).

Packed k-mers (:func:`kmer_codes`): base-4 numbers with the first letter most significant, in uint64, so
k <= 32; AA..A = 0, AA..C = 1, ..., TT..T = 4**k - 1.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .errors import ParameterError

LETTERS = "ACGT"
DNABERT_ORDER = "ATCG"
N_CODE = 4
AMBIGUOUS = 5
INVALID = 255
MAX_K = 32

_TABLE = np.full(256, INVALID, dtype=np.uint8)
for _c in "URYSWKMBDHV":
    _TABLE[ord(_c)] = _TABLE[ord(_c.lower())] = AMBIGUOUS
_TABLE[ord("N")] = _TABLE[ord("n")] = N_CODE
for _i, _c in enumerate(LETTERS):
    _TABLE[ord(_c)] = _TABLE[ord(_c.lower())] = _i
_TABLE.setflags(write=False)
_COMPLEMENT = np.array([3, 2, 1, 0], dtype=np.uint8)


def _bytes(seq) -> bytes:
    if isinstance(seq, str):
        return seq.encode("ascii", errors="replace")
    if isinstance(seq, (bytes, bytearray, memoryview)):
        return bytes(seq)
    raise ParameterError(f"expected a DNA sequence as str or bytes, got {type(seq).__name__}.")


def encode(seq: str | bytes) -> np.ndarray:
    """(len(seq),) uint8 codes of ``seq`` (see the module docstring); non-ASCII characters -> INVALID."""
    return _TABLE[np.frombuffer(_bytes(seq), dtype=np.uint8)]


def decode(codes: np.ndarray) -> str:
    """Inverse of :func:`encode` on letters: codes 0..3 -> 'ACGT', N_CODE -> 'N'; other codes raise."""
    codes = np.asarray(codes)
    if codes.size and (codes.max() > N_CODE):
        raise ParameterError("decode() takes codes 0..4 (A, C, G, T, N); ambiguity codes and invalid bytes have "
                             "no single letter.")
    return np.frombuffer(b"ACGTN", dtype=np.uint8)[codes.astype(np.intp)].tobytes().decode("ascii")


def letter_index(seq: str | bytes, pos=None, *, where: str = "sequence") -> np.ndarray:
    """(n,) int64 letter index (A=0 .. T=3) of ``seq`` (at ``pos`` when given); any other letter raises
    ParameterError naming it and ``where``."""
    c = encode(seq)
    if pos is not None:
        c = c[np.asarray(pos)]
    bad = c > 3
    if bad.any():
        raw = np.frombuffer(_bytes(seq), dtype=np.uint8)
        first = raw[np.asarray(pos)[bad][0]] if pos is not None else raw[np.flatnonzero(bad)[0]]
        raise ParameterError(f"{where}: nucleotide {chr(first)!r} is not A/C/G/T; these letters must be ACGT.")
    return c.astype(np.int64)


def check_acgt_list(seqs, *, name: str = "inputs", why: str = "") -> list[str]:
    """Upper-case copies of ``seqs`` (a non-empty list of non-empty A/C/G/T strings). Otherwise ParameterError
    naming the parameter ``name``, the first bad item's index and the position of its first non-ACGT letter, then
    ``why`` (e.g. where ACGT-only sequence comes from)."""
    if isinstance(seqs, (str, bytes)):
        raise ParameterError(f"{name} must be a list of sequences, not one string; wrap it in a list.")
    seqs = list(seqs)
    if not seqs:
        raise ParameterError(f"{name} is empty: pass at least one sequence.")
    tail = f" ({why})" if why else ""
    out = []
    for i, s in enumerate(seqs):
        if not isinstance(s, str) or not s:
            raise ParameterError(f"{name}[{i}] is {s!r}: every item must be a non-empty string of A/C/G/T{tail}.")
        bad = np.flatnonzero(encode(s) > 3)
        if bad.size:
            p = int(bad[0])
            raise ParameterError(f"{name}[{i}] holds {s[p]!r} at position {p}: ACGT only{tail}.")
        out.append(s.upper())
    return out


def reverse_complement_codes(codes: np.ndarray) -> np.ndarray:
    """Reverse complement of letter codes 0..3 (other codes are kept, reversed)."""
    codes = np.asarray(codes, dtype=np.uint8)
    out = codes.copy()
    letters = codes < 4
    out[letters] = _COMPLEMENT[codes[letters]]
    return out[::-1]


def check_k(k: int, max_k: int = MAX_K) -> int:
    """``k`` as int if 1 <= k <= max_k, else ParameterError."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= int(k) <= max_k:
        raise ParameterError(f"k-mer length k={k!r} must be an integer from 1 to {max_k} (2 bits per letter "
                             f"in a 64-bit word).")
    return int(k)


def kmer_codes(codes: np.ndarray | str | bytes, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Every k-long window of a sequence, packed: ``(values, valid)``, both (max(L - k + 1, 0),).

    ``codes`` is a sequence (str/bytes) or its :func:`encode` output (any integer dtype). ``values`` (uint64)
    is the base-4 number of window i (first letter most significant; a non-ACGT letter counts as A),
    ``valid`` (bool) says the window holds A/C/G/T only. k passes over the sequence, each vectorised.
    """
    k = check_k(k)
    c = encode(codes) if isinstance(codes, (str, bytes, bytearray, memoryview)) else np.asarray(codes)
    n = c.size - k + 1
    if n <= 0:
        return np.zeros(0, np.uint64), np.zeros(0, bool)
    bad = c > 3
    digits = c.astype(np.uint64)
    if bad.any():
        cs = np.empty(c.size + 1, np.int32 if c.size < 2**31 else np.int64)  # bad letters before each position
        cs[0] = 0
        np.cumsum(bad, dtype=cs.dtype, out=cs[1:])
        valid = (cs[k:] - cs[:-k]) == 0
        digits[bad] = 0
    else:
        valid = np.ones(n, bool)
    values = digits[:n].copy()
    two = np.uint64(2)
    for j in range(1, k):
        values <<= two
        values |= digits[j : j + n]
    return values, valid


def canonical_kmer_codes(codes: np.ndarray | str | bytes, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Like :func:`kmer_codes`, but each window's value is its canonical code: the smaller of the packed k-mer
    and the packed reverse complement of that k-mer, so a k-mer and its reverse complement (both strands of
    the same DNA) get one value. ``(values uint64, valid bool)``, both (max(L - k + 1, 0),)."""
    k = check_k(k)
    c = encode(codes) if isinstance(codes, (str, bytes, bytearray, memoryview)) else np.asarray(codes)
    fwd, valid = kmer_codes(c, k)
    if fwd.size == 0:
        return fwd, valid
    # Window i of the reverse-complement strand (read 5'->3') is the reverse complement of forward window
    # n-1-i; letters other than ACGT become INVALID there too, so their windows stay invalid.
    rc = np.where(c > 3, INVALID, 3 - np.minimum(c, 3)).astype(np.uint8)[::-1]
    rev, _ = kmer_codes(rc, k)
    return np.minimum(fwd, rev[::-1]), valid


def pack_codes(digits: np.ndarray) -> np.ndarray:
    """(n, k) letter codes 0..3 (any integer dtype; k <= 32) -> (n,) uint64 packed k-mers, first column most
    significant (the inverse of :func:`unpack_codes`). The codes are not checked: pass ACGT codes only."""
    d = np.asarray(digits)
    if d.ndim != 2:
        raise ParameterError(f"pack_codes() takes an (n, k) array of letter codes; got shape {d.shape}.")
    if d.shape[1] > MAX_K:
        check_k(d.shape[1])
    values = np.zeros(d.shape[0], np.uint64)
    two = np.uint64(2)
    for j in range(d.shape[1]):
        values <<= two
        values |= d[:, j].astype(np.uint64)
    return values


def unpack_codes(values, k: int) -> np.ndarray:
    """(n,) packed k-mers -> (n, k) uint8 letter codes 0..3 (A, C, G, T), first letter in column 0."""
    k = check_k(k)
    v = np.asarray(values, dtype=np.uint64).reshape(-1)
    shifts = np.uint64(2) * np.arange(k - 1, -1, -1, dtype=np.uint64)
    return ((v[:, None] >> shifts[None, :]) & np.uint64(3)).astype(np.uint8)


def pack_kmers(kmers: str | Sequence[str]) -> np.ndarray:
    """(n,) uint64 packed value of each k-mer string (all of one length k <= 32, letters ACGT in any case)."""
    texts = [kmers] if isinstance(kmers, str) else list(kmers)
    if not texts:
        return np.zeros(0, np.uint64)
    k = len(texts[0])
    if any(len(t) != k for t in texts):
        raise ParameterError("pack_kmers() takes k-mers of one length; got lengths "
                             f"{sorted({len(t) for t in texts})}.")
    check_k(k)
    digits = encode("".join(texts)).reshape(len(texts), k)
    if (digits > 3).any():
        bad = texts[int(np.flatnonzero((digits > 3).any(axis=1))[0])]
        raise ParameterError(f"k-mer {bad!r} holds a letter other than A/C/G/T.")
    return pack_codes(digits)


def unpack_kmers(values, k: int) -> list[str]:
    """The k-mer strings of packed ``values`` (inverse of :func:`pack_kmers`)."""
    letters = np.frombuffer(LETTERS.encode(), dtype=np.uint8)[unpack_codes(values, k)]
    raw = letters.tobytes().decode("ascii")
    return [raw[i * k : (i + 1) * k] for i in range(letters.shape[0])]


# DNABERT's ATCG order <-> ACGT order, one digit at a time: ACGT digit d is ATCG digit _TO_DNABERT[d].
_TO_DNABERT = np.array([DNABERT_ORDER.index(c) for c in LETTERS], dtype=np.uint64)
_FROM_DNABERT = np.array([LETTERS.index(c) for c in DNABERT_ORDER], dtype=np.uint64)


def _permute_digits(values, k: int, table: np.ndarray) -> np.ndarray:
    v = np.asarray(values, dtype=np.uint64)
    out = np.zeros_like(v)
    for j in range(k):
        shift = np.uint64(2 * j)
        out |= table[((v >> shift) & np.uint64(3)).astype(np.intp)] << shift
    return out


def to_dnabert_index(values, k: int) -> np.ndarray:
    """Packed ACGT-order k-mers -> their rank in ``itertools.product("ATCG", repeat=k)`` (uint64)."""
    return _permute_digits(values, check_k(k), _TO_DNABERT)


def from_dnabert_index(index, k: int) -> np.ndarray:
    """Inverse of :func:`to_dnabert_index`."""
    return _permute_digits(index, check_k(k), _FROM_DNABERT)
