"""Sequence classes of real DNA: tandem repeats, low-complexity sequence, and the rest.

Where does real DNA hold context that a masked model could use? Periodic sequence (tandem repeats) predicts a
hidden letter from a copy one period away; low-complexity sequence is predictable from composition alone. This
module labels every nucleotide of a set of records with one class and splits chapter 3's hidden-nucleotide items
and chapter 7's dependency summaries by the class of what was hidden.

Classes (:data:`CLASSES`, codes 0, 1, 2 in this order of precedence; a position in several gets the first):

* ``"tandem repeat"`` (code 0): exact tandem repeats found with ``pytrf`` (1.5.0):

  - microsatellites, motifs of 1-6 nt, with :class:`pytrf.STRFinder` at its default minimum repeat numbers
    (12, 7, 5, 4, 4, 4 copies for mono- ... hexanucleotide motifs);
  - longer motifs, ``gtr_motif`` = 7-30 nt by default, with :class:`pytrf.GTRFinder` (at least ``gtr_min_repeat``
    = 3 copies and ``gtr_min_length`` = 10 nt, pytrf's defaults; the motif range starts above STRFinder's so the
    two do not overlap and the microsatellites keep STRFinder's stricter copy numbers);
  - optionally (``approximate=True``) imperfect repeats of 1-6 nt motifs with :class:`pytrf.ATRFinder` at pytrf's
    defaults (seed of 3 copies and 10 nt, extended while identity >= ``atr_min_identity`` = 70 %). Off by
    default: on the bundled held-out region it triples the class (measured in the module's report).

  pytrf reports 1-based inclusive ``start``/``end``; they are converted to 0-based half-open ``[start - 1, end)``
  (checked on a planted repeat in the tests).
* ``"low complexity"`` (code 1): the symmetric DUST algorithm (``pydustmasker`` 3.3.0, :class:`DustMasker` with
  ``window_size`` = ``dust_window`` = 64 and ``score_threshold`` = ``dust_threshold`` = 20, the library's
  defaults); its ``intervals`` are 0-based half-open (checked in the tests).
* ``"other"`` (code 2): ACGT positions in neither.
* :data:`NOT_ACGT` (code 3, ``"not ACGT"``): N and other non-ACGT letters. Only the maximal ACGT runs of a record
  are searched (split on every non-ACGT letter, case ignored), so no repeat or DUST interval spans an N; runs
  shorter than 4 nt (DUST's minimum) are left "other" for DUST.

Classes are strand-independent: records are classified on their '+' strand, and a window drawn on strand '-'
(its sequence reverse-complemented) takes the classes of the genome positions it covers, window offset ``o``
being genome position ``end - 1 - o`` (:func:`window_position_classes`).

Tables: :func:`class_summary` (composition of the records), :func:`split_items_by_class` (hidden-nucleotide
accuracy per class with bootstrap intervals and the paired difference to a reference),
:func:`split_dependency_by_class` (beyond-band and copy-band dependency per target class), and one sentence
:func:`class_of_windows_text`.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from .dependency_maps import target_band_means
from .errors import ParameterError, check_int_range
from .genome import acgt_segments

#: The sequence classes in order of precedence (codes 0, 1, 2).
CLASSES = ("tandem repeat", "low complexity", "other")
#: Class name of N and other non-ACGT positions (code 3); never the class of a hidden block of an ACGT window.
NOT_ACGT = "not ACGT"
#: Every code's name: ``CODE_NAMES[code]``.
CODE_NAMES = CLASSES + (NOT_ACGT,)
TANDEM, LOW_COMPLEXITY, OTHER, N_CODE = 0, 1, 2, 3

#: Default thresholds (the libraries' defaults; the GTR motif range starts above STRFinder's hexanucleotides).
DEFAULTS = {
    "str_min_repeats": (12, 7, 5, 4, 4, 4),
    "gtr_motif": (7, 30),
    "gtr_min_repeat": 3,
    "gtr_min_length": 10,
    "approximate": False,
    "atr_min_identity": 70.0,
    "dust_window": 64,
    "dust_threshold": 20,
}


# ------------------------------------------------------------------------------------------------
# Classifying sequence
# ------------------------------------------------------------------------------------------------
def _check_parameters(str_min_repeats, gtr_motif, gtr_min_repeat, gtr_min_length, atr_min_identity, dust_window,
                      dust_threshold) -> tuple:
    reps = tuple(str_min_repeats)
    if len(reps) != 6:
        raise ParameterError(f"str_min_repeats={str_min_repeats!r}: pass 6 minimum copy numbers, for mono- to "
                             "hexanucleotide motifs, e.g. (12, 7, 5, 4, 4, 4) (pytrf's defaults).")
    reps = tuple(check_int_range("str_min_repeats", r, 2) for r in reps)
    motif = tuple(gtr_motif)
    if len(motif) != 2:
        raise ParameterError(f"gtr_motif={gtr_motif!r}: pass (shortest, longest) motif length in nt, e.g. (7, 30).")
    lo = check_int_range("gtr_motif", motif[0], 1, hint="Shortest motif of the generic finder, e.g. 7.")
    hi = check_int_range("gtr_motif", motif[1], lo, hint="Longest motif, at least the shortest, e.g. 30.")
    gtr_min_repeat = check_int_range("gtr_min_repeat", gtr_min_repeat, 2, hint="pytrf's default is 3.")
    gtr_min_length = check_int_range("gtr_min_length", gtr_min_length, 1, hint="pytrf's default is 10 nt.")
    if not 0 < float(atr_min_identity) <= 100:
        raise ParameterError(f"atr_min_identity={atr_min_identity!r}: pass a percentage in (0, 100], e.g. 70.")
    dust_window = check_int_range("dust_window", dust_window, 4, hint="DUST's window in nt; its default is 64.")
    dust_threshold = check_int_range("dust_threshold", dust_threshold, 1, hint="DUST's default score threshold is 20.")
    return reps, (lo, hi), gtr_min_repeat, gtr_min_length, float(atr_min_identity), dust_window, dust_threshold


def classify_sequence(seq: str, *, str_min_repeats: Sequence[int] = DEFAULTS["str_min_repeats"],
                      gtr_motif: tuple[int, int] = DEFAULTS["gtr_motif"],
                      gtr_min_repeat: int = DEFAULTS["gtr_min_repeat"],
                      gtr_min_length: int = DEFAULTS["gtr_min_length"],
                      approximate: bool = DEFAULTS["approximate"],
                      atr_min_identity: float = DEFAULTS["atr_min_identity"],
                      dust_window: int = DEFAULTS["dust_window"],
                      dust_threshold: int = DEFAULTS["dust_threshold"]) -> np.ndarray:
    """(len(seq),) uint8 class code per position (:data:`CODE_NAMES`): 0 tandem repeat > 1 low complexity > 2 other
    (precedence in that order), 3 for non-ACGT letters. Case is ignored; each maximal ACGT run is searched on its
    own. Parameters as in the module docstring (defaults: :data:`DEFAULTS`; :func:`describe_parameters` states
    them in words)."""
    import pydustmasker
    import pytrf

    if not isinstance(seq, str):
        raise ParameterError(f"seq must be a DNA string, got {type(seq).__name__}.")
    reps, (lo, hi), gtr_min_repeat, gtr_min_length, atr_min_identity, dust_window, dust_threshold = \
        _check_parameters(str_min_repeats, gtr_motif, gtr_min_repeat, gtr_min_length, atr_min_identity,
                          dust_window, dust_threshold)
    seq = seq.upper()
    codes = np.full(len(seq), N_CODE, dtype=np.uint8)
    if not seq:
        return codes
    tandem = np.zeros(len(seq) + 1, dtype=np.int64)
    low = np.zeros(len(seq) + 1, dtype=np.int64)
    for a, b in acgt_segments(seq).tolist():
        codes[a:b] = OTHER
        part = seq[a:b]
        found = pytrf.STRFinder("s", part, *reps).as_list()
        found += pytrf.GTRFinder("s", part, min_motif=lo, max_motif=hi, min_repeat=gtr_min_repeat,
                                 min_length=gtr_min_length).as_list()
        if approximate:
            found += pytrf.ATRFinder("s", part, min_identity=atr_min_identity).as_list()
        for row in found:  # pytrf: 1-based inclusive [start, end] -> 0-based half-open [start - 1, end)
            tandem[a + row[1] - 1] += 1
            tandem[a + row[2]] -= 1
        if b - a >= 4:  # DustMasker refuses shorter sequences
            for s, e in pydustmasker.DustMasker(part, window_size=dust_window, score_threshold=dust_threshold).intervals:
                low[a + s] += 1
                low[a + e] -= 1
    acgt = codes == OTHER
    codes[acgt & (np.cumsum(low[:-1]) > 0)] = LOW_COMPLEXITY
    codes[acgt & (np.cumsum(tandem[:-1]) > 0)] = TANDEM
    return codes


def describe_parameters(**overrides) -> str:
    """One sentence stating how the classes were found (thresholds of :func:`classify_sequence`, defaults
    :data:`DEFAULTS` unless overridden by the same keyword arguments), for a page's method paragraph."""
    unknown = sorted(set(overrides) - set(DEFAULTS))
    if unknown:
        raise ParameterError(f"describe_parameters: unknown parameter(s) {unknown}; allowed: {sorted(DEFAULTS)}.")
    p = {**DEFAULTS, **overrides}
    reps, (lo, hi), mr, ml, ident, win, thr = _check_parameters(
        p["str_min_repeats"], p["gtr_motif"], p["gtr_min_repeat"], p["gtr_min_length"], p["atr_min_identity"],
        p["dust_window"], p["dust_threshold"])
    text = (f"Tandem repeats are exact repeats found with pytrf: microsatellites of 1-6 nt motifs with at least "
            f"{'/'.join(map(str, reps))} copies (STRFinder) and motifs of {lo}-{hi} nt with at least {mr} copies "
            f"over at least {ml} nt (GTRFinder)")
    if p["approximate"]:
        text += f", and imperfect repeats of 1-6 nt motifs at least {ident:g} % identical (ATRFinder)"
    text += (f"; low-complexity sequence is what DUST masks (pydustmasker, window {win} nt, score threshold {thr}) "
             "outside tandem repeats; everything else on A, C, G, T is \"other\".")
    return text


