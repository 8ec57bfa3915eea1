"""Numba kernels of the tracker: arrays and scalars in, arrays out. No Python objects, no I/O.

Coordinates are continuous voxel indices (voxel centres at integers). The tensor field is
(X, Y, Z, 6) float32 in the image-axis frame, elements Dxx, Dyy, Dzz, Dxy, Dxz, Dyz.
Each seed writes only to its own output row, so results do not depend on the thread count.
"""

from __future__ import annotations

import numba
import numpy as np

from ._rng import next_uniform

__all__ = ["track_deterministic", "track_probabilistic", "sample_watson", "sample_tensor_acg"]

STOP_NONE = 0
STOP_FA = 1  # entered low-anisotropy tissue: the point is kept (streamline reaches grey matter)
STOP_MASK = 2  # left the tracking mask or the grid: the point is dropped
STOP_ANGLE = 3  # curvature above max_angle
STOP_LENGTH = 4  # maximum length reached
POWER = 3


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
def _start(field, mask, p, fa_min, t, e, lin, row, centre, spans, stops):
    """Set up one seed: empty spans and a mask stop by default; False when the seed lies outside
    the mask or in low-FA tissue (recorded in ``stops``), else the seed point is written at
    ``row[centre]`` and the local tensor/eigenvector are left in ``t``/``e``."""
    spans[0] = centre
    spans[1] = centre
    stops[0] = STOP_MASK
    stops[1] = STOP_MASK
    if not _in_mask(mask, p) or not _interp_tensor(field, p, t):
        return False
    if _principal(t, e, lin) < fa_min:
        stops[0] = STOP_FA
        stops[1] = STOP_FA
        return False
    for k in range(3):
        row[centre, k] = p[k]
    return True


@numba.njit(cache=True, nogil=True)
def _advance(field, mask, p, prev, step_vox, fa_min, t, e, lin, out, index):
    """One Euler step from p along prev (p updated in place, the new point written to
    out[index]); returns STOP_NONE, STOP_MASK (outside: nothing written) or STOP_FA (point kept,
    the streamline reached grey matter). Leaves the tensor and eigenvector at p in t, e, lin."""
    q0 = p[0] + step_vox[0] * prev[0]
    q1 = p[1] + step_vox[1] * prev[1]
    q2 = p[2] + step_vox[2] * prev[2]
    q = np.array([q0, q1, q2])
    if not _in_mask(mask, q) or not _interp_tensor(field, q, t):
        return STOP_MASK
    fa = _principal(t, e, lin)
    out[index, 0] = q0
    out[index, 1] = q1
    out[index, 2] = q2
    p[0], p[1], p[2] = q0, q1, q2
    return STOP_FA if fa < fa_min else STOP_NONE


