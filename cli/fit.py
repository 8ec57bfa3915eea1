"""``pigment-connect fit``: microstructure maps of one scan (as ``dwi2tensor``, ``dipy_fit_dti``)."""

from __future__ import annotations

import argparse

from ._options import add_force_option, add_standard_options, add_subcommand, configure_logging, refuse_overwrite

EXAMPLES = """examples:
  Tensor maps (FA, MD, AD, RD, eigenvectors) of a scan, its .bval/.bvec found beside it:
    pigment-connect fit sub-01_dwi.nii.gz maps/

  PIGMENT tensor, kurtosis and NODDI maps with their uncertainty, from a sparse 6-direction scan
  (one b=0 and six directions cannot measure the noise: give its σ, here 12.8, where it is known):
    pigment-connect fit sub-01_dwi.nii.gz maps/ --model pigment-zeroshot --mask sub-01_desc-brain_mask.nii.gz --sigma 12.8

  Fibre ODFs in MRtrix3's basis (then: sh2peaks maps/sub-01_model-csd_param-fod_dwimap.nii.gz peaks.nii.gz):
    pigment-connect fit sub-01_dwi.nii.gz maps/ --model csd

  Then track on them:
    pigment-connect track maps/ sub-01_tractography.tck
"""

MODELS = {  # the names 'run --model' takes, plus the conventional multi-shell fits
    "tensor": "DTI, weighted least squares (b <= 1500 s/mm² volumes used when higher shells exist)",
    "dki": "diffusion kurtosis (two or more non-zero shells, 15+ directions)",
    "noddi": "NODDI-Watson: NDI, ODI, FWF (two shells, b up to about 2000-3000 s/mm²)",
    "pigment": "PIGMENT's amortised network, trained on the prior's simulations for this table (about 20 s "
               "on 2 cores), then one pass: tensor, kurtosis and NODDI maps with uncertainty from any table "
               "with 1+ b=0 and 6+ directions",
    "pigment-spatial": "the same network also seeing each voxel's neighbours (better on low-SNR scans)",
    "pigment-zeroshot": "PIGMENT fitted to this scan's own signal, voxel by voxel: the most accurate, "
                        "slower on a CPU",
    "pigment-zeroshot-evidence": "the same, each voxel's tissue taken from the prior's isotropic or anisotropic "
                                 "components by its evidence, neighbours coupled (better grey matter and error "
                                 "bars at low SNR; white matter's FA worse there; up to 1.6x the time at low SNR)",
    "csd": "fibre ODFs by constrained spherical deconvolution on the highest shell (15+ directions), "
           "SH coefficients in MRtrix3's basis over scanner axes (sh2peaks and mrview read them), "
           "with a BEP016 JSON sidecar",
    "msmt": "multi-shell multi-tissue CSD (2+ shells): white-matter FOD as csd, and grey-matter and CSF densities",
}


def register(subparsers) -> None:
    parser = add_subcommand(
        subparsers, "fit",
        help="fit a microstructure model to one scan and write its maps",
        description="Fit one model to a 4-D diffusion image and write its maps as BIDS derivatives, "
        "<prefix>_model-<model>_param-<map>_dwimap.nii.gz, with a JSON index that 'track' and "
        "'connectome' read. <prefix> is the series part of the image's name (sub-01_dir-AP for "
        "sub-01_dir-AP_dwi.nii.gz). Models: "
        + "; ".join(f"{name}: {what}" for name, what in MODELS.items()) + ".",
        epilog=EXAMPLES,
    )
    parser.add_argument("dwi", help="4-D diffusion image (.nii/.nii.gz)")
    parser.add_argument("out_dir", help="folder for the maps (created)")
    parser.add_argument("--bval", help="FSL .bval file (default: beside the image)")
    parser.add_argument("--bvec", help="FSL .bvec file (default: beside the image)")
    parser.add_argument("--mask", help="brain mask (default: computed from the b=0 volumes, and written)")
    parser.add_argument("--model", choices=tuple(MODELS), default="tensor", help="model to fit (default tensor)")
    parser.add_argument("--prefix", help="start of every output name (default: the series part of DWI's name)")
    parser.add_argument("--sigma", type=float,
                        help="noise σ in signal units, for the PIGMENT models (default: from repeated b=0 volumes, "
                        "else from the residuals of a tensor fit, else a b=0 SNR of 30 in white matter is assumed, "
                        "with a warning: give it for 1 b=0 + 6 directions)")
    add_force_option(parser)
    add_standard_options(parser)
    parser.set_defaults(execute=execute)


PIGMENT_MODELS = ("pigment", "pigment-spatial", "pigment-zeroshot", "pigment-zeroshot-evidence")
"""The models ``--sigma`` is for: the balance of their data and prior depends on it."""


def _model(name: str, gtab, seed: int, sigma: float | None = None):
    from pigment_connect.errors import InputError
    from pigment_connect.fit import CsdModel, DiffusionKurtosisModel, MsmtCsdModel, NoddiModel, TensorModel
    from pigment_connect.pigment import AmortisedPigmentModel, PigmentModel

    if sigma is not None and name not in PIGMENT_MODELS:
        raise InputError(f"--sigma is for the PIGMENT models; --model {name} does not take it.",
                         fix=f"drop --sigma, or use --model {' / '.join(PIGMENT_MODELS)}.")
    if sigma is not None and not sigma > 0:
        raise InputError(f"--sigma must be a positive noise σ in signal units, got {sigma}.",
                         fix="give the standard deviation of the scanner's noise, e.g. from repeated b=0 volumes.")
    if name in ("pigment", "pigment-spatial"):
        model = AmortisedPigmentModel(gtab, random_state=seed, spatial=name == "pigment-spatial", sigma=sigma)
        model.train()
        return model
    if name in ("pigment-zeroshot", "pigment-zeroshot-evidence"):
        return PigmentModel(gtab, random_state=seed, sigma=sigma, evidence=name.endswith("-evidence"))
    return {"tensor": TensorModel, "dki": DiffusionKurtosisModel, "noddi": NoddiModel, "csd": CsdModel,
            "msmt": MsmtCsdModel}[name](gtab)


def execute(args: argparse.Namespace) -> int:
    configure_logging(args)
    from pathlib import Path

    import dataclasses

    from pigment_connect.io.bids import bids_label, derivative_name, source_prefix
    from pigment_connect.io.dwi import load_dwi

    prefix = args.prefix or source_prefix(args.dwi)
    model_label = bids_label(args.model)  # model-pigmentzeroshot ...: the same names as 'run' writes
    out_dir = Path(args.out_dir)
    refuse_overwrite([out_dir / derivative_name(prefix, "dwimap", ".json", model=model_label)], args.force)
    dwi = load_dwi(args.dwi, bvals=args.bval, bvecs=args.bvec, mask=args.mask)
    model = _model(args.model, dwi.gtab, args.seed, args.sigma)
    fit = model.fit(dwi) if args.model in ("csd", "msmt") else model.fit(dwi, progress=not args.quiet)
    maps = dataclasses.replace(fit.maps, model=model_label)
    written = maps.save(out_dir, prefix=prefix)
    if args.model in ("csd", "msmt"):  # BEP016: how the FOD's coefficients are encoded
        from pigment_connect.fit.csd import save_fod_sidecar

        save_fod_sidecar(fit, written["fod"])
    if not args.quiet:
        index = out_dir / derivative_name(prefix, "dwimap", ".json", model=maps.model)
        print(f"{args.model}: {len(written)} maps ({', '.join(written)}) in {out_dir}; index {index.name}")
    return 0