def classify_records(records: Mapping[str, str], **parameters) -> dict[str, np.ndarray]:
    """{record name: (len(seq),) uint8 class codes} for ``{name: sequence}`` (:func:`classify_sequence` on each,
    with the same keyword ``parameters``)."""
    if not hasattr(records, "items"):
        raise ParameterError(f"records must map record name -> sequence (e.g. data.load_sequences('heldout')), "
                             f"got {type(records).__name__}.")
    return {name: classify_sequence(seq, **parameters) for name, seq in records.items()}


def class_summary(classes_by_record: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """Composition of the classified records: one row per class of :data:`CLASSES` and one for :data:`NOT_ACGT`.

    Columns: class, nucleotides (count over all records), share (of the A/C/G/T nucleotides; NaN for the
    not-ACGT row), share_of_all (of every position)."""
    codes = _as_code_map(classes_by_record)
    counts = np.zeros(len(CODE_NAMES), dtype=np.int64)
    for c in codes.values():
        counts += np.bincount(c, minlength=len(CODE_NAMES))[: len(CODE_NAMES)]
    total, acgt = int(counts.sum()), int(counts[: len(CLASSES)].sum())
    share = [counts[i] / acgt if acgt else np.nan for i in range(len(CLASSES))] + [np.nan]
    return pd.DataFrame({"class": list(CODE_NAMES), "nucleotides": counts,
                         "share": share, "share_of_all": counts / total if total else np.nan})


def class_of_windows_text(summary: pd.DataFrame, *, what: str = "held out") -> str:
    """One sentence on the composition in ``summary`` (:func:`class_summary`), e.g. "Of the 1,000,000 nt held out,
    900,000 are A, C, G or T (the other 100,000 are N); of these, 1.1 % lie in tandem repeats, 4.5 % in
    low-complexity sequence (DUST) and the rest (94.4 %) in neither." Every number is read from ``summary``."""
    need = {"class", "nucleotides"}
    if not isinstance(summary, pd.DataFrame) or not need <= set(summary.columns):
        raise ParameterError("summary must be the DataFrame of class_summary(...) (columns class, nucleotides).")
    n = dict(zip(summary["class"], summary["nucleotides"].astype(int)))
    missing = [c for c in CODE_NAMES if c not in n]
    if missing:
        raise ParameterError(f"summary lacks the class rows {missing}; pass class_summary(...) unchanged.")
    total, acgt = sum(n[c] for c in CODE_NAMES), sum(n[c] for c in CLASSES)
    if acgt == 0:
        return f"Of the {total:,} nt {what}, none is A, C, G or T."

    def pct(c):
        return f"{100 * n[c] / acgt:.1f} %"

    head = f"Of the {total:,} nt {what}"
    if n[NOT_ACGT]:
        head += f", {acgt:,} are A, C, G or T (the other {n[NOT_ACGT]:,} are N or other ambiguity codes); of these"
    return (f"{head}, {pct('tandem repeat')} lie in tandem repeats, {pct('low complexity')} in low-complexity "
            f"sequence (DUST) and the rest ({pct('other')}) in neither.")


# ------------------------------------------------------------------------------------------------
# Windows and hidden blocks
# ------------------------------------------------------------------------------------------------
def _as_code_map(classes_by_record) -> dict[str, np.ndarray]:
    if not hasattr(classes_by_record, "items"):
        raise ParameterError("classes_by_record must map record name -> class codes (classify_records(...)).")
    out = {}
    for name, c in classes_by_record.items():
        c = np.asarray(c)
        if c.ndim != 1 or (c.size and (c.dtype.kind not in "ui" or c.max() >= len(CODE_NAMES))):
            raise ParameterError(f"classes_by_record[{name!r}] is not a 1-D array of class codes 0..3; pass the "
                                 "output of classify_records(...).")
        out[name] = c.astype(np.uint8, copy=False)
    return out


def _window_coordinates(w: int, win) -> tuple[str, int, int, str]:
    """(name, start, end, strand) of ``windows[w]``, a :class:`genome.Window`-like record; a sequence or a bad
    strand is refused with the index named."""
    try:
        name, start, end, strand = win.name, int(win.start), int(win.end), win.strand
    except AttributeError:
        raise ParameterError(f"windows[{w}] is a {type(win).__name__}; pass genome.Window records "
                             "(data.evaluation_window_records), not sequences.") from None
    if strand not in ("+", "-"):
        raise ParameterError(f"windows[{w}].strand={strand!r}: must be '+' or '-'.")
    return name, start, end, strand


def window_position_classes(classes_by_record: Mapping[str, np.ndarray], windows) -> list[np.ndarray]:
    """Per window, the (L,) uint8 class codes of its positions in window order: ``codes[name][start:end]`` on
    strand '+', reversed on strand '-' (window offset o is genome position end - 1 - o).

    windows: :class:`genome.Window` objects (or anything with name, start, end, strand), e.g. from
    ``data.evaluation_window_records``, whose names are keys of ``classes_by_record``."""
    codes = _as_code_map(classes_by_record)
    out = []
    for w, win in enumerate(windows):
        name, start, end, strand = _window_coordinates(w, win)
        if name not in codes:
            raise ParameterError(f"windows[{w}] lies on record {name!r}, which classes_by_record does not hold; "
                                 f"classify the records the windows were drawn from (holds: {sorted(codes)[:5]}).")
        if not 0 <= start < end <= codes[name].size:
            raise ParameterError(f"windows[{w}] = [{start}, {end}) is outside record {name!r} "
                                 f"({codes[name].size:,} nt); windows must come from the classified records.")
        c = codes[name][start:end]
        out.append(c[::-1].copy() if strand == "-" else c.copy())
    return out


def window_block_classes(classes_by_record: Mapping[str, np.ndarray], windows, blocks) -> np.ndarray:
    """(n_windows,) class name of each window's hidden block: the highest-precedence class among its nucleotides
    (tandem repeat > low complexity > other).

    blocks: (n_windows, 2) int [start, end) offsets within each window (in window order, i.e. on the window's own
    strand; e.g. ``masking.span_hidden_blocks(...)[m]``). A block that touches a non-ACGT position is an error
    (evaluation windows are ACGT-only)."""
    return block_classes(window_position_classes(classes_by_record, windows), blocks)


def block_classes(position_codes: Sequence[np.ndarray], blocks) -> np.ndarray:
    """(n_windows,) class name of each window's block ``[start, end)``: the highest-precedence class among its
    positions. position_codes: one (L,) uint8 code array per window, in window order
    (:func:`window_position_classes` or :func:`classify_windows`); blocks: (n_windows, 2) int offsets."""
    blocks = np.asarray(blocks)
    position_codes = list(position_codes)
    if blocks.ndim != 2 or blocks.shape[1] != 2 or blocks.dtype.kind not in "ui":
        raise ParameterError(f"blocks has shape {blocks.shape} ({blocks.dtype}); pass (n_windows, 2) integer "
                             "[start, end) offsets within each window.")
    if blocks.shape[0] != len(position_codes):
        raise ParameterError(f"blocks has {blocks.shape[0]} rows for {len(position_codes)} windows; pass one block "
                             "per window.")
    names = np.array(CODE_NAMES, dtype=object)
    out = np.empty(len(position_codes), dtype=object)
    for w, (c, (s, e)) in enumerate(zip(position_codes, blocks.tolist())):
        c = np.asarray(c)
        if not 0 <= s < e <= c.size:
            raise ParameterError(f"blocks[{w}] = [{s}, {e}) is outside its window of {c.size} nt; blocks are "
                                 "0-based half-open offsets with 0 <= start < end <= window length.")
        if (c[s:e] == N_CODE).any():
            raise ParameterError(f"blocks[{w}] touches a non-ACGT position of windows[{w}]; evaluation windows "
                                 "must be ACGT-only (sample_windows).")
        out[w] = names[int(c[s:e].min())]
    return out.astype(str)


#: Flank classified on each side of a window by :func:`classify_windows` (nt).
DEFAULT_PAD = 256


def classify_windows(genome, windows, *, pad: int = DEFAULT_PAD, **parameters) -> list[np.ndarray]:
    """Per window, the (L,) uint8 class codes of its positions in window order, found by classifying the window
    with ``pad`` nt of its record on each side (clipped at the record's ends) instead of whole records, so that a
    genome-sized FASTA costs only its windows (about (L + 2 pad) nt each).

    genome: the :class:`genome.Genome` the windows were drawn from (``data.evaluation_genome``); windows:
    :class:`genome.Window` records (``data.evaluation_window_records``); parameters: those of
    :func:`classify_sequence`. Equals :func:`window_position_classes` on whole-record classes for every window
    whose repeats and DUST intervals (and the DUST windows deciding them) lie within ``pad`` nt of it; a repeat
    longer than the pad is found from the part inside, so only its copy count near the edge can differ."""
    pad = check_int_range("pad", pad, 0, hint="Flank in nt classified on each side of a window, e.g. 256.")
    out = []
    for w, win in enumerate(windows):
        name, start, end, strand = _window_coordinates(w, win)
        if name not in genome:
            raise ParameterError(f"windows[{w}] lies on record {name!r}, which the genome does not hold; pass the "
                                 "genome the windows were drawn from (data.evaluation_genome(fasta, region)).")
        lo, hi = max(0, start - pad), min(genome.lengths[name], end + pad)
        codes = classify_sequence(genome.fetch(name, lo, hi), **parameters)[start - lo:end - lo]
        out.append(codes[::-1].copy() if strand == "-" else codes)
    return out


def stratified_evaluation_windows(n_candidates: int, window_nt: int, n_per_class: int, *, seed: int, fasta="",
                                  region: str = "", classes: Sequence[str] = CLASSES, pad: int = DEFAULT_PAD):
    """Held-out windows for a probe that can afford few: ``n_candidates`` windows of ``window_nt`` nt drawn with
    ``seed`` from ``data.evaluation_genome(fasta, region)``, then up to ``n_per_class`` per sequence class picked
    among them (:func:`stratify_windows`). Returns (picked windows, the strata table, number of candidates drawn,
    where they come from, e.g. ``"chr22:20000001-21000000"``)."""
    from .data import evaluation_genome, evaluation_window_records

    candidates, where = evaluation_window_records(n_candidates, window_nt, seed=seed, fasta=fasta, region=region)
    picked, strata = stratify_windows(evaluation_genome(fasta, region), candidates, n_per_class, classes=classes, pad=pad)
    return picked, strata, len(candidates), where


def stratify_windows(genome, candidates, n_per_class: int, *, classes: Sequence[str] = CLASSES, pad: int = DEFAULT_PAD,
                     **parameters):
    """Pick up to ``n_per_class`` windows per sequence class from ``candidates`` (:class:`genome.Window` records drawn
    at random, e.g. ``data.evaluation_window_records``), so that a probe that can afford few windows (dependency
    maps) still has targets in rare classes. Classes are served in ``classes`` order; each takes, among the
    candidates not yet taken, those with the largest share of their positions in it (:func:`classify_windows`;
    ties: draw order, so where many windows are wholly of one class the choice is as random as the draw). A class
    no candidate touches gets none.

    Returns (the picked windows, grouped by class in ``classes`` order; DataFrame class, candidates (windows holding
    at least one position of that class), picked, share (mean share of the picked windows' positions in it))."""
    n_per_class = check_int_range("n_per_class", n_per_class, 1, hint="Windows kept per sequence class, e.g. 2.")
    unknown = [c for c in classes if c not in CLASSES]
    if unknown or not len(classes):
        raise ParameterError(f"classes={list(classes)}: use some of {list(CLASSES)}.")
    candidates = list(candidates)
    codes = classify_windows(genome, candidates, pad=pad, **parameters)
    picked, rows, taken = [], [], set()
    for name in classes:
        code = CLASSES.index(name)
        share = np.array([float(np.mean(c == code)) if len(c) else 0.0 for c in codes])
        order = sorted((i for i in range(len(codes)) if i not in taken and share[i] > 0), key=lambda i: (-share[i], i))
        keep = order[:n_per_class]
        taken.update(keep)
        picked += [candidates[i] for i in keep]
        rows.append({"class": name, "candidates": int((share > 0).sum()), "picked": len(keep),
                     "share": float(share[keep].mean()) if keep else float("nan")})
    return picked, pd.DataFrame(rows)


def position_summary(position_codes: Sequence[np.ndarray]) -> pd.DataFrame:
    """:func:`class_summary` of the positions of some windows (e.g. :func:`classify_windows`), counted once per
    window position (windows that overlap count their shared nucleotides twice)."""
    return class_summary({str(i): np.asarray(c, dtype=np.uint8) for i, c in enumerate(position_codes)})


# ------------------------------------------------------------------------------------------------
# Splitting chapter 3's items and chapter 7's dependency summaries
# ------------------------------------------------------------------------------------------------
def _check_confidence(confidence) -> float:
    if not isinstance(confidence, (int, float)) or not 0 < confidence < 1:
        raise ParameterError(f"confidence={confidence!r}: pass a level between 0 and 1, e.g. 0.95.")
    return float(confidence)


def _check_class_names(name: str, values) -> np.ndarray:
    values = np.asarray(values, dtype=object)
    if values.ndim != 1:
        raise ParameterError(f"{name} must be 1-D (one class name per window), got shape {values.shape}.")
    bad = sorted({str(v) for v in values.tolist() if v not in CLASSES})
    if bad:
        raise ParameterError(f"{name} holds unknown class name(s) {bad[:5]}; allowed: {list(CLASSES)} "
                             "(window_block_classes gives them).")
    return values.astype(str)


def _cluster_bootstrap(sums: np.ndarray, counts: np.ndarray, *, confidence: float, n_boot: int, seed: int
                       ) -> tuple[float, float, float]:
    """(mean, low, high): ratio sum(sums) / sum(counts) and its percentile bootstrap interval resampling the
    clusters (rows) with replacement; clusters with count 0 carry no items. (NaN, NaN, NaN) without items;
    no interval with fewer than two clusters holding items."""
    sums, counts = np.asarray(sums, dtype=np.float64), np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    if total == 0:
        return np.nan, np.nan, np.nan
    mean = float(sums.sum() / total)
    if int((counts > 0).sum()) < 2:
        return mean, np.nan, np.nan
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, sums.size, size=(n_boot, sums.size))
    num, den = sums[idx].sum(axis=1), counts[idx].sum(axis=1)
    ratios = num[den > 0] / den[den > 0]
    tail = (1 - confidence) / 2
    low, high = np.quantile(ratios, [tail, 1 - tail])
    return mean, float(low), float(high)


