"""Overlapping 6-mer tokenization of 1 Mb into ids: this package vs the path users take today.

Reference path (DNABERT's README and most forks): ``seq2kmer`` (a Python list of k-mer strings joined with
spaces), then Hugging Face ``BertTokenizer`` on that string. Both must give identical ids; the script
prints both times and their ratio (target: >= 50x), measured in one run, best of ``--repeats``.

    .venv/bin/python benchmarks/bench_tokenization.py [--mb 1] [--k 6] [--repeats 3]
"""

from __future__ import annotations

import argparse

import numpy as np
from common import best_time

from dnalm_utils.tokenization import OverlappingKmerTokenizer


def seq2kmer(seq: str, k: int) -> str:
    """DNABERT's motif_utils.seq2kmer: space-separated overlapping k-mers."""
    return " ".join(seq[x : x + k] for x in range(len(seq) + 1 - k))


def real_sequence(n: int) -> tuple[str, str]:
    """``n`` nt of ACGT-only bundled human sequence (pre-training corpus), or seeded random if absent."""
    try:
        from dnalm_utils.data import bundled_file
        from dnalm_utils.genome import acgt_segments, read_fasta

        parts, total = [], 0
        for rec in read_fasta(bundled_file("pretrain")):
            for s, e in acgt_segments(rec.sequence, 1000):
                parts.append(rec.sequence[s:e])
                total += e - s
                if total >= n:
                    return "".join(parts)[:n], "bundled human pre-training corpus (ACGT segments)"
    except Exception:  # data module missing: fall back to random sequence
        pass
    rng = np.random.default_rng(0)
    return "".join(rng.choice(list("ACGT"), n)), "seeded random sequence"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=1.0, help="megabases to tokenize")
    ap.add_argument("--k", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    n = int(args.mb * 1_000_000)
    seq, source = real_sequence(n)
    tok = OverlappingKmerTokenizer(args.k)
    hf = tok.to_hf()

    t_ours, ids_ours = best_time(lambda: tok.encode(seq).ids, args.repeats)
    t_ref, ids_ref = best_time(
        lambda: hf(seq2kmer(seq, args.k), add_special_tokens=False, verbose=False)["input_ids"], args.repeats
    )
    identical = np.array_equal(ids_ours, np.asarray(ids_ref))
    print(f"sequence: {len(seq):,} nt from {source}; k = {args.k}; {ids_ours.shape[0]:,} tokens")
    print(f"reference (seq2kmer + BertTokenizer): {t_ref:8.3f} s")
    print(f"dnalm_utils OverlappingKmerTokenizer: {t_ours:8.3f} s")
    print(f"identical ids: {identical}")
    ratio = t_ref / t_ours
    print(f"speed-up ratio: {ratio:.1f}x (target >= 50x) -> {'PASS' if ratio >= 50 and identical else 'FAIL'}")
    return 0 if identical and ratio >= 50 else 1


if __name__ == "__main__":
    raise SystemExit(main())
