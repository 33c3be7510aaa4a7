"""GENA-LM (AIRI-Institute/gena-lm-bert-base-t2t, -bert-base-lastln-t2t, -bert-large-t2t, -bert-base-t2t-multi,
-bert-base): BERT with pre-layer normalisation, implemented here -- the folder's own ``modeling_bert.py`` is never
imported or run, so no ``trust_remote_code`` is needed.

Layout (hub folders; public copies of their configs, e.g. fine-tuned derivatives' ``config.json``, and the
project's own repository AIRI-Institute/GENA_LM ``src/gena_lm/modeling_bert.py``,
``data/configs/L12-H768-A12-V32k-preln.json``, ``L24-H1024-A16-V32k-preln-lastln.json``,
``data/tokenizers/t2t_1000h_multi_32k/tokenizer.json``):

* config.json: ``model_type: bert``, ``architectures: [BertForMaskedLM]``, ``auto_map: {AutoModel:
  modeling_bert.BertForMaskedLM}``, ``pre_layer_norm: true``, ``position_embedding_type: absolute``,
  ``pad_token_id: 3``, ``vocab_size: 32000``, ``max_position_embeddings: 512``; bert-base-t2t has
  ``last_layer_norm: false``; without the key the published code uses ``last_layer_norm = pre_layer_norm``
  (the "lastln" and large models).
* pytorch_model.bin (and a converted model.safetensors) with ``bert.embeddings.*``,
  ``bert.encoder.layer.N.{pre_attention_ln, post_attention_ln, attention.self.{query,key,value},
  attention.output.dense, intermediate.dense, output.dense}``, ``bert.encoder.last_layer_ln`` (lastln models)
  and ``cls.predictions.*`` (decoder tied to the word embeddings).
* tokenizer.json: BPE, 32k tokens, ``[UNK] [CLS] [SEP] [PAD] [MASK]`` = ids 0-4, ``-`` = id 5 (the normaliser
  replaces runs of >= 10 N by ``-``), single letters A B C G K M N R S T W Y, ``BertProcessing`` framing
  ``[CLS] x [SEP]``; tokenizer_config.json ``{"tokenizer_class": "PreTrainedTokenizerFast"}``.

Equations of a pre-LN layer (x: (token, dim)):  a = x + W_o Attn(LN_1(x));  y = a + W_2 act(W_1 LN_2(a)); after
the last layer ``last_layer_ln`` when present. The embedding output is LN(word + position + token type), as in
BERT. Not implemented: the sparse (DeepSpeed) / RoPE / BigBird variants -- those folders are refused with the
reason.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from .bert import encoder_name, legacy_name
from ..adapters import (
    EncoderOutput,
    LoadOptions,
    ModelAdapter,
    load_strict,
    pooled_classifier,
    register,
)
from ..errors import ModelNotAvailableError, ParameterError

IGNORABLE = (r"\.position_ids$", r"\.token_type_ids$")
MLM_HEAD = (r"^cls\.seq_relationship\.", r"^bert\.pooler\.")
BASE_HEAD = (r"^cls\.", r"^bert\.pooler\.")
CLASSIFIER_HEAD = (r"^classifier\.", r"^cls\.", r"^backbone\.pooler\.", r"^bert\.pooler\.")


# ------------------------------------------------------------------------------------------------
# The model (module and parameter names as in GENA_LM's modeling_bert.py, so checkpoints load 1:1)
# ------------------------------------------------------------------------------------------------
def _modules():
    import torch
    from torch import nn
    from transformers.activations import ACT2FN

    class Box(nn.Module):
        """A named container (``intermediate.dense``, ``output.dense``, ...)."""

    class Embeddings(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.word_embeddings = nn.Embedding(c.vocab_size, c.hidden_size, padding_idx=c.pad_token_id)
            self.position_embeddings = nn.Embedding(c.max_position_embeddings, c.hidden_size)
            self.token_type_embeddings = nn.Embedding(c.type_vocab_size, c.hidden_size)
            self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
            self.dropout = nn.Dropout(c.hidden_dropout_prob)

        def forward(self, ids):
            pos = torch.arange(ids.shape[1], device=ids.device)
            h = self.word_embeddings(ids) + self.token_type_embeddings(torch.zeros_like(ids)) \
                + self.position_embeddings(pos)[None]
            return self.dropout(self.LayerNorm(h))

    class SelfAttention(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.heads = c.num_attention_heads
            self.head_dim = c.hidden_size // c.num_attention_heads
            self.query = nn.Linear(c.hidden_size, c.hidden_size)
            self.key = nn.Linear(c.hidden_size, c.hidden_size)
            self.value = nn.Linear(c.hidden_size, c.hidden_size)
            self.dropout_p = c.attention_probs_dropout_prob

        def forward(self, h, bias, want_probs):
            b, t, _ = h.shape

            def split(x):
                return x.view(b, t, self.heads, self.head_dim).transpose(1, 2)

            q, k, v = split(self.query(h)), split(self.key(h)), split(self.value(h))
            p = self.dropout_p if self.training else 0.0
            if want_probs:
                scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim) + bias
                probs = torch.softmax(scores, dim=-1)
                ctx = torch.nn.functional.dropout(probs, p, self.training) @ v
            else:
                probs = None
                ctx = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype), dropout_p=p)
            return ctx.transpose(1, 2).reshape(b, t, -1), probs

    class Layer(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.pre_layer_norm = c.pre_layer_norm
            if self.pre_layer_norm:
                self.pre_attention_ln = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
                self.post_attention_ln = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
            self.attention = Box()
            self.attention.self = SelfAttention(c)
            self.attention.output = Box()
            self.attention.output.dense = nn.Linear(c.hidden_size, c.hidden_size)
            self.intermediate = Box()
            self.intermediate.dense = nn.Linear(c.hidden_size, c.intermediate_size)
            self.output = Box()
            self.output.dense = nn.Linear(c.intermediate_size, c.hidden_size)
            if not self.pre_layer_norm:
                self.attention.output.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
                self.output.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
            self.dropout = nn.Dropout(c.hidden_dropout_prob)
            self.act = ACT2FN[c.hidden_act] if isinstance(c.hidden_act, str) else c.hidden_act

        def forward(self, x, bias, want_probs):
            if self.pre_layer_norm:
                ctx, probs = self.attention.self(self.pre_attention_ln(x), bias, want_probs)
                a = x + self.dropout(self.attention.output.dense(ctx))
                y = a + self.dropout(self.output.dense(self.act(self.intermediate.dense(self.post_attention_ln(a)))))
            else:  # standard (post-LN) BERT
                ctx, probs = self.attention.self(x, bias, want_probs)
                a = self.attention.output.LayerNorm(x + self.dropout(self.attention.output.dense(ctx)))
                y = self.output.LayerNorm(a + self.dropout(self.output.dense(self.act(self.intermediate.dense(a)))))
            return y, probs

    class Encoder(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.layer = nn.ModuleList([Layer(c) for _ in range(c.num_hidden_layers)])
            if c.pre_layer_norm and c.last_layer_norm:
                self.last_layer_ln = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    class GenaBertModel(nn.Module):
        """GENA-LM's BertModel (no pooler): ``forward(input_ids, attention_mask) -> EncoderOutput``."""

        def __init__(self, c):
            super().__init__()
            self.config = c
            self.embeddings = Embeddings(c)
            self.encoder = Encoder(c)

        def forward(self, input_ids, attention_mask=None, *, output_hidden_states=False, output_attentions=False):
            if attention_mask is None:
                attention_mask = torch.ones_like(input_ids)
            h = self.embeddings(input_ids)
            bias = (1.0 - attention_mask[:, None, None, :].to(h.dtype)) * torch.finfo(h.dtype).min
            states, attns = [], []
            for layer in self.encoder.layer:
                states.append(h)
                h, probs = layer(h, bias, output_attentions)
                attns.append(probs)
            if hasattr(self.encoder, "last_layer_ln"):
                h = self.encoder.last_layer_ln(h)
            states.append(h)
            return EncoderOutput(h, tuple(states) if output_hidden_states else None,
                                 tuple(attns) if output_attentions else None)

        def get_input_embeddings(self):
            return self.embeddings.word_embeddings

    class GenaBertForMaskedLM(nn.Module):
        """``bert`` (GenaBertModel) + ``cls.predictions`` (transform, decoder tied to the word embeddings, bias)."""

        def __init__(self, c):
            super().__init__()
            self.config = c
            self.bert = GenaBertModel(c)
            self.cls = Box()
            self.cls.predictions = Box()
            pred = self.cls.predictions
            pred.transform = Box()
            pred.transform.dense = nn.Linear(c.hidden_size, c.hidden_size)
            pred.transform.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
            pred.decoder = nn.Linear(c.hidden_size, c.vocab_size, bias=False)
            pred.bias = nn.Parameter(torch.zeros(c.vocab_size))
            pred.decoder.bias = pred.bias
            pred.decoder.weight = self.bert.embeddings.word_embeddings.weight
            self.act = ACT2FN[c.hidden_act] if isinstance(c.hidden_act, str) else c.hidden_act

        def head(self, h):
            t = self.cls.predictions.transform
            return self.cls.predictions.decoder(t.LayerNorm(self.act(t.dense(h))))

        def forward(self, input_ids, attention_mask=None, **kw):
            from transformers.modeling_outputs import MaskedLMOutput

            out = self.bert(input_ids, attention_mask, **kw)
            return MaskedLMOutput(logits=self.head(out.last_hidden_state), hidden_states=out.hidden_states,
                                  attentions=out.attentions)

        def get_input_embeddings(self):
            return self.bert.embeddings.word_embeddings

    return GenaBertModel, GenaBertForMaskedLM


