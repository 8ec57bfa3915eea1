"""Reference NODDI-Watson signal in numpy, by quadrature, for the synthetic phantoms.

Kept independent of :mod:`pigment_connect.physics` on purpose: the phantom's ground truth must
not share code with the models it is used to test.

Model (Zhang et al. 2012, NODDI)::

    S/S0 = (1 - fiso) [ndi E_ic + (1 - ndi) E_ec] + fiso exp(-b d_iso)
    E_ic = ∫ W(n; κ, μ) exp(-b d∥ (g·n)²) dn                 (sticks, Watson-dispersed)
    E_ec = exp(-b gᵀ D_ec g),  D_ec = d⊥ I + (d∥ - d⊥) ⟨n nᵀ⟩_W,  d⊥ = d∥ (1 - ndi)   (tortuosity)
    ODI  = (2/π) arctan(1/κ)

The Watson average is computed with a Gauss–Legendre rule in cos α (α: angle to μ) times a
periodic trapezoid rule in the azimuth, which converges spectrally for these smooth integrands.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "D_PARALLEL",
    "D_ISO",
    "kappa_from_odi",
    "odi_from_kappa",
    "watson_tau",
    "watson_stick_signal",
    "noddi_signal",
    "noddi_tensor",
]

D_PARALLEL = 1.7e-3
"""mm²/s, intra-axonal parallel diffusivity (NODDI default)."""
D_ISO = 3.0e-3
"""mm²/s, free water diffusivity (NODDI default)."""

_N_POLAR = 128
_N_AZIMUTH = 128


def kappa_from_odi(odi):
    """Watson concentration κ for an orientation dispersion index ODI in (0, 1)."""
    odi = np.asarray(odi, dtype=np.float64)
    return 1.0 / np.tan(odi * np.pi / 2.0)


def odi_from_kappa(kappa):
    """ODI = (2/π) arctan(1/κ)."""
    return 2.0 / np.pi * np.arctan(1.0 / np.asarray(kappa, dtype=np.float64))


def _watson_nodes(kappa: float):
    u, w = np.polynomial.legendre.leggauss(_N_POLAR)  # u = cos α on [-1, 1]
    # exp(κ(u² - 1)) avoids overflow; the constant cancels in the normalisation
    dens = w * np.exp(kappa * (u * u - 1.0))
    return u, dens / dens.sum()


def watson_tau(kappa: float) -> float:
    """⟨(n·μ)²⟩ under a Watson distribution with concentration κ (1/3 for κ=0, → 1 as κ → ∞)."""
    u, dens = _watson_nodes(float(kappa))
    return float(np.sum(dens * u * u))


def watson_stick_signal(b: float, kappa: float, cos_theta, d_par: float = D_PARALLEL) -> np.ndarray:
    """Signal of Watson-dispersed sticks for gradients at angle θ to the mean orientation.

    Parameters
    ----------
    b : float, s/mm²
    kappa : float, Watson concentration
    cos_theta : array of float, |g·μ| values in [0, 1]
    d_par : float, mm²/s

    Returns
    -------
    array of float, same shape as ``cos_theta``: E_ic in [0, 1].
    """
    t = np.clip(np.abs(np.asarray(cos_theta, dtype=np.float64)), 0.0, 1.0)
    u, dens = _watson_nodes(float(kappa))
    phi = 2.0 * np.pi * np.arange(_N_AZIMUTH) / _N_AZIMUTH
    sin_a = np.sqrt(1.0 - u * u)
    flat = t.ravel()
    sin_t = np.sqrt(1.0 - flat * flat)
    out = np.empty_like(flat)
    for start in range(0, flat.size, 256):
        st = sin_t[start : start + 256, None, None]
        ct = flat[start : start + 256, None, None]
        dot = st * sin_a[None, :, None] * np.cos(phi)[None, None, :] + ct * u[None, :, None]
        e = np.exp(-b * d_par * dot * dot).mean(axis=2)
        out[start : start + 256] = e @ dens
    return out.reshape(t.shape)


class _StickTable:
    """Tabulated E_ic(|g·μ|) per (b, κ): linear interpolation on 2049 nodes (error < 1e-7)."""

    def __init__(self) -> None:
        self._grid = np.linspace(0.0, 1.0, 2049)
        self._tables: dict[tuple[float, float], np.ndarray] = {}

    def __call__(self, b: float, kappa: float, cos_theta: np.ndarray) -> np.ndarray:
        key = (round(float(b), 3), round(float(kappa), 9))
        if key not in self._tables:
            self._tables[key] = watson_stick_signal(key[0], key[1], self._grid)
        return np.interp(np.abs(cos_theta), self._grid, self._tables[key])


_STICKS = _StickTable()


def noddi_signal(bvals, bvecs, mu, ndi, kappa, fiso, *, d_par: float = D_PARALLEL, d_iso: float = D_ISO) -> np.ndarray:
    """NODDI-Watson signal attenuation S/S0 for many voxels sharing one κ.

    Parameters
    ----------
    bvals : (N,) s/mm²
    bvecs : (N, 3) unit (rows of b=0 volumes may be zero)
    mu : (V, 3) unit mean orientations, same frame as ``bvecs``
    ndi, fiso : (V,) volume fractions in [0, 1]
    kappa : float, Watson concentration shared by the V voxels

    Returns
    -------
    (V, N) float64
    """
    bvals = np.asarray(bvals, dtype=np.float64)
    bvecs = np.asarray(bvecs, dtype=np.float64)
    mu = np.asarray(mu, dtype=np.float64).reshape(-1, 3)
    ndi = np.asarray(ndi, dtype=np.float64).reshape(-1, 1)
    fiso = np.asarray(fiso, dtype=np.float64).reshape(-1, 1)
    cos = mu @ bvecs.T  # (V, N)
    e_ic = np.empty_like(cos)
    for b in np.unique(bvals):
        cols = bvals == b
        e_ic[:, cols] = _STICKS(b, kappa, cos[:, cols]) if b > 0 else 1.0
    tau = watson_tau(kappa)
    d_perp = d_par * (1.0 - ndi)
    proj = tau * cos**2 + 0.5 * (1.0 - tau) * (1.0 - cos**2)  # gᵀ⟨nnᵀ⟩g
    e_ec = np.exp(-bvals * (d_perp + (d_par - d_perp) * proj))
    e_iso = np.exp(-bvals * d_iso)
    return (1.0 - fiso) * (ndi * e_ic + (1.0 - ndi) * e_ec) + fiso * e_iso


def noddi_tensor(mu, ndi, kappa, fiso, *, d_par: float = D_PARALLEL, d_iso: float = D_ISO) -> np.ndarray:
    """Apparent diffusion tensor of the NODDI tissue in the b → 0 limit (its second cumulant).

    This is the protocol-independent "true" DTI tensor of the phantom: a DTI fit at finite b
    reads it with the kurtosis bias (FA a little high, MD a little low at b=1000).

    Returns
    -------
    (V, 3, 3) float64, mm²/s
    """
    mu = np.asarray(mu, dtype=np.float64).reshape(-1, 3)
    ndi = np.asarray(ndi, dtype=np.float64).reshape(-1, 1, 1)
    fiso = np.asarray(fiso, dtype=np.float64).reshape(-1, 1, 1)
    tau = watson_tau(kappa)
    mm = mu[:, :, None] * mu[:, None, :]
    eye = np.eye(3)[None]
    scatter = tau * mm + 0.5 * (1.0 - tau) * (eye - mm)  # ⟨n nᵀ⟩
    d_perp = d_par * (1.0 - ndi)
    d_ic = d_par * scatter
    d_ec = d_perp * eye + (d_par - d_perp) * scatter
    return (1.0 - fiso) * (ndi * d_ic + (1.0 - ndi) * d_ec) + fiso * d_iso * eye
