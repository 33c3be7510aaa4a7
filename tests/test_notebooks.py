"""The chapters run end to end on the smoke profile and build into a book (a copy of the repository's
book sources in a temporary folder, so the real book/_generated and _build stay untouched)."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from dnalm_utils import book

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def smoke_book(tmp_path_factory):
    root = tmp_path_factory.mktemp("book")
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(ROOT / name, root / name)
    for name in ("book", "notebooks", "params"):
        shutil.copytree(ROOT / name, root / name, ignore=shutil.ignore_patterns("_generated"))
    manifest = book.run_profile("smoke", root=root, progress=False)
    return root, manifest


@pytest.mark.slow
def test_smoke_profile_builds_a_complete_offline_book(smoke_book):
    root, manifest = smoke_book
    html = root / "_build" / "html"
    for page in book.toc_files(root):
        assert (html / f"{page}.html").exists(), page
    assert book.remote_assets(html) == []
    assert manifest["last_run"]["profile"] == "smoke" and manifest["last_run"]["status"] == "ok"


@pytest.mark.slow
def test_tokenization_chapter_outputs(smoke_book):
    root, _ = smoke_book
    nb = nbformat.read(root / "book" / "_generated" / "01_tokenization.ipynb", as_version=4)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "Traceback" not in text and "Warning" not in text
    glued = {o["metadata"]["scrapbook"]["name"] for c in nb.cells if c.cell_type == "code"
             for o in c.get("outputs", []) if "scrapbook" in o.get("metadata", {})}
    assert {"fig_token_tracks", "fig_rank_frequency", "fig_mask_coverage", "fig_hidden", "acc_at_k"} <= glued
    out = root / "runs" / "smoke" / "01_tokenization"
    arithmetic = pd.read_csv(out / "overlap_arithmetic.csv")
    assert (arithmetic.observed_hidden == arithmetic.hidden_nt).all()
    assert (arithmetic[arithmetic.m < arithmetic.k].span_accuracy == 1).all()
    usage = pd.read_csv(out / "vocabulary_usage.csv")
    assert list(usage.scheme) == ["overlapping", "nonoverlapping", "nucleotide", "bpe"]
    for png in ("token_tracks", "rank_frequency", "mask_coverage", "hidden_nucleotides"):
        assert (out / f"{png}.png").stat().st_size > 10_000


@pytest.mark.slow
def test_pretraining_chapter_outputs(smoke_book):
    root, _ = smoke_book
    nb = nbformat.read(root / "book" / "_generated" / "02_pretraining.ipynb", as_version=4)
    assert not [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    out = root / "runs" / "smoke" / "02_pretraining"
    recipes = pd.read_csv(out / "recipes.csv")
    assert len(recipes) == 7 and (recipes["nucleotides seen"] == recipes["nucleotides seen"].iloc[0]).all()
    sweep = pd.read_csv(out / "span_sweep.csv")
    assert set(sweep.model) == {"overlap4", "overlap5", "overlap6", "overlap6_dnabert"}
    assert sweep.groupby("model").m.max().to_dict() == {"overlap4": 7, "overlap5": 8, "overlap6": 9, "overlap6_dnabert": 9}
    scores = pd.read_csv(out / "hidden_nucleotide_scores.csv")
    assert {"chance", "corpus base frequencies"} <= set(scores.model)
    assert scores.model.str.startswith("two-sided").any()
    assert ((scores.accuracy >= 0) & (scores.accuracy <= 1)).all()
    for name in recipes.model:  # every model is a loadable zoo folder with its loss curve
        folder = root / "artifacts" / "smoke-models" / name
        assert (folder / "loss_curve.csv").exists() and (folder / "README.md").exists()