def build_config(config: dict, folder: Path | None = None):
    """A BertConfig with GENA's keys (pre_layer_norm, last_layer_norm defaulting to pre_layer_norm, as in the
    published modeling_bert.py); refuses variants this package does not implement."""
    from transformers import BertConfig

    where = f"{folder}/config.json" if folder is not None else "config.json"
    pos = config.get("position_embedding_type", "absolute")
    if pos != "absolute":
        raise ModelNotAvailableError(
            f"{where}: position_embedding_type={pos!r} (GENA-LM RoPE / relative-position variants) is not "
            "implemented by this package; the GENA-LM BERT models with absolute positions (gena-lm-bert-base-t2t, "
            "-bert-base-lastln-t2t, -bert-large-t2t, -bert-base-t2t-multi) are. See README, 'Supported models'."
        )
    if config.get("sparse_config_cls") or config.get("sparse_attention"):
        raise ModelNotAvailableError(
            f"{where} asks for DeepSpeed sparse attention (GENA-LM bigbird-*-sparse models), which this package "
            "does not implement (its own code needs DeepSpeed's sparse kernels on a GPU); use a dense GENA-LM BERT."
        )
    if config.get("is_decoder") or config.get("add_cross_attention"):
        raise ModelNotAvailableError(f"{where}: a decoder / cross-attention GENA model is not supported here.")
    clean = {k: v for k, v in config.items() if k not in ("model_type", "auto_map", "transformers_version")}
    cfg = BertConfig(**clean)
    cfg.pre_layer_norm = bool(config.get("pre_layer_norm", False))
    cfg.last_layer_norm = bool(config.get("last_layer_norm", cfg.pre_layer_norm))
    if cfg.last_layer_norm and not cfg.pre_layer_norm:
        raise ModelNotAvailableError(f"{where}: last_layer_norm needs pre_layer_norm=true (as in GENA-LM's code).")
    return cfg


