"""Cohort runs: every DWI series of a BIDS dataset through the stages, with resume and isolation.

* Resume is per stage (:mod:`.records`): a rerun skips every stage whose record still holds and
  redoes the first that does not and everything downstream of it; a series killed mid-way
  resumes at the stage it was in. ``force`` redoes everything.
* Before the first series, a run whose settings would replace another configuration's files
  (same names, other content: e.g. another step size) stops with the differences and the fix.
* Each series writes ``<prefix>_status.json`` (its last run per configuration hash) and appends
  to ``<prefix>_log.txt``. A series that fails records its error there and in the run summary;
  the others go on and keep their results. The run returns normally; callers check ``failed``.
* Series run in separate processes when ``n_jobs > 1``, each with its share of the threads, and
  no more at once than fit the memory; results do not depend on ``n_jobs`` or the threads.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import time
import traceback
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .._logging import hold_dipy_logging
from .._threads import set_threads, thread_share
from .._typing import PathLike
from .._version import __version__
from ..errors import InputError, PigmentError, PigmentWarning
from ..io.bids import SubjectScan, find_dwi_scans, read_participants
from ..io.write import atomic_path, read_json_object, save_json
from ..report import write_reports
from .config import PipelineConfig
from .dask_backend import run_on_dask
from .memory import estimate_series_mb, memory_job_limit
from .records import StageRecords
from .series import process_subject, records_path, series_dir, stage_plan
from .stages import require_parcellation

__all__ = ["CohortResult", "run_cohort"]

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
    return series_dir(out_dir, scan) / f"{scan.prefix}_status.json"


def _read_status(out_dir: Path, scan: SubjectScan) -> dict:
    """Configuration hash → the last run's record of this series under it."""
    runs = read_json_object(_status_path(out_dir, scan)).get("runs", {})
    return runs if isinstance(runs, dict) else {}


def _series_log(out_dir: Path, scan: SubjectScan) -> logging.Handler:
    """A handler appending this package's log records to ``<prefix>_log.txt`` of the series:
    INFO and above under the command line; from Python, what the ``pigment_connect`` logger's
    level lets through (warnings and errors by default)."""
    path = series_dir(out_dir, scan) / f"{scan.prefix}_log.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    return handler


RECORDED_PACKAGES = ("pigment-connect", "numpy", "scipy", "torch", "numba", "dipy", "nibabel", "pandas", "networkx")


