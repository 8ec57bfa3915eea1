"""Graph metrics, null models, thresholding, group statistics and exports of connectomes.

Conventions are stated once in :mod:`pigment_connect.graph.metrics`.
"""

from . import metrics, nulls, threshold
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
from .nulls import lattice, randomize_degree, randomize_strength, small_worldness
from .threshold import consensus_connectome, consistency_threshold, threshold_absolute, threshold_proportional

__all__ = [
    "metrics", "nulls", "threshold",
    "assortativity", "betweenness", "characteristic_path_length", "clustering", "consensus_partition",
    "global_efficiency", "global_metrics", "local_efficiency", "louvain", "modularity", "node_metrics",
    "participation_coefficient", "rich_club", "transitivity", "within_module_degree_z",
    "lattice", "randomize_degree", "randomize_strength", "small_worldness",
    "consensus_connectome", "consistency_threshold", "threshold_absolute", "threshold_proportional",
]
