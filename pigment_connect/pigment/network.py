"""The generative prior: a variational auto-encoder over the tissue features.

``TissuePrior.decode(z)`` maps a latent code z ~ N(0, I) (``latent_dim``) to the nine tissue
features of :mod:`.tissue` (standardised inside the network; de-standardised on the way out), so
that every z describes one tissue consistently for DTI, DKI and NODDI at once. The encoder is
kept for training and for amortised starts.

The density of z is not taken to be the VAE's N(0, I): real tissue sits where the encoder puts it,
and white matter lies in that Gaussian's tail, so a MAP fit under N(0, I) would shrink it towards
the average tissue. After training, a Gaussian mixture is fitted to the encoder means of the
training voxels (the aggregate posterior; "ex-post density estimation", Ghosh et al. 2020) and is
the latent density the zero-shot fit uses (:meth:`TissuePrior.latent_log_density`,
:meth:`TissuePrior.latent_residual`). Weights are a torch ``state_dict`` plus a JSON header
(version, feature names, training provenance), loaded without network access.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import torch
from torch import nn

from .._typing import PathLike
from ..errors import InputError
from .files import load_weights, save_weights
from .tissue import FEATURES

__all__ = ["TissuePrior", "load_prior", "SHIPPED_PRIOR"]

SHIPPED_PRIOR = "pigment_prior_v1"
"""Name of the prior shipped in ``pigment_connect/pigment/weights/``."""


def _mlp(n_in: int, n_hidden: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, n_hidden), nn.SiLU(), nn.Linear(n_hidden, n_hidden), nn.SiLU(),
                         nn.Linear(n_hidden, n_out))


class TissuePrior(nn.Module):
    """VAE over the tissue features.

    Parameters
    ----------
    latent_dim : size of z.
    hidden : width of the two hidden layers of encoder and decoder.
    mean, std : (9,) feature standardisation (set from the training data by :func:`~.train.train_prior`).
    """

    def __init__(self, latent_dim: int = 6, hidden: int = 128, mean: torch.Tensor | None = None,
                 std: torch.Tensor | None = None) -> None:
        super().__init__()
        n = len(FEATURES)
        self.latent_dim, self.hidden = int(latent_dim), int(hidden)
        self.encoder = _mlp(n, hidden, 2 * latent_dim)
        self.decoder = _mlp(latent_dim, hidden, n)
        self.register_buffer("mean", torch.zeros(n) if mean is None else torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.ones(n) if std is None else torch.as_tensor(std, dtype=torch.float32))
        self.set_latent_mixture(torch.zeros(1, latent_dim), torch.eye(latent_dim)[None], torch.ones(1))
        self.info: dict = {}

    @property
    def n_components(self) -> int:
        """Components of the latent mixture (1: the standard normal)."""
        return self.latent_means.shape[0]

    def set_latent_mixture(self, means: torch.Tensor, covariances: torch.Tensor, weights: torch.Tensor) -> None:
        """Set the latent density: mixture ``weights`` (K,), ``means`` (K, d), ``covariances`` (K, d, d)."""
        chol = torch.linalg.cholesky(torch.as_tensor(covariances).double())
        eye = torch.eye(chol.shape[-1], dtype=chol.dtype).expand_as(chol)
        whiten = torch.linalg.solve_triangular(chol, eye, upper=False)  # L⁻¹: whitened residual L⁻¹(z − m)
        weights = torch.as_tensor(weights).double()
        for name, value in (("latent_means", means), ("latent_whiten", whiten),
                            ("latent_log_weight", torch.log(weights / weights.sum()))):
            value = torch.as_tensor(value, dtype=torch.float32)
            if name in self._buffers:
                self._buffers[name] = value.to(self._buffers[name].device)
            else:
                self.register_buffer(name, value)

    def latent_residual(self, z: torch.Tensor, component: torch.Tensor) -> torch.Tensor:
        """(V, d) whitened residual L_k⁻¹(z − m_k) of each voxel's mixture ``component`` k (V,) (long):
        −log density of that component is ½‖·‖² up to a constant."""
        diff = z - self.latent_means[component]
        return (self.latent_whiten[component] @ diff[..., None])[..., 0]

    def latent_log_normaliser(self) -> torch.Tensor:
        """(K,) each component's log weight plus the log normalising constant of its density
        (log |L_k⁻¹|, without the shared −d/2·log 2π): ``latent_log_density`` less −½‖L_k⁻¹(z − m_k)‖²."""
        return self.latent_log_weight + torch.log(torch.diagonal(self.latent_whiten, dim1=1, dim2=2)).sum(-1)

    def latent_log_density(self, z: torch.Tensor) -> torch.Tensor:
        """(V, K) log(weight × density) of each component at z (V, d), without the shared −d/2·log 2π."""
        r = (self.latent_whiten @ (z[:, None, :] - self.latent_means)[..., None])[..., 0]
        return self.latent_log_normaliser() - 0.5 * (r * r).sum(-1)

    def sample_latent(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """(n, d) draws from the latent density (reproducible with a CPU ``generator``)."""
        k = torch.multinomial(torch.exp(self.latent_log_weight.double().cpu()), n, replacement=True, generator=generator)
        eps = torch.randn(n, self.latent_dim, generator=generator, dtype=torch.float64)
        chol = torch.linalg.inv(self.latent_whiten.double().cpu())
        z = self.latent_means.double().cpu()[k] + (chol[k] @ eps[..., None])[..., 0]
        return z.to(self.latent_means.device, self.latent_means.dtype)

    def encode(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and log-variance (V, latent_dim) of z for features (V, 9)."""
        h = self.encoder((features - self.mean) / self.std)
        return h[:, : self.latent_dim], h[:, self.latent_dim:].clamp(-12.0, 6.0)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Tissue features (V, 9) for latent codes z (V, latent_dim)."""
        return self.decoder(z) * self.std + self.mean

    def save(self, path: PathLike) -> Path:
        """Write ``<path>.pt`` (state dict) and ``<path>.json`` (architecture, provenance, sha256)."""
        header = {"latent_dim": self.latent_dim, "hidden": self.hidden, "latent_components": self.n_components,
                  "features": list(FEATURES), **self.info}
        return save_weights(path, {k: v.detach().cpu() for k, v in self.state_dict().items()}, header)


def load_prior(path: PathLike | None = None, *, device: torch.device | str = "cpu") -> TissuePrior:
    """Load a prior written by :meth:`TissuePrior.save` (default: the shipped one), in eval mode,
    float32, its parameters frozen. The weights' sha256 is checked against the header."""
    if path is None:
        base = resources.files("pigment_connect.pigment") / "weights" / SHIPPED_PRIOR
        path = Path(str(base))
    state, header, weights = load_weights(
        path, what="prior", sha_required=False, corrupt_fix="re-train or re-install the prior.",
        missing_fix="train one with `pigment-connect train-prior`, or pass no path to use the shipped prior.")
    if tuple(header.get("features", FEATURES)) != FEATURES:
        raise InputError(f"prior was trained on features {header.get('features')}, this version uses {FEATURES}.",
                         file=weights.with_suffix(".json"))
    prior = TissuePrior(header["latent_dim"], header["hidden"])
    k, d = int(header.get("latent_components", 1)), prior.latent_dim
    prior.set_latent_mixture(torch.zeros(k, d), torch.eye(d).expand(k, d, d), torch.ones(k))  # shapes; values load below
    result = prior.load_state_dict(state, strict=False)
    # Priors written before the latent mixture existed keep the standard-normal latent density.
    missing = set(result.missing_keys) - ({"latent_means", "latent_whiten", "latent_log_weight"}
                                          if "latent_components" not in header else set())
    if missing or result.unexpected_keys:
        raise InputError(f"prior weights do not fit the architecture in their header (missing {sorted(missing)}, "
                         f"unexpected {sorted(result.unexpected_keys)}).", file=weights,
                         fix="re-train the prior with this version (`pigment-connect train-prior`).")
    prior.info = {k: v for k, v in header.items() if k not in ("latent_dim", "hidden", "features", "latent_components")}
    prior.eval().requires_grad_(False)
    return prior.to(device)
