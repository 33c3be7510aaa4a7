"""Tests of the book runner (run_parameters, parameters_display, notebook_execution, book_build,
offline_assets, profile_runner, student_edition) and the dnalm-book CLI, on tiny fixture notebooks.

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

from dnalm_utils import (
    book_build, notebook_execution, offline_assets, parameters_display, profile_runner, run_parameters,
    student_edition,
)
from dnalm_utils.book_build import BookBuildError
from dnalm_utils.notebook_execution import NotebookExecutionError
from dnalm_utils.run_parameters import CliValue
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
    spec = run_parameters.notebook_parameters(NB_OK)
    assert list(spec) == ["n", "label", "scale", "flag"]
    assert (spec["n"]["type"], spec["n"]["default"], spec["n"]["help"]) == ("int", 3, "how many repeats")
    assert (spec["label"]["type"], spec["label"]["default"]) == ("str", "x")
    assert spec["scale"]["type"] == "float"  # from the annotation
    assert spec["flag"]["type"] == "bool"


def test_unknown_parameter_lists_valid_ones_and_suggests():
    with pytest.raises(ParameterError) as info:
        run_parameters.validate_parameters(NB_OK, {"lable": "y"})
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
        run_parameters.validate_parameters(NB_OK, params)


def test_valid_values_and_cli_strings_resolve_by_parameter_type():
    out = run_parameters.validate_parameters(NB_OK, {"n": 4, "scale": 2})
    assert out == {"n": 4, "scale": 2.0} and isinstance(out["scale"], float)
    out = run_parameters.validate_parameters(
        NB_OK, {"label": CliValue("yes"), "n": CliValue("7"), "flag": CliValue("true"), "scale": CliValue("0.5")}
    )
    assert out == {"label": "yes", "n": 7, "flag": True, "scale": 0.5}


def test_load_profile_default_and_smoke():
    for name in ("default", "smoke"):
        prof = run_parameters.load_profile(name)
        assert prof["name"] == name and prof["description"]
        assert prof["notebooks"] and all(e["notebook"].endswith(".ipynb") for e in prof["notebooks"])
    assert run_parameters.load_profile(REPO / "params" / "smoke.yml")["name"] == "smoke"


def test_unknown_profile_lists_available():
    with pytest.raises(ParameterError) as info:
        run_parameters.load_profile("defualt")
    msg = str(info.value)
    assert "default" in msg and "smoke" in msg and "did you mean 'default'" in msg.lower()


def _profile_entries():
    for name in run_parameters.available_profiles(REPO):
        for entry in run_parameters.load_profile(name)["notebooks"]:
            yield pytest.param(name, entry, id=f"{name}-{Path(entry['notebook']).stem}")


@pytest.mark.parametrize("profile, entry", list(_profile_entries()))
def test_profile_entries_match_their_notebooks(profile, entry):
    path = REPO / entry["notebook"]
    assert Path(entry["notebook"]).parent.as_posix() == "notebooks"
    assert path.is_file(), f"{profile}: {entry['notebook']} does not exist; every chapter a profile lists must be written"
    run_parameters.validate_parameters(path, entry["parameters"])  # names and kinds agree with the parameters cell


def test_profiles_and_toc_list_the_same_chapters():
    default = [Path(e["notebook"]).stem for e in run_parameters.load_profile("default")["notebooks"]]
    smoke = [Path(e["notebook"]).stem for e in run_parameters.load_profile("smoke")["notebooks"]]
    toc = [Path(f).name for f in book_build.toc_files(REPO) if f.startswith("book/_generated/")]
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
    for f in book_build.toc_files(REPO):
        if not f.startswith("book/_generated/"):
            assert (REPO / f"{f}.md").is_file(), f


def test_missing_kernel_is_a_clear_error():
    with pytest.raises(notebook_execution.KernelNotFoundError, match="make book"):
        notebook_execution.check_kernel("no-such-kernel-for-dnalm-tests")


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
    found = offline_assets.remote_assets(tmp_path)
    assert len(found) == 4, found
    assert any("cdn.example.org/x.js" in f for f in found)
    assert any("fonts.example.org/f.css" in f for f in found)
    assert any("a.woff2" in f for f in found)
    assert any(f.startswith("s.css:") for f in found)
    assert not any("thebe" in f or "doi.org" in f or "canonical" in f for f in found)


# --------------------------------------------------------------------------------------------------
# The parameters of a run, folded under the chapter's opening; wide tables
# --------------------------------------------------------------------------------------------------

def _executed_like(*cells) -> nbformat.NotebookNode:
    """A notebook shaped like papermill's output: ("md" | "code" | "params" | "injected", source) pairs."""
    out = []
    for kind, source in cells:
        if kind == "md":
            out.append(nbformat.v4.new_markdown_cell(source))
        else:
            tags = {"params": ["parameters"], "injected": ["injected-parameters"]}.get(kind, [])
            outputs = [nbformat.v4.new_output("stream", text="a result\n")] if kind == "code" else []
            out.append(nbformat.v4.new_code_cell(source, metadata={"tags": tags}, outputs=outputs))
    return nbformat.v4.new_notebook(cells=out)


