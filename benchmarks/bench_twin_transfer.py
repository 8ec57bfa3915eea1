"""What a prior learned from another real brain reaches on the digital twin: the yardstick for issue #30's targets.

    python benchmarks/bench_twin_transfer.py [--voxels 3000] [--threads 2] [--no-peers]

``bench_twin.py``'s oracle is trained on the scored twin's own truth (cross-validated over its
voxels): it knows *this* brain's joint distribution of tissue and signal, which nothing shipped
before the scan can. This benchmark adds the yardstick a shipped prior can actually aspire to: the
same trees (:func:`bench_sparse.fit_oracle`'s inputs and loss) trained on the **other** real scan's
twin — its truth maps, its noise-free signal synthesised on the scored scan's own sparse table
(:meth:`DiffusionKurtosisModel.predict` of its dense DKI fit) with Rician noise at the scored scan's
b=0 SNR in white matter — and applied to the scored twin. That is a prior learned from real tissue
by a flexible regressor, with no simulator in between, evaluated out of sample (another subject,
scanner and protocol). Source voxels whose synthesised shell means do not fall with b (the DKI of
the 2-shell mdt slab extrapolated to the crop's b=2800) are left out of its training.

Both twins, at their own noise, on the three sparse protocols; the scored voxels, noise and
PIGMENT's maps are those of ``bench_twin.py`` (same seeds), so its rows there reproduce. Rows: the
conventional fit, PIGMENT zero-shot, the oracle on the twin's own truth, the oracle trained on the
other twin, DIPY FORCE (``--no-peers`` skips it). Scores as ``bench_twin.py`` (bias, median
absolute error; WM, GM, brain). The summary compares, per target, PIGMENT with both yardsticks.
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
    """:func:`bench_sparse.summary_features` of voxels (V, N) on ``gtab``, their DTI fitted here."""
    import bench_sparse as bs

    from pigment_connect.fit import TensorModel

    low = np.flatnonzero(gtab.bvals <= 1500)
    dti = TensorModel(gtab.subset(low)).fit(vox[:, None, None, low].astype(np.float32),
                                            mask=np.ones((len(vox), 1, 1), bool))
    return bs.summary_features(vox, gtab, dti.evals[:, 0, 0], dti.fa[:, 0, 0], dti.md[:, 0, 0], s0_ref)


def fit_transfer(source: dict, sub: np.ndarray, sub_gtab, mask: np.ndarray, rel_sigma: float, s0_ref: float,
                 *, seed: int = 0) -> dict:
    """Trees trained on ``source``'s twin, synthesised on ``sub_gtab`` at b=0 SNR 1/``rel_sigma`` in its
    white matter, predicting every map of the scored data ``sub`` (X, Y, Z, N) in ``mask``."""
    import bench_twin as bt
    from sklearn.ensemble import HistGradientBoostingRegressor

    src = source["physical"]
    clean = source["dki"].predict(sub_gtab)[src]
    dw = ~sub_gtab.b0s_mask
    shell_of = np.round(sub_gtab.bvals[dw], -2)
    means = [clean[:, dw][:, shell_of == b].mean(-1) for b in np.unique(shell_of)]
    falls = np.all([hi < lo for lo, hi in zip([clean[:, ~dw].mean(-1), *means[:-1]], means)], axis=0)
    keep = falls & np.isfinite(clean).all(-1)
    noisy = bt.add_noise(clean[keep], rel_sigma * source["s0_wm"], seed=seed + 7)
    X_train = voxel_summary(noisy, sub_gtab, source["s0_wm"])
    X_test = np.nan_to_num(voxel_summary(sub[mask], sub_gtab, s0_ref))
    out = {}
    for m in bt.MAPS:
        y = source["truth"][m][src][keep]
        ok = np.isfinite(y) & np.isfinite(X_train).all(1)
        model = HistGradientBoostingRegressor(loss="absolute_error", max_iter=300, random_state=seed)
        full = np.zeros(mask.shape)
        full[mask] = model.fit(X_train[ok], y[ok]).predict(X_test)
        out[m] = full
    return out


def print_summary(rows) -> None:
    """PIGMENT against the two yardsticks on the targets that depend on what a prior knows."""
    by = {(label, method): sc for label, method, sc, _, _ in rows}
    labels = list(dict.fromkeys(label for label, *_ in rows))
    print("| twin · protocol | method | FA WM bias | FA WM / conventional | MK WM err | NDI WM / FORCE | ODI WM / FORCE |")
    print("|---|---|---|---|---|---|---|")
    import bench_sparse as bs

    for label in labels:
        conv, force = by.get((label, "conventional")), by.get((label, "FORCE"))
        for method in ("PIGMENT", bs.ORACLE.replace("this scan", "the twin's truth"), CROSS):
            sc = by.get((label, method))
            if sc is None:
                continue

            def ratio(m, peer):
                return "n/a" if peer is None or peer.get((m, "WM")) is None else f"{sc[(m, 'WM')][1] / peer[(m, 'WM')][1]:.2f}×"

            print(f"| {label} | {method} | {sc[('fa', 'WM')][0]:+.3f} | {ratio('fa', conv)} | {sc[('mk', 'WM')][1]:.3f} | "
                  f"{ratio('ndi', force)} | {ratio('odi', force)} |")
    print("\n(targets: FA WM |bias| ≤ 0.02 and ≤ 0.8× the conventional error; NDI WM ≤ 0.9×, ODI WM ≤ 0.7× FORCE's)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--voxels", type=int, default=3000, help="random physical brain voxels scored per scan")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-peers", action="store_true", help="skip FORCE")
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
            results[CROSS] = (fit_transfer(other, sub, sub_gtab, mask, twin["sigma"] / twin["s0_wm"], twin["s0_wm"],
                                           seed=args.seed), time.perf_counter() - t, 0.0)
            if not args.no_peers:
                work = Path(tempfile.mkdtemp(prefix="bench_twin_transfer_force_"))
                try:
                    results["FORCE"] = bs.fit_force(sub, sub_gtab.bvals, sub_gtab.bvecs, mask, work, args.threads)
                except Exception as exc:  # a peer failing on a protocol is reported, not fatal
                    print(f"  FORCE failed on {label}: {type(exc).__name__}: {exc}")
                finally:
                    shutil.rmtree(work, ignore_errors=True)
            for method, (maps, wall, setup) in results.items():
                rows.append((label, method, bt.score(maps, truth, twin["regions"]), wall, setup))
            bt.print_table(rows, label)
    print_summary(rows)


if __name__ == "__main__":
    from _results import recorded

    with recorded(__file__):
        main()
