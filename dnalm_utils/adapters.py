"""One model interface: a per-family adapter between the analyses and a DNA language model.

Every probe of the book talks to a :class:`ModelAdapter` (what ``models.load_model`` returns), never to
``.bert``, ``.esm``, a head attribute or a model class by name. An adapter knows, for its family:

* **framing**: the special tokens around a sequence (``tokenizer.frame``), the padding, and the real length
  limit (:attr:`ModelAdapter.max_tokens`: a position table for absolute positions, none for rotary / ALiBi /
  convolutions);
* **spans**: each token's nucleotides (``tokenizer.encode(seq).spans``);
* **capabilities** (:data:`CAPABILITIES`): masked-token log-probabilities at any layer (logit lens),
  next-token log-probabilities (causal models), hidden states ``(layer, token, dim)`` with index 0 = the
  embedding output, attention weights, and a classification model for fine-tuning.

A probe declares what it needs with :meth:`ModelAdapter.require`; a model that lacks it raises
:class:`NotApplicable` ("not applicable to <model>: <reason>"), which a chapter reports instead of a number.

Loading is strict: every tensor of the checkpoint must be used and every tensor of the model must come from
the checkpoint, except the task head being replaced (:func:`check_load_report`); otherwise the load is refused
with the tensors named. A family is chosen from ``config.json`` (``model_type``, ``architectures``,
``auto_map``, family-specific keys) by the registry (:func:`register`, :func:`family_for`); the families the
project implements itself live in ``dnalm_utils/families/``.
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ClassVar, Sequence

import numpy as np

from .errors import ModelNotAvailableError, ParameterError

#: What a family can do; probes name these in :meth:`ModelAdapter.require`.
CAPABILITIES = (
    "masked_logprobs",      # log-probabilities of masked tokens (MLM head)
    "layer_readout",        # the MLM / LM head applied to every layer's hidden state (logit lens)
    "next_token_logprobs",  # causal next-token log-probabilities
    "hidden_states",        # (layer, token, dim), index 0 = embedding output
    "attention",            # attention weights per layer and head
    "classifier",           # a sequence-classification model for fine-tuning
    "input_embeddings",     # the static token-embedding table
)
HEADS = ("mlm", "lm", "base", "classification")


class NotApplicable(ParameterError):
    """A probe needs a capability the model's family does not have; the message says which and why."""


# ------------------------------------------------------------------------------------------------
# Load report: no silent partial load
# ------------------------------------------------------------------------------------------------
@dataclass
class LoadReport:
    """What happened to each tensor when a checkpoint was loaded into a model.

    missing: model tensors the checkpoint lacked (left at their initial values); unexpected: checkpoint tensors
    the model did not use; mismatched: (name, checkpoint shape, model shape). ``allowed`` holds the names that
    belong to a head being replaced (e.g. a fresh classifier) and are therefore fine.
    """

    checkpoint_tensors: int
    model_tensors: int
    missing: list = field(default_factory=list)
    unexpected: list = field(default_factory=list)
    mismatched: list = field(default_factory=list)
    allowed: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    @property
    def loaded(self) -> int:
        """Checkpoint tensors that went into the model."""
        skipped = {n for n in self.unexpected} | {m[0] for m in self.mismatched}
        return self.checkpoint_tensors - len(skipped)

    def summary(self) -> str:
        return (f"{self.loaded} of {self.checkpoint_tensors} checkpoint tensors loaded into {self.model_tensors} "
                f"model tensors" + (f"; fresh head tensors: {len(self.allowed)}" if self.allowed else ""))


