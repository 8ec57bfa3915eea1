"""Microstructure models in the ``Model(gtab).fit(dwi) -> Fit`` pattern (conventional voxel-wise fits).

:class:`TensorModel` (DTI), :class:`DiffusionKurtosisModel` (DKI) and :class:`NoddiModel`
(NODDI-Watson) run batched in torch, on CUDA when available. :class:`PigmentModel` is the
PIGMENT zero-shot fit: the shipped tissue prior adapted to any gradient table;
:class:`AmortisedPigment` its amortised form, trained once per table and applied in one pass.
"""

from .amortised import AmortisedPigment
from .dki import DiffusionKurtosisFit, DiffusionKurtosisModel
from .dti import TensorFit, TensorModel
from .noddi import NoddiFit, NoddiModel
from .zero_shot import PigmentFit, PigmentModel

__all__ = ["TensorModel", "TensorFit", "DiffusionKurtosisModel", "DiffusionKurtosisFit", "NoddiModel", "NoddiFit",
           "PigmentModel", "PigmentFit", "AmortisedPigment"]
