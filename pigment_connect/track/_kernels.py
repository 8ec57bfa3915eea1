"""Numba kernels of the tracker: arrays and scalars in, arrays out. No Python objects, no I/O.

Coordinates are continuous voxel indices (voxel centres at integers). The tensor field is
(X, Y, Z, 6) float32 in the image-axis frame, elements Dxx, Dyy, Dzz, Dxy, Dxz, Dyz; a peak
field is (X, Y, Z, K, 3) float32 directions in the same frame (zero rows: no peak).
Each seed writes only to its own output row, so results do not depend on the thread count.
"""

from __future__ import annotations

import numba
import numpy as np

from ._rng import next_block, next_uniform

__all__ = ["track_deterministic", "track_probabilistic", "sample_watson", "sample_tensor_acg", "gather_world",
           "streamline_density"]

STOP_NONE = 0
STOP_FA = 1  # entered low-anisotropy tissue: the point is kept (streamline reaches grey matter)
STOP_MASK = 2  # left the tracking mask or the grid: the point is dropped
STOP_ANGLE = 3  # curvature above max_angle
STOP_LENGTH = 4  # maximum length reached
STOP_GM = 5  # entered cortical grey matter of the tissue image (ACT): the point is kept
STOP_CSF = 6  # entered CSF of the tissue image (ACT): the point is dropped
N_STOPS = 7


@numba.njit(cache=True, nogil=True, inline="always")
def _cell(nx, ny, nz, x, y, z):
    """Lower corner (i0, j0, k0) of the interpolation cell of (x, y, z) and the fractional offsets."""
    i0 = min(int(np.floor(x)), nx - 2) if nx > 1 else 0
    j0 = min(int(np.floor(y)), ny - 2) if ny > 1 else 0
    k0 = min(int(np.floor(z)), nz - 2) if nz > 1 else 0
    return i0, j0, k0, x - i0, y - j0, z - k0


@numba.njit(cache=True, nogil=True, inline="always")
def _corner(c, nx, ny, nz, i0, j0, k0, fx, fy, fz):
    """Corner c (0–7, x slowest) of a cell: its voxel (i, j, k) and trilinear weight (0 off the grid)."""
    di, dj, dk = (c >> 2) & 1, (c >> 1) & 1, c & 1
    w = (fx if di else 1.0 - fx) * (fy if dj else 1.0 - fy) * (fz if dk else 1.0 - fz)
    if i0 + di >= nx or j0 + dj >= ny or k0 + dk >= nz:
        w = 0.0
    return i0 + di, j0 + dj, k0 + dk, w


@numba.njit(cache=True, nogil=True)
def _trilinear(volume, x, y, z, out):
    """Trilinear interpolation of the C channels of ``volume`` (X, Y, Z, C) at (x, y, z) into
    ``out`` (C,); False (``out`` untouched) outside the grid."""
    nx, ny, nz, nc = volume.shape
    if x < 0.0 or y < 0.0 or z < 0.0 or x > nx - 1 or y > ny - 1 or z > nz - 1:
        return False
    i0, j0, k0, fx, fy, fz = _cell(nx, ny, nz, x, y, z)
    for ch in range(nc):
        out[ch] = 0.0
    for c in range(8):
        i, j, k, w = _corner(c, nx, ny, nz, i0, j0, k0, fx, fy, fz)
        if w == 0.0:
            continue
        for ch in range(nc):
            out[ch] += w * volume[i, j, k, ch]
    return True


