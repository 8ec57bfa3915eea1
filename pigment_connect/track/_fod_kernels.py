"""Numba kernels of fibre-ODF tracking: arrays and scalars in, arrays out. No Python objects, no I/O.

Conventions are those of :mod:`._kernels` (continuous voxel coordinates, directions as unit
physical vectors in the image-axis frame, one output row and one Philox stream per seed, the same
stop codes and five-tissue rules). The field is an (X, Y, Z, C) float32 map of real, even-order
spherical-harmonic coefficients in MRtrix3's basis over the scanner axes (what
:class:`~pigment_connect.fit.csd.CsdModel` and ``dwi2fod`` write), interpolated trilinearly
coefficient by coefficient as MRtrix3 does; ``rotation`` (3, 3) turns an image-axis direction into
scanner axes before the FOD is evaluated along it.

Deterministic tracking follows the FOD peak nearest the incoming direction (MRtrix3 ``SD_Stream``);
probabilistic tracking draws each direction from the interpolated FOD inside the curvature cone by
rejection (MRtrix3 ``iFOD1``), by default restricted to the fibre population (FOD lobe) the
streamline is on (see :func:`_sample_cone`). Both draw the first direction of each seed from the
FOD over the whole sphere, from the seed's own random stream.
"""

from __future__ import annotations

import numba
import numpy as np

from ._kernels import (
    STOP_ANGLE,
    STOP_CSF,
    STOP_FA,
    STOP_LENGTH,
    STOP_MASK,
    STOP_NONE,
    _in_mask,
    _tangent_pair,
    _tissue_stop,
    _trilinear,
)
from ._rng import next_block

__all__ = ["sh_amplitude", "fod_peak", "track_fod"]

_INV_4PI = 1.0 / (4.0 * np.pi)
_SQRT2 = np.sqrt(2.0)
_PEAK_H = 0.04  # radians: finite-difference offset of the peak search (the lobes of order 8 are ≈ 20° wide)
_PEAK_ITERATIONS = 8
_MAX_NEWTON_STEP = 0.3  # radians
_REJECTION_MARGIN = 1.5  # the proposal envelope over the located peak (MRtrix3 iFOD1 uses the same factor)


@numba.njit(cache=True, nogil=True)
def sh_amplitude(coeffs, lmax, x, y, z):
    """Σ c·Y of the coefficients ``coeffs`` (C,) of even orders ≤ ``lmax`` along the unit vector
    (x, y, z) in MRtrix3's basis (``tournier07``, non-legacy; DIPY ``real_sh_tournier(legacy=False)``):
    index l(l+1)/2 + m; Y = √2·N·P_l^|m|(cos θ)·cos(mφ) for m > 0, √2·N·P_l^|m|·sin(|m|φ) for m < 0,
    N·P_l^0 for m = 0, with the Condon–Shortley phase in P. Normalised associated Legendre values
    by the standard stable recurrences, cos/sin(mφ) by the Chebyshev recurrence: no allocation."""
    rho = np.sqrt(x * x + y * y)
    ct = z
    if rho > 1e-12:
        c1, s1 = x / rho, y / rho
    else:
        c1, s1 = 1.0, 0.0
    total = 0.0
    pmm = np.sqrt(_INV_4PI)  # P̄_m^m, starting at m = 0
    cm, sm = 1.0, 0.0  # cos(mφ), sin(mφ)
    for m in range(lmax + 1):
        if m > 0:
            pmm = -np.sqrt((2.0 * m + 1.0) / (2.0 * m)) * rho * pmm
            cm, sm = cm * c1 - sm * s1, sm * c1 + cm * s1
        p_prev2 = 0.0
        p_prev = pmm  # P̄_l^m for l = m
        for l in range(m, lmax + 1):
            if l == m:
                p = pmm
            elif l == m + 1:
                p = np.sqrt(2.0 * m + 3.0) * ct * pmm
            else:
                a = np.sqrt((4.0 * l * l - 1.0) / (l * l - m * m))
                b = np.sqrt(((l - 1.0) * (l - 1.0) - m * m) / (4.0 * (l - 1.0) * (l - 1.0) - 1.0))
                p = a * (ct * p_prev - b * p_prev2)
            if l > m:
                p_prev2, p_prev = p_prev, p
            if l % 2 == 0:
                centre = l * (l + 1) // 2
                if m == 0:
                    total += coeffs[centre] * p
                else:
                    total += _SQRT2 * p * (coeffs[centre + m] * cm + coeffs[centre - m] * sm)
    return total


