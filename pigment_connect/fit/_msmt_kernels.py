"""Numba kernels of multi-tissue CSD: the exact inequality-constrained least squares per voxel.

minimise |X·x − y|² subject to G·x ≥ 0 is solved as Lawson & Hanson (1974, *Solving Least
Squares Problems*, ch. 23) do: with X = Q·Rₓ, the substitution u = Rₓ·x − Qᵀ·y turns it into a
least-distance problem (min |u| with E·u ≥ g, E = G·Rₓ⁻¹, g = −E·Qᵀ·y), whose solution comes from
one non-negative least-squares problem of size (P + 1) × M, solved by their active-set NNLS.
The factorisation is shared by every voxel; only g changes. No Python objects, no I/O.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["nnls", "constrained_least_squares"]


@numba.njit(cache=True, nogil=True)
def nnls(a, b, max_iter, out):
    """Lawson–Hanson active-set NNLS: ``out`` (n,) = argmin |a·x − b| with x ≥ 0 (a: (m, n))."""
    m, n = a.shape
    x = np.zeros(n)
    passive = np.zeros(n, np.bool_)
    scale = 0.0
    for i in range(m):
        for j in range(n):
            scale = max(scale, abs(a[i, j]))
    tol = 1e-12 * max(scale, 1.0) * max(m, n)
    w = a.T @ (b - a @ x)
    for _ in range(max_iter):
        best, j_best = tol, -1
        for j in range(n):
            if not passive[j] and w[j] > best:
                best, j_best = w[j], j
        if j_best < 0:
            break
        passive[j_best] = True
        while True:
            idx = np.flatnonzero(passive)
            sub = np.empty((m, idx.size))
            for k in range(idx.size):
                sub[:, k] = a[:, idx[k]]
            s_sub = np.linalg.solve(sub.T @ sub, sub.T @ b)  # ≤ m passive columns: a small SPD system
            if np.all(s_sub > tol):
                x[:] = 0.0
                for k in range(idx.size):
                    x[idx[k]] = s_sub[k]
                break
            alpha = 1.0
            for k in range(idx.size):
                if s_sub[k] <= tol:
                    step = x[idx[k]] / (x[idx[k]] - s_sub[k])
                    alpha = min(alpha, step)
            for k in range(idx.size):
                x[idx[k]] += alpha * (s_sub[k] - x[idx[k]])
            for k in range(idx.size):
                if x[idx[k]] <= tol:
                    x[idx[k]] = 0.0
                    passive[idx[k]] = False
            if not passive.any():
                break
        w = a.T @ (b - a @ x)
    out[:] = x


@numba.njit(cache=True, parallel=True)
def constrained_least_squares(q1t, r_inv, e, signals, max_iter, out):
    """Per voxel: argmin |X·x − y|² subject to G·x ≥ 0 (see the module docstring).

    Parameters
    ----------
    q1t : (P, N) Qᵀ of X's thin QR factorisation; r_inv : (P, P) Rₓ⁻¹; e : (M, P) G·Rₓ⁻¹.
    signals : (V, N) voxel signals. max_iter : NNLS iterations.
    out : (V, P) the coefficients. A voxel whose constraints cannot all hold (never for
        non-negativity constraints, which x = 0 satisfies) gets zeros.
    """
    n_coef = e.shape[1]
    n_rows = e.shape[0]
    for v in numba.prange(signals.shape[0]):
        f1 = q1t @ signals[v]
        g = -(e @ f1)
        a = np.empty((n_coef + 1, n_rows))
        a[:n_coef] = e.T
        a[n_coef] = g
        b = np.zeros(n_coef + 1)
        b[n_coef] = 1.0
        w = np.empty(n_rows)
        nnls(a, b, max_iter, w)
        r = a @ w - b
        if abs(r[n_coef]) < 1e-14:
            out[v] = 0.0
            continue
        u = -r[:n_coef] / r[n_coef]
        out[v] = r_inv @ (u + f1)