@numba.njit(cache=True, nogil=True)
def _walk(field, mask, odi, start, direction, step_vox, fa_min, cos_max, puncture, max_steps, max_trials, out, n0,
          sign, probabilistic, key0, key1, state, buf):
    """Follow the field from start along direction, writing points to out[n0 + sign·m], m = 1, 2, ...

    ``step_vox`` (3,) is the step length in voxels per axis (step_mm / voxel size), so a unit
    physical direction in the image-axis frame moves step_mm in millimetres. Each new direction
    comes from :func:`_next_direction` (``puncture``) or, when ``probabilistic``, from
    :func:`_draw_within_angle` (``odi``, ``max_trials`` and the random stream ``key0``, ``key1``,
    ``state``, ``buf``; unused otherwise).

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
        status = _advance(field, mask, p, prev, step_vox, fa_min, t, e, lin, out, n0 + sign * (n + 1))
        if status == STOP_MASK:
            return n, STOP_MASK
        n += 1
        if status == STOP_FA:
            return n, STOP_FA
        if probabilistic:
            accepted = _draw_within_angle(t, e, odi, p, prev, cos_max, max_trials, key0, key1, state, buf, v)
        else:
            _next_direction(t, e, lin[0], prev, puncture, v)
            accepted = v[0] * prev[0] + v[1] * prev[1] + v[2] * prev[2] >= cos_max
        if not accepted:
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
    no_odi = np.zeros((0, 0, 0), np.float32)  # the probabilistic inputs of _walk, unused here
    zero = np.uint64(0)
    for s in numba.prange(n_seeds):
        no_state = np.zeros(2, dtype=np.int64)
        no_buf = np.empty(4)
        t = np.empty(6)
        e = np.empty(3)
        lin = np.empty(1)
        p = seeds[s].copy()
        centre = max_steps
        if not _start(field, mask, p, fa_min, t, e, lin, out[s], centre, lengths[s], stops[s]):
            continue
        step_vox = step_mm * inv_voxel
        nf, sf = _walk(field, mask, no_odi, p, e, step_vox, fa_min, cos_max, puncture, max_steps, 1, out[s], centre, 1,
                       False, zero, zero, no_state, no_buf)
        nb, sb = _walk(field, mask, no_odi, p, -e, step_vox, fa_min, cos_max, puncture, max_steps, 1, out[s], centre, -1,
                       False, zero, zero, no_state, no_buf)
        lengths[s, 0] = centre - nb
        lengths[s, 1] = centre + nf + 1
        stops[s, 0] = sb
        stops[s, 1] = sf


# ---------------------------------------------------------------- probabilistic tracking
@numba.njit(cache=True, nogil=True)
def _interp_scalar(volume, p):
    """Trilinear interpolation of a scalar volume at p (voxel coordinates), clamped to the grid."""
    nx, ny, nz = volume.shape
    x = min(max(p[0], 0.0), nx - 1.0)
    y = min(max(p[1], 0.0), ny - 1.0)
    z = min(max(p[2], 0.0), nz - 1.0)
    i0 = min(int(np.floor(x)), max(nx - 2, 0))
    j0 = min(int(np.floor(y)), max(ny - 2, 0))
    k0 = min(int(np.floor(z)), max(nz - 2, 0))
    fx, fy, fz = x - i0, y - j0, z - k0
    total = 0.0
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
                total += wx * wy * wz * volume[i0 + di, j0 + dj, k0 + dk]
    return total


@numba.njit(cache=True, nogil=True)
def sample_watson(mu, kappa, key0, key1, state, buf, out):
    """A unit vector from the Watson distribution of axis ``mu`` and concentration ``kappa`` ≥ 0,
    on ``mu``'s hemisphere (Best & Fisher 1986 rejection for cos θ, uniform azimuth)."""
    if kappa < 1e-6:
        t = next_uniform(key0, key1, state, buf)
    else:
        k = min(kappa, 700.0)
        c = 1.0 / np.expm1(k)
        while True:
            u = next_uniform(key0, key1, state, buf)
            v = next_uniform(key0, key1, state, buf)
            t = np.log1p(u / c) / k
            if t > 1.0:
                t = 1.0
            if v <= np.exp(k * t * (t - 1.0)):
                break
    phi = 2.0 * np.pi * next_uniform(key0, key1, state, buf)
    # an orthonormal pair (a, b) perpendicular to mu
    if abs(mu[0]) < 0.9:
        a0, a1, a2 = 0.0, -mu[2], mu[1]
    else:
        a0, a1, a2 = mu[2], 0.0, -mu[0]
    na = np.sqrt(a0 * a0 + a1 * a1 + a2 * a2)
    a0, a1, a2 = a0 / na, a1 / na, a2 / na
    b0 = mu[1] * a2 - mu[2] * a1
    b1 = mu[2] * a0 - mu[0] * a2
    b2 = mu[0] * a1 - mu[1] * a0
    st = np.sqrt(max(0.0, 1.0 - t * t))
    cp, sp = np.cos(phi), np.sin(phi)
    out[0] = t * mu[0] + st * (cp * a0 + sp * b0)
    out[1] = t * mu[1] + st * (cp * a1 + sp * b1)
    out[2] = t * mu[2] + st * (cp * a2 + sp * b2)


@numba.njit(cache=True, nogil=True)
def _gaussian(key0, key1, state, buf):
    """A standard normal draw (Box–Muller on two uniforms of the stream)."""
    u = next_uniform(key0, key1, state, buf)
    v = next_uniform(key0, key1, state, buf)
    return np.sqrt(-2.0 * np.log1p(-u)) * np.cos(2.0 * np.pi * v)