@numba.njit(cache=True, nogil=True, inline="always")
def _amp(coeffs, lmax, rot, d0, d1, d2):
    """FOD amplitude along the image-axis direction d (rotated into scanner axes by ``rot``)."""
    w0 = rot[0, 0] * d0 + rot[0, 1] * d1 + rot[0, 2] * d2
    w1 = rot[1, 0] * d0 + rot[1, 1] * d1 + rot[1, 2] * d2
    w2 = rot[2, 0] * d0 + rot[2, 1] * d1 + rot[2, 2] * d2
    return sh_amplitude(coeffs, lmax, w0, w1, w2)


@numba.njit(cache=True, nogil=True, inline="always")
def _amp_offset(coeffs, lmax, rot, d, u0, u1, u2, v0, v1, v2, a, b):
    """Amplitude along normalise(d + a·u + b·v)."""
    e0, e1, e2 = d[0] + a * u0 + b * v0, d[1] + a * u1 + b * v1, d[2] + a * u2 + b * v2
    n = np.sqrt(e0 * e0 + e1 * e1 + e2 * e2)
    return _amp(coeffs, lmax, rot, e0 / n, e1 / n, e2 / n)


@numba.njit(cache=True, nogil=True)
def fod_peak(coeffs, lmax, rot, d):
    """Move the unit vector ``d`` (3,) in place to the FOD peak it lies under (a local maximum of
    the amplitude on the sphere) and return the amplitude there.

    Newton's method in the tangent plane with a finite-difference gradient and Hessian (five
    amplitudes per iteration), falling back to a gradient step where the Hessian is not negative
    definite; steps are capped at 0.3 rad and the search stops below 1e-3 rad (MRtrix3 finds its
    peaks the same way, with analytic derivatives)."""
    h = _PEAK_H
    f0 = _amp(coeffs, lmax, rot, d[0], d[1], d[2])
    for _ in range(_PEAK_ITERATIONS):
        u0, u1, u2, v0, v1, v2 = _tangent_pair(d)
        fup = _amp_offset(coeffs, lmax, rot, d, u0, u1, u2, v0, v1, v2, h, 0.0)
        fum = _amp_offset(coeffs, lmax, rot, d, u0, u1, u2, v0, v1, v2, -h, 0.0)
        fvp = _amp_offset(coeffs, lmax, rot, d, u0, u1, u2, v0, v1, v2, 0.0, h)
        fvm = _amp_offset(coeffs, lmax, rot, d, u0, u1, u2, v0, v1, v2, 0.0, -h)
        fuv = _amp_offset(coeffs, lmax, rot, d, u0, u1, u2, v0, v1, v2, h, h)
        gu, gv = (fup - fum) / (2.0 * h), (fvp - fvm) / (2.0 * h)
        huu = (fup - 2.0 * f0 + fum) / (h * h)
        hvv = (fvp - 2.0 * f0 + fvm) / (h * h)
        huv = (fuv - fup - fvp + f0) / (h * h)
        det = huu * hvv - huv * huv
        if huu < 0.0 and det > 0.0:  # negative definite: Newton
            su = -(hvv * gu - huv * gv) / det
            sv = -(huu * gv - huv * gu) / det
        else:  # not near a maximum yet: climb along the gradient
            g = np.sqrt(gu * gu + gv * gv)
            if g == 0.0:
                break
            su, sv = _MAX_NEWTON_STEP * gu / g, _MAX_NEWTON_STEP * gv / g
        s = np.sqrt(su * su + sv * sv)
        if s > _MAX_NEWTON_STEP:
            su, sv = su * _MAX_NEWTON_STEP / s, sv * _MAX_NEWTON_STEP / s
            s = _MAX_NEWTON_STEP
        e0, e1, e2 = d[0] + su * u0 + sv * v0, d[1] + su * u1 + sv * v1, d[2] + su * u2 + sv * v2
        n = np.sqrt(e0 * e0 + e1 * e1 + e2 * e2)
        e0, e1, e2 = e0 / n, e1 / n, e2 / n
        f1 = _amp(coeffs, lmax, rot, e0, e1, e2)
        if f1 < f0:  # overshot: halve the step once, else stop where we are
            e0, e1, e2 = d[0] + 0.5 * (su * u0 + sv * v0), d[1] + 0.5 * (su * u1 + sv * v1), d[2] + 0.5 * (
                su * u2 + sv * v2)
            n = np.sqrt(e0 * e0 + e1 * e1 + e2 * e2)
            e0, e1, e2 = e0 / n, e1 / n, e2 / n
            f1 = _amp(coeffs, lmax, rot, e0, e1, e2)
            if f1 < f0:
                break
        d[0], d[1], d[2], f0 = e0, e1, e2, f1
        if s < 1e-3:
            break
    return f0


