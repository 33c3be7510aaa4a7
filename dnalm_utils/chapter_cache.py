"""Executed chapters reused when nothing they read has changed (a warm rebuild of the book).

A chapter executed by ``dnalm-book run`` is stored under the package's one cache rule (``cache.make_key``, kind
``"executed-chapter"``) in ``<root>/artifacts/chapters``. Its key covers everything that determines the page
and its result files:

* the notebook template's bytes and every parameter value of the run;
* the code of every ``dnalm_utils`` module (docstrings excluded) and the versions of the libraries it calls;
* the bundled data (``data/``), every file a parameter (or an item of a list parameter) names -- a FASTA, a
  table -- and every model folder, or folder of model folders, one names outside ``artifacts/`` (a local model
  in ``models``, a ``models_dir``: by its ``dnalm_checksums.json``, else its files); a hub id is keyed by its
  name;
* the result files of the chapters before it in the profile (their ``output_dir``): chapter 8, say, is
  executed again whenever chapter 5's tables change;
* the device type (a GPU run is not reused on a CPU machine or the reverse).

The book's own zoo in ``artifacts/models`` is not hashed: chapter 2 writes it, and it is fully determined by
chapter 2's inputs, which are in its key, and summarised in chapter 2's result files, which are in every later
chapter's key.

An entry holds the executed notebook and the sha256 of every file under the chapter's ``output_dir``. It is
reused only when those files are all still there unchanged (the entry restores the executed notebook, not the
result files); a damaged, truncated or foreign entry is never used (``cache.read_entry``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

from .errors import ParameterError
from .io import sha256_file
from .run_parameters import plain_value

#: Cache kind of executed chapters (``cache.DEPENDS_ON``).
KIND = "executed-chapter"
#: Folder of the entries, relative to a book root.
CACHE_DIR = Path("artifacts") / "chapters"


def folder_digest(folder: str | os.PathLike) -> dict[str, str]:
    """``{relative POSIX path: sha256}`` of every file under ``folder`` (empty when it does not exist)."""
    folder = Path(folder)
    if not folder.is_dir():
        return {}
    return {f.relative_to(folder).as_posix(): sha256_file(f) for f in sorted(folder.rglob("*")) if f.is_file()}


def _models_digest(folder: Path) -> dict[str, str]:
    """Per model folder under ``folder`` (or ``folder`` itself if it is one): its checksums file's sha256, else
    the digest of its files."""
    from .io import sha256_bytes
    from .models import CHECKSUMS

    out = {}
    candidates = [folder] + sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    for sub in candidates:
        checks = sub / CHECKSUMS
        if checks.is_file():
            out[sub.name] = sha256_file(checks)
        elif sub != folder and (sub / "config.json").is_file():
            out[sub.name] = sha256_bytes(json.dumps(folder_digest(sub), sort_keys=True).encode("utf-8"))
    return out


def _strings(params: Mapping[str, Any]):
    """(label, text) for every non-empty string parameter and every non-empty string inside a list parameter
    (label ``name[i]``): the values that may name a file or a model folder."""
    for name, value in params.items():
        items = [(name, value)] if isinstance(value, str) else (
            [(f"{name}[{i}]", v) for i, v in enumerate(value)] if isinstance(value, (list, tuple)) else [])
        for label, text in items:
            if isinstance(text, str) and text.strip() and "\n" not in text:
                yield label, text


def chapter_key(notebook: str | os.PathLike, parameters: Mapping[str, Any], *, root: str | os.PathLike,
                upstream_outputs: Iterable[str | os.PathLike] = (), device: str | None = None):
    """The ``cache.CacheKey`` of executing ``notebook`` with ``parameters`` (every parameter, defaults included)
    in the book ``root``; ``upstream_outputs``: the ``output_dir`` of the chapters run before it; ``device``:
    "cuda" or "cpu" (default: what torch finds)."""
    from .cache import make_key
    from .data import DATA_DIR

    root = Path(root)
    params = {str(k): plain_value(v) for k, v in parameters.items()}
    files, model_dirs = {}, {}
    artifacts = (root / "artifacts").resolve()
    for label, text in _strings(params):
        path = Path(text) if Path(text).is_absolute() else root / text
        try:
            is_file, is_dir = path.is_file(), path.is_dir()
        except OSError:  # a name too long or otherwise not a path
            continue
        if is_file:
            files[label] = sha256_file(path)
        elif is_dir and not path.resolve().is_relative_to(artifacts):
            found = _models_digest(path)  # model folders only: result folders (output_dir, runs_dir) are not inputs
            if found:
                model_dirs[label] = found
    upstream = {}
    for out in upstream_outputs:
        path = Path(out) if Path(out).is_absolute() else root / out
        upstream[Path(out).as_posix()] = folder_digest(path)
    if device is None:
        from .grid_executors import visible_gpus

        device = "cuda" if visible_gpus() else "cpu"
    inputs = {"notebook": Path(notebook).name, "notebook_sha256": sha256_file(Path(notebook)), "parameters": params,
              "data": folder_digest(DATA_DIR), "files": files, "models": model_dirs, "upstream": upstream,
              "device": device}
    return make_key(KIND, inputs)


def entry_path(root: str | os.PathLike, key) -> Path:
    """Where ``key``'s entry lives under the book ``root``."""
    from .cache import entry_path as _entry

    return _entry(Path(root) / CACHE_DIR, key, ".json.entry")


def store(root: str | os.PathLike, key, executed: str | os.PathLike, output_dir: str | os.PathLike | None, *,
          seconds: float | None = None) -> Path:
    """Record the executed notebook ``executed``, the digests of the files under ``output_dir`` (None: the
    chapter writes no result folder) and how long it ran (``seconds``) under ``key``; returns the entry's path."""
    import datetime as dt

    from .cache import write_entry

    out = {} if output_dir is None else folder_digest(_under(root, output_dir))
    body = {"notebook": Path(executed).read_text(encoding="utf-8"), "outputs": out, "executed_s": seconds,
            "executed_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    return write_entry(entry_path(root, key), key, json.dumps(body).encode("utf-8"))


def restore(root: str | os.PathLike, key, executed: str | os.PathLike,
            output_dir: str | os.PathLike | None) -> dict | None:
    """``{"executed_s", "executed_at"}`` of the stored execution after writing its executed notebook to
    ``executed`` (atomically), when ``key`` has an intact entry and every result file it recorded is still under
    ``output_dir`` unchanged; otherwise None and nothing is written."""
    from .cache import read_entry
    from .io import atomic_write_bytes

    body = read_entry(entry_path(root, key), key)
    if body is None:
        return None
    try:
        stored = json.loads(body.decode("utf-8"))
        notebook, outputs = stored["notebook"], stored["outputs"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return None
    if not isinstance(notebook, str) or not isinstance(outputs, dict):
        return None
    if outputs:
        if output_dir is None:
            return None
        folder = _under(root, output_dir)
        for rel, digest in outputs.items():
            f = folder / rel
            if not f.is_file() or sha256_file(f) != digest:
                return None
    atomic_write_bytes(executed, notebook.encode("utf-8"))
    return {"executed_s": stored.get("executed_s"), "executed_at": stored.get("executed_at")}


def _under(root, path) -> Path:
    path = Path(path)
    if not str(path).strip():
        raise ParameterError("output_dir is empty; a chapter's results need a folder.")
    return path if path.is_absolute() else Path(root) / path


__all__ = ["KIND", "CACHE_DIR", "folder_digest", "chapter_key", "entry_path", "store", "restore"]
