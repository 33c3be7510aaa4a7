"""Pre-train the book's model zoo: matched small BERTs that differ only in tokenization.

Every model has the same architecture (``BertForMaskedLM``; layers, width, heads and position table fixed
by :class:`PretrainConfig`) and the same budget: it sees **the same nucleotide windows** (``window_nt`` nt
each, sampled once from the pre-training corpus with one seed, reverse-complemented at random) in the same
order, ``batch_size`` windows per step for ``steps`` steps. The number of nucleotides seen is therefore
identical (steps x batch_size x window_nt); the number of *tokens* is not, since a 6-mer tokenizer packs a
window into about a sixth of the tokens of an overlapping one, which also makes its steps cheaper. One setting
of the optimiser is tuned per family on held-out pre-training records: the overlapping k-mer arms take each
shared batch as :data:`STEP_SPLIT` smaller steps (32 windows x 4,000 steps for 64 x 2,000), the same windows in
the same order (:func:`split_steps`).

Masking follows each family's published recipe:

* overlapping k-mers (DNABERT): mask centres drawn with probability 2.5 %, each expanded to a contiguous
  span of k tokens with DNABERT's offsets (k=6: -2, -1, +1, +2, +3), about 15 % of tokens in all;
* every other tokenization: 15 % of tokens, independently (BERT);
* in both cases 80 % of the chosen tokens become [MASK], 10 % a random token, 10 % stay; the loss counts
  masked positions only.

A model is cached under ``<models_dir>/<name>`` under the package's one cache rule (``cache.make_key``, kind
``"pretrained-model"``: its recipe, the corpus checksum, the device type, the library versions and the digest of
the code that trains it; see docs/caching.md); training runs in ``<models_dir>/.work/<name>-<key>`` with periodic Trainer
checkpoints, resumes from the last one after an interruption, and only a completed run is renamed into
place (atomically), so an unfinished model is never loaded as a finished one.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .cache import CacheKey, make_key, read_folder_entry
from .corpus import acgt_pieces, corpus_fingerprint, corpus_records
from .errors import ModelNotAvailableError, ParameterError, check_int_range
from .io import package_versions
from .tokenization import DNATokenizer, make_tokenizer

MANIFEST = "pretrain_manifest.json"
#: DNABERT's MASK_LIST generalised to any k: offsets added to a mask centre (k=6: -2, -1, +1, +2, +3).
def dnabert_offsets(k: int) -> list[int]:
    """Offsets that expand a mask centre to a contiguous span of k tokens, as in DNABERT's run_pretrain.py."""
    left = (k - 1) // 2
    return [o for o in range(-left, k - left) if o != 0]


#: PretrainConfig.reverse_complement -> genome.sample_windows(reverse_complement=...).
_STRANDS = {"random": "random", "none": False, "all": True}


