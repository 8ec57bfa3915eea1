"""Graph metrics of connectomes (conventions in ``metrics``)."""

from . import metrics
from .metrics import characteristic_path_length, global_efficiency, global_metrics, node_metrics

__all__ = ["metrics", "node_metrics", "global_metrics", "global_efficiency", "characteristic_path_length"]
