"""Execute one chapter notebook with papermill and make the executed copy ready to render.

:func:`run_notebook` checks the parameters against the notebook's ``parameters`` cell, checks that the
kernel runs this environment's Python (:func:`check_kernel`), executes the template into a temporary
file, then :func:`postprocess_executed_notebook` hides the parameter code cells, inserts the changed-values
line and the folded parameters table under the chapter's opening (:mod:`dnalm_utils.parameters_display`)
and records the run in the notebook's metadata; the result is renamed onto the output path. A failing
notebook raises :class:`NotebookExecutionError` naming the cell and leaves the previous output in place.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any, Mapping

from .book_layout import REPO_ROOT, display_path
from .errors import DnalmInputError
from .io import atomic_path
from .parameters_display import insert_parameters_fold, parameter_values
from .run_parameters import notebook_parameters, overridden_names, quiet_papermill, validate_parameters

#: Tag added to the ``parameters`` and ``injected-parameters`` cells so the page shows the table instead.
HIDE_TAG = "remove-input"


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


class KernelNotFoundError(DnalmInputError):
    """The Jupyter kernel papermill needs is not registered in this environment."""


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


def _add_tag(cell, tag: str) -> None:
    """Add ``tag`` to a cell's ``metadata.tags`` once."""
    tags = list(cell.setdefault("metadata", {}).get("tags", []))
    if tag not in tags:
        tags.append(tag)
    cell["metadata"]["tags"] = tags


def postprocess_executed_notebook(nb, spec: Mapping[str, dict], values: Mapping[str, Any], *,
                                  notebook: str | os.PathLike, out_path: str | os.PathLike) -> None:
    """Prepare a papermill-executed notebook ``nb`` (nbformat, changed in place) for the book.

    Tags the ``parameters`` and ``injected-parameters`` cells ``remove-input``; inserts the changed-values
    line and the folded table of every parameter under the chapter's opening, before the first code cell
    (:func:`~dnalm_utils.parameters_display.insert_parameters_fold`); records ``notebook``, every parameter's
    value, the names the run set and the names it changed under ``nb.metadata["dnalm_book"]``. ``spec``: the
    notebook's parameters (:func:`~dnalm_utils.run_parameters.notebook_parameters`); ``values``: the
    validated values the run injected.
    """
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if "parameters" in tags or "injected-parameters" in tags:
            _add_tag(cell, HIDE_TAG)
    insert_parameters_fold(nb, spec, values)
    meta = nb.metadata.setdefault("papermill", {})
    meta["input_path"] = display_path(notebook)
    meta["output_path"] = display_path(out_path)
    nb.metadata["dnalm_book"] = {
        "notebook": display_path(notebook),
        "parameters": parameter_values(spec, values),
        "set_by_run": sorted(values),
        "overridden": overridden_names(spec, values),
    }


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
        f"notebook {display_path(nb_path)} failed in cell {cell_no} ({run}), which starts with "
        f"`{first}`:\n    {exc.ename}: {exc.evalue}"
    )
    if failed_copy is not None:
        msg += f"\nThe executed notebook with the full traceback is at {display_path(failed_copy)}."
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

    The parameters are validated first (:func:`~dnalm_utils.run_parameters.validate_parameters`). The
    executed notebook is prepared by :func:`postprocess_executed_notebook`: the parameter code cells are
    hidden, and a line naming the changed values plus a folded "Parameters of this run" table sit under
    the chapter's opening. On a cell error raises :class:`NotebookExecutionError` naming the
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
            with quiet_papermill():
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
                msg, notebook=display_path(notebook), cell=cell_no, ename=exc.ename, evalue=exc.evalue,
                failed_copy=str(saved) if saved else None,
            ) from None
        except (DnalmInputError, KeyboardInterrupt):
            raise
        except Exception as exc:  # kernel died, timeout, unreadable notebook ...
            raise NotebookExecutionError(
                f"notebook {display_path(notebook)} could not be executed: {type(exc).__name__}: {exc}",
                notebook=display_path(notebook), ename=type(exc).__name__, evalue=str(exc),
            ) from exc
        nb = nbformat.read(str(tmp), as_version=4)
        postprocess_executed_notebook(nb, spec, resolved, notebook=notebook, out_path=out_path)
        nbformat.write(nb, str(tmp))
    if failed_copy.exists():
        failed_copy.unlink()
    return out_path
