import gzip
import shutil

import numpy as np
import pytest

from pigment_connect.errors import InputError, InputWarning, ProtocolError
from pigment_connect.io import load_dwi
from pigment_connect.io.write import save_nifti


@pytest.fixture()
def scan(tmp_path, phantom):
    """The phantom written as NIfTI + FSL files, without a mask."""
    dwi = phantom.dwi
    path = tmp_path / "sub-01_dwi.nii.gz"
    save_nifti(path, dwi.data, dwi.affine)
    dwi.gtab.to_fsl(tmp_path / "sub-01_dwi.bval", tmp_path / "sub-01_dwi.bvec", affine=dwi.affine)
    return path


def test_load_round_trip_finds_sidecars_and_computes_a_brain_mask(scan, phantom):
    dwi = load_dwi(scan)
    np.testing.assert_allclose(dwi.gtab.bvecs, phantom.dwi.gtab.bvecs, atol=1e-8)
    assert dwi.mask_source == "computed"
    truth = phantom.dwi.mask
    # background noise must not be in the mask; the brain must be
    assert (dwi.mask & ~truth).sum() < 0.02 * truth.sum()
    assert (dwi.mask & truth).sum() > 0.95 * truth.sum()


def test_volume_count_mismatch_names_the_files(scan, tmp_path):
    (tmp_path / "sub-01_dwi.bval").write_text(" ".join(["0"] * 3) + "\n")
    (tmp_path / "sub-01_dwi.bvec").write_text("\n".join(["0 0 0"] * 3) + "\n")
    with pytest.raises(InputError, match=r"sub-01_dwi\.nii\.gz.*32 volumes.*describe 3"):
        load_dwi(scan)


def test_three_d_image_is_refused(tmp_path):
    save_nifti(tmp_path / "map.nii.gz", np.ones((4, 4, 4), np.float32), np.eye(4))
    with pytest.raises(InputError, match="4-D diffusion series is needed"):
        load_dwi(tmp_path / "map.nii.gz", bvals=tmp_path / "x.bval", bvecs=tmp_path / "x.bvec")


def test_missing_and_truncated_files(scan, tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_dwi(tmp_path / "nope_dwi.nii.gz")
    broken = tmp_path / "sub-02_dwi.nii.gz"
    data = scan.read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    shutil.copy(tmp_path / "sub-01_dwi.bval", tmp_path / "sub-02_dwi.bval")
    shutil.copy(tmp_path / "sub-01_dwi.bvec", tmp_path / "sub-02_dwi.bvec")
    with pytest.raises(InputError, match=r"sub-02_dwi\.nii\.gz.*(truncated|corrupt)"):
        load_dwi(broken)
    garbage = tmp_path / "sub-03_dwi.nii.gz"
    garbage.write_bytes(gzip.compress(b"not a nifti at all" * 10))
    with pytest.raises(InputError, match=r"sub-03_dwi\.nii\.gz"):
        load_dwi(garbage, bvals=tmp_path / "sub-01_dwi.bval", bvecs=tmp_path / "sub-01_dwi.bvec")


def _write(tmp_path, data, affine, like):
    path = tmp_path / "bad_dwi.nii.gz"
    save_nifti(path, data, affine)
    shutil.copy(like.with_name("sub-01_dwi.bval"), tmp_path / "bad_dwi.bval")
    shutil.copy(like.with_name("sub-01_dwi.bvec"), tmp_path / "bad_dwi.bvec")
    return path


def test_nan_and_negative_policy(scan, tmp_path, phantom):
    data = phantom.dwi.data.copy()
    data[20, 20, 7, 5] = np.nan
    data[21, 20, 7, 3] = -4.0
    path = _write(tmp_path, data, phantom.dwi.affine, scan)
    with pytest.warns(InputWarning) as record:
        dwi = load_dwi(path, mask=phantom.dwi.mask)
    messages = " ".join(str(w.message) for w in record)
    assert "NaN" in messages and "clipped" in messages and "bad_dwi" in messages
    assert not dwi.mask[20, 20, 7] and dwi.mask[21, 20, 7]
    assert np.all(np.isfinite(dwi.data)) and dwi.data.min() >= 0
    with pytest.raises(InputError, match="NaN or Inf"):
        load_dwi(path, mask=phantom.dwi.mask, on_invalid="raise")


def test_mask_must_match_grid_and_not_be_empty(scan, tmp_path, phantom):
    dwi = phantom.dwi
    save_nifti(tmp_path / "empty.nii.gz", np.zeros(dwi.shape, np.uint8), dwi.affine)
    with pytest.raises(InputError, match="empty"):
        load_dwi(scan, mask=tmp_path / "empty.nii.gz")
    shifted = dwi.affine.copy()
    shifted[0, 3] += 2.0
    save_nifti(tmp_path / "shifted.nii.gz", dwi.mask, shifted)
    with pytest.raises(InputError, match=r"shifted\.nii\.gz.*not aligned"):
        load_dwi(scan, mask=tmp_path / "shifted.nii.gz")
    save_nifti(tmp_path / "small.nii.gz", dwi.mask[:-1], dwi.affine)
    with pytest.raises(InputError, match=r"small\.nii\.gz.*grid"):
        load_dwi(scan, mask=tmp_path / "small.nii.gz")


def test_no_b0_volume_is_refused(scan, tmp_path, phantom):
    bvals = phantom.dwi.gtab.bvals.copy()
    bvecs = phantom.dwi.gtab.bvecs.copy()
    bvecs[bvals == 0] = [1.0, 0.0, 0.0]
    bvals[bvals == 0] = 1000.0
    np.savetxt(tmp_path / "sub-01_dwi.bval", bvals[None])
    np.savetxt(tmp_path / "sub-01_dwi.bvec", bvecs.T)
    with pytest.raises(ProtocolError, match="no b=0 volume"):
        load_dwi(scan)


@pytest.mark.shared_data
def test_philips_tiny_b0_values_are_b0(shared_data):
    folder = shared_data / "dwi_philips_elitionx_b1000_slab"
    dwi = load_dwi(folder / "701_DTI_Biobank_2mm_MB3S2_EPI.nii.gz")
    assert dwi.gtab.n_b0 == 5 and list(dwi.gtab.shells) == [1000.0]
    assert dwi.mask_source == "computed" and 0.05 < dwi.mask.mean() < 0.8


@pytest.mark.shared_data
def test_dipy_small_64d_with_nan_b0_vector(shared_data):
    folder = shared_data / "dwi_dipy_small"
    dwi = load_dwi(folder / "small_64D.nii.gz", bvals=folder / "small_64D.bval", bvecs=folder / "small_64D.bvec")
    assert dwi.gtab.n_b0 == 1 and np.all(dwi.gtab.bvecs[0] == 0)
