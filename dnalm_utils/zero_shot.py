"""Zero-shot next-k-mer readout: what pre-training alone gives on the next-k-mer task, without fine-tuning.

Chapter 5 fine-tunes a classification head to predict the class of the k nucleotides after an input
(:mod:`dnalm_utils.nextkmer`). This module reads the same distribution straight from the pre-trained
model's own head, so the two can be set side by side on the same test windows:

* **masked models** (an MLM head, ``masked_logprobs``): the input ``x`` (L nt) gets k filler letters
  appended, ``x + filler * k``, and the k appended positions ``[L, L + k)`` are hidden by masking every token
  that overlaps them (:func:`masking.nucleotide_block_eval`); the model's per-nucleotide ACGT distributions
  at those positions are combined into a distribution over the ``4**k`` k-mers (``joint="product"``: the
  product of the per-position marginals; ``joint="chain"``: left-to-right unmasking, below);
* **causal models** (``next_token_logprobs``, single-nucleotide tokens): the exact chain rule
  ``p(x1..xk | x) = prod_i p(x_i | x, x_<i)`` from the model's own next-token distribution, every one of the
  ``4**(k-1)`` continuations of length k - 1 written after the input (the conditionals of all shorter
  prefixes are read from the same rows, since a causal model's column c sees only columns <= c).

**Class order** is :func:`nextkmer.kmer_classes`' (ACGT, first letter most significant), so the output is a
drop-in for a fine-tuned model's ``(n, 4**k)`` probabilities and is scored with
:func:`classification_metrics.multiclass_metrics` (bits per predicted nucleotide, ``nt_per_class=k``).

**What the filler can and cannot change** (masked models). It can never be *seen*: every token that covers a
filler position is replaced by [MASK] (:func:`hidden_input_letters` and the tests check, on the ids the model
receives, that no unmasked token covers a position >= L). With fixed-length tokens (overlapping or
non-overlapping k-mers, single nucleotides) the token boundaries do not depend on letters, so the model
receives the same ids for every filler and the readout does not depend on it at all. What appending positions
*does* change: (1) a token that straddles position L (non-overlapping k-mers when L is not a multiple of their
k; BPE) is masked, so the last few input letters are hidden from the model too (:func:`hidden_input_letters`
counts them; 0 for overlapping k-mers and single nucleotides, whose tokens end inside the input); (2) for BPE
the filler letters take part in merges, so they can move the boundaries of the tokens that straddle L (hence how
many input letters are hidden, and the spans of the masked tokens the letter marginals are read from), and in
principle the merges of earlier input letters. Overlapping k-mers: the model sees exactly the input's own
tokens followed by k [MASK] tokens.

**Independence assumption** (``joint="product"``): ``p(x1..xk) = prod_i p_i(x_i)``, where ``p_i`` is the
model's marginal at position L + i - 1 with all k positions hidden. A masked head predicts each masked
position separately, so it gives no joint; the product is exact for k = 1 and otherwise ignores dependencies
between the hidden letters (e.g. a CpG or a repeat). ``joint="chain"`` avoids the assumption for masked
models by unmasking left to right: step i hides ``[L + i - 1, L + k)`` behind the input and a written prefix
``x_<i`` (all ``4**(i-1)`` of them), and multiplies the conditionals at the first hidden position; this costs
``(4**k - 1) / 3`` windows per input instead of one. For a causal model ``joint="product"`` multiplies the
marginals of its exact chain-rule joint (the same assumption, for comparison with masked models).

**Normalisation.** Per-position distributions are over the four letters ACGT: a masked model's token
distribution is turned into letters by :func:`masking.nucleotide_block_eval`; a causal model's next-token
distribution (special tokens already excluded by the adapter) is renormalised over the A, C, G, T tokens, i.e.
conditioned on the next token being a nucleotide letter (its N token and specials dropped). Rows sum to 1.
"""

from __future__ import annotations

import time
from typing import Mapping, Sequence

import numpy as np

from . import codec
from .errors import ParameterError, check_int_range