@numba.njit(cache=True, nogil=True)
def _principal(t, evec, lin):
    """Principal eigenvector (into evec), linearity cl (into lin[0]) and FA (returned) of the
    symmetric tensor t (6 elements Dxx, Dyy, Dzz, Dxy, Dxz, Dyz).

    Closed form, no allocation: eigenvalues from the trigonometric solution of the characteristic
    cubic (Smith 1961), the eigenvector of the largest as the longest cross product of two rows
    of D − λ1·I. Where λ1 is (numerically) double, the direction is undetermined and any unit
    vector of the degenerate plane (perpendicular to the third eigenvector) is returned.
    """
    a00, a11, a22, a01, a02, a12 = t[0], t[1], t[2], t[3], t[4], t[5]
    q = (a00 + a11 + a22) / 3.0
    off = a01 * a01 + a02 * a02 + a12 * a12
    b00, b11, b22 = a00 - q, a11 - q, a22 - q
    p2 = (b00 * b00 + b11 * b11 + b22 * b22 + 2.0 * off) / 6.0
    if p2 <= 1e-30 * (q * q + 1e-300):  # isotropic (or zero): every direction is principal
        evec[0], evec[1], evec[2] = 1.0, 0.0, 0.0
        lin[0] = 0.0
        return 0.0
    p = np.sqrt(p2)
    det = (b00 * (b11 * b22 - a12 * a12) - a01 * (a01 * b22 - a12 * a02) + a02 * (a01 * a12 - b11 * a02))
    r = min(max(det / (2.0 * p2 * p), -1.0), 1.0)
    phi = np.arccos(r) / 3.0
    l1 = q + 2.0 * p * np.cos(phi)
    l3 = q + 2.0 * p * np.cos(phi + 2.0 * np.pi / 3.0)
    l2 = 3.0 * q - l1 - l3
    if not _eigenvector(a00, a11, a22, a01, a02, a12, l1, p2, evec):
        # λ1 = λ2 (a planar tensor): any vector perpendicular to the third eigenvector
        w = np.empty(3)
        _eigenvector(a00, a11, a22, a01, a02, a12, l3, p2, w)
        if abs(w[0]) < 0.9:
            evec[0], evec[1], evec[2] = 0.0, -w[2], w[1]
        else:
            evec[0], evec[1], evec[2] = w[2], 0.0, -w[0]
        nrm = np.sqrt(evec[0] * evec[0] + evec[1] * evec[1] + evec[2] * evec[2])
        for k in range(3):
            evec[k] /= nrm
    m1, m2, m3 = max(l1, 0.0), max(l2, 0.0), max(l3, 0.0)
    lin[0] = (m1 - m2) / m1 if m1 > 0.0 else 0.0  # Westin cl = (λ1 − λ2) / λ1
    den = m1 * m1 + m2 * m2 + m3 * m3
    if den <= 0.0:
        return 0.0
    md = (m1 + m2 + m3) / 3.0
    return np.sqrt(1.5 * ((m1 - md) ** 2 + (m2 - md) ** 2 + (m3 - md) ** 2) / den)


@numba.njit(cache=True, nogil=True)
def _eigenvector(a00, a11, a22, a01, a02, a12, lam, p2, out):
    """Unit eigenvector of the symmetric matrix for the simple eigenvalue ``lam``: the longest
    cross product of two rows of A − lam·I. False when all are negligible (``lam`` is double)."""
    r00, r11, r22 = a00 - lam, a11 - lam, a22 - lam
    # rows (r00, a01, a02), (a01, r11, a12), (a02, a12, r22)
    c0 = (a01 * a12 - a02 * r11, a02 * a01 - r00 * a12, r00 * r11 - a01 * a01)
    c1 = (a01 * r22 - a02 * a12, a02 * a02 - r00 * r22, r00 * a12 - a01 * a02)
    c2 = (r11 * r22 - a12 * a12, a12 * a02 - a01 * r22, a01 * a12 - r11 * a02)
    n0 = c0[0] * c0[0] + c0[1] * c0[1] + c0[2] * c0[2]
    n1 = c1[0] * c1[0] + c1[1] * c1[1] + c1[2] * c1[2]
    n2 = c2[0] * c2[0] + c2[1] * c2[1] + c2[2] * c2[2]
    best, nb = c0, n0
    if n1 > nb:
        best, nb = c1, n1
    if n2 > nb:
        best, nb = c2, n2
    if nb <= 1e-16 * p2 * p2:
        return False
    s = 1.0 / np.sqrt(nb)
    out[0], out[1], out[2] = best[0] * s, best[1] * s, best[2] * s
    return True


