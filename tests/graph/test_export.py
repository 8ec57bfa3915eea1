"""Exports: round trips through each format, MATLAB-safe names, BIDS-derivatives names."""

import re

import networkx as nx
import numpy as np
import pandas as pd
import pytest
from scipy.io import loadmat

from pigment_connect.errors import InputError
from pigment_connect.graph import export
from pigment_connect.io import Connectome

MATLAB_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,62}$")


@pytest.fixture()
def conn(rng):
    w = np.triu(rng.random((6, 6)) * (rng.random((6, 6)) < 0.7), 1)
    w = w + w.T
    nodes = pd.DataFrame({"index": np.arange(1, 7), "name": ["L.V1", "L-M1", "R V1", "R_M1", "end", "7net"],
                          "hemisphere": list("LLRRLR"), "network": ["Vis", "SomMot", "Vis", "SomMot", "DMN", "DMN"],
                          "x": [-10.0, -30, 10, 30, 0, 5], "y": rng.random(6), "z": rng.random(6)})
    return Connectome(w, nodes, "mean_fa", "schaefer-200", {"subject": "01"})


def test_every_format_round_trips_with_bids_names(tmp_path, conn):
    paths = export.export_connectome(conn, tmp_path, "01", "1", formats=export.EXPORT_FORMATS, space="MNI152")
    assert paths[".tsv"].name == "sub-01_ses-1_space-MNI152_seg-schaefer200_meas-meanfa_connectome.tsv"
    assert set(paths) == set(export.EXPORT_FORMATS)
    for fmt, path in paths.items():
        back = (export.read_edge_list(path, conn.nodes) if fmt == ".edges.tsv"
                else Connectome.load(path, weighting="mean_fa", atlas="schaefer-200"))
        np.testing.assert_allclose(back.weights, conn.weights, rtol=1e-9, err_msg=fmt)
        assert back.labels == conn.labels, fmt


def test_graph_formats_carry_node_attributes_for_gephi_and_networkx(tmp_path, conn):
    gexf = conn.save(tmp_path / "c.gexf")
    g = nx.read_gexf(gexf)
    node = g.nodes["0"]
    assert node["label"] == "L.V1" and node["network"] == "Vis" and node["viz"]["position"]["x"] == -10.0
    graphml = nx.read_graphml(conn.save(tmp_path / "c.graphml"))
    assert graphml.nodes["2"]["hemisphere"] == "R" and graphml.nodes["3"]["x"] == 30.0
    back = Connectome.load(tmp_path / "c.graphml")
    assert back.nodes["network"].tolist() == conn.nodes["network"].tolist()


def test_bct_mat_field_names_are_valid_matlab(tmp_path, conn):
    nodes = conn.nodes.assign(**{"2nd score": np.arange(6.0), "for": list("abcdef")})
    odd = Connectome(conn.weights, nodes, "count", "toy")
    m = loadmat(odd.save(tmp_path / "c.mat"))
    fields = [k for k in m if not k.startswith("__")]
    assert all(MATLAB_NAME.match(k) for k in fields), fields
    assert {"CIJ", "labels", "coor", "node_network", "node_2nd_score", "node_for"} <= set(fields)
    np.testing.assert_allclose(m["CIJ"], conn.weights)
    assert export.matlab_field_name("for") == "for_"
    assert export.matlab_field_name("1abc") == "x1abc"
    assert len(export.matlab_field_name("a" * 100)) == 63


def test_edge_list_contents_and_errors(tmp_path, conn):
    path = export.write_edge_list(conn, tmp_path / "e.edges.tsv")
    table = pd.read_csv(path, sep="\t")
    assert list(table.columns) == ["source", "target", "i", "j", "weight"]
    assert len(table) == np.count_nonzero(np.triu(conn.weights, 1))
    assert table["i"].min() >= 1
    with pytest.raises(InputError, match="outside"):
        export.read_edge_list(path, conn.nodes.iloc[:3])
    with pytest.raises(InputError, match="unknown export format"):
        export.connectome_filename(conn, "01", extension=".xlsx")
