"""A whole group study of a cohort's connectomes in one call (what ``pigment-connect stats`` runs):
read the derivatives, optionally harmonise the sites, fit the GLM at every edge and node, run the
NBS or TFNBS, and write the tables."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .._version import __version__
from .._typing import PathLike
from ..errors import InputError
from ..io.write import atomic_path, save_json
from .cohort import read_cohort
from .group import edge_index, edgewise_glm, make_design, nodewise_glm, vector_to_matrix
from .harmonize import ComBat
from .nbs import nbs, tfnbs

__all__ = ["run_group_study"]


def _write_tsv(frame: pd.DataFrame, path: Path) -> Path:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, sep="\t", index=False, float_format="%.10g")
    return path


def run_group_study(derivatives: PathLike, out_dir: PathLike, *, seg: str, contrast: tuple, meas: str = "count",
                    covariates: Sequence[str] = (), categorical: Sequence[str] = (), harmonize: str | None = None,
                    blocks: str | None = None, method: str = "nbs", threshold: float = 3.0, n_perm: int = 5000,
                    tail: str = "right", statistic: str = "extent", alpha: float = 0.05, seed: int = 0,
                    participants: PathLike | None = None, multi_series: str = "refuse",
                    configuration: dict[str, str] | None = None) -> dict[str, Path]:
    """Run a group study and write its tables to ``out_dir``.

    Parameters
    ----------
    derivatives : folder of ``sub-*…seg-<seg>_meas-<meas>_connectome.npz`` files (see
        :func:`~pigment_connect.graph.cohort.read_cohort`) with a ``participants.tsv``.
    contrast : ``(column, level_a, level_b)`` or ``(numeric column,)``
        (see :func:`~pigment_connect.graph.group.make_design`).
    covariates, categorical, blocks : as in :func:`~pigment_connect.graph.group.make_design`.
    harmonize : a site column: ComBat removes its effects from the edges first, preserving the
        contrast's column and the other covariates.
    method : ``"nbs"``, ``"tfnbs"`` or ``"none"`` (GLM and FDR only).
    threshold, n_perm, tail, statistic, seed : as in :func:`~pigment_connect.graph.nbs.nbs`.
    multi_series : subjects with several series: ``"refuse"``, ``"first"`` or ``"mean"``
        (see :func:`~pigment_connect.graph.cohort.read_cohort`).
    configuration : ``model``/``algo`` entities of the connectomes to read, when the folder holds
        several configurations (see :func:`~pigment_connect.graph.cohort.read_cohort`).

    Returns
    -------
    dict name → written path: ``edges`` (edge-wise GLM with FDR), ``nodes`` (node strength GLM),
    ``components``/``nbs_edges``/``null`` (NBS or TFNBS) and ``summary`` (JSON: settings, counts).
    """
    if method not in ("nbs", "tfnbs", "none"):
        raise InputError(f"unknown method {method!r}.", fix="use 'nbs', 'tfnbs' or 'none'.")
    contrast = tuple(contrast)
    conns, table = read_cohort(derivatives, seg=seg, meas=meas, participants=participants,
                               multi_series=multi_series, configuration=configuration)
    group_col = contrast[0] if len(contrast) == 3 and contrast[0] not in covariates else None
    stack = np.stack([c.weights for c in conns])
    n = stack.shape[1]
    i, j = edge_index(n)
    if harmonize:
        preserved = [c for c in ([group_col] if group_col else []) + list(covariates) if c != harmonize]
        edges = ComBat(site=harmonize, covariates=preserved).fit_transform(stack[:, i, j], table)
        stack = np.stack([vector_to_matrix(e, n) for e in edges])
    design = make_design(table, contrast, covariates=covariates, group=group_col, blocks=blocks,
                         categorical=categorical)
    labels = conns[0].labels
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    desc = "".join(ch for ch in "vs".join(str(x) for x in contrast[1:]) or str(contrast[0]) if ch.isalnum())
    stem = f"seg-{seg}_meas-{meas.replace('_', '')}_desc-{desc}"
    written: dict[str, Path] = {}
    edge_table = edgewise_glm(stack, design, labels=labels, alpha=alpha)
    written["edges"] = _write_tsv(edge_table, out / f"{stem}_edgestats.tsv")
    # one row per scan × node, scans keyed as the design keys them (subject[_session])
    strength = pd.DataFrame({"subject": np.repeat(design.subjects, n), "node": np.tile(labels, len(conns)),
                             "strength": stack.sum(axis=2).ravel()})
    written["nodes"] = _write_tsv(nodewise_glm(strength, design, "strength", alpha=alpha), out / f"{stem}_nodestats.tsv")
    summary = {"software": f"pigment_connect {__version__}", "derivatives": str(derivatives), "seg": seg,
               "meas": meas, "n_scans": len(conns), "n_nodes": n, "design_columns": design.columns,
               "contrast": design.contrast.tolist(), "harmonize": harmonize, "method": method, "alpha": alpha,
               "fdr_significant_edges": int(edge_table["significant"].sum())}
    if method == "nbs":
        res = nbs(stack, design, threshold=threshold, n_perm=n_perm, tail=tail, statistic=statistic, seed=seed)
        written["components"] = _write_tsv(res.components, out / f"{stem}_nbscomponents.tsv")
        nbs_edges = res.edges.assign(source=np.asarray(labels)[res.edges["i"]], target=np.asarray(labels)[res.edges["j"]])
        written["nbs_edges"] = _write_tsv(nbs_edges[nbs_edges["component"] > 0], out / f"{stem}_nbsedges.tsv")
        null = res.null
        summary.update(threshold=threshold, n_perm=n_perm, tail=tail, statistic=statistic, seed=seed,
                       significant_components=int((res.components["p_fwe"] <= alpha).sum()))
    elif method == "tfnbs":
        res = tfnbs(stack, design, n_perm=n_perm, tail=tail, seed=seed)
        tf_edges = res.edges.assign(source=np.asarray(labels)[res.edges["i"]], target=np.asarray(labels)[res.edges["j"]])
        written["nbs_edges"] = _write_tsv(tf_edges, out / f"{stem}_tfnbsedges.tsv")
        null = res.null
        summary.update(n_perm=n_perm, tail=tail, seed=seed, dh=res.dh, e=res.e, h=res.h,
                       significant_edges=int((res.edges["p_fwe"] <= alpha).sum()))
    if method != "none":
        written["null"] = _write_tsv(pd.DataFrame({"max_statistic": null}), out / f"{stem}_{method}null.tsv")
    written["summary"] = out / f"{stem}_stats.json"
    save_json(written["summary"], summary)
    return written
