"""The one cache rule: the code digest is computed on a copy of the package folder with one file patched --
a figure edit or a docstring / comment / formatting edit keeps every key (cached runs are reused), a change
to the tokenizer's code changes the keys of what it shapes (cached runs are not reused); entries round-trip,
and a corrupt, truncated or foreign entry is never used."""

from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from dnalm_utils import cache as C
from dnalm_utils import finetune_runs as FR
from dnalm_utils.errors import ParameterError
from dnalm_utils.finetuning import FinetuneSettings

RUN_INPUTS = dict(model="m" * 64, init="pretrained", seed=0, settings=FinetuneSettings(), num_labels=2,
                  score_id="binary", data_sha256="d" * 64, device="cpu")


@pytest.fixture()
def package(tmp_path):
    """A copy of the dnalm_utils folder (sources only)."""
    root = tmp_path / "original" / "dnalm_utils"
    shutil.copytree(C.PACKAGE_ROOT, root, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return root


def _copy(package: Path, tag: str) -> Path:
    """Another copy of ``package`` to patch (code digests are remembered per folder, so each state gets its own)."""
    root = package.parent.parent / tag / "dnalm_utils"
    shutil.copytree(package, root)
    return root


def _function(path: Path, name: str | None = None) -> ast.FunctionDef:
    """The function ``name`` (default: the first module-level function with a docstring) of a module."""
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and (node.name == name or name is None and ast.get_docstring(node)):
            return node
    raise AssertionError(f"no function {name} in {path}")


def _insert_statement(path: Path, name: str | None = None, statement: str = "_unused = 1") -> None:
    """Add ``statement`` before the first statement after the docstring of a function (a change to its body)."""
    node = _function(path, name)
    first = node.body[1] if ast.get_docstring(node) else node.body[0]
    lines = path.read_text().splitlines(keepends=True)
    lines.insert(first.lineno - 1, " " * first.col_offset + statement + "\n")
    path.write_text("".join(lines))


def _edit_docstring_comments_and_format(path: Path) -> None:
    """Reword the first function docstring and the module docstring, add comments and blank lines."""
    node = _function(path)
    doc = node.body[0]
    lines = path.read_text().splitlines(keepends=True)
    line = lines[doc.lineno - 1]
    quote = '"""' if '"""' in line else "'''"
    lines[doc.lineno - 1] = line.replace(quote, quote + "Reworded. ", 1)
    lines.insert(node.lineno - 1, "# a new comment above the function\n\n")
    text = "".join(lines)
    text = text.replace('"""', '"""Module docstring edited. ', 1)  # the module docstring comes first
    path.write_text("# a comment on line one\n" + text + "\n\n# trailing comment\n")


def _keys(root: Path) -> dict[str, str]:
    """Keys of the artifact kinds whose results hold no figure (an executed chapter's page does)."""
    return {kind: C.make_key(kind, {"x": 1}, root=root).key for kind in C.DEPENDS_ON
            if kind != "executed-chapter" and kind not in C.PER_CALL_MODULES}


def test_figure_and_docstring_edits_keep_every_key_and_cached_runs_are_reused(package, tmp_path):
    before = _keys(package)
    # a copy digests as the original
    fixed = [kind for kind in C.DEPENDS_ON if kind not in C.PER_CALL_MODULES]
    assert ({kind: C.make_key(kind, {"x": 1}, root=package).key for kind in fixed}
            == {kind: C.make_key(kind, {"x": 1}).key for kind in fixed})
    run_key = FR.run_cache_key(**RUN_INPUTS, root=package)
    FR.write_cached_run(tmp_path / "runs", run_key, {"accuracy": 0.75, "steps": 6})
    edited = _copy(package, "edited")
    _insert_statement(edited / "plotting.py", "plot_task_scores", "fig_note = 'a figure change'")
    for module in ("tokenization.py", "finetuning.py", "codec.py", "embeddings.py", "pretraining.py"):
        _edit_docstring_comments_and_format(edited / module)
    for module in ("tokenization.py", "plotting.py"):  # the files really changed, and not only in comments
        assert ast.dump(ast.parse((edited / module).read_text())) != ast.dump(ast.parse((package / module).read_text()))
    assert _keys(edited) == before
    # an executed chapter shows the figure, so the figure change re-executes it; the docstring edits alone do not
    chapter = C.make_key("executed-chapter", {"x": 1}, root=package).key
    assert C.make_key("executed-chapter", {"x": 1}, root=edited).key != chapter
    docs_only = _copy(package, "docs_only")
    _edit_docstring_comments_and_format(docs_only / "plotting.py")
    assert C.make_key("executed-chapter", {"x": 1}, root=docs_only).key == chapter
    again = FR.run_cache_key(**RUN_INPUTS, root=edited)
    assert again == run_key
    assert FR.read_cached_run(tmp_path / "runs", again) == {"accuracy": 0.75, "steps": 6}


def test_a_tokenizer_code_change_changes_the_keys_it_shapes_and_cached_runs_are_not_reused(package, tmp_path):
    before = _keys(package)
    run_key = FR.run_cache_key(**RUN_INPUTS, root=package)
    FR.write_cached_run(tmp_path / "runs", run_key, {"accuracy": 0.75})
    patched = _copy(package, "patched")
    _insert_statement(patched / "tokenization.py")
    after = _keys(patched)
    assert after["finetune-run"] != before["finetune-run"]
    assert after["pretrained-model"] != before["pretrained-model"]
    assert after["embedding-map"] == before["embedding-map"]  # a map of given vectors does not tokenize
    changed = FR.run_cache_key(**RUN_INPUTS, root=patched)
    assert changed.key != run_key.key
    assert FR.read_cached_run(tmp_path / "runs", changed) is None
    assert changed.manifest["inputs"] == run_key.manifest["inputs"]  # only the code digest differs
    assert changed.manifest["code_sha256"] != run_key.manifest["code_sha256"]


def test_every_input_spelled_out_in_the_manifest_changes_the_key():
    base = FR.run_cache_key(**RUN_INPUTS)
    for change in ({"seed": 1}, {"init": "random"}, {"device": "cuda"}, {"num_labels": 3}, {"score_id": "binary/2"},
                   {"settings": FinetuneSettings(learning_rate=2e-3)}, {"data_sha256": "e" * 64},
                   {"load_options": {"trust_remote_code": True}}):
        assert FR.run_cache_key(**{**RUN_INPUTS, **change}).key != base.key, change
    m = base.manifest
    assert m["kind"] == "finetune-run" and m["format"] == C.FORMATS["finetune-run"]
    assert {"python", "torch", "transformers", "numpy"} <= set(m["versions"])
    assert C.make_key("finetune-run", m["inputs"]).key == base.key  # the key is a function of the manifest


def test_dependency_lists_name_modules_and_no_figure_code(package):
    for kind, names in C.DEPENDS_ON.items():
        assert "plotting" not in names
        files = C.module_files(kind)
        missing = [n for n, f in files.items() if f is None]
        assert set(missing) <= {"corpus"}, f"{kind} lists modules that do not exist: {missing}"
    assert "families.bert" in C.module_files("finetune-run")  # a sub-package expands to its modules
    # A listed module that is absent is tolerated, and its appearance changes the digest.
    (package / "corpus.py").unlink(missing_ok=True)
    without = C.code_digest("pretrained-model", package)
    other = _copy(package, "with-corpus")
    (other / "corpus.py").write_text("def corpus_records():\n    return []\n")
    assert C.module_files("pretrained-model", package)["corpus"] is None
    assert C.code_digest("pretrained-model", other) != without
    with pytest.raises(ParameterError, match="kind"):
        C.make_key("umap", {})


def test_source_digest_ignores_docstrings_comments_and_layout_only():
    a = 'def f(x):\n    """Double x."""\n    return 2 * x\n'
    b = '# comment\ndef f(x):\n    """Twice x, reworded."""\n\n    return (2 *\n            x)  # why\n'
    c = 'def f(x):\n    """Double x."""\n    return 3 * x\n'
    d = 'def f(x):\n    "Not a docstring once code comes first."\n    return 2 * x\n'
    e = 'def f(x):\n    return 2 * x\n    "a string after code is code"\n'
    assert C.source_digest(a) == C.source_digest(b)
    assert C.source_digest(a) != C.source_digest(c)
    assert C.source_digest(a) == C.source_digest(d)
    assert C.source_digest(e) != C.source_digest('def f(x):\n    return 2 * x\n')
    with pytest.raises(ParameterError, match="does not parse"):
        C.source_digest("def f(:\n", filename="broken.py")


def test_entry_round_trip_and_corrupt_entries_are_rejected(tmp_path):
    key = C.make_key("embedding-map", {"n": 3})
    path = C.entry_path(tmp_path, key, ".csv")
    body = b"x,y\n1.0,2.0\n"
    C.write_entry(path, key, body)
    assert C.read_entry(path, key) == body
    head = json.loads(path.read_text().splitlines()[0][2:])
    assert head["inputs"] == {"n": 3} and head["key"] == key.key and "code_sha256" in head and "body_sha256" in head
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # atomic: no temporary file left
    good = path.read_bytes()
    other = C.make_key("embedding-map", {"n": 4})
    assert C.read_entry(path, other) is None  # stored for other inputs
    for damaged in (good.replace(b"2.0", b"2.5"), good[:-3], good.replace(b'"n": 3', b'"n": 4', 1),
                    good.replace(key.key.encode(), b"0" * 64), b"\xff\xfe garbage", b"", good.split(b"\n", 1)[1]):
        path.write_bytes(damaged)
        assert C.read_entry(path, key) is None
    path.unlink()
    assert C.read_entry(path, key) is None  # absent
    with pytest.raises(ParameterError, match="bytes"):
        C.write_entry(path, key, "text")


def test_run_cache_round_trip(tmp_path):
    key = FR.run_cache_key(**RUN_INPUTS)
    row = {"accuracy": np.float64(0.5), "steps": np.int64(6), "stopped_early": False, "tokenization": "3-mers"}
    path = FR.write_cached_run(tmp_path, key, row)
    assert path == C.entry_path(tmp_path, key)
    assert FR.read_cached_run(tmp_path, key) == {"accuracy": 0.5, "steps": 6, "stopped_early": False,
                                                  "tokenization": "3-mers"}
    path.write_bytes(path.read_bytes().replace(b"0.5", b"0.9"))
    assert FR.read_cached_run(tmp_path, key) is None