def check_load_report(report: LoadReport, *, folder, head_patterns: Sequence[str] = (),
                      ignorable_patterns: Sequence[str] = ()) -> LoadReport:
    """Refuse a partial load: raise ModelNotAvailableError naming every non-head tensor that is missing,
    unexpected or of another shape. ``head_patterns``: regexes of tensors that may be missing (a new head) or
    unused (the head being replaced); ``ignorable_patterns``: regexes of checkpoint tensors that carry no
    weights (e.g. legacy ``position_ids`` buffers). Returns the report with ``allowed`` filled in."""
    heads = [re.compile(p) for p in head_patterns]
    ignorable = [re.compile(p) for p in ignorable_patterns]

    def ok(name, pats):
        return any(p.search(name) for p in pats)

    bad_missing = [n for n in report.missing if not ok(n, heads)]
    bad_unexpected = [n for n in report.unexpected if not ok(n, heads) and not ok(n, ignorable)]
    bad_shape = [m for m in report.mismatched if not ok(m[0], heads)]
    report.allowed = sorted({n for n in report.missing + report.unexpected if ok(n, heads)})
    if bad_missing or bad_unexpected or bad_shape:
        parts = []
        if bad_missing:
            parts.append(f"{len(bad_missing)} model tensors are not in the checkpoint and would stay random "
                         f"({_names(bad_missing)})")
        if bad_unexpected:
            parts.append(f"{len(bad_unexpected)} checkpoint tensors would be ignored ({_names(bad_unexpected)})")
        if bad_shape:
            parts.append(f"{len(bad_shape)} tensors have another shape in the checkpoint than in the model ("
                         + ", ".join(f"{n}: {tuple(a)} vs {tuple(b)}" for n, a, b in bad_shape[:4])
                         + (", ..." if len(bad_shape) > 4 else "") + ")")
        raise ModelNotAvailableError(
            f"refusing to load {folder}: {'; '.join(parts)}. The folder's weights do not fit the architecture its "
            "config.json describes, so the model would be partly random. Check that config.json belongs to these "
            "weights (model family, layer count, hidden size, vocabulary); see README, 'Supported models'."
        )
    return report


def _names(names: Sequence[str], n: int = 6) -> str:
    return ", ".join(names[:n]) + (f", ... ({len(names) - n} more)" if len(names) > n else "")


# ------------------------------------------------------------------------------------------------
# Checkpoint files
# ------------------------------------------------------------------------------------------------
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def weight_files(folder: Path) -> list[Path]:
    """The checkpoint's weight files: model.safetensors / pytorch_model.bin, or the shards an index names."""
    folder = Path(folder)
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index = folder / index_name
        if index.exists():
            try:
                shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            except (json.JSONDecodeError, KeyError) as exc:
                raise ModelNotAvailableError(f"{index} is not a valid weight index ({exc}); re-download the model.") from None
            missing = [s for s in shards if not (folder / s).is_file()]
            if missing:
                raise ModelNotAvailableError(f"{index} names weight shards that are missing: {_names(missing)}; "
                                             "re-download the model folder completely.")
            return [folder / s for s in shards]
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            return [folder / name]
    raise ModelNotAvailableError(
        f"{folder} holds no weights (no {' or '.join(WEIGHT_FILES)}); the download is incomplete or this is a "
        "tokenizer-only folder. Download the whole model folder (e.g. `hf download <id> --local-dir <folder>`)."
    )


def read_state_dict(folder: Path) -> dict:
    """Every tensor of the checkpoint in ``folder`` (CPU), with a clear error for truncated or corrupt files."""
    import torch

    state = {}
    for f in weight_files(folder):
        try:
            if f.suffix == ".safetensors":
                from safetensors.torch import load_file

                part = load_file(str(f))
            else:
                part = torch.load(str(f), map_location="cpu", weights_only=True)
                if not isinstance(part, dict):
                    raise TypeError(f"holds a {type(part).__name__}, not a state dict")
        except Exception as exc:  # truncated download, wrong format, pickle of code, ...
            raise ModelNotAvailableError(
                f"cannot read the weights in {f}: {_load_error(exc, f)}. The file is truncated or corrupted; "
                "download it again (compare its size and sha256 with the hub's)."
            ) from None
        state.update(part)
    return state


def _load_error(exc: Exception, path: Path) -> str:
    """One line saying why a weight file could not be read (never advice to unpickle unsafely)."""
    try:
        size = path.stat().st_size
    except OSError:
        size = None
    if size == 0:
        return "the file is empty (0 bytes)"
    text = str(exc)
    if "Weights only load failed" in text:
        detail = text.split("WeightsUnpickler error:", 1)[-1] if "WeightsUnpickler error:" in text else ""
        detail = next((ln.strip() for ln in detail.splitlines() if ln.strip()), "")
        return ("it is not a plain PyTorch tensor file (the safe loader refused it" + (f": {detail[:120]}" if detail
                else "") + f"; {size} bytes)")
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return f"{type(exc).__name__}" + (f": {line[:200]}" if line else "") + (f" ({size} bytes)" if size else "")


