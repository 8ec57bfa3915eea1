"""Gradient-orientation check: is the b-vector table the one that gives coherent fibres?

A wrong b-vector table (an axis flipped or two axes swapped, common after format conversions)
still fits tensors with plausible FA and MD, but their orientations are mirrored or permuted, so
tractography breaks up. Following Jeurissen et al. 2014 (Med Image Anal 18:953; MRtrix3
``dwigradcheck``), we track a quick whole-brain sample under each of the 24 distinct axis
permutations and sign flips of the table and score fibre coherence as the mean streamline length.

Refitting is not needed: the log-linear tensor fit with directions P·g (P a signed permutation
matrix) equals P·D·Pᵀ for the tensor D fitted with g, so one fit serves all 24 candidates.
Flipping all three axes is the identity for a tensor, so sign flips are taken modulo a global
sign (none, x, y, z), times the 6 axis orders.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .._typing import RandomState
from ..errors import InputError, TrackError
from ..io.maps import MicrostructureMaps

__all__ = ["GradientCheck", "check_gradients", "CANDIDATES"]

log = logging.getLogger(__name__)

_AXES = "xyz"
CANDIDATES: tuple[tuple[tuple[int, int, int], tuple[int, int, int]], ...] = tuple(
    (perm, signs)
    for perm in itertools.permutations(range(3))
    for signs in ((1, 1, 1), (-1, 1, 1), (1, -1, 1), (1, 1, -1))
)
"""(axis order, signs): the corrected direction is g'_i = signs_i · g_{order_i}."""


def _describe(perm: tuple[int, int, int], signs: tuple[int, int, int]) -> str:
    """Short name of a candidate: 'none', 'flip x', 'swap x,y', 'order z,x,y + flip y' ..."""
    parts = []
    if perm != (0, 1, 2):
        moved = [i for i in range(3) if perm[i] != i]
        if len(moved) == 2:
            parts.append(f"swap {_AXES[moved[0]]},{_AXES[moved[1]]}")
        else:
            parts.append("order " + ",".join(_AXES[p] for p in perm))
    flips = [_AXES[i] for i in range(3) if signs[i] < 0]
    if flips:
        parts.append("flip " + ",".join(flips))
    return " + ".join(parts) or "none"


def _file_signs(perm, signs, affine: np.ndarray) -> tuple[int, int, int]:
    """Signs of the same correction applied to the rows of an FSL .bvec file, whose x row is
    negated for images with a positive-determinant affine (see :mod:`pigment_connect.io.gradients`):
    file' = F·P·F·file with F = diag(±1, 1, 1)."""
    f = (-1 if np.linalg.det(np.asarray(affine, dtype=float)[:3, :3]) > 0 else 1, 1, 1)
    out = [int(signs[i] * f[i] * f[perm[i]]) for i in range(3)]
    if sum(v < 0 for v in out) >= 2:  # negating every row changes no tensor: say the shorter fix
        out = [-v for v in out]
    return tuple(out)


def _fix_text(perm: tuple[int, int, int], signs: tuple[int, int, int]) -> str:
    """What to do to the rows of an FSL .bvec file, given the row order and the row signs."""
    steps = []
    if perm != (0, 1, 2):
        steps.append("reorder the rows of the .bvec file to (" + ", ".join(f"row {p + 1}" for p in perm) + ")")
    flips = [str(i + 1) for i in range(3) if signs[i] < 0]
    if flips:
        steps.append(f"negate row{'s' if len(flips) > 1 else ''} {', '.join(flips)}")
    return " and ".join(steps) + " (or write the corrected files with `pigment-connect check-gradients DWI --export-fsl BVEC BVAL`)"


def transform_tensor(tensor: np.ndarray, perm, signs) -> np.ndarray:
    """(..., 6) tensors (Dxx, Dyy, Dzz, Dxy, Dxz, Dyz) of the fit with directions g → those of the
    fit with g'_i = signs_i · g_{perm_i}: D'_ij = s_i s_j D_{perm_i perm_j}."""
    index = {(0, 0): 0, (1, 1): 1, (2, 2): 2, (0, 1): 3, (1, 0): 3, (0, 2): 4, (2, 0): 4, (1, 2): 5, (2, 1): 5}
    out = np.empty_like(tensor)
    for k, (i, j) in enumerate(((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))):
        out[..., k] = signs[i] * signs[j] * tensor[..., index[(perm[i], perm[j])]]
    return out


