"""The one place that holds DIPY's logger at a level (a foundation module: the command line
and the cohort runner's worker processes both use it)."""

from __future__ import annotations

import logging

__all__ = ["hold_dipy_logging"]


def hold_dipy_logging(level: int) -> None:
    """DIPY's logger at ``level``. DIPY installs its own INFO handler (registration steps) and
    sets its level when first imported: import it now, then set ours."""
    try:
        import dipy.utils.logging  # noqa: F401
    except ImportError:  # pragma: no cover - DIPY is a dependency
        pass
    logging.getLogger("dipy").setLevel(level)
