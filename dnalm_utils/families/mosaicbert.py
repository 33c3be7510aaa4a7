"""MosaicBERT: DNABERT-2 (``zhihan1996/DNABERT-2-117M``) and DNABERT-S (``zhihan1996/DNABERT-S``).

The project's own implementation of the MosaicBERT layers the two checkpoints were trained with. No code from
the model folder runs (its ``bert_layers.py`` / ``flash_attn_triton.py`` are never imported or executed), so
``trust_remote_code`` is not needed and the folder's custom code, which does not run under transformers 5,
does not matter. The equations follow the published ``bert_layers.py`` (MosaicML examples, shipped with the
checkpoints; a copy is in ``MAGICS-LAB/DNABERT_S: evaluate/model_codes/bert_layers.py``):

* embeddings: ``LayerNorm(word[ids] + token_type[0])`` -- no position embeddings (ALiBi);
* self-attention: one fused ``Wqkv`` (hidden -> 3*hidden, laid out ``(q|k|v, head, dim)``), scores
  ``q.k / sqrt(d) + alibi`` with ``alibi[h, i, j] = -slope_h * |i - j|`` (symmetric), the ALiBi paper's
  slopes (``2**(-8 i / n)``, i = 1..n, for n a power of 2; otherwise those of the closest lower power of 2
  followed by every other slope of the next power), padded keys get no weight; post-LN output
  ``LayerNorm(dense(attn) + x)``;
* gated FFN: ``g = gated_layers(x)`` (no bias, hidden -> 2*intermediate), ``LayerNorm(wo(gelu(g[:I]) *
  g[I:]) + x)`` with exact (erf) GELU;
* MLM head: ``decoder(LayerNorm(gelu(dense(h))))``, decoder weight tied to the word embeddings, its own
  bias ``cls.predictions.decoder.bias``; LayerNorm eps 1e-12;
* pooler (``BertModel`` / the published ``BertForSequenceClassification``): ``tanh(dense(h[:, 0]))``.

Layouts on disk. DNABERT-2-117M: ``config.json`` with ``alibi_starting_size: 512`` (it only sizes the ALiBi
cache; there is no position table, so no length limit) and ``auto_map`` naming ``configuration_bert`` /
``bert_layers`` (AutoConfig, AutoModel, AutoModelForMaskedLM, AutoModelForSequenceClassification); the 2023
copies say ``model_type: bert`` (so plain transformers BERT would take them and silently ignore every
MosaicBERT tensor), the current one leaves ``model_type`` out. ``generation_config.json``,
``tokenizer.json`` (BPE, ids ``[UNK]=0 [CLS]=1 [SEP]=2 [PAD]=3 [MASK]=4``, post-processor ``[CLS] $A
[SEP]``), ``tokenizer_config.json``, weights ``bert.*`` + ``cls.predictions.*``. DNABERT-S: saved with
``BertModel.save_pretrained`` (``architectures: [BertModel]``): tensors without the ``bert.`` prefix, a
``pooler.dense`` (never trained: DNABERT-S mean-pools) and no MLM head, so it loads with ``head='base'`` only.

A folder is taken by this family when its config.json has ``alibi_starting_size``, an ``auto_map`` naming
``bert_layers``, or (a BERT config with neither) weights holding ``Wqkv`` / ``mlp.gated_layers`` tensors.
:func:`make_replica` writes a tiny random checkpoint in these layouts for tests.
"""

from __future__ import annotations

import json
import math
import re
import struct
from pathlib import Path

from ..adapters import (
    EncoderOutput,
    LoadOptions,
    ModelAdapter,
    classifier_output,
    load_strict,
    register,
    weight_files,
)
from ..errors import ModelNotAvailableError, ParameterError

