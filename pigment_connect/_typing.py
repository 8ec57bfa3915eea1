"""Type aliases shared by hints and docstrings, one per domain word."""

from __future__ import annotations

import os
from typing import TypeAlias, Union

import numpy as np
import numpy.typing as npt

PathLike: TypeAlias = Union[str, "os.PathLike[str]"]
ArrayF32: TypeAlias = npt.NDArray[np.float32]
ArrayF64: TypeAlias = npt.NDArray[np.float64]
Affine: TypeAlias = npt.NDArray[np.float64]
"""(4, 4) float64 voxel-index → RAS+ mm transform (nibabel convention, voxel centres at integers)."""
BoolMask: TypeAlias = npt.NDArray[np.bool_]
RandomState: TypeAlias = Union[int, np.random.Generator, None]
