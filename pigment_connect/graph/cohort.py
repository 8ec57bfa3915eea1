"""Reading a cohort's connectomes from BIDS derivatives into the tidy form the group functions take."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from .._typing import PathLike
from ..errors import InputError
from ..io.bids import CONFIGURATION_ENTITIES, configuration_entities, natural_key, read_participants, source_prefix
from ..io.connectome import Connectome
from ..io.write import read_json_object

__all__ = ["read_cohort", "cohort_metrics", "find_participants", "MULTI_SERIES"]

_NAME = re.compile(r"^sub-(?P<subject>[0-9A-Za-z]+)(?:_ses-(?P<session>[0-9A-Za-z]+))?_.*connectome\.(?:npz|tsv|csv)$")


MULTI_SERIES = ("refuse", "first", "mean")


def read_cohort(derivatives: PathLike, *, seg: str, meas: str = "count", participants: PathLike | None = None,
                extension: str = ".npz", multi_series: str = "refuse",
                configuration: dict[str, str] | None = None) -> tuple[list[Connectome], pd.DataFrame]:
    """All ``sub-*[_ses-*]_…seg-<seg>_meas-<meas>_connectome<ext>`` files under ``derivatives``
    (as ``pigment-connect run`` and :func:`~pigment_connect.graph.export.export_connectome`
    write them), sorted by subject and session.

    Parameters
    ----------
    derivatives : the derivatives folder (searched recursively).
    seg, meas : the atlas and the weighting of the wanted files (``"mean_fa"`` or its BIDS label
        ``"meanfa"``).
    participants : a BIDS ``participants.tsv`` (or the folder holding it) whose columns join the
        table; by default the one in ``derivatives`` or in the BIDS root two levels above it.
    extension : ``.npz`` (full node table) or ``.tsv``/``.csv`` (matrix with labels).
    multi_series : what to do when a subject (and session) has several series, e.g.
        ``sub-01_dir-AP`` and ``sub-01_dir-PA``, which a group model must not count as two
        subjects: ``"refuse"`` (default; the error lists them), ``"first"`` (the first series in
        name order) or ``"mean"`` (the element-wise mean of the series' connectomes).
    configuration : the ``model``/``algo`` entities of the wanted files (e.g.
        ``{"model": "tensor", "algo": "tensorline"}``), needed when the folder holds connectomes
        of several configurations (the error lists them); never mixed.

    Returns
    -------
    connectomes : list of :class:`Connectome`, one per subject and session.
    table : DataFrame with ``subject``, ``session``, ``series`` (the series kept, or those
        averaged joined by ``+``), the configuration entities of the files (``model``, ``algo``,
        when named) and the participants' columns (numeric columns converted to
        numbers), one row per connectome, in the same order.
    """
    if multi_series not in MULTI_SERIES:
        raise InputError(f"multi_series must be one of {MULTI_SERIES}, got {multi_series!r}.")
    root = Path(derivatives)
    if not root.is_dir():
        raise InputError("the derivatives folder does not exist.", file=root)
    # BIDS labels are alphanumeric: the pipeline writes meas-meanfa for the "mean_fa" weighting
    label = "".join(ch for ch in meas if ch.isalnum())
    pattern = f"sub-*seg-{seg}_meas-{label}_connectome{extension}"
    files = sorted(root.rglob(pattern), key=lambda f: natural_key(source_prefix(f)))
    if not files:
        raise InputError(f"no connectome files matching {pattern!r}.", file=root,
                         fix="check the seg/meas entities (e.g. ls the sub-*/dwi folders) or the extension.")
    files = _one_configuration(files, configuration or {}, root)
    rows, conns = [], []
    for f in files:
        match = _NAME.match(f.name)
        if match is None:
            continue
        conns.append(Connectome.load(f, weighting=meas, atlas=seg))
        rows.append({"subject": match["subject"], "session": match["session"], "series": source_prefix(f),
                     **configuration_entities(f)})
    sizes = {c.n_nodes for c in conns}
    if len(sizes) > 1:
        raise InputError(f"the cohort's connectomes differ in size {sorted(sizes)}.", file=root,
                         fix="read one atlas at a time (the seg entity).")
    conns, rows = _one_per_scan(conns, rows, multi_series, root)
    table = pd.DataFrame(rows)
    info = find_participants(root, participants)
    if info is not None:
        extra = info.drop(columns=["participant_id"], errors="ignore")
        missing = sorted(set(table["subject"]) - set(extra.index))
        if missing:
            raise InputError(f"participants.tsv lacks subjects {missing[:5]}.", fix="add a row for each subject.")
        joined = extra.loc[table["subject"]].reset_index(drop=True)
        for col in joined.columns:
            converted = pd.to_numeric(joined[col], errors="coerce")
            if converted.notna().all():
                joined[col] = converted
        table = pd.concat([table, joined], axis=1)
    if table["session"].isna().all():
        table = table.drop(columns="session")
    return conns, table


def _one_configuration(files: list[Path], wanted: dict[str, str], root: Path) -> list[Path]:
    """The files of the ``wanted`` configuration; an error when what is left mixes several."""
    unknown = sorted(set(wanted) - set(CONFIGURATION_ENTITIES))
    if unknown:
        raise InputError(f"unknown configuration entities {unknown}; known: {list(CONFIGURATION_ENTITIES)}.")
    kept = [f for f in files if all(configuration_entities(f).get(k) == v for k, v in wanted.items())]
    found = sorted({tuple(configuration_entities(f).items()) for f in files})
    describe = lambda c: "_".join(f"{k}-{v}" for k, v in c) or "(none)"  # noqa: E731
    if not kept:
        raise InputError(f"no connectome of the configuration {wanted}; found {', '.join(map(describe, found))}.",
                         file=root, fix="choose one of those (pigment-connect stats --model M --algo A).")
    configurations = sorted({tuple(configuration_entities(f).items()) for f in kept})
    if len(configurations) > 1:
        raise InputError(f"the folder holds connectomes of {len(configurations)} configurations "
                         f"({', '.join(map(describe, configurations))}); a group model must not mix them.",
                         file=root, fix="choose one: configuration={'model': ..., 'algo': ...} "
                         "(pigment-connect stats --model M --algo A).")
    return kept


def _one_per_scan(conns: list[Connectome], rows: list[dict], rule: str, root: Path):
    """One connectome per (subject, session), by ``rule`` (see :func:`read_cohort`)."""
    groups: dict[tuple, list[int]] = {}
    for k, row in enumerate(rows):
        groups.setdefault((row["subject"], row["session"]), []).append(k)
    several = {key: [rows[k]["series"] for k in ks] for key, ks in groups.items() if len(ks) > 1}
    if not several:
        return conns, rows
    if rule == "refuse":
        listed = "; ".join(" + ".join(names) for names in list(several.values())[:3])
        raise InputError(f"{len(several)} subject(s) have several series ({listed}): a group model would count "
                         "each as a separate subject.", file=root,
                         fix="choose multi_series='first' or 'mean' (pigment-connect stats --multi-series), "
                         "or keep one series per subject.")
    out_conns, out_rows = [], []
    for ks in groups.values():
        if len(ks) == 1 or rule == "first":
            out_conns.append(conns[ks[0]])
            out_rows.append(rows[ks[0]])
            continue
        first = conns[ks[0]]
        mean = np.mean([conns[k].weights for k in ks], axis=0)
        provenance = {**first.provenance, "averaged_series": [rows[k]["series"] for k in ks]}
        out_conns.append(Connectome(mean, first.nodes, first.weighting, first.atlas, provenance))
        out_rows.append({**rows[ks[0]], "series": "+".join(rows[k]["series"] for k in ks)})
    return out_conns, out_rows


def find_participants(root: Path, given: PathLike | None = None) -> pd.DataFrame | None:
    """``participants.tsv`` (indexed by subject label): ``given`` (the file or its folder), else the
    one in the derivatives folder ``root``, in the BIDS root two levels above it, or in the source
    dataset its ``dataset_description.json`` names; None if none."""
    if given is not None:
        path = Path(given)
        folder = path if path.is_dir() else path.parent
        if path.is_file() and path.name != "participants.tsv":
            raise InputError("the participants table must be named participants.tsv.", file=path)
        info = read_participants(folder)
        if info is None:
            raise InputError("participants.tsv not found.", file=path)
        return info
    for folder in (root, root.parent.parent, *_source_datasets(root)):
        info = read_participants(folder)
        if info is not None:
            return info
    return None


def _source_datasets(root: Path) -> list[Path]:
    """The local folders ``root/dataset_description.json`` names as its ``SourceDatasets`` (the BIDS
    dataset a run read: ``pigment-connect run`` records it as a ``file://`` URL)."""
    description = read_json_object(root / "dataset_description.json")
    urls = [d.get("URL", "") for d in description.get("SourceDatasets", []) if isinstance(d, dict)]
    return [Path(url[len("file://"):]) for url in urls if isinstance(url, str) and url.startswith("file://")]


def cohort_metrics(connectomes: list[Connectome], table: pd.DataFrame, *, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Node- and graph-level metrics of every connectome, as tidy tables joined with ``table``.

    Returns
    -------
    nodes : one row per scan × node (``subject``, [``session``], table columns, ``node``, metrics).
    graphs : one row per scan (table columns, graph metrics).
    """
    from .metrics import global_metrics, node_metrics

    if len(connectomes) != len(table):
        raise InputError(f"{len(connectomes)} connectomes but {len(table)} table rows.")
    node_rows, graph_rows = [], []
    for conn, (_, info) in zip(connectomes, table.iterrows()):
        nodes = node_metrics(conn, seed=seed)
        node_rows.append(pd.concat([pd.DataFrame([info.to_dict()] * len(nodes)).reset_index(drop=True), nodes], axis=1))
        graph_rows.append({**info.to_dict(), **global_metrics(conn, seed=seed).to_dict()})
    return pd.concat(node_rows, ignore_index=True), pd.DataFrame(graph_rows)

