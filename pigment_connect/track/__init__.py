"""Streamline tractography (numba kernels in ``_kernels``, random streams in ``_rng``, Python API in ``tracker``)."""

from .tracker import Tracker, interface_mask, seeds_from_mask

__all__ = ["Tracker", "seeds_from_mask", "interface_mask"]
