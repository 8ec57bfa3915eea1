"""What a series' derivatives say about it, read back from the files ``pigment-connect run``
wrote (its run records ``<series>_status.json``, stage records ``<series>_stages.json``, maps,
transforms, coverage tables, tractograms, connectomes), never recomputed.

A series may hold several configurations (another ``--model`` or ``--tracking``): the stages they
share (load, tensor fit, gradient check, registration) are read once, the others per configuration.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .._typing import PathLike
from ..errors import InputError
from ..io.bids import configuration_labels, natural_key, parse_entities, stage_name
from ..io.maps import MicrostructureMaps
from ..io.write import read_json_object

__all__ = ["SeriesRecord", "Configuration", "find_series", "WM_FA_THRESHOLD"]

WM_FA_THRESHOLD = 0.2
"""White matter, for the QC numbers and map ranges of the report: brain-mask voxels with tensor
FA ≥ 0.2 (a contrast-free definition that every scan has)."""


@dataclass
class Configuration:
    """One configuration run on a series: its hash, settings, run record and stage names."""

    hash: str
    settings: dict
    record: dict

    @property
    def labels(self) -> dict[str, str]:
        """Its ``model-``/``algo-`` entities, as in its file names."""
        return configuration_labels(self.settings.get("model", "tensor"),
                                    self.settings.get("tracking_algorithm", "tensorline"),
                                    self.settings.get("tracking_model", "tensor"),
                                    self.settings.get("repair", "off"))

    @property
    def model(self) -> str:
        return self.labels["model"]

    @property
    def algo(self) -> str:
        return self.labels["algo"]

    def stage_name(self, kind: str) -> str:
        """The record name of its ``fit``, ``track``, ``connectome`` or ``metrics`` stage."""
        return stage_name(kind, self.labels)

    @property
    def status(self) -> str:
        return self.record.get("status", "unknown")


@dataclass
class SeriesRecord:
    """Everything recorded about one series in a derivatives folder."""

    prefix: str
    folder: Path
    out_dir: Path
    runs: dict[str, Configuration] = field(default_factory=dict)
    stages: dict[str, dict] = field(default_factory=dict)
    _maps: dict[str, MicrostructureMaps | None] = field(default_factory=dict, repr=False)

    @property
    def entities(self) -> dict[str, str]:
        return parse_entities(self.prefix + "_x.nii")

    @property
    def subject(self) -> str:
        return self.entities.get("sub", "")

    @property
    def session(self) -> str:
        return self.entities.get("ses", "")

    @property
    def report_path(self) -> Path:
        return self.folder / f"{self.prefix}_report.html"

    @property
    def log_path(self) -> Path:
        return self.folder / f"{self.prefix}_log.txt"

    def stage(self, name: str) -> dict | None:
        return self.stages.get(name)

    def file(self, stage: str, key: str) -> Path | None:
        """A file a stage recorded, if it still exists (moved derivatives: looked up by name in
        the series folder)."""
        record = self.stages.get(stage) or {}
        path = (record.get("files") or {}).get(key)
        if not path:
            return None
        path = Path(path)
        if path.is_file():
            return path
        local = self.folder / path.name
        return local if local.is_file() else None

    def maps(self, stage: str) -> MicrostructureMaps | None:
        """The maps a fit stage recorded (read once: the page and the QC numbers share them)."""
        if stage not in self._maps:
            index = self.file(stage, "index")
            self._maps[stage] = None if index is None else MicrostructureMaps.from_index(index)
        return self._maps[stage]

    def release(self) -> None:
        """Forget the maps read so far (a cohort's pages are drawn one series at a time)."""
        self._maps.clear()

    def parcellations(self) -> list[str]:
        """The names of the atlases warped onto this series."""
        return [name[len("warp-"):] for name in self.stages if name.startswith("warp-")]

    def log_tail(self, lines: int = 200) -> str:
        if not self.log_path.is_file():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def find_series(out_dir: PathLike) -> list[SeriesRecord]:
    """Every series with a run record under ``out_dir`` (a ``pigment-connect run`` derivatives
    folder), in natural name order (``run-2`` before ``run-10``)."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise InputError("the derivatives folder does not exist.", file=out_dir)
    found = []
    for status in sorted(out_dir.glob("sub-*/**/*_status.json"), key=lambda p: natural_key(p.name)):
        prefix = status.name[: -len("_status.json")]
        runs = read_json_object(status).get("runs", {})
        stages = read_json_object(status.with_name(f"{prefix}_stages.json")).get("stages", {})
        record = SeriesRecord(prefix, status.parent, out_dir, stages=stages)
        for config_hash, run in runs.items():
            settings = read_json_object(out_dir / f"config-{config_hash}.json")
            record.runs[config_hash] = Configuration(config_hash, settings, run)
        found.append(record)
    if not found:
        raise InputError("no series run records (*_status.json) found.", file=out_dir,
                         fix="give the folder 'pigment-connect run' wrote (its OUT_DIR).")
    return found


def read_table(path: Path | None) -> pd.DataFrame | None:
    if path is None or not Path(path).is_file():
        return None
    try:
        return pd.read_csv(path, sep="\t")
    except (OSError, ValueError):
        return None


def white_matter(fa: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """The report's white matter: brain voxels with FA ≥ :data:`WM_FA_THRESHOLD`."""
    wm = np.isfinite(fa) & (fa >= WM_FA_THRESHOLD)
    return wm if mask is None else wm & mask
