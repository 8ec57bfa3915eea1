"""Named microstructure maps on a voxel grid."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np

from .._typing import PathLike
from ..errors import InputError
from .bids import derivative_name
from .write import save_json, save_nifti

__all__ = ["MicrostructureMaps", "find_map_index"]


@dataclass(frozen=True, eq=False)
class MicrostructureMaps:
    """Maps (FA, MD, NDI, peaks, ...) of one subject on one grid.

    Attributes
    ----------
    maps : dict of str → (X, Y, Z) or (X, Y, Z, k) float32
        Lower-case names (``fa``, ``md`` in mm²/s, ``evec1`` (X, Y, Z, 3) in the image-axis frame,
        ``tensor`` (X, Y, Z, 6) as Dxx, Dyy, Dzz, Dxy, Dxz, Dyz in mm²/s ...).
    affine : (4, 4) float64
        Voxel index → RAS+ mm.
    model : str
        Model that produced the maps (``"tensor"``, ``"dki"``, ``"noddi"``, ``"pigment"``).
    mask : (X, Y, Z) bool or None
        Voxels where the maps are defined.
    uncertainty : dict of str → array
        Optional per-voxel uncertainty of the map of the same name (same units).
    """

    maps: dict[str, np.ndarray]
    affine: np.ndarray
    model: str
    mask: np.ndarray | None = None
    uncertainty: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.maps:
            raise InputError("MicrostructureMaps needs at least one map.")
        shapes = {name: np.shape(arr)[:3] for name, arr in self.maps.items()}
        grid = next(iter(shapes.values()))
        if len(grid) != 3 or any(s != grid for s in shapes.values()):
            raise InputError(f"all maps must share one 3-D grid, got {shapes}.")
        for name in self.uncertainty:
            if name not in self.maps:
                raise InputError(f"uncertainty given for unknown map {name!r}.")
        object.__setattr__(self, "affine", np.asarray(self.affine, dtype=np.float64))
        if self.mask is not None:
            object.__setattr__(self, "mask", np.asarray(self.mask, dtype=bool))

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(np.shape(next(iter(self.maps.values())))[:3])  # type: ignore[return-value]

    @property
    def names(self) -> list[str]:
        return list(self.maps)

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self.maps[name]
        except KeyError:
            raise KeyError(f"no map {name!r}; available: {sorted(self.maps)}") from None

    def __contains__(self, name: str) -> bool:
        return name in self.maps

    def save(self, directory: PathLike, *, prefix: str) -> dict[str, Path]:
        """Write each map as ``<prefix>_model-<model>_param-<name>_dwimap.nii.gz`` (atomic).

        Uncertainty maps get ``desc-uncertainty``; the mask ``<prefix>_model-<model>_mask.nii.gz``;
        a JSON index ``<prefix>_model-<model>_dwimap.json`` lists them all for :meth:`load`.
        Returns the written paths by map name.
        """
        directory = Path(directory)
        written: dict[str, Path] = {}
        for name, arr in self.maps.items():
            path = directory / derivative_name(prefix, "dwimap", ".nii.gz", model=self.model, param=name)
            written[name] = save_nifti(path, np.asarray(arr, dtype=np.float32), self.affine)
        unc: dict[str, str] = {}
        for name, arr in self.uncertainty.items():
            path = directory / derivative_name(
                prefix, "dwimap", ".nii.gz", model=self.model, param=name, desc="uncertainty"
            )
            save_nifti(path, np.asarray(arr, dtype=np.float32), self.affine)
            unc[name] = path.name
        index = {"model": self.model, "maps": {k: v.name for k, v in written.items()}, "uncertainty": unc}
        if self.mask is not None:
            path = directory / derivative_name(prefix, "mask", ".nii.gz", model=self.model)
            save_nifti(path, self.mask, self.affine)
            index["mask"] = path.name
        save_json(directory / derivative_name(prefix, "dwimap", ".json", model=self.model), index)
        return written

    @classmethod
    def load(cls, directory: PathLike, *, prefix: str, model: str) -> MicrostructureMaps:
        """Read maps written by :meth:`save` into ``directory`` with this prefix and model."""
        index_path = Path(directory) / derivative_name(prefix, "dwimap", ".json", model=model)
        if not index_path.is_file():
            raise InputError("no map index found.", file=index_path, fix="save the maps with MicrostructureMaps.save().")
        return cls.from_index(index_path)

    @classmethod
    def from_index(cls, index_path: PathLike) -> MicrostructureMaps:
        """Read maps from the JSON index :meth:`save` writes (``<prefix>_model-<model>_dwimap.json``),
        or from a folder holding exactly one such index."""
        index_path = find_map_index(index_path)
        directory = index_path.parent
        try:
            index = json.loads(index_path.read_text())
            names = dict(index["maps"])
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"not a map index ({type(exc).__name__}: {exc}).", file=index_path,
                             fix="give the *_dwimap.json written with the maps.") from None

        def read(name: str) -> tuple[np.ndarray, np.ndarray]:
            path = directory / name
            if not path.is_file():
                raise InputError("a map listed in the index is missing.", file=path,
                                 fix=f"restore it, or write the maps again (index: {index_path.name}).")
            img = nib.load(str(path))
            return np.ascontiguousarray(img.dataobj), img.affine  # C order, as fitted maps are

        maps, affine = {}, None
        for key, name in names.items():
            maps[key], affine = read(name)
        uncertainty = {key: read(name)[0] for key, name in index.get("uncertainty", {}).items()}
        mask = read(index["mask"])[0].astype(bool) if "mask" in index else None
        return cls(maps, affine, index.get("model", "unknown"), mask=mask, uncertainty=uncertainty)


def find_map_index(source: PathLike) -> Path:
    """The map index ``source`` names: the ``*_dwimap.json`` file itself, or the only one in a folder.

    Raises
    ------
    InputError
        ``source`` is missing, or a folder with no index or several (they are listed).
    """
    source = Path(source)
    if source.is_file():
        return source
    if not source.is_dir():
        raise InputError("maps not found.", file=source, fix="give the folder the maps were written to, or their *_dwimap.json.")
    found = sorted(source.glob("*_dwimap.json"))
    if len(found) == 1:
        return found[0]
    if not found:
        raise InputError("no map index (*_dwimap.json) in this folder.", file=source,
                         fix="give the folder 'pigment-connect fit' wrote to.")
    raise InputError(f"{len(found)} map indexes in this folder: {', '.join(p.name for p in found)}.", file=source,
                     fix="give the one to use, e.g. " + str(found[0]) + ".")