@numba.njit(cache=True, nogil=True, inline="always")
def _cone_direction(prev, cos_max, u, w, out):
    """A direction uniform over the cap of half-angle acos(cos_max) around ``prev`` from two
    uniforms (u → cos θ, w → azimuth)."""
    ct = 1.0 - u * (1.0 - cos_max)
    st = np.sqrt(max(0.0, 1.0 - ct * ct))
    phi = 2.0 * np.pi * w
    a0, a1, a2, b0, b1, b2 = _tangent_pair(prev)
    cp, sp = np.cos(phi), np.sin(phi)
    out[0] = ct * prev[0] + st * (cp * a0 + sp * b0)
    out[1] = ct * prev[1] + st * (cp * a1 + sp * b1)
    out[2] = ct * prev[2] + st * (cp * a2 + sp * b2)


@numba.njit(cache=True, nogil=True)
def _sample_cone(coeffs, lmax, rot, prev, cos_max, cos_lobe, threshold, power, trials, key0, key1, state, out):
    """Draw ``out`` from the FOD (to the power ``power``) inside the curvature cone around ``prev``
    by rejection; the envelope is 1.5 × the amplitude of the peak nearest ``prev`` (raised if a
    draw exceeds it).

    ``cos_lobe`` ≤ -1 gives MRtrix3's iFOD1: uniform proposals over the cone. Otherwise the draw is
    restricted to the fibre population the streamline is on: the peak nearest ``prev`` must lie
    within acos(cos_lobe) of it, proposals are uniform within acos(cos_lobe) of that peak, and
    those outside the curvature cone are refused (FSL probtrackx likewise follows the population
    closest to the incoming direction). False when that peak is below ``threshold`` (or, with a
    lobe, too far from ``prev``), or no draw above ``threshold`` was accepted in ``trials``."""
    peak = np.empty(3)
    peak[0], peak[1], peak[2] = prev[0], prev[1], prev[2]
    top = fod_peak(coeffs, lmax, rot, peak)
    if not top >= threshold:  # also NaN
        return False
    by_lobe = cos_lobe > -1.0
    if by_lobe and peak[0] * prev[0] + peak[1] * prev[1] + peak[2] * prev[2] < cos_lobe:
        return False
    envelope = _REJECTION_MARGIN * top
    for _ in range(trials):
        u0, u1, u2, u3 = next_block(key0, key1, state)
        if by_lobe:
            _cone_direction(peak, cos_lobe, u0, u1, out)
            if out[0] * prev[0] + out[1] * prev[1] + out[2] * prev[2] < cos_max:
                continue
        else:
            _cone_direction(prev, cos_max, u0, u1, out)
        a = _amp(coeffs, lmax, rot, out[0], out[1], out[2])
        if a < threshold:
            continue
        if a > envelope:
            envelope = a
        if u2 <= (a / envelope) ** power:
            return True
    return False


