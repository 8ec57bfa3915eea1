"""Graph metrics against networkx and BCT (bctpy, GPL: a test reference only) to 1e-8."""

import networkx as nx
import numpy as np
import pandas as pd
import pytest

from pigment_connect.datasets import shared_data_dir
from pigment_connect.errors import InputError
from pigment_connect.graph import metrics as gm
from pigment_connect.io import Connectome

TOL = 1e-8


def _random_graph(rng, n, density):
    w = rng.random((n, n)) * (rng.random((n, n)) < density)
    w = np.triu(w, 1)
    return w + w.T


def _hcp_graph(subject: int, n_nodes: int):
    """A real HCP structural connectome (first ``n_nodes`` Schaefer-200 nodes), scaled to [0, 1]."""
    root = shared_data_dir()
    if root is None:
        pytest.skip("../shared/data is absent")
    files = sorted((root / "connectomes_hcp200_sc_harita2024" / "SC_Weights").glob("*.csv.gz"))
    sc = np.triu(np.loadtxt(files[subject])[:n_nodes, :n_nodes], 1)
    sc = sc + sc.T
    return sc / sc.max()


GENERATED = [("sparse", 0), ("dense", 1), ("disconnected", 2)]


def _graph(kind, seed):
    rng = np.random.default_rng(seed)
    if kind == "sparse":
        return _random_graph(rng, 40, 0.15)
    if kind == "dense":
        return _random_graph(rng, 60, 0.8)
    w = _random_graph(rng, 30, 0.4)
    w[:3, :] = 0
    w[:, :3] = 0
    return w


@pytest.fixture(params=[k for k, _ in GENERATED] + ["hcp"])
def graph(request):
    kind = request.param
    if kind == "hcp":
        # 60 nodes: BCT's pure-Python local efficiency takes 36 s at 100 dense nodes
        return _hcp_graph(0, 60)
    return _graph(kind, dict(GENERATED)[kind])


def _nx(w, length=False):
    g = nx.from_numpy_array(w)
    if length:
        for _, _, d in g.edges(data=True):
            d["length"] = 1.0 / d["weight"]
    return g


def test_networkx_agreement(graph):
    g = _nx(graph, length=True)
    n = graph.shape[0]
    np.testing.assert_allclose(gm.clustering(graph), [nx.clustering(g, k, weight="weight") for k in range(n)], atol=TOL)
    np.testing.assert_allclose(gm.clustering(graph, binary=True), [nx.clustering(g, k) for k in range(n)], atol=TOL)
    assert gm.transitivity(graph, binary=True) == pytest.approx(nx.transitivity(g), abs=TOL)
    bc = nx.betweenness_centrality(g, weight="length", normalized=False)
    np.testing.assert_allclose(gm.betweenness(graph), [bc[k] for k in range(n)], atol=1e-7 * max(1, max(bc.values())))
    bcb = nx.betweenness_centrality(g, normalized=True)
    np.testing.assert_allclose(gm.betweenness(graph, binary=True, normalized=True), [bcb[k] for k in range(n)], atol=TOL)
    assert gm.global_efficiency(graph, binary=True) == pytest.approx(nx.global_efficiency(g), abs=TOL)
    assert gm.local_efficiency(graph, binary=True).mean() == pytest.approx(nx.local_efficiency(g), abs=TOL)
    d = dict(nx.all_pairs_dijkstra_path_length(g, weight="length"))
    ref = np.array([[d[i].get(j, np.inf) for j in range(n)] for i in range(n)])
    np.testing.assert_allclose(gm.shortest_path_lengths(graph), ref, rtol=1e-12)
    rc = nx.rich_club_coefficient(g, normalized=False)
    ours = gm.rich_club(graph)
    for k, phi in rc.items():
        if k < len(ours):
            assert ours[k] == pytest.approx(phi, abs=TOL)
    if g.number_of_edges():
        assert gm.assortativity(graph, binary=True) == pytest.approx(nx.degree_assortativity_coefficient(g), abs=1e-7)
        ci = gm.louvain(graph, seed=3)
        communities = [set(np.flatnonzero(ci == m).tolist()) for m in np.unique(ci)]
        assert gm.modularity(graph, ci) == pytest.approx(nx.community.modularity(g, communities, weight="weight"), abs=TOL)
        assert gm.modularity(graph, ci, gamma=0.7) == pytest.approx(
            nx.community.modularity(g, communities, weight="weight", resolution=0.7), abs=TOL)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # inside bctpy, on empty sub-graphs
