"""pigment_connect: diffusion MRI to network statistics, sparse scans included.

Stages (one sub-package each, one data type handed from each to the next)::

    io → fit → track → connectome → graph;   pipeline orchestrates them per subject.
"""

from importlib.metadata import PackageNotFoundError, version

from ._numba_cache import configure_numba_cache

configure_numba_cache()  # before any kernel module compiles: numba's cache lives outside the package

from .io import Connectome, DiffusionData, GradientTable, MicrostructureMaps, Parcellation, Tractogram, load_dwi

try:
    __version__ = version("pigment-connect")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

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
