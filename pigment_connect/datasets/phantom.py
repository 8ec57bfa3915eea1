"""Synthetic subjects and cohorts with known ground truth.

A subject is an ellipsoidal "brain" on a voxel grid (default 44×52×14 voxels of 2 mm; pass a
larger ``shape`` for a head-sized volume), holding:

* eight cortical-like grey-matter regions on a ring in the axial mid-plane (labels 1–8),
* white-matter bundles (tubes) joining some region pairs: two straight commissural bundles, two
  curved lateral arcs, and three straight bundles that cross at right angles,
* low-anisotropy deep tissue elsewhere, a CSF rim, and empty background (Rician noise only).

Every voxel's tissue is NODDI-Watson (:mod:`.signal`): known NDI, ODI, FWF and orientation; the
true DTI tensor is the tissue's b→0 apparent tensor. Crossing voxels average the two bundles'
signals. The parcellation of the regions and the true connectome (1 for each bundle's region pair)
come with it. Optional group effect (NDI of one bundle scaled for "patients") and site effect
(signal scale and SNR per site) make group statistics testable. Same seed → same subject.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from .._typing import PathLike
from ..errors import InputError
from ..io.bids import entity_prefix
from ..io.connectome import Connectome
from ..io.dwi import DiffusionData
from ..io.gradients import GradientTable
from ..io.parcellation import Parcellation
from ..io.write import save_json, save_nifti, save_text
from ..physics.protocol import hemisphere_directions
from .signal import kappa_from_odi, noddi_signal, noddi_tensor

__all__ = [
    "REGION_NAMES",
    "BUNDLES",
    "Tissue",
    "PhantomSubject",
    "make_protocol",
    "make_subject",
    "make_cohort",
    "write_bids",
    "PARCELLATION_NAME",
    "subject_parcellation_pattern",
    "subject_tissue_pattern",
]

PARCELLATION_NAME = "phantom"

REGION_NAMES = (
    "R_lateral_anterior",
    "R_medial_anterior",
    "L_medial_anterior",
    "L_lateral_anterior",
    "L_lateral_posterior",
    "L_medial_posterior",
    "R_medial_posterior",
    "R_lateral_posterior",
)
"""Region k (label k + 1) sits at angle 22.5° + 45°·k on the ring, measured from +x (right) to +y (anterior)."""

BUNDLES = (
    # name, region pair (0-based), control point in normalised (x, y) or None for straight
    ("commissural_anterior", (1, 2), None),
    ("commissural_posterior", (5, 6), None),
    ("arc_right", (0, 7), (0.45, 0.0)),
    ("arc_left", (3, 4), (-0.45, 0.0)),
    ("vertical_right", (1, 6), None),
    ("vertical_left", (2, 5), None),
    ("horizontal_crossing", (0, 3), None),
)
"""The true edges. ``vertical_*`` and ``horizontal_crossing`` cross at right angles."""


@dataclass(frozen=True)
class Tissue:
    """NODDI parameters and relative b=0 signal of one tissue class."""

    ndi: float
    odi: float
    fwf: float
    s0: float


WHITE_MATTER = Tissue(ndi=0.65, odi=0.08, fwf=0.0, s0=1.0)
GREY_MATTER = Tissue(ndi=0.30, odi=0.60, fwf=0.05, s0=1.25)
DEEP_TISSUE = Tissue(ndi=0.25, odi=0.85, fwf=0.10, s0=1.15)
CSF = Tissue(ndi=0.0, odi=0.5, fwf=1.0, s0=2.0)

_RING_RADIUS = 0.8  # region centres, as a fraction of the ellipse semi-axes
_CSF_RIM = 0.92  # normalised radius where CSF begins


def make_protocol(name: str = "dense") -> GradientTable:
    """A named gradient table with near-uniform directions (golden-spiral half sphere).

    ``"dense"``: 3 b0 + 32 at b=1000 + 32 at b=2000; ``"single_shell"``: 2 b0 + 30 at b=1000;
    ``"clinical"``: 1 b0 + 12 at b=1000; ``"sparse6"``: 1 b0 + 6 at b=1000;
    ``"two_shell_sparse"``: 1 b0 + 8 at b=1000 + 8 at b=2000.
    """
    specs = {
        "dense": (3, [(1000.0, 32), (2000.0, 32)]),
        "single_shell": (2, [(1000.0, 30)]),
        "clinical": (1, [(1000.0, 12)]),
        "sparse6": (1, [(1000.0, 6)]),
        "two_shell_sparse": (1, [(1000.0, 8), (2000.0, 8)]),
    }
    if name not in specs:
        raise InputError(f"unknown protocol {name!r}; choose one of {sorted(specs)}.")
    n_b0, shells = specs[name]
    bvals = [0.0] * n_b0
    bvecs = [np.zeros(3)] * n_b0
    for k, (b, n) in enumerate(shells):
        dirs = hemisphere_directions(n, twist=0.5 * k)
        bvals += [b] * n
        bvecs += list(dirs)
    return GradientTable(np.array(bvals), np.array(bvecs))


@dataclass(frozen=True, eq=False)
class PhantomSubject:
    """A synthetic subject and its ground truth.

    Attributes
    ----------
    subject, group, site : str
    dwi : DiffusionData
        Noisy signal on the phantom grid; its mask is the true brain mask.
    parcellation : Parcellation
        The regions (labels 1–8) on the same grid.
    truth : dict of str → array
        ``ndi``, ``odi``, ``fwf`` (X, Y, Z); ``tensor`` (X, Y, Z, 3, 3) mm²/s; ``fa``, ``md`` from it;
        ``orientation`` (X, Y, Z, 3) main fibre direction (zero outside bundles); ``wm`` bool
        bundle voxels; ``bundle_id`` (X, Y, Z, 2) int, bundle indices per voxel (-1 for none).
    true_connectome : Connectome
        1 between each bundle's region pair, 0 elsewhere.
    covariates : dict
        ``age``, ``sex`` (random but seeded) for group statistics.
    """

    subject: str
    group: str
    site: str
    dwi: DiffusionData
    parcellation: Parcellation
    truth: dict[str, np.ndarray]
    true_connectome: Connectome
    covariates: dict = field(default_factory=dict)


def _fa_md(tensors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ev = np.linalg.eigvalsh(tensors)
    md = ev.mean(axis=-1)
    num = np.sqrt(((ev - md[..., None]) ** 2).sum(axis=-1))
    den = np.sqrt((ev**2).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        fa = np.where(den > 0, np.sqrt(1.5) * num / den, 0.0)
    return fa, md


def _five_tissue(brain: np.ndarray, csf: np.ndarray, gm: np.ndarray) -> np.ndarray:
    """(X, Y, Z, 5) float32 five-tissue-type fractions (cortical GM, sub-cortical GM, WM, CSF,
    pathology): the regions are cortical grey matter, the CSF rim CSF, the rest of the brain
    (bundles and the low-anisotropy deep tissue) white matter."""
    tissue = np.zeros(brain.shape + (5,), np.float32)
    tissue[..., 0] = gm
    tissue[..., 2] = brain & ~csf & ~gm
    tissue[..., 3] = csf
    return tissue


def _region_tissues(n_regions: int, shift: dict[int, tuple[float, float]], variability: float,
                    rng: np.random.Generator) -> dict[int, Tissue]:
    """Each grey-matter region's tissue (labels 1..n): :data:`GREY_MATTER` with a per-region
    multiplicative jitter of s.d. ``variability`` on NDI, ODI and free water, plus ``shift``."""
    out = {}
    for label in range(1, n_regions + 1):
        jitter = np.exp(rng.normal(0.0, variability, 3)) if variability > 0 else np.ones(3)
        d_odi, d_fwf = shift.get(label, (0.0, 0.0))
        clip = lambda v: float(np.clip(v, 0.02, 0.98))  # noqa: E731
        out[label] = Tissue(ndi=clip(GREY_MATTER.ndi * jitter[0]), odi=clip(GREY_MATTER.odi * jitter[1] + d_odi),
                            fwf=clip(GREY_MATTER.fwf * jitter[2] + d_fwf), s0=GREY_MATTER.s0)
    return out


def _bezier(p0: np.ndarray, p1: np.ndarray, p2: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    t = np.linspace(0.0, 1.0, n)[:, None]
    pts = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2
    tang = 2 * (1 - t) * (p1 - p0) + 2 * t * (p2 - p1)
    tang /= np.linalg.norm(tang, axis=1, keepdims=True)
    return pts, tang


def make_subject(
    *,
    subject: str = "01",
    group: str = "control",
    site: str = "A",
    shape: tuple[int, int, int] = (44, 52, 14),
    voxel_size: float = 2.0,
    protocol: GradientTable | str = "single_shell",
    snr: float = 30.0,
    signal_scale: float = 1000.0,
    effect_bundle: str | None = None,
    effect_size: float = 0.0,
    subject_variability: float = 0.02,
    region_shift: dict[int, tuple[float, float]] | None = None,
    region_variability: float = 0.0,
    seed: int = 0,
) -> PhantomSubject:
    """Generate one synthetic subject (see module docstring).

    Parameters
    ----------
    subject, group, site : labels (subject alphanumeric).
    shape : (X, Y, Z) voxels; the brain is the inscribed ellipsoid (semi-axes 0.45 × shape).
    voxel_size : mm, isotropic.
    protocol : a GradientTable or a :func:`make_protocol` name.
    snr : b=0 white-matter signal over the Rician noise σ.
    signal_scale : b=0 white-matter signal (arbitrary units; a site effect multiplies it).
    effect_bundle : name of a bundle in :data:`BUNDLES` whose NDI is scaled by ``1 - effect_size``.
    effect_size : relative NDI reduction in ``effect_bundle`` (e.g. 0.2 for patients).
    subject_variability : s.d. of a per-subject multiplicative jitter on NDI (relative).
    region_shift : region label (1–8) → (ODI shift, free-water shift) added to that grey-matter
        region's tissue (a planted microstructure effect; fractions, clipped to [0.02, 0.98]).
    region_variability : s.d. of a per-subject, per-region jitter of the grey-matter regions' NDI,
        ODI and free water (relative, multiplicative): the between-subject spread of parcel maps.
        Drawn from a stream of its own, so the noise of a subject is the same with and without it.
    seed : everything random (noise, jitter, covariates) derives from it.
    """
    if isinstance(protocol, str):
        protocol = make_protocol(protocol)
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape[:2]) < 24 or shape[2] < 6:
        raise InputError(f"phantom shape must be at least (24, 24, 6), got {shape}.")
    if snr <= 0:
        raise InputError(f"snr must be positive, got {snr}.")
    names = [b[0] for b in BUNDLES]
    if effect_bundle is not None and effect_bundle not in names:
        raise InputError(f"unknown bundle {effect_bundle!r}; choose one of {names}.")
    rng = np.random.default_rng(seed)
    X, Y, Z = shape
    scale = min(X, Y) / 44.0
    centre = (np.array(shape, dtype=float) - 1.0) / 2.0
    semi = 0.45 * np.array(shape, dtype=float)
    ijk = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), axis=-1).astype(float)
    rel = (ijk - centre) / semi
    rho = np.sqrt((rel**2).sum(axis=-1))
    brain = rho <= 1.0
    csf = brain & (rho > _CSF_RIM)

    # regions: spheres on the ring in the mid-plane
    angles = np.deg2rad(22.5 + 45.0 * np.arange(len(REGION_NAMES)))
    region_centres = centre + np.stack(
        [_RING_RADIUS * semi[0] * np.cos(angles), _RING_RADIUS * semi[1] * np.sin(angles), np.zeros_like(angles)], axis=1
    )
    region_radius = 3.2 * scale
    labels = np.zeros(shape, dtype=np.int32)
    for k, c in enumerate(region_centres):
        inside = np.linalg.norm(ijk - c, axis=-1) <= region_radius
        labels[inside & brain & ~csf] = k + 1

    # bundles: tubes around Bezier paths between region centres
    bundle_radius = 1.6 * scale
    bundle_id = np.full(shape + (2,), -1, dtype=np.int16)
    orientation = np.zeros(shape + (2, 3))
    for b, (_, (ra, rb), ctrl) in enumerate(BUNDLES):
        p0, p2 = region_centres[ra], region_centres[rb]
        p1 = 0.5 * (p0 + p2) if ctrl is None else centre + np.array([ctrl[0] * semi[0], ctrl[1] * semi[1], 0.0])
        n_samples = int(8 * np.linalg.norm(p2 - p0)) + 50
        pts, tang = _bezier(p0, p1, p2, n_samples)
        dist, nearest = cKDTree(pts).query(ijk.reshape(-1, 3), distance_upper_bound=bundle_radius + 1.0)
        dist = dist.reshape(shape)
        inside = (dist <= bundle_radius) & brain & ~csf & (labels == 0)
        nearest = np.where(np.isfinite(dist.ravel()), nearest, 0).reshape(shape)
        slot = np.where(bundle_id[..., 0] < 0, 0, 1)
        for s in (0, 1):
            sel = inside & (slot == s) & (bundle_id[..., s] < 0)
            bundle_id[..., s][sel] = b
            orientation[..., s, :][sel] = tang[nearest[sel]]

    # per-voxel tissue parameters
    jitter = float(np.exp(rng.normal(0.0, subject_variability))) if subject_variability > 0 else 1.0
    bundle_ndi = np.full(len(BUNDLES), WHITE_MATTER.ndi * jitter)
    if effect_bundle is not None:
        bundle_ndi[names.index(effect_bundle)] *= 1.0 - effect_size
    bundle_ndi = np.clip(bundle_ndi, 0.05, 0.95)

    bvals, bvecs = protocol.bvals, protocol.bvecs
    signal = np.zeros(shape + (len(protocol),))
    tensor = np.zeros(shape + (3, 3))
    ndi_map = np.zeros(shape)
    odi_map = np.zeros(shape)
    fwf_map = np.zeros(shape)
    s0_map = np.zeros(shape)
    z_axis = np.array([0.0, 0.0, 1.0])

    def fill(sel: np.ndarray, mu: np.ndarray, tissue: Tissue, ndi: np.ndarray | float, weight: float) -> None:
        n = int(sel.sum())
        if n == 0:
            return
        ndi_v = np.broadcast_to(np.asarray(ndi, dtype=float), (n,))
        fiso = np.full(n, tissue.fwf)
        kappa = float(kappa_from_odi(tissue.odi))
        signal[sel] += weight * tissue.s0 * noddi_signal(bvals, bvecs, mu, ndi_v, kappa, fiso)
        tensor[sel] += weight * noddi_tensor(mu, ndi_v, kappa, fiso)
        ndi_map[sel] += weight * ndi_v
        odi_map[sel] += weight * tissue.odi
        fwf_map[sel] += weight * tissue.fwf
        s0_map[sel] += weight * tissue.s0

    in_bundle = bundle_id[..., 0] >= 0
    crossing = bundle_id[..., 1] >= 0
    deep = brain & ~csf & (labels == 0) & ~in_bundle
    fill(deep, np.tile(z_axis, (int(deep.sum()), 1)), DEEP_TISSUE, DEEP_TISSUE.ndi, 1.0)
    gm = labels > 0
    if region_shift is None and region_variability == 0:
        fill(gm, np.tile(z_axis, (int(gm.sum()), 1)), GREY_MATTER, GREY_MATTER.ndi, 1.0)
    else:
        for label, tissue in _region_tissues(len(REGION_NAMES), region_shift or {}, region_variability,
                                             np.random.default_rng([seed, 1])).items():
            sel = labels == label
            fill(sel, np.tile(z_axis, (int(sel.sum()), 1)), tissue, tissue.ndi, 1.0)
    fill(csf, np.tile(z_axis, (int(csf.sum()), 1)), CSF, 0.0, 1.0)
    for s in (0, 1):
        for b in range(len(BUNDLES)):
            sel = bundle_id[..., s] == b
            if not sel.any():
                continue
            weight = np.where(crossing[sel], 0.5, 1.0)
            for w in np.unique(weight):
                part = sel.copy()
                part[sel] = weight == w
                fill(part, orientation[..., s, :][part], WHITE_MATTER, bundle_ndi[b], float(w))

    fa, md = _fa_md(tensor)
    fa[~brain] = 0.0
    md[~brain] = 0.0
    main_orientation = orientation[..., 0, :].copy()

    # Rician noise everywhere, background included
    sigma = signal_scale * WHITE_MATTER.s0 / snr
    clean = signal_scale * signal
    noisy = np.sqrt((clean + sigma * rng.standard_normal(clean.shape)) ** 2 + (sigma * rng.standard_normal(clean.shape)) ** 2)

    affine = np.diag([voxel_size, voxel_size, voxel_size, 1.0])
    affine[:3, 3] = -centre * voxel_size
    dwi = DiffusionData(noisy.astype(np.float32), affine, brain, protocol, source=f"phantom sub-{subject}")
    nodes = pd.DataFrame(
        {
            "index": np.arange(1, len(REGION_NAMES) + 1),
            "name": list(REGION_NAMES),
            "hemisphere": [n[0] for n in REGION_NAMES],
            "network": ["anterior" if "anterior" in n else "posterior" for n in REGION_NAMES],
        }
    )
    parcellation = Parcellation(labels, affine, nodes, PARCELLATION_NAME)
    adjacency = np.zeros((len(REGION_NAMES),) * 2)
    for _, (ra, rb), _ctrl in BUNDLES:
        adjacency[ra, rb] = adjacency[rb, ra] = 1.0
    true_conn = Connectome(
        adjacency, parcellation.nodes, "truth", PARCELLATION_NAME,
        {"bundles": [{"name": n, "regions": [REGION_NAMES[a], REGION_NAMES[b]]} for n, (a, b), _ in BUNDLES]},
    )
    truth = {
        "ndi": ndi_map,
        "odi": odi_map,
        "fwf": fwf_map,
        "s0": s0_map * signal_scale,
        "tensor": tensor,
        "fa": fa,
        "md": md,
        "orientation": main_orientation,
        "peaks": orientation.astype(np.float32),
        "wm": in_bundle,
        "tissue": _five_tissue(brain, csf, gm),
        "crossing": crossing,
        "bundle_id": bundle_id,
        "sigma": np.float64(sigma),
    }
    covariates = {"age": float(np.round(rng.uniform(20, 80), 1)), "sex": str(rng.choice(["F", "M"]))}
    return PhantomSubject(subject, group, site, dwi, parcellation, truth, true_conn, covariates)


def make_cohort(
    n_subjects: int = 4,
    *,
    groups: tuple[str, ...] = ("control", "patient"),
    sites: dict[str, dict] | None = None,
    effect_bundle: str | None = "commissural_anterior",
    effect_size: float = 0.2,
    seed: int = 0,
    **subject_options,
) -> list[PhantomSubject]:
    """A cohort alternating between ``groups`` (the last group gets the effect) and ``sites``.

    Parameters
    ----------
    n_subjects : number of subjects (labels ``01``, ``02``, ...).
    groups : group names; subject *i* is in ``groups[i % len(groups)]``. Subjects of the last
        group get ``effect_size`` on ``effect_bundle`` when there are two or more groups.
    sites : site name → overrides of :func:`make_subject` options (e.g. ``{"A": {}, "B":
        {"signal_scale": 1300.0, "snr": 20.0}}``). Subject *i* is at site ``i // 2 % n_sites``.
    seed : cohort seed; subject *i* uses an independent stream spawned from it.
    subject_options : passed to :func:`make_subject` (shape, protocol, snr, ...).
    """
    if n_subjects < 1:
        raise InputError(f"n_subjects must be at least 1, got {n_subjects}.")
    sites = sites or {"A": {}}
    site_names = list(sites)
    seeds = np.random.SeedSequence(seed).spawn(n_subjects)
    cohort = []
    for i in range(n_subjects):
        group = groups[i % len(groups)]
        site = site_names[(i // 2) % len(site_names)]
        patient = len(groups) > 1 and group == groups[-1]
        options = {**subject_options, **sites[site]}
        cohort.append(
            make_subject(
                subject=f"{i + 1:02d}",
                group=group,
                site=site,
                effect_bundle=effect_bundle if patient else None,
                effect_size=effect_size if patient else 0.0,
                seed=int(seeds[i].generate_state(1)[0]),
                **options,
            )
        )
    return cohort


def write_bids(cohort: list[PhantomSubject], root: PathLike, *, write_mask: bool = False,
               series: list[str] | None = None) -> Path:
    """Write a cohort as a BIDS dataset, with its parcellations and ground truth as derivatives.

    Layout (``<folder>`` is ``sub-01`` or ``sub-01/ses-2``, ``<series>`` the file-name prefix)::

        root/dataset_description.json, participants.tsv
        root/<folder>/dwi/<series>_dwi.nii.gz|.bval|.bvec         (FSL convention for the affine)
        root/derivatives/phantom/<folder>/dwi/<series>_space-dwi_seg-phantom_dseg.nii.gz|.tsv
        root/derivatives/phantom/<folder>/dwi/<series>_space-dwi_desc-5tt_probseg.nii.gz  (five-tissue types)
        root/derivatives/groundtruth/<folder>/  true maps (.nii.gz) and connectome (.npz)

    Parameters
    ----------
    series : one BIDS series prefix per cohort member (``sub-01_ses-2_dir-AP_run-1``), so that a
        subject can have several sessions and series; default ``sub-<subject>``. Each must start
        with its member's ``sub-<subject>``.
    write_mask : also write ``<series>_desc-brain_mask.nii.gz`` beside the DWI (otherwise
        pipelines compute it).
    """
    root = Path(root)
    series = [entity_prefix(subj.subject) for subj in cohort] if series is None else list(series)
    if len(series) != len(cohort) or len(set(series)) != len(series):
        raise InputError(f"series must give {len(cohort)} distinct prefixes, one per cohort member, got {series}.")
    save_json(root / "dataset_description.json",
              {"Name": "pigment_connect synthetic cohort", "BIDSVersion": "1.9.0", "DatasetType": "raw"})
    rows = {}
    for subj, prefix in zip(cohort, series):
        entities = dict(part.split("-", 1) for part in prefix.split("_"))
        if entities.get("sub") != subj.subject:
            raise InputError(f"series prefix {prefix!r} does not start with sub-{subj.subject}.")
        folder = Path(f"sub-{subj.subject}", *([f"ses-{entities['ses']}"] if "ses" in entities else []))
        dwi_dir = root / folder / "dwi"
        save_nifti(dwi_dir / f"{prefix}_dwi.nii.gz", subj.dwi.data, subj.dwi.affine)
        subj.dwi.gtab.to_fsl(dwi_dir / f"{prefix}_dwi.bval", dwi_dir / f"{prefix}_dwi.bvec", affine=subj.dwi.affine)
        if write_mask:
            save_nifti(dwi_dir / f"{prefix}_desc-brain_mask.nii.gz", subj.dwi.mask, subj.dwi.affine)
        seg_dir = root / "derivatives" / "phantom" / folder / "dwi"
        subj.parcellation.save(seg_dir / f"{prefix}_space-dwi_seg-{PARCELLATION_NAME}_dseg.nii.gz")
        save_nifti(seg_dir / f"{prefix}_space-dwi_desc-5tt_probseg.nii.gz", subj.truth["tissue"], subj.dwi.affine)
        truth_dir = root / "derivatives" / "groundtruth" / folder
        for key in ("ndi", "odi", "fwf", "fa", "md"):
            save_nifti(truth_dir / f"{prefix}_desc-truth_param-{key}_dwimap.nii.gz",
                       subj.truth[key].astype(np.float32), subj.dwi.affine)
        subj.true_connectome.save(truth_dir / f"{prefix}_seg-{PARCELLATION_NAME}_desc-truth_connectome.npz")
        rows.setdefault(subj.subject, {"participant_id": entity_prefix(subj.subject), "group": subj.group,
                                       "site": subj.site, **subj.covariates})
    save_text(root / "participants.tsv", pd.DataFrame(list(rows.values())).to_csv(sep="\t", index=False))
    save_json(root / "derivatives" / "phantom" / "dataset_description.json",
              {"Name": "phantom parcellations", "BIDSVersion": "1.9.0", "DatasetType": "derivative",
               "GeneratedBy": [{"Name": "pigment_connect.datasets.phantom"}]})
    (root / "README").write_text("Synthetic diffusion MRI cohort generated by pigment_connect.datasets.phantom.\n")
    return root


def subject_parcellation_pattern() -> str:
    """Path pattern (relative to the BIDS root) of the parcellations written by :func:`write_bids`."""
    return "derivatives/phantom/{folder}/dwi/{prefix}_space-dwi_seg-" + PARCELLATION_NAME + "_dseg.nii.gz"



def subject_tissue_pattern() -> str:
    """Path pattern (relative to the BIDS root) of the five-tissue-type images written by :func:`write_bids`."""
    return "derivatives/phantom/{folder}/dwi/{prefix}_space-dwi_desc-5tt_probseg.nii.gz"
