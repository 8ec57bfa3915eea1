import numpy as np
import pytest
from dipy.core.gradients import gradient_table

from pigment_connect.datasets import make_protocol
from pigment_connect.errors import ProtocolError
from pigment_connect.fit import DiffusionKurtosisModel


def test_wls_matches_dipy_on_the_phantom():
    from dipy.reconst.dki import DiffusionKurtosisModel as DipyDKI

    from pigment_connect.datasets import make_subject

    subject = make_subject(protocol="dense", seed=2)
    m = subject.dwi.mask
    ours = DiffusionKurtosisModel(subject.dwi.gtab).fit(subject.dwi)
    g = subject.dwi.gtab
    ref = DipyDKI(gradient_table(g.bvals, bvecs=g.bvecs), fit_method="WLS").fit(subject.dwi.data, mask=m)
    np.testing.assert_allclose(ours.md[m], ref.md[m], rtol=1e-4, atol=1e-9)
    np.testing.assert_allclose(ours.fa[m], ref.fa[m], atol=1e-4)
    np.testing.assert_allclose(ours.evals[m], ref.evals[m], rtol=1e-4, atol=1e-9)
    mk_diff = np.abs(ours.mk()[m] - ref.mk(max_kurtosis=10)[m])
    assert np.median(mk_diff) < 1e-3  # DIPY's closed-form MK is itself off by up to ~1% in some voxels
    np.testing.assert_allclose(ours.ak()[m], ref.ak(max_kurtosis=10)[m], atol=1e-3)


def test_noise_free_kurtosis_is_recovered(rng):
    from dipy.sims.voxel import multi_tensor_dki

    gtab = make_protocol("dense")
    dg = gradient_table(gtab.bvals, bvecs=gtab.bvecs)
    mevals = np.array([[1.7e-3, 0.3e-3, 0.3e-3], [1.0e-3, 0.8e-3, 0.8e-3]])
    signal, dt, kt = multi_tensor_dki(dg, mevals, S0=100, angles=[(30, 10), (30, 10)], fractions=[60, 40], snr=None)
    for method in ("WLS", "NLLS"):
        fit = DiffusionKurtosisModel(gtab, fit_method=method).fit(signal[None])
        np.testing.assert_allclose(fit.kurtosis_tensor[0], kt, atol=2e-3 if method == "WLS" else 1e-4)
        np.testing.assert_allclose(fit.predict()[0], signal, rtol=1e-3)


def test_one_shell_is_refused_naming_the_shells():
    with pytest.raises(ProtocolError, match="two non-zero b-value shells.*only b=1000"):
        DiffusionKurtosisModel(make_protocol("single_shell"))


def test_maps_hold_kurtosis_and_tensor(phantom):
    from pigment_connect.datasets import make_subject

    subject = make_subject(shape=(24, 24, 6), protocol="dense", seed=3)
    maps = DiffusionKurtosisModel(subject.dwi.gtab).fit(subject.dwi).maps
    assert maps.model == "dki"
    for name in ("fa", "md", "mk", "ak", "rk", "kfa", "tensor", "kurtosis", "evec1"):
        assert name in maps
    wm = subject.truth["wm"]
    assert 0.3 < np.median(maps["mk"][wm]) < 2.0  # restricted tissue: clearly positive kurtosis
