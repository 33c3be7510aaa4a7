"""The package's one cache rule: how every cached artifact is keyed, written, read and rejected.

Six kinds of artifact are cached (:data:`DEPENDS_ON` names them): a pre-trained model
(``pretraining.train``), a fine-tuning run's result row (``finetune_runs.run_grid``), a 2-D embedding map
(``embeddings.umap_coordinates``), a model's pooled hidden states for the frozen probes
(``frozen_probes.pooled_features``), an executed chapter (``chapter_cache``) and the value of one analysis
function called by a chapter (``result_cache.Memo``). Each is reused only under one rule:

**Key.** ``sha256`` of the JSON of a :class:`CacheKey` manifest (sorted keys) holding

* ``kind`` and ``format`` (:data:`FORMATS`; bumped when an entry's layout changes);
* ``inputs``: what the caller computes from -- parameters, data checksums, the model's content digest,
  seed, device type;
* ``versions``: the Python version and the installed versions of the libraries that shape the result
  (:data:`LIBRARIES`);
* ``code_sha256``: :func:`code_digest` of exactly the package modules the artifact depends on
  (:data:`DEPENDS_ON`; for an analysis result, the called function's module and every package module it imports,
  :func:`import_closure`, listed in the manifest as ``modules``), computed from their syntax trees with every docstring removed, so docstrings,
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
from typing import Mapping, Sequence

from .errors import ParameterError

#: The package folder whose modules :func:`code_digest` reads by default.
PACKAGE_ROOT = Path(__file__).resolve().parent

#: Layout version of each kind's entries; bump it when an entry's body or manifest changes shape.
FORMATS: dict[str, int] = {"pretrained-model": 3, "finetune-run": 2, "embedding-map": 2, "frozen-features": 1,
                           "executed-chapter": 1, "analysis-result": 1}

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
    # named per call (make_key(modules=...)): the module of the function whose value is cached and every
    # package module it imports, directly or not (import_closure)
    "analysis-result": (),
}

#: Kinds whose modules are named per call, by ``make_key(kind, inputs, modules=...)``.
PER_CALL_MODULES = frozenset({"analysis-result"})

#: Installed distributions whose versions shape each kind of artifact.
LIBRARIES: dict[str, tuple[str, ...]] = {
    "pretrained-model": ("torch", "transformers", "tokenizers", "numpy"),
    "finetune-run": ("torch", "transformers", "accelerate", "tokenizers", "numpy", "scikit-learn"),
    "embedding-map": ("numpy", "scikit-learn", "umap-learn", "numba"),
    "frozen-features": ("torch", "transformers", "tokenizers", "numpy"),
    "executed-chapter": ("torch", "transformers", "tokenizers", "accelerate", "numpy", "scipy", "pandas",
                         "scikit-learn", "umap-learn", "numba", "matplotlib", "seaborn", "papermill", "myst-nb",
                         "pyfaidx"),
    "analysis-result": ("torch", "transformers", "tokenizers", "accelerate", "numpy", "scipy", "pandas",
                        "scikit-learn", "umap-learn", "numba", "pyfaidx"),
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


def _module_path(root: Path, name: str) -> Path:
    """The file of module ``name`` ("ngram", "families.bert", "families.__init__") under ``root``."""
    return root.joinpath(*name.split(".")).with_suffix(".py")


def module_files(kind: str, root: str | os.PathLike | None = None, *,
                 modules: Sequence[str] | None = None) -> dict[str, Path | None]:
    """``{module name: its .py file, or None when absent}`` for the modules ``kind`` depends on (or ``modules``,
    for a kind in :data:`PER_CALL_MODULES`), under the package folder ``root`` (default :data:`PACKAGE_ROOT`); a
    sub-package expands to all its modules, sorted; a dotted name ("families.bert") is one module of one."""
    root = Path(root) if root is not None else PACKAGE_ROOT
    out: dict[str, Path | None] = {}
    names = DEPENDS_ON[check_kind(kind)] if modules is None else tuple(modules)
    if "*" in names:
        names = sorted({f.stem for f in root.glob("*.py")} | {d.name for d in root.iterdir()
                                                              if d.is_dir() and (d / "__init__.py").is_file()})
    for name in names:
        package = root / name
        if package.is_dir():
            for f in sorted(package.glob("*.py")):
                out[f"{name}.{f.stem}"] = f
        else:
            f = _module_path(root, name)
            out[name] = f if f.is_file() else None
    return out


def _imported(root: Path, name: str, tree: ast.AST) -> set[str]:
    """Package modules that the module ``name`` imports anywhere in its body (functions included), as names for
    :func:`module_files`: a module, a dotted module of a sub-package, or a whole sub-package."""
    parts = name.split(".")
    here = parts[:-1]  # the package holding module ``name`` (relative to root)
    found = set()

    def add(path_parts: list[str], names=()) -> None:
        base = root.joinpath(*path_parts) if path_parts else root
        if path_parts and base.is_dir() and (base / "__init__.py").is_file():
            found.add(".".join(path_parts))  # a sub-package: all its modules
            return
        if path_parts and base.with_suffix(".py").is_file():
            found.add(".".join(path_parts))
            return
        for alias in names:  # ``from . import a, b``: a and b are modules or sub-packages
            add(path_parts + [alias])

    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = node.module.split(".") if node.module else []
            if node.level:  # relative: from the package holding this module, one level up per extra dot
                if node.level - 1 > len(here):
                    continue
                target = here[:len(here) - (node.level - 1)] + module
            elif module[:1] == [PACKAGE_ROOT.name]:  # absolute: dnalm_utils[.x] -> [x]
                target = module[1:]
            else:
                continue
            add(target, [a.name for a in node.names])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(PACKAGE_ROOT.name + "."):
                    add(alias.name.split(".")[1:])
    return found


@functools.lru_cache(maxsize=1024)
def _file_imports(root: str, name: str, path: str, mtime_ns: int, size: int) -> tuple[str, ...]:
    """:func:`_imported` of one file, parsed once per process while the file is unchanged."""
    tree = ast.parse(Path(path).read_text(encoding="utf-8"), filename=path)
    return tuple(sorted(_imported(Path(root), name, tree)))


def import_closure(modules: Sequence[str], root: str | os.PathLike | None = None) -> tuple[str, ...]:
    """Sorted names of ``modules`` and every package module they import, directly or through others, read from
    their syntax trees (imports inside functions count) under ``root`` (default :data:`PACKAGE_ROOT`). A
    sub-package is named once and stands for all its modules, whose imports are followed too."""
    return _import_closure(tuple(sorted(modules)), str(Path(root).resolve() if root is not None else PACKAGE_ROOT))


@functools.lru_cache(maxsize=256)
def _import_closure(modules: tuple[str, ...], root: str) -> tuple[str, ...]:
    root = Path(root)
    seen: set[str] = set()
    todo = list(modules)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        package = root.joinpath(*name.split("."))
        files = ([(f"{name}.{f.stem}", f) for f in sorted(package.glob("*.py"))] if package.is_dir()
                 else [(name, _module_path(root, name))])
        for module, f in files:
            if not f.is_file():
                continue
            stat = f.stat()
            todo.extend(set(_file_imports(str(root), module, str(f), stat.st_mtime_ns, stat.st_size)) - seen)
    # a module of a sub-package that is listed whole is already covered
    whole = {n for n in seen if root.joinpath(*n.split(".")).is_dir()}
    return tuple(sorted(n for n in seen if not any(n.startswith(w + ".") for w in whole)))


@functools.lru_cache(maxsize=256)
def _code_digest(kind: str, root: str, modules: tuple[str, ...] | None = None) -> str:
    from .io import sha256_bytes

    lines = []
    for name, f in module_files(kind, root, modules=modules).items():
        lines.append(f"{name}:{source_digest(f.read_text(encoding='utf-8'), filename=str(f)) if f else 'absent'}\n")
    return sha256_bytes("".join(lines).encode("utf-8"))


def code_digest(kind: str, root: str | os.PathLike | None = None, *, modules: Sequence[str] | None = None) -> str:
    """sha256 over the :func:`source_digest` of every module ``kind`` depends on (:data:`DEPENDS_ON`, or
    ``modules`` for a kind in :data:`PER_CALL_MODULES`) in the package folder ``root`` (default: this package);
    computed once per process, folder and module list."""
    return _code_digest(check_kind(kind), str(Path(root).resolve() if root is not None else PACKAGE_ROOT),
                        tuple(modules) if modules is not None else None)


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


def make_key(kind: str, inputs: Mapping, *, root: str | os.PathLike | None = None,
             modules: Sequence[str] | None = None) -> CacheKey:
    """The :class:`CacheKey` of a ``kind`` artifact computed from ``inputs`` (a JSON-able mapping: parameters,
    data checksums, model digest, seed, device type, ...), with the library versions and the code digest of
    the package folder ``root`` (default: this package). A kind in :data:`PER_CALL_MODULES` takes the modules
    it depends on as ``modules`` (recorded in the manifest); the others take them from :data:`DEPENDS_ON`."""
    from .io import sha256_bytes

    check_kind(kind)
    if (kind in PER_CALL_MODULES) != (modules is not None):
        raise ParameterError(f"cache kind {kind!r} " + ("names its modules per call: pass modules=[...]"
                                                         if kind in PER_CALL_MODULES else
                                                         "takes its modules from cache.DEPENDS_ON; do not pass modules"))
    manifest = {"kind": kind, "format": FORMATS[kind], "inputs": dict(inputs), "versions": library_versions(kind),
                "code_sha256": code_digest(kind, root, modules=modules)}
    if modules is not None:
        manifest["modules"] = sorted(modules)
    manifest = _plain(manifest)
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
    "PACKAGE_ROOT", "FORMATS", "DEPENDS_ON", "PER_CALL_MODULES", "LIBRARIES", "check_kind", "source_digest",
    "module_files", "import_closure", "code_digest",
    "library_versions", "CacheKey", "make_key", "entry_path", "write_entry", "read_entry", "read_folder_entry",
]
