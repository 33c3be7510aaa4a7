"""Hugging Face BERT: DNABERT-3..6, the project's zoo, GROVER, and DNABERT folders made with the original
DNABERT repository (its ``bert-config-6`` has ``architectures: BertForMaskedLM`` but no ``model_type``).

Layout (hub ``zhihan1996/DNA_bert_6``): config.json (``model_type: bert``), vocab.txt (5 specials + k-mers),
tokenizer_config.json (``do_lower_case: true``, ignored), model.safetensors or legacy pytorch_model.bin with
``bert.*`` and ``cls.predictions.*`` tensors. GROVER (``PoetschLab/GROVER``) is the same architecture with a
BPE vocabulary (vocab.txt + tokenizer.json). Framing: ``[CLS] tokens [SEP]``; absolute positions, so a
sequence takes at most ``max_position_embeddings - 2`` tokens.
"""

from __future__ import annotations

from pathlib import Path

from ..adapters import (
    EncoderOutput,
    LoadOptions,
    ModelAdapter,
    legacy_norm_name,
    load_strict,
    register,
)
from ..errors import ParameterError

#: checkpoint tensors that carry no weights (buffers older transformers saved)
IGNORABLE = (r"\.position_ids$",)
#: tensors of heads: the MLM head (cls.predictions), the next-sentence head (cls.seq_relationship), the pooler
MLM_HEAD = (r"^cls\.seq_relationship\.", r"^bert\.pooler\.")
CLASSIFIER_HEAD = (r"^classifier\.", r"^bert\.pooler\.", r"^cls\.")
BASE_HEAD = (r"^cls\.", r"^pooler\.", r"^classifier\.")


legacy_name = legacy_norm_name  # checkpoints of old transformers: LayerNorm gamma/beta -> weight/bias


def encoder_name(name: str) -> str:
    """A ForMaskedLM checkpoint's tensor name as the bare encoder (head="base") calls it: without ``bert.``."""
    return legacy_name(name[len("bert."):] if name.startswith("bert.") else name)


def states_at(bert, ids, att, rows, cols):
    """Last-layer states (n, hidden) of a transformers ``BertModel`` at token (rows[i], cols[i]) of a batch.

    ids / att: (batch, width) input ids and attention mask; rows, cols: (n,) long tensors. The same numbers as
    ``bert(ids, att).last_hidden_state[rows, cols]`` (up to float rounding), for less work: every layer but the
    last runs on all tokens, the last computes keys and values of all tokens but queries, attention output and
    feed-forward only at the chosen positions (an MLM loss reads about 15 % of them, a classifier one per row).
    For a 2-layer 128-wide model that is about 1.5x fewer multiply-adds per token. Dropout modules act as in
    the full forward (training mode: the same rates, other draws). Attention implementations other than
    "sdpa" and "eager", and decoder configurations, take the full forward."""
    import torch

    cfg = bert.config
    impl = getattr(cfg, "_attn_implementation", "eager")
    layers = bert.encoder.layer
    if impl not in ("sdpa", "eager") or cfg.is_decoder or getattr(cfg, "add_cross_attention", False):
        return bert(input_ids=ids, attention_mask=att).last_hidden_state[rows, cols]
    batch, n = ids.shape[0], rows.shape[0]
    order = None
    if n > 1 and bool((rows[1:] < rows[:-1]).any()):
        order = torch.argsort(rows, stable=True)
        rows, cols = rows[order], cols[order]
    counts = torch.bincount(rows, minlength=batch)
    first = torch.cumsum(counts, 0) - counts
    slot = torch.arange(n, device=rows.device) - first[rows]
    width = max(int(counts.max()) if n else 0, 1)
    index = torch.zeros(batch, width, dtype=torch.long, device=ids.device)
    index[rows, slot] = cols
    keep = att.bool()[:, None, None, :]  # (batch, 1, 1, width): keys a query may attend to
    h = bert.embeddings(input_ids=ids)
    if impl == "sdpa":
        mask = keep
    else:
        mask = torch.zeros(keep.shape, dtype=h.dtype, device=h.device).masked_fill(~keep, torch.finfo(h.dtype).min)
    for layer in layers[:-1]:
        h = layer(h, mask)
    last = layers[-1]
    sa = last.attention.self
    dim, heads, head_dim = h.shape[-1], sa.num_attention_heads, sa.attention_head_size
    chosen = h.gather(1, index[..., None].expand(-1, -1, dim))  # (batch, width, dim)
    split = lambda x: x.view(batch, x.shape[1], heads, head_dim).transpose(1, 2)
    # plain matrix products: for a few queries per row they beat the CPU's fused attention kernel several-fold
    scores = torch.matmul(split(sa.query(chosen)), split(sa.key(h)).transpose(-1, -2)) * sa.scaling
    weights = sa.dropout(torch.softmax(scores.masked_fill(~keep, float("-inf")), dim=-1))
    a = torch.matmul(weights, split(sa.value(h)))  # (batch, heads, width, head_dim)
    a = last.attention.output(a.transpose(1, 2).reshape(batch, width, dim), chosen)
    out = last.output(last.intermediate(a), a)[rows, slot]
    if order is not None:
        out = out[torch.argsort(order)]
    return out


