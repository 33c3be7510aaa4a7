"""The chapters run end to end on the smoke profile and build into a book (a copy of the repository's
book sources in a temporary folder, so the real book/_generated and _build stay untouched)."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

from dnalm_utils import book_build, notebook_execution, offline_assets, profile_runner, student_edition

from book_fixtures import ROOT, book_sources, errors, glued, page_text


def _figure_ok(path, *, min_side: int = 200, min_colours: int = 20):
    """A figure file is a real picture: it decodes, is at least ``min_side`` pixels on each side and holds more
    than ``min_colours`` distinct colours (a blank or single-colour canvas fails)."""
    import matplotlib.image as mpimg

    img = mpimg.imread(path)
    assert img.ndim == 3 and min(img.shape[:2]) >= min_side, (path, img.shape)
    colours = np.unique((img[..., :3] * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert len(colours) > min_colours, (path, len(colours))


@pytest.fixture(scope="module")
def smoke_book(tmp_path_factory):
    root = book_sources(tmp_path_factory.mktemp("book"))
    manifest = profile_runner.run_profile("smoke", root=root, progress=False)
    return root, manifest


@pytest.mark.slow
def test_smoke_profile_builds_a_complete_offline_book(smoke_book):
    root, manifest = smoke_book
    html = root / "_build" / "html"
    for page in book_build.toc_files(root):
        assert (html / f"{page}.html").exists(), page
    assert offline_assets.remote_assets(html) == []
    assert manifest["last_run"]["profile"] == "smoke" and manifest["last_run"]["status"] == "ok"


@pytest.mark.slow
def test_tokenization_chapter_outputs(smoke_book):
    root, _ = smoke_book
    nb = nbformat.read(root / "book" / "_generated" / "01_tokenization.ipynb", as_version=4)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "Traceback" not in text and "Warning" not in text
    names = {o["metadata"]["scrapbook"]["name"] for c in nb.cells if c.cell_type == "code"
             for o in c.get("outputs", []) if "scrapbook" in o.get("metadata", {})}
    assert {"fig_token_tracks", "fig_rank_frequency", "fig_mask_coverage", "fig_hidden", "acc_at_k"} <= names
    out = root / "runs" / "smoke" / "01_tokenization"
    arithmetic = pd.read_csv(out / "overlap_arithmetic.csv")
    assert (arithmetic.observed_hidden == arithmetic.hidden_nt).all()
    assert (arithmetic[arithmetic.m < arithmetic.k].span_accuracy == 1).all()
    usage = pd.read_csv(out / "vocabulary_usage.csv")
    assert list(usage.scheme) == ["overlapping", "nonoverlapping", "nucleotide", "bpe"]
    for png in ("token_tracks", "rank_frequency", "mask_coverage", "hidden_nucleotides"):
        _figure_ok(out / f"{png}.png")


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
    assert (scores[scores.model == "chance"].accuracy == 0.25).all()
    assert scores.groupby("h").nucleotides.nunique().eq(1).all()  # every model and reference scores the same items
    for name in recipes.model:  # every model is a loadable zoo folder with its loss curve and step-0 weights
        folder = root / "artifacts" / "smoke-models" / name
        assert (folder / "loss_curve.csv").exists() and (folder / "README.md").exists()
        assert (folder / "snapshots" / "step-0" / "config.json").exists()
    gates = pd.read_csv(out / "gates.csv")  # computed gates: one per model and scheme, none asserted by hand
    assert set(gates[gates.gate == "flat"].model) == set(recipes.model)
    assert set(gates[gates.gate == "overlap_rule"].model) == {"overlap4", "overlap5", "overlap6", "overlap6_dnabert"}
    assert set(gates[gates.gate == "context_vs_ngram"].model) == {"nucleotide"}
    assert (gates.passed == (gates.value <= gates.threshold)).where(gates.gate == "flat", True).all()
    assert (pd.read_csv(out / "corpus_records.csv").corpus_share.sum()) == pytest.approx(1.0)


def _chapter_outputs(root, name):
    """The smoke run's output folder of chapter ``name``, after checking its executed notebook has no error."""
    assert not errors(nbformat.read(root / "book" / "_generated" / f"{name}.ipynb", as_version=4)), name
    return root / "runs" / "smoke" / name


