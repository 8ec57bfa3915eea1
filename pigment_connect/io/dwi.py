"""Diffusion-weighted data and its validated loading.

Policy for invalid signal (``on_invalid``)
------------------------------------------
``"mask"`` (default)
    Voxels holding NaN or Inf in any volume are set to 0 and removed from the mask; negative
    values (which a magnitude image cannot hold: they come from interpolation in preprocessing)
    are clipped to 0. Each repair issues an :class:`~pigment_connect.errors.InputWarning` that
    names the file and the number of voxels affected.
``"raise"``
    Any NaN, Inf or negative value raises :class:`~pigment_connect.errors.InputError`.

Masks
-----
A given mask must be on the DWI grid (same shape, affine within 1e-3 mm) and not empty. Without
one, a brain mask is computed from the mean b=0 image with DIPY's ``median_otsu`` so background
noise never seeds streamlines; ``DiffusionData.mask_source`` then reads ``"computed"``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np

from .._typing import Affine, BoolMask, PathLike
from ..errors import InputError, InputWarning, ProtocolError
from .bids import nifti_stem
from .gradients import DEFAULT_B0_THRESHOLD, GradientTable
from .grid import check_same_grid, voxel_sizes

__all__ = ["DiffusionData", "load_dwi", "load_image", "load_mask", "compute_brain_mask", "companion"]


@dataclass(frozen=True, eq=False)
class DiffusionData:
    """A diffusion-weighted series with its frame, brain mask and gradient table.

    Attributes
    ----------
    data : (X, Y, Z, N) float32
        Signal, one volume per gradient-table entry, arbitrary units, finite and non-negative.
    affine : (4, 4) float64
        Voxel index → RAS+ mm.
    mask : (X, Y, Z) bool
        Voxels to analyse; never empty.
    gtab : GradientTable
        N entries, b-vectors in the image-axis frame of ``data``.
    source : str or None
        File the data came from.
    mask_source : {"given", "computed"}
        Whether the mask was supplied or computed from the b=0 volumes.
    """

    data: np.ndarray
    affine: np.ndarray
    mask: np.ndarray
    gtab: GradientTable
    source: str | None = None
    mask_source: str = "given"
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        data = np.asarray(self.data)
        if data.ndim != 4:
            raise InputError(f"DWI data must be 4-D (X, Y, Z, N), got shape {data.shape}.", file=self.source)
        if data.dtype != np.float32:
            data = data.astype(np.float32)
        affine = np.asarray(self.affine, dtype=np.float64)
        if affine.shape != (4, 4) or not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
            raise InputError("the affine must be a finite, invertible (4, 4) matrix.", file=self.source)
        mask = np.asarray(self.mask, dtype=bool)
        if mask.shape != data.shape[:3]:
            raise InputError(f"mask shape {mask.shape} differs from the DWI grid {data.shape[:3]}.", file=self.source)
        if not mask.any():
            raise InputError("the brain mask is empty.", file=self.source, fix="give a mask covering the brain.")
        if len(self.gtab) != data.shape[3]:
            raise InputError(
                f"{data.shape[3]} volumes but {len(self.gtab)} gradient-table entries.",
                file=self.source,
                fix="use the .bval/.bvec files written with this image.",
            )
        object.__setattr__(self, "data", data)
        object.__setattr__(self, "affine", affine)
        object.__setattr__(self, "mask", mask)

    @property
    def shape(self) -> tuple[int, int, int]:
        """Spatial shape (X, Y, Z)."""
        return tuple(int(s) for s in self.data.shape[:3])  # type: ignore[return-value]

    @property
    def voxel_size(self) -> np.ndarray:
        """(3,) float, mm."""
        return voxel_sizes(self.affine)

    @property
    def mean_b0(self) -> np.ndarray:
        """(X, Y, Z) float32: mean of the b=0 volumes."""
        if "mean_b0" not in self._cache:
            self._cache["mean_b0"] = self.data[..., self.gtab.b0s_mask].mean(axis=-1)
        return self._cache["mean_b0"]


def load_image(path: PathLike, *, what: str = "image") -> nib.spatialimages.SpatialImage:
    """Load an image header with nibabel, turning nibabel's errors into :class:`InputError`."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} file not found.", file=path, fix="check the path (and the BIDS layout).")
    try:
        return nib.load(str(path))
    except Exception as exc:  # nibabel raises many types for bad files
        raise InputError(
            f"cannot read the {what} ({type(exc).__name__}: {exc}).",
            file=path,
            fix="the file is corrupt or not NIfTI; re-export it from the scanner data.",
        ) from None


