"""Tests of the book runner (dnalm_utils.book) and the dnalm-book CLI, on tiny fixture notebooks.

The slow tests execute the fixtures with papermill and build a tiny book (the repository's own
_config.yml, intro and references pages, and one executed fixture chapter) in a temporary folder.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import pytest
import yaml

from dnalm_utils import book
from dnalm_utils.book import CliValue, NotebookExecutionError, BookBuildError
from dnalm_utils.cli import main
from dnalm_utils.errors import DnalmInputError, ParameterError

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
NB_OK = FIXTURES / "params_ok.ipynb"
NB_FAIL = FIXTURES / "raises_in_cell_2.ipynb"


# --------------------------------------------------------------------------------------------------
# Parameters and profiles (no kernel needed)
# --------------------------------------------------------------------------------------------------

def test_notebook_parameters_reads_names_types_defaults():
    spec = book.notebook_parameters(NB_OK)
    assert list(spec) == ["n", "label", "scale", "flag"]
    assert (spec["n"]["type"], spec["n"]["default"], spec["n"]["help"]) == ("int", 3, "how many repeats")
    assert (spec["label"]["type"], spec["label"]["default"]) == ("str", "x")
    assert spec["scale"]["type"] == "float"  # from the annotation
    assert spec["flag"]["type"] == "bool"


def test_unknown_parameter_lists_valid_ones_and_suggests():
    with pytest.raises(ParameterError) as info:
        book.validate_parameters(NB_OK, {"lable": "y"})
    msg = str(info.value)
    assert "unknown parameter 'lable'" in msg
    assert "did you mean 'label'" in msg
    for line in ("n: int = 3", 'label: str = "x"', "scale: float = 1.5", "flag: bool = False"):
        assert line in msg


@pytest.mark.parametrize("params, expect", [
    ({"n": "three"}, "'n' expects int"),
    ({"n": 2.5}, "'n' expects int"),
    ({"n": True}, "'n' expects int"),
    ({"label": 5}, "'label' expects str"),
    ({"flag": "yes"}, "'flag' expects bool"),
    ({"scale": "big"}, "'scale' expects float"),
])
def test_wrong_kind_is_an_error(params, expect):
    with pytest.raises(ParameterError, match=expect):
        book.validate_parameters(NB_OK, params)


def test_valid_values_and_cli_strings_resolve_by_parameter_type():
    out = book.validate_parameters(NB_OK, {"n": 4, "scale": 2})
    assert out == {"n": 4, "scale": 2.0} and isinstance(out["scale"], float)
    out = book.validate_parameters(
        NB_OK, {"label": CliValue("yes"), "n": CliValue("7"), "flag": CliValue("true"), "scale": CliValue("0.5")}
    )
    assert out == {"label": "yes", "n": 7, "flag": True, "scale": 0.5}


def test_load_profile_default_and_smoke():
    for name in ("default", "smoke"):
        prof = book.load_profile(name)
        assert prof["name"] == name and prof["description"]
        assert prof["notebooks"] and all(e["notebook"].endswith(".ipynb") for e in prof["notebooks"])
    assert book.load_profile(REPO / "params" / "smoke.yml")["name"] == "smoke"


def test_unknown_profile_lists_available():
    with pytest.raises(ParameterError) as info:
        book.load_profile("defualt")
    msg = str(info.value)
    assert "default" in msg and "smoke" in msg and "did you mean 'default'" in msg.lower()


def _profile_entries():
    for name in book.available_profiles(REPO):
        for entry in book.load_profile(name)["notebooks"]:
            yield pytest.param(name, entry, id=f"{name}-{Path(entry['notebook']).stem}")


@pytest.mark.parametrize("profile, entry", list(_profile_entries()))
def test_profile_entries_match_their_notebooks(profile, entry):
    path = REPO / entry["notebook"]
    assert Path(entry["notebook"]).parent.as_posix() == "notebooks"
    assert path.is_file(), f"{profile}: {entry['notebook']} does not exist; every chapter a profile lists must be written"
    book.validate_parameters(path, entry["parameters"])  # names and kinds agree with the parameters cell


def test_profiles_and_toc_list_the_same_chapters():
    default = [Path(e["notebook"]).stem for e in book.load_profile("default")["notebooks"]]
    smoke = [Path(e["notebook"]).stem for e in book.load_profile("smoke")["notebooks"]]
    toc = [Path(f).name for f in book.toc_files(REPO) if f.startswith("book/_generated/")]
    assert default == smoke == toc


def test_config_builds_offline():
    cfg = yaml.safe_load((REPO / "_config.yml").read_text())
    assert cfg["execute"]["execute_notebooks"] == "off"
    assert cfg["only_build_toc_files"] is True
    mathjax = REPO / "book" / "_static" / cfg["sphinx"]["config"]["mathjax_path"]
    assert mathjax.is_file()
    fonts = mathjax.parent / "output" / "chtml" / "fonts" / "woff-v2"
    assert (fonts / "MathJax_Main-Regular.woff").is_file()
    assert (mathjax.parent / "LICENSE").is_file()
    for f in book.toc_files(REPO):
        if not f.startswith("book/_generated/"):
            assert (REPO / f"{f}.md").is_file(), f


def test_missing_kernel_is_a_clear_error():
    with pytest.raises(book.KernelNotFoundError, match="make book"):
        book.check_kernel("no-such-kernel-for-dnalm-tests")


def test_remote_assets_scanner(tmp_path):
    (tmp_path / "a.html").write_text(
        '<html><head><script src="https://cdn.example.org/x.js"></script>'
        '<link rel="stylesheet" href="//fonts.example.org/f.css">'
        '<link rel="canonical" href="https://example.org/page.html">'
        '<script src="_static/local.js"></script>'
        '<script>const thebe = "https://unpkg.com/thebe@0.8.2/lib/index.js";</script>'
        '<style>@font-face { src: url("https://fonts.example.org/a.woff2"); }</style>'
        '</head><body><a href="https://doi.org/10.1/x">paper</a></body></html>'
    )
    (tmp_path / "s.css").write_text("/* url(https://in.comment) */ body { background: url(https://x.example.org/b.png); }")
    found = book.remote_assets(tmp_path)
    assert len(found) == 4, found
    assert any("cdn.example.org/x.js" in f for f in found)
    assert any("fonts.example.org/f.css" in f for f in found)
    assert any("a.woff2" in f for f in found)
    assert any(f.startswith("s.css:") for f in found)
    assert not any("thebe" in f or "doi.org" in f or "canonical" in f for f in found)


# --------------------------------------------------------------------------------------------------
# CLI errors (validation happens before any kernel starts)
# --------------------------------------------------------------------------------------------------

def _fixture_profile(folder: Path, *notebooks: Path, params=None) -> Path:
    entries = [{"notebook": str(nb), "parameters": dict(params or {})} for nb in notebooks]
    path = folder / "fixture_profile.yml"
    path.write_text(yaml.safe_dump({"description": "fixture", "notebooks": entries}))
    return path


def test_cli_unknown_profile(capsys):
    assert main(["run", "--profile", "no_such_profile"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown profile 'no_such_profile'") and "Traceback" not in err
    assert "default" in err and "smoke" in err


def test_cli_unknown_parameter(tmp_path, capsys):
    prof = _fixture_profile(tmp_path, NB_OK)
    assert main(["--root", str(tmp_path), "run", "--profile", str(prof), "-p", "lable", "y"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "'lable'" in err and "did you mean 'label'" in err
    assert "n: int = 3" in err and "Traceback" not in err


def test_cli_wrong_kind_and_bad_selection(tmp_path, capsys):
    prof = _fixture_profile(tmp_path, NB_OK)
    assert main(["--root", str(tmp_path), "run", "--profile", str(prof), "-p", "n", "many"]) == 2
    assert "'n' expects int" in capsys.readouterr().err
    assert main(["--root", str(tmp_path), "run", "99", "--profile", str(prof)]) == 2
    assert "no notebook of profile" in capsys.readouterr().err


def test_cli_params_lists_parameters(capsys):
    assert main(["params", str(NB_OK)]) == 0
    out = capsys.readouterr().out
    assert "n" in out and "int" in out and "how many repeats" in out


def test_cli_data_delegates(monkeypatch):
    import sys
    import types

    seen = {}
    fake = types.ModuleType("dnalm_utils.data")
    fake.main = lambda argv: seen.setdefault("argv", argv) and 0
    monkeypatch.setitem(sys.modules, "dnalm_utils.data", fake)
    import dnalm_utils

    monkeypatch.setattr(dnalm_utils, "data", fake, raising=False)
    assert main(["data", "verify", "--quick"]) == 0
    assert seen["argv"] == ["verify", "--quick"]


# --------------------------------------------------------------------------------------------------
# Executing notebooks (papermill) and building a tiny book (jupyter-book)
# --------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_run_notebook_adds_parameters_table(tmp_path):
    out = tmp_path / "gen" / "params_ok.ipynb"
    book.run_notebook(NB_OK, {"n": 2, "label": "ab", "flag": False}, out, progress=False)
    nb = nbformat.read(out, as_version=4)
    tags = [c.metadata.get("tags", []) for c in nb.cells]
    i_inj = next(i for i, t in enumerate(tags) if "injected-parameters" in t)
    assert book.TABLE_TAG in tags[i_inj + 1], "the table follows the injected cell"
    table = nb.cells[i_inj + 1].source
    assert "Parameters of this run" in table
    assert "| `n` | `2` **(changed;** default `3`**)** |" in table
    assert "| `scale` | `1.5` |  |" in table
    assert "| `flag` | `False` |  |" in table  # set to its default: not an override
    assert book.HIDE_TAG in tags[i_inj]
    assert book.HIDE_TAG in next(t for t in tags if "parameters" in t)
    assert nb.metadata["dnalm_book"]["overridden"] == ["label", "n"]
    assert nb.metadata["dnalm_book"]["set_by_run"] == ["flag", "label", "n"]
    stdout = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "result=abab" in stdout
    assert not list(out.parent.glob(".*.tmp")), "no temporary files left behind"


@pytest.mark.slow
def test_failing_notebook_names_cell_and_keeps_previous_output(tmp_path):
    out = tmp_path / "raises_in_cell_2.ipynb"
    out.write_text('{"previous": "version"}')
    with pytest.raises(NotebookExecutionError) as info:
        book.run_notebook(NB_FAIL, {"n": 7}, out, progress=False)
    msg = str(info.value)
    assert "raises_in_cell_2.ipynb" in msg
    assert "cell 2" in msg and "raise ValueError" in msg
    assert "ValueError: deliberate failure with n=7" in msg
    assert info.value.cell == 2 and info.value.ename == "ValueError"
    assert out.read_text() == '{"previous": "version"}'
    assert Path(info.value.failed_copy).is_file()


@pytest.fixture(scope="module")
def tiny_book(tmp_path_factory):
    """A book with the repository's config, intro and references, and one fixture chapter, built once."""
    root = tmp_path_factory.mktemp("tiny_book")
    shutil.copy(REPO / "_config.yml", root / "_config.yml")
    (root / "book").mkdir()
    for name in ("intro.md", "references.md", "references.bib"):
        shutil.copy(REPO / "book" / name, root / "book" / name)
    shutil.copytree(REPO / "book" / "_static", root / "book" / "_static")
    toc = {"format": "jb-book", "root": "book/intro",
           "parts": [{"caption": "Chapters", "chapters": [{"file": "book/_generated/params_ok"}]},
                     {"caption": "Back matter", "chapters": [{"file": "book/references"}]}]}
    (root / "_toc.yml").write_text(yaml.safe_dump(toc, sort_keys=False))
    (root / "params").mkdir()
    prof = _fixture_profile(root / "params", NB_OK, params={"n": 5, "label": "ab"})
    manifest = book.run_profile(prof, root=root, progress=False)
    return root, manifest


