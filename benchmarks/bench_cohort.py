"""Cohort throughput of ``run_cohort`` (what ``pigment-connect run`` does): a 20-series synthetic
study with 1 and 2 parallel series, and the stage times of the real whole-brain scan.

    python benchmarks/bench_cohort.py [--threads 2] [--shape 88 104 28] [--no-real]

The synthetic study has multi-series subjects as real studies do: four subjects with two
sessions × ``dir-AP``/``dir-PA`` (16 series), one with ``run-1``/``run-2`` and one with
``acq-hi``/``acq-lo`` (20 series), each an independent phantom (``datasets.make_subject``, 1 b0
+ 32 directions, b=1000, ground-truth parcellation given, 2 seeds per white-matter voxel,
count + mean-FA + length connectomes and graph metrics). Each run is its own process, into its
own empty folder, with ``--threads`` threads in all (``n_jobs=2`` gives each worker half):
wall time of the whole ``run_cohort`` call (imports excluded, worker start-up included), series
per hour, the largest per-series peak resident size the run summary reports, the calling
process's peak (sampled) and the largest worker's (``getrusage`` of the children). The two runs' connectomes are
compared byte for byte (same seed, any job count, same output).

The real scan: the shared ADNI whole brain (128×128×82, 1 b0 + 16 directions, 2 mm) as a
one-series BIDS dataset with the default settings (tensor fit, Schaefer-200 registered to the
subject, tensorline tracking streamed to .tck, four weightings); per-stage seconds and the
series' peak memory from the run summary, and the measured peak per MiB of input that
``pipeline.memory.PER_INPUT_MB`` (the job limiter's estimate before a series was measured)
should not undercut. The defaults constrain tracking by the template's tissues and seed at the
white-matter/cortex interface (17 k streamlines here); the same scan again without anatomical
constraints, seeded in all of the white matter with 12 seeds per voxel (``anatomical_constraints=
"none"``, ``seeding="wm"``: ≥ 1 million streamlines, tracked to disk and read back in one pass for
every atlas × weighting) shows the peak memory of a 1-million-streamline subject.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _results import recorded  # noqa: E402

ADNI = HERE.parent.parent / "shared" / "data" / "dwi_philips_elitionx_adni_wholebrain_b1000"
MILLION_SEEDS_PER_VOXEL = 12  # unconstrained, seeding="wm": ≥ 1 M streamlines on the ADNI whole brain
STAGES = ("load", "fit", "gradcheck", "register", "track", "connectome", "metrics")


def study_series() -> list[str]:
    """The 20 series prefixes of the synthetic study."""
    series = [f"sub-{s:02d}_ses-{ses}_dir-{d}" for s in range(1, 5) for ses in (1, 2) for d in ("AP", "PA")]
    series += ["sub-05_run-1", "sub-05_run-2", "sub-06_acq-hi", "sub-06_acq-lo"]
    return series


def write_study(root: Path, shape: tuple[int, int, int]) -> None:
    from pigment_connect.datasets import make_subject
    from pigment_connect.datasets.phantom import write_bids

    series = study_series()
    members = [make_subject(subject=prefix.split("_")[0][4:], shape=shape, seed=k + 1)
               for k, prefix in enumerate(series)]
    write_bids(members, root, series=series)


def worker_cohort(bids: Path, out: Path, jobs: int, threads: int) -> dict:
    from pigment_connect.datasets.phantom import subject_parcellation_pattern
    from pigment_connect.pipeline import PipelineConfig, run_cohort
    from pigment_connect.pipeline.memory import PeakMemory

    config = PipelineConfig(parcellation=subject_parcellation_pattern(), weightings=("count", "mean_fa", "length"))
    with PeakMemory() as parent:  # sampled: ru_maxrss would carry the benchmark parent's peak over exec
        start = time.perf_counter()
        result = run_cohort(bids, out, config, n_jobs=jobs, n_threads=threads, progress=False)
        wall = time.perf_counter() - start
    summary = result.summary
    return {"wall_s": wall, "ok": int((summary["status"] == "ok").sum()), "series": len(summary),
            "series_peak_mb": float(summary["peak_mb"].max()), "threads": sorted(set(summary["threads"])),
            "self_maxrss_mb": parent.peak_mb,
            "children_maxrss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}


def worker_real(out: Path, threads: int, seeds_per_voxel: int, seeding: str, constraints: str) -> dict:
    import nibabel as nib

    from pigment_connect.pipeline import PipelineConfig, run_cohort

    bids = out / "bids"
    dwi_dir = bids / "sub-adni" / "dwi"
    dwi_dir.mkdir(parents=True)
    (bids / "dataset_description.json").write_text(json.dumps({"Name": "ADNI whole brain", "BIDSVersion": "1.9.0"}))
    for ext in ("nii.gz", "bval", "bvec", "json"):
        os.symlink(ADNI / f"dwi.{ext}", dwi_dir / f"sub-adni_dwi.{ext}")
    start = time.perf_counter()
    config = PipelineConfig(seeds_per_voxel=seeds_per_voxel, seeding=seeding, anatomical_constraints=constraints)
    result = run_cohort(bids, out / "derivatives", config,
                        n_threads=threads, progress=False)
    wall = time.perf_counter() - start
    row = result.summary.iloc[0]
    shape = nib.load(ADNI / "dwi.nii.gz").shape
    n_streamlines = None
    tck = next((out / "derivatives").rglob("*_tractography.tck"), None)
    if tck is not None:
        with open(tck, "rb") as handle:
            for line in handle:
                if line.startswith(b"count:"):
                    n_streamlines = int(line.split(b":")[1])
                if line.strip() == b"END":
                    break
    return {"status": row["status"], "error": row["error"], "wall_s": wall, "peak_mb": float(row["peak_mb"]),
            "stages": {s: float(row[f"seconds_{s}"]) for s in STAGES}, "shape": list(shape),
            "input_mb": float(__import__("numpy").prod(shape) * 4 / 2**20), "streamlines": n_streamlines,
            "warnings": row["warnings"]}


def _spawn(args: list[str], out_json: Path) -> dict:
    subprocess.run([sys.executable, __file__, "--worker", *args, "--json", str(out_json)], check=True)
    return json.loads(out_json.read_text())


def _connectome_digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*_connectome.npz"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--shape", type=int, nargs=3, default=(88, 104, 28))
    parser.add_argument("--no-real", action="store_true", help="skip the real whole-brain scan")
    parser.add_argument("--worker", choices=("cohort", "real"), help=argparse.SUPPRESS)
    parser.add_argument("--bids", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--jobs", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--seeds-per-voxel", type=int, default=2, help=argparse.SUPPRESS)
    parser.add_argument("--seeding", default="auto", help=argparse.SUPPRESS)
    parser.add_argument("--anatomical-constraints", default="auto", help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == "cohort":
        args.json.write_text(json.dumps(worker_cohort(args.bids, args.out, args.jobs, args.threads)))
        return
    if args.worker == "real":
        args.json.write_text(json.dumps(worker_real(args.out, args.threads, args.seeds_per_voxel, args.seeding,
                                                    args.anatomical_constraints)))
        return

    import platform

    from _results import machine

    print(f"machine: {machine()}; python {platform.python_version()}; --threads {args.threads}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_study(tmp / "bids", tuple(args.shape))
        n = len(study_series())
        print(f"\n## synthetic study: {n} series of 6 subjects (sessions, dir-AP/PA, run-, acq-), "
              f"phantom {tuple(args.shape)}, 1 b0 + 32 directions\n")
        print("| jobs | threads per series | wall (s) | series / hour | series peak (MiB) | parent peak (MiB) "
              "| largest worker peak (MiB) | ok |")
        print("|---|---|---|---|---|---|---|---|")
        runs = {}
        for jobs in (1, 2):
            out = tmp / f"out_{jobs}"
            r = _spawn(["cohort", "--bids", str(tmp / "bids"), "--out", str(out), "--jobs", str(jobs),
                        "--threads", str(args.threads)], tmp / f"cohort_{jobs}.json")
            runs[jobs] = (r, _connectome_digests(out))
            worker_peak = r["children_maxrss_mb"] if jobs > 1 else float("nan")
            print(f"| {jobs} | {','.join(map(str, r['threads']))} | {r['wall_s']:.1f} | "
                  f"{3600 * r['series'] / r['wall_s']:.0f} | {r['series_peak_mb']:.0f} | {r['self_maxrss_mb']:.0f} | "
                  f"{worker_peak:.0f} | {r['ok']}/{r['series']} |")
        one, two = runs[1][1], runs[2][1]
        same = one == two and len(one) > 0
        print(f"\nspeed-up of 2 jobs over 1: {runs[1][0]['wall_s'] / runs[2][0]['wall_s']:.2f}×; "
              f"{len(one)} connectome files, byte-identical between 1 and 2 jobs: {'yes' if same else 'NO'}")

        if args.no_real:
            return
        if not (ADNI / "dwi.nii.gz").is_file():
            print(f"\n(real scan skipped: {ADNI} not found)")
            return
        real = _spawn(["real", "--out", str(tmp / "real"), "--threads", str(args.threads)], tmp / "real.json")
        million = _spawn(["real", "--out", str(tmp / "million"), "--threads", str(args.threads),
                          "--seeds-per-voxel", str(MILLION_SEEDS_PER_VOXEL), "--seeding", "wm",
                          "--anatomical-constraints", "none"], tmp / "million.json")
        print(f"\n## real whole brain: ADNI {'×'.join(map(str, real['shape']))}, 2 mm, default settings "
              f"(tensor, Schaefer-200, tensorline, 4 weightings), {args.threads} threads\n")
        print("| stage | seconds, default (2 seeds per interface voxel) | seconds, unconstrained, "
              f"{MILLION_SEEDS_PER_VOXEL} seeds per white-matter voxel |")
        print("|---|---|---|")
        for stage in STAGES:
            print(f"| {stage} | {real['stages'][stage]:.1f} | {million['stages'][stage]:.1f} |")
        print(f"| **run_cohort wall** | **{real['wall_s']:.1f}** | **{million['wall_s']:.1f}** |")
        print(f"| streamlines | {real['streamlines']} | {million['streamlines']} |")
        print(f"| series peak memory (MiB) | {real['peak_mb']:.0f} | {million['peak_mb']:.0f} |")
        print(f"| status | {real['status']} | {million['status']} |")
        print(f"\n{real['input_mb']:.0f} MiB of float32 input; peak at the defaults "
              f"{real['peak_mb'] / real['input_mb']:.1f} MiB per input MiB all told")
        from pigment_connect.pipeline.memory import BASE_MB, PER_INPUT_MB, estimate_series_mb

        estimate = estimate_series_mb(tuple(real["shape"]))
        print(f"job-limiter estimate before measuring ({BASE_MB:.0f} + {PER_INPUT_MB:g} × input MiB): "
              f"{estimate:.0f} MiB ({estimate / max(real['peak_mb'], million['peak_mb']):.2f}× the larger "
              "measured peak)")
        for name, r in (("defaults", real), ("1 M", million)):
            if r["warnings"]:
                print(f"warnings ({name}): {r['warnings']}")


if __name__ == "__main__":
    with recorded(__file__):
        main()
