"""Tiny random checkpoints in the published on-disk layouts of BERT-family DNA models (tests, smoke runs).

Each ``make_*_replica`` writes a folder with the same file set, file formats, config keys and tokenizer
specials/ids as the published model, but with a few small random layers, so the loader's whole path (family
choice, tokenizer discovery, strict weight loading) is exercised without the real download.

Sources of the layouts (public copies read when this module was written):

* GROVER (hub ``PoetschLab/GROVER``): ``tokenizer_config.json`` (hub file at refs/pr/4, commit 5e45af8: a
  ``PreTrainedTokenizerFast`` with ``do_lower_case: false``, ``model_max_length: 512`` and its special tokens
  nested under ``special_tokens``) and ``special_tokens_map.json`` (commit 6efc18c: ``cls_token``, ``mask_token``,
  ``pad_token`` only) are reproduced byte for byte; the hub tags the model ``bert`` / ``PyTorch`` / Fill-Mask
  (``BertForMaskedLM`` in ``pytorch_model.bin``). Its vocabulary is a BPE vocabulary of the human genome (GROVER
  paper, Nature Machine Intelligence 2024): ``vocab.txt`` plus ``tokenizer.json``. The contents of those two
  files were not available; the replica assumes BERT's special-token order ([PAD] [UNK] [CLS] [SEP] [MASK] = ids
  0-4) and a BPE model (``tokenizer_model="wordpiece"`` writes the WordPiece alternative).
* The original DNABERT repository (``jerryji1993/DNABERT``): ``src/transformers/dnabert-config/bert-config-{3..6}/
  config.json`` (14 keys, ``architectures: [BertForMaskedLM]``, no ``model_type``) and ``vocab.txt`` (5 specials,
  then k-mers in ``itertools.product("ATCG")`` order); its fork of transformers 2.x (``src/transformers/
  configuration_bert.py``) adds ``split``, ``num_rnn_layer``, ``rnn_dropout``, ``rnn_hidden`` and ``rnn`` to every
  config it saves, and saves legacy ``pytorch_model.bin`` files (``config_style="saved"`` writes that form, as in
  the hub's ``zhihan1996/DNA_bert_3`` config).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..io import atomic_path
from ..tokenization import kmer_vocabulary

BERT_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")

#: hub PoetschLab/GROVER tokenizer_config.json (refs/pr/4, commit 5e45af8), verbatim content
GROVER_TOKENIZER_CONFIG = {
    "clean_up_tokenization_spaces": True,
    "do_lower_case": False,
    "model_max_length": 512,
    "special_tokens": {"mask_token": "[MASK]", "pad_token": "[PAD]", "sep_token": "[SEP]"},
    "tokenize_chinese_chars": False,
    "tokenizer_class": "PreTrainedTokenizerFast",
    "trust_remote_code": True,
}
#: hub PoetschLab/GROVER special_tokens_map.json (commit 6efc18c)
GROVER_SPECIAL_TOKENS_MAP = {"cls_token": "[CLS]", "mask_token": "[MASK]", "pad_token": "[PAD]"}

#: jerryji1993/DNABERT src/transformers/dnabert-config/bert-config-k/config.json (vocab_size = 4**k + 5)
DNABERT_REPO_CONFIG_KEYS = (
    "architectures", "attention_probs_dropout_prob", "hidden_act", "hidden_dropout_prob", "hidden_size",
    "initializer_range", "intermediate_size", "max_position_embeddings", "num_attention_heads",
    "num_hidden_layers", "type_vocab_size", "vocab_size",
)


def random_dna(n: int, length: int, seed: int = 0) -> list[str]:
    """``n`` random ACGT strings of ``length`` nt (training text for replica vocabularies)."""
    rng = np.random.default_rng(seed)
    return ["".join(rng.choice(list("ACGT"), size=length)) for _ in range(n)]


def _write_weights(model, tmp: Path, weights: str, *, legacy_names: bool = False) -> None:
    import torch

    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    if legacy_names:  # checkpoints of old transformers / TensorFlow ports: LayerNorm gamma / beta
        state = {k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v
                 for k, v in state.items()}
    if weights == "bin":
        torch.save(state, tmp / "pytorch_model.bin")
    elif weights == "safetensors":
        from safetensors.torch import save_file

        seen, unique = set(), {}
        for k, v in state.items():  # safetensors refuses shared storage: keep the first name of tied tensors
            key = (v.data_ptr(), tuple(v.shape))
            if key not in seen:
                seen.add(key)
                unique[k] = v
        save_file(unique, str(tmp / "model.safetensors"), metadata={"format": "pt"})
    else:
        raise ValueError(f"weights={weights!r}: 'bin' or 'safetensors'")


def _tiny_bert(vocab_size: int, *, layers: int, hidden: int, heads: int, intermediate: int, max_positions: int,
               seed: int, pad_token_id: int = 0):
    import torch
    from transformers import BertConfig, BertForMaskedLM

    config = BertConfig(vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=heads, intermediate_size=intermediate,
                        max_position_embeddings=max_positions, pad_token_id=pad_token_id,
                        architectures=["BertForMaskedLM"])
    torch.manual_seed(seed)
    model = BertForMaskedLM(config)
    with torch.no_grad():  # non-trivial biases / norms so a wrong mapping shows in the outputs
        for name, p in model.named_parameters():
            if name.endswith("bias") or "LayerNorm" in name:
                p.add_(0.05 * torch.randn_like(p))
    return config, model


# ------------------------------------------------------------------------------------------------
# GROVER
# ------------------------------------------------------------------------------------------------
def grover_tokenizer_core(*, vocab_size: int = 64, tokenizer_model: str = "bpe", seed: int = 0,
                          n_train: int = 200, train_length: int = 200):
    """A ``tokenizers.Tokenizer`` with GROVER's specials (ids 0-4) trained on random DNA."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers

    corpus = random_dna(n_train, train_length, seed)
    if tokenizer_model == "bpe":
        core = Tokenizer(models.BPE(unk_token="[UNK]"))
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(BERT_SPECIALS),
                                      initial_alphabet=list("ACGTN"), show_progress=False)
    elif tokenizer_model == "wordpiece":
        core = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=1000))
        trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=list(BERT_SPECIALS),
                                            initial_alphabet=list("ACGTN"), show_progress=False)
    else:
        raise ValueError(f"tokenizer_model={tokenizer_model!r}: 'bpe' or 'wordpiece'")
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.train_from_iterator(corpus, trainer=trainer)
    vocab = core.get_vocab()
    core.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    return core