PROBE = "zero-shot next-k-mer readout"
JOINTS = ("auto", "product", "chain")
#: Rows (windows) per call of the underlying scorer, in units of batch_size: bounds the memory of the
#: per-token vocabulary distributions that one call keeps.
_CHUNK_BATCHES = 8


# ------------------------------------------------------------------------------------------------
# Input checks
# ------------------------------------------------------------------------------------------------
def check_inputs(inputs: Sequence[str]) -> list[str]:
    """Upper-case copies of ``inputs`` (a non-empty list of non-empty ACGT strings); ParameterError naming the
    first bad input's index (and the position of its first non-ACGT letter) otherwise (``codec.check_acgt_list``)."""
    return codec.check_acgt_list(inputs, name="inputs", why="next-k-mer windows are drawn from ACGT-only sequence")


def _check_filler(filler) -> str:
    if not isinstance(filler, str) or len(filler) != 1 or filler.upper() not in codec.LETTERS:
        raise ParameterError(f"filler={filler!r}: pass one letter A, C, G or T (it is appended k times after each "
                             "input and hidden by masking).")
    return filler.upper()


def _check_joint(joint) -> str:
    if joint not in JOINTS:
        raise ParameterError(f"joint={joint!r}: use 'auto' (masked: product of marginals, causal: chain rule), "
                             "'product' or 'chain'.")
    return joint


def _check_k(k) -> int:
    from .nextkmer import check_k

    return check_k(k)


# ------------------------------------------------------------------------------------------------
# Which models the readout applies to
# ------------------------------------------------------------------------------------------------
def not_applicable_reason(lm) -> str | None:
    """None when :func:`zero_shot_probs` applies to ``lm``, else why not (the reason of a {model, probe, reason}
    row): no masked-token head and no next-token log-probabilities, or a causal model whose tokens are not single
    nucleotides (the chain rule over nucleotides would need a sum over every tokenization of every
    continuation, which is not computed here)."""
    if lm.can("masked_logprobs"):
        return None
    if lm.can("next_token_logprobs"):
        scheme = getattr(lm.tokenizer, "scheme", None)
        if scheme == "nucleotide":
            return None
        return (f"it is a causal model whose tokens are {getattr(lm.tokenizer, 'description', scheme)}, not single "
                "nucleotides, so the probability of the next k nucleotides would need a sum over every tokenization "
                "of every continuation; only single-nucleotide causal models are read exactly")
    return (f"it has neither a masked-token head ({lm.why_not('masked_logprobs')}) nor next-token "
            f"log-probabilities ({lm.why_not('next_token_logprobs')})")


def readout_kind(lm) -> str:
    """"masked" (the model has a masked-token head) or "causal" (next-token log-probabilities over single
    nucleotides); raises :class:`adapters.NotApplicable` with :func:`not_applicable_reason` otherwise."""
    from .adapters import NotApplicable

    reason = not_applicable_reason(lm)
    if reason is not None:
        raise NotApplicable(f"the {PROBE} is not applicable to {lm.name}: {reason}.")
    return "masked" if lm.can("masked_logprobs") else "causal"


def hidden_input_letters(tokenizer, inputs: Sequence[str], k: int, *, filler: str = "A") -> np.ndarray:
    """(n,) int64: how many letters at the end of each input no unmasked token shows in the masked readout,
    i.e. L minus the end of the last token of ``input + filler * k`` that does not overlap ``[L, L + k)`` (0 for
    overlapping k-mers and single nucleotides; L mod k' for non-overlapping k'-mers; varies for BPE). Raises
    ParameterError if an unmasked token would cover a filler position (never, for spans that tile the sequence)."""
    inputs = check_inputs(inputs)
    k, filler = _check_k(k), _check_filler(filler)
    out = np.zeros(len(inputs), dtype=np.int64)
    for i, x in enumerate(inputs):
        L = len(x)
        spans = tokenizer.encode(x + filler * k, where=f"inputs[{i}]").spans
        hit = (spans[:, 0] < L + k) & (spans[:, 1] > L)
        if ((spans[~hit, 1] > L)).any():
            raise ParameterError(f"inputs[{i}]: a token that does not overlap the hidden positions [{L}, {L + k}) "
                                 "still covers one of them; the tokenizer's spans do not tile the sequence.")
        shown = spans[~hit]
        out[i] = L - (int(shown[:, 1].max()) if len(shown) else 0)
    return out


