"""Checks that two images share a voxel grid (shape and affine)."""

from __future__ import annotations

import numpy as np

from .._typing import Affine, PathLike
from ..errors import InputError

__all__ = ["check_same_grid", "voxel_sizes", "world_to_voxel", "axes_rotation", "AFFINE_ATOL_MM"]

AFFINE_ATOL_MM = 1e-3
"""mm; affines whose entries differ by at most this are the same grid (header float noise)."""


def voxel_sizes(affine: Affine) -> np.ndarray:
    """(3,) float, mm: lengths of the affine's columns."""
    return np.linalg.norm(np.asarray(affine, dtype=np.float64)[:3, :3], axis=0)


def axes_rotation(affine: Affine) -> np.ndarray:
    """(3, 3) float64 rotation (with any flip) of a unit direction along the image axes into the
    scanner axes: the affine's 3×3 part with its columns normalised (voxel size removed)."""
    rotation = np.asarray(affine, dtype=np.float64)[:3, :3]
    return np.ascontiguousarray(rotation / np.linalg.norm(rotation, axis=0, keepdims=True))


def world_to_voxel(points: np.ndarray, affine: Affine) -> np.ndarray:
    """(..., 3) RAS+ mm points → continuous voxel indices of the grid ``affine`` (centres at integers)."""
    inv = np.linalg.inv(np.asarray(affine, dtype=np.float64))
    return np.asarray(points) @ inv[:3, :3].T + inv[:3, 3]


def check_same_grid(
    shape: tuple[int, ...],
    affine: Affine,
    ref_shape: tuple[int, ...],
    ref_affine: Affine,
    *,
    what: str,
    file: PathLike | None = None,
    ref_name: str = "the DWI",
) -> None:
    """Raise :class:`InputError` unless ``shape``/``affine`` match the reference grid.

    Parameters
    ----------
    shape, affine : spatial shape (3 ints) and (4, 4) affine of the image being checked.
    ref_shape, ref_affine : the reference grid (usually the DWI's).
    what : what the checked image is ("mask", "parcellation"), for the message.
    file : the checked image's file, for the message.
    """
    if tuple(shape[:3]) != tuple(ref_shape[:3]):
        raise InputError(
            f"{what} grid {tuple(shape[:3])} does not match {ref_name} grid {tuple(ref_shape[:3])}.",
            file=file,
            fix=f"resample the {what} onto {ref_name} (nearest neighbour for labels), or register it first.",
        )
    diff = np.abs(np.asarray(affine, dtype=float) - np.asarray(ref_affine, dtype=float)).max()
    if diff > AFFINE_ATOL_MM:
        raise InputError(
            f"{what} affine differs from {ref_name} affine by up to {diff:.3g} mm: the images are not aligned.",
            file=file,
            fix=f"resample the {what} into {ref_name} space, or register it first.",
        )