def package_versions() -> dict[str, str]:
    """The installed versions of the packages a series' results depend on (its report lists them)."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in RECORDED_PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def _start_worker(n_threads: int, dipy_level: int) -> None:
    """A spawned worker: its share of the threads, and DIPY's logger at the caller's level (a
    spawned process starts with none of the caller's logging set-up)."""
    set_threads(n_threads)
    hold_dipy_logging(dipy_level)


def _run_one(scan: SubjectScan, bids_dir: Path, out_dir: Path, config: PipelineConfig, force: bool = False,
             n_threads: int | None = None) -> dict:
    import numba
    import torch

    if n_threads is not None:  # a worker of another scheduler (Dask) gets its share here
        set_threads(n_threads)
    start = time.perf_counter()
    record = {"prefix": scan.prefix, "subject": scan.subject, "session": scan.session, "config_hash": config.hash,
              "version": __version__, "versions": package_versions(),
              "threads": {"numba": numba.get_num_threads(), "torch": torch.get_num_threads()}}
    package_log = logging.getLogger("pigment_connect")
    handler = _series_log(out_dir, scan)
    package_log.addHandler(handler)
    level = package_log.level
    if package_log.getEffectiveLevel() > logging.INFO:  # a spawned worker: its log file still gets each stage
        package_log.setLevel(logging.INFO)
    log.info("%s: pigment_connect %s, configuration %s %s", scan.prefix, __version__, config.hash,
             json.dumps(config.to_dict(), sort_keys=True))
    with warnings.catch_warnings(record=True) as caught:  # the subject's warnings go to the run summary
        warnings.simplefilter("always", PigmentWarning)
        try:
            outputs = process_subject(scan, bids_dir, out_dir, config, force=force)
            record.update(status="ok" if outputs.timings else "skipped", error="", files=outputs.files,
                          timings=outputs.timings, skipped=outputs.skipped, peak_mb=outputs.peak_mb,
                          metrics=outputs.metrics.to_dict("records"))
        except PigmentError as exc:
            record.update(status="failed", error=f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # unexpected: keep the traceback for the report, never lose other subjects
            record.update(status="failed", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
    messages = dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, PigmentWarning))
    record["warnings"] = "; ".join(messages)
    for message in messages:
        log.warning("%s: %s", scan.prefix, message)
    if record["status"] == "failed":
        log.error("%s failed: %s%s", scan.prefix, record["error"],
                  "\n" + record["traceback"] if record.get("traceback") else "")
    for w in caught:  # other libraries' warnings are shown as usual
        if not issubclass(w.category, PigmentWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    record["seconds"] = round(time.perf_counter() - start, 2)
    log.info("%s: %s in %.1f s", scan.prefix, record["status"], record["seconds"])
    package_log.removeHandler(handler)
    package_log.setLevel(level)
    handler.close()
    runs = _read_status(out_dir, scan)
    runs[config.hash] = record
    save_json(_status_path(out_dir, scan), {"runs": runs})
    return record


def check_clashes(scans: list[SubjectScan], out_dir: Path, config: PipelineConfig) -> None:
    """Raise :class:`InputError` when running ``config`` would replace files that other settings
    made under the same names (the step size, the seed ... are not in the names)."""
    plan = stage_plan(config)
    found = []
    for scan in scans:
        path = records_path(out_dir, scan)
        if path.is_file():
            found += [(scan.prefix, stage, diff) for stage, diff in StageRecords.load(path).clashes(plan)]
    if not found:
        return
    prefix, stage, diff = found[0]
    changes = ", ".join(f"{k}={old!r} → {new!r}" for k, (old, new) in diff.items())
    raise InputError(
        f"{len(found)} stage output(s) in this folder were made with other settings and would be replaced, "
        f"e.g. {prefix} {stage}: {changes}.",
        file=out_dir,
        fix="write this configuration to another output folder, or give --force (force=True) to replace them.",
    )


def _series_peak_mb(scans: list[SubjectScan], out_dir: Path) -> float:
    """The peak memory one series is expected to need: the largest measured in earlier runs of
    this folder, else estimated from the largest DWI image's header."""
    import nibabel as nib

    measured = [r.get("peak_mb") or 0 for scan in scans for r in _read_status(out_dir, scan).values()]
    if measured and max(measured) > 0:
        return float(max(measured))
    shapes = []
    for scan in scans:
        try:
            shapes.append(nib.load(str(scan.dwi)).shape)
        except Exception:  # unreadable: that series will fail with its own error
            continue
    return max((estimate_series_mb(shape) for shape in shapes), default=0.0)


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
    input_type: str = "auto",
    scheduler: str | None = None,
    report: bool = True,
) -> CohortResult:
    """Process every DWI series of ``bids_dir`` into ``out_dir`` (a BIDS-derivatives folder).

    Parameters
    ----------
    bids_dir : BIDS dataset root.
    out_dir : derivatives folder to create or resume.
    config : PipelineConfig.
    participant_labels : subset of subjects (labels without ``sub-``).
    n_jobs : series processed in parallel (separate processes); fewer when that many would not
        fit the available memory (each needs the peak measured in earlier runs of ``out_dir``, or
        one estimated from the image size).
    n_threads : thread budget of the whole run (default: every core); each of the ``n_jobs``
        workers gets its share for numba and torch (:func:`thread_share`). Results do not depend
        on it. With ``n_jobs=1`` the calling process's settings are used.
    force : redo every stage, and replace files that other settings made (refused otherwise).
    progress : show a progress bar.
    scheduler : run the series as Dask tasks instead (:mod:`.dask_backend`): ``"local:N"`` (a
        LocalCluster of N workers) or a scheduler address; ``n_jobs`` is then unused.
    input_type : ``"raw"`` BIDS, ``"qsiprep"`` preprocessed derivatives, or ``"auto"`` (see
        :func:`~pigment_connect.io.bids.find_dwi_scans`).
    report : write the QC pages last (:func:`pigment_connect.report.write_reports`: one per
        series, ``group_qc.tsv`` and ``report.html``); a page that cannot be drawn is logged, and
        never fails the run.

    Returns
    -------
    CohortResult
    """
    from tqdm.auto import tqdm

    bids_dir, out_dir = Path(bids_dir), Path(out_dir)
    scans = find_dwi_scans(bids_dir, participant_labels, input_type=input_type)
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
    if not force:
        check_clashes(scans, out_dir, config)

    records: list[dict] = []
    todo = list(scans)
    workers = min(n_jobs, len(todo))
    if workers > 1 and scheduler is None:
        peak = _series_peak_mb(scans, out_dir)
        fitting = memory_job_limit(workers, peak)
        if fitting < workers:
            log.warning("running %d series at a time, not %d: each needs about %.0f MiB", fitting, workers, peak)
            workers = fitting
    bar = tqdm(total=len(scans), desc="series", unit="series", disable=not progress)
    if scheduler is not None:
        records = run_on_dask(_run_one, todo, bids_dir, out_dir, config, force=force, scheduler=scheduler,
                              n_threads=n_threads, on_done=bar.update)
    elif workers <= 1:
        for scan in todo:
            records.append(_run_one(scan, bids_dir, out_dir, config, force))
            bar.update()
    else:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_start_worker,
                                 initargs=(thread_share(n_threads, workers),
                                           logging.getLogger("dipy").getEffectiveLevel())) as pool:
            futures = {pool.submit(_run_one, scan, bids_dir, out_dir, config, force): scan for scan in todo}
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
    summary = pd.DataFrame([_summary_row(r) for r in records])
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
    if report:
        try:
            log.info("QC report: %s", write_reports(out_dir))
        except Exception as exc:  # noqa: BLE001 - the results stand without their pictures
            log.error("the QC report could not be written: %s: %s (rebuild it with pigment-connect report %s)",
                      type(exc).__name__, exc, out_dir)
    return CohortResult(out_dir, summary, metrics)


SUMMARY_STAGES = ("load", "fit", "gradcheck", "register", "track", "connectome", "metrics")
"""Stage groups with a ``seconds_<stage>`` column in the run summary (``fit``: every model's fit;
``register``: the registration and every atlas's warp)."""


def _summary_row(record: dict) -> dict:
    row = {k: record.get(k, "") for k in ("prefix", "subject", "session", "status", "error", "warnings", "seconds")}
    row["peak_mb"] = record.get("peak_mb", "")
    row["threads"] = (record.get("threads") or {}).get("numba", "")
    timings = record.get("timings") or {}
    for group in SUMMARY_STAGES:
        spent = [t for name, t in timings.items() if name.split("_")[0].split("-")[0] == group
                 or (group == "register" and name.startswith("warp-"))]
        row[f"seconds_{group}"] = round(sum(spent), 2) if spent else 0.0
    row["skipped_stages"] = ",".join(record.get("skipped") or [])
    return row
