"""The one place that sets how many threads numba's and torch's kernels use."""

from __future__ import annotations

__all__ = ["set_threads"]


def set_threads(n_threads: int) -> None:
    """numba's and torch's intra-op thread counts to ``n_threads``, at least 1 and at most numba's
    pool size (the number of cores unless ``NUMBA_NUM_THREADS`` says otherwise)."""
    import numba
    import torch

    n = max(1, min(int(n_threads), numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(n)
    torch.set_num_threads(n)
