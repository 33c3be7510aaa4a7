"""Single-token masked prediction on N windows: this package's batched sweep vs one fill-mask call per window.

Package path: ``masking.span_mask_sweep(lm, windows, [1])`` -- one random token masked per window (away from
the edges), all windows in batched forward passes under bf16 autocast (``amp=False``: the model's dtype).
Reference path (what users write today): transformers' ``pipeline("fill-mask", model=lm.model,
tokenizer=lm.hf_tokenizer)`` called on one space-separated k-mer string at a time, the token replaced by
``[MASK]``, ``top_k=1``.

Check: the predicted token of every window is identical. The pipeline runs the model in its own dtype
(float32 on CPU) and may rank a special token first; the package excludes specials. So the check compares
the pipeline with the package run with ``amp=False``, and, where the pipeline's top-1 is a special token,
with its best non-special token (an extra, untimed call with a larger top_k). The bf16 (default) run is
compared too and its disagreements (ties broken differently by bf16 rounding) are reported, not failed.
Timing: best of ``--repeats``, after a warm-up; the ratio is pipeline time / package time (target >= 5x).

    .venv/bin/python benchmarks/bench_masking.py [--n 300] [--length 64] [--model overlap6] [--threads 1]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from common import best_time


def real_windows(n: int, length: int, seed: int) -> tuple[list[str], str]:
    """``n`` ACGT-only windows of ``length`` nt from the bundled human pre-training corpus (seeded random if absent)."""
    try:
        from dnalm_utils.data import bundled_file
        from dnalm_utils.genome import acgt_segments, read_fasta

        out = []
        for rec in read_fasta(bundled_file("pretrain")):
            for s, e in acgt_segments(rec.sequence, length):
                for lo in range(s, e - length + 1, length):
                    out.append(rec.sequence[lo : lo + length].upper())
            if len(out) >= 20 * n:
                break
        if len(out) >= n:
            pick = np.random.default_rng(seed).choice(len(out), n, replace=False)
            return [out[i] for i in sorted(pick)], "bundled human pre-training corpus (ACGT windows)"
    except Exception:  # data module or file missing: fall back to random sequence
        pass
    rng = np.random.default_rng(seed)
    return ["".join(rng.choice(list("ACGT"), length)) for _ in range(n)], "seeded random sequence"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=300, help="windows (one masked token each)")
    ap.add_argument("--length", type=int, default=64, help="window length in nt")
    ap.add_argument("--model", default=None, help="zoo name / folder / hub id of an overlapping k-mer model "
                    "(default: a tiny random DNABERT-6, 2 layers x 128, built in a temp dir)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads for both paths")
    ap.add_argument("--target", type=float, default=5.0)
    args = ap.parse_args(argv)

    import torch
    from transformers import pipeline
    from transformers.utils import logging as hf_logging

    from dnalm_utils import masking as MK
    from dnalm_utils.models import load_model, make_tiny_dnabert

    torch.set_num_threads(args.threads)
    hf_logging.set_verbosity_error()
    with tempfile.TemporaryDirectory() as tmp:
        if args.model is None:
            folder = make_tiny_dnabert(Path(tmp) / "tiny_dnabert6", k=6, layers=2, hidden=128, heads=2,
                                       intermediate=256, max_positions=512, seed=args.seed)
            lm, label = load_model(folder), "tiny random DNABERT-6 (2 layers x 128, 512 positions)"
        else:
            lm, label = load_model(args.model), args.model
        tok = lm.tokenizer
        if tok.scheme != "overlapping":
            raise SystemExit(f"{label}: {tok.description}; this benchmark builds DNABERT's space-separated k-mer "
                             "strings, so it needs an overlapping k-mer model.")
        windows, source = real_windows(args.n, args.length, args.seed)
        print(f"model: {label} ({lm.describe()['parameters']:,} parameters, {tok.description}), device {lm.device}, "
              f"{args.threads} thread(s)")
        print(f"windows: {len(windows)} x {args.length} nt from {source}; one random token masked per window")

        run = lambda amp: MK.span_mask_sweep(lm, windows, [1], seed=args.seed, batch_size=args.batch_size, amp=amp)
        run(True), run(False)  # warm-up
        t_amp, sweep_amp = best_time(lambda: run(True), args.repeats)
        t_fp32, sweep = best_time(lambda: run(False), args.repeats)
        starts = sweep.start.to_numpy()
        assert (sweep_amp.start.to_numpy() == starts).all()

        hf = lm.hf_tokenizer
        mask = tok.special_tokens["mask"]
        texts = []
        for w, (seq, a) in enumerate(zip(windows, starts)):
            kmers = tok.convert_ids_to_tokens(tok.encode(seq).ids)
            kmers[a] = mask
            texts.append(" ".join(kmers))
            if w == 0:  # the HF tokenizer must give the package's ids
                ids = tok.encode(seq).ids.copy()
                ids[a] = tok.mask_id
                assert hf(texts[0])["input_ids"] == [tok.cls_id, *ids.tolist(), tok.sep_id], "HF tokenizer ids differ"
        fill = pipeline("fill-mask", model=lm.model, tokenizer=hf, device=lm.device)
        fill(texts[0], top_k=1)  # warm-up
        t_pipe, answers = best_time(lambda: [fill(t, top_k=1)[0]["token"] for t in texts], args.repeats)

        pipe = np.array(answers)
        special_first = np.flatnonzero(tok.is_special[pipe])
        for i in special_first:  # the package never predicts a special token: take the pipeline's best k-mer
            ranked = fill(texts[i], top_k=len(tok.special_ids) + 1)
            pipe[i] = next(r["token"] for r in ranked if not tok.is_special[r["token"]])
        pred, pred_amp = sweep.pred_id.to_numpy(), sweep_amp.pred_id.to_numpy()
        same, same_amp = int((pipe == pred).sum()), int((pipe == pred_amp).sum())
        n = len(windows)

        print(f"pipeline top-1 was a special token in {len(special_first)} window(s) (replaced by its best k-mer for the check)")
        print(f"identical predicted token: package fp32 {same}/{n}, package bf16 autocast {same_amp}/{n} "
              f"({n - same_amp} bf16 rounding differences)")
        print(f"package span_mask_sweep, bf16 autocast: {t_amp * 1e3:9.1f} ms  ({n / t_amp:8.0f} windows/s)")
        print(f"package span_mask_sweep, fp32 (amp=False): {t_fp32 * 1e3:6.1f} ms  ({n / t_fp32:8.0f} windows/s)")
        print(f"HF fill-mask pipeline, one call per window: {t_pipe * 1e3:5.1f} ms  ({n / t_pipe:8.0f} windows/s)")
        ratio, ratio_fp32 = t_pipe / t_amp, t_pipe / t_fp32
        ok = same == n and ratio >= args.target
        print(f"speed-up: {ratio:.1f}x (bf16 default), {ratio_fp32:.1f}x (fp32); target >= {args.target:g}x; "
              f"predictions {'identical' if same == n else 'DIFFER'} -> {'PASS' if ok else 'FAIL'}")
        return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
