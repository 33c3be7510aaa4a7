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