@pytest.mark.parametrize("cells, expect_at", [
    pytest.param([("md", "# Title\n\n**Question.** Does it?"), ("params", "n = 3"), ("injected", "n = 2"),
                  ("code", "print(n)")], 1, id="title-and-question-in-one-cell"),
    pytest.param([("md", "# Title"), ("md", "**Question.** Does it?"), ("params", "n = 3"), ("injected", "n = 2"),
                  ("code", "print(n)")], 2, id="title-cell-then-prose-cell"),
    pytest.param([("md", "# Title"), ("md", "The question."), ("md", "## Data\n\nWindows..."),
                  ("params", "n = 3"), ("code", "print(n)")], 2, id="stops-at-the-first-section"),
    pytest.param([("code", "import x"), ("md", "# Title"), ("params", "n = 3")], 0, id="starts-with-code"),
])
def test_fold_sits_after_the_opening_prose_and_before_the_first_code_cell(tmp_path, cells, expect_at):
    spec = run_parameters.notebook_parameters(NB_OK)
    nb = _executed_like(*cells)
    notebook_execution.postprocess_executed_notebook(nb, spec, {"n": 2}, notebook=NB_OK,
                                                     out_path=tmp_path / "out.ipynb")
    folds = [i for i, c in enumerate(nb.cells) if parameters_display.TABLE_TAG in c.metadata.get("tags", [])]
    assert folds == [expect_at]
    first_code = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
    assert expect_at <= first_code, "no code cell (and so no output) comes before the fold"
    assert all(c.cell_type == "markdown" for c in nb.cells[:expect_at])
    fold = nb.cells[expect_at].source
    assert fold.index("This run changed") < fold.index("```{dropdown}")  # the change is shown above the fold
    for name in spec:  # every parameter the page ran with is stated, inside the fold
        assert f"| `{name}` |" in fold.split("```{dropdown}", 1)[1]
    for c in nb.cells:
        if {"parameters", "injected-parameters"} & set(c.metadata.get("tags", [])):
            assert notebook_execution.HIDE_TAG in c.metadata["tags"]


def _names_in_changed_line(line: str) -> list[str]:
    import re

    return re.findall(r"`(\w+) = ", line)


@pytest.mark.parametrize("values, changed", [
    ({}, []),
    ({"n": 3, "flag": False, "scale": 1.5}, []),           # every value equal to its default
    ({"scale": 1}, ["scale"]),                              # 1 is not 1.5
    ({"n": 3.0}, []),                                       # 3.0 == 3
    ({"flag": 0}, ["flag"]),                                # 0 is not False
    ({"label": "x", "n": 10, "flag": True}, ["flag", "n"]),
    ({"label": "a | b`c", "n": 2, "scale": 2.0, "flag": True}, ["flag", "label", "n", "scale"]),
])
def test_changed_line_names_exactly_the_overridden_parameters(values, changed):
    spec = run_parameters.notebook_parameters(NB_OK)
    assert run_parameters.overridden_names(spec, values) == changed
    line = parameters_display.changed_parameters_line(spec, values)
    assert "\n" not in line
    assert _names_in_changed_line(line) == changed
    if not changed:
        assert line == "This run used the chapter's default parameters."
    fold = parameters_display.parameters_fold_markdown(spec, values)
    assert fold.count("**(changed;**") == len(changed)
    assert fold.count("\n| `") == len(spec)  # one table row per declared parameter


