"""HyenaDNA (``LongSafari/hyenadna-*-seqlen-hf``): a causal, character-level long-convolution language model.

The package runs HyenaDNA with its OWN torch implementation of the published equations (below), so a HyenaDNA
folder loads without ``trust_remote_code``: the folder's ``modeling_hyena.py`` / ``tokenization_hyena.py`` are
never imported or executed. Every tensor of the checkpoint is loaded strictly (``adapters.load_strict``).

Published layout (hub ``LongSafari/hyenadna-{tiny-1k,small-32k,medium-160k,medium-450k,large-1m}-seqlen-hf``):

* files: config.json, configuration_hyena.py, modeling_hyena.py, tokenization_hyena.py, tokenizer_config.json,
  special_tokens_map.json, model.safetensors (float32);
* config.json: ``model_type: hyenadna``; ``auto_map`` -> ``configuration_hyena.HyenaConfig`` and
  ``modeling_hyena.HyenaDNA{Model,ForCausalLM,ForSequenceClassification}``; ``d_model``, ``n_layer``,
  ``d_inner`` (4 d_model), ``vocab_size`` 12, ``pad_vocab_size_multiple`` 8 (embedding and LM head have 16
  rows), ``max_seq_len`` (sequence length + 2, e.g. 1026, 32770, 160002, 450002, 1000002), ``emb_dim`` 5,
  ``filter_order`` 64, ``short_filter_order`` 3, ``hyena_order`` 2, ``num_inner_mlps`` 2,
  ``activation_freq``, ``train_freq``, ``use_bias``, ``layer_norm_epsilon``, ``pad_token_id`` 4,
  ``tie_word_embeddings: false``;
* tokenizer (``tokenization_hyena.HyenaDNATokenizer``, tokenizer_config.json: ``model_max_length`` =
  max_seq_len, ``padding_side: left``): ids ``[CLS]=0 [SEP]=1 [BOS]=2 [MASK]=3 [PAD]=4 [RESERVED]=5 [UNK]=6``,
  then the characters ``A C G T N`` = 7..11; one token per character; ``build_inputs_with_special_tokens``
  appends ``[SEP]`` only (no ``[CLS]``), so a sequence is framed ``tokens [SEP]``;
* weights: ``hyena.backbone.embeddings.word_embeddings.weight`` (16, d); per layer
  ``hyena.backbone.layers.N.{norm1,norm2}.{weight,bias}``, ``mlp.fc1 / mlp.fc2`` (weight, bias),
  ``mixer.in_proj`` (3d, d), ``mixer.out_proj`` (d, d), ``mixer.short_filter`` (depthwise Conv1d, (3d, 1, 3)),
  ``mixer.filter_fn.bias`` (d), ``mixer.filter_fn.pos_emb.{z (1, max_seq_len, emb_dim), t (1, max_seq_len, 1)}``,
  ``mixer.filter_fn.modulation.deltas`` (1, 1, d), ``mixer.filter_fn.implicit_filter.{0,2,4}.{weight,bias}``,
  ``implicit_filter.6.weight`` (d, filter_order, no bias) and ``implicit_filter.1.freq`` (1, filter_order)
  -- the one Sin activation is shared by positions 1, 3, 5 of the filter MLP, and safetensors keeps only the
  first name; ``hyena.backbone.ln_f.{weight,bias}``; ``lm_head.weight`` (16, d), not tied.

Equations (the -hf ``modeling_hyena.py``):

* block (pre-norm): ``r = x; h = mixer(norm1(r)); r = h + r; out = mlp(norm2(r)) + r`` (norm1 / norm2 are
  LayerNorms with eps 1e-5; mlp = fc2(gelu_tanh(fc1)); the backbone's embedding dropout is defined but unused);
  backbone: embeddings -> layers -> ln_f (eps ``layer_norm_epsilon``) -> lm_head;
* Hyena operator (order 2): ``u = in_proj(x)`` (3d channels); a depthwise Conv1d of width 3 with padding 2,
  cut to the first L outputs (causal); split into ``x0, x1, v``; ``v = v * x1``; ``v = causal_conv(v, k) + v *
  bias`` with the long filter ``k``; ``y = out_proj(v * x0)``;
* implicit long filter: ``z = [t, cos(-f w), sin(-f w)]`` (t = linspace(0, 1, max_seq_len), w = 2 pi n /
  max_seq_len, f = linspace(1e-4, bands - 1, bands), bands = (emb_dim - 1) / 2) -> Linear -> sin(freq x) ->
  (Linear -> sin(freq x)) x num_inner_mlps -> Linear(no bias) -> times ``exp(-t |deltas|) + 0.05`` (exponential
  modulation); the long convolution is an FFT of size 2L: ``y_t = sum_{s<=t} k_{t-s} v_s``.

The filters exist for ``max_seq_len`` positions, so a sequence takes at most ``max_seq_len - 1`` tokens plus
its [SEP]. HyenaDNA has no attention mask: the model is causal, so the package's right padding leaves every
real token's output exactly as without padding (HyenaDNA's own tokenizer pads on the left instead).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

from ..adapters import (
    EncoderOutput,
    LoadOptions,
    ModelAdapter,
    load_strict,
    pooled_classifier,
    register,
    weight_files,
)
from ..errors import ModelNotAvailableError, ParameterError, VocabularyMismatchError
from ..tokenization import NucleotideTokenizer

#: HyenaDNA's fixed special tokens, ids 0..6 (tokenization_hyena.py); the characters follow from id 7.
SPECIALS = ("[CLS]", "[SEP]", "[BOS]", "[MASK]", "[PAD]", "[RESERVED]", "[UNK]")
CHARACTERS = ("A", "C", "G", "T", "N")
#: configuration_hyena.HyenaConfig defaults (used for keys a config.json lacks)
CONFIG_DEFAULTS = dict(vocab_size=12, d_model=256, d_inner=None, use_bias=True, train_freq=True, max_seq_len=1024,
                       emb_dim=3, n_layer=12, num_inner_mlps=2, hyena_order=2, short_filter_order=3,
                       filter_order=64, activation_freq=1, embed_dropout=0.1, hyena_dropout=0.0,
                       hyena_filter_dropout=0.0, layer_norm_epsilon=1e-5, initializer_range=0.02,
                       pad_vocab_size_multiple=8)
AUTO_MAP = {
    "AutoConfig": "configuration_hyena.HyenaConfig",
    "AutoModel": "modeling_hyena.HyenaDNAModel",
    "AutoModelForCausalLM": "modeling_hyena.HyenaDNAForCausalLM",
    "AutoModelForSequenceClassification": "modeling_hyena.HyenaDNAForSequenceClassification",
}


# ------------------------------------------------------------------------------------------------
# Tokenizer: HyenaDNA's character tokenizer, natively
# ------------------------------------------------------------------------------------------------
class CharacterTokenizer(NucleotideTokenizer):
    """HyenaDNA's (and Caduceus's) character tokenizer: ``[CLS] [SEP] [BOS] [MASK] [PAD] [RESERVED] [UNK]`` =
    ids 0..6, then one id per character (``A C G T N`` -> 7..11); a sequence is framed ``tokens [SEP]``.

    Differences from the published Python class, both deliberate: lower-case letters are read as upper case
    (HyenaDNA's own tokenizer maps them to [UNK]; Caduceus's upper-cases them too), and characters outside the
    vocabulary are refused with a message instead of becoming [UNK]."""

    family_name = "HyenaDNA"

    def __init__(self, characters=CHARACTERS):
        chars = [str(c) for c in characters]
        if any(len(c) != 1 for c in chars) or not set(CHARACTERS) <= set(chars):
            raise VocabularyMismatchError(
                f"{self.family_name}'s character list {chars} must hold single characters including A, C, G, T and N.")
        super().__init__(list(SPECIALS) + chars)
        self.characters = tuple(chars)
        self.set_framing((), ("sep",))

    @property
    def description(self) -> str:
        return f"single nucleotides ({self.family_name} character tokenizer)"

    def to_hf(self):
        from tokenizers import processors

        hf = super().to_hf()
        sep = self.special_tokens["sep"]
        hf.backend_tokenizer.post_processor = processors.TemplateProcessing(
            single=f"$A {sep}", pair=f"$A {sep} $B {sep}", special_tokens=[(sep, self.sep_id)])
        return hf


def read_character_tokenizer(folder: Path, cls=CharacterTokenizer) -> CharacterTokenizer:
    """The character tokenizer of a HyenaDNA / Caduceus folder from its tokenizer_config.json (``characters``
    when the file lists them, else A C G T N; the special tokens and their ids are fixed in the class)."""
    path = Path(folder) / "tokenizer_config.json"
    characters = CHARACTERS
    if path.exists():
        try:
            cfg = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ModelNotAvailableError(f"{path} is not valid JSON (line {exc.lineno}: {exc.msg}); re-download it.") from None
        if cfg.get("characters"):
            characters = cfg["characters"]
        elif cfg.get("char_ords"):
            characters = [chr(int(i)) for i in cfg["char_ords"]]
    return cls(characters)


def padded_vocab_size(vocab_size: int, multiple: int) -> int:
    """Rows of the embedding / LM head: ``vocab_size`` rounded up to ``pad_vocab_size_multiple``."""
    multiple = int(multiple or 1)
    return int(vocab_size) + (-int(vocab_size)) % multiple


# ------------------------------------------------------------------------------------------------
# The model (torch), module names = the checkpoint's tensor names
# ------------------------------------------------------------------------------------------------
def build_config(config: dict) -> SimpleNamespace:
    """The settings the model needs, from config.json (configuration_hyena defaults for absent keys)."""
    cfg = {**CONFIG_DEFAULTS, **{k: v for k, v in config.items() if k in CONFIG_DEFAULTS}}
    if cfg["d_inner"] is None:
        cfg["d_inner"] = 4 * cfg["d_model"]
    if int(cfg["short_filter_order"]) != 3:
        raise ParameterError(
            f"short_filter_order={cfg['short_filter_order']}: HyenaDNA's code pads its short convolution by 2, which is "
            "causal only for width 3 (the published checkpoints); other widths are not supported.")
    if int(cfg["emb_dim"]) < 3 or int(cfg["emb_dim"]) % 2 == 0:
        raise ParameterError(f"emb_dim={cfg['emb_dim']}: HyenaDNA needs an odd emb_dim >= 3 (time, cosines, sines).")
    cfg["padded_vocab_size"] = padded_vocab_size(cfg["vocab_size"], cfg["pad_vocab_size_multiple"])
    cfg["tie_word_embeddings"] = bool(config.get("tie_word_embeddings", False))
    cfg["model_type"] = "hyenadna"
    return SimpleNamespace(**cfg)


def _torch_modules():
    """The torch classes, built on first use (keeps ``import dnalm_utils`` free of torch)."""
    global _MODULES
    if _MODULES is not None:
        return _MODULES
    import torch
    from torch import nn
    from torch.nn import functional as F

    def fftconv(u, k, D):
        """Causal convolution of u (B, C, L) with k (C, L) through an FFT of size 2L, plus the skip u * D."""
        seqlen = u.shape[-1]
        fft_size = 2 * seqlen
        k_f = torch.fft.rfft(k.to(torch.float32), n=fft_size) / fft_size
        u_f = torch.fft.rfft(u.to(dtype=torch.float32), n=fft_size)
        y = torch.fft.irfft(u_f * k_f, n=fft_size, norm="forward")[..., :seqlen]
        return (y + u * D.unsqueeze(-1)).to(dtype=u.dtype)

    class Sin(nn.Module):
        """sin(freq * x); ``freq`` (1, filter_order) is trained when train_freq."""

        def __init__(self, cfg):
            super().__init__()
            freq = cfg.activation_freq * torch.ones(1, cfg.filter_order)
            if cfg.train_freq:
                self.freq = nn.Parameter(freq)
            else:
                self.register_buffer("freq", freq, persistent=False)

        def forward(self, x):
            return torch.sin(self.freq * x)

    class SharedSin(nn.Module):
        """A slot of the filter MLP that reuses the first Sin's ``freq`` (HyenaDNA shares one activation module,
        so the checkpoint holds ``implicit_filter.1.freq`` only); it has no tensors of its own."""

        def forward(self, x):  # pragma: no cover - HyenaFilter.filter applies the shared Sin itself
            raise RuntimeError("SharedSin is applied by HyenaFilter.filter")

    class PositionalEmbedding(nn.Module):
        def __init__(self, cfg):
            super().__init__()
            L = cfg.max_seq_len
            bands = (cfg.emb_dim - 1) // 2
            t = torch.linspace(0, 1, L)[None, :, None]
            t_rescaled = torch.linspace(0, L - 1, L)[None, :, None]
            w = 2 * math.pi * t_rescaled / L
            f = torch.linspace(1e-4, bands - 1, bands)[None, None]
            self.register_buffer("z", torch.cat([t, torch.cos(-f * w), torch.sin(-f * w)], dim=-1))
            self.register_buffer("t", t)

        def forward(self, L):
            return self.z[:, :L], self.t[:, :L]

    class ExponentialModulation(nn.Module):
        def __init__(self, d_model, fast_decay_pct=0.3, slow_decay_pct=1.5, target=1e-2, shift=0.05):
            super().__init__()
            self.shift = shift
            max_decay = math.log(target) / fast_decay_pct
            min_decay = math.log(target) / slow_decay_pct
            self.register_buffer("deltas", torch.linspace(min_decay, max_decay, d_model)[None, None])

        def forward(self, t, x):
            return x * (torch.exp(-t * self.deltas.abs()) + self.shift)

    class HyenaFilter(nn.Module):
        def __init__(self, cfg):
            super().__init__()
            self.bias = nn.Parameter(torch.randn(cfg.d_model * (cfg.hyena_order - 1)))
            self.pos_emb = PositionalEmbedding(cfg)
            layers = [nn.Linear(cfg.emb_dim, cfg.filter_order), Sin(cfg)]
            for _ in range(cfg.num_inner_mlps):
                layers += [nn.Linear(cfg.filter_order, cfg.filter_order), SharedSin()]
            layers.append(nn.Linear(cfg.filter_order, cfg.d_model * (cfg.hyena_order - 1), bias=False))
            self.implicit_filter = nn.Sequential(*layers)
            self.modulation = ExponentialModulation(cfg.d_model * (cfg.hyena_order - 1))

        def filter(self, L):
            """(1, L, channels) long filter for the first L positions."""
            z, t = self.pos_emb(L)
            h = z.to(dtype=self.implicit_filter[0].weight.dtype)
            sin = self.implicit_filter[1]
            for layer in self.implicit_filter:
                h = sin(h) if isinstance(layer, (Sin, SharedSin)) else layer(h)
            return self.modulation(t, h)

    class HyenaOperator(nn.Module):
        def __init__(self, cfg):
            super().__init__()
            self.d_model, self.l_max, self.order = cfg.d_model, cfg.max_seq_len, cfg.hyena_order
            inner = cfg.d_model * (cfg.hyena_order + 1)
            self.in_proj = nn.Linear(cfg.d_model, inner)
            self.out_proj = nn.Linear(cfg.d_model, cfg.d_model)
            self.short_filter = nn.Conv1d(inner, inner, cfg.short_filter_order, padding=2, groups=inner)
            self.filter_fn = HyenaFilter(cfg)

        def forward(self, u):
            L = u.size(-2)
            if L > self.l_max:
                raise ParameterError(f"{L} tokens exceed HyenaDNA's filter length max_seq_len={self.l_max}.")
            u = self.in_proj(u).transpose(1, 2)
            uc = self.short_filter(u)[..., :L]
            *x, v = uc.split(self.d_model, dim=1)
            k = self.filter_fn.filter(L)[0].transpose(0, 1).reshape(self.order - 1, self.d_model, L)
            bias = self.filter_fn.bias.reshape(self.order - 1, self.d_model)
            for o, x_i in enumerate(reversed(x[1:])):
                v = fftconv(v * x_i, k[o], bias[o])
            return self.out_proj((v * x[0]).transpose(1, 2))

    class Mlp(nn.Module):
        def __init__(self, cfg):
            super().__init__()
            self.fc1 = nn.Linear(cfg.d_model, cfg.d_inner)
            self.fc2 = nn.Linear(cfg.d_inner, cfg.d_model)

        def forward(self, x):
            return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))

    class Block(nn.Module):
        def __init__(self, cfg):
            super().__init__()
            self.mixer = HyenaOperator(cfg)
            self.norm1 = nn.LayerNorm(cfg.d_model)
            self.mlp = Mlp(cfg)
            self.norm2 = nn.LayerNorm(cfg.d_model)

        def forward(self, x):
            residual = x
            h = self.mixer(self.norm1(residual.to(dtype=self.norm1.weight.dtype)))
            residual = h + residual
            h = self.mlp(self.norm2(residual.to(dtype=self.norm2.weight.dtype)))
            return h + residual

    class Embeddings(nn.Module):
        def __init__(self, cfg):
            super().__init__()
            self.word_embeddings = nn.Embedding(cfg.padded_vocab_size, cfg.d_model)

        def forward(self, input_ids):
            return self.word_embeddings(input_ids)

    class Backbone(nn.Module):
        def __init__(self, cfg):
            super().__init__()
            self.embeddings = Embeddings(cfg)
            self.layers = nn.ModuleList([Block(cfg) for _ in range(cfg.n_layer)])
            self.ln_f = nn.LayerNorm(cfg.d_model, eps=cfg.layer_norm_epsilon)

        def forward(self, input_ids, output_hidden_states=False):
            """(last hidden state after ln_f, tuple of n_layer + 1 states or None): index 0 = embedding
            output, 1..n_layer-1 = block outputs, n_layer = ln_f(last block output)."""
            h = self.embeddings(input_ids)
            states = [h]
            for layer in self.layers:
                h = layer(h)
                states.append(h)
            h = self.ln_f(h.to(dtype=self.ln_f.weight.dtype))
            states[-1] = h
            return h, (tuple(states) if output_hidden_states else None)

    class HyenaDNAModel(nn.Module):
        """``.backbone`` (state-dict names ``backbone.*``, as HyenaDNAModel's)."""

        def __init__(self, cfg):
            super().__init__()
            self.backbone = Backbone(cfg)

        def forward(self, input_ids, output_hidden_states=False):
            return self.backbone(input_ids, output_hidden_states=output_hidden_states)

    class HyenaDNAForCausalLM(nn.Module):
        """``hyena.backbone.*`` + ``lm_head`` (None for head="base"), the names of the -hf checkpoints."""

        def __init__(self, cfg, *, lm_head: bool = True):
            super().__init__()
            self.config = cfg
            self.hyena = HyenaDNAModel(cfg)
            self.lm_head = nn.Linear(cfg.d_model, cfg.padded_vocab_size, bias=False) if lm_head else None
            if lm_head and cfg.tie_word_embeddings:
                self.lm_head.weight = self.hyena.backbone.embeddings.word_embeddings.weight

        def get_input_embeddings(self):
            return self.hyena.backbone.embeddings.word_embeddings

        def forward(self, input_ids, attention_mask=None, output_hidden_states=False, **_):
            h, states = self.hyena(input_ids, output_hidden_states=output_hidden_states)
            logits = None if self.lm_head is None else self.lm_head(h).float()
            return SimpleNamespace(logits=logits, last_hidden_state=h, hidden_states=states)

    def init_weights(module, std=0.02):
        """HyenaDNAPreTrainedModel._init_weights: normal(0, 0.02) Linear / Embedding weights, zero biases."""
        for m in module.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=std)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Embedding):
                nn.init.normal_(m.weight, std=std)

    _MODULES = SimpleNamespace(HyenaDNAForCausalLM=HyenaDNAForCausalLM, HyenaDNAModel=HyenaDNAModel,
                               fftconv=fftconv, init_weights=init_weights)
    return _MODULES


