"""The generative prior: a variational auto-encoder over the tissue features.

``TissuePrior.decode(z)`` maps a latent code z ~ N(0, I) (``latent_dim``) to the nine tissue
features of :mod:`.tissue` (standardised inside the network; de-standardised on the way out), so
that every z describes one tissue consistently for DTI, DKI and NODDI at once. The encoder is
kept for training and for amortised starts. Weights are a torch ``state_dict`` plus a JSON header
(version, feature names, training provenance), loaded without network access.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path

import torch
from torch import nn

from .._typing import PathLike
from ..errors import InputError
from .tissue import FEATURES

__all__ = ["TissuePrior", "load_prior", "SHIPPED_PRIOR"]

SHIPPED_PRIOR = "pigment_prior_v1"
"""Name of the prior shipped in ``pigment_connect/prior/weights/``."""


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
        self.info: dict = {}

    def encode(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and log-variance (V, latent_dim) of z for features (V, 9)."""
        h = self.encoder((features - self.mean) / self.std)
        return h[:, : self.latent_dim], h[:, self.latent_dim:].clamp(-12.0, 6.0)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Tissue features (V, 9) for latent codes z (V, latent_dim)."""
        return self.decoder(z) * self.std + self.mean

    def save(self, path: PathLike) -> Path:
        """Write ``<path>.pt`` (state dict) and ``<path>.json`` (architecture, provenance, sha256)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        weights = path.with_suffix(".pt")
        tmp = weights.with_suffix(".pt.tmp")
        torch.save({k: v.detach().cpu() for k, v in self.state_dict().items()}, tmp)
        tmp.replace(weights)
        header = {"latent_dim": self.latent_dim, "hidden": self.hidden, "features": list(FEATURES),
                  "sha256": hashlib.sha256(weights.read_bytes()).hexdigest(), **self.info}
        path.with_suffix(".json").write_text(json.dumps(header, indent=2) + "\n")
        return weights


def load_prior(path: PathLike | None = None, *, device: torch.device | str = "cpu") -> TissuePrior:
    """Load a prior written by :meth:`TissuePrior.save` (default: the shipped one), in eval mode,
    float32, its parameters frozen. The weights' sha256 is checked against the header."""
    if path is None:
        base = resources.files("pigment_connect.prior") / "weights" / SHIPPED_PRIOR
        path = Path(str(base))
    path = Path(path)
    weights, header_path = path.with_suffix(".pt"), path.with_suffix(".json")
    for p in (weights, header_path):
        if not p.is_file():
            raise InputError("prior file not found.", file=p, fix="train one with `pigment-connect train-prior`, "
                             "or pass no path to use the shipped prior.")
    header = json.loads(header_path.read_text())
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    if header.get("sha256") not in (None, digest):
        raise InputError("prior weights do not match their header's sha256 (corrupt or replaced file).",
                         file=weights, fix="re-train or re-install the prior.")
    if tuple(header.get("features", FEATURES)) != FEATURES:
        raise InputError(f"prior was trained on features {header.get('features')}, this version uses {FEATURES}.",
                         file=header_path)
    prior = TissuePrior(header["latent_dim"], header["hidden"])
    prior.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    prior.info = {k: v for k, v in header.items() if k not in ("latent_dim", "hidden", "features")}
    prior.eval().requires_grad_(False)
    return prior.to(device)
