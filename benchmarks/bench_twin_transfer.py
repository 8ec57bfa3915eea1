"""What a prior learned from real brains can reach on the digital twin: the yardsticks for issue #30's targets.

    python benchmarks/bench_twin_transfer.py [--voxels 3000] [--threads 2] [--draws 8] [--no-peers]

``bench_twin.py``'s oracle is trained on the scored twin's own truth (cross-validated over its
voxels): it knows *this* brain's joint distribution of tissue and signal, which nothing shipped
before the scan can. This benchmark adds two kinds of yardstick with the same trees
(:func:`bench_sparse.fit_oracle`'s inputs and loss):

- **the oracle trained to convergence on this twin** (:func:`fit_bayes_oracle`): each training
  voxel's tissue turned by ``--draws`` random rotations and measured with fresh noise at the twin's
  own σ, cross-validated over voxels as the plain oracle. Its error stops falling between 8 and 16
  draws, so it approximates the posterior median under this brain's own tissue population (on
  1 b0 + 6, whose summary is sufficient up to orientation; on the larger tables it sees summaries
  only). Restricted to white matter (trained and applied there only: the oracle is *told* the
  voxel's class), its mean absolute error approximates the least any estimator can have over white
  matter, so a white-matter target it misses by more than the trees' approximation is out of reach.
  That approximation is a few hundredths of the error ratio on the slab (where the ×10 row beats the
  told one, which a converged told oracle would not allow); the crop's 125 white-matter voxels are
  too few for the trees to bound anything. Trained with white matter weighted ×10
  (``wm_weight``), it shows what white matter can gain at grey matter's expense: the least-error
  frontier between the two.
- **the oracle trained on the other real scan's twin** (:func:`fit_transfer`): its truth maps, its
  noise-free signal synthesised on the scored scan's own sparse table (:meth:`DiffusionKurtosisModel.predict`
  of its dense DKI fit, the tissue turned by ``--draws`` random rotations) with Rician noise at the
  scored scan's b=0 SNR in white matter, applied to the scored twin. That is a prior learned from
  real tissue by a flexible regressor, with no simulator in between, evaluated out of sample
  (another subject, scanner and protocol). Source voxels whose synthesised shell means do not fall
  with b (the DKI of the 2-shell mdt slab extrapolated to the crop's b=2800) are left out of its training.

Both twins, at their own noise, on the three sparse protocols; the scored voxels, noise and
PIGMENT's maps are those of ``bench_twin.py`` (same seeds), so its rows there reproduce. Rows: the
conventional fit, PIGMENT zero-shot, the three oracles, DIPY FORCE (``--no-peers`` skips it). Scores
as ``bench_twin.py`` (bias, median absolute error; WM, GM, brain). The summary compares, per target,
PIGMENT with the yardsticks.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SCANS = ("mdt", "msmt")
PROTOCOLS = ("1b0+6", "1b0+12", "1b0+8+8")
CROSS = "oracle (trained on the other twin)"
BAYES = "oracle (this twin, rotated noisy copies)"
TOLD = "oracle (as above, told the voxel is WM)"
WM_WEIGHT = 10.0
"""White matter's weight in the training of the frontier row (:func:`fit_bayes_oracle`'s ``wm_weight``)."""
WEIGHTED = f"oracle (as above, WM weighted ×{WM_WEIGHT:g})"
DRAWS = 8
"""Rotated noisy copies of each training voxel in :func:`fit_bayes_oracle` and :func:`fit_transfer`: on the
slab's twin at 1 b0 + 6 the converged oracle's white-matter FA error was 0.049 / 0.047 / 0.046 / 0.046
with 1 / 4 / 8 / 16 copies."""


def load_twin(scan: str, voxels: int, seed: int) -> dict:
    """A scan's twin as ``bench_twin.py`` builds it, with its dense DKI fit (to synthesise other tables),
    scored mask, regions, own σ and white matter's median S0."""
    import bench_sparse as bs
    import bench_twin as bt

    from pigment_connect.io import load_dwi
    from pigment_connect.io.gradients import GradientTable

    image, bval, bvec, brain_mask = (bs.SHARED / f for f in bs.SCANS[scan][:4])
    if not image.is_file():
        sys.exit(f"needs {image}")
    dwi = load_dwi(image, bvals=bval, bvecs=bvec, mask=brain_mask)
    bvals = np.where(dwi.gtab.b0s_mask, 0.0, dwi.gtab.bvals)
    gtab = GradientTable(bvals, dwi.gtab.bvecs)
    data = np.clip(dwi.data, 0, None).astype(np.float64)
    print(f"## {scan}: {image.parent.name}, {data.shape}")
    clean, truth, physical, dki = bt.make_twin(data, gtab, dwi.mask)
    mask, regions = bt.scored_voxels(physical, truth, voxels, seed)
    wm_all = physical & (truth["fa"] > 0.4)
    sigma = bt.own_sigma(data, gtab, wm_all)
    s0_wm = float(np.median(truth["s0"][wm_all]))
    print(f"  {physical.sum()} physical voxels, scored {mask.sum()} (WM {regions['WM'].sum()}, GM "
          f"{regions['GM'].sum()}); own σ {sigma:.1f} (b=0 SNR {s0_wm / sigma:.1f} in WM)\n")
    return {"scan": scan, "gtab": gtab, "clean": clean, "truth": truth, "physical": physical, "dki": dki,
            "mask": mask, "regions": regions, "sigma": sigma, "s0_wm": s0_wm}


