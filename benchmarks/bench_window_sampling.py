#!/usr/bin/env python
"""Benchmark: peak memory and time of Genome.open + segment scan + sample_windows on a > 1 GB FASTA.

The parent writes (or reuses) a seeded synthetic FASTA of several chromosomes of random ACGT with N runs,
60 nt per line, then runs this script again as a child process (``--child``) that opens it with
``Genome.open``, scans its ACGT segments (one-time cost, included), and samples windows. The child reports
its peak resident set size (``ru_maxrss``) and timings as JSON; the parent prints the file size, the peak
RSS, the ratio peak RSS / file size, and PASS/FAIL against the memory target (default 500 MB, 1 MB = 10^6 B).

    python benchmarks/bench_window_sampling.py                  # 1.1 GB file in benchmarks/_work/
    python benchmarks/bench_window_sampling.py --size-gb 0.05   # quick smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
LINE = 60
CHROM_FRACTIONS = (0.28, 0.24, 0.20, 0.16, 0.12)  # five chromosomes of decreasing size
CHUNK_LINES = 100_000  # lines written per block (6 Mb of sequence)
MB = 10**6


def chrom_lengths(size_bytes: int) -> list[int]:
    """Chromosome lengths (nt) so the whole file is about ``size_bytes`` (61 bytes per 60 nt)."""
    total_nt = int(size_bytes * LINE / (LINE + 1))
    return [int(total_nt * f) for f in CHROM_FRACTIONS]


def expected_size(lengths: list[int]) -> int:
    """Exact byte size of the FASTA written by :func:`write_fasta` for these lengths."""
    return sum(len(f">chr{i + 1} synthetic\n") + n + -(-n // LINE) for i, n in enumerate(lengths))


def n_runs(rng: np.random.Generator, length: int) -> np.ndarray:
    """[start, end) N runs: 10 kb telomeres, a 100 kb 'centromere', 40 gaps of 1 nt to 50 kb."""
    starts = rng.integers(0, length, size=40)
    ends = np.minimum(starts + rng.integers(1, 50_000, size=40), length)
    mid = length // 2
    runs = [(0, 10_000), (length - 10_000, length), (mid, mid + 100_000)]
    runs += list(zip(starts.tolist(), ends.tolist()))
    return np.array(sorted(runs), dtype=np.int64)


def write_fasta(path: Path, size_bytes: int, seed: int) -> None:
    """Write the synthetic FASTA block by block (vectorised), to a temporary name, then rename."""
    rng = np.random.default_rng(seed)
    lut = np.frombuffer(b"ACGT", dtype=np.uint8)
    tmp = path.with_name(path.name + ".part")
    block = CHUNK_LINES * LINE
    with open(tmp, "wb") as fh:
        for i, length in enumerate(chrom_lengths(size_bytes)):
            fh.write(f">chr{i + 1} synthetic\n".encode())
            runs = n_runs(rng, length)
            for cs in range(0, length, block):
                ce = min(cs + block, length)
                seq = lut[rng.integers(0, 4, size=ce - cs, dtype=np.uint8)]
                hit = runs[(runs[:, 0] < ce) & (runs[:, 1] > cs)]
                for s, e in hit.tolist():
                    seq[max(s, cs) - cs: min(e, ce) - cs] = ord("N")
                full = (ce - cs) // LINE
                out = np.empty((full, LINE + 1), dtype=np.uint8)
                out[:, :LINE] = seq[: full * LINE].reshape(full, LINE)
                out[:, LINE] = ord("\n")
                fh.write(out.tobytes())
                if (ce - cs) % LINE:
                    fh.write(seq[full * LINE:].tobytes() + b"\n")
    os.replace(tmp, path)


def child(args) -> None:
    sys.path.insert(0, str(REPO))
    from dnalm_utils.genome import Genome, sample_windows

    fasta = Path(args.fasta)
    had_index = Path(str(fasta) + ".fai").exists()
    t0 = time.perf_counter()
    genome = Genome.open(fasta)
    t1 = time.perf_counter()
    segs = genome.segments(progress=args.progress)
    t2 = time.perf_counter()
    windows = sample_windows(genome, args.n, args.length, seed=args.seed)
    t3 = time.perf_counter()
    ok = all(len(w.sequence) == args.length and not w.sequence.strip("ACGT") for w in windows)
    again = sample_windows(genome, 10, args.length, seed=args.seed)
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({
        "backend": genome.backend, "records": len(genome), "total_nt": genome.total_length,
        "segments": len(segs), "index_built": not had_index, "windows": len(windows), "windows_ok": ok,
        "reproducible": [(w.name, w.start) for w in again] == [(w.name, w.start) for w in windows[:10]],
        "open_s": t1 - t0, "scan_s": t2 - t1, "sample_s": t3 - t2, "peak_rss_bytes": rss_kib * 1024,
    }))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", default=str(REPO / "benchmarks" / "_work"), help="folder for the FASTA (gitignored)")
    ap.add_argument("--size-gb", type=float, default=1.1, help="FASTA size in GB (10^9 bytes); default 1.1")
    ap.add_argument("--n", type=int, default=10_000, help="windows to sample")
    ap.add_argument("--length", type=int, default=512, help="window length, nt")
    ap.add_argument("--seed", type=int, default=0, help="seed for the FASTA and the sampling")
    ap.add_argument("--target-mb", type=float, default=500.0, help="peak RSS target, MB (10^6 bytes)")
    ap.add_argument("--rebuild-index", action="store_true", help="delete the .fai first so the child builds it")
    ap.add_argument("--progress", action="store_true", help="show the segment-scan progress bar")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--fasta", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args)
        return 0

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    size_bytes = int(args.size_gb * 1e9)
    lengths = chrom_lengths(size_bytes)
    fasta = work / f"synthetic_{args.size_gb:g}GB_seed{args.seed}.fa"
    want = expected_size(lengths)
    if fasta.exists() and fasta.stat().st_size == want:
        print(f"reusing {fasta}")
    else:
        print(f"writing {fasta} ({want / 1e9:.3f} GB) ...", flush=True)
        t = time.perf_counter()
        write_fasta(fasta, size_bytes, args.seed)
        print(f"  written in {time.perf_counter() - t:.1f} s")
    assert fasta.stat().st_size == want, "generated file has an unexpected size"
    if args.rebuild_index:
        Path(str(fasta) + ".fai").unlink(missing_ok=True)

    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--fasta", str(fasta), "--n", str(args.n),
           "--length", str(args.length), "--seed", str(args.seed)] + (["--progress"] if args.progress else [])
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        print(f"child failed with exit code {proc.returncode}")
        return 2
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    size = fasta.stat().st_size
    rss = res["peak_rss_bytes"]
    passed = rss <= args.target_mb * MB and res["windows_ok"] and res["reproducible"]
    print(f"file:            {fasta}")
    print(f"file size:       {size / MB:,.1f} MB ({size:,} bytes; {res['records']} records, {res['total_nt']:,} nt)")
    print(f"backend:         {res['backend']} (index built in this run: {res['index_built']})")
    print(f"segments:        {res['segments']:,} ACGT-only runs")
    print(f"windows:         {res['windows']:,} x {args.length} nt, all ACGT and right length: {res['windows_ok']},"
          f" reproducible: {res['reproducible']}")
    print(f"time:            open {res['open_s']:.2f} s, segment scan {res['scan_s']:.2f} s, "
          f"sampling {res['sample_s']:.2f} s, total {res['open_s'] + res['scan_s'] + res['sample_s']:.2f} s")
    print(f"peak RSS:        {rss / MB:,.1f} MB")
    print(f"peak RSS / file: {rss / size:.3f}")
    print(f"target:          peak RSS <= {args.target_mb:g} MB -> {'PASS' if passed else 'FAIL'}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