@numba.njit(cache=True, nogil=True)
def _sample_sphere(coeffs, lmax, rot, threshold, trials, key0, key1, state, out):
    """The first direction of a seed: drawn from the FOD over the whole sphere by rejection
    (uniform proposals; the envelope is 1.5 × the largest amplitude of the draws' peaks so far).
    False when no draw above ``threshold`` is accepted in ``trials``."""
    envelope = 0.0
    probe = np.empty(3)
    for _ in range(trials):
        u0, u1, u2, u3 = next_block(key0, key1, state)
        ct = 1.0 - 2.0 * u0
        st = np.sqrt(max(0.0, 1.0 - ct * ct))
        phi = 2.0 * np.pi * u1
        out[0], out[1], out[2] = st * np.cos(phi), st * np.sin(phi), ct
        a = _amp(coeffs, lmax, rot, out[0], out[1], out[2])
        if a < threshold:
            continue
        if envelope == 0.0:  # calibrate on the peak above the first admissible draw
            probe[0], probe[1], probe[2] = out[0], out[1], out[2]
            envelope = _REJECTION_MARGIN * fod_peak(coeffs, lmax, rot, probe)
        if a > envelope:
            envelope = a
        if u2 * envelope <= a:
            return True
    return False


@numba.njit(cache=True, nogil=True)
def _coeffs_at(fod, stopmap, fa_min, mask, tissue, tvox, q, c, pv):
    """Interpolate the FOD at q into ``c``: STOP_MASK outside the mask or grid, else the tissue
    stop (see :func:`._kernels._tissue_stop`) if any, else STOP_FA where the interpolated stop map
    (X, Y, Z, 1) is below ``fa_min``, else STOP_NONE."""
    if not _in_mask(mask, q[0], q[1], q[2]):
        return STOP_MASK
    if not _trilinear(fod, q[0], q[1], q[2], c):
        return STOP_MASK
    status = _tissue_stop(tissue, tvox, q[0], q[1], q[2], pv)
    if status != STOP_NONE:
        return status
    _trilinear(stopmap, q[0], q[1], q[2], pv)  # the tissue fractions are no longer needed
    return STOP_FA if pv[0] < fa_min else STOP_NONE


@numba.njit(cache=True, nogil=True)
def _walk_fod(fod, lmax, rot, stopmap, fa_min, mask, tissue, tvox, start, direction, step_vox, threshold, power, cos_max,
              cos_lobe, max_steps, trials, out, n0, sign, probabilistic, key0, key1, state):
    """Follow the FOD from ``start`` along ``direction``, writing points to out[n0 + sign·m].

    Each step moves ``step_vox`` along the current direction, then takes the next one at the new
    point: the peak nearest the current direction (deterministic) or a draw in the cone
    (probabilistic). A new point whose FOD has no admissible direction (peak amplitude below
    ``threshold``) ends the streamline there and is kept (STOP_FA: it reached tissue without a
    fibre); a peak beyond the cone ends it with STOP_ANGLE. Returns (points written, stop reason)."""
    p = start.copy()
    prev = direction.copy()
    q = np.empty(3)
    v = np.empty(3)
    c = np.empty(fod.shape[3])
    pv = np.empty(5)
    n = 0
    for _ in range(max_steps):
        for k in range(3):
            q[k] = p[k] + step_vox[k] * prev[k]
        status = _coeffs_at(fod, stopmap, fa_min, mask, tissue, tvox, q, c, pv)
        if status == STOP_MASK or status == STOP_CSF:
            return n, status
        index = n0 + sign * (n + 1)
        for k in range(3):
            out[index, k] = q[k]
            p[k] = q[k]
        n += 1
        if status != STOP_NONE:  # grey matter or low anisotropy reached: the point is kept
            return n, status
        if probabilistic:
            if not _sample_cone(c, lmax, rot, prev, cos_max, cos_lobe, threshold, power, trials, key0, key1, state, v):
                return n, STOP_FA if _amp(c, lmax, rot, prev[0], prev[1], prev[2]) < threshold else STOP_ANGLE
        else:
            v[0], v[1], v[2] = prev[0], prev[1], prev[2]
            amp = fod_peak(c, lmax, rot, v)
            if not amp >= threshold:
                return n, STOP_FA
            if v[0] * prev[0] + v[1] * prev[1] + v[2] * prev[2] < cos_max:
                return n, STOP_ANGLE
        prev[0], prev[1], prev[2] = v[0], v[1], v[2]
    return n, STOP_LENGTH


