"""state_dict <-> ArrayRecord (the torch side) and its byte accounting."""

from __future__ import annotations

import torch
from torch import nn

from colearn_fl.arrays import arrays_to_state_dict, state_dict_to_arrays
from strategies.arrays import count_bytes

NPY_HEADER = 128  # NumPy's .npy v1 header for these small arrays (magic + dict, padded)


def test_bytes_of_a_known_model() -> None:
    # Prepare: Linear(3, 2) + BatchNorm1d(2): weights 6 + 2 floats, BN 4 x 2 floats + 1 int64
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    # Execute
    arrays = state_dict_to_arrays(model.state_dict())
    # Assert: 7 arrays, each a 128-byte header plus its raw bytes
    raw = (6 + 2 + 2 + 2 + 2 + 2) * 4 + 8
    assert count_bytes(arrays) == 7 * NPY_HEADER + raw == 968


def test_round_trip_keeps_every_buffer_and_dtype() -> None:
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    model[1].num_batches_tracked.fill_(7)
    back = arrays_to_state_dict(state_dict_to_arrays(model.state_dict()))
    assert list(back) == list(model.state_dict())
    assert back["1.num_batches_tracked"].dtype == torch.int64
    assert int(back["1.num_batches_tracked"]) == 7
    for key, value in model.state_dict().items():
        assert torch.equal(back[key], value)
