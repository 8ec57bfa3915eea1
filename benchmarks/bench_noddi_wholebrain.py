"""Whole-brain NODDI fit time on the current device (the GPU target: < 30 s).

    python benchmarks/bench_noddi_wholebrain.py [--voxels 250000] [--device cuda]

The noise-free signal of a dense two-shell phantom (b = 0/1000/2000, 67 volumes) is tiled to
``--voxels`` brain voxels (≈ a 2 mm whole brain) and every voxel gets its own Rician noise draw
(b=0 white-matter SNR 30), then fitted with :class:`NoddiModel`. Prints the wall time, voxels/s
and the median absolute error of NDI/ODI/FWF in single-fibre white matter.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from pigment_connect.datasets import make_subject
from pigment_connect.fit import NoddiModel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--voxels", type=int, default=250_000)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--chunk-size", type=int, default=None, help="voxels per batch (default: the model's, by device)")
    args = parser.parse_args()
    # the phantom's noise-free signal (SNR 1e12) tiled to the brain size, then independent Rician
    # noise drawn for every voxel at the σ of the SNR-30 phantom: no two voxels share a noise draw
    subject = make_subject(protocol="dense", snr=1e12, seed=0)
    sigma = float(make_subject(protocol="dense", snr=30, seed=0).truth["sigma"])
    mask = subject.dwi.mask
    rng = np.random.default_rng(0)
    reps = int(np.ceil(args.voxels / mask.sum()))
    clean_idx = np.tile(np.arange(mask.sum()), reps)[: args.voxels]
    clean = subject.dwi.data[mask][clean_idx].astype(np.float64)
    signal = np.sqrt((clean + sigma * rng.standard_normal(clean.shape)) ** 2
                     + (sigma * rng.standard_normal(clean.shape)) ** 2).astype(np.float32)
    wm = np.tile((subject.truth["wm"] & ~subject.truth["crossing"])[mask], reps)[: args.voxels]
    model = NoddiModel(subject.dwi.gtab, device=args.device, chunk_size=args.chunk_size)
    model.fit(signal[:256])  # warm-up
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fit = model.fit(signal)
    seconds = time.perf_counter() - t0
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"CPU ({torch.get_num_threads()} threads)"
    print(f"NODDI, {args.voxels} voxels × {signal.shape[1]} volumes on {name}: {seconds:.1f} s "
          f"({args.voxels / seconds:.0f} voxels/s)")
    for key in ("ndi", "odi", "fwf"):
        truth = np.tile(subject.truth[key][mask], reps)[: args.voxels]
        print(f"  {key}: median |error| in white matter {np.median(np.abs(getattr(fit, key)[wm] - truth[wm])):.4f}")


if __name__ == "__main__":
    from _results import recorded

    with recorded(__file__):
        main()
