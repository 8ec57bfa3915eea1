"""Tracking peak and orientation fields (EuDX interpolation of the peak closest to the incoming
direction) on the phantom's true fibre orientations."""

import numpy as np
import pytest

from pigment_connect.errors import InputError
from pigment_connect.io import MicrostructureMaps
from pigment_connect.track import Tracker

pytestmark = pytest.mark.filterwarnings("ignore::pigment_connect.errors.PigmentWarning")


def _score(trk, phantom):
    from pigment_connect.connectome import build_connectomes

    truth = phantom.true_connectome.weights > 0
    conn = build_connectomes(trk, phantom.parcellation, assignment="radial", radius=2.0)["count"].weights
    return conn[truth].sum() / conn.sum(), np.mean(conn[np.triu(truth, 1)] > 0)


def test_true_peaks_recover_every_bundle_through_the_crossings(phantom, phantom_tensor_maps):
    """Two peaks where bundles cross: the closest one is followed. Measured: valid 0.84, 7/7
    bundles (the tensor field: 0.78 tensorline, DIPY deterministic on DTI peaks 0.77, 6/7)."""
    peaks = phantom.truth["peaks"]
    trk = Tracker().track(phantom_tensor_maps, peaks=peaks, seeds_per_voxel=2, random_state=0)
    valid, recovered = _score(trk, phantom)
    assert valid > 0.8 and recovered == 1.0, (valid, recovered)
    # MRtrix3 sh2peaks layout (X, Y, Z, 3K) with NaN for absent peaks tracks the same
    flat = peaks.reshape(*peaks.shape[:3], -1).copy()
    flat[flat == 0] = np.nan
    same = Tracker().track(phantom_tensor_maps, peaks=flat, seeds_per_voxel=2, random_state=0)
    np.testing.assert_array_equal(same.points, trk.points)


def test_orientation_field_of_noddi_like_maps(phantom):
    """Maps with only a mean orientation (``evec1``), NDI and ODI, as NODDI gives: one peak per
    voxel, so a crossing follows its main bundle (6 of 7 bundles); probabilistic draws use ODI."""
    truth = phantom.truth
    maps = MicrostructureMaps({"evec1": truth["orientation"].astype(np.float32),
                               "ndi": truth["ndi"].astype(np.float32), "odi": truth["odi"].astype(np.float32)},
                              phantom.dwi.affine, "noddi", mask=phantom.dwi.mask)
    for algorithm in ("tensorline", "probabilistic"):
        valid, recovered = _score(Tracker(algorithm=algorithm).track(maps, seeds_per_voxel=2, random_state=0),
                                  phantom)
        assert valid > 0.65 and recovered >= 6 / 7, (algorithm, valid, recovered)
    no_odi = MicrostructureMaps({"evec1": truth["orientation"].astype(np.float32)}, phantom.dwi.affine, "noddi",
                                mask=phantom.dwi.mask)
    with pytest.raises(InputError, match="ODI"):
        Tracker(algorithm="probabilistic").track(no_odi)


def test_bad_direction_fields_are_clear_errors(phantom, phantom_tensor_maps):
    with pytest.raises(InputError, match="peaks array"):
        Tracker(field="peaks").track(phantom_tensor_maps)
    with pytest.raises(InputError, match=r"\(X, Y, Z, K, 3\)"):
        Tracker().track(phantom_tensor_maps, peaks=np.zeros((3, 3, 3, 2, 3)))
    with pytest.raises(InputError, match="field='peaks'"):
        Tracker(field="tensor").track(phantom_tensor_maps, peaks=phantom.truth["peaks"])
    with pytest.raises(InputError, match="unknown direction field"):
        Tracker(field="odf")