@dataclass
class PretrainConfig:
    """Everything that defines one pre-trained model; its JSON (plus the corpus checksum) is the cache key."""

    name: str
    scheme: str  # overlapping | nonoverlapping | nucleotide | bpe
    k: int | None = None
    masking: str = "auto"  # auto | dnabert (k-token spans) | token (independent tokens) | spanN (spans of N tokens) | randommask (spans widening from k to 2k)
    mask_rate: float = 0.15  # share of tokens masked (dnabert / spans: centre rate = mask_rate / span length)
    embedding_init: str = "nucleotide_sum"  # nucleotide_sum (row = sum of per-position letter vectors) | random (DNABERT)
    position_init: str = "random"  # random (BERT) | sinusoidal (the Transformer's sinusoids, scaled to BERT's init std)
    bpe_vocab_size: int = 4096
    layers: int = 2
    hidden: int = 128
    heads: int = 2
    intermediate: int = 512
    max_positions: int = 512
    window_nt: int = 64
    batch_size: int = 64
    steps: int = 2000
    learning_rate: float = 2e-3
    warmup_steps: int = 100
    weight_decay: float = 0.01
    adam_beta2: float = 0.98
    adam_epsilon: float = 1e-6
    reverse_complement: str = "random"  # random (each window's strand drawn at random) | none | all
    seed: int = 0  # initialisation and masking
    data_seed: int = 0  # which windows, in which order (shared by every seed of an arm: same data, other weights)
    dropout: float = 0.0  # hidden and attention dropout (BERT: 0.1; 0 here: one pass over the data, nothing to regularise)
    heldout_fraction: float = 0.05  # share of the corpus held out from training, in blocks, for held-out loss and gates
    heldout_block_nt: int = 20_000  # length of each held-out block
    eval_steps: int = 100  # held-out loss every eval_steps steps (and at step 0 and the end)
    n_eval_windows: int = 256  # held-out windows (fixed masks) behind each held-out loss
    snapshots: int = 4  # model snapshots saved at evenly spaced steps, step 0 included (0: none)
    precision: str = "auto"  # auto (bf16 autocast where supported) | fp32
    logging_steps: int = 25
    save_steps: int = 250

    def __post_init__(self):
        if self.scheme not in ("overlapping", "nonoverlapping", "nucleotide", "bpe"):
            raise ParameterError(f"model {self.name!r}: scheme={self.scheme!r}; use overlapping, nonoverlapping, nucleotide or bpe.")
        if self.masking == "auto":
            self.masking = "dnabert" if self.scheme == "overlapping" else "token"
        if self.masking not in ("dnabert", "token", "randommask") and not (
                self.masking.startswith("span") and self.masking[4:].isdigit() and int(self.masking[4:]) >= 1):
            raise ParameterError(f"model {self.name!r}: masking={self.masking!r}; use auto, dnabert, token, randommask or "
                                 "spanN (e.g. span6).")
        if self.masking in ("dnabert", "randommask") and self.scheme != "overlapping":
            raise ParameterError(f"model {self.name!r}: {self.masking} masking needs overlapping k-mers (scheme=overlapping, k=...).")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ParameterError(f"model {self.name!r}: dropout={self.dropout} must be in [0, 1).")
        if not 0.0 < float(self.heldout_fraction) < 0.5:
            raise ParameterError(f"model {self.name!r}: heldout_fraction={self.heldout_fraction} must be in (0, 0.5).")
        if self.position_init not in ("random", "sinusoidal"):
            raise ParameterError(f"model {self.name!r}: position_init={self.position_init!r}; use random or sinusoidal.")
        if self.embedding_init not in ("random", "nucleotide_sum"):
            raise ParameterError(f"model {self.name!r}: embedding_init={self.embedding_init!r}; use random or nucleotide_sum.")
        if self.reverse_complement not in _STRANDS:
            raise ParameterError(f"reverse_complement={self.reverse_complement!r}; use one of {', '.join(_STRANDS)}.")
        if self.precision not in ("auto", "fp32"):
            raise ParameterError(f"precision={self.precision!r}; use auto or fp32.")
        for name in ("steps", "batch_size", "window_nt", "layers", "hidden", "heads"):
            if int(getattr(self, name)) < 1:
                raise ParameterError(f"model {self.name!r}: {name}={getattr(self, name)} must be >= 1.")
        if self.hidden % self.heads:
            raise ParameterError(f"model {self.name!r}: hidden={self.hidden} must be divisible by heads={self.heads}.")

    @property
    def span_length(self) -> int:
        """Tokens per masked span at the end of training: k for DNABERT masking, N for spanN, 2k for randommask,
        1 for token masking."""
        return self.span_at(self.steps)

    def span_at(self, step: int) -> int:
        """Tokens per masked span at optimisation step ``step`` (0-based). Constant except for ``randommask``
        (after RandomMask, Liang et al. 2023, arXiv 2310.07644): the span widens from k to 2k tokens in k + 1
        equal stages, so that from the second stage on at least one nucleotide is hidden from the flanks and at
        the end k + 1 are."""
        if self.masking == "dnabert":
            return int(self.k)
        if self.masking.startswith("span"):
            return int(self.masking[4:])
        if self.masking == "randommask":
            k = int(self.k)
            stage = min(k, int(step) * (k + 1) // max(int(self.steps), 1))
            return k + stage
        return 1

    def offsets_at(self, step: int) -> list[int]:
        """Offsets that expand a mask centre into the span of :meth:`span_at` tokens (DNABERT's layout)."""
        span = self.span_at(step)
        return dnabert_offsets(span) if span > 1 else []

    @property
    def offsets(self) -> list[int]:
        return self.offsets_at(self.steps)

    def centre_rate_at(self, step: int) -> float:
        """Probability that a token is a mask centre at ``step`` (DNABERT: 0.15 / 6 = 0.025 for k = 6)."""
        return self.mask_rate / self.span_at(step)

    @property
    def centre_rate(self) -> float:
        return self.centre_rate_at(self.steps)

    @property
    def nucleotides_seen(self) -> int:
        return self.steps * self.batch_size * self.window_nt

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def replace(self, **changes) -> "PretrainConfig":
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ParameterError(f"unknown pre-training setting(s) {sorted(unknown)}; valid: {sorted(f.name for f in dataclasses.fields(self))}.")
        return dataclasses.replace(self, **changes)


#: The zoo: one arm per tokenization with its family's masking (the "main" arms), plus arms that change one
#: setting of a main arm (``ARM_CHANGES`` names it). Every arm starts its token embeddings as sums of per-position
#: letter vectors (``embedding_init="nucleotide_sum"``) except ``overlap6_dnabert``, which keeps DNABERT's random
#: rows: the initialisation ablation. The single-nucleotide arms start their position table from sinusoids, chosen
#: on held-out pre-training records (``recipe_tuning``; docs/recipe_tuning): with learned random positions the
#: nucleotide model stalls at the level of a one-neighbour n-gram, while sinusoids lower its held-out loss and
#: do not help overlapping 6-mers.
ZOO: dict[str, dict] = {
    "overlap4": dict(scheme="overlapping", k=4),
    "overlap5": dict(scheme="overlapping", k=5),
    "overlap6": dict(scheme="overlapping", k=6),
    "overlap6_dnabert": dict(scheme="overlapping", k=6, embedding_init="random"),
    "nonoverlap6": dict(scheme="nonoverlapping", k=6),
    "nucleotide": dict(scheme="nucleotide", position_init="sinusoidal"),
    "bpe": dict(scheme="bpe", bpe_vocab_size=4096),
    "overlap6_token": dict(scheme="overlapping", k=6, masking="token"),
    "nucleotide_span6": dict(scheme="nucleotide", masking="span6", position_init="sinusoidal"),
    "overlap6_span12": dict(scheme="overlapping", k=6, masking="span12"),
    "overlap6_randommask": dict(scheme="overlapping", k=6, masking="randommask"),
}

#: Optimiser steps per shared batch, by tokenization scheme (:func:`split_steps`; absent: 1). Chosen on held-out
#: pre-training records (``recipe_tuning``; docs/recipe_tuning), same windows and nucleotide budget: for the
#: overlapping k-mer arms 32 windows x 4,000 steps instead of 64 x 2,000 lowered the held-out loss of overlap6
#: from 2.233 to 2.099 nats (means of 3 seeds: each split seed below each whole-batch seed, but the gain is within
#: the split's seed range of 0.187 nats), of overlap5 from 1.868 to 1.653, of overlap4 from 1.543 to 1.539 and of
#: the DNABERT-initialised control from 6.237 to 6.063 (one seed each), while it raised non-overlapping 6-mers'
#: from 5.364 to 5.787, BPE's from 5.897 to 6.005 and single nucleotides' from 1.242 to 1.275 (a 64-nt window
#: holds 14 and 13 tokens of 6-mers and BPE, about 2 of them masked: halving the batch halves the few labelled
#: tokens behind each step).
STEP_SPLIT: dict[str, int] = {"overlapping": 2}

#: arm -> (the arm it changes, what it changes, why). Each differs from its reference in exactly that setting.
ARM_CHANGES: dict[str, tuple[str, str, str]] = {
    "overlap6_dnabert": ("overlap6", "embedding_init", "initialisation ablation: DNABERT's random embedding rows"),
    "overlap6_token": ("overlap6", "masking", "masking ablation: 15 % independent tokens instead of k-token spans"),
    "nucleotide_span6": ("nucleotide", "masking", "masking ablation: 6-nt spans, as a 6-mer span hides"),
    "overlap6_span12": ("overlap6", "masking", "closes the leak: 2k-token spans hide k + 1 nt from the flanks"),
    "overlap6_randommask": ("overlap6", "masking", "closes the leak gradually: spans widen from k to 2k (RandomMask)"),
}

SEED_SUFFIX = "_seed"


def arm_pairs(setting: str | None = None) -> dict[str, str]:
    """arm -> the arm it changes (:data:`ARM_CHANGES`), only the arms that change ``setting`` (e.g. "masking")
    when given: the pairs the chapters compare item by item."""
    return {arm: ref for arm, (ref, changed, _) in ARM_CHANGES.items() if setting is None or changed == setting}


def seeded_name(arm: str, seed: int) -> str:
    """Folder name of ``arm`` pre-trained with ``seed``: the arm's name for seed 0, ``<arm>_seed<N>`` otherwise."""
    return arm if int(seed) == 0 else f"{arm}{SEED_SUFFIX}{int(seed)}"


def split_seeded_name(name: str) -> tuple[str, int]:
    """(arm, seed) of a zoo folder name written by :func:`seeded_name`."""
    arm, sep, tail = str(name).rpartition(SEED_SUFFIX)
    if sep and tail.isdigit() and arm in ZOO:
        return arm, int(tail)
    return str(name), 0


def is_zoo_name(name: str) -> bool:
    """True for a zoo arm or a seeded replicate of one (``overlap6_seed2``)."""
    return split_seeded_name(name)[0] in ZOO


def split_steps(cfg: PretrainConfig, split: int) -> PretrainConfig:
    """``cfg`` with each batch of ``batch_size`` windows split into ``split`` optimiser steps: batch_size / split
    windows per step, steps x split steps; the same windows in the same order (:func:`sample_training_windows`),
    the same nucleotide budget, the warm-up and evaluation intervals unchanged (in steps). Raises ParameterError
    when ``split`` does not divide ``batch_size``."""
    split = check_int_range("step_split", split, 1, hint="Optimiser steps per batch of the shared recipe (1: no split).")
    if split == 1:
        return cfg
    if cfg.batch_size % split:
        raise ParameterError(f"model {cfg.name!r}: batch_size={cfg.batch_size} is not divisible by step_split={split}; "
                             "choose a batch size that is a multiple of it, or step_split=1.")
    return cfg.replace(batch_size=cfg.batch_size // split, steps=cfg.steps * split)


def zoo_config(name: str, *, step_split: int | None = None, **overrides) -> PretrainConfig:
    """The zoo recipe ``name`` (an arm, or ``<arm>_seed<N>`` for seed N) with shared settings overridden (e.g.
    steps=50 for a smoke run). A seeded name sets ``seed``; ``data_seed`` stays shared. The shared ``steps`` and
    ``batch_size`` are the budget; the arm's family then splits each batch into :data:`STEP_SPLIT` optimiser
    steps (:func:`split_steps`), unless ``step_split`` says otherwise (1: every arm takes the shared batches)."""
    arm, seed = split_seeded_name(name)
    if arm not in ZOO:
        raise ParameterError(f"unknown zoo model {name!r}; the zoo has {', '.join(ZOO)} (and <arm>{SEED_SUFFIX}N for seed N).")
    settings = {**ZOO[arm], **overrides}
    if seed:
        settings["seed"] = seed
    cfg = PretrainConfig(name=name, **settings)
    return split_steps(cfg, STEP_SPLIT.get(cfg.scheme, 1) if step_split is None else step_split)


def step_split_sentence(configs: Mapping[str, PretrainConfig], batch_size: int) -> str:
    """What the recipe table's page says about windows per optimiser step: which of ``configs`` (name ->
    PretrainConfig) take the shared batches of ``batch_size`` windows as smaller steps (:data:`STEP_SPLIT`), e.g.
    "overlap4 and overlap6 take each batch as 2 steps of 32 windows (4,000 steps)"; "every model takes them whole"
    when none does."""
    groups: dict[tuple[int, int], list[str]] = {}
    for name, cfg in configs.items():
        if cfg.batch_size != batch_size:
            groups.setdefault((cfg.batch_size, cfg.steps), []).append(str(name))
    if not groups:
        return "every model takes them whole"
    parts = []
    for (size, steps), names in groups.items():
        who = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
        split = batch_size // size if size and batch_size % size == 0 else None
        how = f"as {split} steps of {size} windows" if split else f"in steps of {size} windows"
        parts.append(f"{who} take{'s' if len(names) == 1 else ''} each batch {how} ({steps:,} steps; the same windows "
                     "in the same order, chosen on held-out pre-training records)")
    return "; ".join(parts)


def zoo_names(arms: Sequence[str], seeds: Sequence[int] = (0,), seeded_arms: Sequence[str] | None = None) -> list[str]:
    """Folder names for ``arms``: every arm with seed 0, and the arms in ``seeded_arms`` (default: all) also with
    each of ``seeds``. Arms first, then replicates, in the given order."""
    unknown = [a for a in arms if a not in ZOO]
    if unknown:
        raise ParameterError(f"unknown zoo arm(s) {unknown}; the zoo has {', '.join(ZOO)}.")
    replicated = list(arms) if seeded_arms is None else [a for a in arms if a in set(seeded_arms)]
    names = [seeded_name(a, 0) for a in arms]
    names += [seeded_name(a, s) for s in seeds if int(s) != 0 for a in replicated]
    return names


def arm_table(names: Sequence[str], **overrides):
    """One row per arm among ``names`` that changes a reference arm (:data:`ARM_CHANGES`): arm, reference, the
    setting that differs with both values (computed from the two configs with ``overrides`` applied), and why."""
    import pandas as pd

    arms = {split_seeded_name(n)[0] for n in names}
    rows = []
    for arm, (ref, _setting, why) in ARM_CHANGES.items():
        if arm in arms:
            diff = config_differences(zoo_config(arm, **overrides), zoo_config(ref, **overrides))
            rows.append({"arm": arm, "reference": ref, "differs in": ", ".join(f"{k}: {b} -> {a}" for k, (a, b) in diff.items()),
                         "purpose": why, "reference in this run": ref in arms})
    return pd.DataFrame(rows, columns=["arm", "reference", "differs in", "purpose", "reference in this run"])


def config_differences(a: PretrainConfig, b: PretrainConfig) -> dict[str, tuple]:
    """{setting: (value in a, value in b)} for every recipe setting that differs (the name excluded)."""
    da, db = a.to_dict(), b.to_dict()
    return {k: (da[k], db[k]) for k in da if k != "name" and da[k] != db[k]}


# ------------------------------------------------------------------------------------------------
# Data: the same windows for every model
# ------------------------------------------------------------------------------------------------
def holdout_split(records, *, fraction: float = 0.05, block_nt: int = 20_000, seed: int = 0):
    """(training records, held-out records): ``fraction`` of the corpus nucleotides, in blocks of ``block_nt``,
    cut out of the records and kept apart; the training records are what remains (pieces named
    ``<record>:<start>-<end>``, 0-based half-open). Blocks are drawn per record in proportion to its length (a
    record shorter than ``3 * block_nt`` is never cut), seeded, so every model with the same corpus and seed
    trains and is checked on the same split. Shapes: records are ``genome.FastaRecord``; so are the outputs."""
    from .genome import FastaRecord

    rng = np.random.default_rng(seed)
    train, held = [], []
    for rec in records:
        n = len(rec.sequence)
        n_blocks = int(round(fraction * n / block_nt)) if n >= 3 * block_nt else 0
        cuts = []
        if n_blocks:
            slots = n // block_nt
            cuts = sorted(int(b) * block_nt for b in rng.choice(slots, size=min(n_blocks, slots), replace=False))
        pos = 0
        for c in cuts:
            if c > pos:
                train.append(FastaRecord(f"{rec.name}:{pos}-{c}", rec.description, rec.sequence[pos:c]))
            held.append(FastaRecord(f"{rec.name}:{c}-{c + block_nt}", rec.description, rec.sequence[c:c + block_nt]))
            pos = c + block_nt
        if pos < n:
            train.append(FastaRecord(f"{rec.name}:{pos}-{n}" if cuts else rec.name, rec.description, rec.sequence[pos:]))
    if not held:
        raise ParameterError(f"heldout_fraction={fraction} with heldout_block_nt={block_nt} holds out nothing of this corpus "
                             "(records shorter than 3 blocks are never cut); use a smaller heldout_block_nt.")
    return train, held


def split_for(cfg: PretrainConfig, records):
    """:func:`holdout_split` with ``cfg``'s settings (seeded by ``data_seed``)."""
    return holdout_split(records, fraction=cfg.heldout_fraction, block_nt=cfg.heldout_block_nt, seed=cfg.data_seed)


def sample_training_windows(cfg: PretrainConfig, records, *, n: int | None = None) -> list[str]:
    """``steps * batch_size`` windows of ``window_nt`` ACGT-only nt from the training part of ``records``
    (:func:`split_for`), seeded by ``data_seed``: identical for every model that shares steps, batch size, window
    length and data seed, whatever its tokenization or seed."""
    from .genome import Genome, sample_windows

    n = n or cfg.steps * cfg.batch_size
    train_records, _ = split_for(cfg, records)
    wins = sample_windows(Genome.from_records(train_records), n, cfg.window_nt, seed=cfg.data_seed,
                          reverse_complement=_STRANDS[cfg.reverse_complement])
    return [w.sequence for w in wins]


def sample_heldout_windows(cfg: PretrainConfig, records, n: int, *, seed_offset: int = 1) -> list[str]:
    """``n`` windows of ``window_nt`` nt from the held-out blocks of ``records`` (never trained on); what the
    held-out loss during training and the convergence gates are computed on."""
    from .genome import Genome, sample_windows

    _, held = split_for(cfg, records)
    wins = sample_windows(Genome.from_records(held), n, cfg.window_nt, seed=cfg.data_seed + seed_offset,
                          reverse_complement=_STRANDS[cfg.reverse_complement])
    return [w.sequence for w in wins]


def encode_windows(windows: Sequence[str], tokenizer: DNATokenizer, max_positions: int):
    """(ids, attention) LongTensors of shape (window, token): every window framed (``[CLS] ... [SEP]``) and padded
    to the longest; ParameterError when a window needs more than ``max_positions`` positions."""
    import torch

    ids, attn = tokenizer.pad([tokenizer.encode_ids(w, add_special_tokens=True) for w in windows])
    if ids.shape[1] > max_positions:
        raise ParameterError(
            f"windows of {len(windows[0])} nt need up to {ids.shape[1]} token positions with {tokenizer.description}, "
            f"more than max_positions={max_positions}; use shorter windows (window_nt).")
    return torch.from_numpy(np.asarray(ids)).long(), torch.from_numpy(np.asarray(attn)).long()


# ------------------------------------------------------------------------------------------------
# Masking
# ------------------------------------------------------------------------------------------------
def mask_tokens(input_ids, special, *, centre_rate: float, offsets: Sequence[int], mask_id: int,
                random_ids, generator=None):
    """DNABERT/BERT masking of a batch.

    input_ids: (batch, tokens) LongTensor; special: (batch, tokens) bool, True for [CLS]/[SEP]/[PAD] (never
    masked). Each non-special token is a centre with probability ``centre_rate`` (every row gets at least one);
    each centre is expanded by ``offsets`` (DNABERT: a contiguous span of k tokens). Chosen tokens: 80 % ->
    ``mask_id``, 10 % -> a token drawn from ``random_ids``, 10 % unchanged. Returns (masked input_ids, labels)
    with labels = -100 outside the chosen tokens.
    """
    import torch

    b, t = input_ids.shape
    maskable = ~special
    centres = (torch.rand((b, t), generator=generator) < centre_rate) & maskable
    empty = ~centres.any(dim=1)
    if empty.any():  # every row trains on at least one span: pick a random maskable position
        scores = torch.rand((b, t), generator=generator).masked_fill(~maskable, -1.0)
        pick = scores.argmax(dim=1)
        centres[empty, pick[empty]] = True
    chosen = centres.clone()
    for off in offsets:
        if off > 0:
            chosen[:, off:] |= centres[:, :-off]
        else:
            chosen[:, :off] |= centres[:, -off:]
    chosen &= maskable
    labels = torch.where(chosen, input_ids, torch.full_like(input_ids, -100))
    roll = torch.rand((b, t), generator=generator)
    to_mask = chosen & (roll < 0.8)
    to_random = chosen & (roll >= 0.8) & (roll < 0.9)
    out = input_ids.clone()
    out[to_mask] = mask_id
    n_rand = int(to_random.sum())
    if n_rand:
        out[to_random] = random_ids[torch.randint(len(random_ids), (n_rand,), generator=generator)]
    return out, labels


# ------------------------------------------------------------------------------------------------
# Model
# ------------------------------------------------------------------------------------------------
def build_model(cfg: PretrainConfig, tokenizer: DNATokenizer):
    """A freshly initialised BertForMaskedLM for ``cfg`` (seeded by ``cfg.seed``), with the chosen embedding
    initialisation and dropout, and eager attention (faster than SDPA's CPU kernels at these sizes; same maths)."""
    from transformers import BertConfig, BertForMaskedLM, set_seed

    set_seed(cfg.seed)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=cfg.hidden, num_hidden_layers=cfg.layers,
        num_attention_heads=cfg.heads, intermediate_size=cfg.intermediate, max_position_embeddings=cfg.max_positions,
        pad_token_id=tokenizer.pad_id, architectures=["BertForMaskedLM"], hidden_dropout_prob=cfg.dropout,
        attention_probs_dropout_prob=cfg.dropout,
    )
    config._attn_implementation = "eager"
    model = BertForMaskedLM(config)
    if cfg.embedding_init == "nucleotide_sum":
        init_embeddings_from_letters(model, tokenizer, seed=cfg.seed)
    if cfg.position_init == "sinusoidal":
        init_positions_sinusoidal(model)
    return model


def init_positions_sinusoidal(model, std: float = 0.02) -> None:
    """Set the position table (positions, hidden) to the Transformer's sinusoids (sin on even, cos on odd
    dimensions, wavelengths 2*pi .. 10000*2*pi), scaled to standard deviation ``std`` (BERT's init std), so that
    a fixed offset between positions is a fixed linear map from the first step; the table is still trained."""
    import torch

    table = model.bert.embeddings.position_embeddings.weight
    n, d = table.shape
    pos = torch.arange(n, dtype=torch.float32)[:, None]
    freq = torch.exp(-np.log(10000.0) * torch.arange(0, d, 2, dtype=torch.float32) / d)
    sin = torch.zeros(n, d)
    sin[:, 0::2] = torch.sin(pos * freq)
    sin[:, 1::2] = torch.cos(pos * freq[: d // 2])
    with torch.no_grad():
        table.copy_(sin * (std / sin.std()))


def init_embeddings_from_letters(model, tokenizer: DNATokenizer, *, seed: int = 0) -> None:
    """Set each non-special token's input embedding to the sum of per-position letter vectors:
    row(t) = sum_j P[j, letter t_j], P ~ N(0, 0.02^2 / len(t)) of shape (longest token, 5 letters, hidden).

    Tokens that share letters at the same positions start close (a named departure from DNABERT's random
    rows, which makes 4**k unrelated k-mer rows learnable in minutes); BERT ties the output layer to it.
    """
    import torch

    emb = model.get_input_embeddings().weight
    ids = np.flatnonzero(~tokenizer.is_special)
    tokens = [tokenizer.vocab[i] for i in ids]
    width = max(len(t) for t in tokens)
    gen = torch.Generator().manual_seed(seed)
    per_pos = torch.randn((width, 5, emb.shape[1]), generator=gen) * 0.02
    letters = np.full((len(tokens), width), -1, dtype=np.int64)
    for r, t in enumerate(tokens):
        letters[r, : len(t)] = ["ACGTN".index(c) for c in t]
    valid = torch.from_numpy(letters >= 0)
    pos = torch.arange(width).expand(len(tokens), width)
    vectors = per_pos[pos, torch.from_numpy(letters).clamp(min=0)] * valid[..., None]  # (tokens, width, hidden)
    lengths = valid.sum(1, keepdim=True).clamp(min=1)
    with torch.no_grad():
        emb[torch.from_numpy(ids)] = (vectors.sum(1) / lengths.sqrt()).to(emb.dtype)


# ------------------------------------------------------------------------------------------------
# Training with caching, resume and atomic completion
# ------------------------------------------------------------------------------------------------
def _trained_on(device: str = "auto") -> str:
    """Device type a run trains on: "cuda" when ``device`` picks CUDA, else "cpu"."""
    from .models import pick_device

    return "cuda" if pick_device(device).type == "cuda" else "cpu"


def pretrain_cache_key(cfg: PretrainConfig, corpus_sha: str, *, device: str = "auto", root=None) -> CacheKey:
    """The cache key (``cache.make_key``, kind ``"pretrained-model"``) of the model ``cfg`` trains: its recipe,
    the corpus checksum and the device type it trains on, plus the library versions and the digest of the code
    that trains it (``cache.DEPENDS_ON["pretrained-model"]`` under the package folder ``root``, default this
    package)."""
    inputs = {"config": cfg.to_dict(), "corpus_sha256": corpus_sha, "device": _trained_on(device)}
    return make_key("pretrained-model", inputs, root=root)


def cached_model(cfg: PretrainConfig, models_dir, corpus_sha: str, *, device: str = "auto") -> Path | None:
    """The finished model folder for ``cfg`` if it exists, its manifest holds :func:`pretrain_cache_key` and every
    file matches its checksum (``cache.read_folder_entry``); else None."""
    return read_folder_entry(Path(models_dir) / cfg.name, MANIFEST,
                             pretrain_cache_key(cfg, corpus_sha, device=device))


def use_bf16(cfg: PretrainConfig, device) -> bool:
    """bf16 autocast for ``cfg`` on ``device`` (a torch.device): precision="auto" and the device supports it."""
    import torch

    if cfg.precision != "auto":
        return False
    return torch.cuda.is_bf16_supported() if device.type == "cuda" else device.type == "cpu"


SNAPSHOTS = "snapshots"


def snapshot_steps(cfg: PretrainConfig) -> list[int]:
    """Steps at which a snapshot is saved: ``cfg.snapshots`` evenly spaced steps from 0 (step 0 = initialisation)
    below ``steps``; the finished model is the last point."""
    if cfg.snapshots <= 0:
        return []
    return sorted({int(round(i * cfg.steps / cfg.snapshots)) for i in range(cfg.snapshots)})


def snapshot_folders(folder) -> dict[int, Path]:
    """step -> snapshot model folder (loadable by ``models.load_model``) of a zoo model folder, step 0 first."""
    root = Path(folder) / SNAPSHOTS
    out = {}
    for sub in root.glob("step-*") if root.is_dir() else []:
        tail = sub.name.split("-", 1)[1]
        if tail.isdigit():
            out[int(tail)] = sub
    return dict(sorted(out.items()))


def initial_model_folder(folder) -> Path:
    """The step-0 model folder (same architecture, same seed, weights as initialised) of a zoo model folder.

    ParameterError when it has none (a published checkpoint, or a zoo model trained without snapshots)."""
    snaps = snapshot_folders(folder)
    if 0 not in snaps:
        raise ParameterError(f"{folder} has no step-0 weights ({SNAPSHOTS}/step-0); only zoo models trained with "
                             "snapshots >= 1 have them: retrain the zoo (chapter 2) to create them.")
    return snaps[0]


class _Run:
    """Model, optimiser, schedule and masking generator of one training run, with atomic checkpoints."""

    def __init__(self, cfg: PretrainConfig, tokenizer: DNATokenizer, device):
        import torch

        self.cfg, self.tok, self.device = cfg, tokenizer, device
        self.model = build_model(cfg, tokenizer).to(device)
        named = list(self.model.named_parameters())
        decay = [p for n, p in named if p.ndim >= 2 and "LayerNorm" not in n]  # no decay on biases and LayerNorm
        no_decay = [p for n, p in named if not (p.ndim >= 2 and "LayerNorm" not in n)]
        self.opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                      {"params": no_decay, "weight_decay": 0.0}],
                                     lr=cfg.learning_rate, betas=(0.9, cfg.adam_beta2), eps=cfg.adam_epsilon,
                                     foreach=True)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lambda step: lr_factor(cfg, step))
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.step = 0
        self.random_ids = torch.from_numpy(np.flatnonzero(~tokenizer.is_special)).long()
        self.is_special = torch.from_numpy(tokenizer.is_special)

    def state(self) -> dict:
        return {"model": self.model.state_dict(), "opt": self.opt.state_dict(), "sched": self.sched.state_dict(),
                "gen": self.gen.get_state(), "step": self.step}

    def save(self, path: Path, history: list) -> None:
        import torch

        tmp = path.with_name(path.name + ".partial")
        torch.save({**self.state(), "history": history}, tmp)
        os.replace(tmp, path)

    def load(self, path: Path) -> list:
        import torch

        st = torch.load(path, map_location=self.device, weights_only=False)
        self.model.load_state_dict(st["model"])
        self.opt.load_state_dict(st["opt"])
        self.sched.load_state_dict(st["sched"])
        self.gen.set_state(st["gen"])
        self.step = int(st["step"])
        return list(st["history"])

    def mask(self, ids, attn, step: int, generator):
        special = self.is_special[ids] | (attn == 0)
        return mask_tokens(ids, special, centre_rate=self.cfg.centre_rate_at(step), offsets=self.cfg.offsets_at(step),
                           mask_id=self.tok.mask_id, random_ids=self.random_ids, generator=generator)

    def loss(self, ids, attn, labels, bf16: bool):
        """Mean cross-entropy (nats) over the labelled positions; the last layer's queries and feed-forward and the
        MLM head run on those positions only (``families.bert.states_at``)."""
        import torch

        from .families.bert import states_at

        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bf16):
            rows, cols = torch.nonzero(labels != -100, as_tuple=True)
            logits = self.model.cls(states_at(self.model.bert, ids, attn, rows, cols))
        return torch.nn.functional.cross_entropy(logits.float(), labels[rows, cols])