# ------------------------------------------------------------------------------------------------
# Joint distributions
# ------------------------------------------------------------------------------------------------
def product_of_marginals(marginals: np.ndarray) -> np.ndarray:
    """(n, 4**k) float64 k-mer distribution ``prod_i marginals[:, i, x_i]`` of (n, k, 4) per-position ACGT
    distributions, in :func:`nextkmer.kmer_classes` order (first position most significant); rows renormalised
    to sum to 1."""
    p = np.asarray(marginals, dtype=np.float64)
    if p.ndim != 3 or p.shape[2] != 4:
        raise ParameterError(f"marginals must be (n, k, 4); got shape {p.shape}.")
    joint = np.ones((p.shape[0], 1))
    for i in range(p.shape[1]):
        joint = (joint[:, :, None] * p[:, i, None, :]).reshape(p.shape[0], -1)
    return joint / joint.sum(1, keepdims=True)


def joint_marginals(joint: np.ndarray, k: int) -> np.ndarray:
    """(n, k, 4) per-position ACGT marginals of an (n, 4**k) k-mer distribution (kmer_classes order)."""
    joint = np.asarray(joint, dtype=np.float64)
    grid = joint.reshape((joint.shape[0],) + (4,) * k)
    return np.stack([grid.sum(axis=tuple(a for a in range(1, k + 1) if a != i + 1)) for i in range(k)], axis=1)


def _chain_joint(cond: list[np.ndarray]) -> np.ndarray:
    """(n, 4**k) joint from conditionals ``cond[i]`` (n, 4**i, 4) = p(x_{i+1} | x_1..x_i), prefix index in
    kmer_classes order of the i-letter prefix."""
    n = cond[0].shape[0]
    joint = np.ones((n, 1))
    for c in cond:
        joint = (joint[:, :, None] * c).reshape(n, -1)
    return joint / joint.sum(1, keepdims=True)


def _chunks(n: int, size: int):
    for lo in range(0, n, size):
        yield lo, min(n, lo + size)


def _masked_marginals(lm, windows: list[str], starts: np.ndarray, k: int, *, batch_size: int, amp: bool) -> np.ndarray:
    """(n, k, 4) ACGT distributions at ``[starts[w], starts[w] + k)`` of each window, hidden by masking."""
    from .masking import nucleotide_block_eval

    out = np.empty((len(windows), k, 4))
    for lo, hi in _chunks(len(windows), batch_size * _CHUNK_BATCHES):
        blocks = np.stack([starts[lo:hi], starts[lo:hi] + k], axis=1).astype(np.int64)
        res = nucleotide_block_eval(lm, windows[lo:hi], blocks, batch_size=batch_size, amp=amp)
        out[lo:hi] = res.probs.reshape(hi - lo, k, 4)
    return out


def _masked_probs(lm, inputs: list[str], k: int, *, filler: str, joint: str, batch_size: int, amp: bool) -> np.ndarray:
    n = len(inputs)
    lengths = np.array([len(x) for x in inputs], dtype=np.int64)
    if joint == "product":
        windows = [x + filler * k for x in inputs]
        return product_of_marginals(_masked_marginals(lm, windows, lengths, k, batch_size=batch_size, amp=amp))
    cond = []
    for i in range(k):  # step i: prefixes of i letters are written, [L + i, L + k) hidden
        prefixes = codec.unpack_kmers(np.arange(4**i, dtype=np.uint64), i) if i else [""]
        windows = [x + p + filler * (k - i) for x in inputs for p in prefixes]
        starts = np.repeat(lengths + i, len(prefixes))
        m = _masked_marginals(lm, windows, starts, k - i, batch_size=batch_size, amp=amp)
        cond.append(m[:, 0].reshape(n, len(prefixes), 4))
    return _chain_joint(cond)


