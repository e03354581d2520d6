"""state_dict <-> ArrayRecord, byte accounting and reply checks on hand-made arrays."""

from __future__ import annotations

import numpy as np
import torch
from flwr.app import Array, ArrayRecord
from torch import nn

from colearn_fl.arrays import (
    arrays_to_state_dict,
    count_bytes,
    reply_problem,
    restore_dtypes,
    state_dict_to_arrays,
)

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


def test_restore_dtypes_rounds_ints_and_keeps_0d_shapes() -> None:
    reference = ArrayRecord({"n": Array(np.array(0)), "w": Array(np.zeros(2, np.float32))})
    averaged = ArrayRecord({"n": Array(np.array(4.6)), "w": Array(np.array([1.5, 2.5]))})
    restored = restore_dtypes(averaged, reference)
    assert restored["n"].dtype == "int64" and restored["n"].shape == ()
    assert int(restored["n"].numpy()) == 5
    assert restored["w"].dtype == "float32"


def test_reply_problem_reasons() -> None:
    ref = ArrayRecord({"w": Array(np.zeros(2, np.float32))})
    assert reply_problem(ref, ref) is None
    nan = ArrayRecord({"w": Array(np.array([np.nan, 0], np.float32))})
    assert "non-finite" in reply_problem(ref, nan)
    assert "shape (3,)" in reply_problem(ref, ArrayRecord({"w": Array(np.zeros(3, np.float32))}))
    assert "dtype float64" in reply_problem(ref, ArrayRecord({"w": Array(np.zeros(2))}))
    assert "missing ['w']" in reply_problem(ref, ArrayRecord({"v": Array(np.zeros(2))}))
