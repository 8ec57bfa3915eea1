"""Training the tissue prior, and the model card that records how a prior was made."""

from __future__ import annotations

import datetime as _dt
import json
import math
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .._typing import PathLike
from ..errors import InputError
from .network import TissuePrior
from .tissue import FEATURES

__all__ = ["train_prior", "write_model_card", "build_shipped_prior"]

DECODER_SIGMA = 0.1
"""Decoder noise in standardised feature units: the reconstruction term is ‖x − x̂‖²/(2·0.1²)."""


def train_prior(features: np.ndarray, *, latent_dim: int = 6, hidden: int = 128, steps: int = 4000,
                batch_size: int = 1024, lr: float = 2e-3, validation: float = 0.1, seed: int = 0,
                device: torch.device | str | None = None, checkpoint: PathLike | None = None,
                progress: bool = False) -> tuple[TissuePrior, dict]:
    """Fit a :class:`TissuePrior` (VAE) to tissue features.

    Parameters
    ----------
    features : (n, 9) training features (:data:`~.tissue.FEATURES`), e.g. from
        :func:`~.simulate.simulate_features` or conventional fits of dense scans.
    latent_dim, hidden : architecture. steps, batch_size, lr : Adam schedule (cosine decay).
    validation : held-out share, scored every 200 steps (reconstruction + KL per voxel).
    seed : makes the split, the initialisation and the batches reproducible.
    device : default CUDA when available.
    checkpoint : a path; training state is saved there every 500 steps and training resumes
        from it when it exists.

    Returns
    -------
    The prior (eval mode, on CPU) and a history dict (``train_loss``, ``val_loss``, ``steps``, ``n_train``, ``n_val``).
    """
    x = np.asarray(features, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != len(FEATURES):
        raise InputError(f"features must be (n, {len(FEATURES)}) in the order {FEATURES}, got shape {x.shape}.")
    if not np.isfinite(x).all():
        raise InputError("features contain NaN or infinite values.", fix="drop the voxels whose fits failed.")
    if len(x) < 100:
        raise InputError(f"{len(x)} training voxels are too few for a prior (need ≥ 100).")
    dev = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    order = torch.randperm(len(x), generator=gen).numpy()
    n_val = max(1, int(round(validation * len(x))))
    val, train = torch.as_tensor(x[order[:n_val]], device=dev), torch.as_tensor(x[order[n_val:]], device=dev)
    mean, std = train.mean(0), train.std(0).clamp_min(1e-6)
    prior = TissuePrior(latent_dim, hidden, mean.cpu(), std.cpu()).to(dev)
    opt = torch.optim.Adam(prior.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    history: dict = {"train_loss": [], "val_loss": [], "steps": steps, "n_train": len(train), "n_val": n_val}
    start = 0
    ckpt = Path(checkpoint) if checkpoint is not None else None
    if ckpt is not None and ckpt.is_file():
        state = torch.load(ckpt, map_location=dev, weights_only=False)
        prior.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        gen.set_state(state["generator"])
        history, start = state["history"], state["step"]
    with tqdm(total=steps, initial=start, desc="train prior", disable=not progress, leave=False) as bar:
        for step in range(start, steps):
            prior.train()
            idx = torch.randint(len(train), (batch_size,), generator=gen).to(dev)
            loss = _vae_loss(prior, train[idx], gen)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            history["train_loss"].append(float(loss.detach()))
            if (step + 1) % 200 == 0 or step + 1 == steps:
                prior.eval()
                with torch.no_grad():
                    history["val_loss"].append((step + 1, float(_vae_loss(prior, val, None))))
                bar.set_postfix(val=f"{history['val_loss'][-1][1]:.3f}")
            if ckpt is not None and ((step + 1) % 500 == 0 or step + 1 == steps):
                tmp = ckpt.with_suffix(ckpt.suffix + ".tmp")
                torch.save({"model": prior.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                            "generator": gen.get_state(), "history": history, "step": step + 1}, tmp)
                tmp.replace(ckpt)
            bar.update(1)
    prior = prior.cpu().eval().requires_grad_(False)
    return prior, history


def _vae_loss(prior: TissuePrior, batch: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
    """Negative ELBO per voxel in standardised units (posterior mean used when ``gen`` is None)."""
    mu, logvar = prior.encode(batch)
    if gen is None:
        z = mu
    else:
        eps = torch.randn(mu.shape, generator=gen).to(mu.device)
        z = mu + torch.exp(0.5 * logvar) * eps
    recon = ((prior.decoder(z) - (batch - prior.mean) / prior.std) ** 2).sum(-1) / (2 * DECODER_SIGMA**2)
    kl = 0.5 * (mu * mu + torch.exp(logvar) - 1.0 - logvar).sum(-1)
    return (recon + kl).mean()


def write_model_card(path: PathLike, prior: TissuePrior, history: dict, *, data: str, version: str) -> Path:
    """Write MODEL_CARD.md next to the weights: data used, parameters, version, hash, losses."""
    path = Path(path)
    info = prior.info
    final_val = history["val_loss"][-1][1] if history.get("val_loss") else float("nan")
    text = f"""# PIGMENT tissue prior — model card

- **Name / version:** {info.get('name', 'pigment_prior')} (pigment_connect {version})
- **Written:** {_dt.date.today().isoformat()}
- **Weights:** `{info.get('name', 'pigment_prior')}.pt` (sha256 `{info.get('sha256', 'see the .json header')}`)
- **Architecture:** VAE, latent dimension {prior.latent_dim}, two hidden layers of {prior.hidden} (SiLU),
  {sum(p.numel() for p in prior.parameters())} parameters; decoder noise {DECODER_SIGMA} (standardised units).
- **Generates:** the nine tissue features {', '.join(FEATURES)} — one description from which the DTI tensor,
  an axially symmetric kurtosis tensor and NODDI-Watson parameters all follow (`pigment_connect.prior.tissue`).
- **Training data:** {data}
- **Training:** {history.get('steps')} Adam steps, {history.get('n_train')} training / {history.get('n_val')} validation
  voxels; final validation loss (negative ELBO per voxel) {final_val:.3f}.
- **Not trained on:** any scan from `../shared/data` — in particular not on `dwi_mdt_b1k_b2k`, which the
  sparse-protocol benchmark scores against, so its scores are out-of-sample.
- **Licence:** BSD-3-Clause, as the project (the training data is generated by the project's own simulator).
- **Limits:** the tissue simulator is NODDI-based (sticks, tortuous zeppelin, free water; one or two fascicles);
  tissue outside that family (e.g. very high kurtosis from restricted compartments) is represented only as far
  as the conventional fits of the simulated signals reach.
"""
    path.write_text(text)
    return path


def build_shipped_prior(directory: PathLike, *, n_voxels: int = 40000, steps: int = 3000, seed: int = 0,
                        progress: bool = False) -> Path:
    """Rebuild the shipped prior from scratch (simulated tissue only) into ``directory``: weights,
    JSON header and MODEL_CARD.md. Deterministic for a given seed on one machine."""
    from .. import __version__
    from .network import SHIPPED_PRIOR
    from .simulate import TISSUE_CLASSES, simulate_features

    directory = Path(directory)
    features = simulate_features(n_voxels, seed=seed + 1, progress=progress)
    prior, history = train_prior(features, steps=steps, seed=seed, device="cpu", progress=progress)
    prior.info = {"name": SHIPPED_PRIOR, "version": __version__, "training_data": "simulated",
                  "n_simulated_voxels": n_voxels, "seed": seed, "tissue_classes": list(TISSUE_CLASSES)}
    weights = prior.save(directory / SHIPPED_PRIOR)
    prior.info["sha256"] = json.loads(weights.with_suffix(".json").read_text())["sha256"]
    data = (f"{n_voxels} simulated voxels (`pigment_connect.prior.simulate`, seed {seed + 1}): classes "
            f"{', '.join(TISSUE_CLASSES)}; features from conventional DKI (WLS) and NODDI (NLLS) fits of their "
            f"noise-free signal on the canonical protocol (6 b0 + 30 × b=1000 + 60 × b=2000 s/mm²).")
    write_model_card(directory / "MODEL_CARD.md", prior, history, data=data, version=__version__)
    return weights