def _causal_chain(lm, inputs: list[str], k: int, *, batch_size: int, amp: bool) -> np.ndarray:
    """(n, 4**k) exact chain-rule joint of a causal single-nucleotide model."""
    tok = lm.tokenizer
    letters = np.array([tok.token_to_id[c] for c in codec.LETTERS], dtype=np.int64)
    n_pre = 4 ** (k - 1)
    prefixes = codec.unpack_codes(np.arange(n_pre, dtype=np.uint64), k - 1) if k > 1 else np.zeros((1, 0), np.uint8)
    prefix_ids = letters[prefixes.astype(np.int64)]  # (n_pre, k - 1)
    cond = [np.empty((len(inputs), 4**i, 4)) for i in range(k)]
    per_call = max(1, (batch_size * _CHUNK_BATCHES) // n_pre)
    for lo, hi in _chunks(len(inputs), per_call):
        rows, last = [], []
        for w in range(lo, hi):
            enc = tok.encode(inputs[w], where=f"inputs[{w}]")
            if len(enc) != len(inputs[w]):
                raise ParameterError(f"inputs[{w}]: {lm.name}'s tokenizer did not give one token per nucleotide.")
            for p in prefix_ids:
                rows.append(np.concatenate([enc.ids, p]))
            last += [tok.body_offset + len(enc) - 1] * n_pre
        ids, att = lm.frame(rows)
        logp = lm.next_token_logprobs(ids, att, batch_size, amp=amp)  # (rows, width, vocab)
        cols = np.asarray(last)[:, None] + np.arange(k)[None, :]  # (rows, k): the column before x_i
        lp = logp[np.arange(len(rows))[:, None], cols][..., letters].astype(np.float64)  # (rows, k, 4)
        lp -= lp.max(-1, keepdims=True)
        q = np.exp(lp)
        q /= q.sum(-1, keepdims=True)
        q = q.reshape(hi - lo, n_pre, k, 4)
        for i in range(k):  # the conditional of x_{i+1} given an i-letter prefix: any row that starts with it
            cond[i][lo:hi] = q[:, :: 4 ** (k - 1 - i), i, :]
    return _chain_joint(cond)


def zero_shot_probs(lm, inputs: Sequence[str], k: int, *, filler: str = "A", joint: str = "auto",
                    batch_size: int = 64, amp: bool = True) -> np.ndarray:
    """(n, 4**k) float64 probabilities of the class of the next k nucleotides after each input, read from the
    pre-trained model without any fine-tuning (module docstring); class order of :func:`nextkmer.kmer_classes`.

    lm: a model adapter with a masked-token head, or a causal model over single nucleotides
    (:func:`readout_kind`); inputs: n ACGT strings (lengths may differ); k: 1..8; filler: the letter appended k
    times after a masked model's input, always hidden; joint: "auto" ("product" for masked models, "chain" for
    causal ones), "product" (product of per-position marginals) or "chain" (left-to-right chain rule; for
    masked models by unmasking one position at a time, ``(4**k - 1) / 3`` windows per input); amp: bf16
    autocast. Rows sum to 1. Raises :class:`adapters.NotApplicable` for a model without either head, and
    ParameterError for bad inputs (naming the index), k, filler or joint.
    """
    inputs = check_inputs(inputs)
    k, filler, joint = _check_k(k), _check_filler(filler), _check_joint(joint)
    batch_size = check_int_range("batch_size", batch_size, 1, hint="Rows per forward pass, e.g. 64.")
    kind = readout_kind(lm)
    if kind == "masked":
        return _masked_probs(lm, inputs, k, filler=filler, joint="product" if joint == "auto" else joint,
                             batch_size=batch_size, amp=amp)
    chain = _causal_chain(lm, inputs, k, batch_size=batch_size, amp=amp)
    return product_of_marginals(joint_marginals(chain, k)) if joint == "product" else chain


def readout_description(kind: str, joint: str = "auto") -> str:
    """One phrase saying how a readout was made ("masked head: ..." / "causal: ...")."""
    joint = _check_joint(joint)
    if kind == "masked":
        return ("masked head, k positions appended and hidden, left-to-right unmasking" if joint == "chain" else
                "masked head, k positions appended and hidden, product of per-position marginals")
    return ("causal next-token head, product of the chain rule's marginals" if joint == "product" else
            "causal next-token head, exact chain rule")


# ------------------------------------------------------------------------------------------------
# Scores on the next-k-mer test windows
# ------------------------------------------------------------------------------------------------
def _task_parts(k, task) -> tuple[int, list[str], np.ndarray]:
    from .nextkmer import NextKmerTask

    k = _check_k(k)
    if isinstance(task, NextKmerTask):
        if task.k != k:
            raise ParameterError(f"tasks[{k}] is a next-{task.k}-mer task; key it by its own k.")
        inputs, labels = task.inputs, task.labels
    else:
        try:
            inputs, labels = task
        except (TypeError, ValueError):
            raise ParameterError(f"tasks[{k}] must be a NextKmerTask or a pair (inputs, labels).") from None
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) != len(inputs):
        raise ParameterError(f"tasks[{k}]: {len(inputs)} inputs but labels of shape {labels.shape}; give one class "
                             "per input.")
    if labels.size and (labels.min() < 0 or labels.max() >= 4**k):
        raise ParameterError(f"tasks[{k}]: labels must be next-{k}-mer classes 0..{4**k - 1}.")
    return k, list(inputs), labels.astype(np.int64)


