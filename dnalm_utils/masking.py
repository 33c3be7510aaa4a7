"""Masked-token interrogation: what does a model predict where tokens are masked, and from what?

Three batched probes, each taking a loaded model (:class:`models.LoadedModel`) and held-out windows:

* :func:`span_mask_sweep` -- mask m contiguous tokens (m = 1 .. k+3) at a random position away from the edges
  and score the predicted tokens (top-1, top-5, negative log-likelihood) by position inside the span;
* :func:`own_masking_eval` -- the model's own pre-training masking, with every chosen token set to [MASK]:
  masked-token accuracy and perplexity;
* :func:`nucleotide_block_eval` -- hide the same block of h nucleotides for every tokenization (mask every token
  that overlaps it) and turn the predicted token distributions into per-nucleotide distributions, so that
  tokenizations are compared on identical nucleotides.

What the overlap alone gives, and whether the model uses it (overlapping k-mers):

* :func:`overlap_oracle` / :func:`flank_agreement` -- the prediction obtained by copying every letter the
  unmasked neighbours reveal, and how far a model's predicted k-mers agree with those letters;
* ``span_mask_sweep(..., nucleotide_level=True)`` + :func:`summarize_hidden` -- accuracy on the nucleotides
  no neighbour reveals (max(0, m-k+1) per span), the only ones that need sequence context;
* :func:`flank_perturbation` -- change one revealed letter inside a neighbour: does the prediction follow
  the altered flank or the genome?

Inside the model: :func:`layer_readout` (logit lens of an encoder: every layer's hidden state through the
MLM head) and :func:`attention_shares` (where masked queries attend: overlapping neighbours, other masked
tokens, distant tokens, [CLS]/[SEP]).

Predictions exclude special tokens. Letter order of nucleotide distributions: ``ACGT`` (index 0..3).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Mapping, Sequence

import numpy as np

from . import codec
from .codec import LETTERS
from .errors import ParameterError


def _amp(lm, amp: bool):
    """bf16 autocast on the model's device if ``amp`` (adapter.autocast), else a no-op context."""
    return lm.autocast(amp)


def _check_batch_size(batch_size) -> int:
    from .errors import check_int_range

    return check_int_range("batch_size", batch_size, 1, hint="Rows per forward pass, e.g. 64.")


@dataclass
class _Spans:
    """m contiguous masked tokens per (window, m) variant, in the order windows x ms.

    meta: (rows, 3) int64 window, m, start (token index of the first masked token); encs: per row the window's
    (n_tokens,) ids; token_spans: per row the (n_tokens, 2) nucleotide spans; masked: per row the ids with
    tokens start .. start+m-1 set to [MASK]; positions: per row the masked columns in model input ([CLS] = 0).
    """

    meta: np.ndarray
    encs: list
    token_spans: list
    masked: list
    positions: list


def _draw_spans(tok, windows: Sequence[str], ms: Sequence[int], rng) -> _Spans:
    """Draw one start per (window, m), uniform so that at least one unmasked token remains on each side.
    ``positions`` are columns of framed input (token index + ``tok.body_offset``)."""
    meta, encs, spans, masked, positions = [], [], [], [], []
    for w, seq in enumerate(windows):
        enc = tok.encode(seq, where=f"window {w}")
        ids = enc.ids
        for m in ms:
            if len(ids) < m + 2:
                raise ParameterError(
                    f"window {w} has {len(ids)} tokens, too few to mask m={m} contiguous tokens with an unmasked "
                    "token on each side; use longer windows or smaller m."
                )
            a = int(rng.integers(1, len(ids) - m))  # tokens a .. a+m-1, with a >= 1 and a+m <= len-1
            row = ids.copy()
            row[a : a + m] = tok.mask_id
            meta.append((w, m, a))
            encs.append(ids)
            spans.append(enc.spans)
            masked.append(row)
            positions.append(np.arange(a, a + m) + tok.body_offset)
    return _Spans(np.array(meta, dtype=np.int64).reshape(-1, 3), encs, spans, masked, positions)


def max_span(tokenizer, windows: Sequence[str]) -> int:
    """Largest m that every window can mask with an unmasked token on each side: (fewest tokens) - 2."""
    return min(len(tokenizer.encode(seq, where=f"window {w}").ids) for w, seq in enumerate(windows)) - 2


def _check_ms(ms) -> list[int]:
    """List of m values (one int or an iterable), each >= 1."""
    ms = [int(x) for x in ([ms] if isinstance(ms, (int, np.integer)) else ms)]
    if not ms or min(ms) < 1:
        raise ParameterError(f"m values {ms}: every m must be >= 1 (number of contiguous masked tokens).")
    return ms


def _hidden_positions(tok, spans: np.ndarray, a: int, m: int) -> np.ndarray:
    """Nucleotide positions of masked tokens a..a+m-1 that no unmasked neighbour covers (a >= 1, a+m < n).

    Overlapping k-mers: ``a + tokenization.hidden_span_positions(m, k)``; other schemes: the masked tokens'
    nucleotides between the left neighbour's end and the right neighbour's start.
    """
    from .tokenization import hidden_span_positions

    if tok.scheme == "overlapping":
        return a + hidden_span_positions(m, tok.k)
    lo = max(spans[a, 0], spans[a - 1, 1])
    hi = min(spans[a + m - 1, 1], spans[a + m, 0])
    return np.arange(lo, max(lo, hi), dtype=np.int64)


def span_mask_sweep(lm, windows: Sequence[str], ms: Sequence[int], *, seed: int = 0, batch_size: int = 64,
                    progress: bool = False, nucleotide_level: bool = False, amp: bool = True):
    """Mask m contiguous tokens per window, for each m in ``ms``, and score the predictions.

    Start positions are drawn uniformly so that at least one unmasked token remains on each side. All mask
    variants of a window run in the same batches. Returns a tidy DataFrame with one row per masked token:
    window, m, position (0-based inside the span), start (token index), true_id, pred_id, correct, top5, nll
    (nats).

    ``nucleotide_level=True`` returns ``(sweep, hidden)``: ``hidden`` has one row per nucleotide that no
    unmasked neighbour reveals (overlapping k-mers: max(0, m-k+1) per span, at offsets
    ``tokenization.hidden_span_positions``; other schemes: every nucleotide of the masked tokens), with the
    model's letter distribution derived from the predicted token distributions as in
    :func:`nucleotide_block_eval`. Columns: window, m, start, offset (nt after the first masked nucleotide),
    position (nt in the window), truth (ACGT index), p_A, p_C, p_G, p_T, pred, correct, bits.
    ``hidden.attrs`` records ``ms`` and ``windows`` for :func:`summarize_hidden`.
    ``amp=False`` runs without bf16 autocast (the model's own dtype).
    """
    import pandas as pd
    from tqdm.auto import tqdm

    ms = _check_ms(ms)
    batch_size = _check_batch_size(batch_size)
    tok = lm.tokenizer
    sp = _draw_spans(tok, windows, ms, np.random.default_rng(seed))
    lm.require("masked_logprobs", "the masked-span sweep")
    input_ids, att = lm.frame(sp.masked)
    logps = []
    for lo in tqdm(range(0, len(sp.masked), 4096), desc="span sweep", disable=not progress):
        logps += lm.masked_logprobs(input_ids[lo : lo + 4096], att[lo : lo + 4096], sp.positions[lo : lo + 4096],
                                    batch_size, amp=amp)
    rows = []
    for (w, m, a), ids, lp in zip(sp.meta.tolist(), sp.encs, logps):
        true = ids[a : a + m]
        pred = lp.argmax(axis=1)
        top5 = np.argsort(-lp, axis=1)[:, :5]
        for j in range(m):
            rows.append((w, m, j, a, int(true[j]), int(pred[j]), bool(pred[j] == true[j]),
                         bool(true[j] in top5[j]), float(-lp[j, true[j]])))
    sweep = pd.DataFrame(rows, columns=["window", "m", "position", "start", "true_id", "pred_id", "correct", "top5", "nll"])
    if not nucleotide_level:
        return sweep
    return sweep, _hidden_table(tok, windows, sp, logps, ms)


def _hidden_table(tok, windows, sp: _Spans, logps, ms):
    """Per hidden nucleotide of every (window, m) span: the model's ACGT distribution (see span_mask_sweep)."""
    import pandas as pd

    onehot = _letter_onehot(tuple(tok.vocab))
    cols = ["window", "m", "start", "offset", "position", "truth"]
    parts, p_toks, tok_spans, hidden = {c: [] for c in cols}, [], [], []
    for (w, m, a), spans, lp in zip(sp.meta.tolist(), sp.token_spans, logps):
        pos = _hidden_positions(tok, spans, a, m)
        if pos.size == 0:
            continue
        p_toks.append(np.exp(lp))
        tok_spans.append(spans[a : a + m])
        hidden.append(pos)
        for c, v in zip(cols, (w, m, a, pos - spans[a, 0], pos, codec.letter_index(windows[w], pos, where=f"window {w}"))):
            parts[c].append(np.broadcast_to(np.asarray(v, dtype=np.int64), pos.shape))
    df = pd.DataFrame({c: np.concatenate(v) if v else np.zeros(0, dtype=np.int64) for c, v in parts.items()})
    probs = _letter_marginals(p_toks, tok_spans, hidden, onehot)
    probs = np.concatenate(probs) if probs else np.zeros((0, 4))
    for i, c in enumerate(LETTERS):
        df[f"p_{c}"] = probs[:, i]
    truth = df["truth"].to_numpy()
    df["pred"] = probs.argmax(1).astype(np.int64)
    df["correct"] = df["pred"].to_numpy() == truth
    df["bits"] = -np.log2(np.clip(probs[np.arange(len(truth)), truth], 1e-12, 1.0))
    df.attrs.update(ms=list(ms), windows=len(windows))
    return df


