"""Graph metrics of undirected weighted connectomes.

Conventions (stated once, followed everywhere):

* Weights are connection strengths (larger = stronger). Path-based metrics convert them to
  lengths with ``length = 1 / weight`` (BCT's ``weight_conversion(W, 'lengths')``).
* Weighted clustering is Onnela et al.'s geometric mean on weights normalised by the maximum
  weight (networkx ``clustering(G, weight=...)``; BCT ``clustering_coef_wu`` on ``W / max(W)``).
* Betweenness counts each unordered node pair once (networkx, ``normalized=False``); BCT's
  ``betweenness_wei`` is exactly twice this value.
* Global efficiency is weighted: the mean over ordered pairs i ≠ j of ``1 / d_ij`` (BCT
  ``efficiency_wei``); networkx's ``global_efficiency`` ignores weights.
* Characteristic path length is the mean finite ``d_ij`` over i ≠ j (disconnected pairs excluded).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.sparse.csgraph import shortest_path

from ..errors import InputError
from ..io.connectome import Connectome

__all__ = [
    "shortest_path_lengths",
    "global_efficiency",
    "characteristic_path_length",
    "node_metrics",
    "global_metrics",
]


def _weights(conn: Connectome | np.ndarray) -> np.ndarray:
    w = conn.weights if isinstance(conn, Connectome) else np.asarray(conn, dtype=np.float64)
    if w.ndim != 2 or w.shape[0] != w.shape[1]:
        raise InputError(f"a square matrix is needed, got shape {w.shape}.")
    if np.any(w < 0):
        raise InputError("negative weights are not supported by these metrics.", fix="threshold or take |W| first.")
    w = w.copy()
    np.fill_diagonal(w, 0.0)
    return w


def shortest_path_lengths(conn: Connectome | np.ndarray) -> np.ndarray:
    """(n, n) weighted shortest-path lengths with ``length = 1/weight`` (inf if disconnected)."""
    w = _weights(conn)
    with np.errstate(divide="ignore"):
        lengths = np.where(w > 0, 1.0 / w, 0.0)
    return shortest_path(lengths, method="D", directed=False)


def global_efficiency(conn: Connectome | np.ndarray) -> float:
    """Weighted global efficiency (BCT ``efficiency_wei``), 0 for a graph without edges."""
    d = shortest_path_lengths(conn)
    n = d.shape[0]
    if n < 2:
        return 0.0
    off = ~np.eye(n, dtype=bool)
    with np.errstate(divide="ignore"):
        inv = np.where(np.isfinite(d) & off, 1.0 / d, 0.0)
    return float(inv[off].mean())


def characteristic_path_length(conn: Connectome | np.ndarray) -> float:
    """Mean finite weighted shortest-path length over pairs i ≠ j (NaN if no pair is connected)."""
    d = shortest_path_lengths(conn)
    off = ~np.eye(d.shape[0], dtype=bool)
    finite = d[off & np.isfinite(d)]
    return float(finite.mean()) if finite.size else float("nan")


def node_metrics(conn: Connectome) -> pd.DataFrame:
    """Node-level metrics: degree, strength, clustering (weighted), betweenness (weighted).

    Returns
    -------
    DataFrame with one row per node (``node`` = node name) in the connectome's row order.
    """
    import networkx as nx

    w = _weights(conn)
    graph = nx.from_numpy_array(w)
    with np.errstate(divide="ignore"):
        for a, b, data in graph.edges(data=True):
            data["length"] = 1.0 / data["weight"]
    clustering = nx.clustering(graph, weight="weight") if graph.number_of_edges() else {}
    betweenness = nx.betweenness_centrality(graph, weight="length", normalized=False)
    n = w.shape[0]
    return pd.DataFrame(
        {
            "node": conn.labels,
            "degree": (w > 0).sum(axis=1),
            "strength": w.sum(axis=1),
            "clustering": [float(clustering.get(k, 0.0)) for k in range(n)],
            "betweenness": [float(betweenness.get(k, 0.0)) for k in range(n)],
        }
    )


def global_metrics(conn: Connectome, *, seed: int = 0) -> pd.Series:
    """Graph-level metrics: density, mean strength, global efficiency, characteristic path
    length, transitivity (binary), mean clustering (weighted) and Louvain modularity Q (seeded)."""
    import networkx as nx

    w = _weights(conn)
    n = w.shape[0]
    graph = nx.from_numpy_array(w)
    n_edges = graph.number_of_edges()
    if n_edges:
        communities = nx.community.louvain_communities(graph, weight="weight", seed=seed)
        modularity = nx.community.modularity(graph, communities, weight="weight")
        mean_clustering = float(np.mean(list(nx.clustering(graph, weight="weight").values())))
    else:
        modularity, mean_clustering = 0.0, 0.0
    return pd.Series(
        {
            "density": 2.0 * n_edges / (n * (n - 1)) if n > 1 else 0.0,
            "mean_strength": float(w.sum(axis=1).mean()),
            "global_efficiency": global_efficiency(w),
            "characteristic_path_length": characteristic_path_length(w),
            "transitivity": float(nx.transitivity(graph)),
            "mean_clustering": mean_clustering,
            "modularity": float(modularity),
        }
    )
