"""The per-subject chain: load → fit → track → connectomes → metrics, each stage one API call."""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..connectome import build_connectomes, is_strength
from ..connectome.atlases import TEMPLATE_SPACE, load_atlas
from ..connectome.register import Registration, register_to_subject, warp_atlas, write_qc_png
from ..errors import InputError, PigmentWarning
from ..fit import TensorModel
from ..graph import global_metrics, node_metrics
from ..io.bids import SubjectScan, bids_label, derivative_name
from ..io.dwi import load_dwi
from ..io.parcellation import Parcellation
from ..io.write import atomic_path, save_json, save_nifti
from ..track import Tracker, check_gradients
from .config import PipelineConfig

__all__ = ["SubjectOutputs", "process_subject", "atlas_parcellations", "connectome_stem", "write_connectomes",
           "write_graph_metrics", "require_parcellation"]

log = logging.getLogger(__name__)


@dataclass
class SubjectOutputs:
    """Paths written for one subject and its graph-level metrics (one row per connectome)."""

    files: dict[str, str] = field(default_factory=dict)
    metrics: pd.DataFrame | None = None
    timings: dict[str, float] = field(default_factory=dict)


GRADIENT_CHECK_SEEDS = 2000  # seeds of the quick tracking behind each of the 24 b-vector candidates


def _pigment_model(config: PipelineConfig, gtab, out_dir: Path):
    """The PIGMENT model of this gradient table. ``pigment-zeroshot``: a seeded
    :class:`~pigment_connect.fit.PigmentModel`, nothing to train. Otherwise the amortised network:
    loaded from ``out_dir/models/`` when a subject with the same table already trained it, else
    trained (seeded) and saved there, so a cohort of one protocol trains once."""
    import hashlib

    from ..fit import AmortisedPigment, PigmentModel

    if config.model == "pigment-zeroshot":
        return PigmentModel(gtab, seed=config.seed)

    table = np.concatenate([np.round(gtab.bvals, 0), np.round(np.abs(gtab.bvecs), 4).ravel()])
    spatial = config.model == "pigment-spatial"
    key = hashlib.sha256(table.tobytes() + str(config.seed).encode()).hexdigest()[:12]
    path = out_dir / "models" / f"amortised-{'spatial-' if spatial else ''}{key}"
    if Path(f"{path}.pt").is_file():
        try:
            return AmortisedPigment.load(path, gtab)
        except InputError as exc:  # trained on another prior or table: train again
            log.warning("not reusing %s: %s", path, exc)
    model = AmortisedPigment(gtab, seed=config.seed, spatial=spatial)
    model.train()
    model.save(path)
    return model


def _check_gradients(config: PipelineConfig, maps, scan: SubjectScan, sub_dir: Path, prefix: str,
                     result: SubjectOutputs) -> None:
    """The b-vector orientation check before tracking: its table is written; a wrong table is a
    :class:`PigmentWarning` (recorded in the run summary) or, with ``gradient_check="fail"``, an
    error naming the .bvec file and the fix."""
    check = check_gradients(maps, n_seeds=GRADIENT_CHECK_SEEDS, random_state=config.seed)
    with atomic_path(sub_dir / derivative_name(prefix, "gradcheck", ".tsv")) as tmp:
        check.table.to_csv(tmp, sep="\t", index=False)
    result.files["gradient_check"] = str(sub_dir / derivative_name(prefix, "gradcheck", ".tsv"))
    if check.given_is_best:
        return
    if config.gradient_check == "fail":
        raise InputError(check.verdict, file=scan.bvec,
                         fix=f"{check.fix} Or run with gradient_check='warn' to go on with the given table.")
    warnings.warn(f"{scan.bvec}: {check.message}", PigmentWarning, stacklevel=2)


def _subject_path(pattern: str, bids_dir: Path, scan: SubjectScan) -> Path:
    """``pattern`` (relative to the BIDS root) with ``{prefix}``, ``{subject}``, ``{session}`` filled in."""
    return bids_dir / pattern.format(prefix=scan.prefix, subject=scan.subject, session=scan.session or "")


