"""BIDS(-derivatives) names and discovery of subjects in a BIDS dataset.

Names follow BIDS entity order: ``sub-<label>[_ses-<label>]_<entities>_<suffix><extension>``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .._typing import PathLike
from ..errors import InputError

__all__ = ["SubjectScan", "nifti_stem", "entity_prefix", "bids_label", "derivative_name", "source_prefix", "find_dwi_scans", "read_participants"]

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


@dataclass(frozen=True)
class SubjectScan:
    """One DWI series found in a BIDS dataset."""

    subject: str
    session: str | None
    dwi: Path
    bval: Path
    bvec: Path
    mask: Path | None = None

    @property
    def prefix(self) -> str:
        """Every raw BIDS entity of the series (``sub-01_ses-2_acq-hi_dir-AP_run-1``): the start
        of each of its outputs, so that two series of one subject never share a file."""
        return source_prefix(self.dwi)


def find_dwi_scans(bids_dir: PathLike, participant_labels: list[str] | None = None) -> list[SubjectScan]:
    """All ``sub-*/[ses-*/]dwi/*_dwi.nii[.gz]`` series in ``bids_dir``, sorted by subject and session.

    A mask is used when ``<series>_desc-brain_mask.nii[.gz]`` (or ``<series>_space-dwi_desc-brain_mask``)
    sits beside the series; only the series' own, never another's with a longer name.
    """
    root = Path(bids_dir)
    if not root.is_dir():
        raise InputError("BIDS dataset folder not found.", file=root, fix="give the dataset root (it holds sub-*/).")
    scans: list[SubjectScan] = []
    for dwi in sorted(root.glob("sub-*/**/dwi/*_dwi.nii*")):
        if not (dwi.name.endswith("_dwi.nii.gz") or dwi.name.endswith("_dwi.nii")):
            continue
        m = re.match(r"^sub-([A-Za-z0-9]+)(?:_ses-([A-Za-z0-9]+))?", dwi.name)
        if m is None:
            continue
        subject, session = m.group(1), m.group(2)
        if participant_labels and subject not in participant_labels:
            continue
        base = nifti_stem(dwi).name
        stem = base[: -len("_dwi")]
        # the series' own mask only: a prefix glob would give run-1 the mask of run-10
        mask = next((m for m in (dwi.parent / f"{stem}{space}_desc-brain_mask{ext}"
                                 for space in ("", "_space-dwi") for ext in (".nii.gz", ".nii"))
                     if m.is_file()), None)
        scans.append(
            SubjectScan(
                subject=subject,
                session=session,
                dwi=dwi,
                bval=dwi.with_name(base + ".bval"),
                bvec=dwi.with_name(base + ".bvec"),
                mask=mask,
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
        raise InputError(
            "no DWI series found (expected sub-*/[ses-*/]dwi/sub-*_dwi.nii.gz).",
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
