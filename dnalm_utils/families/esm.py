"""Nucleotide Transformer (InstaDeep): v1 (Hugging Face ``EsmForMaskedLM``) and v2 (ESM with rotary positions
and a gated feed-forward, shipped as custom code through ``auto_map``).

The package runs both with its own torch modules (:class:`NTForMaskedLM`), whose state-dict names are the
published ones, so every tensor of a hub checkpoint is loaded strictly and no remote code runs.

Published layout. Sources: instadeepai/nucleotide-transformer ``nucleotide_transformer/tokenizers.py`` (v1 and
v2 vocabulary order, the tokenization rule), ``constants.py`` (nucleotide order) and ``pretrained.py`` (table of
vocabulary - 2 rows for v1, the full vocabulary for v2; ``<cls>`` + tokens without ``<eos>``); a copy of the v2 hub
repository in terry-r123/Cross-MolecularBenchmark ``model/ProtDNA/nt/nt_v2_100m_multi/`` (``config.json``,
``modeling_esm.py``: GLU, rotary buffers, LM head); public copies of the v1 hub ``tokenizer_config.json`` and of
NT converter scripts (position_ids buffer, contact head, 1002 / 2050 positions):

* **v1** (``InstaDeepAI/nucleotide-transformer-500m-human-ref``, ``-500m-1000g``, ``-2.5b-1000g``,
  ``-2.5b-multi-species``): config.json ``model_type: esm``, ``architectures: [EsmForMaskedLM]``,
  ``position_embedding_type: absolute``, ``max_position_embeddings: 1002``, ``pad_token_id: 1``,
  ``mask_token_id: 2``, ``vocab_size: 4105``, ``tie_word_embeddings: false``, ``token_dropout: false``,
  ``emb_layer_norm_before: false``. vocab.txt has 4,107 tokens in the order of NT's JAX
  ``StandardTokenizer``: ``<unk> <pad> <mask> <cls>``, the 4,096 6-mers (``product("ATCG")``), ``A T C G N``,
  then ``<eos> <bos>``; the embedding table has 4,105 rows (``alphabet_size = len(vocabulary) - 2`` in NT's
  ``pretrained.py``): the two trailing specials have no row and are never emitted. tokenizer_config.json:
  ``EsmTokenizer``, ``eos_token: null``, ``model_max_length: 1000``, so NT's tokenizer frames a sequence as
  ``<cls>`` + tokens, never an ``<eos>``. Weights: ``esm.embeddings.{word,position}_embeddings.weight``,
  the legacy ``esm.embeddings.position_ids`` buffer (int64 ``arange``), ``esm.encoder.layer.N.*``,
  ``esm.encoder.emb_layer_norm_after.*``, ``esm.contact_head.regression.*`` and ``lm_head.{dense,layer_norm,
  decoder,bias}``.
* **v2** (``InstaDeepAI/nucleotide-transformer-v2-{50m,100m,250m,500m}-multi-species``): the same names plus
  ``auto_map`` (``esm_config.EsmConfig``, ``modeling_esm.EsmForMaskedLM``, ...), ``position_embedding_type:
  rotary``, ``add_bias_fnn: false``, ``max_position_embeddings: 2050``, ``vocab_size: 4107`` (table = vocabulary;
  vocab.txt starts with all six specials ``<unk> <pad> <mask> <cls> <eos> <bos>``, NT's
  ``compute_tokens_to_ids_v2``). Its ``modeling_esm.py`` keeps an (unused) ``position_embeddings`` table, a
  persistent ``inv_freq`` buffer in every layer (``esm.encoder.layer.N.attention.self.rotary_embeddings.
  inv_freq``) and a gated feed-forward: ``intermediate.dense`` maps hidden -> 2 * intermediate (no bias),
  ``x1, x2 = split(h, intermediate)``, ``silu(x1) * x2``, then ``output.dense`` (no bias).

Equations (both versions, pre-LayerNorm ESM): embeddings = word embedding (+ learned position embedding at
``cumsum(id != pad) + pad`` for v1), zeroed at padding; per layer ``x += W_o attn(LN(x))`` with the query scaled
by ``head_dim ** -0.5`` *before* rotary (``rotate_half`` layout, ``inv_freq = 10000 ** (-2i / head_dim)``,
positions 0..T-1), ``x += W_2 f(W_1 LN(x))`` (v1: erf-GELU with biases; v2: the gate above); the last layer's
output goes through ``esm.encoder.emb_layer_norm_after`` (hidden state L is normalised, as in transformers).
MLM head: ``decoder(LN(gelu(dense(h)))) + bias``.

Limits: v1 has a position table, so a sequence takes at most ``max_position_embeddings - pad_token_id - 1 - 1``
= 999 tokens after ``<cls>`` (ESM's position ids start at ``pad_token_id + 1``; NT trained on 1,000 tokens
including ``<cls>``). v2's rotary positions have no table limit: :attr:`EsmAdapter.max_tokens` is None (NT v2 was
trained on 1,000-token windows, its tokenizer's ``model_max_length`` is 2,048; longer inputs run but are
extrapolation).

Classification: :func:`adapters.pooled_classifier` with ``"cls"`` pooling (the ``<cls>`` column) over the
family's own encoder, for v1 and v2 alike; state-dict names ``backbone.*`` (the checkpoint's ``esm.*``) and
``classifier.*``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from ..adapters import (
    legacy_norm_name,
    EncoderOutput,
    LoadOptions,
    ModelAdapter,
    load_strict,
    pooled_classifier,
    register,
    weight_files,
)
from ..errors import ModelNotAvailableError, ParameterError, VocabularyMismatchError

#: published ids of the family
PUBLISHED_V1 = ("InstaDeepAI/nucleotide-transformer-500m-human-ref", "InstaDeepAI/nucleotide-transformer-500m-1000g",
                "InstaDeepAI/nucleotide-transformer-2.5b-1000g", "InstaDeepAI/nucleotide-transformer-2.5b-multi-species")
PUBLISHED_V2 = tuple(f"InstaDeepAI/nucleotide-transformer-v2-{s}-multi-species" for s in ("50m", "100m", "250m", "500m"))

#: NT's special tokens; v1 puts the last two after the nucleotide tokens (and has no table rows for them)
SPECIALS_FRONT = ("<unk>", "<pad>", "<mask>", "<cls>")
SPECIALS_TRAILING = ("<eos>", "<bos>")
#: specials the package never puts into NT input (framing is <cls> + tokens; padding <pad>; masking <mask>)
NEVER_EMITTED = frozenset(SPECIALS_TRAILING)

#: heads: the MLM head and the contact head are not part of the encoder
MLM_HEAD: tuple = ()
BASE_HEAD = (r"^lm_head\.",)
CLASSIFIER_HEAD = (r"^classifier\.", r"^lm_head\.")


_rename = legacy_norm_name  # LayerNorm gamma/beta (old checkpoints, and transformers 5's ESM) -> weight/bias


def nt_vocabulary(version: int, k: int = 6) -> list[str]:
    """NT's vocab.txt order: v1 ``<unk> <pad> <mask> <cls>`` + k-mers + ``A T C G N`` + ``<eos> <bos>``;
    v2 all six specials first, then k-mers and ``A T C G N``. k-mers in ``product("ATCG")`` order."""
    from ..tokenization import SINGLE_NUCLEOTIDES, kmer_vocabulary

    body = kmer_vocabulary(k) + list(SINGLE_NUCLEOTIDES)
    if version == 1:
        return list(SPECIALS_FRONT) + body + list(SPECIALS_TRAILING)
    if version == 2:
        return list(SPECIALS_FRONT) + list(SPECIALS_TRAILING) + body
    raise ParameterError(f"version={version!r}: Nucleotide Transformer versions are 1 and 2.")


# ------------------------------------------------------------------------------------------------
# Config
# ------------------------------------------------------------------------------------------------
class NTConfig:
    """config.json of an NT folder as attributes (``model_type: esm``), with the defaults of ESM."""

    DEFAULTS = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                    max_position_embeddings=1026, layer_norm_eps=1e-12, position_embedding_type="absolute",
                    emb_layer_norm_before=False, token_dropout=False, pad_token_id=1, mask_token_id=None,
                    tie_word_embeddings=True, vocab_size=None)  # ESM's defaults (NT sets tie false)

    def __init__(self, config: dict):
        self._raw = dict(config)
        for key, value in {**self.DEFAULTS, **config}.items():
            setattr(self, key, value)
        if self.emb_layer_norm_before is None:
            self.emb_layer_norm_before = False
        #: the gated (SiLU-GLU) feed-forward of NT v2's modeling_esm.py, recognised by its ``add_bias_fnn`` key
        self.glu = "add_bias_fnn" in config
        self.ffn_bias = bool(config.get("add_bias_fnn", True))
        if self.position_embedding_type not in ("absolute", "rotary"):
            raise ModelNotAvailableError(
                f"position_embedding_type={self.position_embedding_type!r}: the Nucleotide Transformer family "
                "supports 'absolute' (v1) and 'rotary' (v2) positions."
            )
        if self.vocab_size is None or self.pad_token_id is None:
            raise ModelNotAvailableError("config.json lacks vocab_size or pad_token_id; it is not an NT config.")
        if self.hidden_size % self.num_attention_heads:
            raise ModelNotAvailableError(f"hidden_size {self.hidden_size} is not a multiple of "
                                         f"num_attention_heads {self.num_attention_heads}.")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def to_dict(self) -> dict:
        return dict(self._raw)


# ------------------------------------------------------------------------------------------------
# Modules (names = the published state-dict names)
# ------------------------------------------------------------------------------------------------
def _modules():
    import torch
    from torch import nn

    def gelu(x):
        """ESM's erf GELU."""
        return x * 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))

    def rotate_half(x):
        x1, x2 = x.chunk(2, dim=-1)
        return torch.cat((-x2, x1), dim=-1)

    class Rotary(nn.Module):
        def __init__(self, dim: int, persistent: bool):
            super().__init__()
            inv_freq = 1.0 / (10000 ** (torch.arange(0, dim, 2).float() / dim))
            self.register_buffer("inv_freq", inv_freq, persistent=persistent)

        def forward(self, q, k):
            t = torch.arange(q.shape[-2], device=q.device, dtype=torch.float32)
            freqs = torch.outer(t, self.inv_freq.float())
            emb = torch.cat((freqs, freqs), dim=-1)
            cos, sin = emb.cos().to(q.dtype), emb.sin().to(q.dtype)
            return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin

    class SelfAttention(nn.Module):
        def __init__(self, cfg: NTConfig, inv_freq_persistent: bool):
            super().__init__()
            h = cfg.hidden_size
            self.heads, self.head_dim = cfg.num_attention_heads, cfg.head_dim
            self.query, self.key, self.value = nn.Linear(h, h), nn.Linear(h, h), nn.Linear(h, h)
            self.rotary_embeddings = Rotary(self.head_dim, inv_freq_persistent) if cfg.position_embedding_type == "rotary" else None

        def split(self, x):
            b, t, _ = x.shape
            return x.view(b, t, self.heads, self.head_dim).transpose(1, 2)

        def forward(self, x, keep, need_weights: bool):
            q = self.split(self.query(x)) * self.head_dim ** -0.5  # ESM scales the query before rotary
            k, v = self.split(self.key(x)), self.split(self.value(x))
            if self.rotary_embeddings is not None:
                q, k = self.rotary_embeddings(q, k)
            if need_weights:
                scores = torch.matmul(q, k.transpose(-1, -2))
                scores = scores.masked_fill(~keep, torch.finfo(scores.dtype).min)
                weights = torch.softmax(scores, dim=-1)
                ctx = torch.matmul(weights, v)
            else:
                weights = None
                ctx = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=keep, scale=1.0)
            b, _, t, _ = ctx.shape
            return ctx.transpose(1, 2).reshape(b, t, self.heads * self.head_dim), weights

    class Dense(nn.Module):
        def __init__(self, n_in, n_out, bias=True):
            super().__init__()
            self.dense = nn.Linear(n_in, n_out, bias=bias)

    class Attention(nn.Module):
        def __init__(self, cfg, inv_freq_persistent):
            super().__init__()
            self.self = SelfAttention(cfg, inv_freq_persistent)
            self.output = Dense(cfg.hidden_size, cfg.hidden_size)
            self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)

    class Layer(nn.Module):
        def __init__(self, cfg: NTConfig, inv_freq_persistent: bool):
            super().__init__()
            self.glu = cfg.glu
            self.intermediate_size = cfg.intermediate_size
            self.attention = Attention(cfg, inv_freq_persistent)
            width = 2 * cfg.intermediate_size if cfg.glu else cfg.intermediate_size
            self.intermediate = Dense(cfg.hidden_size, width, bias=cfg.ffn_bias)
            self.output = Dense(cfg.intermediate_size, cfg.hidden_size, bias=cfg.ffn_bias)
            self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)

        def forward(self, x, keep, need_weights):
            ctx, weights = self.attention.self(self.attention.LayerNorm(x), keep, need_weights)
            x = x + self.attention.output.dense(ctx)
            h = self.intermediate.dense(self.LayerNorm(x))
            if self.glu:
                x1, x2 = h.split(self.intermediate_size, dim=-1)
                h = nn.functional.silu(x1) * x2
            else:
                h = gelu(h)
            return x + self.output.dense(h), weights

    class Encoder(nn.Module):
        def __init__(self, cfg, inv_freq_persistent):
            super().__init__()
            self.layer = nn.ModuleList(Layer(cfg, inv_freq_persistent) for _ in range(cfg.num_hidden_layers))
            self.emb_layer_norm_after = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)

    class Embeddings(nn.Module):
        def __init__(self, cfg: NTConfig, table_rows: int, position_ids_persistent: bool):
            super().__init__()
            self.cfg = cfg
            self.word_embeddings = nn.Embedding(table_rows, cfg.hidden_size, padding_idx=cfg.pad_token_id)
            # present in v1 (used) and v2 (kept by NT v2's modeling_esm.py, unused with rotary positions)
            self.position_embeddings = nn.Embedding(cfg.max_position_embeddings, cfg.hidden_size,
                                                    padding_idx=cfg.pad_token_id)
            self.layer_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps) if cfg.emb_layer_norm_before else None
            self.register_buffer("position_ids", torch.arange(cfg.max_position_embeddings).unsqueeze(0),
                                 persistent=position_ids_persistent)

        def forward(self, ids, att):
            cfg = self.cfg
            x = self.word_embeddings(ids)
            if cfg.token_dropout:
                is_mask = (ids == cfg.mask_token_id).unsqueeze(-1)
                x = x.masked_fill(is_mask, 0.0)
                observed = (ids == cfg.mask_token_id).sum(-1).float() / att.sum(-1).clamp(min=1)
                x = (x * (1 - 0.15 * 0.8) / (1 - observed)[:, None, None]).to(x.dtype)
            if cfg.position_embedding_type == "absolute":
                not_pad = ids.ne(cfg.pad_token_id).long()
                pos = torch.cumsum(not_pad, dim=1) * not_pad + cfg.pad_token_id
                x = x + self.position_embeddings(pos)
            if self.layer_norm is not None:
                x = self.layer_norm(x)
            return x * att.unsqueeze(-1).to(x.dtype)

    class ContactHead(nn.Module):
        """Kept so the checkpoint's ``esm.contact_head.regression`` loads; the package does not use it."""

        def __init__(self, cfg):
            super().__init__()
            self.regression = nn.Linear(cfg.num_hidden_layers * cfg.num_attention_heads, 1)

    class NTModel(nn.Module):
        """The encoder: ``forward(input_ids, attention_mask, output_hidden_states, output_attentions)``."""

        def __init__(self, cfg: NTConfig, *, table_rows: int, position_ids_persistent: bool = False,
                     inv_freq_persistent: bool = True):
            super().__init__()
            self.config = cfg
            self.embeddings = Embeddings(cfg, table_rows, position_ids_persistent)
            self.encoder = Encoder(cfg, inv_freq_persistent)
            self.contact_head = ContactHead(cfg)

        def get_input_embeddings(self):
            return self.embeddings.word_embeddings

        def forward(self, input_ids, attention_mask=None, output_hidden_states=False, output_attentions=False):
            if attention_mask is None:
                attention_mask = torch.ones_like(input_ids)
            x = self.embeddings(input_ids, attention_mask)
            keep = attention_mask.bool()[:, None, None, :]
            hidden, attentions = [], []
            for layer in self.encoder.layer:
                if output_hidden_states:
                    hidden.append(x)
                x, w = layer(x, keep, output_attentions)
                attentions.append(w)
            x = self.encoder.emb_layer_norm_after(x)
            if output_hidden_states:
                hidden.append(x)
            return EncoderOutput(x, tuple(hidden) if output_hidden_states else None,
                                 tuple(attentions) if output_attentions else None)

    class LMHead(nn.Module):
        def __init__(self, cfg: NTConfig, table_rows: int):
            super().__init__()
            self.dense = nn.Linear(cfg.hidden_size, cfg.hidden_size)
            self.layer_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
            self.decoder = nn.Linear(cfg.hidden_size, table_rows, bias=False)
            self.bias = nn.Parameter(torch.zeros(table_rows))

        def forward(self, h):
            return self.decoder(self.layer_norm(gelu(self.dense(h)))) + self.bias

    class NTForMaskedLM(nn.Module):
        def __init__(self, cfg: NTConfig, *, table_rows: int, position_ids_persistent: bool = False,
                     inv_freq_persistent: bool = True, tie: bool | None = None):
            super().__init__()
            self.config = cfg
            self.esm = NTModel(cfg, table_rows=table_rows, position_ids_persistent=position_ids_persistent,
                               inv_freq_persistent=inv_freq_persistent)
            self.lm_head = LMHead(cfg, table_rows)
            if cfg.tie_word_embeddings if tie is None else tie:
                self.lm_head.decoder.weight = self.esm.embeddings.word_embeddings.weight

        def get_input_embeddings(self):
            return self.esm.embeddings.word_embeddings

        def forward(self, input_ids, attention_mask=None, output_hidden_states=False, output_attentions=False):
            out = self.esm(input_ids, attention_mask, output_hidden_states, output_attentions)
            return self.lm_head(out.last_hidden_state)

    return NTModel, NTForMaskedLM


