"""Null models, small-worldness and thresholding (BCT semantics where BCT has the function)."""

import networkx as nx
import numpy as np
import pytest

from pigment_connect.errors import InputError
from pigment_connect.graph import metrics as gm
from pigment_connect.graph import nulls, threshold


def _random_graph(rng, n, density):
    w = rng.random((n, n)) * (rng.random((n, n)) < density)
    w = np.triu(w, 1)
    return w + w.T


@pytest.fixture()
def w(rng):
    return _random_graph(rng, 50, 0.2)


def test_degree_null_keeps_degrees_and_weights_and_is_seeded(w):
    a = nulls.randomize_degree(w, seed=5)
    np.testing.assert_array_equal(gm.degree(a), gm.degree(w))
    np.testing.assert_allclose(np.sort(a[np.triu_indices(50, 1)]), np.sort(w[np.triu_indices(50, 1)]))
    np.testing.assert_array_equal(a, nulls.randomize_degree(w, seed=5))
    assert not np.array_equal(a, nulls.randomize_degree(w, seed=6))
    assert np.mean((a > 0) & (w > 0)) < 0.5 * np.mean(w > 0)  # most edges moved
    np.testing.assert_array_equal(a, a.T)
    assert np.all(np.diag(a) == 0)


def test_strength_null_keeps_degrees_and_approximates_strengths(w):
    rand = nulls.randomize_degree(w, seed=1)
    s = nulls.randomize_strength(w, seed=1)
    np.testing.assert_array_equal(gm.degree(s), gm.degree(w))
    np.testing.assert_allclose(np.sort(s[np.triu_indices(50, 1)]), np.sort(w[np.triu_indices(50, 1)]))
    err_rand = np.abs(rand.sum(1) - w.sum(1)).mean()
    err_strength = np.abs(s.sum(1) - w.sum(1)).mean()
    assert err_strength < 0.2 * err_rand
    assert np.corrcoef(s.sum(1), w.sum(1))[0, 1] > 0.98


def test_lattice_null_is_more_clustered_and_small_world_indices():
    g = nx.connected_watts_strogatz_graph(60, 8, 0.1, seed=2)
    a = nx.to_numpy_array(g)
    latt = nulls.lattice(a, seed=0)
    np.testing.assert_array_equal(gm.degree(latt), gm.degree(a))
    assert gm.clustering(latt, binary=True).mean() > gm.clustering(nulls.randomize_degree(a, seed=0), binary=True).mean()
    sw = nulls.small_worldness(a, n_null=5, binary=True, seed=0)
    assert sw["sigma"] > 1.5  # a Watts–Strogatz graph at p = 0.1 is small-world
    assert -0.5 < sw["omega"] < 0.5
    c = nx.average_clustering(g)
    assert sw["C"] == pytest.approx(c, abs=1e-12)
    assert sw["L"] == pytest.approx(nx.average_shortest_path_length(g), abs=1e-12)
    assert sw["sigma"] == pytest.approx((sw["C"] / sw["C_rand"]) / (sw["L"] / sw["L_rand"]))
    again = nulls.small_worldness(a, n_null=5, binary=True, seed=0)
    assert again.equals(sw)
    random_graph = nx.to_numpy_array(nx.gnm_random_graph(60, 240, seed=1))
    assert abs(nulls.small_worldness(random_graph, n_null=5, binary=True, seed=0)["sigma"] - 1) < 0.3


def test_small_worldness_weighted_with_strength_null(w):
    sw = nulls.small_worldness(w, n_null=3, null="strength", seed=0)
    assert np.isfinite(sw["sigma"]) and np.isfinite(sw["omega"])
    with pytest.raises(InputError, match="null model"):
        nulls.small_worldness(w, null="bogus")
    with pytest.raises(InputError, match="without edges"):
        nulls.small_worldness(np.zeros((4, 4)))


def test_thresholds_match_bct(w):
    bct = pytest.importorskip("bct")
    for p in (0.05, 0.1, 0.3):
        np.testing.assert_array_equal(threshold.threshold_proportional(w, p), bct.threshold_proportional(w, p))
    np.testing.assert_array_equal(threshold.threshold_absolute(w, 0.4), bct.threshold_absolute(w, 0.4))
    with pytest.raises(InputError, match="proportion"):
        threshold.threshold_proportional(w, 1.5)


def test_consistency_threshold_keeps_the_stable_edges(rng):
    n, subjects = 20, 30
    base = _random_graph(rng, n, 0.6) + 0.1 * (rng.random((n, n)) > 2)
    stable = np.zeros((n, n), bool)
    stable[:5, 5:10] = True
    stable |= stable.T
    stack = []
    for _ in range(subjects):
        noise = np.triu(rng.lognormal(0, 1.0, (n, n)), 1)
        noise = noise + noise.T
        m = np.where(stable, 1.0, base * noise)
        np.fill_diagonal(m, 0)
        stack.append(m)
    out, mask = threshold.consistency_threshold(stack, density=25 / 190)
    assert mask.sum() // 2 == 25
    assert np.all(mask[stable])
    assert np.all(out[:, ~mask] == 0)


def test_consensus_connectome(rng):
    stack = np.stack([_random_graph(rng, 10, 0.5) for _ in range(8)])
    weights, fraction = threshold.consensus_connectome(stack, min_fraction=0.5)
    present = (stack > 0).mean(0)
    np.testing.assert_allclose(fraction, present)
    keep = present >= 0.5
    np.testing.assert_allclose(weights[keep], stack.sum(0)[keep] / (stack > 0).sum(0)[keep])
    assert np.all(weights[~keep] == 0)
    with pytest.raises(InputError, match="differ in size"):
        threshold.consensus_connectome([np.zeros((3, 3)), np.zeros((4, 4))])
    with pytest.raises(InputError, match="subject 1"):
        threshold.as_stack([np.zeros((2, 2)), np.array([[0, 1.0], [0, 0]])])


def test_normalized_rich_club_detects_a_planted_rich_club(rng):
    n = 60
    a = (rng.random((n, n)) < 0.08).astype(float)
    a[:10, :10] = 1.0  # ten hubs, all interconnected
    a = np.triu(a, 1)
    a = a + a.T
    table = nulls.normalized_rich_club(a, n_null=20, seed=0)
    k = int(np.sort(gm.degree(a))[-10]) - 1  # the hubs are the nodes of degree > k
    assert table.loc[k, "phi"] == pytest.approx(gm.rich_club(a)[k])
    assert table.loc[k, "phi_norm"] > 1.2 and table.loc[k, "p"] <= 0.05
    assert table.equals(nulls.normalized_rich_club(a, n_null=20, seed=0))