def test_long_changed_value_is_cut_and_stays_on_one_line():
    spec = run_parameters.notebook_parameters(NB_OK)
    line = parameters_display.changed_parameters_line(spec, {"label": "ACGT" * 100})
    assert _names_in_changed_line(line) == ["label"] and len(line) < 120


def test_no_fold_without_parameters(tmp_path):
    nb = _executed_like(("md", "# Title"), ("code", "print(1)"))
    before = len(nb.cells)
    notebook_execution.postprocess_executed_notebook(nb, {}, {}, notebook=NB_OK, out_path=tmp_path / "o.ipynb")
    assert len(nb.cells) == before


def test_config_registers_the_wide_table_css(tmp_path):
    cfg = yaml.safe_load((REPO / "_config.yml").read_text())["sphinx"]["config"]
    static = [REPO / d for d in cfg["html_static_path"]]
    assert cfg["html_css_files"], "no stylesheet registered"
    css = ""
    for name in cfg["html_css_files"]:
        hits = [d / name for d in static if (d / name).is_file()]
        assert hits, f"{name} is not in any html_static_path folder {cfg['html_static_path']}"
        css += hits[0].read_text()
        shutil.copy(hits[0], tmp_path / Path(name).name)
    assert "div.output.text_html" in css and "pst-scrollable-table-container" in css
    assert "overflow-x: auto" in css and "max-width: 100%" in css
    assert offline_assets.remote_assets(tmp_path) == []  # nothing to fetch: the book is read offline


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
    fake = types.ModuleType("dnalm_utils.data_rebuild")
    fake.main = lambda argv: seen.setdefault("argv", argv) and 0
    monkeypatch.setitem(sys.modules, "dnalm_utils.data_rebuild", fake)
    import dnalm_utils

    monkeypatch.setattr(dnalm_utils, "data_rebuild", fake, raising=False)
    assert main(["data", "verify", "--quick"]) == 0
    assert seen["argv"] == ["verify", "--quick"]


# --------------------------------------------------------------------------------------------------
# Executing notebooks (papermill) and building a tiny book (jupyter-book)
# --------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_run_notebook_folds_parameters_under_the_opening(tmp_path):
    out = tmp_path / "gen" / "params_ok.ipynb"
    notebook_execution.run_notebook(NB_OK, {"n": 2, "label": "ab", "flag": False}, out, progress=False)
    nb = nbformat.read(out, as_version=4)
    tags = [c.metadata.get("tags", []) for c in nb.cells]
    i_fold = next(i for i, t in enumerate(tags) if parameters_display.TABLE_TAG in t)
    # the fixture opens with one markdown cell (title and prose), then its parameters cell
    assert i_fold == 1 and nb.cells[0].cell_type == "markdown"
    assert nb.cells[i_fold + 1].cell_type == "code" and "parameters" in tags[i_fold + 1]
    fold = nb.cells[i_fold].source
    line, rest = fold.split("```{dropdown}", 1)
    assert line.strip() == "**This run changed:** `label = 'ab'`, `n = 2` (defaults in the table below)."
    assert rest.startswith(" Parameters of this run (all 4)")
    assert "| `n` | `2` **(changed;** default `3`**)** |" in rest
    assert "| `scale` | `1.5` |  |" in rest
    assert "| `flag` | `False` |  |" in rest  # set to its default: not an override
    i_inj = next(i for i, t in enumerate(tags) if "injected-parameters" in t)
    assert notebook_execution.HIDE_TAG in tags[i_inj]
    assert notebook_execution.HIDE_TAG in next(t for t in tags if "parameters" in t)
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
        notebook_execution.run_notebook(NB_FAIL, {"n": 7}, out, progress=False)
    msg = str(info.value)
    assert "raises_in_cell_2.ipynb" in msg
    assert "cell 2" in msg and "raise ValueError" in msg
    assert "ValueError: deliberate failure with n=7" in msg
    assert info.value.cell == 2 and info.value.ename == "ValueError"
    assert out.read_text() == '{"previous": "version"}'
    assert Path(info.value.failed_copy).is_file()


