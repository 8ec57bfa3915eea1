"""PIGMENT's generative tissue prior: tissue features (:mod:`.tissue`), the VAE (:mod:`.network`),
the simulated training data (:mod:`.simulate`) and training (:mod:`.train`)."""

from .network import SHIPPED_PRIOR, TissuePrior, load_prior
from .tissue import FEATURES, MAP_NAMES

__all__ = ["FEATURES", "MAP_NAMES", "SHIPPED_PRIOR", "TissuePrior", "load_prior"]
