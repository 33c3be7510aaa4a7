"""``dnalm-book``: run the notebooks of a profile, build the book, list parameters, manage data.

Examples::

    dnalm-book run                          # every notebook of params/default.yml, then the book
    dnalm-book run 01 --profile smoke       # only notebook 01, with the smoke profile
    dnalm-book run 01 -p k 4 -p n_windows 200
    dnalm-book build                        # rebuild _build/html from book/_generated
    dnalm-book student                      # student edition: _build/student_html, _build/student_notebooks
    dnalm-book check                        # open every built page in headless Chromium
    dnalm-book params 01                    # the parameters of notebooks/01_*.ipynb
    dnalm-book data verify                  # delegated to dnalm_utils.data_rebuild

Bad input (unknown profile, parameter, notebook; a missing kernel) is reported as ``error: ...`` on
stderr with exit status 2; a notebook that fails while running, or a failed book build, exits with 1.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from .errors import DnalmInputError


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dnalm-book",
        description="Execute the book's notebooks with papermill and build it with Jupyter Book.",
    )
    parser.add_argument("--root", default=None, help="book root holding _config.yml and _toc.yml "
                        "(default: the repository)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="execute notebooks of a profile, then build the book",
                         description="Execute the notebooks of a run profile into book/_generated, then "
                         "build the book. Any parameter not set keeps the notebook's default.")
    run.add_argument("notebooks", nargs="*", metavar="NN",
                     help="notebook number prefixes to run, e.g. 01 03 (default: all in the profile)")
    run.add_argument("--profile", default="default",
                     help="profile name (params/NAME.yml) or path to a YAML file (default: default)")
    run.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                     help="override a parameter in every selected notebook that has it; VALUE is parsed "
                     "as YAML (numbers, lists, true/false) unless the parameter is a string")
    run.add_argument("--no-build", action="store_true", help="execute the notebooks only")
    run.add_argument("--rerun", action="store_true",
                     help="execute every selected chapter even when an executed copy with the same inputs is "
                     "stored in artifacts/chapters (default: reuse it)")
    run.add_argument("--kernel", default="python3", help="Jupyter kernel name (default: python3)")
    run.add_argument("--log-output", action="store_true", help="stream the notebooks' output to the terminal")
    run.add_argument("--no-progress", action="store_true", help="hide papermill's progress bar")

    sub.add_parser("build", help="build the book from the executed notebooks (no execution)",
                   description="Run jupyter-book build -W -n --keep-going and replace _build/html "
                   "only if it passed.")

    sub.add_parser("student", help="build the student edition (solutions replaced by stubs)",
                   description="Build _build/student_html from the executed chapters with every exercise solution "
                   "replaced by a stub that raises NotImplementedError, and _build/student_notebooks (the chapter "
                   "templates with the same stubs). Run the chapters first (dnalm-book run).")
    check = sub.add_parser("check", help="open every built page in headless Chromium and report problems",
                           description="Open every page of _build/html in headless Chromium (Selenium + chromedriver): "
                           "error outputs, images that do not load, broken internal links, search; saves a screenshot "
                           "of the front page to _build/screenshots/front_page.png. Exit 1 if anything is wrong.")
    check.add_argument("--query", default="overlapping", help="a word the search must find (default: overlapping)")
    params = sub.add_parser("params", help="list a notebook's parameters",
                            description="List the parameters declared in a notebook's parameters cell.")
    params.add_argument("notebook", help="notebook path or number, e.g. 01 or notebooks/01_tokenization.ipynb")

    sub.add_parser("data", help="verify or rebuild the bundled data (dnalm_utils.data_rebuild)", add_help=False,
                   description="Delegates to dnalm_utils.data_rebuild: dnalm-book data verify|rebuild [...]")
    return parser


def _root(args) -> Path:
    from .book_layout import REPO_ROOT

    return Path(args.root).resolve() if args.root else REPO_ROOT


def _cmd_run(args) -> int:
    from .profile_runner import run_profile
    from .run_parameters import CliValue

    overrides = {}
    for name, raw in args.parameter:
        if name in overrides:
            raise DnalmInputError(f"-p {name} is given twice; give each parameter once.")
        overrides[name] = CliValue(raw)
    if args.log_output:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    run_profile(
        args.profile, only=args.notebooks or None, overrides=overrides, root=_root(args),
        build=not args.no_build, kernel=args.kernel, log_output=args.log_output,
        progress=not args.no_progress, reuse=not args.rerun,
    )
    return 0


def _cmd_build(args) -> int:
    from .book_build import build_book

    t0 = time.perf_counter()
    print("building the book (jupyter-book build -W -n --keep-going) ...", flush=True)
    html = build_book(_root(args))
    print(f"book built in {time.perf_counter() - t0:.1f} s: {html / 'index.html'}", flush=True)
    return 0


def _cmd_student(args) -> int:
    from .student_edition import build_student

    t0 = time.perf_counter()
    print("building the student edition (solutions replaced by stubs) ...", flush=True)
    html, notebooks = build_student(_root(args))
    print(f"student edition built in {time.perf_counter() - t0:.1f} s: {html / 'index.html'}; notebooks in {notebooks}",
          flush=True)
    return 0


def _cmd_check(args) -> int:
    from . import browser

    html = _root(args) / "_build" / "html"
    report = browser.check_book(html, query=args.query)
    print(f"{len(report.pages)} pages, {report.images} images, {report.links} internal links, "
          f"{report.search_hits} search results for {args.query!r}; screenshot: {report.screenshot}")
    for line in report.problems:
        print(f"  problem: {line}")
    return 1 if report.problems else 0


def _cmd_params(args) -> int:
    from .run_parameters import notebook_parameters, resolve_notebook

    path = resolve_notebook(args.notebook, root=_root(args))
    spec = notebook_parameters(path)
    print(f"Parameters of {path.name}:")
    if not spec:
        print("  (no cell tagged 'parameters')")
        return 0
    width = max(len(n) for n in spec)
    for p in spec.values():
        help_ = f"  # {p['help']}" if p["help"] else ""
        print(f"  {p['name']:<{width}}  {p['type'] or 'any':<6} = {p['default_source']}{help_}")
    return 0


def _cmd_data(argv: list[str]) -> int:
    try:
        from . import data_rebuild
    except ImportError as exc:
        raise DnalmInputError(f"the data commands are not available: cannot import dnalm_utils.data_rebuild ({exc}).") from None
    rc = data_rebuild.main(list(argv))
    return int(rc or 0)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``dnalm-book``; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        # `data` passes its arguments through untouched (including --help) to dnalm_utils.data_rebuild.main.
        if argv and argv[0] == "data":
            return _cmd_data(argv[1:])
        try:
            args = _build_parser().parse_args(argv)
        except SystemExit as exc:  # --help, or a usage error already printed by argparse
            return int(exc.code or 0) if not isinstance(exc.code, str) else 2
        if args.command == "data":  # pragma: no cover - handled above
            return _cmd_data([])
        handler = {"run": _cmd_run, "build": _cmd_build, "student": _cmd_student, "check": _cmd_check,
                   "params": _cmd_params}[args.command]
        return handler(args)
    except DnalmInputError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr, flush=True)
        return 130
    except Exception as exc:
        from .book_build import BookBuildError
        from .notebook_execution import NotebookExecutionError

        if isinstance(exc, (NotebookExecutionError, BookBuildError)):
            print(f"error: {exc}", file=sys.stderr, flush=True)
            return 1
        raise


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
