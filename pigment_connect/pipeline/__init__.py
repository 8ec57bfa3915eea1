"""Orchestration of the stages per subject and over cohorts (the only stage-aware code)."""

from .config import PipelineConfig
from .demo import run_demo
from .runner import CohortResult, run_cohort

__all__ = ["PipelineConfig", "run_cohort", "CohortResult", "run_demo"]