def summarize_sweep(sweep, *, span: bool = False):
    """Per m: token top-1 and top-5 accuracy and mean NLL over all masked tokens. ``span=True`` adds
    span_accuracy: share of (window, m) spans whose m masked tokens are all right."""
    out = (sweep.groupby("m").agg(accuracy=("correct", "mean"), top5=("top5", "mean"), nll=("nll", "mean"),
                                  tokens=("correct", "size")).reset_index())
    if span:
        whole = sweep.groupby(["m", "window"]).correct.all().groupby("m").mean()
        out["span_accuracy"] = out["m"].map(whole).to_numpy()
    return out


def summarize_hidden(hidden, ms: Sequence[int] | None = None, windows: int | None = None):
    """Per m: hidden nucleotides (total, and per window), accuracy (argmax == truth), bits per nucleotide.

    ``hidden`` is the second output of ``span_mask_sweep(..., nucleotide_level=True)``; ``ms`` / ``windows``
    default to what it recorded, so m values without hidden nucleotides (m < k) appear with 0 and NaN.
    """
    import pandas as pd

    ms = list(ms if ms is not None else hidden.attrs.get("ms", sorted(hidden["m"].unique())))
    n = windows if windows is not None else hidden.attrs.get("windows")
    g = hidden.groupby("m")
    out = pd.DataFrame({"m": ms})
    out["nucleotides"] = out["m"].map(g.size()).fillna(0).astype(np.int64)
    out["hidden_per_window"] = out["nucleotides"] / n if n else np.nan
    out["accuracy"] = out["m"].map(g.correct.mean()).astype(float)
    out["bits"] = out["m"].map(g.bits.mean()).astype(float)
    return out


def own_masking_eval(lm, windows: Sequence[str], cfg, *, seed: int = 0, batch_size: int = 64,
                     prior_counts=None) -> dict:
    """Masked-token accuracy and perplexity under the model's own pre-training masking (``cfg`` a
    :class:`pretraining.PretrainConfig`), every chosen token replaced by [MASK]. Returns accuracy, top5,
    perplexity (exp of mean NLL in nats), nll, masked_tokens, masked_fraction, and the references on the same
    masked tokens: chance_accuracy and chance_perplexity (a uniform guess over the tokens made of A, C, G and T
    only: no special token, no N), and with ``prior_counts`` ((vocab,) token counts of the training corpus,
    ``tokenization.token_counts``; count them on pieces as long as the windows, so that tokens that occur only at
    a window's end weigh as they do there) prior_accuracy (always the corpus's most frequent such token) and
    prior_perplexity (their frequencies, add-0.5 smoothed)."""
    import torch

    from .pretraining import mask_tokens

    lm.require("masked_logprobs", "own-masking evaluation")
    tok = lm.tokenizer
    encs = [tok.encode(s, where=f"window {i}").ids for i, s in enumerate(windows)]
    ids, att = lm.frame(encs)
    special = torch.from_numpy(tok.is_special)[torch.from_numpy(ids)] | (torch.from_numpy(att) == 0)
    gen = torch.Generator().manual_seed(seed)
    _, labels = mask_tokens(torch.from_numpy(ids), special, centre_rate=cfg.centre_rate, offsets=cfg.offsets,
                            mask_id=tok.mask_id, random_ids=torch.arange(1), generator=gen)
    chosen = (labels != -100).numpy()
    masked = np.where(chosen, tok.mask_id, ids)
    positions = [np.flatnonzero(row) for row in chosen]
    logps = lm.masked_logprobs(masked, att, positions, batch_size)
    true = np.concatenate([ids[r, p] for r, p in enumerate(positions)])
    lp = np.concatenate(logps)
    nll = -lp[np.arange(len(true)), true]
    top5 = (np.argsort(-lp, axis=1)[:, :5] == true[:, None]).any(axis=1)
    plain = ~np.asarray(tok.is_special)
    vocab = getattr(tok, "vocab", None)
    if vocab is not None and len(vocab) == plain.size:  # chance guesses among ACGT tokens only (not N, not specials)
        plain &= np.array([set(str(t)) <= set("ACGT") for t in vocab])
    out = {"accuracy": float((lp.argmax(1) == true).mean()), "top5": float(top5.mean()),
           "nll": float(nll.mean()), "perplexity": float(np.exp(nll.mean())), "masked_tokens": int(len(true)),
           "masked_fraction": float(chosen.sum() / (att.sum() - tok.n_framing * len(encs))),
           "chance_accuracy": 1.0 / int(plain.sum()), "chance_perplexity": float(plain.sum())}
    if prior_counts is not None:
        counts = np.asarray(prior_counts, dtype=np.float64).reshape(-1)
        if counts.shape != plain.shape or (counts < 0).any():
            raise ParameterError(f"prior_counts must be {plain.size} non-negative token counts (one per vocabulary "
                                 f"id, tokenization.token_counts), got shape {counts.shape}.")
        freq = np.where(plain, counts + 0.5, 0.0)
        freq /= freq.sum()
        out["prior_accuracy"] = float((true == int(np.argmax(freq))).mean())
        out["prior_perplexity"] = float(np.exp(-np.log(freq[true]).mean()))
    return out


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
    """(vocab, max_len, 4) float64: one-hot ACGT letter of each token at each offset (zeros past its end / N)."""
    width = max(len(t) for t in vocab)
    table = np.zeros((len(vocab), width, 4), dtype=np.float64)
    for i, tok in enumerate(vocab):
        codes = codec.encode(tok)
        letter = np.flatnonzero(codes < 4)  # offsets holding A/C/G/T (upper case: token text as in the vocabulary)
        upper = np.frombuffer(tok.encode("ascii", errors="replace"), dtype=np.uint8)[letter] < ord("a")
        table[i, letter[upper], codes[letter[upper]]] = 1.0
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


def window_scores(probs: np.ndarray, truth: np.ndarray, window: np.ndarray, n_windows: int) -> tuple[np.ndarray, np.ndarray]:
    """Per window: (accuracy, bits), each (n_windows,) float64, the mean over that window's hidden nucleotides of
    argmax == truth and of -log2 p(truth) (NaN for a window without hidden nucleotides). The window, not the
    nucleotide, is the independent item of a paired comparison."""
    p = np.clip(probs[np.arange(len(truth)), truth], 1e-12, 1.0)
    count = np.bincount(window, minlength=n_windows).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = np.bincount(window, weights=(probs.argmax(1) == truth).astype(np.float64), minlength=n_windows) / count
        bits = np.bincount(window, weights=-np.log2(p), minlength=n_windows) / count
    return acc, bits


def block_metrics(probs: np.ndarray, truth: np.ndarray) -> dict:
    """Accuracy (argmax == truth) and cross-entropy in bits per nucleotide of (n, 4) ACGT distributions."""
    p = np.clip(probs[np.arange(len(truth)), truth], 1e-12, 1.0)
    return {"accuracy": float((probs.argmax(1) == truth).mean()), "bits": float(-np.log2(p).mean()),
            "nucleotides": int(len(truth))}


def nucleotide_block_eval(lm, windows: Sequence[str], blocks: np.ndarray, *, batch_size: int = 64,
                          amp: bool = True) -> BlockResult:
    """Hide ``blocks`` (one [start, end) per window) by masking every token that overlaps them, and read the
    model's distribution for each hidden nucleotide.

    For a masked token, the probability of letter x at nucleotide p is the total probability of the tokens
    whose letter at offset (p - token start) is x (for BPE, a predicted token shorter than that offset
    contributes nothing and the rest is renormalised). Several masked tokens cover a nucleotide with
    overlapping k-mers; their letter distributions are averaged. ``amp=False`` runs without bf16 autocast.
    """
    if not lm.can("masked_logprobs") and lm.can("next_token_logprobs"):
        return _causal_block_eval(lm, windows, blocks, batch_size=batch_size)
    lm.require("masked_logprobs", "hiding the same nucleotides")
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
        positions.append(hit + tok.body_offset)
        covers.append((enc.spans[hit], seq[s:e].upper(), s, e))
        masked_count[w] = hit.size
    input_ids, att = lm.frame(encs)
    logps = lm.masked_logprobs(input_ids, att, positions, batch_size, amp=amp)
    truth, win, off, hidden = [], [], [], []
    for w, (spans, true_seq, s, e) in enumerate(covers):
        pos = np.arange(s, e, dtype=np.int64)
        hidden.append(pos)
        truth += codec.letter_index(true_seq, where=f"window {w}").tolist()
        win.append(np.full(e - s, w))
        off.append(pos - s)
    probs = _letter_marginals([np.exp(lp) for lp in logps], [c[0] for c in covers], hidden, onehot)
    return BlockResult(np.concatenate(probs), np.array(truth), np.concatenate(win), np.concatenate(off),
                       np.asarray(blocks), masked_count)


