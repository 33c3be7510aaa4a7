"""How an executed chapter states the parameters it ran with, without making the reader scroll past them.

Under the chapter's opening (its title and the prose that states the question) the runner inserts one
markdown cell tagged ``parameters-table``:

1. one short line, always visible, naming the values this run changed from the notebook's defaults
   (``This run changed: `n_windows = 200`, `k = 4`.``), or saying that it used the defaults;
2. a folded block (the sphinx-design ``{dropdown}`` directive, rendered as an HTML ``<details>``
   element that works without JavaScript or network) holding the table of every parameter: the value
   used, the default beside each changed one, and the parameter's help comment.

The cell goes before the first code cell, so no result precedes it and the table is one click away.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from .run_parameters import overridden_names

#: Tag of the inserted markdown cell (the changed-values line and the folded table).
TABLE_TAG = "parameters-table"
#: Title of the folded block.
FOLD_TITLE = "Parameters of this run"
#: The line shown when the run set no parameter to a value other than its default.
DEFAULTS_LINE = "This run used the chapter's default parameters."
_HEADING = re.compile(r"\s*#{1,6}\s")


def _md_value(value, *, limit: int = 80) -> str:
    """``repr(value)`` as inline code, cut to ``limit`` characters, safe inside a markdown table cell."""
    text = repr(value)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    text = text.replace("|", "\\|").replace("`", "'")
    return f"`{text}`"


def _md_default(p: Mapping[str, Any]) -> str:
    """The default of one parameter spec as inline code: its value, or its source text for an expression."""
    if p["literal"]:
        return _md_value(p["default"])
    return "`" + p["default_source"].replace("|", "\\|").replace("`", "'") + "`"


def parameter_values(spec: Mapping[str, dict], values: Mapping[str, Any]) -> dict[str, Any]:
    """Every parameter's value in the run: ``values[name]`` where the run set it, else the notebook default.

    ``spec``: as returned by :func:`dnalm_utils.run_parameters.notebook_parameters`; names in ``values``
    that the notebook does not declare are kept (after the declared ones)."""
    out = {name: (values[name] if name in values else p["default"]) for name, p in spec.items()}
    out.update({name: value for name, value in values.items() if name not in spec})
    return out


def changed_parameters_line(spec: Mapping[str, dict], values: Mapping[str, Any]) -> str:
    """One line naming each value that differs from the notebook's default, in name order:
    ``**This run changed:** `k = 4`, `n_windows = 200`.``; :data:`DEFAULTS_LINE` when none does.
    A value set equal to its default is not a change (see :func:`~dnalm_utils.run_parameters.overridden_names`)."""
    changed = overridden_names(spec, values)
    if not changed:
        return DEFAULTS_LINE
    items = []
    for name in changed:
        text = repr(values[name])
        if len(text) > 40:
            text = text[:37] + "..."
        items.append("`" + f"{name} = {text}".replace("`", "'") + "`")
    return f"**This run changed:** {', '.join(items)} (defaults in the table below)."


def parameters_table_markdown(spec: Mapping[str, dict], values: Mapping[str, Any]) -> str:
    """Markdown table with one row per parameter: ``| Parameter | Value | Meaning |``. A value changed from
    the notebook's default is marked ``**(changed;** default `...`**)**``."""
    lines = ["| Parameter | Value | Meaning |", "|---|---|---|"]
    changed = set(overridden_names(spec, values))
    for name, p in spec.items():
        value = _md_value(values[name] if name in values else p["default"])
        if name in changed:
            value += f" **(changed;** default {_md_default(p)}**)**"
        help_ = p["help"].replace("|", "\\|")
        lines.append(f"| `{name}` | {value} | {help_} |")
    for name in (n for n in values if n not in spec):  # only reachable with validation off
        lines.append(f"| `{name}` | {_md_value(values[name])} **(not declared by the notebook)** | |")
    return "\n".join(lines)


def parameters_fold_markdown(spec: Mapping[str, dict], values: Mapping[str, Any]) -> str:
    """The inserted cell's markdown: :func:`changed_parameters_line`, then a folded ``{dropdown}`` titled
    ``Parameters of this run (all N)`` holding :func:`parameters_table_markdown`."""
    n = len(parameter_values(spec, values))
    return "\n".join([
        changed_parameters_line(spec, values),
        "",
        f"```{{dropdown}} {FOLD_TITLE} (all {n})",
        "The value each parameter of this chapter ran with; a value changed from the notebook's default by "
        "the run profile or the command line is marked **(changed)**, with the default beside it.",
        "",
        parameters_table_markdown(spec, values),
        "```",
    ])


def opening_end(nb) -> int:
    """Index of the first cell after the chapter's opening (an nbformat notebook's cell list).

    The opening is the run of markdown cells at the top (the title and the prose stating the question),
    ending at the first code or raw cell or at the first later markdown cell that starts a section with a
    heading (``## Data``). 0 when the notebook starts with code; ``len(nb.cells)`` when it is all opening."""
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown" or (i > 0 and _HEADING.match(cell.source)):
            return i
    return len(nb.cells)


def insert_parameters_fold(nb, spec: Mapping[str, dict], values: Mapping[str, Any]) -> int | None:
    """Insert the changed-values line and the folded parameters table (one markdown cell tagged
    :data:`TABLE_TAG`) into ``nb`` at :func:`opening_end`; return its index. Nothing is inserted (None)
    when the notebook declares no parameter and the run set none."""
    import nbformat

    if not spec and not values:
        return None
    cell = nbformat.v4.new_markdown_cell(parameters_fold_markdown(spec, values))
    cell["metadata"]["tags"] = [TABLE_TAG]
    at = opening_end(nb)
    nb.cells.insert(at, cell)
    return at