#: checkpoint tensors that carry no weights (buffers some savers keep)
IGNORABLE = (r"\.position_ids$", r"\.token_type_ids$")
#: special tokens of DNABERT-2's tokenizer.json, in id order
SPECIALS = ("[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]")
#: the custom-code files the hub folders ship (never run here)
CUSTOM_CODE = ("bert_layers.py", "bert_padding.py", "configuration_bert.py", "flash_attn_triton.py")
AUTO_MAP = {
    "AutoConfig": "configuration_bert.BertConfig",
    "AutoModel": "bert_layers.BertModel",
    "AutoModelForMaskedLM": "bert_layers.BertForMaskedLM",
    "AutoModelForSequenceClassification": "bert_layers.BertForSequenceClassification",
}
_MOSAIC_TENSOR = re.compile(r"(^|\.)encoder\.layer\.\d+\.(attention\.self\.Wqkv|mlp\.gated_layers)\.")


# ------------------------------------------------------------------------------------------------
# Configuration
# ------------------------------------------------------------------------------------------------
class MosaicBertConfig:
    """The architecture settings read from config.json (keys as the published BertConfig spells them)."""

    DEFAULTS = dict(vocab_size=4096, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                    intermediate_size=3072, hidden_act="gelu", hidden_dropout_prob=0.1,
                    attention_probs_dropout_prob=0.0, layer_norm_eps=1e-12, type_vocab_size=2, pad_token_id=0,
                    alibi_starting_size=512, classifier_dropout=None, initializer_range=0.02)

    def __init__(self, **kwargs):
        for key, default in self.DEFAULTS.items():
            value = kwargs.get(key, default)
            setattr(self, key, default if value is None and key != "classifier_dropout" else value)
        self.num_labels = int(kwargs.get("num_labels", 2) or 2)
        if self.hidden_size % self.num_attention_heads:
            raise ModelNotAvailableError(
                f"config.json: hidden_size {self.hidden_size} is not a multiple of num_attention_heads "
                f"{self.num_attention_heads}; the file is damaged or belongs to another model.")
        if self.hidden_act not in ("gelu", "gelu_new", "gelu_pytorch_tanh", "relu"):
            raise ModelNotAvailableError(f"config.json: hidden_act {self.hidden_act!r} is not supported here.")

    @classmethod
    def from_dict(cls, config: dict) -> "MosaicBertConfig":
        return cls(**config)

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in (*self.DEFAULTS, "num_labels")}

    def __repr__(self) -> str:
        return f"MosaicBertConfig({self.to_dict()})"


def alibi_slopes(n_heads: int) -> list[float]:
    """ALiBi slopes of ``n_heads`` heads, as MosaicBERT's ``_get_alibi_head_slopes`` defines them."""
    def power_of_2(n):
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [start * start**i for i in range(n)]

    if math.log2(n_heads).is_integer():
        return power_of_2(n_heads)
    closest = 2 ** math.floor(math.log2(n_heads))
    return power_of_2(closest) + alibi_slopes(2 * closest)[0::2][: n_heads - closest]


def _activation(name: str):
    import torch

    if name == "gelu":
        return torch.nn.GELU(approximate="none")
    if name in ("gelu_new", "gelu_pytorch_tanh"):
        return torch.nn.GELU(approximate="tanh")
    return torch.nn.ReLU()


