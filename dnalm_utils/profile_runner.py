"""Run a profile: execute its notebooks into ``book/_generated``, build the book, record the run.

:func:`run_profile` validates every parameter of every selected notebook before anything runs (so a
typo fails before an hour of execution), executes the notebooks one by one
(:func:`~dnalm_utils.notebook_execution.run_notebook`), builds the book
(:func:`~dnalm_utils.book_build.build_book`) and records ``book/_generated/run_manifest.json``: the
profile, each notebook's parameters, times, status and the package versions. This follows cal-itp's
papermill -> jupyter-book pattern.
"""

from __future__ import annotations

import datetime as _dt
import difflib
import json
import os
import time
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from . import chapter_cache
from .book_build import build_book
from .book_layout import GENERATED_DIR, REPO_ROOT, display_path
from .errors import ParameterError
from .grid_executors import THREAD_ENV_VARS, available_cpus
from .io import atomic_write_json, package_versions
from .notebook_execution import check_kernel, run_notebook
from .run_parameters import (
    format_parameter_spec, load_profile, notebook_parameters, overridden_names, plain_value,
    validate_parameters,
)

#: File name of the run record inside ``book/_generated``.
MANIFEST_NAME = "run_manifest.json"
#: Chapters planned in the book; a profile may list them before their notebook exists.
KNOWN_CHAPTERS = (
    "01_tokenization",
    "02_pretraining",
    "03_masked_prediction",
    "04_embeddings",
    "05_next_kmer",
    "06_biology_finetuning",
    "07_copying_or_context",
    "08_conclusions",
)
_VERSION_PACKAGES = (
    "dnalm-utils", "torch", "transformers", "tokenizers", "numpy", "papermill", "jupyter-book", "myst-nb",
)


def _now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _select(entries: Sequence[dict], only: Iterable[str] | None, profile_name: str) -> list[dict]:
    """The profile entries whose notebook name starts with one of ``only`` (all when empty), in profile order."""
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
    """Progress line on stdout, flushed at once (runs take minutes)."""
    print(msg, flush=True)


def _load_manifest(path: Path) -> dict:
    """The previous run record, or ``{}`` when it is missing or unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _batches(numbered: Sequence[tuple[int, dict]]) -> list[list[tuple[int, dict]]]:
    """Consecutive plan items of one profile ``group`` form a batch that runs side by side; others run alone."""
    batches: list[list[tuple[int, dict]]] = []
    for i, item in numbered:
        group = item["entry"].get("group")
        if batches and group is not None and batches[-1][-1][1]["entry"].get("group") == group:
            batches[-1].append((i, item))
        else:
            batches.append([(i, item)])
    return batches


def _run_with_threads(threads: int, job: dict) -> float:
    """Worker-process body: limit this process and its kernel (which inherits the environment) to ``threads``
    OpenMP / MKL / OpenBLAS threads (torch reads ``OMP_NUM_THREADS`` at start-up), then run one notebook.
    Returns its duration in seconds."""
    for var in (*THREAD_ENV_VARS, "NUMBA_NUM_THREADS"):
        os.environ[var] = str(threads)
    t0 = time.perf_counter()
    run_notebook(**job)
    return time.perf_counter() - t0


def _execute(jobs: list[dict], threads: int | None) -> list[tuple[float, BaseException | None]]:
    """Run ``jobs`` (``run_notebook`` keyword arguments): one alone in this process, several at once, one
    worker process each with ``threads`` threads. Returns (seconds, exception or None) per job, in order, after
    all have finished (a failing notebook does not stop the others)."""
    if threads is None:
        (job,) = jobs
        t0 = time.perf_counter()
        try:
            run_notebook(**job)
        except BaseException as exc:  # recorded by the caller, then raised
            return [(time.perf_counter() - t0, exc)]
        return [(time.perf_counter() - t0, None)]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=len(jobs), mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_run_with_threads, threads, job) for job in jobs]
        results = []
        for fut in futures:
            try:
                results.append((fut.result(), None))
            except BaseException as exc:  # noqa: BLE001 - recorded by the caller, then raised
                results.append((time.perf_counter() - t0, exc))
    return results


def _all_parameters(item: dict) -> dict:
    """Every parameter of a plan item: the run's values over the notebook's defaults."""
    return {name: (item["params"][name] if name in item["params"] else p["default"])
            for name, p in item["spec"].items()}


def _folder(value):
    """A folder parameter's text, or None when it is empty or not text."""
    value = plain_value(value)
    return value if isinstance(value, str) and value.strip() else None


def _output_dir(item: dict):
    """The chapter's result folder (its ``output_dir`` parameter), or None."""
    return _folder(_all_parameters(item).get("output_dir"))


def upstream_outputs(entries: Sequence[dict], overrides: Mapping[str, Any], root: Path) -> dict[str, list[str]]:
    """For each notebook stem of the profile: the ``output_dir`` of the entries before it, less those of its own
    group (they run side by side, so they cannot read each other)."""
    outs = []
    for entry in entries:
        path = root / entry["notebook"]
        spec = notebook_parameters(path) if path.is_file() else {}
        value = {**{k: p["default"] for k, p in spec.items()}, **entry["parameters"],
                 **{k: v for k, v in overrides.items() if k in spec}}.get("output_dir")
        outs.append((Path(entry["notebook"]).stem, entry.get("group"), _folder(value)))
    return {stem: [o for s, g, o in outs[:j] if o and (group is None or g != group)]
            for j, (stem, group, _) in enumerate(outs)}


