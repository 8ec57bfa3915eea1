"""Every model checks its shared arguments the same way: a bad chunk size is an InputError
naming the argument, never a bare error from deep inside the fit."""

import pytest

from pigment_connect.datasets import make_protocol
from pigment_connect.errors import InputError
from pigment_connect.fit import DiffusionKurtosisModel, NoddiModel, TensorModel
from pigment_connect.pigment import PigmentModel


@pytest.mark.parametrize("model", [TensorModel, DiffusionKurtosisModel, NoddiModel, PigmentModel])
@pytest.mark.parametrize("chunk_size", [0, -5])
def test_chunk_size_below_one_is_refused_by_every_model(model, chunk_size):
    gtab = make_protocol("dense")
    with pytest.raises(InputError, match="chunk_size"):
        model(gtab, chunk_size=chunk_size)
