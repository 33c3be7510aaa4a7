"""Pre-train the book's model zoo: matched small BERTs that differ only in tokenization.

Every model has the same architecture (``BertForMaskedLM``; layers, width, heads and position table fixed
by :class:`PretrainConfig`) and the same budget: it sees **the same nucleotide windows** (``window_nt`` nt
each, sampled once from the pre-training corpus with one seed, reverse-complemented at random) in the same
order, ``batch_size`` windows per step for ``steps`` steps. The number of nucleotides seen is therefore
identical (steps x batch_size x window_nt); the number of *tokens* is not, since a 6-mer tokenizer packs a
window into about a sixth of the tokens of an overlapping one, which also makes its steps cheaper.

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
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from .cache import CacheKey, make_key, read_folder_entry
from .corpus import acgt_pieces, corpus_fingerprint, corpus_records
from .errors import ParameterError
from .io import atomic_write_text, package_versions
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
    masking: str = "auto"  # auto | dnabert (k-token spans) | token (independent tokens) | spanN (spans of N tokens)
    mask_rate: float = 0.15  # share of tokens masked (dnabert / spans: centre rate = mask_rate / span length)
    embedding_init: str = "nucleotide_sum"  # nucleotide_sum (row = sum of per-position letter vectors) | random (DNABERT)
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
    seed: int = 0
    precision: str = "auto"  # auto (bf16 autocast where supported) | fp32
    logging_steps: int = 25
    save_steps: int = 250

    def __post_init__(self):
        if self.scheme not in ("overlapping", "nonoverlapping", "nucleotide", "bpe"):
            raise ParameterError(f"model {self.name!r}: scheme={self.scheme!r}; use overlapping, nonoverlapping, nucleotide or bpe.")
        if self.masking == "auto":
            self.masking = "dnabert" if self.scheme == "overlapping" else "token"
        if self.masking not in ("dnabert", "token") and not (self.masking.startswith("span") and self.masking[4:].isdigit()):
            raise ParameterError(f"model {self.name!r}: masking={self.masking!r}; use auto, dnabert, token or spanN (e.g. span6).")
        if self.masking == "dnabert" and self.scheme != "overlapping":
            raise ParameterError(f"model {self.name!r}: DNABERT span masking needs overlapping k-mers.")
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
        """Tokens per masked span: k for DNABERT masking, N for spanN, 1 for token masking."""
        if self.masking == "dnabert":
            return int(self.k)
        if self.masking.startswith("span"):
            return int(self.masking[4:])
        return 1

    @property
    def offsets(self) -> list[int]:
        if self.masking == "dnabert":
            return dnabert_offsets(int(self.k))
        return dnabert_offsets(self.span_length) if self.span_length > 1 else []

    @property
    def centre_rate(self) -> float:
        """Probability that a token is a mask centre (DNABERT: 0.15 / 6 = 0.025 for k = 6)."""
        return self.mask_rate / self.span_length

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


#: The default zoo: one model per tokenization, plus DNABERT's exact recipe for 6-mers as a control. Every
#: model but ``overlap6_dnabert`` departs from DNABERT in one named way: token embeddings start as sums of
#: per-position letter vectors (``embedding_init="nucleotide_sum"``), without which 4**k unrelated k-mer rows
#: take far longer than this CPU budget to learn. The masking is each family's own.
ZOO: dict[str, dict] = {
    "overlap4": dict(scheme="overlapping", k=4),
    "overlap5": dict(scheme="overlapping", k=5),
    "overlap6": dict(scheme="overlapping", k=6),
    "overlap6_dnabert": dict(scheme="overlapping", k=6, embedding_init="random"),
    "nonoverlap6": dict(scheme="nonoverlapping", k=6),
    "nucleotide": dict(scheme="nucleotide"),
    "bpe": dict(scheme="bpe", bpe_vocab_size=4096),
}


def zoo_config(name: str, **overrides) -> PretrainConfig:
    """The zoo recipe ``name`` with shared settings overridden (e.g. steps=50 for a smoke run)."""
    if name not in ZOO:
        raise ParameterError(f"unknown zoo model {name!r}; the zoo has {', '.join(ZOO)}.")
    return PretrainConfig(name=name, **{**ZOO[name], **overrides})


# ------------------------------------------------------------------------------------------------
# Data: the same windows for every model
# ------------------------------------------------------------------------------------------------
def sample_training_windows(cfg: PretrainConfig, records, *, n: int | None = None) -> list[str]:
    """``steps * batch_size`` windows of ``window_nt`` ACGT-only nt, seeded: identical for every model that
    shares steps, batch size, window length and seed, whatever its tokenization."""
    from .genome import Genome, sample_windows

    n = n or cfg.steps * cfg.batch_size
    wins = sample_windows(Genome.from_records(records), n, cfg.window_nt, seed=cfg.seed,
                          reverse_complement=_STRANDS[cfg.reverse_complement])
    return [w.sequence for w in wins]


class WindowDataset:
    """Torch map-style dataset: item i = the framed tokens of window i (``[CLS] tokens [SEP]`` for the zoo's
    BERTs) as a 1-D LongTensor (no padding)."""

    def __init__(self, windows: Sequence[str], tokenizer: DNATokenizer, max_positions: int):
        self.windows = windows
        self.tokenizer = tokenizer
        need = max(len(tokenizer.encode(w)) for w in windows[:64]) + tokenizer.n_framing
        if need > max_positions:
            raise ParameterError(
                f"windows of {len(windows[0])} nt need about {need} token positions with {tokenizer.description}, "
                f"more than max_positions={max_positions}; use shorter windows."
            )

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int) -> dict:
        import torch

        return {"input_ids": torch.from_numpy(self.tokenizer.encode_ids(self.windows[i], add_special_tokens=True))}


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


class MaskingCollator:
    """Pads a list of dataset items to (batch, tokens) and applies :func:`mask_tokens` for ``cfg``."""

    def __init__(self, tokenizer: DNATokenizer, cfg: PretrainConfig):
        import torch

        self._tok = tokenizer  # not ".tokenizer": the Trainer would take it for a processing class to save
        self.cfg = cfg
        self.random_ids = torch.from_numpy(np.flatnonzero(~tokenizer.is_special)).long()

    def __call__(self, items: list[dict]) -> dict:
        import torch

        ids, attn = (torch.from_numpy(a) for a in self._tok.pad([it["input_ids"] for it in items]))
        special = torch.from_numpy(self._tok.is_special)[ids] | (attn == 0)
        masked, labels = mask_tokens(ids, special, centre_rate=self.cfg.centre_rate, offsets=self.cfg.offsets,
                                     mask_id=self._tok.mask_id, random_ids=self.random_ids)
        return {"input_ids": masked, "attention_mask": attn, "labels": labels}


# ------------------------------------------------------------------------------------------------
# Model
# ------------------------------------------------------------------------------------------------
def _masked_positions_class():
    """BertForMaskedLM whose training forward runs the MLM head on the masked positions only.

    The head (transform + a hidden x vocabulary decoder) dominates the cost of a small model with a 4,101-token
    vocabulary, and only about 15 % of positions carry a label; the loss is the same cross-entropy. Without
    labels it is the ordinary BertForMaskedLM forward. Weights and module layout are BertForMaskedLM's.
    """
    import torch
    from transformers import BertForMaskedLM
    from transformers.modeling_outputs import MaskedLMOutput

    class MaskedPositionsBertForMaskedLM(BertForMaskedLM):
        def forward(self, input_ids=None, attention_mask=None, labels=None, **kwargs):
            if labels is None:
                return super().forward(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            chosen = labels != -100
            logits = self.cls(hidden[chosen])
            loss = torch.nn.functional.cross_entropy(logits.float(), labels[chosen])
            return MaskedLMOutput(loss=loss, logits=logits)

    return MaskedPositionsBertForMaskedLM


def as_plain_bert(model):
    """A plain BertForMaskedLM with ``model``'s config and weights (what the zoo saves and loads)."""
    from transformers import BertForMaskedLM

    plain = BertForMaskedLM(model.config)
    plain.load_state_dict(model.state_dict())
    plain.config.architectures = ["BertForMaskedLM"]
    return plain


