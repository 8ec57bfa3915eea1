"""Numba kernels of the connectome stage (no orchestration here)."""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True, parallel=True)
def reverse_search(ijk, points, offsets, labels, max_dist):
    """(S, 2) labels found walking inwards from each end of each streamline.

    ``ijk`` (P, 3) rounded voxel indices of ``points`` (P, 3) mm; streamline s spans
    ``offsets[s]:offsets[s+1]``. From the first (last) point, step towards the midpoint index
    (``n // 2`` from the end, ``(n + 1) // 2`` from the start) and return the first non-zero
    label; stop with 0 once more than ``max_dist`` mm of path has been walked (0: no limit).
    """
    n_s = offsets.shape[0] - 1
    nx, ny, nz = labels.shape
    out = np.zeros((n_s, 2), dtype=np.int32)
    for s in prange(n_s):
        a = offsets[s]
        n = offsets[s + 1] - a
        if n == 0:
            continue
        for side in range(2):
            if side == 0:
                start, mid, step = 0, (n + 1) // 2, 1
            else:
                start, mid, step = n - 1, n // 2, -1
            walked = 0.0
            k = start
            while k != mid:
                i, j, l = ijk[a + k, 0], ijk[a + k, 1], ijk[a + k, 2]
                if 0 <= i < nx and 0 <= j < ny and 0 <= l < nz and labels[i, j, l] != 0:
                    out[s, side] = labels[i, j, l]
                    break
                if max_dist > 0.0:
                    if k + step < 0 or k + step >= n:
                        break
                    d = 0.0
                    for c in range(3):
                        d += (points[a + k, c] - points[a + k + step, c]) ** 2
                    walked += np.sqrt(d)
                    if walked > max_dist:
                        break
                k += step
    return out


@njit(cache=True, parallel=True)
def mean_along(points, offsets, world_to_voxel, volume):
    """(S,) arc-length-weighted mean of ``volume`` along each streamline.

    ``points`` (P, 3) RAS+ mm (float32 or float64), ``world_to_voxel`` (4, 4). Each point reads
    the voxel nearest to it (indices rounded half away from zero; 0 outside the volume) and
    weighs half the length of its adjacent segments (MRtrix3 ``tcksample -stat_tck mean
    -nointerp``); a streamline of zero length gets the plain mean of its points. One pass, no
    temporaries the size of the tractogram.
    """
    n_s = offsets.shape[0] - 1
    nx, ny, nz = volume.shape
    out = np.zeros(n_s)
    for s in prange(n_s):
        a = offsets[s]
        n = offsets[s + 1] - a
        total = 0.0
        weight = 0.0
        plain = 0.0
        for k in range(n):
            p0 = points[a + k, 0]
            p1 = points[a + k, 1]
            p2 = points[a + k, 2]
            idx = np.empty(3, dtype=np.int64)
            for r in range(3):
                v = (world_to_voxel[r, 0] * p0 + world_to_voxel[r, 1] * p1 + world_to_voxel[r, 2] * p2
                     + world_to_voxel[r, 3])
                idx[r] = np.int64(np.floor(v + 0.5)) if v >= 0 else np.int64(np.ceil(v - 0.5))
            i, j, l = idx[0], idx[1], idx[2]
            value = volume[i, j, l] if (0 <= i < nx and 0 <= j < ny and 0 <= l < nz) else 0.0
            half = 0.0
            if k > 0:
                d = 0.0
                for c in range(3):
                    d += (np.float64(points[a + k, c]) - np.float64(points[a + k - 1, c])) ** 2
                half += 0.5 * np.sqrt(d)
            if k < n - 1:
                d = 0.0
                for c in range(3):
                    d += (np.float64(points[a + k + 1, c]) - np.float64(points[a + k, c])) ** 2
                half += 0.5 * np.sqrt(d)
            total += value * half
            weight += half
            plain += value
        if weight > 0.0:
            out[s] = total / weight
        elif n > 0:
            out[s] = plain / n
    return out


@njit(cache=True, parallel=True)
def streamline_lengths(points, offsets):
    """(S,) arc length of each streamline, mm (float64 accumulation)."""
    n_s = offsets.shape[0] - 1
    out = np.zeros(n_s)
    for s in prange(n_s):
        total = 0.0
        for k in range(offsets[s] + 1, offsets[s + 1]):
            d = 0.0
            for c in range(3):
                d += (np.float64(points[k, c]) - np.float64(points[k - 1, c])) ** 2
            total += np.sqrt(d)
        out[s] = total
    return out
