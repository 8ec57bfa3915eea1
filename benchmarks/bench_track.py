"""Tracking speed: pigment_connect vs DIPY and MRtrix3, deterministic and probabilistic tensor tracking.

    python benchmarks/bench_track.py [--seeds 20000] [--threads 2] [--data adni|phantom] [--million]

Data: the real whole-brain b=1000 scan in ../shared/data (ADNI, 128×128×82, 2 mm; ``--data
adni``, the default when present) or the generated phantom. The same ``--seeds`` random seed
points (inside FA ≥ 0.15) go to every method; settings are equal: 0.5 mm steps, 45°, FA 0.15
stop, 10–250 mm. Each method runs in its own process with ``--threads`` threads and is timed from
its tensor/peaks/PMF input to streamlines in memory (MRtrix3: to the .tck on disk, as a
command; its Tensor_Det/Tensor_Prob fit tensors from the DWI at every step, which is how
MRtrix3 tracks tensors). Reported: streamlines/s, seeds/s and peak memory, and the ratio to
ours per thread.

Peers: DIPY ``LocalTracking`` (deterministic on DTI peaks; probabilistic on the tensor ODF) and
``dipy.tracking.tracker.deterministic_tracking``/``probabilistic_tracking`` (multithreaded,
on the tensor ODF as a spherical function), MRtrix3 ``tckgen -algorithm Tensor_Det|Tensor_Prob``,
and cuslines' numba CPU backend (``cuslines.numba.CPUTracker``, probabilistic on the same tensor
ODF; it starts one streamline per ODF peak at each seed, so compare seeds/s). A peer that is not
installed is reported as failed and skipped.
``--million`` also tracks ≥ 1 million streamlines with ours (probabilistic, streamed to a .tck file
with ``Tracker.track_to_file``) and reports time, file size and peak memory.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ADNI = HERE.parent.parent / "shared" / "data" / "dwi_philips_elitionx_adni_wholebrain_b1000" / "dwi.nii.gz"
STEP, ANGLE, FA_STOP, MIN_LEN, MAX_LEN = 0.5, 45.0, 0.15, 10.0, 250.0


def prepare(out: Path, data: str, n_seeds: int) -> None:
    import nibabel as nib
    import numpy as np

    import pigment_connect as pc
    from pigment_connect.datasets import make_subject
    from pigment_connect.fit import TensorModel
    from pigment_connect.track import seeds_from_mask

    if data == "adni":
        dwi = pc.load_dwi(ADNI)
    else:
        dwi = make_subject(seed=1, shape=(88, 104, 28)).dwi
    maps = TensorModel(dwi.gtab).fit(dwi).maps
    maps.save(out / "maps", prefix="sub-bench")
    fa = np.asarray(maps["fa"])
    mask = dwi.mask & (fa >= FA_STOP)
    seeds = seeds_from_mask(mask, n_total=n_seeds, random_state=0)
    world = seeds @ dwi.affine[:3, :3].T + dwi.affine[:3, 3]
    np.save(out / "seeds_mm.npy", world)
    np.savetxt(out / "seeds_mm.txt", world, fmt="%.6f", delimiter=",")
    nib.save(nib.Nifti1Image(dwi.data, dwi.affine), out / "dwi.nii.gz")
    nib.save(nib.Nifti1Image(dwi.mask.astype(np.uint8), dwi.affine), out / "mask.nii.gz")
    nib.save(nib.Nifti1Image(fa.astype(np.float32), dwi.affine), out / "fa.nii.gz")
    nib.save(nib.Nifti1Image(mask.astype(np.uint8), dwi.affine), out / "seedmask.nii.gz")
    np.savetxt(out / "bvals", dwi.gtab.bvals[None, :], fmt="%g")
    np.savetxt(out / "bvecs", dwi.gtab.bvecs.T, fmt="%.8f")
    (out / "shape.json").write_text(json.dumps({"shape": list(fa.shape)}))


def worker(method: str, out: Path, threads: int, million: bool) -> dict:
    import nibabel as nib
    import numpy as np

    from pigment_connect.io.maps import MicrostructureMaps

    seeds = np.load(out / "seeds_mm.npy")
    dwi_img = nib.load(out / "dwi.nii.gz")
    affine = dwi_img.affine
    fa = np.asarray(nib.load(out / "fa.nii.gz").dataobj)
    mask = np.asarray(nib.load(out / "mask.nii.gz").dataobj) > 0
    vox = float(np.linalg.norm(affine[:3, 0]))
    if method.startswith("ours"):
        from pigment_connect.track import Tracker

        maps = MicrostructureMaps.load(out / "maps", prefix="sub-bench", model="tensor")
        algorithm = {"ours_det": "eigenvector", "ours_prob": "probabilistic"}[method]
        tracker = Tracker(algorithm=algorithm, step_size=STEP, max_angle=ANGLE, fa_threshold=FA_STOP,
                          min_length=MIN_LEN, max_length=MAX_LEN)
        tracker.track(maps, seeds=seeds[:50], random_state=0, n_threads=threads)  # numba warm-up
        t0 = time.perf_counter()
        if million:  # streamed to a .tck file chunk by chunk
            n_out = tracker.track_to_file(maps, out / "million.tck", n_seeds=1_800_000, random_state=0,
                                          n_threads=threads)["streamlines"]
            seconds = time.perf_counter() - t0
        else:
            trk = tracker.track(maps, seeds=seeds, random_state=0, n_threads=threads)
            seconds = time.perf_counter() - t0
            n_out = len(trk)
    elif method == "cuslines_prob":
        from math import radians

        from dipy.data import default_sphere
        from dipy.tracking.streamline import length

        from cuslines.numba import CPUProbDirectionGetter, CPUTracker

        model, data = _dipy_tensor_model(out, dwi_img)
        pmf = _tensor_pmf(model, data, mask)
        from pigment_connect.io.grid import world_to_voxel

        seeds_vox = world_to_voxel(seeds, affine)
        tracker = CPUTracker(CPUProbDirectionGetter(), pmf, fa, FA_STOP, default_sphere.vertices, default_sphere.edges,
                             max_angle=radians(ANGLE), step_size=STEP / vox, min_pts=int(MIN_LEN / STEP),
                             max_pts=int(MAX_LEN / STEP), rng_seed=1)
        tracker.seed_propagator.propagate(seeds_vox[:50])  # numba warm-up
        t0 = time.perf_counter()
        tracker.seed_propagator.propagate(seeds_vox)
        lines = list(tracker.seed_propagator.as_generator())
        seconds = time.perf_counter() - t0
        n_out = int(sum(1 for s in lines if len(s) > 1 and length(s) * vox >= MIN_LEN))
    else:
        from dipy.data import default_sphere
        from dipy.direction import ProbabilisticDirectionGetter, peaks_from_model
        from dipy.tracking.local_tracking import LocalTracking
        from dipy.tracking.stopping_criterion import ThresholdStoppingCriterion
        from dipy.tracking.streamline import length

        model, data = _dipy_tensor_model(out, dwi_img)
        stop = ThresholdStoppingCriterion(fa, FA_STOP)
        if method == "dipy_local_det":
            getter = peaks_from_model(model, data, default_sphere, relative_peak_threshold=0.8,
                                      min_separation_angle=45, mask=mask)
        else:
            pmf = _tensor_pmf(model, data, mask)
        t0 = time.perf_counter()
        if method == "dipy_local_det":
            lines = list(LocalTracking(getter, stop, seeds, affine, step_size=STEP / vox, max_cross=1,
                                       maxlen=int(MAX_LEN / STEP)))
        elif method == "dipy_local_prob":
            getter = ProbabilisticDirectionGetter.from_pmf(pmf, max_angle=ANGLE, sphere=default_sphere)
            lines = list(LocalTracking(getter, stop, seeds, affine, step_size=STEP / vox, random_seed=1,
                                       maxlen=int(MAX_LEN / STEP)))
        else:
            from dipy.tracking import tracker as dipy_tracker

            fn = (dipy_tracker.deterministic_tracking if method == "dipy_tracker_det"
                  else dipy_tracker.probabilistic_tracking)
            lines = list(fn(seeds, stop, affine, sf=pmf, sphere=default_sphere, step_size=STEP, max_angle=ANGLE,
                            min_len=MIN_LEN, max_len=MAX_LEN, nbr_threads=threads, random_seed=1))
        seconds = time.perf_counter() - t0
        n_out = int(sum(1 for s in lines if len(s) > 1 and length(s) >= MIN_LEN))
    return {"seconds": seconds, "streamlines": n_out, "peak_mb": _peak_mb()}


def _dipy_tensor_model(out: Path, dwi_img):
    """DIPY's TensorModel for the prepared table, and the DWI as float32."""
    import numpy as np
    from dipy.core.gradients import gradient_table
    from dipy.reconst.dti import TensorModel

    bvals = np.loadtxt(out / "bvals")
    bvecs = np.loadtxt(out / "bvecs").T
    return TensorModel(gradient_table(bvals, bvecs=bvecs)), np.asarray(dwi_img.dataobj, dtype=np.float32)