def _book_skeleton(root: Path, *chapters: str) -> Path:
    """The repository's _config.yml, intro, references and static files in ``root``, with ``chapters`` in the TOC."""
    shutil.copy(REPO / "_config.yml", root / "_config.yml")
    (root / "book").mkdir()
    for name in ("intro.md", "references.md", "references.bib"):
        shutil.copy(REPO / "book" / name, root / "book" / name)
    shutil.copytree(REPO / "book" / "_static", root / "book" / "_static")
    toc = {"format": "jb-book", "root": "book/intro",
           "parts": [{"caption": "Chapters", "chapters": [{"file": c} for c in chapters]},
                     {"caption": "Back matter", "chapters": [{"file": "book/references"}]}]}
    (root / "_toc.yml").write_text(yaml.safe_dump(toc, sort_keys=False))
    return root


@pytest.fixture(scope="module")
def tiny_book(tmp_path_factory):
    """A book with the repository's config, intro and references, and one fixture chapter, built once."""
    root = _book_skeleton(tmp_path_factory.mktemp("tiny_book"), "book/_generated/params_ok")
    (root / "params").mkdir()
    prof = _fixture_profile(root / "params", NB_OK, params={"n": 5, "label": "ab"})
    manifest = profile_runner.run_profile(prof, root=root, progress=False)
    return root, manifest


@pytest.mark.slow
def test_run_profile_builds_the_book(tiny_book, capsys):
    root, manifest = tiny_book
    html = root / "_build" / "html"
    assert (html / "index.html").is_file()
    page = (html / "book" / "_generated" / "params_ok.html").read_text()
    assert "Parameters of this run" in page and "changed" in page
    # the changed values are stated above the fold; the full table is folded in a <details> element,
    # placed before the fixture's first output
    changed = page.index("This run changed")
    fold = page.index("<details", changed)
    table = page.index("Parameters of this run", fold)
    assert changed < fold < table < page.index("</details>", table) < page.index("result=ababababab")
    assert "_static/wide-tables.css" in page and (html / "_static" / "wide-tables.css").is_file()
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
    assert offline_assets.remote_assets(root / "_build" / "html") == []


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
            book_build.build_book(root)
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


def _wide_tables_chapter(path: Path) -> None:
    """An executed-looking chapter with a 40-column pandas table (HTML output) and a 30-column markdown table."""
    import pandas as pd

    frame = pd.DataFrame([[f"value {r}.{c}" for c in range(40)] for r in range(3)],
                         columns=[f"a long column name {c:02d}" for c in range(40)])
    header = "| " + " | ".join(f"markdown column {c:02d}" for c in range(30)) + " |"
    markdown_table = "\n".join([header, "|" + "---|" * 30, "| " + " | ".join(["x"] * 30) + " |"])
    cell = nbformat.v4.new_code_cell("frame", execution_count=1, outputs=[nbformat.v4.new_output(
        "execute_result", data={"text/html": frame.to_html(), "text/plain": "frame"}, execution_count=1)])
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_markdown_cell("# Wide tables\n\nOpening."), cell,
               nbformat.v4.new_markdown_cell(markdown_table)],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                  "language_info": {"name": "python"}})
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


def _table_problems(html: Path) -> list[str]:
    from dnalm_utils import browser

    return [p for p in browser.check_book(html, screenshot=html.parent / "shot.png").problems if "table" in p]