_MODULES = None


def build_model(cfg: SimpleNamespace, *, lm_head: bool = True, seed: int = 0):
    """A HyenaDNAForCausalLM-shaped torch module (random weights, seeded)."""
    import torch

    torch.manual_seed(seed)
    model = _torch_modules().HyenaDNAForCausalLM(cfg, lm_head=lm_head)
    _torch_modules().init_weights(model, std=cfg.initializer_range)
    return model


# ------------------------------------------------------------------------------------------------
# The adapter
# ------------------------------------------------------------------------------------------------
class HyenaAdapter(ModelAdapter):
    family = "hyenadna"
    objective = "causal"
    positions = "none"
    capabilities = frozenset({"next_token_logprobs", "hidden_states", "classifier", "input_embeddings"})
    missing_reasons = {
        "masked_logprobs": "a causal model with no masked-token head",
        "layer_readout": "a causal model with no masked-token head",
        "attention": "Hyena has no attention: its mixing is a long convolution",
    }
    published = ("LongSafari/hyenadna-tiny-1k-seqlen-hf", "LongSafari/hyenadna-tiny-1k-seqlen-d256-hf",
                 "LongSafari/hyenadna-small-32k-seqlen-hf", "LongSafari/hyenadna-medium-160k-seqlen-hf",
                 "LongSafari/hyenadna-medium-450k-seqlen-hf", "LongSafari/hyenadna-large-1m-seqlen-hf")

    @property
    def _causal_lm(self):
        return self.model

    @property
    def n_layers(self) -> int:
        return int(self.config.n_layer)

    @property
    def hidden_size(self) -> int:
        return int(self.config.d_model)

    @property
    def max_tokens(self) -> int | None:
        """The long filters exist for max_seq_len positions; the framing ([SEP]) takes one of them."""
        return int(self.config.max_seq_len) - self.tokenizer.n_framing

    def _backbone(self):
        model = self.model
        if hasattr(model, "hyena"):
            return model.hyena
        return model.backbone  # a PooledClassifier: .backbone is the HyenaDNAModel

    def _encoder(self, ids, att, *, hidden_states, attentions):
        # no attention mask: the model is causal, and right padding never reaches earlier tokens
        h, states = self._backbone()(ids, output_hidden_states=hidden_states)
        return EncoderOutput(h, states, None)

    def _head(self, h):
        if getattr(self.model, "lm_head", None) is None:
            raise ParameterError(f"{self.name} was loaded without its LM head (head={self.head!r}).")
        return self.model.lm_head(h)[..., : self.tokenizer.vocab_size]  # drop the padding rows of the table

    def _final_norm(self, h):
        return self._backbone().backbone.ln_f(h)

    def input_embeddings(self):
        self.require("input_embeddings", "static embeddings")
        return self._backbone().backbone.embeddings.word_embeddings.weight[: self.tokenizer.vocab_size]

    def classifier(self, num_labels: int, *, init: str = "pretrained", seed: int = 0) -> ModelAdapter:
        """HyenaDNA's own sequence classifier reads the hidden state of the last non-pad token (its [SEP]);
        here: the backbone + dropout + a linear layer on that token ("last" pooling)."""
        import copy

        import torch

        if init == "pretrained":
            backbone = copy.deepcopy(self._backbone())
            report = self.load_report
        elif init == "random":
            backbone = build_model(self.config, lm_head=False, seed=seed).hyena
            report = None
        else:
            raise ParameterError(f"init={init!r}: use 'pretrained' or 'random'.")
        torch.manual_seed(seed)
        model = pooled_classifier(backbone, lambda bb, ids, att: bb(ids)[0], self.hidden_size, num_labels,
                                  pooling="last")
        model.to(device=self.device, dtype=torch.float32).train()
        return type(self)(model, self.tokenizer, name=self.name, source=self.source, path=self.path,
                          device=self.device, dtype=torch.float32, head="classification", config=self.config,
                          load_report=report)


