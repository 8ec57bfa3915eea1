"""Session fixtures wrapping the library's phantom builders (built once per test run)."""

from __future__ import annotations

import numpy as np
import pytest

from pigment_connect.datasets import make_subject, shared_data_dir


@pytest.fixture(scope="session")
def phantom():
    """A default-size synthetic subject (44×52×14, 2 b0 + 30 directions, SNR 30)."""
    return make_subject(seed=1)


@pytest.fixture(scope="session")
def phantom_tensor_maps(phantom):
    from pigment_connect.fit import TensorModel

    return TensorModel(phantom.dwi.gtab).fit(phantom.dwi).maps


@pytest.fixture(scope="session")
def shared_data():
    """../shared/data, or skip the test when it is absent."""
    path = shared_data_dir()
    if path is None:
        pytest.skip("../shared/data is not available")
    return path


@pytest.fixture()
def rng():
    return np.random.default_rng(42)


class MRtrix3Golden:
    """Outputs of MRtrix3 commands, committed in ``tests/golden/mrtrix3`` with their inputs, the
    exact command and the MRtrix3 version (``MANIFEST.json``; ``make_golden.py`` remakes them)."""

    def __init__(self, folder, shared):
        import importlib.util
        import json

        self.folder, self.shared = folder, shared
        manifest = json.loads((folder / "MANIFEST.json").read_text())
        self.version = manifest["mrtrix3"]
        self.outputs = manifest["outputs"]
        spec = importlib.util.spec_from_file_location("mrtrix3_make_golden", folder / "make_golden.py")
        self.maker = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(self.maker)

    def path(self, name: str):
        return self.folder / name

    def csv(self, name: str) -> np.ndarray:
        return np.loadtxt(self.folder / name, delimiter=",")

    def rerun(self, name: str, workdir):
        """Run the command that made ``name`` again, with the MRtrix3 installed here, on copies of
        its inputs in ``workdir``; returns the path of the new output."""
        import shutil
        import subprocess
        from pathlib import Path

        entry = self.outputs[name]
        source = self.folder if "inputs_in" not in entry else self.shared
        if source is None:
            pytest.skip("../shared/data is not available")
        for item in entry["inputs"]:
            shutil.copy(source / item, Path(workdir) / Path(item).name)
        if "stats_inputs.npz" in entry["inputs"]:
            self.maker.write_connectomestats_inputs(Path(workdir))
        subprocess.run(entry["command"], cwd=workdir, check=True)
        return Path(workdir) / name


@pytest.fixture(scope="session")
def mrtrix3_golden():
    from pathlib import Path

    return MRtrix3Golden(Path(__file__).parent / "golden" / "mrtrix3", shared_data_dir())
