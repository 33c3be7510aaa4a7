"""Hand-built torch modules shared by the probe tests (wrapped in ``adapters.ModuleAdapter``)."""

from __future__ import annotations

from types import SimpleNamespace

import torch


class ConstantModel(torch.nn.Module):
    """Always predicts token ``favourite`` at every position (logit 20, every other token 0)."""

    def __init__(self, vocab_size: int, favourite: int):
        super().__init__()
        self.vocab_size, self.favourite = vocab_size, favourite

    def forward(self, input_ids, attention_mask=None):
        logits = torch.zeros(*input_ids.shape, self.vocab_size)
        logits[..., self.favourite] = 20.0
        return SimpleNamespace(logits=logits)


class Spy(torch.nn.Module):
    """Wraps a model and keeps every input_ids batch it sees."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.seen = inner, []

    def forward(self, input_ids, attention_mask=None):
        self.seen.append(input_ids.clone())
        return self.inner(input_ids, attention_mask)


class MixingModel(torch.nn.Module):
    """Seeded random logits that depend on the whole input: each position's logits are a fixed random map of the
    sum of the input's token embeddings plus its own (so every window and every masking gives other outputs)."""

    def __init__(self, vocab_size: int, seed: int = 0, dim: int = 16):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.embed = torch.nn.Parameter(torch.randn(vocab_size, dim, generator=g))
        self.out = torch.nn.Parameter(torch.randn(dim, vocab_size, generator=g) * 2)

    def forward(self, input_ids, attention_mask=None):
        e = self.embed[input_ids]  # (batch, tokens, dim)
        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        context = (e * mask[..., None]).sum(1, keepdim=True) / mask.sum(1)[:, None, None]
        return SimpleNamespace(logits=torch.tanh(e + context) @ self.out)
