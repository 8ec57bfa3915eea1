"""Synthetic cohorts of connectomes with a known group effect, site effects and covariates, for
testing group statistics (NBS, GLM, ComBat) against ground truth without running tractography.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import InputError
from ..io.connectome import Connectome

__all__ = ["ConnectomeCohort", "make_connectome_cohort"]


@dataclass(frozen=True)
class ConnectomeCohort:
    """A synthetic cohort.

    Attributes
    ----------
    connectomes : list of :class:`Connectome`, one per row of ``table``.
    table : DataFrame with ``subject``, ``group``, ``age`` (years), ``sex``, ``site``.
    effect : (n, n) bool, the edges that truly differ between the groups (empty if none).
    """

    connectomes: list[Connectome]
    table: pd.DataFrame
    effect: np.ndarray

    @property
    def stack(self) -> np.ndarray:
        """(n_subjects, n, n) weights."""
        return np.stack([c.weights for c in self.connectomes])


def make_connectome_cohort(n_per_group: int = 20, n_nodes: int = 40, *, groups: tuple[str, str] = ("control", "patient"),
                           effect_nodes: int = 6, effect_size: float = 1.5, sites: tuple[str, ...] = ("A", "B"),
                           site_shift: float = 0.5, site_scale: float = 1.5, age_slope: float = 0.02,
                           seed: int = 0) -> ConnectomeCohort:
    """A two-group cohort of weighted connectomes on ``n_nodes`` nodes.

    Each subject's edge weights are a shared modular backbone (4 modules, lognormal weights)
    plus Gaussian noise of standard deviation 0.3 × the backbone weight ("SD" below), plus

    * in the second group, ``effect_size`` (in units of the edges' between-subject standard
      deviation) added to every edge among the first ``effect_nodes`` nodes (a connected
      sub-network: the ground truth for NBS);
    * per site, an additive shift (``site_shift`` SD steps) and a noise scale (``site_scale``
      ratio between the last and the first site) on all edges;
    * ``age_slope`` SD per year of age (age 20–80) on all edges.

    Weights are clipped at 0 (3.3 SD below the backbone: rare).

    Node names are ``n01``..; coordinates lie on a circle (for plots). Deterministic in ``seed``.
    """
    if n_per_group < 2 or n_nodes < 4:
        raise InputError("need at least 2 subjects per group and 4 nodes.")
    if not 0 <= effect_nodes <= n_nodes:
        raise InputError(f"effect_nodes must be between 0 and {n_nodes}.")
    rng = np.random.default_rng(seed)
    modules = np.arange(n_nodes) * 4 // n_nodes
    same = modules[:, None] == modules[None, :]
    backbone = np.exp(rng.normal(0.0, 0.5, (n_nodes, n_nodes))) * np.where(same, 3.0, 1.0)
    backbone = np.triu(backbone, 1)
    backbone = backbone + backbone.T
    effect = np.zeros((n_nodes, n_nodes), dtype=bool)
    effect[:effect_nodes, :effect_nodes] = True
    np.fill_diagonal(effect, False)
    n = 2 * n_per_group
    group = np.repeat(np.array(groups), n_per_group)
    site = np.array(sites)[rng.permutation(np.arange(n) % len(sites))]
    age = rng.uniform(20, 80, n).round(1)
    sex = rng.choice(["F", "M"], n)
    scales = np.geomspace(1.0, site_scale, len(sites)) if len(sites) > 1 else np.ones(1)
    noise_sd = 0.3
    mats = []
    for k in range(n):
        s = list(sites).index(site[k])
        noise = np.triu(rng.normal(0.0, 1.0, (n_nodes, n_nodes)), 1)
        noise = noise + noise.T
        sd = backbone * noise_sd
        w = backbone + sd * (noise * scales[s] + s * site_shift + age_slope * (age[k] - 50.0))
        if group[k] == groups[1]:
            w = w + np.where(effect, effect_size * sd, 0.0)
        w = np.maximum(w, 0.0)
        np.fill_diagonal(w, 0.0)
        mats.append((w + w.T) / 2.0)
    angle = 2 * np.pi * np.arange(n_nodes) / n_nodes
    nodes = pd.DataFrame({"index": np.arange(1, n_nodes + 1), "name": [f"n{k + 1:02d}" for k in range(n_nodes)],
                          "network": [f"module{m + 1}" for m in modules],
                          "x": 60 * np.cos(angle), "y": 60 * np.sin(angle), "z": np.zeros(n_nodes)})
    table = pd.DataFrame({"subject": [f"{k + 1:03d}" for k in range(n)], "group": group, "age": age,
                          "sex": sex, "site": site})
    conns = [Connectome(m, nodes, "count", "synthetic", {"subject": sid}) for m, sid in zip(mats, table["subject"])]
    return ConnectomeCohort(conns, table, effect)
