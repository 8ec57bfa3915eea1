"""Numba kernels for graph metrics and network statistics (no Python orchestration here).

Graphs are dense ``(n, n)`` float64 length matrices: ``L[i, j] > 0`` is the length of edge
i–j and 0 means no edge. Every kernel that runs in parallel writes only to its own rows, so
results do not depend on the thread count.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True)
def _dijkstra_dense(lengths, src, dist, sigma, order, settled):
    """Single-source Dijkstra on a dense length matrix, O(n²).

    Fills ``dist`` (inf if unreachable), ``sigma`` (number of shortest paths) and ``order``
    (nodes in the order they were settled); returns how many nodes were settled.
    """
    n = lengths.shape[0]
    for k in range(n):
        dist[k] = np.inf
        sigma[k] = 0.0
        settled[k] = False
    dist[src] = 0.0
    sigma[src] = 1.0
    count = 0
    for _ in range(n):
        v = -1
        best = np.inf
        for k in range(n):
            if not settled[k] and dist[k] < best:
                best = dist[k]
                v = k
        if v < 0:
            break
        settled[v] = True
        order[count] = v
        count += 1
        dv = dist[v]
        for w in range(n):
            lw = lengths[v, w]
            if lw > 0.0 and not settled[w]:
                alt = dv + lw
                if alt < dist[w]:
                    dist[w] = alt
                    sigma[w] = sigma[v]
                elif alt == dist[w]:
                    sigma[w] += sigma[v]
    return count


@njit(cache=True, parallel=True)
def all_pairs_shortest_paths(lengths):
    """(n, n) shortest-path lengths (inf where disconnected, 0 on the diagonal)."""
    n = lengths.shape[0]
    out = np.empty((n, n))
    for s in prange(n):
        dist = np.empty(n)
        sigma = np.empty(n)
        order = np.empty(n, dtype=np.int64)
        settled = np.empty(n, dtype=np.bool_)
        _dijkstra_dense(lengths, s, dist, sigma, order, settled)
        for k in range(n):
            out[s, k] = dist[k]
    return out


@njit(cache=True, parallel=True)
def betweenness(lengths):
    """Brandes' node betweenness, each unordered pair counted once, shape (n,).

    A node v precedes w on a shortest path when ``dist[v] + L[v, w] == dist[w]`` exactly, the
    same floating-point test that the relaxation used, so ties are counted as Dijkstra saw them.
    """
    n = lengths.shape[0]
    partial = np.zeros((n, n))  # row s: dependencies of source s (summed after, fixed order)
    for s in prange(n):
        dist = np.empty(n)
        sigma = np.empty(n)
        order = np.empty(n, dtype=np.int64)
        settled = np.empty(n, dtype=np.bool_)
        delta = np.zeros(n)
        count = _dijkstra_dense(lengths, s, dist, sigma, order, settled)
        for idx in range(count - 1, 0, -1):
            w = order[idx]
            coeff = (1.0 + delta[w]) / sigma[w]
            dw = dist[w]
            for v in range(n):
                lv = lengths[v, w]
                if lv > 0.0 and settled[v] and dist[v] + lv == dw:
                    delta[v] += sigma[v] * coeff
            partial[s, w] = delta[w]
    out = np.zeros(n)
    for s in range(n):
        for k in range(n):
            out[k] += partial[s, k]
    return out / 2.0


@njit(cache=True, parallel=True)
def local_efficiency(weights, lengths, binary):
    """Local efficiency of every node (Latora & Marchiori; weighted form of Wang et al. 2016).

    For node u with neighbours N (k = |N| ≥ 2)::

        E_loc(u) = Σ_{j≠h ∈ N} (w_uj w_uh)^(1/3) / d_jh  /  (k (k - 1))

    where d_jh is the shortest-path length between j and h using only nodes of N, on the
    lengths passed in (the caller passes cube roots of ``1/w`` for the weighted form, as BCT's
    ``efficiency_wei(local=True)`` does). ``binary`` replaces the weight factor by 1.
    """
    n = weights.shape[0]
    out = np.zeros(n)
    for u in prange(n):
        k = 0
        for j in range(n):
            if weights[u, j] > 0.0 and j != u:
                k += 1
        if k < 2:
            continue
        nb = np.empty(k, dtype=np.int64)
        c = 0
        for j in range(n):
            if weights[u, j] > 0.0 and j != u:
                nb[c] = j
                c += 1
        sub = np.empty((k, k))
        factor = np.empty(k)
        for a in range(k):
            factor[a] = 1.0 if binary else np.cbrt(weights[u, nb[a]])
            for b in range(k):
                sub[a, b] = lengths[nb[a], nb[b]]
        dist = np.empty(k)
        sigma = np.empty(k)
        order = np.empty(k, dtype=np.int64)
        settled = np.empty(k, dtype=np.bool_)
        total = 0.0
        for a in range(k):
            _dijkstra_dense(sub, a, dist, sigma, order, settled)
            for b in range(k):
                if b != a and dist[b] < np.inf:
                    total += factor[a] * factor[b] / dist[b]
        out[u] = total / (k * (k - 1))
    return out


# ---------------------------------------------------------------- components (NBS)
@njit(cache=True)
def _find(parent, x):
    root = x
    while parent[root] != root:
        root = parent[root]
    while parent[x] != root:
        nxt = parent[x]
        parent[x] = root
        x = nxt
    return root


@njit(cache=True)
def edge_components(n_nodes, ei, ej, active, values, labels, sizes, mass):
    """Connected components of the sub-graph made of the ``active`` edges.

    Writes, for every edge, ``labels[e]`` (component root node, -1 if inactive), and per root
    node ``sizes[root]`` (edges in the component) and ``mass[root]`` (sum of ``values`` of its
    edges). Returns (largest size, largest mass).
    """
    parent = np.arange(n_nodes)
    for e in range(ei.shape[0]):
        if active[e]:
            a = _find(parent, ei[e])
            b = _find(parent, ej[e])
            if a != b:
                parent[a] = b
    for k in range(n_nodes):
        sizes[k] = 0.0
        mass[k] = 0.0
    for e in range(ei.shape[0]):
        if active[e]:
            r = _find(parent, ei[e])
            labels[e] = r
            sizes[r] += 1.0
            mass[r] += values[e]
        else:
            labels[e] = -1
    return sizes.max(), mass.max()


@njit(cache=True, parallel=True)
def max_component_per_row(n_nodes, ei, ej, stats, threshold, use_mass):
    """For each row of ``stats`` (n_perm, n_edges): the largest supra-threshold component,
    measured by edge count (extent) or by summed ``stat - threshold`` (intensity)."""
    n_perm, n_edges = stats.shape
    out = np.zeros(n_perm)
    for p in prange(n_perm):
        active = np.empty(n_edges, dtype=np.bool_)
        values = np.empty(n_edges)
        for e in range(n_edges):
            active[e] = stats[p, e] > threshold
            values[e] = stats[p, e] - threshold
        labels = np.empty(n_edges, dtype=np.int64)
        sizes = np.empty(n_nodes)
        mass = np.empty(n_nodes)
        size, m = edge_components(n_nodes, ei, ej, active, values, labels, sizes, mass)
        out[p] = m if use_mass else size
    return out


@njit(cache=True)
def tfnbs_scores(n_nodes, ei, ej, stat, dh, e_power, h_power):
    """Threshold-free network-based statistic of one edge-statistic vector (Baggio et al. 2018,
    MRtrix3 ``connectomestats -algorithm tfnbs``): for h = dh, 2dh, ... ≤ max(stat), every edge
    with stat ≥ h gains ``extent(h)^E · h^H · dh``, extent being the number of edges of its
    supra-threshold component."""
    n_edges = ei.shape[0]
    out = np.zeros(n_edges)
    top = 0.0
    for e in range(n_edges):
        if stat[e] > top:
            top = stat[e]
    if top <= 0.0:
        return out
    active = np.empty(n_edges, dtype=np.bool_)
    labels = np.empty(n_edges, dtype=np.int64)
    sizes = np.empty(n_nodes)
    mass = np.empty(n_nodes)
    n_steps = int(np.floor(top / dh + 1e-9))
    for step in range(1, n_steps + 1):
        h = step * dh
        for e in range(n_edges):
            active[e] = stat[e] >= h
        edge_components(n_nodes, ei, ej, active, stat, labels, sizes, mass)
        hh = h**h_power * dh
        for e in range(n_edges):
            if labels[e] >= 0:
                out[e] += sizes[labels[e]] ** e_power * hh
    return out


@njit(cache=True, parallel=True)
def tfnbs_max_per_row(n_nodes, ei, ej, stats, dh, e_power, h_power):
    """max over edges of the TFNBS score, for each row of ``stats`` (n_perm, n_edges)."""
    out = np.zeros(stats.shape[0])
    for p in prange(stats.shape[0]):
        out[p] = tfnbs_scores(n_nodes, ei, ej, stats[p], dh, e_power, h_power).max()
    return out


# ---------------------------------------------------------------- null models
@njit(cache=True)
def _seed(seed):
    np.random.seed(seed)


@njit(cache=True)
def _edge_pair(ii, jj, m):
    """Two random edge indices (possibly equal) of the edge list ``ii, jj`` and their end nodes."""
    e1 = np.random.randint(m)
    e2 = np.random.randint(m)
    return e1, e2, ii[e1], jj[e1], ii[e2], jj[e2]


@njit(cache=True)
def rewire_degree_preserving(weights, n_swaps, seed, lattice_dist):
    """Maslov–Sneppen double-edge swaps of an undirected graph, weights carried by their edges.

    Picks edges (a, b), (c, d) and rewires them to (a, d), (c, b) when neither exists and no
    self-loop results. With ``lattice_dist`` (an (n, n) "distance from the diagonal" matrix, or
    an empty array) a swap is kept only if it does not move the two edges further from the
    diagonal in total (Sporns & Zwi 2004's lattice null). Returns the rewired matrix and the
    number of swaps done.
    """
    _seed(seed)
    n = weights.shape[0]
    w = weights.copy()
    ii, jj = np.nonzero(np.triu(w, 1))
    m = ii.shape[0]
    use_lattice = lattice_dist.shape[0] == n
    done = 0
    if m < 2:
        return w, done
    max_tries = 20 * n_swaps + 100
    for _ in range(max_tries):
        if done >= n_swaps:
            break
        e1, e2, a, b, c, d = _edge_pair(ii, jj, m)
        if e1 == e2:
            continue
        if np.random.random() < 0.5:
            c, d = d, c
        if a == c or a == d or b == c or b == d:
            continue
        if w[a, d] != 0.0 or w[c, b] != 0.0:
            continue
        if use_lattice:
            before = lattice_dist[a, b] + lattice_dist[c, d]
            after = lattice_dist[a, d] + lattice_dist[c, b]
            if after > before:
                continue
        wab = w[a, b]
        wcd = w[c, d]
        w[a, b] = 0.0
        w[b, a] = 0.0
        w[c, d] = 0.0
        w[d, c] = 0.0
        w[a, d] = wab
        w[d, a] = wab
        w[c, b] = wcd
        w[b, c] = wcd
        ii[e1], jj[e1] = a, d
        ii[e2], jj[e2] = c, b
        done += 1
    return w, done


@njit(cache=True)
def match_strengths(weights, target, n_steps, seed):
    """Swap the weights of random edge pairs when that brings node strengths closer to
    ``target`` (sum of squared differences), keeping the topology and the multiset of weights."""
    _seed(seed)
    w = weights.copy()
    ii, jj = np.nonzero(np.triu(w, 1))
    m = ii.shape[0]
    if m < 2:
        return w
    s = w.sum(axis=1)
    for _ in range(n_steps):
        e1, e2, a, b, c, d = _edge_pair(ii, jj, m)
        if e1 == e2:
            continue
        delta = w[c, d] - w[a, b]
        if delta == 0.0:
            continue
        # strengths after the swap: a, b gain delta; c, d lose delta (shared nodes cancel)
        nodes = np.array([a, b, c, d])
        changes = np.array([delta, delta, -delta, -delta])
        before = 0.0
        after = 0.0
        for x in range(4):
            node = nodes[x]
            seen = False
            for y in range(x):
                if nodes[y] == node:
                    seen = True
            if seen:
                continue
            total = 0.0
            for y in range(4):
                if nodes[y] == node:
                    total += changes[y]
            before += (s[node] - target[node]) ** 2
            after += (s[node] + total - target[node]) ** 2
        if after < before:
            wab = w[a, b]
            w[a, b] = w[c, d]
            w[b, a] = w[c, d]
            w[c, d] = wab
            w[d, c] = wab
            for x in range(4):
                s[nodes[x]] += changes[x]
    return w

