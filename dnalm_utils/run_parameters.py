"""Run profiles and notebook parameters: what a run may set, and whether the values are valid.

A *profile* (``params/<name>.yml``) lists the notebooks to run and the parameters to inject::

    description: ...
    notebooks:
      - notebook: notebooks/01_tokenization.ipynb
        parameters: {k: 6, n_windows: 2000}
      - notebook: notebooks/02_pretraining.ipynb      # no parameters: notebook defaults

:func:`notebook_parameters` reads a notebook's ``parameters`` cell (names, types, defaults, help
comments); :func:`validate_parameters` checks values against it (papermill itself only warns about
unknown names) and :func:`overridden_names` says which values differ from the defaults.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import difflib
import logging
import os
import re
from pathlib import Path
from typing import Any, Mapping

import yaml

from .book_layout import PARAMS_DIR, REPO_ROOT
from .errors import ParameterError


@dataclasses.dataclass(frozen=True)
class CliValue:
    """A parameter value typed on the command line, parsed only once the target parameter is known.

    For a ``str`` parameter the raw text is used as is (so ``-p label yes`` gives ``"yes"``, not
    ``True``); for any other parameter the text is parsed with ``yaml.safe_load`` (numbers, lists,
    booleans, ``null``).
    """

    raw: str

    def resolve(self, type_name: str | None):
        """The value for a parameter of type ``type_name`` (as in :func:`notebook_parameters`; None: any)."""
        if type_name == "str":
            return self.raw
        return yaml.safe_load(self.raw) if self.raw.strip() else self.raw


def plain_value(value: Any) -> Any:
    """``value`` as given: the raw text of a :class:`CliValue`, anything else unchanged."""
    return value.raw if isinstance(value, CliValue) else value


# --------------------------------------------------------------------------------------------------
# Profiles
# --------------------------------------------------------------------------------------------------

def available_profiles(root: str | os.PathLike = REPO_ROOT) -> list[str]:
    """Names of the profiles under ``<root>/params``."""
    folder = Path(root) / PARAMS_DIR
    return sorted(p.stem for p in folder.glob("*.yml")) + sorted(p.stem for p in folder.glob("*.yaml"))


def load_profile(name_or_path: str | os.PathLike, *, root: str | os.PathLike = REPO_ROOT) -> dict:
    """Read a run profile: a name (``default`` -> ``params/default.yml``) or a path to a YAML file.

    Returns ``{"name", "path", "description", "notebooks": [{"notebook": str, "parameters": dict, "group": str |
    None}]}`` with notebook paths as written in the file (relative to ``root``). An entry's optional ``group``
    (a name) runs it side by side with the neighbouring entries of the same group (they must be consecutive;
    ``profile_runner.run_profile``). Raises :class:`ParameterError`
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
        extra = set(entry) - {"notebook", "parameters", "group"}
        if extra:
            raise ParameterError(
                f"profile {path}, entry {entry['notebook']}: unknown key(s) {sorted(extra)}; "
                "allowed: notebook, parameters, group."
            )
        group = entry.get("group")
        if group is not None and (not isinstance(group, str) or not group.strip()):
            raise ParameterError(
                f"profile {path}, entry {entry['notebook']}: 'group' must be a name (e.g. group: after-zoo), got "
                f"{group!r}; entries of one group run side by side."
            )
        params = entry.get("parameters") or {}
        if not isinstance(params, dict):
            raise ParameterError(
                f"profile {path}, entry {entry['notebook']}: 'parameters' must be a mapping, got {params!r}."
            )
        entries.append({"notebook": entry["notebook"], "parameters": dict(params), "group": group})
    groups = [e["group"] for e in entries]
    for g in sorted({g for g in groups if g is not None}):
        at = [i for i, x in enumerate(groups) if x == g]
        if at != list(range(at[0], at[-1] + 1)):
            raise ParameterError(
                f"profile {path}: the entries of group {g!r} ({', '.join(entries[i]['notebook'] for i in at)}) are "
                "not consecutive; list a group's notebooks one after another (they run side by side)."
            )
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
def quiet_papermill():
    """Context in which papermill does not log the warnings :func:`validate_parameters` supersedes."""
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
    with quiet_papermill():
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


def format_parameter_spec(spec: Mapping[str, dict]) -> str:
    """One ``  name: type = default  # help`` line per parameter of ``spec`` (from :func:`notebook_parameters`),
    for error messages that list the valid parameters."""
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
            + format_parameter_spec(spec)
        )
    return resolved


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
