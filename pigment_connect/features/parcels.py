"""Robust per-parcel summaries of a scan's maps and of PIGMENT's adapted latent code and tissue.

Each *feature* is one scalar image: a map (``fa``, ``md``, ``ndi`` ...), one channel of the latent
code (``latent1`` … ``latent6``) or one of the nine tissue features (``log_l1`` … ``logit_fwf``,
:data:`~pigment_connect.pigment.FEATURES`). Per parcel, and for the whole brain (the maps' mask,
parcel ``brain``), the median and the inter-quartile range over the parcel's voxels.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import InputError
from ..io.maps import MicrostructureMaps
from ..io.parcellation import Parcellation
from ..pigment.tissue import FEATURES

__all__ = ["feature_images", "parcel_features", "STATISTICS", "WHOLE_BRAIN", "DEFAULT_MAPS"]

STATISTICS = ("median", "iqr")
WHOLE_BRAIN = "brain"
"""The parcel label of the whole-brain summary (every voxel of the maps' mask)."""
DEFAULT_MAPS = ("fa", "md", "ad", "rd", "mk", "ak", "rk", "ndi", "odi", "fwf")
"""The scalar maps summarised by default (those present)."""


def feature_images(maps: MicrostructureMaps, *, include: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
    """Name → (X, Y, Z) image of every feature of ``maps``: the :data:`DEFAULT_MAPS` present, the
    latent code's channels (``latent1`` …) and the tissue features (:data:`FEATURES` names).
    ``include``: only these names (an unknown one is an error naming the available ones)."""
    images = {name: np.asarray(maps[name], float) for name in DEFAULT_MAPS if name in maps}
    if "latent" in maps:
        latent = np.asarray(maps["latent"], float)
        images.update({f"latent{k + 1}": latent[..., k] for k in range(latent.shape[-1])})
    if "features" in maps:
        tissue = np.asarray(maps["features"], float)
        if tissue.shape[-1] != len(FEATURES):
            raise InputError(f"the tissue features map has {tissue.shape[-1]} channels, expected {len(FEATURES)}.")
        images.update({name: tissue[..., k] for k, name in enumerate(FEATURES)})
    if include is not None:
        unknown = sorted(set(include) - set(images))
        if unknown:
            raise InputError(f"no feature {unknown[0]!r} in these maps (model {maps.model}).",
                             fix=f"choose among {', '.join(images)}.")
        images = {name: images[name] for name in include}
    return images


def parcel_features(maps: MicrostructureMaps, parcellation: Parcellation, *, include: tuple[str, ...] | None = None,
                    whole_brain: bool = True) -> pd.DataFrame:
    """The long table of one scan: one row per (parcel, feature) with ``parcel`` (the node's name),
    ``index`` (its label, 0 for the whole brain), ``feature``, ``median``, ``iqr`` and ``n_voxels``
    (the parcel's voxels inside the maps' mask; NaN statistics where it has none).

    ``maps`` and ``parcellation`` must share the grid (the run's subject-space dseg)."""
    if parcellation.labels.shape != maps.shape:
        raise InputError(f"the parcellation's grid {parcellation.labels.shape} differs from the maps' {maps.shape}.",
                         fix="use the parcellation warped onto this scan (the run's *_seg-<atlas>_dseg.nii.gz).")
    mask = maps.mask if maps.mask is not None else np.ones(maps.shape, bool)
    images = feature_images(maps, include=include)
    labels = np.where(mask, parcellation.labels, 0)
    order = np.argsort(labels, axis=None, kind="stable")
    flat = labels.ravel()[order]
    starts = np.searchsorted(flat, parcellation.nodes["index"].to_numpy())
    stops = np.searchsorted(flat, parcellation.nodes["index"].to_numpy(), side="right")
    regions = [(str(name), int(index), order[a:b]) for name, index, a, b in
               zip(parcellation.nodes["name"], parcellation.nodes["index"], starts, stops)]
    if whole_brain:
        regions.append((WHOLE_BRAIN, 0, np.flatnonzero(mask.ravel())))
    rows = []
    for feature, image in images.items():
        values = image.ravel()
        for name, index, voxels in regions:
            v = values[voxels]
            v = v[np.isfinite(v)]
            q25, q50, q75 = np.percentile(v, [25, 50, 75]) if len(v) else (np.nan,) * 3
            rows.append((name, index, feature, q50, q75 - q25, len(v)))
    return pd.DataFrame(rows, columns=["parcel", "index", "feature", "median", "iqr", "n_voxels"])
