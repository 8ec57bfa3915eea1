"""What else a fit gives beyond maps: virtual scans and repaired ones.

- :mod:`.virtual` — :func:`synthesize`: the signal of volumes that were not measured, for any
  table (a shipped standard one, :mod:`.tables`, or the user's), from any fit's ``predict``;
  PIGMENT by default. Written with a sidecar saying which volumes are measured, which predicted.
- :mod:`.repair` — :func:`repair`: outlier slices and volumes found from the residuals against a
  fit and replaced by the prediction of a fit that did not see them.
"""

from .repair import OutlierReport, RepairResult, detect_outliers, repair
from .tables import STANDARD_TABLES, ExtrapolationWarning, check_target_table, read_table, standard_table
from .virtual import PREDICTION_MODELS, VirtualScan, fit_for_prediction, synthesize

__all__ = ["synthesize", "VirtualScan", "fit_for_prediction", "PREDICTION_MODELS", "repair", "RepairResult",
           "detect_outliers", "OutlierReport", "standard_table", "read_table", "check_target_table",
           "STANDARD_TABLES", "ExtrapolationWarning"]
