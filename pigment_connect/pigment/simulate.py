"""Simulated tissue for training the prior (licence-clean: generated here, no scan involved).

Each simulated voxel follows the "standard model" of white matter (Novikov et al. 2019), which
real tissue fits far better than NODDI's constrained form: per fascicle, Watson-dispersed sticks
(intra-axonal axial diffusivity D_a) and a dispersed zeppelin with its *own* axial and radial
diffusivities (D_e∥, D_e⊥ — not tied to D_a by NODDI's tortuosity), plus free water. One or two
fascicles, parameter ranges per tissue class (white matter, crossing white matter, grey matter,
CSF partial volume, lesion-like), random orientations. Because D_a ≠ D_e∥ the tissue has the
axial kurtosis real white matter shows (a NODDI-only simulator has almost none).

Gaussian compartments alone still fall short of it: with Watson dispersion their axial kurtosis
(AK) falls as FA rises (AK ≈ 0.15 at FA 0.75, 0.4 at FA 0.6), while in vivo white matter shows
AK ≈ 0.6–1 at FA 0.4–0.8. The excess is the time-dependent kurtosis of structural disorder along
the fibres — axonal beading and calibre variation inside axons, packing disorder outside
(Fieremans et al. 2016, NeuroImage 129:414; Lee et al. 2020, Commun Biol 3:354). Each
fascicle therefore carries an axial disorder per compartment: the sticks' D_a is a gamma
distribution across the voxel's axons (coefficient of variation ``cv_a``, truncated at free
water's diffusivity), and the zeppelin's anisotropic part is gamma-distributed likewise
(``cv_e``: attenuation e^{−b D_r}(1 + b (D_ax − D_r) c² cv_e²)^{−1/cv_e²}). Both give a
compartment an axial kurtosis of 3·cv²; cv = 0 is the Gaussian standard model. The cv ranges
(sticks up to 0.4, zeppelin up to 1.5 in white matter) bring the simulated white matter's AK to a
median ≈ 0.55 (10–90%: 0.3–0.9) on the canonical protocol; larger stick disorder would also raise
the radial kurtosis and NDI above what dense in-vivo fits report.

The signal on a dense canonical protocol, with Rician noise at a random b=0 SNR
(:data:`SNR_RANGE`; augmentation, so that the prior covers what noisy dense fits report), is then
fitted conventionally — DKI (WLS) and NODDI (NLLS), the same fits that make the dense reference of
the benchmark — and those fits give the training features (:func:`~.tissue.features_from_fits`).
The prior thus learns the joint distribution of what the three conventional models report on
dense data of plausible tissue.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..fit.dki import DiffusionKurtosisModel
from ..fit.noddi import NoddiModel
from ..fit.voxelwise import gradient_tensors
from ..io.gradients import GradientTable
from ..physics.noddi import D_ISO, D_PAR, kappa_from_odi, legendre_order, stick_coefficients, watson_stick_signal, watson_tau
from ..physics.protocol import hemisphere_directions
from .network import TissuePrior
from .spatial import MAX_NEIGHBOURS, neighbour_tissue
from .tissue import FEATURES, features_from_fits, tissue_signal

__all__ = ["TISSUE_CLASSES", "SNR_RANGE", "canonical_protocol", "simulate_tissue", "simulate_features",
           "PriorSimulator", "random_rotations", "rician_magnitude"]

TISSUE_CLASSES = {
    # name: share, intra-axonal fraction of tissue, ODI, free water, fascicles, D_a, D_e∥, D_e⊥ (mm²/s, D_e⊥ ≤ D_e∥),
    #       axial disorder cv of the sticks' D_a and of the zeppelin
    "white_matter": (0.35, (0.35, 0.8), (0.02, 0.3), (0.0, 0.12), 1, (1.6e-3, 2.6e-3), (1.2e-3, 2.4e-3), (0.25e-3, 0.9e-3),
                     (0.0, 0.4), (0.0, 1.5)),
    "crossing": (0.20, (0.35, 0.8), (0.02, 0.3), (0.0, 0.12), 2, (1.6e-3, 2.6e-3), (1.2e-3, 2.4e-3), (0.25e-3, 0.9e-3),
                 (0.0, 0.4), (0.0, 1.5)),
    "grey_matter": (0.25, (0.15, 0.5), (0.3, 0.9), (0.0, 0.2), 1, (1.4e-3, 2.6e-3), (0.8e-3, 1.8e-3), (0.4e-3, 1.2e-3),
                    (0.0, 0.3), (0.0, 0.6)),
    "csf_partial_volume": (0.12, (0.15, 0.8), (0.05, 0.9), (0.25, 1.0), 1, (1.4e-3, 2.6e-3), (0.8e-3, 2.2e-3),
                           (0.3e-3, 1.2e-3), (0.0, 0.3), (0.0, 0.6)),
    "lesion": (0.08, (0.05, 0.4), (0.1, 0.9), (0.05, 0.5), 1, (1.4e-3, 2.6e-3), (1.2e-3, 2.8e-3), (0.6e-3, 2.0e-3),
               (0.0, 0.3), (0.0, 0.6)),
}
"""Tissue classes and the uniform ranges their parameters are drawn from."""
SNR_RANGE = (15.0, 80.0)
"""b=0 SNR of the training signals (log-uniform); ``None`` as ``snr`` gives noise-free signals."""
_DA_STEP = 0.1e-3  # the Watson stick series is built per scalar D_a: D_a distributions live on this grid (mm²/s)


def rician_magnitude(clean, sigma, normal):
    """The simulator's one Rician noise: the magnitude of ``clean`` plus complex Gaussian noise of
    standard deviation ``sigma`` (broadcast against ``clean``), the real part drawn first, then the
    imaginary one, each by ``normal(shape)`` (standard normals: a numpy generator's or torch's).
    numpy arrays in, numpy out (``np.hypot``); torch tensors in, torch out."""
    if isinstance(clean, torch.Tensor):
        real = clean + normal(clean.shape) * sigma
        return torch.sqrt(real ** 2 + (normal(clean.shape) * sigma) ** 2)
    return np.hypot(clean + sigma * normal(clean.shape), sigma * normal(clean.shape))


def canonical_protocol() -> GradientTable:
    """Dense protocol of the training fits: 6 b0 + 30 at b=1000 + 60 at b=2000 s/mm² (the shells of
    a typical dense NODDI/DKI acquisition)."""
    bvals = [0.0] * 6 + [1000.0] * 30 + [2000.0] * 60
    bvecs = [np.zeros(3)] * 6 + list(hemisphere_directions(30)) + list(hemisphere_directions(60, twist=0.5))
    return GradientTable(np.array(bvals), np.array(bvecs))


def _random_unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.normal(size=(n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _perpendicular_at(rng: np.random.Generator, mu: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Unit vectors at ``angle`` (rad) from each ``mu`` (n, 3), random azimuth."""
    helper = _random_unit(rng, len(mu))
    u = np.cross(mu, helper)
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    return np.cos(angle)[:, None] * mu + np.sin(angle)[:, None] * u


