"""The package's one containment screen: is a sequence (largely) contained in other sequences?

One measure, one k, one threshold:

* **measure** (:func:`shared_fraction`): the share of a query's k-mer windows -- every ACGT-only window of
  ``k`` nt, counted at every position, so a k-mer repeated inside the query counts each time -- that occur
  exactly in the reference, on either strand. Case is ignored (soft-masking counts as the base); a window
  holding N or any other non-ACGT letter is not counted on either side.
* **k** = :data:`SCREEN_K` = 32 (the longest k-mer that fits 2 bits per letter in one 64-bit word). A shared
  32-mer is almost never chance in a corpus of a few megabases (4**32 ~ 1.8e19 possible 32-mers), so the
  measure counts copies of the same DNA, not similar sequence.
* **threshold** = :data:`CONTAINED_FRACTION` = 0.5: a query with at least half of its k-mers in the
  reference is *contained* in it (:func:`contained`).

Users: the bundled data's rebuild (TF peaks contained in the pre-training corpus or the held-out slice, the
held-out slice leaking into the corpus; ``dnalm_utils.data_rebuild``), the corpus records that repeat
another record and are kept out of train/validation/test splits (:func:`contained_records`, via
``dnalm_utils.corpus.split_corpus_records``) and the held-out records of ``ngram.held_out_order``.

Both strands are handled with canonical k-mers (``codec.canonical_kmer_codes``): a query window is found in
the reference iff its canonical code is among the reference's canonical codes.
"""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np

from . import codec
from .errors import ParameterError

__all__ = [
    "SCREEN_K",
    "CONTAINED_FRACTION",
    "kmer_index",
    "shared_fraction",
    "contained",
    "contained_records",
    "best_matches",
    "redundancy",
]

#: k-mer length of the screen (exact matches, both strands, ACGT only, case-insensitive).
SCREEN_K = 32
#: A sequence whose k-mers occur in a reference at this share or more is contained in it.
CONTAINED_FRACTION = 0.5


def _text(seq, what: str) -> str:
    if isinstance(seq, str):
        return seq
    inner = getattr(seq, "sequence", None)  # genome.FastaRecord / Window
    if isinstance(inner, str):
        return inner
    raise ParameterError(f"{what} must be a DNA sequence (str) or a record with a .sequence; got "
                         f"{type(seq).__name__}.")


def _check_fraction(min_shared: float) -> float:
    if not 0 < float(min_shared) <= 1:
        raise ParameterError(f"min_shared={min_shared} must lie in (0, 1]; the screen's default is "
                             f"CONTAINED_FRACTION = {CONTAINED_FRACTION}.")
    return float(min_shared)


def _canonical_windows(seq: str, k: int) -> np.ndarray:
    """(m,) uint64 canonical codes of the ACGT-only k-windows of ``seq``, one per window (repeats kept)."""
    values, valid = codec.canonical_kmer_codes(seq, k)
    return values[valid]


def kmer_index(sequences: str | Iterable[str], k: int = SCREEN_K) -> np.ndarray:
    """(m,) sorted unique uint64 canonical codes of every ACGT-only k-mer of ``sequences`` (both strands):
    the reference side of :func:`shared_fraction`, built once to screen many queries."""
    k = codec.check_k(k)
    if isinstance(sequences, str):
        sequences = [sequences]
    chunks = [np.unique(_canonical_windows(_text(s, "each reference sequence"), k)) for s in sequences]
    return np.unique(np.concatenate(chunks)) if chunks else np.zeros(0, np.uint64)


def _in_index(codes: np.ndarray, index: np.ndarray) -> np.ndarray:
    if index.size == 0:
        return np.zeros(codes.shape, bool)
    pos = np.searchsorted(index, codes).clip(max=index.size - 1)
    return index[pos] == codes


def shared_fraction(queries: Sequence[str], reference: Iterable[str] | np.ndarray, k: int = SCREEN_K) -> np.ndarray:
    """(n,) float64: for each of the n ``queries``, the share of its ACGT-only k-mer windows (every position)
    found exactly, on either strand, in ``reference`` (sequences, or a :func:`kmer_index` of them). NaN for a
    query without any ACGT-only k-mer (shorter than k, or N everywhere)."""
    k = codec.check_k(k)
    if isinstance(queries, str):
        raise ParameterError("shared_fraction(queries=...) takes a list of sequences; wrap one sequence in a list.")
    texts = [_text(q, "each query") for q in queries]
    index = reference if isinstance(reference, np.ndarray) else kmer_index(reference, k)
    if not texts:
        return np.zeros(0, np.float64)
    # One pass over all queries joined by N (so no window spans two queries).
    values, valid = codec.canonical_kmer_codes("N".join(texts), k)
    starts = np.cumsum([0] + [len(t) + 1 for t in texts[:-1]])
    owner = np.searchsorted(starts, np.arange(values.size), side="right") - 1
    found = valid & _in_index(values, index)
    total = np.bincount(owner[valid], minlength=len(texts)).astype(np.float64)
    hits = np.bincount(owner[found], minlength=len(texts)).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, hits / np.maximum(total, 1), np.nan)


