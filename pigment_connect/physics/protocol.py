"""A gradient table as torch tensors on a device, with the design matrices the models share."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..io.gradients import GradientTable

__all__ = ["Protocol", "default_device", "tensor_design", "kurtosis_design", "TENSOR_ORDER", "KURTOSIS_ORDER"]

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


@dataclass(frozen=True, eq=False)
class Protocol:
    """b-values (s/mm²) and unit b-vectors of a gradient table as tensors on one device/dtype.

    Attributes
    ----------
    bvals : (N,) tensor, s/mm²
    bvecs : (N, 3) tensor, unit (zero for b=0), image-axis frame
    b0s : (N,) bool tensor
    """

    bvals: torch.Tensor
    bvecs: torch.Tensor
    b0s: torch.Tensor

    @classmethod
    def from_gtab(cls, gtab: GradientTable, *, device: torch.device | str | None = None,
                  dtype: torch.dtype = torch.float32) -> Protocol:
        device = torch.device(device) if device is not None else default_device()
        bvals = torch.as_tensor(np.asarray(gtab.bvals, dtype=np.float64), dtype=dtype, device=device)
        bvecs = torch.as_tensor(np.asarray(gtab.bvecs, dtype=np.float64), dtype=dtype, device=device)
        b0s = torch.as_tensor(np.asarray(gtab.b0s_mask), device=device)
        return cls(bvals, bvecs, b0s)

    @property
    def device(self) -> torch.device:
        return self.bvals.device

    @property
    def dtype(self) -> torch.dtype:
        return self.bvals.dtype

    def __len__(self) -> int:
        return int(self.bvals.shape[0])
