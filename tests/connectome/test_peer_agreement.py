"""Connectomes equal MRtrix3 ``tck2connectome`` (end-point, radial and reverse search; every
-scale_* weighting; SIFT2-style weights) and DIPY ``connectivity_matrix`` exactly, on the same
tractogram and parcellation.

MRtrix3's outputs are committed (``tests/golden/mrtrix3``, with the command and version that made
them), so the comparison runs on every machine; where MRtrix3 is installed the same commands are
also re-run live and must reproduce the committed files."""

import hashlib
import shutil

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.filterwarnings("ignore::pigment_connect.errors.PigmentWarning")  # most ends miss the blobs

from pigment_connect.connectome import build_connectomes
from pigment_connect.io import MicrostructureMaps, Parcellation, Tractogram

COUNTS = {"count_end_voxel": ("end_voxel", 0.0), "count_radial2": ("radial", 2.0), "count_radial4": ("radial", 4.0),
          "count_reverse0": ("reverse", 0.0), "count_reverse5": ("reverse", 5.0)}
WEIGHTINGS = {"invnodevol_radial2": "invnodevol", "length_radial2": "length", "invlength_radial2": "invlength",
              "meanfa_radial2": "mean_fa"}
HAS_MRTRIX3 = shutil.which("tck2connectome") is not None


@pytest.fixture(scope="module")
def scene(mrtrix3_golden):
    """The inputs MRtrix3 read: 14 blob nodes on an oblique LAS grid, 3000 streamlines."""
    g = mrtrix3_golden
    parc = Parcellation.load(g.path("scene_nodes.nii.gz"), table=g.path("scene_nodes.tsv"), name="blobs")
    return parc, Tractogram.load(g.path("scene_tracks.tck"))


def test_golden_inputs_are_the_files_mrtrix3_read(mrtrix3_golden):
    for name, entry in mrtrix3_golden.outputs.items():
        if "inputs_in" in entry:
            continue  # ../shared/data inputs: checked by the SIFT phantom test
        for item, digest in entry["input_sha256"].items():
            assert hashlib.sha256(mrtrix3_golden.path(item).read_bytes()).hexdigest() == digest, (name, item)
    assert mrtrix3_golden.version.endswith("3.0.3")


def _ours(scene, weightings, mode="radial", radius=2.0, **options):
    parc, trk = scene
    return build_connectomes(trk, parc, weightings=weightings, assignment=mode, radius=radius,
                             self_connections=True, **options)


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_counts_equal_mrtrix3(scene, mrtrix3_golden, name):
    mode, radius = COUNTS[name]
    ref = mrtrix3_golden.csv(f"scene_{name}.csv")
    assert ref.sum() > 500  # many assigned streamlines
    np.testing.assert_array_equal(_ours(scene, ("count",), mode, radius)["count"].weights, ref)


def test_weightings_equal_mrtrix3(scene, mrtrix3_golden):
    """invnodevol, mean length, inverse length and mean FA (``tcksample -stat_tck mean -nointerp``
    then ``-scale_file``) against tck2connectome's -scale_* options; SIFT2-style weights."""
    g = mrtrix3_golden
    fa = nib.load(g.path("scene_fa.nii.gz"))
    maps = MicrostructureMaps({"fa": np.asarray(fa.dataobj)}, fa.affine, "tensor")
    ours = _ours(scene, tuple(WEIGHTINGS.values()), maps=maps)
    for name, weighting in WEIGHTINGS.items():
        np.testing.assert_allclose(ours[weighting].weights, g.csv(f"scene_{name}.csv"), rtol=1e-5, atol=1e-6,
                                   err_msg=name)
    weighted = _ours(scene, ("count",), streamline_weights=g.path("scene_weights.txt"))["count"]
    np.testing.assert_allclose(weighted.weights, g.csv("scene_weighted_radial2.csv"), rtol=1e-5)


def test_counts_equal_dipy_connectivity_matrix(scene):
    from dipy.tracking.utils import connectivity_matrix

    parc, trk = scene
    streamlines = [trk.points[a:b] for a, b in zip(trk.offsets[:-1], trk.offsets[1:])]
    ref = connectivity_matrix(streamlines, parc.affine, parc.labels, symmetric=True)[1:, 1:]
    assert ref.sum() > 500
    np.testing.assert_array_equal(_ours(scene, ("count",), "end_voxel")["count"].weights, ref)


@pytest.mark.parametrize("mode,name", [("end_voxel", "end_voxel"), ("radial", "radial2")])
def test_sift_phantom_equals_mrtrix3(shared_data, mrtrix3_golden, mode, name):
    """MRtrix3's own test phantom (5000 ACT streamlines, 4 nodes): the connectome and every
    streamline's pair of nodes, in end-point and radial (tck2connectome's default) modes."""
    from pigment_connect.connectome.assign import assign_endpoints

    sift = shared_data / "phantom_mrtrix3_sift"
    g = mrtrix3_golden
    for item, digest in g.outputs[f"sift_{name}.csv"]["input_sha256"].items():
        assert hashlib.sha256((shared_data / item).read_bytes()).hexdigest() == digest, item
    parc_img = nib.load(sift / "parc.nii.gz")
    labels = np.asarray(parc_img.dataobj).astype(np.int32)
    parc = Parcellation(labels, parc_img.affine, pd.DataFrame({"index": [1, 2, 3, 4], "name": list("abcd")}), "sift")
    trk = Tractogram.load(sift / "tracks.tck", reference=(labels.shape, parc_img.affine))
    ours = build_connectomes(trk, parc, assignment=mode, radius=2.0, self_connections=True)["count"].weights
    ref = g.csv(f"sift_{name}.csv")  # upper triangle, as tck2connectome writes without -symmetric
    np.testing.assert_array_equal(np.triu(ours), ref)
    if mode == "radial":  # MRtrix3's reference answer in its own test data
        np.testing.assert_array_equal(ref, np.loadtxt(sift / "tck2connectome_reference_out.csv"))
    pairs = assign_endpoints(trk, parc, mode=mode, radius=2.0)
    np.testing.assert_array_equal(pairs, np.loadtxt(g.path(f"sift_{name}_assignments.csv"), dtype=np.int32))


@pytest.mark.skipif(not HAS_MRTRIX3, reason="MRtrix3 not installed: the committed outputs are compared instead")
@pytest.mark.parametrize("name", sorted({**COUNTS, **WEIGHTINGS, "weighted_radial2": None}))
def test_mrtrix3_here_reproduces_the_committed_outputs(tmp_path, mrtrix3_golden, name):
    live = mrtrix3_golden.rerun(f"scene_{name}.csv", tmp_path)
    np.testing.assert_allclose(np.loadtxt(live, delimiter=","), mrtrix3_golden.csv(f"scene_{name}.csv"),
                               rtol=1e-6, atol=1e-9)


@pytest.mark.skipif(not HAS_MRTRIX3, reason="MRtrix3 not installed: the committed outputs are compared instead")
def test_mrtrix3_here_reproduces_the_sift_phantom_outputs(tmp_path, shared_data, mrtrix3_golden):
    for name in ("sift_end_voxel.csv", "sift_radial2.csv"):
        np.testing.assert_array_equal(np.loadtxt(mrtrix3_golden.rerun(name, tmp_path), delimiter=","),
                                      mrtrix3_golden.csv(name))
