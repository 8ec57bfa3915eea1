"""Streaming tracking to disk, and the b-vector orientation check (phantom; a real scan when
../shared is there)."""

import shutil
import subprocess

import numpy as np
import pytest

from pigment_connect.errors import InputError, TrackError
from pigment_connect.io import Tractogram
from pigment_connect.io.stream import TckStreamWriter, iter_tractogram
from pigment_connect.track import Tracker, check_gradients
from pigment_connect.track.gradcheck import CANDIDATES, transform_tensor

pytestmark = pytest.mark.filterwarnings("ignore::pigment_connect.errors.PigmentWarning")


def test_streamed_tractogram_equals_the_in_memory_one(tmp_path, phantom_tensor_maps, monkeypatch):
    import pigment_connect.track.tracker as tracker_module

    monkeypatch.setattr(tracker_module, "_SEED_CHUNK", 300)  # several chunks on the small phantom
    tracker = Tracker(algorithm="probabilistic")
    in_memory = tracker.track(phantom_tensor_maps, seeds_per_voxel=2, random_state=3)
    summary = tracker.track_to_file(phantom_tensor_maps, tmp_path / "t.tck", seeds_per_voxel=2, random_state=3)
    assert summary["streamlines"] == len(in_memory) and summary["seeds"] > 300
    back = Tractogram.load(tmp_path / "t.tck")
    np.testing.assert_array_equal(back.offsets, in_memory.offsets)
    np.testing.assert_array_equal(back.points, in_memory.points)
    np.testing.assert_allclose(back.affine, in_memory.affine)
    chunks = list(iter_tractogram(tmp_path / "t.tck", chunk_size=100))
    assert sum(len(c) for c in chunks) == len(in_memory)
    if shutil.which("tckinfo"):
        info = subprocess.run(["tckinfo", str(tmp_path / "t.tck")], capture_output=True, text=True, check=True).stdout
        count = next(int(line.split()[-1]) for line in info.splitlines() if line.strip().startswith("count"))
        assert count == len(in_memory)


def test_streaming_leaves_no_file_on_failure(tmp_path, phantom_tensor_maps):
    with pytest.raises(TrackError):
        Tracker(min_length=240.0).track_to_file(phantom_tensor_maps, tmp_path / "t.tck", random_state=0)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(InputError, match=r"\.tck"):
        TckStreamWriter(tmp_path / "t.trk", np.eye(4), (2, 2, 2))


def test_tensor_transform_equals_refitting_with_transformed_directions(phantom):
    from pigment_connect.fit import TensorModel
    from pigment_connect.io.dwi import DiffusionData
    from pigment_connect.io.gradients import GradientTable

    dwi = phantom.dwi
    region = (slice(10, 14), slice(20, 24), slice(6, 8))
    data = dwi.data[region]
    base = TensorModel(dwi.gtab).fit(DiffusionData(data, dwi.affine, np.ones(data.shape[:3], bool), dwi.gtab))
    tensor = np.asarray(base.maps["tensor"])
    assert len(CANDIDATES) == 24
    for perm, signs in ((1, 0, 2), (1, -1, 1)), ((2, 0, 1), (1, 1, -1)):
        g = GradientTable(dwi.gtab.bvals, dwi.gtab.bvecs[:, list(perm)] * np.array(signs))
        refit = TensorModel(g).fit(DiffusionData(data, dwi.affine, np.ones(data.shape[:3], bool), g))
        np.testing.assert_allclose(transform_tensor(tensor, perm, signs), np.asarray(refit.maps["tensor"]),
                                   rtol=1e-4, atol=1e-8)


def _swapped_maps(phantom):
    from pigment_connect.fit import TensorModel
    from pigment_connect.io.dwi import DiffusionData
    from pigment_connect.io.gradients import GradientTable

    g = GradientTable(phantom.dwi.gtab.bvals, phantom.dwi.gtab.bvecs[:, [1, 0, 2]])
    return TensorModel(g).fit(DiffusionData(phantom.dwi.data, phantom.dwi.affine, phantom.dwi.mask, g)).maps


def test_check_finds_swapped_axes_on_the_phantom(phantom, phantom_tensor_maps):
    right = check_gradients(phantom_tensor_maps, n_seeds=1500)
    assert right.given_is_best and "most coherent" in right.message
    wrong = check_gradients(_swapped_maps(phantom), n_seeds=1500)
    assert not wrong.given_is_best and wrong.best_order == (1, 0, 2)
    assert wrong.best_length_mm > 2 * wrong.given_length_mm
    assert "reorder the rows of the .bvec file to (row 2, row 1, row 3)" in wrong.message
    corrected = wrong.corrected_bvecs(phantom.dwi.gtab.bvecs[:, [1, 0, 2]])
    np.testing.assert_allclose(np.abs(corrected), np.abs(phantom.dwi.gtab.bvecs), atol=1e-12)


def test_pipeline_fails_or_warns_on_a_swapped_table(tmp_path, phantom):
    """run_cohort checks the table before tracking: 'fail' fails the subject naming the .bvec and
    the fix; 'warn' goes on with the given table and records the warning in the run summary
    (here the subject then fails on its broken tractography, as it would without the check)."""
    from pigment_connect.datasets.phantom import subject_parcellation_pattern, write_bids
    from pigment_connect.pipeline import PipelineConfig, run_cohort

    bids = write_bids([phantom], tmp_path / "bids")
    bvec = next(bids.rglob("*_dwi.bvec"))
    rows = np.loadtxt(bvec)
    np.savetxt(bvec, rows[[1, 0, 2]], fmt="%.8f")
    config = PipelineConfig(parcellation=subject_parcellation_pattern(), gradient_check="fail")
    failed = run_cohort(bids, tmp_path / "out", config, progress=False)
    error = failed.summary.loc[0, "error"]
    assert failed.summary.loc[0, "status"] == "failed" and str(bvec) in error and "reorder the rows" in error
    warned = run_cohort(bids, tmp_path / "out", config.replace(gradient_check="warn"), progress=False)
    assert "looks wrong" in warned.summary.loc[0, "warnings"] and "gradient" not in warned.summary.loc[0, "error"]
    assert (tmp_path / "out" / "sub-01" / "dwi" / "sub-01_gradcheck.tsv").is_file()


@pytest.mark.slow
def test_check_finds_a_flipped_x_on_a_real_scan(shared_data):
    """The ADNI whole-brain b=1000 scan: its own table is the best; with x negated in the .bvec,
    the check names the flip (the issue's acceptance test)."""
    import pigment_connect as pc
    from pigment_connect.fit import TensorModel
    from pigment_connect.io.dwi import DiffusionData
    from pigment_connect.io.gradients import GradientTable

    dwi = pc.load_dwi(shared_data / "dwi_philips_elitionx_adni_wholebrain_b1000" / "dwi.nii.gz")
    given = check_gradients(TensorModel(dwi.gtab).fit(dwi).maps, n_seeds=3000)
    assert given.given_is_best, given.table.head()
    flipped = GradientTable(dwi.gtab.bvals, dwi.gtab.bvecs * np.array([-1.0, 1.0, 1.0]))
    maps = TensorModel(flipped).fit(DiffusionData(dwi.data, dwi.affine, dwi.mask, flipped)).maps
    wrong = check_gradients(maps, n_seeds=3000)
    assert not wrong.given_is_best and wrong.best == "flip x", wrong.table.head()
    assert "negate row 1" in wrong.message
