"""Connectomes: a weighted adjacency matrix with its nodes and provenance.

Formats by suffix: ``.csv``/``.tsv`` (square matrix, node names as header and first column),
``.npz`` (weights + node table + metadata, lossless), ``.graphml`` and ``.gexf`` (networkx;
node attributes included, zero edges omitted; GEXF with Gephi labels and positions), ``.mat``
(MATLAB/BCT: ``CIJ`` plus labels, coordinates and node attributes, MATLAB-safe names).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .._typing import PathLike
from ..errors import InputError
from .parcellation import node_table
from .write import atomic_path

__all__ = ["Connectome", "CONNECTOME_FORMATS", "matlab_field_name"]

CONNECTOME_FORMATS = (".csv", ".tsv", ".npz", ".graphml", ".gexf", ".mat")


@dataclass(frozen=True, eq=False)
class Connectome:
    """A symmetric weighted connectome.

    Attributes
    ----------
    weights : (n, n) float64
        Symmetric; ``weights[i, j]`` is the weight between nodes i and j (row order of ``nodes``).
        The diagonal holds self-connections when the builder kept them, else 0.
    nodes : pandas.DataFrame
        Node table (``index``, ``name``, ``hemisphere``, ``network``, ``x``, ``y``, ``z`` mm).
    weighting : str
        What the weights are (``"count"``, ``"mean_fa"``, ``"invnodevol"`` ...).
    atlas : str
        Name of the parcellation.
    provenance : dict
        Free-form JSON-serialisable record (software version, parameters, counts of unassigned streamlines...).
    """

    weights: np.ndarray
    nodes: pd.DataFrame
    weighting: str
    atlas: str
    provenance: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        w = np.asarray(self.weights, dtype=np.float64)
        if w.ndim != 2 or w.shape[0] != w.shape[1]:
            raise InputError(f"connectome weights must be square, got shape {w.shape}.")
        if not np.all(np.isfinite(w)):
            raise InputError("connectome weights contain NaN or Inf.")
        if not np.allclose(w, w.T, rtol=1e-10, atol=1e-12):
            raise InputError("connectome weights must be symmetric (undirected).")
        nodes = node_table(self.nodes)
        if len(nodes) != w.shape[0]:
            raise InputError(f"{w.shape[0]} rows of weights but {len(nodes)} nodes.")
        object.__setattr__(self, "weights", w)
        object.__setattr__(self, "nodes", nodes)

    @property
    def n_nodes(self) -> int:
        return int(self.weights.shape[0])

    @property
    def labels(self) -> list[str]:
        return self.nodes["name"].tolist()

    def edges(self) -> pd.DataFrame:
        """Non-zero edges (i < j) as a table: ``source``, ``target`` (names), ``i``, ``j``, ``weight``."""
        i, j = np.nonzero(np.triu(self.weights, k=1))
        names = np.asarray(self.labels)
        return pd.DataFrame({"source": names[i], "target": names[j], "i": i, "j": j, "weight": self.weights[i, j]})

    def to_networkx(self):
        """An undirected ``networkx.Graph``: nodes keyed by row number with the node table as
        attributes, one edge per non-zero off-diagonal weight (attribute ``weight``)."""
        import networkx as nx

        graph = nx.Graph(weighting=self.weighting, atlas=self.atlas)
        for row, rec in enumerate(self.nodes.to_dict("records")):
            graph.add_node(row, **{k: _plain(v) for k, v in rec.items()})
        i, j = np.nonzero(np.triu(self.weights, k=1))
        graph.add_weighted_edges_from(zip(i.tolist(), j.tolist(), self.weights[i, j].tolist()))
        return graph

    # ------------------------------------------------------------------ files
    def save(self, path: PathLike) -> Path:
        """Write by suffix (see module docstring), atomically. Returns the path."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in CONNECTOME_FORMATS:
            raise InputError(f"unknown connectome format {suffix!r}.", file=path, fix=f"use one of {CONNECTOME_FORMATS}.")
        with atomic_path(path) as tmp:
            if suffix in (".csv", ".tsv"):
                frame = pd.DataFrame(self.weights, index=self.labels, columns=self.labels)
                frame.to_csv(tmp, sep="," if suffix == ".csv" else "\t", float_format="%.10g")
            elif suffix == ".npz":
                meta = {"weighting": self.weighting, "atlas": self.atlas, "provenance": self.provenance}
                np.savez_compressed(
                    tmp,
                    weights=self.weights,
                    nodes=self.nodes.to_json(orient="records"),
                    meta=json.dumps(meta, default=str),
                )
            elif suffix in (".graphml", ".gexf"):
                import networkx as nx

                graph = self.to_networkx()
                if suffix == ".gexf":  # Gephi shows 'label' and places nodes by 'viz' position
                    for row, attrs in graph.nodes(data=True):
                        attrs["label"] = str(attrs["name"])
                        if all(_is_number(attrs.get(k)) for k in "xyz"):
                            attrs["viz"] = {"position": {k: float(attrs[k]) for k in "xyz"}}
                writer = nx.write_graphml if suffix == ".graphml" else nx.write_gexf
                writer(graph, str(tmp))
            else:
                from scipy.io import savemat

                savemat(str(tmp), self._mat_fields(), long_field_names=False)
        return path

    def _mat_fields(self) -> dict:
        """MATLAB/BCT fields: ``CIJ``, ``labels``, ``coor`` (n × 3 mm), ``weighting``, ``atlas``
        and ``node_<column>`` for the other node-table columns, names made MATLAB-safe."""
        fields: dict[str, object] = {
            "CIJ": self.weights,
            "labels": np.array(self.labels, dtype=object),
            "coor": self.nodes[["x", "y", "z"]].to_numpy(dtype=float),
            "weighting": self.weighting,
            "atlas": self.atlas,
        }
        for col in self.nodes.columns:
            if col in ("name", "x", "y", "z"):
                continue
            values = self.nodes[col]
            fields[matlab_field_name(f"node_{col}")] = (
                values.to_numpy(dtype=float) if pd.api.types.is_numeric_dtype(values)
                else np.array(values.astype(str).tolist(), dtype=object))
        return fields

    @classmethod
    def load(cls, path: PathLike, *, weighting: str | None = None, atlas: str | None = None) -> Connectome:
        """Read a connectome written by :meth:`save` (.npz, .csv, .tsv, .graphml, .gexf, .mat)."""
        path = Path(path)
        if not path.is_file():
            raise InputError("connectome file not found.", file=path)
        suffix = path.suffix.lower()
        try:
            if suffix == ".npz":
                with np.load(path, allow_pickle=False) as z:
                    meta = json.loads(str(z["meta"]))
                    nodes = pd.DataFrame(json.loads(str(z["nodes"])))
                    return cls(z["weights"], nodes, meta["weighting"], meta["atlas"], meta["provenance"])
            if suffix in (".csv", ".tsv"):
                frame = pd.read_csv(path, sep="," if suffix == ".csv" else "\t", index_col=0)
                nodes = pd.DataFrame({"index": np.arange(1, len(frame) + 1), "name": frame.index.astype(str)})
                return cls(frame.to_numpy(dtype=float), nodes, weighting or "unknown", atlas or "unknown")
            if suffix in (".graphml", ".gexf"):
                import networkx as nx

                graph = nx.read_graphml(str(path)) if suffix == ".graphml" else nx.read_gexf(str(path))
                order = sorted(graph.nodes, key=lambda n: int(n))
                pos = {n: k for k, n in enumerate(order)}
                w = np.zeros((len(order), len(order)))
                for a, b, d in graph.edges(data=True):
                    w[pos[a], pos[b]] = w[pos[b], pos[a]] = float(d.get("weight", 1.0))
                nodes = pd.DataFrame([{k: v for k, v in graph.nodes[n].items() if k not in ("label", "viz")}
                                      for n in order])
                return cls(w, nodes, graph.graph.get("weighting", weighting or "unknown"),
                           graph.graph.get("atlas", atlas or "unknown"))
            if suffix == ".mat":
                from scipy.io import loadmat

                m = loadmat(str(path))
                labels = [str(np.asarray(x).ravel()[0]) for x in np.asarray(m["labels"]).ravel()]
                coor = np.asarray(m["coor"], dtype=float)
                nodes = pd.DataFrame({"index": np.arange(1, len(labels) + 1), "name": labels,
                                      "x": coor[:, 0], "y": coor[:, 1], "z": coor[:, 2]})
                return cls(m["CIJ"], nodes, str(m["weighting"][0]), str(m["atlas"][0]))
        except InputError:
            raise
        except Exception as exc:
            raise InputError(f"cannot read the connectome ({type(exc).__name__}: {exc}).", file=path) from None
        raise InputError(f"unknown connectome format {suffix!r}.", file=path, fix=f"use one of {CONNECTOME_FORMATS}.")


_MATLAB_KEYWORDS = frozenset({
    "break", "case", "catch", "classdef", "continue", "else", "elseif", "end", "for", "function", "global", "if",
    "otherwise", "parfor", "persistent", "return", "spmd", "switch", "try", "while",
})


def matlab_field_name(name: str) -> str:
    """A name MATLAB accepts as a variable/struct field: a letter first, then letters, digits or
    underscores, at most 63 characters, not a MATLAB keyword."""
    clean = re.sub(r"[^0-9A-Za-z_]", "_", str(name))
    if not clean or not clean[0].isalpha():
        clean = "x" + clean
    if clean in _MATLAB_KEYWORDS:
        clean += "_"
    return clean[:63]


def _is_number(value) -> bool:
    try:
        return bool(np.isfinite(float(value)))
    except (TypeError, ValueError):
        return False


def _plain(value):
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and np.isnan(value):
        return ""
    return value
