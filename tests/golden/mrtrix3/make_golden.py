"""Regenerate the golden MRtrix3 outputs in this folder (needs MRtrix3 on PATH).

    python tests/golden/mrtrix3/make_golden.py [--shared ../shared/data]

The inputs are written here first (a seeded scene, a seeded cohort), then each MRtrix3 command is
run on them and its output kept beside them. ``MANIFEST.json`` records, for every output, the
exact command, the MRtrix3 version and the sha256 of its inputs, so that the agreement tests
(``tests/connectome/test_peer_agreement.py``, ``tests/graph/test_group.py``,
``tests/track/test_tracker.py``) compare against MRtrix3 on every machine, and re-run the same
command live where MRtrix3 is installed. The SIFT phantom outputs need ``../shared/data``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent

# an oblique, LAS-stored 2 × 2.5 × 3 mm grid, so that voxel ↔ world conventions are exercised
AFFINE = np.array([[-2.0, 0.1, 0.0, 40.0], [0.0, 2.5, 0.2, -30.0], [0.1, 0.0, 3.0, -10.0], [0, 0, 0, 1]])
SHAPE = (24, 20, 12)

# tck2connectome runs on the scene: name → options (all with -symmetric)
CONNECTOME_RUNS = {
    "count_end_voxel": ["-assignment_end_voxels"],
    "count_radial2": ["-assignment_radial_search", "2"],
    "count_radial4": ["-assignment_radial_search", "4"],
    "count_reverse0": ["-assignment_reverse_search", "0"],
    "count_reverse5": ["-assignment_reverse_search", "5"],
    "invnodevol_radial2": ["-assignment_radial_search", "2", "-scale_invnodevol"],
    "length_radial2": ["-assignment_radial_search", "2", "-scale_length", "-stat_edge", "mean"],
    "invlength_radial2": ["-assignment_radial_search", "2", "-scale_invlength"],
    "meanfa_radial2": ["-assignment_radial_search", "2", "-scale_file", "scene_fa_per_tck.txt", "-stat_edge", "mean"],
    "weighted_radial2": ["-assignment_radial_search", "2", "-tck_weights_in", "scene_weights.txt"],
}
SIFT_RUNS = {"end_voxel": ["-assignment_end_voxels"], "radial2": []}  # tck2connectome's default: radial 2 mm
STATS_THRESHOLD = 2.5


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def mrtrix_version() -> str:
    out = subprocess.run(["tck2connectome", "-version"], capture_output=True, text=True, check=True).stdout
    return out.splitlines()[0].strip("= ").strip()


def write_scene() -> None:
    """Blob parcellation (14 nodes), 3000 noisy straight streamlines, an FA map and SIFT2-style
    weights; and 200 smooth, densely sampled arcs for the track-density image."""
    from pigment_connect.io import Tractogram

    rng = np.random.default_rng(11)
    labels = np.zeros(SHAPE, np.int16)
    n_nodes = 14
    centres = rng.uniform([2, 2, 1], np.array(SHAPE) - [3, 3, 2], (n_nodes, 3))
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in SHAPE], indexing="ij"), -1)
    for k, c in enumerate(centres):
        labels[np.linalg.norm(grid - c, axis=-1) < rng.uniform(3.0, 4.5)] = k + 1
    nib.save(nib.Nifti1Image(labels, AFFINE), HERE / "scene_nodes.nii.gz")
    pd.DataFrame({"index": np.arange(1, n_nodes + 1), "name": [f"r{k + 1}" for k in range(n_nodes)]}).to_csv(
        HERE / "scene_nodes.tsv", sep="\t", index=False)
    lines = []
    hi = np.array(SHAPE) - 1.0
    for _ in range(3000):
        a, b = rng.uniform(0.0, hi), rng.uniform(0.0, hi)
        n = int(rng.integers(3, 12))
        vox = np.clip(a + (b - a) * np.linspace(0, 1, n)[:, None] + rng.normal(0, 0.3, (n, 3)), 0.0, hi)
        lines.append(vox @ AFFINE[:3, :3].T + AFFINE[:3, 3])
    Tractogram.from_streamlines(lines, affine=AFFINE, shape=SHAPE).save(HERE / "scene_tracks.tck")
    fa = rng.uniform(0.1, 0.9, SHAPE).astype(np.float32)
    nib.save(nib.Nifti1Image(fa, AFFINE), HERE / "scene_fa.nii.gz")
    np.savetxt(HERE / "scene_weights.txt", rng.uniform(0.2, 3.0, len(lines))[None, :], fmt="%.9g")
    arcs = []
    for _ in range(200):  # arcs of a circle, 0.2 voxel apart: Hermite and linear upsampling coincide
        centre = rng.uniform([6, 5, 3], hi - [6, 5, 3])
        radius = rng.uniform(2.0, 5.0)
        u, v = np.linalg.qr(rng.normal(size=(3, 2)))[0].T
        t = np.arange(0.0, rng.uniform(1.0, 3.0), 0.2 / radius)
        vox = centre + radius * (np.cos(t)[:, None] * u + np.sin(t)[:, None] * v)
        arcs.append(np.clip(vox, 0.0, hi) @ AFFINE[:3, :3].T + AFFINE[:3, 3])
    Tractogram.from_streamlines(arcs, affine=AFFINE, shape=SHAPE).save(HERE / "tdi_tracks.tck")


def write_cohort() -> None:
    """A seeded two-group cohort (20 nodes, 12 + 12 scans), its design, contrast and relabellings."""
    from pigment_connect.datasets import make_connectome_cohort
    from pigment_connect.graph import group, nbs

    cohort = make_connectome_cohort(n_per_group=12, n_nodes=20, seed=3)
    design = group.make_design(cohort.table, ("group", "patient", "control"), covariates=("age", "site"))
    np.savez_compressed(HERE / "stats_inputs.npz", stack=cohort.stack, design=design.matrix,
                        contrast=design.contrast, relabellings=nbs.permutations(design, 200, seed=4))


def run(cmd: list[str], cwd: Path) -> None:
    subprocess.run(cmd, cwd=cwd, check=True)


def make_connectome_goldens(manifest: dict) -> None:
    work = Path(tempfile.mkdtemp())
    for name in ("scene_tracks.tck", "scene_nodes.nii.gz", "scene_fa.nii.gz", "scene_weights.txt"):
        shutil.copy(HERE / name, work / name)
    cmd = ["tcksample", "scene_tracks.tck", "scene_fa.nii.gz", "scene_fa_per_tck.txt", "-stat_tck", "mean",
           "-nointerp", "-quiet"]
    run(cmd, work)
    shutil.copy(work / "scene_fa_per_tck.txt", HERE / "scene_fa_per_tck.txt")
    manifest["scene_fa_per_tck.txt"] = {"command": cmd, "inputs": ["scene_tracks.tck", "scene_fa.nii.gz"]}
    for name, opts in CONNECTOME_RUNS.items():
        out = f"scene_{name}.csv"
        cmd = ["tck2connectome", "scene_tracks.tck", "scene_nodes.nii.gz", out, "-symmetric",
               "-quiet", *opts]
        run(cmd, work)
        shutil.copy(work / out, HERE / out)
        inputs = ["scene_tracks.tck", "scene_nodes.nii.gz"] + [o for o in opts if o.startswith("scene_")]
        manifest[out] = {"command": cmd, "inputs": inputs}


def make_sift_goldens(manifest: dict, shared: Path) -> None:
    sift = shared / "phantom_mrtrix3_sift"
    if not sift.is_dir():
        print(f"skipping the SIFT phantom: {sift} not found")
        return
    work = Path(tempfile.mkdtemp())
    inputs = ["phantom_mrtrix3_sift/tracks.tck", "phantom_mrtrix3_sift/parc.nii.gz"]
    for item in inputs:
        shutil.copy(shared / item, work / Path(item).name)
    for name, opts in SIFT_RUNS.items():
        out, assignments = f"sift_{name}.csv", f"sift_{name}_assignments.csv"
        cmd = ["tck2connectome", "tracks.tck", "parc.nii.gz", out, "-out_assignments", assignments, "-quiet", *opts]
        run(cmd, work)
        for f in (out, assignments):
            shutil.copy(work / f, HERE / f)
            manifest[f] = {"command": cmd, "inputs": inputs, "inputs_in": "../shared/data",
                           "input_sha256": {item: sha256(shared / item) for item in inputs}}


def write_connectomestats_inputs(workdir: Path) -> None:
    """``list.txt`` (one CSV per scan), ``design.txt``, ``contrast.txt`` and ``perms.txt`` (one
    relabelling per column) in ``workdir``, from ``stats_inputs.npz``."""
    with np.load(HERE / "stats_inputs.npz") as z:
        stack, design, contrast, perms = z["stack"], z["design"], z["contrast"], z["relabellings"]
    names = []
    for k, w in enumerate(stack):
        names.append(f"c{k:02d}.csv")
        np.savetxt(workdir / names[-1], w, delimiter=",", fmt="%.17g")
    (workdir / "list.txt").write_text("\n".join(names) + "\n")
    np.savetxt(workdir / "design.txt", design, fmt="%.17g")
    np.savetxt(workdir / "contrast.txt", contrast, fmt="%.17g")
    np.savetxt(workdir / "perms.txt", perms.T, fmt="%d")


STATS_OUTPUTS = ("tvalue.csv", "enhanced.csv", "fwe_1mpvalue.csv", "null_dist.txt")


def connectomestats_command(algo: str) -> list[str]:
    return (["connectomestats", "list.txt", algo, "design.txt", "contrast.txt", f"stats_{algo}_",
             "-permutations", "perms.txt", "-quiet"] + (["-threshold", str(STATS_THRESHOLD)] if algo == "nbs" else []))


def make_stats_goldens(manifest: dict) -> None:
    for algo in ("nbs", "tfnbs"):  # a folder each: MRtrix3 3.0.3 writes abs_effect.csv etc. without the prefix
        work = Path(tempfile.mkdtemp())
        write_connectomestats_inputs(work)
        cmd = connectomestats_command(algo)
        run(cmd, work)
        for f in STATS_OUTPUTS:
            target = f"stats_{algo}_{f}"
            shutil.copy(work / target, HERE / target)
            manifest[target] = {"command": cmd, "inputs": ["stats_inputs.npz"],
                                "note": "the command's text inputs are written from stats_inputs.npz by "
                                        "write_connectomestats_inputs()"}


def make_tdi_golden(manifest: dict) -> None:
    work = Path(tempfile.mkdtemp())
    for name in ("tdi_tracks.tck", "scene_nodes.nii.gz"):
        shutil.copy(HERE / name, work / name)
    cmd = ["tckmap", "tdi_tracks.tck", "tdi_tckmap.nii.gz", "-template", "scene_nodes.nii.gz", "-quiet"]
    run(cmd, work)
    shutil.copy(work / "tdi_tckmap.nii.gz", HERE / "tdi_tckmap.nii.gz")
    manifest["tdi_tckmap.nii.gz"] = {"command": cmd, "inputs": ["tdi_tracks.tck", "scene_nodes.nii.gz"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", default=str(HERE.parents[2].parent / "shared" / "data"))
    args = parser.parse_args()
    write_scene()
    write_cohort()
    manifest: dict = {}
    make_connectome_goldens(manifest)
    make_sift_goldens(manifest, Path(args.shared))
    make_stats_goldens(manifest)
    make_tdi_golden(manifest)
    for entry in manifest.values():
        if "input_sha256" not in entry:
            entry["input_sha256"] = {name: sha256(HERE / name) for name in entry["inputs"]}
    (HERE / "MANIFEST.json").write_text(json.dumps(
        {"mrtrix3": mrtrix_version(), "made": dt.date.today().isoformat(), "outputs": manifest}, indent=1) + "\n")
    print(f"{len(manifest)} golden outputs written to {HERE}")


if __name__ == "__main__":
    main()
