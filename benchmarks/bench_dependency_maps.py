"""Nucleotide dependency map of a window: this package's batched map vs one forward pass per model input.

A dependency map of an L-nt window needs the model's ACGT distribution at every target j, with j hidden, for
the reference and each of its 3L single-letter variants: about 3 L^2 masked inputs (a variant sequence with
one target hidden; ``dependency_maps.variant_rows``).

* Package path: ``dependency_maps.dependency_map(lm, window, batch_size=B)`` -- every masked input of the
  window in forward passes of B rows.
* Reference path A, one forward pass per model input: for each (variant, target) of ``variant_rows``,
  ``masking.nucleotide_block_eval(lm, [variant], [(j, j + 1)], batch_size=1)``; the map is assembled from these
  probabilities with ``dependency_maps.dependency_from_probs``.
* Reference path B, one forward pass per variant sequence: the same, but all targets of one variant in one
  call (one forward of about L rows per variant, 1 + 3L forwards).

Check: the three maps are equal (allclose, NaN in the same places), all run in float32 (``amp=False``) so that
the comparison is exact up to batching noise; the package's bf16 (default) time is printed too.
Timing: best of ``--repeats``; ratios are reference time / package time (target >= 10x against path A).

    .venv/bin/python benchmarks/bench_dependency_maps.py [--length 48] [--n 1] [--model overlap6] [--threads 1]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from bench_masking import real_windows
from common import best_time


def per_input_map(lm, window: str, *, per_variant: bool) -> np.ndarray:
    """The map with one forward pass per masked input (per_variant=False) or per variant sequence (True)."""
    from dnalm_utils import dependency_maps as DM
    from dnalm_utils.masking import nucleotide_block_eval

    rows = DM.variant_rows(lm.tokenizer, window)
    probs = np.empty((len(rows.seqs), 4))
    if per_variant:
        starts = np.flatnonzero(np.r_[True, (rows.query[1:] != rows.query[:-1]) | (rows.letter[1:] != rows.letter[:-1])])
        for lo, hi in zip(starts, np.r_[starts[1:], len(rows.seqs)]):
            blocks = np.stack([rows.target[lo:hi], rows.target[lo:hi] + 1], axis=1)
            probs[lo:hi] = nucleotide_block_eval(lm, rows.seqs[lo:hi], blocks, batch_size=hi - lo, amp=False).probs
    else:
        for r, (seq, j) in enumerate(zip(rows.seqs, rows.target)):
            probs[r] = nucleotide_block_eval(lm, [seq], np.array([[j, j + 1]]), batch_size=1, amp=False).probs[0]
    length = len(window)
    ref, var = np.full((length, 4), np.nan), np.full((length, 3, length, 4), np.nan)
    is_ref = rows.query < 0
    ref[rows.target[is_ref]] = probs[is_ref]
    var[rows.query[~is_ref], rows.letter[~is_ref], rows.target[~is_ref]] = probs[~is_ref]
    return DM.dependency_from_probs(ref, var)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1, help="windows")
    ap.add_argument("--length", type=int, default=48, help="window length in nt")
    ap.add_argument("--model", default=None, help="zoo name / folder / hub id of a masked model (default: a tiny "
                    "random DNABERT-6, 2 layers x 128, built in a temp dir, --sharpen)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads for every path")
    ap.add_argument("--target", type=float, default=10.0)
    ap.add_argument("--sharpen", type=float, default=10.0, help="the built tiny model's weight matrices are "
                    "multiplied by this, so that its predictions (and the map) are far from uniform and the "
                    "equality check has something to compare (a fresh init gives maps of ~1e-4 bits)")
    args = ap.parse_args(argv)

    import torch

    from dnalm_utils import dependency_maps as DM
    from dnalm_utils.models import load_model, make_tiny_dnabert

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        if args.model is None:
            folder = make_tiny_dnabert(Path(tmp) / "tiny_dnabert6", k=6, layers=2, hidden=128, heads=2,
                                       intermediate=256, max_positions=512, seed=args.seed)
            lm, label = load_model(folder), f"tiny random DNABERT-6 (2 layers x 128, weights x {args.sharpen:g})"
            with torch.no_grad():
                for p in lm.model.parameters():
                    if p.ndim >= 2:
                        p.mul_(args.sharpen)
        else:
            lm, label = load_model(args.model), args.model
        windows, source = real_windows(args.n, args.length, args.seed)
        n_inputs = sum(len(DM.variant_rows(lm.tokenizer, w).seqs) for w in windows)
        print(f"model: {label} ({lm.describe()['parameters']:,} parameters, {lm.tokenizer.description}), device "
              f"{lm.device}, {args.threads} thread(s)")
        print(f"windows: {len(windows)} x {args.length} nt from {source}; {n_inputs} masked inputs "
              f"(variant x hidden target)")

        batched = lambda amp: DM.dependency_maps(lm, windows, batch_size=args.batch_size, amp=amp)
        DM.dependency_map(lm, windows[0][:16], batch_size=args.batch_size, amp=False)  # warm-up
        t_pkg, maps = best_time(lambda: batched(False), args.repeats)
        t_amp, _ = best_time(lambda: batched(True), args.repeats)
        t_var, by_var = best_time(lambda: np.stack([per_input_map(lm, w, per_variant=True) for w in windows]),
                                  args.repeats)
        t_row, by_row = best_time(lambda: np.stack([per_input_map(lm, w, per_variant=False) for w in windows]),
                                  args.repeats)

        same = all(np.allclose(maps, ref, rtol=1e-4, atol=1e-4, equal_nan=True) for ref in (by_row, by_var))
        worst = max(float(np.nanmax(np.abs(maps - ref))) for ref in (by_row, by_var))
        print(f"maps equal (allclose 1e-4, NaN alike): {same}; largest difference {worst:.2e} bits "
              f"(map: median {np.nanmedian(maps):.3g}, max {np.nanmax(maps):.3g} bits)")
        print(f"package dependency_maps, batch {args.batch_size}, fp32:      {t_pkg:8.2f} s  "
              f"({n_inputs / t_pkg:7.0f} inputs/s)")
        print(f"package dependency_maps, batch {args.batch_size}, bf16 autocast: {t_amp:4.2f} s  "
              f"({n_inputs / t_amp:7.0f} inputs/s)")
        print(f"A: one forward pass per masked input, fp32:   {t_row:8.2f} s  ({n_inputs / t_row:7.0f} inputs/s)")
        print(f"B: one forward pass per variant sequence, fp32: {t_var:6.2f} s  ({n_inputs / t_var:7.0f} inputs/s)")
        ratio, ratio_var = t_row / t_pkg, t_var / t_pkg
        ok = same and ratio >= args.target
        print(f"speed-up (fp32 vs fp32): {ratio:.1f}x over A (target >= {args.target:g}x), {ratio_var:.2f}x over B; "
              f"bf16 package over A: {t_row / t_amp:.1f}x -> {'PASS' if ok else 'FAIL'}")
        return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
