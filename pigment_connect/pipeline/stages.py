"""The per-subject chain: load → fit → track → connectomes → metrics, each stage one API call."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..connectome import build_connectomes
from ..errors import InputError
from ..fit import TensorModel
from ..graph import global_metrics, node_metrics
from ..io.bids import SubjectScan, derivative_name
from ..io.dwi import load_dwi
from ..io.parcellation import Parcellation
from ..io.write import atomic_path, save_json, save_nifti
from ..track import Tracker
from .config import PipelineConfig

__all__ = ["SubjectOutputs", "process_subject"]

log = logging.getLogger(__name__)


@dataclass
class SubjectOutputs:
    """Paths written for one subject and its graph-level metrics (one row per connectome)."""

    files: dict[str, str] = field(default_factory=dict)
    metrics: pd.DataFrame | None = None
    timings: dict[str, float] = field(default_factory=dict)


def _parcellation_path(config: PipelineConfig, bids_dir: Path, scan: SubjectScan) -> Path:
    if config.parcellation is None:
        raise InputError(
            "no parcellation configured.",
            fix="set PipelineConfig(parcellation='derivatives/.../{prefix}_space-dwi_seg-X_dseg.nii.gz').",
        )
    rel = config.parcellation.format(prefix=scan.prefix, subject=scan.subject, session=scan.session or "")
    return bids_dir / rel


def process_subject(scan: SubjectScan, bids_dir: Path, out_dir: Path, config: PipelineConfig) -> SubjectOutputs:
    """Run every stage for one DWI series and write its outputs under ``out_dir/<sub>[/<ses>]/dwi``."""
    result = SubjectOutputs()
    sub_dir = out_dir / f"sub-{scan.subject}" / (f"ses-{scan.session}" if scan.session else "") / "dwi"
    prefix = scan.prefix
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        result.timings[stage] = round(now - clock, 3)
        clock = now

    dwi = load_dwi(scan.dwi, bvals=scan.bval, bvecs=scan.bvec, mask=scan.mask)
    parcellation = Parcellation.load(_parcellation_path(config, bids_dir, scan))
    if dwi.mask_source == "computed":
        path = sub_dir / derivative_name(prefix, "mask", ".nii.gz", space="dwi", desc="brain")
        result.files["mask"] = str(save_nifti(path, dwi.mask, dwi.affine))
    lap("load")

    fit = TensorModel(dwi.gtab).fit(dwi)
    maps = fit.maps
    for name, path in maps.save(sub_dir, prefix=prefix).items():
        result.files[f"map_{name}"] = str(path)
    lap("fit")

    tracker = Tracker(
        algorithm=config.tracking_algorithm, step_size=config.step_size, max_angle=config.max_angle, fa_threshold=config.fa_threshold,
        min_length=config.min_length, max_length=config.max_length,
    )
    tractogram = tracker.track(maps, seeds_per_voxel=config.seeds_per_voxel, random_state=config.seed)
    trk_path = sub_dir / derivative_name(prefix, "tractography", config.tractogram_format,
                                         space="dwi", model=config.model, algo="det")
    result.files["tractogram"] = str(tractogram.save(trk_path))
    lap("track")

    connectomes = build_connectomes(
        tractogram, parcellation, weightings=config.weightings, maps=maps,
        assignment=config.assignment, radius=config.radius,
    )
    rows = []
    for weighting, conn in connectomes.items():
        meas = weighting.replace("_", "")
        base = derivative_name(prefix, "connectome", "", seg=parcellation.name, meas=meas)
        result.files[f"connectome_{weighting}"] = str(conn.save(sub_dir / f"{base}.tsv"))
        conn.save(sub_dir / f"{base}.npz")
        nodes = node_metrics(conn)
        with atomic_path(sub_dir / derivative_name(prefix, "nodemetrics", ".tsv", seg=parcellation.name,
                                                    meas=meas)) as tmp:
            nodes.to_csv(tmp, sep="\t", index=False)
        g = global_metrics(conn, seed=config.seed)
        rows.append({"weighting": weighting, "atlas": parcellation.name, **g.to_dict()})
        if weighting == "count":
            save_json(sub_dir / f"{base}.json", conn.provenance)
    result.metrics = pd.DataFrame(rows)
    with atomic_path(sub_dir / derivative_name(prefix, "graphmetrics", ".tsv", seg=parcellation.name)) as tmp:
        result.metrics.to_csv(tmp, sep="\t", index=False)
    lap("connectome")
    return result