def _causal_block_eval(lm, windows: Sequence[str], blocks: np.ndarray, *, batch_size: int) -> BlockResult:
    """A causal model's distribution of each hidden nucleotide: every one of the block's 4^h completions is scored
    by the likelihood of the whole window (causal_scoring.block_letter_logprobs), so the model uses both flanks."""
    from .adapters import NotApplicable
    from .causal_scoring import block_letter_logprobs

    blocks = np.asarray(blocks, dtype=np.int64)
    h = int((blocks[:, 1] - blocks[:, 0]).max())
    if (blocks[:, 1] - blocks[:, 0] != h).any():
        raise ParameterError("causal block scoring needs blocks of one length; pass blocks of equal length.")
    if h > 6:
        raise NotApplicable(f"hiding the same nucleotides is not applicable to {lm.name}: a causal model scores a "
                            f"hidden block by its 4^h completions, and h = {h} is more than 6 nucleotides")
    logp = block_letter_logprobs(lm, list(windows), blocks[:, 0], h, batch_size=batch_size)  # (n, h, 4) ACGT
    truth = np.concatenate([codec.letter_index(w, np.arange(s, s + h), where=f"window {i}")
                            for i, (w, (s, _)) in enumerate(zip(windows, blocks))])
    n = len(windows)
    return BlockResult(np.exp(logp.reshape(n * h, 4)), truth, np.repeat(np.arange(n), h), np.tile(np.arange(h), n),
                       blocks, np.full(n, h, dtype=np.int64))


def _letter_marginals(p_toks: Sequence[np.ndarray], spans: Sequence[np.ndarray], positions: Sequence[np.ndarray],
                      onehot: np.ndarray, *, chunk_rows: int = 2048) -> list[np.ndarray]:
    """ACGT distribution of hidden nucleotides from masked-token distributions, for many items at once.

    Item i: p_toks[i] (t_i, vocab) probabilities of its t_i >= 1 masked tokens; spans[i] (t_i, 2) their
    [start, end) in nt; positions[i] (P_i,) the nucleotides to read. onehot: :func:`_letter_onehot`
    (vocab, width, 4). For each covering token, the probability of letter x is the total probability of tokens
    with x at offset (position - token start), renormalised (tokens shorter than the offset contribute nothing);
    the covering tokens of the item are averaged. A nucleotide without any: uniform. Returns one (P_i, 4)
    float64 array per item. The token-to-letter products run as float64 matrix products of up to
    ``chunk_rows`` tokens of all items together (one product per row was the cost of a dependency map)."""
    n, width = len(p_toks), onehot.shape[1]
    counts_t = np.array([len(p) for p in p_toks], dtype=np.int64)
    counts_p = np.array([len(p) for p in positions], dtype=np.int64)
    if n == 0:
        return []
    table = onehot.reshape(onehot.shape[0], -1)
    per_offset = np.empty((int(counts_t.sum()), width, 4), dtype=np.float64)
    row, item = 0, 0
    while item < n:  # whole items per product, about chunk_rows tokens each
        stop, rows = item, 0
        while stop < n and (rows == 0 or rows + counts_t[stop] <= chunk_rows):
            rows += int(counts_t[stop])
            stop += 1
        block = np.concatenate(p_toks[item:stop]).astype(np.float64, copy=False)
        per_offset[row : row + rows] = (block @ table).reshape(rows, width, 4)
        row, item = row + rows, stop
    tok_start = np.concatenate([[0], np.cumsum(counts_t)[:-1]])
    pos_all = np.concatenate(positions).astype(np.int64, copy=False)
    pos_item = np.repeat(np.arange(n), counts_p)
    per_pos = counts_t[pos_item]  # covering-token candidates of each position: every masked token of its item
    pair_pos = np.repeat(np.arange(len(pos_all)), per_pos)
    first = np.repeat(np.cumsum(per_pos) - per_pos, per_pos)
    pair_tok = tok_start[pos_item][pair_pos] + (np.arange(len(pair_pos)) - first)
    spans_all = np.concatenate([np.asarray(s, dtype=np.int64).reshape(-1, 2) for s in spans])
    off = pos_all[pair_pos] - spans_all[pair_tok, 0]
    valid = (off >= 0) & (off < spans_all[pair_tok, 1] - spans_all[pair_tok, 0]) & (off < width)
    q = per_offset[pair_tok, np.clip(off, 0, width - 1)]  # (pairs, 4)
    total = q.sum(-1)
    valid &= total > 0
    q = np.where(valid[:, None], q / np.where(total > 0, total, 1.0)[:, None], 0.0)
    summed = np.zeros((len(pos_all), 4))
    np.add.at(summed, pair_pos, q)
    used = np.bincount(pair_pos, weights=valid, minlength=len(pos_all))
    out = np.where(used[:, None] > 0, summed / np.maximum(used, 1)[:, None], 0.25)
    return np.split(out, np.cumsum(counts_p)[:-1])


# ------------------------------------------------------------------------------------------------
# What the overlap gives (overlapping k-mers only)
# ------------------------------------------------------------------------------------------------
def _require_overlapping(tokenizer, what: str) -> int:
    """k of an overlapping k-mer tokenizer; ParameterError for any other scheme."""
    if getattr(tokenizer, "scheme", None) != "overlapping":
        raise ParameterError(
            f"{what} is only defined for overlapping k-mers (DNABERT): there a token shares k-1 nucleotides with "
            f"each neighbour, so unmasked neighbours reveal letters of a masked token. This tokenizer "
            f"({getattr(tokenizer, 'description', tokenizer)}) has tokens that share no nucleotides with their "
            "neighbours, so no flank reveals anything."
        )
    return int(tokenizer.k)


def _span_letters(tokenizer, windows: Sequence[str], starts, m: int):
    """Masked-span letters and which of them the unmasked neighbours reveal, for overlapping k-mers.

    Tokens starts[i] .. starts[i]+m-1 of window i are masked; they cover nucleotides [a, a+m+k-1).
    Returns codes (n, m+k-1) int64 letter codes (codec order: A=0, C=1, G=2, T=3), revealed (n, m+k-1)
    bool (left neighbour a-1 shows offsets < k-1, right neighbour a+m shows offsets >= m; a missing
    neighbour at a window edge shows nothing), and k.
    """
    from .tokenization import nucleotide_codes

    k = _require_overlapping(tokenizer, "the overlap arithmetic")
    m = _check_ms(m)
    if len(m) != 1:
        raise ParameterError(f"m={m}: pass one number of contiguous masked tokens.")
    m = m[0]
    starts = np.asarray(starts, dtype=np.int64).reshape(-1)
    if starts.shape[0] != len(windows):
        raise ParameterError(f"{starts.shape[0]} starts for {len(windows)} windows; pass one start per window.")
    width = m + k - 1
    n_tok = np.array([len(w) - k + 1 for w in windows], dtype=np.int64)
    bad = np.flatnonzero((starts < 0) | (starts + m > n_tok))
    if bad.size:
        i = int(bad[0])
        raise ParameterError(
            f"window {i}: tokens {starts[i]}..{starts[i] + m - 1} are not inside its {max(n_tok[i], 0)} {k}-mers; "
            "starts must satisfy 0 <= start and start + m <= number of tokens (windows shorter than the span?)."
        )
    codes = np.zeros((len(windows), width), dtype=np.int64)
    for i, (w, a) in enumerate(zip(windows, starts.tolist())):
        codes[i] = nucleotide_codes(w[a : a + width], where=f"window {i}")
    if (codes > 3).any():
        i = int(np.flatnonzero((codes > 3).any(1))[0])
        raise ParameterError(f"window {i}: the masked span holds a non-ACGT letter; use ACGT-only windows.")
    off = np.arange(width)
    left_end = np.where(starts >= 1, k - 1, 0)
    right_start = np.where(starts + m < n_tok, m, width)
    revealed = (off[None, :] < left_end[:, None]) | (off[None, :] >= right_start[:, None])
    return codes, revealed, k


def overlap_oracle(tokenizer, windows: Sequence[str], starts, m: int, *, guess_probs) -> np.ndarray:
    """(n, m) int64 ids that reading the unmasked neighbours gives for masked tokens starts .. starts+m-1.

    Every letter an unmasked overlapping neighbour reveals is copied; each hidden letter (none for m < k
    away from the edges) is the argmax of ``guess_probs``: (4,) or (n, 4) in ACGT order (one guess for every
    hidden letter, e.g. the corpus' base frequencies), or (n, m + k - 1, 4), one distribution per nucleotide of
    the span (e.g. a two-sided n-gram's for the hidden ones: :func:`hidden_letter_probs`). ``starts``: (n,)
    token index of the first masked token per window.
    """
    codes, revealed, k = _span_letters(tokenizer, windows, starts, m)
    guess = np.asarray(guess_probs, dtype=np.float64)
    if guess.shape in ((4,), (len(windows), 4)):
        fill = np.broadcast_to(guess, (len(windows), 4)).argmax(1)[:, None]
    elif guess.shape == codes.shape + (4,):
        fill = guess.argmax(-1)
    else:
        raise ParameterError(f"guess_probs has shape {guess.shape}; pass (4,), (n_windows, 4) or (n_windows, "
                             f"{codes.shape[1]}, 4) (one distribution per span nucleotide) in ACGT order.")
    letters = np.where(revealed, codes, fill)
    m = letters.shape[1] - k + 1
    kmers = np.lib.stride_tricks.sliding_window_view(letters, k, axis=1)  # (n, m, k): token j's letters
    return tokenizer.kmer_ids(codec.pack_codes(kmers.reshape(-1, k)).reshape(letters.shape[0], m))


