"""Nucleotide dependency maps: how far does the prediction at nucleotide j move when nucleotide i changes?

After Tomaz da Silva et al., "Nucleotide dependency analysis of DNA language models reveals genomic functional
elements" (Nature Genetics 2025; code: gagneurlab/dependencies_DNALM). For a window of L nucleotides:

* **reference**: for every target j, the model's ACGT distribution ``p_j`` with j hidden;
* **variants**: every query position i substituted by each of the 3 other letters b; the distribution
  ``p_j^(i,b)`` at every target j != i, again with j hidden;
* **dependency** ``e[i, j] = max_b max_x |logit2 p_j^(i,b)(x) - logit2 p_j(x)|`` in bits, with
  ``logit2 q = log2(q / (1 - q))``.

Their exact reduction (``compute_dependency_map`` in the repository's ``compute_and_visualize_dep_maps.ipynb``):
every distribution gets ``epsilon = 1e-10`` added to each of its 4 letters and is renormalised, the log-odds are
base 2, and the map is the maximum of the absolute log-odds change over the 3 alternative letters at i and the 4
letters at j (``np.max(np.abs(snp_effect), axis=(2, 3))``). This module uses the same measure and epsilon, and
computes ``1 - q`` as the renormalised mass of the other three letters, so that a near-certain prediction does not
round to ``log2(0)``.

Adaptation (stated and tested): their public code reads nucleotide models without masking. Here target j is
always *hidden*: every token that overlaps ``[j, j+1)`` is masked (:func:`masking.nucleotide_block_eval` with the
block ``(j, j+1)``), so that with overlapping k-mers the prediction of j never reads j from an unmasked neighbour
token (otherwise every model would "depend" on its own letter through the overlap, and the map would measure the
copying the book asks about instead of context). Consequences:

* diagonal ``e[j, j]``: NaN (the substitution is the target);
* ``e[i, j]`` is NaN when masking j hides i too, i.e. no unmasked token of the variant's input covers i: for
  non-overlapping k-mers and BPE, i inside j's token (the model cannot see i, so no dependency is measurable).
  Each variant is re-tokenised (BPE may tokenise it differently), and a substitution b counts only where i stays
  visible in that variant's input; ``e[i, j]`` is NaN when none of the three does. With nucleotide tokens every
  i != j stays visible. With overlapping k-mers the k masked tokens hide j alone, except at the window's ends:
  the first (last) k - 1 nucleotides are covered by fewer than k tokens, so ``e[i, j]`` is NaN for
  i < j <= k - 1 and for L - k <= j < i. With BPE a substitution may also move token boundaries around j
  (which tokens are masked, j's offset inside them); that change of input is part of the measured effect.

All ``(1 + 3L) x L`` masked inputs of a window go through the model in batches of ``batch_size`` rows (a
causal model has no masked-token head: :class:`adapters.NotApplicable`).

Summaries: :func:`dependency_by_distance` (per |i - j|, inside the copy band |i - j| <= k - 1 or beyond),
:func:`dependency_mass` (share of the total dependency inside vs beyond the band, per window and mean with a
seeded bootstrap interval over windows), :func:`dependency_table` (tidy long table for CSV).

Orientation of a map: ``dep[i, j]``, rows = query (substituted) position i, columns = target (predicted,
hidden) position j, both in nucleotides from the window start.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from . import codec
from .errors import ParameterError, check_int_range

#: Added to each letter's probability before renormalising, as in the authors' code (their ``epsilon``).
EPSILON = 1e-10
#: Band labels of :func:`dependency_by_distance` / :func:`dependency_mass`.
COPY_BAND, BEYOND = "copy band", "beyond"


# ------------------------------------------------------------------------------------------------
# The inputs: variants and which (variant, target) pairs are measurable
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VariantRows:
    """Every masked input of one window, in model order.

    seqs: the variant sequence of each row (the reference for rows with query -1); query: (rows,) substituted
    position i (-1 = reference); letter: (rows,) index 0..2 of the substitution among the three other letters
    at i (-1 = reference); target: (rows,) hidden position j. Rows exist only where i stays visible with j
    hidden (see the module docstring)."""

    seqs: list
    query: np.ndarray
    letter: np.ndarray
    target: np.ndarray


def variant_sequences(window: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The reference and its 3L single-letter substitutions.

    Returns (seqs, query, letter): seqs[0] is ``window`` (upper case), query[0] = letter[0] = -1; row
    1 + 3 i + s holds window with position i replaced by letter ``(code(i) + 1 + s) % 4`` (ACGT order),
    query = i, letter = s (0..2). Raises ParameterError for letters other than A/C/G/T."""
    codes = codec.letter_index(window, where="window")  # raises on N / ambiguity codes
    length = len(codes)
    upper = window.upper()
    seqs, query, letter = [upper], [-1], [-1]
    for i in range(length):
        for s in range(3):
            b = codec.LETTERS[(int(codes[i]) + 1 + s) % 4]
            seqs.append(upper[:i] + b + upper[i + 1 :])
            query.append(i)
            letter.append(s)
    return seqs, np.array(query, dtype=np.int64), np.array(letter, dtype=np.int64)


