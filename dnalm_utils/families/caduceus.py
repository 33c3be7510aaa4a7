"""Caduceus (``kuleshov-group/caduceus-{ps,ph}_seqlen-131k_d_model-256_n_layer-16``): a masked, character-level,
bidirectional Mamba (BiMamba) language model; the "ps" models are also reverse-complement equivariant (RCPS).

Its layers are Mamba selective-state-space scans whose fast kernels come from the ``mamba-ssm`` and
``causal-conv1d`` packages, which need an NVIDIA GPU with CUDA; the folder's own code (``modeling_caduceus.py``)
imports them at load time. The package therefore loads Caduceus through transformers' remote code
(``AutoModelForMaskedLM``, ``trust_remote_code=True`` required) on a CUDA machine with mamba-ssm, and refuses
elsewhere with the install command. The tokenizer is implemented natively, so framing and ids are testable
without a GPU.

Published layout (hub ``kuleshov-group/caduceus-ps_seqlen-131k_d_model-256_n_layer-16``, ``...caduceus-ph_...``):

* files: config.json, configuration_caduceus.py, modeling_caduceus.py, modeling_rcps.py,
  tokenization_caduceus.py, tokenizer_config.json, special_tokens_map.json, model.safetensors;
* config.json: ``model_type: caduceus``, ``architectures: [CaduceusForMaskedLM]``, ``auto_map`` ->
  ``configuration_caduceus.CaduceusConfig``, ``modeling_caduceus.{Caduceus, CaduceusForMaskedLM,
  CaduceusForSequenceClassification}``; ``d_model`` 256, ``n_layer`` 16, ``vocab_size`` 16 (12 tokens padded
  to ``pad_vocab_size_multiple`` 8 -- Caduceus writes the padded size back into its config),
  ``complement_map`` (A 7 <-> T 10, C 8 <-> G 9, every other id to itself), ``rcps`` (true for ps),
  ``bidirectional`` true, ``bidirectional_strategy: add``, ``bidirectional_weight_tie`` true, ``rms_norm``,
  ``fused_add_norm`` true, ``residual_in_fp32`` false, ``norm_epsilon``, ``ssm_cfg`` (d_state 16, d_conv 4,
  expand 2, dt_rank auto, bias false, conv_bias true, ...);
* tokenizer (``tokenization_caduceus.CaduceusTokenizer``, adapted from HyenaDNA's): ``[CLS]=0 [SEP]=1 [BOS]=2
  [MASK]=3 [PAD]=4 [RESERVED]=5 [UNK]=6``, ``A C G T N`` = 7..11, text upper-cased, one token per character;
  ``build_inputs_with_special_tokens`` appends ``[SEP]`` only; tokenizer_config.json: ``model_max_length``
  131072, ``padding_side: left``;
* weights (ps): ``caduceus.backbone.embeddings.word_embeddings.{embedding.weight (16, d), complement_map}``; per
  layer ``caduceus.backbone.layers.N.norm.weight`` and ``...layers.N.mixer.submodule.mamba_{fwd,rev}.{A_log, D,
  in_proj.weight, conv1d.weight, conv1d.bias, x_proj.weight, dt_proj.weight, dt_proj.bias, out_proj.weight}``
  -- mamba_rev's in_proj / out_proj are tied to mamba_fwd's and absent from the file;
  ``caduceus.backbone.norm_f.weight``; ``lm_head.complement_map`` (``lm_head.lm_head.weight`` is tied to the
  embedding and absent). ph: no ``.submodule`` / ``.embedding`` level, ``lm_head.weight`` tied and absent.

Hidden states are Caduceus's own (``output_hidden_states``): index 0 = the embedding output, 1..L-1 = each
block's mixer output (Mamba blocks keep the residual stream apart, so these are not the residual stream),
L = the final normed state the MLM head reads. For ps models the hidden size is 2 d_model (forward and
reverse-complement halves).
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

from ..adapters import (
    EncoderOutput,
    LoadOptions,
    LoadReport,
    ModelAdapter,
    _tied_aliases,
    auto_map_files,
    check_load_report,
    pooled_classifier,
    read_state_dict,
    register,
)
from ..errors import ModelNotAvailableError, ParameterError, VocabularyMismatchError
from .hyena import SPECIALS, CharacterTokenizer, padded_vocab_size, read_character_tokenizer

INSTALL = "pip install mamba-ssm causal-conv1d"
AUTO_MAP = {
    "AutoConfig": "configuration_caduceus.CaduceusConfig",
    "AutoModel": "modeling_caduceus.Caduceus",
    "AutoModelForMaskedLM": "modeling_caduceus.CaduceusForMaskedLM",
    "AutoModelForSequenceClassification": "modeling_caduceus.CaduceusForSequenceClassification",
}
CODE_FILES = ("configuration_caduceus.py", "modeling_caduceus.py", "modeling_rcps.py", "tokenization_caduceus.py")


class CaduceusTokenizer(CharacterTokenizer):
    """Caduceus's character tokenizer (tokenization_caduceus.CaduceusTokenizer): HyenaDNA's ids and framing
    (``tokens [SEP]``), text upper-cased."""

    family_name = "Caduceus"


class CaduceusAdapter(ModelAdapter):
    family = "caduceus"
    objective = "masked"
    positions = "none"
    capabilities = frozenset({"masked_logprobs", "hidden_states", "classifier", "input_embeddings"})
    missing_reasons = {
        "attention": "Caduceus has no attention: its mixing is a bidirectional Mamba state-space scan",
        "layer_readout": "Caduceus's intermediate hidden states are mixer outputs without the residual stream, so "
                         "the MLM head cannot read them (no logit lens)",
    }
    published = ("kuleshov-group/caduceus-ps_seqlen-131k_d_model-256_n_layer-16",
                 "kuleshov-group/caduceus-ph_seqlen-131k_d_model-256_n_layer-16")

    @property
    def _caduceus(self):
        model = self.model
        return model.caduceus if hasattr(model, "caduceus") else model.backbone  # PooledClassifier: .backbone

    @property
    def n_layers(self) -> int:
        return int(self.config.n_layer)

    @property
    def hidden_size(self) -> int:
        return int(self.config.d_model) * (2 if getattr(self.config, "rcps", False) else 1)

    @property
    def max_tokens(self) -> int | None:
        return None  # a state-space scan: no position table (trained on 131k-token windows)

    def _encoder(self, ids, att, *, hidden_states, attentions):
        # Caduceus takes no attention mask; its own tokenizer pads on the left. Rows of unequal length are
        # therefore influenced by [PAD] through the reverse scan -- score windows of equal length.
        out = self._caduceus(input_ids=ids, output_hidden_states=hidden_states, return_dict=True)
        states = None
        if hidden_states:
            states = list(out.hidden_states)
            if len(states) == self.n_layers:  # non-fused add+norm: the final normed state is not appended
                states.append(out.last_hidden_state)
            states = tuple(states)
        return EncoderOutput(out.last_hidden_state, states, None)

    def _head(self, h):
        return self.model.lm_head(h)[..., : self.tokenizer.vocab_size]

    def input_embeddings(self):
        self.require("input_embeddings", "static embeddings")
        return self.model.get_input_embeddings().weight[: self.tokenizer.vocab_size]

    def classifier(self, num_labels: int, *, init: str = "pretrained", seed: int = 0) -> ModelAdapter:
        """Backbone + mean pooling (CaduceusForSequenceClassification's default pooling) + a linear layer."""
        import copy

        import torch

        if init != "pretrained":
            raise ParameterError(f"init={init!r}: Caduceus fine-tuning here starts from the pre-trained weights only.")
        backbone = copy.deepcopy(self._caduceus)
        torch.manual_seed(seed)
        model = pooled_classifier(backbone, lambda bb, ids, att: bb(input_ids=ids, return_dict=True).last_hidden_state,
                                  self.hidden_size, num_labels, pooling="mean")
        model.to(device=self.device, dtype=torch.float32).train()
        return type(self)(model, self.tokenizer, name=self.name, source=self.source, path=self.path,
                          device=self.device, dtype=torch.float32, head="classification", config=self.config,
                          load_report=self.load_report)


def matches(config: dict, folder: Path) -> bool:
    if config.get("model_type") == "caduceus":
        return True
    archs = config.get("architectures") or []
    return any(str(a).startswith("Caduceus") for a in archs)


def check_vocab(tokenizer: CharacterTokenizer, config: dict, folder) -> None:
    """Caduceus stores the PADDED vocabulary size (16 for 12 tokens) in config.json: accept either size."""
    size = int(config.get("vocab_size", tokenizer.vocab_size))
    multiple = int(config.get("pad_vocab_size_multiple", 8) or 1)
    if size not in (tokenizer.vocab_size, padded_vocab_size(tokenizer.vocab_size, multiple)):
        raise VocabularyMismatchError(
            f"{folder}/config.json has vocab_size={size}, but Caduceus's character tokenizer has "
            f"{tokenizer.vocab_size} tokens ({padded_vocab_size(tokenizer.vocab_size, multiple)} padded to a multiple "
            f"of {multiple}); the config does not belong to this tokenizer.")


def runtime_problem() -> str | None:
    """Why Caduceus cannot run here (no CUDA GPU, mamba-ssm not importable), or None."""
    problems = []
    try:
        import torch

        if not torch.cuda.is_available():
            problems.append("no CUDA GPU is available")
    except ImportError:  # pragma: no cover
        problems.append("torch is not installed")
    if importlib.util.find_spec("mamba_ssm") is None:
        problems.append("the mamba-ssm package is not installed")
    return "; ".join(problems) or None


def load(folder: Path, config: dict, options: LoadOptions) -> CaduceusAdapter:
    folder = Path(folder)
    tokenizer = read_character_tokenizer(folder, CaduceusTokenizer)
    check_vocab(tokenizer, config, folder)
    problem = runtime_problem()
    if problem:
        raise ModelNotAvailableError(
            f"cannot load Caduceus from {folder}: {problem}. Caduceus's layers are Mamba scans whose kernels come "
            f"from the mamba-ssm and causal-conv1d packages, which need an NVIDIA GPU with CUDA; on a CUDA machine "
            f"run `{INSTALL}` and load again with trust_remote_code=True. Its tokenizer works without them "
            "(dnalm_utils.families.caduceus.read_character_tokenizer).")
    if not options.trust_remote_code:
        files = auto_map_files(config) or list(CODE_FILES)
        raise ModelNotAvailableError(
            f"{folder} is loaded with its own code ({', '.join(files)}, which also imports modeling_rcps.py); this "
            "package runs it only with trust_remote_code=True. Read those files, then call "
            "models.load_model(..., trust_remote_code=True).")
    if options.head not in ("mlm", "base"):
        raise ParameterError(f"head={options.head!r} is not available for Caduceus; use 'mlm' or 'base'.")
    return _load_remote(folder, tokenizer, options)


def _load_remote(folder: Path, tokenizer, options: LoadOptions) -> CaduceusAdapter:  # pragma: no cover - CUDA only
    import torch
    from transformers import AutoModelForMaskedLM, set_seed

    set_seed(options.seed)
    model, info = AutoModelForMaskedLM.from_pretrained(str(folder), trust_remote_code=True, local_files_only=True,
                                                       output_loading_info=True, torch_dtype=torch.float32)
    n_ckpt = len(read_state_dict(folder))
    aliases = _tied_aliases(model)
    own = model.state_dict()
    missing = [n for n in info.get("missing_keys", []) if not any(a in own and a not in info.get("missing_keys", [])
                                                                  for a in aliases.get(n, ()))]
    mismatched = [tuple(m) if len(m) == 3 else (m[0], (), ()) for m in info.get("mismatched_keys", [])]
    report = LoadReport(n_ckpt, len(own), missing, list(info.get("unexpected_keys", [])), mismatched)
    check_load_report(report, folder=folder)
    report.notes.append("loaded with the folder's own code (trust_remote_code=True)")
    return CaduceusAdapter(model.eval(), tokenizer, name=options.name, source=options.source, path=folder,
                           device=torch.device("cpu"), dtype=torch.float32, head=options.head, config=model.config,
                           load_report=report)


# ------------------------------------------------------------------------------------------------
# A tiny random checkpoint in the published layout
# ------------------------------------------------------------------------------------------------
PLACEHOLDER = ('"""Placeholder written by dnalm_utils.families.caduceus.make_replica: the published repository '
               'ships Caduceus\'s own {what} here. dnalm_utils never imports this file."""\n'
               'raise ImportError("replica placeholder: not Caduceus\'s code")\n')


def replica_state_dict(*, rcps: bool, layers: int, d_model: int, d_state: int, d_conv: int, expand: int,
                       vocab_size: int, complement: list, seed: int) -> dict:
    """Random tensors with the published names and shapes (mamba-ssm v1 Mamba: A_log, D, in_proj, conv1d,
    x_proj, dt_proj, out_proj; bias=False, conv_bias=True), tied tensors left out as in the hub files."""
    import torch

    g = torch.Generator().manual_seed(seed)
    d_inner = expand * d_model
    dt_rank = math.ceil(d_model / 16)

    def rnd(*shape):
        return 0.1 * torch.randn(*shape, generator=g)

    cmap = torch.tensor(complement, dtype=torch.long)
    pre = "caduceus.backbone."
    state = {}
    if rcps:
        state[pre + "embeddings.word_embeddings.embedding.weight"] = rnd(vocab_size, d_model)
        state[pre + "embeddings.word_embeddings.complement_map"] = cmap.clone()
    else:
        state[pre + "embeddings.word_embeddings.weight"] = rnd(vocab_size, d_model)
    for i in range(layers):
        mixer = f"{pre}layers.{i}.mixer." + ("submodule." if rcps else "")
        for direction in ("mamba_fwd", "mamba_rev"):
            m = mixer + direction + "."
            state[m + "A_log"] = torch.log(torch.arange(1, d_state + 1, dtype=torch.float32)).repeat(d_inner, 1)
            state[m + "D"] = torch.ones(d_inner)
            if direction == "mamba_fwd":  # mamba_rev's in_proj / out_proj are tied to these
                state[m + "in_proj.weight"] = rnd(2 * d_inner, d_model)
                state[m + "out_proj.weight"] = rnd(d_model, d_inner)
            state[m + "conv1d.weight"] = rnd(d_inner, 1, d_conv)
            state[m + "conv1d.bias"] = rnd(d_inner)
            state[m + "x_proj.weight"] = rnd(dt_rank + 2 * d_state, d_inner)
            state[m + "dt_proj.weight"] = rnd(d_inner, dt_rank)
            state[m + "dt_proj.bias"] = rnd(d_inner)
        state[f"{pre}layers.{i}.norm.weight"] = 1 + rnd(d_model)
    state[pre + "norm_f.weight"] = 1 + rnd(d_model)
    if rcps:
        state["lm_head.complement_map"] = cmap.clone()  # lm_head.lm_head.weight: tied to the embedding
    return {k: v.contiguous() for k, v in state.items()}


def make_replica(folder, *, rcps: bool = True, layers: int = 2, d_model: int = 16, d_state: int = 4,
                 seed: int = 0) -> Path:
    """Write a tiny random Caduceus folder in the published layout: config.json (the published keys),
    tokenizer_config.json, special_tokens_map.json, placeholders for the four Python files the hub repository
    ships (they raise if imported), and model.safetensors with the published tensor names (ps layout when
    ``rcps``, ph layout otherwise; tied tensors absent as in the hub files)."""
    from safetensors.torch import save_file

    from ..io import atomic_path

    vocab = len(SPECIALS) + 5
    size = padded_vocab_size(vocab, 8)
    complement = list(range(size))
    for a, b in ((7, 10), (8, 9)):  # A <-> T, C <-> G
        complement[a], complement[b] = b, a
    ssm_cfg = {"bias": False, "conv_bias": True, "d_conv": 4, "d_state": d_state, "dt_init": "random",
               "dt_init_floor": 0.0001, "dt_max": 0.1, "dt_min": 0.001, "dt_rank": "auto", "dt_scale": 1.0,
               "expand": 2, "use_fast_path": True}
    config = {
        "architectures": ["CaduceusForMaskedLM"], "auto_map": AUTO_MAP, "bidirectional": True,
        "bidirectional_strategy": "add", "bidirectional_weight_tie": True,
        "complement_map": {str(i): c for i, c in enumerate(complement)}, "d_model": d_model,
        "fused_add_norm": True,
        "initializer_cfg": {"initializer_range": 0.02, "n_residuals_per_layer": 1, "rescale_prenorm_residual": True},
        "model_type": "caduceus", "n_layer": layers, "norm_epsilon": 1e-05, "pad_vocab_size_multiple": 8,
        "rcps": rcps, "residual_in_fp32": False, "rms_norm": True, "ssm_cfg": ssm_cfg, "torch_dtype": "float32",
        "transformers_version": "4.38.1", "vocab_size": size,
    }
    decoder = {str(i): {"content": t, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False,
                        "special": True} for i, t in enumerate(SPECIALS) if t != "[RESERVED]"}
    tok_config = {
        "add_prefix_space": False, "added_tokens_decoder": decoder,
        "auto_map": {"AutoTokenizer": ["tokenization_caduceus.CaduceusTokenizer", None]},
        "bos_token": "[BOS]", "clean_up_tokenization_spaces": True, "cls_token": "[CLS]", "eos_token": "[SEP]",
        "mask_token": "[MASK]", "model_max_length": 131072, "pad_token": "[PAD]", "padding_side": "left",
        "sep_token": "[SEP]", "tokenizer_class": "CaduceusTokenizer", "unk_token": "[UNK]",
    }
    special_map = {"bos_token": "[BOS]", "cls_token": "[CLS]", "eos_token": "[SEP]", "mask_token": "[MASK]",
                   "pad_token": "[PAD]", "sep_token": "[SEP]", "unk_token": "[UNK]"}
    state = replica_state_dict(rcps=rcps, layers=layers, d_model=d_model, d_state=d_state, d_conv=4, expand=2,
                               vocab_size=size, complement=complement, seed=seed)
    folder = Path(folder)
    with atomic_path(folder) as tmp:
        tmp.mkdir(parents=True, exist_ok=True)
        (tmp / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        (tmp / "tokenizer_config.json").write_text(json.dumps(tok_config, indent=2, sort_keys=True) + "\n")
        (tmp / "special_tokens_map.json").write_text(json.dumps(special_map, indent=2, sort_keys=True) + "\n")
        for fname in CODE_FILES:
            (tmp / fname).write_text(PLACEHOLDER.format(what=fname))
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
    return folder


register("caduceus", CaduceusAdapter, matches, load, priority=10)

__all__ = ["CaduceusAdapter", "CaduceusTokenizer", "matches", "load", "make_replica", "runtime_problem",
           "check_vocab", "replica_state_dict", "INSTALL"]