def make_grover_replica(folder: str | os.PathLike, *, vocab_size: int = 64, tokenizer_model: str = "bpe",
                        layers: int = 2, hidden: int = 32, heads: int = 2, intermediate: int = 64,
                        max_positions: int = 128, seed: int = 0, weights: str = "bin") -> Path:
    """Write a random GROVER-layout folder: config.json (BertForMaskedLM, model_type bert), pytorch_model.bin
    (or model.safetensors), vocab.txt (the vocabulary in id order), tokenizer.json (a BPE vocabulary trained on
    random DNA, [PAD] [UNK] [CLS] [SEP] [MASK] = ids 0-4), and GROVER's published tokenizer_config.json and
    special_tokens_map.json."""
    core = grover_tokenizer_core(vocab_size=vocab_size, tokenizer_model=tokenizer_model, seed=seed)
    vocab = core.get_vocab()
    tokens = sorted(vocab, key=vocab.get)
    assert tokens[:5] == list(BERT_SPECIALS), tokens[:5]
    config, model = _tiny_bert(len(tokens), layers=layers, hidden=hidden, heads=heads, intermediate=intermediate,
                               max_positions=max_positions, seed=seed)
    folder = Path(folder)
    with atomic_path(folder) as tmp:
        tmp.mkdir()
        config.save_pretrained(str(tmp))
        _write_weights(model, tmp, weights)
        core.save(str(tmp / "tokenizer.json"))
        (tmp / "vocab.txt").write_text("\n".join(tokens) + "\n")
        (tmp / "tokenizer_config.json").write_text(json.dumps(GROVER_TOKENIZER_CONFIG, indent=2) + "\n")
        (tmp / "special_tokens_map.json").write_text(json.dumps(GROVER_SPECIAL_TOKENS_MAP) + "\n")
    return folder


