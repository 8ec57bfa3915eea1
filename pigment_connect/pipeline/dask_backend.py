"""Running a cohort's series as ``dask.distributed`` tasks (``pigment-connect run --scheduler``).

One task per series, with a deterministic key (configuration hash and series prefix). A series'
bad input is not an exception: the task returns that series' failure record, so it is never
retried; a worker lost mid-task is rescheduled by the scheduler (its ``allowed-failures``) and
the series resumes from its stage records. Outputs equal a local run's: the same function runs
the same stages with the same seeds.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

from .._threads import thread_share
from ..errors import InputError
from ..io.bids import SubjectScan
from .config import PipelineConfig

__all__ = ["dask_client", "run_on_dask"]


@contextlib.contextmanager
def dask_client(scheduler: str, n_threads: int | None) -> Iterator[tuple[object, int | None]]:
    """A ``distributed.Client`` for ``scheduler``: ``local:N`` starts a LocalCluster of N
    single-threaded worker processes (each series then gets ``n_threads // N`` numba/torch
    threads), anything else is a scheduler address (``tcp://host:8786``; each series gets
    ``n_threads``, default: the worker's own setting). Yields (client, threads per series)."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise InputError("the Dask backend needs dask.distributed.",
                         fix='pip install "pigment_connect[dask]" (or "dask[distributed]").') from None
    if scheduler.startswith("local:"):
        try:
            n_workers = int(scheduler.split(":", 1)[1])
        except ValueError:
            n_workers = 0
        if n_workers < 1:
            raise InputError(f"--scheduler {scheduler!r}: give local:N with N ≥ 1 workers, or a scheduler address.")
        with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
                Client(cluster) as client:
            yield client, thread_share(n_threads, n_workers)
        return
    try:
        client = Client(scheduler, timeout="30s")
    except (OSError, TimeoutError) as exc:
        raise InputError(f"cannot reach the Dask scheduler {scheduler!r} ({exc}).",
                         fix="start it (dask scheduler, or dask-jobqueue's SLURMCluster) and give its address, "
                         "or use --scheduler local:N.") from None
    with client:
        yield client, n_threads


def run_on_dask(run_one: Callable, scans: list[SubjectScan], bids_dir: Path, out_dir: Path, config: PipelineConfig,
                *, force: bool, scheduler: str, n_threads: int | None, on_done: Callable[[], None]) -> list[dict]:
    """``run_one(scan, bids_dir, out_dir, config, force, threads)`` for every series on the
    cluster; the records in completion order (a task that raised gives a failure record)."""
    from distributed import as_completed

    records = []
    with dask_client(scheduler, n_threads) as (client, threads):
        futures = {
            client.submit(run_one, scan, bids_dir, out_dir, config, force, threads,
                          key=f"pigment-connect-{config.hash}-{scan.prefix}", pure=False, retries=0): scan
            for scan in scans
        }
        for future in as_completed(futures):
            scan = futures[future]
            try:
                records.append(future.result())
            except Exception as exc:  # the task died (a worker lost too often): that series fails, not the run
                records.append({"prefix": scan.prefix, "subject": scan.subject, "session": scan.session,
                                "status": "failed", "error": f"Dask task failed: {type(exc).__name__}: {exc}",
                                "seconds": None})
            on_done()
    return records
