"""Peak memory of the default embedding extraction on a DNABERT-size model: token means of all 13 hidden states
and the layer metrics, 200 windows of 510 overlapping 6-mers (+ [CLS]/[SEP] = 512 positions).

Model: a random ``BertForMaskedLM`` with DNABERT-6's shape (12 layers x 768 hidden, 12 heads, 3072
intermediate, 4101-token 6-mer vocabulary, 512 positions), written by ``models.make_tiny_dnabert`` in a
subprocess (so that building and saving it does not count towards this process's peak) and loaded with
``models.load_model``. Windows: seeded random ACGT of tokens + 5 nt. Path timed and measured:
``embeddings.token_statistics`` (one streamed pass, every layer) then ``metrics_from_statistics`` (token
means, letter purity, GC k-NN R^2, self-similarity, variance share) -- what ``layer_metrics`` runs.

Memory: peak resident set size of the process (``resource.getrusage(...).ru_maxrss``), reported against the
4 GB target as a ratio (peak / target; <= 1 passes). Timings are from one run.

    .venv/bin/python benchmarks/bench_embeddings.py [--windows 200] [--tokens 510] [--quick] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

GB = 1024**3


def peak_rss() -> int:
    """Peak resident set size of this process so far, in bytes (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def current_rss() -> int:
    """Resident set size now, in bytes (Linux /proc; falls back to the peak elsewhere)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return peak_rss()


def build_model(folder: Path, seed: int) -> None:
    """Write the random DNABERT-6-size checkpoint in a child process."""
    code = (
        "import sys; from dnalm_utils.models import make_tiny_dnabert; "
        "make_tiny_dnabert(sys.argv[1], k=6, layers=12, hidden=768, heads=12, intermediate=3072, "
        "max_positions=512, seed=int(sys.argv[2]))"
    )
    subprocess.run([sys.executable, "-c", code, str(folder), str(seed)], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--windows", type=int, default=200)
    ap.add_argument("--tokens", type=int, default=510, help="6-mers per window (510 + [CLS]/[SEP] = 512 positions)")
    ap.add_argument("--quick", action="store_true", help="20 windows: a one-minute check of the whole path")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--max-batch-tokens", type=int, default=None, help="default: embeddings.MAX_BATCH_TOKENS")
    ap.add_argument("--min-occurrences", type=int, default=5)
    ap.add_argument("--no-amp", action="store_true", help="run in float32 instead of bf16 autocast")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--target-gb", type=float, default=4.0)
    args = ap.parse_args(argv)
    n_windows = 20 if args.quick else args.windows

    import torch

    from dnalm_utils import embeddings as E
    from dnalm_utils.models import load_model

    if args.threads:
        torch.set_num_threads(args.threads)
    max_batch_tokens = args.max_batch_tokens or E.MAX_BATCH_TOKENS
    rng = np.random.default_rng(args.seed)
    length = args.tokens + 6 - 1
    windows = ["".join(rng.choice(list("ACGT"), length)) for _ in range(n_windows)]
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        build_model(Path(tmp) / "dnabert6_random", args.seed)
        t_build = time.perf_counter() - t0
        lm = load_model(Path(tmp) / "dnabert6_random")
        info = lm.describe()
        rss_loaded = current_rss()
        print(f"model: random DNABERT-6 shape ({info['layers']} layers x {info['hidden']}, {info['heads']} heads, "
              f"{info['parameters']:,} parameters, vocab {info['vocab_size']}), built in {t_build:.0f} s; device "
              f"{lm.device}, {torch.get_num_threads()} thread(s), {'float32' if args.no_amp else 'bf16 autocast'}")
        print(f"windows: {n_windows} x {length} nt = {n_windows * args.tokens:,} tokens ({args.tokens} + [CLS]/[SEP] "
              f"per window); batch_size {args.batch_size}, max_batch_tokens {max_batch_tokens}")
        print(f"RSS after loading the model: {rss_loaded / GB:.2f} GB")

        t0 = time.perf_counter()
        stats = E.token_statistics(lm, windows, batch_size=args.batch_size, max_batch_tokens=max_batch_tokens,
                                   amp=not args.no_amp)
        t_stats = time.perf_counter() - t0
        rss_stats = peak_rss()
        t0 = time.perf_counter()
        table = E.metrics_from_statistics(stats, min_occurrences=args.min_occurrences)
        t_metrics = time.perf_counter() - t0
        means = stats.means(args.min_occurrences)

    peak = peak_rss()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    acc_bytes = stats.sums.nbytes + stats.unit_sums.nbytes
    tokens = n_windows * args.tokens
    print(f"token statistics (one streamed pass, {len(stats.layers)} layers): {t_stats:7.1f} s "
          f"({tokens / t_stats:,.0f} tokens/s); per-token sums {acc_bytes / GB:.2f} GB")
    print(f"layer metrics ({len(table)} rows; token means {means.vectors.shape} over tokens seen >= "
          f"{args.min_occurrences} times): {t_metrics:7.1f} s")
    last = table[table.layer == table.layer.max()].set_index("metric")
    print("last layer: " + ", ".join(f"{m} {v:.3f} (baseline {b:.3f})" for m, v, b in
                                     zip(last.index, last.value, last.baseline)))
    print(f"1-minute load average at the end: {load:.1f} on {os.cpu_count()} CPUs (timings assume an otherwise idle machine)")
    print(f"peak RSS after the streamed pass: {rss_stats / GB:.2f} GB; overall peak: {peak / GB:.2f} GB")
    full = len(stats.layers) * tokens * info["hidden"] * 2
    print(f"for comparison, storing every occurrence of every layer as float16 would take {full / GB:.2f} GB")
    ratio = peak / (args.target_gb * GB)
    print(f"peak / target: {peak / GB:.2f} GB / {args.target_gb:g} GB = {ratio:.2f} -> {'PASS' if ratio <= 1 else 'FAIL'}")
    return 0 if ratio <= 1 else 1


if __name__ == "__main__":
    raise SystemExit(main())
