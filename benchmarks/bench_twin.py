"""Digital twin of the real scans: sparse protocols scored against a known truth made of real tissue.

    python benchmarks/bench_twin.py [--scans mdt msmt] [--voxels 3000] [--snr own 10] [--no-peers] [--prior P]

Why: ``bench_sparse.py`` scores a subset's maps against the dense *fit* of the same real scan,
which carries the scan's noise (a noisy tensor reads too anisotropic); ``bench_sparse_phantom.py``
knows its truth but its tissue is a simulator's. The twin keeps the real tissue and makes the truth
known, so that a bias can be told apart: "the reference is noisy" or "the prior is off".

The twin of a scan (:func:`make_twin`): every brain voxel's dense conventional DKI fit (WLS, every
volume; the scans' b-values are ≤ 3000 s/mm²) *is* the voxel — its noise-free signal on the scan's
own table is that fit's prediction, S0 included. Truth: FA, MD and MK of that DKI tensor (which a
noise-free DKI fit of the twin returns exactly, checked at start), NDI and ODI of our NODDI fit of
the noise-free dense twin signal (what the dense NODDI reference would read without noise: the
twin's signal is DKI's, so NODDI's parameters have no other truth). Voxels whose dense DKI is not
physical (an eigenvalue ≤ 0, MK ≤ 0, or a signal that rises with b on the table) are left out. WM:
truth FA > 0.4; GM: truth FA < 0.2, MD < 1.1e-3 mm²/s and NODDI free water < 0.3 (as bench_sparse);
"brain": every scored voxel.

Noise: Rician, added to the whole dense twin once per level (the sparse subsets are subsets of
it, as in a real scan), at the scan's own σ (``own``: estimated from its repeated b=0 volumes in
the twin's white matter, :func:`pigment_connect.physics.noise.estimate_sigma_b0`) and at a b=0 SNR
of 10 in white matter. Every method is given the true σ where it takes one.

Protocols: bench_sparse's subsets (1b0+6, 1b0+12 at the 1000-like shell, 1b0+8+8 on two shells)
and ``full`` (the noisy dense twin itself: its conventional fit is what the dense reference of
bench_sparse is, so its row measures how far noise moves that reference from the truth).
Methods: the conventional fit (DKI where the table determines it, else DTI at b ≤ 1500; NODDI where
there are two shells), PIGMENT zero-shot (with its Laplace error bars; also with ``evidence=True``,
which chooses between the prior's isotropic and anisotropic components by each fit's evidence, the
groups of neighbouring voxels coupled: that fit covers every physical voxel, so that the scored ones
have their neighbours, and its ``fit s`` is of them all), PIGMENT amortised, and
DIPY FORCE (``--no-peers`` skips it); and, as a yardstick rather than a method, bench_sparse's
oracle trained on the twin's own truth in the other folds of its voxels (what an estimator that knew
this brain's population and noise could reach from one voxel's data). Scores: bias (mean signed error) and median absolute error
per map and region; the calibration of the error bars (share of brain voxels whose truth lies
within ±1 sd; target 0.5–0.85) for the PIGMENT fits.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
MAPS = ("fa", "md", "mk", "ndi", "odi")
EVIDENCE = "PIGMENT (evidence)"
"""The zero-shot fit with ``evidence=True`` (its component group chosen by each fit's Laplace evidence,
neighbours' groups coupled)."""
REGIONS = ("WM", "GM", "brain")
PROTOCOLS = ("1b0+6", "1b0+12", "1b0+8+8", "full")


def make_twin(data: np.ndarray, gtab, brain: np.ndarray) -> tuple[np.ndarray, dict, np.ndarray, object]:
    """The twin of a scan: noise-free signal (X, Y, Z, N), truth maps, the physical voxels and the fit.

    ``data`` (X, Y, Z, N) the real scan, ``gtab`` its table, ``brain`` its mask. Returns the dense
    DKI fit's prediction in ``brain`` (0 outside), a dict of truth maps (:data:`MAPS` plus ``fwf``
    and ``s0``), the mask of voxels whose DKI is physical (see the module docstring) and that DKI
    fit (whose ``predict`` gives the twin's signal on any other table).
    """
    from pigment_connect.fit import DiffusionKurtosisModel, NoddiModel

    dki = DiffusionKurtosisModel(gtab, fit_method="WLS").fit(data, mask=brain)
    clean = np.where(brain[..., None], dki.predict(gtab), 0.0)
    s0 = dki.s0
    dw = ~gtab.b0s_mask
    shell_of = np.round(gtab.bvals[dw], -2)
    means = [clean[..., dw][..., shell_of == b].mean(-1) for b in np.unique(shell_of)]
    rises = np.zeros(brain.shape, bool)
    for lo, hi in zip(means[:-1], means[1:]):  # a higher shell's mean signal at or above a lower one's
        rises |= hi >= lo
    mk = dki.mk(min_kurtosis=None, max_kurtosis=None)
    physical = (brain & (dki.evals[..., 2] > 0) & (mk > 0) & ~rises & np.isfinite(clean).all(-1)
                & (clean[..., dw] < 1.5 * s0[..., None]).all(-1))
    noddi = NoddiModel(gtab).fit(clean.astype(np.float32), mask=physical)
    truth = {"fa": dki.fa, "md": dki.md, "mk": mk, "ndi": noddi.ndi, "odi": noddi.odi, "fwf": noddi.fwf, "s0": s0}
    check = DiffusionKurtosisModel(gtab, fit_method="WLS").fit(clean.astype(np.float64), mask=physical)
    worst = max(float(np.abs(check.fa - dki.fa)[physical].max()), float(np.abs(check.md / dki.md - 1)[physical].max()))
    print(f"  twin check: a DKI fit of the noise-free twin returns its truth to {worst:.1e} (FA, relative MD)")
    return clean, truth, physical, dki


def scored_voxels(physical: np.ndarray, truth: dict, voxels: int, seed: int) -> tuple[np.ndarray, dict]:
    """``voxels`` random physical voxels (seeded) and the regions scored in them: WM (truth FA > 0.4),
    GM (truth FA < 0.2, MD < 1.1e-3 mm²/s, NODDI free water < 0.3) and "brain" (all of them)."""
    rng = np.random.default_rng(seed)
    cand = np.argwhere(physical)
    pick = cand[rng.choice(len(cand), min(voxels, len(cand)), replace=False)]
    mask = np.zeros_like(physical)
    mask[tuple(pick.T)] = True
    regions = {"WM": mask & (truth["fa"] > 0.4),
               "GM": mask & (truth["fa"] < 0.2) & (truth["md"] < 1.1e-3) & (truth["fwf"] < 0.3),
               "brain": mask}
    return mask, regions


def own_sigma(data: np.ndarray, gtab, wm: np.ndarray) -> float:
    """σ of the scan from its repeated b=0 volumes in ``wm`` (:func:`estimate_sigma_b0`)."""
    import torch

    from pigment_connect.physics.noise import estimate_sigma_b0

    return float(estimate_sigma_b0(torch.as_tensor(data[wm][:, gtab.b0s_mask], dtype=torch.float64)))


def add_noise(clean: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    """Rician magnitude of ``clean`` at noise ``sigma`` (the simulator's one Rician noise), float32."""
    from pigment_connect.pigment.simulate import rician_magnitude

    rng = np.random.default_rng(seed)
    return rician_magnitude(clean, sigma, lambda shape: rng.normal(size=shape)).astype(np.float32)


def score(maps: dict, truth: dict, regions: dict) -> dict:
    """(map, region) → (bias, median absolute error), None where the method has no such map (or none of
    the region's voxels: NaN outside what it estimates);
    ("cal", map) → share of brain voxels within ±1 sd where the method gives one."""
    out = {}
    for m in MAPS:
        for r, sel in regions.items():
            if m not in maps:
                out[(m, r)] = None
                continue
            err = maps[m][sel] - truth[m][sel]
            err = err[np.isfinite(err)]
            out[(m, r)] = (float(err.mean()), float(np.median(np.abs(err)))) if err.size else None
        std = maps.get(f"{m}_std")
        if std is not None:
            sel = regions["brain"]
            out[("cal", m)] = float(np.mean(np.abs(maps[m][sel] - truth[m][sel]) <= std[sel]))
    return out


def _cell(v, m: str, which: int) -> str:
    if v is None:
        return "n/a"
    x = v[which] * (1e3 if m == "md" else 1.0)
    return f"{x:+.3f}" if which == 0 else f"{x:.3f}"


def print_table(rows, label: str) -> None:
    """Bias and median absolute error of every map in WM, GM and the brain for the runs of ``label``."""
    for region in REGIONS:
        head = f"| {label} · {region} | " + " | ".join(f"{m.upper()} bias | {m.upper()} err" for m in MAPS) + " | fit s | setup s |"
        print(head)
        print("|" + "---|" * (head.count("|") - 1))
        for lab, method, sc, wall, setup in rows:
            if lab != label:
                continue
            cells = " | ".join(f"{_cell(sc[(m, region)], m, 0)} | {_cell(sc[(m, region)], m, 1)}" for m in MAPS)
            print(f"| {method} | {cells} | {wall:.1f} | {setup:.1f} |")
        print()
    cal = [(method, sc) for lab, method, sc, _, _ in rows if lab == label and any(k[0] == "cal" for k in sc)]
    if cal:
        print("error bars: share of brain voxels whose truth is within ±1 sd (target 0.5–0.85): "
              + "; ".join(f"{method} " + ", ".join(f"{m} {sc[('cal', m)]:.2f}" for m in MAPS if ('cal', m) in sc)
                          for method, sc in cal))
    print("(bias: mean signed error against the twin's truth; err: median absolute error; MD in 1e-3 mm²/s)\n")


def print_targets(rows) -> None:
    """Issue #30's twin targets: WM FA |bias| ≤ 0.02 and error ≤ 0.8× the conventional fit's; MD ≤ 0.6×,
    MK ≤ 0.5× the conventional error; NDI WM ≤ 0.9× and ODI WM ≤ 0.7× FORCE's; error bars 0.5–0.85."""
    by = {(label, method): sc for label, method, sc, _, _ in rows}
    print("targets on the twin (sparse protocols):")
    for (label, method), sc in by.items():
        if not method.startswith(("PIGMENT", "oracle")) or label.split(" ")[1] == "full":
            continue
        conv, force = by.get((label, "conventional")), by.get((label, "FORCE"))
        parts = []
        bias, err = sc[("fa", "WM")]
        parts.append(f"FA WM bias {bias:+.3f} ({'ok' if abs(bias) <= 0.02 else 'MISSED'})")

        def ratio(m, r, peer, limit):
            if peer is None or peer.get((m, r)) is None or sc.get((m, r)) is None:
                return None
            q = sc[(m, r)][1] / peer[(m, r)][1]
            return f"{m.upper()} {r} {q:.2f}× ({'ok' if q <= limit else 'MISSED'} ≤ {limit})"

        for args in (("fa", "WM", conv, 0.8), ("md", "WM", conv, 0.6), ("md", "GM", conv, 0.6), ("mk", "WM", conv, 0.5),
                     ("ndi", "WM", force, 0.9), ("odi", "WM", force, 0.7)):
            text = ratio(*args)
            if text:
                parts.append(text)
        cal = [sc[("cal", m)] for m in MAPS if ("cal", m) in sc]
        if cal:
            parts.append(f"error bars {min(cal):.2f}–{max(cal):.2f}")
        print(f"  {label} {method}: " + "; ".join(parts))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scans", nargs="*", default=["mdt", "msmt"])
    ap.add_argument("--voxels", type=int, default=3000, help="random physical brain voxels scored per scan")
    ap.add_argument("--snr", nargs="*", default=["own", "10"], help="noise levels: own (the scan's σ) and/or b=0 SNRs")
    ap.add_argument("--protocols", nargs="*", default=list(PROTOCOLS))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-peers", action="store_true", help="skip FORCE")
    ap.add_argument("--no-amortised", action="store_true")
    ap.add_argument("--no-oracle", action="store_true", help="skip the oracle yardstick")
    ap.add_argument("--prior", default=None, help="prior path prefix (default: the shipped prior)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    sys.path.insert(0, str(HERE))
    import bench_sparse as bs

    bs.use_threads(args.threads)

    from pigment_connect.io import load_dwi
    from pigment_connect.io.gradients import GradientTable

    rows = []
    for scan in args.scans:
        image, bval, bvec, brain_mask = (bs.SHARED / f for f in bs.SCANS[scan][:4])
        if not image.is_file():
            sys.exit(f"needs {image}")
        dwi = load_dwi(image, bvals=bval, bvecs=bvec, mask=brain_mask)
        bvals = np.where(dwi.gtab.b0s_mask, 0.0, dwi.gtab.bvals)
        bvecs = dwi.gtab.bvecs
        gtab = GradientTable(bvals, bvecs)
        data = np.clip(dwi.data, 0, None).astype(np.float64)
        t = time.perf_counter()
        print(f"## {scan}: {image.parent.name}, {data.shape}, {dwi.mask.sum()} brain voxels")
        clean, truth, physical, _ = make_twin(data, gtab, dwi.mask)
        mask, regions = scored_voxels(physical, truth, args.voxels, args.seed)
        wm_all = physical & (truth["fa"] > 0.4)
        sigma_own = own_sigma(data, gtab, wm_all)
        s0_wm = float(np.median(truth["s0"][wm_all]))
        print(f"  twin: {physical.sum()} physical voxels ({(dwi.mask & ~physical).sum()} left out), scored "
              f"{mask.sum()} (WM {regions['WM'].sum()}, GM {regions['GM'].sum()}); truth WM median FA "
              f"{np.median(truth['fa'][wm_all]):.3f}, MK {np.median(truth['mk'][wm_all]):.2f}; own σ {sigma_own:.1f} "
              f"(b=0 SNR {s0_wm / sigma_own:.1f} in WM); {time.perf_counter() - t:.1f} s\n")
        protocols = bs.scan_protocols(scan)
        for level in args.snr:
            sigma = sigma_own if level == "own" else s0_wm / float(level)
            snr_label = f"SNR{s0_wm / sigma:.0f}" + (" (own)" if level == "own" else "")
            noisy = add_noise(clean, sigma, seed=args.seed + 1)
            for name in args.protocols:
                vols = bs.protocol_volumes(bvals, bvecs, protocols[name])
                sub, sub_gtab = noisy[..., vols], GradientTable(bvals[vols], bvecs[vols])
                label = f"{scan} {name} @{snr_label}"
                results = {}
                t = time.perf_counter()
                results["conventional"] = (bs.fit_conventional(sub, sub_gtab, mask), time.perf_counter() - t, 0.0)
                for method, evidence in (("PIGMENT", False), (EVIDENCE, True)):
                    t = time.perf_counter()
                    maps = bs.fit_pigment(sub, sub_gtab, mask, sigma, args.prior, errors=True, evidence=evidence,
                                          spatial_mask=physical)
                    results[method] = (maps, time.perf_counter() - t, 0.0)
                if not args.no_amortised:
                    results["PIGMENT-amortised"] = bs.fit_amortised(sub, sub_gtab, mask, sigma, args.prior, errors=True)
                if not args.no_oracle and name != "full":
                    t = time.perf_counter()
                    oracle = bs.fit_oracle(sub, sub_gtab, physical, mask, {**truth, "physical": physical})
                    results[bs.ORACLE.replace("this scan", "the twin's truth")] = (oracle, time.perf_counter() - t, 0.0)
                if not args.no_peers and name != "full":
                    work = Path(tempfile.mkdtemp(prefix="bench_twin_force_"))
                    try:
                        results["FORCE"] = bs.fit_force(sub, bvals[vols], bvecs[vols], mask, work, args.threads)
                    except Exception as exc:  # a peer failing on a protocol is reported, not fatal
                        print(f"  FORCE failed on {label}: {type(exc).__name__}: {exc}")
                    finally:
                        shutil.rmtree(work, ignore_errors=True)
                for method, (maps, wall, setup) in results.items():
                    rows.append((label, method, score(maps, truth, regions), wall, setup))
                print_table(rows, label)
    print_targets(rows)


if __name__ == "__main__":
    from _results import recorded

    with recorded(__file__):
        main()
