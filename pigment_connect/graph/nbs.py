"""Network-Based Statistic (Zalesky et al. 2010) and its threshold-free form (TFNBS, Baggio et
al. 2018) on a GLM with covariates, with vectorised permutations.

Permutations follow Freedman & Lane (1983): the data's residuals under the nuisance-only model
are permuted (within exchangeability blocks when the design has them) and the full model is
refitted. The nuisance fit lies in the column space of the design and does not change the
contrast's statistic, so every permutation's statistics are one matrix product of a permuted
projection with the residuals: thousands of permutations cost a few large matrix products
instead of thousands of model fits. The first relabelling is the identity (the observed data),
so ``p = mean(null ≥ observed)`` is never 0 (as MRtrix3 and PALM count).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import InputError
from . import _kernels
from .group import Design, _flat_floor, _Projector, _stack_for, edge_index

__all__ = ["permutations", "permuted_statistics", "NBSResult", "nbs", "TFNBSResult", "tfnbs"]

_BATCH = 256
_BATCH_VALUES = 20_000_000
_Z_MAX = 37.5  # norm.isf underflows beyond this


def permutations(design: Design, n_perm: int, seed: int) -> np.ndarray:
    """(n_perm, n_scans) relabellings: row 0 the identity, the others shuffled (within blocks)."""
    if n_perm < 2:
        raise InputError(f"n_perm must be at least 2, got {n_perm}.")
    rng = np.random.default_rng(seed)
    n = design.n_scans
    out = np.empty((n_perm, n), dtype=np.int64)
    out[0] = np.arange(n)
    blocks = design.blocks if design.blocks is not None else np.zeros(n, dtype=np.int64)
    members = [np.flatnonzero(blocks == b) for b in np.unique(blocks)]
    for r in range(1, n_perm):
        perm = np.arange(n)
        for idx in members:
            perm[idx] = idx[rng.permutation(idx.size)]
        out[r] = perm
    return out


class _Permuter:
    """Statistics of every relabelling of the Freedman–Lane residuals, in batches."""

    def __init__(self, y: np.ndarray, design: Design) -> None:
        x, c = design.matrix, design.contrast
        self.proj = _Projector(design)
        # nuisance space: the part of the design the contrast does not test
        z = x @ (np.eye(x.shape[1]) - np.linalg.pinv(c) @ c)
        u, s, _ = np.linalg.svd(z, full_matrices=False)
        basis = u[:, s > s.max() * 1e-10] if s.size and s.max() > 0 else np.zeros((x.shape[0], 0))
        self.resid = y - basis @ (basis.T @ y)  # residual-forming matrix of the nuisance model
        self.norm2 = np.sum(self.resid**2, axis=0)
        self.floor = _flat_floor(y)

    def batch(self, perms: np.ndarray) -> np.ndarray:
        """(len(perms), n_tests) statistics, permuting the rows of the residuals.

        Row-permuting the data is the same as column-permuting the projections: for relabelling
        π, ``A @ R[π] = A[:, π⁻¹] @ R``.
        """
        b, n = perms.shape
        inv = np.argsort(perms, axis=1)
        white = self.proj.white[:, inv].transpose(1, 0, 2).reshape(b * self.proj.k, n)
        qt = self.proj.q.T[:, inv].transpose(1, 0, 2).reshape(b * self.proj.q.shape[1], n)
        numer = (white @ self.resid).reshape(b, self.proj.k, -1).transpose(1, 0, 2)
        fitted = (qt @ self.resid).reshape(b, self.proj.q.shape[1], -1)
        rss = self.norm2[None, :] - np.sum(fitted**2, axis=1)
        return self.proj.stat_from(numer, rss, self.floor)


def _batch_size(n_tests: int, permuter: _Permuter) -> int:
    """Relabellings per batch, so that the (batch, rank + k, n_tests) intermediates stay near
    ``_BATCH_VALUES`` float64 values (≈ 160 MB) whatever the number of edges."""
    per_relabelling = n_tests * (permuter.proj.q.shape[1] + permuter.proj.k)
    return int(max(1, min(_BATCH, _BATCH_VALUES // max(per_relabelling, 1))))


def permuted_statistics(y: np.ndarray, design: Design, perms: np.ndarray) -> np.ndarray:
    """(n_perm, n_tests) t or F statistics of ``y`` (n_scans, n_tests) under each relabelling."""
    permuter = _Permuter(np.asarray(y, dtype=np.float64), design)
    batch = _batch_size(np.shape(y)[1], permuter)
    return np.concatenate([permuter.batch(perms[k:k + batch]) for k in range(0, len(perms), batch)])


def _as_z(stat: np.ndarray, design: Design, df: int) -> np.ndarray:
    """Statistics converted to standard-normal deviates of equal p (as MRtrix3 thresholds)."""
    k = design.contrast.shape[0]
    if design.is_t:
        z = stats.norm.isf(stats.t.sf(np.abs(stat), df))
        return np.sign(stat) * np.minimum(z, _Z_MAX)
    return np.minimum(stats.norm.isf(stats.f.sf(stat, k, df)), _Z_MAX)


def _oriented(stat: np.ndarray, tail: str, kind_t: bool) -> np.ndarray:
    if not kind_t:
        if tail != "right":
            raise InputError("an F contrast has a single tail: use tail='right'.")
        return stat
    if tail == "right":
        return stat
    if tail == "left":
        return -stat
    if tail == "both":
        return np.abs(stat)
    raise InputError(f"unknown tail {tail!r}.", fix="use 'right', 'left' or 'both'.")


def _scaled(permuter: _Permuter, perms: np.ndarray, design: Design, tail: str, scale: str) -> np.ndarray:
    stat = permuter.batch(perms)
    if scale == "z":
        stat = _as_z(stat, design, permuter.proj.df)
    elif scale != "t":
        raise InputError(f"unknown statistic scale {scale!r}.", fix="use 't' (t or F) or 'z'.")
    return np.ascontiguousarray(_oriented(stat, tail, design.is_t))


def _relabellings(design: Design, n_perm: int, seed: int, relabellings) -> np.ndarray:
    if relabellings is None:
        return permutations(design, n_perm, seed)
    perms = np.asarray(relabellings)
    n = design.n_scans
    if perms.ndim != 2 or perms.shape[1] != n or not np.array_equal(np.sort(perms, axis=1),
                                                                    np.broadcast_to(np.arange(n), perms.shape)):
        raise InputError(f"relabellings must be rows that each permute 0..{n - 1}.")
    if not np.array_equal(perms[0], np.arange(n)):
        raise InputError("the first relabelling must be the identity (the observed data).")
    return perms


def _stream(y, design, n_perm, seed, tail, scale, reduce, relabellings=None):
    """Apply ``reduce`` to each batch of oriented permuted statistics; also return the observed
    (identity) statistics."""
    perms = _relabellings(design, n_perm, seed, relabellings)
    n_perm = perms.shape[0]
    permuter = _Permuter(y, design)
    batch = _batch_size(y.shape[1], permuter)
    out = [reduce(_scaled(permuter, perms[k:k + batch], design, tail, scale)) for k in range(0, n_perm, batch)]
    observed = _scaled(permuter, perms[:1], design, tail, scale)[0]
    return np.concatenate(out), observed


@dataclass(frozen=True)
class NBSResult:
    """Network-based statistic.

    Attributes
    ----------
    components : DataFrame, one row per supra-threshold component of the observed data
        (``component``, ``n_edges``, ``n_nodes``, ``intensity``, ``p_fwe``), largest first.
    edges : DataFrame, one row per edge (i < j): ``i``, ``j``, ``stat``, ``component`` (0 if
        below the threshold), ``p_fwe`` (of its component; 1 if none).
    null : (n_perm,) the maximal component of each relabelling (row 0: the observed data).
    threshold, statistic, tail, n_perm, seed : the settings.
    """

    components: pd.DataFrame
    edges: pd.DataFrame
    null: np.ndarray
    threshold: float
    statistic: str
    tail: str
    n_perm: int
    seed: int

    def matrix(self, n: int, alpha: float = 0.05) -> np.ndarray:
        """(n, n) bool: the edges of the components significant at ``alpha`` (FWE)."""
        from .group import vector_to_matrix

        return vector_to_matrix(((self.edges["component"] > 0) & (self.edges["p_fwe"] <= alpha)).to_numpy(), n,
                                fill=False)


def nbs(cohort, design: Design, *, threshold: float = 3.0, n_perm: int = 5000, tail: str = "right",
        statistic: str = "extent", scale: str = "t", seed: int = 0, relabellings=None) -> NBSResult:
    """The Network-Based Statistic of a contrast over a cohort of connectomes.

    Parameters
    ----------
    cohort : (n_scans, n, n) stack or list of Connectome, in the design's row order.
    design : from :func:`pigment_connect.graph.group.make_design` (covariates and blocks included).
    threshold : primary threshold on the edge statistic (t, or F for an F contrast; see ``scale``).
    n_perm : relabellings including the identity.
    tail : ``"right"`` (contrast > 0), ``"left"`` (< 0) or ``"both"`` (|t|).
    statistic : component size as ``"extent"`` (number of edges) or ``"intensity"``
        (sum of ``stat − threshold`` over its edges).
    scale : threshold the t/F statistic itself (``"t"``, as Zalesky's NBS and BCT) or its
        normal deviate of equal p (``"z"``, as MRtrix3 ``connectomestats``).
    seed : the permutations' seed.
    relabellings : (n_perm, n_scans) explicit relabellings instead of ``n_perm``/``seed`` (row 0
        the identity), e.g. to reproduce another tool's permutations.
    """
    if statistic not in ("extent", "intensity"):
        raise InputError(f"unknown component statistic {statistic!r}.", fix="use 'extent' or 'intensity'.")
    stack = _stack_for(cohort, design)
    n = stack.shape[1]
    ei, ej = edge_index(n)
    y = stack[:, ei, ej]
    use_mass = statistic == "intensity"
    null, observed = _stream(y, design, n_perm, seed, tail, scale,
                             lambda s: _kernels.max_component_per_row(n, ei, ej, s, float(threshold), use_mass),
                             relabellings)
    active = observed > threshold
    labels = np.empty(ei.size, dtype=np.int64)
    sizes = np.empty(n)
    mass = np.empty(n)
    _kernels.edge_components(n, ei, ej, active, observed - threshold, labels, sizes, mass)
    rows = []
    for root in np.unique(labels[labels >= 0]):
        members = labels == root
        size = sizes[root]
        value = mass[root] if use_mass else size
        nodes = np.unique(np.concatenate([ei[members], ej[members]]))
        rows.append({"root": root, "n_edges": int(size), "n_nodes": int(nodes.size), "intensity": float(mass[root]),
                     "p_fwe": float(np.mean(null >= value - 1e-12))})
    components = pd.DataFrame(rows, columns=["root", "n_edges", "n_nodes", "intensity", "p_fwe"])
    components = components.sort_values(["n_edges", "intensity"], ascending=False, kind="stable").reset_index(drop=True)
    components.insert(0, "component", np.arange(1, len(components) + 1))
    comp_of_root = dict(zip(components["root"], components["component"]))
    p_of_root = dict(zip(components["root"], components["p_fwe"]))
    edge_component = np.array([comp_of_root.get(r, 0) for r in labels], dtype=np.int64)
    edge_p = np.array([p_of_root.get(r, 1.0) for r in labels])
    edges = pd.DataFrame({"i": ei, "j": ej, "stat": observed, "component": edge_component, "p_fwe": edge_p})
    return NBSResult(components.drop(columns="root"), edges, null, float(threshold), statistic, tail, null.size, seed)


@dataclass(frozen=True)
class TFNBSResult:
    """Threshold-free NBS: per-edge ``edges`` table (``i``, ``j``, ``stat``, ``tfnbs``, ``p_fwe``),
    the ``null`` maxima (row 0 observed) and the settings."""

    edges: pd.DataFrame
    null: np.ndarray
    dh: float
    e: float
    h: float
    n_perm: int
    seed: int


def tfnbs(cohort, design: Design, *, dh: float = 0.1, e: float = 0.4, h: float = 3.0, n_perm: int = 5000,
          tail: str = "right", scale: str = "t", seed: int = 0, relabellings=None) -> TFNBSResult:
    """Threshold-free NBS (defaults as MRtrix3 ``connectomestats -algorithm tfnbs``: dh 0.1,
    E 0.4, H 3): each edge's score integrates ``extent^E · h^H`` over the heights h at which it
    is supra-threshold; FWE p-values from the permutation maxima. ``scale`` as in :func:`nbs`."""
    if dh <= 0:
        raise InputError(f"dh must be positive, got {dh}.")
    stack = _stack_for(cohort, design)
    n = stack.shape[1]
    ei, ej = edge_index(n)
    y = stack[:, ei, ej]
    null, observed = _stream(y, design, n_perm, seed, tail, scale,
                             lambda s: _kernels.tfnbs_max_per_row(n, ei, ej, s, float(dh), float(e), float(h)),
                             relabellings)
    scores = _kernels.tfnbs_scores(n, ei, ej, observed, float(dh), float(e), float(h))
    ranked = np.sort(null)
    exceed = null.size - np.searchsorted(ranked, scores - 1e-12, side="left")
    p = np.where(scores > 0, exceed / null.size, 1.0)
    edges = pd.DataFrame({"i": ei, "j": ej, "stat": observed, "tfnbs": scores, "p_fwe": p})
    return TFNBSResult(edges, null, float(dh), float(e), float(h), null.size, seed)
