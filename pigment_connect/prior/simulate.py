"""Simulated tissue for training the prior (licence-clean: generated here, no scan involved).

Each simulated voxel is free water plus one or two NODDI fascicles, with parameters drawn per
tissue class (white matter, crossing white matter, grey matter, CSF partial volume, lesion-like),
an intra-neurite diffusivity d∥ varied around NODDI's 1.7e-3 mm²/s (so that the tissue is not
exactly what the NODDI model assumes), and random orientations. Its noise-free signal on a dense
canonical protocol is then fitted conventionally — DKI (WLS) and NODDI (NLLS), the same fits that
make the dense reference of the benchmark — and the fits give the training features
(:func:`~.tissue.features_from_fits`). The prior thus learns the joint distribution of what the
three conventional models report on dense data, for plausible tissue.
"""

from __future__ import annotations

import numpy as np
import torch

from ..datasets.phantom import _hemisphere_directions
from ..io.gradients import GradientTable
from ..physics.noddi import D_ISO, noddi_signal
from .tissue import features_from_fits

__all__ = ["TISSUE_CLASSES", "canonical_protocol", "simulate_tissue", "simulate_features"]

TISSUE_CLASSES = {  # name: (share, ndi range, odi range, fwf range, fascicles)
    "white_matter": (0.35, (0.45, 0.85), (0.02, 0.25), (0.0, 0.12), 1),
    "crossing": (0.20, (0.45, 0.85), (0.02, 0.25), (0.0, 0.12), 2),
    "grey_matter": (0.25, (0.2, 0.55), (0.3, 0.85), (0.0, 0.2), 1),
    "csf_partial_volume": (0.12, (0.2, 0.85), (0.05, 0.85), (0.25, 1.0), 1),
    "lesion": (0.08, (0.05, 0.4), (0.1, 0.9), (0.05, 0.5), 1),
}
D_PAR_RANGE = (1.4e-3, 2.2e-3)


def canonical_protocol() -> GradientTable:
    """Dense protocol of the training fits: 6 b0 + 30 at b=1000 + 60 at b=2000 s/mm² (the shells of
    a typical dense NODDI/DKI acquisition)."""
    bvals = [0.0] * 6 + [1000.0] * 30 + [2000.0] * 60
    bvecs = [np.zeros(3)] * 6 + list(_hemisphere_directions(30)) + list(_hemisphere_directions(60, twist=0.5))
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


def simulate_tissue(n: int, gtab: GradientTable, *, seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Noise-free signal (n, N) of ``n`` simulated voxels on ``gtab`` (S0 = 1) and their generating
    parameters (``klass`` index into :data:`TISSUE_CLASSES`, ``ndi``, ``odi``, ``fwf``, ``d_par``,
    ``mu`` (n, 3) of the main fascicle)."""
    rng = np.random.default_rng(seed)
    names = list(TISSUE_CLASSES)
    shares = np.array([TISSUE_CLASSES[k][0] for k in names])
    klass = rng.choice(len(names), size=n, p=shares / shares.sum())
    ndi, odi, fwf = np.empty((3, n))
    n_fasc = np.empty(n, dtype=int)
    for k, name in enumerate(names):
        _, nr, orng, fr, nf = TISSUE_CLASSES[name]
        sel = klass == k
        m = int(sel.sum())
        ndi[sel], odi[sel], fwf[sel] = rng.uniform(*nr, m), rng.uniform(*orng, m), rng.uniform(*fr, m)
        n_fasc[sel] = nf
    d_par = rng.uniform(*D_PAR_RANGE, n)
    mu = _random_unit(rng, n)
    mu2 = _perpendicular_at(rng, mu, rng.uniform(np.deg2rad(35), np.deg2rad(90), n))
    weight2 = np.where(n_fasc == 2, rng.uniform(0.3, 0.5, n), 0.0)
    ndi2 = np.clip(ndi + rng.normal(0, 0.05, n), 0.05, 0.95)
    odi2 = np.clip(odi + rng.normal(0, 0.03, n), 0.02, 0.95)
    bvals, bvecs = torch.tensor(gtab.bvals), torch.tensor(gtab.bvecs)
    signal = np.empty((n, len(gtab)))
    edges = np.linspace(*D_PAR_RANGE, 9)  # d∥ in 8 bins: the Watson series is built per scalar d∥
    t = lambda a: torch.as_tensor(a, dtype=torch.float64)  # noqa: E731
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (d_par >= lo) & (d_par <= hi)
        if not sel.any():
            continue
        dp = 0.5 * (lo + hi)
        d_par[sel] = dp
        ones, zeros = t(np.ones(sel.sum())), t(np.zeros(sel.sum()))
        s1 = noddi_signal(ones, t(ndi[sel]), t(odi[sel]), zeros, t(mu[sel]), bvals, bvecs, d_par=dp)
        s2 = noddi_signal(ones, t(ndi2[sel]), t(odi2[sel]), zeros, t(mu2[sel]), bvals, bvecs, d_par=dp)
        w2 = t(weight2[sel])[:, None]
        tissue = (1 - w2) * s1 + w2 * s2
        iso = torch.exp(-bvals * D_ISO)
        f = t(fwf[sel])[:, None]
        signal[sel] = ((1 - f) * tissue + f * iso).numpy()
    return signal, {"klass": klass, "ndi": ndi, "odi": odi, "fwf": fwf, "d_par": d_par, "mu": mu}


def simulate_features(n: int, *, seed: int = 0, progress: bool = False) -> np.ndarray:
    """(n', 9) training features: conventional DKI (WLS) and NODDI (NLLS) fits of :func:`simulate_tissue`
    on :func:`canonical_protocol` (n' ≤ n: voxels whose fits are not finite are dropped)."""
    from ..fit.dki import DiffusionKurtosisModel
    from ..fit.noddi import NoddiModel

    gtab = canonical_protocol()
    signal, _ = simulate_tissue(n, gtab, seed=seed)
    vol = signal[:, None, None, :].astype(np.float32)
    dki = DiffusionKurtosisModel(gtab, fit_method="WLS", device="cpu").fit(vol, progress=progress)
    noddi = NoddiModel(gtab, device="cpu").fit(vol, progress=progress)
    t = lambda a: torch.as_tensor(np.asarray(a).reshape(n, -1), dtype=torch.float64)  # noqa: E731
    params = dki.model_params.reshape(n, -1)
    feats, _ = features_from_fits(t(params[:, :6]), t(params[:, 6:21]), t(noddi.ndi)[:, 0], t(noddi.odi)[:, 0],
                                  t(noddi.fwf)[:, 0])
    feats = feats.numpy()
    return feats[np.isfinite(feats).all(1)]
