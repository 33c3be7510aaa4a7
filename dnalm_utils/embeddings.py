"""Token embeddings of DNA language models: what the input table and the hidden states encode.

Static embeddings are rows of the input word-embedding matrix; contextual embeddings are the encoder's
hidden states at every token occurrence of a set of windows. Layer numbering follows Hugging Face's
``hidden_states``: index 0 = embedding output, index L = last transformer layer. The embedding output is not
the static table: it is the word embedding plus the position (and BERT's token-type) embedding, for BERT
passed through the embedding LayerNorm, so layer 0 already differs between occurrences of one token. (ESM /
Nucleotide Transformer: the last hidden state includes the encoder's final LayerNorm, the others do not.)

Everything excludes special tokens explicitly: [CLS], [SEP], padding, [MASK], [UNK] (and ESM's <bos>) are
never part of a vocabulary listing, a contextual output, a token mean or a statistic; "tokens" below always
means the non-special vocabulary (``tokenizer.is_special`` False: strings of A, C, G, T, N).

Extraction (batched, streamed):

* :func:`static_embeddings` -- the input-table rows of the non-special vocabulary;
* :func:`iter_contextual` / :func:`contextual_embeddings` -- hidden states of every real token occurrence,
  selected layers only, moved to the CPU batch by batch;
* :func:`token_statistics` -- one pass that accumulates per-token sums (no occurrence is stored): the input
  of :func:`token_mean_embeddings`, :func:`variance_explained_by_token` and :func:`self_similarity`;
* :func:`pool_sequences` -- one vector per window ([CLS] or mean over real tokens);
* :func:`per_nucleotide` -- token vectors spread back onto the nucleotides they cover.

Metrics: :func:`token_labels`, :func:`knn_purity`, :func:`knn_r2`, :func:`linear_probe`,
:func:`self_similarity`, :func:`variance_explained_by_token`, and :func:`layer_metrics` (one tidy table per
model). Projection: :func:`umap_coordinates` (UMAP or PCA, with a validated on-disk cache).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import numpy as np

from .errors import ParameterError, check_int_range

#: Default cap on padded tokens per forward pass (rows x width): 16 windows of 512 tokens. Bounds activation and
#: hidden-state memory for long windows (DNABERT-size, all 13 layers: ~0.4 GB of hidden states per pass).
MAX_BATCH_TOKENS = 8192
#: Output dtypes of contextual vectors.
OUTPUT_DTYPES = ("float32", "float16")
POOLING = ("mean", "cls")
PROJECTIONS = ("umap", "pca")


# ------------------------------------------------------------------------------------------------
# Containers
# ------------------------------------------------------------------------------------------------
@dataclass
class StaticEmbeddings:
    """Input word-embedding rows of the non-special vocabulary.

    vectors: (token, dim) float32; tokens: the token strings; ids: (token,) int64 vocabulary ids, so that
    ``vectors[i] == model.get_input_embeddings().weight[ids[i]]``.
    """

    vectors: np.ndarray
    tokens: list[str]
    ids: np.ndarray


@dataclass
class ContextualEmbeddings:
    """Hidden states of every non-special token occurrence in a set of windows.

    vectors: (layer, token, dim) float32 or float16, row j = model layer ``layers[j]`` (0 = embedding output);
    layers: (layer,) int64; token_ids, window, position: (token,) int64 -- vocabulary id, window index, token
    index inside the window (0 = first token after [CLS]); spans: (token, 2) int64 [start, end) nucleotides.
    """

    vectors: np.ndarray
    layers: np.ndarray
    token_ids: np.ndarray
    window: np.ndarray
    position: np.ndarray
    spans: np.ndarray

    def __len__(self) -> int:
        return int(self.token_ids.shape[0])

    def select(self, keep) -> "ContextualEmbeddings":
        """The occurrences where ``keep`` ((token,) bool or int index) selects."""
        return ContextualEmbeddings(self.vectors[:, keep], self.layers, self.token_ids[keep], self.window[keep],
                                    self.position[keep], self.spans[keep])

    def for_window(self, w: int) -> "ContextualEmbeddings":
        """The occurrences of window ``w``, in token order."""
        return self.select(np.flatnonzero(self.window == w))


@dataclass
class TokenMeans:
    """Mean contextual vector per token over all its occurrences.

    vectors: (layer, token, dim) float32; layers: (layer,) int64 model layers; tokens, ids: (token,) the kept
    tokens (seen >= min_occurrences times, in vocabulary order); counts: (token,) int64 occurrences.
    """

    vectors: np.ndarray
    layers: np.ndarray
    tokens: list[str]
    ids: np.ndarray
    counts: np.ndarray


@dataclass
class TokenStatistics:
    """Per-token sums over all occurrences, accumulated batch by batch (no occurrence is stored).

    With u = x / ||x|| the unit vector of an occurrence x and S_tw the sum of u over occurrences of token t in
    window w: counts (vocab,) int64 n_t; sums (layer, vocab, dim) float64 sum of x; sq_norms (layer, vocab)
    sum of ||x||^2; unit_sums (layer, vocab, dim) sum of u; unit_window_sq (layer, vocab) sum over windows of
    ||S_tw||^2; count_window_sq (vocab,) sum over windows of n_tw^2; window_unit_sq (layer,) sum over windows
    of ||sum of u in w||^2; window_count_sq: sum over windows of n_w^2. Enough for exact token means, the
    variance share of token identity and all-pairs cosine self-similarity.
    """

    layers: np.ndarray
    vocab: list[str]
    counts: np.ndarray
    sums: np.ndarray
    sq_norms: np.ndarray
    unit_sums: np.ndarray
    unit_window_sq: np.ndarray
    count_window_sq: np.ndarray
    window_unit_sq: np.ndarray
    window_count_sq: int
    n_windows: int
    model: str = ""
    scheme: str = ""
    k: int | None = None

    @classmethod
    def from_contextual(cls, ce: ContextualEmbeddings, vocab: Sequence[str] | int | None = None, **meta) -> "TokenStatistics":
        """Statistics of stored contextual embeddings (``vocab``: token strings or vocabulary size; default
        the largest id + 1, tokens named by their id)."""
        import torch

        if vocab is None or isinstance(vocab, (int, np.integer)):
            size = int(vocab) if vocab is not None else int(ce.token_ids.max(initial=-1)) + 1
            vocab = [str(i) for i in range(size)]
        acc = _Accumulator(len(ce.layers), len(vocab), ce.vectors.shape[-1], torch.device("cpu"))
        acc.add((torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for v in ce.vectors),
                torch.from_numpy(ce.token_ids), torch.from_numpy(ce.window))
        n_windows = int(ce.window.max(initial=-1)) + 1
        return acc.finish(ce.layers, list(vocab), n_windows, **meta)

    def kept(self, min_occurrences: int = 1) -> np.ndarray:
        """(token,) int64 ids of tokens seen at least ``min_occurrences`` times."""
        min_occurrences = _check_min_occurrences(min_occurrences)
        return np.flatnonzero(self.counts >= min_occurrences)

    def means(self, min_occurrences: int = 1) -> TokenMeans:
        """Mean vector of every token seen >= ``min_occurrences`` times: (layer, token, dim) float32."""
        ids = self.kept(min_occurrences)
        vectors = np.empty((len(self.layers), len(ids), self.sums.shape[-1]), dtype=np.float32)
        for j in range(len(self.layers)):  # one layer at a time: no float64 copy of every layer
            vectors[j] = self.sums[j, ids] / self.counts[ids][:, None]
        return TokenMeans(vectors, self.layers.copy(), [self.vocab[i] for i in ids], ids, self.counts[ids].copy())

    def token_self_similarity(self) -> np.ndarray:
        """(layer, vocab) mean cosine between occurrences of the token in different windows; NaN where the
        token never occurs in two windows."""
        pairs = self.counts.astype(np.float64) ** 2 - self.count_window_sq
        with np.errstate(invalid="ignore", divide="ignore"):
            sim = (_sq_norms(self.unit_sums) - self.unit_window_sq) / pairs
        return np.where(pairs > 0, sim, np.nan)


class _Accumulator:
    """Running sums of :class:`TokenStatistics` as torch float64 tensors on one device."""

    def __init__(self, n_layers: int, vocab_size: int, dim: int, device):
        import torch

        z = lambda *shape: torch.zeros(shape, dtype=torch.float64, device=device)
        self.device, self.vocab_size = device, vocab_size
        self.counts = torch.zeros(vocab_size, dtype=torch.int64, device=device)
        self.count_window_sq = torch.zeros(vocab_size, dtype=torch.int64, device=device)
        self.sums, self.unit_sums = z(n_layers, vocab_size, dim), z(n_layers, vocab_size, dim)
        self.sq_norms, self.unit_window_sq = z(n_layers, vocab_size), z(n_layers, vocab_size)
        self.window_unit_sq = z(n_layers)
        self.window_count_sq = 0

    def add(self, per_layer, token_ids, window) -> None:
        """Add occurrences: ``per_layer`` yields one (token, dim) tensor per layer (an iterator, so that one layer
        at a time is materialised); token_ids, window: (token,) int64.
        A window's occurrences must all arrive in the same call."""
        import torch

        tok = token_ids.to(self.device, torch.int64)
        win = window.to(self.device, torch.int64)
        pair_keys, pair_of = torch.unique(win * self.vocab_size + tok, return_inverse=True)
        pair_tok = pair_keys % self.vocab_size
        win_keys, win_of = torch.unique(win, return_inverse=True)
        n_tw = torch.bincount(pair_of, minlength=len(pair_keys))
        n_w = torch.bincount(win_of, minlength=len(win_keys))
        self.counts.index_add_(0, tok, torch.ones_like(tok))
        self.count_window_sq.index_add_(0, pair_tok, n_tw * n_tw)
        self.window_count_sq += int((n_w * n_w).sum())
        for j, rows in enumerate(per_layer):
            x = rows.to(self.device, torch.float64, copy=True)
            norm = torch.linalg.vector_norm(x, dim=1)
            self.sums[j].index_add_(0, tok, x)
            self.sq_norms[j].index_add_(0, tok, norm * norm)
            u = x.div_(norm.clamp_min(1e-300)[:, None])  # in place: x is no longer needed
            self.unit_sums[j].index_add_(0, tok, u)
            s_tw = torch.zeros((len(pair_keys), u.shape[1]), dtype=torch.float64, device=self.device).index_add_(0, pair_of, u)
            self.unit_window_sq[j].index_add_(0, pair_tok, torch.linalg.vector_norm(s_tw, dim=1).square())
            s_w = torch.zeros((len(win_keys), u.shape[1]), dtype=torch.float64, device=self.device).index_add_(0, win_of, u)
            self.window_unit_sq[j] += torch.linalg.vector_norm(s_w).square()
            del x, u, s_tw, s_w

    def finish(self, layers, vocab: list[str], n_windows: int, **meta) -> TokenStatistics:
        np_ = lambda t: t.cpu().numpy()
        return TokenStatistics(
            layers=np.asarray(layers, dtype=np.int64), vocab=vocab, counts=np_(self.counts), sums=np_(self.sums),
            sq_norms=np_(self.sq_norms), unit_sums=np_(self.unit_sums), unit_window_sq=np_(self.unit_window_sq),
            count_window_sq=np_(self.count_window_sq), window_unit_sq=np_(self.window_unit_sq),
            window_count_sq=int(self.window_count_sq), n_windows=int(n_windows), **meta,
        )