# ------------------------------------------------------------------------------------------------
# Family registration: matches / load
# ------------------------------------------------------------------------------------------------
def matches(config: dict, folder: Path) -> bool:
    if config.get("model_type") == "hyenadna":
        return True
    archs = config.get("architectures") or []
    return any(str(a).startswith("HyenaDNA") for a in archs)


def _checkpoint_names(folder: Path) -> set:
    names = set()
    for f in weight_files(folder):
        if f.suffix == ".safetensors":
            try:
                from safetensors import safe_open

                with safe_open(str(f), framework="pt") as handle:
                    names |= set(handle.keys())
                continue
            except Exception:
                pass  # unreadable: read_state_dict below reports it clearly
        from ..adapters import read_state_dict

        return set(read_state_dict(folder))
    return names


def _rename(name: str) -> str | None:
    """Checkpoint name -> model name. ``implicit_filter.{3,5,..}.freq`` (in pytorch_model.bin files) are the
    same tensor as ``implicit_filter.1.freq`` (one shared Sin module) and are dropped; a bare HyenaDNAModel's
    ``backbone.*`` gets the ``hyena.`` prefix."""
    parts = name.split(".")
    if len(parts) >= 3 and parts[-1] == "freq" and parts[-3] == "implicit_filter" and parts[-2] != "1":
        return None
    if name.startswith("backbone."):
        return "hyena." + name
    return name