def build_model(cfg: PretrainConfig, tokenizer: DNATokenizer, *, masked_positions_only: bool = True):
    """A freshly initialised BertForMaskedLM for ``cfg`` (seeded), with the chosen embedding initialisation;
    ``masked_positions_only`` gives the training variant that runs the MLM head on masked positions only."""
    import torch
    from transformers import BertConfig, BertForMaskedLM, set_seed

    set_seed(cfg.seed)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=cfg.hidden, num_hidden_layers=cfg.layers,
        num_attention_heads=cfg.heads, intermediate_size=cfg.intermediate, max_position_embeddings=cfg.max_positions,
        pad_token_id=tokenizer.pad_id, architectures=["BertForMaskedLM"],
    )
    model = (_masked_positions_class() if masked_positions_only else BertForMaskedLM)(config)
    if cfg.embedding_init == "nucleotide_sum":
        init_embeddings_from_letters(model, tokenizer, seed=cfg.seed)
    return model


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
    """Device type a run trains on: "cuda" when ``device`` picks CUDA, else "cpu" (as in :func:`_device_args`)."""
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


def _device_args(cfg: PretrainConfig, device: str = "auto") -> dict:
    """use_cpu / bf16 for the Trainer: CUDA when present (unless device="cpu"), bf16 where supported."""
    import torch

    from .models import pick_device

    cuda = pick_device(device).type == "cuda"
    bf16 = cfg.precision == "auto" and (not cuda or torch.cuda.is_bf16_supported())
    return {"use_cpu": not cuda, "bf16": bf16}


