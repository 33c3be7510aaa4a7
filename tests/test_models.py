"""Model loading on tiny checkpoints written in the real on-disk formats (DNABERT, NT, this project's)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from dnalm_utils import models as M
from dnalm_utils import tokenization as T
from dnalm_utils.errors import ModelNotAvailableError, ParameterError, VocabularyMismatchError

SEQ = "ACGTTGCAAGTCCGATAGGCTTACGATCGATCGTAGCTAGCATCGAT"


@pytest.fixture(scope="module")
def dnabert6(tmp_path_factory):
    return M.make_tiny_dnabert(tmp_path_factory.mktemp("m") / "DNA_bert_6", k=6, seed=3)


@pytest.mark.parametrize("k", [3, 4, 5, 6])
def test_dnabert_format_loads_with_right_tokenizer_and_no_unk(tmp_path, k):
    folder = M.make_tiny_dnabert(tmp_path / f"DNA_bert_{k}", k=k)
    cfg = json.loads((folder / "tokenizer_config.json").read_text())
    assert cfg["do_lower_case"] is True  # the hub's pitfall is reproduced on disk...
    lm = M.load_model(folder, device="cpu")
    assert isinstance(lm.tokenizer, T.OverlappingKmerTokenizer) and lm.tokenizer.k == k
    batch = lm.tokenizer.batch_encode([SEQ, SEQ.lower()])
    assert (batch["input_ids"] != lm.tokenizer.unk_id).all()  # ...and defused
    assert (batch["input_ids"][0] == batch["input_ids"][1]).all()
    hf_ids = lm.hf_tokenizer(lm.tokenizer.kmer_string(SEQ))["input_ids"]
    assert hf_ids == batch["input_ids"][0].tolist()
    with torch.no_grad():
        logits = lm.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    assert logits.shape == (2, len(SEQ) - k + 3, 4**k + 5)


def test_loaded_weights_are_the_saved_ones(tmp_path):
    """Both safetensors and DNABERT's legacy pytorch_model.bin load the saved weights (not a fresh init)."""
    a = M.make_tiny_dnabert(tmp_path / "a", k=4, seed=11)
    b = M.make_tiny_dnabert(tmp_path / "b", k=4, seed=11, legacy_bin=True)
    assert (b / "pytorch_model.bin").exists() and not (b / "model.safetensors").exists()
    wa = M.load_model(a).model.bert.embeddings.word_embeddings.weight
    wb = M.load_model(b).model.bert.embeddings.word_embeddings.weight
    torch.manual_seed(11)
    from transformers import BertConfig, BertForMaskedLM

    fresh = BertForMaskedLM(BertConfig.from_pretrained(a)).bert.embeddings.word_embeddings.weight
    assert torch.equal(wa, wb) and torch.equal(wa, fresh)


def test_nt_style_esm_model_loads(tmp_path):
    lm = M.load_model(M.make_tiny_nt(tmp_path / "nt"), device="cpu")
    assert lm.family == "nucleotide-transformer" and lm.positions == "absolute"
    assert isinstance(lm.tokenizer, T.NonOverlappingKmerTokenizer) and lm.tokenizer.k == 6
    assert lm.tokenizer.vocab_size == 4107 and lm.input_embeddings().shape[0] == 4105  # NT v1: <eos>/<bos> not in the table
    batch = lm.tokenizer.batch_encode([SEQ])
    ids = batch["input_ids"][0].tolist()
    assert ids[0] == lm.tokenizer.token_to_id["<cls>"] and ids[1:] == lm.tokenizer.encode(SEQ).ids.tolist()  # no <eos>
    logp = lm.masked_logprobs(batch["input_ids"].numpy(), batch["attention_mask"].numpy(), [np.array([1, 2])], 4)[0]
    assert logp.shape == (2, 4107) and np.allclose(np.exp(logp).sum(1), 1, atol=1e-5)


def test_project_saved_model_round_trip(tmp_path, dnabert6):
    """save_model writes model + our tokenizer folder; load_model finds it by zoo name too."""
    lm = M.load_model(dnabert6)
    M.save_model(lm.model, lm.tokenizer, tmp_path / "zoo" / "tiny6", card="# tiny\n", extra={"manifest.json": {"a": 1}})
    assert (tmp_path / "zoo" / "tiny6" / T.METADATA_FILE).exists()
    again = M.load_model("tiny6", models_dir=tmp_path / "zoo")
    assert again.source == "zoo"
    assert torch.equal(again.model.cls.predictions.decoder.weight, lm.model.cls.predictions.decoder.weight)


