"""Locate the project's shared real-data folder (``../shared/data`` beside a checkout).

Nothing is downloaded: tests and benchmarks that need real scans skip when it is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["shared_data_dir"]


def shared_data_dir() -> Path | None:
    """The shared data folder, or None.

    Looked up in order: ``$PIGMENT_SHARED_DATA``; ``../shared/data`` relative to the current
    directory and to each parent of this file (a source checkout).
    """
    env = os.environ.get("PIGMENT_SHARED_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(Path.cwd().parent / "shared" / "data")
    candidates += [parent.parent / "shared" / "data" for parent in Path(__file__).resolve().parents]
    for path in candidates:
        if (path / "README.md").is_file():
            return path
    return None
