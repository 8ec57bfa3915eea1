"""What the stages of a series write, shared by ``pigment-connect run`` (:mod:`.series`) and the
stage commands (``fit``, ``track``, ``connectome``, ``metrics``): registration and warped atlases,
connectome and graph-metric files under their BIDS-derivative names."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..connectome import is_strength
from ..connectome.atlases import TEMPLATE_SPACE, load_atlas
from ..connectome.register import Registration, register_to_subject, warp_atlas
from ..errors import InputError
from ..graph import global_metrics, node_metrics
from ..io.bids import bids_label, derivative_name
from ..io.parcellation import Parcellation
from ..io.write import atomic_path, save_json
from ..report import figures
from .config import PipelineConfig

__all__ = ["atlas_parcellations", "warp_to_subject", "transform_path", "connectome_stem",
           "write_connectomes", "write_graph_metrics", "require_parcellation"]


def warp_to_subject(atlas: str | Parcellation, registration: Registration, fa: np.ndarray, mask: np.ndarray,
                    out_dir: Path, prefix: str, *, space: str | None = "dwi") -> tuple[Parcellation, dict[str, str]]:
    """Warp one atlas (a shipped name, a label-image path or a loaded template-space
    :class:`Parcellation`) onto the subject and write its dseg (with node table), coverage table
    and QC image (label borders over ``fa``), with ``space-<space>`` after the prefix (None when
    the prefix names the space). Returns the subject-space parcellation and the files by kind
    (``dseg``, ``coverage``, ``qc``)."""
    template_atlas = atlas if isinstance(atlas, Parcellation) else load_atlas(atlas)
    parc, coverage = warp_atlas(template_atlas, registration, subject_mask=mask)
    out_dir = Path(out_dir)
    files = {"dseg": str(parc.save(out_dir / derivative_name(prefix, "dseg", ".nii.gz", space=space, seg=parc.name)))}
    coverage_path = out_dir / derivative_name(prefix, "coverage", ".tsv", space=space, seg=parc.name)
    with atomic_path(coverage_path) as tmp:
        coverage.to_csv(tmp, sep="\t", index=False)
    files["coverage"] = str(coverage_path)
    qc_path = out_dir / derivative_name(prefix, "qc", ".png", space=space, seg=parc.name)
    picture = figures.planes(np.asarray(fa), registration.subject_affine, labels=parc.labels, centre_on=mask,
                             title=f"{prefix}: {parc.name} borders on FA")
    with atomic_path(qc_path) as tmp:
        Path(tmp).write_bytes(picture)
    files["qc"] = str(qc_path)
    return parc, files


def transform_path(out_dir: Path, prefix: str) -> Path:
    """Where the template → subject transform of a series is written."""
    return Path(out_dir) / derivative_name(prefix, "xfm", ".npz", **{"from": TEMPLATE_SPACE}, to="dwi", mode="image")


def atlas_parcellations(atlases, maps, mask, out_dir: Path, prefix: str, *,
                        reuse_transform: bool = True) -> tuple[list[Parcellation], dict[str, str]]:
    """Register the MNI template to the subject's FA once and warp every atlas onto the subject.

    Parameters
    ----------
    atlases : shipped atlas names (``"schaefer200"``), label-image paths on the template grid, or
        loaded template-space parcellations.
    maps : MicrostructureMaps holding ``fa``, on the subject's DWI grid.
    mask : (X, Y, Z) bool brain mask of the subject.
    out_dir, prefix : where to write, and the ``sub-X[_ses-Y]...`` start of every name.
    reuse_transform : read the transform saved by an earlier call instead of registering again.

    Returns
    -------
    The subject-space parcellations (one per atlas, in order) and the files written by kind:
    the transform (``xfm``), each parcellation (``parcellation_<atlas>``), its coverage table
    (``coverage_<atlas>``) and QC image (``qc_<atlas>``).
    """
    files: dict[str, str] = {}
    if not len(atlases):
        return [], files
    xfm_path = transform_path(out_dir, prefix)
    if reuse_transform and xfm_path.is_file():
        registration = Registration.load(xfm_path)
    else:
        registration = register_to_subject(np.asarray(maps["fa"]), maps.affine, mask, source=f"{prefix} FA")
        files["xfm"] = str(registration.save(xfm_path))
    out = []
    for atlas in atlases:
        parc, written = warp_to_subject(atlas, registration, maps["fa"], mask, out_dir, prefix)
        files.update({f"{'parcellation' if kind == 'dseg' else kind}_{parc.name}": path for kind, path in written.items()})
        out.append(parc)
    return out, files


def connectome_stem(prefix: str, atlas: str, weighting: str, entities: dict | None = None) -> str:
    """``<prefix>[_model-M_algo-A]_seg-<atlas>_meas-<weighting>_connectome`` (no extension);
    ``entities``: the configuration entities of the tractogram
    (:func:`~pigment_connect.io.bids.configuration_entities`)."""
    return derivative_name(prefix, "connectome", "", **(entities or {}), seg=atlas, meas=bids_label(weighting))


def write_connectomes(by_atlas: dict, out_dir: Path, prefix: str, entities: dict | None = None) -> dict[str, str]:
    """Write every connectome of :func:`~pigment_connect.connectome.build_connectomes` (atlas →
    weighting → Connectome) as ``<stem>.tsv`` and ``<stem>.npz`` (nodes and provenance kept),
    with the provenance of the count connectome as ``<stem>.json`` (stems: :func:`connectome_stem`).
    Returns the .tsv paths, keyed ``connectome_<weighting>`` (one atlas) or
    ``connectome_<atlas>_<weighting>``."""
    out_dir = Path(out_dir)
    files: dict[str, str] = {}
    for atlas_name, connectomes in by_atlas.items():
        for weighting, conn in connectomes.items():
            base = connectome_stem(prefix, atlas_name, weighting, entities)
            key = f"connectome_{weighting}" if len(by_atlas) == 1 else f"connectome_{atlas_name}_{weighting}"
            files[key] = str(conn.save(out_dir / f"{base}.tsv"))
            conn.save(out_dir / f"{base}.npz")
            if weighting == "count":
                save_json(out_dir / f"{base}.json", conn.provenance)
    return files


def write_graph_metrics(by_atlas: dict, out_dir: Path, prefix: str, *, seed: int = 0,
                        entities: dict | None = None) -> pd.DataFrame:
    """Node metrics of every strength-like connectome (``<prefix>[_model-M_algo-A]_seg-X_meas-Y_nodemetrics.tsv``)
    and one ``<prefix>[_model-M_algo-A]_seg-X_graphmetrics.tsv`` per atlas (a row per weighting, named in its
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
            with atomic_path(out_dir / derivative_name(prefix, "nodemetrics", ".tsv", **(entities or {}), seg=atlas_name,
                                                        meas=bids_label(weighting))) as tmp:
                nodes.to_csv(tmp, sep="\t", index=False)
            rows.append({"weighting": weighting, "atlas": atlas_name, **global_metrics(conn, seed=seed).to_dict()})
    metrics = pd.DataFrame(rows)
    for atlas_name in by_atlas:
        with atomic_path(out_dir / derivative_name(prefix, "graphmetrics", ".tsv", **(entities or {}), seg=atlas_name)) as tmp:
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
