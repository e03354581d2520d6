"""The server's checks on replies and dtypes, in NumPy, on hand-made arrays."""

from __future__ import annotations

import numpy as np
from flwr.app import Array, ArrayRecord

from strategies.arrays import reply_problem, restore_dtypes


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
    # A floating array may come in another floating precision (cast on arrival); ints may not
    assert reply_problem(ref, ArrayRecord({"w": Array(np.zeros(2))})) is None
    ints = ArrayRecord({"n": Array(np.array(3))})
    assert "dtype float32" in reply_problem(ints, ArrayRecord({"n": Array(np.array(3.0, "f4"))}))
    assert "missing ['w']" in reply_problem(ref, ArrayRecord({"v": Array(np.zeros(2))}))


def npy(values: np.ndarray, dtype: str, shape: tuple[int, ...]) -> Array:
    """An Array whose header declares ``dtype`` and ``shape`` whatever ``values`` hold."""
    return Array(dtype=dtype, shape=shape, stype="numpy.ndarray", data=Array(values).data)


def test_a_reply_is_checked_after_its_cast_to_the_global_dtype() -> None:
    # Prepare: 4e38 is finite in float64 but beyond float32 (3.4e38)
    ref = ArrayRecord({"w": Array(np.zeros(2, np.float32))})
    big = ArrayRecord({"w": Array(np.array([1.0, 4e38]))})
    # Execute
    problem = reply_problem(ref, big)
    # Assert
    assert problem == ("'w' holds values beyond the global model's float32 (|values| up to "
                       "4e+38)")


def test_the_data_must_match_what_the_array_declares() -> None:
    # Prepare: a float32 (3,) model; replies whose data disagree with their header
    ref = ArrayRecord({"w": Array(np.zeros(3, np.float32))})
    one_value = ArrayRecord({"w": npy(np.array([9.0], np.float32), "float32", (3,))})
    two_words = ArrayRecord({"w": Array(dtype="bfloat16", shape=(3,), stype="torch.bfloat16",
                                        data=b"\x80\x3f\x80\x3f")})
    ints = ArrayRecord({"w": npy(np.array([1, 2, 3]), "float32", (3,))})
    # Execute
    problems = [reply_problem(ref, r) for r in (one_value, two_words, ints)]
    # Assert: named, never raised
    assert problems == [
        "'w' declares shape (3,) but its data has shape (1,)",
        "'w' declares shape (3,) (3 bfloat16 values, 6 bytes) but holds 4 bytes",
        "'w' declares dtype float32 but its data is int64",
    ]