@numba.njit(cache=True, parallel=True)
def track_fod(fod, lmax, rot, stopmap, fa_min, mask, tissue, tvox, seeds, seed_ids, run_seed, inv_voxel, step_mm, threshold,
              power, cos_max, cos_lobe, max_steps, trials, probabilistic, out, lengths, stops):
    """FOD tracking from each seed, both directions.

    Parameters
    ----------
    fod : (X, Y, Z, C) float32 SH coefficients (MRtrix3 basis, scanner axes), C = (lmax+1)(lmax+2)/2.
    lmax : the even SH order. rot : (3, 3) float64 image-axis → scanner-axis rotation.
    stopmap, fa_min : (X, Y, Z, 1) float32 anisotropy map (FA, or ones) and its threshold: a
        streamline stops on entering tissue below it, keeping the point, as the tensor tracker.
    mask, tissue, tvox, seeds, inv_voxel, step_mm, cos_max, max_steps, out, lengths, stops : as
        :func:`._kernels.track_deterministic`.
    seed_ids, run_seed : the key of each seed's random stream (as :func:`._kernels.track_probabilistic`;
        the deterministic tracker uses it for the first direction only).
    threshold : FOD amplitude below which there is no fibre (MRtrix3 ``-cutoff``).
    power : probabilistic draws follow FOD^power within the cone (MRtrix3 ``-power``; 1: the FOD itself).
    cos_lobe : cosine of the fibre-population half-angle of the probabilistic draws, or ≤ -1 for
        plain iFOD1 (see :func:`_sample_cone`).
    trials : rejection draws per step before a streamline stops (MRtrix3 ``-trials``).
    probabilistic : iFOD1 draws (True) or peak following (False).
    """
    key0 = np.uint64(run_seed)
    step_vox = step_mm * inv_voxel
    centre = max_steps
    for s in numba.prange(seeds.shape[0]):
        state = np.zeros(2, dtype=np.int64)
        state[1] = 4
        key1 = np.uint64(seed_ids[s])
        lengths[s, 0] = centre
        lengths[s, 1] = centre
        stops[s, 0] = STOP_MASK
        stops[s, 1] = STOP_MASK
        p = seeds[s].copy()
        c = np.empty(fod.shape[3])
        pv = np.empty(5)
        status = _coeffs_at(fod, stopmap, fa_min, mask, tissue, tvox, p, c, pv)
        if status != STOP_NONE:
            if status == STOP_FA:
                stops[s, 0] = STOP_FA
                stops[s, 1] = STOP_FA
            continue
        first = np.empty(3)
        if not _sample_sphere(c, lmax, rot, threshold, trials, key0, key1, state, first):
            stops[s, 0] = STOP_FA
            stops[s, 1] = STOP_FA
            continue
        if not probabilistic:
            fod_peak(c, lmax, rot, first)
        row = out[s]
        for k in range(3):
            row[centre, k] = p[k]
        nf, sf = _walk_fod(fod, lmax, rot, stopmap, fa_min, mask, tissue, tvox, p, first, step_vox, threshold, power, cos_max,
                           cos_lobe, max_steps, trials, row, centre, 1, probabilistic, key0, key1, state)
        nb, sb = _walk_fod(fod, lmax, rot, stopmap, fa_min, mask, tissue, tvox, p, -first, step_vox, threshold, power, cos_max,
                           cos_lobe, max_steps, trials, row, centre, -1, probabilistic, key0, key1, state)
        lengths[s, 0] = centre - nb
        lengths[s, 1] = centre + nf + 1
        stops[s, 0] = sb
        stops[s, 1] = sf
