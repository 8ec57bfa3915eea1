"""Log-linear tensor machinery every model shares: the design of log S, the check that a table
determines a tensor, and batched (weighted) least squares. A module of its own so that the noise
policy (:mod:`.noise`), the conventional fits and PIGMENT use it without import cycles."""

from __future__ import annotations

import numpy as np
import torch

from ..errors import ProtocolError
from ..io.gradients import GradientTable
from ..physics.protocol import tensor_design

__all__ = ["TENSOR_MAX_B", "design_matrix", "check_tensor_protocol", "weighted_log_linear"]

TENSOR_MAX_B = 1500.0
"""Highest b-value (s/mm²) of the volumes a kurtosis-free tensor is fitted to where a table has more."""


def design_matrix(gtab: GradientTable) -> np.ndarray:
    """(N, 7) float64 design of log S: columns −b·(g-products of Dxx … Dyz), then 1 (log S0)."""
    g = torch.as_tensor(np.array(gtab.bvecs, dtype=np.float64))
    cols = -np.asarray(gtab.bvals, dtype=np.float64)[:, None] * tensor_design(g).numpy()
    return np.concatenate([cols, np.ones((len(gtab), 1))], axis=1)


def check_tensor_protocol(gtab: GradientTable) -> None:
    """Raise :class:`ProtocolError` unless the table determines a tensor (≥1 b=0, ≥6 non-collinear directions)."""
    dw = ~gtab.b0s_mask
    if not dw.any():
        raise ProtocolError(
            "the gradient table holds only b=0 volumes: no diffusion tensor can be fitted.",
            file=gtab.source,
            fix="load the diffusion-weighted volumes too (b > 0 with directions).",
        )
    tensor_cols = design_matrix(gtab)[dw, :6]
    rank = np.linalg.matrix_rank(tensor_cols / np.abs(tensor_cols).max(), tol=1e-6)
    if rank < 6:
        raise ProtocolError(
            f"a diffusion tensor needs at least 6 non-collinear gradient directions; this table has "
            f"{gtab.n_noncollinear()} distinct direction(s) (design rank {rank}).",
            file=gtab.source,
            fix="use an acquisition with ≥ 6 non-collinear directions (or a model with fewer parameters).",
        )
    if gtab.n_b0 == 0 and len(gtab.shells) < 2:
        raise ProtocolError(
            "without a b=0 volume, one shell cannot separate S0 from the mean diffusivity.",
            file=gtab.source,
            fix="include a b=0 volume.",
        )


def weighted_log_linear(signal: torch.Tensor, X: torch.Tensor, *, weighted: bool = True, iterations: int = 1,
                        floor: float) -> torch.Tensor:
    """Batched (W)LS of log signal on design X (N, P): returns (V, P).

    OLS first; each WLS iteration re-solves with weights = squared predicted signal. The normal
    equations are formed with one matrix product (w² @ vec(xᵢxⱼ)) and solved by Cholesky.
    """
    y = torch.log(signal.clamp_min(floor))
    beta = y @ torch.linalg.pinv(X).T
    if not weighted:
        return beta
    n, p = X.shape
    outer = (X[:, :, None] * X[:, None, :]).reshape(n, p * p)
    for _ in range(iterations):
        w2 = torch.exp(2.0 * (beta @ X.T)).clamp_max(1e30)
        w2 = w2 / w2.amax(-1, keepdim=True).clamp_min(1e-300)  # scale-free: better conditioned
        lhs = (w2 @ outer).reshape(-1, p, p)
        rhs = (w2 * y) @ X
        chol, info = torch.linalg.cholesky_ex(lhs)
        good = info == 0
        solved = torch.cholesky_solve(rhs[..., None], chol)[..., 0]
        beta = torch.where(good[:, None], solved, beta)
    return beta