def _sq_norms(a: np.ndarray) -> np.ndarray:
    """Squared norms along the last axis, without a temporary of ``a``'s size."""
    return np.einsum("...d,...d->...", a, a)


# ------------------------------------------------------------------------------------------------
# Model plumbing: encoder, layers, batches of real tokens
# ------------------------------------------------------------------------------------------------
#: What the token-embedding analyses need from a model (adapters.CAPABILITIES).
NEEDS = ("hidden_states", "input_embeddings")


def applicable(models):
    """(models the embedding chapter can analyse, rows of those it cannot and why): a model needs hidden states
    by layer and its static token-embedding table (:data:`NEEDS`). See ``adapters.split_applicable``."""
    from .adapters import split_applicable

    return split_applicable(models, NEEDS[0], "token embeddings by layer",
                            condition=lambda lm: None if lm.can(NEEDS[1]) else lm.why_not(NEEDS[1]))


def n_layers(lm) -> int:
    """Number of layers L of an adapter; hidden states are indexed 0..L (0 = embedding output)."""
    lm.require("hidden_states", "token embeddings by layer")
    return int(lm.n_layers)


def check_layers(layers, n: int) -> list[int]:
    """Model layer indices 0..n (negative counts from the end, -1 = n), each once; None = all of them; a bad or
    repeated index is a ParameterError naming the range."""
    if layers is None:
        return list(range(n + 1))
    items = [layers] if isinstance(layers, (int, np.integer)) else list(layers)
    if not items:
        raise ParameterError(f"layers is empty; pass None for all layers 0..{n} or a list such as [0, {n}].")
    out = []
    for layer in items:
        if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or not -(n + 1) <= layer <= n:
            raise ParameterError(
                f"layers contains {layer!r}: this model has hidden states 0..{n} (0 = embedding output, {n} = last "
                "layer; -1 also means the last). Pass indices in that range."
            )
        layer = int(layer) % (n + 1)
        if layer in out:
            raise ParameterError(f"layers lists layer {layer} twice; give each layer once.")
        out.append(layer)
    return out


def _check_min_occurrences(value) -> int:
    return check_int_range("min_occurrences", value, 1, hint="A token needs at least one occurrence to have a mean; "
                           "use e.g. 5 to keep tokens whose mean is not dominated by one context.")


def _output_dtype(dtype):
    import torch

    name = np.dtype(dtype).name if not isinstance(dtype, str) else dtype
    if name not in OUTPUT_DTYPES:
        raise ParameterError(f"dtype={dtype!r}: contextual vectors are returned as one of {', '.join(OUTPUT_DTYPES)}.")
    return np.dtype(name), getattr(torch, name)


def _encode_windows(lm, windows) -> list:
    """Encodings of ``windows`` (a list of DNA strings), checked to fit the model's positions."""
    if isinstance(windows, (str, bytes)):
        raise ParameterError("windows is one string; pass a list of DNA windows, e.g. [seq] for a single one.")
    windows = list(windows)
    if not windows:
        raise ParameterError("windows is empty; pass at least one DNA sequence (e.g. held-out windows from "
                             "genome.sample_windows).")
    encs = [lm.tokenizer.encode(s, where=f"window {i}") for i, s in enumerate(windows)]
    longest = int(np.argmax([len(e) for e in encs]))
    lm.check_fits(len(encs[longest]), what=f"window {longest}")
    return encs


def _batch_bounds(lengths: Sequence[int], batch_size: int, max_batch_tokens: int) -> list[tuple[int, int]]:
    """(lo, hi) windows per forward pass: at most ``batch_size`` rows and rows x padded width <= max_batch_tokens
    (a single window always forms a batch)."""
    bounds, lo, width = [], 0, 0
    for i, n in enumerate(lengths):
        wider = max(width, n + 2)
        if i > lo and (i - lo >= batch_size or (i - lo + 1) * wider > max_batch_tokens):
            bounds.append((lo, i))
            lo, wider = i, n + 2
        width = wider
    bounds.append((lo, len(lengths)))
    return bounds


@dataclass
class _Batch:
    """One forward pass: windows lo..hi-1, the encoder's hidden states (tuple of L+1 (rows, width, dim) tensors
    on the model's device), and the real tokens' (row, column) indices and ids, all on the device."""

    lo: int
    hi: int
    hidden: tuple
    rows: object
    cols: object
    token_ids: object
    attention: object


def _forward(lm, encs, *, batch_size: int, max_batch_tokens: int, amp: bool, progress: bool, desc: str) -> Iterator[_Batch]:
    """Run the encoder (no MLM head) with output_hidden_states over ``encs`` in batches; yield :class:`_Batch`.

    Real tokens = attended and not special: [CLS], [SEP], padding and specials inside windows are dropped.
    Arguments are checked at the call; the forward passes run as the iterator is consumed.
    """
    batch_size = check_int_range("batch_size", batch_size, 1, hint="Rows per forward pass, e.g. 64.")
    max_batch_tokens = check_int_range("max_batch_tokens", max_batch_tokens, 1,
                                       hint="Padded tokens per forward pass; e.g. 8192.")
    expected = n_layers(lm) + 1
    bounds = _batch_bounds([len(e) for e in encs], batch_size, max_batch_tokens)
    return _run_batches(lm, encs, bounds, expected, amp=amp, progress=progress, desc=desc)


def _run_batches(lm, encs, bounds, expected: int, *, amp: bool, progress: bool, desc: str) -> Iterator[_Batch]:
    import torch
    from tqdm.auto import tqdm

    special = torch.from_numpy(lm.tokenizer.is_special).to(lm.device)
    lm.model.eval()
    with torch.no_grad():
        for lo, hi in tqdm(bounds, desc=desc, disable=not progress):
            ids, att = lm.frame([e.ids for e in encs[lo:hi]])
            ids, att = torch.from_numpy(ids).to(lm.device), torch.from_numpy(att).to(lm.device)
            with lm.autocast(amp):
                hidden = lm.encode(ids, att, hidden_states=True).hidden_states
            rows, cols = torch.nonzero((att > 0) & ~special[ids], as_tuple=True)
            yield _Batch(lo, hi, hidden, rows, cols, ids[rows, cols], att)