def build_model(cfg: NTConfig, *, head: str = "mlm", position_ids_persistent: bool = False,
                inv_freq_persistent: bool = True, tie: bool | None = None):
    """NTForMaskedLM (head="mlm") or NTModel (head="base") for ``cfg``, randomly initialised (torch defaults).
    ``tie``: share the decoder with the word embeddings (None: config.json's ``tie_word_embeddings``)."""
    NTModel, NTForMaskedLM = _modules()
    kw = dict(table_rows=int(cfg.vocab_size), position_ids_persistent=position_ids_persistent,
              inv_freq_persistent=inv_freq_persistent)
    return NTForMaskedLM(cfg, tie=tie, **kw) if head == "mlm" else NTModel(cfg, **kw)


def _init_weights(module, std: float = 0.02) -> None:
    """ESM's initialisation: normal(0, std) linear / embedding weights, zero biases and padding row, unit norms."""
    import torch
    from torch import nn

    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.Linear):
                m.weight.normal_(0.0, std)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.Embedding):
                m.weight.normal_(0.0, std)
                if m.padding_idx is not None:
                    m.weight[m.padding_idx].zero_()
            elif isinstance(m, nn.LayerNorm):
                m.weight.fill_(1.0)
                m.bias.zero_()


# ------------------------------------------------------------------------------------------------
# Checkpoint names (without reading the weights) and the vocabulary check
# ------------------------------------------------------------------------------------------------
def checkpoint_names(folder: Path) -> set[str]:
    """Tensor names of the checkpoint in ``folder``: from the index or safetensors headers (cheap), else the
    weights themselves."""
    folder = Path(folder)
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        if (folder / index_name).exists():
            try:
                return set(json.loads((folder / index_name).read_text())["weight_map"])
            except (json.JSONDecodeError, KeyError):
                break
    files = weight_files(folder)
    if all(f.suffix == ".safetensors" for f in files):
        from safetensors import safe_open

        names = set()
        for f in files:
            try:
                with safe_open(str(f), framework="pt") as handle:
                    names.update(handle.keys())
            except Exception as exc:
                raise ModelNotAvailableError(f"cannot read the weights in {f}: {str(exc).splitlines()[0][:200]}. "
                                             "The file is truncated or corrupted; download it again.") from None
        return names
    from ..adapters import read_state_dict

    return set(read_state_dict(folder))


