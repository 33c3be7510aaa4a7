"""Suite-wide set-up. The suite runs on two pytest-xdist workers (``-n 2 --dist loadfile --no-loadscope-reorder``
in pyproject's addopts; ``PYTEST_ARGS="-n 0"`` runs it in one process). Each worker, and every notebook kernel it
starts, gets one torch / OpenMP thread so that two workers share two cores without oversubscription. The two
longest files (the smoke book, and the chapters re-run on other model sets) are scheduled first, one per worker,
while the short tests fill in around them; a file stays on one worker, so its module fixtures are built once."""

from __future__ import annotations

import os

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
FIRST = ("test_notebooks.py", "test_notebook_replicas.py")  # the longest files, started first


def pytest_configure(config):
    if os.environ.get("PYTEST_XDIST_WORKER"):
        for var in THREAD_VARIABLES:
            os.environ[var] = "1"
        import torch

        torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(FIRST)))  # stable: otherwise unchanged