def visible_when_hidden(spans: np.ndarray, length: int, query: int) -> np.ndarray:
    """(length,) bool: for each target j, whether nucleotide ``query`` is still covered by a token that does
    not overlap j (so it stays visible when every token overlapping j is masked).

    spans: (n_tokens, 2) [start, end) of the tokens of the sequence (``tokenizer.encode(seq).spans``)."""
    pos = np.arange(length)
    cover = (spans[:, 0, None] <= pos[None, :]) & (pos[None, :] < spans[:, 1, None])  # (tokens, length)
    return (cover[:, query, None] & ~cover).any(axis=0)


def variant_rows(tokenizer, window: str) -> VariantRows:
    """Every (variant, target) masked input of ``window`` that can measure a dependency (module docstring):
    the reference with each target j hidden, and each substitution at i with each target j != i hidden where i
    stays visible. Each variant is tokenised on its own."""
    seqs, query, letter = variant_sequences(window)
    length = len(window)
    all_targets = np.arange(length, dtype=np.int64)
    out_seq, out_q, out_b, out_t = [], [], [], []
    for v, (seq, i, s) in enumerate(zip(seqs, query, letter)):
        if i < 0:
            targets = all_targets
        else:
            spans = tokenizer.encode(seq, where=f"variant {v} of the window").spans
            ok = visible_when_hidden(spans, length, int(i))
            ok[i] = False
            targets = all_targets[ok]
        out_seq += [seq] * len(targets)
        out_q.append(np.full(len(targets), i, dtype=np.int64))
        out_b.append(np.full(len(targets), s, dtype=np.int64))
        out_t.append(targets)
    return VariantRows(out_seq, np.concatenate(out_q), np.concatenate(out_b), np.concatenate(out_t))


# ------------------------------------------------------------------------------------------------
# The measure
# ------------------------------------------------------------------------------------------------
def log_odds(probs: np.ndarray, *, epsilon: float = EPSILON) -> np.ndarray:
    """Base-2 log-odds ``log2(q / (1 - q))`` of (..., 4) ACGT distributions after adding ``epsilon`` to each
    letter and renormalising (the authors' clipping), with ``1 - q`` taken as the mass of the other three
    letters. Same shape, float64."""
    p = np.asarray(probs, dtype=np.float64) + epsilon
    total = p.sum(axis=-1, keepdims=True)
    return np.log2(p) - np.log2(total - p)


def dependency_from_probs(ref: np.ndarray, var: np.ndarray, *, epsilon: float = EPSILON) -> np.ndarray:
    """(L, L) map from the reference distributions ``ref`` (L, 4) [target, letter] and the variant distributions
    ``var`` (L, 3, L, 4) [query, substitution, target, letter], NaN where a (query, substitution, target) was not
    measured. ``e[i, j] = max_s max_x |logit2 var[i, s, j, x] - logit2 ref[j, x]|``; the maximum skips
    unmeasured substitutions; NaN where none was measured (always the diagonal)."""
    diff = np.abs(log_odds(var, epsilon=epsilon) - log_odds(ref, epsilon=epsilon)[None, None])
    per_sub = diff.max(axis=-1)  # (L, 3, L); NaN rows stay NaN
    dep = np.fmax.reduce(per_sub, axis=1)  # NaN only where all three substitutions are NaN
    dep[np.diag_indices_from(dep)] = np.nan
    return dep


def _check_masked_lm(lm) -> None:
    lm.require("masked_logprobs", "nucleotide dependency maps (target hidden by masking)")