@pytest.mark.slow
def test_wide_tables_scroll_inside_the_page(tmp_path):
    from dnalm_utils import browser

    try:
        browser.find_browser()
    except DnalmInputError as exc:
        pytest.skip(str(exc))
    root = _book_skeleton(tmp_path, "book/_generated/wide")
    _wide_tables_chapter(root / "book" / "_generated" / "wide.ipynb")
    assert _table_problems(book_build.build_book(root)) == []
    # control: a stylesheet that stops the pandas output from scrolling lets that table run past the text
    # column, and the check says so
    (root / "book" / "_static" / "wide-tables.css").write_text(
        "div.cell_output div.output.text_html { overflow-x: visible !important; }\n")
    problems = _table_problems(book_build.build_book(root))
    assert len(problems) == 1 and problems[0].startswith("book/_generated/wide.html: a table"), problems


def test_object_reprs_finds_default_reprs_and_nothing_else():
    from dnalm_utils import browser

    text = ("on <IPython.core.display.Markdown object> windows; <foo.Bar object at 0x7f3a2c> and again "
            "<IPython.core.display.Markdown object>; not these: <b>bold</b>, a < b > c, <object>, <Markdown object>")
    assert browser.object_reprs(text) == ["<IPython.core.display.Markdown object>", "<foo.Bar object at 0x7f3a2c>"]
    assert browser.object_reprs("accuracy 45.6 % [44.5, 46.7] against the n-gram") == []


def test_input_errors_are_dnalm_input_errors():
    assert issubclass(ParameterError, DnalmInputError)
    assert issubclass(notebook_execution.KernelNotFoundError, DnalmInputError)


# ------------------------------------------------------------------------------------------------
# Teaching mode
# ------------------------------------------------------------------------------------------------
def test_stub_solution_keeps_signature_and_docstring():
    src = 'def f(a, b):\n    """Add."""\n    # solution\n    return a + b\n'
    stub = student_edition.stub_solution(src)
    assert stub.splitlines()[:2] == ['def f(a, b):', '    """Add."""']
    assert stub.splitlines()[2] == "    " + student_edition.STUB and "return a + b" not in stub
    ns = {}
    exec(stub, ns)
    with pytest.raises(NotImplementedError, match="Exercise"):
        ns["f"](1, 2)
    with pytest.raises(DnalmInputError, match="# solution"):
        student_edition.stub_solution("x = 1\n", where="nb.ipynb, cell 3")


def test_student_notebook_replaces_only_solutions():
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["hide-input"]}),
        nbformat.v4.new_code_cell("def f():\n    # solution\n    return 2", metadata={"tags": ["solution", "hide-input"]},
                                  outputs=[nbformat.v4.new_output("stream", text="2")], execution_count=3),
    ])
    out = student_edition.student_notebook(nb)
    assert out.cells[0] == nb.cells[0]
    sol = out.cells[1]
    assert "return 2" not in sol.source and student_edition.STUB in sol.source
    assert sol.outputs == [] and sol.execution_count is None and sol.metadata["tags"] == ["solution"]
    assert "return 2" in nb.cells[1].source  # the original is untouched


def _solution_cells():
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for i in student_edition.solution_cells(nb):
            yield pytest.param(path, i, id=f"{path.stem}-cell{i}")


@pytest.mark.parametrize("path, i", list(_solution_cells()))
def test_every_exercise_has_a_stub_that_raises(path, i):
    import inspect

    nb = nbformat.read(path, as_version=4)
    assert "hide-input" in nb.cells[i].metadata["tags"]  # folded in the main book
    ns = {}
    exec(student_edition.student_notebook(nb).cells[i].source, ns)
    funcs = [v for k, v in ns.items() if inspect.isfunction(v)]
    assert len(funcs) == 1
    with pytest.raises(NotImplementedError):
        funcs[0](*[None] * len(inspect.signature(funcs[0]).parameters))


def test_the_book_has_exercises():
    assert len(list(_solution_cells())) >= 3


