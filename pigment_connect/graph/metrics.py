"""Graph metrics of undirected connectomes, weighted or binary, node- and graph-level.

Conventions (stated once, followed everywhere; the peers they match are tested):

* Weights are connection strengths (larger = stronger, ≥ 0). The diagonal is ignored.
  ``binary=True`` uses the graph ``W > 0`` instead.
* Path-based metrics convert weights to lengths explicitly (``length=``): ``"inverse"``
  (``1/w``, BCT ``weight_conversion(W, 'lengths')``, the default) or ``"neglog"``
  (``-log(w / max w)``, the probabilistic length for weights in (0, 1]).
* Weighted clustering and transitivity are Onnela et al.'s geometric mean on ``W / max(W)``
  (networkx ``clustering(G, weight=...)``; BCT ``clustering_coef_wu`` and ``transitivity_wu``
  on ``W / max(W)``).
* Betweenness counts each unordered node pair once (networkx ``normalized=False``); BCT's
  ``betweenness_wei``/``betweenness_bin`` are exactly twice this. ``normalized=True`` divides
  by (n-1)(n-2)/2.
* Global efficiency is the mean over ordered pairs i ≠ j of ``1/d_ij`` (BCT ``efficiency_wei``
  / ``efficiency_bin``); networkx's ``global_efficiency`` is the binary case.
* Local efficiency: weighted as BCT ``efficiency_wei(W, local=True)`` (Wang et al. 2016, on
  the raw weights: scale them to [0, 1] first, e.g. ``W / W.max()``); binary as networkx's
  ``local_efficiency`` and BCT ``efficiency_bin(local=True)``.
* Characteristic path length is the mean finite ``d_ij`` over i ≠ j (BCT ``charpath`` with
  ``include_infinite=False``); disconnected pairs are excluded, NaN if none is connected.
* Rich club: entry k of the returned array uses the nodes of degree > k (networkx
  ``rich_club_coefficient(normalized=False)[k]``; BCT ``rich_club_bu(...)[0][k-1]`` and
  ``rich_club_wu(...)[k]``).
* Modules are integer labels 1..M, numbered by first appearance in node order.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from ..errors import InputError
from ..io.connectome import Connectome
from . import _kernels

__all__ = [
    "as_weights",
    "weight_to_length",
    "shortest_path_lengths",
    "degree",
    "strength",
    "clustering",
    "transitivity",
    "global_efficiency",
    "local_efficiency",
    "characteristic_path_length",
    "betweenness",
    "modularity",
    "louvain",
    "consensus_partition",
    "participation_coefficient",
    "within_module_degree_z",
    "rich_club",
    "assortativity",
    "node_metrics",
    "global_metrics",
]

Length = Literal["inverse", "neglog"]
GraphLike = Connectome | np.ndarray


def as_weights(conn: GraphLike, *, binary: bool = False, allow_negative: bool = False) -> np.ndarray:
    """The (n, n) float64 weight matrix of ``conn`` with a zero diagonal (0/1 if ``binary``).

    Raises
    ------
    InputError
        Not square, not symmetric, NaN/Inf, or negative weights (unless ``allow_negative``).
    """
    w = conn.weights if isinstance(conn, Connectome) else np.asarray(conn, dtype=np.float64)
    if w.ndim != 2 or w.shape[0] != w.shape[1]:
        raise InputError(f"a square matrix is needed, got shape {w.shape}.")
    if not np.all(np.isfinite(w)):
        raise InputError("the connectome contains NaN or Inf.", fix="replace them (e.g. np.nan_to_num) first.")
    if not allow_negative and np.any(w < 0):
        raise InputError("negative weights are not supported by these metrics.", fix="threshold or take |W| first.")
    if np.max(np.abs(w - w.T), initial=0.0) > 1e-12 + 1e-10 * np.max(np.abs(w), initial=0.0):
        raise InputError("the connectome is not symmetric; these metrics are for undirected graphs.",
                         fix="symmetrise it, e.g. (W + W.T) / 2.")
    w = np.array(w, dtype=np.float64, copy=True)
    np.fill_diagonal(w, 0.0)
    if binary:
        w = (w > 0).astype(np.float64)
    return w


def weight_to_length(w: np.ndarray, length: Length = "inverse") -> np.ndarray:
    """Edge lengths from weights (0 stays "no edge"); see the module docstring."""
    out = np.zeros_like(w)
    edge = w > 0
    if length == "inverse":
        out[edge] = 1.0 / w[edge]
    elif length == "neglog":
        top = w.max() if edge.any() else 1.0
        out[edge] = -np.log(w[edge] / top)
        # an edge of the maximal weight has length 0 under -log: keep it an edge
        out[edge & (out <= 0)] = np.finfo(float).tiny
    else:
        raise InputError(f"unknown length conversion {length!r}.", fix="use 'inverse' or 'neglog'.")
    return out


def shortest_path_lengths(conn: GraphLike, *, binary: bool = False, length: Length = "inverse") -> np.ndarray:
    """(n, n) shortest-path lengths (hops if ``binary``; inf where disconnected)."""
    w = as_weights(conn, binary=binary)
    return _kernels.all_pairs_shortest_paths(w if binary else weight_to_length(w, length))


def degree(conn: GraphLike) -> np.ndarray:
    """(n,) number of neighbours."""
    return (as_weights(conn) > 0).sum(axis=1).astype(np.int64)


def strength(conn: GraphLike) -> np.ndarray:
    """(n,) sum of edge weights."""
    return as_weights(conn).sum(axis=1)


def _triangles(w: np.ndarray, binary: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per node: the (weighted) closed triangles Σ_jh (ŵ_ij ŵ_jh ŵ_hi)^(1/3) and k(k-1)."""
    if binary:
        a = w
    else:
        top = w.max()
        a = np.cbrt(w / top) if top > 0 else w
    cyc3 = np.einsum("ij,ij->i", a @ a, a)  # diag(A³) with one matrix product
    k = (w > 0).sum(axis=1).astype(np.float64)
    return cyc3, k * (k - 1.0)


