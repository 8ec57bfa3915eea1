"""Amortised PIGMENT: a network, trained once per gradient table, that maps a voxel's measurements
to its tissue features in one pass — seconds for a whole brain, reusable on every scan of the
same protocol.

Training is simulation through the physics layer: tissue drawn from the prior (latent mixture,
decoder, the decoder's own noise), random orientations, the signal of the table's own
measurements (the kurtosis and NODDI descriptions averaged up to b = 3000 s/mm², NODDI beyond),
Rician noise over a range of SNRs. The network sees rotation-invariant summaries of the signal —
the WLS tensor's eigenvalues and, per shell, the mean log-attenuation and the apparent
diffusivities along the WLS eigenvectors — plus log(σ/S0), and predicts each standardised
feature's posterior mean and variance (Gaussian likelihood). Minimising squared error over prior
draws makes it an estimate of the posterior mean, which, where the data leave the tissue open
(one shell, few directions), is a better point estimate than the posterior mode the zero-shot
fit (:class:`~pigment_connect.pigment.PigmentModel`) finds; the predicted variance is its
uncertainty. Unlike a self-supervised encoder trained on one scan, it needs no scan to train and
never sees the scans it is applied to.

With ``spatial=True`` the network also sees each voxel's neighbours (:mod:`._spatial`): trained on
simulated patches, it learns how far to trust a neighbour from how alike their signals are. On
real sparse subsets at b=0 SNR 10 it lowers the errors of most maps (FA by 20–30%); at high SNR
it does not help and blurs grey matter a little (``benchmarks/bench_sparse.py``), so it is opt-in.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .._typing import PathLike
from ..errors import InputError
from ..fit.lm import jacobian_autograd
from ..fit.loglinear import TENSOR_MAX_B, check_tensor_protocol, design_matrix, weighted_log_linear
from ..fit.noise import check_sigma, noise_sigma
from ..fit.voxelwise import check_chunk_size, check_random_state, extract_voxels, gradient_tensors, resolve_device, run_chunked, signal_floor
from ..io.dwi import DiffusionData
from ..io.gradients import GradientTable
from ..physics.dti import six_from_tensor
from .files import load_weights, save_weights
from .network import TissuePrior, load_prior
from .spatial import SpatialNetwork, check_neighbourhood, neighbour_index
from .simulate import PriorSimulator
from .tissue import FEATURES, eigenframe, tissue_maps, tissue_signal, tissue_tensor
from .zero_shot import UNCERTAIN_MAPS, UNCERTAINTY_QUADRATURE, PigmentFit

__all__ = ["AmortisedPigmentModel", "AmortisedPigment"]

SNR_RANGE = (5.0, 100.0)
"""b=0 SNR range of the training signals (log-uniform)."""


class _Summary:
    """Rotation-invariant summary of a voxel's signal for one table (kernel: tensors in, tensors out)."""

    def __init__(self, gtab: GradientTable, device, dtype) -> None:
        self.bvals, self.bvecs = gradient_tensors(gtab, device, dtype)
        low = gtab.bvals <= TENSOR_MAX_B
        rows = np.flatnonzero(low if (~gtab.b0s_mask & low).sum() >= 6 else np.ones(len(gtab), bool))
        self.dti_rows = torch.as_tensor(rows, device=device)
        self.X = torch.as_tensor(design_matrix(gtab.subset(rows)), dtype=torch.float64, device=device)
        self.b0 = torch.as_tensor(np.flatnonzero(gtab.b0s_mask), device=device)
        self.shells = [torch.as_tensor(np.flatnonzero(gtab.shell_index == k), device=device)
                       for k in range(len(gtab.shells))]
        self.dim = 4 + 4 * len(self.shells)

    def __call__(self, signal: torch.Tensor, rel_sigma: torch.Tensor, floor: float):
        """signal (V, N) → summary (V, dim), WLS frame (V, 3, 3), S0 (V,)."""
        s0 = signal[:, self.b0].mean(-1).clamp_min(floor)
        beta = weighted_log_linear(signal[:, self.dti_rows].double(), self.X, floor=floor)
        evals, frame = (t.to(signal.dtype) for t in eigenframe(beta[:, :6]))
        parts = [evals * 1e3, torch.log(rel_sigma)[:, None]]
        y = (signal / s0[:, None]).clamp_min(1e-3)
        for rows in self.shells:
            g = self.bvecs[rows] @ frame  # (V, n, 3) in the WLS frame
            A = -self.bvals[rows, None] * g * g
            logy = torch.log(y[:, rows])
            AtA = A.transpose(1, 2) @ A + 1e-12 * torch.eye(3, dtype=A.dtype, device=A.device)
            d = torch.linalg.solve(AtA, (A.transpose(1, 2) @ logy[..., None]))[..., 0]
            parts += [d * 1e3, logy.mean(-1, keepdim=True)]
        return torch.cat(parts, -1), frame, s0


