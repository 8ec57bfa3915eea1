"""Synthetic subjects and cohorts with ground truth, and the shared real-data locator."""

from .connectomes import ConnectomeCohort, make_connectome_cohort
from .phantom import (
    BUNDLES,
    REGION_NAMES,
    PhantomSubject,
    make_cohort,
    make_protocol,
    make_subject,
    subject_parcellation_pattern,
    write_bids,
)
from .shared import shared_data_dir

__all__ = [
    "BUNDLES",
    "REGION_NAMES",
    "PhantomSubject",
    "make_subject",
    "make_cohort",
    "make_protocol",
    "write_bids",
    "subject_parcellation_pattern",
    "shared_data_dir",
    "ConnectomeCohort",
    "make_connectome_cohort",
]
