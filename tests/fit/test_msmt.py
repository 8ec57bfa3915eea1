"""Multi-shell multi-tissue CSD against MRtrix3's own (``dwi2response dhollander`` + ``dwi2fod
msmt_csd``, golden output in tests/golden/mrtrix3/) on its real 4-shell crop, the exact
constrained solver, and bad input."""

import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy.optimize import nnls

from pigment_connect import load_dwi
from pigment_connect.datasets import make_protocol
from pigment_connect.errors import InputError, ProtocolError
from pigment_connect.fit import CsdModel, MsmtCsdModel
from pigment_connect.fit._msmt_kernels import constrained_least_squares

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "mrtrix3" / "msmt_crop_wmfod.nii.gz"


def test_solver_is_the_exact_constrained_least_squares():
    """Against a brute-force optimum: the KKT conditions of min |Xx − y|² s.t. Gx ≥ 0."""
    rng = np.random.default_rng(0)
    design = rng.normal(size=(40, 6))
    constraint = np.vstack([np.eye(6), rng.normal(size=(10, 6))])
    signals = rng.normal(size=(30, 40)) * 3
    q, r = np.linalg.qr(design)
    r_inv = np.linalg.inv(r)
    out = np.zeros((30, 6))
    constrained_least_squares(q.T.copy(), r_inv, constraint @ r_inv, signals, 200, out)
    for x, y in zip(out, signals):
        g = constraint @ x
        assert g.min() > -1e-8  # feasible
        grad = design.T @ (design @ x - y)  # stationarity: grad = Gᵀλ with λ ≥ 0 on active rows only
        active = g < 1e-7
        if not active.any():
            np.testing.assert_allclose(grad, 0, atol=1e-6)  # the unconstrained optimum
            continue
        lam, residual = nnls(constraint[active].T, grad)  # multipliers λ ≥ 0 exist
        assert residual < 1e-6 * max(1.0, np.linalg.norm(grad))


@pytest.mark.slow
def test_wm_fods_agree_with_mrtrix3_msmt_on_its_crop(shared_data):
    d = shared_data / "dwi_mrtrix3_msmt_crop"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the crop's few negative samples are clipped
        dwi = load_dwi(d / "dwi.nii.gz", bvals=d / "dwi.bval", bvecs=d / "dwi.bvec", mask=d / "mask.nii.gz")
    fit = MsmtCsdModel(dwi.gtab).fit(dwi)
    theirs = np.asarray(nib.load(GOLDEN).dataobj, float)
    m = dwi.mask
    wm = m & (theirs[..., 0] > 0.5 * np.percentile(theirs[m][:, 0], 90))
    corr = np.median([np.corrcoef(fit.fod[tuple(i)], theirs[tuple(i)])[0, 1] for i in np.argwhere(wm)])
    single = CsdModel(dwi.gtab).fit(dwi).fod
    corr_single = np.median([np.corrcoef(single[tuple(i)], theirs[tuple(i)])[0, 1] for i in np.argwhere(wm)])
    assert corr > 0.95 and corr > corr_single, (corr, corr_single)  # measured 0.978 (single shell 0.939)
    assert fit.gm.min() >= -1e-6 and fit.csf.min() >= -1e-6
    maps = fit.maps
    assert {"fod", "wm", "gm", "csf"} <= set(maps.names)
    predicted = fit.predict()
    rel = np.linalg.norm(predicted[m] - dwi.data[m], axis=1) / np.linalg.norm(dwi.data[m], axis=1)
    assert np.median(rel) < 0.12  # measured 0.078, the exact QP's residual
    with pytest.raises(InputError, match="no S0"):
        fit.predict(S0=1.0)


def test_msmt_refuses_a_single_shell():
    with pytest.raises(ProtocolError, match="two non-zero shells"):
        MsmtCsdModel(make_protocol("single_shell"))
    with pytest.raises(InputError, match="even number"):
        MsmtCsdModel(make_protocol("dense"), sh_order_max=7)