def read_config(folder: Path) -> dict:
    """config.json of a model folder as a dict, with a clear error when it is missing or not JSON."""
    path = Path(folder) / "config.json"
    if not path.exists():
        raise ModelNotAvailableError(f"{folder} has no config.json; it is not a Hugging Face model folder.")
    try:
        cfg = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ModelNotAvailableError(f"{path} is not valid JSON (line {exc.lineno}: {exc.msg}); re-download it.") from None
    if not isinstance(cfg, dict):
        raise ModelNotAvailableError(f"{path} holds a {type(cfg).__name__}, not a JSON object of settings.")
    return cfg


def load_strict(model, folder: Path, *, head_patterns: Sequence[str] = (), ignorable_patterns: Sequence[str] = (),
                rename: Callable[[str], str | None] | None = None) -> LoadReport:
    """Load the checkpoint in ``folder`` into ``model`` (an nn.Module built from the config), refusing a partial
    load (:func:`check_load_report`). ``rename`` maps a checkpoint name to the model's name (None drops it)."""
    import torch

    state = read_state_dict(folder)
    n_ckpt = len(state)
    if rename is not None:
        state = {new: v for k, v in state.items() if (new := rename(k)) is not None}
    own = model.state_dict()
    aliases = _tied_aliases(model)
    missing = [n for n in own if n not in state and not any(a in state for a in aliases.get(n, ()))]
    unexpected = [n for n in state if n not in own]
    mismatched = [(n, tuple(state[n].shape), tuple(own[n].shape)) for n in own if n in state and state[n].shape != own[n].shape]
    report = check_load_report(LoadReport(n_ckpt, len(own), missing, unexpected, mismatched), folder=folder,
                               head_patterns=head_patterns, ignorable_patterns=ignorable_patterns)
    usable = {n: v for n, v in state.items() if n in own and not any(n == m[0] for m in mismatched)}
    with torch.no_grad():
        model.load_state_dict(usable, strict=False)
    return report


def legacy_norm_name(name: str) -> str:
    """A LayerNorm's ``gamma``/``beta`` (checkpoints of old transformers; transformers 5 still saves ESM's so) ->
    ``weight``/``bias``; every other name unchanged."""
    for old, new in ((".gamma", ".weight"), (".beta", ".bias")):
        if name.endswith(old) and ("LayerNorm" in name or "layer_norm" in name):
            return name[: -len(old)] + new
    return name


def _tied_aliases(model) -> dict:
    """name -> other state-dict names sharing the same parameter (tied weights, e.g. decoder = embeddings)."""
    groups: dict = {}
    for name, t in model.state_dict(keep_vars=True).items():
        groups.setdefault((t.data_ptr(), tuple(t.shape)), []).append(name)
    return {n: [a for a in g if a != n] for g in groups.values() if len(g) > 1 for n in g}


# ------------------------------------------------------------------------------------------------
# The adapter
# ------------------------------------------------------------------------------------------------
@dataclass
class EncoderOutput:
    """last_hidden_state: (batch, token, dim); hidden_states: tuple of L+1 (batch, token, dim), index 0 = the
    embedding output (None unless asked); attentions: tuple of L (batch, head, query, key) (None unless asked)."""

    last_hidden_state: object
    hidden_states: tuple | None = None
    attentions: tuple | None = None


