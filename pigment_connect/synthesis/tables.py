"""Target gradient tables of a virtual scan: the shipped standard schemes and the checks a
requested table must pass (the physics the fits can predict)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from .._typing import Affine, PathLike
from ..errors import InputError, PigmentWarning
from ..io.gradients import GradientTable

__all__ = ["STANDARD_TABLES", "standard_table", "read_table", "check_target_table", "MAX_B", "ExtrapolationWarning"]

TABLE_DIR = Path(__file__).resolve().parent / "tables"
STANDARD_TABLES = ("hardi-3shell", "dti-64", "abcd-like")
"""Names of the shipped tables (``tables/README.md`` describes each)."""
MAX_B = 10_000.0
"""The largest b-value (s/mm²) a virtual scan may ask for: beyond it the tissue models' signal is
noise floor in any scanner, and the kurtosis/NODDI descriptions were never checked there."""
EXTRAPOLATION_FACTOR = 1.5
"""A target b-value more than this factor above the largest measured one is extrapolated (warned)."""


class ExtrapolationWarning(PigmentWarning):
    """A virtual volume's b-value lies far beyond the measured ones: its signal is the models'
    extrapolation, not an interpolation of the data."""


def standard_table(name: str) -> GradientTable:
    """The shipped table ``name`` (:data:`STANDARD_TABLES`), its directions in the image-axis frame."""
    if name not in STANDARD_TABLES:
        raise InputError(f"no standard table named {name!r}.", fix=f"use one of {', '.join(STANDARD_TABLES)}, "
                         "or give your own --table BVAL BVEC.")
    bvals = np.loadtxt(TABLE_DIR / f"{name}.bval", ndmin=1)
    bvecs = np.loadtxt(TABLE_DIR / f"{name}.bvec", ndmin=2).T
    return GradientTable(bvals, bvecs, source=f"standard table {name}")


def read_table(bval: PathLike, bvec: PathLike, *, affine: Affine) -> GradientTable:
    """A requested table from FSL files written for an image with ``affine`` (the input scan's)."""
    return GradientTable.from_fsl(bval, bvec, affine=affine)


def check_target_table(target: GradientTable, measured: GradientTable) -> None:
    """Refuse a target table outside the physics; warn where it extrapolates far beyond ``measured``.

    Raises
    ------
    InputError
        A b-value above :data:`MAX_B` (NaN, negative b-values and non-unit directions are refused
        when the table is built, :class:`~pigment_connect.io.gradients.GradientTable`).
    """
    too_high = np.flatnonzero(target.bvals > MAX_B)
    if len(too_high):
        raise InputError(f"the requested table asks for b = {target.bvals[too_high[0]]:g} s/mm² "
                         f"(volume {int(too_high[0])}), above {MAX_B:g}.", file=target.source,
                         fix="predict b-values up to 10000 s/mm² (check the .bval is in s/mm², not s/m²).")
    b_max = float(measured.bvals.max())
    far = target.bvals > EXTRAPOLATION_FACTOR * b_max
    if far.any():
        warnings.warn(f"{int(far.sum())} requested volumes have b up to {target.bvals.max():g} s/mm², more than "
                      f"{EXTRAPOLATION_FACTOR:g}× the largest measured ({b_max:g}): their signal is extrapolated by "
                      "the model, not interpolated from the data.", ExtrapolationWarning, stacklevel=3)
