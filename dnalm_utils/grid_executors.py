"""Where the runs of a grid execute: serially here, in local processes, or on a Dask cluster.

A grid of fine-tuning runs (``finetune_runs.run_grid(executor=...)``, ``nextkmer.run_benchmark``,
``biotasks.run_task``) is hundreds of independent runs in the paper profile. :func:`make_executor` turns one
text setting into a ``concurrent.futures.Executor`` (or None, the serial default) that runs one run per worker:

* ``""`` or ``"serial"`` -- None: every run in this process, one after another (the default);
* ``"processes:N"`` -- N local worker processes (``ProcessPoolExecutor``, spawn start method);
* ``"dask:N"`` -- a local Dask cluster (``distributed.LocalCluster``) of N single-threaded worker processes;
* ``"dask:tcp://host:port"`` -- the workers of an existing Dask scheduler (e.g. started by dask-jobqueue on
  SLURM, ``dask scheduler`` / ``dask worker`` by hand, or dask-cuda's ``LocalCUDACluster``).

Any other ``concurrent.futures.Executor`` works too (e.g. ``submitit.AutoExecutor`` for SLURM); the runs share
the run cache (``cache_dir`` on a filesystem every worker reaches), so a finished run is never trained twice.

Local workers are started with the spawn method: they import ``dnalm_utils`` afresh (a few seconds each, paid
once per worker), and a script (not a notebook) that uses them must keep its top-level code under
``if __name__ == "__main__":``. Each run is sent its splits as plain lists and arrays.

Threads: a local worker uses ``torch_threads`` torch threads (default: the CPUs this process may use divided
by N, at least 1), so N workers share the machine instead of oversubscribing it; a run's numbers depend only
on its seed and, on CPU, on its thread count (the order of float reductions), so a parallel grid equals the
serial one exactly when both use the same number of torch threads.

GPUs: each worker should see exactly one GPU, and ``device="auto"`` then picks it. Local workers
(``processes:N`` and ``dask:N``) are given the visible GPUs round-robin through ``CUDA_VISIBLE_DEVICES``
(worker i sees GPU i mod the number of GPUs; so N = the number of GPUs gives one each). For a remote cluster,
start one worker per GPU with ``CUDA_VISIBLE_DEVICES`` set per worker (dask-cuda's ``LocalCUDACluster`` or
``dask cuda worker`` do exactly that) and a single thread per worker.
"""

from __future__ import annotations

import contextlib
import os
import re
from typing import Iterator, Sequence

from .errors import ParameterError

FORMS = ('"" or "serial"', '"processes:N"', '"dask:N"', '"dask:tcp://host:port"')


def parse_spec(spec) -> tuple[str, object]:
    """("serial", None), ("processes", N), ("dask", N) or ("dask-address", "tcp://host:port") for an executor
    setting (see the module docstring); anything else raises ParameterError naming the accepted forms."""
    text = "" if spec is None else str(spec).strip()
    if text.lower() in ("", "serial"):
        return "serial", None
    m = re.fullmatch(r"(processes|dask):\s*(\d+)", text, flags=re.IGNORECASE)
    if m:
        n = int(m.group(2))
        if n < 1:
            raise ParameterError(f"executor={spec!r}: the number of workers must be at least 1, e.g. "
                                 f"'{m.group(1).lower()}:2'.")
        return m.group(1).lower(), n
    m = re.fullmatch(r"dask:\s*([a-z][a-z0-9+.-]*://\S+)", text, flags=re.IGNORECASE)
    if m:
        return "dask-address", m.group(1)
    raise ParameterError(f"executor={spec!r} is not an executor setting; use one of {', '.join(FORMS)} "
                         "(N a number of workers, tcp://host:port the address of a running Dask scheduler).")