def _accumulator_device(lm):
    """float64 sums live on a CUDA device when the model does, else on the CPU (MPS has no float64)."""
    import torch

    return lm.device if getattr(lm.device, "type", "cpu") == "cuda" else torch.device("cpu")


# ------------------------------------------------------------------------------------------------
# Extraction
# ------------------------------------------------------------------------------------------------
def static_embeddings(lm) -> StaticEmbeddings:
    """Rows of the input word-embedding matrix for the non-special vocabulary (specials excluded explicitly:
    [PAD] [UNK] [CLS] [SEP] [MASK] and any token that is not a string of A/C/G/T/N). float32, vocabulary order."""
    import torch

    weight = lm.input_embeddings().detach()
    ids = np.flatnonzero(~lm.tokenizer.is_special).astype(np.int64)
    if ids.size and ids.max() >= weight.shape[0]:
        raise ParameterError(f"the model's embedding table has {weight.shape[0]} rows but the tokenizer has "
                             f"{lm.tokenizer.vocab_size} tokens; load the model with its own tokenizer (models.load_model).")
    vectors = weight[torch.from_numpy(ids).to(weight.device)].float().cpu().numpy()
    return StaticEmbeddings(vectors=vectors, tokens=[lm.tokenizer.vocab[i] for i in ids], ids=ids)


def iter_contextual(lm, windows: Sequence[str], *, layers=None, batch_size: int = 64,
                    max_batch_tokens: int = MAX_BATCH_TOKENS, amp: bool = True, dtype="float32",
                    progress: bool = False) -> Iterator[ContextualEmbeddings]:
    """Stream :class:`ContextualEmbeddings` batch by batch (``window`` holds global window indices).

    Per batch only the selected ``layers`` (default all, 0 = embedding output) of the real tokens leave the
    device, as ``dtype`` (float32 or float16) on the CPU. ``amp``: bf16 autocast (models.autocast); False =
    the model's own dtype. Rows per pass: at most ``batch_size`` and rows x padded width <= max_batch_tokens.
    Arguments are checked at the call, not at the first ``next``.
    """
    sel = check_layers(layers, n_layers(lm))
    np_dtype, torch_dtype = _output_dtype(dtype)
    encs = _encode_windows(lm, windows)
    batches = _forward(lm, encs, batch_size=batch_size, max_batch_tokens=max_batch_tokens, amp=amp,
                       progress=progress, desc="contextual embeddings")
    return (_batch_embeddings(b, encs, sel, np_dtype, torch_dtype) for b in batches)


def _bookkeeping(b: _Batch, encs) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(token_ids, window, position, spans) of a batch's real tokens, as int64 numpy arrays."""
    rows, cols = b.rows.cpu().numpy(), b.cols.cpu().numpy()
    position = cols - 1  # column 0 is [CLS]
    offsets = np.cumsum([0] + [len(e) for e in encs[b.lo : b.hi - 1]])
    spans = np.concatenate([e.spans for e in encs[b.lo : b.hi]])[offsets[rows] + position].reshape(-1, 2)
    return (b.token_ids.cpu().numpy().astype(np.int64), (rows + b.lo).astype(np.int64), position.astype(np.int64),
            spans.astype(np.int64))


def _batch_embeddings(b: _Batch, encs, sel, np_dtype, torch_dtype) -> ContextualEmbeddings:
    vectors = np.empty((len(sel), int(b.rows.shape[0]), b.hidden[0].shape[-1]), dtype=np_dtype)
    for j, layer in enumerate(sel):
        vectors[j] = b.hidden[layer][b.rows, b.cols].to("cpu", torch_dtype).numpy()
    return ContextualEmbeddings(vectors, np.asarray(sel, dtype=np.int64), *_bookkeeping(b, encs))


def contextual_embeddings(lm, windows: Sequence[str], *, layers=None, batch_size: int = 64,
                          max_batch_tokens: int = MAX_BATCH_TOKENS, amp: bool = True, dtype="float32",
                          progress: bool = False) -> ContextualEmbeddings:
    """Hidden states of every non-special token occurrence: vectors (layer, token, dim), layer j = model layer
    ``layers[j]`` (default all: 0 = embedding output .. L = last layer), occurrences in window order.

    Streams like :func:`iter_contextual` into one preallocated array, so the CPU holds the output once; memory
    is layers x occurrences x dim x 4 bytes (2 for dtype="float16"). For statistics over many windows use
    :func:`token_statistics`, which stores no occurrence.
    """
    sel = check_layers(layers, n_layers(lm))
    np_dtype, torch_dtype = _output_dtype(dtype)
    encs = _encode_windows(lm, windows)
    real = ~lm.tokenizer.is_special
    total = int(sum(real[e.ids].sum() for e in encs))
    parts, vectors, at = [], None, 0
    for b in _forward(lm, encs, batch_size=batch_size, max_batch_tokens=max_batch_tokens, amp=amp,
                      progress=progress, desc="contextual embeddings"):
        if vectors is None:
            vectors = np.empty((len(sel), total, b.hidden[0].shape[-1]), dtype=np_dtype)
        n = int(b.rows.shape[0])
        for j, layer in enumerate(sel):
            vectors[j, at : at + n] = b.hidden[layer][b.rows, b.cols].to("cpu", torch_dtype).numpy()
        parts.append(_bookkeeping(b, encs))
        at += n
    cat = lambda i, shape: np.concatenate([p[i] for p in parts]) if parts else np.zeros(shape, dtype=np.int64)
    return ContextualEmbeddings(vectors, np.asarray(sel, dtype=np.int64), cat(0, (0,)), cat(1, (0,)), cat(2, (0,)),
                                cat(3, (0, 2)))


def token_statistics(lm, windows: Sequence[str], *, layers=None, batch_size: int = 64,
                     max_batch_tokens: int = MAX_BATCH_TOKENS, amp: bool = True, progress: bool = False) -> TokenStatistics:
    """One streamed pass accumulating :class:`TokenStatistics` over the selected ``layers`` (default all).

    Memory: 2 x layers x vocab x dim float64 (DNABERT-6, 13 layers: 0.65 GB) plus one batch of hidden states;
    no occurrence is kept. Sums live on the CUDA device when the model does, else on the CPU.
    """
    sel = check_layers(layers, n_layers(lm))
    encs = _encode_windows(lm, windows)
    tok = lm.tokenizer
    acc = None
    for b in _forward(lm, encs, batch_size=batch_size, max_batch_tokens=max_batch_tokens, amp=amp,
                      progress=progress, desc="token statistics"):
        if acc is None:
            acc = _Accumulator(len(sel), tok.vocab_size, b.hidden[0].shape[-1], _accumulator_device(lm))
        acc.add((b.hidden[layer][b.rows, b.cols] for layer in sel), b.token_ids, b.rows + b.lo)
    return acc.finish(sel, list(tok.vocab), len(encs), model=str(getattr(lm, "name", "")), scheme=tok.scheme, k=tok.k)


def token_mean_embeddings(lm, windows: Sequence[str], *, layers=None, min_occurrences: int = 1, batch_size: int = 64,
                          max_batch_tokens: int = MAX_BATCH_TOKENS, amp: bool = True, progress: bool = False) -> TokenMeans:
    """Per layer, the mean contextual vector of every token seen >= ``min_occurrences`` times in ``windows``:
    (layer, token, dim) float32, computed from streamed sums (:func:`token_statistics`)."""
    _check_min_occurrences(min_occurrences)
    stats = token_statistics(lm, windows, layers=layers, batch_size=batch_size, max_batch_tokens=max_batch_tokens,
                             amp=amp, progress=progress)
    return stats.means(min_occurrences)


def pool_sequences(lm, windows: Sequence[str], *, method: str = "mean", layer: int = -1, batch_size: int = 64,
                   max_batch_tokens: int = MAX_BATCH_TOKENS, amp: bool = True, progress: bool = False) -> np.ndarray:
    """(window, dim) float32 sequence embeddings at model layer ``layer`` (0..L, -1 = last).

    method "mean": mean over the window's real tokens (no [CLS]/[SEP]/padding/specials); "cls": the [CLS]
    row (meaningful only for models trained with a sequence-level objective).
    """
    import torch

    if method not in POOLING:
        raise ParameterError(f"method={method!r}: pool with one of {', '.join(POOLING)}.")
    (layer,) = check_layers([layer], n_layers(lm))
    encs = _encode_windows(lm, windows)
    out = None
    for b in _forward(lm, encs, batch_size=batch_size, max_batch_tokens=max_batch_tokens, amp=amp,
                      progress=progress, desc="pool sequences"):
        h = b.hidden[layer].float()
        if out is None:
            out = np.empty((len(encs), h.shape[-1]), dtype=np.float32)
        if method == "cls":
            pooled = h[:, 0]
        else:
            sums = torch.zeros((b.hi - b.lo, h.shape[-1]), dtype=torch.float64, device=h.device)
            sums.index_add_(0, b.rows, h[b.rows, b.cols].double())
            counts = torch.bincount(b.rows, minlength=b.hi - b.lo).clamp_min(1)
            pooled = sums / counts[:, None]
        out[b.lo : b.hi] = pooled.float().cpu().numpy()
    return out


