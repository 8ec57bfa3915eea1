"""Streamline tractography (numba kernels in ``_kernels``, Python API in ``tracker``)."""

from .tracker import Tracker, seeds_from_mask

__all__ = ["Tracker", "seeds_from_mask"]
