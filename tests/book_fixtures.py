"""Helpers shared by the notebook tests (test_notebooks.py: the smoke book; test_notebook_replicas.py: chapters
re-run on other model sets): the repository root, a copy of the book sources, and readers of executed notebooks
and rendered pages."""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def glued(nb) -> dict[str, str]:
    """name -> text of every non-figure value an executed notebook glued."""
    out = {}
    for c in nb.cells:
        for o in c.get("outputs", []):
            name = o.get("metadata", {}).get("scrapbook", {}).get("name")
            if name and not name.startswith("fig"):
                data = o["data"]  # myst-nb stores a glued value under "application/papermill.record/<mime>"
                key = next((k for k in data if k.endswith("text/markdown")), None) or next(
                    (k for k in data if k.endswith("text/plain")), None)
                out[name] = str(data[key]) if key else ""
    return out


def book_sources(root: Path) -> Path:
    """A copy of the repository's book sources (config, toc, pages, notebooks, profiles) in ``root``."""
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(ROOT / name, root / name)
    for name in ("book", "notebooks", "params"):
        shutil.copytree(ROOT / name, root / name, ignore=shutil.ignore_patterns("_generated"))
    return root


def errors(nb):
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]


def page_text(path):
    import html
    import re

    text = re.sub(r"<[^>]+>", "", path.read_text())
    return html.unescape(text)