class ModelAdapter:
    """A loaded DNA language model behind the one interface the analyses use.

    Attributes: ``model`` (the torch module), ``tokenizer`` (:class:`tokenization.DNATokenizer`, framing set
    for the family), ``name``, ``source`` ("local", "zoo" or "hub"), ``path``, ``device``, ``dtype``,
    ``head`` (one of :data:`HEADS`), ``config`` (the family's config object) and ``load_report``.

    Families override the class attributes and the ``_encoder`` / ``_head`` / ``_final_norm`` hooks:
    ``_encoder(ids, att, hidden_states, attentions) -> EncoderOutput``; ``_head(h)`` maps (..., dim) to
    vocabulary logits; ``_final_norm(h)`` is the norm the last layer's output gets before the head (applied
    to intermediate layers in the logit lens; identity where the last hidden state already has it).
    """

    family: ClassVar[str] = "base"
    #: "masked" (bidirectional, MLM) or "causal" (left-to-right LM)
    objective: ClassVar[str] = "masked"
    #: "absolute" (a position table), "rotary", "alibi" or "none" (convolution / state space)
    positions: ClassVar[str] = "absolute"
    capabilities: ClassVar[frozenset] = frozenset()
    #: why each missing capability is missing (shown in "not applicable" messages)
    missing_reasons: ClassVar[dict] = {}
    #: published ids of the family (README table, error messages)
    published: ClassVar[tuple] = ()

    def __init__(self, model, tokenizer, *, name: str, source: str, path: Path | None, device, dtype, head: str,
                 config=None, load_report: LoadReport | None = None):
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.source = source
        self.path = path
        self.device = device
        self.dtype = dtype
        self.head = head
        self.config = config if config is not None else getattr(model, "config", None)
        self.load_report = load_report

    # --- what the family can do -------------------------------------------------------------------
    def can(self, capability: str) -> bool:
        if capability not in CAPABILITIES:
            raise ParameterError(f"unknown capability {capability!r}; one of {', '.join(CAPABILITIES)}.")
        if capability in ("masked_logprobs", "layer_readout") and self.head != "mlm":
            return False
        if capability == "next_token_logprobs" and self.head != "lm":
            return False
        return capability in self.capabilities

    def why_not(self, capability: str) -> str:
        if capability in ("masked_logprobs", "layer_readout") and self.objective == "causal":
            return f"{self.family} is a causal (left-to-right) model: it has no masked-token head"
        if capability == "next_token_logprobs" and self.objective == "masked":
            return f"{self.family} is a masked (bidirectional) model: it has no next-token head"
        if capability in self.missing_reasons:
            return self.missing_reasons[capability]
        if capability in ("masked_logprobs", "layer_readout") and self.head != "mlm":
            return f"it was loaded with head={self.head!r}; load it with head='mlm'"
        return f"the {self.family} family does not provide {capability.replace('_', ' ')}"

    def require(self, capability: str, probe: str) -> None:
        """Raise :class:`NotApplicable` unless this model has ``capability`` (named for ``probe``)."""
        if not self.can(capability):
            raise NotApplicable(f"{probe} is not applicable to {self.name}: {self.why_not(capability)}.")

    # --- framing and limits -------------------------------------------------------------------------
    @property
    def max_tokens(self) -> int | None:
        """Most tokens one sequence may have (special tokens excluded); None = no position table limits it.
        Default: a position table of ``config.max_position_embeddings`` rows holds the framed sequence."""
        table = getattr(self.config, "max_position_embeddings", None)
        if self.positions != "absolute" or table is None:
            return None
        return int(table) - self.tokenizer.n_framing

    def check_fits(self, n_tokens: int, *, what: str = "a window") -> None:
        """Raise a ParameterError when ``n_tokens`` (no specials) exceed :attr:`max_tokens`."""
        limit = self.max_tokens
        if limit is not None and n_tokens > limit:
            raise ParameterError(
                f"{what} gives {n_tokens} tokens (plus {self.tokenizer.n_framing} special), more than {self.name}'s "
                f"{limit}-token limit ({self.positions} positions); use windows of at most {limit} tokens "
                f"(the window_length parameter)."
            )

    def frame(self, encodings: Sequence[np.ndarray]):
        """(ids, attention) int64 (rows, width) arrays of framed, right-padded rows (tokenizer.frame)."""
        longest = max(len(e) for e in encodings)
        self.check_fits(longest)
        return self.tokenizer.frame(encodings)

    @property
    def body_offset(self) -> int:
        """Column of a sequence's first token in framed input."""
        return self.tokenizer.body_offset

    # --- shape facts --------------------------------------------------------------------------------
    @property
    def n_layers(self) -> int:
        """Number of layers L; hidden states are indexed 0..L (0 = embedding output). Default: the Hugging Face
        config's ``num_hidden_layers``."""
        return int(self.config.num_hidden_layers)

    @property
    def hidden_size(self) -> int:
        """Width of the hidden states. Default: the Hugging Face config's ``hidden_size``."""
        return int(self.config.hidden_size)

    @property
    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    # --- hooks the families implement ------------------------------------------------------------
    def _encoder(self, ids, att, *, hidden_states: bool, attentions: bool) -> EncoderOutput:
        raise NotImplementedError

    def _head(self, h):
        raise NotImplementedError

    def _final_norm(self, h):
        return h

    # --- the calls the analyses make ----------------------------------------------------------------
    def autocast(self, amp: bool = True):
        """bf16 autocast on CPU and bf16-capable CUDA when ``amp``; a no-op otherwise."""
        from .models import autocast

        return autocast(self.device) if amp else contextlib.nullcontext()

    def encode(self, ids, att, *, hidden_states: bool = False, attentions: bool = False) -> EncoderOutput:
        """Run the encoder (no vocabulary head) on (batch, width) tensors already on the device."""
        if hidden_states:
            self.require("hidden_states", "reading hidden states")
        if attentions:
            self.require("attention", "reading attention weights")
        out = self._encoder(ids, att, hidden_states=hidden_states, attentions=attentions)
        if hidden_states and (out.hidden_states is None or len(out.hidden_states) != self.n_layers + 1):
            got = "none" if out.hidden_states is None else len(out.hidden_states)
            raise ParameterError(f"{self.name} returned {got} hidden states, expected {self.n_layers + 1} "
                                 "(embedding output + one per layer).")
        if attentions and (not out.attentions or any(a is None for a in out.attentions)):
            raise ParameterError(
                f"{self.name} returned no attention weights: SDPA / flash attention do not return them; load it "
                "with models.load_model(..., attn_implementation=\"eager\")."
            )
        return out

    def token_logits(self, h, *, layer: int | None = None):
        """Vocabulary logits (..., vocab) of hidden states ``h`` (..., dim) through the model's MLM / LM head.

        ``layer`` (0..L) < L applies the family's final norm first (logit lens); None or L: the last layer."""
        if self.head not in ("mlm", "lm"):
            raise NotApplicable(f"token predictions are not applicable to {self.name}: it was loaded with "
                                f"head={self.head!r}; load it with head='mlm' (masked) or 'lm' (causal).")
        if layer is not None and layer < self.n_layers:
            h = self._final_norm(h)
        return self._head(h)

    def _device_batches(self, input_ids: np.ndarray, attention: np.ndarray, batch_size: int):
        """Yield (lo, ids, attention) per batch of rows: (batch, width) tensors on the model's device."""
        import torch

        for lo in range(0, input_ids.shape[0], batch_size):
            yield (lo, torch.from_numpy(input_ids[lo : lo + batch_size]).to(self.device),
                   torch.from_numpy(attention[lo : lo + batch_size]).to(self.device))

    def _vocab_logprobs(self, logits) -> np.ndarray:
        """float32 log-softmax over the tokenizer's vocabulary (..., vocab) of logits, special tokens at -inf."""
        import torch

        special = torch.from_numpy(self.tokenizer.is_special)
        logits = logits.float().cpu()[..., : special.shape[0]].clone()
        logits[..., special] = float("-inf")
        return torch.log_softmax(logits, dim=-1).numpy()

    def _states_at(self, ids, att, rows, cols):
        """Last-layer states (n, dim) at (rows[i], cols[i]) of a batch (a family may skip the work the other
        positions' last layer would cost)."""
        return self.encode(ids, att).last_hidden_state[rows, cols]

    def _logits_at(self, ids, att, rows, cols):
        """Vocabulary logits (n, vocab) at (rows[i], cols[i]) of a batch; the head runs on those positions only."""
        return self.token_logits(self._states_at(ids, att, rows, cols))

    def classification_logits(self, ids, att):
        """(batch, num_labels) logits of a classification adapter (:meth:`classifier`) on framed (batch, width)
        ids and attention mask already on the device; gradients flow (the training loop calls it)."""
        if self.head != "classification":
            raise ParameterError(f"{self.name} was loaded with head={self.head!r}; build a classifier with "
                                 ".classifier(num_labels) first.")
        return self.model(input_ids=ids, attention_mask=att).logits

    def masked_logprobs(self, input_ids: np.ndarray, attention: np.ndarray, positions: list, batch_size: int,
                        *, amp: bool = True) -> list:
        """Log-probabilities over the vocabulary (special tokens excluded) at ``positions[i]`` (columns of the
        framed input) of row i. input_ids / attention: (rows, width) int arrays (from :meth:`frame`).
        Returns a list of (len(positions[i]), vocab) float32 arrays."""
        import torch

        self.require("masked_logprobs", "masked-token prediction")
        out = []
        self.model.eval()
        with torch.no_grad():
            for lo, ids, att in self._device_batches(input_ids, attention, batch_size):
                pos = positions[lo : lo + batch_size]
                r = torch.from_numpy(np.repeat(np.arange(len(pos)), [len(p) for p in pos])).to(self.device)
                c = torch.from_numpy(np.concatenate(pos).astype(np.int64)).to(self.device)
                with self.autocast(amp):
                    logits = self._logits_at(ids, att, r, c)
                out += np.split(self._vocab_logprobs(logits), np.cumsum([len(p) for p in pos])[:-1])
        return out

    def next_token_logprobs(self, input_ids: np.ndarray, attention: np.ndarray, batch_size: int, *,
                            amp: bool = True) -> np.ndarray:
        """(rows, width, vocab) float32 log-probabilities of the token after each column (causal models;
        special tokens excluded)."""
        import torch

        self.require("next_token_logprobs", "next-token prediction")
        out = []
        self.model.eval()
        with torch.no_grad():
            for _, ids, att in self._device_batches(input_ids, attention, batch_size):
                with self.autocast(amp):
                    logits = self.token_logits(self.encode(ids, att).last_hidden_state)
                out.append(self._vocab_logprobs(logits))
        return np.concatenate(out)

    def input_embeddings(self):
        """The (vocab, dim) token-embedding weight tensor."""
        self.require("input_embeddings", "static embeddings")
        return self.model.get_input_embeddings().weight

    def classifier(self, num_labels: int, *, init: str = "pretrained", seed: int = 0) -> "ModelAdapter":
        """A new adapter (head="classification", float32, training mode) whose model maps framed ids to
        ``num_labels`` logits: ``model(input_ids, attention_mask, labels=None)`` -> ``.loss``, ``.logits``.
        ``init="random"`` re-initialises every weight (seeded): same architecture, no pre-training."""
        raise NotApplicable(f"fine-tuning is not applicable to {self.name}: {self.why_not('classifier')}.")

    # --- summaries ------------------------------------------------------------------------------------
    def describe(self) -> dict:
        """One-row summary: name, family, objective, positions, layers, hidden size, parameters, tokenization."""
        rep = self.load_report
        return {
            "model": self.name, "source": self.source, "family": self.family, "objective": self.objective,
            "positions": self.positions, "layers": self.n_layers, "hidden": self.hidden_size,
            "heads": getattr(self.config, "num_attention_heads", None),
            "parameters": self.n_parameters, "tokenization": self.tokenizer.description,
            "vocab_size": self.tokenizer.vocab_size, "max_tokens": self.max_tokens,
            "tensors_loaded": None if rep is None else f"{rep.loaded}/{rep.checkpoint_tensors}",
            "device": str(self.device), "dtype": str(self.dtype).replace("torch.", ""),
        }

    @property
    def hf_tokenizer(self):
        """The Hugging Face tokenizer with the same ids."""
        return self.tokenizer.to_hf()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}: {self.family}, {self.tokenizer.description}, head={self.head}>"