def _read_array(img, path: PathLike, what: str) -> np.ndarray:
    try:
        return np.asarray(img.dataobj)
    except Exception as exc:  # truncated gzip: EOFError, zlib.error, OSError ...
        raise InputError(
            f"cannot read the {what} voxel data ({type(exc).__name__}: {exc}); the file is truncated or corrupt.",
            file=path,
            fix="copy or re-export the file again (was a download or copy interrupted?).",
        ) from None


def load_mask(path: PathLike, *, shape: tuple[int, ...], affine: Affine, what: str = "mask") -> BoolMask:
    """Load a binary mask and check it lies on the grid ``shape``/``affine`` and is not empty."""
    img = load_image(path, what=what)
    arr = _read_array(img, path, what)
    if arr.ndim == 4 and arr.shape[3] == 1:
        arr = arr[..., 0]
    if arr.ndim != 3:
        raise InputError(f"a {what} must be 3-D, got shape {arr.shape}.", file=path)
    check_same_grid(arr.shape, img.affine, shape, affine, what=what, file=path)
    mask = np.nan_to_num(arr.astype(np.float64)) > 0
    if not mask.any():
        raise InputError(f"the {what} is empty (all zero).", file=path, fix="give a mask that covers the brain.")
    return mask


def compute_brain_mask(mean_b0: np.ndarray, voxel_size: np.ndarray) -> BoolMask:
    """Brain mask from a mean b=0 image.

    DIPY's ``median_otsu`` (median radius ≈ 2 mm, one pass: larger radii smear the mask into
    the background by a voxel or more at 2 mm, where noise would then seed streamlines),
    followed by keeping the largest connected component and filling its holes.

    Parameters
    ----------
    mean_b0 : (X, Y, Z) float
    voxel_size : (3,) float, mm
    """
    from dipy.segment.mask import median_otsu
    from scipy import ndimage

    radius = int(max(1, round(2.0 / float(np.mean(voxel_size)))))
    _, mask = median_otsu(np.asarray(mean_b0, dtype=np.float64), median_radius=radius, numpass=1)
    components, n = ndimage.label(mask)
    if n > 1:
        sizes = np.bincount(components.ravel())
        sizes[0] = 0
        mask = components == int(np.argmax(sizes))
    return np.asarray(ndimage.binary_fill_holes(mask), dtype=bool)


def companion(path: PathLike, suffix: str) -> Path:
    """The file beside the NIfTI ``path`` with its stem and ``suffix``: ``sub-01_dwi.nii.gz`` →
    ``sub-01_dwi.bval`` (``.bvec``, ``.json``)."""
    stem = nifti_stem(Path(path))
    return stem.with_name(stem.name + suffix)


