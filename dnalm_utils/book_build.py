"""Build the HTML book from the executed chapters with Jupyter Book 1, keeping the previous book on failure.

:func:`build_book` runs ``jupyter-book build -W -n --keep-going`` (execution is off in ``_config.yml``:
papermill already ran the chapters) into a temporary folder and replaces ``_build/html`` only when the
build passed and the pages load no remote asset (:func:`~dnalm_utils.offline_assets.remote_assets`), so a
failed build keeps the previous book. :func:`toc_files` and :func:`missing_toc_files` read ``_toc.yml``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from .book_layout import GENERATED_DIR, REPO_ROOT
from .io import atomic_path, atomic_write_text
from .offline_assets import remote_assets


class BookBuildError(RuntimeError):
    """``jupyter-book build`` failed (Sphinx warnings are errors); the previous ``_build/html`` is kept."""


_WARNING_RE = re.compile(r"(WARNING|ERROR|CRITICAL|SEVERE)[:\]]|^Traceback|Exception occurred|Error:", re.I)


def toc_files(root: str | os.PathLike) -> list[str]:
    """Every ``file:`` / ``root:`` entry of ``<root>/_toc.yml`` (without suffix), in order."""
    toc = yaml.safe_load((Path(root) / "_toc.yml").read_text(encoding="utf-8")) or {}
    out: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            for key in ("root", "file"):
                if isinstance(node.get(key), str):
                    out.append(node[key])
            for value in node.values():
                if isinstance(value, (list, dict)):
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc)
    return out


def missing_toc_files(root: str | os.PathLike) -> list[str]:
    """TOC entries with no ``.md``/``.ipynb``/``.rst`` file under ``root``."""
    root = Path(root)
    missing = []
    for entry in toc_files(root):
        p = root / entry
        if p.suffix in (".md", ".ipynb", ".rst") and p.is_file():
            continue
        if not any(p.with_name(p.name + suf).is_file() for suf in (".md", ".ipynb", ".rst")):
            missing.append(entry)
    return missing


def _jupyter_book_cmd() -> list[str]:
    """``jupyter-book`` run by this environment's Python (the console script may be absent or another one's)."""
    return [sys.executable, "-c", "import sys; from jupyter_book.cli.main import main; sys.exit(main())"]


def build_book(
    root: str | os.PathLike = REPO_ROOT,
    *,
    builder: str = "html",
    allow_remote: bool = False,
    timeout: float | None = 1800,
) -> Path:
    """Build the book in ``root`` with ``jupyter-book build -W -n --keep-going``; return ``_build/<builder>``.

    The build runs in a fresh temporary folder (a full build, so every warning is reported), and
    ``<root>/_build/<builder>`` is replaced atomically only when it passed. On failure raises
    :class:`BookBuildError` with the Sphinx warnings; the previous book is kept and the full log is
    written to ``<root>/_build/build.log``. TOC entries without a file are reported before Sphinx
    runs. For HTML, pages that load a remote script, stylesheet or font (:func:`remote_assets`) also
    fail the build unless ``allow_remote``.
    """
    root = Path(root).resolve()
    for name in ("_config.yml", "_toc.yml"):
        if not (root / name).is_file():
            raise BookBuildError(f"{root} is not a book: {name} is missing.")
    missing = missing_toc_files(root)
    if missing:
        hints = []
        for m in missing:
            stem = Path(m).name
            if Path(m).parent.as_posix().endswith(GENERATED_DIR.as_posix()) and re.match(r"\d+_", stem):
                hints.append(f"{m} (not executed yet: run `dnalm-book run {stem.split('_')[0]}`)")
            else:
                hints.append(m)
        raise BookBuildError(
            f"_toc.yml in {root} lists page(s) that do not exist: {', '.join(hints)}. "
            "The previous book was kept."
        )
    build_dir = root / "_build"
    final = build_dir / builder
    log_path = build_dir / "build.log"
    with atomic_path(final) as target:
        work = target.parent  # a fresh temporary folder inside _build (excluded from the sources)
        cmd = _jupyter_book_cmd() + [
            "build", str(root), "--path-output", str(work), "--builder", builder,
            "-W", "-n", "--keep-going",
        ]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        try:
            proc = subprocess.run(cmd, cwd=str(root), capture_output=True, text=True, env=env, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise BookBuildError(f"jupyter-book build did not finish within {timeout} s; the previous book was kept.") from None
        log = f"$ {' '.join(cmd)}\n--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
        atomic_write_text(log_path, log)
        out_dir = work / "_build" / builder
        if proc.returncode != 0 or not out_dir.is_dir():
            warnings = _extract_warnings(proc.stdout + "\n" + proc.stderr, root=root, work=work)
            raise BookBuildError(
                f"jupyter-book build failed (exit {proc.returncode}); the previous book was kept.\n"
                + ("\n".join(warnings) if warnings else (proc.stdout + proc.stderr)[-3000:])
                + f"\nFull log: {log_path}"
            )
        if builder == "html" and not allow_remote:
            remote = remote_assets(out_dir)
            if remote:
                raise BookBuildError(
                    "the built pages load remote assets, which fail offline; the previous book was kept:\n  "
                    + "\n  ".join(remote[:30])
                )
        os.replace(out_dir, target)
    return final


def _extract_warnings(text: str, *, root: Path, work: Path, limit: int = 40) -> list[str]:
    """The distinct warning/error lines of a build log, temporary and root paths shortened, at most ``limit``."""
    lines = []
    for line in text.splitlines():
        if _WARNING_RE.search(line) and "build succeeded" not in line:
            line = line.replace(str(work), "<tmp>").replace(str(root) + os.sep, "")
            if line not in lines:
                lines.append(line)
    if len(lines) > limit:
        lines = lines[:limit] + [f"... and {len(lines) - limit} more"]
    return lines
