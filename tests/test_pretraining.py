"""Pre-training: DNABERT's masking statistics, the held-out split, the arms and seeds, caching, atomic completion,
kill-and-resume, determinism, snapshots -- all on tiny configurations."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from dnalm_utils import corpus
from dnalm_utils import models as M
from dnalm_utils import pretraining as P
from dnalm_utils.errors import ModelNotAvailableError, ParameterError

TINY = dict(layers=1, hidden=16, heads=2, intermediate=32, max_positions=64, window_nt=40, batch_size=8,
            steps=6, warmup_steps=1, logging_steps=2, save_steps=3, learning_rate=1e-3, eval_steps=3, n_eval_windows=8)
TINY_CLI = [f"--set={k}={v}" for k, v in TINY.items() if k not in ("steps", "save_steps")]


def tiny_cfg(name="tiny4", **kw):
    return P.PretrainConfig(name=name, **{"scheme": "overlapping", "k": 4, **TINY, **kw})


# --- masking -------------------------------------------------------------------------------------------------
def test_dnabert_offsets_match_dnaberts_mask_list():
    assert P.dnabert_offsets(3) == [-1, 1]
    assert P.dnabert_offsets(4) == [-1, 1, 2]
    assert P.dnabert_offsets(5) == [-2, -1, 1, 2]
    assert P.dnabert_offsets(6) == [-2, -1, 1, 2, 3]


def _batch(b=400, t=130):
    ids = torch.randint(5, 4101, (b, t))
    special = torch.zeros((b, t), dtype=torch.bool)
    special[:, 0] = special[:, -1] = True
    special[: b // 2, -10:] = True  # padding in half the rows
    return ids, special


def test_dnabert_spans_are_exactly_k_tokens_and_never_touch_specials():
    ids, special = _batch()
    gen = torch.Generator().manual_seed(0)
    _, labels = P.mask_tokens(ids, special, centre_rate=0.004, offsets=P.dnabert_offsets(6), mask_id=4,
                              random_ids=torch.arange(5, 4101), generator=gen)
    chosen = (labels != -100).numpy()
    assert not chosen[special.numpy()].any()
    lengths = []
    for row, sp in zip(chosen, special.numpy()):
        padded = np.r_[0, row.astype(int), 0]
        starts, ends = np.flatnonzero(np.diff(padded) == 1), np.flatnonzero(np.diff(padded) == -1)
        for s, e in zip(starts, ends):
            if not sp[max(s - 3, 0) : e + 3].any():  # spans clipped by [CLS]/[SEP]/padding are shorter
                lengths.append(e - s)
    lengths = np.array(lengths)
    # Isolated centres give exactly k tokens; two centres closer than k merge into one longer run.
    assert len(lengths) > 100 and (lengths >= 6).all() and (lengths == 6).mean() > 0.95


def test_mask_rate_and_80_10_10_split():
    ids, special = _batch(1000)
    gen = torch.Generator().manual_seed(1)
    out, labels = P.mask_tokens(ids, special, centre_rate=0.025, offsets=P.dnabert_offsets(6), mask_id=4,
                                random_ids=torch.arange(5, 4101), generator=gen)
    chosen = labels != -100
    rate = chosen.sum().item() / (~special).sum().item()
    assert rate == pytest.approx(1 - (1 - 0.025) ** 6, abs=0.01)  # about 14 %: DNABERT's "about 15 %"
    as_mask = (out[chosen] == 4).float().mean().item()
    unchanged = (out[chosen] == ids[chosen]).float().mean().item()
    assert as_mask == pytest.approx(0.8, abs=0.01) and unchanged == pytest.approx(0.1, abs=0.01)
    assert ((out[chosen] != 4) & (out[chosen] != ids[chosen])).float().mean().item() == pytest.approx(0.1, abs=0.01)
    assert torch.equal(out[~chosen], ids[~chosen])
    _, labels = P.mask_tokens(ids, special, centre_rate=0.15, offsets=[], mask_id=4,
                              random_ids=torch.arange(5, 4101), generator=gen)
    assert (labels != -100).sum().item() / (~special).sum().item() == pytest.approx(0.15, abs=0.01)


def test_every_row_gets_a_masked_token():
    ids, special = _batch(50, 12)
    _, labels = P.mask_tokens(ids, special, centre_rate=0.0, offsets=[], mask_id=4, random_ids=torch.arange(5, 9))
    assert ((labels != -100).sum(1) == 1).all()


def test_config_validation():
    with pytest.raises(ParameterError, match="dnabert masking needs overlapping"):
        P.PretrainConfig(name="x", scheme="nucleotide", masking="dnabert")
    with pytest.raises(ParameterError, match="unknown zoo model"):
        P.zoo_config("overlap9")
    with pytest.raises(ParameterError, match="unknown pre-training setting"):
        P.zoo_config("overlap4").replace(stepz=3)
    cfg = P.zoo_config("overlap6")
    assert cfg.masking == "dnabert" and cfg.span_length == 6 and cfg.centre_rate == pytest.approx(0.025)
    assert P.zoo_config("nonoverlap6").masking == "token"


def test_nucleotide_sum_init_builds_kmer_rows_from_letters():
    from dnalm_utils.tokenization import OverlappingKmerTokenizer

    tok = OverlappingKmerTokenizer(3)
    emb = P.build_model(tiny_cfg(k=3, embedding_init="nucleotide_sum"), tok).bert.embeddings.word_embeddings.weight
    e = lambda t: emb[tok.token_to_id[t]]
    # AAC - AAA == TTC - TTA: the third letter contributes the same vector whatever the first two are.
    assert torch.allclose(e("AAC") - e("AAA"), e("TTC") - e("TTA"), atol=1e-6)


# --- training, caching, determinism --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    zoo = tmp_path_factory.mktemp("zoo")
    return zoo, P.train(tiny_cfg(), models_dir=zoo, progress=False, log=lambda *_: None)


def test_training_writes_a_loadable_zoo_model(trained):
    zoo, folder = trained
    manifest = json.loads((folder / P.MANIFEST).read_text())
    assert manifest["config"]["steps"] == 6 and manifest["nucleotides_seen"] == 6 * 8 * 40
    curves = P.load_loss_curves({"tiny": folder})
    assert (curves.nucleotides_seen == curves.step * 8 * 40).all() and curves.nucleotides_seen.max() == manifest["nucleotides_seen"]
    broken = zoo / "broken"
    broken.mkdir()
    (broken / P.MANIFEST).write_text('{"config": {"window_nt": 40}}')
    with pytest.raises(ModelNotAvailableError, match="broken.*batch_size"):
        P.nucleotides_per_step(broken)
    assert (folder / "README.md").read_text().startswith("# tiny4")
    curve = (folder / "loss_curve.csv").read_text().splitlines()
    assert curve[0] == "step,loss,heldout_loss,learning_rate,grad_norm"
    rows = [line.split(",") for line in curve[1:]]
    assert [int(r[0]) for r in rows if r[1]] == [2, 4, 6]  # training loss every logging_steps
    assert [int(r[0]) for r in rows if r[2]] == [0, 3, 6]  # held-out loss at step 0, every eval_steps and the end
    assert manifest["final_heldout_loss"] == pytest.approx(float(rows[-1][2] or rows[-2][2]))
    assert not (zoo / ".work").exists() or not any((zoo / ".work").iterdir())
    lm = M.load_model("tiny4", models_dir=zoo)
    assert lm.source == "zoo" and lm.tokenizer.k == 4


def test_same_seed_same_weights_and_cache_hit(trained, tmp_path):
    zoo, folder = trained
    other = P.train(tiny_cfg(), models_dir=tmp_path, progress=False, log=lambda *_: None)
    a = M.load_model(folder).model.state_dict()
    b = M.load_model(other).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    messages = []
    P.train(tiny_cfg(), models_dir=zoo, progress=False, log=messages.append)
    assert messages and "cached" in messages[0]
    assert P.cached_model(tiny_cfg(steps=7), zoo, corpus.corpus_fingerprint()) is None  # another recipe: no hit


def test_cache_key_is_spelled_out_in_the_manifest_and_any_other_key_misses(trained, tmp_path):
    import shutil

    from dnalm_utils import cache

    zoo, folder = trained
    sha = corpus.corpus_fingerprint()
    key = P.pretrain_cache_key(tiny_cfg(), sha)
    stored = json.loads((folder / P.MANIFEST).read_text())["cache"]
    assert stored == key.header() and stored["kind"] == "pretrained-model"
    assert stored["inputs"]["config"] == tiny_cfg().to_dict() and stored["inputs"]["corpus_sha256"] == sha
    assert stored["inputs"]["device"] in ("cpu", "cuda") and "tokenizers" in stored["versions"]
    assert stored["code_sha256"] == cache.code_digest("pretrained-model")
    assert P.cached_model(tiny_cfg(), zoo, sha) == folder
    assert P.cached_model(tiny_cfg(), zoo, "0" * 64) is None  # another corpus
    # The code that trains the model changed (a copy of the package with the tokenizer's code edited): no hit.
    package = tmp_path / "dnalm_utils"
    shutil.copytree(cache.PACKAGE_ROOT, package, ignore=shutil.ignore_patterns("__pycache__"))
    tok = package / "tokenization.py"
    tok.write_text(tok.read_text() + "\n\ndef _an_edit():\n    return 1\n")
    edited = P.pretrain_cache_key(tiny_cfg(), sha, root=package)
    assert edited.key != key.key and cache.read_folder_entry(folder, P.MANIFEST, edited) is None
    # A manifest edited to claim another key is refused by its checksum; one without the key block misses.
    copy = tmp_path / "zoo"
    shutil.copytree(zoo, copy)
    meta = json.loads((copy / "tiny4" / P.MANIFEST).read_text())
    (copy / "tiny4" / P.MANIFEST).write_text(json.dumps({**meta, "cache": edited.header()}))
    assert cache.read_folder_entry(copy / "tiny4", P.MANIFEST, edited) is None
    (copy / "tiny4" / P.MANIFEST).write_text(json.dumps({k: v for k, v in meta.items() if k != "cache"}))
    assert P.cached_model(tiny_cfg(), copy, sha) is None


def test_corrupt_cache_is_detected_and_never_used(trained, tmp_path):
    import shutil

    zoo, folder = trained
    copy = tmp_path / "zoo"
    shutil.copytree(zoo, copy)
    weights = copy / "tiny4" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    assert P.cached_model(tiny_cfg(), copy, corpus.corpus_fingerprint()) is None
    with pytest.raises(ModelNotAvailableError, match="damaged"):
        M.load_model("tiny4", models_dir=copy)


def _cli(zoo: Path, steps: int, save_steps: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "dnalm_utils.pretraining", "tinyrun", "--models-dir", str(zoo), "--no-progress",
            "--set=scheme=overlapping", "--set=k=4", f"--set=steps={steps}", f"--set=save_steps={save_steps}",
            *TINY_CLI, *extra]


@pytest.mark.slow
def test_killed_run_leaves_no_model_and_resumes(tmp_path):
    zoo = tmp_path / "zoo"
    proc = subprocess.Popen(_cli(zoo, 150, 15), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and not list(zoo.glob(".work/*/checkpoint.pt")):
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (zoo / "tinyrun").exists(), "an interrupted run must not leave a finished-looking model"
    with pytest.raises(ModelNotAvailableError):
        M.load_model("tinyrun", models_dir=zoo)
    done = subprocess.run(_cli(zoo, 150, 15), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "resuming from step-" in done.stdout
    manifest = json.loads((zoo / "tinyrun" / P.MANIFEST).read_text())
    assert manifest["resumed_from"].startswith("step-")
    # The resumed run ends with exactly the weights of an uninterrupted one.
    fresh = subprocess.run(_cli(tmp_path / "fresh", 150, 15), capture_output=True, text=True, timeout=600)
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr
    a = M.load_model("tinyrun", models_dir=zoo).model.state_dict()
    b = M.load_model("tinyrun", models_dir=tmp_path / "fresh").model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_letter_init_covers_every_scheme():
    from dnalm_utils.tokenization import BPETokenizer, NonOverlappingKmerTokenizer

    bpe = BPETokenizer.train(["ACGTTGCA" * 200, "TTTTACGA" * 200], vocab_size=40)
    for tok in (bpe, NonOverlappingKmerTokenizer(3)):
        model = P.build_model(tiny_cfg(scheme=tok.scheme, k=tok.k, masking="token"), tok)
        emb = model.bert.embeddings.word_embeddings.weight.detach()
        rows = emb[torch.from_numpy(np.flatnonzero(~tok.is_special))]
        assert rows.std().item() == pytest.approx(0.02, rel=0.35)
    # Random (DNABERT) init leaves BERT's own initialisation untouched and differs from the letter init.
    from dnalm_utils.tokenization import OverlappingKmerTokenizer

    tok = OverlappingKmerTokenizer(3)
    a = P.build_model(tiny_cfg(k=3, embedding_init="random"), tok).bert.embeddings.word_embeddings.weight
    b = P.build_model(tiny_cfg(k=3), tok).bert.embeddings.word_embeddings.weight
    assert not torch.allclose(a, b)


def test_strand_choice_is_validated_and_applied():
    with pytest.raises(ParameterError, match="reverse_complement"):
        tiny_cfg(reverse_complement="true")
    records = corpus.corpus_records()
    plus = P.sample_training_windows(tiny_cfg(reverse_complement="none"), records, n=20)
    minus = P.sample_training_windows(tiny_cfg(reverse_complement="all"), records, n=20)
    from dnalm_utils.genome import reverse_complement

    assert [reverse_complement(w) for w in plus] == minus


def test_model_sources_use_existing_folders_and_pass_others_through(trained, tmp_path, monkeypatch):
    zoo, folder = trained
    (zoo / "overlap6").mkdir(exist_ok=True)
    (zoo / "overlap6" / "config.json").write_text("{}")
    calls = []
    monkeypatch.setattr(P, "train", lambda cfg, **kw: calls.append(cfg.name) or tmp_path / cfg.name)
    out = P.model_sources(["overlap6", "overlap4", str(folder), "zhihan1996/DNA_bert_6"], models_dir=zoo,
                          log=lambda *_: None)
    assert out == {"overlap6": "overlap6", "overlap4": "overlap4",
                   "tiny4": str(folder), "DNA_bert_6": "zhihan1996/DNA_bert_6"}
    assert calls == ["overlap4"]  # only the missing zoo model is trained, with the default recipe


# --- held-out split, arms, seeds, snapshots ------------------------------------------------------------------
def test_holdout_split_is_disjoint_and_training_windows_never_enter_it():
    from dnalm_utils.genome import FastaRecord

    rng = np.random.default_rng(0)
    records = [FastaRecord(f"r{i}", "", "".join(rng.choice(list("ACGT"), size=n))) for i, n in enumerate((90_000, 40_000, 5_000))]
    train, held = P.holdout_split(records, fraction=0.1, block_nt=10_000, seed=3)
    assert sum(len(r.sequence) for r in train) + sum(len(r.sequence) for r in held) == 135_000
    assert "r2" in [r.name for r in train]  # a record shorter than 3 blocks is never cut
    for h in held:  # every held-out block is where its name says, and no training piece overlaps it
        name, span = h.name.split(":")
        start, end = map(int, span.split("-"))
        assert records[int(name[1:])].sequence[start:end] == h.sequence
        for t in train:
            if t.name.startswith(name + ":"):
                ts, te = map(int, t.name.split(":")[1].split("-"))
                assert te <= start or ts >= end
    assert P.holdout_split(records, fraction=0.1, block_nt=10_000, seed=3) == (train, held)
    cfg = tiny_cfg(heldout_fraction=0.1, heldout_block_nt=10_000, window_nt=32)
    windows = P.sample_training_windows(cfg, records, n=300)
    held_text = "|".join(h.sequence for h in held)
    assert not any(w in held_text for w in windows)
    with pytest.raises(ParameterError, match="heldout_block_nt"):
        P.holdout_split(records[2:], fraction=0.1, block_nt=10_000)


def test_step_split_keeps_the_windows_and_the_budget_and_applies_per_family():
    records = corpus.corpus_records()
    shared = dict(steps=30, batch_size=16, window_nt=40)
    for arm in ("overlap4", "overlap6", "overlap6_dnabert", "nonoverlap6", "nucleotide", "bpe"):
        cfg, whole = P.zoo_config(arm, **shared), P.zoo_config(arm, step_split=1, **shared)
        split = P.STEP_SPLIT.get(cfg.scheme, 1)
        assert (cfg.batch_size, cfg.steps) == (16 // split, 30 * split), arm
        assert P.config_differences(cfg, whole) == ({} if split == 1 else {"batch_size": (16 // split, 16), "steps": (30 * split, 30)})
        assert cfg.nucleotides_seen == whole.nucleotides_seen
    assert P.STEP_SPLIT["overlapping"] > 1 and "nucleotide" not in P.STEP_SPLIT  # the tuned choice (docs/recipe_tuning)
    cfg, whole = P.zoo_config("overlap6", **shared), P.zoo_config("overlap6", step_split=1, **shared)
    assert P.sample_training_windows(cfg, records) == P.sample_training_windows(whole, records)  # same windows, same order
    four = P.zoo_config("nucleotide", step_split=4, **shared)
    assert (four.batch_size, four.steps) == (4, 120)
    with pytest.raises(ParameterError, match="not divisible by step_split=3"):
        P.zoo_config("overlap6", step_split=3, **shared)
    with pytest.raises(ParameterError, match="step_split"):
        P.zoo_config("overlap6", step_split=0, **shared)
    configs = {a: P.zoo_config(a, **shared) for a in ("overlap4", "overlap6", "nucleotide")}
    assert P.step_split_sentence(configs, 16).startswith("overlap4 and overlap6 take each batch as 2 steps of 8 windows (60 steps")
    assert P.step_split_sentence({"nucleotide": configs["nucleotide"]}, 16) == "every model takes them whole"


def test_every_arm_differs_from_its_reference_in_exactly_the_stated_setting():
    for arm, (reference, setting, _why) in P.ARM_CHANGES.items():
        diff = P.config_differences(P.zoo_config(arm), P.zoo_config(reference))
        assert list(diff) == [setting], (arm, diff)
    assert P.zoo_config("overlap6_span12").span_length == 12  # hides k + 1 = 7 nt from the flanks
    cfg = P.zoo_config("overlap6_randommask", steps=70, step_split=1)
    spans = [cfg.span_at(s) for s in range(70)]
    assert spans[0] == 6 and spans[-1] == 12 and spans == sorted(spans) and len(set(spans)) == 7
    assert all(cfg.centre_rate_at(s) * cfg.span_at(s) == pytest.approx(0.15) for s in range(70))
    split = P.zoo_config("overlap6_randommask", steps=70)  # the family's split steps widen over all of them
    assert [split.span_at(s) for s in range(0, split.steps, split.steps // 70)] == spans


def test_seeded_names_round_trip_and_change_only_the_seed():
    assert P.zoo_names(["overlap6", "bpe"], seeds=[0, 1, 2], seeded_arms=["overlap6"]) == [
        "overlap6", "bpe", "overlap6_seed1", "overlap6_seed2"]
    assert P.split_seeded_name("overlap6_dnabert_seed2") == ("overlap6_dnabert", 2)
    assert P.split_seeded_name("my_model_seed2") == ("my_model_seed2", 0)  # not a zoo arm: just a name
    diff = P.config_differences(P.zoo_config("overlap6_seed2"), P.zoo_config("overlap6"))
    assert diff == {"seed": (2, 0)}  # same data (data_seed), other initialisation and masking


def test_seeds_give_different_weights_and_step0_snapshot_is_the_initialisation(trained, tmp_path):
    from dnalm_utils.tokenization import load_tokenizer

    zoo, folder = trained
    other = P.train(tiny_cfg(seed=1), models_dir=tmp_path, progress=False, log=lambda *_: None)
    a = M.load_model(folder).model.state_dict()
    b = M.load_model(other).model.state_dict()
    assert not all(torch.equal(a[k], b[k]) for k in a)
    snaps = P.snapshot_folders(folder)
    assert list(snaps) == P.snapshot_steps(tiny_cfg()) and 0 in snaps
    initial = M.load_model(P.initial_model_folder(folder)).model.state_dict()
    built = P.build_model(tiny_cfg(), load_tokenizer(folder)).state_dict()
    assert all(torch.equal(initial[k], built[k]) for k in built)
    assert not all(torch.equal(initial[k], a[k]) for k in a)  # training moved the weights
    with pytest.raises(ParameterError, match="step-0"):
        P.initial_model_folder(tmp_path)


def test_sinusoidal_positions_make_offsets_stationary():
    from dnalm_utils.tokenization import NucleotideTokenizer

    model = P.build_model(tiny_cfg(scheme="nucleotide", k=None, masking="token", hidden=32, position_init="sinusoidal"),
                          NucleotideTokenizer())
    table = model.bert.embeddings.position_embeddings.weight.detach()
    assert table.std().item() == pytest.approx(0.02, rel=1e-3)
    # A sinusoidal table's inner product depends only on the offset: <p_i, p_{i+d}> is the same for every i.
    for d in (1, 3):
        dots = (table[:-d] * table[d:]).sum(1)
        assert torch.allclose(dots, dots[0].expand_as(dots), atol=1e-6)
    random = P.build_model(tiny_cfg(scheme="nucleotide", k=None, masking="token", hidden=32), NucleotideTokenizer())
    dots = (random.bert.embeddings.position_embeddings.weight[:-1] * random.bert.embeddings.position_embeddings.weight[1:]).sum(1)
    assert dots.std() > 10 * (table[:-1] * table[1:]).sum(1).std()  # BERT's random table has no such structure


def test_arm_pairs_select_by_the_changed_setting():
    from dnalm_utils.pretraining import ARM_CHANGES, arm_pairs

    masking = arm_pairs("masking")
    assert masking["overlap6_span12"] == "overlap6" and masking["overlap6_randommask"] == "overlap6"
    assert "overlap6_dnabert" not in masking and arm_pairs("embedding_init") == {"overlap6_dnabert": "overlap6"}
    assert arm_pairs() == {a: r for a, (r, _, _) in ARM_CHANGES.items()}


def test_train_many_on_worker_processes_equals_serial_and_keeps_job_order(trained, tmp_path):
    """Two models trained on two worker processes (as many torch threads each as this process uses) end with the
    serial run's weights; the result is in job order (not the longest-first submission order); each worker's
    log reaches the caller."""
    from dnalm_utils import grid_executors

    zoo, folder = trained
    jobs = [(tiny_cfg(), None), (tiny_cfg("tiny4b", steps=9, save_steps=9), None)]
    lines = []
    with grid_executors.make_executor("processes:2", torch_threads=torch.get_num_threads()) as pool:
        out = P.train_many(jobs, models_dir=tmp_path, progress=False, log=lines.append, executor=pool)
    assert list(out) == ["tiny4", "tiny4b"] and all((f / "config.json").exists() for f in out.values())
    a = M.load_model(folder).model.state_dict()
    b = M.load_model(out["tiny4"]).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any("tiny4b" in line for line in lines)
    manifest = json.loads((out["tiny4b"] / P.MANIFEST).read_text())
    assert manifest["config"]["steps"] == 9 and manifest["torch_threads"] == torch.get_num_threads()
    with pytest.raises(ParameterError, match="unique"):
        P.train_many([(tiny_cfg(), None), (tiny_cfg(), None)], models_dir=tmp_path)


def test_left_out_sentence_names_the_missing_arms_and_other_models():
    text = P.left_out_sentence(["overlap6", "nucleotide", "/models/dnabert6"])
    assert "2 of the zoo's" in text and "/models/dnabert6" in text
    assert all(arm in text.split("leaves out")[1] for arm in P.ZOO if arm not in ("overlap6", "nucleotide"))
    assert all(f"{arm} (" not in text for arm in P.ZOO)  # no zoo name reads as a model with a description
    assert "leaves out" not in P.left_out_sentence(list(P.ZOO))
    assert "extended" not in text  # without chapter 2's list, the page cannot say where the others were trained
    # with chapter 2's list: the arms it trained in this build are told apart from those extended.yml trains
    built = P.left_out_sentence(["overlap6", "nucleotide"], trained=["overlap4", "overlap4_seed1", "overlap6", "nucleotide"])
    here, there = built.split("leaves out ")[1].split("; and ")
    assert here == "overlap4, which chapter 2 trained in this build and other chapters analyse"
    assert there.endswith("which chapter 2 trains under `params/extended.yml`.") and "overlap5" in there
    outside = P.left_out_sentence(["/models/alpha", "/models/beta"])
    assert "2 models from outside the zoo" in outside and not any(arm in outside for arm in P.ZOO)