def _da_weights(d_a: np.ndarray, cv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Grid of stick diffusivities (J,) (bin centres of width :data:`_DA_STEP` up to free water's
    D_ISO) and each voxel's weights on it (n, J): a gamma distribution of mean ``d_a`` and
    coefficient of variation ``cv`` (n,) integrated over each bin and truncated at D_ISO (cv → 0:
    the one bin holding d_a; ``d_a`` < D_ISO)."""
    from scipy import stats

    n_bins = int(round(D_ISO / _DA_STEP))
    edges = np.arange(n_bins + 1) * _DA_STEP
    shape = 1.0 / np.maximum(cv, 1e-3) ** 2
    cdf = stats.gamma.cdf(edges[None, :], shape[:, None], scale=(d_a / shape)[:, None])
    w = np.diff(cdf, axis=1)
    return edges[:-1] + 0.5 * _DA_STEP, w / w.sum(1, keepdims=True)


def _stick_signal(kappa, grid: np.ndarray, weights: np.ndarray, cos, bvals) -> torch.Tensor:
    """(n, N) Watson-dispersed sticks whose D_a follows ``weights`` (n, J) on ``grid`` (J,)."""
    out = torch.zeros_like(cos)
    w = torch.as_tensor(weights, dtype=cos.dtype)
    for j in np.flatnonzero((weights > 1e-7).any(0)):
        sel = torch.as_tensor(np.flatnonzero(weights[:, j] > 1e-7))
        out[sel] += w[sel, j, None] * watson_stick_signal(kappa[sel], bvals * float(grid[j]), cos[sel])
    return out


def _fascicle_signal(f_intra, odi, sticks: tuple, de_par, de_perp, cv_e, mu, bvals, bvecs) -> torch.Tensor:
    """(n, N) one standard-model fascicle: Watson sticks (D_a distributed as ``sticks`` = (grid,
    weights) of :func:`_da_weights`) + the Watson average of a zeppelin (D_e∥, D_e⊥), whose mean
    tensor has axial D_e⊥ + (D_e∥ − D_e⊥)τ and radial D_e⊥ + (D_e∥ − D_e⊥)(1 − τ)/2, τ = ⟨(n·μ)²⟩
    of the Watson distribution; its anisotropic part gamma-distributed with coefficient of
    variation ``cv_e`` (the module docstring)."""
    kappa = kappa_from_odi(odi)
    cos = (mu @ bvecs.T).clamp(-1.0, 1.0)
    stick = _stick_signal(kappa, *sticks, cos, bvals)
    tau = watson_tau(kappa)[:, None]
    spread = (de_par - de_perp)[:, None]
    axial, radial = de_perp[:, None] + spread * tau, de_perp[:, None] + spread * (1.0 - tau) / 2.0
    shape = 1.0 / cv_e.clamp_min(1e-3)[:, None] ** 2
    zeppelin = torch.exp(-bvals * radial - shape * torch.log1p(bvals * (axial - radial) * cos * cos / shape))
    return f_intra[:, None] * stick + (1.0 - f_intra[:, None]) * zeppelin


def simulate_tissue(n: int, gtab: GradientTable, *, seed: int = 0,
                    snr: tuple[float, float] | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Signal (n, N) of ``n`` simulated voxels on ``gtab`` (S0 = 1) and their generating parameters
    (``klass`` index into :data:`TISSUE_CLASSES`, ``f_intra``, ``odi``, ``fwf``, ``d_a`` (the mean of
    the sticks' distribution), ``de_par``, ``de_perp``, ``cv_a``, ``cv_e``, ``mu`` (n, 3) of the main
    fascicle, ``snr``).

    ``snr`` : a (low, high) range of b=0 SNR drawn log-uniformly per voxel for Rician noise; None
    (default) for noise-free signals.
    """
    rng = np.random.default_rng(seed)
    names = list(TISSUE_CLASSES)
    shares = np.array([TISSUE_CLASSES[k][0] for k in names])
    klass = rng.choice(len(names), size=n, p=shares / shares.sum())
    f_intra, odi, fwf, de_par, de_perp, d_a, cv_a, cv_e = np.empty((8, n))
    n_fasc = np.empty(n, dtype=int)
    for k, name in enumerate(names):
        _, fr, orng, wr, nf, dar, dpr, der, car, cer = TISSUE_CLASSES[name]
        sel = klass == k
        m = int(sel.sum())
        f_intra[sel], odi[sel], fwf[sel] = rng.uniform(*fr, m), rng.uniform(*orng, m), rng.uniform(*wr, m)
        d_a[sel], de_par[sel] = rng.uniform(*dar, m), rng.uniform(*dpr, m)
        de_perp[sel] = np.minimum(rng.uniform(*der, m), de_par[sel])
        cv_a[sel], cv_e[sel] = rng.uniform(*car, m), rng.uniform(*cer, m)
        n_fasc[sel] = nf
    grid, da_weights = _da_weights(d_a, cv_a)
    d_a = da_weights @ grid  # the realised mean of the truncated distribution
    mu = _random_unit(rng, n)
    mu2 = _perpendicular_at(rng, mu, rng.uniform(np.deg2rad(35), np.deg2rad(90), n))
    weight2 = np.where(n_fasc == 2, rng.uniform(0.3, 0.5, n), 0.0)
    f_intra2 = np.clip(f_intra + rng.normal(0, 0.05, n), 0.05, 0.95)
    odi2 = np.clip(odi + rng.normal(0, 0.03, n), 0.02, 0.95)
    bvals, bvecs = torch.tensor(gtab.bvals), torch.tensor(gtab.bvecs)
    t = lambda a: torch.as_tensor(a, dtype=torch.float64)  # noqa: E731
    shared = ((grid, da_weights), t(de_par), t(de_perp), t(cv_e))
    s1 = _fascicle_signal(t(f_intra), t(odi), *shared, t(mu), bvals, bvecs)
    s2 = _fascicle_signal(t(f_intra2), t(odi2), *shared, t(mu2), bvals, bvecs)
    w2, f = t(weight2)[:, None], t(fwf)[:, None]
    signal = ((1 - f) * ((1 - w2) * s1 + w2 * s2) + f * torch.exp(-bvals * D_ISO)).numpy()
    snr_drawn = np.full(n, np.inf)
    if snr is not None:
        snr_drawn = np.exp(rng.uniform(np.log(snr[0]), np.log(snr[1]), n))
        sigma = (1.0 / snr_drawn)[:, None]
        signal = rician_magnitude(signal, sigma, lambda shape: rng.normal(size=shape))
    return signal, {"klass": klass, "f_intra": f_intra, "odi": odi, "fwf": fwf, "d_a": d_a, "de_par": de_par,
                    "de_perp": de_perp, "cv_a": cv_a, "cv_e": cv_e, "mu": mu, "snr": snr_drawn}


def simulate_features(n: int, *, seed: int = 0, snr: tuple[float, float] | None = SNR_RANGE,
                      progress: bool = False) -> np.ndarray:
    """(n', 9) training features: conventional DKI (WLS) and NODDI (NLLS) fits of :func:`simulate_tissue`
    (Rician noise at ``snr``) on :func:`canonical_protocol` (n' ≤ n: voxels whose fits are not finite
    are dropped)."""
    gtab = canonical_protocol()
    signal, _ = simulate_tissue(n, gtab, seed=seed, snr=snr)
    vol = signal[:, None, None, :].astype(np.float32)
    dki = DiffusionKurtosisModel(gtab, fit_method="WLS", device="cpu").fit(vol, progress=progress)
    noddi = NoddiModel(gtab, device="cpu").fit(vol, progress=progress)
    t = lambda a: torch.as_tensor(np.asarray(a).reshape(n, -1), dtype=torch.float64)  # noqa: E731
    params = dki.coefficients.reshape(n, -1)
    feats, _ = features_from_fits(t(params[:, :6]), t(params[:, 6:21]), t(noddi.ndi)[:, 0], t(noddi.odi)[:, 0],
                                  t(noddi.fwf)[:, 0])
    feats = feats.numpy()
    return feats[np.isfinite(feats).all(1)]


def random_rotations(n: int, gen: torch.Generator, dtype) -> torch.Tensor:
    """``n`` rotations (n, 3, 3) uniform on SO(3) (QR of Gaussian matrices, signs fixed)."""
    q, r = torch.linalg.qr(torch.randn(n, 3, 3, generator=gen, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r, dim1=1, dim2=2))[:, None, :]
    q = q * torch.where(torch.linalg.det(q) < 0, -1.0, 1.0)[:, None, None]
    return q.to(dtype)


class PriorSimulator:
    """Signals of tissue drawn from the prior on one table, with Rician noise: the amortised
    model's training data (voxels, or patches of a centre and its neighbours).

    Parameters
    ----------
    prior : the tissue prior. gtab : the table. snr_range : b=0 SNRs, drawn log-uniformly.
    """

    def __init__(self, prior: TissuePrior, gtab: GradientTable, snr_range: tuple[float, float]) -> None:
        self.prior, self.gtab = prior, gtab
        self.snr_range = (float(snr_range[0]), float(snr_range[1]))

    def draw_tissue(self, n: int, gen: torch.Generator, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """Standardised features (n, 9) — prior draws plus the decoder's own noise — and frames (n, 3, 3)."""
        prior = self.prior.to(device=device, dtype=dtype)
        z = prior.sample_latent(n, gen).to(device, dtype)
        with torch.no_grad():
            target = prior.decoder(z) + 0.1 * torch.randn(n, len(FEATURES), generator=gen).to(device, dtype)
        return target, random_rotations(n, gen, dtype).to(device)

    def draw_sigma(self, n: int, gen: torch.Generator, device, dtype) -> torch.Tensor:
        """(n,) noise σ (S0 = 1), b=0 SNR log-uniform in ``snr_range``."""
        lo, hi = (math.log(s) for s in self.snr_range)
        return torch.exp(lo + (hi - lo) * torch.rand(n, generator=gen)).reciprocal().to(device, dtype)

    def clean_signals(self, target: torch.Tensor, rotation: torch.Tensor, chunk: int = 65536) -> torch.Tensor:
        """Noise-free signals (M, N) (S0 = 1) of standardised features (M, 9) in frames (M, 3, 3)."""
        device, dtype = target.device, target.dtype
        prior = self.prior.to(device=device, dtype=dtype)
        bvals, bvecs = gradient_tensors(self.gtab, device, dtype)
        stick = stick_coefficients(bvals * D_PAR, legendre_order(float(bvals.max()) * D_PAR, tol=1e-7))
        with torch.no_grad():
            return torch.cat([tissue_signal(target[sl] * prior.std + prior.mean, rotation[sl], bvals, bvecs,
                                             stick=stick, kurtosis_ceiling=1.5)
                              for sl in (slice(i, i + chunk) for i in range(0, len(target), chunk))])

    @staticmethod
    def rician(clean: torch.Tensor, sigma: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """Rician magnitude of ``clean`` (M, N) at noise σ (M,)."""
        return rician_magnitude(clean, sigma[:, None], lambda shape: torch.randn(shape, generator=gen).to(clean))

    def voxels(self, n: int, gen: torch.Generator, device, dtype=torch.float32):
        """Signals (n, N) (S0 = 1, Rician), σ (n,), standardised features (n, 9)."""
        target, rot = self.draw_tissue(n, gen, device, dtype)
        sigma = self.draw_sigma(n, gen, device, dtype)
        return self.rician(self.clean_signals(target, rot), sigma, gen), sigma, target

    def patches(self, n: int, gen: torch.Generator, device, dtype=torch.float32):
        """Patches of a centre and :data:`MAX_NEIGHBOURS` neighbour slots (:func:`.spatial.neighbour_tissue`;
        a slot's signal mixes its same-tissue and unrelated signals by its unrelated share):
        signals (n, 1 + K, N), σ (n,) (one per patch), the centres' features (n, 9), validity (n, K)."""
        k = MAX_NEIGHBOURS
        centre, rot = self.draw_tissue(n, gen, device, dtype)
        others, other_rot = self.draw_tissue(n * k, gen, device, dtype)
        same, same_rot, other_share, valid = neighbour_tissue(centre, rot, k, gen)
        sigma = self.draw_sigma(n, gen, device, dtype)
        share = other_share.reshape(-1, 1)
        neighbours = ((1 - share) * self.clean_signals(same.flatten(0, 1), same_rot.flatten(0, 1))
                      + share * self.clean_signals(others, other_rot))
        clean = torch.cat([self.clean_signals(centre, rot)[:, None], neighbours.view(n, k, -1)], 1).flatten(0, 1)
        signal = self.rician(clean, sigma.repeat_interleave(k + 1), gen)
        return signal.view(n, k + 1, -1), sigma, centre, valid
