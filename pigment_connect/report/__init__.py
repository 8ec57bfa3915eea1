"""QC reports of a ``pigment-connect run`` derivatives folder: one self-contained HTML page per
series and one for the cohort (with ``group_qc.tsv``), drawn from the files alone."""

from .cohort import robust_z, write_reports, write_series_report
from .collect import SeriesRecord, find_series
from .series import QC_COLUMNS, series_qc

__all__ = ["write_reports", "write_series_report", "find_series", "SeriesRecord", "series_qc", "robust_z",
           "QC_COLUMNS"]