def lr_factor(cfg: PretrainConfig, step: int) -> float:
    """Learning-rate multiplier at ``step``: linear warm-up over ``warmup_steps``, then linear decay to 0."""
    if step < cfg.warmup_steps:
        return (step + 1) / max(1, cfg.warmup_steps)
    return max(0.0, (cfg.steps - step) / max(1, cfg.steps - cfg.warmup_steps))


def heldout_loss(run: _Run, batches, bf16: bool) -> float:
    """Mean masked-token cross-entropy (nats per masked token) of ``run``'s model on fixed masked held-out batches."""
    import torch

    run.model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for ids, attn, labels in batches:
            n = int((labels != -100).sum())
            total += float(run.loss(ids, attn, labels, bf16)) * n
            count += n
    run.model.train()
    return total / max(count, 1)


def _eval_batches(run: _Run, windows: Sequence[str], batch_size: int):
    """Held-out windows encoded and masked once with a fixed generator (the final masking of ``run.cfg``)."""
    import torch

    ids, attn = encode_windows(windows, run.tok, run.cfg.max_positions)
    gen = torch.Generator().manual_seed(run.cfg.data_seed + 7)
    out = []
    for i in range(0, len(ids), batch_size):
        masked, labels = run.mask(ids[i:i + batch_size], attn[i:i + batch_size], run.cfg.steps, gen)
        out.append((masked.to(run.device), attn[i:i + batch_size].to(run.device), labels.to(run.device)))
    return out