def _tensor_pmf(model, data, mask):
    """The tensor ODF on DIPY's default sphere, clipped at 0: the PMF of the probabilistic peers."""
    from dipy.data import default_sphere

    return model.fit(data, mask=mask).odf(default_sphere).clip(min=0)


def _peak_mb() -> float:
    """This process's peak resident memory (MB): VmHWM, which, unlike ru_maxrss, does not carry
    over the parent's peak into a forked-and-exec'd worker."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=20000)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--data", choices=("adni", "phantom"), default="adni" if ADNI.is_file() else "phantom")
    ap.add_argument("--million", action="store_true")
    ap.add_argument("--out", default=None)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, Path(args.out), args.threads, args.million)))
        return
    out = Path(args.out or tempfile.mkdtemp(prefix="bench_track_"))
    out.mkdir(parents=True, exist_ok=True)
    prepare(out, args.data, args.seeds)
    env = {**os.environ, **{v: str(args.threads) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                            "NUMBA_NUM_THREADS", "MKL_NUM_THREADS")}}
    rows = []
    if shutil.which("tckgen"):
        for algo, name in (("Tensor_Det", "mrtrix_det"), ("Tensor_Prob", "mrtrix_prob")):
            cmd = ["tckgen", "dwi.nii.gz", f"{name}.tck", "-algorithm", algo, "-fslgrad", "bvecs", "bvals",
                   "-seed_image", "seedmask.nii.gz", "-seeds", str(args.seeds), "-select", "0", "-mask", "mask.nii.gz",
                   "-step", str(STEP), "-angle", str(ANGLE), "-cutoff", str(FA_STOP), "-minlength", str(MIN_LEN),
                   "-maxlength", str(MAX_LEN), "-nthreads", str(args.threads), "-quiet", "-force"]
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, cwd=out, capture_output=True, text=True)
            seconds = time.perf_counter() - t0
            if proc.returncode:
                print(f"{name}: failed ({proc.stderr.strip()[-300:]})")
                continue
            info = subprocess.run(["tckinfo", f"{name}.tck"], cwd=out, capture_output=True, text=True).stdout
            count = next((int(line.split()[-1]) for line in info.splitlines() if line.strip().startswith("count")), 0)
            peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0  # MRtrix3 runs first
            rows.append((name, seconds, count, peak, args.threads))
    methods = ["ours_det", "ours_prob", "dipy_local_det", "dipy_local_prob", "dipy_tracker_det", "dipy_tracker_prob",
               "cuslines_prob"]
    for method in methods:
        proc = subprocess.run([sys.executable, __file__, "--worker", method, "--out", str(out),
                               "--threads", str(args.threads)], capture_output=True, text=True, env=env)
        if proc.returncode:
            print(f"{method}: failed ({proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else '?'})")
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        rows.append((method, r["seconds"], r["streamlines"], r["peak_mb"], args.threads))
    print(f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; threads {args.threads}; "
          f"data {args.data}; {args.seeds} seeds; step {STEP} mm, {ANGLE}°, FA {FA_STOP}, {MIN_LEN}-{MAX_LEN} mm")
    print(f"{'method':<18} {'s':>8} {'streamlines':>12} {'stl/s':>9} {'seeds/s':>9} {'peak MB':>8} {'ours/peer':>10}")
    speed = {m: (n / s if s > 0 else 0.0, args.seeds / s if s > 0 else 0.0) for m, s, n, _, _ in rows}
    for method, seconds, n, peak, _ in rows:
        ours = "ours_prob" if "prob" in method else "ours_det"
        ratio = speed[ours][1] / speed[method][1] if method in speed and speed[method][1] and ours in speed else 1.0
        print(f"{method:<18} {seconds:8.2f} {n:12d} {speed[method][0]:9.0f} {speed[method][1]:9.0f} {peak:8.0f} "
              f"{ratio:10.1f}")
    print("ours/peer = our seeds per second over the peer's (same seeds, same threads); MRtrix3 runs first, so "
          "its peak memory is its own (max over its two runs); it seeds its own random points in the same seed mask")
    if args.million:
        proc = subprocess.run([sys.executable, __file__, "--worker", "ours_prob", "--out", str(out), "--threads",
                               str(args.threads), "--million"], capture_output=True, text=True, env=env)
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        size = (out / "million.tck").stat().st_size / 1e9
        print(f"1.8 M seeds, probabilistic, streamed to .tck: {r['streamlines']} streamlines ({size:.1f} GB file) in "
              f"{r['seconds']:.0f} s, peak memory {r['peak_mb'] / 1024:.2f} GB")


if __name__ == "__main__":
    from _results import recorded

    with recorded(__file__):
        main()
