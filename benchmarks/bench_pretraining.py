"""Pre-training throughput: the project's Trainer set-up vs a plain Trainer with default settings.

Both runs train the same zoo model (default: overlap6 at the zoo's size) on the same windows with the same
masking collator for ``--steps`` steps; the plain run uses BertForMaskedLM and TrainingArguments as they
come (fp32, default optimiser); the project's run uses bf16 autocast where supported, the fused AdamW, and
runs the MLM head on masked positions only (same loss). The script prints tokens/s of each,
their ratio (target >= 1.5x), this CPU's measured bf16 and fp32 matmul peak, and the estimated share of that
peak the project's run reaches (model FLOPs: 6 per parameter per token for the matmul weights, plus attention).

    .venv/bin/python benchmarks/bench_pretraining.py [--model overlap6] [--steps 40]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from dnalm_utils import corpus
from dnalm_utils import pretraining as P


def matmul_peak(dtype, n: int = 2048, repeats: int = 20) -> float:
    """FLOP/s of an n x n matmul in ``dtype`` on this machine (best of ``repeats``)."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def flops_per_token(cfg: P.PretrainConfig, vocab: int, seq: int) -> float:
    """Useful training FLOPs per input token: 6 x matmul weights of the encoder + attention, plus the MLM head
    (transform + decoder) on the ~15 % of tokens that carry a label (the only head outputs the loss uses)."""
    h, i, layers = cfg.hidden, cfg.intermediate, cfg.layers
    per_layer = 4 * h * h + 2 * h * i
    head = h * h + h * vocab
    return 6 * layers * per_layer + 12 * layers * seq * h + 6 * head * cfg.mask_rate


def run(cfg: P.PretrainConfig, windows, tokenizer, *, fast: bool, steps: int) -> tuple[float, int]:
    from transformers import Trainer

    model = P.build_model(cfg, tokenizer, masked_positions_only=fast)
    with tempfile.TemporaryDirectory() as out:
        args = P.training_arguments(cfg.replace(steps=steps, save_steps=10**9, logging_steps=10**9), out,
                                    progress=False, fast=fast)
        args.save_strategy = "no"
        collator = P.MaskingCollator(tokenizer, cfg)
        trainer = Trainer(model=model, args=args, train_dataset=P.WindowDataset(windows, tokenizer, cfg.max_positions),
                          data_collator=collator)
        trainer.train()  # includes a warm-up: compare the steady state below
        t0 = time.perf_counter()
        trainer.args.max_steps = steps
        trainer.train()
        dt = time.perf_counter() - t0
    tokens = steps * cfg.batch_size * (len(tokenizer.encode(windows[0])) + 2)
    return tokens / dt, tokens


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="overlap6")
    ap.add_argument("--steps", type=int, default=40)
    args = ap.parse_args(argv)
    cfg = P.zoo_config(args.model)
    records = corpus.corpus_records()
    windows = P.sample_training_windows(cfg, records, n=args.steps * cfg.batch_size)
    tokenizer = __import__("dnalm_utils.tokenization", fromlist=["make_tokenizer"]).make_tokenizer(
        cfg.scheme, cfg.k, corpus=corpus.acgt_pieces([r.sequence for r in records]), vocab_size=cfg.bpe_vocab_size)
    plain, _ = run(cfg, windows, tokenizer, fast=False, steps=args.steps)
    fast, _ = run(cfg, windows, tokenizer, fast=True, steps=args.steps)
    seq = len(tokenizer.encode(windows[0])) + 2
    per_token = flops_per_token(cfg, tokenizer.vocab_size, seq)
    peak_bf16, peak_fp32 = matmul_peak(torch.bfloat16), matmul_peak(torch.float32)
    print(f"model {cfg.name}: {cfg.layers} layers x {cfg.hidden}, vocab {tokenizer.vocab_size}, {seq} tokens/window, "
          f"batch {cfg.batch_size}, {torch.get_num_threads()} threads")
    print(f"plain Trainer (fp32, default AdamW):        {plain:10,.0f} tokens/s")
    print(f"project set-up (bf16, fused AdamW, head on masked positions): {fast:10,.0f} tokens/s")
    ratio = fast / plain
    print(f"speed-up ratio: {ratio:.2f}x (target >= 1.5x) -> {'PASS' if ratio >= 1.5 else 'FAIL'}")
    print(f"matmul peak on this machine: bf16 {peak_bf16 / 1e9:,.0f} GFLOP/s, fp32 {peak_fp32 / 1e9:,.0f} GFLOP/s")
    print(f"model FLOPs per token (training): {per_token / 1e6:.2f} MFLOP; achieved {fast * per_token / 1e9:,.1f} "
          f"GFLOP/s = {100 * fast * per_token / peak_bf16:.1f} % of the bf16 peak "
          f"(plain: {100 * plain * per_token / peak_fp32:.1f} % of the fp32 peak)")
    return 0 if ratio >= 1.5 else 1


if __name__ == "__main__":
    raise SystemExit(main())
