"""Connectome counts equal MRtrix3 ``tck2connectome`` (end-point and radial search) and DIPY
``connectivity_matrix`` (end-point) exactly, on the same tractogram and parcellation."""

import shutil
import subprocess

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.filterwarnings("ignore::pigment_connect.errors.PigmentWarning")  # most ends miss the blobs

from pigment_connect.connectome import build_connectomes
from pigment_connect.io import Parcellation, Tractogram

# an oblique, LAS-stored 2 × 2.5 × 3 mm grid, so that voxel ↔ world conventions are exercised
AFFINE = np.array([[-2.0, 0.1, 0.0, 40.0], [0.0, 2.5, 0.2, -30.0], [0.1, 0.0, 3.0, -10.0], [0, 0, 0, 1]])
SHAPE = (24, 20, 12)


@pytest.fixture(scope="module")
def scene():
    rng = np.random.default_rng(11)
    labels = np.zeros(SHAPE, np.int32)
    n_nodes = 14
    centres = rng.uniform([2, 2, 1], np.array(SHAPE) - [3, 3, 2], (n_nodes, 3))
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in SHAPE], indexing="ij"), -1)
    for k, c in enumerate(centres):
        labels[np.linalg.norm(grid - c, axis=-1) < rng.uniform(2.5, 4.0)] = k + 1
    nodes = pd.DataFrame({"index": np.arange(1, n_nodes + 1), "name": [f"r{k + 1}" for k in range(n_nodes)]})
    parc = Parcellation(labels, AFFINE, nodes, "blobs")
    lines = []
    lo, hi = np.array([0.0, 0.0, 0.0]), np.array(SHAPE) - 1.0
    for _ in range(5000):
        a, b = rng.uniform(lo, hi), rng.uniform(lo, hi)
        n = int(rng.integers(3, 12))
        vox = a + (b - a) * np.linspace(0, 1, n)[:, None] + rng.normal(0, 0.3, (n, 3))
        vox = np.clip(vox, 0.0, hi)
        lines.append(vox @ AFFINE[:3, :3].T + AFFINE[:3, 3])
    trk = Tractogram.from_streamlines(lines, affine=AFFINE, shape=SHAPE)
    return parc, trk


def _ours(scene, mode, radius=0.0):
    parc, trk = scene
    return build_connectomes(trk, parc, weightings=("count",), assignment=mode, radius=radius,
                             self_connections=True)["count"].weights


@pytest.mark.skipif(shutil.which("tck2connectome") is None, reason="MRtrix3 tck2connectome not installed")
@pytest.mark.parametrize("mode,radius", [("end_voxel", 0.0), ("radial", 2.0), ("radial", 4.0), ("reverse", 0.0),
                                         ("reverse", 5.0)])
def test_counts_equal_mrtrix3(tmp_path, scene, mode, radius):
    parc, trk = scene
    trk.save(tmp_path / "tracks.tck")
    nib.save(nib.Nifti1Image(parc.labels, AFFINE), tmp_path / "nodes.nii.gz")
    opts = {"end_voxel": ["-assignment_end_voxels"], "radial": ["-assignment_radial_search", str(radius)],
            "reverse": ["-assignment_reverse_search", str(radius)]}[mode]
    subprocess.run(["tck2connectome", "tracks.tck", "nodes.nii.gz", "out.csv", "-symmetric", "-quiet", *opts],
                   cwd=tmp_path, check=True)
    ref = np.loadtxt(tmp_path / "out.csv", delimiter=",")
    ours = _ours(scene, mode, radius)
    assert ref.sum() > 500  # the test exercises many assigned streamlines
    np.testing.assert_array_equal(ours, ref)


def test_counts_equal_dipy_connectivity_matrix(scene):
    from dipy.tracking.utils import connectivity_matrix

    parc, trk = scene
    streamlines = [trk.points[a:b] for a, b in zip(trk.offsets[:-1], trk.offsets[1:])]
    ref = connectivity_matrix(streamlines, AFFINE, parc.labels, symmetric=True)[1:, 1:]
    ours = _ours(scene, "end_voxel")
    assert ref.sum() > 500
    np.testing.assert_array_equal(ours, ref)


def _mrtrix(tmp_path, scene, *opts, out="out.csv"):
    parc, trk = scene
    if not (tmp_path / "tracks.tck").exists():
        trk.save(tmp_path / "tracks.tck")
        nib.save(nib.Nifti1Image(parc.labels, AFFINE), tmp_path / "nodes.nii.gz")
    subprocess.run(["tck2connectome", "tracks.tck", "nodes.nii.gz", out, "-symmetric", "-quiet", "-force",
                    "-assignment_radial_search", "2", *opts], cwd=tmp_path, check=True)
    return np.loadtxt(tmp_path / out, delimiter=",")


@pytest.mark.skipif(shutil.which("tck2connectome") is None, reason="MRtrix3 tck2connectome not installed")
def test_weightings_equal_mrtrix3(tmp_path, scene):
    """invnodevol, mean length, inverse length, SIFT2-style weights and mean FA against
    tck2connectome's -scale_* options (and tcksample -stat_tck mean -nointerp for FA)."""
    from pigment_connect.io import MicrostructureMaps

    parc, trk = scene
    rng = np.random.default_rng(5)
    fa = rng.uniform(0.1, 0.9, SHAPE).astype(np.float32)
    maps = MicrostructureMaps({"fa": fa}, AFFINE, "tensor")
    weights = rng.uniform(0.2, 3.0, len(trk))
    np.savetxt(tmp_path / "weights.txt", weights[None, :], fmt="%.9g")
    ours = build_connectomes(trk, parc, weightings=("count", "invnodevol", "length", "invlength", "mean_fa"),
                             maps=maps, assignment="radial", radius=2.0, self_connections=True)
    np.testing.assert_allclose(ours["invnodevol"].weights, _mrtrix(tmp_path, scene, "-scale_invnodevol"), rtol=1e-5)
    np.testing.assert_allclose(ours["length"].weights,
                               _mrtrix(tmp_path, scene, "-scale_length", "-stat_edge", "mean"), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ours["invlength"].weights, _mrtrix(tmp_path, scene, "-scale_invlength"), rtol=1e-5)
    nib.save(nib.Nifti1Image(fa, AFFINE), tmp_path / "fa.nii.gz")
    subprocess.run(["tcksample", "tracks.tck", "fa.nii.gz", "fa_per_tck.txt", "-stat_tck", "mean", "-nointerp",
                    "-quiet"], cwd=tmp_path, check=True)
    ref_fa = _mrtrix(tmp_path, scene, "-scale_file", "fa_per_tck.txt", "-stat_edge", "mean")
    np.testing.assert_allclose(ours["mean_fa"].weights, ref_fa, rtol=1e-5, atol=1e-6)
    weighted = build_connectomes(trk, parc, weightings=("count",), streamline_weights=tmp_path / "weights.txt",
                                 assignment="radial", radius=2.0, self_connections=True)["count"]
    np.testing.assert_allclose(weighted.weights, _mrtrix(tmp_path, scene, "-tck_weights_in", "weights.txt"),
                               rtol=1e-5)
