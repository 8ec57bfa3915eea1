"""PIGMENT zero-shot fit: the tissue prior adapted to one subject's own measurements.

Per voxel the unknowns are the nine tissue features f (:mod:`pigment_connect.pigment.tissue`), a
latent code z of the prior (``latent_dim``), a rotation (the fibre frame: 3 numbers through a
Cayley map around the WLS tensor's eigenvectors) and S0. The tissue predicts the signal of the
voxel's *own* gradient table through two physics models — the kurtosis model for b ≤ 3000 s/mm²
and NODDI-Watson for every measurement — and the fit maximises

    log p(data | f, R, S0) + log N(f; G(z), feature_sigma²) + log p(z)

(Gaussian or Rician likelihood; measurements seen by both models count half in each, so the
evidence is counted once; the second term is the VAE's decoder likelihood, widened; p(z) is the
prior's latent mixture, each voxel scored under its most probable component, re-chosen once at the
first optimum) by batched Levenberg–Marquardt, with the prior terms entering as pseudo-observations
scaled by σ. The features are parameterised as f = G(z) + feature_sigma·δ (δ ~ N(0, I)). Where
the table determines the kurtosis model the fit runs in two stages: a data-led one, with the tie
to the manifold loosened 100×, whose features the VAE encoder maps to a latent start; then the full
posterior from that start, in which the tensor and kurtosis features — which such a table determines
— are tied to the manifold 10× more loosely than NODDI's (:data:`DETERMINED_TIE`; the simulated
tissue the prior learned is less planar than real white matter, and a tight tie pulls real tensors
towards it). On every table the kurtosis tensor may depart from axial symmetry (W∆, with a prior
centred on half the tensor's planarity where the tensor is anisotropic beyond noise, :data:`ASYM_RAMP`,
and on 0 where it is not, :mod:`pigment_connect.pigment.forward`: on one shell W∆ cannot be told from
λ2 − λ3, and forcing it to zero makes real white matter's tensors too cylindrical); where
the table does not determine the kurtosis model, the log-eigenvalues' tie is widened in voxels that
are anisotropic beyond noise (:data:`SHAPE_TIE`). Any table
that determines a tensor works — down to 1 b0 + 6 directions — because what the data leave open
(kurtosis on one shell, NODDI's compartments without a second shell) is supplied by the prior's
joint distribution of the three models' parameters.

Uncertainty is the Laplace approximation at the optimum: the posterior covariance of the
variables is the inverse Gauss–Newton Hessian, pushed through the maps' Jacobian. The fibre frame
has the uniform (Haar) prior over rotations, which bounds what the data leave open (the frame of
isotropic tissue, the roll of axially symmetric tissue).

Which component of the latent mixture a voxel's tissue comes from is itself uncertain: at low SNR a
sparse table reads grey matter's FA high (noise), and the mode lands under an anisotropic
component. With ``evidence=True`` a voxel whose mode lies under an anisotropic component while its
data show no anisotropy beyond noise (:data:`CLEARLY_ANISOTROPIC`) is fitted again under the prior's
isotropic components (:data:`ISOTROPIC_FA`), and the Laplace evidence of each fit — data misfit,
prior density, the posterior volume (−½ log det H) — weighs the two. Neighbouring voxels are
mostly the same kind of tissue, so the groups of face neighbours are coupled (a two-state Potts
prior, :data:`GROUP_COUPLING`, solved by mean field over the whole mask once every voxel is
fitted): the maps are those of the more probable group's fit, their error bars the standard
deviation of the two groups' mixture. On both digital twins at b=0 SNR 10
(``benchmarks/bench_twin.py``) this roughly halves grey matter's FA error, lowers every map's
whole-brain error and brings the error bars' coverage into 0.5–0.85, but white matter pays: its
FA error rises towards the conventional fit's (slab, 1 b0 + 6: 0.65× → 0.98×; 1.13× without the
coupling), because real white matter read at that SNR often fits isotropic tissue as well. At the
scans' own SNR their FA agrees within 0.01. It is off by default, since white matter is what most
studies report; turn it on for grey matter, whole-brain maps or calibrated error bars at low SNR.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import torch

from .._typing import PathLike
from ..errors import InputError, ProtocolError
from ..fit.dki import check_kurtosis_protocol
from ..fit.lm import jacobian_fd, levenberg_marquardt
from ..fit.loglinear import check_tensor_protocol, design_matrix, weighted_log_linear
from ..fit.noise import check_sigma, noise_sigma
from ..fit.voxelwise import (check_chunk_size, check_dtype, check_noise, check_random_state, default_chunk_size, extract_voxels, gradient_tensors,
                             need_affine, resolve_device, run_chunked, signal_floor, sliced_grid)
from ..io.dwi import DiffusionData
from ..io.gradients import GradientTable
from ..io.maps import MicrostructureMaps
from ..physics.dti import fractional_anisotropy, six_from_tensor, tensor_from_six
from ..physics.noddi import D_PAR, legendre_order, stick_coefficients
from ..physics.noise import rician_expected_residual, rician_nll
from .forward import ASYM_SLOPE, N_KURTOSIS_FEATURES, TissueSignalModel
from .network import TissuePrior, load_prior
from .spatial import check_neighbourhood, face_neighbour_index, two_group_mean_field
from .tissue import DKI_MAX_B, FEATURES, MAP_NAMES, eigenframe, tissue_maps, tissue_signal, tissue_tensor

__all__ = ["PigmentModel", "PigmentFit", "UNCERTAIN_MAPS"]

FIT_METHODS = ("NLLS",)
LOOSE_TIE = 100.0
"""Stage 1 of the fit widens feature_sigma by this factor (a data-led start; see ``fit``)."""
DETERMINED_TIE = 10.0
"""Where the table determines the kurtosis model, the tensor and kurtosis features' tie to the
prior's manifold is widened by this factor in the final stage too (NODDI's features keep theirs)."""
SHAPE_TIE = 10.0
"""Where the table does not determine the kurtosis model, the log-eigenvalues' tie to the prior's
manifold is widened by up to this factor in voxels whose tensor is anisotropic beyond noise
(:data:`SHAPE_RAMP`): the prior's white matter is less planar than real white matter (log λ2 −
log λ3 ≈ 0.22 against 0.54–0.69 in the dense fits of DIPY's real small_101D crop), and a tight tie
pulls real tensors towards it (``benchmarks/bench_twin.py``: white-matter FA −0.03 to −0.045 on the
digital twin of the mdt slab)."""
SHAPE_RAMP = (0.3, 0.5)
"""FA (less its noise margin) over which the log-eigenvalues' tie goes from the prior's to × SHAPE_TIE."""
SHAPE_NOISE_MARGIN = 2.0
"""Noise standard deviations of the start tensor's FA taken off before :data:`SHAPE_RAMP`, so that
grey matter whose FA noise inflates keeps the prior's tie (at b=0 SNR 10, 1 b0 + 6 reads grey
matter's FA ≈ 0.2 too high)."""
ASYM_RAMP = (0.15, 0.35)
"""FA (less :data:`SHAPE_NOISE_MARGIN` noise s.d.) over which the slope of W∆'s prior mean on the
planarity goes from 0 to :data:`~.forward.ASYM_SLOPE`. In near-isotropic tissue the planarity a sparse
table reads is noise, and W∆ tied to it feeds that noise back into the tensor's shape: with the full
slope everywhere, grey-matter FA was 0.001–0.004 worse on both digital twins than with W∆ = 0
(``benchmarks/bench_twin.py``, 1 b0 + 6/12, 1 b0 + 8 + 8); with this ramp it is back to that, and
white matter keeps the gain (0.3–0.5 cost 0.002–0.004 of it)."""
CLEARLY_ANISOTROPIC = 0.3
"""FA (less :data:`SHAPE_NOISE_MARGIN` noise s.d.) of the start tensor above which a voxel whose mode
lies under an anisotropic component is not fitted under the isotropic ones (``evidence``)."""
ISOTROPIC_FA = 0.3
"""A mixture component whose centre decodes to FA ≤ this is in the isotropic group (``evidence``). The
shipped prior's centres decode to FA 0.10–0.19 (4 components, 42% of the weight) and 0.44–0.56 (4, 58%):
any cut between those gives the same groups; 0.3 was set before any measurement, not tuned."""
GROUP_COUPLING = 0.5
"""Log-prior bonus, per face neighbour in the same component group, with which ``evidence`` couples
neighbouring voxels' groups (:func:`~.spatial.two_group_mean_field`): white matter lies beside white
matter, so a voxel whose own data cannot tell the groups apart follows its neighbours. Measured on
both digital twins (``benchmarks/bench_twin.py``'s voxels and noise, in-plane neighbours; b=0 SNR 10,
WM / GM FA median error, coupling 0 → 0.5 → 1): slab 1 b0 + 6 0.147 / 0.093 → 0.128 / 0.090 → 0.115 /
0.092; crop 1 b0 + 6 0.198 / 0.116 → 0.162 / 0.110 → 0.140 / 0.110; crop 1 b0 + 12 0.087 / 0.110 →
0.083 / 0.097 → 0.087 / 0.095. With 3-D neighbours 1 cost the crop's white matter at 1 b0 + 12 (0.108,
against 0.083 at 0.5), so the smaller value is kept. At the scans' own SNR every value gives FA
errors within 0.002."""
ALTERNATIVE = "other_group_"
"""Prefix of the other component group's outputs inside a fit with ``evidence`` (until the choice)."""
UNCERTAIN_MAPS = ("fa", "md", "mk", "ndi", "odi", "fwf")
"""Maps given a posterior standard deviation."""
BYTES_PER_VOXEL_ROW = 1024
"""GPU working set of the fit per voxel and likelihood row (bytes), measured: peak 2.04 GiB for
65536 voxels × 34 rows (1 b0 + 16 directions, each row in both the DKI and NODDI terms), error bars on."""
UNCERTAINTY_QUADRATURE = (8, 16)
"""MK quadrature for the maps' derivatives in the error bars (MK within 2e-3 of the full one)."""


