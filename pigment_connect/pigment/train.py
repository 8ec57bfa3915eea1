"""Training the tissue prior, and the model card that records how a prior was made."""

from __future__ import annotations

import datetime as _dt
import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .._typing import PathLike
from .._version import __version__
from ..errors import InputError
from ..fit.dki import DiffusionKurtosisModel
from ..fit.noddi import NoddiModel
from ..io.write import atomic_path
from .forward import ASYM_SIGMA, ASYM_SLOPE
from .network import SHIPPED_PRIOR, TissuePrior
from .simulate import TISSUE_CLASSES, simulate_features
from .tissue import FEATURES, features_from_fits
from .zero_shot import ASYM_RAMP, SHAPE_NOISE_MARGIN, SHAPE_RAMP, SHAPE_TIE

__all__ = ["train_prior", "fit_latent_mixture", "scan_features", "build_prior", "write_model_card", "build_shipped_prior"]

DECODER_SIGMA = 0.1
"""Decoder noise in standardised feature units: the reconstruction term is ‖x − x̂‖²/(2·0.1²)."""


def train_prior(features: np.ndarray, *, latent_dim: int = 6, hidden: int = 128, steps: int = 4000,
                batch_size: int = 1024, lr: float = 2e-3, validation: float = 0.1, seed: int = 0,
                latent_components: int = 8,
                device: torch.device | str | None = None, checkpoint: PathLike | None = None,
                progress: bool = False) -> tuple[TissuePrior, dict]:
    """Fit a :class:`TissuePrior` (VAE) to tissue features.

    Parameters
    ----------
    features : (n, 9) training features (:data:`~.tissue.FEATURES`), e.g. from
        :func:`~.simulate.simulate_features` or conventional fits of dense scans.
    latent_dim, hidden : architecture. steps, batch_size, lr : Adam schedule (cosine decay).
    validation : held-out share, scored every 200 steps (reconstruction + KL per voxel).
    seed : makes the split, the initialisation and the batches reproducible.
    device : default CUDA when available.
    checkpoint : a path; training state is saved there every 500 steps and training resumes
        from it when it exists.
    latent_components : Gaussians in the latent density fitted to the training voxels' encoder
        means once training ends (:func:`fit_latent_mixture`).

    Returns
    -------
    The prior (eval mode, on CPU) and a history dict (``train_loss``, ``val_loss``, ``steps``, ``n_train``, ``n_val``).
    """
    x = np.asarray(features, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != len(FEATURES):
        raise InputError(f"features must be (n, {len(FEATURES)}) in the order {FEATURES}, got shape {x.shape}.")
    if not np.isfinite(x).all():
        raise InputError("features contain NaN or infinite values.", fix="drop the voxels whose fits failed.")
    if len(x) < 100:
        raise InputError(f"{len(x)} training voxels are too few for a prior (need ≥ 100).")
    dev = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    order = torch.randperm(len(x), generator=gen).numpy()
    n_val = max(1, int(round(validation * len(x))))
    val, train = torch.as_tensor(x[order[:n_val]], device=dev), torch.as_tensor(x[order[n_val:]], device=dev)
    mean, std = train.mean(0), train.std(0).clamp_min(1e-6)
    prior = TissuePrior(latent_dim, hidden, mean.cpu(), std.cpu()).to(dev)
    opt = torch.optim.Adam(prior.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    history: dict = {"train_loss": [], "val_loss": [], "steps": steps, "n_train": len(train), "n_val": n_val}
    start = 0
    ckpt = Path(checkpoint) if checkpoint is not None else None
    if ckpt is not None and ckpt.is_file():
        state = torch.load(ckpt, map_location=dev, weights_only=False)
        prior.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        gen.set_state(state["generator"])
        history, start = state["history"], state["step"]
    with tqdm(total=steps, initial=start, desc="train prior", disable=not progress, leave=False) as bar:
        for step in range(start, steps):
            prior.train()
            idx = torch.randint(len(train), (batch_size,), generator=gen).to(dev)
            loss = _vae_loss(prior, train[idx], gen)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            history["train_loss"].append(float(loss.detach()))
            if (step + 1) % 200 == 0 or step + 1 == steps:
                prior.eval()
                with torch.no_grad():
                    history["val_loss"].append((step + 1, float(_vae_loss(prior, val, None))))
                bar.set_postfix(val=f"{history['val_loss'][-1][1]:.3f}")
            if ckpt is not None and ((step + 1) % 500 == 0 or step + 1 == steps):
                with atomic_path(ckpt) as tmp:
                    torch.save({"model": prior.state_dict(), "optimizer": opt.state_dict(),
                                "scheduler": sched.state_dict(), "generator": gen.get_state(), "history": history,
                                "step": step + 1}, tmp)
            bar.update(1)
    prior = prior.cpu().eval().requires_grad_(False)
    with torch.no_grad():
        z_train = prior.encode(train.cpu())[0].double()
    prior.set_latent_mixture(*fit_latent_mixture(z_train, latent_components, seed=seed))
    return prior, history


def fit_latent_mixture(z: torch.Tensor, n_components: int, *, seed: int = 0, n_iter: int = 200,
                       reg: float = 1e-3) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gaussian mixture (full covariances) fitted to latent codes ``z`` (n, d) by EM.

    Starts from ``n_components`` distinct codes drawn with k-means++ seeding (reproducible per
    ``seed``); ``reg`` is added to each covariance's diagonal. Returns means (K, d), covariances
    (K, d, d) and weights (K,), float64.
    """
    z = z.double()
    n, d = z.shape
    if n_components < 1 or n_components > n:
        raise InputError(f"latent_components must be in [1, {n}], got {n_components}.")
    gen = torch.Generator().manual_seed(seed)
    centres = [z[torch.randint(n, (1,), generator=gen)][0]]
    for _ in range(1, n_components):  # k-means++: next centre with probability ∝ squared distance
        dist = torch.cdist(z, torch.stack(centres)).min(-1).values ** 2
        centres.append(z[torch.multinomial(dist / dist.sum(), 1, generator=gen)][0])
    means = torch.stack(centres)
    eye = torch.eye(d, dtype=z.dtype)
    covs = torch.cov(z.T).expand(n_components, d, d).clone() + reg * eye
    weights = torch.full((n_components,), 1.0 / n_components, dtype=z.dtype)
    previous = -math.inf
    for _ in range(n_iter):
        dist = torch.distributions.MultivariateNormal(means, covariance_matrix=covs)
        log_p = dist.log_prob(z[:, None, :]) + torch.log(weights)  # (n, K)
        log_total = torch.logsumexp(log_p, -1)
        resp = torch.exp(log_p - log_total[:, None])
        nk = resp.sum(0).clamp_min(1e-10)
        weights = nk / n
        means = (resp.T @ z) / nk[:, None]
        diff = z[:, None, :] - means  # (n, K, d)
        covs = torch.einsum("nk,nki,nkj->kij", resp, diff, diff) / nk[:, None, None] + reg * eye
        ll = float(log_total.mean())
        if ll - previous < 1e-7:
            break
        previous = ll
    return means, covs, weights


def _vae_loss(prior: TissuePrior, batch: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
    """Negative ELBO per voxel in standardised units (posterior mean used when ``gen`` is None)."""
    mu, logvar = prior.encode(batch)
    if gen is None:
        z = mu
    else:
        eps = torch.randn(mu.shape, generator=gen).to(mu.device)
        z = mu + torch.exp(0.5 * logvar) * eps
    recon = ((prior.decoder(z) - (batch - prior.mean) / prior.std) ** 2).sum(-1) / (2 * DECODER_SIGMA**2)
    kl = 0.5 * (mu * mu + torch.exp(logvar) - 1.0 - logvar).sum(-1)
    return (recon + kl).mean()


def write_model_card(path: PathLike, prior: TissuePrior, history: dict, *, data: str, version: str,
                     scans: Sequence[str] = (), licence: str | None = None) -> Path:
    """Write MODEL_CARD.md next to the weights: data used (``scans``: the scan files that trained it),
    parameters, version, hash, losses."""
    path = Path(path)
    scans_line = (", ".join(f"`{s}`" for s in scans) + " — do not score the prior on these."
                  if scans else "none (simulated tissue only): no scan of `../shared/data` trained it, in "
                  "particular not `dwi_mdt_b1k_b2k`, which the sparse-protocol benchmark scores against, so "
                  "its scores are out of sample.")
    licence = licence or ("BSD-3-Clause, as the project (the training data is generated by the project's own "
                          "simulator)." if not scans else "as the scans' licences allow: check them before "
                          "redistributing these weights.")
    info = prior.info
    final_val = history["val_loss"][-1][1] if history.get("val_loss") else float("nan")
    text = f"""# PIGMENT tissue prior — model card

- **Name / version:** {info.get('name', 'pigment_prior')} (pigment_connect {version})
- **Written:** {_dt.date.today().isoformat()}
- **Weights:** `{info.get('name', 'pigment_prior')}.pt` (sha256 `{info.get('sha256', 'see the .json header')}`)
- **Architecture:** VAE, latent dimension {prior.latent_dim}, two hidden layers of {prior.hidden} (SiLU),
  {sum(p.numel() for p in prior.parameters())} parameters; decoder noise {DECODER_SIGMA} (standardised units).
- **Generates:** the nine tissue features {', '.join(FEATURES)} — one description from which the DTI tensor,
  an axially symmetric kurtosis tensor and NODDI-Watson parameters all follow (`pigment_connect.pigment.tissue`).
- **Training data:** {data}
- **Training:** {history.get('steps')} Adam steps, {history.get('n_train')} training / {history.get('n_val')} validation
  voxels; final validation loss (negative ELBO per voxel) {final_val:.3f}.
- **Latent density:** a {prior.n_components}-component Gaussian mixture fitted to the training voxels' encoder means.
- **Scans used:** {scans_line}
- **Zero-shot calibration (not in the weights):** the zero-shot fit adds two things the simulated tissue gets
  wrong about real white matter. (1) The kurtosis's departure from axial symmetry, W∆, has a prior
  N(a·(log λ2 − log λ3), {ASYM_SIGMA:g}²) on every table, a = {ASYM_SLOPE:g} (`pigment_connect.pigment.forward.ASYM_SLOPE`, `ASYM_SIGMA`),
  measured on the dense DKI fits of DIPY's real `small_101D` crop (BSD-3; slope 0.45–0.48, residual
  s.d. 0.11–0.12; the simulator's tissue: slope 0.52–0.54), where the tensor is anisotropic beyond
  noise, ramped to a = 0 in tensors that are not (`zero_shot.ASYM_RAMP` = FA {ASYM_RAMP[0]:g}–{ASYM_RAMP[1]:g} less
  `SHAPE_NOISE_MARGIN` noise s.d.), whose planarity is noise. (2) On tables that do not determine the
  kurtosis model, the log-eigenvalues' tie to the manifold is widened up to {SHAPE_TIE:g}× where the tensor is
  anisotropic beyond noise (`zero_shot.SHAPE_TIE`, `SHAPE_RAMP` = FA {SHAPE_RAMP[0]:g}–{SHAPE_RAMP[1]:g}, `SHAPE_NOISE_MARGIN` = {SHAPE_NOISE_MARGIN:g} noise
  s.d.): the prior's white matter has planarity log λ2 − log λ3 ≈ 0.22, `small_101D`'s 0.54–0.69.
  Those three numbers were chosen on the digital twin of `dwi_mdt_b1k_b2k` (`benchmarks/bench_twin.py`,
  1 b0 + 6/12, 1 b0 + 8 + 8 at its own SNR and SNR 10), so that scan's twin is not an out-of-sample
  test of them; the MRtrix3 crop (`dwi_mrtrix3_msmt_crop`, twin and real) is. `ASYM_RAMP` was picked
  from three candidates on both twins at their own SNR, so only a scan outside `../shared/data` tests
  it out of sample. No scored scan trained the weights.
- **Licence:** {licence}
- **Limits:** the tissue simulator is the standard model of white matter (Watson-dispersed sticks, a zeppelin
  with its own diffusivities, free water; one or two fascicles) with axial structural disorder in each compartment
  (gamma-distributed along-fibre diffusivities, the source of white matter's axial kurtosis at clinical diffusion
  times); tissue outside that family (e.g. restricted compartments of very high kurtosis, fanning) is represented
  only as far as the conventional fits of such signals reach.
"""
    path.write_text(text)
    return path


def scan_features(dwi, *, max_b: float = 3000.0, progress: bool = False) -> np.ndarray:
    """(n, 9) training features from one dense scan's brain voxels: conventional DKI (WLS, volumes
    with b ≤ ``max_b``) and NODDI fits of the same voxels (:func:`~.tissue.features_from_fits`);
    voxels whose fits are not finite are dropped.

    ``dwi`` is a :class:`~pigment_connect.io.DiffusionData`. It must determine both models: two
    non-zero shells and at least 15 directions up to ``max_b``.
    """
    gtab = dwi.gtab
    keep = np.flatnonzero(gtab.bvals <= max_b)
    shells = np.unique(np.round(gtab.bvals[~gtab.b0s_mask] / 100.0))
    if len(shells) < 2 or (~gtab.b0s_mask[keep]).sum() < 15:
        raise InputError(f"a scan that trains the prior needs two non-zero b-value shells and ≥ 15 directions with "
                         f"b ≤ {max_b:g}; this one has shells {sorted(set(np.round(gtab.bvals[~gtab.b0s_mask], -2)))}.",
                         file=gtab.source, fix="train from dense multi-shell scans (e.g. b=1000 and 2000 s/mm²).")
    data = np.clip(dwi.data, 0, None)
    dki = DiffusionKurtosisModel(gtab.subset(keep), fit_method="WLS").fit(data[..., keep], mask=dwi.mask,
                                                                           progress=progress)
    noddi = NoddiModel(gtab).fit(data, mask=dwi.mask, progress=progress)
    m = dwi.mask
    t = lambda a: torch.as_tensor(np.asarray(a)[m], dtype=torch.float64)  # noqa: E731
    params = dki.coefficients
    feats, _ = features_from_fits(t(params[..., :6]), t(params[..., 6:21]), t(noddi.ndi), t(noddi.odi), t(noddi.fwf))
    feats = feats.numpy()
    return feats[np.isfinite(feats).all(1)]


def build_prior(prefix: PathLike, *, scans: Sequence = (), n_simulated: int = 40000, steps: int = 3000,
                seed: int = 0, latent_dim: int = 6, device: torch.device | str | None = None,
                checkpoint: PathLike | None = None, name: str | None = None, progress: bool = False) -> Path:
    """Train a prior and write ``<prefix>.pt``, ``<prefix>.json`` and MODEL_CARD.md beside them.

    Parameters
    ----------
    prefix : output path without suffix (its name is the prior's name unless ``name`` is given).
    scans : dense scans (:class:`~pigment_connect.io.DiffusionData`) whose conventional fits join
        the training features (:func:`scan_features`); their files are recorded in the model card.
    n_simulated : simulated voxels (:func:`~.simulate.simulate_features`, Rician noise at
        :data:`~.simulate.SNR_RANGE`); 0 for scans only.
    steps, seed, latent_dim, device, checkpoint, progress : see :func:`train_prior`.

    Returns
    -------
    Path of the weights.
    """
    prefix = Path(prefix)
    parts, described, scan_files = [], [], []
    if n_simulated > 0:
        parts.append(simulate_features(n_simulated, seed=seed + 1, progress=progress))
        described.append(f"{n_simulated} simulated voxels (`pigment_connect.pigment.simulate`, seed {seed + 1}): classes "
                         f"{', '.join(TISSUE_CLASSES)}; features from conventional DKI (WLS) and NODDI (NLLS) fits "
                         "of their signal with Rician noise (b=0 SNR 15–80) on the canonical protocol "
                         "(6 b0 + 30 × b=1000 + 60 × b=2000 s/mm²).")
    for dwi in scans:
        feats = scan_features(dwi, progress=progress)
        parts.append(feats)
        scan_files.append(str(dwi.source))
        described.append(f"{len(feats)} brain voxels of `{Path(str(dwi.source)).name}` (conventional DKI + NODDI fits).")
    if not parts:
        raise InputError("nothing to train on: give scans or simulated voxels.", fix="pass --scan or --simulated N.")
    prior, history = train_prior(np.concatenate(parts), latent_dim=latent_dim, steps=steps, seed=seed, device=device,
                                 checkpoint=checkpoint, progress=progress)
    prior.info = {"name": name or prefix.name, "version": __version__,
                  "training_data": "simulated" if not scan_files else ("scans" if n_simulated == 0 else
                                                                       "simulated+scans"),
                  "n_simulated_voxels": n_simulated, "scans": scan_files, "seed": seed,
                  "tissue_classes": list(TISSUE_CLASSES)}
    weights = prior.save(prefix)
    prior.info["sha256"] = json.loads(weights.with_suffix(".json").read_text())["sha256"]
    write_model_card(prefix.parent / "MODEL_CARD.md", prior, history, data=" ".join(described), version=__version__,
                     scans=scan_files)
    return weights


def build_shipped_prior(directory: PathLike, *, n_voxels: int = 40000, steps: int = 3000, seed: int = 0,
                        progress: bool = False) -> Path:
    """Rebuild the shipped prior from scratch (simulated tissue only) into ``directory``: weights,
    JSON header and MODEL_CARD.md. Deterministic for a given seed on one machine."""
    return build_prior(Path(directory) / SHIPPED_PRIOR, n_simulated=n_voxels, steps=steps, seed=seed, device="cpu",
                       progress=progress)
