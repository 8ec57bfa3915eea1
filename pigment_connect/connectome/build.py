"""Weighted connectomes from a tractogram and a parcellation.

Weightings
----------
``count``        number of streamlines joining the two nodes.
``invnodevol``   count × 2 / (V_i + V_j), node volumes in mm³ (MRtrix3 ``-scale_invnodevol``).
``length``       mean streamline length of the edge, mm (0 where there is no streamline).
``mean_<map>``   mean over the edge's streamlines of each streamline's mean map value along its
                 points (nearest voxel), e.g. ``mean_fa``; needs ``maps`` holding ``<map>``.

All matrices are symmetric. Self-connections (both ends in one node) are dropped unless
``self_connections=True``, in which case they sit on the diagonal. Streamlines with an
unassigned end are counted in the provenance (``n_unassigned``) and never silently lost.
"""

from __future__ import annotations

import warnings

import numpy as np

from .. import __version__
from ..errors import ConnectomeError, InputError, PigmentWarning
from ..io.connectome import Connectome
from ..io.grid import check_same_grid, world_to_voxel
from ..io.maps import MicrostructureMaps
from ..io.parcellation import Parcellation
from ..io.tractogram import Tractogram
from .assign import assign_endpoints

__all__ = ["build_connectomes", "BASE_WEIGHTINGS"]

BASE_WEIGHTINGS = ("count", "invnodevol", "length")


def build_connectomes(
    tractogram: Tractogram,
    parcellation: Parcellation,
    *,
    weightings: tuple[str, ...] = ("count",),
    maps: MicrostructureMaps | None = None,
    assignment: str = "radial",
    radius: float = 2.0,
    self_connections: bool = False,
) -> dict[str, Connectome]:
    """Build one connectome per weighting from a single pass over the streamlines.

    Parameters
    ----------
    tractogram : Tractogram tracked on the parcellation's grid.
    parcellation : Parcellation in the same space (check on shape and affine).
    weightings : names from the module docstring.
    maps : MicrostructureMaps for ``mean_<map>`` weightings.
    assignment, radius : see :func:`pigment_connect.connectome.assign.assign_endpoints`.
    self_connections : keep streamlines with both ends in one node, on the diagonal.

    Returns
    -------
    dict of weighting name → Connectome

    Raises
    ------
    InputError
        Grid mismatch between tractogram and parcellation, unknown weighting, missing map.
    ConnectomeError
        No streamline joins two nodes.
    """
    check_same_grid(tractogram.shape, tractogram.affine, parcellation.labels.shape, parcellation.affine,
                    what=f"parcellation {parcellation.name!r}", ref_name="the tractogram's grid")
    for w in weightings:
        if w not in BASE_WEIGHTINGS and not w.startswith("mean_"):
            raise InputError(f"unknown weighting {w!r}; use {BASE_WEIGHTINGS} or mean_<map>.")
        if w.startswith("mean_"):
            if maps is None or w[5:] not in maps:
                raise InputError(f"weighting {w!r} needs maps holding {w[5:]!r}.",
                                 fix="pass maps=... from the microstructure fit.")
    if len(tractogram) == 0:
        raise ConnectomeError("the tractogram is empty: no connectome can be built.")
    ends = assign_endpoints(tractogram, parcellation, mode=assignment, radius=radius)
    index = parcellation.nodes["index"].to_numpy()
    row_of = np.full(int(max(index.max(), parcellation.labels.max())) + 1, -1, dtype=np.int64)
    row_of[index] = np.arange(len(index))
    rows = np.where(ends > 0, row_of[ends], -1)
    assigned = np.all(rows >= 0, axis=1)
    self_loop = assigned & (rows[:, 0] == rows[:, 1])
    use = assigned & (self_connections | ~self_loop)
    n_unassigned = int((~assigned).sum())
    if not use.any():
        raise ConnectomeError(
            f"none of the {len(tractogram)} streamlines joins two nodes of {parcellation.name!r} "
            f"({n_unassigned} have an end outside every node).",
        )
    if n_unassigned > 0.5 * len(tractogram):
        warnings.warn(
            f"{n_unassigned} of {len(tractogram)} streamlines ({100 * n_unassigned / len(tractogram):.0f}%) "
            f"have an end outside every node of {parcellation.name!r}.",
            PigmentWarning,
            stacklevel=2,
        )
    i, j = rows[use, 0], rows[use, 1]
    n = len(index)
    flat = np.minimum(i, j) * n + np.maximum(i, j)

    def accumulate(values: np.ndarray) -> np.ndarray:
        upper = np.bincount(flat, weights=values, minlength=n * n).reshape(n, n)
        return upper + np.triu(upper, 1).T

    count = accumulate(np.ones(len(flat)))
    provenance = {
        "software": f"pigment_connect {__version__}",
        "atlas": parcellation.name,
        "assignment": assignment,
        "radius_mm": radius if assignment == "radial" else None,
        "self_connections": self_connections,
        "n_streamlines": len(tractogram),
        "n_assigned": int(use.sum()),
        "n_unassigned": n_unassigned,
        "n_self_connections": int(self_loop.sum()),
    }
    out: dict[str, Connectome] = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        for w in weightings:
            if w == "count":
                weights = count
            elif w == "invnodevol":
                vol = parcellation.volumes_mm3()
                pair = vol[:, None] + vol[None, :]
                weights = np.where(pair > 0, count * 2.0 / pair, 0.0)
            elif w == "length":
                weights = np.where(count > 0, accumulate(tractogram.lengths[use]) / count, 0.0)
            else:
                per_streamline = _mean_along(tractogram, maps[w[5:]], maps.affine)
                weights = np.where(count > 0, accumulate(per_streamline[use]) / count, 0.0)
            out[w] = Connectome(weights, parcellation.nodes, w, parcellation.name, dict(provenance))
    return out


def _mean_along(tractogram: Tractogram, volume: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """(S,) mean of ``volume`` at the nearest voxel of each streamline point."""
    volume = np.asarray(volume, dtype=np.float64)
    if volume.ndim != 3:
        raise InputError(f"a scalar map is needed for mean_<map> weightings, got shape {volume.shape}.")
    ijk = np.floor(world_to_voxel(tractogram.points, affine) + 0.5).astype(np.int64)
    ijk = np.clip(ijk, 0, np.array(volume.shape) - 1)
    values = volume[tuple(ijk.T)]
    sums = np.add.reduceat(values, tractogram.offsets[:-1]) if len(values) else np.zeros(len(tractogram))
    return sums / np.maximum(tractogram.n_points, 1)