def describe_executor(spec) -> str:
    """One phrase for a page on where the runs of ``spec`` execute, e.g. "serial, in this process",
    "2 local worker processes", "2 local Dask workers", "the Dask cluster at tcp://host:8786"."""
    kind, arg = parse_spec(spec)
    if kind == "serial":
        return "serial, in this process"
    if kind == "processes":
        return f"{arg} local worker process{'es' if arg != 1 else ''}"
    if kind == "dask":
        return f"{arg} local Dask worker{'s' if arg != 1 else ''}"
    return f"the Dask cluster at {arg}"


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the platform has one), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def visible_gpus() -> list[str]:
    """The CUDA devices this process may use, as ``CUDA_VISIBLE_DEVICES`` entries: that variable's entries when it
    is set, else "0" .. str(torch.cuda.device_count() - 1); [] without CUDA."""
    text = os.environ.get("CUDA_VISIBLE_DEVICES")
    if text is not None:
        return [g.strip() for g in text.split(",") if g.strip() and g.strip() != "-1"]
    try:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    except Exception:  # noqa: BLE001 - no torch / no driver: no GPU
        return []


#: Environment variables that cap the threads of OpenMP (torch), MKL and OpenBLAS in a process and its children.
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def configure_worker(torch_threads: int, gpu: str | None = None) -> None:
    """Set up a worker process before its first run: ``torch_threads`` torch (and OpenMP/MKL) threads and, when
    ``gpu`` is given, ``CUDA_VISIBLE_DEVICES=gpu`` (must run before the worker touches CUDA)."""
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
    for var in THREAD_ENV_VARS:
        os.environ[var] = str(torch_threads)
    import torch

    torch.set_num_threads(int(torch_threads))


def init_process_worker(counter, gpus: Sequence[str], torch_threads: int) -> None:
    """ProcessPoolExecutor initializer: worker i (in start order, from the shared ``counter``) gets GPU
    gpus[i mod len(gpus)] when there are GPUs."""
    gpu = None
    if gpus:
        with counter.get_lock():
            index = counter.value
            counter.value += 1
        gpu = gpus[index % len(gpus)]
    configure_worker(torch_threads, gpu)


def _threads(n_workers: int, torch_threads: int | None) -> int:
    if torch_threads is None:
        return max(1, available_cpus() // n_workers)
    if isinstance(torch_threads, bool) or not isinstance(torch_threads, int) or torch_threads < 1:
        raise ParameterError(f"torch_threads={torch_threads!r}: pass a positive number of threads per worker, "
                             "or None for the CPUs divided by the number of workers.")
    return torch_threads


@contextlib.contextmanager
def make_executor(spec, *, torch_threads: int | None = None) -> Iterator:
    """Context manager yielding the executor of ``spec`` (see the module docstring) for
    ``run_grid(executor=...)``, or None for the serial default; workers and clusters it started are shut down
    on exit. ``torch_threads``: torch threads per local worker (default: available CPUs // N, at least 1);
    not applied to an existing cluster, whose workers keep their own setting.

    Example::

        with make_executor("dask:2") as ex:
            runs = run_grid(sources, train, valid, test, num_labels=2, seeds=[0, 1], executor=ex, cache_dir=...)
    """
    kind, arg = parse_spec(spec)
    if kind == "serial":
        yield None
        return
    if kind == "processes":
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        threads = _threads(arg, torch_threads)
        ctx = multiprocessing.get_context("spawn")
        counter = ctx.Value("i", 0)
        with ProcessPoolExecutor(max_workers=arg, mp_context=ctx, initializer=init_process_worker,
                                 initargs=(counter, visible_gpus(), threads)) as ex:
            yield ex
        return
    import logging

    from distributed import Client, LocalCluster

    if kind == "dask":
        threads = _threads(arg, torch_threads)
        with LocalCluster(n_workers=arg, threads_per_worker=1, processes=True, dashboard_address=None,
                          silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
            client.wait_for_workers(arg)
            gpus = visible_gpus()
            for i, address in enumerate(sorted(client.scheduler_info()["workers"])):
                client.run(configure_worker, threads, gpus[i % len(gpus)] if gpus else None, workers=[address])
            ex = client.get_executor()
            try:
                yield ex
            finally:
                ex.shutdown(wait=False)
        return
    with Client(arg) as client:
        ex = client.get_executor()
        try:
            yield ex
        finally:
            ex.shutdown(wait=False)


__all__ = ["FORMS", "parse_spec", "describe_executor", "available_cpus", "visible_gpus", "configure_worker", "init_process_worker",
           "make_executor"]