@pytest.mark.slow
def test_masked_prediction_chapter_outputs(smoke_book):
    out = _chapter_outputs(smoke_book[0], "03_masked_prediction")
    sweep = pd.read_csv(out / "span_sweep.csv")
    assert sweep.groupby("model").m.max().to_dict() == {"overlap4": 5, "overlap5": 6, "overlap6": 7, "overlap6_dnabert": 7}
    assert (sweep[sweep.m < sweep.k].oracle_accuracy == 1).all() and (sweep[sweep.m == sweep.k].leak_bound == 0.25).all()
    same = pd.read_csv(out / "same_nucleotides.csv")
    assert {"overlap6", "nonoverlap6", "nucleotide", "bpe", "chance"} <= set(same.model)
    # identical nucleotides for every model (the n-gram's order may differ with the block length h)
    same["model"] = same.model.str.replace(r" \(order \d+\)", "", regex=True)
    assert same.groupby("model").nucleotides.sum().nunique() == 1
    pert = pd.read_csv(out / "flank_perturbation.csv")
    assert np.allclose(pert[["follows_flank", "follows_genome", "neither"]].sum(axis=1), 1)
    lens = pd.read_csv(out / "layer_readout.csv")
    assert set(lens.layer) == {0, 1}  # the smoke zoo has one layer
    att = pd.read_csv(out / "attention_shares.csv")
    assert np.allclose(att.filter(like="share_").sum(axis=1), 1)
    assert (att[att.model == "nucleotide"].share_overlapping == 0).all()
    by_class = pd.read_csv(out / "hidden_nucleotides_by_class.csv")
    windows = by_class.groupby(["m", "model"]).windows.sum()
    assert windows.nunique() == 1 and windows.iloc[0] > 0  # every verdict window in exactly one class
    assert set(by_class["class"]) == {"tandem repeat", "low complexity", "other"}
    edits = pd.read_csv(out / "single_token_edit.csv")
    assert set(edits.model) == {"overlap4", "overlap5", "overlap6", "overlap6_dnabert"}
    copier = edits[edits.predictor == "left-neighbour copier"]
    assert (copier.follows_edit == (copier.side == "left")).all()  # the reference copier is exact
    distal = pd.read_csv(out / "distal_edits.csv")
    assert {"two-sided n-gram", "overlap6", "nonoverlap6", "nucleotide", "bpe"} <= set(distal.model)
    assert (distal[(distal.model == "two-sided n-gram") & (distal.d > 3)].shift_bits == 0).all()  # order 3


@pytest.mark.slow
def test_embeddings_chapter_outputs(smoke_book):
    out = _chapter_outputs(smoke_book[0], "04_embeddings")
    metrics = pd.read_csv(out / "embedding_metrics.csv")
    assert set(metrics.model) == {"overlap4", "overlap5", "overlap6", "overlap6_dnabert", "nonoverlap6", "nucleotide", "bpe"}
    assert set(metrics[metrics.model == "overlap6"].layer) == {-1, 0, 1}
    coords = pd.read_csv(out / "map_coordinates.csv")
    assert set(coords.model) == {"overlap4", "overlap5", "overlap6", "overlap6_dnabert", "nonoverlap6", "bpe"}
    _figure_ok(out / "umap_static.png")
    state = pd.read_csv(out / "state_probes.csv")
    assert set(state.model) == set(metrics.model) and set(state.d) == {3, 7}
    hidden = state[state.features == "hidden state"]
    assert set(hidden[hidden.model == "overlap6"].layer) == {0, 1} and hidden.accuracy.between(0, 1).all()
    versus = pd.read_csv(out / "state_probes_vs_step0.csv")  # every zoo model has step-0 weights
    assert set(versus.model) == set(metrics.model) and versus.paired.all()
    _figure_ok(out / "state_probes.png")


