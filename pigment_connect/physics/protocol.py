"""A gradient table as torch tensors on a device, with the design matrices the models share."""

from __future__ import annotations

import numpy as np
import torch


__all__ = ["default_device", "tensor_design", "kurtosis_design", "hemisphere_directions", "TENSOR_ORDER", "KURTOSIS_ORDER"]

TENSOR_ORDER = ("xx", "yy", "zz", "xy", "xz", "yz")
"""Order of the six unique diffusion tensor elements (mm²/s) everywhere in the package."""

KURTOSIS_ORDER = (
    "xxxx", "yyyy", "zzzz", "xxxy", "xxxz", "xyyy", "yyyz", "xzzz", "yzzz",
    "xxyy", "xxzz", "yyzz", "xxyz", "xyyz", "xyzz",
)
"""Order of the 15 unique kurtosis tensor elements (DIPY's order; dimensionless)."""

_KURTOSIS_INDEX = tuple(tuple("xyz".index(c) for c in name) for name in KURTOSIS_ORDER)
_KURTOSIS_MULT = (1, 1, 1, 4, 4, 4, 4, 4, 4, 6, 6, 6, 12, 12, 12)


def default_device() -> torch.device:
    """CUDA when available, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def tensor_design(bvecs: torch.Tensor) -> torch.Tensor:
    """(N, 6) g-products so that gᵀDg = design @ D6 (off-diagonals counted twice)."""
    x, y, z = bvecs.unbind(-1)
    return torch.stack([x * x, y * y, z * z, 2 * x * y, 2 * x * z, 2 * y * z], dim=-1)


def kurtosis_design(bvecs: torch.Tensor) -> torch.Tensor:
    """(N, 15) g-products with multiplicities so that Σ W_ijkl g_i g_j g_k g_l = design @ W15."""
    cols = []
    for (i, j, k, l), mult in zip(_KURTOSIS_INDEX, _KURTOSIS_MULT):
        cols.append(mult * bvecs[..., i] * bvecs[..., j] * bvecs[..., k] * bvecs[..., l])
    return torch.stack(cols, dim=-1)



def hemisphere_directions(n: int, twist: float = 0.0) -> np.ndarray:
    """``n`` unit vectors spread evenly over the upper half sphere (a Fibonacci spiral; with
    antipodal symmetry they cover the whole sphere), rotated by ``twist`` radians about z so that
    two sets interleave. Returns (n, 3)."""
    i = np.arange(n) + 0.5
    z = 1.0 - i / n  # (0, 1]: upper half sphere, antipodal symmetry covers the rest
    phi = np.pi * (3.0 - np.sqrt(5.0)) * i + twist
    r = np.sqrt(1.0 - z * z)
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)
