"""Data types handed between stages, and their validated file formats."""

from .connectome import Connectome
from .dwi import DiffusionData, compute_brain_mask, load_dwi
from .gradients import GradientTable
from .maps import MicrostructureMaps
from .parcellation import Parcellation
from .tractogram import Tractogram

__all__ = [
    "GradientTable",
    "DiffusionData",
    "load_dwi",
    "compute_brain_mask",
    "MicrostructureMaps",
    "Tractogram",
    "Parcellation",
    "Connectome",
]