def voxel_summary(vox: np.ndarray, gtab, s0_ref: float) -> np.ndarray:
    """:func:`bench_sparse.summary_features` of voxels (V, N) on ``gtab``, their DTI fitted here, followed
    by the log-eigenvalues of a DTI fit of each shell above b = 1500 with ≥ 6 directions (with the b=0
    volumes): the higher shell's own anisotropy, which the direction-averaged attenuation drops."""
    import bench_sparse as bs

    from pigment_connect.fit import TensorModel

    def dti(rows):
        return TensorModel(gtab.subset(rows)).fit(vox[:, None, None, rows].astype(np.float32),
                                                  mask=np.ones((len(vox), 1, 1), bool))

    low = dti(np.flatnonzero(gtab.bvals <= 1500))
    X = [bs.summary_features(vox, gtab, low.evals[:, 0, 0], low.fa[:, 0, 0], low.md[:, 0, 0], s0_ref)]
    for b in np.unique(np.round(gtab.bvals[gtab.bvals > 1500], -2)):
        shell = np.abs(gtab.bvals - b) < 50
        if shell.sum() >= 6:
            X.append(np.log(np.clip(dti(np.flatnonzero(shell | gtab.b0s_mask)).evals[:, 0, 0], 1e-6, None)))
    return np.column_stack(X)


def synthesise(source: dict, voxels: np.ndarray, sub_gtab, rel_sigma: float, draws: int, seed: int):
    """Training data from ``source``'s twin: ``draws`` copies of its ``voxels`` (a mask of its grid), each
    tissue turned by a random rotation (uniform on SO(3)) and measured on ``sub_gtab`` with fresh Rician
    noise at b=0 SNR 1/``rel_sigma`` in its white matter. Returns the summary features (draws·V', F)
    and the flat indices into ``voxels``' selection they come from — voxels whose synthesised shell
    means do not fall with b (in the first turn) are left out (the 2-shell slab's DKI extrapolated
    beyond b=2000)."""
    import bench_twin as bt
    from scipy.spatial.transform import Rotation

    from pigment_connect.io.gradients import GradientTable

    turns = [np.eye(3)] if draws == 1 else Rotation.random(draws, random_state=seed).as_matrix()
    dw = ~sub_gtab.b0s_mask
    shell_of = np.round(sub_gtab.bvals[dw], -2)
    X, index, keep_all = [], [], None
    for k, turn in enumerate(turns):
        # the tissue turned by R measured along g is the tissue measured along Rᵀg (rows: g @ R)
        clean = source["dki"].predict(GradientTable(sub_gtab.bvals, sub_gtab.bvecs @ turn))[voxels]
        if keep_all is None:
            means = [clean[:, dw][:, shell_of == b].mean(-1) for b in np.unique(shell_of)]
            falls = np.all([hi < lo for lo, hi in zip([clean[:, ~dw].mean(-1), *means[:-1]], means)], axis=0)
            keep_all = falls & np.isfinite(clean).all(-1)
        noisy = bt.add_noise(clean[keep_all], rel_sigma * source["s0_wm"], seed=seed + 7 + k)
        X.append(voxel_summary(noisy, sub_gtab, source["s0_wm"]))
        index.append(np.flatnonzero(keep_all))
    return np.concatenate(X), np.concatenate(index)