def per_nucleotide(vectors: np.ndarray, spans: np.ndarray, length: int) -> np.ndarray:
    """Token vectors spread onto nucleotides: each nucleotide gets the mean of the vectors of all tokens whose
    [start, end) span covers it (overlapping k-mers: up to k tokens; non-overlapping / BPE: exactly one).

    vectors: (layer, token, dim) or (token, dim); spans: (token, 2); returns (layer, length, dim) (or
    (length, dim)) float32, NaN at nucleotides no token covers. Use the occurrences of one window, e.g.
    ``ce.for_window(w)``.
    """
    vectors = np.asarray(vectors)
    flat = vectors.ndim == 2
    v = vectors[None] if flat else vectors
    spans = np.asarray(spans, dtype=np.int64).reshape(-1, 2)
    length = check_int_range("length", length, 1, hint="The window length in nucleotides.")
    if v.ndim != 3 or v.shape[1] != spans.shape[0]:
        raise ParameterError(f"vectors {vectors.shape} and spans {spans.shape} disagree: give one (start, end) span "
                             "per token row, vectors as (layer, token, dim) or (token, dim).")
    if spans.size and (spans.min() < 0 or spans[:, 1].max() > length or (spans[:, 1] <= spans[:, 0]).any()):
        raise ParameterError(f"spans must satisfy 0 <= start < end <= length={length}; check the window length.")
    delta = np.zeros((v.shape[0], length + 1, v.shape[2]), dtype=np.float64)
    np.add.at(delta, (slice(None), spans[:, 0]), v.astype(np.float64))
    np.add.at(delta, (slice(None), spans[:, 1]), -v.astype(np.float64))
    cover = np.zeros(length + 1, dtype=np.int64)
    np.add.at(cover, spans[:, 0], 1)
    np.add.at(cover, spans[:, 1], -1)
    sums, n = np.cumsum(delta, axis=1)[:, :length], np.cumsum(cover)[:length]
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(n[None, :, None] > 0, sums / n[None, :, None], np.nan).astype(np.float32)
    return out[0] if flat else out


# ------------------------------------------------------------------------------------------------
# Token labels and neighbourhood metrics
# ------------------------------------------------------------------------------------------------
def token_labels(tokens: Sequence[str], counts=None):
    """Per token: token, length, nt_1 .. nt_K (letter at each position; None where the token is shorter,
    e.g. BPE or NT's single-letter leftovers), nt_last, gc (fraction G+C of the token's letters), cpg (count of
    "CG"); with ``counts`` (aligned array or token -> count mapping) also count and frequency (share)."""
    import pandas as pd

    tokens = [str(t) for t in tokens]
    width = max((len(t) for t in tokens), default=0)
    df = pd.DataFrame({"token": tokens, "length": [len(t) for t in tokens]})
    for i in range(width):
        df[f"nt_{i + 1}"] = pd.Series([t[i] if i < len(t) else None for t in tokens], dtype=object)
    df["nt_last"] = pd.Series([t[-1] if t else None for t in tokens], dtype=object)
    df["gc"] = [(t.count("G") + t.count("C")) / len(t) if t else np.nan for t in tokens]
    df["cpg"] = [t.count("CG") for t in tokens]
    if counts is not None:
        c = np.array([counts.get(t, 0) for t in tokens] if isinstance(counts, Mapping) else counts, dtype=np.int64)
        if c.shape != (len(tokens),):
            raise ParameterError(f"counts has shape {c.shape}; give one count per token ({len(tokens)}).")
        df["count"] = c
        df["frequency"] = c / c.sum() if c.sum() else np.nan
    return df


def _neighbours(vectors: np.ndarray, n_neighbors: int, metric: str) -> np.ndarray:
    """(point, n_neighbors) indices of each point's nearest neighbours, the point itself excluded."""
    import sklearn
    from sklearn.neighbors import NearestNeighbors

    x = np.asarray(vectors, dtype=np.float64)
    n = x.shape[0]
    with sklearn.config_context(working_memory=128):  # distance blocks of <= 128 MB instead of 1 GB
        idx = NearestNeighbors(n_neighbors=n_neighbors + 1, metric=metric, algorithm="brute").fit(x).kneighbors(
            x, return_distance=False)
    hit = idx == np.arange(n)[:, None]
    hit[~hit.any(1), -1] = True  # self not among the ties returned: drop the farthest instead
    return idx[~hit].reshape(n, n_neighbors)


def _check_points(vectors, labels, n_neighbors: int, what: str):
    """Vectors (n, dim) float64 and labels of the points whose label is known (None/NaN dropped)."""
    import pandas as pd

    x = np.asarray(vectors, dtype=np.float64)
    y = np.asarray(labels)
    if y.dtype.kind not in "fiub":
        y = y.astype(object)
    if x.ndim != 2 or y.shape != (x.shape[0],):
        raise ParameterError(f"{what}: vectors must be (n, dim) with one label per row; got {x.shape} and {y.shape}.")
    known = ~pd.isna(y)
    x, y = x[known], y[known]
    n_neighbors = check_int_range("n_neighbors", n_neighbors, 1, hint="Neighbours per point, e.g. 10.")
    if x.shape[0] < n_neighbors + 2:
        raise ParameterError(f"{what}: {x.shape[0]} labelled points are too few for n_neighbors={n_neighbors}; "
                             "lower n_neighbors or pass more points (e.g. a smaller min_occurrences).")
    return x, y, n_neighbors


def _purity(nbrs: np.ndarray, codes: np.ndarray) -> float:
    return float((codes[nbrs] == codes[:, None]).mean())


def _loo_r2(nbrs: np.ndarray, y: np.ndarray) -> float:
    pred = y[nbrs].mean(1)
    total = ((y - y.mean()) ** 2).sum()
    return float(1 - ((y - pred) ** 2).sum() / total) if total > 0 else float("nan")


def _with_baseline(score, nbrs, y, seed: int, n_shuffles: int) -> dict:
    n_shuffles = check_int_range("n_shuffles", n_shuffles, 1, hint="Label shuffles for the baseline, e.g. 5.")
    rng = np.random.default_rng(seed)
    shuffled = [score(nbrs, rng.permutation(y)) for _ in range(n_shuffles)]
    return {"value": score(nbrs, y), "baseline": float(np.mean(shuffled)), "baseline_sd": float(np.std(shuffled)),
            "n": int(len(y))}


def knn_purity(vectors, labels, *, n_neighbors: int = 10, metric: str = "cosine", seed: int = 0,
               n_shuffles: int = 5) -> dict:
    """Mean share of each point's ``n_neighbors`` nearest neighbours (itself excluded) with its categorical label.

    Returns purity, baseline (mean purity over ``n_shuffles`` seeded label shuffles on the same neighbour
    graph), baseline_sd, n (points; those with label None/NaN are dropped), n_neighbors.
    """
    x, y, k = _check_points(vectors, labels, n_neighbors, "knn_purity")
    codes = np.unique(y.astype(str), return_inverse=True)[1]
    out = _with_baseline(_purity, _neighbours(x, k, metric), codes, seed, n_shuffles)
    return {"purity": out.pop("value"), **out, "n_neighbors": k}


def knn_r2(vectors, values, *, n_neighbors: int = 10, metric: str = "cosine", seed: int = 0, n_shuffles: int = 5) -> dict:
    """Leave-one-out k-NN regression R^2 of a continuous label (e.g. GC): each point predicted by the mean of
    its ``n_neighbors`` nearest neighbours (itself excluded). Returns r2, baseline (shuffled values, about
    -1/n_neighbors), baseline_sd, n, n_neighbors."""
    x, y, k = _check_points(vectors, values, n_neighbors, "knn_r2")
    out = _with_baseline(_loo_r2, _neighbours(x, k, metric), y.astype(np.float64), seed, n_shuffles)
    return {"r2": out.pop("value"), **out, "n_neighbors": k}


