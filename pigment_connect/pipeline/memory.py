"""Memory of a series: its peak resident size per stage, and how many series fit the machine."""

from __future__ import annotations

import os
import threading

__all__ = ["PeakMemory", "resident_mb", "available_mb", "memory_job_limit", "estimate_series_mb"]


def resident_mb() -> float:
    """This process's resident set size now, MiB (psutil when installed, else /proc/self/statm,
    else the process's lifetime peak from ``resource``)."""
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    except ImportError:
        pass
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def available_mb() -> float | None:
    """Memory the system can give new processes, MiB (``MemAvailable``), or None when unknown."""
    try:
        import psutil

        return psutil.virtual_memory().available / 2**20
    except ImportError:
        pass
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return None


class PeakMemory:
    """Context manager sampling :func:`resident_mb` every ``interval`` s in a thread; ``peak_mb``
    holds the largest value seen (the start and end included)."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak_mb = max(self.peak_mb, resident_mb())

    def __enter__(self) -> PeakMemory:
        self.peak_mb = resident_mb()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak_mb = round(max(self.peak_mb, resident_mb()), 1)


BASE_MB = 600.0
"""Peak of a worker on a tiny series: the imported package (torch, numba, dipy) and its fixed
costs, MiB (measured: 530 MiB for a 4 MiB phantom series, ``benchmarks/results/bench_cohort.md``)."""
PER_INPUT_MB = 14.0
"""Peak per MiB of the float32 DWI array (the data, its masked copy, fit work arrays, maps, the
registration's images, streamline chunks), MiB: the shared whole-brain scan (87 MiB) peaked at
1649 MiB with the default settings, 2437 MiB with 1.1 M streamlines
(``benchmarks/results/bench_cohort.md``); 600 + 14 × 87 = 1818 MiB."""


def estimate_series_mb(shape: tuple[int, ...]) -> float:
    """Estimated peak of one series of a 4-D image of this ``shape`` (before any was measured)."""
    n = 1
    for s in shape:
        n *= int(s)
    return BASE_MB + PER_INPUT_MB * n * 4 / 2**20


def memory_job_limit(n_jobs: int, peak_mb: float, *, available: float | None = None, reserve: float = 0.1) -> int:
    """The most of ``n_jobs`` parallel series whose ``peak_mb`` each fits the available memory
    (less a ``reserve`` fraction), at least 1."""
    available = available_mb() if available is None else available
    if available is None or peak_mb <= 0:
        return max(1, n_jobs)
    return max(1, min(int(n_jobs), int(available * (1 - reserve) // peak_mb)))