def _check_window(window, w: int) -> str:
    if not isinstance(window, str) or len(window) < 2:
        raise ParameterError(f"window {w}: pass a DNA string of at least 2 nt (got {type(window).__name__} "
                             f"{window!r:.40}).")
    return window


def dependency_map(lm, window: str, *, batch_size: int = 256, amp: bool = True, epsilon: float = EPSILON,
                   progress: bool = False) -> np.ndarray:
    """(L, L) float64 dependency map of one ACGT window: ``dep[i, j]`` in bits, query i (substituted) x target
    j (hidden). Diagonal NaN; NaN where hiding j hides i too (module docstring).

    lm: a model adapter with masked-token log-probabilities (a causal model raises
    :class:`adapters.NotApplicable`); batch_size: masked inputs per forward pass; amp: bf16 autocast (False:
    the model's dtype); epsilon: the authors' probability floor."""
    return dependency_maps(lm, [window], batch_size=batch_size, amp=amp, epsilon=epsilon, progress=progress)[0]


def dependency_maps(lm, windows: Sequence[str], *, batch_size: int = 256, amp: bool = True,
                    epsilon: float = EPSILON, progress: bool = False):
    """Dependency maps of several windows: an (n, L, L) float64 array when all windows have one length L,
    else a list of (L_w, L_w) arrays. Rows of all windows are batched together, ``batch_size`` masked inputs
    per forward pass; ``progress`` shows a tqdm bar over the forward passes. See :func:`dependency_map`."""
    from tqdm.auto import tqdm

    from .masking import nucleotide_block_eval

    _check_masked_lm(lm)
    batch_size = check_int_range("batch_size", batch_size, 1, hint="Masked inputs per forward pass, e.g. 256.")
    if isinstance(windows, str):
        raise ParameterError("windows: pass a list of DNA strings (for one window use dependency_map).")
    windows = [_check_window(w, n) for n, w in enumerate(windows)]
    if not windows:
        raise ParameterError("windows is empty: pass at least one DNA window.")
    for n, w in enumerate(windows):
        lm.check_fits(len(lm.tokenizer.encode(w, where=f"window {n}")), what=f"window {n}")
    rows = [variant_rows(lm.tokenizer, w) for w in windows]
    seqs = [s for r in rows for s in r.seqs]
    targets = np.concatenate([r.target for r in rows])
    blocks = np.stack([targets, targets + 1], axis=1)
    probs = np.empty((len(seqs), 4), dtype=np.float64)
    for lo in tqdm(range(0, len(seqs), batch_size), desc="dependency maps", disable=not progress):
        hi = min(lo + batch_size, len(seqs))
        probs[lo:hi] = nucleotide_block_eval(lm, seqs[lo:hi], blocks[lo:hi], batch_size=batch_size, amp=amp).probs
    maps, lo = [], 0
    for w, r in zip(windows, rows):
        n, length = len(r.seqs), len(w)
        p = probs[lo : lo + n]
        lo += n
        ref = np.full((length, 4), np.nan)
        var = np.full((length, 3, length, 4), np.nan)
        is_ref = r.query < 0
        ref[r.target[is_ref]] = p[is_ref]
        var[r.query[~is_ref], r.letter[~is_ref], r.target[~is_ref]] = p[~is_ref]
        maps.append(dependency_from_probs(ref, var, epsilon=epsilon))
    if len({m.shape for m in maps}) == 1:
        return np.stack(maps)
    return maps


# ------------------------------------------------------------------------------------------------
# Summaries
# ------------------------------------------------------------------------------------------------
def copy_band_k(tokenizer, windows: Sequence[str] | None = None) -> int:
    """Token length k that sets the copy band |i - j| <= k - 1: k for overlapping and non-overlapping k-mers,
    1 for nucleotide tokens; for BPE (no single length) the mean nucleotides per token on ``windows``,
    rounded (ParameterError without windows)."""
    scheme = getattr(tokenizer, "scheme", None)
    if scheme in ("overlapping", "nonoverlapping"):
        return int(tokenizer.k)
    if scheme == "nucleotide":
        return 1
    if scheme == "bpe":
        if not windows:
            raise ParameterError("copy_band_k: BPE tokens have no single length; pass windows= to use the mean "
                                 "nucleotides per token on them.")
        tokens = sum(len(tokenizer.encode(w, where=f"window {n}")) for n, w in enumerate(windows))
        return max(1, int(round(sum(len(w) for w in windows) / tokens)))
    raise ParameterError(f"copy_band_k: unknown tokenization scheme {scheme!r}; pass k yourself.")