def check_vocab(tokenizer, table_rows: int, *, model_name: str) -> None:
    """Accept a tokenizer whose ids fit the embedding table, or whose ids beyond the table are only specials the
    package never emits into NT input (NT v1: ``<eos>``/``<bos>`` at 4,105 and 4,106 of a 4,105-row table);
    refuse anything else (VocabularyMismatchError)."""
    n = tokenizer.vocab_size
    if n == table_rows:
        return
    extra = tokenizer.vocab[table_rows:] if n > table_rows else []
    emitted = {tokenizer.special_tokens[r] for r in (*tokenizer.prefix_roles, *tokenizer.suffix_roles, "pad", "mask")}
    if extra and all(t in NEVER_EMITTED and t not in emitted for t in extra):
        return
    why = (f"tokens beyond the table are {extra[:4]}{'...' if len(extra) > 4 else ''}, not only "
           f"{'/'.join(SPECIALS_TRAILING)} that NT input never holds" if extra else
           "the tokenizer has fewer tokens than the table")
    raise VocabularyMismatchError(
        f"{model_name} has an embedding table of {table_rows} tokens but the tokenizer ({tokenizer.description}) "
        f"has {n}: {why}. The vocab.txt does not belong to these weights; use the folder's own files."
    )


# ------------------------------------------------------------------------------------------------
# The adapter
# ------------------------------------------------------------------------------------------------
class EsmAdapter(ModelAdapter):
    family = "nucleotide-transformer"
    objective = "masked"
    positions = "absolute"  # set per instance: "absolute" (v1) or "rotary" (v2)
    capabilities = frozenset({"masked_logprobs", "layer_readout", "hidden_states", "attention", "classifier",
                              "input_embeddings"})
    published = PUBLISHED_V1 + PUBLISHED_V2

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.positions = self.config.position_embedding_type

    @property
    def version(self) -> int:
        return 2 if self.config.position_embedding_type == "rotary" else 1

    @property
    def _esm(self):
        for name in ("esm", "backbone"):
            if hasattr(self.model, name):
                return getattr(self.model, name)
        return self.model

    @property
    def max_tokens(self) -> int | None:
        if self.config.position_embedding_type != "absolute":
            return None  # rotary: no position table (NT v2 trained on 1,000-token windows)
        # ESM position ids run from pad_token_id + 1; the table ends at max_position_embeddings - 1
        return int(self.config.max_position_embeddings) - int(self.config.pad_token_id) - 1 - self.tokenizer.n_framing

    def _encoder(self, ids, att, *, hidden_states, attentions):
        return self._esm(ids, att, output_hidden_states=hidden_states, output_attentions=attentions)

    def _head(self, h):
        """Logits over the tokenizer's ids: the table's rows, then -inf for ids without a row (v1's <eos>/<bos>)."""
        import torch

        logits = self.model.lm_head(h)
        missing = self.tokenizer.vocab_size - logits.shape[-1]
        if missing > 0:
            pad = torch.full((*logits.shape[:-1], missing), float("-inf"), dtype=logits.dtype, device=logits.device)
            logits = torch.cat([logits, pad], dim=-1)
        return logits

    def _final_norm(self, h):
        return self._esm.encoder.emb_layer_norm_after(h)

    def input_embeddings(self):
        self.require("input_embeddings", "static embeddings")
        return self._esm.embeddings.word_embeddings.weight

    def classifier(self, num_labels: int, *, init: str = "pretrained", seed: int = 0) -> ModelAdapter:
        import torch

        if init not in ("pretrained", "random"):
            raise ParameterError(f"init={init!r}: use 'pretrained' or 'random'.")
        torch.manual_seed(seed)
        backbone = build_model(self.config, head="base", **self._persistence)
        model = pooled_classifier(backbone, _encode_last, self.hidden_size, num_labels, pooling="cls")
        report = None
        if init == "pretrained":
            if self.path is None:
                raise ParameterError(f"{self.name} has no folder to read pre-trained weights from.")
            report = load_strict(model, self.path, head_patterns=CLASSIFIER_HEAD,
                                 rename=lambda n: "backbone." + _rename(n)[len("esm."):] if n.startswith("esm.") else n)
        else:
            _init_weights(model)
        model.to(device=self.device, dtype=torch.float32).train()
        return type(self)(model, self.tokenizer, name=self.name, source=self.source, path=self.path,
                          device=self.device, dtype=torch.float32, head="classification", config=self.config,
                          load_report=report)

    @property
    def _persistence(self) -> dict:
        emb = self._esm.embeddings
        layers = self._esm.encoder.layer
        rot = layers[0].attention.self.rotary_embeddings if len(layers) else None
        return dict(position_ids_persistent="position_ids" not in emb._non_persistent_buffers_set,
                    inv_freq_persistent=rot is None or "inv_freq" not in rot._non_persistent_buffers_set)