def train(cfg: PretrainConfig, *, models_dir=None, corpus=None, progress: bool = True, log=print,
          device: str = "auto") -> Path:
    """Train ``cfg`` (or reuse the cached model) and return the finished model folder.

    One pass over ``steps * batch_size`` windows of the training part of the corpus (:func:`split_for`), each
    batch masked afresh with the run's seeded generator; AdamW (no decay on biases and LayerNorm), linear warm-up
    and decay, bf16 autocast where supported. Every ``eval_steps`` the held-out loss (:func:`heldout_loss`, on
    ``n_eval_windows`` fixed masked windows of the held-out blocks) is logged beside the training loss. Snapshots
    (:func:`snapshot_steps`; step 0 = the initialisation) are saved into the model folder. A checkpoint (model,
    optimiser, schedule, generator, history) is written atomically every ``save_steps``; an interrupted run
    with the same cache key resumes from it and ends with the same weights as an uninterrupted one.
    """
    import torch

    from .models import default_models_dir, pick_device, save_model
    from .tokenization import load_tokenizer

    models_dir = Path(models_dir or default_models_dir())
    corpus_sha = corpus_fingerprint(corpus)
    key = pretrain_cache_key(cfg, corpus_sha, device=device)
    hit = read_folder_entry(models_dir / cfg.name, MANIFEST, key)
    if hit is not None:
        log(f"[{cfg.name}] cached: {hit}")
        return hit
    dev = pick_device(device)
    if dev.type not in ("cpu", "cuda"):
        dev = torch.device("cpu")
    bf16 = use_bf16(cfg, dev)
    work = models_dir / ".work" / f"{cfg.name}-{key.key[:12]}"
    work.mkdir(parents=True, exist_ok=True)
    records = corpus_records(corpus)
    tok_dir = work / "tokenizer"
    if tok_dir.exists():
        tokenizer = load_tokenizer(tok_dir)
    else:
        train_records, _ = split_for(cfg, records)
        tokenizer = make_tokenizer(cfg.scheme, cfg.k, corpus=acgt_pieces([r.sequence for r in train_records]),
                                   vocab_size=cfg.bpe_vocab_size)
        tokenizer.save_pretrained(tok_dir)
    ids, attn = encode_windows(sample_training_windows(cfg, records), tokenizer, cfg.max_positions)
    run = _Run(cfg, tokenizer, dev)
    evals = _eval_batches(run, sample_heldout_windows(cfg, records, cfg.n_eval_windows), cfg.batch_size)
    snaps = snapshot_steps(cfg)
    ckpt = work / "checkpoint.pt"
    history: list[dict] = []
    resumed = None
    if ckpt.exists():
        try:
            history = run.load(ckpt)
            resumed = f"step-{run.step}"
        except Exception as exc:  # a damaged checkpoint is never used: start over
            log(f"[{cfg.name}] checkpoint {ckpt} unreadable ({exc}); starting over")
            run = _Run(cfg, tokenizer, dev)
            history = []
    log(f"[{cfg.name}] {'resuming from ' + resumed if resumed else 'training'}: {cfg.steps} steps x "
        f"{cfg.batch_size} windows x {cfg.window_nt} nt, {tokenizer.description}, {cfg.masking} masking, "
        f"device {dev}, bf16={bf16}")
    from tqdm.auto import tqdm

    run.model.train()
    t0 = time.time()
    window_loss, window_n, grad_norm = 0.0, 0, float("nan")
    bar = tqdm(total=cfg.steps, initial=run.step, desc=cfg.name, unit="step", disable=not progress, leave=False)
    while run.step <= cfg.steps:
        step = run.step
        if step in snaps and not (work / SNAPSHOTS / f"step-{step}").exists():
            save_model(run.model, tokenizer, work / SNAPSHOTS / f"step-{step}")
        if step % cfg.eval_steps == 0 or step == cfg.steps:
            history.append({"step": step, "heldout_loss": heldout_loss(run, evals, bf16)})
        if step == cfg.steps:
            break
        lo = step * cfg.batch_size
        masked, labels = run.mask(ids[lo:lo + cfg.batch_size], attn[lo:lo + cfg.batch_size], step, run.gen)
        loss = run.loss(masked.to(dev), attn[lo:lo + cfg.batch_size].to(dev), labels.to(dev), bf16)
        loss.backward()
        grad_norm = float(torch.nn.utils.clip_grad_norm_(run.model.parameters(), 1.0))
        run.opt.step()
        run.sched.step()
        run.opt.zero_grad(set_to_none=True)
        run.step += 1
        window_loss += float(loss.detach())
        window_n += 1
        if run.step % cfg.logging_steps == 0 or run.step == cfg.steps:
            history.append({"step": run.step, "loss": window_loss / window_n, "learning_rate": run.sched.get_last_lr()[0],
                            "grad_norm": grad_norm})
            window_loss, window_n = 0.0, 0
        if run.step % cfg.save_steps == 0 and run.step < cfg.steps:
            run.save(ckpt, history)
        bar.update(1)
    bar.close()
    wall = time.time() - t0
    train_rows = [h for h in history if "loss" in h]
    curve = "step,loss,heldout_loss,learning_rate,grad_norm\n" + "".join(
        f"{h['step']},{h.get('loss', '')},{h.get('heldout_loss', '')},{h.get('learning_rate', '')},{h.get('grad_norm', '')}\n"
        for h in sorted(history, key=lambda h: (h["step"], "loss" in h)))
    heldout = [h["heldout_loss"] for h in history if "heldout_loss" in h]
    non_embedding = sum(p.numel() for n, p in run.model.named_parameters() if "word_embeddings" not in n
                        and "decoder" not in n and "cls.predictions.bias" not in n)
    manifest = {
        "cache": key.header(), "config": cfg.to_dict(), "corpus_sha256": corpus_sha,
        "nucleotides_seen": cfg.nucleotides_seen, "tokenizer": tokenizer.description,
        "parameters": sum(p.numel() for p in run.model.parameters()), "non_embedding_parameters": non_embedding,
        "tokens_seen": int(attn[: cfg.steps * cfg.batch_size].sum()),
        "wall_time_s": round(wall, 1), "resumed_from": resumed, "device": str(dev), "bf16": bool(bf16),
        "torch_threads": int(torch.get_num_threads()),
        "final_loss": train_rows[-1]["loss"] if train_rows else None,
        "final_heldout_loss": heldout[-1] if heldout else None,
        "snapshot_steps": snaps, "versions": package_versions(), "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    save_model(run.model, tokenizer, models_dir / cfg.name, card=model_card(cfg, manifest),
               extra={MANIFEST: manifest}, files={"loss_curve.csv": curve},
               subfolders={SNAPSHOTS: work / SNAPSHOTS} if snaps else None)
    shutil.rmtree(work, ignore_errors=True)
    log(f"[{cfg.name}] done in {wall:.0f} s, final loss {manifest['final_loss']}, held-out {manifest['final_heldout_loss']}")
    return models_dir / cfg.name


