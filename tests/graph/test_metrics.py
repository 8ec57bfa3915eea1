import networkx as nx
import numpy as np
import pandas as pd
import pytest

from pigment_connect.graph import characteristic_path_length, global_efficiency, global_metrics, node_metrics
from pigment_connect.io import Connectome


@pytest.fixture()
def conn(rng):
    w = rng.random((12, 12)) * (rng.random((12, 12)) < 0.5)
    w = np.triu(w, 1)
    w = w + w.T
    return Connectome(w, pd.DataFrame({"index": np.arange(1, 13), "name": [f"n{i}" for i in range(12)]}), "count", "toy")


def _nx_lengths(conn):
    g = nx.from_numpy_array(conn.weights)
    for _, _, d in g.edges(data=True):
        d["length"] = 1.0 / d["weight"]
    return g


def test_path_metrics_match_networkx_shortest_paths(conn):
    g = _nx_lengths(conn)
    d = dict(nx.all_pairs_dijkstra_path_length(g, weight="length"))
    n = conn.n_nodes
    inv = [1.0 / d[i][j] if j in d[i] else 0.0 for i in range(n) for j in range(n) if i != j]
    finite = [d[i][j] for i in range(n) for j in range(n) if i != j and j in d[i]]
    assert global_efficiency(conn) == pytest.approx(np.mean(inv), rel=1e-12)
    assert characteristic_path_length(conn) == pytest.approx(np.mean(finite), rel=1e-12)


def test_node_metrics_match_networkx(conn):
    g = _nx_lengths(conn)
    table = node_metrics(conn)
    np.testing.assert_allclose(table["strength"], conn.weights.sum(1))
    np.testing.assert_allclose(table["clustering"], [nx.clustering(g, k, weight="weight") for k in range(12)], atol=1e-12)
    bc = nx.betweenness_centrality(g, weight="length", normalized=False)
    np.testing.assert_allclose(table["betweenness"], [bc[k] for k in range(12)], atol=1e-12)


def test_global_metrics_on_an_empty_graph_are_defined():
    empty = Connectome(np.zeros((3, 3)), pd.DataFrame({"index": [1, 2, 3], "name": list("abc")}), "count", "toy")
    g = global_metrics(empty)
    assert g["density"] == 0 and g["global_efficiency"] == 0 and np.isnan(g["characteristic_path_length"])