@dataclass(frozen=True)
class GradientCheck:
    """Result of :func:`check_gradients`.

    Attributes
    ----------
    table : DataFrame, one row per candidate (``transform``, ``order``, ``signs``,
        ``mean_length_mm``, ``streamlines``), best first.
    best : the best candidate's name (``"none"`` when the given table is best).
    best_order, best_signs : the best correction in the image-axis frame: g'_i = signs_i · g_{order_i}.
    file_signs : the row signs of the same correction on an FSL .bvec file (same row order).
    given_length_mm, best_length_mm : mean streamline length with the given and the best table.
    """

    table: pd.DataFrame
    best: str
    best_order: tuple[int, int, int]
    best_signs: tuple[int, int, int]
    file_signs: tuple[int, int, int]
    given_length_mm: float
    best_length_mm: float
    margin: float

    @property
    def given_is_best(self) -> bool:
        """True unless another table gives streamlines longer by more than ``margin`` (relative)."""
        return self.best == "none" or self.best_length_mm <= self.given_length_mm * (1.0 + self.margin)

    @property
    def verdict(self) -> str:
        """One sentence: whether the given table gives the most coherent fibres."""
        if self.given_is_best:
            return (f"b-vector orientation check: the given table gives the most coherent fibres "
                    f"(mean streamline length {self.given_length_mm:.1f} mm).")
        return (f"b-vector orientation check: the table looks wrong: '{self.best}' gives mean streamline length "
                f"{self.best_length_mm:.1f} mm against {self.given_length_mm:.1f} mm as given.")

    @property
    def fix(self) -> str | None:
        """What to do to the .bvec file, or None when the given table is the best."""
        return None if self.given_is_best else _fix_text(self.best_order, self.file_signs) + "."

    @property
    def message(self) -> str:
        """The verdict, and the fix when the given table is not the best."""
        return self.verdict if self.fix is None else f"{self.verdict} Fix: {self.fix}"

    def corrected_bvecs(self, bvecs: np.ndarray) -> np.ndarray:
        """(N, 3) directions (image-axis frame) with the best transform applied."""
        bvecs = np.asarray(bvecs, dtype=np.float64)
        return bvecs[:, list(self.best_order)] * np.asarray(self.best_signs, dtype=np.float64)


def check_gradients(maps: MicrostructureMaps, *, n_seeds: int = 4000, margin: float = 0.05,
                    random_state: RandomState = 0, n_threads: int | None = None) -> GradientCheck:
    """Score the 24 axis permutations / flips of the table behind ``maps`` by fibre coherence.

    Parameters
    ----------
    maps : tensor maps (``tensor``, ``fa``) fitted with the table being checked.
    n_seeds : seeds of the quick whole-brain deterministic tracking (same seeds for every candidate).
    margin : relative gain in mean streamline length a candidate needs over the given table to
        be reported as better (guards against ties on symmetric or tiny data).
    random_state : seed of the seed positions.
    n_threads : numba threads.

    Returns
    -------
    GradientCheck
    """
    from .tracker import Tracker, seeds_from_mask

    if "tensor" not in maps or "fa" not in maps:
        raise InputError(f"the gradient check needs tensor maps; got {maps.names}.", fix="fit a tensor model first.")
    fa = np.asarray(maps["fa"])
    mask = maps.mask if maps.mask is not None else fa > 0
    seed_region = mask & (fa >= 0.3)
    if seed_region.sum() < 10:
        raise InputError(f"only {int(seed_region.sum())} voxels have FA ≥ 0.3: too little white matter to check "
                         "the gradient orientation.", fix="check the brain mask, or skip the check.")
    seeds = seeds_from_mask(seed_region, n_total=n_seeds, random_state=random_state)
    world = seeds @ maps.affine[:3, :3].T + maps.affine[:3, 3]
    tracker = Tracker(algorithm="eigenvector", fa_threshold=0.15, max_angle=45.0, min_length=0.0, step_size=0.5)
    tensor = np.asarray(maps["tensor"], dtype=np.float32)
    rows = []
    for perm, signs in CANDIDATES:
        candidate = MicrostructureMaps({"tensor": transform_tensor(tensor, perm, signs), "fa": fa}, maps.affine,
                                       "tensor", mask=mask)
        try:
            lengths = tracker.track(candidate, seeds=world, n_threads=n_threads).lengths
        except TrackError as exc:  # a candidate producing nothing scores 0
            log.debug("gradient candidate %s: %s", _describe(perm, signs), exc)
            lengths = np.zeros(0)
        rows.append({"transform": _describe(perm, signs), "order": perm, "signs": signs,
                     "mean_length_mm": float(lengths.sum() / n_seeds), "streamlines": int(len(lengths))})
    table = pd.DataFrame(rows).sort_values("mean_length_mm", ascending=False, kind="stable").reset_index(drop=True)
    given = float(table.loc[table["transform"] == "none", "mean_length_mm"].iloc[0])
    top = table.iloc[0]
    order, signs = tuple(top["order"]), tuple(top["signs"])
    result = GradientCheck(table, str(top["transform"]), order, signs, _file_signs(order, signs, maps.affine), given,
                           float(top["mean_length_mm"]), float(margin))
    log.info("%s", result.message)
    return result