@pytest.mark.slow
def test_chapters_3_and_4_run_on_a_dnabert_format_folder(tmp_path):
    """A user's DNABERT checkpoint (as the hub ships it) goes through the masked-token and embedding chapters."""
    from dnalm_utils.models import make_tiny_dnabert

    folder = make_tiny_dnabert(tmp_path / "DNA_bert_6", k=6, max_positions=128)
    for nb, extra in (("03_masked_prediction", {"perturbation_m": [1], "readout_m": [1]}),
                      ("04_embeddings", {"projection": "pca", "min_occurrences": 1, "knn_neighbors": 3})):
        out = tmp_path / nb
        params = {"models": [str(folder)], "n_windows": 12, "output_dir": str(out), "analysis_cache": str(tmp_path / "analyses"),
                  **extra}
        if nb.startswith("03"):
            params.update(m_past_k=1, ngram_order=2, n_verdict_windows=40)
        notebook_execution.run_notebook(ROOT / "notebooks" / f"{nb}.ipynb", params, tmp_path / f"{nb}.ipynb", cwd=ROOT, progress=False)
        assert not errors(nbformat.read(tmp_path / f"{nb}.ipynb", as_version=4))
    assert set(pd.read_csv(tmp_path / "03_masked_prediction" / "span_sweep.csv").model) == {"DNA_bert_6"}
    assert set(pd.read_csv(tmp_path / "04_embeddings" / "embedding_metrics.csv").model) == {"DNA_bert_6"}
    from dnalm_utils.pretraining import ZOO

    for nb in ("03_masked_prediction", "04_embeddings"):  # the prose names the model run, by its role
        text = " ".join(glued(nbformat.read(tmp_path / f"{nb}.ipynb", as_version=4)).values())
        assert "**DNA_bert_6**" in text and not any(f"**{z}**" in text for z in ZOO), nb
    assert "overlapping 6-mers, published" in text


@pytest.mark.slow
def test_student_edition_replaces_solutions_and_keeps_the_main_book(smoke_book):
    root, _ = smoke_book
    student_html, student_nbs = student_edition.build_student(root)
    main = page_text(root / "_build" / "html" / "book" / "_generated" / "01_tokenization.html")
    student = page_text(student_html / "book" / "_generated" / "01_tokenization.html")
    assert "covered = [False] * (n_tokens + k - 1)" in main and "NotImplementedError" not in main
    assert "covered = [False] * (n_tokens + k - 1)" not in student and "NotImplementedError" in student
    assert "hidden_count agrees with max(0, m - k + 1)" in main  # the check ran in the main book
    assert "student edition" in page_text(student_html / "book" / "intro.html")
    assert (root / "_build" / "html" / "index.html").is_file()  # the main book is untouched
    for path in (root / "notebooks").glob("*.ipynb"):
        nb = nbformat.read(student_nbs / path.name, as_version=4)
        sols = student_edition.solution_cells(nb)
        assert all(student_edition.STUB in nb.cells[i].source and not nb.cells[i].outputs for i in sols)
        assert len(sols) == len(student_edition.solution_cells(nbformat.read(path, as_version=4)))


def _browser_or_skip():
    from dnalm_utils import browser
    from dnalm_utils.errors import DnalmInputError

    try:
        browser.find_browser()
    except DnalmInputError as exc:  # `make test` installs them with apt-get where it can
        pytest.skip(str(exc))
    return browser


@pytest.mark.slow
def test_every_page_opens_cleanly_in_a_real_browser(smoke_book):
    browser = _browser_or_skip()
    root, _ = smoke_book
    html = root / "_build" / "html"
    report = browser.check_book(html)
    assert report.problems == []
    expected = {f"{p}.html" for p in book_build.toc_files(root)} | {"index.html"}
    assert expected <= set(report.pages)
    assert report.images >= 10 and report.links > 100 and report.search_hits > 0
    png = report.screenshot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000


@pytest.mark.slow
def test_browser_check_reports_broken_pages(smoke_book, tmp_path):
    browser = _browser_or_skip()
    root, _ = smoke_book
    html = tmp_path / "html"
    shutil.copytree(root / "_build" / "html", html)
    page = html / "book" / "_generated" / "01_tokenization.html"
    text = page.read_text()
    img = next(p for p in (html / "_images").iterdir() if p.suffix == ".png" and p.name in text)
    img.write_bytes(b"not a png")
    text = text.replace("</main>", '<a href="nowhere.html">x</a><a href="../intro.html#no-such-anchor">y</a>'
                        '<div class="output traceback">Traceback (most recent call last)</div>'
                        '<p>on &lt;IPython.core.display.Markdown object&gt; windows</p></main>', 1)
    page.write_text(text)
    problems = "\n".join(browser.check_book(html, screenshot=tmp_path / "s.png").problems)
    assert "did not load" in problems and "missing book/_generated/nowhere.html" in problems
    assert "missing anchor #no-such-anchor" in problems and "error output" in problems
    assert "repr shows instead of its content: <IPython.core.display.Markdown object>" in problems


