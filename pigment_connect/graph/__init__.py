"""Graph metrics, null models, thresholding, group statistics and exports of connectomes.

Conventions are stated once in :mod:`pigment_connect.graph.metrics`.
"""

from . import export, group, harmonize, metrics, nbs, nulls, threshold
from .export import export_connectome
from .group import edgewise_glm, fdr_bh, fit_glm, make_design, nodewise_glm
from .harmonize import ComBat
from .metrics import (
    assortativity,
    betweenness,
    characteristic_path_length,
    clustering,
    consensus_partition,
    global_efficiency,
    global_metrics,
    local_efficiency,
    louvain,
    modularity,
    node_metrics,
    participation_coefficient,
    rich_club,
    transitivity,
    within_module_degree_z,
)
from .nbs import nbs as network_based_statistic
from .nbs import tfnbs
from .nulls import lattice, normalized_rich_club, randomize_degree, randomize_strength, small_worldness
from .threshold import consensus_connectome, consistency_threshold, threshold_absolute, threshold_proportional

__all__ = [
    "export", "group", "harmonize", "metrics", "nbs", "nulls", "threshold",
    "export_connectome", "edgewise_glm", "fdr_bh", "fit_glm", "make_design", "nodewise_glm", "ComBat",
    "network_based_statistic", "tfnbs",
    "assortativity", "betweenness", "characteristic_path_length", "clustering", "consensus_partition",
    "global_efficiency", "global_metrics", "local_efficiency", "louvain", "modularity", "node_metrics",
    "participation_coefficient", "rich_club", "transitivity", "within_module_degree_z",
    "lattice", "normalized_rich_club", "randomize_degree", "randomize_strength", "small_worldness",
    "consensus_connectome", "consistency_threshold", "threshold_absolute", "threshold_proportional",
]