def _network(n_in: int, hidden: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                         nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, n_out))


class AmortisedPigmentModel:
    """Amortised PIGMENT for one gradient table.

    Parameters
    ----------
    gtab : the table (≥ 1 b=0, ≥ 6 non-collinear directions).
    prior : a :class:`~pigment_connect.pigment.TissuePrior`, a path, or None for the shipped prior.
    n_train : simulated training voxels. steps : Adam steps. hidden : width of the three hidden layers.
    snr_range : b=0 SNRs of the training signals. random_state : makes training reproducible.
    spatial : also use each voxel's neighbours (:mod:`._spatial`): the network is trained on
        simulated patches (``n_train // 3`` centres with up to 18 neighbours each) and, at fit time,
        sees the neighbourhood chosen in :meth:`fit`. Helps most where single voxels are noisy.
    sigma : noise σ (signal units) of the scans :meth:`fit` estimates; default: as
        :func:`~pigment_connect.fit.noise.noise_sigma` (repeated b=0 volumes, else tensor-fit
        residuals, else a b=0 SNR of 30 in white matter assumed with a warning; this model's maps
        depend on σ more than the zero-shot fit's, so pass it where it is known).
    chunk_size : voxels per batch of :meth:`fit` (default 16384).
    device : default CUDA when available.

    Use :meth:`train` (or :meth:`load` a trained one): it learns ``network_``, ``in_mean_``,
    ``in_std_`` and ``history_`` (:attr:`is_trained`); then :meth:`fit` only estimates, on any
    number of scans of this table; :meth:`save` keeps the learned state for later sessions.
    """

    def __init__(self, gtab: GradientTable, *, prior: TissuePrior | PathLike | None = None, n_train: int = 60000,
                 steps: int = 1500, hidden: int = 256, snr_range: tuple[float, float] = SNR_RANGE, random_state: int = 0,
                 spatial: bool = False, sigma: float | None = None, chunk_size: int | None = None,
                 device: torch.device | str | None = None, seed: int | None = None) -> None:
        check_tensor_protocol(gtab)
        if gtab.n_b0 == 0:
            raise InputError("amortised PIGMENT needs at least one b=0 volume.", file=gtab.source,
                             fix="include a b=0 volume.")
        check_sigma(sigma)  # before the training it would otherwise waste
        if n_train < 1000 or steps < 1:
            raise InputError(f"n_train must be ≥ 1000 and steps ≥ 1, got {n_train} and {steps}.")
        self.gtab = gtab
        self.prior = prior if isinstance(prior, TissuePrior) else load_prior(prior)
        self.n_train, self.steps, self.hidden = int(n_train), int(steps), int(hidden)
        self.random_state = check_random_state(random_state, seed)
        self.sigma = sigma
        self.chunk_size = check_chunk_size(chunk_size)
        self.snr_range = (float(snr_range[0]), float(snr_range[1]))
        self.spatial = bool(spatial)
        self.device = device
        # learned by train() (or read by load()); scikit-learn's convention: a trailing underscore
        self.network_: nn.Module | None = None
        self.in_mean_: torch.Tensor | None = None
        self.in_std_: torch.Tensor | None = None
        self.history_: dict = {}

    @property
    def is_trained(self) -> bool:
        """Whether :meth:`train` (or :meth:`load`) has given this model its network."""
        return self.network_ is not None

    # ----------------------------------------------------------------------------------- training
    def _simulator(self) -> PriorSimulator:
        """The training data: tissue drawn from the prior, on this table, at ``snr_range``."""
        return PriorSimulator(self.prior, self.gtab, self.snr_range)

    def _new_network(self, n_in: int) -> nn.Module:
        n_out = 2 * len(FEATURES)
        return SpatialNetwork(n_in, self.hidden, n_out) if self.spatial else _network(n_in, self.hidden, n_out)

    def _training_examples(self, summary: _Summary, gen: torch.Generator, device):
        """Network inputs (a tuple of tensors indexed alike: the voxel's raw summary first) and
        standardised target features (n, 9), simulated voxels or patches, non-finite ones dropped."""
        if not self.spatial:
            signal, sigma, target = self._simulator().voxels(self.n_train, gen, device)
            inputs, _, _ = summary(signal, sigma, 1e-3)
            keep = torch.isfinite(inputs).all(-1) & torch.isfinite(target).all(-1)
            return (inputs[keep],), target[keep]
        signal, sigma, target, valid = self._simulator().patches(self.n_train // 3, gen, device)
        n, k1 = signal.shape[:2]
        inputs, frame, _ = summary(signal.flatten(0, 1), sigma.repeat_interleave(k1), 1e-3)
        inputs, axes = inputs.view(n, k1, -1), frame[:, :, 0].reshape(n, k1, 3)
        finite = torch.isfinite(inputs).all(-1) & torch.isfinite(axes).all(-1)
        inputs = torch.where(finite[..., None], inputs, 0.0)
        alignment = (axes[:, 1:] * axes[:, :1]).sum(-1).abs().nan_to_num(0.0)
        keep = finite[:, 0] & torch.isfinite(target).all(-1)
        return (inputs[keep, 0], inputs[keep, 1:], alignment[keep], (valid & finite[:, 1:])[keep]), target[keep]

    def train(self, *, progress: bool = False) -> dict:
        """Simulate and train; returns the history (``train_loss``, ``val_loss``)."""
        device = resolve_device(self.device)
        gen = torch.Generator().manual_seed(self.random_state)
        torch.manual_seed(self.random_state)
        summary = _Summary(self.gtab, device, torch.float32)
        examples, target = self._training_examples(summary, gen, device)
        n_val = max(1, len(target) // 10)
        self.in_mean_, self.in_std_ = examples[0][n_val:].mean(0), examples[0][n_val:].std(0).clamp_min(1e-6)
        examples = tuple(((t - self.in_mean_) / self.in_std_) if i < 2 else t for i, t in enumerate(examples))
        net = self._new_network(summary.dim).to(device)
        opt = torch.optim.Adam(net.parameters(), lr=2e-3 if not self.spatial else 1e-3)
        cosine = lambda s: 0.5 * (1 + math.cos(math.pi * min(s, self.steps) / self.steps))  # noqa: E731
        sched = torch.optim.lr_scheduler.LambdaLR(opt, cosine)
        history = {"train_loss": [], "val_loss": []}
        batch = 512 if self.spatial else 1024
        val = tuple(t[:n_val] for t in examples)
        for step in tqdm(range(self.steps), desc="train amortised PIGMENT", disable=not progress, leave=False):
            idx = n_val + torch.randint(len(target) - n_val, (batch,), generator=gen).to(device)
            loss = _gaussian_nll(net(*(t[idx] for t in examples)), target[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            history["train_loss"].append(float(loss.detach()))
            if (step + 1) % 250 == 0 or step + 1 == self.steps:
                with torch.no_grad():
                    history["val_loss"].append((step + 1, float(_gaussian_nll(net(*val), target[:n_val]))))
        self.network_ = net.eval().requires_grad_(False)
        self.history_ = history
        return history

    # ------------------------------------------------------------------------------------- fitting
    def fit(self, dwi: DiffusionData | np.ndarray, *, mask: np.ndarray | None = None, sigma: float | None = None,
            neighbourhood: str = "3d", progress: bool = False) -> PigmentFit:
        """Maps of the voxels of ``mask`` (a :class:`~pigment_connect.pigment.zero_shot.PigmentFit`:
        every map, ``evec1``, ``tensor``, ``s0``, ``nrmse``, ``features`` and ``<map>_std``).
        ``sigma``: deprecated here (give it to the constructor, as every model takes it).
        ``neighbourhood`` (spatial models only): ``"3d"`` or
        ``"in-plane"`` (:data:`._spatial.NEIGHBOURHOODS`; the latter for slabs whose slices are
        not contiguous); neighbours outside the mask are left out."""
        if self.network_ is None:
            raise InputError("this AmortisedPigmentModel is not trained.", fix="call .train() or AmortisedPigmentModel.load().")
        check_neighbourhood(neighbourhood)
        vox = extract_voxels(dwi, self.gtab, mask)
        if not len(vox.signal):
            raise InputError("the mask selects no voxel: nothing to fit.", file=vox.source, fix="check the mask.")
        neighbours = neighbour_index(vox.mask, neighbourhood) if self.spatial else None
        device = resolve_device(self.device)
        dt = torch.float32
        if sigma is not None:
            warnings.warn("fit(sigma=) is deprecated: give sigma to AmortisedPigmentModel(...), as every model "
                          "takes it.", DeprecationWarning, stacklevel=2)
        noise = noise_sigma(self.gtab, self.sigma if sigma is None else sigma, vox.signal, stacklevel=3)
        prior = self.prior.to(device=device, dtype=dt)
        net = self.network_.to(device)
        summary = _Summary(self.gtab, device, dt)
        bvals, bvecs = gradient_tensors(self.gtab, device, dt)
        floor = signal_floor(vox.signal, None)
        in_mean, in_std = self.in_mean_.to(device), self.in_std_.to(device)

        def summarise(signal: torch.Tensor) -> dict[str, torch.Tensor]:
            signal = signal.to(dt)
            b0 = signal[:, summary.b0].mean(-1).clamp_min(floor)
            inputs, frame, _ = summary(signal, (noise / b0).clamp(1e-4, 1.0), floor)
            return {"x": (inputs - in_mean) / in_std, "frame": frame}

        pre = run_chunked(summarise, vox.signal, chunk_size=65536, device=device, dtype=torch.float64,
                          progress=False, desc="signal summaries")
        x_all, frame_all = (torch.as_tensor(pre[k], dtype=dt, device=device) for k in ("x", "frame"))
        signal_all = torch.as_tensor(vox.signal, dtype=dt, device=device)
        if neighbours is not None:
            neighbours = torch.as_tensor(neighbours, device=device)

        def solve(index: torch.Tensor) -> dict[str, torch.Tensor]:
            idx = index[:, 0].long()
            signal, frame = signal_all[idx], frame_all[idx]
            if neighbours is None:
                out_net = net(x_all[idx])
            else:
                nb = neighbours[idx]
                near = nb.clamp_min(0)
                alignment = (frame_all[near][..., 0] * frame[:, None, :, 0]).sum(-1).abs()
                out_net = net(x_all[idx], x_all[near], alignment, nb >= 0)
            mean, logvar = out_net[:, :len(FEATURES)], out_net[:, len(FEATURES):].clamp(-12, 6)
            feats = mean * prior.std + prior.mean
            pred = tissue_signal(feats, frame, bvals, bvecs)
            s0 = (pred * signal).sum(-1) / (pred * pred).sum(-1).clamp_min(1e-30)
            out = dict(tissue_maps(feats))
            out["evec1"] = frame[:, :, 0]
            out["tensor"] = six_from_tensor(tissue_tensor(feats, frame))
            out["s0"] = s0
            out["nrmse"] = torch.sqrt(((s0[:, None] * pred - signal) ** 2).mean(-1)) / signal.amax(-1).clamp_min(1e-12)
            out["features"] = feats
            out["frame"] = frame
            out["latent"] = prior.encode(feats)[0]

            def maps_of_std_features(m):
                values = tissue_maps(m * prior.std + prior.mean, quadrature=UNCERTAINTY_QUADRATURE)
                return torch.stack([values[k] for k in UNCERTAIN_MAPS], -1)

            with torch.enable_grad():
                J = jacobian_autograd(maps_of_std_features, mean)  # (V, 9, n_maps)
            var = (J * J * torch.exp(logvar)[..., None]).sum(1)
            out.update({f"{k}_std": torch.sqrt(var[:, i]) for i, k in enumerate(UNCERTAIN_MAPS)})
            return out

        index = np.arange(len(vox.signal), dtype=np.float64)[:, None]
        out = run_chunked(solve, index, chunk_size=self.chunk_size or 16384, device=device, dtype=torch.float64, progress=progress,
                          desc="amortised PIGMENT")
        return PigmentFit(self, {k: vox.scatter(v) for k, v in out.items()}, vox.mask, vox.affine, noise)

    # ----------------------------------------------------------------------------------- save/load
    def save(self, path: PathLike) -> Path:
        """Write ``<path>.pt`` (network and input scaling) and ``<path>.json`` (the table, the prior's
        sha256, settings, the weights' sha256)."""
        if self.network_ is None:
            raise InputError("nothing to save: this AmortisedPigmentModel is not trained.", fix="call .train() first.")
        state = {"network": {k: v.cpu() for k, v in self.network_.state_dict().items()},
                 "in_mean": self.in_mean_.cpu(), "in_std": self.in_std_.cpu()}
        header = {"bvals": self.gtab.bvals.tolist(), "bvecs": self.gtab.bvecs.tolist(), "hidden": self.hidden,
                  "n_train": self.n_train, "steps": self.steps, "snr_range": list(self.snr_range), "seed": self.random_state,
                  "spatial": self.spatial, "prior_sha256": self.prior.info.get("sha256")}
        return save_weights(path, state, header)

    @classmethod
    def load(cls, path: PathLike, gtab: GradientTable, *, prior: TissuePrior | PathLike | None = None,
             sigma: float | None = None, chunk_size: int | None = None,
             device: torch.device | str | None = None) -> AmortisedPigmentModel:
        """A trained model written by :meth:`save`, for scans of ``gtab`` (which must be the table
        it was trained for: same b-values within 20 s/mm², same directions up to sign within 1°)."""
        state, header, weights = load_weights(path, what="amortised model", missing_fix="train and save one first.",
                                              corrupt_fix="train it again.")
        bvals, bvecs = np.asarray(header["bvals"]), np.asarray(header["bvecs"])
        same = len(bvals) == len(gtab) and np.all(np.abs(bvals - gtab.bvals) <= 20.0)
        if same:
            dw = ~gtab.b0s_mask
            same = bool(np.all(np.abs((bvecs[dw] * gtab.bvecs[dw]).sum(-1)) >= math.cos(math.radians(1.0))))
        if not same:
            raise InputError("this amortised model was trained for another gradient table.", file=weights,
                             fix="train one for this protocol (AmortisedPigmentModel(gtab).train()).")
        model = cls(gtab, prior=prior, n_train=header["n_train"], steps=header["steps"], hidden=header["hidden"],
                    snr_range=tuple(header["snr_range"]), random_state=header["seed"],
                    spatial=header.get("spatial", False), sigma=sigma, chunk_size=chunk_size, device=device)
        if header.get("prior_sha256") not in (None, model.prior.info.get("sha256")):
            raise InputError("this amortised model was trained on another prior.", file=weights,
                             fix="load it with the prior it was trained on, or train it again.")
        summary_dim = len(state["in_mean"])
        model.network_ = model._new_network(summary_dim)
        model.network_.load_state_dict(state["network"])
        model.network_.eval().requires_grad_(False)
        model.in_mean_, model.in_std_ = state["in_mean"], state["in_std"]
        return model


def _gaussian_nll(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    n = target.shape[-1]
    mean, logvar = out[:, :n], out[:, n:].clamp(-12, 6)
    return 0.5 * (logvar + (target - mean) ** 2 * torch.exp(-logvar)).sum(-1).mean()


class AmortisedPigment(AmortisedPigmentModel):
    """Deprecated name of :class:`AmortisedPigmentModel` (goes in the next release)."""

    def __init__(self, *args, **kwargs) -> None:
        warnings.warn("AmortisedPigment is deprecated: use AmortisedPigmentModel.", DeprecationWarning, stacklevel=2)
        super().__init__(*args, **kwargs)
