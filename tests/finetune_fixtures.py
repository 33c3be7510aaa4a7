"""Shared by test_finetuning.py and test_finetune_runs.py: quick settings, a GC-content task on random sequences
and two tiny checkpoints (DNABERT-style 3-mers, NT-style 2-mers) built in a temporary folder."""

from __future__ import annotations

import numpy as np
import pytest

from dnalm_utils import finetuning as FT
from dnalm_utils import models as M

QUICK = FT.FinetuneSettings(learning_rate=5e-3, batch_size=16, max_steps=6, eval_steps=2, patience=5, precision="fp32",
                            eval_batch_size=64)


def random_seqs(n, length=24, seed=0):
    rng = np.random.default_rng(seed)
    return ["".join(rng.choice(list("ACGT"), length)) for _ in range(n)]


def gc_labels(seqs):
    """1 where a sequence is more than half G/C."""
    return np.array([int(s.count("G") + s.count("C") > len(s) / 2) for s in seqs])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {"dnabert3": M.make_tiny_dnabert(root / "dnabert3", k=3, hidden=16, intermediate=32, max_positions=64),
            "nt2": M.make_tiny_nt(root / "nt2", k=2, hidden=16, intermediate=32, max_positions=64)}


@pytest.fixture(scope="module")
def data():
    train, valid, test = random_seqs(96, seed=1), random_seqs(32, seed=2), random_seqs(32, seed=3)
    return (train, gc_labels(train)), (valid, gc_labels(valid)), (test, gc_labels(test))