def load_dwi(
    path: PathLike,
    *,
    bvals: PathLike | None = None,
    bvecs: PathLike | None = None,
    mask: PathLike | np.ndarray | None = None,
    b0_threshold: float = DEFAULT_B0_THRESHOLD,
    on_invalid: str = "mask",
) -> DiffusionData:
    """Load and validate a DWI series with its FSL gradient files.

    Parameters
    ----------
    path : path to a 4-D NIfTI image (.nii or .nii.gz).
    bvals, bvecs : FSL gradient files; default: the image path with ``.bval``/``.bvec``.
    mask : path or (X, Y, Z) array; default: computed from the b=0 volumes (see module docstring).
    b0_threshold : s/mm², volumes with b ≤ this are b=0 volumes.
    on_invalid : ``"mask"`` or ``"raise"``: what to do with NaN/Inf/negative signal.

    Returns
    -------
    DiffusionData

    Raises
    ------
    InputError
        Missing or corrupt files, 3-D image, gradient/volume count mismatch, bad b-vectors,
        invalid signal under ``on_invalid="raise"``, misaligned or empty mask.
    ProtocolError
        No b=0 volume.
    """
    if on_invalid not in ("mask", "raise"):
        raise InputError(f"on_invalid must be 'mask' or 'raise', got {on_invalid!r}.")
    path = Path(path)
    bvals = Path(bvals) if bvals is not None else companion(path, ".bval")
    bvecs = Path(bvecs) if bvecs is not None else companion(path, ".bvec")
    img = load_image(path, what="DWI")
    if len(img.shape) != 4:
        raise InputError(
            f"this is a {len(img.shape)}-D image of shape {img.shape}; a 4-D diffusion series is needed.",
            file=path,
            fix="pass the 4-D DWI (one volume per b-value), not a single volume or a map.",
        )
    affine = np.asarray(img.affine, dtype=np.float64)
    gtab = GradientTable.from_fsl(bvals, bvecs, affine=affine, b0_threshold=b0_threshold)
    n_vol = img.shape[3]
    if len(gtab) != n_vol:
        raise InputError(
            f"the image has {n_vol} volumes but {bvals.name}/{bvecs.name} describe {len(gtab)}.",
            file=path,
            fix="use the .bval/.bvec files written with this image (same conversion run).",
        )
    if gtab.n_b0 == 0:
        raise ProtocolError(
            f"no b=0 volume (smallest b-value {gtab.bvals.min():g} s/mm² > b0 threshold {gtab.b0_threshold:g}).",
            file=bvals,
            fix="include at least one b=0 volume, or raise b0_threshold if your b=0 volumes are stored with b≈"
            f"{gtab.bvals.min():g}.",
        )
    data = _read_array(img, path, "DWI").astype(np.float32, copy=False)
    data = np.array(data, dtype=np.float32)  # own, writable copy

    invalid_voxels = ~np.all(np.isfinite(data), axis=-1)
    negative = np.isfinite(data) & (data < 0)
    if on_invalid == "raise":
        if invalid_voxels.any():
            raise InputError(
                f"{int(invalid_voxels.sum())} voxels hold NaN or Inf.",
                file=path,
                fix="fix the preprocessing step that produced them, or load with on_invalid='mask'.",
            )
        if negative.any():
            raise InputError(
                f"{int(negative.sum())} negative signal values.",
                file=path,
                fix="magnitude signal cannot be negative; load with on_invalid='mask' to clip them to 0.",
            )
    else:
        if invalid_voxels.any():
            warnings.warn(
                f"{path}: {int(invalid_voxels.sum())} voxels hold NaN/Inf; they were set to 0 and excluded from the mask.",
                InputWarning,
                stacklevel=2,
            )
            data[invalid_voxels] = 0.0
        if negative.any():
            warnings.warn(
                f"{path}: {int(negative.sum())} negative signal values were clipped to 0.",
                InputWarning,
                stacklevel=2,
            )
            np.maximum(data, 0.0, out=data)

    shape = data.shape[:3]
    if mask is None:
        mean_b0 = data[..., gtab.b0s_mask].mean(axis=-1)
        if not np.any(mean_b0 > 0):
            raise InputError("the b=0 volumes are all zero.", file=path, fix="check the image is a real DWI series.")
        brain = compute_brain_mask(mean_b0, voxel_sizes(affine))
        mask_source = "computed"
        if not brain.any():
            raise InputError(
                "the computed brain mask is empty.", file=path, fix="provide a brain mask with mask=..."
            )
    elif isinstance(mask, np.ndarray):
        if mask.shape != shape:
            raise InputError(f"mask array shape {mask.shape} differs from the DWI grid {shape}.", file=path)
        brain = mask.astype(bool)
        mask_source = "given"
        if not brain.any():
            raise InputError("the mask array is empty.", file=path, fix="give a mask that covers the brain.")
    else:
        brain = load_mask(mask, shape=shape, affine=affine)
        mask_source = "given"
    brain = brain & ~invalid_voxels
    if not brain.any():
        raise InputError("no valid voxel left in the mask after removing NaN/Inf voxels.", file=path)
    return DiffusionData(data, affine, brain, gtab, source=str(path), mask_source=mask_source)

