"""The package's one cache rule: how every cached artifact is keyed, written, read and rejected.

Four kinds of artifact are cached (:data:`DEPENDS_ON` names them): a pre-trained model
(``pretraining.train``), a fine-tuning run's result row (``finetune_runs.run_grid``), a 2-D embedding map
(``embeddings.umap_coordinates``) and a model's pooled hidden states for the frozen probes
(``frozen_probes.pooled_features``). Each is reused only under one rule:

**Key.** ``sha256`` of the JSON of a :class:`CacheKey` manifest (sorted keys) holding

* ``kind`` and ``format`` (:data:`FORMATS`; bumped when an entry's layout changes);
* ``inputs``: what the caller computes from -- parameters, data checksums, the model's content digest,
  seed, device type;
* ``versions``: the Python version and the installed versions of the libraries that shape the result
  (:data:`LIBRARIES`);
* ``code_sha256``: :func:`code_digest` of exactly the package modules the artifact depends on
  (:data:`DEPENDS_ON`), computed from their syntax trees with every docstring removed, so docstrings,
  comments and formatting never count and a change to what the code does always does. Figure code lives in
  ``plotting.py``, which no artifact depends on.

**Entry.** A file entry (:func:`write_entry`) is written atomically: first line ``# `` + the JSON header
(the manifest, its key and ``body_sha256``), then the body. A folder entry (a model) is written atomically
by ``models.save_model`` with the manifest in one of its JSON files and ``dnalm_checksums.json`` as its body
checksum. :func:`read_entry` / :func:`read_folder_entry` return an entry only if its manifest equals the
expected one and its body matches its checksum; anything else -- absent, unreadable, truncated, altered,
keyed for other inputs -- is ``None`` and the caller recomputes (and overwrites) it.

See docs/caching.md.
"""

from __future__ import annotations

import ast
import functools
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from .errors import ParameterError

#: The package folder whose modules :func:`code_digest` reads by default.
PACKAGE_ROOT = Path(__file__).resolve().parent

#: Layout version of each kind's entries; bump it when an entry's body or manifest changes shape.
FORMATS: dict[str, int] = {"pretrained-model": 3, "finetune-run": 2, "embedding-map": 2, "frozen-features": 1,
                           "executed-chapter": 1}

#: The package modules (``dnalm_utils.<name>``; a name that is a sub-package means every module in it; ``"*"``
#: every module of the package) whose code determines each kind of artifact. A module listed here but absent
#: counts as absent in the digest.
DEPENDS_ON: dict[str, tuple[str, ...]] = {
    # the training loop and its masking, the corpus and the windows sampled from it, the tokenizers (BPE is
    # trained here), the codec under both, and the folder writer
    "pretrained-model": ("pretraining", "corpus", "genome", "tokenization", "codec", "models"),
    # the training loop, how a run is scored and turned into a row, the model interface that builds the
    # classifier (models, adapters, the families) and the tokenizers that feed it
    "finetune-run": ("finetuning", "training_loop", "finetune_runs", "classification_metrics", "tokenization",
                     "codec", "models", "adapters", "families"),
    # the projection (UMAP / PCA) of given vectors
    "embedding-map": ("embeddings",),
    # pooled hidden states per layer: the pooling and batching (frozen_probes), the hidden-state plumbing it
    # shares (embeddings), the model interface and families that run the encoder, the loader, the tokenizers
    # and the codec under them
    "frozen-features": ("frozen_probes", "embeddings", "adapters", "families", "models", "tokenization", "codec"),
    # an executed chapter may call any module
    "executed-chapter": ("*",),
}

#: Installed distributions whose versions shape each kind of artifact.
LIBRARIES: dict[str, tuple[str, ...]] = {
    "pretrained-model": ("torch", "transformers", "tokenizers", "numpy"),
    "finetune-run": ("torch", "transformers", "accelerate", "tokenizers", "numpy", "scikit-learn"),
    "embedding-map": ("numpy", "scikit-learn", "umap-learn", "numba"),
    "frozen-features": ("torch", "transformers", "tokenizers", "numpy"),
    "executed-chapter": ("torch", "transformers", "tokenizers", "accelerate", "numpy", "scipy", "pandas",
                         "scikit-learn", "umap-learn", "numba", "matplotlib", "seaborn", "papermill", "myst-nb",
                         "pyfaidx"),
}


