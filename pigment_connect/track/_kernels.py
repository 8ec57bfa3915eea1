"""Numba kernels of the tracker: arrays and scalars in, arrays out. No Python objects, no I/O.

Coordinates are continuous voxel indices (voxel centres at integers). The tensor field is
(X, Y, Z, 6) float32 in the image-axis frame, elements Dxx, Dyy, Dzz, Dxy, Dxz, Dyz.
Each seed writes only to its own output row, so results do not depend on the thread count.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["track_deterministic"]

STOP_NONE = 0
STOP_FA = 1  # entered low-anisotropy tissue: the point is kept (streamline reaches grey matter)
STOP_MASK = 2  # left the tracking mask or the grid: the point is dropped
STOP_ANGLE = 3  # curvature above max_angle
STOP_LENGTH = 4  # maximum length reached


@numba.njit(cache=True, nogil=True)
def _interp_tensor(field, p, out):
    """Trilinear interpolation of the 6 tensor elements at p; False outside the grid."""
    nx, ny, nz = field.shape[0], field.shape[1], field.shape[2]
    x, y, z = p[0], p[1], p[2]
    if x < 0.0 or y < 0.0 or z < 0.0 or x > nx - 1 or y > ny - 1 or z > nz - 1:
        return False
    i0 = min(int(np.floor(x)), nx - 2) if nx > 1 else 0
    j0 = min(int(np.floor(y)), ny - 2) if ny > 1 else 0
    k0 = min(int(np.floor(z)), nz - 2) if nz > 1 else 0
    fx, fy, fz = x - i0, y - j0, z - k0
    for c in range(6):
        out[c] = 0.0
    for di in range(2):
        wx = fx if di else 1.0 - fx
        if wx == 0.0 or i0 + di >= nx:
            continue
        for dj in range(2):
            wy = fy if dj else 1.0 - fy
            if wy == 0.0 or j0 + dj >= ny:
                continue
            for dk in range(2):
                wz = fz if dk else 1.0 - fz
                if wz == 0.0 or k0 + dk >= nz:
                    continue
                w = wx * wy * wz
                for c in range(6):
                    out[c] += w * field[i0 + di, j0 + dj, k0 + dk, c]
    return True


@numba.njit(cache=True, nogil=True)
def _principal(t, evec, lin):
    """Principal eigenvector (into evec), linearity cl (into lin[0]) and FA (returned) of the
    symmetric tensor t (6 elements), by Jacobi rotations."""
    a = np.empty((3, 3))
    a[0, 0], a[1, 1], a[2, 2] = t[0], t[1], t[2]
    a[0, 1] = a[1, 0] = t[3]
    a[0, 2] = a[2, 0] = t[4]
    a[1, 2] = a[2, 1] = t[5]
    v = np.eye(3)
    for _ in range(12):
        off = a[0, 1] * a[0, 1] + a[0, 2] * a[0, 2] + a[1, 2] * a[1, 2]
        scale = a[0, 0] * a[0, 0] + a[1, 1] * a[1, 1] + a[2, 2] * a[2, 2]
        if off <= 1e-24 * scale or off == 0.0:
            break
        for p in range(2):
            for q in range(p + 1, 3):
                apq = a[p, q]
                if apq == 0.0:
                    continue
                theta = (a[q, q] - a[p, p]) / (2.0 * apq)
                tt = (1.0 if theta >= 0 else -1.0) / (abs(theta) + np.sqrt(theta * theta + 1.0))
                c = 1.0 / np.sqrt(tt * tt + 1.0)
                s = tt * c
                for k in range(3):  # A ← Jᵀ A J
                    akp, akq = a[k, p], a[k, q]
                    a[k, p] = c * akp - s * akq
                    a[k, q] = s * akp + c * akq
                for k in range(3):
                    apk, aqk = a[p, k], a[q, k]
                    a[p, k] = c * apk - s * aqk
                    a[q, k] = s * apk + c * aqk
                for k in range(3):
                    vkp, vkq = v[k, p], v[k, q]
                    v[k, p] = c * vkp - s * vkq
                    v[k, q] = s * vkp + c * vkq
    l0, l1, l2 = max(a[0, 0], 0.0), max(a[1, 1], 0.0), max(a[2, 2], 0.0)
    best = 0
    if l1 > l0 and l1 >= l2:
        best = 1
    elif l2 > l0 and l2 > l1:
        best = 2
    for k in range(3):
        evec[k] = v[k, best]
    # Westin linear measure cl = (λ1 − λ2) / λ1, with λ1 ≥ λ2 the two largest eigenvalues
    lmax = max(l0, max(l1, l2))
    lmid = l0 + l1 + l2 - lmax - min(l0, min(l1, l2))
    lin[0] = (lmax - lmid) / lmax if lmax > 0.0 else 0.0
    md = (l0 + l1 + l2) / 3.0
    den = l0 * l0 + l1 * l1 + l2 * l2
    if den <= 0.0:
        return 0.0
    num = (l0 - md) ** 2 + (l1 - md) ** 2 + (l2 - md) ** 2
    return np.sqrt(1.5 * num / den)


@numba.njit(cache=True, nogil=True)
def _in_mask(mask, p):
    i, j, k = int(np.floor(p[0] + 0.5)), int(np.floor(p[1] + 0.5)), int(np.floor(p[2] + 0.5))
    if i < 0 or j < 0 or k < 0 or i >= mask.shape[0] or j >= mask.shape[1] or k >= mask.shape[2]:
        return False
    return mask[i, j, k] != 0


@numba.njit(cache=True, nogil=True)
def _next_direction(t, e, cl, prev, puncture, out):
    """Tensorline direction (Weinstein et al. 1999; Lazar et al. 2003, TEND):

        v = cl·e1 + (1 − cl)·[(1 − g)·v_in + g·D·v_in / |D·v_in|]

    with e1 sign-aligned to v_in and g = ``puncture``. Where the tensor is linear (cl → 1) this
    is the principal eigenvector; where it is planar or isotropic (a crossing, cl → 0) the
    incoming direction is kept, deflected within the tensor's plane, instead of jumping to
    whichever in-plane axis the noise made largest. ``puncture < 0`` gives plain e1.
    """
    dot = e[0] * prev[0] + e[1] * prev[1] + e[2] * prev[2]
    sgn = 1.0 if dot >= 0.0 else -1.0
    if puncture < 0.0:
        for k in range(3):
            out[k] = sgn * e[k]
        return
    u0 = t[0] * prev[0] + t[3] * prev[1] + t[4] * prev[2]
    u1 = t[3] * prev[0] + t[1] * prev[1] + t[5] * prev[2]
    u2 = t[4] * prev[0] + t[5] * prev[1] + t[2] * prev[2]
    un = np.sqrt(u0 * u0 + u1 * u1 + u2 * u2)
    if un > 0.0:
        u0, u1, u2 = u0 / un, u1 / un, u2 / un
    else:
        u0, u1, u2 = prev[0], prev[1], prev[2]
    w_in = (1.0 - cl) * (1.0 - puncture)
    w_u = (1.0 - cl) * puncture
    out[0] = cl * sgn * e[0] + w_in * prev[0] + w_u * u0
    out[1] = cl * sgn * e[1] + w_in * prev[1] + w_u * u1
    out[2] = cl * sgn * e[2] + w_in * prev[2] + w_u * u2
    norm = np.sqrt(out[0] * out[0] + out[1] * out[1] + out[2] * out[2])
    if norm > 0.0:
        for k in range(3):
            out[k] /= norm
    else:
        for k in range(3):
            out[k] = prev[k]


@numba.njit(cache=True, nogil=True)
def _walk(field, mask, start, direction, step_vox, fa_min, cos_max, puncture, max_steps, out, n0, sign):
    """Follow the field from start along direction, writing points to out[n0 + sign·m], m = 1, 2, ...

    ``step_vox`` (3,) is the step length in voxels per axis (step_mm / voxel size), so a unit
    physical direction in the image-axis frame moves step_mm in millimetres. ``puncture`` as in
    :func:`_next_direction`.

    Returns (number of points written, stop reason).
    """
    p = start.copy()
    prev = direction.copy()
    t = np.empty(6)
    e = np.empty(3)
    v = np.empty(3)
    lin = np.empty(1)
    n = 0
    for _ in range(max_steps):
        q = p + step_vox * prev  # step along the previous direction (Euler), axis-scaled
        if not _in_mask(mask, q) or not _interp_tensor(field, q, t):
            return n, STOP_MASK
        fa = _principal(t, e, lin)
        out[n0 + sign * (n + 1), 0] = q[0]
        out[n0 + sign * (n + 1), 1] = q[1]
        out[n0 + sign * (n + 1), 2] = q[2]
        n += 1
        p = q
        if fa < fa_min:
            return n, STOP_FA
        _next_direction(t, e, lin[0], prev, puncture, v)
        if v[0] * prev[0] + v[1] * prev[1] + v[2] * prev[2] < cos_max:
            return n, STOP_ANGLE
        prev[:] = v
    return n, STOP_LENGTH


@numba.njit(cache=True, parallel=True)
def track_deterministic(field, mask, seeds, inv_voxel, step_mm, fa_min, cos_max, puncture, max_steps, out, lengths,
                        stops):
    """Deterministic tensor tracking from each seed, both directions.

    Parameters
    ----------
    field : (X, Y, Z, 6) float32 tensor field.
    mask : (X, Y, Z) uint8 tracking mask.
    seeds : (S, 3) float64 seed positions (voxel coordinates).
    inv_voxel : (3,) float64, 1/voxel size (1/mm) per axis.
    step_mm, fa_min, cos_max : step length (mm), FA stopping threshold, cos of the maximum angle per step.
    puncture : tensorline puncture weight in [0, 1], or negative for plain principal-eigenvector steps.
    max_steps : maximum steps per direction.
    out : (S, 2·max_steps + 1, 3) float32, filled centred on the seed at index max_steps.
    lengths : (S, 2) int64 out: (first index, one-past-last index) of each streamline in its row.
    stops : (S, 2) int8 out: stop reason of the backward and forward halves.
    """
    n_seeds = seeds.shape[0]
    for s in numba.prange(n_seeds):
        t = np.empty(6)
        e = np.empty(3)
        lin = np.empty(1)
        p = seeds[s].copy()
        centre = max_steps
        lengths[s, 0] = centre
        lengths[s, 1] = centre
        stops[s, 0] = STOP_MASK
        stops[s, 1] = STOP_MASK
        if not _in_mask(mask, p) or not _interp_tensor(field, p, t):
            continue
        fa = _principal(t, e, lin)
        if fa < fa_min:
            stops[s, 0] = STOP_FA
            stops[s, 1] = STOP_FA
            continue
        out[s, centre, 0] = p[0]
        out[s, centre, 1] = p[1]
        out[s, centre, 2] = p[2]
        step_vox = np.empty(3)
        for k in range(3):
            step_vox[k] = step_mm * inv_voxel[k]
        nf, sf = _walk(field, mask, p, e, step_vox, fa_min, cos_max, puncture, max_steps, out[s], centre, 1)
        nb, sb = _walk(field, mask, p, -e, step_vox, fa_min, cos_max, puncture, max_steps, out[s], centre, -1)
        lengths[s, 0] = centre - nb
        lengths[s, 1] = centre + nf + 1
        stops[s, 0] = sb
        stops[s, 1] = sf
