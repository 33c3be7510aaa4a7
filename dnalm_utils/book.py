"""Run the book: execute parameterised notebooks with papermill, then build the HTML with Jupyter Book 1.

The flow follows cal-itp's papermill -> jupyter-book pattern:

1. A *profile* (``params/<name>.yml``) lists the notebooks to run and the parameters to inject::

       description: ...
       notebooks:
         - notebook: notebooks/01_tokenization.ipynb
           parameters: {k: 6, n_windows: 2000}
         - notebook: notebooks/02_pretraining.ipynb      # no parameters: notebook defaults

2. :func:`run_notebook` checks the parameters against the notebook's ``parameters`` cell (papermill
   itself only warns about unknown names), executes the template into a temporary file, adds a
   "Parameters of this run" table after the injected cell, and renames the result onto
   ``book/_generated/NN_name.ipynb``. A failing notebook raises :class:`NotebookExecutionError` and
   leaves the previous output in place.
3. :func:`build_book` runs ``jupyter-book build -W -n --keep-going`` (execution is off in
   ``_config.yml``) into a temporary folder and replaces ``_build/html`` only when the build passed,
   so a failed build keeps the previous book.

:func:`run_profile` chains the three steps and records ``book/_generated/run_manifest.json``.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import datetime as _dt
import difflib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import yaml

from .errors import DnalmInputError, ParameterError
from .io import atomic_path, atomic_write_json, atomic_write_text, package_versions

REPO_ROOT = Path(__file__).resolve().parents[1]
PARAMS_DIR = "params"
GENERATED_DIR = Path("book") / "_generated"
MANIFEST_NAME = "run_manifest.json"
TABLE_TAG = "parameters-table"
#: Tag added to the ``parameters`` and ``injected-parameters`` cells so the page shows the table instead.
HIDE_TAG = "remove-input"
#: Chapters planned in the book; a profile may list them before their notebook exists.
KNOWN_CHAPTERS = (
    "01_tokenization",
    "02_pretraining",
    "03_masked_prediction",
    "04_embeddings",
    "05_next_kmer",
    "06_biology_finetuning",
    "07_conclusions",
)
_VERSION_PACKAGES = (
    "dnalm-utils", "torch", "transformers", "tokenizers", "numpy", "papermill", "jupyter-book", "myst-nb",
)


class NotebookExecutionError(RuntimeError):
    """A notebook raised while papermill executed it; the message names the notebook and the cell."""

    def __init__(self, message: str, *, notebook: str = "", cell: int | None = None,
                 ename: str = "", evalue: str = "", failed_copy: str | None = None):
        super().__init__(message)
        self.notebook = notebook
        self.cell = cell
        self.ename = ename
        self.evalue = evalue
        self.failed_copy = failed_copy


class BookBuildError(RuntimeError):
    """``jupyter-book build`` failed (Sphinx warnings are errors); the previous ``_build/html`` is kept."""


class KernelNotFoundError(DnalmInputError):
    """The Jupyter kernel papermill needs is not registered in this environment."""


@dataclasses.dataclass(frozen=True)
class CliValue:
    """A parameter value typed on the command line, parsed only once the target parameter is known.

    For a ``str`` parameter the raw text is used as is (so ``-p label yes`` gives ``"yes"``, not
    ``True``); for any other parameter the text is parsed with ``yaml.safe_load`` (numbers, lists,
    booleans, ``null``).
    """

    raw: str

    def resolve(self, type_name: str | None):
        if type_name == "str":
            return self.raw
        return yaml.safe_load(self.raw) if self.raw.strip() else self.raw


# --------------------------------------------------------------------------------------------------
# Profiles
# --------------------------------------------------------------------------------------------------

def available_profiles(root: str | os.PathLike = REPO_ROOT) -> list[str]:
    """Names of the profiles under ``<root>/params``."""
    folder = Path(root) / PARAMS_DIR
    return sorted(p.stem for p in folder.glob("*.yml")) + sorted(p.stem for p in folder.glob("*.yaml"))


def load_profile(name_or_path: str | os.PathLike, *, root: str | os.PathLike = REPO_ROOT) -> dict:
    """Read a run profile: a name (``default`` -> ``params/default.yml``) or a path to a YAML file.

    Returns ``{"name", "path", "description", "notebooks": [{"notebook": str, "parameters": dict}]}``
    with notebook paths as written in the file (relative to ``root``). Raises :class:`ParameterError`
    for an unknown name (listing the available profiles) or a malformed file.
    """
    root = Path(root)
    text = str(name_or_path)
    is_path = isinstance(name_or_path, os.PathLike) or text.endswith((".yml", ".yaml")) or "/" in text
    path = Path(text) if is_path else root / PARAMS_DIR / f"{text}.yml"
    if is_path and not path.is_absolute() and not path.exists():
        path = root / path
    if not path.is_file():
        names = available_profiles(root)
        hint = f" Did you mean {difflib.get_close_matches(text, names, n=1)[0]!r}?" if (
            difflib.get_close_matches(text, names, n=1)) else ""
        raise ParameterError(
            f"unknown profile {text!r}: no file {path}.{hint} Available profiles: "
            f"{', '.join(names) or '(none)'} (files in {root / PARAMS_DIR}); "
            "pass one with --profile NAME or a path to a .yml file."
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ParameterError(f"profile {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("notebooks"), list) or not data["notebooks"]:
        raise ParameterError(
            f"profile {path} must be a mapping with a non-empty 'notebooks:' list of "
            "{notebook: notebooks/NN_name.ipynb, parameters: {...}} entries."
        )
    unknown_keys = set(data) - {"description", "notebooks"}
    if unknown_keys:
        raise ParameterError(
            f"profile {path} has unknown top-level key(s) {sorted(unknown_keys)}; allowed: description, notebooks."
        )
    entries = []
    for i, entry in enumerate(data["notebooks"], 1):
        if isinstance(entry, str):
            entry = {"notebook": entry}
        if not isinstance(entry, dict) or not isinstance(entry.get("notebook"), str):
            raise ParameterError(
                f"profile {path}, notebooks entry {i}: expected {{notebook: <path>, parameters: {{...}}}}, got {entry!r}."
            )
        extra = set(entry) - {"notebook", "parameters"}
        if extra:
            raise ParameterError(
                f"profile {path}, entry {entry['notebook']}: unknown key(s) {sorted(extra)}; "
                "allowed: notebook, parameters."
            )
        params = entry.get("parameters") or {}
        if not isinstance(params, dict):
            raise ParameterError(
                f"profile {path}, entry {entry['notebook']}: 'parameters' must be a mapping, got {params!r}."
            )
        entries.append({"notebook": entry["notebook"], "parameters": dict(params)})
    stems = [Path(e["notebook"]).stem for e in entries]
    dupes = sorted({s for s in stems if stems.count(s) > 1})
    if dupes:
        raise ParameterError(f"profile {path} lists notebook(s) {dupes} more than once.")
    return {
        "name": path.stem,
        "path": str(path),
        "description": str(data.get("description") or "").strip(),
        "notebooks": entries,
    }


# --------------------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------------------

_SIMPLE_TYPES = {"int", "float", "str", "bool", "list", "dict", "tuple", "NoneType"}


def _type_of_default(default: str) -> tuple[str | None, Any, bool]:
    """(type name, value, is_literal) for the source text of a default value."""
    try:
        value = ast.literal_eval(default)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None, default, False
    return type(value).__name__, value, True


def _normalise_annotation(annotation: str) -> tuple[str | None, bool]:
    """Base type name of an annotation such as ``int``, ``Optional[int]``, ``List[str]``; and nullability."""
    ann = annotation.replace(" ", "")
    optional = False
    m = re.fullmatch(r"(?:typing\.)?Optional\[(.+)\]", ann)
    if m:
        ann, optional = m.group(1), True
    base = ann.split("[", 1)[0].lower()
    base = {"list": "list", "dict": "dict", "tuple": "tuple", "none": "NoneType"}.get(base, base)
    return (base if base in _SIMPLE_TYPES else None), optional


def resolve_notebook(notebook: str | os.PathLike, *, root: str | os.PathLike = REPO_ROOT) -> Path:
    """Resolve a notebook path, or a chapter number such as ``01``, to an existing ``.ipynb`` file."""
    root = Path(root)
    text = str(notebook)
    candidates = [Path(text)] if Path(text).is_absolute() else [Path(text), root / text]
    for cand in candidates:
        if cand.is_file():
            return cand.resolve()
    if re.fullmatch(r"\d+", text):
        hits = sorted((root / "notebooks").glob(f"{text}_*.ipynb"))
        if len(hits) == 1:
            return hits[0].resolve()
    known = sorted(str(p.relative_to(root)) for p in (root / "notebooks").glob("*.ipynb"))
    raise ParameterError(
        f"notebook {text!r} not found (looked in {root}). Available notebooks: "
        f"{', '.join(known) or '(none)'}; give a path or a chapter number such as 01."
    )


class _QuietPapermill(logging.Filter):
    """Drop papermill's warnings that :func:`validate_parameters` supersedes (it checks names itself)."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return not msg.startswith(("Passed unknown parameter", "Unable to parse line"))