def check_kind(kind: str) -> str:
    """``kind`` if it is a cached artifact kind, else ParameterError naming the kinds."""
    if kind not in DEPENDS_ON:
        raise ParameterError(f"cache kind={kind!r} is unknown; use one of {', '.join(DEPENDS_ON)}.")
    return kind


# ------------------------------------------------------------------------------------------------
# Code digest
# ------------------------------------------------------------------------------------------------
def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:]
    return tree


def source_digest(source: str, *, filename: str = "<module>") -> str:
    """sha256 of a module's code: ``ast.dump`` of its parsed source with every module, class and function
    docstring removed (no line numbers), so docstrings, comments and formatting do not change it."""
    from .io import sha256_bytes

    try:
        tree = ast.parse(source, filename=filename)
    except SyntaxError as e:
        raise ParameterError(f"{filename} does not parse ({e.msg}, line {e.lineno}); fix it before caching.") from e
    return sha256_bytes(ast.dump(_strip_docstrings(tree), include_attributes=False).encode("utf-8"))


def module_files(kind: str, root: str | os.PathLike | None = None) -> dict[str, Path | None]:
    """``{module name: its .py file, or None when absent}`` for the modules ``kind`` depends on, under the
    package folder ``root`` (default :data:`PACKAGE_ROOT`); a sub-package expands to all its modules, sorted."""
    root = Path(root) if root is not None else PACKAGE_ROOT
    out: dict[str, Path | None] = {}
    names = DEPENDS_ON[check_kind(kind)]
    if "*" in names:
        names = sorted({f.stem for f in root.glob("*.py")} | {d.name for d in root.iterdir()
                                                              if d.is_dir() and (d / "__init__.py").is_file()})
    for name in names:
        package = root / name
        if package.is_dir():
            for f in sorted(package.glob("*.py")):
                out[f"{name}.{f.stem}"] = f
        else:
            f = root / f"{name}.py"
            out[name] = f if f.is_file() else None
    return out


@functools.lru_cache(maxsize=32)
def _code_digest(kind: str, root: str) -> str:
    from .io import sha256_bytes

    lines = []
    for name, f in module_files(kind, root).items():
        lines.append(f"{name}:{source_digest(f.read_text(encoding='utf-8'), filename=str(f)) if f else 'absent'}\n")
    return sha256_bytes("".join(lines).encode("utf-8"))


def code_digest(kind: str, root: str | os.PathLike | None = None) -> str:
    """sha256 over the :func:`source_digest` of every module ``kind`` depends on (:data:`DEPENDS_ON`) in the
    package folder ``root`` (default: this package); computed once per process and folder."""
    return _code_digest(check_kind(kind), str(Path(root).resolve() if root is not None else PACKAGE_ROOT))


@functools.lru_cache(maxsize=8)
def library_versions(kind: str) -> dict[str, str | None]:
    """``{"python": "3.x.y", distribution: installed version or None}`` for the libraries of ``kind``."""
    from importlib import metadata

    out = {"python": sys.version.split()[0]}
    for name in LIBRARIES[check_kind(kind)]:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


# ------------------------------------------------------------------------------------------------
# Key
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CacheKey:
    """One artifact's cache key: ``manifest`` spells out every input of the key (kind, format, inputs, library
    versions, code digest) as plain JSON; ``key`` is the sha256 of its sorted-key JSON (64 hex digits)."""

    manifest: dict
    key: str

    @property
    def kind(self) -> str:
        return self.manifest["kind"]

    def header(self) -> dict:
        """The manifest with its key, as stored in an entry."""
        return {**self.manifest, "key": self.key}


