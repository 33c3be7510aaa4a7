"""Chapters 3-8 re-run on other model sets: a mixed set of published families (tiny replicas in their published
layouts) and zoo models under other names. Both start from the smoke profile's zoo (chapters 1-2 only). A file of
its own so that pytest-xdist (--dist loadfile) runs it beside the smoke book of test_notebooks.py."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from book_fixtures import ROOT, book_sources, errors, glued, page_text
from dnalm_utils import notebook_execution, profile_runner, run_parameters


@pytest.fixture(scope="module")
def smoke_zoo(tmp_path_factory):
    """Book sources plus the smoke profile's chapters 1 and 2 (its zoo; no book build): what the tests that re-run
    chapters 3-8 on other model sets start from (the book they build needs chapter 1's page)."""
    root = book_sources(tmp_path_factory.mktemp("zoo"))
    manifest = profile_runner.run_profile("smoke", only=["01", "02"], root=root, build=False, progress=False)
    return root, manifest


def _mixed_models(folder: Path) -> dict[str, Path]:
    """Tiny replicas of three published families, each in its published on-disk layout."""
    from dnalm_utils.families import esm, hyena, mosaicbert

    return {"DNABERT-2-117M": mosaicbert.make_replica(folder / "DNABERT-2-117M", layout="current", seed=1),
            "nucleotide-transformer-v2-50m": esm.make_replica(folder / "nucleotide-transformer-v2-50m", version=2,
                                                               max_positions=2050, seed=2),
            "hyenadna-tiny-1k-seqlen-hf": hyena.make_replica(folder / "hyenadna-tiny-1k-seqlen-hf", max_seq_len=1024, seed=3)}


@pytest.mark.slow
def test_chapters_3_to_7_run_on_a_mixed_model_set(smoke_zoo, tmp_path):
    """A zoo model, a DNABERT-2 replica, an NT v2 replica and a HyenaDNA replica go through chapters 3-7 together;
    the rendered pages show their numbers, and 'not applicable' with a reason where a probe does not apply."""
    smoke_root, _ = smoke_zoo
    root = tmp_path / "book"
    shutil.copytree(smoke_root, root, ignore=shutil.ignore_patterns("_build", "smoke-finetune-runs"))
    replicas = _mixed_models(tmp_path / "published")
    models = [str(root / "artifacts" / "smoke-models" / "overlap6"), *map(str, replicas.values())]
    names = ["overlap6", *replicas]
    smoke = run_parameters.load_profile("smoke", root=root)
    entries = []
    for entry in smoke["notebooks"]:
        params = {k: (v.replace("runs/smoke", "runs/mixed") if isinstance(v, str) else v)
                  for k, v in entry["parameters"].items()}
        stem = Path(entry["notebook"]).stem
        if stem[:2] in ("03", "04", "05", "06", "07"):
            params["models"] = models
        if stem.startswith("06"):
            params["run_cache"] = "artifacts/mixed-finetune-runs"
        if stem.startswith("05"):
            params["run_cache"] = "artifacts/mixed-finetune-runs"
        if stem[:2] in ("05", "06"):
            params["random_learning_rates"] = [0.0005]  # the smoke book itself covers the tuning
        if stem[:2] in ("03", "04", "05", "06", "07", "08"):
            entries.append({"notebook": entry["notebook"], "parameters": params})
    profile = {"name": "mixed", "path": None, "description": "mixed model set", "notebooks": entries}
    profile_runner.run_profile(profile, root=root, progress=False)
    runs = root / "runs" / "mixed"
    for ch in ("03_masked_prediction", "04_embeddings", "05_next_kmer", "06_biology_finetuning", "07_copying_or_context",
               "08_conclusions"):
        nb = nbformat.read(root / "book" / "_generated" / f"{ch}.ipynb", as_version=4)
        assert not errors(nb), ch
    same = pd.read_csv(runs / "03_masked_prediction" / "same_nucleotides.csv")
    assert set(names) <= set(same.model)  # the causal HyenaDNA scores hidden blocks through its completions
    skipped = pd.read_csv(runs / "03_masked_prediction" / "not_applicable.csv")
    assert set(skipped[skipped.probe == "the logit lens"].model) == {"hyenadna-tiny-1k-seqlen-hf"}
    assert set(skipped[skipped.probe == "attention shares"].model) == {"hyenadna-tiny-1k-seqlen-hf"}
    assert set(pd.read_csv(runs / "04_embeddings" / "embedding_metrics.csv").model) == set(names)
    fine = pd.read_csv(runs / "05_next_kmer" / "runs.csv")
    assert set(fine.model) == set(names) and set(fine.init) == {"pretrained", "random"}
    assert set(pd.read_csv(runs / "06_biology_finetuning" / "runs.csv").model) >= set(names)
    pages = root / "_build" / "html" / "book" / "_generated"
    ch3 = page_text(pages / "03_masked_prediction.html")
    assert "is not applicable to hyenadna-tiny-1k-seqlen-hf" in ch3 and "Hyena has no attention" in ch3
    for name in names:
        for ch in ("03_masked_prediction", "04_embeddings", "05_next_kmer", "06_biology_finetuning"):
            assert name in page_text(pages / f"{ch}.html"), (name, ch)


@pytest.mark.slow
def test_prose_reads_by_role_for_renamed_zoo_models(smoke_zoo, tmp_path):
    """Zoo models copied under other names go through chapters 3-8 with the smoke profile's settings: no page glues
    a default-zoo name or "n/a" where the run has the number, and the roles (not the names) say which model is
    which (the copy of the DNABERT-recipe control keeps its random embedding initialisation)."""
    from dnalm_utils.pretraining import ZOO

    smoke_root, _ = smoke_zoo
    renamed = {"alpha": "overlap6", "beta": "overlap6_dnabert", "gamma": "nucleotide", "delta": "bpe"}
    for new, old in renamed.items():
        shutil.copytree(smoke_root / "artifacts" / "smoke-models" / old, tmp_path / "models" / new)
    runs = tmp_path / "runs"
    models = [str(tmp_path / "models" / n) for n in renamed]
    for entry in run_parameters.load_profile("smoke", root=smoke_root)["notebooks"]:
        stem = Path(entry["notebook"]).stem
        if stem[:2] not in ("03", "04", "05", "06", "07", "08"):
            continue
        params = {**entry["parameters"], "output_dir": str(runs / stem)}
        params.update({"models": models} if stem[:2] != "08" else {"runs_dir": str(runs)})
        if stem[:2] in ("05", "06"):
            params["run_cache"] = "none"
            params["random_learning_rates"] = [0.0005]  # the smoke book itself covers the tuning
        params.pop("models_dir", None)
        if stem.startswith("06"):
            params["next_kmer_dir"] = str(runs / "05_next_kmer")
        notebook_execution.run_notebook(ROOT / "notebooks" / f"{stem}.ipynb", params, tmp_path / f"{stem}.ipynb",
                                        cwd=ROOT, progress=False)
    roles = pd.read_csv(runs / "03_masked_prediction" / "roles.csv").set_index("model")
    assert roles.origin.eq("zoo").all() and roles.loc["beta", "embedding_init"] == "random"
    numbers = {"03_masked_prediction": ("sweep_m1", "same_h1", "perturb_flank_list", "ngram_same_h1", "lens_text",
                                        "att_overlap_range"),
               "04_embeddings": ("over_static_range", "last_purity_list", "share_list", "control_static"),
               "05_next_kmer": ("best_first", "ngram_first", "ngram_bits_first"),
               "06_biology_finetuning": ("tf_peaks_best", "exon_intron_best", "tf_peaks_kmer_mcc"),
               "08_conclusions": ("copy_m1", "copy_flank", "hidden_best", "hidden_ngram", "token_share")}
    for nb, keys in numbers.items():
        values = glued(nbformat.read(tmp_path / f"{nb}.ipynb", as_version=4))
        text = " ".join(values.values())
        for zoo_name in ZOO:
            assert f"**{zoo_name}**" not in text and f"{zoo_name} (" not in text, (nb, zoo_name)
        for key in keys:
            assert "n/a" not in values[key] and any(ch.isdigit() for ch in values[key]), (nb, key, values[key])
    ch3 = glued(nbformat.read(tmp_path / "03_masked_prediction.ipynb", as_version=4))
    assert "**alpha** (overlapping 6-mers)" in ch3["copy_models"]
    assert "**beta** (overlapping 6-mers, DNABERT's random embedding init)" in ch3["copy_models"]
