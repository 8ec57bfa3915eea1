"""Diffusion kurtosis signal model and its maps.

.. math:: \\log S(b, g) = \\log S_0 - b\\, D(g) + \\tfrac{1}{6} b^2\\, \\bar{D}^2\\, W(g)

with the apparent diffusivity ``D(g) = gᵀDg`` (mm²/s), the mean diffusivity ``D̄ = tr(D)/3`` and
``W(g) = Σ W_ijkl g_i g_j g_k g_l`` from the 15 unique kurtosis tensor elements in
:data:`~.protocol.KURTOSIS_ORDER` (dimensionless, DIPY's order). The apparent kurtosis along a
unit direction n is ``K(n) = D̄² W(n) / D(n)²`` (Jensen et al. 2005; Tabesh et al. 2011).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .dti import tensor_maps
from .protocol import kurtosis_design, tensor_design

__all__ = ["dki_signal", "apparent_kurtosis", "kurtosis_maps", "hemisphere_quadrature", "MIN_KURTOSIS", "MAX_KURTOSIS"]

MIN_KURTOSIS = -3.0 / 7.0
"""Lower physical bound of kurtosis (Jensen & Helpern 2010); maps are clipped to it, as in DIPY."""
MAX_KURTOSIS = 10.0
"""Upper clip of kurtosis maps (DIPY's DKIFit default)."""


def dki_signal(s0: torch.Tensor, tensor: torch.Tensor, kurtosis: torch.Tensor, bvals: torch.Tensor,
               bvecs: torch.Tensor) -> torch.Tensor:
    """Kurtosis-model signal.

    Parameters
    ----------
    s0 : (V,). tensor : (V, 6) mm²/s. kurtosis : (V, 15) dimensionless.
    bvals : (N,) s/mm². bvecs : (N, 3) unit.

    Returns
    -------
    (V, N) signal.
    """
    adc = tensor @ tensor_design(bvecs).T
    akc = kurtosis @ kurtosis_design(bvecs).T
    md = tensor[..., :3].mean(-1, keepdim=True)
    return s0[..., None] * torch.exp(-bvals * adc + bvals**2 * md**2 * akc / 6.0)


def apparent_kurtosis(tensor: torch.Tensor, kurtosis: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """K(n) for unit directions: (M, 3) shared, or (V, M, 3) per voxel → (V, M).

    Where D(n) ≤ 0 (a non-physical tensor) K is 0.
    """
    md = tensor[..., :3].mean(-1, keepdim=True)
    if directions.dim() == 2:
        adc = tensor @ tensor_design(directions).T
        akc = kurtosis @ kurtosis_design(directions).T
    else:
        adc = (tensor_design(directions) @ tensor[..., None])[..., 0]
        akc = (kurtosis_design(directions) @ kurtosis[..., None])[..., 0]
    ok = adc > 0
    return torch.where(ok, md**2 * akc / torch.where(ok, adc, torch.ones_like(adc)) ** 2, torch.zeros_like(adc))


def hemisphere_quadrature(n_polar: int = 20, n_azimuth: int = 40, *, dtype: torch.dtype = torch.float64,
                          device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Product quadrature of the upper hemisphere for antipodally symmetric functions.

    Gauss–Legendre in cos θ ∈ [0, 1] times the trapezoid rule in φ: exponentially convergent for
    smooth integrands such as K(n). Returns directions (M, 3) and weights (M,) summing to 1, so
    ``f(directions) @ weights`` is the mean of f over the sphere.
    """
    x, w = np.polynomial.legendre.leggauss(n_polar)
    u, w = 0.5 * (x + 1.0), 0.5 * w
    phi = np.arange(n_azimuth) * (2.0 * math.pi / n_azimuth)
    uu, pp = np.meshgrid(u, phi, indexing="ij")
    s = np.sqrt(1.0 - uu**2)
    dirs = np.stack([s * np.cos(pp), s * np.sin(pp), uu], -1).reshape(-1, 3)
    weights = np.repeat(w, n_azimuth) / n_azimuth
    as_t = lambda a: torch.as_tensor(a, dtype=dtype, device=device)  # noqa: E731
    return as_t(dirs), as_t(weights)


def perpendicular_circle(evec1: torch.Tensor, n: int) -> torch.Tensor:
    """(V, n, 3) unit directions evenly spaced on the half circle perpendicular to evec1."""
    helper = torch.zeros_like(evec1)
    helper[..., 0] = 1.0
    near_x = evec1[..., 0].abs() > 0.9
    helper[near_x] = torch.tensor([0.0, 1.0, 0.0], dtype=evec1.dtype, device=evec1.device)
    u = torch.linalg.cross(evec1, helper)
    u = u / u.norm(dim=-1, keepdim=True)
    v = torch.linalg.cross(evec1, u)
    theta = torch.arange(n, dtype=evec1.dtype, device=evec1.device) * (math.pi / n)
    return torch.cos(theta)[None, :, None] * u[:, None, :] + torch.sin(theta)[None, :, None] * v[:, None, :]


def kurtosis_maps(tensor: torch.Tensor, kurtosis: torch.Tensor, *, n_polar: int = 20, n_azimuth: int = 40,
                  n_circle: int = 32) -> dict[str, torch.Tensor]:
    """Tensor maps of the DKI tensor plus kurtosis maps, each (V,).

    ``mk``: mean of K(n) over the sphere (:func:`hemisphere_quadrature`; the integral Tabesh et
    al. evaluate in closed form, accurate here to < 1e-6). ``ak``: K along the principal eigenvector. ``rk``: mean of K(n)
    over the circle perpendicular to it (``n_circle`` directions). ``mkt``: mean of W(n) over the
    sphere (Hansen et al. 2013). ``kfa``: kurtosis fractional anisotropy (Glenn et al. 2015).
    mk, ak, rk are clipped to [MIN_KURTOSIS, MAX_KURTOSIS] as in DIPY.
    """
    out = tensor_maps(tensor)
    sphere, weights = hemisphere_quadrature(n_polar, n_azimuth, dtype=tensor.dtype, device=tensor.device)
    mk = apparent_kurtosis(tensor, kurtosis, sphere) @ weights
    ak = apparent_kurtosis(tensor, kurtosis, out["evec1"][:, None, :])[:, 0]
    rk = apparent_kurtosis(tensor, kurtosis, perpendicular_circle(out["evec1"], n_circle)).mean(-1)
    valid = (out["evals"] > 0).all(-1)
    for name, value in (("mk", mk), ("ak", ak), ("rk", rk)):
        out[name] = torch.where(valid, value.clamp(MIN_KURTOSIS, MAX_KURTOSIS), torch.zeros_like(value))
    w = kurtosis
    mkt = (w[:, 0] + w[:, 1] + w[:, 2] + 2 * (w[:, 9] + w[:, 10] + w[:, 11])) / 5.0
    m3 = mkt / 3.0
    dev = ((w[:, :3] - mkt[:, None]) ** 2).sum(-1) + 4 * (w[:, 3:9] ** 2).sum(-1) \
        + 6 * ((w[:, 9:12] - m3[:, None]) ** 2).sum(-1) + 12 * (w[:, 12:15] ** 2).sum(-1)
    norm = (w[:, :3] ** 2).sum(-1) + 4 * (w[:, 3:9] ** 2).sum(-1) + 6 * (w[:, 9:12] ** 2).sum(-1) \
        + 12 * (w[:, 12:15] ** 2).sum(-1)
    ok = (norm > 0) & (mkt > 1e-8)
    out["mkt"] = mkt
    out["kfa"] = torch.where(ok, torch.sqrt(dev / torch.where(ok, norm, torch.ones_like(norm))), torch.zeros_like(norm))
    return out