# ------------------------------------------------------------------------------------------------
# Torch modules (names of submodules = names of the published tensors)
# ------------------------------------------------------------------------------------------------
def _modules():
    """Define the torch classes lazily (importing this family must not import torch)."""
    import torch
    from torch import nn

    class Embeddings(nn.Module):
        def __init__(self, c: MosaicBertConfig):
            super().__init__()
            self.word_embeddings = nn.Embedding(c.vocab_size, c.hidden_size, padding_idx=c.pad_token_id)
            self.token_type_embeddings = nn.Embedding(c.type_vocab_size, c.hidden_size)
            self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
            self.dropout = nn.Dropout(c.hidden_dropout_prob)

        def forward(self, input_ids, token_type_ids=None):
            if token_type_ids is None:
                token_type_ids = torch.zeros_like(input_ids)
            x = self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)
            return self.dropout(self.LayerNorm(x))

    class SelfAttention(nn.Module):
        def __init__(self, c: MosaicBertConfig):
            super().__init__()
            self.num_heads = c.num_attention_heads
            self.head_dim = c.hidden_size // c.num_attention_heads
            self.Wqkv = nn.Linear(c.hidden_size, 3 * c.hidden_size)
            self.dropout = nn.Dropout(c.attention_probs_dropout_prob)

        def forward(self, x, bias, need_weights: bool):
            b, s, _ = x.shape
            qkv = self.Wqkv(x).view(b, s, 3, self.num_heads, self.head_dim)
            q, k, v = (qkv[:, :, i].transpose(1, 2) for i in range(3))  # (b, h, s, d)
            if not need_weights:
                out = nn.functional.scaled_dot_product_attention(
                    q, k, v, attn_mask=bias.to(q.dtype), dropout_p=self.dropout.p if self.training else 0.0)
                return out.transpose(1, 2).reshape(b, s, -1), None
            scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_dim) + bias
            probs = torch.softmax(scores.float(), dim=-1).to(q.dtype)
            out = torch.matmul(self.dropout(probs), v)
            return out.transpose(1, 2).reshape(b, s, -1), probs

    class SelfOutput(nn.Module):
        def __init__(self, c: MosaicBertConfig):
            super().__init__()
            self.dense = nn.Linear(c.hidden_size, c.hidden_size)
            self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
            self.dropout = nn.Dropout(c.hidden_dropout_prob)

        def forward(self, h, x):
            return self.LayerNorm(self.dropout(self.dense(h)) + x)

    class Attention(nn.Module):
        def __init__(self, c: MosaicBertConfig):
            super().__init__()
            self.self = SelfAttention(c)
            self.output = SelfOutput(c)

        def forward(self, x, bias, need_weights):
            h, probs = self.self(x, bias, need_weights)
            return self.output(h, x), probs

    class GatedMLP(nn.Module):
        def __init__(self, c: MosaicBertConfig):
            super().__init__()
            self.intermediate_size = c.intermediate_size
            self.gated_layers = nn.Linear(c.hidden_size, 2 * c.intermediate_size, bias=False)
            self.act = nn.GELU(approximate="none")
            self.wo = nn.Linear(c.intermediate_size, c.hidden_size)
            self.dropout = nn.Dropout(c.hidden_dropout_prob)
            self.layernorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

        def forward(self, x):
            g = self.gated_layers(x)
            h = self.act(g[..., : self.intermediate_size]) * g[..., self.intermediate_size :]
            return self.layernorm(self.wo(self.dropout(h)) + x)

    class Layer(nn.Module):
        def __init__(self, c: MosaicBertConfig):
            super().__init__()
            self.attention = Attention(c)
            self.mlp = GatedMLP(c)

        def forward(self, x, bias, need_weights):
            h, probs = self.attention(x, bias, need_weights)
            return self.mlp(h), probs

    class Encoder(nn.Module):
        def __init__(self, c: MosaicBertConfig):
            super().__init__()
            self.layer = nn.ModuleList([Layer(c) for _ in range(c.num_hidden_layers)])
            self.slopes = alibi_slopes(c.num_attention_heads)  # python floats: never cast to bf16

        def bias(self, attention_mask):
            """(batch, heads, seq, seq) float32: ALiBi -slope*|i-j|, and the most negative float at padded keys."""
            s = attention_mask.shape[1]
            pos = torch.arange(s, device=attention_mask.device)
            dist = (pos[None, :] - pos[:, None]).abs()
            slopes = torch.tensor(self.slopes, dtype=torch.float32, device=attention_mask.device)
            alibi = slopes[:, None, None] * -dist  # (heads, s, s)
            keys = attention_mask.bool()[:, None, None, :]
            return torch.where(keys, alibi[None], torch.finfo(torch.float32).min)

        def forward(self, x, attention_mask, *, hidden_states=False, attentions=False):
            bias = self.bias(attention_mask)
            keep = attention_mask[..., None].to(x.dtype)
            x = x * keep  # padded positions hold zeros (MosaicBERT drops them: they never feed anything)
            states, probs_all = [x] if hidden_states else None, [] if attentions else None
            for layer in self.layer:
                x, probs = layer(x, bias, attentions)
                x = x * keep
                if hidden_states:
                    states.append(x)
                if attentions:
                    probs_all.append(probs)
            return x, states, probs_all

    class Pooler(nn.Module):
        def __init__(self, c: MosaicBertConfig):
            super().__init__()
            self.dense = nn.Linear(c.hidden_size, c.hidden_size)
            self.activation = nn.Tanh()

        def forward(self, h):
            return self.activation(self.dense(h[:, 0]))

    class MosaicBertModel(nn.Module):
        """Embeddings + encoder (+ pooler): the published ``BertModel``; tensors ``embeddings.*``,
        ``encoder.*``, ``pooler.*``."""

        def __init__(self, c: MosaicBertConfig, add_pooling_layer: bool = False):
            super().__init__()
            self.config = c
            self.embeddings = Embeddings(c)
            self.encoder = Encoder(c)
            self.pooler = Pooler(c) if add_pooling_layer else None

        def get_input_embeddings(self):
            return self.embeddings.word_embeddings

        def forward(self, input_ids, attention_mask=None, token_type_ids=None, *, output_hidden_states=False,
                    output_attentions=False, **_):
            if attention_mask is None:
                attention_mask = torch.ones_like(input_ids)
            x = self.embeddings(input_ids, token_type_ids)
            last, states, probs = self.encoder(x, attention_mask, hidden_states=output_hidden_states,
                                               attentions=output_attentions)
            return EncoderOutput(last, tuple(states) if states is not None else None,
                                 tuple(probs) if probs is not None else None)

    class PredictionHead(nn.Module):
        def __init__(self, c: MosaicBertConfig, word_embeddings):
            super().__init__()
            self.transform = nn.Module()
            self.transform.dense = nn.Linear(c.hidden_size, c.hidden_size)
            self.transform.act = _activation(c.hidden_act)
            self.transform.LayerNorm = nn.LayerNorm(c.hidden_size, eps=1e-12)  # fixed in bert_layers.py
            self.decoder = nn.Linear(c.hidden_size, c.vocab_size)
            self.decoder.weight = word_embeddings.weight  # tied

        def forward(self, h):
            t = self.transform
            return self.decoder(t.LayerNorm(t.act(t.dense(h))))

    class MLMHead(nn.Module):
        def __init__(self, c, word_embeddings):
            super().__init__()
            self.predictions = PredictionHead(c, word_embeddings)

        def forward(self, h):
            return self.predictions(h)

    class MosaicBertForMaskedLM(nn.Module):
        """``bert.*`` + ``cls.predictions.*``; ``model(input_ids, attention_mask).logits``."""

        def __init__(self, c: MosaicBertConfig, add_pooling_layer: bool = False):
            super().__init__()
            self.config = c
            self.bert = MosaicBertModel(c, add_pooling_layer)
            self.cls = MLMHead(c, self.bert.embeddings.word_embeddings)

        def get_input_embeddings(self):
            return self.bert.embeddings.word_embeddings

        def forward(self, input_ids, attention_mask=None, token_type_ids=None, *, output_hidden_states=False,
                    output_attentions=False, **_):
            from transformers.modeling_outputs import MaskedLMOutput

            out = self.bert(input_ids, attention_mask, token_type_ids, output_hidden_states=output_hidden_states,
                            output_attentions=output_attentions)
            return MaskedLMOutput(logits=self.cls(out.last_hidden_state), hidden_states=out.hidden_states,
                                  attentions=out.attentions)

    class MosaicBertForSequenceClassification(nn.Module):
        """The published ``BertForSequenceClassification``: pooler (tanh(dense(h[CLS]))), dropout, linear.
        Tensors ``bert.*`` (pooler included) and ``classifier.*``."""

        def __init__(self, c: MosaicBertConfig, num_labels: int):
            super().__init__()
            self.config = c
            self.num_labels = num_labels
            self.bert = MosaicBertModel(c, add_pooling_layer=True)
            p = c.classifier_dropout if c.classifier_dropout is not None else c.hidden_dropout_prob
            self.dropout = nn.Dropout(p)
            self.classifier = nn.Linear(c.hidden_size, num_labels)

        def get_input_embeddings(self):
            return self.bert.embeddings.word_embeddings

        def forward(self, input_ids, attention_mask=None, labels=None, **_):
            h = self.bert(input_ids, attention_mask).last_hidden_state
            return classifier_output(self.classifier(self.dropout(self.bert.pooler(h))), labels)

    return MosaicBertModel, MosaicBertForMaskedLM, MosaicBertForSequenceClassification


