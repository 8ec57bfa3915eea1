"""pigment_connect: diffusion MRI to network statistics, sparse scans included.

Stages (one sub-package each, one data type handed from each to the next)::

    io → fit → track → connectome → graph;   pipeline orchestrates them per subject.
"""

from ._numba_cache import configure_numba_cache

configure_numba_cache()  # before any kernel module compiles: numba's cache lives outside the package

from .io import Connectome, DiffusionData, GradientTable, MicrostructureMaps, Parcellation, Tractogram, load_dwi

from ._version import __version__

__all__ = [
    "__version__",
    "GradientTable",
    "DiffusionData",
    "load_dwi",
    "MicrostructureMaps",
    "Tractogram",
    "Parcellation",
    "Connectome",
]