@pytest.mark.slow
def test_run_profile_builds_the_book(tiny_book, capsys):
    root, manifest = tiny_book
    html = root / "_build" / "html"
    assert (html / "index.html").is_file()
    page = (html / "book" / "_generated" / "params_ok.html").read_text()
    assert "Parameters of this run" in page and "changed" in page
    assert "ababababab" in page  # printed and glued value
    assert "7.50" in page  # {glue:text} with a format spec
    assert "_static/mathjax/tex-mml-chtml.js" in page
    intro = (html / "book" / "intro.html").read_text()
    assert "Sanabria" in intro and "Glossary" in intro
    saved = json.loads((root / "book" / "_generated" / "run_manifest.json").read_text())
    assert saved["last_run"]["status"] == "ok" and saved["last_run"]["book_build_s"] > 0
    rec = saved["notebooks"]["params_ok"]
    assert rec["parameters"] == {"n": 5, "label": "ab", "scale": 1.5, "flag": False}
    assert rec["overridden"] == ["label", "n"] and rec["duration_s"] > 0
    assert saved["versions"]["papermill"]


@pytest.mark.slow
def test_built_book_loads_no_remote_assets(tiny_book):
    root, _ = tiny_book
    assert book.remote_assets(root / "_build" / "html") == []


@pytest.mark.slow
def test_failed_build_keeps_previous_book(tiny_book, capsys):
    root, _ = tiny_book
    index = root / "_build" / "html" / "index.html"
    before = index.read_bytes()
    toc_path = root / "_toc.yml"
    good_toc = toc_path.read_text()
    try:
        # 1. a page that Sphinx warns about (-W turns the warning into an error)
        (root / "book" / "broken.md").write_text("# Broken\n\nSee {doc}`no_such_page`.\n")
        toc = yaml.safe_load(good_toc)
        toc["parts"][1]["chapters"].append({"file": "book/broken"})
        toc_path.write_text(yaml.safe_dump(toc, sort_keys=False))
        assert main(["--root", str(root), "build"]) == 1
        err = capsys.readouterr().err
        assert err.startswith("error: jupyter-book build failed") and "no_such_page" in err
        assert index.read_bytes() == before
        # 2. a TOC entry without a file
        toc["parts"][1]["chapters"][-1] = {"file": "book/_generated/02_missing"}
        toc_path.write_text(yaml.safe_dump(toc, sort_keys=False))
        with pytest.raises(BookBuildError, match="02_missing"):
            book.build_book(root)
        assert index.read_bytes() == before
        assert not [p for p in (root / "_build").iterdir() if p.name.startswith(".")], "temp build dirs removed"
    finally:
        toc_path.write_text(good_toc)