def clustering(conn: GraphLike, *, binary: bool = False) -> np.ndarray:
    """(n,) clustering coefficient (Onnela weighted on ``W/max W``; 0 for degree < 2)."""
    cyc3, pairs = _triangles(as_weights(conn, binary=binary), binary)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pairs > 0, cyc3 / np.where(pairs > 0, pairs, 1.0), 0.0)


def transitivity(conn: GraphLike, *, binary: bool = False) -> float:
    """Σ triangles / Σ k(k-1) (BCT ``transitivity_bu``/``transitivity_wu``); 0 without wedges."""
    cyc3, pairs = _triangles(as_weights(conn, binary=binary), binary)
    total = pairs.sum()
    return float(cyc3.sum() / total) if total > 0 else 0.0


def global_efficiency(conn: GraphLike, *, binary: bool = False, length: Length = "inverse") -> float:
    """Mean of ``1/d_ij`` over ordered pairs i ≠ j (0 for a graph without edges)."""
    d = shortest_path_lengths(conn, binary=binary, length=length)
    n = d.shape[0]
    if n < 2:
        return 0.0
    off = ~np.eye(n, dtype=bool)
    with np.errstate(divide="ignore"):
        inv = np.where(np.isfinite(d) & off, 1.0 / d, 0.0)
    return float(inv[off].mean())


def local_efficiency(conn: GraphLike, *, binary: bool = False) -> np.ndarray:
    """(n,) local efficiency (see the module docstring for the two forms); 0 for degree < 2."""
    w = as_weights(conn, binary=binary)
    if binary:
        return _kernels.local_efficiency(w, w, True)
    lengths = np.cbrt(weight_to_length(w, "inverse"))
    return _kernels.local_efficiency(w, lengths, False)


def characteristic_path_length(conn: GraphLike, *, binary: bool = False, length: Length = "inverse") -> float:
    """Mean finite shortest-path length over pairs i ≠ j (NaN if no pair is connected)."""
    d = shortest_path_lengths(conn, binary=binary, length=length)
    off = ~np.eye(d.shape[0], dtype=bool)
    finite = d[off & np.isfinite(d)]
    return float(finite.mean()) if finite.size else float("nan")


def betweenness(conn: GraphLike, *, binary: bool = False, length: Length = "inverse",
                normalized: bool = False) -> np.ndarray:
    """(n,) node betweenness centrality, each unordered pair counted once."""
    w = as_weights(conn, binary=binary)
    bc = _kernels.betweenness(w if binary else weight_to_length(w, length))
    n = w.shape[0]
    if normalized and n > 2:
        bc = bc / ((n - 1) * (n - 2) / 2.0)
    return bc


# ------------------------------------------------------------------ modules
def _relabel(partition: np.ndarray) -> np.ndarray:
    """Module labels 1..M in order of first appearance."""
    _, first, inverse = np.unique(partition, return_index=True, return_inverse=True)
    rank = np.argsort(np.argsort(first))
    return rank[inverse] + 1