def hidden_letter_probs(tokenizer, windows: Sequence[str], starts, m: int, *, hidden_model, guess_probs) -> np.ndarray:
    """(n, m + k - 1, 4) ACGT distributions for the nucleotides of each masked span: ``guess_probs`` ((4,) or
    (n, 4)) everywhere, replaced at the nucleotides no unmasked neighbour reveals by ``hidden_model(windows,
    blocks)``, a callable returning (sum of block lengths, 4) for half-open [start, end) ``blocks`` (e.g.
    :func:`ngram.two_sided_model`: the context-only guess given both flanks). For :func:`overlap_oracle`: copy what
    is revealed, and for what is hidden the best context-only guess."""
    codes, revealed, k = _span_letters(tokenizer, windows, starts, m)
    n, width = codes.shape
    out = np.array(np.broadcast_to(np.asarray(guess_probs, dtype=np.float64), (n, 4))[:, None, :].repeat(width, 1))
    hidden = ~revealed
    rows = np.flatnonzero(hidden.any(1))
    if rows.size == 0:
        return out
    first = hidden.argmax(1)
    length = hidden.sum(1)
    last = width - hidden[:, ::-1].argmax(1)
    if (last - first != length)[rows].any():
        raise ParameterError("hidden_letter_probs: a span's hidden nucleotides are not contiguous (a span at a window "
                             "edge?); choose spans away from the edges.")
    starts = np.asarray(starts, dtype=np.int64).reshape(-1)
    blocks = np.stack([starts[rows] + first[rows], starts[rows] + last[rows]], axis=1)
    probs = np.asarray(hidden_model([windows[i] for i in rows], blocks), dtype=np.float64)
    if probs.shape != (int(length[rows].sum()), 4):
        raise ParameterError(f"hidden_model returned shape {probs.shape}; expected ({int(length[rows].sum())}, 4).")
    r = np.repeat(rows, length[rows])
    o = np.concatenate([np.arange(first[i], last[i]) for i in rows])
    out[r, o] = probs
    return out


def flank_agreement(tokenizer, windows: Sequence[str], starts, m: int, pred_ids) -> np.ndarray:
    """(n, m) float: per masked token, the share of its revealed letters that its predicted k-mer matches.

    1.0 = the prediction agrees with everything the flanks show; NaN for a token with no revealed letter
    (possible when m >= 2k-1). ``pred_ids``: (n, m) predicted ids (a special token matches nothing).
    """
    codes, revealed, k = _span_letters(tokenizer, windows, starts, m)
    m = codes.shape[1] - k + 1
    pred = np.asarray(pred_ids, dtype=np.int64).reshape(len(windows), -1)
    if pred.shape[1] != m:
        raise ParameterError(f"pred_ids has {pred.shape[1]} columns per window; expected m={m}.")
    code = tokenizer.kmer_values(pred)  # -1 for specials
    letters = codec.unpack_codes(np.maximum(code, 0).reshape(-1), k).reshape(code.shape + (k,)).astype(np.int64)
    pred_letters = np.where(code[..., None] >= 0, letters, -1)  # (n, m, k)
    idx = np.arange(m)[:, None] + np.arange(k)[None, :]  # span offset of letter o of token j
    rev = revealed[:, idx]
    match = ((pred_letters == codes[:, idx]) & rev).sum(-1)
    n_rev = rev.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_rev > 0, match / n_rev, np.nan)


def span_predictions(sweep, m: int):
    """(windows (n,), starts (n,), pred_ids (n, m), true_ids (n, m)) of one m of a :func:`span_mask_sweep`."""
    part = sweep[sweep.m == m].sort_values(["window", "position"])
    if part.empty:
        raise ParameterError(f"the sweep holds no spans with m={m}; it has m in {sorted(sweep.m.unique())}.")
    first = part[part.position == 0]
    return (first.window.to_numpy(), first.start.to_numpy(), part.pred_id.to_numpy().reshape(-1, m),
            part.true_id.to_numpy().reshape(-1, m))


def _covering_letters(tokenizer, pred: np.ndarray, a: int, p: int) -> str:
    """Letters at nucleotide p of the predicted k-mers (masked tokens a .. a+len(pred)-1) that cover it."""
    k = tokenizer.k
    js = range(max(a, p - k + 1), min(a + len(pred) - 1, p) + 1)
    return "".join(tokenizer.vocab[int(pred[j - a])][p - j] for j in js)


def flank_perturbation(lm, windows: Sequence[str], m: int = 1, *, seed: int = 0, batch_size: int = 64,
                       amp: bool = True):
    """Change one flank letter that reveals a masked token: does the prediction follow the flank or the genome?

    Per window: mask m contiguous tokens away from the edges (starts as in ``span_mask_sweep(.., [m], seed)``),
    pick at random one nucleotide of the masked span that an unmasked overlapping neighbour reveals, and a
    different letter for it; re-tokenize the altered copy, mask the same tokens, and run original and
    altered inputs in the same batches. Returns (table, summary). Table columns: window, start, m, position
    (nt in the window), offset (nt after the first masked nucleotide), original, substitute (letters), true
    (the masked k-mers, space-separated), pred_original, pred_perturbed (predicted k-mers, space-separated), letters_original, letters_perturbed
    (letters the covering masked predictions put at ``position``), follows_flank (all equal the substitute),
    follows_genome (all equal the original letter), neither, original_follows_genome (unaltered input),
    changed (prediction differs). Summary: windows, m, and the mean of those booleans.
    """
    import pandas as pd

    tok = lm.tokenizer
    k = _require_overlapping(tok, "flank_perturbation")
    (m,) = _check_ms([m])
    batch_size = _check_batch_size(batch_size)
    rng = np.random.default_rng(seed)
    sp = _draw_spans(tok, windows, [m], rng)
    off = np.arange(m + k - 1)
    revealed_off = np.flatnonzero((off < k - 1) | (off >= m))  # a >= 1 and a+m <= n-1: both neighbours exist
    rows, info = [], []
    for (w, _, a), masked, ids in zip(sp.meta.tolist(), sp.masked, sp.encs):
        seq = windows[w]
        p = a + int(rng.choice(revealed_off))
        orig = seq[p].upper()
        if orig not in LETTERS:
            raise ParameterError(f"window {w}: nucleotide {p} is {orig!r}, not A/C/G/T; use ACGT-only windows.")
        sub = str(rng.choice([c for c in LETTERS if c != orig]))
        altered = seq[:p] + sub + seq[p + 1 :]
        pert = tok.encode(altered, where=f"altered window {w}").ids.copy()
        pert[a : a + m] = tok.mask_id
        diff = np.flatnonzero(np.frombuffer(seq.upper().encode(), np.uint8) != np.frombuffer(altered.upper().encode(), np.uint8))
        if len(altered) != len(seq) or diff.tolist() != [p]:
            raise AssertionError(f"window {w}: the altered copy differs at {diff.tolist()}, not only at {p}.")
        if pert.shape != masked.shape or not ((masked[a : a + m] == tok.mask_id).all() and (pert[a : a + m] == tok.mask_id).all()):
            raise AssertionError(f"window {w}: masked tokens {a}..{a + m - 1} are not [MASK] in both copies.")
        if (pert == masked).all():
            raise AssertionError(f"window {w}: changing nucleotide {p} changed no unmasked token.")
        rows += [masked, pert]
        info.append((w, a, p, orig, sub, " ".join(tok.convert_ids_to_tokens(ids[a : a + m]))))
    input_ids, att = lm.frame(rows)
    positions = [np.arange(a, a + m) + tok.body_offset for (_, a, *_) in info for _ in range(2)]
    logps = lm.masked_logprobs(input_ids, att, positions, batch_size, amp=amp)
    out = []
    for i, (w, a, p, orig, sub, true) in enumerate(info):
        po, pp = logps[2 * i].argmax(1), logps[2 * i + 1].argmax(1)
        lo, lp = _covering_letters(tok, po, a, p), _covering_letters(tok, pp, a, p)
        flank, genome = lp == sub * len(lp), lp == orig * len(lp)
        out.append(dict(window=w, start=a, m=m, position=p, offset=p - a, original=orig, substitute=sub,
                        true=true, pred_original=" ".join(tok.convert_ids_to_tokens(po)),
                        pred_perturbed=" ".join(tok.convert_ids_to_tokens(pp)),
                        letters_original=lo, letters_perturbed=lp, follows_flank=flank, follows_genome=genome,
                        neither=not (flank or genome), original_follows_genome=lo == orig * len(lo),
                        changed=bool((po != pp).any())))
    table = pd.DataFrame(out)
    cols = ["follows_flank", "follows_genome", "neither", "original_follows_genome", "changed"]
    summary = {"windows": len(table), "m": m, **{c: float(table[c].mean()) if len(table) else float("nan") for c in cols}}
    return table, summary


# ------------------------------------------------------------------------------------------------
# Inside the model: logit lens and attention
# ------------------------------------------------------------------------------------------------
def _masked_index(sp: _Spans, lo: int, hi: int):
    """(row-in-batch, column) int64 tensors of the masked positions of rows lo .. hi-1."""
    import torch

    r = np.concatenate([np.full(len(p), i) for i, p in enumerate(sp.positions[lo:hi])])
    c = np.concatenate(sp.positions[lo:hi])
    return torch.from_numpy(r), torch.from_numpy(c)


def _device_batches(lm, sp, input_ids, att, batch_size: int, *, desc: str, progress: bool):
    """Yield (lo, hi, ids, attention, rows, cols) per batch of mask variants: the (batch, tokens) tensors on the
    model's device and the row/column indices of the masked positions inside the batch."""
    import torch
    from tqdm.auto import tqdm

    for lo in tqdm(range(0, len(sp.masked), batch_size), desc=desc, disable=not progress):
        hi = min(lo + batch_size, len(sp.masked))
        r, c = _masked_index(sp, lo, hi)
        yield (lo, hi, torch.from_numpy(input_ids[lo:hi]).to(lm.device), torch.from_numpy(att[lo:hi]).to(lm.device), r, c)


