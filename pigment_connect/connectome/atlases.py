"""The atlas registry: parcellations shipped in MNI space (``pigment_connect.atlases``), the
template they are registered with, and user atlases given by path.

Shipped (see ``atlases/README.md`` and each ``atlas.json`` for source, licence and citation):
``schaefer100``, ``schaefer200``, ``schaefer400`` (Schaefer 2018, 7-network order, cortex) on
the MNI152NLin2009cAsym 2 mm grid, and that template's T1w brain, mask and five-tissue-type
partial volumes (from the ICBM 2009 tissue probability maps).
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from .._typing import PathLike
from ..errors import InputError
from ..io.parcellation import Parcellation

__all__ = ["list_atlases", "atlas_info", "load_atlas", "load_template", "load_template_tissue", "Template"]

TEMPLATE_SPACE = "MNI152NLin2009cAsym"


def _root():
    return resources.files("pigment_connect.atlases")


def _shipped() -> list[str]:
    return sorted(p.name for p in _root().iterdir() if p.is_dir() and (p / "atlas.json").is_file())


def list_atlases() -> pd.DataFrame:
    """One row per shipped atlas: ``name``, ``title``, ``n_nodes``, ``space``, ``resolution_mm``, ``licence``."""
    rows = []
    for name in _shipped():
        info = atlas_info(name)
        rows.append({k: info.get(k) for k in ("name", "title", "n_nodes", "space", "resolution_mm", "licence")})
    return pd.DataFrame(rows)


def atlas_info(name: str) -> dict:
    """The ``atlas.json`` record of a shipped atlas.

    Raises
    ------
    InputError
        Unknown atlas (the message lists the shipped ones).
    """
    shipped = _shipped()
    if name not in shipped:
        raise InputError(f"no shipped atlas named {name!r}.",
                         fix=f"use one of {shipped}, or give the path of a label image with its .tsv node table.")
    return json.loads((_root() / name / "atlas.json").read_text())


def load_atlas(atlas: str | PathLike, *, table: PathLike | None = None, space: str = TEMPLATE_SPACE,
               name: str | None = None) -> Parcellation:
    """A shipped atlas by name, or a user atlas by path (NIfTI label image + TSV node table).

    Parameters
    ----------
    atlas : shipped name (:func:`list_atlases`) or path to a label image.
    table : the node table of a user atlas (default: the image's stem with ``.tsv``).
    space : template space of a user atlas (``"subject"`` for one already in subject space).
    name : short name for file names (default: the shipped name or the file stem).

    Returns
    -------
    Parcellation whose ``space`` says where it lives.
    """
    text = str(atlas)
    if text in _shipped():
        folder = _root() / text
        with resources.as_file(folder / "labels.nii.gz") as img, resources.as_file(folder / "labels.tsv") as tsv:
            parc = Parcellation.load(img, table=tsv, name=name or text, space=atlas_info(text)["space"])
        return parc
    path = Path(text)
    if not path.exists():
        raise InputError(f"{text!r} is neither a shipped atlas nor an existing file.",
                         fix=f"use one of {_shipped()} or a label image path.")
    stem = path.name.split(".")[0]
    return Parcellation.load(path, table=table, name=name or stem, space=space)


class Template:
    """The template the shipped atlases live on: ``t1w`` (X, Y, Z) float32, ``mask`` bool, ``affine``."""

    def __init__(self, t1w: np.ndarray, mask: np.ndarray, affine: np.ndarray, name: str) -> None:
        self.t1w, self.mask, self.affine, self.name = t1w, mask, affine, name


def load_template(name: str = TEMPLATE_SPACE) -> Template:
    """The shipped template (T1w brain and mask, 2 mm)."""
    folder = _root() / "templates"
    info = json.loads((folder / "template.json").read_text())
    if name != info["name"]:
        raise InputError(f"no shipped template {name!r}.", fix=f"use {info['name']!r}.")
    with resources.as_file(folder / info["files"]["T1w"]) as t1, resources.as_file(folder / info["files"]["mask"]) as m:
        t1_img = nib.load(t1)
        t1w = np.asarray(t1_img.dataobj, dtype=np.float32)
        mask = np.asarray(nib.load(m).dataobj) > 0
        affine = t1_img.affine.copy()
    return Template(t1w, mask, affine, name)


def load_template_tissue(name: str = TEMPLATE_SPACE) -> tuple[np.ndarray, np.ndarray]:
    """The shipped template's five-tissue-type partial volumes: ((X, Y, Z, 5) float32 in MRtrix3
    5TT order — cortical GM, sub-cortical GM, WM, CSF, pathology (zero) — and the (4, 4) affine).
    Derivation and licence in ``atlases/templates/template.json``."""
    folder = _root() / "templates"
    info = json.loads((folder / "template.json").read_text())
    if name != info["name"]:
        raise InputError(f"no shipped template {name!r}.", fix=f"use {info['name']!r}.")
    with resources.as_file(folder / info["files"]["tissue"]) as path:
        img = nib.load(path)
        return np.asarray(img.get_fdata(dtype=np.float32)), img.affine.copy()
