"""Neighbourhood indexing and patch simulation behind amortised PIGMENT's spatial context, and the
two-group mean field behind the zero-shot fit's coupled component groups."""

import math

import numpy as np
import pytest
import torch

from pigment_connect.errors import InputError
from scipy.special import expit

from pigment_connect.pigment.spatial import (MAX_TURN_DEG, face_neighbour_index, neighbour_index, neighbour_tissue,
                                             rotation_about, two_group_mean_field)


def test_neighbour_index_matches_a_brute_force_search():
    rng = np.random.default_rng(0)
    mask = rng.random((6, 5, 4)) < 0.6
    ijk = np.argwhere(mask)
    for name, limit, planar in (("3d", 2, False), ("in-plane", 2, True)):
        index = neighbour_index(mask, name)
        assert index.shape == (len(ijk), 18 if name == "3d" else 8)
        for v, p in enumerate(ijk):
            d = ijk - p
            near = (np.abs(d).max(1) == 1) & ((d != 0).sum(1) <= limit)
            if planar:
                near &= d[:, 2] == 0
            assert set(np.flatnonzero(near)) == set(index[v][index[v] >= 0])
    for name, k in (("3d", 6), ("in-plane", 4)):  # faces only: one step along one axis
        index = face_neighbour_index(mask, name)
        assert index.shape == (len(ijk), k)
        for v, p in enumerate(ijk):
            d = ijk - p
            near = np.abs(d).sum(1) == 1
            if name == "in-plane":
                near &= d[:, 2] == 0
            assert set(np.flatnonzero(near)) == set(index[v][index[v] >= 0])
    with pytest.raises(InputError, match="3-D"):
        neighbour_index(mask[..., 0], "3d")
    with pytest.raises(InputError, match="neighbourhood"):
        neighbour_index(mask, "6")


def test_rotation_about_is_a_rotation_by_the_angle():
    gen = torch.Generator().manual_seed(0)
    axis = torch.randn(50, 3, generator=gen, dtype=torch.float64)
    axis = axis / axis.norm(dim=1, keepdim=True)
    angle = torch.rand(50, generator=gen, dtype=torch.float64) * math.pi
    R = rotation_about(axis, angle)
    torch.testing.assert_close(R @ R.transpose(1, 2), torch.eye(3, dtype=torch.float64).expand(50, 3, 3))
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(50, dtype=torch.float64))
    torch.testing.assert_close((R @ axis[..., None])[..., 0], axis)  # the axis is fixed
    torch.testing.assert_close(torch.acos(((torch.diagonal(R, dim1=1, dim2=2).sum(-1) - 1) / 2).clamp(-1, 1)), angle)


def test_neighbour_tissue_mixes_same_tissue_partial_volume_and_unrelated_slots():
    gen = torch.Generator().manual_seed(1)
    n, k = 2000, 18
    centre = torch.zeros(n, 9)
    rot = torch.eye(3).expand(n, 3, 3)
    same, frames, other_share, valid = neighbour_tissue(centre, rot, k, gen)
    assert same.shape == (n, k, 9) and frames.shape == (n, k, 3, 3)
    pure, unrelated = other_share == 0, other_share == 1
    mixed = ~pure & ~unrelated
    assert 0.4 < pure.float().mean() < 0.6  # patch-wise share of same tissue uniform in [0, 1]
    assert 0.15 < mixed.float().mean() < 0.35 and 0.15 < unrelated.float().mean() < 0.35
    turn = torch.rad2deg(torch.acos(frames[..., 0, 0].clamp(-1, 1)))
    assert float(turn.max()) <= MAX_TURN_DEG + 1e-3
    spread = same.std(dim=(1, 2))  # patch-wise spread within JITTER_RANGE
    assert float(spread.min()) > 0.01 and float(spread.max()) < 2.0
    assert 0.3 < valid.float().mean() < 0.6 and (~valid).all(1).float().mean() > 0.1


def test_two_group_mean_field_solves_its_fixed_point_independently_of_voxel_order():
    rng = np.random.default_rng(1)
    mask = rng.random((7, 6, 5)) < 0.7
    nb = face_neighbour_index(mask, "3d")
    n = len(nb)
    log_odds = rng.normal(0, 2, n)
    log_odds[rng.random(n) < 0.3] = np.nan  # these voxels' groups are known
    known = rng.random(n) < 0.5
    free = ~np.isnan(log_odds)
    # no coupling (or no neighbours): each voxel's own posterior
    np.testing.assert_allclose(two_group_mean_field(log_odds, known, nb, 0.0)[free], expit(log_odds[free]))
    np.testing.assert_array_equal(two_group_mean_field(log_odds, known, None, 1.0)[~free], known[~free])
    q = two_group_mean_field(log_odds, known, nb, 0.7, tol=1e-12)
    spin = np.where(nb >= 0, 2 * q[nb] - 1, 0).sum(1)
    np.testing.assert_allclose(q[free], expit(log_odds[free] + 0.7 * spin[free]), atol=1e-9)  # the fixed point
    np.testing.assert_array_equal(q[~free], known[~free])
    # renumbering the voxels renumbers the answer
    perm = rng.permutation(n)
    inv = np.argsort(perm)
    nb_p = np.where(nb[perm] >= 0, inv[nb[perm]], -1)
    q_p = two_group_mean_field(log_odds[perm], known[perm], nb_p, 0.7, tol=1e-12)
    np.testing.assert_allclose(q_p, q[perm], atol=1e-9)
    # a voxel with no evidence of its own, among neighbours all known to be of group 1, follows them
    lone = two_group_mean_field(np.array([0.0, np.nan, np.nan]), np.array([False, True, True]),
                                np.array([[1, 2], [0, -1], [0, -1]]), 0.5)
    assert lone[0] == pytest.approx(expit(1.0), abs=1e-6)