@pytest.mark.slow
def test_failing_notebook_in_profile_stops_before_build(tiny_book, capsys):
    root, _ = tiny_book
    index = root / "_build" / "html" / "index.html"
    before = index.read_bytes()
    prof = _fixture_profile(root / "params", NB_FAIL)
    assert main(["--root", str(root), "run", "--profile", str(prof), "--no-progress"]) == 1
    captured = capsys.readouterr()
    assert "[1/1] " in captured.out and "FAILED" in captured.out
    assert "raises_in_cell_2.ipynb failed in cell 2" in captured.err
    assert index.read_bytes() == before
    saved = json.loads((root / "book" / "_generated" / "run_manifest.json").read_text())
    assert saved["last_run"]["status"].startswith("failed")
    assert saved["notebooks"]["raises_in_cell_2"]["status"] == "failed"
    assert saved["notebooks"]["params_ok"]["status"] == "ok"  # earlier record kept


def test_input_errors_are_dnalm_input_errors():
    assert issubclass(ParameterError, DnalmInputError)
    assert issubclass(book.KernelNotFoundError, DnalmInputError)


# ------------------------------------------------------------------------------------------------
# Teaching mode
# ------------------------------------------------------------------------------------------------
def test_stub_solution_keeps_signature_and_docstring():
    src = 'def f(a, b):\n    """Add."""\n    # solution\n    return a + b\n'
    stub = book.stub_solution(src)
    assert stub.splitlines()[:2] == ['def f(a, b):', '    """Add."""']
    assert stub.splitlines()[2] == "    " + book.STUB and "return a + b" not in stub
    ns = {}
    exec(stub, ns)
    with pytest.raises(NotImplementedError, match="Exercise"):
        ns["f"](1, 2)
    with pytest.raises(DnalmInputError, match="# solution"):
        book.stub_solution("x = 1\n", where="nb.ipynb, cell 3")