def layer_readout(lm, windows: Sequence[str], m: int = 1, *, seed: int = 0, batch_size: int = 64, amp: bool = True,
                  progress: bool = False, return_predictions: bool = False):
    """Logit lens for an encoder: every layer's hidden state at the masked positions through the MLM head.

    Masks m contiguous tokens per window (starts as in ``span_mask_sweep(.., [m], seed)``), runs the model
    once with output_hidden_states, and reads each hidden state (layer 0 = embedding output, layer L = final
    layer) through ``lm.model.cls`` (BERT) or ``lm.model.lm_head`` (ESM, after the encoder's final LayerNorm),
    specials excluded. Returns a DataFrame with one row per layer: layer, accuracy, top5, nll (nats), tokens.
    The last row equals the ordinary prediction (``summarize_sweep`` of the same sweep).
    ``return_predictions=True`` returns ``(table, pred)`` with pred (layer, token) int64 predicted ids, tokens
    in the sweep's row order (window, then position inside the span).
    """
    import pandas as pd
    import torch

    lm.require("layer_readout", "the logit lens")
    tok = lm.tokenizer
    (m,) = _check_ms([m])
    batch_size = _check_batch_size(batch_size)
    sp = _draw_spans(tok, windows, [m], np.random.default_rng(seed))
    input_ids, att = lm.frame(sp.masked)
    special = torch.from_numpy(tok.is_special)
    sums, n, preds = None, 0, []
    lm.model.eval()
    with torch.no_grad():
        for lo, hi, ids, mask, r, c in _device_batches(lm, sp, input_ids, att, batch_size, desc="layer readout", progress=progress):
            true = torch.from_numpy(np.concatenate([e[a : a + m] for e, (_, _, a) in zip(sp.encs[lo:hi], sp.meta[lo:hi].tolist())]))
            with _amp(lm, amp):
                states = lm.encode(ids, mask, hidden_states=True).hidden_states
                logits = torch.stack([lm.token_logits(st[r.to(lm.device), c.to(lm.device)], layer=layer)
                                      for layer, st in enumerate(states)])  # (layer, token, vocab)
            logits = logits.float().cpu()[..., : special.shape[0]]
            logp = torch.log_softmax(logits.masked_fill(special, float("-inf")), dim=-1)
            pred = logp.argmax(-1)  # (layer, token)
            preds.append(pred.numpy())
            correct = (pred == true).sum(1)
            top5 = (logp.topk(5, dim=-1).indices == true[None, :, None]).any(-1).sum(1)
            nll = -logp.gather(-1, true[None, :, None].expand(logp.shape[0], -1, 1)).squeeze(-1).sum(1)
            batch = torch.stack([correct.double(), top5.double(), nll.double()], 1).numpy()
            sums = batch if sums is None else sums + batch
            n += true.shape[0]
    stats = sums / n
    table = pd.DataFrame({"layer": np.arange(len(stats)), "accuracy": stats[:, 0], "top5": stats[:, 1],
                          "nll": stats[:, 2], "tokens": n})
    return (table, np.concatenate(preds, axis=1).astype(np.int64)) if return_predictions else table


#: Key categories of :func:`attention_shares`, in column order.
ATTENTION_KEYS = ("overlapping", "masked", "distant", "special")


def attention_shares(lm, windows: Sequence[str], m: int = 1, *, seed: int = 0, batch_size: int = 64,
                     amp: bool = True, progress: bool = False):
    """Where queries at masked positions attend, per (layer, head).

    Masks m contiguous tokens per window (starts as in ``span_mask_sweep(.., [m], seed)``). Keys fall into:
    overlapping (unmasked tokens sharing a nucleotide with the masked span: the k-1 neighbours on each side
    for overlapping k-mers, none for non-overlapping schemes), masked (every masked token, the query itself
    included), distant (all other tokens) and special ([CLS], [SEP]; padding, which gets no weight). Each
    query's attention row is renormalised to 1 (absorbs bf16 rounding), then averaged over all masked
    queries. Returns a DataFrame: layer (1..L, the l-th transformer layer), head, share_overlapping,
    share_masked, share_distant, share_special, queries, and the reference a head without preference would give:
    uniform_<key>, the share of each key class under attention spread evenly over a window's attended keys
    (padding excluded), averaged over the same queries (the same for every layer and head). Needs a model
    loaded with ``attn_implementation="eager"`` (SDPA returns no attention weights).
    """
    import pandas as pd
    import torch

    lm.require("attention", "attention shares")
    tok = lm.tokenizer
    (m,) = _check_ms([m])
    batch_size = _check_batch_size(batch_size)
    sp = _draw_spans(tok, windows, [m], np.random.default_rng(seed))
    input_ids, att = lm.frame(sp.masked)
    off = tok.body_offset
    cat = np.full(input_ids.shape, 3, dtype=np.int64)  # special: framing tokens and padding
    for i, ((_, _, a), spans) in enumerate(zip(sp.meta.tolist(), sp.token_spans)):
        n_tok = spans.shape[0]
        cat[i, off : off + n_tok] = 2  # distant
        s, e = spans[a, 0], spans[a + m - 1, 1]
        overlap = np.flatnonzero((spans[:, 0] < e) & (spans[:, 1] > s))
        cat[i, overlap + off] = 0
        cat[i, a + off : a + m + off] = 1
    onehot = torch.nn.functional.one_hot(torch.from_numpy(cat), len(ATTENTION_KEYS)).double()  # (rows, T, 4)
    keys = torch.as_tensor(np.asarray(att), dtype=torch.float64)  # (rows, T): 1 where a key can be attended
    per_row = torch.einsum("rt,rtc->rc", keys, onehot) / keys.sum(-1, keepdim=True)  # uniform attention's shares
    totals, uniform, n = None, torch.zeros(len(ATTENTION_KEYS), dtype=torch.float64), 0
    lm.model.eval()
    with torch.no_grad():
        for lo, hi, ids, mask, r, c in _device_batches(lm, sp, input_ids, att, batch_size, desc="attention", progress=progress):
            with _amp(lm, amp):
                atts = lm.encode(ids, mask, attentions=True).attentions
            # (layer, query, head, key) rows of the masked queries only
            q = torch.stack([a[r.to(a.device), :, c.to(a.device), :].float().cpu().double() for a in atts])
            q = q / q.sum(-1, keepdim=True)
            share = torch.einsum("lqhk,qkc->lhc", q, onehot[lo:hi][r])
            totals = share if totals is None else totals + share
            uniform += per_row[lo:hi][r].sum(0)
            n += r.shape[0]
    shares = (totals / n).numpy()  # (layer, head, 4)
    n_layers, n_heads = shares.shape[:2]
    df = pd.DataFrame({"layer": np.repeat(np.arange(1, n_layers + 1), n_heads), "head": np.tile(np.arange(n_heads), n_layers)})
    for i, key in enumerate(ATTENTION_KEYS):
        df[f"share_{key}"] = shares[:, :, i].reshape(-1)
    df["queries"] = n
    for i, key in enumerate(ATTENTION_KEYS):
        df[f"uniform_{key}"] = float(uniform[i] / n)
    return df


# ------------------------------------------------------------------------------------------------
# Chapter tables: one model's sweep with its references, the same nucleotides for every model
# ------------------------------------------------------------------------------------------------
@dataclass
class SweepTables:
    """Tidy outputs of :func:`sweep_with_references` for one model.

    summary: one row per m (model, scheme, k, m, accuracy, top5, nll, span_accuracy, tokens, leak_bound,
    oracle_accuracy, flank_agreement, hidden_per_window, hidden_accuracy, hidden_bits); by_position: one
    row per (m, position inside the span) with accuracy, top5 and the per-position leak bound; sweep and
    hidden: the raw per-token and per-hidden-nucleotide tables of :func:`span_mask_sweep`; oracle_items: per (m,
    window) the model's and the overlap oracle's token accuracy on the same span (overlapping k-mers only).
    """

    summary: object
    by_position: object
    sweep: object
    hidden: object
    oracle_items: object = None