class GenaAdapter(ModelAdapter):
    family = "gena"
    objective = "masked"
    positions = "absolute"
    capabilities = frozenset({"masked_logprobs", "layer_readout", "hidden_states", "attention", "classifier",
                              "input_embeddings"})
    published = ("AIRI-Institute/gena-lm-bert-base-t2t", "AIRI-Institute/gena-lm-bert-base-lastln-t2t",
                 "AIRI-Institute/gena-lm-bert-large-t2t", "AIRI-Institute/gena-lm-bert-base-t2t-multi",
                 "AIRI-Institute/gena-lm-bert-base")

    @property
    def _bert(self):
        return getattr(self.model, "bert", self.model)

    def _encoder(self, ids, att, *, hidden_states, attentions):
        return self._bert(ids, att, output_hidden_states=hidden_states, output_attentions=attentions)

    def _head(self, h):
        return self.model.head(h)

    def _final_norm(self, h):
        ln = getattr(self._bert.encoder, "last_layer_ln", None)
        return h if ln is None else ln(h)

    def input_embeddings(self):
        self.require("input_embeddings", "static embeddings")
        return self._bert.embeddings.word_embeddings.weight

    def classifier(self, num_labels: int, *, init: str = "pretrained", seed: int = 0) -> ModelAdapter:
        """A pooled classifier ([CLS] hidden state -> dropout -> linear) on GENA's encoder (fresh head)."""
        import torch
        from transformers import set_seed

        GenaBertModel, _ = _modules()
        set_seed(seed)
        backbone = GenaBertModel(self.config)
        model = pooled_classifier(backbone, lambda m, i, a: m(i, a).last_hidden_state, self.hidden_size, num_labels,
                                  pooling="cls", dropout=float(self.config.hidden_dropout_prob))
        report = None
        if init == "pretrained":
            if self.path is None:
                raise ParameterError(f"{self.name} has no folder to read pre-trained weights from.")
            report = load_strict(model, self.path, head_patterns=CLASSIFIER_HEAD, ignorable_patterns=IGNORABLE,
                                 rename=lambda n: "backbone." + legacy_name(n)[5:] if n.startswith("bert.") else legacy_name(n))
        elif init != "random":
            raise ParameterError(f"init={init!r}: 'pretrained' or 'random'.")
        model.to(device=self.device, dtype=torch.float32).train()
        return type(self)(model, self.tokenizer, name=self.name, source=self.source, path=self.path,
                          device=self.device, dtype=torch.float32, head="classification", config=self.config,
                          load_report=report)


