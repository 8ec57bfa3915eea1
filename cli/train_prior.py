"""``pigment-connect train-prior``: train a PIGMENT tissue prior from dense scans and simulated tissue."""

from __future__ import annotations

import argparse

from ._options import add_standard_options, add_subcommand, configure_logging

EXAMPLES = """examples:
  A prior from simulated tissue only (how the shipped prior is made):
    pigment-connect train-prior priors/sim_prior --simulated 40000

  Add two dense multi-shell scans (FSL .bval/.bvec beside each image), resumable:
    pigment-connect train-prior priors/lab_prior --scan s1_dwi.nii.gz --mask s1_mask.nii.gz \\
        --scan s2_dwi.nii.gz --mask s2_mask.nii.gz --checkpoint priors/lab_prior.ckpt

  Use it:  PigmentModel(gtab, prior="priors/lab_prior").fit(dwi)
"""


def register(subparsers) -> None:
    parser = add_subcommand(
        subparsers, "train-prior",
        help="train a PIGMENT tissue prior (weights + MODEL_CARD.md)",
        description="Fit the conventional DKI and NODDI models to dense scans and/or simulated tissue and train "
        "the generative prior on the result. Writes PREFIX.pt, PREFIX.json and MODEL_CARD.md beside them.",
        epilog=EXAMPLES,
    )
    parser.add_argument("prefix", help="output path without suffix, e.g. priors/my_prior")
    parser.add_argument("--scan", action="append", default=[], metavar="DWI",
                        help="dense multi-shell DWI (.nii/.nii.gz); its .bval/.bvec beside it (repeatable)")
    parser.add_argument("--mask", action="append", default=[], metavar="MASK",
                        help="brain mask for the --scan of the same position (default: computed)")
    parser.add_argument("--simulated", type=int, default=40000, metavar="N",
                        help="simulated voxels added to the scans (default 40000; 0 for scans only)")
    parser.add_argument("--steps", type=int, default=3000, help="training steps (default 3000)")
    parser.add_argument("--latent-dim", type=int, default=6)
    parser.add_argument("--device", default=None, help="torch device (default: CUDA when present)")
    parser.add_argument("--checkpoint", default=None, help="checkpoint file: saved every 500 steps, resumed if present")
    add_standard_options(parser)
    parser.set_defaults(execute=execute)


def execute(args: argparse.Namespace) -> int:
    configure_logging(args)
    from pigment_connect.errors import InputError
    from pigment_connect.io import load_dwi
    from pigment_connect.pigment.train import build_prior

    if args.mask and len(args.mask) != len(args.scan):
        raise InputError(f"{len(args.mask)} --mask for {len(args.scan)} --scan: give one mask per scan or none.")
    masks = args.mask or [None] * len(args.scan)
    scans = [load_dwi(path, mask=mask) for path, mask in zip(args.scan, masks)]
    weights = build_prior(args.prefix, scans=scans, n_simulated=args.simulated, steps=args.steps, seed=args.seed,
                          latent_dim=args.latent_dim, device=args.device, checkpoint=args.checkpoint,
                          progress=not args.quiet)
    print(f"wrote {weights}, {weights.with_suffix('.json')} and {weights.parent / 'MODEL_CARD.md'}")
    return 0
