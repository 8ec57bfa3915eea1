"""NODDI-Watson signal model (Zhang et al. 2012).

.. math::

    S/S_0 = (1 - f_{iso})\\,[\\nu\\, E_{ic} + (1 - \\nu)\\, E_{ec}] + f_{iso}\\, e^{-b d_{iso}}

* Intra-neurite ``E_ic``: sticks (axial diffusivity ``d∥``) with orientations drawn from a
  Watson distribution of mean ``μ`` and concentration ``κ``, ``ODI = (2/π) arctan(1/κ)``.
* Extra-neurite ``E_ec``: the Watson average of a zeppelin with tortuosity-coupled radial
  diffusivity ``d⊥ = d∥ (1 − ν)``; averaging a Gaussian compartment over orientations gives a
  cylindrically symmetric tensor with axial ``d⊥ + (d∥ − d⊥) τ`` and radial
  ``d⊥ + (d∥ − d⊥)(1 − τ)/2``, where ``τ = ⟨(μ·n)²⟩``.
* Free water ``f_iso`` with isotropic diffusivity ``d_iso``.

The Watson-dispersed stick is evaluated exactly by the Funk–Hecke theorem: both the stick
response ``exp(-β t²)`` (``β = b d∥``) and the Watson density ``∝ exp(κ t²)`` are expanded in
even Legendre polynomials, whose coefficients are computed by Gauss–Legendre quadrature, and

.. math:: E_{ic}(\\cos\\alpha) = \\sum_{l\\ \\mathrm{even}} \\tfrac{2l+1}{2}\\, \\hat k_l(\\beta)\\,
          \\frac{\\hat w_l(\\kappa)}{\\hat w_0(\\kappa)}\\, P_l(\\cos\\alpha)

with ``cos α = g·μ``. For speed the even-Legendre series is re-expressed exactly in Chebyshev
polynomials of ``2cos²α − 1`` (one matrix product per batch) and summed by Clenshaw's
recurrence, which is stable in float32. The stick coefficients decay factorially in ``l``; the series is truncated
where they fall below 1e-9 for the largest ``β`` given (see :func:`legendre_order`), which keeps
the model accurate to < 1e-7 (tested against direct quadrature) and differentiable everywhere.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

__all__ = [
    "D_PAR", "D_ISO", "KAPPA_MAX",
    "kappa_from_odi", "odi_from_kappa", "watson_tau", "watson_stick_signal", "noddi_signal", "legendre_order",
    "stick_coefficients", "noddi_compartments", "watson_terms", "dispersed_zeppelin",
]

D_PAR = 1.7e-3
"""Intra-neurite axial diffusivity, mm²/s (NODDI default)."""
D_ISO = 3.0e-3
"""Free-water diffusivity, mm²/s (NODDI default)."""
KAPPA_MAX = 128.0
"""Largest Watson concentration handled accurately (ODI ≥ 0.005)."""

_N_QUAD = 160  # Gauss–Legendre nodes on [0, 1]: resolves exp(κ(t² − 1)) for κ ≤ KAPPA_MAX


def kappa_from_odi(odi: torch.Tensor) -> torch.Tensor:
    """Watson concentration κ = cot(π·ODI/2) (ODI in (0, 1])."""
    return 1.0 / torch.tan(0.5 * math.pi * odi)


def odi_from_kappa(kappa: torch.Tensor) -> torch.Tensor:
    """ODI = (2/π) arctan(1/κ)."""
    return (2.0 / math.pi) * torch.atan(1.0 / kappa)


@lru_cache(maxsize=1)
def _nodes() -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Legendre nodes t (Q,) and weights (Q,) on [0, 1], float64."""
    x, w = np.polynomial.legendre.leggauss(_N_QUAD)
    return 0.5 * (x + 1.0), 0.5 * w


