"""Tests for dnalm_utils.chapter_cache and the profile runner's reuse of executed chapters (a warm rebuild)."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
import yaml

from dnalm_utils import chapter_cache as CC
from dnalm_utils import profile_runner


def _chapter(path: Path, reads: str | None = None) -> Path:
    """A chapter that counts its executions in <root>/executions.txt and writes <output_dir>/result.txt
    (``n`` times ``label``, plus the text of ``reads`` inside the book root when given)."""
    params = nbformat.v4.new_code_cell('n = 2  # repeats\nlabel = "a"  # text\noutput_dir = "runs/x"  # results')
    params.metadata["tags"] = ["parameters"]
    body = ("from pathlib import Path\n"
            "Path('executions.txt').open('a').write(Path(output_dir).name + '\\n')\n"
            "Path(output_dir).mkdir(parents=True, exist_ok=True)\n"
            + (f"extra = Path({reads!r}).read_text()\n" if reads else "extra = ''\n")
            + "Path(output_dir, 'result.txt').write_text(label * n + extra)\nprint(label * n + extra)")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Chapter"), params,
                                         nbformat.v4.new_code_cell(body)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def _profile(root: Path, entries) -> Path:
    path = root / "params" / "chapters.yml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump({"description": "cache test", "notebooks": entries}))
    return path


def _executions(root: Path) -> list[str]:
    f = root / "executions.txt"
    return f.read_text().split() if f.is_file() else []


@pytest.fixture()
def book(tmp_path):
    (tmp_path / "notebooks").mkdir()
    _chapter(tmp_path / "notebooks" / "01_first.ipynb")
    _chapter(tmp_path / "notebooks" / "02_second.ipynb", reads="runs/first/result.txt")
    (tmp_path / "notes.txt").write_text("v1")
    return tmp_path


def _run(root, entries, **kwargs):
    return profile_runner.run_profile(_profile(root, entries), root=root, build=False, progress=False, **kwargs)


FIRST = {"notebook": "notebooks/01_first.ipynb", "parameters": {"output_dir": "runs/first"}}
SECOND = {"notebook": "notebooks/02_second.ipynb", "parameters": {"output_dir": "runs/second"}}


@pytest.mark.slow
def test_unchanged_chapters_are_reused_and_every_input_change_executes_again(book, capsys):
    first = _run(book, [FIRST, SECOND])
    assert _executions(book) == ["first", "second"]
    assert [first["notebooks"][s]["status"] for s in ("01_first", "02_second")] == ["ok", "ok"]
    page = book / "book" / "_generated" / "02_second.ipynb"
    executed = page.read_bytes()
    page.unlink()

    again = _run(book, [FIRST, SECOND])  # nothing changed: nothing executes, the page comes back
    assert _executions(book) == ["first", "second"]
    rec = again["notebooks"]["02_second"]
    assert rec["status"] == "reused" and rec["executed_s"] == first["notebooks"]["02_second"]["duration_s"]
    assert page.read_bytes() == executed and "reused, inputs unchanged" in capsys.readouterr().out

    # a parameter of the first chapter: it runs again, and so does the second, which reads its results
    _run(book, [{**FIRST, "parameters": {"output_dir": "runs/first", "n": 3}}, SECOND])
    assert _executions(book)[2:] == ["first", "second"]
    assert (book / "runs" / "second" / "result.txt").read_text() == "aa" + "aaa"  # its own n, then the first's
    # the same parameter again: reused
    _run(book, [{**FIRST, "parameters": {"output_dir": "runs/first", "n": 3}}, SECOND])
    assert len(_executions(book)) == 4

    # a result file altered or removed: the chapter runs again, its entry is not trusted
    (book / "runs" / "second" / "result.txt").write_text("edited by hand")
    _run(book, [{**FIRST, "parameters": {"output_dir": "runs/first", "n": 3}}, SECOND])
    assert _executions(book)[4:] == ["second"]
    # the template changed: runs again
    nb = nbformat.read(book / "notebooks" / "02_second.ipynb", as_version=4)
    nb.cells[0].source += "\n\nA new sentence."
    nbformat.write(nb, book / "notebooks" / "02_second.ipynb")
    _run(book, [{**FIRST, "parameters": {"output_dir": "runs/first", "n": 3}}, SECOND])
    assert _executions(book)[5:] == ["second"]
    # --rerun executes everything
    _run(book, [{**FIRST, "parameters": {"output_dir": "runs/first", "n": 3}}, SECOND], reuse=False)
    assert _executions(book)[6:] == ["first", "second"]


@pytest.mark.slow
def test_a_damaged_entry_is_never_used(book):
    _run(book, [FIRST])
    entries = list((book / CC.CACHE_DIR).iterdir())
    assert len(entries) == 1 and entries[0].name.startswith("executed-chapter-")
    entries[0].write_bytes(entries[0].read_bytes()[:-40])  # truncated
    _run(book, [FIRST])
    assert _executions(book) == ["first", "first"]
    _run(book, [FIRST])  # the rewritten entry is intact again
    assert _executions(book) == ["first", "first"]


def test_key_covers_the_template_parameters_named_files_and_upstream_results(book):
    nb = book / "notebooks" / "01_first.ipynb"
    params = {"n": 2, "label": "a", "output_dir": "runs/first"}
    key = CC.chapter_key(nb, params, root=book, device="cpu")
    assert key == CC.chapter_key(nb, dict(params), root=book, device="cpu")
    assert key.manifest["kind"] == "executed-chapter" and key.manifest["inputs"]["data"]  # bundled data hashed
    assert CC.chapter_key(nb, {**params, "n": 3}, root=book, device="cpu") != key
    assert CC.chapter_key(nb, params, root=book, device="cuda") != key
    named = CC.chapter_key(nb, {**params, "label": "notes.txt"}, root=book, device="cpu")
    (book / "notes.txt").write_text("v2")  # a file a parameter names: its content is in the key
    assert CC.chapter_key(nb, {**params, "label": "notes.txt"}, root=book, device="cpu") != named
    (book / "runs" / "first").mkdir(parents=True)
    (book / "runs" / "first" / "t.csv").write_text("a,b\n1,2\n")
    up = CC.chapter_key(nb, params, root=book, upstream_outputs=["runs/first"], device="cpu")
    assert up != key
    (book / "runs" / "first" / "t.csv").write_text("a,b\n1,3\n")
    assert CC.chapter_key(nb, params, root=book, upstream_outputs=["runs/first"], device="cpu") != up
    # models_dir outside artifacts/ is hashed by its checksums file
    models = book / "my_models" / "m1"
    models.mkdir(parents=True)
    (models / "dnalm_checksums.json").write_text(json.dumps({"a": "1"}))
    with_models = CC.chapter_key(nb, {**params, "models_dir": "my_models"}, root=book, device="cpu")
    (models / "dnalm_checksums.json").write_text(json.dumps({"a": "2"}))
    assert CC.chapter_key(nb, {**params, "models_dir": "my_models"}, root=book, device="cpu") != with_models
    # a local model folder named inside a list parameter too; a zoo name or hub id is keyed by its name alone
    listed = CC.chapter_key(nb, {**params, "models": ["overlap6", "my_models/m1"]}, root=book, device="cpu")
    assert listed.manifest["inputs"]["models"] == {"models[1]": {"m1": CC.folder_digest(models)["dnalm_checksums.json"]}}
    (models / "dnalm_checksums.json").write_text(json.dumps({"a": "3"}))
    assert CC.chapter_key(nb, {**params, "models": ["overlap6", "my_models/m1"]}, root=book, device="cpu") != listed
    # result folders are not inputs: a chapter's own output_dir never changes its key
    (book / "runs" / "first" / "more.csv").write_text("x\n")
    assert CC.chapter_key(nb, params, root=book, device="cpu").manifest["inputs"]["models"] == {}


def test_side_by_side_chapters_do_not_key_on_each_other():
    entries = [{"notebook": "notebooks/01.ipynb", "parameters": {"output_dir": "runs/1"}},
               {"notebook": "notebooks/02.ipynb", "parameters": {"output_dir": "runs/2"}, "group": "g"},
               {"notebook": "notebooks/03.ipynb", "parameters": {"output_dir": "runs/3"}, "group": "g"},
               {"notebook": "notebooks/04.ipynb", "parameters": {"output_dir": "runs/4"}}]
    up = profile_runner.upstream_outputs(entries, {}, Path("/nonexistent"))
    assert up == {"01": [], "02": ["runs/1"], "03": ["runs/1"], "04": ["runs/1", "runs/2", "runs/3"]}
