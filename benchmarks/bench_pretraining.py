"""Pre-training throughput: the book's training loop against the project's previous path, side by side.

Both train the same zoo arm (default: overlap6 at the zoo's size) on the same windows with the same masking
for ``--steps`` steps after a warm-up, in one process, one after the other, on this machine:

* **reference** -- the path the zoo used before (kept here verbatim in spirit so the ratio stays measurable):
  a ``transformers.Trainer`` with bf16 autocast, fused AdamW, the MLM head on masked positions only, BERT's
  0.1 dropout, SDPA attention, windows tokenised per item by a map-style dataset and padded by a collator;
* **book** -- ``pretraining.train``'s loop (``pretraining._Run``): windows tokenised once into one tensor, no
  dropout, foreach AdamW, bf16 autocast, gradient clipping, and the last layer's queries and feed-forward and
  the head on masked positions only (``families.bert.states_at``).

It prints tokens/s of each, their ratio (target >= 2x), this CPU's bf16 and fp32 matmul peak measured in the
same run, and the share of the bf16 peak each path reaches (model FLOPs: 6 per matmul weight per token, plus
attention and the head on the ~15 % labelled tokens). Only same-run ratios count: machines differ.

    .venv/bin/python benchmarks/bench_pretraining.py [--model overlap6] [--steps 40] [--threads 1]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch

from dnalm_utils import corpus
from dnalm_utils import pretraining as P
from dnalm_utils.tokenization import make_tokenizer


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
    """Useful training FLOPs per input token (6 per matmul weight, forward and backward): every layer but the last
    on every token (projections, feed-forward, attention); in the last layer the keys and values of every token,
    and the queries, attention, output projection and feed-forward only at the ~15 % of tokens that carry a label;
    the MLM head (transform + decoder) at those tokens too. That is all the loss depends on, whatever a path
    computes besides."""
    h, i, layers, rate = cfg.hidden, cfg.intermediate, cfg.layers, cfg.mask_rate
    per_layer = 4 * h * h + 2 * h * i + 2 * seq * h  # projections, feed-forward, scores and weighted values
    last = 2 * h * h + rate * (2 * h * h + 2 * h * i + 2 * seq * h)
    head = h * h + h * vocab
    return 6 * ((layers - 1) * per_layer + last) + 6 * head * rate


# ---- the reference path (the zoo's training before the book's own loop) ---------------------------------
class ReferenceDataset(torch.utils.data.Dataset):
    """Item i = the framed token ids of window i, tokenised on access."""

    def __init__(self, windows, tokenizer):
        self.windows, self.tok = windows, tokenizer

    def __len__(self):
        return len(self.windows)

    def __getitem__(self, i):
        return {"input_ids": torch.from_numpy(self.tok.encode_ids(self.windows[i], add_special_tokens=True))}


class ReferenceCollator:
    """Pads items and applies the arm's masking (``pretraining.mask_tokens``)."""

    def __init__(self, tokenizer, cfg):
        self._tok, self.cfg = tokenizer, cfg
        self.random_ids = torch.from_numpy(np.flatnonzero(~tokenizer.is_special)).long()

    def __call__(self, items):
        ids, attn = (torch.from_numpy(a) for a in self._tok.pad([it["input_ids"] for it in items]))
        special = torch.from_numpy(self._tok.is_special)[ids] | (attn == 0)
        masked, labels = P.mask_tokens(ids, special, centre_rate=self.cfg.centre_rate, offsets=self.cfg.offsets,
                                       mask_id=self._tok.mask_id, random_ids=self.random_ids)
        return {"input_ids": masked, "attention_mask": attn, "labels": labels}


def reference_model(cfg, tokenizer):
    """BertForMaskedLM (dropout 0.1, SDPA) whose training forward runs the head on masked positions only."""
    from transformers import BertConfig, BertForMaskedLM
    from transformers.modeling_outputs import MaskedLMOutput

    class MaskedPositionsBert(BertForMaskedLM):
        def forward(self, input_ids=None, attention_mask=None, labels=None, **kwargs):
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            chosen = labels != -100
            logits = self.cls(hidden[chosen])
            return MaskedLMOutput(loss=torch.nn.functional.cross_entropy(logits.float(), labels[chosen]), logits=logits)

    torch.manual_seed(cfg.seed)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=cfg.hidden, num_hidden_layers=cfg.layers,
                        num_attention_heads=cfg.heads, intermediate_size=cfg.intermediate,
                        max_position_embeddings=cfg.max_positions, pad_token_id=tokenizer.pad_id)
    model = MaskedPositionsBert(config)
    P.init_embeddings_from_letters(model, tokenizer, seed=cfg.seed)
    return model