class PigmentModel:
    """PIGMENT for one gradient table.

    Parameters
    ----------
    gtab : any table that determines a diffusion tensor (≥ 1 b=0, ≥ 6 non-collinear directions).
    prior : a :class:`~pigment_connect.pigment.TissuePrior`, a path to one, or None for the shipped prior.
    fit_method : ``"NLLS"``. noise : ``"rician"`` likelihood (default) or ``"gaussian"`` (least squares).
    sigma : noise σ in signal units; default estimated from repeated b=0 volumes, else from the
        residuals of a tensor fit (one b0 and ≥ 8 directions, :func:`~pigment_connect.fit.noise.noise_sigma`), else assumed from
        a b=0 SNR of 30 in white matter (with a warning: pass ``sigma`` for a calibrated prior weight).
    feature_sigma : how far (in standardised feature units) a voxel's tissue may leave the prior's
        manifold: the features are free variables with the penalty ‖(f − G(z))/feature_sigma‖²/2,
        the VAE's own decoder likelihood widened from its training value 0.1 so that real tissue
        the simulations did not cover can still be fitted where the data determine it (× 10 for the
        tensor and kurtosis features where the table determines the kurtosis model).
    n_iter : Levenberg–Marquardt iterations. n_init : prior samples searched for each voxel's start.
    random_state : seeds the start search (same input + same random_state = same output).
    uncertainty : also return posterior standard deviations of :data:`UNCERTAIN_MAPS`.
    evidence : where the mode lies under an anisotropic component but the data show no anisotropy
        beyond noise, choose between the prior's isotropic and anisotropic components by the Laplace
        evidence of the best fit under each group, neighbours' groups coupled, with error bars from
        the two groups' mixture (about the default's time on a 1 b0 + 16 brain at its own SNR, up to 1.6×
        at b=0 SNR 10; see the module docstring for
        what it gains and costs; ``fit(neighbourhood=)`` says whose groups are coupled). False
        (default): one fit, under the component of highest prior density at its optimum (at b=0 SNR
        10 and 6 directions it reads grey matter's FA ≈ 0.2 too high and its FA and ODI error bars
        cover too few voxels, ``benchmarks/bench_twin.py``).
    group_coupling : with ``evidence``, the log-prior bonus per face neighbour of the same group
        (:data:`GROUP_COUPLING`; 0: each voxel on its own evidence).
    device : default CUDA when available. dtype : float32 (default) or float64.
    chunk_size : voxels per batch (bounds memory). Default 4096 on a CPU; on a GPU up to 65536, as
        many as fit a quarter of its free memory (≈ 1 kB per voxel and measurement row: 2 GiB at
        65536 voxels of a 1 b0 + 16 scan). A 196k-voxel brain took 30 s on an H100 in 4096-voxel
        batches and 3.5 s in 65536-voxel ones.
    """

    def __init__(self, gtab: GradientTable, *, prior: TissuePrior | PathLike | None = None, fit_method: str = "NLLS",
                 noise: str | None = None,
                 sigma: float | None = None, n_iter: int = 30, n_init: int = 256, random_state: int = 0,
                 feature_sigma: float = 0.3, uncertainty: bool = True, evidence: bool = False,
                 group_coupling: float = GROUP_COUPLING, device: torch.device | str | None = None,
                 dtype: torch.dtype = torch.float32, chunk_size: int | None = None, seed: int | None = None) -> None:
        fit_method, noise = check_noise(fit_method, noise, FIT_METHODS, default="rician")
        check_tensor_protocol(gtab)
        if gtab.n_b0 == 0:
            raise InputError("PIGMENT needs at least one b=0 volume to anchor S0.", file=gtab.source,
                             fix="include a b=0 volume.")
        check_sigma(sigma)
        if n_iter < 1 or n_init < 1:
            raise InputError(f"n_iter and n_init must be ≥ 1, got {n_iter} and {n_init}.")
        self.gtab = gtab
        self.prior = prior if isinstance(prior, TissuePrior) else load_prior(prior)
        self.fit_method, self.noise, self.sigma = fit_method, noise, sigma
        self.n_iter, self.n_init = int(n_iter), int(n_init)
        self.random_state = check_random_state(random_state, seed)
        self.uncertainty = bool(uncertainty)
        self.evidence = bool(evidence)
        if not group_coupling >= 0:
            raise InputError(f"group_coupling must be ≥ 0, got {group_coupling}.")
        self.group_coupling = float(group_coupling)
        if not feature_sigma > 0:
            raise InputError(f"feature_sigma must be positive, got {feature_sigma}.")
        self.feature_sigma = float(feature_sigma)
        self.device, self.dtype = device, check_dtype(dtype)
        self.chunk_size = check_chunk_size(chunk_size)

    def fit(self, dwi: DiffusionData | np.ndarray, *, mask: np.ndarray | None = None, neighbourhood: str = "3d",
            progress: bool = False) -> PigmentFit:
        """Fit the voxels of ``mask``; returns a :class:`PigmentFit`.

        ``neighbourhood`` (``evidence`` only): whose component groups a voxel's is coupled to, the
        voxels sharing a face with it in 3-D (``"3d"``) or in its slice (``"in-plane"``, for slabs
        whose slices are not contiguous); neighbours outside the mask are left out. A bare array of
        voxels (no 3-D grid) is fitted voxel by voxel."""
        check_neighbourhood(neighbourhood)
        vox = extract_voxels(dwi, self.gtab, mask)
        device = resolve_device(self.device)
        dt = self.dtype
        sigma = noise_sigma(self.gtab, self.sigma, vox.signal, stacklevel=3) if len(vox.signal) else 1.0
        prior = self.prior.to(device=device, dtype=dt)
        bvals, bvecs = gradient_tensors(self.gtab, device, dt)
        dki_rows = torch.nonzero(bvals <= DKI_MAX_B)[:, 0]
        # Each measurement's likelihood weight: ½ where both models explain it, 1 where only NODDI does.
        weights = torch.cat([torch.full((len(dki_rows),), 0.5, dtype=dt, device=device),
                             torch.where(bvals <= DKI_MAX_B, 0.5, 1.0).to(dt)])
        stick = stick_coefficients(bvals * D_PAR, legendre_order(float(bvals.max()) * D_PAR,
                                                                 tol=1e-7 if dt == torch.float32 else 1e-9))
        X = torch.as_tensor(design_matrix(self.gtab), dtype=torch.float64, device=device)
        floor = signal_floor(vox.signal, None)
        gen = torch.Generator().manual_seed(self.random_state)
        z_bank = prior.latent_means  # every component's centre, then draws from the mixture
        if self.n_init > len(z_bank):
            z_bank = torch.cat([z_bank, prior.sample_latent(self.n_init - len(z_bank), gen)])
        z_bank = z_bank[:self.n_init]
        with torch.no_grad():
            bank_logev = torch.sort(prior.decode(z_bank)[:, :3], -1, descending=True).values
            bank_comp = prior.latent_log_density(z_bank).argmax(-1)
            # the mixture's components in two groups, isotropic and anisotropic tissue (by their centres' FA)
            group = tissue_maps(prior.decode(prior.latent_means))["fa"] <= ISOTROPIC_FA
            comp_log_norm = prior.latent_log_normaliser()  # the latent residual in the cost carries the rest
        compare_groups = self.evidence and bool(group.any()) and not bool(group.all())
        rician = self.noise == "rician"
        d = prior.latent_dim
        n_sig = len(weights)

        nf = len(FEATURES)
        sd = self.feature_sigma
        try:
            check_kurtosis_protocol(self.gtab.subset(np.flatnonzero(self.gtab.bvals <= DKI_MAX_B)))
            data_led = True
        except ProtocolError:
            data_led = False
        # The kurtosis tensor's departure from axial symmetry (W∆) is a variable on every table: the data
        # place it where the table determines the kurtosis tensor, its planarity-given prior elsewhere.
        model = TissueSignalModel(prior, bvals, bvecs, dki_rows, stick, asymmetric=True)
        features_of, predict = model.features, model.predict

        sqrt_w = weights.sqrt()

        residual = partial(_fit_residual, n_sig=n_sig, sqrt_w=sqrt_w, rician=rician)
        cost = partial(_fit_cost, n_sig=n_sig, weights=weights, rician=rician)

        def predict_lm(x, base, comp, spread, slope, sig):  # σ rides along for residual_jacobian
            return predict(x, base, comp, spread, slope)

        def residual_jacobian(x, pred, base, comp, spread, slope, sig):
            """The prediction's Jacobian scaled as ``residual`` scales the prediction, so that the
            solver's Gauss–Newton step (Fisher scoring for Rician noise) is that of the cost it
            accepts steps on."""
            return _residual_scaled(model.jacobian(x, pred, base, comp, spread, slope), n_sig, sqrt_w, sig)

        def prepare(signal: torch.Tensor) -> dict[str, torch.Tensor]:
            """What every fit of these voxels shares: the start tensor, frames, scaled data, ties."""
            beta = weighted_log_linear(signal, X, floor=floor)
            evals, evecs = (t.to(dt) for t in eigenframe(beta[:, :6]))
            y_all = signal.to(dt)
            scale = y_all.amax(-1).clamp_min(1e-12)
            spread = torch.full((len(signal), nf), sd, dtype=dt, device=device)
            fa_beyond_noise = _fa_beyond_noise(beta, X, sigma).to(dt)
            if data_led:
                spread[:, :N_KURTOSIS_FEATURES] *= DETERMINED_TIE
            else:  # white matter's tensor shape from the data where they show anisotropy beyond noise
                spread[:, :3] *= (1.0 + (SHAPE_TIE - 1.0) * _ramp(fa_beyond_noise, SHAPE_RAMP))[:, None]
            # W∆ follows the planarity of tensors anisotropic beyond noise; elsewhere planarity is noise
            slope = ASYM_SLOPE * _ramp(fa_beyond_noise, ASYM_RAMP)
            return dict(logev=torch.log(evals.clamp_min(1e-5)), evecs=evecs, scale=scale,
                        y=torch.cat([y_all[:, dki_rows], y_all], -1) / scale[:, None], sig=(sigma / scale)[:, None],
                        s0_start=torch.exp(beta[:, 6].to(dt)) / scale, spread=spread, slope=slope,
                        fa_beyond_noise=fa_beyond_noise)

        def optimise(pre: dict[str, torch.Tensor], allowed: torch.Tensor | None, n_iter: int = self.n_iter
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            """The posterior mode of each voxel (x, its component, its cost), the latent code restricted
            to the mixture components ``allowed`` (V, K) bool (None: any)."""
            evecs, y, sig, spread, slope = (pre[k] for k in ("evecs", "y", "sig", "spread", "slope"))
            n = len(y)

            def best_component(z):
                logp = prior.latent_log_density(z)
                return (logp if allowed is None else logp.masked_fill(~allowed, -torch.inf)).argmax(-1)

            dist = torch.cdist(pre["logev"], bank_logev)
            if allowed is not None:
                dist = dist.masked_fill(~allowed[:, bank_comp], torch.inf)
            z0 = z_bank[dist.argmin(-1)]
            # the tensor from the data, the rest from the prior: δ is zero but for the log-eigenvalues
            delta0 = torch.zeros(n, nf, dtype=dt, device=device)
            delta0[:, :3] = ((pre["logev"] - prior.mean[:3]) / prior.std[:3] - prior.decoder(z0)[:, :3]) / spread[:, :3]
            x = torch.cat([delta0, z0, torch.zeros(n, 3, dtype=dt, device=device),
                           torch.log(pre["s0_start"].clamp(1e-3, 10.0))[:, None],
                           torch.zeros(n, model.n_var - model.i_s0 - 1, dtype=dt, device=device)], -1)
            comp = best_component(z0)
            lm = dict(residual=residual, cost=cost, tol=1e-6, jacobian=residual_jacobian)
            # Stage 1, data-led: the features barely tied to the manifold (spread × LOOSE_TIE), so the
            # data place them; the encoder then gives their latent code and its component. Started
            # directly under the full prior, the fit stops in poorer local optima (higher objective).
            # Only where the table determines the kurtosis model: with fewer measurements than
            # unknowns a data-led stage has nothing to lead with, and the prior's start is better.
            if data_led:
                loose = spread * LOOSE_TIE
                x[:, :nf] *= spread / loose
                x, _ = levenberg_marquardt(predict_lm, x, (y, sig), n_iter=max(self.n_iter // 2, 1),
                                           constants=(evecs, comp, loose, slope, sig), **lm)
                f1 = features_of(x, loose)
                z1 = prior.encode(f1)[0]
                x[:, nf:nf + d] = z1
                x[:, :nf] = ((f1 - prior.mean) / prior.std - prior.decoder(z1)) / spread
                comp = best_component(z1)
            # Stage 2: the full posterior from there.
            x, c = levenberg_marquardt(predict_lm, x, (y, sig), n_iter=n_iter,
                                       constants=(evecs, comp, spread, slope, sig), **lm)
            best = best_component(x[:, nf:nf + d])
            moved = torch.nonzero(best != comp)[:, 0]
            if len(moved):  # the optimum lies under another component: refit those voxels under it
                comp[moved] = best[moved]
                x[moved], c[moved] = levenberg_marquardt(predict_lm, x[moved], (y[moved], sig[moved]),
                                                         n_iter=max(self.n_iter // 2, 1),
                                                         constants=(evecs[moved], comp[moved], spread[moved],
                                                                    slope[moved], sig[moved]),
                                                         **lm)
            return x, comp, c

        def outputs(pre: dict[str, torch.Tensor], x: torch.Tensor, comp: torch.Tensor) -> dict[str, torch.Tensor]:
            """The maps of the fit x under components ``comp``."""
            spread, scale = pre["spread"], pre["scale"]
            feats = features_of(x, spread)
            rot = model.rotation(x, pre["evecs"])
            w_asym = model.w_asym(x)
            out = dict(tissue_maps(feats, w_asym=w_asym))
            principal = feats[:, :3].argmax(-1)  # log-eigenvalues: the largest picks e1
            out["evec1"] = torch.gather(rot, 2, principal[:, None, None].expand(-1, 3, 1))[..., 0]
            out["tensor"] = six_from_tensor(tissue_tensor(feats, rot))
            out["s0"] = torch.exp(model.log_s0(x)) * scale
            # W∆'s sign follows the labels of e2 and e3: reported for λ2 ≥ λ3 (swapping them flips it)
            out["w_asym"] = (torch.zeros_like(out["s0"]) if w_asym is None
                             else torch.where(feats[:, 1] >= feats[:, 2], w_asym, -w_asym))
            pred = predict(x, pre["evecs"], comp, spread, pre["slope"])[:, :n_sig]
            out["nrmse"] = torch.sqrt((((pred - pre["y"]) ** 2) * weights).sum(-1) / weights.sum())
            out["latent"] = x[:, nf:nf + d]
            out["features"] = feats
            out["frame"] = rot
            return out

        def laplace(pre: dict[str, torch.Tensor], x: torch.Tensor, comp: torch.Tensor, c: torch.Tensor
                    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
            """The maps' posterior s.d. at the optimum x and its log evidence (Laplace)."""
            std, logdet = _laplace_std(model, x, (pre["evecs"], comp, pre["spread"], pre["slope"]), pre["sig"], sqrt_w)
            return std, -c / pre["sig"][:, 0] ** 2 - 0.5 * logdet + comp_log_norm[comp] + _log_haar(x, model)

        def solve(signal: torch.Tensor) -> dict[str, torch.Tensor]:
            pre = prepare(signal)
            x, comp, c = optimise(pre, None)
            out = outputs(pre, x, comp)
            # Where the mode lies under an anisotropic component but the data show no anisotropy beyond
            # noise (:data:`CLEARLY_ANISOTROPIC`), the best fit under the isotropic group too, and the
            # evidence of each. (Also comparing the other voxels — modes under isotropic components, or
            # data anisotropic beyond noise — moved FA errors by ≤ 0.003 and coverage by ≤ 0.05 on the
            # slab's twin, at 1.6× the one-fit time against 1.4×.)
            todo = (torch.nonzero(~group[comp] & (pre["fa_beyond_noise"] <= CLEARLY_ANISOTROPIC))[:, 0]
                    if compare_groups else comp[:0])
            if self.uncertainty or len(todo):
                std, log_ev = laplace(pre, x, comp, c)
                if self.uncertainty:
                    out.update(std)
            if not compare_groups:
                return out
            # Where compared (the first fit anisotropic, the second isotropic): the isotropic fit and its log
            # odds (NaN elsewhere). Which group each voxel takes is decided once the whole mask is fitted, its
            # neighbours' groups coupled (_choose_groups).
            alt = {k: torch.full_like(v, torch.nan) for k, v in out.items()}
            log_odds = torch.full_like(c, torch.nan)
            if len(todo):
                sub = {k: v[todo] for k, v in pre.items()}
                # (half the iterations: on the twins 15 and 30 gave the same maps and coverage to 0.001)
                x2, comp2, c2 = optimise(sub, group[None, :] != group[comp[todo]][:, None], max(self.n_iter // 2, 1))
                std2, log_ev2 = laplace(sub, x2, comp2, c2)
                fit2 = {**outputs(sub, x2, comp2), **std2}
                for k, v in alt.items():
                    v[todo] = fit2[k]
                # a failed second fit (NaN evidence) leaves the first
                log_odds[todo] = torch.nan_to_num(log_ev2 - log_ev[todo], nan=-torch.inf)
            out.update({ALTERNATIVE + k: v for k, v in alt.items()})
            out["isotropic_log_odds"], out["isotropic_group"] = log_odds, group[comp].to(c.dtype)
            return out

        chunk_size = self.chunk_size or default_chunk_size(device, BYTES_PER_VOXEL_ROW * n_sig, cpu=4096)
        out = run_chunked(solve, vox.signal, chunk_size=chunk_size, device=device, dtype=torch.float64,
                          progress=progress, desc="PIGMENT fit")
        if not out:
            raise InputError("the mask selects no voxel: nothing to fit.", file=vox.source, fix="check the mask.")
        if compare_groups:
            neighbours = (face_neighbour_index(vox.mask, neighbourhood)
                          if vox.mask.ndim == 3 and self.group_coupling > 0 else None)
            out = _choose_groups(out, neighbours, self.group_coupling)
        return PigmentFit(self, {k: vox.scatter(v) for k, v in out.items()}, vox.mask, vox.affine, sigma,
                          asymmetric=model.asymmetric)


def _fit_residual(pred: torch.Tensor, y: torch.Tensor, sig: torch.Tensor, *, n_sig: int, sqrt_w: torch.Tensor,
                  rician: bool) -> torch.Tensor:
    """The zero-shot fit's residual (V, M) for predictions ``pred`` (V, M) of :class:`TissueSignalModel`:
    signal rows (Gaussian: prediction − measurement; Rician: minus the expected residual, for
    Fisher scoring) times √(likelihood weight), then the prior's pseudo-observations times σ (V, 1)."""
    head = pred[:, :n_sig]
    r = head - y if not rician else -rician_expected_residual(head, y, sig)
    return torch.cat([r * sqrt_w, pred[:, n_sig:] * sig], -1)


def _fit_cost(pred: torch.Tensor, r: torch.Tensor, y: torch.Tensor, sig: torch.Tensor, *, n_sig: int,
              weights: torch.Tensor, rician: bool) -> torch.Tensor:
    """σ² times the negative log posterior (V,), up to a constant, of :func:`_fit_residual`'s fit."""
    if not rician:
        return 0.5 * (r * r).sum(-1)
    return rician_nll(pred[:, :n_sig], y, sig, weights) * sig[:, 0] ** 2 + 0.5 * (r[:, n_sig:] ** 2).sum(-1)


def _residual_scaled(J: torch.Tensor, n_sig: int, sqrt_w: torch.Tensor, sig: torch.Tensor) -> torch.Tensor:
    """The prediction's Jacobian J (V, P, M) with each of its M outputs scaled as :func:`_fit_residual`
    scales the prediction: the signal outputs by √(likelihood weight) (``sqrt_w`` (n_sig,)), the prior's
    pseudo-observations by σ (``sig`` (V, 1)); the cost is σ² times the negative log posterior."""
    return torch.cat([J[..., :n_sig] * sqrt_w, J[..., n_sig:] * sig[:, :, None]], -1)


def _omega(model: TissueSignalModel) -> slice:
    """The slots of x holding the frame's Cayley coordinates ω."""
    start = len(FEATURES) + model.d
    return slice(start, start + 3)


def _log_haar(x: torch.Tensor, model: TissueSignalModel) -> torch.Tensor:
    """(V,) log density of the frame's ω under the uniform (Haar) prior over rotations: in Cayley
    coordinates 1/(π²(1 + |ω|²)²)."""
    w = x[:, _omega(model)]
    return -2.0 * torch.log1p((w * w).sum(-1)) - 2.0 * np.log(np.pi)


def _laplace_std(model: TissueSignalModel, x, constants, sig, sqrt_w) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Posterior standard deviations of :data:`UNCERTAIN_MAPS` (Laplace approximation) and log det H
    (V,) for the evidence: the covariance of all variables x is the inverse Gauss–Newton Hessian H
    (the frame's Haar prior included); the maps' Jacobian in x is ∂f/∂x (the model's feature
    Jacobian) chained with that of :func:`tissue_maps` in the features (forward differences)."""
    J = model.jacobian(x, model.predict(x, *constants), *constants)  # (V, P, M)
    J = _residual_scaled(J, model.n_sig, sqrt_w, sig) / sig[:, :, None]  # whitened: data / σ, prior rows
    H = J @ J.transpose(1, 2)
    # the fibre frame's prior, uniform over rotations (Haar; in the Cayley coordinates ω its density is
    # 1/(π²(1 + |ω|²)²)): its Gauss–Newton curvature 4/(1 + |ω|²) bounds what the data leave open
    om = _omega(model)
    w = x[:, om]
    H[:, om, om] += (4.0 / (1.0 + (w * w).sum(-1)))[:, None, None] * torch.eye(3, dtype=H.dtype, device=H.device)
    H = H + 1e-9 * torch.eye(H.shape[-1], dtype=H.dtype, device=H.device)
    cov = torch.linalg.inv(H)
    logdet = torch.linalg.slogdet(H)[1]

    nf = len(FEATURES)

    def maps_of(v):  # v: the features, then W∆ where the model has it
        m = tissue_maps(v[:, :nf], quadrature=UNCERTAINTY_QUADRATURE, w_asym=v[:, nf] if model.asymmetric else None)
        return torch.stack([m[n] for n in UNCERTAIN_MAPS], -1)

    spread = constants[2]  # constants: (base, component, spread, W∆ slope), as predict takes them
    Jf = model.feature_jacobian(x, spread)  # (V, P, nf)
    v = model.features(x, spread)
    if model.asymmetric:  # W∆ is a variable of its own: ∂W∆/∂x is the unit vector of its slot
        v = torch.cat([v, model.w_asym(x)[:, None]], -1)
        unit = torch.zeros(len(x), model.n_var, 1, dtype=x.dtype, device=x.device)
        unit[:, model.i_s0 + 1] = 1.0
        Jf = torch.cat([Jf, unit], -1)
    Jm = Jf @ jacobian_fd(maps_of, v, maps_of(v))  # (V, P, n_maps)
    var = torch.einsum("vpm,vpq,vqm->vm", Jm, cov, Jm)
    return {f"{n}_std": torch.sqrt(var[:, i].clamp_min(0)) for i, n in enumerate(UNCERTAIN_MAPS)}, logdet


def _ramp(v: torch.Tensor, ramp: tuple[float, float]) -> torch.Tensor:
    """(V,) in [0, 1]: how far ``v`` lies into ``ramp`` = (lo, hi) (0 below lo, 1 above hi)."""
    lo, hi = ramp
    return ((v - lo) / (hi - lo)).clamp(0.0, 1.0)


def _fa_beyond_noise(beta: torch.Tensor, X: torch.Tensor, sigma: float) -> torch.Tensor:
    """(V,) the log-linear tensor's FA less :data:`SHAPE_NOISE_MARGIN` times its noise standard
    deviation (:func:`_fa_and_noise`): what :data:`SHAPE_RAMP` and :data:`ASYM_RAMP` are read on."""
    fa, sd = _fa_and_noise(beta, X, sigma)
    return fa - SHAPE_NOISE_MARGIN * sd


def _fa_and_noise(beta: torch.Tensor, X: torch.Tensor, sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """FA (V,) of log-linear tensor fits ``beta`` (V, 7) on design ``X`` (N, 7) and its standard
    deviation from noise σ (signal units; delta method: Cov β = (Xᵀ diag(S²/σ²) X)⁻¹ with S the
    fit's signal, the FA gradient by forward differences)."""
    def fa_of(six):
        return fractional_anisotropy(torch.linalg.eigvalsh(tensor_from_six(six)))[:, None]

    six = beta[:, :6]
    fa = fa_of(six)
    grad = jacobian_fd(fa_of, six, fa)[..., 0]  # (V, 6)
    w = torch.exp(2.0 * (beta @ X.T)) / sigma**2  # (V, N): 1/var of each log measurement
    info = torch.einsum("vn,ni,nj->vij", w, X, X)
    cov = torch.linalg.pinv(info)[:, :6, :6]
    sd = torch.sqrt(torch.einsum("vi,vij,vj->v", grad, cov, grad).clamp_min(0))
    return fa[:, 0], sd


def _choose_groups(out: dict[str, np.ndarray], neighbours: np.ndarray | None, coupling: float) -> dict[str, np.ndarray]:
    """The maps of the more probable component group per voxel, from a whole-mask ``evidence`` fit.

    ``out`` holds the first fit's outputs (V, ...), the isotropic group's fit where compared (the first
    fit is then anisotropic; ``ALTERNATIVE`` + name, NaN elsewhere), its log odds over the first fit
    (``isotropic_log_odds``, NaN where not compared) and whether the first fit is isotropic
    (``isotropic_group``: the fixed group of the voxels not compared). The groups' posterior
    couples face neighbours (:func:`~.spatial.two_group_mean_field`, ``coupling`` per neighbour, none
    where ``neighbours`` is None). Where compared, the maps are those of the more probable group's fit
    and their s.d. the two groups' mixture s.d. (each group its Laplace posterior). Adds
    ``isotropic_probability`` (V,): 1 or 0 where not compared."""
    log_odds, first_iso = out.pop("isotropic_log_odds"), out.pop("isotropic_group") > 0.5
    alt = {k[len(ALTERNATIVE):]: out.pop(k) for k in list(out) if k.startswith(ALTERNATIVE)}
    log_odds[np.isneginf(log_odds)] = np.nan  # a failed second fit: the voxel keeps its first group
    compared = ~np.isnan(log_odds)
    p_iso = two_group_mean_field(log_odds, first_iso, neighbours, coupling)
    w = np.where(compared, p_iso, 0.0)  # the isotropic fit's probability where it is the second one
    mixture_std = {}
    for name in UNCERTAIN_MAPS:
        if f"{name}_std" not in out:
            break
        m1, m2, s1, s2 = out[name], alt[name], out[f"{name}_std"], alt[f"{name}_std"]
        with np.errstate(invalid="ignore"):
            mean = (1 - w) * m1 + w * m2
            var = (1 - w) * (s1**2 + (m1 - mean) ** 2) + w * (s2**2 + (m2 - mean) ** 2)
        mixture_std[f"{name}_std"] = np.where(w > 0, np.sqrt(var), s1)
    pick = w > 0.5
    for k, v in alt.items():
        out[k] = np.where(pick.reshape(-1, *[1] * (v.ndim - 1)), v, out[k])
    out.update(mixture_std)
    out["isotropic_probability"] = p_iso
    return out


class PigmentFit:
    """Result of :meth:`PigmentModel.fit`.

    Attributes
    ----------
    model : the :class:`PigmentModel`. mask : (X, Y, Z) bool, the fitted voxels. affine : (4, 4)
        or None (a bare array was fitted). sigma : the noise σ used (signal units).
    fa, md, ad, rd, mk, ak, rk, mkt, ndi, odi, fwf : (X, Y, Z) maps (:data:`~pigment_connect.pigment.MAP_NAMES`;
        diffusivities in mm²/s). evec1 : (X, Y, Z, 3). tensor : (X, Y, Z, 6) mm²/s. s0 : (X, Y, Z).
        nrmse : (X, Y, Z) the fit's normalised residual. latent : (X, Y, Z, latent_dim) the adapted
        code. features : (X, Y, Z, 9) the adapted tissue (:data:`~pigment_connect.pigment.FEATURES`).
        frame : (X, Y, Z, 3, 3) its fibre frame (columns e1, e2, e3). w_asym : (X, Y, Z) the
        kurtosis's departure from axial symmetry, W∆ = (W(e2) − W(e3))/2 with λ2 ≥ λ3 (from the data
        where the table determines the kurtosis tensor, from its planarity-given prior elsewhere).
    fa_std, md_std, mk_std, ndi_std, odi_std, fwf_std : posterior standard deviations
        (:data:`UNCERTAIN_MAPS`; absent when the model was asked for no uncertainty).
    isotropic_probability : (X, Y, Z) with ``evidence`` only: the posterior probability that the
        voxel's tissue is of the prior's isotropic components (1 or 0 where the groups were not compared).
    """

    def __init__(self, model: PigmentModel, params: dict[str, np.ndarray], mask: np.ndarray,
                 affine: np.ndarray | None, sigma: float, *, asymmetric: bool = False):
        self.model, self.params, self.mask, self.affine, self.sigma = model, params, mask, affine, sigma
        self.asymmetric = asymmetric  # W∆ was a variable of the fit

    def __getitem__(self, index) -> PigmentFit:
        """The fit of the voxels ``index`` selects (as DIPY's ``fit[index]``)."""
        mask, affine = sliced_grid(index, self.mask, self.affine)
        return PigmentFit(self.model, {k: v[np.index_exp[index]] for k, v in self.params.items()}, mask, affine,
                          self.sigma, asymmetric=self.asymmetric)

    def predict(self, gtab: GradientTable | None = None, S0: float | np.ndarray | None = None) -> np.ndarray:
        """(X, Y, Z, N) signal of each voxel's adapted tissue on ``gtab`` (default: the fitted
        table), through PIGMENT's physics: the kurtosis and NODDI descriptions of the tissue
        averaged where b ≤ :data:`~pigment_connect.pigment.tissue.DKI_MAX_B`, NODDI alone beyond
        (:func:`~pigment_connect.pigment.tissue.tissue_signal`), times ``S0`` (a number or a
        (X, Y, Z) map; default the fitted S0). 0 outside the mask."""
        gtab = gtab or self.model.gtab
        m = self.mask
        t = lambda a: torch.from_numpy(np.array(a, dtype=np.float64))  # noqa: E731  (a copy: tables are read-only)
        feats, frame = t(self.params["features"][m]), t(self.params["frame"][m])
        w_asym = None
        if self.asymmetric:  # the reported W∆ follows λ2 ≥ λ3; the frame's own sign is what the signal needs
            w = t(self.params["w_asym"][m])
            w_asym = torch.where(feats[:, 1] >= feats[:, 2], w, -w)
        s0 = self.params["s0"][m] if S0 is None else np.broadcast_to(np.asarray(S0, dtype=np.float64), m.shape)[m]
        signal = tissue_signal(feats, frame, t(gtab.bvals), t(gtab.bvecs), w_asym=w_asym) * t(s0)[:, None]
        out = np.zeros(m.shape + (len(gtab),))
        out[m] = signal.numpy()
        return out

    @property
    def maps(self) -> MicrostructureMaps:
        """All maps (model ``"pigment"``) with the posterior standard deviations as uncertainty;
        ``w_asym`` among them, and ``isotropic_probability`` with ``evidence`` (where the isotropic
        group was in question, and how it came out); ``latent`` (X, Y, Z, latent_dim) and
        ``features`` (X, Y, Z, 9, :data:`~pigment_connect.pigment.FEATURES`), the adapted tissue, for
        :mod:`pigment_connect.features`."""
        m = self.mask
        names = [*MAP_NAMES, "s0", "nrmse", *(["w_asym"] if self.asymmetric else []),
                 *(["isotropic_probability"] if "isotropic_probability" in self.params else [])]
        maps = {n: np.where(m, self.params[n], 0.0).astype(np.float32) for n in names}
        maps["evec1"] = np.where(m[..., None], self.params["evec1"], 0.0).astype(np.float32)
        for name in ("tensor", "latent", "features"):  # the adapted latent code and tissue, for feature studies
            maps[name] = np.where(m[..., None], self.params[name], 0.0).astype(np.float32)
        unc = {n: np.where(m, self.params[f"{n}_std"], 0.0).astype(np.float32)
               for n in UNCERTAIN_MAPS if f"{n}_std" in self.params}
        return MicrostructureMaps(maps, need_affine(self.affine), "pigment", mask=m, uncertainty=unc)


def _fitted(name: str) -> property:
    def get(self: PigmentFit) -> np.ndarray:
        try:
            return self.params[name]
        except KeyError:
            raise AttributeError(f"this fit holds no {name!r} (uncertainty=False, or evidence=False?)") from None

    return property(get, doc=f"The fitted ``{name}`` (see the class attributes).")


for _name in (*MAP_NAMES, "evec1", "tensor", "s0", "nrmse", "latent", "features", "frame", "w_asym",
              "isotropic_probability", *(f"{n}_std" for n in UNCERTAIN_MAPS)):
    setattr(PigmentFit, _name, _fitted(_name))
del _name
