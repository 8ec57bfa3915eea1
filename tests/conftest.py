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
