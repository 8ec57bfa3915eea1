"""Differentiable diffusion signal models in torch, batched over voxels.

Each model maps physical parameters to signal for any gradient table, so the same code serves
the conventional voxel-wise fits (:mod:`pigment_connect.fit`) and the PIGMENT prior. Everything
runs on the device and dtype of its inputs (float32 by default, float64 for tests).

Modules: :mod:`.dti`, :mod:`.dki`, :mod:`.noddi` (signal models and derived maps),
:mod:`.noise` (Gaussian and Rician likelihoods), :mod:`.protocol` (tables as tensors).
"""

from .dki import dki_signal, kurtosis_maps
from .dti import cholesky_to_tensor, dti_signal, tensor_maps, tensor_to_cholesky
from .noddi import kappa_from_odi, noddi_signal, odi_from_kappa, watson_stick_signal, watson_tau
from .noise import gaussian_nll, rician_nll
from .protocol import hemisphere_directions

__all__ = [
    "hemisphere_directions",
    "dti_signal",
    "cholesky_to_tensor",
    "tensor_to_cholesky",
    "tensor_maps",
    "dki_signal",
    "kurtosis_maps",
    "noddi_signal",
    "watson_stick_signal",
    "watson_tau",
    "kappa_from_odi",
    "odi_from_kappa",
    "gaussian_nll",
    "rician_nll",
]