def _encode_last(backbone, input_ids, attention_mask):
    return backbone(input_ids, attention_mask).last_hidden_state


# ------------------------------------------------------------------------------------------------
# Registry hooks
# ------------------------------------------------------------------------------------------------
def matches(config: dict, folder: Path) -> bool:
    if config.get("is_folding_model"):
        return False  # ESMFold: not a language model this family runs
    if config.get("model_type") == "esm":
        return True
    archs = config.get("architectures") or []
    return config.get("model_type") is None and any(str(a).startswith("Esm") for a in archs)


def load(folder: Path, config: dict, options: LoadOptions) -> EsmAdapter:
    import torch

    from ..tokenization import NonOverlappingKmerTokenizer, load_tokenizer

    folder = Path(folder)
    cfg = NTConfig(config)
    tokenizer = load_tokenizer(folder, on_invalid=options.on_invalid)
    if not isinstance(tokenizer, NonOverlappingKmerTokenizer):
        raise VocabularyMismatchError(
            f"{folder}: the vocabulary is read as {tokenizer.description}, not Nucleotide Transformer's "
            "non-overlapping k-mers (specials, all 4^k k-mers, A T C G N); this is not an NT folder."
        )
    tokenizer.set_framing(("cls",), ())  # NT: <cls> + tokens, never <eos>
    check_vocab(tokenizer, int(cfg.vocab_size), model_name=f"{folder}/config.json (vocab_size)")
    if options.head not in ("mlm", "base"):
        raise ParameterError(f"head={options.head!r} is not available for Nucleotide Transformer here; use 'mlm' or "
                             "'base' (fine-tuning builds its classifier with adapter.classifier()).")
    names = checkpoint_names(folder)
    persistence = dict(position_ids_persistent="esm.embeddings.position_ids" in names,
                       inv_freq_persistent=any(n.endswith("rotary_embeddings.inv_freq") for n in names))
    torch.manual_seed(options.seed)
    # a decoder of its own in the checkpoint is used as such, even where config.json says tie (never overwritten
    # by, or overwriting, the word embeddings); without one, tie_word_embeddings decides (strict load refuses
    # an untied model whose decoder is missing)
    tie = cfg.tie_word_embeddings and "lm_head.decoder.weight" not in names
    model = build_model(cfg, head=options.head, tie=tie, **persistence)
    if options.head == "mlm":
        report = load_strict(model, folder, head_patterns=MLM_HEAD, rename=_rename)
    else:
        report = load_strict(model, folder, head_patterns=BASE_HEAD,
                             rename=lambda n: _rename(n)[len("esm."):] if n.startswith("esm.") else _rename(n))
    if cfg.position_embedding_type == "absolute" and persistence["position_ids_persistent"]:
        pid = model.state_dict()[("esm." if options.head == "mlm" else "") + "embeddings.position_ids"]
        if not torch.equal(pid.cpu(), torch.arange(cfg.max_position_embeddings).unsqueeze(0)):
            report.notes.append("esm.embeddings.position_ids is not arange(max_position_embeddings); "
                                "positions are computed ESM's way (cumsum of non-padding tokens) regardless")
    return EsmAdapter(model.to(torch.float32), tokenizer, name=options.name, source=options.source, path=folder,
                      device=torch.device("cpu"), dtype=torch.float32, head=options.head, config=cfg,
                      load_report=report)