def _init_weights(model, config: MosaicBertConfig) -> None:
    """BERT's initialisation (normal(0, initializer_range), zero biases, unit LayerNorms)."""
    import torch

    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.Linear, torch.nn.Embedding)):
                m.weight.normal_(0.0, config.initializer_range)
                if isinstance(m, torch.nn.Linear) and m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, torch.nn.LayerNorm):
                m.weight.fill_(1.0)
                m.bias.zero_()


def build_model(config: dict | MosaicBertConfig, *, head: str = "mlm", add_pooling_layer: bool = False,
                num_labels: int = 2, seed: int = 0):
    """A freshly initialised (seeded) MosaicBERT: head "mlm" (``bert.*`` + ``cls.*``), "base" (no prefix) or
    "classification"."""
    import torch

    c = config if isinstance(config, MosaicBertConfig) else MosaicBertConfig.from_dict(config)
    Base, MLM, Cls = _modules()
    torch.manual_seed(seed)
    if head == "mlm":
        model = MLM(c, add_pooling_layer)
    elif head == "base":
        model = Base(c, add_pooling_layer)
    elif head == "classification":
        model = Cls(c, num_labels)
    else:
        raise ParameterError(f"head={head!r}: MosaicBERT has 'mlm', 'base' and 'classification'.")
    _init_weights(model, c)
    return model