@numba.njit(cache=True, nogil=True)
def _in_mask(mask, x, y, z):
    i, j, k = int(np.floor(x + 0.5)), int(np.floor(y + 0.5)), int(np.floor(z + 0.5))
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
def _peak_direction(peaks, x, y, z, prev, out):
    """Direction at (x, y, z) from a peak field (X, Y, Z, K, 3), as EuDX (Garyfallidis 2012): in
    each of the 8 surrounding voxels the peak closest in axis to ``prev`` (or, when ``prev`` is
    zero, to the nearest voxel's first peak), sign-aligned, summed with trilinear weights; unit
    result into ``out``. Zero vectors are absent peaks. False when no peak is found."""
    nx, ny, nz, nk = peaks.shape[0], peaks.shape[1], peaks.shape[2], peaks.shape[3]
    r0, r1, r2 = prev[0], prev[1], prev[2]
    if r0 == 0.0 and r1 == 0.0 and r2 == 0.0:
        i, j, k = int(np.floor(x + 0.5)), int(np.floor(y + 0.5)), int(np.floor(z + 0.5))
        if i < 0 or j < 0 or k < 0 or i >= nx or j >= ny or k >= nz:
            return False
        for kk in range(nk):
            a0, a1, a2 = peaks[i, j, k, kk, 0], peaks[i, j, k, kk, 1], peaks[i, j, k, kk, 2]
            if a0 != 0.0 or a1 != 0.0 or a2 != 0.0:
                r0, r1, r2 = a0, a1, a2
                break
        else:
            return False
    i0, j0, k0, fx, fy, fz = _cell(nx, ny, nz, x, y, z)
    s0 = s1 = s2 = 0.0
    for c in range(8):
        i, j, k, w = _corner(c, nx, ny, nz, i0, j0, k0, fx, fy, fz)
        if w == 0.0:
            continue
        best = -1.0
        b0 = b1 = b2 = 0.0
        for kk in range(nk):
            a0, a1, a2 = peaks[i, j, k, kk, 0], peaks[i, j, k, kk, 1], peaks[i, j, k, kk, 2]
            n = np.sqrt(a0 * a0 + a1 * a1 + a2 * a2)
            if n == 0.0:
                continue
            d = (a0 * r0 + a1 * r1 + a2 * r2) / n
            if abs(d) > best:
                best = abs(d)
                sgn = 1.0 if d >= 0.0 else -1.0
                b0, b1, b2 = sgn * a0 / n, sgn * a1 / n, sgn * a2 / n
        s0 += w * b0
        s1 += w * b1
        s2 += w * b2
    norm = np.sqrt(s0 * s0 + s1 * s1 + s2 * s2)
    if norm == 0.0:
        return False
    out[0], out[1], out[2] = s0 / norm, s1 / norm, s2 / norm
    return True


@numba.njit(cache=True, nogil=True)
def _field_at(field, x, y, z, prev, t, e, lin):
    """The local field at (x, y, z): (inside the grid, anisotropy). ``field`` is (tensor (X, Y, Z, 6),
    peaks (X, Y, Z, K, 3), stop map (X, Y, Z, 1)); with no peaks (a (0, 0, 0, 0, 3) array) the
    tensor is interpolated into ``t``, its principal eigenvector into ``e``, its linearity into
    ``lin[0]`` and the anisotropy is its FA. With peaks, ``e`` is the EuDX peak direction
    (:func:`_peak_direction`, closest to ``prev``), ``t`` = e·eᵀ, ``lin[0]`` = 1 (the tensorline
    rule then follows the peak) and the anisotropy is the interpolated stop map (0 where no peak)."""
    tensor, peaks, stopmap = field
    if peaks.shape[0] == 0:
        if not _trilinear(tensor, x, y, z, t):
            return False, 0.0
        return True, _principal(t, e, lin)
    if not _trilinear(stopmap, x, y, z, lin[1:]):
        return False, 0.0
    lin[0] = 1.0
    if not _peak_direction(peaks, x, y, z, prev, e):
        return True, 0.0
    t[0], t[1], t[2] = e[0] * e[0], e[1] * e[1], e[2] * e[2]
    t[3], t[4], t[5] = e[0] * e[1], e[0] * e[2], e[1] * e[2]
    return True, lin[1]


