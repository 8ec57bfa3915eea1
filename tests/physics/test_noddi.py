import numpy as np
import pytest
import torch
from scipy import integrate
from scipy.special import dawsn

from pigment_connect.datasets import make_protocol
from pigment_connect.datasets import signal as numpy_reference
from pigment_connect.physics import kappa_from_odi, noddi_signal, odi_from_kappa, watson_stick_signal, watson_tau

T = lambda a: torch.as_tensor(np.array(a, dtype=np.float64))  # noqa: E731


def direct_watson_stick(kappa, beta, cos_alpha):
    """Direct 2-D adaptive quadrature over the sphere (mean orientation z)."""
    g = np.array([np.sqrt(1 - cos_alpha**2), 0.0, cos_alpha])

    def f(phi, u):
        gn = g[0] * np.sqrt(1 - u * u) * np.cos(phi) + g[2] * u
        return np.exp(kappa * (u * u - 1) - beta * gn * gn)

    num = integrate.dblquad(f, -1, 1, 0, 2 * np.pi, epsabs=1e-13, epsrel=1e-11)[0]
    den = integrate.quad(lambda u: np.exp(kappa * (u * u - 1)), -1, 1, epsabs=1e-14, epsrel=1e-12)[0] * 2 * np.pi
    return num / den


@pytest.mark.parametrize("kappa", [0.0, 1.0, 16.0, 64.0, 128.0])
def test_watson_stick_matches_direct_quadrature(kappa):
    for beta in (1.7, 5.1, 8.5):  # b = 1000, 3000, 5000 s/mm² at d∥ = 1.7e-3
        for ca in (0.0, 0.5, 0.9, 1.0):
            ours = watson_stick_signal(T([kappa]), T([beta]), T([[ca]])).item()
            assert abs(ours - direct_watson_stick(kappa, beta, ca)) < 1e-9


def test_watson_tau_matches_closed_form():
    for kappa in (0.1, 1.0, 10.0, 100.0):
        closed = 1 / (2 * np.sqrt(kappa) * dawsn(np.sqrt(kappa))) - 1 / (2 * kappa)
        assert abs(watson_tau(T([kappa])).item() - closed) < 1e-12
    assert abs(watson_tau(T([0.0])).item() - 1 / 3) < 1e-14


def test_odi_kappa_round_trip():
    odi = T([0.01, 0.2, 0.5, 0.99])
    np.testing.assert_allclose(odi_from_kappa(kappa_from_odi(odi)).numpy(), odi.numpy(), rtol=1e-12)


def amico_signal(gtab, ndi, odi, fwf):
    synthesis = pytest.importorskip("amico.synthesis")
    scheme_mod = pytest.importorskip("amico.scheme")
    bvals = np.where(gtab.b0s_mask, 0.0, gtab.bvals)
    scheme = scheme_mod.Scheme(np.c_[gtab.bvecs, bvals])
    kappa = float(kappa_from_odi(T(odi)))
    ic = synthesis.NODDIIntraCellular(scheme).get_signal(1.7e-3, kappa)
    ec = synthesis.NODDIExtraCellular(scheme).get_signal(1.7e-3, kappa, ndi)
    iso = synthesis.NODDIIsotropic(scheme).get_signal(3.0e-3)
    return (1 - fwf) * (ndi * ic + (1 - ndi) * ec) + fwf * iso


@pytest.mark.parametrize("odi", [0.03, 0.1, 0.3, 0.6, 0.9])
def test_signal_matches_amico(odi):
    """AMICO (the NODDI toolbox's spherical-harmonic code, translated) on the same parameters.
    Its SH truncation limits agreement to ~2e-6 at the highest concentration tested."""
    gtab = make_protocol("dense")
    bvals = np.where(gtab.b0s_mask, 0.0, gtab.bvals)
    for ndi in (0.3, 0.7):
        for fwf in (0.0, 0.2):
            ref = amico_signal(gtab, ndi, odi, fwf)  # fibre along z
            ours = noddi_signal(T([1.0]), T([ndi]), T([odi]), T([fwf]), T([[0, 0, 1.0]]), T(bvals), T(gtab.bvecs))
            np.testing.assert_allclose(ours[0].numpy(), ref, atol=5e-6)


def test_signal_matches_independent_numpy_reference(rng):
    gtab = make_protocol("two_shell_sparse")
    mu = rng.normal(size=(10, 3))
    mu /= np.linalg.norm(mu, axis=1, keepdims=True)
    ndi, fwf = rng.uniform(0.1, 0.9, 10), rng.uniform(0, 0.5, 10)
    for odi in (0.05, 0.4):
        kappa = float(kappa_from_odi(T(odi)))
        ref = numpy_reference.noddi_signal(gtab.bvals, gtab.bvecs, mu, ndi, kappa, fwf)
        ours = noddi_signal(T(np.ones(10)), T(ndi), T(np.full(10, odi)), T(fwf), T(mu), T(gtab.bvals), T(gtab.bvecs))
        np.testing.assert_allclose(ours.numpy(), ref, atol=2e-7)  # the reference's own quadrature error


def test_gradients_are_finite_everywhere():
    gtab = make_protocol("dense")
    x = torch.tensor([[0.0, -4.0, -3.0], [2.0, 4.0, 3.0], [0.0, 0.0, 0.0]], dtype=torch.float64, requires_grad=True)
    ndi, odi, fwf = torch.sigmoid(x).unbind(-1)
    mu = torch.tensor([[0, 0, 1.0], [1.0, 0, 0], [0.6, 0.8, 0]], dtype=torch.float64)
    sig = noddi_signal(torch.ones(3, dtype=torch.float64), ndi, odi, fwf, mu, T(gtab.bvals), T(gtab.bvecs))
    sig.sum().backward()
    assert torch.isfinite(x.grad).all()


def test_float32_truncation_is_below_float32_resolution():
    """The fit truncates the series at tol 1e-7 in float32: the dropped terms stay below 1e-7."""
    from pigment_connect.physics.noddi import legendre_order

    kappa = T([0.0, 0.5, 2.0, 8.0, 32.0, 128.0])
    cos_alpha = T(np.linspace(-1, 1, 41))[None].expand(6, -1)
    for beta in (1.7, 3.4, 5.1, 8.5):
        full = watson_stick_signal(kappa, T([beta] * 41), cos_alpha, l_max=60)
        short = watson_stick_signal(kappa, T([beta] * 41), cos_alpha, l_max=legendre_order(beta, tol=1e-7))
        assert float((full - short).abs().max()) < 1e-7


def test_reverse_mode_gradients_match_finite_differences():
    """The Watson sum's gradients come from a custom autograd Function (the kernel works in place):
    check them, in κ (through ODI) and in the orientation, with torch's gradcheck."""
    gtab = make_protocol("two_shell_sparse")
    bvals, bvecs = T(gtab.bvals), T(gtab.bvecs)
    ndi, fwf = T([0.4, 0.7]), T([0.1, 0.3])
    odi = T([0.08, 0.5]).requires_grad_(True)
    mu = T([[0.3, 0.4, 0.866], [0.9, -0.1, 0.42]]).requires_grad_(True)

    def f(odi, mu):
        return noddi_signal(T([1.0, 1.0]), ndi, odi, fwf, mu / mu.norm(dim=-1, keepdim=True), bvals, bvecs)

    assert torch.autograd.gradcheck(f, (odi, mu), eps=1e-6, atol=1e-7)