register("nucleotide-transformer", EsmAdapter, matches, load, priority=10)


# ------------------------------------------------------------------------------------------------
# Tiny random checkpoints in the published layout
# ------------------------------------------------------------------------------------------------
#: files of an NT v2 folder that hold NT's own Python code; the replica writes inert placeholders with these
#: names (the package never imports them: it runs NT v2 with its own modules)
V2_CODE_FILES = ("esm_config.py", "modeling_esm.py")


def replica_config(version: int, *, k: int = 6, layers: int = 2, hidden: int = 32, heads: int = 2,
                   intermediate: int = 64, max_positions: int | None = None) -> dict:
    """config.json of a tiny NT v1 / v2 with the published keys and values (sizes aside)."""
    vocab = nt_vocabulary(version, k)
    common = {
        "attention_probs_dropout_prob": 0.0, "emb_layer_norm_before": False, "esmfold_config": None,
        "hidden_dropout_prob": 0.0, "hidden_size": hidden, "initializer_range": 0.02,
        "intermediate_size": intermediate, "is_folding_model": False, "layer_norm_eps": 1e-12, "mask_token_id": 2,
        "model_type": "esm", "num_attention_heads": heads, "num_hidden_layers": layers, "pad_token_id": 1,
        "tie_word_embeddings": False, "token_dropout": False, "torch_dtype": "float32", "use_cache": False,
        "vocab_list": None,
    }
    if version == 1:
        return {**common, "architectures": ["EsmForMaskedLM"], "max_position_embeddings": max_positions or 1002,
                "position_embedding_type": "absolute", "transformers_version": "4.25.0.dev0",
                "vocab_size": len(vocab) - len(SPECIALS_TRAILING)}
    if version == 2:
        return {**common, "add_bias_fnn": False,
                "architectures": ["EsmForMaskedLM", "EsmForTokenClassification", "EsmForSequenceClassification"],
                "auto_map": {"AutoConfig": "esm_config.EsmConfig",
                             "AutoModelForMaskedLM": "modeling_esm.EsmForMaskedLM",
                             "AutoModelForTokenClassification": "modeling_esm.EsmForTokenClassification",
                             "AutoModelForSequenceClassification": "modeling_esm.EsmForSequenceClassification"},
                "max_position_embeddings": max_positions or 2050, "position_embedding_type": "rotary",
                "transformers_version": "4.32.0.dev0", "vocab_size": len(vocab)}
    raise ParameterError(f"version={version!r}: Nucleotide Transformer versions are 1 and 2.")


