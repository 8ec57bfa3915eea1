"""BIDS(-derivatives) names and discovery of subjects in a BIDS dataset.

Names follow BIDS entity order: ``sub-<label>[_ses-<label>]_<entities>_<suffix><extension>``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .._typing import PathLike
from ..errors import InputError

__all__ = ["SubjectScan", "nifti_stem", "entity_prefix", "bids_label", "derivative_name", "source_prefix",
           "parse_entities", "configuration_entities", "CONFIGURATION_ENTITIES", "INPUT_TYPES", "find_dwi_scans", "read_participants"]

_LABEL = re.compile(r"^[A-Za-z0-9]+$")


def nifti_stem(path: PathLike) -> Path:
    """``path`` without its ``.nii.gz`` or ``.nii`` suffix (any other suffix: without that suffix)."""
    path = Path(path)
    for suffix in (".nii.gz", ".nii"):
        if path.name.endswith(suffix):
            return path.with_name(path.name[: -len(suffix)])
    return path.with_suffix("")


def entity_prefix(subject: str, session: str | None = None) -> str:
    """``sub-<subject>[_ses-<session>]``; labels must be alphanumeric (BIDS)."""
    for kind, label in (("subject", subject), ("session", session)):
        if label is not None and not _LABEL.match(label):
            raise InputError(f"BIDS {kind} label {label!r} must be alphanumeric.")
    return f"sub-{subject}" + (f"_ses-{session}" if session else "")


def bids_label(value: str) -> str:
    """``value`` stripped of the characters a BIDS entity label may not hold (all but 0-9, A-Z, a-z).

    >>> bids_label("pigment-zeroshot"), bids_label("mean_fa")
    ('pigmentzeroshot', 'meanfa')
    """
    return re.sub(r"[^0-9A-Za-z]", "", str(value))


def derivative_name(prefix: str, suffix: str, extension: str, **entities: str | None) -> str:
    """Join ``prefix``, ``key-value`` entities (in the given order, None skipped), suffix, extension.

    >>> derivative_name("sub-01", "dwimap", ".nii.gz", model="tensor", param="fa")
    'sub-01_model-tensor_param-fa_dwimap.nii.gz'
    """
    parts = [prefix] + [f"{k}-{v}" for k, v in entities.items() if v is not None] + [suffix]
    return "_".join(parts) + extension


RAW_ENTITIES = ("sub", "ses", "task", "acq", "ce", "trc", "stain", "rec", "dir", "run", "mod", "echo",
                "flip", "inv", "mt", "part", "chunk")
"""BIDS entities that name an acquired series (in BIDS order); derivative entities (space, model,
seg, meas, desc ...) describe what was made from it."""


def source_prefix(path: PathLike) -> str:
    """The series part of a file name: its leading raw BIDS entities (``sub-01_dir-AP``), which
    every derivative of the series starts with; a name with none gives its stem up to the first
    ``_`` (``scan.nii.gz`` → ``scan``).

    >>> source_prefix("sub-01_ses-2_dir-AP_dwi.nii.gz"), source_prefix("sub-01_space-dwi_tractography.tck")
    ('sub-01_ses-2_dir-AP', 'sub-01')
    >>> source_prefix("/data/my scan.nii")
    'myscan'
    """
    parts = nifti_stem(Path(path).name).name.split("_")
    kept = []
    for part in parts:
        key, sep, value = part.partition("-")
        if not sep or key not in RAW_ENTITIES or not _LABEL.match(value):
            break
        kept.append(part)
    return "_".join(kept) if kept else (bids_label(parts[0]) or "scan")


def parse_entities(path: PathLike) -> dict[str, str]:
    """Every ``key-value`` entity of a file name, in order.

    >>> parse_entities("sub-01_space-dwi_model-tensor_algo-tensorline_tractography.tck")
    {'sub': '01', 'space': 'dwi', 'model': 'tensor', 'algo': 'tensorline'}
    """
    parts = nifti_stem(Path(path).name).name.split(".")[0].split("_")
    return dict(part.split("-", 1) for part in parts if "-" in part)


def natural_key(name: str) -> tuple:
    """A sort key that orders the numbers in ``name`` by value: ``run-2`` before ``run-10``,
    ``sub-01_run-1_...`` before ``sub-01_run-10_...`` (plain string order puts ``0`` before ``_``).

    >>> sorted(["sub-1_run-10", "sub-1_run-2", "sub-1_run-1"], key=natural_key)
    ['sub-1_run-1', 'sub-1_run-2', 'sub-1_run-10']
    """
    return tuple((0, int(part), part) if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name))


CONFIGURATION_ENTITIES = ("model", "algo")
"""Entities naming the settings that made a tractogram (microstructure model, tracking
algorithm), carried by everything built from it so that two configurations never share a path."""


def configuration_labels(model: str, tracking_algorithm: str, tracking_model: str = "tensor",
                         repair: str = "off") -> dict[str, str]:
    """The ``model-``/``algo-`` entities of a configuration (BIDS labels: ``pigment-zeroshot`` →
    ``pigmentzeroshot``), the same in every file name and stage record it makes. A field other
    than the model's tensor is named before the algorithm: ``algo-fodprobabilistic``,
    ``algo-autotensorline``. Maps fitted to a repaired scan say so after the model:
    ``model-tensorrepaired`` (repaired by the tensor), ``model-pigmentpigmentrepaired``."""
    algo = tracking_algorithm if tracking_model == "tensor" else f"{tracking_model}{tracking_algorithm}"
    return {"model": bids_label(model) + repair_label(repair), "algo": bids_label(algo)}


def repair_label(repair: str) -> str:
    """What a repair adds to the model label and the repaired scan's ``desc-``: ``""`` for none,
    ``"repaired"`` by the tensor, ``"<model>repaired"`` by another model."""
    return "" if repair == "off" else "repaired" if repair == "tensor" else f"{bids_label(repair)}repaired"


def stage_name(kind: str, labels: dict[str, str]) -> str:
    """The name under which ``pigment-connect run`` records one of a configuration's stages in
    ``<series>_stages.json``: ``fit-tensor`` or ``fit-<model>`` for ``kind="fit"``,
    ``<kind>_model-<model>_algo-<algo>`` for ``track``, ``connectome`` and ``metrics``."""
    if kind == "fit":
        return f"fit-{labels['model']}"
    return f"{kind}_" + "_".join(f"{key}-{labels[key]}" for key in CONFIGURATION_ENTITIES)


def configuration_entities(path: PathLike) -> dict[str, str]:
    """The ``model-``/``algo-`` entities of a file name, in that order (empty for none).

    >>> configuration_entities("sub-01_space-dwi_model-tensor_algo-tensorline_tractography.tck")
    {'model': 'tensor', 'algo': 'tensorline'}
    """
    found = parse_entities(path)
    return {key: found[key] for key in CONFIGURATION_ENTITIES if key in found}


INPUT_TYPES = ("auto", "raw", "qsiprep")
"""Where the DWI series come from: raw BIDS, or QSIPrep-style preprocessed derivatives
(``sub-X/[ses-Y/]dwi/sub-X_..._space-T1w_desc-preproc_dwi.nii.gz``); ``auto`` tells them apart."""


@dataclass(frozen=True)
class SubjectScan:
    """One DWI series found in a BIDS dataset (raw, or preprocessed derivatives).

    ``space``: the space label of a preprocessed series (``T1w``, ``ACPC``), None for raw data.
    """

    subject: str
    session: str | None
    dwi: Path
    bval: Path
    bvec: Path
    mask: Path | None = None
    space: str | None = None

    @property
    def prefix(self) -> str:
        """Every raw BIDS entity of the series (``sub-01_ses-2_acq-hi_dir-AP_run-1``), and its
        ``space-`` for preprocessed data: the start of each of its outputs, so that two series
        (or two spaces of one series) never share a file."""
        raw = source_prefix(self.dwi)
        return f"{raw}_space-{self.space}" if self.space else raw

    @property
    def space_entity(self) -> str | None:
        """The ``space-`` value derivatives add after the prefix: ``dwi`` (the series' own grid)
        for raw data, none when the prefix names the space already."""
        return None if self.space else "dwi"


def _input_type(root: Path, requested: str) -> str:
    if requested not in INPUT_TYPES:
        raise InputError(f"input type must be one of {INPUT_TYPES}, got {requested!r}.")
    if requested != "auto":
        return requested
    import json

    try:
        generated = json.loads((root / "dataset_description.json").read_text()).get("GeneratedBy", [])
        if any("qsiprep" in str(g.get("Name", "")).lower() for g in generated if isinstance(g, dict)):
            return "qsiprep"
    except (OSError, ValueError, AttributeError):
        pass
    has_raw = any(not _is_derivative(p) for p in _dwi_files(root))
    return "raw" if has_raw or not any(_dwi_files(root)) else "qsiprep"


def _dwi_files(root: Path):
    for dwi in sorted(root.glob("sub-*/**/dwi/*_dwi.nii*"), key=lambda p: natural_key(str(p.relative_to(root)))):
        if not (dwi.name.endswith("_dwi.nii.gz") or dwi.name.endswith("_dwi.nii")):
            continue
        if "derivatives" in dwi.relative_to(root).parts:  # never raw data, whatever lies inside
            continue
        yield dwi


def _is_derivative(path: Path) -> bool:
    entities = parse_entities(path)
    return "desc" in entities or "space" in entities


def find_dwi_scans(bids_dir: PathLike, participant_labels: list[str] | None = None, *,
                   input_type: str = "auto") -> list[SubjectScan]:
    """All DWI series in ``bids_dir``, sorted by subject and session.

    Parameters
    ----------
    bids_dir : a raw BIDS dataset root (``sub-*/[ses-*/]dwi/*_dwi.nii[.gz]``; anything under a
        ``derivatives/`` folder is ignored), or a QSIPrep output folder
        (``sub-*/[ses-*/]dwi/*_space-<label>_desc-preproc_dwi.nii[.gz]``).
    participant_labels : subjects to keep (labels without ``sub-``).
    input_type : ``"raw"``, ``"qsiprep"`` or ``"auto"`` (QSIPrep when the dataset description
        says so, or when only ``desc-preproc`` series are found).

    A mask is used when the series' own mask sits beside it: ``<series>_desc-brain_mask`` or
    ``<series>_space-dwi_desc-brain_mask`` (raw), ``<series>_space-<label>_desc-brain_mask``
    (QSIPrep); never another series' with a longer name.
    """
    root = Path(bids_dir)
    if not root.is_dir():
        raise InputError("BIDS dataset folder not found.", file=root, fix="give the dataset root (it holds sub-*/).")
    kind = _input_type(root, input_type)
    scans: list[SubjectScan] = []
    for dwi in _dwi_files(root):
        entities = parse_entities(dwi)
        if kind == "raw" and _is_derivative(dwi):
            continue
        if kind == "qsiprep" and (entities.get("desc") != "preproc" or "space" not in entities):
            continue
        m = re.match(r"^sub-([A-Za-z0-9]+)(?:_ses-([A-Za-z0-9]+))?", dwi.name)
        if m is None:
            continue
        subject, session = m.group(1), m.group(2)
        if participant_labels and subject not in participant_labels:
            continue
        base = nifti_stem(dwi).name
        stem = base[: -len("_dwi")]
        if kind == "qsiprep":
            candidates = [stem.replace("_desc-preproc", "_desc-brain") + "_mask"]
        else:  # the series' own mask only: a prefix glob would give run-1 the mask of run-10
            candidates = [f"{stem}{space}_desc-brain_mask" for space in ("", "_space-dwi")]
        mask = next((dwi.parent / f"{c}{ext}" for c in candidates for ext in (".nii.gz", ".nii")
                     if (dwi.parent / f"{c}{ext}").is_file()), None)
        scans.append(
            SubjectScan(
                subject=subject,
                session=session,
                dwi=dwi,
                bval=dwi.with_name(base + ".bval"),
                bvec=dwi.with_name(base + ".bvec"),
                mask=mask,
                space=entities.get("space") if kind == "qsiprep" else None,
            )
        )
    by_prefix: dict[str, list[Path]] = {}
    for scan in scans:
        by_prefix.setdefault(scan.prefix, []).append(scan.dwi)
    clashes = {prefix: paths for prefix, paths in by_prefix.items() if len(paths) > 1}
    if clashes:
        prefix, paths = next(iter(clashes.items()))
        raise InputError(
            f"{len(clashes)} series name(s) would share their outputs: {', '.join(str(p) for p in paths)} "
            f"all map to {prefix!r}.",
            file=paths[0],
            fix="keep one file per series (e.g. not both .nii and .nii.gz), or tell the series apart "
            "with a BIDS entity (acq-, dir-, run-).",
        )
    if participant_labels:
        missing = sorted(set(participant_labels) - {s.subject for s in scans})
        if missing:
            raise InputError(
                f"no DWI series for participant(s) {missing}.",
                file=root,
                fix="check --participant-label against the sub-* folders.",
            )
    if not scans:
        expected = ("sub-*/[ses-*/]dwi/sub-*_space-<label>_desc-preproc_dwi.nii.gz" if kind == "qsiprep"
                    else "sub-*/[ses-*/]dwi/sub-*_dwi.nii.gz")
        raise InputError(
            f"no DWI series found (expected {expected}).",
            file=root,
            fix="point to the root of a BIDS dataset.",
        )
    return scans


def read_participants(bids_dir: PathLike):
    """``participants.tsv`` as a DataFrame indexed by subject label (without ``sub-``), or None."""
    import pandas as pd

    path = Path(bids_dir) / "participants.tsv"
    if not path.is_file():
        return None
    try:
        table = pd.read_csv(path, sep="\t", dtype=str)
    except Exception as exc:
        raise InputError(f"cannot parse participants table: {exc}.", file=path, fix="write a tab-separated table.") from None
    if "participant_id" not in table.columns:
        raise InputError("participants.tsv has no participant_id column.", file=path, fix="add it (BIDS requires it).")
    table["subject"] = table["participant_id"].str.replace("^sub-", "", regex=True)
    return table.set_index("subject")