def masking_text(cfg: PretrainConfig) -> str:
    """How ``cfg`` masks, in words (e.g. "dnabert: 6-token spans, centre rate 0.0250")."""
    if cfg.masking == "randommask":
        return (f"randommask: spans widening from {cfg.span_at(0)} to {cfg.span_length} tokens in {int(cfg.k) + 1} "
                f"stages, {cfg.mask_rate:.0%} of tokens")
    if cfg.span_length > 1:
        return f"{cfg.masking}: {cfg.span_length}-token spans, centre rate {cfg.centre_rate:.4f}"
    return f"{cfg.masking}: {cfg.mask_rate:.0%} of tokens"


def model_card(cfg: PretrainConfig, m: dict) -> str:
    """README.md of a zoo model: data, recipe, budget, wall time, device, final loss."""
    return f"""# {cfg.name}

A small BERT masked language model pre-trained by `dnalm_utils.pretraining` for the book
*Word identity or sequence context?*. Not a reproduction of DNABERT's weights: a matched, small model.

| | |
|---|---|
| tokenization | {m['tokenizer']} |
| masking | {masking_text(cfg)}; 80 % [MASK], 10 % random, 10 % unchanged |
| embedding init | {cfg.embedding_init} |
| architecture | BertForMaskedLM, {cfg.layers} layers, hidden {cfg.hidden}, {cfg.heads} heads, intermediate {cfg.intermediate}, {m['parameters']:,} parameters |
| data | pre-training corpus sha256 `{m['corpus_sha256'][:16]}...` less {cfg.heldout_fraction:.0%} held out in {cfg.heldout_block_nt:,}-nt blocks (data seed {cfg.data_seed}) |
| budget | {cfg.steps} steps x {cfg.batch_size} windows x {cfg.window_nt} nt = {m['nucleotides_seen']:,} nt seen ({m['tokens_seen']:,} tokens) |
| optimiser | AdamW lr {cfg.learning_rate}, {cfg.warmup_steps} warm-up steps, linear decay, betas (0.9, {cfg.adam_beta2}), eps {cfg.adam_epsilon}, weight decay {cfg.weight_decay}, gradient clipping 1.0, dropout {cfg.dropout} |
| seed | {cfg.seed} (initialisation and masking); data seed {cfg.data_seed} |
| device | {m['device']}, bf16 {m['bf16']} |
| wall time | {m['wall_time_s']} s{' (resumed from ' + m['resumed_from'] + ')' if m['resumed_from'] else ''} |
| final loss | training {m['final_loss']} nats (last logged steps); held-out {m['final_heldout_loss']} nats |

Load it with `dnalm_utils.models.load_model("{cfg.name}")`. `loss_curve.csv` holds the training and held-out
loss by step; `{SNAPSHOTS}/step-N` the weights at step N (step 0 = initialisation); `{MANIFEST}` the full recipe
and its cache key.
"""


