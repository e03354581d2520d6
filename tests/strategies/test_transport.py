"""16-bit transport never sends a value it cannot represent: an array that would overflow (or
flush to zero entirely) travels at float32 for the round, on hand-made arrays."""

from __future__ import annotations

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord

from strategies import CoLearnSchedule, server_optimizer
from strategies.arrays import count_bytes
from strategies.transport import encode, to_numpy
from tests.strategies.test_colearn import StaticGrid


def test_float16_overflow_travels_at_float32_the_rest_at_float16() -> None:
    # Prepare: a BatchNorm variance of 7e4 (float16 tops out at 65504) next to a plain weight
    model = ArrayRecord({"w": Array(np.array([0.5, -2.0], np.float32)),
                         "bn.running_var": Array(np.array([7e4, 1.0], np.float32))})
    # Execute
    wire = encode(model, "float16")
    # Assert: the variance goes out exactly, as float32; the weight as float16
    assert wire["bn.running_var"].dtype == "float32"
    np.testing.assert_array_equal(wire["bn.running_var"].numpy(), [7e4, 1.0])
    assert wire["w"].dtype == "float16"


def test_bfloat16_and_float32_overflow_keep_a_dtype_that_holds_the_values() -> None:
    # Prepare: 3.4e38 rounds up to bfloat16's inf (its largest is 3.3895e38); 1e39 (float64)
    # is beyond float32 too
    model = ArrayRecord({"big": Array(np.array([3.4e38, 1.0], np.float32)),
                         "huge": Array(np.array([1e39, 1.0], np.float64))})
    # Execute
    bf16, fp32 = encode(model, "bfloat16"), encode(model, "float32")
    # Assert: float32 where it holds the values, else the model's own float64
    assert (bf16["big"].dtype, bf16["huge"].dtype) == ("float32", "float64")
    assert np.isfinite(to_numpy(bf16["big"])).all()
    assert fp32["huge"].dtype == "float64" and fp32["huge"].numpy()[0] == 1e39


def test_an_array_that_would_flush_to_zero_travels_at_float32_rounding_does_not() -> None:
    # Prepare: float16's smallest subnormal is 6e-8: [1e-9, 2e-9] would arrive as zeros;
    # in [1.0, 1e-9] only a rounding error of 1e-9 is lost (as any 16-bit rounding)
    model = ArrayRecord({"tiny": Array(np.array([1e-9, 2e-9], np.float32)),
                         "mixed": Array(np.array([1.0, 1e-9], np.float32))})
    # Execute
    wire = encode(model, "float16")
    # Assert
    assert wire["tiny"].dtype == "float32"
    np.testing.assert_array_equal(wire["tiny"].numpy(), np.array([1e-9, 2e-9], np.float32))
    assert wire["mixed"].dtype == "float16"
    np.testing.assert_array_equal(wire["mixed"].numpy(), [1.0, 0.0])


def test_a_wider_array_is_logged_once_per_key_and_counted_in_the_bytes(
        flower_identity: None, caplog) -> None:
    # Prepare: a model whose variance exceeds float16's range
    model = ArrayRecord({"w": Array(np.zeros(4, np.float32)),
                         "bn.running_var": Array(np.array([7e4, 1.0], np.float32))})
    schedule = CoLearnSchedule(server_optimizer("fedavg"), transport_dtype="float16")
    # Execute: two rounds, two sites
    for server_round in (1, 2):
        list(schedule.configure_train(server_round, model, ConfigRecord(), StaticGrid([1, 2])))
    # Assert: one warning naming the key and the value; bytes as sent (w at 2 bytes a value,
    # the variance at 4)
    assert caplog.text.count("'bn.running_var' travels at float32") == 1
    assert "7e+04" in caplog.text and "65504" in caplog.text
    sent = ArrayRecord({"w": Array(np.zeros(4, np.float16)),
                        "bn.running_var": Array(np.array([7e4, 1.0], np.float32))})
    assert schedule.rounds[2]["bytes-sent"] == 2 * count_bytes(sent)