class ModuleAdapter(ModelAdapter):
    """The interface over a hand-built torch module (tests, teaching, toy models with a known answer).

    ``model(input_ids=..., attention_mask=..., [output_hidden_states=True], [output_attentions=True])`` returns
    an object with ``logits`` (batch, token, vocab) and, where the module has them, ``hidden_states`` / ``attentions``.
    ``objective``: "masked" or "causal"; ``capabilities``: what the module provides (default: token log-probs
    for its objective); ``n_layers`` for modules that return hidden states. The logits serve as the "hidden
    state" the head reads, so the head is the identity."""

    family = "module"
    positions = "none"

    def __init__(self, model, tokenizer, *, objective: str = "masked", capabilities: Sequence[str] | None = None,
                 n_layers: int | None = None, name: str = "module", device=None, missing_reasons: dict | None = None):
        import torch

        if objective not in ("masked", "causal"):
            raise ParameterError(f"objective={objective!r}: use 'masked' or 'causal'.")
        head = "mlm" if objective == "masked" else "lm"
        super().__init__(model, tokenizer, name=name, source="module", path=None,
                         device=device or torch.device("cpu"), dtype=torch.float32, head=head, config=None)
        self.objective = objective
        default = {"masked_logprobs"} if objective == "masked" else {"next_token_logprobs"}
        self.capabilities = frozenset(capabilities if capabilities is not None else default)
        self.missing_reasons = dict(missing_reasons or {})
        self._n_layers = n_layers

    @property
    def n_layers(self) -> int:
        if self._n_layers is None:
            raise NotApplicable(f"{self.name} does not say how many layers it has (n_layers).")
        return self._n_layers

    @property
    def hidden_size(self) -> int:
        return self.tokenizer.vocab_size

    def _encoder(self, ids, att, *, hidden_states, attentions):
        kwargs = {}
        if hidden_states:
            kwargs["output_hidden_states"] = True
        if attentions:
            kwargs["output_attentions"] = True
        out = self.model(input_ids=ids, attention_mask=att, **kwargs)
        return EncoderOutput(getattr(out, "logits", None), getattr(out, "hidden_states", None) if hidden_states else None,
                             getattr(out, "attentions", None) if attentions else None)

    def _head(self, h):
        return h


