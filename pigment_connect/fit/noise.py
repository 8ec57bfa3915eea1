"""The data term of a voxel-wise fit: Gaussian least squares, or Rician likelihood."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import InputError
from ..io.gradients import GradientTable
from ..physics.noise import estimate_sigma_b0, rician_expected_residual, rician_nll

__all__ = ["LikelihoodTerms", "likelihood_terms"]

@dataclass(frozen=True)
class LikelihoodTerms:
    """The residual and cost functions :func:`~._lm.levenberg_marquardt` takes. Per-voxel data: ``y`` (V, N), each voxel's signal
    divided by its scale, and ``sig`` (V, 1), σ divided by the same scale.
    """

    rician: bool
    sigma: float | None

    def data(self, y: torch.Tensor, scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        sig = (self.sigma if self.rician else 1.0) / scale
        return y, sig[:, None]

    def residual(self, n_signal: int | None = None) -> Callable:
        """(prediction, y, sig) → residual; rows past ``n_signal`` (penalties) are taken as they are."""
        def res(pred, y, sig):
            head = pred if n_signal is None else pred[:, :n_signal]
            r = head - y if not self.rician else -rician_expected_residual(head, y, sig)
            return r if n_signal is None else torch.cat([r, pred[:, n_signal:]], -1)
        return res

    def cost(self, n_signal: int | None = None) -> Callable | None:
        """Rician NLL (plus ½‖penalty rows‖²/σ²); ``None`` (½‖r‖²) for Gaussian noise."""
        if not self.rician:
            return None

        def nll(pred, r, y, sig):
            head = pred if n_signal is None else pred[:, :n_signal]
            value = rician_nll(head, y, sig)
            if n_signal is not None:
                value = value + 0.5 * (pred[:, n_signal:] ** 2).sum(-1) / sig[:, 0] ** 2
            return value
        return nll


def likelihood_terms(rician: bool, sigma: float | None, signal: np.ndarray, gtab: GradientTable) -> LikelihoodTerms:
    """Gaussian, or Rician with ``sigma`` (given, or estimated from ≥ 2 b=0 volumes of ``signal``)."""
    if not rician:
        return LikelihoodTerms(False, None)
    if sigma is None:
        if gtab.n_b0 < 2:
            raise InputError(
                f"a Rician fit needs the noise σ; with {gtab.n_b0} b=0 volume(s) it cannot be estimated.",
                file=gtab.source, fix="pass sigma= (signal units), or use a Gaussian fit_method.",
            )
        sigma = float(estimate_sigma_b0(torch.as_tensor(signal[:, gtab.b0s_mask])))
    if not sigma > 0:
        raise InputError(f"noise σ must be positive, got {sigma}.")
    return LikelihoodTerms(True, float(sigma))