def run_reference(cfg, windows, tokenizer, steps: int) -> float:
    """tokens/s of the reference Trainer path over ``steps`` steps after a warm-up run of the same length."""
    from transformers import Trainer, TrainingArguments

    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(output_dir=out, max_steps=steps, per_device_train_batch_size=cfg.batch_size,
                                 learning_rate=cfg.learning_rate, warmup_steps=cfg.warmup_steps, weight_decay=cfg.weight_decay,
                                 adam_beta2=cfg.adam_beta2, adam_epsilon=cfg.adam_epsilon, lr_scheduler_type="linear",
                                 logging_steps=10**9, save_strategy="no", seed=cfg.seed, report_to=[], disable_tqdm=True,
                                 dataloader_num_workers=0, dataloader_pin_memory=False, remove_unused_columns=False,
                                 use_cpu=not torch.cuda.is_available(), bf16=True, optim="adamw_torch_fused")
        trainer = Trainer(model=reference_model(cfg, tokenizer), args=args,
                          train_dataset=ReferenceDataset(windows, tokenizer), data_collator=ReferenceCollator(tokenizer, cfg))
        trainer.train()  # warm-up
        t0 = time.perf_counter()
        trainer.train()
        dt = time.perf_counter() - t0
    return steps * cfg.batch_size * (len(tokenizer.encode(windows[0])) + 2) / dt


def run_book(cfg, windows, tokenizer, steps: int) -> float:
    """tokens/s of the book's loop (the body of ``pretraining.train`` without evaluation and checkpoints)."""
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    run = P._Run(cfg, tokenizer, dev)
    ids, attn = P.encode_windows(windows, tokenizer, cfg.max_positions)
    bf16 = P.use_bf16(cfg, dev)

    def step(i):
        lo = (i * cfg.batch_size) % (len(ids) - cfg.batch_size + 1)
        masked, labels = run.mask(ids[lo:lo + cfg.batch_size], attn[lo:lo + cfg.batch_size], i, run.gen)
        loss = run.loss(masked.to(dev), attn[lo:lo + cfg.batch_size].to(dev), labels.to(dev), bf16)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), 1.0)
        run.opt.step()
        run.sched.step()
        run.opt.zero_grad(set_to_none=True)

    for i in range(steps):  # warm-up
        step(i)
    t0 = time.perf_counter()
    for i in range(steps):
        step(i)
    return steps * cfg.batch_size * ids.shape[1] / (time.perf_counter() - t0)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="overlap6")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--threads", type=int, default=0,
                    help="torch threads for both paths (0: torch's default; the default book trains each zoo model in "
                         "a single-threaded worker, two at a time)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = P.zoo_config(args.model)
    records = corpus.corpus_records()
    windows = P.sample_training_windows(cfg, records, n=args.steps * cfg.batch_size)
    tokenizer = make_tokenizer(cfg.scheme, cfg.k, corpus=corpus.acgt_pieces([r.sequence for r in records]),
                               vocab_size=cfg.bpe_vocab_size)
    ref = run_reference(cfg, windows, tokenizer, args.steps)
    book = run_book(cfg, windows, tokenizer, args.steps)
    seq = len(tokenizer.encode(windows[0])) + 2
    per_token = flops_per_token(cfg, tokenizer.vocab_size, seq)
    peak_bf16, peak_fp32 = matmul_peak(torch.bfloat16), matmul_peak(torch.float32)
    ratio = book / ref
    print(f"model {cfg.name}: {cfg.layers} layers x {cfg.hidden}, vocab {tokenizer.vocab_size}, {seq} tokens/window, "
          f"batch {cfg.batch_size}, {torch.get_num_threads()} threads")
    print(f"reference (previous zoo path, Trainer):  {ref:10,.0f} tokens/s = {100 * ref * per_token / peak_bf16:.1f} % of the bf16 peak")
    print(f"book loop (pretraining.train):           {book:10,.0f} tokens/s = {100 * book * per_token / peak_bf16:.1f} % of the bf16 peak")
    print(f"speed-up ratio: {ratio:.2f}x (target >= 2x) -> {'PASS' if ratio >= 2 else 'FAIL'}")
    print(f"matmul peak on this machine: bf16 {peak_bf16 / 1e9:,.0f} GFLOP/s, fp32 {peak_fp32 / 1e9:,.0f} GFLOP/s; "
          f"model FLOPs per token (training) {per_token / 1e6:.2f} MFLOP")
    return 0 if ratio >= 2 else 1


if __name__ == "__main__":
    raise SystemExit(main())