def _record(item: dict, root: Path, gen_dir: Path, profile_name: str) -> dict:
    """The run-manifest fields every chapter record has: where it came from and went, its parameters."""
    return {"notebook": display_path(item["path"], root), "output": display_path(gen_dir / item["path"].name, root),
            "profile": profile_name, "parameters": _all_parameters(item), "set_by_run": sorted(item["params"]),
            "overridden": overridden_names(item["spec"], item["params"]), "group": item["entry"].get("group")}


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
    reuse: bool = True,
) -> dict:
    """Execute the notebooks of a profile into ``<root>/book/_generated`` and build the book.

    ``only``: notebook number prefixes (``["01", "03"]``) to run a subset. ``overrides``: parameter
    values applied to every selected notebook that declares that parameter (an error if none does).
    All parameters are validated before anything runs. Progress and elapsed times are printed. Consecutive
    entries of one profile ``group`` run side by side, each in its own process whose kernel gets the CPUs
    divided among them as OpenMP / MKL threads (a grouped notebook should not start worker pools of its own);
    their execution progress bars are off and a failure is raised once all of them have finished. With ``reuse``
    a chapter whose inputs (template, parameters, package code, library versions, data, named files, the
    results of the chapters before it) match a stored execution is not executed again
    (:mod:`~dnalm_utils.chapter_cache`); its record says ``"status": "reused"``.
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
        listing = "\n".join(f"{p['path'].name}:\n{format_parameter_spec(p['spec'])}" for p in plan)
        raise ParameterError(
            f"-p {', '.join(problems)}: no selected notebook has such a parameter. Parameters of the "
            f"selected notebooks:\n{listing}"
        )
    check_kernel(kernel)
    upstream = upstream_outputs(prof["notebooks"], overrides, root)

    gen_dir = root / GENERATED_DIR
    manifest_path = gen_dir / MANIFEST_NAME
    manifest = _load_manifest(manifest_path)
    notebooks_record = manifest.get("notebooks", {}) if isinstance(manifest.get("notebooks"), dict) else {}
    run = {
        "profile": prof["name"],
        "profile_path": display_path(Path(prof["path"]), root) if prof.get("path") else None,
        "only": list(only) if only else None,
        "overrides": {k: plain_value(v) for k, v in overrides.items()},
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
    numbered = list(enumerate(plan, 1))
    for batch in _batches(numbered):
        keys, fresh = {}, []
        for i, item in batch:
            if reuse:
                keys[i] = chapter_cache.chapter_key(item["path"], _all_parameters(item), root=root,
                                                    upstream_outputs=upstream[item["path"].stem])
                stored = chapter_cache.restore(root, keys[i], gen_dir / item["path"].name, _output_dir(item))
                if stored is not None:
                    record = {**_record(item, root, gen_dir, prof["name"]), "started": _now(), "finished": _now(),
                              "duration_s": 0.0, "status": "reused", "cache_key": keys[i].key, **stored}
                    notebooks_record[item["path"].stem] = record
                    save()
                    _print(f"[{i}/{n}] {display_path(item['path'], root)}: reused, inputs unchanged since it ran "
                           f"(it took {stored['executed_s']} s at {stored['executed_at']}; key {keys[i].key[:12]}; "
                           "--rerun executes it again)")
                    continue
            fresh.append((i, item))
        batch = fresh
        if not batch:
            continue
        threads = max(1, available_cpus() // len(batch)) if len(batch) > 1 else None
        records = {}
        for i, item in batch:
            nb_path = item["path"]
            shown = {k: plain_value(v) for k, v in item["params"].items()}
            together = ("  side by side with " + ", ".join(o["path"].stem for j, o in batch if j != i)
                        + f" ({threads} thread{'s' if threads > 1 else ''} each)") if threads else ""
            _print(f"[{i}/{n}] {display_path(nb_path, root)} -> {display_path(gen_dir / nb_path.name, root)}"
                   + (f"  ({', '.join(f'{k}={v!r}' for k, v in shown.items())})" if shown else "") + together)
            records[i] = {
                **_record(item, root, gen_dir, prof["name"]),
                "threads": threads,
                "started": _now(),
            }
        jobs = [dict(notebook=item["path"], params=item["params"], out_path=gen_dir / item["path"].name,
                     kernel=kernel, cwd=root, log_output=log_output, progress=progress and threads is None)
                for _, item in batch]
        failure = None
        for (i, item), (seconds, exc) in zip(batch, _execute(jobs, threads)):
            record = records[i]
            record.update(finished=_now(), duration_s=round(seconds, 2))
            if exc is None:
                record["status"] = "ok"
                if i in keys:
                    chapter_cache.store(root, keys[i], gen_dir / item["path"].name, _output_dir(item),
                                        seconds=record["duration_s"])
                    record["cache_key"] = keys[i].key
                _print(f"[{i}/{n}] done in {record['duration_s']:.1f} s")
            else:
                record.update(status="failed", error=str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
                _print(f"[{i}/{n}] FAILED after {record['duration_s']:.1f} s; the book was not rebuilt.")
                failure = failure or (item["path"], exc)
            notebooks_record[item["path"].stem] = record
            save()
        if failure is not None:
            run.update(finished=_now(), status=f"failed in {failure[0].name}")
            save()
            raise failure[1]

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