def test_model_digest_names_what_the_model_computes_not_how_it_was_made(tmp_path, dnabert6):
    """Two saves of the same weights with other records (card, manifest, loss curve, snapshots) share a digest;
    other weights do not; every record is still checked for damage."""
    lm = M.load_model(dnabert6)
    snaps = tmp_path / "snaps"
    (snaps / "step-0").mkdir(parents=True)
    (snaps / "step-0" / "w.txt").write_text("first")
    a = M.save_model(lm.model, lm.tokenizer, tmp_path / "a", card="# trained in 10 s\n",
                     extra={"pretrain_manifest.json": {"wall_time_s": 10}}, files={"loss_curve.csv": "step,loss\n"},
                     subfolders={"snapshots": snaps})
    (snaps / "step-0" / "w.txt").write_text("second")
    b = M.save_model(lm.model, lm.tokenizer, tmp_path / "b", card="# trained in 12 s\n",
                     extra={"pretrain_manifest.json": {"wall_time_s": 12}}, files={"loss_curve.csv": "step,loss\n1,2\n"},
                     subfolders={"snapshots": snaps})
    assert M.model_digest(a) == M.model_digest(b) == M.model_digest(M.save_model(lm.model, lm.tokenizer, tmp_path / "c"))
    with torch.no_grad():
        lm.model.cls.predictions.bias[0] += 1.0
    assert M.model_digest(M.save_model(lm.model, lm.tokenizer, tmp_path / "d")) != M.model_digest(a)
    (a / "pretrain_manifest.json").write_text("{}")
    assert M.verify_model_folder(b) == [] and M.verify_model_folder(a) == [
        f"{a / 'pretrain_manifest.json'} does not match its recorded sha256"]
    # a folder without a checksum file (a hub download): only its card is left out
    hub = tmp_path / "hub"
    shutil.copytree(dnabert6, hub)
    before = M.model_digest(hub)
    (hub / "README.md").write_text("another card")
    assert M.model_digest(hub) == before
    (hub / "extra_notes.json").write_text("{}")
    assert M.model_digest(hub) != before


def test_vocabulary_mismatch_is_a_clear_error(tmp_path, dnabert6):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(dnabert6, broken)
    (broken / "vocab.txt").write_text("\n".join(T.OverlappingKmerTokenizer(5).vocab) + "\n")
    with pytest.raises(VocabularyMismatchError, match="4101 tokens.*1029"):
        M.load_model(broken)


def test_hub_id_offline_fails_fast_with_advice(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(ModelNotAvailableError, match="no network.*local folder.*README"):
        M.load_model("zhihan1996/DNA_bert_6")


def test_unknown_name_lists_zoo(tmp_path):
    (tmp_path / "zoo" / "overlap4").mkdir(parents=True)
    with pytest.raises(ModelNotAvailableError, match="available: overlap4"):
        M.load_model("no_such_model", models_dir=tmp_path / "zoo")


def test_model_without_mlm_head_is_refused_for_mlm(tmp_path, dnabert6):
    base = M.load_model(dnabert6, head="base")
    assert type(base.model).__name__ == "BertModel"
    folder = tmp_path / "enc"
    M.save_model(base.model, base.tokenizer, folder)
    with pytest.raises(ParameterError, match="without a masked-language-model head"):
        M.load_model(folder)


def test_classification_head(dnabert6):
    lm = M.load_model(dnabert6, head="classification", num_labels=3)
    assert lm.model.config.num_labels == 3
    with pytest.raises(ParameterError, match="num_labels"):
        M.load_model(dnabert6, head="classification")


def test_device_and_dtype_choice(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert M.pick_device("auto") == torch.device("cpu")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert M.pick_device("auto") == torch.device("mps")  # Apple MPS before the CPU
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert M.pick_device("auto") == torch.device("cuda")  # CUDA before everything
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert M.pick_dtype(torch.device("cuda")) == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert M.pick_dtype(torch.device("cuda")) == torch.float32
    monkeypatch.undo()
    assert M.pick_dtype(torch.device("cpu")) == torch.float32
    assert M.pick_dtype(torch.device("cpu"), "bf16") == torch.bfloat16
    with pytest.raises(ParameterError):
        M.pick_dtype(torch.device("cpu"), "float8")
    if not torch.cuda.is_available():
        with pytest.raises(ParameterError, match="CUDA is not available"):
            M.pick_device("cuda")


def test_save_model_shows_no_progress_bar_even_in_a_fresh_process(tmp_path, dnabert6):
    """A worker process that only trains and saves (pretraining.train_many) must not print transformers'
    "Writing model shards" bar into the chapter's output."""
    import subprocess
    import sys

    code = ("import sys, transformers\n"
            "from dnalm_utils import models as M\n"
            f"model = transformers.AutoModelForMaskedLM.from_pretrained({str(dnabert6)!r})\n"
            "transformers.utils.logging.enable_progress_bar()\n"
            f"lm = M.load_model({str(dnabert6)!r}); transformers.utils.logging.enable_progress_bar()\n"
            f"M.save_model(model, lm.tokenizer, {str(tmp_path / 'saved')!r})\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "saved").is_dir() and "Writing model shards" not in done.stderr + done.stdout
