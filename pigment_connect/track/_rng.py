"""Counter-based random numbers for the tracker (numba): Philox4x64-10 (Salmon et al. 2011).

Every seed point of a tracking run draws from its own stream, keyed by (run seed, seed index),
starting at counter 0 and advanced by that seed alone (one counter step = four uniforms), so
the streamlines do not depend on how seeds are spread over threads: 1 or N threads give
bit-identical output. The generator is the one behind ``numpy.random.Philox`` (same constants
and rounds; tested to give the same 64-bit words).
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

__all__ = ["philox4x64", "uniforms", "next_uniform", "next_block"]

_M0 = np.uint64(0xD2E7470EE14C6C93)
_M1 = np.uint64(0xCA5A826395121157)
_W0 = np.uint64(0x9E3779B97F4A7C15)
_W1 = np.uint64(0xBB67AE8584CAA73B)
_S11 = np.uint64(11)


@intrinsic
def _mulhi_native(typingctx, a, b):
    """High 64-bit word of the 128-bit product of two uint64 (one ``mul`` instruction on x86-64)."""
    sig = types.uint64(types.uint64, types.uint64)

    def codegen(context, builder, signature, args):
        i128 = ir.IntType(128)
        product = builder.mul(builder.zext(args[0], i128), builder.zext(args[1], i128))
        return builder.trunc(builder.lshr(product, ir.Constant(i128, 64)), ir.IntType(64))

    return sig, codegen


@njit(cache=True, inline="always")
def _mulhilo(a, b):
    """(high, low) 64-bit words of the 128-bit product a·b."""
    return _mulhi_native(a, b), a * b


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


@njit(cache=True, inline="always")
def next_block(key0, key1, state):
    """Four uniform doubles in [0, 1) from a fresh Philox block of stream (key0, key1) (the
    buffer of :func:`next_uniform` is marked used up). Cheaper than four ``next_uniform`` calls."""
    w0, w1, w2, w3 = philox4x64(np.uint64(state[0]), np.uint64(0), np.uint64(0), np.uint64(0), key0, key1)
    state[0] += 1
    state[1] = 4
    scale = 1.0 / 9007199254740992.0
    return (np.float64(w0 >> _S11) * scale, np.float64(w1 >> _S11) * scale, np.float64(w2 >> _S11) * scale,
            np.float64(w3 >> _S11) * scale)