# ------------------------------------------------------------------------------------------------
# The original DNABERT repository
# ------------------------------------------------------------------------------------------------
def dnabert_repo_config(k: int = 6, *, layers: int = 12, hidden: int = 768, heads: int = 12,
                        intermediate: int = 3072, max_positions: int = 512) -> dict:
    """``bert-config-k/config.json`` of jerryji1993/DNABERT: exactly its 14 keys (no model_type)."""
    return {
        "architectures": ["BertForMaskedLM"], "attention_probs_dropout_prob": 0.1, "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1, "hidden_size": hidden, "initializer_range": 0.02,
        "intermediate_size": intermediate, "max_position_embeddings": max_positions, "num_attention_heads": heads,
        "num_hidden_layers": layers, "type_vocab_size": 2, "vocab_size": 4**k + 5,
    }


def dnabert_saved_config(k: int = 6, **sizes) -> dict:
    """config.json as DNABERT's transformers 2.x fork saves it (hub ``zhihan1996/DNA_bert_3``): the repo's keys
    plus PretrainedConfig 2.x fields, ``model_type: bert`` and the fork's RNN-head keys."""
    cfg = dnabert_repo_config(k, **sizes)
    cfg.update({
        "bos_token_id": 0, "do_sample": False, "eos_token_ids": 0, "finetuning_task": None,
        "id2label": {"0": "LABEL_0", "1": "LABEL_1"}, "is_decoder": False, "label2id": {"LABEL_0": 0, "LABEL_1": 1},
        "layer_norm_eps": 1e-12, "length_penalty": 1.0, "max_length": 20, "model_type": "bert", "num_beams": 1,
        "num_labels": 2, "num_return_sequences": 1, "num_rnn_layer": 1, "output_attentions": False,
        "output_hidden_states": False, "output_past": True, "pad_token_id": 0, "pruned_heads": {},
        "repetition_penalty": 1.0, "rnn": "lstm", "rnn_dropout": 0.0, "rnn_hidden": sizes.get("hidden", 768),
        "split": 10, "temperature": 1.0, "top_k": 50, "top_p": 1.0, "torchscript": False, "use_bfloat16": False,
    })
    return dict(sorted(cfg.items()))


def make_dnabert_original_replica(folder: str | os.PathLike, k: int = 6, *, layers: int = 2, hidden: int = 32,
                                  heads: int = 2, intermediate: int = 64, max_positions: int = 128, seed: int = 0,
                                  config_style: str = "repo", weights: str = "bin",
                                  legacy_names: bool = False) -> Path:
    """Write a random checkpoint in the original DNABERT repository's layout: config.json with the keys of
    ``bert-config-k`` (``config_style="repo"``: no model_type) or as its transformers fork saves it
    (``"saved"``: model_type bert, ``split``, ``num_rnn_layer``, ``rnn``, ...), vocab.txt (5 specials + k-mers in
    ATCG order) and the legacy pytorch_model.bin (``weights="safetensors"`` for model.safetensors).
    ``legacy_names`` writes LayerNorm ``gamma`` / ``beta`` names (TensorFlow-era checkpoints)."""
    sizes = dict(layers=layers, hidden=hidden, heads=heads, intermediate=intermediate, max_positions=max_positions)
    if config_style == "repo":
        cfg = dnabert_repo_config(k, **sizes)
    elif config_style == "saved":
        cfg = dnabert_saved_config(k, **sizes)
    else:
        raise ValueError(f"config_style={config_style!r}: 'repo' or 'saved'")
    vocab = list(BERT_SPECIALS) + kmer_vocabulary(k)
    _, model = _tiny_bert(len(vocab), layers=layers, hidden=hidden, heads=heads, intermediate=intermediate,
                          max_positions=max_positions, seed=seed)
    folder = Path(folder)
    with atomic_path(folder) as tmp:
        tmp.mkdir()
        (tmp / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
        (tmp / "vocab.txt").write_text("\n".join(vocab) + "\n")
        _write_weights(model, tmp, weights, legacy_names=legacy_names)
    return folder


__all__ = [
    "make_grover_replica", "make_dnabert_original_replica", "grover_tokenizer_core", "dnabert_repo_config",
    "dnabert_saved_config", "random_dna", "GROVER_TOKENIZER_CONFIG", "GROVER_SPECIAL_TOKENS_MAP",
]