def zero_shot_scores(models: Mapping[str, object], tasks: Mapping[int, object], *, filler: str = "A",
                     joint: str = "auto", batch_size: int = 64, amp: bool = True, n_boot: int = 2000, seed: int = 0,
                     confidence: float = 0.95):
    """Score the zero-shot readout of every model at every k on the same test windows.

    models: name -> adapter; tasks: k -> NextKmerTask (the test split) or (inputs, labels). Returns
    ``(table, items, not_applicable)``:

    * table, one row per (model, k): model, k, readout (how it was read), n_test, accuracy with
      accuracy_low / accuracy_high (percentile bootstrap over test windows, ``n_boot`` resamples, generator
      seeded with ``seed``, the same resamples for every model), chance (4**-k), x_chance (accuracy / chance)
      with x_chance_low / x_chance_high, top5, macro_f1, bits (cross-entropy per predicted nucleotide, as
      chapter 5; 2 = uniform) with bits_low / bits_high, predicted_classes, hidden_input_nt (mean input letters
      the masking also hid; 0 for causal models), seconds (wall clock of the readout);
    * items, one row per (model, k, test window): model, k, item (index in the task), accuracy (0/1), bits,
      to pair with fine-tuned runs' items on the same windows;
    * not_applicable: {model, probe, reason} rows for models the readout does not apply to.
    """
    import pandas as pd

    from .classification_metrics import item_scores, multiclass_metrics
    from .dependency_maps import bootstrap_mean_interval

    parts = [_task_parts(k, t) for k, t in tasks.items()]
    if not parts:
        raise ParameterError("tasks is empty: pass at least one k -> test task.")
    filler, joint = _check_filler(filler), _check_joint(joint)
    seed = check_int_range("seed", seed, 0)
    rows, items, skipped = [], [], []
    for name, lm in models.items():
        reason = not_applicable_reason(lm)
        if reason is not None:
            skipped.append({"model": name, "probe": PROBE, "reason": reason})
            continue
        kind = readout_kind(lm)
        for k, inputs, labels in parts:
            t0 = time.perf_counter()
            probs = zero_shot_probs(lm, inputs, k, filler=filler, joint=joint, batch_size=batch_size, amp=amp)
            seconds = time.perf_counter() - t0
            m = multiclass_metrics(probs, labels, nt_per_class=k)
            correct, bits = item_scores(probs, labels, nt_per_class=k)
            _, a_lo, a_hi = bootstrap_mean_interval(correct, confidence=confidence, n_boot=n_boot, seed=seed)
            _, b_lo, b_hi = bootstrap_mean_interval(bits, confidence=confidence, n_boot=n_boot, seed=seed)
            chance = 4.0**-k
            hidden = hidden_input_letters(lm.tokenizer, inputs, k, filler=filler) if kind == "masked" else np.zeros(1)
            rows.append({
                "model": name, "k": k, "readout": readout_description(kind, joint), "n_test": len(labels),
                "accuracy": m["accuracy"], "accuracy_low": a_lo, "accuracy_high": a_hi, "chance": chance,
                "x_chance": m["accuracy"] / chance, "x_chance_low": a_lo / chance, "x_chance_high": a_hi / chance,
                "top5": m["top5"], "macro_f1": m["macro_f1"], "bits": m["bits"], "bits_low": b_lo, "bits_high": b_hi,
                "predicted_classes": m["predicted_classes"], "hidden_input_nt": float(hidden.mean()),
                "seconds": seconds,
            })
            items.append(pd.DataFrame({"model": name, "k": k, "item": np.arange(len(labels)), "accuracy": correct,
                                       "bits": bits}))
    table = pd.DataFrame(rows, columns=[
        "model", "k", "readout", "n_test", "accuracy", "accuracy_low", "accuracy_high", "chance", "x_chance",
        "x_chance_low", "x_chance_high", "top5", "macro_f1", "bits", "bits_low", "bits_high", "predicted_classes",
        "hidden_input_nt", "seconds"])
    items = (pd.concat(items, ignore_index=True) if items
             else pd.DataFrame(columns=["model", "k", "item", "accuracy", "bits"]))
    return table, items, pd.DataFrame(skipped, columns=["model", "probe", "reason"])