def _world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def _rank() -> int:
    return int(os.environ.get("RANK", "0"))


def training_arguments(cfg: PretrainConfig, output_dir: Path, *, progress: bool = True, fast: bool = True,
                       device: str = "auto"):
    """TrainingArguments for ``cfg``. ``fast=False`` gives the plain-Trainer reference (fp32, default optimiser)."""
    from transformers import TrainingArguments

    world = _world_size()
    if cfg.batch_size % world:
        raise ParameterError(f"batch_size={cfg.batch_size} must be divisible by the number of processes ({world}).")
    kwargs = dict(
        output_dir=str(output_dir), max_steps=cfg.steps, per_device_train_batch_size=cfg.batch_size // world,
        learning_rate=cfg.learning_rate, warmup_steps=cfg.warmup_steps, weight_decay=cfg.weight_decay,
        adam_beta2=cfg.adam_beta2, adam_epsilon=cfg.adam_epsilon, lr_scheduler_type="linear",
        logging_steps=cfg.logging_steps, save_steps=cfg.save_steps, save_total_limit=2, seed=cfg.seed,
        data_seed=cfg.seed, report_to=[], disable_tqdm=not progress, dataloader_num_workers=0,
        dataloader_pin_memory=False, remove_unused_columns=False,
        ddp_backend=("gloo" if _device_args(cfg, device)["use_cpu"] else "nccl") if world > 1 else None,
    )
    if fast:
        kwargs.update(_device_args(cfg, device))
        kwargs["optim"] = "adamw_torch_fused"
    else:
        import torch

        kwargs["use_cpu"] = not torch.cuda.is_available()
    return TrainingArguments(**kwargs)


def _last_checkpoint(ckpt_dir: Path) -> Path | None:
    ckpts = sorted(ckpt_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]) if p.name.split("-")[-1].isdigit() else -1)
    for ck in reversed(ckpts):  # a checkpoint cut off while being written lacks trainer_state.json
        if (ck / "trainer_state.json").exists():
            return ck
    return None