def train_job(cfg: PretrainConfig, models_dir=None, corpus=None, device: str = "auto") -> tuple[Path, list[str]]:
    """:func:`train` of one config where an executor's worker runs it (no progress bar): (model folder, the log
    lines it wrote), so that the caller can print a worker's log once its model is done."""
    lines: list[str] = []
    folder = train(cfg, models_dir=models_dir, corpus=corpus, progress=False, device=device,
                   log=lambda *parts, **_: lines.append(" ".join(str(p) for p in parts)))
    return folder, lines


def train_many(jobs: Sequence[tuple[PretrainConfig, object]], *, models_dir=None, progress: bool = True, log=print,
               device: str = "auto", executor=None) -> dict[str, Path]:
    """Train (or reuse) every (config, corpus) of ``jobs``; returns config name -> model folder, in job order.

    ``executor``: None trains one after another here (progress bars, live log); a ``concurrent.futures.Executor``
    (``grid_executors.make_executor("processes:2")``: two single-threaded workers on a 2-core machine; the default
    zoo's 7 arms trained in 650 s that way against 921 s one after another on two threads) trains one model per
    worker, longest budget first, and prints each worker's log when its model is done. A model's weights depend on its config, corpus, device and torch
    thread count (the order of float reductions), which its manifest records; the cache key does not include
    the thread count, so a cached model is reused whichever way it was trained."""
    from tqdm.auto import tqdm

    jobs = list(jobs)
    names = [cfg.name for cfg, _ in jobs]
    if len(set(names)) != len(names):
        raise ParameterError(f"train_many: config names must be unique (each is a model folder); got {names}.")
    out: dict[str, Path] = {}
    if executor is None:
        for cfg, corpus in tqdm(jobs, desc="model zoo", unit="model", disable=not progress):
            out[cfg.name] = train(cfg, models_dir=models_dir, corpus=corpus, progress=progress, log=log, device=device)
        return out
    order = sorted(jobs, key=lambda job: -job[0].nucleotides_seen)  # longest budget first
    futures = [(cfg.name, executor.submit(train_job, cfg, models_dir, corpus, device)) for cfg, corpus in order]
    for name, future in tqdm(futures, desc="model zoo", unit="model", disable=not progress):
        folder, lines = future.result()
        for line in lines:
            log(line)
        out[name] = folder
    return {name: out[name] for name in names}