def _as_maps(maps) -> list[np.ndarray]:
    """A list of square 2-D float arrays from one (L, L) map, an (n, L, L) array or a list of maps."""
    if isinstance(maps, np.ndarray) and maps.ndim == 2:
        maps = [maps]
    out = [np.asarray(m, dtype=np.float64) for m in maps]
    if not out:
        raise ParameterError("maps is empty: pass at least one dependency map.")
    for n, m in enumerate(out):
        if m.ndim != 2 or m.shape[0] != m.shape[1]:
            raise ParameterError(f"maps[{n}] has shape {m.shape}; a dependency map is square (L, L) [query, target].")
    return out


def _check_k(k) -> int:
    return check_int_range("k", k, 1, hint="Token length: k for k-mers, 1 for nucleotide tokens (copy_band_k).")


def band_of(distance, k: int) -> np.ndarray:
    """"copy band" where ``distance`` <= k - 1, "beyond" elsewhere (array of str)."""
    return np.where(np.asarray(distance) <= k - 1, COPY_BAND, BEYOND)


def dependency_by_distance(maps, *, k: int) -> pd.DataFrame:
    """Dependency by distance d = |i - j| over one map, an (n, L, L) array or a list of maps.

    One row per distance d >= 1 with at least one measured (non-NaN) pair: distance, band ("copy band" for
    d <= k - 1, "beyond" else), count (measured pairs, both directions, all windows), total (sum of their
    dependency, bits), mean, median. ``total`` summed over rows equals the nansum of the maps."""
    k = _check_k(k)
    values, dists = [], []
    for m in _as_maps(maps):
        i, j = np.indices(m.shape)
        ok = ~np.isnan(m)
        values.append(m[ok])
        dists.append(np.abs(i - j)[ok])
    df = pd.DataFrame({"distance": np.concatenate(dists), "dependency": np.concatenate(values)})
    out = (df.groupby("distance")["dependency"].agg(count="size", total="sum", mean="mean", median="median")
           .reset_index())
    out.insert(1, "band", band_of(out["distance"].to_numpy(), k))
    return out


def _nanmean(values: np.ndarray, axis: int) -> np.ndarray:
    """np.nanmean along ``axis`` with NaN (and no warning) where every value is NaN."""
    values = np.asarray(values, dtype=np.float64)
    count = (~np.isnan(values)).sum(axis=axis)
    total = np.nansum(values, axis=axis)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def mean_map(maps) -> np.ndarray:
    """(L, L) mean over windows of an (n, L, L) array or a list of equal-sized maps, NaN where every window is NaN
    (the diagonal; pairs a model never sees)."""
    stacked = np.stack(_as_maps(maps))
    return _nanmean(stacked, axis=0)


def target_band_means(maps, *, k: int, min_distance: int | None = None) -> pd.DataFrame:
    """Per target nucleotide: the mean dependency (bits) on the substituted positions of each band, for paired
    comparisons of two models on the same windows (e.g. a model against its step-0 twin).

    One row per (window, target j): window, target, item ("<window>:<j>"), copy_band (mean over measured i with
    1 <= |i - j| <= k - 1), beyond (mean over measured i with |i - j| >= ``min_distance``, default k); NaN where
    a band has no measured pair (the window's ends)."""
    k = _check_k(k)
    far = k if min_distance is None else check_int_range("min_distance", min_distance, 1)
    rows = []
    for w, m in enumerate(_as_maps(maps)):
        i, j = np.indices(m.shape)
        d = np.abs(i - j)
        for name, mask in (("copy_band", (d >= 1) & (d <= k - 1)), ("beyond", d >= far)):
            vals = np.where(mask & ~np.isnan(m), m, np.nan)
            means = _nanmean(vals, axis=0)
            rows.append(pd.DataFrame({"window": w, "target": np.arange(m.shape[1]), "band": name, "value": means}))
    long = pd.concat(rows, ignore_index=True)
    out = long.pivot_table(index=["window", "target"], columns="band", values="value", dropna=False).reset_index()
    out.columns.name = None
    for col in ("copy_band", "beyond"):
        if col not in out:
            out[col] = np.nan
    out.insert(2, "item", out.window.astype(str) + ":" + out.target.astype(str))
    return out[["window", "target", "item", "copy_band", "beyond"]]


