"""Fibre-ODF tracking side by side: validity on the ground-truth phantom, MRtrix3's SIFT phantom
connectome, and speed on the real whole-brain scan.

    python benchmarks/bench_fod.py [--threads 2] [--seeds 20000] [--skip-speed]

1. **Validity** (``make_subject`` phantom, single-shell b=1000 ×30 and two-shell b=1000/2000 ×32,
   SNR 30; 2 seeds per voxel of FA ≥ 0.15, the same seed points for everyone; 0.5 mm steps,
   45°, FA 0.15 stop, 10–250 mm): the fraction of streamlines joining a truly connected region
   pair (radial end assignment, 2 mm) and the bundles found (of 7). Ours: FOD deterministic, FOD
   probabilistic (fibre-population draws, the default, and plain iFOD1 with ``lobe_angle=None``),
   the tensorline and probabilistic tensor trackers. DIPY: CSD (its own fit) with
   ``ProbabilisticDirectionGetter``, ``DeterministicMaximumDirectionGetter`` and
   ``PTTDirectionGetter`` in ``LocalTracking`` (FA 0.15 stop). MRtrix3 (when installed):
   ``tckgen -algorithm iFOD2 | iFOD1 | SD_Stream`` on *our* FODs, the same seed count seeded at
   random in the same seed mask, ``-cutoff 0.1``, the same step/angle/lengths.
2. **SIFT phantom** (``../shared/data/phantom_mrtrix3_sift``, MRtrix3's own FODs, 5TT and 4-node
   parcellation): our probabilistic FOD tracking with ACT vs ``tckgen -algorithm iFOD2 -act`` +
   ``tck2connectome``, the same number of seeds in the same mask: edge proportions.
3. **Speed** (the shared ADNI whole brain, CSD of order 8 from its 16 directions; ``--seeds``
   seeds in FA ≥ 0.15; ``--threads`` threads): streamlines and seeds per second of wall time, from
   the FOD in memory to streamlines (ours, DIPY) or to the .tck on disk (MRtrix3, a command).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "data"
STEP, ANGLE, FA_STOP, MIN_LEN, MAX_LEN = 0.5, 45.0, 0.15, 10.0, 250.0


def _tractogram(lines, affine, shape):
    from pigment_connect.io import Tractogram

    trk = Tractogram.from_streamlines([s for s in lines if len(s) > 1], affine=affine, shape=shape)
    return trk.select(trk.lengths >= MIN_LEN)


def _dipy_csd(dwi, mask):
    """DIPY's own CSD fit (its basis, the image frame it tracks in)."""
    from dipy.core.gradients import gradient_table
    from dipy.reconst.csdeconv import ConstrainedSphericalDeconvModel, auto_response_ssst

    gtab = gradient_table(dwi.gtab.bvals, bvecs=dwi.gtab.bvecs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        response, _ = auto_response_ssst(gtab, np.asarray(dwi.data), roi_radii=10, fa_thr=0.7)
        return ConstrainedSphericalDeconvModel(gtab, response, sh_order_max=8).fit(np.asarray(dwi.data),
                                                                                    mask=mask).shm_coeff


def _dipy_track(kind, sh, fa, seeds_mm, affine, step_vox):
    from dipy.data import default_sphere
    from dipy.direction import (DeterministicMaximumDirectionGetter, ProbabilisticDirectionGetter,
                                PTTDirectionGetter)
    from dipy.tracking.local_tracking import LocalTracking
    from dipy.tracking.stopping_criterion import ThresholdStoppingCriterion

    getter = {"prob": ProbabilisticDirectionGetter, "det": DeterministicMaximumDirectionGetter,
              "ptt": PTTDirectionGetter}[kind].from_shcoeff(sh, max_angle=ANGLE, sphere=default_sphere)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return list(LocalTracking(getter, ThresholdStoppingCriterion(fa, FA_STOP), seeds_mm, affine,
                                  step_size=step_vox, max_cross=None, maxlen=int(MAX_LEN / STEP), random_seed=1))


def _mrtrix(args, cwd, threads):
    cmd = ["tckgen", *args, "-step", str(STEP), "-angle", str(ANGLE), "-minlength", str(MIN_LEN),
           "-maxlength", str(MAX_LEN), "-nthreads", str(threads), "-quiet", "-force"]
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - start


def _mrtrix_fod_runs(fod, seed_mask, mask, affine, n_seeds: int, threads: int):
    """Yield (algorithm, folder holding its out.tck, seconds) for tckgen iFOD2, iFOD1 and SD_Stream
    on ``fod``, ``n_seeds`` random seeds in ``seed_mask``, tracking within ``mask``, cutoff 0.1."""
    import nibabel as nib

    with tempfile.TemporaryDirectory() as tmp:
        nib.save(nib.Nifti1Image(fod, affine), f"{tmp}/fod.nii")
        nib.save(nib.Nifti1Image(seed_mask.astype(np.uint8), affine), f"{tmp}/seed.nii")
        nib.save(nib.Nifti1Image(mask.astype(np.uint8), affine), f"{tmp}/mask.nii")
        for algo in ("iFOD2", "iFOD1", "SD_Stream"):
            seconds = _mrtrix(["fod.nii", "out.tck", "-algorithm", algo, "-seed_image", "seed.nii", "-seeds",
                               str(n_seeds), "-select", "0", "-mask", "mask.nii", "-cutoff", "0.1"], tmp, threads)
            yield algo, tmp, seconds


def validity(threads: int) -> None:
    import nibabel.streamlines as nst

    from pigment_connect.connectome import build_connectomes
    from pigment_connect.datasets import make_subject
    from pigment_connect.fit import TensorModel
    from pigment_connect.fit.csd import CsdModel
    from pigment_connect.io import MicrostructureMaps
    from pigment_connect.track import Tracker
    from pigment_connect.track.tracker import seeds_from_mask

    print("## 1. Validity on the ground-truth phantom (valid fraction / bundles found of 7)\n")
    print("| method | single shell b=1000 ×30 | two shells b=1000/2000 ×32 |\n|---|---|---|")
    results: dict[str, list[str]] = {}
    for protocol in ("single_shell", "dense"):
        ph = make_subject(seed=1, protocol=protocol)
        truth = ph.true_connectome.weights > 0

        def score(trk):
            conn = build_connectomes(trk, ph.parcellation, assignment="radial", radius=2.0)["count"].weights
            return f"{conn[truth].sum() / conn.sum():.3f} / {int((conn[np.triu(truth, 1)] > 0).sum())}"

        tm = TensorModel(ph.dwi.gtab).fit(ph.dwi).maps
        fod = CsdModel(ph.dwi.gtab).fit(ph.dwi).fod.astype(np.float32)
        maps = MicrostructureMaps({**tm.maps, "fod": fod}, tm.affine, "tensor", mask=tm.mask)
        fa = np.asarray(tm["fa"])
        seed_mask = tm.mask & (fa >= FA_STOP)
        seeds = seeds_from_mask(seed_mask, per_voxel=2, random_state=0)
        affine = ph.dwi.affine
        seeds_mm = seeds @ affine[:3, :3].T + affine[:3, 3]
        ours = {"ours FOD probabilistic (fibre population, default)": Tracker(algorithm="probabilistic", field="fod"),
                "ours FOD probabilistic, plain iFOD1 (lobe_angle=None)": Tracker(algorithm="probabilistic", field="fod",
                                                                                lobe_angle=None),
                "ours FOD deterministic": Tracker(algorithm="deterministic"),
                "ours tensorline": Tracker(field="tensor"),
                "ours tensor probabilistic": Tracker(algorithm="probabilistic", field="tensor")}
        for name, tracker in ours.items():
            results.setdefault(name, []).append(score(tracker.track(maps, seeds=seeds_mm, random_state=0,
                                                                    n_threads=threads)))
        sh = _dipy_csd(ph.dwi, tm.mask)
        step_vox = STEP / float(np.linalg.norm(affine[:3, 0]))
        for kind, name in (("prob", "DIPY CSD probabilistic"), ("det", "DIPY CSD deterministic maximum"),
                           ("ptt", "DIPY CSD PTT")):
            lines = _dipy_track(kind, sh, fa, seeds_mm, affine, step_vox)
            results.setdefault(name, []).append(score(_tractogram(lines, affine, fa.shape)))
        if shutil.which("tckgen"):
            for algo, tmp, _ in _mrtrix_fod_runs(fod, seed_mask, tm.mask, affine, len(seeds), threads):
                trk = _tractogram(list(nst.load(f"{tmp}/out.tck").streamlines), affine, fa.shape)
                results.setdefault(f"MRtrix3 {algo} on our FODs", []).append(score(trk))
    for name, cells in results.items():
        print(f"| {name} | " + " | ".join(cells) + " |")


def sift_phantom(threads: int, n_seeds: int = 5000) -> None:
    import nibabel as nib
    import nibabel.streamlines as nst

    from pigment_connect.connectome import build_connectomes
    from pigment_connect.io import MicrostructureMaps, Parcellation, Tractogram
    from pigment_connect.track import Tracker

    d = SHARED / "phantom_mrtrix3_sift"
    if not d.is_dir() or not shutil.which("tckgen"):
        print("\n(SIFT phantom comparison skipped: the shared data or MRtrix3 is missing)")
        return
    fod_img = nib.load(d / "fods.nii.gz")
    mask = np.asarray(nib.load(d / "mask.nii.gz").dataobj) > 0
    maps = MicrostructureMaps({"fod": np.asarray(fod_img.dataobj, np.float32)}, fod_img.affine, "csd", mask=mask)
    import pandas as pd

    parc_img = nib.load(d / "parc.nii.gz")
    labels = np.asarray(parc_img.dataobj).astype(np.int32)
    nodes = pd.DataFrame({"index": np.arange(1, labels.max() + 1), "name": [f"node{k}" for k in range(1, labels.max() + 1)]})
    parc = Parcellation(labels, parc_img.affine, nodes, "sift")
    ours = Tracker(algorithm="probabilistic", field="fod", min_length=0.0).track(
        maps, n_seeds=n_seeds, tissue=d / "5tt.nii.gz", random_state=0, n_threads=threads)
    on_parc_grid = Tractogram(ours.points, ours.offsets, parc.affine, parc.labels.shape)  # world mm, 1 mm grid
    ours_c = build_connectomes(on_parc_grid, parc, assignment="radial", radius=2.0)["count"].weights
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["tckgen", str(d / "fods.nii.gz"), "ifod2.tck", "-algorithm", "iFOD2", "-act",
                        str(d / "5tt.nii.gz"), "-seed_image", str(d / "mask.nii.gz"), "-seeds", str(n_seeds),
                        "-select", "0", "-nthreads", str(threads), "-quiet", "-force"], cwd=tmp, check=True)
        subprocess.run(["tck2connectome", "ifod2.tck", str(d / "parc.nii.gz"), "conn.csv", "-quiet", "-force"],
                       cwd=tmp, check=True, capture_output=True)
        theirs_c = np.loadtxt(f"{tmp}/conn.csv", delimiter=",")
        n_theirs = len(nst.load(f"{tmp}/ifod2.tck").streamlines)
    theirs_c = theirs_c + np.triu(theirs_c, 1).T
    print(f"\n## 2. MRtrix3's SIFT phantom, its own FODs and 5TT, {n_seeds} seeds in its mask\n")
    print(f"streamlines kept: ours {len(ours)}, MRtrix3 iFOD2 {n_theirs}\n")
    print("| edge | ours (probabilistic FOD + ACT) | MRtrix3 iFOD2 + ACT, tck2connectome |\n|---|---|---|")
    iu = np.triu_indices(len(ours_c), 1)
    for i, j in zip(*iu):
        a, b = ours_c[i, j] / ours_c[iu].sum(), theirs_c[i, j] / max(theirs_c[iu].sum(), 1)
        if a > 0.005 or b > 0.005:
            print(f"| {i + 1}–{j + 1} | {a:.1%} | {b:.1%} |")


