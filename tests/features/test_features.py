"""Parcel features: exact summaries, tidy/wide/PLINK tables, and the group models accept them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pigment_connect.errors import InputError
from pigment_connect.features import feature_images, parcel_features, phenotype_name, subject_rows, wide_table
from pigment_connect.graph.group import make_design, nodewise_glm
from pigment_connect.graph.harmonize import ComBat
from pigment_connect.io.maps import MicrostructureMaps
from pigment_connect.io.parcellation import Parcellation
from pigment_connect.pigment import FEATURES


def _toy(rng, shift=0.0):
    shape = (6, 5, 4)
    labels = np.zeros(shape, np.int32)
    labels[:3] = 1
    labels[3:, :2] = 2
    mask = np.ones(shape, bool)
    mask[0, 0, 0] = False
    maps = {"fa": rng.uniform(0.1, 0.9, shape).astype(np.float32),
            "latent": rng.normal(size=shape + (6,)).astype(np.float32),
            "features": rng.normal(size=shape + (9,)).astype(np.float32)}
    maps["fa"][labels == 1] += shift
    nodes = pd.DataFrame({"index": [1, 2], "name": ["left region", "right"]})
    return MicrostructureMaps(maps, np.eye(4), "pigment", mask=mask), Parcellation(labels, np.eye(4), nodes, "toy")


def test_parcel_summaries_are_exact(rng):
    maps, parc = _toy(rng)
    table = parcel_features(maps, parc)
    names = feature_images(maps)
    assert list(names) == ["fa", *[f"latent{k}" for k in range(1, 7)], *FEATURES]
    row = table[(table.parcel == "left region") & (table.feature == "latent3")].iloc[0]
    values = maps["latent"][..., 2][(parc.labels == 1) & maps.mask]
    assert row["median"] == pytest.approx(np.median(values))
    assert row["iqr"] == pytest.approx(np.percentile(values, 75) - np.percentile(values, 25))
    assert row["n_voxels"] == values.size == 59  # the masked-out voxel is not counted
    brain = table[(table.parcel == "brain") & (table.feature == "logit_fwf")].iloc[0]
    assert brain["index"] == 0 and brain["n_voxels"] == maps.mask.sum()
    assert brain["median"] == pytest.approx(np.median(maps["features"][..., 8][maps.mask]))
    with pytest.raises(InputError, match="no feature 'mk'"):
        parcel_features(maps, parc, include=("mk",))


def _cohort(rng, n=12):
    rows = []
    for i in range(n):
        maps, parc = _toy(rng, shift=0.2 if i % 2 else 0.0)
        table = parcel_features(maps, parc, include=("fa", "latent1"))
        table.insert(0, "subject", f"{i:02d}")
        table.insert(0, "series", f"sub-{i:02d}")
        rows.append(table)
    return pd.concat(rows, ignore_index=True)


def test_wide_and_phenotype_names(rng):
    long = _cohort(rng, 4)
    wide = wide_table(long)
    assert list(wide.columns[:2]) == ["series", "subject"] and len(wide) == 4
    assert "fa_median_left_region" in wide.columns and "latent1_iqr_brain" in wide.columns
    assert all(" " not in c for c in wide.columns)
    assert phenotype_name("fa", "median", "7Networks LH/Vis 1") == "fa_median_7Networks_LH_Vis_1"
    two = pd.concat([wide, wide.assign(series=wide.series + "_run-2")], ignore_index=True)
    with pytest.raises(InputError, match="several series"):
        subject_rows(two)
    mean = subject_rows(two, "mean")
    assert len(mean) == 4 and np.allclose(mean["fa_median_left_region"], wide["fa_median_left_region"])


def test_the_node_glm_and_combat_take_the_features(rng):
    long = _cohort(rng)
    design_table = pd.DataFrame({"subject": [f"{i:02d}" for i in range(12)],
                                 "group": ["patient" if i % 2 else "control" for i in range(12)],
                                 "site": ["A", "B", "C"] * 4})
    design = make_design(design_table, ("group", "patient", "control"))
    fa = long[long.feature == "fa"]
    res = nodewise_glm(fa, design, "median", node="parcel")
    left = res.set_index("node").loc["left region"]
    assert left["significant"] and left["effect"] == pytest.approx(0.2, abs=0.05)
    assert not res.set_index("node").loc["right"]["significant"]
    wide = wide_table(long, ("median",))
    y = wide.drop(columns=["series", "subject"]).to_numpy(float)
    harmonised = ComBat(site="site", covariates=("group",)).fit_transform(y, design_table)
    assert harmonised.shape == y.shape and np.isfinite(harmonised).all()
