"""The one place that sets how many threads numba's and torch's kernels use."""

from __future__ import annotations

import os

__all__ = ["set_threads", "thread_share"]


def set_threads(n_threads: int) -> None:
    """numba's and torch's intra-op thread counts to ``n_threads``, at least 1 and at most numba's
    pool size (the number of cores unless ``NUMBA_NUM_THREADS`` says otherwise)."""
    import numba
    import torch

    n = max(1, min(int(n_threads), numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(n)
    torch.set_num_threads(n)


def thread_share(n_threads: int | None, n_workers: int) -> int:
    """Threads each of ``n_workers`` parallel subjects may use out of a budget of ``n_threads``
    (default: every core), at least one: 2 jobs on 2 cores get 1 thread each, not 2 each."""
    budget = n_threads if n_threads is not None else (os.cpu_count() or 1)
    return max(1, int(budget) // max(1, int(n_workers)))