class BertAdapter(ModelAdapter):
    family = "bert"
    objective = "masked"
    positions = "absolute"
    capabilities = frozenset({"masked_logprobs", "layer_readout", "hidden_states", "attention", "classifier",
                              "input_embeddings"})
    published = ("zhihan1996/DNA_bert_3", "zhihan1996/DNA_bert_4", "zhihan1996/DNA_bert_5",
                 "zhihan1996/DNA_bert_6", "PoetschLab/GROVER")

    @property
    def _bert(self):
        return getattr(self.model, "bert", self.model)

    def _encoder(self, ids, att, *, hidden_states, attentions):
        out = self._bert(input_ids=ids, attention_mask=att, output_hidden_states=hidden_states,
                         output_attentions=attentions)
        return EncoderOutput(out.last_hidden_state, out.hidden_states if hidden_states else None,
                             out.attentions if attentions else None)

    def _head(self, h):
        return self.model.cls.predictions(h)

    def _states_at(self, ids, att, rows, cols):
        return states_at(self._bert, ids, att, rows, cols)

    def classification_logits(self, ids, att):
        if self.head != "classification":
            return super().classification_logits(ids, att)
        import torch

        zero = torch.zeros(ids.shape[0], dtype=torch.long, device=ids.device)
        cls_state = states_at(self._bert, ids, att, torch.arange(ids.shape[0], device=ids.device), zero)
        return self.model.classifier(self.model.dropout(self._bert.pooler(cls_state[:, None])))

    def input_embeddings(self):
        self.require("input_embeddings", "static embeddings")
        return self._bert.embeddings.word_embeddings.weight

    def classifier(self, num_labels: int, *, init: str = "pretrained", seed: int = 0) -> ModelAdapter:
        import torch
        from transformers import BertForSequenceClassification, set_seed

        config = self.config.__class__.from_dict(self.config.to_dict())
        config.num_labels = num_labels
        set_seed(seed)
        model = BertForSequenceClassification(config)
        report = None
        if init == "pretrained":
            if self.path is None:
                raise ParameterError(f"{self.name} has no folder to read pre-trained weights from.")
            report = load_strict(model, self.path, head_patterns=CLASSIFIER_HEAD, ignorable_patterns=IGNORABLE,
                                 rename=legacy_name)
        model.to(device=self.device, dtype=torch.float32).train()
        return type(self)(model, self.tokenizer, name=self.name, source=self.source, path=self.path,
                          device=self.device, dtype=torch.float32, head="classification", config=config,
                          load_report=report)


def _is_mosaic(config: dict) -> bool:
    """DNABERT-2 / DNABERT-S (MosaicBERT layers) also say model_type bert; their own family takes them."""
    targets = " ".join(str(v) for v in (config.get("auto_map") or {}).values())
    return "alibi_starting_size" in config or "bert_layers" in targets


def matches(config: dict, folder: Path) -> bool:
    if _is_mosaic(config) or config.get("auto_map"):
        return False  # custom code: a specific family (or the remote-code family) decides
    if config.get("model_type") == "bert":
        return True
    archs = config.get("architectures") or []
    return config.get("model_type") is None and any(a.startswith("Bert") for a in archs)


def build_config(config: dict):
    """A transformers BertConfig from config.json (which may lack ``model_type``, as DNABERT's own configs do)."""
    from transformers import BertConfig

    clean = {k: v for k, v in config.items() if k not in ("model_type", "auto_map", "transformers_version")}
    return BertConfig(**clean)


def load(folder: Path, config: dict, options: LoadOptions) -> BertAdapter:
    import torch
    from transformers import BertForMaskedLM, BertModel, set_seed

    from ..tokenization import load_tokenizer

    tokenizer = load_tokenizer(folder, on_invalid=options.on_invalid)
    cfg = build_config(config)
    cfg._attn_implementation = options.attn_implementation or "sdpa"
    tokenizer.check_model_vocab(cfg.vocab_size, model_name=f"{folder}/config.json (vocab_size)")
    set_seed(options.seed)
    if options.head == "mlm":
        archs = config.get("architectures") or []
        if archs and not any(a.endswith(("ForMaskedLM", "ForPreTraining")) for a in archs):
            raise ParameterError(
                f"{folder} holds a {archs[0]} without a masked-language-model head, so it cannot predict masked "
                "tokens; use a pre-trained (MLM) checkpoint, or load it with head='base' for embeddings only."
            )
        model, heads = BertForMaskedLM(cfg), MLM_HEAD
    elif options.head == "base":
        model, heads = BertModel(cfg, add_pooling_layer=False), BASE_HEAD
    else:
        raise ParameterError(f"head={options.head!r} is not available for BERT here; use 'mlm' or 'base' "
                             "(fine-tuning builds its classifier with adapter.classifier()).")
    rename = legacy_name if options.head == "mlm" else encoder_name
    report = load_strict(model, folder, head_patterns=heads, ignorable_patterns=IGNORABLE, rename=rename)
    tokenizer.set_framing(("cls",), ("sep",))
    return BertAdapter(model.to(torch.float32), tokenizer, name=options.name, source=options.source, path=folder,
                       device=torch.device("cpu"), dtype=torch.float32, head=options.head, config=cfg,
                       load_report=report)


register("bert", BertAdapter, matches, load, priority=0)
