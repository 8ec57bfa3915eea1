"""One tissue description, three models' parameters: the space PIGMENT's prior generates.

A voxel's tissue is described, in its own fibre frame, by nine rotation-invariant features
(:data:`FEATURES`) plus an orientation (a rotation R whose first column e1 is the fibre axis):

* the diffusion tensor's eigenvalues λ1, λ2, λ3 along R's columns (``log_l1`` … in log mm²/s);
* the kurtosis tensor, axially symmetric about e1, through its three invariants
  W∥ = W(e1), W⊥ = W(n ⊥ e1) and W̄ = mean of W(n) over the sphere (the mean kurtosis tensor,
  Hansen et al. 2013). With c = n·e1, W(n) = W⊥ + b c² + d c⁴, where b and d follow from the
  three invariants (⟨c²⟩ = 1/3, ⟨c⁴⟩ = 1/5 over the sphere). The kurtosis functions also take an
  optional W∆ = (W(e2) − W(e3))/2, the kurtosis's second harmonic around the fibre, adding
  W∆ (c2² − c3²) (cᵢ = n·eᵢ; it averages to zero over the sphere and the perpendicular circle, so
  the three invariants keep their meaning): real white matter is not axially symmetric (W(e2) ≈ 0.9
  against W(e3) ≈ 0.3 in the dense fits of a real scan), and where a table determines the kurtosis
  tensor, forcing the symmetry moves the misfit into λ2 and λ3. The prior does not generate W∆
  (the zero-shot fit frees it where the table determines W, :mod:`pigment_connect.pigment.zero_shot`);
* NODDI's neurite density, dispersion and free-water fraction (``logit_ndi`` …), with mean
  orientation e1.

From one description come the DTI tensor D = R diag(λ) Rᵀ, the DKI signal
ln S = ln S0 − b D(n) + b² MD² W(n)/6, the NODDI signal (:mod:`pigment_connect.physics.noddi`), and
every map (FA, MD, AD, RD, MK, AK, RK, NDI, ODI, FWF). Everything here is torch and differentiable.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..physics.dki import perpendicular_circle
from ..physics.dti import tensor_maps
from ..physics.noddi import D_ISO, D_PAR, noddi_signal
from ..physics.protocol import kurtosis_design

__all__ = ["FEATURES", "MAP_NAMES", "cayley_rotation", "kurtosis_asymmetry", "eigenframe", "tissue_tensor", "dki_tissue_signal", "noddi_tissue_signal",
           "tissue_maps", "features_from_fits", "tissue_signal", "DKI_MAX_B"]

FEATURES = ("log_l1", "log_l2", "log_l3", "w_par", "w_perp", "w_mean", "logit_ndi", "logit_odi", "logit_fwf")
"""The nine invariant features, in the order the prior generates them."""
MAP_NAMES = ("fa", "md", "ad", "rd", "mk", "ak", "rk", "mkt", "ndi", "odi", "fwf")
"""Scalar maps :func:`tissue_maps` returns (diffusivities in mm²/s)."""

DKI_MAX_B = 3000.0
"""Largest b-value (s/mm²) the kurtosis description of tissue is asked to explain."""

_FRACTION_EPS = 1e-4


def _logit(p: torch.Tensor) -> torch.Tensor:
    p = p.clamp(_FRACTION_EPS, 1 - _FRACTION_EPS)
    return torch.log(p) - torch.log1p(-p)


def cayley_rotation(omega: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
    """R = base · C(ω), C the Cayley map of the skew matrix [ω]× (a rotation for every ω, smooth,
    identity at ω = 0). ``omega`` (V, 3), ``base`` (V, 3, 3) rotation → (V, 3, 3)."""
    wx, wy, wz = omega.unbind(-1)
    zero = torch.zeros_like(wx)
    k = torch.stack([torch.stack([zero, -wz, wy], -1), torch.stack([wz, zero, -wx], -1),
                     torch.stack([-wy, wx, zero], -1)], -2)
    scale = 2.0 / (1.0 + (omega * omega).sum(-1))
    cayley = torch.eye(3, dtype=omega.dtype, device=omega.device) + scale[:, None, None] * (k + k @ k)
    return base @ cayley


def eigenframe(tensor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues (V, 3), descending, and the eigenvectors as a proper rotation (V, 3, 3), columns
    e1, e2, e3 (a column's sign flipped where needed), of (V, 6) tensors."""
    eig = tensor_maps(tensor)
    evecs = eig["evecs"]
    return eig["evals"], evecs * torch.where(torch.linalg.det(evecs) < 0, -1.0, 1.0)[:, None, None].to(evecs.dtype)


def _unpack(features: torch.Tensor) -> dict[str, torch.Tensor]:
    f = features.unbind(-1)
    return {
        "evals": torch.exp(torch.stack(f[:3], -1)),
        "w_par": f[3], "w_perp": f[4], "w_mean": f[5],
        "ndi": torch.sigmoid(f[6]), "odi": torch.sigmoid(f[7]), "fwf": torch.sigmoid(f[8]),
    }


