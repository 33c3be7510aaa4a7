"""Where the book's files live: the repository root, the run profiles, the executed chapters.

Every path here is relative to a book root (the repository by default, a temporary copy in tests):
``params/<profile>.yml`` holds the run profiles, ``book/_generated/NN_name.ipynb`` the executed chapters
and ``book/_generated/run_manifest.json`` the record of the last run.
"""

from __future__ import annotations

from pathlib import Path

#: The repository holding ``_config.yml``, ``_toc.yml``, ``notebooks/`` and ``params/``.
REPO_ROOT = Path(__file__).resolve().parents[1]
#: Folder of the run profiles, relative to a book root.
PARAMS_DIR = "params"
#: Folder of the executed chapters (written by ``dnalm-book run``), relative to a book root.
GENERATED_DIR = Path("book") / "_generated"


def display_path(path: str | Path, root: str | Path = REPO_ROOT) -> str:
    """``path`` relative to ``root`` in POSIX form (``notebooks/01_tokenization.ipynb``), or as given when it
    lies outside ``root``. Used in messages and manifests so they do not depend on the checkout's location."""
    path = Path(path)
    try:
        return path.resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return str(path)