@pytest.mark.slow
def test_next_kmer_biology_and_conclusions_chapters(smoke_book):
    root, _ = smoke_book
    for name in ("05_next_kmer", "06_biology_finetuning", "08_conclusions"):
        _chapter_outputs(root, name)
    out = root / "runs" / "smoke"
    summary = pd.read_csv(out / "05_next_kmer" / "summary.csv")
    assert {"pretrained", "random"} <= set(summary.init) and set(summary.k) == {1, 2}
    base = pd.read_csv(out / "05_next_kmer" / "baselines.csv")
    assert {"chance", "majority class"} <= set(base.model) and base.model.str.startswith("n-gram").any()
    assert np.allclose(base[base.model == "chance"].sort_values("k").accuracy, [1 / 4, 1 / 16])
    readouts = pd.read_csv(out / "05_next_kmer" / "readouts.csv")
    assert set(readouts.readout) == {"fine-tuned", "frozen probe", "zero-shot"}
    assert (readouts.groupby(["model", "k"]).size() == 3).all() and readouts.accuracy.between(0, 1).all()
    parts = {ch: pd.read_csv(out / ch / "runs.csv") for ch in ("05_next_kmer", "06_biology_finetuning")}
    runs = pd.concat(parts.values())
    fine = runs[runs.init.isin(["pretrained", "random"])]
    # a fresh copy trains every run and stores each in the run cache, plus the random twins' tuning run at the
    # learning rate they did not choose (two candidates: chapter 5 tunes per model at its smallest k and reuses the
    # rate for every k, chapter 6 per model and task); the twins' run at the chosen rate and the tuning seed is the
    # tuning run itself, read back from the cache
    assert not fine[fine.init == "pretrained"].cached.astype(bool).any()
    tuned_here = fine[(fine.init == "random") & (fine.k != 2)]  # chapter 6's rows have no k
    assert tuned_here.cached.astype(bool).all()  # smoke: one seed, the tuning seed
    nk_random = parts["05_next_kmer"][parts["05_next_kmer"].init == "random"]
    assert not nk_random[nk_random.k == 2].cached.astype(bool).any()  # k = 2 reused k = 1's rate: no tuning run
    assert nk_random.groupby("model").learning_rate.nunique().eq(1).all()
    bio = parts["06_biology_finetuning"]
    tuning = nk_random.model.nunique() + len(bio[bio.init == "random"].drop_duplicates(["model", "task"]))
    assert tuning == 2 + 2 * 2
    assert len(list((root / "artifacts" / "smoke-finetune-runs").glob("finetune-run-*.entry"))) == len(fine) + tuning
    assert set(fine[fine.init == "random"].learning_rate) <= {0.0005, 0.001, 0.002}
    # chapter 5's runs from random weights get 2.5 x the step cap (smoke: 10 steps), the pre-trained ones the cap
    nk = parts["05_next_kmer"]
    assert set(nk[nk.init == "random"].max_steps) == {25} and set(nk[nk.init == "pretrained"].max_steps) == {10}
    nk_cnn = base[base.model == "one-hot CNN"]  # one CNN per k and seed, paired with every model in the verdicts
    assert sorted(nk_cnn.k) == [1, 2] and nk_cnn.detail.str.contains("picked on validation").all()
    nk_verdicts = pd.read_csv(out / "05_next_kmer" / "verdicts.csv")
    assert (nk_verdicts.reference == "one-hot CNN").sum() == 2 * 2 * 2  # models x k x (accuracy, bits)
    bio = pd.read_csv(out / "06_biology_finetuning" / "summary.csv")
    pairs = bio[bio.init.isin(["pretrained", "random"])].groupby(["task", "model"]).init.nunique()
    assert len(set(bio.task)) == 2 and (pairs == 2).all() and len(pairs) == 2 * 2  # both inits of both models
    frozen = pd.read_csv(out / "06_biology_finetuning" / "frozen_probes.csv")
    assert (frozen.groupby(["task", "model"]).chosen.sum() == 1).all() and frozen.auroc.between(0, 1).all()
    cnn = runs[runs.model == "one-hot CNN"]  # the from-scratch baseline: one run per task and seed, scored
    assert len(cnn) == 2 and cnn.auroc.between(0, 1).all() and (cnn.init == "baseline").all()
    bio_verdicts = pd.read_csv(out / "06_biology_finetuning" / "verdicts.csv")
    assert (bio_verdicts.reference == "one-hot CNN").sum() == 2 * 2 * 2  # models x tasks x (accuracy, bits)
    headline = pd.read_csv(out / "08_conclusions" / "headline.csv")
    assert {"overlap6", "bpe"} <= set(headline.model)
    assert any(c.startswith("next-1-mer") for c in headline.columns) and any(c.endswith(" MCC") for c in headline.columns)


