"""Connectome construction: pigment_connect vs DIPY and MRtrix3, count + mean-FA connectomes.

    python benchmarks/bench_connectome.py [--streamlines 1000000] [--threads 2] [--out /tmp/bench_connectome]
    python benchmarks/bench_connectome.py --one-pass   # 3 atlases × 5 weightings vs 15 tck2connectome calls

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

``--one-pass``: the same streamlines into Schaefer-100, -200 and -400 × count, invnodevol, length,
invlength and mean FA: ours in one ``build_connectomes`` call (one pass over the file), MRtrix3 in
one ``tcksample`` and 15 ``tck2connectome`` calls (``-scale_invnodevol``, ``-scale_length
-stat_edge mean``, ``-scale_invlength``, ``-scale_file -stat_edge mean``), end-voxel assignment;
every matrix is compared (counts exactly, the others to 1e-4 relative).
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


ONE_PASS_ATLASES = ("schaefer100", "schaefer200", "schaefer400")
ONE_PASS_WEIGHTINGS = ("count", "invnodevol", "length", "invlength", "mean_fa")
_MRTRIX_SCALE = {"count": [], "invnodevol": ["-scale_invnodevol"], "length": ["-scale_length", "-stat_edge", "mean"],
                 "invlength": ["-scale_invlength"], "mean_fa": ["-scale_file", "fa_tck.txt", "-stat_edge", "mean"]}


def one_pass_worker(out: Path) -> None:
    import nibabel as nib
    import numpy as np

    from pigment_connect.connectome import build_connectomes
    from pigment_connect.connectome.atlases import load_atlas
    from pigment_connect.io import MicrostructureMaps

    t0 = time.perf_counter()
    parcs = [load_atlas(name) for name in ONE_PASS_ATLASES]
    fa_img = nib.load(out / "fa.nii.gz")
    maps = MicrostructureMaps({"fa": np.asarray(fa_img.dataobj, np.float32)}, fa_img.affine, "tensor")
    conns = build_connectomes(out / "tracks.tck", parcs, weightings=ONE_PASS_WEIGHTINGS, maps=maps,
                              assignment="end_voxel", self_connections=True)
    seconds = time.perf_counter() - t0
    for atlas, by_weighting in conns.items():
        for w, c in by_weighting.items():
            np.save(out / f"ours_{atlas}_{w}.npy", c.weights)
    print(json.dumps({"seconds": seconds, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}))


def one_pass(out: Path, threads: int, env: dict) -> None:
    import nibabel as nib
    import numpy as np

    from pigment_connect.connectome.atlases import load_atlas

    for name in ONE_PASS_ATLASES:
        atlas = load_atlas(name)
        nib.save(nib.Nifti1Image(atlas.labels.astype(np.int32), atlas.affine), out / f"{name}.nii.gz")
    nt = ["-nthreads", str(threads), "-quiet", "-force"]
    n_calls, t_mrtrix = 0, 0.0
    if shutil.which("tck2connectome"):
        commands = [["tcksample", "tracks.tck", "fa.nii.gz", "fa_tck.txt", "-stat_tck", "mean", "-nointerp", *nt]]
        for name in ONE_PASS_ATLASES:
            for w in ONE_PASS_WEIGHTINGS:
                commands.append(["tck2connectome", "tracks.tck", f"{name}.nii.gz", f"mr_{name}_{w}.csv",
                                 "-assignment_end_voxels", "-symmetric", *_MRTRIX_SCALE[w], *nt])
        for cmd in commands:
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, cwd=out, capture_output=True, text=True)
            if proc.returncode:
                raise RuntimeError(proc.stderr[-2000:])
            t_mrtrix += time.perf_counter() - t0
        n_calls = len(commands)
    mrtrix_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0  # before ours runs
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--worker", "one_pass", "--out", str(out)], capture_output=True,
                          text=True, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise RuntimeError(f"ours failed: {proc.stderr[-2000:]}")
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"{len(ONE_PASS_ATLASES)} atlases × {len(ONE_PASS_WEIGHTINGS)} weightings ({', '.join(ONE_PASS_WEIGHTINGS)}), "
          f"{threads} threads")
    if n_calls:
        worst = 0.0
        for name in ONE_PASS_ATLASES:
            for w in ONE_PASS_WEIGHTINGS:
                ours = np.load(out / f"ours_{name}_{w}.npy")
                theirs = np.loadtxt(out / f"mr_{name}_{w}.csv", delimiter=",")
                if w == "count":
                    assert np.array_equal(ours, theirs), f"{name} counts differ"
                else:
                    nz = theirs != 0
                    worst = max(worst, float(np.max(np.abs(ours[nz] - theirs[nz]) / np.abs(theirs[nz]))))
        print(f"counts identical to MRtrix3 for all {len(ONE_PASS_ATLASES)} atlases; other weightings' largest "
              f"relative difference {worst:.1e}")
    print(f"| method | wall s (process start to matrices) | peak MB |\n|---|---|---|\n"
          f"| ours, one build_connectomes call | {wall:.1f} (of which the pass {report['seconds']:.1f}) | "
          f"{report['peak_mb']:.0f} |")
    if n_calls:
        print(f"| MRtrix3, {n_calls} commands (1 tcksample + {n_calls - 1} tck2connectome) | {t_mrtrix:.1f} | "
              f"{mrtrix_peak:.0f} (largest command) |")
        print(f"\nMRtrix3 / ours: {t_mrtrix / wall:.1f}×")


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
    ap.add_argument("--one-pass", action="store_true", help="3 atlases × 5 weightings, ours vs MRtrix3")
    ap.add_argument("--worker", choices=("ours", "dipy", "one_pass"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    out = Path(args.out)
    if args.worker == "one_pass":
        one_pass_worker(out)
        return
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
    if args.one_pass:
        one_pass(out, args.threads, env)
        return
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
