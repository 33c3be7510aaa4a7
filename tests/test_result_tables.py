"""Result tables: "mean ± std" cells, Markdown rendering, CSV + manifest written atomically."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from dnalm_utils import result_tables as TB


def test_write_results_with_manifest(tmp_path):
    import pandas as pd

    table = pd.DataFrame({"model": ["a"], "accuracy": [0.5]})
    path = TB.write_results(table, tmp_path / "runs.csv", manifest={"seeds": [0, 1]})
    assert pd.read_csv(path).equals(table)
    meta = json.loads((tmp_path / "runs.manifest.json").read_text())
    assert meta["seeds"] == [0, 1] and meta["rows"] == 1 and "torch" in meta["versions"]


def test_wide_table_formats_mean_and_std_per_column():
    summary = pd.DataFrame({"model": ["a", "a", "b"], "k": [1, 2, 1], "accuracy_mean": [0.5, 0.25, 0.125],
                            "accuracy_std": [0.05, np.nan, 0.0]})
    wide = TB.wide_table(summary, rows=["model"], column="k", metric="accuracy")
    assert wide.columns.tolist() == ["model", "k = 1", "k = 2"]
    assert wide.set_index("model").loc["a"].tolist() == ["50.0 ± 5.0 %", "25.0 %"]  # one seed: no ±
    assert wide.set_index("model").loc["b"].tolist() == ["12.5 ± 0.0 %", "n/a"]  # absent cell
    # where a row has a bootstrap interval it replaces the ± std; a NaN interval falls back to the std
    summary["accuracy_low"], summary["accuracy_high"] = [0.4, np.nan, 0.1], [0.6, np.nan, 0.2]
    wide = TB.wide_table(summary, rows=["model"], column="k", metric="accuracy").set_index("model")
    assert wide.loc["a"].tolist() == ["50.0 [40.0, 60.0] %", "25.0 %"] and wide.loc["b", "k = 1"] == "12.5 [10.0, 20.0] %"


def test_markdown_table_escapes_pipes_and_shows_nan_as_na():
    text = TB.markdown_table(pd.DataFrame({"x": ["a|b", "c"], "y": [1.5, np.nan]}))
    assert text.splitlines() == ["| x | y |", "|---|---|", "| a\\|b | 1.5 |", "| c | n/a |"]