def test_student_notebook_replaces_only_solutions():
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["hide-input"]}),
        nbformat.v4.new_code_cell("def f():\n    # solution\n    return 2", metadata={"tags": ["solution", "hide-input"]},
                                  outputs=[nbformat.v4.new_output("stream", text="2")], execution_count=3),
    ])
    out = book.student_notebook(nb)
    assert out.cells[0] == nb.cells[0]
    sol = out.cells[1]
    assert "return 2" not in sol.source and book.STUB in sol.source
    assert sol.outputs == [] and sol.execution_count is None and sol.metadata["tags"] == ["solution"]
    assert "return 2" in nb.cells[1].source  # the original is untouched


def _solution_cells():
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for i in book.solution_cells(nb):
            yield pytest.param(path, i, id=f"{path.stem}-cell{i}")


@pytest.mark.parametrize("path, i", list(_solution_cells()))
def test_every_exercise_has_a_stub_that_raises(path, i):
    import inspect

    nb = nbformat.read(path, as_version=4)
    assert "hide-input" in nb.cells[i].metadata["tags"]  # folded in the main book
    ns = {}
    exec(book.student_notebook(nb).cells[i].source, ns)
    funcs = [v for k, v in ns.items() if inspect.isfunction(v)]
    assert len(funcs) == 1
    with pytest.raises(NotImplementedError):
        funcs[0](*[None] * len(inspect.signature(funcs[0]).parameters))


def test_the_book_has_exercises():
    assert len(list(_solution_cells())) >= 3
