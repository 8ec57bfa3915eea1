"""One exception hierarchy for pigment_connect.

Every error raised on bad input names the offending file (when there is one) and says how to fix
it, so a user never has to read a traceback from inside numpy or nibabel.

``PigmentError``
    base of everything raised on purpose by this package.
``InputError``
    bad or inconsistent input data (files, arrays, gradient tables); the CLI exits with code 2.
``ProtocolError``
    the acquisition cannot support the requested model (too few directions, no b=0, ...).
``FitError``, ``TrackError``, ``ConnectomeError``, ``PipelineError``
    failures inside a stage.
"""

from __future__ import annotations

import os

__all__ = [
    "PigmentError",
    "InputError",
    "ProtocolError",
    "FitError",
    "TrackError",
    "ConnectomeError",
    "PipelineError",
    "PigmentWarning",
    "InputWarning",
]


class PigmentError(Exception):
    """Base class of all errors raised on purpose by pigment_connect."""


class InputError(PigmentError, ValueError):
    """Bad input data.

    Parameters
    ----------
    problem : str
        What is wrong, in one sentence.
    file : str or os.PathLike, optional
        The file the problem was found in.
    fix : str, optional
        What the user can do about it.
    """

    def __init__(self, problem: str, *, file: str | os.PathLike | None = None, fix: str | None = None):
        self.problem = problem
        self.file = None if file is None else os.fspath(file)
        self.fix = fix
        parts = [f"{self.file}: {problem}" if self.file else problem]
        if fix:
            parts.append(f"Fix: {fix}")
        super().__init__(" ".join(parts))


class ProtocolError(InputError):
    """The gradient table cannot support the requested model."""


class FitError(PigmentError):
    """A model fit failed."""


class TrackError(PigmentError):
    """Tractography failed or produced nothing usable."""


class ConnectomeError(PigmentError):
    """Connectome construction failed or produced nothing usable."""


class PipelineError(PigmentError):
    """A cohort run failed as a whole (individual subject failures are recorded, not raised)."""


class PigmentWarning(UserWarning):
    """Base class of warnings issued by pigment_connect."""


class InputWarning(PigmentWarning):
    """Input was usable after a documented repair (masked NaNs, b≈0 volumes, computed mask...)."""
