"""Posterior over a hidden block of nucleotides under a causal (left-to-right) language model.

A masked model predicts a hidden nucleotide directly; a causal model only gives next-token probabilities,
so the probability of a block given BOTH its sides comes from Bayes' rule over completions: for the hidden
block ``seq[start:start + h]`` every one of its 4^h completions ``c`` is written into the sequence and scored
by its log-likelihood under the model,

    log P(c | rest) = log P(seq with c) - log sum_c' P(seq with c'),

where ``log P(seq with c)`` sums the model's next-token log-probabilities of every token from the first one
that overlaps the block to the end of the framed sequence (the family's suffix specials, e.g. HyenaDNA's
[SEP], included: they too depend on the block). Tokens before the block are the same for every completion
and cancel. The log-probabilities are normalised over the model's whole vocabulary (special tokens
included), since that is the distribution the model defines.

Completions are enumerated with the letters in ``ACGT`` order; the completion index is the base-4 number
whose first (most significant) digit is the block's first letter: index = sum_j code(c_j) 4^(h-1-j).
All completions of all sequences are scored in batches of ``batch_size`` rows.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from . import codec
from .errors import ParameterError, check_int_range

MAX_BLOCK = 6


def completions(h: int) -> list[str]:
    """The 4^h blocks of length ``h`` in completion-index order: completion i is the block whose packed value
    (codec.pack_kmers: ACGT order, first letter most significant) is i."""
    return codec.unpack_kmers(np.arange(4**h, dtype=np.uint64), h)


def _check(lm, seqs, starts, h):
    if h is None or isinstance(h, bool) or not isinstance(h, (int, np.integer)) or h < 1:
        raise ParameterError(f"h={h!r}: the hidden block needs 1 to {MAX_BLOCK} nucleotides.")
    if h > MAX_BLOCK:
        raise ParameterError(f"h={h} gives 4^h = {4 ** h} completions per sequence; use h <= {MAX_BLOCK}.")
    lm.require("next_token_logprobs", "block completion scoring (a causal model's posterior over a hidden block)")
    if isinstance(seqs, str):
        raise ParameterError("seqs must be a list of sequences, not one string; wrap it in a list.")
    seqs = [str(s) for s in seqs]
    starts = [check_int_range("start", s, 0) for s in np.asarray(starts).reshape(-1).tolist()]
    if len(seqs) != len(starts) or not seqs:
        raise ParameterError(f"{len(seqs)} sequences but {len(starts)} starts; give one block start per sequence.")
    for i, (s, st) in enumerate(zip(seqs, starts)):
        if st + h > len(s):
            raise ParameterError(f"sequence {i}: the block [{st}, {st + h}) runs past its end ({len(s)} nt).")
    return seqs, starts


def block_completion_logprobs(lm, seqs: Sequence[str], starts: Sequence[int], h: int, *, batch_size: int = 64,
                              amp: bool = False) -> np.ndarray:
    """(n, 4**h) float64 normalised log-posterior over the completions of ``seq[start:start + h]`` for each
    sequence (module docstring). ``lm``: any adapter with ``next_token_logprobs`` (a causal model loaded with
    head="lm"). Raises ParameterError for h > 6 and when the block's first token is the model's first input
    token (nothing predicts it: no prefix special and start 0)."""
    import torch

    seqs, starts = _check(lm, seqs, starts, h)
    check_int_range("batch_size", batch_size, 1)
    blocks = completions(h)
    tok = lm.tokenizer
    vocab = tok.vocab_size
    rows, first_cols = [], []
    for i, (s, st) in enumerate(zip(seqs, starts)):
        for c in blocks:
            enc = tok.encode(s[:st] + c + s[st + h:], where=f"sequence {i}")
            overlap = np.flatnonzero(enc.spans[:, 1] > st)
            first = tok.body_offset + int(overlap[0])
            if first == 0:
                raise ParameterError(
                    f"sequence {i}: the block starts at the model's first input token, which a causal model never "
                    f"predicts ({lm.name} puts no special token before a sequence); use start >= 1.")
            rows.append(enc.ids)
            first_cols.append(first)
    scores = np.empty(len(rows), dtype=np.float64)
    lm.model.eval()
    with torch.no_grad():
        for lo in range(0, len(rows), batch_size):
            ids_np, att_np = lm.frame(rows[lo : lo + batch_size])
            ids = torch.from_numpy(ids_np).to(lm.device)
            att = torch.from_numpy(att_np).to(lm.device)
            with lm.autocast(amp):
                logits = lm.token_logits(lm.encode(ids, att).last_hidden_state)
            logp = torch.log_softmax(logits.float()[..., :vocab], dim=-1)  # (b, width, vocab)
            # log P(token at column c | columns < c) = logp[c - 1, ids[c]], for attended columns c >= first
            target = logp[:, :-1].gather(-1, ids[:, 1:, None]).squeeze(-1).double().cpu().numpy()
            cols = np.arange(1, ids_np.shape[1])[None, :]
            first = np.asarray(first_cols[lo : lo + batch_size])[:, None]
            keep = (cols >= first) & (att_np[:, 1:] == 1)
            scores[lo : lo + len(ids_np)] = np.where(keep, target, 0.0).sum(1)
    scores = scores.reshape(len(seqs), len(blocks))
    top = scores.max(1, keepdims=True)
    return scores - (top + np.log(np.exp(scores - top).sum(1, keepdims=True)))


def block_letter_logprobs(lm, seqs: Sequence[str], starts: Sequence[int], h: int, *, batch_size: int = 64,
                          amp: bool = False) -> np.ndarray:
    """(n, h, 4) log-marginals of each hidden nucleotide (letters ACGT) from :func:`block_completion_logprobs`."""
    post = block_completion_logprobs(lm, seqs, starts, h, batch_size=batch_size, amp=amp)
    return completion_marginals(post, h)


def completion_marginals(post: np.ndarray, h: int) -> np.ndarray:
    """(n, h, 4) log-marginals per block position of an (n, 4**h) log-posterior over completions."""
    post = np.asarray(post, dtype=np.float64)
    grid = post.reshape((post.shape[0],) + (4,) * h)
    out = np.empty((post.shape[0], h, 4))
    for j in range(h):
        axes = tuple(a for a in range(1, h + 1) if a != j + 1)
        if axes:
            top = grid.max(axis=axes, keepdims=True)
            m = np.log(np.exp(grid - top).sum(axis=axes, keepdims=True)) + top
            out[:, j] = m.reshape(post.shape[0], 4)
        else:
            out[:, j] = grid
    return out


__all__ = ["block_completion_logprobs", "block_letter_logprobs", "completion_marginals", "completions", "MAX_BLOCK"]
