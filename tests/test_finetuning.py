"""Fine-tuning on tiny checkpoints in temporary folders: the Trainer run, early stopping with the best checkpoint
restored, the random-initialisation control, determinism, the dataset and collator. (Grids of runs and their
cache: test_finetune_runs.py.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dnalm_utils import finetuning as FT
from dnalm_utils import models as M
from dnalm_utils import tokenization as T
from dnalm_utils.errors import ParameterError

from finetune_fixtures import QUICK, data, tiny  # noqa: F401 (fixtures)
from finetune_fixtures import gc_labels as _gc_labels
from finetune_fixtures import random_seqs as _seqs


def _encoder_state(model):
    """Encoder weights that a masked-LM checkpoint holds: every tensor but the classification head and BERT's pooler
    (not in the checkpoint: new, like the head), named without the wrapper's prefix (bert. / backbone.)."""
    strip = lambda k: k.split(".", 1)[1] if k.startswith(("bert.", "backbone.")) else k  # noqa: E731
    return {strip(k): v.detach().clone() for k, v in model.state_dict().items()
            if not k.startswith(("classifier.", "dropout.")) and "pooler." not in k}


def _differs(a, b):
    return any(not torch.equal(a[k], b[k]) for k in a if a[k].is_floating_point())


def test_finetune_trains_and_random_init_differs(tiny, data, tmp_path):
    train, valid, _ = data
    original = _encoder_state(M.load_model(tiny["dnabert3"], head="base", dtype="float32").model)
    pre = FT.classification_model(tiny["dnabert3"], 2, init="pretrained", seed=0)
    assert not _differs(original, _encoder_state(pre.model))  # starts from the checkpoint
    rnd = FT.classification_model(tiny["dnabert3"], 2, init="random", seed=0)
    assert _differs(original, _encoder_state(rnd.model))  # same architecture, re-initialised weights
    assert rnd.model.config.to_dict()["hidden_size"] == pre.model.config.hidden_size
    assert sum(p.numel() for p in rnd.model.parameters()) == sum(p.numel() for p in pre.model.parameters())
    res = FT.finetune(tiny["dnabert3"], train, valid, num_labels=2, seed=0, settings=QUICK, work_dir=tmp_path)
    assert _differs(original, _encoder_state(res.lm.model))  # fine-tuning moved the encoder
    assert res.steps == 6 and not res.stopped_early and list(res.history.step) == [2, 4, 6]
    assert not any(tmp_path.iterdir())  # Trainer checkpoints are removed
    probs = FT.predict_proba(res.lm, valid[0])
    assert probs.shape == (32, 2) and np.allclose(probs.sum(1), 1)
    r2 = FT.finetune(tiny["dnabert3"], train, valid, num_labels=2, init="random", seed=0, settings=QUICK)
    assert _differs(_encoder_state(res.lm.model), _encoder_state(r2.lm.model))


def test_early_stopping_restores_the_best_checkpoint(tiny, data):
    rng = np.random.default_rng(0)
    train = (data[0][0], rng.integers(0, 4, 96))  # noise labels and a huge learning rate: validation loss rises
    valid = (data[1][0], rng.integers(0, 4, 32))
    s = FT.FinetuneSettings(learning_rate=0.3, batch_size=16, max_steps=60, eval_steps=1, patience=2, precision="fp32",
                            warmup_ratio=0.0)
    res = FT.finetune(tiny["nt2"], train, valid, num_labels=4, seed=1, settings=s)
    assert res.stopped_early and res.steps < 60
    losses = res.history.dropna(subset=["eval_loss"]).set_index("step").eval_loss
    assert res.best_step == int(losses.idxmin()) and res.best_eval_loss == pytest.approx(losses.min())
    assert res.steps - res.best_step >= 2  # stopped after `patience` evaluations without improvement
    probs = FT.predict_proba(res.lm, valid[0])
    nll = -np.mean(np.log(probs[np.arange(32), valid[1]]))
    assert nll == pytest.approx(res.best_eval_loss, rel=1e-4)  # the model returned is the best one