def zero_shot_sentence(table, *, k: int | None = None, roles=None) -> str:
    """One sentence from :func:`zero_shot_scores`' table at one k (default: the largest k in the table):
    "Read zero-shot from the pre-trained heads (...), **overlap6** predicts the next 3-mer with 4.1 % [3.2 %,
    5.0 %] accuracy (2.6 x chance), ... (chance 1.6 %; 95 % bootstrap intervals over the n test windows)."
    ``roles``: the roles table, for labels beside the names (:func:`findings.labelled`)."""
    from .findings import labelled
    from .verdicts import fmt_pct

    if table is None or not len(table):
        return "The zero-shot readout did not apply to any model."
    k = int(table.k.max()) if k is None else _check_k(k)
    sub = table[table.k == k]
    if not len(sub):
        raise ParameterError(f"k={k} is not in the table (it has k = {sorted(set(table.k.tolist()))}).")

    d = 1 if k <= 2 else 2

    def one(r):
        return (f"{labelled(r.model, roles)} {fmt_pct(r.accuracy, d)} [{fmt_pct(r.accuracy_low, d)}, "
                f"{fmt_pct(r.accuracy_high, d)}] ({r.x_chance:.1f} x chance; {r.bits:.2f} bits per nt)")

    how = sorted(set(sub.readout))
    listing = "; ".join(one(r) for r in sub.itertuples())
    n = sorted(set(sub.n_test.tolist()))
    n_text = f"{n[0]:,}" if len(n) == 1 else f"{n[0]:,} to {n[-1]:,}"
    worse = [labelled(r.model, roles) for r in sub.itertuples() if r.bits > 2.0]
    return (f"Read zero-shot from the pre-trained heads ({'; '.join(how)}), without fine-tuning, the models "
            f"predict the next {k}-mer with accuracy {listing} (chance {fmt_pct(4.0**-k, 3 if k > 3 else 1)}, 2 bits "
            f"per nt for a uniform guess; 95 % bootstrap intervals over the {n_text} test windows)."
            + (f" In bits per nucleotide {', '.join(worse)} {'does' if len(worse) == 1 else 'do'} worse than a uniform "
               f"guess: {'its' if len(worse) == 1 else 'their'} head is confident where it is wrong."
               if worse else ""))


__all__ = [
    "PROBE", "JOINTS", "check_inputs", "readout_kind", "not_applicable_reason", "hidden_input_letters",
    "product_of_marginals", "joint_marginals", "zero_shot_probs", "readout_description", "zero_shot_scores",
    "zero_shot_sentence",
]
