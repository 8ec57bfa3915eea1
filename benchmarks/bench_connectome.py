"""Connectome construction: pigment_connect vs DIPY and MRtrix3, count + mean-FA connectomes.

    python benchmarks/bench_connectome.py [--streamlines 1000000] [--threads 2] [--out /tmp/bench_connectome]

Data: the shipped Schaefer-200 atlas on its MNI 2 mm grid, an FA-like map (the template's
white-matter ramp), and ``--streamlines`` generated curves (quadratic Bézier paths between
random points of the brain, 1 mm steps, ~60 points each), written once to a .tck file.

Each method runs in its own process (peak memory = its max RSS; MRtrix3's over its three commands) and starts from the .tck file:

* ours: ``build_connectomes(path, atlas, weightings=("count", "mean_fa"))`` — one streamed pass
  (end-voxel assignment, arc-length-weighted mean FA per streamline);
* DIPY: ``nibabel`` load, ``values_from_volume`` (FA per point, nearest), per-streamline mean,
  ``connectivity_matrix(..., return_mapping=True)`` and the per-edge mean from the mapping;
* MRtrix3: ``tcksample -stat_tck mean -nointerp`` + ``tck2connectome -assignment_end_voxels``
  twice (count; ``-scale_file -stat_edge mean``), with ``-nthreads``.

Counts are checked equal across the three before the timings are printed.
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
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def make_data(out: Path, n_streamlines: int, seed: int = 0) -> None:
    import nibabel as nib
    import numpy as np

    from pigment_connect.connectome.atlases import load_atlas, load_template
    from pigment_connect.connectome.register import _fa_like

    template = load_template()
    atlas = load_atlas("schaefer200")
    nib.save(nib.Nifti1Image(atlas.labels.astype(np.int32), atlas.affine), out / "nodes.nii.gz")
    atlas.nodes.to_csv(out / "nodes.tsv", sep="\t", index=False)
    nib.save(nib.Nifti1Image(_fa_like(template), template.affine), out / "fa.nii.gz")
    rng = np.random.default_rng(seed)
    labelled = np.argwhere(atlas.labels > 0).astype(np.float64)
    header = (f"mrtrix tracks\npigment_affine: {' '.join(f'{v:.8g}' for v in atlas.affine.ravel())}\n"
              f"pigment_shape: {' '.join(str(s) for s in atlas.labels.shape)}\ndatatype: Float32LE\n"
              f"count: {n_streamlines}\n")
    header_bytes = header.encode()
    offset = len(header_bytes) + len("file: . 0000000000\nEND\n")
    with open(out / "tracks.tck", "wb") as f:
        f.write(header_bytes + f"file: . {offset:010d}\nEND\n".encode())
        done = 0
        while done < n_streamlines:
            batch = min(100_000, n_streamlines - done)
            a = labelled[rng.integers(len(labelled), size=batch)] + rng.uniform(-0.5, 0.5, (batch, 3))
            b = labelled[rng.integers(len(labelled), size=batch)] + rng.uniform(-0.5, 0.5, (batch, 3))
            mid = (a + b) / 2 + rng.normal(0, 8, (batch, 3))
            n_pts = np.clip((np.linalg.norm(b - a, axis=1) * 2).astype(int), 8, 150)  # ~1 mm steps (2 mm voxels)
            chunks = []
            for k in range(batch):
                t = np.linspace(0, 1, n_pts[k])[:, None]
                vox = (1 - t) ** 2 * a[k] + 2 * t * (1 - t) * mid[k] + t**2 * b[k]
                mm = vox @ atlas.affine[:3, :3].T + atlas.affine[:3, 3]
                chunks.append(mm.astype(np.float32))
                chunks.append(np.full((1, 3), np.nan, np.float32))
            f.write(np.concatenate(chunks).tobytes())
            done += batch
        f.write(np.full((1, 3), np.inf, np.float32).tobytes())


def worker(method: str, out: Path) -> None:
    import nibabel as nib
    import numpy as np

    from dipy.tracking.streamline import values_from_volume
    from dipy.tracking.utils import connectivity_matrix

    from pigment_connect.connectome import build_connectomes
    from pigment_connect.io import MicrostructureMaps, Parcellation

    t0 = time.perf_counter()  # imports excluded
    if method == "ours":
        parc = Parcellation.load(out / "nodes.nii.gz", table=out / "nodes.tsv", name="schaefer200")
        fa_img = nib.load(out / "fa.nii.gz")
        maps = MicrostructureMaps({"fa": np.asarray(fa_img.dataobj, np.float32)}, fa_img.affine, "tensor")
        conns = build_connectomes(out / "tracks.tck", parc, weightings=("count", "mean_fa"), maps=maps,
                                  assignment="end_voxel", self_connections=True)
        count, mean_fa = conns["count"].weights, conns["mean_fa"].weights
    else:
        labels_img = nib.load(out / "nodes.nii.gz")
        labels = np.asarray(labels_img.dataobj).astype(np.int64)
        fa = np.asarray(nib.load(out / "fa.nii.gz").dataobj, np.float64)
        streamlines = nib.streamlines.load(str(out / "tracks.tck")).streamlines
        per_point = values_from_volume(fa, streamlines, labels_img.affine)  # linear interpolation
        per_tck = np.array([np.mean(v) for v in per_point])
        matrix, mapping = connectivity_matrix(streamlines, labels_img.affine, labels, symmetric=True,
                                              return_mapping=True, mapping_as_streamlines=False)
        n = int(labels.max())
        count = matrix[1:, 1:].astype(float)
        mean_fa = np.zeros((n + 1, n + 1))
        for (i, j), idx in mapping.items():
            mean_fa[i, j] = mean_fa[j, i] = per_tck[idx].mean()
        mean_fa = mean_fa[1:, 1:]
    seconds = time.perf_counter() - t0
    np.save(out / f"{method}_count.npy", count)
    np.save(out / f"{method}_meanfa.npy", mean_fa)
    print(json.dumps({"seconds": seconds, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--streamlines", type=int, default=1_000_000)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--out", default="/tmp/bench_connectome")
    ap.add_argument("--worker", choices=("ours", "dipy"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    out = Path(args.out)
    if args.worker:
        worker(args.worker, out)
        return
    out.mkdir(parents=True, exist_ok=True)
    stamp = out / f"data_{args.streamlines}.done"
    if not stamp.exists():
        t0 = time.perf_counter()
        make_data(out, args.streamlines)
        stamp.write_text("ok")
        print(f"generated {args.streamlines} streamlines in {time.perf_counter() - t0:.0f} s "
              f"({(out / 'tracks.tck').stat().st_size / 1e9:.2f} GB)")
    env = {**os.environ, **{v: str(args.threads) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                            "NUMBA_NUM_THREADS", "MKL_NUM_THREADS")}}
    rows = []
    if shutil.which("tck2connectome"):  # first, so that the children's peak RSS is MRtrix3's own
        import numpy as np

        nt = ["-nthreads", str(args.threads), "-quiet", "-force"]
        t_total = 0.0
        for cmd in (["tcksample", "tracks.tck", "fa.nii.gz", "fa_tck.txt", "-stat_tck", "mean", "-nointerp", *nt],
                    ["tck2connectome", "tracks.tck", "nodes.nii.gz", "mr_count.csv", "-assignment_end_voxels",
                     "-symmetric", "-keep_unassigned", *nt],
                    ["tck2connectome", "tracks.tck", "nodes.nii.gz", "mr_meanfa.csv", "-assignment_end_voxels",
                     "-symmetric", "-scale_file", "fa_tck.txt", "-stat_edge", "mean", *nt]):
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, cwd=out, capture_output=True, text=True)
            if proc.returncode:
                raise RuntimeError(proc.stderr[-2000:])
            t_total += time.perf_counter() - t0
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
        np.save(out / "mrtrix_count.npy", np.loadtxt(out / "mr_count.csv", delimiter=",")[1:, 1:])
        rows.append(("mrtrix", t_total, t_total, peak))
    for method in ("ours", "dipy"):
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, __file__, "--worker", method, "--out", str(out)], capture_output=True,
                              text=True, env=env)
        wall = time.perf_counter() - t0
        if proc.returncode:
            raise RuntimeError(f"{method} failed: {proc.stderr[-2000:]}")
        report = json.loads(proc.stdout.strip().splitlines()[-1])
        rows.append((method, wall, report["seconds"], report["peak_mb"]))

    import numpy as np

    ours = np.load(out / "ours_count.npy")
    for method in ("dipy", "mrtrix"):
        f = out / f"{method}_count.npy"
        if f.exists():
            ref = np.load(f)
            same = np.array_equal(ours, ref)
            print(f"counts equal to {method}: {same} (total {ours.sum():.0f} vs {ref.sum():.0f})")
    print(f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; threads: {args.threads}; "
          f"{args.streamlines} streamlines; count + mean-FA connectomes, Schaefer-200")
    print(f"{'method':<8} {'wall s':>8} {'compute s':>10} {'peak MB':>9} {'vs ours':>8}")
    base = next(r[1] for r in rows if r[0] == "ours")
    for method, wall, inner, peak in rows:
        print(f"{method:<8} {wall:8.1f} {inner:10.1f} {peak:9.0f} {wall / base:8.1f}")


if __name__ == "__main__":
    from _results import recorded

    with recorded(__file__):
        main()