def _trees(X: np.ndarray, y: np.ndarray, seed: int, weight: np.ndarray | None = None):
    """The oracle's regressor (:func:`bench_sparse.fit_oracle`'s trees and loss) fitted on the finite rows
    (each row weighted by ``weight`` where given)."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    ok = np.isfinite(y) & np.isfinite(X).all(1)
    return HistGradientBoostingRegressor(loss="absolute_error", max_iter=300, random_state=seed).fit(
        X[ok], y[ok], sample_weight=None if weight is None else weight[ok])


def fit_transfer(source: dict, sub: np.ndarray, sub_gtab, mask: np.ndarray, rel_sigma: float, s0_ref: float,
                 *, draws: int = 1, seed: int = 0) -> dict:
    """Trees trained on ``source``'s twin, synthesised on ``sub_gtab`` at b=0 SNR 1/``rel_sigma`` in its
    white matter (``draws`` rotated noisy copies, :func:`synthesise`), predicting every map of the
    scored data ``sub`` (X, Y, Z, N) in ``mask``."""
    import bench_twin as bt

    src = source["physical"]
    X_train, index = synthesise(source, src, sub_gtab, rel_sigma, draws, seed)
    X_test = np.nan_to_num(voxel_summary(sub[mask], sub_gtab, s0_ref))
    out = {}
    for m in bt.MAPS:
        full = np.zeros(mask.shape)
        full[mask] = _trees(X_train, source["truth"][m][src][index], seed).predict(X_test)
        out[m] = full
    return out


def fit_bayes_oracle(twin: dict, sub: np.ndarray, sub_gtab, *, population: np.ndarray | None = None,
                     wm_weight: float = 1.0, draws: int = DRAWS, folds: int = 5, seed: int = 0) -> dict:
    """The oracle on the twin's own truth, trained to convergence: in each of ``folds`` folds of the
    physical voxels (:func:`bench_sparse.fit_oracle`'s split), trees trained on ``draws`` rotated,
    freshly noised copies of the other folds' tissue (:func:`synthesise`, the twin's own σ) predict the
    fold's scored voxels from their data ``sub``. With the summary features sufficient up to
    orientation (1 b0 + 6) and absolute-error loss, this approximates the posterior median of each map
    under *this brain's* population of tissue, a uniform orientation and the true noise.

    ``population`` (a mask of the grid, e.g. the twin's white matter) restricts training and
    prediction to its voxels (NaN elsewhere): the oracle is *told* each voxel's tissue class. Its mean
    absolute error there approximates (to the trees' accuracy) the least any estimator from one
    voxel's data can have over that class, whatever it does elsewhere — a lower bound for that
    region's target. Unrestricted, the oracle is
    the least error over the whole brain, which may trade one region's error for another's.
    ``wm_weight`` weights the training voxels of white matter (truth FA > 0.4): the posterior median
    under a prior that makes white matter that many times more common, which trades grey matter's
    error for white matter's along the least-error frontier."""
    import bench_twin as bt
    from sklearn.model_selection import KFold

    physical, mask = twin["physical"], twin["mask"]
    pool = physical if population is None else physical & population
    rel_sigma = twin["sigma"] / twin["s0_wm"]
    where = np.argwhere(pool)
    X_test = np.nan_to_num(voxel_summary(sub[pool], sub_gtab, twin["s0_wm"]))
    scored = mask[pool]
    pred = {m: np.zeros(len(where)) for m in bt.MAPS}
    for f, (tr, te) in enumerate(KFold(folds, shuffle=True, random_state=seed).split(where)):
        te = te[scored[te]]
        train = np.zeros_like(physical)
        train[tuple(where[tr].T)] = True
        X_train, index = synthesise(twin, train, sub_gtab, rel_sigma, draws, seed + 100 * f)
        weight = np.where(twin["truth"]["fa"][train][index] > 0.4, wm_weight, 1.0)
        for m in bt.MAPS:
            pred[m][te] = _trees(X_train, twin["truth"][m][train][index], seed, weight).predict(X_test[te])
    out = {}
    for m in bt.MAPS:
        full = np.full(mask.shape, np.nan)
        full[pool] = pred[m]
        out[m] = np.where(mask, full, np.nan if population is not None else 0.0)
    return out


def print_summary(rows) -> None:
    """PIGMENT against the yardsticks on the targets that depend on what a prior knows (and grey
    matter's FA, which a prior weighted towards white matter gives up)."""
    by = {(label, method): sc for label, method, sc, _, _ in rows}
    labels = list(dict.fromkeys(label for label, *_ in rows))
    print("| twin · protocol | method | FA WM bias | FA WM / conventional | FA GM / conventional | MK WM err | NDI WM / FORCE "
          "| ODI WM / FORCE |")
    print("|---|---|---|---|---|---|---|---|")
    import bench_sparse as bs

    for label in labels:
        conv, force = by.get((label, "conventional")), by.get((label, "FORCE"))
        for method in ("PIGMENT", bs.ORACLE.replace("this scan", "the twin's truth"), BAYES, WEIGHTED, TOLD, CROSS):
            sc = by.get((label, method))
            if sc is None:
                continue

            def ratio(m, peer, region="WM"):
                if peer is None or peer.get((m, region)) is None or sc.get((m, region)) is None:
                    return "n/a"
                return f"{sc[(m, region)][1] / peer[(m, region)][1]:.2f}×"

            print(f"| {label} | {method} | {sc[('fa', 'WM')][0]:+.3f} | {ratio('fa', conv)} | {ratio('fa', conv, 'GM')} | "
                  f"{sc[('mk', 'WM')][1]:.3f} | {ratio('ndi', force)} | {ratio('odi', force)} |")
    print("\n(targets: FA WM |bias| ≤ 0.02 and ≤ 0.8× the conventional error; NDI WM ≤ 0.9×, ODI WM ≤ 0.7× FORCE's)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--voxels", type=int, default=3000, help="random physical brain voxels scored per scan")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-peers", action="store_true", help="skip FORCE")
    ap.add_argument("--draws", type=int, default=DRAWS, help="rotated noisy copies of each training voxel")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    sys.path.insert(0, str(HERE))
    import bench_sparse as bs
    import bench_twin as bt

    bs.use_threads(args.threads)
    from pigment_connect.io.gradients import GradientTable

    twins = {scan: load_twin(scan, args.voxels, args.seed) for scan in SCANS}
    rows = []
    for scan, twin in twins.items():
        other = twins[next(s for s in SCANS if s != scan)]
        gtab, mask, truth = twin["gtab"], twin["mask"], twin["truth"]
        noisy = bt.add_noise(twin["clean"], twin["sigma"], seed=args.seed + 1)  # bench_twin's own-SNR noise
        protocols = bs.scan_protocols(scan)
        for name in PROTOCOLS:
            vols = bs.protocol_volumes(gtab.bvals, gtab.bvecs, protocols[name])
            sub, sub_gtab = noisy[..., vols], GradientTable(gtab.bvals[vols], gtab.bvecs[vols])
            label = f"{scan} {name} @SNR{twin['s0_wm'] / twin['sigma']:.0f} (own)"
            results = {}
            t = time.perf_counter()
            results["conventional"] = (bs.fit_conventional(sub, sub_gtab, mask), time.perf_counter() - t, 0.0)
            t = time.perf_counter()
            results["PIGMENT"] = (bs.fit_pigment(sub, sub_gtab, mask, twin["sigma"]), time.perf_counter() - t, 0.0)
            t = time.perf_counter()
            own = bs.fit_oracle(sub, sub_gtab, twin["physical"], mask, {**truth, "physical": twin["physical"]})
            results[bs.ORACLE.replace("this scan", "the twin's truth")] = (own, time.perf_counter() - t, 0.0)
            t = time.perf_counter()
            results[BAYES] = (fit_bayes_oracle(twin, sub, sub_gtab, draws=args.draws, seed=args.seed),
                              time.perf_counter() - t, 0.0)
            t = time.perf_counter()
            results[WEIGHTED] = (fit_bayes_oracle(twin, sub, sub_gtab, wm_weight=WM_WEIGHT, draws=args.draws,
                                                  seed=args.seed), time.perf_counter() - t, 0.0)
            t = time.perf_counter()
            results[TOLD] = (fit_bayes_oracle(twin, sub, sub_gtab, population=truth["fa"] > 0.4, draws=args.draws,
                                              seed=args.seed), time.perf_counter() - t, 0.0)
            t = time.perf_counter()
            results[CROSS] = (fit_transfer(other, sub, sub_gtab, mask, twin["sigma"] / twin["s0_wm"], twin["s0_wm"],
                                           draws=args.draws, seed=args.seed), time.perf_counter() - t, 0.0)
            if not args.no_peers:
                work = Path(tempfile.mkdtemp(prefix="bench_twin_transfer_force_"))
                try:
                    results["FORCE"] = bs.fit_force(sub, sub_gtab.bvals, sub_gtab.bvecs, mask, work, args.threads)
                except Exception as exc:  # a peer failing on a protocol is reported, not fatal
                    print(f"  FORCE failed on {label}: {type(exc).__name__}: {exc}")
                finally:
                    shutil.rmtree(work, ignore_errors=True)
            for method, (maps, wall, setup) in results.items():
                sc = bt.score(maps, truth, twin["regions"])
                if method == TOLD:  # it estimates white matter only: its "brain" would be white matter's
                    sc.update({k: None for k in sc if k[1] == "brain"})
                rows.append((label, method, sc, wall, setup))
            bt.print_table(rows, label)
    print_summary(rows)


if __name__ == "__main__":
    from _results import recorded

    with recorded(__file__):
        main()