@numba.njit(cache=True, nogil=True)
def _tissue_stop(tissue, tvox, x, y, z, pv):
    """The ACT rule at a new point (Smith et al. 2012), from the interpolated partial volumes
    ``pv`` of the five-tissue image (cortical GM, sub-cortical GM, WM, CSF, pathology):
    STOP_GM on entering cortical grey matter (≥ 0.5; the point is kept), STOP_CSF on entering
    CSF (≥ 0.5), STOP_MASK on leaving the brain (tissue total < 0.5), else STOP_NONE.
    ``tvox`` (3, 4) maps tracking-grid voxel coordinates to the tissue image's (its own grid:
    a 1 mm T1-derived image is used at its resolution). No tissue image (a (0, 0, 0, 5) array)
    gives STOP_NONE."""
    if tissue.shape[0] == 0:
        return STOP_NONE
    tx = tvox[0, 0] * x + tvox[0, 1] * y + tvox[0, 2] * z + tvox[0, 3]
    ty = tvox[1, 0] * x + tvox[1, 1] * y + tvox[1, 2] * z + tvox[1, 3]
    tz = tvox[2, 0] * x + tvox[2, 1] * y + tvox[2, 2] * z + tvox[2, 3]
    if not _trilinear(tissue, tx, ty, tz, pv):
        return STOP_MASK
    if pv[0] >= 0.5:
        return STOP_GM
    if pv[3] >= 0.5:
        return STOP_CSF
    if pv[0] + pv[1] + pv[2] + pv[3] + pv[4] < 0.5:
        return STOP_MASK
    return STOP_NONE


@numba.njit(cache=True, nogil=True)
def _start(field, mask, tissue, tvox, p, fa_min, t, e, lin, pv, row, centre, spans, stops):
    """Set up one seed: empty spans and a mask stop by default; False when the seed lies outside
    the mask, in low-FA tissue or (with tissue maps) outside white matter (recorded in
    ``stops``), else the seed point is written at ``row[centre]`` and the local
    tensor/eigenvector are left in ``t``/``e``."""
    spans[0] = centre
    spans[1] = centre
    stops[0] = STOP_MASK
    stops[1] = STOP_MASK
    if not _in_mask(mask, p[0], p[1], p[2]):
        return False
    ok, aniso = _field_at(field, p[0], p[1], p[2], np.zeros(3), t, e, lin)
    if not ok or _tissue_stop(tissue, tvox, p[0], p[1], p[2], pv) != STOP_NONE:
        return False
    if aniso < fa_min:
        stops[0] = STOP_FA
        stops[1] = STOP_FA
        return False
    for k in range(3):
        row[centre, k] = p[k]
    return True


@numba.njit(cache=True, nogil=True)
def _advance(field, mask, tissue, tvox, p, prev, step_vox, fa_min, t, e, lin, pv, out, index):
    """One Euler step from p along prev (p updated in place, the new point written to
    out[index]); returns STOP_NONE, STOP_MASK or STOP_CSF (nothing written), or STOP_FA /
    STOP_GM (point kept: the streamline reached grey matter). Leaves the tensor and eigenvector
    at p in t, e, lin."""
    q0 = p[0] + step_vox[0] * prev[0]
    q1 = p[1] + step_vox[1] * prev[1]
    q2 = p[2] + step_vox[2] * prev[2]
    if not _in_mask(mask, q0, q1, q2):
        return STOP_MASK
    ok, fa = _field_at(field, q0, q1, q2, prev, t, e, lin)
    if not ok:
        return STOP_MASK
    tissue_stop = _tissue_stop(tissue, tvox, q0, q1, q2, pv)
    if tissue_stop == STOP_MASK or tissue_stop == STOP_CSF:
        return tissue_stop
    out[index, 0] = q0
    out[index, 1] = q1
    out[index, 2] = q2
    p[0], p[1], p[2] = q0, q1, q2
    if tissue_stop == STOP_GM:
        return STOP_GM
    return STOP_FA if fa < fa_min else STOP_NONE


@numba.njit(cache=True, nogil=True)
def _walk(field, mask, tissue, tvox, odi, start, direction, step_vox, fa_min, cos_max, puncture, max_steps, max_trials, out,
          n0, sign, probabilistic, key0, key1, state, buf):
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
    w = np.empty(3)
    lin = np.empty(2)
    pv = np.empty(5)
    od = np.empty(1)
    n = 0
    for _ in range(max_steps):
        status = _advance(field, mask, tissue, tvox, p, prev, step_vox, fa_min, t, e, lin, pv, out, n0 + sign * (n + 1))
        if status == STOP_MASK or status == STOP_CSF:
            return n, status
        n += 1
        if status != STOP_NONE:
            return n, status
        if probabilistic:
            accepted = _draw_within_angle(t, e, lin[0], odi, p, prev, cos_max, puncture, max_trials, key0, key1, state,
                                          buf, od, w, v)
        else:
            _next_direction(t, e, lin[0], prev, puncture, v)
            accepted = v[0] * prev[0] + v[1] * prev[1] + v[2] * prev[2] >= cos_max
        if not accepted:
            return n, STOP_ANGLE
        prev[:] = v
    return n, STOP_LENGTH