# ------------------------------------------------------------------------------------------------
# Checkpoint inspection
# ------------------------------------------------------------------------------------------------
def _safetensors_names(path: Path) -> list[str]:
    """Tensor names from a safetensors header (reads only the header)."""
    with open(path, "rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        if n > 100_000_000:
            raise ValueError("implausible safetensors header")
        header = json.loads(fh.read(n))
    return [k for k in header if k != "__metadata__"]


def tensor_names(folder: Path, *, cheap_only: bool = False) -> list[str]:
    """Names of the checkpoint's tensors: from an index's weight_map or safetensors headers without reading
    weights; from pytorch_model.bin through a memory map (a full read unless ``cheap_only``)."""
    folder = Path(folder)
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index = folder / index_name
        if index.is_file():
            try:
                return list(json.loads(index.read_text())["weight_map"])
            except (json.JSONDecodeError, KeyError):
                return []
    names: list[str] = []
    for f in weight_files(folder):
        try:
            if f.suffix == ".safetensors":
                names += _safetensors_names(f)
                continue
            import torch

            try:
                names += list(torch.load(str(f), map_location="cpu", weights_only=True, mmap=True))
            except Exception:
                if cheap_only:
                    continue
                names += list(torch.load(str(f), map_location="cpu", weights_only=True))
        except Exception:
            if not cheap_only:
                raise ModelNotAvailableError(f"cannot read the tensor names in {f}; the file is truncated or "
                                             "corrupted: download it again.") from None
    return names


# ------------------------------------------------------------------------------------------------
# The adapter
# ------------------------------------------------------------------------------------------------
class MosaicBertAdapter(ModelAdapter):
    family = "mosaicbert"
    objective = "masked"
    positions = "alibi"
    capabilities = frozenset({"masked_logprobs", "layer_readout", "hidden_states", "attention", "classifier",
                              "input_embeddings"})
    published = ("zhihan1996/DNABERT-2-117M", "zhihan1996/DNABERT-S")

    @property
    def _bert(self):
        return getattr(self.model, "bert", self.model)

    @property
    def max_tokens(self) -> int | None:
        return None  # ALiBi: no position table (alibi_starting_size only sizes a cache)

    def _encoder(self, ids, att, *, hidden_states, attentions):
        return self._bert(ids, att, output_hidden_states=hidden_states, output_attentions=attentions)

    def _head(self, h):
        return self.model.cls(h)

    def input_embeddings(self):
        self.require("input_embeddings", "static embeddings")
        return self._bert.embeddings.word_embeddings.weight

    def classifier(self, num_labels: int, *, init: str = "pretrained", seed: int = 0) -> ModelAdapter:
        import torch

        if init not in ("pretrained", "random"):
            raise ParameterError(f"init={init!r}: use 'pretrained' or 'random'.")
        model = build_model(self.config, head="classification", num_labels=num_labels, seed=seed)
        report = None
        if init == "pretrained":
            if self.path is None:
                raise ParameterError(f"{self.name} has no folder to read pre-trained weights from.")
            # the pooler is fresh for DNABERT-2 (pre-trained without one), as in the published fine-tuning
            report = load_strict(model, self.path, head_patterns=(r"^classifier\.", r"^bert\.pooler\.", r"^cls\."),
                                 ignorable_patterns=IGNORABLE, rename=_with_prefix)
        model.to(device=self.device, dtype=torch.float32).train()
        lm = type(self)(model, self.tokenizer, name=self.name, source=self.source, path=self.path,
                        device=self.device, dtype=torch.float32, head="classification", config=self.config,
                        load_report=report)
        lm.missing_reasons = self.missing_reasons
        return lm


def _with_prefix(name: str) -> str:
    """Checkpoint name -> name inside a model with a ``bert`` submodule (DNABERT-S has no ``bert.`` prefix)."""
    return name if name.startswith(("bert.", "cls.", "classifier.")) else "bert." + name


def _without_prefix(name: str) -> str:
    return name[len("bert."):] if name.startswith("bert.") else name


# ------------------------------------------------------------------------------------------------
# Registry hooks
# ------------------------------------------------------------------------------------------------
def matches(config: dict, folder: Path) -> bool:
    targets = " ".join(str(v) for v in (config.get("auto_map") or {}).values())
    if "alibi_starting_size" in config or "bert_layers" in targets:
        return True
    archs = config.get("architectures") or []
    bertish = config.get("model_type") == "bert" or (config.get("model_type") is None
                                                     and any(str(a).startswith("Bert") for a in archs))
    if not bertish or folder is None:
        return False
    try:  # a BERT config without the markers: look at the tensor names (headers only; never a full read)
        return any(_MOSAIC_TENSOR.search(n) for n in tensor_names(Path(folder), cheap_only=True))
    except Exception:
        return False


def load(folder: Path, config: dict, options: LoadOptions) -> MosaicBertAdapter:
    import torch

    from ..tokenization import load_tokenizer

    folder = Path(folder)
    tokenizer = load_tokenizer(folder, on_invalid=options.on_invalid)
    cfg = MosaicBertConfig.from_dict(config)
    tokenizer.check_model_vocab(cfg.vocab_size, model_name=f"{folder}/config.json (vocab_size)")
    names = tensor_names(folder)
    has_mlm = any(n.startswith("cls.predictions.") for n in names)
    has_pooler = any(re.match(r"^(bert\.)?pooler\.", n) for n in names)
    archs = config.get("architectures") or ["BertModel"]
    if options.head == "mlm":
        if not has_mlm:
            raise ParameterError(
                f"{folder} holds a MosaicBERT encoder ({archs[0]}) without a masked-language-model head "
                "(no cls.predictions.* tensors; DNABERT-S was trained contrastively and published without one), "
                "so it cannot predict masked tokens. Load it with head='base' for hidden states and embeddings "
                "(adapter.classifier() still builds a classifier on it); for masked-token predictions use "
                "zhihan1996/DNABERT-2-117M."
            )
        model = build_model(cfg, head="mlm", add_pooling_layer=has_pooler, seed=options.seed)
        heads, rename = (), _with_prefix
    elif options.head == "base":
        model = build_model(cfg, head="base", add_pooling_layer=has_pooler, seed=options.seed)
        heads, rename = (r"^cls\.",), _without_prefix
    else:
        raise ParameterError(f"head={options.head!r} is not available for MosaicBERT here; use 'mlm' or 'base' "
                             "(fine-tuning builds its classifier with adapter.classifier()).")
    report = load_strict(model, folder, head_patterns=heads, ignorable_patterns=IGNORABLE, rename=rename)
    tokenizer.set_framing(("cls",), ("sep",))
    lm = MosaicBertAdapter(model.to(torch.float32).eval(), tokenizer, name=options.name, source=options.source,
                           path=folder, device=torch.device("cpu"), dtype=torch.float32, head=options.head,
                           config=cfg, load_report=report)
    if not has_mlm:
        why = ("the checkpoint has no MLM head (cls.predictions.*): DNABERT-S was trained contrastively and "
               "published without one; use zhihan1996/DNABERT-2-117M for masked-token predictions")
        lm.missing_reasons = {"masked_logprobs": why, "layer_readout": why}
    return lm


register("mosaicbert", MosaicBertAdapter, matches, load, priority=10)


# ------------------------------------------------------------------------------------------------
# A tiny replica of the published folders
# ------------------------------------------------------------------------------------------------
_GENERATION_CONFIG = '{\n  "_from_model_config": true,\n  "pad_token_id": 0,\n  "transformers_version": "4.28.0"\n}\n'


def _config_json(layout: str, with_mlm_head: bool, *, layers, hidden, heads, intermediate, vocab_size) -> dict:
    cfg = {
        "_name_or_path": "zhihan1996/DNABERT-2-117M",
        "alibi_starting_size": 512,
        "architectures": ["BertForMaskedLM"],
        "attention_probs_dropout_prob": 0.0,
        "auto_map": dict(AUTO_MAP),
        "classifier_dropout": None,
        "gradient_checkpointing": False,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": hidden,
        "initializer_range": 0.02,
        "intermediate_size": intermediate,
        "layer_norm_eps": 1e-12,
        "max_position_embeddings": 512,
        "model_type": "bert",
        "num_attention_heads": heads,
        "num_hidden_layers": layers,
        "position_embedding_type": "absolute",
        "torch_dtype": "float32",
        "transformers_version": "4.28.0",
        "type_vocab_size": 2,
        "use_cache": True,
        "vocab_size": vocab_size,
    }
    if not with_mlm_head:  # DNABERT-S: BertModel.save_pretrained of the DNABERT-2 encoder
        cfg["architectures"] = ["BertModel"]
        cfg["pad_token_id"] = 0
    elif layout == "current":
        del cfg["model_type"]  # AutoConfig comes from the folder's configuration_bert.py
    return cfg


def _train_tokenizer(vocab_size: int, seed: int):
    """A tiny BPE tokenizer in DNABERT-2's form: its specials and ids, Whitespace pre-tokenizer, [CLS] $A [SEP]."""
    import numpy as np
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers

    rng = np.random.default_rng(seed)
    corpus = ["".join(rng.choice(list("ACGT"), size=400)) for _ in range(40)]
    corpus += ["ACGT" * 30, "AAAATTTTCCCCGGGG" * 10]
    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, special_tokens=list(SPECIALS),
                                  initial_alphabet=list("ACGT"), show_progress=False)
    tok.train_from_iterator(corpus, trainer=trainer)
    vocab = tok.get_vocab()
    assert [vocab[s] for s in SPECIALS] == [0, 1, 2, 3, 4]
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    return tok


