"""Track-density images: how many streamlines visit each voxel (MRtrix3 ``tckmap``, DIPY
``density_map``), from a Tractogram or streamed from a file."""

from __future__ import annotations

import numpy as np

from .._typing import Affine, PathLike
from ..errors import InputError
from ..io.grid import world_to_voxel
from ..io.stream import iter_tractogram
from ..io.tractogram import Tractogram
from ._kernels import streamline_density

__all__ = ["density_map"]


def density_map(tractogram: Tractogram | PathLike, *, shape: tuple[int, int, int] | None = None,
                affine: Affine | None = None, upsample: int = 1, chunk_size: int = 500_000) -> np.ndarray:
    """Number of streamlines visiting each voxel, each streamline counted once per voxel.

    Equals MRtrix3 ``tckmap tracks.tck tdi.nii -template image`` when no upsampling is done,
    i.e. for .tck files that record no step size (as pigment_connect's do: its points are at most
    half a voxel apart). ``upsample`` > 1 cuts every segment into that many straight pieces
    before mapping, for sparsely sampled streamlines (tckmap upsamples along Hermite curves).

    Parameters
    ----------
    tractogram : a Tractogram, or a .tck/.trk/.trx file read in chunks of ``chunk_size``.
    shape, affine : output grid, any voxel size (default: the tractogram's own grid); a .tck
        written by other software needs them.
    upsample : int ≥ 1, pieces per segment.

    Returns
    -------
    (X, Y, Z) int64 counts; a point belongs to the voxel whose centre is nearest.
    """
    if int(upsample) < 1:
        raise InputError(f"upsample must be a positive integer, got {upsample}.")
    if (shape is None) != (affine is None):
        raise InputError("give both shape and affine of the output grid, or neither.")
    reference = None if shape is None else (tuple(int(v) for v in shape), np.asarray(affine, dtype=np.float64))
    chunks = [tractogram] if isinstance(tractogram, Tractogram) else iter_tractogram(
        tractogram, chunk_size=chunk_size, reference=reference)
    counts = last_seen = None
    first_id = 0
    for chunk in chunks:
        if counts is None:
            grid_shape, grid_affine = reference if reference is not None else (chunk.shape, chunk.affine)
            counts = np.zeros(grid_shape, dtype=np.int64)
            last_seen = np.full(grid_shape, -1, dtype=np.int64)
        vox = world_to_voxel(chunk.points.astype(np.float64), grid_affine)
        streamline_density(np.ascontiguousarray(vox), chunk.offsets, int(upsample), first_id, last_seen, counts)
        first_id += len(chunk)
    if counts is None:
        raise InputError("the tractogram holds no streamlines.")
    return counts
