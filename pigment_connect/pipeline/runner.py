"""Cohort runs: every DWI series of a BIDS dataset through the stages, with resume and isolation.

* Each subject writes ``<prefix>_status.json`` last (atomically): a subject whose status says
  ``ok`` under the same config hash is skipped on the next run (resume) unless ``force``.
* A subject that fails records its error in its status file and in the run summary; the other
  subjects go on and keep their results. The run returns normally; callers check ``failed``.
* Subjects run in separate processes when ``n_jobs > 1``; results do not depend on ``n_jobs``.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import time
import traceback
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .. import __version__
from .._threads import set_threads
from .._typing import PathLike
from ..errors import PigmentError, PigmentWarning
from ..io.bids import SubjectScan, find_dwi_scans, read_participants
from ..io.write import atomic_path, save_json
from .config import PipelineConfig
from .stages import process_subject, require_parcellation

__all__ = ["CohortResult", "run_cohort", "thread_share"]

log = logging.getLogger(__name__)


@dataclass
class CohortResult:
    """Outcome of :func:`run_cohort`.

    Attributes
    ----------
    out_dir : the derivatives folder.
    summary : one row per series: subject, session, status (ok / skipped / failed), error, warnings
        (e.g. a b-vector table that looks wrong), seconds.
    metrics : tidy graph metrics of all successful subjects with participant columns.
    """

    out_dir: Path
    summary: pd.DataFrame
    metrics: pd.DataFrame

    @property
    def failed(self) -> list[str]:
        return self.summary.loc[self.summary["status"] == "failed", "prefix"].tolist()


def _status_path(out_dir: Path, scan: SubjectScan) -> Path:
    ses = f"ses-{scan.session}" if scan.session else ""
    return out_dir / f"sub-{scan.subject}" / ses / f"{scan.prefix}_status.json"


def thread_share(n_threads: int | None, n_workers: int) -> int:
    """Threads each of ``n_workers`` parallel subjects may use out of a budget of ``n_threads``
    (default: every core), at least one: 2 jobs on 2 cores get 1 thread each, not 2 each."""
    budget = n_threads if n_threads is not None else (os.cpu_count() or 1)
    return max(1, int(budget) // max(1, int(n_workers)))


def _run_one(scan: SubjectScan, bids_dir: Path, out_dir: Path, config: PipelineConfig) -> dict:
    import numba
    import torch

    start = time.perf_counter()
    record = {"prefix": scan.prefix, "subject": scan.subject, "session": scan.session, "config_hash": config.hash,
              "threads": {"numba": numba.get_num_threads(), "torch": torch.get_num_threads()}}
    with warnings.catch_warnings(record=True) as caught:  # the subject's warnings go to the run summary
        warnings.simplefilter("always", PigmentWarning)
        try:
            outputs = process_subject(scan, bids_dir, out_dir, config)
            record.update(status="ok", error="", files=outputs.files, timings=outputs.timings,
                          metrics=outputs.metrics.to_dict("records"))
        except PigmentError as exc:
            record.update(status="failed", error=f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # unexpected: keep the traceback for the report, never lose other subjects
            record.update(status="failed", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
    messages = dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, PigmentWarning))
    record["warnings"] = "; ".join(messages)
    for w in caught:  # other libraries' warnings are shown as usual
        if not issubclass(w.category, PigmentWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    record["seconds"] = round(time.perf_counter() - start, 2)
    save_json(_status_path(out_dir, scan), record)
    return record


def _previous(out_dir: Path, scan: SubjectScan, config: PipelineConfig) -> dict | None:
    path = _status_path(out_dir, scan)
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if record.get("status") == "ok" and record.get("config_hash") == config.hash:
        return record
    return None


def run_cohort(
    bids_dir: PathLike,
    out_dir: PathLike,
    config: PipelineConfig,
    *,
    participant_labels: list[str] | None = None,
    n_jobs: int = 1,
    n_threads: int | None = None,
    force: bool = False,
    progress: bool = True,
) -> CohortResult:
    """Process every DWI series of ``bids_dir`` into ``out_dir`` (a BIDS-derivatives folder).

    Parameters
    ----------
    bids_dir : BIDS dataset root.
    out_dir : derivatives folder to create or resume.
    config : PipelineConfig.
    participant_labels : subset of subjects (labels without ``sub-``).
    n_jobs : subjects processed in parallel (separate processes).
    n_threads : thread budget of the whole run (default: every core); each of the ``n_jobs``
        workers gets its share for numba and torch (:func:`thread_share`). Results do not depend
        on it. With ``n_jobs=1`` the calling process's settings are used.
    force : recompute subjects that already finished with the same config.
    progress : show a progress bar.

    Returns
    -------
    CohortResult
    """
    from tqdm.auto import tqdm

    bids_dir, out_dir = Path(bids_dir), Path(out_dir)
    scans = find_dwi_scans(bids_dir, participant_labels)
    require_parcellation(config)  # stop before the first subject, not at each
    out_dir.mkdir(parents=True, exist_ok=True)
    save_json(
        out_dir / "dataset_description.json",
        {
            "Name": "pigment_connect derivatives",
            "BIDSVersion": "1.9.0",
            "DatasetType": "derivative",
            "GeneratedBy": [{"Name": "pigment_connect", "Version": __version__, "ConfigHash": config.hash}],
            "SourceDatasets": [{"URL": bids_dir.resolve().as_uri()}],
        },
    )
    save_json(out_dir / f"config-{config.hash}.json", config.to_dict())

    records: list[dict] = []
    todo: list[SubjectScan] = []
    for scan in scans:
        previous = None if force else _previous(out_dir, scan, config)
        if previous is not None:
            records.append({**previous, "status": "skipped"})
        else:
            todo.append(scan)
    bar = tqdm(total=len(scans), initial=len(records), desc="subjects", unit="subject", disable=not progress)
    if n_jobs <= 1 or len(todo) <= 1:
        for scan in todo:
            records.append(_run_one(scan, bids_dir, out_dir, config))
            bar.update()
    else:
        ctx = multiprocessing.get_context("spawn")
        workers = min(n_jobs, len(todo))
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=set_threads,
                                 initargs=(thread_share(n_threads, workers),)) as pool:
            futures = {pool.submit(_run_one, scan, bids_dir, out_dir, config): scan for scan in todo}
            for future in as_completed(futures):
                scan = futures[future]
                try:
                    records.append(future.result())
                except Exception as exc:  # the worker process itself died
                    records.append({"prefix": scan.prefix, "subject": scan.subject, "session": scan.session,
                                    "status": "failed", "error": f"worker crashed: {exc}", "seconds": None})
                bar.update()
    bar.close()

    order = {scan.prefix: k for k, scan in enumerate(scans)}
    records.sort(key=lambda r: order[r["prefix"]])
    for r in records:
        if r["status"] == "failed":
            log.error("%s failed: %s", r["prefix"], r["error"])
    for r in records:
        if r.get("warnings"):
            log.warning("%s: %s", r["prefix"], r["warnings"])
    summary = pd.DataFrame(
        [{**{k: r.get(k, "") for k in ("prefix", "subject", "session", "status", "error", "warnings", "seconds")},
          "threads": (r.get("threads") or {}).get("numba", "")}
         for r in records]
    )
    participants = read_participants(bids_dir)
    rows = []
    for r in records:
        for m in r.get("metrics") or []:
            row = {"series": r["prefix"], "subject": r["subject"], "session": r["session"]}  # series: one subject may have several
            if participants is not None and r["subject"] in participants.index:
                row.update(participants.loc[r["subject"]].drop(labels=["participant_id"]).to_dict())
            row.update(m)
            rows.append(row)
    metrics = pd.DataFrame(rows)
    with atomic_path(out_dir / "group_graphmetrics.tsv") as tmp:
        metrics.to_csv(tmp, sep="\t", index=False)
    with atomic_path(out_dir / "run_summary.tsv") as tmp:
        summary.to_csv(tmp, sep="\t", index=False)
    return CohortResult(out_dir, summary, metrics)
