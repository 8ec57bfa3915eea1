"""Null models and small-worldness.

* :func:`randomize_degree` — Maslov–Sneppen double-edge swaps: every node keeps its degree, the
  weights travel with their edges (BCT ``randmio_und``).
* :func:`randomize_strength` — the degree-preserving rewiring, then the weights are swapped
  between edges while that brings every node's strength closer to the original (the strength
  sequence is matched closely, not exactly; degrees and the set of weights are exact).
* :func:`lattice` — degree-preserving swaps kept only when they move edges towards the diagonal
  of a ring lattice (Sporns & Zwi 2004; BCT ``latmio_und``).

All take an explicit ``seed``: the same seed gives the same null graph.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ..errors import InputError
from . import _kernels
from .metrics import GraphLike, as_weights, characteristic_path_length, clustering, rich_club

__all__ = ["randomize_degree", "randomize_strength", "lattice", "small_worldness", "normalized_rich_club"]


def _n_swaps(w: np.ndarray, n_iter: int) -> int:
    return int(n_iter * np.count_nonzero(np.triu(w, 1)))


def _check_seed(seed) -> int:
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed must be a non-negative integer, got {seed!r}.")
    return int(seed) % (2**32)


def randomize_degree(conn: GraphLike, *, n_iter: int = 10, seed: int = 0) -> np.ndarray:
    """A degree-preserving random graph: ``n_iter`` swaps per edge on average.

    Returns
    -------
    (n, n) float64 weights of the null graph.
    """
    w = as_weights(conn)
    out, _ = _kernels.rewire_degree_preserving(w, _n_swaps(w, n_iter), _check_seed(seed), np.empty((0, 0)))
    return out


def randomize_strength(conn: GraphLike, *, n_iter: int = 10, seed: int = 0, match_steps: int = 50) -> np.ndarray:
    """A degree-preserving random graph whose strengths approximate the original's.

    ``match_steps`` weight swaps per edge are tried after the rewiring; each is kept only if it
    lowers Σ_i (s_i − s_i⁰)².
    """
    w = as_weights(conn)
    seed = _check_seed(seed)
    rewired = randomize_degree(w, n_iter=n_iter, seed=seed)
    steps = int(match_steps * np.count_nonzero(np.triu(w, 1)))
    return _kernels.match_strengths(rewired, w.sum(axis=1), steps, (seed + 1) % (2**32))


def lattice(conn: GraphLike, *, n_iter: int = 10, seed: int = 0) -> np.ndarray:
    """A degree-preserving lattice-like graph (edges pulled towards a ring lattice)."""
    w = as_weights(conn)
    n = w.shape[0]
    idx = np.arange(n)
    ring = np.abs(idx[:, None] - idx[None, :])
    ring = np.minimum(ring, n - ring).astype(np.float64)
    out, _ = _kernels.rewire_degree_preserving(w, _n_swaps(w, n_iter), _check_seed(seed), ring)
    return out


def small_worldness(conn: GraphLike, *, n_null: int = 10, null: str = "degree", binary: bool = False,
                    seed: int = 0, n_iter: int = 10) -> pd.Series:
    """Small-world indices against ``n_null`` seeded null graphs.

    σ = (C / C_rand) / (L / L_rand) (Humphries et al. 2008) and ω = L_rand / L − C / C_latt
    (Telesford et al. 2011), with C the mean clustering and L the characteristic path length
    (weighted unless ``binary``), the rand/latt values averaged over the null graphs. ``null``
    chooses the random graphs: ``"degree"`` or ``"strength"`` preserving.

    Returns
    -------
    Series with ``sigma``, ``omega``, ``C``, ``L``, ``C_rand``, ``L_rand``, ``C_latt``.
    """
    if null not in ("degree", "strength"):
        raise InputError(f"unknown null model {null!r}.", fix="use 'degree' or 'strength'.")
    if n_null < 1:
        raise InputError("small-worldness needs at least one null graph (n_null >= 1).")
    w = as_weights(conn)
    if not np.any(w):
        raise InputError("small-worldness is undefined for a graph without edges.")
    randomize = randomize_degree if null == "degree" else randomize_strength

    def c_and_l(x):
        return float(clustering(x, binary=binary).mean()), characteristic_path_length(x, binary=binary)

    c, length = c_and_l(w)
    rand = np.array([c_and_l(randomize(w, n_iter=n_iter, seed=seed + k)) for k in range(n_null)])
    latt = np.array([c_and_l(lattice(w, n_iter=n_iter, seed=seed + n_null + k))[0] for k in range(n_null)])
    c_rand, l_rand = rand.mean(axis=0)
    c_latt = float(latt.mean())
    return pd.Series({
        "sigma": (c / c_rand) / (length / l_rand),
        "omega": l_rand / length - c / c_latt,
        "C": c, "L": length, "C_rand": c_rand, "L_rand": l_rand, "C_latt": c_latt,
    })


def normalized_rich_club(conn: GraphLike, *, n_null: int = 100, binary: bool = True, seed: int = 0,
                         n_iter: int = 10) -> pd.DataFrame:
    """Rich-club coefficient against degree-preserving nulls (Colizza et al. 2006; van den
    Heuvel & Sporns 2011): φ(k), the mean and SD of φ_rand(k) over ``n_null`` seeded null graphs,
    φ_norm = φ / mean φ_rand, and the fraction of nulls with φ_rand ≥ φ (a permutation p-value).

    Returns
    -------
    DataFrame indexed by k (nodes of degree > k): ``phi``, ``phi_rand``, ``phi_rand_sd``,
    ``phi_norm``, ``p``.
    """
    if n_null < 1:
        raise InputError("the normalised rich club needs at least one null graph (n_null >= 1).")
    w = as_weights(conn)
    phi = rich_club(w, binary=binary)
    k_max = phi.size - 1
    rand = np.stack([rich_club(randomize_degree(w, n_iter=n_iter, seed=seed + r), binary=binary, k_max=k_max)
                     for r in range(n_null)])
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # levels k no null graph reaches are NaN
        mean = np.nanmean(rand, axis=0)
        p = (1 + np.sum(rand >= phi, axis=0)) / (1 + n_null)
        return pd.DataFrame({"phi": phi, "phi_rand": mean, "phi_rand_sd": np.nanstd(rand, axis=0),
                             "phi_norm": phi / mean, "p": np.where(np.isfinite(phi), p, np.nan)},
                            index=pd.RangeIndex(k_max + 1, name="k"))
