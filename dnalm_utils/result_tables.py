"""Result tables: formatted "mean ± std" tables, Markdown rendering, and atomic CSV writing with a manifest.

* :func:`wide_table` -- a ``summarize_runs`` summary as one row per group and one column per value of a
  parameter, cells "mean ± std" or, where the summary has a bootstrap interval, "mean [low, high]" (percent or
  plain);
* :func:`markdown_table` -- any DataFrame as a GitHub-flavoured Markdown table;
* :func:`write_results` -- a DataFrame as CSV, atomically, with ``<stem>.manifest.json`` next to it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np


def wide_table(summary, *, rows: Sequence[str], column: str, metric: str, percent: bool = True, digits: int = 1):
    """``summary`` (summarize_runs output) as a table of formatted strings: one row per ``rows`` combination, one
    column per value of ``column``; a cell is "mean [low, high]" where the row has a finite ``<metric>_low`` /
    ``<metric>_high`` interval, else "mean ± std" (no "±" for one seed); "n/a" where absent."""
    scale = 100.0 if percent else 1.0
    unit = " %" if percent else ""

    def fmt(r):
        m, sd = r[f"{metric}_mean"], r.get(f"{metric}_std", np.nan)
        lo, hi = r.get(f"{metric}_low", np.nan), r.get(f"{metric}_high", np.nan)
        if not np.isfinite(m):
            return "n/a"
        text = f"{scale * m:.{digits}f}"
        if np.isfinite(lo) and np.isfinite(hi):
            text += f" [{scale * lo:.{digits}f}, {scale * hi:.{digits}f}]"
        elif np.isfinite(sd):
            text += f" ± {scale * sd:.{digits}f}"
        return text + unit

    cells = summary.assign(_cell=summary.apply(fmt, axis=1))
    wide = cells.pivot_table(index=list(rows), columns=column, values="_cell", aggfunc="first", sort=False)
    wide.columns = [f"{column} = {c}" for c in wide.columns]
    return wide.fillna("n/a").reset_index()


def markdown_table(table, *, index: bool = False) -> str:
    """``table`` as a GitHub-flavoured Markdown table (cells formatted with str; NaN as "n/a")."""
    frame = table.reset_index() if index else table
    cols = [str(c) for c in frame.columns]

    def cell(v):
        if v is None or (isinstance(v, float) and not np.isfinite(v)):
            return "n/a"
        return str(v).replace("|", "\\|")

    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def write_results(table, path, *, manifest: Mapping | None = None) -> Path:
    """Write ``table`` as CSV atomically; with ``manifest``, also ``<stem>.manifest.json`` next to it holding the
    manifest plus the table's shape, columns and the library versions."""
    from .io import atomic_write_json, atomic_write_text, package_versions

    path = Path(path)
    atomic_write_text(path, table.to_csv(index=False))
    if manifest is not None:
        meta = {**manifest, "table": path.name, "rows": int(len(table)), "columns": list(map(str, table.columns)),
                "versions": package_versions(("dnalm-utils", "torch", "transformers", "scikit-learn", "numpy")),
                "written": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        atomic_write_json(path.with_name(path.stem + ".manifest.json"), meta)
    return path


__all__ = ["wide_table", "markdown_table", "write_results"]
