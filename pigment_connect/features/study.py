"""A run's parcel features as tidy tables and genetics-ready files (PLINK 2 / REGENIE).

Read from the derivatives ``pigment-connect run`` writes — each series' maps index
(``<series>_model-<model>_dwimap.json``) and its atlas warped onto it
(``<series>[_space-dwi]_seg-<atlas>_dseg.nii.gz``) — nothing is fitted again.

Files (``<out>/features_seg-<atlas>_model-<model>_…``):

- ``long.tsv``: one row per series × parcel × feature (``series``, ``subject``, ``session`` (only
  when the study has sessions), ``parcel``, ``index``, ``feature``, ``median``, ``iqr``, ``n_voxels``) — what
  :func:`~pigment_connect.graph.group.nodewise_glm` takes (``node="parcel"``, ``metric="median"``
  on one feature's rows);
- ``wide.tsv``: one row per series, one column per feature × statistic × parcel
  (``<feature>_<stat>_<parcel>``) — the matrix :class:`~pigment_connect.graph.harmonize.ComBat`
  and scikit-learn take;
- ``pheno.txt``: PLINK 2 / REGENIE phenotypes, whitespace-separated, ``FID IID`` then one column per
  wide column (names without spaces, starting with a letter), ``NA`` for missing; one row per
  subject (``FID = IID`` = the subject label; several series or sessions of a subject are refused
  unless ``multi_series`` is ``"first"`` or ``"mean"``);
- ``covar.txt``: the same rows with the columns of ``participants.tsv`` (age, sex, site ...;
  numbers as numbers, categories as words, ``NA`` for missing).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from .._typing import PathLike
from ..errors import InputError
from ..graph.cohort import MULTI_SERIES, find_participants
from ..io.bids import derivative_name, natural_key, parse_entities, source_prefix
from ..io.maps import MicrostructureMaps
from ..io.parcellation import Parcellation
from ..io.write import atomic_path
from .parcels import STATISTICS, parcel_features

__all__ = ["collect_features", "wide_table", "subject_rows", "write_feature_files", "phenotype_name"]

_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def _series_maps(root: Path, model: str | None) -> dict[str, Path]:
    """Series prefix → its maps index of ``model`` (default: the one PIGMENT model in the folder)."""
    indexes = sorted(root.rglob("sub-*_dwimap.json"), key=lambda p: natural_key(p.name))
    by_model: dict[str, dict[str, Path]] = {}
    for path in indexes:
        label = parse_entities(path).get("model")
        if label:
            by_model.setdefault(label, {})[source_prefix(path)] = path
    if not by_model:
        raise InputError("no map index (*_model-<model>_dwimap.json) under the folder.", file=root,
                         fix="give the output folder of pigment-connect run (or of fit).")
    if model is None:
        pigment = sorted(m for m in by_model if m.startswith("pigment"))
        if len(pigment) != 1:
            raise InputError(f"the folder holds maps of models {sorted(by_model)}: say which.", file=root,
                             fix="pass model= (--model), e.g. " + (pigment[0] if pigment else sorted(by_model)[0]) + ".")
        model = pigment[0]
    if model not in by_model:
        raise InputError(f"no maps of model {model!r} (found {sorted(by_model)}).", file=root,
                         fix="run with that model, or choose one of those found.")
    return by_model[model]


def collect_features(derivatives: PathLike, *, atlas: str, model: str | None = None,
                     include: tuple[str, ...] | None = None, parcellations: PathLike | None = None) -> pd.DataFrame:
    """The long table (see the module docstring) of every series under ``derivatives`` that has
    maps of ``model`` and the ``atlas`` on its grid, in natural series order: the run's warped
    atlas, or a ``<series>_…seg-<atlas>_dseg.nii[.gz]`` under ``parcellations`` (the folder of the
    subject-space parcellations a run was given with ``--parcellation``)."""
    root = Path(derivatives)
    if not root.is_dir():
        raise InputError("the derivatives folder does not exist.", file=root)
    maps_of = _series_maps(root, model)
    folders = [root] + ([Path(parcellations)] if parcellations is not None else [])
    dsegs = {source_prefix(p): p for folder in folders for p in sorted(folder.rglob(f"sub-*_seg-{atlas}_dseg.nii*"))}
    tables = []
    for prefix, index in maps_of.items():
        if prefix not in dsegs:
            raise InputError(f"series {prefix} has maps but no {atlas} parcellation.", file=index.parent,
                             fix=f"run it with --atlas {atlas}, or give the folder of its own parcellations "
                             "(--parcellations).")
        maps = MicrostructureMaps.from_index(index)
        table = parcel_features(maps, Parcellation.load(dsegs[prefix], name=atlas), include=include)
        entities = parse_entities(prefix + "_x")
        table.insert(0, "session", entities.get("ses"))
        table.insert(0, "subject", entities["sub"])
        table.insert(0, "series", prefix)
        tables.append(table)
    long = pd.concat(tables, ignore_index=True)
    if long["session"].isna().all():  # as read_cohort: no session column without sessions
        long = long.drop(columns="session")
    long.attrs["model"] = model or parse_entities(next(iter(maps_of.values()))).get("model")
    return long


def phenotype_name(feature: str, stat: str, parcel: str) -> str:
    """``<feature>_<stat>_<parcel>`` with anything but letters, digits, ``_ . -`` replaced by ``_``."""
    return _SAFE.sub("_", f"{feature}_{stat}_{parcel}")


def wide_table(long: pd.DataFrame, stats: tuple[str, ...] = STATISTICS) -> pd.DataFrame:
    """One row per series (``series``, ``subject``, ``session`` if any), one column per feature × ``stats``
    × parcel, named by :func:`phenotype_name`, in the long table's order."""
    unknown = sorted(set(stats) - set(STATISTICS))
    if unknown:
        raise InputError(f"unknown statistic {unknown[0]!r}.", fix=f"choose among {', '.join(STATISTICS)}.")
    keys = long[[c for c in ("series", "subject", "session") if c in long.columns]].drop_duplicates("series")
    columns = {}
    for stat in stats:
        for (feature, parcel), part in long.groupby(["feature", "parcel"], sort=False):
            columns[phenotype_name(feature, stat, parcel)] = part.set_index("series")[stat]
    wide = pd.DataFrame(columns).reindex(keys["series"])
    return pd.concat([keys.reset_index(drop=True), wide.reset_index(drop=True)], axis=1)