def test_finetune_is_deterministic_for_a_seed(tiny, data):
    train, valid, _ = data
    a = FT.finetune(tiny["nt2"], train, valid, num_labels=2, seed=5, settings=QUICK)
    b = FT.finetune(tiny["nt2"], train, valid, num_labels=2, seed=5, settings=QUICK)
    c = FT.finetune(tiny["nt2"], train, valid, num_labels=2, seed=6, settings=QUICK)
    assert not _differs(_encoder_state(a.lm.model), _encoder_state(b.lm.model))
    assert np.allclose(a.history.eval_loss, b.history.eval_loss)
    assert _differs(_encoder_state(a.lm.model), _encoder_state(c.lm.model))


def test_dataset_tokenizes_each_sequence_alone_and_checks_input():
    tok = T.OverlappingKmerTokenizer(3)
    seqs = ["ACGTACGT", "TTTTGGG"]
    ds = FT.SequenceDataset(tok, seqs, [0, 1])
    for s, enc, item in zip(seqs, ds.encodings, (ds[0], ds[1])):
        assert enc.spans.max() <= len(s)
        assert item["input_ids"][0] == tok.cls_id and item["input_ids"][-1] == tok.sep_id
        assert item["input_ids"][1:-1].tolist() == tok.encode(s).ids.tolist()
    batch = FT.PadCollator(tok)([ds[0], ds[1]])
    assert batch["input_ids"].shape == (2, 8) and batch["attention_mask"][1].tolist() == [1] * 7 + [0]
    with pytest.raises(ParameterError, match="labels"):
        FT.SequenceDataset(tok, seqs, [0])
    with pytest.raises(ParameterError, match="up to 98 tokens .* more than the model's 50"):
        FT.SequenceDataset(tok, ["A" * 100], [0], max_tokens=50)
    with pytest.raises(ParameterError, match="learning_rate"):
        FT.FinetuneSettings(learning_rate=0)
    with pytest.raises(ParameterError, match="init"):
        FT.classification_model("x", 2, init="frozen")


def test_model_tokenizer_is_the_classifiers_tokenizer(tiny):
    tok, limit = FT.model_tokenizer(tiny["dnabert3"])
    lm = FT.classification_model(tiny["dnabert3"], 2)
    assert tok.description == lm.tokenizer.description and limit == lm.max_tokens
    assert tok.encode("ACGTACGT").ids.tolist() == lm.tokenizer.encode("ACGTACGT").ids.tolist()


def test_random_twin_starts_from_the_step0_weights_when_the_model_has_them(tmp_path):
    import torch

    folder = M.make_tiny_dnabert(tmp_path / "zoo3", k=3, hidden=16, intermediate=32, max_positions=64, seed=1)
    step0 = M.make_tiny_dnabert(folder / "snapshots" / "step-0", k=3, hidden=16, intermediate=32, max_positions=64,
                                seed=7)
    plain = M.make_tiny_dnabert(tmp_path / "plain3", k=3, hidden=16, intermediate=32, max_positions=64, seed=1)

    def word_embeddings(lm):
        return lm.model.get_input_embeddings().weight.detach().clone()

    twin = FT.classification_model(str(folder), 2, init="random", seed=3)
    start = M.load_model(step0)
    assert torch.equal(word_embeddings(twin), start.model.get_input_embeddings().weight)
    assert FT.step0_folder(str(folder)) == step0 and "step-0 weights" in FT.random_init_scheme(str(folder))
    # without step-0 weights, the family re-initialises every weight (seeded): not the checkpoint's
    assert FT.step0_folder(str(plain)) is None and "default" in FT.random_init_scheme(str(plain))
    rand = FT.classification_model(str(plain), 2, init="random", seed=3)
    pre = FT.classification_model(str(plain), 2, init="pretrained", seed=3)
    assert not torch.equal(word_embeddings(rand), word_embeddings(pre))
    assert torch.equal(word_embeddings(rand), word_embeddings(FT.classification_model(str(plain), 2, init="random",
                                                                                      seed=3)))


def test_uses_bf16_follows_the_precision_setting_on_cpu():
    import torch

    from dnalm_utils.finetuning import uses_bf16

    assert uses_bf16(torch.device("cpu"), "auto") is True
    assert uses_bf16(torch.device("cpu"), "fp32") is False
    assert uses_bf16(torch.device("meta"), "auto") is False
