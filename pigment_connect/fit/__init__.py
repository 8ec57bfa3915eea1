"""Microstructure models in the ``Model(gtab).fit(dwi) -> Fit`` pattern."""

from .dti import TensorFit, TensorModel, fractional_anisotropy

__all__ = ["TensorModel", "TensorFit", "fractional_anisotropy"]
