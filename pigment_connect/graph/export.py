"""Exports of connectomes to network-science tools, with BIDS-derivatives names.

:meth:`Connectome.save` writes one file by suffix (CSV/TSV matrix with labels, ``.npz``,
GraphML and GEXF for Gephi/Cytoscape/networkx/igraph, BCT-compatible ``.mat`` with MATLAB-safe field names). This module adds the edge list and
:func:`export_connectome`, which
writes any set of formats under the BIDS-derivatives names the pipeline uses
(``sub-01_ses-1_seg-schaefer200_meas-count_connectome.tsv``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .._typing import PathLike
from ..errors import InputError
from ..io.bids import bids_label, derivative_name, entity_prefix
from ..io.connectome import CONNECTOME_FORMATS, Connectome, matlab_field_name
from ..io.write import atomic_path

__all__ = ["EXPORT_FORMATS", "matlab_field_name", "write_edge_list", "read_edge_list", "connectome_filename",
           "export_connectome"]

EXPORT_FORMATS = (*CONNECTOME_FORMATS, ".edges.tsv")

def write_edge_list(conn: Connectome, path: PathLike) -> Path:
    """Tab-separated edge list (i < j, non-zero): ``source``, ``target`` (node names), ``i``,
    ``j`` (1-based node indices in row order), ``weight``. Written atomically."""
    path = Path(path)
    edges = conn.edges()
    edges["i"] += 1
    edges["j"] += 1
    with atomic_path(path) as tmp:
        edges.to_csv(tmp, sep="\t", index=False, float_format="%.17g")
    return path


def read_edge_list(path: PathLike, nodes: pd.DataFrame, *, weighting: str = "unknown",
                   atlas: str = "unknown") -> Connectome:
    """A :class:`Connectome` from :func:`write_edge_list` output and the node table."""
    path = Path(path)
    try:
        edges = pd.read_csv(path, sep="\t")
        n = len(nodes)
        w = np.zeros((n, n))
        i = edges["i"].to_numpy(dtype=int) - 1
        j = edges["j"].to_numpy(dtype=int) - 1
        if i.size and (min(i.min(), j.min()) < 0 or max(i.max(), j.max()) >= n):
            raise InputError(f"edge indices outside 1..{n}.", file=path, fix="use the node table it was written with.")
        w[i, j] = w[j, i] = edges["weight"].to_numpy(dtype=float)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"cannot read the edge list ({type(exc).__name__}: {exc}).", file=path) from None
    return Connectome(w, nodes, weighting, atlas)


def connectome_filename(conn: Connectome, subject: str, session: str | None = None, *, extension: str = ".tsv",
                        space: str | None = None) -> str:
    """BIDS-derivatives name of a connectome file: ``sub-<s>[_ses-<t>][_space-<x>]_seg-<atlas>_
    meas-<weighting>_connectome<ext>`` (entity values stripped of characters BIDS forbids), the
    names ``pigment-connect run`` writes."""
    if extension not in EXPORT_FORMATS:
        raise InputError(f"unknown export format {extension!r}.", fix=f"use one of {EXPORT_FORMATS}.")
    return derivative_name(entity_prefix(bids_label(subject), bids_label(session) if session else None), "connectome",
                           extension, space=bids_label(space) if space else None, seg=bids_label(conn.atlas),
                           meas=bids_label(conn.weighting))


def export_connectome(conn: Connectome, directory: PathLike, subject: str, session: str | None = None, *,
                      formats: Sequence[str] = (".tsv", ".graphml", ".gexf", ".mat", ".npz", ".edges.tsv"),
                      space: str | None = None) -> dict[str, Path]:
    """Write ``conn`` in each of ``formats`` under BIDS-derivatives names in ``directory``.

    Returns
    -------
    dict format → written path.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    out = {}
    for fmt in formats:
        path = directory / connectome_filename(conn, subject, session, extension=fmt, space=space)
        if fmt == ".edges.tsv":
            out[fmt] = write_edge_list(conn, path)
        else:
            out[fmt] = conn.save(path)
    return out