def _check_partition(partition, n: int) -> np.ndarray:
    ci = np.asarray(partition).ravel()
    if ci.shape[0] != n:
        raise InputError(f"the partition has {ci.shape[0]} labels for {n} nodes.")
    return _relabel(ci)


def modularity(conn: GraphLike, partition, *, gamma: float = 1.0) -> float:
    """Newman's modularity Q of a partition (networkx ``community.modularity``, BCT's Q).

    Q = (1/2m) Σ_ij [w_ij − γ s_i s_j / 2m] δ(c_i, c_j), with 2m = Σ_ij w_ij.
    """
    w = as_weights(conn)
    ci = _check_partition(partition, w.shape[0])
    two_m = w.sum()
    if two_m == 0:
        return 0.0
    s = w.sum(axis=1)
    onehot = np.zeros((w.shape[0], ci.max()))
    onehot[np.arange(w.shape[0]), ci - 1] = 1.0
    within = np.einsum("im,ij,jm->", onehot, w, onehot)
    module_strength = onehot.T @ s
    return float(within / two_m - gamma * np.sum(module_strength**2) / two_m**2)


def louvain(conn: GraphLike, *, gamma: float = 1.0, seed: int = 0) -> np.ndarray:
    """(n,) Louvain modules (networkx ``louvain_communities``, seeded), labels 1..M."""
    import networkx as nx

    w = as_weights(conn)
    n = w.shape[0]
    if not np.any(w):
        return np.arange(1, n + 1)
    graph = nx.from_numpy_array(w)
    communities = nx.community.louvain_communities(graph, weight="weight", resolution=gamma, seed=seed)
    ci = np.empty(n, dtype=np.int64)
    for label, members in enumerate(communities):
        ci[list(members)] = label
    return _relabel(ci)


def consensus_partition(conn: GraphLike, *, n_runs: int = 50, tau: float = 0.5, gamma: float = 1.0,
                        seed: int = 0, max_rounds: int = 20) -> np.ndarray:
    """Consensus of ``n_runs`` seeded Louvain runs (Lancichinetti & Fortunato 2012; BCT
    ``consensus_und``): the agreement matrix (fraction of runs that put i and j together),
    thresholded at ``tau``, is partitioned again until every run agrees.

    Returns
    -------
    (n,) int module labels 1..M.
    """
    partitions = np.stack([louvain(conn, gamma=gamma, seed=seed + r) for r in range(n_runs)])
    for round_ in range(max_rounds):
        if np.all(partitions == partitions[0]):
            break
        agreement = (partitions[:, :, None] == partitions[:, None, :]).mean(axis=0)
        np.fill_diagonal(agreement, 0.0)
        agreement[agreement < tau] = 0.0
        if not np.any(agreement):
            return np.arange(1, partitions.shape[1] + 1)
        base = seed + (round_ + 1) * n_runs
        partitions = np.stack([louvain(agreement, seed=base + r) for r in range(n_runs)])
    return partitions[0]


def participation_coefficient(conn: GraphLike, partition) -> np.ndarray:
    """(n,) Guimerà's participation coefficient 1 − Σ_m (s_im / s_i)² (BCT ``participation_coef``);
    0 for isolated nodes."""
    w = as_weights(conn)
    ci = _check_partition(partition, w.shape[0])
    onehot = np.zeros((w.shape[0], ci.max()))
    onehot[np.arange(w.shape[0]), ci - 1] = 1.0
    per_module = w @ onehot
    s = w.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = 1.0 - np.sum(per_module**2, axis=1) / s**2
    return np.where(s > 0, p, 0.0)


def within_module_degree_z(conn: GraphLike, partition) -> np.ndarray:
    """(n,) within-module degree (strength) z-score (BCT ``module_degree_zscore``, population
    standard deviation; 0 where the module's spread is 0)."""
    w = as_weights(conn)
    ci = _check_partition(partition, w.shape[0])
    z = np.zeros(w.shape[0])
    for m in np.unique(ci):
        members = np.flatnonzero(ci == m)
        k_in = w[np.ix_(members, members)].sum(axis=1)
        sd = k_in.std()
        z[members] = (k_in - k_in.mean()) / sd if sd > 0 else 0.0
    return z


