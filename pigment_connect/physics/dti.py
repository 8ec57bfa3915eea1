"""Diffusion tensor signal model and its maps.

.. math:: S(b, g) = S_0 \\exp(-b\\, g^T D g)

``D`` is given by its six unique elements in :data:`~.protocol.TENSOR_ORDER` (mm²/s). For
optimisation, :func:`cholesky_to_tensor` maps six unconstrained numbers to a positive
semi-definite ``D = L Lᵀ`` (diagonal of ``L`` through ``exp``), so every iterate is physical.
"""

from __future__ import annotations

import torch

from .protocol import tensor_design

__all__ = ["dti_signal", "cholesky_to_tensor", "tensor_to_cholesky", "tensor_from_six", "six_from_tensor",
           "tensor_maps", "fractional_anisotropy"]

EVAL_FLOOR = 1e-12
"""Eigenvalues at or below this (mm²/s, 1e-9 of a brain diffusivity) are numerically zero."""

_CHOL_SCALE = 1e-3  # L is expressed in units of sqrt(1e-3 mm²/s) so parameters are O(1)


def tensor_from_six(six: torch.Tensor) -> torch.Tensor:
    """(..., 6) → (..., 3, 3) symmetric."""
    xx, yy, zz, xy, xz, yz = six.unbind(-1)
    return torch.stack([torch.stack([xx, xy, xz], -1), torch.stack([xy, yy, yz], -1),
                        torch.stack([xz, yz, zz], -1)], -2)


def six_from_tensor(mat: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) → (..., 6) in TENSOR_ORDER."""
    return torch.stack([mat[..., 0, 0], mat[..., 1, 1], mat[..., 2, 2], mat[..., 0, 1], mat[..., 0, 2],
                        mat[..., 1, 2]], -1)


def dti_signal(s0: torch.Tensor, tensor: torch.Tensor, bvals: torch.Tensor, bvecs: torch.Tensor) -> torch.Tensor:
    """Tensor-model signal.

    Parameters
    ----------
    s0 : (V,) b=0 signal.
    tensor : (V, 6) mm²/s, TENSOR_ORDER.
    bvals : (N,) s/mm². bvecs : (N, 3) unit.

    Returns
    -------
    (V, N) signal.
    """
    adc = tensor @ tensor_design(bvecs).T  # (V, N) apparent diffusivity gᵀDg
    return s0[..., None] * torch.exp(-bvals * adc)


def cholesky_to_tensor(chol: torch.Tensor) -> torch.Tensor:
    """(V, 6) unconstrained (log L11, log L22, log L33, L21, L31, L32) → (V, 6) PSD tensor, mm²/s."""
    l11, l22, l33 = torch.exp(chol[..., 0]), torch.exp(chol[..., 1]), torch.exp(chol[..., 2])
    l21, l31, l32 = chol[..., 3], chol[..., 4], chol[..., 5]
    xx = l11 * l11
    yy = l21 * l21 + l22 * l22
    zz = l31 * l31 + l32 * l32 + l33 * l33
    xy = l11 * l21
    xz = l11 * l31
    yz = l21 * l31 + l22 * l32
    return _CHOL_SCALE * torch.stack([xx, yy, zz, xy, xz, yz], -1)


def tensor_to_cholesky(tensor: torch.Tensor, *, floor: float = 1e-6) -> torch.Tensor:
    """Inverse of :func:`cholesky_to_tensor`; eigenvalues are first raised to ``floor`` mm²/s."""
    mat = tensor_from_six(tensor / _CHOL_SCALE)
    evals, evecs = torch.linalg.eigh(mat)
    evals = evals.clamp_min(floor / _CHOL_SCALE)
    mat = (evecs * evals[..., None, :]) @ evecs.transpose(-1, -2)
    low = torch.linalg.cholesky(mat)
    return torch.stack([torch.log(low[..., 0, 0]), torch.log(low[..., 1, 1]), torch.log(low[..., 2, 2]),
                        low[..., 1, 0], low[..., 2, 0], low[..., 2, 1]], -1)


def fractional_anisotropy(evals: torch.Tensor) -> torch.Tensor:
    """FA from (..., 3) eigenvalues; 0 where all are 0. Range 0 ≤ FA ≤ 1."""
    md = evals.mean(-1, keepdim=True)
    num = ((evals - md) ** 2).sum(-1)
    den = (evals**2).sum(-1)
    return torch.where(den > 0, torch.sqrt(1.5 * num / den.clamp_min(1e-30)), torch.zeros_like(den))


def tensor_maps(tensor: torch.Tensor) -> dict[str, torch.Tensor]:
    """Eigen-decomposition maps of (V, 6) tensors.

    Returns
    -------
    dict with ``evals`` (V, 3) descending (values ≤ :data:`EVAL_FLOOR` set to 0: negative ones as
    in DIPY, and round-off where the signal is constant, e.g. zero background), ``evecs`` (V, 3, 3)
    (columns match ``evals``), ``fa``, ``md``, ``ad``, ``rd`` (mm²/s) and ``evec1`` (V, 3).
    """
    mats = tensor_from_six(tensor)
    if mats.device.type != "cpu":
        # cuSOLVER's batched eigh fails on large batches of 3×3 matrices (CUSOLVER_STATUS_INTERNAL_ERROR
        # seen on an H100 with 10⁵ voxels; an OOM request of 126 GiB with 2.5·10⁵): the CPU solver is
        # fast for 3×3 and the copy is 72 bytes a voxel.
        evals, evecs = (t.to(mats.device) for t in torch.linalg.eigh(mats.cpu()))
    else:
        evals, evecs = torch.linalg.eigh(mats)
    evals = evals.flip(-1)
    evals = torch.where(evals > EVAL_FLOOR, evals, torch.zeros_like(evals))
    evecs = evecs.flip(-1)
    return {
        "evals": evals,
        "evecs": evecs,
        "fa": fractional_anisotropy(evals),
        "md": evals.mean(-1),
        "ad": evals[..., 0],
        "rd": evals[..., 1:].mean(-1),
        "evec1": evecs[..., :, 0],
    }