def train(cfg: PretrainConfig, *, models_dir=None, corpus=None, progress: bool = True, log=print,
          device: str = "auto") -> Path:
    """Train ``cfg`` (or reuse the cached model) and return the finished model folder.

    Resumes from the last complete Trainer checkpoint of an interrupted run with the same cache key.
    Works unchanged under ``torchrun --nproc_per_node=N`` (only rank 0 writes the final folder).
    """
    import torch
    from transformers import Trainer

    from .models import default_models_dir, save_model
    from .tokenization import load_tokenizer

    models_dir = Path(models_dir or default_models_dir())
    corpus_sha = corpus_fingerprint(corpus)
    key = pretrain_cache_key(cfg, corpus_sha, device=device)
    hit = read_folder_entry(models_dir / cfg.name, MANIFEST, key)
    if hit is not None:
        log(f"[{cfg.name}] cached: {hit}")
        return hit
    work = models_dir / ".work" / f"{cfg.name}-{key.key[:12]}"
    ckpt_dir = work / "checkpoints"
    records = corpus_records(corpus)
    windows = sample_training_windows(cfg, records)
    tok_dir = work / "tokenizer"
    if tok_dir.exists():
        tokenizer = load_tokenizer(tok_dir)
    else:
        seqs = [r.sequence for r in records]
        tokenizer = make_tokenizer(cfg.scheme, cfg.k, corpus=acgt_pieces(seqs), vocab_size=cfg.bpe_vocab_size)
        if _rank() == 0:
            tokenizer.save_pretrained(tok_dir)
    model = build_model(cfg, tokenizer)
    args = training_arguments(cfg, ckpt_dir, progress=progress, device=device)
    trainer = Trainer(model=model, args=args, train_dataset=WindowDataset(windows, tokenizer, cfg.max_positions),
                      data_collator=MaskingCollator(tokenizer, cfg))
    resume = _last_checkpoint(ckpt_dir)
    log(f"[{cfg.name}] {'resuming from ' + resume.name if resume else 'training'}: {cfg.steps} steps x "
        f"{cfg.batch_size} windows x {cfg.window_nt} nt, {tokenizer.description}, {cfg.masking} masking, "
        f"device {args.device}, bf16={args.bf16}")
    t0 = time.time()
    result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    wall = time.time() - t0
    if _rank() == 0:
        history = [h for h in trainer.state.log_history if "loss" in h]
        curve = "step,loss,learning_rate,grad_norm\n" + "".join(
            f"{h['step']},{h['loss']},{h.get('learning_rate', '')},{h.get('grad_norm', '')}\n" for h in history)
        manifest = {
            "cache": key.header(), "config": cfg.to_dict(), "corpus_sha256": corpus_sha,
            "nucleotides_seen": cfg.nucleotides_seen, "tokenizer": tokenizer.description,
            "parameters": sum(p.numel() for p in model.parameters()),
            "wall_time_s": round(wall, 1), "resumed_from": resume.name if resume else None,
            "device": str(args.device), "world_size": _world_size(), "bf16": bool(args.bf16),
            "final_loss": history[-1]["loss"] if history else None,
            "train_loss_mean": result.training_loss, "versions": package_versions(),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        save_model(as_plain_bert(trainer.model), tokenizer, models_dir / cfg.name, card=model_card(cfg, manifest),
                   extra={MANIFEST: manifest}, files={"loss_curve.csv": curve})
        shutil.rmtree(work, ignore_errors=True)
        log(f"[{cfg.name}] done in {wall:.0f} s, final loss {manifest['final_loss']}")
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
    return models_dir / cfg.name


def model_card(cfg: PretrainConfig, m: dict) -> str:
    """README.md of a zoo model: data, recipe, budget, wall time, device, final loss."""
    return f"""# {cfg.name}

A small BERT masked language model pre-trained by `dnalm_utils.pretraining` for the book
*Word identity or sequence context?*. Not a reproduction of DNABERT's weights: a matched, small model.

| | |
|---|---|
| tokenization | {m['tokenizer']} |
| masking | {cfg.masking} ({'spans of ' + str(cfg.span_length) + ' tokens, centre rate ' + format(cfg.centre_rate, '.4f') if cfg.span_length > 1 else format(cfg.mask_rate, '.0%') + ' of tokens'}; 80 % [MASK], 10 % random, 10 % unchanged) |
| embedding init | {cfg.embedding_init} |
| architecture | BertForMaskedLM, {cfg.layers} layers, hidden {cfg.hidden}, {cfg.heads} heads, intermediate {cfg.intermediate}, {m['parameters']:,} parameters |
| data | bundled pre-training corpus (EMBOSS human entries), sha256 `{m['corpus_sha256'][:16]}...`; never the held-out chr22 slice |
| budget | {cfg.steps} steps x {cfg.batch_size} windows x {cfg.window_nt} nt = {m['nucleotides_seen']:,} nt seen |
| optimiser | AdamW lr {cfg.learning_rate}, {cfg.warmup_steps} warm-up steps, linear decay, betas (0.9, {cfg.adam_beta2}), eps {cfg.adam_epsilon}, weight decay {cfg.weight_decay} |
| seed | {cfg.seed} |
| device | {m['device']} x {m['world_size']}, bf16 {m['bf16']} |
| wall time | {m['wall_time_s']} s{' (resumed from ' + m['resumed_from'] + ')' if m['resumed_from'] else ''} |
| final training loss | {m['final_loss']} nats (last logged step) |

Load it with `dnalm_utils.models.load_model("{cfg.name}")`. `loss_curve.csv` holds the training loss by step;
`{MANIFEST}` the full recipe and its cache key.
"""


def train_zoo(names: Sequence[str] = tuple(ZOO), *, models_dir=None, progress: bool = True, log=print,
              device: str = "auto", **overrides) -> dict[str, Path]:
    """Train (or reuse) every named zoo model with shared ``overrides``; returns name -> model folder."""
    from tqdm.auto import tqdm

    out = {}
    for name in tqdm(list(names), desc="model zoo", unit="model", disable=not progress):
        out[name] = train(zoo_config(name, **overrides), models_dir=models_dir, progress=progress, log=log, device=device)
    return out


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
        if name in ZOO and not (zoo_dir / name / "config.json").exists():
            log(f"{name}: not in {zoo_dir}; pre-training it with the default recipe")
            train(zoo_config(name), models_dir=zoo_dir, log=log, device=device)
            out[name] = name
        elif name in ZOO:
            out[name] = name
        else:
            out[Path(name).name or name] = name
    return out


def recipe_table(configs: dict[str, PretrainConfig], folders: dict[str, Path], corpus=None):
    """One row per model: tokenization, vocabulary, masking, embedding init, mean tokens per training window
    (measured with the model's own tokenizer on 256 training windows), architecture and budget."""
    import pandas as pd

    from .tokenization import load_tokenizer

    probe = sample_training_windows(next(iter(configs.values())), corpus_records(corpus), n=256)
    rows = []
    for name, cfg in configs.items():
        tok = load_tokenizer(folders[name])
        rows.append({"model": name, "tokenization": tok.description, "vocabulary": tok.vocab_size,
                     "masking": (f"{cfg.masking}, {cfg.span_length}-token spans" if cfg.span_length > 1
                                 else f"{cfg.masking}, {cfg.mask_rate:.0%}"),
                     "embedding init": cfg.embedding_init,
                     "tokens per window": float(np.mean([len(tok.encode(w)) for w in probe])),
                     "layers x hidden": f"{cfg.layers} x {cfg.hidden}", "steps": cfg.steps,
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
                     "final loss": m["final_loss"], "nucleotides seen": m["nucleotides_seen"]})
    return pd.DataFrame(rows)


def load_loss_curves(folders: dict[str, Path]):
    """Tidy DataFrame (model, step, loss) from each model folder's loss_curve.csv."""
    import pandas as pd

    frames = [pd.read_csv(Path(f) / "loss_curve.csv").assign(model=name) for name, f in folders.items()]
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
