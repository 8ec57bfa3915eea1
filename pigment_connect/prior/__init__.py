"""Deprecated: PIGMENT's prior moved to :mod:`pigment_connect.pigment` (this alias goes in the
next release)."""

import warnings

from ..pigment import FEATURES, MAP_NAMES, SHIPPED_PRIOR, TissuePrior, load_prior

warnings.warn("pigment_connect.prior is deprecated: import from pigment_connect.pigment.", DeprecationWarning,
              stacklevel=2)

__all__ = ["FEATURES", "MAP_NAMES", "SHIPPED_PRIOR", "TissuePrior", "load_prior"]