def sweep_with_references(lm, windows: Sequence[str], ms: Sequence[int], *, name: str, guess_probs, seed: int = 0,
                          batch_size: int = 64, progress: bool = False, hidden_model=None) -> SweepTables:
    """:func:`span_mask_sweep` at nucleotide level plus, for overlapping k-mers, its references on the same spans.

    leak_bound: :func:`tokenization.overlap_only_token_accuracy` (hidden letters guessed uniformly);
    oracle_accuracy: token accuracy of :func:`overlap_oracle`, which copies every revealed letter and fills each
    hidden one with the argmax of ``hidden_model`` (:func:`hidden_letter_probs`; e.g. the two-sided n-gram given
    the flanks: copying plus the best context-only guess) or, without one, of ``guess_probs`` (ACGT order, e.g.
    corpus base frequencies); flank_agreement: mean over masked tokens of the share of revealed letters the
    predicted k-mer matches (:func:`flank_agreement`). These three are NaN for tokenizations without overlap,
    where no neighbour reveals anything. ``oracle_items`` has, per (m, window), the model's and the oracle's
    token accuracy on the same masked span, for a paired comparison.
    """
    import pandas as pd

    from .tokenization import overlap_only_position_accuracy

    ms = _check_ms(ms)
    tok = lm.tokenizer
    sweep, hidden = span_mask_sweep(lm, windows, ms, seed=seed, batch_size=batch_size, progress=progress,
                                    nucleotide_level=True)
    summary = summarize_sweep(sweep, span=True)
    overlapping = tok.scheme == "overlapping"
    k = int(tok.k) if getattr(tok, "k", None) else np.nan
    extra, pos_rows, item_rows = [], [], []
    for m in ms:
        win, starts, pred, true = span_predictions(sweep, m)
        wins = [windows[w] for w in win]
        row = {"m": m, "leak_bound": np.nan, "oracle_accuracy": np.nan, "flank_agreement": np.nan}
        bound = np.full(m, np.nan)
        if overlapping:
            bound = overlap_only_position_accuracy(m, k)
            guess = (guess_probs if hidden_model is None else
                     hidden_letter_probs(tok, wins, starts, m, hidden_model=hidden_model, guess_probs=guess_probs))
            oracle = overlap_oracle(tok, wins, starts, m, guess_probs=guess)
            row.update(leak_bound=float(bound.mean()), oracle_accuracy=float((oracle == true).mean()),
                       flank_agreement=float(np.nanmean(flank_agreement(tok, wins, starts, m, pred))))
            item_rows.append(pd.DataFrame({"model": name, "m": m, "window": win,
                                           "model_accuracy": (pred == true).mean(1),
                                           "oracle_accuracy": (oracle == true).mean(1)}))
        extra.append(row)
        correct = pred == true
        top5 = sweep[sweep.m == m].sort_values(["window", "position"]).top5.to_numpy().reshape(-1, m)
        for j in range(m):
            pos_rows.append({"m": m, "position": j, "accuracy": float(correct[:, j].mean()),
                             "top5": float(top5[:, j].mean()), "leak_bound": float(bound[j])})
    hid = summarize_hidden(hidden).rename(columns={"accuracy": "hidden_accuracy", "bits": "hidden_bits"})
    summary = (summary.merge(pd.DataFrame(extra), on="m")
               .merge(hid[["m", "hidden_per_window", "hidden_accuracy", "hidden_bits"]], on="m"))
    head = {"model": name, "scheme": tok.scheme, "k": k}
    summary["chance"] = 1.0 / float((~tok.is_special).sum())  # uniform guess over the predictable tokens
    summary = pd.concat([pd.DataFrame([head] * len(summary)), summary], axis=1)
    by_position = pd.DataFrame(pos_rows)
    by_position = pd.concat([pd.DataFrame([head] * len(by_position)), by_position], axis=1)
    oracle_items = (pd.concat(item_rows, ignore_index=True) if item_rows else
                    pd.DataFrame(columns=["model", "m", "window", "model_accuracy", "oracle_accuracy"]))
    return SweepTables(summary, by_position, sweep, hidden, oracle_items)


def span_hidden_blocks(windows: Sequence[str], ms: Sequence[int], k: int, *, seed: int = 0) -> dict[int, np.ndarray]:
    """m -> (n_windows, 2) [start, end) of the nucleotides hidden from the flanks when ``span_mask_sweep(lm,
    windows, ms, seed=seed)`` masks m contiguous overlapping k-mers (same draws; m < k hide nothing and are
    left out). Model-free, so every tokenization can be scored on exactly these nucleotides."""
    from .tokenization import OverlappingKmerTokenizer

    ms = _check_ms(ms)
    sp = _draw_spans(OverlappingKmerTokenizer(k), windows, ms, np.random.default_rng(seed))
    out: dict[int, list] = {}
    for w, m, a in sp.meta.tolist():
        if m >= k:
            out.setdefault(m, []).append((a + k - 1, a + m))
    return {m: np.array(v, dtype=np.int64) for m, v in out.items()}


def same_nucleotide_scores(models, windows: Sequence[str], blocks_by_m, *, batch_size: int = 64, progress: bool = False,
                           amp: bool = True, per_window: bool = False):
    """Hide the same nucleotide blocks for every model (:func:`nucleotide_block_eval`) and score them.

    models: name -> loaded model; blocks_by_m: m -> (n_windows, 2) blocks (e.g. the blocks an
    overlapping model's sweep (:func:`span_hidden_blocks`), so every model is scored on exactly the nucleotides that model
    could not see).
    Returns a DataFrame: m, h (block length), model, scheme, accuracy, bits, nucleotides, tokens_masked (mean
    tokens masked per window to hide the block); ``attrs["not_applicable"]`` lists the models that cannot
    score a hidden block (and why): masked models read it from masked tokens, causal models from the
    likelihood of each of its 4^h completions (h <= 6). ``per_window=True`` returns ``(table, per_window)``,
    per_window holding m, h, model, window, accuracy, bits per window (:func:`window_scores`), the items of a paired comparison.
    """
    import pandas as pd
    from tqdm.auto import tqdm

    from .adapters import NotApplicable

    rows, skipped, windows_scored = [], {}, []
    for m, blocks in tqdm(list(blocks_by_m.items()), desc="same nucleotides", disable=not progress):
        blocks = np.asarray(blocks, dtype=np.int64)
        h = int((blocks[:, 1] - blocks[:, 0]).max())
        for name, lm in models.items():
            try:
                res = nucleotide_block_eval(lm, windows, blocks, batch_size=batch_size, amp=amp)
            except NotApplicable as exc:
                skipped.setdefault(name, {"model": name, "probe": "hiding the same nucleotides",
                                          "reason": str(exc).split(": ", 1)[-1].rstrip(".")})
                continue
            rows.append({"m": m, "h": h, "model": name, "scheme": lm.tokenizer.scheme,
                         "tokens_masked": float(res.masked_tokens.mean()), **res.metrics()})
            acc, bits = window_scores(res.probs, res.truth, res.window, len(windows))
            windows_scored.append(pd.DataFrame({"m": m, "h": h, "model": name, "window": np.arange(len(windows)),
                                            "accuracy": acc, "bits": bits}))
    out = pd.DataFrame(rows, columns=["m", "h", "model", "scheme", "tokens_masked", "accuracy", "bits", "nucleotides"])
    out.attrs["not_applicable"] = list(skipped.values())
    if not per_window:
        return out
    return out, (pd.concat(windows_scored, ignore_index=True) if windows_scored else
                 pd.DataFrame(columns=["m", "h", "model", "window", "accuracy", "bits"]))


def block_baselines(windows: Sequence[str], blocks: np.ndarray, *, counts, order: int, prior,
                    per_window: bool = False) -> list[dict] | dict:
    """Context-only references on hidden blocks: the two-sided n-gram of ``order`` (ngram.two_sided_block_probs
    on ``counts``), the base frequencies ``prior`` (4,) ACGT, and chance. Rows: model, scheme ("baseline"),
    accuracy, bits, nucleotides. ``per_window=True`` returns instead {reference: (accuracy, bits)} per window
    (:func:`window_scores`) for the n-gram and the base frequencies."""
    from . import ngram

    truth = ngram.block_truth(windows, blocks)
    ngram_probs = ngram.two_sided_block_probs(counts, windows, blocks, order=order)
    prior = np.asarray(prior, dtype=np.float64)
    if per_window:
        blocks = np.asarray(blocks, dtype=np.int64)
        window = np.repeat(np.arange(len(blocks)), blocks[:, 1] - blocks[:, 0])
        return {
            f"two-sided n-gram (order {order})": window_scores(ngram_probs, truth, window, len(blocks)),
            "corpus base frequencies": window_scores(np.tile(prior, (len(truth), 1)), truth, window, len(blocks)),
        }
    return [
        {"model": f"two-sided n-gram (order {order})", "scheme": "baseline", **block_metrics(ngram_probs, truth)},
        {"model": "corpus base frequencies", "scheme": "baseline", **block_metrics(np.tile(prior, (len(truth), 1)), truth)},
        {"model": "chance", "scheme": "baseline", "accuracy": 0.25, "bits": 2.0, "nucleotides": int(len(truth))},
    ]


def hidden_nucleotide_items(models, windows: Sequence[str], blocks_by_m, *, counts, orders: Mapping[int, int], prior,
                            batch_size: int = 64, amp: bool = True):
    """The items of the hidden-nucleotide verdicts: per window, every model's and the context-only references'
    accuracy and bits on the same hidden block.

    ``blocks_by_m``: m -> (n_windows, 2) blocks (:func:`span_hidden_blocks`); ``orders``: block length h -> the
    two-sided n-gram's flank order (e.g. from ``ngram.held_out_order``). Returns a long DataFrame: model (the
    references are "two-sided n-gram" and "corpus base frequencies"), m, h, window, accuracy, bits; and
    ``attrs["not_applicable"]`` as :func:`same_nucleotide_scores`.
    """
    import pandas as pd

    scored, scored_windows = same_nucleotide_scores(models, windows, blocks_by_m, batch_size=batch_size, amp=amp,
                                                    per_window=True)
    parts = [scored_windows]
    for m, blocks in blocks_by_m.items():
        blocks = np.asarray(blocks, dtype=np.int64)
        h = int((blocks[:, 1] - blocks[:, 0]).max())
        refs = block_baselines(windows, blocks, counts=counts, order=int(orders[h]), prior=prior, per_window=True)
        for name, (acc, bits) in refs.items():
            parts.append(pd.DataFrame({"m": m, "h": h, "model": name.split(" (order")[0],
                                       "window": np.arange(len(blocks)), "accuracy": acc, "bits": bits}))
    items = pd.concat(parts, ignore_index=True)
    items.attrs["not_applicable"] = scored.attrs["not_applicable"]
    return items


