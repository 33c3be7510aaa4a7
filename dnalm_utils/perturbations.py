"""Perturbations where copying and context predict different things (chapter 3; issue 15, item 4).

The old flank probe (``masking.flank_perturbation``) edits the sequence and re-tokenizes it, so every unmasked
token that covers the edited nucleotide shows the new letter: any predictor that reads its input, context-using
or not, then outputs the new letter. Two probes here can tell the explanations apart.

* :func:`single_token_edit` (overlapping k-mer models with a masked head). Per window, m contiguous tokens are
  masked (m <= k - 2, so that some nucleotide p of the masked span is revealed by unmasked tokens on **both**
  sides; with m = k - 1 every letter is still revealed, but none from both sides) and the id of exactly
  **one** unmasked token covering p -- the left neighbour (token s - 1) or the right one (token s + m), seeded
  and balanced (half the windows of each m, the odd one seeded) -- is replaced by the k-mer whose letter at p
  differs (a seeded other letter). Nothing is re-tokenized: every other token still shows the genome's letter,
  so the input holds two answers for p. The prediction at p (the letter distribution of the masked tokens
  covering it, averaged as in ``masking.nucleotide_block_eval``) follows the edited token, keeps the genome's
  letter (what the other revealing tokens -- n_left + n_right - 1 of them -- and any context say) or neither.
  Beside it, computed exactly on the same inputs: a **left-neighbour copier** (the nearest unmasked token on
  the left, token s - 1: follows the edit exactly when the left neighbour was edited) and a **majority
  copier** (the commonest letter among all unmasked tokens covering p, ties broken towards the left
  neighbour: it never follows one edited token when two or more others show the genome's letter).
* :func:`distal_edits` (every masked model, any tokenization). Per window, nucleotide q is hidden (every token
  overlapping it masked, ``masking.nucleotide_block_eval``) and one nucleotide at q - d or q + d is
  substituted, for d from ``distances`` (default :func:`default_distances`: from the largest token length k of
  the models, doubling, while both sides fit the window); the edited window is re-tokenized (the edit is not in
  any token covering q when d is beyond the model's token reach). Where no unmasked token shows the edited
  nucleotide -- it lies only inside masked tokens, possible for non-overlapping k-mers and BPE, whose masked
  tokens reach further than q -- the edit is hidden by the mask itself; and where re-tokenizing the edited
  window changes the masked stretch around q (BPE can re-segment), other nucleotides would be hidden. Such
  (window, d, side) edits are **skipped** for that model and counted (``skipped``), never scored as "no
  shift", so every scored edit hides the same nucleotides before and after it. The shift of q's
  predicted ACGT distribution (:func:`distribution_shift`) is the largest change of a letter's log-odds (bits;
  the da Silva dependency measure, ``dependency_maps.dependency_from_probs`` for one substitution) and the
  total variation. The two-sided n-gram's own shift on the same edits is the reference: an n-gram of flank
  order o cannot move when d > o, so beyond its order its shift is exactly 0 and any shift of a model there
  is context.

Every random choice comes from ``numpy.random.default_rng(seed)``; all variants of a probe go through the model
in the same batched calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from . import codec
from .adapters import NotApplicable
from .errors import ParameterError, check_int_range

LETTERS = "ACGT"
#: Outcomes of the single-token edit, in order.
OUTCOMES = ("follows_edit", "keeps_genome", "other")
SIDES = ("left", "right")
#: Name of the n-gram reference rows of :func:`distal_edits`.
NGRAM = "two-sided n-gram"


# ------------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------------
def _kmer_letters(tok) -> np.ndarray:
    """(vocab, k, 4) float64 one-hot ACGT letter of each k-mer token at each offset (zeros for specials)."""
    k = int(tok.k)
    table = np.zeros((tok.vocab_size, k, 4))
    for i, t in enumerate(tok.vocab):
        if not tok.is_special[i] and len(t) == k:
            codes = codec.encode(t.upper())
            ok = codes < 4
            table[i, np.flatnonzero(ok), codes[ok]] = 1.0
    return table


def _check_windows(windows) -> list[str]:
    from .codec import check_acgt_list

    return check_acgt_list([getattr(w, "sequence", w) for w in windows], name="windows",
                           why="the perturbation probes need ACGT-only windows; data.evaluation_windows draws them")


def _check_batch(batch_size) -> int:
    return check_int_range("batch_size", batch_size, 1, hint="Masked inputs per forward pass, e.g. 64.")


def _share_row(values: np.ndarray) -> dict:
    """share, ci_low, ci_high (Wilson 95 %) of a boolean array."""
    from .stats import binomial_interval

    n, k = int(values.size), int(np.sum(values))
    low, high = binomial_interval(k, n)
    return {"share": k / n if n else float("nan"), "ci_low": low, "ci_high": high, "windows": n}


# ------------------------------------------------------------------------------------------------
# Single-token edit
# ------------------------------------------------------------------------------------------------
def single_token_edit(lm, windows, ms: Sequence[int] | None = None, *, seed: int = 0, batch_size: int = 64,
                      amp: bool = True):
    """Edit one of the unmasked tokens that reveal a masked nucleotide, without re-tokenizing (module docstring).

    lm: an overlapping k-mer model with a masked head (else :class:`adapters.NotApplicable`); windows: ACGT
    strings; ms: span lengths (default 1 .. k - 2; each must leave a nucleotide revealed on both sides, m <=
    k - 2). Returns ``(table, summary)``. table: one row per (window, m): window, m, start (first masked token),
    position (p, nt), side ("left" / "right": which neighbour was edited), edited_token (its index), n_left /
    n_right (unmasked tokens covering p on each side), genome / edit (letters at p), predicted (the model's
    letter at p on the edited input), predicted_unedited (on the unedited input), p_edit / p_genome (its
    probabilities of the two letters), outcome (:data:`OUTCOMES`), left_copier / majority_copier (their outcomes).
    summary: one row per (m, side, predictor) with predictor "model", "left-neighbour copier", "majority copier":
    share of windows per outcome with Wilson 95 % intervals (columns ``<outcome>``, ``<outcome>_low``,
    ``<outcome>_high``) and windows."""
    import pandas as pd

    tok = lm.tokenizer
    if getattr(tok, "scheme", None) != "overlapping":
        raise NotApplicable(f"the single-token edit is not applicable to {lm.name}: it needs overlapping k-mers, "
                            f"where several unmasked tokens reveal one masked nucleotide ({tok.description} do not)")
    lm.require("masked_logprobs", "the single-token edit")
    k = int(tok.k)
    if k < 3:
        raise NotApplicable(f"the single-token edit is not applicable to {lm.name}: with k = {k} no masked "
                            "nucleotide is revealed on both sides")
    seqs = _check_windows(windows)
    ms = list(range(1, k - 1)) if ms is None else [int(m) for m in ([ms] if np.isscalar(ms) else ms)]
    if not ms or min(ms) < 1 or max(ms) > k - 2:
        raise ParameterError(f"ms={ms}: each m must lie in 1..k-2 = 1..{k - 2}, so that a masked nucleotide is "
                             "revealed by an unmasked token on each side.")
    batch_size, seed = _check_batch(batch_size), check_int_range("seed", seed, 0)
    rng = np.random.default_rng(seed)
    letters = _kmer_letters(tok)
    ids_of = tok.token_to_id
    # balanced sides: per m, half the windows (the odd one out seeded) have the left neighbour edited
    side_of = {m: rng.permutation(np.arange(len(seqs)) + int(rng.integers(0, 2))) % 2 for m in ms}
    rows, meta = [], []
    for w, seq in enumerate(seqs):
        ids = tok.encode(seq, where=f"window {w}").ids
        for m in ms:
            if len(ids) < m + 2:
                raise ParameterError(f"window {w} has {len(ids)} tokens, too few to mask m = {m} with a neighbour on "
                                     "each side; use longer windows.")
            s = int(rng.integers(1, len(ids) - m))  # tokens s .. s+m-1 masked; tokens s-1 and s+m exist
            p = s + m + int(rng.integers(0, k - 1 - m))  # revealed by token s-1 (up to s+k-2) and by s+m (from s+m)
            side = SIDES[int(side_of[m][w])]
            j = s - 1 if side == "left" else s + m
            genome = seq[p]
            edit = str(rng.choice([c for c in LETTERS if c != genome]))
            kmer = seq[j:j + k]
            new = kmer[: p - j] + edit + kmer[p - j + 1:]
            masked = ids.copy()
            masked[s:s + m] = tok.mask_id
            edited = masked.copy()
            edited[j] = ids_of[new]
            if int((edited != masked).sum()) != 1:
                raise AssertionError(f"window {w}: the edit changed {(edited != masked).sum()} token ids, not one.")
            rows += [masked, edited]
            n_left = s - max(0, p - k + 1)  # unmasked tokens covering p: j in [max(0, p-k+1), s-1] ...
            n_right = min(p, len(ids) - 1) - (s + m) + 1  # ... and j in [s+m, min(p, last token)]
            meta.append((w, m, s, p, side, j, genome, edit, n_left, n_right))
    input_ids, att = lm.frame(rows)
    positions = [np.arange(s, s + m) + tok.body_offset for (_, m, s, *_) in meta for _ in range(2)]
    logps = lm.masked_logprobs(input_ids, att, positions, batch_size, amp=amp)
    out = []
    for i, (w, m, s, p, side, j, genome, edit, n_left, n_right) in enumerate(meta):
        covering = np.arange(max(s, p - k + 1), min(s + m - 1, p) + 1)  # masked tokens covering p
        dists = []
        for lp in (logps[2 * i], logps[2 * i + 1]):
            probs = np.exp(lp[covering - s].astype(np.float64))  # (c, vocab)
            q = np.einsum("cv,cvx->cx", probs, letters[:, p - covering, :].transpose(1, 0, 2))
            q /= np.maximum(q.sum(1, keepdims=True), 1e-300)
            dists.append(q.mean(0))
        unedited, edited = dists
        pred = LETTERS[int(np.argmax(edited))]
        shown = [genome] * (n_left + n_right)
        shown[0 if side == "left" else n_left] = edit  # the nearest token of the edited side shows the edit
        left_letter = edit if side == "left" else genome
        counts = {c: shown.count(c) for c in set(shown)}
        top = max(counts.values())
        majority = left_letter if counts.get(left_letter, 0) == top else max(counts, key=counts.get)
        outcome = lambda x: "follows_edit" if x == edit else "keeps_genome" if x == genome else "other"  # noqa: E731
        out.append({"window": w, "m": m, "start": s, "position": p, "side": side, "edited_token": j,
                    "n_left": n_left, "n_right": n_right, "genome": genome, "edit": edit, "predicted": pred,
                    "predicted_unedited": LETTERS[int(np.argmax(unedited))],
                    "p_edit": float(edited[LETTERS.index(edit)]), "p_genome": float(edited[LETTERS.index(genome)]),
                    "outcome": outcome(pred), "left_copier": outcome(left_letter),
                    "majority_copier": outcome(majority)})
    table = pd.DataFrame(out)
    return table, summarize_single_edit(table)


def summarize_single_edit(table):
    """Shares of :data:`OUTCOMES` per (m, side, predictor) with Wilson 95 % intervals (see
    :func:`single_token_edit`)."""
    import pandas as pd

    rows = []
    for (m, side), part in table.groupby(["m", "side"], sort=True):
        for predictor, col in (("model", "outcome"), ("left-neighbour copier", "left_copier"),
                               ("majority copier", "majority_copier")):
            row = {"m": int(m), "side": side, "predictor": predictor, "windows": len(part)}
            for o in OUTCOMES:
                r = _share_row((part[col] == o).to_numpy())
                row.update({o: r["share"], f"{o}_low": r["ci_low"], f"{o}_high": r["ci_high"]})
            rows.append(row)
    return pd.DataFrame(rows)


def single_edit_sentence(summaries: Mapping[str, object], m: int | str | None = None) -> str:
    """One computed sentence per model from ``{model: summary}`` (:func:`summarize_single_edit`) at one span
    length m: how often the prediction follows the one edited token when it is the left and when it is the right
    neighbour, with intervals, against the two copiers. m: None or "smallest" (each model's smallest m),
    "largest" (each model's largest, k - 2: one revealing token on each side, a tie for the majority copier) or
    an int (models without it are left out)."""
    def pct(x):
        return f"{100 * x:.1f} %"

    if not (m is None or m in ("smallest", "largest") or (isinstance(m, (int, np.integer)) and m >= 1)):
        raise ParameterError(f"m={m!r}: pass None, 'smallest', 'largest' or a span length >= 1.")
    parts = []
    for name, s in summaries.items():
        if s is None or not len(s):
            continue
        measured = sorted(int(x) for x in s.m.unique())
        if m in (None, "smallest", "largest"):
            mm = measured[-1] if m == "largest" else measured[0]
        elif int(m) in measured:
            mm = int(m)
        else:
            continue
        sub = s[s.m == mm].set_index(["predictor", "side"])
        bits = []
        for side in SIDES:
            if ("model", side) not in sub.index:
                continue
            r = sub.loc[("model", side)]
            bits.append(f"when the {side} neighbour is edited {pct(r.follows_edit)} [{pct(r.follows_edit_low)}, "
                        f"{pct(r.follows_edit_high)}] (keeps the genome's letter {pct(r.keeps_genome)}; left-neighbour "
                        f"copier {pct(sub.loc[('left-neighbour copier', side)].follows_edit)}, majority copier "
                        f"{pct(sub.loc[('majority copier', side)].follows_edit)})")
        parts.append(f"{name} (m = {mm}) follows the one edited token " + " and ".join(bits))
    return "; ".join(parts) + "." if parts else "No overlapping k-mer model with a masked head was run."


# ------------------------------------------------------------------------------------------------
# Distal edits
# ------------------------------------------------------------------------------------------------
@dataclass
class _Design:
    """The distal edits of one call: per window the hidden nucleotide q (n_windows,); per edit (n_edits,) its
    window, d, side ("left" / "right"), position (nt) and new letter."""

    q: np.ndarray
    window: np.ndarray
    d: np.ndarray
    side: np.ndarray
    position: np.ndarray
    letter: list

    @property
    def n_windows(self) -> int:
        return len(self.q)


def _distal_design(seqs: list[str], distances: list[int], sides: list[str], rng) -> _Design:
    """Per window one hidden nucleotide q (room for the largest d on every requested side) and, per (d, side),
    the edited position and its new letter (seeded)."""
    dmax = max(distances)
    q = np.empty(len(seqs), dtype=np.int64)
    edits = []
    for w, s in enumerate(seqs):
        lo = dmax if "left" in sides else 0
        hi = len(s) - 1 - (dmax if "right" in sides else 0)
        if hi < lo:
            raise ParameterError(f"windows[{w}] has {len(s)} nt, too short for distances up to {dmax} on sides "
                                 f"{sides}; use longer windows or smaller distances.")
        q[w] = int(rng.integers(lo, hi + 1))
        for d in distances:
            for side in sides:
                pos = q[w] - d if side == "left" else q[w] + d
                edits.append((w, d, side, int(pos), str(rng.choice([c for c in LETTERS if c != s[pos]]))))
    w, d, side, pos, letter = zip(*edits)
    return _Design(q, np.array(w, dtype=np.int64), np.array(d, dtype=np.int64), np.array(side),
                   np.array(pos, dtype=np.int64), list(letter))


def distribution_shift(ref: np.ndarray, var: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """How far the (n, 4) ACGT distributions ``var`` moved from ``ref`` (same shape), per row: (bits, tv), each
    (n,) float64. bits: the largest change of a letter's base-2 log-odds, the da Silva dependency measure
    (``dependency_maps.dependency_from_probs`` for one substitution, same epsilon); tv: total variation
    ``0.5 * sum |var - ref|`` in [0, 1]."""
    from .dependency_maps import log_odds

    ref, var = np.asarray(ref, dtype=np.float64), np.asarray(var, dtype=np.float64)
    if ref.ndim != 2 or ref.shape[1] != 4 or ref.shape != var.shape:
        raise ParameterError(f"ref and var must both be (n, 4) ACGT distributions; got {ref.shape} and "
                             f"{var.shape}.")
    return np.abs(log_odds(var) - log_odds(ref)).max(axis=1), 0.5 * np.abs(var - ref).sum(axis=1)


def default_distances(models: Mapping[str, object], windows) -> list[int]:
    """Default distances of :func:`distal_edits`: K, 2K, 4K, ... (K the largest token length k among the
    models, ``dependency_maps.copy_band_k``; BPE: its mean nucleotides per token on the windows) while an edit
    d nt from q still fits on both sides of the shortest window (d <= (L - 1) // 2); at least [K] when K fits.
    E.g. 6-mer models on 64-nt windows: [6, 12, 24]."""
    from .dependency_maps import copy_band_k

    seqs = _check_windows(windows)
    ks = [copy_band_k(lm.tokenizer, seqs[:50]) for lm in models.values()] or [1]
    k, fit = max(1, max(ks)), (min(len(s) for s in seqs) - 1) // 2
    if fit < k:
        raise ParameterError(f"windows of {min(len(s) for s in seqs)} nt leave no room for an edit {k} nt (the "
                             "largest token length) from the hidden nucleotide on both sides; use longer windows "
                             "or pass distances and sides yourself.")
    out = [k]
    while 2 * out[-1] <= fit:
        out.append(2 * out[-1])
    return out


def _summarize_shifts(name: str, design: _Design, shifts: np.ndarray, tv: np.ndarray, keep: np.ndarray,
                      reference, *, seed: int, n_boot: int, pooled: bool):
    """Rows (model, d, side) -- side "left", "right" and, if ``pooled`` and both sides were edited, "both" (per
    window the mean over its kept edits of the two sides) -- of mean shifts over windows with percentile
    bootstrap intervals, and the paired difference to ``reference`` (the n-gram's shifts on the same edits)
    where given."""
    from .dependency_maps import bootstrap_mean_interval
    from .stats import compare_paired

    rows = []
    sides = list(dict.fromkeys(design.side.tolist()))
    groups = [(side, [side]) for side in sides] + ([("both", sides)] if pooled and len(sides) > 1 else [])
    for d in sorted(set(design.d.tolist())):
        for label, group in groups:
            sel = (design.d == d) & np.isin(design.side, group)
            ok = sel & keep
            count = np.bincount(design.window[ok], minlength=design.n_windows)
            has = count > 0

            def per_window(v, ok=ok, count=count, has=has):
                return np.bincount(design.window[ok], weights=v[ok], minlength=design.n_windows)[has] / count[has]

            x, t = per_window(shifts), per_window(tv)
            mean, low, high = bootstrap_mean_interval(x, n_boot=n_boot, seed=seed)
            tv_mean, tv_low, tv_high = bootstrap_mean_interval(t, n_boot=n_boot, seed=seed)
            row = {"model": name, "d": int(d), "side": label, "windows": int(has.sum()),
                   "skipped": int((sel & ~keep).sum()), "shift_bits": mean, "shift_low": low, "shift_high": high,
                   "total_variation": tv_mean, "tv_low": tv_low, "tv_high": tv_high}
            if reference is not None and has.sum() > 1:
                r = per_window(reference)
                c = compare_paired(x, r, unit="windows", exact_binary=False)
                row.update(ngram_shift=float(r.mean()), difference=c.estimate, difference_low=c.low,
                           difference_high=c.high, p=c.p)
            rows.append(row)
    return rows


def distal_edits(models: Mapping[str, object], windows, distances: Sequence[int] | None = None, *,
                 sides: Sequence[str] = SIDES, counts=None, ngram_order: int | None = None, seed: int = 0,
                 batch_size: int = 64, amp: bool = True, pooled: bool = False, n_boot: int = 2000):
    """How far does a hidden nucleotide's predicted distribution move when one letter d nt away changes?

    models: name -> adapter (models without a masked head are listed as not applicable); windows: ACGT strings;
    distances: d values (>= 1; None: :func:`default_distances`); sides: "left" and/or "right"; counts +
    ngram_order: a ``ngram.KmerCounts`` and the two-sided n-gram's flank order, for the reference shift (None:
    no reference); pooled: also rows with side "both" (per window the mean over its kept edits of the two
    sides); n_boot: bootstrap resamples (seeded with ``seed``). One hidden nucleotide and one edit per (window,
    d, side), the same for every model; the unedited and all edited windows of a model go through it in one
    batched ``masking.nucleotide_block_eval`` call.

    Returns ``(table, items, not_applicable)``. table rows (model, d, side): windows (with a kept edit), skipped
    (edits no unmasked token shows, or that change the masked stretch: not scored), shift_bits (mean over windows of the largest log-odds change,
    bits; :func:`distribution_shift`) with shift_low / shift_high (95 % percentile bootstrap over windows),
    total_variation with tv_low / tv_high, and -- with an n-gram -- ngram_shift (the n-gram's mean on the same
    kept edits), difference (model minus n-gram, paired t over windows) with difference_low / difference_high
    and p; the n-gram's own rows have model :data:`NGRAM`. items: per (model, window, d, side) the hidden q and
    the edited position (nt, 0-based in the window), the new letter, shift_bits and total_variation (NaN where
    skipped), for paired tests. not_applicable: rows {model, probe, reason}."""
    import pandas as pd

    from .masking import nucleotide_block_eval

    seqs = _check_windows(windows)
    if distances is None:
        distances = default_distances(models, seqs)
    distances = sorted({check_int_range("distances", d, 1) for d in ([distances] if np.isscalar(distances)
                                                                      else distances)})
    if not distances:
        raise ParameterError("distances is empty; pass nucleotide distances such as [6, 8, 12] (or None).")
    sides = [sides] if isinstance(sides, str) else list(dict.fromkeys(sides))
    if not sides or any(s not in SIDES for s in sides):
        raise ParameterError(f"sides={sides!r}: use 'left' and/or 'right'.")
    batch_size, seed = _check_batch(batch_size), check_int_range("seed", seed, 0)
    n_boot = check_int_range("n_boot", n_boot, 1, hint="Bootstrap resamples, e.g. 2000.")
    rng = np.random.default_rng(seed)
    design = _distal_design(seqs, distances, sides, rng)
    edited = [seqs[w][:pos] + letter + seqs[w][pos + 1:]
              for w, pos, letter in zip(design.window, design.position, design.letter)]
    blocks = np.stack([design.q, design.q + 1], axis=1)
    variant_blocks = blocks[design.window]
    summarize = dict(seed=seed, n_boot=n_boot, pooled=pooled)
    reference = None
    rows, items, not_applicable = [], [], []

    def item_frame(name, shift, tv):
        return pd.DataFrame({"model": name, "window": design.window, "q": design.q[design.window], "d": design.d,
                             "side": design.side, "position": design.position, "letter": design.letter,
                             "shift_bits": shift, "total_variation": tv})

    if counts is not None:
        from .ngram import two_sided_block_probs

        order = check_int_range("ngram_order", ngram_order, 0, hint="Flank order of the two-sided n-gram.")
        p0 = two_sided_block_probs(counts, seqs, blocks, order=order)[design.window]
        p1 = two_sided_block_probs(counts, edited, variant_blocks, order=order)
        reference, ref_tv = distribution_shift(p0, p1)
        rows += _summarize_shifts(NGRAM, design, reference, ref_tv, np.ones(len(edited), bool), None, **summarize)
        items.append(item_frame(NGRAM, reference, ref_tv))
    for name, lm in models.items():
        if not lm.can("masked_logprobs"):
            not_applicable.append({"model": name, "probe": "distal edits", "reason": lm.why_not("masked_logprobs")})
            continue
        keep = _edit_shown(lm.tokenizer, seqs, edited, design)
        res = nucleotide_block_eval(lm, seqs + edited, np.concatenate([blocks, variant_blocks]),
                                    batch_size=batch_size, amp=amp)
        p_orig, p_var = res.probs[: len(seqs)][design.window], res.probs[len(seqs):]
        shift, tv = distribution_shift(p_orig, p_var)
        rows += _summarize_shifts(name, design, shift, tv, keep, reference, **summarize)
        items.append(item_frame(name, np.where(keep, shift, np.nan), np.where(keep, tv, np.nan)))
    table = pd.DataFrame(rows)
    return table, (pd.concat(items, ignore_index=True) if items else pd.DataFrame()), not_applicable


def _edit_shown(tok, seqs: list[str], edited: list[str], design: _Design) -> np.ndarray:
    """(n_edits,) bool: the edit is measurable with the same nucleotides hidden -- the edited nucleotide lies in
    at least one token that does not overlap q, in the unedited and in the re-tokenized edited window, and the
    masked stretch (the union of the tokens overlapping q) is the same in both (BPE may re-segment around an
    edit). Otherwise the mask itself hides the edit, or hides other nucleotides after the edit: skipped."""
    def view(spans: np.ndarray, q: int, pos: int) -> tuple[bool, int, int]:
        cover = (spans[:, 0] <= q) & (spans[:, 1] > q)
        free = ~cover
        shown = bool(((spans[free, 0] <= pos) & (spans[free, 1] > pos)).any())
        return shown, int(spans[cover, 0].min()), int(spans[cover, 1].max())

    spans_of = [tok.encode(s, where=f"window {w}").spans for w, s in enumerate(seqs)]
    keep = np.empty(len(edited), dtype=bool)
    for i, (w, pos, text) in enumerate(zip(design.window, design.position, edited)):
        q = int(design.q[w])
        before, after = view(spans_of[w], q, pos), view(tok.encode(text, where=f"window {w}").spans, q, pos)
        keep[i] = before[0] and after[0] and before[1:] == after[1:]
    return keep


def _side_and_distance(table, side: str, d: int | None, *, empty: str, no_side: str, verb: str):
    """(rows of ``table`` at ``side`` and distance ``d`` (None: the largest), d), or the sentence ``empty`` /
    ``no_side`` when there is nothing to read; ParameterError for a d that was not measured."""
    if table is None or not len(table):
        return empty
    part = table[table.side == side]
    if part.empty:
        return no_side
    ds = sorted(int(x) for x in part.d.unique())
    d = ds[-1] if d is None else int(d)
    if d not in ds:
        raise ParameterError(f"d={d} was not {verb} on side {side!r}; {verb.split()[0]}: {ds}.")
    return part[part.d == d], d


def distal_sentence(table, *, d: int | None = None, side: str = "right", margin: float = 0.01) -> str:
    """One computed sentence on :func:`distal_edits`' table at distance ``d`` (None: the largest) and ``side``:
    per model the mean shift with its interval, and against the n-gram's shift on the same edits, which models
    move more by at least ``margin`` bits (the interval of the paired difference lies above the margin: a shift of
    a thousandth of a bit is numerical noise of an untrained network, not context)."""
    picked = _side_and_distance(table, side, d, empty="No distal edit was measured in this run.",
                                no_side=f"No distal edit on the {side} side in this run.", verb="measured")
    if isinstance(picked, str):
        return picked
    part, d = picked
    ref = part[part.model == NGRAM]
    head = f"Changing one letter {d} nt to the {side} of a hidden nucleotide moves its predicted distribution by"
    bits = [f"{r.model} {r.shift_bits:.3f} bits [{r.shift_low:.3f}, {r.shift_high:.3f}]"
            for r in part[part.model != NGRAM].itertuples() if r.windows]
    text = f"{head} " + ("; ".join(bits) if bits else "nothing measurable (every edit was inside a masked token)")
    if len(ref):
        text += f"; the two-sided n-gram moves by {float(ref.shift_bits.iloc[0]):.3f} bits on the same edits"
        if "difference_low" in part:
            more = [r.model for r in part[part.model != NGRAM].itertuples()
                    if np.isfinite(getattr(r, "difference_low", np.nan)) and r.difference_low > margin]
            text += (f"; more than the n-gram by over {margin:g} bits (paired by window): "
                     f"{', '.join(more) if more else 'no model'}")
    return text + "."


def distal_versus_initial(trained_items, initial_items, *, margin: float = 0.01):
    """Trained against step 0 on the same distal edits: :func:`distal_edits` items of the trained models and of
    their step-0 twins, run with the same windows, distances and seed (so the same edit per window, d and side).

    Rows (model, d, side): windows (pairs where both kept the edit), trained and initial (mean shift_bits),
    difference (trained minus initial, bits) with low / high (95 % paired t-interval over windows) and p, and
    ``moved_more`` (the interval lies above ``margin`` bits: training made the hidden nucleotide follow a letter d
    nt away more than the initialisation did). Models missing on either side are left out."""
    import pandas as pd

    from .stats import compare_paired

    keys = ["model", "window", "d", "side"]
    both = trained_items.loc[trained_items.model != NGRAM, keys + ["shift_bits"]].merge(
        initial_items.loc[initial_items.model != NGRAM, keys + ["shift_bits"]], on=keys,
        suffixes=("_trained", "_initial"))
    rows = []
    for (model, d, side), part in both.groupby(["model", "d", "side"], sort=False):
        a, b = part.shift_bits_trained.to_numpy(float), part.shift_bits_initial.to_numpy(float)
        kept = ~(np.isnan(a) | np.isnan(b))
        if kept.sum() < 2:
            continue
        c = compare_paired(a, b, unit="windows")
        rows.append({"model": model, "d": int(d), "side": side, "windows": int(kept.sum()),
                     "trained": float(a[kept].mean()), "initial": float(b[kept].mean()), "difference": c.estimate,
                     "low": c.low, "high": c.high, "p": c.p, "moved_more": bool(c.low > margin)})
    return pd.DataFrame(rows, columns=["model", "d", "side", "windows", "trained", "initial", "difference", "low",
                                       "high", "p", "moved_more"])


def distal_step0_sentence(versus, *, d: int | None = None, side: str = "right", margin: float = 0.01) -> str:
    """One computed sentence on :func:`distal_versus_initial` at distance ``d`` (None: the largest) and ``side``:
    per model trained and step-0 shift, and which models training made follow the distal letter by more than
    ``margin`` bits."""
    picked = _side_and_distance(versus, side, d, empty="No model had step-0 weights to set its distal edits against.",
                                no_side=f"No distal edit on the {side} side was set against step 0.",
                                verb="compared with step 0")
    if isinstance(picked, str):
        return picked
    part, d = picked
    each = "; ".join(f"{r.model} {r.initial:.3f} -> {r.trained:.3f} bits (difference {r.difference:+.3f} "
                     f"[{r.low:+.3f}, {r.high:+.3f}])" for r in part.itertuples())
    more = [r.model for r in part.itertuples() if r.moved_more]
    return (f"Against its step-0 twin on the same edits, the shift caused by a letter {d} nt to the {side} went "
            f"(step 0 -> trained) {each}; training added more than {margin:g} bits of it for: "
            f"{', '.join(more) if more else 'no model'}.")


__all__ = ["OUTCOMES", "SIDES", "NGRAM", "single_token_edit", "summarize_single_edit", "single_edit_sentence",
           "distribution_shift", "default_distances", "distal_edits", "distal_sentence",
           "distal_versus_initial", "distal_step0_sentence"]