def atlas_parcellations(atlases: tuple[str, ...] | list[str], maps, mask, out_dir: Path, prefix: str, *,
                        reuse_transform: bool = True) -> tuple[list[Parcellation], dict[str, str]]:
    """Register the MNI template to the subject's FA once and warp every atlas onto the subject.

    Parameters
    ----------
    atlases : shipped atlas names (``"schaefer200"``) or label-image paths on the template grid.
    maps : MicrostructureMaps holding ``fa``, on the subject's DWI grid.
    mask : (X, Y, Z) bool brain mask of the subject.
    out_dir, prefix : where to write, and the ``sub-X[_ses-Y]...`` start of every name.
    reuse_transform : read the transform saved by an earlier call instead of registering again.

    Returns
    -------
    The subject-space parcellations (one per atlas, in order) and the files written by kind:
    the transform (``xfm``), each parcellation (``dseg``), its coverage table and QC image.
    """
    files: dict[str, str] = {}
    if not atlases:
        return [], files
    out_dir = Path(out_dir)
    xfm_path = out_dir / derivative_name(prefix, "xfm", ".npz", **{"from": TEMPLATE_SPACE}, to="dwi", mode="image")
    if reuse_transform and xfm_path.is_file():
        registration = Registration.load(xfm_path)
    else:
        registration = register_to_subject(np.asarray(maps["fa"]), maps.affine, mask, source=f"{prefix} FA")
        files["xfm"] = str(registration.save(xfm_path))
    out = []
    for atlas_name in atlases:
        parc, coverage = warp_atlas(load_atlas(atlas_name), registration, subject_mask=mask)
        seg = derivative_name(prefix, "dseg", ".nii.gz", space="dwi", seg=parc.name)
        files[f"parcellation_{parc.name}"] = str(parc.save(out_dir / seg))
        coverage_path = out_dir / derivative_name(prefix, "coverage", ".tsv", space="dwi", seg=parc.name)
        with atomic_path(coverage_path) as tmp:
            coverage.to_csv(tmp, sep="\t", index=False)
        files[f"coverage_{parc.name}"] = str(coverage_path)
        qc_path = out_dir / derivative_name(prefix, "qc", ".png", space="dwi", seg=parc.name)
        write_qc_png(qc_path, np.asarray(maps["fa"]), parc.labels)
        files[f"qc_{parc.name}"] = str(qc_path)
        out.append(parc)
    return out, files


def connectome_stem(prefix: str, atlas: str, weighting: str) -> str:
    """``<prefix>_seg-<atlas>_meas-<weighting>_connectome`` (no extension)."""
    return derivative_name(prefix, "connectome", "", seg=atlas, meas=bids_label(weighting))


def write_connectomes(by_atlas: dict, out_dir: Path, prefix: str) -> dict[str, str]:
    """Write every connectome of :func:`~pigment_connect.connectome.build_connectomes` (atlas →
    weighting → Connectome) as ``<stem>.tsv`` and ``<stem>.npz`` (nodes and provenance kept),
    with the provenance of the count connectome as ``<stem>.json``. Returns the .tsv paths, keyed
    ``connectome_<weighting>`` (one atlas) or ``connectome_<atlas>_<weighting>``."""
    out_dir = Path(out_dir)
    files: dict[str, str] = {}
    for atlas_name, connectomes in by_atlas.items():
        for weighting, conn in connectomes.items():
            base = connectome_stem(prefix, atlas_name, weighting)
            key = f"connectome_{weighting}" if len(by_atlas) == 1 else f"connectome_{atlas_name}_{weighting}"
            files[key] = str(conn.save(out_dir / f"{base}.tsv"))
            conn.save(out_dir / f"{base}.npz")
            if weighting == "count":
                save_json(out_dir / f"{base}.json", conn.provenance)
    return files