def unseen_gaps(tokenizer, windows: Sequence[str], blocks: np.ndarray) -> np.ndarray:
    """(n_windows, 2) [start, end) of the nucleotides a model cannot read once every token overlapping each hidden
    block is masked (:func:`nucleotide_block_eval`): those covered by no unmasked token.

    For overlapping k-mers and single nucleotides this is the block itself (the neighbours reveal the rest); for
    non-overlapping k-mers and BPE it is the union of the masked tokens, which hides letters beside the block
    that the n-gram and the overlapping models are shown."""
    blocks = np.asarray(blocks, dtype=np.int64)
    out = np.empty_like(blocks)
    for w, seq in enumerate(windows):
        spans = tokenizer.encode(seq, where=f"window {w}").spans
        s, e = blocks[w]
        seen = np.zeros(len(seq) + 1, dtype=np.int64)
        shown = spans[~((spans[:, 0] < e) & (spans[:, 1] > s))]
        np.add.at(seen, shown[:, 0], 1)
        np.add.at(seen, shown[:, 1], -1)
        unseen = np.cumsum(seen[:-1]) == 0
        lo, hi = s, e
        while lo > 0 and unseen[lo - 1]:
            lo -= 1
        while hi < len(seq) and unseen[hi]:
            hi += 1
        out[w] = (lo, hi)
    return out


def unseen_gap_lengths(models, windows: Sequence[str], blocks_by_m) -> list[int]:
    """Sorted distinct lengths (nt) of the :func:`unseen_gaps` of every masked model on every m's blocks (and the
    block lengths themselves): the gap lengths whose n-gram flank order ``ngram.held_out_gap_order`` must pick."""
    lengths = set()
    for blocks in blocks_by_m.values():
        blocks = np.asarray(blocks, dtype=np.int64)
        lengths |= set((blocks[:, 1] - blocks[:, 0]).tolist())
        for lm in models.values():
            if lm.can("masked_logprobs"):
                gaps = unseen_gaps(lm.tokenizer, windows, blocks)
                lengths |= set((gaps[:, 1] - gaps[:, 0]).tolist())
    return sorted(int(g) for g in lengths)


SAME_VIEW_REFERENCE = "n-gram seeing what the model sees"


def same_view_items(models, windows: Sequence[str], blocks_by_m, *, counts, orders: Mapping[int, int],
                    alpha: float = 0.5) -> "pd.DataFrame":
    """Per model and window: the accuracy and bits of a context-only n-gram that sees exactly the nucleotides
    the model sees (``ngram.gapped_letter_probs`` on the model's :func:`unseen_gaps`), on the same hidden
    blocks as :func:`hidden_nucleotide_items`.

    ``counts``: ``ngram.KmerCounts`` of the pre-training corpus; ``orders``: gap length -> flank order (e.g. from
    ``ngram.held_out_gap_order``; a length not in it takes the order of the nearest length below, or the
    smallest). Models without a tokenizer that masks tokens (causal models) see both flanks of the block and
    get the block itself as gap. Returns a long DataFrame: model, m, h, window, gap_nt (letters unseen),
    accuracy, bits; the n-gram's rows carry the model they stand beside."""
    import pandas as pd

    from . import ngram

    table = {int(g): int(o) for g, o in orders.items()}
    if not table:
        raise ParameterError("orders is empty; pass gap length -> flank order, e.g. from ngram.held_out_gap_order.")

    def order_for(g: int) -> int:
        below = [x for x in table if x <= g]
        return table[max(below)] if below else table[min(table)]

    parts = []
    for m, blocks in blocks_by_m.items():
        blocks = np.asarray(blocks, dtype=np.int64)
        h = int((blocks[:, 1] - blocks[:, 0]).max())
        truth = ngram.block_truth(windows, blocks)
        window = np.repeat(np.arange(len(blocks)), blocks[:, 1] - blocks[:, 0])
        targets = np.concatenate([np.arange(s, e) for s, e in blocks])
        scored: dict[bytes, tuple] = {}  # models that hide the same gaps (e.g. every overlapping k) share one n-gram
        for name, lm in models.items():
            masks = lm.can("masked_logprobs")
            gaps = unseen_gaps(lm.tokenizer, windows, blocks) if masks else blocks
            per = np.ascontiguousarray(gaps[window], dtype=np.int64)
            pattern = per.tobytes()
            if pattern not in scored:
                probs = np.zeros((len(targets), 4))
                for g in np.unique(per[:, 1] - per[:, 0]).tolist():
                    rows = np.flatnonzero(per[:, 1] - per[:, 0] == g)
                    probs[rows] = ngram.gapped_letter_probs(counts, [windows[i] for i in window[rows]], per[rows],
                                                            targets[rows], order=order_for(g), alpha=alpha)
                scored[pattern] = window_scores(probs, truth, window, len(blocks))
            acc, bits = scored[pattern]
            parts.append(pd.DataFrame({"model": name, "m": m, "h": h, "window": np.arange(len(blocks)),
                                       "gap_nt": gaps[:, 1] - gaps[:, 0], "accuracy": acc, "bits": bits}))
    return (pd.concat(parts, ignore_index=True) if parts else
            pd.DataFrame(columns=["model", "m", "h", "window", "gap_nt", "accuracy", "bits"]))


def same_view_summary(items, same_view) -> "pd.DataFrame":
    """Per (h, model): the mean unseen gap (nt), the model's accuracy on the hidden nucleotides, the n-gram seeing
    what it sees and the two-sided n-gram that sees everything but the block (from :func:`hidden_nucleotide_items`
    and :func:`same_view_items` on the same windows), each a mean over windows; ``shortfall_explained`` = the
    share of the model's deficit against the two-sided n-gram that the masking's extra hidden letters account for
    (NaN where the model is not below it)."""
    import pandas as pd

    model_acc = items.groupby(["h", "model"]).accuracy.mean()
    two_sided = items[items.model == "two-sided n-gram"].groupby("h").accuracy.mean()
    rows = []
    for (h, name), part in same_view.groupby(["h", "model"], sort=False):
        acc, own, full = float(model_acc.get((h, name), np.nan)), float(part.accuracy.mean()), float(two_sided.get(h, np.nan))
        deficit = full - acc
        rows.append({"h": h, "model": name, "gap_nt": float(part.gap_nt.mean()), "model_accuracy": acc,
                     "same_view_ngram": own, "two_sided_ngram": full,
                     "shortfall_explained": (full - own) / deficit if deficit > 0 else np.nan})
    return pd.DataFrame(rows)


def hidden_block_table(models, windows: Sequence[str], block_lengths: Sequence[int], *, corpus: Sequence[str],
                       orders: Mapping[int, int], prior, margin: int, seed: int = 0):
    """Every model and the context-only references on one hidden block of h nucleotides per window, for each h
    of ``block_lengths`` (blocks from :func:`choose_blocks`, the same for every model).

    ``corpus``: sequences the two-sided n-gram counts; ``orders``: h -> its flank order. Returns (scores,
    baselines): scores with h, model, scheme, tokens_masked, accuracy, bits, nucleotides; baselines with h
    and the rows of :func:`block_baselines`.
    """
    import pandas as pd

    from . import ngram

    rows, baseline_rows = [], []
    for h in block_lengths:
        blocks = choose_blocks([len(w) for w in windows], h, margin=margin, seed=seed)
        for name, lm in models.items():
            res = nucleotide_block_eval(lm, windows, blocks)
            rows.append({"h": h, "model": name, "scheme": lm.tokenizer.scheme,
                         "tokens_masked": float(res.masked_tokens.mean()), **res.metrics()})
        order = int(orders[h])
        counts = ngram.KmerCounts(list(corpus), max_len=2 * order + h)
        baseline_rows += [{"h": h, **row} for row in block_baselines(windows, blocks, counts=counts, order=order,
                                                                      prior=prior)]
    return pd.DataFrame(rows), pd.DataFrame(baseline_rows)


# ------------------------------------------------------------------------------------------------
# Trained against initialisation (step 0): chapter 3's probe metrics on both, side by side
# ------------------------------------------------------------------------------------------------
#: Columns of :func:`probe_metrics` / :func:`probe_metrics_from_tables` (long format, one row per value).
PROBE_METRIC_COLUMNS = ["model", "probe", "m", "h", "metric", "value", "reference", "reference_value"]
#: Probe names used in the long table (and in the step-0 sentences).
SWEEP_PROBE, SAME_PROBE, PERTURB_PROBE = "span sweep", "same hidden nucleotides", "flank perturbation"