def subject_rows(wide: pd.DataFrame, multi_series: str = "refuse", *, root: Path | None = None) -> pd.DataFrame:
    """One row per subject: its series' row, or under ``multi_series`` ``"first"`` the first in
    series order, ``"mean"`` the mean of its series (sessions included: genetics counts people)."""
    if multi_series not in MULTI_SERIES:
        raise InputError(f"multi_series must be one of {MULTI_SERIES}, got {multi_series!r}.")
    counts = wide.groupby("subject")["series"].count()
    several = counts[counts > 1]
    if len(several) and multi_series == "refuse":
        listed = "; ".join(" + ".join(wide.loc[wide.subject == s, "series"]) for s in several.index[:3])
        raise InputError(f"{len(several)} subject(s) have several series or sessions ({listed}): a phenotype file "
                         "has one row per person.", file=root,
                         fix="choose multi_series='first' or 'mean' (--multi-series), or keep one series per subject.")
    values = wide.drop(columns=["series", "session"], errors="ignore")
    if multi_series == "mean":
        return values.groupby("subject", sort=False).mean(numeric_only=True).reset_index()
    return values.groupby("subject", sort=False).first().reset_index()


def _write_table(frame: pd.DataFrame, path: Path, *, sep: str) -> Path:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, sep=sep, index=False, na_rep="NA")
    return path


def _plink_value(v) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)) or (isinstance(v, str) and not v.strip()):
        return "NA"
    return _SAFE.sub("_", str(v))


def write_feature_files(derivatives: PathLike, out_dir: PathLike, *, atlas: str, model: str | None = None,
                        include: tuple[str, ...] | None = None, stats: tuple[str, ...] = ("median",),
                        participants: PathLike | None = None, multi_series: str = "refuse",
                        parcellations: PathLike | None = None, overwrite: bool = False) -> dict[str, Path]:
    """Collect the features of a run (:func:`collect_features`) and write the four files of the
    module docstring into ``out_dir`` (atomically). ``stats``: the statistics in the wide table and
    the phenotypes (``median``, ``iqr``). Returns the paths by kind (``long``, ``wide``, ``pheno``,
    ``covar``; ``covar`` only when a participants table is found). Existing files of the same atlas
    and model are an error unless ``overwrite``."""
    long = collect_features(derivatives, atlas=atlas, model=model, include=include, parcellations=parcellations)
    wide = wide_table(long, stats)
    people = subject_rows(wide, multi_series, root=Path(derivatives))
    out = Path(out_dir)
    name = lambda kind, ext: out / derivative_name("features", kind, ext, seg=atlas, model=long.attrs["model"])  # noqa: E731
    existing = [p for p in (name("long", ".tsv"), name("wide", ".tsv"), name("pheno", ".txt"), name("covar", ".txt"))
                if p.exists()]
    if existing and not overwrite:
        raise InputError("the output exists already.", file=existing[0],
                         fix="give --force (overwrite=True) to replace it, or choose another output folder.")
    files = {"long": _write_table(long, name("long", ".tsv"), sep="\t"),
             "wide": _write_table(wide, name("wide", ".tsv"), sep="\t")}
    pheno = people.rename(columns={"subject": "IID"})
    pheno.insert(0, "FID", pheno["IID"])
    files["pheno"] = _write_table(pheno, name("pheno", ".txt"), sep=" ")
    info = find_participants(Path(derivatives), participants)
    if info is not None:
        extra = info.drop(columns=["participant_id"], errors="ignore").reindex(people["subject"])
        covar = pd.DataFrame({"FID": people["subject"].to_numpy(), "IID": people["subject"].to_numpy()})
        for col in extra.columns:
            numeric = pd.to_numeric(extra[col], errors="coerce")
            column = numeric if numeric.notna().sum() == extra[col].notna().sum() else extra[col]
            covar[_SAFE.sub("_", str(col))] = [_plink_value(v) for v in column.to_numpy()]
        files["covar"] = _write_table(covar, name("covar", ".txt"), sep=" ")
    return files
