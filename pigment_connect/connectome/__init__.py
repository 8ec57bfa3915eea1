"""Connectome construction: streamline-to-node assignment and weighted matrices."""

from .assign import ASSIGNMENT_MODES, assign_endpoints
from .build import BASE_WEIGHTINGS, build_connectomes, is_strength

__all__ = ["assign_endpoints", "ASSIGNMENT_MODES", "build_connectomes", "BASE_WEIGHTINGS", "is_strength"]