def contained(queries: Sequence[str], reference: Iterable[str] | np.ndarray, k: int = SCREEN_K,
              min_shared: float = CONTAINED_FRACTION) -> np.ndarray:
    """(n,) bool: :func:`shared_fraction` >= ``min_shared`` (False where it is NaN)."""
    frac = shared_fraction(queries, reference, k)
    return np.nan_to_num(frac, nan=-1.0) >= _check_fraction(min_shared)


def contained_records(sequences: Mapping[str, str], *, k: int = SCREEN_K,
                      min_shared: float = CONTAINED_FRACTION) -> list[str]:
    """Names of the records that are contained in the others, in the order they were dropped.

    Going from the record with the fewest ACGT k-mers to the one with the most (ties: by name), a record is
    dropped when its :func:`shared_fraction` against the records still kept (the others, not itself) is at
    least ``min_shared``. Of two copies of the same DNA one is dropped and one kept; a record that lies
    inside a longer one is dropped. Splitting a corpus into training, validation and test blocks after
    dropping them keeps one stretch of DNA (e.g. a GenBank entry that lies inside another) from landing on
    both sides of a split. At least one record is always kept.
    """
    k = codec.check_k(k)
    min_shared = _check_fraction(min_shared)
    names = list(sequences)
    if len(names) < 2:
        return []
    uniq, mult = {}, {}
    for name in names:
        u, m = np.unique(_canonical_windows(_text(sequences[name], f"record {name!r}"), k), return_counts=True)
        uniq[name], mult[name] = u, m
    # holders[j]: how many kept records hold distinct k-mer j; dropping a record decrements its k-mers.
    universe, holders = np.unique(np.concatenate(list(uniq.values())), return_counts=True)
    where = {name: np.searchsorted(universe, u) for name, u in uniq.items()}
    dropped: list[str] = []
    for name in sorted(names, key=lambda n: (int(mult[n].sum()), n)):
        total = int(mult[name].sum())
        if total == 0 or len(names) - len(dropped) < 2:
            continue
        idx = where[name]
        shared = int(mult[name][holders[idx] >= 2].sum())
        if shared / total >= min_shared:
            dropped.append(name)
            holders[idx] -= 1
    return dropped


def best_matches(queries: Mapping[str, str], references: Mapping[str, str], k: int = SCREEN_K) -> dict[str, dict]:
    """For each query, the single reference with the largest :func:`shared_fraction`:
    ``{query: {"reference": name, "fraction": f}}`` (reference None, fraction 0.0 if none shares a k-mer;
    fraction rounded to 6 decimals)."""
    names = list(queries)
    out = {n: {"reference": None, "fraction": 0.0} for n in names}
    if not names:
        return out
    texts = [queries[n] for n in names]
    for ref_name, ref_seq in references.items():
        for n, f in zip(names, shared_fraction(texts, [ref_seq], k)):
            if np.isfinite(f) and f > out[n]["fraction"]:
                out[n] = {"reference": ref_name, "fraction": round(float(f), 6)}
    return out


def redundancy(names: Sequence[str], seqs: Sequence[str], k: int = SCREEN_K) -> dict[str, dict]:
    """Within-corpus redundancy table (descriptive, recorded in the bundled data's manifest): for each
    sequence, the share of its *distinct* canonical k-mers found in any other sequence
    (``shared_with_others``), the other sequence sharing the most (``most_shared_with``) and that share
    (``most_shared_fraction``), rounded to 6 decimals.

    Unlike :func:`shared_fraction` it counts each distinct k-mer once (a k-mer repeated inside a record
    counts once); the manifest has recorded it that way since the data were first bundled, and a rebuild
    must reproduce the manifest byte for byte. Decisions (what is contained in what) use
    :func:`shared_fraction` / :func:`contained_records`.
    """
    k = codec.check_k(k)
    sets = [np.unique(_canonical_windows(_text(s, "each sequence"), k)) for s in seqs]
    out = {}
    for i, (name, si) in enumerate(zip(names, sets)):
        best, best_frac, any_hit = None, 0.0, np.zeros(len(si), bool)
        for j, sj in enumerate(sets):
            if i == j or not len(si) or not len(sj):
                continue
            hit = _in_index(si, sj)
            any_hit |= hit
            frac = float(hit.mean())
            if frac > best_frac:
                best, best_frac = names[j], frac
        out[name] = {
            "shared_with_others": round(float(any_hit.mean()) if len(si) else 0.0, 6),
            "most_shared_with": best,
            "most_shared_fraction": round(best_frac, 6),
        }
    return out