@numba.njit(cache=True, nogil=True)
def sample_tensor_acg(t, key0, key1, state, buf, out):
    """A unit vector from the angular central Gaussian of covariance D² (D the tensor ``t``):
    v = D·g / |D·g| with g standard normal. Concentrated around the principal direction for a
    linear tensor (spread ≈ atan(λ⊥/λ1)), a girdle in the fibre plane for a planar one."""
    g0 = _gaussian(key0, key1, state, buf)
    g1 = _gaussian(key0, key1, state, buf)
    g2 = _gaussian(key0, key1, state, buf)
    h0 = t[0] * g0 + t[3] * g1 + t[4] * g2
    h1 = t[3] * g0 + t[1] * g1 + t[5] * g2
    h2 = t[4] * g0 + t[5] * g1 + t[2] * g2
    norm = np.sqrt(h0 * h0 + h1 * h1 + h2 * h2)
    if norm > 0.0:
        out[0], out[1], out[2] = h0 / norm, h1 / norm, h2 / norm
    else:
        out[0], out[1], out[2] = g0, g1, g2


@numba.njit(cache=True, nogil=True)
def _kappa_from_odi(odi, p):
    """Watson concentration at p from the orientation dispersion index: κ = 1 / tan(π·ODI/2) (NODDI)."""
    o = min(max(_interp_scalar(odi, p), 1e-4), 1.0 - 1e-6)
    return 1.0 / np.tan(0.5 * np.pi * o)


@numba.njit(cache=True, nogil=True)
def _draw(t, e, odi, p, key0, key1, state, buf, out):
    """One direction draw at p: Watson around e with the ODI map's κ when a map is given, else
    the tensor's angular central Gaussian."""
    if odi.shape[0] > 0:
        sample_watson(e, _kappa_from_odi(odi, p), key0, key1, state, buf, out)
    else:
        sample_tensor_acg(t, key0, key1, state, buf, out)


@numba.njit(cache=True, nogil=True)
def _draw_within_angle(t, e, odi, p, prev, cos_max, max_trials, key0, key1, state, buf, v):
    """A probabilistic step direction into ``v``: draws (see :func:`_draw`) oriented along the
    incoming direction ``prev``, redrawn while they turn by more than the maximum angle, up to
    ``max_trials`` times; False when none was within the angle."""
    if e[0] * prev[0] + e[1] * prev[1] + e[2] * prev[2] < 0.0:
        for k in range(3):
            e[k] = -e[k]
    for _trial in range(max_trials):
        _draw(t, e, odi, p, key0, key1, state, buf, v)
        c = v[0] * prev[0] + v[1] * prev[1] + v[2] * prev[2]
        if c < 0.0:
            for k in range(3):
                v[k] = -v[k]
            c = -c
        if c >= cos_max:
            return True
    return False


@numba.njit(cache=True, parallel=True)
def track_probabilistic(field, mask, odi, seeds, seed_ids, run_seed, inv_voxel, step_mm, fa_min, cos_max, max_steps,
                        max_trials, out, lengths, stops):
    """Probabilistic tensor tracking from each seed, both directions (arguments as
    :func:`track_deterministic`, plus): ``odi`` (X, Y, Z) float32 dispersion map, or a (0, 0, 0)
    array to draw from the tensor itself; ``seed_ids`` (S,) global seed indices and
    ``run_seed``: the key of each seed's random stream.
    """
    n_seeds = seeds.shape[0]
    key0 = np.uint64(run_seed)
    for s in numba.prange(n_seeds):
        key1 = np.uint64(seed_ids[s])
        state = np.zeros(2, dtype=np.int64)
        state[1] = 4
        buf = np.empty(4)
        t = np.empty(6)
        e = np.empty(3)
        v = np.empty(3)
        lin = np.empty(1)
        p = seeds[s].copy()
        centre = max_steps
        if not _start(field, mask, p, fa_min, t, e, lin, out[s], centre, lengths[s], stops[s]):
            continue
        _draw(t, e, odi, p, key0, key1, state, buf, v)
        step_vox = step_mm * inv_voxel
        nf, sf = _walk(field, mask, odi, p, v, step_vox, fa_min, cos_max, 0.0, max_steps, max_trials, out[s], centre,
                       1, True, key0, key1, state, buf)
        nb, sb = _walk(field, mask, odi, p, -v, step_vox, fa_min, cos_max, 0.0, max_steps, max_trials, out[s], centre,
                       -1, True, key0, key1, state, buf)
        lengths[s, 0] = centre - nb
        lengths[s, 1] = centre + nf + 1
        stops[s, 0] = sb
        stops[s, 1] = sf