def write_graph_metrics(by_atlas: dict, out_dir: Path, prefix: str, *, seed: int = 0) -> pd.DataFrame:
    """Node metrics of every strength-like connectome (``<prefix>_seg-X_meas-Y_nodemetrics.tsv``)
    and one ``<prefix>_seg-X_graphmetrics.tsv`` per atlas (a row per weighting, named in its
    ``weighting`` column). Mean-length and uncertainty connectomes are left out
    (:func:`~pigment_connect.connectome.build.is_strength`).
    Returns all global rows."""
    out_dir = Path(out_dir)
    rows = []
    for atlas_name, connectomes in by_atlas.items():
        for weighting, conn in connectomes.items():
            if not is_strength(weighting):
                continue
            nodes = node_metrics(conn, seed=seed)
            with atomic_path(out_dir / derivative_name(prefix, "nodemetrics", ".tsv", seg=atlas_name,
                                                        meas=bids_label(weighting))) as tmp:
                nodes.to_csv(tmp, sep="\t", index=False)
            rows.append({"weighting": weighting, "atlas": atlas_name, **global_metrics(conn, seed=seed).to_dict()})
    metrics = pd.DataFrame(rows)
    for atlas_name in by_atlas:
        with atomic_path(out_dir / derivative_name(prefix, "graphmetrics", ".tsv", seg=atlas_name)) as tmp:
            metrics[metrics["atlas"] == atlas_name].to_csv(tmp, sep="\t", index=False)
    return metrics


def require_parcellation(config: PipelineConfig) -> None:
    """Raise :class:`InputError` when ``config`` names neither an atlas nor a parcellation."""
    if config.parcellation is None and not config.atlases:
        raise InputError(
            "no parcellation configured: every series would fail at its connectome.",
            fix="give --atlas schaefer200 (atlases=('schaefer200',) in Python; registered to each subject) or "
            "--parcellation 'derivatives/.../{prefix}_space-dwi_seg-X_dseg.nii.gz' (already in DWI space).",
        )


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

    require_parcellation(config)
    dwi = load_dwi(scan.dwi, bvals=scan.bval, bvecs=scan.bvec, mask=scan.mask)
    parcellations = ([Parcellation.load(_subject_path(config.parcellation, bids_dir, scan))]
                     if config.parcellation is not None else [])
    if dwi.mask_source == "computed":
        path = sub_dir / derivative_name(prefix, "mask", ".nii.gz", space="dwi", desc="brain")
        result.files["mask"] = str(save_nifti(path, dwi.mask, dwi.affine))
    lap("load")

    tensor_maps = TensorModel(dwi.gtab).fit(dwi).maps
    lap("fit")
    if config.gradient_check != "off":  # first (a wrong table fails early); on the log-linear tensor fit,
        _check_gradients(config, tensor_maps, scan, sub_dir, prefix, result)  # whose tensors permute with it
        lap("gradcheck")
    maps = tensor_maps
    if config.model.startswith("pigment"):
        maps = _pigment_model(config, dwi.gtab, out_dir).fit(dwi).maps
        lap("fit_pigment")
    for name, path in maps.save(sub_dir, prefix=prefix).items():
        result.files[f"map_{name}"] = str(path)

    atlas_parcs, atlas_files = atlas_parcellations(config.atlases, maps, dwi.mask, sub_dir, prefix)
    parcellations += atlas_parcs
    result.files.update({k: v for k, v in atlas_files.items() if k == "xfm" or k.startswith("parcellation_")})
    if config.atlases:
        lap("register")

    tracker = Tracker(
        algorithm=config.tracking_algorithm, step_size=config.step_size, max_angle=config.max_angle, fa_threshold=config.fa_threshold,
        min_length=config.min_length, max_length=config.max_length,
    )
    tissue = None if config.tissue is None else _subject_path(config.tissue, bids_dir, scan)
    tractogram = tracker.track(maps, seeds_per_voxel=config.seeds_per_voxel, tissue=tissue, random_state=config.seed)
    trk_path = sub_dir / derivative_name(prefix, "tractography", config.tractogram_format,
                                         space="dwi", model=bids_label(config.model),
                                         algo="prob" if config.tracking_algorithm == "probabilistic" else "det")
    result.files["tractogram"] = str(tractogram.save(trk_path))
    lap("track")

    by_atlas = build_connectomes(
        tractogram, parcellations, weightings=config.weightings, maps=maps,
        assignment=config.assignment, radius=config.radius,
    )
    result.files.update(write_connectomes(by_atlas, sub_dir, prefix))
    result.metrics = write_graph_metrics(by_atlas, sub_dir, prefix, seed=config.seed)
    lap("connectome")
    return result