@numba.njit(cache=True, nogil=True)
def _track_seed(field, mask, tissue, tvox, odi, seed, step_vox, fa_min, cos_max, puncture, max_steps, max_trials, row,
                span, stop, probabilistic, key0, key1, state, buf):
    """Track one seed both ways into ``row`` (centred at index max_steps), its (first, one-past-last)
    index into ``span`` and the two halves' stop reasons into ``stop``. The first direction is the
    principal one, or (``probabilistic``) a draw around it; then :func:`_walk` forward and back."""
    t = np.empty(6)
    e = np.empty(3)
    lin = np.empty(2)
    pv = np.empty(5)
    p = seed.copy()
    centre = max_steps
    if not _start(field, mask, tissue, tvox, p, fa_min, t, e, lin, pv, row, centre, span, stop):
        return
    first = e
    if probabilistic:
        first = np.empty(3)
        _draw(t, e, odi, p, key0, key1, state, buf, np.empty(1), first)
    nf, sf = _walk(field, mask, tissue, tvox, odi, p, first, step_vox, fa_min, cos_max, puncture, max_steps, max_trials,
                   row, centre, 1, probabilistic, key0, key1, state, buf)
    nb, sb = _walk(field, mask, tissue, tvox, odi, p, -first, step_vox, fa_min, cos_max, puncture, max_steps,
                   max_trials, row, centre, -1, probabilistic, key0, key1, state, buf)
    span[0] = centre - nb
    span[1] = centre + nf + 1
    stop[0] = sb
    stop[1] = sf


@numba.njit(cache=True, parallel=True)
def track_deterministic(field, mask, tissue, tvox, seeds, inv_voxel, step_mm, fa_min, cos_max, puncture, max_steps, out,
                        lengths, stops):
    """Deterministic tensor tracking from each seed, both directions.

    Parameters
    ----------
    field : (tensor (X, Y, Z, 6) float32, peaks (X, Y, Z, K, 3) float32, stop map (X, Y, Z, 1)
        float32): the tensor field, or (with a non-empty peak array) a peak field whose stop map
        replaces FA; see :func:`_field_at`.
    mask : (X, Y, Z) uint8 tracking mask.
    tissue : (X, Y, Z, 5) float32 five-tissue partial volumes (cortical GM, sub-cortical GM, WM,
        CSF, pathology) for anatomically constrained stops, or a (0, 0, 0, 5) array for none.
    tvox : (3, 4) float64, tracking-grid voxel → tissue-grid voxel coordinates.
    seeds : (S, 3) float64 seed positions (voxel coordinates).
    inv_voxel : (3,) float64, 1/voxel size (1/mm) per axis.
    step_mm, fa_min, cos_max : step length (mm), FA stopping threshold, cos of the maximum angle per step.
    puncture : tensorline puncture weight in [0, 1], or negative for plain principal-eigenvector steps.
    max_steps : maximum steps per direction.
    out : (S, 2·max_steps + 1, 3) float32, filled centred on the seed at index max_steps.
    lengths : (S, 2) int64 out: (first index, one-past-last index) of each streamline in its row.
    stops : (S, 2) int8 out: stop reason of the backward and forward halves.
    """
    no_odi = np.zeros((0, 0, 0, 1), np.float32)  # the probabilistic inputs, unused here
    zero = np.uint64(0)
    step_vox = step_mm * inv_voxel
    for s in numba.prange(seeds.shape[0]):
        _track_seed(field, mask, tissue, tvox, no_odi, seeds[s], step_vox, fa_min, cos_max, puncture, max_steps, 1,
                    out[s], lengths[s], stops[s], False, zero, zero, np.zeros(2, dtype=np.int64), np.empty(4))