def train_zoo(names: Sequence[str] = tuple(ZOO), *, models_dir=None, corpus=None, progress: bool = True, log=print,
              device: str = "auto", executor=None, **overrides) -> dict[str, Path]:
    """Train (or reuse) every named zoo model (arms or ``<arm>_seed<N>`` replicates) on ``corpus`` (a FASTA path;
    default the bundled corpus) with shared ``overrides``; returns name -> model folder. ``executor``: see
    :func:`train_many` (None: one after another, here)."""
    return train_many([(zoo_config(name, **overrides), corpus) for name in names], models_dir=models_dir,
                      progress=progress, log=log, device=device, executor=executor)


def arms_left_out(names: Sequence[str]) -> list[str]:
    """Zoo arms (:data:`ZOO`) that none of ``names`` trains: what a run's pages must say they leave out."""
    present = {split_seeded_name(n)[0] for n in names}
    return [a for a in ZOO if a not in present]


def left_out_sentence(names: Sequence[str], trained: Sequence[str] | None = None) -> str:
    """One sentence for a chapter's page on which zoo arms its run analyses and which it leaves out, e.g. "This
    run analyses 5 of the zoo's 11 arms: overlap6, .... It leaves out overlap4 and overlap5, which chapter 2
    trained in this build and other chapters analyse; and overlap6_token, ..., which chapter 2 trains under
    ``params/extended.yml``." ``trained``: the models chapter 2 trained in this build (its gate table; seeded
    names count for their arm), None when unknown (the left-out arms are then only named). A run of models
    outside the zoo only (local folders, hub ids) names those and says nothing of the zoo."""
    names = [str(n) for n in names]
    arms = [n for n in names if is_zoo_name(n)]
    others = [n for n in names if not is_zoo_name(n)]
    other_text = f"{len(others)} model{'s' if len(others) != 1 else ''} from outside the zoo: {', '.join(others)}"
    if not arms:
        return f"This run analyses {other_text}."
    text = f"This run analyses {len(arms)} of the zoo's {len(ZOO)} arms: {', '.join(arms)}"
    if others:
        text += f"; and {other_text}"
    left = arms_left_out(arms)
    if not left:
        return text + "."
    if trained is None:
        return text + f". It leaves out {', '.join(left)}."
    built = {split_seeded_name(str(t))[0] for t in trained}
    here, elsewhere = [a for a in left if a in built], [a for a in left if a not in built]
    parts = ([f"{', '.join(here)}, which chapter 2 trained in this build and other chapters analyse"] if here else []) + (
        [f"{', '.join(elsewhere)}, which chapter 2 trains under `params/extended.yml`"] if elsewhere else [])
    return text + ". It leaves out " + "; and ".join(parts) + "."


