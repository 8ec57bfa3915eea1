"""The tissue description against the conventional fits it stands for."""

import numpy as np
import torch

from pigment_connect.fit import DiffusionKurtosisModel, NoddiModel
from pigment_connect.physics import noddi_signal
from pigment_connect.pigment.simulate import canonical_protocol
from pigment_connect.pigment.tissue import (
    cayley_rotation, dki_tissue_signal, features_from_fits, kurtosis_asymmetry, noddi_tissue_signal, tissue_maps,
)

T = lambda a: torch.as_tensor(np.array(a, dtype=np.float64))  # noqa: E731


def _tissue(n=4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    f = T([[np.log(1.7e-3), np.log(0.45e-3), np.log(0.3e-3), 0.4, 1.2, 0.9, 0.5, -1.5, -2.5],
           [np.log(0.9e-3), np.log(0.8e-3), np.log(0.7e-3), 0.8, 0.7, 0.75, -0.5, 0.8, -1.0]] * (n // 2))
    rot = cayley_rotation(torch.randn(n, 3, generator=gen, dtype=torch.float64),
                          torch.eye(3, dtype=torch.float64).expand(n, 3, 3))
    return f, rot


def test_cayley_rotation_is_a_rotation():
    _, rot = _tissue()
    eye = torch.eye(3, dtype=torch.float64).expand_as(rot)
    torch.testing.assert_close(rot @ rot.transpose(1, 2), eye)
    torch.testing.assert_close(torch.linalg.det(rot), torch.ones(len(rot), dtype=torch.float64))


def test_kurtosis_signal_and_maps_match_the_conventional_fit():
    """A conventional DKI fit of the tissue's kurtosis signal returns the tissue's own maps."""
    gtab = canonical_protocol()
    f, rot = _tissue()
    sig = dki_tissue_signal(torch.ones(len(f), dtype=torch.float64), f, rot, T(gtab.bvals), T(gtab.bvecs))
    fit = DiffusionKurtosisModel(gtab).fit(sig.numpy()[:, None, None, :])
    ours = tissue_maps(f)
    for name in ("fa", "md", "ad", "rd", "mk", "ak", "rk", "mkt"):
        np.testing.assert_allclose(fit._map(name).ravel(), ours[name].numpy(), rtol=1e-6, atol=1e-9, err_msg=name)
    feats, evecs = features_from_fits(T(fit.tensor.reshape(-1, 6)), T(fit.kurtosis_tensor.reshape(-1, 15)),
                                      torch.sigmoid(f[:, 6]), torch.sigmoid(f[:, 7]), torch.sigmoid(f[:, 8]))
    torch.testing.assert_close(feats, f, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close((evecs[:, :, 0] * rot[:, :, 0]).sum(-1).abs(), torch.ones(len(f), dtype=torch.float64))


def test_kurtosis_asymmetry_signal_and_maps_match_the_conventional_fit():
    """With W∆ (W(e2) − W(e3) = 2 W∆) the tissue's MK and RK are still the conventional fit's, and
    the fit's kurtosis tensor gives W∆ back; AK, MKT and the tensor maps are unchanged by it."""
    gtab = canonical_protocol()
    f, rot = _tissue()
    w_asym = T([0.3, -0.1, 0.2, 0.05])
    sig = dki_tissue_signal(torch.ones(len(f), dtype=torch.float64), f, rot, T(gtab.bvals), T(gtab.bvecs), w_asym)
    fit = DiffusionKurtosisModel(gtab).fit(sig.numpy()[:, None, None, :])
    ours = tissue_maps(f, w_asym=w_asym)
    for name in ("fa", "md", "mk", "ak", "rk", "mkt"):
        np.testing.assert_allclose(fit._map(name).ravel(), ours[name].numpy(), rtol=1e-6, atol=1e-9, err_msg=name)
    symmetric = tissue_maps(f)
    for name in ("fa", "md", "ak", "mkt"):
        torch.testing.assert_close(symmetric[name], ours[name])
    assert (symmetric["rk"] - ours["rk"]).abs().min() > 1e-3  # RK sees it
    evecs = features_from_fits(T(fit.tensor.reshape(-1, 6)), T(fit.kurtosis_tensor.reshape(-1, 15)),
                               *(torch.full((len(f),), 0.5, dtype=torch.float64),) * 3)[1]
    torch.testing.assert_close(kurtosis_asymmetry(T(fit.kurtosis_tensor.reshape(-1, 15)), evecs), w_asym)


def test_noddi_signal_is_the_physics_model_about_e1():
    gtab = canonical_protocol()
    f, rot = _tissue()
    ours = noddi_tissue_signal(torch.ones(len(f), dtype=torch.float64), f, rot, T(gtab.bvals), T(gtab.bvecs))
    ref = noddi_signal(torch.ones(len(f), dtype=torch.float64), torch.sigmoid(f[:, 6]), torch.sigmoid(f[:, 7]),
                       torch.sigmoid(f[:, 8]), rot[:, :, 0], T(gtab.bvals), T(gtab.bvecs))
    torch.testing.assert_close(ours, ref)
    fit = NoddiModel(gtab, dtype=torch.float64).fit(ours.numpy()[:, None, None, :])
    np.testing.assert_allclose(fit.ndi.ravel(), torch.sigmoid(f[:, 6]).numpy(), atol=1e-3)