def make_replica(folder, *, layout: str = "2023", with_mlm_head: bool = True, layers: int = 2, hidden: int = 32,
                 heads: int = 2, intermediate: int = 64, vocab_size: int | None = None, seed: int = 0,
                 weights: str = "safetensors") -> Path:
    """Write a tiny random MosaicBERT checkpoint in the published folder layout and return the folder.

    layout "2023": config.json with ``model_type: bert`` + ``architectures: [BertForMaskedLM]`` +
    ``alibi_starting_size`` + ``auto_map``; "current": the same without ``model_type``.
    ``with_mlm_head=False``: DNABERT-S (``architectures: [BertModel]``, tensors without the ``bert.`` prefix,
    ``pooler.dense.*``, no ``cls.*``). ``vocab_size``: of the BPE tokenizer trained on random DNA (default 64;
    the real one has 4096). weights: "safetensors" (model.safetensors) or "bin" (pytorch_model.bin).
    The custom-code files are stubs that say the folder is a replica (nothing here runs them)."""
    import torch

    if layout not in ("2023", "current"):
        raise ParameterError(f"layout={layout!r}: use '2023' or 'current'.")
    if weights not in ("safetensors", "bin"):
        raise ParameterError(f"weights={weights!r}: use 'safetensors' or 'bin'.")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tok = _train_tokenizer(vocab_size or 64, seed)
    n_vocab = tok.get_vocab_size(with_added_tokens=True)
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"model_max_length": 1000000000000000019884624838656, "tokenizer_class": "PreTrainedTokenizerFast"},
        indent=2) + "\n")
    cfg = _config_json(layout, with_mlm_head, layers=layers, hidden=hidden, heads=heads,
                       intermediate=intermediate, vocab_size=n_vocab)
    (folder / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    if with_mlm_head:
        (folder / "generation_config.json").write_text(_GENERATION_CONFIG)
        model = build_model(cfg, head="mlm", seed=seed)
    else:
        (folder / "special_tokens_map.json").write_text(json.dumps(
            {"cls_token": "[CLS]", "mask_token": "[MASK]", "pad_token": "[PAD]", "sep_token": "[SEP]",
             "unk_token": "[UNK]"}, indent=2) + "\n")
        model = build_model(cfg, head="base", add_pooling_layer=True, seed=seed)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():  # non-trivial LayerNorms and biases, so a mix-up of tensors shows in the outputs
        for name, p in model.named_parameters():
            if name.endswith("bias") or "LayerNorm" in name or "layernorm" in name:
                p.add_(0.1 * torch.randn(p.shape, generator=gen))
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    if weights == "safetensors":
        from safetensors.torch import save_file

        save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    else:
        torch.save(state, folder / "pytorch_model.bin")
    for name in CUSTOM_CODE:
        (folder / name).write_text(
            f'"""Replica stub of {name} from zhihan1996/DNABERT-2-117M (MosaicBERT custom code).\n\n'
            "This tiny folder was written by dnalm_utils.families.mosaicbert.make_replica for tests; dnalm_utils "
            'never runs a model folder\'s own code."""\n\nraise ImportError("replica stub: not the published code")\n')
    (folder / "README.md").write_text("# Tiny random replica of the DNABERT-2 / DNABERT-S folder layout (tests only)\n")
    return folder


__all__ = ["MosaicBertAdapter", "MosaicBertConfig", "alibi_slopes", "build_model", "tensor_names", "matches",
           "load", "make_replica"]
