"""Fine-tuning throughput: the package's training loop vs a plain ``transformers.Trainer`` with defaults.

Both paths fine-tune the same classifier (``finetuning.classification_model``: same model, same seeded head) on
the same examples for the same number of steps, batch size and learning rate, with the validation loss every
``--eval-steps`` steps and the best weights restored at the end:

* package: ``finetuning.finetune`` (``training_loop.train_loop``: the split pre-tokenized into one padded tensor,
  fused AdamW, bf16 autocast on CPU / bf16 GPUs, best weights kept in memory; the adapter's
  ``classification_logits``, which for BERT runs the last layer's queries and feed-forward at [CLS] only);
* reference: ``Trainer`` + ``TrainingArguments`` left at their defaults except what the task fixes (steps, batch
  size, learning rate, evaluation and checkpoint every ``--eval-steps``, ``load_best_model_at_end`` on the
  validation loss), fed by ``finetuning.SequenceDataset`` / ``PadCollator``.

Patience is set above the number of evaluations, so neither stops early and both take exactly ``--steps``
steps. Reported: examples/s of each (steps x batch / wall time of the training call, evaluations included), the
ratio package / Trainer (target >= 2x), and each path's best validation loss (they need not be equal: bf16 and
the data order differ; they must be of the same size). Examples: held-out chr22 windows, the input its first
``--input-nt`` letters and the label the next letter (4 classes).

    .venv/bin/python benchmarks/bench_finetuning.py [--model overlap6] [--steps 100] [--threads 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def examples(n: int, input_nt: int, seed: int) -> tuple[list[str], np.ndarray]:
    """(inputs of ``input_nt`` letters, next-letter labels 0..3) from held-out windows of ``input_nt + 1`` nt."""
    from dnalm_utils import data

    windows, _ = data.evaluation_windows(n, input_nt + 1, seed=seed)
    return [w[:-1] for w in windows], np.array(["ACGT".index(w[-1]) for w in windows])


def trainer_run(source, train, valid, *, steps: int, batch: int, lr: float, eval_steps: int, seed: int,
                models_dir) -> tuple[float, float]:
    """(wall seconds of ``Trainer.train``, best validation loss) of the reference path."""
    from transformers import Trainer, TrainingArguments

    from dnalm_utils import finetuning as FT

    lm = FT.classification_model(source, 4, init="pretrained", seed=seed, models_dir=models_dir, device="cpu")
    train_ds = FT.SequenceDataset(lm.tokenizer, *train)
    valid_ds = FT.SequenceDataset(lm.tokenizer, *valid)
    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(output_dir=tmp, max_steps=steps, per_device_train_batch_size=batch,
                                 learning_rate=lr, eval_strategy="steps", eval_steps=eval_steps, save_strategy="steps",
                                 save_steps=eval_steps, load_best_model_at_end=True, metric_for_best_model="eval_loss",
                                 greater_is_better=False, report_to=[], seed=seed, use_cpu=True, disable_tqdm=True,
                                 remove_unused_columns=False)
        trainer = Trainer(model=lm.model, args=args, train_dataset=train_ds, eval_dataset=valid_ds,
                          data_collator=FT.PadCollator(lm.tokenizer))
        t0 = time.perf_counter()
        trainer.train()
        wall = time.perf_counter() - t0
        return wall, float(trainer.state.best_metric)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="zoo name / folder / hub id (default: a tiny random DNABERT-6, "
                    "4 layers x 128, built in a temp dir)")
    ap.add_argument("--models-dir", default=None)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--eval-steps", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--input-nt", type=int, default=50)
    ap.add_argument("--n-train", type=int, default=5000)
    ap.add_argument("--n-valid", type=int, default=500)
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads for both paths")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import torch
    import transformers

    from dnalm_utils import finetuning as FT
    from dnalm_utils.models import make_tiny_dnabert

    torch.set_num_threads(args.threads)
    seqs, labels = examples(args.n_train + args.n_valid, args.input_nt, args.seed)
    train = (seqs[: args.n_train], labels[: args.n_train])
    valid = (seqs[args.n_train:], labels[args.n_train:])
    with tempfile.TemporaryDirectory() as tmp:
        source = args.model or str(make_tiny_dnabert(Path(tmp) / "tiny6", k=6, layers=4, hidden=128, heads=4,
                                                     intermediate=256, max_positions=128))
        settings = FT.FinetuneSettings(learning_rate=args.lr, batch_size=args.batch_size, max_steps=args.steps,
                                       eval_steps=args.eval_steps, patience=args.steps)
        # warm-up of both paths (first-call costs: imports, kernels), not timed
        FT.finetune(source, train, valid, num_labels=4, seed=args.seed, device="cpu", models_dir=args.models_dir,
                    settings=FT.FinetuneSettings(batch_size=args.batch_size, max_steps=2, eval_steps=2))
        ref_s, ref_loss = trainer_run(source, train, valid, steps=args.steps, batch=args.batch_size, lr=args.lr,
                                      eval_steps=args.eval_steps, seed=args.seed, models_dir=args.models_dir)
        res = FT.finetune(source, train, valid, num_labels=4, seed=args.seed, device="cpu", settings=settings,
                          models_dir=args.models_dir)
    n = args.steps * args.batch_size
    ours, ref = n / res.train_s, n / ref_s
    print(f"model: {args.model or 'tiny random DNABERT-6 (4 x 128)'}; {args.n_train:,} train / {args.n_valid:,} "
          f"valid examples of {args.input_nt} nt; {args.steps} steps x {args.batch_size}, validation every "
          f"{args.eval_steps}; torch {torch.__version__}, transformers {transformers.__version__}, "
          f"{args.threads} threads")
    print(f"package loop : {ours:8.1f} examples/s  ({res.train_s:6.1f} s, best validation loss {res.best_eval_loss:.4f}"
          f" at step {res.best_step})")
    print(f"plain Trainer: {ref:8.1f} examples/s  ({ref_s:6.1f} s, best validation loss {ref_loss:.4f})")
    print(f"ratio package / Trainer: {ours / ref:.2f}x (target >= 2x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