def _plain(obj):
    """``obj`` as plain JSON values (numpy scalars -> Python numbers, paths -> str, tuples -> lists)."""
    import numpy as np

    def default(x):
        if isinstance(x, np.generic):
            return x.item()
        if isinstance(x, os.PathLike):
            return os.fspath(x)
        raise ParameterError(f"cache key input of type {type(x).__name__} ({x!r}) is not JSON data; pass a "
                             "number, string, list or dict.")

    return json.loads(json.dumps(obj, sort_keys=True, default=default))


def make_key(kind: str, inputs: Mapping, *, root: str | os.PathLike | None = None) -> CacheKey:
    """The :class:`CacheKey` of a ``kind`` artifact computed from ``inputs`` (a JSON-able mapping: parameters,
    data checksums, model digest, seed, device type, ...), with the library versions and the code digest of
    the package folder ``root`` (default: this package)."""
    from .io import sha256_bytes

    manifest = _plain({"kind": check_kind(kind), "format": FORMATS[kind], "inputs": dict(inputs),
                       "versions": library_versions(kind), "code_sha256": code_digest(kind, root)})
    return CacheKey(manifest, sha256_bytes(json.dumps(manifest, sort_keys=True).encode("utf-8")))


# ------------------------------------------------------------------------------------------------
# Entries
# ------------------------------------------------------------------------------------------------
def entry_path(cache_dir: str | os.PathLike, key: CacheKey, suffix: str = ".entry") -> Path:
    """``<cache_dir>/<kind>-<key><suffix>``: where a keyed entry lives in a cache folder."""
    return Path(cache_dir) / f"{key.kind}-{key.key}{suffix}"


def write_entry(path: str | os.PathLike, key: CacheKey, body: bytes) -> Path:
    """Store ``body`` under ``key`` at ``path`` atomically: a ``# {header}`` line (the manifest, key and
    ``body_sha256``), then the body bytes. Returns the path."""
    from .io import atomic_write_bytes, sha256_bytes

    if not isinstance(body, (bytes, bytearray)):
        raise ParameterError(f"write_entry(body=...) takes bytes, got {type(body).__name__}; encode text first.")
    head = json.dumps({**key.header(), "body_sha256": sha256_bytes(bytes(body))}, sort_keys=True)
    return atomic_write_bytes(path, b"# " + head.encode("utf-8") + b"\n" + bytes(body))


def read_entry(path: str | os.PathLike, key: CacheKey) -> bytes | None:
    """The body stored at ``path`` if its header holds exactly ``key``'s manifest and key and the body matches
    its sha256; otherwise (absent, unreadable, truncated, altered, other inputs) None."""
    from .io import sha256_bytes

    try:
        raw = Path(path).read_bytes()
        head, sep, body = raw.partition(b"\n")
        if not sep or not head.startswith(b"# "):
            return None
        meta = json.loads(head[2:].decode("utf-8"))
        if not isinstance(meta, dict) or meta.pop("body_sha256", None) != sha256_bytes(body):
            return None
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return body if meta == key.header() else None


def read_folder_entry(folder: str | os.PathLike, manifest_name: str, key: CacheKey) -> Path | None:
    """``folder`` if it is a complete entry for ``key``: its JSON file ``manifest_name`` holds ``key``'s header
    under ``"cache"`` and every file matches the folder's checksums (``models.verify_model_folder``, written
    by ``models.save_model``); otherwise None."""
    from .models import CHECKSUMS, verify_model_folder

    folder = Path(folder)
    if not (folder / CHECKSUMS).is_file():
        return None
    try:
        meta = json.loads((folder / manifest_name).read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(meta, dict) or meta.get("cache") != key.header():
        return None
    return None if verify_model_folder(folder) else folder


__all__ = [
    "PACKAGE_ROOT", "FORMATS", "DEPENDS_ON", "LIBRARIES", "check_kind", "source_digest", "module_files", "code_digest",
    "library_versions", "CacheKey", "make_key", "entry_path", "write_entry", "read_entry", "read_folder_entry",
]
