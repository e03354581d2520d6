"""16-bit transport: round trips within tolerance, int buffers exact, bytes halved; float16
as standard NumPy arrays that any Flower client reads."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord

from colearn_fl.arrays import arrays_to_state_dict, encode_like, state_dict_to_arrays
from strategies import CoLearn
from strategies.arrays import checked_arrays, count_bytes
from strategies.transport import encode
from tests.strategies.test_colearn import StaticGrid, reply
from tests.tiny import TinyClassifier


@pytest.fixture
def model_arrays() -> ArrayRecord:
    torch.manual_seed(0)
    module = TinyClassifier()
    module.net[1].num_batches_tracked.fill_(123456789)
    return state_dict_to_arrays(module.state_dict())


@pytest.mark.parametrize(("dtype", "tolerance"), [("float16", 1e-3), ("bfloat16", 8e-3)])
def test_round_trip_within_tolerance_and_ints_exact(model_arrays: ArrayRecord, dtype: str,
                                                    tolerance: float) -> None:
    # Execute
    back, problem = checked_arrays(model_arrays, encode(model_arrays, dtype))  # as the server
    assert problem is None and back is not None
    # Assert: floats close (relative error of a 16-bit mantissa), ints bit-exact, dtypes restored
    for key, original in model_arrays.items():
        assert back[key].dtype == original.dtype
        np.testing.assert_allclose(back[key].numpy(), original.numpy(), rtol=tolerance,
                                   atol=1e-6)
    assert int(back["net.1.num_batches_tracked"].numpy()) == 123456789


@pytest.mark.parametrize(("dtype", "header"), [("float16", 0), ("bfloat16", 128)])
def test_16_bit_halves_the_float_payload(model_arrays: ArrayRecord, dtype: str,
                                         header: int) -> None:
    # Prepare: raw float payload of the model (4 bytes per float parameter)
    floats = sum(a.numpy().size for a in model_arrays.values() if a.dtype == "float32")
    # Execute
    wire = encode(model_arrays, dtype)
    # Assert: 2 bytes per float on the wire; the int64 buffer still 8 bytes
    raw = sum(np.prod(a.shape, dtype=int) * (8 if a.dtype == "int64" else 2)
              for a in wire.values())
    assert raw == floats * 2 + 8
    # serialized: 2 bytes saved per float; bfloat16 (raw words) also drops each float array's
    # 128-byte NumPy header, float16 keeps it (standard NumPy arrays)
    float_arrays = sum(a.dtype == "float32" for a in model_arrays.values())
    assert count_bytes(model_arrays) - count_bytes(wire) == floats * 2 + header * float_arrays


def test_float16_is_a_standard_numpy_array_any_flower_client_reads(
        model_arrays: ArrayRecord) -> None:
    wire = encode(model_arrays, "float16")
    # Array.numpy() is what a stock Flower client calls
    values = wire["net.0.weight"].numpy()
    assert values.dtype == np.float16
    np.testing.assert_allclose(values, model_arrays["net.0.weight"].numpy(), rtol=1e-3)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_site_replies_in_the_servers_encoding(model_arrays: ArrayRecord, dtype: str) -> None:
    wire = encode(model_arrays, dtype)
    state = arrays_to_state_dict(wire)
    module = TinyClassifier()
    module.load_state_dict(state)  # casts to the module's float32
    reply_arrays = encode_like(module.state_dict(), wire)
    assert [a.dtype for a in reply_arrays.values()] == [a.dtype for a in wire.values()]
    assert count_bytes(reply_arrays) == count_bytes(wire)


def test_colearn_averages_16_bit_replies_in_full_precision(flower_identity: None) -> None:
    # Prepare
    glob = ArrayRecord({"w": Array(np.array([0.0, 0.0], np.float32)),
                        "n": Array(np.array(0))})
    colearn = CoLearn(transport_dtype="float16")
    messages = list(colearn.configure_train(1, glob, ConfigRecord(), StaticGrid([1, 2])))
    wire = messages[0].content["arrays"]
    assert wire["w"].dtype == "float16" and wire["n"].dtype == "int64"
    replies = [reply(i, ArrayRecord({"w": Array(np.array(w, np.float16)),
                                     "n": Array(np.array(n))}))
               for i, (w, n) in ((1, ([1.0, 0.5], 2)), (2, ([2.0, 0.25], 4)))]
    sixteen_bit = sum(count_bytes(r.content["arrays"]) for r in replies)
    # Execute
    arrays, _ = colearn.aggregate_train(1, replies)
    # Assert: averaged, and returned in the global model's float32; the bytes received are
    # the 16-bit replies as they came
    assert colearn.rounds[1]["bytes-received"] == sixteen_bit
    assert arrays["w"].dtype == "float32"
    np.testing.assert_allclose(arrays["w"].numpy(), [1.5, 0.375])
    assert int(arrays["n"].numpy()) == 3


def test_float32_reply_to_a_float16_round_is_accepted(flower_identity: None) -> None:
    # Prepare: a stock client trains in float32 and replies in float32 to a float16 round
    glob = ArrayRecord({"w": Array(np.zeros(2, np.float32)), "n": Array(np.array(0))})
    colearn = CoLearn(transport_dtype="float16")
    list(colearn.configure_train(1, glob, ConfigRecord(), StaticGrid([1, 2])))
    mine = ArrayRecord({"w": Array(np.array([1.0, 3.0], np.float32)), "n": Array(np.array(2))})
    # Execute
    arrays, _ = colearn.aggregate_train(1, [reply(1, mine)])
    # Assert: cast on arrival, averaged, returned in the global model's dtype
    assert colearn.rounds[1]["sites-averaged"] == 1
    np.testing.assert_array_equal(arrays["w"].numpy(), [1.0, 3.0])
    assert arrays["w"].dtype == "float32"


def test_a_site_replies_beyond_float16_at_its_own_precision_never_inf() -> None:
    # Prepare: the server sent both keys at float16; training took one past 65504
    received = ArrayRecord({"small": Array(np.ones(2, dtype=np.float16)),
                            "big": Array(np.ones(2, dtype=np.float16))})
    state = {"small": torch.tensor([1.5, -2.0]), "big": torch.tensor([7e4, 1.0])}
    # Execute
    reply = encode_like(state, received)
    # Assert
    assert reply["small"].dtype == "float16"
    assert reply["big"].dtype == "float32" and reply["big"].numpy().tolist() == [7e4, 1.0]