# ---------------------------------------------------------------- probabilistic tracking
@numba.njit(cache=True, nogil=True, inline="always")
def _tangent_pair(d):
    """An orthonormal pair (a, b) perpendicular to the unit vector d, as six numbers."""
    if abs(d[0]) < 0.9:
        a0, a1, a2 = 0.0, -d[2], d[1]
    else:
        a0, a1, a2 = d[2], 0.0, -d[0]
    na = np.sqrt(a0 * a0 + a1 * a1 + a2 * a2)
    a0, a1, a2 = a0 / na, a1 / na, a2 / na
    return a0, a1, a2, d[1] * a2 - d[2] * a1, d[2] * a0 - d[0] * a2, d[0] * a1 - d[1] * a0


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
    a0, a1, a2, b0, b1, b2 = _tangent_pair(mu)
    st = np.sqrt(max(0.0, 1.0 - t * t))
    cp, sp = np.cos(phi), np.sin(phi)
    out[0] = t * mu[0] + st * (cp * a0 + sp * b0)
    out[1] = t * mu[1] + st * (cp * a1 + sp * b1)
    out[2] = t * mu[2] + st * (cp * a2 + sp * b2)


@numba.njit(cache=True, nogil=True, inline="always")
def _box_muller(u, v):
    """Two independent standard normal draws from two uniforms in [0, 1)."""
    r = np.sqrt(-2.0 * np.log1p(-u))
    return r * np.cos(2.0 * np.pi * v), r * np.sin(2.0 * np.pi * v)


@numba.njit(cache=True, nogil=True)
def sample_tensor_acg(t, key0, key1, state, buf, out):
    """A unit vector from the angular central Gaussian of covariance D² (D the tensor ``t``):
    v = D·g / |D·g| with g standard normal. Concentrated around the principal direction for a
    linear tensor (spread ≈ atan(λ⊥/λ1)), a girdle in the fibre plane for a planar one.
    One Philox block (four uniforms → three normals by Box–Muller) per draw."""
    u0, u1, u2, u3 = next_block(key0, key1, state)
    g0, g1 = _box_muller(u0, u1)
    r2 = np.sqrt(-2.0 * np.log1p(-u2))
    g2 = r2 * np.cos(2.0 * np.pi * u3)
    h0 = t[0] * g0 + t[3] * g1 + t[4] * g2
    h1 = t[3] * g0 + t[1] * g1 + t[5] * g2
    h2 = t[4] * g0 + t[5] * g1 + t[2] * g2
    norm = np.sqrt(h0 * h0 + h1 * h1 + h2 * h2)
    if norm > 0.0:
        out[0], out[1], out[2] = h0 / norm, h1 / norm, h2 / norm
    else:
        out[0], out[1], out[2] = g0, g1, g2


@numba.njit(cache=True, nogil=True)
def _kappa_from_odi(odi, p, od):
    """Watson concentration at p from the orientation dispersion index: κ = 1 / tan(π·ODI/2) (NODDI)."""
    _trilinear(odi, p[0], p[1], p[2], od)
    o = min(max(od[0], 1e-4), 1.0 - 1e-6)
    return 1.0 / np.tan(0.5 * np.pi * o)


@numba.njit(cache=True, nogil=True)
def _draw(t, e, odi, p, key0, key1, state, buf, od, out):
    """One direction draw at p: Watson around e with the ODI map's κ when a map is given, else
    the tensor's angular central Gaussian."""
    if odi.shape[0] > 0:
        sample_watson(e, _kappa_from_odi(odi, p, od), key0, key1, state, buf, out)
    else:
        sample_tensor_acg(t, key0, key1, state, buf, out)


@numba.njit(cache=True, nogil=True)
def _draw_within_angle(t, e, cl, odi, p, prev, cos_max, puncture, max_trials, key0, key1, state, buf, od, w, v):
    """A probabilistic step direction into ``v``, redrawn while it turns by more than the maximum
    angle from the incoming ``prev``, up to ``max_trials`` times; False when none was within it.

    Each draw (see :func:`_draw`) is oriented along ``prev``; with ``puncture`` ≥ 0 it then takes
    the place of the principal eigenvector in the tensorline rule (:func:`_next_direction`,
    weight cl = the tensor's linearity), so the draws steer where the tensor is linear and the
    incoming course is kept through planar (crossing) tensors; ``puncture < 0`` steps along the
    draw itself."""
    if e[0] * prev[0] + e[1] * prev[1] + e[2] * prev[2] < 0.0:
        for k in range(3):
            e[k] = -e[k]
    for _trial in range(max_trials):
        _draw(t, e, odi, p, key0, key1, state, buf, od, v)
        if puncture >= 0.0:
            w[0], w[1], w[2] = v[0], v[1], v[2]
            _next_direction(t, w, cl, prev, puncture, v)
        c = v[0] * prev[0] + v[1] * prev[1] + v[2] * prev[2]
        if c < 0.0:
            for k in range(3):
                v[k] = -v[k]
            c = -c
        if c >= cos_max:
            return True
    return False