def make_replica(folder, *, version: int = 1, k: int = 6, layers: int = 2, hidden: int = 32, heads: int = 2,
                 intermediate: int = 64, seed: int = 0, max_positions: int | None = None) -> Path:
    """Write a random NT v1 / v2 checkpoint in the published layout: config.json, vocab.txt (NT's order),
    tokenizer_config.json (``EsmTokenizer``, ``eos_token: null``, ``model_max_length`` =
    max_position_embeddings - 2), special_tokens_map.json, model.safetensors with the published tensor names
    (v1: legacy ``esm.embeddings.position_ids``; v2: per-layer ``inv_freq`` and the unused position table;
    both: ``esm.contact_head``), and for v2 placeholders named like its custom-code files.

    Weights are random but not trivial (LayerNorm scales around 1, biases non-zero) so the tests see every
    tensor's effect. Table rows: v1 = vocabulary - 2 (no rows for the trailing ``<eos>``/``<bos>``); v2 = vocabulary."""
    import torch
    from safetensors.torch import save_file

    from ..io import atomic_path

    config = replica_config(version, k=k, layers=layers, hidden=hidden, heads=heads, intermediate=intermediate,
                            max_positions=max_positions)
    cfg = NTConfig(config)
    torch.manual_seed(seed)
    model = build_model(cfg, head="mlm", position_ids_persistent=version == 1, inv_freq_persistent=version == 2)
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for name, t in model.state_dict().items():
        t = t.detach().clone().contiguous()
        if t.is_floating_point() and not name.endswith("inv_freq"):
            noise = torch.randn(t.shape, generator=gen)
            if name.endswith(("LayerNorm.weight", "layer_norm.weight", "emb_layer_norm_after.weight")):
                t = 1.0 + 0.1 * noise
            elif name.endswith("bias"):
                t = 0.05 * noise
            else:
                t = 0.1 * noise
            if name.endswith(("word_embeddings.weight", "position_embeddings.weight")):
                t[cfg.pad_token_id] = 0.0  # nn.Embedding(padding_idx=pad) keeps that row zero
        state[name] = t
    vocab = nt_vocabulary(version, k)
    folder = Path(folder)
    with atomic_path(folder) as tmp:
        tmp.mkdir(parents=True, exist_ok=True)
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        (tmp / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        (tmp / "vocab.txt").write_text("\n".join(vocab) + "\n")
        (tmp / "tokenizer_config.json").write_text(json.dumps(
            {"clean_up_tokenization_spaces": True, "eos_token": None,
             "model_max_length": config["max_position_embeddings"] - 2, "tokenizer_class": "EsmTokenizer"},
            indent=2, sort_keys=True) + "\n")
        (tmp / "special_tokens_map.json").write_text(json.dumps(
            {"cls_token": "<cls>", "mask_token": "<mask>", "pad_token": "<pad>", "unk_token": "<unk>"},
            indent=2, sort_keys=True) + "\n")
        if version == 2:
            for name in V2_CODE_FILES:
                (tmp / name).write_text(
                    f'"""Placeholder for NT v2\'s {name} (custom code named by config.json auto_map). dnalm_utils '
                    'runs NT v2 with its own modules and never imports this file."""\n'
                    'raise ImportError("replica placeholder: no NT code is shipped here")\n')
    return folder


__all__ = ["EsmAdapter", "NTConfig", "build_model", "check_vocab", "checkpoint_names", "load", "make_replica",
           "matches", "nt_vocabulary", "replica_config", "PUBLISHED_V1", "PUBLISHED_V2"]
