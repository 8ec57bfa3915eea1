"""Tissue partial-volume images for anatomically constrained tractography (ACT).

The tracker takes tissue in MRtrix3's five-tissue-type ("5TT") layout: a 4-D image of partial
volume fractions in [0, 1], volumes in the order cortical grey matter, sub-cortical grey matter,
white matter, CSF, pathological tissue (what ``5ttgen`` writes). It may lie on its own grid (a
1 mm T1-derived image next to 2 mm diffusion data) as long as both are in the same scanner
space; the tracker samples it there. Three-class maps (e.g. FSL FAST's ``pve_0/1/2``: CSF, GM,
WM) are accepted as a mapping and placed in the 5TT slots (GM taken as cortical).

ACT rules applied by the tracker (Smith et al. 2012, NeuroImage 62:1924): a streamline stops on
entering cortical GM (≥ 0.5, the GM point is kept) and is accepted; it is rejected when it enters
CSF (≥ 0.5), leaves the brain, or stops anywhere else (FA, curvature, length) unless that end lies
in grey matter (cortical + sub-cortical ≥ 0.5): streamlines may end inside deep grey nuclei.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .._typing import Affine
from ..errors import InputError

__all__ = ["FIVE_TISSUE", "TissueImage", "as_tissue_image"]

FIVE_TISSUE = ("cgm", "sgm", "wm", "csf", "path")
"""Volume order of a five-tissue-type image (MRtrix3 ``5ttgen``)."""

_SUM_TOLERANCE = 0.05


@dataclass(frozen=True)
class TissueImage:
    """Five-tissue partial volumes on their own grid.

    Attributes
    ----------
    fractions : (X, Y, Z, 5) float32, volumes in :data:`FIVE_TISSUE` order, each in [0, 1].
    affine : (4, 4) voxel → RAS+ mm of the tissue grid.
    """

    fractions: np.ndarray
    affine: np.ndarray

    def voxel_map(self, affine: Affine) -> np.ndarray:
        """(3, 4) float64: voxel coordinates of the grid ``affine`` → voxel coordinates of this image."""
        return (np.linalg.inv(self.affine) @ np.asarray(affine, dtype=np.float64))[:3]

    def sample(self, points_vox: np.ndarray, affine: Affine) -> np.ndarray:
        """(N, 5) trilinearly interpolated fractions at (N, 3) voxel coordinates of the grid
        ``affine`` (0 outside this image)."""
        from scipy.ndimage import map_coordinates

        m = self.voxel_map(affine)
        coords = (np.asarray(points_vox, dtype=np.float64) @ m[:, :3].T + m[:, 3]).T
        return np.stack([map_coordinates(self.fractions[..., c], coords, order=1, mode="constant", cval=0.0)
                         for c in range(len(FIVE_TISSUE))], axis=-1)

    def on_grid(self, shape: tuple[int, int, int], affine: Affine) -> np.ndarray:
        """(X, Y, Z, 5) fractions sampled at the voxel centres of the grid ``shape``/``affine``."""
        ijk = np.indices(shape, dtype=np.float64).reshape(3, -1).T
        return self.sample(ijk, affine).reshape(*shape, len(FIVE_TISSUE))


def _check_fractions(arr: np.ndarray, source: str | None) -> np.ndarray:
    if not np.all(np.isfinite(arr)):
        raise InputError("the tissue image holds NaN or infinite values.", file=source,
                         fix="regenerate it (5ttgen, FAST) or set the bad voxels to 0.")
    if arr.min() < -1e-3 or arr.max() > 1 + 1e-3:
        raise InputError(f"tissue fractions must lie in [0, 1]; found values in [{arr.min():.3g}, {arr.max():.3g}].",
                         file=source, fix="give partial-volume fractions (5ttgen output or FAST pve maps), "
                                          "not labels or probabilities in percent.")
    total = arr.sum(axis=-1)
    if total.max() > 1 + _SUM_TOLERANCE:
        raise InputError(f"tissue fractions sum to up to {total.max():.3g} in a voxel; they must sum to ≤ 1.",
                         file=source, fix="check the volume order (5TT: cGM, sGM, WM, CSF, pathology) "
                                          "or that no class was given twice.")
    if not np.any(arr[..., FIVE_TISSUE.index("wm")] >= 0.5):
        raise InputError("the tissue image has no white-matter voxel (WM fraction ≥ 0.5).", file=source,
                         fix="check the volume order: 5TT is cGM, sGM, WM, CSF, pathology.")
    return np.clip(arr, 0.0, 1.0).astype(np.float32)


def as_tissue_image(tissue, affine: Affine | None = None) -> TissueImage:
    """A :class:`TissueImage` from a 5TT file, a 5TT array, or a mapping of tissue maps.

    Parameters
    ----------
    tissue : a path to a 4-D NIfTI five-tissue-type image; an (X, Y, Z, 5) array in
        :data:`FIVE_TISSUE` order; or a mapping with keys ``"wm"``, ``"gm"`` (or ``"cgm"`` and
        optionally ``"sgm"``), ``"csf"`` and optionally ``"path"`` of (X, Y, Z) fractions; or a
        :class:`TissueImage` (returned as is).
    affine : (4, 4) grid of an array or mapping (required for them; a file carries its own).

    Raises
    ------
    InputError
        Unreadable file, wrong number of volumes, fractions outside [0, 1] or summing above 1,
        NaNs, or no white matter.
    """
    if isinstance(tissue, TissueImage):
        return tissue
    source = None
    if isinstance(tissue, (str, bytes)) or hasattr(tissue, "__fspath__"):
        from ..io.dwi import _read_array, load_image

        source = str(tissue)
        img = load_image(tissue, what="tissue (5TT) image")
        arr = np.asarray(_read_array(img, tissue, "tissue (5TT) image"), dtype=np.float32)
        affine = img.affine
        if arr.ndim != 4 or arr.shape[3] != len(FIVE_TISSUE):
            raise InputError(f"a five-tissue-type image must be 4-D with 5 volumes, got shape {arr.shape}.",
                             file=source, fix="run 5ttgen (MRtrix3) on the T1w, or pass FAST's pve maps as "
                                              "{'csf': ..., 'gm': ..., 'wm': ...}.")
    elif isinstance(tissue, Mapping):
        keys = set(tissue)
        gm_key = "cgm" if "cgm" in keys else "gm"
        missing = {"wm", "csf", gm_key} - keys
        unknown = keys - {"wm", "gm", "cgm", "sgm", "csf", "path"}
        if missing or unknown:
            raise InputError(f"tissue maps need 'wm', 'gm' (or 'cgm') and 'csf'; missing {sorted(missing)}, "
                             f"unknown {sorted(unknown)}.")
        first = np.asarray(tissue["wm"])
        vols = [np.asarray(tissue[k], dtype=np.float32) if k in tissue else np.zeros(first.shape, np.float32)
                for k in (gm_key, "sgm", "wm", "csf", "path")]
        if any(v.shape != first.shape or v.ndim != 3 for v in vols):
            raise InputError(f"tissue maps must be 3-D arrays of one shape, got {[v.shape for v in vols]}.")
        arr = np.stack(vols, axis=-1)
    else:
        arr = np.asarray(tissue, dtype=np.float32)
        if arr.ndim != 4 or arr.shape[3] != len(FIVE_TISSUE):
            raise InputError(f"a tissue array must be (X, Y, Z, 5) in 5TT order (cGM, sGM, WM, CSF, pathology), "
                             f"got shape {arr.shape}.")
    if affine is None:
        raise InputError("tissue arrays need the affine of their grid.", fix="pass affine=, or give a NIfTI file.")
    return TissueImage(np.ascontiguousarray(_check_fractions(arr, source)), np.asarray(affine, dtype=np.float64))
