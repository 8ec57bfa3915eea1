"""Voxel-wise fit throughput and agreement: pigment_connect vs DIPY, MRtrix3 and AMICO.

    python benchmarks/bench_fit.py [--threads 1] [--device cpu] [--out /tmp/bench_fit]

Data: the real 3-shell slab in ../shared/data/dwi_mdt_b1k_b2k (b = 0/1000/2000, 103 volumes,
8 865 brain voxels). DTI runs on that volume tiled 12× along z (≈ 106 k voxels) so that the fastest
fits run long enough to time; DKI on the slab itself; NODDI on the slab tiled 4× (≈ 35 k voxels,
several of our chunks, so that one-time costs such as the first large allocations weigh as they
do in a whole brain; AMICO fits the same tiled volume). Every method runs in its own
process with the same thread count (torch/BLAS/numba/MRtrix3 ``-nthreads``), which also gives its
peak memory (max RSS). Agreement is the median absolute difference to the peer's map inside the
mask (FA/MD for DTI, MK for DKI, NDI/ODI/FWF for NODDI). Ratios are ours/peer in the same run.

Peers: DIPY (``TensorModel`` WLS, ``DiffusionKurtosisModel`` WLS), MRtrix3 ``dwi2tensor``
(Debian package ``mrtrix3``; timed as a command, so its time includes reading and writing the
images), AMICO NODDI (``dmri-amico``; kernel generation timed separately). A missing peer is
reported and skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data" / "dwi_mdt_b1k_b2k"
STEM = "b1k_b2k_example_slices_24_38"
DTI_TILES = 12
NODDI_TILES = 4


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def prepare(out: Path) -> None:
    """Write the slab (negatives clipped) and its tiled copies with the shared mask and FSL files."""
    import nibabel as nib

    img = nib.load(DATA / f"{STEM}.nii.gz")
    data = np.clip(np.asarray(img.dataobj, dtype=np.float32), 0, None)
    mask = np.asarray(nib.load(DATA / f"{STEM}_mask.nii.gz").dataobj) > 0
    volumes = [("slab", data, mask)] + [(name, np.tile(data, (1, 1, n, 1)), np.tile(mask, (1, 1, n)))
                                        for name, n in (("tiled", DTI_TILES), ("noddi", NODDI_TILES))]
    for name, arr, m in volumes:
        nib.save(nib.Nifti1Image(arr, img.affine), out / f"{name}.nii.gz")
        nib.save(nib.Nifti1Image(m.astype(np.uint8), img.affine), out / f"{name}_mask.nii.gz")
        shutil.copy(DATA / "b1k_b2k.bval", out / f"{name}.bval")
        shutil.copy(DATA / "b1k_b2k.bvec", out / f"{name}.bvec")


def _load_ours(out: Path, name: str):
    from pigment_connect import load_dwi

    return load_dwi(out / f"{name}.nii.gz", mask=out / f"{name}_mask.nii.gz")


def _dipy_inputs(out: Path, name: str):
    import nibabel as nib
    from dipy.core.gradients import gradient_table
    from dipy.io.gradients import read_bvals_bvecs

    bvals, bvecs = read_bvals_bvecs(str(out / f"{name}.bval"), str(out / f"{name}.bvec"))
    data = np.asarray(nib.load(out / f"{name}.nii.gz").dataobj)
    mask = np.asarray(nib.load(out / f"{name}_mask.nii.gz").dataobj) > 0
    return data, mask, gradient_table(bvals, bvecs=bvecs, b0_threshold=50)


def worker(method: str, out: Path, device: str) -> dict:
    """Run one method; returns {seconds, voxels, peak_mb, maps file}."""
    import torch

    torch.set_num_threads(int(os.environ["BENCH_THREADS"]))
    result: dict = {"method": method}
    maps: dict[str, np.ndarray] = {}
    if method.startswith("ours_"):
        from pigment_connect.fit import DiffusionKurtosisModel, NoddiModel, TensorModel

        kind = method.split("_")[1]
        dwi = _load_ours(out, {"dti": "tiled", "dki": "slab", "noddi": "noddi"}[kind])
        model = {"dti": lambda g: TensorModel(g, device=device),
                 "dki": lambda g: DiffusionKurtosisModel(g, device=device),
                 "noddi": lambda g: NoddiModel(g, device=device)}[kind](dwi.gtab)
        small = dwi.data[dwi.mask][:64]
        model.fit(small)  # warm-up: imports, caches, CUDA context
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fit = model.fit(dwi)
        if kind == "dti":
            maps = {"fa": fit.fa[dwi.mask], "md": fit.md[dwi.mask]}
        elif kind == "dki":
            maps = {"mk": fit.mk[dwi.mask], "md": fit.md[dwi.mask]}
        else:
            maps = {k: getattr(fit, k)[dwi.mask] for k in ("ndi", "odi", "fwf")}
        result["seconds"] = time.perf_counter() - t0
        result["voxels"] = int(dwi.mask.sum())
    elif method == "dipy_dti":
        from dipy.reconst.dti import TensorModel

        data, mask, gtab = _dipy_inputs(out, "tiled")
        t0 = time.perf_counter()
        fit = TensorModel(gtab, fit_method="WLS").fit(data, mask=mask)
        maps = {"fa": fit.fa[mask], "md": fit.md[mask]}
        result["seconds"], result["voxels"] = time.perf_counter() - t0, int(mask.sum())
    elif method == "dipy_dki":
        from dipy.reconst.dki import DiffusionKurtosisModel

        data, mask, gtab = _dipy_inputs(out, "slab")
        t0 = time.perf_counter()
        fit = DiffusionKurtosisModel(gtab, fit_method="WLS").fit(data, mask=mask)
        maps = {"mk": fit.mk(max_kurtosis=10)[mask], "md": fit.md[mask]}
        result["seconds"], result["voxels"] = time.perf_counter() - t0, int(mask.sum())
    elif method == "amico_noddi":
        import amico
        import nibabel as nib

        scheme = str(out / "noddi.scheme")
        amico.util.fsl2scheme(str(out / "noddi.bval"), str(out / "noddi.bvec"), scheme)
        ae = amico.Evaluation(study_path=str(out), output_path=str(out / "amico"))  # kernels under out/
        ae.set_config("nthreads", int(os.environ["BENCH_THREADS"]))
        ae.set_config("BLAS_nthreads", int(os.environ["BENCH_THREADS"]))
        ae.load_data(str(out / "noddi.nii.gz"), scheme, mask_filename=str(out / "noddi_mask.nii.gz"), b0_thr=50)
        ae.set_model("NODDI")
        t0 = time.perf_counter()
        ae.generate_kernels(regenerate=False)
        ae.load_kernels()
        result["kernel_seconds"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        ae.fit()
        result["seconds"] = time.perf_counter() - t0
        ae.save_results()
        mask = np.asarray(nib.load(out / "noddi_mask.nii.gz").dataobj) > 0
        res = out / "amico"
        pick = lambda n: np.asarray(nib.load(next(res.glob(f"fit_{n}*.nii.gz"))).dataobj)[mask]  # noqa: E731
        maps = {"ndi": pick("NDI"), "odi": pick("ODI"), "fwf": pick("FWF")}
        result["voxels"] = int(mask.sum())
    else:
        raise SystemExit(f"unknown method {method}")
    np.savez(out / f"{method}.npz", **maps)
    result["peak_mb"] = peak_mb()
    return result


def run_mrtrix(out: Path, threads: int) -> dict | None:
    if shutil.which("dwi2tensor") is None:
        return None
    cmd = ["dwi2tensor", str(out / "tiled.nii.gz"), str(out / "mrtrix_dt.nii.gz"), "-fslgrad", str(out / "tiled.bvec"),
           str(out / "tiled.bval"), "-mask", str(out / "tiled_mask.nii.gz"), "-nthreads", str(threads), "-force",
           "-quiet"]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    seconds = time.perf_counter() - t0
    import nibabel as nib

    mask = np.asarray(nib.load(out / "tiled_mask.nii.gz").dataobj) > 0
    return {"method": "mrtrix_dti", "seconds": seconds, "voxels": int(mask.sum()),
            "peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0}


def spawn(method: str, out: Path, threads: int, device: str) -> dict | None:
    env = dict(os.environ, BENCH_THREADS=str(threads), OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               OPENBLAS_NUM_THREADS=str(threads), NUMBA_NUM_THREADS=str(threads))
    proc = subprocess.run([sys.executable, __file__, "--worker", method, "--out", str(out), "--device", device],
                          env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"  {method}: failed ({proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode})")
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def agreement(out: Path, ours: str, peer: str, names: tuple[str, ...]) -> str:
    a, b = np.load(out / f"{ours}.npz"), np.load(out / f"{peer}.npz")
    parts = []
    for n in names:
        ok = np.isfinite(a[n]) & np.isfinite(b[n])
        parts.append(f"{n} {np.median(np.abs(a[n][ok] - b[n][ok])):.2e}")
    return "median |Δ| " + ", ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (ours only)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench_fit"))
    parser.add_argument("--skip", nargs="*", default=[], help="methods to skip, e.g. amico_noddi")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.out, args.device)))
        return
    if not DATA.is_dir():
        raise SystemExit(f"{DATA} not found: the benchmark needs ../shared/data beside the repository.")
    args.out.mkdir(parents=True, exist_ok=True)
    prepare(args.out)
    print(f"bench_fit: {args.threads} thread(s), ours on {args.device}; machine: {os.cpu_count()} CPUs")
    results = {}
    if "mrtrix_dti" not in args.skip:  # first: its peak memory is read from RUSAGE_CHILDREN
        results["mrtrix_dti"] = run_mrtrix(args.out, args.threads)
    for method in ("ours_dti", "dipy_dti", "ours_dki", "dipy_dki", "ours_noddi", "amico_noddi"):
        if method in args.skip:
            continue
        results[method] = spawn(method, args.out, args.threads, args.device)
    print(f"{'method':<14}{'voxels':>9}{'seconds':>10}{'voxels/s':>12}{'peak MB':>10}")
    for name, r in results.items():
        if r is None:
            print(f"{name:<14}  (not available)")
            continue
        extra = f"  (+{r['kernel_seconds']:.1f} s kernels)" if "kernel_seconds" in r else ""
        print(f"{name:<14}{r['voxels']:>9}{r['seconds']:>10.3f}{r['voxels'] / r['seconds']:>12.0f}{r['peak_mb']:>10.0f}{extra}")
    print("ratios (ours / peer, voxels per second) and agreement:")
    pairs = (("ours_dti", "dipy_dti", ("fa", "md")), ("ours_dti", "mrtrix_dti", ()), ("ours_dki", "dipy_dki", ("mk", "md")),
             ("ours_noddi", "amico_noddi", ("ndi", "odi", "fwf")))
    for ours, peer, names in pairs:
        if results.get(ours) and results.get(peer):
            ratio = (results[ours]["voxels"] / results[ours]["seconds"]) / (results[peer]["voxels"] / results[peer]["seconds"])
            agree = agreement(args.out, ours, peer, names) if names else ""
            print(f"  {ours} / {peer}: {ratio:.2f}×  {agree}")


if __name__ == "__main__":
    from _results import recorded

    with recorded(__file__):
        main()
