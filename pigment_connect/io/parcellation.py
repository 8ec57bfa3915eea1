"""Label images with their node tables (atlases in a given space, or subject parcellations)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .._typing import Affine, PathLike
from ..errors import InputError, InputWarning
from .bids import nifti_stem
from .dwi import _read_array, load_image
from .write import atomic_path, save_nifti

__all__ = ["Parcellation", "NODE_COLUMNS", "node_table"]

NODE_COLUMNS = ("index", "name", "hemisphere", "network", "x", "y", "z")
"""Columns of a node table: label value, name, hemisphere (L/R/M), network or lobe, centroid (RAS+ mm)."""


def node_table(table: pd.DataFrame) -> pd.DataFrame:
    """Validate and normalise a node table: required ``index`` and ``name``, optional others."""
    if "index" not in table.columns or "name" not in table.columns:
        raise InputError(f"a node table needs 'index' and 'name' columns, got {list(table.columns)}.")
    out = pd.DataFrame({"index": pd.to_numeric(table["index"], errors="raise").astype(np.int64),
                        "name": table["name"].astype(str)})
    if out["index"].duplicated().any():
        raise InputError(f"duplicate node indices {out['index'][out['index'].duplicated()].tolist()[:5]}.")
    if (out["index"] <= 0).any():
        raise InputError("node indices must be positive (0 is background).")
    for col in ("hemisphere", "network"):
        out[col] = table[col].astype(str) if col in table.columns else ""
    for col in ("x", "y", "z"):
        out[col] = pd.to_numeric(table[col]) if col in table.columns else np.nan
    extra = [c for c in table.columns if c not in out.columns]
    for col in extra:
        out[col] = table[col].values
    return out.reset_index(drop=True)


@dataclass(frozen=True, eq=False)
class Parcellation:
    """A label image whose non-zero labels are the nodes of a connectome.

    Attributes
    ----------
    labels : (X, Y, Z) int32
        0 = background, k > 0 = node with ``index == k``.
    affine : (4, 4) float64
        Voxel index → RAS+ mm.
    nodes : pandas.DataFrame
        One row per node, columns :data:`NODE_COLUMNS` (centroids filled from the image); row order
        is the connectome's row order.
    name : str
        Short identifier used in file names (``seg-<name>``).
    space : str
        ``"subject"`` (on the DWI grid) or a template name such as ``"MNI152NLin2009cAsym"``.
    """

    labels: np.ndarray
    affine: np.ndarray
    nodes: pd.DataFrame
    name: str
    space: str = "subject"

    def __post_init__(self) -> None:
        labels = np.asarray(self.labels)
        if labels.ndim != 3:
            raise InputError(f"a parcellation must be 3-D, got shape {labels.shape}.")
        if not np.issubdtype(labels.dtype, np.integer):
            if not np.all(np.isfinite(labels)) or np.any(labels != np.round(labels)):
                raise InputError("parcellation labels must be integers.", fix="use a label (dseg) image, not a map.")
        labels = labels.astype(np.int32)
        nodes = node_table(self.nodes)
        present = np.unique(labels[labels > 0])
        unknown = np.setdiff1d(present, nodes["index"].to_numpy())
        if unknown.size:
            raise InputError(
                f"labels {unknown[:10].tolist()} of parcellation {self.name!r} are missing from its node table.",
                fix="add them to the label table, or set them to 0 in the image.",
            )
        absent = np.setdiff1d(nodes["index"].to_numpy(), present)
        if absent.size:
            warnings.warn(
                f"parcellation {self.name!r}: nodes {absent[:10].tolist()} have no voxel; their rows stay (all zero).",
                InputWarning,
                stacklevel=3,
            )
        affine = np.asarray(self.affine, dtype=np.float64)
        nodes = nodes.copy()
        centroids = _centroids(labels, nodes["index"].to_numpy(), affine)
        missing = nodes[["x", "y", "z"]].isna().any(axis=1).to_numpy()
        nodes.loc[missing, ["x", "y", "z"]] = centroids[missing]
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "affine", affine)
        object.__setattr__(self, "nodes", nodes)

    @property
    def n_nodes(self) -> int:
        return len(self.nodes)

    def volumes_mm3(self) -> np.ndarray:
        """(n,) float64, mm³: volume of each node in row order."""
        vox = abs(np.linalg.det(self.affine[:3, :3]))
        counts = np.bincount(self.labels.ravel(), minlength=int(self.nodes["index"].max()) + 1)
        return counts[self.nodes["index"].to_numpy()] * vox

    def save(self, path: PathLike) -> Path:
        """Write the label image (.nii.gz) and its node table beside it (same stem, ``.tsv``)."""
        path = Path(path)
        save_nifti(path, self.labels, self.affine)
        with atomic_path(_table_path(path)) as tmp:
            self.nodes.to_csv(tmp, sep="\t", index=False)
        return path

    @classmethod
    def load(cls, path: PathLike, *, table: PathLike | None = None, name: str | None = None,
             space: str = "subject") -> Parcellation:
        """Read a label image and its TSV node table (default: same stem with ``.tsv``)."""
        path = Path(path)
        img = load_image(path, what="parcellation")
        labels = _read_array(img, path, "parcellation")
        table_path = Path(table) if table is not None else _table_path(path)
        if not table_path.is_file():
            raise InputError("node table not found for the parcellation.", file=table_path,
                             fix="write a TSV with columns index, name (one row per label) beside the image.")
        try:
            nodes = pd.read_csv(table_path, sep="\t")
        except Exception as exc:
            raise InputError(f"cannot parse node table: {exc}.", file=table_path) from None
        try:
            return cls(labels, img.affine, nodes, name or _name_from(path), space)
        except InputError as exc:
            raise InputError(exc.problem, file=path, fix=exc.fix) from None


def _table_path(path: Path) -> Path:
    stem = nifti_stem(path)
    return stem.with_name(stem.name + ".tsv")


def _name_from(path: Path) -> str:
    for part in path.name.split("_"):
        if part.startswith(("seg-", "atlas-")):
            return part.split("-", 1)[1]
    return path.name.split(".")[0]


def _centroids(labels: np.ndarray, index: np.ndarray, affine: Affine) -> np.ndarray:
    out = np.full((len(index), 3), np.nan)
    if not np.any(labels):
        return out
    ijk = np.nonzero(labels)
    lab = labels[ijk]
    n = int(max(lab.max(), index.max())) + 1
    counts = np.bincount(lab, minlength=n).astype(float)
    sums = np.stack([np.bincount(lab, weights=c, minlength=n) for c in ijk], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_ijk = sums / counts[:, None]
    world = mean_ijk @ affine[:3, :3].T + affine[:3, 3]
    return world[index]