def probe_metrics_from_tables(*, summary=None, same=None, perturbation=None, baselines=None):
    """Chapter 3's probe metrics in one long table: one row per (model, probe, m, metric).

    ``summary``: :class:`SweepTables` summaries (model, m, accuracy, flank_agreement, hidden_per_window,
    oracle_accuracy) -> probe "span sweep", metrics ``accuracy`` (token top-1, the model's own m masked tokens;
    reference: the overlap oracle on the same spans) and ``flank_agreement``; h = hidden nucleotides per span.
    ``same``: :func:`same_nucleotide_scores` (m, h, model, accuracy, bits) -> probe "same hidden nucleotides",
    metrics ``accuracy`` (fraction) and ``bits`` (per nucleotide, lower is better), each beside the two-sided
    n-gram of ``baselines`` (rows m, model "two-sided n-gram (order n)", accuracy, bits) when given.
    ``perturbation``: :func:`flank_perturbation` summaries with a model column -> probe "flank perturbation",
    metrics ``follows_flank`` (the copying rate) and ``follows_genome`` (shares of windows).
    Returns columns :data:`PROBE_METRIC_COLUMNS` (h and the reference NaN where they do not apply); absent or
    empty tables add no rows."""
    import pandas as pd

    parts = []

    def add(df, probe, metrics, h, ref=None):
        for metric, (ref_name, ref_col) in metrics.items():
            part = pd.DataFrame({"model": df["model"].astype(str).to_numpy(), "probe": probe,
                                 "m": df["m"].astype(np.int64).to_numpy(), "h": h, "metric": metric,
                                 "value": df[metric].astype(float).to_numpy(), "reference": ref_name,
                                 "reference_value": np.nan})
            if ref_col is not None and ref is not None:
                part["reference_value"] = ref(df, metric, ref_col)
            parts.append(part)

    if summary is not None and len(summary):
        missing = {"model", "m", "accuracy", "flank_agreement", "hidden_per_window", "oracle_accuracy"} - set(summary)
        if missing:
            raise ParameterError(f"summary lacks column(s) {sorted(missing)}; pass sweep_with_references(...).summary "
                                 "tables, concatenated.")
        add(summary, SWEEP_PROBE, {"accuracy": ("overlap oracle", "oracle_accuracy"), "flank_agreement": (None, None)},
            summary["hidden_per_window"].astype(float).to_numpy(),
            ref=lambda df, metric, col: df[col].astype(float).to_numpy())
    if same is not None and len(same):
        missing = {"model", "m", "h", "accuracy", "bits"} - set(same)
        if missing:
            raise ParameterError(f"same lacks column(s) {sorted(missing)}; pass a same_nucleotide_scores(...) table.")
        ngram_rows = None
        if baselines is not None and len(baselines):
            ngram_rows = baselines[baselines["model"].astype(str).str.startswith("two-sided n-gram")].set_index("m")
            if ngram_rows.index.duplicated().any():
                raise ParameterError("baselines holds more than one two-sided n-gram row per m; pass one per m.")
        ref = (None if ngram_rows is None else
               lambda df, metric, col: df["m"].map(ngram_rows[metric]).astype(float).to_numpy())
        name = "two-sided n-gram" if ngram_rows is not None else None
        add(same, SAME_PROBE, {"accuracy": (name, "accuracy"), "bits": (name, "bits")},
            same["h"].astype(float).to_numpy(), ref=ref)
    if perturbation is not None and len(perturbation):
        missing = {"model", "m", "follows_flank", "follows_genome"} - set(perturbation)
        if missing:
            raise ParameterError(f"perturbation lacks column(s) {sorted(missing)}; pass flank_perturbation summaries "
                                 "with a model column.")
        add(perturbation, PERTURB_PROBE, {"follows_flank": (None, None), "follows_genome": (None, None)}, np.nan)
    if not parts:
        return pd.DataFrame(columns=PROBE_METRIC_COLUMNS)
    out = pd.concat(parts, ignore_index=True)[PROBE_METRIC_COLUMNS]
    out["h"] = out["h"].astype(float)
    return out


def probe_metrics(models, windows: Sequence[str], *, copy_models: Sequence[str], m_past_k: int, blocks_by_m,
                  perturbation_m: Sequence[int], guess_probs, seed: int = 0, batch_size: int = 64, baselines=None,
                  hidden_model=None):
    """Run chapter 3's descriptive probes on ``models`` (name -> loaded model) exactly as the chapter runs them and
    return :func:`probe_metrics_from_tables`' long table.

    The span sweep (:func:`sweep_with_references`, m = 1 .. k + ``m_past_k``) and the flank perturbation
    (:func:`flank_perturbation`, each m of ``perturbation_m``) run on the models named in ``copy_models``
    (overlapping k-mers with a masked head, ``roles.copy_candidates``); the same hidden nucleotides
    (:func:`same_nucleotide_scores` on ``blocks_by_m``) on every model. Same ``windows``, ``seed`` and draws as
    the chapter, so a model's step-0 twin is scored on the very spans, blocks and substitutions its trained
    weights were (and against the same oracle: ``hidden_model`` as in :func:`sweep_with_references`).
    ``attrs["not_applicable"]`` lists the models that cannot score a hidden block."""
    copy_models = [n for n in copy_models if n in models]
    tables = [sweep_with_references(models[n], windows, range(1, int(models[n].tokenizer.k) + int(m_past_k) + 1),
                                    name=n, guess_probs=guess_probs, seed=seed, batch_size=batch_size,
                                    hidden_model=hidden_model).summary
              for n in copy_models]
    same = same_nucleotide_scores(models, windows, blocks_by_m, batch_size=batch_size) if models else None
    perturbed = [{"model": n, **flank_perturbation(models[n], windows, m, seed=seed, batch_size=batch_size)[1]}
                 for n in copy_models for m in perturbation_m]
    import pandas as pd

    out = probe_metrics_from_tables(summary=pd.concat(tables, ignore_index=True) if tables else None, same=same,
                                    perturbation=pd.DataFrame(perturbed) if perturbed else None, baselines=baselines)
    out.attrs["not_applicable"] = same.attrs["not_applicable"] if same is not None else []
    return out


def probe_versus_initial(trained, initial):
    """Trained against step 0, side by side: one row per (model, probe, m, metric) of ``trained`` whose model
    also appears in ``initial`` (both :data:`PROBE_METRIC_COLUMNS` tables, the step-0 one computed by
    :func:`probe_metrics` on the same windows and seed). Columns: model, probe, m, h, metric, trained, initial,
    difference = trained - initial (fractions for accuracy, agreement and shares; bits per nucleotide for
    ``bits``, where a negative difference is an improvement), reference, reference_value (the trained table's).
    A row the step-0 table lacks keeps initial and difference NaN; models without a step-0 twin are left out
    (report them with ``embeddings.initial_models``' rows)."""
    import pandas as pd

    keys = ["model", "probe", "m", "metric"]
    for what, table in (("trained", trained), ("initial", initial)):
        missing = set(keys) | {"value"}
        missing -= set(table.columns)
        if missing:
            raise ParameterError(f"{what} lacks column(s) {sorted(missing)}; pass probe_metrics(...) tables.")
        if table[keys].duplicated().any():
            dup = table[keys][table[keys].duplicated()].iloc[0].tolist()
            raise ParameterError(f"{what} has more than one row for (model, probe, m, metric) = {dup}; give each once.")
    cols = ["model", "probe", "m", "h", "metric", "trained", "initial", "difference", "reference", "reference_value"]
    if not len(trained) or not len(initial):
        return pd.DataFrame(columns=cols)
    a = trained[trained.model.isin(set(initial.model))].rename(columns={"value": "trained"})
    b = initial[keys + ["value"]].rename(columns={"value": "initial"})
    out = a.merge(b, on=keys, how="left", validate="one_to_one")
    out["difference"] = out["trained"] - out["initial"]
    for c in ("h", "reference", "reference_value"):
        if c not in out:
            out[c] = np.nan
    return out[cols].reset_index(drop=True)


def step0_probe_sentences(comparison, *, not_applicable, perturbation_m: Sequence[int]) -> dict[str, str]:
    """Chapter 3's step-0 sentences, ``{glue key: text}`` (glue with ``findings.glue_all``), from
    :func:`probe_versus_initial`:

    ``step0_perturb``: "At initialisation (step 0) the overlapping models follow the altered flank in **a** x %
    of windows; training took that to **a** y %" (m = first of ``perturbation_m``);
    ``step0_sweep_m1``: per model, m = 1 token accuracy at step 0 -> trained (difference in points);
    ``step0_same_h1``: per model, accuracy on the first hidden-block length h at step 0 -> trained, with the
    two-sided n-gram beside it; ``step0_probe_na``: the sentence naming the models without step-0 weights (``not_applicable``:
    ``embeddings.initial_models``' rows). No model names are written in: they come from the tables."""
    from .findings import step0_missing_sentence
    from .verdicts import fmt_pct

    def pairs(rows, value):
        return ", ".join(f"**{r.model}** {fmt_pct(getattr(r, value))}" for r in rows.itertuples()
                         if np.isfinite(getattr(r, value)))

    def moves(rows):
        parts = [f"**{r.model}** {fmt_pct(r.initial)} → {fmt_pct(r.trained)} ({100 * r.difference:+.1f} points)"
                 for r in rows.itertuples() if np.isfinite(r.initial) and np.isfinite(r.trained)]
        return ", ".join(parts)

    table = comparison
    pick = lambda probe, metric: (table[(table.probe == probe) & (table.metric == metric)]  # noqa: E731
                                  if table is not None and len(table) else None)
    out = {}
    m0 = perturbation_m[0] if len(perturbation_m) else None
    flank = pick(PERTURB_PROBE, "follows_flank")
    flank = flank[flank.m == m0] if flank is not None else None
    if flank is not None and len(flank) and pairs(flank, "initial"):
        out["step0_perturb"] = (f"At initialisation (step 0: the same architecture and seed, the same windows and "
                                f"substitutions, m = {m0}) the overlapping models follow the altered flank in "
                                f"{pairs(flank, 'initial')} of windows; training took that to {pairs(flank, 'trained')}")
    else:
        out["step0_perturb"] = "No overlapping model of this run has step-0 weights to set against its copying rate"
    sweep = pick(SWEEP_PROBE, "accuracy")
    out["step0_sweep_m1"] = (moves(sweep[sweep.m == 1]) if sweep is not None else "") or "n/a"
    same = pick(SAME_PROBE, "accuracy")
    if same is not None and len(same):
        first = same[same.h == same.h.min()]
        ref = first.reference_value.dropna()
        beside = f"; two-sided n-gram {fmt_pct(ref.iloc[0])}" if len(ref) else ""
        out["step0_same_h1"] = f"h = {int(first.h.iloc[0])}: " + (moves(first) or "n/a") + beside
    else:
        out["step0_same_h1"] = "n/a"
    out["step0_probe_na"] = step0_missing_sentence([row["model"] for row in not_applicable])
    return out