@contextlib.contextmanager
def _quiet_papermill():
    import papermill  # noqa: F401  (creates its loggers)

    names = ["papermill"] + [n for n in logging.root.manager.loggerDict if n.startswith("papermill.")]
    loggers = [logging.getLogger(n) for n in names]  # filters do not apply to records from child loggers
    filt = _QuietPapermill()
    for logger in loggers:
        logger.addFilter(filt)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(filt)


def _parameters_cell_source(path: Path) -> str | None:
    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            return cell.source
    return None


def _ast_parameters(source: str) -> dict[str, dict] | None:
    """Assignments of a parameters cell parsed with ``ast``: ``{name: {default, annotation, help}}``.

    papermill's line-based parser skips a line holding a second ``=`` (for example in its comment);
    ``ast`` does not. Returns None when the cell is not plain Python (e.g. holds IPython magics).
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    lines = source.splitlines()
    out: dict[str, dict] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name, value, ann = node.targets[0].id, node.value, None
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            name, value, ann = node.target.id, node.value, node.annotation
        else:
            continue
        tail = lines[node.end_lineno - 1][node.end_col_offset:]
        m = re.match(r"\s*#\s*(?:type:\s*\S+\s*)?(.*)$", tail)
        entry = out.pop(name, None)  # a later assignment wins, as when the cell runs
        out[name] = {
            "default": ast.get_source_segment(source, value) or "",
            "annotation": ast.get_source_segment(source, ann) if ann is not None else None,
            "help": (m.group(1).strip() if m else "") or (entry or {}).get("help", ""),
        }
    return out


def notebook_parameters(path: str | os.PathLike) -> dict[str, dict]:
    """The parameters declared in a notebook's ``parameters`` cell, in cell order.

    Uses ``papermill.inspect_notebook``, completed by an ``ast`` parse of the same cell (papermill's
    parser drops lines with a second ``=``, e.g. ``fasta = ""  # "" = bundled``). Returns
    ``{name: {"name", "type", "default", "default_source", "literal", "help", "optional"}}``.
    ``type`` is the annotation when there is one, else the type of the default (``int``, ``float``,
    ``str``, ``bool``, ``list``, ``dict``), or ``None`` when the default is ``None`` or an expression
    (any value is then accepted). ``default`` is the Python value of a literal default, else its
    source text.
    """
    import papermill

    path = Path(path)
    if not path.is_file():
        raise ParameterError(f"notebook {path} not found.")
    with _quiet_papermill():
        raw = papermill.inspect_notebook(str(path))
    merged: dict[str, dict] = {
        name: {"default": p.get("default", ""),
               "annotation": None if p.get("inferred_type_name") in (None, "None") else p["inferred_type_name"],
               "help": p.get("help", "") or ""}
        for name, p in raw.items()
    }
    source = _parameters_cell_source(path)
    parsed = _ast_parameters(source) if source is not None else None
    if parsed is not None:
        merged = {name: dict(p, help=p["help"] or merged.get(name, {}).get("help", "")) for name, p in parsed.items()}
    out: dict[str, dict] = {}
    for name, p in merged.items():
        source_text = str(p["default"]).strip()
        inferred, value, literal = _type_of_default(source_text)
        optional = inferred == "NoneType"
        type_name = inferred
        if p["annotation"]:
            type_name, optional_ann = _normalise_annotation(p["annotation"])
            optional = optional or optional_ann
        if type_name == "NoneType":
            type_name = None  # default None: any value is fine
        out[name] = {
            "name": name,
            "type": type_name,
            "default": value,
            "default_source": source_text,
            "literal": literal,
            "help": p["help"],
            "optional": optional,
        }
    return out


def _format_spec(spec: Mapping[str, dict]) -> str:
    if not spec:
        return "  (the notebook has no cell tagged 'parameters')"
    lines = []
    for p in spec.values():
        t = p["type"] or "any"
        help_ = f"  # {p['help']}" if p["help"] else ""
        lines.append(f"  {p['name']}: {t} = {p['default_source']}{help_}")
    return "\n".join(lines)


def _kind_ok(value, type_name: str | None, optional: bool) -> bool:
    if value is None:
        return optional or type_name is None
    if type_name is None:
        return True
    if type_name == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if type_name == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if type_name == "str":
        return isinstance(value, str)
    if type_name == "bool":
        return isinstance(value, bool)
    if type_name in ("list", "tuple"):
        return isinstance(value, (list, tuple))
    if type_name == "dict":
        return isinstance(value, dict)
    return True


def validate_parameters(notebook: str | os.PathLike, params: Mapping[str, Any] | None, *,
                        spec: Mapping[str, dict] | None = None) -> dict:
    """Check ``params`` against the notebook's ``parameters`` cell; return the values to inject.

    An unknown name, or a value of the wrong kind (a str for an int parameter, a float for an int,
    ...), raises :class:`ParameterError` listing every valid parameter with its default, with a
    "did you mean" suggestion for misspelt names. :class:`CliValue` items are resolved against the
    parameter's type. ``int`` values for ``float`` parameters are converted to ``float``.
    """
    spec = notebook_parameters(notebook) if spec is None else spec
    params = dict(params or {})
    problems = []
    resolved = {}
    for name, value in params.items():
        if name not in spec:
            close = difflib.get_close_matches(name, list(spec), n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"unknown parameter {name!r}{hint}")
            continue
        p = spec[name]
        if isinstance(value, CliValue):
            value = value.resolve(p["type"])
        if not _kind_ok(value, p["type"], p["optional"]):
            problems.append(
                f"parameter {name!r} expects {p['type']} (default {p['default_source']}), "
                f"got {type(value).__name__} {value!r}"
            )
            continue
        if p["type"] == "float" and isinstance(value, int):
            value = float(value)
        resolved[name] = value
    if problems:
        nb = Path(notebook).name
        raise ParameterError(
            f"{nb}: " + "; ".join(problems) + f".\nValid parameters of {nb} (name: type = default):\n"
            + _format_spec(spec)
        )
    return resolved


# --------------------------------------------------------------------------------------------------
# Kernel
# --------------------------------------------------------------------------------------------------

_KERNEL_FIX = (
    "Register this environment's kernel with `make book`, or directly with "
    "`{py} -m ipykernel install --sys-prefix --name {name}`."
)


def check_kernel(name: str = "python3"):
    """Return the kernelspec ``name`` if it runs this environment's Python; else raise KernelNotFoundError.

    Papermill must execute notebooks in the project's virtualenv (it holds ``dnalm_utils`` and the
    pinned packages), i.e. the ``python3`` kernelspec registered with ``--sys-prefix``.
    """
    fix = _KERNEL_FIX.format(py=sys.executable, name=name)
    try:
        from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
    except ImportError:  # pragma: no cover - jupyter_client comes with papermill
        raise KernelNotFoundError(f"jupyter_client is not installed, so no kernel can run. {fix}") from None
    try:
        spec = KernelSpecManager().get_kernel_spec(name)
    except NoSuchKernel:
        raise KernelNotFoundError(f"no Jupyter kernelspec named {name!r} is registered. {fix}") from None
    exe = spec.argv[0] if spec.argv else ""
    if os.path.isabs(exe):
        prefix = os.path.abspath(sys.prefix)
        if not os.path.abspath(exe).startswith(prefix + os.sep):
            raise KernelNotFoundError(
                f"the kernelspec {name!r} in {spec.resource_dir} runs {exe}, not this environment's "
                f"Python ({sys.executable}), so the notebooks would not see the project's packages. "
                f"Remove that kernelspec or shadowing copy (`jupyter kernelspec list`), then: {fix}"
            )
    return spec


# --------------------------------------------------------------------------------------------------
# Running one notebook
# --------------------------------------------------------------------------------------------------

def _md_value(value) -> str:
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    text = text.replace("|", "\\|").replace("`", "'")
    return f"`{text}`"


def _same_value(a, b) -> bool:
    """``a == b`` without treating ``True`` as ``1`` or ``"1"`` as ``1``; ``2`` and ``2.0`` are the same."""
    numbers = (int, float)
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, numbers) and isinstance(b, numbers):
        return a == b
    return type(a) is type(b) and a == b


def overridden_names(spec: Mapping[str, dict], values: Mapping[str, Any]) -> list[str]:
    """Names in ``values`` whose value differs from the notebook default (a value equal to it is not an override)."""
    return sorted(
        name for name, value in values.items()
        if name not in spec or not spec[name]["literal"] or not _same_value(value, spec[name]["default"])
    )


def parameters_table_markdown(spec: Mapping[str, dict], overrides: Mapping[str, Any]) -> str:
    """Markdown admonition with one row per parameter: value used, notebook default, and where it came from."""
    lines = [
        "```{admonition} Parameters of this run",
        ":class: note",
        "",
        "The value each parameter of this chapter ran with; a value changed from the notebook's default by "
        "the run profile or the command line is marked **(changed)**, with the default beside it.",
        "",
        "| Parameter | Value | Meaning |",
        "|---|---|---|",
    ]
    changed = set(overridden_names(spec, overrides))
    for name, p in spec.items():
        value = _md_value(overrides[name] if name in overrides else p["default"])
        if name in changed:
            default = _md_value(p["default"]) if p["literal"] else "`" + p["default_source"].replace("|", "\\|").replace("`", "'") + "`"
            value += f" **(changed;** default {default}**)**"
        help_ = p["help"].replace("|", "\\|")
        lines.append(f"| `{name}` | {value} | {help_} |")
    extra = [n for n in overrides if n not in spec]
    for name in extra:  # only reachable with validation off
        lines.append(f"| `{name}` | {_md_value(overrides[name])} **(not declared by the notebook)** | |")
    lines.append("```")
    return "\n".join(lines)


def _add_tag(cell, tag: str) -> None:
    tags = list(cell.setdefault("metadata", {}).get("tags", []))
    if tag not in tags:
        tags.append(tag)
    cell["metadata"]["tags"] = tags


def _postprocess(nb, spec, overrides, *, notebook: Path, out_path: Path) -> None:
    import nbformat

    param_idx = next((i for i, c in enumerate(nb.cells) if "parameters" in c.get("metadata", {}).get("tags", [])), None)
    inj_idx = next((i for i, c in enumerate(nb.cells)
                    if "injected-parameters" in c.get("metadata", {}).get("tags", [])), None)
    for idx in (param_idx, inj_idx):
        if idx is not None:
            _add_tag(nb.cells[idx], HIDE_TAG)
    anchor = inj_idx if inj_idx is not None else param_idx
    if anchor is not None:
        cell = nbformat.v4.new_markdown_cell(parameters_table_markdown(spec, overrides))
        cell["metadata"]["tags"] = [TABLE_TAG]
        nb.cells.insert(anchor + 1, cell)
    meta = nb.metadata.setdefault("papermill", {})
    meta["input_path"] = _display_path(notebook)
    meta["output_path"] = _display_path(out_path)
    nb.metadata["dnalm_book"] = {
        "notebook": _display_path(notebook),
        "parameters": {n: (overrides[n] if n in overrides else p["default"]) for n, p in spec.items()},
        "set_by_run": sorted(overrides),
        "overridden": overridden_names(spec, overrides),
    }


def _display_path(path: Path, root: Path = REPO_ROOT) -> str:
    path = Path(path)
    try:
        return path.resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return str(path)


def _failure_message(nb_path: Path, exc, executed_nb, failed_copy: Path | None) -> tuple[str, int | None]:
    """Message naming the notebook, the failing cell (1-based, as in the template) and the exception."""
    idx = exc.cell_index
    template_idx = idx
    if executed_nb is not None:
        # papermill numbers cells before it inserts its error-marker cells into the saved copy
        cells = [c for c in executed_nb.cells
                 if "papermill-error-cell-tag" not in c.get("metadata", {}).get("tags", [])]
        inj = [i for i, c in enumerate(cells) if "injected-parameters" in c.get("metadata", {}).get("tags", [])]
        if inj and inj[0] < idx:
            template_idx -= 1
    cell_no = template_idx + 1
    first = next((ln.strip() for ln in (exc.source or "").splitlines() if ln.strip()), "")
    if len(first) > 100:
        first = first[:97] + "..."
    run = f"executed as In [{exc.exec_count}]" if exc.exec_count is not None else "not executed"
    msg = (
        f"notebook {_display_path(nb_path)} failed in cell {cell_no} ({run}), which starts with "
        f"`{first}`:\n    {exc.ename}: {exc.evalue}"
    )
    if failed_copy is not None:
        msg += f"\nThe executed notebook with the full traceback is at {_display_path(failed_copy)}."
    return msg, cell_no


def run_notebook(
    notebook: str | os.PathLike,
    params: Mapping[str, Any] | None,
    out_path: str | os.PathLike,
    *,
    kernel: str = "python3",
    cwd: str | os.PathLike | None = None,
    log_output: bool = False,
    progress: bool = True,
    keep_failed: bool = True,
) -> Path:
    """Execute ``notebook`` with ``params`` via papermill and write it atomically to ``out_path``.

    The parameters are validated first (:func:`validate_parameters`). The executed notebook gets a
    "Parameters of this run" markdown table right after papermill's injected-parameters cell, and
    the ``parameters`` / ``injected-parameters`` cells are tagged ``remove-input`` so the page shows
    the table instead of the code. On a cell error raises :class:`NotebookExecutionError` naming the
    notebook, the cell and the exception; ``out_path`` keeps its previous content, and (with
    ``keep_failed``) the failed run is saved beside it as ``<name>.failed.ipynb``.
    """
    import nbformat
    import papermill
    from papermill.exceptions import PapermillExecutionError

    notebook = Path(notebook).resolve()
    out_path = Path(out_path)
    spec = notebook_parameters(notebook)
    resolved = validate_parameters(notebook, params, spec=spec)
    check_kernel(kernel)
    cwd = Path(cwd) if cwd is not None else REPO_ROOT
    failed_copy = out_path.with_name(out_path.stem + ".failed.ipynb")

    with atomic_path(out_path) as tmp:
        try:
            with _quiet_papermill():
                papermill.execute_notebook(
                    str(notebook), str(tmp), parameters=resolved, kernel_name=kernel, cwd=str(cwd),
                    log_output=log_output, progress_bar=progress,
                )
        except PapermillExecutionError as exc:
            executed = nbformat.read(str(tmp), as_version=4) if tmp.exists() else None
            saved = None
            if keep_failed and tmp.exists():
                shutil.copyfile(tmp, failed_copy)
                saved = failed_copy
            msg, cell_no = _failure_message(notebook, exc, executed, saved)
            raise NotebookExecutionError(
                msg, notebook=_display_path(notebook), cell=cell_no, ename=exc.ename, evalue=exc.evalue,
                failed_copy=str(saved) if saved else None,
            ) from None
        except (DnalmInputError, KeyboardInterrupt):
            raise
        except Exception as exc:  # kernel died, timeout, unreadable notebook ...
            raise NotebookExecutionError(
                f"notebook {_display_path(notebook)} could not be executed: {type(exc).__name__}: {exc}",
                notebook=_display_path(notebook), ename=type(exc).__name__, evalue=str(exc),
            ) from exc
        nb = nbformat.read(str(tmp), as_version=4)
        _postprocess(nb, spec, resolved, notebook=notebook, out_path=out_path)
        nbformat.write(nb, str(tmp))
    if failed_copy.exists():
        failed_copy.unlink()
    return out_path


# --------------------------------------------------------------------------------------------------
# Building the book
# --------------------------------------------------------------------------------------------------

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
    lines = []
    for line in text.splitlines():
        if _WARNING_RE.search(line) and "build succeeded" not in line:
            line = line.replace(str(work), "<tmp>").replace(str(root) + os.sep, "")
            if line not in lines:
                lines.append(line)
    if len(lines) > limit:
        lines = lines[:limit] + [f"... and {len(lines) - limit} more"]
    return lines


# --------------------------------------------------------------------------------------------------
# Offline check of the built HTML
# --------------------------------------------------------------------------------------------------

_LOADING_RELS = {"stylesheet", "preload", "modulepreload", "prefetch", "icon", "shortcut", "apple-touch-icon",
                 "manifest", "import"}
_REMOTE = re.compile(r"^\s*(?:https?:)?//", re.I)
_CSS_URL = re.compile(r"""(?:url\(\s*['"]?|@import\s+['"])\s*((?:https?:)?//[^'")\s]+)""", re.I)


class _AssetScanner(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        a = {k.lower(): (v or "") for k, v in attrs}
        if tag in ("script", "img", "iframe", "embed", "source", "audio", "video", "track", "input"):
            if _REMOTE.match(a.get("src", "")):
                self.found.append(f"<{tag} src={a['src']}>")
        if tag == "link":
            rels = set(a.get("rel", "").lower().split())
            if rels & _LOADING_RELS and _REMOTE.match(a.get("href", "")):
                self.found.append(f"<link rel={a.get('rel')} href={a['href']}>")
        if tag == "object" and _REMOTE.match(a.get("data", "")):
            self.found.append(f"<object data={a['data']}>")
        style = a.get("style", "")
        for url in _CSS_URL.findall(style):
            self.found.append(f"<{tag} style=url({url})>")
        if tag == "style":
            self._in_style = True

    def handle_endtag(self, tag):
        if tag == "style":
            self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            for url in _CSS_URL.findall(data):
                self.found.append(f"<style> url({url})")


def remote_assets(html_dir: str | os.PathLike) -> list[str]:
    """Remote resources the built book would load: ``"page.html: <script src=https://...>"`` lines.

    Scans every ``.html`` file for ``script``/``img``/``iframe``/... ``src`` and loading ``link`` tags
    (stylesheet, preload, icon, ...) whose URL is ``http(s)://`` or protocol-relative, plus ``url()``
    and ``@import`` in inline styles, and every ``.css`` file for remote ``url()``/``@import`` (fonts).
    URLs in plain text, ``<a href>`` links, ``data-*`` attributes and JavaScript strings (such as
    thebe's, which loads only on click) are not requests and are ignored. An empty list means the book
    works offline.
    """
    html_dir = Path(html_dir)
    found: list[str] = []
    for page in sorted(html_dir.rglob("*.html")):
        scanner = _AssetScanner()
        scanner.feed(page.read_text(encoding="utf-8", errors="replace"))
        rel = page.relative_to(html_dir).as_posix()
        found.extend(f"{rel}: {item}" for item in scanner.found)
    for css in sorted(html_dir.rglob("*.css")):
        rel = css.relative_to(html_dir).as_posix()
        text = re.sub(r"/\*.*?\*/", "", css.read_text(encoding="utf-8", errors="replace"), flags=re.S)
        found.extend(f"{rel}: url({url})" for url in _CSS_URL.findall(text))
    return found


# --------------------------------------------------------------------------------------------------
# Running a profile
# --------------------------------------------------------------------------------------------------

def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _select(entries: Sequence[dict], only: Iterable[str] | None, profile_name: str) -> list[dict]:
    if not only:
        return list(entries)
    only = [str(o) for o in only]
    selected, unmatched = [], []
    for prefix in only:
        hits = [e for e in entries if Path(e["notebook"]).name.startswith(prefix)
                or Path(e["notebook"]).stem == prefix]
        if not hits:
            unmatched.append(prefix)
        for h in hits:
            if h not in selected:
                selected.append(h)
    if unmatched:
        avail = ", ".join(Path(e["notebook"]).stem for e in entries)
        raise ParameterError(
            f"no notebook of profile {profile_name!r} matches {', '.join(map(repr, unmatched))}; "
            f"the profile lists: {avail}. Select notebooks by number, e.g. `dnalm-book run 01`."
        )
    return [e for e in entries if e in selected]  # keep profile order


def _print(msg: str) -> None:
    print(msg, flush=True)


def _load_manifest(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def run_profile(
    profile: str | os.PathLike | dict = "default",
    *,
    only: Iterable[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    root: str | os.PathLike = REPO_ROOT,
    build: bool = True,
    kernel: str = "python3",
    log_output: bool = False,
    progress: bool = True,
) -> dict:
    """Execute the notebooks of a profile into ``<root>/book/_generated`` and build the book.

    ``only``: notebook number prefixes (``["01", "03"]``) to run a subset. ``overrides``: parameter
    values applied to every selected notebook that declares that parameter (an error if none does).
    All parameters are validated before anything runs. Progress and elapsed times are printed.
    A failing notebook raises :class:`NotebookExecutionError` before the book is built, so the
    previous ``_build/html`` stays. ``book/_generated/run_manifest.json`` records the profile, the
    parameters, times and package versions. Returns the manifest.
    """
    root = Path(root).resolve()
    prof = profile if isinstance(profile, dict) else load_profile(profile, root=root)
    selected = _select(prof["notebooks"], only, prof["name"])
    overrides = dict(overrides or {})

    # Resolve and validate everything first, so a typo fails before an hour of execution.
    plan = []
    for entry in selected:
        nb_path = root / entry["notebook"]
        if not nb_path.is_file():
            stem = nb_path.stem
            known = " (a planned chapter whose notebook is not written yet)" if stem in KNOWN_CHAPTERS else ""
            raise ParameterError(
                f"profile {prof['name']!r} lists {entry['notebook']}{known}, but {nb_path} does not exist. "
                "Run only the notebooks that exist (`dnalm-book run NN ...`), or remove the entry from "
                f"{prof.get('path') or 'the profile'}."
            )
        spec = notebook_parameters(nb_path)
        params = dict(entry["parameters"])
        params.update({k: v for k, v in overrides.items() if k in spec})
        resolved = validate_parameters(nb_path, params, spec=spec)
        plan.append({"entry": entry, "path": nb_path, "spec": spec, "params": resolved})
    unused = [k for k in overrides if not any(k in p["spec"] for p in plan)]
    if unused:
        all_names = sorted({n for p in plan for n in p["spec"]})
        problems = []
        for k in unused:
            close = difflib.get_close_matches(k, all_names, n=1, cutoff=0.6)
            problems.append(f"{k!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        listing = "\n".join(f"{p['path'].name}:\n{_format_spec(p['spec'])}" for p in plan)
        raise ParameterError(
            f"-p {', '.join(problems)}: no selected notebook has such a parameter. Parameters of the "
            f"selected notebooks:\n{listing}"
        )
    check_kernel(kernel)

    gen_dir = root / GENERATED_DIR
    manifest_path = gen_dir / MANIFEST_NAME
    manifest = _load_manifest(manifest_path)
    notebooks_record = manifest.get("notebooks", {}) if isinstance(manifest.get("notebooks"), dict) else {}
    run = {
        "profile": prof["name"],
        "profile_path": _display_path(Path(prof["path"]), root) if prof.get("path") else None,
        "only": list(only) if only else None,
        "overrides": {k: (v.raw if isinstance(v, CliValue) else v) for k, v in overrides.items()},
        "started": _now(),
        "finished": None,
        "status": "running",
        "book_build_s": None,
    }
    manifest = {"last_run": run, "notebooks": notebooks_record, "versions": package_versions(_VERSION_PACKAGES)}

    def save():
        atomic_write_json(manifest_path, manifest)

    t_all = time.perf_counter()
    n = len(plan)
    for i, item in enumerate(plan, 1):
        nb_path = item["path"]
        out_path = gen_dir / nb_path.name
        shown = {k: (v.raw if isinstance(v, CliValue) else v) for k, v in item["params"].items()}
        _print(f"[{i}/{n}] {_display_path(nb_path, root)} -> {_display_path(out_path, root)}"
               + (f"  ({', '.join(f'{k}={v!r}' for k, v in shown.items())})" if shown else ""))
        record = {
            "notebook": _display_path(nb_path, root),
            "output": _display_path(out_path, root),
            "profile": prof["name"],
            "parameters": {name: (item["params"][name] if name in item["params"] else p["default"])
                           for name, p in item["spec"].items()},
            "set_by_run": sorted(item["params"]),
            "overridden": overridden_names(item["spec"], item["params"]),
            "started": _now(),
        }
        t0 = time.perf_counter()
        try:
            run_notebook(nb_path, item["params"], out_path, kernel=kernel, cwd=root,
                         log_output=log_output, progress=progress)
        except BaseException as exc:
            record.update(finished=_now(), duration_s=round(time.perf_counter() - t0, 2), status="failed",
                          error=str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            notebooks_record[nb_path.stem] = record
            run.update(finished=_now(), status=f"failed in {nb_path.name}")
            save()
            _print(f"[{i}/{n}] FAILED after {record['duration_s']:.1f} s; the book was not rebuilt.")
            raise
        record.update(finished=_now(), duration_s=round(time.perf_counter() - t0, 2), status="ok")
        notebooks_record[nb_path.stem] = record
        save()
        _print(f"[{i}/{n}] done in {record['duration_s']:.1f} s")

    if build:
        _print("building the book (jupyter-book build -W -n --keep-going) ...")
        t0 = time.perf_counter()
        try:
            html = build_book(root)
        except BaseException:
            run.update(finished=_now(), status="book build failed", book_build_s=round(time.perf_counter() - t0, 2))
            save()
            raise
        run["book_build_s"] = round(time.perf_counter() - t0, 2)
        _print(f"book built in {run['book_build_s']:.1f} s: {html / 'index.html'}")
    run.update(finished=_now(), status="ok", total_s=round(time.perf_counter() - t_all, 2))
    save()
    return manifest


# ------------------------------------------------------------------------------------------------
# Teaching mode: the same chapters with the exercise solutions replaced by stubs
# ------------------------------------------------------------------------------------------------
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