def matches(config: dict, folder: Path) -> bool:
    """GENA-LM's configs carry ``pre_layer_norm`` (a key of its own modeling_bert.py; plain BERT, DNABERT and
    GROVER configs never have it)."""
    if "alibi_starting_size" in config:
        return False
    return config.get("model_type") in ("bert", None) and ("pre_layer_norm" in config or "last_layer_norm" in config)


def load(folder: Path, config: dict, options: LoadOptions) -> GenaAdapter:
    import torch
    from transformers import set_seed

    from ..tokenization import load_tokenizer

    cfg = build_config(config, folder)
    tokenizer = load_tokenizer(folder, on_invalid=options.on_invalid)
    tokenizer.check_model_vocab(cfg.vocab_size, model_name=f"{folder}/config.json (vocab_size)")
    GenaBertModel, GenaBertForMaskedLM = _modules()
    set_seed(options.seed)
    if options.head == "mlm":
        model, heads, rename = GenaBertForMaskedLM(cfg), MLM_HEAD, legacy_name
    elif options.head == "base":
        model, heads, rename = GenaBertModel(cfg), BASE_HEAD, encoder_name
    else:
        raise ParameterError(f"head={options.head!r} is not available for GENA-LM here; use 'mlm' or 'base' "
                             "(fine-tuning builds its classifier with adapter.classifier()).")
    report = load_strict(model, folder, head_patterns=heads, ignorable_patterns=IGNORABLE, rename=rename)
    tokenizer.set_framing(("cls",), ("sep",))
    return GenaAdapter(model.to(torch.float32), tokenizer, name=options.name, source=options.source, path=folder,
                       device=torch.device("cpu"), dtype=torch.float32, head=options.head, config=cfg,
                       load_report=report)


register("gena", GenaAdapter, matches, load, priority=10)


# ------------------------------------------------------------------------------------------------
# A tiny random GENA-LM folder in the published layout
# ------------------------------------------------------------------------------------------------
#: stands in for the hub's modeling_bert.py: importing it fails, so a test proves the package never runs it
MODELING_STUB = '''"""Stand-in for GENA-LM's modeling_bert.py (written by dnalm_utils.families.gena.make_replica).

dnalm_utils implements GENA-LM itself and must never import this file.
"""
raise RuntimeError("remote code was executed: dnalm_utils must not import a GENA folder's modeling_bert.py")
'''