@lru_cache(maxsize=16)
def _quadrature(l_max: int, dtype: torch.dtype, device: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Nodes t (Q,), weights (Q,) on [0, 1], and P_l(t) for even l ≤ l_max as (L, Q)."""
    t, w = _nodes()
    vander = np.polynomial.legendre.legvander(t, l_max)[:, 0::2].T
    as_t = lambda a: torch.as_tensor(a, dtype=dtype, device=device)  # noqa: E731
    return as_t(t), as_t(w), as_t(vander)


def _stick_coefficients_np(beta: np.ndarray, l_max: int) -> np.ndarray:
    """(len(beta), L) (2l+1)/2 · k̂_l(β), k̂_l = ∫₋₁¹ exp(−β t²) P_l(t) dt, in float64."""
    t, w = _nodes()
    vander = np.polynomial.legendre.legvander(t, l_max)[:, 0::2]
    ls = np.arange(0, l_max + 1, 2)
    k_hat = 2.0 * (np.exp(-np.outer(beta, t * t)) * w) @ vander
    return 0.5 * (2 * ls + 1) * k_hat


def legendre_order(beta_max: float, *, tol: float = 1e-9) -> int:
    """Smallest even l_max whose dropped stick coefficients are all below ``tol`` at β ≤ beta_max."""
    coef = np.abs(_stick_coefficients_np(np.linspace(0.0, max(beta_max, 0.0), 64), 120)).max(axis=0)
    above = np.nonzero(coef > tol)[0]
    return int(2 * (above.max() + 1)) if above.size else 0


def watson_tau(kappa: torch.Tensor) -> torch.Tensor:
    """τ(κ) = ⟨(μ·n)²⟩ under a Watson distribution of concentration κ ≥ 0 (1/3 at κ = 0, → 1)."""
    return _tau_from_coefficients(_watson_coefficients(kappa, 2))


def _tau_from_coefficients(watson: torch.Tensor) -> torch.Tensor:
    """τ = ⟨(μ·n)²⟩ = (2⟨P₂⟩ + 1)/3 from Watson coefficients (..., L ≥ 2) → (...)."""
    return (2.0 * watson[..., 1] + 1.0) / 3.0


def _watson_coefficients(kappa: torch.Tensor, l_max: int) -> torch.Tensor:
    """(..., L) ŵ_l(κ)/ŵ_0(κ) for even l ≤ l_max."""
    t, w, vander = _quadrature(l_max, kappa.dtype, str(kappa.device))
    dens = torch.exp(kappa[..., None] * (t * t - 1.0)) * w
    return (dens @ vander.T) / dens.sum(-1, keepdim=True)


@lru_cache(maxsize=16)
def _chebyshev_from_legendre(l_max: int) -> np.ndarray:
    """(K+1, L) float64: column k holds the coefficients of P_2k(x) in the Chebyshev basis
    T_j(2x² − 1), j ≤ K = l_max/2 (P_2k is a polynomial of degree k in x², so this is exact)."""
    k_max = l_max // 2
    nodes = 0.5 * (np.cos(np.pi * (np.arange(k_max + 1) + 0.5) / (k_max + 1)) + 1.0)  # t = x² in [0, 1]
    values = np.polynomial.legendre.legvander(np.sqrt(nodes), l_max)[:, 0::2]  # (K+1, L)
    return np.polynomial.chebyshev.chebfit(2.0 * nodes - 1.0, values, k_max)


def _clenshaw_even_derivative(coef: torch.Tensor, cos_alpha: torch.Tensor) -> torch.Tensor:
    """d/d(cos α) of :func:`_clenshaw_even`: with u = 2cos²α − 1, T_j'(u) = j U_{j−1}(u), summed by
    Clenshaw's recurrence for Chebyshev polynomials of the second kind, times du/dcos α = 4 cos α."""
    u = 2.0 * cos_alpha * cos_alpha - 1.0
    b1 = torch.zeros_like(u)
    b2 = torch.zeros_like(u)
    for k in range(coef.shape[1] - 2, -1, -1):  # Σ_k (k+1)·coef_{k+1}·U_k(u)
        b1, b2 = (k + 1) * coef[:, k + 1] + 2.0 * u * b1 - b2, b1
    return 4.0 * cos_alpha * b1


def _clenshaw_even(coef: torch.Tensor, cos_alpha: torch.Tensor) -> torch.Tensor:
    """Σ_j coef[:, j] T_j(2 cos²α − 1) by Clenshaw's recurrence; coef (V, K+1, N) → (V, N)."""
    u = 2.0 * cos_alpha * cos_alpha - 1.0
    b1 = torch.zeros_like(u)
    b2 = torch.zeros_like(u)
    for j in range(coef.shape[1] - 1, 0, -1):
        b1, b2 = coef[:, j] + 2.0 * u * b1 - b2, b1
    return coef[:, 0] + u * b1 - b2


def stick_coefficients(beta: torch.Tensor, l_max: int) -> torch.Tensor:
    """(N, L) (2l+1)/2 · k̂_l(β) for each measurement: constants of a protocol, computed once."""
    return torch.as_tensor(_stick_coefficients_np(beta.detach().cpu().double().numpy(), l_max),
                           dtype=beta.dtype, device=beta.device)


def watson_stick_signal(kappa: torch.Tensor, beta: torch.Tensor, cos_alpha: torch.Tensor, *,
                        l_max: int | None = None, stick: torch.Tensor | None = None) -> torch.Tensor:
    """Signal of sticks dispersed by a Watson distribution.

    Parameters
    ----------
    kappa : (V,) concentration, 0 ≤ κ ≤ KAPPA_MAX.
    beta : (N,) b·d∥ (dimensionless) per measurement.
    cos_alpha : (V, N) cosine between each gradient and the mean orientation.
    l_max : Legendre truncation; default :func:`legendre_order` of max β.
    stick : (N, L) precomputed :func:`stick_coefficients` of ``beta`` (saves recomputing them).

    Returns
    -------
    (V, N) attenuation in [0, 1].
    """
    if stick is not None:
        l_max = 2 * (stick.shape[-1] - 1)
    else:
        if l_max is None:
            l_max = legendre_order(float(beta.max()) if beta.numel() else 0.0)
        stick = stick_coefficients(beta.to(kappa.dtype), l_max)
    return _watson_stick_from_coefficients(_watson_coefficients(kappa, l_max), stick, cos_alpha)


def _watson_stick_from_coefficients(watson: torch.Tensor, stick: torch.Tensor, cos_alpha: torch.Tensor, *,
                                    derivative: bool = False):
    """E_ic (V, N) from Watson (V, L) and stick (N, L) even-Legendre coefficients; with
    ``derivative`` also dE_ic/d(cos α), as a pair."""
    l_max = 2 * (stick.shape[-1] - 1)
    cheb = torch.as_tensor(_chebyshev_from_legendre(l_max), dtype=watson.dtype, device=watson.device)  # (K+1, L)
    n_meas, n_coef = stick.shape[0], cheb.shape[0]
    mix = (cheb[:, :, None] * stick.T[None, :, :]).permute(1, 0, 2).reshape(cheb.shape[1], n_coef * n_meas)
    coef = (watson @ mix).reshape(-1, n_coef, n_meas)  # Chebyshev coefficients per voxel and measurement
    if derivative:
        return _clenshaw_even(coef, cos_alpha), _clenshaw_even_derivative(coef, cos_alpha)
    return _clenshaw_even(coef, cos_alpha)


def watson_terms(kappa: torch.Tensor, stick: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Watson coefficients matched to ``stick`` (V, L) and τ (V, 1) for concentrations κ (V,)."""
    watson = _watson_coefficients(kappa, max(2 * (stick.shape[-1] - 1), 2))
    return watson[:, : stick.shape[-1]], _tau_from_coefficients(watson)[:, None]


def dispersed_zeppelin(ndi: torch.Tensor, tau: torch.Tensor, cos2: torch.Tensor, bvals: torch.Tensor,
                       d_par: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Extra-neurite attenuation (V, N) and its axial − radial diffusivity (V, 1).

    ``ndi`` (V, 1) or scalar, ``tau`` (V, 1) or scalar, ``cos2`` (V, N) squared cosines to μ.
    """
    d_perp = d_par * (1.0 - ndi)
    ax = d_perp + (d_par - d_perp) * tau
    rad = d_perp + (d_par - d_perp) * 0.5 * (1.0 - tau)
    return torch.exp(-bvals * (rad + (ax - rad) * cos2)), ax - rad


def noddi_compartments(ndi: torch.Tensor, odi: torch.Tensor, mu: torch.Tensor, bvals: torch.Tensor,
                       bvecs: torch.Tensor, *, d_par: float = D_PAR, l_max: int | None = None,
                       stick: torch.Tensor | None = None, derivatives: bool = False) -> dict[str, torch.Tensor]:
    """The NODDI compartments' attenuations, each (V, N): ``ic`` (Watson sticks), ``ec`` (dispersed
    tortuous zeppelin), and what derivatives need: ``tau`` (V, 1), ``cos`` and ``cos2`` (V, N); with
    ``derivatives``, ``dic_dcos`` and ``dec_dcos`` (V, N), derivatives in cos α = g·μ."""
    kappa = kappa_from_odi(odi).clamp(max=KAPPA_MAX)
    cos_alpha = (mu @ bvecs.T).clamp(-1.0, 1.0)  # (V, N)
    if stick is None:
        stick = stick_coefficients(bvals * d_par, l_max if l_max is not None else legendre_order(
            float(bvals.max()) * d_par if bvals.numel() else 0.0))
    watson, tau = watson_terms(kappa, stick)
    out = {}
    if derivatives:
        e_ic, out["dic_dcos"] = _watson_stick_from_coefficients(watson, stick, cos_alpha, derivative=True)
    else:
        e_ic = _watson_stick_from_coefficients(watson, stick, cos_alpha)
    c2 = cos_alpha * cos_alpha
    e_ec, ax_minus_rad = dispersed_zeppelin(ndi[:, None], tau, c2, bvals, d_par)
    if derivatives:
        out["dec_dcos"] = e_ec * (-bvals * ax_minus_rad * 2.0 * cos_alpha)
    out.update(ic=e_ic, ec=e_ec, tau=tau, cos=cos_alpha, cos2=c2)
    return out


def noddi_signal(s0: torch.Tensor, ndi: torch.Tensor, odi: torch.Tensor, fwf: torch.Tensor, mu: torch.Tensor,
                 bvals: torch.Tensor, bvecs: torch.Tensor, *, d_par: float = D_PAR, d_iso: float = D_ISO,
                 l_max: int | None = None, stick: torch.Tensor | None = None) -> torch.Tensor:
    """NODDI-Watson signal.

    Parameters
    ----------
    s0 : (V,) b=0 signal.
    ndi : (V,) neurite density (intra-neurite fraction of tissue), [0, 1].
    odi : (V,) orientation dispersion index, (0, 1].
    fwf : (V,) free-water fraction, [0, 1].
    mu : (V, 3) unit mean orientation (image-axis frame).
    bvals : (N,) s/mm². bvecs : (N, 3) unit.
    d_par, d_iso : mm²/s.
    l_max, stick : see :func:`watson_stick_signal` (``stick`` must be of ``bvals · d_par``).

    Returns
    -------
    (V, N) signal.
    """
    comp = noddi_compartments(ndi, odi, mu, bvals, bvecs, d_par=d_par, l_max=l_max, stick=stick)
    e_iso = torch.exp(-bvals * d_iso)
    tissue = ndi[:, None] * comp["ic"] + (1.0 - ndi[:, None]) * comp["ec"]
    return s0[:, None] * ((1.0 - fwf[:, None]) * tissue + fwf[:, None] * e_iso)
