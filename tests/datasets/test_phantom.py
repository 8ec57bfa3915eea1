import numpy as np
import pytest
from scipy.special import erf

from pigment_connect.datasets import BUNDLES, make_cohort, make_protocol, make_subject
from pigment_connect.datasets.signal import (
    kappa_from_odi,
    noddi_signal,
    noddi_tensor,
    odi_from_kappa,
    watson_stick_signal,
    watson_tau,
)


def test_watson_sticks_match_closed_forms():
    b, d = 2000.0, 1.7e-3
    # κ = 0: isotropically distributed sticks, E = √π erf(√(bd)) / (2√(bd))
    iso = np.sqrt(np.pi) * erf(np.sqrt(b * d)) / (2 * np.sqrt(b * d))
    np.testing.assert_allclose(watson_stick_signal(b, 0.0, np.linspace(0, 1, 7)), iso, rtol=1e-10)
    # κ → ∞: a single stick, E = exp(-b d cos²θ)
    cos = np.linspace(0, 1, 7)
    np.testing.assert_allclose(watson_stick_signal(b, 2000.0, cos), np.exp(-b * d * cos**2), atol=2e-3)
    assert watson_tau(0.0) == pytest.approx(1 / 3, rel=1e-12)
    assert odi_from_kappa(kappa_from_odi(0.3)) == pytest.approx(0.3)


def test_noddi_tensor_is_the_low_b_limit_of_the_signal():
    gtab = make_protocol("dense")
    dirs = gtab.bvecs[~gtab.b0s_mask]
    mu = np.array([[0.6, 0.0, 0.8]])
    kappa = float(kappa_from_odi(0.2))
    b = 1.0  # s/mm²: -log(S)/b → gᵀDg as b → 0
    s = noddi_signal(np.full(len(dirs), b), dirs, mu, [0.6], kappa, [0.1])[0]
    tensor = noddi_tensor(mu, [0.6], kappa, [0.1])[0]
    np.testing.assert_allclose(-np.log(s) / b, np.einsum("ni,ij,nj->n", dirs, tensor, dirs), rtol=2e-3)


def test_subject_is_deterministic_per_seed():
    a = make_subject(seed=3, shape=(30, 30, 8))
    b = make_subject(seed=3, shape=(30, 30, 8))
    c = make_subject(seed=4, shape=(30, 30, 8))
    np.testing.assert_array_equal(a.dwi.data, b.dwi.data)
    assert not np.array_equal(a.dwi.data, c.dwi.data)


def test_phantom_truth_is_consistent(phantom):
    t = phantom.truth
    wm, gm = t["wm"], phantom.parcellation.labels > 0
    assert np.median(t["fa"][wm]) > 0.6 and np.median(t["fa"][gm]) < 0.15
    assert np.all(phantom.parcellation.labels[~phantom.dwi.mask] == 0)
    assert t["crossing"].sum() > 0  # the crossing bundles do cross
    # background holds Rician noise only: mean ≈ σ√(π/2)
    bg = phantom.dwi.data[~phantom.dwi.mask][:, 0]
    assert np.mean(bg) == pytest.approx(t["sigma"] * np.sqrt(np.pi / 2), rel=0.05)
    w = phantom.true_connectome.weights
    assert w.sum() == 2 * len(BUNDLES) and np.allclose(w, w.T)


def test_cohort_group_and_site_effects():
    cohort = make_cohort(4, shape=(30, 34, 8), sites={"A": {}, "B": {"signal_scale": 1500.0}},
                         effect_bundle="commissural_anterior", effect_size=0.3, subject_variability=0.0, seed=1)
    assert [s.group for s in cohort] == ["control", "patient", "control", "patient"]
    assert [s.site for s in cohort] == ["A", "A", "B", "B"]
    bundle = cohort[0].truth["bundle_id"][..., 0] == 0
    ratio = cohort[1].truth["ndi"][bundle].mean() / cohort[0].truth["ndi"][bundle].mean()
    assert ratio == pytest.approx(0.7, rel=1e-6)
    other = cohort[0].truth["bundle_id"][..., 0] == 1
    assert cohort[1].truth["ndi"][other].mean() == pytest.approx(cohort[0].truth["ndi"][other].mean())
    b0 = cohort[0].dwi.gtab.b0s_mask
    scale = cohort[2].dwi.data[..., b0][cohort[2].truth["wm"]].mean() / cohort[0].dwi.data[..., b0][cohort[0].truth["wm"]].mean()
    assert scale == pytest.approx(1.5, rel=0.05)
