"""Suite-wide set-up. The suite runs on two pytest-xdist workers (``-n 2 --dist loadgroup`` in pyproject's
addopts; ``PYTEST_ARGS="-n 0"`` runs it in one process): each worker, and every notebook kernel it starts, gets
one torch / OpenMP thread so that two workers share two cores without oversubscription, and the tests that
build or re-run the smoke book (``xdist_group`` markers in test_notebooks.py) are scheduled first so that the
two long groups run side by side while the short tests fill in around them."""

from __future__ import annotations

import os

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def pytest_configure(config):
    if os.environ.get("PYTEST_XDIST_WORKER"):
        for var in THREAD_VARIABLES:
            os.environ[var] = "1"
        import torch

        torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: 0 if item.get_closest_marker("xdist_group") else 1)  # stable: otherwise unchanged