def test_profile_groups_are_names_of_consecutive_entries(tmp_path):
    def write(entries):
        path = tmp_path / "grouped.yml"
        path.write_text(yaml.safe_dump({"description": "groups", "notebooks": entries}))
        return path

    a, b, c = ({"notebook": f"notebooks/0{i}_x.ipynb"} for i in (1, 2, 3))
    prof = run_parameters.load_profile(write([a, {**b, "group": "g"}, {**c, "group": "g"}]))
    assert [e["group"] for e in prof["notebooks"]] == [None, "g", "g"]
    with pytest.raises(ParameterError, match="group 'g'.*not consecutive"):
        run_parameters.load_profile(write([{**a, "group": "g"}, b, {**c, "group": "g"}]))
    with pytest.raises(ParameterError, match="'group' must be a name"):
        run_parameters.load_profile(write([{**a, "group": 3}]))
    assert [e.get("group") for e in run_parameters.load_profile("default")["notebooks"]].count("after-zoo") == 2


def _env_notebook(path: Path, fail: bool = False) -> Path:
    """A fixture notebook that records the kernel's OMP_NUM_THREADS and torch thread count in out_file."""
    params = nbformat.v4.new_code_cell('out_file = ""  # where to write the threads')
    params.metadata["tags"] = ["parameters"]
    body = ("import os, time\nimport torch\ntime.sleep(1)\n"
            "open(out_file, 'w').write(f\"{os.environ.get('OMP_NUM_THREADS')} {torch.get_num_threads()} {time.time()}\")"
            + ("\nraise ValueError('deliberate failure in a group')" if fail else ""))
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Threads"), params,
                                         nbformat.v4.new_code_cell(body)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


@pytest.mark.slow
def test_grouped_notebooks_run_side_by_side_with_their_share_of_threads(tmp_path, capsys):
    from dnalm_utils.grid_executors import available_cpus

    nbs = [_env_notebook(tmp_path / f"env_{i}.ipynb", fail=(i == 2)) for i in range(3)]
    outs = [tmp_path / f"env_{i}.txt" for i in range(3)]
    entries = [{"notebook": str(nb), "parameters": {"out_file": str(o)}, "group": "pair"}
               for nb, o in zip(nbs[:2], outs)]
    path = tmp_path / "pair.yml"
    path.write_text(yaml.safe_dump({"description": "pair", "notebooks": entries}))
    manifest = profile_runner.run_profile(path, root=tmp_path, build=False, progress=False, reuse=False)
    share = max(1, available_cpus() // 2)
    seen = [o.read_text().split() for o in outs[:2]]
    assert [s[:2] for s in seen] == [[str(share), str(share)]] * 2  # the kernels got the share, torch took it
    assert "side by side with env_1" in capsys.readouterr().out
    recs = manifest["notebooks"]
    assert [recs[f"env_{i}"]["threads"] for i in range(2)] == [share, share]
    assert all(recs[f"env_{i}"]["status"] == "ok" and recs[f"env_{i}"]["group"] == "pair" for i in range(2))
    # a failure in a group: the other notebook still finishes, then the failure is raised
    entries = [{"notebook": str(nbs[2]), "parameters": {"out_file": str(outs[2])}, "group": "pair"},
               {"notebook": str(nbs[0]), "parameters": {"out_file": str(outs[0])}, "group": "pair"}]
    outs[0].unlink()
    path.write_text(yaml.safe_dump({"description": "pair", "notebooks": entries}))
    with pytest.raises(Exception, match="deliberate failure in a group"):
        profile_runner.run_profile(path, root=tmp_path, build=False, progress=False, reuse=False)
    saved = json.loads((tmp_path / "book" / "_generated" / "run_manifest.json").read_text())
    assert saved["notebooks"]["env_2"]["status"] == "failed" and saved["notebooks"]["env_0"]["status"] == "ok"
    assert outs[0].is_file() and saved["last_run"]["status"] == "failed in env_2.ipynb"