def speed(threads: int, n_seeds: int) -> None:

    import pigment_connect as pc
    from pigment_connect.fit import TensorModel
    from pigment_connect.fit.csd import CsdModel
    from pigment_connect.io import MicrostructureMaps
    from pigment_connect.track import Tracker
    from pigment_connect.track.tracker import seeds_from_mask

    scan = SHARED / "dwi_philips_elitionx_adni_wholebrain_b1000" / "dwi.nii.gz"
    if not scan.is_file():
        print("\n(speed skipped: the shared whole-brain scan is missing)")
        return
    dwi = pc.load_dwi(scan)
    tm = TensorModel(dwi.gtab).fit(dwi).maps
    fod = CsdModel(dwi.gtab).fit(dwi).fod.astype(np.float32)
    maps = MicrostructureMaps({**tm.maps, "fod": fod}, tm.affine, "tensor", mask=tm.mask)
    fa = np.asarray(tm["fa"])
    seed_mask = tm.mask & (fa >= FA_STOP)
    seeds = seeds_from_mask(seed_mask, n_total=n_seeds, random_state=0)
    affine = dwi.affine
    seeds_mm = seeds @ affine[:3, :3].T + affine[:3, 3]
    rows = []
    for name, tracker in (("ours FOD probabilistic", Tracker(algorithm="probabilistic", field="fod")),
                          ("ours FOD deterministic", Tracker(algorithm="deterministic"))):
        tracker.track(maps, seeds=seeds_mm[:200], random_state=0, n_threads=threads)  # compiled (cached) first
        start = time.perf_counter()
        n = len(tracker.track(maps, seeds=seeds_mm, random_state=0, n_threads=threads))
        rows.append((name, time.perf_counter() - start, n, threads))
    if shutil.which("tckgen"):
        for algo, tmp, seconds in _mrtrix_fod_runs(fod, seed_mask, tm.mask, affine, n_seeds, threads):
            count = int(subprocess.run(["tckinfo", "-count", "out.tck"], cwd=tmp, capture_output=True,
                                       text=True).stdout.split()[-1])
            rows.append((f"MRtrix3 {algo}", seconds, count, threads))
    sh = _dipy_csd(dwi, tm.mask)
    step_vox = STEP / float(np.linalg.norm(affine[:3, 0]))
    for kind, name in (("prob", "DIPY CSD probabilistic"), ("det", "DIPY CSD deterministic maximum")):
        start = time.perf_counter()
        lines = _dipy_track(kind, sh, fa, seeds_mm, affine, step_vox)
        rows.append((name, time.perf_counter() - start, len(_tractogram(lines, affine, fa.shape)), 1))
    print(f"\n## 3. Speed, ADNI whole brain, {n_seeds} seeds in FA ≥ {FA_STOP}, {threads} threads "
          "(DIPY's LocalTracking has one)\n")
    print("| method | s | streamlines | streamlines/s | seeds/s | ours FOD probabilistic / it (seeds/s) |")
    print("|---|---|---|---|---|---|")
    ours = n_seeds / rows[0][1]
    for name, seconds, n, used in rows:
        print(f"| {name} | {seconds:.2f} | {n:,} | {n / seconds:,.0f} | {n_seeds / seconds:,.0f} | "
              f"{ours / (n_seeds / seconds):.1f}× |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--seeds", type=int, default=20000)
    ap.add_argument("--skip-speed", action="store_true")
    args = ap.parse_args()
    validity(args.threads)
    sift_phantom(args.threads)
    if not args.skip_speed:
        speed(args.threads, args.seeds)


if __name__ == "__main__":
    from _results import recorded

    with recorded(__file__):
        main()
