"""The shipped atlas registry, user atlases by path, the template."""

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from pigment_connect.connectome.atlases import atlas_info, list_atlases, load_atlas, load_template
from pigment_connect.errors import InputError

NETWORKS = {"Vis", "SomMot", "DorsAttn", "SalVentAttn", "Limbic", "Cont", "Default"}


def test_three_shipped_atlases_with_licence_citation_and_valid_node_tables():
    table = list_atlases()
    assert {"schaefer100", "schaefer200", "schaefer400"} <= set(table["name"])
    template = load_template()
    for name, n in (("schaefer100", 100), ("schaefer200", 200), ("schaefer400", 400)):
        info = atlas_info(name)
        assert info["licence"] and info["citation"] and info["space"] == template.name
        parc = load_atlas(name)
        assert len(parc.nodes) == n and parc.space == template.name
        assert set(np.unique(parc.labels)) == set(range(n + 1))
        assert set(parc.nodes["network"]) == NETWORKS
        left = parc.nodes["hemisphere"] == "L"
        assert (parc.nodes.loc[left, "x"] < 0).all() and (parc.nodes.loc[~left, "x"] > 0).all()
        assert parc.labels.shape == template.t1w.shape and np.allclose(parc.affine, template.affine)
        assert np.mean(template.mask[parc.labels > 0]) > 0.95  # the parcels lie in the template brain


def test_user_atlas_by_path_and_errors(tmp_path):
    labels = np.zeros((6, 6, 6), np.int16)
    labels[:3] = 1
    labels[3:] = 2
    nib.save(nib.Nifti1Image(labels, np.eye(4)), tmp_path / "mine.nii.gz")
    pd.DataFrame({"index": [1, 2], "name": ["a", "b"]}).to_csv(tmp_path / "mine.tsv", sep="\t", index=False)
    parc = load_atlas(tmp_path / "mine.nii.gz", space="subject")
    assert parc.name == "mine" and parc.space == "subject" and len(parc.nodes) == 2
    with pytest.raises(InputError, match="neither a shipped atlas"):
        load_atlas("schaefer999")
    with pytest.raises(InputError, match="no shipped atlas"):
        atlas_info("aal")


def test_atlas_json_is_complete():
    for name in list_atlases()["name"]:
        info = atlas_info(name)
        assert {"space", "resolution_mm", "licence", "citation", "source"} <= set(info)
        json.dumps(info)
