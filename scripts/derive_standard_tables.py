"""Write the standard gradient tables shipped in pigment_connect/synthesis/tables/.

    python scripts/derive_standard_tables.py

Each shell's directions are spread by electrostatic repulsion on the hemisphere (DIPY's
``disperse_charges``, 5000 iterations, from a seeded random start: the same files on every run);
shells of one table are interleaved in acquisition order with b=0 volumes spread through it, as
scanners acquire them. Written in FSL's layout for an image with a negative-determinant (radiological,
LAS) affine: the vectors are the image-axis directions as stored.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from dipy.core.sphere import HemiSphere, disperse_charges

OUT = Path(__file__).resolve().parent.parent / "pigment_connect" / "synthesis" / "tables"
TABLES = {
    # name: (number of b=0 volumes, {b-value: directions})
    "hardi-3shell": (6, {1000: 90, 2000: 90, 3000: 90}),
    "dti-64": (4, {1000: 64}),
    "abcd-like": (7, {500: 6, 1000: 15, 2000: 15, 3000: 60}),
}


def shell_directions(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(n, 3))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    hemi, _ = disperse_charges(HemiSphere(xyz=v), 5000)
    return hemi.vertices


def table(n_b0: int, shells: dict[int, int], seed: int) -> tuple[np.ndarray, np.ndarray]:
    dirs = [(b, shell_directions(n, seed + i)) for i, (b, n) in enumerate(shells.items())]
    rows = []
    # interleave: the k-th direction of every shell in turn, larger shells filling the rest
    for k in range(max(n for n in shells.values())):
        rows += [(b, d[k]) for b, d in dirs if k < len(d)]
    step = max(len(rows) // n_b0, 1)
    out = []
    for i, row in enumerate(rows):
        if i % step == 0 and sum(b == 0 for b, _ in out) < n_b0:
            out.append((0, np.zeros(3)))
        out.append(row)
    while sum(b == 0 for b, _ in out) < n_b0:
        out.append((0, np.zeros(3)))
    return np.array([b for b, _ in out], float), np.array([v for _, v in out])


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for seed, (name, (n_b0, shells)) in enumerate(TABLES.items()):
        bvals, bvecs = table(n_b0, shells, 100 * seed)
        (OUT / f"{name}.bval").write_text(" ".join(f"{b:g}" for b in bvals) + "\n")
        (OUT / f"{name}.bvec").write_text("\n".join(" ".join(f"{x:.8f}" for x in row) for row in bvecs.T + 0.0) + "\n")
        print(name, len(bvals), "volumes")


if __name__ == "__main__":
    main()