@dataclass(frozen=True)
class DependencyMass:
    """Share of the dependency inside vs beyond the copy band.

    per_window: one row per window: window, inside, beyond, total (bits, measured pairs only), share_inside,
    share_beyond (NaN for a window with zero total). summary: one row per band ("copy band", "beyond"): share
    (mean over windows of the per-window share), low, high (percentile bootstrap interval over windows at
    ``confidence``), windows (how many entered), confidence, n_boot, seed."""

    per_window: pd.DataFrame
    summary: pd.DataFrame


def bootstrap_mean_interval(values, *, confidence: float = 0.95, n_boot: int = 2000, seed: int = 0
                            ) -> tuple[float, float, float]:
    """(mean, low, high): percentile bootstrap interval of the mean of ``values`` (NaN dropped), resampling
    values with replacement ``n_boot`` times with a seeded generator. Fewer than two values: (mean, NaN, NaN)."""
    if not 0 < confidence < 1:
        raise ParameterError(f"confidence={confidence!r}: pass a level between 0 and 1, e.g. 0.95.")
    n_boot = check_int_range("n_boot", n_boot, 1, hint="Bootstrap resamples, e.g. 2000.")
    x = np.asarray(values, dtype=np.float64)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return float("nan"), float("nan"), float("nan")
    if x.size < 2:
        return float(x[0]), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(x.mean()), float(low), float(high)


def dependency_mass(maps, *, k: int, confidence: float = 0.95, n_boot: int = 2000, seed: int = 0) -> DependencyMass:
    """Share of each window's total measured dependency that lies inside the copy band (|i - j| <= k - 1) and
    beyond it, and the mean share over windows with a seeded bootstrap interval (:class:`DependencyMass`).
    maps: one (L, L) map, an (n, L, L) array or a list of maps."""
    k = _check_k(k)
    rows = []
    for w, m in enumerate(_as_maps(maps)):
        i, j = np.indices(m.shape)
        inside = np.abs(i - j) <= k - 1
        tot_in, tot_out = float(np.nansum(m[inside])), float(np.nansum(m[~inside]))
        total = tot_in + tot_out
        rows.append({"window": w, "inside": tot_in, "beyond": tot_out, "total": total,
                     "share_inside": tot_in / total if total > 0 else np.nan,
                     "share_beyond": tot_out / total if total > 0 else np.nan})
    per_window = pd.DataFrame(rows)
    summary = []
    for band, col in ((COPY_BAND, "share_inside"), (BEYOND, "share_beyond")):
        mean, low, high = bootstrap_mean_interval(per_window[col], confidence=confidence, n_boot=n_boot, seed=seed)
        summary.append({"band": band, "share": mean, "low": low, "high": high,
                        "windows": int(per_window[col].notna().sum()), "confidence": confidence,
                        "n_boot": n_boot, "seed": seed})
    return DependencyMass(per_window, pd.DataFrame(summary))


def dependency_table(maps, window_names: Sequence[str] | None = None) -> pd.DataFrame:
    """Tidy long table of measured pairs (NaN entries left out): window, i (query), j (target), distance
    |i - j|, dependency (bits). ``window_names``: one label per map (default 0, 1, ...)."""
    maps = _as_maps(maps)
    if window_names is None:
        window_names = list(range(len(maps)))
    window_names = list(window_names)
    if len(window_names) != len(maps):
        raise ParameterError(f"window_names has {len(window_names)} names for {len(maps)} maps; pass one per map.")
    parts = []
    for name, m in zip(window_names, maps):
        i, j = np.nonzero(~np.isnan(m))
        parts.append(pd.DataFrame({"window": [name] * len(i), "i": i, "j": j, "distance": np.abs(i - j),
                                   "dependency": m[i, j]}))
    return pd.concat(parts, ignore_index=True)


__all__ = [
    "EPSILON", "COPY_BAND", "BEYOND", "VariantRows", "variant_sequences", "visible_when_hidden", "variant_rows",
    "log_odds", "dependency_from_probs", "dependency_map", "dependency_maps", "copy_band_k", "band_of",
    "dependency_by_distance", "DependencyMass", "bootstrap_mean_interval", "dependency_mass", "dependency_table",
]