def load(folder: Path, config: dict, options: LoadOptions) -> HyenaAdapter:
    import torch

    folder = Path(folder)
    tokenizer = read_character_tokenizer(folder)
    cfg = build_config(config)
    tokenizer.check_model_vocab(cfg.vocab_size, model_name=f"{folder}/config.json (vocab_size)")
    names = _checkpoint_names(folder)
    if options.head == "lm":
        if "lm_head.weight" not in names and not cfg.tie_word_embeddings:
            kind = "a sequence classifier (score.weight)" if "score.weight" in names else "no LM head (lm_head.weight)"
            raise ParameterError(f"{folder} holds {kind}, so it cannot predict next tokens; use a pre-trained "
                                 "HyenaDNA checkpoint, or load it with head='base' for hidden states only.")
        if "lm_head.weight" in names:
            cfg.tie_word_embeddings = False  # the checkpoint's own head
        model, heads = build_model(cfg, lm_head=True, seed=options.seed), ()
    elif options.head == "base":
        model, heads = build_model(cfg, lm_head=False, seed=options.seed), (r"^lm_head\.", r"^score\.")
    else:
        raise ParameterError(f"head={options.head!r} is not available for HyenaDNA; use 'lm' (next-token) or 'base' "
                             "(fine-tuning builds its classifier with adapter.classifier()).")
    report = load_strict(model, folder, head_patterns=heads, rename=_rename)
    report.notes.append("HyenaDNA runs on this package's own implementation; the folder's Python files are not used.")
    return HyenaAdapter(model.to(torch.float32).eval(), tokenizer, name=options.name, source=options.source,
                        path=folder, device=torch.device("cpu"), dtype=torch.float32, head=options.head, config=cfg,
                        load_report=report)


