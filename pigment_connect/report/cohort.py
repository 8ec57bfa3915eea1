"""The cohort page and ``group_qc.tsv``: one row per series (and configuration) with its status,
warnings and QC numbers, robust z-scores flagging outliers, links to the series pages, and the
group distributions of the graph metrics."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from .._typing import PathLike
from ..io.write import atomic_path
from . import figures
from .collect import SeriesRecord, find_series, read_table
from .html import Block, Section, figure, note, render_page, table
from .series import QC_COLUMNS, series_qc, series_sections

__all__ = ["robust_z", "write_reports", "write_series_report", "OUTLIER_Z", "MIN_SERIES_FOR_Z"]

log = logging.getLogger(__name__)

OUTLIER_Z = 3.0
"""A QC number with a robust |z| above this is flagged."""
MIN_SERIES_FOR_Z = 4
"""Robust z-scores need at least this many series with the number (fewer: no z, no flag)."""
MIN_RELATIVE_DEVIATION = 0.10
"""A value within this fraction of the median is never flagged, however alike the other series
are (the spread is floored at this fraction of |median| / :data:`OUTLIER_Z`)."""


def robust_z(values: pd.Series) -> pd.Series:
    """(x − median) / (1.4826 · MAD); where the MAD is 0, the mean absolute deviation × 1.2533
    stands in (the modified z-score); the spread is floored so that values within
    :data:`MIN_RELATIVE_DEVIATION` of the median are never beyond :data:`OUTLIER_Z`; NaN with
    fewer than :data:`MIN_SERIES_FOR_Z` values."""
    x = pd.to_numeric(values, errors="coerce").astype(float)
    finite = x[np.isfinite(x)]
    if len(finite) < MIN_SERIES_FOR_Z:
        return pd.Series(np.nan, index=x.index)
    median = float(finite.median())
    scale = 1.4826 * float((finite - median).abs().median())
    if scale == 0:
        scale = 1.2533 * float((finite - median).abs().mean())
    scale = max(scale, MIN_RELATIVE_DEVIATION * abs(median) / OUTLIER_Z)
    if scale == 0:
        return pd.Series(np.where(np.isfinite(x), 0.0, np.nan), index=x.index)
    return (x - median) / scale


def write_series_report(series: SeriesRecord) -> Path:
    """Write ``<series>_report.html`` in the series' folder."""
    statuses = ", ".join(f"{c.model}/{c.algo}: {c.status}" for c in series.runs.values()) or "no run record"
    up = os.path.relpath(series.out_dir / "report.html", series.folder)
    return render_page(series.report_path, f"{series.prefix} — pigment_connect QC", series_sections(series),
                       subtitle=statuses, nav=[(up, "← cohort")])


def _qc_rows(series: SeriesRecord) -> list[dict]:
    """The series' QC numbers (a row saying why where its derivatives cannot be read)."""
    try:
        rows = series_qc(series)
    except Exception as exc:  # noqa: BLE001 - unreadable derivatives: the row says so
        log.warning("QC numbers of %s could not be read: %s", series.prefix, exc)
        rows = [{"series": series.prefix, "subject": series.subject, "session": series.session,
                 "status": "unreadable", "error": str(exc)}]
    for row in rows:
        row["report"] = os.path.relpath(series.report_path, series.out_dir)
    return rows


def _qc_table(rows: list[dict]) -> pd.DataFrame:
    """The cohort's QC rows with their robust z-scores and outlier flags."""
    frame = pd.DataFrame(rows)
    for column in QC_COLUMNS:
        if column not in frame:
            frame[column] = np.nan
    frame["outliers"] = ""
    group = frame["configuration"].fillna("") if "configuration" in frame else pd.Series("", index=frame.index)
    for column in QC_COLUMNS:
        z = pd.Series(np.nan, index=frame.index)
        for _, index in frame.groupby(group).groups.items():
            ok = frame.loc[index, "status"].isin(["ok", "skipped"])
            z.loc[index[ok]] = robust_z(frame.loc[index[ok], column])
        frame[f"z_{column}"] = z
        flagged = z.abs() > OUTLIER_Z
        frame.loc[flagged, "outliers"] += column + " "
    frame["outliers"] = frame["outliers"].str.strip()
    return frame


