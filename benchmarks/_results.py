"""Each benchmark's printed report, kept in ``benchmarks/results/`` with the commit, machine and date.

    with recorded(__file__):
        main()

writes what ``main`` prints (it still goes to the terminal) to ``results/<script>.md`` when the
run completes (``results/<script>__<arguments>.md`` when it was given arguments), headed by the
command, the commit (``+dirty`` when the work tree had changes), the machine and the date. The
README quotes only these files.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

__all__ = ["recorded", "machine"]

RESULTS = Path(__file__).resolve().parent / "results"


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=RESULTS.parent, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def commit() -> str:
    sha = _git("rev-parse", "--short", "HEAD") or "unknown"
    return sha + ("+dirty" if _git("status", "--porcelain", "--untracked-files=no") else "")


def machine() -> str:
    """CPU model, cores, memory and GPU (if torch sees one), in one line."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        kib = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0])
        memory = f", {kib / 2**20:.0f} GiB"
    gpu = ""
    with contextlib.suppress(Exception):
        import torch

        if torch.cuda.is_available():
            gpu = f", GPU {torch.cuda.get_device_name()}"
    return f"{cpu}, {os.cpu_count()} CPUs{memory}{gpu}"


class _Tee(io.TextIOBase):
    def __init__(self, *streams):
        self.streams = streams

    def write(self, text: str) -> int:
        for stream in self.streams:
            stream.write(text)
        return len(text)

    def flush(self) -> None:
        for stream in self.streams:
            stream.flush()


@contextlib.contextmanager
def recorded(script: str, argv: list[str] | None = None):
    """Tee stdout into the results file of ``script`` (written only if the block completes)."""
    argv = sys.argv[1:] if argv is None else argv
    if "--worker" in argv:  # a benchmark's own timed subprocess: its parent records the run
        yield
        return
    name = Path(script).stem
    if argv:
        name += "__" + re.sub(r"[^A-Za-z0-9.=-]+", "_", "_".join(a.lstrip("-") for a in argv)).strip("_")
    header = (f"# {Path(script).name}\n\n"
              f"- command: `python benchmarks/{Path(script).name}{' ' if argv else ''}{' '.join(argv)}`\n"
              f"- commit: {commit()}\n- machine: {machine()}\n"
              f"- date: {dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}\n\n```\n")
    buffer = io.StringIO()
    stdout = sys.stdout
    sys.stdout = _Tee(stdout, buffer)
    try:
        yield
    finally:
        sys.stdout = stdout
    RESULTS.mkdir(exist_ok=True)
    target = RESULTS / f"{name}.md"
    tmp = target.with_suffix(".md.tmp")
    tmp.write_text(header + buffer.getvalue().rstrip("\n") + "\n```\n")
    os.replace(tmp, target)
    print(f"\nresults: {target.relative_to(RESULTS.parent.parent)}")
