import numpy as np
import pytest

from pigment_connect.errors import InputError, InputWarning
from pigment_connect.io import GradientTable

DIRS = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0.7071068, 0.7071068, 0], [0.7071068, 0, 0.7071068],
                 [0, 0.7071068, 0.7071068]])


def table(n_b0=1):
    return np.r_[np.zeros(n_b0), np.full(6, 1000.0)], np.r_[np.zeros((n_b0, 3)), DIRS]


def test_gradient_table_rejects_transposed_bvecs():
    bvals, bvecs = table()
    with pytest.raises(InputError, match=r"transpose"):
        GradientTable(bvals, bvecs.T)


def test_gradient_table_rejects_non_unit_vectors():
    bvals, bvecs = table()
    bvecs[3] *= 0.8
    with pytest.raises(InputError, match="not unit length"):
        GradientTable(bvals, bvecs)


def test_bvalue_scaling_rescales_b_by_squared_norm():
    bvals, bvecs = table()
    bvecs[3] *= 0.5
    gtab = GradientTable(bvals, bvecs, bvalue_scaling=True)
    assert gtab.bvals[3] == pytest.approx(250.0)
    assert np.linalg.norm(gtab.bvecs[3]) == pytest.approx(1.0)


def test_nan_or_zero_b0_directions_are_undefined_not_data():
    bvals, bvecs = table(n_b0=2)
    bvecs[0] = np.nan
    gtab = GradientTable(bvals, bvecs)
    assert np.all(gtab.bvecs[:2] == 0) and gtab.n_b0 == 2


def test_nan_direction_on_weighted_volume_is_refused():
    bvals, bvecs = table()
    bvecs[2] = np.nan
    with pytest.raises(InputError, match="NaN"):
        GradientTable(bvals, bvecs)


@pytest.mark.parametrize("b0", [0.0, 0.004, 5.0])
def test_small_b_values_count_as_b0(b0):
    bvals, bvecs = table()
    bvals[0] = b0
    assert GradientTable(bvals, bvecs).n_b0 == 1


def test_count_mismatch_and_negative_b():
    bvals, bvecs = table()
    with pytest.raises(InputError, match="b-values but"):
        GradientTable(bvals[:-1], bvecs)
    bvals[1] = -5
    with pytest.raises(InputError, match="negative"):
        GradientTable(bvals, bvecs)


def test_shells_are_clustered():
    bvals = np.r_[0, 995, 1000, 1005, 2000, 2010, 3000]
    bvecs = np.r_[[[0, 0, 0]], np.tile([1.0, 0, 0], (6, 1))]
    gtab = GradientTable(bvals, bvecs)
    np.testing.assert_allclose(gtab.shells, [1000, 2005, 3000])
    np.testing.assert_array_equal(gtab.shell_sizes, [3, 2, 1])
    assert gtab.shell_index[0] == -1


@pytest.mark.parametrize("det_sign", [1, -1])
def test_fsl_round_trip_and_x_flip_follows_mrtrix(tmp_path, det_sign):
    bvals, bvecs = table()
    gtab = GradientTable(bvals, bvecs)
    affine = np.diag([2.0 * det_sign, 2.0, 2.0, 1.0])
    gtab.to_fsl(tmp_path / "a.bval", tmp_path / "a.bvec", affine=affine)
    raw = np.loadtxt(tmp_path / "a.bvec")
    # in the file, x is negated exactly when det(affine) > 0 (MRtrix3 -fslgrad convention)
    np.testing.assert_allclose(raw[0, 1:], (-1 if det_sign > 0 else 1) * bvecs[1:, 0], atol=1e-9)
    back = GradientTable.from_fsl(tmp_path / "a.bval", tmp_path / "a.bvec", affine=affine)
    np.testing.assert_allclose(back.bvecs, gtab.bvecs, atol=1e-9)
    np.testing.assert_allclose(back.bvals, gtab.bvals)


def test_fsl_file_errors_name_the_file(tmp_path):
    (tmp_path / "x.bval").write_text("0 1000 1000\n")
    (tmp_path / "x.bvec").write_text("1 0 0\n0 1 0\n0 0 1\n1 0 0\n")  # 4 rows of 3 for 3 b-values
    with pytest.raises(InputError, match=r"x\.bvec.*3 rows"):
        GradientTable.from_fsl(tmp_path / "x.bval", tmp_path / "x.bvec", affine=np.eye(4))
    with pytest.raises(InputError, match="not found"):
        GradientTable.from_fsl(tmp_path / "missing.bval", tmp_path / "x.bvec", affine=np.eye(4))
    (tmp_path / "y.bvec").write_text("1 0 a\n0 1 0\n0 0 1\n")
    with pytest.raises(InputError, match=r"y\.bvec.*non-numeric"):
        GradientTable.from_fsl(tmp_path / "x.bval", tmp_path / "y.bvec", affine=np.eye(4))


def test_fsl_file_with_n_rows_of_xyz_is_read_transposed_with_a_warning(tmp_path):
    (tmp_path / "t.bval").write_text("0 1000 1000 1000 1000\n")
    (tmp_path / "t.bvec").write_text("0 0 0\n1 0 0\n0 1 0\n0 0 1\n0.6 0.8 0\n")
    with pytest.warns(InputWarning, match=r"t\.bvec.*5 rows"):
        gtab = GradientTable.from_fsl(tmp_path / "t.bval", tmp_path / "t.bvec", affine=-np.eye(4))
    np.testing.assert_allclose(gtab.bvecs[4], [0.6, 0.8, 0])


def test_noncollinear_count_ignores_antipodes():
    bvals = np.r_[0, np.full(4, 1000.0)]
    bvecs = np.array([[0, 0, 0], [1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0]], float)
    assert GradientTable(bvals, bvecs).n_noncollinear() == 2