def linear_probe(vectors, labels, *, seed: int = 0, cv: int = 5, n_shuffles: int = 1, max_iter: int = 1000) -> dict:
    """Cross-validated accuracy of a logistic-regression probe (standardised features, stratified ``cv`` folds,
    seeded). Returns accuracy, baseline (same probe on shuffled labels), majority (share of the largest class), n."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y, _ = _check_points(vectors, labels, 1, "linear_probe")
    cv = check_int_range("cv", cv, 2, hint="Cross-validation folds, e.g. 5.")
    classes, codes = np.unique(y.astype(str), return_inverse=True)
    sizes = np.bincount(codes)
    if len(classes) < 2 or sizes.min() < cv:
        raise ParameterError(f"linear_probe: every label needs >= cv={cv} points and there must be two labels; "
                             f"got sizes {dict(zip(classes.tolist(), sizes.tolist()))}. Lower cv or pass more points.")
    folds = StratifiedKFold(n_splits=cv, shuffle=True, random_state=seed)
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter))
    score = lambda lab: float(cross_val_score(probe, x, lab, cv=folds).mean())
    rng = np.random.default_rng(seed)
    n_shuffles = check_int_range("n_shuffles", n_shuffles, 1)
    return {"accuracy": score(codes), "baseline": float(np.mean([score(rng.permutation(codes)) for _ in range(n_shuffles)])),
            "majority": float(sizes.max() / sizes.sum()), "n": int(len(codes))}


# ------------------------------------------------------------------------------------------------
# Token identity vs context: variance share and self-similarity
# ------------------------------------------------------------------------------------------------
def _as_statistics(source) -> TokenStatistics:
    if isinstance(source, TokenStatistics):
        return source
    if isinstance(source, ContextualEmbeddings):
        return TokenStatistics.from_contextual(source)
    raise ParameterError(f"expected TokenStatistics (token_statistics) or ContextualEmbeddings, got {type(source).__name__}.")


def variance_explained_by_token(source, *, min_occurrences: int = 1):
    """Per layer, the share of the variance of contextual vectors explained by token identity.

    Over the occurrences of tokens seen >= ``min_occurrences`` times: token_share = between-token sum of
    squares / total sum of squares (sums of squared distances to the token means / the global mean),
    context_share = 1 - token_share. baseline = (tokens - 1) / (occurrences - 1), the expected token_share
    if occurrences were assigned to tokens at random. ``source``: TokenStatistics or ContextualEmbeddings.
    Returns a DataFrame: layer, token_share, context_share, baseline, tokens, occurrences.
    """
    import pandas as pd

    stats = _as_statistics(source)
    ids = stats.kept(min_occurrences)
    n_t = stats.counts[ids].astype(np.float64)
    n = n_t.sum()
    between, total = np.zeros(len(stats.layers)), np.zeros(len(stats.layers))
    with np.errstate(invalid="ignore", divide="ignore"):
        for j in range(len(stats.layers)):  # one layer at a time: no copy of every layer's sums
            sums = stats.sums[j, ids]  # (token, dim)
            grand = _sq_norms(sums.sum(0)) / n if n else 0.0  # N ||global mean||^2
            between[j] = (_sq_norms(sums) / n_t).sum() - grand
            total[j] = stats.sq_norms[j, ids].sum() - grand
        share = np.where(total > 0, between / total, np.nan)
        baseline = (len(ids) - 1) / (n - 1) if n > 1 else np.nan
    return pd.DataFrame({"layer": stats.layers, "token_share": share, "context_share": 1 - share,
                         "baseline": baseline, "tokens": len(ids), "occurrences": int(n)})


def self_similarity(source, *, min_occurrences: int = 2):
    """Per layer: mean cosine similarity between occurrences of the same token vs of different tokens.

    same_token: for every token seen >= ``min_occurrences`` times in >= 2 windows, the mean cosine over all
    pairs of its occurrences in different windows (different contexts); then the mean over those tokens.
    different_token: mean cosine over all pairs of occurrences of different tokens in different windows
    (every token), the anisotropy baseline. Exact all-pairs values from streamed sums of unit vectors (no
    sampling). ``source``: TokenStatistics or ContextualEmbeddings. Returns a DataFrame: layer, same_token,
    different_token, tokens (tokens averaged in same_token).
    """
    import pandas as pd

    stats = _as_statistics(source)
    ids = stats.kept(max(2, _check_min_occurrences(min_occurrences)))
    per_token = stats.token_self_similarity()[:, ids]
    valid = ~np.isnan(per_token[0]) if len(ids) else np.zeros(0, dtype=bool)
    same = per_token[:, valid].mean(1) if valid.any() else np.full(len(stats.layers), np.nan)
    n_t = stats.counts.astype(np.float64)
    all_sq = _sq_norms(stats.unit_sums.sum(1))  # ||sum of all u||^2, (layer,)
    token_sq = _sq_norms(stats.unit_sums).sum(-1)  # sum_t ||S_t||^2
    cross_window = all_sq - stats.window_unit_sq - (token_sq - stats.unit_window_sq.sum(-1))
    pairs = n_t.sum() ** 2 - stats.window_count_sq - ((n_t**2).sum() - stats.count_window_sq.sum())
    different = cross_window / pairs if pairs > 0 else np.full(len(stats.layers), np.nan)
    return pd.DataFrame({"layer": stats.layers, "same_token": same, "different_token": different,
                         "tokens": int(valid.sum())})


# ------------------------------------------------------------------------------------------------
# One table per model
# ------------------------------------------------------------------------------------------------
def _position_labels(scheme: str, k: int | None, labels) -> tuple[list[str], np.ndarray | None, str | None]:
    """(label columns for letter purity, mask of tokens they apply to, note) for a tokenization scheme."""
    if scheme == "overlapping":
        return [f"nt_{i}" for i in range(1, k + 1)], None, None
    if scheme == "nonoverlapping":
        return ([f"nt_{i}" for i in range(1, k + 1)], (labels["length"] == k).to_numpy(),
                f"letter purity over the {k}-mers only (single-nucleotide leftovers excluded)")
    if scheme == "bpe":
        return ["nt_1", "nt_last"], None, "BPE tokens differ in length: letter purity uses the first and last letter"
    return [], None, f"{scheme} tokens: too few distinct tokens for neighbourhood metrics; skipped"


def _neighbourhood_rows(rows: list, notes: list, x: np.ndarray, labels, columns: list[str], subset, layer: int, *,
                        n_neighbors: int, metric: str, seed: int, n_shuffles: int, probe: bool) -> list[str]:
    """Append (layer, metric, value, baseline, n) rows of letter purity per column and GC k-NN R^2 for the
    token vectors x (token, dim); returns the columns still usable (emptied, with a note, if too few tokens)."""
    pts = np.flatnonzero(subset) if subset is not None else np.arange(x.shape[0])
    if columns and len(pts) < n_neighbors + 2:
        notes.append(f"only {len(pts)} tokens qualify for letter purity: neighbourhood metrics skipped")
        return []
    if not columns:
        return columns
    nbrs = _neighbours(x[pts], n_neighbors, metric)
    for col in columns:
        codes = np.unique(labels[col].to_numpy()[pts].astype(str), return_inverse=True)[1]
        r = _with_baseline(_purity, nbrs, codes, seed, n_shuffles)
        rows.append((layer, f"{col}_purity", r["value"], r["baseline"], r["n"]))
        if probe:
            p = linear_probe(x[pts], labels[col].to_numpy()[pts], seed=seed)
            rows.append((layer, f"{col}_probe_accuracy", p["accuracy"], p["baseline"], p["n"]))
    nbrs_all = nbrs if subset is None else _neighbours(x, n_neighbors, metric)
    r = _with_baseline(_loo_r2, nbrs_all, labels["gc"].to_numpy(np.float64), seed, n_shuffles)
    rows.append((layer, "gc_knn_r2", r["value"], r["baseline"], r["n"]))
    return columns


#: Layer number given to the static input table in metric tables (hidden-state layers are 0..L).
STATIC_LAYER = -1


def static_metrics(lm, *, n_neighbors: int = 10, metric: str = "cosine", seed: int = 0, n_shuffles: int = 5,
                   probe: bool = False, model: str = ""):
    """Letter purity and GC k-NN R^2 of the static input table (every non-special token, :func:`static_embeddings`),
    as rows of the :func:`layer_metrics` table with layer = ``STATIC_LAYER`` (-1)."""
    import pandas as pd

    static = static_embeddings(lm)
    labels = token_labels(static.tokens)
    tok = lm.tokenizer
    columns, subset, note = _position_labels(tok.scheme, getattr(tok, "k", None), labels)
    rows, notes = [], [note] if note else []
    _neighbourhood_rows(rows, notes, static.vectors, labels, columns, subset, STATIC_LAYER, n_neighbors=n_neighbors,
                        metric=metric, seed=seed, n_shuffles=n_shuffles, probe=probe)
    df = pd.DataFrame(rows, columns=["layer", "metric", "value", "baseline", "n"])
    df.insert(0, "model", model)
    df.attrs["notes"] = notes
    return df


def metrics_from_statistics(stats: TokenStatistics, *, min_occurrences: int = 5, n_neighbors: int = 10,
                            metric: str = "cosine", seed: int = 0, n_shuffles: int = 5, probe: bool = False):
    """The :func:`layer_metrics` table from precomputed :class:`TokenStatistics` (see there)."""
    import pandas as pd

    means = stats.means(min_occurrences)
    labels = token_labels(means.tokens, means.counts)
    columns, subset, note = _position_labels(stats.scheme, stats.k, labels)
    notes = [note] if note else []
    rows = []
    n_kept = len(means.tokens)
    if columns and n_kept < n_neighbors + 2:
        notes.append(f"only {n_kept} tokens seen >= {min_occurrences} times: neighbourhood metrics skipped "
                     "(pass more windows or lower min_occurrences)")
        columns = []
    for j, layer in enumerate(means.layers.tolist()):
        columns = _neighbourhood_rows(rows, notes, means.vectors[j], labels, columns, subset, layer,
                                      n_neighbors=n_neighbors, metric=metric, seed=seed, n_shuffles=n_shuffles, probe=probe)
    ve = variance_explained_by_token(stats, min_occurrences=min_occurrences)
    ss = self_similarity(stats, min_occurrences=min_occurrences)
    for v, s in zip(ve.itertuples(), ss.itertuples()):
        rows.append((v.layer, "variance_explained_by_token", v.token_share, v.baseline, v.occurrences))
        rows.append((s.layer, "self_similarity", s.same_token, s.different_token, s.tokens))
    df = pd.DataFrame(rows, columns=["layer", "metric", "value", "baseline", "n"])
    df.insert(0, "model", stats.model)
    df = df.sort_values(["layer", "metric"], kind="stable").reset_index(drop=True)
    df.attrs["notes"] = notes
    return df


def layer_metrics(lm, windows: Sequence[str], *, layers=None, min_occurrences: int = 5, n_neighbors: int = 10,
                  metric: str = "cosine", seed: int = 0, n_shuffles: int = 5, probe: bool = False,
                  batch_size: int = 64, max_batch_tokens: int = MAX_BATCH_TOKENS, amp: bool = True,
                  progress: bool = False):
    """One tidy table per model: rows (model, layer, metric, value, baseline, n), layer 0 = embedding output
    (word + position embeddings, BERT: after LayerNorm; not the static table).

    From one streamed pass (:func:`token_statistics`), over tokens seen >= ``min_occurrences`` times:
    ``nt_i_purity`` -- k-NN purity (cosine, ``n_neighbors``) of the letter at position i among the token
    means, baseline = shuffled labels (overlapping k-mers: i = 1..k; non-overlapping: the k-mers only; BPE:
    nt_1 and nt_last; single nucleotides: skipped); ``gc_knn_r2`` -- leave-one-out k-NN R^2 of GC content,
    baseline shuffled; ``self_similarity`` -- same-token vs (baseline) different-token cosine across windows;
    ``variance_explained_by_token`` -- token share of the variance, baseline (tokens-1)/(occurrences-1).
    ``probe=True`` adds ``nt_i_probe_accuracy`` (logistic regression, slow). n = points / tokens / occurrences
    behind the value. Skipped metrics are explained in ``df.attrs["notes"]``.
    """
    _check_min_occurrences(min_occurrences)
    stats = token_statistics(lm, windows, layers=layers, batch_size=batch_size, max_batch_tokens=max_batch_tokens,
                             amp=amp, progress=progress)
    return metrics_from_statistics(stats, min_occurrences=min_occurrences, n_neighbors=n_neighbors, metric=metric,
                                   seed=seed, n_shuffles=n_shuffles, probe=probe)


# ------------------------------------------------------------------------------------------------
# 2-D projection with a validated cache
# ------------------------------------------------------------------------------------------------
def _project(x: np.ndarray, *, method: str, n_neighbors: int, min_dist: float, metric: str, seed: int) -> np.ndarray:
    """(n, 2) float64 coordinates of ``x`` (n, dim) by UMAP or PCA (cosine: PCA of the unit-length rows)."""
    if method == "pca":
        from sklearn.decomposition import PCA

        if metric == "cosine":
            x = x / np.clip(np.linalg.norm(x, axis=1, keepdims=True), 1e-30, None)
        return PCA(n_components=2, svd_solver="full", random_state=seed).fit_transform(x).astype(np.float64)
    import warnings

    import umap  # lazy: importing compiles numba code

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(n_jobs|random_state|spectral).*")
        reducer = umap.UMAP(n_components=2, n_neighbors=min(n_neighbors, x.shape[0] - 1), min_dist=min_dist,
                            metric=metric, random_state=seed, n_jobs=1)
        return np.asarray(reducer.fit_transform(x.astype(np.float32)), dtype=np.float64)


def _array_sha256(x: np.ndarray) -> str:
    from .io import sha256_bytes

    return sha256_bytes(json.dumps(list(x.shape)).encode() + np.ascontiguousarray(x, dtype="<f8").tobytes())


def _read_cache(path: Path, key) -> np.ndarray | None:
    """(n, 2) coordinates stored at ``path`` under ``key`` (``cache.read_entry``: manifest equal and body intact)
    whose CSV body parses to n finite rows; else None."""
    from .cache import read_entry

    body = read_entry(path, key)
    if body is None:
        return None
    try:
        lines = body.decode("utf-8").splitlines()
        if not lines or lines[0] != "x,y":
            return None
        coords = np.array([[float(v) for v in line.split(",")] for line in lines[1:]], dtype=np.float64)
    except (ValueError, UnicodeDecodeError):
        return None
    if coords.shape != (key.manifest["inputs"]["n"], 2) or not np.isfinite(coords).all():
        return None
    return coords


def _write_cache(path: Path, key, coords: np.ndarray) -> None:
    from .cache import write_entry

    body = "x,y\n" + "".join(f"{float(a)!r},{float(b)!r}\n" for a, b in coords)
    write_entry(path, key, body.encode("utf-8"))


def umap_coordinates(vectors, *, method: str = "umap", n_neighbors: int = 15, min_dist: float = 0.1,
                     metric: str = "cosine", seed: int = 0, cache: str | os.PathLike | None = None) -> np.ndarray:
    """(n, 2) float64 2-D coordinates of ``vectors`` (n, dim): UMAP with ``random_state=seed`` (deterministic and
    single-threaded), or ``method="pca"`` (fast; cosine = PCA of unit-length rows) for tests and smoke runs.

    ``cache``: a CSV path (columns x, y) kept under the package's one cache rule (``cache.make_key``, kind
    ``"embedding-map"``): its first line is a ``# {json}`` header spelling out the key's inputs (the parameters,
    the input's shape and sha256), the library versions, the digest of this module's code and the body's
    sha256. It is written atomically and reused only when the key matches and the body is intact; a missing,
    corrupt or mismatching cache is recomputed and overwritten, never used. UMAP is imported only when needed
    (numba compiles on first use).
    """
    if method not in PROJECTIONS:
        raise ParameterError(f"method={method!r}: project with one of {', '.join(PROJECTIONS)}.")
    x = np.asarray(vectors, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 4:
        raise ParameterError(f"vectors must be (n, dim) with n >= 4 points to project; got shape {x.shape}.")
    if not np.isfinite(x).all():
        raise ParameterError("vectors contain NaN or inf; drop those rows (e.g. nucleotides no token covers).")
    n_neighbors = check_int_range("n_neighbors", n_neighbors, 2, hint="UMAP neighbours, e.g. 15.")
    if not 0 <= float(min_dist) <= 1:
        raise ParameterError(f"min_dist={min_dist} is out of range: allowed 0..1 (UMAP's default is 0.1).")
    params = {"method": method, "n_neighbors": n_neighbors, "min_dist": float(min_dist), "metric": str(metric),
              "seed": int(seed)}
    path = Path(cache) if cache is not None else None
    key = None
    if path is not None:
        from .cache import make_key

        key = make_key("embedding-map", {**params, "n": int(x.shape[0]), "dim": int(x.shape[1]),
                                         "vectors_sha256": _array_sha256(x)})
        cached = _read_cache(path, key)
        if cached is not None:
            return cached
    coords = _project(x, **params)
    if key is not None:
        _write_cache(path, key, coords)
    return coords


__all__ = [
    "StaticEmbeddings", "ContextualEmbeddings", "TokenMeans", "TokenStatistics", "n_layers", "check_layers",
    "static_embeddings", "iter_contextual", "contextual_embeddings", "token_statistics", "token_mean_embeddings",
    "pool_sequences", "per_nucleotide", "token_labels", "knn_purity", "knn_r2", "linear_probe",
    "variance_explained_by_token", "self_similarity", "metrics_from_statistics", "layer_metrics", "static_metrics",
    "umap_coordinates", "model_metrics", "embedding_summary", "token_maps", "letter_sum_static_purity",
    "initial_models", "versus_initial", "summary_versus_initial", "step0_sentences",
]


def embedding_summary(metrics, layers_by_model: Mapping[str, Sequence[int]]):
    """One row per model from the metric table (model, metric, layer, value, baseline; layer -1 = static table):
    mean letter purity over positions (static and last layer, with the shuffled baseline), k-NN GC R², last-layer
    self-similarity of one token across windows (and of different tokens), and the share of variance explained
    by token identity at the first and last layer analysed (and its random-assignment baseline).
    ``layers_by_model``: the hidden-state layers analysed per model (first and last are read)."""
    import pandas as pd

    def get(name, metric, layer, col="value", mean=False):
        sel = metrics[(metrics.model == name) & (metrics.layer == layer)]
        sel = sel[sel.metric.str.endswith("_purity")] if mean else sel[sel.metric == metric]
        return float(sel[col].mean()) if mean and len(sel) else float(sel[col].iloc[0]) if len(sel) else np.nan

    rows = []
    for name, layers in layers_by_model.items():
        first, last = int(layers[0]), int(layers[-1])
        rows.append({"model": name, "static purity": get(name, "", -1, mean=True),
                     "static baseline": get(name, "", -1, "baseline", mean=True),
                     "last-layer purity": get(name, "", last, mean=True),
                     "last baseline": get(name, "", last, "baseline", mean=True),
                     "GC R2 static": get(name, "gc_knn_r2", -1), "GC R2 last": get(name, "gc_knn_r2", last),
                     "self-sim same": get(name, "self_similarity", last),
                     "self-sim other": get(name, "self_similarity", last, "baseline"),
                     "token share first": get(name, "variance_explained_by_token", first),
                     "token share last": get(name, "variance_explained_by_token", last),
                     "token share baseline": get(name, "variance_explained_by_token", last, "baseline")})
    return pd.DataFrame(rows)


def token_maps(lm, stats: "TokenStatistics", corpus_counts: np.ndarray, *, layer: int = -1, min_occurrences: int = 1,
               cache_dir: str | os.PathLike | None = None, name: str = "model", **umap_args):
    """The two maps of one model: its static input table and the per-token mean states of ``layer`` (-1: the
    last analysed), each projected to 2-D (:func:`umap_coordinates`, cached under ``cache_dir`` as
    ``<name>_static.csv`` / ``<name>_layer<L>.csv``) and labelled (:func:`token_labels` with ``corpus_counts``,
    (vocab,) token frequencies). Returns (static panel, layer panel, coordinates DataFrame: model, vectors,
    token, x, y); a panel is (coords (n, 2), labels) and its title "name: static" / "name: layer L"."""
    import pandas as pd

    cache = (lambda stem: Path(cache_dir) / f"{name}_{stem}.csv") if cache_dir is not None else (lambda stem: None)
    st = static_embeddings(lm)
    xy = umap_coordinates(st.vectors, cache=cache("static"), **umap_args)
    means = stats.means(min_occurrences)
    j = layer if layer < 0 else list(means.layers).index(layer)
    layer_no = int(means.layers[j])
    xy_l = umap_coordinates(means.vectors[j], cache=cache(f"layer{layer_no}"), **umap_args)
    coords = pd.concat([
        pd.DataFrame({"model": name, "vectors": "static", "token": st.tokens, "x": xy[:, 0], "y": xy[:, 1]}),
        pd.DataFrame({"model": name, "vectors": f"layer {layer_no} mean", "token": means.tokens, "x": xy_l[:, 0],
                      "y": xy_l[:, 1]})], ignore_index=True)
    return ((f"{name}: static", (xy, token_labels(st.tokens, corpus_counts[st.ids]))),
            (f"{name}: layer {layer_no}", (xy_l, token_labels(means.tokens, corpus_counts[means.ids]))), coords)


# ------------------------------------------------------------------------------------------------
# Step-0 references: the same metrics at initialisation, and what training added
# ------------------------------------------------------------------------------------------------
#: What the step-0 comparison is called in "not applicable" rows {model, probe, reason}.
STEP0_PROBE = "trained vs initial (step 0)"
#: Summary columns compared at step 0 (:func:`embedding_summary` names) and how the prose names them.
STEP0_QUANTITIES = {"static purity": "static letter purity", "last-layer purity": "last-layer letter purity",
                    "token share last": "last-layer token share", "self-sim same": "last-layer self-similarity",
                    "GC R2 static": "static GC k-NN R²"}


def model_metrics(lm, windows: Sequence[str], *, name: str | None = None, layers=None, min_occurrences: int = 5,
                  n_neighbors: int = 10, metric: str = "cosine", seed: int = 0, batch_size: int = 64):
    """Every embedding metric chapter 4 reports for one model: (TokenStatistics, table). The table stacks
    :func:`static_metrics` (layer ``STATIC_LAYER`` = -1) on :func:`metrics_from_statistics` (layers 0..L) in
    the :func:`layer_metrics` format (model, layer, metric, value, baseline, n), every row labelled ``name``
    (default ``lm.name``), so that a model and its step-0 twin give tables with the same keys;
    ``table.attrs["notes"]``: the skipped metrics, explained."""
    import pandas as pd

    name = str(lm.name if name is None else name)
    stats = token_statistics(lm, windows, layers=layers, batch_size=batch_size)
    contextual = metrics_from_statistics(stats, min_occurrences=min_occurrences, n_neighbors=n_neighbors,
                                         metric=metric, seed=seed)
    static = static_metrics(lm, n_neighbors=n_neighbors, metric=metric, seed=seed, model=name)
    table = pd.concat([static, contextual], ignore_index=True)
    table["model"] = name
    table.attrs["notes"] = sorted(set(static.attrs.get("notes", []) + contextual.attrs.get("notes", [])))
    return stats, table


def letter_sum_static_purity(k: int, n_neighbors: int) -> float:
    """Analytic static letter purity of a letter-sum table of overlapping k-mers, mean over positions 1..k.

    The table (``pretraining.init_embeddings_from_letters``): every one of the 4**k ACGT k-mers t has the row
    r(t) = k**-0.5 * sum_j P[j, t_j], the P[j, letter] independent N(0, s^2 I_d). For k-mers at Hamming
    distance h, ||r(t) - r(u)||^2 has mean 2 h s^2 d / k and all rows have squared norm of mean s^2 d, so the
    cosine is about 1 - h / k: the nearest rows of a k-mer are its Hamming shells in order, shell h holding
    C(k, h) * 3**h k-mers (3k at h = 1). Assumption: the ``n_neighbors`` nearest rows of every k-mer are the
    innermost shells, filled in order (ties inside the last shell broken anyhow). It holds as d grows (the
    shells' cosines differ by 1/k, their sampling spread shrinks as d**-0.5) and is checked for the zoo's d = 128
    in tests/test_embeddings.py.

    Derivation: a neighbour at Hamming distance h carries a different letter at exactly h of the k positions,
    so for any neighbour set, the purity at position i averaged over i = 1..k is 1 - (mean h over the
    neighbour slots) / k. With n_neighbors <= 3k every slot is in shell 1 (h = 1), whichever ones the ties
    pick: purity = 1 - 1/k (75.0 / 80.0 / 83.3 % at k = 4 / 5 / 6). Beyond 3k the next shells enter and the
    purity falls (k = 3, n_neighbors = 12: 1 - (9 * 1 + 3 * 2) / (3 * 12) = 58.3 %). Chapter 4 computes this
    purity (:func:`static_metrics`) over all 4**k k-mers with label "letter at position i" for i = 1..k
    (``_position_labels``, scheme overlapping) and cosine neighbours; the mean over positions is what
    :func:`embedding_summary` reports as static purity. Single positions do not share it: a shell-1 neighbour
    that differs at position j lies at ||P[j, a] - P[j, b]||^2 / k, which varies with j and the letters, so with
    fewer than 3k neighbours some positions' substitutions fill the slots first (at d = 128, k = 6 and 10
    neighbours the positions' step-0 purities spread over ~18 points) while their mean stays 1 - 1/k. The
    assumption is weakest at a shell boundary (n_neighbors = 3k: the farthest shell-1 row competes with the
    nearest shell-2 row; at d = 128 the measured mean falls up to 0.4 points short). Shuffled labels give
    about 1/4.
    """
    from math import comb

    k = check_int_range("k", k, 1, hint="The k of the overlapping k-mer tokenizer, e.g. 6.")
    n_neighbors = check_int_range("n_neighbors", n_neighbors, 1, 4**k - 1,
                                  hint=f"Neighbours per k-mer; a table of 4**{k} k-mers has at most {4**k - 1} others.")
    left, hamming = n_neighbors, 0
    for h in range(1, k + 1):
        take = min(left, comb(k, h) * 3**h)
        hamming += take * h
        left -= take
        if not left:
            break
    return 1.0 - hamming / (n_neighbors * k)


def initial_models(models: Mapping[str, object], **load_options):
    """The step-0 twin of every model that has one: (name -> adapter loaded from
    ``pretraining.initial_model_folder(lm.path)``, rows {model, probe: :data:`STEP0_PROBE`, reason} of the
    others, as ``adapters.not_applicable_text`` reads them).

    A model without a step-0 folder (a published checkpoint, a hand-built module, a zoo trained before step 0
    was saved) is reported not applicable: "no step-0 weights" (with the reason the folder lookup gave), never
    compared with a different initialisation. ``load_options`` go to ``models.load_model`` (device, ...)."""
    from . import pretraining
    from .models import load_model

    twins, rows = {}, []
    for name, lm in models.items():
        path, source = getattr(lm, "path", None), getattr(lm, "source", None)
        if path is None or source == "hub":
            why = "a hub checkpoint ships its trained weights only" if source == "hub" else "the model has no folder"
            rows.append({"model": name, "probe": STEP0_PROBE, "reason": f"no step-0 weights ({why})"})
            continue
        try:
            folder = pretraining.initial_model_folder(path)
        except ParameterError:  # its message names the local folder; the book says what it means
            rows.append({"model": name, "probe": STEP0_PROBE, "reason": "no step-0 weights (only zoo models trained "
                         "with step-0 snapshots have them: retrain the zoo, chapter 2, to compare this one)"})
            continue
        twins[name] = load_model(folder, **load_options)
    return twins, rows


def _check_metric_table(table, what: str):
    missing = {"model", "layer", "metric", "value"} - set(table.columns)
    if missing:
        raise ParameterError(f"{what} lacks column(s) {sorted(missing)}; pass a table of model_metrics / layer_metrics.")
    keys = table[["model", "layer", "metric"]]
    if keys.duplicated().any():
        dup = keys[keys.duplicated()].iloc[0].tolist()
        raise ParameterError(f"{what} has more than one row for (model, layer, metric) = {dup}; give each once "
                             "(one table per model, concatenated).")


def versus_initial(trained, initial):
    """Trained against step 0: one row per (model, layer, metric) of ``trained`` whose model also appears in
    ``initial`` (both in the :func:`model_metrics` format, the step-0 table computed on the same windows and
    parameters), with columns model, layer, metric, trained, initial, difference = trained - initial (metric
    units: purity and token share as fractions, R² and cosine as they are), plus the two baselines. A row the
    step-0 table lacks keeps initial and difference NaN; models absent from ``initial`` are left out (report
    them with :func:`initial_models`' rows)."""
    _check_metric_table(trained, "trained")
    _check_metric_table(initial, "initial")
    keys = ["model", "layer", "metric"]
    cols = lambda df, tag: df[keys + ["value"] + (["baseline"] if "baseline" in df else [])].rename(  # noqa: E731
        columns={"value": tag, "baseline": f"{tag} baseline"})
    out = cols(trained[trained.model.isin(set(initial.model))], "trained").merge(cols(initial, "initial"), on=keys,
                                                                                  how="left", validate="one_to_one")
    out["difference"] = out["trained"] - out["initial"]
    first = keys + ["trained", "initial", "difference"]
    return out[first + [c for c in out.columns if c not in first]].reset_index(drop=True)


def summary_versus_initial(summary, initial_summary):
    """The :func:`embedding_summary` quantities of :data:`STEP0_QUANTITIES`, trained against step 0: one row
    per (model, quantity) for the models in both tables, columns model, quantity, trained, initial,
    difference = trained - initial, baseline (the trained model's shuffled-label / random-assignment
    baseline where the quantity has one, else NaN)."""
    import pandas as pd

    baselines = {"static purity": "static baseline", "last-layer purity": "last baseline",
                 "token share last": "token share baseline", "self-sim same": "self-sim other"}
    rows = []
    if not len(summary) or not len(initial_summary):  # no model with step-0 weights
        return pd.DataFrame(rows, columns=["model", "quantity", "trained", "initial", "difference", "baseline"])
    a, b = summary.set_index("model"), initial_summary.set_index("model")
    for model in [m for m in a.index if m in b.index]:
        for col in STEP0_QUANTITIES:
            t, i = float(a.loc[model, col]), float(b.loc[model, col])
            base = float(a.loc[model, baselines[col]]) if col in baselines else np.nan
            rows.append({"model": model, "quantity": col, "trained": t, "initial": i, "difference": t - i,
                         "baseline": base})
    return pd.DataFrame(rows, columns=["model", "quantity", "trained", "initial", "difference", "baseline"])


def step0_sentences(comparison, *, roles, not_applicable, n_neighbors: int) -> dict[str, str]:
    """Chapter 4's step-0 sentences, ``{glue key: text}`` (glue with ``findings.glue_all``):

    ``step0_list``: per model, the :data:`STEP0_QUANTITIES` it has: trained (step 0: initial, difference in
    points for purity and token share, in units for cosine and R²);
    ``step0_share``: per model, the share of its static purity above the shuffled baseline that the step-0
    table already had, (initial - baseline) / (trained - baseline); ``step0_analytic``: the analytic step-0
    purity (:func:`letter_sum_static_purity`) of every letter-sum overlapping model in ``roles`` (scheme,
    k, embedding_init), beside its measured step-0 value where it has step-0 weights; ``step0_na``: the sentence naming the models without step-0 weights.
    ``comparison``: :func:`summary_versus_initial`; ``not_applicable``: :func:`initial_models`' rows."""
    from .findings import labelled, step0_missing_sentence
    from .verdicts import fmt_pct

    pts = lambda d: "n/a" if not np.isfinite(d) else f"{100 * d:+.1f} points"  # noqa: E731
    val = lambda x, q: fmt_pct(x) if q.endswith(("purity", "share last")) else (  # noqa: E731
        "n/a" if not np.isfinite(x) else f"{x:.2f}")
    diff = lambda d, q: pts(d) if q.endswith(("purity", "share last")) else (  # noqa: E731
        "n/a" if not np.isfinite(d) else f"{d:+.2f}")
    out = {}
    per_model = []
    for model, rows in comparison.groupby("model", sort=False):
        parts = [f"{STEP0_QUANTITIES[r.quantity]} {val(r.trained, r.quantity)} (step 0: {val(r.initial, r.quantity)}, "
                 f"{diff(r.difference, r.quantity)})" for r in rows.itertuples()
                 if np.isfinite(r.trained) or np.isfinite(r.initial)]  # quantities the model has (no letters: none)
        per_model.append(f"{labelled(model, roles)}: " + (", ".join(parts) or "n/a"))
    out["step0_list"] = "; ".join(per_model) if per_model else "n/a (no model with step-0 weights in this run)"
    shares = []
    for r in comparison[comparison.quantity == "static purity"].itertuples():
        above = r.trained - r.baseline
        if np.isfinite(above) and above > 0 and np.isfinite(r.initial):
            share = (r.initial - r.baseline) / above
            if share >= 1:  # the step-0 table had at least the trained purity: training kept or lowered it
                shares.append(f"**{r.model}** more than all of it: training {'kept' if r.trained >= r.initial else 'lowered'} "
                              f"it ({fmt_pct(r.initial)} at step 0, {fmt_pct(r.trained)} trained)")
            elif share <= 0:
                shares.append(f"**{r.model}** none (step 0 at the shuffled level)")
            else:
                shares.append(f"**{r.model}** {fmt_pct(share, 0)}")
    out["step0_share"] = ", ".join(shares) if shares else "n/a"
    analytic = []
    if roles is not None and len(roles):
        measured = comparison[comparison.quantity == "static purity"].set_index("model").initial
        letter_sum = roles[(roles.scheme == "overlapping") & (roles.embedding_init == "nucleotide_sum")]
        for r in letter_sum.itertuples():
            if r.k is not None and np.isfinite(r.k) and 4 ** int(r.k) > n_neighbors:
                seen = (f"measured at step 0: {fmt_pct(measured[r.model])}" if r.model in measured.index
                        else "no step-0 weights to measure")
                analytic.append(f"**{r.model}** {fmt_pct(letter_sum_static_purity(int(r.k), n_neighbors))} "
                                f"(k = {int(r.k)}, {n_neighbors} neighbours; {seen})")
    out["step0_analytic"] = ", ".join(analytic) if analytic else "n/a (no letter-sum overlapping model in this run)"
    out["step0_na"] = step0_missing_sentence([row["model"] for row in not_applicable])
    return out
