"""Counter-based random numbers for the tracker (numba): Philox4x64-10 (Salmon et al. 2011).

Every seed point of a tracking run draws from its own stream, keyed by (run seed, seed index),
starting at counter 0 and advanced by that seed alone (one counter step = four uniforms), so
the streamlines do not depend on how seeds are spread over threads: 1 or N threads give
bit-identical output. The generator is the one behind ``numpy.random.Philox`` (same constants
and rounds; tested to give the same 64-bit words).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["philox4x64", "uniforms", "next_uniform"]

_M0 = np.uint64(0xD2E7470EE14C6C93)
_M1 = np.uint64(0xCA5A826395121157)
_W0 = np.uint64(0x9E3779B97F4A7C15)
_W1 = np.uint64(0xBB67AE8584CAA73B)
_LO32 = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)
_S11 = np.uint64(11)


@njit(cache=True, inline="always")
def _mulhilo(a, b):
    """(high, low) 64-bit words of the 128-bit product a·b."""
    a_lo = a & _LO32
    a_hi = a >> _S32
    b_lo = b & _LO32
    b_hi = b >> _S32
    p0 = a_lo * b_lo
    p1 = a_lo * b_hi
    p2 = a_hi * b_lo
    p3 = a_hi * b_hi
    mid = (p0 >> _S32) + (p1 & _LO32) + (p2 & _LO32)
    hi = p3 + (p1 >> _S32) + (p2 >> _S32) + (mid >> _S32)
    return hi, a * b


@njit(cache=True)
def philox4x64(c0, c1, c2, c3, k0, k1):
    """The four 64-bit words of Philox4x64-10 for counter (c0..c3) and key (k0, k1)."""
    for r in range(10):
        if r > 0:
            k0 = k0 + _W0
            k1 = k1 + _W1
        hi0, lo0 = _mulhilo(_M0, c0)
        hi1, lo1 = _mulhilo(_M1, c2)
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
    return c0, c1, c2, c3


@njit(cache=True)
def uniforms(key0, key1, counter, out):
    """Fill ``out`` with uniform doubles in [0, 1) from stream (key0, key1), words
    4·counter, 4·counter+1, ...; returns the next unused counter."""
    n = out.shape[0]
    k = 0
    c = counter
    while k < n:
        w0, w1, w2, w3 = philox4x64(np.uint64(c), np.uint64(0), np.uint64(0), np.uint64(0), key0, key1)
        for w in (w0, w1, w2, w3):
            if k < n:
                out[k] = np.float64(w >> _S11) * (1.0 / 9007199254740992.0)
                k += 1
        c += 1
    return c


@njit(cache=True)
def next_uniform(key0, key1, state, buf):
    """One uniform double in [0, 1) from stream (key0, key1); ``state`` (2,) int64 holds the next
    counter and the position in the 4-word buffer ``buf`` (4,) float64 (start with [0, 4])."""
    if state[1] >= 4:
        w0, w1, w2, w3 = philox4x64(np.uint64(state[0]), np.uint64(0), np.uint64(0), np.uint64(0), key0, key1)
        buf[0] = np.float64(w0 >> _S11) * (1.0 / 9007199254740992.0)
        buf[1] = np.float64(w1 >> _S11) * (1.0 / 9007199254740992.0)
        buf[2] = np.float64(w2 >> _S11) * (1.0 / 9007199254740992.0)
        buf[3] = np.float64(w3 >> _S11) * (1.0 / 9007199254740992.0)
        state[0] += 1
        state[1] = 0
    value = buf[state[1]]
    state[1] += 1
    return value