def test_bct_agreement(graph):
    bct = pytest.importorskip("bct")
    w = graph / graph.max()
    a = (w > 0).astype(float)
    np.testing.assert_allclose(gm.clustering(w), bct.clustering_coef_wu(w), atol=TOL)
    np.testing.assert_allclose(gm.clustering(a, binary=True), bct.clustering_coef_bu(a), atol=TOL)
    assert gm.transitivity(w) == pytest.approx(bct.transitivity_wu(w), abs=TOL)
    assert gm.transitivity(w, binary=True) == pytest.approx(bct.transitivity_bu(a), abs=TOL)
    assert gm.global_efficiency(w) == pytest.approx(bct.efficiency_wei(w), abs=TOL)
    assert gm.global_efficiency(w, binary=True) == pytest.approx(bct.efficiency_bin(a), abs=TOL)
    np.testing.assert_allclose(gm.local_efficiency(w), bct.efficiency_wei(w, local=True), atol=TOL)
    np.testing.assert_allclose(gm.local_efficiency(w, binary=True), bct.efficiency_bin(a, local=True), atol=TOL)
    lengths = bct.weight_conversion(w, "lengths")
    bc = bct.betweenness_wei(lengths)
    np.testing.assert_allclose(2 * gm.betweenness(w), bc, atol=1e-7 * max(1, bc.max()))
    np.testing.assert_allclose(2 * gm.betweenness(a, binary=True), bct.betweenness_bin(a), atol=TOL)
    d, _ = bct.distance_wei(lengths)
    cpl = bct.charpath(d, include_infinite=False)[0]
    assert gm.characteristic_path_length(w) == pytest.approx(cpl, abs=TOL)
    np.testing.assert_allclose(gm.degree(w), bct.degrees_und(w))
    np.testing.assert_allclose(gm.strength(w), bct.strengths_und(w), atol=TOL)
    ci = gm.louvain(w, seed=1)
    np.testing.assert_allclose(gm.participation_coefficient(w, ci), bct.participation_coef(w, ci), atol=TOL)
    np.testing.assert_allclose(gm.within_module_degree_z(w, ci), bct.module_degree_zscore(w, ci), atol=TOL)
    if np.any(w):
        assert gm.assortativity(w) == pytest.approx(bct.assortativity_wei(w, 0), abs=1e-7)
        assert gm.assortativity(a, binary=True) == pytest.approx(bct.assortativity_bin(a, 0), abs=1e-7)
    r_bu = bct.rich_club_bu(a)[0]
    ours = gm.rich_club(w)
    for k in range(1, min(len(ours), len(r_bu) + 1)):
        if np.isfinite(r_bu[k - 1]) and np.isfinite(ours[k]):
            assert ours[k] == pytest.approx(r_bu[k - 1], abs=TOL)
    r_wu = bct.rich_club_wu(w)
    ours_w = gm.rich_club(w, binary=False)
    compared = 0
    for k in range(min(len(ours_w), len(r_wu))):
        if np.isfinite(r_wu[k]):
            assert ours_w[k] == pytest.approx(r_wu[k], abs=TOL)
            compared += 1
    assert compared > 0 or not np.any(w)


@pytest.mark.shared_data
def test_bct_agreement_on_a_whole_real_connectome():
    bct = pytest.importorskip("bct")
    w = _hcp_graph(1, 200)
    np.testing.assert_allclose(gm.clustering(w), bct.clustering_coef_wu(w), atol=TOL)
    assert gm.global_efficiency(w) == pytest.approx(bct.efficiency_wei(w), abs=TOL)
    bc = bct.betweenness_wei(bct.weight_conversion(w, "lengths"))
    np.testing.assert_allclose(2 * gm.betweenness(w), bc, atol=1e-7 * bc.max())
    ci = gm.louvain(w, seed=0)
    np.testing.assert_allclose(gm.participation_coefficient(w, ci), bct.participation_coef(w, ci), atol=TOL)


def test_consensus_partition_recovers_planted_modules():
    rng = np.random.default_rng(0)
    truth = np.repeat([1, 2, 3, 4], 10)
    same = truth[:, None] == truth[None, :]
    w = rng.random((40, 40)) * np.where(same, rng.random((40, 40)) < 0.8, rng.random((40, 40)) < 0.05)
    w = np.triu(w, 1)
    w = w + w.T
    ci = gm.consensus_partition(w, n_runs=20, seed=0)
    assert np.array_equal(ci, truth)
    assert np.array_equal(ci, gm.consensus_partition(w, n_runs=20, seed=0))


def test_neglog_lengths_and_unknown_conversion():
    w = np.array([[0, 1.0, 0.5], [1.0, 0, 0.25], [0.5, 0.25, 0]])
    d = gm.shortest_path_lengths(w, length="neglog")
    assert d[0, 2] == pytest.approx(-np.log(0.5))
    assert d[1, 2] == pytest.approx(-np.log(0.5))  # via node 0: 0 + log 2 beats -log 0.25
    with pytest.raises(InputError, match="length conversion"):
        gm.global_efficiency(w, length="log")


def test_bad_matrices_are_clear_errors():
    with pytest.raises(InputError, match="symmetric"):
        gm.clustering(np.array([[0, 1.0], [0.0, 0]]))
    with pytest.raises(InputError, match="negative"):
        gm.strength(np.array([[0, -1.0], [-1.0, 0]]))
    with pytest.raises(InputError, match="NaN"):
        gm.strength(np.array([[0, np.nan], [np.nan, 0]]))
    with pytest.raises(InputError, match="3 labels for 2 nodes"):
        gm.modularity(np.ones((2, 2)), [1, 1, 2])


def test_tables_on_a_connectome_and_an_empty_graph():
    rng = np.random.default_rng(4)
    w = _random_graph(rng, 12, 0.5)
    conn = Connectome(w, pd.DataFrame({"index": np.arange(1, 13), "name": [f"n{i}" for i in range(12)]}), "count", "toy")
    table = gm.node_metrics(conn)
    assert table["node"].tolist() == conn.labels
    assert set(table.columns) >= {"degree", "strength", "clustering", "betweenness", "participation", "within_module_z"}
    g = gm.global_metrics(conn)
    assert 0 < g["global_efficiency"] and 0 < g["modularity"] < 1
    empty = Connectome(np.zeros((3, 3)), pd.DataFrame({"index": [1, 2, 3], "name": list("abc")}), "count", "toy")
    g = gm.global_metrics(empty)
    assert g["density"] == 0 and g["global_efficiency"] == 0 and np.isnan(g["characteristic_path_length"])
