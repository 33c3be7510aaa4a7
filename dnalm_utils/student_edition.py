"""The student edition: the same chapters with every exercise solution replaced by a stub.

A code cell tagged ``solution`` holds an exercise's solution (folded in the main book). In the student
edition the lines after its ``# solution`` marker become ``raise NotImplementedError(...)``
(:func:`stub_solution`), its output is removed and it is unfolded (:func:`student_notebook`).
:func:`build_student` writes ``_build/student_html`` (the executed chapters, stubbed) and
``_build/student_notebooks`` (the chapter templates, stubbed, for students to run).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import yaml

from .book_build import BookBuildError, build_book, missing_toc_files
from .book_layout import GENERATED_DIR, REPO_ROOT
from .errors import DnalmInputError
from .io import atomic_path

#: A code cell holding an exercise's solution: folded in the main book, a stub in the student edition.
SOLUTION_TAG = "solution"
#: The line in a solution cell after which the solution starts; everything before it (signature, docstring)
#: stays in the student edition.
SOLUTION_MARKER = "# solution"
STUB = 'raise NotImplementedError("Exercise: replace this line with your solution, then run the check below.")'
STUDENT_HTML = "student_html"
STUDENT_NOTEBOOKS = "student_notebooks"


def stub_solution(source: str, *, where: str = "solution cell") -> str:
    """The student version of a solution cell: the lines before ``# solution`` (e.g. a function's signature and
    docstring) followed by a stub that raises NotImplementedError, indented like the marker."""
    lines = source.splitlines()
    idx = next((i for i, line in enumerate(lines) if line.strip() == SOLUTION_MARKER), None)
    if idx is None:
        raise DnalmInputError(f"{where} has no '{SOLUTION_MARKER}' line: mark where the solution starts.")
    indent = lines[idx][: len(lines[idx]) - len(lines[idx].lstrip())]
    return "\n".join(lines[:idx] + [indent + STUB])


def student_notebook(nb, *, where: str = "notebook"):
    """A copy of ``nb`` (nbformat) with every ``solution`` cell replaced by its stub, outputs cleared, unfolded."""
    import copy

    out = copy.deepcopy(nb)
    for i, cell in enumerate(out.cells):
        tags = cell.get("metadata", {}).get("tags", [])
        if cell.cell_type == "code" and SOLUTION_TAG in tags:
            cell.source = stub_solution(cell.source, where=f"{where}, cell {i}")
            cell.outputs = []
            cell.execution_count = None
            cell.metadata["tags"] = [t for t in tags if t not in ("hide-input", "hide-cell", "remove-input")]
    return out


def solution_cells(nb) -> list[int]:
    """Indices of the exercise solution cells of a notebook."""
    return [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and SOLUTION_TAG in c.get("metadata", {}).get("tags", [])]


def build_student(root: str | os.PathLike = REPO_ROOT, *, timeout: float | None = 1800) -> tuple[Path, Path]:
    """Build the student edition next to the book: ``_build/student_html`` (the executed chapters with every
    solution replaced by a stub and its output removed) and ``_build/student_notebooks`` (the chapter templates,
    stubs in place, for students to run). Needs the chapters executed (``dnalm-book run``). Returns both paths."""
    import nbformat

    root = Path(root).resolve()
    src = root / "_build" / ".student_src"
    if src.exists():
        shutil.rmtree(src)
    src.mkdir(parents=True)
    cfg = yaml.safe_load((root / "_config.yml").read_text())
    cfg["title"] = f"{cfg.get('title', 'Book')} (student edition)"
    (src / "_config.yml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    shutil.copy(root / "_toc.yml", src / "_toc.yml")
    shutil.copytree(root / "book", src / "book", ignore=shutil.ignore_patterns("_generated", "*.failed.ipynb"))
    missing = missing_toc_files(root)
    if missing:
        raise BookBuildError(f"the chapters are not executed yet ({', '.join(missing)}): run `dnalm-book run` first.")
    gen = src / GENERATED_DIR
    gen.mkdir(parents=True)
    for path in sorted((root / GENERATED_DIR).glob("*.ipynb")):
        if path.name.endswith(".failed.ipynb"):
            continue
        nb = nbformat.read(path, as_version=4)
        nbformat.write(student_notebook(nb, where=str(path.relative_to(root))), gen / path.name)
    try:
        html = build_book(src, timeout=timeout)
        with atomic_path(root / "_build" / STUDENT_HTML) as target:
            os.replace(html, target)
    finally:
        shutil.rmtree(src, ignore_errors=True)
    with atomic_path(root / "_build" / STUDENT_NOTEBOOKS) as target:
        target.mkdir()
        for path in sorted((root / "notebooks").glob("*.ipynb")):
            nb = nbformat.read(path, as_version=4)
            nbformat.write(student_notebook(nb, where=str(path.relative_to(root))), target / path.name)
    return root / "_build" / STUDENT_HTML, root / "_build" / STUDENT_NOTEBOOKS