def tissue_tensor(features: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
    """(V, 3, 3) diffusion tensor R diag(λ) Rᵀ, mm²/s."""
    evals = _unpack(features)["evals"]
    return (rotation * evals[:, None, :]) @ rotation.transpose(1, 2)


def _w_coefficients(w_par: torch.Tensor, w_perp: torch.Tensor, w_mean: torch.Tensor):
    """W(n) = a + b c² + d c⁴ from W∥, W⊥, W̄ (each (V,))."""
    d = -7.5 * (w_mean - w_perp) + 2.5 * (w_par - w_perp)
    return w_perp, (w_par - w_perp) - d, d


def dki_tissue_signal(s0: torch.Tensor, features: torch.Tensor, rotation: torch.Tensor, bvals: torch.Tensor,
                      bvecs: torch.Tensor, w_asym: torch.Tensor | None = None) -> torch.Tensor:
    """(V, N) kurtosis-model signal of the tissue. ``s0`` (V,), ``bvals`` (N,) s/mm², ``bvecs`` (N, 3),
    ``w_asym`` (V,) W∆ (default 0: W axially symmetric about e1)."""
    p = _unpack(features)
    proj = bvecs @ rotation  # (V, N, 3): gradient components along e1, e2, e3
    sq = proj * proj
    adc = (sq * p["evals"][:, None, :]).sum(-1)
    md = p["evals"].mean(-1, keepdim=True)
    a, b, d = _w_coefficients(p["w_par"], p["w_perp"], p["w_mean"])
    c2 = sq[..., 0]
    w = a[:, None] + b[:, None] * c2 + d[:, None] * c2 * c2
    if w_asym is not None:
        w = w + w_asym[:, None] * (sq[..., 1] - sq[..., 2])
    return s0[:, None] * torch.exp(-bvals * adc + bvals * bvals * md * md * w / 6.0)


def noddi_tissue_signal(s0: torch.Tensor, features: torch.Tensor, rotation: torch.Tensor, bvals: torch.Tensor,
                        bvecs: torch.Tensor, *, stick: torch.Tensor | None = None, d_par: float = D_PAR,
                        d_iso: float = D_ISO) -> torch.Tensor:
    """(V, N) NODDI-Watson signal of the tissue, mean orientation e1."""
    p = _unpack(features)
    return noddi_signal(s0, p["ndi"], p["odi"].clamp_min(0.005), p["fwf"], rotation[:, :, 0], bvals, bvecs,
                        d_par=d_par, d_iso=d_iso, stick=stick)


def _fibre_frame_quadrature(n_polar: int, n_azimuth: int, dtype, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """c = cos θ (Gauss–Legendre on [0, 1]), φ (trapezoid) flattened, and weights summing to 1."""
    x, w = np.polynomial.legendre.leggauss(n_polar)
    c, w = 0.5 * (x + 1.0), 0.5 * w
    phi = np.arange(n_azimuth) * (2.0 * math.pi / n_azimuth)
    cc, pp = np.meshgrid(c, phi, indexing="ij")
    weights = np.repeat(w, n_azimuth) / n_azimuth
    t = lambda a: torch.as_tensor(np.ravel(a), dtype=dtype, device=device)  # noqa: E731
    return t(cc), t(pp), t(weights)


def tissue_maps(features: torch.Tensor, *, quadrature: tuple[int, int] = (16, 32),
                w_asym: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Scalar maps (V,) of the tissue (:data:`MAP_NAMES`); rotation-invariant, so no R needed.

    MK is the sphere mean of K(n) = W(n) MD²/D(n)² (product quadrature in the fibre frame), AK is K
    along e1, RK the mean of K over the circle perpendicular to e1, MKT the mean of W(n) (= W̄).
    Kurtosis maps are clipped to [−3/7, 10] as in DIPY. ``quadrature``: (polar, azimuthal) nodes of
    the MK sphere mean (the default resolves MK to < 1e-6; coarser serves derivatives for error bars).
    ``w_asym`` (V,): W∆ (default 0), which MK and RK see (AK, MKT and the tensor maps do not).
    """
    p = _unpack(features)
    ev = p["evals"]
    md = ev.mean(-1)
    fa = torch.sqrt(1.5 * ((ev - md[:, None]) ** 2).sum(-1) / (ev * ev).sum(-1).clamp_min(1e-30))
    sorted_ev = torch.sort(ev, -1, descending=True).values
    c, phi, weights = _fibre_frame_quadrature(*quadrature, features.dtype, features.device)
    s2 = 1.0 - c * c
    adc = ev[:, :1] * c * c + ev[:, 1:2] * s2 * torch.cos(phi) ** 2 + ev[:, 2:3] * s2 * torch.sin(phi) ** 2
    a, b, d = _w_coefficients(p["w_par"], p["w_perp"], p["w_mean"])
    c2 = c * c
    w_n = a[:, None] + b[:, None] * c2 + d[:, None] * c2 * c2
    circle = torch.arange(32, dtype=features.dtype, device=features.device) * (math.pi / 32)
    w_circle = p["w_perp"][:, None].expand(-1, len(circle))
    if w_asym is not None:
        w_n = w_n + w_asym[:, None] * (s2 * torch.cos(2 * phi))
        w_circle = w_circle + w_asym[:, None] * torch.cos(2 * circle)
    mk = (w_n * md[:, None] ** 2 / adc**2) @ weights
    ak = p["w_par"] * md**2 / ev[:, 0] ** 2
    adc_perp = ev[:, 1:2] * torch.cos(circle) ** 2 + ev[:, 2:3] * torch.sin(circle) ** 2
    rk = (w_circle * md[:, None] ** 2 / adc_perp**2).mean(-1)
    clip = lambda k: k.clamp(-3.0 / 7.0, 10.0)  # noqa: E731
    return {
        "fa": fa, "md": md, "ad": sorted_ev[:, 0], "rd": 0.5 * (sorted_ev[:, 1] + sorted_ev[:, 2]),
        "mk": clip(mk), "ak": clip(ak), "rk": clip(rk), "mkt": p["w_mean"],
        "ndi": p["ndi"], "odi": p["odi"], "fwf": p["fwf"],
    }


def _w_on_perpendicular_circle(kurtosis: torch.Tensor, e1: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` directions (V, n, 3) evenly spaced on the half circle perpendicular to ``e1`` (V, 3)
    and W (V, n) of ``kurtosis`` (V, 15) along them."""
    circle = perpendicular_circle(e1, n)
    return circle, (kurtosis_design(circle) @ kurtosis[..., None])[..., 0]


def kurtosis_asymmetry(kurtosis: torch.Tensor, evecs: torch.Tensor, *, n_circle: int = 32) -> torch.Tensor:
    """W∆ (V,) of kurtosis tensors (V, 15) in eigenvector frames (V, 3, 3): the second harmonic of W
    on the circle perpendicular to e1, 2⟨W(n) cos 2φ⟩ with φ the angle from e2 (equal to
    (W(e2) − W(e3))/2 where W has no higher harmonic there)."""
    circle, w_circle = _w_on_perpendicular_circle(kurtosis, evecs[:, :, 0], n_circle)
    cos2phi = (circle @ evecs[:, :, 1:2])[..., 0] ** 2 - (circle @ evecs[:, :, 2:3])[..., 0] ** 2
    return 2.0 * (w_circle * cos2phi).mean(-1)


def features_from_fits(tensor: torch.Tensor, kurtosis: torch.Tensor, ndi: torch.Tensor, odi: torch.Tensor,
                       fwf: torch.Tensor, *, n_circle: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Features (V, 9) and eigenvector frames (V, 3, 3) from conventional fits of the same voxels:
    DTI part of a DKI fit ``tensor`` (V, 6), its ``kurtosis`` (V, 15) (projected onto axial
    symmetry about e1: W∥ = W(e1), W⊥ = mean of W on the perpendicular circle, W̄ = MKT) and a
    NODDI fit's ``ndi``, ``odi``, ``fwf`` (V,). Eigenvalues are floored at 1e-6 mm²/s."""
    evals, evecs = eigenframe(tensor)
    e1 = evecs[:, :, 0]
    w_par = (kurtosis_design(e1) * kurtosis).sum(-1)
    w_perp = _w_on_perpendicular_circle(kurtosis, e1, n_circle)[1].mean(-1)
    w = kurtosis
    w_mean = (w[:, 0] + w[:, 1] + w[:, 2] + 2 * (w[:, 9] + w[:, 10] + w[:, 11])) / 5.0
    feats = torch.stack([*torch.log(evals.clamp_min(1e-6)).unbind(-1), w_par, w_perp, w_mean,
                         _logit(ndi), _logit(odi), _logit(fwf)], -1)
    return feats, evecs


def tissue_signal(feats: torch.Tensor, rotation: torch.Tensor, bvals: torch.Tensor, bvecs: torch.Tensor, *,
                  stick: torch.Tensor | None = None, kurtosis_ceiling: float | None = None,
                  w_asym: torch.Tensor | None = None) -> torch.Tensor:
    """(V, N) signal (S0 = 1) of tissue features (V, 9) in frames ``rotation`` (V, 3, 3) on any table
    (``bvals`` (N,) s/mm², ``bvecs`` (N, 3)): the kurtosis and NODDI descriptions averaged for
    b ≤ :data:`DKI_MAX_B`, NODDI alone beyond (the same two descriptions, each counted half where
    both hold, as the zero-shot fit's likelihood weighs them). ``kurtosis_ceiling``
    clips the kurtosis description (its exponent grows without bound for implausible features);
    ``w_asym`` (V,) the kurtosis's W∆ in the frame (default: axially symmetric)."""
    one = torch.ones(len(feats), dtype=feats.dtype, device=feats.device)
    signal = noddi_tissue_signal(one, feats, rotation, bvals, bvecs, stick=stick)
    low = bvals <= DKI_MAX_B
    dki = dki_tissue_signal(one, feats, rotation, bvals[low], bvecs[low], w_asym)
    if kurtosis_ceiling is not None:
        dki = dki.clamp(0.0, kurtosis_ceiling)
    signal[:, low] = 0.5 * (signal[:, low] + dki)
    return signal