def _block_class_by_m(block_class, ms) -> dict:
    if isinstance(block_class, Mapping):
        missing = [m for m in ms if m not in block_class]
        if missing:
            raise ParameterError(f"block_class has no classes for m = {missing}; pass {{m: window_block_classes(..., "
                                 "blocks_by_m[m])}} for every m of items, or one array for all.")
        return {m: _check_class_names(f"block_class[{m}]", block_class[m]) for m in ms}
    one = _check_class_names("block_class", block_class)
    return {m: one for m in ms}


def split_items_by_class(items: pd.DataFrame, block_class, *, reference: str = "two-sided n-gram",
                         confidence: float = 0.95, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Hidden-nucleotide accuracy per (m, h, model, class), with the paired difference to ``reference``.

    items: chapter 3's long table (:func:`masking.hidden_nucleotide_items`: model, m, h, window, accuracy, bits;
    the references are models "two-sided n-gram" and "corpus base frequencies"). block_class: (n_windows,)
    class names of each window's hidden block (:func:`window_block_classes`), or ``{m: (n_windows,) names}`` when
    the blocks differ by m (they do: ``span_hidden_blocks`` draws per m).

    Returns one row per (m, h, model, class) with every class of :data:`CLASSES` (count 0 and NaN where no
    window falls in it): m, h, model, class, windows (count), accuracy (mean over windows of the per-window
    accuracy), accuracy_low/accuracy_high (percentile bootstrap over windows, ``n_boot`` resamples, generator
    seeded with ``seed``), bits (mean), reference, difference (mean over windows of model - reference accuracy,
    paired on the same windows; NaN for the reference itself), difference_low/difference_high (paired
    t-interval, :func:`stats.compare_paired`), p (its unadjusted two-sided p-value: exact McNemar on 0/1
    accuracies, paired t otherwise), pairs, confidence."""
    from .stats import compare_paired

    need = {"model", "m", "h", "window", "accuracy", "bits"}
    if not isinstance(items, pd.DataFrame) or not need <= set(items.columns):
        have = list(items.columns) if isinstance(items, pd.DataFrame) else type(items).__name__
        raise ParameterError(f"items must be masking.hidden_nucleotide_items(...) with columns {sorted(need)}; "
                             f"got {have}.")
    confidence = _check_confidence(confidence)
    n_boot = check_int_range("n_boot", n_boot, 1, hint="Bootstrap resamples, e.g. 2000.")
    seed = check_int_range("seed", seed, 0, hint="Pass a fixed non-negative integer.")
    if reference not in set(items["model"]):
        raise ParameterError(f"reference={reference!r} is not a model of items; pass one of "
                             f"{sorted(set(items['model']))} (e.g. 'two-sided n-gram').")
    ms = sorted(items["m"].unique().tolist())
    classes = _block_class_by_m(block_class, ms)
    rows = []
    for (m, h), part in items.groupby(["m", "h"], sort=True):
        cls = classes[m]
        n_windows = cls.size
        windows = part["window"].to_numpy()
        if windows.min() < 0 or windows.max() >= n_windows:
            raise ParameterError(f"items of m = {m} refer to windows up to {windows.max()}, but block_class"
                                 f"{'[' + str(m) + ']' if isinstance(block_class, Mapping) else ''} has "
                                 f"{n_windows} entries; pass one class per window (mismatched lengths).")
        ref = part[part["model"] == reference]
        if ref.empty:
            raise ParameterError(f"reference={reference!r} has no items for m = {m}; it must be scored on every m.")
        ref_acc = np.full(n_windows, np.nan)
        ref_acc[ref["window"].to_numpy()] = ref["accuracy"].to_numpy(dtype=np.float64)
        for model, mp in part.groupby("model", sort=False):
            if mp["window"].duplicated().any():
                raise ParameterError(f"items hold model {model!r}, m = {m} twice for a window; pass one row per "
                                     "(model, m, window).")
            acc = np.full(n_windows, np.nan)
            bits = np.full(n_windows, np.nan)
            acc[mp["window"].to_numpy()] = mp["accuracy"].to_numpy(dtype=np.float64)
            bits[mp["window"].to_numpy()] = mp["bits"].to_numpy(dtype=np.float64)
            for c in CLASSES:
                sel = (cls == c) & ~np.isnan(acc)
                a = acc[sel]
                mean, low, high = _cluster_bootstrap(a, np.ones(a.size), confidence=confidence, n_boot=n_boot,
                                                     seed=seed)
                row = {"m": m, "h": h, "model": model, "class": c, "windows": int(a.size), "accuracy": mean,
                       "accuracy_low": low, "accuracy_high": high,
                       "bits": float(bits[sel].mean()) if a.size else np.nan, "reference": reference,
                       "difference": np.nan, "difference_low": np.nan, "difference_high": np.nan, "p": np.nan,
                       "pairs": 0, "confidence": confidence}
                if model != reference and a.size:
                    comp = compare_paired(a, ref_acc[sel], alpha=1 - confidence, unit="windows")
                    row.update(difference=comp.estimate, difference_low=comp.low, difference_high=comp.high,
                               p=comp.p, pairs=comp.n)
                rows.append(row)
    out = pd.DataFrame(rows)
    out["class"] = pd.Categorical(out["class"], categories=list(CLASSES), ordered=True)
    out = out.sort_values(["m", "h", "model", "class"], kind="stable").reset_index(drop=True)
    out["class"] = out["class"].astype(str)
    out.attrs.update(accuracy_interval="percentile bootstrap over windows", difference_interval="paired t over windows",
                     n_boot=n_boot, seed=seed)
    return out


def split_dependency_by_class(maps, target_classes, *, k: int, confidence: float = 0.95, n_boot: int = 2000,
                              seed: int = 0) -> pd.DataFrame:
    """Dependency on far and near positions, by the class of the target (predicted) nucleotide.

    maps: dependency maps (:mod:`dependency_maps`: one (L, L) [query i, target j] map, an (n, L, L) array or a
    list; NaN where undefined). target_classes: one (L,) array of class names per map (the class of each target
    position; the uint8 codes of :func:`window_position_classes` are accepted too). Per target j,
    :func:`dependency_maps.target_band_means` gives beyond (mean over |i - j| >= k) and copy_band (mean over
    1 <= |i - j| <= k - 1), in bits.

    Returns one row per class of :data:`CLASSES`: class, targets (targets with a measured beyond-band mean),
    windows (maps holding such a target), beyond (mean over those targets), beyond_low/beyond_high, copy_band
    (mean over targets with a measured copy-band mean), copy_band_low/copy_band_high, k, confidence, n_boot,
    seed. Intervals: percentile bootstrap resampling whole windows (targets of one window are not independent),
    ``n_boot`` resamples from a generator seeded with ``seed``. A class without targets: 0 and NaN."""
    k = check_int_range("k", k, 1, hint="Token length: k for k-mers, 1 for nucleotide tokens (copy_band_k).")
    confidence = _check_confidence(confidence)
    n_boot = check_int_range("n_boot", n_boot, 1, hint="Bootstrap resamples, e.g. 2000.")
    seed = check_int_range("seed", seed, 0, hint="Pass a fixed non-negative integer.")
    per_target = target_band_means(maps, k=k)
    n_maps = int(per_target["window"].max()) + 1
    lengths = per_target.groupby("window")["target"].size().to_numpy()
    target_classes = list(target_classes) if not isinstance(target_classes, np.ndarray) or target_classes.ndim != 1 \
        else [target_classes]
    if len(target_classes) != n_maps:
        raise ParameterError(f"target_classes has {len(target_classes)} arrays for {n_maps} maps; pass one (L,) "
                             "array of class names per map.")
    labels = []
    for w, tc in enumerate(target_classes):
        tc = np.asarray(tc)
        if tc.dtype.kind in "ui" and tc.size and tc.max() < len(CODE_NAMES):  # codes of window_position_classes
            tc = np.array(CODE_NAMES, dtype=object)[tc]
        tc = _check_class_names(f"target_classes[{w}]", tc)
        if tc.size != lengths[w]:
            raise ParameterError(f"target_classes[{w}] has {tc.size} entries but map {w} is {lengths[w]} x "
                                 f"{lengths[w]}; pass one class per position of the window (mismatched lengths).")
        labels.append(tc)
    per_target["class"] = np.concatenate(labels)
    rows = []
    for c in CLASSES:
        row = {"class": c}
        sub = per_target[per_target["class"] == c]
        for band in ("beyond", "copy_band"):
            ok = sub[sub[band].notna()]
            sums = ok.groupby("window")[band].sum().reindex(range(n_maps), fill_value=0.0).to_numpy()
            counts = ok.groupby("window")[band].size().reindex(range(n_maps), fill_value=0).to_numpy()
            mean, low, high = _cluster_bootstrap(sums, counts, confidence=confidence, n_boot=n_boot, seed=seed)
            if band == "beyond":
                row.update(targets=int(counts.sum()), windows=int((counts > 0).sum()))
            row.update({band: mean, f"{band}_low": low, f"{band}_high": high})
        row.update(k=k, confidence=confidence, n_boot=n_boot, seed=seed)
        rows.append(row)
    cols = ["class", "targets", "windows", "beyond", "beyond_low", "beyond_high", "copy_band", "copy_band_low",
            "copy_band_high", "k", "confidence", "n_boot", "seed"]
    return pd.DataFrame(rows)[cols]


__all__ = [
    "CLASSES",
    "NOT_ACGT",
    "CODE_NAMES",
    "DEFAULTS",
    "classify_sequence",
    "stratified_evaluation_windows",
    "describe_parameters",
    "classify_records",
    "class_summary",
    "class_of_windows_text",
    "window_position_classes",
    "window_block_classes",
    "block_classes",
    "DEFAULT_PAD",
    "classify_windows",
    "stratify_windows",
    "position_summary",
    "class_split_sentence",
    "split_items_by_class",
    "split_dependency_by_class",
]


def class_split_sentence(by_class: pd.DataFrame, *, h: int | None = None,
                         other_references: Sequence[str] = ("corpus base frequencies",)) -> str:
    """Sentences on :func:`split_items_by_class` for one block length ``h`` (default: the smallest): per class,
    how many windows, the reference's accuracy with its interval, and the models whose paired difference to the
    reference has an interval above 0, below 0, or containing 0, the largest margin named. Rows of
    ``other_references`` (baselines that are not models) are left out. Every number is read from ``by_class``."""
    need = {"h", "model", "class", "windows", "accuracy", "accuracy_low", "accuracy_high", "reference",
            "difference", "difference_low", "difference_high"}
    if not isinstance(by_class, pd.DataFrame) or not need <= set(by_class.columns):
        raise ParameterError("by_class must be the DataFrame of split_items_by_class(...).")
    if by_class.empty:
        return "No hidden-nucleotide items to split by sequence class."
    hs = sorted(by_class["h"].unique().tolist())
    h = hs[0] if h is None else h
    if h not in hs:
        raise ParameterError(f"h={h!r} is not a block length of by_class; pass one of {hs}.")
    part = by_class[by_class["h"] == h]
    reference = str(part["reference"].iloc[0])
    m = int(part["m"].iloc[0]) if "m" in part else None

    def pct(x):
        return f"{100 * x:.1f} %"

    def pts(x):
        return f"{100 * x:+.1f}"

    out = []
    for c in CLASSES:
        sub = part[part["class"] == c]
        ref = sub[sub["model"] == reference]
        n = int(ref["windows"].iloc[0]) if len(ref) else 0
        if n == 0:
            out.append(f"No hidden block lies in {c} sequence.")
            continue
        r = ref.iloc[0]
        models = sub[(sub["model"] != reference) & ~sub["model"].isin(list(other_references)) & (sub["windows"] > 0)
                     & sub["difference"].notna()]
        text = (f"In {c} sequence ({n:,} windows) the {reference} is right {pct(r.accuracy)} "
                f"[{pct(r.accuracy_low)}, {pct(r.accuracy_high)}] of the time")
        if len(models):
            above = models[models["difference_low"] > 0]
            below = models[models["difference_high"] < 0]
            best = models.loc[models["difference"].idxmax()]
            text += (f"; above it (interval of the paired difference above 0): "
                     f"{', '.join(above['model']) if len(above) else 'no model'}; below it: "
                     f"{', '.join(below['model']) if len(below) else 'no model'}; the largest margin is "
                     f"{best.model}'s {pts(best.difference)} points [{pts(best.difference_low)}, "
                     f"{pts(best.difference_high)}]")
        out.append(text + ".")
    head = f"Hidden blocks of {h} nt" + (f" (m = {m})" if m is not None else "") + ". "
    return head + " ".join(out)