def rich_club(conn: GraphLike, *, binary: bool = True, k_max: int | None = None) -> np.ndarray:
    """Rich-club coefficient φ(k) for k = 0..k_max (default max degree − 1), NaN where undefined.

    Binary: φ(k) = 2 E_k / (N_k (N_k − 1)) over the N_k nodes of degree > k.
    Weighted (Opsahl et al. 2008): the weight within that sub-graph over the sum of the same
    number of the strongest weights in the whole graph.
    """
    w = as_weights(conn)
    deg = (w > 0).sum(axis=1)
    if k_max is None:
        k_max = max(int(deg.max()) - 1, 0)
    ranked = np.sort(w[np.triu_indices_from(w, 1)])[::-1]
    out = np.full(k_max + 1, np.nan)
    for k in range(k_max + 1):
        rich = deg > k
        n_k = int(rich.sum())
        sub = w[np.ix_(rich, rich)]
        e_k = int(np.count_nonzero(sub)) // 2
        if binary:
            if n_k > 1:
                out[k] = 2.0 * e_k / (n_k * (n_k - 1))
        elif e_k > 0:
            out[k] = sub.sum() / 2.0 / ranked[:e_k].sum()
    return out


def assortativity(conn: GraphLike, *, binary: bool = False) -> float:
    """Degree (``binary``) or strength assortativity: Pearson correlation of the end-point
    degrees/strengths over edges (networkx ``degree_assortativity_coefficient``; BCT
    ``assortativity_bin``/``assortativity_wei`` with flag 0). NaN if undefined."""
    w = as_weights(conn, binary=binary)
    k = w.sum(axis=1)
    i, j = np.nonzero(np.triu(w, 1))
    if i.size == 0:
        return float("nan")
    ki, kj = k[i], k[j]
    t1 = np.mean(ki * kj)
    t2 = np.mean(0.5 * (ki + kj)) ** 2
    t3 = np.mean(0.5 * (ki**2 + kj**2))
    den = t3 - t2
    return float((t1 - t2) / den) if den > 0 else float("nan")


# ------------------------------------------------------------------ tables
def _names(conn: GraphLike, n: int) -> list[str]:
    return conn.labels if isinstance(conn, Connectome) else [f"node{k + 1}" for k in range(n)]


def node_metrics(conn: GraphLike, *, partition=None, seed: int = 0, length: Length = "inverse") -> pd.DataFrame:
    """Node-level metrics of a weighted connectome.

    Columns: ``node``, ``degree``, ``strength``, ``clustering`` (weighted), ``local_efficiency``
    (weighted, on ``W / max W``), ``betweenness`` (weighted), ``module`` (Louvain with ``seed``
    unless ``partition`` is given), ``participation``, ``within_module_z``.

    Returns
    -------
    DataFrame with one row per node, in the connectome's row order.
    """
    w = as_weights(conn)
    n = w.shape[0]
    ci = louvain(w, seed=seed) if partition is None else _check_partition(partition, n)
    top = w.max()
    return pd.DataFrame(
        {
            "node": _names(conn, n),
            "degree": (w > 0).sum(axis=1),
            "strength": w.sum(axis=1),
            "clustering": clustering(w),
            "local_efficiency": local_efficiency(w / top if top > 0 else w),
            "betweenness": betweenness(w, length=length),
            "module": ci,
            "participation": participation_coefficient(w, ci),
            "within_module_z": within_module_degree_z(w, ci),
        }
    )


def global_metrics(conn: GraphLike, *, seed: int = 0, length: Length = "inverse") -> pd.Series:
    """Graph-level metrics of a weighted connectome: density, mean strength, global efficiency,
    characteristic path length, transitivity (weighted and binary), mean clustering (weighted),
    Louvain modularity Q (seeded), strength assortativity.

    Small-worldness needs null models: see :func:`pigment_connect.graph.nulls.small_worldness`.
    """
    w = as_weights(conn)
    n = w.shape[0]
    n_edges = int(np.count_nonzero(np.triu(w, 1)))
    has_edges = n_edges > 0
    return pd.Series(
        {
            "density": 2.0 * n_edges / (n * (n - 1)) if n > 1 else 0.0,
            "mean_strength": float(w.sum(axis=1).mean()),
            "global_efficiency": global_efficiency(w, length=length),
            "characteristic_path_length": characteristic_path_length(w, length=length),
            "transitivity": transitivity(w, binary=True),
            "transitivity_weighted": transitivity(w),
            "mean_clustering": float(clustering(w).mean()),
            "modularity": modularity(w, louvain(w, seed=seed)) if has_edges else 0.0,
            "assortativity": assortativity(w) if has_edges else float("nan"),
        }
    )
