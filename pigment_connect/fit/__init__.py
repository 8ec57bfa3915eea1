"""Conventional microstructure models in the ``Model(gtab).fit(dwi) -> Fit`` pattern.

:class:`TensorModel` (DTI), :class:`DiffusionKurtosisModel` (DKI) and :class:`NoddiModel`
(NODDI-Watson) run batched in torch, on CUDA when available. PIGMENT, the project's own
method, lives in :mod:`pigment_connect.pigment` (:class:`~pigment_connect.pigment.PigmentModel`,
:class:`~pigment_connect.pigment.AmortisedPigmentModel`) and builds on the helpers here.
"""

from .dki import DiffusionKurtosisFit, DiffusionKurtosisModel
from .dti import TensorFit, TensorModel
from .noddi import NoddiFit, NoddiModel

__all__ = ["TensorModel", "TensorFit", "DiffusionKurtosisModel", "DiffusionKurtosisFit", "NoddiModel", "NoddiFit"]
