"""Assignment of streamline end points to parcellation nodes.

Modes (MRtrix3 ``tck2connectome`` vocabulary):

``"end_voxel"``
    the label of the voxel containing the end point (``-assignment_end_voxels``; DIPY's
    ``connectivity_matrix``).
``"radial"``
    the end voxel's label if non-zero, else the nearest labelled voxel centre within ``radius``
    mm of the end point (``-assignment_radial_search``; MRtrix3's default radius is 4 mm,
    QSIRecon's 2 mm). Ties go to the lower label.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..io.grid import world_to_voxel
from ..io.parcellation import Parcellation
from ..io.tractogram import Tractogram

__all__ = ["assign_endpoints", "ASSIGNMENT_MODES"]

ASSIGNMENT_MODES = ("end_voxel", "radial")


def _label_at(labels: np.ndarray, ijk: np.ndarray) -> np.ndarray:
    inside = np.all((ijk >= 0) & (ijk < np.array(labels.shape)), axis=-1)
    out = np.zeros(ijk.shape[:-1], dtype=np.int32)
    out[inside] = labels[tuple(ijk[inside].T)]
    return out


def assign_endpoints(
    tractogram: Tractogram, parcellation: Parcellation, *, mode: str = "radial", radius: float = 2.0
) -> np.ndarray:
    """Node label (0 = none) of both end points of every streamline.

    Parameters
    ----------
    tractogram : Tractogram on the parcellation's grid.
    parcellation : Parcellation
    mode : one of :data:`ASSIGNMENT_MODES`.
    radius : mm, search radius of the ``"radial"`` mode.

    Returns
    -------
    (S, 2) int32 labels.
    """
    if mode not in ASSIGNMENT_MODES:
        raise InputError(f"assignment mode must be one of {ASSIGNMENT_MODES}, got {mode!r}.")
    if radius < 0:
        raise InputError(f"search radius must be non-negative (mm), got {radius}.")
    ends = tractogram.endpoints().reshape(-1, 3).astype(np.float64)
    vox = world_to_voxel(ends, parcellation.affine)
    ijk = np.floor(vox + 0.5).astype(np.int64)
    labels = _label_at(parcellation.labels, ijk)
    if mode == "radial" and radius > 0:
        missing = np.flatnonzero(labels == 0)
        if missing.size:
            labels[missing] = _radial_search(parcellation, vox[missing], radius)
    return labels.reshape(-1, 2)


def _radial_search(parcellation: Parcellation, vox: np.ndarray, radius: float) -> np.ndarray:
    """Nearest labelled voxel centre within ``radius`` mm of each point (vectorised over points)."""
    lin = parcellation.affine[:3, :3]
    vs = np.linalg.norm(lin, axis=0)
    reach = np.ceil(radius / vs).astype(int) + 1
    offsets = np.stack(
        np.meshgrid(*[np.arange(-r, r + 1) for r in reach], indexing="ij"), axis=-1
    ).reshape(-1, 3)
    base = np.floor(vox + 0.5).astype(np.int64)
    best = np.zeros(len(vox), dtype=np.int32)
    best_d = np.full(len(vox), np.inf)
    for off in offsets:
        cand = base + off
        lab = _label_at(parcellation.labels, cand)
        d = np.linalg.norm((cand - vox) @ lin.T, axis=1)  # mm from the point to the voxel centre
        better = (lab > 0) & (d <= radius) & ((d < best_d - 1e-9) | ((np.abs(d - best_d) <= 1e-9) & (lab < best)))
        best[better] = lab[better]
        best_d[better] = d[better]
    return best
