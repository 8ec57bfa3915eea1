"""Track-density images equal MRtrix3 ``tckmap`` (committed output, and live where installed)
and DIPY ``density_map``."""

import shutil

import nibabel as nib
import numpy as np
import pytest

from pigment_connect.errors import InputError
from pigment_connect.io import Tractogram
from pigment_connect.track import Tracker, density_map

HAS_TCKMAP = shutil.which("tckmap") is not None


def test_density_equals_tckmap_and_dipy(mrtrix3_golden):
    from dipy.tracking.utils import density_map as dipy_density

    g = mrtrix3_golden
    tdi = np.asarray(nib.load(g.path("tdi_tckmap.nii.gz")).dataobj)
    assert tdi.sum() > 1000 and tdi.max() > 5
    np.testing.assert_array_equal(density_map(g.path("tdi_tracks.tck")), tdi)
    trk = Tractogram.load(g.path("tdi_tracks.tck"))
    np.testing.assert_array_equal(density_map(trk), tdi)
    template = nib.load(g.path("scene_nodes.nii.gz"))  # the -template grid; streamed in small chunks
    np.testing.assert_array_equal(density_map(g.path("tdi_tracks.tck"), shape=template.shape,
                                              affine=template.affine, chunk_size=17), tdi)
    streamlines = [trk.points[a:b] for a, b in zip(trk.offsets[:-1], trk.offsets[1:])]
    np.testing.assert_array_equal(density_map(trk), dipy_density(streamlines, trk.affine, trk.shape))


def test_density_counts_each_streamline_once_per_voxel_and_upsamples():
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    line = np.array([[0.0, 0.0, 0.0], [0.2, 0.0, 0.0], [8.0, 0.0, 0.0]])  # mm: voxels 0 (twice) … 4
    trk = Tractogram.from_streamlines([line, line], affine=affine, shape=(6, 2, 2))
    assert density_map(trk)[:, 0, 0].tolist() == [2, 0, 0, 0, 2, 0]  # points only
    assert density_map(trk, upsample=8)[:, 0, 0].tolist() == [2, 2, 2, 2, 2, 0]  # the whole segment
    fine = density_map(trk, shape=(12, 1, 1), affine=np.diag([1.0, 1.0, 1.0, 1.0]), upsample=16)
    assert fine[:9, 0, 0].tolist() == [2] * 9 and fine[9:].sum() == 0  # any output grid
    with pytest.raises(InputError, match="upsample"):
        density_map(trk, upsample=0)
    with pytest.raises(InputError, match="both shape and affine"):
        density_map(trk, shape=(6, 2, 2))


@pytest.mark.skipif(not HAS_TCKMAP, reason="MRtrix3 not installed: the committed tckmap output is compared instead")
def test_mrtrix3_here_reproduces_the_committed_tckmap_and_maps_our_tracker_output_as_we_do(
        tmp_path, mrtrix3_golden, phantom, phantom_tensor_maps):
    import subprocess

    live = mrtrix3_golden.rerun("tdi_tckmap.nii.gz", tmp_path)
    np.testing.assert_array_equal(np.asarray(nib.load(live).dataobj),
                                  np.asarray(nib.load(mrtrix3_golden.path("tdi_tckmap.nii.gz")).dataobj))
    trk = Tracker().track(phantom_tensor_maps, random_state=0)
    trk.save(tmp_path / "ours.tck")
    nib.save(nib.Nifti1Image(np.zeros(trk.shape, np.uint8), trk.affine), tmp_path / "grid.nii.gz")
    subprocess.run(["tckmap", "ours.tck", "ours_tdi.nii.gz", "-template", "grid.nii.gz", "-quiet"], cwd=tmp_path,
                   check=True)
    np.testing.assert_array_equal(density_map(tmp_path / "ours.tck"),
                                  np.asarray(nib.load(tmp_path / "ours_tdi.nii.gz").dataobj))