# ------------------------------------------------------------------------------------------------
# Options every family's loader receives, and a classifier for families without their own
# ------------------------------------------------------------------------------------------------
@dataclass
class LoadOptions:
    """What ``models.load_model`` passes to a family's ``load``: where the folder came from and how to load it.

    head: one of :data:`HEADS`; num_labels: classes for head="classification"; attn_implementation: "eager"
    for attention weights; trust_remote_code: allow a folder's own Python code (``auto_map``) to run;
    on_invalid: "error" or "unk" for k-mers holding N; seed: for freshly initialised heads."""

    name: str
    source: str
    head: str = "mlm"
    num_labels: int | None = None
    attn_implementation: str | None = None
    trust_remote_code: bool = False
    on_invalid: str = "error"
    seed: int = 0


def classifier_output(logits, labels):
    """transformers' SequenceClassifierOutput with the cross-entropy loss when ``labels`` are given."""
    import torch
    from transformers.modeling_outputs import SequenceClassifierOutput

    loss = None if labels is None else torch.nn.functional.cross_entropy(logits.float(), labels)
    return SequenceClassifierOutput(loss=loss, logits=logits)


def pooled_classifier(backbone, encode: Callable, hidden_size: int, num_labels: int, *, pooling: str,
                      dropout: float = 0.1):
    """A classification model for families without one of their own: the family's ``backbone`` module, the
    hidden states pooled (``pooling``: "cls" = the first column, "mean" = mean over attended tokens, "last" =
    the last attended token, for causal models), dropout and one linear layer.

    ``encode(backbone, input_ids, attention_mask) -> (batch, token, dim)``. Call it as
    ``model(input_ids, attention_mask, labels=None)``; it returns ``.loss`` and ``.logits``. State-dict names:
    ``backbone.*`` and ``classifier.*``."""
    import torch

    if pooling not in ("cls", "mean", "last"):
        raise ParameterError(f"pooling={pooling!r}: use 'cls', 'mean' or 'last'.")

    class PooledClassifier(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = backbone
            self.dropout = torch.nn.Dropout(dropout)
            self.classifier = torch.nn.Linear(hidden_size, num_labels)
            self.pooling = pooling

        def forward(self, input_ids, attention_mask=None, labels=None, **_):
            if attention_mask is None:
                attention_mask = torch.ones_like(input_ids)
            h = encode(self.backbone, input_ids, attention_mask)
            if self.pooling == "cls":
                pooled = h[:, 0]
            elif self.pooling == "mean":
                w = attention_mask.to(h.dtype).unsqueeze(-1)
                pooled = (h * w).sum(1) / w.sum(1).clamp(min=1)
            else:
                last = attention_mask.long().sum(1) - 1
                pooled = h[torch.arange(h.shape[0], device=h.device), last]
            return classifier_output(self.classifier(self.dropout(pooled)), labels)

    return PooledClassifier()


# ------------------------------------------------------------------------------------------------
# Which models a probe applies to
# ------------------------------------------------------------------------------------------------
def split_applicable(models, capabilities: str | Sequence[str], probe: str, *,
                     condition: Callable | None = None) -> tuple[dict, list]:
    """(models the probe applies to, one row per model it does not apply to).

    models: name -> adapter; capabilities: what the probe needs (a model qualifies when it has ANY of them);
    condition(adapter) -> None or a reason string, for needs beyond a capability (e.g. "only defined for
    overlapping k-mers"). Rows: {"model", "probe", "reason"}; a chapter shows them as "not applicable"."""
    caps = [capabilities] if isinstance(capabilities, str) else list(capabilities)
    ok, skipped = {}, []
    for name, lm in models.items():
        have = [c for c in caps if lm.can(c)]
        reason = None if have else lm.why_not(caps[0])
        if reason is None and condition is not None:
            reason = condition(lm)
        if reason is None:
            ok[name] = lm
        else:
            skipped.append({"model": name, "probe": probe, "reason": reason})
    return ok, skipped


def not_applicable_text(rows: Sequence[dict]) -> str:
    """Markdown lines "*<probe>* is not applicable to **<model>**: <reason>." ('' when every model qualified)."""
    return "\n".join(f"- *{r['probe']}* is not applicable to **{r['model']}**: {r['reason']}." for r in rows)


# ------------------------------------------------------------------------------------------------
# Registry of families
# ------------------------------------------------------------------------------------------------
@dataclass
class Family:
    """A registered family: its adapter class, how to recognise its config.json, and how to load it.

    matches(config: dict, folder: Path) -> bool; load(folder: Path, config: dict, options: LoadOptions) ->
    ModelAdapter on the CPU in float32 (tokenizer read and framed, weights loaded strictly); ``models.load_model``
    then moves it to the device and dtype.
    ``priority``: higher is tried first (specific families before generic ones)."""

    name: str
    adapter: type
    matches: Callable
    load: Callable
    priority: int = 0


_FAMILIES: list[Family] = []


def register(name: str, adapter: type, matches: Callable, load: Callable, *, priority: int = 0) -> Family:
    """Add a family to the registry (replacing one of the same name)."""
    fam = Family(name, adapter, matches, load, priority)
    _FAMILIES[:] = [f for f in _FAMILIES if f.name != name] + [fam]
    _FAMILIES.sort(key=lambda f: -f.priority)
    return fam


def families() -> list[Family]:
    """Registered families, most specific first."""
    from . import families as _builtin  # noqa: F401  (registers the built-in families)

    return list(_FAMILIES)


def family_for(config: dict, folder: Path) -> Family:
    """The family whose ``matches`` accepts ``config`` (config.json as a dict) of ``folder``."""
    for fam in families():
        if fam.matches(config, folder):
            return fam
    arch = config.get("architectures") or []
    raise ModelNotAvailableError(
        f"{folder}/config.json describes a model this package does not know (model_type="
        f"{config.get('model_type')!r}, architectures={arch}); supported families: "
        f"{', '.join(sorted({f.name for f in families()}))}. A model with its own code (auto_map) loads with "
        "trust_remote_code=True for hidden states only; see README, 'Supported models'."
    )


def auto_map_files(config: dict) -> list[str]:
    """The Python files a config's ``auto_map`` asks transformers to import (custom code)."""
    files = []
    for target in (config.get("auto_map") or {}).values():
        for t in (target if isinstance(target, (list, tuple)) else [target]):
            if isinstance(t, str):
                mod = t.split("--")[-1].rsplit(".", 1)[0]
                files.append(mod + ".py")
    return sorted(set(files))


__all__ = [
    "CAPABILITIES", "HEADS", "NotApplicable", "LoadOptions", "pooled_classifier", "split_applicable", "not_applicable_text", "classifier_output", "LoadReport", "check_load_report", "load_strict", "legacy_norm_name", "read_state_dict",
    "read_config", "weight_files", "EncoderOutput", "ModelAdapter", "ModuleAdapter", "Family", "register", "families", "family_for",
    "auto_map_files",
]