# ------------------------------------------------------------------------------------------------
# A tiny random checkpoint in the published layout
# ------------------------------------------------------------------------------------------------
PLACEHOLDER = ('"""Placeholder written by dnalm_utils.families.hyena.make_replica: the published repository ships '
               'HyenaDNA\'s own {what} here. dnalm_utils never imports this file."""\n'
               'raise ImportError("replica placeholder: not HyenaDNA\'s code")\n')


def make_replica(folder, *, layers: int = 2, d_model: int = 32, max_seq_len: int = 256, seed: int = 0,
                 filter_order: int = 16, emb_dim: int = 5, activation_freq: int = 10) -> Path:
    """Write a tiny random HyenaDNA checkpoint in the exact published -hf layout: config.json (the published keys),
    tokenizer_config.json + special_tokens_map.json, model.safetensors with the published tensor names (only
    ``implicit_filter.1.freq`` of the shared Sin, untied ``lm_head.weight``, padded 16-row tables), and
    placeholders for the Python files the hub repository ships (they raise if anything imports them)."""
    import torch
    from safetensors.torch import save_file

    from ..io import atomic_path

    config = {
        "_name_or_path": "hyenadna-replica", "activation_freq": activation_freq,
        "architectures": ["HyenaDNAForCausalLM"], "auto_map": AUTO_MAP, "d_inner": 4 * d_model, "d_model": d_model,
        "emb_dim": emb_dim, "embed_dropout": 0.1, "filter_order": filter_order, "hyena_dropout": 0.0,
        "hyena_filter_dropout": 0.0, "hyena_order": 2, "initializer_range": 0.02, "layer_norm_epsilon": 1e-05,
        "max_seq_len": max_seq_len, "model_type": "hyenadna", "n_layer": layers, "num_inner_mlps": 2,
        "pad_token_id": 4, "pad_vocab_size_multiple": 8, "short_filter_order": 3, "tie_word_embeddings": False,
        "torch_dtype": "float32", "train_freq": True, "transformers_version": "4.35.0.dev0", "use_bias": True,
        "vocab_size": 12,
    }
    cfg = build_config(config)
    model = build_model(cfg, lm_head=True, seed=seed)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():  # non-trivial norms, biases and frequencies, so a test sees every tensor at work
        for name, p in model.named_parameters():
            if name.endswith(("norm1.weight", "norm2.weight", "ln_f.weight")):
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=gen))
            elif name.endswith("bias") or name.endswith("freq"):
                p.add_(0.1 * torch.randn(p.shape, generator=gen))
            elif name.endswith("weight") and p.dim() >= 2:
                p.mul_(5.0)
    state = {k: v.contiguous() for k, v in model.state_dict().items() if _rename(k) == k}
    specials = {str(i): {"content": t, "lstrip": t == "[MASK]", "normalized": False, "rstrip": False,
                         "single_word": False, "special": True} for i, t in enumerate(SPECIALS) if t != "[RESERVED]"}
    tok_config = {
        "add_prefix_space": False, "added_tokens_decoder": specials,
        "auto_map": {"AutoTokenizer": ["tokenization_hyena.HyenaDNATokenizer", None]},
        "bos_token": "[BOS]", "clean_up_tokenization_spaces": True, "cls_token": "[CLS]", "eos_token": "[SEP]",
        "mask_token": "[MASK]", "model_max_length": max_seq_len, "pad_token": "[PAD]", "padding_side": "left",
        "sep_token": "[SEP]", "tokenizer_class": "HyenaDNATokenizer", "unk_token": "[UNK]",
    }
    special_map = {"bos_token": "[BOS]", "cls_token": "[CLS]", "eos_token": "[SEP]", "mask_token": "[MASK]",
                   "pad_token": "[PAD]", "sep_token": "[SEP]", "unk_token": "[UNK]"}
    folder = Path(folder)
    with atomic_path(folder) as tmp:
        tmp.mkdir(parents=True, exist_ok=True)
        (tmp / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        (tmp / "tokenizer_config.json").write_text(json.dumps(tok_config, indent=2, sort_keys=True) + "\n")
        (tmp / "special_tokens_map.json").write_text(json.dumps(special_map, indent=2, sort_keys=True) + "\n")
        for fname, what in (("configuration_hyena.py", "configuration"), ("modeling_hyena.py", "model code"),
                            ("tokenization_hyena.py", "tokenizer code")):
            (tmp / fname).write_text(PLACEHOLDER.format(what=what))
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
    return folder


register("hyenadna", HyenaAdapter, matches, load, priority=10)

__all__ = ["HyenaAdapter", "CharacterTokenizer", "matches", "load", "make_replica", "build_config", "build_model",
           "read_character_tokenizer", "padded_vocab_size", "SPECIALS", "CHARACTERS"]
