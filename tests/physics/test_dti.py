import numpy as np
import pytest
import torch
from dipy.core.gradients import gradient_table
from dipy.reconst.dti import fractional_anisotropy as dipy_fa
from dipy.sims.voxel import single_tensor

from pigment_connect.datasets import make_protocol
from pigment_connect.physics import cholesky_to_tensor, dti_signal, tensor_maps, tensor_to_cholesky
from pigment_connect.physics.dti import six_from_tensor, tensor_from_six

T = lambda a: torch.as_tensor(np.array(a, dtype=np.float64))  # noqa: E731


def random_tensors(rng, n):
    rot = np.linalg.qr(rng.normal(size=(n, 3, 3)))[0]
    evals = rng.uniform(0.1e-3, 2.5e-3, size=(n, 3))
    return np.einsum("vij,vj,vkj->vik", rot, evals, rot), evals, rot


def test_signal_matches_dipy_single_tensor_to_1e_minus_6(rng):
    gtab = make_protocol("dense")
    dipy_gtab = gradient_table(gtab.bvals, bvecs=gtab.bvecs)
    mats, evals, rot = random_tensors(rng, 20)
    ours = dti_signal(T(np.full(20, 100.0)), six_from_tensor(T(mats)), T(gtab.bvals), T(gtab.bvecs)).numpy()
    for v in range(20):
        ref = single_tensor(dipy_gtab, S0=100.0, evals=evals[v], evecs=rot[v])
        np.testing.assert_allclose(ours[v], ref, rtol=1e-6)


def test_cholesky_parameterisation_is_psd_and_invertible(rng):
    raw = T(rng.normal(size=(50, 6)) * 2)
    tensors = cholesky_to_tensor(raw)
    assert torch.linalg.eigvalsh(tensor_from_six(tensors)).min() >= 0
    back = cholesky_to_tensor(tensor_to_cholesky(tensors, floor=1e-12))
    np.testing.assert_allclose(back.numpy(), tensors.numpy(), rtol=1e-6, atol=1e-12)


def test_maps_match_dipy_definitions(rng):
    mats, evals, rot = random_tensors(rng, 30)
    maps = tensor_maps(six_from_tensor(T(mats)))
    ev = np.sort(evals, axis=1)[:, ::-1]
    np.testing.assert_allclose(maps["evals"].numpy(), ev, rtol=1e-10)
    np.testing.assert_allclose(maps["fa"].numpy(), dipy_fa(ev), rtol=1e-10)
    np.testing.assert_allclose(maps["md"].numpy(), ev.mean(1), rtol=1e-10)
    np.testing.assert_allclose(maps["rd"].numpy(), ev[:, 1:].mean(1), rtol=1e-10)
    principal = rot[np.arange(30), :, np.argmax(evals, axis=1)]
    cos = np.abs((maps["evec1"].numpy() * principal).sum(1))
    assert cos.min() > 1 - 1e-9


def test_runs_in_float32_and_is_differentiable():
    gtab = make_protocol("single_shell")
    raw = torch.zeros(4, 6, requires_grad=True)
    sig = dti_signal(torch.ones(4), cholesky_to_tensor(raw), torch.tensor(gtab.bvals, dtype=torch.float32),
                     torch.tensor(gtab.bvecs, dtype=torch.float32))
    assert sig.dtype == torch.float32
    sig.sum().backward()
    assert torch.isfinite(raw.grad).all() and raw.grad.abs().sum() > 0


@pytest.mark.parametrize("n", [1, 7])
def test_tensor_six_round_trip(n, rng):
    six = T(rng.normal(size=(n, 6)))
    np.testing.assert_array_equal(six_from_tensor(tensor_from_six(six)).numpy(), six.numpy())