@numba.njit(cache=True, parallel=True)
def track_probabilistic(field, mask, tissue, tvox, odi, seeds, seed_ids, run_seed, inv_voxel, step_mm, fa_min, cos_max,
                        puncture, max_steps, max_trials, out, lengths, stops):
    """Probabilistic tensor tracking from each seed, both directions (arguments as
    :func:`track_deterministic`, plus): ``odi`` (X, Y, Z, 1) float32 dispersion map, or a
    (0, 0, 0, 1) array to draw from the tensor itself; ``seed_ids`` (S,) global seed indices and
    ``run_seed``: the key of each seed's random stream; ``puncture`` as in
    :func:`_draw_within_angle`.
    """
    key0 = np.uint64(run_seed)
    step_vox = step_mm * inv_voxel
    for s in numba.prange(seeds.shape[0]):
        state = np.zeros(2, dtype=np.int64)
        state[1] = 4  # the 4-uniform buffer starts used up
        _track_seed(field, mask, tissue, tvox, odi, seeds[s], step_vox, fa_min, cos_max, puncture, max_steps,
                    max_trials, out[s], lengths[s], stops[s], True, key0, np.uint64(seed_ids[s]), state, np.empty(4))


@numba.njit(cache=True, parallel=True)
def gather_world(out, spans, rows, offsets, affine, dst):
    """Copy the points of streamlines ``rows`` (their spans of ``out``, voxel coordinates) into
    ``dst`` (P, 3) float32 at ``offsets``, mapped to RAS+ mm by ``affine`` (4, 4)."""
    for r in numba.prange(rows.shape[0]):
        row = rows[r]
        first = spans[row, 0]
        for k in range(offsets[r + 1] - offsets[r]):
            x = out[row, first + k, 0]
            y = out[row, first + k, 1]
            z = out[row, first + k, 2]
            for c in range(3):
                dst[offsets[r] + k, c] = affine[c, 0] * x + affine[c, 1] * y + affine[c, 2] * z + affine[c, 3]


@numba.njit(cache=True)
def streamline_density(points_vox, offsets, upsample, first_id, last_seen, counts):
    """Add to ``counts`` (X, Y, Z) int64 the number of streamlines that visit each voxel, each
    streamline once per voxel. ``points_vox`` (P, 3) float64 continuous voxel coordinates,
    ``offsets`` (S + 1,) int64; each segment is cut into ``upsample`` equal pieces; a point
    belongs to the voxel of its rounded coordinates. ``last_seen`` (X, Y, Z) int64 holds the id
    (``first_id`` + s) of the last streamline counted in each voxel. Serial: the counts are exact."""
    nx, ny, nz = counts.shape
    for s in range(offsets.size - 1):
        sid = first_id + s
        for p in range(offsets[s], offsets[s + 1]):
            pieces = 1 if p == offsets[s] else upsample
            for q in range(pieces):
                t = (q + 1) / pieces
                if p == offsets[s]:
                    x, y, z = points_vox[p, 0], points_vox[p, 1], points_vox[p, 2]
                else:
                    x = points_vox[p - 1, 0] + t * (points_vox[p, 0] - points_vox[p - 1, 0])
                    y = points_vox[p - 1, 1] + t * (points_vox[p, 1] - points_vox[p - 1, 1])
                    z = points_vox[p - 1, 2] + t * (points_vox[p, 2] - points_vox[p - 1, 2])
                i, j, k = int(np.floor(x + 0.5)), int(np.floor(y + 0.5)), int(np.floor(z + 0.5))
                if 0 <= i < nx and 0 <= j < ny and 0 <= k < nz and last_seen[i, j, k] != sid:
                    last_seen[i, j, k] = sid
                    counts[i, j, k] += 1
