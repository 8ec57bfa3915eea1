"""Graph metrics and group statistics: pigment_connect vs bctpy, networkx and MRtrix3.

    python benchmarks/bench_graph.py [--threads 2] [--nodes 400] [--density 0.5] [--subjects 100]
                                     [--bct-subjects 5] [--nbs-perm 1000] [--bct-nbs-perm 100]

Graph metrics (one graph): a generated ``--nodes`` weighted graph of ``--density`` (weights
uniform in (0, 1]; the density of real structural connectomes is 0.3–0.85) and, when
``../shared/data`` is present, a real 200-node HCP connectome (Harita et al. 2024). Each method
is timed as the best of 3 runs (1 run for peers that take over 10 s); ours after a warm-up
call (numba compiles once and caches). Values are checked against the peer before timing.

Cohort: node-level betweenness, global efficiency and clustering of ``--subjects`` real HCP
connectomes (200 nodes; generated if the data are absent). bctpy runs on ``--bct-subjects`` of
them and its time is scaled to the cohort (its per-subject time varies little).

NBS: 100 nodes, 20 vs 20 subjects, a t threshold of 3.1: ours and MRtrix3 ``connectomestats``
with ``--nbs-perm`` permutations, bctpy ``nbs_bct`` with ``--bct-nbs-perm`` (its cost is linear
in the permutations, the time is scaled to ``--nbs-perm``).

Our kernels run on ``--threads`` numba threads (and the same number of BLAS threads); bctpy and
networkx are single-threaded Python/NumPy; MRtrix3 gets ``-nthreads``. Ratios are peer / ours.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _threads_from_argv() -> int:
    argv = sys.argv[1:]
    for k, a in enumerate(argv):
        if a == "--threads" and k + 1 < len(argv):
            return int(argv[k + 1])
        if a.startswith("--threads="):
            return int(a.split("=", 1)[1])
    return os.cpu_count() or 1


# thread counts must be fixed before numpy/numba load their thread pools
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = str(_threads_from_argv())

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
HCP = HERE.parent.parent / "shared" / "data" / "connectomes_hcp200_sc_harita2024" / "SC_Weights"


def timed(fn, repeats=3):
    """(best seconds, result) over ``repeats`` runs; one run if the first takes over 10 s."""
    t0 = time.perf_counter()
    result = fn()
    best = time.perf_counter() - t0
    if best < 10:
        for _ in range(repeats - 1):
            t0 = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t0)
    return best, result


def random_graph(n, density, seed):
    rng = np.random.default_rng(seed)
    w = rng.uniform(1e-3, 1.0, (n, n)) * (rng.random((n, n)) < density)
    w = np.triu(w, 1)
    w = w + w.T
    return w / w.max()  # BCT's weighted clustering expects weights in [0, 1]


def hcp_graphs(count):
    files = sorted(HCP.glob("*.csv.gz"))[:count] if HCP.is_dir() else []
    out = []
    for f in files:
        sc = np.triu(np.loadtxt(f)[:200, :200], 1)
        sc = sc + sc.T
        out.append(sc / sc.max())
    return out


def row(table, what, ours, peer_name, peer, note=""):
    ratio = peer / ours if ours > 0 and peer is not None else float("nan")
    table.append((what, ours, peer_name, peer, ratio, note))


def bench_single(table, name, w, args):
    import bct
    import networkx as nx

    from pigment_connect.graph import metrics as gm

    lengths = bct.weight_conversion(w, "lengths")
    g = nx.from_numpy_array(w)
    for _, _, d in g.edges(data=True):
        d["length"] = 1.0 / d["weight"]

    gm.betweenness(w[:10, :10])  # warm-up (compile or load the numba cache)
    t_ours, bc = timed(lambda: gm.betweenness(w))
    t_bct, bc_ref = timed(lambda: bct.betweenness_wei(lengths), 1)
    assert np.allclose(2 * bc, bc_ref, atol=1e-6 * bc_ref.max())
    row(table, f"{name}: betweenness (weighted)", t_ours, "bctpy", t_bct)
    t_nx, _ = timed(lambda: nx.betweenness_centrality(g, weight="length", normalized=False), 1)
    row(table, f"{name}: betweenness (weighted)", t_ours, "networkx", t_nx)

    t_ours, e = timed(lambda: gm.global_efficiency(w))
    t_bct, e_ref = timed(lambda: bct.efficiency_wei(w), 1)
    assert abs(e - e_ref) < 1e-8
    row(table, f"{name}: global efficiency (weighted)", t_ours, "bctpy", t_bct)
    a = (w > 0).astype(float)
    t_ours_b, eb = timed(lambda: gm.global_efficiency(a, binary=True))
    t_nx, eb_ref = timed(lambda: nx.global_efficiency(nx.from_numpy_array(a)), 1)
    assert abs(eb - eb_ref) < 1e-8
    row(table, f"{name}: global efficiency (binary)", t_ours_b, "networkx", t_nx)

    t_ours, c = timed(lambda: gm.clustering(w))
    t_bct, c_ref = timed(lambda: bct.clustering_coef_wu(w))
    assert np.allclose(c, c_ref, atol=1e-8)
    row(table, f"{name}: clustering (weighted)", t_ours, "bctpy", t_bct)
    t_nx, _ = timed(lambda: nx.clustering(g, weight="weight"), 1)
    row(table, f"{name}: clustering (weighted)", t_ours, "networkx", t_nx)

    t_ours, cpl = timed(lambda: gm.characteristic_path_length(w))
    t_bct, cpl_ref = timed(lambda: bct.charpath(bct.distance_wei(lengths)[0], include_infinite=False)[0], 1)
    assert abs(cpl - cpl_ref) < 1e-8
    row(table, f"{name}: characteristic path length", t_ours, "bctpy", t_bct)

    # BCT's weighted local efficiency is pure Python and O(n k^3): time it on a sub-graph
    sub = w[: args.local_nodes, : args.local_nodes]
    t_ours, le = timed(lambda: gm.local_efficiency(sub))
    t_bct, le_ref = timed(lambda: bct.efficiency_wei(sub, local=True), 1)
    assert np.allclose(le, le_ref, atol=1e-8)
    row(table, f"{name}: local efficiency (weighted)", t_ours, "bctpy", t_bct, f"first {args.local_nodes} nodes")


def bench_cohort(table, args):
    import bct

    from pigment_connect.graph import metrics as gm

    graphs = hcp_graphs(args.subjects)
    source = "HCP 200 nodes"
    if len(graphs) < args.subjects:
        graphs = [random_graph(200, 0.5, s) for s in range(args.subjects)]
        source = "generated 200 nodes"

    def ours():
        for w in graphs:
            gm.betweenness(w)
            gm.global_efficiency(w)
            gm.clustering(w)

    def peer():
        for w in graphs[: args.bct_subjects]:
            bct.betweenness_wei(bct.weight_conversion(w, "lengths"))
            bct.efficiency_wei(w)
            bct.clustering_coef_wu(w)

    t_ours, _ = timed(ours, 1)
    t_bct, _ = timed(peer, 1)
    scale = len(graphs) / args.bct_subjects
    row(table, f"cohort of {len(graphs)} ({source}): betweenness + efficiency + clustering", t_ours, "bctpy",
        t_bct * scale, f"bctpy on {args.bct_subjects}, ×{scale:g}")


def bench_nbs(table, args):
    import bct

    from pigment_connect.graph import group, nbs

    n, per_group = 100, 20
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2 * per_group, n, n))
    x = (x + x.transpose(0, 2, 1)) / 2
    x[per_group:, :8, :8] += 1.0
    for m in x:
        np.fill_diagonal(m, 0)
    import pandas as pd

    table_ = pd.DataFrame({"subject": [f"{k:02d}" for k in range(2 * per_group)],
                           "group": ["a"] * per_group + ["b"] * per_group})
    design = group.make_design(table_, ("group", "b", "a"))
    thresh = 3.1
    nbs.nbs(x[:, :10, :10], design, threshold=thresh, n_perm=10)  # warm-up
    t_ours, res = timed(lambda: nbs.nbs(x, design, threshold=thresh, n_perm=args.nbs_perm, tail="both", seed=0), 1)
    xs = np.ascontiguousarray(x[per_group:].transpose(1, 2, 0))
    ys = np.ascontiguousarray(x[:per_group].transpose(1, 2, 0))
    t_bct, _ = timed(lambda: bct.nbs_bct(xs, ys, thresh, k=args.bct_nbs_perm, tail="both", seed=0), 1)
    scale = args.nbs_perm / args.bct_nbs_perm
    row(table, f"NBS 100 nodes, 20 vs 20, {args.nbs_perm} permutations", t_ours, "bctpy", t_bct * scale,
        f"bctpy ran {args.bct_nbs_perm}, ×{scale:g}")
    if shutil.which("connectomestats"):
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            names = []
            for k, m in enumerate(x):
                names.append(f"c{k}.csv")
                np.savetxt(tmp / names[-1], m, delimiter=",")
            (tmp / "list.txt").write_text("\n".join(names) + "\n")
            np.savetxt(tmp / "design.txt", design.matrix)
            np.savetxt(tmp / "contrast.txt", design.contrast)
            cmd = ["connectomestats", "list.txt", "nbs", "design.txt", "contrast.txt", "out_", "-threshold",
                   str(thresh), "-nshuffles", str(args.nbs_perm), "-nthreads", str(args.threads), "-quiet"]
            t_mr, _ = timed(lambda: subprocess.run(cmd, cwd=tmp, check=True), 1)
        row(table, f"NBS 100 nodes, 20 vs 20, {args.nbs_perm} permutations", t_ours, "MRtrix3", t_mr,
            "connectomestats, one-sided t>thr (ours two-sided)")
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--nodes", type=int, default=400)
    ap.add_argument("--density", type=float, default=0.5)
    ap.add_argument("--local-nodes", type=int, default=60)
    ap.add_argument("--subjects", type=int, default=100)
    ap.add_argument("--bct-subjects", type=int, default=5)
    ap.add_argument("--nbs-perm", type=int, default=1000)
    ap.add_argument("--bct-nbs-perm", type=int, default=100)
    args = ap.parse_args()

    table: list = []
    bench_single(table, f"generated {args.nodes} nodes, density {args.density}",
                 random_graph(args.nodes, args.density, 0), args)
    real = hcp_graphs(1)
    if real:
        bench_single(table, "HCP 200 nodes", real[0], args)
    bench_cohort(table, args)
    bench_nbs(table, args)

    print(f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
          f"our threads: {args.threads}; bctpy/networkx single-threaded")
    print(f"{'what':<66} {'ours s':>9} {'peer':>9} {'peer s':>9} {'peer/ours':>10}  note")
    for what, ours, peer_name, peer, ratio, note in table:
        print(f"{what:<66} {ours:9.4f} {peer_name:>9} {peer:9.3f} {ratio:10.1f}  {note}")


if __name__ == "__main__":
    from _results import recorded

    with recorded(__file__):
        main()