def _cohort_sections(qc: pd.DataFrame, out_dir: Path) -> list[Section]:
    n_failed = int((qc["status"] == "failed").sum())
    n_flagged = int((qc["outliers"] != "").sum())
    summary: list[Block] = [note(f"{qc['series'].nunique()} series of {qc['subject'].nunique()} subjects; "
                                 f"{n_failed} failed; {n_flagged} with a QC number beyond |z| > {OUTLIER_Z:g}",
                                 "bad" if n_failed else ("warn" if n_flagged else ""))]
    columns = ["series", "model", "algo", "status", *QC_COLUMNS, "outliers", "warnings", "error"]
    present = [c for c in columns if c in qc]
    rows, cells, classes = [], [], []
    for _, row in qc.iterrows():
        values, marks = [], []
        for c in present:
            v = row[c]
            if v is None or (isinstance(v, float) and not np.isfinite(v)):
                text = "—" if c in QC_COLUMNS else ""
            elif isinstance(v, float):
                text = f"{v:.4g}"
            else:
                text = str(v)
            z = row.get(f"z_{c}")
            values.append(text)
            marks.append("bad" if isinstance(z, float) and np.isfinite(z) and abs(z) > OUTLIER_Z else "")
        rows.append(values)
        cells.append(marks)
        classes.append("bad" if row["status"] == "failed" else ("warn" if row.get("warnings") else ""))
    urls = qc["report"].tolist()
    summary.append(table(present, rows, row_classes=classes, cell_classes=cells, links={0: urls},
                         caption=f"QC numbers; red cells: robust |z| > {OUTLIER_Z:g} among the series of one "
                                 "configuration; mask_ml in mL, snr_b0 = median b=0 / noise σ"))
    sections = [Section("series", "Series", summary)]
    metrics = read_table(out_dir / "group_graphmetrics.tsv")
    blocks: list[Block] = []
    if metrics is not None and len(metrics):
        numeric = [c for c in metrics.columns if c not in ("series", "subject", "session", "weighting", "atlas")
                   and pd.api.types.is_numeric_dtype(metrics[c]) and c in GRAPH_METRICS]
        for atlas in dict.fromkeys(metrics.get("atlas", pd.Series(["all"]))):
            part = metrics[metrics["atlas"] == atlas] if "atlas" in metrics else metrics
            blocks.append(figure(figures.group_strips(part, numeric, by="weighting",
                                                      title=f"graph metrics, {atlas}: one point per series"),
                                 f"group distributions of the graph metrics, {atlas}"))
    else:
        blocks.append(note("no graph metrics yet."))
    sections.append(Section("graph", "Graph metrics", blocks))
    return sections


GRAPH_METRICS = ("density", "mean_strength", "global_efficiency", "characteristic_path_length", "transitivity",
                 "transitivity_weighted", "mean_clustering", "modularity", "assortativity")


def write_reports(out_dir: PathLike) -> Path:
    """Write every series page, ``group_qc.tsv`` and ``report.html`` in ``out_dir`` (a
    ``pigment-connect run`` derivatives folder) from its files alone. A series whose page cannot
    be drawn gets a line in the log and the cohort table, never stops the others. Returns the
    cohort page's path."""
    out_dir = Path(out_dir)
    rows = []
    for series in find_series(out_dir):  # one series at a time: its maps are read once, then let go
        try:
            write_series_report(series)
        except Exception as exc:  # noqa: BLE001 - one broken series must not cost the others their pages
            log.error("the QC page of %s could not be drawn: %s: %s", series.prefix, type(exc).__name__, exc)
            render_page(series.report_path, f"{series.prefix} — pigment_connect QC",
                        [Section("error", "Error", [note(f"the page could not be drawn: {type(exc).__name__}: {exc}",
                                                         "bad")])])
        rows += _qc_rows(series)
        series.release()
    qc = _qc_table(rows)
    with atomic_path(out_dir / "group_qc.tsv") as tmp:
        qc.drop(columns=["report"]).to_csv(tmp, sep="\t", index=False)
    return render_page(out_dir / "report.html", "pigment_connect — cohort QC", _cohort_sections(qc, out_dir),
                       subtitle=str(out_dir.resolve()))
