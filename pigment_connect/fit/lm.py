"""Batched Levenberg–Marquardt in torch: every voxel is its own small least-squares problem.

Kernel code only (tensors in, tensors out); orchestration lives in the fitters.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.func import jvp

__all__ = ["levenberg_marquardt"]


def jacobian_autograd(model: Callable[..., torch.Tensor], x: torch.Tensor, *constants: torch.Tensor) -> torch.Tensor:
    """(V, P, M): one forward-mode pass per parameter. Voxels are independent, so a unit tangent on
    parameter p of every voxel at once yields column p of every voxel's Jacobian. ``constants``
    are passed to ``model`` after x and not differentiated."""
    cols = []
    for p in range(x.shape[-1]):
        tangent = torch.zeros_like(x)
        tangent[:, p] = 1.0
        cols.append(jvp(lambda v: model(v, *constants), (x,), (tangent,))[1])
    return torch.stack(cols, 1)


def jacobian_fd(model: Callable[..., torch.Tensor], x: torch.Tensor, f0: torch.Tensor,
                 constants: tuple[torch.Tensor, ...] = ()) -> torch.Tensor:
    """(V, P, M) by forward differences, step √ε·max(1, |x|) (MINPACK's ``lmdif`` choice), all P
    perturbed points evaluated in one batched call of ``model`` (rows voxel-major; ``constants``
    repeated to match), which keeps the per-call overhead of a many-op model to one call."""
    V, P = x.shape
    eps = torch.finfo(x.dtype).eps ** 0.5
    h = eps * x.abs().clamp_min(1.0)  # (V, P)
    xp = x[:, None, :].repeat(1, P, 1)
    xp.diagonal(dim1=1, dim2=2).add_(h)
    out = model(xp.reshape(V * P, P), *(c.repeat_interleave(P, 0) if c.ndim and len(c) == V else c for c in constants))
    return (out.reshape(V, P, -1) - f0[:, None, :]) / h[:, :, None]


def _normal_equations(J: torch.Tensor, r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """JᵀJ (V, P, P) and Jᵀr (V, P) from the Jacobian J (V, P, M) (one row per parameter: rows are
    contiguous, which makes the batched products several times faster than (V, M, P)) and r (V, M),
    both from one batched product of [J; r] with its transpose."""
    P = J.shape[1]
    G = torch.cat([J, r[:, None, :]], 1)
    gram = G @ G.transpose(1, 2)
    return gram[:, :P, :P], gram[:, :P, P]


def levenberg_marquardt(
    model: Callable[[torch.Tensor], torch.Tensor],
    x0: torch.Tensor,
    data: tuple[torch.Tensor, ...],
    *,
    residual: Callable[..., torch.Tensor],
    cost: Callable[..., torch.Tensor] | None = None,
    n_iter: int = 30,
    lam0: float = 1e-2,
    tol: float = 1e-7,
    jacobian: str | Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = "forward",
    constants: tuple[torch.Tensor, ...] = (),
) -> tuple[torch.Tensor, torch.Tensor]:
    """Minimise per voxel, from ``x0`` (V, P).

    Parameters
    ----------
    model : x (V, P) → prediction (V, M).
    data : per-voxel tensors (V, ...) (measurements, σ ...); the solver passes the rows of the
        voxels it is updating to ``residual`` and ``cost``.
    residual : (prediction, *data) → (V, M) "prediction − target". The step is Gauss–Newton with
        the model's Jacobian: for Gaussian noise the plain residual; for Rician noise
        ``−rician_expected_residual`` with the Rician NLL as ``cost`` (Fisher scoring).
    cost : (prediction, r, *data) → (V,); default ½‖r‖². Steps are accepted where it decreases.
    n_iter : iterations; voxels whose relative decrease falls below ``tol`` stop updating.
    jacobian : ``"forward"`` (forward-mode AD, exact), ``"finite"`` (forward differences: one
        plain model evaluation per parameter; faster for models whose AD is costly), a
        callable (x, prediction, *constants) → (V, P, M) supplied by the model, or ``"joint"``: ``model``
        returns (prediction, Jacobian) together, so every trial point's Jacobian comes with its
        prediction and an accepted step needs no second evaluation.
    constants : per-voxel tensors (V, ...) the model needs besides x (e.g. a reference frame); the
        solver passes the rows of the voxels it evaluates to ``model`` (and to a callable
        ``jacobian``) after x (not with ``"joint"``).

    Returns
    -------
    x (V, P) and its cost (V,).
    """
    if cost is None:
        cost = lambda pred, r, *d: 0.5 * (r * r).sum(-1)  # noqa: E731
    if not callable(jacobian) and jacobian not in ("forward", "finite", "joint"):
        raise ValueError(f"jacobian must be 'forward', 'finite', 'joint' or a callable, got {jacobian!r}")
    joint = jacobian == "joint"
    x = x0.clone()
    if constants and joint:
        raise ValueError("constants need jacobian='forward', 'finite' or a callable")
    if joint:  # keep only the normal equations of each voxel's current point, never (V, M, P)
        pred, J = model(x)
        r = residual(pred, *data)
        JtJ, g = _normal_equations(J, r)
    else:
        pred = model(x, *constants)
        r = residual(pred, *data)
    f = cost(pred, r, *data)
    lam = torch.full_like(f, lam0)
    active = torch.isfinite(f)
    eye = torch.eye(x.shape[-1], dtype=x.dtype, device=x.device)
    for _ in range(n_iter):
        if not bool(active.any()):
            break
        idx = active.nonzero()[:, 0]
        xa, fa = x[idx], f[idx]
        da = tuple(d[idx] for d in data)
        ca = tuple(c[idx] for c in constants)
        if joint:
            JtJa, ga = JtJ[idx], g[idx]
        else:
            if callable(jacobian):
                Ja = jacobian(xa, pred[idx], *ca)  # (A, P, M)
            elif jacobian == "forward":
                Ja = jacobian_autograd(model, xa, *ca)
            else:
                Ja = jacobian_fd(model, xa, pred[idx], ca)
            JtJa, ga = _normal_equations(Ja, r[idx])
        diag = torch.diagonal(JtJa, dim1=1, dim2=2).clamp_min(1e-12)
        A = JtJa + lam[idx, None, None] * torch.diag_embed(diag) + 1e-12 * eye
        step = torch.linalg.solve(A, -ga[..., None])[..., 0]
        x_new = xa + step
        if joint:
            pred_new, J_new = model(x_new)
        else:
            pred_new = model(x_new, *ca)
        r_new = residual(pred_new, *da)
        f_new = cost(pred_new, r_new, *da)
        ok = torch.isfinite(f_new) & (f_new < fa)
        gain = (fa - f_new) / fa.abs().clamp_min(1e-30)
        x[idx] = torch.where(ok[:, None], x_new, xa)
        f[idx] = torch.where(ok, f_new, fa)
        if joint:
            JtJ_new, g_new = _normal_equations(J_new, r_new)
            JtJ[idx] = torch.where(ok[:, None, None], JtJ_new, JtJa)
            g[idx] = torch.where(ok[:, None], g_new, ga)
        else:
            r[idx] = torch.where(ok[:, None], r_new, r[idx])
            pred[idx] = torch.where(ok[:, None], pred_new, pred[idx])
        lam[idx] = torch.where(ok, lam[idx] * 0.3, lam[idx] * 10.0).clamp(1e-9, 1e9)
        done = (ok & (gain < tol)) | (lam[idx] >= 1e9)
        active[idx[done]] = False
    return x, f