def model_sources(names: Sequence[str], *, models_dir=None, device: str = "auto", log=print) -> dict[str, str]:
    """name -> what to pass to ``models.load_model(..., models_dir=models_dir)`` for the models a chapter analyses.

    A zoo name whose folder exists in ``models_dir`` is used as it is (whatever recipe trained it, e.g. the
    smoke profile's small models); a zoo name without a folder is trained with the default recipe first
    (minutes on a CPU); anything else (a local folder or a hub id) is passed through unchanged.
    """
    from .models import default_models_dir

    zoo_dir = Path(models_dir) if models_dir else default_models_dir()
    if isinstance(names, str):
        names = [names]
    out = {}
    for name in names:
        name = str(name)
        if is_zoo_name(name) and not (zoo_dir / name / "config.json").exists():
            log(f"{name}: not in {zoo_dir}; pre-training it with the default recipe")
            train(zoo_config(name), models_dir=zoo_dir, log=log, device=device)
            out[name] = name
        elif is_zoo_name(name):
            out[name] = name
        else:
            out[Path(name).name or name] = name
    return out


def recipe_table(configs: dict[str, PretrainConfig], folders: dict[str, Path], corpus=None):
    """One row per model: tokenization, vocabulary, masking, embedding and position init, mean tokens per training window
    (measured with the model's own tokenizer on 256 training windows), architecture and budget."""
    import pandas as pd

    from .tokenization import load_tokenizer

    probe = sample_training_windows(next(iter(configs.values())), corpus_records(corpus), n=256)
    rows = []
    for name, cfg in configs.items():
        tok = load_tokenizer(folders[name])
        rows.append({"model": name, "tokenization": tok.description, "vocabulary (with special tokens)": tok.vocab_size,
                     "masking": masking_text(cfg),
                     "embedding init": cfg.embedding_init, "position init": cfg.position_init,
                     "tokens per window": float(np.mean([len(tok.encode(w)) for w in probe])),
                     "layers x hidden": f"{cfg.layers} x {cfg.hidden}", "windows per step": cfg.batch_size, "steps": cfg.steps,
                     "nucleotides seen": cfg.nucleotides_seen})
    return pd.DataFrame(rows)


def zoo_manifests(folders: dict[str, Path]):
    """One row per trained model from its manifest: tokenizer, vocabulary, parameters, wall time, device, final loss."""
    import pandas as pd

    rows = []
    for name, folder in folders.items():
        m = json.loads((Path(folder) / MANIFEST).read_text())
        vocab = json.loads((Path(folder) / "config.json").read_text())["vocab_size"]
        rows.append({"model": name, "tokenizer": m["tokenizer"], "vocabulary": vocab, "parameters": m["parameters"],
                     "wall time (s)": m["wall_time_s"], "device": m["device"], "bf16": m["bf16"],
                     "torch threads": m.get("torch_threads"), "final loss": m["final_loss"], "nucleotides seen": m["nucleotides_seen"],
                     "non-embedding parameters": m.get("non_embedding_parameters"),
                     "final held-out loss": m.get("final_heldout_loss")})
    return pd.DataFrame(rows)


def nucleotides_per_step(folder) -> int:
    """Nucleotides one optimiser step of the model in ``folder`` trains on (batch_size x window_nt of its recipe,
    read from its manifest): what turns a step into nucleotides seen, the axis on which arms with different
    windows per step (:data:`STEP_SPLIT`) compare."""
    path = Path(folder) / MANIFEST
    try:
        config = json.loads(path.read_text())["config"]
        return int(config["batch_size"]) * int(config["window_nt"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ModelNotAvailableError(f"{path}: cannot read the recipe's batch_size and window_nt ({err}); train the model "
                                   "again with pretraining.train.") from err


def load_loss_curves(folders: dict[str, Path]):
    """Tidy DataFrame (model, step, nucleotides_seen, loss, heldout_loss, ...) from each model folder's loss_curve.csv;
    ``nucleotides_seen`` = nucleotides trained on by that step (:func:`nucleotides_per_step`)."""
    import pandas as pd

    frames = []
    for name, f in folders.items():
        curve = pd.read_csv(Path(f) / "loss_curve.csv")
        curve.insert(1, "nucleotides_seen", curve.step * nucleotides_per_step(f))
        frames.append(curve.assign(model=name))
    return pd.concat(frames, ignore_index=True)


def main(argv=None) -> int:
    """``python -m dnalm_utils.pretraining NAME [--set key=value ...]`` (works under torchrun)."""
    ap = argparse.ArgumentParser(description="Pre-train one zoo model (or a custom recipe) with caching and resume.")
    ap.add_argument("name", help=f"zoo model ({', '.join(ZOO)}) or a new name with --set scheme=...")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a PretrainConfig field")
    ap.add_argument("--models-dir", default=None)
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--device", default="auto", help="auto (CUDA if present), cuda or cpu")
    args = ap.parse_args(argv)
    import yaml

    overrides = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise ParameterError(f"--set {item!r}: write KEY=VALUE.")
        overrides[key] = yaml.safe_load(value)
    cfg = zoo_config(args.name, **overrides) if args.name in ZOO else PretrainConfig(name=args.name, **overrides)
    train(cfg, models_dir=args.models_dir, progress=not args.no_progress, device=args.device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
