"""Masked-token interrogation: what does a model predict where tokens are masked, and from what?

Three batched probes, each taking a loaded model (:class:`models.LoadedModel`) and held-out windows:

* :func:`span_mask_sweep` -- mask m contiguous tokens (m = 1 .. k+3) at a random position away from the edges
  and score the predicted tokens (top-1, top-5, negative log-likelihood) by position inside the span;
* :func:`own_masking_eval` -- the model's own pre-training masking, with every chosen token set to [MASK]:
  masked-token accuracy and perplexity;
* :func:`nucleotide_block_eval` -- hide the same block of h nucleotides for every tokenization (mask every token
  that overlaps it) and turn the predicted token distributions into per-nucleotide distributions, so that
  tokenizations are compared on identical nucleotides.

Predictions exclude special tokens. Letter order of nucleotide distributions: ``ACGT`` (index 0..3).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np

from .errors import ParameterError

LETTERS = "ACGT"


def _forward_logprobs(lm, input_ids: np.ndarray, attention: np.ndarray, positions: list[np.ndarray], batch_size: int):
    """Log-probabilities over the vocabulary (specials excluded) at ``positions[i]`` of row i.

    input_ids / attention: (rows, tokens) int arrays. Returns a list of (len(positions[i]), vocab) float32 arrays.
    """
    import torch

    from .models import autocast

    special = torch.from_numpy(lm.tokenizer.is_special)
    out = []
    lm.model.eval()
    with torch.no_grad():
        for lo in range(0, input_ids.shape[0], batch_size):
            ids = torch.from_numpy(input_ids[lo : lo + batch_size]).to(lm.device)
            att = torch.from_numpy(attention[lo : lo + batch_size]).to(lm.device)
            with autocast(lm.device):
                logits = lm.model(input_ids=ids, attention_mask=att).logits
            logits = logits.float().cpu()
            logits[..., special] = float("-inf")
            logp = torch.log_softmax(logits, dim=-1)
            for r in range(ids.shape[0]):
                out.append(logp[r, torch.from_numpy(positions[lo + r])].numpy())
    return out


def _rows(tokenizer, encodings: Sequence[np.ndarray]):
    """(rows, width) ids with [CLS] ... [SEP] and padding, and the attention mask."""
    width = max(len(e) for e in encodings) + 2
    ids = np.full((len(encodings), width), tokenizer.pad_id, dtype=np.int64)
    att = np.zeros_like(ids)
    for r, e in enumerate(encodings):
        ids[r, 0], ids[r, 1 : len(e) + 1], ids[r, len(e) + 1] = tokenizer.cls_id, e, tokenizer.sep_id
        att[r, : len(e) + 2] = 1
    return ids, att


def span_mask_sweep(lm, windows: Sequence[str], ms: Sequence[int], *, seed: int = 0, batch_size: int = 64,
                    progress: bool = False):
    """Mask m contiguous tokens per window, for each m in ``ms``, and score the predictions.

    Start positions are drawn uniformly so that at least one unmasked token remains on each side. All mask
    variants of a window run in the same batches. Returns a tidy DataFrame with one row per masked token:
    window, m, position (0-based inside the span), start (token index), true_id, pred_id, correct, top5, nll
    (nats).
    """
    import pandas as pd
    from tqdm.auto import tqdm

    ms = [int(m) for m in ms]
    if not ms or min(ms) < 1:
        raise ParameterError(f"m values {ms}: every m must be >= 1 (number of contiguous masked tokens).")
    tok = lm.tokenizer
    rng = np.random.default_rng(seed)
    encs, meta, positions = [], [], []
    for w, seq in enumerate(windows):
        ids = tok.encode(seq, where=f"window {w}").ids
        for m in ms:
            if len(ids) < m + 2:
                raise ParameterError(
                    f"window {w} has {len(ids)} tokens, too few to mask m={m} contiguous tokens with an unmasked "
                    "token on each side; use longer windows or smaller m."
                )
            a = int(rng.integers(1, len(ids) - m))  # tokens a .. a+m-1, with a >= 1 and a+m <= len-1
            masked = ids.copy()
            masked[a : a + m] = tok.mask_id
            encs.append(masked)
            meta.append((w, m, a, ids[a : a + m]))
            positions.append(np.arange(a, a + m) + 1)  # +1 for [CLS]
    input_ids, att = _rows(tok, encs)
    logps = []
    for lo in tqdm(range(0, len(encs), 4096), desc="span sweep", disable=not progress):
        logps += _forward_logprobs(lm, input_ids[lo : lo + 4096], att[lo : lo + 4096], positions[lo : lo + 4096], batch_size)
    rows = []
    for (w, m, a, true), lp in zip(meta, logps):
        pred = lp.argmax(axis=1)
        top5 = np.argsort(-lp, axis=1)[:, :5]
        for j in range(m):
            rows.append((w, m, j, a, int(true[j]), int(pred[j]), bool(pred[j] == true[j]),
                         bool(true[j] in top5[j]), float(-lp[j, true[j]])))
    return pd.DataFrame(rows, columns=["window", "m", "position", "start", "true_id", "pred_id", "correct", "top5", "nll"])


def summarize_sweep(sweep):
    """Per m: token top-1 and top-5 accuracy and mean NLL over all masked tokens."""
    return (sweep.groupby("m").agg(accuracy=("correct", "mean"), top5=("top5", "mean"), nll=("nll", "mean"),
                                   tokens=("correct", "size")).reset_index())


def own_masking_eval(lm, windows: Sequence[str], cfg, *, seed: int = 0, batch_size: int = 64) -> dict:
    """Masked-token accuracy and perplexity under the model's own pre-training masking (``cfg`` a
    :class:`pretraining.PretrainConfig`), every chosen token replaced by [MASK]. Returns accuracy, top5,
    perplexity (exp of mean NLL in nats), nll, masked_tokens, masked_fraction."""
    import torch

    from .pretraining import mask_tokens

    tok = lm.tokenizer
    encs = [tok.encode(s, where=f"window {i}").ids for i, s in enumerate(windows)]
    ids, att = _rows(tok, encs)
    special = torch.from_numpy(tok.is_special)[torch.from_numpy(ids)] | (torch.from_numpy(att) == 0)
    gen = torch.Generator().manual_seed(seed)
    _, labels = mask_tokens(torch.from_numpy(ids), special, centre_rate=cfg.centre_rate, offsets=cfg.offsets,
                            mask_id=tok.mask_id, random_ids=torch.arange(1), generator=gen)
    chosen = (labels != -100).numpy()
    masked = np.where(chosen, tok.mask_id, ids)
    positions = [np.flatnonzero(row) for row in chosen]
    logps = _forward_logprobs(lm, masked, att, positions, batch_size)
    true = np.concatenate([ids[r, p] for r, p in enumerate(positions)])
    lp = np.concatenate(logps)
    nll = -lp[np.arange(len(true)), true]
    top5 = (np.argsort(-lp, axis=1)[:, :5] == true[:, None]).any(axis=1)
    return {"accuracy": float((lp.argmax(1) == true).mean()), "top5": float(top5.mean()),
            "nll": float(nll.mean()), "perplexity": float(np.exp(nll.mean())), "masked_tokens": int(len(true)),
            "masked_fraction": float(chosen.sum() / (att.sum() - 2 * len(encs)))}


# ------------------------------------------------------------------------------------------------
# The same nucleotides for every tokenization
# ------------------------------------------------------------------------------------------------
def choose_blocks(lengths: Sequence[int], block_len: int, *, margin: int, seed: int = 0) -> np.ndarray:
    """(n, 2) [start, end) of one hidden block of ``block_len`` nt per window, drawn uniformly with at least
    ``margin`` nt before and after it (so that tokens overlapping the block never reach the window's ends)."""
    rng = np.random.default_rng(seed)
    out = np.zeros((len(lengths), 2), dtype=np.int64)
    for i, n in enumerate(lengths):
        hi = n - margin - block_len
        if hi < margin:
            raise ParameterError(
                f"window {i} ({n} nt) is too short to hide {block_len} nt with {margin} nt of flank on each side."
            )
        s = int(rng.integers(margin, hi + 1))
        out[i] = (s, s + block_len)
    return out


@lru_cache(maxsize=16)
def _letter_onehot(vocab: tuple[str, ...]) -> np.ndarray:
    """(vocab, max_len, 4) float32: one-hot ACGT letter of each token at each offset (zeros past its end / N)."""
    width = max(len(t) for t in vocab)
    table = np.zeros((len(vocab), width, 4), dtype=np.float32)
    for i, tok in enumerate(vocab):
        for o, c in enumerate(tok):
            j = LETTERS.find(c)
            if j >= 0:
                table[i, o, j] = 1.0
    return table


@dataclass
class BlockResult:
    """Per hidden nucleotide: probs (n, 4) in ACGT order, truth (n,) letter index, window (n,), offset (n,)
    inside its block; blocks (n_windows, 2) are the hidden [start, end) per window; masked_tokens (n_windows,)
    how many tokens had to be masked to hide each block."""

    probs: np.ndarray
    truth: np.ndarray
    window: np.ndarray
    offset: np.ndarray
    blocks: np.ndarray
    masked_tokens: np.ndarray

    def metrics(self) -> dict:
        return block_metrics(self.probs, self.truth)


def block_metrics(probs: np.ndarray, truth: np.ndarray) -> dict:
    """Accuracy (argmax == truth) and cross-entropy in bits per nucleotide of (n, 4) ACGT distributions."""
    p = np.clip(probs[np.arange(len(truth)), truth], 1e-12, 1.0)
    return {"accuracy": float((probs.argmax(1) == truth).mean()), "bits": float(-np.log2(p).mean()),
            "nucleotides": int(len(truth))}


def nucleotide_block_eval(lm, windows: Sequence[str], blocks: np.ndarray, *, batch_size: int = 64) -> BlockResult:
    """Hide ``blocks`` (one [start, end) per window) by masking every token that overlaps them, and read the
    model's distribution for each hidden nucleotide.

    For a masked token, the probability of letter x at nucleotide p is the total probability of the tokens
    whose letter at offset (p - token start) is x (for BPE, a predicted token shorter than that offset
    contributes nothing and the rest is renormalised). Several masked tokens cover a nucleotide with
    overlapping k-mers; their letter distributions are averaged.
    """
    tok = lm.tokenizer
    onehot = _letter_onehot(tuple(tok.vocab))
    encs, positions, covers = [], [], []
    masked_count = np.zeros(len(windows), dtype=np.int64)
    for w, seq in enumerate(windows):
        enc = tok.encode(seq, where=f"window {w}")
        s, e = blocks[w]
        hit = np.flatnonzero((enc.spans[:, 0] < e) & (enc.spans[:, 1] > s))
        if hit.size == 0 or hit.size == len(enc):
            raise ParameterError(f"window {w}: hiding [{s}, {e}) masks every token of the window; use longer windows.")
        ids = enc.ids.copy()
        ids[hit] = tok.mask_id
        encs.append(ids)
        positions.append(hit + 1)
        covers.append((enc.spans[hit], seq[s:e].upper(), s, e))
        masked_count[w] = hit.size
    input_ids, att = _rows(tok, encs)
    logps = _forward_logprobs(lm, input_ids, att, positions, batch_size)
    probs, truth, win, off = [], [], [], []
    for w, (lp, (spans, true_seq, s, e)) in enumerate(zip(logps, covers)):
        p_tok = np.exp(lp)  # (masked, vocab)
        for pos in range(s, e):
            acc, n = np.zeros(4), 0
            for t, (ts, te) in enumerate(spans):
                o = pos - ts
                if 0 <= o < te - ts and o < onehot.shape[1]:
                    q = p_tok[t] @ onehot[:, o, :]
                    if q.sum() > 0:
                        acc += q / q.sum()
                        n += 1
            probs.append(acc / max(n, 1) if n else np.full(4, 0.25))
            truth.append(LETTERS.index(true_seq[pos - s]))
            win.append(w)
            off.append(pos - s)
    return BlockResult(np.array(probs), np.array(truth), np.array(win), np.array(off), np.asarray(blocks), masked_count)