def gena_tokenizer_core(*, vocab_size: int = 96, seed: int = 0):
    """A ``tokenizers.Tokenizer`` shaped like GENA-LM's tokenizer.json: specials [UNK] [CLS] [SEP] [PAD] [MASK] and
    ``-`` (ids 0-5), the N{10,} -> ``-`` normaliser, the ``-`` split, BertProcessing, IUPAC single letters, and
    BPE merges trained on random DNA."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    from .replicas_bert import random_dna

    specials = ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]", "-"]
    core = Tokenizer(models.BPE(unk_token="[UNK]"))
    core.normalizer = normalizers.Sequence([normalizers.Strip(), normalizers.Replace(Regex("N{10,}"), "-")])
    core.pre_tokenizer = pre_tokenizers.Split("-", behavior="isolated")
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=list("ABCGKMNRSTWY"), show_progress=False)
    core.train_from_iterator(random_dna(200, 200, seed), trainer=trainer)
    core.post_processor = processors.BertProcessing(("[SEP]", 2), ("[CLS]", 1))
    core.decoder = decoders.BPEDecoder(suffix=" ")
    return core


def make_replica(folder: str | os.PathLike, *, last_layer_norm: bool | None = False, vocab_size: int = 96,
                 layers: int = 2, hidden: int = 32, heads: int = 2, intermediate: int = 64, max_positions: int = 128,
                 seed: int = 0, weights: str = "bin") -> Path:
    """Write a random GENA-LM folder as the hub ships it: config.json (BertForMaskedLM, auto_map to its
    modeling_bert.py, pre_layer_norm true, pad 3; ``last_layer_norm=False`` writes the key as
    gena-lm-bert-base-t2t has it, ``None`` leaves it out as the lastln / large models do, so it defaults to
    pre_layer_norm), pytorch_model.bin (or model.safetensors), tokenizer.json, tokenizer_config.json,
    special_tokens_map.json and a modeling_bert.py stand-in that raises when imported."""
    import torch

    from ..io import atomic_path
    from .replicas_bert import _write_weights

    core = gena_tokenizer_core(vocab_size=vocab_size, seed=seed)
    n_vocab = core.get_vocab_size(with_added_tokens=True)
    cfg = {
        "architectures": ["BertForMaskedLM"], "attention_probs_dropout_prob": 0.1,
        "auto_map": {"AutoModel": "modeling_bert.BertForMaskedLM"}, "gradient_checkpointing": False,
        "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "hidden_size": hidden, "initializer_range": 0.02,
        "intermediate_size": intermediate, "layer_norm_eps": 1e-12, "max_position_embeddings": max_positions,
        "model_type": "bert", "num_attention_heads": heads, "num_hidden_layers": layers, "pad_token_id": 3,
        "position_embedding_type": "absolute", "pre_layer_norm": True, "transformers_version": "4.33.0",
        "type_vocab_size": 2, "use_cache": True, "vocab_size": n_vocab,
    }
    if last_layer_norm is not None:
        cfg["last_layer_norm"] = bool(last_layer_norm)
    cfg = dict(sorted(cfg.items()))
    _, GenaBertForMaskedLM = _modules()
    torch.manual_seed(seed)
    model = GenaBertForMaskedLM(build_config(cfg))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("weight", "bias")):
                scale = 0.3 if "ln" in name or "LayerNorm" in name else 0.1
                p.copy_((1.0 if name.endswith("weight") and ("ln" in name or "LayerNorm" in name) else 0.0)
                        + scale * torch.randn_like(p))

    class _WithBuffer(torch.nn.Module):  # GENA saves the persistent position_ids buffer too
        def state_dict(self, *a, **k):
            sd = dict(model.state_dict())
            sd["bert.embeddings.position_ids"] = torch.arange(max_positions).expand((1, -1))
            return sd

    folder = Path(folder)
    with atomic_path(folder) as tmp:
        tmp.mkdir()
        (tmp / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
        _write_weights(_WithBuffer(), tmp, weights)
        core.save(str(tmp / "tokenizer.json"))
        (tmp / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "PreTrainedTokenizerFast"}) + "\n")
        (tmp / "special_tokens_map.json").write_text(json.dumps(
            {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]",
             "mask_token": "[MASK]"}) + "\n")
        (tmp / "modeling_bert.py").write_text(MODELING_STUB)
    return folder


__all__ = ["GenaAdapter", "build_config", "matches", "load", "make_replica", "gena_tokenizer_core"]
