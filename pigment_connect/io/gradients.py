"""Diffusion gradient tables.

Conventions
-----------
* b-values are in s/mm².
* ``GradientTable.bvecs`` are unit vectors expressed in the **image-axis frame**: component *k* is
  the projection on the physical direction of array axis *k* of the image they belong to (the
  columns of the affine, normalised). Tensors and peaks fitted with them are therefore in the same
  frame as the voxel grid, which is what the tracker steps in. ``world_bvecs(affine)`` gives them
  in RAS+ scanner coordinates (the MRtrix3 ``.b`` convention).
* FSL ``.bvec`` files hold vectors relative to the image axes with the x component flipped when
  the determinant of the stored affine is positive (FSL's radiological convention). We follow
  MRtrix3 (``-fslgrad``): on reading, x is negated for images with ``det(affine[:3, :3]) > 0``.
  DIPY does not apply this flip, so it is right only for images stored with a negative
  determinant (LAS-like).
* A volume is a b=0 volume when its b-value is at most ``b0_threshold`` (default 50 s/mm²):
  scanners store b=0 as 0.001, 0.004 or 5. Directions of b=0 volumes are undefined; NaN or zero
  vectors there are accepted and stored as zeros, never used as data.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from .._typing import Affine, PathLike
from ..errors import InputError, InputWarning

__all__ = ["GradientTable", "DEFAULT_B0_THRESHOLD", "SHELL_TOLERANCE"]

DEFAULT_B0_THRESHOLD = 50.0
"""s/mm²; volumes with b ≤ this are b=0 volumes (DIPY's default; MRtrix3 uses 10)."""

SHELL_TOLERANCE = 100.0
"""s/mm²; b-values closer than this to a shell's mean belong to that shell."""

_UNIT_TOLERANCE = 0.01  # relative deviation of |g| from 1 accepted (then normalised), as MRtrix3


@dataclass(frozen=True, eq=False)
class GradientTable:
    """b-values and unit gradient directions of a diffusion acquisition.

    Parameters
    ----------
    bvals : (N,) array_like of float, s/mm²
        One b-value per volume, finite and non-negative.
    bvecs : (N, 3) array_like of float
        One direction per volume in the image-axis frame (see module docstring). Rows of b=0
        volumes may be zero or NaN. Diffusion-weighted rows must be finite and of unit length
        (±1%); they are renormalised exactly.
    b0_threshold : float, s/mm²
        Volumes with ``bvals <= b0_threshold`` are b=0 volumes.
    bvalue_scaling : bool
        If True, diffusion-weighted rows may have any non-zero norm and b is scaled by |g|²
        (the scanner trick for multi-shell on single-b systems, MRtrix3's ``-bvalue_scaling``).
    source : str, optional
        Where the table was read from, used in error messages.

    Raises
    ------
    InputError
        Wrong shapes (including the transposed ``(3, N)``), negative or non-finite b-values,
        non-finite or non-unit directions on diffusion-weighted volumes.
    """

    bvals: np.ndarray
    bvecs: np.ndarray
    b0_threshold: float = DEFAULT_B0_THRESHOLD
    source: str | None = field(default=None, compare=False)

    def __init__(
        self,
        bvals,
        bvecs,
        *,
        b0_threshold: float = DEFAULT_B0_THRESHOLD,
        bvalue_scaling: bool = False,
        source: str | None = None,
    ) -> None:
        bvals = np.asarray(bvals, dtype=np.float64)
        bvecs = np.asarray(bvecs, dtype=np.float64)
        if bvals.ndim != 1:
            raise InputError(
                f"b-values must be a 1-D array of one value per volume, got shape {bvals.shape}.",
                file=source,
                fix="pass a flat (N,) array (FSL .bval files hold one row).",
            )
        n = bvals.shape[0]
        if bvecs.ndim != 2 or bvecs.shape[1] != 3:
            transposed = bvecs.ndim == 2 and bvecs.shape[0] == 3
            raise InputError(
                f"b-vectors must have shape (N, 3), got {bvecs.shape}.",
                file=source,
                fix="transpose them (bvecs.T): FSL .bvec files store 3 rows of N values."
                if transposed
                else "provide one (x, y, z) direction per volume.",
            )
        if bvecs.shape[0] != n:
            raise InputError(
                f"{n} b-values but {bvecs.shape[0]} b-vectors.",
                file=source,
                fix="use the .bval and .bvec files written together for this scan.",
            )
        if n == 0:
            raise InputError("the gradient table is empty.", file=source, fix="provide at least one volume.")
        if not np.all(np.isfinite(bvals)):
            raise InputError("b-values contain NaN or Inf.", file=source, fix="correct the .bval file.")
        if np.any(bvals < 0):
            raise InputError(
                f"negative b-values: {bvals[bvals < 0][:5].tolist()}.", file=source, fix="correct the .bval file."
            )
        if not np.isfinite(b0_threshold) or b0_threshold < 0:
            raise InputError(f"b0_threshold must be a non-negative number, got {b0_threshold}.")
        b0 = bvals <= b0_threshold
        dw = ~b0
        vecs = bvecs.copy()
        vecs[b0] = 0.0
        if not np.all(np.isfinite(vecs[dw])):
            bad = np.flatnonzero(dw & ~np.all(np.isfinite(bvecs), axis=1))
            raise InputError(
                f"b-vectors of diffusion-weighted volumes {bad[:5].tolist()} are NaN or Inf.",
                file=source,
                fix="only b=0 rows may be undefined; check the .bvec file.",
            )
        norms = np.linalg.norm(vecs[dw], axis=1)
        if np.any(norms == 0):
            bad = np.flatnonzero(dw)[norms == 0]
            raise InputError(
                f"diffusion-weighted volumes {bad[:5].tolist()} have zero b-vectors.",
                file=source,
                fix="give those volumes a direction, or b=0 if they are b=0 volumes.",
            )
        bvals = bvals.copy()
        if bvalue_scaling:
            bvals[dw] = bvals[dw] * norms**2
        elif np.any(np.abs(norms - 1.0) > _UNIT_TOLERANCE):
            bad = np.flatnonzero(dw)[np.abs(norms - 1.0) > _UNIT_TOLERANCE]
            raise InputError(
                f"b-vectors of volumes {bad[:5].tolist()} are not unit length "
                f"(norms {np.round(norms[np.abs(norms - 1.0) > _UNIT_TOLERANCE][:5], 3).tolist()}).",
                file=source,
                fix="normalise them, or pass bvalue_scaling=True if the scanner encoded lower b-values "
                "through shorter vectors.",
            )
        vecs[dw] = vecs[dw] / norms[:, None]
        bvals.setflags(write=False)
        vecs.setflags(write=False)
        object.__setattr__(self, "bvals", bvals)
        object.__setattr__(self, "bvecs", vecs)
        object.__setattr__(self, "b0_threshold", float(b0_threshold))
        object.__setattr__(self, "source", source)

    # ------------------------------------------------------------------ derived properties
    def __len__(self) -> int:
        return int(self.bvals.shape[0])

    def __repr__(self) -> str:
        shells = ", ".join(f"{b:g}×{k}" for b, k in zip(self.shells, self.shell_sizes))
        return f"GradientTable(N={len(self)}, b0×{self.n_b0}, shells=[{shells}])"

    @property
    def b0s_mask(self) -> np.ndarray:
        """(N,) bool: True for b=0 volumes."""
        return self.bvals <= self.b0_threshold

    @property
    def n_b0(self) -> int:
        """Number of b=0 volumes."""
        return int(self.b0s_mask.sum())

    @property
    def shells(self) -> np.ndarray:
        """(K,) float, s/mm²: mean b-value of each diffusion-weighted shell, ascending."""
        return self._shell_clusters[0]

    @property
    def shell_sizes(self) -> np.ndarray:
        """(K,) int: number of volumes in each shell of :attr:`shells`."""
        index = self.shell_index
        return np.array([(index == k).sum() for k in range(len(self.shells))], dtype=int)

    @property
    def shell_index(self) -> np.ndarray:
        """(N,) int: shell of each volume (index into :attr:`shells`), -1 for b=0 volumes."""
        return self._shell_clusters[1]

    @cached_property
    def _shell_clusters(self) -> tuple[np.ndarray, np.ndarray]:
        index = np.full(len(self), -1, dtype=int)
        dw = np.flatnonzero(~self.b0s_mask)
        order = dw[np.argsort(self.bvals[dw], kind="stable")]
        centres: list[list[float]] = []
        for i in order:
            b = self.bvals[i]
            if centres and b - np.mean(centres[-1]) <= SHELL_TOLERANCE:
                centres[-1].append(b)
            else:
                centres.append([b])
            index[i] = len(centres) - 1
        shells = np.array([np.mean(c) for c in centres], dtype=np.float64)
        shells.setflags(write=False)
        index.setflags(write=False)
        return shells, index

    def n_noncollinear(self, shell: int | None = None, *, tol_deg: float = 1.0) -> int:
        """Number of distinct (antipodally symmetric) directions, optionally on one shell.

        Directions closer than ``tol_deg`` degrees (or to each other's antipode) count once.
        """
        rows = ~self.b0s_mask if shell is None else self.shell_index == shell
        vecs = self.bvecs[rows]
        distinct: list[np.ndarray] = []
        cos_tol = np.cos(np.deg2rad(tol_deg))
        for v in vecs:
            if all(abs(float(v @ u)) < cos_tol for u in distinct):
                distinct.append(v)
        return len(distinct)

    # ------------------------------------------------------------------ frames
    def world_bvecs(self, affine: Affine) -> np.ndarray:
        """(N, 3) directions in RAS+ world coordinates for the image with ``affine``."""
        return self.bvecs @ _axis_directions(affine).T

    def subset(self, index) -> GradientTable:
        """Table of the volumes selected by ``index`` (boolean mask or integer indices)."""
        return GradientTable(
            self.bvals[index], self.bvecs[index], b0_threshold=self.b0_threshold, source=self.source
        )

    # ------------------------------------------------------------------ FSL files
    @classmethod
    def from_fsl(
        cls,
        bval_path: PathLike,
        bvec_path: PathLike,
        *,
        affine: Affine,
        b0_threshold: float = DEFAULT_B0_THRESHOLD,
        bvalue_scaling: bool = False,
    ) -> GradientTable:
        """Read FSL ``.bval``/``.bvec`` files written for the image whose affine is ``affine``.

        The x component is negated when ``det(affine[:3, :3]) > 0`` (MRtrix3 convention, see the
        module docstring).
        """
        bvals = _read_matrix(bval_path, "b-values")
        bvecs = _read_matrix(bvec_path, "b-vectors")
        if bvals.ndim == 2 and 1 in bvals.shape:
            bvals = bvals.ravel()
        if bvals.ndim != 1:
            raise InputError(
                f"expected one row of b-values, found a {bvals.shape[0]}×{bvals.shape[1]} table.",
                file=bval_path,
                fix="FSL .bval files hold a single row with one value per volume.",
            )
        if bvecs.ndim == 1 and bvecs.shape[0] == 3 and bvals.shape[0] == 1:
            bvecs = bvecs[:, None]
        if (bvecs.ndim == 2 and bvecs.shape[0] != 3 and bvecs.shape[1] == 3
                and bvecs.shape[0] == bvals.shape[0]):
            # N rows of (x, y, z): unambiguous when N ≠ 3 and N matches the b-values; MRtrix3 and
            # DIPY read such files too, so read it, but say so.
            warnings.warn(
                f"{bvec_path}: b-vectors stored as {bvecs.shape[0]} rows of (x, y, z); read as the "
                "transpose of the FSL layout (3 rows of N values).",
                InputWarning,
                stacklevel=2,
            )
            bvecs = bvecs.T
        if bvecs.ndim != 2 or bvecs.shape[0] != 3:
            raise InputError(
                f"expected 3 rows of b-vector components, found shape {bvecs.shape} "
                f"for {bvals.shape[0]} b-values.",
                file=bvec_path,
                fix="FSL .bvec files hold 3 rows (x, y, z) with one value per volume.",
            )
        if bvecs.shape[1] != bvals.shape[0]:
            raise InputError(
                f"{bvecs.shape[1]} b-vectors but {bvals.shape[0]} b-values in {Path(bval_path).name}.",
                file=bvec_path,
                fix="use the .bval and .bvec files written together for this scan.",
            )
        vecs = bvecs.T.copy()
        if np.linalg.det(np.asarray(affine, dtype=float)[:3, :3]) > 0:
            vecs[:, 0] = -vecs[:, 0]
        return cls(
            bvals,
            vecs,
            b0_threshold=b0_threshold,
            bvalue_scaling=bvalue_scaling,
            source=f"{bval_path} + {bvec_path}",
        )

    def to_fsl(self, bval_path: PathLike, bvec_path: PathLike, *, affine: Affine) -> None:
        """Write FSL ``.bval``/``.bvec`` files for the image with ``affine`` (inverse of from_fsl)."""
        from .write import save_text

        vecs = self.bvecs.copy()
        if np.linalg.det(np.asarray(affine, dtype=float)[:3, :3]) > 0:
            vecs[:, 0] = -vecs[:, 0]
        vecs = vecs + 0.0  # no negative zeros in text
        save_text(bval_path, " ".join(f"{b:.6g}" for b in self.bvals) + "\n")
        save_text(bvec_path, "\n".join(" ".join(f"{x:.10f}" for x in row) for row in vecs.T) + "\n")


def _axis_directions(affine: Affine) -> np.ndarray:
    """(3, 3) unit world directions of the array axes, as columns."""
    lin = np.asarray(affine, dtype=np.float64)[:3, :3]
    return lin / np.linalg.norm(lin, axis=0, keepdims=True)


def _read_matrix(path: PathLike, what: str) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} file not found.", file=path, fix="check the path (and the BIDS layout).")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {what}: {exc}.", file=path, fix="check the file is a text file.") from None
    rows = [line.replace(",", " ").split() for line in text.splitlines() if line.strip()]
    if not rows:
        raise InputError(f"the {what} file is empty.", file=path, fix="write the values for this scan.")
    if len({len(r) for r in rows}) != 1:
        raise InputError(
            f"rows of the {what} file have different lengths {sorted({len(r) for r in rows})}.",
            file=path,
            fix="every row needs one value per volume.",
        )
    try:
        values = np.array([[float(v) for v in r] for r in rows], dtype=np.float64)
    except ValueError as exc:
        raise InputError(f"non-numeric entry in {what}: {exc}.", file=path, fix="the file must hold numbers only.") from None
    return values[0] if values.shape[0] == 1 else values
